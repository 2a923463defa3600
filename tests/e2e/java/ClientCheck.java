// Drives Nurt with the Apache Kafka Java client (kafka-clients 3.9). Modes:
//   admin-create BOOTSTRAP TOPIC PARTITIONS   create, then describe; prints "partitions=N id=UUID"
//   produce BOOTSTRAP TOPIC COUNT CODEC        keyed records, acks=all, idempotent; prints "acked=N"
//   consume BOOTSTRAP TOPIC COUNT              assign all partitions from the beginning;
//                                              prints "P O KEY VALUE" per record, sorted
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
            default: throw new IllegalArgumentException(mode);
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
}
