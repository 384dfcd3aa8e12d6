//! Prometheus metrics named for the questions an operator asks.

use eventlog::CommitMetrics;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `chat_commands_total{command, outcome}`: outcome is `ok`, `rejected` (4xx) or `error` (5xx).
    pub commands: IntCounterVec,
    /// `chat_command_duration_seconds{command}`: from request to committed response.
    pub command_seconds: HistogramVec,
    /// `chat_room_actors`: rooms with a live command actor in this process.
    pub room_actors: IntGauge,
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
        registry.register(Box::new(room_actors.clone()))?;
        let commit = CommitMetrics::register(&registry)?;
        Ok(Self {
            registry,
            commands,
            command_seconds,
            room_actors,
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
