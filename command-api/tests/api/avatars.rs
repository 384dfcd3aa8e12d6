//! Avatars (issue #18): `PUT /v1/me/avatar` stores a square rendering of an image under the
//! user's prefix and appends `AvatarChanged`; the same picture again, or removing none, appends
//! nothing; bad uploads are 4xx and store nothing; the picture replaced, and every picture at
//! an erasure, is deleted.

use crate::helpers::TestApp;
use reqwest::Method;
use serde_json::json;
use std::path::{Path, PathBuf};
use uuid::Uuid;

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x * y) % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The directory of `user`'s avatar blobs (the local backend, under the data directory).
fn avatar_dir(app: &TestApp, user: Uuid) -> PathBuf {
    app.settings
        .data_dir
        .join("blobs/avatars")
        .join(user.to_string())
}

/// The names of the files in `dir` (none when it does not exist).
fn files(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn put_avatar(app: &TestApp, token: Option<&str>, bytes: Vec<u8>) -> test_support::Res {
    app.raw(
        Method::PUT,
        "/v1/me/avatar",
        token,
        Some("image/png"),
        bytes,
    )
    .await
}

async fn delete_avatar(app: &TestApp, token: &str) -> test_support::Res {
    app.request(Method::DELETE, "/v1/me/avatar", Some(token), None, &[])
        .await
}

#[tokio::test]
async fn an_upload_is_an_avatar_changed_naming_a_square_and_the_same_picture_again_is_not() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let stream = format!("user-{}", alice.id);
    let dir = avatar_dir(&app, alice.id);

    // A 300×200 PNG: stored as its middle 200×200 square (a JPEG: no alpha).
    let first = put_avatar(&app, Some(&alice.token), png(300, 200)).await;
    let body = first.assert_status(200).clone();
    let id = first.uuid("avatar_id");
    assert_eq!(
        body["avatar_url"],
        format!("/v1/users/{}/avatar?v={id}", alice.id)
    );
    assert_eq!(body["content_type"], "image/jpeg");
    assert_eq!(body["side"], 200);
    assert!(body["position"].is_i64(), "{body}");
    assert_eq!(app.count_of(&stream, "AvatarChanged").await, 1);
    assert_eq!(files(&dir), vec![id.to_string()]);
    let stored = std::fs::read(dir.join(id.to_string())).unwrap();
    assert_eq!(body["size"], stored.len());
    let decoded = image::load_from_memory(&stored).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (200, 200));
    // The event names the picture; nothing in it is sealed (a random id, a type, a size).
    let data: serde_json::Value = sqlx::query_scalar(
        "SELECT data FROM events WHERE stream_id = $1 AND event_type = 'AvatarChanged'",
    )
    .bind(&stream)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(data["avatar"]["avatar_id"], id.to_string());
    assert_eq!(data["avatar"]["side"], 200);

    // The same picture again: no event, the same avatar, and its new copy is not kept.
    let again = put_avatar(&app, Some(&alice.token), png(300, 200)).await;
    assert!(again.assert_status(200)["position"].is_null());
    assert_eq!(again.uuid("avatar_id"), id);
    assert_eq!(app.count_of(&stream, "AvatarChanged").await, 1);
    assert_eq!(files(&dir), vec![id.to_string()]);

    // Another picture: a new event, and the one it replaced is deleted. A large one is
    // scaled down to 256 px.
    let second = put_avatar(&app, Some(&alice.token), png(600, 700)).await;
    assert!(second.assert_status(200)["position"].is_i64());
    assert_eq!(second.body["side"], 256);
    let second_id = second.uuid("avatar_id");
    assert_ne!(second_id, id);
    assert_eq!(files(&dir), vec![second_id.to_string()]);

    // Removed: an event with no avatar, the blob deleted; removing none changes nothing.
    let removed = delete_avatar(&app, &alice.token).await;
    let body = removed.assert_status(200);
    assert!(body["position"].is_i64());
    assert!(
        body["avatar_id"].is_null() && body["avatar_url"].is_null(),
        "{body}"
    );
    assert_eq!(app.count_of(&stream, "AvatarChanged").await, 3);
    let last: serde_json::Value = sqlx::query_scalar(
        "SELECT data FROM events WHERE stream_id = $1 ORDER BY version DESC LIMIT 1",
    )
    .bind(&stream)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(last["avatar"], serde_json::Value::Null);
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    assert!(delete_avatar(&app, &alice.token).await.assert_status(200)["position"].is_null());
    assert_eq!(app.count_of(&stream, "AvatarChanged").await, 3);
    app.cleanup().await;
}

#[tokio::test]
async fn bad_uploads_are_a_4xx_and_neither_store_nor_append_anything() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let dir = avatar_dir(&app, alice.id);
    let before = app.event_count().await;

    let pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n".to_vec();
    put_avatar(&app, Some(&alice.token), pdf)
        .await
        .assert_error(415, "avatar_type_not_allowed");
    put_avatar(
        &app,
        Some(&alice.token),
        b"<html><body>not a picture</body></html>".to_vec(),
    )
    .await
    .assert_error(415, "avatar_type_not_allowed");
    put_avatar(&app, Some(&alice.token), Vec::new())
        .await
        .assert_error(400, "avatar_empty");
    // A PNG signature and nothing an image decoder can read.
    let mut broken = png(40, 40);
    broken.truncate(60);
    put_avatar(&app, Some(&alice.token), broken)
        .await
        .assert_error(400, "avatar_unreadable");
    // Over 2 MiB (the first bytes are a real PNG's: the size decides).
    let mut big = png(40, 40);
    big.resize(2 * 1024 * 1024 + 1, 0);
    put_avatar(&app, Some(&alice.token), big)
        .await
        .assert_error(413, "avatar_too_large");
    put_avatar(&app, None, png(40, 40))
        .await
        .assert_error(401, "unauthorized");
    app.request(Method::DELETE, "/v1/me/avatar", None, None, &[])
        .await
        .assert_error(401, "unauthorized");

    assert_eq!(app.event_count().await, before);
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    app.cleanup().await;
}

#[tokio::test]
async fn an_erasure_deletes_every_avatar_blob_of_the_user() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let dir = avatar_dir(&app, alice.id);
    put_avatar(&app, Some(&alice.token), png(64, 64))
        .await
        .assert_status(200);
    put_avatar(&app, Some(&bob.token), png(64, 64))
        .await
        .assert_status(200);
    // A blob an interrupted upload could have left under the user's prefix.
    std::fs::write(dir.join(Uuid::now_v7().to_string()), b"orphan").unwrap();
    assert_eq!(files(&dir).len(), 2);

    app.post(
        "/v1/me/erase",
        Some(&alice.token),
        json!({ "confirm_username": alice.username }),
    )
    .await
    .assert_status(200);
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    // Nobody else's.
    assert_eq!(files(&avatar_dir(&app, bob.id)).len(), 1);
    app.cleanup().await;
}

#[tokio::test]
async fn the_avatar_commands_and_their_answers_are_in_the_openapi_document() {
    let app = TestApp::spawn().await;
    let doc = app
        .request(Method::GET, "/openapi.json", None, None, &[])
        .await;
    let doc = doc.assert_status(200);
    let put = &doc["paths"]["/v1/me/avatar"]["put"];
    for status in ["200", "400", "401", "413", "415", "429"] {
        assert!(put["responses"][status].is_object(), "PUT: no {status}");
    }
    assert!(
        put["requestBody"]["content"]["application/octet-stream"].is_object(),
        "{put}"
    );
    let delete = &doc["paths"]["/v1/me/avatar"]["delete"];
    assert!(delete["responses"]["200"].is_object(), "{delete}");
    assert!(doc["components"]["schemas"]["AvatarAnswer"]["properties"]["avatar_url"].is_object());
    app.cleanup().await;
}
