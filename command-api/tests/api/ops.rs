//! The operational endpoints (http-kit's service scaffold) on the command side.

use crate::helpers::TestApp;
use reqwest::Method;

#[tokio::test]
async fn health_readiness_metrics_and_the_openapi_document_are_served() {
    let app = TestApp::spawn().await;
    let health = app.request(Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(health.assert_status(200)["status"], "ok");

    // PostgreSQL gates readiness; NATS is shown but does not.
    let ready = app.request(Method::GET, "/readyz", None, None, &[]).await;
    let body = ready.assert_status(200);
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["checks"]["postgres"]["ok"], true, "{body}");
    assert_eq!(body["checks"]["postgres"]["required"], true, "{body}");
    assert_eq!(body["checks"]["nats"]["required"], false, "{body}");

    let alice = app.register("alice").await;
    app.create_room(&alice, "public").await;
    let metrics = app.request(Method::GET, "/metrics", None, None, &[]).await;
    assert_eq!(metrics.status, 200);
    // Sampled at the scrape: the room created above has a live actor.
    assert!(
        metrics.text.contains("chat_room_actors 1"),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("chat_commands_total{"));
    // One replica, nothing contended: no room was read again.
    assert!(
        metrics.text.contains("chat_room_reloads_total 0"),
        "{}",
        metrics.text
    );

    let doc = app
        .request(Method::GET, "/openapi.json", None, None, &[])
        .await;
    let doc = doc.assert_status(200);
    assert!(doc["paths"]["/v1/rooms"]["post"].is_object());
    // The moderation commands (issue #18), each with its Idempotency-Key.
    for (path, method) in [
        ("/v1/rooms/{room_id}/bans", "post"),
        ("/v1/rooms/{room_id}/bans/{user_id}", "delete"),
        ("/v1/admin/users/{user_id}/deactivate", "post"),
        ("/v1/admin/rooms/{room_id}/members/{user_id}/role", "put"),
        ("/v1/admin/rooms/{room_id}/messages/{message_id}", "delete"),
        ("/v1/admin/rooms/{room_id}/bans", "post"),
        ("/v1/admin/rooms/{room_id}/bans/{user_id}", "delete"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert_eq!(
            op["responses"]["403"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Error",
            "{method} {path}"
        );
        if path != "/v1/admin/users/{user_id}/deactivate" {
            let takes_key = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "Idempotency-Key"));
            assert!(takes_key, "{method} {path} takes no Idempotency-Key");
        }
    }
    app.cleanup().await;
}
