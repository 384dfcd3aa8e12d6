//! Cursor pagination of a room's history.

use crate::helpers::{TestApp, unique};
use futures::StreamExt;
use serde_json::Value;

fn seqs(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn two_hundred_fifty_messages_page_backwards_and_forwards_in_100_100_50_with_no_gap_or_overlap()
 {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let room = app
        .create_room(&alice, &format!("pages-{u}"), "private")
        .await;
    let app_ref = &app;
    let alice_ref = &alice;
    futures::stream::iter(1..=250)
        .map(|i| async move { app_ref.say(alice_ref, room, &format!("message {i}")).await })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    app.project().await;
    let base = format!("/v1/rooms/{room}/messages");

    // Backwards from the newest.
    let mut seen: Vec<i64> = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<i64> = None;
    loop {
        let path = match cursor {
            None => format!("{base}?limit=100"),
            Some(c) => format!("{base}?limit=100&before_seq={c}"),
        };
        let res = app.get(&path, &alice.token).await;
        let page = res.assert_status(200);
        let s = seqs(page);
        assert!(s.windows(2).all(|w| w[0] > w[1]), "not newest first: {s:?}");
        assert!(page.get("next_after_seq").is_none());
        sizes.push(s.len());
        seen.extend(&s);
        match page["next_before_seq"].as_i64() {
            Some(next) => {
                assert_eq!(
                    Some(&next),
                    s.last(),
                    "cursor is the oldest seq of the page"
                );
                cursor = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(sizes, vec![100, 100, 50]);
    assert_eq!(seen, (1..=250).rev().collect::<Vec<i64>>());

    // Forwards from the start.
    let mut seen: Vec<i64> = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor = 0;
    loop {
        let res = app
            .get(
                &format!("{base}?limit=100&after_seq={cursor}"),
                &alice.token,
            )
            .await;
        let page = res.assert_status(200);
        let s = seqs(page);
        assert!(s.windows(2).all(|w| w[0] < w[1]), "not oldest first: {s:?}");
        assert!(page.get("next_before_seq").is_none());
        sizes.push(s.len());
        seen.extend(&s);
        match page["next_after_seq"].as_i64() {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(sizes, vec![100, 100, 50]);
    assert_eq!(seen, (1..=250).collect::<Vec<i64>>());

    // The default page is the newest 50.
    let res = app.get(&base, &alice.token).await;
    assert_eq!(
        seqs(res.assert_status(200)),
        (201..=250).rev().collect::<Vec<_>>()
    );

    // Shape of one message.
    let res = app
        .get(&format!("{base}?after_seq=0&limit=1"), &alice.token)
        .await;
    let m = &res.assert_status(200)["messages"][0];
    assert_eq!(m["seq"], 1);
    assert_eq!(m["sender_id"], alice.id.to_string());
    assert!(m["body"].as_str().unwrap().starts_with("message "));
    assert_eq!(m["deleted"], false);
    assert!(m["reply_to"].is_null());
    assert!(m["edited_at"].is_null());
    assert_eq!(m["edit_number"], 0);
    assert!(m["reactions"].is_object());
    assert!(m["sent_at"].is_string());
    assert!(m["version"].as_i64().unwrap() > 0);
    assert!(m["message_id"].is_string());
    app.cleanup().await;
}

#[tokio::test]
async fn limits_out_of_range_are_clamped_and_malformed_cursors_are_a_400() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let room = app
        .create_room(&alice, &format!("limits-{u}"), "public")
        .await;
    let app_ref = &app;
    let alice_ref = &alice;
    futures::stream::iter(1..=120)
        .map(|i| async move { app_ref.say(alice_ref, room, &format!("m{i}")).await })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    app.project().await;
    let base = format!("/v1/rooms/{room}/messages");

    for (query, expected) in [
        ("limit=0", 1),
        ("limit=-7", 1),
        ("limit=1", 1),
        ("limit=100", 100),
        ("limit=101", 100),
        ("limit=1000", 100),
        ("after_seq=0&limit=1000", 100),
        ("before_seq=3&limit=1000", 2),
        ("before_seq=0", 0),
        ("after_seq=120", 0),
    ] {
        let res = app.get(&format!("{base}?{query}"), &alice.token).await;
        assert_eq!(seqs(res.assert_status(200)).len(), expected, "{query}");
    }
    let res = app
        .get(&format!("{base}?after_seq=120"), &alice.token)
        .await;
    assert!(res.body["next_after_seq"].is_null(), "{}", res.text);
    // Both: the messages between them, forwards, paged by `after_seq`.
    let res = app
        .get(
            &format!("{base}?after_seq=2&before_seq=10&limit=5"),
            &alice.token,
        )
        .await;
    assert_eq!(seqs(res.assert_status(200)), vec![3, 4, 5, 6, 7]);
    assert_eq!(res.body["next_after_seq"], 7, "{}", res.text);
    let res = app
        .get(
            &format!("{base}?after_seq=7&before_seq=10&limit=5"),
            &alice.token,
        )
        .await;
    assert_eq!(seqs(res.assert_status(200)), vec![8, 9]);
    assert!(res.body["next_after_seq"].is_null(), "{}", res.text);

    for query in [
        "limit=abc",
        "limit=1.5",
        "limit=99999999999999999999999",
        "before_seq=abc",
        "after_seq=",
        "before_seq=-1",
        "after_seq=-5",
        "min_position=soon",
        "min_position=-1",
    ] {
        let res = app.get(&format!("{base}?{query}"), &alice.token).await;
        assert_eq!(res.status, 400, "{query}: {}", res.text);
        let code = res.body["error"]["code"].as_str().unwrap_or_default();
        assert!(
            code == "invalid_query" || code == "invalid_min_position",
            "{query}: {}",
            res.text
        );
    }
    // Bad room ids are a 400 too, never a 5xx.
    app.get("/v1/rooms/not-a-uuid/messages", &alice.token)
        .await
        .assert_error(400, "invalid_path");
    app.cleanup().await;
}
