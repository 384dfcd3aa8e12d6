//! Retried commands: a `client_msg_id` or `Idempotency-Key` makes a command
//! happen once, however many times and however concurrently it is sent, and a
//! key reused for a different request is refused.

use crate::helpers::{Res, TestApp};
use futures::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

fn room_stream(room: Uuid) -> String {
    format!("room-{room}")
}

#[track_caller]
fn all_identical(responses: &[Res], status: u16) -> Value {
    let first = &responses[0];
    for (i, r) in responses.iter().enumerate() {
        assert_eq!(r.status, status, "response {i}: {}", r.body);
        assert_eq!(r.body, first.body, "response {i} differs from response 0");
    }
    first.body.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_client_msg_id_sent_five_times_at_once_is_one_message_and_five_identical_answers()
{
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.create_room(&alice, "public").await;
    let path = format!("/v1/rooms/{room}/messages");
    let body = json!({ "client_msg_id": "once", "body": "hello, exactly once" });
    let before = app.event_count().await;

    let responses =
        join_all((0..5).map(|_| app.post(&path, Some(&alice.token), body.clone()))).await;
    let answer = all_identical(&responses, 201);
    assert!(answer["message_id"].is_string(), "{answer}");
    assert_eq!(answer["seq"], 1);
    assert!(answer["position"].as_i64().unwrap() > 0, "{answer}");
    assert_eq!(app.count_of(&room_stream(room), "MessageSent").await, 1);
    assert_eq!(app.event_count().await, before + 1);

    // A later retry gets the very same answer, even after the room moved on.
    app.send(&alice, room, "something else")
        .await
        .assert_status(201);
    let late = app.post(&path, Some(&alice.token), body).await;
    assert_eq!(late.assert_status(201), &answer);
    assert_eq!(app.count_of(&room_stream(room), "MessageSent").await, 2);
    app.cleanup().await;
}

#[tokio::test]
async fn a_client_msg_id_reused_with_a_different_body_is_a_422_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.create_room(&alice, "public").await;
    let path = format!("/v1/rooms/{room}/messages");
    let original = app
        .post(
            &path,
            Some(&alice.token),
            json!({ "client_msg_id": "k", "body": "original" }),
        )
        .await;
    let original = original.assert_status(201).clone();
    let before = app.event_count().await;
    for body in [
        json!({ "client_msg_id": "k", "body": "different" }),
        json!({ "client_msg_id": "k", "body": "original",
                "reply_to": original["message_id"] }),
    ] {
        app.post(&path, Some(&alice.token), body)
            .await
            .assert_error(422, "idempotency_key_reused");
    }
    assert_eq!(app.event_count().await, before);
    // The original request still replays to the original answer.
    let again = app
        .post(
            &path,
            Some(&alice.token),
            json!({ "client_msg_id": "k", "body": "original" }),
        )
        .await;
    assert_eq!(again.assert_status(201), &original);
    assert_eq!(app.event_count().await, before);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_idempotency_key_on_five_concurrent_room_creations_creates_one_room() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let body = json!({ "name": "once", "visibility": "public" });
    let before = app.event_count().await;
    let headers = [("idempotency-key", "create-once")];

    let responses = join_all((0..5).map(|_| {
        app.request(
            Method::POST,
            "/v1/rooms",
            Some(&alice.token),
            Some(body.clone()),
            &headers,
        )
    }))
    .await;
    let answer = all_identical(&responses, 201);
    assert!(answer["room_id"].is_string(), "{answer}");
    assert!(answer["position"].as_i64().unwrap() > 0, "{answer}");
    let (created,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM events WHERE event_type = 'RoomCreated'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(created, 1);
    // RoomCreated and the owner's MemberJoined, nothing more.
    assert_eq!(app.event_count().await, before + 2);

    // A later retry is identical too.
    let late = app
        .request(
            Method::POST,
            "/v1/rooms",
            Some(&alice.token),
            Some(body),
            &headers,
        )
        .await;
    assert_eq!(late.assert_status(201), &answer);
    // The same key for another room is refused.
    app.request(
        Method::POST,
        "/v1/rooms",
        Some(&alice.token),
        Some(json!({ "name": "another", "visibility": "public" })),
        &headers,
    )
    .await
    .assert_error(422, "idempotency_key_reused");
    assert_eq!(app.event_count().await, before + 2);
    app.cleanup().await;
}

#[tokio::test]
async fn an_idempotency_key_reused_on_another_command_in_the_same_room_is_a_422() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.create_room(&alice, "public").await;
    let headers = [("idempotency-key", "shared")];
    let sent = app
        .request(
            Method::POST,
            &format!("/v1/rooms/{room}/messages"),
            Some(&alice.token),
            Some(json!({ "body": "hi" })),
            &headers,
        )
        .await;
    let msg = sent.assert_status(201)["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = app.event_count().await;
    app.request(
        Method::PATCH,
        &format!("/v1/rooms/{room}/messages/{msg}"),
        Some(&alice.token),
        Some(json!({ "body": "edited" })),
        &headers,
    )
    .await
    .assert_error(422, "idempotency_key_reused");
    app.request(
        Method::PATCH,
        &format!("/v1/rooms/{room}"),
        Some(&alice.token),
        Some(json!({ "name": "renamed" })),
        &headers,
    )
    .await
    .assert_error(422, "idempotency_key_reused");
    app.request(
        Method::DELETE,
        &format!("/v1/rooms/{room}/messages/{msg}"),
        Some(&alice.token),
        None,
        &headers,
    )
    .await
    .assert_error(422, "idempotency_key_reused");
    assert_eq!(app.event_count().await, before);
    app.cleanup().await;
}

#[tokio::test]
async fn an_idempotency_key_header_deduplicates_a_message_without_client_msg_id() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.create_room(&alice, "public").await;
    let path = format!("/v1/rooms/{room}/messages");
    let send = || {
        app.request(
            Method::POST,
            &path,
            Some(&alice.token),
            Some(json!({ "body": "via header" })),
            &[("idempotency-key", "hdr-1")],
        )
    };
    let first = send().await;
    let first = first.assert_status(201).clone();
    let second = send().await;
    assert_eq!(second.assert_status(201), &first);
    assert_eq!(app.count_of(&room_stream(room), "MessageSent").await, 1);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_msg_ids_are_per_user_so_two_users_with_the_same_id_each_get_their_message() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice, "public").await;
    app.join(&bob, room).await.assert_status(200);
    let path = format!("/v1/rooms/{room}/messages");
    let body = json!({ "client_msg_id": "same", "body": "same words" });
    let (a, b) = tokio::join!(
        app.post(&path, Some(&alice.token), body.clone()),
        app.post(&path, Some(&bob.token), body.clone()),
    );
    let (a, b) = (a.assert_status(201), b.assert_status(201));
    assert_ne!(a["message_id"], b["message_id"]);
    assert_ne!(a["seq"], b["seq"]);
    assert_eq!(app.count_of(&room_stream(room), "MessageSent").await, 2);
    let senders: Vec<String> = sqlx::query_as::<_, (String,)>(
        "SELECT data->>'sender_id' FROM events WHERE stream_id = $1 AND event_type = 'MessageSent' ORDER BY data->>'sender_id'",
    )
    .bind(room_stream(room))
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(s,)| s)
    .collect();
    let mut expected = vec![alice.id.to_string(), bob.id.to_string()];
    expected.sort();
    assert_eq!(senders, expected);

    // The same holds for Idempotency-Key headers.
    let create = |token: String| {
        let app = &app;
        async move {
            app.request(
                Method::POST,
                "/v1/rooms",
                Some(&token),
                Some(json!({ "name": "r", "visibility": "public" })),
                &[("idempotency-key", "mine")],
            )
            .await
        }
    };
    let (ra, rb) = tokio::join!(create(alice.token.clone()), create(bob.token.clone()));
    assert_ne!(
        ra.assert_status(201)["room_id"],
        rb.assert_status(201)["room_id"]
    );
    app.cleanup().await;
}

#[tokio::test]
async fn the_same_client_msg_id_in_two_rooms_is_two_messages() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let one = app.create_room(&alice, "public").await;
    let two = app.create_room(&alice, "public").await;
    let body = json!({ "client_msg_id": "everywhere", "body": "hello" });
    let a = app
        .post(
            &format!("/v1/rooms/{one}/messages"),
            Some(&alice.token),
            body.clone(),
        )
        .await;
    let b = app
        .post(
            &format!("/v1/rooms/{two}/messages"),
            Some(&alice.token),
            body,
        )
        .await;
    assert_ne!(
        a.assert_status(201)["message_id"],
        b.assert_status(201)["message_id"]
    );
    assert_eq!(app.count_of(&room_stream(one), "MessageSent").await, 1);
    assert_eq!(app.count_of(&room_stream(two), "MessageSent").await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn a_rejected_command_does_not_use_up_its_client_msg_id() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice, "public").await;
    let path = format!("/v1/rooms/{room}/messages");
    let body = json!({ "client_msg_id": "early", "body": "let me in" });
    app.post(&path, Some(&bob.token), body.clone())
        .await
        .assert_error(403, "not_a_member");
    app.join(&bob, room).await.assert_status(200);
    app.post(&path, Some(&bob.token), body)
        .await
        .assert_status(201);
    assert_eq!(app.count_of(&room_stream(room), "MessageSent").await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn a_client_msg_id_retried_after_its_message_was_deleted_returns_the_original_answer() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.create_room(&alice, "public").await;
    let path = format!("/v1/rooms/{room}/messages");
    let body = json!({ "client_msg_id": "gone", "body": "soon deleted" });
    let original = app.post(&path, Some(&alice.token), body.clone()).await;
    let original = original.assert_status(201).clone();
    let message = original["message_id"].as_str().unwrap().to_owned();
    app.request(
        Method::DELETE,
        &format!("{path}/{message}"),
        Some(&alice.token),
        None,
        &[],
    )
    .await
    .assert_status(200);
    let before = app.event_count().await;
    // The record of the key is the `MessageSent` in the log, which a tombstone does not erase.
    let again = app.post(&path, Some(&alice.token), body).await;
    assert_eq!(again.assert_status(201), &original);
    assert_eq!(app.event_count().await, before);
    assert_eq!(app.count_of(&room_stream(room), "MessageSent").await, 1);
    app.cleanup().await;
}
