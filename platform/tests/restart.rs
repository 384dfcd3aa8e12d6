//! A quick restart of PostgreSQL under the single node (a restart for a setting, a
//! fail-over): every connection the pools held dies with it. Right after it, reads
//! succeed at the first attempt (one that meets a dead pooled connection runs again on a
//! live one), a command is at worst a 503 `unavailable` with `Retry-After` (never a 500)
//! and succeeds when retried, and within 2 s the read models have caught up: no retry
//! loop is left waiting out a long back-off.
//!
//! The test owns its PostgreSQL (`test_support::OwnedPostgres`): the shared server is
//! never stopped.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use test_support::http::PASSWORD;
use test_support::{Api, TestEnv, unique};

/// How long every role may take to work again after PostgreSQL is back.
const RECOVERY: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_quick_restart_of_postgres_every_path_works_at_once_and_reads_catch_up_within_2_s()
{
    let Some(mut pg) = common::owned_postgres("restart").await else {
        return;
    };
    let env = TestEnv::on_own_server(&pg).await;
    let (server, api) = common::start(&env).await;
    let api = Api::new(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap(),
        api.base,
    );
    let (alice, bob, room) = common::two_in_a_room(&api).await;
    let position = api
        .send_message(&alice, room, "before")
        .await
        .assert_status(201)["position"]
        .as_i64()
        .unwrap();

    // Fill every pool with idle connections (they all die with the server).
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..48 {
        let (api, bob) = (api.clone(), bob.clone());
        burst.spawn(async move {
            let res = match i % 3 {
                0 => {
                    api.post(
                        "/v1/auth/login",
                        None,
                        json!({ "username": bob.username, "password": PASSWORD }),
                    )
                    .await
                }
                1 => api.send_message(&bob, room, &format!("burst {i}")).await,
                _ => {
                    api.request(
                        Method::GET,
                        &format!("/v1/rooms/{room}/messages?min_position={position}"),
                        Some(&bob.token),
                        None,
                        &[],
                    )
                    .await
                }
            };
            assert!((200..300).contains(&res.status), "{}", res.text);
        });
    }
    while let Some(done) = burst.join_next().await {
        done.unwrap();
    }

    // The restart: stopped and started again at once, nothing asked of the node meanwhile.
    let down = Instant::now();
    pg.stop_immediate().await.unwrap();
    pg.start().await.unwrap();
    let back_at = Instant::now();
    eprintln!("PostgreSQL restarted in {:?}", back_at.duration_since(down));

    // Every path, once, at once: the reads, a login, a registration, a send.
    let history = format!("/v1/rooms/{room}/messages");
    let username = format!("carol_{}", unique());
    let (read, rooms, me, login, register, first_send) = tokio::join!(
        api.request(Method::GET, &history, Some(&bob.token), None, &[]),
        api.request(Method::GET, "/v1/rooms", Some(&bob.token), None, &[]),
        api.request(Method::GET, "/v1/me", Some(&bob.token), None, &[]),
        api.post(
            "/v1/auth/login",
            None,
            json!({ "username": alice.username, "password": PASSWORD }),
        ),
        api.post(
            "/v1/auth/register",
            None,
            json!({ "username": username, "password": PASSWORD }),
        ),
        api.send_message(&alice, room, "after the restart"),
    );
    let first = [
        ("history", &read),
        ("rooms", &rooms),
        ("me", &me),
        ("login", &login),
        ("register", &register),
        ("send", &first_send),
    ];
    for (what, res) in &first {
        eprintln!(
            "first {what} after the restart: {} {}",
            res.status,
            res.text.chars().take(120).collect::<String>()
        );
    }
    let reads_failed: Vec<String> = first[..3]
        .iter()
        .filter(|(_, res)| res.status != 200)
        .map(|(what, res)| format!("{what}: {} {}", res.status, res.text))
        .collect();
    assert!(
        reads_failed.is_empty(),
        "the first reads after the restart failed: {reads_failed:?}"
    );
    for (what, res) in &first[3..] {
        if res.status == 503 {
            res.assert_error(503, "unavailable");
            assert!(
                res.headers.contains_key("retry-after"),
                "{what}: no Retry-After"
            );
        } else {
            assert!((200..300).contains(&res.status), "{what}: {}", res.text);
        }
    }
    let deadline = back_at + RECOVERY;
    // A command refused once works when retried (the same client_msg_id: at most once).
    let client_msg_id = uuid::Uuid::new_v4().to_string();
    let sent = loop {
        let res = api
            .post(
                &history,
                Some(&alice.token),
                json!({ "client_msg_id": client_msg_id, "body": "after the restart" }),
            )
            .await;
        if res.status == 201 {
            break res;
        }
        res.assert_error(503, "unavailable");
        assert!(
            Instant::now() < deadline,
            "no send succeeded within {RECOVERY:?} of the restart: {}",
            res.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let login = api
        .post(
            "/v1/auth/login",
            None,
            json!({ "username": alice.username, "password": PASSWORD }),
        )
        .await;
    login.assert_status(200);

    // The read models catch up: the message sent after the restart is read with its
    // position as min_position, by the other member, within RECOVERY.
    let position = sent.body["position"].as_i64().unwrap();
    loop {
        let res = api
            .request(
                Method::GET,
                &format!("{history}?min_position={position}"),
                Some(&bob.token),
                None,
                &[],
            )
            .await;
        if res.status == 200 {
            let bodies: Vec<&str> = res.body["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|m| m["body"].as_str())
                .collect();
            assert!(bodies.contains(&"after the restart"), "{bodies:?}");
            break;
        }
        assert_ne!(res.status, 500, "{}", res.text);
        assert!(
            Instant::now() < deadline,
            "the read models did not reach {position} within {RECOVERY:?} of the restart: {}",
            res.text
        );
    }
    let caught_up = back_at.elapsed();
    eprintln!("read models caught up {caught_up:?} after the restart");
    assert!(
        caught_up < RECOVERY,
        "the read models caught up only {caught_up:?} after the restart"
    );
    // Nothing changed for the projector's `/readyz` either.
    let ready = api.request(Method::GET, "/readyz", None, None, &[]).await;
    ready.assert_status(200);

    server.stop().await;
    env.cleanup().await;
    drop(pg);
}
