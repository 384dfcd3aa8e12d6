//! Roles started in any order (#19, separate roles): a projector and a query-api started
//! before their database exists wait for it, logging why, instead of exiting; once
//! command-api has created the database and the log, they serve the whole path.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use test_support::{Api, Node, Running, TestEnv, unique};

/// How long the database stays missing (the fault itself, not a wait for something).
const MISSING_FOR: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_roles_wait_for_a_database_created_after_them() {
    let env = TestEnv::new().await;
    let name = format!("later_{}", unique());
    let mut url = reqwest::Url::parse(&env.db.url).unwrap();
    url.set_path(&format!("/{name}"));
    let url = url.to_string();

    let mut projector = common::projector_settings(&env, env.search_settings());
    projector.service.database_url = url.as_str().into();
    let mut query = env.query_settings();
    query.service.database_url = url.as_str().into();
    let projector = tokio::spawn(projector::startup::build(projector, &[]));
    let query = tokio::spawn(query_api::startup::build(query));

    tokio::time::sleep(MISSING_FOR).await;
    assert!(
        !projector.is_finished(),
        "the projector gave up: {:?}",
        projector.await.map(|r| r.map(|_| ()))
    );
    assert!(
        !query.is_finished(),
        "query-api gave up: {:?}",
        query.await.map(|r| r.map(|_| ()))
    );

    // command-api creates the database and the log.
    let mut command = env.command_settings();
    command.service.database_url = url.as_str().into();
    command.create_database = true;
    let command = Node::command(command).await;
    let within = Duration::from_secs(30);
    let projector = tokio::time::timeout(within, projector)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let projector = Running::spawn(|stop| projector.run(stop));
    let query = Node::start(
        tokio::time::timeout(within, query)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
    );

    let http = reqwest::Client::new();
    common::the_whole_path_works(
        &Api::new(http.clone(), command.base()),
        &Api::new(http, query.base()),
        query.addr,
    )
    .await;

    projector.stop().await;
    query.stop().await;
    command.stop().await;
    common::as_server_admin(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    env.cleanup().await;
}
