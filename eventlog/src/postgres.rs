//! The PostgreSQL event log: schema, the append core ([`append_in_tx`]), reads and
//! [`PgEventStore`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgExecutor, PgPool, Row};
use uuid::Uuid;

use crate::group_commit::{self, GroupCommitConfig};
use crate::store::{
    AppendError, AppendRequest, Appended, EventStore, IdempotencyClaim, IdempotencyRecord,
    IdempotencyScope, IndexedField, NewEvent, RecordedEvent, StoreError,
};

/// The NOTIFY channel that carries the last committed position after every append.
pub const APPENDED_CHANNEL: &str = "eventlog_appended";

/// Name of the unique constraint on `(stream_id, version)` (see the migration).
const STREAM_VERSION_CONSTRAINT: &str = "events_stream_id_version_key";

/// Runs this crate's migrations. Other crates keep their own migrations in the same database,
/// so migrations applied but unknown here are ignored.
pub(crate) async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    crate::pool::migrate_retrying(&migrator, pool).await
}

/// `SELECT <all event columns> FROM events <rest>` as a `&'static str`.
macro_rules! select_events {
    ($rest:literal) => {
        concat!(
            "SELECT position, event_id, stream_id, stream_type, version, event_type, ",
            "schema_version, occurred_at, actor_id, correlation_id, causation_id, data FROM events ",
            $rest
        )
    };
}

fn event_from_row(row: &PgRow) -> Result<RecordedEvent, sqlx::Error> {
    Ok(RecordedEvent {
        position: row.try_get("position")?,
        event_id: row.try_get("event_id")?,
        stream_id: row.try_get("stream_id")?,
        stream_type: row.try_get("stream_type")?,
        version: row.try_get("version")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        occurred_at: row.try_get("occurred_at")?,
        actor_id: row.try_get("actor_id")?,
        correlation_id: row.try_get("correlation_id")?,
        causation_id: row.try_get("causation_id")?,
        data: row.try_get("data")?,
    })
}

/// Events with `position > after_position`, in position order, at most `limit`.
pub async fn read_all<'e>(
    executor: impl PgExecutor<'e>,
    after_position: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let rows = sqlx::query(select_events!(
        "WHERE position > $1 ORDER BY position LIMIT $2"
    ))
    .bind(after_position)
    .bind(limit.max(0))
    .fetch_all(executor)
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// Events of one stream with `version > after_version`, in version order, at most `limit`.
pub async fn read_stream<'e>(
    executor: impl PgExecutor<'e>,
    stream_id: &str,
    after_version: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let rows = sqlx::query(select_events!(
        "WHERE stream_id = $1 AND version > $2 ORDER BY version LIMIT $3"
    ))
    .bind(stream_id)
    .bind(after_version)
    .bind(limit.max(0))
    .fetch_all(executor)
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// See [`EventStore::read_stream_of_types`]. One statement: the stream's events of those
/// types plus its newest event (for the version), so both come from one snapshot.
pub(crate) async fn read_stream_of_types<'e>(
    executor: impl PgExecutor<'e>,
    stream_id: &str,
    event_types: &[&str],
) -> Result<(Vec<RecordedEvent>, i64), sqlx::Error> {
    let rows = sqlx::query(select_events!(
        "WHERE stream_id = $1 AND (event_type = ANY($2) \
           OR version = (SELECT max(version) FROM events WHERE stream_id = $1)) \
         ORDER BY version"
    ))
    .bind(stream_id)
    .bind(event_types)
    .fetch_all(executor)
    .await?;
    let mut events = Vec::with_capacity(rows.len());
    let mut version = 0;
    for row in &rows {
        let ev = event_from_row(row)?;
        version = ev.version;
        if event_types.contains(&ev.event_type.as_str()) {
            events.push(ev);
        }
    }
    Ok((events, version))
}

/// See [`EventStore::read_stream_by_field`]. Each statement repeats its index's predicate
/// so the planner can use the partial index.
pub(crate) async fn read_stream_by_field<'e>(
    executor: impl PgExecutor<'e>,
    stream_id: &str,
    field: IndexedField,
    values: &[String],
    up_to_version: i64,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let sql = match field {
        IndexedField::MessageId => select_events!(
            "WHERE (data->>'message_id') IS NOT NULL AND stream_id = $1 \
               AND (data->>'message_id') = ANY($2) AND version <= $3 ORDER BY version"
        ),
        IndexedField::ClientMsgId => select_events!(
            "WHERE (data->>'client_msg_id') IS NOT NULL AND stream_id = $1 \
               AND (data->>'client_msg_id') = ANY($2) AND version <= $3 ORDER BY version"
        ),
    };
    let rows = sqlx::query(sql)
        .bind(stream_id)
        .bind(values)
        .bind(up_to_version)
        .fetch_all(executor)
        .await?;
    rows.iter().map(event_from_row).collect()
}

/// The position of the last committed event (0 when the log is empty).
pub async fn head_position<'e>(executor: impl PgExecutor<'e>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT position FROM log_head")
        .fetch_one(executor)
        .await
}

/// The log's identity (created with the schema; see [`crate::relay::stream_description`]).
pub async fn log_id<'e>(executor: impl PgExecutor<'e>) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar("SELECT log_id FROM log_identity")
        .fetch_one(executor)
        .await
}

/// The idempotency records of `keys` in `scope`.
pub(crate) async fn lookup_idempotency<'e>(
    executor: impl PgExecutor<'e>,
    scope: &IdempotencyScope,
    keys: &[String],
) -> Result<HashMap<String, IdempotencyRecord>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(
        // One primary-key probe per key. (`key = ANY($2)` and a plain join let the
        // planner pick a sequential scan of the whole, ever-growing table; the
        // LIMIT keeps the lateral subquery from being flattened into such a join.)
        "SELECT k.key, k.fingerprint, k.first_position, k.last_position \
         FROM unnest($2::text[]) AS c(key) \
         CROSS JOIN LATERAL (SELECT key, fingerprint, first_position, last_position \
           FROM idempotency_keys WHERE scope = $1 AND key = c.key LIMIT 1) AS k",
    )
    .bind(scope.as_str())
    .bind(keys)
    .fetch_all(executor)
    .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        out.insert(
            row.try_get::<String, _>("key")?,
            IdempotencyRecord {
                fingerprint: row.try_get("fingerprint")?,
                first_position: row.try_get("first_position")?,
                last_position: row.try_get("last_position")?,
            },
        );
    }
    Ok(out)
}

/// Column arrays for the one multi-row insert of events.
#[derive(Default)]
pub(crate) struct EventColumns {
    pub(crate) position: Vec<i64>,
    pub(crate) event_id: Vec<Uuid>,
    pub(crate) stream_id: Vec<String>,
    pub(crate) stream_type: Vec<String>,
    pub(crate) version: Vec<i64>,
    pub(crate) event_type: Vec<String>,
    pub(crate) schema_version: Vec<i32>,
    pub(crate) occurred_at: Vec<DateTime<Utc>>,
    pub(crate) actor_id: Vec<Option<Uuid>>,
    pub(crate) correlation_id: Vec<Uuid>,
    pub(crate) causation_id: Vec<Option<Uuid>>,
    pub(crate) data: Vec<serde_json::Value>,
}

/// Column arrays for the one multi-row insert of idempotency records.
#[derive(Default)]
pub(crate) struct ClaimColumns {
    pub(crate) scope: Vec<String>,
    pub(crate) key: Vec<String>,
    pub(crate) fingerprint: Vec<String>,
    pub(crate) first_position: Vec<i64>,
    pub(crate) last_position: Vec<i64>,
}

impl EventColumns {
    /// Adds `ev`, the event of `req` at `position` and stream `version`.
    pub(crate) fn push(&mut self, position: i64, version: i64, req: &AppendRequest, ev: &NewEvent) {
        self.position.push(position);
        self.event_id.push(ev.event_id);
        self.stream_id.push(req.stream_id.clone());
        self.stream_type.push(req.stream_type.clone());
        self.version.push(version);
        self.event_type.push(ev.event_type.clone());
        self.schema_version.push(ev.schema_version);
        self.occurred_at.push(ev.occurred_at);
        self.actor_id.push(ev.actor_id);
        self.correlation_id.push(ev.correlation_id);
        self.causation_id.push(ev.causation_id);
        self.data.push(ev.data.clone());
    }
}

impl ClaimColumns {
    /// Adds claim `c` of a request that appended `first_position..=last_position`.
    pub(crate) fn push(&mut self, c: &IdempotencyClaim, first_position: i64, last_position: i64) {
        self.scope.push(c.scope.as_str().to_owned());
        self.key.push(c.key.clone());
        self.fingerprint.push(c.fingerprint.clone());
        self.first_position.push(first_position);
        self.last_position.push(last_position);
    }
}

/// The statement that takes the log head's row lock, shared by [`BEGIN_APPEND`] and
/// [`append_in_tx`].
macro_rules! lock_head {
    () => {
        "SELECT 1 FROM log_head FOR UPDATE"
    };
}

/// Starts an append transaction and takes the log head's row lock in the same round trip
/// (`pool.begin_with(BEGIN_APPEND)`); [`append_locked`] expects it.
///
/// It also makes the transaction's prepared statements run their generic plans. With array
/// parameters PostgreSQL otherwise keeps choosing a custom plan, so the read and the insert
/// were planned again on every group commit: a fifth of the backend's CPU, spent while
/// holding the head lock that every append waits for.
pub const BEGIN_APPEND: &str = concat!(
    "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; ",
    lock_head!()
);

/// The append core: appends a batch of requests inside the caller's transaction.
///
/// Locks the log head first (so positions are gapless and commit-ordered), then checks every
/// request in order against the current stream versions and idempotency keys (with running
/// in-memory state, so requests on one stream chain). A rejected request appends nothing and
/// does not affect the others. The caller must commit the transaction; nothing is durable before.
///
/// An `Err` means the transaction is unusable and must be rolled back.
pub async fn append_in_tx(
    tx: &mut PgConnection,
    reqs: &[AppendRequest],
) -> Result<Vec<Result<Appended, AppendError>>, sqlx::Error> {
    sqlx::query(lock_head!()).execute(&mut *tx).await?;
    append_locked(tx, reqs).await
}

/// [`append_in_tx`] for a transaction that already holds the head lock because it was started
/// with [`BEGIN_APPEND`] (the group committer's way: one round trip fewer).
pub async fn append_locked(
    tx: &mut PgConnection,
    reqs: &[AppendRequest],
) -> Result<Vec<Result<Appended, AppendError>>, sqlx::Error> {
    // The caller's transaction already holds the head row lock (`BEGIN_APPEND`), so this
    // statement's snapshot sees every earlier commit: the head, the current version of every
    // stream in the batch (index-backed max per stream) and which claimed idempotency keys are
    // taken (a primary-key probe per claim, never a scan; see `lookup_idempotency`).
    let mut stream_ids: Vec<String> = reqs.iter().map(|r| r.stream_id.clone()).collect();
    stream_ids.sort_unstable();
    stream_ids.dedup();
    let (claim_scopes, claim_keys): (Vec<String>, Vec<String>) = reqs
        .iter()
        .flat_map(|r| r.idempotency.iter())
        .map(|c| (c.scope.as_str().to_owned(), c.key.clone()))
        .unzip();
    let rows = sqlx::query(
        "SELECT 'head' AS kind, NULL::text AS a, NULL::text AS b, position AS n FROM log_head \
         UNION ALL \
         SELECT 'version', s.id, NULL, \
           COALESCE((SELECT max(e.version) FROM events e WHERE e.stream_id = s.id), 0) \
         FROM unnest($1::text[]) AS s(id) \
         UNION ALL \
         SELECT 'taken', k.scope, k.key, 0 FROM unnest($2::text[], $3::text[]) AS c(scope, key) \
         CROSS JOIN LATERAL (SELECT scope, key FROM idempotency_keys \
           WHERE scope = c.scope AND key = c.key LIMIT 1) AS k",
    )
    .bind(&stream_ids)
    .bind(&claim_scopes)
    .bind(&claim_keys)
    .fetch_all(&mut *tx)
    .await?;
    let mut head: Option<i64> = None;
    let mut versions: HashMap<String, i64> = HashMap::with_capacity(stream_ids.len());
    let mut taken: HashSet<(String, String)> = HashSet::new();
    for row in rows {
        let kind: &str = row.try_get("kind")?;
        match kind {
            "head" => head = Some(row.try_get("n")?),
            "version" => {
                versions.insert(row.try_get("a")?, row.try_get("n")?);
            }
            _ => {
                taken.insert((row.try_get("a")?, row.try_get("b")?));
            }
        }
    }
    let head = head.ok_or_else(|| sqlx::Error::RowNotFound)?;

    let mut results = Vec::with_capacity(reqs.len());
    let mut events = EventColumns::default();
    let mut claims = ClaimColumns::default();
    let mut position = head;
    'requests: for req in reqs {
        // Idempotency first: a retried command must see "duplicate" (and then look up the stored
        // response) rather than a version conflict caused by its own first attempt.
        let mut own: HashSet<(&str, &str)> = HashSet::new();
        for c in &req.idempotency {
            let dup_in_req = !own.insert((c.scope.as_str(), c.key.as_str()));
            if dup_in_req || taken.contains(&(c.scope.as_str().to_owned(), c.key.clone())) {
                results.push(Err(AppendError::DuplicateIdempotencyKey {
                    scope: c.scope.clone(),
                    key: c.key.clone(),
                }));
                continue 'requests;
            }
        }

        let current = versions.get(&req.stream_id).copied().unwrap_or(0);
        if !req.expected.matches(current) {
            results.push(Err(AppendError::Conflict {
                stream_id: req.stream_id.clone(),
                expected: req.expected.to_string(),
                actual: current,
            }));
            continue;
        }

        let first_position = position + 1;
        let first_version = current + 1;
        let mut version = current;
        for ev in &req.events {
            position += 1;
            version += 1;
            events.push(position, version, req, ev);
        }
        versions.insert(req.stream_id.clone(), version);

        for c in &req.idempotency {
            taken.insert((c.scope.as_str().to_owned(), c.key.clone()));
            claims.push(c, first_position, position);
        }

        results.push(Ok(Appended {
            first_version,
            last_version: version,
            first_position,
            last_position: position,
        }));
    }

    if events.position.is_empty() && claims.scope.is_empty() {
        return Ok(results);
    }
    // Events, idempotency records, the new head and the NOTIFY (delivered at commit) in one
    // statement.
    let written = sqlx::query(
        "WITH ev AS (INSERT INTO events (position, event_id, stream_id, stream_type, version, \
           event_type, schema_version, occurred_at, actor_id, correlation_id, causation_id, data) \
           SELECT * FROM UNNEST($1::int8[], $2::uuid[], $3::text[], $4::text[], $5::int8[], \
           $6::text[], $7::int4[], $8::timestamptz[], $9::uuid[], $10::uuid[], $11::uuid[], \
           $12::jsonb[])), \
         claims AS (INSERT INTO idempotency_keys (scope, key, fingerprint, first_position, \
           last_position) SELECT * FROM UNNEST($13::text[], $14::text[], $15::text[], \
           $16::int8[], $17::int8[])), \
         head AS (UPDATE log_head SET position = $18 WHERE position <> $18) \
         SELECT CASE WHEN $18 <> $19 THEN pg_notify($20, $18::text) END",
    )
    .bind(&events.position)
    .bind(&events.event_id)
    .bind(&events.stream_id)
    .bind(&events.stream_type)
    .bind(&events.version)
    .bind(&events.event_type)
    .bind(&events.schema_version)
    .bind(&events.occurred_at)
    .bind(&events.actor_id)
    .bind(&events.correlation_id)
    .bind(&events.causation_id)
    .bind(&events.data)
    .bind(&claims.scope)
    .bind(&claims.key)
    .bind(&claims.fingerprint)
    .bind(&claims.first_position)
    .bind(&claims.last_position)
    .bind(position)
    .bind(head)
    .bind(APPENDED_CHANNEL)
    .execute(&mut *tx)
    .await;
    if let Err(e) = written {
        // Cannot happen while every writer takes the head lock; if something wrote events
        // behind our back, report it as a conflict to every accepted request: none of them is
        // appended (the transaction is aborted and must be rolled back).
        if is_stream_version_violation(&e) {
            tracing::warn!(error = %e, "unique violation on (stream_id, version) under the head lock");
            for (slot, req) in results.iter_mut().zip(reqs) {
                if slot.is_ok() {
                    *slot = Err(AppendError::Conflict {
                        stream_id: req.stream_id.clone(),
                        expected: req.expected.to_string(),
                        actual: versions.get(&req.stream_id).copied().unwrap_or(0),
                    });
                }
            }
            return Ok(results);
        }
        return Err(e);
    }

    Ok(results)
}

fn is_stream_version_violation(e: &sqlx::Error) -> bool {
    is_unique_violation(e, Some(STREAM_VERSION_CONSTRAINT))
}

/// Whether `e` is a unique violation (of `constraint`, when given).
pub(crate) fn is_unique_violation(e: &sqlx::Error, constraint: Option<&str>) -> bool {
    e.as_database_error().is_some_and(|d| {
        d.code().as_deref() == Some("23505") && constraint.is_none_or(|c| d.constraint() == Some(c))
    })
}

/// The PostgreSQL [`EventStore`]. Cheap to clone. Appends go through group commit, whose
/// task starts with the first append: a store that only reads never starts it.
#[derive(Clone)]
pub struct PgEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    config: GroupCommitConfig,
    committer: OnceLock<group_commit::Handle>,
}

impl PgEventStore {
    /// The store over `pool`; its group committer is configured by `config`.
    pub fn new(pool: PgPool, config: GroupCommitConfig) -> Self {
        PgEventStore {
            inner: Arc::new(Inner {
                pool,
                config,
                committer: OnceLock::new(),
            }),
        }
    }

    /// A store used to read the log (a projector, the live feed): appends, if any, use the
    /// default group-commit settings.
    pub fn reader(pool: PgPool) -> Self {
        Self::new(pool, GroupCommitConfig::default())
    }

    /// Creates or upgrades the log's schema. Other crates keep their own migrations in the
    /// same database; migrations applied but unknown here are ignored.
    pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
        migrate(pool).await
    }

    /// Pool settings shared by every role (see [`crate::pool::pool_options`]).
    pub fn pool_options(max: u32) -> sqlx::postgres::PgPoolOptions {
        crate::pool::pool_options(max)
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Appends `reqs` inside the caller's transaction, together with whatever else the caller
    /// writes there (a registration's credentials row: ADR 4). Takes the log head's lock; the
    /// caller commits. The outer `Err` means the transaction is unusable and must be rolled
    /// back; each request's own outcome is in the inner results.
    pub async fn append_in_tx(
        &self,
        tx: &mut PgConnection,
        reqs: &[AppendRequest],
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        Ok(append_in_tx(tx, reqs).await?)
    }

    fn committer(&self) -> &group_commit::Handle {
        self.inner
            .committer
            .get_or_init(|| group_commit::spawn(self.inner.pool.clone(), self.inner.config.clone()))
    }
}

impl EventStore for PgEventStore {
    async fn append(&self, req: AppendRequest) -> Result<Appended, AppendError> {
        self.committer().append(req).await
    }

    async fn append_in_order(
        &self,
        reqs: Vec<AppendRequest>,
    ) -> Vec<Result<Appended, AppendError>> {
        self.committer().append_in_order(reqs).await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(read_stream(&self.inner.pool, stream_id, after_version, limit).await?)
    }

    async fn read_stream_of_types(
        &self,
        stream_id: &str,
        event_types: &[&str],
    ) -> Result<(Vec<RecordedEvent>, i64), StoreError> {
        Ok(read_stream_of_types(&self.inner.pool, stream_id, event_types).await?)
    }

    async fn read_stream_by_field(
        &self,
        stream_id: &str,
        field: IndexedField,
        values: &[String],
        up_to_version: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(read_stream_by_field(&self.inner.pool, stream_id, field, values, up_to_version).await?)
    }

    async fn read_all(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(read_all(&self.inner.pool, after_position, limit).await?)
    }

    async fn head_position(&self) -> Result<i64, StoreError> {
        Ok(head_position(&self.inner.pool).await?)
    }

    async fn log_id(&self) -> Result<Uuid, StoreError> {
        Ok(log_id(&self.inner.pool).await?)
    }

    async fn lookup_idempotency(
        &self,
        scope: &IdempotencyScope,
        keys: &[String],
    ) -> Result<HashMap<String, IdempotencyRecord>, StoreError> {
        Ok(lookup_idempotency(&self.inner.pool, scope, keys).await?)
    }
}
