//! Epochs on the live feed: a switch of the read models makes every subscribed socket
//! resync each of its rooms (and stay live), and a resume from another epoch gets `resync`
//! instead of a back-fill.

use crate::helpers::{Client, DEADLINE, Platform, is_message, wait_until};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use uuid::Uuid;

/// Subscribes with `after_version` and `epoch` (each left out when `None`); returns every
/// frame up to the `subscribed` (or `error`) answer.
async fn subscribe(
    ws: &mut Client,
    room: Uuid,
    after_version: Option<i64>,
    epoch: Option<i64>,
) -> Vec<Value> {
    let mut frame = json!({ "type": "subscribe", "room_id": room });
    if let Some(v) = after_version {
        frame["after_version"] = json!(v);
    }
    if let Some(e) = epoch {
        frame["epoch"] = json!(e);
    }
    ws.send(frame).await;
    ws.until(|f| {
        (f["type"] == "subscribed" && f["room_id"] == room.to_string()) || f["type"] == "error"
    })
    .await
}

/// Waits (bounded) until the node's live feed is in `epoch`.
async fn until_live_epoch(p: &Platform, epoch: i64) {
    let live = p.query.live().clone();
    wait_until(
        DEADLINE,
        Duration::from_millis(5),
        &format!("the live feed never reached epoch {epoch}"),
        || {
            let live = live.clone();
            async move { live.epoch() == epoch }
        },
    )
    .await;
}

fn version(body: &Value) -> i64 {
    body["version"].as_i64().unwrap()
}

#[tokio::test]
async fn a_switch_makes_a_connected_client_resync_every_subscribed_room_and_it_loses_nothing() {
    // Only the notification can bring the switch within the test.
    let p = Platform::spawn_with(|s| s.epoch_poll_ms = 3_600_000).await;
    let alice = p.register().await;
    let bob = p.register().await;
    let rooms = [
        p.create_room(&alice, "public").await,
        p.create_room(&alice, "public").await,
    ];
    for room in rooms {
        p.join(&bob, room).await;
    }
    p.project().await;

    let mut ws = Client::connect(p.query.addr, &bob.token).await;
    for room in rooms {
        let answer = ws.subscribe(room, None).await;
        let subscribed = answer.last().unwrap();
        assert_eq!(subscribed["type"], "subscribed", "{answer:?}");
        assert_eq!(subscribed["epoch"], 1, "{subscribed}");
    }
    p.send(&alice, rooms[0], "before").await;
    ws.until(|f| is_message(f, "before")).await;

    let epoch = p.bump_epoch().await;
    assert_eq!(epoch, 2);
    // Messages go on flowing through the switch.
    p.send(&alice, rooms[0], "during").await;
    let mut resynced = HashSet::new();
    let mut last_position = None;
    while resynced.len() < rooms.len() || last_position.is_none() {
        let f = ws.next().await;
        match f["type"].as_str() {
            Some("resync") => {
                assert_eq!(f["reason"], "epoch", "{f}");
                let room: Uuid = f["room_id"].as_str().unwrap().parse().unwrap();
                assert!(resynced.insert(room), "a second resync for {room}");
            }
            _ if is_message(&f, "during") => last_position = f["position"].as_i64(),
            _ => panic!("unexpected frame {f}"),
        }
    }
    assert_eq!(resynced, rooms.into_iter().collect());

    // The reload: each room over REST, covering everything received so far.
    p.project().await;
    let last_position = last_position.unwrap();
    for (room, expected) in [(rooms[0], vec!["during", "before"]), (rooms[1], vec![])] {
        let (status, read_epoch, body) = p
            .read(
                &format!("/v1/rooms/{room}/messages?min_position={last_position}"),
                &bob.token,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(read_epoch, epoch);
        let bodies: Vec<&str> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect();
        assert_eq!(bodies, expected);
    }

    // Still subscribed to both rooms, live.
    p.send(&alice, rooms[1], "after 1").await;
    p.send(&alice, rooms[0], "after 0").await;
    let after = ws.until(|f| is_message(f, "after 0")).await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(is_message(&after[0], "after 1"), "{after:?}");
    p.cleanup().await;
}

#[tokio::test]
async fn a_resume_from_an_older_epoch_gets_resync_and_one_from_the_current_epoch_a_back_fill() {
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let bob = p.register().await;
    let room = p.create_room(&alice, "public").await;
    p.join(&bob, room).await;
    p.project().await;

    let mut ws = Client::connect(p.query.addr, &bob.token).await;
    ws.subscribe(room, None).await;
    let seen = version(&p.send(&alice, room, "seen").await);
    ws.until(|f| is_message(f, "seen")).await;
    drop(ws);

    let epoch = p.bump_epoch().await;
    until_live_epoch(&p, epoch).await;
    let mut head = 0;
    for i in 0..3 {
        head = version(&p.send(&alice, room, &format!("missed {i}")).await);
    }

    // From the old epoch: no back-fill, a resync, then live.
    let mut old = Client::connect(p.query.addr, &bob.token).await;
    let answer = subscribe(&mut old, room, Some(seen), Some(epoch - 1)).await;
    assert_eq!(answer.len(), 2, "{answer:?}");
    assert_eq!(answer[0]["type"], "resync");
    assert_eq!(answer[0]["reason"], "epoch");
    assert_eq!(answer[0]["room_id"], room.to_string());
    assert_eq!(answer[1]["version"], head, "{answer:?}");
    assert_eq!(answer[1]["epoch"], epoch, "{answer:?}");

    // From the current epoch: the back-fill. Without an epoch (a client that does not
    // track them): the back-fill too.
    for client_epoch in [Some(epoch), None] {
        let mut current = Client::connect(p.query.addr, &bob.token).await;
        let answer = subscribe(&mut current, room, Some(seen), client_epoch).await;
        assert_eq!(answer.len(), 4, "{answer:?}");
        for (i, f) in answer[..3].iter().enumerate() {
            assert!(is_message(f, &format!("missed {i}")), "{f}");
        }
        assert_eq!(answer[3]["type"], "subscribed");
        assert_eq!(answer[3]["version"], head);
        assert_eq!(answer[3]["epoch"], epoch);
    }

    let live = version(&p.send(&alice, room, "live").await);
    let frames = old.until(|f| is_message(f, "live")).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["version"], live);
    p.cleanup().await;
}

#[tokio::test]
async fn a_switch_resyncs_through_the_live_queue_and_a_socket_whose_queue_overflows_is_closed() {
    const QUEUE: usize = 2;
    const ROOMS: usize = 8;
    let p = Platform::spawn_with(|s| s.ws_queue_frames = QUEUE).await;
    let alice = p.register().await;
    let bob = p.register().await;
    let mut rooms = Vec::new();
    for _ in 0..ROOMS {
        let room = p.create_room(&alice, "public").await;
        p.join(&bob, room).await;
        rooms.push(room);
    }
    p.project().await;

    // Within its queue: two rooms, two resyncs.
    let mut few = Client::connect(p.query.addr, &bob.token).await;
    for room in &rooms[..QUEUE] {
        few.subscribe(*room, None).await;
    }
    // Beyond it: the resyncs are queued at once, like any fan-out, and overflow it.
    let mut many = Client::connect(p.query.addr, &bob.token).await;
    for room in &rooms {
        many.subscribe(*room, None).await;
    }

    p.bump_epoch().await;
    let mut resynced = HashSet::new();
    while resynced.len() < QUEUE {
        let f = few.next().await;
        assert_eq!(f["type"], "resync", "{f}");
        assert_eq!(f["reason"], "epoch", "{f}");
        resynced.insert(f["room_id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    assert_eq!(resynced, rooms[..QUEUE].iter().copied().collect());
    loop {
        match many
            .next_until(tokio::time::Instant::now() + DEADLINE)
            .await
        {
            crate::helpers::Got::Frame(f) => assert_eq!(f["type"], "resync", "{f}"),
            crate::helpers::Got::Closed(close) => {
                assert_eq!(close, Some((1008, "slow consumer".to_owned())));
                break;
            }
            crate::helpers::Got::Timeout => panic!("the overflowing socket was not closed"),
        }
    }
    assert_eq!(p.query.closed("slow_consumer"), 1);

    p.send(&alice, rooms[0], "still live").await;
    few.until(|f| is_message(f, "still live")).await;
    p.cleanup().await;
}
