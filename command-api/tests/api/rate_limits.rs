//! Rate limits: logins per address and per username, registrations per address, messages
//! per user. Over a limit is a 429 `rate_limited` with `Retry-After`, nothing is written,
//! and the health checks answer as before.

use crate::helpers::TestApp;
use reqwest::Method;
use serde_json::json;

fn assert_limited(res: &test_support::Res, what: &str) {
    assert_eq!(res.status, 429, "{what}: {}", res.text);
    assert_eq!(res.body["error"]["code"], "rate_limited", "{what}");
    let wait: u64 = res.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1, "{what}: Retry-After {wait}");
}

async fn login(app: &TestApp, username: &str, forwarded_for: Option<&str>) -> test_support::Res {
    let headers: Vec<(&str, &str)> = forwarded_for
        .map(|ip| vec![("x-forwarded-for", ip)])
        .unwrap_or_default();
    app.request(
        Method::POST,
        "/v1/auth/login",
        None,
        Some(json!({ "username": username, "password": "wrong password!" })),
        &headers,
    )
    .await
}

#[tokio::test]
async fn a_login_flood_from_one_address_is_a_429_and_the_health_checks_stay_up() {
    let app = TestApp::spawn_with(|s| {
        s.limits.rate.rate_limit_enabled = true;
        s.limits.rate.rate_login_per_ip_per_minute = 5;
        s.limits.rate.rate_login_per_username_per_minute = 1000;
    })
    .await;
    app.register("alice").await;
    for i in 0..5 {
        let res = login(&app, &format!("user{i}"), None).await;
        assert_eq!(res.status, 401, "{}", res.text);
    }
    // The flood: every one refused before any password hash, the checks unaffected.
    let names: Vec<String> = (0..50).map(|i| format!("flood{i}")).collect();
    let flood = futures::future::join_all(names.iter().map(|n| login(&app, n, None)));
    let (answers, ready) =
        tokio::join!(flood, app.request(Method::GET, "/readyz", None, None, &[]));
    for res in &answers {
        assert_limited(res, "flood");
    }
    assert_eq!(ready.status, 200, "{}", ready.text);
    // The right password does not help from this address either.
    let res = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "username": "alice", "password": "correct horse battery" }),
        )
        .await;
    assert_limited(&res, "a good login from the flooding address");
    let metrics = app.request(Method::GET, "/metrics", None, None, &[]).await;
    assert!(
        metrics.text.lines().any(
            |l| l.starts_with("chat_rate_limited_total{limit=\"login_ip\"}") && !l.ends_with(" 0")
        ),
        "{}",
        metrics.text
    );
    app.cleanup().await;
}

#[tokio::test]
async fn logins_are_limited_per_username_and_behind_a_proxy_per_forwarded_address() {
    let app = TestApp::spawn_with(|s| {
        s.limits.rate.rate_limit_enabled = true;
        s.limits.rate.rate_login_per_ip_per_minute = 2;
        s.limits.rate.rate_login_per_username_per_minute = 3;
        s.limits.rate.rate_client_ip_header = "x-forwarded-for".to_owned();
    })
    .await;
    // Three addresses (as the proxy says) guessing one password: the username's limit.
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        assert_eq!(login(&app, "carol", Some(ip)).await.status, 401);
    }
    assert_limited(
        &login(&app, "carol", Some("203.0.113.4")).await,
        "4th guess for carol",
    );
    // Each address has its own allowance: .1 has one left, .5 two.
    assert_eq!(login(&app, "dave", Some("203.0.113.1")).await.status, 401);
    assert_limited(
        &login(&app, "erin", Some("203.0.113.1")).await,
        "3rd from .1",
    );
    assert_eq!(
        login(&app, "erin", Some("10.0.0.9, 203.0.113.5"))
            .await
            .status,
        401
    );
    app.cleanup().await;
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let app = TestApp::spawn_with(|s| {
        s.limits.rate.rate_limit_enabled = true;
        s.limits.rate.rate_register_per_ip_per_hour = 2;
    })
    .await;
    app.register("first").await;
    app.register("second").await;
    let before = app.event_count().await;
    let res = app
        .post(
            "/v1/auth/register",
            None,
            json!({ "username": "third", "password": "correct horse battery" }),
        )
        .await;
    assert_limited(&res, "3rd registration");
    assert_eq!(app.event_count().await, before, "nothing written");
    app.cleanup().await;
}

#[tokio::test]
async fn messages_are_limited_per_user_and_a_refused_one_writes_nothing() {
    let app = TestApp::spawn_with(|s| {
        s.limits.rate.rate_limit_enabled = true;
        s.limits.rate.rate_send_per_user_per_10s = 3;
    })
    .await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&alice, "public").await;
    app.join(&bob, room).await.assert_status(200);
    for i in 0..3 {
        app.send(&alice, room, &format!("m{i}"))
            .await
            .assert_status(201);
    }
    let before = app.event_count().await;
    assert_limited(&app.send(&alice, room, "one too many").await, "4th message");
    let res = app
        .post(
            &format!("/v1/rooms/{room}/ephemeral"),
            Some(&alice.token),
            json!({ "body": "and this" }),
        )
        .await;
    assert_limited(&res, "an ephemeral message");
    assert_eq!(app.event_count().await, before, "nothing written");
    // Another member is not held back by alice.
    app.send(&bob, room, "hi").await.assert_status(201);
    app.cleanup().await;
}
