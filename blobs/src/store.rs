//! [`BlobStore`]: attachments' bytes behind one type, on the local filesystem or in an
//! S3-compatible bucket, through the `object_store` crate.
//!
//! Keys are the callers' (`attachments/<uuid>`, `thumbnails/<uuid>`), taken as given once they
//! pass [`BlobStore`]'s key rules. An upload is streamed: the first part is buffered (a blob
//! that fits in it is one plain `PUT`), after that it is a multipart upload of fixed-size parts
//! with at most one part in flight, so memory per upload is bounded by one part whatever the
//! blob's size. Everything an upload wrote is removed when it fails: over its limit, the
//! client's body failing, the store failing, or the upload being dropped half-way.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayloadMut, WriteMultipart,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The part size of uploads to the local filesystem: the most an upload holds in memory there
/// (object_store writes the parts into a temporary file beside the blob, renamed into place on
/// completion).
pub const LOCAL_PART_SIZE: usize = 128 * 1024;

/// The part size of uploads to S3: the smallest part S3 accepts (all but the last part must be
/// at least 5 MiB), so the most an upload holds in memory there.
pub const S3_PART_SIZE: usize = 5 * 1024 * 1024;

/// How much of an upload's beginning [`Stored::head`] keeps, for [`crate::sniff`].
pub const SNIFF_BYTES: usize = 8 * 1024;

/// The longest key accepted (S3's limit).
const MAX_KEY_BYTES: usize = 1024;

/// Where blobs are kept.
#[derive(Clone, Debug)]
pub enum Backend {
    /// Files under `dir` (created when missing): the single-node default, under the platform's
    /// data directory.
    Local { dir: PathBuf },
    /// An S3-compatible bucket: for clusters.
    S3(S3Config),
}

/// An S3-compatible bucket and the credentials to it.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// The service's URL (`http://127.0.0.1:8333`, `https://s3.example.com`); none: AWS itself,
    /// by `region`. Requests are path-style (`ENDPOINT/BUCKET/KEY`), which every S3-compatible
    /// server understands.
    pub endpoint: Option<String>,
    pub bucket: String,
    /// The signing region (`us-east-1` for most S3-compatible servers).
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// Allows an `http://` endpoint (plaintext: for a server on the same host or network only);
    /// without it such an endpoint is refused by [`BlobStore::open`].
    pub allow_http: bool,
}

/// The blob store: cheap to clone (the client is shared), safe to use from many tasks.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    /// Uploads beyond one part are multipart uploads of parts this big.
    part_size: usize,
    /// `local` or `s3`, for Debug output (the client's own Debug would show credentials).
    kind: &'static str,
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStore")
            .field("backend", &self.kind)
            .field("store", &self.inner.to_string())
            .field("part_size", &self.part_size)
            .finish()
    }
}

/// What [`BlobStore::put_stream`] stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Bytes stored.
    pub size: u64,
    /// The SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// The first [`SNIFF_BYTES`] bytes (fewer when the blob is smaller), for [`crate::sniff`]
    /// and, when small enough, a thumbnail.
    pub head: Bytes,
}

/// A blob being read: its size and the bytes of the range asked for, as a stream.
pub struct Blob {
    /// The size of the whole blob.
    pub size: u64,
    /// The bytes `stream` yields: all of the blob, or the range asked for with its end clamped
    /// to the blob's size (as HTTP ranges are).
    pub range: Range<u64>,
    pub stream: BoxStream<'static, Result<Bytes, BlobError>>,
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no blob under that key")]
    NotFound,
    /// The range starts at or beyond the blob's end, or is empty (HTTP 416 with
    /// `Content-Range: bytes */SIZE`).
    #[error("range not satisfiable: the blob has {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// The key breaks the key rules (see [`BlobStore`]); nothing was asked of the store.
    #[error("invalid blob key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    /// A [`Backend`] that cannot be used as given.
    #[error("invalid blob store configuration: {0}")]
    InvalidConfig(String),
    /// The store failed (I/O, network, credentials, ...).
    #[error("blob store: {0}")]
    Store(#[source] object_store::Error),
    /// The local filesystem failed outside the store (creating its directory).
    #[error("blob store I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl From<object_store::Error> for BlobError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => Self::NotFound,
            e => Self::Store(e),
        }
    }
}

/// Why [`BlobStore::put_stream`] stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// More than `max_bytes` arrived (HTTP 413).
    #[error("the upload is larger than {max_bytes} bytes")]
    TooLarge { max_bytes: u64 },
    /// The client's body stream failed (the client went away, a malformed chunk, ...).
    #[error("the upload's body failed: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The key was invalid or the store failed.
    #[error(transparent)]
    Store(#[from] BlobError),
}

impl BlobStore {
    /// A store on `backend`. Local: creates the directory when missing. S3: builds the client
    /// (nothing is asked of the server yet, so a wrong bucket or credentials show on first use).
    pub fn open(backend: &Backend) -> Result<BlobStore, BlobError> {
        match backend {
            Backend::Local { dir } => {
                std::fs::create_dir_all(dir)?;
                // fsync: a blob a message refers to must outlive a crash, as the message does.
                let store = LocalFileSystem::new_with_prefix(dir)?.with_fsync(true);
                Ok(BlobStore {
                    inner: Arc::new(store),
                    part_size: LOCAL_PART_SIZE,
                    kind: "local",
                })
            }
            Backend::S3(config) => {
                if let Some(endpoint) = &config.endpoint
                    && endpoint.starts_with("http://")
                    && !config.allow_http
                {
                    return Err(BlobError::InvalidConfig(format!(
                        "the S3 endpoint {endpoint} is plain http but allow_http is off"
                    )));
                }
                // No total timeout: a download is streamed at the pace of the client it goes
                // to. A stalled server is still caught: 30 s without a byte while reading.
                // (`allow_http` is a client option: the builder's `with_allow_http` followed
                // by `with_client_options` would be undone by it.)
                let client = ClientOptions::new()
                    .with_allow_http(config.allow_http)
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout_disabled()
                    .with_read_timeout(Duration::from_secs(30));
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&config.bucket)
                    .with_region(&config.region)
                    .with_access_key_id(&config.access_key_id)
                    .with_secret_access_key(config.secret_access_key.expose_secret())
                    .with_virtual_hosted_style_request(false)
                    .with_client_options(client);
                if let Some(endpoint) = &config.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                Ok(BlobStore {
                    inner: Arc::new(builder.build()?),
                    part_size: S3_PART_SIZE,
                    kind: "s3",
                })
            }
        }
    }

    /// Streams `body` to `key`, hashing it as it passes, and returns its size, SHA-256 and first
    /// bytes. Fails with [`PutError::TooLarge`] as soon as more than `max_bytes` arrived, with
    /// [`PutError::Body`] when `body` yields an error, and in both cases (and on a store error)
    /// leaves nothing stored: the multipart upload is aborted (S3) or its temporary file removed
    /// (local). Dropping the future half-way aborts the upload too (on a spawned task).
    ///
    /// Memory: at most one part plus one chunk of `body` per upload ([`LOCAL_PART_SIZE`],
    /// 128 KiB, on the local filesystem; [`S3_PART_SIZE`], 5 MiB, on S3), whatever the blob's
    /// size; `body` is not read while a part is being written (back-pressure to the client).
    /// An existing blob under `key` is replaced once the upload completes, never before.
    ///
    /// A future dropped while the upload is completing may still leave a complete blob the
    /// caller never heard of (and, on S3, a dropped completion can leave parts for the bucket's
    /// lifecycle rule to clean): the garbage collection of unreferenced uploads covers both.
    pub async fn put_stream<S, E>(
        &self,
        key: &str,
        mut body: S,
        max_bytes: u64,
    ) -> Result<Stored, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::error::Error + Send + Sync + 'static,
    {
        let path = parse_key(key)?;
        let mut upload = Upload {
            store: Arc::clone(&self.inner),
            path,
            part_size: self.part_size,
            state: UploadState::Buffering(PutPayloadMut::new()),
        };
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    upload.abort().await;
                    return Err(PutError::Body(Box::new(e)));
                }
            };
            size = size.saturating_add(chunk.len() as u64);
            if size > max_bytes {
                upload.abort().await;
                return Err(PutError::TooLarge { max_bytes });
            }
            hasher.update(&chunk);
            if head.len() < SNIFF_BYTES {
                let take = chunk.len().min(SNIFF_BYTES - head.len());
                head.extend_from_slice(&chunk[..take]);
            }
            if let Err(e) = upload.write(chunk).await {
                upload.abort().await;
                return Err(PutError::Store(e.into()));
            }
        }
        upload.finish().await.map_err(BlobError::from)?;
        Ok(Stored {
            size,
            sha256: format!("{:x}", hasher.finalize()),
            head: Bytes::from(head),
        })
    }

    /// Stores `bytes` under `key` in one request, replacing what was there: for small things
    /// the server made itself (thumbnails).
    pub async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<(), BlobError> {
        let path = parse_key(key)?;
        self.inner.put(&path, bytes.into()).await?;
        Ok(())
    }

    /// Reads the blob under `key` ([`BlobError::NotFound`] when there is none) as a stream:
    /// all of it, or the byte `range` of it. A range must start inside the blob and not be
    /// empty, else [`BlobError::RangeNotSatisfiable`] with the blob's size; its end is clamped
    /// to the blob's size ([`Blob::range`] says what the stream yields), so an HTTP range
    /// `bytes=A-` is `A..u64::MAX`. (A suffix range, `bytes=-N`, needs the size first:
    /// [`BlobStore::head`].)
    pub async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Blob, BlobError> {
        let path = parse_key(key)?;
        if let Some(range) = &range
            && range.start >= range.end
        {
            let size = self.head(key).await?;
            return Err(BlobError::RangeNotSatisfiable { size });
        }
        let options = GetOptions {
            // An end no blob reaches is sent as an open range (`bytes=A-`): some servers
            // (SeaweedFS) refuse an end beyond i64 with 416 rather than clamp it.
            range: range.clone().map(|r| {
                if r.end > i64::MAX as u64 {
                    GetRange::Offset(r.start)
                } else {
                    GetRange::Bounded(r)
                }
            }),
            ..GetOptions::default()
        };
        match self.inner.get_opts(&path, options).await {
            Ok(result) => Ok(Blob {
                size: result.meta.size,
                range: result.range.clone(),
                stream: result.into_stream().map_err(BlobError::from).boxed(),
            }),
            Err(e) => {
                let e = BlobError::from(e);
                // Each backend words a range past the end its own way (a local error, an S3
                // 416): the blob's size decides, one more request on this failing path only.
                if let (Some(range), BlobError::Store(_)) = (&range, &e) {
                    let size = self.head(key).await?;
                    if range.start >= size {
                        return Err(BlobError::RangeNotSatisfiable { size });
                    }
                }
                Err(e)
            }
        }
    }

    /// The size of the blob under `key` ([`BlobError::NotFound`] when there is none).
    pub async fn head(&self, key: &str) -> Result<u64, BlobError> {
        let path = parse_key(key)?;
        Ok(self.inner.head(&path).await?.size)
    }

    /// Removes every blob whose key starts with the segments of `prefix` (`avatars/<user>`:
    /// all of one user's avatars) and returns how many; none is not an error. Blobs written
    /// under the prefix while this runs may be left: callers delete what they wrote
    /// themselves when it is refused.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, BlobError> {
        let path = parse_key(prefix)?;
        let mut listed = self.inner.list(Some(&path));
        let mut deleted = 0;
        while let Some(meta) = listed.next().await {
            let meta = match meta {
                Ok(meta) => meta,
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(BlobError::Store(e)),
            };
            match self.inner.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => return Err(BlobError::Store(e)),
            }
        }
        Ok(deleted)
    }

    /// Removes the blob under `key`; one that is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let path = parse_key(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(BlobError::Store(e)),
        }
    }
}

/// The key rules: 1 to 1024 bytes of segments separated by `/`, each segment non-empty and of
/// ASCII letters, digits, `-`, `_` and `.`, and no `..` anywhere. Keys are made by the server
/// (`attachments/<uuid>`), so the rules are narrow: no escaping, the same names on every
/// backend, and nothing the local backend could read as a path outside its directory or as
/// one of its temporary files (`<key>#<n>`).
fn parse_key(key: &str) -> Result<Path, BlobError> {
    let invalid = |reason| BlobError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    if key.is_empty() {
        return Err(invalid("empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid("longer than 1024 bytes"));
    }
    if key.contains("..") {
        return Err(invalid("contains `..`"));
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return Err(invalid("empty segment"));
        }
        if segment == "." {
            return Err(invalid("a `.` segment"));
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(invalid(
                "a character other than ASCII letters, digits, `-`, `_`, `.` and `/`",
            ));
        }
    }
    Path::parse(key).map_err(|_| invalid("not a valid object path"))
}

/// One upload in progress: buffering its first part, then a multipart upload.
struct Upload {
    store: Arc<dyn ObjectStore>,
    path: Path,
    part_size: usize,
    state: UploadState,
}

enum UploadState {
    /// Less than one part so far; nothing written to the store yet.
    Buffering(PutPayloadMut),
    /// A multipart upload (at most one part in flight).
    Multipart(WriteMultipart),
    /// Finished or aborted.
    Done,
}

impl Upload {
    async fn write(&mut self, chunk: Bytes) -> object_store::Result<()> {
        match &mut self.state {
            UploadState::Buffering(buffer) => {
                if buffer.content_length() + chunk.len() < self.part_size {
                    buffer.push(chunk);
                    return Ok(());
                }
                // A part's worth: from here on a multipart upload.
                let buffered = std::mem::take(buffer).freeze();
                let upload = self.store.put_multipart(&self.path).await?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
                for bytes in buffered {
                    writer.put(bytes);
                }
                writer.put(chunk);
                self.state = UploadState::Multipart(writer);
                Ok(())
            }
            UploadState::Multipart(writer) => {
                // Wait until no part is in flight: one part in memory at a time.
                writer.wait_for_capacity(1).await?;
                writer.put(chunk);
                Ok(())
            }
            UploadState::Done => Err(object_store::Error::Generic {
                store: "blobs",
                source: "write after the upload finished".into(),
            }),
        }
    }

    async fn finish(&mut self) -> object_store::Result<()> {
        match std::mem::replace(&mut self.state, UploadState::Done) {
            UploadState::Buffering(buffer) => {
                self.store.put(&self.path, buffer.freeze()).await?;
            }
            // On failure `finish` aborts the upload itself.
            UploadState::Multipart(writer) => {
                writer.finish().await?;
            }
            UploadState::Done => {}
        }
        Ok(())
    }

    /// Removes what the upload wrote so far (nothing while buffering). A failure is logged:
    /// the caller's error (too large, the body's) is the one to report.
    async fn abort(&mut self) {
        if let UploadState::Multipart(writer) =
            std::mem::replace(&mut self.state, UploadState::Done)
            && let Err(e) = writer.abort().await
        {
            tracing::warn!(path = %self.path, error = %e, "aborting a blob upload failed");
        }
    }
}

impl Drop for Upload {
    /// A multipart upload dropped half-way (its future was dropped: the client went away) is
    /// aborted on a task of its own; dropping it alone would leave S3's parts behind.
    fn drop(&mut self) {
        if let UploadState::Multipart(writer) =
            std::mem::replace(&mut self.state, UploadState::Done)
        {
            let path = self.path.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        if let Err(e) = writer.abort().await {
                            tracing::warn!(%path, error = %e, "aborting a dropped blob upload failed");
                        }
                    });
                }
                // Outside a runtime: the local temporary file is removed on drop; S3's parts
                // stay for the bucket's lifecycle rule.
                Err(_) => drop(writer),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_rules() {
        for ok in [
            "a",
            "attachments/0194f5c2-7d4e-7c1a-9b3e-2f1d8a6b5c4d",
            "thumbnails/x.png",
            "a/b/c_d-e.f",
        ] {
            assert!(parse_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "..", "a/../b", "a/..", "a..b", ".", "a/./b", "a b", "a#1",
            "a\\b", "ä", "a?b", "a%2e",
        ] {
            assert!(
                matches!(parse_key(bad), Err(BlobError::InvalidKey { .. })),
                "{bad:?} accepted"
            );
        }
        assert!(parse_key(&"a".repeat(1024)).is_ok());
        assert!(parse_key(&"a".repeat(1025)).is_err());
    }
}
