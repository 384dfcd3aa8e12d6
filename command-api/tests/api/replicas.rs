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
