//! Read-your-writes (docs/architecture.md D9): a command answers with the log position it
//! committed at; a read given `min_position=P` (query parameter) or
//! `X-Min-Position: P` (header) waits until the read models have applied position
//! `P`, at most `settings.min_position_wait_ms`, then answers as usual. If the
//! projection does not get there in time the answer is 503 `not_caught_up` with
//! `Retry-After`; a position past the log's head (not committed yet) is a 409
//! `min_position_not_committed` at once: the request is well formed, the log is not there.
//! With both forms given the larger position counts.
//!
//! Handlers take [`MinPosition`] after `AuthUser` (an unauthenticated request is
//! refused without waiting) and before they check membership (so "join, then
//! read with the join's position" sees the join).

use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use eventlog::EventStore as _;
use http_kit::error::ApiError;
use sqlx::PgPool;
use std::time::{Duration, Instant};

/// The header form of `min_position`.
pub const MIN_POSITION_HEADER: &str = "x-min-position";

/// First and longest pause between two looks at the checkpoint.
const FIRST_POLL: Duration = Duration::from_millis(1);
const MAX_POLL: Duration = Duration::from_millis(10);

/// The position the read waited for (`None` when the request asked for none).
/// Extracting it does the waiting.
#[derive(Clone, Copy, Debug)]
pub struct MinPosition(pub Option<i64>);

impl FromRequestParts<AppState> for MinPosition {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let Some(wanted) = requested(parts)? else {
            return Ok(MinPosition(None));
        };
        if checkpoint(&st.pool).await? >= wanted {
            return Ok(MinPosition(Some(wanted)));
        }
        // Behind: a position past the log's head was never committed, and no wait reaches it.
        let head = st.live.log().head_position().await?;
        if wanted > head {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "min_position_not_committed",
                format!("min_position {wanted} is past the last committed position ({head})"),
            ));
        }
        let max_wait = Duration::from_millis(st.settings.min_position_wait_ms);
        wait_for(&st.pool, wanted, max_wait).await?;
        Ok(MinPosition(Some(wanted)))
    }
}

/// The position asked for in the query string or the header, if any.
fn requested(parts: &Parts) -> Result<Option<i64>, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_min_position",
            "min_position must be a non-negative integer",
        )
    };
    let parse = |s: &str| s.trim().parse::<i64>().ok().filter(|p| *p >= 0);
    let mut wanted: Option<i64> = None;
    if parts.uri.query().is_some() {
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
                .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
        for (_, v) in pairs.iter().filter(|(k, _)| k == "min_position") {
            let p = parse(v).ok_or_else(invalid)?;
            wanted = Some(wanted.map_or(p, |w| w.max(p)));
        }
    }
    for v in parts.headers.get_all(MIN_POSITION_HEADER) {
        let p = v.to_str().ok().and_then(parse).ok_or_else(invalid)?;
        wanted = Some(wanted.map_or(p, |w| w.max(p)));
    }
    Ok(wanted)
}

/// The read models' checkpoint: the log position of the last event applied (0 before any).
/// (The comment names the query in `pg_stat_activity`.)
pub async fn checkpoint(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT position FROM projection_checkpoints WHERE projection = $1 /* min_position wait */",
    )
    .bind(crate::READ_MODELS)
    .fetch_optional(pool)
    .await?;
    Ok(row.map_or(0, |(p,)| p))
}

/// Waits until the checkpoint reaches `position`, polling every few milliseconds,
/// for at most `max_wait`. Returns the checkpoint seen.
pub async fn wait_for(pool: &PgPool, position: i64, max_wait: Duration) -> Result<i64, ApiError> {
    wait_until_at("the read models are", position, max_wait, || async {
        Ok(checkpoint(pool).await?)
    })
    .await
}

/// Waits until `at()` (a position something has reached) reaches `position`, polling every
/// few milliseconds, for at most `max_wait`; then 503 `not_caught_up` with `Retry-After`,
/// saying "`{what}` at position …". Returns the position seen.
pub async fn wait_until_at<F, Fut>(
    what: &str,
    position: i64,
    max_wait: Duration,
    mut at: F,
) -> Result<i64, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<i64, ApiError>>,
{
    let started = Instant::now();
    let mut pause = FIRST_POLL;
    loop {
        let at = at().await?;
        if at >= position {
            return Ok(at);
        }
        let waited = started.elapsed();
        if waited >= max_wait {
            return Err(ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not_caught_up",
                    format!("{what} at position {at}, not yet at {position}; retry shortly"),
                )
            });
        }
        tokio::time::sleep(pause.min(max_wait - waited)).await;
        pause = (pause * 2).min(MAX_POLL);
    }
}
