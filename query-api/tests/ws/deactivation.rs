//! A deactivated account (issue #18) loses its open sockets and its reads at once: command-api
//! announces the deactivation and every query node refuses the user's tokens and closes their
//! sockets with 4003.

use crate::helpers::{Client, DEADLINE, Got, Platform};
use tokio::time::Instant;

#[tokio::test]
async fn a_deactivated_users_open_socket_is_closed_and_their_token_refused() {
    let p = Platform::spawn().await;
    let admin = p.register().await; // the first user
    let bob = p.register().await;
    let room = p.create_room(&admin, "public").await;
    p.join(&bob, room).await;
    p.project().await;
    let mut bob_ws = Client::connect(p.query.addr, &bob.token).await;
    bob_ws.subscribe(room, None).await;
    let (status, _, _) = p.read("/v1/rooms", &bob.token).await;
    assert_eq!(status, 200);

    let (status, body) = p
        .post(
            &format!("/v1/admin/users/{}/deactivate", bob.id),
            &admin.token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Closed by the notice, well before any reload of the read models.
    match bob_ws.next_until(Instant::now() + DEADLINE).await {
        Got::Closed(Some((code, reason))) => {
            assert_eq!((code, reason.as_str()), (4003, "account deactivated"));
        }
        other => panic!("expected the socket closed, got {other:?}"),
    }
    let (status, _, body) = p.read("/v1/rooms", &bob.token).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "token_revoked");
    // A new socket is refused before the upgrade.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/v1/ws", p.query.addr),
    )
    .unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", bob.token).parse().unwrap(),
    );
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    // The administrator is unaffected.
    let (status, _, _) = p.read("/v1/rooms", &admin.token).await;
    assert_eq!(status, 200);
    p.cleanup().await;
}
