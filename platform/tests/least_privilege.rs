//! `deploy/postgres/roles.sql` (#19: hardened defaults, ADR 17): each role connects to
//! PostgreSQL as its own login role, and the projector's and query-api's can read the event
//! log but never change it.
//!
//! The database starts empty, as an administrator gets it; `roles.sql` runs first, then the
//! three roles migrate and serve the whole path (a command, its projection, the live
//! feed, search, a rebuild), each as its role. Then every way of changing the log, and
//! reading the credentials, is tried as the projector's and query-api's roles: each
//! attempt fails with a permission error (SQLSTATE 42501).
#![allow(clippy::unwrap_used)]

mod common;

use sqlx::postgres::PgPoolOptions;
use test_support::{Api, Node, Running, TestEnv};

/// PostgreSQL's `insufficient_privilege`.
const PERMISSION_DENIED: &str = "42501";

/// The login roles' password (the shared server authenticates TCP connections).
const PASSWORD: &str = "least-privilege-test";

/// `url` with `user` (and [`PASSWORD`]) instead of its user.
fn as_user(url: &str, user: &str) -> String {
    let mut url = reqwest::Url::parse(url).unwrap();
    url.set_username(user).unwrap();
    url.set_password(Some(PASSWORD)).unwrap();
    url.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_roles_cannot_change_the_log() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .try_init();
    let env = TestEnv::with_empty_database().await;
    let db = env.db.name.clone();
    let roles = [
        format!("{db}_command"),
        format!("{db}_projector"),
        format!("{db}_query"),
        format!("{db}_log_reader"),
    ];
    sqlx::raw_sql(sqlx::AssertSqlSafe(include_str!(
        "../../deploy/postgres/roles.sql"
    )))
    .execute(&env.db.pool)
    .await
    .unwrap();
    for role in &roles[..3] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER ROLE \"{role}\" PASSWORD '{PASSWORD}'"
        )))
        .execute(&env.db.pool)
        .await
        .unwrap();
    }
    // Again: nothing changes, nothing fails.
    sqlx::raw_sql(sqlx::AssertSqlSafe(include_str!(
        "../../deploy/postgres/roles.sql"
    )))
    .execute(&env.db.pool)
    .await
    .unwrap();

    let mut command = env.command_settings();
    command.service.database_url = as_user(&env.db.url, &roles[0]).as_str().into();
    let mut projector = common::projector_settings(&env, env.search_settings());
    projector.service.database_url = as_user(&env.db.url, &roles[1]).as_str().into();
    let mut query = env.query_settings();
    query.service.database_url = as_user(&env.db.url, &roles[2]).as_str().into();

    // command-api first: it creates the log (ADR 3), then the others.
    let command = Node::command(command).await;
    let running = projector::startup::build(projector.clone(), &[])
        .await
        .unwrap();
    let running = Running::spawn(|stop| running.run(stop));
    let query = Node::query(query).await;
    let http = reqwest::Client::new();
    let writes = Api::new(http.clone(), command.base());
    let reads = Api::new(http, query.base());
    common::the_whole_path_works(&writes, &reads, query.addr).await;

    // A rebuild (new read models built beside the live ones, then swapped) as the
    // projector's role, while query-api keeps reading.
    running.stop().await;
    projector::startup::rebuild(&projector, &[], &|_| {})
        .await
        .unwrap();
    let running = projector::startup::build(projector.clone(), &[])
        .await
        .unwrap();
    let running = Running::spawn(|stop| running.run(stop));
    common::the_whole_path_works(&writes, &reads, query.addr).await;

    // command-api's retention job reads the read models (rebuilt above), never changes them.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&as_user(&env.db.url, &roles[0]))
        .await
        .unwrap();
    let messages: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rm_messages JOIN rm_rooms USING (room_id) WHERE expired_up_to = 0",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(messages > 0, "command-api reads the read models");
    for attempt in [
        "DELETE FROM rm_messages",
        "UPDATE rm_rooms SET expired_up_to = 1",
    ] {
        let refused = sqlx::query(attempt).execute(&pool).await.unwrap_err();
        let code = refused.as_database_error().and_then(|e| e.code());
        assert_eq!(
            code.as_deref(),
            Some(PERMISSION_DENIED),
            "command: {attempt}"
        );
    }
    pool.close().await;

    for role in &roles[1..3] {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&as_user(&env.db.url, role))
            .await
            .unwrap();
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(events > 0, "{role} reads the log");
        // And the data keys, to open the log's personal values (ADR 23); never to change them.
        let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM data_keys")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(keys > 0, "{role} reads the data keys");
        for attempt in [
            "UPDATE events SET data = '{}'::jsonb",
            "DELETE FROM events",
            "INSERT INTO events SELECT * FROM events LIMIT 1",
            "TRUNCATE events",
            "UPDATE log_head SET position = position + 1",
            "DELETE FROM log_identity",
            "DROP TABLE events",
            "ALTER TABLE events DISABLE TRIGGER ALL",
            "SELECT * FROM credentials",
            "SELECT * FROM refresh_tokens",
            "DELETE FROM data_keys",
            "INSERT INTO data_keys SELECT * FROM data_keys LIMIT 1",
            "UPDATE data_keys SET key = key",
            "INSERT INTO erased_users VALUES (gen_random_uuid(), gen_random_uuid(), now())",
        ] {
            let refused = sqlx::query(attempt).execute(&pool).await.unwrap_err();
            let code = refused
                .as_database_error()
                .and_then(|e| e.code())
                .map(|c| c.into_owned());
            // DROP and ALTER of a table one does not own: "must be owner" (42501 too).
            assert_eq!(
                code.as_deref(),
                Some(PERMISSION_DENIED),
                "{role}: {attempt}: {refused}"
            );
        }
        pool.close().await;
    }
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&env.db.pool)
        .await
        .unwrap();
    assert!(after > 0);

    running.stop().await;
    query.stop().await;
    command.stop().await;
    // The roles go with the database: what they own and their grants first, one role at
    // a time (PostgreSQL 15 fails to drop a default ACL that names two of them at once).
    for role in &roles {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "REASSIGN OWNED BY \"{role}\" TO CURRENT_USER; DROP OWNED BY \"{role}\""
        )))
        .execute(&env.db.pool)
        .await
        .unwrap();
    }
    env.cleanup().await;
    for role in &roles {
        // Sessions of the stopped roles may take a moment to end; a role left behind
        // (unique to this test's database) is harmless.
        let _ = common::as_server_admin(format!("DROP ROLE IF EXISTS \"{role}\"")).await;
    }
}
