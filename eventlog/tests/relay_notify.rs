#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{assert_stream_equals_log, request, wait_for_stream};
use eventlog::testing::{TestDb, TestNats};
use eventlog::{EventStore, ExpectedVersion, GroupCommitConfig, PgEventStore, Relay};

#[tokio::test]
async fn the_relay_wakes_on_notify_and_publishes_within_two_seconds_despite_a_sixty_second_poll() {
    let db = TestDb::new().await.unwrap();
    let nats = TestNats::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    let mut config = nats.relay_config();
    config.poll_interval = Duration::from_secs(60);

    store
        .append(request("r", ExpectedVersion::Any, 1))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = Relay::new(db.pool.clone(), nats.client.clone(), config);
    let task = tokio::spawn(relay.run(async move {
        let _ = stopped.await;
    }));
    // The first round runs at start-up.
    assert!(wait_for_stream(&nats.client, &nats.stream_name, 1, Duration::from_secs(10)).await);

    for round in 2..=4u64 {
        let t0 = Instant::now();
        store
            .append(request("r", ExpectedVersion::Any, 1))
            .await
            .unwrap();
        assert!(
            wait_for_stream(
                &nats.client,
                &nats.stream_name,
                round,
                Duration::from_secs(2)
            )
            .await,
            "append {round} not published within 2 s"
        );
        eprintln!("append {round} published after {:?}", t0.elapsed());
    }
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_stream_equals_log(&nats.client, &nats.stream_name, &nats.prefix, &db.pool).await;
    nats.cleanup().await;
}

#[tokio::test]
async fn only_one_relay_is_active_per_lock_key() {
    let db = TestDb::new().await.unwrap();
    let nats = TestNats::new().await.unwrap();
    let store = PgEventStore::new(db.pool.clone(), GroupCommitConfig::default());
    let config = nats.relay_config();

    // Hold the lock as if another replica were active.
    let mut holder = sqlx::PgConnection::connect_with_opts(&db.pool).await;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(config.lock_key)
        .fetch_one(&mut holder)
        .await
        .unwrap();
    assert!(locked);

    store
        .append(request("r", ExpectedVersion::Any, 3))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = Relay::new(db.pool.clone(), nats.client.clone(), config);
    let task = tokio::spawn(relay.run(async move {
        let _ = stopped.await;
    }));
    // Standing by: nothing is published while the other holds the lock.
    assert!(
        !wait_for_stream(
            &nats.client,
            &nats.stream_name,
            1,
            Duration::from_millis(1500)
        )
        .await
    );
    // The active one goes away: the stand-by takes over within about a second.
    use sqlx::Connection;
    holder.close().await.unwrap();
    assert!(wait_for_stream(&nats.client, &nats.stream_name, 3, Duration::from_secs(5)).await);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    nats.cleanup().await;
}

trait ConnectWithOpts {
    async fn connect_with_opts(pool: &sqlx::PgPool) -> sqlx::PgConnection;
}

impl ConnectWithOpts for sqlx::PgConnection {
    async fn connect_with_opts(pool: &sqlx::PgPool) -> sqlx::PgConnection {
        use sqlx::Connection;
        sqlx::PgConnection::connect_with(&pool.connect_options())
            .await
            .unwrap()
    }
}
