//! The systems users would pick instead, each driven by its own native client: NATS
//! JetStream (file storage, acknowledged publishes through async-nats) and Redis Streams
//! (XADD, pipelined, through redis-benchmark).

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

/// Acknowledged JetStream publishes of `size`-byte messages with up to `window` in flight;
/// returns messages/s.
pub fn nats_jetstream(
    port: u16,
    size: usize,
    count: u64,
    window: usize,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<f64> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = async_nats::connect(format!("127.0.0.1:{port}")).await?;
        let js = async_nats::jetstream::new(client);
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "BENCH".into(),
            subjects: vec!["bench".into()],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("creating the JetStream stream: {e}"))?;
        let payload = bytes::Bytes::from(vec![b'x'; size]);
        let mut in_flight = std::collections::VecDeque::with_capacity(window);
        let start = Instant::now();
        for i in 0..count {
            if in_flight.len() == window {
                let ack: async_nats::jetstream::context::PublishAckFuture =
                    in_flight.pop_front().expect("window is full");
                ack.await.map_err(|e| anyhow::anyhow!("JetStream ack: {e}"))?;
            }
            in_flight.push_back(
                js.publish("bench", payload.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("JetStream publish: {e}"))?,
            );
            if i % 16384 == 0 {
                progress.set_position(i);
            }
        }
        for ack in in_flight {
            ack.await.map_err(|e| anyhow::anyhow!("JetStream ack: {e}"))?;
        }
        progress.set_position(count);
        Ok(count as f64 / start.elapsed().as_secs_f64())
    })
}

/// Pipelined XADD of `size`-byte values with redis-benchmark; returns entries/s.
pub fn redis_streams(port: u16, size: usize, count: u64, pipeline: u32) -> anyhow::Result<f64> {
    let value = "x".repeat(size);
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-n",
            &count.to_string(),
            "-P",
            &pipeline.to_string(),
            "-c",
            "1",
            "-q",
            "XADD",
            "bench",
            "*",
            "v",
            &value,
        ])
        .output()
        .context("cannot run redis-benchmark: is redis-tools installed? (scripts/install-bench-deps.sh)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "XADD bench * v xxx...: 123456.78 requests per second, p50=..."
    let rate = text
        .rsplit("requests per second")
        .nth(1)
        .and_then(|before| before.rsplit(':').next())
        .and_then(|n| n.trim().parse::<f64>().ok());
    match rate {
        Some(r) => Ok(r),
        None => bail!("cannot read redis-benchmark's output: {text}"),
    }
}
