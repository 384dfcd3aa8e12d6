//! `search-bench`: indexing rate, size on disk and query latency of message search, over the
//! same generated messages and the same queries, in one run:
//!
//! - the embedded Tantivy index (`search::TantivyIndex`), in a directory of its own;
//! - OpenSearch (`search::OpenSearchIndex`), under an index prefix of its own;
//! - PostgreSQL full text the way Synapse searches (a `tsvector` column with a GIN index,
//!   `ts_rank` order), in a database of its own: the baseline.
//!
//! Prints a markdown report on stdout and writes it as JSON to
//! `<out>/search-<timestamp>.json`; progress goes to stderr. The data ([`data`]) and the
//! queries ([`queries`]) are deterministic from `--seed`.
#![allow(clippy::print_stdout)]

mod data;
mod engines;
mod queries;
mod report;
mod sys;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use search::tantivy_index::WriterSettings;

use crate::queries::Kind;
use crate::report::{QueryRecord, Report};

#[derive(Parser, Debug)]
#[command(name = "search-bench", version, about)]
struct Cli {
    /// Messages to generate and index.
    #[arg(long, default_value_t = 1_000_000)]
    messages: usize,
    /// Queries to measure (after the warm-up).
    #[arg(long, default_value_t = 1_000)]
    queries: usize,
    /// Warm-up queries per backend, of the same mix (not counted).
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Seed of the data and the queries.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    skip_tantivy: bool,
    #[arg(long)]
    skip_opensearch: bool,
    #[arg(long)]
    skip_postgres: bool,
    /// Default: APP_OPENSEARCH_URL, else http://127.0.0.1:9200.
    #[arg(long)]
    opensearch_url: Option<String>,
    /// A database to connect to; the benchmark creates (and drops) a database of its own.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    database_url: String,
    /// Tantivy's index directory (must be empty or absent; kept). Default: a temporary
    /// directory, removed at the end.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where the JSON report goes.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Tantivy writer threads.
    #[arg(long, default_value_t = 2)]
    tantivy_threads: usize,
    /// Tantivy writer heap, MiB (shared by the threads).
    #[arg(long, default_value_t = 512)]
    tantivy_heap_mib: usize,
    /// Messages per Tantivy commit.
    #[arg(long, default_value_t = 10_000)]
    tantivy_batch: usize,
    /// Messages per OpenSearch bulk request.
    #[arg(long, default_value_t = 5_000)]
    opensearch_batch: usize,
    /// Messages per PostgreSQL INSERT.
    #[arg(long, default_value_t = 10_000)]
    postgres_batch: usize,
    /// PostgreSQL connections loading at once.
    #[arg(long, default_value_t = 2)]
    postgres_connections: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(cli.messages > 0, "--messages must be positive");
    let started_at = chrono::Utc::now();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let idle = sys::Cpu::now();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (busy_cores_before, _) = sys::Cpu::now().since(&idle);
    if busy_cores_before > 0.3 {
        eprintln!("warning: {busy_cores_before:.2} cores were busy before the run");
    }
    let opensearch_url = cli.opensearch_url.clone().unwrap_or_else(|| {
        std::env::var("APP_OPENSEARCH_URL").unwrap_or_else(|_| "http://127.0.0.1:9200".to_owned())
    });

    eprintln!("generating {} messages (seed {})", cli.messages, cli.seed);
    let t = Instant::now();
    let corpus = data::generate(cli.messages, cli.seed);
    let generate_seconds = t.elapsed().as_secs_f64();
    let measured = queries::generate(
        &corpus,
        cli.queries,
        StdRng::seed_from_u64(cli.seed.wrapping_add(0x5eed_0001)),
    );
    let warm = queries::generate(
        &corpus,
        cli.warmup,
        StdRng::seed_from_u64(cli.seed.wrapping_add(0x5eed_0002)),
    );
    eprintln!(
        "generated in {generate_seconds:.1} s; {} queries and {} warm-up queries",
        measured.len(),
        warm.len()
    );
    let requests = measured
        .iter()
        .map(|q| q.request())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let warm_requests = warm
        .iter()
        .map(|q| q.request())
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut versions = BTreeMap::new();
    versions.insert("tantivy", "0.27".to_owned());
    let mut postgres_settings = BTreeMap::new();
    let mut backends = Vec::new();
    let mut runs = Vec::new();
    let corpus_stats = corpus.stats.clone();
    let docs = Arc::new(corpus.docs);

    if !cli.skip_tantivy {
        let temp;
        let dir = match &cli.dir {
            Some(d) => {
                anyhow::ensure!(
                    !d.exists() || std::fs::read_dir(d)?.next().is_none(),
                    "--dir {} is not empty",
                    d.display()
                );
                d.clone()
            }
            None => {
                temp = tempfile::Builder::new()
                    .prefix("search-bench-")
                    .tempdir()
                    .context("a temporary directory")?;
                temp.path().to_owned()
            }
        };
        let settings = WriterSettings {
            threads: cli.tantivy_threads,
            heap_bytes: cli.tantivy_heap_mib << 20,
        };
        let (indexing, run) = engines::tantivy(
            &docs,
            &dir,
            settings,
            cli.tantivy_batch,
            &warm_requests,
            &requests,
        )
        .await?;
        backends.push(report::backend_result(indexing, &run, &measured));
        runs.push(run);
    }

    if !cli.skip_postgres {
        let (indexing, run, info) = engines::postgres(
            docs.clone(),
            &cli.database_url,
            cli.postgres_batch,
            cli.postgres_connections,
            &measured,
            &warm,
        )
        .await?;
        versions.insert("postgresql", info.version);
        postgres_settings.extend(info.settings);
        backends.push(report::backend_result(indexing, &run, &measured));
        runs.push(run);
    }

    if !cli.skip_opensearch {
        versions.insert(
            "opensearch",
            engines::opensearch_version(&opensearch_url)
                .await
                .with_context(|| {
                    format!(
                        "OpenSearch at {opensearch_url} (start it with `bash scripts/opensearch.sh`, \
                         or --skip-opensearch)"
                    )
                })?,
        );
        let (indexing, run) = engines::opensearch(
            &docs,
            &opensearch_url,
            cli.opensearch_batch,
            &warm_requests,
            &requests,
        )
        .await?;
        backends.push(report::backend_result(indexing, &run, &measured));
        runs.push(run);
    }

    if let Some(t) = runs.iter().position(|r| r.backend == "tantivy") {
        for (b, r) in backends.iter_mut().zip(&runs) {
            b.same_hits_as_tantivy = Some(
                r.hits
                    .iter()
                    .zip(&runs[t].hits)
                    .filter(|(a, b)| a == b)
                    .count(),
            );
        }
    }
    let mut ratios = BTreeMap::new();
    let p99 = |name: &str| {
        backends
            .iter()
            .find(|b| b.indexing.backend == name)
            .map(|b| b.overall.p99_ms)
    };
    if let (Some(t), Some(p)) = (p99("tantivy"), p99("postgres")) {
        ratios.insert("Tantivy p99 / PostgreSQL p99".to_owned(), t / p);
    }
    if let (Some(o), Some(p)) = (p99("opensearch"), p99("postgres")) {
        ratios.insert("OpenSearch p99 / PostgreSQL p99".to_owned(), o / p);
    }
    if let (Some(t), Some(o)) = (p99("tantivy"), p99("opensearch")) {
        ratios.insert("Tantivy p99 / OpenSearch p99".to_owned(), t / o);
    }
    for kind in Kind::ALL {
        let by = |name: &str| {
            backends
                .iter()
                .find(|b| b.indexing.backend == name)
                .and_then(|b| b.by_kind.get(kind.name()))
                .map(|s| s.p99_ms)
        };
        if let (Some(t), Some(p)) = (by("tantivy"), by("postgres")) {
            ratios.insert(
                format!("Tantivy p99 / PostgreSQL p99, {}", kind.name()),
                t / p,
            );
        }
    }
    let mut query_mix = BTreeMap::new();
    for q in &measured {
        *query_mix.entry(q.kind.name()).or_insert(0) += 1;
    }
    let per_query = measured
        .iter()
        .enumerate()
        .map(|(i, q)| QueryRecord {
            query: q.clone(),
            latency_ms: runs
                .iter()
                .map(|r| (r.backend, r.latencies_ms[i]))
                .collect(),
            hits: runs.iter().map(|r| (r.backend, r.hits[i])).collect(),
        })
        .collect();
    let report = Report {
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        busy_cores_before,
        command,
        seed: cli.seed,
        machine: sys::machine(),
        versions,
        postgres_settings,
        corpus: corpus_stats,
        generate_seconds,
        queries: measured.len(),
        warmup: warm.len(),
        query_mix,
        backends,
        ratios,
        per_query,
    };
    std::fs::create_dir_all(&cli.out).with_context(|| format!("create {}", cli.out.display()))?;
    let path = cli.out.join(format!(
        "search-{}.json",
        started_at.format("%Y%m%dT%H%M%SZ")
    ));
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("write {}", path.display()))?;
    print!("{}", report.markdown());
    eprintln!("wrote {}", path.display());
    Ok(())
}
