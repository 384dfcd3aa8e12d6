//! Latency histograms (HdrHistogram, microseconds), error counts, durations,
//! progress bars.

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Highest latency a histogram records exactly (larger values are clamped): 5 minutes.
const MAX_MICROS: u64 = 300_000_000;

/// A latency histogram in microseconds, 3 significant figures.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3)
        .expect("constant bounds satisfy HdrHistogram's rules")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    h.saturating_record(us.clamp(1, MAX_MICROS));
}

/// The schedule of an open loop, shared by all its clients: slot k is due at
/// `start + k / rate`, and each slot goes to whichever client takes it first.
#[derive(Clone, Debug)]
pub struct Slots {
    start: Instant,
    interval: Duration,
    next: Arc<AtomicU64>,
}

impl Slots {
    pub fn new(start: Instant, rate_per_s: f64) -> Self {
        Slots {
            start,
            interval: Duration::from_secs_f64(1.0 / rate_per_s.max(1e-3)),
            next: Arc::default(),
        }
    }

    /// Takes the next free slot: its number and when it is due.
    pub fn take(&self) -> (u64, Instant) {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        (k, self.start + self.interval.mul_f64(k as f64))
    }
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// The table cells p50, p90, p99, p99.9 (3 decimals) and max (2 decimals), in ms.
    pub fn cells(&self) -> [String; 5] {
        use crate::report::{f2, f3};
        [
            f3(self.p50_ms),
            f3(self.p90_ms),
            f3(self.p99_ms),
            f3(self.p999_ms),
            f2(self.max_ms),
        ]
    }

    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Points of the percentile distribution (for plotting and JSON): (percentile, ms).
pub fn distribution(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    const QS: &[f64] = &[
        0.0, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0,
    ];
    if h.is_empty() {
        return Vec::new();
    }
    QS.iter()
        .map(|&q| (q * 100.0, h.value_at_quantile(q) as f64 / 1000.0))
        .collect()
}

/// Failed operations, by HTTP status (e.g. "409") or by kind ("timeout", "io", "connect").
#[derive(Clone, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct Errors(pub BTreeMap<String, u64>);

impl Errors {
    pub fn add(&mut self, key: impl Into<String>) {
        *self.0.entry(key.into()).or_default() += 1;
    }
    pub fn merge(&mut self, other: &Errors) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
    /// `409×3 timeout×1`, or `0`.
    pub fn brief(&self) -> String {
        if self.0.is_empty() {
            return "0".into();
        }
        self.0
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `500ms`, `10s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (try 10s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {s:?}")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A progress bar on stderr for runs longer than a few seconds (hidden otherwise,
/// and hidden by indicatif itself when stderr is not a terminal).
pub fn progress(len: u64, show: bool, prefix: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{prefix:>14} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_prefix(prefix.to_owned());
    pb
}

/// A progress bar over `total` from `start`, showing successes, errors and the
/// current rate; ends by itself at `start + total`.
pub fn spawn_progress(
    prefix: String,
    start: tokio::time::Instant,
    total: Duration,
    ok: std::sync::Arc<std::sync::atomic::AtomicU64>,
    err: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let pb = progress(
        total.as_millis() as u64,
        total >= Duration::from_secs(3),
        &prefix,
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut last = (tokio::time::Instant::now(), 0u64);
        loop {
            tick.tick().await;
            let now = tokio::time::Instant::now();
            let done = ok.load(std::sync::atomic::Ordering::Relaxed);
            let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
            last = (now, done);
            pb.set_position(now.saturating_duration_since(start).as_millis() as u64);
            pb.set_message(format!(
                "{done} ok, {} err, {rate:.0}/s",
                err.load(std::sync::atomic::Ordering::Relaxed)
            ));
            if now >= start + total {
                pb.finish_and_clear();
                break;
            }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[tokio::test(start_paused = true)]
    async fn slots_are_consecutive_and_shared_by_every_clone() {
        let start = Instant::now() + Duration::from_secs(1);
        let slots = Slots::new(start, 250.0);
        let other_client = slots.clone();
        assert_eq!(slots.take(), (0, start));
        assert_eq!(other_client.take(), (1, start + Duration::from_millis(4)));
        assert_eq!(slots.take(), (2, start + Duration::from_millis(8)));
    }

    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5parsecs").is_err());
    }

    #[test]
    fn percentiles_come_out_in_milliseconds() {
        let mut h = new_histogram();
        for ms in 1..=100u64 {
            record(&mut h, Duration::from_millis(ms));
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 100);
        assert!((l.p50_ms - 50.0).abs() < 0.1, "{l:?}");
        assert!((l.max_ms - 100.0).abs() < 0.1, "{l:?}");
        assert_eq!(distribution(&h).len(), 13);
    }

    #[test]
    fn errors_merge_and_count() {
        let mut a = Errors::default();
        a.add("409");
        let mut b = Errors::default();
        b.add("409");
        b.add("timeout");
        a.merge(&b);
        assert_eq!(a.total(), 3);
        assert_eq!(a.brief(), "409×2 timeout×1");
    }
}

/// CPU time counters from /proc (Linux), to tell which process is busy during a run.
#[derive(Clone, Debug, Default)]
pub struct CpuSnapshot {
    cpus: usize,
    total: u64,
    idle: u64,
    iowait: u64,
    by_process: BTreeMap<String, u64>,
}

/// CPU use between two snapshots, in cores (2.0 = both cores of a 2-core machine busy).
#[derive(Clone, Debug, Default, Serialize)]
pub struct CpuUsage {
    pub cpus: usize,
    pub busy_cores: f64,
    pub iowait_cores: f64,
    /// Cores used per process name (`command-api`, `postgres`, `nats-server`, `loadgen`, …),
    /// only names above 0.01 cores.
    pub by_process: BTreeMap<String, f64>,
}

impl CpuUsage {
    /// `busy 1.95/2 (command-api 0.90, postgres 0.60, loadgen 0.40)`.
    pub fn brief(&self) -> String {
        let mut top: Vec<(&String, &f64)> = self.by_process.iter().collect();
        top.sort_by(|a, b| b.1.total_cmp(a.1));
        let parts: Vec<String> = top
            .iter()
            .take(4)
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect();
        format!(
            "busy {:.2}/{} iowait {:.2} ({})",
            self.busy_cores,
            self.cpus,
            self.iowait_cores,
            parts.join(", ")
        )
    }
}

impl CpuSnapshot {
    /// None where /proc is not there.
    pub fn take() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let mut snap = CpuSnapshot::default();
        for line in stat.lines() {
            let mut f = line.split_whitespace();
            match f.next() {
                Some("cpu") => {
                    let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
                    // user nice system idle iowait irq softirq steal (guest is inside user)
                    snap.total = v.iter().take(8).sum();
                    snap.idle = v.get(3).copied().unwrap_or(0);
                    snap.iowait = v.get(4).copied().unwrap_or(0);
                }
                Some(c) if c.starts_with("cpu") => snap.cpus += 1,
                _ => {}
            }
        }
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(s) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid … utime(14) stime(15); comm may hold spaces.
            let (Some(open), Some(close)) = (s.find('('), s.rfind(')')) else {
                continue;
            };
            let comm = &s[open + 1..close];
            // Kernel workers are named after their current job; count them as one.
            let comm = if comm.starts_with("kworker") {
                "kworker"
            } else {
                comm
            };
            let rest: Vec<&str> = s[close + 1..].split_whitespace().collect();
            let t = |i: usize| rest.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            // rest[0] is field 3 (state), so utime (14) is rest[11], stime (15) rest[12].
            *snap.by_process.entry(comm.to_owned()).or_default() += t(11) + t(12);
        }
        Some(snap)
    }

    pub fn usage_since(&self, before: &CpuSnapshot) -> CpuUsage {
        let dt = self.total.saturating_sub(before.total).max(1) as f64;
        let cpus = self.cpus.max(1);
        let cores = |d: u64| d as f64 / dt * cpus as f64;
        let idle = self.idle.saturating_sub(before.idle);
        let iowait = self.iowait.saturating_sub(before.iowait);
        let busy = self
            .total
            .saturating_sub(before.total)
            .saturating_sub(idle + iowait);
        let by_process = self
            .by_process
            .iter()
            .map(|(k, v)| {
                let b = before.by_process.get(k).copied().unwrap_or(0);
                (k.clone(), cores(v.saturating_sub(b)))
            })
            .filter(|(_, c)| *c >= 0.01)
            .collect();
        CpuUsage {
            cpus,
            busy_cores: cores(busy),
            iowait_cores: cores(iowait),
            by_process,
        }
    }
}
