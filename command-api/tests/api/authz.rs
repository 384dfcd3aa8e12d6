//! Who may do what in a room: a matrix of actors × commands in a public and a
//! private room, then the moderation and deletion rules one by one. Every
//! rejection appends nothing; a private room never admits that it exists.

use crate::helpers::{Res, TestApp, TestUser};
use reqwest::Method;
use serde_json::{Value, json};
use std::fmt::Write as _;
use uuid::Uuid;

/// What a cell of the matrix must answer.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Success with this status; `stored` says whether events are appended.
    Ok(u16, bool),
    Err(u16, &'static str),
}

async fn register_all(app: &TestApp, names: &[&str]) -> Vec<TestUser> {
    futures::future::join_all(names.iter().map(|n| app.register(n))).await
}

async fn delete_msg(app: &TestApp, who: &TestUser, room: Uuid, m: Uuid) -> Res {
    app.request(
        Method::DELETE,
        &format!("/v1/rooms/{room}/messages/{m}"),
        Some(&who.token),
        None,
        &[],
    )
    .await
}

async fn edit_msg(app: &TestApp, who: &TestUser, room: Uuid, m: Uuid) -> Res {
    app.request(
        Method::PATCH,
        &format!("/v1/rooms/{room}/messages/{m}"),
        Some(&who.token),
        Some(json!({ "body": "changed" })),
        &[],
    )
    .await
}

async fn set_role(app: &TestApp, by: &TestUser, room: Uuid, who: Uuid, role: &str) -> Res {
    app.request(
        Method::PUT,
        &format!("/v1/rooms/{room}/members/{who}/role"),
        Some(&by.token),
        Some(json!({ "role": role })),
        &[],
    )
    .await
}

async fn rename(app: &TestApp, by: &TestUser, room: Uuid, name: &str) -> Res {
    app.request(
        Method::PATCH,
        &format!("/v1/rooms/{room}"),
        Some(&by.token),
        Some(json!({ "name": name })),
        &[],
    )
    .await
}

async fn send_id(app: &TestApp, by: &TestUser, room: Uuid, body: &str) -> Uuid {
    id_of_value(
        app.send(by, room, body).await.assert_status(201),
        "message_id",
    )
}

fn id_of_value(v: &Value, field: &str) -> Uuid {
    v[field].as_str().unwrap().parse().unwrap()
}

struct Cast {
    owner: TestUser,
    member: TestUser,
    bystander: TestUser,
    invited: TestUser,
    leaver: TestUser,
    kicked: TestUser,
    stranger: TestUser,
    guest: TestUser,
}

/// A room with an owner, an admin, two members, an invited user who never
/// joined, a member who left and one who was kicked (each after writing a
/// message), and two users who never had anything to do with it.
/// Returns the room, the owner's message and each actor's own message.
async fn stage(app: &TestApp, cast: &Cast, admin: &TestUser, visibility: &str) -> Staged {
    let room = app.create_room(&cast.owner, visibility).await;
    let joiners = [
        admin,
        &cast.member,
        &cast.bystander,
        &cast.leaver,
        &cast.kicked,
    ];
    if visibility == "private" {
        for u in joiners {
            app.invite(&cast.owner, room, u).await.assert_status(200);
        }
    }
    app.invite(&cast.owner, room, &cast.invited)
        .await
        .assert_status(200);
    for u in joiners {
        app.join(u, room).await.assert_status(200);
    }
    set_role(app, &cast.owner, room, admin.id, "admin")
        .await
        .assert_status(200);
    let owner_msg = send_id(app, &cast.owner, room, "owner's").await;
    let member_msg = send_id(app, &cast.member, room, "member's").await;
    let leaver_msg = send_id(app, &cast.leaver, room, "leaver's").await;
    let kicked_msg = send_id(app, &cast.kicked, room, "kicked's").await;
    app.post_empty(&format!("/v1/rooms/{room}/leave"), &cast.leaver.token)
        .await
        .assert_status(200);
    app.kick(&cast.owner, room, cast.kicked.id)
        .await
        .assert_status(200);
    Staged {
        room,
        owner_msg,
        member_msg,
        leaver_msg,
        kicked_msg,
    }
}

struct Staged {
    room: Uuid,
    owner_msg: Uuid,
    member_msg: Uuid,
    leaver_msg: Uuid,
    kicked_msg: Uuid,
}

const COMMANDS: [&str; 13] = [
    "send",
    "edit own",
    "edit others'",
    "react",
    "read marker",
    "delete others'",
    "delete own",
    "invite",
    "kick",
    "rename",
    "role change",
    "typing",
    "ephemeral",
];

/// Runs one command as `actor` and returns the response.
async fn run(
    app: &TestApp,
    cast: &Cast,
    s: &Staged,
    actor: &TestUser,
    own_msg: Uuid,
    command: &str,
) -> Res {
    let room = s.room;
    let t = Some(actor.token.as_str());
    let msgs = format!("/v1/rooms/{room}/messages");
    match command {
        "send" => app.send(actor, room, "hello").await,
        "edit own" => {
            app.request(
                Method::PATCH,
                &format!("{msgs}/{own_msg}"),
                t,
                Some(json!({ "body": "edited" })),
                &[],
            )
            .await
        }
        "edit others'" => {
            app.request(
                Method::PATCH,
                &format!("{msgs}/{}", s.owner_msg),
                t,
                Some(json!({ "body": "edited" })),
                &[],
            )
            .await
        }
        "react" => {
            app.request(
                Method::PUT,
                &format!("{msgs}/{}/reactions/%F0%9F%91%8D", s.owner_msg),
                t,
                None,
                &[],
            )
            .await
        }
        "read marker" => {
            app.post(&format!("/v1/rooms/{room}/read"), t, json!({ "seq": 1 }))
                .await
        }
        "delete others'" => {
            app.request(
                Method::DELETE,
                &format!("{msgs}/{}", s.owner_msg),
                t,
                None,
                &[],
            )
            .await
        }
        "delete own" => {
            app.request(Method::DELETE, &format!("{msgs}/{own_msg}"), t, None, &[])
                .await
        }
        "invite" => app.invite(actor, room, &cast.guest).await,
        "kick" => app.kick(actor, room, cast.bystander.id).await,
        "rename" => rename(app, actor, room, "mine now").await,
        "role change" => set_role(app, actor, room, cast.bystander.id, "admin").await,
        "typing" => {
            app.post_empty(&format!("/v1/rooms/{room}/typing"), &actor.token)
                .await
        }
        "ephemeral" => {
            app.post(
                &format!("/v1/rooms/{room}/ephemeral"),
                t,
                json!({ "body": "psst" }),
            )
            .await
        }
        other => panic!("unknown command {other}"),
    }
}

fn member_expectation(command: &str, visibility: &str) -> Expect {
    match command {
        "send" => Expect::Ok(201, true),
        "edit own" | "react" | "read marker" | "delete own" => Expect::Ok(200, true),
        "edit others'" | "delete others'" => Expect::Err(403, "not_author"),
        "invite" if visibility == "public" => Expect::Ok(200, true),
        "invite" | "kick" | "rename" | "role change" => Expect::Err(403, "forbidden"),
        "typing" | "ephemeral" => Expect::Ok(202, false),
        other => panic!("unknown command {other}"),
    }
}

fn outsider_expectation(visibility: &str) -> Expect {
    if visibility == "private" {
        Expect::Err(404, "room_not_found")
    } else {
        Expect::Err(403, "not_a_member")
    }
}

/// Runs the whole matrix in a room of `visibility`; returns every cell that
/// differs from the rule, so one run reports them all.
async fn matrix(visibility: &str) -> String {
    let app = TestApp::spawn().await;
    let users = register_all(
        &app,
        &[
            "owner",
            "admin",
            "member",
            "bystander",
            "invited",
            "leaver",
            "kicked",
            "stranger",
            "guest",
        ],
    )
    .await;
    let mut it = users.into_iter();
    let mut next = || it.next().unwrap();
    let (owner, admin, member, bystander) = (next(), next(), next(), next());
    let (invited, leaver, kicked, stranger, guest) = (next(), next(), next(), next(), next());
    let cast = Cast {
        owner,
        member,
        bystander,
        invited,
        leaver,
        kicked,
        stranger,
        guest,
    };
    let s = stage(&app, &cast, &admin, visibility).await;

    let actors: [(&str, &TestUser, Uuid); 5] = [
        ("member", &cast.member, s.member_msg),
        ("non-member", &cast.stranger, Uuid::new_v4()),
        ("invited-not-joined", &cast.invited, Uuid::new_v4()),
        ("left", &cast.leaver, s.leaver_msg),
        ("kicked", &cast.kicked, s.kicked_msg),
    ];
    let mut failures = String::new();
    for (who, actor, own_msg) in actors {
        for command in COMMANDS {
            let expect = if who == "member" {
                member_expectation(command, visibility)
            } else {
                outsider_expectation(visibility)
            };
            let before = app.event_count().await;
            let res = run(&app, &cast, &s, actor, own_msg, command).await;
            let appended = app.event_count().await - before;
            let cell = format!("{visibility} room, {who}, {command}");
            match expect {
                Expect::Ok(status, stored) => {
                    if res.status != status {
                        let _ = writeln!(
                            failures,
                            "{cell}: expected {status}, got {} {}",
                            res.status, res.body
                        );
                    } else if stored != (appended > 0) {
                        let _ = writeln!(failures, "{cell}: appended {appended} events");
                    }
                }
                Expect::Err(status, code) => {
                    let got = res.body["error"]["code"].as_str().unwrap_or("<none>");
                    if res.status != status
                        || got != code
                        || !res.body["error"]["message"].is_string()
                    {
                        let _ = writeln!(
                            failures,
                            "{cell}: expected {status} {code}, got {} {}",
                            res.status, res.body
                        );
                    }
                    if appended != 0 {
                        let _ =
                            writeln!(failures, "{cell}: a rejection appended {appended} events");
                    }
                }
            }
        }
    }
    // The guest was invited by the member of the public room only; nobody else
    // was kicked, promoted or renamed.
    let types = app.stream_types(&format!("room-{}", s.room)).await;
    let kicks = types.iter().filter(|t| *t == "MemberKicked").count();
    let roles = types.iter().filter(|t| *t == "MemberRoleChanged").count();
    let renames = types.iter().filter(|t| *t == "RoomRenamed").count();
    if (kicks, roles, renames) != (1, 1, 0) {
        let _ = writeln!(
            failures,
            "{visibility} room: {kicks} kicks, {roles} role changes, {renames} renames"
        );
    }
    app.cleanup().await;
    failures
}

#[tokio::test]
async fn in_a_public_room_only_members_act_and_outsiders_get_403_not_a_member() {
    let failures = matrix("public").await;
    assert!(
        failures.is_empty(),
        "cells that broke the rule:\n{failures}"
    );
}

#[tokio::test]
async fn in_a_private_room_only_members_act_and_outsiders_get_404_room_not_found() {
    let failures = matrix("private").await;
    assert!(
        failures.is_empty(),
        "cells that broke the rule:\n{failures}"
    );
}

/// Asserts an error and that nothing was appended.
async fn refused(
    app: &TestApp,
    res: impl std::future::Future<Output = Res>,
    status: u16,
    code: &str,
) {
    let before = app.event_count().await;
    let res = res.await;
    res.assert_error(status, code);
    assert_eq!(
        app.event_count().await,
        before,
        "a rejection appended events"
    );
}

#[tokio::test]
async fn only_moderators_kick_admins_kick_members_and_nobody_kicks_the_owner() {
    let app = TestApp::spawn().await;
    for visibility in ["public", "private"] {
        let names: Vec<String> = ["owner", "admin", "admin2", "member", "member2", "outsider"]
            .iter()
            .map(|n| format!("{n}-{visibility}"))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let users = register_all(&app, &names).await;
        let [owner, admin, admin2, member, member2, outsider] = users.try_into().unwrap();
        let room = app.create_room(&owner, visibility).await;
        for u in [&admin, &admin2, &member, &member2] {
            if visibility == "private" {
                app.invite(&owner, room, u).await.assert_status(200);
            }
            app.join(u, room).await.assert_status(200);
        }
        for a in [&admin, &admin2] {
            set_role(&app, &owner, room, a.id, "admin")
                .await
                .assert_status(200);
        }

        // A member moderates nothing.
        refused(&app, app.kick(&member, room, member2.id), 403, "forbidden").await;
        refused(&app, app.kick(&member, room, owner.id), 403, "forbidden").await;
        refused(&app, app.kick(&member, room, admin.id), 403, "forbidden").await;
        // Nobody kicks the owner, not even an admin; the owner cannot kick itself.
        refused(
            &app,
            app.kick(&admin, room, owner.id),
            403,
            "cannot_target_owner",
        )
        .await;
        refused(
            &app,
            app.kick(&owner, room, owner.id),
            422,
            "cannot_target_self",
        )
        .await;
        // An admin cannot kick another admin.
        refused(&app, app.kick(&admin, room, admin2.id), 403, "forbidden").await;
        // Someone who is not in the room cannot be kicked out of it.
        refused(
            &app,
            app.kick(&admin, room, outsider.id),
            404,
            "member_not_found",
        )
        .await;
        refused(
            &app,
            app.kick(&admin, room, Uuid::new_v4()),
            404,
            "member_not_found",
        )
        .await;

        // An admin kicks a member; the owner kicks an admin.
        app.kick(&admin, room, member2.id).await.assert_status(200);
        refused(
            &app,
            app.kick(&admin, room, member2.id),
            404,
            "member_not_found",
        )
        .await;
        app.kick(&owner, room, admin2.id).await.assert_status(200);

        // The owner is still there and still the owner.
        app.send(&owner, room, "still here")
            .await
            .assert_status(201);
        let stream = format!("room-{room}");
        assert_eq!(app.count_of(&stream, "MemberKicked").await, 2);
        let kicked: Vec<String> = sqlx::query_as::<_, (String,)>(
            "SELECT data->>'user_id' FROM events WHERE stream_id = $1 AND event_type = 'MemberKicked' ORDER BY version",
        )
        .bind(&stream)
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(u,)| u)
        .collect();
        assert_eq!(kicked, vec![member2.id.to_string(), admin2.id.to_string()]);
    }
    app.cleanup().await;
}

#[tokio::test]
async fn only_the_owner_changes_roles() {
    let app = TestApp::spawn().await;
    let [owner, admin, member]: [TestUser; 3] = register_all(&app, &["owner", "admin", "member"])
        .await
        .try_into()
        .unwrap();
    let room = app.create_room(&owner, "public").await;
    app.join(&admin, room).await.assert_status(200);
    app.join(&member, room).await.assert_status(200);
    set_role(&app, &owner, room, admin.id, "admin")
        .await
        .assert_status(200);

    refused(
        &app,
        set_role(&app, &admin, room, member.id, "admin"),
        403,
        "forbidden",
    )
    .await;
    refused(
        &app,
        set_role(&app, &admin, room, owner.id, "member"),
        403,
        "forbidden",
    )
    .await;
    refused(
        &app,
        set_role(&app, &member, room, member.id, "admin"),
        403,
        "forbidden",
    )
    .await;
    refused(
        &app,
        set_role(&app, &owner, room, member.id, "owner"),
        400,
        "cannot_grant_owner",
    )
    .await;
    refused(
        &app,
        set_role(&app, &owner, room, owner.id, "member"),
        403,
        "cannot_target_owner",
    )
    .await;
    refused(
        &app,
        set_role(&app, &owner, room, Uuid::new_v4(), "admin"),
        404,
        "member_not_found",
    )
    .await;

    // Promoted, the member may rename; demoted again, not any more.
    refused(&app, rename(&app, &member, room, "x"), 403, "forbidden").await;
    set_role(&app, &owner, room, member.id, "admin")
        .await
        .assert_status(200);
    rename(&app, &member, room, "renamed by a new admin")
        .await
        .assert_status(200);
    // Granting a role someone already has is a no-op that appends nothing.
    let before = app.event_count().await;
    let again = set_role(&app, &owner, room, member.id, "admin").await;
    assert!(again.assert_status(200)["position"].is_null());
    assert_eq!(app.event_count().await, before);
    set_role(&app, &owner, room, member.id, "member")
        .await
        .assert_status(200);
    refused(&app, rename(&app, &member, room, "y"), 403, "forbidden").await;
    assert_eq!(
        app.count_of(&format!("room-{room}"), "MemberRoleChanged")
            .await,
        3
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_author_or_a_moderator_may_delete_a_message_and_another_member_may_not() {
    let app = TestApp::spawn().await;
    let [owner, admin, author, other]: [TestUser; 4] =
        register_all(&app, &["owner", "admin", "author", "other"])
            .await
            .try_into()
            .unwrap();
    let room = app.create_room(&owner, "public").await;
    for u in [&admin, &author, &other] {
        app.join(u, room).await.assert_status(200);
    }
    set_role(&app, &owner, room, admin.id, "admin")
        .await
        .assert_status(200);
    let m1 = send_id(&app, &author, room, "one").await;
    let m2 = send_id(&app, &author, room, "two").await;
    let m3 = send_id(&app, &author, room, "three").await;
    let by_admin = send_id(&app, &admin, room, "admin's").await;
    refused(&app, delete_msg(&app, &other, room, m1), 403, "not_author").await;
    refused(&app, edit_msg(&app, &other, room, m1), 403, "not_author").await;
    refused(
        &app,
        delete_msg(&app, &author, room, by_admin),
        403,
        "not_author",
    )
    .await;
    delete_msg(&app, &author, room, m1).await.assert_status(200);
    delete_msg(&app, &admin, room, m2).await.assert_status(200);
    delete_msg(&app, &owner, room, m3).await.assert_status(200);
    delete_msg(&app, &owner, room, by_admin)
        .await
        .assert_status(200);
    refused(
        &app,
        delete_msg(&app, &author, room, m1),
        409,
        "message_deleted",
    )
    .await;
    let deleters: Vec<String> = sqlx::query_as::<_, (String,)>(
        "SELECT data->>'deleted_by' FROM events WHERE stream_id = $1 AND event_type = 'MessageDeleted' ORDER BY version",
    )
    .bind(format!("room-{room}"))
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(u,)| u)
    .collect();
    assert_eq!(
        deleters,
        [&author, &admin, &owner, &owner].map(|u| u.id.to_string())
    );

    // A direct room has no moderators: only the author deletes.
    let dm = app
        .post(
            "/v1/direct",
            Some(&author.token),
            json!({ "user_id": other.id }),
        )
        .await;
    let dm = id_of_value(dm.assert_status(201), "room_id");
    let m = send_id(&app, &author, dm, "private words").await;
    refused(&app, delete_msg(&app, &other, dm, m), 403, "not_author").await;
    delete_msg(&app, &author, dm, m).await.assert_status(200);
    app.cleanup().await;
}
