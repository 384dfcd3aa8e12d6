//! Downloading an attachment or its thumbnail (issue #17), for members of a room where a
//! message that is not deleted carries it, at request time (the same matrix as history).
//! Served so that a browser never runs it: `X-Content-Type-Options: nosniff`, a sandboxing
//! CSP, and `Content-Disposition: attachment` for everything but images. Byte ranges
//! (`Range`, 206) and validation (`ETag` = the SHA-256, `If-None-Match`, 304).

use super::consistency::MinPosition;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use blobs::BlobError;
use events::AttachmentId;
use futures::{StreamExt, TryStreamExt};
use http_kit::error::ApiError;
use http_kit::extract::{AuthUser, Path};
use serde::Deserialize;
use std::ops::Range;

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
    let not_found = || ApiError::not_found("attachment_not_found", "attachment not found");
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

/// Serves the blob `key`; `content_type` `None`: sniffed from its first chunk.
async fn serve(
    st: &AppState,
    key: &str,
    content_type: Option<&str>,
    tag: &str,
    name: &str,
    inline: bool,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let etag = format!("\"{tag}\"");
    let mut res_headers = HeaderMap::new();
    res_headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).map_err(|e| ApiError::internal(&e))?,
    );
    res_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    res_headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res_headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    res_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok((StatusCode::NOT_MODIFIED, res_headers).into_response());
    }
    // Only a range needs the size before the read.
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) => {
            let size = st.blobs.head(key).await.map_err(store_error)?;
            parse_range(r, size).map_err(|()| unsatisfiable(size))?
        }
        None => None,
    };
    let blob = st
        .blobs
        .get(key, range.clone())
        .await
        .map_err(|e| match e {
            BlobError::RangeNotSatisfiable { size } => unsatisfiable(size),
            other => store_error(other),
        })?;
    let mut stream = blob.stream;
    let first = match content_type {
        Some(_) => None,
        None => stream.try_next().await.map_err(store_error)?,
    };
    let content_type = content_type
        .or_else(|| first.as_deref().and_then(blobs::sniff))
        .unwrap_or("application/octet-stream");
    res_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    res_headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition(inline, name))
            .unwrap_or(HeaderValue::from_static("attachment")),
    );
    res_headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(blob.range.end - blob.range.start),
    );
    let status = if range.is_some() {
        res_headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!(
                "bytes {}-{}/{}",
                blob.range.start,
                blob.range.end.saturating_sub(1),
                blob.size
            ))
            .map_err(|e| ApiError::internal(&e))?,
        );
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let body = futures::stream::iter(first.map(Ok)).chain(stream);
    Ok((status, res_headers, Body::from_stream(body)).into_response())
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

/// One range of `Range: bytes=…` within `size` bytes: `Ok(None)` for a header this does not
/// serve as a range (several ranges, another unit: the whole file is sent, as RFC 9110
/// allows), `Err` for one that cannot be satisfied.
fn parse_range(value: &str, size: u64) -> Result<Option<Range<u64>>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (first, last) = spec.split_once('-').ok_or(())?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let n: u64 = last.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        size.saturating_sub(n)..size
    } else {
        let start: u64 = first.parse().map_err(|_| ())?;
        let end = if last.is_empty() {
            size
        } else {
            let l: u64 = last.parse().map_err(|_| ())?;
            if l < start {
                return Err(());
            }
            l.saturating_add(1).min(size)
        };
        start..end
    };
    if range.start >= size || range.is_empty() {
        return Err(());
    }
    Ok(Some(range))
}

fn unsatisfiable(size: u64) -> ApiError {
    ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
        format!("the range is outside the file's {size} bytes"),
    )
}

fn store_error(e: BlobError) -> ApiError {
    match e {
        BlobError::NotFound => ApiError::not_found("attachment_not_found", "attachment not found"),
        other => ApiError::unavailable_because("blob storage failed", &other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_within_the_file_are_served_and_others_refused() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some(0..10)));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some(90..100)));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some(90..100)));
        assert_eq!(parse_range("bytes=95-200", 100), Ok(Some(95..100)));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=5-4", 100), Err(()));
        assert_eq!(parse_range("bytes=-0", 100), Err(()));
        assert_eq!(parse_range("bytes=a-b", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
    }

    #[test]
    fn a_disposition_names_the_file_safely() {
        assert_eq!(
            disposition(false, "report \"final\".pdf"),
            "attachment; filename=\"report _final_.pdf\"; filename*=UTF-8''report%20%22final%22.pdf"
        );
        assert!(disposition(true, "chat é.png").starts_with("inline; filename=\"chat _.png\""));
    }
}
