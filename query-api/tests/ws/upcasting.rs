//! A room stored by an older build (`RoomCreated` at schema version 1, ADR 12) is read through
//! the upcaster everywhere: the live feed's membership snapshot and back-fill, the room actor
//! of the command API, and the read models behind REST. Its frames keep the published shape.

use crate::helpers::{Client, Platform, is_message};
use eventlog::{AppendRequest, EventStore, ExpectedVersion, GroupCommitConfig, NewEvent};
use eventlog::{PgEventStore, RecordedEvent};
use events::RoomId;
use serde_json::{Value, json};
use uuid::Uuid;

/// `RoomCreated` of a public room, exactly as a build before schema version 2 stored it.
fn room_created_v1(room: Uuid, owner: Uuid) -> Value {
    json!({
        "room_id": room.to_string(),
        "name": "legacy",
        "topic": "from an older build",
        "visibility": "public",
        "owner_id": owner.to_string(),
    })
}

/// Appends the room's first events as raw payloads, each at its schema version.
async fn append_as_written(p: &Platform, room: Uuid, actor: Uuid, events: Vec<(&str, i32, Value)>) {
    let store = PgEventStore::new(p.db.pool.clone(), GroupCommitConfig::default());
    store
        .append(AppendRequest {
            stream_id: RoomId(room).stream_id(),
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
                    actor_id: Some(actor),
                    correlation_id: Uuid::now_v7(),
                    causation_id: None,
                })
                .collect(),
            idempotency: vec![],
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_room_created_at_schema_version_1_is_back_filled_joined_and_talked_in() {
    let p = Platform::spawn().await;
    let alice = p.register().await;
    let bob = p.register().await;
    let room = Uuid::now_v7();
    append_as_written(
        &p,
        room,
        alice.id,
        vec![
            ("RoomCreated", 1, room_created_v1(room, alice.id)),
            (
                "MemberJoined",
                1,
                json!({ "user_id": alice.id.to_string(), "role": "owner" }),
            ),
        ],
    )
    .await;

    // The live feed: the membership snapshot decodes the v1 RoomCreated (a public room of
    // which alice is a member), and the back-fill sends it in its published shape, which is
    // the payload the older build stored, byte for byte in meaning.
    let mut ws = Client::connect(p.query.addr, &alice.token).await;
    let frames = ws.subscribe(room, Some(0)).await;
    let types: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["room_created", "member_joined", "subscribed"],
        "{frames:?}"
    );
    assert_eq!(frames[0]["data"], room_created_v1(room, alice.id));
    assert_eq!(frames[0]["version"], 1);
    assert_eq!(frames[2]["version"], 2);

    // The room actor folds the v1 history: bob may join the public room, and alice's first
    // message (seq 1) goes out live.
    p.join(&bob, room).await;
    let sent = p.send(&alice, room, "on an old room").await;
    assert_eq!(sent["seq"], 1);
    let live = ws.until(|f| is_message(f, "on an old room")).await;
    assert!(
        live.iter()
            .any(|f| f["type"] == "member_joined" && f["data"]["user_id"] == bob.id.to_string()),
        "{live:?}"
    );

    // A room created today is stored at v2 and still published with owner_id.
    let today = p.create_room(&alice, "public").await;
    let (version, data): (i32, Value) = sqlx::query_as(
        "SELECT schema_version, data FROM events WHERE stream_id = $1 AND version = 1",
    )
    .bind(RoomId(today).stream_id())
    .fetch_one(&p.db.pool)
    .await
    .unwrap();
    assert_eq!(version, 2);
    assert_eq!(data["created_by"], alice.id.to_string());
    let frames = ws.subscribe(today, Some(0)).await;
    assert_eq!(frames[0]["type"], "room_created");
    assert_eq!(frames[0]["data"]["owner_id"], alice.id.to_string());
    assert!(
        frames[0]["data"].get("created_by").is_none(),
        "{}",
        frames[0]
    );

    // The read models (REST) name the legacy room's owner from the upcast event.
    p.project().await;
    let res = p
        .http
        .get(format!("http://{}/v1/rooms/{room}", p.query.addr))
        .bearer_auth(&alice.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let view: Value = res.json().await.unwrap();
    assert_eq!(view["owner_id"], alice.id.to_string());
    assert_eq!(view["name"], "legacy");
    assert_eq!(view["member_count"], 2);
    assert_eq!(view["last_seq"], 1);
    p.cleanup().await;
}

/// What the back-fill reads is the stored row; the frame is built by the same decoder the live
/// consumer uses, so a decode of the stored v1 row must give the published v1 payload.
#[test]
fn a_stored_v1_row_decodes_to_a_frame_with_the_v1_payload() {
    let (room, owner) = (Uuid::now_v7(), Uuid::now_v7());
    let rec = RecordedEvent {
        position: 7,
        event_id: Uuid::now_v7(),
        stream_id: RoomId(room).stream_id(),
        stream_type: "room".to_owned(),
        version: 1,
        event_type: "RoomCreated".to_owned(),
        schema_version: 1,
        occurred_at: "2026-12-02T08:30:00.123456Z".parse().unwrap(),
        actor_id: Some(owner),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        data: room_created_v1(room, owner),
    };
    let ev = query_api::ws::protocol::LiveEvent::decode(&rec)
        .unwrap()
        .unwrap();
    let frame: Value = serde_json::from_str(ev.frame.text.as_str()).unwrap();
    assert_eq!(
        frame,
        json!({ "type": "room_created", "room_id": room, "version": 1, "position": 7,
                "occurred_at": "2026-12-02T08:30:00.123456Z",
                "data": room_created_v1(room, owner) })
    );
}
