//! Downloading an attachment or its thumbnail (issue #17), for members of a room where a
//! message that is not deleted carries it, at request time (the same matrix as history).
//! Served so that a browser never runs it: `X-Content-Type-Options: nosniff`, a sandboxing
//! CSP, and `Content-Disposition: attachment` for everything but images. Byte ranges
//! (`Range`, 206) and validation (`ETag` = the SHA-256, `If-None-Match`, 304).

use super::blob_response::BlobResponse;
use super::consistency::MinPosition;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use events::AttachmentId;
use http_kit::error::ApiError;
use http_kit::extract::{AuthUser, Path};
use serde::Deserialize;

/// `Cache-Control` of a download or a thumbnail.
const CACHE: &str = "private, max-age=86400";

/// What a download needs of an attachment, read from the message that carries it.
#[derive(Deserialize)]
struct Described {
    name: String,
    content_type: String,
    sha256: String,
    #[serde(default)]
    image: Option<serde_json::Value>,
}

/// The attachment as a message a member of its room may read carries it.
async fn find(st: &AppState, me: events::UserId, id: AttachmentId) -> Result<Described, ApiError> {
    let found: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT a.value FROM rm_messages m \
         CROSS JOIN LATERAL jsonb_array_elements(m.attachments) a \
         JOIN rm_members mem ON mem.room_id = m.room_id AND mem.user_id = $2 \
              AND mem.status = 'joined' \
         WHERE m.attachments @> jsonb_build_array(jsonb_build_object('attachment_id', $1::text)) \
           AND NOT m.deleted AND a.value ->> 'attachment_id' = $1::text \
         LIMIT 1",
    )
    .bind(id.0.to_string())
    .bind(me.0)
    .fetch_optional(&st.pool)
    .await?;
    let value = found.ok_or_else(not_found)?;
    serde_json::from_value(value).map_err(|_| not_found())
}

#[utoipa::path(get, path = "/v1/attachments/{attachment_id}", security(("bearer" = [])),
    params(("attachment_id" = uuid::Uuid, Path), ("Range" = Option<String>, Header, description = "One byte range: `bytes=0-99`, `bytes=100-`, `bytes=-100`."),
        ("If-None-Match" = Option<String>, Header), ("min_position" = Option<i64>, Query)),
    responses((status = 200, description = "The file; images inline, anything else as a download"), (status = 206, description = "The range asked for"),
        (status = 304), (status = 401), (status = 404, description = "attachment_not_found: no such attachment in a room of yours, or its message was deleted"),
        (status = 416, description = "range_not_satisfiable")))]
pub async fn download(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<AttachmentId>,
    headers: HeaderMap,
    _read_after: MinPosition,
) -> Result<Response, ApiError> {
    let d = find(&st, me, id).await?;
    let inline = d.content_type.starts_with("image/");
    serve(
        &st,
        &format!("attachments/{id}"),
        Some(&d.content_type),
        &d.sha256,
        &d.name,
        inline,
        &headers,
    )
    .await
}

#[utoipa::path(get, path = "/v1/attachments/{attachment_id}/thumbnail", security(("bearer" = [])),
    params(("attachment_id" = uuid::Uuid, Path), ("If-None-Match" = Option<String>, Header), ("min_position" = Option<i64>, Query)),
    responses((status = 200, description = "An image attachment's thumbnail (PNG or JPEG, at most 320 px a side)"), (status = 304), (status = 401),
        (status = 404, description = "attachment_not_found (also: not an image)")))]
pub async fn thumbnail(
    State(st): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<AttachmentId>,
    headers: HeaderMap,
    _read_after: MinPosition,
) -> Result<Response, ApiError> {
    let d = find(&st, me, id).await?;
    if d.image.is_none() {
        return Err(ApiError::not_found(
            "attachment_not_found",
            "this attachment has no thumbnail",
        ));
    }
    let key = format!("attachments/{id}.thumbnail");
    let name = format!("{}.thumbnail", d.name);
    // PNG or JPEG, as the thumbnailer chose: read from its first bytes.
    serve(
        &st,
        &key,
        None,
        &format!("{}-thumbnail", d.sha256),
        &name,
        true,
        &headers,
    )
    .await
}

/// Serves the attachment's blob `key`; `content_type` `None`: sniffed from its first bytes.
async fn serve(
    st: &AppState,
    key: &str,
    content_type: Option<&str>,
    tag: &str,
    name: &str,
    inline: bool,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    BlobResponse {
        key,
        content_type,
        tag,
        cache_control: CACHE,
        disposition: Some(
            HeaderValue::from_str(&disposition(inline, name))
                .unwrap_or(HeaderValue::from_static("attachment")),
        ),
        not_found,
    }
    .serve(st, headers)
    .await
}

/// `inline` or `attachment`, with the name as RFC 6266 / 8187 give it: an ASCII fallback and
/// the UTF-8 name percent-encoded.
fn disposition(inline: bool, name: &str) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' && c != '%' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

fn not_found() -> ApiError {
    ApiError::not_found("attachment_not_found", "attachment not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disposition_names_the_file_safely() {
        assert_eq!(
            disposition(false, "report \"final\".pdf"),
            "attachment; filename=\"report _final_.pdf\"; filename*=UTF-8''report%20%22final%22.pdf"
        );
        assert!(disposition(true, "chat é.png").starts_with("inline; filename=\"chat _.png\""));
    }
}
