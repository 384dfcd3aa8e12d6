//! Sessions, password changes and the profile (issue #18, item 2): one session per login,
//! listed and ended by their user; a password change ends every other session at its next
//! refresh; a display name change is an event.

use crate::helpers::TestApp;
use reqwest::Method;
use serde_json::{Value, json};
use test_support::PASSWORD;

fn field(v: &Value, name: &str) -> String {
    v[name].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_at_its_next_refresh() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let login = |agent: &'static str| {
        let app = &app;
        async move {
            app.request(
                Method::POST,
                "/v1/auth/login",
                None,
                Some(json!({ "username": "alice", "password": PASSWORD })),
                &[("user-agent", agent)],
            )
            .await
        }
    };
    let phone = login("phone").await.assert_status(200).clone();
    let laptop = login("laptop").await.assert_status(200).clone();

    // Three sessions (registration, phone, laptop), the laptop's marked current for it.
    let listed = app
        .get("/v1/me/sessions", &field(&laptop, "access_token"))
        .await;
    let sessions = listed.assert_status(200)["sessions"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["user_agent"], "laptop");

    // A wrong current password changes nothing; a too short new one is a 400.
    let change = |token: String, current: &'static str, new: &'static str| {
        let app = &app;
        async move {
            app.request(
                Method::POST,
                "/v1/me/password",
                Some(&token),
                Some(json!({ "current_password": current, "new_password": new })),
                &[],
            )
            .await
        }
    };
    change(
        field(&laptop, "access_token"),
        "wrong password!",
        "a brand new secret",
    )
    .await
    .assert_error(403, "wrong_password");
    change(field(&laptop, "access_token"), PASSWORD, "short")
        .await
        .assert_error(400, "invalid_password");
    let res = change(
        field(&laptop, "access_token"),
        PASSWORD,
        "a brand new secret",
    )
    .await;
    assert_eq!(res.assert_status(200)["sessions_ended"], 2);

    // The other sessions end at their next refresh; the laptop's goes on.
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.post("/v1/auth/refresh", None, json!({ "refresh_token": token }))
                .await
        }
    };
    refresh(field(&phone, "refresh_token"))
        .await
        .assert_error(401, "invalid_refresh_token");
    refresh(alice.refresh.clone())
        .await
        .assert_error(401, "invalid_refresh_token");
    let renewed = refresh(field(&laptop, "refresh_token")).await;
    renewed.assert_status(200);
    // The old password no longer logs in; the new one does.
    login("old").await.assert_error(401, "invalid_credentials");
    app.post(
        "/v1/auth/login",
        None,
        json!({ "username": "alice", "password": "a brand new secret" }),
    )
    .await
    .assert_status(200);
    app.cleanup().await;
}

#[tokio::test]
async fn a_user_lists_and_ends_their_own_sessions_only() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let second = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "username": "alice", "password": PASSWORD }),
        )
        .await
        .assert_status(200)
        .clone();
    let sessions = app.get("/v1/me/sessions", &alice.token).await;
    let sessions = sessions.assert_status(200)["sessions"]
        .as_array()
        .unwrap()
        .clone();
    let other = sessions
        .iter()
        .find(|s| s["current"] == false)
        .map(|s| field(s, "session_id"))
        .unwrap();
    // bob cannot end alice's session: it does not exist for him.
    app.request(
        Method::DELETE,
        &format!("/v1/me/sessions/{other}"),
        Some(&bob.token),
        None,
        &[],
    )
    .await
    .assert_error(404, "session_not_found");
    app.request(
        Method::DELETE,
        &format!("/v1/me/sessions/{other}"),
        Some(&alice.token),
        None,
        &[],
    )
    .await
    .assert_status(204);
    app.post(
        "/v1/auth/refresh",
        None,
        json!({ "refresh_token": field(&second, "refresh_token") }),
    )
    .await
    .assert_error(401, "invalid_refresh_token");
    let left = app.get("/v1/me/sessions", &alice.token).await;
    assert_eq!(
        left.assert_status(200)["sessions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Ending it again: gone.
    app.request(
        Method::DELETE,
        &format!("/v1/me/sessions/{other}"),
        Some(&alice.token),
        None,
        &[],
    )
    .await
    .assert_error(404, "session_not_found");
    // Logging out ends the session it belongs to.
    app.post(
        "/v1/auth/logout",
        None,
        json!({ "refresh_token": alice.refresh }),
    )
    .await
    .assert_status(204);
    let after = app.get("/v1/me/sessions", &alice.token).await;
    assert!(
        after.assert_status(200)["sessions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_display_name_change_is_an_event_and_setting_it_again_is_not() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let patch = |name: &str| {
        app.request(
            Method::PATCH,
            "/v1/me/profile",
            Some(&alice.token),
            Some(json!({ "display_name": name })),
            &[],
        )
    };
    let res = patch("Alice L.").await;
    assert_eq!(res.assert_status(200)["display_name"], "Alice L.");
    assert!(res.body["position"].is_i64());
    assert!(patch("Alice L.").await.assert_status(200)["position"].is_null());
    // Empty: the username again.
    assert_eq!(patch("").await.assert_status(200)["display_name"], "alice");
    patch(&"x".repeat(65))
        .await
        .assert_error(400, "invalid_display_name");
    let stream = format!("user-{}", alice.id);
    assert_eq!(app.count_of(&stream, "DisplayNameChanged").await, 2);
    app.cleanup().await;
}
