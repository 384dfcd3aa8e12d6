//! `GET /v1/search/messages`: full-text search over the messages of the caller's rooms,
//! through the search index (Tantivy or OpenSearch, the `search` crate).
//!
//! Which rooms is decided here, at query time, from the read models: the rooms the caller is
//! joined to now (someone who left or was kicked finds nothing more of that room), narrowed
//! by `room_id` and `in:`. The index holds no access rules. Hits are checked against the
//! read models once more, so a message deleted a moment ago is never returned even if the
//! index has not caught up with the delete yet; a hit the read models have not seen yet is
//! returned.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use events::{RoomId, UserId};
use http_kit::error::ApiError;
use http_kit::extract::AuthUser;
use search::highlight::{Segment, snippet};
use search::{Cursor, ParsedQuery, SearchError, SearchRequest, Sort};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::consistency::{MinPosition, wait_until_at};
use super::rooms::require_member;
use super::{Query, clamp_limit};
use crate::state::AppState;

/// Page size when `limit` is not given.
const DEFAULT_LIMIT: i64 = 20;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words, `"phrases"`, `prefix*`, and the operators `in:<room name or id>`,
    /// `from:<username>`, `before:YYYY-MM-DD`, `after:YYYY-MM-DD`, `has:link`.
    pub q: Option<String>,
    /// Only this room (the caller must be a member).
    pub room_id: Option<Uuid>,
    /// Only messages of this sender.
    pub sender_id: Option<Uuid>,
    /// Sent at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Sent before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// `relevance` (default) or `recent`.
    pub sort: Option<Sort>,
    /// 1..=100, default 20.
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A matching message.
#[derive(Serialize, ToSchema)]
pub struct SearchHit {
    pub message_id: Uuid,
    pub room_id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    pub sent_at: DateTime<Utc>,
    /// The message's current text.
    pub body: String,
    /// Up to 240 characters of the body around the first match, as plain-text segments;
    /// the ones that matched have `highlight: true`. Render the text as text.
    pub snippet: Vec<Segment>,
    /// Relevance (0 with `sort=recent`).
    pub score: f32,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    /// Pass as `cursor` for the next page; null when there is none. Pages of one series
    /// never repeat or skip a hit; messages sent after its first page are not in it.
    pub next_cursor: Option<String>,
}

/// Searches the messages of the caller's rooms.
#[utoipa::path(get, path = "/v1/search/messages", security(("bearer" = [])),
    params(SearchQuery, ("min_position" = Option<i64>, Query)),
    responses((status = 200, body = SearchResults),
        (status = 400, description = "invalid_query, unknown_operator, invalid_operator, invalid_prefix, query_too_long, too_many_terms, unknown_room, unknown_user, invalid_cursor"),
        (status = 401), (status = 404, description = "room_not_found (room_id)"),
        (status = 503, description = "not_caught_up, search_unavailable")))]
pub async fn search_messages(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    read_after: MinPosition,
    Query(params): Query<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    let parsed = search::query::parse(params.q.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let sort = params.sort.unwrap_or_default();
    let cursor = match params.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            Cursor::decode(c)
                .filter(|c| c.sort == sort)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_cursor",
                        "cursor is not a next_cursor of this search's sort",
                    )
                })?,
        ),
    };
    if let (Some(from), Some(to)) = (params.from, params.to)
        && from >= to
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "from must be before to",
        ));
    }
    if parsed.is_empty()
        && params.room_id.is_none()
        && params.sender_id.is_none()
        && params.from.is_none()
        && params.to.is_none()
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "q is empty: give words to search for, or filters",
        ));
    }
    if let Some(room) = params.room_id {
        require_member(&st.pool, RoomId(room), me).await?;
    }
    let rooms = rooms(&st, me, params.room_id, &parsed).await?;
    let senders = senders(&st, params.sender_id, &parsed).await?;
    let (sent_from, sent_before) = times(&params, &parsed);
    if let Some(position) = read_after.0 {
        wait_for_index(&st, position).await?;
    }
    let request = SearchRequest {
        clauses: parsed.clauses.clone(),
        rooms,
        senders,
        sent_from,
        sent_before,
        has_link: parsed.has_link,
        sort,
        limit: usize::try_from(clamp_limit(params.limit, DEFAULT_LIMIT)).unwrap_or(20),
        snapshot: cursor.map(|c| c.snapshot),
        after: cursor.map(|c| c.after()),
    };
    let started = Instant::now();
    let page = st.search.search(request).await.map_err(search_failed)?;
    st.metrics
        .search_seconds
        .observe(started.elapsed().as_secs_f64());
    st.metrics.search_hits.observe(page.hits.len() as f64);
    let next_cursor = match (page.more, page.hits.last()) {
        (true, Some(last)) => Some(
            Cursor {
                sort,
                snapshot: page.snapshot,
                sent_position: last.doc.sent_position,
                score: matches!(sort, Sort::Relevance).then_some(last.score),
            }
            .encode(),
        ),
        _ => None,
    };
    // The read models have the last word on deletes (the index may lag by a moment). They
    // may also lag behind the index (two projections, each at its own position): a hit they
    // have not seen yet stays, or a busy room's newest page would come back empty.
    let ids: Vec<Uuid> = page.hits.iter().map(|h| h.doc.message_id).collect();
    let deleted: HashSet<Uuid> = sqlx::query_scalar(
        "SELECT message_id FROM rm_messages WHERE message_id = ANY($1) AND deleted",
    )
    .bind(&ids)
    .fetch_all(&st.pool)
    .await?
    .into_iter()
    .collect();
    let hits = page
        .hits
        .into_iter()
        .filter(|h| !deleted.contains(&h.doc.message_id))
        .map(|h| SearchHit {
            snippet: snippet(&h.doc.body, &parsed.clauses),
            message_id: h.doc.message_id,
            room_id: h.doc.room_id,
            seq: h.doc.seq,
            sender_id: h.doc.sender_id,
            sent_at: h.doc.sent_at,
            body: h.doc.body,
            score: h.score,
        })
        .collect();
    Ok(Json(SearchResults { hits, next_cursor }))
}

/// The rooms to search: the caller's joined rooms, narrowed to `room_id` and to the rooms
/// `in:` names (by id, or by name case-insensitively; several `in:` widen to any of them).
async fn rooms(
    st: &AppState,
    me: UserId,
    room_id: Option<Uuid>,
    parsed: &ParsedQuery,
) -> Result<Vec<Uuid>, ApiError> {
    let mine: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT r.room_id, r.name FROM rm_members m JOIN rm_rooms r USING (room_id) \
         WHERE m.user_id = $1 AND m.status = 'joined'",
    )
    .bind(me.0)
    .fetch_all(&st.pool)
    .await?;
    let mut rooms: Vec<Uuid> = mine
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| room_id.is_none_or(|r| r == *id))
        .collect();
    if !parsed.rooms.is_empty() {
        let mut named: HashSet<Uuid> = HashSet::new();
        for value in &parsed.rooms {
            let by_id = Uuid::parse_str(value).ok();
            let found: Vec<Uuid> = mine
                .iter()
                .filter(|(id, name)| Some(*id) == by_id || name.eq_ignore_ascii_case(value))
                .map(|(id, _)| *id)
                .collect();
            if found.is_empty() {
                return Err(ApiError::bad_request(
                    "unknown_room",
                    format!("`in:{value}` names none of your rooms"),
                ));
            }
            named.extend(found);
        }
        rooms.retain(|r| named.contains(r));
    }
    Ok(rooms)
}

/// The senders to search: `sender_id`, and the users `from:` names (any of them).
async fn senders(
    st: &AppState,
    sender_id: Option<Uuid>,
    parsed: &ParsedQuery,
) -> Result<Vec<Uuid>, ApiError> {
    let mut named: Vec<Uuid> = Vec::new();
    for username in &parsed.senders {
        let id: Option<Uuid> =
            sqlx::query_scalar("SELECT user_id FROM rm_users WHERE username = $1")
                .bind(username.to_lowercase())
                .fetch_optional(&st.pool)
                .await?;
        named.push(id.ok_or_else(|| {
            ApiError::bad_request("unknown_user", format!("`from:{username}` names no user"))
        })?);
    }
    Ok(match (sender_id, named.is_empty()) {
        (None, _) => named,
        (Some(s), true) => vec![s],
        // Both: the sender must be one `from:` names, else nothing matches.
        (Some(s), false) if named.contains(&s) => vec![s],
        (Some(_), false) => vec![Uuid::nil()],
    })
}

/// The time range: `from`/`to` and `after:`/`before:` (whole UTC days), the narrower.
fn times(
    params: &SearchQuery,
    parsed: &ParsedQuery,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    let after = parsed.after.and_then(|d| d.succ_opt()).and_then(midnight);
    let before = parsed.before.and_then(midnight);
    let from = [params.from, after].into_iter().flatten().max();
    let to = [params.to, before].into_iter().flatten().min();
    (from, to)
}

/// Read-your-writes for search: waits (bounded, like the read models) until the index's
/// searches see `position`.
async fn wait_for_index(st: &AppState, position: i64) -> Result<(), ApiError> {
    let max_wait = Duration::from_millis(st.settings.min_position_wait_ms);
    wait_until_at("the search index is", position, max_wait, || async {
        st.search
            .visible_position(position)
            .await
            .map_err(search_failed)
    })
    .await?;
    Ok(())
}

fn search_failed(e: SearchError) -> ApiError {
    match e {
        SearchError::Unavailable(why) => {
            tracing::warn!(error = %why, "search index unavailable");
            ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "search_unavailable",
                    "search is unavailable right now; retry shortly",
                )
            }
        }
        other => ApiError::internal(&other),
    }
}
