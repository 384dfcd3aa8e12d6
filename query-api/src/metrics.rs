//! Prometheus metrics of the query side.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

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
