"""Cluster harness: starts N real `nurt serve` processes that form one cluster, and gives
tests the means to hurt them: SIGKILL, SIGSTOP/SIGCONT, clean restarts, and network
isolation of one node from the others while the test's clients can still reach it.

Networking. When we can create network namespaces (root, `ip netns`), every node runs in its
own namespace with its own address on a private bridge in the root namespace, where the
test's clients run:

    root namespace:  bridge nb<tag>, 10.213.S.1/24   (clients connect from here)
    node i:          namespace nurt-e2e-<pid>-<tag>-<i>, eth0 = 10.213.S.(10+i)/24
                     (veth pair; host side nv<tag><i> on the bridge)
                     clients on 10.213.S.(10+i):9092, internal listener on :9093

`isolate(node)` drops, inside the node's namespace, every IPv4 packet to or from the other
nodes' addresses (tc clsact filters on eth0: u32 matches whose action redirects the packet to a
sink device that is down, which drops it; tc's plain `drop` needs the `gact` action, which
not every kernel has: this one has only `mirred`). The root
namespace stays reachable, so clients still talk to the isolated node; packets between the
nodes vanish silently, as on a real partition (no RST, no ICMP). `heal()` removes the
filters. Names carry a random tag, so parallel runs and leftovers never collide; everything
is removed on close, and leftovers of dead test runs (their owner pid is in the namespace
names and the links' alias) are swept when the next cluster starts.

Without namespaces (not root, or NURT_E2E_NETNS=0) the nodes run on 127.0.0.1 with free
ports, and `isolate` skips the test with the reason.

Every node's process gets SIGKILL if the test process dies (`setpriv --pdeathsig`), so no
`nurt` outlives a killed test run. Every wait has a deadline. A failing test's report carries
the end of every node's log; NURT_E2E_KEEP=1 keeps a failed test's data dirs and whole logs."""

import collections
import contextlib
import functools
import json
import logging
import os
import pathlib
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient
from kafka.protocol.admin import DescribeClusterRequest

from conftest import NURT, free_port

CLIENT_PORT = 9092
INTERNAL_PORT = 9093
NETNS_PREFIX = "nurt-e2e-"
LINK_ALIAS = "nurt-e2e owner="
SUBNET_PREFIX = "10.213."
# Settings for fault tests: failures noticed within seconds (fencing after 2 s without
# heartbeats, ISR shrink after 3 s without catching up, elections after 0.5–1 s).
FAST_FAILOVER = (
    "broker.session.timeout.ms=2000",
    "broker.heartbeat.interval.ms=200",
    "controller.quorum.election.timeout.ms=500",
    "replica.lag.time.max.ms=3000",
    "replica.fetch.backoff.ms=200",
)
# librdkafka logs every refused connection to a killed node; keep it out of the test output.
QUIET = logging.getLogger("nurt-e2e-rdkafka")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


def wait_until(predicate, timeout_s, what, interval_s=0.1):
    """Polls `predicate` until it returns something truthy (which is returned) or `timeout_s`
    passes; then fails with `what` (a string, or a function giving one, called then), the last
    value and the last exception. Exceptions count as
    "not yet" (a probe may fail while the cluster settles), except AssertionError: a probe
    raises it for what must never happen, and it fails the wait at once."""
    deadline = time.monotonic() + timeout_s
    last, error = None, None
    while True:
        try:
            last = predicate()
            error = None
            if last:
                return last
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001
            # Only its text: the exception's frames would keep the probe's clients alive,
            # reconnecting to addresses long gone.
            error = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            what = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last value: {last!r}, last error: {error})")
        time.sleep(interval_s)


def run(*args, check=True, timeout=10):
    """Runs a command (ip, tc); raises with its output when it fails and `check`."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.lru_cache(maxsize=1)
def namespaces_available():
    """Whether this process may create network namespaces (and has the tools to);
    NURT_E2E_NETNS=0 says not to try (the loopback fallback)."""
    if os.environ.get("NURT_E2E_NETNS") == "0":
        return False
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"):
        return False
    probe = f"{NETNS_PREFIX}probe-{os.getpid()}"
    try:
        if run("ip", "netns", "add", probe, check=False).returncode != 0:
            return False
        run("ip", "netns", "del", probe, check=False)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def sweep_leftovers():
    """Removes namespaces and bridges left by test runs whose process is gone (a SIGKILLed
    pytest cannot clean up); its nurt processes died with it (pdeathsig)."""
    for line in run("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"{NETNS_PREFIX}(\d+)-", name)
        if m and not pid_alive(int(m.group(1))):
            _delete_namespace(name)
    for link in json.loads(run("ip", "-j", "link", "show", check=False).stdout or "[]"):
        alias = link.get("ifalias", "")
        if alias.startswith(LINK_ALIAS) and not pid_alive(int(alias[len(LINK_ALIAS):].split()[0])):
            run("ip", "link", "del", link["ifname"], check=False)


def _delete_namespace(name):
    """Kills what still runs in namespace `name` (only our nurt nodes ever run there), then
    deletes its name."""
    for pid in run("ip", "netns", "pids", name, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    run("ip", "netns", "del", name, check=False)


class NamespaceNet:
    """A bridge in the root namespace and one namespace per node (see the module docstring)."""

    isolation_supported = True

    def __init__(self):
        sweep_leftovers()
        self.tag = secrets.token_hex(3)
        self.owner = os.getpid()
        self.subnet = self._free_subnet()
        self.bridge = f"nb{self.tag}"
        self.namespaces = {}
        self.veths = []
        self.cut_nodes = set()
        try:
            run("ip", "link", "add", self.bridge, "type", "bridge")
            run("ip", "link", "set", "dev", self.bridge, "alias", f"{LINK_ALIAS}{self.owner}")
            run("ip", "addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
            run("ip", "link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _free_subnet():
        used = run("ip", "-4", "-o", "addr", "show", check=False).stdout + run("ip", "-4", "route", "show", check=False).stdout
        candidates = [s for s in range(1, 255) if f"{SUBNET_PREFIX}{s}." not in used]
        if not candidates:
            raise RuntimeError(f"no free {SUBNET_PREFIX}X.0/24 subnet")
        return f"{SUBNET_PREFIX}{random.choice(candidates)}"

    def address(self, node_id):
        return f"{self.subnet}.{10 + node_id}"

    def namespace(self, node_id):
        return f"{NETNS_PREFIX}{self.owner}-{self.tag}-{node_id}"

    def add_node(self, node_id):
        """Creates node `node_id`'s namespace, wired to the bridge; returns its address."""
        ns, host_side = self.namespace(node_id), f"nv{self.tag}{node_id}"
        run("ip", "netns", "add", ns)
        self.namespaces[node_id] = ns
        run("ip", "link", "add", host_side, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.veths.append(host_side)
        run("ip", "link", "set", "dev", host_side, "alias", f"{LINK_ALIAS}{self.owner}")
        run("ip", "link", "set", host_side, "master", self.bridge, "up")
        run("ip", "-n", ns, "addr", "add", f"{self.address(node_id)}/24", "dev", "eth0")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        # The sink: an ifb device left down; tc redirects dropped packets to it.
        run("ip", "-n", ns, "link", "add", "sink", "type", "ifb")
        return self.address(node_id)

    def wrap(self, node_id, args):
        """The command that runs `args` inside node `node_id`'s namespace."""
        return ["ip", "netns", "exec", self.namespaces[node_id], *args]

    def cut(self, node_id, peer_ids):
        """Drops every IPv4 packet between node `node_id` and `peer_ids`, both directions."""
        ns = self.namespaces[node_id]
        tc = ["ip", "netns", "exec", ns, "tc"]
        if node_id not in self.cut_nodes:
            run(*tc, "qdisc", "add", "dev", "eth0", "clsact")
            self.cut_nodes.add(node_id)
        for peer in peer_ids:
            ip = self.address(peer)
            drop = ["action", "mirred", "egress", "redirect", "dev", "sink"]
            run(*tc, "filter", "add", "dev", "eth0", "egress", "protocol", "ip", "prio", "1", "u32", "match", "ip", "dst", f"{ip}/32", *drop)
            run(*tc, "filter", "add", "dev", "eth0", "ingress", "protocol", "ip", "prio", "1", "u32", "match", "ip", "src", f"{ip}/32", *drop)

    def heal(self):
        for node_id in sorted(self.cut_nodes):
            run("ip", "netns", "exec", self.namespaces[node_id], "tc", "qdisc", "del", "dev", "eth0", "clsact", check=False)
        self.cut_nodes.clear()

    def can_connect(self, from_id, host, port, timeout_s=1.0):
        """Whether a TCP connection from inside node `from_id`'s namespace (None: the root
        namespace, where clients run) to `host:port` completes within `timeout_s`."""
        probe = (
            "import socket, sys\n"
            "try:\n"
            f"    socket.create_connection(({host!r}, {port}), timeout={timeout_s}).close()\n"
            "except OSError:\n"
            "    sys.exit(1)\n"
        )
        args = [sys.executable, "-c", probe]
        if from_id is not None:
            args = self.wrap(from_id, args)
        return subprocess.run(args, capture_output=True, timeout=timeout_s + 10).returncode == 0

    def close(self):
        self.heal()
        for ns in self.namespaces.values():
            _delete_namespace(ns)
        # Deleting the namespace's name does not free it while orphaned TCP sockets still
        # retransmit in it; deleting our end of each veth pair removes both ends now.
        for veth in self.veths:
            run("ip", "link", "del", veth, check=False)
        run("ip", "link", "del", self.bridge, check=False)


class LoopbackNet:
    """Fallback without namespaces: every node on 127.0.0.1 with free ports; no isolation."""

    isolation_supported = False
    reason = "network namespaces are unavailable (tests must run as root with iproute2): cannot isolate nodes on loopback"

    def __init__(self):
        self.ports = {}

    def add_node(self, node_id):
        self.ports[node_id] = (free_port(), free_port())
        return "127.0.0.1"

    def wrap(self, node_id, args):
        return args

    def cut(self, node_id, peer_ids):
        pytest.skip(self.reason)

    def heal(self):
        pass

    def can_connect(self, from_id, host, port, timeout_s=1.0):
        pytest.skip(self.reason)

    def close(self):
        pass


class Node:
    """One `nurt serve` process of a cluster, with its data dir and log (kept across restarts)."""

    def __init__(self, cluster, node_id, voter):
        self.cluster = cluster
        self.id = node_id
        self.voter = voter
        self.host = cluster.net.add_node(node_id)
        ports = getattr(cluster.net, "ports", {}).get(node_id)
        self.port, self.internal_port = ports or (CLIENT_PORT, INTERNAL_PORT)
        self.data_dir = cluster.dir / f"node{node_id}"
        self.log_path = cluster.dir / f"node{node_id}.log"
        self.settings = list(cluster.settings)
        self.proc = None
        self.paused = False

    def __repr__(self):
        return f"Node({self.id}{', voter' if self.voter else ''}, {self.bootstrap})"

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    @property
    def internal(self):
        return f"{self.host}:{self.internal_port}"

    @property
    def running(self):
        """Started and not exited (a SIGSTOPped node is still running)."""
        return self.proc is not None and self.proc.poll() is None

    def args(self):
        args = [str(NURT), "serve", "--node-id", str(self.id), "--data-dir", str(self.data_dir), "--listen", self.bootstrap, "--controller-listen", self.internal, "--voters", self.cluster.voters_flag]
        for s in self.settings:
            args += ["--set", s]
        return args

    def spawn(self):
        """Starts the process without waiting for it to be ready."""
        assert not self.running, f"node {self.id} is already running"
        self._ready_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        args = self.cluster.net.wrap(self.id, self.args())
        if shutil.which("setpriv"):
            args = ["setpriv", "--pdeathsig", "KILL", *args]
        with open(self.log_path, "ab") as log:
            log.write(f"==== harness: starting node {self.id}: {' '.join(args)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.paused = False

    def wait_ready(self, timeout_s=30):
        """Waits for this start's "ready in N ms" log line: the node joined the cluster and
        serves clients (its client port is bound, and accepts TCP, before it has joined)."""

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"node {self.id} exited with {self.proc.returncode} before it was ready:\n{self.logs(3000)}")
            with open(self.log_path, "rb") as f:
                f.seek(self._ready_from)
                return b" ready in " in f.read()

        try:
            wait_until(ready, timeout_s, f"node {self.id} to be ready", interval_s=0.05)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.logs(3000)}") from None
        return self

    def start(self, timeout_s=30):
        """Starts the process and waits until it has joined and serves clients."""
        self.spawn()
        return self.wait_ready(timeout_s)

    def kill(self):
        """SIGKILL: no flush, no clean-shutdown marker, no controlled shutdown."""
        if self.running:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.paused = False

    def stop(self):
        """SIGSTOP: the process freezes with its sockets open (a GC pause, a hung host)."""
        assert self.running, f"node {self.id} is not running"
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def cont(self):
        """SIGCONT after stop()."""
        assert self.running, f"node {self.id} is not running"
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def terminate(self, timeout_s=30):
        """Clean shutdown (SIGTERM); asserts the process exits 0 within `timeout_s`."""
        if not self.running:
            return
        if self.paused:
            self.cont()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            raise AssertionError(f"node {self.id} did not exit within {timeout_s}s of SIGTERM:\n{self.logs(3000)}") from None
        assert code == 0, f"node {self.id} exited with {code} after SIGTERM:\n{self.logs(3000)}"

    def restart(self, timeout_s=30):
        """Clean shutdown (asserting exit 0), then start again on the same data dir."""
        self.terminate()
        return self.start(timeout_s)

    def logs(self, max_chars=15_000):
        """The end of this node's log (all its starts), lines that repeat a recent one left out
        (a node cut off from a peer logs the same warning many times a second)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        out, recent, repeats = [], collections.OrderedDict(), 0
        for line in text.splitlines():
            # "2026-11-30T09:36:25.148164Z  WARN ...": compare what follows the timestamp.
            key = line[28:] if line[:2] == "20" else line
            if key in recent:
                recent.move_to_end(key)
                repeats += 1
                continue
            if repeats:
                out.append(f"[{repeats} line(s) repeating recent ones left out]")
                repeats = 0
            recent[key] = None
            if len(recent) > 64:
                recent.popitem(last=False)
            out.append(line)
        if repeats:
            out.append(f"[{repeats} line(s) repeating recent ones left out]")
        text = "\n".join(out)
        return text if len(text) <= max_chars else f"[... {len(text) - max_chars} chars before]\n" + text[-max_chars:]

    def admin(self, **conf):
        """A librdkafka AdminClient bootstrapped from this node only."""
        return AdminClient({"bootstrap.servers": self.bootstrap, "logger": QUIET, "socket.connection.setup.timeout.ms": 3000, **conf})

    def metadata(self, timeout_s=5):
        """Metadata as this very node answers it (librdkafka). A client may send Metadata to
        any broker it has learned of, so this asks with fresh clients bootstrapped from this
        node until the answer comes from it (by address: the bootstrap connection answers as
        broker -1)."""

        def ask():
            md = Producer({"bootstrap.servers": self.bootstrap, "logger": QUIET}).list_topics(timeout=timeout_s)
            return md if md.orig_broker_name.split("/")[0] == self.bootstrap else None

        return wait_until(ask, timeout_s, f"Metadata answered by node {self.id}", interval_s=0.01)

    def send(self, request, timeout_s=10):
        """Sends one kafka-python protocol request to this very node (kafka-python's client
        routes by node id; its public admin API picks a broker itself) and returns the
        response."""
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=int(timeout_s * 1000))
        try:
            manager = admin._manager

            async def send():
                return await manager.send(request, node_id=self.id)

            return manager.run(send)
        finally:
            admin.close()

    def describe_cluster(self):
        """DescribeCluster (including fenced brokers) as this node answers it, as a dict."""
        return self.send(DescribeClusterRequest(include_cluster_authorized_operations=False, include_fenced_brokers=True)).to_dict()


class Cluster:
    """N nodes: the first `voters` are controller+broker (the metadata quorum), the rest are
    broker-only nodes that join through them."""

    def __init__(self, base_dir, voters=3, brokers=0, settings=()):
        self.dir = pathlib.Path(base_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.settings = list(settings)
        self.net = NamespaceNet() if namespaces_available() else LoopbackNet()
        self.nodes = []
        try:
            self.nodes = [Node(self, i, i <= voters) for i in range(1, voters + brokers + 1)]
        except BaseException:
            self.net.close()
            raise
        self.voters_flag = ",".join(f"{n.id}@{n.internal}" for n in self.nodes if n.voter)

    def __repr__(self):
        return f"Cluster({self.nodes})"

    def node(self, node_id):
        return next(n for n in self.nodes if n.id == node_id)

    @property
    def bootstrap(self):
        """Every node's client address (comma-separated), for clients that may use any."""
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def isolation_supported(self):
        return self.net.isolation_supported

    def start(self, timeout_s=30):
        """Starts every node at once (voters need each other to elect a controller) and
        waits until each has joined."""
        for n in self.nodes:
            n.spawn()
        for n in self.nodes:
            n.wait_ready(timeout_s)
        return self

    def running(self, exclude=()):
        """Nodes whose process runs and is not stopped."""
        excluded = {getattr(n, "id", n) for n in exclude}
        return [n for n in self.nodes if n.running and not n.paused and n.id not in excluded]

    def controller_id(self, via=None, timeout_s=5):
        """The active controller's id as a node reports it in Metadata (librdkafka), -1 for
        none; `via`: the node to ask (default: the first running one)."""
        via = via or self.running()[0]
        return via.metadata(timeout_s).controller_id

    def wait_for_controller(self, via=None, exclude=(), timeout_s=15):
        """Waits until every node of `via` (default: every running node) reports the same
        active controller, not one of `exclude`; returns its id."""
        via = list(via) if via is not None else self.running()
        excluded = {getattr(n, "id", n) for n in exclude}

        def agreed():
            ids = {self.controller_id(n) for n in via}
            if len(ids) != 1:
                return None
            (cid,) = ids
            return cid if cid >= 0 and cid not in excluded else None

        return wait_until(agreed, timeout_s, f"nodes {[n.id for n in via]} to agree on an active controller not in {sorted(excluded)}")

    def controller(self, **kw):
        """The node that is the active controller (waiting for agreement)."""
        return self.node(self.wait_for_controller(**kw))

    def wait_for_brokers(self, expected_ids, via=None, keep=(), timeout_s=15):
        """Waits until every node of `via` (default: every running node) lists exactly
        `expected_ids` as brokers in Metadata (the live, unfenced ones). Brokers in `keep`
        must be listed at every look: one missing fails at once (a live broker was fenced)."""
        via = list(via) if via is not None else self.running()
        expected, keep = set(expected_ids), {getattr(n, "id", n) for n in keep}

        def listed():
            views = {n.id: set(n.metadata().brokers) for n in via}
            for node_id, brokers in views.items():
                assert keep <= brokers, f"node {node_id} lists brokers {sorted(brokers)}: live broker(s) {sorted(keep - brokers)} were fenced"
            return all(b == expected for b in views.values())

        wait_until(listed, timeout_s, f"nodes {[n.id for n in via]} to list brokers {sorted(expected)}")

    def wait_for_topic(self, topic, via=None, timeout_s=15):
        """Waits until every node of `via` has `topic` in its metadata, each partition with a
        leader; returns the last node's TopicMetadata."""
        via = list(via) if via is not None else self.running()

        def seen():
            last = None
            for n in via:
                t = n.metadata().topics.get(topic)
                if t is None or t.error is not None or not t.partitions or any(p.leader < 0 for p in t.partitions.values()):
                    return None
                last = t
            return last

        return wait_until(seen, timeout_s, f"nodes {[n.id for n in via]} to see topic {topic} with leaders")

    def isolate(self, node):
        """Cuts `node` off from every other node, both directions; clients still reach it.
        Skips the test where isolation is impossible (no network namespaces)."""
        self.net.cut(node.id, [n.id for n in self.nodes if n.id != node.id])

    def heal(self):
        """Restores every link cut by isolate()."""
        self.net.heal()

    def can_connect(self, from_node, to_node, port=None):
        """Whether `from_node` (None: the test's own namespace) can open a TCP connection to
        `to_node`'s internal listener (or `port`)."""
        return self.net.can_connect(from_node.id if from_node else None, to_node.host, port or to_node.internal_port)

    def close(self):
        """SIGKILLs whatever still runs (after SIGCONT) and removes the network."""
        for n in self.nodes:
            if n.running:
                n.kill()
        self.net.close()


class LogsOnFailure:
    """A pytest plugin: a failing test's report gets every node's log as a section."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        clusters = getattr(item, "nurt_clusters", [])
        if report.failed and clusters:
            item.nurt_failed = True
            for c in clusters:
                for n in c.nodes:
                    kept = f"whole log: {n.log_path}" if os.environ.get("NURT_E2E_KEEP") == "1" else "NURT_E2E_KEEP=1 keeps the whole log"
                    report.sections.append((f"nurt node {n.id} log ({kept})", n.logs()))


@pytest.fixture
def make_cluster(request):
    """Factory: make_cluster(voters=3, brokers=0, settings=(...)) starts a cluster and waits
    until every node has joined. At the end every node is killed and the network removed; the
    data dirs and logs are removed too, unless the test failed and NURT_E2E_KEEP=1."""
    plugins = request.config.pluginmanager
    if not plugins.has_plugin("nurt-cluster-logs"):
        plugins.register(LogsOnFailure(), "nurt-cluster-logs")
    made = []
    request.node.nurt_clusters = made
    tmp = tempfile.mkdtemp(prefix="nurt-cluster-")

    def make(voters=3, brokers=0, settings=(), start=True):
        c = Cluster(pathlib.Path(tmp) / f"cluster{len(made)}", voters, brokers, settings)
        made.append(c)
        return c.start() if start else c

    yield make
    for c in made:
        c.close()
    if getattr(request.node, "nurt_failed", False) and os.environ.get("NURT_E2E_KEEP") == "1":
        print(f"\nnurt cluster data dirs and logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
