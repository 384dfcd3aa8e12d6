//! `notification` frames (issue #17): a mention, a direct message, or (at level `all`) any
//! message in a room a socket has not subscribed to; and read markers, shown to the room unless
//! their reader keeps receipts private.

use crate::helpers::{Client, DEADLINE, Platform, is_message, wait_until};
use serde_json::{Value, json};
use std::time::Duration;

/// Projects the log, then waits until the node knows every connected user's rooms and levels
/// (from then on, a notification is sent in the same step as the live event that causes it).
async fn settle(p: &Platform) {
    p.project().await;
    wait_until(
        DEADLINE,
        Duration::from_millis(5),
        "the notifier loaded every user's rooms",
        || async { p.query.live().notifications_loading() == 0 },
    )
    .await;
}

/// The frames up to (and including) the barrier message, without it.
async fn before_barrier(ws: &mut Client, barrier: &str) -> Vec<Value> {
    let mut frames = ws.until(|f| is_message(f, barrier)).await;
    frames.pop();
    frames
}

fn notifications(frames: &[Value]) -> Vec<&Value> {
    frames
        .iter()
        .filter(|f| f["type"] == "notification")
        .collect()
}

#[tokio::test]
async fn a_mention_reaches_the_mentioned_members_unsubscribed_socket_once_and_nobody_else() {
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let bob = p.register().await;
    let carol = p.register().await;
    let dave = p.register().await;
    let room = p.create_room(&alice, "public").await;
    let barrier_room = p.create_room(&alice, "public").await;
    for u in [&bob, &dave] {
        p.join(u, room).await;
    }
    for u in [&bob, &carol, &dave] {
        p.join(u, barrier_room).await;
    }
    // dave wants nothing from the room.
    let (status, _) = p
        .put(
            &format!("/v1/rooms/{room}/notifications"),
            &dave.token,
            json!({}),
        )
        .await;
    assert_eq!(status, 400, "a level is required");
    let (status, body) = p
        .put(
            &format!("/v1/rooms/{room}/notifications"),
            &dave.token,
            json!({ "level": "none" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let mut sockets = Vec::new();
    for u in [&alice, &bob, &carol, &dave] {
        let mut ws = Client::connect(p.query.addr, &u.token).await;
        ws.subscribe(barrier_room, None).await;
        sockets.push(ws);
    }
    settle(&p).await;

    let body = format!(
        "hello @{} @{} @{}",
        alice.username, carol.username, dave.username
    );
    let sent = p.send(&bob, room, &body).await;
    p.send(&bob, barrier_room, "barrier 1").await;
    p.project().await;
    let [alice_ws, bob_ws, carol_ws, dave_ws] = &mut sockets[..] else {
        unreachable!()
    };
    let got = before_barrier(alice_ws, "barrier 1").await;
    let told = notifications(&got);
    assert_eq!(told.len(), 1, "{got:?}");
    assert_eq!(
        *told[0],
        json!({
            "type": "notification",
            "room_id": room,
            "reason": "mention",
            "message_id": sent["message_id"],
            "seq": sent["seq"],
            "sender_id": bob.id,
            "body": body,
            "position": sent["position"],
        })
    );
    // carol is not a member, dave chose none, bob wrote it.
    for (who, ws) in [("carol", carol_ws), ("dave", dave_ws), ("bob", bob_ws)] {
        let got = before_barrier(ws, "barrier 1").await;
        assert!(notifications(&got).is_empty(), "{who}: {got:?}");
    }

    // A socket that subscribed to the room gets the message itself, not a notification.
    alice_ws.subscribe(room, None).await;
    p.send(&bob, room, &format!("again @{}", alice.username))
        .await;
    p.send(&bob, barrier_room, "barrier 2").await;
    let got = before_barrier(alice_ws, "barrier 2").await;
    assert!(notifications(&got).is_empty(), "{got:?}");
    assert!(got.iter().any(|f| f["type"] == "message_sent"), "{got:?}");

    // A direct message, to a room opened after the socket connected.
    let (_, body) = p
        .post(
            "/v1/direct",
            &bob.token,
            Some(json!({ "user_id": carol.id })),
        )
        .await;
    let dm = body["room_id"].as_str().expect("room_id").to_owned();
    settle(&p).await;
    let dm: uuid::Uuid = dm.parse().expect("uuid");
    p.send(&bob, dm, "psst").await;
    p.send(&bob, barrier_room, "barrier 3").await;
    p.project().await;
    let carol_ws = &mut sockets[2];
    let got = before_barrier(carol_ws, "barrier 3").await;
    let told = notifications(&got);
    assert_eq!(told.len(), 1, "{got:?}");
    assert_eq!(told[0]["reason"], "direct");
    assert_eq!(told[0]["body"], "psst");
    p.cleanup().await;
}

#[tokio::test]
async fn read_markers_reach_the_room_unless_their_reader_keeps_receipts_private() {
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let bob = p.register().await;
    let dave = p.register().await;
    let room = p.create_room(&bob, "public").await;
    for u in [&alice, &dave] {
        p.join(u, room).await;
    }
    let (status, body) = p
        .put(
            "/v1/me/read-receipts",
            &dave.token,
            json!({ "private": true }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut bob_ws = Client::connect(p.query.addr, &bob.token).await;
    let mut dave_ws = Client::connect(p.query.addr, &dave.token).await;
    bob_ws.subscribe(room, None).await;
    dave_ws.subscribe(room, None).await;

    let seq = p.send(&bob, room, "seen?").await["seq"].clone();
    for u in [&dave, &alice] {
        let (status, _) = p
            .post(
                &format!("/v1/rooms/{room}/read"),
                &u.token,
                Some(json!({ "seq": seq })),
            )
            .await;
        assert_eq!(status, 200);
    }
    p.send(&bob, room, "barrier").await;
    let got = before_barrier(&mut bob_ws, "barrier").await;
    let markers: Vec<&Value> = got
        .iter()
        .filter(|f| f["type"] == "read_marker_moved")
        .collect();
    assert_eq!(markers.len(), 1, "only alice's: {got:?}");
    assert_eq!(markers[0]["data"]["user_id"], alice.id.to_string());
    // In dave's marker's place, its version and nothing else: versions stay contiguous.
    let hidden: Vec<&Value> = got.iter().filter(|f| f["type"] == "hidden").collect();
    assert_eq!(hidden.len(), 1, "{got:?}");
    assert_eq!(
        hidden[0].as_object().map(|o| o.len()),
        Some(4),
        "type, room_id, version, position: {}",
        hidden[0]
    );
    assert!(!hidden[0].to_string().contains(&dave.id.to_string()));
    let versions: Vec<i64> = got.iter().filter_map(|f| f["version"].as_i64()).collect();
    assert!(
        versions.windows(2).all(|w| w[1] == w[0] + 1),
        "contiguous: {versions:?}"
    );
    // dave's own devices follow his private marker.
    let got = before_barrier(&mut dave_ws, "barrier").await;
    let mine: Vec<&Value> = got
        .iter()
        .filter(|f| f["type"] == "read_marker_moved" && f["data"]["user_id"] == dave.id.to_string())
        .collect();
    assert_eq!(mine.len(), 1, "{got:?}");
    assert_eq!(mine[0]["data"]["private"], true);

    // A resume back-fills from the log: dave's private marker is not in bob's back-fill.
    let mut again = Client::connect(p.query.addr, &bob.token).await;
    let frames = again.subscribe(room, Some(0)).await;
    let markers: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "read_marker_moved")
        .collect();
    assert_eq!(markers.len(), 1, "{frames:?}");
    assert_eq!(markers[0]["data"]["user_id"], alice.id.to_string());
    assert_eq!(
        frames.iter().filter(|f| f["type"] == "hidden").count(),
        1,
        "{frames:?}"
    );
    assert!(
        !frames
            .iter()
            .any(|f| f.to_string().contains(&dave.id.to_string()) && f["type"] != "member_joined")
    );
    p.cleanup().await;
}
