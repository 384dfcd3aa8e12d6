//! Erasure by crypto-shredding (issue #18, ADR 23): once a user is erased, their bodies,
//! names and attachment names are nowhere: not in history, search, the read models, the log's
//! plaintext, nor a full rebuild of the read models and the index. Everyone else's messages
//! are unchanged. Also: who may erase, rotation, and what the erased account can still do.

use crate::attachments::png;
use crate::helpers::{TestApp, unique};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use test_support::{DEADLINE, wait_until};
use uuid::Uuid;

/// Rows of the log whose stored payload contains `text`.
async fn in_log(app: &TestApp, text: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE data::text LIKE '%' || $1 || '%'")
        .bind(text)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

async fn hits(app: &TestApp, token: &str, q: &str) -> Vec<Value> {
    let res = app
        .get(&format!("/v1/search/messages?q={q}&sort=recent"), token)
        .await;
    res.assert_status(200)["hits"].as_array().unwrap().clone()
}

/// The bodies of the room's history, newest first.
async fn bodies(app: &TestApp, token: &str, room: Uuid) -> Vec<Value> {
    history(app, token, room)
        .await
        .into_iter()
        .map(|m| m["body"].clone())
        .collect()
}

async fn history(app: &TestApp, token: &str, room: Uuid) -> Vec<Value> {
    let res = app
        .get(&format!("/v1/rooms/{room}/messages?limit=100"), token)
        .await;
    res.assert_status(200)["messages"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn an_erased_users_bodies_and_names_are_gone_from_every_read_and_every_rebuild() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await; // the first user: an administrator
    let bob_name = format!("bob_{u}");
    let bob = app.register(&bob_name).await;
    let carol = app.register(&format!("carol_{u}")).await;
    let room = app.create_room(&alice, &format!("e-{u}"), "public").await;
    app.join(&bob, room).await.assert_status(200);
    app.join(&carol, room).await.assert_status(200);

    // Bob's personal values, each with a word found nowhere else.
    let (said, edited, file, shown) = (
        format!("bobsaid{u}"),
        format!("bobedited{u}"),
        format!("bobfile{u}"),
        format!("Bobshown{u}"),
    );
    let (first, _, _) = app.say(&bob, room, &format!("{said} one")).await;
    app.say(&bob, room, &format!("{said} two")).await;
    let upload = app
        .upload(&bob, room, &format!("{file}.png"), png(4, 4))
        .await;
    let attachment = upload.assert_status(201)["attachment_id"].clone();
    app.command(
        Method::POST,
        &format!("/v1/rooms/{room}/messages"),
        &bob.token,
        Some(json!({ "body": format!("{said} three"), "attachments": [attachment] })),
    )
    .await
    .assert_status(201);
    app.command(
        Method::PATCH,
        &format!("/v1/rooms/{room}/messages/{first}"),
        &bob.token,
        Some(json!({ "body": format!("{edited} one") })),
    )
    .await
    .assert_status(200);
    app.command(
        Method::PATCH,
        "/v1/me/profile",
        &bob.token,
        Some(json!({ "display_name": shown })),
    )
    .await
    .assert_status(200);
    let kept = format!("alicekeeps{u}");
    app.say(&alice, room, &format!("{kept} in reply")).await;
    app.say(&carol, room, &format!("{kept} too")).await;
    app.project().await;
    app.index().await;

    // Sealed: the log never held them in plain text; the read models and search do, for now.
    for secret in [&said, &edited, &file, &shown, &bob_name] {
        assert_eq!(in_log(&app, secret).await, 0, "{secret} in the log");
    }
    assert!(!app.in_read_models(&said).await.is_empty());
    // (The query-api's reader follows the index's commits by itself.)
    wait_until(
        DEADLINE,
        Duration::from_millis(20),
        "search never found bob's messages",
        || async { hits(&app, &carol.token, &said).await.len() == 2 },
    )
    .await;

    // "Erase me" needs one's own username typed again.
    let wrong = app
        .command(
            Method::POST,
            "/v1/me/erase",
            &bob.token,
            Some(json!({ "confirm_username": "someone" })),
        )
        .await;
    wrong.assert_error(422, "confirmation_mismatch");
    let erased = app
        .command(
            Method::POST,
            "/v1/me/erase",
            &bob.token,
            Some(json!({ "confirm_username": bob_name })),
        )
        .await;
    let body = erased.assert_status(200);
    assert_eq!(body["keys_shredded"], 1, "{body}");
    app.project().await;
    app.index().await;

    let check = |stage: &'static str| {
        let app = &app;
        let (said, edited, file, shown, bob_name, kept) =
            (&said, &edited, &file, &shown, &bob_name, &kept);
        let (carol, bob_id) = (&carol, bob.id);
        async move {
            for secret in [said, edited, file, shown, bob_name] {
                assert_eq!(in_log(app, secret).await, 0, "{stage}: {secret} in the log");
                assert_eq!(
                    app.in_read_models(secret).await,
                    Vec::<String>::new(),
                    "{stage}: {secret} in the read models"
                );
            }
            // The reader shows the index's newest commit once the secrets are gone from it
            // (they were found before) and everyone else's messages are found.
            wait_until(
                DEADLINE,
                Duration::from_millis(20),
                "search still finds an erased value, or lost someone else's",
                || async {
                    for secret in [said, edited, file, shown, bob_name] {
                        if !hits(app, &carol.token, secret).await.is_empty() {
                            return false;
                        }
                    }
                    hits(app, &carol.token, kept).await.len() == 2
                },
            )
            .await;
            let messages = history(app, &carol.token, room).await;
            let bobs: Vec<&Value> = messages
                .iter()
                .filter(|m| m["sender_id"] == bob_id.to_string())
                .collect();
            assert_eq!(bobs.len(), 3, "{stage}: {messages:?}");
            for m in &bobs {
                assert_eq!(m["body"], "[erased]", "{stage}: {m}");
            }
            // Bob left no name: the member list shows what stands for it.
            let res = app
                .get(&format!("/v1/rooms/{room}/members"), &carol.token)
                .await;
            let members = res.assert_status(200).to_string();
            let me = res.body["members"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["user_id"] == bob_id.to_string())
                .unwrap_or_else(|| panic!("{stage}: bob not in {members}"));
            assert_eq!(me["display_name"], "[erased]", "{stage}: {me}");
            assert_eq!(
                me["username"],
                vault::erased_username(bob_id),
                "{stage}: {me}"
            );
            let names: Vec<&Value> = bobs
                .iter()
                .flat_map(|m| m["attachments"].as_array().into_iter().flatten())
                .map(|a| &a["name"])
                .collect();
            assert_eq!(names, vec!["[erased]"], "{stage}");
            // Everyone else's messages are as they were, and still found.
            let others: Vec<&str> = messages
                .iter()
                .filter(|m| m["sender_id"] != bob_id.to_string())
                .filter_map(|m| m["body"].as_str())
                .filter(|b| b.contains(kept.as_str()))
                .collect();
            assert_eq!(others.len(), 2, "{stage}: {messages:?}");
        }
    };
    check("live").await;

    // A full rebuild of the read models and of the index, from the log: nothing comes back,
    // and the rebuilt read models are the live ones, row for row.
    app.rebuild_all().await;
    check("rebuilt").await;

    // Erasing oneself is not an administrator's action: the audit does not list it.
    let res = app.get("/v1/admin/audit", &alice.token).await;
    assert_eq!(res.assert_status(200)["entries"], json!([]));

    // The erased account: its token refused, its old name free for someone new.
    let res = app.get("/v1/rooms", &bob.token).await;
    res.assert_error(401, "token_revoked");
    let again = app.register(&bob_name).await;
    assert_ne!(again.id, bob.id);
    app.cleanup().await;
}

#[tokio::test]
async fn administrators_erase_others_and_rotate_keys_without_rewriting_the_log() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await; // an administrator
    let bob = app.register(&format!("bob_{u}")).await;
    let carol = app.register(&format!("carol_{u}")).await;
    let room = app.create_room(&alice, &format!("k-{u}"), "public").await;
    app.join(&bob, room).await.assert_status(200);
    app.say(&bob, room, &format!("before{u}")).await;

    // Who may: administrators only, never on themselves, only on someone who exists.
    let erase = |who: Uuid| format!("/v1/admin/users/{who}/erase");
    let rotate = |who: Uuid| format!("/v1/admin/users/{who}/rotate-key");
    for path in [erase(bob.id), rotate(bob.id)] {
        let res = app.command(Method::POST, &path, &carol.token, None).await;
        res.assert_error(403, "not_an_admin");
    }
    let res = app
        .command(Method::POST, &erase(alice.id), &alice.token, None)
        .await;
    res.assert_error(422, "cannot_target_self");
    for path in [erase(Uuid::now_v7()), rotate(Uuid::now_v7())] {
        let res = app.command(Method::POST, &path, &alice.token, None).await;
        res.assert_error(404, "user_not_found");
    }

    // A rotation: new values under version 2, old ones still open with version 1.
    let res = app
        .command(Method::POST, &rotate(bob.id), &alice.token, None)
        .await;
    assert_eq!(res.assert_status(200)["version"], 2);
    app.say(&bob, room, &format!("after{u}")).await;
    let versions: Vec<String> = sqlx::query_scalar(
        "SELECT split_part(data->'body'->>'sealed', '.', 3) FROM events
         WHERE event_type = 'MessageSent' AND stream_id = $1 ORDER BY position",
    )
    .bind(format!("room-{room}"))
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(versions, ["1", "2"]);
    app.project().await;
    assert_eq!(
        bodies(&app, &alice.token, room).await,
        [json!(format!("after{u}")), json!(format!("before{u}"))]
    );

    // Erased by an administrator: both versions shredded, once.
    let res = app
        .command(Method::POST, &erase(bob.id), &alice.token, None)
        .await;
    assert_eq!(res.assert_status(200)["keys_shredded"], 2);
    let res = app
        .command(Method::POST, &erase(bob.id), &alice.token, None)
        .await;
    let again = res.assert_status(200);
    assert_eq!(again["keys_shredded"], 0);
    assert_eq!(again["position"], Value::Null);
    let res = app
        .command(Method::POST, &rotate(bob.id), &alice.token, None)
        .await;
    res.assert_error(403, "account_erased");
    app.project().await;
    assert_eq!(
        bodies(&app, &alice.token, room).await,
        [json!("[erased]"), json!("[erased]")]
    );
    // The administrator's erasure is in the audit, with the deactivation it implied.
    let res = app.get("/v1/admin/audit", &alice.token).await;
    let types: Vec<(Value, Value)> = res.assert_status(200)["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].clone(), e["user_id"].clone()))
        .collect();
    let bob_id = json!(bob.id.to_string());
    assert_eq!(
        types,
        [
            (json!("user_erased"), bob_id.clone()),
            (json!("user_deactivated"), bob_id)
        ]
    );
    // Names of erased users are reserved.
    let taken = app
        .http
        .post(format!("{}/v1/auth/register", app.command_base()))
        .json(&json!({ "username": vault::erased_username(Uuid::now_v7()),
                       "password": "a long enough password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), 409);
    let body: Value = taken.json().await.unwrap();
    assert_eq!(body["error"]["code"], "username_taken");
    app.cleanup().await;
}
