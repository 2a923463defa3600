//! Listeners, connection limits, background upkeep and clean shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::{connection, now_ms, Broker, BrokerError};

/// Counts open connections, globally and per client IP (`max.connections[.per.ip]`).
#[derive(Debug, Default)]
struct ConnectionCounts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Decrements the counts when a connection ends, however it ends.
struct Slot {
    counts: Arc<Mutex<ConnectionCounts>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total -= 1;
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Binds every address `listen` resolves to (e.g. both 127.0.0.1 and ::1 for localhost).
pub async fn bind(listen: &str) -> Result<Vec<TcpListener>, BrokerError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .map_err(|e| {
            BrokerError::Config(format!(
                "cannot resolve listen address '{listen}': {e} (expected HOST:PORT)"
            ))
        })?
        .collect();
    let mut listeners = Vec::new();
    let mut last_err = None;
    for addr in addrs {
        match TcpListener::bind(addr).await {
            Ok(l) => listeners.push(l),
            Err(e) => last_err = Some(e),
        }
    }
    match (listeners.is_empty(), last_err) {
        (true, Some(source)) => Err(BrokerError::Bind {
            addr: listen.to_string(),
            source,
        }),
        (true, None) => Err(BrokerError::Config(format!(
            "listen address '{listen}' resolves to nothing"
        ))),
        _ => Ok(listeners),
    }
}

/// Runs the broker until `shutdown` completes. The `internal` listeners (Raft, controller
/// requests, replication) open first, so the quorum can form while this node joins the
/// cluster; the client `listeners` are served once it has joined, and `ready` is called then.
/// On shutdown a cluster node hands its leaderships away (controlled shutdown); then the logs
/// are flushed and closed. The internal listeners close last: peers still need this node's
/// vote while it hands over.
pub async fn serve(
    broker: Arc<Broker>,
    listeners: Vec<TcpListener>,
    internal: Vec<TcpListener>,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(&Broker),
) -> Result<(), BrokerError> {
    let (quorum_stop_tx, quorum_stop_rx) = watch::channel(false);
    let mut quorum_tasks = JoinSet::new();
    for listener in internal {
        quorum_tasks.spawn(accept_loop(
            Arc::clone(&broker),
            listener,
            Arc::new(Mutex::new(ConnectionCounts::default())),
            quorum_stop_rx.clone(),
            true,
        ));
    }
    quorum_tasks.spawn(controller_loop(Arc::clone(&broker), quorum_stop_rx.clone()));
    let mut shutdown = std::pin::pin!(shutdown);
    let joined = tokio::select! {
        joined = broker.join() => Some(joined),
        _ = &mut shutdown => None,
    };
    match joined {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            stop_tasks(&quorum_stop_tx, &mut quorum_tasks).await;
            return Err(e);
        }
        None => {
            tracing::info!("shutting down before this node joined the cluster");
            stop_tasks(&quorum_stop_tx, &mut quorum_tasks).await;
            return broker.shutdown().await;
        }
    }
    quorum_tasks.spawn(heartbeat_loop(Arc::clone(&broker), quorum_stop_rx.clone()));
    quorum_tasks.spawn(reconcile_loop(Arc::clone(&broker), quorum_stop_rx.clone()));
    quorum_tasks.spawn(crate::isr::shrink_loop(Arc::clone(&broker), quorum_stop_rx.clone()));
    crate::replica_fetcher::Fetchers::ensure(&broker);
    let (stop_tx, stop_rx) = watch::channel(false);
    let counts = Arc::new(Mutex::new(ConnectionCounts::default()));
    let mut tasks = JoinSet::new();
    for listener in listeners {
        tasks.spawn(accept_loop(
            Arc::clone(&broker),
            listener,
            Arc::clone(&counts),
            stop_rx.clone(),
            false,
        ));
    }
    tasks.spawn(upkeep_loop(Arc::clone(&broker), stop_rx.clone()));
    tasks.spawn(group_clock(Arc::clone(&broker), stop_rx.clone()));
    tasks.spawn(txn_clock(Arc::clone(&broker), stop_rx.clone()));
    tasks.spawn(log_maintenance(Arc::clone(&broker), stop_rx.clone()));
    ready(&broker);
    shutdown.await;
    tracing::info!("shutting down");
    if broker.config.is_cluster() {
        controlled_shutdown(&broker).await;
    }
    let _ = stop_tx.send(true);
    // Connections finish the request in hand; give them a moment.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    stop_tasks(&quorum_stop_tx, &mut quorum_tasks).await;
    broker.shutdown().await?;
    tracing::info!("logs flushed; clean shutdown");
    Ok(())
}

async fn stop_tasks(stop: &watch::Sender<bool>, tasks: &mut JoinSet<()>) {
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
}

/// Asks the controller to move this node's leaderships away before it stops (Kafka's
/// controlled shutdown), for at most `controlled.shutdown` time (10 s).
async fn controlled_shutdown(broker: &Broker) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        // Each attempt is bounded too: without a quorum (the last voter stopping) the
        // controller can never answer.
        let answer = tokio::time::timeout_at(deadline, broker.heartbeat(true)).await;
        let Ok(answer) = answer else { break };
        match answer {
            Ok(true) => {
                tracing::info!("controlled shutdown: no partition is led here any more");
                return;
            }
            Ok(false) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => {
                tracing::warn!("controlled shutdown: {e}");
                return;
            }
        }
    }
    tracing::warn!("controlled shutdown did not complete within 10 s; stopping anyway");
}

/// Heartbeats to the active controller every `broker.heartbeat.interval.ms`.
async fn heartbeat_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(broker.config.broker_heartbeat_interval_ms().clamp(10, 60_000));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = broker.heartbeat(false).await {
            tracing::warn!("heartbeat: {e}");
        }
    }
}

/// The active controller's clock: fences brokers whose session expired.
async fn controller_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.changed() => return,
        }
        broker.controller.tick().await;
    }
}

/// Brings hosted partitions in line with the image whenever it changes.
async fn reconcile_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let mut applied = broker.quorum.shared().subscribe();
    loop {
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
        if let Err(e) = broker.reconcile(false) {
            tracing::error!("applying metadata changes to this node's partitions: {e}");
        }
        crate::replica_fetcher::Fetchers::ensure(&broker);
    }
}

async fn accept_loop(
    broker: Arc<Broker>,
    listener: TcpListener,
    counts: Arc<Mutex<ConnectionCounts>>,
    mut stop: watch::Receiver<bool>,
    internal: bool,
) {
    let max_total = broker.config.max_connections();
    let max_per_ip = broker.config.max_connections_per_ip();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!("a connection task panicked; that connection was closed: {e}");
                    }
                }
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = {
            let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
            let for_ip = c.per_ip.get(&peer.ip()).copied().unwrap_or(0);
            if c.total >= max_total || for_ip >= max_per_ip {
                tracing::warn!("refusing connection from {peer}: connection limit reached");
                continue;
            }
            c.total += 1;
            *c.per_ip.entry(peer.ip()).or_insert(0) += 1;
            Slot {
                counts: Arc::clone(&counts),
                ip: peer.ip(),
            }
        };
        let broker = Arc::clone(&broker);
        let stop = stop.clone();
        connections.spawn(async move {
            let _slot = slot;
            connection::run(broker, stream, peer, stop, internal).await;
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Time-driven log upkeep: `flush.ms`, and the high-watermark checkpoint every
/// `replica.high.watermark.checkpoint.interval.ms` (only when one moved).
async fn upkeep_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(broker.config.flush_scheduler_interval_ms().clamp(10, 60_000));
    let checkpoint_every = Duration::from_millis(broker.config.high_watermark_checkpoint_interval_ms().max(100));
    let mut last_checkpoint = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        let now = now_ms();
        // Nothing to look at unless some partition flushes by time (flush.ms): idle
        // partitions cost this loop nothing.
        if broker.time_flushed.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            for p in broker.all_partitions() {
                if let Err(e) = p.tick(now) {
                    tracing::error!("upkeep of {}-{}: {e}", p.topic, p.index);
                }
            }
        }
        if last_checkpoint.elapsed() >= checkpoint_every {
            last_checkpoint = tokio::time::Instant::now();
            if let Err(e) = broker.checkpoint_high_watermarks_if_moved() {
                tracing::error!("{e}");
            }
        }
    }
}

/// Writes the transaction markers newly loaded coordinators owe, and aborts transactions past
/// their timeout every `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
async fn txn_clock(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    const TICK: Duration = Duration::from_millis(100);
    let timeouts_every = Duration::from_millis(broker.config.txn_timeout_check_interval_ms().max(10));
    let mut last_timeouts = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
        let owed = std::mem::take(&mut *broker.owed_markers.lock().unwrap_or_else(|p| p.into_inner()));
        for markers in owed {
            crate::txn_markers::spawn(Arc::clone(&broker), markers);
        }
        if last_timeouts.elapsed() >= timeouts_every {
            last_timeouts = tokio::time::Instant::now();
            for markers in broker.txns.abort_timed_out().await {
                tracing::info!(
                    "aborting the transaction of {} (producer {}): past its timeout",
                    markers.transactional_id,
                    markers.producer_id
                );
                crate::txn_markers::spawn(Arc::clone(&broker), markers);
            }
        }
    }
}

/// Drives group timeouts (sessions, rebalances) and offset expiry.
async fn group_clock(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    const TICK: Duration = Duration::from_millis(100);
    const EXPIRY_EVERY_TICKS: u64 = 600;
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
        broker.groups.tick();
        ticks += 1;
        // (`__consumer_offsets` is compacted like any compacted topic, by log maintenance.)
        if ticks.is_multiple_of(EXPIRY_EVERY_TICKS) {
            broker.groups.expire_offsets();
        }
    }
}

/// Retention every `log.retention.check.interval.ms`, compaction every
/// `log.cleaner.backoff.ms`, producer expiration every
/// `producer.id.expiration.check.interval.ms`, on a blocking thread so request handling never
/// waits for them.
async fn log_maintenance(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let retention_every = Duration::from_millis(broker.config.retention_check_interval_ms().max(100));
    let cleaner_every = Duration::from_millis(broker.config.cleaner_backoff_ms().max(100));
    let expiry_every = Duration::from_millis(broker.config.producer_id_expiration_check_interval_ms().max(100));
    let producer_expiration_ms = broker.config.producer_id_expiration_ms();
    let tick = retention_every.min(cleaner_every).min(expiry_every);
    let (mut last_retention, mut last_cleaning) = (tokio::time::Instant::now(), tokio::time::Instant::now());
    let mut last_expiry = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.changed() => return,
        }
        let now = tokio::time::Instant::now();
        let retention = now - last_retention >= retention_every;
        let cleaning = broker.config.cleaner_enabled() && now - last_cleaning >= cleaner_every;
        if retention {
            last_retention = now;
        }
        if cleaning {
            last_cleaning = now;
        }
        let expiry = now - last_expiry >= expiry_every;
        if expiry {
            last_expiry = now;
        }
        if !retention && !cleaning && !expiry {
            continue;
        }
        let b = Arc::clone(&broker);
        let _ = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for p in b.all_partitions() {
                if expiry {
                    let n = p.expire_producers(now, producer_expiration_ms);
                    if n > 0 {
                        tracing::debug!("forgot {n} idle producer(s) of {}-{}", p.topic, p.index);
                    }
                }
                if retention {
                    match p.enforce_retention(now) {
                        Ok(0) => {}
                        Ok(n) => tracing::info!("retention deleted {n} segment(s) of {}-{}", p.topic, p.index),
                        Err(e) => tracing::error!("retention of {}-{}: {e}", p.topic, p.index),
                    }
                }
                if cleaning {
                    match p.compact(now) {
                        Ok(Some(s)) => tracing::info!(
                            "compacted {}-{}: {} -> {} records, {} -> {} bytes",
                            p.topic,
                            p.index,
                            s.records_before,
                            s.records_after,
                            s.bytes_before,
                            s.bytes_after
                        ),
                        Ok(None) => {}
                        Err(e) => tracing::error!("compaction of {}-{}: {e}", p.topic, p.index),
                    }
                }
            }
        })
        .await;
    }
}
