//! A socket sending frames faster than its limit gets a `rate_limited` error frame for each
//! one over it (the frame is dropped), stays open, and other sockets are not held back.

use crate::helpers::{Client, Platform};
use serde_json::json;

#[tokio::test]
async fn frames_over_a_sockets_limit_are_dropped_with_an_error_and_the_socket_stays() {
    let p = Platform::spawn_with(|s| {
        s.limits.rate.rate_limit_enabled = true;
        s.limits.rate.rate_ws_frames_per_10s = 5;
    })
    .await;
    let alice = p.register().await;
    let mut flooding = Client::connect(p.query.addr, &alice.token).await;
    let mut calm = Client::connect(p.query.addr, &alice.token).await;
    for _ in 0..8 {
        flooding.send(json!({ "type": "ping" })).await;
    }
    let mut answers = Vec::new();
    while answers.len() < 8 {
        answers.push(flooding.next().await);
    }
    let pongs = answers.iter().filter(|f| f["type"] == "pong").count();
    let limited: Vec<_> = answers
        .iter()
        .filter(|f| f["type"] == "error" && f["code"] == "rate_limited")
        .collect();
    assert_eq!((pongs, limited.len()), (5, 3), "{answers:?}");
    // The other socket has its own allowance.
    calm.send(json!({ "type": "ping" })).await;
    assert_eq!(calm.next().await["type"], "pong");
    // Still open: over the limit is not a close.
    flooding.send(json!({ "type": "ping" })).await;
    let f = flooding.next().await;
    assert_eq!(
        (&f["type"], &f["code"]),
        (&json!("error"), &json!("rate_limited")),
        "{f}"
    );
    p.cleanup().await;
}
