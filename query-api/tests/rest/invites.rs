//! `GET /v1/invites`: the caller's pending invitations.

use crate::helpers::{TestApp, unique};

#[tokio::test]
async fn an_invitation_is_listed_until_it_is_accepted() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("inv_alice_{u}")).await;
    let bob = app.register(&format!("inv_bob_{u}")).await;
    let name = format!("secret-{u}");
    let room = app.create_room(&alice, &name, "private").await;
    app.invite(&alice, room, &bob).await.assert_status(200);
    app.project().await;
    let res = app.get("/v1/invites", &bob.token).await;
    let body = res.assert_status(200);
    let invites = body["invites"].as_array().unwrap();
    assert_eq!(invites.len(), 1, "{body}");
    assert_eq!(invites[0]["room_id"], room.to_string());
    assert_eq!(invites[0]["name"], name.as_str());
    assert_eq!(invites[0]["visibility"], "private");
    // Alice, who invited, has none; Bob's goes away once he joins.
    let res = app.get("/v1/invites", &alice.token).await;
    assert_eq!(res.assert_status(200)["invites"], serde_json::json!([]));
    app.join(&bob, room).await.assert_status(200);
    app.project().await;
    let res = app.get("/v1/invites", &bob.token).await;
    assert_eq!(res.assert_status(200)["invites"], serde_json::json!([]));
    app.cleanup().await;
}
