//! Avatars (issue #18) through the whole path: uploaded through command-api, projected into
//! the reads that carry names (members, a user lookup, `/v1/me`, a direct room's other
//! person), served by query-api with its type, `ETag` and caching, and gone (404, blob deleted)
//! after a removal and after an erasure; a rebuild of the read models gives the same rows.

use crate::attachments::png;
use crate::helpers::{Res, TestApp, TestUser, unique};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

async fn put_avatar(app: &TestApp, user: &TestUser, bytes: Vec<u8>) -> Value {
    let res = app
        .http
        .put(format!("{}/v1/me/avatar", app.command_base()))
        .bearer_auth(&user.token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("put avatar");
    assert_eq!(res.status().as_u16(), 200);
    res.json().await.expect("avatar answer")
}

/// The avatar files of `user` in the local blob store.
fn avatar_files(app: &TestApp, user: Uuid) -> Vec<std::path::PathBuf> {
    let dir = format!("avatars/{user}/");
    app.blob_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&dir))
        .collect()
}

fn member(members: &Res, user: Uuid) -> &Value {
    members.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == user.to_string())
        .expect("member listed")
}

#[tokio::test]
async fn an_avatar_is_in_every_read_and_served_until_removed_or_erased() {
    let app = TestApp::spawn().await;
    let u = unique();
    let alice = app.register(&format!("alice_{u}")).await;
    let bob = app.register(&format!("bob_{u}")).await;
    let room = app.create_room(&alice, &format!("a-{u}"), "public").await;
    app.join(&bob, room).await.assert_status(200);
    app.open_direct(&bob, &alice).await;

    let set = put_avatar(&app, &alice, png(320, 240)).await;
    let url = set["avatar_url"].as_str().unwrap().to_owned();
    let id = set["avatar_id"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("/v1/users/{}/avatar?v={id}", alice.id));
    app.project().await;

    // Every read that names alice gives her picture; bob has none.
    let members = app
        .get(&format!("/v1/rooms/{room}/members"), &bob.token)
        .await;
    members.assert_status(200);
    assert_eq!(member(&members, alice.id)["avatar_url"], url.as_str());
    assert_eq!(member(&members, bob.id)["avatar_url"], Value::Null);
    let found = app
        .get(
            &format!("/v1/users?username={}", alice.username),
            &bob.token,
        )
        .await;
    assert_eq!(found.assert_status(200)["avatar_url"], url.as_str());
    assert_eq!(
        app.get("/v1/me", &alice.token).await.assert_status(200)["avatar_url"],
        url.as_str()
    );
    let rooms = app.get("/v1/rooms", &bob.token).await;
    let direct = rooms.assert_status(200)["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "direct")
        .unwrap()
        .clone();
    assert_eq!(direct["other_user"]["avatar_url"], url.as_str());

    // Served as stored, to any signed-in user, with its type, its id as the ETag, and a long
    // cache life for the URL that names it (a short one otherwise).
    let stored = std::fs::read(&avatar_files(&app, alice.id)[0]).unwrap();
    let (status, h, bytes) = app.get_raw(&url, &bob.token, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, stored);
    assert_eq!(h["content-type"], "image/jpeg");
    assert_eq!(h["etag"], format!("\"{id}\""));
    assert_eq!(h["cache-control"], "private, max-age=31536000, immutable");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "default-src 'none'; sandbox");
    assert_eq!(h["accept-ranges"], "bytes");
    assert!(h.get("content-disposition").is_none());
    let decoded = image::load_from_memory(&bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (240, 240));
    let plain = format!("/v1/users/{}/avatar", alice.id);
    let (status, h, bytes) = app.get_raw(&plain, &bob.token, &[]).await;
    assert_eq!((status, bytes.len()), (200, stored.len()));
    assert_eq!(h["cache-control"], "private, max-age=60");
    let etag = format!("\"{id}\"");
    let (status, h, bytes) = app
        .get_raw(&url, &bob.token, &[("if-none-match", etag.as_str())])
        .await;
    assert_eq!((status, bytes.len()), (304, 0));
    assert_eq!(h["etag"], etag.as_str());
    // Byte ranges, as for an attachment: one range is served (206) with the picture's type
    // and caching, and one past the end is refused (416).
    let (status, h, bytes) = app
        .get_raw(&url, &bob.token, &[("range", "bytes=10-19")])
        .await;
    assert_eq!(status, 206);
    assert_eq!(bytes, stored[10..20]);
    assert_eq!(
        h["content-range"].to_str().unwrap(),
        format!("bytes 10-19/{}", stored.len())
    );
    assert_eq!(h["content-length"], "10");
    assert_eq!(h["content-type"], "image/jpeg");
    assert_eq!(h["etag"], etag.as_str());
    assert_eq!(h["cache-control"], "private, max-age=31536000, immutable");
    let past_end = format!("bytes={}-", stored.len());
    let (status, _, bytes) = app
        .get_raw(&url, &bob.token, &[("range", past_end.as_str())])
        .await;
    assert_eq!(status, 416);
    let err: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(err["error"]["code"], "range_not_satisfiable");
    app.get_with(&url, None, &[])
        .await
        .assert_error(401, "unauthorized");
    app.get(&format!("/v1/users/{}/avatar", bob.id), &alice.token)
        .await
        .assert_error(404, "avatar_not_found");
    app.get(
        &format!("/v1/users/{}/avatar", Uuid::now_v7()),
        &alice.token,
    )
    .await
    .assert_error(404, "avatar_not_found");
    app.get("/v1/users/not-a-uuid/avatar", &alice.token)
        .await
        .assert_error(400, "invalid_path");

    // Removed: 404 at once (the blob is gone before the read models catch up), and no
    // avatar in the reads once they have.
    let removed = app
        .command(Method::DELETE, "/v1/me/avatar", &alice.token, None)
        .await;
    assert!(removed.assert_status(200)["avatar_url"].is_null());
    app.get(&url, &bob.token)
        .await
        .assert_error(404, "avatar_not_found");
    let (status, _, bytes) = app
        .get_raw(&url, &bob.token, &[("range", "bytes=0-9")])
        .await;
    assert_eq!(status, 404);
    let err: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(err["error"]["code"], "avatar_not_found");
    app.project().await;
    app.get(&plain, &bob.token)
        .await
        .assert_error(404, "avatar_not_found");
    let members = app
        .get(&format!("/v1/rooms/{room}/members"), &bob.token)
        .await;
    assert_eq!(member(&members, alice.id)["avatar_url"], Value::Null);
    assert!(avatar_files(&app, alice.id).is_empty());

    // A picture again, and one for bob; a rebuild of the read models gives the same rows.
    let again = put_avatar(&app, &alice, png(64, 64)).await;
    let again_url = again["avatar_url"].as_str().unwrap().to_owned();
    put_avatar(&app, &bob, png(50, 80)).await;
    app.project().await;
    let (status, _, _) = app.get_raw(&again_url, &bob.token, &[]).await;
    assert_eq!(status, 200);
    let live = projector::oracle::snapshot(&app.db.pool).await.unwrap();
    let read_models = projector::read_models::ReadModels::new(app.db.pool.clone());
    projector::framework::rebuild(&read_models, &app.db.pool, &app.db.pool, 1000, &|_| {})
        .await
        .unwrap();
    let rebuilt = projector::oracle::snapshot(&app.db.pool).await.unwrap();
    assert_eq!(
        projector::oracle::diff(&live, &rebuilt, 5),
        (0, Vec::<String>::new())
    );

    // Erased: the blobs are deleted with the erasure (404 before the read models catch up),
    // and the read models forget the picture, in a rebuild too.
    app.command(
        Method::POST,
        "/v1/me/erase",
        &alice.token,
        Some(json!({ "confirm_username": alice.username })),
    )
    .await
    .assert_status(200);
    assert!(avatar_files(&app, alice.id).is_empty());
    app.get(&again_url, &bob.token)
        .await
        .assert_error(404, "avatar_not_found");
    app.project().await;
    app.get(&format!("/v1/users/{}/avatar", alice.id), &bob.token)
        .await
        .assert_error(404, "avatar_not_found");
    let members = app
        .get(&format!("/v1/rooms/{room}/members"), &bob.token)
        .await;
    assert_eq!(member(&members, alice.id)["avatar_url"], Value::Null);
    let row: (Option<Uuid>, Option<String>) =
        sqlx::query_as("SELECT avatar_id, avatar_content_type FROM rm_users WHERE user_id = $1")
            .bind(alice.id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(row, (None, None));
    // Bob's picture is his still.
    assert_eq!(avatar_files(&app, bob.id).len(), 1);
    let live = projector::oracle::snapshot(&app.db.pool).await.unwrap();
    projector::framework::rebuild(&read_models, &app.db.pool, &app.db.pool, 1000, &|_| {})
        .await
        .unwrap();
    let rebuilt = projector::oracle::snapshot(&app.db.pool).await.unwrap();
    assert_eq!(
        projector::oracle::diff(&live, &rebuilt, 5),
        (0, Vec::<String>::new())
    );
    app.cleanup().await;
}
