//! Prometheus metrics of the query side.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The `reason` values of `chat_ws_closed_total` (the labels of the server's close codes).
pub const CLOSE_REASONS: [&str; 6] = [
    "slow_consumer",
    "token_expired",
    "ping_timeout",
    "too_big",
    "protocol_error",
    "shutdown",
];

/// The `kind` values of `chat_ws_frames_received_total`: the client frame types, and
/// `invalid` for text that is none of them.
pub const RECEIVED_KINDS: [&str; 5] = ["subscribe", "unsubscribe", "typing", "ping", "invalid"];

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
    /// `chat_ws_frames_received_total{kind}`: frames clients sent, by type.
    pub ws_frames_received: IntCounterVec,
    /// `chat_ws_resumes_total`: subscriptions resuming from a version (`after_version`);
    /// those answered `resync` are `chat_ws_frames_total{kind="resync"}`.
    pub ws_resumes: IntCounter,
    /// `chat_ws_subscriptions`: room subscriptions on this node (set at every scrape).
    pub ws_subscriptions: IntGauge,
    /// `chat_ws_users`: distinct users with an open socket on this node, the users it
    /// reports online (set at every scrape).
    pub ws_users: IntGauge,
    /// `chat_search_hits`: hits the index returned for a search page.
    pub search_hits: Histogram,
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
        // So is the resync count (sent frames are otherwise labelled as they come).
        ws_frames.with_label_values(&["resync"]);
        registry.register(Box::new(ws_closed.clone()))?;
        registry.register(Box::new(search_seconds.clone()))?;
        let ws_frames_received = IntCounterVec::new(
            Opts::new(
                "chat_ws_frames_received_total",
                "Frames WebSocket clients sent, by type",
            ),
            &["kind"],
        )?;
        for kind in RECEIVED_KINDS {
            ws_frames_received.with_label_values(&[kind]);
        }
        let ws_resumes = IntCounter::new(
            "chat_ws_resumes_total",
            "Subscriptions resuming from a version (after_version)",
        )?;
        let ws_subscriptions =
            IntGauge::new("chat_ws_subscriptions", "Room subscriptions on this node")?;
        let ws_users = IntGauge::new(
            "chat_ws_users",
            "Distinct users with an open WebSocket on this node",
        )?;
        let search_hits = Histogram::with_opts(
            HistogramOpts::new(
                "chat_search_hits",
                "Hits the index returned for a search page",
            )
            .buckets(vec![0.0, 1.0, 5.0, 10.0, 20.0, 50.0, 100.0]),
        )?;
        registry.register(Box::new(ws_frames_received.clone()))?;
        registry.register(Box::new(ws_resumes.clone()))?;
        registry.register(Box::new(ws_subscriptions.clone()))?;
        registry.register(Box::new(ws_users.clone()))?;
        registry.register(Box::new(search_hits.clone()))?;
        Ok(Self {
            registry,
            ws_connections,
            ws_frames,
            ws_closed,
            search_seconds,
            ws_frames_received,
            ws_resumes,
            ws_subscriptions,
            ws_users,
            search_hits,
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
