"""Cluster operations with real admin clients: a preferred-leader election (librdkafka), a
reassignment onto a broker-only node visible in ListPartitionReassignments while it is in
progress (kafka-python), DescribeQuorum (kafka-python), the CLI across nodes, and consumers
reading from the follower in their rack (KIP-392)."""

import json
import time

import pytest
from confluent_kafka import ElectionType, TopicPartition
from kafka import KafkaAdminClient
from kafka import TopicPartition as KTopicPartition

from cluster import FAST_FAILOVER, QUIET, make_cluster, wait_until  # noqa: F401 (fixture)
from history import ProducerHistory, check_history, leader_of, read_topic, wait_full_isr, wait_replicas_identical
from test_cluster import create_topic

FAST = FAST_FAILOVER


def leaders(cluster, topic):
    return {i: p.leader for i, p in cluster.running()[0].metadata().topics[topic].partitions.items()}


def move_leadership_away_and_back(cluster, topic):
    """Creates `topic` (3 partitions, RF 3), kills the preferred leader of partition 0 until
    leadership moved away, restarts it until it is in sync again; returns the preferred
    leaders."""
    create_topic(cluster.nodes[0], topic, 3, 3)
    wait_full_isr(cluster, topic, 3)
    preferred = {i: p.replicas[0] for i, p in cluster.nodes[0].metadata().topics[topic].partitions.items()}
    assert leaders(cluster, topic) == preferred
    victim = cluster.node(preferred[0])
    victim.kill()
    wait_until(lambda: leaders(cluster, topic)[0] not in (-1, victim.id), 20, "leadership to move away")
    victim.start()
    wait_full_isr(cluster, topic, 3)
    return preferred


@pytest.mark.timeout(120)
def test_preferred_leader_election_gives_leadership_back(make_cluster):
    # Automatic rebalancing off, so only the election gives leadership back.
    cluster = make_cluster(settings=FAST + ("auto.leader.rebalance.enable=false",))
    preferred = move_leadership_away_and_back(cluster, "pref")
    assert leaders(cluster, "pref")[0] != preferred[0], "nothing gave leadership back yet"
    admin = cluster.nodes[0].admin()
    results = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition("pref", 0)]).result(timeout=30)
    assert results[TopicPartition("pref", 0)] is None, results
    wait_until(lambda: leaders(cluster, "pref") == preferred, 20, "the preferred leaders")
    # Electing again is not needed.
    again = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition("pref", 0)]).result(timeout=30)
    assert again[TopicPartition("pref", 0)] is not None and "ELECTION_NOT_NEEDED" in str(again[TopicPartition("pref", 0)])


@pytest.mark.timeout(150)
def test_reassignment_onto_a_broker_only_node_is_listed_until_it_completes(make_cluster):
    cluster = make_cluster(voters=3, brokers=1, settings=FAST)
    from confluent_kafka.admin import NewTopic

    admin = cluster.nodes[0].admin()
    admin.create_topics([NewTopic("moving", num_partitions=1, replica_assignment=[[1, 2, 3]])], operation_timeout=15)["moving"].result(timeout=30)
    wait_full_isr(cluster, "moving", 3)
    history = ProducerHistory(cluster.bootstrap, "moving").start()
    history.wait_for_acks(500)
    history.stop()
    node4 = cluster.node(4)
    # The new replica cannot catch up until it is let back: cut off from the other nodes
    # (clients still reach it), or paused where isolation is impossible.
    if cluster.isolation_supported:
        cluster.isolate(node4)
    else:
        node4.stop()
    kadmin = KafkaAdminClient(bootstrap_servers=cluster.node(1).bootstrap)
    try:
        tp = KTopicPartition("moving", 0)
        accepted = kadmin.alter_partition_reassignments({tp: [1, 2, 4]})
        assert accepted.get(tp) is None, accepted
        ongoing = kadmin.list_partition_reassignments()
        state = ongoing[tp]
        assert (sorted(state["replicas"]), state["adding_replicas"], state["removing_replicas"]) == ([1, 2, 3, 4], [4], [3]), state
        if cluster.isolation_supported:
            cluster.heal()
        else:
            node4.cont()
        wait_until(lambda: not kadmin.list_partition_reassignments(), 30, "the reassignment to complete")
    finally:
        kadmin.close()
    p = cluster.node(1).metadata().topics["moving"].partitions[0]
    assert sorted(p.replicas) == [1, 2, 4] and sorted(p.isrs) == [1, 2, 4], (p.replicas, p.isrs)
    check_history(history, read_topic(cluster.bootstrap, "moving", 1))
    wait_replicas_identical(cluster, "moving", 1)
    # Node 3 no longer holds the partition: its copy goes.
    wait_until(lambda: not (cluster.node(3).data_dir / "moving-0").exists(), 20, "node 3 to drop its replica")


@pytest.mark.timeout(60)
def test_describe_quorum_names_the_leader_voters_and_observers(make_cluster):
    cluster = make_cluster(voters=3, brokers=1, settings=FAST)
    controller = cluster.controller()
    kadmin = KafkaAdminClient(bootstrap_servers=cluster.node(4).bootstrap)
    try:
        quorum = kadmin.describe_metadata_quorum()
    finally:
        kadmin.close()
    [topic] = quorum["topics"]
    assert topic["topic_name"] == "__cluster_metadata"
    [partition] = topic["partitions"]
    assert partition["error"] is None, partition
    assert partition["leader_id"] == controller.id
    assert partition["high_watermark"] > 0
    assert sorted(v["replica_id"] for v in partition["current_voters"]) == [1, 2, 3]
    assert [o["replica_id"] for o in partition["observers"]] == [4]
    # The voters are caught up with the leader; the observer follows too.
    assert all(v["log_end_offset"] > 0 for v in partition["current_voters"] + partition["observers"]), partition
    assert sorted(n["node_id"] for n in quorum["nodes"]) == [1, 2, 3]


@pytest.mark.timeout(120)
def test_auto_leader_rebalance_gives_leadership_back(make_cluster):
    cluster = make_cluster(settings=FAST + ("leader.imbalance.check.interval.seconds=1",))
    preferred = move_leadership_away_and_back(cluster, "auto")
    # No election asked for: the controller notices the imbalance (1 of 1 = 100% > 10%).
    wait_until(lambda: leaders(cluster, "auto") == preferred, 30, "the preferred leaders back")


@pytest.mark.timeout(120)
def test_cli_routes_to_leaders_and_coordinators_and_reports_cluster_status(make_cluster):
    import subprocess

    from conftest import NURT

    def nurt(*args, input=None):
        r = subprocess.run([str(NURT), *map(str, args)], input=input, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    cluster = make_cluster(settings=FAST)
    one, two = ("--bootstrap-server", cluster.node(1).bootstrap), ("--bootstrap-server", cluster.node(2).bootstrap)
    nurt("topic", "create", "cli", "--partitions", 3, "--replication-factor", 3, *one)
    wait_full_isr(cluster, "cli", 3)
    # Leaders are on every node, the CLI bootstraps from one: every partition's records go
    # to its leader.
    lines = "".join(f"k{i}:v{i}\n" for i in range(300))
    nurt("produce", "cli", "--key-separator", ":", *one, input=lines)
    got = nurt("consume", "cli", "--group", "cli-group", "--from-beginning", "--max-messages", 300, *two).splitlines()
    assert sorted(got) == sorted(f"v{i}" for i in range(300))
    described = nurt("group", "describe", "cli-group", *one)
    assert "cli" in described and " 0  " not in described.split("LAG")[0]
    assert "cli-group" in nurt("group", "list", *two)
    status = nurt("cluster", "status", *one)
    assert "under-replicated partitions: none" in status and "partitions without a leader: none" in status, status
    cluster.node(3).kill()
    wait_until(lambda: "FENCED" in nurt("cluster", "status", *one), 20, "node 3 reported fenced")
    status = nurt("cluster", "status", *one)
    assert "under-replicated partitions: 0" not in status and "cli-" in status, status


@pytest.mark.timeout(120)
def test_a_dead_brokers_unreplicated_partitions_wait_for_it_and_others_keep_serving(make_cluster):
    """A partition whose only replica is on a killed broker reports no leader (nothing else
    has its data: it is never handed to another broker); every other partition keeps
    serving; the broker returns and leads it again with its data."""
    from confluent_kafka.admin import NewTopic

    cluster = make_cluster(settings=FAST)
    admin = cluster.nodes[0].admin()
    admin.create_topics([NewTopic("alone", num_partitions=1, replica_assignment=[[3]])], operation_timeout=15)["alone"].result(timeout=30)
    create_topic(cluster.nodes[0], "others", 3, 1)
    cluster.wait_for_topic("alone")
    before = ProducerHistory(cluster.bootstrap, "alone")
    before.start()
    before.wait_for_acks(100)
    before.stop()
    cluster.node(3).kill()
    wait_until(lambda: cluster.node(1).metadata().topics["alone"].partitions[0].leader == -1, 20, "no leader for alone-0")
    # Partitions of the live brokers keep taking writes.
    t = cluster.node(1).metadata().topics["others"]
    live = [i for i, p in t.partitions.items() if p.leader in (1, 2)]
    assert live, t.partitions
    from confluent_kafka import Producer

    delivered = []
    p = Producer({"bootstrap.servers": cluster.node(1).bootstrap, "acks": "all", "message.timeout.ms": 10000, "logger": QUIET})
    for i in live:
        p.produce("others", value=b"still", partition=i, on_delivery=lambda err, msg: delivered.append(err))
    p.flush(15)
    assert delivered == [None] * len(live), delivered
    cluster.node(3).start()
    wait_until(lambda: cluster.node(1).metadata().topics["alone"].partitions[0].leader == 3, 20, "node 3 leading alone-0 again")
    check_history(before, read_topic(cluster.bootstrap, "alone", 1))


RACK_AWARE = "replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector"


def fetches_by_node(stats_json, into):
    """Fetch requests librdkafka sent to each broker, from one statistics callback."""
    stats = json.loads(stats_json)
    for b in stats["brokers"].values():
        if b["nodeid"] >= 0:
            into[b["nodeid"]] = b.get("req", {}).get("Fetch", 0)


@pytest.mark.timeout(120)
def test_a_consumer_reads_from_the_in_sync_follower_in_its_rack(make_cluster):
    """KIP-392 follower fetching: with the rack-aware replica selector, the leader answers a
    consumer that gives its client.rack with the in-sync follower in that rack
    (preferred_read_replica), and the consumer reads every record from that follower; a
    consumer without client.rack keeps reading from the leader."""
    from confluent_kafka import Consumer, Producer

    cluster = make_cluster(settings=FAST + (RACK_AWARE,), start=False)
    for n in cluster.nodes:
        n.settings.append(f"broker.rack=rack{n.id}")
    cluster.start()
    create_topic(cluster.nodes[0], "near", 1, 3)
    wait_full_isr(cluster, "near", 3)
    leader = leader_of(cluster, "near", 0).id
    follower = next(n.id for n in cluster.nodes if n.id != leader)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "logger": QUIET})
    for i in range(200):
        p.produce("near", value=f"r{i}".encode(), partition=0)
    assert p.flush(30) == 0

    def read_all(rack):
        fetches = {}
        conf = {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": f"near-{rack}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "statistics.interval.ms": 200,
            "stats_cb": lambda s: fetches_by_node(s, fetches),
            "logger": QUIET,
        }
        if rack:
            conf["client.rack"] = rack
        c = Consumer(conf)
        c.assign([TopicPartition("near", 0, 0)])
        values = []
        deadline = time.monotonic() + 30
        while len(values) < 200 and time.monotonic() < deadline:
            values += [m.value() for m in c.consume(100, 0.5) if m.error() is None]
        # One more statistics round after the last record.
        end = time.monotonic() + 1
        while time.monotonic() < end:
            c.poll(0.2)
        c.close()
        assert values == [f"r{i}".encode() for i in range(200)], len(values)
        return fetches

    near = read_all(f"rack{follower}")
    assert near.get(follower, 0) > 0, f"no fetch went to follower {follower} in the client's rack: {near}"
    plain = read_all(None)
    assert plain.get(leader, 0) > 0 and all(n == 0 for node, n in plain.items() if node != leader), plain
