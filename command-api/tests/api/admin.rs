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
