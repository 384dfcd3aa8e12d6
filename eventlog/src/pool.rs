//! The connection pool every role uses, and beginning transactions on it safely.
//!
//! **Cancelled `BEGIN`s.** A request future dropped (the client hung up, a timeout) while
//! sqlx 0.9 waits for the answer to `BEGIN` leaves the connection inside a transaction that
//! sqlx does not know about, and it goes back to the pool so: later, unrelated work runs in
//! that transaction or fails to set its isolation level (sqlx issue 4393). [`begin`] and
//! [`begin_with`] run the `BEGIN` in a task of its own, which a dropped caller cannot cancel
//! half-way; a transaction nobody takes is then dropped whole, which rolls it back before
//! the connection is reused.

use sqlx::{PgPool, Postgres, SqlSafeStr, Transaction};

/// Pool settings shared by every role: at most `max` connections, a 5 s acquire timeout, and
/// no `SELECT 1` round trip before handing out a connection (`test_before_acquire`), which would
/// double the round trips of the hot paths. A connection that died while idle fails its next
/// query instead, and the pool then drops it; every caller already treats a database error as
/// retryable.
pub fn pool_options(max: u32) -> sqlx::postgres::PgPoolOptions {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .test_before_acquire(false)
}

/// `pool.begin()`, but safe to cancel: see the module docs.
pub async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let pool = pool.clone();
    spawned(async move { pool.begin().await }).await
}

/// `pool.begin_with(statement)` (e.g. `BEGIN ISOLATION LEVEL REPEATABLE READ`), but safe to
/// cancel: see the module docs.
pub async fn begin_with(
    pool: &PgPool,
    statement: impl SqlSafeStr + Send + 'static,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let pool = pool.clone();
    let statement = statement.into_sql_str();
    spawned(async move { pool.begin_with(statement).await }).await
}

async fn spawned(
    begin: impl std::future::Future<Output = Result<Transaction<'static, Postgres>, sqlx::Error>>
    + Send
    + 'static,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    // Only a panic or a runtime shutting down ends the task early.
    tokio::spawn(begin)
        .await
        .map_err(|_| sqlx::Error::WorkerCrashed)?
}
