//! What this server keeps and accepts, for clients to show before anything is refused: the
//! default retention period and the limits a message, an upload or a profile picture meets.

use super::consistency::MinPosition;
use crate::configuration::Settings;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use events::values::ValidationError;
use http_kit::extract::AuthUser;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ServerInfo {
    /// Days a room keeps its messages unless it sets its own period (a room's
    /// `retention_days`); `null`: for ever.
    pub retention_days: Option<u32>,
    pub limits: Limits,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Limits {
    /// Characters in a message's body, after surrounding whitespace is trimmed.
    pub message_chars: usize,
    /// People one message may mention by name.
    pub mentions_per_message: usize,
    /// Files one message may carry.
    pub attachments_per_message: usize,
    /// Bytes in one uploaded file (413 `attachment_too_large` above).
    pub attachment_bytes: u64,
    /// Bytes in an uploaded profile picture (413 `avatar_too_large` above).
    pub avatar_bytes: u64,
}

impl ServerInfo {
    /// What `settings` say, read once at start-up; a default period out of range is refused.
    pub fn from_settings(settings: &Settings) -> Result<Self, ValidationError> {
        let retention = events::retention::server_default(settings.retention_days)?;
        Ok(ServerInfo {
            retention_days: retention.map(|d| d.get()),
            limits: Limits {
                message_chars: events::values::MessageBody::RULE.max_chars,
                mentions_per_message: events::mention::MAX_MENTIONS_PER_MESSAGE,
                attachments_per_message: events::attachment::MAX_ATTACHMENTS_PER_MESSAGE,
                attachment_bytes: settings.blobs.attachment_max_bytes,
                avatar_bytes: events::avatar::MAX_UPLOAD_BYTES,
            },
        })
    }
}

/// The server's default retention period and its limits on what clients send.
#[utoipa::path(get, path = "/v1/server", security(("bearer" = [])),
    params(("min_position" = Option<i64>, Query)),
    responses((status = 200, body = ServerInfo), (status = 401)))]
pub async fn server(
    State(st): State<AppState>,
    AuthUser(_me): AuthUser,
    _read_after: MinPosition,
) -> Json<ServerInfo> {
    Json(st.server.as_ref().clone())
}
