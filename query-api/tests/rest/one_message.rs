//! `GET /v1/rooms/{room_id}/messages/{message_id}`: the history's shape for one message.

use crate::helpers::{TestApp, unique};
use uuid::Uuid;

#[tokio::test]
async fn one_message_by_id_in_the_history_shape_and_nothing_across_rooms() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("one_alice_{u}")).await;
    let room = app.create_room(&alice, &format!("one-{u}"), "public").await;
    let other = app.create_room(&alice, &format!("two-{u}"), "public").await;
    let (first, _, _) = app.say(&alice, room, "the original").await;
    let (gone, _, _) = app.say(&alice, room, "soon deleted").await;
    let (elsewhere, _, _) = app.say(&alice, other, "another room").await;
    app.delete_message(&alice, room, gone)
        .await
        .assert_status(200);
    app.project().await;

    let res = app
        .get(&format!("/v1/rooms/{room}/messages/{first}"), &alice.token)
        .await;
    let body = res.assert_status(200);
    let page = app
        .get(&format!("/v1/rooms/{room}/messages"), &alice.token)
        .await;
    let in_history = page.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["message_id"] == first.to_string())
        .unwrap()
        .clone();
    assert_eq!(body, &in_history, "the same shape and values as in history");
    // A tombstone keeps no body.
    let res = app
        .get(&format!("/v1/rooms/{room}/messages/{gone}"), &alice.token)
        .await;
    let body = res.assert_status(200);
    assert_eq!(body["deleted"], true);
    assert!(body["body"].is_null());
    // Another room's message, or none at all, is the same 404.
    for id in [elsewhere, Uuid::now_v7()] {
        app.get(&format!("/v1/rooms/{room}/messages/{id}"), &alice.token)
            .await
            .assert_error(404, "message_not_found");
    }
    app.get(
        &format!("/v1/rooms/{room}/messages/not-a-uuid"),
        &alice.token,
    )
    .await
    .assert_error(400, "invalid_path");
    app.cleanup().await;
}
