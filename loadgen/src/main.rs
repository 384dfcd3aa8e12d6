//! `loadgen`: drives the platform's public API and measures raw baselines
//! (PostgreSQL commit rate, NATS and JetStream latency) in the same run.
//!
//! Every scenario prints a table, writes JSON and an SVG picture under `--out`,
//! and counts errors by HTTP status (or by kind when there is no status).
//! Scenarios live one per module in `scenarios/`; add a variant to
//! [`scenarios::Scenario`] and a module to add one.

mod http;
mod report;
mod scenarios;
mod stats;

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "loadgen", version, about)]
struct Cli {
    /// Directory for JSON results, SVG plots and summary.md.
    #[arg(long, global = true, default_value = "bench-results")]
    out: PathBuf,
    /// Tokio worker threads for the load generator itself (default: one per core).
    /// The generator shares the cores with what it measures; keep it small.
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    scenario: scenarios::Scenario,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.build()?;
    rt.block_on(async move {
        std::fs::create_dir_all(&cli.out)?;
        scenarios::run(cli.scenario, &cli.out).await
    })
}
