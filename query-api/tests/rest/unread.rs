//! Unread counts, read markers and the last message in `GET /v1/rooms`.

use crate::helpers::{TestApp, TestUser, unique};
use serde_json::Value;
use uuid::Uuid;

async fn my_room(app: &TestApp, user: &TestUser, room: Uuid) -> Value {
    app.my_room(user, room).await
}

#[tokio::test]
async fn unread_counts_follow_sends_deletes_and_read_markers_and_a_marker_never_moves_back() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    let room = app
        .create_room(&alice, &format!("unread-{u}"), "public")
        .await;
    app.join(&bob, room).await.assert_status(200);

    // Nothing sent yet.
    app.project().await;
    let b = my_room(&app, &bob, room).await;
    assert_eq!(
        (b["unread_count"].as_i64(), b["last_seq"].as_i64()),
        (Some(0), Some(0))
    );
    assert!(b["last_message"].is_null(), "{b}");

    // Three messages from alice: three unread for bob, none for alice.
    let mut sent = Vec::new();
    for i in 1..=3 {
        sent.push(app.say(&alice, room, &format!("m{i}")).await);
    }
    app.project().await;
    let b = my_room(&app, &bob, room).await;
    assert_eq!(b["unread_count"], 3, "{b}");
    assert_eq!(b["last_message"]["seq"], 3);
    assert_eq!(b["last_message"]["body"], "m3");
    assert_eq!(b["last_message"]["sender_id"], alice.id.to_string());
    assert_eq!(
        b["last_message"]["sender_username"],
        alice.username.as_str()
    );
    assert!(b["last_message"]["sender_display_name"].is_string(), "{b}");
    assert_eq!(b["last_message"]["message_id"], sent[2].0.to_string());
    assert!(b["last_message"]["sent_at"].is_string());
    assert_eq!(my_room(&app, &alice, room).await["unread_count"], 0);

    // Deleting the newest: one fewer unread; it stays the last message, with no body.
    app.delete_message(&alice, room, sent[2].0)
        .await
        .assert_status(200);
    app.project().await;
    let b = my_room(&app, &bob, room).await;
    assert_eq!(b["unread_count"], 2, "{b}");
    assert_eq!(b["last_message"]["seq"], 3);
    assert!(b["last_message"]["body"].is_null(), "{b}");
    assert_eq!(b["last_message"]["deleted"], true);

    // Reading up to 1, then 2.
    app.mark_read(&bob, room, 1).await.assert_status(200);
    app.project().await;
    let b = my_room(&app, &bob, room).await;
    assert_eq!(
        (b["unread_count"].as_i64(), b["read_seq"].as_i64()),
        (Some(1), Some(1)),
        "{b}"
    );
    app.mark_read(&bob, room, 2).await.assert_status(200);
    app.project().await;
    let b = my_room(&app, &bob, room).await;
    assert_eq!(
        (b["unread_count"].as_i64(), b["read_seq"].as_i64()),
        (Some(0), Some(2)),
        "{b}"
    );

    // A marker sent backwards changes nothing (accepted or refused, never a 5xx).
    let back = app.mark_read(&bob, room, 1).await;
    assert!(back.status < 500, "{}", back.text);
    app.project().await;
    let b = my_room(&app, &bob, room).await;
    assert_eq!(
        (b["unread_count"].as_i64(), b["read_seq"].as_i64()),
        (Some(0), Some(2)),
        "{b}"
    );

    // Two more from alice, one from bob: bob's own message is never unread to him.
    app.say(&alice, room, "m4").await;
    app.say(&alice, room, "m5").await;
    app.say(&bob, room, "m6 from bob").await;
    app.project().await;
    let b = my_room(&app, &bob, room).await;
    assert_eq!(b["unread_count"], 2, "{b}");
    assert_eq!(b["last_message"]["body"], "m6 from bob");
    let a = my_room(&app, &alice, room).await;
    assert_eq!(a["unread_count"], 1, "{a}");

    // Deleting an already-read message changes nothing; deleting an unread one does.
    app.delete_message(&alice, room, sent[0].0)
        .await
        .assert_status(200);
    app.project().await;
    assert_eq!(my_room(&app, &bob, room).await["unread_count"], 2);

    // Reading everything.
    app.mark_read(&bob, room, 6).await.assert_status(200);
    app.project().await;
    let b = my_room(&app, &bob, room).await;
    assert_eq!(
        (b["unread_count"].as_i64(), b["read_seq"].as_i64()),
        (Some(0), Some(6)),
        "{b}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn my_rooms_are_listed_newest_activity_first_with_my_role() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    let older = app
        .create_room(&alice, &format!("older-{u}"), "public")
        .await;
    let newer = app.create_room(&bob, &format!("newer-{u}"), "public").await;
    app.join(&alice, newer).await.assert_status(200);
    app.project().await;
    let order = |v: &Value| -> Vec<String> {
        v["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["room_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let rooms = app.get("/v1/rooms", &alice.token).await;
    let body = rooms.assert_status(200);
    assert_eq!(order(body), vec![newer.to_string(), older.to_string()]);
    assert_eq!(body["rooms"][0]["role"], "member");
    assert_eq!(body["rooms"][1]["role"], "owner");
    assert_eq!(body["rooms"][0]["member_count"], 2);
    assert_eq!(body["rooms"][0]["kind"], "group");
    assert_eq!(body["rooms"][0]["visibility"], "public");

    // A message in the older room brings it to the top.
    app.say(&alice, older, "bump").await;
    app.project().await;
    let rooms = app.get("/v1/rooms", &alice.token).await;
    assert_eq!(
        order(rooms.assert_status(200)),
        vec![older.to_string(), newer.to_string()]
    );

    // Bob sees only his room.
    let rooms = app.get("/v1/rooms", &bob.token).await;
    assert_eq!(order(rooms.assert_status(200)), vec![newer.to_string()]);
    app.cleanup().await;
}
