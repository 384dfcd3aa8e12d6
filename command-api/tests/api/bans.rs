//! Bans from a room (issue #18), the authorization matrix: the room's owner and admins ban
//! (as they kick), a plain member or an outsider may not; a banned user cannot join or be
//! invited until unbanned; a ban of a member removes them as a kick does.

use crate::helpers::{TestApp, TestUser};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

async fn make_admin(app: &TestApp, owner: &TestUser, room: Uuid, who: &TestUser) {
    app.request(
        Method::PUT,
        &format!("/v1/rooms/{room}/members/{}/role", who.id),
        Some(&owner.token),
        Some(json!({ "role": "admin" })),
        &[],
    )
    .await
    .assert_status(200);
}

#[tokio::test]
async fn owners_and_admins_ban_members_and_outsiders_and_the_banned_cannot_join_or_be_invited() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner").await;
    let admin = app.register("admin").await;
    let admin2 = app.register("admin2").await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await; // never a member
    let room = app.create_room(&owner, "public").await;
    for u in [&admin, &admin2, &alice, &bob] {
        app.join(u, room).await.assert_status(200);
    }
    make_admin(&app, &owner, room, &admin).await;
    make_admin(&app, &owner, room, &admin2).await;
    let stream = format!("room-{room}");
    let before = app.event_count().await;

    // Who may not, and whom nobody may ban: nothing is appended.
    app.ban(&alice, room, bob.id)
        .await
        .assert_error(403, "forbidden");
    app.ban(&carol, room, bob.id)
        .await
        .assert_error(403, "not_a_member");
    app.ban(&admin, room, owner.id)
        .await
        .assert_error(403, "cannot_target_owner");
    app.ban(&admin, room, admin2.id)
        .await
        .assert_error(403, "forbidden");
    app.ban(&admin, room, admin.id)
        .await
        .assert_error(422, "cannot_target_self");
    app.ban(&admin, room, Uuid::now_v7())
        .await
        .assert_error(404, "user_not_found");
    app.ban(&admin, Uuid::now_v7(), bob.id)
        .await
        .assert_error(404, "room_not_found");
    app.unban(&alice, room, bob.id)
        .await
        .assert_error(403, "forbidden");
    assert_eq!(app.event_count().await, before);

    // An admin bans a member: removed as by a kick, and kept out.
    let res = app.ban(&admin, room, bob.id).await;
    let body = res.assert_status(200);
    assert_eq!(body["user_id"], bob.id.to_string());
    assert_eq!(body["room_id"], room.to_string());
    assert!(body["position"].is_i64(), "{body}");
    app.send(&bob, room, "still here?")
        .await
        .assert_error(403, "not_a_member");
    app.join(&bob, room).await.assert_error(403, "banned");
    // Again: already so.
    let again = app.ban(&owner, room, bob.id).await;
    assert!(again.assert_status(200)["position"].is_null());
    // The owner bans another admin, and an outsider before they come.
    app.ban(&owner, room, admin2.id).await.assert_status(200);
    app.ban(&owner, room, carol.id).await.assert_status(200);
    app.join(&carol, room).await.assert_error(403, "banned");
    app.invite(&owner, room, &carol)
        .await
        .assert_error(409, "user_banned");
    // One event per ban, no kick.
    assert_eq!(app.count_of(&stream, "MemberBanned").await, 3);
    assert_eq!(app.count_of(&stream, "MemberKicked").await, 0);

    // Unbanned, they may join and be invited again.
    let res = app.unban(&admin, room, bob.id).await;
    assert!(res.assert_status(200)["position"].is_i64());
    let again = app.unban(&admin, room, bob.id).await;
    assert!(again.assert_status(200)["position"].is_null());
    app.join(&bob, room).await.assert_status(200);
    app.send(&bob, room, "back").await.assert_status(201);
    app.unban(&owner, room, carol.id).await.assert_status(200);
    app.invite(&owner, room, &carol).await.assert_status(200);
    assert_eq!(app.count_of(&stream, "MemberUnbanned").await, 2);
    app.cleanup().await;
}

#[tokio::test]
async fn a_private_room_stays_hidden_from_those_it_banned_and_direct_rooms_have_no_bans() {
    let app = TestApp::spawn().await;
    let owner = app.register("owner").await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.create_room(&owner, "private").await;
    app.invite(&owner, room, &alice).await.assert_status(200);
    app.join(&alice, room).await.assert_status(200);
    // An invitation is withdrawn by a ban.
    app.invite(&owner, room, &bob).await.assert_status(200);
    app.ban(&owner, room, bob.id).await.assert_status(200);
    app.join(&bob, room)
        .await
        .assert_error(404, "room_not_found");
    app.ban(&owner, room, alice.id).await.assert_status(200);
    app.join(&alice, room)
        .await
        .assert_error(404, "room_not_found");
    // Outsiders learn nothing of a private room by trying to ban in it.
    app.ban(&alice, room, bob.id)
        .await
        .assert_error(404, "room_not_found");

    let direct = app
        .post(
            "/v1/direct",
            Some(&alice.token),
            json!({ "user_id": bob.id }),
        )
        .await
        .uuid("room_id");
    app.ban(&alice, direct, bob.id)
        .await
        .assert_error(409, "direct_room");
    app.cleanup().await;
}
