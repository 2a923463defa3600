#!/usr/bin/env bash
# Checks two widely packaged Debian Kafka tools against a real Nurt broker:
#   (a) sarama: Sarama 1.22 (golang-github-shopify-sarama-dev), through our Go program in
#       tests/compat/sarama: produce, a consumer group committing through Sarama's offset
#       manager, standalone offset-manager commits, ClusterAdmin DescribeConfigs & co.
#   (b) burrow: Burrow 1.2.1 (the `burrow` package), the consumer-lag monitor: a group is
#       left a known lag behind the log end and Burrow's HTTP API must report it, then
#       the group commits again while Burrow runs and the new lag must show too.
# Each part prints PASS or FAIL, and the (API key, version) of every request the tool sent
# with whether Nurt answered it (from a tshark capture on loopback), since the usual
# failure is a request version Nurt does not serve: it closes the connection, as Kafka does.
#
# usage: scripts/compat-debian-tools.sh [sarama] [burrow]     (default: both)
# env:   NURT_BIN    the broker binary (default target/debug/nurt; build it first)
#        COMPAT_OUT  where logs, captures and summaries go (default: a new /tmp dir; kept)
#        NURT_LOG    Nurt's log filter (default debug)
# Exits 0 only if every part run passed. Every wait has a deadline.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PARTS=("$@")
[ ${#PARTS[@]} -gt 0 ] || PARTS=(sarama burrow)
for part in "${PARTS[@]}"; do
  case "$part" in sarama|burrow) ;; *) echo "unknown part '$part' (sarama, burrow)" >&2; exit 2 ;; esac
done

NURT_BIN=${NURT_BIN:-target/debug/nurt}
case "$NURT_BIN" in /*) ;; *) NURT_BIN="$ROOT/$NURT_BIN" ;; esac
[ -x "$NURT_BIN" ] || { echo "no Nurt binary at $NURT_BIN (cargo build, or set NURT_BIN)" >&2; exit 2; }
OUT=${COMPAT_OUT:-$(mktemp -d /tmp/nurt-compat.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export NURT_LOG=${NURT_LOG:-debug}

log() { printf '\n== %s\n' "$*"; }

# ---------------------------------------------------------------- install
# Debian's own packages, so the versions tested are the ones Debian users run. ZooKeeper
# because Burrow 1.2.1 will not start without one; tshark to see what each tool sends.
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
APT_PKGS=(golang-go golang-github-shopify-sarama-dev burrow zookeeper tshark curl)
missing=()
for pkg in "${APT_PKGS[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  $SUDO apt-get update -qq
  # tshark asks whether non-root users may capture: answer no, without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { echo "apt-get install failed" >&2; exit 2; }
fi
# The Burrow part seeds its group with librdkafka, a client Nurt is known to serve.
python3 -c 'import confluent_kafka' 2>/dev/null \
  || python3 -m pip install -q --disable-pip-version-check "confluent-kafka==2.16.1"

# ---------------------------------------------------------------- processes
PIDS=()          # everything started here, stopped by PID on exit
stop_pid() {     # stop_pid PID: SIGTERM, up to 15 s, then SIGKILL
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
}
cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_port() {    # wait_port PORT PID SECONDS: until something listens, or fail if PID died
  local deadline=$((SECONDS + $3))
  while [ $SECONDS -lt $deadline ]; do
    kill -0 "$2" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# Captures run per part, so each summary holds only that tool's requests.
CAPTURE_PID=""
capture_start() {  # capture_start FILE
  CAPTURE_PID=""
  command -v tshark >/dev/null || { echo "(no tshark: no wire summary)"; return 0; }
  tshark -i lo -f "tcp port $NURT_PORT" -w "$1" -q >"$1.log" 2>&1 &
  CAPTURE_PID=$!
  PIDS+=("$CAPTURE_PID")
  local deadline=$((SECONDS + 15))
  until grep -q "Capturing on" "$1.log" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$CAPTURE_PID" 2>/dev/null; then
      echo "(tshark did not start capturing: $(tail -1 "$1.log"); no wire summary)"
      stop_pid "$CAPTURE_PID"; CAPTURE_PID=""; return 0
    fi
    sleep 0.1
  done
}
capture_stop() {   # capture_stop FILE TITLE: stop and print what each request got
  [ -n "$CAPTURE_PID" ] || return 0
  sleep 0.5  # let the last answers reach the capture
  kill -INT "$CAPTURE_PID" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$CAPTURE_PID" 2>/dev/null || break; sleep 0.1; done
  stop_pid "$CAPTURE_PID"
  echo "-- $2: requests on the wire (capture $1)"
  timeout 120 python3 tests/compat/wire_summary.py "$1" "$NURT_PORT" --json "${1%.pcap}.wire.json" \
    || echo "(wire summary failed)"
}

NURT_LOG_MARK=0
nurt_log_mark() { NURT_LOG_MARK=$(wc -l <"$OUT/nurt.log"); }
nurt_refusals() {  # Nurt's own word on what it refused since the mark, repeats collapsed
  echo "-- Nurt's refusals and surprises (log $OUT/nurt.log; it logs at most one refusal a second)"
  tail -n +"$((NURT_LOG_MARK + 1))" "$OUT/nurt.log" \
    | grep -E "closing connection from|unsupported|cannot (decode|encode)|auto-created topic __" \
    | sed -E 's/^[0-9TZ:.-]+ +//; s/from [0-9.]+:[0-9]+/from CLIENT/; s/ \([0-9]+ similar messages suppressed\)//' \
    | sort | uniq -c | sort -rn | sed 's/^/  /'
}

# ---------------------------------------------------------------- Nurt
NURT_PORT=$(free_port)
log "starting Nurt ($NURT_BIN) on 127.0.0.1:$NURT_PORT, NURT_LOG=$NURT_LOG, output in $OUT"
"$NURT_BIN" serve --data-dir "$OUT/nurt-data" --listen "127.0.0.1:$NURT_PORT" >"$OUT/nurt.log" 2>&1 &
NURT_PID=$!
PIDS+=("$NURT_PID")
wait_port "$NURT_PORT" "$NURT_PID" 30 || { echo "Nurt did not start:"; tail -20 "$OUT/nurt.log"; exit 1; }
BOOTSTRAP="127.0.0.1:$NURT_PORT"

declare -A RESULT

# ---------------------------------------------------------------- (a) Sarama
part_sarama() {
  log "(a) Sarama $(dpkg-query -W -f '${Version}' golang-github-shopify-sarama-dev)"
  # GOPATH mode against Debian's source tree: no module download. CGO_CFLAGS quiets a
  # deprecation warning in Debian's DataDog/zstd, which Sarama links.
  mkdir -p "$OUT/gopath"
  if ! (cd tests/compat/sarama && GOPATH="$OUT/gopath:/usr/share/gocode" GO111MODULE=off GOFLAGS="" \
        CGO_CFLAGS="-O2 -Wno-deprecated-declarations" timeout 600 go build -o "$OUT/sarama-compat" .); then
    echo "building the Sarama program failed"; return 1
  fi
  nurt_log_mark
  capture_start "$OUT/sarama.pcap"
  local rc=0
  timeout 300 "$OUT/sarama-compat" -brokers "$BOOTSTRAP" -kafka-version 2.2.0 -n 100 -v \
    -step-timeout 30s -timeout 240s >"$OUT/sarama.json" 2>"$OUT/sarama.log" || rc=$?
  capture_stop "$OUT/sarama.pcap" "Sarama"
  echo "-- Sarama program (exit $rc): step results"
  python3 - "$OUT/sarama.json" <<'PY' || cat "$OUT/sarama.json"
import json, sys
s = json.load(open(sys.argv[1]))
print(f"  produced {s['produced']}, consumed {s['consumed']}, committed {s['committed_offsets']}, log end {s['high_watermarks']}")
for name in s["step_order"]:
    st = s["steps"][name]
    print(f"  {'ok  ' if st['ok'] else 'FAIL'} {name}")
    for e in st.get("errors") or []:
        print(f"         {e}")
PY
  nurt_refusals
  return $rc
}

# ---------------------------------------------------------------- (b) Burrow
burrow_poll_lag() {  # burrow_poll_lag URL BURROW_PID EXPECTED: until totallag is EXPECTED (60 s)
  local body="" lag="" deadline=$((SECONDS + 60))
  echo "-- polling $1 for totallag $3 (60 s)"
  while [ $SECONDS -lt $deadline ]; do
    if ! kill -0 "$2" 2>/dev/null; then
      wait "$2"; echo "  Burrow exited early with status $?"; return 1
    fi
    body=$(curl -s --max-time 2 "$1" || true)
    lag=$(printf '%s' "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["totallag"])' 2>/dev/null || true)
    # Any other value (0 while Burrow lacks the log end, the previous lag) may still change.
    if [ "$lag" = "$3" ]; then
      echo "  Burrow reports totallag $lag after $((60 - deadline + SECONDS)) s"
      return 0
    fi
    sleep 1
  done
  echo "  Burrow did not report totallag $3 within 60 s; last answer: ${body:-<none>}" | cut -c1-600
  return 1
}

part_burrow() {
  log "(b) Burrow $(dpkg-query -W -f '${Version}' burrow)"
  local topic=burrow-compat group=burrow-compat-group records=10 commit1=4 commit2=7
  mkdir -p "$OUT/zookeeper/data" "$OUT/burrow"

  # A throwaway standalone ZooKeeper (Debian's jar), for Burrow's own bookkeeping only.
  local zk_port; zk_port=$(free_port)
  printf 'tickTime=2000\ndataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n' \
    "$OUT/zookeeper/data" "$zk_port" >"$OUT/zookeeper/zoo.cfg"
  java -Dzookeeper.admin.enableServer=false -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
    org.apache.zookeeper.server.ZooKeeperServerMain "$OUT/zookeeper/zoo.cfg" >"$OUT/zookeeper.log" 2>&1 &
  local zk_pid=$!
  PIDS+=("$zk_pid")
  wait_port "$zk_port" "$zk_pid" 60 || { echo "ZooKeeper did not start:"; tail -20 "$OUT/zookeeper.log"; return 1; }

  nurt_log_mark
  capture_start "$OUT/burrow.pcap"
  # Phase 1: a commit made before Burrow starts.
  echo "-- seeding: topic $topic, $records records, group $group committed at $commit1 (confluent-kafka)"
  local seed
  if ! seed=$(timeout 90 python3 tests/compat/burrow/seed_lag.py --bootstrap "$BOOTSTRAP" --topic "$topic" \
      --group "$group" --records "$records" --commit "$commit1" 2>"$OUT/seed.log"); then
    echo "seeding failed: $(tail -3 "$OUT/seed.log")"; capture_stop "$OUT/burrow.pcap" "seed"; return 1
  fi
  echo "  $seed"

  local http_port; http_port=$(free_port)
  sed -e "s|@PIDFILE@|$OUT/burrow/burrow.pid|" -e "s|@ZOOKEEPER@|127.0.0.1:$zk_port|" \
      -e "s|@KAFKA_VERSION@|2.1.0|" -e "s|@BROKER@|$BOOTSTRAP|g" -e "s|@HTTP@|127.0.0.1:$http_port|" \
      tests/compat/burrow/burrow.toml >"$OUT/burrow/burrow.toml"
  # Burrow's pid file: a stale one from an earlier run in the same dir would stop it.
  rm -f "$OUT/burrow/burrow.pid"
  Burrow --config-dir "$OUT/burrow" >"$OUT/burrow.log" 2>&1 &
  local burrow_pid=$!
  PIDS+=("$burrow_pid")

  local api="http://127.0.0.1:$http_port/v3/kafka/nurt"
  local rc=1
  if burrow_poll_lag "$api/consumer/$group/lag" "$burrow_pid" $((records - commit1)); then
    # Phase 2: a commit made while Burrow watches must show too (a monitor that only ever
    # sees the commits made before it started is no monitor).
    echo "-- committing $group at $commit2 while Burrow runs"
    if seed=$(timeout 60 python3 tests/compat/burrow/seed_lag.py --bootstrap "$BOOTSTRAP" --topic "$topic" \
        --group "$group" --records "$records" --commit "$commit2" --commit-only 2>>"$OUT/seed.log"); then
      echo "  $seed"
      burrow_poll_lag "$api/consumer/$group/lag" "$burrow_pid" $((records - commit2)) && rc=0
    else
      echo "second commit failed: $(tail -3 "$OUT/seed.log")"
    fi
  fi
  if [ $rc != 0 ]; then
    # Which half is missing: the log end offsets (cluster module) or the commits (consumer module)?
    for path in "" "/topic" "/topic/$topic" "/consumer"; do
      echo "  GET $api$path: $(curl -s --max-time 2 "$api$path" | head -c 300)"
    done
  fi
  stop_pid "$burrow_pid"
  capture_stop "$OUT/burrow.pcap" "seed (librdkafka) + Burrow"
  echo "-- what Burrow made of it (log $OUT/burrow.log)"
  python3 - "$OUT/burrow.log" "$group" <<'PY'
import collections, json, sys
group = sys.argv[2]
lines = []
for raw in open(sys.argv[1]):
    try:
        lines.append(json.loads(raw))
    except ValueError:
        pass
def show(title, match, keys):
    hits = collections.Counter(tuple(str(l.get(k, "")) for k in keys) for l in lines if match(l))
    print(f"  {title}: {sum(hits.values())}")
    for vals, n in hits.most_common(5):
        print("     " + ", ".join(f"{k}={v}" for k, v in zip(keys, vals)) + (f"  (x{n})" if n > 1 else ""))
# Cluster module: log end offsets, one ListOffsets per refresh.
show("errors fetching log end offsets (cluster module)",
     lambda l: l.get("msg") == "failed to fetch offsets from broker", ["sarama_error"])
# Consumer module: commits decoded from __consumer_offsets, then handed to storage.
show(f"commits of {group} decoded from __consumer_offsets (consumer module)",
     lambda l: l.get("msg") == "consumer offset" and l.get("group") == group, ["topic", "partition", "offset"])
show(f"commits of {group} dropped by storage",
     lambda l: l.get("msg") == "dropped" and l.get("consumer") == group, ["topic", "reason"])
show("other errors and warnings",
     lambda l: l.get("level") in ("error", "warn", "panic", "fatal")
     and l.get("msg") not in ("failed to fetch offsets from broker", "unknown consumer"),
     ["level", "msg", "error"])
PY
  nurt_refusals
  return $rc
}

for part in "${PARTS[@]}"; do
  if "part_$part"; then RESULT[$part]=PASS; else RESULT[$part]=FAIL; fi
done

log "results (logs, captures and summaries in $OUT)"
status=0
for part in "${PARTS[@]}"; do
  echo "  ${RESULT[$part]}  $part"
  [ "${RESULT[$part]}" = PASS ] || status=1
done
exit $status
