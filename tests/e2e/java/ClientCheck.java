// Drives Nurt with the Apache Kafka Java client (kafka-clients 3.9). Modes:
//   admin-create BOOTSTRAP TOPIC PARTITIONS   create, then describe; prints "partitions=N id=UUID"
//   produce BOOTSTRAP TOPIC COUNT CODEC        keyed records, acks=all, idempotent; prints "acked=N"
//   consume BOOTSTRAP TOPIC COUNT              assign all partitions from the beginning;
//                                              prints "P O KEY VALUE" per record, sorted
//   group BOOTSTRAP TOPIC GROUP OUT             classic group member, cooperative-sticky; appends
//                                              "ASSIGNED p,..", "REVOKED p,..", "RECORD p o" and
//                                              "COMMITTED" lines to OUT until stopped
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.serialization.*;

public class ClientCheck {
    public static void main(String[] args) throws Exception {
        String mode = args[0], bootstrap = args[1], topic = args[2];
        switch (mode) {
            case "admin-create": adminCreate(bootstrap, topic, Integer.parseInt(args[3])); break;
            case "produce": produce(bootstrap, topic, Integer.parseInt(args[3]), args[4]); break;
            case "consume": consume(bootstrap, topic, Integer.parseInt(args[3])); break;
            case "group": group(bootstrap, topic, args[3], args[4]); break;
            // alter-config BOOTSTRAP TYPE NAME KEY VALUE: IncrementalAlterConfigs SET, as
            // kafka-configs.sh does (NAME "" is the cluster default, --entity-default).
            // list-topics BOOTSTRAP -: the topics Admin lists with and without listInternal.
            case "list-topics": listTopics(bootstrap); break;
            // txn-produce BOOTSTRAP TOPIC N: a transactional producer aborts N records, then
            // commits N others; prints "committed".
            case "txn-produce": txnProduce(bootstrap, topic, Integer.parseInt(args[3])); break;
            // consume-committed BOOTSTRAP TOPIC SECONDS: a read_committed consumer's values.
            case "consume-committed": consumeCommitted(bootstrap, topic, Integer.parseInt(args[3])); break;
            case "alter-config": alterConfig(bootstrap, args[2], args[3], args[4], args[5]); break;
            default: throw new IllegalArgumentException(mode);
        }
    }

    /** Prints "all=" the topics listed with listInternal(true), "default=" those without. */
    static void listTopics(String bootstrap) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(p)) {
            var all = new TreeSet<>(admin.listTopics(new ListTopicsOptions().listInternal(true)).names().get());
            var plain = new TreeSet<>(admin.listTopics().names().get());
            System.out.println("all=" + String.join(",", all));
            System.out.println("default=" + String.join(",", plain));
        }
    }

    /** Prints "ok", or "error=" and the broker's error class: a refusal is an answer, not a failure. */
    static void alterConfig(String bootstrap, String type, String name, String key, String value) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(p)) {
            var resource = new org.apache.kafka.common.config.ConfigResource(
                org.apache.kafka.common.config.ConfigResource.Type.valueOf(type), name);
            var op = new AlterConfigOp(new ConfigEntry(key, value), AlterConfigOp.OpType.SET);
            try {
                admin.incrementalAlterConfigs(Map.of(resource, List.of(op))).all().get();
                System.out.println("ok");
            } catch (java.util.concurrent.ExecutionException e) {
                System.out.println("error=" + e.getCause().getClass().getSimpleName());
            }
        }
    }

    static void adminCreate(String bootstrap, String topic, int partitions) throws Exception {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(p)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get();
            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            System.out.println("partitions=" + d.partitions().size() + " id=" + d.topicId());
            for (TopicPartitionInfo info : d.partitions()) {
                if (info.leader() == null) throw new IllegalStateException("no leader for " + info);
            }
            String cluster = admin.describeCluster().clusterId().get();
            System.out.println("cluster=" + cluster + " nodes=" + admin.describeCluster().nodes().get().size());
        }
    }

    static void produce(String bootstrap, String topic, int count, String codec) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        int acked = 0;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            List<java.util.concurrent.Future<RecordMetadata>> futures = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                futures.add(producer.send(new ProducerRecord<>(topic, "k" + (i % 100), "java-" + i)));
            }
            for (var f : futures) { f.get(); acked++; }
        }
        System.out.println("acked=" + acked);
    }

    static void txnProduce(String bootstrap, String topic, int count) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "java-txn");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            producer.beginTransaction();
            for (int i = 0; i < count; i++) producer.send(new ProducerRecord<>(topic, "java-aborted-" + i));
            producer.flush();
            producer.abortTransaction();
            producer.beginTransaction();
            for (int i = 0; i < count; i++) producer.send(new ProducerRecord<>(topic, "java-committed-" + i));
            producer.commitTransaction();
        }
        System.out.println("committed");
    }

    static void consumeCommitted(String bootstrap, String topic, int seconds) throws Exception {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p)) {
            List<TopicPartition> parts = new ArrayList<>();
            for (PartitionInfo info : consumer.partitionsFor(topic)) parts.add(new TopicPartition(topic, info.partition()));
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            long deadline = System.currentTimeMillis() + seconds * 1000L;
            while (System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) values.add(r.value());
            }
        }
        Collections.sort(values);
        for (String v : values) System.out.println(v);
    }

    static void consume(String bootstrap, String topic, int count) throws Exception {
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
            long deadline = System.currentTimeMillis() + 60_000;
            while (lines.size() < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    lines.add(r.partition() + " " + r.offset() + " " + r.key() + " " + r.value());
                }
            }
        }
        Collections.sort(lines);
        for (String l : lines) System.out.println(l);
    }

    static String join(Collection<TopicPartition> parts) {
        List<Integer> ps = new ArrayList<>();
        for (TopicPartition tp : parts) ps.add(tp.partition());
        Collections.sort(ps);
        StringBuilder sb = new StringBuilder();
        for (int p : ps) { if (sb.length() > 0) sb.append(','); sb.append(p); }
        return sb.toString();
    }

    static void group(String bootstrap, String topic, String group, String outPath) throws Exception {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, "org.apache.kafka.clients.consumer.CooperativeStickyAssignor");
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6000);
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
        java.io.PrintWriter out = new java.io.PrintWriter(new java.io.FileWriter(outPath, true), true);
        java.util.concurrent.atomic.AtomicBoolean running = new java.util.concurrent.atomic.AtomicBoolean(true);
        KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p);
        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            running.set(false);
            consumer.wakeup();
            try { main.join(20_000); } catch (InterruptedException e) { }
        }));
        consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
            public void onPartitionsRevoked(Collection<TopicPartition> parts) { if (!parts.isEmpty()) out.println("REVOKED " + join(parts)); }
            public void onPartitionsAssigned(Collection<TopicPartition> parts) { out.println("ASSIGNED " + join(parts)); }
        });
        try {
            while (running.get()) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : records) out.println("RECORD " + r.partition() + " " + r.offset());
                if (!records.isEmpty()) { consumer.commitSync(); out.println("COMMITTED"); }
            }
        } catch (org.apache.kafka.common.errors.WakeupException e) {
            // shutting down
        } finally {
            consumer.close();
            out.println("CLOSED");
        }
    }
}
