//! Test support: a log database with the read models, a JetStream stream, the relay, and a
//! simulator that appends real domain events (`events::room::decide` output) to the log.
#![allow(dead_code)]

pub mod message_counts;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use eventlog::testing::{TestDb, TestNats};
use eventlog::{
    AppendRequest, Appended, EventStore, ExpectedVersion, GroupCommitConfig, NewEvent,
    PgEventStore, Relay,
};
use events::StoredEvent;
use events::ids::{MessageId, RoomId, UserId};
use events::room::{AdminCommand, RoomCommand, RoomEvent, RoomState, decide, evolve};
use events::user::{Register, UserEvent, UserState};
use events::values::{
    Emoji, MessageBody, NotificationLevel, Role, RoomName, Topic, Username, Visibility,
};
use projector::{Outcome, Projection, Projector, ProjectorConfig, ReadModels};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;
use uuid::Uuid;

/// A fresh database (event log + read models), a JetStream stream and an event store.
pub struct Harness {
    pub db: TestDb,
    pub nats: TestNats,
    pub store: PgEventStore,
    /// The data directory (the search index), removed with the harness.
    pub data: tempfile::TempDir,
}

impl Harness {
    pub async fn new() -> Harness {
        let db = TestDb::new().await.expect("test database");
        projector::migrate(&db.pool)
            .await
            .expect("read-model migrations");
        let nats = TestNats::new().await.expect("test nats");
        let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
        let data = tempfile::tempdir().expect("data directory");
        Harness {
            db,
            nats,
            store,
            data,
        }
    }

    /// The projector's settings over this harness: its database, stream, subject prefix and
    /// data directory, listening on port 0 (what `projector run` / `rebuild` would load).
    #[allow(dead_code)] // not every test binary uses it
    pub fn settings(&self) -> projector::configuration::Settings {
        use http_kit::settings::Layered as _;
        let mut s = projector::configuration::Settings::from_defaults().expect("defaults");
        s.search.data_dir = self.data.path().to_owned();
        s.service.listen = "127.0.0.1:0".to_owned();
        s.service.database_url = self.db.url.as_str().into();
        s.service.nats_url = eventlog::testing::nats_url().into();
        s.service.stream_name = self.nats.stream_name.clone();
        s.service.subject_prefix = self.nats.prefix.clone();
        s
    }

    pub fn relay(&self) -> Relay {
        Relay::new(
            self.db.pool.clone(),
            self.nats.client.clone(),
            self.nats.relay_config(),
        )
    }

    /// Runs the relay in the background until the returned sender is dropped or fired.
    pub fn spawn_relay(
        &self,
    ) -> (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let relay = self.relay();
        let task = tokio::spawn(async move {
            let _ = relay
                .run(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        (stop, task)
    }

    pub fn projector_config(&self) -> ProjectorConfig {
        ProjectorConfig {
            stream_name: self.nats.stream_name.clone(),
            subject_prefix: self.nats.prefix.clone(),
            ..ProjectorConfig::default()
        }
    }

    /// A live runner of the read models.
    pub fn projector(&self) -> Projector {
        self.runner(Arc::new(ReadModels::new(self.db.pool.clone())))
    }

    /// A live runner of `projection` (dead letters in this database, this log).
    pub fn runner(&self, projection: Arc<dyn Projection>) -> Projector {
        Projector::new(
            projection,
            self.db.pool.clone(),
            self.db.pool.clone(),
            self.nats.client.clone(),
            self.projector_config(),
        )
    }

    pub async fn head(&self) -> i64 {
        eventlog::testing::head_position(&self.db.pool)
            .await
            .expect("log head")
    }

    /// The read models' checkpoint.
    pub async fn checkpoint(&self) -> i64 {
        projector::read_models::checkpoint(&self.db.pool, projector::READ_MODELS)
            .await
            .expect("checkpoint")
    }

    /// Drives `projector` from JetStream until its projection's checkpoint equals the log head.
    pub async fn drive_to_head(&self, projector: &mut Projector, within: Duration) {
        let deadline = Instant::now() + within;
        let projection = projector.projection().clone();
        let checkpoint = || async { projection.checkpoint().await.expect("checkpoint") };
        loop {
            let head = self.head().await;
            if checkpoint().await >= head {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "projector did not reach the log head {head} in {within:?} (checkpoint {})",
                checkpoint().await
            );
            match projector.process_next().await {
                Ok(Outcome::Applied(_) | Outcome::Idle) => {}
                // Transient (e.g. the relay has not created the stream yet): try again.
                Err(e) => {
                    eprintln!("process_next: {e:#}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    pub async fn dead_letters(&self) -> Vec<(i64, String, String)> {
        sqlx::query_as("SELECT position, event_type, reason FROM dead_letters ORDER BY position")
            .fetch_all(&self.db.pool)
            .await
            .expect("dead letters")
    }
}

/// A fresh database holding only the read models, replayed from `log` with
/// `catch_up_from_log` (the oracle: it reads PostgreSQL, not NATS). Returns it and the time taken.
pub async fn oracle(log: &PgPool) -> (TestDb, u64, Duration) {
    let db = TestDb::new().await.expect("oracle database");
    projector::migrate(&db.pool)
        .await
        .expect("read-model migrations");
    let started = Instant::now();
    let n = projector::catch_up_from_log(&db.pool, log)
        .await
        .expect("catch up from the log");
    (db, n, started.elapsed())
}

/// Asserts that two read-model databases hold the same rows.
pub async fn assert_same_read_models(a: &PgPool, b: &PgPool) {
    let sa = projector::oracle::snapshot(a).await.expect("snapshot");
    let sb = projector::oracle::snapshot(b).await.expect("snapshot");
    let (n, examples) = projector::oracle::diff(&sa, &sb, 10);
    let rows: usize = sa.iter().map(|(_, r)| r.len()).sum();
    assert_eq!(
        n,
        0,
        "{n} rows differ (of {rows}); e.g.\n{}",
        examples.join("\n")
    );
    assert!(rows > 0, "the read models are empty");
}

pub fn new_event<E: StoredEvent>(e: &E, actor: UserId) -> NewEvent {
    let (event_type, schema_version, data) = e.to_stored().expect("encode event");
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type,
        schema_version,
        data,
        occurred_at: chrono::Utc::now(),
        actor_id: Some(actor.0),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
    }
}

/// Appends one raw event to a stream without any check (for poison events).
pub async fn append_raw(
    store: &PgEventStore,
    stream_id: &str,
    stream_type: &str,
    event_type: &str,
    data: serde_json::Value,
) -> Appended {
    store
        .append(AppendRequest {
            stream_id: stream_id.to_owned(),
            stream_type: stream_type.to_owned(),
            expected: ExpectedVersion::Any,
            events: vec![NewEvent {
                event_id: Uuid::now_v7(),
                event_type: event_type.to_owned(),
                schema_version: 1,
                data,
                occurred_at: chrono::Utc::now(),
                actor_id: None,
                correlation_id: Uuid::now_v7(),
                causation_id: None,
            }],
            idempotency: vec![],
        })
        .await
        .expect("append raw event")
}

pub async fn register(store: &PgEventStore, name: &str) -> UserId {
    let user_id = UserId::new();
    let events = events::user::decide(
        &UserState::default(),
        Register {
            user_id,
            username: Username::parse(name).expect("username"),
            display_name: None,
        },
    )
    .expect("register");
    store
        .append(AppendRequest {
            stream_id: user_id.stream_id(),
            stream_type: UserEvent::STREAM_TYPE.to_owned(),
            expected: ExpectedVersion::NoStream,
            events: events.iter().map(|e| new_event(e, user_id)).collect(),
            idempotency: vec![],
        })
        .await
        .expect("append registration");
    user_id
}

/// A room as the simulator knows it.
#[derive(Clone, Debug)]
pub struct SimRoom {
    pub id: RoomId,
    pub state: RoomState,
    pub version: i64,
    pub messages: Vec<MessageId>,
}

impl SimRoom {
    pub fn new() -> SimRoom {
        SimRoom {
            id: RoomId::new(),
            state: RoomState::default(),
            version: 0,
            messages: vec![],
        }
    }

    /// Decides `cmd` and appends what it returns. Returns the number of events appended (0 when
    /// the command is rejected or a no-op) and the position of the last one.
    pub async fn run(
        &mut self,
        store: &PgEventStore,
        actor: UserId,
        cmd: RoomCommand,
    ) -> (usize, i64) {
        let Ok(events) = decide(&self.state, actor, cmd) else {
            return (0, 0);
        };
        if events.is_empty() {
            return (0, 0);
        }
        let appended = self.append(store, actor, &events).await;
        (events.len(), appended.last_position)
    }

    /// Decides `cmd`, which must succeed with events.
    pub async fn must(&mut self, store: &PgEventStore, actor: UserId, cmd: RoomCommand) -> i64 {
        let events = decide(&self.state, actor, cmd.clone())
            .unwrap_or_else(|e| panic!("{cmd:?} rejected: {e}"));
        assert!(!events.is_empty(), "{cmd:?} was a no-op");
        self.append(store, actor, &events).await.last_position
    }

    /// Appends events as they are (no decision), e.g. a read marker moving back.
    pub async fn append(
        &mut self,
        store: &PgEventStore,
        actor: UserId,
        events: &[RoomEvent],
    ) -> Appended {
        let expected = if self.version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(self.version)
        };
        let appended = store
            .append(AppendRequest {
                stream_id: self.id.stream_id(),
                stream_type: RoomEvent::STREAM_TYPE.to_owned(),
                expected,
                events: events.iter().map(|e| new_event(e, actor)).collect(),
                idempotency: vec![],
            })
            .await
            .expect("append room events");
        for e in events {
            self.state = evolve(std::mem::take(&mut self.state), e);
            if let RoomEvent::MessageSent { message_id, .. } = e {
                self.messages.push(*message_id);
            }
        }
        self.version = appended.last_version;
        appended
    }

    /// The id of the message with this seq.
    pub fn message(&self, seq: u64) -> MessageId {
        *self
            .state
            .messages
            .iter()
            .find(|(_, m)| m.seq == seq)
            .map(|(id, _)| id)
            .expect("message with this seq")
    }
}

pub fn body(s: &str) -> MessageBody {
    MessageBody::parse(s).expect("body")
}

pub fn emoji(s: &str) -> Emoji {
    Emoji::parse(s).expect("emoji")
}

pub fn create(name: &str, visibility: Visibility) -> RoomCommand {
    RoomCommand::Create {
        room_id: RoomId::new(),
        name: RoomName::parse(name).expect("name"),
        topic: Topic::parse("").expect("topic"),
        visibility,
    }
}

pub fn send(text: &str) -> RoomCommand {
    RoomCommand::SendMessage {
        attachments: Vec::new(),
        message_id: MessageId::new(),
        body: body(text),
        reply_to: None,
        client_msg_id: None,
        mentions: Vec::new(),
        mention_room: false,
    }
}

/// Changes `user`'s display name, as `PATCH /v1/me/profile` does.
pub async fn rename(store: &PgEventStore, user: UserId, name: &str) {
    let display_name = events::values::DisplayName::parse(name).expect("display name");
    append_user_event(
        store,
        UserEvent::DisplayNameChanged {
            user_id: user,
            display_name,
        },
    )
    .await;
}

/// Gives `user` a new avatar (`true`) or removes it (`false`), as `PUT`/`DELETE /v1/me/avatar`
/// do (the blob itself is not the read models' business).
pub async fn change_avatar(store: &PgEventStore, user: UserId, give: bool) {
    let avatar = give.then(|| {
        let id = events::AvatarId::new();
        events::avatar::AvatarRef {
            avatar_id: id,
            content_type: "image/png".into(),
            size: 1000,
            sha256: format!("{:064x}", id.0.as_u128()),
            side: 256,
        }
    });
    append_user_event(
        store,
        UserEvent::AvatarChanged {
            user_id: user,
            avatar,
        },
    )
    .await;
}

/// Keeps `user`'s read receipts private (or not), as `PUT /v1/me/read-receipts` does.
pub async fn set_private_receipts(store: &PgEventStore, user: UserId, private: bool) {
    let event = UserEvent::ReadReceiptsPrivacyChanged {
        user_id: user,
        private,
    };
    append_user_event(store, event).await;
}

/// Appends one settings event to its user's stream.
async fn append_user_event(store: &PgEventStore, event: UserEvent) {
    let user = event.user_id();
    store
        .append(AppendRequest {
            stream_id: user.stream_id(),
            stream_type: UserEvent::STREAM_TYPE.to_owned(),
            expected: ExpectedVersion::Any,
            events: vec![new_event(&event, user)],
            idempotency: vec![],
        })
        .await
        .expect("append a user event");
}

const EMOJIS: &[&str] = &["👍", "🎉", "😂", "ok", "+1"];

/// Now and then (a third of the time) one or two attachments' descriptions, an image among
/// them, so the read models' `attachments` column is compared too.
pub fn some_attachments(rng: &mut impl Rng) -> Vec<events::attachment::Attachment> {
    use events::attachment::{Attachment, ImageSize};
    if !rng.random_bool(0.33) {
        return Vec::new();
    }
    (0..rng.random_range(1..=2))
        .map(|i| Attachment {
            attachment_id: events::AttachmentId::new(),
            name: events::values::FileName::parse(&format!("file {i}.png")).expect("name"),
            size: rng.random_range(1..10_000_000),
            content_type: if i == 0 {
                "image/png"
            } else {
                "application/pdf"
            }
            .to_owned(),
            sha256: format!("{:064x}", rng.random::<u128>()),
            image: (i == 0).then(|| ImageSize {
                width: rng.random_range(1..4000),
                height: rng.random_range(1..4000),
            }),
        })
        .collect()
}

/// A world of users and rooms with members, built from real commands.
pub async fn setup_world(
    store: &PgEventStore,
    users: usize,
    groups: usize,
    directs: usize,
    seed: u64,
) -> (Vec<UserId>, Vec<SimRoom>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let tag = Uuid::new_v4().simple().to_string();
    let registrations = (0..users).map(|i| {
        let name = format!("u{i}_{}", &tag[..8]);
        async move { register(store, &name).await }
    });
    let user_ids: Vec<UserId> = futures::future::join_all(registrations).await;
    let mut rooms = Vec::new();
    for g in 0..groups {
        let mut room = SimRoom::new();
        let owner = *user_ids.choose(&mut rng).expect("users");
        let visibility = if rng.random_bool(0.7) {
            Visibility::Public
        } else {
            Visibility::Private
        };
        let RoomCommand::Create { name, topic, .. } = create(&format!("room {g}"), visibility)
        else {
            unreachable!()
        };
        room.must(
            store,
            owner,
            RoomCommand::Create {
                room_id: room.id,
                name,
                topic,
                visibility,
            },
        )
        .await;
        let members = rng.random_range(3..12);
        for _ in 0..members {
            let u = *user_ids.choose(&mut rng).expect("users");
            if visibility == Visibility::Private {
                room.run(store, owner, RoomCommand::Invite { user_id: u })
                    .await;
            }
            room.run(store, u, RoomCommand::Join).await;
        }
        rooms.push(room);
    }
    for _ in 0..directs {
        let mut room = SimRoom::new();
        let a = *user_ids.choose(&mut rng).expect("users");
        let b = *user_ids.choose(&mut rng).expect("users");
        if a == b {
            continue;
        }
        let id = room.id;
        room.run(
            store,
            a,
            RoomCommand::OpenDirect {
                room_id: id,
                with: b,
            },
        )
        .await;
        if room.version > 0 {
            rooms.push(room);
        }
    }
    (user_ids, rooms)
}

/// One random command for a room (most are valid; invalid ones are simply rejected).
pub fn random_command(
    room: &SimRoom,
    users: &[UserId],
    rng: &mut StdRng,
) -> Option<(UserId, RoomCommand)> {
    let st = &room.state;
    let mut members: Vec<UserId> = st.members.keys().copied().collect();
    members.sort();
    let member = *members.choose(rng)?;
    let live: Vec<(&MessageId, &events::room::MessageFacts)> = {
        let mut v: Vec<_> = st.messages.iter().filter(|(_, m)| !m.deleted).collect();
        v.sort_by_key(|(_, m)| m.seq);
        v
    };
    let roll = rng.random_range(0..100);
    let cmd = match roll {
        // A ban of anyone, member or not (the owner's refused), and now and then its lifting.
        43 => (
            st.owner?,
            RoomCommand::Ban {
                user_id: *users.choose(rng)?,
            },
        ),
        // A server administrator's command: anyone may play one (deciding trusts the caller).
        44 => {
            let cmd = match rng.random_range(0..5) {
                0 | 1 => AdminCommand::Ban {
                    user_id: *users.choose(rng)?,
                },
                2 => AdminCommand::Unban {
                    user_id: *users.choose(rng)?,
                },
                3 => AdminCommand::DeleteMessage {
                    message_id: *live.choose(rng)?.0,
                },
                _ => AdminCommand::ChangeRole {
                    user_id: member,
                    role: if rng.random_bool(0.5) {
                        Role::Admin
                    } else {
                        Role::Member
                    },
                },
            };
            (*users.choose(rng)?, RoomCommand::AsServerAdmin(cmd))
        }
        0..45 => {
            let reply_to = if rng.random_bool(0.2) {
                live.choose(rng).map(|(id, _)| **id)
            } else {
                None
            };
            (
                member,
                RoomCommand::SendMessage {
                    attachments: some_attachments(rng),
                    message_id: MessageId::new(),
                    body: body(&format!("message {}", rng.random::<u32>())),
                    reply_to,
                    client_msg_id: Some(Uuid::new_v4().to_string()),
                    // Members and others (whom deciding drops), now and then the room.
                    mentions: (0..rng.random_range(0..3))
                        .filter_map(|_| users.choose(rng).copied())
                        .collect(),
                    mention_room: rng.random_bool(0.1),
                },
            )
        }
        45..53 => {
            let (id, m) = live.choose(rng)?;
            (
                m.author?,
                RoomCommand::EditMessage {
                    message_id: **id,
                    body: body(&format!("edited {}", rng.random::<u32>())),
                },
            )
        }
        53..59 => {
            let (id, m) = live.choose(rng)?;
            (m.author?, RoomCommand::DeleteMessage { message_id: **id })
        }
        59..72 => {
            let (id, _) = live.choose(rng)?;
            (
                member,
                RoomCommand::AddReaction {
                    message_id: **id,
                    emoji: emoji(EMOJIS.choose(rng)?),
                },
            )
        }
        72..76 => {
            let with: Vec<_> = live
                .iter()
                .filter(|(_, m)| !m.reactions.is_empty())
                .collect();
            let (id, m) = with.choose(rng)?;
            let mut reactors: Vec<_> = m.reactions.iter().collect();
            reactors.sort_by_key(|(u, _)| **u);
            let (user, set) = reactors.choose(rng)?;
            let e = set.iter().next()?.clone();
            (
                **user,
                RoomCommand::RemoveReaction {
                    message_id: **id,
                    emoji: e,
                },
            )
        }
        76..88 => {
            let marker = st.read_markers.get(&member).copied().unwrap_or(0);
            if st.last_seq <= marker {
                return None;
            }
            let seq = rng.random_range(marker + 1..=st.last_seq);
            (
                member,
                RoomCommand::MarkRead {
                    seq,
                    private: rng.random_bool(0.3),
                },
            )
        }
        88..93 => {
            let u = *users.choose(rng)?;
            let owner = st.owner?;
            if st.visibility == Some(Visibility::Private) && !st.invited.contains(&u) {
                (owner, RoomCommand::Invite { user_id: u })
            } else {
                (u, RoomCommand::Join)
            }
        }
        93..95 => (member, RoomCommand::Leave),
        95..96 => (
            member,
            RoomCommand::SetNotificationLevel {
                level: *[
                    NotificationLevel::All,
                    NotificationLevel::Mentions,
                    NotificationLevel::None,
                ]
                .choose(rng)?,
            },
        ),
        96..98 => (
            st.owner?,
            RoomCommand::Kick {
                user_id: *members.choose(rng)?,
            },
        ),
        _ => (
            st.owner?,
            RoomCommand::ChangeRole {
                user_id: *members.choose(rng)?,
                role: if rng.random_bool(0.5) {
                    Role::Admin
                } else {
                    Role::Member
                },
            },
        ),
    };
    Some(cmd)
}

/// Appends random commands to `rooms` from `workers` concurrent tasks (each owns a share of
/// the rooms) until the log has `target` events. Returns the rooms.
pub async fn random_load(
    store: &PgEventStore,
    users: Vec<UserId>,
    rooms: Vec<SimRoom>,
    target: usize,
    workers: usize,
    seed: u64,
) -> Vec<SimRoom> {
    let head = usize::try_from(
        eventlog::testing::head_position(store.pool())
            .await
            .expect("log head"),
    )
    .expect("head");
    let count = Arc::new(AtomicUsize::new(head));
    let users = Arc::new(users);
    let mut shares: Vec<Vec<SimRoom>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, r) in rooms.into_iter().enumerate() {
        shares[i % workers].push(r);
    }
    let tasks = shares.into_iter().enumerate().map(|(w, mut share)| {
        let store = store.clone();
        let count = count.clone();
        let users = users.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(w as u64));
            while !share.is_empty() && count.load(Ordering::Relaxed) < target {
                if rng.random_bool(0.01) {
                    let user = *users.choose(&mut rng).expect("users");
                    set_private_receipts(&store, user, rng.random_bool(0.5)).await;
                    count.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if rng.random_bool(0.005) {
                    let user = *users.choose(&mut rng).expect("users");
                    let name = format!("renamed {}", rng.random::<u16>());
                    rename(&store, user, &name).await;
                    count.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if rng.random_bool(0.005) {
                    let user = *users.choose(&mut rng).expect("users");
                    change_avatar(&store, user, rng.random_bool(0.7)).await;
                    count.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let i = rng.random_range(0..share.len());
                let Some((actor, cmd)) = random_command(&share[i], &users, &mut rng) else {
                    continue;
                };
                let (n, _) = share[i].run(&store, actor, cmd).await;
                count.fetch_add(n, Ordering::Relaxed);
            }
            share
        })
    });
    let mut out = Vec::new();
    for t in futures::future::join_all(tasks).await {
        out.extend(t.expect("load worker"));
    }
    out
}

/// The search index holds exactly the messages the read models hold undeleted, each with its
/// current text: nothing lost, duplicated or stale.
#[allow(dead_code)] // not every test binary uses it
pub async fn assert_search_holds_the_read_models_messages(
    pool: &sqlx::PgPool,
    index: &dyn search::SearchBackend,
) {
    use search::{After, SearchRequest, Sort};
    let expected: std::collections::BTreeMap<uuid::Uuid, String> =
        sqlx::query_as("SELECT message_id, body FROM rm_messages WHERE NOT deleted")
            .fetch_all(pool)
            .await
            .expect("messages")
            .into_iter()
            .collect();
    let rooms: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT room_id FROM rm_rooms")
        .fetch_all(pool)
        .await
        .expect("rooms");
    let mut found = std::collections::BTreeMap::new();
    let mut req = SearchRequest {
        clauses: Vec::new(),
        rooms,
        senders: Vec::new(),
        sent_from: None,
        sent_before: None,
        has_link: false,
        sort: Sort::Recent,
        limit: 100,
        snapshot: None,
        after: None,
    };
    loop {
        let page = index.search(req.clone()).await.expect("search");
        for hit in &page.hits {
            let again = found.insert(hit.doc.message_id, hit.doc.body.clone());
            assert!(again.is_none(), "{} found twice", hit.doc.message_id);
        }
        let Some(last) = page.hits.last() else { break };
        if !page.more {
            break;
        }
        req.snapshot = Some(page.snapshot);
        req.after = Some(After {
            score: None,
            sent_position: last.doc.sent_position,
        });
    }
    assert_eq!(found.len(), expected.len(), "messages in the index");
    assert!(
        found == expected,
        "the index's messages and texts are the read models'"
    );
}
