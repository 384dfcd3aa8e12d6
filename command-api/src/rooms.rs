//! Room commands: one in-process actor per active room serialises the commands of
//! that room, decides them against a cached state, and appends what it decides.
//!
//! Why an actor: a hot room with 50 writers would otherwise spend its time in
//! optimistic-concurrency retries. The actor drains whatever is queued for its room,
//! decides each command in order against the state folded so far, and hands one
//! append per command to the group committer with chained expected versions, so a
//! burst of N messages into one room costs one transaction, not N.
//!
//! Other command-api replicas may write to the same room. The expected version in
//! every append catches that: on a conflict the actor drops its cache, reloads the
//! stream and decides the affected commands again (bounded attempts).

use crate::error::ApiError;
use axum::http::StatusCode;
use chrono::Utc;
use eventlog::{
    AppendError, AppendRequest, EventStore, ExpectedVersion, IdempotencyClaim, NewEvent,
    RecordedEvent,
};
use events::room::{self, RoomCommand, RoomError, RoomEvent, RoomState};
use events::{MessageId, RoomId, StoredEvent, UserId};
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Commands one actor takes from its queue in one round.
const MAX_ROUND: usize = 512;
/// Rounds a command may be retried after conflicts before the client is told to retry.
const MAX_ATTEMPTS: u32 = 5;
/// An actor with nothing to do for this long gives its memory back.
const IDLE_RETIRE: Duration = Duration::from_secs(300);
const QUEUE: usize = 4096;
const READ_PAGE: i64 = 10_000;

/// An idempotency key claimed by a command: a retry with the same key returns the
/// original response and appends nothing.
///
/// Two kinds, kept in PostgreSQL either way (design.md decision 8):
/// * an `Idempotency-Key` header: the response is stored in `idempotency_keys` by the
///   append that carries the command;
/// * a message's `client_msg_id` (`from_message`): the room's own `MessageSent` event
///   records it, so the event log is the record. The actor answers a retry from that
///   event, and the append's expected version guarantees that no other writer used the
///   key since the state the actor decided against (module docs).
#[derive(Clone, Debug)]
pub struct Idem {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
    /// The key is [`message_key`] of a `client_msg_id` and the fingerprint is
    /// [`message_fingerprint`] of the message.
    pub from_message: bool,
}

/// The idempotency key (in the room's scope) of a message sent with `client_msg_id`.
pub fn message_key(sender: UserId, client_msg_id: &str) -> String {
    format!("{sender}:msg:{client_msg_id}")
}

/// What ties a `client_msg_id` to one exact message: its (trimmed) body and `reply_to`.
pub fn message_fingerprint(body: &str, reply_to: Option<MessageId>) -> String {
    let reply = reply_to.map(|r| r.to_string()).unwrap_or_default();
    crate::routes::fingerprint(&[body, &reply])
}

fn key_hash(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// What a successful command answers, built from the events it produced.
pub struct Decided<'a> {
    pub room_id: RoomId,
    pub events: &'a [RoomEvent],
    /// The room stream's version after the command.
    pub version: i64,
}

pub type Responder = Box<dyn Fn(&Decided<'_>) -> (StatusCode, Value) + Send + Sync>;

/// A command for one room, from one user.
pub struct Submission {
    pub actor: UserId,
    /// Decided together against the same state and appended atomically.
    pub cmds: Vec<RoomCommand>,
    pub idempotency: Option<Idem>,
    pub correlation_id: Uuid,
    pub respond: Responder,
}

/// The response to send: status and JSON body (with `position` and `version`).
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] RoomError),
    #[error("idempotency key reused with a different request")]
    IdempotencyMismatch,
    #[error("too much contention on this room")]
    Busy,
    #[error("event store: {0}")]
    Store(String),
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Domain(d) => d.into(),
            CommandError::IdempotencyMismatch => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this idempotency key was used with a different request",
            ),
            CommandError::Busy => ApiError::unavailable("room busy, retry shortly"),
            CommandError::Store(m) => ApiError::internal(m),
        }
    }
}

enum Job {
    Submit(
        Box<Submission>,
        oneshot::Sender<Result<Reply, CommandError>>,
    ),
    IsMember(UserId, oneshot::Sender<Result<(), CommandError>>),
}

type Registry = Arc<Mutex<HashMap<RoomId, (u64, mpsc::Sender<Job>)>>>;

/// Entry point for every room command.
#[derive(Clone)]
pub struct RoomCommands<S: EventStore + Clone> {
    store: S,
    actors: Registry,
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl<S: EventStore + Clone> RoomCommands<S> {
    pub fn new(store: S) -> Self {
        Self {
            store,
            actors: Arc::default(),
            generation: Arc::default(),
        }
    }

    /// Decides and appends `sub` against room `room_id`; the reply is sent only
    /// after the events are committed.
    pub async fn submit(&self, room_id: RoomId, sub: Submission) -> Result<Reply, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(room_id, Job::Submit(Box::new(sub), tx)).await?;
        rx.await
            .map_err(|_| CommandError::Store("room actor stopped".into()))?
    }

    /// Succeeds when `user` is a member of the room now (read from the log, not a
    /// projection); otherwise the error a non-member gets for any command.
    pub async fn require_member(&self, room_id: RoomId, user: UserId) -> Result<(), CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(room_id, Job::IsMember(user, tx)).await?;
        rx.await
            .map_err(|_| CommandError::Store("room actor stopped".into()))?
    }

    async fn send(&self, room_id: RoomId, mut job: Job) -> Result<(), CommandError> {
        // An actor may be retiring at this very moment; the second try gets a new one.
        for _ in 0..2 {
            let sender = self.actor_for(room_id);
            match sender.send(job).await {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(j)) => job = j,
            }
        }
        Err(CommandError::Store("could not reach room actor".into()))
    }

    fn actor_for(&self, room_id: RoomId) -> mpsc::Sender<Job> {
        let mut map = self.actors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, s)) = map.get(&room_id)
            && !s.is_closed()
        {
            return s.clone();
        }
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE);
        map.insert(room_id, (generation, tx.clone()));
        let actor = RoomActor {
            room_id,
            stream_id: room_id.stream_id(),
            store: self.store.clone(),
            rx,
            state: None,
            version: 0,
            message_keys: HashMap::new(),
            registry: self.actors.clone(),
            generation,
        };
        tokio::spawn(actor.run());
        tx
    }

    /// Number of live room actors (for metrics).
    pub fn active_rooms(&self) -> usize {
        self.actors.lock().map(|m| m.len()).unwrap_or(0)
    }
}

struct Pending {
    sub: Box<Submission>,
    reply: oneshot::Sender<Result<Reply, CommandError>>,
    attempts: u32,
}

enum Planned {
    /// Appended as request `usize` of this round; answered with this reply
    /// (plus `position`) once committed.
    Append(usize, Pending, Reply),
    /// Answered without appending (a no-op or a domain rejection), in order.
    Answer(Result<Reply, CommandError>, Pending),
    /// Shares an idempotency key with an earlier command of this round: it is
    /// answered next round from the stored response.
    Follower(Pending),
}

struct RoomActor<S: EventStore> {
    room_id: RoomId,
    stream_id: String,
    store: S,
    rx: mpsc::Receiver<Job>,
    /// `None` until loaded, and again after anything failed (reload from the log).
    state: Option<RoomState>,
    version: i64,
    /// Hash of the [`message_key`] of every message in the loaded state that carried a
    /// `client_msg_id` → the stream version of its `MessageSent`. A key that is not here
    /// was not used up to `version`; one that is here is answered from that event. Another
    /// replica that used the key meanwhile moved the stream past `version`, so the append
    /// fails its expected version, the state is reloaded, and the key is found then.
    message_keys: HashMap<u64, i64>,
    registry: Registry,
    generation: u64,
}

impl<S: EventStore> RoomActor<S> {
    async fn run(mut self) {
        loop {
            let first = match tokio::time::timeout(IDLE_RETIRE, self.rx.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(_) => {
                    if self.retire() {
                        // Serve anything that raced in before the queue closed.
                        let mut rest = Vec::new();
                        while let Ok(job) = self.rx.try_recv() {
                            rest.push(job);
                        }
                        if !rest.is_empty() {
                            self.round(rest).await;
                        }
                        return;
                    }
                    continue;
                }
            };
            let mut jobs = vec![first];
            while jobs.len() < MAX_ROUND {
                match self.rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.round(jobs).await;
        }
    }

    fn retire(&mut self) -> bool {
        let mut map = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if !self.rx.is_empty() {
            return false;
        }
        if map
            .get(&self.room_id)
            .is_some_and(|(g, _)| *g == self.generation)
        {
            map.remove(&self.room_id);
        }
        self.rx.close();
        true
    }

    async fn round(&mut self, jobs: Vec<Job>) {
        let mut queue = VecDeque::new();
        let mut checks = Vec::new();
        for job in jobs {
            match job {
                Job::Submit(sub, reply) => queue.push_back(Pending {
                    sub,
                    reply,
                    attempts: 0,
                }),
                Job::IsMember(user, reply) => checks.push((user, reply)),
            }
        }
        if !checks.is_empty() {
            let res = self.catch_up().await;
            for (user, reply) in checks {
                let answer = match (&res, &self.state) {
                    (Ok(()), Some(state)) => state
                        .require_member(user)
                        .map(|_| ())
                        .map_err(CommandError::from),
                    (Err(e), _) => Err(CommandError::Store(e.clone())),
                    (Ok(()), None) => Err(CommandError::Store("room state missing".into())),
                };
                let _ = reply.send(answer);
            }
        }
        while !queue.is_empty() {
            queue = self.attempt(queue).await;
        }
    }

    /// One pass over the queued commands; returns those to run again.
    async fn attempt(&mut self, queue: VecDeque<Pending>) -> VecDeque<Pending> {
        // A loaded state is trusted: if another replica wrote since, the expected
        // version of the append says so, and the state is reloaded then.
        if self.state.is_none()
            && let Err(e) = self.catch_up().await
        {
            for p in queue {
                let _ = p.reply.send(Err(CommandError::Store(e.clone())));
            }
            return VecDeque::new();
        }
        let queue = match self.answer_stored(queue).await {
            Ok(q) => q,
            Err(()) => return VecDeque::new(),
        };
        let (plan, requests) = self.plan(queue);
        let results =
            futures::future::join_all(requests.into_iter().map(|r| self.store.append(r))).await;
        self.settle(plan, results)
    }

    /// Answers commands whose idempotency key is already used: header keys from
    /// `idempotency_keys`, `client_msg_id`s from their `MessageSent` event in the log.
    async fn answer_stored(&self, queue: VecDeque<Pending>) -> Result<VecDeque<Pending>, ()> {
        let mut by_scope: HashMap<&str, Vec<String>> = HashMap::new();
        // Per queued command, in order: the version of the `MessageSent` that used its
        // `client_msg_id`, if one did.
        let mut sent_at: Vec<Option<i64>> = Vec::with_capacity(queue.len());
        for p in &queue {
            let mut version = None;
            match &p.sub.idempotency {
                Some(i) if i.from_message => {
                    version = self.message_keys.get(&key_hash(&i.key)).copied();
                }
                Some(i) => by_scope.entry(&i.scope).or_default().push(i.key.clone()),
                None => {}
            }
            sent_at.push(version);
        }
        if by_scope.is_empty() && sent_at.iter().all(Option::is_none) {
            return Ok(queue);
        }
        let fail = |queue: VecDeque<Pending>, msg: String| {
            for p in queue {
                let _ = p.reply.send(Err(CommandError::Store(msg.clone())));
            }
            Err(())
        };
        let mut stored = HashMap::new();
        for (scope, keys) in by_scope {
            match self.store.lookup_idempotency(scope, &keys).await {
                Ok(found) => {
                    for (k, v) in found {
                        stored.insert((scope.to_owned(), k), v);
                    }
                }
                Err(e) => return fail(queue, e.to_string()),
            }
        }
        let mut sent: HashMap<i64, (RecordedEvent, RoomEvent)> = HashMap::new();
        for &version in sent_at.iter().flatten() {
            if sent.contains_key(&version) {
                continue;
            }
            let read = self
                .store
                .read_stream(&self.stream_id, version - 1, 1)
                .await;
            match read.map_err(|e| e.to_string()).and_then(|mut page| {
                let rec = page.pop().filter(|r| r.version == version).ok_or_else(|| {
                    format!("{} has no event at version {version}", self.stream_id)
                })?;
                let ev = decode(&rec)?;
                Ok((rec, ev))
            }) {
                Ok(found) => {
                    sent.insert(version, found);
                }
                Err(e) => return fail(queue, e),
            }
        }
        let mut rest = VecDeque::new();
        for (p, version) in queue.into_iter().zip(sent_at) {
            let answer = match &p.sub.idempotency {
                Some(i) if i.from_message => version
                    .and_then(|v| sent.get(&v))
                    .and_then(|(rec, ev)| self.replay_sent(&p.sub, i, rec, ev)),
                Some(i) => stored.get(&(i.scope.clone(), i.key.clone())).map(|s| {
                    if s.fingerprint == i.fingerprint {
                        Ok(Reply {
                            status: StatusCode::from_u16(s.status).unwrap_or(StatusCode::OK),
                            body: s.response.clone(),
                        })
                    } else {
                        Err(CommandError::IdempotencyMismatch)
                    }
                }),
                None => None,
            };
            match answer {
                Some(answer) => {
                    let _ = p.reply.send(answer);
                }
                None => rest.push_back(p),
            }
        }
        Ok(rest)
    }

    /// The answer to a retried `client_msg_id`, rebuilt from the `MessageSent` it produced
    /// exactly as the first answer was built (same responder, version and position).
    /// `None` if the event is not that message after all (a hash collision).
    fn replay_sent(
        &self,
        sub: &Submission,
        idem: &Idem,
        rec: &RecordedEvent,
        ev: &RoomEvent,
    ) -> Option<Result<Reply, CommandError>> {
        let RoomEvent::MessageSent {
            sender_id,
            body,
            reply_to,
            client_msg_id: Some(client_msg_id),
            ..
        } = ev
        else {
            return None;
        };
        if message_key(*sender_id, client_msg_id) != idem.key {
            return None;
        }
        if message_fingerprint(body.as_str(), *reply_to) != idem.fingerprint {
            return Some(Err(CommandError::IdempotencyMismatch));
        }
        let (status, mut body) = (sub.respond)(&Decided {
            room_id: self.room_id,
            events: std::slice::from_ref(ev),
            version: rec.version,
        });
        set_field(&mut body, "version", rec.version.into());
        set_field(&mut body, "position", rec.position.into());
        Some(Ok(Reply { status, body }))
    }

    /// Decides every command in order against the state as it will be after the
    /// ones before it, and builds one append request per command with events.
    fn plan(&mut self, queue: VecDeque<Pending>) -> (Vec<Planned>, Vec<AppendRequest>) {
        let mut plan = Vec::with_capacity(queue.len());
        let mut requests = Vec::new();
        let mut claimed: HashSet<(String, String)> = HashSet::new();
        let now = Utc::now();
        let Some(state) = self.state.as_mut() else {
            return (plan, requests);
        };
        for p in queue {
            if let Some(i) = &p.sub.idempotency
                && !claimed.insert((i.scope.clone(), i.key.clone()))
            {
                plan.push(Planned::Follower(p));
                continue;
            }
            // Commands of one submission are independent edits (e.g. name and topic)
            // and are all decided against the same state.
            let mut events = Vec::new();
            let mut rejected = None;
            for cmd in p.sub.cmds.iter().cloned() {
                match room::decide(state, p.sub.actor, cmd) {
                    Ok(mut evs) => events.append(&mut evs),
                    Err(e) => {
                        rejected = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = rejected {
                plan.push(Planned::Answer(Err(e.into()), p));
                continue;
            }
            if events.is_empty() {
                let (status, mut body) = (p.sub.respond)(&Decided {
                    room_id: self.room_id,
                    events: &[],
                    version: self.version,
                });
                set_field(&mut body, "position", Value::Null);
                set_field(&mut body, "version", self.version.into());
                plan.push(Planned::Answer(Ok(Reply { status, body }), p));
                continue;
            }
            let expected = if self.version == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(self.version)
            };
            let new_version = self.version + events.len() as i64;
            let (status, mut body) = (p.sub.respond)(&Decided {
                room_id: self.room_id,
                events: &events,
                version: new_version,
            });
            set_field(&mut body, "version", new_version.into());
            let mut new_events = Vec::with_capacity(events.len());
            let mut encode_error = None;
            for e in &events {
                match e.to_stored() {
                    Ok((event_type, schema_version, data)) => new_events.push(NewEvent {
                        event_id: Uuid::now_v7(),
                        event_type,
                        schema_version,
                        data,
                        occurred_at: now,
                        actor_id: Some(p.sub.actor.0),
                        correlation_id: p.sub.correlation_id,
                        causation_id: None,
                    }),
                    Err(err) => encode_error = Some(err.to_string()),
                }
            }
            if let Some(err) = encode_error {
                plan.push(Planned::Answer(Err(CommandError::Store(err)), p));
                continue;
            }
            for (i, e) in events.iter().enumerate() {
                if let RoomEvent::MessageSent {
                    sender_id,
                    client_msg_id: Some(c),
                    ..
                } = e
                {
                    self.message_keys.insert(
                        key_hash(&message_key(*sender_id, c)),
                        self.version + i as i64 + 1,
                    );
                }
                *state = room::evolve(std::mem::take(state), e);
            }
            self.version = new_version;
            // A `client_msg_id` is recorded by the event itself; only header keys need a row.
            let idempotency = p
                .sub
                .idempotency
                .iter()
                .filter(|i| !i.from_message)
                .map(|i| IdempotencyClaim {
                    scope: i.scope.clone(),
                    key: i.key.clone(),
                    fingerprint: i.fingerprint.clone(),
                    status: status.as_u16(),
                    response: body.clone(),
                })
                .collect();
            requests.push(AppendRequest {
                stream_id: self.stream_id.clone(),
                stream_type: RoomEvent::STREAM_TYPE.to_owned(),
                expected,
                events: new_events,
                idempotency,
            });
            plan.push(Planned::Append(
                requests.len() - 1,
                p,
                Reply { status, body },
            ));
        }
        (plan, requests)
    }

    /// Answers in order; from the first failed append on, everything is run again
    /// against a freshly loaded state.
    fn settle(
        &mut self,
        plan: Vec<Planned>,
        results: Vec<Result<eventlog::Appended, AppendError>>,
    ) -> VecDeque<Pending> {
        let mut again = VecDeque::new();
        let mut failed = false;
        let mut results: Vec<Option<Result<eventlog::Appended, AppendError>>> =
            results.into_iter().map(Some).collect();
        for item in plan {
            match item {
                Planned::Follower(p) => requeue(&mut again, p),
                Planned::Answer(answer, p) => {
                    if failed {
                        requeue(&mut again, p);
                    } else {
                        let _ = p.reply.send(answer);
                    }
                }
                Planned::Append(i, p, mut reply) => {
                    let result = results.get_mut(i).and_then(Option::take);
                    match (failed, result) {
                        (false, Some(Ok(appended))) => {
                            set_field(&mut reply.body, "position", appended.last_position.into());
                            let _ = p.reply.send(Ok(reply));
                        }
                        (_, Some(Err(AppendError::Database(e)))) => {
                            failed = true;
                            let _ = p.reply.send(Err(CommandError::Store(e.to_string())));
                        }
                        (_, Some(Err(AppendError::ShuttingDown))) => {
                            failed = true;
                            let _ = p.reply.send(Err(CommandError::Busy));
                        }
                        _ => {
                            // A conflict (another writer), a duplicate key, or a
                            // request after a failure: decide again on fresh state.
                            failed = true;
                            requeue(&mut again, p);
                        }
                    }
                }
            }
        }
        if failed {
            self.state = None;
            self.version = 0;
        }
        again
    }

    /// Loads the room on first use and folds in anything appended since (by
    /// another replica). Errors are strings so they can be shared by many replies.
    async fn catch_up(&mut self) -> Result<(), String> {
        let mut state = match self.state.take() {
            Some(state) => state,
            None => {
                self.version = 0;
                self.message_keys.clear();
                RoomState::default()
            }
        };
        loop {
            let page = self
                .store
                .read_stream(&self.stream_id, self.version, READ_PAGE)
                .await
                .map_err(|e| e.to_string());
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    self.version = 0;
                    return Err(e);
                }
            };
            let n = page.len() as i64;
            for rec in &page {
                match decode(rec) {
                    Ok(ev) => {
                        if let RoomEvent::MessageSent {
                            sender_id,
                            client_msg_id: Some(c),
                            ..
                        } = &ev
                        {
                            self.message_keys
                                .insert(key_hash(&message_key(*sender_id, c)), rec.version);
                        }
                        state = room::evolve(state, &ev);
                        self.version = rec.version;
                    }
                    Err(e) => {
                        self.version = 0;
                        return Err(e);
                    }
                }
            }
            if n < READ_PAGE {
                break;
            }
        }
        self.state = Some(state);
        Ok(())
    }
}

fn requeue(again: &mut VecDeque<Pending>, mut p: Pending) {
    p.attempts += 1;
    if p.attempts >= MAX_ATTEMPTS {
        let _ = p.reply.send(Err(CommandError::Busy));
    } else {
        again.push_back(p);
    }
}

fn set_field(body: &mut Value, key: &str, value: Value) {
    if let Value::Object(map) = body {
        map.insert(key.to_owned(), value);
    }
}

fn decode(rec: &RecordedEvent) -> Result<RoomEvent, String> {
    RoomEvent::from_stored(&rec.event_type, rec.schema_version, rec.data.clone()).map_err(|e| {
        format!(
            "cannot decode event {} at position {}: {e}",
            rec.event_id, rec.position
        )
    })
}
