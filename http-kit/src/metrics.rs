//! `/metrics`: one or more Prometheus registries in the text format, with the gauges a
//! service samples rather than counts (actors alive, lag behind a stream, ...) brought
//! up to date first, and the process-wide metrics every service shares: HTTP requests by
//! route template and status, and the build's version and git commit ([`process`]).

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, FutureExt, join_all};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::error::ApiError;

/// How long the samplers of one scrape may take; a sampler still running then is
/// abandoned and its gauges keep their last value.
pub const SAMPLE_TIMEOUT: Duration = Duration::from_secs(1);

type Sampler = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// What `/metrics` renders. Cheap to clone.
#[derive(Clone, Default)]
pub struct Scrape {
    registries: Vec<Registry>,
    samplers: Vec<Sampler>,
}

impl Scrape {
    /// The metrics of one registry.
    pub fn new(registry: Registry) -> Self {
        Self::default().registry(registry)
    }

    /// Renders `registry` too.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registries.push(registry);
        self
    }

    /// Runs `sample` before every rendering, to set the gauges it owns.
    pub fn sample<F, Fut>(mut self, sample: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.samplers.push(Arc::new(move || sample().boxed()));
        self
    }

    /// Both registries and samplers (one process serving several roles).
    pub fn merge(mut self, other: Scrape) -> Self {
        self.registries.extend(other.registries);
        self.samplers.extend(other.samplers);
        self
    }

    /// Samples (concurrently, bounded by [`SAMPLE_TIMEOUT`]), then renders every
    /// registry, and the process-wide one ([`process`]) once, in the Prometheus text format.
    pub async fn render(&self) -> Result<String, prometheus::Error> {
        let _ =
            tokio::time::timeout(SAMPLE_TIMEOUT, join_all(self.samplers.iter().map(|s| s()))).await;
        let families: Vec<_> = self
            .registries
            .iter()
            .chain(std::iter::once(&process().registry))
            .flat_map(Registry::gather)
            .collect();
        let mut buf = Vec::new();
        TextEncoder::new().encode(&families, &mut buf)?;
        String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }

    /// The `/metrics` response.
    pub async fn respond(&self) -> Response {
        match self.render().await {
            Ok(body) => {
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
            }
            Err(e) => ApiError::internal(&e).into_response(),
        }
    }
}

/// The metrics of the process, whichever roles it serves (one registry, rendered once by
/// every [`Scrape`]).
pub struct Process {
    pub registry: Registry,
    /// `chat_http_requests_total{route, method, status}`: requests answered, by the route
    /// template (`/v1/rooms/{room_id}/messages`; `unmatched` for any path no route matched,
    /// so the label stays bounded), method and status code.
    pub http_requests: IntCounterVec,
    /// `chat_http_request_duration_seconds{route, method}`: time to the response head.
    pub http_seconds: HistogramVec,
    /// `chat_build_info{version, git_commit}`: always 1; the labels say what runs.
    pub build_info: IntGaugeVec,
    /// `chat_rate_limited_total{limit}`: requests and frames refused by a rate limit
    /// ([`crate::rate_limit`]), by limit.
    pub rate_limited: IntCounterVec,
}

/// The git commit the binary was built from (`CHAT_GIT_COMMIT` at build time, else what
/// `build.rs` found, else `unknown`).
pub const GIT_COMMIT: &str = env!("CHAT_GIT_COMMIT");

/// The process-wide metrics, created on first use.
pub fn process() -> &'static Process {
    static PROCESS: LazyLock<Process> =
        LazyLock::new(|| Process::new().expect("the process metrics have valid, distinct names"));
    &PROCESS
}

impl Process {
    fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "chat_http_requests_total",
                "HTTP requests answered, by route template, method and status code",
            ),
            &["route", "method", "status"],
        )?;
        let http_seconds = HistogramVec::new(
            HistogramOpts::new(
                "chat_http_request_duration_seconds",
                "Time from an HTTP request to its response head, by route template and method",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route", "method"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "chat_build_info",
                "Always 1: the version and git commit of the running binary",
            ),
            &["version", "git_commit"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), GIT_COMMIT])
            .set(1);
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_seconds.clone()))?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "chat_rate_limited_total",
                "Requests and WebSocket frames refused by a rate limit, by limit",
            ),
            &["limit"],
        )?;
        registry.register(Box::new(build_info.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_seconds,
            build_info,
            rate_limited,
        })
    }
}

/// Middleware: counts and times every request by its route template (a `Router::layer`, so
/// the matched route is known).
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().clone();
    let method = match method.as_str() {
        "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method.as_str(),
        _ => "other",
    }
    .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let m = process();
    m.http_seconds
        .with_label_values(&[&route, &method])
        .observe(started.elapsed().as_secs_f64());
    m.http_requests
        .with_label_values(&[&route, &method, response.status().as_str()])
        .inc();
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{IntCounter, IntGauge};

    #[tokio::test]
    async fn every_registry_is_rendered_after_the_samplers_ran() {
        let a = Registry::new();
        let served = IntCounter::new("served_total", "served").expect("counter");
        a.register(Box::new(served.clone())).expect("register");
        let b = Registry::new();
        let alive = IntGauge::new("alive", "alive").expect("gauge");
        b.register(Box::new(alive.clone())).expect("register");
        served.inc();
        let scrape = Scrape::new(a).merge(Scrape::new(b).sample(move || {
            alive.set(7);
            async {}
        }));
        let text = scrape.render().await.expect("render");
        assert!(text.contains("served_total 1"), "{text}");
        assert!(text.contains("chat_build_info{"), "{text}");
        assert!(text.contains("alive 7"), "{text}");
    }

    #[tokio::test]
    async fn a_hanging_sampler_does_not_hold_up_the_scrape() {
        let scrape = Scrape::new(Registry::new()).sample(std::future::pending::<()>);
        let rendered = tokio::time::timeout(SAMPLE_TIMEOUT * 3, scrape.render()).await;
        assert!(rendered.is_ok(), "the scrape waited for the sampler");
    }
}
