//! SIGTERM to a query-api node (#19 graceful shutdown): every open socket is closed with
//! 1001 going-away (clients reconnect elsewhere instead of waiting to notice a dead
//! connection), and the process exits cleanly within a bounded time.

use std::time::Duration;

use crate::helpers::{Client, Got, Platform, spawn_node};
use tokio::time::Instant;

/// The bound on the exit: the HTTP drain, then the sockets' close (3 s at most).
const EXIT_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn sigterm_closes_every_socket_with_1001_and_exits() {
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let bob = p.register().await;
    let room = p.create_room(&alice, "public").await;
    p.join(&bob, room).await;
    p.project().await;
    let (mut child, addr) = spawn_node(&p, &[]).await;
    let mut sockets = vec![
        Client::connect(addr, &alice.token).await,
        Client::connect(addr, &bob.token).await,
    ];
    for ws in &mut sockets {
        let answer = ws.subscribe(room, None).await;
        assert_eq!(answer.last().unwrap()["type"], "subscribed", "{answer:?}");
    }

    test_support::process::signal(&child, "TERM");
    let deadline = Instant::now() + EXIT_WITHIN;
    for ws in &mut sockets {
        match ws.next_until(deadline).await {
            Got::Closed(Some((code, reason))) => {
                assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
            }
            other => panic!("expected a 1001 close, got {other:?}"),
        }
    }
    let status = tokio::time::timeout_at(deadline, child.wait())
        .await
        .expect("query-api did not exit in time")
        .unwrap();
    assert!(status.success(), "query-api exited with {status}");
    p.cleanup().await;
}
