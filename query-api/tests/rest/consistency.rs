//! Read-your-writes: `min_position` / `X-Min-Position`.

use crate::helpers::{TestApp, unique};
use std::time::{Duration, Instant};
use test_support::wait_until;

/// Waits (bounded) until some connection of this test's database has run the
/// query-api's checkpoint poll: the read is then known to be waiting.
async fn until_a_read_is_waiting(app: &TestApp) {
    wait_until(
        Duration::from_secs(10),
        Duration::from_millis(2),
        "the read never started waiting",
        || async {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database()
                    -- (split so that this query's own text does not match)
                    AND query LIKE '%/* min_position' || ' wait */%'",
            )
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
            n > 0
        },
    )
    .await;
}

#[tokio::test]
async fn a_read_with_min_position_waits_for_the_projector_and_then_sees_the_write() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let room = app
        .create_room(&alice, &format!("ryw-{u}"), "private")
        .await;
    app.project().await;

    // Written, not yet projected.
    let (message_id, _, position) = app.say(&alice, room, "read me back").await;
    let path = format!("/v1/rooms/{room}/messages?min_position={position}");
    let started = Instant::now();
    let read = {
        let http = app.http.clone();
        let url = format!("{}{path}", app.query);
        let token = alice.token.clone();
        tokio::spawn(async move {
            let res = http.get(url).bearer_auth(token).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<serde_json::Value>().await.unwrap())
        })
    };
    until_a_read_is_waiting(&app).await;
    assert!(
        !read.is_finished(),
        "answered before the projection caught up"
    );
    app.project().await;
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("answered once caught up")
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"][0]["message_id"], message_id.to_string());
    assert_eq!(body["messages"][0]["body"], "read me back");
    assert!(started.elapsed() < Duration::from_secs(5));

    // The header form, and a position already reached, answer at once.
    let (_, _, position) = app.say(&alice, room, "second").await;
    app.project().await;
    let res = app
        .get_with(
            &format!("/v1/rooms/{room}/messages"),
            Some(&alice.token),
            &[("X-Min-Position", &position.to_string())],
        )
        .await;
    assert_eq!(res.assert_status(200)["messages"][0]["body"], "second");
    app.cleanup().await;
}

#[tokio::test]
async fn joining_then_reading_with_the_join_position_never_sees_a_stale_refusal() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    let room = app
        .create_room(&alice, &format!("ryw-join-{u}"), "public")
        .await;
    app.say(&alice, room, "welcome").await;
    app.project().await;
    // Not a member yet.
    app.get(&format!("/v1/rooms/{room}/messages"), &bob.token)
        .await
        .assert_error(403, "not_a_member");
    let joined = app.join(&bob, room).await;
    let position = crate::helpers::position(joined.assert_status(200));
    let url = format!("/v1/rooms/{room}/messages?min_position={position}");
    let read = {
        let http = app.http.clone();
        let url = format!("{}{url}", app.query);
        let token = bob.token.clone();
        tokio::spawn(async move {
            let res = http.get(url).bearer_auth(token).send().await.unwrap();
            res.status().as_u16()
        })
    };
    until_a_read_is_waiting(&app).await;
    app.project().await;
    assert_eq!(read.await.unwrap(), 200);
    app.cleanup().await;
}

#[tokio::test]
async fn a_committed_position_not_yet_projected_gets_503_not_caught_up_with_retry_after() {
    let app = TestApp::spawn_with(|s| s.min_position_wait_ms = 150).await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let room = app.create_room(&alice, &format!("r_{u}"), "public").await;
    app.project().await;
    // Committed to the log, never projected (this app projects only when told).
    let (_, _, committed) = app.say(&alice, room, "not projected").await;
    for (path, headers) in [
        (format!("/v1/me?min_position={committed}"), vec![]),
        (
            "/v1/rooms".to_owned(),
            vec![("x-min-position", committed.to_string())],
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let started = Instant::now();
        let res = app.get_with(&path, Some(&alice.token), &headers).await;
        let waited = started.elapsed();
        res.assert_error(503, "not_caught_up");
        assert!(res.headers.get("retry-after").is_some(), "no Retry-After");
        assert!(
            waited >= Duration::from_millis(150) && waited < Duration::from_secs(3),
            "waited {waited:?}"
        );
    }
    // Without min_position the same read answers at once.
    app.get("/v1/me", &alice.token).await.assert_status(200);
    app.cleanup().await;
}

/// A position past the log's head was never committed, so no wait can reach it: a 400 at
/// once, not a 503 after the whole wait (issue 15, item 7).
#[tokio::test]
async fn a_position_past_the_log_head_is_a_400_at_once() {
    let app = TestApp::spawn_with(|s| s.min_position_wait_ms = 5_000).await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    app.project().await;
    let far = i64::MAX / 2;
    for (path, headers) in [
        (format!("/v1/me?min_position={far}"), vec![]),
        (
            "/v1/rooms".to_owned(),
            vec![("x-min-position", far.to_string())],
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let started = Instant::now();
        let res = app.get_with(&path, Some(&alice.token), &headers).await;
        res.assert_error(409, "min_position_not_committed");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "answered after {:?}",
            started.elapsed()
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn the_openapi_document_bounds_min_position_at_zero_everywhere() {
    let app = TestApp::spawn().await;
    let doc: serde_json::Value = reqwest::get(format!("{}/openapi.json", app.query))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut seen = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for param in op["parameters"].as_array().into_iter().flatten() {
                if param["name"] == "min_position" {
                    seen += 1;
                    assert_eq!(param["schema"]["minimum"], 0, "{method} {path}: {param}");
                    assert_eq!(param["schema"]["type"], "integer", "{method} {path}");
                }
            }
        }
    }
    // Every read takes it.
    assert!(seen >= 10, "min_position on only {seen} operations");
    app.cleanup().await;
}
