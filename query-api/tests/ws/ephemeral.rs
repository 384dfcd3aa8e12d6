use crate::helpers::{Client, Platform, is_message};
use serde_json::json;

#[tokio::test]
async fn typing_and_ephemeral_messages_reach_members_only_and_are_never_stored() {
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let bob = p.register().await;
    let carol = p.register().await;
    let dave = p.register().await;
    let room = p.create_room(&alice, "public").await;
    let barrier_room = p.create_room(&alice, "public").await;
    for u in [&bob, &carol, &dave] {
        p.join(u, barrier_room).await;
    }
    p.join(&bob, room).await;
    p.join(&carol, room).await;

    let mut alice_ws = Client::connect(p.query.addr, &alice.token).await;
    let mut bob_ws = Client::connect(p.query.addr, &bob.token).await;
    let mut carol_ws = Client::connect(p.query.addr, &carol.token).await;
    let mut dave_ws = Client::connect(p.query.addr, &dave.token).await;
    alice_ws.subscribe(room, None).await;
    bob_ws.subscribe(room, None).await;
    carol_ws.subscribe(room, None).await;
    // dave is not a member: refused, and he only listens to the barrier room.
    assert_eq!(dave_ws.subscribe(room, None).await[0]["type"], "error");
    for ws in [&mut alice_ws, &mut bob_ws, &mut carol_ws, &mut dave_ws] {
        ws.subscribe(barrier_room, None).await;
    }
    // Carol is kicked: she must not see typing or ephemeral traffic afterwards.
    p.kick(&alice, &carol, room).await;
    carol_ws.until(|f| f["type"] == "member_kicked").await;
    bob_ws.until(|f| f["type"] == "member_kicked").await;
    alice_ws.until(|f| f["type"] == "member_kicked").await;

    let events_before = p.event_count().await;
    // Typing over HTTP (command-api) and over the socket; an ephemeral message.
    let (status, _) = p
        .post(&format!("/v1/rooms/{room}/typing"), &alice.token, None)
        .await;
    assert_eq!(status, 202);
    let typing = bob_ws.next().await;
    assert_eq!(
        typing,
        json!({ "type": "typing", "room_id": room, "user_id": alice.id })
    );
    bob_ws
        .send(json!({ "type": "typing", "room_id": room }))
        .await;
    let typing = alice_ws.next().await;
    assert_eq!(
        typing,
        json!({ "type": "typing", "room_id": room, "user_id": bob.id })
    );
    let (status, _) = p
        .post(
            &format!("/v1/rooms/{room}/ephemeral"),
            &alice.token,
            Some(json!({ "body": "psst" })),
        )
        .await;
    assert_eq!(status, 202);
    for ws in [&mut bob_ws, &mut alice_ws] {
        let f = ws.next().await;
        assert_eq!(
            f,
            json!({ "type": "ephemeral", "room_id": room, "user_id": alice.id, "body": "psst" })
        );
    }
    // Non-members may not type into the room.
    dave_ws
        .send(json!({ "type": "typing", "room_id": room }))
        .await;
    assert_eq!(dave_ws.next().await["code"], "not_a_member");
    let (status, _) = p
        .post(&format!("/v1/rooms/{room}/typing"), &dave.token, None)
        .await;
    assert!((400..500).contains(&status));

    assert_eq!(
        p.event_count().await,
        events_before,
        "nothing ephemeral is stored"
    );

    p.send(&alice, barrier_room, "barrier").await;
    for ws in [&mut carol_ws, &mut dave_ws] {
        let rest = ws.until(|f| is_message(f, "barrier")).await;
        assert_eq!(rest.len(), 1, "outsiders got: {rest:?}");
    }
    // The typist does not get their own typing back; everything else arrived.
    let rest = alice_ws.until(|f| is_message(f, "barrier")).await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    let rest = bob_ws.until(|f| is_message(f, "barrier")).await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    p.cleanup().await;
}

/// ADR 19: typing notices within one window reach the room in one frame naming all the
/// typists; the first after a quiet window goes out at once; no typist is told of themselves.
#[tokio::test]
async fn typists_within_one_window_reach_the_room_in_one_frame_and_none_hears_themselves() {
    let p = Platform::spawn_with(|s| s.typing_batch_ms = 3000).await;
    let alice = p.register().await;
    let bob = p.register().await;
    let carol = p.register().await;
    let dave = p.register().await;
    let room = p.create_room(&alice, "public").await;
    for u in [&bob, &carol, &dave] {
        p.join(u, room).await;
    }
    let mut sockets = Vec::new();
    for u in [&alice, &bob, &carol, &dave] {
        let mut ws = Client::connect(p.query.addr, &u.token).await;
        ws.subscribe(room, None).await;
        sockets.push(ws);
    }
    for ws in &mut sockets {
        ws.send(json!({ "type": "typing", "room_id": room })).await;
    }
    let ids = [alice.id, bob.id, carol.id, dave.id];
    let mut frames = 0;
    for (i, ws) in sockets.iter_mut().enumerate() {
        let expected: std::collections::HashSet<String> = ids
            .iter()
            .filter(|u| **u != ids[i])
            .map(|u| u.to_string())
            .collect();
        let mut told = std::collections::HashSet::new();
        let mut typing = Vec::new();
        while told != expected {
            let f = ws.next().await;
            assert_eq!(f["type"], "typing", "socket {i}: {f}");
            let named: Vec<String> = match f["user_ids"].as_array() {
                Some(all) => {
                    assert_eq!(f["user_id"], all[0], "{f}");
                    all.iter().map(|u| u.as_str().unwrap().to_owned()).collect()
                }
                None => vec![f["user_id"].as_str().unwrap().to_owned()],
            };
            for u in named {
                assert!(expected.contains(&u), "socket {i} told of {u}: {f}");
                assert!(
                    told.insert(u),
                    "socket {i}: a typist named twice: {typing:?}, {f}"
                );
            }
            typing.push(f);
        }
        frames += typing.len();
    }
    // The first typist's notice went at once (3 frames), the other three's together at
    // the window's end (4 frames: the first typist is told all three, each of the others
    // the other two). One frame per typist and member would have been 12.
    assert_eq!(frames, 7);
    // Nothing more: the barrier is the next frame everywhere.
    p.send(&alice, room, "barrier").await;
    for ws in &mut sockets {
        let rest = ws.until(|f| is_message(f, "barrier")).await;
        assert_eq!(rest.len(), 1, "{rest:?}");
    }
    p.cleanup().await;
}

/// ADR 19: a typing notice held for the window's end is dropped when its typist's message
/// arrives first, so nobody is shown typing after what they typed was sent.
#[tokio::test]
async fn a_held_typing_notice_is_dropped_when_its_typists_message_arrives() {
    let p = Platform::spawn_with(|s| s.typing_batch_ms = 3000).await;
    let alice = p.register().await;
    let bob = p.register().await;
    let carol = p.register().await;
    let room = p.create_room(&alice, "public").await;
    p.join(&bob, room).await;
    p.join(&carol, room).await;
    let mut alice_ws = Client::connect(p.query.addr, &alice.token).await;
    alice_ws.subscribe(room, None).await;
    let mut bob_ws = Client::connect(p.query.addr, &bob.token).await;
    bob_ws.subscribe(room, None).await;
    let mut carol_ws = Client::connect(p.query.addr, &carol.token).await;
    carol_ws.subscribe(room, None).await;

    // carol's notice opens the window (at once); bob's is held for its end.
    carol_ws
        .send(json!({ "type": "typing", "room_id": room }))
        .await;
    let first = alice_ws.next().await;
    assert_eq!(first["user_id"], carol.id.to_string(), "{first}");
    bob_ws
        .send(json!({ "type": "typing", "room_id": room }))
        .await;
    p.send(&bob, room, "done typing").await;
    alice_ws.until(|f| is_message(f, "done typing")).await;
    // carol types again within the same window: held too, and told at the window's end in
    // the frame bob's notice would have been in. It names carol alone.
    carol_ws
        .send(json!({ "type": "typing", "room_id": room }))
        .await;
    let flushed = alice_ws.next().await;
    assert_eq!(
        flushed,
        json!({ "type": "typing", "room_id": room, "user_id": carol.id }),
        "bob's held notice was told after his message"
    );
    p.send(&carol, room, "barrier").await;
    let rest = alice_ws.until(|f| is_message(f, "barrier")).await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    p.cleanup().await;
}
