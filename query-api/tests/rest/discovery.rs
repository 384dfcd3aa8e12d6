//! Finding people and rooms: me, user lookup, public room search, direct rooms.

use crate::helpers::{TestApp, unique};
use serde_json::Value;

fn names(v: &Value) -> Vec<String> {
    v["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn public_rooms_are_found_by_a_case_insensitive_name_substring_and_private_ones_never() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    let lovers = format!("Rust Lovers {u}");
    let hq = format!("rustaceans-HQ-{u}");
    let secret = format!("Rust secret {u}");
    let lovers_id = app.create_room(&alice, &lovers, "public").await;
    app.create_room(&alice, &hq, "public").await;
    app.create_room(&alice, &format!("Go Gophers {u}"), "public")
        .await;
    app.create_room(&alice, &secret, "private").await;
    app.join(&bob, lovers_id).await.assert_status(200);
    app.project().await;

    let res = app.get("/v1/rooms/public?q=RUST", &bob.token).await;
    let body = res.assert_status(200);
    // Most members first.
    assert_eq!(
        names(body),
        vec![lovers.clone(), hq.clone()],
        "{}",
        res.text
    );
    assert!(!res.text.contains(&secret));
    assert_eq!(body["rooms"][0]["joined"], true);
    assert_eq!(body["rooms"][0]["member_count"], 2);
    assert_eq!(body["rooms"][0]["topic"], format!("topic of {lovers}"));
    assert_eq!(body["rooms"][1]["joined"], false);

    let res = app
        .get("/v1/rooms/public?q=ustac&limit=5", &bob.token)
        .await;
    assert_eq!(names(res.assert_status(200)), vec![hq.clone()]);
    let res = app
        .get(&format!("/v1/rooms/public?q={u}&limit=0"), &bob.token)
        .await;
    assert_eq!(
        names(res.assert_status(200)).len(),
        1,
        "limit 0 is clamped to 1"
    );
    let res = app
        .get(&format!("/v1/rooms/public?q={u}&limit=500"), &bob.token)
        .await;
    assert_eq!(names(res.assert_status(200)).len(), 3);
    // LIKE wildcards are literal characters.
    let res = app.get("/v1/rooms/public?q=%25", &bob.token).await;
    assert_eq!(names(res.assert_status(200)).len(), 0, "{}", res.text);
    let res = app.get("/v1/rooms/public?q=_", &bob.token).await;
    assert_eq!(names(res.assert_status(200)).len(), 0, "{}", res.text);
    app.get("/v1/rooms/public?limit=many", &bob.token)
        .await
        .assert_error(400, "invalid_query");
    let long = "x".repeat(200);
    app.get(&format!("/v1/rooms/public?q={long}"), &bob.token)
        .await
        .assert_error(400, "invalid_query");
    app.cleanup().await;
}

#[tokio::test]
async fn a_direct_room_is_listed_for_both_people_with_the_other_one_shown() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    let carol = app.register(&format!("carol_{u}")).await;
    let dm = app.open_direct(&alice, &bob).await;
    assert_eq!(app.open_direct(&bob, &alice).await, dm, "one room per pair");
    app.say(&alice, dm, "psst").await;
    app.project().await;

    for (me, other) in [(&alice, &bob), (&bob, &alice)] {
        let res = app.get("/v1/rooms", &me.token).await;
        let rooms = res.assert_status(200)["rooms"].as_array().unwrap().clone();
        assert_eq!(rooms.len(), 1, "{}", res.text);
        let room = &rooms[0];
        assert_eq!(room["room_id"], dm.to_string());
        assert_eq!(room["kind"], "direct");
        assert_eq!(room["other_user"]["user_id"], other.id.to_string());
        assert_eq!(room["other_user"]["username"], other.username.as_str());
        assert_eq!(room["last_message"]["body"], "psst");
        let detail = app.get(&format!("/v1/rooms/{dm}"), &me.token).await;
        assert_eq!(
            detail.assert_status(200)["other_user"]["user_id"],
            other.id.to_string()
        );
        let members = app.get(&format!("/v1/rooms/{dm}/members"), &me.token).await;
        assert_eq!(
            members.assert_status(200)["members"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
    assert_eq!(
        app.get("/v1/rooms", &bob.token).await.body["rooms"][0]["unread_count"],
        1
    );

    // Nobody else learns of it, and it is not a public room.
    for suffix in ["", "/members", "/messages"] {
        app.get(&format!("/v1/rooms/{dm}{suffix}"), &carol.token)
            .await
            .assert_error(404, "room_not_found");
    }
    let res = app.get("/v1/rooms/public", &carol.token).await;
    assert!(!res.text.contains(&dm.to_string()), "{}", res.text);
    // Presence: alice and bob see each other; carol sees neither.
    let path = format!("/v1/presence?user_id={}&user_id={}", alice.id, bob.id);
    let res = app.get(&path, &alice.token).await;
    assert_eq!(
        res.assert_status(200)["presence"].as_array().unwrap().len(),
        2
    );
    let res = app.get(&path, &carol.token).await;
    assert_eq!(
        res.assert_status(200)["presence"].as_array().unwrap().len(),
        0
    );
    app.cleanup().await;
}

#[tokio::test]
async fn me_and_user_lookup_return_profiles_and_unknown_names_get_404() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    app.project().await;

    let me = app.get("/v1/me", &alice.token).await;
    let me = me.assert_status(200);
    assert_eq!(me["id"], alice.id.to_string());
    assert_eq!(me["username"], alice.username.as_str());
    assert_eq!(me["display_name"], alice.username.as_str());

    let found = app
        .get(
            &format!("/v1/users?username={}", bob.username),
            &alice.token,
        )
        .await;
    let found = found.assert_status(200);
    assert_eq!(found["user_id"], bob.id.to_string());
    assert_eq!(found["username"], bob.username.as_str());
    assert_eq!(found["display_name"], bob.username.as_str());
    // Exact match only.
    app.get(&format!("/v1/users?username=bob_{}", &u[..4]), &alice.token)
        .await
        .assert_error(404, "user_not_found");
    app.get("/v1/users", &alice.token)
        .await
        .assert_error(400, "invalid_query");

    // Presence: too many, malformed or none asked is a 400; the caller sees themself.
    let many: Vec<String> = (0..101)
        .map(|_| format!("user_id={}", uuid::Uuid::now_v7()))
        .collect();
    app.get(&format!("/v1/presence?{}", many.join("&")), &alice.token)
        .await
        .assert_error(400, "invalid_query");
    app.get("/v1/presence?user_id=nope", &alice.token)
        .await
        .assert_error(400, "invalid_query");
    app.get("/v1/presence", &alice.token)
        .await
        .assert_error(400, "invalid_query");
    let res = app
        .get(&format!("/v1/presence?user_id={}", alice.id), &alice.token)
        .await;
    let p = &res.assert_status(200)["presence"][0];
    assert_eq!(p["user_id"], alice.id.to_string());
    assert!(p["status"] == "online" || p["status"] == "offline", "{p}");
    // bob shares no room with alice.
    let res = app
        .get(&format!("/v1/presence?user_id={}", bob.id), &alice.token)
        .await;
    assert_eq!(
        res.assert_status(200)["presence"].as_array().unwrap().len(),
        0
    );
    app.cleanup().await;
}

/// PostgreSQL refuses text with a NUL character (0x00); a NUL in any query parameter is a 400
/// `invalid_query` before it gets there, never a 500 (found by an outside API fuzz test).
#[tokio::test]
async fn a_nul_byte_in_a_query_parameter_is_a_400() {
    let app = TestApp::spawn().await;
    let alice = app.register(&format!("alice_{}", unique())).await;
    let room = app.create_room(&alice, "lobby", "public").await;
    for path in [
        "/v1/rooms/public?q=%00".to_owned(),
        "/v1/rooms/public?q=a%00b".to_owned(),
        "/v1/users?username=a%00b".to_owned(),
        "/v1/search/messages?q=hello%00".to_owned(),
        format!("/v1/rooms/{room}/messages?limit=1&x=%00"),
    ] {
        let res = app.get(&path, &alice.token).await;
        res.assert_error(400, "invalid_query");
        assert!(res.text.contains("NUL"), "{path}: {}", res.text);
    }
    // A percent sign that is not a NUL is still fine.
    app.get("/v1/rooms/public?q=%2500", &alice.token)
        .await
        .assert_status(200);
    app.cleanup().await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_read() {
    let app = TestApp::spawn().await;
    let res = reqwest::get(format!("{}/openapi.json", app.query))
        .await
        .unwrap();
    let doc: Value = res.json().await.unwrap();
    for path in [
        "/v1/me",
        "/v1/users",
        "/v1/rooms",
        "/v1/rooms/public",
        "/v1/rooms/{room_id}",
        "/v1/rooms/{room_id}/members",
        "/v1/rooms/{room_id}/messages",
        "/v1/rooms/{room_id}/bans",
        "/v1/presence",
        "/v1/admin/stats",
        "/v1/admin/audit",
        "/v1/users/{user_id}/avatar",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
    }
    // An avatar's answers (issue #18), and `avatar_url` beside the names.
    let avatar = &doc["paths"]["/v1/users/{user_id}/avatar"]["get"]["responses"];
    for status in ["200", "304", "400", "401", "404"] {
        assert!(avatar[status].is_object(), "avatar: no {status}");
    }
    for schema in ["Me", "Member", "UserSummary"] {
        assert!(
            doc["components"]["schemas"][schema]["properties"]["avatar_url"].is_object(),
            "{schema} has no avatar_url"
        );
    }
    // The audit's bounds are in the document.
    let params = doc["paths"]["/v1/admin/audit"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["schema"]["minimum"], 1, "{limit}");
    assert_eq!(limit["schema"]["maximum"], 200, "{limit}");
    app.cleanup().await;
}

#[tokio::test]
async fn readiness_requires_the_read_models_and_shows_nats() {
    let app = TestApp::spawn().await;
    let res = app.get_with("/readyz", None, &[]).await;
    let body = res.assert_status(200);
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["checks"]["read_models"]["ok"], true, "{body}");
    assert_eq!(body["checks"]["read_models"]["required"], true, "{body}");
    assert_eq!(body["checks"]["nats"]["required"], false, "{body}");
    app.cleanup().await;
}
