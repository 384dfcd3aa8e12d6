//! The access-token battery over HTTP: every forged, expired or malformed
//! credential is a 401 in the JSON error shape and appends nothing; refresh
//! tokens rotate, and a reused one revokes its whole family.

use crate::helpers::{Res, TestApp};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use command_api::auth::forge;
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

/// POST /v1/rooms and POST /v1/rooms/{room}/messages with a raw `Authorization` header.
async fn both_commands(app: &TestApp, room: Uuid, authorization: Option<&str>) -> [Res; 2] {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    let create = app
        .request(
            Method::POST,
            "/v1/rooms",
            None,
            Some(json!({ "name": "forged", "visibility": "public" })),
            &headers,
        )
        .await;
    let send = app
        .request(
            Method::POST,
            &format!("/v1/rooms/{room}/messages"),
            None,
            Some(json!({ "client_msg_id": Uuid::new_v4().to_string(), "body": "forged" })),
            &headers,
        )
        .await;
    [create, send]
}

#[tokio::test]
async fn every_forged_or_malformed_access_token_is_a_401_and_appends_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice, "public").await;
    let keys = &app.state.jwt;
    let a = alice.id;

    // A valid token with its last signature character changed.
    let mut tampered = alice.token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    // A valid header and signature around a payload that names another user.
    let payload = URL_SAFE_NO_PAD.encode(
        json!({ "sub": bob.id, "exp": 4_102_444_800_i64, "iat": 0, "iss": "chat",
                "aud": "chat-api", "jti": Uuid::new_v4() })
        .to_string(),
    );
    let mut parts = alice.token.split('.');
    let (h, _, s) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let hand_swapped = format!("{h}.{payload}.{s}");
    let basic = format!("Basic {}", STANDARD.encode("alice:correct horse battery"));

    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "alg none",
            format!("Bearer {}", forge::alg_none(a)),
            &["invalid_token"],
        ),
        (
            "another key",
            format!("Bearer {}", forge::other_key(a)),
            &["invalid_token"],
        ),
        (
            "expired",
            format!("Bearer {}", forge::expired(keys, a)),
            &["token_expired"],
        ),
        (
            "wrong aud",
            format!("Bearer {}", forge::wrong_aud(keys, a)),
            &["invalid_token"],
        ),
        (
            "wrong iss",
            format!("Bearer {}", forge::wrong_iss(keys, a)),
            &["invalid_token"],
        ),
        (
            "missing exp",
            format!("Bearer {}", forge::missing_exp(keys, a)),
            &["invalid_token"],
        ),
        (
            "payload swapped under an old signature",
            format!("Bearer {}", forge::swapped_payload(keys, bob.id, a)),
            &["invalid_token"],
        ),
        (
            "payload edited by hand",
            format!("Bearer {hand_swapped}"),
            &["invalid_token"],
        ),
        (
            "signature tampered",
            format!("Bearer {tampered}"),
            &["invalid_token"],
        ),
        (
            "HS384 with the same secret",
            format!("Bearer {}", forge::hs384(keys, a)),
            &["invalid_token"],
        ),
        (
            "HS512 with the same secret",
            format!("Bearer {}", forge::hs512(keys, a)),
            &["invalid_token"],
        ),
        ("garbage", "Bearer garbage".into(), &["invalid_token"]),
        ("three dots", "Bearer a.b.c".into(), &["invalid_token"]),
        (
            "empty json parts",
            "Bearer e30.e30.".into(),
            &["invalid_token"],
        ),
        (
            "empty bearer",
            "Bearer ".into(),
            &["unauthorized", "invalid_token"],
        ),
        ("bare scheme", "Bearer".into(), &["unauthorized"]),
        ("Basic scheme", basic, &["unauthorized"]),
        (
            "a valid token without a scheme",
            alice.token.clone(),
            &["unauthorized"],
        ),
        (
            "a valid token under another scheme",
            format!("Token {}", alice.token),
            &["unauthorized"],
        ),
    ];
    for (name, authorization, codes) in &cases {
        let before = app.event_count().await;
        for res in both_commands(&app, room, Some(authorization)).await {
            assert_eq!(res.status, 401, "{name}: body {}", res.body);
            let code = res.body["error"]["code"].as_str().unwrap_or_default();
            assert!(
                codes.contains(&code),
                "{name}: code {code:?} not in {codes:?}, body {}",
                res.body
            );
            assert!(
                res.body["error"]["message"].is_string(),
                "{name}: {}",
                res.body
            );
        }
        assert_eq!(app.event_count().await, before, "{name}: appended events");
    }
    // No header at all.
    let before = app.event_count().await;
    for res in both_commands(&app, room, None).await {
        res.assert_error(401, "unauthorized");
    }
    assert_eq!(app.event_count().await, before);

    // Control: the real token works on both, also in lower-case scheme.
    let [create, send] = both_commands(&app, room, Some(&format!("Bearer {}", alice.token))).await;
    create.assert_status(201);
    send.assert_status(201);
    let [create, send] = both_commands(&app, room, Some(&format!("bearer {}", alice.token))).await;
    create.assert_status(201);
    send.assert_status(201);
    app.cleanup().await;
}

#[tokio::test]
async fn a_reused_refresh_token_is_a_401_and_revokes_its_whole_family() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.post("/v1/auth/refresh", None, json!({ "refresh_token": token }))
                .await
        }
    };

    // First rotation: R0 -> R1.
    let first = refresh(alice.refresh.clone()).await;
    let r1 = first.assert_status(200)["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Meanwhile alice logs in on another device: a separate family.
    let other_device = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "username": "alice", "password": "correct horse battery" }),
        )
        .await;
    let d1 = other_device.assert_status(200)["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // R0 presented again: a thief (or the victim) replays it.
    refresh(alice.refresh.clone())
        .await
        .assert_error(401, "invalid_refresh_token");
    // The whole family is revoked: R1, issued by the first rotation, no longer refreshes.
    refresh(r1.clone())
        .await
        .assert_error(401, "invalid_refresh_token");
    // Nor again.
    refresh(r1).await.assert_error(401, "invalid_refresh_token");
    // The other device's family is untouched.
    let d2 = refresh(d1).await;
    d2.assert_status(200);
    // An access token is not a refresh token.
    refresh(alice.token.clone())
        .await
        .assert_error(401, "invalid_refresh_token");
    app.cleanup().await;
}

#[tokio::test]
async fn a_refresh_token_reused_after_two_rotations_revokes_the_newest_one_too() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let mut current = alice.refresh.clone();
    let mut spent = Vec::new();
    for _ in 0..2 {
        let res = app
            .post(
                "/v1/auth/refresh",
                None,
                json!({ "refresh_token": current }),
            )
            .await;
        let next = res.assert_status(200)["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        // The new access token works.
        let access = res.body["access_token"].as_str().unwrap().to_owned();
        app.post(
            "/v1/rooms",
            Some(&access),
            json!({ "name": "r", "visibility": "public" }),
        )
        .await
        .assert_status(201);
        spent.push(std::mem::replace(&mut current, next));
    }
    // The oldest token comes back: the newest one dies with it.
    app.post(
        "/v1/auth/refresh",
        None,
        json!({ "refresh_token": spent[0] }),
    )
    .await
    .assert_error(401, "invalid_refresh_token");
    app.post(
        "/v1/auth/refresh",
        None,
        json!({ "refresh_token": current }),
    )
    .await
    .assert_error(401, "invalid_refresh_token");
    app.cleanup().await;
}

#[tokio::test]
async fn logging_out_ends_that_session_and_no_other() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let refresh =
        |token: &str| app.post("/v1/auth/refresh", None, json!({ "refresh_token": token }));
    let logout = |token: &str| app.post("/v1/auth/logout", None, json!({ "refresh_token": token }));
    // This session rotated once; a second device logged in separately.
    let r1 = refresh(&alice.refresh).await.assert_status(200)["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let device = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "username": "alice", "password": "correct horse battery" }),
        )
        .await;
    let d1 = device.assert_status(200)["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    logout(&r1).await.assert_status(204);
    // Neither the current token nor anything of its family refreshes any more.
    refresh(&r1)
        .await
        .assert_error(401, "invalid_refresh_token");
    // Logging out again, or with a token never issued, is the same 204.
    logout(&r1).await.assert_status(204);
    logout("not-a-token").await.assert_status(204);
    // The other device's session goes on.
    refresh(&d1).await.assert_status(200);
    // A body without the token is a 400 like every malformed body.
    app.post("/v1/auth/logout", None, json!({}))
        .await
        .assert_error(400, "invalid_body");
    app.cleanup().await;
}
