//! A ban (issue #18) treats a member's open socket as a kick does: the `member_banned` frame,
//! then nothing more of the room; and the banned cannot subscribe again. Whether a room
//! moderator or a server administrator banned them.

use crate::helpers::{Client, Platform, is_message};
use serde_json::{Value, json};

#[tokio::test]
async fn a_banned_members_open_socket_gets_the_ban_and_nothing_more_of_the_room() {
    let p = Platform::spawn().await;
    let alice = p.register().await; // the first user: a server administrator
    let owner = p.register().await;
    let bob = p.register().await;
    let carol = p.register().await;
    let dave = p.register().await;
    let room = p.create_room(&owner, "public").await;
    let other = p.create_room(&owner, "public").await;
    for r in [room, other] {
        for u in [&bob, &carol, &dave] {
            p.join(u, r).await;
        }
    }
    let mut bob_ws = Client::connect(p.query.addr, &bob.token).await;
    let mut carol_ws = Client::connect(p.query.addr, &carol.token).await;
    for ws in [&mut bob_ws, &mut carol_ws] {
        ws.subscribe(room, None).await;
        ws.subscribe(other, None).await;
    }
    let mut dave_ws = Client::connect(p.query.addr, &dave.token).await;
    dave_ws.subscribe(room, None).await;

    p.send(&owner, room, "before the bans").await;
    // bob by the room's owner, carol by a server administrator who is not in the room.
    let (status, body) = p
        .post(
            &format!("/v1/rooms/{room}/bans"),
            &owner.token,
            Some(json!({ "user_id": bob.id })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = p
        .post(
            &format!("/v1/admin/rooms/{room}/bans"),
            &alice.token,
            Some(json!({ "user_id": carol.id })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for i in 0..5 {
        p.send(&owner, room, &format!("after the bans {i}")).await;
    }
    p.send(&owner, room, "sentinel").await;
    let dave_saw = dave_ws.until(|f| is_message(f, "sentinel")).await;
    let banned: Vec<&Value> = dave_saw
        .iter()
        .filter(|f| f["type"] == "member_banned")
        .collect();
    assert_eq!(banned.len(), 2, "{dave_saw:?}");
    assert_eq!(banned[1]["data"]["as_admin"], true, "{dave_saw:?}");
    assert_eq!(banned[1]["data"]["banned_by"], alice.id.to_string());

    // A later event of another room they are still in: their queues are FIFO, so anything
    // of the first room would have come before it.
    p.send(&owner, other, "barrier").await;
    for (ws, who) in [(&mut bob_ws, &bob), (&mut carol_ws, &carol)] {
        let saw = ws.until(|f| is_message(f, "barrier")).await;
        let in_room: Vec<&Value> = saw
            .iter()
            .filter(|f| f["room_id"] == room.to_string())
            .collect();
        let own_ban = in_room
            .iter()
            .position(|f| {
                f["type"] == "member_banned" && f["data"]["user_id"] == who.id.to_string()
            })
            .expect("the banned see their own ban");
        assert_eq!(
            own_ban,
            in_room.len() - 1,
            "frames after the ban: {in_room:?}"
        );
        // Banned: not a member, so no subscription.
        let answer = ws.subscribe(room, None).await;
        assert_eq!(answer.len(), 1, "{answer:?}");
        assert_eq!(answer[0]["code"], "not_a_member");
    }
    assert_eq!(
        p.query.live().subscriber_count(events::RoomId(room)),
        1,
        "only dave is left"
    );
    p.cleanup().await;
}
