//! `search-lag`: how long a sent message takes to become searchable, end to end.
//!
//! Messages are sent at a fixed rate (open loop, as `send --rate`). Every `--sample-every`th
//! one carries a word of its own; once its send is accepted, a poller searches for that word
//! (as the sender, without `min_position`: what a person typing into the search box gets)
//! every `--poll` until the message is a hit. The lag is from the send's scheduled time to
//! the first search that returned it, so it includes the send itself, the relay, the search
//! projection's batch and commit, the reader's reload and the search.

use crate::http::{Conn, Target};
use crate::report::{self, Table, f0};
use crate::scenarios::send::{self, SendArgs};
use crate::stats::{self, CpuSnapshot, CpuUsage, Errors, Latency, Slots, parse_duration};
use anyhow::anyhow;
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(clap::Args, Debug, Clone)]
pub struct SearchLagArgs {
    /// Base URL of the platform (sends and searches).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Messages per second, on a fixed schedule.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Connections sending.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Measured time.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured time first.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub warmup: Duration,
    #[arg(long, default_value_t = 16)]
    pub rooms: usize,
    #[arg(long, default_value_t = 8)]
    pub users: usize,
    /// One message in this many is followed over search.
    #[arg(long, default_value_t = 50)]
    pub sample_every: u64,
    /// Pause between two searches for one message.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    pub poll: Duration,
    /// A message not found within this long counts as lost.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub give_up: Duration,
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct SearchLagReport {
    pub scenario: &'static str,
    pub url: String,
    pub started_at: String,
    pub rate_per_s: f64,
    pub duration_s: f64,
    pub accepted: u64,
    pub accepted_per_s: f64,
    pub send_errors: Errors,
    pub sampled: u64,
    pub not_found: u64,
    pub searches: u64,
    pub search_errors: Errors,
    /// Scheduled send → first search that returned the message.
    pub lag: Latency,
    pub distribution: Vec<(f64, f64)>,
    pub cpu: Option<CpuUsage>,
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

#[derive(Default)]
struct Totals {
    hist: Option<Histogram<u64>>,
    sampled: u64,
    not_found: u64,
    search_errors: Errors,
    send_errors: Errors,
    accepted: u64,
}

pub async fn run(args: &SearchLagArgs, out: &Path) -> anyhow::Result<SearchLagReport> {
    if args.sample_every == 0 || args.connections == 0 {
        return Err(anyhow!("--sample-every and --connections must be positive"));
    }
    let started_at = chrono::Utc::now().to_rfc3339();
    let send_args = SendArgs {
        url: args.url.clone(),
        clients: vec![args.connections],
        duration: args.duration,
        warmup: args.warmup,
        rooms: args.rooms,
        users: args.users,
        rate: Some(args.rate),
        body_bytes: args.body_bytes,
        timeout: Duration::from_secs(10),
    };
    let fx = Arc::new(send::setup(&send_args).await?);
    let start = Instant::now() + Duration::from_millis(300);
    let slots = Slots::new(start, args.rate);
    let measure_from = start + args.warmup;
    let end = measure_from + args.duration;
    let totals = Arc::new(Mutex::new(Totals {
        hist: Some(stats::new_histogram()),
        ..Totals::default()
    }));
    let searches = Arc::new(AtomicU64::new(0));
    let (ok_ctr, err_ctr) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let filler: String = "search lag filler words "
        .chars()
        .cycle()
        .take(args.body_bytes.max(1))
        .collect();
    let mut tasks = Vec::new();
    for i in 0..args.connections {
        let (fx, slots, totals, searches) =
            (fx.clone(), slots.clone(), totals.clone(), searches.clone());
        let (ok_ctr, err_ctr, filler, args) = (
            ok_ctr.clone(),
            err_ctr.clone(),
            filler.clone(),
            args.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let room = fx.rooms[i % fx.rooms.len()].clone();
            let token = fx.tokens[i % fx.tokens.len()].clone();
            let mut conn = Conn::new(fx.target.clone(), Duration::from_secs(10));
            let mut pollers = Vec::new();
            loop {
                let (n, due) = slots.take();
                if due >= end {
                    break;
                }
                tokio::time::sleep_until(due).await;
                let counted = due >= measure_from;
                let word = (n % args.sample_every == 0).then(|| format!("lag{}x{n}", fx.run_id));
                let body = match &word {
                    Some(w) => format!("{w} {filler}"),
                    None => filler.clone(),
                };
                let payload =
                    json!({ "client_msg_id": format!("{}-lag-{n}", fx.run_id), "body": body });
                let bytes = Bytes::from(serde_json::to_vec(&payload).unwrap_or_default());
                let sent = conn
                    .post_json(&format!("/v1/rooms/{room}/messages"), Some(&token), bytes)
                    .await;
                match sent {
                    Ok((s, _)) if s.is_success() => {
                        ok_ctr.fetch_add(1, Ordering::Relaxed);
                        if counted {
                            totals.lock().await.accepted += 1;
                        }
                    }
                    other => {
                        err_ctr.fetch_add(1, Ordering::Relaxed);
                        if counted {
                            let key = match other {
                                Ok((s, _)) => s.as_u16().to_string(),
                                Err(e) => e.kind().to_owned(),
                            };
                            totals.lock().await.send_errors.add(key);
                        }
                        continue;
                    }
                }
                if let (Some(word), true) = (word, counted) {
                    let (target, token, totals, searches) = (
                        fx.target.clone(),
                        token.clone(),
                        totals.clone(),
                        searches.clone(),
                    );
                    let (poll, give_up) = (args.poll, args.give_up);
                    pollers.push(tokio::spawn(async move {
                        follow(target, token, word, due, poll, give_up, totals, searches).await;
                    }));
                }
            }
            for p in pollers {
                let _ = p.await;
            }
        }));
    }
    let progress = stats::spawn_progress(
        "search-lag".to_owned(),
        start,
        args.warmup + args.duration,
        ok_ctr,
        err_ctr,
    );
    tokio::time::sleep_until(measure_from).await;
    let cpu0 = CpuSnapshot::take();
    tokio::time::sleep_until(end).await;
    let cpu = cpu0.and_then(|c0| CpuSnapshot::take().map(|c1| c1.usage_since(&c0)));
    for t in tasks {
        let _ = t.await;
    }
    let _ = progress.await;
    let mut t = totals.lock().await;
    let histogram = t.hist.take().unwrap_or_else(stats::new_histogram);
    let report = SearchLagReport {
        scenario: "search-lag",
        url: args.url.clone(),
        started_at,
        rate_per_s: args.rate,
        duration_s: args.duration.as_secs_f64(),
        accepted: t.accepted,
        accepted_per_s: t.accepted as f64 / args.duration.as_secs_f64(),
        send_errors: t.send_errors.clone(),
        sampled: t.sampled,
        not_found: t.not_found,
        searches: searches.load(Ordering::Relaxed),
        search_errors: t.search_errors.clone(),
        lag: Latency::of(&histogram),
        distribution: stats::distribution(&histogram),
        cpu,
        histogram,
    };
    emit(&report, out)?;
    Ok(report)
}

/// Searches for `word` until a hit, and records the lag since `due`.
#[allow(clippy::too_many_arguments)]
async fn follow(
    target: Target,
    token: hyper::header::HeaderValue,
    word: String,
    due: Instant,
    poll: Duration,
    give_up: Duration,
    totals: Arc<Mutex<Totals>>,
    searches: Arc<AtomicU64>,
) {
    let mut conn = Conn::new(target, Duration::from_secs(10));
    let path = format!("/v1/search/messages?q={word}&limit=1");
    let mut errors = Errors::default();
    loop {
        searches.fetch_add(1, Ordering::Relaxed);
        match conn.get(&path, Some(&token)).await {
            Ok((s, body)) if s.is_success() => {
                let found = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["hits"].as_array().map(|h| !h.is_empty()))
                    .unwrap_or(false);
                if found {
                    let lag = Instant::now() - due;
                    let mut t = totals.lock().await;
                    t.sampled += 1;
                    t.search_errors.merge(&errors);
                    if let Some(h) = t.hist.as_mut() {
                        stats::record(h, lag);
                    }
                    return;
                }
            }
            Ok((s, _)) => errors.add(s.as_u16().to_string()),
            Err(e) => errors.add(e.kind()),
        }
        if due.elapsed() > give_up {
            let mut t = totals.lock().await;
            t.sampled += 1;
            t.not_found += 1;
            t.search_errors.merge(&errors);
            return;
        }
        tokio::time::sleep(poll).await;
    }
}

pub fn table(r: &SearchLagReport) -> Table {
    let mut t = Table::new(
        format!(
            "send → searchable via {} at {:.0} msgs/s",
            r.url, r.rate_per_s
        ),
        &[
            "msgs/s",
            "sampled",
            "not found",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "send errors",
            "search errors",
            "cpu (cores)",
        ],
    );
    let cells = r.lag.cells();
    t.row(vec![
        f0(r.accepted_per_s),
        r.sampled.to_string(),
        r.not_found.to_string(),
        cells[0].clone(),
        cells[1].clone(),
        cells[2].clone(),
        cells[3].clone(),
        cells[4].clone(),
        r.send_errors.brief(),
        r.search_errors.brief(),
        r.cpu.as_ref().map_or("-".into(), CpuUsage::brief),
    ]);
    t
}

pub fn emit(r: &SearchLagReport, out: &Path) -> anyhow::Result<()> {
    table(r).print();
    let json = report::write_json(out, "search-lag.json", r)?;
    let svg = out.join("search-lag.svg");
    let name = format!("{:.0} msgs/s", r.rate_per_s);
    report::plot_percentiles(
        &svg,
        "send → searchable: lag distribution",
        &[(name, &r.histogram)],
    )?;
    for f in [json, svg] {
        report::say(&format!("wrote {}", f.display()));
    }
    Ok(())
}
