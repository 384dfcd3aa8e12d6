#![allow(dead_code, clippy::unwrap_used)]

use chrono::Utc;
use eventlog::{AppendRequest, ExpectedVersion, IdempotencyClaim, NewEvent};
use uuid::Uuid;

pub fn event(n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "TestHappened".to_owned(),
        schema_version: 1,
        data: serde_json::json!({ "n": n }),
        occurred_at: Utc::now(),
        actor_id: Some(Uuid::new_v4()),
        correlation_id: Uuid::new_v4(),
        causation_id: None,
    }
}

pub fn request(stream_id: &str, expected: ExpectedVersion, events: usize) -> AppendRequest {
    AppendRequest {
        stream_id: stream_id.to_owned(),
        stream_type: "test".to_owned(),
        expected,
        events: (0..events as i64).map(event).collect(),
        idempotency: Vec::new(),
    }
}

pub fn claim(scope: &str, key: &str) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: scope.to_owned(),
        key: key.to_owned(),
        fingerprint: format!("fp-{key}"),
        status: 201,
        response: serde_json::json!({ "ok": true }),
    }
}

pub async fn count_events(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .unwrap()
}
