//! `baseline-nats`: what the transport costs on its own.
//!
//! - core NATS publish → subscribe round trip: one publisher connection, one
//!   subscriber connection, one message in flight at a time;
//! - JetStream publish → ack: one synchronous publish at a time into a scratch
//!   stream with file storage, created for the run and deleted after it.

use crate::report::{self, Table};
use crate::stats::{self, Errors, Latency};
use anyhow::{Context, anyhow};
use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct NatsArgs {
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Measured round trips of each kind (after a short unmeasured warm-up).
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 200)]
    pub payload_bytes: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct NatsMeasure {
    pub name: &'static str,
    pub count: u64,
    pub per_s_sequential: f64,
    pub errors: Errors,
    pub latency: Latency,
    pub distribution: Vec<(f64, f64)>,
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NatsReport {
    pub scenario: &'static str,
    pub started_at: String,
    pub server_version: String,
    pub jetstream_storage: &'static str,
    /// What is known of JetStream's fsync policy (the client cannot ask the server).
    pub jetstream_fsync_note: &'static str,
    pub payload_bytes: usize,
    pub core_rtt: NatsMeasure,
    pub jetstream_publish_ack: NatsMeasure,
}

const FSYNC_NOTE: &str = "JetStream file storage acks after writing to the OS, not after fsync; \
nats-server syncs every 2 minutes by default (sync_interval is configurable only from 2.10)";
const WARMUP: u64 = 200;

pub async fn run(args: &NatsArgs, out: &Path) -> anyhow::Result<NatsReport> {
    let r = measure(args).await?;
    emit(&r, out)?;
    Ok(r)
}

pub async fn measure(args: &NatsArgs) -> anyhow::Result<NatsReport> {
    let started_at = chrono::Utc::now().to_rfc3339();
    let publisher = async_nats::connect(&args.nats_url)
        .await
        .with_context(|| format!("connecting to {}", args.nats_url))?;
    let subscriber = async_nats::connect(&args.nats_url).await?;
    let server_version = publisher.server_info().version;
    let payload = Bytes::from(vec![b'x'; args.payload_bytes]);
    let tag = format!(
        "{}_{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );

    let core_rtt = core_round_trips(&publisher, &subscriber, args.count, &payload, &tag).await?;
    let js = jetstream::new(publisher.clone());
    let stream = format!("LOADGEN_SCRATCH_{tag}");
    let subject = format!("loadgen.scratch.{tag}");
    js.create_stream(jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![subject.clone()],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating scratch stream {stream}"))?;
    let acks = js_publish_acks(&js, &subject, args.count, &payload).await;
    let deleted = js.delete_stream(&stream).await;
    let acks = acks?;
    deleted.map_err(|e| anyhow!("deleting scratch stream {stream}: {e}"))?;
    Ok(NatsReport {
        scenario: "baseline-nats",
        started_at,
        server_version,
        jetstream_storage: "file",
        jetstream_fsync_note: FSYNC_NOTE,
        payload_bytes: args.payload_bytes,
        core_rtt,
        jetstream_publish_ack: acks,
    })
}

fn finish(
    name: &'static str,
    hist: Histogram<u64>,
    errors: Errors,
    elapsed: Duration,
) -> NatsMeasure {
    NatsMeasure {
        name,
        count: hist.len(),
        per_s_sequential: hist.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        errors,
        latency: Latency::of(&hist),
        distribution: stats::distribution(&hist),
        histogram: hist,
    }
}

async fn core_round_trips(
    publisher: &async_nats::Client,
    subscriber: &async_nats::Client,
    count: u64,
    payload: &Bytes,
    tag: &str,
) -> anyhow::Result<NatsMeasure> {
    let subject = format!("loadgen.rtt.{tag}");
    let mut sub = subscriber.subscribe(subject.clone()).await?;
    subscriber.flush().await?;
    let pb = stats::progress(WARMUP + count, count >= 20_000, "nats rtt");
    let mut hist = stats::new_histogram();
    let mut errors = Errors::default();
    let mut measured_since = Instant::now();
    let mut buf = payload.to_vec();
    buf.resize(buf.len().max(8), b'x');
    for i in 0..WARMUP + count {
        if i == WARMUP {
            measured_since = Instant::now();
        }
        // Each message carries its number, so a late one is never taken for the next.
        buf[..8].copy_from_slice(&i.to_be_bytes());
        let msg = Bytes::copy_from_slice(&buf);
        let t0 = Instant::now();
        if publisher.publish(subject.clone(), msg).await.is_err() {
            errors.add("publish");
            continue;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, sub.next()).await {
                Ok(Some(m)) if m.payload.get(..8) == Some(&i.to_be_bytes()[..]) => {
                    if i >= WARMUP {
                        stats::record(&mut hist, t0.elapsed());
                    }
                    break;
                }
                Ok(Some(_)) => continue, // a late earlier message
                Ok(None) => return Err(anyhow!("subscription closed")),
                Err(_) => {
                    errors.add(format!("timeout (message {i})"));
                    break;
                }
            }
        }
        if i % 256 == 0 {
            pb.set_position(i);
        }
    }
    pb.finish_and_clear();
    let elapsed = measured_since.elapsed();
    let _ = sub.unsubscribe().await;
    Ok(finish(
        "core NATS publish→subscribe round trip",
        hist,
        errors,
        elapsed,
    ))
}

async fn js_publish_acks(
    js: &jetstream::Context,
    subject: &str,
    count: u64,
    payload: &Bytes,
) -> anyhow::Result<NatsMeasure> {
    let pb = stats::progress(WARMUP + count, count >= 10_000, "jetstream ack");
    let mut hist = stats::new_histogram();
    let mut errors = Errors::default();
    let mut measured_since = Instant::now();
    for i in 0..WARMUP + count {
        if i == WARMUP {
            measured_since = Instant::now();
        }
        let t0 = Instant::now();
        let res = match js.publish(subject.to_owned(), payload.clone()).await {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match res {
            Ok(()) if i >= WARMUP => stats::record(&mut hist, t0.elapsed()),
            Ok(()) => {}
            Err(_) if i >= WARMUP => errors.add("publish"),
            Err(_) => {}
        }
        if i % 256 == 0 {
            pb.set_position(i);
        }
    }
    pb.finish_and_clear();
    Ok(finish(
        "JetStream publish→ack (file storage)",
        hist,
        errors,
        measured_since.elapsed(),
    ))
}

pub fn table(r: &NatsReport) -> Table {
    let mut t = Table::new(
        format!(
            "NATS {} baselines ({}-byte payload, sequential)",
            r.server_version, r.payload_bytes
        ),
        &[
            "measure", "count", "ops/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
            "errors",
        ],
    );
    for m in [&r.core_rtt, &r.jetstream_publish_ack] {
        t.row(
            [
                vec![
                    m.name.into(),
                    m.count.to_string(),
                    format!("{:.0}", m.per_s_sequential),
                ],
                m.latency.cells().to_vec(),
                vec![m.errors.brief()],
            ]
            .concat(),
        );
    }
    t
}

pub fn emit(r: &NatsReport, out: &Path) -> anyhow::Result<()> {
    table(r).print();
    report::say(&format!("note: {}", r.jetstream_fsync_note));
    let json = report::write_json(out, "baseline-nats.json", r)?;
    let svg = out.join("baseline-nats-latency.svg");
    report::plot_percentiles(
        &svg,
        "NATS baselines: latency distribution",
        &[
            ("core publish→subscribe".into(), &r.core_rtt.histogram),
            (
                "JetStream publish→ack".into(),
                &r.jetstream_publish_ack.histogram,
            ),
        ],
    )?;
    report::say(&format!(
        "wrote {}\nwrote {}",
        json.display(),
        svg.display()
    ));
    Ok(())
}
