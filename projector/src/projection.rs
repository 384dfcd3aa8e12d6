//! The plug-in interface of a projection: what the framework ([`crate::framework`], the live
//! runner [`crate::Projector`]) asks of anything that builds a model from the event log.
//!
//! A projection owns its store and its checkpoint (the position of the last event whose effects
//! it holds) and keeps the two together: whatever commits an event's effects commits the new
//! checkpoint in the same atomic step (a PostgreSQL transaction for the read models, the index's
//! own commit for a search index). That is what makes it exactly once in effect: the framework
//! delivers at least once, and the projection itself skips what its checkpoint already covers.
//!
//! The framework owns everything else: the JetStream consumer, filling gaps from the log,
//! dead letters, metrics and acks. See ADR 9.

use std::future::Future;
use std::pin::Pin;

use eventlog::RecordedEvent;

/// A boxed future that can move between threads: what [`Projection`]'s methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The events of one [`Projection::apply_batch`] call.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// Contiguous log positions in ascending order (each one more than the one before). The
    /// first ones may be at or below the projection's checkpoint (a redelivery).
    pub events: &'a [RecordedEvent],
    /// Positions among `events` that the framework has already recorded in `dead_letters`
    /// (the projection reported them as poison): the projection steps over them without
    /// applying them, moving its checkpoint past them in the same commit as everything else.
    pub dead_lettered: &'a [i64],
}

/// An event the projection cannot apply, and never will: it cannot be decoded or contradicts
/// the model. The framework records it in `dead_letters` before anything moves past it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Poison {
    pub position: i64,
    /// Why, for `dead_letters.reason`.
    pub reason: String,
}

/// What one [`Projection::apply_batch`] committed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The checkpoint after the call, committed with the effects.
    pub checkpoint: i64,
    /// Events the checkpoint moved past in this call (dead-lettered ones stepped over included).
    pub applied: u64,
    /// Events of the batch at or below the checkpoint the projection found: skipped.
    pub skipped: u64,
    /// The event the call stopped at, if it is poison: everything before it is committed (so
    /// `checkpoint` is its position − 1), nothing from it on is applied. The framework
    /// dead-letters it and calls again with the rest of the batch and it in
    /// [`Batch::dead_lettered`].
    pub poison: Option<Poison>,
}

/// Why [`Projection::apply_batch`] committed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ApplyBatchError {
    /// The batch's first event beyond the checkpoint is not `checkpoint + 1`: applying it would
    /// skip events. The framework reads the missing ones from the log and calls again.
    #[error("the batch does not follow the checkpoint {checkpoint}")]
    Gap { checkpoint: i64 },
    /// Anything else (the store is unreachable, a conflict): nothing was committed, try again.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// A model built from the event log, plugged into the framework.
///
/// The methods return boxed futures ([`BoxFuture`]) rather than `impl Future`: the runner
/// holds the projections chosen at run time (`projector run --projection NAME`, the test
/// suite's own projection) in one `Vec<Arc<dyn Projection>>`, which needs a dyn-compatible
/// trait. With generics, every combination of projections would be a different type. The cost
/// is one allocation per call, that is per batch, next to a database transaction.
pub trait Projection: Send + Sync {
    /// Its name: the key of its dead letters and metrics, and (with `_` as `-`) of its durable
    /// JetStream consumer.
    fn name(&self) -> &str;

    /// The position of the last event whose effects it holds (0 before the first).
    fn checkpoint(&self) -> BoxFuture<'_, anyhow::Result<i64>>;

    /// Applies `batch` in one atomic step with the new checkpoint, in position order: events at
    /// or below the checkpoint are skipped (so a redelivered batch is harmless), then each
    /// event must be exactly `checkpoint + 1` ([`ApplyBatchError::Gap`] otherwise). It stops at
    /// the first poison event (see [`Applied::poison`]).
    fn apply_batch<'a>(
        &'a self,
        batch: Batch<'a>,
    ) -> BoxFuture<'a, Result<Applied, ApplyBatchError>>;

    /// Empties the store and sets the checkpoint to 0, in one atomic step, so that a replay of
    /// the whole log builds it again (`projector rebuild`).
    fn reset(&self) -> BoxFuture<'_, anyhow::Result<()>>;
}
