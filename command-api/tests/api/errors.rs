//! Every error path: its documented status, the JSON error shape
//! `{"error":{"code","message"}}`, and nothing appended to the log.

use crate::helpers::{Res, TestApp, TestUser};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

const JSON: Option<&str> = Some("application/json");

/// Asserts `res` is the given error and that the log did not grow.
#[track_caller]
fn rejected(res: &Res, status: u16, code: &str, before: i64, after: i64, what: &str) {
    assert_eq!(
        res.status, status,
        "{what}: unexpected status, body {}",
        res.body
    );
    assert_eq!(
        res.body["error"]["code"], code,
        "{what}: unexpected code, body {}",
        res.body
    );
    assert!(
        res.body["error"]["message"].is_string(),
        "{what}: error without message: {}",
        res.body
    );
    assert_eq!(after, before, "{what}: a rejected request appended events");
}

/// A public room owned by `owner` with one message in it; returns (room, message id).
async fn room_with_message(app: &TestApp, owner: &TestUser) -> (Uuid, Uuid) {
    let room = app.create_room(owner, "public").await;
    let sent = app.send(owner, room, "first").await;
    let msg = sent.assert_status(201)["message_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (room, msg)
}

#[tokio::test]
async fn malformed_json_is_a_400_malformed_json_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.create_room(&alice, "public").await;
    // Each endpoint with a body that would be valid, so that only the syntax is wrong.
    let endpoints = [
        (
            "/v1/auth/register".to_owned(),
            None,
            json!({ "username": "mallory", "password": "correct horse battery" }),
        ),
        (
            "/v1/rooms".to_owned(),
            Some(alice.token.as_str()),
            json!({ "name": "r", "visibility": "public" }),
        ),
        (
            format!("/v1/rooms/{room}/messages"),
            Some(alice.token.as_str()),
            json!({ "client_msg_id": "c-1", "body": "x" }),
        ),
    ];
    for (path, token, valid) in &endpoints {
        let valid = valid.to_string();
        let bodies = [
            "{".to_owned(),
            "not json".to_owned(),
            "{,}".to_owned(),
            "{1: 2}".to_owned(),
            "{\"".to_owned(),
            String::new(),
            format!("{},}}", &valid[..valid.len() - 1]),
            format!("{valid} trailing"),
            valid[..valid.len() - 1].to_owned(),
        ];
        for body in bodies {
            let before = app.event_count().await;
            let res = app
                .raw(Method::POST, path, *token, JSON, body.clone().into_bytes())
                .await;
            rejected(
                &res,
                400,
                "malformed_json",
                before,
                app.event_count().await,
                &format!("{path} {body:?}"),
            );
        }
    }
    assert_eq!(app.row_count("credentials").await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn json_that_is_not_an_object_or_nests_absurdly_deep_is_a_400() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.create_room(&alice, "public").await;
    let path = format!("/v1/rooms/{room}/messages");
    for body in ["[]", "\"hello\"", "null", "42", "true"] {
        let before = app.event_count().await;
        let res = app
            .raw(
                Method::POST,
                &path,
                Some(&alice.token),
                JSON,
                body.as_bytes().to_vec(),
            )
            .await;
        rejected(
            &res,
            400,
            "invalid_body",
            before,
            app.event_count().await,
            body,
        );
    }
    // 50,000 nested arrays: under the body limit, far over serde's recursion limit.
    let deep = "[".repeat(50_000);
    let before = app.event_count().await;
    let res = app
        .raw(
            Method::POST,
            &path,
            Some(&alice.token),
            JSON,
            deep.into_bytes(),
        )
        .await;
    assert_eq!(res.status, 400, "deeply nested: {}", res.body);
    assert!(res.body["error"]["code"].is_string(), "{}", res.body);
    assert!(res.body["error"]["message"].is_string(), "{}", res.body);
    assert_eq!(app.event_count().await, before);
    app.cleanup().await;
}

#[tokio::test]
async fn a_body_without_a_json_content_type_is_a_415() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.create_room(&alice, "public").await;
    let path = format!("/v1/rooms/{room}/messages");
    let body = json!({ "client_msg_id": "c-1", "body": "hi" }).to_string();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let before = app.event_count().await;
        let res = app
            .raw(
                Method::POST,
                &path,
                Some(&alice.token),
                ct,
                body.clone().into_bytes(),
            )
            .await;
        rejected(
            &res,
            415,
            "unsupported_media_type",
            before,
            app.event_count().await,
            &format!("content type {ct:?}"),
        );
        let res = app
            .raw(
                Method::POST,
                "/v1/auth/login",
                None,
                ct,
                json!({ "username": "alice", "password": "correct horse battery" })
                    .to_string()
                    .into_bytes(),
            )
            .await;
        res.assert_error(415, "unsupported_media_type");
    }
    // Control: a JSON content type with a charset parameter is accepted.
    app.raw(
        Method::POST,
        &path,
        Some(&alice.token),
        Some("application/json; charset=utf-8"),
        body.into_bytes(),
    )
    .await
    .assert_status(201);
    app.cleanup().await;
}

#[tokio::test]
async fn an_unknown_field_on_any_command_body_is_a_400_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let (room, msg) = room_with_message(&app, &alice).await;
    app.join(&bob, room).await.assert_status(200);
    let other = Uuid::new_v4();
    let a = Some(alice.token.as_str());
    let cases: Vec<(Method, String, Option<&str>, Value)> = vec![
        (
            Method::POST,
            "/v1/auth/register".into(),
            None,
            json!({ "username": "mallory", "password": "correct horse battery", "user_id": other }),
        ),
        (
            Method::POST,
            "/v1/auth/register".into(),
            None,
            json!({ "username": "mallory", "password": "correct horse battery", "role": "admin" }),
        ),
        (
            Method::POST,
            "/v1/auth/login".into(),
            None,
            json!({ "username": "alice", "password": "correct horse battery", "user_id": bob.id }),
        ),
        (
            Method::POST,
            "/v1/auth/refresh".into(),
            None,
            json!({ "refresh_token": alice.refresh, "user_id": bob.id }),
        ),
        (
            Method::POST,
            "/v1/rooms".into(),
            a,
            json!({ "name": "r", "visibility": "public", "owner_id": bob.id }),
        ),
        (
            Method::POST,
            "/v1/rooms".into(),
            a,
            json!({ "name": "r", "visibility": "public", "role": "owner" }),
        ),
        (
            Method::PATCH,
            format!("/v1/rooms/{room}"),
            a,
            json!({ "name": "renamed", "owner_id": bob.id }),
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/invites"),
            a,
            json!({ "user_id": other, "role": "admin" }),
        ),
        (
            Method::PUT,
            format!("/v1/rooms/{room}/members/{}/role", bob.id),
            a,
            json!({ "role": "admin", "user_id": other }),
        ),
        (
            Method::POST,
            "/v1/direct".into(),
            a,
            json!({ "user_id": bob.id, "owner_id": alice.id }),
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/messages"),
            a,
            json!({ "client_msg_id": "x-1", "body": "spoof", "sender_id": bob.id }),
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/messages"),
            a,
            json!({ "client_msg_id": "x-2", "body": "spoof", "seq": 99 }),
        ),
        (
            Method::PATCH,
            format!("/v1/rooms/{room}/messages/{msg}"),
            a,
            json!({ "body": "edited", "sender_id": bob.id }),
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/read"),
            a,
            json!({ "seq": 1, "user_id": bob.id }),
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/ephemeral"),
            a,
            json!({ "body": "psst", "sender_id": bob.id }),
        ),
    ];
    for (method, path, token, body) in cases {
        let events = app.event_count().await;
        let creds = app.row_count("credentials").await;
        let tokens = app.row_count("refresh_tokens").await;
        let idem = app.row_count("idempotency_keys").await;
        let res = app
            .request(method.clone(), &path, token, Some(body.clone()), &[])
            .await;
        let what = format!("{method} {path} {body}");
        rejected(
            &res,
            400,
            "invalid_body",
            events,
            app.event_count().await,
            &what,
        );
        assert_eq!(app.row_count("credentials").await, creds, "{what}");
        assert_eq!(app.row_count("refresh_tokens").await, tokens, "{what}");
        assert_eq!(app.row_count("idempotency_keys").await, idem, "{what}");
    }
    // The refresh token offered with an unknown field was not spent.
    app.post(
        "/v1/auth/refresh",
        None,
        json!({ "refresh_token": alice.refresh }),
    )
    .await
    .assert_status(200);
    app.cleanup().await;
}

#[tokio::test]
async fn a_missing_or_mistyped_required_field_is_a_400() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let (room, msg) = room_with_message(&app, &alice).await;
    app.join(&bob, room).await.assert_status(200);
    let a = Some(alice.token.as_str());
    let cases: Vec<(Method, String, Option<&str>, Value)> = vec![
        (
            Method::POST,
            "/v1/auth/register".into(),
            None,
            json!({ "username": "mallory" }),
        ),
        (
            Method::POST,
            "/v1/auth/register".into(),
            None,
            json!({ "password": "correct horse battery" }),
        ),
        (
            Method::POST,
            "/v1/auth/login".into(),
            None,
            json!({ "username": "alice" }),
        ),
        (Method::POST, "/v1/auth/refresh".into(), None, json!({})),
        (Method::POST, "/v1/rooms".into(), a, json!({ "name": "r" })),
        (
            Method::POST,
            "/v1/rooms".into(),
            a,
            json!({ "visibility": "public" }),
        ),
        (
            Method::POST,
            "/v1/rooms".into(),
            a,
            json!({ "name": "r", "visibility": "secret" }),
        ),
        (
            Method::POST,
            "/v1/rooms".into(),
            a,
            json!({ "name": 42, "visibility": "public" }),
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/invites"),
            a,
            json!({}),
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/invites"),
            a,
            json!({ "user_id": "not-a-uuid" }),
        ),
        (
            Method::PUT,
            format!("/v1/rooms/{room}/members/{}/role", bob.id),
            a,
            json!({}),
        ),
        (
            Method::PUT,
            format!("/v1/rooms/{room}/members/{}/role", bob.id),
            a,
            json!({ "role": "superuser" }),
        ),
        (Method::POST, "/v1/direct".into(), a, json!({})),
        (
            Method::POST,
            format!("/v1/rooms/{room}/messages"),
            a,
            json!({ "client_msg_id": "m-1" }),
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/messages"),
            a,
            json!({ "client_msg_id": "m-2", "body": 7 }),
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/messages"),
            a,
            json!({ "client_msg_id": "m-3", "body": "x", "reply_to": "nope" }),
        ),
        (
            Method::PATCH,
            format!("/v1/rooms/{room}/messages/{msg}"),
            a,
            json!({}),
        ),
        (Method::POST, format!("/v1/rooms/{room}/read"), a, json!({})),
        (
            Method::POST,
            format!("/v1/rooms/{room}/read"),
            a,
            json!({ "seq": -1 }),
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/read"),
            a,
            json!({ "seq": "1" }),
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/read"),
            a,
            json!({ "seq": 1.5 }),
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/ephemeral"),
            a,
            json!({}),
        ),
    ];
    for (method, path, token, body) in cases {
        let before = app.event_count().await;
        let res = app
            .request(method.clone(), &path, token, Some(body.clone()), &[])
            .await;
        rejected(
            &res,
            400,
            "invalid_body",
            before,
            app.event_count().await,
            &format!("{method} {path} {body}"),
        );
    }
    // 2^64 does not fit a seq: still a 400, not a 5xx.
    let before = app.event_count().await;
    let res = app
        .raw(
            Method::POST,
            &format!("/v1/rooms/{room}/read"),
            a,
            JSON,
            br#"{"seq": 18446744073709551616}"#.to_vec(),
        )
        .await;
    rejected(
        &res,
        400,
        "invalid_body",
        before,
        app.event_count().await,
        "seq 2^64",
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_413_payload_too_large_in_json() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.create_room(&alice, "public").await;
    let big = "a".repeat(64 * 1024 + 1);
    let cases = [
        (
            format!("/v1/rooms/{room}/messages"),
            Some(alice.token.as_str()),
            json!({ "client_msg_id": "big", "body": big }),
        ),
        (
            "/v1/rooms".to_owned(),
            Some(alice.token.as_str()),
            json!({ "name": "r", "visibility": "public", "topic": big }),
        ),
        (
            "/v1/auth/register".to_owned(),
            None,
            json!({ "username": "mallory", "password": big }),
        ),
    ];
    for (path, token, body) in cases {
        let before = app.event_count().await;
        let res = app.post(&path, token, body).await;
        rejected(
            &res,
            413,
            "payload_too_large",
            before,
            app.event_count().await,
            &path,
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_message_body_is_1_to_4000_characters_not_blank_and_without_nul() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.create_room(&alice, "public").await;
    let path = format!("/v1/rooms/{room}/messages");

    // Characters, not bytes, counted as sent (as the OpenAPI document states the limit);
    // surrounding whitespace is trimmed off.
    for (i, ok) in [
        "a".repeat(4000),
        "é".repeat(4000),
        "🦀".repeat(4000),
        format!("  {}\n", "a".repeat(3997)),
    ]
    .into_iter()
    .enumerate()
    {
        let res = app
            .post(
                &path,
                Some(&alice.token),
                json!({ "client_msg_id": format!("ok-{i}"), "body": ok }),
            )
            .await;
        res.assert_status(201);
    }
    let msg = app.send(&alice, room, "short").await.assert_status(201)["message_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let cases = [
        ("a".repeat(4001), "invalid_body"),
        ("é".repeat(4001), "invalid_body"),
        (format!("  {}\n", "a".repeat(3998)), "invalid_body"),
        (String::new(), "invalid_body"),
        ("   \n\t  ".to_owned(), "invalid_body"),
        ("\u{3000}\u{2003}".to_owned(), "invalid_body"),
        ("a\0b".to_owned(), "invalid_text"),
        ("\0".to_owned(), "invalid_text"),
    ];
    for (i, (body, code)) in cases.iter().enumerate() {
        let what = format!("body of {} chars", body.chars().count());
        let before = app.event_count().await;
        let res = app
            .post(
                &path,
                Some(&alice.token),
                json!({ "client_msg_id": format!("bad-{i}"), "body": body }),
            )
            .await;
        rejected(&res, 400, code, before, app.event_count().await, &what);
        let res = app
            .request(
                Method::PATCH,
                &format!("{path}/{msg}"),
                Some(&alice.token),
                Some(json!({ "body": body })),
                &[],
            )
            .await;
        rejected(
            &res,
            400,
            code,
            before,
            app.event_count().await,
            &format!("edit: {what}"),
        );
        let res = app
            .post(
                &format!("/v1/rooms/{room}/ephemeral"),
                Some(&alice.token),
                json!({ "body": body }),
            )
            .await;
        rejected(
            &res,
            400,
            code,
            before,
            app.event_count().await,
            &format!("ephemeral: {what}"),
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn usernames_passwords_and_display_names_are_checked_against_their_limits() {
    let app = TestApp::spawn().await;
    let pw = "correct horse battery";
    let cases = [
        (
            json!({ "username": "ab", "password": pw }),
            "invalid_username",
        ),
        (
            json!({ "username": "a".repeat(33), "password": pw }),
            "invalid_username",
        ),
        (
            json!({ "username": "Alice", "password": pw }),
            "invalid_username",
        ),
        (
            json!({ "username": "al ice", "password": pw }),
            "invalid_username",
        ),
        (
            json!({ "username": "alice\u{0}", "password": pw }),
            "invalid_username",
        ),
        (
            json!({ "username": "ålice", "password": pw }),
            "invalid_username",
        ),
        (
            json!({ "username": "alice", "password": "123456789" }),
            "invalid_password",
        ),
        (
            json!({ "username": "alice", "password": "p".repeat(1025) }),
            "invalid_password",
        ),
        (
            json!({ "username": "alice", "password": pw, "display_name": "d".repeat(65) }),
            "invalid_display_name",
        ),
        (
            json!({ "username": "alice", "password": pw, "display_name": "a\u{0}b" }),
            "invalid_text",
        ),
    ];
    for (body, code) in cases {
        let before = app.event_count().await;
        let creds = app.row_count("credentials").await;
        let res = app.post("/v1/auth/register", None, body.clone()).await;
        rejected(
            &res,
            400,
            code,
            before,
            app.event_count().await,
            &body.to_string(),
        );
        assert_eq!(app.row_count("credentials").await, creds, "{body}");
    }
    // The boundaries themselves are accepted.
    for body in [
        json!({ "username": "abc", "password": "0123456789" }),
        json!({ "username": "a".repeat(32), "password": "p".repeat(1024) }),
        json!({ "username": "a.b_c-9", "password": pw, "display_name": "d".repeat(64) }),
    ] {
        app.post("/v1/auth/register", None, body)
            .await
            .assert_status(201);
    }
    app.cleanup().await;
}

#[tokio::test]
async fn room_names_and_topics_are_checked_against_their_limits() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.create_room(&alice, "public").await;
    let t = Some(alice.token.as_str());
    let cases = [
        (json!({ "name": "" }), "invalid_room_name"),
        (json!({ "name": "   " }), "invalid_room_name"),
        (json!({ "name": "n".repeat(81) }), "invalid_room_name"),
        (json!({ "name": "a\u{0}b" }), "invalid_text"),
        (
            json!({ "name": "ok", "topic": "t".repeat(1025) }),
            "invalid_topic",
        ),
        (json!({ "name": "ok", "topic": "a\u{0}b" }), "invalid_text"),
    ];
    for (fields, code) in cases {
        let mut create = fields.clone();
        create["visibility"] = json!("public");
        let before = app.event_count().await;
        let res = app.post("/v1/rooms", t, create.clone()).await;
        rejected(
            &res,
            400,
            code,
            before,
            app.event_count().await,
            &create.to_string(),
        );
        let res = app
            .request(
                Method::PATCH,
                &format!("/v1/rooms/{room}"),
                t,
                Some(fields.clone()),
                &[],
            )
            .await;
        rejected(
            &res,
            400,
            code,
            before,
            app.event_count().await,
            &format!("PATCH {fields}"),
        );
    }
    // The boundaries are accepted.
    app.post(
        "/v1/rooms",
        t,
        json!({ "name": "n".repeat(80), "topic": "t".repeat(1024), "visibility": "private" }),
    )
    .await
    .assert_status(201);
    app.request(
        Method::PATCH,
        &format!("/v1/rooms/{room}"),
        t,
        Some(json!({ "name": "n", "topic": "" })),
        &[],
    )
    .await
    .assert_status(200);
    app.cleanup().await;
}

#[tokio::test]
async fn a_reaction_emoji_is_1_to_32_bytes_without_whitespace_or_slash() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let (room, msg) = room_with_message(&app, &alice).await;
    let base = format!("/v1/rooms/{room}/messages/{msg}/reactions");
    // 33 ASCII characters; 33 thumbs-up; a space; a slash; a tab; a no-break space.
    let thumbs33 = "%F0%9F%91%8D".repeat(33);
    let a33 = "a".repeat(33);
    for emoji in [
        a33.as_str(),
        thumbs33.as_str(),
        "a%20b",
        "a%2Fb",
        "%09",
        "%C2%A0",
    ] {
        for method in [Method::PUT, Method::DELETE] {
            let before = app.event_count().await;
            let res = app
                .request(
                    method.clone(),
                    &format!("{base}/{emoji}"),
                    Some(&alice.token),
                    None,
                    &[],
                )
                .await;
            rejected(
                &res,
                400,
                "invalid_emoji",
                before,
                app.event_count().await,
                &format!("{method} {emoji}"),
            );
        }
    }
    // 32 characters exactly is fine, in ASCII and in emoji (128 bytes).
    let thumbs32 = "%F0%9F%91%8D".repeat(32);
    for emoji in ["a".repeat(32), thumbs32] {
        app.request(
            Method::PUT,
            &format!("{base}/{emoji}"),
            Some(&alice.token),
            None,
            &[],
        )
        .await
        .assert_status(200);
    }
    app.cleanup().await;
}

#[tokio::test]
async fn an_invalid_uuid_in_the_path_is_a_400_invalid_path() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let (room, msg) = room_with_message(&app, &alice).await;
    let t = Some(alice.token.as_str());
    let body = Some(json!({ "client_msg_id": "p-1", "body": "x" }));
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/v1/rooms/not-a-uuid/messages".into(), body),
        (Method::POST, "/v1/rooms/1234/join".into(), None),
        (Method::POST, "/v1/rooms/1234/leave".into(), None),
        (
            Method::PATCH,
            "/v1/rooms/xyz".into(),
            Some(json!({ "name": "n" })),
        ),
        (
            Method::PATCH,
            format!("/v1/rooms/{room}/messages/not-a-uuid"),
            Some(json!({ "body": "x" })),
        ),
        (
            Method::DELETE,
            format!("/v1/rooms/{room}/messages/{msg}x"),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/rooms/{room}/members/not-a-user"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/rooms/{room}/members/nobody/role"),
            Some(json!({ "role": "admin" })),
        ),
        (
            Method::PUT,
            format!("/v1/rooms/{room}/messages/zzz/reactions/a"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/rooms/{room}/messages/{msg}/reactions/%FF"),
            None,
        ),
        (Method::POST, "/v1/rooms/%00/typing".into(), None),
    ];
    for (method, path, body) in cases {
        let before = app.event_count().await;
        let res = app.request(method.clone(), &path, t, body, &[]).await;
        rejected(
            &res,
            400,
            "invalid_path",
            before,
            app.event_count().await,
            &format!("{method} {path}"),
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn an_unknown_route_is_a_404_and_a_wrong_method_a_405_both_in_json() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.create_room(&alice, "public").await;
    let t = Some(alice.token.as_str());
    for (method, path) in [
        (Method::GET, "/nope".to_owned()),
        (Method::POST, "/v1/roomz".to_owned()),
        (Method::POST, format!("/v1/rooms/{room}/nope")),
        (Method::GET, "/v2/rooms".to_owned()),
        (Method::POST, "/".to_owned()),
    ] {
        let res = app.request(method.clone(), &path, t, None, &[]).await;
        res.assert_error(404, "not_found");
    }
    for (method, path) in [
        (Method::GET, "/v1/rooms".to_owned()),
        (Method::DELETE, "/v1/auth/register".to_owned()),
        (Method::GET, "/v1/auth/login".to_owned()),
        (Method::PUT, format!("/v1/rooms/{room}/join")),
        (Method::GET, format!("/v1/rooms/{room}/messages")),
        (Method::POST, "/healthz".to_owned()),
    ] {
        let before = app.event_count().await;
        let res = app.request(method.clone(), &path, t, None, &[]).await;
        rejected(
            &res,
            405,
            "method_not_allowed",
            before,
            app.event_count().await,
            &format!("{method} {path}"),
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn every_command_without_a_bearer_token_is_a_401() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let (room, msg) = room_with_message(&app, &alice).await;
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/v1/rooms".into(),
            Some(json!({ "name": "r", "visibility": "public" })),
        ),
        (
            Method::PATCH,
            format!("/v1/rooms/{room}"),
            Some(json!({ "name": "n" })),
        ),
        (Method::POST, format!("/v1/rooms/{room}/join"), None),
        (Method::POST, format!("/v1/rooms/{room}/leave"), None),
        (
            Method::POST,
            format!("/v1/rooms/{room}/invites"),
            Some(json!({ "user_id": bob.id })),
        ),
        (
            Method::DELETE,
            format!("/v1/rooms/{room}/members/{}", alice.id),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/rooms/{room}/members/{}/role", alice.id),
            Some(json!({ "role": "admin" })),
        ),
        (
            Method::POST,
            "/v1/direct".into(),
            Some(json!({ "user_id": bob.id })),
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/messages"),
            Some(json!({ "client_msg_id": "n-1", "body": "x" })),
        ),
        (
            Method::PATCH,
            format!("/v1/rooms/{room}/messages/{msg}"),
            Some(json!({ "body": "x" })),
        ),
        (
            Method::DELETE,
            format!("/v1/rooms/{room}/messages/{msg}"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/rooms/{room}/messages/{msg}/reactions/a"),
            None,
        ),
        (
            Method::DELETE,
            format!("/v1/rooms/{room}/messages/{msg}/reactions/a"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/read"),
            Some(json!({ "seq": 1 })),
        ),
        (Method::POST, format!("/v1/rooms/{room}/typing"), None),
        (
            Method::POST,
            format!("/v1/rooms/{room}/ephemeral"),
            Some(json!({ "body": "x" })),
        ),
    ];
    for (method, path, body) in cases {
        let before = app.event_count().await;
        let res = app.request(method.clone(), &path, None, body, &[]).await;
        rejected(
            &res,
            401,
            "unauthorized",
            before,
            app.event_count().await,
            &format!("{method} {path}"),
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn registering_a_taken_username_is_a_409_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    let before = app.event_count().await;
    let creds = app.row_count("credentials").await;
    let tokens = app.row_count("refresh_tokens").await;
    let res = app
        .post(
            "/v1/auth/register",
            None,
            json!({ "username": "alice", "password": "another password entirely" }),
        )
        .await;
    rejected(
        &res,
        409,
        "username_taken",
        before,
        app.event_count().await,
        "taken",
    );
    assert_eq!(app.row_count("credentials").await, creds);
    assert_eq!(app.row_count("refresh_tokens").await, tokens);
    // The original password still works.
    app.post(
        "/v1/auth/login",
        None,
        json!({ "username": "alice", "password": "correct horse battery" }),
    )
    .await
    .assert_status(200);
    app.cleanup().await;
}

#[tokio::test]
async fn an_unknown_user_and_a_wrong_password_get_the_very_same_401() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let tokens = app.row_count("refresh_tokens").await;
    let unknown = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "username": "nobody", "password": "correct horse battery" }),
        )
        .await;
    let wrong = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "username": alice.username, "password": "wrong horse battery" }),
        )
        .await;
    unknown.assert_error(401, "invalid_credentials");
    wrong.assert_error(401, "invalid_credentials");
    assert_eq!(unknown.body, wrong.body);
    assert_eq!(app.row_count("refresh_tokens").await, tokens);
    app.cleanup().await;
}

#[tokio::test]
async fn odd_login_input_is_a_4xx_never_a_5xx() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    for body in [
        json!({ "username": "", "password": "" }),
        json!({ "username": "a".repeat(10_000), "password": "x" }),
        json!({ "username": "alice", "password": "correct horse\u{0}battery" }),
        json!({ "username": "ali\u{0}ce", "password": "correct horse battery" }),
    ] {
        let res = app.post("/v1/auth/login", None, body.clone()).await;
        assert!(
            (400..500).contains(&res.status),
            "login {body}: status {} body {}",
            res.status,
            res.body
        );
        assert!(
            res.body["error"]["code"].is_string(),
            "login {body}: {}",
            res.body
        );
    }
    for token in ["", "\u{0}", "garbage"] {
        app.post("/v1/auth/refresh", None, json!({ "refresh_token": token }))
            .await
            .assert_error(401, "invalid_refresh_token");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn domain_rejections_have_their_documented_status_and_append_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let (room, msg) = room_with_message(&app, &alice).await;
    let (_, other_msg) = room_with_message(&app, &alice).await;
    let t = Some(alice.token.as_str());
    let msgs = format!("/v1/rooms/{room}/messages");

    // 20 distinct reactions are fine; the 21st is not.
    for i in 1..=20 {
        app.request(
            Method::PUT,
            &format!("{msgs}/{msg}/reactions/e{i}"),
            t,
            None,
            &[],
        )
        .await
        .assert_status(200);
    }
    let doomed = app
        .send(&alice, room, "to be deleted")
        .await
        .assert_status(201)["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.request(Method::DELETE, &format!("{msgs}/{doomed}"), t, None, &[])
        .await
        .assert_status(200);
    let unknown = Uuid::new_v4();

    let cases: Vec<(Method, String, Option<Value>, u16, &str)> = vec![
        (
            Method::POST,
            format!("/v1/rooms/{room}/read"),
            Some(json!({ "seq": 3 })),
            422,
            "seq_out_of_range",
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/read"),
            Some(json!({ "seq": u64::MAX })),
            422,
            "seq_out_of_range",
        ),
        (
            Method::POST,
            msgs.clone(),
            Some(json!({ "client_msg_id": "r-1", "body": "re", "reply_to": unknown })),
            422,
            "reply_target_not_found",
        ),
        (
            Method::POST,
            msgs.clone(),
            Some(json!({ "client_msg_id": "r-2", "body": "re", "reply_to": other_msg })),
            422,
            "reply_target_not_found",
        ),
        (
            Method::PUT,
            format!("{msgs}/{msg}/reactions/e21"),
            None,
            422,
            "too_many_reactions",
        ),
        (
            Method::PATCH,
            format!("{msgs}/{doomed}"),
            Some(json!({ "body": "resurrected" })),
            409,
            "message_deleted",
        ),
        (
            Method::DELETE,
            format!("{msgs}/{doomed}"),
            None,
            409,
            "message_deleted",
        ),
        (
            Method::PUT,
            format!("{msgs}/{doomed}/reactions/a"),
            None,
            409,
            "message_deleted",
        ),
        (
            Method::PATCH,
            format!("{msgs}/{unknown}"),
            Some(json!({ "body": "x" })),
            404,
            "message_not_found",
        ),
        (
            Method::DELETE,
            format!("{msgs}/{unknown}"),
            None,
            404,
            "message_not_found",
        ),
        (
            Method::PUT,
            format!("{msgs}/{unknown}/reactions/a"),
            None,
            404,
            "message_not_found",
        ),
        // A message of another room is unknown in this one.
        (
            Method::PATCH,
            format!("{msgs}/{other_msg}"),
            Some(json!({ "body": "x" })),
            404,
            "message_not_found",
        ),
        (
            Method::POST,
            format!("/v1/rooms/{room}/leave"),
            None,
            409,
            "owner_cannot_leave",
        ),
        (
            Method::PATCH,
            format!("/v1/rooms/{room}"),
            Some(json!({})),
            400,
            "invalid_body",
        ),
        (
            Method::PATCH,
            format!("/v1/rooms/{room}"),
            Some(json!({ "name": null, "topic": null, "visibility": null })),
            400,
            "invalid_body",
        ),
        (
            Method::POST,
            format!("/v1/rooms/{}/messages", Uuid::new_v4()),
            Some(json!({ "client_msg_id": "r-3", "body": "anyone?" })),
            404,
            "room_not_found",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let before = app.event_count().await;
        let res = app.request(method.clone(), &path, t, body, &[]).await;
        rejected(
            &res,
            status,
            code,
            before,
            app.event_count().await,
            &format!("{method} {path}"),
        );
    }
    // The rejections left the room as it was: one more message could still be read to.
    app.post(&format!("/v1/rooms/{room}/read"), t, json!({ "seq": 2 }))
        .await
        .assert_status(200);
    app.cleanup().await;
}

#[tokio::test]
async fn an_invalid_idempotency_key_or_client_msg_id_is_a_400() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.create_room(&alice, "public").await;
    let t = Some(alice.token.as_str());
    let long = "k".repeat(129);
    for key in [long.as_str(), "ключ", "two words", "", "tab\there"] {
        let before = app.event_count().await;
        let res = app
            .request(
                Method::POST,
                "/v1/rooms",
                t,
                Some(json!({ "name": "r", "visibility": "public" })),
                &[("idempotency-key", key)],
            )
            .await;
        rejected(
            &res,
            400,
            "invalid_idempotency_key",
            before,
            app.event_count().await,
            &format!("Idempotency-Key {key:?}"),
        );
        let res = app
            .request(
                Method::POST,
                &format!("/v1/rooms/{room}/messages"),
                t,
                Some(json!({ "body": "x" })),
                &[("idempotency-key", key)],
            )
            .await;
        rejected(
            &res,
            400,
            "invalid_idempotency_key",
            before,
            app.event_count().await,
            &format!("Idempotency-Key {key:?} on send"),
        );
        let res = app
            .post(
                &format!("/v1/rooms/{room}/messages"),
                t,
                json!({ "client_msg_id": key, "body": "x" }),
            )
            .await;
        rejected(
            &res,
            400,
            "invalid_client_msg_id",
            before,
            app.event_count().await,
            &format!("client_msg_id {key:?}"),
        );
    }
    // 128 visible ASCII characters is the longest accepted key.
    let max = "k".repeat(128);
    app.request(
        Method::POST,
        "/v1/rooms",
        t,
        Some(json!({ "name": "r", "visibility": "public" })),
        &[("idempotency-key", &max)],
    )
    .await
    .assert_status(201);
    app.post(
        &format!("/v1/rooms/{room}/messages"),
        t,
        json!({ "client_msg_id": max, "body": "x" }),
    )
    .await
    .assert_status(201);
    app.cleanup().await;
}

#[tokio::test]
async fn a_request_that_outlives_the_timeout_gets_a_503_in_the_json_shape() {
    // Registration hashes a password (Argon2id, tens of milliseconds): it cannot
    // finish within one millisecond.
    let app = TestApp::spawn_with(|s| s.limits.request_timeout_ms = 1).await;
    assert_eq!(app.settings.limits.request_timeout_ms, 1);
    let res = app
        .post(
            "/v1/auth/register",
            None,
            json!({ "username": "slowpoke", "password": "correct horse battery" }),
        )
        .await;
    res.assert_error(503, "unavailable");
    assert_eq!(
        res.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1"),
        "every 503 says when to try again"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_body_that_stops_short_is_a_408_in_the_json_shape_not_a_503() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(|s| s.limits.body_timeout_ms = 300).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // 100 bytes promised, 10 sent, then nothing (the connection stays open).
    tcp.write_all(
        format!(
            "POST /v1/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"username"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the whole JSON body is in (bounded by the test's deadline).
    let read = tokio::time::timeout(test_support::DEADLINE, async {
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || answer.ends_with(b"}}") {
                break;
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no answer: {}",
        String::from_utf8_lossy(&answer)
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
    // The body timeout, not the 10 s request timeout, answered.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    app.cleanup().await;
}
