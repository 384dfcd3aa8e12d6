//! R8: sockets that subscribe and then never read (a small receive buffer, so the server
//! sees it soon), beside sockets that read, under a steady load. The server's memory stays
//! bounded, the silent sockets are closed as slow consumers, and the readers' delivery
//! latency (the send request's start → the frame on the socket) keeps its p99 under
//! 100 ms, none of them closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{Run, Tier};
use crate::cluster::Shape;
use crate::live;
use crate::load::Plan;
use crate::report::Report;

const P99_BUDGET: Duration = Duration::from_millis(100);

pub async fn sockets_that_never_read(tier: Tier, seed: u64) -> anyhow::Result<Report> {
    let (silent, readers) = tier.pick((20, 80), (100, 400));
    let duration = tier.pick(Duration::from_secs(20), Duration::from_secs(60));
    let plan = Plan {
        writers: 4,
        pace: Duration::from_millis(2),
        seed,
        // Big messages, so that what a silent socket is sent outgrows the kernel's buffers
        // (up to 4 MiB on the server's side) within the scenario.
        pad: 3000,
    };
    let mut run = Run::start(
        "R8 sockets that never read",
        "memory bounded; the silent sockets closed; the others' delivery p99 under 100 ms",
        &Shape::default(),
        8,
        4,
        plan,
    )
    .await?;
    let addr = run.cluster.query_addr();
    let query_pid = run.cluster.query.pid().unwrap_or(0);
    let rss_before = rss_kib(query_pid);

    // The readers: each subscribed to one room, recording when each message arrived.
    let received: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let readers_closed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..readers {
        let user = run.world.users[i % run.world.users.len()].clone();
        let room = run.world.rooms[i % run.world.rooms.len()];
        let mut ws = live::connect(addr, &user.token).await?;
        let frame = json!({ "type": "subscribe", "room_id": room });
        ws.send(Message::Text(frame.to_string().into())).await?;
        let (received, closed) = (received.clone(), readers_closed.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let now = Instant::now();
                        if let Ok(f) = serde_json::from_str::<Value>(t.as_str())
                            && let Some(id) = live::client_msg_id(&f)
                        {
                            mine.push((id.to_owned(), now));
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => {
                        closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                if mine.len() >= 256
                    && let Ok(mut r) = received.lock()
                {
                    r.append(&mut mine);
                }
            }
            if let Ok(mut r) = received.lock() {
                r.append(&mut mine);
            }
        }));
    }
    // First the readers alone (the baseline), then with the silent sockets.
    tokio::time::sleep(duration / 2).await;
    let silent_from = Instant::now();
    // The silent ones: subscribed to every room, never reading.
    let mut silent_sockets = Vec::new();
    for i in 0..silent {
        let user = &run.world.users[i % run.world.users.len()];
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_recv_buffer_size(4096)?;
        let stream = socket.connect(addr).await?;
        let mut req = format!("ws://{addr}/v1/ws").into_client_request()?;
        req.headers_mut()
            .insert("Authorization", format!("Bearer {}", user.token).parse()?);
        let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await?;
        for room in &run.world.rooms {
            let frame = json!({ "type": "subscribe", "room_id": room });
            ws.send(Message::Text(frame.to_string().into())).await?;
        }
        silent_sockets.push(ws);
    }
    let started = Instant::now();
    let mut rss_max = rss_before;
    while started.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_max = rss_max.max(rss_kib(query_pid));
    }
    let slow_closed = metric(&run, "chat_ws_closed_total{reason=\"slow_consumer\"}").await;
    let acked = run.load.acknowledged();
    // Stop reading: close the readers' sockets by dropping their tasks.
    for t in &tasks {
        t.abort();
    }
    drop(silent_sockets);
    let sent_at: HashMap<String, Instant> = run
        .load
        .shared
        .ledger
        .lock()
        .map(|l| {
            l.sent
                .iter()
                .map(|s| (s.client_msg_id.clone(), s.at))
                .collect()
        })
        .unwrap_or_default();
    // Deliveries of messages sent before the silent sockets came, and after.
    let mut before = hdrhistogram::Histogram::<u64>::new(3)?;
    let mut with = hdrhistogram::Histogram::<u64>::new(3)?;
    if let Ok(r) = received.lock() {
        for (id, at) in r.iter() {
            if let Some(sent) = sent_at.get(id) {
                let micros = u64::try_from(at.saturating_duration_since(*sent).as_micros())?;
                match *sent < silent_from {
                    true => before.record(micros)?,
                    false => with.record(micros)?,
                }
            }
        }
    }
    let show = |h: &hdrhistogram::Histogram<u64>| {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        format!(
            "{}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            h.len(),
            ms(0.5),
            ms(0.99),
            ms(1.0)
        )
    };
    let p99 = Duration::from_micros(with.value_at_quantile(0.99));
    let r = &mut run.report;
    r.figure(
        "sockets",
        format!(
            "{silent} that never read (4 KiB receive buffer, every room) beside {readers} readers; \
             {} s alone, then {} s with them",
            (duration / 2).as_secs(),
            duration.as_secs()
        ),
    );
    r.figure("messages acknowledged meanwhile", acked);
    r.figure(
        "readers' deliveries (send → socket), readers alone",
        show(&before),
    );
    r.figure(
        "readers' deliveries (send → socket), beside the silent sockets",
        show(&with),
    );
    r.figure(
        "closed as slow consumers (of the silent) / readers closed",
        format!(
            "{slow_closed} of {silent} / {}",
            readers_closed.load(Ordering::Relaxed)
        ),
    );
    r.figure(
        "query-api RSS before / highest",
        format!("{} MiB / {} MiB", rss_before / 1024, rss_max / 1024),
    );
    r.expect(!with.is_empty(), || "the readers received nothing".into());
    // A latency budget is a benchmark's claim: the full tier (release builds) holds the
    // readers to it; the short tier (CI, debug builds) reports the figure.
    if tier == Tier::Full {
        r.expect(p99 <= P99_BUDGET, || {
            format!("the readers' p99 is {p99:?} beside the silent sockets (> 100 ms)")
        });
    }
    r.expect(slow_closed >= silent as u64, || {
        format!("only {slow_closed} of {silent} silent sockets were closed")
    });
    r.expect(readers_closed.load(Ordering::Relaxed) == 0, || {
        "a reader was closed".into()
    });
    r.expect(rss_max.saturating_sub(rss_before) < 256 * 1024, || {
        format!(
            "the query API grew by {} MiB",
            rss_max.saturating_sub(rss_before) / 1024
        )
    });
    run.finish(0).await
}

/// A process's resident set in KiB (0 when it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    proc_status(pid, "VmRSS:")
}

/// A `/proc/<pid>/status` field in KiB (0 when it cannot be read).
pub fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The value of one sample line of the query API's `/metrics` (0 when absent).
async fn metric(run: &Run, sample: &str) -> u64 {
    let text = match run
        .api
        .http
        .get(format!("{}/metrics", run.api.query))
        .send()
        .await
    {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .find_map(|l| l.strip_prefix(sample))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}
