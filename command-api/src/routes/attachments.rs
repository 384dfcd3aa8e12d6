//! Uploading a file to a room (issue #17). The body is the file itself, streamed to blob
//! storage, never buffered whole; its name is a query parameter and its type is sniffed from
//! its bytes (the request's `Content-Type` is ignored). A message then sends it by id.

use crate::attachments::AttachmentError;
use crate::error::ApiError;
use crate::extract::{AuthUser, Path};
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use events::RoomId;
use events::attachment::Attachment;
use events::values::FileName;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct UploadQuery {
    /// The file's name as shown to others: 1–255 characters, no control character, '/' or '\'.
    pub name: String,
}

#[utoipa::path(post, path = "/v1/rooms/{room_id}/attachments", security(("bearer" = [])),
    params(("room_id" = uuid::Uuid, Path), ("name" = String, Query, description = "The file's name: 1–255 characters, no control character, '/' or '\\'.")),
    request_body(content = Vec<u8>, description = "The file's bytes (any Content-Type: the type is sniffed from the bytes).", content_type = "application/octet-stream"),
    responses((status = 201, description = "{attachment_id, name, size, content_type, sha256, image?: {width, height}}: send it with a message by `attachment_id`"),
        (status = 400, description = "invalid_file_name, attachment_empty, upload_incomplete"), (status = 403, description = "not_a_member"),
        (status = 404, description = "room_not_found"), (status = 413, description = "attachment_too_large"),
        (status = 415, description = "attachment_type_not_allowed"), (status = 429, description = "rate_limited: too many uploads from this user (Retry-After)")))]
pub async fn upload(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(room_id): Path<RoomId>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Attachment>), ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let name = FileName::parse(&q.name)?;
    st.limits.upload.check(&me.0)?;
    st.rooms.require_member(room_id, me).await?;
    let max_bytes = st.attachments.max_bytes();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes) {
        return Err(too_large(max_bytes));
    }
    if declared == Some(0) {
        return Err(AttachmentError::Empty.into());
    }
    let attachment = st
        .attachments
        .upload(room_id, me, name, body.into_data_stream())
        .await
        .map_err(|e| match e {
            AttachmentError::TooLarge { max_bytes } => too_large(max_bytes),
            other => ApiError::from(other),
        })?;
    Ok((StatusCode::CREATED, Json(attachment)))
}

fn too_large(max_bytes: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "attachment_too_large",
        format!("a file may be at most {max_bytes} bytes"),
    )
}

impl From<AttachmentError> for ApiError {
    fn from(e: AttachmentError) -> Self {
        match e {
            AttachmentError::TooLarge { max_bytes } => too_large(max_bytes),
            AttachmentError::TypeNotAllowed(t) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "attachment_type_not_allowed",
                format!("files of type {t} are not accepted"),
            ),
            AttachmentError::Empty => {
                ApiError::bad_request("attachment_empty", "the file is empty; nothing was stored")
            }
            AttachmentError::Body => ApiError::bad_request(
                "upload_incomplete",
                "the file did not arrive whole; nothing was stored",
            ),
            AttachmentError::NotFound => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "attachment_not_found",
                "no such attachment uploaded by you to this room",
            ),
            AttachmentError::Store(e) => ApiError::unavailable_because("blob storage failed", &e),
            AttachmentError::Db(e) => ApiError::from(e),
        }
    }
}
