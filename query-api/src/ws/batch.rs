//! Batching of presence and typing fan-out (ADR 19): what goes out per window, and the
//! frames that carry several changes at once.
//!
//! Both follow one rule, a throttle with a trailing flush: the first notice after a quiet
//! window goes out at once (a lone typist or a lone sign-in sees no added delay); notices
//! within the window after it wait for the window's end and go out together, one frame per
//! recipient. A room of 1,000 members thus gets at most one typing frame per member per
//! window however many type, and a node at most one presence frame per recipient per window
//! however many sign in.

use crate::ws::protocol::Frame;
use chrono::{DateTime, Utc};
use events::{RoomId, UserId};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

/// Typists named in one typing frame; more in one window are dropped from it (they show
/// at the next notice, 3 s later in the web client).
pub const MAX_TYPISTS_PER_FRAME: usize = 32;

/// A leading-edge throttle: at most one flush per `window`.
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<Instant>,
    /// A trailing flush is due at this instant (its timer runs).
    due: Option<Instant>,
}

/// What to do with a notice.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Send it now (the window was quiet); the throttle counts it as a flush.
    Now,
    /// Hold it and start a timer for this instant, then call [`Throttle::flushed`].
    Schedule(Instant),
    /// Hold it: a flush is already due.
    Held,
}

impl Throttle {
    pub fn offer(&mut self, now: Instant, window: Duration) -> Offer {
        if self.due.is_some() {
            return Offer::Held;
        }
        match self.last {
            Some(last) if now < last + window => {
                let at = last + window;
                self.due = Some(at);
                Offer::Schedule(at)
            }
            _ => {
                self.last = Some(now);
                Offer::Now
            }
        }
    }

    /// The trailing flush ran at `now`.
    pub fn flushed(&mut self, now: Instant) {
        self.due = None;
        self.last = Some(now);
    }

    /// Nothing sent within `window` and nothing due: the throttle may be forgotten.
    pub fn idle(&self, now: Instant, window: Duration) -> bool {
        self.due.is_none() && self.last.is_none_or(|l| now >= l + window)
    }
}

/// `typists` typed in `room_id`: one typist keeps the frame of the public API
/// (`{"type":"typing","room_id","user_id"}`); several add `user_ids`, all of them
/// (`user_id` is the first, for clients that read only it).
pub fn typing_frame(room_id: RoomId, typists: &[UserId]) -> Option<Frame> {
    let first = typists.first()?;
    let mut value = json!({ "type": "typing", "room_id": room_id, "user_id": first });
    if typists.len() > 1 {
        value["user_ids"] = json!(typists);
    }
    Some(Frame::new("typing", &value))
}

/// One user's presence change, as clients are told it.
#[derive(Clone, Debug)]
pub struct PresenceChange {
    pub user: UserId,
    pub online: bool,
    pub at: DateTime<Utc>,
}

impl PresenceChange {
    fn value(&self) -> Value {
        json!({
            "type": "presence",
            "user_id": self.user,
            "status": if self.online { "online" } else { "offline" },
            "last_seen": self.at,
        })
    }
}

/// A frame telling these changes: one keeps the frame of the public API
/// (`{"type":"presence","user_id","status","last_seen"}`); several add `changes`, each of
/// that shape (the top-level fields are the first's, for clients that read only them).
pub fn presence_frame<'a>(mut changes: impl Iterator<Item = &'a PresenceChange>) -> Option<Frame> {
    let first = changes.next()?;
    let mut value = first.value();
    let rest: Vec<Value> = changes.map(PresenceChange::value).collect();
    if !rest.is_empty() {
        let mut all = Vec::with_capacity(rest.len() + 1);
        all.push(first.value());
        all.extend(rest);
        value["changes"] = Value::Array(all);
    }
    Some(Frame::new("presence", &value))
}

/// The last change per user, in the order of each user's first change: a flap within
/// one window (offline, then online again) is told as where it ended.
pub fn latest_per_user(changes: Vec<PresenceChange>) -> Vec<PresenceChange> {
    let mut index: std::collections::HashMap<UserId, usize> = Default::default();
    let mut out: Vec<PresenceChange> = Vec::with_capacity(changes.len());
    for c in changes {
        match index.get(&c.user) {
            Some(&i) => out[i] = c,
            None => {
                index.insert(c.user, out.len());
                out.push(c);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const W: Duration = Duration::from_millis(500);

    fn parsed(frame: Option<Frame>) -> Value {
        let frame = frame.expect("a frame");
        serde_json::from_str(frame.text.as_str()).expect("JSON")
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_notice_goes_at_once_and_the_rest_of_the_window_waits_for_its_end() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert_eq!(t.offer(t0, W), Offer::Now);
        let later = t0 + Duration::from_millis(100);
        assert_eq!(t.offer(later, W), Offer::Schedule(t0 + W));
        assert_eq!(t.offer(later, W), Offer::Held);
        assert!(!t.idle(t0 + W * 10, W), "a due flush keeps it");
        t.flushed(t0 + W);
        // Right after a flush the window starts again.
        assert_eq!(
            t.offer(t0 + W + Duration::from_millis(1), W),
            Offer::Schedule(t0 + W * 2)
        );
        t.flushed(t0 + W * 2);
        // After a quiet window: at once again.
        assert_eq!(t.offer(t0 + W * 4, W), Offer::Now);
        assert!(!t.idle(t0 + W * 4, W));
        assert!(t.idle(t0 + W * 5, W));
    }

    #[test]
    fn one_typist_keeps_the_public_frame_and_several_are_all_named() {
        let room = RoomId(Uuid::new_v4());
        let (a, b) = (UserId(Uuid::new_v4()), UserId(Uuid::new_v4()));
        let one: Value = parsed(typing_frame(room, &[a]));
        assert_eq!(
            one,
            json!({ "type": "typing", "room_id": room, "user_id": a })
        );
        let two: Value = parsed(typing_frame(room, &[a, b]));
        assert_eq!(
            two,
            json!({ "type": "typing", "room_id": room, "user_id": a, "user_ids": [a, b] })
        );
        assert!(typing_frame(room, &[]).is_none());
    }

    #[test]
    fn a_flap_within_a_window_is_told_as_where_it_ended_in_first_seen_order() {
        let (a, b) = (UserId(Uuid::new_v4()), UserId(Uuid::new_v4()));
        let at = Utc::now();
        let c = |user, online| PresenceChange { user, online, at };
        let got = latest_per_user(vec![c(a, false), c(b, true), c(a, true)]);
        let got: Vec<(UserId, bool)> = got.iter().map(|c| (c.user, c.online)).collect();
        assert_eq!(got, vec![(a, true), (b, true)]);

        let one = [c(a, true)];
        let v: Value = parsed(presence_frame(one.iter()));
        assert_eq!(v["user_id"], json!(a));
        assert!(v.get("changes").is_none());
        let two = [c(a, true), c(b, false)];
        let v: Value = parsed(presence_frame(two.iter()));
        assert_eq!(v["user_id"], json!(a));
        assert_eq!(v["changes"][1]["user_id"], json!(b));
        assert_eq!(v["changes"][1]["status"], "offline");
    }
}
