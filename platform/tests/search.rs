//! Search through the single-node platform: `GET /v1/search/messages` over the embedded index
//! the platform's own search projection writes, with read-your-writes, the query language,
//! explicit errors, and authorization decided at query time (members, non-members, people who
//! left or were kicked).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};
use test_support::{Api, Res, TestEnv, TestUser, unique};
use uuid::Uuid;

/// Searches as `user` after `position` (read-your-writes); `query` is the query string.
async fn search(api: &Api, user: &TestUser, query: &str, position: i64) -> Res {
    api.request(
        Method::GET,
        &format!("/v1/search/messages?{query}&min_position={position}"),
        Some(&user.token),
        None,
        &[],
    )
    .await
}

fn q(text: &str) -> String {
    format!("q={}", urlencode(text))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The bodies of the hits, as a set.
fn bodies(res: &Res) -> HashSet<String> {
    res.assert_status(200)["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["body"].as_str().unwrap().to_owned())
        .collect()
}

fn set(items: &[&str]) -> HashSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

async fn send(api: &Api, user: &TestUser, room: Uuid, body: &str) -> (Uuid, i64) {
    let res = api.send_message(user, room, body).await;
    let v = res.assert_status(201);
    (res.uuid("message_id"), v["position"].as_i64().unwrap())
}

fn position(res: &Res) -> i64 {
    res.body["position"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_words_phrases_partial_words_cjk_and_filters_in_the_callers_rooms() {
    let env = TestEnv::new().await;
    let search = env.search_settings();
    features(env, search).await;
}

/// The same through OpenSearch (`APP_SEARCH_BACKEND=opensearch`), on an index prefix of its
/// own; "OpenSearch: not run" with `CHAT_OPENSEARCH=skip`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_through_opensearch_finds_the_same() {
    let env = TestEnv::new().await;
    let mut search = env.search_settings();
    search.search_backend = search::BackendKind::OpenSearch;
    if let Ok(url) = std::env::var("APP_OPENSEARCH_URL") {
        search.opensearch_url = url;
    }
    search.opensearch_index_prefix = format!("platform-{}", Uuid::new_v4().simple());
    let index =
        search::OpenSearchIndex::new(&search.opensearch_url, &search.opensearch_index_prefix)
            .unwrap();
    if let Err(e) = index.ensure().await {
        if std::env::var("CHAT_OPENSEARCH").as_deref() == Ok("skip") {
            eprintln!("OpenSearch: not run (CHAT_OPENSEARCH=skip; {e})");
            return;
        }
        panic!(
            "OpenSearch at {} is needed: bash scripts/opensearch.sh: {e}",
            search.opensearch_url
        );
    }
    features(env, search).await;
    index.delete_all().await.unwrap();
}

async fn features(env: TestEnv, settings: search::SearchSettings) {
    let (server, api) = common::start_with(&env, settings).await;
    let alice = api.register(&format!("alice{}", unique())).await;
    let bob = api.register(&format!("bob{}", unique())).await;
    let general = format!("general-{}", unique());
    let room = api.create_room(&alice, &general, "public").await;
    api.join(&bob, room).await.assert_status(200);
    let other = api.create_room(&alice, "elsewhere", "private").await;

    send(&api, &alice, room, "The configuration is ready").await;
    send(
        &api,
        &bob,
        room,
        "see report.png at https://www.example.com/x",
    )
    .await;
    send(&api, &alice, room, "Meet at the Café").await;
    send(&api, &bob, room, "明天的会议取消了").await;
    let (_, at) = send(&api, &alice, other, "configuration of elsewhere").await;

    let conf = search(&api, &alice, &q("conf"), at).await;
    assert_eq!(
        bodies(&conf),
        set(&["The configuration is ready", "configuration of elsewhere"])
    );
    let hit = &conf.body["hits"][0];
    for field in [
        "message_id",
        "room_id",
        "seq",
        "sender_id",
        "sent_at",
        "body",
        "snippet",
        "score",
    ] {
        assert!(!hit[field].is_null(), "{field} in {hit}");
    }
    let marked: Vec<&Value> = hit["snippet"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["highlight"] == true)
        .collect();
    assert_eq!(marked.len(), 1, "{hit}");
    assert!(
        marked[0]["text"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("configuration")
    );

    assert_eq!(bodies(&search(&api, &bob, &q("png"), at).await).len(), 1);
    assert_eq!(
        bodies(&search(&api, &bob, &q("example"), at).await).len(),
        1
    );
    assert_eq!(
        bodies(&search(&api, &bob, &q("cafe"), at).await),
        set(&["Meet at the Café"])
    );
    assert_eq!(
        bodies(&search(&api, &bob, &q("会议"), at).await),
        set(&["明天的会议取消了"])
    );
    assert_eq!(
        bodies(&search(&api, &bob, &q("\"the café\""), at).await),
        set(&["Meet at the Café"])
    );
    // Filters: inline and as parameters.
    let in_general = search(&api, &alice, &q(&format!("configuration in:{general}")), at).await;
    assert_eq!(bodies(&in_general), set(&["The configuration is ready"]));
    let by_id = search(
        &api,
        &alice,
        &format!("{}&room_id={other}", q("configuration")),
        at,
    )
    .await;
    assert_eq!(bodies(&by_id), set(&["configuration of elsewhere"]));
    let from_bob = search(&api, &alice, &q(&format!("from:{}", bob.username)), at).await;
    assert_eq!(
        from_bob.assert_status(200)["hits"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let by_sender = search(
        &api,
        &alice,
        &format!("{}&sender_id={}", q("at"), bob.id),
        at,
    )
    .await;
    assert_eq!(bodies(&by_sender).len(), 1);
    let links = search(&api, &alice, &q("has:link"), at).await;
    assert_eq!(bodies(&links).len(), 1);
    let past = search(&api, &alice, &q("configuration before:2020-01-01"), at).await;
    assert_eq!(bodies(&past), set(&[]));
    let recent = search(&api, &alice, &q("configuration after:2020-01-01"), at).await;
    assert_eq!(bodies(&recent).len(), 2);

    server.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_current_members_find_a_rooms_messages_and_edits_and_deletes_show_at_once() {
    let env = TestEnv::new().await;
    let (server, api) = common::start(&env).await;
    let owner = api.register(&format!("owner{}", unique())).await;
    let member = api.register(&format!("member{}", unique())).await;
    let leaver = api.register(&format!("leaver{}", unique())).await;
    let kicked = api.register(&format!("kicked{}", unique())).await;
    let outsider = api.register(&format!("outsider{}", unique())).await;
    let public = api.create_room(&owner, "town", "public").await;
    let private = api.create_room(&owner, "council", "private").await;
    for u in [&member, &leaver, &kicked] {
        api.join(u, public).await.assert_status(200);
    }
    api.invite(&owner, private, &member)
        .await
        .assert_status(200);
    api.join(&member, private).await.assert_status(200);

    send(&api, &owner, public, "zeppelin landing at noon").await;
    let (_, at) = send(&api, &owner, private, "zeppelin budget is secret").await;
    let find = |user: &TestUser, at: i64| {
        let (api, user) = (&api, user.clone());
        async move { bodies(&search(api, &user, &q("zeppelin"), at).await) }
    };
    let both = set(&["zeppelin landing at noon", "zeppelin budget is secret"]);
    let town = set(&["zeppelin landing at noon"]);
    assert_eq!(find(&owner, at).await, both);
    assert_eq!(find(&member, at).await, both);
    assert_eq!(find(&leaver, at).await, town);
    assert_eq!(find(&kicked, at).await, town);
    assert_eq!(
        find(&outsider, at).await,
        set(&[]),
        "a non-member finds nothing"
    );

    let left = api
        .post_empty(&format!("/v1/rooms/{public}/leave"), &leaver.token)
        .await;
    left.assert_status(200);
    let kick = api.kick(&owner, public, kicked.id).await;
    kick.assert_status(200);
    let at = position(&kick).max(position(&left));
    assert_eq!(find(&leaver, at).await, set(&[]), "someone who left");
    assert_eq!(find(&kicked, at).await, set(&[]), "someone kicked");
    // Naming a room one is not in: the same answers as history gives.
    let res = search(
        &api,
        &outsider,
        &format!("q=zeppelin&room_id={private}"),
        at,
    )
    .await;
    res.assert_error(404, "room_not_found");
    let res = search(&api, &outsider, &format!("q=zeppelin&room_id={public}"), at).await;
    res.assert_error(403, "not_a_member");
    let res = search(&api, &outsider, &q("zeppelin in:council"), at).await;
    res.assert_error(400, "unknown_room");

    // Edits and deletes.
    let (edited, _) = send(&api, &owner, public, "draft wording").await;
    let (deleted, _) = send(&api, &owner, public, "doomed wording").await;
    let edit = api
        .request(
            Method::PATCH,
            &format!("/v1/rooms/{public}/messages/{edited}"),
            Some(&owner.token),
            Some(json!({ "body": "final phrasing" })),
            &[],
        )
        .await;
    edit.assert_status(200);
    let del = api
        .request(
            Method::DELETE,
            &format!("/v1/rooms/{public}/messages/{deleted}"),
            Some(&owner.token),
            None,
            &[],
        )
        .await;
    del.assert_status(200);
    let at = position(&del).max(position(&edit));
    assert_eq!(
        bodies(&search(&api, &member, &q("phrasing"), at).await),
        set(&["final phrasing"])
    );
    assert_eq!(
        bodies(&search(&api, &member, &q("draft"), at).await),
        set(&[])
    );
    assert_eq!(
        bodies(&search(&api, &member, &q("wording"), at).await),
        set(&[])
    );

    server.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_get_named_400s_and_pages_walk_every_hit_once() {
    let env = TestEnv::new().await;
    let (server, api) = common::start(&env).await;
    let alice = api.register(&format!("alice{}", unique())).await;
    let room = api.create_room(&alice, "pages", "private").await;
    let mut sent = HashSet::new();
    let mut at = 0;
    for i in 0..12 {
        let (id, p) = send(
            &api,
            &alice,
            room,
            &format!("needle number {i} {}", "hay ".repeat(i % 4)),
        )
        .await;
        sent.insert(id);
        at = p;
    }
    for sort in ["relevance", "recent"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = format!("q=needle&limit=5&sort={sort}");
            if let Some(c) = &cursor {
                query.push_str(&format!("&cursor={c}"));
            }
            let res = search(&api, &alice, &query, at).await;
            let body = res.assert_status(200);
            for h in body["hits"].as_array().unwrap() {
                seen.push(Uuid::parse_str(h["message_id"].as_str().unwrap()).unwrap());
            }
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let unique_seen: HashSet<Uuid> = seen.iter().copied().collect();
        assert_eq!(seen.len(), 12, "{sort}: every hit once");
        assert_eq!(unique_seen, sent, "{sort}");
    }

    for (query, status, code) in [
        ("q=hello%20foo:bar", 400, "unknown_operator"),
        ("q=before:2026-02-30", 400, "invalid_operator"),
        ("q=has:image", 400, "invalid_operator"),
        ("q=c*", 400, "invalid_prefix"),
        ("q=%22open", 400, "invalid_query"),
        ("q=%00", 400, "invalid_query"),
        ("q=", 400, "invalid_query"),
        ("", 400, "invalid_query"),
        ("q=x&cursor=garbage", 400, "invalid_cursor"),
        ("q=x&sort=best", 400, "invalid_query"),
        ("q=x&limit=many", 400, "invalid_query"),
        ("q=x&room_id=not-a-uuid", 400, "invalid_query"),
        (
            "q=x&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            400,
            "invalid_query",
        ),
        ("q=from:nobody-at-all", 400, "unknown_user"),
    ] {
        let res = search(&api, &alice, query, at).await;
        res.assert_error(status, code);
        if code == "unknown_operator" {
            assert!(
                res.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("foo:"),
                "{}",
                res.text
            );
        }
    }
    let long = "a".repeat(1001);
    search(&api, &alice, &q(&long), at)
        .await
        .assert_error(400, "query_too_long");
    // A cursor of one sort is refused by the other.
    let first = search(&api, &alice, "q=needle&limit=2&sort=recent", at).await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let res = search(
        &api,
        &alice,
        &format!("q=needle&sort=relevance&cursor={cursor}"),
        at,
    )
    .await;
    res.assert_error(400, "invalid_cursor");
    // limit is clamped to 100.
    let many = search(&api, &alice, "q=needle&limit=1000", at).await;
    assert_eq!(
        many.assert_status(200)["hits"].as_array().unwrap().len(),
        12
    );
    // Unauthenticated.
    let anon = api
        .request(Method::GET, "/v1/search/messages?q=needle", None, None, &[])
        .await;
    assert_eq!(anon.status, 401);

    server.stop().await;
    env.cleanup().await;
}

/// The nice value of each of this process's threads whose name starts with `prefix`
/// (`/proc/self/task/*/stat`: the name is field 2, the nice value field 19).
fn nice_of_threads(prefix: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let (open, close) = (stat.find('(').unwrap(), stat.rfind(')').unwrap());
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        // After the name: state (field 3) … nice (field 19).
        let nice = stat[close + 2..].split(' ').nth(16).unwrap();
        found.push(nice.parse().unwrap());
    }
    found
}

/// ADR 26: the projector and the search index's writer run on threads of their own at a lower
/// priority, the serving threads at the process's own, and the read side still follows the
/// writes (a message sent is found at once after its position).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_and_the_index_writer_yield_the_cores_to_serving() {
    let env = TestEnv::new().await;
    let (server, api) = common::start(&env).await;
    let ann = api.register(&format!("nice{}", unique())).await;
    let room = api.create_room(&ann, "yielding", "public").await;
    let (_, at) = send(&api, &ann, room, "backgrounded pelican").await;
    assert_eq!(
        bodies(&search(&api, &ann, &q("pelican"), at).await),
        set(&["backgrounded pelican"])
    );

    let want = platform::configuration::DEFAULT_BACKGROUND_NICE;
    let background = nice_of_threads("background");
    assert!(background.len() >= 2, "background workers: {background:?}");
    assert!(background.iter().all(|&n| n == want), "{background:?}");
    // Tantivy's threads were started from the background runtime, so they inherit its
    // priority: indexing, and the segment updater with its merges.
    for tantivy in ["thrd-tantivy-in", "segment_updater", "merge_thread_"] {
        let nice = nice_of_threads(tantivy);
        assert!(!nice.is_empty(), "no {tantivy} thread");
        assert!(nice.iter().all(|&n| n == want), "{tantivy}: {nice:?}");
    }
    // The serving threads (here the test's runtime) and the log's committer keep the
    // process's own priority.
    for serving in ["tokio-rt-worker", "group-commit"] {
        let nice = nice_of_threads(serving);
        assert!(!nice.is_empty(), "no {serving} thread");
        assert!(nice.iter().all(|&n| n == 0), "{serving}: {nice:?}");
    }
    server.stop().await;
    env.cleanup().await;
}
