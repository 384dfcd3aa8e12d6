//! The command line, the health/readiness/metrics endpoints ([`ops`]) and the
//! [`Application`] that runs the projections beside them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use futures::future::{BoxFuture, FutureExt as _};
use http_kit::health::{self, Readiness};
use http_kit::metrics::Scrape;
use http_kit::serve::Server;
use http_kit::service::{self, Ops};

use sqlx::PgPool;

use crate::configuration::Settings;
use crate::projection::Projection;
use crate::{Metrics, Projector, REBUILD_BATCH, SearchIndex};

/// What the `projector` binary was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `projector [run] [--projection NAME]...`: run these projections (all when empty).
    Run { projections: Vec<String> },
    /// `projector rebuild --all | NAME...`: empty and replay these (all when empty).
    Rebuild { projections: Vec<String> },
}

/// The usage line of the `projector` binary.
pub const USAGE: &str =
    "usage: projector [run] [--projection NAME]... | projector rebuild (--all | NAME...)";

impl Command {
    /// Parses the arguments after the program name.
    pub fn parse(args: &[String]) -> anyhow::Result<Command> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["rebuild", "--all"] => Ok(Command::Rebuild {
                projections: vec![],
            }),
            ["rebuild", names @ ..]
                if !names.is_empty() && !names.iter().any(|n| n.starts_with("--")) =>
            {
                Ok(Command::Rebuild {
                    projections: names.iter().map(|n| (*n).to_owned()).collect(),
                })
            }
            ["run", rest @ ..] | rest => {
                let mut projections = Vec::new();
                let mut rest = rest.iter();
                while let Some(arg) = rest.next() {
                    match (*arg, rest.next()) {
                        ("--projection", Some(name)) => projections.push((*name).to_owned()),
                        _ => anyhow::bail!(USAGE),
                    }
                }
                Ok(Command::Run { projections })
            }
        }
    }
}

/// Rebuilds the named projections (all registered ones when `names` is empty) one after the
/// other, blue/green ([`crate::framework::rebuild`]): each keeps serving until its copy is
/// switched in. `progress` hears about every batch; returns one line per projection for the
/// operator.
pub async fn rebuild(
    settings: &Settings,
    names: &[String],
    progress: &(dyn Fn(&crate::framework::Progress) + Sync),
) -> anyhow::Result<Vec<String>> {
    let (pool, log, projections) = prepare(settings, names).await?;
    let mut lines = Vec::new();
    for projection in projections {
        let done =
            crate::framework::rebuild(&*projection, &pool, &log, REBUILD_BATCH, progress).await?;
        let secs = done.elapsed.as_secs_f64();
        lines.push(format!(
            "rebuilt {}: {} events in {secs:.2} s ({:.0} events/s); epoch {}, checkpoint {}",
            projection.name(),
            done.events,
            done.events as f64 / secs.max(1e-9),
            done.switched.epoch,
            done.switched.checkpoint,
        ));
    }
    Ok(lines)
}

/// What the projector's endpoints report on: the projections this process runs, their
/// metrics, and the NATS client and stream their lag is measured against.
#[derive(Clone)]
pub struct AppState {
    /// The projector's database: `projection_checkpoints`, `projection_rebuilds`.
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub stream_name: String,
    pub metrics: Metrics,
    /// The projections this process runs.
    pub projections: Vec<Arc<dyn Projection>>,
}

/// A readiness check: every one of `projections` reads its checkpoint from its store; the
/// checkpoints, by projection name, are the check's detail.
pub fn checkpoints(
    projections: Vec<Arc<dyn Projection>>,
) -> impl Fn() -> BoxFuture<'static, anyhow::Result<BTreeMap<String, i64>>> + Send + Sync + 'static
{
    move || {
        let projections = projections.clone();
        async move {
            let mut out = BTreeMap::new();
            for p in &projections {
                let cp = p.checkpoint().await.with_context(|| p.name().to_owned())?;
                out.insert(p.name().to_owned(), cp);
            }
            Ok(out)
        }
        .boxed()
    }
}

/// `/metrics`: the projector's registry, with each projection's checkpoint and lag behind
/// the stream sampled before every scrape.
pub fn scrape(state: &AppState) -> Scrape {
    let st = state.clone();
    Scrape::new(state.metrics.registry.clone()).sample(move || {
        let st = st.clone();
        async move {
            let js = async_nats::jetstream::new(st.nats.clone());
            for p in &st.projections {
                let name = p.name();
                // The counters of every projection exist (at 0) before their first event, so
                // rates and the dead-letter alert have a series to evaluate.
                let m = &st.metrics;
                for counter in [&m.applied, &m.dead_letters, &m.gap_events, &m.duplicates] {
                    counter.with_label_values(&[name]);
                }
                let Ok(cp) = p.checkpoint().await else {
                    continue;
                };
                if let Ok(lag) = crate::lag(&js, &st.stream_name, cp).await {
                    st.metrics.lag.with_label_values(&[name]).set(lag);
                }
                st.metrics.checkpoint.with_label_values(&[name]).set(cp);
            }
            if let Err(e) = sample_rebuilds(&st).await {
                tracing::debug!(error = %e, "rebuild progress not sampled");
            }
        }
    })
}

/// The rebuilds' progress (`projection_rebuilds`) and the epochs, as gauges.
async fn sample_rebuilds(st: &AppState) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, f64, f64, bool)> = sqlx::query_as(
        "SELECT projection, CASE WHEN head > 0 THEN least(position::float8 / head, 1) \
         ELSE 1 END, events_per_second, \
         phase NOT IN ('done', 'failed') AND updated_at > now() - interval '1 minute' \
         FROM projection_rebuilds",
    )
    .fetch_all(&st.pool)
    .await?;
    for (projection, progress, rate, running) in rows {
        let m = &st.metrics;
        m.rebuild_progress
            .with_label_values(&[&projection])
            .set(progress);
        m.rebuild_rate.with_label_values(&[&projection]).set(rate);
        m.rebuild_running
            .with_label_values(&[&projection])
            .set(i64::from(running));
    }
    let epochs: Vec<(String, i64)> =
        sqlx::query_as("SELECT projection, epoch FROM projection_checkpoints")
            .fetch_all(&st.pool)
            .await?;
    for (projection, epoch) in epochs {
        st.metrics
            .epoch
            .with_label_values(&[&projection])
            .set(epoch);
    }
    Ok(())
}

/// Health; readiness (every projection's store answers, with its checkpoint as detail, and
/// NATS is connected: both gate it); metrics ([`scrape`]).
pub fn ops(state: &AppState) -> Ops {
    let readiness = Readiness::new()
        .require("postgres", checkpoints(state.projections.clone()))
        .require("nats", health::nats(Some(state.nats.clone())));
    Ops::new(readiness, scrape(state))
}

/// A runner for each of `projections`, configured by `settings`, recording into `metrics`;
/// `pool` is the projector's database (dead letters), `log` the event log.
pub fn runners(
    projections: &[Arc<dyn Projection>],
    settings: &Settings,
    pool: &PgPool,
    log: &PgPool,
    nats: &async_nats::Client,
    metrics: &Metrics,
) -> Vec<Projector> {
    projections
        .iter()
        .map(|p| {
            Projector::new(
                p.clone(),
                pool.clone(),
                log.clone(),
                nats.clone(),
                settings.projector_config(p.name()),
            )
            .with_metrics(metrics.clone())
        })
        .collect()
}

/// How long the runners get to finish their batch once serving has ended.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// The projector process, built: a runner per projection (a [`Server::task`]) and the
/// health and metrics endpoints. Nothing runs until [`Application::run`], which serves until
/// its shutdown future resolves, then stops the runners.
pub type Application = http_kit::serve::Application<AppState>;

/// Connects, migrates the read models, picks the registered projections named in `names`
/// (all when empty), binds.
pub async fn build(settings: Settings, names: &[String]) -> anyhow::Result<Application> {
    let (pool, log, projections) = prepare(&settings, names).await?;
    with_projections(settings, pool, log, projections).await
}

/// Connects the databases (the projector's, the log's), picks the registered projections
/// named in `names` (all when empty) and migrates the read models.
async fn prepare(
    settings: &Settings,
    names: &[String],
) -> anyhow::Result<(PgPool, PgPool, Vec<Arc<dyn Projection>>)> {
    let (pool, log) = settings.connect_databases().await?;
    let search = SearchIndex::from_settings(settings.search.clone());
    let projections = crate::select(crate::registry(&pool, search), names)?;
    crate::migrate(&pool)
        .await
        .context("read-model migrations")?;
    Ok((pool, log, projections))
}

/// Runs exactly `projections` (the tests add their own to the registered ones); `pool` is
/// the projector's database (dead letters), `log` the event log.
pub async fn with_projections(
    settings: Settings,
    pool: PgPool,
    log: PgPool,
    projections: Vec<Arc<dyn Projection>>,
) -> anyhow::Result<Application> {
    let nats = http_kit::nats::connect(settings.service.nats_url.expose_secret())
        .await
        .context("connecting to NATS")?;
    let metrics = Metrics::new()?;
    let runners = runners(&projections, &settings, &pool, &log, &nats, &metrics);
    let state = AppState {
        pool: pool.clone(),
        nats,
        stream_name: settings.service.stream_name.clone(),
        metrics,
        projections,
    };
    let server = Server::bind(
        &settings.service.listen,
        service::router(ops(&state), Router::new()),
    )
    .await?
    .task("projector", |stop| crate::run_all(runners, stop))
    .stop_grace(STOP_GRACE);
    Ok(Application::new(server, state))
}

#[cfg(test)]
mod tests {
    use super::Command;

    fn parse(args: &[&str]) -> anyhow::Result<Command> {
        Command::parse(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn the_command_line_selects_projections_to_run_or_rebuild() {
        let all = Command::Run {
            projections: vec![],
        };
        assert_eq!(parse(&[]).ok(), Some(all.clone()));
        assert_eq!(parse(&["run"]).ok(), Some(all));
        assert_eq!(
            parse(&["run", "--projection", "a", "--projection", "b"]).ok(),
            Some(Command::Run {
                projections: names(&["a", "b"])
            })
        );
        assert_eq!(
            parse(&["--projection", "a"]).ok(),
            Some(Command::Run {
                projections: names(&["a"])
            })
        );
        assert_eq!(
            parse(&["rebuild", "--all"]).ok(),
            Some(Command::Rebuild {
                projections: vec![]
            })
        );
        assert_eq!(
            parse(&["rebuild", "a", "b"]).ok(),
            Some(Command::Rebuild {
                projections: names(&["a", "b"])
            })
        );
        for wrong in [
            &["rebuild"][..],
            &["rebuild", "a", "--all"],
            &["rebuild", "--projection", "a"],
            &["run", "--projection"],
            &["run", "a"],
            &["serve"],
        ] {
            assert!(parse(wrong).is_err(), "{wrong:?}");
        }
    }
}
