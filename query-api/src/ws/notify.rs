//! Per-user notifications over the live feed: a `notification` frame for a message in a room
//! a socket has not subscribed to, when its user's notification level there asks for it (a
//! mention, a direct message, or every message at level `all`). A client can then badge and
//! notify without subscribing to every room.
//!
//! # Whom to tell
//!
//! The node keeps, for each user with a socket here, the rooms they are joined to with the
//! room's kind and their level, read from the read models when their first socket opens. The
//! live event stream (every room's events, in log order) then decides:
//! - a `MessageSent` is checked against the users who have its room; the mentioned users are
//!   in the event already (resolved when the send was decided, members only);
//! - an event that changes one of those users' rooms or levels (a join, leave, kick, a direct
//!   room opened, a level changed) reloads that user's rooms.
//!
//! A load must not miss what happens meanwhile: it starts at the live position `p` it has seen,
//! waits until the read models have applied `p` (so the snapshot holds everything up to it),
//! and the messages that arrive while it runs are held and checked once it is in. A change of
//! the user's rooms during a load makes it run again.

use crate::ws::hub::Hub;
use crate::ws::protocol::{Frame, LiveEvent};
use events::room::RoomEvent;
use events::values::NotificationLevel;
use events::{RoomId, UserId};
use serde_json::json;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Messages held for a user whose rooms are loading; beyond it the oldest are dropped (a
/// notification is a hint, the room's unread count is the truth).
const MAX_HELD: usize = 1000;
/// How long a load waits for the read models to catch up before trying again.
const CATCH_UP: Duration = Duration::from_secs(10);
/// The pause before a failed load is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Why a user is told of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// They are named in it.
    Mention,
    /// It says `@room` (from an owner or admin).
    RoomMention,
    /// It is a direct message to them.
    Direct,
    /// Their level in the room is `all`.
    Message,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Mention => "mention",
            Reason::RoomMention => "room_mention",
            Reason::Direct => "direct",
            Reason::Message => "message",
        }
    }
}

/// What the notifier knows of one of a user's rooms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefs {
    pub direct: bool,
    pub level: NotificationLevel,
}

/// Whether (and why) `user`, with `prefs` in the room, is told of `event`; `None` for
/// anything but another member's message that their level asks for.
pub fn reason(user: UserId, prefs: Prefs, event: &RoomEvent) -> Option<Reason> {
    let RoomEvent::MessageSent {
        sender_id,
        mentions,
        mentions_room,
        ..
    } = event
    else {
        return None;
    };
    if *sender_id == user {
        return None;
    }
    let why = if mentions.contains(&user) {
        Some(Reason::Mention)
    } else if *mentions_room {
        Some(Reason::RoomMention)
    } else if prefs.direct {
        Some(Reason::Direct)
    } else {
        None
    };
    match prefs.level {
        NotificationLevel::None => None,
        NotificationLevel::Mentions => why,
        NotificationLevel::All => Some(why.unwrap_or(Reason::Message)),
    }
}

struct Loading {
    /// The live position the load must see applied.
    after: i64,
    /// Messages of any room that arrived meanwhile.
    held: Vec<Arc<LiveEvent>>,
    /// The user's rooms changed during the load: load again.
    again: bool,
}

#[derive(Default)]
struct Entry {
    loading: Option<Loading>,
    rooms: HashMap<RoomId, Prefs>,
}

#[derive(Default)]
struct State {
    /// The users whose `loading` is `Some`: a message is held for these, without looking at
    /// every connected user.
    loading: HashSet<UserId>,
    users: HashMap<UserId, Entry>,
    /// The loaded users of each room.
    by_room: HashMap<RoomId, HashSet<UserId>>,
}

/// This node's notifier (see the module docs).
pub struct Notifier {
    /// The last live position seen, of any stream ([`Notifier::saw`]).
    seen: AtomicI64,
    state: Mutex<State>,
    pool: PgPool,
    hub: Arc<Hub>,
}

impl Notifier {
    /// A notifier reading the read models in `pool`, delivering through `hub`, whose live
    /// events start after log position `start_after`.
    pub fn new(pool: PgPool, hub: Arc<Hub>, start_after: i64) -> Arc<Notifier> {
        Arc::new(Notifier {
            seen: AtomicI64::new(start_after),
            state: Mutex::new(State::default()),
            pool,
            hub,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether anyone here could be told anything (else events need not be decoded for it).
    pub fn active(&self) -> bool {
        !self.lock().users.is_empty()
    }

    /// Users whose rooms are being loaded (for tests and diagnostics).
    pub fn loading(&self) -> usize {
        self.lock().loading.len()
    }

    /// The live stream reached `position` (called for every event, before anything decodes
    /// it): a load starting now waits for the read models to hold it.
    pub fn saw(&self, position: i64) {
        self.seen.fetch_max(position, Ordering::AcqRel);
    }

    /// `user` opened their first socket on this node.
    pub fn connect(self: &Arc<Self>, user: UserId) {
        let mut st = self.lock();
        let after = self.seen.load(Ordering::Acquire);
        st.loading.insert(user);
        st.users.insert(
            user,
            Entry {
                loading: Some(Loading {
                    after,
                    held: Vec::new(),
                    again: false,
                }),
                rooms: HashMap::new(),
            },
        );
        drop(st);
        tokio::spawn(self.clone().load(user));
    }

    /// `user` closed their last socket on this node.
    pub fn disconnect(&self, user: UserId) {
        let mut st = self.lock();
        st.loading.remove(&user);
        if let Some(entry) = st.users.remove(&user) {
            for room in entry.rooms.keys() {
                unindex(&mut st.by_room, *room, user);
            }
        }
    }

    /// One live room event, in log order (every room's, subscribed here or not).
    pub fn on_event(self: &Arc<Self>, ev: &Arc<LiveEvent>) {
        let mut st = self.lock();
        if st.users.is_empty() {
            return;
        }
        let reload: Vec<UserId> = match &ev.event {
            RoomEvent::MemberJoined { user_id, .. }
            | RoomEvent::MemberLeft { user_id }
            | RoomEvent::MemberKicked { user_id, .. }
            | RoomEvent::MemberBanned { user_id, .. }
            | RoomEvent::NotificationLevelChanged { user_id, .. } => vec![*user_id],
            RoomEvent::DirectRoomOpened { user_ids, .. } => user_ids.to_vec(),
            RoomEvent::MessageSent { .. } => {
                drop(st);
                self.on_message(ev);
                return;
            }
            _ => return,
        };
        let position = ev.position;
        let mut start = Vec::new();
        let st = &mut *st;
        for user in reload {
            let Some(entry) = st.users.get_mut(&user) else {
                continue;
            };
            match &mut entry.loading {
                Some(l) => {
                    l.again = true;
                    l.after = l.after.max(position);
                }
                None => {
                    entry.loading = Some(Loading {
                        after: position,
                        held: Vec::new(),
                        again: false,
                    });
                    st.loading.insert(user);
                    start.push(user);
                }
            }
        }
        for user in start {
            tokio::spawn(self.clone().load(user));
        }
    }

    fn on_message(&self, ev: &Arc<LiveEvent>) {
        let mut told: Vec<(UserId, Reason)> = Vec::new();
        {
            let mut guard = self.lock();
            let st = &mut *guard;
            if let Some(users) = st.by_room.get(&ev.room_id) {
                for user in users {
                    let prefs = st
                        .users
                        .get(user)
                        .filter(|e| e.loading.is_none())
                        .and_then(|e| e.rooms.get(&ev.room_id));
                    if let Some(why) = prefs.and_then(|p| reason(*user, *p, &ev.event)) {
                        told.push((*user, why));
                    }
                }
            }
            for user in &st.loading {
                if let Some(l) = st.users.get_mut(user).and_then(|e| e.loading.as_mut()) {
                    if l.held.len() >= MAX_HELD {
                        l.held.remove(0);
                    }
                    l.held.push(ev.clone());
                }
            }
        }
        self.deliver(ev, &told);
    }

    fn deliver(&self, ev: &LiveEvent, told: &[(UserId, Reason)]) {
        let mut frames: HashMap<Reason, Frame> = HashMap::new();
        for (user, why) in told {
            let frame = frames
                .entry(*why)
                .or_insert_with(|| notification_frame(ev, *why));
            self.hub.notify(*user, ev.room_id, frame);
        }
    }

    /// Loads `user`'s rooms until a load finishes without their rooms changing meanwhile.
    async fn load(self: Arc<Self>, user: UserId) {
        loop {
            let after = {
                let st = self.lock();
                match st.users.get(&user).and_then(|e| e.loading.as_ref()) {
                    Some(l) => l.after,
                    None => return,
                }
            };
            let rooms = match self.read_rooms(user, after).await {
                Ok(rooms) => rooms,
                Err(e) => {
                    tracing::warn!(error = %e, %user, "loading a user's rooms for notifications failed");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            let held = {
                let mut guard = self.lock();
                let st = &mut *guard;
                let Some(entry) = st.users.get_mut(&user) else {
                    return;
                };
                let Some(loading) = entry.loading.as_mut() else {
                    return;
                };
                if loading.again {
                    loading.again = false;
                    continue;
                }
                let held = std::mem::take(&mut loading.held);
                entry.loading = None;
                st.loading.remove(&user);
                let old: Vec<RoomId> = entry.rooms.keys().copied().collect();
                entry.rooms = rooms;
                let new: Vec<RoomId> = entry.rooms.keys().copied().collect();
                for room in old {
                    unindex(&mut st.by_room, room, user);
                }
                for room in new {
                    st.by_room.entry(room).or_default().insert(user);
                }
                let entry = &st.users[&user];
                held.into_iter()
                    .filter_map(|ev| {
                        let prefs = entry.rooms.get(&ev.room_id)?;
                        reason(user, *prefs, &ev.event).map(|why| (ev, why))
                    })
                    .collect::<Vec<_>>()
            };
            for (ev, why) in held {
                self.deliver(&ev, &[(user, why)]);
            }
            return;
        }
    }

    /// The user's joined rooms with their kind and level, once the read models have applied
    /// position `after`.
    async fn read_rooms(&self, user: UserId, after: i64) -> anyhow::Result<HashMap<RoomId, Prefs>> {
        crate::routes::consistency::wait_for(&self.pool, after, CATCH_UP)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        let rows: Vec<(uuid::Uuid, String, Option<String>)> = sqlx::query_as(
            "SELECT m.room_id, r.kind, nl.level
               FROM rm_members m
               JOIN rm_rooms r ON r.room_id = m.room_id
               LEFT JOIN rm_notification_levels nl
                      ON nl.room_id = m.room_id AND nl.user_id = m.user_id
              WHERE m.user_id = $1 AND m.status = 'joined'",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(room, kind, level)| {
                let direct = kind == "direct";
                let level = level
                    .as_deref()
                    .and_then(NotificationLevel::parse)
                    .unwrap_or(if direct {
                        NotificationLevel::All
                    } else {
                        NotificationLevel::Mentions
                    });
                (RoomId(room), Prefs { direct, level })
            })
            .collect())
    }
}

fn unindex(by_room: &mut HashMap<RoomId, HashSet<UserId>>, room: RoomId, user: UserId) {
    if let Some(users) = by_room.get_mut(&room) {
        users.remove(&user);
        if users.is_empty() {
            by_room.remove(&room);
        }
    }
}

/// `{"type":"notification","room_id","reason","message_id","seq","sender_id","body","position"}`
fn notification_frame(ev: &LiveEvent, why: Reason) -> Frame {
    let RoomEvent::MessageSent {
        message_id,
        seq,
        sender_id,
        body,
        ..
    } = &ev.event
    else {
        unreachable!("only messages are notified");
    };
    Frame::new(
        "notification",
        &json!({
            "type": "notification",
            "room_id": ev.room_id,
            "reason": why.as_str(),
            "message_id": message_id,
            "seq": seq,
            "sender_id": sender_id,
            "body": body.as_str(),
            "position": ev.position,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::MessageId;
    use events::values::MessageBody;

    fn sent(sender: UserId, mentions: Vec<UserId>, room: bool) -> RoomEvent {
        RoomEvent::MessageSent {
            message_id: MessageId::new(),
            seq: 1,
            sender_id: sender,
            body: MessageBody::parse("hi").expect("body"),
            reply_to: None,
            client_msg_id: None,
            attachments: Vec::new(),
            mentions,
            mentions_room: room,
        }
    }

    #[test]
    fn each_level_asks_for_what_it_says() {
        let (me, other) = (UserId::new(), UserId::new());
        let group = |level| Prefs {
            direct: false,
            level,
        };
        let direct = |level| Prefs {
            direct: true,
            level,
        };
        use NotificationLevel::{All, Mentions, None as Nothing};
        let plain = sent(other, vec![], false);
        let named = sent(other, vec![me], false);
        let everyone = sent(other, vec![], true);
        assert_eq!(reason(me, group(Mentions), &plain), None);
        assert_eq!(reason(me, group(Mentions), &named), Some(Reason::Mention));
        assert_eq!(
            reason(me, group(Mentions), &everyone),
            Some(Reason::RoomMention)
        );
        assert_eq!(reason(me, group(All), &plain), Some(Reason::Message));
        assert_eq!(reason(me, group(Nothing), &named), None);
        assert_eq!(reason(me, direct(Mentions), &plain), Some(Reason::Direct));
        assert_eq!(reason(me, direct(All), &plain), Some(Reason::Direct));
        assert_eq!(reason(me, direct(Nothing), &plain), None);
        // Nobody is told of their own message.
        assert_eq!(reason(me, group(All), &sent(me, vec![me], true)), None);
    }
}
