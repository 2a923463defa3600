//! The end of a run: after healing (every broker up, every link reliable, no new produces,
//! time to finish every retry), the cluster must have converged — liveness, and the last
//! word on invariant 4.

use super::check::Checker;
use super::controller::Controller;
use super::node::Node;
use super::TOPIC;

fn node(nodes: &[Node], id: i32) -> Option<&Node> {
    nodes.iter().find(|n| n.id == id)
}

/// After healing: a leader leads in the controller's epoch, every replica is live and in
/// the ISR, every log equals the leader's up to a common high watermark at its end, and
/// every acknowledged value is at its offset.
pub fn converged(nodes: &[Node], controller: &Controller, checker: &Checker) -> Result<(), String> {
    let p = controller
        .image
        .partition(TOPIC, 0)
        .ok_or_else(|| "the topic was never created".to_string())?;
    let leader_node = node(nodes, p.leader).ok_or_else(|| format!("no leader: partition state {p:?}"))?;
    let leader = leader_node
        .leader()
        .filter(|l| l.state().leader_epoch == p.leader_epoch)
        .ok_or_else(|| format!("broker {} does not lead epoch {} yet", p.leader, p.leader_epoch))?;
    let (mut isr, mut replicas) = (p.isr.clone(), p.replicas.clone());
    isr.sort_unstable();
    replicas.sort_unstable();
    if isr != replicas {
        return Err(format!(
            "ISR {:?} is not every replica {:?} (state {p:?})",
            p.isr, p.replicas
        ));
    }
    if let Some(b) = replicas.iter().find(|&&b| !controller.image.is_live(b)) {
        return Err(format!("broker {b} is still fenced"));
    }
    let log = &leader_node.log;
    if leader.high_watermark() != log.log_end_offset() {
        return Err(format!(
            "leader {}'s high watermark {} is not its log end {}",
            p.leader,
            leader.high_watermark(),
            log.log_end_offset()
        ));
    }
    for &r in &replicas {
        let n = node(nodes, r).ok_or_else(|| format!("replica {r} is not a broker"))?;
        if n.running.is_none() || n.log.entries() != log.entries() || n.log.high_watermark() != log.high_watermark() {
            return Err(format!(
                "replica {r} has not converged: log end {} high watermark {} (leader {}: {} / {})",
                n.log.log_end_offset(),
                n.log.high_watermark(),
                p.leader,
                log.log_end_offset(),
                log.high_watermark()
            ));
        }
    }
    for ack in &checker.acked {
        let found = log.entry(ack.offset);
        if found.map(|e| e.value) != Some(ack.value) {
            return Err(format!(
                "acknowledged value {} (offset {}, epoch {}, by broker {}) is lost: the final leader {} has {found:?} there",
                ack.value, ack.offset, ack.leader_epoch, ack.node, p.leader
            ));
        }
    }
    if checker.committed_len() > log.log_end_offset() {
        return Err("the final leader's log is shorter than the committed prefix".to_string());
    }
    Ok(())
}
