//! Two command-api replicas over one log: each has its own room actors (`RoomCommands`), so
//! one may append a key the other's actor has never seen.

use command_api::idempotency::{Idem, message_fingerprint, message_key};
use command_api::rooms::{CommandError, Committed, RoomCommands, Submission};
use eventlog::testing::TestDb;
use eventlog::{EventStore, GroupCommitConfig, IdempotencyScope, PgEventStore};
use events::room::{RoomCommand, RoomEvent};
use events::values::{MessageBody, RoomName, Topic, Visibility};
use events::{MessageId, RoomId, UserId};
use uuid::Uuid;

use super::counted::Counted;

pub(crate) fn submission(actor: UserId, cmd: RoomCommand, idempotency: Option<Idem>) -> Submission {
    Submission {
        actor,
        cmds: vec![cmd],
        idempotency,
        correlation_id: Uuid::now_v7(),
    }
}

/// The `seq` of the message a command sent.
pub(crate) fn seq(c: &Committed) -> Option<u64> {
    c.events.iter().find_map(|e| match e {
        RoomEvent::MessageSent { seq, .. } => Some(*seq),
        _ => None,
    })
}

/// Creates a public room named `name`, owned by `owner`, through `commands`.
pub(crate) async fn create_room<S: EventStore + Clone>(
    commands: &RoomCommands<S>,
    owner: UserId,
    name: &str,
) -> RoomId {
    let room = RoomId::new();
    let create = RoomCommand::Create {
        room_id: room,
        name: RoomName::parse(name).unwrap(),
        topic: Topic::parse("").unwrap(),
        visibility: Visibility::Public,
    };
    commands
        .submit(room, submission(owner, create, None))
        .await
        .unwrap();
    room
}

pub(crate) fn send(text: &str, client_msg_id: Option<&str>) -> RoomCommand {
    RoomCommand::SendMessage {
        mentions: Vec::new(),
        mention_room: false,
        attachments: Vec::new(),
        message_id: MessageId::new(),
        body: MessageBody::parse(text).unwrap(),
        reply_to: None,
        client_msg_id: client_msg_id.map(str::to_owned),
    }
}

/// A message `text` sent with `client_msg_id`, with its idempotency record as the route
/// builds it.
pub(crate) fn keyed(user: UserId, room: RoomId, text: &str, client_msg_id: &str) -> Submission {
    let idem = Idem {
        scope: IdempotencyScope::stream(&room.stream_id()),
        key: message_key(user, client_msg_id),
        fingerprint: message_fingerprint(text, None, &[]),
        from_message: true,
    };
    submission(user, send(text, Some(client_msg_id)), Some(idem))
}

#[tokio::test]
async fn a_client_msg_id_first_sent_through_another_replica_returns_the_original_response() {
    let db = TestDb::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    vault::migrate(&db.pool).await.unwrap();
    // Two replicas: two processes, each with its own keyring.
    let keyring = || std::sync::Arc::new(vault::Keyring::new(db.pool.clone(), true));
    let a = RoomCommands::new(store.clone(), keyring());
    let b = RoomCommands::new(store, keyring());
    let owner = UserId::new();
    let room = create_room(&a, owner, "replicas").await;

    // B's actor loads the room before the key is used.
    let one = b
        .submit(room, submission(owner, send("one", None), None))
        .await
        .unwrap();
    assert_eq!(seq(&one), Some(1));

    // The message with the key goes through A.
    let original: Committed = a
        .submit(room, keyed(owner, room, "two", "k"))
        .await
        .unwrap();
    assert!(original.position.is_some(), "{original:?}");
    assert_eq!(seq(&original), Some(2));

    // The client retries through B, whose actor has not seen the key: its append expects the
    // version B last saw, fails, B reloads the room, finds the key in A's `MessageSent`, and
    // answers from that event exactly as A did.
    let retried = b
        .submit(room, keyed(owner, room, "two", "k"))
        .await
        .unwrap();
    assert_eq!(retried, original);
    // The same key with another body is refused, through either replica.
    for replica in [&a, &b] {
        let reused = replica
            .submit(room, keyed(owner, room, "not two", "k"))
            .await;
        assert!(
            matches!(reused, Err(CommandError::IdempotencyMismatch)),
            "{:?}",
            reused.map(|r| seq(&r))
        );
    }

    // B goes on from the log as it is.
    let three = b
        .submit(room, submission(owner, send("three", None), None))
        .await
        .unwrap();
    assert_eq!(seq(&three), Some(3));
    let with_key: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'MessageSent' \
         AND data->>'client_msg_id' = 'k'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(with_key, 1);
    // The log is the record of a `client_msg_id`: no separate idempotency row.
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

/// Two replicas taking turns in a long room: each turn's append fails its expected version
/// (the other wrote), and the actor reads the room again. From the stream's start that is
/// the whole room each turn; a room that saw a conflict keeps a checkpoint, and reads only
/// what came after it.
#[tokio::test]
async fn replicas_taking_turns_in_a_long_room_reload_from_a_checkpoint() {
    let db = TestDb::new().await.unwrap();
    vault::migrate(&db.pool).await.unwrap();
    let store = Counted::new(PgEventStore::new(
        db.pool.clone(),
        GroupCommitConfig::default(),
    ));
    let keyring = || std::sync::Arc::new(vault::Keyring::new(db.pool.clone(), true));
    let reloads = prometheus::IntCounter::new("reloads", "rooms read again").unwrap();
    let a = RoomCommands::new(store.clone(), keyring()).counting_reloads(reloads.clone());
    let b = RoomCommands::new(store.clone(), keyring()).counting_reloads(reloads.clone());
    let owner = UserId::new();
    let room = create_room(&a, owner, "turns").await;
    const LONG: usize = 3_000;
    let sends = (0..LONG).map(|_| a.submit(room, submission(owner, send("x", None), None)));
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }
    // One turn each: B loads the room, and each then fails once and reads it all again.
    let mut next = LONG as u64 + 1;
    for replica in [&b, &a, &b] {
        let sent = replica
            .submit(room, submission(owner, send("turn", None), None))
            .await
            .unwrap();
        assert_eq!(seq(&sent), Some(next));
        next += 1;
    }
    let before = store.read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(before > 3 * LONG, "{before} events read");

    const TURNS: u64 = 20;
    for turn in 0..TURNS {
        let replica = if turn % 2 == 0 { &a } else { &b };
        let sent = replica
            .submit(room, submission(owner, send("turn", None), None))
            .await
            .unwrap();
        assert_eq!(seq(&sent), Some(next), "turn {turn}");
        next += 1;
    }
    let read = store.read.load(std::sync::atomic::Ordering::Relaxed) - before;
    // Each reload reads what was written since its replica's checkpoint: at most the turns
    // so far (fewer than a checkpoint's distance), against the whole room (over 3,000
    // events) each turn without one.
    assert!(
        read <= (TURNS * TURNS) as usize,
        "{read} events read in {TURNS} turns"
    );
    assert_eq!(
        store.refused.load(std::sync::atomic::Ordering::Relaxed),
        2 + TURNS as usize,
        "every turn but B's first fails once"
    );
    assert_eq!(reloads.get(), 2 + TURNS, "each failure, one reload");
}
