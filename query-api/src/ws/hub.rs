//! This node's fan-out: connections, their room subscriptions, and each
//! subscribed room's membership as the stream says it is now.
//!
//! All state sits behind one `std::sync::Mutex` that is never held across an
//! `.await`; delivery to a connection is a `try_send` on its bounded queue, so the
//! fan-out never blocks and a full queue closes that connection ("slow consumer").

use crate::ws::batch::{self, MAX_TYPISTS_PER_FRAME, Offer, PresenceChange, Throttle};
use crate::ws::membership::{self, Snapshot};
use crate::ws::protocol::{Frame, LiveEvent, is_hub_state};
use eventlog::PgEventStore;
use events::room::{RoomEvent, RoomState, evolve};
use events::{RoomId, UserId};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

pub type ConnId = u64;

/// Rooms one connection may subscribe to at once.
pub const MAX_ROOMS_PER_CONNECTION: usize = 1000;

/// Membership events buffered for a room while its snapshot loads.
const MAX_PENDING_WHILE_LOADING: usize = 10_000;

/// Why the server closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
    /// Metrics label.
    pub label: &'static str,
}

pub const SLOW_CONSUMER: Close = Close {
    code: 1008,
    reason: "slow consumer",
    label: "slow_consumer",
};

/// The server is shutting down (SIGTERM): clients reconnect, to another node or later.
pub const GOING_AWAY: Close = Close {
    code: 1001,
    reason: "server shutting down",
    label: "shutdown",
};

/// The user's account was deactivated by an administrator.
pub const DEACTIVATED: Close = Close {
    code: 4003,
    reason: "account deactivated",
    label: "deactivated",
};

/// A connection's close request: made once by the hub, awaited by the connection's writer.
/// (A `watch` channel did this in about 350 bytes per connection.)
#[derive(Debug, Default)]
pub struct Kill {
    close: OnceLock<Close>,
    notify: Notify,
}

impl Kill {
    /// Asks the writer to close with `close`; the first request wins.
    pub fn request(&self, close: Close) {
        if self.close.set(close).is_ok() {
            // Stores a permit when the writer is not waiting yet, so nothing is lost.
            self.notify.notify_one();
        }
    }

    /// Resolves with the close once one was requested.
    pub async fn requested(&self) -> Close {
        loop {
            if let Some(c) = self.close.get() {
                return *c;
            }
            self.notify.notified().await;
        }
    }
}

struct Conn {
    user: UserId,
    live: mpsc::Sender<Frame>,
    kill: Arc<Kill>,
    rooms: HashSet<RoomId>,
    dead: bool,
}

struct Sub {
    user: UserId,
    /// Highest version delivered (or, while back-filling, the `after_version` asked for).
    last_version: i64,
    /// `Some` while back-filling: live events held back until the back-fill is sent.
    buffer: Option<Buffer>,
}

#[derive(Default)]
struct Buffer {
    frames: Vec<(i64, Frame)>,
    overflowed: bool,
    /// The user left or was kicked while back-filling: drop the subscription at the end.
    removed: bool,
    /// The read models' epoch changed while back-filling: `resync` (reason `epoch`) once
    /// the subscription is confirmed.
    epoch_changed: bool,
}

enum Load {
    Loading {
        pending: Vec<Arc<LiveEvent>>,
        overflowed: bool,
        done: watch::Sender<Option<bool>>,
    },
    Loaded,
}

struct Room {
    load: Load,
    state: RoomState,
    version: i64,
    subs: HashMap<ConnId, Sub>,
    /// Typing notices of the current window (ADR 19); `None` until someone types.
    typing: Option<Box<Typing>>,
}

#[derive(Default)]
struct Typing {
    throttle: Throttle,
    /// Who typed since the last flush, in order, each once.
    pending: Vec<UserId>,
}

#[derive(Default)]
struct Inner {
    conns: HashMap<ConnId, Conn>,
    /// Each user's connections on this node: who to tell of a presence change, without
    /// looking at every connection.
    users: HashMap<UserId, Vec<ConnId>>,
    rooms: HashMap<RoomId, Room>,
    /// The read models' epoch as last told by [`Hub::on_epoch`].
    epoch: i64,
}

pub struct Hub {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    log: PgEventStore,
    queue_frames: usize,
    buffer_frames: usize,
    typing_window: Duration,
}

/// A new connection's ends.
pub struct Registered {
    pub id: ConnId,
    pub live: mpsc::Receiver<Frame>,
    pub kill: Arc<Kill>,
    /// This is the user's first open socket on this node.
    pub first_for_user: bool,
}

/// The outcome of starting a subscription.
pub enum Begin {
    /// Subscribed in back-fill mode; send events after `from`, then call
    /// [`Hub::finish_subscribe`]. `room_version` is this node's current version
    /// of the room.
    Started {
        from: i64,
        room_version: i64,
        /// How far the room's messages had expired at `room_version` (0: none): a
        /// back-fill sends the events of these messages as `hidden`.
        expired_up_to: u64,
        /// The read models' epoch when the subscription started: a later change is
        /// told to it by a `resync` (reason `epoch`).
        epoch: i64,
    },
    Refused {
        code: &'static str,
        message: &'static str,
    },
    Unavailable,
}

/// The outcome of one [`Hub::drain`] step.
pub enum Drain {
    /// Send these (in order), then drain again from `last`.
    Frames { frames: Vec<Frame>, last: i64 },
    /// The client must reload (`reason`: `too_far_behind` when too many live events
    /// arrived during the back-fill, `epoch` when the read models' epoch changed); live
    /// delivery goes on after `version` (drain again from it).
    Resync { version: i64, reason: &'static str },
    /// Now live.
    Live,
    /// The subscription ended meanwhile (kicked, left, unsubscribed, connection closed).
    Gone,
}

impl Hub {
    /// A hub of `queue_frames` live frames per connection, in the read models' `epoch`,
    /// telling each room who types at most once per `typing_window`.
    pub fn new(
        log: PgEventStore,
        queue_frames: usize,
        epoch: i64,
        typing_window: Duration,
    ) -> Arc<Hub> {
        let queue_frames = queue_frames.max(1);
        Arc::new(Hub {
            inner: Mutex::new(Inner {
                epoch,
                ..Inner::default()
            }),
            next_id: AtomicU64::new(1),
            log,
            queue_frames,
            buffer_frames: queue_frames.saturating_mul(4).max(1024),
            typing_window,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a
        // way that matters more than losing every connection: keep going.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(&self, user: UserId) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (live_tx, live_rx) = mpsc::channel(self.queue_frames);
        let kill = Arc::new(Kill::default());
        let mut inner = self.lock();
        inner.conns.insert(
            id,
            Conn {
                user,
                live: live_tx,
                kill: kill.clone(),
                rooms: HashSet::new(),
                dead: false,
            },
        );
        let mine = inner.users.entry(user).or_default();
        mine.push(id);
        Registered {
            id,
            live: live_rx,
            kill,
            first_for_user: mine.len() == 1,
        }
    }

    /// Removes a connection; true when it was the user's last socket on this node.
    pub fn unregister(&self, id: ConnId) -> bool {
        let mut inner = self.lock();
        let Some(conn) = inner.conns.remove(&id) else {
            return false;
        };
        for room in &conn.rooms {
            remove_sub(&mut inner.rooms, *room, id);
        }
        let Some(mine) = inner.users.get_mut(&conn.user) else {
            return false;
        };
        mine.retain(|c| *c != id);
        if mine.is_empty() {
            inner.users.remove(&conn.user);
            true
        } else {
            false
        }
    }

    /// Users with at least one open socket on this node.
    pub fn connected_users(&self) -> Vec<UserId> {
        self.lock().users.keys().copied().collect()
    }

    /// Does this node track the room (someone subscribes, or is subscribing)?
    pub fn tracks(&self, room: RoomId) -> bool {
        self.lock().rooms.contains_key(&room)
    }

    /// Subscriptions of a room on this node (for tests and diagnostics).
    pub fn subscriber_count(&self, room: RoomId) -> usize {
        self.lock().rooms.get(&room).map_or(0, |r| r.subs.len())
    }

    /// Room subscriptions on this node (one per connection and room).
    pub fn subscription_count(&self) -> usize {
        self.lock().rooms.values().map(|r| r.subs.len()).sum()
    }

    /// Distinct users with an open connection on this node.
    pub fn user_count(&self) -> usize {
        self.lock().users.len()
    }

    /// Open connections on this node.
    pub fn connection_count(&self) -> usize {
        self.lock().conns.len()
    }

    /// The read models' epoch as last told by [`Hub::on_epoch`].
    pub fn epoch(&self) -> i64 {
        self.lock().epoch
    }

    /// Starts a subscription in back-fill mode: from now on live events of the
    /// room for this connection are held back until [`Hub::drain`] switches it to live.
    pub async fn begin_subscribe(
        self: &Arc<Self>,
        id: ConnId,
        room_id: RoomId,
        after_version: Option<i64>,
    ) -> Begin {
        loop {
            let mut waiter = {
                let mut inner = self.lock();
                let Some(conn) = inner.conns.get(&id).filter(|c| !c.dead) else {
                    return Begin::Unavailable;
                };
                let user = conn.user;
                let epoch = inner.epoch;
                if conn.rooms.len() >= MAX_ROOMS_PER_CONNECTION && !conn.rooms.contains(&room_id) {
                    return Begin::Refused {
                        code: "too_many_subscriptions",
                        message: "too many rooms subscribed on this connection",
                    };
                }
                match inner.rooms.get_mut(&room_id) {
                    Some(room) => match &room.load {
                        Load::Loaded => {
                            if !room.state.is_member(user) {
                                let (code, message) = membership::refusal(&room.state);
                                // Refusals must not leave rooms behind (ids are free to guess).
                                prune(&mut inner.rooms, room_id);
                                return Begin::Refused { code, message };
                            }
                            let from = after_version.unwrap_or(room.version).max(0);
                            let room_version = room.version;
                            let expired_up_to = room.state.expired_up_to;
                            room.subs.insert(
                                id,
                                Sub {
                                    user,
                                    last_version: from,
                                    buffer: Some(Buffer::default()),
                                },
                            );
                            if let Some(c) = inner.conns.get_mut(&id) {
                                c.rooms.insert(room_id);
                            }
                            return Begin::Started {
                                from,
                                room_version,
                                expired_up_to,
                                epoch,
                            };
                        }
                        Load::Loading { done, .. } => done.subscribe(),
                    },
                    None => {
                        let (done, rx) = watch::channel(None);
                        inner.rooms.insert(
                            room_id,
                            Room {
                                load: Load::Loading {
                                    pending: Vec::new(),
                                    overflowed: false,
                                    done,
                                },
                                state: RoomState::default(),
                                version: 0,
                                subs: HashMap::new(),
                                typing: None,
                            },
                        );
                        // A task of its own, so a connection closing mid-load
                        // cannot leave the room stuck in `Loading`.
                        tokio::spawn(self.clone().load_room(room_id));
                        rx
                    }
                }
            };
            match waiter.wait_for(Option::is_some).await {
                Ok(v) if *v == Some(true) => {}
                _ => return Begin::Unavailable,
            }
        }
    }

    async fn load_room(self: Arc<Self>, room_id: RoomId) {
        loop {
            let loaded = membership::load(&self.log, room_id).await;
            let mut inner = self.lock();
            let Some(room) = inner.rooms.get_mut(&room_id) else {
                return;
            };
            let Load::Loading {
                pending,
                overflowed,
                done,
            } = &mut room.load
            else {
                return;
            };
            match loaded {
                Err(e) => {
                    tracing::warn!(error = %e, %room_id, "loading room membership failed");
                    done.send_replace(Some(false));
                    inner.rooms.remove(&room_id);
                    return;
                }
                Ok(_) if *overflowed => {
                    // Too much happened while loading: load again, now later.
                    pending.clear();
                    *overflowed = false;
                    continue;
                }
                Ok(Snapshot { mut state, version }) => {
                    let mut v = version;
                    for ev in pending.drain(..) {
                        if ev.version > v {
                            state = evolve(state, &ev.event);
                            v = ev.version;
                        }
                    }
                    done.send_replace(Some(true));
                    room.state = state;
                    room.version = v;
                    // Kept even without subscriptions: the waiters subscribe right
                    // after being woken (it is kept current by `on_event` meanwhile).
                    room.load = Load::Loaded;
                    return;
                }
            }
        }
    }

    /// One step of ending back-fill mode: the held-back live events after
    /// `last_sent` (to be sent by the caller, who then calls again), or — when none
    /// are left — the switch to live delivery, atomically.
    pub fn drain(&self, id: ConnId, room_id: RoomId, last_sent: i64) -> Drain {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(room) = inner.rooms.get_mut(&room_id) else {
            return Drain::Gone;
        };
        let room_version = room.version;
        let Some(sub) = room.subs.get_mut(&id) else {
            return Drain::Gone;
        };
        let Some(buffer) = sub.buffer.as_mut() else {
            return Drain::Live;
        };
        if buffer.overflowed {
            buffer.overflowed = false;
            buffer.frames = Vec::new();
            let version = room_version.max(last_sent);
            sub.last_version = version;
            return Drain::Resync {
                version,
                reason: "too_far_behind",
            };
        }
        if buffer.epoch_changed {
            // Nothing is skipped: the held-back events follow the `resync`.
            buffer.epoch_changed = false;
            return Drain::Resync {
                version: last_sent,
                reason: "epoch",
            };
        }
        let mut last = last_sent;
        let mut frames = Vec::new();
        for (version, frame) in buffer.frames.drain(..) {
            if version > last {
                last = version;
                frames.push(frame);
            }
        }
        if !frames.is_empty() {
            return Drain::Frames { frames, last };
        }
        if buffer.removed {
            room.subs.remove(&id);
            if let Some(c) = inner.conns.get_mut(&id) {
                c.rooms.remove(&room_id);
            }
            prune(&mut inner.rooms, room_id);
            return Drain::Gone;
        }
        sub.buffer = None;
        sub.last_version = last_sent;
        Drain::Live
    }

    /// Asks a connection's writer to close it.
    pub fn close(&self, id: ConnId, close: Close) {
        if let Some(c) = self.lock().conns.get(&id) {
            c.kill.request(close);
        }
    }

    /// Asks the writers of every connection of `user` to close with `close`.
    pub fn close_user(&self, user: UserId, close: Close) {
        let inner = self.lock();
        for id in inner.users.get(&user).into_iter().flatten() {
            if let Some(c) = inner.conns.get(id) {
                c.kill.request(close);
            }
        }
    }

    /// Asks every connection's writer to close with `close`.
    pub fn close_all(&self, close: Close) {
        for c in self.lock().conns.values() {
            c.kill.request(close);
        }
    }

    pub fn unsubscribe(&self, id: ConnId, room_id: RoomId) {
        let mut inner = self.lock();
        if let Some(c) = inner.conns.get_mut(&id) {
            c.rooms.remove(&room_id);
        }
        remove_sub(&mut inner.rooms, room_id, id);
    }

    /// Delivers one live room event to the subscriptions of current members, in
    /// stream order, applying membership changes first.
    pub fn on_event(&self, ev: Arc<LiveEvent>) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(room) = inner.rooms.get_mut(&ev.room_id) else {
            return;
        };
        if let Load::Loading {
            pending,
            overflowed,
            ..
        } = &mut room.load
        {
            if is_hub_state(&ev.event) {
                if pending.len() >= MAX_PENDING_WHILE_LOADING {
                    *overflowed = true;
                } else {
                    pending.push(ev);
                }
            }
            return;
        }
        if ev.version > room.version {
            if is_hub_state(&ev.event) {
                room.state = evolve(std::mem::take(&mut room.state), &ev.event);
            }
            room.version = ev.version;
        }
        // A typist whose message arrives has stopped typing: a notice of theirs still held
        // for the window's end would show them typing again after their message (ADR 19).
        if let (RoomEvent::MessageSent { sender_id, .. }, Some(typing)) =
            (&ev.event, room.typing.as_mut())
        {
            typing.pending.retain(|u| u != sender_id);
        }
        let removed_user = ev.removes();
        let mut drop_subs = Vec::new();
        let mut killed = Vec::new();
        for (cid, sub) in room.subs.iter_mut() {
            if ev.version <= sub.last_version {
                continue;
            }
            let is_subject = removed_user == Some(sub.user);
            if !room.state.is_member(sub.user) && !is_subject {
                // Not a member any more (the removal itself came earlier or was
                // part of the snapshot): never deliver, end the subscription.
                match &mut sub.buffer {
                    Some(b) => b.removed = true,
                    None => drop_subs.push(*cid),
                }
                continue;
            }
            let frame = ev.frame_for(sub.user);
            match &mut sub.buffer {
                Some(b) => {
                    if is_subject {
                        b.removed = true;
                    }
                    if b.frames.len() >= self.buffer_frames {
                        b.overflowed = true;
                        b.frames = Vec::new();
                    } else if !b.overflowed {
                        b.frames.push((ev.version, frame.clone()));
                    }
                }
                None => {
                    sub.last_version = ev.version;
                    if let Some(conn) = inner.conns.get(cid)
                        && !push(conn, frame.clone())
                    {
                        killed.push(*cid);
                    }
                    if is_subject {
                        drop_subs.push(*cid);
                    }
                }
            }
        }
        for cid in drop_subs {
            room.subs.remove(&cid);
            if let Some(c) = inner.conns.get_mut(&cid) {
                c.rooms.remove(&ev.room_id);
            }
        }
        prune(&mut inner.rooms, ev.room_id);
        for cid in killed {
            drop_all_subs(inner, cid);
        }
    }

    /// Sends `frame` (a `notification`) to `user`'s connections on this node that have not
    /// subscribed to `room` (one that has sees the message itself). A full queue closes the
    /// connection, as for any live frame. Returns how many connections it went to.
    pub fn notify(&self, user: UserId, room: RoomId, frame: &Frame) -> usize {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(ids) = inner.users.get(&user) else {
            return 0;
        };
        let mut sent = 0;
        let mut killed = Vec::new();
        for cid in ids {
            let Some(conn) = inner.conns.get(cid) else {
                continue;
            };
            if conn.dead || conn.rooms.contains(&room) {
                continue;
            }
            if push(conn, frame.clone()) {
                sent += 1;
            } else {
                killed.push(*cid);
            }
        }
        for cid in killed {
            drop_all_subs(inner, cid);
        }
        sent
    }

    /// The read models' epoch is now `epoch`: every subscription gets `resync` (reason
    /// `epoch`) and stays live. A live one gets it on its connection's live queue like any
    /// event (a full queue closes the connection, "slow consumer"); one still back-filling
    /// gets it once the back-fill is sent ([`Hub::drain`]). Subscriptions that start after
    /// this call start in the new epoch ([`Begin::Started`]).
    pub fn on_epoch(&self, epoch: i64) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if inner.epoch == epoch {
            return;
        }
        inner.epoch = epoch;
        let mut killed = HashSet::new();
        for (room_id, room) in &mut inner.rooms {
            if room.subs.is_empty() {
                continue;
            }
            let frame = Frame::resync(*room_id, "epoch");
            for (cid, sub) in &mut room.subs {
                match &mut sub.buffer {
                    Some(b) => b.epoch_changed = true,
                    None => {
                        if let Some(conn) = inner.conns.get(cid)
                            && !push(conn, frame.clone())
                        {
                            killed.insert(*cid);
                        }
                    }
                }
            }
        }
        for cid in killed {
            drop_all_subs(inner, cid);
        }
    }

    /// An ephemeral message: to the subscribed connections of current members.
    pub fn on_ephemeral(&self, room_id: RoomId, sender: UserId, frame: Frame) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(room) = inner.rooms.get(&room_id) else {
            return;
        };
        if !matches!(room.load, Load::Loaded) || !room.state.is_member(sender) {
            return;
        }
        let killed = send_to_members(room, &inner.conns, &frame);
        drop_all(inner, killed);
    }

    /// A change of `user` (a new name, an erasure): `frame_for(room)` to the subscribed
    /// members of every loaded room `user` is a member of.
    pub fn on_member_updated(&self, user: UserId, frame_for: impl Fn(RoomId) -> Frame) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut killed = Vec::new();
        for (room_id, room) in &inner.rooms {
            if matches!(room.load, Load::Loaded) && room.state.is_member(user) {
                killed.extend(send_to_members(room, &inner.conns, &frame_for(*room_id)));
            }
        }
        drop_all(inner, killed);
    }

    /// `typist` types in `room_id`: told to the room's other members at once when the
    /// room's typing window was quiet, else with the window's other typists at its end
    /// (ADR 19).
    pub fn on_typing(self: &Arc<Self>, room_id: RoomId, typist: UserId) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(room) = inner.rooms.get_mut(&room_id) else {
            return;
        };
        if !matches!(room.load, Load::Loaded) || !room.state.is_member(typist) {
            return;
        }
        let typing = room.typing.get_or_insert_with(Box::default);
        match typing.throttle.offer(Instant::now(), self.typing_window) {
            Offer::Now => {
                let killed = send_typing(room, &inner.conns, room_id, &[typist]);
                drop_all(inner, killed);
            }
            Offer::Schedule(at) => {
                typing.pending.push(typist);
                let hub = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    hub.flush_typing(room_id);
                });
            }
            Offer::Held => {
                if !typing.pending.contains(&typist) && typing.pending.len() < MAX_TYPISTS_PER_FRAME
                {
                    typing.pending.push(typist);
                }
            }
        }
    }

    /// The end of a room's typing window: its typists, still members, in one frame.
    fn flush_typing(&self, room_id: RoomId) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(room) = inner.rooms.get_mut(&room_id) else {
            return;
        };
        let Some(typing) = room.typing.as_mut() else {
            return;
        };
        typing.throttle.flushed(Instant::now());
        let mut typists = std::mem::take(&mut typing.pending);
        typists.retain(|u| room.state.is_member(*u));
        let killed = send_typing(room, &inner.conns, room_id, &typists);
        drop_all(inner, killed);
    }

    /// Is `user` a member of `room` now? `None` when this node does not track the room.
    pub fn is_member(&self, room_id: RoomId, user: UserId) -> Option<bool> {
        let inner = self.lock();
        let room = inner.rooms.get(&room_id)?;
        matches!(room.load, Load::Loaded).then(|| room.state.is_member(user))
    }

    /// Tells a window's presence `changes` (one per user) to the connections of users who
    /// share a joined room with the changed users: `sharing` (recipient → indices into
    /// `changes`, from the read models) plus whoever this node sees in a tracked room with
    /// them. One frame per recipient, shared by every recipient told the same changes.
    pub fn send_presence(
        &self,
        changes: &[PresenceChange],
        mut sharing: HashMap<UserId, BTreeSet<usize>>,
    ) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let index: HashMap<UserId, usize> = changes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.user, i))
            .collect();
        for room in inner.rooms.values() {
            if !matches!(room.load, Load::Loaded) {
                continue;
            }
            let told: Vec<usize> = room
                .state
                .members
                .keys()
                .filter_map(|m| index.get(m).copied())
                .filter(|i| room.state.is_member(changes[*i].user))
                .collect();
            if told.is_empty() {
                continue;
            }
            for member in room.state.members.keys() {
                if inner.users.contains_key(member) && room.state.is_member(*member) {
                    sharing.entry(*member).or_default().extend(&told);
                }
            }
        }
        // Recipients told the same changes share one frame. A recipient's own change stays
        // in it (clients skip their own): leaving it out made every member of a burst a
        // group of one, a frame each. O(recipients), not O(connections): a node with
        // 100,000 sockets does not look at each of them.
        let mut groups: HashMap<Vec<usize>, Vec<UserId>> = HashMap::new();
        for (recipient, told) in sharing {
            if !inner.users.contains_key(&recipient) {
                continue;
            }
            if !told.is_empty() {
                groups
                    .entry(told.into_iter().collect())
                    .or_default()
                    .push(recipient);
            }
        }
        let mut killed = Vec::new();
        for (told, recipients) in groups {
            let Some(frame) = batch::presence_frame(told.iter().map(|i| &changes[*i])) else {
                continue;
            };
            for recipient in recipients {
                for cid in inner.users.get(&recipient).into_iter().flatten() {
                    if let Some(conn) = inner.conns.get(cid)
                        && !push(conn, frame.clone())
                    {
                        killed.push(*cid);
                    }
                }
            }
        }
        drop_all(inner, killed);
    }
}

/// Typing of `typists` to the room's members subscribed here: the others are told all of
/// them (one shared frame), a typist only the others. The connections whose queue
/// overflowed are returned.
fn send_typing(
    room: &Room,
    conns: &HashMap<ConnId, Conn>,
    room_id: RoomId,
    typists: &[UserId],
) -> Vec<ConnId> {
    let mut killed = Vec::new();
    let Some(all) = batch::typing_frame(room_id, typists) else {
        return killed;
    };
    let mut without: HashMap<UserId, Option<Frame>> = HashMap::new();
    for (cid, sub) in &room.subs {
        if !room.state.is_member(sub.user) {
            continue;
        }
        let frame = if typists.contains(&sub.user) {
            let others = without.entry(sub.user).or_insert_with(|| {
                let others: Vec<UserId> =
                    typists.iter().copied().filter(|u| *u != sub.user).collect();
                batch::typing_frame(room_id, &others)
            });
            match others {
                Some(f) => f.clone(),
                None => continue,
            }
        } else {
            all.clone()
        };
        if let Some(conn) = conns.get(cid)
            && !push(conn, frame)
        {
            killed.push(*cid);
        }
    }
    killed
}

fn drop_all(inner: &mut Inner, killed: Vec<ConnId>) {
    for cid in killed {
        drop_all_subs(inner, cid);
    }
}

/// `frame` to the room's subscribed connections of current members; the connections whose
/// queue overflowed.
fn send_to_members(room: &Room, conns: &HashMap<ConnId, Conn>, frame: &Frame) -> Vec<ConnId> {
    let mut killed = Vec::new();
    for (cid, sub) in &room.subs {
        if !room.state.is_member(sub.user) {
            continue;
        }
        if let Some(conn) = conns.get(cid)
            && !push(conn, frame.clone())
        {
            killed.push(*cid);
        }
    }
    killed
}

/// Queues a frame for a connection; false (and the connection told to close) when
/// its queue is full.
fn push(conn: &Conn, frame: Frame) -> bool {
    if conn.dead {
        return true;
    }
    match conn.live.try_send(frame) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            conn.kill.request(SLOW_CONSUMER);
            false
        }
        // The connection is closing already.
        Err(mpsc::error::TrySendError::Closed(_)) => true,
    }
}

fn drop_all_subs(inner: &mut Inner, cid: ConnId) {
    let Some(conn) = inner.conns.get_mut(&cid) else {
        return;
    };
    conn.dead = true;
    let rooms: Vec<RoomId> = conn.rooms.drain().collect();
    for room in rooms {
        remove_sub(&mut inner.rooms, room, cid);
    }
}

fn remove_sub(rooms: &mut HashMap<RoomId, Room>, room_id: RoomId, id: ConnId) {
    if let Some(room) = rooms.get_mut(&room_id) {
        room.subs.remove(&id);
    }
    prune(rooms, room_id);
}

/// A loaded room nobody subscribes to is forgotten (it is re-loaded on demand).
fn prune(rooms: &mut HashMap<RoomId, Room>, room_id: RoomId) {
    if rooms
        .get(&room_id)
        .is_some_and(|r| r.subs.is_empty() && matches!(r.load, Load::Loaded))
    {
        rooms.remove(&room_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const OTHER: Close = Close {
        code: 4001,
        reason: "token expired",
        label: "token_expired",
    };

    #[tokio::test(start_paused = true)]
    async fn a_close_requested_before_the_writer_waits_is_not_lost_and_the_first_one_wins() {
        let kill = Kill::default();
        kill.request(SLOW_CONSUMER);
        kill.request(OTHER);
        let got = tokio::time::timeout(Duration::from_secs(1), kill.requested()).await;
        assert_eq!(got.ok(), Some(SLOW_CONSUMER));
        // Asked again (the writer's second select), it answers at once.
        assert_eq!(kill.requested().await, SLOW_CONSUMER);
    }

    // The clock is paused: the timeout elapses as soon as the waiter has nothing left to do.
    #[tokio::test(start_paused = true)]
    async fn a_waiting_writer_wakes_on_a_request_and_not_before() {
        let kill = Arc::new(Kill::default());
        let mut waiter = tokio::spawn({
            let kill = kill.clone();
            async move { kill.requested().await }
        });
        let early = tokio::time::timeout(Duration::from_secs(60), &mut waiter).await;
        assert!(early.is_err(), "woke without a request");
        assert!(!waiter.is_finished());
        kill.request(OTHER);
        let got = tokio::time::timeout(Duration::from_secs(1), waiter).await;
        assert_eq!(got.ok().and_then(Result::ok), Some(OTHER));
    }
}
