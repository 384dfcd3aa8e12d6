use crate::helpers::{Client, Platform, is_message};
use serde_json::Value;
use std::collections::HashSet;

fn versions(frames: &[Value]) -> Vec<i64> {
    frames
        .iter()
        .filter(|f| f["version"].is_i64() && f["type"] != "subscribed")
        .map(|f| f["version"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_client_resuming_after_100_missed_messages_gets_exactly_those_in_order_then_live_ones() {
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let bob = p.register().await;
    let room = p.create_room(&alice, "public").await;
    p.join(&bob, room).await;

    let mut ws = Client::connect(p.query.addr, &bob.token).await;
    ws.subscribe(room, None).await;
    for i in 0..3 {
        p.send(&alice, room, &format!("seen {i}")).await;
    }
    let seen = ws.until(|f| is_message(f, "seen 2")).await;
    let last_seen = *versions(&seen).last().unwrap();
    drop(ws);

    for i in 0..100 {
        p.send(&alice, room, &format!("missed {i}")).await;
    }
    let mut ws = Client::connect(p.query.addr, &bob.token).await;
    let resumed = ws.subscribe(room, Some(last_seen)).await;
    let subscribed = resumed.last().unwrap().clone();
    assert_eq!(subscribed["type"], "subscribed");
    let backfill = &resumed[..resumed.len() - 1];
    assert_eq!(backfill.len(), 100, "{backfill:?}");
    let expected: Vec<i64> = (last_seen + 1..=last_seen + 100).collect();
    assert_eq!(versions(backfill), expected);
    for (i, f) in backfill.iter().enumerate() {
        assert!(is_message(f, &format!("missed {i}")), "{f}");
        assert!(f["position"].is_i64());
    }
    assert_eq!(subscribed["version"], last_seen + 100);

    p.send(&alice, room, "live 0").await;
    p.send(&alice, room, "live 1").await;
    let live = ws.until(|f| is_message(f, "live 1")).await;
    assert_eq!(
        versions(&live),
        vec![last_seen + 101, last_seen + 102],
        "{live:?}"
    );
    p.cleanup().await;
}

#[tokio::test]
async fn resuming_while_messages_keep_flowing_has_no_gap_and_no_duplicate() {
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let bob = p.register().await;
    let room = p.create_room(&alice, "public").await;
    p.join(&bob, room).await;
    let sent = p.send(&alice, room, "first").await;
    let start = p.version_at(sent["position"].as_i64().unwrap()).await;
    for i in 0..60 {
        p.send(&alice, room, &format!("old {i}")).await;
    }

    let mut ws = Client::connect(p.query.addr, &bob.token).await;
    let sender = {
        let http = p.http.clone();
        let base = p.cmd_base.clone();
        let token = alice.token.clone();
        tokio::spawn(async move {
            for i in 0..60 {
                let res = http
                    .post(format!("{base}/v1/rooms/{room}/messages"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({
                        "client_msg_id": uuid::Uuid::new_v4().to_string(),
                        "body": format!("new {i}")
                    }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status().as_u16(), 201);
            }
        })
    };
    let mut frames = ws.subscribe(room, Some(start)).await;
    frames.extend(ws.until(|f| is_message(f, "new 59")).await);
    sender.await.unwrap();
    let got = versions(&frames);
    let expected: Vec<i64> = (start + 1..=start + 120).collect();
    assert_eq!(got, expected, "frames: {frames:?}");
    let unique: HashSet<i64> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len());
    p.cleanup().await;
}

#[tokio::test]
async fn a_client_more_than_1000_events_behind_gets_resync_instead_of_a_back_fill_then_live_events()
{
    use futures::StreamExt;
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let room = p.create_room(&alice, "public").await;
    futures::stream::iter(0..1001)
        .map(|i| {
            let p = &p;
            let alice = &alice;
            async move { p.send(alice, room, &format!("old {i}")).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut ws = Client::connect(p.query.addr, &alice.token).await;
    let answer = ws.subscribe(room, Some(0)).await;
    assert_eq!(answer.len(), 2, "{answer:?}");
    assert_eq!(answer[0]["type"], "resync");
    assert_eq!(answer[0]["reason"], "too_far_behind");
    assert_eq!(answer[0]["room_id"], room.to_string());
    let head = answer[1]["version"].as_i64().unwrap();
    assert!(head > 1000, "{answer:?}");
    p.send(&alice, room, "live").await;
    let live = ws.until(|f| is_message(f, "live")).await;
    assert_eq!(versions(&live), vec![head + 1]);
    p.cleanup().await;
}
