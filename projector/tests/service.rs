//! The projector process: it runs every projection it is given, each with its own consumer,
//! reports each one's checkpoint on `/readyz` and labels `/metrics` by projection; an unknown
//! projection name is refused with the known ones.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Harness;
use common::message_counts::{MESSAGE_COUNTS, MessageCounts};
use serde_json::Value;

async fn get(base: &str, path: &str) -> reqwest::Response {
    reqwest::get(format!("{base}{path}")).await.expect(path)
}

#[tokio::test]
async fn readyz_reports_the_checkpoint_of_every_running_projection() {
    let h = Harness::new().await;
    let unknown = projector::startup::build(h.settings(), &["nonexistent".to_owned()]).await;
    let err = format!(
        "{:#}",
        unknown.err().expect("an unknown projection is refused")
    );
    assert!(err.contains("known: read_models, search"), "{err}");

    common::setup_world(&h.store, 5, 2, 1, 3).await;
    h.relay().publish_pending().await.expect("publish");
    let head = h.head().await;
    let pool = h.db.pool.clone();
    let mut projections = projector::registry(
        &pool,
        projector::SearchIndex::from_settings(h.settings().search),
    );
    projections.push(Arc::new(MessageCounts::create(&pool).await));
    let app = projector::startup::with_projections(h.settings(), pool.clone(), pool, projections)
        .await
        .expect("application");
    let base = format!("http://{}", app.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));

    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        let body: Value = get(&base, "/readyz").await.json().await.expect("json");
        let at = |name: &str| body["checks"]["postgres"]["detail"][name].as_i64();
        if at(projector::READ_MODELS) == Some(head) && at(MESSAGE_COUNTS) == Some(head) {
            break body;
        }
        assert!(Instant::now() < deadline, "not caught up: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready["ready"], Value::Bool(true), "{ready}");

    let metrics = get(&base, "/metrics").await.text().await.expect("text");
    for name in [projector::READ_MODELS, MESSAGE_COUNTS] {
        let line = format!("chat_projector_checkpoint{{projection=\"{name}\"}} {head}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
        let lag = format!("chat_projector_lag_events{{projection=\"{name}\"}} 0");
        assert!(metrics.contains(&lag), "{lag} in\n{metrics}");
    }
    let epoch = |m: &str| m.contains("chat_projection_epoch{projection=\"read_models\"} 1");
    assert!(epoch(&metrics), "epoch 1 in\n{metrics}");

    // A rebuild run beside it (as `projector rebuild` would) shows on its metrics.
    let lines =
        projector::startup::rebuild(&h.settings(), &[projector::READ_MODELS.into()], &|_| {})
            .await
            .expect("rebuild");
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("rebuilt read_models: "), "{lines:?}");
    assert!(lines[0].contains("epoch 2"), "{lines:?}");
    let metrics = get(&base, "/metrics").await.text().await.expect("text");
    for line in [
        "chat_projection_epoch{projection=\"read_models\"} 2",
        "chat_projection_rebuild_progress{projection=\"read_models\"} 1",
        "chat_projection_rebuild_running{projection=\"read_models\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let rate: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("chat_projection_rebuild_events_per_second{projection=\"read_models\"} ")
        })
        .expect("a rebuild rate")
        .parse()
        .expect("a number");
    assert!(rate > 0.0, "{rate}");

    let _ = stop.send(());
    running.await.expect("join").expect("run");
    h.nats.cleanup().await;
}
