//! Load through the public API, as clients would send it: users registered and joined to
//! public rooms, then writers that send messages (each with its own `client_msg_id`), edit
//! their messages (with an `Idempotency-Key`), react and move their read markers. A request
//! that fails in transit or with a 5xx or 429 is retried, unchanged, until it succeeds (a
//! retry can never apply twice); every 2xx goes into the [`Ledger`], every answer into the
//! outcome counts.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// How long one command may be retried before the load gives it up (and fails).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

/// Every user's password.
pub const PASSWORD: &str = "correct horse battery";

/// A user of the load.
#[derive(Clone, Debug)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub token: String,
    pub refresh: String,
}

/// An access token expired (15 minutes by default): the client refreshes it and sends
/// the same command again (refused before anything was decided, so this cannot apply it
/// twice).
#[derive(Debug, thiserror::Error)]
#[error("the access token expired")]
pub struct TokenExpired;

/// The users and rooms the load runs in; every user is a member of every room.
#[derive(Clone, Debug)]
pub struct World {
    pub users: Vec<User>,
    pub rooms: Vec<Uuid>,
}

/// A message the API acknowledged (201).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub room: Uuid,
    pub client_msg_id: String,
    pub message_id: Uuid,
    pub seq: i64,
    /// When the request was first sent.
    pub at: Instant,
}

/// Every command the API acknowledged.
#[derive(Default, Debug)]
pub struct Ledger {
    pub sent: Vec<Sent>,
    /// `(message_id, body)` of every acknowledged edit.
    pub edits: Vec<(Uuid, String)>,
    /// `(message_id, user, emoji)` of every acknowledged reaction.
    pub reactions: Vec<(Uuid, Uuid, String)>,
    pub read_markers: u64,
}

/// One answer (or transport failure) and when it came.
#[derive(Clone, Copy, Debug)]
pub struct Attempt {
    pub at: Instant,
    /// The HTTP status; 0 for a failure in transit (refused, reset, timed out).
    pub status: u16,
    /// A 503 that carried `Retry-After`.
    pub retry_after: bool,
}

/// The state the writers share.
#[derive(Default)]
pub struct Shared {
    pub ledger: Mutex<Ledger>,
    pub attempts: Mutex<Vec<Attempt>>,
    /// Bodies of answers that are neither 2xx, 429 nor 503 (for the report).
    pub unexpected: Mutex<Vec<String>>,
}

/// What the load should do.
#[derive(Clone, Debug)]
pub struct Plan {
    pub writers: usize,
    /// Pause between one writer's commands.
    pub pace: Duration,
    pub seed: u64,
    /// Characters of padding in every message body (0: a short body).
    pub pad: usize,
}

impl Plan {
    /// The steady load most fault scenarios run under: 4 writers, 5 ms apart, short bodies.
    pub fn steady(seed: u64) -> Plan {
        Plan {
            writers: 4,
            pace: Duration::from_millis(5),
            seed,
            pad: 0,
        }
    }
}

/// A running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub started: Instant,
}

/// A client of the platform's two APIs.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub command: String,
    pub query: String,
}

impl Api {
    /// One request, retried while it fails in transit or answers 5xx/429, until
    /// [`GIVE_UP_AFTER`]. Every attempt is recorded.
    pub async fn call(
        &self,
        shared: &Shared,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value)> {
        let first = Instant::now();
        let mut backoff = Duration::from_millis(50);
        loop {
            let mut req = self.http.request(method.clone(), url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let (status, retry_after, text) = match req.send().await {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let retry_after = res.headers().contains_key("retry-after");
                    (status, retry_after, res.text().await.unwrap_or_default())
                }
                Err(_) => (0, false, String::new()),
            };
            record(shared, status, retry_after);
            match status {
                200..=299 => {
                    return Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)));
                }
                0 | 429 | 500..=599 => {
                    if status >= 500 && status != 503 {
                        unexpected(shared, method.as_str(), url, status, &text);
                    }
                    if first.elapsed() > GIVE_UP_AFTER {
                        bail!("{method} {url}: still {status} after {GIVE_UP_AFTER:?}");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                401 if text.contains("\"token_expired\"") => return Err(TokenExpired.into()),
                _ => {
                    unexpected(shared, method.as_str(), url, status, &text);
                    bail!("{method} {url}: {status} {text}");
                }
            }
        }
    }
}

fn record(shared: &Shared, status: u16, retry_after: bool) {
    let attempt = Attempt {
        at: Instant::now(),
        status,
        retry_after,
    };
    if let Ok(mut a) = shared.attempts.lock() {
        a.push(attempt);
    }
}

fn unexpected(shared: &Shared, method: &str, url: &str, status: u16, text: &str) {
    if let Ok(mut u) = shared.unexpected.lock() {
        u.push(format!("{method} {url}: {status} {text}"));
    }
}

/// Registers `users` users, has the first create `rooms` public rooms and every other
/// user join them.
pub async fn setup(
    api: &Api,
    shared: &Shared,
    users: usize,
    rooms: usize,
) -> anyhow::Result<World> {
    let run = &Uuid::new_v4().simple().to_string()[..6];
    let mut world = World {
        users: Vec::new(),
        rooms: Vec::new(),
    };
    for i in 0..users {
        let username = format!("chaos_{run}_{i}");
        let body = json!({ "username": username, "password": PASSWORD });
        let key = Uuid::new_v4().to_string();
        let (_, res) = api
            .call(
                shared,
                Method::POST,
                &format!("{}/v1/auth/register", api.command),
                None,
                Some(&body),
                &[("Idempotency-Key", &key)],
            )
            .await?;
        world.users.push(User {
            id: field(&res, "user_id")?,
            username,
            token: res["access_token"]
                .as_str()
                .context("access_token")?
                .to_owned(),
            refresh: res["refresh_token"]
                .as_str()
                .context("refresh_token")?
                .to_owned(),
        });
    }
    let owner = world.users.first().context("no users")?.clone();
    for r in 0..rooms {
        let body = json!({ "name": format!("chaos {run} {r}"), "visibility": "public" });
        let key = Uuid::new_v4().to_string();
        let (_, res) = api
            .call(
                shared,
                Method::POST,
                &format!("{}/v1/rooms", api.command),
                Some(&owner.token),
                Some(&body),
                &[("Idempotency-Key", &key)],
            )
            .await?;
        world.rooms.push(field(&res, "room_id")?);
    }
    for user in &world.users[1..] {
        for room in &world.rooms {
            api.call(
                shared,
                Method::POST,
                &format!("{}/v1/rooms/{room}/join", api.command),
                Some(&user.token),
                None,
                &[],
            )
            .await?;
        }
    }
    Ok(world)
}

fn field(v: &Value, name: &str) -> anyhow::Result<Uuid> {
    v[name]
        .as_str()
        .with_context(|| format!("no {name} in {v}"))?
        .parse()
        .with_context(|| format!("{name} is not a UUID"))
}

impl Load {
    /// Starts the writers; they run until [`Load::stop`].
    pub fn start(api: Api, world: World, plan: Plan) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared::default());
        let tasks = (0..plan.writers)
            .map(|w| {
                let (api, world, stop, shared) =
                    (api.clone(), world.clone(), stop.clone(), shared.clone());
                let user = world.users[w % world.users.len()].clone();
                let rng = StdRng::seed_from_u64(plan.seed.wrapping_add(w as u64));
                let writer = Writer {
                    api,
                    world,
                    user,
                    rng,
                    plan: plan.clone(),
                    shared,
                    mine: Vec::new(),
                    n: 0,
                };
                tokio::spawn(writer.run(stop))
            })
            .collect();
        Load {
            stop,
            shared,
            tasks,
            started: Instant::now(),
        }
    }

    /// Messages acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        self.shared.ledger.lock().map_or(0, |l| l.sent.len())
    }

    /// Waits until `n` more messages than now are acknowledged (bounded).
    pub async fn wait_for_more(&self, n: usize, within: Duration) -> anyhow::Result<()> {
        let target = self.acknowledged() + n;
        let deadline = Instant::now() + within;
        while self.acknowledged() < target {
            if Instant::now() > deadline {
                bail!(
                    "the load acknowledged {} of {target} messages within {within:?}",
                    self.acknowledged()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// The first 2xx at or after `t` and how long after `t` it came.
    pub fn first_success_after(&self, t: Instant) -> Option<Duration> {
        let attempts = self.shared.attempts.lock().ok()?;
        attempts
            .iter()
            .filter(|a| a.at >= t && (200..300).contains(&a.status))
            .map(|a| a.at - t)
            .min()
    }

    /// Stops the writers (each finishes the command it is in, retries included).
    pub async fn stop(self) -> anyhow::Result<Arc<Shared>> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.context("writer task")??;
        }
        Ok(self.shared)
    }
}

/// Answers by status (0 = in transit) of the attempts in `[from, to)`.
pub fn outcomes(shared: &Shared, from: Instant, to: Instant) -> BTreeMap<u16, u64> {
    let mut out = BTreeMap::new();
    if let Ok(a) = shared.attempts.lock() {
        for x in a.iter().filter(|a| a.at >= from && a.at < to) {
            *out.entry(x.status).or_default() += 1;
        }
    }
    out
}

/// One writer of the load: a user sending commands one after another.
struct Writer {
    api: Api,
    world: World,
    user: User,
    rng: StdRng,
    plan: Plan,
    shared: Arc<Shared>,
    /// This writer's acknowledged messages: `(room, message_id, seq)`.
    mine: Vec<(Uuid, Uuid, i64)>,
    /// Commands so far.
    n: u64,
}

impl Writer {
    /// Sends commands until `stop`, refreshing the access token when it expires.
    async fn run(mut self, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
        while !stop.load(Ordering::SeqCst) {
            self.n += 1;
            match self.command().await {
                Ok(()) => {}
                Err(e) if e.is::<TokenExpired>() => self.refresh().await?,
                Err(e) => return Err(e),
            }
            if !self.plan.pace.is_zero() {
                tokio::time::sleep(self.plan.pace).await;
            }
        }
        Ok(())
    }

    /// Refreshes the user's tokens.
    async fn refresh(&mut self) -> anyhow::Result<()> {
        let body = json!({ "refresh_token": self.user.refresh });
        let (_, res) = self
            .api
            .call(
                &self.shared,
                Method::POST,
                &format!("{}/v1/auth/refresh", self.api.command),
                None,
                Some(&body),
                &[],
            )
            .await?;
        self.user.token = res["access_token"]
            .as_str()
            .context("access_token")?
            .to_owned();
        self.user.refresh = res["refresh_token"]
            .as_str()
            .context("refresh_token")?
            .to_owned();
        Ok(())
    }

    /// One command, chosen at random: mostly sends, then reactions, edits and read markers
    /// on this writer's own messages.
    async fn command(&mut self) -> anyhow::Result<()> {
        let room = *self.world.rooms.choose(&mut self.rng).context("no rooms")?;
        let roll = self.rng.random_range(0..100);
        let target = self.mine.iter().rev().find(|m| m.0 == room).copied();
        match (roll, target) {
            (0..80, _) | (_, None) => {
                let client_msg_id = Uuid::new_v4().to_string();
                let at = Instant::now();
                let text = format!("m {client_msg_id} {} {}", self.n, "x".repeat(self.plan.pad));
                let body = json!({ "client_msg_id": client_msg_id, "body": text.trim_end() });
                let (_, res) = self
                    .api
                    .call(
                        &self.shared,
                        Method::POST,
                        &format!("{}/v1/rooms/{room}/messages", self.api.command),
                        Some(&self.user.token),
                        Some(&body),
                        &[],
                    )
                    .await?;
                let message_id = field(&res, "message_id")?;
                let seq = res["seq"].as_i64().context("seq")?;
                self.mine.push((room, message_id, seq));
                if let Ok(mut l) = self.shared.ledger.lock() {
                    l.sent.push(Sent {
                        room,
                        client_msg_id,
                        message_id,
                        seq,
                        at,
                    });
                }
            }
            (80..88, Some((room, message_id, _))) => {
                let emoji = ["👍", "🎉", "ok", "❤️"]
                    .choose(&mut self.rng)
                    .copied()
                    .unwrap_or("ok");
                self.api
                    .call(
                        &self.shared,
                        Method::PUT,
                        &format!(
                            "{}/v1/rooms/{room}/messages/{message_id}/reactions/{}",
                            self.api.command,
                            urlencode(emoji)
                        ),
                        Some(&self.user.token),
                        None,
                        &[],
                    )
                    .await?;
                if let Ok(mut l) = self.shared.ledger.lock() {
                    l.reactions
                        .push((message_id, self.user.id, emoji.to_owned()));
                }
            }
            (88..94, Some((room, message_id, _))) => {
                let key = Uuid::new_v4().to_string();
                let text = format!("edited {key}");
                self.api
                    .call(
                        &self.shared,
                        Method::PATCH,
                        &format!("{}/v1/rooms/{room}/messages/{message_id}", self.api.command),
                        Some(&self.user.token),
                        Some(&json!({ "body": text })),
                        &[("Idempotency-Key", &key)],
                    )
                    .await?;
                if let Ok(mut l) = self.shared.ledger.lock() {
                    l.edits.push((message_id, text));
                }
            }
            (_, Some((room, _, seq))) => {
                self.api
                    .call(
                        &self.shared,
                        Method::POST,
                        &format!("{}/v1/rooms/{room}/read", self.api.command),
                        Some(&self.user.token),
                        Some(&json!({ "seq": seq })),
                        &[],
                    )
                    .await?;
                if let Ok(mut l) = self.shared.ledger.lock() {
                    l.read_markers += 1;
                }
            }
        }
        Ok(())
    }
}

/// Percent-encodes a path segment.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
