//! The single-node platform started for a test: every role on one port over `env`'s
//! database and stream.

use http_kit::settings::Layered as _;
use platform::Settings;
use test_support::{Api, Running, TestEnv};

/// Builds and runs the platform on port 0; returns it running and a client for it.
#[allow(dead_code)] // not every test binary uses it
pub async fn start(env: &TestEnv) -> (Running, Api) {
    start_with(env, env.search_settings()).await
}

/// [`start`] with these search settings (another backend).
#[allow(dead_code)] // not every test binary uses it
pub async fn start_with(env: &TestEnv, search: search::SearchSettings) -> (Running, Api) {
    let projector = projector_settings(env, search.clone());
    let mut query = env.query_settings();
    query.search = search;
    let platform = platform::build(Settings {
        listen: "127.0.0.1:0".into(),
        background_nice: platform::configuration::DEFAULT_BACKGROUND_NICE,
        command: env.command_settings(),
        query,
        projector,
    })
    .await
    .unwrap();
    let addr = platform.local_addr().unwrap();
    let server = Running::spawn(|stop| platform.run(stop));
    (
        server,
        Api::new(reqwest::Client::new(), format!("http://{addr}")),
    )
}

/// The projector's settings of the platform [`start_with`] starts: what `chat rebuild` uses.
pub fn projector_settings(
    env: &TestEnv,
    search: search::SearchSettings,
) -> projector::configuration::Settings {
    let mut projector = projector::configuration::Settings::from_defaults().unwrap();
    projector.service.database_url = env.db.url.as_str().into();
    projector.service.nats_url = eventlog::testing::nats_url().into();
    projector.service.stream_name = env.nats.stream_name.clone();
    projector.service.subject_prefix = env.nats.prefix.clone();
    projector.search = search;
    projector
}

/// A PostgreSQL of the test's own (to stop and start again), or `None` after saying loudly
/// why the test is skipped: only when PostgreSQL's server binaries are not installed.
#[allow(dead_code)] // not every test binary uses it
pub async fn owned_postgres(test: &str) -> Option<test_support::OwnedPostgres> {
    match test_support::OwnedPostgres::start_new().await.unwrap() {
        Some(pg) => Some(pg),
        None => {
            eprintln!(
                "\n!!!! SKIPPED {test}: no PostgreSQL server binaries (initdb, pg_ctl) found \
                 through `pg_config --bindir` or /usr/lib/postgresql/*/bin; \
                 scripts/services.sh installs them !!!!\n"
            );
            None
        }
    }
}

/// Two people, alice and bob, in a new public room of alice's.
#[allow(dead_code)] // not every test binary uses it
pub async fn two_in_a_room(
    api: &Api,
) -> (test_support::TestUser, test_support::TestUser, uuid::Uuid) {
    let alice = api
        .register(&format!("alice_{}", test_support::unique()))
        .await;
    let bob = api
        .register(&format!("bob_{}", test_support::unique()))
        .await;
    let room = api
        .create_room(&alice, &format!("r{}", test_support::unique()), "public")
        .await;
    api.join(&bob, room).await.assert_status(200);
    (alice, bob, room)
}

/// A message sent through `writes` is live on a socket of `reads` and in its history,
/// and typing reaches the other member from both sides.
#[allow(dead_code)] // not every test binary uses it
pub async fn the_whole_path_works(
    writes: &test_support::Api,
    reads: &test_support::Api,
    addr: std::net::SocketAddr,
) {
    let (alice, bob, room) = two_in_a_room(writes).await;
    let mut alice_ws = test_support::Client::connect(addr, &alice.token).await;
    let mut bob_ws = test_support::Client::connect(addr, &bob.token).await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        let answer = ws.subscribe(room, None).await;
        assert_eq!(answer.last().unwrap()["type"], "subscribed", "{answer:?}");
    }

    let sent = writes.send_message(&alice, room, "least privilege").await;
    let position = sent.assert_status(201)["position"].as_i64().unwrap();
    bob_ws
        .until(|f| test_support::is_message(f, "least privilege"))
        .await;
    let history = reads
        .get(
            &format!("/v1/rooms/{room}/messages?min_position={position}"),
            &bob.token,
        )
        .await;
    assert_eq!(
        history.assert_status(200)["messages"][0]["body"],
        "least privilege"
    );

    // Reads of every kind: rooms with unread counts, members, presence, search.
    for path in [
        format!("/v1/rooms?min_position={position}"),
        format!("/v1/rooms/{room}/members"),
        format!("/v1/presence?user_id={}", alice.id),
        format!("/v1/search/messages?q=privilege&min_position={position}"),
    ] {
        let res = reads.get(&path, &bob.token).await;
        assert_eq!(res.status, 200, "{path}: {}", res.text);
        if path.contains("search") {
            assert!(res.text.contains("least privilege"), "{path}: {}", res.text);
        }
    }

    // Typing through command-api, and from a socket through query-api.
    writes
        .post_empty(&format!("/v1/rooms/{room}/typing"), &alice.token)
        .await
        .assert_status(202);
    bob_ws.until(|f| f["type"] == "typing").await;
    bob_ws
        .send(serde_json::json!({ "type": "typing", "room_id": room }))
        .await;
    alice_ws
        .until(|f| f["type"] == "typing" && f["user_id"] == bob.id.to_string())
        .await;
}

/// Runs `sql` as the administrator of the shared server (not in a test's database).
#[allow(dead_code)] // not every test binary uses it
pub async fn as_server_admin(sql: String) -> Result<(), sqlx::Error> {
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&eventlog::testing::admin_database_url())
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(())
}
