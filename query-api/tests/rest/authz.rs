//! The REST part of the authorization matrix: (member, non-member, invited,
//! left, kicked) × (room, members, history, one message, presence, my rooms, my
//! invitations) in a public and a private room. Every cell is checked and every wrong one reported together.

use crate::helpers::{Res, TestApp, TestUser, unique};
use uuid::Uuid;

/// What one actor should get from one read.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// 200 with the member's view.
    Full,
    /// 200 with the public details only.
    PublicDetails,
    /// 403 `not_a_member`.
    Forbidden,
    /// 404 `room_not_found`.
    NotFound,
    /// The target appears in the answer (presence) / the room is listed (my rooms).
    Present,
    /// The target is left out (presence) / the room is not listed (my rooms).
    Absent,
}

struct Room {
    label: &'static str,
    id: Uuid,
    name: String,
    public: bool,
    member: TestUser,
    /// The first message sent, read by id.
    first_message: Uuid,
    actors: Vec<(&'static str, TestUser)>,
    bodies: Vec<String>,
}

/// Owner + the five actors of one room: the member joins; the invited one is
/// only invited; the leaver joins and leaves; the kicked one joins and is
/// kicked. Messages are sent before and after each departure.
async fn build_room(app: &TestApp, label: &'static str, visibility: &str) -> Room {
    let u = unique();
    let owner = app.register(&format!("{label}_owner_{u}")).await;
    let member = app.register(&format!("{label}_member_{u}")).await;
    let outsider = app.register(&format!("{label}_outsider_{u}")).await;
    let invited = app.register(&format!("{label}_invited_{u}")).await;
    let left = app.register(&format!("{label}_left_{u}")).await;
    let kicked = app.register(&format!("{label}_kicked_{u}")).await;
    let name = format!("{label}-room-name-{u}");
    let room = app.create_room(&owner, &name, visibility).await;
    let public = visibility == "public";
    for who in [&member, &left, &kicked] {
        if !public {
            app.invite(&owner, room, who).await.assert_status(200);
        }
        app.join(who, room).await.assert_status(200);
    }
    app.invite(&owner, room, &invited).await.assert_status(200);
    let mut bodies = Vec::new();
    let mut first_message = None;
    for i in 0..2 {
        let b = format!("{label}-body-before-{i}-{u}");
        let (id, _, _) = app.say(&owner, room, &b).await;
        first_message.get_or_insert(id);
        bodies.push(b);
    }
    app.leave(&left, room).await.assert_status(200);
    app.kick(&owner, room, &kicked).await.assert_status(200);
    for i in 0..2 {
        let b = format!("{label}-body-after-{i}-{u}");
        app.say(&member, room, &b).await;
        bodies.push(b);
    }
    Room {
        label,
        id: room,
        name,
        public,
        member: member.clone(),
        first_message: first_message.expect("a message was sent"),
        actors: vec![
            ("member", member),
            ("non-member", outsider),
            ("invited", invited),
            ("left", left),
            ("kicked", kicked),
        ],
        bodies,
    }
}

fn expected(room: &Room, actor: &str, read: &str) -> Expect {
    if read == "invites" {
        // Only a pending invitation is listed: not once joined, left or kicked.
        return if actor == "invited" {
            Expect::Present
        } else {
            Expect::Absent
        };
    }
    let member = actor == "member";
    match (read, member, room.public) {
        (_, true, _) if read == "presence" || read == "my rooms" => Expect::Present,
        (_, true, _) => Expect::Full,
        ("presence" | "my rooms", false, _) => Expect::Absent,
        ("room", false, true) => Expect::PublicDetails,
        (_, false, true) => Expect::Forbidden,
        (_, false, false) => Expect::NotFound,
    }
}

/// Checks one cell; returns what was wrong with it, if anything.
fn check(cell: Expect, res: &Res, room: &Room, read: &str) -> Option<String> {
    let listed = |key: &str, field: &str, id: Uuid| {
        res.body[key]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x[field] == id.to_string()))
    };
    let ok = match cell {
        Expect::Full => {
            res.status == 200
                && match read {
                    "room" => {
                        res.body["room_id"] == room.id.to_string() && res.body["role"].is_string()
                    }
                    "members" => listed("members", "user_id", room.member.id),
                    "messages" => res.body["messages"]
                        .as_array()
                        .is_some_and(|m| m.len() == 4),
                    "message" => res.body["message_id"] == room.first_message.to_string(),
                    _ => false,
                }
        }
        Expect::PublicDetails => {
            res.status == 200
                && res.body["name"] == room.name.as_str()
                && res.body["joined"] == false
                && res.body.get("last_message").is_none()
                && res.body.get("role").is_none()
        }
        Expect::Forbidden => res.outcome() == (403, "not_a_member".into()),
        Expect::NotFound => res.outcome() == (404, "room_not_found".into()),
        Expect::Present => {
            res.status == 200
                && match read {
                    "presence" => listed("presence", "user_id", room.member.id),
                    "invites" => listed("invites", "room_id", room.id),
                    _ => listed("rooms", "room_id", room.id),
                }
        }
        Expect::Absent => {
            res.status == 200
                && match read {
                    "presence" => !listed("presence", "user_id", room.member.id),
                    "invites" => !listed("invites", "room_id", room.id),
                    _ => !listed("rooms", "room_id", room.id),
                }
        }
    };
    (!ok).then(|| format!("expected {cell:?}, got {} {}", res.status, res.text))
}

#[tokio::test]
async fn members_see_everything_and_outsiders_invitees_leavers_and_the_kicked_see_nothing_private()
{
    let app = TestApp::spawn().await;
    let public = build_room(&app, "pub", "public").await;
    let private = build_room(&app, "priv", "private").await;
    app.project().await;

    let mut wrong: Vec<String> = Vec::new();
    let mut cells = 0;
    let all_bodies: Vec<&String> = public.bodies.iter().chain(&private.bodies).collect();
    for room in [&public, &private] {
        for (actor, user) in &room.actors {
            let reads = [
                ("room", format!("/v1/rooms/{}", room.id)),
                ("members", format!("/v1/rooms/{}/members", room.id)),
                ("messages", format!("/v1/rooms/{}/messages", room.id)),
                (
                    "message",
                    format!("/v1/rooms/{}/messages/{}", room.id, room.first_message),
                ),
                (
                    "presence",
                    format!("/v1/presence?user_id={}", room.member.id),
                ),
                ("my rooms", "/v1/rooms".to_owned()),
                ("invites", "/v1/invites".to_owned()),
            ];
            for (read, path) in reads {
                cells += 1;
                let res = app.get(&path, &user.token).await;
                let cell = expected(room, actor, read);
                if let Some(problem) = check(cell, &res, room, read) {
                    wrong.push(format!("{} room, {actor}, {read}: {problem}", room.label));
                }
                // Leaks: an outsider's answer never holds the private room's name
                // or any message body, whatever its status.
                // (Someone invited to the private room is told its name, not its messages.)
                let told_the_name = read == "invites" && *actor == "invited" && !room.public;
                if *actor != "member" {
                    if res.text.contains(&private.name) && !told_the_name {
                        wrong.push(format!(
                            "LEAK {} room, {actor}, {read}: private room name in {}",
                            room.label, res.text
                        ));
                    }
                    for b in &all_bodies {
                        if res.text.contains(b.as_str()) {
                            wrong.push(format!(
                                "LEAK {} room, {actor}, {read}: message body {b} in {}",
                                room.label, res.text
                            ));
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cells, 70);
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_private_room_answers_outsiders_exactly_like_a_room_that_does_not_exist() {
    let app = TestApp::spawn().await;
    let private = build_room(&app, "hid", "private").await;
    app.project().await;
    let outsider = &private.actors[1].1;
    let missing = Uuid::now_v7();
    for suffix in [
        "",
        "/members",
        "/messages",
        "/messages?limit=5&before_seq=3",
        &format!("/messages/{}", private.first_message),
    ] {
        let hidden = app
            .get(
                &format!("/v1/rooms/{}{suffix}", private.id),
                &outsider.token,
            )
            .await;
        let absent = app
            .get(&format!("/v1/rooms/{missing}{suffix}"), &outsider.token)
            .await;
        hidden.assert_error(404, "room_not_found");
        assert_eq!(
            (hidden.status, &hidden.body),
            (absent.status, &absent.body),
            "{suffix}"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn every_read_refuses_a_missing_or_forged_token_with_401() {
    let app = TestApp::spawn().await;
    let room = Uuid::now_v7();
    let forged = http_kit::auth::forge::other_key(Uuid::now_v7());
    for path in [
        "/v1/me".to_owned(),
        "/v1/users?username=alice".to_owned(),
        "/v1/rooms".to_owned(),
        "/v1/rooms/public".to_owned(),
        format!("/v1/rooms/{room}"),
        format!("/v1/rooms/{room}/members"),
        format!("/v1/rooms/{room}/messages"),
        format!("/v1/rooms/{room}/messages/{room}"),
        "/v1/invites".to_owned(),
        format!("/v1/presence?user_id={room}"),
        "/v1/server".to_owned(),
    ] {
        let res = app.get_with(&path, None, &[]).await;
        assert_eq!(res.status, 401, "{path}: {}", res.text);
        assert!(
            res.body["error"]["code"].is_string(),
            "{path}: {}",
            res.text
        );
        let res = app.get_with(&path, Some(&forged), &[]).await;
        res.assert_error(401, "invalid_token");
    }
    app.cleanup().await;
}
