//! The main user journeys, end to end.

use crate::helpers::TestApp;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_user_registers_logs_in_refreshes_and_talks_in_a_room() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;

    // Login returns a working token pair.
    let login = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "username": "alice", "password": "correct horse battery" }),
        )
        .await;
    let body = login.assert_status(200);
    assert_eq!(body["user_id"], alice.id.to_string());
    assert!(body["expires_in"].as_i64().unwrap() > 0);

    // Refresh rotates: the new pair works, the old refresh token is spent.
    let refreshed = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": alice.refresh }),
        )
        .await;
    let new_refresh = refreshed.assert_status(200)["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_refresh, alice.refresh);
    app.post(
        "/v1/auth/refresh",
        None,
        json!({ "refresh_token": alice.refresh }),
    )
    .await
    .assert_error(401, "invalid_refresh_token");
    let token = refreshed.body["access_token"].as_str().unwrap().to_owned();

    // Create a room, bob joins, alice sends, edits, bob reacts and reads, bob leaves.
    let created = app
        .post(
            "/v1/rooms",
            Some(&token),
            json!({ "name": " general ", "topic": "all things", "visibility": "public" }),
        )
        .await;
    let created = created.assert_status(201);
    let room: uuid::Uuid = created["room_id"].as_str().unwrap().parse().unwrap();
    assert!(created["position"].as_i64().unwrap() > 0);
    assert_eq!(created["version"], 2);

    app.join(&bob, room).await.assert_status(200);

    let sent = app
        .post(
            &format!("/v1/rooms/{room}/messages"),
            Some(&token),
            json!({ "client_msg_id": "m-1", "body": "  hello bob  " }),
        )
        .await;
    let sent = sent.assert_status(201).clone();
    assert_eq!(sent["seq"], 1);
    let message_id = sent["message_id"].as_str().unwrap().to_owned();
    let p1 = sent["position"].as_i64().unwrap();

    let reply = app
        .post(
            &format!("/v1/rooms/{room}/messages"),
            Some(&bob.token),
            json!({ "client_msg_id": "b-1", "body": "hi!", "reply_to": message_id }),
        )
        .await;
    assert_eq!(reply.assert_status(201)["seq"], 2);
    assert!(reply.body["position"].as_i64().unwrap() > p1);

    let edited = app
        .request(
            Method::PATCH,
            &format!("/v1/rooms/{room}/messages/{message_id}"),
            Some(&token),
            Some(json!({ "body": "hello bob (edited)" })),
            &[],
        )
        .await;
    assert_eq!(edited.assert_status(200)["edit_number"], 1);

    let path = format!("/v1/rooms/{room}/messages/{message_id}/reactions/%F0%9F%91%8D");
    app.request(Method::PUT, &path, Some(&bob.token), None, &[])
        .await
        .assert_status(200);
    // Adding it again changes nothing and appends nothing.
    let before = app.event_count().await;
    let again = app
        .request(Method::PUT, &path, Some(&bob.token), None, &[])
        .await;
    assert!(again.assert_status(200)["position"].is_null());
    assert_eq!(app.event_count().await, before);

    app.post(
        &format!("/v1/rooms/{room}/read"),
        Some(&bob.token),
        json!({ "seq": 2 }),
    )
    .await
    .assert_status(200);
    // A read marker never moves back: an older seq is a no-op.
    let back = app
        .post(
            &format!("/v1/rooms/{room}/read"),
            Some(&bob.token),
            json!({ "seq": 1 }),
        )
        .await;
    assert!(back.assert_status(200)["position"].is_null());

    app.request(Method::DELETE, &path, Some(&bob.token), None, &[])
        .await
        .assert_status(200);
    app.request(
        Method::DELETE,
        &format!("/v1/rooms/{room}/messages/{message_id}"),
        Some(&token),
        None,
        &[],
    )
    .await
    .assert_status(200);

    app.post_empty(&format!("/v1/rooms/{room}/leave"), &bob.token)
        .await
        .assert_status(200);
    app.send(&bob, room, "still here?")
        .await
        .assert_error(403, "not_a_member");

    assert_eq!(
        app.stream_types(&format!("room-{room}")).await,
        vec![
            "RoomCreated",
            "MemberJoined",
            "MemberJoined",
            "MessageSent",
            "MessageSent",
            "MessageEdited",
            "ReactionAdded",
            "ReadMarkerMoved",
            "ReactionRemoved",
            "MessageDeleted",
            "MemberLeft",
        ]
    );
    assert_eq!(
        app.stream_types(&format!("user-{}", alice.id)).await,
        vec!["UserRegistered"]
    );
    // The password hash never enters the log.
    let (leaks,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM events WHERE data::text ILIKE '%argon2%'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(leaks, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn a_private_room_needs_an_invite_and_a_kicked_user_needs_a_new_one() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner").await;
    let carol = app.register("carol").await;
    let room = app.create_room(&owner, "private").await;

    // Without an invite the room does not even exist for carol.
    app.join(&carol, room)
        .await
        .assert_error(404, "room_not_found");

    let invites = format!("/v1/rooms/{room}/invites");
    app.post(&invites, Some(&owner.token), json!({ "user_id": carol.id }))
        .await
        .assert_status(200);
    app.post(&invites, Some(&owner.token), json!({ "user_id": carol.id }))
        .await
        .assert_error(409, "already_invited");
    app.join(&carol, room).await.assert_status(200);
    app.send(&carol, room, "thanks for the invite")
        .await
        .assert_status(201);

    // Kicked: cannot post, cannot rejoin without a new invite.
    app.request(
        Method::DELETE,
        &format!("/v1/rooms/{room}/members/{}", carol.id),
        Some(&owner.token),
        None,
        &[],
    )
    .await
    .assert_status(200);
    app.send(&carol, room, "hello?")
        .await
        .assert_error(404, "room_not_found");
    app.join(&carol, room)
        .await
        .assert_error(404, "room_not_found");
    app.post(&invites, Some(&owner.token), json!({ "user_id": carol.id }))
        .await
        .assert_status(200);
    app.join(&carol, room).await.assert_status(200);

    // Inviting someone who does not exist is a 404, and appends nothing.
    let before = app.event_count().await;
    app.post(
        &invites,
        Some(&owner.token),
        json!({ "user_id": uuid::Uuid::new_v4() }),
    )
    .await
    .assert_error(404, "user_not_found");
    assert_eq!(app.event_count().await, before);
    app.cleanup().await;
}

#[tokio::test]
async fn a_kicked_user_can_rejoin_a_public_room() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner").await;
    let dave = app.register("dave").await;
    let room = app.create_room(&owner, "public").await;
    app.join(&dave, room).await.assert_status(200);
    app.request(
        Method::DELETE,
        &format!("/v1/rooms/{room}/members/{}", dave.id),
        Some(&owner.token),
        None,
        &[],
    )
    .await
    .assert_status(200);
    app.send(&dave, room, "hey")
        .await
        .assert_error(403, "not_a_member");
    app.join(&dave, room).await.assert_status(200);
    app.send(&dave, room, "back").await.assert_status(201);
    app.cleanup().await;
}

#[tokio::test]
async fn there_is_exactly_one_direct_room_per_pair() {
    let app = TestApp::spawn().await;
    let a = app.register("anna").await;
    let b = app.register("ben").await;
    let first = app
        .post("/v1/direct", Some(&a.token), json!({ "user_id": b.id }))
        .await;
    let room = first.assert_status(201)["room_id"].clone();
    // Either side opening again gets the same room, and nothing is appended.
    let before = app.event_count().await;
    let again = app
        .post("/v1/direct", Some(&b.token), json!({ "user_id": a.id }))
        .await;
    assert_eq!(again.assert_status(200)["room_id"], room);
    assert_eq!(app.event_count().await, before);

    let room: uuid::Uuid = room.as_str().unwrap().parse().unwrap();
    app.send(&b, room, "hi anna").await.assert_status(201);
    // Nobody else can join a direct room; it does not exist for them.
    let eve = app.register("eve").await;
    app.join(&eve, room)
        .await
        .assert_error(404, "room_not_found");
    app.post("/v1/direct", Some(&a.token), json!({ "user_id": a.id }))
        .await
        .assert_error(422, "direct_with_self");
    app.post(
        "/v1/direct",
        Some(&a.token),
        json!({ "user_id": uuid::Uuid::new_v4() }),
    )
    .await
    .assert_error(404, "user_not_found");
    app.cleanup().await;
}
