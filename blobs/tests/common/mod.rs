//! The store cases, run against the local backend (`tests/local.rs`) and a real S3-compatible
//! server (`tests/s3.rs`), and what they share: a [`Target`] (a store, the test's own key
//! prefix, and an independent look at what the backend holds under it).

#![allow(dead_code)]

use std::io::Write as _;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use blobs::{Backend, BlobError, BlobStore, PutError, S3_PART_SIZE, S3Config, SNIFF_BYTES};
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ObjectStore, path::Path as ObjectPath};
use secrecy::{ExposeSecret, SecretString};
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

/// 43 bytes with a well-known SHA-256.
pub const FOX: &[u8] = b"The quick brown fox jumps over the lazy dog";
pub const FOX_SHA256: &str = "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592";
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// [`big_body`]'s size: three S3 parts (5 MiB, 5 MiB, the rest), ~90 local ones.
pub const BIG_LEN: usize = 11 * 1024 * 1024 + 12_345;
/// [`big_body`]'s SHA-256 (computed outside Rust: Python's hashlib over the same formula).
pub const BIG_SHA256: &str = "0b4ced6a31108f41575c0f9c749421776ff2312b7a7c9cd5e9d588dd55e627a2";

const MIB: usize = 1024 * 1024;

/// `len` bytes of a fixed pattern: byte `i` is `(31 i + i / 2048) mod 251`.
pub fn big_body(len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((i.wrapping_mul(31) + (i >> 11)) % 251) as u8)
        .collect()
}

/// `bytes` as a body stream of `chunk`-sized pieces that never fails.
pub fn chunked(
    bytes: &[u8],
    chunk: usize,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + use<> {
    let pieces: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(pieces)
}

/// Where a test's blobs go and how to see what the backend holds.
pub struct Target {
    pub store: BlobStore,
    /// The test's own key prefix (tests run in parallel against one bucket).
    pub prefix: String,
    kind: Kind,
}

enum Kind {
    /// A temporary directory of the test's own.
    Local { _dir: TempDir, root: PathBuf },
    /// A bucket, seen through a client of its own and `curl` for multipart uploads.
    S3 { config: S3Config, raw: AmazonS3 },
}

impl Target {
    /// The local backend in a new temporary directory.
    pub fn local(test: &str) -> Target {
        let dir = tempfile::tempdir().expect("temp dir");
        // A directory that does not exist yet: `open` creates it.
        let root = dir.path().join("blobs");
        let store = BlobStore::open(&Backend::Local { dir: root.clone() }).expect("open local");
        Target {
            store,
            prefix: format!("t-{test}"),
            kind: Kind::Local { _dir: dir, root },
        }
    }

    /// The S3-compatible server of `S3_ENDPOINT`, `S3_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY`,
    /// `S3_BUCKET` and `S3_REGION` (`eval "$(bash scripts/seaweedfs.sh start)"` sets them), or
    /// `None`, said loudly on stderr, when `S3_ENDPOINT` is not set. Set partly: a panic.
    pub fn s3(test: &str) -> Option<Target> {
        let Ok(endpoint) = std::env::var("S3_ENDPOINT") else {
            // Straight to the stream, not through eprintln!'s capture: shown even when the
            // test passes.
            // One write of one whole line, so that parallel tests do not interleave in it.
            let line = format!(
                "\n!!! SKIPPED blobs S3 test `{test}`: S3_ENDPOINT is not set, so it did NOT run \
                 against S3. Run it with `eval \"$(bash scripts/seaweedfs.sh start)\"` first. !!!\n"
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
            return None;
        };
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| panic!("S3_ENDPOINT is set but {name} is not"))
        };
        let config = S3Config {
            allow_http: endpoint.starts_with("http://"),
            endpoint: Some(endpoint),
            bucket: var("S3_BUCKET"),
            region: std::env::var("S3_REGION").unwrap_or_else(|_| "us-east-1".into()),
            access_key_id: var("S3_ACCESS_KEY_ID"),
            secret_access_key: SecretString::from(var("S3_SECRET_ACCESS_KEY")),
        };
        let store = BlobStore::open(&Backend::S3(config.clone())).expect("open s3");
        let raw = AmazonS3Builder::new()
            .with_endpoint(config.endpoint.clone().unwrap_or_default())
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(config.secret_access_key.expose_secret())
            .with_virtual_hosted_style_request(false)
            .with_allow_http(config.allow_http)
            .build()
            .expect("raw s3 client");
        Some(Target {
            store,
            prefix: format!("test-{}/{test}", uuid::Uuid::new_v4()),
            kind: Kind::S3 { config, raw },
        })
    }

    pub fn is_s3(&self) -> bool {
        matches!(self.kind, Kind::S3 { .. })
    }

    /// `name` under the test's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    /// Everything the backend holds under the prefix, seen without [`BlobStore`]: files
    /// (temporary ones too) under the local directory; objects and unfinished multipart
    /// uploads (`upload:KEY`) in the bucket.
    pub async fn leftovers(&self) -> Vec<String> {
        match &self.kind {
            Kind::Local { root, .. } => {
                let mut files = Vec::new();
                walk(root, root, &mut files);
                files.sort();
                files
            }
            Kind::S3 { config, raw } => {
                let prefix = ObjectPath::from(self.prefix.as_str());
                let mut found: Vec<String> = raw
                    .list(Some(&prefix))
                    .map_ok(|meta| meta.location.to_string())
                    .try_collect()
                    .await
                    .expect("list objects");
                found.extend(
                    multipart_uploads(config, &self.prefix)
                        .await
                        .into_iter()
                        .map(|key| format!("upload:{key}")),
                );
                found.sort();
                found
            }
        }
    }

    /// Waits (10 s at most) until [`Target::leftovers`] satisfies `done`, and returns them.
    pub async fn wait_for_leftovers(
        &self,
        what: &str,
        done: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.leftovers().await;
            if done(&found) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Removes what a test stored (S3: the bucket is shared; local: the directory goes anyway).
    pub async fn clean_up(&self, names: &[&str]) {
        for name in names {
            self.store.delete(&self.key(name)).await.expect("clean up");
        }
        assert_eq!(
            self.leftovers().await,
            Vec::<String>::new(),
            "left after the test"
        );
    }
}

fn walk(root: &FsPath, dir: &FsPath, files: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            walk(root, &path, files);
        } else {
            files.push(
                path.strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
}

/// The keys of the bucket's unfinished multipart uploads under `prefix` (S3
/// ListMultipartUploads, signed by curl: object_store has no call for it).
async fn multipart_uploads(config: &S3Config, prefix: &str) -> Vec<String> {
    // The query as SigV4 canonicalises it (sorted, every parameter with `=`, `/` encoded):
    // curl 7.88 signs the query as given.
    let url = format!(
        "{}/{}?prefix={}&uploads=",
        config.endpoint.as_deref().unwrap_or_default(),
        config.bucket,
        prefix.replace('/', "%2F")
    );
    let mut child = tokio::process::Command::new("curl")
        .args(["-sS", "--fail-with-body", "--max-time", "10", "--aws-sigv4"])
        .arg(format!("aws:amz:{}:s3", config.region))
        // The credentials through stdin, not the command line.
        .args(["-K", "-", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl (>= 7.75) is needed to list multipart uploads");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(
            format!(
                "user = \"{}:{}\"\n",
                config.access_key_id,
                config.secret_access_key.expose_secret()
            )
            .as_bytes(),
        )
        .await
        .expect("write curl config");
    drop(stdin);
    let out = child.wait_with_output().await.expect("curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && body.contains("ListMultipartUploadsResult"),
        "ListMultipartUploads failed: {} {body} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    body.split("<Upload>")
        .skip(1)
        .filter_map(|upload| {
            let start = upload.find("<Key>")? + "<Key>".len();
            let end = upload[start..].find("</Key>")? + start;
            Some(upload[start..end].to_owned())
        })
        .collect()
}

/// Reads a whole [`blobs::Blob`] stream.
pub async fn read_all(blob: blobs::Blob) -> Vec<u8> {
    let chunks: Vec<Bytes> = blob.stream.try_collect().await.expect("read the blob");
    chunks.concat()
}

async fn get_bytes(
    t: &Target,
    name: &str,
    range: Option<Range<u64>>,
) -> (u64, Range<u64>, Vec<u8>) {
    let blob = t.store.get(&t.key(name), range).await.expect("get");
    let (size, range) = (blob.size, blob.range.clone());
    (size, range, read_all(blob).await)
}

// ---------------------------------------------------------------------------------------
// The cases.

/// A small blob, streamed in pieces, comes back whole with its size, SHA-256 and head.
pub async fn round_trip(t: &Target) {
    let stored = t
        .store
        .put_stream(&t.key("fox"), chunked(FOX, 5), 1024)
        .await
        .expect("put");
    assert_eq!(stored.size, 43);
    assert_eq!(stored.sha256, FOX_SHA256);
    assert_eq!(stored.head, Bytes::from_static(FOX));
    assert_eq!(t.store.head(&t.key("fox")).await.expect("head"), 43);
    let (size, range, bytes) = get_bytes(t, "fox", None).await;
    assert_eq!((size, range), (43, 0..43));
    assert_eq!(bytes, FOX);
    assert_eq!(t.leftovers().await.len(), 1, "one blob, no temporary files");
    t.clean_up(&["fox"]).await;
}

/// A blob of several parts (a multipart upload on both backends): the bytes, the SHA-256
/// against a value computed elsewhere, the head, and a range across a part boundary.
pub async fn round_trip_multipart(t: &Target) {
    let body = big_body(BIG_LEN);
    // Chunks of an odd size, so parts are cut inside chunks.
    let stored = t
        .store
        .put_stream(
            &t.key("big"),
            chunked(&body, 64 * 1024 + 7),
            12 * MIB as u64,
        )
        .await
        .expect("put");
    assert_eq!(stored.size, BIG_LEN as u64);
    assert_eq!(stored.sha256, BIG_SHA256);
    assert_eq!(stored.head.as_ref(), &body[..SNIFF_BYTES]);
    let (size, range, bytes) = get_bytes(t, "big", None).await;
    assert_eq!((size, range), (BIG_LEN as u64, 0..BIG_LEN as u64));
    assert!(bytes == body, "the blob read back differs");
    let boundary = S3_PART_SIZE as u64;
    let (size, range, bytes) = get_bytes(t, "big", Some(boundary - 10..boundary + 10)).await;
    assert_eq!(
        (size, range.clone()),
        (BIG_LEN as u64, boundary - 10..boundary + 10)
    );
    assert_eq!(bytes, &body[range.start as usize..range.end as usize]);
    t.clean_up(&["big"]).await;
}

/// An empty upload is a blob of 0 bytes; no range of it is satisfiable.
pub async fn empty_blob(t: &Target) {
    let stored = t
        .store
        .put_stream(&t.key("empty"), chunked(b"", 1), 10)
        .await
        .expect("put");
    assert_eq!((stored.size, stored.sha256.as_str()), (0, EMPTY_SHA256));
    assert!(stored.head.is_empty());
    let (size, range, bytes) = get_bytes(t, "empty", None).await;
    assert_eq!((size, range, bytes.len()), (0, 0..0, 0));
    assert!(matches!(
        t.store.get(&t.key("empty"), Some(0..1)).await,
        Err(BlobError::RangeNotSatisfiable { size: 0 })
    ));
    t.clean_up(&["empty"]).await;
}

/// Ranges: inside, clamped at the end, open-ended.
pub async fn range_get(t: &Target) {
    t.store
        .put_bytes(&t.key("fox"), Bytes::from_static(FOX))
        .await
        .expect("put");
    let (size, range, bytes) = get_bytes(t, "fox", Some(4..9)).await;
    assert_eq!(
        (size, range, bytes.as_slice()),
        (43, 4..9, b"quick".as_slice())
    );
    let (size, range, bytes) = get_bytes(t, "fox", Some(40..1000)).await;
    assert_eq!(
        (size, range, bytes.as_slice()),
        (43, 40..43, b"dog".as_slice())
    );
    let (_, range, bytes) = get_bytes(t, "fox", Some(0..u64::MAX)).await;
    assert_eq!((range, bytes.as_slice()), (0..43, FOX));
    let (_, range, bytes) = get_bytes(t, "fox", Some(42..43)).await;
    assert_eq!((range, bytes.as_slice()), (42..43, b"g".as_slice()));
    t.clean_up(&["fox"]).await;
}

/// A range starting at or past the end, or empty: RangeNotSatisfiable with the size.
pub async fn range_beyond_the_end(t: &Target) {
    t.store
        .put_bytes(&t.key("fox"), Bytes::from_static(FOX))
        .await
        .expect("put");
    #[allow(clippy::reversed_empty_ranges)] // what a caller might pass
    let ranges = [43..44, 43..u64::MAX, 100..200, 5..5, 9..4];
    for range in ranges {
        match t.store.get(&t.key("fox"), Some(range.clone())).await {
            Err(BlobError::RangeNotSatisfiable { size: 43 }) => {}
            other => panic!("range {range:?}: {other:?}"),
        }
    }
    t.clean_up(&["fox"]).await;
}

/// One byte over the limit (1 MiB, delivered in small chunks): TooLarge, nothing stored;
/// exactly the limit is fine.
pub async fn too_large_leaves_nothing(t: &Target) {
    let body = big_body(MIB + 1);
    match t
        .store
        .put_stream(&t.key("big"), chunked(&body, 4096), MIB as u64)
        .await
    {
        Err(PutError::TooLarge { max_bytes }) => assert_eq!(max_bytes, MIB as u64),
        other => panic!("expected TooLarge: {other:?}"),
    }
    assert_eq!(t.leftovers().await, Vec::<String>::new());
    assert!(matches!(
        t.store.get(&t.key("big"), None).await,
        Err(BlobError::NotFound)
    ));

    let stored = t
        .store
        .put_stream(&t.key("exact"), chunked(&body[..MIB], 4096), MIB as u64)
        .await
        .expect("exactly the limit");
    assert_eq!(
        stored.sha256,
        "2b15ea03c43b9fea45798dfb4f89abde9693ba3a2c0ce2d0cf1da09a9b014f43"
    );
    t.clean_up(&["exact"]).await;
}

/// Over the limit after a multipart upload started (a part is in the store already): the
/// upload is aborted, nothing is left; and an endless body is not read to its end.
pub async fn too_large_after_parts_leaves_nothing(t: &Target) {
    let limit = (S3_PART_SIZE + MIB) as u64;
    let body = big_body(S3_PART_SIZE + MIB + 1);
    match t
        .store
        .put_stream(&t.key("big"), chunked(&body, 64 * 1024), limit)
        .await
    {
        Err(PutError::TooLarge { max_bytes }) => assert_eq!(max_bytes, limit),
        other => panic!("expected TooLarge: {other:?}"),
    }
    assert_eq!(t.leftovers().await, Vec::<String>::new());

    let endless =
        stream::repeat_with(|| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 64 * 1024])));
    match t.store.put_stream(&t.key("endless"), endless, limit).await {
        Err(PutError::TooLarge { .. }) => {}
        other => panic!("expected TooLarge: {other:?}"),
    }
    assert_eq!(t.leftovers().await, Vec::<String>::new());
}

/// The client's body fails (before and after the first part): Body error, nothing stored.
pub async fn failing_body_leaves_nothing(t: &Target) {
    for before_failing in [100 * 1024, S3_PART_SIZE + MIB] {
        let body = big_body(before_failing);
        let failing = chunked(&body, 16 * 1024).chain(stream::iter([Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "the client went away",
        ))]));
        match t
            .store
            .put_stream(&t.key("broken"), failing, 100 * MIB as u64)
            .await
        {
            Err(PutError::Body(e)) => assert!(e.to_string().contains("the client went away")),
            other => panic!("expected a Body error: {other:?}"),
        }
        assert_eq!(
            t.leftovers().await,
            Vec::<String>::new(),
            "after {before_failing} bytes"
        );
        assert!(matches!(
            t.store.head(&t.key("broken")).await,
            Err(BlobError::NotFound)
        ));
    }
}

/// An upload whose future is dropped half-way (the client went away, the handler was
/// cancelled), with a part already in the store: it is aborted, nothing is left.
pub async fn dropped_upload_leaves_nothing(t: &Target) {
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Bytes, std::io::Error>>();
    let store = t.store.clone();
    let key = t.key("dropped");
    let upload = tokio::spawn(async move { store.put_stream(&key, rx, 100 * MIB as u64).await });
    let body = big_body(S3_PART_SIZE + MIB);
    for chunk in body.chunks(64 * 1024) {
        tx.unbounded_send(Ok(Bytes::copy_from_slice(chunk)))
            .expect("send");
    }
    // The upload is under way: a temporary file (local) or a multipart upload (S3).
    let during = t
        .wait_for_leftovers("the upload to start", |found| !found.is_empty())
        .await;
    assert!(
        during
            .iter()
            .all(|f| f.contains('#') || f.starts_with("upload:")),
        "only an unfinished upload is visible: {during:?}"
    );
    upload.abort();
    assert!(upload.await.expect_err("aborted").is_cancelled());
    drop(tx);
    t.wait_for_leftovers("the dropped upload to be cleaned up", |found| {
        found.is_empty()
    })
    .await;
}

/// Delete: the blob is gone; deleting what is not there is fine.
pub async fn delete(t: &Target) {
    t.store
        .put_bytes(&t.key("fox"), Bytes::from_static(FOX))
        .await
        .expect("put");
    t.store.delete(&t.key("fox")).await.expect("delete");
    assert!(matches!(
        t.store.get(&t.key("fox"), None).await,
        Err(BlobError::NotFound)
    ));
    assert!(matches!(
        t.store.head(&t.key("fox")).await,
        Err(BlobError::NotFound)
    ));
    t.store.delete(&t.key("fox")).await.expect("delete again");
    t.store
        .delete(&t.key("never-stored"))
        .await
        .expect("delete absent");
    assert_eq!(t.leftovers().await, Vec::<String>::new());
}

/// delete_prefix removes every blob under a prefix (its whole segments only) and nothing
/// else; an empty or absent prefix is no error.
pub async fn delete_prefix(t: &Target) {
    for name in [
        "user-a/1",
        "user-a/2",
        "user-a/nested/3",
        "user-ab/4",
        "user-b/5",
    ] {
        t.store
            .put_bytes(&t.key(name), Bytes::from_static(FOX))
            .await
            .expect("put");
    }
    let deleted = t
        .store
        .delete_prefix(&t.key("user-a"))
        .await
        .expect("delete");
    assert_eq!(deleted, 3);
    for name in ["user-a/1", "user-a/2", "user-a/nested/3"] {
        assert!(matches!(
            t.store.head(&t.key(name)).await,
            Err(BlobError::NotFound)
        ));
    }
    for name in ["user-ab/4", "user-b/5"] {
        assert_eq!(t.store.head(&t.key(name)).await.expect("kept"), 43);
    }
    assert_eq!(
        t.store
            .delete_prefix(&t.key("user-a"))
            .await
            .expect("again"),
        0
    );
    assert_eq!(
        t.store
            .delete_prefix(&t.key("never"))
            .await
            .expect("absent"),
        0
    );
    t.clean_up(&["user-ab/4", "user-b/5"]).await;
}

/// A missing key: NotFound from get (with and without a range) and head.
pub async fn missing_is_not_found(t: &Target) {
    for range in [None, Some(0..10)] {
        match t.store.get(&t.key("missing"), range.clone()).await {
            Err(BlobError::NotFound) => {}
            other => panic!("range {range:?}: {other:?}"),
        }
    }
    assert!(matches!(
        t.store.head(&t.key("missing")).await,
        Err(BlobError::NotFound)
    ));
}

/// put_bytes replaces what was there.
pub async fn put_bytes_replaces(t: &Target) {
    let key = t.key("thumb");
    t.store
        .put_bytes(&key, Bytes::from_static(b"first"))
        .await
        .expect("put");
    t.store
        .put_bytes(&key, Bytes::from_static(b"second"))
        .await
        .expect("put again");
    let (size, _, bytes) = get_bytes(t, "thumb", None).await;
    assert_eq!((size, bytes.as_slice()), (6, b"second".as_slice()));
    t.clean_up(&["thumb"]).await;
}

/// Keys with `..` or empty segments (and others the rules refuse) are refused by every
/// operation before the store is asked; nothing is stored.
pub async fn invalid_keys_refused(t: &Target) {
    let p = &t.prefix;
    for key in [
        String::new(),
        format!("{p}/../escape"),
        format!("{p}/.."),
        "../outside".to_owned(),
        format!("{p}//double"),
        format!("/{p}/leading"),
        format!("{p}/trailing/"),
        format!("{p}/sp ace"),
        format!("{p}/hash#1"),
    ] {
        let invalid = |e: &BlobError| matches!(e, BlobError::InvalidKey { .. });
        match t.store.put_stream(&key, chunked(FOX, 8), 1024).await {
            Err(PutError::Store(e)) if invalid(&e) => {}
            other => panic!("put_stream {key:?}: {other:?}"),
        }
        let e = t
            .store
            .put_bytes(&key, Bytes::from_static(FOX))
            .await
            .expect_err("put_bytes");
        assert!(invalid(&e), "put_bytes {key:?}: {e:?}");
        let e = t.store.get(&key, None).await.expect_err("get");
        assert!(invalid(&e), "get {key:?}: {e:?}");
        let e = t.store.head(&key).await.expect_err("head");
        assert!(invalid(&e), "head {key:?}: {e:?}");
        let e = t.store.delete(&key).await.expect_err("delete");
        assert!(invalid(&e), "delete {key:?}: {e:?}");
    }
    assert_eq!(t.leftovers().await, Vec::<String>::new());
}
