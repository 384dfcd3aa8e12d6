//! `chat rebuild --all` beside a running single node (the same code, `projector::startup::
//! rebuild`, with the platform's settings) while a member keeps sending, reading and
//! searching: no read or search fails or comes back empty, the WebSocket client gets
//! `resync` (reason `epoch`) after the switch, and after reloading over REST it holds every
//! message sent before, during and after the rebuild.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use test_support::{Api, Client, TestEnv, TestUser, unique};

/// Every message body of `room`, paging backwards from the newest, once the read models
/// reached `min_position`; and the `Chat-Epoch` of the answers.
async fn history(
    api: &Api,
    user: &TestUser,
    room: uuid::Uuid,
    min_position: i64,
) -> (Vec<String>, String) {
    let mut bodies = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut url = format!(
            "{}/v1/rooms/{room}/messages?limit=100&min_position={min_position}",
            api.base
        );
        if let Some(b) = before {
            url.push_str(&format!("&before_seq={b}"));
        }
        let res = api
            .http
            .get(url)
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let epoch = res.headers()["chat-epoch"].to_str().unwrap().to_owned();
        let page: Value = res.json().await.unwrap();
        for m in page["messages"].as_array().unwrap() {
            bodies.push(m["body"].as_str().unwrap_or_default().to_owned());
        }
        match page["next_before_seq"].as_i64() {
            Some(b) => before = Some(b),
            None => return (bodies, epoch),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_rebuild_all_beside_a_running_platform_loses_nothing_for_a_live_client() {
    let env = TestEnv::new().await;
    let (server, api) = common::start(&env).await;
    let addr: SocketAddr = api.base.trim_start_matches("http://").parse().unwrap();
    let alice = api.register(&format!("alice{}", unique())).await;
    let room = api.create_room(&alice, "rebuilt", "public").await;
    let mut sent = BTreeSet::new();
    let mut position = 0;
    for i in 0..60 {
        let body = format!("before the rebuild {i}");
        let res = api.send_message(&alice, room, &body).await;
        position = res.assert_status(201)["position"].as_i64().unwrap();
        sent.insert(body);
    }
    let (loaded, epoch) = history(&api, &alice, room, position).await;
    assert_eq!(loaded.len(), 60);
    assert_eq!(epoch, "1");
    // The search index has them too (its projection lingers longer than the read models'),
    // so that an empty search below can only be the rebuild's doing.
    let found = api
        .get(
            &format!("/v1/search/messages?q=rebuild&min_position={position}"),
            &alice.token,
        )
        .await;
    let hits = found.assert_status(200)["hits"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(
        hits > 0,
        "the search index has the messages: {}",
        found.text
    );

    let mut ws = Client::connect(addr, &alice.token).await;
    let answer = ws.subscribe(room, None).await;
    let subscribed = answer.last().unwrap();
    assert_eq!(subscribed["type"], "subscribed");
    assert_eq!(subscribed["epoch"], 1);

    // A member sending, reading and searching the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = tokio::spawn({
        let (api, alice, stop) = (api.clone(), alice.clone(), stop.clone());
        async move {
            let mut sent = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = format!("during the rebuild {i}");
                let res = api.send_message(&alice, room, &body).await;
                let position = res.assert_status(201)["position"].as_i64().unwrap();
                sent.push((body, position));
                i += 1;
            }
            sent
        }
    });
    let reader = tokio::spawn({
        let (api, alice, stop) = (api.clone(), alice.clone(), stop.clone());
        async move {
            let (mut reads, mut failed, mut empty) = (0u32, Vec::new(), 0u32);
            while !stop.load(Ordering::Relaxed) {
                for path in [
                    format!("/v1/rooms/{room}/messages?limit=20"),
                    "/v1/search/messages?q=rebuild".to_owned(),
                ] {
                    let res = api
                        .http
                        .get(format!("{}{path}", api.base))
                        .bearer_auth(&alice.token)
                        .send()
                        .await
                        .unwrap();
                    reads += 1;
                    let status = res.status().as_u16();
                    let body: Value = res.json().await.unwrap_or(Value::Null);
                    if status != 200 {
                        failed.push(format!("{path}: {status} {body}"));
                    } else if body["messages"]
                        .as_array()
                        .or(body["hits"].as_array())
                        .is_none_or(|a| a.is_empty())
                    {
                        empty += 1;
                    }
                }
            }
            (reads, failed, empty)
        }
    });

    let settings = common::projector_settings(&env, env.search_settings());
    let lines = projector::startup::rebuild(&settings, &[], &|_| {})
        .await
        .expect("chat rebuild --all");
    assert_eq!(lines.len(), 2, "{lines:?}");

    // The switch reaches the live client.
    let frames = ws
        .until(|f| f["type"] == "resync" && f["reason"] == "epoch")
        .await;
    assert_eq!(frames.last().unwrap()["room_id"], room.to_string());
    stop.store(true, Ordering::Relaxed);
    let during = sender.await.unwrap();
    let (reads, failed, empty) = reader.await.unwrap();
    assert!(reads > 0);
    assert_eq!(
        failed,
        Vec::<String>::new(),
        "reads or searches failed during the rebuild"
    );
    assert_eq!(empty, 0, "empty histories or searches of {reads}");
    assert!(!during.is_empty(), "messages sent during the rebuild");
    sent.extend(during.iter().map(|(b, _)| b.clone()));
    let after = "after the rebuild";
    let res = api.send_message(&alice, room, after).await;
    position = res.assert_status(201)["position"].as_i64().unwrap();
    sent.insert(after.to_owned());

    // Reloading as a client does after `resync`: the new epoch, and nothing missing.
    let (loaded, epoch) = history(&api, &alice, room, position).await;
    assert_eq!(epoch, "2");
    let live = ws.until(|f| test_support::ws::is_message(f, after)).await;
    let mut held: BTreeSet<String> = loaded.into_iter().collect();
    held.extend(
        frames
            .iter()
            .chain(&live)
            .filter(|f| f["type"] == "message_sent")
            .map(|f| f["data"]["body"].as_str().unwrap().to_owned()),
    );
    let missing: Vec<_> = sent.difference(&held).collect();
    assert!(missing.is_empty(), "lost after the rebuild: {missing:?}");

    server.stop().await;
    env.cleanup().await;
}
