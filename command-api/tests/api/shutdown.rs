//! SIGTERM to command-api under a load of sends (#19 graceful shutdown): it stops
//! accepting, answers the requests in flight (their appends committed: the group commit
//! is flushed first), acknowledges nothing it did not commit, and exits cleanly within a
//! bounded time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http_kit::secret::ExposeSecret as _;
use test_support::{Api, DEADLINE, TestEnv, wait_until};
use tokio::time::Instant;
use uuid::Uuid;

/// Senders in parallel.
const SENDERS: usize = 16;
/// Acknowledged sends before the signal.
const BEFORE: usize = 200;
/// The bound on the exit: the drain of requests in flight, then the relay's stop.
const EXIT_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_what_is_in_flight_and_acknowledges_only_what_is_committed() {
    let env = TestEnv::new().await;
    let s = env.command_settings();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_command-api"))
        .env("APP_LISTEN", format!("127.0.0.1:{port}"))
        .env("APP_DATABASE_URL", &env.db.url)
        .env("APP_CREATE_DATABASE", "false")
        .env("APP_NATS_URL", s.service.nats_url.expose_secret())
        .env("APP_STREAM_NAME", &s.service.stream_name)
        .env("APP_SUBJECT_PREFIX", &s.service.subject_prefix)
        .env("APP_JWT_SECRET", s.tokens.jwt_secret.expose_secret())
        .env("APP_RATE_LIMIT_ENABLED", "false")
        .env("APP_HASH_CONCURRENCY", "2")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until(
        DEADLINE,
        Duration::from_millis(50),
        "command-api to start",
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        },
    )
    .await;
    let http = reqwest::Client::new();
    let api = Api::new(http.clone(), base.clone());
    let alice = api
        .register(&format!("alice_{}", test_support::unique()))
        .await;
    let room = api.create_room(&alice, "shutdown", "public").await;

    // Each sender sends until the server stops answering; every answer is recorded with
    // when it came.
    let signalled: Arc<OnceLock<Instant>> = Arc::default();
    let answers: Arc<Mutex<Vec<(String, u16, Instant)>>> = Arc::default();
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (http, answers) = (http.clone(), answers.clone());
        let (url, token) = (
            format!("{base}/v1/rooms/{room}/messages"),
            alice.token.clone(),
        );
        senders.push(tokio::spawn(async move {
            loop {
                let id = Uuid::new_v4().to_string();
                let sent = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({ "client_msg_id": id, "body": "until SIGTERM" }))
                    .send()
                    .await;
                match sent {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        let _ = res.bytes().await;
                        answers.lock().unwrap().push((id, status, Instant::now()));
                    }
                    // Refused or closed: the server has stopped accepting.
                    Err(_) => return,
                }
            }
        }));
    }
    wait_until(
        DEADLINE,
        Duration::from_millis(10),
        "sends to be acknowledged",
        || {
            let n = answers.lock().unwrap().len();
            async move { n >= BEFORE }
        },
    )
    .await;

    test_support::process::signal(&child, "TERM");
    let at = *signalled.get_or_init(Instant::now);
    let status = tokio::time::timeout(EXIT_WITHIN, child.wait())
        .await
        .expect("command-api did not exit in time")
        .unwrap();
    assert!(status.success(), "command-api exited with {status}");
    for sender in senders {
        sender.await.unwrap();
    }

    let answers = answers.lock().unwrap().clone();
    let errors: Vec<_> = answers.iter().filter(|(_, s, _)| *s != 201).collect();
    assert!(
        errors.is_empty(),
        "sends answered other than 201: {errors:?}"
    );
    let after = answers.iter().filter(|(_, _, t)| *t > at).count();
    assert!(after > 0, "no request in flight at the signal was answered");

    // Every acknowledged send is in the log exactly once.
    let logged: Vec<(String, i64)> = sqlx::query_as(
        "SELECT data->>'client_msg_id', count(*) FROM events \
         WHERE event_type = 'MessageSent' GROUP BY 1",
    )
    .fetch_all(&env.db.pool)
    .await
    .unwrap();
    let logged: HashMap<String, i64> = logged.into_iter().collect();
    for (id, _, _) in &answers {
        assert_eq!(
            logged.get(id),
            Some(&1),
            "acknowledged send {id} in the log"
        );
    }
    eprintln!(
        "{} sends acknowledged, {after} of them answered after SIGTERM; exit {status}",
        answers.len()
    );
    env.cleanup().await;
}
