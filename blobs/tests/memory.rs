//! Memory per upload: 100 concurrent 10 MiB uploads, each body a stream of freshly allocated
//! 16 KiB chunks (as a server's request bodies are), and the process's RSS growth.
//! Ignored by default (RSS is the whole test process's); run alone:
//! `cargo test -p blobs --release --test memory -- --ignored --nocapture`
//! (with `S3_ENDPOINT` etc. set, the S3 backend too).

mod common;

use std::io::Write as _;

use bytes::Bytes;
use futures::stream;

const UPLOADS: usize = 100;
const SIZE: usize = 10 * 1024 * 1024;
const CHUNK: usize = 16 * 1024;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn measure(target: &common::Target) -> u64 {
    let before = rss_kib();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
    };
    let uploads = (0..UPLOADS).map(|i| {
        let store = target.store.clone();
        let key = target.key(&format!("m{i}"));
        tokio::spawn(async move {
            let body =
                stream::iter((0..SIZE / CHUNK).map(move |j| {
                    Ok::<_, std::io::Error>(Bytes::from(vec![(i + j) as u8; CHUNK]))
                }));
            store
                .put_stream(&key, body, SIZE as u64)
                .await
                .expect("upload");
        })
    });
    for upload in futures::future::join_all(uploads).await {
        upload.expect("task");
    }
    sampler.abort();
    let growth = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    for i in 0..UPLOADS {
        target
            .store
            .delete(&target.key(&format!("m{i}")))
            .await
            .expect("delete");
    }
    growth
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures the process's RSS: run alone"]
async fn hundred_concurrent_10_mib_uploads() {
    let local = common::Target::local("memory");
    let growth = measure(&local).await;
    let _ = writeln!(
        std::io::stderr(),
        "local: {UPLOADS} x 10 MiB concurrent uploads, peak RSS growth {} MiB",
        growth / 1024
    );
    if let Some(s3) = common::Target::s3("memory") {
        let growth = measure(&s3).await;
        let _ = writeln!(
            std::io::stderr(),
            "s3: {UPLOADS} x 10 MiB concurrent uploads, peak RSS growth {} MiB",
            growth / 1024
        );
    }
}
