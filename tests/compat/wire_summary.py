"""Summarises a loopback capture of Kafka traffic to one broker port: for every client id
and (API key, version) it sent, how many requests there were and how many the broker
answered. A request with no answer (the broker closed the connection instead, which is how
Kafka and Nurt refuse a version they do not serve) is what breaks a client.

Uses tshark's Kafka dissector (PDML output, one <proto name="kafka"> per Kafka PDU, so
several PDUs in one TCP segment stay apart). If the capture holds an ApiVersions answer,
each line also shows the range the broker advertised for that key.

usage: wire_summary.py CAPTURE PORT [--json OUT]"""

import argparse
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict

API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 4: "LeaderAndIsr", 5: "StopReplica",
    6: "UpdateMetadata", 7: "ControlledShutdown", 8: "OffsetCommit", 9: "OffsetFetch",
    10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup",
    15: "DescribeGroups", 16: "ListGroups", 17: "SaslHandshake", 18: "ApiVersions",
    19: "CreateTopics", 20: "DeleteTopics", 21: "DeleteRecords", 22: "InitProducerId",
    23: "OffsetForLeaderEpoch", 24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn",
    27: "WriteTxnMarkers", 28: "TxnOffsetCommit", 29: "DescribeAcls", 30: "CreateAcls",
    31: "DeleteAcls", 32: "DescribeConfigs", 33: "AlterConfigs", 34: "AlterReplicaLogDirs",
    35: "DescribeLogDirs", 36: "SaslAuthenticate", 37: "CreatePartitions", 38: "CreateDelegationToken",
    39: "RenewDelegationToken", 40: "ExpireDelegationToken", 41: "DescribeDelegationToken",
    42: "DeleteGroups", 43: "ElectLeaders", 44: "IncrementalAlterConfigs",
    45: "AlterPartitionReassignments", 46: "ListPartitionReassignments", 47: "OffsetDelete",
    48: "DescribeClientQuotas", 49: "AlterClientQuotas", 50: "DescribeUserScramCredentials",
    51: "AlterUserScramCredentials", 60: "DescribeCluster", 61: "DescribeProducers",
    68: "ConsumerGroupHeartbeat", 69: "ConsumerGroupDescribe",
}


def fields(proto):
    """All (name, show) pairs under a PDML <proto>, depth first."""
    for f in proto.iter("field"):
        yield f.get("name"), f.get("show")


def scan(capture, port):
    """Returns ({(client id, key, version): {"sent", "answered", "first_frame"}}, {key: (min, max)})."""
    pdml = subprocess.run(
        ["tshark", "-r", capture, "-d", f"tcp.port=={port},kafka", "-T", "pdml", "-Y", "kafka"],
        check=True, capture_output=True, timeout=120,
    ).stdout
    sent = {}          # (tcp stream, correlation id) -> (client id, key, version, frame)
    answered = set()   # (tcp stream, correlation id) of every response
    advertised = {}
    for packet in ET.fromstring(pdml).iter("packet"):
        frame = stream = from_broker = None
        for proto in packet.iter("proto"):
            name = proto.get("name")
            if name == "frame":
                frame = next((int(s) for n, s in fields(proto) if n == "frame.number"), None)
            elif name == "tcp":
                tcp = dict(fields(proto))
                stream = int(tcp["tcp.stream"])
                from_broker = int(tcp["tcp.srcport"]) == port
            elif name == "kafka":
                f = defaultdict(list)
                for n, s in fields(proto):
                    f[n].append(s)
                if not f.get("kafka.correlation_id"):
                    continue
                conv = (stream, int(f["kafka.correlation_id"][0]))
                # Direction comes from the port, not from the dissector: Wireshark 4.0 cannot
                # decode newer versions (e.g. Produce v10), and then shows their answers as
                # "Request missing" with no response_key; the header still parses.
                if from_broker:
                    answered.add(conv)
                    if f.get("kafka.response_key", ["-1"])[0] == "18":
                        keys = f.get("kafka.api_versions.api_key", [])
                        mins = f.get("kafka.api_versions.min_version", [])
                        maxs = f.get("kafka.api_versions.max_version", [])
                        for k, lo, hi in zip(keys, mins, maxs):
                            advertised[int(k)] = (int(lo), int(hi))
                elif f.get("kafka.request_key"):
                    client = (f.get("kafka.client_id") or ["?"])[0]
                    sent[conv] = (client, int(f["kafka.request_key"][0]), int(f["kafka.request.version"][0]), frame)
    requests = defaultdict(lambda: {"sent": 0, "answered": 0, "first_frame": None})
    for conv, (client, key, version, frame) in sent.items():
        entry = requests[(client, key, version)]
        entry["sent"] += 1
        entry["answered"] += conv in answered
        entry["first_frame"] = min(entry["first_frame"] or frame, frame)
    return requests, advertised


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("capture")
    ap.add_argument("port", type=int)
    ap.add_argument("--json", help="also write the summary here")
    args = ap.parse_args()
    requests, advertised = scan(args.capture, args.port)
    rows = []
    for (client, key, version), e in sorted(requests.items()):
        adv = advertised.get(key)
        served = adv is not None and adv[0] <= version <= adv[1]
        verdict = "ok" if e["answered"] == e["sent"] else (
            "REFUSED (no answer)" if e["answered"] == 0 else f"{e['sent'] - e['answered']} UNANSWERED")
        rows.append({
            "client_id": client, "api_key": key, "api": API_NAMES.get(key, "?"), "version": version,
            "sent": e["sent"], "answered": e["answered"], "first_frame": e["first_frame"],
            "advertised": f"{adv[0]}-{adv[1]}" if adv else ("not advertised" if advertised else "unknown"),
            "within_advertised": served if advertised else None, "verdict": verdict,
        })
    for r in rows:
        print(f"  {r['client_id']:<20} {r['api']:<16} key {r['api_key']:>2} v{r['version']:<2}  sent {r['sent']:>4}  answered {r['answered']:>4}"
              f"  broker advertises {r['advertised']:<14} {r['verdict']}  (first in frame {r['first_frame']})")
    if not rows:
        print("  (no Kafka requests in the capture)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
