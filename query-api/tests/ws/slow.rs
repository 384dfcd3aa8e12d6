use crate::helpers::{Client, DEADLINE, Platform, rss_bytes, wait_until};
use futures::SinkExt;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const QUEUE: usize = 32;
const SLOW: usize = 100;
const READERS: usize = 100;
/// Big messages (about 16 KB each) into the room only the stalled sockets are
/// in: more than the kernel will buffer per socket (up to 4 MB here).
const FLOOD: usize = 400;
/// Every this many flood messages, one message into the room everyone is in.
const CHAT_EVERY: usize = 4;
const CHAT: usize = FLOOD / CHAT_EVERY;

/// A socket that subscribes and then never reads (with a tiny receive buffer,
/// so the server's writes back up quickly).
async fn slow_socket(
    addr: std::net::SocketAddr,
    token: &str,
    rooms: [uuid::Uuid; 2],
) -> crate::helpers::Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut req = format!("ws://{addr}/v1/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    for room in rooms {
        let frame = json!({ "type": "subscribe", "room_id": room });
        ws.send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }
    ws
}

/// A reader's task: the bodies it received with when, and its socket.
type Reader = tokio::task::JoinHandle<(Vec<(String, Instant)>, Client)>;

/// Reads `n` `message_sent` frames from `ws`, noting when each arrived; panics if the
/// socket ends first.
fn spawn_reader(mut ws: Client, n: usize) -> Reader {
    tokio::spawn(async move {
        let mut got = Vec::with_capacity(n);
        let deadline = Instant::now() + Duration::from_secs(180);
        while got.len() < n {
            match ws.next_until(deadline).await {
                crate::helpers::Got::Frame(f) if f["type"] == "message_sent" => {
                    let body = f["data"]["body"].as_str().unwrap().to_owned();
                    got.push((body, Instant::now()));
                }
                crate::helpers::Got::Frame(_) => {}
                other => panic!("a reader ended: {other:?} after {}", got.len()),
            }
        }
        (got, ws)
    })
}

/// Sends `FLOOD` big messages (about 16 KB each: 4-byte characters) into `flood` and, every
/// `CHAT_EVERY` of them, a small one into `chat`, calling `on_chat` after each; returns the
/// small ones' bodies with when each was accepted.
async fn flood_and_chat(
    p: &Platform,
    alice: &test_support::TestUser,
    flood: uuid::Uuid,
    chat: uuid::Uuid,
    mut on_chat: impl FnMut(),
) -> Vec<(String, Instant)> {
    let big = |i: usize| format!("{i:04} {}", "\u{1F600}".repeat(3990));
    let mut sent_at = Vec::with_capacity(FLOOD / CHAT_EVERY);
    for i in 0..FLOOD {
        p.send(alice, flood, &big(i)).await;
        if i % CHAT_EVERY == 0 {
            let body = format!("chat {:04}", i / CHAT_EVERY);
            p.send(alice, chat, &body).await;
            sent_at.push((body, Instant::now()));
            on_chat();
        }
    }
    sent_at
}

/// Asserts every reader got exactly the messages of `sent_at`, in order; returns the worst
/// delay from a message's acceptance to a reader, and the readers' sockets.
async fn every_message_in_order(
    readers: Vec<Reader>,
    sent_at: &[(String, Instant)],
) -> (Duration, Vec<Client>) {
    let expected: Vec<&String> = sent_at.iter().map(|(b, _)| b).collect();
    let mut worst = Duration::ZERO;
    let mut sockets = Vec::with_capacity(readers.len());
    for t in readers {
        let (got, ws) = t.await.unwrap();
        let bodies: Vec<&String> = got.iter().map(|(b, _)| b).collect();
        assert_eq!(bodies, expected, "a reader missed or reordered messages");
        for ((_, received), (_, sent)) in got.iter().zip(sent_at) {
            worst = worst.max(received.saturating_duration_since(*sent));
        }
        sockets.push(ws);
    }
    (worst, sockets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumers_are_closed_while_readers_get_every_message_and_memory_stays_bounded() {
    let p = Platform::spawn_with(|s| s.ws_queue_frames = QUEUE).await;
    let alice = p.register().await;
    let bob = p.register().await;
    let chat = p.create_room(&alice, "public").await;
    let flood = p.create_room(&alice, "public").await;
    p.join(&bob, chat).await;
    p.join(&bob, flood).await;
    let live = p.query.live().clone();

    let mut slow = Vec::new();
    for _ in 0..SLOW {
        slow.push(slow_socket(p.query.addr, &bob.token, [chat, flood]).await);
    }
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let mut ws = Client::connect(p.query.addr, &bob.token).await;
        let answer = ws.subscribe(chat, None).await;
        assert_eq!(answer.last().unwrap()["type"], "subscribed");
        readers.push(ws);
    }
    wait_until(
        DEADLINE,
        Duration::from_millis(20),
        "subscriptions did not all arrive",
        || async {
            live.subscriber_count(events::RoomId(chat)) >= SLOW + READERS
                && live.subscriber_count(events::RoomId(flood)) >= SLOW
        },
    )
    .await;
    let rss_before = rss_bytes();

    // Readers read concurrently and note when each chat message arrived.
    let reader_tasks: Vec<_> = readers
        .into_iter()
        .map(|ws| spawn_reader(ws, CHAT))
        .collect();
    let mut peak_rss = rss_before;
    let sent_at = flood_and_chat(&p, &alice, flood, chat, || {
        peak_rss = peak_rss.max(rss_bytes());
    })
    .await;
    let (worst, readers) = every_message_in_order(reader_tasks, &sent_at).await;
    let closed_by = Instant::now() + DEADLINE;
    while p.query.closed("slow_consumer") < SLOW as u64 || live.connection_count() > READERS {
        assert!(
            Instant::now() < closed_by,
            "slow consumers closed: {}, connections: {}",
            p.query.closed("slow_consumer"),
            live.connection_count(),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        peak_rss = peak_rss.max(rss_bytes());
    }
    assert_eq!(
        p.query.closed("slow_consumer"),
        SLOW as u64,
        "a reader was closed"
    );
    assert_eq!(live.subscriber_count(events::RoomId(chat)), READERS);
    assert_eq!(live.subscriber_count(events::RoomId(flood)), 0);
    // The stalled sockets hold at most QUEUE shared frames each; the whole test
    // process (two servers, 200 clients) must not balloon.
    let grown = peak_rss.saturating_sub(rss_before);
    eprintln!(
        "slow consumers: RSS grew by {} KiB; worst send-accepted → reader delay {worst:?}",
        grown / 1024
    );
    assert!(grown < 200 * 1024 * 1024, "RSS grew by {grown} bytes");
    assert!(
        worst < Duration::from_secs(2),
        "readers were delayed by {worst:?}"
    );
    drop(slow);
    drop(readers);
    p.cleanup().await;
}

/// Sockets in the big room beside the stalled one.
const CROWD: usize = 999;
/// Messages into the big room, one every `CHAT_EVERY` flood messages.
const BIG_ROOM_MESSAGES: usize = FLOOD / CHAT_EVERY;

/// A room of 1,000 sockets, one of which stops reading: it alone is closed as a slow
/// consumer, and the other 999 receive every message of the room, in order, while the
/// stalled one backs up (#16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_socket_in_a_room_of_a_thousand_does_not_hold_up_the_others() {
    let p = Platform::spawn_with(|s| s.ws_queue_frames = QUEUE).await;
    let alice = p.register().await;
    let bob = p.register().await;
    let big = p.create_room(&alice, "public").await;
    let flood = p.create_room(&alice, "public").await;
    p.join(&bob, big).await;
    p.join(&bob, flood).await;
    let live = p.query.live().clone();

    let slow = slow_socket(p.query.addr, &bob.token, [big, flood]).await;
    let mut crowd = Vec::with_capacity(CROWD);
    for _ in 0..CROWD {
        let mut ws = Client::connect(p.query.addr, &bob.token).await;
        let answer = ws.subscribe(big, None).await;
        assert_eq!(answer.last().unwrap()["type"], "subscribed");
        crowd.push(ws);
    }
    wait_until(
        DEADLINE,
        Duration::from_millis(20),
        "subscriptions did not all arrive",
        || async {
            live.subscriber_count(events::RoomId(big)) > CROWD
                && live.subscriber_count(events::RoomId(flood)) >= 1
        },
    )
    .await;

    let tasks: Vec<_> = crowd
        .into_iter()
        .map(|ws| spawn_reader(ws, BIG_ROOM_MESSAGES))
        .collect();
    let sent_at = flood_and_chat(&p, &alice, flood, big, || {}).await;
    let (worst, crowd) = every_message_in_order(tasks, &sent_at).await;
    wait_until(
        DEADLINE,
        Duration::from_millis(20),
        "the stalled socket was not closed",
        || async { p.query.closed("slow_consumer") >= 1 },
    )
    .await;
    assert_eq!(
        p.query.closed("slow_consumer"),
        1,
        "a reading socket was closed"
    );
    assert_eq!(live.subscriber_count(events::RoomId(big)), CROWD);
    eprintln!(
        "a room of {}: {} deliveries to the crowd; worst send-accepted → socket delay {worst:?}",
        CROWD + 1,
        CROWD * BIG_ROOM_MESSAGES
    );
    assert!(
        worst < Duration::from_secs(2),
        "the crowd was delayed by {worst:?}"
    );
    drop(slow);
    drop(crowd);
    p.cleanup().await;
}
