//! Answering a GET with a blob (an attachment, its thumbnail, an avatar) so that a browser
//! never runs it: `X-Content-Type-Options: nosniff` and a sandboxing CSP. Validation (`ETag`,
//! `If-None-Match`, 304) and byte ranges (`Range`, 206, 416) as RFC 9110 gives them, with
//! the caching each route chooses.

use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use blobs::BlobError;
use futures::{StreamExt, TryStreamExt};
use http_kit::error::ApiError;
use std::ops::Range;

/// A blob of storage to answer with, and how.
pub(super) struct BlobResponse<'a> {
    /// Its key in blob storage.
    pub key: &'a str,
    /// Its `Content-Type`; `None`: sniffed from its first bytes (`application/octet-stream`
    /// when they say nothing).
    pub content_type: Option<&'a str>,
    /// The `ETag`, unquoted: must name these bytes and no others.
    pub tag: &'a str,
    /// `Cache-Control`.
    pub cache_control: &'static str,
    /// `Content-Disposition` of a 200 or 206, if any.
    pub disposition: Option<HeaderValue>,
    /// The answer when storage has no such blob (a 404 of the route's own).
    pub not_found: fn() -> ApiError,
}

impl BlobResponse<'_> {
    /// The answer to a GET with `request`'s headers: 304 when `If-None-Match` names the tag,
    /// 206 for one satisfiable range (416 otherwise), 200 with the whole blob else.
    pub(super) async fn serve(
        self,
        st: &AppState,
        request: &HeaderMap,
    ) -> Result<Response, ApiError> {
        let not_found = self.not_found;
        let store_error = |e: BlobError| match e {
            BlobError::NotFound => not_found(),
            other => ApiError::unavailable_because("blob storage failed", &other),
        };
        let etag = format!("\"{}\"", self.tag);
        let mut res_headers = HeaderMap::new();
        res_headers.insert(
            header::ETAG,
            HeaderValue::from_str(&etag).map_err(|e| ApiError::internal(&e))?,
        );
        res_headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(self.cache_control),
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
        if request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
        {
            return Ok((StatusCode::NOT_MODIFIED, res_headers).into_response());
        }
        // Only a range needs the size before the read.
        let (range, size) = match request.get(header::RANGE).and_then(|v| v.to_str().ok()) {
            Some(r) => {
                let size = st.blobs.head(self.key).await.map_err(store_error)?;
                (
                    parse_range(r, size).map_err(|()| unsatisfiable(size))?,
                    size,
                )
            }
            None => (None, 0),
        };
        let blob = st
            .blobs
            .get(self.key, range.clone())
            .await
            .map_err(|e| match e {
                BlobError::RangeNotSatisfiable { size } => unsatisfiable(size),
                other => store_error(other),
            })?;
        let mut stream = blob.stream;
        // A type to sniff is in the blob's first bytes: of the whole blob, the first chunk;
        // of a range, a read of its own (the range may start anywhere, or be short).
        let (first, head) = match (self.content_type, &range) {
            (Some(_), _) => (None, None),
            (None, None) => (stream.try_next().await.map_err(store_error)?, None),
            (None, Some(_)) => (None, Some(self.head(st, size).await.map_err(store_error)?)),
        };
        let content_type = self
            .content_type
            .or_else(|| first.as_deref().or(head.as_deref()).and_then(blobs::sniff))
            .unwrap_or("application/octet-stream");
        res_headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        );
        if let Some(disposition) = self.disposition {
            res_headers.insert(header::CONTENT_DISPOSITION, disposition);
        }
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
}

impl BlobResponse<'_> {
    /// The first bytes, at most [`SNIFF_BYTES`], of the blob of `size` bytes.
    async fn head(&self, st: &AppState, size: u64) -> Result<Vec<u8>, BlobError> {
        if size == 0 {
            return Ok(Vec::new());
        }
        let blob = st
            .blobs
            .get(self.key, Some(0..size.min(SNIFF_BYTES)))
            .await?;
        let chunks: Vec<bytes::Bytes> = blob.stream.try_collect().await?;
        Ok(chunks.concat())
    }
}

/// How many first bytes of a blob [`blobs::sniff`] is given to name its type (image and
/// document signatures sit in the first few).
const SNIFF_BYTES: u64 = 64;

/// One range of `Range: bytes=…` within `size` bytes: `Ok(None)` for a header this does not
/// serve as a range (several ranges, another unit: the whole blob is sent, as RFC 9110
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
}
