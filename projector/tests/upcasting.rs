//! Events stored by an older build are upcast when read (ADR 12): a room whose `RoomCreated`
//! was written at schema version 1 (`owner_id`, not `created_by`) is projected like one created
//! today, live from the stream and when rebuilt from the log; a version newer than this build
//! knows is dead-lettered.

mod common;

use std::time::Duration;

use common::{Harness, SimRoom, register, send};
use eventlog::{AppendRequest, Appended, EventStore, ExpectedVersion, NewEvent, PgEventStore};
use events::ids::{RoomId, UserId};
use events::room::RoomCommand;
use events::values::{RoomName, Topic, Visibility};
use serde_json::{Value, json};
use uuid::Uuid;

/// Appends payloads exactly as given, each with its schema version, as a build of that time
/// wrote them.
async fn append_as_written(
    store: &PgEventStore,
    room: RoomId,
    actor: UserId,
    events: Vec<(&str, i32, Value)>,
) -> Appended {
    store
        .append(AppendRequest {
            stream_id: room.stream_id(),
            stream_type: "room".to_owned(),
            expected: ExpectedVersion::NoStream,
            events: events
                .into_iter()
                .map(|(event_type, schema_version, data)| NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: event_type.to_owned(),
                    schema_version,
                    data,
                    occurred_at: chrono::Utc::now(),
                    actor_id: Some(actor.0),
                    correlation_id: Uuid::now_v7(),
                    causation_id: None,
                })
                .collect(),
            idempotency: vec![],
        })
        .await
        .expect("append events as an older build wrote them")
}

/// A public room "legacy" of `owner` with one message, as a build before `RoomCreated` v2
/// stored it.
fn legacy_room(room: RoomId, owner: UserId, message: Uuid) -> Vec<(&'static str, i32, Value)> {
    vec![
        (
            "RoomCreated",
            1,
            json!({
                "room_id": room.0.to_string(),
                "name": "legacy",
                "topic": "from an older build",
                "visibility": "public",
                "owner_id": owner.0.to_string(),
            }),
        ),
        (
            "MemberJoined",
            1,
            json!({ "user_id": owner.0.to_string(), "role": "owner" }),
        ),
        (
            "MessageSent",
            1,
            json!({
                "message_id": message.to_string(),
                "seq": 1,
                "sender_id": owner.0.to_string(),
                "body": "written long ago",
                "reply_to": null,
                "client_msg_id": "old-1",
            }),
        ),
    ]
}

type RoomRow = (String, String, String, String, Option<Uuid>, i32, i64);

async fn room_row(h: &Harness, room: RoomId) -> Option<RoomRow> {
    sqlx::query_as(
        "SELECT kind, name, topic, visibility, owner_id, member_count, last_seq \
         FROM rm_rooms WHERE room_id = $1",
    )
    .bind(room.0)
    .fetch_optional(&h.db.pool)
    .await
    .expect("room row")
}

#[tokio::test]
async fn a_room_created_at_schema_version_1_is_projected_live_and_on_rebuild() {
    let h = Harness::new().await;
    let (stop_relay, relay) = h.spawn_relay();
    let tag = &Uuid::new_v4().simple().to_string()[..8];
    let alice = register(&h.store, &format!("alice_{tag}")).await;

    // A room stored by an older build.
    let legacy = RoomId::new();
    let message = Uuid::now_v7();
    append_as_written(&h.store, legacy, alice, legacy_room(legacy, alice, message)).await;
    let stored: (i32, Value) = sqlx::query_as(
        "SELECT schema_version, data FROM events WHERE stream_id = $1 AND version = 1",
    )
    .bind(legacy.stream_id())
    .fetch_one(&h.db.pool)
    .await
    .expect("stored RoomCreated");
    assert_eq!(stored.0, 1);
    assert_eq!(stored.1["owner_id"], json!(alice.0.to_string()));

    // A room created today (RoomCreated v2), for comparison.
    let mut today = SimRoom::new();
    today
        .must(
            &h.store,
            alice,
            RoomCommand::Create {
                room_id: today.id,
                name: RoomName::parse("today").expect("name"),
                topic: Topic::parse("").expect("topic"),
                visibility: Visibility::Public,
            },
        )
        .await;
    today.must(&h.store, alice, send("written now")).await;
    let (version, created_by): (i32, Value) = sqlx::query_as(
        "SELECT schema_version, data->'created_by' FROM events \
         WHERE stream_id = $1 AND event_type = 'RoomCreated'",
    )
    .bind(today.id.stream_id())
    .fetch_one(&h.db.pool)
    .await
    .expect("stored RoomCreated v2");
    assert_eq!((version, created_by), (2, json!(alice.0.to_string())));

    // A room stored by a newer build than this one: not understood, so dead-lettered.
    let future = RoomId::new();
    let from_the_future = append_as_written(
        &h.store,
        future,
        alice,
        vec![(
            "RoomCreated",
            3,
            json!({ "room_id": future.0.to_string(), "name": "future", "topic": "",
                    "visibility": "public", "creator": { "user_id": alice.0.to_string() } }),
        )],
    )
    .await;

    let mut p = h.projector();
    h.drive_to_head(&mut p, Duration::from_secs(30)).await;

    assert_eq!(
        room_row(&h, legacy).await,
        Some((
            "group".to_owned(),
            "legacy".to_owned(),
            "from an older build".to_owned(),
            "public".to_owned(),
            Some(alice.0),
            1,
            1
        ))
    );
    assert_eq!(
        room_row(&h, today.id).await.map(|r| (r.4, r.5, r.6)),
        Some((Some(alice.0), 1, 1))
    );
    let member: (String, String) =
        sqlx::query_as("SELECT status, role FROM rm_members WHERE room_id = $1 AND user_id = $2")
            .bind(legacy.0)
            .bind(alice.0)
            .fetch_one(&h.db.pool)
            .await
            .expect("member row");
    assert_eq!(member, ("joined".to_owned(), "owner".to_owned()));
    let body: String = sqlx::query_scalar("SELECT body FROM rm_messages WHERE message_id = $1")
        .bind(message)
        .fetch_one(&h.db.pool)
        .await
        .expect("message row");
    assert_eq!(body, "written long ago");

    assert_eq!(room_row(&h, future).await, None);
    let dead = h.dead_letters().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, from_the_future.last_position);
    assert_eq!(dead[0].1, "RoomCreated");
    assert!(
        dead[0]
            .2
            .contains("schema version 3 is newer than this build"),
        "reason: {}",
        dead[0].2
    );
    assert_eq!(h.checkpoint().await, h.head().await);

    // Rebuilt from the log (PostgreSQL, not the stream): the same rows, the same dead letter.
    let (oracle, _, _) = common::oracle(&h.db.pool).await;
    common::assert_same_read_models(&h.db.pool, &oracle.pool).await;
    let oracle_dead: Vec<i64> = sqlx::query_scalar("SELECT position FROM dead_letters")
        .fetch_all(&oracle.pool)
        .await
        .expect("dead letters");
    assert_eq!(oracle_dead, vec![from_the_future.last_position]);

    let _ = stop_relay.send(());
    let _ = relay.await;
    h.nats.cleanup().await;
}
