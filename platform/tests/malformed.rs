//! Malformed requests and frames (#15 S4) against the single node: generated from a seed,
//! over every route template and the WebSocket. No answer is a 5xx, every error answer is
//! the JSON error body, and the platform serves as before afterwards.
//!
//! `CHAT_MALFORMED` sets how many of each (1,000 by default; the full tier is 10,000:
//! `CHAT_MALFORMED=10000 cargo test -p platform --test malformed -- --nocapture`);
//! `CHAT_MALFORMED_SEED` the seed (printed).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use test_support::TestEnv;
use tokio_tungstenite::tungstenite::Message;

/// Every route template with its methods.
const ROUTES: [(&str, &str); 25] = [
    ("/v1/auth/register", "POST"),
    ("/v1/auth/login", "POST"),
    ("/v1/auth/refresh", "POST"),
    ("/v1/auth/logout", "POST"),
    ("/v1/me", "GET"),
    ("/v1/users", "GET"),
    ("/v1/invites", "GET"),
    ("/v1/presence", "GET"),
    ("/v1/direct", "POST"),
    ("/v1/rooms", "GET POST"),
    ("/v1/rooms/public", "GET"),
    ("/v1/rooms/{room_id}", "GET PATCH"),
    ("/v1/rooms/{room_id}/join", "POST"),
    ("/v1/rooms/{room_id}/leave", "POST"),
    ("/v1/rooms/{room_id}/invites", "POST"),
    ("/v1/rooms/{room_id}/members", "GET"),
    ("/v1/rooms/{room_id}/members/{user_id}", "DELETE"),
    ("/v1/rooms/{room_id}/members/{user_id}/role", "PUT"),
    ("/v1/rooms/{room_id}/messages", "GET POST"),
    (
        "/v1/rooms/{room_id}/messages/{message_id}",
        "GET PATCH DELETE",
    ),
    (
        "/v1/rooms/{room_id}/messages/{message_id}/reactions/{emoji}",
        "PUT DELETE",
    ),
    ("/v1/rooms/{room_id}/read", "POST"),
    ("/v1/rooms/{room_id}/typing", "POST"),
    ("/v1/rooms/{room_id}/ephemeral", "POST"),
    ("/v1/search/messages", "GET"),
];

fn count() -> usize {
    std::env::var("CHAT_MALFORMED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// Text a fuzzer would try: empty, huge, NUL, bad percent-encoding, traversal, emoji,
/// numbers out of range, another id's shape.
fn nasty(rng: &mut StdRng, real: &str) -> String {
    let picks: [&dyn Fn(&mut StdRng) -> String; 14] = [
        &|_| real.to_owned(),
        &|_| uuid::Uuid::new_v4().to_string(),
        &|_| "not-a-uuid".to_owned(),
        &|_| String::new(),
        &|_| "%00".to_owned(),
        &|_| "%ZZ%".to_owned(),
        &|_| "..%2F..%2Fetc".to_owned(),
        &|_| "%F0%9F%98%80".to_owned(),
        &|r| "a".repeat(r.random_range(100..5000)),
        &|_| "-1".to_owned(),
        &|_| "99999999999999999999999".to_owned(),
        &|_| "1e308".to_owned(),
        &|_| "%E2%80%AE%C2%A0".to_owned(),
        &|r| {
            (0..r.random_range(1..20))
                .map(|_| format!("%{:02X}", r.random::<u8>()))
                .collect()
        },
    ];
    picks.choose(rng).unwrap()(rng)
}

fn json_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..if depth > 2 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random::<i64>()),
        3 => json!(rng.random::<f64>() * 1e300),
        4 => json!("x".repeat(rng.random_range(0..300))),
        5 => json!("\u{0}\u{85}\u{feff} "),
        6 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| json_value(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let keys = [
                "username",
                "password",
                "display_name",
                "refresh_token",
                "name",
                "topic",
                "visibility",
                "user_id",
                "role",
                "body",
                "client_msg_id",
                "reply_to",
                "seq",
                "unknown",
            ];
            Value::Object(
                (0..rng.random_range(0..6))
                    .map(|_| {
                        (
                            (*keys.choose(rng).unwrap()).to_owned(),
                            json_value(rng, depth + 1),
                        )
                    })
                    .collect(),
            )
        }
    }
}

fn body(rng: &mut StdRng) -> Option<Vec<u8>> {
    match rng.random_range(0..8) {
        0 => None,
        1 => Some(
            (0..rng.random_range(1..200))
                .map(|_| rng.random())
                .collect(),
        ),
        2 => Some(b"{\"body\": \"unterminated".to_vec()),
        3 => Some(format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes()),
        4 => Some(vec![b'x'; 70 * 1024]),
        _ => Some(json_value(rng, 0).to_string().into_bytes()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_and_frames_get_4xx_and_close_codes_never_a_5xx() {
    let seed: u64 = std::env::var("CHAT_MALFORMED_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    let n = count();
    eprintln!("malformed: {n} requests and {n} frames, seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let env = TestEnv::new().await;
    let (server, api) = common::start(&env).await;
    let (alice, bob, room) = common::two_in_a_room(&api).await;
    let message = api
        .send_message(&alice, room, "hello")
        .await
        .uuid("message_id");
    // A connection of its own per request: the server may close one after an early answer
    // (a body too large, a request it refused before reading the body), and a pooled
    // connection's next request would then fail in the client, not in the server.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();

    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::HEAD,
        Method::from_bytes(b"BREW").unwrap(),
    ];
    let content_types = [
        "application/json",
        "text/plain",
        "application/json; charset=utf-16",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "",
    ];
    let params = [
        "limit",
        "min_position",
        "before_seq",
        "after_seq",
        "q",
        "username",
        "cursor",
        "sort",
        "room_id",
        "user_id",
        "from",
        "to",
    ];
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for i in 0..n {
        let (route, allowed) = ROUTES.choose(&mut rng).unwrap();
        let mut path = route
            .replace("{room_id}", &nasty(&mut rng, &room.to_string()))
            .replace("{user_id}", &nasty(&mut rng, &bob.id.to_string()))
            .replace("{message_id}", &nasty(&mut rng, &message.to_string()))
            .replace("{emoji}", &nasty(&mut rng, "%F0%9F%91%8D"));
        if rng.random_bool(0.5) {
            let query: Vec<String> = (0..rng.random_range(1..4))
                .map(|_| {
                    format!(
                        "{}={}",
                        params.choose(&mut rng).unwrap(),
                        nasty(&mut rng, "1")
                    )
                })
                .collect();
            path = format!("{path}?{}", query.join("&"));
        }
        // Mostly a method the route has (its handlers are what is fuzzed), sometimes any.
        let method = if rng.random_bool(0.85) {
            let names: Vec<&str> = allowed.split(' ').collect();
            Method::from_bytes(names.choose(&mut rng).unwrap().as_bytes()).unwrap()
        } else {
            methods.choose(&mut rng).unwrap().clone()
        };
        let mut req = http.request(method.clone(), format!("{}{path}", api.base));
        req = match rng.random_range(0..5) {
            0 => req,
            1 => req.header("authorization", "Bearer not.a.jwt"),
            2 => req.header("authorization", format!("Basic {}", nasty(&mut rng, "x"))),
            _ => req.bearer_auth(&alice.token),
        };
        if rng.random_bool(0.3) {
            req = req.header("x-min-position", nasty(&mut rng, "1"));
        }
        if rng.random_bool(0.2) {
            req = req.header("idempotency-key", nasty(&mut rng, "k"));
        }
        if let Some(b) = body(&mut rng) {
            req = req
                .header("content-type", *content_types.choose(&mut rng).unwrap())
                .body(b);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} {method} {path}: {e:?}"));
        let status = res.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        let text = res.text().await.unwrap_or_default();
        assert!(status < 500, "request {i} {method} {path}: {status} {text}");
        if status >= 400 && method != Method::HEAD {
            let error: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
                panic!("request {i} {method} {path}: {status} not JSON: {text}")
            });
            assert!(
                error["error"]["code"].is_string(),
                "request {i} {method} {path}: {status} {text}"
            );
        }
    }
    eprintln!("malformed requests by status: {statuses:?}");

    // Frames: text that is not a frame, frames of the wrong shape, binary, huge; a socket
    // the server closes is opened again.
    let ws_url = format!(
        "ws://{}/v1/ws?access_token={}",
        api.base.trim_start_matches("http://"),
        alice.token
    );
    let mut closes: BTreeMap<u16, usize> = BTreeMap::new();
    let mut errors = 0usize;
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    for _ in 0..n {
        let frame = match rng.random_range(0..7) {
            0 => Message::Text(nasty(&mut rng, "{}").into()),
            1 => Message::Binary(
                (0..rng.random_range(0..64))
                    .map(|_| rng.random::<u8>())
                    .collect(),
            ),
            2 => Message::Text("x".repeat(2 * 1024 * 1024).into()),
            3 => {
                let ty = *["subscribe", "typing", "unsubscribe", "dance"]
                    .choose(&mut rng)
                    .unwrap();
                let frame = json!({
                    "type": ty,
                    "room_id": nasty(&mut rng, &room.to_string()),
                    "after_version": json_value(&mut rng, 2),
                });
                Message::Text(frame.to_string().into())
            }
            _ => Message::Text(json_value(&mut rng, 0).to_string().into()),
        };
        if ws.send(frame).await.is_err() {
            (ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
            continue;
        }
        // Read what came back until the socket is quiet for a moment.
        while let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(20), ws.next()).await {
            match got {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "error" {
                        errors += 1;
                    }
                }
                Ok(Message::Close(c)) => {
                    let code = c.map_or(1005, |c| u16::from(c.code));
                    *closes.entry(code).or_default() += 1;
                    assert!(code < 1011, "closed with a server error {code}");
                    (ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
                    break;
                }
                Ok(_) => {}
                Err(_) => {
                    (ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
                    break;
                }
            }
        }
    }
    eprintln!("malformed frames: {errors} error frames, closes by code {closes:?}");

    // Still serving: a read, a command and a socket.
    api.get("/v1/me", &alice.token).await.assert_status(200);
    api.send_message(&alice, room, "still here")
        .await
        .assert_status(201);
    let mut client = test_support::Client::connect(
        api.base.trim_start_matches("http://").parse().unwrap(),
        &bob.token,
    )
    .await;
    client.send(json!({ "type": "ping" })).await;
    assert_eq!(client.next().await["type"], "pong");
    server.stop().await;
    env.cleanup().await;
}
