//! The store cases (`common`) against the local filesystem backend, each in a temporary
//! directory of its own.

mod common;

macro_rules! local_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                common::$case(&common::Target::local(stringify!($case))).await;
            }
        )*
    };
}

local_cases!(
    round_trip,
    round_trip_multipart,
    empty_blob,
    range_get,
    range_beyond_the_end,
    too_large_leaves_nothing,
    too_large_after_parts_leaves_nothing,
    failing_body_leaves_nothing,
    dropped_upload_leaves_nothing,
    delete,
    delete_prefix,
    missing_is_not_found,
    put_bytes_replaces,
    invalid_keys_refused,
);

/// `open` creates the directory, nested.
#[tokio::test]
async fn open_creates_the_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("a/b/c");
    let store = blobs::BlobStore::open(&blobs::Backend::Local { dir: root.clone() }).expect("open");
    assert!(root.is_dir());
    store
        .put_bytes("x/y", bytes::Bytes::from_static(b"z"))
        .await
        .expect("put");
    assert_eq!(std::fs::read(root.join("x/y")).expect("read"), b"z");
}
