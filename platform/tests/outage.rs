//! A PostgreSQL outage under the single node: while the database is down every path
//! answers 503 `unavailable` with `Retry-After` (never a 500) and `/readyz` answers 503
//! promptly; within 2 s of its return commands succeed, the read models catch up, and
//! nothing acknowledged is lost or duplicated.
//!
//! The test owns its PostgreSQL (`test_support::OwnedPostgres`): the shared server is
//! never stopped.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use test_support::{Api, Res, TestEnv, TestUser, unique};

/// How long every role may take to work again after PostgreSQL is back.
const RECOVERY: Duration = Duration::from_secs(2);
/// How long PostgreSQL stays down.
const OUTAGE: Duration = Duration::from_secs(12);
/// How long `/readyz` may take to say 503 while PostgreSQL is down.
const READYZ_WITHIN: Duration = Duration::from_secs(2);
/// A client's patience for any one request here (well above the server's own bounds).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// One request of the probe: what came back and how long it took.
struct Probe {
    what: &'static str,
    res: Res,
    took: Duration,
}

async fn timed(what: &'static str, req: impl std::future::Future<Output = Res>) -> Probe {
    let started = Instant::now();
    let res = req.await;
    Probe {
        what,
        res,
        took: started.elapsed(),
    }
}

fn send_body(client_msg_id: &str, body: &str) -> Value {
    json!({ "client_msg_id": client_msg_id, "body": body })
}

/// Every kind of request the outage must not turn into a 500: a send, login, register,
/// the reads, and `/readyz`.
async fn probe_every_path(
    api: &Api,
    user: &TestUser,
    room: uuid::Uuid,
    client_msg_id: &str,
) -> Vec<Probe> {
    let send_path = format!("/v1/rooms/{room}/messages");
    let history = format!("/v1/rooms/{room}/messages");
    let username = format!("late_{}", unique());
    let (send, login, register, history, rooms, me, readyz) = tokio::join!(
        timed(
            "send",
            api.post(
                &send_path,
                Some(&user.token),
                send_body(client_msg_id, client_msg_id),
            )
        ),
        timed(
            "login",
            api.post(
                "/v1/auth/login",
                None,
                json!({ "username": user.username, "password": test_support::http::PASSWORD }),
            )
        ),
        timed(
            "register",
            api.post(
                "/v1/auth/register",
                None,
                json!({ "username": username, "password": test_support::http::PASSWORD }),
            )
        ),
        timed(
            "history",
            api.request(Method::GET, &history, Some(&user.token), None, &[])
        ),
        timed(
            "rooms",
            api.request(Method::GET, "/v1/rooms", Some(&user.token), None, &[])
        ),
        timed(
            "me",
            api.request(Method::GET, "/v1/me", Some(&user.token), None, &[])
        ),
        timed(
            "readyz",
            api.request(Method::GET, "/readyz", None, None, &[])
        ),
    );
    vec![send, login, register, history, rooms, me, readyz]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgres_is_down_every_path_is_a_503_and_within_2_s_of_its_return_all_works() {
    // `RUST_LOG=warn` (for example) shows what the roles went through.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
    let Some(mut pg) = common::owned_postgres("outage").await else {
        return;
    };
    let env = TestEnv::on_own_server(&pg).await;
    let (server, api) = common::start(&env).await;
    let api = Api::new(
        reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .build()
            .unwrap(),
        api.base,
    );

    // Some work first: two users, a room, messages, reads, so every pool holds
    // connections that the outage will kill.
    let (alice, bob, room) = common::two_in_a_room(&api).await;
    let mut acked: Vec<String> = Vec::new();
    let mut last_position = 0;
    for i in 0..5 {
        let body = format!("before-{i}");
        let res = api
            .post(
                &format!("/v1/rooms/{room}/messages"),
                Some(&alice.token),
                send_body(&body, &body),
            )
            .await;
        last_position = res.assert_status(201)["position"].as_i64().unwrap();
        acked.push(body);
    }
    let page = api
        .request(
            Method::GET,
            &format!("/v1/rooms/{room}/messages?min_position={last_position}"),
            Some(&bob.token),
            None,
            &[],
        )
        .await;
    assert_eq!(
        page.assert_status(200)["messages"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // A burst of concurrent work, so that every pool holds as many idle connections as
    // it may: each of them dies with the server.
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..48 {
        let api = api.clone();
        let bob = bob.clone();
        burst.spawn(async move {
            match i % 3 {
                0 => api
                    .post(
                        "/v1/auth/login",
                        None,
                        json!({ "username": bob.username, "password": test_support::http::PASSWORD }),
                    )
                    .await
                    .assert_status(200)
                    .clone(),
                1 => api
                    .request(Method::GET, "/v1/rooms", Some(&bob.token), None, &[])
                    .await
                    .assert_status(200)
                    .clone(),
                _ => api
                    .request(
                        Method::GET,
                        &format!("/v1/rooms/{room}/messages?min_position={last_position}"),
                        Some(&bob.token),
                        None,
                        &[],
                    )
                    .await
                    .assert_status(200)
                    .clone(),
            }
        });
    }
    while let Some(done) = burst.join_next().await {
        done.unwrap();
    }

    // A writer that keeps sending through the outage and the return; PostgreSQL stops
    // under its load, so the relay and the projector have work in flight when it goes.
    let stop_writing = Arc::new(AtomicBool::new(false));
    let acked_by_writer = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn({
        let (api, alice, stop, acked) = (
            api.clone(),
            alice.clone(),
            stop_writing.clone(),
            acked_by_writer.clone(),
        );
        async move {
            let mut outcomes: Vec<(String, u16, String)> = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("w-{n}");
                n += 1;
                let res = api
                    .post(
                        &format!("/v1/rooms/{room}/messages"),
                        Some(&alice.token),
                        send_body(&id, &id),
                    )
                    .await;
                if res.status == 201 {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                outcomes.push((id, res.status, res.text));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            outcomes
        }
    });
    test_support::wait_until(
        test_support::DEADLINE,
        Duration::from_millis(5),
        "the writer got going",
        || async { acked_by_writer.load(Ordering::Relaxed) >= 20 },
    )
    .await;

    // The outage.
    pg.stop_immediate().await.unwrap();
    let down_at = Instant::now();
    eprintln!("PostgreSQL stopped");

    // Twice: the first round meets the connections the stop killed, the second (at the
    // end of the outage) the refused new ones.
    let mut during: Vec<String> = Vec::new();
    let mut times: HashMap<&str, Vec<Duration>> = HashMap::new();
    for round in 0..2 {
        if round == 1 {
            // Long enough for every retry loop to back off as far as it goes.
            tokio::time::sleep_until((down_at + OUTAGE).into()).await;
        }
        let id = format!("during-{round}");
        let probes = probe_every_path(&api, &alice, room, &id).await;
        during.push(id);
        for p in probes {
            eprintln!(
                "down, round {round}: {:<8} {} {:>6} ms {}",
                p.what,
                p.res.status,
                p.took.as_millis(),
                p.res.text
            );
            times.entry(p.what).or_default().push(p.took);
            assert_ne!(p.res.status, 500, "{} answered 500: {}", p.what, p.res.text);
            if p.what == "readyz" {
                assert_eq!(p.res.status, 503, "readyz: {}", p.res.text);
                assert!(
                    p.took < READYZ_WITHIN,
                    "readyz took {:?} to answer while PostgreSQL is down",
                    p.took
                );
            } else {
                p.res.assert_error(503, "unavailable");
                assert_eq!(
                    p.res
                        .headers
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap()),
                    Some("1"),
                    "{} without Retry-After",
                    p.what
                );
            }
        }
    }
    eprintln!(
        "time to 503 while down (ms): {:?}",
        times
            .iter()
            .map(|(k, v)| (*k, v.iter().map(Duration::as_millis).collect::<Vec<_>>()))
            .collect::<Vec<_>>()
    );

    // PostgreSQL returns.
    pg.start().await.unwrap();
    let back_at = Instant::now();
    eprintln!(
        "PostgreSQL back after {:?} down",
        back_at.duration_since(down_at)
    );

    // Within RECOVERY: a send (retried with the same client_msg_id, so at most once),
    // and the read models show it to another member (read-your-writes).
    let deadline = back_at + RECOVERY;
    let mut first_answers: Vec<(u16, String)> = Vec::new();
    let after = "after-return".to_owned();
    let position = loop {
        let res = api
            .post(
                &format!("/v1/rooms/{room}/messages"),
                Some(&alice.token),
                send_body(&after, &after),
            )
            .await;
        first_answers.push(res.outcome());
        assert_ne!(
            res.status, 500,
            "a send after the return got 500: {}",
            res.text
        );
        if res.status == 201 {
            break res.body["position"].as_i64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no send succeeded within {RECOVERY:?} of PostgreSQL's return: {first_answers:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let sent_after = back_at.elapsed();
    acked.push(after.clone());
    loop {
        let res = api
            .request(
                Method::GET,
                &format!("/v1/rooms/{room}/messages?min_position={position}"),
                Some(&bob.token),
                None,
                &[],
            )
            .await;
        assert_ne!(
            res.status, 500,
            "a read after the return got 500: {}",
            res.text
        );
        if res.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the read models did not reach {position} within {RECOVERY:?} of PostgreSQL's \
             return: {}",
            res.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let read_after = back_at.elapsed();
    // Every other path works again too, first time.
    let probes = probe_every_path(&api, &alice, room, "during-0").await;
    for p in &probes {
        eprintln!(
            "back: {:<8} {} {:>6} ms",
            p.what,
            p.res.status,
            p.took.as_millis()
        );
        assert!(
            (200..300).contains(&p.res.status),
            "{} after the return: {}",
            p.what,
            p.res.text
        );
    }
    let all_after = back_at.elapsed();
    eprintln!(
        "recovery: send ok after {} ms, read with min_position after {} ms, \
         every path after {} ms; first answers: {first_answers:?}",
        sent_after.as_millis(),
        read_after.as_millis(),
        all_after.as_millis()
    );
    assert!(
        all_after < RECOVERY,
        "every path worked only after {all_after:?}"
    );

    stop_writing.store(true, Ordering::Relaxed);
    let outcomes = writer.await.unwrap();
    let mut refused = 0;
    for (id, status, text) in &outcomes {
        match status {
            201 => acked.push(id.clone()),
            503 => {
                refused += 1;
                during.push(id.clone());
            }
            _ => panic!("the writer's {id} got {status}: {text}"),
        }
    }
    eprintln!(
        "the writer sent {} messages: {} acknowledged, {refused} refused with 503",
        outcomes.len(),
        outcomes.len() - refused
    );

    // The sends refused during the outage, retried with their client_msg_id: each lands
    // once (also one whose commit made it but whose answer did not). Then the history holds every acknowledged message exactly once, in order, and
    // the other member's unread count agrees.
    for id in &during {
        let res = api
            .post(
                &format!("/v1/rooms/{room}/messages"),
                Some(&alice.token),
                send_body(id, id),
            )
            .await;
        let body = res.body.clone();
        assert!(
            res.status == 201 || res.status == 200,
            "retry of {id}: {}",
            res.text
        );
        let p = body["position"].as_i64().unwrap();
        if !acked.contains(id) {
            acked.push(id.clone());
        }
        last_position = last_position.max(p);
    }
    let mut messages: Vec<Value> = Vec::new();
    loop {
        let after_seq = messages.last().map_or(0, |m| m["seq"].as_i64().unwrap());
        let page = api
            .request(
                Method::GET,
                &format!(
                    "/v1/rooms/{room}/messages?after_seq={after_seq}&limit=100\
                     &min_position={last_position}"
                ),
                Some(&bob.token),
                None,
                &[],
            )
            .await;
        let got = page.assert_status(200)["messages"]
            .as_array()
            .unwrap()
            .clone();
        if got.is_empty() {
            break;
        }
        messages.extend(got);
    }
    let bodies: Vec<&str> = messages
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    let seqs: Vec<i64> = messages
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    let mut seen = std::collections::HashSet::new();
    let duplicated: Vec<&&str> = bodies.iter().filter(|b| !seen.insert(**b)).collect();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|a| !bodies.contains(&a.as_str()))
        .collect();
    let unknown: Vec<&&str> = bodies
        .iter()
        .filter(|b| !acked.iter().any(|a| a == **b))
        .collect();
    assert!(
        duplicated.is_empty() && missing.is_empty() && unknown.is_empty(),
        "duplicated {duplicated:?}, missing {missing:?}, never acknowledged {unknown:?}"
    );
    assert_eq!(
        seqs,
        (1..=acked.len() as i64).collect::<Vec<_>>(),
        "{bodies:?}"
    );
    let mut got: Vec<&str> = bodies.clone();
    got.sort_unstable();
    let mut want: Vec<&str> = acked.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(got, want, "every acknowledged message once, nothing else");
    let rooms = api
        .request(
            Method::GET,
            &format!("/v1/rooms?min_position={last_position}"),
            Some(&bob.token),
            None,
            &[],
        )
        .await;
    let mine = rooms.assert_status(200)["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room_id"] == json!(room))
        .cloned()
        .unwrap();
    assert_eq!(mine["unread_count"], json!(acked.len()), "{mine}");
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE stream_id = $1 AND event_type = 'MessageSent'",
    )
    .bind(format!("room-{room}"))
    .fetch_one(&env.db.pool)
    .await
    .unwrap();
    assert_eq!(events, acked.len() as i64, "MessageSent events in the log");

    server.stop().await;
    env.cleanup().await;
    drop(pg);
}
