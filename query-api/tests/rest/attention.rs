//! Mentions, notification levels and read receipts through the API (issue #17): what the
//! sender writes, what the mentioned see in `GET /v1/rooms` and `GET /v1/mentions`, and who
//! sees whose receipts.

use crate::helpers::{TestApp, TestUser, unique};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

async fn my_room(app: &TestApp, user: &TestUser, room: Uuid) -> Value {
    app.my_room(user, room).await
}

/// The message ids of the caller's mentions, newest first, following every page of `limit`.
async fn all_mentions(app: &TestApp, user: &TestUser, limit: usize) -> Vec<Value> {
    let mut out = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/v1/mentions?limit={limit}&before={b}"),
            None => format!("/v1/mentions?limit={limit}"),
        };
        let page = app.get(&path, &user.token).await.assert_status(200).clone();
        let got = page["mentions"].as_array().unwrap().clone();
        assert!(got.len() <= limit);
        out.extend(got);
        match page["next_before"].as_i64() {
            Some(b) => before = Some(b),
            None => return out,
        }
    }
}

async fn receipts(app: &TestApp, user: &TestUser, room: Uuid) -> Vec<(String, i64)> {
    let res = app
        .get(&format!("/v1/rooms/{room}/receipts"), &user.token)
        .await;
    res.assert_status(200)["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["user_id"].as_str().unwrap().to_owned(),
                r["seq"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_mention_counts_for_the_mentioned_member_only_until_read_and_lists_in_their_mentions() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    let carol = app.register(&format!("carol_{u}")).await;
    let room = app.create_room(&alice, &format!("m-{u}"), "public").await;
    app.join(&bob, room).await.assert_status(200);

    // bob names alice, carol (not a member) and someone who does not exist; the mention of
    // alice is recorded as her id, carol's name stays text.
    let body = format!(
        "hi @{} and @{}, cc @nobody_{u}",
        alice.username, carol.username
    );
    let res = app
        .command(
            Method::POST,
            &format!("/v1/rooms/{room}/messages"),
            &bob.token,
            Some(json!({ "body": body })),
        )
        .await;
    res.assert_status(201);
    app.say(&bob, room, "no mention here").await;
    app.project().await;

    let a = my_room(&app, &alice, room).await;
    assert_eq!(
        (a["unread_count"].as_i64(), a["unread_mentions"].as_i64()),
        (Some(2), Some(1)),
        "{a}"
    );
    assert_eq!(a["notifications"], "mentions");
    let b = my_room(&app, &bob, room).await;
    assert_eq!(b["unread_mentions"], 0, "the sender is not mentioned: {b}");
    let listed = all_mentions(&app, &alice, 20).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["body"], body.as_str());
    assert_eq!(listed[0]["sender_username"], bob.username.as_str());
    assert_eq!(listed[0]["room_mention"], false);
    assert!(
        all_mentions(&app, &carol, 20).await.is_empty(),
        "carol is not a member"
    );

    // Reading up to the mention clears it.
    let seq = listed[0]["seq"].as_i64().unwrap();
    app.mark_read(&alice, room, seq).await.assert_status(200);
    app.project().await;
    let a = my_room(&app, &alice, room).await;
    assert_eq!(
        (a["unread_count"].as_i64(), a["unread_mentions"].as_i64()),
        (Some(1), Some(0)),
        "{a}"
    );

    // @room: from the owner it mentions everyone else (once, also for one named too); from a
    // member it is text.
    app.join(&carol, room).await.assert_status(200);
    app.say(&bob, room, "@room from a member").await;
    app.say(&alice, room, &format!("@room and @{}", bob.username))
        .await;
    app.project().await;
    assert_eq!(my_room(&app, &carol, room).await["unread_mentions"], 1);
    assert_eq!(my_room(&app, &bob, room).await["unread_mentions"], 1);
    assert_eq!(my_room(&app, &alice, room).await["unread_mentions"], 0);
    let carols = all_mentions(&app, &carol, 20).await;
    assert_eq!(
        carols.len(),
        1,
        "only what was sent since she joined: {carols:?}"
    );
    assert_eq!(carols[0]["room_mention"], true);
    let bobs = all_mentions(&app, &bob, 20).await;
    assert_eq!(bobs.len(), 1, "{bobs:?}");
    assert_eq!(bobs[0]["room_mention"], false, "named beats @room");

    // A deleted mention no longer counts; a kicked member's mentions leave their list.
    let (deleted, _, _) = app
        .say(&alice, room, &format!("@{} oops", carol.username))
        .await;
    app.project().await;
    assert_eq!(my_room(&app, &carol, room).await["unread_mentions"], 2);
    app.delete_message(&alice, room, deleted)
        .await
        .assert_status(200);
    app.project().await;
    assert_eq!(my_room(&app, &carol, room).await["unread_mentions"], 1);
    app.kick(&alice, room, &carol).await.assert_status(200);
    app.project().await;
    assert!(all_mentions(&app, &carol, 20).await.is_empty());
    app.cleanup().await;
}

#[tokio::test]
async fn mentions_page_newest_first_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    let rooms = [
        app.create_room(&alice, &format!("p1-{u}"), "public").await,
        app.create_room(&alice, &format!("p2-{u}"), "private").await,
    ];
    app.invite(&alice, rooms[1], &bob).await.assert_status(200);
    for r in rooms {
        app.join(&bob, r).await.assert_status(200);
    }
    let mut sent = Vec::new();
    for i in 0..7 {
        let (id, _, _) = app
            .say(
                &bob,
                rooms[i % 2],
                &format!("@{} number {i}", alice.username),
            )
            .await;
        sent.push(id.to_string());
    }
    app.project().await;
    for limit in [1, 2, 3, 7, 50] {
        let got: Vec<String> = all_mentions(&app, &alice, limit)
            .await
            .iter()
            .map(|m| m["message_id"].as_str().unwrap().to_owned())
            .collect();
        let mut newest_first = sent.clone();
        newest_first.reverse();
        assert_eq!(got, newest_first, "limit {limit}");
    }
    let res = app.get("/v1/mentions?limit=nope", &alice.token).await;
    assert_eq!(res.status, 400, "{}", res.text);
    app.cleanup().await;
}

#[tokio::test]
async fn a_member_sets_their_notification_level_and_others_may_not() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    let room = app.create_room(&alice, &format!("n-{u}"), "private").await;
    let dm = app.open_direct(&alice, &bob).await;
    let set = |user: &TestUser, room: Uuid, level: &str| {
        let token = user.token.clone();
        let level = level.to_owned();
        let app = &app;
        async move {
            app.command(
                Method::PUT,
                &format!("/v1/rooms/{room}/notifications"),
                &token,
                Some(json!({ "level": level })),
            )
            .await
        }
    };
    let res = set(&alice, room, "all").await;
    assert_eq!(res.assert_status(200)["level"], "all");
    assert_eq!(set(&alice, dm, "none").await.status, 200);
    // Not a member of a private room: it does not exist for him.
    assert_eq!(set(&bob, room, "all").await.status, 404);
    // Levels are a closed set.
    let res = set(&alice, room, "loud").await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert!(res.body["error"]["code"].is_string());
    app.project().await;
    assert_eq!(my_room(&app, &alice, room).await["notifications"], "all");
    assert_eq!(my_room(&app, &alice, dm).await["notifications"], "none");
    assert_eq!(
        my_room(&app, &bob, dm).await["notifications"],
        "all",
        "a direct room's default"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn bob_sees_how_far_alice_read_but_never_a_member_with_private_receipts() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    let dave = app.register(&format!("dave_{u}")).await;
    let eve = app.register(&format!("eve_{u}")).await;
    let room = app.create_room(&bob, &format!("r-{u}"), "public").await;
    for user in [&alice, &dave] {
        app.join(user, room).await.assert_status(200);
    }
    // dave keeps his receipts private before reading anything.
    let res = app
        .command(
            Method::PUT,
            "/v1/me/read-receipts",
            &dave.token,
            Some(json!({ "private": true })),
        )
        .await;
    assert_eq!(res.assert_status(200)["private"], true);
    let (_, seq, _) = app.say(&bob, room, "did you see this?").await;
    app.mark_read(&alice, room, seq).await.assert_status(200);
    app.mark_read(&dave, room, seq).await.assert_status(200);
    app.project().await;

    let alice_id = alice.id.to_string();
    for viewer in [&bob, &alice, &dave] {
        let seen = receipts(&app, viewer, room).await;
        assert_eq!(
            seen,
            vec![(alice_id.clone(), seq)],
            "seen by {}",
            viewer.username
        );
    }
    // dave's own unread count follows his private marker.
    assert_eq!(my_room(&app, &dave, room).await["unread_count"], 0);
    let me = app.get("/v1/me", &dave.token).await;
    assert_eq!(me.assert_status(200)["private_receipts"], true);
    // Not a member: 403 for a public room (as history).
    assert_eq!(
        app.get(&format!("/v1/rooms/{room}/receipts"), &eve.token)
            .await
            .status,
        403
    );

    // Turning private hides alice's receipt at once; turning public again shows only what she
    // read while public.
    for private in [true, false] {
        app.command(
            Method::PUT,
            "/v1/me/read-receipts",
            &alice.token,
            Some(json!({ "private": private })),
        )
        .await
        .assert_status(200);
        if private {
            let (_, later, _) = app.say(&bob, room, "and this?").await;
            app.mark_read(&alice, room, later).await.assert_status(200);
        }
        app.project().await;
        let seen = receipts(&app, &bob, room).await;
        if private {
            assert!(seen.is_empty(), "{seen:?}");
        } else {
            assert_eq!(seen, vec![(alice_id.clone(), seq)]);
        }
    }
    // Setting it to what it is changes nothing.
    let res = app
        .command(
            Method::PUT,
            "/v1/me/read-receipts",
            &alice.token,
            Some(json!({ "private": false })),
        )
        .await;
    assert!(res.assert_status(200)["position"].is_null());
    // A member who leaves is no longer listed.
    app.leave(&alice, room).await.assert_status(200);
    app.project().await;
    assert!(receipts(&app, &bob, room).await.is_empty());
    app.cleanup().await;
}

#[tokio::test]
async fn a_new_display_name_shows_in_the_profile_and_the_member_list() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let room = app.create_room(&alice, &format!("d-{u}"), "public").await;
    let res = app
        .command(
            Method::PATCH,
            "/v1/me/profile",
            &alice.token,
            Some(json!({ "display_name": "Alice Liddell" })),
        )
        .await;
    res.assert_status(200);
    app.project().await;
    let me = app.get("/v1/me", &alice.token).await;
    assert_eq!(me.assert_status(200)["display_name"], "Alice Liddell");
    let members = app
        .get(&format!("/v1/rooms/{room}/members"), &alice.token)
        .await;
    assert_eq!(
        members.assert_status(200)["members"][0]["display_name"],
        "Alice Liddell"
    );
    app.cleanup().await;
}
