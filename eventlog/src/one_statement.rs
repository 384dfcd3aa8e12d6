//! The one-statement append: group commit's fast path (ADR 8).
//!
//! [`append_locked`](crate::append_locked) reads the head, the versions of the batch's
//! streams and the taken idempotency keys under the head lock, decides in Rust and writes:
//! with `BEGIN` and `COMMIT` that is four round trips, all of them under the lock that every
//! other append waits for. When every request of a batch states what it expects of its
//! stream (`NoStream` or `Exact`), the decision needs none of those reads, because the
//! database's constraints already check what the reads would have:
//!
//! * `Exact(v)` with `v > 0` holds when version `v` of the stream exists (checked in the
//!   statement) and version `v + 1` does not (the unique `(stream_id, version)` index
//!   rejects the insert otherwise). Versions of a stream are contiguous, so the stream is
//!   then exactly at `v`. `NoStream` (and `Exact(0)`) is the same check with nothing to
//!   look up: version 1 must not exist.
//! * A claimed idempotency key is new when its insert does not hit the primary key.
//! * Positions are `head + 1 ..`: the statement takes the head row's lock by updating it,
//!   and returns the head it moved from.
//!
//! So one statement in autocommit (one round trip, and its commit) appends the batch. If a
//! check fails, or a unique index rejects a row, nothing is written and the caller runs the
//! batch again on the locked path, which tells each request what went wrong. A stale check
//! only errs towards that fallback: the statement's snapshot is taken before the lock, so it
//! may miss a version committed since, never show one that does not exist; the unique
//! indexes see every committed row.

use std::collections::{HashMap, HashSet};

use sqlx::PgExecutor;

use crate::postgres::{APPENDED_CHANNEL, ClaimColumns, EventColumns, is_unique_violation};
use crate::store::{AppendError, AppendRequest, Appended, ExpectedVersion};

/// A batch laid out for [`append_one_statement`], with positions relative to the head.
pub(crate) struct Plan {
    /// `events.position` holds offsets from the head (1, 2, ...).
    events: EventColumns,
    /// Positions relative to the head, like `events`.
    claims: ClaimColumns,
    /// `(stream, version)` pairs that must exist.
    check_stream: Vec<String>,
    check_version: Vec<i64>,
    /// Per request, with positions relative to the head.
    results: Vec<Appended>,
}

impl Plan {
    /// Lays the batch out, or `None` when it needs the locked path: a request without
    /// events or with `ExpectedVersion::Any` (its outcome needs the stream's version), a
    /// request whose expectation does not follow the one before it on the same stream, or
    /// an idempotency key claimed twice in the batch (all rejections or rare).
    pub(crate) fn new(reqs: &[AppendRequest]) -> Option<Plan> {
        let mut plan = Plan {
            events: EventColumns::default(),
            claims: ClaimColumns::default(),
            check_stream: Vec::new(),
            check_version: Vec::new(),
            results: Vec::with_capacity(reqs.len()),
        };
        let mut versions: HashMap<&str, i64> = HashMap::with_capacity(reqs.len());
        let mut claimed: HashSet<(&str, &str)> = HashSet::new();
        let mut offset = 0i64;
        for req in reqs {
            if req.events.is_empty() {
                return None;
            }
            let expected = match req.expected {
                ExpectedVersion::Any => return None,
                ExpectedVersion::NoStream => 0,
                ExpectedVersion::Exact(v) => v,
            };
            match versions.get(req.stream_id.as_str()) {
                // A later request on the same stream must expect what the earlier one left.
                Some(&current) if current != expected => return None,
                Some(_) => {}
                None if expected > 0 => {
                    plan.check_stream.push(req.stream_id.clone());
                    plan.check_version.push(expected);
                }
                None => {}
            }
            let first_position = offset + 1;
            let mut version = expected;
            for ev in &req.events {
                offset += 1;
                version += 1;
                plan.events.push(offset, version, req, ev);
            }
            versions.insert(&req.stream_id, version);
            for c in &req.idempotency {
                if !claimed.insert((c.scope.as_str(), &c.key)) {
                    return None;
                }
                plan.claims.push(c, first_position, offset);
            }
            plan.results.push(Appended {
                first_version: expected + 1,
                last_version: version,
                first_position,
                last_position: offset,
            });
        }
        Some(plan)
    }

    /// The results once the head the batch was appended after is known.
    fn into_results(self, head: i64) -> Vec<Result<Appended, AppendError>> {
        self.results
            .into_iter()
            .map(|mut a| {
                a.first_position += head;
                a.last_position += head;
                Ok(a)
            })
            .collect()
    }
}

/// Appends `plan` in one statement. `Ok(None)` when a check failed or a unique index
/// rejected a row: nothing was written, and the batch needs the locked path. Run it in
/// autocommit: the statement's commit is the append's.
pub(crate) async fn append_one_statement<'e>(
    executor: impl PgExecutor<'e>,
    plan: Plan,
) -> Result<Option<Vec<Result<Appended, AppendError>>>, sqlx::Error> {
    let count = i64::try_from(plan.events.position.len()).unwrap_or(i64::MAX);
    let head: Result<Option<i64>, sqlx::Error> = sqlx::query_scalar(
        "WITH checked AS (SELECT NOT EXISTS (SELECT 1 FROM unnest($1::text[], $2::int8[]) \
           AS c(stream_id, version) WHERE NOT EXISTS (SELECT 1 FROM events e \
           WHERE e.stream_id = c.stream_id AND e.version = c.version)) AS ok), \
         head AS (UPDATE log_head SET position = position + $3 WHERE (SELECT ok FROM checked) \
           RETURNING position - $3 AS base), \
         ev AS (INSERT INTO events (position, event_id, stream_id, stream_type, version, \
           event_type, schema_version, occurred_at, actor_id, correlation_id, causation_id, data) \
           SELECT head.base + e.off, e.event_id, e.stream_id, e.stream_type, e.version, \
           e.event_type, e.schema_version, e.occurred_at, e.actor_id, e.correlation_id, \
           e.causation_id, e.data FROM head, UNNEST($4::int8[], $5::uuid[], $6::text[], \
           $7::text[], $8::int8[], $9::text[], $10::int4[], $11::timestamptz[], $12::uuid[], \
           $13::uuid[], $14::uuid[], $15::jsonb[]) AS e(off, event_id, stream_id, stream_type, \
           version, event_type, schema_version, occurred_at, actor_id, correlation_id, \
           causation_id, data)), \
         claims AS (INSERT INTO idempotency_keys (scope, key, fingerprint, first_position, \
           last_position) SELECT c.scope, c.key, c.fingerprint, head.base + c.first_off, \
           head.base + c.last_off FROM head, UNNEST($16::text[], $17::text[], $18::text[], \
           $19::int8[], $20::int8[]) AS c(scope, key, fingerprint, first_off, last_off)) \
         SELECT base, pg_notify($21, (base + $3)::text) FROM head",
    )
    .bind(&plan.check_stream)
    .bind(&plan.check_version)
    .bind(count)
    .bind(&plan.events.position)
    .bind(&plan.events.event_id)
    .bind(&plan.events.stream_id)
    .bind(&plan.events.stream_type)
    .bind(&plan.events.version)
    .bind(&plan.events.event_type)
    .bind(&plan.events.schema_version)
    .bind(&plan.events.occurred_at)
    .bind(&plan.events.actor_id)
    .bind(&plan.events.correlation_id)
    .bind(&plan.events.causation_id)
    .bind(&plan.events.data)
    .bind(&plan.claims.scope)
    .bind(&plan.claims.key)
    .bind(&plan.claims.fingerprint)
    .bind(&plan.claims.first_position)
    .bind(&plan.claims.last_position)
    .bind(APPENDED_CHANNEL)
    .fetch_optional(executor)
    .await;
    match head {
        Ok(Some(head)) => Ok(Some(plan.into_results(head))),
        Ok(None) => Ok(None),
        Err(e) if is_unique_violation(&e, None) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::{IdempotencyClaim, IdempotencyScope, NewEvent};

    fn request(stream: &str, expected: ExpectedVersion, events: usize) -> AppendRequest {
        AppendRequest {
            stream_id: stream.to_owned(),
            stream_type: "test".to_owned(),
            expected,
            events: (0..events)
                .map(|_| NewEvent {
                    event_id: uuid::Uuid::now_v7(),
                    event_type: "TestHappened".to_owned(),
                    schema_version: 1,
                    data: serde_json::json!({}),
                    occurred_at: chrono::Utc::now(),
                    actor_id: None,
                    correlation_id: uuid::Uuid::new_v4(),
                    causation_id: None,
                })
                .collect(),
            idempotency: Vec::new(),
        }
    }

    fn claim(key: &str) -> IdempotencyClaim {
        IdempotencyClaim {
            scope: IdempotencyScope::named("s"),
            key: key.to_owned(),
            fingerprint: "f".to_owned(),
        }
    }

    #[test]
    fn a_batch_is_laid_out_relative_to_the_head_with_versions_chained_per_stream() {
        let mut b = request("b", ExpectedVersion::NoStream, 1);
        b.idempotency.push(claim("k"));
        let reqs = [
            request("a", ExpectedVersion::Exact(4), 2),
            b,
            request("a", ExpectedVersion::Exact(6), 1),
        ];
        let plan = Plan::new(&reqs).unwrap();
        assert_eq!(plan.events.position, [1, 2, 3, 4]);
        assert_eq!(plan.events.version, [5, 6, 1, 7]);
        assert_eq!(plan.events.stream_id, ["a", "a", "b", "a"]);
        // Only the first expectation of a stream is looked up; NoStream needs nothing.
        assert_eq!(plan.check_stream, ["a"]);
        assert_eq!(plan.check_version, [4]);
        // A claim records the positions of its request's events.
        assert_eq!(plan.claims.first_position, [3]);
        assert_eq!(plan.claims.last_position, [3]);

        let results: Vec<Appended> = plan
            .into_results(100)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let ranges: Vec<_> = results
            .iter()
            .map(|a| {
                (
                    a.first_version,
                    a.last_version,
                    a.first_position,
                    a.last_position,
                )
            })
            .collect();
        assert_eq!(
            ranges,
            [(5, 6, 101, 102), (1, 1, 103, 103), (7, 7, 104, 104)]
        );
    }

    #[test]
    fn batches_the_statement_cannot_decide_go_to_the_locked_path() {
        let any = [request("a", ExpectedVersion::Any, 1)];
        let empty = [request("a", ExpectedVersion::Exact(3), 0)];
        let unchained = [
            request("a", ExpectedVersion::Exact(3), 1),
            request("a", ExpectedVersion::Exact(3), 1),
        ];
        let mut first = request("a", ExpectedVersion::NoStream, 1);
        first.idempotency.push(claim("k"));
        let mut second = request("b", ExpectedVersion::NoStream, 1);
        second.idempotency.push(claim("k"));
        let same_key = [first, second];
        for batch in [&any[..], &empty, &unchained, &same_key] {
            assert!(Plan::new(batch).is_none());
        }
    }
}
