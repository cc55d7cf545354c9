// What a Java team does next to the gateway, with kafka-clients from .cache/kafka/libs.
// Run with the source launcher: java -cp '.cache/kafka/libs/*' tests/java/Interop.java MODE ...
//
//   produce BOOTSTRAP TOPIC CODEC SHOP FIRST COUNT   JSON records (numeric shop_id, no event_id)
//   raw BOOTSTRAP TOPIC KEY TEXT                     one record whose value is TEXT, as is
//   partitions BOOTSTRAP TOPIC                       prints "checked N differ M": the default
//                                                    partitioner's choice vs where each key is
//   join BOOTSTRAP TOPIC GROUP SECONDS [K=V ...]     a consumer at Java's defaults (plus K=V)
//                                                    joins GROUP, prints "assigned N", stays
//                                                    SECONDS, prints "final M" and leaves
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.*;
import org.apache.kafka.common.utils.Utils;

public class Interop {
    public static void main(String[] a) throws Exception {
        switch (a[0]) {
            case "produce" -> produce(a[1], a[2], a[3], a[4], Integer.parseInt(a[5]), Integer.parseInt(a[6]));
            case "raw" -> raw(a[1], a[2], a[3], a[4]);
            case "partitions" -> partitions(a[1], a[2]);
            case "join" -> join(a[1], a[2], a[3], Integer.parseInt(a[4]), Arrays.copyOfRange(a, 5, a.length));
            default -> throw new IllegalArgumentException("unknown mode " + a[0]);
        }
    }

    static Properties producerProps(String bootstrap, String codec) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("compression.type", codec);
        p.put("linger.ms", "50");  // several records per batch, so the batch is really compressed
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        return p;
    }

    static void produce(String bootstrap, String topic, String codec, String shop, int first, int count) throws Exception {
        try (var producer = new KafkaProducer<String, String>(producerProps(bootstrap, codec))) {
            List<java.util.concurrent.Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = first; i < first + count; i++) {
                String value = String.format(
                    "{\"platform\":\"shopee\",\"shop_id\":%s,\"order_sn\":\"JAVA%s%03d\",\"order_status\":\"READY_TO_SHIP\","
                        + "\"timestamp\":%d,\"update_time\":%d,\"code\":3}",
                    shop, codec.toUpperCase(), i, System.currentTimeMillis(), 1735689600 + i);
                sent.add(producer.send(new ProducerRecord<>(topic, "shop-" + shop, value)));
            }
            for (var f : sent) f.get();
        }
        System.out.println("produced " + count);
    }

    static void raw(String bootstrap, String topic, String key, String text) throws Exception {
        try (var producer = new KafkaProducer<String, String>(producerProps(bootstrap, "none"))) {
            producer.send(new ProducerRecord<>(topic, key, text)).get();
        }
        System.out.println("produced 1");
    }

    static Properties consumerProps(String bootstrap, String group) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        if (group != null) p.put("group.id", group);
        p.put("auto.offset.reset", "earliest");
        p.put("enable.auto.commit", "false");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        return p;
    }

    static void partitions(String bootstrap, String topic) {
        try (var consumer = new KafkaConsumer<byte[], byte[]>(consumerProps(bootstrap, null))) {
            var parts = consumer.partitionsFor(topic).stream().map(i -> new TopicPartition(topic, i.partition())).toList();
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            Map<TopicPartition, Long> end = consumer.endOffsets(parts);
            int checked = 0, differ = 0;
            while (parts.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
                for (var r : consumer.poll(Duration.ofMillis(500))) {
                    int expected = Utils.toPositive(Utils.murmur2(r.key())) % parts.size();
                    checked++;
                    if (expected != r.partition()) differ++;
                }
            }
            System.out.println("checked " + checked + " differ " + differ);
        }
    }

    static void join(String bootstrap, String topic, String group, int seconds, String[] extra) {
        // the documented settings: Java's defaults (group.protocol=classic, range first)
        Properties props = consumerProps(bootstrap, group);
        for (String kv : extra) props.put(kv.substring(0, kv.indexOf('=')), kv.substring(kv.indexOf('=') + 1));
        try (var consumer = new KafkaConsumer<byte[], byte[]>(props)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 60_000;
            while (consumer.assignment().isEmpty() && System.currentTimeMillis() < deadline) {
                consumer.poll(Duration.ofMillis(200));
            }
            System.out.println("assigned " + consumer.assignment().size());
            System.out.flush();
            long until = System.currentTimeMillis() + seconds * 1000L;
            while (System.currentTimeMillis() < until) consumer.poll(Duration.ofMillis(200));
            System.out.println("final " + consumer.assignment().size());
        }
    }
}
