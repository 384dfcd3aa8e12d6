//! Erasure (issue #18, ADR 23) in the live feed: the back-fill a socket gets is read from the
//! log and opened with the data keys, so once a user is erased their messages come back as
//! `[erased]`, even on a node that opened them before (the erasure's notice makes it read the
//! keys again), while everyone else's messages are untouched.

use crate::helpers::{Client, Platform};
use test_support::{TestUser, is_message};

/// `admin` erases `who` (200).
async fn erase(p: &Platform, admin: &TestUser, who: &TestUser) {
    let path = format!("/v1/admin/users/{}/erase", who.id);
    let (status, body) = p.post(&path, &admin.token, None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_back_fill_shows_an_erased_users_messages_as_erased_and_the_rest_as_they_were() {
    let p = Platform::spawn().await;
    let admin = p.register().await; // the first user
    let bob = p.register().await;
    let room = p.create_room(&admin, "public").await;
    p.join(&bob, room).await;
    let secret = format!("bobs secret {}", uuid::Uuid::now_v7().simple());
    p.send(&bob, room, &secret).await;
    p.send(&admin, room, "the admin's own words").await;
    p.project().await;

    // This node opens bob's message once (and keeps his key)...
    let mut ws = Client::connect(p.query.addr, &admin.token).await;
    let before = ws.subscribe(room, Some(0)).await;
    assert!(before.iter().any(|f| is_message(f, &secret)), "{before:?}");

    // ...then bob is erased.
    erase(&p, &admin, &bob).await;

    // A new back-fill, on the same node, has nothing of bob's words: the notice made the
    // node read his keys again, and they are gone. (The notice may trail the answer by a
    // moment: wait for it, bounded.)
    test_support::wait_until(
        test_support::DEADLINE,
        std::time::Duration::from_millis(20),
        "the back-fill still shows the erased message",
        || async {
            let mut ws = Client::connect(p.query.addr, &admin.token).await;
            let frames = ws.subscribe(room, Some(0)).await;
            !frames.iter().any(|f| is_message(f, &secret))
        },
    )
    .await;
    let mut ws = Client::connect(p.query.addr, &admin.token).await;
    let after = ws.subscribe(room, Some(0)).await;
    let text = serde_json::to_string(&after).unwrap();
    assert!(!text.contains(&secret), "{text}");
    assert!(after.iter().any(|f| is_message(f, "[erased]")), "{after:?}");
    assert!(
        after.iter().any(|f| is_message(f, "the admin's own words")),
        "{after:?}"
    );
    p.cleanup().await;
}

#[tokio::test]
async fn a_new_name_and_an_erasure_reach_the_rooms_of_the_member_live() {
    let p = Platform::spawn().await;
    let admin = p.register().await; // the first user
    let bob = p.register().await;
    let carol = p.register().await;
    let room = p.create_room(&admin, "public").await;
    let other = p.create_room(&admin, "public").await;
    p.join(&bob, room).await;
    p.join(&carol, room).await;
    p.join(&carol, other).await;
    p.project().await;
    let mut ws = Client::connect(p.query.addr, &carol.token).await;
    ws.subscribe(room, None).await;
    ws.subscribe(other, None).await;

    let (status, body) = p
        .patch(
            "/v1/me/profile",
            &bob.token,
            serde_json::json!({ "display_name": "Robert" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let renamed = ws.until(|f| f["type"] == "member_updated").await;
    let frame = renamed.last().unwrap();
    assert_eq!(frame["room_id"], room.to_string(), "{frame}");
    assert_eq!(frame["user_id"], bob.id.to_string());
    assert_eq!(frame["display_name"], "Robert");
    assert!(frame.get("erased").is_none(), "{frame}");

    erase(&p, &admin, &bob).await;
    let erased = ws.until(|f| f["type"] == "member_updated").await;
    let frame = erased.last().unwrap();
    assert_eq!(frame["room_id"], room.to_string(), "{frame}");
    assert_eq!(frame["erased"], true);
    assert_eq!(frame["display_name"], "[erased]");
    assert_eq!(frame["username"], vault::erased_username(bob.id));
    // Only the room bob is in was told: nothing of him reached `other`.
    for f in renamed.iter().chain(erased.iter()) {
        assert_ne!(f["room_id"], other.to_string(), "{f}");
    }
    p.cleanup().await;
}
