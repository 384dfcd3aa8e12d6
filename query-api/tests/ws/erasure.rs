//! Erasure (issue #18, ADR 23) in the live feed: the back-fill a socket gets is read from the
//! log and opened with the data keys, so once a user is erased their messages come back as
//! `[erased]`, even on a node that opened them before (the erasure's notice makes it read the
//! keys again), while everyone else's messages are untouched.

use crate::helpers::{Client, Platform};
use test_support::is_message;

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
    let (status, body) = p
        .post(
            &format!("/v1/admin/users/{}/erase", bob.id),
            &admin.token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");

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
