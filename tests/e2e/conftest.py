"""End-to-end harness: starts the real `nurt` binary on a free loopback port with a fresh data
dir, and hands tests its bootstrap address. Clients are the real ones (librdkafka through
confluent-kafka, the Java client, kafka-python, kcat)."""

import os
import pathlib
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NURT = pathlib.Path(os.environ.get("NURT_BIN", ROOT / "target" / "debug" / "nurt"))
CACHE = ROOT / "tests" / "e2e" / ".cache"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nurt exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nurt did not listen on {port} within {timeout_s}s")


class Broker:
    """A running `nurt serve` process."""

    def __init__(self, data_dir, settings=()):
        self.data_dir = pathlib.Path(data_dir)
        self.settings = list(settings)
        self.port = free_port()
        self.proc = None
        # RLIMIT_NOFILE (soft and hard) for the process, when a test sets it.
        self.open_files_max = None
        # Port of the /metrics endpoint (--metrics-listen), when a test sets it.
        self.metrics_port = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        args = [str(NURT), "serve", "--data-dir", str(self.data_dir), "--listen", self.bootstrap]
        for s in self.settings:
            args += ["--set", s]
        if self.metrics_port:
            args += ["--metrics-listen", f"127.0.0.1:{self.metrics_port}"]
        self.log = open(self.log_path, "ab")
        limit = self.open_files_max
        preexec = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))) if limit else None
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=preexec)
        wait_for_port(self.port, self.proc)
        return self

    def stop(self):
        """Clean shutdown (SIGTERM); asserts it exits 0."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            assert self.proc.wait(timeout=30) == 0, self.logs()
        self.log.close()

    def kill(self):
        """Hard kill (SIGKILL): no flush, no clean-shutdown marker."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.log.close()

    def restart(self):
        self.stop()
        return self.start()

    def metrics(self):
        """The /metrics endpoint's samples as {name: value}."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            text = r.read().decode()
        return {line.split()[0]: int(line.split()[1]) for line in text.splitlines() if line and not line.startswith("#")}

    def logs(self):
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""


@pytest.fixture
def make_broker():
    """Factory for brokers with given `--set` settings; all are stopped at the end."""
    made = []
    tmp = tempfile.mkdtemp(prefix="nurt-e2e-")

    def make(*settings):
        b = Broker(pathlib.Path(tmp) / f"data{len(made)}", settings).start()
        made.append(b)
        return b

    yield make
    for b in made:
        if b.proc and b.proc.poll() is None:
            b.kill()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def broker(make_broker):
    return make_broker()


def pytest_report_header(config):
    return f"nurt binary: {NURT}"


# The Java client (ClientCheck.java, compiled once per session) for what only it does.
JAVA_SRC = pathlib.Path(__file__).parent / "java" / "ClientCheck.java"
JARS = CACHE / "jars"


@pytest.fixture(scope="session")
def java_classpath():
    jars = sorted(JARS.glob("*.jar"))
    if not any(j.name.startswith("kafka-clients") for j in jars):
        pytest.fail(f"Java client jars missing in {JARS}: run scripts/install-test-deps.sh")
    out = CACHE / "java-classes"
    out.mkdir(parents=True, exist_ok=True)
    classpath = ":".join(str(j) for j in jars)
    subprocess.run(["javac", "-cp", classpath, "-d", str(out), str(JAVA_SRC)], check=True)
    return f"{out}:{classpath}"


def java(classpath, *args):
    result = subprocess.run(["java", "-cp", classpath, "ClientCheck", *map(str, args)], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return [l for l in result.stdout.splitlines() if l.strip()]
