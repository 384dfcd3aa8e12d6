//! `all`: the baselines and the API measured in one run at the same
//! concurrency levels, so ratios compare like with like. Writes each
//! scenario's own files plus `all.json`, `all-throughput.svg` and `summary.md`.

use super::baseline_nats::{self, NatsArgs, NatsReport};
use super::baseline_pg::{self, PgArgs, PgReport};
use super::send::{self, SendArgs, SendReport};
use crate::report::{self, Table, f0, f2, f3};
use crate::stats::parse_duration;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct AllArgs {
    /// Base URL of the command API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// PostgreSQL to measure the raw baseline on (the one the platform uses).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub database_url: String,
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Concurrency levels, used for both the API and the PostgreSQL baseline.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    pub clients: Vec<usize>,
    /// Measured time per level.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured time before each level.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    #[arg(long, default_value_t = 16)]
    pub rooms: usize,
    #[arg(long, default_value_t = 8)]
    pub users: usize,
    #[arg(long, default_value_t = 100)]
    pub body_bytes: usize,
    /// Round trips per NATS baseline.
    #[arg(long, default_value_t = 10_000)]
    pub count: u64,
    /// Also run the open loop at this many messages/s (over `--open-clients` connections),
    /// and raw PostgreSQL at the same rate over the largest `--clients` connections.
    #[arg(long, conflicts_with = "rate_fraction")]
    pub rate: Option<f64>,
    /// Connections of the API's open loop. At a fixed rate, too few connections queue
    /// sends behind each other (HTTP/1.1 carries one request at a time), which measures
    /// the generator, not the server.
    #[arg(long, default_value_t = 512)]
    pub open_clients: usize,
    /// Also run the open loop at this fraction of the best closed-loop throughput (e.g. 0.7).
    #[arg(long)]
    pub rate_fraction: Option<f64>,
}

#[derive(Serialize)]
struct AllReport<'a> {
    scenario: &'static str,
    command: String,
    machine: Machine,
    baseline_pg: &'a PgReport,
    baseline_pg_open_loop: Option<&'a PgReport>,
    baseline_nats: &'a NatsReport,
    send: &'a SendReport,
    send_open_loop: Option<&'a SendReport>,
    comparison: Vec<Row>,
}

#[derive(Serialize)]
struct Machine {
    cpus: usize,
    cpu_model: String,
    memory_gib: f64,
}

impl Machine {
    fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into());
        let mem_kib: f64 = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Self {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        }
    }
}

/// One concurrency level: the API beside the raw PostgreSQL commit rate.
#[derive(Serialize)]
struct Row {
    clients: usize,
    api_msgs_per_s: f64,
    api_p50_ms: f64,
    api_p99_ms: f64,
    api_errors: u64,
    pg_commits_per_s: Option<f64>,
    pg_p99_ms: Option<f64>,
    /// API messages/s ÷ raw PostgreSQL commits/s.
    ratio: Option<f64>,
}

pub async fn run(a: &AllArgs, out: &Path) -> anyhow::Result<()> {
    let pg = baseline_pg::measure(&PgArgs {
        database_url: a.database_url.clone(),
        clients: a.clients.clone(),
        duration: a.duration,
        warmup: a.warmup,
        rate: None,
    })
    .await?;
    baseline_pg::emit(&pg, out)?;

    let nats = baseline_nats::measure(&NatsArgs {
        nats_url: a.nats_url.clone(),
        count: a.count,
        payload_bytes: 200,
    })
    .await?;
    baseline_nats::emit(&nats, out)?;

    let mut send_args = SendArgs {
        url: a.url.clone(),
        clients: a.clients.clone(),
        duration: a.duration,
        warmup: a.warmup,
        rooms: a.rooms,
        users: a.users,
        rate: None,
        body_bytes: a.body_bytes,
        timeout: Duration::from_secs(10),
    };
    let closed = send::measure(&send_args).await?;
    send::emit(&closed, out)?;

    let best = closed
        .levels
        .iter()
        .map(|l| l.accepted_per_s)
        .fold(0.0_f64, f64::max);
    let open_rate = a.rate.or(a.rate_fraction.map(|f| (f * best).max(1.0)));
    // The open loop's baseline: one-row commits at the same rate, over the largest
    // closed-loop level's connections (PostgreSQL's `max_connections` bounds them).
    let pg_open = match open_rate {
        Some(rate) => {
            let r = baseline_pg::measure(&PgArgs {
                database_url: a.database_url.clone(),
                clients: a.clients.iter().max().copied().into_iter().collect(),
                duration: a.duration,
                warmup: a.warmup,
                rate: Some(rate),
            })
            .await?;
            baseline_pg::emit(&r, out)?;
            Some(r)
        }
        None => None,
    };
    let open = match open_rate {
        Some(rate) => {
            send_args.rate = Some(rate);
            send_args.clients = vec![a.open_clients];
            let r = send::measure(&send_args).await?;
            send::table(&r).print();
            report::write_json(out, "send-open-loop.json", &r)?;
            let curves: Vec<(String, &hdrhistogram::Histogram<u64>)> = r
                .levels
                .iter()
                .map(|l| (format!("open loop {rate:.0}/s"), &l.histogram))
                .collect();
            report::plot_percentiles(
                &out.join("send-open-loop-latency.svg"),
                "send message at a fixed rate: latency from the scheduled send time",
                &curves,
            )?;
            Some(r)
        }
        None => None,
    };

    let comparison: Vec<Row> = closed
        .levels
        .iter()
        .map(|l| {
            let pgl = pg.levels.iter().find(|p| p.clients == l.clients);
            Row {
                clients: l.clients,
                api_msgs_per_s: l.accepted_per_s,
                api_p50_ms: l.latency.p50_ms,
                api_p99_ms: l.latency.p99_ms,
                api_errors: l.error_total,
                pg_commits_per_s: pgl.map(|p| p.commits_per_s),
                pg_p99_ms: pgl.map(|p| p.latency.p99_ms),
                ratio: pgl
                    .filter(|p| p.commits_per_s > 0.0)
                    .map(|p| l.accepted_per_s / p.commits_per_s),
            }
        })
        .collect();

    let mut cmp = Table::new(
        "send through the API vs raw PostgreSQL INSERT+COMMIT, same run",
        &[
            "clients",
            "API msgs/s",
            "API p50 ms",
            "API p99 ms",
            "API errors",
            "PG commits/s",
            "PG p99 ms",
            "ratio API/PG",
        ],
    );
    for r in &comparison {
        cmp.row(vec![
            r.clients.to_string(),
            f0(r.api_msgs_per_s),
            f3(r.api_p50_ms),
            f3(r.api_p99_ms),
            r.api_errors.to_string(),
            r.pg_commits_per_s.map_or("-".into(), f0),
            r.pg_p99_ms.map_or("-".into(), f3),
            r.ratio.map_or("-".into(), f2),
        ]);
    }
    cmp.print();

    let svg = out.join("all-throughput.svg");
    report::plot_xy(
        &svg,
        "API send vs raw PostgreSQL single-row commit, by concurrency",
        "concurrent clients",
        "per second",
        &[
            (
                "API accepted messages/s".into(),
                comparison
                    .iter()
                    .map(|r| (r.clients as f64, r.api_msgs_per_s))
                    .collect(),
            ),
            (
                "PostgreSQL INSERT+COMMIT/s".into(),
                pg.levels
                    .iter()
                    .map(|l| (l.clients as f64, l.commits_per_s))
                    .collect(),
            ),
        ],
    )?;

    let machine = Machine::probe();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let md = summary_md(
        &machine,
        &command,
        &pg,
        &nats,
        &closed,
        open.as_ref(),
        &cmp,
        best,
        pg_open.as_ref(),
    );
    let all = AllReport {
        scenario: "all",
        command,
        machine,
        baseline_pg: &pg,
        baseline_pg_open_loop: pg_open.as_ref(),
        baseline_nats: &nats,
        send: &closed,
        send_open_loop: open.as_ref(),
        comparison,
    };
    let json = report::write_json(out, "all.json", &all)?;
    let md_path = report::write_text(out, "summary.md", &md)?;
    report::say(&format!(
        "wrote {}\nwrote {}\nwrote {}",
        json.display(),
        md_path.display(),
        svg.display()
    ));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn summary_md(
    m: &Machine,
    command: &str,
    pg: &PgReport,
    nats: &NatsReport,
    closed: &SendReport,
    open: Option<&SendReport>,
    cmp: &Table,
    best: f64,
    pg_open: Option<&PgReport>,
) -> String {
    let s = &pg.settings;
    let mut md = format!(
        "# Benchmark summary\n\n\
         - when: {}\n\
         - machine: {} cores ({}), {} GiB memory\n\
         - command: `{}`\n\
         - PostgreSQL {}: synchronous_commit={}, fsync={}, wal_sync_method={}, commit_delay={}\n\
         - NATS {}: JetStream file storage; {}\n\
         - API run: {} users, {} public rooms, {}-byte bodies, {:.0} s per level after {:.0} s warm-up\n\
         - the load generator runs on the same cores as the platform; its own CPU use is in send.json (`cpu.by_process.loadgen`)\n\n",
        pg.started_at,
        m.cpus,
        m.cpu_model,
        m.memory_gib,
        command,
        s.server_version,
        s.synchronous_commit,
        s.fsync,
        s.wal_sync_method,
        s.commit_delay,
        nats.server_version,
        nats.jetstream_fsync_note,
        closed.users,
        closed.rooms,
        closed.body_bytes,
        closed.levels.first().map_or(0.0, |l| l.duration_s),
        closed.warmup_s,
    );
    md.push_str(&cmp.markdown());
    md.push_str("\n![throughput vs concurrency](all-throughput.svg)\n\n");
    md.push_str(&send::table(closed).markdown());
    md.push_str("\n![send latency](send-latency.svg)\n\n");
    if let Some(o) = open {
        md.push_str(&send::table(o).markdown());
        if let Some(l) = o.levels.first() {
            md.push_str(&format!(
                "\nLatency is measured from each message's scheduled send time. Largest scheduling lag: {:.2} ms.\n",
                l.max_send_lag_ms.unwrap_or(0.0)
            ));
        }
        md.push_str("\n![open-loop latency](send-open-loop-latency.svg)\n\n");
    }
    md.push_str(&baseline_pg::table(pg).markdown());
    md.push('\n');
    if let Some(p) = pg_open {
        md.push_str(&baseline_pg::table(p).markdown());
        md.push_str("\n![raw PostgreSQL, open loop](baseline-pg-open-loop-latency.svg)\n\n");
    }
    md.push_str(&baseline_nats::table(nats).markdown());
    md.push_str("\n![NATS latency](baseline-nats-latency.svg)\n\n");

    let mut targets = Table::new(
        "targets (issue 2)",
        &["target", "measured", "same-run baseline", "ratio", "met"],
    );
    let best_pg = pg
        .levels
        .iter()
        .map(|l| l.commits_per_s)
        .fold(0.0_f64, f64::max);
    targets.row(vec![
        "≥ 10,000 accepted msgs/s (synchronous_commit=on)".into(),
        format!("{best:.0} msgs/s (best level)"),
        format!("{best_pg:.0} PG commits/s (best level)"),
        if best_pg > 0.0 {
            f2(best / best_pg)
        } else {
            "-".into()
        },
        yes_no(best >= 10_000.0 && s.synchronous_commit == "on").into(),
    ]);
    let pg_open = pg_open.and_then(|p| p.levels.first());
    match open.and_then(|o| o.levels.first()) {
        Some(l) => targets.row(vec![
            "p99 < 20 ms at 70% of that rate".into(),
            format!(
                "p99 {:.2} ms at {:.0}/s offered ({:.0}/s accepted)",
                l.latency.p99_ms,
                l.target_rate_per_s.unwrap_or(0.0),
                l.accepted_per_s
            ),
            pg_open.map_or("-".into(), |p| {
                format!(
                    "raw PG one-row commits at the same rate: p99 {:.2} ms",
                    p.latency.p99_ms
                )
            }),
            pg_open
                .filter(|p| p.latency.p99_ms > 0.0)
                .map_or("-".into(), |p| f2(l.latency.p99_ms / p.latency.p99_ms)),
            yes_no(
                l.latency.p99_ms < 20.0
                    && l.target_rate_per_s.unwrap_or(0.0) >= 7_000.0
                    && l.error_total == 0,
            )
            .into(),
        ]),
        None => targets.row(vec![
            "p99 < 20 ms at 70% of that rate".into(),
            "not run (pass --rate or --rate-fraction)".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]),
    }
    md.push_str(&targets.markdown());
    md
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
