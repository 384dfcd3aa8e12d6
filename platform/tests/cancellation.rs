//! Clients that hang up mid-request: the handler's future is dropped wherever it was,
//! and no pooled connection may be left inside a transaction by it (a later request
//! would run in that transaction, or fail to set its isolation level).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use test_support::{TestEnv, unique};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Requests aborted mid-flight.
const ABORTED: usize = 200;

/// Sends `request` on a new connection and hangs up after `after` (without reading).
async fn abort_after(addr: &str, request: String, after: Duration) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    // Finer than the timer's millisecond.
    let until = Instant::now() + after;
    while Instant::now() < until {
        tokio::task::yield_now().await;
    }
    drop(stream);
}

/// Every log line written, in memory (the PostgreSQL notices sqlx logs among them).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
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

/// Connections of the test's database idle inside a transaction for longer than half a
/// second: nobody's, since every one of the services' own transactions runs its
/// statements back to back.
async fn left_in_a_transaction(pool: &sqlx::PgPool) -> Vec<(i32, String)> {
    sqlx::query_as(
        "SELECT pid, coalesce(query, '') FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()
            AND state IN ('idle in transaction', 'idle in transaction (aborted)')
            AND now() - state_change > interval '500 milliseconds'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_requests_aborted_mid_flight_leave_no_transaction_open_and_break_nothing() {
    // What PostgreSQL says about transactions (a BEGIN inside one, a late SET
    // TRANSACTION) reaches the log as sqlx's notices and errors.
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let env = TestEnv::new().await;
    let (server, api) = common::start(&env).await;
    let addr = api.base.trim_start_matches("http://").to_owned();

    let alice = api.register(&format!("alice_{}", unique())).await;
    let room = api
        .create_room(&alice, &format!("r{}", unique()), "public")
        .await;
    let mut position = 0;
    for i in 0..3 {
        position = api
            .send_message(&alice, room, &format!("m{i}"))
            .await
            .assert_status(201)["position"]
            .as_i64()
            .unwrap();
    }

    // Reads (a snapshot transaction each) and refreshes (a read-write transaction),
    // each abandoned after 0-4 ms (in steps of 0.1 ms), 20 at a time, so the hang-ups land in every phase
    // of the handlers: authentication, waiting for a connection, BEGIN, the queries.
    let history = format!(
        "GET /v1/rooms/{room}/messages?min_position={position} HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {}\r\n\r\n",
        alice.token
    );
    let body = json!({ "refresh_token": "not-a-token" }).to_string();
    let refresh = format!(
        "POST /v1/auth/refresh HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let started = Instant::now();
    for wave in 0..ABORTED / 20 {
        let mut aborts = tokio::task::JoinSet::new();
        for i in 0..20 {
            let n = wave * 20 + i;
            let request = if n % 4 == 3 {
                refresh.clone()
            } else {
                history.clone()
            };
            let after = Duration::from_micros((n % 40) as u64 * 100);
            let addr = addr.clone();
            aborts.spawn(async move { abort_after(&addr, request, after).await });
        }
        while let Some(done) = aborts.join_next().await {
            done.unwrap();
        }
    }
    eprintln!("{ABORTED} requests aborted in {:?}", started.elapsed());

    // No transaction is left open: sampled for a while, since a leaked one stays
    // "idle in transaction" until some later request happens to take its connection.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let open = left_in_a_transaction(&env.db.pool).await;
        assert!(
            open.is_empty(),
            "connections left inside a transaction: {open:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for needle in [
        "already a transaction in progress",
        "must be called before any query",
    ] {
        let lines = captured.lines_with(needle);
        assert!(
            lines.is_empty(),
            "{} times \"{needle}\": {:?}",
            lines.len(),
            lines.first()
        );
    }

    // And every later request works: reads, refreshes, logins and sends, concurrently.
    let mut later = tokio::task::JoinSet::new();
    for i in 0..100 {
        let api = api.clone();
        let alice = alice.clone();
        later.spawn(async move {
            let res = match i % 4 {
                0 => api.send_message(&alice, room, &format!("after {i}")).await,
                1 => {
                    api.post(
                        "/v1/auth/login",
                        None,
                        json!({ "username": alice.username, "password": test_support::http::PASSWORD }),
                    )
                    .await
                }
                _ => {
                    api.request(
                        Method::GET,
                        &format!("/v1/rooms/{room}/messages"),
                        Some(&alice.token),
                        None,
                        &[],
                    )
                    .await
                }
            };
            (i, res)
        });
    }
    let mut failed = Vec::new();
    while let Some(done) = later.join_next().await {
        let (i, res) = done.unwrap();
        if !(200..300).contains(&res.status) {
            failed.push((i, res.status, res.text));
        }
    }
    assert!(
        failed.is_empty(),
        "requests after the aborts failed: {failed:?}"
    );
    assert!(
        left_in_a_transaction(&env.db.pool).await.is_empty(),
        "a transaction is open after the later requests"
    );
    let warned = captured.lines_with("already a transaction in progress");
    assert!(
        warned.is_empty(),
        "{} BEGINs inside a transaction",
        warned.len()
    );

    server.stop().await;
    env.cleanup().await;
}
