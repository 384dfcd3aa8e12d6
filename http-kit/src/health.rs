//! Liveness (`/healthz`) and readiness (`/readyz`) of a service.
//!
//! Readiness is built from named checks each service supplies ([`Readiness::require`]
//! for what gates it, [`Readiness::report`] for what is only shown). Every service
//! answers in the same shape, 200 when every required check passed, else 503:
//!
//! ```json
//! {"ready": false,
//!  "checks": {"postgres": {"ok": true, "required": true},
//!             "nats": {"ok": false, "required": false, "error": "disconnected"}}}
//! ```
//!
//! A check that passed may add a `detail` (any JSON). Checks run concurrently, each
//! bounded by a timeout ([`CHECK_TIMEOUT`] unless [`Readiness::timeout`] says
//! otherwise), so `/readyz` answers promptly even when a dependency hangs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, FutureExt, join_all};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::PgPool;

/// How long one readiness check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// `/healthz`: the process is up.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<Value>> + Send + Sync>;

#[derive(Clone)]
struct Check {
    name: &'static str,
    required: bool,
    run: CheckFn,
}

/// The named checks behind `/readyz`. Cheap to clone.
#[derive(Clone)]
pub struct Readiness {
    checks: Vec<Check>,
    timeout: Duration,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    /// No checks yet (ready), each check bounded by [`CHECK_TIMEOUT`].
    pub fn new() -> Self {
        Self {
            checks: Vec::new(),
            timeout: CHECK_TIMEOUT,
        }
    }

    /// How long each check may take.
    pub fn timeout(mut self, per_check: Duration) -> Self {
        self.timeout = per_check;
        self
    }

    /// A check that must pass for the service to be ready. What it returns on success
    /// is shown as the check's `detail` (`()` shows none).
    pub fn require<F, Fut, T>(self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
        T: Serialize,
    {
        self.add(name, true, check)
    }

    /// A check that is shown but does not gate readiness.
    pub fn report<F, Fut, T>(self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
        T: Serialize,
    {
        self.add(name, false, check)
    }

    fn add<F, Fut, T>(mut self, name: &'static str, required: bool, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
        T: Serialize,
    {
        let run: CheckFn = Arc::new(move || {
            check()
                .map(|r| r.and_then(|v| Ok(serde_json::to_value(v)?)))
                .boxed()
        });
        self.checks.retain(|c| c.name != name);
        self.checks.push(Check {
            name,
            required,
            run,
        });
        self
    }

    /// Both sets of checks (one process serving several roles); a check of `other`
    /// replaces one of the same name here.
    pub fn merge(mut self, other: Readiness) -> Self {
        for c in other.checks {
            self.checks.retain(|mine| mine.name != c.name);
            self.checks.push(c);
        }
        self
    }

    /// Runs every check (concurrently, each bounded): whether every required one
    /// passed, and the `/readyz` body.
    pub async fn evaluate(&self) -> (bool, Value) {
        let timeout = self.timeout;
        let results = join_all(self.checks.iter().map(|c| async move {
            let outcome = match tokio::time::timeout(timeout, (c.run)()).await {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("timed out after {timeout:?}")),
            };
            (c, outcome)
        }))
        .await;
        let mut ready = true;
        let mut checks = Map::new();
        for (c, outcome) in results {
            let mut entry = json!({ "ok": outcome.is_ok(), "required": c.required });
            match outcome {
                Ok(Value::Null) => {}
                Ok(detail) => entry["detail"] = detail,
                Err(e) => {
                    ready &= !c.required;
                    entry["error"] = Value::String(format!("{e:#}"));
                }
            }
            checks.insert(c.name.to_owned(), entry);
        }
        (ready, json!({ "ready": ready, "checks": checks }))
    }

    /// The `/readyz` response: 200 when ready, else 503.
    pub async fn respond(&self) -> Response {
        let (ready, body) = self.evaluate().await;
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, Json(body)).into_response()
    }
}

/// A check that `sql` runs on `pool` (e.g. `SELECT 1`, or a query on a table the
/// service cannot work without).
pub fn postgres(
    pool: PgPool,
    sql: &'static str,
) -> impl Fn() -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync + 'static {
    move || {
        let pool = pool.clone();
        async move {
            sqlx::query(sql).execute(&pool).await?;
            Ok(())
        }
        .boxed()
    }
}

/// A check that the NATS client is connected (`None`: there is no client).
pub fn nats(
    client: Option<async_nats::Client>,
) -> impl Fn() -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync + 'static {
    move || {
        let state = client.as_ref().map(async_nats::Client::connection_state);
        async move {
            match state {
                Some(async_nats::connection::State::Connected) => Ok(()),
                Some(other) => Err(anyhow::anyhow!(format!("{other:?}").to_lowercase())),
                None => Err(anyhow::anyhow!("no client")),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn ready_when_every_required_check_passes() {
        let r = Readiness::new()
            .require("db", || async { Ok(()) })
            .require("checkpoint", || async { Ok(42) })
            .report("bus", || async {
                Err::<(), _>(anyhow::anyhow!("disconnected"))
            });
        let (ready, body) = r.evaluate().await;
        assert!(ready, "{body}");
        assert_eq!(
            body,
            json!({ "ready": true, "checks": {
                "db": { "ok": true, "required": true },
                "checkpoint": { "ok": true, "required": true, "detail": 42 },
                "bus": { "ok": false, "required": false, "error": "disconnected" },
            }})
        );
        assert_eq!(r.respond().await.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_failing_required_check_is_a_503() {
        let r =
            Readiness::new().require("db", || async { Err::<(), _>(anyhow::anyhow!("refused")) });
        let (ready, body) = r.evaluate().await;
        assert!(!ready);
        assert_eq!(body["checks"]["db"]["error"], "refused");
        assert_eq!(r.respond().await.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn a_hanging_check_fails_after_its_timeout_and_the_others_still_answer() {
        let r = Readiness::new()
            .timeout(Duration::from_millis(200))
            .require("hangs", std::future::pending::<anyhow::Result<()>>)
            .require("hangs too", std::future::pending::<anyhow::Result<()>>)
            .require("db", || async { Ok(()) });
        let started = Instant::now();
        let (ready, body) = r.evaluate().await;
        let took = started.elapsed();
        assert!(!ready);
        assert!(took < Duration::from_millis(1000), "took {took:?}");
        assert!(
            body["checks"]["hangs"]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("timed out")),
            "{body}"
        );
        assert_eq!(body["checks"]["db"]["ok"], true);
    }

    #[tokio::test]
    async fn merging_keeps_every_name_once() {
        let a = Readiness::new()
            .require("postgres", || async { Ok(()) })
            .report("nats", || async { Ok(()) });
        let b = Readiness::new().require("read_models", || async { Ok(()) });
        let (_, body) = a.merge(b).evaluate().await;
        let mut names: Vec<&String> = body["checks"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        names.sort();
        assert_eq!(names, ["nats", "postgres", "read_models"]);
    }
}
