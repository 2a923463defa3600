//! The machine and the processes under test: cores, CPU model, RSS and CPU time from /proc,
//! free ports, and servers started on loopback for the run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// "N cores, MODEL".
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    format!("{cores} cores, {model}, {} GiB RAM", mem_kib / (1024 * 1024))
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU time of `pid` in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// A free TCP port on loopback.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(free_ports(1)?[0])
}

/// `n` distinct free TCP ports on loopback: every listener stays bound until all are chosen,
/// so the kernel cannot hand out one port twice.
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok(listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()?)
}

/// Waits until `port` accepts connections.
pub fn wait_for_port(port: u16, child: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            bail!("server exited with {status} before listening");
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("server did not listen on {port} within 20 s")
}

/// A server process killed when dropped.
#[derive(Debug)]
pub struct Server {
    pub child: Child,
    pub port: u16,
    /// Its stderr (in the run's scratch directory).
    pub log: PathBuf,
}

impl Server {
    /// The lines of its log that are warnings or errors (tracing's and the peers' formats).
    fn complaints(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| [" WARN ", " ERROR ", "[WRN]", "[ERR]"].iter().any(|w| l.contains(w)))
            .map(str::to_string)
            .collect()
    }

    /// Prints the first of its log's warnings and errors, prefixed with `who`, to stderr;
    /// returns how many there were.
    pub fn show_complaints(&self, who: &str) -> usize {
        let lines = self.complaints();
        for line in lines.iter().take(10) {
            eprintln!("{who}: {line}");
        }
        lines.len()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program args..` (an `{port}` and `{dir}` in args are filled in) and waits for it.
pub fn start(name: &'static str, program: &str, args: &[&str], dir: &Path) -> anyhow::Result<Server> {
    let port = free_port()?;
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("{port}", &port.to_string())
                .replace("{dir}", &dir.display().to_string())
        })
        .collect();
    let mut server = spawn(name, program, &args, port, &dir.join(format!("{name}.log")))?;
    wait_for_port(port, &mut server.child)?;
    Ok(server)
}

/// Starts `program args..` with stderr to `log`, without waiting for it.
fn spawn(name: &str, program: &str, args: &[String], port: u16, log: &Path) -> anyhow::Result<Server> {
    let stderr = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| {
            format!("cannot start {name} ({program}): is it installed? (scripts/install-bench-deps.sh)")
        })?;
    Ok(Server {
        child,
        port,
        log: log.to_path_buf(),
    })
}

/// Starts `nodes` Nurt nodes on loopback that form one cluster (every node a voter of the
/// metadata quorum, data and log in `dir`) and waits until each listens for clients.
pub fn start_cluster(nurt: &str, nodes: usize, dir: &Path) -> anyhow::Result<Vec<Server>> {
    let ports = free_ports(2 * nodes)?;
    let (client, internal) = ports.split_at(nodes);
    let voters: Vec<String> = internal
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1))
        .collect();
    let voters = voters.join(",");
    // Every node is started before any is waited for: the voters need each other to elect a
    // controller, and a node joins only once there is one.
    let mut servers = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let id = (i + 1).to_string();
        let args: Vec<String> = [
            "serve",
            "--node-id",
            &id,
            "--data-dir",
            &dir.join(format!("nurt-node{id}")).display().to_string(),
            "--listen",
            &format!("127.0.0.1:{}", client[i]),
            "--controller-listen",
            &format!("127.0.0.1:{}", internal[i]),
            "--voters",
            &voters,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        servers.push(spawn(
            "nurt",
            nurt,
            &args,
            client[i],
            &dir.join(format!("nurt-node{id}.log")),
        )?);
    }
    for s in &mut servers {
        wait_for_port(s.port, &mut s.child)?;
    }
    Ok(servers)
}
