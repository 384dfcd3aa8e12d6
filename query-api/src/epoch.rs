//! The epoch of the read models: which build of them the query side is serving.
//!
//! Every blue/green switch of a projection (and every in-place rebuild) bumps
//! `projection_checkpoints.epoch` and, in the same transaction, sends
//! `NOTIFY chat_projection_epoch, '<projection>:<epoch>'`. This node reads the `read_models`
//! row at start, re-reads it on every such notification (the payload only wakes it; the row
//! is the truth, so notifications that arrive late or out of order cannot move the value
//! back), and re-reads it every `epoch_poll_ms` as well: a notification missed while the
//! listening connection was down, or a database that cannot LISTEN at all (a hot standby
//! serving the read models), costs at most one poll interval.
//!
//! The value is published in a [`tokio::sync::watch`] channel ([`crate::state::AppState`]'s
//! `epoch`): REST responses carry it in the [`EPOCH_HEADER`] header ([`stamp`]) and the live
//! feed tells subscribed sockets to resync when it changes ([`crate::ws::hub::Hub::on_epoch`]).

use crate::READ_MODELS;
use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// The channel a projection switch notifies, with the payload `<projection>:<epoch>`.
pub const EPOCH_CHANNEL: &str = "chat_projection_epoch";

/// The response header carrying the epoch the read was served from (`Chat-Epoch`).
pub const EPOCH_HEADER: HeaderName = HeaderName::from_static("chat-epoch");

/// The epoch before the projection's checkpoint row exists (the column's default).
pub const FIRST_EPOCH: i64 = 1;

/// First and longest pause between two attempts to LISTEN after it failed.
const FIRST_LISTEN_RETRY: Duration = Duration::from_secs(1);
const MAX_LISTEN_RETRY: Duration = Duration::from_secs(60);

/// Reads the read models' epoch now and keeps it current in the background, until every
/// receiver is dropped. Fails when the first read fails (other than for a missing
/// `projection_checkpoints` table: the projector has not migrated yet, epoch
/// [`FIRST_EPOCH`]).
pub async fn watch(pool: PgPool, poll: Duration) -> anyhow::Result<watch::Receiver<i64>> {
    // LISTEN before the first read: a switch committed after the read is then notified.
    let listener = listen(&pool)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot LISTEN for epoch changes; polling only");
        })
        .ok();
    let first = read(&pool)
        .await
        .context("reading the read models' epoch")?;
    let (tx, rx) = watch::channel(first);
    tokio::spawn(run(pool, poll.max(Duration::from_millis(1)), tx, listener));
    Ok(rx)
}

/// The epoch of the `read_models` projection in `projection_checkpoints`.
pub async fn read(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let found = sqlx::query_scalar::<_, i64>(
        "SELECT epoch FROM projection_checkpoints WHERE projection = $1",
    )
    .bind(READ_MODELS)
    .fetch_optional(pool)
    .await;
    match found {
        Ok(epoch) => Ok(epoch.unwrap_or(FIRST_EPOCH)),
        // undefined_table: the read models are not there yet.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Ok(FIRST_EPOCH),
        Err(e) => Err(e),
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(EPOCH_CHANNEL).await?;
    Ok(listener)
}

/// Re-reads the epoch when woken by the listener or the poll, and publishes changes.
async fn run(pool: PgPool, poll: Duration, tx: watch::Sender<i64>, listener: Option<PgListener>) {
    let wake = Arc::new(Notify::new());
    let follower = tokio::spawn(follow(pool.clone(), listener, wake.clone()));
    let _follower = AbortOnDrop(follower);
    let mut tick = tokio::time::interval_at(Instant::now() + poll, poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = tx.closed() => return,
            () = wake.notified() => {}
            _ = tick.tick() => {}
        }
        match read(&pool).await {
            Ok(epoch) => {
                tx.send_if_modified(|current| {
                    if *current == epoch {
                        return false;
                    }
                    tracing::info!(
                        from = *current,
                        to = epoch,
                        "the read models' epoch changed"
                    );
                    *current = epoch;
                    true
                });
            }
            Err(e) => tracing::warn!(error = %e, "reading the read models' epoch failed"),
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Follows the notifications (in a task of its own, so no wait on the connection is ever
/// cancelled halfway): wakes [`run`] for each one about the read models, and after every
/// reconnection (notifications sent meanwhile are lost). A listener that fails is re-made
/// with a growing pause; polling covers the time without one.
async fn follow(pool: PgPool, mut listener: Option<PgListener>, wake: Arc<Notify>) {
    let mut retry = FIRST_LISTEN_RETRY;
    loop {
        let Some(l) = listener.as_mut() else {
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(MAX_LISTEN_RETRY);
            match listen(&pool).await {
                Ok(l) => {
                    tracing::info!("listening for epoch changes again");
                    listener = Some(l);
                    retry = FIRST_LISTEN_RETRY;
                    // What was notified while nobody listened is gone.
                    wake.notify_one();
                }
                Err(e) => tracing::debug!(error = %e, "still cannot LISTEN for epoch changes"),
            }
            continue;
        };
        match l.try_recv().await {
            Ok(Some(n)) => {
                if concerns_read_models(n.payload()) {
                    wake.notify_one();
                }
            }
            // The connection was lost and is back: what was notified meanwhile is gone.
            Ok(None) => wake.notify_one(),
            Err(e) => {
                tracing::warn!(error = %e, "the epoch listener failed; polling until it is back");
                listener = None;
            }
        }
    }
}

/// Is a `<projection>:<epoch>` payload about the read models? One that cannot be parsed is
/// taken to be (a needless re-read costs one query).
fn concerns_read_models(payload: &str) -> bool {
    payload
        .rsplit_once(':')
        .is_none_or(|(projection, _)| projection == READ_MODELS)
}

/// Middleware of the REST reads: every response carries [`EPOCH_HEADER`] with the epoch
/// current when the request arrived. A switch during the request can only make the label
/// older than the data, never newer, so a client never takes data of an old build for the
/// new one (an older label costs it one needless reload after the `resync`).
pub async fn stamp(
    State(epoch): State<watch::Receiver<i64>>,
    req: Request,
    next: Next,
) -> Response {
    let current = *epoch.borrow();
    let mut res = next.run(req).await;
    res.headers_mut()
        .insert(EPOCH_HEADER, HeaderValue::from(current));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_notifications_about_the_read_models_wake_the_watcher() {
        assert!(concerns_read_models("read_models:7"));
        assert!(!concerns_read_models("search:3"));
        assert!(concerns_read_models("garbage"));
    }
}
