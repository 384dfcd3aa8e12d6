//! The read models through a scripted conversation: real domain events appended to the log,
//! relayed to JetStream and projected by the live projector.

mod common;

use std::time::Duration;

use common::{Harness, SimRoom, body, create, emoji, register, send};
use events::room::{RoomCommand, RoomEvent};
use events::values::{Role, Visibility};
use serde_json::json;
use uuid::Uuid;

const WITHIN: Duration = Duration::from_secs(30);

async fn unread(h: &Harness, room: &SimRoom, user: events::UserId) -> (i64, i64, String) {
    sqlx::query_as(
        "SELECT u.unread_count, m.read_seq, m.status FROM rm_members m \
         JOIN rm_unread u USING (room_id, user_id) WHERE m.room_id = $1 AND m.user_id = $2",
    )
    .bind(room.id.0)
    .bind(user.0)
    .fetch_one(&h.db.pool)
    .await
    .expect("member row")
}

async fn member(h: &Harness, room: &SimRoom, user: events::UserId) -> (String, String, i64, i64) {
    sqlx::query_as(
        "SELECT m.status, m.role, m.read_seq, u.unread_count FROM rm_members m \
         JOIN rm_unread u USING (room_id, user_id) WHERE m.room_id = $1 AND m.user_id = $2",
    )
    .bind(room.id.0)
    .bind(user.0)
    .fetch_one(&h.db.pool)
    .await
    .expect("member row")
}

async fn member_count(h: &Harness, room: &SimRoom) -> i32 {
    sqlx::query_scalar("SELECT member_count FROM rm_rooms WHERE room_id = $1")
        .bind(room.id.0)
        .fetch_one(&h.db.pool)
        .await
        .expect("room row")
}

async fn reactions(h: &Harness, room: &SimRoom, seq: i64) -> serde_json::Value {
    sqlx::query_scalar("SELECT reactions FROM rm_messages WHERE room_id = $1 AND seq = $2")
        .bind(room.id.0)
        .bind(seq)
        .fetch_one(&h.db.pool)
        .await
        .expect("message row")
}

#[tokio::test]
async fn unread_counts_memberships_reactions_and_edits_follow_the_conversation() {
    let h = Harness::new().await;
    let (stop_relay, relay) = h.spawn_relay();
    let mut p = h.projector();
    let s = &h.store;
    let tag = &Uuid::new_v4().simple().to_string()[..8];
    let alice = register(s, &format!("alice_{tag}")).await;
    let bob = register(s, &format!("bob_{tag}")).await;
    let carol = register(s, &format!("carol_{tag}")).await;
    let dave = register(s, &format!("dave_{tag}")).await;

    // A public room; bob and carol join; alice sends three messages.
    let mut room = SimRoom::new();
    let RoomCommand::Create { name, topic, .. } = create("general", Visibility::Public) else {
        unreachable!()
    };
    room.must(
        s,
        alice,
        RoomCommand::Create {
            room_id: room.id,
            name,
            topic,
            visibility: Visibility::Public,
        },
    )
    .await;
    room.must(s, bob, RoomCommand::Join).await;
    room.must(s, carol, RoomCommand::Join).await;
    for i in 1..=3 {
        room.must(s, alice, send(&format!("m{i}"))).await;
    }
    h.drive_to_head(&mut p, WITHIN).await;
    assert_eq!(unread(&h, &room, bob).await, (3, 0, "joined".into()));
    assert_eq!(unread(&h, &room, carol).await, (3, 0, "joined".into()));
    assert_eq!(
        unread(&h, &room, alice).await.0,
        0,
        "own messages are never unread"
    );
    assert_eq!(member_count(&h, &room).await, 3);

    // bob reads up to 2; a read marker moving back (appended without the decider) is ignored.
    room.must(
        s,
        bob,
        RoomCommand::MarkRead {
            seq: 2,
            private: false,
        },
    )
    .await;
    room.append(
        s,
        bob,
        &[RoomEvent::ReadMarkerMoved {
            user_id: bob,
            seq: 1,
            private: false,
        }],
    )
    .await;
    h.drive_to_head(&mut p, WITHIN).await;
    assert_eq!(unread(&h, &room, bob).await, (1, 2, "joined".into()));

    // Deleting an unread message (3) and a message bob has read (1).
    let m3 = room.message(3);
    room.must(s, alice, RoomCommand::DeleteMessage { message_id: m3 })
        .await;
    h.drive_to_head(&mut p, WITHIN).await;
    assert_eq!(unread(&h, &room, bob).await.0, 0);
    assert_eq!(unread(&h, &room, carol).await.0, 2);
    let m1 = room.message(1);
    room.must(s, alice, RoomCommand::DeleteMessage { message_id: m1 })
        .await;
    h.drive_to_head(&mut p, WITHIN).await;
    assert_eq!(unread(&h, &room, bob).await.0, 0, "bob had read message 1");
    assert_eq!(unread(&h, &room, carol).await.0, 1);

    // carol sends and edits twice.
    room.must(s, carol, send("m4")).await;
    let m4 = room.message(4);
    for text in ["m4 take two", "m4 take three"] {
        room.must(
            s,
            carol,
            RoomCommand::EditMessage {
                message_id: m4,
                body: body(text),
            },
        )
        .await;
    }
    h.drive_to_head(&mut p, WITHIN).await;
    assert_eq!(unread(&h, &room, bob).await.0, 1);
    assert_eq!(unread(&h, &room, alice).await.0, 1);
    assert_eq!(
        unread(&h, &room, carol).await.0,
        1,
        "carol has not read message 2"
    );
    let (text, edit_number, edited): (Option<String>, i32, bool) = sqlx::query_as(
        "SELECT body, edit_number, edited_at IS NOT NULL FROM rm_messages \
         WHERE room_id = $1 AND seq = 4",
    )
    .bind(room.id.0)
    .fetch_one(&h.db.pool)
    .await
    .expect("message 4");
    assert_eq!(
        (text.as_deref(), edit_number, edited),
        (Some("m4 take three"), 2, true)
    );

    // Reactions aggregate in order and clear on delete.
    let m2 = room.message(2);
    let react = |user, e: &str, add: bool| {
        let emoji = emoji(e);
        (
            user,
            if add {
                RoomCommand::AddReaction {
                    message_id: m2,
                    emoji,
                }
            } else {
                RoomCommand::RemoveReaction {
                    message_id: m2,
                    emoji,
                }
            },
        )
    };
    for (user, cmd) in [
        react(bob, "👍", true),
        react(alice, "👍", true),
        react(alice, "🎉", true),
    ] {
        room.must(s, user, cmd).await;
    }
    h.drive_to_head(&mut p, WITHIN).await;
    assert_eq!(
        reactions(&h, &room, 2).await,
        json!({ "👍": [bob.to_string(), alice.to_string()], "🎉": [alice.to_string()] })
    );
    for (user, cmd) in [react(bob, "👍", false), react(alice, "🎉", false)] {
        room.must(s, user, cmd).await;
    }
    h.drive_to_head(&mut p, WITHIN).await;
    assert_eq!(
        reactions(&h, &room, 2).await,
        json!({ "👍": [alice.to_string()] })
    );
    room.must(s, alice, RoomCommand::DeleteMessage { message_id: m2 })
        .await;
    h.drive_to_head(&mut p, WITHIN).await;
    let (deleted, text, r): (bool, Option<String>, serde_json::Value) = sqlx::query_as(
        "SELECT deleted, body, reactions FROM rm_messages WHERE room_id = $1 AND seq = 2",
    )
    .bind(room.id.0)
    .fetch_one(&h.db.pool)
    .await
    .expect("message 2");
    assert_eq!((deleted, text, r), (true, None, json!({})));
    assert_eq!(
        unread(&h, &room, carol).await.0,
        0,
        "message 2 was carol's last unread"
    );
    assert_eq!(
        unread(&h, &room, bob).await.0,
        1,
        "message 4 is still unread for bob"
    );

    // bob reads everything; a role change.
    room.must(
        s,
        bob,
        RoomCommand::MarkRead {
            seq: 4,
            private: false,
        },
    )
    .await;
    room.must(
        s,
        alice,
        RoomCommand::ChangeRole {
            user_id: bob,
            role: Role::Admin,
        },
    )
    .await;
    h.drive_to_head(&mut p, WITHIN).await;
    assert_eq!(
        member(&h, &room, bob).await,
        ("joined".into(), "admin".into(), 4, 0)
    );

    // Membership statuses in a private room: invite, join, leave, invite, rejoin, kick.
    let mut private = SimRoom::new();
    let RoomCommand::Create { name, topic, .. } = create("secret", Visibility::Private) else {
        unreachable!()
    };
    private
        .must(
            s,
            alice,
            RoomCommand::Create {
                room_id: private.id,
                name,
                topic,
                visibility: Visibility::Private,
            },
        )
        .await;
    private
        .must(s, alice, RoomCommand::Invite { user_id: dave })
        .await;
    h.drive_to_head(&mut p, WITHIN).await;
    assert_eq!(member(&h, &private, dave).await.0, "invited");
    assert_eq!(member_count(&h, &private).await, 1);
    private.must(s, dave, RoomCommand::Join).await;
    private.must(s, alice, send("before dave left")).await;
    h.drive_to_head(&mut p, WITHIN).await;
    assert_eq!(
        member(&h, &private, dave).await,
        ("joined".into(), "member".into(), 0, 1)
    );
    assert_eq!(member_count(&h, &private).await, 2);
    private.must(s, dave, RoomCommand::Leave).await;
    private.must(s, alice, send("while dave was away")).await;
    h.drive_to_head(&mut p, WITHIN).await;
    assert_eq!(
        member(&h, &private, dave).await,
        ("left".into(), "member".into(), 0, 0)
    );
    assert_eq!(member_count(&h, &private).await, 1);
    private
        .must(s, alice, RoomCommand::Invite { user_id: dave })
        .await;
    private.must(s, dave, RoomCommand::Join).await;
    h.drive_to_head(&mut p, WITHIN).await;
    assert_eq!(
        member(&h, &private, dave).await,
        ("joined".into(), "member".into(), 2, 0),
        "a rejoiner starts at the room's last message"
    );
    private.must(s, alice, send("after the rejoin")).await;
    private
        .must(s, alice, RoomCommand::Kick { user_id: dave })
        .await;
    h.drive_to_head(&mut p, WITHIN).await;
    assert_eq!(
        member(&h, &private, dave).await,
        ("kicked".into(), "member".into(), 2, 0)
    );
    assert_eq!(member_count(&h, &private).await, 1);

    // A direct room.
    let mut direct = SimRoom::new();
    let id = direct.id;
    direct
        .must(
            s,
            carol,
            RoomCommand::OpenDirect {
                room_id: id,
                with: bob,
            },
        )
        .await;
    h.drive_to_head(&mut p, WITHIN).await;
    let (lo, hi) = if bob.0 < carol.0 {
        (bob.0, carol.0)
    } else {
        (carol.0, bob.0)
    };
    let pair: (Uuid, Uuid) =
        sqlx::query_as("SELECT user_lo, user_hi FROM rm_direct_pairs WHERE room_id = $1")
            .bind(id.0)
            .fetch_one(&h.db.pool)
            .await
            .expect("direct pair");
    assert_eq!(pair, (lo, hi));
    let (kind, count): (String, i32) =
        sqlx::query_as("SELECT kind, member_count FROM rm_rooms WHERE room_id = $1")
            .bind(id.0)
            .fetch_one(&h.db.pool)
            .await
            .expect("direct room");
    assert_eq!((kind.as_str(), count), ("direct", 2));

    // The room row follows the stream: version, position, last message.
    let (version, position, last_seq): (i64, i64, i64) =
        sqlx::query_as("SELECT version, position, last_seq FROM rm_rooms WHERE room_id = $1")
            .bind(room.id.0)
            .fetch_one(&h.db.pool)
            .await
            .expect("room");
    assert_eq!((version, last_seq), (room.version, 4));
    assert!(position > 0);
    assert!(h.dead_letters().await.is_empty());

    // And the live projection equals a replay of the log.
    let (oracle, _, _) = common::oracle(&h.db.pool).await;
    common::assert_same_read_models(&h.db.pool, &oracle.pool).await;

    let _ = stop_relay.send(());
    let _ = relay.await;
    h.nats.cleanup().await;
}
