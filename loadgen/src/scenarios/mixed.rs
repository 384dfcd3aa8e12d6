//! `mixed`: a realistic mixed workload through the public HTTP API, until at least
//! `--events` events were appended.
//!
//! Set-up registers `--users` users; each of `--clients` clients then creates its share
//! of the group rooms (every `--private-every`th one private: members are invited, then
//! join) and opens its share of the direct rooms, and fills each group room with
//! `--initial-members` members. Then every client drives its own rooms, one command after
//! another: sends (55 %), edits, deletes, reactions added and removed, read markers moved,
//! joins (with invites in private rooms), leaves, kicks, role changes, renames and topic
//! changes (weights in [`WEIGHTS`]).
//!
//! **No 4xx is expected.** Each client keeps a model of its rooms (members, roles,
//! invites, messages, deletions, reactions, read markers) shaped on the domain's rules,
//! and only issues commands the domain accepts *and* that append an event (no reaction
//! that is there already, no read marker that would move back). A room is driven by one
//! client only, so no two commands race on it. Every non-2xx is an error, and so is a
//! command that appended a different number of events than the model expected.
//!
//! **Counting events.** Every room command answers with the room stream's `version`
//! after it; since the client is the only writer of its rooms, the version's increase is
//! exactly the number of events the command appended. Registrations append one
//! `UserRegistered` each (their answer carries no version). The run ends when the sum
//! reaches `--events`; the log positions seen in the answers are reported as well (their
//! span also counts any other writer of the same log).
//!
//! **Determinism.** Every choice comes from a SplitMix64 generator seeded by `--seed` and
//! the client's number; after set-up, the remaining events are split evenly over the
//! clients, so with the same `--seed`, `--clients` and shape options each client issues
//! the same commands (ids and timings differ; usernames carry a per-run id).
//!
//! Message bodies are 3–12 words of [`VOCABULARY`], so searches for those words hit.

use crate::http::{Conn, Reply, Target, bearer, field};
use crate::report::{self, Table, f0, f2};
use crate::stats::{self, CpuSnapshot, CpuUsage, Errors, Latency, parse_duration};
use anyhow::{Context, anyhow};
use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use hyper::Method;
use hyper::header::HeaderValue;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Barrier, Mutex};
use tokio::time::Instant;

/// Words message bodies are made of (and searches look for).
pub const VOCABULARY: &[&str] = &[
    "apple", "banana", "cherry", "delta", "echo", "falcon", "garden", "harbor", "island", "jungle",
    "kernel", "lantern", "meadow", "nebula", "orbit", "pepper", "quartz", "river", "saddle",
    "timber", "umbrella", "velvet", "walnut", "xenon", "yellow", "zephyr", "anchor", "bridge",
    "candle", "dragon", "ember", "forest",
];

/// Reactions used (six, so a user never reaches the limit of 20 per message).
const EMOJIS: &[&str] = &["👍", "❤️", "😂", "🎉", "👀", "🚀"];

const PASSWORD: &str = "loadgen-password-0123";

/// The shape of the workload, shared by `mixed` and `rebuild --fill-events`.
#[derive(clap::Args, Debug, Clone)]
pub struct Shape {
    /// Concurrent clients; each drives its own share of the rooms.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Users registered for the run.
    #[arg(long, default_value_t = 64)]
    pub users: usize,
    /// Group rooms (public and private).
    #[arg(long, default_value_t = 48)]
    pub rooms: usize,
    /// Every Nth group room is private (0: none).
    #[arg(long, default_value_t = 3)]
    pub private_every: usize,
    /// Direct rooms (distinct pairs of users).
    #[arg(long, default_value_t = 16)]
    pub direct: usize,
    /// Members a group room gets at set-up besides its owner.
    #[arg(long, default_value_t = 8)]
    pub initial_members: usize,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Per-request timeout (counted as an error "timeout").
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(clap::Args, Debug, Clone)]
pub struct MixedArgs {
    /// Base URL of the platform (the single node serves commands and queries on one port).
    #[arg(long, alias = "base-url", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Run until at least this many events were appended (set-up included).
    #[arg(long, default_value_t = 50_000)]
    pub events: u64,
    #[command(flatten)]
    pub shape: Shape,
}

// ---------------------------------------------------------------------------
// Random choices.
// ---------------------------------------------------------------------------

/// SplitMix64: small, fast, and the same sequence on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> Option<&'a T> {
        if xs.is_empty() {
            None
        } else {
            xs.get(self.below(xs.len()))
        }
    }

    /// `n` words of [`VOCABULARY`] separated by spaces.
    pub fn words(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| VOCABULARY[self.below(VOCABULARY.len())])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

// ---------------------------------------------------------------------------
// Users (with refreshed tokens) and the model of the rooms.
// ---------------------------------------------------------------------------

/// A registered user whose access token is refreshed before it expires.
pub struct User {
    pub id: String,
    pub username: String,
    auth: Mutex<Auth>,
}

struct Auth {
    bearer: HeaderValue,
    refresh: String,
    renew_at: Instant,
}

impl Auth {
    fn from_answer(v: &Value) -> anyhow::Result<Self> {
        let ttl = v.get("expires_in").and_then(Value::as_u64).unwrap_or(900);
        Ok(Self {
            bearer: bearer(&field(v, "access_token")?)?,
            refresh: field(v, "refresh_token")?,
            // Renew at half the lifetime: a request never carries a token about to expire.
            renew_at: Instant::now() + Duration::from_secs((ttl / 2).max(5)),
        })
    }
}

impl User {
    /// Registers `username` (one `UserRegistered` event).
    pub async fn register(conn: &mut Conn, username: String) -> anyhow::Result<Self> {
        let v = crate::http::post(
            conn,
            "/v1/auth/register",
            None,
            &json!({"username": username, "password": PASSWORD}),
        )
        .await?;
        Ok(Self {
            id: field(&v, "user_id")?,
            username,
            auth: Mutex::new(Auth::from_answer(&v)?),
        })
    }

    /// A user that was never registered (unit tests).
    #[cfg(test)]
    pub fn for_tests() -> Self {
        Self {
            id: "u".into(),
            username: "u".into(),
            auth: Mutex::new(Auth {
                bearer: HeaderValue::from_static("Bearer x"),
                refresh: String::new(),
                renew_at: Instant::now() + Duration::from_secs(600),
            }),
        }
    }

    /// `Bearer <access token>`, refreshed first (over `conn`) when half its life is gone.
    pub async fn bearer(&self, conn: &mut Conn) -> anyhow::Result<HeaderValue> {
        let mut a = self.auth.lock().await;
        if Instant::now() >= a.renew_at {
            let v = crate::http::post(
                conn,
                "/v1/auth/refresh",
                None,
                &json!({"refresh_token": a.refresh}),
            )
            .await
            .with_context(|| format!("refreshing the token of {}", self.username))?;
            *a = Auth::from_answer(&v)?;
        }
        Ok(a.bearer.clone())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Owner,
    Admin,
    Member,
}

/// One message as the driving client knows it.
#[derive(Clone, Debug)]
pub struct MsgModel {
    pub id: String,
    author: usize,
    deleted: bool,
    /// (user index, emoji index).
    reactions: BTreeSet<(usize, usize)>,
}

/// One room as its driving client knows it (ordered collections only, so choices are
/// deterministic).
#[derive(Clone, Debug)]
pub struct RoomModel {
    pub id: String,
    pub direct: bool,
    pub public: bool,
    /// The owner of a group room (always a member); the first user of a direct pair.
    pub owner: usize,
    members: BTreeMap<usize, Role>,
    invited: BTreeSet<usize>,
    version: i64,
    pub messages: Vec<MsgModel>,
    read: BTreeMap<usize, u64>,
    renames: u32,
}

impl RoomModel {
    fn last_seq(&self) -> u64 {
        self.messages.len() as u64
    }

    fn member_list(&self) -> Vec<usize> {
        self.members.keys().copied().collect()
    }

    /// Who may edit or delete `m`: its author while a member, else (group rooms) the owner.
    fn changer(&self, m: &MsgModel) -> Option<usize> {
        if self.members.contains_key(&m.author) {
            Some(m.author)
        } else if !self.direct {
            Some(self.owner)
        } else {
            None
        }
    }
}

/// The users and rooms a mixed run leaves behind (used by `rebuild`).
pub struct World {
    pub users: Vec<Arc<User>>,
    pub rooms: Vec<RoomModel>,
    /// The highest log position any answer carried.
    pub last_position: i64,
}

// ---------------------------------------------------------------------------
// Commands and their tallies.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Register,
    CreateRoom,
    OpenDirect,
    Invite,
    Join,
    Leave,
    Kick,
    ChangeRole,
    Rename,
    ChangeTopic,
    Send,
    Edit,
    Delete,
    ReactionAdd,
    ReactionRemove,
    MarkRead,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Register => "register",
            Op::CreateRoom => "create room",
            Op::OpenDirect => "open direct",
            Op::Invite => "invite",
            Op::Join => "join",
            Op::Leave => "leave",
            Op::Kick => "kick",
            Op::ChangeRole => "change role",
            Op::Rename => "rename",
            Op::ChangeTopic => "change topic",
            Op::Send => "send",
            Op::Edit => "edit",
            Op::Delete => "delete",
            Op::ReactionAdd => "add reaction",
            Op::ReactionRemove => "remove reaction",
            Op::MarkRead => "move read marker",
        }
    }

    /// The events the command appends, in order (the domain's `decide`).
    pub fn events(self) -> &'static [&'static str] {
        match self {
            Op::Register => &["UserRegistered"],
            Op::CreateRoom => &["RoomCreated", "MemberJoined"],
            Op::OpenDirect => &["DirectRoomOpened", "MemberJoined", "MemberJoined"],
            Op::Invite => &["MemberInvited"],
            Op::Join => &["MemberJoined"],
            Op::Leave => &["MemberLeft"],
            Op::Kick => &["MemberKicked"],
            Op::ChangeRole => &["MemberRoleChanged"],
            Op::Rename => &["RoomRenamed"],
            Op::ChangeTopic => &["RoomTopicChanged"],
            Op::Send => &["MessageSent"],
            Op::Edit => &["MessageEdited"],
            Op::Delete => &["MessageDeleted"],
            Op::ReactionAdd => &["ReactionAdded"],
            Op::ReactionRemove => &["ReactionRemoved"],
            Op::MarkRead => &["ReadMarkerMoved"],
        }
    }
}

/// The mix after set-up, in thousandths; a kind that does not fit the chosen room's
/// state (nothing to edit, nobody left to join) becomes a send.
pub const WEIGHTS: &[(Op, u32)] = &[
    (Op::Send, 550),
    (Op::Edit, 80),
    (Op::Delete, 40),
    (Op::ReactionAdd, 110),
    (Op::ReactionRemove, 40),
    (Op::MarkRead, 100),
    (Op::Join, 30), // an invite first in a private room
    (Op::Leave, 20),
    (Op::Kick, 10),
    (Op::ChangeRole, 5),
    (Op::Rename, 7),
    (Op::ChangeTopic, 8),
];

struct OpTally {
    count: u64,
    events: u64,
    hist: Histogram<u64>,
}

/// What a client counts.
struct Tally {
    ops: BTreeMap<Op, OpTally>,
    errors: Errors,
    examples: Vec<String>,
    first_position: Option<i64>,
    last_position: i64,
}

const MAX_EXAMPLES: usize = 20;

impl Tally {
    fn new() -> Self {
        Self {
            ops: BTreeMap::new(),
            errors: Errors::default(),
            examples: Vec::new(),
            first_position: None,
            last_position: 0,
        }
    }

    fn ok(&mut self, op: Op, events: u64, took: Duration, position: Option<i64>) {
        let t = self.ops.entry(op).or_insert_with(|| OpTally {
            count: 0,
            events: 0,
            hist: stats::new_histogram(),
        });
        t.count += 1;
        t.events += events;
        stats::record(&mut t.hist, took);
        if let Some(p) = position {
            self.first_position = Some(self.first_position.map_or(p, |f| f.min(p)));
            self.last_position = self.last_position.max(p);
        }
    }

    fn error(&mut self, key: String, example: String) {
        self.errors.add(key);
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(example);
        }
    }

    fn merge(&mut self, other: Tally) {
        for (op, t) in other.ops {
            let mine = self.ops.entry(op).or_insert_with(|| OpTally {
                count: 0,
                events: 0,
                hist: stats::new_histogram(),
            });
            mine.count += t.count;
            mine.events += t.events;
            let _ = mine.hist.add(&t.hist);
        }
        self.errors.merge(&other.errors);
        for e in other.examples {
            if self.examples.len() < MAX_EXAMPLES {
                self.examples.push(e);
            }
        }
        if let Some(p) = other.first_position {
            self.first_position = Some(self.first_position.map_or(p, |f| f.min(p)));
        }
        self.last_position = self.last_position.max(other.last_position);
    }
}

/// `{"error":{"code":…}}`'s code, or `-`.
pub fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "-".into())
}

/// The body, shortened for an error example.
pub fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    s.chars().take(200).collect()
}

/// Percent-encodes a path segment (the emoji of a reaction).
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// A client: its rooms, its connection, its generator.
// ---------------------------------------------------------------------------

/// What a command needs beyond the op: the room (index into the client's rooms), who
/// acts, the request.
struct Call {
    op: Op,
    room: usize,
    actor: usize,
    method: Method,
    path: String,
    body: Option<Value>,
}

struct Client {
    index: usize,
    conn: Conn,
    rng: Rng,
    users: Arc<Vec<Arc<User>>>,
    rooms: Vec<RoomModel>,
    tally: Tally,
    appended: Arc<AtomicU64>,
    /// Events this client appended.
    mine: u64,
    sent: u64,
    run_id: String,
}

impl Client {
    /// Runs one command; on success updates the room's version and returns the answer.
    async fn call(&mut self, c: Call) -> Option<Value> {
        let user = self.users[c.actor].clone();
        let token = match user.bearer(&mut self.conn).await {
            Ok(t) => t,
            Err(e) => {
                self.tally
                    .error("refresh".into(), format!("{}: {e:#}", c.op.name()));
                return None;
            }
        };
        let body = c
            .body
            .as_ref()
            .map(|b| Bytes::from(serde_json::to_vec(b).unwrap_or_default()));
        let t0 = Instant::now();
        let res = self
            .conn
            .call(c.method.clone(), &c.path, Some(&token), body)
            .await;
        let took = t0.elapsed();
        let reply: Reply = match res {
            Ok(r) if r.status.is_success() => r,
            Ok(r) => {
                let code = error_code(&r.body);
                self.tally.error(
                    format!("{} {} {code}", c.op.name(), r.status.as_u16()),
                    format!(
                        "{} {} {} → {}: {}",
                        c.op.name(),
                        c.method,
                        c.path,
                        r.status.as_u16(),
                        snippet(&r.body)
                    ),
                );
                return None;
            }
            Err(e) => {
                self.tally.error(
                    format!("{} {}", c.op.name(), e.kind()),
                    format!("{} {} {} → {e}", c.op.name(), c.method, c.path),
                );
                return None;
            }
        };
        let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        let room = &mut self.rooms[c.room];
        let expected = c.op.events().len() as i64;
        let version = v.get("version").and_then(Value::as_i64);
        let position = v.get("position").and_then(Value::as_i64);
        let appended = match version {
            Some(ver) => ver - room.version,
            None => 0,
        };
        if let Some(ver) = version {
            room.version = ver;
        }
        if appended != expected || position.is_none() {
            self.tally.error(
                format!("{} appended {appended} events", c.op.name()),
                format!(
                    "{} {} {}: expected {expected} events, version moved by {appended}, \
                     position {position:?} (the model diverged)",
                    c.op.name(),
                    c.method,
                    c.path
                ),
            );
        }
        let appended = appended.max(0) as u64;
        self.tally.ok(c.op, appended, took, position);
        self.mine += appended;
        self.appended.fetch_add(appended, Ordering::Relaxed);
        Some(v)
    }

    // --- set-up -----------------------------------------------------------

    async fn create_group(
        &mut self,
        global: usize,
        owner: usize,
        public: bool,
        others: Vec<usize>,
    ) -> anyhow::Result<()> {
        let name = format!("mixed {} {global}", self.run_id);
        let topic = self.rng.words(4);
        let mut room = RoomModel {
            id: String::new(),
            direct: false,
            public,
            owner,
            members: BTreeMap::new(),
            invited: BTreeSet::new(),
            version: 0,
            messages: Vec::new(),
            read: BTreeMap::new(),
            renames: 0,
        };
        room.members.insert(owner, Role::Owner);
        self.rooms.push(room);
        let idx = self.rooms.len() - 1;
        let v = self
            .call(Call {
                op: Op::CreateRoom,
                room: idx,
                actor: owner,
                method: Method::POST,
                path: "/v1/rooms".into(),
                body: Some(json!({
                    "name": name,
                    "topic": topic,
                    "visibility": if public { "public" } else { "private" },
                })),
            })
            .await
            .ok_or_else(|| anyhow!("creating room {name} failed"))?;
        self.rooms[idx].id = field(&v, "room_id")?;
        for u in others {
            if !public {
                self.invite(idx, u).await;
            }
            self.join(idx, u).await;
        }
        Ok(())
    }

    async fn open_direct(&mut self, a: usize, b: usize) -> anyhow::Result<()> {
        let mut room = RoomModel {
            id: String::new(),
            direct: true,
            public: false,
            owner: a,
            members: BTreeMap::new(),
            invited: BTreeSet::new(),
            version: 0,
            messages: Vec::new(),
            read: BTreeMap::new(),
            renames: 0,
        };
        room.members.insert(a, Role::Member);
        room.members.insert(b, Role::Member);
        self.rooms.push(room);
        let idx = self.rooms.len() - 1;
        let with = self.users[b].id.clone();
        let v = self
            .call(Call {
                op: Op::OpenDirect,
                room: idx,
                actor: a,
                method: Method::POST,
                path: "/v1/direct".into(),
                body: Some(json!({ "user_id": with })),
            })
            .await
            .ok_or_else(|| anyhow!("opening a direct room failed"))?;
        self.rooms[idx].id = field(&v, "room_id")?;
        Ok(())
    }

    // --- commands that change the model on success --------------------------

    async fn invite(&mut self, room: usize, user: usize) {
        let r = &self.rooms[room];
        let path = format!("/v1/rooms/{}/invites", r.id);
        let (owner, uid) = (r.owner, self.users[user].id.clone());
        let call = Call {
            op: Op::Invite,
            room,
            actor: owner,
            method: Method::POST,
            path,
            body: Some(json!({ "user_id": uid })),
        };
        if self.call(call).await.is_some() {
            self.rooms[room].invited.insert(user);
        }
    }

    async fn join(&mut self, room: usize, user: usize) {
        let path = format!("/v1/rooms/{}/join", self.rooms[room].id);
        let call = Call {
            op: Op::Join,
            room,
            actor: user,
            method: Method::POST,
            path,
            body: None,
        };
        if self.call(call).await.is_some() {
            let r = &mut self.rooms[room];
            r.invited.remove(&user);
            r.members.insert(user, Role::Member);
        }
    }

    /// One step of the workload in a room chosen at random.
    async fn step(&mut self) {
        let room = self.rng.below(self.rooms.len());
        let mut roll = self.rng.below(1000) as u32;
        let mut op = Op::Send;
        for &(o, w) in WEIGHTS {
            if roll < w {
                op = o;
                break;
            }
            roll -= w;
        }
        if !self.try_op(op, room).await {
            self.send(room).await;
        }
    }

    /// Runs `op` in `room` when the room's state allows it; false when it does not.
    async fn try_op(&mut self, op: Op, room: usize) -> bool {
        let r = &self.rooms[room];
        let id = r.id.clone();
        let max_members = 2 * self.users.len().min(64) / 3;
        match op {
            Op::Send => {
                self.send(room).await;
                true
            }
            Op::Edit | Op::Delete => {
                let Some(m) = self.live_message(room) else {
                    return false;
                };
                let r = &self.rooms[room];
                let Some(actor) = r.changer(&r.messages[m]) else {
                    return false;
                };
                let mid = r.messages[m].id.clone();
                let path = format!("/v1/rooms/{id}/messages/{mid}");
                if op == Op::Edit {
                    let words = 3 + self.rng.below(10);
                    let body = format!("{} (edited)", self.rng.words(words));
                    let call = Call {
                        op,
                        room,
                        actor,
                        method: Method::PATCH,
                        path,
                        body: Some(json!({ "body": body })),
                    };
                    self.call(call).await;
                } else {
                    let call = Call {
                        op,
                        room,
                        actor,
                        method: Method::DELETE,
                        path,
                        body: None,
                    };
                    if self.call(call).await.is_some() {
                        let msg = &mut self.rooms[room].messages[m];
                        msg.deleted = true;
                        msg.reactions.clear();
                    }
                }
                true
            }
            Op::ReactionAdd => {
                let Some(m) = self.live_message(room) else {
                    return false;
                };
                let members = self.rooms[room].member_list();
                let Some(&user) = self.rng.pick(&members) else {
                    return false;
                };
                let msg = &self.rooms[room].messages[m];
                let free: Vec<usize> = (0..EMOJIS.len())
                    .filter(|e| !msg.reactions.contains(&(user, *e)))
                    .collect();
                let Some(&emoji) = self.rng.pick(&free) else {
                    return false;
                };
                let path = format!(
                    "/v1/rooms/{id}/messages/{}/reactions/{}",
                    msg.id,
                    path_segment(EMOJIS[emoji])
                );
                let call = Call {
                    op,
                    room,
                    actor: user,
                    method: Method::PUT,
                    path,
                    body: None,
                };
                if self.call(call).await.is_some() {
                    self.rooms[room].messages[m].reactions.insert((user, emoji));
                }
                true
            }
            Op::ReactionRemove => {
                // Reactions whose user is still a member (a former member cannot remove theirs).
                let r = &self.rooms[room];
                let mut candidates = Vec::new();
                for (i, msg) in r.messages.iter().enumerate().rev().take(200) {
                    if msg.deleted {
                        continue;
                    }
                    for &(u, e) in &msg.reactions {
                        if r.members.contains_key(&u) {
                            candidates.push((i, u, e));
                        }
                    }
                }
                let Some(&(m, user, emoji)) = self.rng.pick(&candidates) else {
                    return false;
                };
                let path = format!(
                    "/v1/rooms/{id}/messages/{}/reactions/{}",
                    r.messages[m].id,
                    path_segment(EMOJIS[emoji])
                );
                let call = Call {
                    op,
                    room,
                    actor: user,
                    method: Method::DELETE,
                    path,
                    body: None,
                };
                if self.call(call).await.is_some() {
                    self.rooms[room].messages[m]
                        .reactions
                        .remove(&(user, emoji));
                }
                true
            }
            Op::MarkRead => {
                let last = r.last_seq();
                let behind: Vec<(usize, u64)> = r
                    .members
                    .keys()
                    .map(|u| (*u, r.read.get(u).copied().unwrap_or(0)))
                    .filter(|(_, read)| *read < last)
                    .collect();
                let Some(&(user, read)) = self.rng.pick(&behind) else {
                    return false;
                };
                let seq = read + 1 + self.rng.below((last - read) as usize) as u64;
                let call = Call {
                    op,
                    room,
                    actor: user,
                    method: Method::POST,
                    path: format!("/v1/rooms/{id}/read"),
                    body: Some(json!({ "seq": seq })),
                };
                if self.call(call).await.is_some() {
                    self.rooms[room].read.insert(user, seq);
                }
                true
            }
            Op::Join | Op::Invite => {
                if r.direct || r.members.len() >= max_members {
                    return false;
                }
                if r.public {
                    let outsiders: Vec<usize> = (0..self.users.len())
                        .filter(|u| !r.members.contains_key(u))
                        .collect();
                    let Some(&user) = self.rng.pick(&outsiders) else {
                        return false;
                    };
                    self.join(room, user).await;
                } else if let Some(&user) = r.invited.iter().next() {
                    self.join(room, user).await;
                } else {
                    let outsiders: Vec<usize> = (0..self.users.len())
                        .filter(|u| !r.members.contains_key(u) && !r.invited.contains(u))
                        .collect();
                    let Some(&user) = self.rng.pick(&outsiders) else {
                        return false;
                    };
                    self.invite(room, user).await;
                }
                true
            }
            Op::Leave | Op::Kick | Op::ChangeRole => {
                if r.direct || r.members.len() <= 2 {
                    return false;
                }
                let others: Vec<usize> = r
                    .members
                    .iter()
                    .filter(|(_, role)| **role != Role::Owner)
                    .map(|(u, _)| *u)
                    .collect();
                let Some(&user) = self.rng.pick(&others) else {
                    return false;
                };
                let owner = r.owner;
                let uid = self.users[user].id.clone();
                let current = r.members.get(&user).copied();
                let (actor, method, path, body) = match op {
                    Op::Leave => (user, Method::POST, format!("/v1/rooms/{id}/leave"), None),
                    Op::Kick => (
                        owner,
                        Method::DELETE,
                        format!("/v1/rooms/{id}/members/{uid}"),
                        None,
                    ),
                    _ => {
                        let role = if current == Some(Role::Admin) {
                            "member"
                        } else {
                            "admin"
                        };
                        (
                            owner,
                            Method::PUT,
                            format!("/v1/rooms/{id}/members/{uid}/role"),
                            Some(json!({ "role": role })),
                        )
                    }
                };
                let call = Call {
                    op,
                    room,
                    actor,
                    method,
                    path,
                    body,
                };
                if self.call(call).await.is_some() {
                    let r = &mut self.rooms[room];
                    if op == Op::ChangeRole {
                        let role = if current == Some(Role::Admin) {
                            Role::Member
                        } else {
                            Role::Admin
                        };
                        r.members.insert(user, role);
                    } else {
                        r.members.remove(&user);
                        r.invited.remove(&user);
                    }
                }
                true
            }
            Op::Rename | Op::ChangeTopic => {
                if r.direct {
                    return false;
                }
                let owner = r.owner;
                let body = if op == Op::Rename {
                    let n = r.renames + 1;
                    self.rooms[room].renames = n;
                    let words = self.rng.words(2);
                    json!({ "name": format!("mixed {} {words} v{n}", self.run_id) })
                } else {
                    json!({ "topic": self.rng.words(5) })
                };
                let call = Call {
                    op,
                    room,
                    actor: owner,
                    method: Method::PATCH,
                    path: format!("/v1/rooms/{id}"),
                    body: Some(body),
                };
                self.call(call).await;
                true
            }
            Op::Register | Op::CreateRoom | Op::OpenDirect => false,
        }
    }

    /// A random message that is not deleted (a few tries), as an index.
    fn live_message(&mut self, room: usize) -> Option<usize> {
        let n = self.rooms[room].messages.len();
        if n == 0 {
            return None;
        }
        for _ in 0..8 {
            let i = self.rng.below(n);
            if !self.rooms[room].messages[i].deleted {
                return Some(i);
            }
        }
        None
    }

    async fn send(&mut self, room: usize) {
        let members = self.rooms[room].member_list();
        let Some(&actor) = self.rng.pick(&members) else {
            return;
        };
        let words = 3 + self.rng.below(10);
        let text = self.rng.words(words);
        let n = self.rooms[room].messages.len();
        let reply_to = if n > 0 && self.rng.below(10) == 0 {
            let i = self.rng.below(n);
            Some(self.rooms[room].messages[i].id.clone())
        } else {
            None
        };
        self.sent += 1;
        let mut body = json!({
            "client_msg_id": format!("{}-{}-{}", self.run_id, self.index, self.sent),
            "body": text,
        });
        if let Some(parent) = reply_to {
            body["reply_to"] = Value::String(parent);
        }
        let call = Call {
            op: Op::Send,
            room,
            actor,
            method: Method::POST,
            path: format!("/v1/rooms/{}/messages", self.rooms[room].id),
            body: Some(body),
        };
        let Some(v) = self.call(call).await else {
            return;
        };
        let r = &mut self.rooms[room];
        let seq = v.get("seq").and_then(Value::as_u64).unwrap_or(0);
        if seq != r.last_seq() + 1 {
            self.tally.error(
                "send seq out of order".into(),
                format!(
                    "room {}: got seq {seq}, expected {}",
                    r.id,
                    r.last_seq() + 1
                ),
            );
        }
        r.messages.push(MsgModel {
            id: v
                .get("message_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            author: actor,
            deleted: false,
            reactions: BTreeSet::new(),
        });
    }
}

// ---------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize)]
pub struct CommandStats {
    pub command: Op,
    pub count: u64,
    pub events: u64,
    pub latency: Latency,
}

#[derive(Clone, Debug, Serialize)]
pub struct EventShare {
    pub count: u64,
    pub percent: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct MixedReport {
    pub scenario: &'static str,
    pub url: String,
    pub started_at: String,
    pub run_id: String,
    pub seed: u64,
    pub clients: usize,
    pub users: usize,
    pub group_rooms: usize,
    pub private_rooms: usize,
    pub direct_rooms: usize,
    pub target_events: u64,
    /// How events are counted.
    pub counting: &'static str,
    pub events_appended: u64,
    pub setup_events: u64,
    pub setup_s: f64,
    /// The workload after set-up.
    pub workload_events: u64,
    pub workload_s: f64,
    pub workload_events_per_s: f64,
    pub total_s: f64,
    pub events_per_s: f64,
    pub commands: u64,
    /// Log positions carried by the answers (their span also counts other writers).
    pub first_position: Option<i64>,
    pub last_position: i64,
    pub by_event_type: BTreeMap<String, EventShare>,
    pub by_command: Vec<CommandStats>,
    pub messages_sent: u64,
    pub messages_deleted: u64,
    pub rooms_with_messages: usize,
    pub errors: Errors,
    pub error_total: u64,
    pub error_examples: Vec<String>,
    pub cpu: Option<CpuUsage>,
}

pub async fn run(args: &MixedArgs, out: &Path) -> anyhow::Result<MixedReport> {
    let (report, _world) = drive(&args.url, args.events, &args.shape).await?;
    emit(&report, out, "mixed")?;
    if report.error_total > 0 {
        return Err(anyhow!(
            "mixed: {} errors ({})",
            report.error_total,
            report.errors.brief()
        ));
    }
    Ok(report)
}

/// Deterministic distinct pairs of users for the direct rooms.
fn direct_pairs(users: usize, n: usize) -> Vec<(usize, usize)> {
    let mut pairs = Vec::with_capacity(n);
    'outer: for k in 1..=users / 2 {
        for a in 0..users {
            if pairs.len() == n {
                break 'outer;
            }
            let b = (a + k) % users;
            if 2 * k == users && a >= b {
                continue; // (a, a + k) and (a + k, a) are one pair
            }
            pairs.push((a, b));
        }
    }
    pairs
}

/// Runs the set-up and the workload; returns the report and the world it leaves.
pub async fn drive(url: &str, events: u64, shape: &Shape) -> anyhow::Result<(MixedReport, World)> {
    let clients = shape.clients.max(1);
    let users_n = shape.users.max(3);
    let max_pairs = users_n * (users_n - 1) / 2;
    if shape.direct > max_pairs {
        return Err(anyhow!(
            "--direct {} needs more users (at most {max_pairs} pairs of {users_n})",
            shape.direct
        ));
    }
    if shape.rooms + shape.direct == 0 {
        return Err(anyhow!("--rooms and --direct cannot both be 0"));
    }
    let target = Target::parse(url)?;
    Conn::new(target.clone(), shape.timeout)
        .connect()
        .await
        .map_err(|e| anyhow!("cannot reach {url}: {e}"))?;
    let started_at = chrono::Utc::now().to_rfc3339();
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let private_rooms = if shape.private_every == 0 {
        0
    } else {
        shape.rooms.div_ceil(shape.private_every)
    };
    report::say(&format!(
        "mixed: registering {users_n} users, {} group rooms ({private_rooms} private), \
         {} direct rooms, {clients} clients, until {events} events (run {run_id}, seed {})",
        shape.rooms, shape.direct, shape.seed
    ));
    let t_start = Instant::now();
    let cpu0 = CpuSnapshot::take();

    // Users, registered concurrently.
    let reg_t0 = Instant::now();
    let registered: Vec<anyhow::Result<(User, Duration)>> = futures::stream::iter(0..users_n)
        .map(|u| {
            let target = target.clone();
            let name = format!("mx{run_id}_{u}");
            let timeout = shape.timeout.max(Duration::from_secs(30));
            async move {
                let mut conn = Conn::new(target, timeout);
                let t0 = Instant::now();
                let user = User::register(&mut conn, name).await?;
                Ok((user, t0.elapsed()))
            }
        })
        .buffered(clients.min(16))
        .collect()
        .await;
    let mut tally = Tally::new();
    let mut users = Vec::with_capacity(users_n);
    for r in registered {
        let (user, took) = r?;
        tally.ok(Op::Register, 1, took, None);
        users.push(Arc::new(user));
    }
    let users = Arc::new(users);
    let appended = Arc::new(AtomicU64::new(users_n as u64));
    report::say(&format!(
        "mixed: {users_n} users registered in {:.1}s",
        reg_t0.elapsed().as_secs_f64()
    ));

    // Every client sets up its rooms, waits for the others, then drives them.
    let pairs = direct_pairs(users_n, shape.direct);
    let barrier = Arc::new(Barrier::new(clients + 1));
    let budget = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut setup_rng = Rng::new(shape.seed, 1_000_000 + i as u64);
        let mut groups = Vec::new();
        for r in (i..shape.rooms).step_by(clients) {
            let owner = (r * 7 + 3) % users_n;
            let public = shape.private_every == 0 || r % shape.private_every != 0;
            let mut others = BTreeSet::new();
            let want = shape.initial_members.min(users_n - 1);
            while others.len() < want {
                let u = setup_rng.below(users_n);
                if u != owner {
                    others.insert(u);
                }
            }
            // Join in a random order, not sorted by index.
            let mut others: Vec<usize> = others.into_iter().collect();
            for k in (1..others.len()).rev() {
                others.swap(k, setup_rng.below(k + 1));
            }
            groups.push((r, owner, public, others));
        }
        let directs: Vec<(usize, usize)> = pairs.iter().copied().skip(i).step_by(clients).collect();
        let mut client = Client {
            index: i,
            conn: Conn::new(target.clone(), shape.timeout),
            rng: Rng::new(shape.seed, i as u64),
            users: users.clone(),
            rooms: Vec::new(),
            tally: Tally::new(),
            appended: appended.clone(),
            mine: 0,
            sent: 0,
            run_id: run_id.clone(),
        };
        let (barrier, budget) = (barrier.clone(), budget.clone());
        tasks.push(tokio::spawn(async move {
            let mut failed = None;
            for (r, owner, public, others) in groups {
                if let Err(e) = client.create_group(r, owner, public, others).await {
                    failed = Some(e);
                    break;
                }
            }
            if failed.is_none() {
                for (a, b) in directs {
                    if let Err(e) = client.open_direct(a, b).await {
                        failed = Some(e);
                        break;
                    }
                }
            }
            client.rooms.retain(|r| !r.id.is_empty());
            barrier.wait().await;
            barrier.wait().await; // the budget is set between the two
            let share = budget.load(Ordering::Relaxed);
            if failed.is_none() && !client.rooms.is_empty() {
                let goal = client.mine + share;
                while client.mine < goal {
                    let before = client.mine;
                    client.step().await;
                    if client.mine == before {
                        // An error: do not spin on a broken server.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        if client.tally.errors.total() > 1000 {
                            break;
                        }
                    }
                }
            }
            (client, failed)
        }));
    }
    barrier.wait().await;
    let setup_events = appended.load(Ordering::Relaxed);
    let setup_s = t_start.elapsed().as_secs_f64();
    let remaining = events.saturating_sub(setup_events);
    // Clients beyond the number of rooms have none to drive.
    let active = clients.min(shape.rooms + pairs.len()).max(1);
    budget.store(remaining.div_ceil(active as u64), Ordering::Relaxed);
    report::say(&format!(
        "mixed: set-up appended {setup_events} events in {setup_s:.1}s; {remaining} to go"
    ));
    let work_t0 = Instant::now();
    barrier.wait().await;
    let pb = stats::progress(events, true, "mixed");
    let watcher = {
        let (appended, pb) = (appended.clone(), pb.clone());
        tokio::spawn(async move {
            let mut last = (Instant::now(), appended.load(Ordering::Relaxed));
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let now = (Instant::now(), appended.load(Ordering::Relaxed));
                let rate = (now.1 - last.1) as f64 / (now.0 - last.0).as_secs_f64().max(1e-3);
                pb.set_position(now.1.min(events));
                pb.set_message(format!("{} events, {rate:.0}/s", now.1));
                last = now;
            }
        })
    };
    let mut rooms = Vec::new();
    let mut failures = Vec::new();
    for t in tasks {
        match t.await {
            Ok((client, failed)) => {
                if let Some(e) = failed {
                    failures.push(format!("client {}: {e:#}", client.index));
                }
                tally.merge(client.tally);
                rooms.extend(client.rooms);
            }
            Err(e) => failures.push(format!("client task: {e}")),
        }
    }
    watcher.abort();
    pb.finish_and_clear();
    let workload_s = work_t0.elapsed().as_secs_f64();
    let total_s = t_start.elapsed().as_secs_f64();
    let cpu = cpu0.and_then(|c0| CpuSnapshot::take().map(|c1| c1.usage_since(&c0)));
    for f in &failures {
        tally.error("set-up".into(), f.clone());
    }
    let events_appended = appended.load(Ordering::Relaxed);
    let mut by_event: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_command = Vec::new();
    let mut commands = 0;
    for (op, t) in &tally.ops {
        commands += t.count;
        for ev in op.events() {
            *by_event.entry((*ev).to_owned()).or_default() += t.count;
        }
        by_command.push(CommandStats {
            command: *op,
            count: t.count,
            events: t.events,
            latency: Latency::of(&t.hist),
        });
    }
    let counted: u64 = by_event.values().sum();
    let by_event_type = by_event
        .into_iter()
        .map(|(k, count)| {
            let percent = 100.0 * count as f64 / counted.max(1) as f64;
            (k, EventShare { count, percent })
        })
        .collect();
    let messages_sent = rooms.iter().map(|r| r.messages.len() as u64).sum();
    let messages_deleted = rooms
        .iter()
        .flat_map(|r| &r.messages)
        .filter(|m| m.deleted)
        .count() as u64;
    let workload_events = events_appended - setup_events;
    let report = MixedReport {
        scenario: "mixed",
        url: url.to_owned(),
        started_at,
        run_id,
        seed: shape.seed,
        clients,
        users: users_n,
        group_rooms: shape.rooms,
        private_rooms,
        direct_rooms: pairs.len(),
        target_events: events,
        counting: "room commands: the increase of the room's version in the answer (each room \
                   has one writer, its client); registrations: one UserRegistered each",
        events_appended,
        setup_events,
        setup_s,
        workload_events,
        workload_s,
        workload_events_per_s: workload_events as f64 / workload_s.max(1e-9),
        total_s,
        events_per_s: events_appended as f64 / total_s.max(1e-9),
        commands,
        first_position: tally.first_position,
        last_position: tally.last_position,
        by_event_type,
        by_command,
        messages_sent,
        messages_deleted,
        rooms_with_messages: rooms.iter().filter(|r| !r.messages.is_empty()).count(),
        error_total: tally.errors.total(),
        errors: tally.errors,
        error_examples: tally.examples,
        cpu,
    };
    let world = World {
        users: users.iter().cloned().collect(),
        rooms,
        last_position: report.last_position,
    };
    Ok((report, world))
}

pub fn tables(r: &MixedReport) -> Vec<Table> {
    let mut summary = Table::new(
        format!(
            "mixed via {} (seed {}, {} clients, {} users, {} group rooms of which {} private, \
             {} direct)",
            r.url, r.seed, r.clients, r.users, r.group_rooms, r.private_rooms, r.direct_rooms
        ),
        &[
            "events",
            "commands",
            "total s",
            "events/s",
            "set-up events",
            "workload s",
            "workload events/s",
            "positions",
            "errors",
            "cpu (cores)",
        ],
    );
    summary.row(vec![
        r.events_appended.to_string(),
        r.commands.to_string(),
        f2(r.total_s),
        f0(r.events_per_s),
        r.setup_events.to_string(),
        f2(r.workload_s),
        f0(r.workload_events_per_s),
        format!(
            "{}–{}",
            r.first_position.map_or("-".into(), |p| p.to_string()),
            r.last_position
        ),
        r.errors.brief(),
        r.cpu.as_ref().map_or("-".into(), CpuUsage::brief),
    ]);
    let mut mix = Table::new("mixed: events appended by type", &["event", "count", "%"]);
    for (k, s) in &r.by_event_type {
        mix.row(vec![k.clone(), s.count.to_string(), f2(s.percent)]);
    }
    let mut cmds = Table::new(
        "mixed: commands (latency of the request)",
        &[
            "command", "count", "events", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
        ],
    );
    for c in &r.by_command {
        cmds.row(
            [
                vec![
                    c.command.name().to_owned(),
                    c.count.to_string(),
                    c.events.to_string(),
                ],
                c.latency.cells().to_vec(),
            ]
            .concat(),
        );
    }
    vec![summary, mix, cmds]
}

/// Prints the tables and writes `<name>.json` and `<name>.md`.
pub fn emit(r: &MixedReport, out: &Path, name: &str) -> anyhow::Result<()> {
    let tables = tables(r);
    let mut md = format!(
        "## loadgen mixed\n\n{} — {} events ({} counted as: {}).\n\n",
        r.started_at, r.events_appended, r.target_events, r.counting
    );
    for t in &tables {
        t.print();
        md.push_str(&t.markdown());
        md.push('\n');
    }
    let tail = format!(
        "{} messages sent ({} deleted) in {} rooms with messages; errors: {}",
        r.messages_sent,
        r.messages_deleted,
        r.rooms_with_messages,
        r.errors.brief()
    );
    report::say(&tail);
    md.push_str(&tail);
    md.push('\n');
    if !r.error_examples.is_empty() {
        report::say("error examples:");
        md.push_str("\nError examples:\n\n");
        for e in &r.error_examples {
            report::say(&format!("  {e}"));
            md.push_str(&format!("- `{e}`\n"));
        }
    }
    let json = report::write_json(out, &format!("{name}.json"), r)?;
    let mdp = report::write_text(out, &format!("{name}.md"), &md)?;
    for f in [json, mdp] {
        report::say(&format!("wrote {}", f.display()));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic_per_seed_and_stream() {
        let a: Vec<u64> = (0..5)
            .scan(Rng::new(7, 1), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .scan(Rng::new(7, 1), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..5)
            .scan(Rng::new(7, 2), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut r = Rng::new(1, 0);
        assert!((0..1000).all(|_| r.below(6) < 6));
        assert_eq!(r.below(0), 0);
        assert!(r.words(4).split(' ').all(|w| VOCABULARY.contains(&w)));
    }

    #[test]
    fn weights_add_up_to_a_thousand_and_sends_are_55_percent() {
        assert_eq!(WEIGHTS.iter().map(|w| w.1).sum::<u32>(), 1000);
        assert_eq!(WEIGHTS[0], (Op::Send, 550));
    }

    #[test]
    fn direct_pairs_are_distinct() {
        for users in [3, 4, 5, 64] {
            let n = users * (users - 1) / 2;
            let pairs = direct_pairs(users, n);
            assert_eq!(pairs.len(), n, "{users} users");
            let set: BTreeSet<(usize, usize)> =
                pairs.iter().map(|&(a, b)| (a.min(b), a.max(b))).collect();
            assert_eq!(set.len(), n, "{users} users: {pairs:?}");
            assert!(pairs.iter().all(|(a, b)| a != b));
        }
    }

    #[test]
    fn emoji_path_segments_are_percent_encoded() {
        assert_eq!(path_segment("👍"), "%F0%9F%91%8D");
        assert_eq!(path_segment("ok-1"), "ok-1");
    }

    #[test]
    fn error_codes_come_from_the_error_shape() {
        assert_eq!(
            error_code(br#"{"error":{"code":"message_deleted","message":"x"}}"#),
            "message_deleted"
        );
        assert_eq!(error_code(b"oops"), "-");
    }
}
