#!/usr/bin/env bash
# Installs what the end-to-end tests drive Nurt with: kcat (Debian), confluent-kafka
# (librdkafka), kafka-python and pytest (PyPI), and the Apache Kafka Java client 3.9 jars
# (taken from a PyPI wheel that bundles them; Java 17 itself must already be installed), and
# iproute2 (Debian) for the cluster tests' network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

if ! command -v kcat >/dev/null; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq kcat >/dev/null
fi
# Cluster tests put every node in its own network namespace (ip, tc) to cut links between
# nodes; without them those tests fall back to loopback and skip what needs isolation.
for tool in ip tc; do
  command -v "$tool" >/dev/null || { $SUDO apt-get update -qq; $SUDO apt-get install -y -qq iproute2 >/dev/null; break; }
done
for tool in java javac; do
  command -v "$tool" >/dev/null || { $SUDO apt-get update -qq; $SUDO apt-get install -y -qq openjdk-17-jdk-headless >/dev/null; break; }
done

python3 -m pip install -q --disable-pip-version-check -r tests/e2e/requirements.txt

# The fuzz targets run briefly with every test run (stable toolchain, no sanitizer).
command -v cargo-fuzz >/dev/null || cargo install -q cargo-fuzz --locked

JARS=tests/e2e/.cache/jars
if [ ! -f "$JARS/kafka-clients.jar" ]; then
  mkdir -p "$JARS"
  tmp=$(mktemp -d)
  python3 -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" "shigawire-apache-flink-libraries==2.0.0.post1"
  python3 - "$tmp" "$JARS" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
out = pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    for name in ["kafka-clients", "lz4-java", "slf4j-api", "snappy-java", "zstd-jni"]:
        (out / f"{name}.jar").write_bytes(z.read(f"pyflink/lib/{name}.jar"))
PY
  rm -rf "$tmp"
fi
