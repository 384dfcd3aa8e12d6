//! The fast path (`projector::batch`: a whole batch grouped by kind, folded in memory where
//! order matters) must leave the read models exactly as the reference does: `apply_event`, one
//! event at a time, each poison event rolled back (careful mode). Random logs of every event
//! kind, in a few rooms with a few users so that the same members, messages and markers meet
//! in a batch: joins, leaves, kicks, bans and unbans, invites and role changes of members and
//! non-members (some with a server administrator's authority),
//! messages (some beyond a read marker's seq, some after a gap in seqs), edits, deletes,
//! reactions added and removed (repeats included), read markers (backwards and beyond the last
//! message too), renames, topics, visibility, direct rooms, user registrations and events of
//! streams the read models ignore. Each log is cut into batches of random sizes.
//!
//! Clean logs (nothing `apply_event` refuses) go straight through `batch::apply_events`, which
//! must accept every batch (no fallback to careful mode hides a difference). Logs with poison
//! events (undecodable, missing rooms and messages, deleted messages, duplicates, role changes
//! of strangers) go through the read-model projection and the framework (fast path, careful
//! redo, dead letters), which must dead-letter exactly the events the reference refuses.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::Harness;
use eventlog::testing::TestDb;
use eventlog::{AppendRequest, EventStore, ExpectedVersion, NewEvent, PgEventStore, RecordedEvent};
use events::StoredEvent;
use events::ids::{MessageId, RoomId, UserId};
use events::retention::RetentionDays;
use events::room::RoomEvent;
use events::user::UserEvent;
use events::values::{
    DisplayName, Emoji, MessageBody, NotificationLevel, Role, RoomName, Topic, Username, Visibility,
};
use projector::ReadModels;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;

const EMOJIS: &[&str] = &["👍", "🎉", "ok"];

struct GenMessage {
    id: MessageId,
    seq: u64,
    deleted: bool,
    edits: u32,
}

/// A room as the generator knows it: enough to produce events `apply_event` accepts (and,
/// on purpose, some it refuses).
struct GenRoom {
    id: RoomId,
    /// Users with a membership row (invited or joined once; rows are never removed).
    rows: BTreeSet<UserId>,
    joined: BTreeSet<UserId>,
    messages: Vec<GenMessage>,
    max_seq: u64,
}

/// What to append: a typed event of a room or user stream, or raw JSON.
enum Gen {
    User(UserId, UserEvent),
    Room(RoomId, RoomEvent),
    Raw {
        stream_id: String,
        stream_type: &'static str,
        event_type: &'static str,
        data: serde_json::Value,
    },
}

struct World {
    rng: StdRng,
    tag: String,
    poison: bool,
    users: Vec<(UserId, String)>,
    rooms: Vec<GenRoom>,
    pairs: BTreeSet<(UserId, UserId)>,
}

fn body(s: &str) -> MessageBody {
    MessageBody::parse(s).expect("body")
}

impl World {
    fn new(seed: u64, poison: bool) -> World {
        World {
            rng: StdRng::seed_from_u64(seed),
            tag: Uuid::new_v4().simple().to_string()[..8].to_owned(),
            poison,
            users: Vec::new(),
            rooms: Vec::new(),
            pairs: BTreeSet::new(),
        }
    }

    fn user(&mut self) -> UserId {
        self.users.choose(&mut self.rng).expect("users").0
    }

    fn register(&mut self) -> Gen {
        let user_id = UserId::new();
        let name = format!("u{}_{}", self.users.len(), self.tag);
        self.users.push((user_id, name.clone()));
        Gen::User(
            user_id,
            UserEvent::UserRegistered {
                user_id,
                username: Username::parse(&name).expect("username"),
                display_name: DisplayName::parse(&format!("User {name}")).expect("display"),
            },
        )
    }

    fn create_room(&mut self) -> Gen {
        let id = RoomId::new();
        let owner = self.user();
        self.rooms.push(GenRoom {
            id,
            rows: BTreeSet::new(),
            joined: BTreeSet::new(),
            messages: Vec::new(),
            max_seq: 0,
        });
        Gen::Room(
            id,
            RoomEvent::RoomCreated {
                room_id: id,
                name: RoomName::parse(&format!("room {}", self.rooms.len())).expect("name"),
                topic: Topic::parse("").expect("topic"),
                visibility: if self.rng.random_bool(0.5) {
                    Visibility::Public
                } else {
                    Visibility::Private
                },
                created_by: owner,
            },
        )
    }

    /// A direct room of a pair that has none yet (`None` when no such pair is left).
    fn open_direct(&mut self) -> Option<Gen> {
        let (a, b) = (self.user(), self.user());
        let pair = (a.min(b), a.max(b));
        if a == b || self.pairs.contains(&pair) {
            return None;
        }
        self.pairs.insert(pair);
        let id = RoomId::new();
        self.rooms.push(GenRoom {
            id,
            rows: BTreeSet::new(),
            joined: BTreeSet::new(),
            messages: Vec::new(),
            max_seq: 0,
        });
        Some(Gen::Room(
            id,
            RoomEvent::DirectRoomOpened {
                room_id: id,
                user_ids: [a, b],
                opened_by: a,
            },
        ))
    }

    fn next(&mut self) -> Gen {
        if self.users.len() < 3 {
            return self.register();
        }
        if self.rooms.is_empty() {
            return self.create_room();
        }
        let roll = self.rng.random_range(0..100);
        if self.poison && roll < 5 {
            return self.poison_event();
        }
        match roll {
            5..7 if self.users.len() < 12 => return self.register(),
            7..8 if self.rooms.len() < 8 => return self.create_room(),
            8..9 if self.rooms.len() < 8 => {
                if let Some(g) = self.open_direct() {
                    return g;
                }
            }
            10..12 => {
                let user_id = self.user();
                let r = self.rng.random_range(0..self.rooms.len());
                let level = *[
                    NotificationLevel::All,
                    NotificationLevel::Mentions,
                    NotificationLevel::None,
                ]
                .choose(&mut self.rng)
                .expect("levels");
                return Gen::Room(
                    self.rooms[r].id,
                    RoomEvent::NotificationLevelChanged { user_id, level },
                );
            }
            12..13 => {
                let user_id = self.user();
                return Gen::User(
                    user_id,
                    UserEvent::ReadReceiptsPrivacyChanged {
                        user_id,
                        private: self.rng.random_bool(0.5),
                    },
                );
            }
            14..15 => {
                let user_id = self.user();
                let by = self.user();
                return Gen::User(
                    user_id,
                    UserEvent::UserDeactivated {
                        user_id,
                        deactivated_by: by,
                    },
                );
            }
            15..16 if self.rng.random_bool(0.3) => {
                // Rare: the users erased get no further events of their own in a real log
                // (they are deactivated), but the fast path must not rely on it.
                let user_id = self.user();
                let by = self.user();
                return Gen::User(
                    user_id,
                    UserEvent::UserErased {
                        user_id,
                        erased_by: by,
                    },
                );
            }
            13..14 => {
                let user_id = self.user();
                let n = self.rng.random::<u16>();
                return Gen::User(
                    user_id,
                    UserEvent::DisplayNameChanged {
                        user_id,
                        display_name: DisplayName::parse(&format!("renamed {n}")).expect("display"),
                    },
                );
            }
            16..17 => {
                let user_id = self.user();
                let avatar = self.rng.random_bool(0.7).then(|| {
                    let avatar_id = events::AvatarId::new();
                    events::avatar::AvatarRef {
                        avatar_id,
                        content_type: "image/jpeg".into(),
                        size: 2048,
                        sha256: format!("{:064x}", avatar_id.0.as_u128()),
                        side: 256,
                    }
                });
                return Gen::User(user_id, UserEvent::AvatarChanged { user_id, avatar });
            }
            9..10 => {
                // A stream the read models ignore.
                return Gen::Raw {
                    stream_id: format!("audit-{}", Uuid::now_v7()),
                    stream_type: "audit",
                    event_type: "Noted",
                    data: json!({ "note": "ignored by the read models" }),
                };
            }
            _ => {}
        }
        let r = self.rng.random_range(0..self.rooms.len());
        self.room_event(r)
    }

    /// An event of room `r` that `apply_event` accepts.
    fn room_event(&mut self, r: usize) -> Gen {
        let anyone = self.user();
        // Whom a message sent here mentions: up to two users, members or not, each once.
        let mut mentions: Vec<UserId> = self.users.iter().map(|u| u.0).collect();
        mentions.shuffle(&mut self.rng);
        mentions.truncate(self.rng.random_range(0..3));
        let roll = self.rng.random_range(0..100);
        let rng = &mut self.rng;
        let room = &mut self.rooms[r];
        let live: Vec<usize> = (0..room.messages.len())
            .filter(|&i| !room.messages[i].deleted)
            .collect();
        let event = match roll {
            30..55 if !live.is_empty() => {
                let m = &mut room.messages[*live.choose(rng).expect("live")];
                let (message_id, seq) = (m.id, m.seq);
                match roll {
                    30..38 => {
                        m.edits += 1;
                        RoomEvent::MessageEdited {
                            message_id,
                            seq,
                            body: body(&format!("edit {}", m.edits)),
                            edit_number: m.edits,
                            edited_by: anyone,
                        }
                    }
                    38..42 => {
                        m.deleted = true;
                        RoomEvent::MessageDeleted {
                            message_id,
                            seq,
                            deleted_by: anyone,
                            as_admin: rng.random_bool(0.3),
                        }
                    }
                    42..50 => RoomEvent::ReactionAdded {
                        message_id,
                        seq,
                        user_id: anyone,
                        emoji: Emoji::parse(EMOJIS.choose(rng).expect("emoji")).expect("emoji"),
                    },
                    _ => RoomEvent::ReactionRemoved {
                        message_id,
                        seq,
                        user_id: anyone,
                        emoji: Emoji::parse(EMOJIS.choose(rng).expect("emoji")).expect("emoji"),
                    },
                }
            }
            55..68 => {
                // Backwards, in place, forwards, and beyond the last message.
                let reader = if rng.random_bool(0.8) {
                    room.joined
                        .iter()
                        .copied()
                        .collect::<Vec<_>>()
                        .choose(rng)
                        .copied()
                } else {
                    None
                }
                .unwrap_or(anyone);
                RoomEvent::ReadMarkerMoved {
                    user_id: reader,
                    seq: rng.random_range(0..=room.max_seq + 2),
                    private: rng.random_bool(0.3),
                }
            }
            68..76 => {
                room.rows.insert(anyone);
                room.joined.insert(anyone);
                RoomEvent::MemberJoined {
                    user_id: anyone,
                    role: if rng.random_bool(0.3) {
                        Role::Admin
                    } else {
                        Role::Member
                    },
                }
            }
            76..80 => {
                room.rows.insert(anyone);
                RoomEvent::MemberInvited {
                    user_id: anyone,
                    invited_by: anyone,
                }
            }
            80..86 => {
                let who = room
                    .joined
                    .iter()
                    .copied()
                    .collect::<Vec<_>>()
                    .choose(rng)
                    .copied()
                    .unwrap_or(anyone);
                room.joined.remove(&who);
                match rng.random_range(0..10) {
                    0..5 => RoomEvent::MemberLeft { user_id: who },
                    5..8 => RoomEvent::MemberKicked {
                        user_id: who,
                        kicked_by: anyone,
                    },
                    _ => RoomEvent::MemberBanned {
                        user_id: who,
                        banned_by: anyone,
                        as_admin: rng.random_bool(0.5),
                    },
                }
            }
            86..90 if !room.rows.is_empty() => RoomEvent::MemberRoleChanged {
                user_id: *room
                    .rows
                    .iter()
                    .copied()
                    .collect::<Vec<_>>()
                    .choose(rng)
                    .expect("rows"),
                role: if rng.random_bool(0.5) {
                    Role::Admin
                } else {
                    Role::Member
                },
                changed_by: anyone,
                as_admin: rng.random_bool(0.3),
            },
            // Anyone: a member, an invitee, someone who left, or who never came.
            97..98 => {
                room.joined.remove(&anyone);
                RoomEvent::MemberBanned {
                    user_id: anyone,
                    banned_by: room.joined.first().copied().unwrap_or(anyone),
                    as_admin: rng.random_bool(0.5),
                }
            }
            98..100 if rng.random_bool(0.5) => RoomEvent::MemberUnbanned {
                user_id: anyone,
                unbanned_by: anyone,
                as_admin: rng.random_bool(0.5),
            },
            90..93 => RoomEvent::RoomRenamed {
                name: RoomName::parse(&format!("renamed {}", rng.random::<u16>())).expect("name"),
                renamed_by: anyone,
            },
            93..94 => RoomEvent::RoomTopicChanged {
                topic: Topic::parse(&format!("topic {}", rng.random::<u16>())).expect("topic"),
                changed_by: anyone,
            },
            94..95 if rng.random_bool(0.3) => RoomEvent::RoomRetentionChanged {
                days: rng
                    .random_bool(0.7)
                    .then(|| RetentionDays::parse(rng.random_range(1..=365)).expect("days")),
                changed_by: anyone,
            },
            94..95 => {
                // Up to any message, now and then one at or below an earlier expiry.
                let up_to_seq = rng.random_range(0..=room.max_seq);
                for m in room.messages.iter_mut().filter(|m| m.seq <= up_to_seq) {
                    m.deleted = true;
                }
                RoomEvent::MessagesExpired { up_to_seq }
            }
            95..97 => RoomEvent::RoomVisibilityChanged {
                visibility: if rng.random_bool(0.5) {
                    Visibility::Public
                } else {
                    Visibility::Private
                },
                changed_by: anyone,
            },
            _ => {
                let sender = if rng.random_bool(0.85) {
                    room.joined
                        .iter()
                        .copied()
                        .collect::<Vec<_>>()
                        .choose(rng)
                        .copied()
                } else {
                    None
                }
                .unwrap_or(anyone);
                // Now and then a gap in the seqs.
                let seq = room.max_seq + if rng.random_bool(0.05) { 2 } else { 1 };
                room.max_seq = seq;
                let id = MessageId::new();
                room.messages.push(GenMessage {
                    id,
                    seq,
                    deleted: false,
                    edits: 0,
                });
                RoomEvent::MessageSent {
                    attachments: common::some_attachments(rng),
                    message_id: id,
                    seq,
                    sender_id: sender,
                    body: body(&format!("message {seq}")),
                    reply_to: None,
                    client_msg_id: rng.random_bool(0.5).then(|| Uuid::new_v4().to_string()),
                    mentions,
                    mentions_room: rng.random_bool(0.1),
                }
            }
        };
        Gen::Room(room.id, event)
    }

    /// An event `apply_event` refuses (the generator's rooms do not change).
    fn poison_event(&mut self) -> Gen {
        let anyone = self.user();
        let r = self.rng.random_range(0..self.rooms.len());
        let room = &self.rooms[r];
        let stranger = self
            .users
            .iter()
            .map(|u| u.0)
            .find(|u| !room.rows.contains(u));
        let deleted = room.messages.iter().find(|m| m.deleted);
        let any_message = room.messages.first();
        match self.rng.random_range(0..10) {
            0 => Gen::Raw {
                stream_id: room.id.stream_id(),
                stream_type: "room",
                event_type: "MessageSent",
                data: json!({ "nonsense": true }),
            },
            1 => Gen::Room(
                // A room the read models never saw created.
                RoomId::new(),
                RoomEvent::ReadMarkerMoved {
                    user_id: anyone,
                    seq: 1,
                    private: false,
                },
            ),
            2 if stranger.is_some() => Gen::Room(
                room.id,
                RoomEvent::MemberRoleChanged {
                    user_id: stranger.expect("stranger"),
                    role: Role::Admin,
                    changed_by: anyone,
                    as_admin: false,
                },
            ),
            3 if deleted.is_some() => {
                let m = deleted.expect("deleted");
                Gen::Room(
                    room.id,
                    RoomEvent::ReactionAdded {
                        message_id: m.id,
                        seq: m.seq,
                        user_id: anyone,
                        emoji: Emoji::parse("ok").expect("emoji"),
                    },
                )
            }
            4 if any_message.is_some() => {
                // The right seq, another message's id.
                let m = any_message.expect("message");
                Gen::Room(
                    room.id,
                    RoomEvent::MessageEdited {
                        message_id: MessageId::new(),
                        seq: m.seq,
                        body: body("who?"),
                        edit_number: 1,
                        edited_by: anyone,
                    },
                )
            }
            5 if any_message.is_some() => {
                // A seq that is taken.
                let m = any_message.expect("message");
                Gen::Room(
                    room.id,
                    RoomEvent::MessageSent {
                        attachments: Vec::new(),
                        message_id: MessageId::new(),
                        seq: m.seq,
                        sender_id: anyone,
                        body: body("again"),
                        reply_to: None,
                        client_msg_id: None,
                        mentions: Vec::new(),
                        mentions_room: false,
                    },
                )
            }
            6 => {
                // A username that is taken.
                let (_, name) = self.users.choose(&mut self.rng).expect("users").clone();
                let user_id = UserId::new();
                Gen::User(
                    user_id,
                    UserEvent::UserRegistered {
                        user_id,
                        username: Username::parse(&name).expect("username"),
                        display_name: DisplayName::parse("again").expect("display"),
                    },
                )
            }
            8 => Gen::Room(
                // A ban in a room the read models never saw created.
                RoomId::new(),
                RoomEvent::MemberBanned {
                    user_id: anyone,
                    banned_by: anyone,
                    as_admin: true,
                },
            ),
            7 if !self.pairs.is_empty() => {
                // A second direct room for a pair.
                let (a, b) = *self.pairs.iter().next().expect("pair");
                let id = RoomId::new();
                Gen::Room(
                    id,
                    RoomEvent::DirectRoomOpened {
                        room_id: id,
                        user_ids: [b, a],
                        opened_by: b,
                    },
                )
            }
            _ => Gen::Room(
                // A room created twice.
                room.id,
                RoomEvent::RoomCreated {
                    room_id: room.id,
                    name: RoomName::parse("twice").expect("name"),
                    topic: Topic::parse("").expect("topic"),
                    visibility: Visibility::Public,
                    created_by: anyone,
                },
            ),
        }
    }
}

fn new_event(event_type: String, schema_version: i32, data: serde_json::Value) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type,
        schema_version,
        data,
        occurred_at: chrono::Utc::now(),
        actor_id: None,
        correlation_id: Uuid::now_v7(),
        causation_id: None,
    }
}

async fn append(store: &PgEventStore, g: Gen) {
    let (stream_id, stream_type, event) = match g {
        Gen::User(id, e) => {
            let (t, v, d) = e.to_stored().expect("encode");
            (id.stream_id(), UserEvent::STREAM_TYPE, new_event(t, v, d))
        }
        Gen::Room(id, e) => {
            let (t, v, d) = e.to_stored().expect("encode");
            (id.stream_id(), RoomEvent::STREAM_TYPE, new_event(t, v, d))
        }
        Gen::Raw {
            stream_id,
            stream_type,
            event_type,
            data,
        } => (
            stream_id,
            stream_type,
            new_event(event_type.to_owned(), 1, data),
        ),
    };
    store
        .append(AppendRequest {
            stream_id,
            stream_type: stream_type.to_owned(),
            expected: ExpectedVersion::Any,
            events: vec![event],
            idempotency: vec![],
        })
        .await
        .expect("append");
}

/// Appends `n` generated events to the harness's log and returns the log.
async fn generate(h: &Harness, seed: u64, poison: bool, n: usize) -> Vec<RecordedEvent> {
    let mut world = World::new(seed, poison);
    for _ in 0..n {
        let g = world.next();
        append(&h.store, g).await;
    }
    let head = h.head().await;
    eventlog::testing::read_all(&h.db.pool, 0, head)
        .await
        .expect("log")
}

async fn fresh_read_models() -> TestDb {
    let db = TestDb::new().await.expect("database");
    projector::migrate(&db.pool).await.expect("migrate");
    db
}

/// The reference: each event in its own transaction with `apply_event`; a poison event is
/// rolled back. Returns the positions of the poison events.
async fn one_by_one(db: &TestDb, log: &[RecordedEvent]) -> Vec<i64> {
    let mut poison = Vec::new();
    for ev in log {
        let mut tx = db.pool.begin().await.expect("begin");
        match projector::apply::apply_event(&mut tx, ev).await {
            Ok(()) => tx.commit().await.expect("commit"),
            Err(e) if e.is_poison() => {
                tx.rollback().await.expect("rollback");
                poison.push(ev.position);
            }
            Err(e) => panic!("apply position {}: {e}", ev.position),
        }
    }
    poison
}

/// Cuts `log` into batches of random sizes: single events, small and large batches.
fn random_batches<'a>(log: &'a [RecordedEvent], rng: &mut StdRng) -> Vec<&'a [RecordedEvent]> {
    let mut out = Vec::new();
    let mut rest = log;
    while !rest.is_empty() {
        let size = match rng.random_range(0..10) {
            0 => 1,
            1..4 => rng.random_range(2..30),
            _ => rng.random_range(30..400),
        }
        .min(rest.len());
        let (batch, tail) = rest.split_at(size);
        out.push(batch);
        rest = tail;
    }
    out
}

/// The room event `ev` holds, if it is one that decodes.
fn decoded(ev: &RecordedEvent) -> Option<RoomEvent> {
    (ev.stream_type == RoomEvent::STREAM_TYPE)
        .then(|| RoomEvent::from_stored(&ev.event_type, ev.schema_version, ev.data.clone()).ok())
        .flatten()
}

/// How many times a batch holds a join or invitation after a read marker of the same member, or a message
/// at or below a marker its sender moved: the orders the fast path cannot fold.
fn unfoldable_orders(batch: &[RecordedEvent]) -> usize {
    let mut markers: BTreeMap<(String, Uuid), u64> = BTreeMap::new();
    let mut n = 0;
    for ev in batch {
        match decoded(ev) {
            Some(RoomEvent::ReadMarkerMoved { user_id, seq, .. }) => {
                let m = markers
                    .entry((ev.stream_id.clone(), user_id.0))
                    .or_insert(seq);
                *m = (*m).max(seq);
            }
            Some(
                RoomEvent::MemberJoined { user_id, .. } | RoomEvent::MemberInvited { user_id, .. },
            ) => {
                n += usize::from(markers.contains_key(&(ev.stream_id.clone(), user_id.0)));
            }
            Some(RoomEvent::MessageSent { sender_id, seq, .. }) => {
                n += usize::from(
                    markers
                        .get(&(ev.stream_id.clone(), sender_id.0))
                        .is_some_and(|&m| seq <= m),
                );
            }
            _ => {}
        }
    }
    n
}

/// Every kind of event the generator makes is in `log`.
fn assert_every_kind(log: &[RecordedEvent]) {
    let kinds: BTreeSet<&str> = log.iter().map(|e| e.event_type.as_str()).collect();
    for kind in [
        "UserRegistered",
        "RoomCreated",
        "DirectRoomOpened",
        "RoomRenamed",
        "RoomTopicChanged",
        "RoomVisibilityChanged",
        "MemberInvited",
        "MemberJoined",
        "MemberLeft",
        "MemberKicked",
        "MemberBanned",
        "MemberUnbanned",
        "MemberRoleChanged",
        "MessageSent",
        "MessageEdited",
        "MessageDeleted",
        "ReactionAdded",
        "ReactionRemoved",
        "ReadMarkerMoved",
        "RoomRetentionChanged",
        "MessagesExpired",
        "Noted",
    ] {
        assert!(kinds.contains(kind), "the log has no {kind}");
    }
}

#[tokio::test]
async fn random_mixed_batches_applied_set_based_equal_events_applied_one_by_one() {
    let mut unfoldable = 0;
    for seed in [11_u64, 12, 13] {
        let h = Harness::new().await;
        let log = generate(&h, seed, false, 1_500).await;
        assert_every_kind(&log);

        let reference = fresh_read_models().await;
        let poison = one_by_one(&reference, &log).await;
        assert!(poison.is_empty(), "a clean log has no poison: {poison:?}");

        let fast = fresh_read_models().await;
        let mut rng = StdRng::seed_from_u64(seed);
        for batch in random_batches(&log, &mut rng) {
            unfoldable += unfoldable_orders(batch);
            let mut tx = fast.pool.begin().await.expect("begin");
            projector::batch::apply_events(&mut tx, batch, &[])
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "batch {}..={} refused: {e}",
                        batch[0].position,
                        batch[batch.len() - 1].position
                    )
                });
            tx.commit().await.expect("commit");
        }
        common::assert_same_read_models(&fast.pool, &reference.pool).await;
        // The comparison covers the attention and moderation tables with rows in them, not empty
        // ones.
        for table in [
            "rm_mentions",
            "rm_room_mentions",
            "rm_receipts",
            "rm_notification_levels",
            "rm_private_receipts",
            "rm_room_bans",
            "rm_audit",
        ] {
            let rows: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                    .fetch_one(&fast.pool)
                    .await
                    .expect("count");
            assert!(rows > 0, "{table} is empty (seed {seed})");
        }
        // And erasures, amid the batches.
        let erased: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM rm_messages m JOIN rm_users u ON u.user_id = m.sender_id \
             WHERE u.display_name = '[erased]' AND m.body = '[erased]'",
        )
        .fetch_one(&fast.pool)
        .await
        .expect("count");
        assert!(erased > 0, "no erased message (seed {seed})");
        h.nats.cleanup().await;
    }
    assert!(
        unfoldable > 0,
        "the batches must hold orders that start a new segment"
    );
}

#[tokio::test]
async fn poison_events_inside_random_mixed_batches_are_dead_lettered_and_the_rest_applied() {
    for seed in [21_u64, 22] {
        let h = Harness::new().await;
        let log = generate(&h, seed, true, 1_500).await;

        let reference = fresh_read_models().await;
        let poison = one_by_one(&reference, &log).await;
        assert!(
            poison.len() >= 20,
            "the log must hold poison events (found {})",
            poison.len()
        );

        // Through the projection and the framework: the fast path fails on the poison, the
        // careful redo isolates it, the framework dead-letters it and carries on.
        for batch in [7_i64, 150, 2_000] {
            let db = fresh_read_models().await;
            let projection = ReadModels::new(db.pool.clone());
            let n =
                projector::framework::catch_up_from_log(&projection, &db.pool, &h.db.pool, batch)
                    .await
                    .expect("catch up");
            assert_eq!(n, log.len() as u64, "every event applied or dead-lettered");
            let dead: Vec<i64> = sqlx::query_scalar(
                "SELECT position FROM dead_letters WHERE projection = $1 ORDER BY position",
            )
            .bind(projector::READ_MODELS)
            .fetch_all(&db.pool)
            .await
            .expect("dead letters");
            assert_eq!(dead, poison, "dead letters with batches of {batch}");
            common::assert_same_read_models(&db.pool, &reference.pool).await;
        }
        h.nats.cleanup().await;
    }
}
