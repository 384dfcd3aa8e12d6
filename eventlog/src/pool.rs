//! The connection pool every role uses, and beginning transactions on it safely.
//!
//! Two hazards of a pool are handled here rather than at every call site:
//!
//! - **Dead idle connections.** A pooled connection that was idle when PostgreSQL went away
//!   (restart, crash, fail-over) fails on its next use ("expected to read 5 bytes, got 0
//!   bytes at EOF"), and the pool only discards it then: after an outage every idle
//!   connection costs one failed request or projector step. Testing every connection
//!   before handing it out (`test_before_acquire`) would cost a round trip on every hot
//!   query, so [`pool_options`] tests only the connections that may have died unnoticed:
//!   those idle for longer than [`TEST_IDLE_AFTER`], and those idle since before the last
//!   connection error this process saw ([`connection_failed`]).
//! - **Cancelled `BEGIN`s.** A request future dropped (the client hung up, a timeout) while
//!   sqlx 0.9 waits for the answer to `BEGIN` leaves the connection inside a transaction
//!   that sqlx does not know about, and it goes back to the pool so: later, unrelated
//!   work runs in that transaction or fails to set its isolation level (sqlx issue 4393).
//!   [`begin`] and [`begin_with`] run the `BEGIN` in a task of its own, which a dropped
//!   caller cannot cancel half-way; a transaction nobody takes is then dropped whole,
//!   which rolls it back before the connection is reused. A `BEGIN` that meets a broken
//!   connection is sent once more on another one (it did nothing).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection as _, PgPool, Postgres, SqlSafeStr, Transaction};

use crate::store::is_connection_error;

/// A connection idle for longer than this is tested (`SELECT`-free ping: one round trip)
/// before it is handed out. Busy connections are never idle this long, so the hot paths
/// pay nothing; a quiet process pays one round trip per request at most.
pub const TEST_IDLE_AFTER: Duration = Duration::from_secs(1);

/// How long the test of an idle connection may take before the connection is dropped.
const PING_WITHIN: Duration = Duration::from_secs(1);

/// How long a role waits for a connection (free in the pool or newly opened).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest pause between two attempts of [`connect_waiting`].
pub const CONNECT_RETRY_MAX: Duration = Duration::from_secs(5);

/// Opens a pool with `options` to `url`, waiting while waiting can help: PostgreSQL not
/// answering yet, starting up, or the database not created yet (a role started before
/// PostgreSQL, or before command-api created the database). Each failed attempt is
/// logged with its reason, `what` the setting it came from; the pauses double from
/// 100 ms up to [`CONNECT_RETRY_MAX`]. Errors that no wait can fix (a wrong password, a
/// role that does not exist, a malformed URL) are returned at once.
pub async fn connect_waiting(
    options: sqlx::postgres::PgPoolOptions,
    url: sqlx::postgres::PgConnectOptions,
    what: &str,
) -> Result<PgPool, sqlx::Error> {
    let mut pause = Duration::from_millis(100);
    loop {
        match options.clone().connect_with(url.clone()).await {
            Ok(pool) => return Ok(pool),
            Err(e) if worth_waiting_for(&e) => {
                tracing::warn!(error = %e, setting = what, retry_in = ?pause,
                    "PostgreSQL is not ready for this role yet; waiting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(CONNECT_RETRY_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Can waiting fix this error of a first connection?
fn worth_waiting_for(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // invalid_catalog_name (the database does not exist), cannot_connect_now
        // (starting up or shutting down), too_many_connections.
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("3D000" | "57P03" | "53300"))
        }
        _ => is_connection_error(e),
    }
}

/// Pool settings shared by every role: at most `max` connections, an [`ACQUIRE_TIMEOUT`],
/// and a test of every connection that may have died while idle (see the module docs).
pub fn pool_options(max: u32) -> sqlx::postgres::PgPoolOptions {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < TEST_IDLE_AFTER && !failed_within(meta.idle_for) {
                    return Ok(true);
                }
                match tokio::time::timeout(PING_WITHIN, conn.ping()).await {
                    Ok(Ok(())) => Ok(true),
                    // An error closes the connection without a goodbye; the pool opens
                    // another one.
                    Ok(Err(e)) => {
                        connection_failed();
                        Err(e)
                    }
                    Err(_) => {
                        connection_failed();
                        Err(sqlx::Error::Io(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "an idle pooled connection did not answer a ping",
                        )))
                    }
                }
            })
        })
}

/// Process start, the origin of [`LAST_FAILURE_MS`].
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Milliseconds after [`origin`] (plus one: 0 means never) of the last connection error.
static LAST_FAILURE_MS: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    u64::try_from(origin().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Records that a connection to PostgreSQL failed now: every pooled connection idle since
/// before this moment is tested before its next use. (Process-wide, not per pool: the
/// pools of one process reach the same server, and a needless test costs one round trip.)
pub fn connection_failed() {
    LAST_FAILURE_MS.fetch_max(now_ms().saturating_add(1), Ordering::AcqRel);
}

/// [`connection_failed`] if `e` is a connection error ([`is_connection_error`]).
pub fn note(e: &sqlx::Error) {
    if is_connection_error(e) {
        connection_failed();
    }
}

/// [`note`] for every `sqlx::Error` in `e`'s chain.
pub fn note_any(e: &anyhow::Error) {
    for cause in e.chain() {
        if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
            note(e);
        }
    }
}

/// Whether a connection error was recorded in the last `idle_for` (i.e. while a
/// connection idle that long sat in the pool), give or take a millisecond.
fn failed_within(idle_for: Duration) -> bool {
    let last = LAST_FAILURE_MS.load(Ordering::Acquire);
    if last == 0 {
        return false;
    }
    let idle_ms = u64::try_from(idle_for.as_millis()).unwrap_or(u64::MAX);
    // `last - 1` is the failure's time and the connection went idle at `now - idle_for`:
    // a failure in the same millisecond counts.
    last >= now_ms().saturating_sub(idle_ms)
}

/// `pool.begin()`, but safe to cancel, and tried once more on another connection when the
/// first one turns out to be broken: see the module docs.
pub async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let pool = pool.clone();
    spawned(async move {
        match pool.begin().await {
            Err(e) if is_broken_connection(&e) => {
                connection_failed();
                pool.begin().await
            }
            other => other,
        }
    })
    .await
}

/// `pool.begin_with(statement)` (e.g. `BEGIN ISOLATION LEVEL REPEATABLE READ`), but safe to
/// cancel, and tried once more on another connection when the first one turns out to be
/// broken: see the module docs.
pub async fn begin_with(
    pool: &PgPool,
    statement: impl SqlSafeStr + Send + 'static,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let pool = pool.clone();
    let statement = statement.into_sql_str();
    spawned(async move {
        match pool.begin_with(statement.clone()).await {
            Err(e) if is_broken_connection(&e) => {
                connection_failed();
                pool.begin_with(statement).await
            }
            other => other,
        }
    })
    .await
}

/// Whether `e` says a connection broke under a statement (rather than none being had in
/// time): it was stale, e.g. idle across a restart of PostgreSQL, and the same statement on
/// another connection may well succeed at once. (A `BEGIN` that failed so did nothing, so
/// [`begin`] sends it again; the failure marked the idle connections for a test first.)
pub fn is_broken_connection(e: &sqlx::Error) -> bool {
    is_connection_error(e) && !matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
}

async fn spawned(
    begin: impl std::future::Future<Output = Result<Transaction<'static, Postgres>, sqlx::Error>>
    + Send
    + 'static,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    // Only a panic or a runtime shutting down ends the task early.
    let result = tokio::spawn(begin)
        .await
        .map_err(|_| sqlx::Error::WorkerCrashed)?;
    if let Err(e) = &result {
        note(e);
    }
    result
}

/// Attempts of [`migrate_retrying`].
const MIGRATE_ATTEMPTS: u32 = 5;

/// Runs `migrator` on `pool`, again when PostgreSQL broke a deadlock by failing it. Every role
/// migrates its own tables at start, under sqlx's advisory lock; a migration that builds an
/// index `CONCURRENTLY` (the log's payload indexes) waits for every open transaction, among
/// them another role's statement waiting for that lock: PostgreSQL then fails one of the two
/// (40P01). The other goes on, and the failed one succeeds when tried again.
pub async fn migrate_retrying(
    migrator: &sqlx::migrate::Migrator,
    pool: &PgPool,
) -> Result<(), sqlx::migrate::MigrateError> {
    let mut attempt = 1;
    loop {
        match migrator.run(pool).await {
            Err(e) if attempt < MIGRATE_ATTEMPTS && is_deadlock(&e) => {
                tracing::info!(
                    attempt,
                    "a migration lost a deadlock to another role's; again"
                );
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn is_deadlock(e: &sqlx::migrate::MigrateError) -> bool {
    let db = match e {
        sqlx::migrate::MigrateError::Execute(e)
        | sqlx::migrate::MigrateError::ExecuteMigration(e, _) => e.as_database_error(),
        _ => None,
    };
    db.and_then(|d| d.code()).as_deref() == Some("40P01")
}
