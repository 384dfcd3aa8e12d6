use crate::helpers::{Client, DEADLINE, Got, Platform, is_message, wait_until};
use events::UserId;
use http_kit::secret::ExposeSecret;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::time::Instant;

fn short_presence(s: &mut query_api::configuration::Settings) {
    s.presence_heartbeat_secs = 1;
    s.presence_timeout_secs = 3;
}

fn presence_of(frames: &[Value], user: uuid::Uuid) -> Vec<&Value> {
    frames
        .iter()
        .filter(|f| f["type"] == "presence" && f["user_id"] == user.to_string())
        .collect()
}

#[tokio::test]
async fn an_open_socket_makes_a_user_online_and_closing_the_last_one_offline_with_last_seen() {
    let p = Platform::spawn_with(short_presence).await;
    let alice = p.register().await;
    let bob = p.register().await;
    let dave = p.register().await;
    let room = p.create_room(&alice, "public").await;
    p.join(&bob, room).await;
    let daves_room = p.create_room(&dave, "public").await;
    p.project().await;

    let mut bob_ws = Client::connect_watching_presence(p.query.addr, &bob.token).await;
    bob_ws.subscribe(room, None).await;
    let mut dave_ws = Client::connect_watching_presence(p.query.addr, &dave.token).await;
    dave_ws.subscribe(daves_room, None).await;
    let live = p.query.live();
    assert_eq!(
        live.presence_of(&[UserId(alice.id)]).await[0].status,
        "offline"
    );

    let mut alice_ws = Client::connect_watching_presence(p.query.addr, &alice.token).await;
    let mut second = Client::connect_watching_presence(p.query.addr, &alice.token).await;
    let online = bob_ws
        .until(|f| f["type"] == "presence" && f["user_id"] == alice.id.to_string())
        .await;
    assert_eq!(online.last().unwrap()["status"], "online");
    assert_eq!(
        live.presence_of(&[UserId(alice.id)]).await[0].status,
        "online"
    );

    // One socket closing is not going offline; the last one is.
    second.ws.close(None).await.unwrap();
    alice_ws.ws.close(None).await.unwrap();
    let closed_at = chrono::Utc::now();
    let offline = bob_ws
        .until(|f| f["type"] == "presence" && f["status"] == "offline")
        .await;
    let frame = offline.last().unwrap();
    assert_eq!(frame["user_id"], alice.id.to_string());
    assert!(frame["last_seen"].is_string(), "{frame}");
    assert!(
        presence_of(&offline, alice.id).len() == 1,
        "no flapping: {offline:?}"
    );
    let info = &live.presence_of(&[UserId(alice.id)]).await[0];
    assert_eq!(info.status, "offline");
    let last_seen = info.last_seen.expect("last_seen kept");
    assert!(
        (closed_at - last_seen).num_seconds().abs() <= 5,
        "{last_seen}"
    );

    // Dave shares no room with alice: he saw none of it.
    p.send(&dave, daves_room, "barrier").await;
    let dave_saw = dave_ws.until(|f| is_message(f, "barrier")).await;
    assert!(presence_of(&dave_saw, alice.id).is_empty(), "{dave_saw:?}");
    p.cleanup().await;
}

#[tokio::test]
async fn the_users_of_a_node_killed_with_sigkill_go_offline_within_the_timeout() {
    let p = Platform::spawn_with(short_presence).await;
    let alice = p.register().await;
    let bob = p.register().await;
    let room = p.create_room(&alice, "public").await;
    p.join(&bob, room).await;
    p.project().await;

    // A second node as a separate process.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = p.query_settings();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_query-api"))
        .env("APP_LISTEN", format!("127.0.0.1:{port}"))
        .env("APP_DATABASE_URL", s.service.database_url.expose_secret())
        .env("APP_NATS_URL", s.service.nats_url.expose_secret())
        .env("APP_STREAM_NAME", &s.service.stream_name)
        .env("APP_SUBJECT_PREFIX", &s.service.subject_prefix)
        .env("APP_JWT_SECRET", s.tokens.jwt_secret.expose_secret())
        .env("APP_DATA_DIR", &s.search.data_dir)
        .env("APP_PRESENCE_HEARTBEAT_SECS", "1")
        .env("APP_PRESENCE_TIMEOUT_SECS", "3")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until(
        DEADLINE,
        Duration::from_millis(50),
        "the node did not start",
        || async { tokio::net::TcpStream::connect(addr).await.is_ok() },
    )
    .await;

    let mut bob_ws = Client::connect_watching_presence(p.query.addr, &bob.token).await;
    bob_ws.subscribe(room, None).await;
    let _alice_ws = Client::connect_watching_presence(addr, &alice.token).await;
    let online = bob_ws
        .until(|f| f["type"] == "presence" && f["user_id"] == alice.id.to_string())
        .await;
    assert_eq!(online.last().unwrap()["status"], "online");
    let live = p.query.live();
    assert_eq!(
        live.presence_of(&[UserId(alice.id)]).await[0].status,
        "online"
    );

    let pid = child.id().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let _ = child.wait().await;
    let killed_at = Instant::now();

    let deadline = killed_at + Duration::from_secs(3 + 3);
    let frame = match bob_ws.next_until(deadline).await {
        Got::Frame(f) => f,
        other => panic!("no offline frame within the timeout: {other:?}"),
    };
    assert_eq!(frame["type"], "presence", "{frame}");
    assert_eq!(frame["status"], "offline", "{frame}");
    assert_eq!(frame["user_id"], alice.id.to_string());
    assert!(frame["last_seen"].is_string());
    let waited = killed_at.elapsed();
    assert!(waited <= Duration::from_secs(5), "took {waited:?}");
    let info = &live.presence_of(&[UserId(alice.id)]).await[0];
    assert_eq!(info.status, "offline");
    assert!(info.last_seen.is_some());
    p.cleanup().await;
}
