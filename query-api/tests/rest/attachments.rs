//! Attachments (issue #17): upload through command-api, send with a message, list in the
//! history and download through query-api, on the local backend and on a real S3-compatible
//! server (SeaweedFS, started by `scripts/test.sh`: `S3_ENDPOINT`, `S3_ACCESS_KEY_ID`,
//! `S3_SECRET_ACCESS_KEY`, `S3_BUCKET`, `S3_REGION`).

use crate::helpers::TestApp;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn pdf(len: usize) -> Vec<u8> {
    let mut b = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n".to_vec();
    b.resize(len, b' ');
    b.extend_from_slice(b"\n%%EOF\n");
    b
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn s3_settings() -> Option<blobs::settings::BlobSettings> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = var("S3_ENDPOINT") else {
        eprintln!(
            "\n*** S3 attachment test NOT RUN: S3_ENDPOINT is not set. `scripts/test.sh` starts \
             SeaweedFS (scripts/seaweedfs.sh) and sets it. ***\n"
        );
        return None;
    };
    use http_kit::settings::Layered as _;
    let mut s = command_api::configuration::Settings::from_defaults()
        .expect("defaults")
        .blobs;
    s.blob_backend = blobs::settings::BackendKind::S3;
    s.s3_endpoint = endpoint;
    s.s3_bucket = var("S3_BUCKET").unwrap_or_else(|| "chat".into());
    s.s3_region = var("S3_REGION").unwrap_or_else(|| "us-east-1".into());
    s.s3_access_key_id = var("S3_ACCESS_KEY_ID").expect("S3_ACCESS_KEY_ID");
    s.s3_secret_access_key = var("S3_SECRET_ACCESS_KEY")
        .expect("S3_SECRET_ACCESS_KEY")
        .into();
    Some(s)
}

/// The headers every download carries: its type, never sniffed, sandboxed, and shown
/// (`inline`) or only downloaded (`attachment`).
fn assert_served(h: &reqwest::header::HeaderMap, content_type: &str, disposition: &str) {
    assert_eq!(h["content-type"], content_type);
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "default-src 'none'; sandbox");
    let shown = h["content-disposition"].to_str().unwrap();
    assert!(shown.starts_with(&format!("{disposition};")), "{shown}");
}

async fn send_with(
    app: &TestApp,
    user: &test_support::TestUser,
    room: Uuid,
    ids: &[&str],
) -> test_support::Res {
    app.command(
        Method::POST,
        &format!("/v1/rooms/{room}/messages"),
        &user.token,
        Some(json!({ "body": "files", "attachments": ids })),
    )
    .await
}

/// An image and a PDF: upload, send, list, download (whole, a range, revalidated), the
/// image's thumbnail; then who may download: members yes; outsiders, the kicked, and
/// everyone once the message is deleted, no.
async fn round_trip(app: &TestApp) {
    let alice = app
        .register(&format!("alice_{}", crate::helpers::unique()))
        .await;
    let bob = app
        .register(&format!("bob_{}", crate::helpers::unique()))
        .await;
    let carol = app
        .register(&format!("carol_{}", crate::helpers::unique()))
        .await;
    let dave = app
        .register(&format!("dave_{}", crate::helpers::unique()))
        .await;
    let room = app.create_room(&alice, "files", "public").await;
    app.join(&bob, room).await.assert_status(200);
    app.join(&dave, room).await.assert_status(200);

    let image = png(640, 480);
    let up = app
        .upload(&alice, room, "cat picture.png", image.clone())
        .await;
    let img = up.assert_status(201).clone();
    assert_eq!(img["name"], "cat picture.png");
    assert_eq!(img["content_type"], "image/png");
    assert_eq!(img["size"], image.len());
    assert_eq!(img["sha256"], sha256(&image));
    assert_eq!(img["image"], json!({ "width": 640, "height": 480 }));
    let document = pdf(300_000);
    let doc = app
        .upload(&alice, room, "report é.pdf", document.clone())
        .await
        .assert_status(201)
        .clone();
    assert_eq!(doc["content_type"], "application/pdf");
    assert!(doc.get("image").is_none(), "{doc}");
    let (img_id, doc_id) = (
        img["attachment_id"].as_str().unwrap().to_owned(),
        doc["attachment_id"].as_str().unwrap().to_owned(),
    );

    // Only the uploader may send an upload, and only in its room.
    send_with(app, &bob, room, &[&img_id])
        .await
        .assert_error(422, "attachment_not_found");
    let sent = send_with(app, &alice, room, &[&img_id, &doc_id]).await;
    let message_id = sent.assert_status(201)["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.project().await;

    let history = app
        .get(&format!("/v1/rooms/{room}/messages"), &bob.token)
        .await;
    let listed = &history.assert_status(200)["messages"][0]["attachments"];
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    assert_eq!(listed[0], img);
    assert_eq!(listed[1], doc);

    let path = format!("/v1/attachments/{img_id}");
    let (status, h, body) = app.get_raw(&path, &bob.token, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, image);
    assert_served(&h, "image/png", "inline");
    let etag = h["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", sha256(&image)));
    let (status, _, body) = app
        .get_raw(&path, &bob.token, &[("if-none-match", &etag)])
        .await;
    assert_eq!((status, body.len()), (304, 0));
    let (status, h, body) = app
        .get_raw(&path, &bob.token, &[("range", "bytes=100-199")])
        .await;
    assert_eq!(status, 206);
    assert_eq!(body, image[100..200]);
    assert_eq!(
        h["content-range"].to_str().unwrap(),
        format!("bytes 100-199/{}", image.len())
    );
    let (status, _, body) = app
        .get_raw(&path, &bob.token, &[("range", "bytes=999999999-")])
        .await;
    assert_eq!(status, 416);
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(err["error"]["code"], "range_not_satisfiable");

    let (status, h, body) = app
        .get_raw(&format!("{path}/thumbnail"), &bob.token, &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(h["x-content-type-options"], "nosniff");
    let thumb = image::load_from_memory(&body).expect("a thumbnail decodes");
    assert_eq!((thumb.width(), thumb.height()), (320, 240));
    // A range of it has the type of the whole, sniffed from its first bytes, not the range's.
    let whole_type = h["content-type"].clone();
    assert!(
        whole_type.to_str().unwrap().starts_with("image/"),
        "{whole_type:?}"
    );
    let (status, h, part) = app
        .get_raw(
            &format!("{path}/thumbnail"),
            &bob.token,
            &[("range", "bytes=10-19")],
        )
        .await;
    assert_eq!(status, 206);
    assert_eq!(part, body[10..20]);
    assert_eq!(h["content-type"], whole_type);

    let (status, h, body) = app
        .get_raw(&format!("/v1/attachments/{doc_id}"), &bob.token, &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, document);
    assert_served(&h, "application/pdf", "attachment");
    let disposition = h["content-disposition"].to_str().unwrap();
    assert!(
        disposition.contains("filename*=UTF-8''report%20%C3%A9.pdf"),
        "{disposition}"
    );
    let (status, _, _) = app
        .get_raw(
            &format!("/v1/attachments/{doc_id}/thumbnail"),
            &bob.token,
            &[],
        )
        .await;
    assert_eq!(status, 404, "a PDF has no thumbnail");

    // Who may not: an outsider, a kicked member; nobody once the message is deleted.
    app.kick(&alice, room, &dave).await.assert_status(200);
    app.project().await;
    for (who, user) in [("outsider", &carol), ("kicked", &dave)] {
        for p in [
            path.clone(),
            format!("{path}/thumbnail"),
            format!("/v1/attachments/{doc_id}"),
        ] {
            let (status, _, body) = app.get_raw(&p, &user.token, &[]).await;
            assert_eq!(status, 404, "{who} {p}");
            let err: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(err["error"]["code"], "attachment_not_found", "{who}");
        }
    }
    app.delete_message(&alice, room, message_id.parse().unwrap())
        .await
        .assert_status(200);
    app.project().await;
    let (status, _, _) = app.get_raw(&path, &alice.token, &[]).await;
    assert_eq!(
        status, 404,
        "a deleted message's attachments are unreachable"
    );
    let history = app
        .get(&format!("/v1/rooms/{room}/messages"), &bob.token)
        .await;
    assert_eq!(
        history.assert_status(200)["messages"][0]["attachments"],
        json!([])
    );
}

#[tokio::test]
async fn an_image_and_a_pdf_round_trip_on_the_local_backend() {
    let app = TestApp::spawn().await;
    round_trip(&app).await;
    assert!(
        app.blob_files().len() >= 3,
        "the image, its thumbnail and the PDF under blobs/: {:?}",
        app.blob_files()
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_image_and_a_pdf_round_trip_on_seaweedfs() {
    let Some(s3) = s3_settings() else { return };
    let app = TestApp::spawn_with_blobs(Some(s3), |_| {}).await;
    round_trip(&app).await;
    assert!(app.blob_files().is_empty(), "nothing on the local disk");
    app.cleanup().await;
}

#[tokio::test]
async fn an_upload_over_25_mib_is_refused_413_and_leaves_nothing_stored() {
    let app = TestApp::spawn().await;
    let alice = app
        .register(&format!("alice_{}", crate::helpers::unique()))
        .await;
    let room = app.create_room(&alice, "big", "public").await;
    // Streamed, without a Content-Length: refused once the 25 MiB + 1st byte arrives.
    let big = vec![7u8; 26 << 20];
    app.upload(&alice, room, "big.bin", big.clone())
        .await
        .assert_error(413, "attachment_too_large");
    // With a Content-Length: refused before the body is read.
    let res = app
        .http
        .post(format!(
            "{}/v1/rooms/{room}/attachments",
            app.command_base()
        ))
        .query(&[("name", "big.bin")])
        .bearer_auth(&alice.token)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "attachment_too_large");
    assert!(app.blob_files().is_empty(), "{:?}", app.blob_files());
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM attachments")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    app.cleanup().await;
}

#[tokio::test]
async fn html_claiming_to_be_a_png_is_stored_and_served_only_as_a_download() {
    let app = TestApp::spawn().await;
    let alice = app
        .register(&format!("alice_{}", crate::helpers::unique()))
        .await;
    let room = app.create_room(&alice, "html", "public").await;
    let page = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>";
    // `upload` sends `Content-Type: image/png`: ignored, the bytes say otherwise.
    let up = app
        .upload(&alice, room, "innocent.png", page.to_vec())
        .await;
    let att = up.assert_status(201).clone();
    assert_eq!(att["content_type"], "application/octet-stream");
    assert!(att.get("image").is_none(), "{att}");
    let id = att["attachment_id"].as_str().unwrap().to_owned();
    send_with(&app, &alice, room, &[&id])
        .await
        .assert_status(201);
    app.project().await;
    let (status, h, body) = app
        .get_raw(&format!("/v1/attachments/{id}"), &alice.token, &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, page);
    assert_served(&h, "application/octet-stream", "attachment");
    let (status, _, _) = app
        .get_raw(
            &format!("/v1/attachments/{id}/thumbnail"),
            &alice.token,
            &[],
        )
        .await;
    assert_eq!(status, 404);
    app.cleanup().await;
}

#[tokio::test]
async fn outsiders_cannot_upload_and_a_send_carries_at_most_ten_attachments_each_once() {
    let app = TestApp::spawn().await;
    let alice = app
        .register(&format!("alice_{}", crate::helpers::unique()))
        .await;
    let carol = app
        .register(&format!("carol_{}", crate::helpers::unique()))
        .await;
    let public = app.create_room(&alice, "open", "public").await;
    let private = app.create_room(&alice, "closed", "private").await;
    app.upload(&carol, public, "a.pdf", pdf(100))
        .await
        .assert_error(403, "not_a_member");
    app.upload(&carol, private, "a.pdf", pdf(100))
        .await
        .assert_error(404, "room_not_found");
    app.upload(&alice, public, "../../etc/passwd", pdf(100))
        .await
        .assert_error(400, "invalid_file_name");
    app.upload(&alice, public, "empty.txt", Vec::new())
        .await
        .assert_error(400, "attachment_empty");
    assert!(app.blob_files().is_empty(), "{:?}", app.blob_files());

    let id = app
        .upload(&alice, public, "a.pdf", pdf(100))
        .await
        .assert_status(201)["attachment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Named twice, sent once.
    send_with(&app, &alice, public, &[&id, &id])
        .await
        .assert_status(201);
    app.project().await;
    let history = app
        .get(&format!("/v1/rooms/{public}/messages"), &alice.token)
        .await;
    let listed = &history.assert_status(200)["messages"][0]["attachments"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let eleven: Vec<String> = (0..11).map(|_| Uuid::new_v4().to_string()).collect();
    let eleven: Vec<&str> = eleven.iter().map(String::as_str).collect();
    send_with(&app, &alice, public, &eleven)
        .await
        .assert_error(400, "too_many_attachments");
    // An upload of another room is not this room's.
    send_with(&app, &alice, private, &[&id])
        .await
        .assert_error(422, "attachment_not_found");
    app.cleanup().await;
}

#[tokio::test]
async fn an_upload_no_message_sent_is_collected_after_its_time_and_a_sent_one_stays() {
    use http_kit::settings::Layered as _;
    let mut blobs = command_api::configuration::Settings::from_defaults()
        .expect("defaults")
        .blobs;
    blobs.attachment_ttl_secs = 1;
    let app = TestApp::spawn_with_blobs(Some(blobs), |_| {}).await;
    let alice = app
        .register(&format!("alice_{}", crate::helpers::unique()))
        .await;
    let room = app.create_room(&alice, "gc", "public").await;
    let kept = app.upload(&alice, room, "kept.pdf", pdf(1000)).await;
    let kept = kept.assert_status(201)["attachment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dropped = app.upload(&alice, room, "dropped.pdf", pdf(1000)).await;
    let dropped = dropped.assert_status(201)["attachment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    send_with(&app, &alice, room, &[&kept])
        .await
        .assert_status(201);
    assert_eq!(app.blob_files().len(), 2);
    // The collector runs every 10 s at the least; the unsent upload goes, rows and bytes.
    test_support::wait_until(
        std::time::Duration::from_secs(40),
        std::time::Duration::from_millis(250),
        "the unsent upload was not collected",
        || async {
            let named = |f: &std::path::PathBuf| f.to_string_lossy().contains(&dropped);
            !app.blob_files().iter().any(named)
        },
    )
    .await;
    let rows: Vec<(Uuid,)> = sqlx::query_as("SELECT attachment_id FROM attachments")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(rows, vec![(kept.parse().unwrap(),)]);
    app.project().await;
    let (status, _, body) = app
        .get_raw(&format!("/v1/attachments/{kept}"), &alice.token, &[])
        .await;
    assert_eq!((status, body), (200, pdf(1000)));
    app.cleanup().await;
}
