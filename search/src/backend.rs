//! The one contract both search backends fulfil ([`SearchBackend`]), and what flows through it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::query::Clause;

/// A boxed future that can move between threads (the trait is used as `Arc<dyn …>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A message as the index holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageDoc {
    pub message_id: Uuid,
    pub room_id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    pub sent_at: DateTime<Utc>,
    /// The current text (the newest edit's).
    pub body: String,
    /// The log position of its `MessageSent`: the order of `sort=recent` and the tie-break of
    /// `sort=relevance`.
    pub sent_position: i64,
    /// The log position of the last event applied to it (its send or its newest edit): the
    /// document's version, so an older write never replaces a newer one.
    pub position: i64,
}

/// One event's effect on the index.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Sent(MessageDoc),
    /// The message's text is now `body` (from the edit at `position`).
    Edited {
        message_id: Uuid,
        body: String,
        position: i64,
    },
    /// The message is gone from search (deleted at `position`).
    Deleted {
        message_id: Uuid,
        position: i64,
    },
    /// Every message `sender_id` sent is gone from search: the sender was erased (at `position`).
    ///
    /// Each of the sender's messages the index holds (whatever its position), and each sent
    /// earlier in the same batch, becomes a tombstone, as with [`Change::Deleted`]: a replayed
    /// send or edit of it changes nothing, and an edit of it never creates a document. Messages
    /// the sender sends after it in the log are indexed as usual.
    SenderErased {
        sender_id: Uuid,
        position: i64,
    },
    /// Every message of `room_id` with `seq <= up_to_seq` is gone from search: the room's
    /// retention expired them (at `position`).
    ///
    /// Each such message the index holds (whatever its position), and each sent earlier in the
    /// same batch, becomes a tombstone, as with [`Change::Deleted`]: a replayed send or edit of it
    /// changes nothing, and an edit of it never creates a document. The room's messages with a
    /// higher seq, and every other room's, are untouched.
    RoomExpired {
        room_id: Uuid,
        up_to_seq: i64,
        position: i64,
    },
}

impl Change {
    /// The log position of the event behind the change.
    pub fn position(&self) -> i64 {
        match self {
            Change::Sent(doc) => doc.position,
            Change::Edited { position, .. }
            | Change::Deleted { position, .. }
            | Change::SenderErased { position, .. }
            | Change::RoomExpired { position, .. } => *position,
        }
    }
}

/// The order of hits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Best match first (BM25), newest first among equals.
    #[default]
    Relevance,
    /// Newest first.
    Recent,
}

/// Where the previous page ended: the sort key of its last hit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct After {
    /// The relevance score of the last hit (`sort=relevance` only).
    pub score: Option<f32>,
    pub sent_position: i64,
}

/// A resolved search: text clauses and filters by id and time.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchRequest {
    /// All must match; none: every message passing the filters.
    pub clauses: Vec<Clause>,
    /// Only these rooms (the caller's, at query time). Empty: no hits.
    pub rooms: Vec<Uuid>,
    /// Only these senders; empty: anyone.
    pub senders: Vec<Uuid>,
    /// Sent at or after.
    pub sent_from: Option<DateTime<Utc>>,
    /// Sent before.
    pub sent_before: Option<DateTime<Utc>>,
    pub has_link: bool,
    pub sort: Sort,
    pub limit: usize,
    /// Messages sent after this position are left out, so later pages do not shift under new
    /// messages: [`SearchPage::snapshot`] of the first page. `None` for a first page.
    pub snapshot: Option<i64>,
    pub after: Option<After>,
}

/// A matching message.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub doc: MessageDoc,
    /// The relevance score (0 with `sort=recent`).
    pub score: f32,
}

/// One page of hits.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchPage {
    /// At most `limit`, in the requested order.
    pub hits: Vec<Hit>,
    /// Whether more hits follow the last one.
    pub more: bool,
    /// The snapshot of this series of pages: the request's, or for a first page the highest
    /// `sent_position` the search could see.
    pub snapshot: i64,
}

/// Why the index could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// [`SearchBackend::apply`] was called with a `from` that is not the checkpoint.
    #[error("the index is at position {checkpoint}, not {expected}")]
    Gap { checkpoint: i64, expected: i64 },
    /// The index (its server or directory) cannot be reached now; try again.
    #[error("the search index is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// A message index: written by the `search` projection (one writer), read by every query API.
///
/// Both implementations pass one contract suite (`search/tests/contract.rs`).
pub trait SearchBackend: Send + Sync {
    /// `tantivy` or `opensearch`.
    fn kind(&self) -> &'static str;

    /// The position of the last event whose effects the index holds (0 before the first).
    fn checkpoint(&self) -> BoxFuture<'_, Result<i64, SearchError>>;

    /// Applies `changes` (events after `from`, in position order) and moves the checkpoint from
    /// `from` to `to`, so that the checkpoint is never ahead of the documents and never behind
    /// them by more than one call's changes (which are idempotent: a replay of them is
    /// harmless). [`SearchError::Gap`] if the checkpoint is not `from`.
    fn apply(
        &self,
        from: i64,
        changes: Vec<Change>,
        to: i64,
    ) -> BoxFuture<'_, Result<(), SearchError>>;

    /// Empties the index and sets its checkpoint to 0.
    fn reset(&self) -> BoxFuture<'_, Result<(), SearchError>>;

    /// The position searches see now; when below `at_least`, looks again (a reload, a refresh)
    /// before answering. Polling this until it reaches a command's position is read-your-writes.
    fn visible_position(&self, at_least: i64) -> BoxFuture<'_, Result<i64, SearchError>>;

    /// One page of hits.
    fn search(&self, req: SearchRequest) -> BoxFuture<'_, Result<SearchPage, SearchError>>;

    /// The epoch of the index searched now: the live Tantivy generation, or the number of the
    /// OpenSearch index behind the alias. Each blue/green switch adds one, so a response can say
    /// which build of the index answered it.
    fn epoch(&self) -> BoxFuture<'_, Result<i64, SearchError>>;

    /// Starts a blue/green rebuild: a fresh, empty index beside the live one (the next
    /// generation, the next OpenSearch index), which keeps serving untouched until
    /// [`StagedIndex::switch`]. Whatever an interrupted rebuild left behind is deleted first.
    /// Needs no writer of the live index: that may be another process.
    fn stage(&self) -> BoxFuture<'_, Result<Box<dyn StagedIndex>, SearchError>>;
}

/// The index a blue/green rebuild fills ([`SearchBackend::stage`]), and its switch.
///
/// The rebuild replays the log into [`StagedIndex::copy`], calls
/// [`StagedIndex::bulk_loaded`], catches the copy up, then [`StagedIndex::hold`]s the live
/// writer still, catches up the last stretch until the copy is at least at
/// [`StagedIndex::live_checkpoint`], and [`StagedIndex::switch`]es. Dropped without a switch,
/// it leaves the live index as it was.
pub trait StagedIndex: Send + Sync {
    /// The epoch the copy goes live under.
    fn epoch(&self) -> i64;

    /// The copy, written by the rebuild (its own checkpoint, from 0): one writer, one commit
    /// per [`SearchBackend::apply`].
    fn copy(&self) -> Arc<dyn SearchBackend>;

    /// The bulk load is over: merge what it wrote (Tantivy). Further applies still work.
    fn bulk_loaded(&self) -> BoxFuture<'_, Result<(), SearchError>>;

    /// The live index's checkpoint now (the copy must reach it before the switch).
    fn live_checkpoint(&self) -> BoxFuture<'_, Result<i64, SearchError>>;

    /// Holds the live writer still until the switch (or the drop), where the backend can:
    /// Tantivy's live writer waits for the switch lock before each commit. OpenSearch cannot
    /// hold a writer in another process; its live writer finds the new index behind the alias
    /// on its next write and continues from that index's checkpoint instead.
    fn hold(&self) -> BoxFuture<'_, Result<(), SearchError>>;

    /// Whether the copy must replay the log once more right after the switch, because the
    /// live writer could not be held and may have written to the old index meanwhile
    /// (OpenSearch). The copy keeps working after the switch then; a Tantivy copy does not
    /// (its writer lock goes to the live writer).
    fn catch_up_after_switch(&self) -> bool {
        false
    }

    /// Makes the copy the live index in one atomic step and drops the old one (or leaves it to
    /// the live writer that still holds it, which drops it once it has moved). Returns the
    /// new epoch.
    fn switch(self: Box<Self>) -> BoxFuture<'static, Result<i64, SearchError>>;

    /// Drops the copy without switching.
    fn abandon(self: Box<Self>) -> BoxFuture<'static, Result<(), SearchError>>;
}
