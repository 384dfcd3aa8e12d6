//! Avatars (issue #18) in the live feed: a new picture, its removal and an erasure reach the
//! subscribed members of the rooms the user is in as `member_updated` frames carrying
//! `avatar_url` (and only what changed: a picture's frame leaves the name alone).

use crate::helpers::{Client, Platform};
use serde_json::Value;
use test_support::TestUser;

fn png(side: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(side, side, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 7])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn avatar(p: &Platform, user: &TestUser, bytes: Option<Vec<u8>>) -> Value {
    let url = format!("{}/v1/me/avatar", p.cmd_base);
    let req = match bytes {
        Some(b) => p.http.put(url).body(b),
        None => p.http.delete(url),
    };
    let res = req.bearer_auth(&user.token).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn a_new_avatar_its_removal_and_an_erasure_reach_the_rooms_of_the_member_live() {
    let p = Platform::spawn().await;
    let admin = p.register().await; // the first user
    let bob = p.register().await;
    let carol = p.register().await;
    let room = p.create_room(&admin, "public").await;
    let other = p.create_room(&admin, "public").await;
    p.join(&bob, room).await;
    p.join(&carol, room).await;
    p.join(&carol, other).await;
    p.project().await;
    let mut ws = Client::connect(p.query.addr, &carol.token).await;
    ws.subscribe(room, None).await;
    ws.subscribe(other, None).await;

    let set = avatar(&p, &bob, Some(png(90))).await;
    let frames = ws.until(|f| f["type"] == "member_updated").await;
    let frame = frames.last().unwrap();
    assert_eq!(frame["room_id"], room.to_string(), "{frame}");
    assert_eq!(frame["user_id"], bob.id.to_string());
    assert_eq!(frame["avatar_url"], set["avatar_url"]);
    assert_eq!(frame["position"], set["position"]);
    assert!(frame.get("display_name").is_none(), "{frame}");
    assert!(frame.get("erased").is_none(), "{frame}");
    let mut told = frames;

    avatar(&p, &bob, None).await;
    let frames = ws.until(|f| f["type"] == "member_updated").await;
    let frame = frames.last().unwrap();
    assert_eq!(frame["user_id"], bob.id.to_string());
    assert_eq!(frame["avatar_url"], Value::Null);
    assert!(frame.get("avatar_url").is_some(), "{frame}");
    told.extend(frames);

    avatar(&p, &bob, Some(png(40))).await;
    ws.until(|f| f["type"] == "member_updated").await;
    let (status, body) = p
        .post(
            &format!("/v1/admin/users/{}/erase", bob.id),
            &admin.token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let frames = ws
        .until(|f| f["type"] == "member_updated" && f["erased"] == true)
        .await;
    let frame = frames.last().unwrap();
    assert_eq!(frame["avatar_url"], Value::Null);
    assert!(frame.get("avatar_url").is_some(), "{frame}");
    told.extend(frames);
    // Only the room bob is in was told.
    for f in &told {
        assert_ne!(f["room_id"], other.to_string(), "{f}");
    }
    p.cleanup().await;
}
