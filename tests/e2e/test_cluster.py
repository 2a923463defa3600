"""Cluster mode end to end: several real `nurt serve` processes form one cluster (a metadata
quorum of voters, and broker-only nodes that join through them), driven by real clients
(librdkafka through confluent-kafka and kcat, the Java client, kafka-python) while nodes are
SIGKILLed, SIGSTOPped and cut off from each other (harness: cluster.py)."""

import json
import subprocess

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType
from kafka.protocol.admin import DescribeConfigsRequest
from kafka.protocol.metadata import FindCoordinatorRequest

from cluster import QUIET, LoopbackNet, make_cluster, namespaces_available, wait_until  # noqa: F401 (fixture)
from conftest import CACHE
from conftest import JARS

# Short timeouts keep every test to seconds: an election within 0.5-1 s of losing the
# controller, heartbeats every 200 ms, fencing after 2 s without one.
FAST = (
    "controller.quorum.election.timeout.ms=500",
    "broker.heartbeat.interval.ms=200",
    "broker.session.timeout.ms=2000",
)

# The Java client's view, from Java code kept next to the test that uses it.
JAVA_CLUSTER_CHECK = r"""
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.serialization.*;

// describe BOOTSTRAP...                     per bootstrap: "cluster=ID controller=N nodes=1,2,3"
// consume BOOTSTRAP TOPIC COUNT DEADLINE_MS   assign every partition from the beginning; prints
//                                            "P O KEY VALUE" per record, sorted
public class ClusterCheck {
    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "describe": for (int i = 1; i < args.length; i++) describe(args[i]); break;
            case "consume": consume(args[1], args[2], Integer.parseInt(args[3]), Long.parseLong(args[4])); break;
            default: throw new IllegalArgumentException(args[0]);
        }
    }

    static void describe(String bootstrap) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 10000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 15000);
        try (Admin admin = Admin.create(p)) {
            DescribeClusterResult r = admin.describeCluster();
            List<Integer> ids = new ArrayList<>();
            for (Node n : r.nodes().get()) ids.add(n.id());
            Collections.sort(ids);
            StringBuilder sb = new StringBuilder();
            for (int id : ids) { if (sb.length() > 0) sb.append(','); sb.append(id); }
            Node controller = r.controller().get();
            System.out.println("cluster=" + r.clusterId().get() + " controller=" + (controller == null ? -1 : controller.id()) + " nodes=" + sb);
        }
    }

    static void consume(String bootstrap, String topic, int count, long deadlineMs) throws Exception {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        List<String> lines = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p)) {
            List<TopicPartition> parts = new ArrayList<>();
            for (PartitionInfo info : consumer.partitionsFor(topic)) parts.add(new TopicPartition(topic, info.partition()));
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            long deadline = System.currentTimeMillis() + deadlineMs;
            while (lines.size() < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    lines.add(r.partition() + " " + r.offset() + " " + r.key() + " " + r.value());
                }
            }
        }
        Collections.sort(lines);
        for (String l : lines) System.out.println(l);
    }
}
"""


@pytest.fixture(scope="session")
def cluster_java():
    """Compiles ClusterCheck against the Java client jars; returns a function that runs it."""
    jars = sorted(JARS.glob("*.jar"))
    if not any(j.name.startswith("kafka-clients") for j in jars):
        pytest.fail(f"Java client jars missing in {JARS}: run scripts/install-test-deps.sh")
    src = CACHE / "java-cluster-src" / "ClusterCheck.java"
    out = CACHE / "java-cluster-classes"
    src.parent.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    src.write_text(JAVA_CLUSTER_CHECK)
    classpath = ":".join(str(j) for j in jars)
    subprocess.run(["javac", "-cp", classpath, "-d", str(out), str(src)], check=True, timeout=120)

    def run(*args, timeout_s=60):
        result = subprocess.run(["java", "-cp", f"{out}:{classpath}", "ClusterCheck", *map(str, args)], capture_output=True, text=True, timeout=timeout_s)
        assert result.returncode == 0, result.stderr[-3000:]
        return [l for l in result.stdout.splitlines() if l.strip()]

    return run


def create_topic(node, name, partitions, replication_factor, config=None):
    """Creates a topic through `node` (librdkafka AdminClient bootstrapped from it only)."""
    admin = node.admin()  # kept referenced: a collected client fails its futures
    futures = admin.create_topics([NewTopic(name, partitions, replication_factor, config=config or {})], operation_timeout=15, request_timeout=20)
    futures[name].result(timeout=30)


def alter_topic_config(node, topic, key, value):
    """IncrementalAlterConfigs SET through `node` (librdkafka)."""
    entry = ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    admin = node.admin()
    for future in admin.incremental_alter_configs([resource], request_timeout=20).values():
        future.result(timeout=30)


def topic_config(node, topic, key):
    """`key` of `topic` as this very node describes it (DescribeConfigs sent to it)."""
    request = DescribeConfigsRequest(resources=[DescribeConfigsRequest.DescribeConfigsResource(resource_type=2, resource_name=topic, configuration_keys=[key])])
    (result,) = node.send(request).results
    return {c.name: c.value for c in result.configs}.get(key) if result.error_code == 0 else None


def produce_keyed(bootstrap, topic, count):
    """Produces `count` keyed records with librdkafka (acks=all, idempotent); returns
    {(partition, offset): (key, value)} of the acknowledged ones, failing on any error."""
    acked, errors = {}, []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[(msg.partition(), msg.offset())] = (msg.key().decode(), msg.value().decode())

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": 20000, "logger": QUIET})
    for i in range(count):
        producer.produce(topic, key=f"k{i % 100}", value=f"v{i}", on_delivery=on_delivery)
        producer.poll(0)
    unacknowledged = producer.flush(30)
    del producer  # a failing test's frames must not keep a client reconnecting after teardown
    assert unacknowledged == 0, "records still unacknowledged after 30 s"
    assert not errors, errors[:5]
    assert len(acked) == count
    return acked


def consume_all(bootstrap, topic, partitions, count, timeout_s=15):
    """Reads every partition of `topic` from the beginning with librdkafka (assigned, no
    group) until `count` records or `timeout_s`; returns {(partition, offset): (key, value)}."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "nurt-e2e-reader", "enable.auto.commit": False, "logger": QUIET})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records = {}

    def read_all():
        for m in consumer.consume(500, 0.2):
            if m.error() is None:
                records[(m.partition(), m.offset())] = (m.key().decode(), m.value().decode())
        return len(records) >= count

    try:
        wait_until(read_all, timeout_s, lambda: f"{count} records of {topic} (read {len(records)})", interval_s=0)
    finally:
        consumer.close()
    return records


def kcat_metadata(node):
    """`kcat -L -J` bootstrapped from `node`."""
    out = subprocess.run(["kcat", "-b", node.bootstrap, "-L", "-J", "-m", "10"], capture_output=True, text=True, check=True, timeout=30)
    return json.loads(out.stdout)


def test_isolation_cuts_links_between_nodes_only(make_cluster):
    """The harness's isolate() really cuts a node off from the other nodes in both directions
    (TCP connections between their namespaces time out) while the test's own namespace, where
    clients run, still reaches it; heal() restores the links."""
    if not namespaces_available():
        pytest.skip(LoopbackNet.reason)
    c = make_cluster(3, settings=FAST)
    one, two, three = c.nodes
    assert c.can_connect(one, two) and c.can_connect(two, one)
    c.isolate(one)
    assert not c.can_connect(one, two), "the isolated node still reaches another node"
    assert not c.can_connect(two, one), "another node still reaches the isolated node"
    assert not c.can_connect(three, one, port=one.port), "another node still reaches the isolated node's client port"
    assert c.can_connect(two, three), "isolating one node cut two others apart"
    assert c.can_connect(None, one) and c.can_connect(None, one, port=one.port), "clients lost the isolated node"
    c.heal()
    assert c.can_connect(one, two) and c.can_connect(two, one)


def test_three_voters_form_one_cluster(make_cluster, cluster_java):
    """Three voters form one cluster: kcat bootstrapped from each node sees the three brokers
    and the same controller, the Java Admin client sees the same, and every node reports one
    cluster id in DescribeCluster and Metadata."""
    c = make_cluster(3, settings=FAST)
    controller = c.wait_for_controller()
    assert controller in {1, 2, 3}

    for n in c.nodes:
        md = kcat_metadata(n)
        assert sorted(b["id"] for b in md["brokers"]) == [1, 2, 3], md
        assert md["controllerid"] == controller, md
        assert {b["name"] for b in md["brokers"]} == {m.bootstrap for m in c.nodes}, "brokers advertise their own client address"

    java = cluster_java("describe", *(n.bootstrap for n in c.nodes))
    assert len(java) == 3, java
    for line in java:
        fields = dict(f.split("=", 1) for f in line.split())
        assert fields["nodes"] == "1,2,3" and fields["controller"] == str(controller), line

    described = {n.id: n.describe_cluster() for n in c.nodes}
    for node_id, d in described.items():
        assert d["controller_id"] == controller, (node_id, d)
        assert sorted(b["broker_id"] for b in d["brokers"]) == [1, 2, 3], (node_id, d)
    cluster_ids = {node_id: d["cluster_id"] for node_id, d in described.items()}
    assert len(set(cluster_ids.values())) == 1, f"nodes report different cluster ids in DescribeCluster: {cluster_ids}"
    metadata_ids = {n.id: n.metadata().cluster_id for n in c.nodes}
    assert set(metadata_ids.values()) == set(cluster_ids.values()), f"Metadata cluster ids {metadata_ids} differ from DescribeCluster's {cluster_ids}"
    java_ids = {dict(f.split("=", 1) for f in line.split())["cluster"] for line in java}
    assert java_ids == set(cluster_ids.values()), f"the Java client saw cluster ids {java_ids}"


def test_replicated_topic_spreads_leaders_and_serves_any_bootstrap(make_cluster, cluster_java):
    """A topic of 6 partitions with replication factor 3 has leaders on all three nodes; a
    librdkafka producer bootstrapped from one node writes keyed records with acks=all, and a
    Java consumer bootstrapped from another node reads back every record at the offset it was
    acknowledged with."""
    c = make_cluster(3, settings=FAST)
    one, two, _ = c.nodes
    create_topic(one, "orders", 6, 3)
    topic = c.wait_for_topic("orders")
    assert len(topic.partitions) == 6
    assert {p.leader for p in topic.partitions.values()} == {1, 2, 3}, {p.id: p.leader for p in topic.partitions.values()}
    for p in topic.partitions.values():
        assert sorted(p.replicas) == [1, 2, 3], (p.id, p.replicas)

    count = 3000
    acked = produce_keyed(one.bootstrap, "orders", count)
    assert len({p for p, _ in acked}) == 6, "keys did not spread over the partitions"
    partitions_of_key = {}
    for (p, _), (k, _) in acked.items():
        partitions_of_key.setdefault(k, set()).add(p)
    assert all(len(ps) == 1 for ps in partitions_of_key.values()), "a key landed in two partitions"

    lines = cluster_java("consume", two.bootstrap, "orders", count, 30_000)
    consumed = {}
    for line in lines:
        p, o, k, v = line.split(" ")
        consumed[(int(p), int(o))] = (k, v)
    assert len(consumed) == count, f"the Java consumer read {len(consumed)} of {count} records"
    assert consumed == acked


def test_controller_sigkill_elects_another_and_the_node_rejoins(make_cluster):
    """SIGKILL of the active controller: another voter becomes controller within seconds and
    fences the dead node while the live ones stay live; topics can still be created and their
    configs altered (IncrementalAlterConfigs) through a surviving node; the killed node,
    restarted, rejoins and sees the new topic and config."""
    c = make_cluster(3, settings=FAST)
    old = c.controller()
    old.kill()
    survivors = c.running()
    new = c.wait_for_controller(via=survivors, exclude=[old], timeout_s=15)

    via = survivors[0]
    create_topic(via, "after-failover", 3, 2)
    alter_topic_config(via, "after-failover", "retention.ms", "3600000")
    c.wait_for_topic("after-failover", via=survivors)
    for n in survivors:
        wait_until(lambda n=n: topic_config(n, "after-failover", "retention.ms") == "3600000", 10, f"node {n.id} to see the altered config")
    c.wait_for_brokers([n.id for n in survivors], via=survivors, keep=survivors, timeout_s=10)

    old.start()
    c.wait_for_brokers([1, 2, 3], via=c.nodes, keep=survivors)
    assert c.wait_for_controller(via=c.nodes) == new, "the restarted node took the controller back or disagrees"
    c.wait_for_topic("after-failover", via=[old])
    wait_until(lambda: topic_config(old, "after-failover", "retention.ms") == "3600000", 10, "the restarted node to see the altered config")


def test_five_voters_keep_working_with_two_killed(make_cluster):
    """A quorum of five voters keeps taking metadata changes with two voters (the active
    controller among them) SIGKILLed: topics are created through the survivors, every
    survivor sees them, and once the dead are fenced every partition is placed on and led
    by live nodes."""
    c = make_cluster(5, settings=FAST)
    controller = c.controller()
    other = next(n for n in c.nodes if n is not controller)
    controller.kill()
    other.kill()
    survivors = c.running()
    assert len(survivors) == 3
    c.wait_for_controller(via=survivors, exclude=[controller, other], timeout_s=15)
    live = {n.id for n in survivors}
    c.wait_for_brokers(live, via=survivors, keep=survivors, timeout_s=10)
    for i, n in enumerate(survivors):
        create_topic(n, f"five-{i}", 3, 3)
    for i in range(len(survivors)):
        topic = c.wait_for_topic(f"five-{i}", via=survivors)
        for p in topic.partitions.values():
            assert set(p.replicas) == live, f"five-{i}-{p.id} placed on {p.replicas}, live brokers are {sorted(live)}"
            assert p.leader in live


@pytest.mark.parametrize("cut", ["isolate", "pause"])
def test_lost_controller_is_replaced_and_follows_after_return(make_cluster, cut):
    """The active controller lost to the other nodes, by network isolation (clients still
    reach it) or by SIGSTOP: the others elect a new controller within seconds, take metadata
    changes at once, and fence the lost node while staying live themselves; an isolated
    controller stops naming itself the controller (Kafka's leader resigns when it hears from
    no majority, KAFKA-15489). After heal() or SIGCONT the old controller follows the new
    one, is a live broker again and sees the changes."""
    c = make_cluster(3, settings=FAST)
    old = c.controller()
    others = [n for n in c.nodes if n is not old]
    if cut == "isolate":
        c.isolate(old)
    else:
        old.stop()
    new = c.wait_for_controller(via=others, exclude=[old], timeout_s=15)
    create_topic(others[0], "during-partition", 2, 2)
    alter_topic_config(others[1], "during-partition", "retention.ms", "7200000")
    c.wait_for_topic("during-partition", via=others)
    c.wait_for_brokers([n.id for n in others], via=others, keep=others, timeout_s=10)
    still_claims = None
    if cut == "isolate":
        assert "during-partition" not in old.metadata().topics, "the isolated node learned of a change it cannot have received"
        try:
            wait_until(lambda: old.metadata().controller_id != old.id, 10, f"isolated node {old.id} to stop naming itself the active controller")
        except AssertionError as e:
            still_claims = str(e)  # checked last: what follows matters more

    if cut == "isolate":
        c.heal()
    else:
        old.cont()
    assert c.wait_for_controller(via=c.nodes, timeout_s=15) == new
    c.wait_for_brokers([1, 2, 3], via=c.nodes, keep=others)
    c.wait_for_topic("during-partition", via=[old])
    wait_until(lambda: topic_config(old, "during-partition", "retention.ms") == "7200000", 10, "the returned node to see the altered config")
    assert still_claims is None, still_claims


def test_stopped_broker_is_fenced_then_comes_back(make_cluster):
    """SIGSTOP of a broker that is not the controller, for longer than
    broker.session.timeout.ms: it leaves Metadata's broker list (fenced) while the others stay,
    its leaderships move to live replicas, and DescribeCluster with fenced brokers marks it
    fenced; after SIGCONT it is listed again."""
    c = make_cluster(3, settings=FAST)
    controller = c.controller()
    victim = next(n for n in c.nodes if n is not controller)
    others = [n for n in c.nodes if n is not victim]
    create_topic(controller, "pausing", 6, 3)
    led = [p.id for p in c.wait_for_topic("pausing").partitions.values() if p.leader == victim.id]
    assert led, "the victim leads no partition"

    victim.stop()
    c.wait_for_brokers([n.id for n in others], via=others, keep=others, timeout_s=10)

    def moved():
        partitions = others[0].metadata().topics["pausing"].partitions
        return all(partitions[i].leader in {n.id for n in others} for i in led)

    wait_until(moved, 10, f"partitions {led} to move their leadership off the fenced broker")
    described = {b["broker_id"]: b["is_fenced"] for b in others[0].describe_cluster()["brokers"]}

    victim.cont()
    c.wait_for_brokers([1, 2, 3], via=c.nodes, keep=others, timeout_s=10)
    assert described == {**{n.id: False for n in others}, victim.id: True}, f"DescribeCluster (include_fenced_brokers) while {victim.id} was fenced: {described}"


def test_broker_only_node_joins_through_the_voters(make_cluster):
    """A node not in --voters joins as a broker only: every node lists four brokers, the
    controller is a voter, and a topic created through the broker-only node places replicas
    on it."""
    c = make_cluster(voters=3, brokers=1, settings=FAST)
    broker_only = c.node(4)
    controller = c.wait_for_controller()
    assert controller in {1, 2, 3}
    c.wait_for_brokers([1, 2, 3, 4], via=c.nodes)
    create_topic(broker_only, "four", 4, 2)
    topic = c.wait_for_topic("four", via=c.nodes)
    assert any(4 in p.replicas for p in topic.partitions.values())


def test_group_members_on_different_nodes_share_one_group(make_cluster):
    """A consumer group is one group whichever node its members bootstrap from: every node
    names the same coordinator for it (FindCoordinator), and two members bootstrapped from
    different nodes split the topic's partitions between them (each partition to exactly
    one), as in any Kafka cluster."""
    c = make_cluster(3, settings=FAST + ("group.initial.rebalance.delay.ms=0",))
    one, two, _ = c.nodes
    create_topic(one, "shared", 6, 3)
    c.wait_for_topic("shared")

    named = {}

    def one_coordinator():
        for n in c.nodes:
            (answer,) = n.send(FindCoordinatorRequest(key_type=0, coordinator_keys=["sharers"])).coordinators
            named[n.id] = answer.node_id if answer.error_code == 0 else f"error {answer.error_code}"
        return len(set(named.values())) == 1 and set(named.values()) <= {1, 2, 3}

    wait_until(one_coordinator, 5, lambda: f"every node to name the same coordinator for group sharers (node: coordinator named {named})")

    conf = {"group.id": "sharers", "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "auto.offset.reset": "earliest", "logger": QUIET}
    members = [Consumer({**conf, "bootstrap.servers": n.bootstrap}) for n in (one, two)]
    seen = {}
    try:
        for m in members:
            m.subscribe(["shared"])

        def split():
            for m in members:
                m.poll(0.1)
            a, b = ({tp.partition for tp in m.assignment()} for m in members)
            seen.update(one=sorted(a), two=sorted(b))
            return a and b and not a & b and len(a | b) == 6

        wait_until(split, 15, lambda: f"the two members to split 6 partitions between them (assigned: {seen})")
    finally:
        for m in members:
            m.close()


def test_every_node_stops_cleanly_and_the_cluster_comes_back(make_cluster):
    """SIGTERM to every node, one after the other and the controller last: each exits 0 within
    seconds, the last one too although no quorum is left to approve its controlled shutdown
    (Kafka gives up on it after broker.session.timeout.ms). Started again, the nodes elect a
    controller and every node has the topic and its config."""
    c = make_cluster(3, settings=FAST)
    create_topic(c.nodes[0], "durable", 3, 3, config={"retention.ms": "86400000"})
    c.wait_for_topic("durable")
    controller = c.controller()
    for n in [n for n in c.nodes if n is not controller] + [controller]:
        n.terminate(timeout_s=15)
    c.start()
    c.wait_for_controller()
    c.wait_for_topic("durable", via=c.nodes)
    for n in c.nodes:
        wait_until(lambda n=n: topic_config(n, "durable", "retention.ms") == "86400000", 10, f"node {n.id} to have the topic's config")


def test_rolling_restart_keeps_every_acknowledged_record(make_cluster):
    """Each node in turn, the controller last, stops cleanly (SIGTERM, exit 0) and starts
    again: the cluster keeps one controller and lists every broker again after each, and every
    record acknowledged before (acks=all, replication factor 3) is still read afterwards."""
    c = make_cluster(3, settings=FAST)
    create_topic(c.nodes[0], "rolling", 6, 3)
    c.wait_for_topic("rolling")
    acked = produce_keyed(c.nodes[0].bootstrap, "rolling", 600)
    controller = c.controller()
    for n in [n for n in c.nodes if n is not controller] + [controller]:
        n.restart()
        c.wait_for_brokers([1, 2, 3], via=c.nodes)
        c.wait_for_controller(via=c.nodes)
    c.wait_for_topic("rolling", via=c.nodes)
    consumed = consume_all(c.bootstrap, "rolling", 6, len(acked))
    lost = sorted(set(acked) - set(consumed))
    assert not lost, f"{len(lost)} acknowledged records lost by a rolling restart, e.g. (partition, offset) {lost[:5]}"
    assert consumed == acked
