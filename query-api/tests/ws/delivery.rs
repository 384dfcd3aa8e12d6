use crate::helpers::{Client, Got, Platform, is_message};
use futures::SinkExt;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn a_message_sent_by_one_member_reaches_the_other_members_socket_with_its_version_and_position()
 {
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let bob = p.register().await;
    let room = p.create_room(&alice, "public").await;
    p.join(&bob, room).await;

    let mut ws = Client::connect(p.query.addr, &bob.token).await;
    let subscribed = ws.subscribe(room, None).await;
    assert_eq!(
        subscribed.last().unwrap()["type"],
        "subscribed",
        "{subscribed:?}"
    );

    let sent = p.send(&alice, room, "hello bob").await;
    let frame = ws
        .until(|f| f["type"] == "message_sent")
        .await
        .pop()
        .unwrap();
    let position = sent["position"].as_i64().unwrap();
    assert_eq!(frame["room_id"], room.to_string());
    assert_eq!(frame["position"], position);
    assert_eq!(frame["version"], p.version_at(position).await);
    assert_eq!(frame["data"]["body"], "hello bob");
    assert_eq!(frame["data"]["message_id"], sent["message_id"]);
    assert_eq!(frame["data"]["seq"], sent["seq"]);
    assert_eq!(frame["data"]["sender_id"], alice.id.to_string());
    // When it happened, by the server's clock (RFC 3339).
    let at = frame["occurred_at"].as_str().expect("occurred_at");
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{frame}");
    p.cleanup().await;
}

#[tokio::test]
async fn a_kicked_members_open_socket_receives_nothing_sent_after_the_kick() {
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let bob = p.register().await;
    let carol = p.register().await;
    let room = p.create_room(&alice, "public").await;
    let other = p.create_room(&alice, "public").await;
    for r in [room, other] {
        p.join(&bob, r).await;
        p.join(&carol, r).await;
    }
    let mut bob_ws = Client::connect(p.query.addr, &bob.token).await;
    bob_ws.subscribe(room, None).await;
    bob_ws.subscribe(other, None).await;
    let mut carol_ws = Client::connect(p.query.addr, &carol.token).await;
    carol_ws.subscribe(room, None).await;

    p.send(&alice, room, "before the kick").await;
    p.kick(&alice, &bob, room).await;
    for i in 0..5 {
        p.send(&alice, room, &format!("after the kick {i}")).await;
    }
    p.send(&alice, room, "sentinel").await;
    let carol_saw = carol_ws.until(|f| is_message(f, "sentinel")).await;
    assert_eq!(
        carol_saw
            .iter()
            .filter(|f| f["type"] == "message_sent")
            .count(),
        7,
        "{carol_saw:?}"
    );
    // A later event of another room bob is still in: bob's queue is FIFO, so
    // anything of the first room would have come before it.
    p.send(&alice, other, "barrier").await;
    let bob_saw = bob_ws.until(|f| is_message(f, "barrier")).await;
    let in_room: Vec<&Value> = bob_saw
        .iter()
        .filter(|f| f["room_id"] == room.to_string())
        .collect();
    let kick_at = in_room
        .iter()
        .position(|f| f["type"] == "member_kicked")
        .expect("bob sees his own kick");
    assert!(is_message(in_room[0], "before the kick"), "{in_room:?}");
    assert_eq!(
        kick_at,
        in_room.len() - 1,
        "frames after the kick: {in_room:?}"
    );
    assert_eq!(
        p.query.live().subscriber_count(events::RoomId(room)),
        1,
        "only carol is left"
    );
    p.cleanup().await;
}

#[tokio::test]
async fn a_non_members_subscribe_gets_one_error_frame_and_no_data_while_messages_flow() {
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let dave = p.register().await;
    let public = p.create_room(&alice, "public").await;
    let private = p.create_room(&alice, "private").await;
    let own = p.create_room(&dave, "public").await;
    let mut ws = Client::connect(p.query.addr, &dave.token).await;
    ws.subscribe(own, None).await;

    p.send(&alice, public, "public 1").await;
    p.send(&alice, private, "private 1").await;
    let answer = ws.subscribe(public, None).await;
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(answer[0]["type"], "error");
    assert_eq!(answer[0]["code"], "not_a_member");
    // The refusal names the room, for a client subscribing to many at once.
    assert_eq!(answer[0]["room_id"], public.to_string());
    let answer = ws.subscribe(private, None).await;
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(answer[0]["code"], "room_not_found");
    assert_eq!(answer[0]["room_id"], private.to_string());
    let answer = ws.subscribe(uuid::Uuid::new_v4(), Some(0)).await;
    assert_eq!(answer[0]["code"], "room_not_found");
    let answer = ws.subscribe(private, Some(0)).await;
    assert_eq!(
        answer.len(),
        1,
        "a back-fill request gets nothing either: {answer:?}"
    );

    for i in 0..3 {
        p.send(&alice, public, &format!("public {i}")).await;
        p.send(&alice, private, &format!("private {i}")).await;
    }
    p.send(&dave, own, "barrier").await;
    let rest = ws.until(|f| is_message(f, "barrier")).await;
    assert_eq!(rest.len(), 1, "nothing but the barrier: {rest:?}");
    p.cleanup().await;
}

#[tokio::test]
async fn the_upgrade_requires_a_valid_token_and_an_allowed_origin() {
    let p = Platform::spawn_with(|s| s.ws_allowed_origins = "https://chat.example".into()).await;
    let alice = p.register().await;
    let url = format!("ws://{}/v1/ws", p.query.addr);
    let status = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status().as_u16(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => 101,
    };
    let plain = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map(|_| ());
    assert_eq!(status(plain), 401);
    let bad = tokio_tungstenite::connect_async(format!("{url}?access_token=nope"))
        .await
        .map(|_| ());
    assert_eq!(status(bad), 401);
    let by_query = tokio_tungstenite::connect_async(format!("{url}?access_token={}", alice.token))
        .await
        .map(|_| ());
    assert_eq!(status(by_query), 101);
    // The platform's own origin (the web client it serves at `/`) is always allowed, by
    // whatever address it is reached; a look-alike is not.
    let own = format!("http://{}", p.query.addr);
    let look_alike = format!("http://{}.evil.example", p.query.addr.ip());
    let with_path = format!("http://{}/x", p.query.addr);
    for (origin, expected) in [
        ("https://evil.example", 403),
        ("https://chat.example", 101),
        (own.as_str(), 101),
        (look_alike.as_str(), 403),
        (with_path.as_str(), 403),
        ("null", 403),
    ] {
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {}", alice.token).parse().unwrap(),
        );
        req.headers_mut().insert("Origin", origin.parse().unwrap());
        let r = tokio_tungstenite::connect_async(req).await.map(|_| ());
        assert_eq!(status(r), expected, "{origin}");
    }
    // The 401 body has the documented JSON shape.
    let res = p
        .http
        .get(format!("http://{}/v1/ws", p.query.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    // Authenticated but not an upgrade: a 4xx with the JSON error shape.
    let res = p
        .http
        .get(format!("http://{}/v1/ws", p.query.addr))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "websocket_upgrade_required");
    p.cleanup().await;
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_an_oversized_frame_closes_the_socket() {
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let mut ws = Client::connect(p.query.addr, &alice.token).await;
    ws.send(json!({ "type": "dance" })).await;
    assert_eq!(ws.next().await["code"], "unknown_frame");
    ws.ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(ws.next().await["code"], "invalid_frame");
    ws.send(json!({ "type": "subscribe", "room_id": "nope" }))
        .await;
    assert_eq!(ws.next().await["code"], "invalid_frame");
    ws.send(json!({ "type": "ping" })).await;
    assert_eq!(ws.next().await["type"], "pong");

    let huge = "x".repeat(70 * 1024);
    ws.ws.send(Message::Text(huge.into())).await.unwrap();
    match ws
        .next_until(Instant::now() + crate::helpers::DEADLINE)
        .await
    {
        Got::Closed(Some((code, _))) => assert_eq!(code, 1009),
        Got::Closed(None) => {}
        other => panic!("expected the socket closed, got {other:?}"),
    }
    p.cleanup().await;
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_the_socket_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let mut ws = Client::connect(p.query.addr, &alice.token).await;
    let not_utf8 = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    ws.ws.send(Message::Frame(not_utf8)).await.unwrap();
    match ws
        .next_until(Instant::now() + crate::helpers::DEADLINE)
        .await
    {
        Got::Closed(Some((code, _))) => assert_eq!(code, 1007),
        other => panic!("expected a close with 1007, got {other:?}"),
    }
    assert_eq!(p.query.closed("invalid_payload"), 1);
    p.cleanup().await;
}

#[tokio::test]
async fn a_socket_is_closed_with_4001_when_its_token_expires() {
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let keys = http_kit::auth::JwtKeys::new(&http_kit::auth::AuthConfig {
        jwt_secret: p.jwt_secret.clone(),
        access_ttl: std::time::Duration::from_secs(2),
        ..Default::default()
    })
    .unwrap();
    let (token, _) = keys.issue_access(alice.id, chrono::Utc::now());
    let mut ws = Client::connect(p.query.addr, &token).await;
    let started = Instant::now();
    match ws.next_until(started + crate::helpers::DEADLINE).await {
        Got::Closed(Some((code, reason))) => {
            assert_eq!(code, 4001);
            assert_eq!(reason, "token expired");
        }
        other => panic!("expected close 4001, got {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    assert_eq!(p.query.closed("token_expired"), 1);
    p.cleanup().await;
}

#[tokio::test]
async fn only_current_members_may_subscribe_invited_left_and_kicked_users_get_an_error() {
    let p = Platform::spawn().await;
    let owner = p.register().await;
    let member = p.register().await;
    let invited = p.register().await;
    let left = p.register().await;
    let kicked = p.register().await;
    let outsider = p.register().await;
    let room = p.create_room(&owner, "private").await;
    for u in [&member, &invited, &left, &kicked] {
        let (status, body) = p
            .post(
                &format!("/v1/rooms/{room}/invites"),
                &owner.token,
                Some(json!({ "user_id": u.id })),
            )
            .await;
        assert!((200..300).contains(&status), "invite: {status} {body}");
    }
    for u in [&member, &left, &kicked] {
        p.join(u, room).await;
    }
    let (status, _) = p
        .post(&format!("/v1/rooms/{room}/leave"), &left.token, None)
        .await;
    assert!((200..300).contains(&status));
    p.kick(&owner, &kicked, room).await;

    for (user, allowed) in [
        (&owner, true),
        (&member, true),
        (&invited, false),
        (&left, false),
        (&kicked, false),
        (&outsider, false),
    ] {
        let mut ws = Client::connect(p.query.addr, &user.token).await;
        for after in [None, Some(0)] {
            let answer = ws.subscribe(room, after).await;
            let last = answer.last().unwrap();
            if allowed {
                assert_eq!(last["type"], "subscribed", "{answer:?}");
            } else {
                assert_eq!(answer.len(), 1, "{answer:?}");
                assert_eq!(last["code"], "room_not_found", "private rooms stay hidden");
            }
        }
    }
    p.cleanup().await;
}

#[tokio::test]
async fn both_people_of_a_direct_room_receive_its_messages() {
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let bob = p.register().await;
    let (status, body) = p
        .post(
            "/v1/direct",
            &alice.token,
            Some(json!({ "user_id": bob.id })),
        )
        .await;
    assert!((200..300).contains(&status), "{status} {body}");
    let room: uuid::Uuid = body["room_id"].as_str().unwrap().parse().unwrap();
    let mut ws = Client::connect(p.query.addr, &bob.token).await;
    let history = ws.subscribe(room, Some(0)).await;
    let types: Vec<&str> = history
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "direct_room_opened",
            "member_joined",
            "member_joined",
            "subscribed"
        ]
    );
    p.send(&alice, room, "hi").await;
    ws.until(|f| is_message(f, "hi")).await;
    p.cleanup().await;
}

#[tokio::test]
async fn a_socket_silent_for_three_ping_intervals_is_closed_while_a_reading_one_stays_open() {
    let p = Platform::spawn_with(|s| s.ws_ping_secs = 1).await;
    let alice = p.register().await;
    // Never reads, so never answers the server's pings.
    let silent = Client::connect(p.query.addr, &alice.token).await;
    // Reads (tungstenite answers pings while reading) and sees no frames at all.
    let mut reading = Client::connect(p.query.addr, &alice.token).await;
    let started = Instant::now();
    let deadline = started + std::time::Duration::from_secs(6);
    match reading.next_until(deadline).await {
        Got::Timeout => {}
        other => panic!("the reading socket got {other:?}"),
    }
    assert_eq!(p.query.closed("ping_timeout"), 1);
    assert_eq!(p.query.live().connection_count(), 1);
    reading.send(json!({ "type": "ping" })).await;
    assert_eq!(reading.next().await["type"], "pong");
    drop(silent);
    p.cleanup().await;
}
