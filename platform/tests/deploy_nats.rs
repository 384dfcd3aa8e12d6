//! `deploy/nats/nats.conf` (#19: hardened defaults): each role logs in as its own NATS user,
//! and the permissions the file gives are exactly enough.
//!
//! - The three roles, each with its user, serve the whole path: a command relayed to the
//!   stream, projected and readable with `min_position`, live on a socket, typing from the
//!   command side and from a socket; the single-node binary the same with its `chat` user.
//!   The server logs no permissions violation meanwhile.
//! - Nothing else is allowed: the read roles cannot publish to the event subjects or
//!   delete the stream, and a client without a user, or with a wrong password, cannot
//!   connect at all.
//!
//! The test owns its nats-server (`test_support::OwnedNats`), started with the file itself.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use test_support::{Api, Node, OwnedNats, Running, TestEnv};

const PASSWORDS: [(&str, &str); 4] = [
    ("NATS_COMMAND_API_PASSWORD", "command-api-secret"),
    ("NATS_PROJECTOR_PASSWORD", "projector-secret"),
    ("NATS_QUERY_API_PASSWORD", "query-api-secret"),
    ("NATS_CHAT_PASSWORD", "chat-secret"),
];

/// The file names the roles' default stream and subject prefix.
const STREAM: &str = "CHAT_EVENTS";
const PREFIX: &str = "chat";

/// Long enough for a JetStream request that will never be answered.
const REFUSED_WITHIN: Duration = Duration::from_secs(2);

fn conf() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats/nats.conf")
}

async fn nats() -> Option<OwnedNats> {
    let nats = OwnedNats::start_with_config(&conf(), &PASSWORDS)
        .await
        .unwrap();
    if nats.is_none() {
        eprintln!(
            "\n!!!! SKIPPED deploy_nats: no nats-server binary (NATS_SERVER, PATH, \
             /usr/sbin/nats-server); scripts/services.sh installs it !!!!\n"
        );
    }
    nats
}

fn url(nats: &OwnedNats, user: &str) -> String {
    let password = match user {
        "command-api" => PASSWORDS[0].1,
        "projector" => PASSWORDS[1].1,
        "query-api" => PASSWORDS[2].1,
        _ => PASSWORDS[3].1,
    };
    format!("nats://{user}:{password}@127.0.0.1:{}", nats.port())
}

/// Asserts that the server refused `who` nothing so far.
fn assert_no_violation(nats: &OwnedNats, who: &str) {
    let log = nats.log();
    assert!(
        !log.contains("Violation"),
        "{who} was refused a subject:\n{log}"
    );
}

fn point(s: &mut http_kit::settings::ServiceSettings, url: String) {
    s.nats_url = url.as_str().into();
    s.stream_name = STREAM.into();
    s.subject_prefix = PREFIX.into();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_works_with_its_own_nats_user() {
    let Some(nats) = nats().await else {
        return;
    };
    let env = TestEnv::new().await;
    let mut command = env.command_settings();
    point(&mut command.service, url(&nats, "command-api"));
    let mut query = env.query_settings();
    point(&mut query.service, url(&nats, "query-api"));
    let mut projector = common::projector_settings(&env, env.search_settings());
    point(&mut projector.service, url(&nats, "projector"));

    let command = Node::command(command).await;
    let query = Node::query(query).await;
    let projector = projector::startup::build(projector, &[]).await.unwrap();
    let projector = Running::spawn(|stop| projector.run(stop));
    let http = reqwest::Client::new();
    let writes = Api::new(http.clone(), command.base());
    let reads = Api::new(http, query.base());

    common::the_whole_path_works(&writes, &reads, query.addr).await;
    assert_no_violation(&nats, "a role");

    projector.stop().await;
    query.stop().await;
    command.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_single_node_works_with_its_nats_user() {
    let Some(nats) = nats().await else {
        return;
    };
    let env = TestEnv::new().await;
    let mut settings = platform::Settings {
        listen: "127.0.0.1:0".into(),
        background_nice: platform::configuration::DEFAULT_BACKGROUND_NICE,
        command: env.command_settings(),
        query: env.query_settings(),
        projector: common::projector_settings(&env, env.search_settings()),
    };
    point(&mut settings.command.service, url(&nats, "chat"));
    point(&mut settings.query.service, url(&nats, "chat"));
    point(&mut settings.projector.service, url(&nats, "chat"));
    let platform = platform::build(settings).await.unwrap();
    let addr = platform.local_addr().unwrap();
    let server = Running::spawn(|stop| platform.run(stop));
    let api = Api::new(reqwest::Client::new(), format!("http://{addr}"));

    common::the_whole_path_works(&api, &api, addr).await;
    assert_no_violation(&nats, "the single node");

    server.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_command_api_can_write_the_stream_and_nobody_connects_without_a_user() {
    let Some(nats) = nats().await else {
        return;
    };
    // The stream as command-api's relay creates it, with one event.
    let writer = http_kit::nats::connect(&url(&nats, "command-api"))
        .await
        .unwrap();
    let writer_js = async_nats::jetstream::new(writer);
    writer_js
        .create_stream(async_nats::jetstream::stream::Config {
            name: STREAM.into(),
            subjects: vec![format!("{PREFIX}.events.>")],
            ..Default::default()
        })
        .await
        .unwrap();
    let subject = format!("{PREFIX}.events.room.{}", uuid::Uuid::new_v4());
    writer_js
        .publish(subject.clone(), "by the relay".into())
        .await
        .unwrap()
        .await
        .unwrap();

    for user in ["projector", "query-api"] {
        let client = http_kit::nats::connect(&url(&nats, user)).await.unwrap();
        let mut js = async_nats::jetstream::new(client);
        js.set_timeout(REFUSED_WITHIN);
        // Each refused request waits out its time-out: the server drops it.
        let published = match js.publish(subject.clone(), "forged".into()).await {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        assert!(!published, "{user} published to the event subjects");
        assert!(
            js.delete_stream(STREAM).await.is_err(),
            "{user} deleted the stream"
        );
        // What a read role may do: read the stream.
        let mut stream = js.get_stream(STREAM).await.unwrap();
        assert_eq!(stream.info().await.unwrap().state.messages, 1, "{user}");
    }
    test_support::wait_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        "the server to log the refusals",
        || {
            let log = nats.log();
            async move {
                ["projector", "query-api"].iter().all(|user| {
                    log.lines().any(|l| {
                        l.contains("Publish Violation")
                            && l.contains(&format!("user:{user}\""))
                            && l.contains(&format!("{PREFIX}.events.room."))
                    })
                })
            }
        },
    )
    .await;

    // No user, or the wrong password: no connection.
    let anonymous = format!("nats://127.0.0.1:{}", nats.port());
    let wrong = format!("nats://command-api:guess@127.0.0.1:{}", nats.port());
    for refused in [anonymous, wrong] {
        let connected = tokio::time::timeout(
            Duration::from_secs(10),
            http_kit::nats::options(&refused).connect(refused.as_str()),
        )
        .await;
        assert!(
            matches!(connected, Ok(Err(_))),
            "{refused}: connected, or no answer"
        );
    }
}
