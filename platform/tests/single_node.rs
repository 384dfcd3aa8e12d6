//! The single-node platform: one process, one port, every role. A user registers,
//! creates a room and sends over the command routes, reads the projected history
//! (read-your-writes) and receives a live message over the WebSocket — all on the
//! same address.
#![allow(clippy::unwrap_used)]

use eventlog::testing::{TestDb, TestNats};
use futures::{SinkExt, StreamExt};
use platform::{Platform, Settings};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_serves_commands_reads_and_the_live_feed_on_one_port() {
    let db = TestDb::new().await.unwrap();
    let nats = TestNats::new().await.unwrap();
    let secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());

    let mut command = command_api::configuration::Settings::from_defaults().unwrap();
    command.database_url = db.url.clone();
    command.create_database = false;
    command.nats_url = eventlog::testing::nats_url();
    command.stream_name = nats.stream_name.clone();
    command.subject_prefix = nats.prefix.clone();
    command.jwt_secret = secret.clone();
    let mut query = query_api::configuration::Settings::from_defaults().unwrap();
    query.database_url = db.url.clone();
    query.nats_url = command.nats_url.clone();
    query.stream_name = nats.stream_name.clone();
    query.subject_prefix = nats.prefix.clone();
    query.jwt_secret = secret;
    let mut projector = projector::configuration::Settings::from_defaults().unwrap();
    projector.database_url = db.url.clone();
    projector.nats_url = command.nats_url.clone();
    projector.stream_name = nats.stream_name.clone();
    projector.subject_prefix = nats.prefix.clone();

    let platform = Platform::build(Settings {
        listen: "127.0.0.1:0".into(),
        command,
        query,
        projector,
    })
    .await
    .unwrap();
    let addr = platform.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(platform.run(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");

    let reg = post(
        &http,
        format!("{base}/v1/auth/register"),
        None,
        json!({ "username": "solo", "password": "correct horse battery" }),
    )
    .await;
    let token = reg["access_token"].as_str().unwrap().to_owned();
    let created = post(
        &http,
        format!("{base}/v1/rooms"),
        Some(&token),
        json!({ "name": "lobby", "visibility": "public" }),
    )
    .await;
    let room = created["room_id"].as_str().unwrap().to_owned();

    // The live feed on the same port.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{addr}/v1/ws?access_token={token}"),
    )
    .unwrap();
    req.headers_mut().remove("origin");
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::Text(
        json!({ "type": "subscribe", "room_id": room })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    loop {
        let f = next_frame(&mut ws).await;
        if f["type"] == "subscribed" {
            break;
        }
    }

    let sent = post(
        &http,
        format!("{base}/v1/rooms/{room}/messages"),
        Some(&token),
        json!({ "client_msg_id": "1", "body": "hello, single node" }),
    )
    .await;
    let position = sent["position"].as_i64().unwrap();

    let live = loop {
        let f = next_frame(&mut ws).await;
        if f["type"] == "message_sent" {
            break f;
        }
    };
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
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
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

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    nats.cleanup().await;
}

async fn next_frame<S>(ws: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// POSTs a command and returns its body; every command here must be a 201.
async fn post(http: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    let mut req = http.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}
