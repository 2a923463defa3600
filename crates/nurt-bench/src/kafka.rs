//! Workloads against a Kafka-protocol broker through librdkafka (the `rdkafka` crate).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

/// Counts acknowledged and failed deliveries.
#[derive(Default)]
struct Counter {
    acked: AtomicU64,
    failed: AtomicU64,
}

struct CountingContext(Arc<Counter>);

impl ClientContext for CountingContext {}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        match result {
            Ok(_) => self.0.acked.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Creates `topic` with `partitions` (replication 1).
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    create_replicated_topic(bootstrap, topic, partitions, 1, &[])
}

/// Creates `topic` with `partitions`, each on `replication` brokers, with topic `configs`.
pub fn create_replicated_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication: i32,
    configs: &[(&str, &str)],
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let new_topic = configs.iter().fold(
        NewTopic::new(topic, partitions, TopicReplication::Fixed(replication)),
        |t, (k, v)| t.set(k, v),
    );
    let results = rt.block_on(admin.create_topics(&[new_topic], &AdminOptions::new()))?;
    for r in results {
        if let Err((t, e)) = r {
            bail!("creating topic {t}: {e}");
        }
    }
    Ok(())
}

/// Waits until Metadata lists `brokers` brokers (a cluster's nodes have all joined: a broker
/// is listed once registered and unfenced).
pub fn wait_for_brokers(bootstrap: &str, brokers: usize, timeout: Duration) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let deadline = Instant::now() + timeout;
    let mut listed = 0;
    while Instant::now() < deadline {
        if let Ok(m) = admin.inner().fetch_metadata(None, Duration::from_secs(2)) {
            listed = m.brokers().len();
            if listed == brokers {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{listed} of {brokers} brokers joined within {timeout:?}")
}

/// Waits until every partition of `topic` has a leader and all `replication` replicas in
/// sync (so acks=all measures replication, not followers catching up); returns the leaders
/// by partition.
pub fn wait_for_in_sync(
    bootstrap: &str,
    topic: &str,
    replication: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<i32>> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no metadata");
    while Instant::now() < deadline {
        match admin.inner().fetch_metadata(Some(topic), Duration::from_secs(2)) {
            Ok(m) => {
                if let Some(t) = m.topics().iter().find(|t| t.name() == topic) {
                    let ready = !t.partitions().is_empty()
                        && t.error().is_none()
                        && t.partitions()
                            .iter()
                            .all(|p| p.leader() >= 0 && p.isr().len() == replication);
                    if ready {
                        let mut partitions: Vec<(i32, i32)> =
                            t.partitions().iter().map(|p| (p.id(), p.leader())).collect();
                        partitions.sort_unstable();
                        return Ok(partitions.into_iter().map(|(_, leader)| leader).collect());
                    }
                    last = t
                        .partitions()
                        .iter()
                        .map(|p| format!("{}: leader {} isr {:?}", p.id(), p.leader(), p.isr()))
                        .collect::<Vec<_>>()
                        .join(", ");
                }
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{topic} not fully in sync within {timeout:?} ({last})")
}

fn producer(bootstrap: &str, acks: &str, counter: Arc<Counter>) -> anyhow::Result<BaseProducer<CountingContext>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "2097151")
        .set("enable.idempotence", "false")
        .create_with_context(CountingContext(counter))?)
}

/// Max-rate produce of `count` records of `size` bytes; returns (records/s, MB/s).
pub fn produce(
    bootstrap: &str,
    topic: &str,
    size: usize,
    count: u64,
    acks: &str,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<(f64, f64)> {
    let counter = Arc::new(Counter::default());
    let p = producer(bootstrap, acks, Arc::clone(&counter))?;
    let payload = vec![b'x'; size];
    let start = Instant::now();
    let mut sent = 0;
    while sent < count {
        match p.send(BaseRecord::<(), [u8]>::to(topic).payload(&payload)) {
            Ok(()) => sent += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                p.poll(Duration::from_millis(1));
            }
            Err((e, _)) => bail!("produce: {e}"),
        }
        if sent % 65536 == 0 {
            p.poll(Duration::ZERO);
            progress.set_position(counter.acked.load(Ordering::Relaxed));
        }
    }
    p.flush(Duration::from_secs(60)).context("flushing the producer")?;
    let secs = start.elapsed().as_secs_f64();
    progress.set_position(count);
    let failed = counter.failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} records failed to produce");
    }
    Ok((count as f64 / secs, (count as f64 * size as f64) / secs / 1e6))
}

/// Produces `count` records of `size` bytes dealt round-robin over partitions
/// `first..first + partitions` (explicit partitions: librdkafka's sticky partitioner would
/// favour a few), acks=1.
pub fn produce_spread(
    bootstrap: &str,
    topic: &str,
    first: i32,
    partitions: i32,
    size: usize,
    count: u64,
) -> anyhow::Result<()> {
    let counter = Arc::new(Counter::default());
    let p = producer(bootstrap, "1", Arc::clone(&counter))?;
    let payload = vec![b'x'; size];
    let mut sent = 0u64;
    while sent < count {
        let partition = first + (sent % partitions.max(1) as u64) as i32;
        match p.send(BaseRecord::<(), [u8]>::to(topic).partition(partition).payload(&payload)) {
            Ok(()) => sent += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                p.poll(Duration::from_millis(1));
            }
            Err((e, _)) => bail!("produce: {e}"),
        }
        if sent.is_multiple_of(65536) {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(900)).context("flushing the producer")?;
    let failed = counter.failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} records failed to produce");
    }
    Ok(())
}

/// Reads `count` records from the start of partitions `first..first + partitions`, a record
/// at a time with short polls (the batch API waits for a full batch: wrong for a few records
/// each).
pub fn read_all(bootstrap: &str, topic: &str, first: i32, partitions: i32, count: u64) -> anyhow::Result<()> {
    let c = consumer(bootstrap)?;
    let mut tpl = TopicPartitionList::new();
    for p in first..first + partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut got = 0u64;
    while got < count {
        if Instant::now() > deadline {
            bail!("read {got} of {count} records within 15 minutes");
        }
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => got += 1,
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => bail!("consume: {e}"),
        }
    }
    Ok(())
}

fn consumer(bootstrap: &str) -> anyhow::Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "nurt-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.min.messages", "1000000")
        .set("queued.max.messages.kbytes", "262144")
        // librdkafka backs a fetcher off for a second when its queue is full by default.
        .set("fetch.queue.backoff.ms", "5")
        .set("fetch.wait.max.ms", "100")
        .create()?)
}

/// Max-rate consume of the first `count` records of every partition of `topic`, through
/// librdkafka's batch API (`rd_kafka_consume_batch_queue`): the record-at-a-time Rust
/// wrapper, not the broker, was the limit (see docs/BENCHMARKS.md).
pub fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: u64,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<(f64, f64)> {
    use rdkafka::bindings as rd;
    const BATCH: usize = 10_000;
    let c = consumer(bootstrap)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    // SAFETY: the queue belongs to `c`, which outlives every use below; each message pointer
    // returned by the batch call is read once and destroyed exactly once.
    let queue = unsafe { rd::rd_kafka_queue_get_consumer(c.client().native_ptr()) };
    if queue.is_null() {
        bail!("no consumer queue");
    }
    let mut msgs: Vec<*mut rd::rd_kafka_message_t> = vec![std::ptr::null_mut(); BATCH];
    let start = Instant::now();
    let (mut got, mut bytes, mut error) = (0u64, 0u64, None);
    while got < count && error.is_none() {
        let n = unsafe { rd::rd_kafka_consume_batch_queue(queue, 10_000, msgs.as_mut_ptr(), BATCH) };
        if n <= 0 {
            error = Some(format!("no record for 10 s after {got} of {count}"));
            break;
        }
        for &m in &msgs[..n as usize] {
            unsafe {
                if (*m).err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    got += 1;
                    bytes += (*m).len as u64;
                } else if (*m).err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF {
                    error = Some(format!("consume error {:?}", (*m).err));
                }
                rd::rd_kafka_message_destroy(m);
            }
        }
        progress.set_position(got.min(count));
    }
    unsafe { rd::rd_kafka_queue_destroy(queue) };
    if let Some(e) = error {
        bail!("consume: {e}");
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((got as f64 / secs, bytes as f64 / secs / 1e6))
}

/// End-to-end latency at a fixed `rate`: each record carries its *intended* send time, so a
/// stalled producer cannot hide latency (no coordinated omission). Records sent during
/// `warmup` are not measured. Returns a histogram in microseconds.
pub fn latency(
    bootstrap: &str,
    topic: &str,
    size: usize,
    rate: u64,
    duration: Duration,
    warmup: Duration,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Histogram<u64>> {
    let counter = Arc::new(Counter::default());
    let p: BaseProducer<CountingContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("enable.idempotence", "false")
        .create_with_context(CountingContext(Arc::clone(&counter)))?;
    let c = consumer(bootstrap)?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    c.assign(&tpl)?;
    c.poll(Duration::from_millis(500));
    let origin = Instant::now();
    let total = rate * (duration + warmup).as_secs();
    let interval_ns = 1_000_000_000 / rate;
    let consumer_thread = std::thread::spawn(move || -> anyhow::Result<Histogram<u64>> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        let mut seen = 0u64;
        while seen < total {
            match c.poll(Duration::from_secs(10)) {
                Some(Ok(m)) => {
                    seen += 1;
                    let payload = m.payload().unwrap_or_default();
                    let intended_ns = u64::from_le_bytes(payload[..8].try_into()?);
                    let now_ns = origin.elapsed().as_nanos() as u64;
                    if intended_ns >= warmup.as_nanos() as u64 {
                        h.record(((now_ns.saturating_sub(intended_ns)) / 1000).max(1))?;
                    }
                }
                Some(Err(e)) => bail!("latency consumer: {e}"),
                None => bail!("latency consumer got nothing for 10 s"),
            }
        }
        Ok(h)
    });
    let mut payload = vec![b'x'; size.max(8)];
    for i in 0..total {
        let intended = i * interval_ns;
        // Sleep until the intended send time (spinning would steal a core from the broker on a
        // small machine); a late wake-up still counts from the intended time.
        loop {
            let now = origin.elapsed().as_nanos() as u64;
            if now >= intended {
                break;
            }
            p.poll(Duration::ZERO);
            std::thread::sleep(Duration::from_nanos((intended - now).min(1_000_000)));
        }
        payload[..8].copy_from_slice(&intended.to_le_bytes());
        while let Err((e, _)) = p.send(BaseRecord::<(), [u8]>::to(topic).partition(0).payload(&payload)) {
            if !matches!(e, KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) {
                bail!("latency producer: {e}");
            }
            p.poll(Duration::from_millis(1));
        }
        if i % 1000 == 0 {
            progress.set_position(i);
        }
    }
    p.flush(Duration::from_secs(30))?;
    progress.set_position(total);
    consumer_thread
        .join()
        .map_err(|_| anyhow::anyhow!("latency consumer panicked"))?
}
