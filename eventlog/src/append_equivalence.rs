//! The two append algorithms must be one: the same random batches, appended by the
//! one-statement path (with its fallback, as group commit runs it) into one database and by
//! the locked path alone into another, leave identical logs, identical idempotency records
//! and identical answers.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;

use crate::group_commit::try_commit_for_test;
use crate::postgres::{BEGIN_APPEND, append_locked, read_all};
use crate::store::{
    AppendError, AppendRequest, Appended, ExpectedVersion, IdempotencyClaim, IdempotencyScope,
    NewEvent,
};
use crate::testing::TestDb;

const STREAMS: usize = 6;
const KEYS: usize = 12;

/// A batch of requests over a few streams. Expectations follow `known` (the versions the
/// streams would have if every earlier request had been accepted), and about one in six is
/// deliberately wrong; about one in four claims a key from a small pool, so keys are taken
/// twice within a batch and across batches.
fn batch(rng: &mut StdRng, known: &mut HashMap<String, i64>) -> Vec<AppendRequest> {
    let size = rng.random_range(1..=24);
    (0..size)
        .map(|_| {
            let stream = format!("s-{}", rng.random_range(0..STREAMS));
            let current = known.get(&stream).copied().unwrap_or(0);
            let believed = if rng.random_ratio(1, 6) {
                (current + rng.random_range(-2..=2)).max(0)
            } else {
                current
            };
            let expected = match believed {
                0 => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(v),
            };
            let events = rng.random_range(1..=3);
            known.insert(stream.clone(), believed + events);
            let mut idempotency = Vec::new();
            if rng.random_ratio(1, 4) {
                idempotency.push(IdempotencyClaim {
                    scope: IdempotencyScope::named("scope"),
                    key: format!("k{}", rng.random_range(0..KEYS)),
                    fingerprint: "f".to_owned(),
                });
            }
            AppendRequest {
                stream_id: stream,
                stream_type: "test".to_owned(),
                expected,
                events: (0..events)
                    .map(|i| NewEvent {
                        event_id: uuid::Uuid::now_v7(),
                        event_type: "TestHappened".to_owned(),
                        schema_version: 1,
                        data: serde_json::json!({ "i": i, "r": rng.random::<u32>() }),
                        occurred_at: chrono::Utc::now(),
                        actor_id: None,
                        correlation_id: uuid::Uuid::now_v7(),
                        causation_id: None,
                    })
                    .collect(),
                idempotency,
            }
        })
        .collect()
}

async fn locked_path(pool: &PgPool, reqs: &[AppendRequest]) -> Vec<Result<Appended, AppendError>> {
    let mut tx = pool.begin_with(BEGIN_APPEND).await.expect("begin");
    let results = append_locked(&mut tx, reqs).await.expect("append_locked");
    tx.commit().await.expect("commit");
    results
}

/// What a result says, comparable across databases.
fn answer(r: &Result<Appended, AppendError>) -> String {
    match r {
        Ok(a) => format!("{a:?}"),
        Err(AppendError::Conflict { actual, .. }) => format!("conflict at {actual}"),
        Err(AppendError::DuplicateIdempotencyKey { key, .. }) => format!("duplicate {key}"),
        Err(e) => panic!("unexpected failure: {e:?}"),
    }
}

async fn records(pool: &PgPool) -> Vec<(String, String, String, i64, i64)> {
    sqlx::query_as(
        "SELECT scope, key, fingerprint, first_position, last_position FROM idempotency_keys \
         ORDER BY scope, key",
    )
    .fetch_all(pool)
    .await
    .expect("idempotency records")
}

#[tokio::test]
async fn the_one_statement_and_the_locked_path_leave_identical_logs() {
    for seed in [1u64, 7, 42] {
        let one = TestDb::new().await.expect("database");
        let locked = TestDb::new().await.expect("database");
        let mut rng = StdRng::seed_from_u64(seed);
        let mut known = HashMap::new();
        let mut fallbacks = 0;
        for _ in 0..40 {
            let reqs = batch(&mut rng, &mut known);
            let a = try_commit_for_test(&one.pool, &reqs).await;
            let b = locked_path(&locked.pool, &reqs).await;
            let (a, b): (Vec<String>, Vec<String>) = (
                a.iter().map(answer).collect(),
                b.iter().map(answer).collect(),
            );
            if a.iter().any(|r| !r.starts_with("Appended")) {
                fallbacks += 1;
            }
            assert_eq!(a, b, "seed {seed}: answers differ");
            // Follow what the log really holds, so most expectations stay right.
            known.clear();
            for ev in read_all(&locked.pool, 0, i64::MAX).await.expect("log") {
                known.insert(ev.stream_id, ev.version);
            }
        }
        let log_a = read_all(&one.pool, 0, i64::MAX).await.expect("log");
        let log_b = read_all(&locked.pool, 0, i64::MAX).await.expect("log");
        assert!(
            log_a.len() > 100,
            "seed {seed}: only {} events",
            log_a.len()
        );
        assert_eq!(log_a, log_b, "seed {seed}: logs differ");
        assert_eq!(records(&one.pool).await, records(&locked.pool).await);
        // Both paths were exercised: some batches fell back to the locked path.
        assert!(
            fallbacks > 0,
            "seed {seed}: no batch needed the locked path"
        );
    }
}
