//! One correlation id tells a request's story: a JSON log at debug level, filtered by the id
//! a client sent in `X-Request-Id`, shows the request, its command, the group commit that
//! appended it, the relay round that published it and the projection batch that applied it.
//! (Its own test binary: it installs the process-wide log subscriber.)
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use test_support::{TestEnv, wait_until};
use uuid::Uuid;

/// Every log line written, in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The captured lines that mention `needle`.
    fn lines_with(&self, needle: &str) -> Vec<String> {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_log_filtered_by_one_sends_correlation_id_shows_its_whole_path() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter("debug,sqlx=warn,async_nats=warn,hyper=warn,h2=warn,tower=warn")
        .with_writer(move || writer.clone())
        .init();

    let env = TestEnv::new().await;
    let (server, api) = common::start(&env).await;
    let solo = api.register("traced").await;
    let room = api.create_room(&solo, "traced", "public").await;

    let id = Uuid::new_v4();
    let res = api
        .http
        .post(format!("{}/v1/rooms/{room}/messages", api.base))
        .bearer_auth(&solo.token)
        .header("x-request-id", id.to_string())
        .json(&serde_json::json!({ "body": "follow me" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["x-request-id"], id.to_string().as_str());

    let id = id.to_string();
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "the projection batch that applied the send was not logged",
        || {
            let found = captured
                .lines_with(&id)
                .iter()
                .any(|l| l.contains("projection batch applied"));
            async move { found }
        },
    )
    .await;
    let story = captured.lines_with(&id);
    for step in [
        "request finished",
        "command committed",
        "group commit appended",
        "relay published",
        "projection batch applied",
    ] {
        assert!(
            story.iter().any(|l| l.contains(step)),
            "no {step:?} line with correlation id {id}; the lines with it:\n{}",
            story.join("\n")
        );
    }
    // Every one of them is JSON.
    for line in &story {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    server.stop().await;
}
