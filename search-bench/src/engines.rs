//! Each backend from empty: index the corpus, let it settle, then run the queries one at a time.

use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use search::tantivy_index::WriterSettings;
use search::{Change, MessageDoc, OpenSearchIndex, SearchBackend, SearchRequest, TantivyIndex};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection as _, Executor as _};
use uuid::Uuid;

use crate::queries::{LIMIT, Query};
use crate::report::{Indexing, Phase, QueryRun};
use crate::sys::{self, Cpu};

/// Prints a progress line every tenth of the batches.
fn progress(backend: &str, done: usize, total: usize, started: Instant, step: &mut usize) {
    let tenth = (total / 10).max(1);
    if done >= *step + tenth || done == total {
        *step = done;
        let s = started.elapsed().as_secs_f64();
        eprintln!(
            "  {backend}: {done}/{total} messages in {s:.1} s ({:.0}/s)",
            done as f64 / s.max(1e-9)
        );
    }
}

fn sent(docs: &[MessageDoc]) -> Vec<Change> {
    docs.iter().cloned().map(Change::Sent).collect()
}

/// Runs `warm` (not counted), then `reqs` one at a time.
async fn run_backend(
    backend: &'static str,
    ix: &dyn SearchBackend,
    warm: &[SearchRequest],
    reqs: &[SearchRequest],
) -> anyhow::Result<QueryRun> {
    for r in warm {
        ix.search(r.clone()).await.context("a warm-up search")?;
    }
    let mut run = QueryRun::new(backend);
    let cpu = Cpu::now();
    let started = Instant::now();
    for r in reqs {
        let r = r.clone();
        let t = Instant::now();
        let page = ix.search(r).await.context("a search")?;
        run.record(t.elapsed(), page.hits.len());
    }
    run.finish(started, &cpu);
    Ok(run)
}

/// Bytes of the Tantivy index by part and field (term dictionary, postings, positions), from
/// its segments' own accounting.
fn tantivy_space(dir: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    let index = tantivy::Index::open_in_dir(dir).context("open the index to measure it")?;
    let reader = index.reader().context("a reader")?;
    let usage = reader.searcher().space_usage().context("space usage")?;
    let mut parts: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for segment in usage.segments() {
        for (part, per_field) in [
            ("terms", segment.termdict()),
            ("postings", segment.postings()),
            ("positions", segment.positions()),
        ] {
            for f in per_field.fields() {
                *parts
                    .entry(format!("{part} {}", f.field_name()))
                    .or_default() += f.total().get_bytes();
            }
        }
        *parts.entry("fast fields".to_owned()).or_default() +=
            segment.fast_fields().total().get_bytes();
        *parts.entry("field norms".to_owned()).or_default() +=
            segment.fieldnorms().total().get_bytes();
        *parts.entry("stored documents".to_owned()).or_default() +=
            segment.store().total().get_bytes();
    }
    let mut parts: Vec<(String, u64)> = parts.into_iter().filter(|(_, b)| *b > 0).collect();
    parts.sort_by_key(|(_, b)| std::cmp::Reverse(*b));
    Ok(parts)
}

/// Tantivy segments in the directory's last commit.
fn tantivy_segments(dir: &Path) -> Option<u64> {
    let meta = std::fs::read_to_string(dir.join("meta.json")).ok()?;
    let v: Value = serde_json::from_str(&meta).ok()?;
    Some(v["segments"].as_array()?.len() as u64)
}

pub async fn tantivy(
    docs: &[MessageDoc],
    dir: &Path,
    settings: WriterSettings,
    batch: usize,
    warm: &[SearchRequest],
    reqs: &[SearchRequest],
) -> anyhow::Result<(Indexing, QueryRun)> {
    eprintln!(
        "tantivy: indexing {} messages into {} ({} threads, {} MiB heap, commits of {batch})",
        docs.len(),
        dir.display(),
        settings.threads,
        settings.heap_bytes >> 20
    );
    let ix = TantivyIndex::open_writer(dir, settings)?;
    let cpu = Cpu::now();
    let started = Instant::now();
    let mut step = 0;
    let mut from = 0i64;
    let mut apply_time = Duration::ZERO;
    for chunk in docs.chunks(batch.max(1)) {
        let changes = sent(chunk);
        let to = chunk.last().map_or(from, |d| d.position);
        let t = Instant::now();
        ix.apply(from, changes, to).await.context("tantivy apply")?;
        apply_time += t.elapsed();
        from = to;
        progress("tantivy", to as usize, docs.len(), started, &mut step);
    }
    ix.visible_position(from).await?;
    let seconds = started.elapsed().as_secs_f64();
    let (busy, process) = Cpu::now().since(&cpu);
    let bytes_at_end = sys::dir_bytes(dir);
    let segments_at_end = tantivy_segments(dir);
    eprintln!(
        "tantivy: {:.0} messages/s; {bytes_at_end} bytes, {} segments; waiting for merges",
        docs.len() as f64 / seconds,
        segments_at_end.unwrap_or(0)
    );
    // Tantivy merges in the background after commits; wait until the directory stops changing.
    let settle = Instant::now();
    let mut last = (sys::dir_bytes(dir), tantivy_segments(dir));
    let mut stable = Instant::now();
    while stable.elapsed() < Duration::from_secs(5) && settle.elapsed() < Duration::from_secs(900) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = (sys::dir_bytes(dir), tantivy_segments(dir));
        if now != last {
            last = now;
            stable = Instant::now();
        }
    }
    let settle_seconds = (settle.elapsed() - stable.elapsed()).as_secs_f64();
    eprintln!(
        "tantivy: settled after {settle_seconds:.1} s: {} bytes, {} segments",
        last.0,
        last.1.unwrap_or(0)
    );
    let mut notes = vec![format!(
        "WriterSettings {{ threads: {}, heap_bytes: {} MiB }}; one commit per batch",
        settings.threads,
        settings.heap_bytes >> 20
    )];
    match tantivy_space(dir) {
        Ok(parts) => {
            let total: u64 = parts.iter().map(|(_, b)| b).sum();
            let listed: Vec<String> = parts
                .iter()
                .take(8)
                .map(|(name, b)| {
                    format!(
                        "{name} {:.0} MiB ({:.0} %)",
                        *b as f64 / (1 << 20) as f64,
                        100.0 * *b as f64 / total.max(1) as f64
                    )
                })
                .collect();
            notes.push(format!("where the bytes are: {}", listed.join(", ")));
        }
        Err(e) => notes.push(format!("space usage not measured: {e:#}")),
    }
    let indexing = Indexing {
        backend: "tantivy",
        messages: docs.len(),
        batch,
        seconds,
        messages_per_s: docs.len() as f64 / seconds,
        phases: vec![Phase::new(
            "apply (add + commit + reader reload)",
            apply_time,
        )],
        bytes_after_last_commit: Some(bytes_at_end),
        bytes: last.0,
        settle_seconds,
        segments_after_last_commit: segments_at_end,
        segments: last.1,
        busy_cores: busy,
        bench_process_cores: process,
        notes,
    };
    // Merges that finished since the last commit are picked up by a reload.
    ix.visible_position(i64::MAX).await?;
    eprintln!("tantivy: {} queries", reqs.len());
    let run = run_backend("tantivy", &ix, warm, reqs).await?;
    Ok((indexing, run))
}

// ---------------------------------------------------------------------------------------------
// OpenSearch

async fn get_json(http: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    let r = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = r.status();
    let v: Value = r.json().await.with_context(|| format!("GET {url}"))?;
    anyhow::ensure!(status.is_success(), "GET {url}: {status}: {v}");
    Ok(v)
}

pub async fn opensearch_version(url: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let v = get_json(&http, url).await?;
    Ok(v["version"]["number"].as_str().unwrap_or("?").to_owned())
}

pub async fn opensearch(
    docs: &[MessageDoc],
    url: &str,
    batch: usize,
    warm: &[SearchRequest],
    reqs: &[SearchRequest],
) -> anyhow::Result<(Indexing, QueryRun)> {
    let prefix = format!(
        "search-bench-{}",
        &Uuid::new_v4().simple().to_string()[..12]
    );
    let ix = OpenSearchIndex::new(url, &prefix)?;
    ix.ensure().await.context("create the OpenSearch index")?;
    let result = opensearch_run(&ix, docs, url, batch, warm, reqs).await;
    eprintln!("opensearch: deleting the {prefix}-messages-* indexes");
    let deleted = ix.delete_all().await;
    let result = result?;
    deleted.context("delete the benchmark's OpenSearch indexes")?;
    Ok(result)
}

async fn opensearch_run(
    ix: &OpenSearchIndex,
    docs: &[MessageDoc],
    url: &str,
    batch: usize,
    warm: &[SearchRequest],
    reqs: &[SearchRequest],
) -> anyhow::Result<(Indexing, QueryRun)> {
    let http = reqwest::Client::new();
    let stats_url = format!(
        "{}/{}/_stats/merge,store,segments,translog",
        url.trim_end_matches('/'),
        ix.alias()
    );
    eprintln!(
        "opensearch: indexing {} messages into {} (bulks of {batch})",
        docs.len(),
        ix.alias()
    );
    let cpu = Cpu::now();
    let started = Instant::now();
    let mut step = 0;
    let mut from = 0i64;
    for chunk in docs.chunks(batch.max(1)) {
        let to = chunk.last().map_or(from, |d| d.position);
        ix.apply(from, sent(chunk), to)
            .await
            .context("opensearch apply")?;
        from = to;
        progress("opensearch", to as usize, docs.len(), started, &mut step);
    }
    let applied = started.elapsed();
    let t = Instant::now();
    ix.visible_position(from).await?;
    let refresh = t.elapsed();
    let seconds = started.elapsed().as_secs_f64();
    let (busy, process) = Cpu::now().since(&cpu);
    let stats = get_json(&http, &stats_url).await?;
    let store = |s: &Value| s["_all"]["primaries"]["store"]["size_in_bytes"].as_u64();
    let segments = |s: &Value| s["_all"]["primaries"]["segments"]["count"].as_u64();
    let bytes_at_end = store(&stats);
    let segments_at_end = segments(&stats);
    eprintln!(
        "opensearch: {:.0} messages/s; {} bytes, {} segments; waiting for merges",
        docs.len() as f64 / seconds,
        bytes_at_end.unwrap_or(0),
        segments_at_end.unwrap_or(0)
    );
    let settle = Instant::now();
    let mut quiet = 0;
    let mut stats = stats;
    while quiet < 5 && settle.elapsed() < Duration::from_secs(900) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        stats = get_json(&http, &stats_url).await?;
        if stats["_all"]["primaries"]["merges"]["current"].as_u64() == Some(0) {
            quiet += 1;
        } else {
            quiet = 0;
        }
    }
    let settle_seconds = settle.elapsed().as_secs_f64() - f64::from(quiet);
    let translog = stats["_all"]["primaries"]["translog"]["size_in_bytes"].as_u64();
    eprintln!(
        "opensearch: settled after {settle_seconds:.1} s: {} bytes, {} segments",
        store(&stats).unwrap_or(0),
        segments(&stats).unwrap_or(0)
    );
    let indexing = Indexing {
        backend: "opensearch",
        messages: docs.len(),
        batch,
        seconds,
        messages_per_s: docs.len() as f64 / seconds,
        phases: vec![
            Phase::new("bulk + checkpoint document", applied),
            Phase::new("_refresh", refresh),
        ],
        bytes_after_last_commit: bytes_at_end,
        bytes: store(&stats).unwrap_or(0),
        settle_seconds,
        segments_after_last_commit: segments_at_end,
        segments: segments(&stats),
        busy_cores: busy,
        bench_process_cores: process,
        notes: vec![format!(
            "1 shard, 0 replicas, refresh_interval 500ms; store size of the primary (translog \
             {:.0} MiB more)",
            translog.unwrap_or(0) as f64 / (1 << 20) as f64
        )],
    };
    eprintln!("opensearch: {} queries", reqs.len());
    let run = run_backend("opensearch", ix, warm, reqs).await?;
    Ok((indexing, run))
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// Server settings worth reporting.
pub struct PgInfo {
    pub version: String,
    pub settings: Vec<(String, String)>,
}

const CREATE: &str = "CREATE TABLE messages (
    message_id uuid PRIMARY KEY,
    room_id uuid NOT NULL,
    sender_id uuid NOT NULL,
    sent_at timestamptz NOT NULL,
    sent_position bigint NOT NULL,
    body text NOT NULL,
    tsv tsvector NOT NULL
)";

const INSERT: &str = "INSERT INTO messages
    (message_id, room_id, sender_id, sent_at, sent_position, body, tsv)
    SELECT m, r, s, t, p, b, to_tsvector('simple', b)
    FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::int8[], $6::text[])
        AS u(m, r, s, t, p, b)";

pub async fn postgres(
    docs: Arc<Vec<MessageDoc>>,
    database_url: &str,
    batch: usize,
    connections: usize,
    queries: &[Query],
    warm: &[Query],
) -> anyhow::Result<(Indexing, QueryRun, PgInfo)> {
    let admin_opts = PgConnectOptions::from_str(database_url)
        .with_context(|| format!("the database URL {database_url:?}"))?;
    let mut admin = PgConnection::connect_with(&admin_opts)
        .await
        .with_context(|| format!("connect to {database_url}"))?;
    let db = format!(
        "search_bench_{}",
        &Uuid::new_v4().simple().to_string()[..12]
    );
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
        .await
        .with_context(|| format!("create the database {db}"))?;
    eprintln!("postgres: database {db}");
    let result = postgres_run(
        docs,
        admin_opts.clone().database(&db),
        batch,
        connections,
        queries,
        warm,
    )
    .await;
    eprintln!("postgres: dropping {db}");
    let dropped = admin
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"
        )))
        .await;
    let _ = admin.close().await;
    let result = result?;
    dropped.with_context(|| format!("drop the database {db}"))?;
    Ok(result)
}

async fn postgres_run(
    docs: Arc<Vec<MessageDoc>>,
    opts: PgConnectOptions,
    batch: usize,
    connections: usize,
    queries: &[Query],
    warm: &[Query],
) -> anyhow::Result<(Indexing, QueryRun, PgInfo)> {
    let mut conn = PgConnection::connect_with(&opts).await?;
    let mut info = PgInfo {
        version: String::new(),
        settings: Vec::new(),
    };
    for name in [
        "server_version",
        "shared_buffers",
        "work_mem",
        "maintenance_work_mem",
        "max_parallel_maintenance_workers",
        "synchronous_commit",
        "lc_ctype",
    ] {
        let (v,): (String,) = sqlx::query_as(AssertSqlSafe(format!("SHOW {name}")))
            .fetch_one(&mut conn)
            .await
            .with_context(|| format!("SHOW {name}"))?;
        if name == "server_version" {
            info.version = v;
        } else {
            info.settings.push((name.to_owned(), v));
        }
    }
    conn.execute(CREATE).await.context("create the table")?;

    eprintln!(
        "postgres: loading {} messages (UNNEST batches of {batch} over {connections} connections)",
        docs.len()
    );
    let pool = PgPoolOptions::new()
        .max_connections(connections.max(1) as u32)
        .connect_with(opts.clone())
        .await?;
    let cpu = Cpu::now();
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let batches = docs.len().div_ceil(batch.max(1));
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let (pool, docs, next, done) = (pool.clone(), docs.clone(), next.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut step = 0;
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return anyhow::Ok(());
                }
                let chunk = &docs[b * batch..((b + 1) * batch).min(docs.len())];
                let ids: Vec<Uuid> = chunk.iter().map(|d| d.message_id).collect();
                let rooms: Vec<Uuid> = chunk.iter().map(|d| d.room_id).collect();
                let senders: Vec<Uuid> = chunk.iter().map(|d| d.sender_id).collect();
                let times: Vec<DateTime<Utc>> = chunk.iter().map(|d| d.sent_at).collect();
                let positions: Vec<i64> = chunk.iter().map(|d| d.sent_position).collect();
                let bodies: Vec<String> = chunk.iter().map(|d| d.body.clone()).collect();
                sqlx::query(INSERT)
                    .bind(ids)
                    .bind(rooms)
                    .bind(senders)
                    .bind(times)
                    .bind(positions)
                    .bind(bodies)
                    .execute(&pool)
                    .await
                    .context("insert a batch")?;
                let n = done.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len();
                progress("postgres", n, docs.len(), started, &mut step);
            }
        }));
    }
    for t in tasks {
        t.await.context("a loading task")??;
    }
    pool.close().await;
    let inserted = started.elapsed();
    let mut phases = vec![Phase::new(
        "INSERT … UNNEST with to_tsvector('simple', body)",
        inserted,
    )];
    for (name, sql) in [
        (
            "CREATE INDEX … USING GIN (tsv)",
            "CREATE INDEX messages_tsv ON messages USING GIN (tsv)",
        ),
        (
            "CREATE INDEX … (room_id)",
            "CREATE INDEX messages_room ON messages (room_id)",
        ),
        ("ANALYZE", "ANALYZE messages"),
    ] {
        eprintln!("postgres: {name}");
        let t = Instant::now();
        conn.execute(sql).await.with_context(|| name.to_owned())?;
        phases.push(Phase::new(name, t.elapsed()));
    }
    let seconds = started.elapsed().as_secs_f64();
    let (busy, process) = Cpu::now().since(&cpu);
    let (total, heap, gin, room, pkey): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT pg_total_relation_size('messages'), pg_relation_size('messages'),
                pg_relation_size('messages_tsv'), pg_relation_size('messages_room'),
                pg_relation_size('messages_pkey')",
    )
    .fetch_one(&mut conn)
    .await?;
    eprintln!(
        "postgres: {:.0} messages/s; {total} bytes",
        docs.len() as f64 / seconds
    );
    let mb = |b: i64| b as f64 / (1 << 20) as f64;
    let indexing = Indexing {
        backend: "postgres",
        messages: docs.len(),
        batch,
        seconds,
        messages_per_s: docs.len() as f64 / seconds,
        phases,
        bytes_after_last_commit: None,
        bytes: total as u64,
        settle_seconds: 0.0,
        segments_after_last_commit: None,
        segments: None,
        busy_cores: busy,
        bench_process_cores: process,
        notes: vec![format!(
            "pg_total_relation_size: heap {:.0} MiB, GIN {:.0} MiB, room_id btree {:.0} MiB, \
             primary key {:.0} MiB, TOAST and maps {:.0} MiB; {connections} loading connections",
            mb(heap),
            mb(gin),
            mb(room),
            mb(pkey),
            mb(total - heap - gin - room - pkey)
        )],
    };

    // Synapse's driver (psycopg2) sends each query with its values inlined, so each is planned
    // for its values: the same as a custom plan of a prepared statement.
    conn.execute("SET plan_cache_mode = force_custom_plan")
        .await?;
    eprintln!("postgres: {} queries", queries.len());
    for q in warm {
        pg_search(&mut conn, q).await?;
    }
    let mut run = QueryRun::new("postgres");
    let cpu = Cpu::now();
    let started = Instant::now();
    for q in queries {
        let t = Instant::now();
        let hits = pg_search(&mut conn, q).await?;
        run.record(t.elapsed(), hits);
    }
    run.finish(started, &cpu);
    let _ = conn.close().await;
    Ok((indexing, run, info))
}

/// The statement of a query (the text and the caller's rooms are `$1` and `$2`).
pub fn pg_sql(q: &Query) -> String {
    let mut filters = String::new();
    if q.sender.is_some() {
        filters.push_str(" AND sender_id = $3");
    }
    if q.sent_from.is_some() {
        filters.push_str(" AND sent_at >= $3 AND sent_at < $4");
    }
    format!(
        "SELECT message_id, room_id, sender_id, sent_at, sent_position, body \
         FROM messages, {}('simple', $1) AS q \
         WHERE tsv @@ q AND room_id = ANY($2){filters} \
         ORDER BY ts_rank(tsv, q) DESC, sent_position DESC LIMIT {LIMIT}",
        q.pg_function
    )
}

type Row = (Uuid, Uuid, Uuid, DateTime<Utc>, i64, String);

async fn pg_search(conn: &mut PgConnection, q: &Query) -> anyhow::Result<usize> {
    let sql = pg_sql(q);
    let mut query = sqlx::query_as::<_, Row>(AssertSqlSafe(sql))
        .bind(&q.pg_text)
        .bind(&q.rooms);
    if let Some(s) = q.sender {
        query = query.bind(s);
    }
    if let (Some(from), Some(before)) = (q.sent_from, q.sent_before) {
        query = query.bind(from).bind(before);
    }
    let rows = query
        .fetch_all(&mut *conn)
        .await
        .with_context(|| format!("PostgreSQL query {:?}", q.pg_text))?;
    Ok(rows.len())
}
