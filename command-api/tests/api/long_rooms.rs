//! A room longer than what its actor keeps in memory (`MESSAGES_KEPT` message facts,
//! `MESSAGE_KEYS_KEPT` client keys): commands about its oldest message and a retry of its
//! oldest key are decided exactly as in a short room, from the log's indexes.

use command_api::rooms::{CommandError, Committed, MESSAGE_KEYS_KEPT, MESSAGES_KEPT, RoomCommands};
use eventlog::testing::TestDb;
use eventlog::{GroupCommitConfig, PgEventStore};
use events::room::{RoomCommand, RoomError, RoomEvent};
use events::values::{Emoji, MessageBody};
use events::{MessageId, RoomId, UserId};

use super::replicas::{create_room, keyed, send, seq, submission};

fn first_event(c: &Committed) -> &RoomEvent {
    c.events.first().expect("an event")
}

async fn check_oldest_message(
    commands: &RoomCommands<PgEventStore>,
    room: RoomId,
    owner: UserId,
    oldest: MessageId,
    original: &Committed,
) {
    let submit = |cmd: RoomCommand| commands.submit(room, submission(owner, cmd, None));
    // The retried key is answered from its first `MessageSent`, as the first attempt was.
    let retried = commands
        .submit(room, keyed(owner, room, "the oldest", "oldest-key"))
        .await
        .unwrap();
    assert_eq!(&retried, original);
    let reused = commands
        .submit(room, keyed(owner, room, "another body", "oldest-key"))
        .await;
    assert!(matches!(reused, Err(CommandError::IdempotencyMismatch)));
    // Its reaction is known: adding it again changes nothing.
    let again = submit(RoomCommand::AddReaction {
        message_id: oldest,
        emoji: Emoji::parse("👍").unwrap(),
    })
    .await
    .unwrap();
    assert!(again.events.is_empty(), "{again:?}");
    // A reply to it is accepted; an unknown message is still unknown.
    submit(RoomCommand::SendMessage {
        mentions: Vec::new(),
        mention_room: false,
        attachments: Vec::new(),
        message_id: MessageId::new(),
        body: MessageBody::parse("re").unwrap(),
        reply_to: Some(oldest),
        client_msg_id: None,
    })
    .await
    .unwrap();
    let unknown = submit(RoomCommand::EditMessage {
        message_id: MessageId::new(),
        body: MessageBody::parse("x").unwrap(),
    })
    .await;
    assert!(matches!(
        unknown,
        Err(CommandError::Domain(RoomError::MessageNotFound))
    ));
}

#[tokio::test]
async fn the_oldest_message_and_key_of_a_long_room_are_decided_from_the_log() {
    let db = TestDb::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    vault::migrate(&db.pool).await.unwrap();
    let keyring = || std::sync::Arc::new(vault::Keyring::new(db.pool.clone(), true));
    let commands = RoomCommands::new(store.clone(), keyring());
    let owner = UserId::new();
    let room = create_room(&commands, owner, "long").await;
    let original = commands
        .submit(room, keyed(owner, room, "the oldest", "oldest-key"))
        .await
        .unwrap();
    let RoomEvent::MessageSent {
        message_id: oldest, ..
    } = *first_event(&original)
    else {
        panic!("{original:?}");
    };
    commands
        .submit(
            room,
            submission(
                owner,
                RoomCommand::AddReaction {
                    message_id: oldest,
                    emoji: Emoji::parse("👍").unwrap(),
                },
                None,
            ),
        )
        .await
        .unwrap();
    // Enough newer keyed messages that both the facts and the key are forgotten.
    let newer = MESSAGES_KEPT.max(MESSAGE_KEYS_KEPT) + 100;
    let sends = (0..newer).map(|i| {
        let commands = commands.clone();
        async move {
            commands
                .submit(room, keyed(owner, room, "newer", &format!("k{i}")))
                .await
        }
    });
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }

    check_oldest_message(&commands, room, owner, oldest, &original).await;
    // An actor that reads the room from scratch (a restart, another replica) too.
    let fresh = RoomCommands::new(store, keyring());
    check_oldest_message(&fresh, room, owner, oldest, &original).await;

    // The oldest message is edited as its first edit, then deleted; then it is deleted.
    let edited = fresh
        .submit(
            room,
            submission(
                owner,
                RoomCommand::EditMessage {
                    message_id: oldest,
                    body: MessageBody::parse("edited").unwrap(),
                },
                None,
            ),
        )
        .await
        .unwrap();
    assert!(
        matches!(
            first_event(&edited),
            RoomEvent::MessageEdited {
                seq: 1,
                edit_number: 1,
                ..
            }
        ),
        "{edited:?}"
    );
    let delete = RoomCommand::DeleteMessage { message_id: oldest };
    fresh
        .submit(room, submission(owner, delete.clone(), None))
        .await
        .unwrap();
    let twice = commands.submit(room, submission(owner, delete, None)).await;
    assert!(
        matches!(twice, Err(CommandError::Domain(RoomError::MessageDeleted))),
        "the first actor reloads after the other's writes and learns of the deletion"
    );
    // The sequence goes on after the oldest, the newer ones and the two replies.
    let next = commands
        .submit(room, submission(owner, send("next", None), None))
        .await
        .unwrap();
    assert_eq!(seq(&next), Some(newer as u64 + 4));
}
