//! Prometheus metrics of the projector, labelled by projection.

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `chat_projector_lag_events{projection}`: JetStream stream last sequence − checkpoint
    /// (refreshed when idle and on every scrape).
    pub lag: IntGaugeVec,
    /// `chat_projector_checkpoint{projection}`: the log position applied so far.
    pub checkpoint: IntGaugeVec,
    /// `chat_projector_applied_total{projection}`: events applied (committed).
    pub applied: IntCounterVec,
    /// `chat_projector_dead_letters_total{projection}`: events sent to `dead_letters`.
    pub dead_letters: IntCounterVec,
    /// `chat_projector_gap_events_total{projection}`: events read from the log because the
    /// stream did not deliver them.
    pub gap_events: IntCounterVec,
    /// `chat_projector_duplicates_total{projection}`: deliveries at or below the checkpoint.
    pub duplicates: IntCounterVec,
    /// `chat_projector_batch_seconds{projection}`: apply + commit time of one batch.
    pub batch_seconds: HistogramVec,
    /// `chat_projection_rebuild_progress{projection}`: the last rebuild's copy position as a
    /// fraction of the log head (0–1), from `projection_rebuilds` on every scrape.
    pub rebuild_progress: GaugeVec,
    /// `chat_projection_rebuild_events_per_second{projection}`: that rebuild's rate so far.
    pub rebuild_rate: GaugeVec,
    /// `chat_projection_rebuild_running{projection}`: 1 while a rebuild reports progress (a
    /// report in the last minute, not done or failed), else 0.
    pub rebuild_running: IntGaugeVec,
    /// `chat_projection_epoch{projection}`: the read models' epoch (one more per switch).
    pub epoch: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let lag = IntGaugeVec::new(
            Opts::new(
                "chat_projector_lag_events",
                "Events in the JetStream stream not yet applied (stream last sequence - checkpoint)",
            ),
            &["projection"],
        )?;
        let checkpoint = IntGaugeVec::new(
            Opts::new(
                "chat_projector_checkpoint",
                "Log position of the last applied event",
            ),
            &["projection"],
        )?;
        let applied = IntCounterVec::new(
            Opts::new(
                "chat_projector_applied_total",
                "Events applied and committed",
            ),
            &["projection"],
        )?;
        let dead_letters = IntCounterVec::new(
            Opts::new(
                "chat_projector_dead_letters_total",
                "Poison events recorded in dead_letters",
            ),
            &["projection"],
        )?;
        let gap_events = IntCounterVec::new(
            Opts::new(
                "chat_projector_gap_events_total",
                "Events read from the log because the stream skipped them",
            ),
            &["projection"],
        )?;
        let duplicates = IntCounterVec::new(
            Opts::new(
                "chat_projector_duplicates_total",
                "Deliveries at or below the checkpoint (acked and skipped)",
            ),
            &["projection"],
        )?;
        let batch_seconds = HistogramVec::new(
            HistogramOpts::new(
                "chat_projector_batch_seconds",
                "Time to apply and commit one batch",
            )
            .buckets(vec![
                0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["projection"],
        )?;
        let rebuild_progress = GaugeVec::new(
            Opts::new(
                "chat_projection_rebuild_progress",
                "Position of the last rebuild's copy as a fraction of the log head (0-1)",
            ),
            &["projection"],
        )?;
        let rebuild_rate = GaugeVec::new(
            Opts::new(
                "chat_projection_rebuild_events_per_second",
                "Events per second applied by the last rebuild so far",
            ),
            &["projection"],
        )?;
        let rebuild_running = IntGaugeVec::new(
            Opts::new(
                "chat_projection_rebuild_running",
                "1 while a rebuild of the projection is reporting progress",
            ),
            &["projection"],
        )?;
        let epoch = IntGaugeVec::new(
            Opts::new(
                "chat_projection_epoch",
                "The projection's epoch: one more after every rebuild's switch",
            ),
            &["projection"],
        )?;
        registry.register(Box::new(rebuild_progress.clone()))?;
        registry.register(Box::new(rebuild_rate.clone()))?;
        registry.register(Box::new(rebuild_running.clone()))?;
        registry.register(Box::new(epoch.clone()))?;
        registry.register(Box::new(lag.clone()))?;
        registry.register(Box::new(checkpoint.clone()))?;
        registry.register(Box::new(applied.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(gap_events.clone()))?;
        registry.register(Box::new(duplicates.clone()))?;
        registry.register(Box::new(batch_seconds.clone()))?;
        Ok(Self {
            registry,
            lag,
            checkpoint,
            applied,
            dead_letters,
            gap_events,
            duplicates,
            batch_seconds,
            rebuild_progress,
            rebuild_rate,
            rebuild_running,
            epoch,
        })
    }
}
