//! The command line, the health/metrics router and the [`Application`] that runs the
//! projections.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::configuration::Settings;
use crate::projection::Projection;
use crate::{LOG_BATCH, Metrics, Projector};

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
/// other; returns one line per projection for the operator.
pub async fn rebuild(settings: &Settings, names: &[String]) -> anyhow::Result<Vec<String>> {
    let (pool, log) = settings.connect_databases().await?;
    let projections = crate::select(crate::registry(&pool), names)?;
    crate::migrate(&pool)
        .await
        .context("read-model migrations")?;
    let mut lines = Vec::new();
    for projection in projections {
        let started = Instant::now();
        let n = crate::framework::rebuild(&*projection, &pool, &log, LOG_BATCH).await?;
        let secs = started.elapsed().as_secs_f64();
        lines.push(format!(
            "rebuilt {}: {n} events in {secs:.2} s ({:.0} events/s)",
            projection.name(),
            n as f64 / secs.max(1e-9)
        ));
    }
    Ok(lines)
}

/// What the HTTP handlers need.
#[derive(Clone)]
pub struct AppState {
    pub nats: async_nats::Client,
    pub stream_name: String,
    pub metrics: Metrics,
    /// The projections this process runs.
    pub projections: Vec<Arc<dyn Projection>>,
}

/// `/healthz`, `/readyz`, `/metrics`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// The checkpoint of every projection, `None` where its store did not answer.
async fn checkpoints(projections: &[Arc<dyn Projection>]) -> BTreeMap<String, Option<i64>> {
    let mut out = BTreeMap::new();
    for p in projections {
        out.insert(p.name().to_owned(), p.checkpoint().await.ok());
    }
    out
}

/// Ready when every projection's store answers and NATS is connected; reports each
/// projection's checkpoint.
async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let checkpoints = checkpoints(&st.projections).await;
    let stores = checkpoints.values().all(Option::is_some);
    let nats = matches!(
        st.nats.connection_state(),
        async_nats::connection::State::Connected
    );
    let ready = stores && nats;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({
            "ready": ready,
            "postgres": stores,
            "nats": nats,
            "checkpoints": checkpoints,
        })),
    )
}

async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let js = async_nats::jetstream::new(st.nats.clone());
    for (name, checkpoint) in checkpoints(&st.projections).await {
        let Some(cp) = checkpoint else { continue };
        if let Ok(lag) = crate::lag(&js, &st.stream_name, cp).await {
            st.metrics.lag.with_label_values(&[&name]).set(lag);
        }
        st.metrics.checkpoint.with_label_values(&[&name]).set(cp);
    }
    match st.metrics.render() {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
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

/// The projector process: a runner per projection plus the health and metrics endpoints.
pub struct Application {
    listener: TcpListener,
    router: Router,
    runners: Vec<Projector>,
    pub state: AppState,
}

impl Application {
    /// Connects, migrates the read models, picks the registered projections named in `names`
    /// (all when empty), binds. Nothing runs until [`Application::run`].
    pub async fn build(settings: Settings, names: &[String]) -> anyhow::Result<Self> {
        let (pool, log) = settings.connect_databases().await?;
        let projections = crate::select(crate::registry(&pool), names)?;
        crate::migrate(&pool)
            .await
            .context("read-model migrations")?;
        Self::with_projections(settings, pool, log, projections).await
    }

    /// Runs exactly `projections` (the tests add their own to the registered ones); `pool` is
    /// the projector's database (dead letters), `log` the event log.
    pub async fn with_projections(
        settings: Settings,
        pool: PgPool,
        log: PgPool,
        projections: Vec<Arc<dyn Projection>>,
    ) -> anyhow::Result<Self> {
        let nats = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(settings.service.nats_url.expose_secret())
            .await
            .context("connecting to NATS")?;
        let metrics = Metrics::new()?;
        let runners = runners(&projections, &settings, &pool, &log, &nats, &metrics);
        let state = AppState {
            nats,
            stream_name: settings.service.stream_name.clone(),
            metrics,
            projections,
        };
        let listener = TcpListener::bind(&settings.service.listen)
            .await
            .with_context(|| format!("binding {}", settings.service.listen))?;
        Ok(Self {
            listener,
            router: router(state.clone()),
            runners,
            state,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs the projections and serves HTTP until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let runners = tokio::spawn(crate::run_all(self.runners, stopped(stop_rx.clone())));
        let server = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future();
        let server = tokio::spawn(server);
        shutdown.await;
        let _ = stop_tx.send(true);
        if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(10), runners)
            .await
            .unwrap_or(Ok(Ok(())))
        {
            tracing::error!(error = %format!("{e:#}"), "projector stopped with an error");
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        Ok(())
    }
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
