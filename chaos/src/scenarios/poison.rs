//! R7: poison events in the log — a payload of the wrong shape and a schema version no
//! code knows — appended amid the load to a room stream of their own. Each goes to the
//! dead letters with its reason, the read models' lag returns to 0, and every other room's
//! read models still equal the oracle.

use std::time::Duration;

use eventlog::{AppendRequest, EventStore, ExpectedVersion, GroupCommitConfig, NewEvent};
use serde_json::json;
use uuid::Uuid;

use super::{Run, Tier};
use crate::cluster::Shape;
use crate::load::Plan;
use crate::report::{Report, secs};

pub async fn poison_events(tier: Tier, seed: u64) -> anyhow::Result<Report> {
    let each = tier.pick(3, 10);
    let plan = Plan {
        writers: 4,
        pace: Duration::from_millis(2),
        seed,
        pad: 0,
    };
    let mut run = Run::start(
        "R7 poison events",
        "each poison event a dead letter; lag back to 0; every other room equal to the oracle",
        // Access tokens that expire within the scenario: the writers refresh them, as
        // clients do (a soak outlives the default 15 minutes).
        &Shape {
            access_ttl_secs: 2,
            ..Shape::default()
        },
        6,
        4,
        plan,
    )
    .await?;
    let store = eventlog::PgEventStore::new(run.cluster.pool.clone(), GroupCommitConfig::default());
    let room = Uuid::new_v4();
    let mut appended = 0;
    for i in 0..each {
        run.load.wait_for_more(50, Duration::from_secs(60)).await?;
        let poison = [
            ("MessageSent", 1, json!({ "nonsense": i })),
            ("MessageSent", 99, json!({ "from_the_future": i })),
        ];
        for (event_type, schema_version, data) in poison {
            store
                .append(AppendRequest {
                    stream_id: format!("room-{room}"),
                    stream_type: "room".into(),
                    expected: ExpectedVersion::Any,
                    events: vec![NewEvent {
                        event_id: Uuid::now_v7(),
                        event_type: event_type.into(),
                        schema_version,
                        data,
                        occurred_at: chrono::Utc::now(),
                        actor_id: None,
                        correlation_id: Uuid::now_v7(),
                        causation_id: None,
                    }],
                    idempotency: Vec::new(),
                })
                .await?;
            appended += 1;
        }
    }
    let head = run.cluster.head().await?;
    let caught = run.caught_up(head, Duration::from_secs(60)).await?;
    let reasons: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT left(reason, 80) FROM dead_letters ORDER BY 1")
            .fetch_all(&run.cluster.pool)
            .await?;
    // Keep the load going until the writers' tokens have expired (and been refreshed).
    let expired = || {
        run.load
            .shared
            .attempts
            .lock()
            .map_or(0, |a| a.iter().filter(|x| x.status == 401).count())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while expired() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    run.load.wait_for_more(50, Duration::from_secs(30)).await?;
    let refreshes = expired();
    let r = &mut run.report;
    r.figure("poison events appended", appended);
    r.figure("access tokens expired and refreshed meanwhile", refreshes);
    r.expect(refreshes > 0, || {
        "no access token expired: the refresh path went untested".into()
    });
    r.figure("read models caught up past them", secs(caught));
    r.figure("dead-letter reasons", reasons.join(" | "));
    run.finish(appended).await
}
