//! The user's own profile and settings: the name others see (the picture beside it is
//! `avatars.rs`), and whether their read receipts are shown to the rooms they read. Each
//! change is an event of the user's stream.

use crate::error::ApiError;
use crate::extract::{AuthUser, Json};
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use eventlog::{AppendError, AppendRequest, EventStore, ExpectedVersion, NewEvent, RecordedEvent};
use events::user::{self, UserEvent, UserState};
use events::values::DisplayName;
use events::{StoredEvent, UserId};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

/// Events a user stream holds are few (registration and settings); one read takes them all.
const USER_STREAM_PAGE: i64 = 10_000;
/// Attempts at a settings change that lost a race with another change of the same user.
const ATTEMPTS: u32 = 3;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadReceiptsBody {
    /// `true`: nobody else is shown how far you have read (your own unread counts still
    /// follow your read markers). `false`: the rooms you read see your receipts.
    pub private: bool,
}

/// The user's stream folded, with its version (its personal values opened).
pub(crate) async fn user_state(st: &AppState, user: UserId) -> Result<(UserState, i64), ApiError> {
    let mut records = read_user(st, user).await?;
    st.keyring
        .open_events(&mut records)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    fold(records)
}

/// Whether `user` keeps their read receipts private, as the log says now: read when they
/// move a read marker, so the marker's event says whether it may be shown. The setting is no
/// personal value: the stream is folded unopened (no key to read, nothing to decrypt on every
/// read marker).
pub(crate) async fn receipts_private(st: &AppState, user: UserId) -> Result<bool, ApiError> {
    let mut records = read_user(st, user).await?;
    for rec in &mut records {
        vault::open_blind(&rec.event_type, &mut rec.data);
    }
    Ok(fold(records)?.0.private_receipts)
}

async fn read_user(st: &AppState, user: UserId) -> Result<Vec<RecordedEvent>, ApiError> {
    Ok(st
        .store
        .read_stream(&user.stream_id(), 0, USER_STREAM_PAGE)
        .await?)
}

fn fold(records: Vec<RecordedEvent>) -> Result<(UserState, i64), ApiError> {
    let mut state = UserState::default();
    let mut version = 0;
    for rec in records {
        let ev = UserEvent::from_stored(&rec.event_type, rec.schema_version, rec.data)
            .map_err(|e| ApiError::internal(&e))?;
        state = user::evolve(state, &ev);
        version = rec.version;
    }
    Ok((state, version))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    /// The name others see: up to 64 characters; empty for the username again.
    pub display_name: String,
}

#[utoipa::path(patch, path = "/v1/me/profile", request_body = ProfileBody, security(("bearer" = [])),
    responses((status = 200, description = "{display_name, position}: position is null when it was already so"), (status = 400)))]
pub async fn update_profile(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Json(body): Json<ProfileBody>,
) -> Result<Response, ApiError> {
    let name = DisplayName::parse(&body.display_name)?;
    let Changed {
        after, position, ..
    } = change(&st, me, |state| {
        user::change_display_name(state, name.clone())
    })
    .await?;
    let shown = after
        .display_name
        .map(|d| d.as_str().to_owned())
        .unwrap_or_default();
    Ok(axum::Json(json!({ "display_name": shown, "position": position })).into_response())
}

#[utoipa::path(put, path = "/v1/me/read-receipts", request_body = ReadReceiptsBody, security(("bearer" = [])),
    responses((status = 200, description = "{private, position}: position is null when it was already so")))]
pub async fn set_read_receipts(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Json(body): Json<ReadReceiptsBody>,
) -> Result<Response, ApiError> {
    let Changed { position, .. } = change(&st, me, |state| {
        user::set_receipts_privacy(state, body.private)
    })
    .await?;
    Ok(axum::Json(json!({ "private": body.private, "position": position })).into_response())
}

/// `events` of a user's stream as the log stores them, decided by `actor`: their personal
/// values sealed under the user's key (ADR 23).
pub(crate) async fn new_user_events(
    st: &AppState,
    events: &[UserEvent],
    actor: UserId,
) -> Result<Vec<NewEvent>, ApiError> {
    let correlation_id = http_kit::correlation::current().map_or_else(Uuid::now_v7, |c| c.0);
    let mut stored = Vec::with_capacity(events.len());
    for e in events {
        let (event_type, schema_version, data) =
            e.to_stored().map_err(|e| ApiError::internal(&e))?;
        stored.push((e.user_id(), event_type, schema_version, data));
    }
    st.keyring
        .prepare_sealing(
            stored
                .iter()
                .filter(|(_, t, _, _)| vault::fields::has_sealed(t))
                .map(|(owner, ..)| owner.0),
        )
        .await
        .map_err(sealing_failed)?;
    stored
        .into_iter()
        .map(|(owner, event_type, schema_version, mut data)| {
            st.keyring
                .seal(&event_type, &mut data, owner.0)
                .map_err(sealing_failed)?;
            Ok(NewEvent {
                event_id: Uuid::now_v7(),
                event_type,
                schema_version,
                data,
                occurred_at: chrono::Utc::now(),
                actor_id: Some(actor.0),
                correlation_id,
                causation_id: None,
            })
        })
        .collect()
}

/// An erased user has no key any more: nothing can be written for them (403).
pub(crate) fn sealing_failed(e: vault::VaultError) -> ApiError {
    match e {
        vault::VaultError::Erased(_) => ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "account_erased",
            "this account was erased",
        ),
        other => ApiError::internal(&other),
    }
}

/// What [`change`] did.
pub(crate) struct Changed {
    /// The user's state the change was decided on.
    pub before: UserState,
    /// The state after it (`before` when it changed nothing).
    pub after: UserState,
    /// The position of its last event; `None` when it changed nothing.
    pub position: Option<i64>,
}

/// Decides a change of `user`'s stream with `decide` and appends it, again on a race with
/// another change.
pub(crate) async fn change(
    st: &AppState,
    user: UserId,
    decide: impl Fn(&UserState) -> Vec<UserEvent>,
) -> Result<Changed, ApiError> {
    for _ in 0..ATTEMPTS {
        let (state, version) = user_state(st, user).await?;
        let events = decide(&state);
        if events.is_empty() {
            return Ok(Changed {
                before: state.clone(),
                after: state,
                position: None,
            });
        }
        let new_events = new_user_events(st, &events, user).await?;
        let request = AppendRequest {
            stream_id: user.stream_id(),
            stream_type: UserEvent::STREAM_TYPE.to_owned(),
            expected: ExpectedVersion::Exact(version),
            events: new_events,
            idempotency: vec![],
        };
        match st.store.append(request).await {
            Ok(appended) => {
                let after = events.iter().fold(state.clone(), user::evolve);
                return Ok(Changed {
                    before: state,
                    after,
                    position: Some(appended.last_position),
                });
            }
            Err(AppendError::Conflict { .. }) => continue,
            Err(AppendError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(ApiError::unavailable_because("retry shortly", &e)),
        }
    }
    Err(ApiError::unavailable(
        "too many concurrent changes, retry shortly",
    ))
}
