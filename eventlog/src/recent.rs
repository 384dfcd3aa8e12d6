//! The events this process committed most recently, for the relay: publishing them needs no
//! read back from PostgreSQL.
//!
//! The group committer adds a batch's events only after its `COMMIT` succeeded, with the
//! positions and versions the transaction gave them, so everything here is in the log exactly
//! as stored. Other processes' commits are not here: the relay reads from the log whatever
//! this buffer does not hold as one contiguous run.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use chrono::{DateTime, Utc};

use crate::store::{AppendRequest, Appended, RecordedEvent};

/// Events kept by default (about a second of writes at a high rate).
pub const DEFAULT_CAPACITY: usize = 8192;

/// A bounded, position-ordered buffer of committed events. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Recent {
    inner: Arc<Mutex<VecDeque<Arc<RecordedEvent>>>>,
    capacity: usize,
    /// Batches between [`Self::begin`] and [`Self::committed`].
    in_flight: Arc<AtomicUsize>,
    /// Woken after every batch.
    settled: Arc<Notify>,
}

impl Default for Recent {
    fn default() -> Self {
        Recent::new(DEFAULT_CAPACITY)
    }
}

impl Recent {
    pub fn new(capacity: usize) -> Self {
        Recent {
            inner: Arc::default(),
            capacity: capacity.max(1),
            in_flight: Arc::default(),
            settled: Arc::default(),
        }
    }

    /// The committer is about to run a batch: until [`Self::committed`], a commit's NOTIFY
    /// may reach the relay before its events are here.
    pub(crate) fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    /// Ends a batch begun with [`Self::begin`], recording the events of every request that
    /// was committed (`Ok`) in it.
    pub(crate) fn committed<'a>(
        &self,
        batch: impl IntoIterator<Item = (AppendRequest, &'a Appended)>,
    ) {
        self.add(batch);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.settled.notify_waiters();
    }

    fn add<'a>(&self, batch: impl IntoIterator<Item = (AppendRequest, &'a Appended)>) {
        let mut added = Vec::new();
        for (req, appended) in batch {
            let AppendRequest {
                stream_id,
                stream_type,
                events,
                ..
            } = req;
            for (i, ev) in (0i64..).zip(events) {
                added.push(Arc::new(RecordedEvent {
                    position: appended.first_position + i,
                    event_id: ev.event_id,
                    stream_id: stream_id.clone(),
                    stream_type: stream_type.clone(),
                    version: appended.first_version + i,
                    event_type: ev.event_type,
                    schema_version: ev.schema_version,
                    occurred_at: as_stored(ev.occurred_at),
                    actor_id: ev.actor_id,
                    correlation_id: ev.correlation_id,
                    causation_id: ev.causation_id,
                    data: ev.data,
                }));
            }
        }
        if added.is_empty() {
            return;
        }
        let mut buf = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Positions only grow (commits are serialised by the head lock); anything else means
        // the buffer cannot be trusted to be ordered, so start over.
        if buf
            .back()
            .zip(added.first())
            .is_some_and(|(b, a)| a.position <= b.position)
        {
            buf.clear();
        }
        buf.extend(added);
        while buf.len() > self.capacity {
            buf.pop_front();
        }
    }

    /// [`Self::run_from`], but when `next` is not here while a batch is being committed,
    /// first waits (at most `wait`) for that batch to be handed over: it may be the commit
    /// whose NOTIFY woke the relay.
    pub async fn run_from_settled(
        &self,
        next: i64,
        max: usize,
        wait: std::time::Duration,
    ) -> Vec<Arc<RecordedEvent>> {
        let run = self.run_from(next, max);
        if !run.is_empty() || self.in_flight.load(Ordering::SeqCst) == 0 {
            return run;
        }
        // Registered before the second look, so a hand-over in between is not missed.
        let settled = self.settled.notified();
        let run = self.run_from(next, max);
        if !run.is_empty() {
            return run;
        }
        let _ = tokio::time::timeout(wait, settled).await;
        self.run_from(next, max)
    }

    /// The events at positions `next, next + 1, …` (at most `max`) that are here without a
    /// gap, oldest first; empty when `next` is not here. Older events are dropped: the relay
    /// asks in order.
    pub fn run_from(&self, next: i64, max: usize) -> Vec<Arc<RecordedEvent>> {
        let mut buf = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while buf.front().is_some_and(|e| e.position < next) {
            buf.pop_front();
        }
        (next..)
            .zip(buf.iter())
            .take(max)
            .take_while(|(want, ev)| ev.position == *want)
            .map(|(_, ev)| ev.clone())
            .collect()
    }
}

/// A timestamp as PostgreSQL keeps it (whole microseconds; sqlx truncates when encoding).
fn as_stored(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ExpectedVersion, NewEvent};
    use uuid::Uuid;

    fn req(stream: &str, n: usize) -> AppendRequest {
        AppendRequest {
            stream_id: stream.to_owned(),
            stream_type: "t".to_owned(),
            expected: ExpectedVersion::Any,
            events: (0..n)
                .map(|_| NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: "E".to_owned(),
                    schema_version: 1,
                    data: serde_json::json!({}),
                    occurred_at: Utc::now(),
                    actor_id: None,
                    correlation_id: Uuid::now_v7(),
                    causation_id: None,
                })
                .collect(),
            idempotency: Vec::new(),
        }
    }

    fn appended(first_position: i64, first_version: i64, n: i64) -> Appended {
        Appended {
            first_version,
            last_version: first_version + n - 1,
            first_position,
            last_position: first_position + n - 1,
        }
    }

    fn positions(run: &[Arc<RecordedEvent>]) -> Vec<i64> {
        run.iter().map(|e| e.position).collect()
    }

    #[test]
    fn a_run_stops_at_a_gap_and_at_max_and_older_events_are_dropped() {
        let recent = Recent::new(100);
        let a = appended(1, 1, 2);
        let b = appended(3, 1, 1);
        recent.begin();
        recent.committed([(req("a", 2), &a), (req("b", 1), &b)]);
        // Positions 4 and 5 were another process's commit.
        let c = appended(6, 3, 2);
        recent.begin();
        recent.committed([(req("a", 2), &c)]);

        assert_eq!(positions(&recent.run_from(1, 2)), vec![1, 2]);
        assert_eq!(positions(&recent.run_from(2, 10)), vec![2, 3]);
        assert!(recent.run_from(4, 10).is_empty());
        let run = recent.run_from(6, 10);
        assert_eq!(positions(&run), vec![6, 7]);
        assert_eq!((run[0].stream_id.as_str(), run[0].version), ("a", 3));
        assert_eq!(run[1].version, 4);
        assert!(recent.run_from(8, 10).is_empty());
    }

    // The clock is paused: timers fire in order as soon as every task waits, so the
    // committer's delay orders it after the relay's look, without real waiting.
    #[tokio::test(start_paused = true)]
    async fn a_run_asked_for_during_a_commit_waits_for_its_hand_over() {
        let recent = Recent::new(100);
        // Not committing: nothing to wait for.
        let started = tokio::time::Instant::now();
        let long = std::time::Duration::from_secs(10);
        assert!(recent.run_from_settled(1, 10, long).await.is_empty());
        assert!(started.elapsed() < long / 2);
        recent.begin();
        let committer = {
            let recent = recent.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let a = appended(1, 1, 3);
                recent.committed([(req("a", 3), &a)]);
            })
        };
        let asked = tokio::time::Instant::now();
        let run = recent.run_from_settled(1, 10, long).await;
        assert_eq!(positions(&run), vec![1, 2, 3]);
        // Woken by the hand-over, not by the end of the wait.
        assert!(asked.elapsed() < long / 2);
        committer.await.expect("committer task");
    }

    #[test]
    fn capacity_bounds_the_buffer_and_timestamps_are_whole_microseconds() {
        let recent = Recent::new(3);
        let a = appended(1, 1, 5);
        recent.begin();
        recent.committed([(req("a", 5), &a)]);
        assert!(recent.run_from(1, 10).is_empty());
        let run = recent.run_from(3, 10);
        assert_eq!(positions(&run), vec![3, 4, 5]);
        assert_eq!(run[0].occurred_at.timestamp_subsec_nanos() % 1000, 0);
    }
}
