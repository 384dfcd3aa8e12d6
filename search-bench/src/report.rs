//! Results, their summaries, and the markdown report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::data::CorpusStats;
use crate::queries::{Kind, Query};
use crate::sys::{Cpu, Machine};

#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
}

impl Phase {
    pub fn new(name: &str, d: Duration) -> Phase {
        Phase {
            name: name.to_owned(),
            seconds: d.as_secs_f64(),
        }
    }
}

/// One backend's indexing, from empty.
#[derive(Clone, Debug, Serialize)]
pub struct Indexing {
    pub backend: &'static str,
    pub messages: usize,
    pub batch: usize,
    /// From the first write until everything is searchable.
    pub seconds: f64,
    pub messages_per_s: f64,
    pub phases: Vec<Phase>,
    pub bytes_after_last_commit: Option<u64>,
    /// After background merges settled (PostgreSQL: after the load).
    pub bytes: u64,
    pub settle_seconds: f64,
    pub segments_after_last_commit: Option<u64>,
    pub segments: Option<u64>,
    /// Busy cores of the whole machine while indexing.
    pub busy_cores: f64,
    /// Cores used by the benchmark process itself (Tantivy runs inside it).
    pub bench_process_cores: f64,
    pub notes: Vec<String>,
}

/// One backend's measured queries, in the order of the query list.
#[derive(Clone, Debug, Serialize)]
pub struct QueryRun {
    pub backend: &'static str,
    pub latencies_ms: Vec<f64>,
    pub hits: Vec<usize>,
    pub seconds: f64,
    pub busy_cores: f64,
    pub bench_process_cores: f64,
}

impl QueryRun {
    pub fn new(backend: &'static str) -> QueryRun {
        QueryRun {
            backend,
            latencies_ms: Vec::new(),
            hits: Vec::new(),
            seconds: 0.0,
            busy_cores: 0.0,
            bench_process_cores: 0.0,
        }
    }

    pub fn record(&mut self, d: Duration, hits: usize) {
        self.latencies_ms.push(d.as_secs_f64() * 1e3);
        self.hits.push(hits);
    }

    pub fn finish(&mut self, started: Instant, cpu: &Cpu) {
        self.seconds = started.elapsed().as_secs_f64();
        (self.busy_cores, self.bench_process_cores) = Cpu::now().since(cpu);
    }

    /// The summary of the queries `keep` selects (by index into the query list).
    pub fn summary(&self, keep: impl Fn(usize) -> bool) -> Summary {
        let mut ms = Vec::new();
        let mut hits = 0;
        let mut with_hits = 0;
        for (i, (&l, &h)) in self.latencies_ms.iter().zip(&self.hits).enumerate() {
            if keep(i) {
                ms.push(l);
                hits += h;
                with_hits += usize::from(h > 0);
            }
        }
        ms.sort_by(f64::total_cmp);
        // Nearest rank.
        let pct = |p: f64| {
            if ms.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * ms.len() as f64).ceil() as usize;
            ms[rank.clamp(1, ms.len()) - 1]
        };
        Summary {
            count: ms.len(),
            p50_ms: pct(50.0),
            p90_ms: pct(90.0),
            p99_ms: pct(99.0),
            max_ms: ms.last().copied().unwrap_or(0.0),
            mean_ms: ms.iter().sum::<f64>() / ms.len().max(1) as f64,
            with_hits,
            hits_mean: hits as f64 / ms.len().max(1) as f64,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Queries with at least one hit.
    pub with_hits: usize,
    /// Hits per query (at most the page size).
    pub hits_mean: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BackendResult {
    pub indexing: Indexing,
    /// Queries whose number of hits is Tantivy's (a rough check that they agree).
    pub same_hits_as_tantivy: Option<usize>,
    pub overall: Summary,
    pub by_kind: BTreeMap<&'static str, Summary>,
    pub query_seconds: f64,
    pub query_busy_cores: f64,
    pub query_bench_process_cores: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct QueryRecord {
    #[serde(flatten)]
    pub query: Query,
    pub latency_ms: BTreeMap<&'static str, f64>,
    pub hits: BTreeMap<&'static str, usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub started_at: String,
    /// Busy cores of the machine in the two seconds before the run (other work on it).
    pub busy_cores_before: f64,
    pub command: String,
    pub seed: u64,
    pub machine: Machine,
    pub versions: BTreeMap<&'static str, String>,
    pub postgres_settings: BTreeMap<String, String>,
    pub corpus: CorpusStats,
    pub generate_seconds: f64,
    pub queries: usize,
    pub warmup: usize,
    pub query_mix: BTreeMap<&'static str, usize>,
    pub backends: Vec<BackendResult>,
    pub ratios: BTreeMap<String, f64>,
    pub per_query: Vec<QueryRecord>,
}

pub fn backend_result(indexing: Indexing, run: &QueryRun, queries: &[Query]) -> BackendResult {
    let by_kind = Kind::ALL
        .into_iter()
        .filter(|k| queries.iter().any(|q| q.kind == *k))
        .map(|k| (k.name(), run.summary(|i| queries[i].kind == k)))
        .collect();
    BackendResult {
        indexing,
        same_hits_as_tantivy: None,
        overall: run.summary(|_| true),
        by_kind,
        query_seconds: run.seconds,
        query_busy_cores: run.busy_cores,
        query_bench_process_cores: run.bench_process_cores,
    }
}

fn label(backend: &str) -> &str {
    match backend {
        "tantivy" => "Tantivy (embedded)",
        "opensearch" => "OpenSearch",
        "postgres" => "PostgreSQL full text",
        other => other,
    }
}

fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n.round());
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / (1 << 20) as f64)
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let c = &self.corpus;
        let _ = writeln!(s, "# search-bench, {}\n", self.started_at);
        let _ = writeln!(s, "`{}`\n", self.command);
        let _ = writeln!(
            s,
            "Busy cores before the run (other work on the machine): {:.2}.",
            self.busy_cores_before
        );
        let _ = writeln!(
            s,
            "Machine: {} cores ({}), {:.1} GiB, kernel {}; checkout {}.",
            m.cores, m.cpu, m.memory_gib, m.kernel, m.commit
        );
        let versions: Vec<String> = self
            .versions
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(s, "Versions: {}.", versions.join(", "));
        if !self.postgres_settings.is_empty() {
            let settings: Vec<String> = self
                .postgres_settings
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(s, "PostgreSQL: {}.", settings.join(", "));
        }
        let _ = writeln!(
            s,
            "\nData (seed {}, generated in {:.1} s): {} messages in {} rooms from {} senders, \
             {} to {}; vocabulary {} words, Zipf exponent {}; {} with a URL, {} with a file name, \
             {} CJK; {:.1} words and {:.0} bytes per body on average; the commonest word, `{}`, \
             is in {} messages.",
            self.seed,
            self.generate_seconds,
            thousands(c.messages as f64),
            thousands(c.rooms as f64),
            thousands(c.senders as f64),
            c.first_sent_at,
            c.last_sent_at,
            thousands(c.vocabulary as f64),
            c.zipf_exponent,
            thousands(c.with_url as f64),
            thousands(c.with_file as f64),
            thousands(c.cjk as f64),
            c.latin_words_mean,
            c.body_bytes_mean,
            c.top_word,
            thousands(c.top_word_messages as f64)
        );

        let _ = writeln!(s, "\n## Indexing (each from empty)\n");
        let _ = writeln!(
            s,
            "| backend | batch | messages/s | seconds | size on disk (after merges) | bytes/message | size after last commit | segments | busy cores | phases |"
        );
        let _ = writeln!(
            s,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        );
        for b in &self.backends {
            let i = &b.indexing;
            let phases: Vec<String> = i
                .phases
                .iter()
                .map(|p| format!("{} {:.1} s", p.name, p.seconds))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | **{}** | {:.1} | {} | {:.0} | {} | {} | {:.2} | {} |",
                label(i.backend),
                thousands(i.batch as f64),
                thousands(i.messages_per_s),
                i.seconds,
                mib(i.bytes),
                i.bytes as f64 / i.messages.max(1) as f64,
                i.bytes_after_last_commit.map_or("—".to_owned(), mib),
                match (i.segments_after_last_commit, i.segments) {
                    (Some(a), Some(b)) => format!("{a} → {b}"),
                    _ => "—".to_owned(),
                },
                i.busy_cores,
                phases.join("; ")
            );
        }
        for b in &self.backends {
            let i = &b.indexing;
            for n in &i.notes {
                let _ = writeln!(s, "\n- {}: {n}", label(i.backend));
            }
            if i.settle_seconds > 0.0 {
                let _ = writeln!(
                    s,
                    "- {}: merges went on for {:.1} s after the last write",
                    label(i.backend),
                    i.settle_seconds
                );
            }
        }

        let _ = writeln!(
            s,
            "\n## Queries ({} measured after {} warm-up, one at a time, limit 20, relevance)\n",
            self.queries, self.warmup
        );
        let _ = writeln!(
            s,
            "| backend | p50 ms | p90 ms | p99 ms | max ms | mean ms | queries with hits | hits/query | same hit count as Tantivy | busy cores |"
        );
        let _ = writeln!(
            s,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for b in &self.backends {
            let o = &b.overall;
            let _ = writeln!(
                s,
                "| {} | {} | {} | **{}** | {} | {} | {} / {} | {:.1} | {} | {:.2} |",
                label(b.indexing.backend),
                ms(o.p50_ms),
                ms(o.p90_ms),
                ms(o.p99_ms),
                ms(o.max_ms),
                ms(o.mean_ms),
                o.with_hits,
                o.count,
                o.hits_mean,
                b.same_hits_as_tantivy
                    .map_or("—".to_owned(), |n| format!("{n} / {}", o.count)),
                b.query_busy_cores
            );
        }

        let _ = writeln!(s, "\n### By kind (p50 / p99 / max ms; queries with hits)\n");
        let mut header = "| kind | n |".to_owned();
        let mut rule = "| --- | ---: |".to_owned();
        for b in &self.backends {
            let _ = write!(header, " {} | hits |", label(b.indexing.backend));
            rule.push_str(" --- | ---: |");
        }
        let _ = writeln!(s, "{header}\n{rule}");
        for kind in Kind::ALL {
            let Some(n) = self.query_mix.get(kind.name()) else {
                continue;
            };
            let mut row = format!("| {} | {n} |", kind.name());
            for b in &self.backends {
                match b.by_kind.get(kind.name()) {
                    Some(k) => {
                        let _ = write!(
                            row,
                            " {} / {} / {} | {} |",
                            ms(k.p50_ms),
                            ms(k.p99_ms),
                            ms(k.max_ms),
                            k.with_hits
                        );
                    }
                    None => row.push_str(" — | — |"),
                }
            }
            let _ = writeln!(s, "{row}");
        }
        let _ = writeln!(s, "\n### Slowest queries\n");
        for b in &self.backends {
            let name = b.indexing.backend;
            let mut slow: Vec<&QueryRecord> = self.per_query.iter().collect();
            slow.sort_by(|x, y| {
                let l = |r: &QueryRecord| r.latency_ms.get(name).copied().unwrap_or(0.0);
                l(y).total_cmp(&l(x))
            });
            let listed: Vec<String> = slow
                .iter()
                .take(5)
                .map(|r| {
                    format!(
                        "`{}` ({}) {} ms",
                        r.query.q,
                        r.query.kind.name(),
                        ms(r.latency_ms.get(name).copied().unwrap_or(0.0))
                    )
                })
                .collect();
            let _ = writeln!(s, "- {}: {}", label(name), listed.join(", "));
        }
        if !self.ratios.is_empty() {
            let _ = writeln!(s, "\n## Ratios\n");
            for (k, v) in &self.ratios {
                let _ = writeln!(s, "- {k}: **{v:.3}**");
            }
        }
        s
    }
}
