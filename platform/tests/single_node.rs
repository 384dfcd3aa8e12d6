//! The single-node platform: one process, one port, every role. A user registers,
//! creates a room and sends over the command routes, reads the projected history
//! (read-your-writes) and receives a live message over the WebSocket — all on the
//! same address.
#![allow(clippy::unwrap_used)]

mod common;

use serde_json::Value;
use test_support::{Client, TestEnv};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_serves_commands_reads_and_the_live_feed_on_one_port() {
    let env = TestEnv::new().await;
    let (server, api) = common::start(&env).await;
    let addr = api.base.trim_start_matches("http://").to_owned();
    let http = &api.http;
    let base = &api.base;

    // Registration answers its log position: a first read passing it waits for the new
    // account instead of a 404 `user_not_found`.
    let registered = api
        .post(
            "/v1/auth/register",
            None,
            serde_json::json!({ "username": "first_read", "password": "correct horse battery" }),
        )
        .await;
    let body = registered.assert_status(201);
    let at = body["position"]
        .as_i64()
        .expect("position in the register answer");
    let me = http
        .get(format!("{base}/v1/me?min_position={at}"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["username"], "first_read");

    let solo = api.register("solo").await;
    let token = solo.token.clone();
    let room = api.create_room(&solo, "lobby", "public").await;

    // The live feed on the same port.
    let mut req = format!("ws://{addr}/v1/ws?access_token={token}")
        .into_client_request()
        .unwrap();
    req.headers_mut().remove("origin");
    let mut ws = Client::open(req).await;
    let answer = ws.subscribe(room, None).await;
    assert_eq!(answer.last().unwrap()["type"], "subscribed");

    let sent = api
        .post(
            &format!("/v1/rooms/{room}/messages"),
            Some(&token),
            serde_json::json!({ "client_msg_id": "1", "body": "hello, single node" }),
        )
        .await;
    let position = sent.assert_status(201)["position"].as_i64().unwrap();

    let frames = ws.until(|f| f["type"] == "message_sent").await;
    let live = frames.last().unwrap();
    assert_eq!(live["data"]["body"], "hello, single node");
    assert_eq!(live["position"], position);

    // Read-your-writes through the projector running in the same process.
    let history: Value = http
        .get(format!(
            "{base}/v1/rooms/{room}/messages?min_position={position}"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["messages"][0]["body"], "hello, single node");

    // One address serves health, metrics of every role, and one OpenAPI document.
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    let projected = &ready["checks"]["projections"]["detail"][projector::READ_MODELS];
    assert!(projected.as_i64() >= Some(position), "{ready}");
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "chat_commands_total",
        "chat_ws_connections",
        "chat_projector_checkpoint",
        "chat_group_commit_batch_size_count",
        "chat_group_commit_seconds_bucket{step=\"one_statement\"",
        // Requests by route template (not the concrete path), method and status.
        "chat_http_requests_total{method=\"POST\",route=\"/v1/rooms/{room_id}/messages\",status=\"201\"} 1",
        "chat_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/rooms/{room_id}/messages\"} 1",
        "chat_build_info{git_commit=",
        "chat_relay_lag_events ",
        "chat_log_head_position ",
        // The live feed: one socket of one user, subscribed once, not resuming.
        "chat_ws_frames_received_total{kind=\"subscribe\"} 1",
        "chat_ws_frames_received_total{kind=\"invalid\"} 0",
        "chat_ws_resumes_total 0",
        "chat_ws_subscriptions 1",
        "chat_ws_users 1",
        "chat_ws_frames_total{kind=\"resync\"} 0",
        "chat_search_hits_count",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    // Every event of the log so far was appended by this process, the message last.
    let appended = format!("chat_events_appended_total {position}");
    let counted: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("chat_events_appended_total") || l.starts_with("chat_log_head"))
        .collect();
    assert!(
        metrics.contains(&appended),
        "{appended} missing from /metrics: {counted:?}"
    );
    // Every family exactly once, although three roles share the process-wide registry.
    assert_eq!(
        metrics.matches("# TYPE chat_http_requests_total ").count(),
        1,
        "{metrics}"
    );
    assert!(
        !metrics.contains(&room.to_string()),
        "a room id became a label value"
    );
    let doc: Value = http
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/v1/rooms/{room_id}/messages"]["post"].is_object());
    assert!(doc["paths"]["/v1/rooms/{room_id}/messages"]["get"].is_object());

    server.stop().await;
    env.cleanup().await;
}
