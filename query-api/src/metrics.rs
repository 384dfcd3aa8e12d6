//! Prometheus metrics of the query side.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

/// The `reason` values of `chat_ws_closed_total` (the labels of the server's close codes).
pub const CLOSE_REASONS: [&str; 5] = [
    "slow_consumer",
    "token_expired",
    "ping_timeout",
    "too_big",
    "protocol_error",
];

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `chat_ws_connections`: open WebSocket connections on this node.
    pub ws_connections: IntGauge,
    /// `chat_ws_frames_total{kind}`: frames sent to clients, by kind.
    pub ws_frames: IntCounterVec,
    /// `chat_ws_closed_total{reason}`: connections closed by the server, by reason.
    pub ws_closed: IntCounterVec,
    /// `chat_search_seconds`: time the search index took to answer a search.
    pub search_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let ws_connections = IntGauge::new("chat_ws_connections", "Open WebSocket connections")?;
        let ws_frames = IntCounterVec::new(
            Opts::new("chat_ws_frames_total", "Frames sent to WebSocket clients"),
            &["kind"],
        )?;
        let ws_closed = IntCounterVec::new(
            Opts::new(
                "chat_ws_closed_total",
                "WebSocket connections closed by the server",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(ws_connections.clone()))?;
        registry.register(Box::new(ws_frames.clone()))?;
        let search_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "chat_search_seconds",
                "Time the search index took to answer a search",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0,
            ]),
        )?;
        // Every close reason is exported from the start (at 0), so a rate or an alert over it
        // has a series before the first close.
        for reason in CLOSE_REASONS {
            ws_closed.with_label_values(&[reason]);
        }
        registry.register(Box::new(ws_closed.clone()))?;
        registry.register(Box::new(search_seconds.clone()))?;
        Ok(Self {
            registry,
            ws_connections,
            ws_frames,
            ws_closed,
            search_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_close_reason_is_exported_before_the_first_close() {
        let m = Metrics::new().expect("metrics");
        let family = m
            .registry
            .gather()
            .into_iter()
            .find(|f| f.name() == "chat_ws_closed_total")
            .expect("chat_ws_closed_total");
        assert_eq!(family.get_metric().len(), CLOSE_REASONS.len());
    }
}
