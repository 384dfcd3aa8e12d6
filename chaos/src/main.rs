//! `chaos [--tier short|full] [--seed N] [SCENARIO...]`: runs the fault battery (every
//! scenario when none is named) and prints each scenario's figures; exits non-zero when
//! any promise is broken. The role binaries must be built beside it (scripts/chaos.sh).

use std::io::Write as _;
use std::time::Instant;

use chaos::scenarios::{self, Tier};
use clap::Parser;

#[derive(Parser)]
#[command(
    about = "The fault battery: R1-R9 against processes it owns, judged by an oracle replayed from the log"
)]
struct Args {
    /// `short` (CI, a few minutes) or `full` (the figures of RELIABILITY.md).
    #[arg(long, default_value = "short")]
    tier: String,
    /// The seed of the load's choices and the faults' timing.
    #[arg(long, default_value_t = 20261202)]
    seed: u64,
    /// Scenarios to run (default: all).
    scenarios: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tier = match args.tier.as_str() {
        "short" => Tier::Short,
        "full" => Tier::Full,
        other => anyhow::bail!("--tier is short or full, not {other}"),
    };
    let names: Vec<String> = if args.scenarios.is_empty() {
        scenarios::ALL.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.scenarios
    };
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut out = std::io::stdout();
    for name in &names {
        writeln!(out, "-- {name} ({:?} tier, seed {})", tier, args.seed)?;
        match scenarios::run(name, tier, args.seed).await {
            Ok(report) => {
                write!(out, "{}", report.render())?;
                if !report.passed() {
                    failed.push(name.clone());
                }
            }
            Err(e) => {
                // The cluster's directory (its logs) is kept: see the `chaos-*` directories
                // in the temporary directory.
                writeln!(
                    out,
                    "== {name} [ERROR]: {e:#} (logs in {}/chaos-*)",
                    std::env::temp_dir().display()
                )?;
                failed.push(name.clone());
            }
        }
        out.flush()?;
    }
    writeln!(
        out,
        "\nchaos: {} of {} scenarios passed in {:.0} s",
        names.len() - failed.len(),
        names.len(),
        started.elapsed().as_secs_f64()
    )?;
    if !failed.is_empty() {
        writeln!(out, "chaos: FAILED: {}", failed.join(", "))?;
        out.flush()?;
        std::process::exit(1);
    }
    Ok(())
}
