//! A room actor decides a round of queued commands at once and appends one request per
//! command, each expecting the version the one before it leaves. Those requests must reach
//! the log in the order they were decided: one arriving early fails its expected version,
//! and it and every command after it are decided again (and, after `MAX_ATTEMPTS`, refused as
//! busy) although nothing else wrote to the room.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use command_api::rooms::RoomCommands;
use eventlog::testing::TestDb;
use eventlog::{EventStore, GroupCommitConfig, PgEventStore};
use events::UserId;

use super::counted::Counted;

use super::replicas::{create_room, keyed, send, submission};

/// Commands queued at once in one room: several full rounds.
const SENDS: usize = 2_000;

#[tokio::test]
async fn a_round_of_commands_in_one_room_is_appended_in_order_and_once() {
    let db = TestDb::new().await.unwrap();
    vault::migrate(&db.pool).await.unwrap();
    let store = Counted::new(PgEventStore::new(
        db.pool.clone(),
        GroupCommitConfig::default(),
    ));
    let commands = RoomCommands::new(
        store.clone(),
        Arc::new(vault::Keyring::new(db.pool.clone(), true)),
    );
    let owner = UserId::new();
    let room = create_room(&commands, owner, "busy").await;

    // Keyed and unkeyed sends, all queued before the actor takes its next round.
    let sends = (0..SENDS).map(|i| {
        let commands = commands.clone();
        async move {
            let sub = if i % 2 == 0 {
                keyed(owner, room, "hello", &format!("k{i}"))
            } else {
                submission(owner, send("hello", None), None)
            };
            commands.submit(room, sub).await
        }
    });
    for sent in futures::future::join_all(sends).await {
        sent.unwrap();
    }

    assert_eq!(
        store.refused.load(Ordering::Relaxed),
        0,
        "nothing else writes to the room: no append may fail its expected version"
    );
    assert_eq!(
        store.appends.load(Ordering::Relaxed),
        SENDS + 1,
        "each command is decided and appended once"
    );
    // The room's creation (the room, its owner joining) and one event per message.
    let head = store.head_position().await.unwrap();
    assert_eq!(head, 2 + SENDS as i64);
}
