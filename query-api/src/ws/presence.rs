//! Presence (docs/architecture.md D7): a user is online while they have an open
//! socket on any node. Each node announces its connected users on core NATS
//! (`{prefix}.presence`): a heartbeat listing all of them every
//! `presence_heartbeat_secs`, and an immediate `online`/`offline` when a user's
//! first socket opens or last socket closes on it. Every node keeps
//! user → {node → last heard}; a user is offline when no node has listed them
//! within `presence_timeout_secs`, so a node that dies (`kill -9`) takes its
//! users offline by timeout. `last_seen` is written to `presence_last_seen` by
//! the node holding the user's sockets on every heartbeat and on going offline.

use crate::ws::batch::{self, PresenceChange};
use crate::ws::hub::Hub;
use chrono::{DateTime, Utc};
use events::UserId;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

/// Presence changes waiting to be told to clients.
const MAX_PENDING_CHANGES: usize = 10_000;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Heartbeat,
    Online,
    Offline,
}

#[derive(Debug, Serialize, Deserialize)]
struct Announce {
    node: Uuid,
    kind: Kind,
    users: Vec<UserId>,
}

/// Whose memberships [`Presence::joined`] reads.
#[derive(Clone, Copy)]
enum Of {
    Users,
    Rooms,
}

/// A user's status changed as this node sees it.
pub type Change = PresenceChange;

#[derive(Clone, Copy)]
struct Seen {
    at: Instant,
    wall: DateTime<Utc>,
}

#[derive(Default)]
struct Table {
    users: HashMap<UserId, HashMap<Uuid, Seen>>,
    by_node: HashMap<Uuid, HashSet<UserId>>,
}

pub struct Presence {
    node: Uuid,
    table: Mutex<Table>,
    timeout: Duration,
    subject: String,
    nats: async_nats::Client,
    pool: PgPool,
    changes: mpsc::Sender<Change>,
    /// The users this node last told clients were online: a change that ends where the
    /// last one told did (a flap within one window) is not told again.
    told_online: Mutex<HashSet<UserId>>,
}

impl Presence {
    pub fn new(
        pool: PgPool,
        nats: async_nats::Client,
        prefix: &str,
        timeout: Duration,
    ) -> (Arc<Presence>, mpsc::Receiver<Change>) {
        let (changes, rx) = mpsc::channel(MAX_PENDING_CHANGES);
        (
            Arc::new(Presence {
                node: Uuid::new_v4(),
                table: Mutex::new(Table::default()),
                timeout,
                subject: format!("{prefix}.presence"),
                nats,
                pool,
                changes,
                told_online: Mutex::new(HashSet::new()),
            }),
            rx,
        )
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The user's first socket on this node opened.
    pub fn local_online(self: &Arc<Self>, user: UserId) {
        self.apply(self.node, Kind::Online, &[user]);
        let me = self.clone();
        tokio::spawn(async move {
            me.announce(Kind::Online, vec![user]).await;
            me.write_last_seen(&[user], Utc::now()).await;
        });
    }

    /// The user's last socket on this node closed.
    pub fn local_offline(self: &Arc<Self>, user: UserId) {
        self.apply(self.node, Kind::Offline, &[user]);
        let me = self.clone();
        tokio::spawn(async move {
            me.announce(Kind::Offline, vec![user]).await;
        });
    }

    /// One heartbeat of this node: announce, refresh our own table, refresh `last_seen`.
    pub async fn heartbeat(&self, hub: &Hub) {
        let users = hub.connected_users();
        self.apply(self.node, Kind::Heartbeat, &users);
        self.announce(Kind::Heartbeat, users.clone()).await;
        if !users.is_empty() {
            self.write_last_seen(&users, Utc::now()).await;
        }
    }

    /// An announcement from NATS (our own are applied when made, not again).
    pub fn on_message(&self, payload: &[u8]) {
        match serde_json::from_slice::<Announce>(payload) {
            Ok(a) if a.node == self.node => {}
            Ok(a) => self.apply(a.node, a.kind, &a.users),
            Err(e) => tracing::debug!(error = %e, "ignoring a malformed presence announcement"),
        }
    }

    async fn announce(&self, kind: Kind, users: Vec<UserId>) {
        let msg = Announce {
            node: self.node,
            kind,
            users,
        };
        match serde_json::to_vec(&msg) {
            Ok(bytes) => {
                if let Err(e) = self.nats.publish(self.subject.clone(), bytes.into()).await {
                    tracing::warn!(error = %e, "presence announcement failed");
                }
            }
            Err(e) => tracing::error!(error = %e, "encoding a presence announcement"),
        }
    }

    fn apply(&self, node: Uuid, kind: Kind, users: &[UserId]) {
        let now = Seen {
            at: Instant::now(),
            wall: Utc::now(),
        };
        let mut changes = Vec::new();
        {
            let mut t = self.lock();
            let Table {
                users: by_user,
                by_node,
            } = &mut *t;
            let listed = by_node.entry(node).or_default();
            match kind {
                Kind::Online | Kind::Heartbeat => {
                    if kind == Kind::Heartbeat {
                        // A heartbeat is the node's whole list: whoever it no longer
                        // lists has gone from it (covers a lost `offline`).
                        let now_listed: HashSet<UserId> = users.iter().copied().collect();
                        let gone: Vec<UserId> = listed.difference(&now_listed).copied().collect();
                        for u in gone {
                            listed.remove(&u);
                            if let Some(nodes) = by_user.get_mut(&u) {
                                nodes.remove(&node);
                                if nodes.is_empty() {
                                    by_user.remove(&u);
                                    changes.push(Change {
                                        user: u,
                                        online: false,
                                        at: now.wall,
                                    });
                                }
                            }
                        }
                    }
                    for u in users {
                        listed.insert(*u);
                        let nodes = by_user.entry(*u).or_default();
                        if nodes.is_empty() {
                            changes.push(Change {
                                user: *u,
                                online: true,
                                at: now.wall,
                            });
                        }
                        nodes.insert(node, now);
                    }
                }
                Kind::Offline => {
                    for u in users {
                        listed.remove(u);
                        if let Some(nodes) = by_user.get_mut(u)
                            && nodes.remove(&node).is_some()
                            && nodes.is_empty()
                        {
                            by_user.remove(u);
                            changes.push(Change {
                                user: *u,
                                online: false,
                                at: now.wall,
                            });
                        }
                    }
                }
            }
            if listed.is_empty() {
                by_node.remove(&node);
            }
        }
        self.emit(changes);
    }

    /// Forgets nodes not heard from within the timeout; their users go offline
    /// (with `last_seen` = the last time any node listed them).
    pub fn sweep(&self) {
        let mut changes = Vec::new();
        {
            let mut t = self.lock();
            let Table {
                users: by_user,
                by_node,
            } = &mut *t;
            let timeout = self.timeout;
            by_user.retain(|user, nodes| {
                let last = nodes.values().map(|s| s.wall).max();
                nodes.retain(|node, seen| {
                    let keep = seen.at.elapsed() <= timeout;
                    if !keep && let Some(set) = by_node.get_mut(node) {
                        set.remove(user);
                    }
                    keep
                });
                if nodes.is_empty() {
                    changes.push(Change {
                        user: *user,
                        online: false,
                        at: last.unwrap_or_else(Utc::now),
                    });
                    false
                } else {
                    true
                }
            });
            by_node.retain(|_, set| !set.is_empty());
        }
        self.emit(changes);
    }

    fn emit(&self, changes: Vec<Change>) {
        for c in changes {
            if let Err(e) = self.changes.try_send(c) {
                tracing::warn!(error = %e, "presence change dropped (too many pending)");
            }
        }
    }

    /// `last_seen` of each user, at their own time.
    async fn write_last_seen_each(&self, seen: &[(Uuid, DateTime<Utc>)]) {
        let (ids, ats): (Vec<Uuid>, Vec<DateTime<Utc>>) = seen.iter().copied().unzip();
        let res = sqlx::query(
            "INSERT INTO presence_last_seen (user_id, last_seen) \
             SELECT u, t FROM unnest($1::uuid[], $2::timestamptz[]) AS s(u, t) \
             ON CONFLICT (user_id) DO UPDATE \
             SET last_seen = GREATEST(presence_last_seen.last_seen, EXCLUDED.last_seen)",
        )
        .bind(&ids)
        .bind(&ats)
        .execute(&self.pool)
        .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "writing last_seen failed");
        }
    }

    async fn write_last_seen(&self, users: &[UserId], at: DateTime<Utc>) {
        let seen: Vec<(Uuid, DateTime<Utc>)> = users.iter().map(|u| (u.0, at)).collect();
        self.write_last_seen_each(&seen).await;
    }

    /// Tells clients about one window's changes (ADR 19): the last change per user,
    /// `last_seen` stored for those who went offline, then one presence frame per
    /// recipient (users sharing a joined room with a changed user) naming every change
    /// they may see.
    pub async fn notify(&self, hub: &Hub, changes: Vec<Change>) {
        let mut changes = batch::latest_per_user(changes);
        let offline: Vec<(Uuid, DateTime<Utc>)> = changes
            .iter()
            .filter(|c| !c.online)
            .map(|c| (c.user.0, c.at))
            .collect();
        if !offline.is_empty() {
            self.write_last_seen_each(&offline).await;
        }
        {
            let mut told = self.told_online.lock().unwrap_or_else(|e| e.into_inner());
            changes.retain(|c| {
                if c.online {
                    told.insert(c.user)
                } else {
                    told.remove(&c.user)
                }
            });
        }
        if hub.connection_count() == 0 || changes.is_empty() {
            return;
        }
        let sharing = self.sharing(&changes).await;
        hub.send_presence(&changes, sharing);
    }

    /// Who shares a joined room with the changed users, per the read models: recipient →
    /// indices into `changes`. Two statements per window, whatever its size: the changed
    /// users' rooms, then those rooms' members.
    async fn sharing(&self, changes: &[Change]) -> HashMap<UserId, BTreeSet<usize>> {
        let mut out: HashMap<UserId, BTreeSet<usize>> = HashMap::new();
        let index: HashMap<Uuid, usize> = changes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.user.0, i))
            .collect();
        let users: Vec<Uuid> = index.keys().copied().collect();
        let Some(rooms) = self.joined(Of::Users, &users).await else {
            return out;
        };
        let mut told: HashMap<Uuid, Vec<usize>> = HashMap::new();
        for (room, user) in rooms {
            if let Some(i) = index.get(&user) {
                told.entry(room).or_default().push(*i);
            }
        }
        if told.is_empty() {
            return out;
        }
        let room_ids: Vec<Uuid> = told.keys().copied().collect();
        for (room, member) in self.joined(Of::Rooms, &room_ids).await.unwrap_or_default() {
            if let Some(t) = told.get(&room) {
                out.entry(UserId(member)).or_default().extend(t);
            }
        }
        out
    }

    /// `(room_id, user_id)` of the joined memberships of these users or rooms.
    async fn joined(&self, of: Of, ids: &[Uuid]) -> Option<Vec<(Uuid, Uuid)>> {
        let sql = match of {
            Of::Users => {
                "SELECT room_id, user_id FROM rm_members WHERE user_id = ANY($1) AND status = 'joined'"
            }
            Of::Rooms => {
                "SELECT room_id, user_id FROM rm_members WHERE room_id = ANY($1) AND status = 'joined'"
            }
        };
        match sqlx::query_as(sql).bind(ids).fetch_all(&self.pool).await {
            Ok(rows) => Some(rows),
            Err(e) => {
                tracing::debug!(error = %e, "presence audience from the read models unavailable");
                None
            }
        }
    }

    /// Users online somewhere (any node's heartbeat within the timeout).
    pub fn online_count(&self) -> usize {
        let t = self.lock();
        t.users
            .values()
            .filter(|nodes| nodes.values().any(|s| s.at.elapsed() <= self.timeout))
            .count()
    }

    /// `Some(last heard)` when the user is online somewhere.
    pub fn online(&self, user: UserId) -> Option<DateTime<Utc>> {
        let t = self.lock();
        t.users
            .get(&user)?
            .values()
            .filter(|s| s.at.elapsed() <= self.timeout)
            .map(|s| s.wall)
            .max()
    }

    pub async fn last_seen(&self, users: &[UserId]) -> HashMap<UserId, DateTime<Utc>> {
        let ids: Vec<Uuid> = users.iter().map(|u| u.0).collect();
        let rows: Result<Vec<(Uuid, DateTime<Utc>)>, _> = sqlx::query_as(
            "SELECT user_id, last_seen FROM presence_last_seen WHERE user_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await;
        match rows {
            Ok(rows) => rows.into_iter().map(|(u, t)| (UserId(u), t)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "reading last_seen failed");
                HashMap::new()
            }
        }
    }
}
