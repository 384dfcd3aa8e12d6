//! The store cases (`common`) against a real S3-compatible server: SeaweedFS, started by
//! `eval "$(bash scripts/seaweedfs.sh start)"`, which sets `S3_ENDPOINT`, `S3_ACCESS_KEY_ID`,
//! `S3_SECRET_ACCESS_KEY`, `S3_BUCKET` and `S3_REGION`. Without `S3_ENDPOINT` each test says
//! loudly on stderr that it did not run, and passes. Each test uses a key prefix of its own.

mod common;

macro_rules! s3_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(target) = common::Target::s3(stringify!($case)) else {
                    return;
                };
                assert!(target.is_s3());
                common::$case(&target).await;
            }
        )*
    };
}

s3_cases!(
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

/// A plain-http endpoint without `allow_http` is refused at `open`, before any request.
#[test]
fn plain_http_needs_allow_http() {
    let config = blobs::S3Config {
        endpoint: Some("http://127.0.0.1:1".into()),
        bucket: "b".into(),
        region: "us-east-1".into(),
        access_key_id: "k".into(),
        secret_access_key: "s".to_owned().into(),
        allow_http: false,
    };
    assert!(matches!(
        blobs::BlobStore::open(&blobs::Backend::S3(config)),
        Err(blobs::BlobError::InvalidConfig(_))
    ));
}

/// Wrong credentials: a store error from the server (not NotFound, not a panic).
#[tokio::test]
async fn wrong_credentials_are_a_store_error() {
    let Some(target) = common::Target::s3("wrong_credentials") else {
        return;
    };
    drop(target);
    let config = blobs::S3Config {
        endpoint: std::env::var("S3_ENDPOINT").ok(),
        bucket: std::env::var("S3_BUCKET").expect("S3_BUCKET"),
        region: "us-east-1".into(),
        access_key_id: "nobody".into(),
        secret_access_key: "wrong".to_owned().into(),
        allow_http: true,
    };
    let store = blobs::BlobStore::open(&blobs::Backend::S3(config)).expect("open");
    let e = store
        .put_bytes("wrong/creds", bytes::Bytes::from_static(b"x"))
        .await
        .expect_err("refused");
    assert!(
        matches!(
            e,
            blobs::BlobError::Store(
                object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
            )
        ),
        "{e:?}"
    );
}
