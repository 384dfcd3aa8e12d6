//! `/metrics`: one or more Prometheus registries in the text format, with the gauges a
//! service samples rather than counts (actors alive, lag behind a stream, ...) brought
//! up to date first.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::future::{BoxFuture, FutureExt, join_all};
use prometheus::{Encoder, Registry, TextEncoder};

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
    /// registry in the Prometheus text format.
    pub async fn render(&self) -> Result<String, prometheus::Error> {
        let _ =
            tokio::time::timeout(SAMPLE_TIMEOUT, join_all(self.samplers.iter().map(|s| s()))).await;
        let families: Vec<_> = self.registries.iter().flat_map(Registry::gather).collect();
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
        assert!(text.contains("alive 7"), "{text}");
    }

    #[tokio::test]
    async fn a_hanging_sampler_does_not_hold_up_the_scrape() {
        let scrape = Scrape::new(Registry::new()).sample(std::future::pending::<()>);
        let rendered = tokio::time::timeout(SAMPLE_TIMEOUT * 3, scrape.render()).await;
        assert!(rendered.is_ok(), "the scrape waited for the sampler");
    }
}
