//! Rooms: mine, public ones, one room's details and its members.
//!
//! Who sees what (the REST part of the authorization matrix):
//!
//! | caller \ room                              | public group             | private group / direct |
//! |--------------------------------------------|--------------------------|------------------------|
//! | joined                                     | details, members, history| same                   |
//! | anyone else (never in, invited, left, kicked) | public details only; members and history 403 `not_a_member` | 404 `room_not_found` for everything |
//!
//! A missing room is the same 404 as a private one, so existence never leaks.

use super::avatars::avatar_url;
use super::consistency::MinPosition;
use super::users::UserSummary;
use super::{Query, clamp_limit, not_a_member, room_not_found, snapshot};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use events::{RoomId, UserId};
use http_kit::error::ApiError;
use http_kit::extract::{AuthUser, Path};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The newest message of a room (deleted ones keep their place with a null body).
#[derive(Serialize, ToSchema)]
pub struct LastMessage {
    pub seq: i64,
    pub message_id: Uuid,
    pub sender_id: Uuid,
    /// The sender's username and display name (null for a user not projected yet).
    pub sender_username: Option<String>,
    pub sender_display_name: Option<String>,
    pub body: Option<String>,
    pub deleted: bool,
    pub sent_at: DateTime<Utc>,
}

/// A room as one of its members sees it.
#[derive(Serialize, ToSchema)]
pub struct MyRoom {
    pub room_id: Uuid,
    /// `group` or `direct`.
    pub kind: String,
    pub name: String,
    pub topic: String,
    /// `public` or `private`.
    pub visibility: String,
    pub owner_id: Option<Uuid>,
    pub member_count: i32,
    pub created_at: DateTime<Utc>,
    /// Always true here: only joined members get this view.
    pub joined: bool,
    /// The caller's role: `member`, `admin` or `owner`.
    pub role: String,
    /// The caller's read marker (seq of the last message read).
    pub read_seq: i64,
    /// Messages after the read marker, not the caller's own, not deleted.
    pub unread_count: i64,
    /// Of those, the ones that mention the caller (by name, or `@room` from an owner or admin).
    pub unread_mentions: i64,
    /// The caller's notification level here: `all`, `mentions` or `none` (the default: `all`
    /// in a direct room, `mentions` in a group room).
    pub notifications: String,
    /// Seq of the newest message (0 when there is none).
    pub last_seq: i64,
    pub last_message: Option<LastMessage>,
    /// Days the room keeps its messages, when it sets its own period; `null`: the server's
    /// default (`APP_RETENTION_DAYS` of the write side).
    pub retention_days: Option<i32>,
    /// Messages with a seq at or below this have expired (0: none): the history starts after.
    pub expired_up_to: i64,
    /// In a direct room: the other person.
    pub other_user: Option<UserSummary>,
    /// The room stream's version and the log position the view reflects.
    pub version: i64,
    pub position: i64,
}

/// A public room as anyone sees it (no members, no history).
#[derive(Serialize, ToSchema, sqlx::FromRow)]
pub struct PublicRoom {
    pub room_id: Uuid,
    pub kind: String,
    pub name: String,
    pub topic: String,
    pub visibility: String,
    pub member_count: i32,
    pub created_at: DateTime<Utc>,
    /// Whether the caller is a member.
    pub joined: bool,
}

#[derive(Serialize, ToSchema)]
pub struct MyRooms {
    pub rooms: Vec<MyRoom>,
}

#[derive(Serialize, ToSchema)]
pub struct PublicRooms {
    pub rooms: Vec<PublicRoom>,
}

#[derive(Serialize, ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub username: Option<String>,
    pub display_name: Option<String>,
    /// Where the member's avatar is served (`GET /v1/users/{user_id}/avatar?v=<avatar_id>`);
    /// null when they have none.
    pub avatar_url: Option<String>,
    /// `member`, `admin` or `owner`.
    pub role: String,
    pub joined_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct Members {
    pub members: Vec<Member>,
}

/// A member's row as [`Member`] reads it.
#[derive(sqlx::FromRow)]
struct MemberRow {
    user_id: Uuid,
    username: Option<String>,
    display_name: Option<String>,
    avatar_id: Option<Uuid>,
    role: String,
    joined_at: Option<DateTime<Utc>>,
}

impl From<MemberRow> for Member {
    fn from(r: MemberRow) -> Self {
        Member {
            user_id: r.user_id,
            username: r.username,
            display_name: r.display_name,
            avatar_url: avatar_url(r.user_id, r.avatar_id),
            role: r.role,
            joined_at: r.joined_at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct MyRoomRow {
    room_id: Uuid,
    kind: String,
    name: String,
    topic: String,
    visibility: String,
    owner_id: Option<Uuid>,
    member_count: i32,
    created_at: DateTime<Utc>,
    last_seq: i64,
    retention_days: Option<i32>,
    expired_up_to: i64,
    version: i64,
    position: i64,
    role: String,
    read_seq: i64,
    unread_count: i64,
    unread_mentions: i64,
    notifications: String,
    lm_seq: Option<i64>,
    lm_message_id: Option<Uuid>,
    lm_sender_id: Option<Uuid>,
    lm_body: Option<String>,
    lm_deleted: Option<bool>,
    lm_sent_at: Option<DateTime<Utc>>,
    lm_sender_username: Option<String>,
    lm_sender_display_name: Option<String>,
    other_id: Option<Uuid>,
    other_username: Option<String>,
    other_display_name: Option<String>,
    other_avatar_id: Option<Uuid>,
}

impl From<MyRoomRow> for MyRoom {
    fn from(r: MyRoomRow) -> Self {
        let last_message = match (r.lm_seq, r.lm_message_id, r.lm_sender_id, r.lm_sent_at) {
            (Some(seq), Some(message_id), Some(sender_id), Some(sent_at)) => {
                let deleted = r.lm_deleted.unwrap_or(false);
                Some(LastMessage {
                    seq,
                    message_id,
                    sender_id,
                    sender_username: r.lm_sender_username,
                    sender_display_name: r.lm_sender_display_name,
                    body: if deleted { None } else { r.lm_body },
                    deleted,
                    sent_at,
                })
            }
            _ => None,
        };
        let other_user = r.other_id.map(|user_id| UserSummary {
            user_id,
            username: r.other_username.unwrap_or_default(),
            display_name: r.other_display_name.unwrap_or_default(),
            avatar_url: avatar_url(user_id, r.other_avatar_id),
        });
        MyRoom {
            room_id: r.room_id,
            kind: r.kind,
            name: r.name,
            topic: r.topic,
            visibility: r.visibility,
            owner_id: r.owner_id,
            member_count: r.member_count,
            created_at: r.created_at,
            joined: true,
            role: r.role,
            read_seq: r.read_seq,
            unread_count: r.unread_count,
            unread_mentions: r.unread_mentions,
            notifications: r.notifications,
            last_seq: r.last_seq,
            last_message,
            retention_days: r.retention_days,
            expired_up_to: r.expired_up_to,
            other_user,
            version: r.version,
            position: r.position,
        }
    }
}

/// The caller's joined rooms (all of them, or just `$2`), newest activity first.
const MY_ROOMS_SQL: &str = "
SELECT r.room_id, r.kind, r.name, r.topic, r.visibility, r.owner_id, r.member_count,
       r.created_at, r.last_seq, r.retention_days, r.expired_up_to, r.version, r.position,
       m.role, m.read_seq, u.unread_count,
       (SELECT count(*) FROM rm_mentions x
         WHERE x.user_id = m.user_id AND x.room_id = m.room_id AND x.seq > m.read_seq)
     + (SELECT count(*) FROM rm_room_mentions x
         WHERE x.room_id = m.room_id AND x.seq > m.read_seq AND x.sender_id <> m.user_id
           AND NOT EXISTS (SELECT 1 FROM rm_mentions y
                            WHERE y.room_id = x.room_id AND y.seq = x.seq
                              AND y.user_id = m.user_id))
         AS unread_mentions,
       COALESCE(nl.level, CASE WHEN r.kind = 'direct' THEN 'all' ELSE 'mentions' END)
         AS notifications,
       lm.seq AS lm_seq, lm.message_id AS lm_message_id, lm.sender_id AS lm_sender_id,
       lm.body AS lm_body, lm.deleted AS lm_deleted, lm.sent_at AS lm_sent_at,
       lu.username AS lm_sender_username, lu.display_name AS lm_sender_display_name,
       ou.user_id AS other_id, ou.username AS other_username,
       ou.display_name AS other_display_name, ou.avatar_id AS other_avatar_id
  FROM rm_members m
  JOIN rm_rooms r ON r.room_id = m.room_id
  JOIN rm_unread u ON u.room_id = m.room_id AND u.user_id = m.user_id
  LEFT JOIN rm_messages lm ON lm.room_id = r.room_id AND lm.seq = r.last_seq
  LEFT JOIN rm_notification_levels nl ON nl.room_id = m.room_id AND nl.user_id = m.user_id
  LEFT JOIN rm_users lu ON lu.user_id = lm.sender_id
  LEFT JOIN rm_direct_pairs dp ON r.kind = 'direct' AND dp.room_id = r.room_id
  LEFT JOIN rm_users ou
         ON ou.user_id = CASE WHEN dp.user_lo = m.user_id THEN dp.user_hi ELSE dp.user_lo END
 WHERE m.user_id = $1 AND m.status = 'joined'
   AND ($2::uuid IS NULL OR r.room_id = $2)
 ORDER BY GREATEST(r.last_message_at, m.joined_at, r.created_at) DESC, r.room_id";

async fn my_rooms_rows(
    db: impl sqlx::PgExecutor<'_>,
    me: UserId,
    only: Option<RoomId>,
) -> Result<Vec<MyRoom>, sqlx::Error> {
    let rows = sqlx::query_as::<_, MyRoomRow>(MY_ROOMS_SQL)
        .bind(me.0)
        .bind(only.map(|r| r.0))
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(MyRoom::from).collect())
}

/// What the caller may see of a room.
pub(crate) enum Access {
    /// Currently joined: everything.
    Member,
    /// A public group room the caller is not in: its public details only.
    PublicOutsider,
}

/// Whether `me` may see `room` at all; a room they may not know of is the same
/// 404 as a missing one.
pub(crate) async fn access(
    db: impl sqlx::PgExecutor<'_>,
    room: RoomId,
    me: UserId,
) -> Result<Access, ApiError> {
    let row: Option<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT r.kind, r.visibility, m.status
           FROM rm_rooms r
           LEFT JOIN rm_members m ON m.room_id = r.room_id AND m.user_id = $2
          WHERE r.room_id = $1",
    )
    .bind(room.0)
    .bind(me.0)
    .fetch_optional(db)
    .await?;
    match row {
        Some((_, _, Some(status))) if status == "joined" => Ok(Access::Member),
        Some((kind, visibility, _)) if kind == "group" && visibility == "public" => {
            Ok(Access::PublicOutsider)
        }
        _ => Err(room_not_found()),
    }
}

/// Members only: outsiders of a public room get 403 `not_a_member`, everyone
/// else 404 `room_not_found`.
pub(crate) async fn require_member(
    db: impl sqlx::PgExecutor<'_>,
    room: RoomId,
    me: UserId,
) -> Result<(), ApiError> {
    match access(db, room, me).await? {
        Access::Member => Ok(()),
        Access::PublicOutsider => Err(not_a_member()),
    }
}

/// The caller's joined rooms, newest activity first (the newest of: last
/// message, when the caller joined, when the room was created). Direct rooms
/// carry `other_user`.
#[utoipa::path(get, path = "/v1/rooms", security(("bearer" = [])),
    params(("min_position" = Option<i64>, Query)),
    responses((status = 200, body = MyRooms), (status = 401), (status = 503, description = "not_caught_up")))]
pub async fn my_rooms(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    _read_after: MinPosition,
) -> Result<Json<MyRooms>, ApiError> {
    let rooms = my_rooms_rows(&st.pool, me, None).await?;
    Ok(Json(MyRooms { rooms }))
}

#[derive(Deserialize)]
pub struct PublicQuery {
    pub q: Option<String>,
    pub limit: Option<i64>,
}

/// Longest accepted search string.
const MAX_Q_CHARS: usize = 80;

/// Public group rooms whose name contains `q` (case-insensitive; empty: all),
/// most members first. `limit` is clamped to 1–100 (default 20).
#[utoipa::path(get, path = "/v1/rooms/public", security(("bearer" = [])),
    params(("q" = Option<String>, Query), ("limit" = Option<i64>, Query), ("min_position" = Option<i64>, Query)),
    responses((status = 200, body = PublicRooms), (status = 400), (status = 401)))]
pub async fn public_rooms(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Query(q): Query<PublicQuery>,
    _read_after: MinPosition,
) -> Result<Json<PublicRooms>, ApiError> {
    let needle = q.q.unwrap_or_default();
    if needle.chars().count() > MAX_Q_CHARS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("q must be at most {MAX_Q_CHARS} characters"),
        ));
    }
    let pattern = format!("%{}%", like_escape(&needle.to_lowercase()));
    let rooms = sqlx::query_as::<_, PublicRoom>(
        "SELECT r.room_id, r.kind, r.name, r.topic, r.visibility, r.member_count, r.created_at,
                EXISTS (SELECT 1 FROM rm_members m
                         WHERE m.room_id = r.room_id AND m.user_id = $3 AND m.status = 'joined')
                  AS joined
           FROM rm_rooms r
          WHERE r.visibility = 'public' AND r.kind = 'group'
            AND lower(r.name) LIKE $1 ESCAPE '\\'
          ORDER BY r.member_count DESC, lower(r.name), r.room_id
          LIMIT $2",
    )
    .bind(&pattern)
    .bind(clamp_limit(q.limit, 20))
    .bind(me.0)
    .fetch_all(&st.pool)
    .await?;
    Ok(Json(PublicRooms { rooms }))
}

/// `s` with LIKE's wildcards and escape character escaped.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One room. Members get [`MyRoom`]; anyone else gets [`PublicRoom`] for a public
/// group room and 404 `room_not_found` for a private or direct one (also when
/// invited but not joined, after leaving and after a kick).
#[utoipa::path(get, path = "/v1/rooms/{room_id}", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("min_position" = Option<i64>, Query)),
    responses((status = 200, body = MyRoom, description = "MyRoom for members, PublicRoom for others (public rooms)"),
        (status = 400), (status = 401), (status = 404, description = "room_not_found")))]
pub async fn room(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    _read_after: MinPosition,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut tx = snapshot(&st.pool).await?;
    let value = match access(&mut *tx, room_id, me).await? {
        Access::Member => {
            let room = my_rooms_rows(&mut *tx, me, Some(room_id))
                .await?
                .into_iter()
                .next()
                // Unreachable within one snapshot; answer as for a non-member.
                .ok_or_else(room_not_found)?;
            serde_json::to_value(room)
        }
        Access::PublicOutsider => {
            let room = sqlx::query_as::<_, PublicRoom>(
                "SELECT room_id, kind, name, topic, visibility, member_count, created_at,
                        FALSE AS joined
                   FROM rm_rooms
                  WHERE room_id = $1 AND kind = 'group' AND visibility = 'public'",
            )
            .bind(room_id.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(room_not_found)?;
            serde_json::to_value(room)
        }
    }
    .map_err(|e| ApiError::internal(&e))?;
    tx.commit().await?;
    Ok(Json(value))
}

/// The joined members of a room with their roles, in order of joining. Members only.
#[utoipa::path(get, path = "/v1/rooms/{room_id}/members", security(("bearer" = [])),
    params(("room_id" = Uuid, Path), ("min_position" = Option<i64>, Query)),
    responses((status = 200, body = Members), (status = 401),
        (status = 403, description = "not_a_member (public room)"), (status = 404, description = "room_not_found")))]
pub async fn members(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    _read_after: MinPosition,
) -> Result<Json<Members>, ApiError> {
    let mut tx = snapshot(&st.pool).await?;
    require_member(&mut *tx, room_id, me).await?;
    let members = sqlx::query_as::<_, MemberRow>(
        "SELECT m.user_id, u.username, u.display_name, u.avatar_id, m.role, m.joined_at
           FROM rm_members m
           LEFT JOIN rm_users u ON u.user_id = m.user_id
          WHERE m.room_id = $1 AND m.status = 'joined'
          ORDER BY m.joined_at NULLS LAST, m.user_id",
    )
    .bind(room_id.0)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(Member::from)
    .collect();
    tx.commit().await?;
    Ok(Json(Members { members }))
}
