//! Prometheus metrics named for the questions an operator asks.

use eventlog::CommitMetrics;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `chat_commands_total{command, outcome}`: outcome is `ok`, `rejected` (4xx) or `error` (5xx).
    pub commands: IntCounterVec,
    /// `chat_command_duration_seconds{command}`: from request to committed response.
    pub command_seconds: HistogramVec,
    /// `chat_room_actors`: rooms with a live command actor in this process.
    pub room_actors: IntGauge,
    /// `chat_room_reloads_total`: times a room actor read its room again after an append
    /// failed (contention between replicas; counted by [`crate::rooms::RoomCommands`]).
    pub room_reloads: IntCounter,
    /// `chat_log_head_position`: the event log's last committed position (sampled on scrape).
    pub log_head: IntGauge,
    /// `chat_relay_lag_events`: log head − the JetStream stream's last sequence, i.e. events
    /// committed but not yet relayed (sampled on scrape; kept at its last value while NATS
    /// does not answer).
    pub relay_lag: IntGauge,
    /// `chat_group_commit_batch_size` and `chat_group_commit_seconds{step}`.
    pub commit: CommitMetrics,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let commands = IntCounterVec::new(
            Opts::new(
                "chat_commands_total",
                "Commands handled, by command and outcome",
            ),
            &["command", "outcome"],
        )?;
        let command_seconds = HistogramVec::new(
            HistogramOpts::new(
                "chat_command_duration_seconds",
                "Command latency until the committed response",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["command"],
        )?;
        let room_actors = IntGauge::new("chat_room_actors", "Rooms with a live command actor")?;
        registry.register(Box::new(commands.clone()))?;
        registry.register(Box::new(command_seconds.clone()))?;
        let log_head = IntGauge::new(
            "chat_log_head_position",
            "Position of the last event committed to the log",
        )?;
        let relay_lag = IntGauge::new(
            "chat_relay_lag_events",
            "Events committed to the log but not yet in the JetStream stream (log head - stream last sequence)",
        )?;
        let room_reloads = IntCounter::new(
            "chat_room_reloads_total",
            "Times a room actor read its room again after an append failed (another replica wrote)",
        )?;
        registry.register(Box::new(room_actors.clone()))?;
        registry.register(Box::new(room_reloads.clone()))?;
        registry.register(Box::new(log_head.clone()))?;
        registry.register(Box::new(relay_lag.clone()))?;
        let commit = CommitMetrics::register(&registry)?;
        Ok(Self {
            registry,
            commands,
            command_seconds,
            room_actors,
            room_reloads,
            log_head,
            relay_lag,
            commit,
        })
    }

    /// Records one command's outcome from its HTTP status.
    pub fn observe(&self, command: &str, status: u16, seconds: f64) {
        let outcome = match status {
            200..=299 => "ok",
            400..=499 => "rejected",
            _ => "error",
        };
        self.commands.with_label_values(&[command, outcome]).inc();
        self.command_seconds
            .with_label_values(&[command])
            .observe(seconds);
    }
}
