//! Epochs on the REST reads: every answer carries `Chat-Epoch`, which follows
//! `projection_checkpoints.epoch` of the read models — on the switch's notification, or
//! by the poll when no notification comes.

use crate::helpers::{Res, TestApp, unique};
use serde_json::Value;
use std::time::Duration;
use test_support::{DEADLINE, wait_until};

/// What a blue/green switch does to the epoch: bumps it and, with `notify`, notifies
/// `chat_projection_epoch` in the same transaction. Returns the new epoch.
async fn bump_epoch(app: &TestApp, notify: bool) -> i64 {
    let mut tx = app.db.pool.begin().await.unwrap();
    let epoch: i64 = sqlx::query_scalar(
        "UPDATE projection_checkpoints SET epoch = epoch + 1, updated_at = now() \
         WHERE projection = 'read_models' RETURNING epoch",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    if notify {
        sqlx::query("SELECT pg_notify('chat_projection_epoch', 'read_models:' || $1)")
            .bind(epoch)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    epoch
}

fn epoch_of(res: &Res) -> i64 {
    res.headers
        .get("chat-epoch")
        .unwrap_or_else(|| panic!("no Chat-Epoch in {} {}", res.status, res.text))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Waits (bounded) until `GET path` answers with `Chat-Epoch: epoch`.
async fn until_epoch(app: &TestApp, path: &str, token: &str, epoch: i64) {
    wait_until(
        DEADLINE,
        Duration::from_millis(10),
        &format!("Chat-Epoch never became {epoch}"),
        || async { epoch_of(&app.get(path, token).await) == epoch },
    )
    .await;
}

#[tokio::test]
async fn every_read_answer_carries_the_epoch_and_a_notified_switch_changes_it() {
    // An hour between polls: only the notification can change the epoch within the test.
    let app = TestApp::spawn_with(|s| s.epoch_poll_ms = 3_600_000).await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;

    // No checkpoint row yet (nothing projected): the column's default, 1.
    let res = app.get("/v1/me", &alice.token).await;
    res.assert_error(404, "user_not_found");
    assert_eq!(epoch_of(&res), 1);

    let room = app
        .create_room(&alice, &format!("epoch-{u}"), "private")
        .await;
    app.say(&alice, room, "hello").await;
    app.project().await;
    for path in [
        "/v1/me".to_owned(),
        "/v1/rooms".to_owned(),
        format!("/v1/rooms/{room}"),
        format!("/v1/rooms/{room}/members"),
        format!("/v1/rooms/{room}/messages"),
        "/v1/rooms/public".to_owned(),
    ] {
        let res = app.get(&path, &alice.token).await;
        res.assert_status(200);
        assert_eq!(epoch_of(&res), 1, "{path}");
    }
    // Errors too: no token, a bad query, a room the caller may not see.
    let res = app.get_with("/v1/rooms", None, &[]).await;
    res.assert_error(401, "unauthorized");
    assert_eq!(epoch_of(&res), 1);
    let res = app.get("/v1/rooms/public?limit=abc", &alice.token).await;
    assert_eq!(res.status, 400);
    assert_eq!(epoch_of(&res), 1);
    let res = app
        .get(&format!("/v1/rooms/{}", uuid::Uuid::new_v4()), &alice.token)
        .await;
    res.assert_error(404, "room_not_found");
    assert_eq!(epoch_of(&res), 1);

    let epoch = bump_epoch(&app, true).await;
    assert_eq!(epoch, 2);
    until_epoch(&app, "/v1/me", &alice.token, 2).await;
    let res = app
        .get(&format!("/v1/rooms/{room}/messages"), &alice.token)
        .await;
    assert_eq!(res.assert_status(200)["messages"][0]["body"], "hello");
    assert_eq!(epoch_of(&res), 2);
    app.cleanup().await;
}

#[tokio::test]
async fn a_switch_that_is_not_notified_is_found_by_the_poll() {
    let app = TestApp::spawn_with(|s| s.epoch_poll_ms = 50).await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    app.project().await;
    let res = app.get("/v1/me", &alice.token).await;
    res.assert_status(200);
    assert_eq!(epoch_of(&res), 1);

    let epoch = bump_epoch(&app, false).await;
    until_epoch(&app, "/v1/me", &alice.token, epoch).await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_switch_notified_while_the_listening_connection_was_lost_is_not_missed() {
    // An hour between polls: only listening again (and re-reading then) can find the bump.
    let app = TestApp::spawn_with(|s| s.epoch_poll_ms = 3_600_000).await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    app.project().await;
    until_epoch(&app, "/v1/me", &alice.token, 1).await;

    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
          WHERE datname = current_database() AND pid <> pg_backend_pid() \
            AND query ILIKE 'LISTEN%chat_projection_epoch%'",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        terminated,
        vec![true],
        "the query-api's listening connection"
    );
    // Notified to nobody, or to the connection that is going away.
    let epoch = bump_epoch(&app, true).await;
    until_epoch(&app, "/v1/me", &alice.token, epoch).await;
    // Listening again: the next switch is notified as usual.
    let epoch = bump_epoch(&app, true).await;
    until_epoch(&app, "/v1/me", &alice.token, epoch).await;
    app.cleanup().await;
}

#[tokio::test]
async fn the_openapi_document_lists_the_epoch_header_on_the_reads() {
    let app = TestApp::spawn().await;
    let doc: Value = reqwest::get(format!("{}/openapi.json", app.query))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/me",
        "/v1/rooms/{room_id}/messages",
        "/v1/search/messages",
    ] {
        let header = &doc["paths"][path]["get"]["responses"]["200"]["headers"]["Chat-Epoch"];
        assert_eq!(header["schema"]["type"], "integer", "{path}: {header}");
    }
    app.cleanup().await;
}
