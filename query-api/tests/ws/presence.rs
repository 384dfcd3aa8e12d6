use crate::helpers::{Client, Got, Platform, is_message, spawn_node};
use events::UserId;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

fn short_presence(s: &mut query_api::configuration::Settings) {
    s.presence_heartbeat_secs = 1;
    s.presence_timeout_secs = 3;
}

/// The changes about `user` in these frames (a frame of several carries them in `changes`).
fn presence_of(frames: &[Value], user: uuid::Uuid) -> Vec<&Value> {
    frames
        .iter()
        .filter(|f| f["type"] == "presence")
        .flat_map(changes)
        .filter(|c| c["user_id"] == user.to_string())
        .collect()
}

/// Every change a presence frame tells (ADR 19).
fn changes(frame: &Value) -> Vec<&Value> {
    match frame["changes"].as_array() {
        Some(all) => all.iter().collect(),
        None => vec![frame],
    }
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
    let (mut child, addr) = spawn_node(
        &p,
        &[
            ("APP_PRESENCE_HEARTBEAT_SECS", "1"),
            ("APP_PRESENCE_TIMEOUT_SECS", "3"),
        ],
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

/// ADR 19: presence fan-out is batched per window, so a burst of sign-ins into a room
/// reaches each member in a few frames (one per window), not one frame per member.
#[tokio::test]
async fn a_burst_of_sign_ins_reaches_each_member_in_one_frame_per_window_not_one_per_member() {
    const OTHERS: usize = 30;
    const WINDOW: Duration = Duration::from_millis(1000);
    let p = Platform::spawn_with(|s| {
        short_presence(s);
        s.presence_batch_ms = WINDOW.as_millis() as u64;
    })
    .await;
    let alice = p.register().await;
    let room = p.create_room(&alice, "public").await;
    let mut others = Vec::new();
    for _ in 0..OTHERS {
        let u = p.register().await;
        p.join(&u, room).await;
        others.push(u);
    }
    p.project().await;

    let mut alice_ws = Client::connect_watching_presence(p.query.addr, &alice.token).await;
    alice_ws.subscribe(room, None).await;
    // A frame names its recipient's own change too (clients skip it): hers may still be
    // on its way, one frame more than the burst's.
    let started = Instant::now();
    let sockets = futures::future::join_all(
        others
            .iter()
            .map(|u| Client::connect_watching_presence(p.query.addr, &u.token)),
    )
    .await;

    let mut frames = Vec::new();
    let mut online = std::collections::HashSet::new();
    while online.len() < OTHERS {
        let deadline = started + Duration::from_secs(30);
        match alice_ws.next_until(deadline).await {
            Got::Frame(f) if f["type"] == "presence" => {
                for c in changes(&f) {
                    assert_eq!(c["status"], "online", "{f}");
                    online.insert(c["user_id"].as_str().unwrap().to_owned());
                }
                frames.push(f);
            }
            Got::Frame(_) => {}
            other => panic!("{} of {OTHERS} online, then {other:?}", online.len()),
        }
    }
    let elapsed = started.elapsed();
    // The notifier starts at most one batch per window (plus alice's own, maybe).
    let windows = (elapsed.as_millis() / WINDOW.as_millis()) as usize + 2;
    assert!(
        frames.len() <= windows,
        "{} frames in {elapsed:?} ({windows} windows)",
        frames.len()
    );
    assert!(frames.len() < OTHERS, "one frame per member: {frames:?}");
    let expected: std::collections::HashSet<String> =
        others.iter().map(|u| u.id.to_string()).collect();
    assert!(online.is_superset(&expected), "{online:?}");
    assert!(online.len() <= OTHERS + 1, "{online:?}");
    drop(sockets);
    p.cleanup().await;
}
