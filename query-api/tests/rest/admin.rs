//! Server administration reads (issue #18): the first user registered and those named in
//! `APP_ADMIN_USERNAMES` are administrators; everyone else gets 403 `not_an_admin`.

use crate::helpers::{TestApp, unique};

#[tokio::test]
async fn only_server_administrators_read_the_stats() {
    let u = unique();
    let named = format!("carol_{u}");
    let admins = named.clone();
    let app = TestApp::spawn_with(move |s| s.admin_usernames = format!(" nobody , {admins}")).await;
    // Each test has its own database: the first user registered is alice.
    let alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    let carol = app.register(&named).await;
    let room = app.create_room(&alice, &format!("s-{u}"), "public").await;
    app.join(&bob, room).await.assert_status(200);
    for i in 0..3 {
        app.say(&bob, room, &format!("m{i}")).await;
    }
    app.project().await;

    for admin in [&alice, &carol] {
        let res = app.get("/v1/admin/stats", &admin.token).await;
        let stats = res.assert_status(200);
        assert_eq!(stats["users"], 3, "{stats}");
        assert_eq!(stats["rooms"], 1);
        assert_eq!(stats["messages"], 3);
        assert!(
            stats["events_per_second"].as_f64().unwrap() > 0.0,
            "{stats}"
        );
        let head = stats["log_head"].as_i64().unwrap();
        let projections = stats["projections"].as_array().unwrap();
        let read_models = projections
            .iter()
            .find(|p| p["projection"] == "read_models")
            .expect("read_models");
        assert_eq!(read_models["lag"], 0, "projected up to {head}: {stats}");
    }
    let res = app.get("/v1/admin/stats", &bob.token).await;
    res.assert_error(403, "not_an_admin");
    let res = app.get_with("/v1/admin/stats", None, &[]).await;
    assert_eq!(res.status, 401);
    app.cleanup().await;
}
