//! Server administration reads (issue #18): the first user registered and those named in
//! `APP_ADMIN_USERNAMES` are administrators; everyone else gets 403 `not_an_admin`.

use crate::helpers::{TestApp, TestUser, position, unique};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn only_server_administrators_read_the_stats() {
    let u = unique();
    let named = format!("carol_{u}");
    let admins = named.clone();
    let app = TestApp::spawn_with(move |s| s.admin_usernames = format!(" nobody , {admins}")).await;
    // Each test has its own database: the first user registered is alice.
    let alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    let carol = app.register(&named).await;
    let room = app.create_room(&alice, &format!("s-{u}"), "public").await;
    app.join(&bob, room).await.assert_status(200);
    for i in 0..3 {
        app.say(&bob, room, &format!("m{i}")).await;
    }
    app.project().await;

    for admin in [&alice, &carol] {
        let res = app.get("/v1/admin/stats", &admin.token).await;
        let stats = res.assert_status(200);
        assert_eq!(stats["users"], 3, "{stats}");
        assert_eq!(stats["rooms"], 1);
        assert_eq!(stats["messages"], 3);
        assert!(
            stats["events_per_second"].as_f64().unwrap() > 0.0,
            "{stats}"
        );
        let head = stats["log_head"].as_i64().unwrap();
        let projections = stats["projections"].as_array().unwrap();
        let read_models = projections
            .iter()
            .find(|p| p["projection"] == "read_models")
            .expect("read_models");
        assert_eq!(read_models["lag"], 0, "projected up to {head}: {stats}");
    }
    let res = app.get("/v1/admin/stats", &bob.token).await;
    res.assert_error(403, "not_an_admin");
    let res = app.get_with("/v1/admin/stats", None, &[]).await;
    assert_eq!(res.status, 401);
    app.cleanup().await;
}

/// `method path` on the command API as `user`, expecting 200.
async fn command_ok(
    app: &TestApp,
    user: &TestUser,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let res = app.command(method, path, &user.token, body).await;
    res.assert_status(200).clone()
}

#[tokio::test]
async fn the_audit_pages_what_administrators_did_newest_first_and_a_rebuild_reproduces_it() {
    let u = unique();
    let app = TestApp::spawn().await;
    let alice = app.register(&format!("alice_{u}")).await; // the first user: an administrator
    let bob = app.register(&format!("bob_{u}")).await;
    let dave = app.register(&format!("dave_{u}")).await;
    let eve = app.register(&format!("eve_{u}")).await;
    let room = app.create_room(&bob, &format!("a-{u}"), "private").await;
    app.invite(&bob, room, &dave).await.assert_status(200);
    app.join(&dave, room).await.assert_status(200);
    let (message, _, _) = app.say(&dave, room, "spam").await;
    // The room's own moderation is not the administrators' audit.
    app.command(
        Method::PUT,
        &format!("/v1/rooms/{room}/members/{}/role", dave.id),
        &bob.token,
        Some(json!({ "role": "admin" })),
    )
    .await
    .assert_status(200);
    app.command(
        Method::POST,
        &format!("/v1/rooms/{room}/bans"),
        &bob.token,
        Some(json!({ "user_id": eve.id })),
    )
    .await
    .assert_status(200);

    let role = command_ok(
        &app,
        &alice,
        Method::PUT,
        &format!("/v1/admin/rooms/{room}/members/{}/role", dave.id),
        Some(json!({ "role": "member" })),
    )
    .await;
    let deleted = command_ok(
        &app,
        &alice,
        Method::DELETE,
        &format!("/v1/admin/rooms/{room}/messages/{message}"),
        None,
    )
    .await;
    let banned = command_ok(
        &app,
        &alice,
        Method::POST,
        &format!("/v1/admin/rooms/{room}/bans"),
        Some(json!({ "user_id": dave.id })),
    )
    .await;
    let unbanned = command_ok(
        &app,
        &alice,
        Method::DELETE,
        &format!("/v1/admin/rooms/{room}/bans/{}", eve.id),
        None,
    )
    .await;
    let deactivated = command_ok(
        &app,
        &alice,
        Method::POST,
        &format!("/v1/admin/users/{}/deactivate", eve.id),
        None,
    )
    .await;
    let last = position(&deactivated);
    app.project().await;
    let read = |path: String| {
        let app = &app;
        let token = alice.token.clone();
        async move {
            app.get_with(
                &path,
                Some(&token),
                &[("X-Min-Position", &last.to_string())],
            )
            .await
        }
    };

    let res = read("/v1/admin/audit".into()).await;
    let page = res.assert_status(200);
    let entries = page["entries"].as_array().unwrap();
    let summary: Vec<(i64, &str)> = entries
        .iter()
        .map(|e| (e["position"].as_i64().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (last, "user_deactivated"),
            (position(&unbanned), "member_unbanned"),
            (position(&banned), "member_banned"),
            (position(&deleted), "message_deleted"),
            (position(&role), "member_role_changed"),
        ],
        "{page}"
    );
    assert!(page["next_before"].is_null());
    for e in entries {
        assert_eq!(e["actor_id"], alice.id.to_string(), "{e}");
        assert!(chrono::DateTime::parse_from_rfc3339(e["occurred_at"].as_str().unwrap()).is_ok());
    }
    let (deactivation, unban, ban, delete, change) = (
        &entries[0],
        &entries[1],
        &entries[2],
        &entries[3],
        &entries[4],
    );
    assert_eq!(deactivation["user_id"], eve.id.to_string());
    assert!(deactivation["room_id"].is_null());
    assert_eq!(unban["user_id"], eve.id.to_string());
    assert_eq!(ban["user_id"], dave.id.to_string());
    assert_eq!(ban["room_id"], room.to_string());
    assert_eq!(delete["message_id"], message.to_string());
    assert_eq!(delete["room_id"], room.to_string());
    assert!(delete["user_id"].is_null());
    assert_eq!(change["role"], "member");
    assert_eq!(change["user_id"], dave.id.to_string());

    // Pages of two, by the cursor, cover the same entries once each.
    let mut seen = Vec::new();
    let mut path = "/v1/admin/audit?limit=2".to_owned();
    loop {
        let res = read(path.clone()).await;
        let page = res.assert_status(200);
        let n = page["entries"].as_array().unwrap().len();
        assert!(n <= 2, "{page}");
        seen.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_before"].as_i64() {
            Some(before) => path = format!("/v1/admin/audit?limit=2&before={before}"),
            None => break,
        }
    }
    assert_eq!(&seen, entries);

    // Bad input is a 400 in the error shape.
    for bad in [
        "limit=0",
        "limit=201",
        "limit=-3",
        "limit=abc",
        "before=0",
        "before=-1",
        "before=x",
    ] {
        read(format!("/v1/admin/audit?{bad}"))
            .await
            .assert_error(400, "invalid_query");
    }
    read("/v1/admin/audit?limit=200".into())
        .await
        .assert_status(200);

    // The trail is the log: rebuilt from it, it is the same.
    projector::Projection::reset(&projector::ReadModels::new(app.db.pool.clone()))
        .await
        .unwrap();
    app.project().await;
    let again = read("/v1/admin/audit".into()).await;
    assert_eq!(again.assert_status(200)["entries"], page["entries"]);
    app.cleanup().await;
}

#[tokio::test]
async fn every_admin_read_refuses_a_non_administrator_with_403_not_an_admin() {
    let u = unique();
    let app = TestApp::spawn().await;
    let _alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    app.project().await;
    for path in [
        "/v1/admin/stats",
        "/v1/admin/audit",
        "/v1/admin/audit?limit=0",
    ] {
        app.get(path, &bob.token)
            .await
            .assert_error(403, "not_an_admin");
        let res = app.get_with(path, None, &[]).await;
        assert_eq!(res.status, 401, "{path}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn room_bans_are_listed_to_its_moderators_and_server_administrators_only() {
    let u = unique();
    let app = TestApp::spawn().await;
    let alice = app.register(&format!("alice_{u}")).await; // a server administrator
    let bob = app.register(&format!("bob_{u}")).await; // the owner
    let carol = app.register(&format!("carol_{u}")).await; // a room admin
    let dave = app.register(&format!("dave_{u}")).await; // banned
    let erin = app.register(&format!("erin_{u}")).await; // banned before she came
    let frank = app.register(&format!("frank_{u}")).await; // a plain member
    let room = app.create_room(&bob, &format!("b-{u}"), "public").await;
    let hidden = app.create_room(&bob, &format!("h-{u}"), "private").await;
    for m in [&carol, &dave, &frank] {
        app.join(m, room).await.assert_status(200);
    }
    app.command(
        Method::PUT,
        &format!("/v1/rooms/{room}/members/{}/role", carol.id),
        &bob.token,
        Some(json!({ "role": "admin" })),
    )
    .await
    .assert_status(200);
    for (by, who) in [(&bob, &erin), (&carol, &dave)] {
        app.command(
            Method::POST,
            &format!("/v1/rooms/{room}/bans"),
            &by.token,
            Some(json!({ "user_id": who.id })),
        )
        .await
        .assert_status(200);
    }
    app.project().await;

    for moderator in [&bob, &carol, &alice] {
        let res = app
            .get(&format!("/v1/rooms/{room}/bans"), &moderator.token)
            .await;
        let bans = res.assert_status(200)["bans"].as_array().unwrap().clone();
        let who: Vec<&str> = bans
            .iter()
            .map(|b| b["user_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            who,
            [dave.id.to_string(), erin.id.to_string()],
            "newest first"
        );
        assert_eq!(bans[0]["banned_by"], carol.id.to_string());
        assert_eq!(bans[0]["username"], dave.username);
        assert!(bans[0]["position"].as_i64().unwrap() > bans[1]["position"].as_i64().unwrap());
    }
    app.get(&format!("/v1/rooms/{room}/bans"), &frank.token)
        .await
        .assert_error(403, "forbidden");
    // The banned are outsiders now.
    app.get(&format!("/v1/rooms/{room}/bans"), &dave.token)
        .await
        .assert_error(403, "not_a_member");
    app.get(&format!("/v1/rooms/{hidden}/bans"), &frank.token)
        .await
        .assert_error(404, "room_not_found");
    app.get(&format!("/v1/rooms/{hidden}/bans"), &alice.token)
        .await
        .assert_status(200);
    app.get(
        &format!("/v1/rooms/{}/bans", uuid::Uuid::now_v7()),
        &alice.token,
    )
    .await
    .assert_error(404, "room_not_found");
    // The members list no longer has dave; unbanned, the list forgets him.
    let members = app
        .get(&format!("/v1/rooms/{room}/members"), &bob.token)
        .await;
    assert!(
        !members.text.contains(&dave.id.to_string()),
        "{}",
        members.text
    );
    app.command(
        Method::DELETE,
        &format!("/v1/rooms/{room}/bans/{}", dave.id),
        &bob.token,
        None,
    )
    .await
    .assert_status(200);
    app.project().await;
    let res = app.get(&format!("/v1/rooms/{room}/bans"), &bob.token).await;
    let bans = res.assert_status(200)["bans"].as_array().unwrap().clone();
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0]["user_id"], erin.id.to_string());
    app.cleanup().await;
}
