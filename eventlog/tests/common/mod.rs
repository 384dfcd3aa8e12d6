#![allow(dead_code, clippy::unwrap_used)]

use chrono::Utc;
use eventlog::{AppendRequest, ExpectedVersion, IdempotencyClaim, IdempotencyScope, NewEvent};
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
        scope: IdempotencyScope::named(scope),
        key: key.to_owned(),
        fingerprint: format!("fp-{key}"),
    }
}

pub async fn count_events(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Polls the JetStream stream until its last sequence reaches `target` (or the deadline passes).
pub async fn wait_for_stream(
    client: &async_nats::Client,
    stream_name: &str,
    target: u64,
    deadline: std::time::Duration,
) -> bool {
    let js = async_nats::jetstream::new(client.clone());
    let until = std::time::Instant::now() + deadline;
    loop {
        if let Ok(stream) = js.get_stream(stream_name).await
            && stream.cached_info().state.last_sequence >= target
        {
            return true;
        }
        if std::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The stream holds exactly the log's events, each once, in order: sequence == position,
/// Nats-Msg-Id == event_id, payload == the RecordedEvent.
pub async fn assert_stream_equals_log(
    client: &async_nats::Client,
    stream_name: &str,
    prefix: &str,
    pool: &sqlx::PgPool,
) {
    let log = eventlog::testing::read_all(pool, 0, i64::MAX)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let stream = js.get_stream(stream_name).await.unwrap();
    let state = stream.cached_info().state.clone();
    assert_eq!(state.messages, log.len() as u64, "message count");
    assert_eq!(state.last_sequence, log.len() as u64, "last sequence");
    if !log.is_empty() {
        assert_eq!(state.first_sequence, 1, "first sequence");
    }
    for event in &log {
        let msg = stream.get_raw_message(event.position as u64).await.unwrap();
        assert_eq!(msg.sequence, event.position as u64);
        assert_eq!(
            msg.headers
                .get("Nats-Msg-Id")
                .map(|v| v.as_str().to_owned()),
            Some(event.event_id.to_string())
        );
        assert_eq!(
            msg.headers
                .get("Chat-Position")
                .map(|v| v.as_str().to_owned()),
            Some(event.position.to_string())
        );
        assert_eq!(
            msg.headers
                .get("Chat-Version")
                .map(|v| v.as_str().to_owned()),
            Some(event.version.to_string())
        );
        assert_eq!(
            msg.subject.as_str(),
            eventlog::subject_for(prefix, &event.stream_type, &event.stream_id)
        );
        let published: eventlog::RecordedEvent = serde_json::from_slice(&msg.payload).unwrap();
        assert_eq!(&published, event);
    }
}

/// Appends `total` events from `writers` concurrent tasks (10 events per append).
pub async fn append_events(store: &eventlog::PgEventStore, writers: usize, total: usize) {
    append_events_paced(store, writers, total, std::time::Duration::ZERO).await;
}

/// [`append_events`] with a pause of `pause` after each append of each writer, so that the
/// appends are spread over a time that does not depend on how fast the machine is.
pub async fn append_events_paced(
    store: &eventlog::PgEventStore,
    writers: usize,
    total: usize,
    pause: std::time::Duration,
) {
    use eventlog::EventStore;
    let per_writer = total / writers;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut left = per_writer;
            while left > 0 {
                let n = left.min(10);
                store
                    .append(request(
                        &format!("room.{w} x*>"),
                        eventlog::ExpectedVersion::Any,
                        n,
                    ))
                    .await
                    .unwrap();
                left -= n;
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Waits (up to 30 s) until the relay `task` has published up to `head`, stops it through
/// `stop`, and checks that the stream holds exactly the log.
pub async fn stop_when_caught_up(
    nats: &eventlog::testing::TestNats,
    db: &eventlog::testing::TestDb,
    head: i64,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    failure: &str,
) {
    assert!(
        wait_for_stream(
            &nats.client,
            &nats.stream_name,
            u64::try_from(head).unwrap(),
            std::time::Duration::from_secs(30)
        )
        .await,
        "{failure}"
    );
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_stream_equals_log(&nats.client, &nats.stream_name, &nats.prefix, &db.pool).await;
}
