//! Retention (issue #18) in the live feed: members see `messages_expired` when the retention
//! job expires a room's old messages, and a back-fill read from the log afterwards sends the
//! events of expired messages as `hidden` frames, so nothing of them is shown and versions
//! stay contiguous.

use crate::helpers::{Client, Platform};
use chrono::{Duration as Days, Utc};
use command_api::retention::expire_once;
use events::RoomId;
use serde_json::{Value, json};
use test_support::is_message;

#[tokio::test]
async fn expired_messages_are_announced_live_and_hidden_from_the_back_fill() {
    let p = Platform::spawn().await;
    let owner = p.register().await;
    let bob = p.register().await;
    let room = p.create_room(&owner, "public").await;
    p.join(&bob, room).await;
    let old = format!("old words {}", uuid::Uuid::now_v7().simple());
    let sent = p.send(&bob, room, &old).await;
    let message_id = sent["message_id"].as_str().unwrap().to_owned();
    let (status, body) = p
        .put(
            &format!("/v1/rooms/{room}/messages/{message_id}/reactions/%F0%9F%91%8D"),
            &owner.token,
            json!(null),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let cutoff = Utc::now();
    p.send(&owner, room, "new words").await;
    let (status, body) = p
        .put(
            &format!("/v1/rooms/{room}/retention"),
            &owner.token,
            json!({ "days": 1 }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    p.project().await;

    let mut live = Client::connect(p.query.addr, &bob.token).await;
    let before = live.subscribe(room, Some(0)).await;
    assert!(before.iter().any(|f| is_message(f, &old)), "{before:?}");

    let pass = expire_once(&p.command_state, None, cutoff + Days::days(1))
        .await
        .unwrap();
    assert_eq!(pass.expired, vec![(RoomId(room), 1)]);
    let frames = live.until(|f| f["type"] == "messages_expired").await;
    let expired = frames.last().unwrap();
    assert_eq!(expired["data"]["up_to_seq"], 1, "{expired}");
    assert_eq!(expired["room_id"], room.to_string(), "{expired}");

    // A back-fill from the start: the send and the reaction of the expired message are
    // hidden; everything else is there, every version once, in order.
    let mut ws = Client::connect(p.query.addr, &bob.token).await;
    let after = ws.subscribe(room, Some(0)).await;
    let text = serde_json::to_string(&after).unwrap();
    assert!(!text.contains(&old), "{text}");
    assert!(
        after.iter().any(|f| is_message(f, "new words")),
        "{after:?}"
    );
    let events: Vec<&Value> = after
        .iter()
        .filter(|f| f.get("version").is_some() && f["type"] != "subscribed")
        .collect();
    let versions: Vec<i64> = events
        .iter()
        .map(|f| f["version"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = (1..=versions.len() as i64).collect();
    assert_eq!(versions, expected, "{after:?}");
    let hidden: Vec<&&Value> = events.iter().filter(|f| f["type"] == "hidden").collect();
    assert_eq!(hidden.len(), 2, "the send and the reaction: {after:?}");
    assert!(
        events.iter().any(|f| f["type"] == "messages_expired"),
        "{after:?}"
    );
    p.cleanup().await;
}
