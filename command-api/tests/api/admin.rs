//! Server administration commands (issue #18): deactivating an account. The first user
//! registered and those named in `APP_ADMIN_USERNAMES` are administrators; anyone else gets
//! 403 `not_an_admin`.

use crate::helpers::TestApp;
use reqwest::Method;
use serde_json::json;
use test_support::PASSWORD;

#[tokio::test]
async fn an_administrator_deactivates_an_account_its_tokens_are_refused_at_once_and_its_messages_stay()
 {
    let app = TestApp::spawn_with(|s| s.admin_usernames = "carol".into()).await;
    let alice = app.register("alice").await; // the first user: an administrator
    let bob = app.register("bob").await;
    let carol = app.register("carol").await; // named
    let dave = app.register("dave").await;
    let room = app.create_room(&alice, "public").await;
    app.join(&bob, room).await.assert_status(200);
    app.send(&bob, room, "hello from bob")
        .await
        .assert_status(201);
    let deactivate = |token: &str, user: uuid::Uuid| {
        let (app, token) = (&app, token.to_owned());
        async move {
            app.request(
                Method::POST,
                &format!("/v1/admin/users/{user}/deactivate"),
                Some(&token),
                None,
                &[],
            )
            .await
        }
    };

    // Not an administrator: 403, nothing changes.
    deactivate(&dave.token, bob.id)
        .await
        .assert_error(403, "not_an_admin");
    deactivate(&bob.token, bob.id)
        .await
        .assert_error(403, "not_an_admin");
    app.send(&bob, room, "still here").await.assert_status(201);
    // An administrator cannot deactivate themselves; an unknown user is 404.
    deactivate(&alice.token, alice.id)
        .await
        .assert_error(422, "cannot_target_self");
    deactivate(&alice.token, uuid::Uuid::now_v7())
        .await
        .assert_error(404, "user_not_found");

    // carol (named) deactivates bob: his access token is refused at once, his refresh token
    // and his password too.
    let res = deactivate(&carol.token, bob.id).await;
    let body = res.assert_status(200);
    assert!(body["position"].is_i64(), "{body}");
    assert_eq!(body["sessions_ended"], 1);
    app.send(&bob, room, "after")
        .await
        .assert_error(401, "token_revoked");
    app.post(
        "/v1/auth/refresh",
        None,
        json!({ "refresh_token": bob.refresh }),
    )
    .await
    .assert_error(401, "invalid_refresh_token");
    app.post(
        "/v1/auth/login",
        None,
        json!({ "username": "bob", "password": PASSWORD }),
    )
    .await
    .assert_error(403, "account_deactivated");
    // A wrong password tells nothing about the account.
    app.post(
        "/v1/auth/login",
        None,
        json!({ "username": "bob", "password": "not his password" }),
    )
    .await
    .assert_error(401, "invalid_credentials");
    // Again: already so.
    let again = deactivate(&alice.token, bob.id).await;
    assert!(again.assert_status(200)["position"].is_null());
    // The audit trail is the log: who did it is in the event.
    let stream = format!("user-{}", bob.id);
    assert_eq!(app.count_of(&stream, "UserDeactivated").await, 1);
    // His messages stay.
    assert_eq!(
        app.count_of(&format!("room-{room}"), "MessageSent").await,
        2
    );
    // Others go on.
    app.send(&alice, room, "bye bob").await.assert_status(201);
    app.cleanup().await;
}

/// Every command an administrator has, as `(method, path, body)`, aimed at `room`, `user` and
/// `message`.
fn admin_commands(
    room: uuid::Uuid,
    user: uuid::Uuid,
    message: uuid::Uuid,
) -> Vec<(Method, String, Option<serde_json::Value>)> {
    vec![
        (
            Method::POST,
            format!("/v1/admin/users/{user}/deactivate"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/admin/rooms/{room}/members/{user}/role"),
            Some(json!({ "role": "admin" })),
        ),
        (
            Method::DELETE,
            format!("/v1/admin/rooms/{room}/messages/{message}"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/admin/rooms/{room}/bans"),
            Some(json!({ "user_id": user })),
        ),
        (
            Method::DELETE,
            format!("/v1/admin/rooms/{room}/bans/{user}"),
            None,
        ),
    ]
}

#[tokio::test]
async fn a_non_administrator_gets_403_not_an_admin_on_every_admin_command_and_nothing_changes() {
    let app = TestApp::spawn().await;
    let _admin = app.register("alice").await; // the first user
    let owner = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.create_room(&owner, "public").await;
    app.join(&carol, room).await.assert_status(200);
    let sent = app.send(&carol, room, "hello").await;
    let message = sent.uuid("message_id");
    let before = app.event_count().await;
    // Not even the room's owner: the room's authority is not the server's.
    for who in [&owner, &carol] {
        for (method, path, body) in admin_commands(room, carol.id, message) {
            let res = app
                .request(method.clone(), &path, Some(&who.token), body, &[])
                .await;
            assert_eq!(
                res.outcome(),
                (403, "not_an_admin".to_owned()),
                "{method} {path}: {}",
                res.text
            );
        }
    }
    // Without a token: 401.
    for (method, path, body) in admin_commands(room, carol.id, message) {
        let res = app.request(method, &path, None, body, &[]).await;
        assert_eq!(res.status, 401, "{path}");
    }
    assert_eq!(app.event_count().await, before);
    app.cleanup().await;
}

#[tokio::test]
async fn an_administrator_changes_roles_deletes_messages_and_bans_in_a_room_they_are_not_in() {
    let app = TestApp::spawn().await;
    let admin = app.register("alice").await; // the first user: an administrator
    let owner = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let room = app.create_room(&owner, "private").await;
    for u in [&carol, &dave] {
        app.invite(&owner, room, u).await.assert_status(200);
        app.join(u, room).await.assert_status(200);
    }
    let message = app.send(&carol, room, "spam").await.uuid("message_id");
    let run = |method: Method, path: String, body: Option<serde_json::Value>| {
        let (app, token) = (&app, admin.token.clone());
        async move { app.request(method, &path, Some(&token), body, &[]).await }
    };
    let role = |user: uuid::Uuid, role: &str| {
        run(
            Method::PUT,
            format!("/v1/admin/rooms/{room}/members/{user}/role"),
            Some(json!({ "role": role })),
        )
    };

    // Roles: anyone's but the owner's, to anything but owner.
    let res = role(carol.id, "admin").await;
    let body = res.assert_status(200);
    assert_eq!(body["role"], "admin");
    assert!(body["position"].is_i64(), "{body}");
    assert!(role(carol.id, "admin").await.assert_status(200)["position"].is_null());
    role(owner.id, "member")
        .await
        .assert_error(403, "cannot_target_owner");
    role(dave.id, "owner")
        .await
        .assert_error(400, "cannot_grant_owner");
    role(admin.id, "admin")
        .await
        .assert_error(404, "member_not_found");
    // carol now moderates the room.
    app.ban(&carol, room, dave.id).await.assert_status(200);
    app.unban(&carol, room, dave.id).await.assert_status(200);

    // Any message.
    let delete = || {
        run(
            Method::DELETE,
            format!("/v1/admin/rooms/{room}/messages/{message}"),
            None,
        )
    };
    let res = delete().await;
    assert_eq!(res.assert_status(200)["message_id"], message.to_string());
    delete().await.assert_error(409, "message_deleted");
    run(
        Method::DELETE,
        format!("/v1/admin/rooms/{room}/messages/{}", uuid::Uuid::now_v7()),
        None,
    )
    .await
    .assert_error(404, "message_not_found");

    // Bans: anyone but the owner and oneself, member or not.
    let ban = |user: uuid::Uuid| {
        run(
            Method::POST,
            format!("/v1/admin/rooms/{room}/bans"),
            Some(json!({ "user_id": user })),
        )
    };
    ban(carol.id).await.assert_status(200);
    app.send(&carol, room, "again")
        .await
        .assert_error(404, "room_not_found");
    ban(owner.id).await.assert_error(403, "cannot_target_owner");
    ban(admin.id).await.assert_error(422, "cannot_target_self");
    ban(uuid::Uuid::now_v7())
        .await
        .assert_error(404, "user_not_found");
    app.invite(&owner, room, &carol)
        .await
        .assert_error(409, "user_banned");
    run(
        Method::DELETE,
        format!("/v1/admin/rooms/{room}/bans/{}", carol.id),
        None,
    )
    .await
    .assert_status(200);
    app.invite(&owner, room, &carol).await.assert_status(200);

    // Only group rooms that exist.
    run(
        Method::POST,
        format!("/v1/admin/rooms/{}/bans", uuid::Uuid::now_v7()),
        Some(json!({ "user_id": dave.id })),
    )
    .await
    .assert_error(404, "room_not_found");
    let direct = app
        .post(
            "/v1/direct",
            Some(&carol.token),
            json!({ "user_id": dave.id }),
        )
        .await
        .uuid("room_id");
    run(
        Method::POST,
        format!("/v1/admin/rooms/{direct}/bans"),
        Some(json!({ "user_id": dave.id })),
    )
    .await
    .assert_error(409, "direct_room");

    // The audit trail is the log: the administrator is the actor, and the events say with
    // whose authority (the room's own moderation does not).
    let flagged: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT event_type, actor_id::text, data->>'as_admin' FROM events
          WHERE stream_id = $1 AND event_type IN
                ('MemberRoleChanged', 'MessageDeleted', 'MemberBanned', 'MemberUnbanned')
          ORDER BY version",
    )
    .bind(format!("room-{room}"))
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    let by = |who: &crate::helpers::TestUser, t: &str, flag: Option<&str>| {
        (t.to_owned(), who.id.to_string(), flag.map(str::to_owned))
    };
    assert_eq!(
        flagged,
        vec![
            by(&admin, "MemberRoleChanged", Some("true")),
            by(&carol, "MemberBanned", None),
            by(&carol, "MemberUnbanned", None),
            by(&admin, "MessageDeleted", Some("true")),
            by(&admin, "MemberBanned", Some("true")),
            by(&admin, "MemberUnbanned", Some("true")),
        ]
    );
    app.cleanup().await;
}
