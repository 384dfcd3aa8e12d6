//! Message retention (issue #18): messages older than their room's retention period (its own,
//! else the server's default) disappear from history, search, unread counts and mentions, by
//! a `MessagesExpired` the retention job appends, so a full rebuild from the log expires them
//! again. Who may set a period, and what an expired message can no longer be.

use crate::attachments::png;
use crate::helpers::{TestApp, TestUser, unique};
use chrono::{DateTime, Duration as Days, Utc};
use command_api::retention::{Pass, expire_once};
use events::RoomId;
use events::retention::RetentionDays;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use test_support::{DEADLINE, wait_until};
use uuid::Uuid;

async fn set_retention(
    app: &TestApp,
    who: &TestUser,
    room: Uuid,
    days: Value,
) -> crate::helpers::Res {
    app.command(
        Method::PUT,
        &format!("/v1/rooms/{room}/retention"),
        &who.token,
        Some(json!({ "days": days })),
    )
    .await
}

async fn hits(app: &TestApp, token: &str, q: &str) -> usize {
    let res = app
        .get(&format!("/v1/search/messages?q={q}&sort=recent"), token)
        .await;
    res.assert_status(200)["hits"].as_array().unwrap().len()
}

/// The bodies of the room's history, oldest first.
async fn bodies(app: &TestApp, token: &str, room: Uuid) -> Vec<String> {
    let res = app
        .get(&format!("/v1/rooms/{room}/messages?limit=100"), token)
        .await;
    let mut out: Vec<String> = res.assert_status(200)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap_or("").to_owned())
        .collect();
    out.reverse();
    out
}

async fn pass(app: &TestApp, default: Option<u32>, now: DateTime<Utc>) -> Pass {
    let default = default.map(|d| RetentionDays::parse(d).unwrap());
    expire_once(&app.command_state, default, now).await.unwrap()
}

#[tokio::test]
async fn messages_past_a_rooms_retention_disappear_from_every_read_and_every_rebuild() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    let carol_name = format!("carol_{u}");
    let carol = app.register(&carol_name).await;
    let room = app.create_room(&alice, &format!("r-{u}"), "public").await;
    app.join(&bob, room).await.assert_status(200);
    app.join(&carol, room).await.assert_status(200);

    // Three old messages (one mentions carol, one carries a file, one has a reaction and an
    // edit), then the moment they become old, then two new ones.
    let old = format!("oldword{u}");
    let new = format!("newword{u}");
    let (first, _, _) = app.say(&bob, room, &format!("{old} one")).await;
    app.say(&bob, room, &format!("{old} two @{carol_name}"))
        .await;
    let upload = app.upload(&bob, room, "old.png", png(4, 4)).await;
    let attachment = upload.assert_status(201)["attachment_id"].clone();
    app.command(
        Method::POST,
        &format!("/v1/rooms/{room}/messages"),
        &bob.token,
        Some(json!({ "body": format!("{old} three"), "attachments": [attachment] })),
    )
    .await
    .assert_status(201);
    app.command(
        Method::PUT,
        &format!("/v1/rooms/{room}/messages/{first}/reactions/%F0%9F%91%8D"),
        &alice.token,
        None,
    )
    .await
    .assert_status(200);
    let cutoff = Utc::now();
    app.say(&bob, room, &format!("{new} four")).await;
    app.say(&alice, room, &format!("{new} five")).await;

    // Who may set the period: the room's owner and admins; a value from 1 to 36500 days.
    set_retention(&app, &bob, room, json!(30))
        .await
        .assert_error(403, "forbidden");
    let outsider = app.register(&format!("dave_{u}")).await;
    let gone = app.register(&format!("erin_{u}")).await;
    let kicked = app.register(&format!("frank_{u}")).await;
    for who in [&gone, &kicked] {
        app.join(who, room).await.assert_status(200);
    }
    app.leave(&gone, room).await.assert_status(200);
    app.kick(&alice, room, &kicked).await.assert_status(200);
    for who in [&outsider, &gone, &kicked] {
        set_retention(&app, who, room, json!(30))
            .await
            .assert_error(403, "not_a_member");
    }
    let private = app.create_room(&alice, &format!("p-{u}"), "private").await;
    set_retention(&app, &outsider, private, json!(30))
        .await
        .assert_error(404, "room_not_found");
    // A room admin may, as the owner may.
    let admin = app.register(&format!("gus_{u}")).await;
    app.join(&admin, room).await.assert_status(200);
    app.command(
        Method::PUT,
        &format!("/v1/rooms/{room}/members/{}/role", admin.id),
        &alice.token,
        Some(json!({ "role": "admin" })),
    )
    .await
    .assert_status(200);
    set_retention(&app, &admin, room, json!(60))
        .await
        .assert_status(200);
    for bad in [json!(0), json!(36_501), json!(-1), json!("30")] {
        let res = set_retention(&app, &alice, room, bad.clone()).await;
        assert_eq!(res.status, 400, "{bad}: {}", res.body);
    }
    let direct = app.open_direct(&alice, &bob).await;
    set_retention(&app, &alice, direct, json!(30))
        .await
        .assert_error(409, "direct_room");
    let set = set_retention(&app, &alice, room, json!(30)).await;
    let body = set.assert_status(200);
    assert_eq!(body["days"], 30, "{body}");
    // The same period again changes nothing.
    let again = set_retention(&app, &alice, room, json!(30)).await;
    assert_eq!(again.assert_status(200)["position"], Value::Null);
    app.project().await;
    app.index().await;
    let before = app.my_room(&carol, room).await;
    assert_eq!(before["retention_days"], 30, "{before}");
    assert_eq!(before["unread_count"], 5, "{before}");
    assert_eq!(before["unread_mentions"], 1, "{before}");
    wait_until(
        DEADLINE,
        Duration::from_millis(20),
        "search never found the old messages",
        || async { hits(&app, &carol.token, &old).await == 3 },
    )
    .await;

    // Thirty days after the cutoff, the old messages have expired, and only they; a second
    // pass finds nothing more to do.
    let later = cutoff + Days::days(30);
    let file_id = attachment.as_str().unwrap().to_owned();
    let stored = |app: &TestApp| {
        app.blob_files()
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(&file_id))
            .count()
    };
    assert!(stored(&app) > 0, "the file is stored");
    let done = pass(&app, None, later).await;
    assert_eq!(done.expired, vec![(RoomId(room), 3)]);
    assert_eq!(done.files, 1, "{done:?}");
    assert_eq!(stored(&app), 0, "the expired message's file is deleted");
    assert_eq!(pass(&app, None, later).await, Pass::default());
    app.project().await;
    app.index().await;

    let check = |stage: &'static str| {
        let (app, old, new, carol) = (&app, &old, &new, &carol);
        async move {
            assert_eq!(
                bodies(app, &carol.token, room).await,
                [format!("{new} four"), format!("{new} five")],
                "{stage}"
            );
            assert_eq!(
                app.in_read_models(old).await,
                Vec::<String>::new(),
                "{stage}"
            );
            let mine = app.my_room(carol, room).await;
            assert_eq!(mine["expired_up_to"], 3, "{stage}: {mine}");
            assert_eq!(mine["unread_count"], 2, "{stage}: {mine}");
            assert_eq!(mine["unread_mentions"], 0, "{stage}: {mine}");
            let mentions = app.get("/v1/mentions", &carol.token).await;
            assert_eq!(
                mentions.assert_status(200)["mentions"],
                json!([]),
                "{stage}"
            );
            wait_until(
                DEADLINE,
                Duration::from_millis(20),
                "search still finds an expired message, or lost a new one",
                || async {
                    hits(app, &carol.token, old).await == 0
                        && hits(app, &carol.token, new).await == 2
                },
            )
            .await;
        }
    };
    check("live").await;

    // An expired message cannot be changed, reacted to or replied to; its file is gone, and
    // cannot be sent again.
    app.command(
        Method::PATCH,
        &format!("/v1/rooms/{room}/messages/{first}"),
        &bob.token,
        Some(json!({ "body": "again" })),
    )
    .await
    .assert_error(404, "message_not_found");
    app.command(
        Method::PUT,
        &format!("/v1/rooms/{room}/messages/{first}/reactions/%F0%9F%91%8D"),
        &carol.token,
        None,
    )
    .await
    .assert_error(404, "message_not_found");
    app.command(
        Method::POST,
        &format!("/v1/rooms/{room}/messages"),
        &carol.token,
        Some(json!({ "body": "a reply", "reply_to": first })),
    )
    .await
    .assert_error(422, "reply_target_not_found");
    let file = app
        .get(&format!("/v1/attachments/{file_id}"), &carol.token)
        .await;
    assert_eq!(file.status, 404, "{}", file.body);
    let resend = app
        .command(
            Method::POST,
            &format!("/v1/rooms/{room}/messages"),
            &bob.token,
            Some(json!({ "body": "again", "attachments": [file_id] })),
        )
        .await;
    resend.assert_error(422, "attachment_not_found");

    // A full rebuild of the read models and of the index, from the log: the expiry again.
    app.project().await;
    app.rebuild_all().await;
    check("rebuilt").await;

    // A marker moved afterwards counts the expired seqs as read: none unread is left.
    app.mark_read(&carol, room, 5).await.assert_status(200);
    app.project().await;
    assert_eq!(app.my_room(&carol, room).await["unread_count"], 0);
    app.cleanup().await;
}

#[tokio::test]
async fn without_a_period_of_its_own_a_room_follows_the_servers_default() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    let room = app.create_room(&alice, &format!("d-{u}"), "private").await;
    let short = app.create_room(&alice, &format!("s-{u}"), "private").await;
    let direct = app.open_direct(&alice, &bob).await;
    for r in [room, short, direct] {
        app.say(&alice, r, "said long ago").await;
    }
    set_retention(&app, &alice, short, json!(1))
        .await
        .assert_status(200);
    app.project().await;
    let later = Utc::now() + Days::days(2);

    // No default: only the room with a period of its own expires.
    assert_eq!(
        pass(&app, None, later).await.expired,
        vec![(RoomId(short), 1)]
    );
    // A default of 3 days: two days on is not old enough; four days on, everything is.
    app.project().await;
    assert_eq!(pass(&app, Some(3), later).await, Pass::default());
    let mut expired = pass(&app, Some(3), later + Days::days(2)).await.expired;
    expired.sort();
    let mut want = vec![(RoomId(room), 1), (RoomId(direct), 1)];
    want.sort();
    assert_eq!(expired, want);
    app.project().await;
    for r in [room, short, direct] {
        assert_eq!(bodies(&app, &alice.token, r).await, Vec::<String>::new());
    }
    // A room's own period of "the server's default" again is `null`.
    let res = set_retention(&app, &alice, short, Value::Null).await;
    assert_eq!(res.assert_status(200)["days"], Value::Null);
    app.cleanup().await;
}

#[tokio::test]
async fn the_server_tells_clients_its_default_period_and_its_limits() {
    // Kept for ever unless configured: `null`.
    let app = TestApp::spawn().await;
    let alice = app.register(&format!("alice_{}", unique())).await;
    let info = app.get("/v1/server", &alice.token).await;
    let info = info.assert_status(200);
    assert_eq!(info["retention_days"], Value::Null, "{info}");
    assert_eq!(
        info["limits"],
        json!({
            "message_chars": 4000,
            "mentions_per_message": 50,
            "attachments_per_message": 10,
            "attachment_bytes": 25 << 20,
            "avatar_bytes": 2 << 20,
        })
    );
    app.cleanup().await;

    // What APP_RETENTION_DAYS and APP_ATTACHMENT_MAX_BYTES say.
    let app = TestApp::spawn_with(|s| {
        s.retention_days = 30;
        s.blobs.attachment_max_bytes = 1 << 20;
    })
    .await;
    let alice = app.register(&format!("alice_{}", unique())).await;
    let info = app.get("/v1/server", &alice.token).await;
    let info = info.assert_status(200);
    assert_eq!(info["retention_days"], 30, "{info}");
    assert_eq!(info["limits"]["attachment_bytes"], 1 << 20, "{info}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_default_period_out_of_range_stops_the_read_side_at_start_up() {
    let env = test_support::TestEnv::new().await;
    let mut settings = env.query_settings();
    settings.retention_days = RetentionDays::MAX + 1;
    let err = query_api::startup::build_state(settings)
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("APP_RETENTION_DAYS"), "{err:#}");
    env.cleanup().await;
}
