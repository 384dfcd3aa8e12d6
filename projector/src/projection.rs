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
use sqlx::PgPool;

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
    /// the whole log builds it again. Readers see it empty until then; a rebuild while the
    /// projection serves uses [`Projection::stage`] instead.
    fn reset(&self) -> BoxFuture<'_, anyhow::Result<()>>;

    /// Starts a blue/green rebuild (`projector rebuild`, ADR 11): a fresh, empty copy of this
    /// projection beside the live one, which keeps serving untouched. Whatever an interrupted
    /// rebuild left behind is discarded first, so a rebuild can always be started again.
    fn stage(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn Staged>>>;
}

/// The copy a blue/green rebuild fills ([`Projection::stage`]). The framework replays the log
/// into [`Staged::copy`] (its own store and checkpoint, from 0), calls
/// [`Staged::bulk_loaded`] once the log's head is near, then [`Staged::switch`].
pub trait Staged: Send + Sync {
    /// The copy as a projection: batches applied to it go to the copy's store and checkpoint
    /// only, never to the live projection.
    fn copy(&self) -> &dyn Projection;

    /// The bulk replay is done: build what is faster to build after a bulk load (secondary
    /// indexes, a merge), before the final catch-up and the switch.
    fn bulk_loaded(&self) -> BoxFuture<'_, anyhow::Result<()>>;

    /// Makes the copy the live projection in one atomic step (a schema swap in one
    /// transaction, an alias swap, a directory swap that readers follow), under a new epoch,
    /// and drops the old copy. The copy is caught up (with `replay`) to at least the live
    /// projection's checkpoint first, so the switch never moves readers back; where the
    /// projection must hold its live writer still for that, it does so only for the last
    /// stretch.
    fn switch<'a>(self: Box<Self>, replay: &'a Replay) -> BoxFuture<'a, anyhow::Result<Switched>>;

    /// Drops the copy without switching (the rebuild failed); the live projection is
    /// untouched either way.
    fn abandon(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<()>>;
}

/// What a [`Staged::switch`] left live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switched {
    /// The projection's epoch after the switch (one more than before).
    pub epoch: i64,
    /// The live checkpoint right after the switch.
    pub checkpoint: i64,
}

/// How a [`Staged`] copy catches up with the log: the framework's catch-up, handed to
/// [`Staged::switch`] so a projection never reads the log itself.
#[derive(Clone, Debug)]
pub struct Replay {
    /// Where `dead_letters` live (the projector's database).
    pub pool: PgPool,
    /// The event log.
    pub log: PgPool,
    /// Events per committed batch.
    pub batch: i64,
}

impl Replay {
    /// Applies everything the log holds after `projection`'s checkpoint; returns how many
    /// events (see [`crate::framework::catch_up_from_log`]).
    pub async fn catch_up(&self, projection: &dyn Projection) -> anyhow::Result<u64> {
        crate::framework::catch_up_from_log(projection, &self.pool, &self.log, self.batch).await
    }
}
