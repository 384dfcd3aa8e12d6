//! The search index as a [`Projection`]: messages sent, edited and deleted, written through a
//! [`SearchBackend`] (the embedded Tantivy index or OpenSearch), whose own commit holds the
//! checkpoint (see the `search` crate).
//!
//! Only messages sent, edited and deleted, messages expired (a room's retention) and erasures
//! matter; the others move the checkpoint and nothing else, and are not even decoded. A message event that does not decode is poison, as for the read models.
//!
//! A blue/green rebuild ([`Projection::stage`]) fills a fresh index beside the live one (the
//! next Tantivy generation, the next OpenSearch index; see `search::StagedIndex`) through
//! this same projection, then switches: most of the catch-up runs while the live writer keeps
//! writing, the last stretch while it is held still (Tantivy), and the live writer follows
//! the switch on its own (whatever process it runs in).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use eventlog::RecordedEvent;
use events::room::RoomEvent;
use events::{RoomId, StoredEvent as _};
use search::{Change, MessageDoc, SearchBackend, SearchError, SearchSettings, StagedIndex};
use tokio::sync::OnceCell;

use crate::projection::{
    Applied, ApplyBatchError, Batch, BoxFuture, Poison, Projection, Replay, Staged, Switched,
};

/// The search projection's name (its consumer, metrics and dead letters).
pub const SEARCH: &str = search::PROJECTION;

/// How long the live runner collects events before a commit, unless `APP_SEARCH_LINGER_MS`
/// says otherwise: each commit is an index commit (Tantivy writes a segment), so fewer and
/// bigger ones are cheaper; a message is still searchable well within a second.
pub const SEARCH_LINGER: Duration = Duration::from_millis(100);

/// The search index, written through its backend.
#[derive(Clone)]
pub struct SearchIndex {
    backend: Arc<OnceCell<Arc<dyn SearchBackend>>>,
    settings: Option<Arc<SearchSettings>>,
}

impl SearchIndex {
    /// Writes through `backend`.
    pub fn new(backend: Arc<dyn SearchBackend>) -> Self {
        SearchIndex {
            backend: Arc::new(OnceCell::new_with(Some(backend))),
            settings: None,
        }
    }

    /// Opens the index `settings` name as its writer when first used, so that a process
    /// that does not run this projection never takes the index's writer lock.
    pub fn from_settings(settings: SearchSettings) -> Self {
        SearchIndex {
            backend: Arc::new(OnceCell::new()),
            settings: Some(Arc::new(settings)),
        }
    }

    /// The epoch of the index searched now (see [`SearchBackend::epoch`]).
    pub async fn epoch(&self) -> anyhow::Result<i64> {
        Ok(self.backend().await?.epoch().await?)
    }

    async fn backend(&self) -> anyhow::Result<&Arc<dyn SearchBackend>> {
        self.backend
            .get_or_try_init(|| async {
                let settings = self
                    .settings
                    .clone()
                    .context("a search index without settings or backend")?;
                tokio::task::spawn_blocking(move || settings.open_writer())
                    .await
                    .context("open the search index")?
                    .context("open the search index")
            })
            .await
    }
}

/// The event's effect on the index: `Ok(None)` when it has none. A message whose body its
/// author's shredded key no longer opens is left out, and an erasure forgets every message of
/// the user (ADR 23).
fn change(ev: &RecordedEvent) -> Result<Option<Change>, String> {
    if ev.event_type == vault::USER_ERASED {
        let sender_id = vault::keyring::erased_user(&ev.data)
            .ok_or_else(|| format!("a UserErased without a user at {}", ev.position))?;
        return Ok(Some(Change::SenderErased {
            sender_id,
            position: ev.position,
        }));
    }
    if vault::is_erased(&ev.data) {
        return Ok(None);
    }
    if ev.stream_type != RoomEvent::STREAM_TYPE
        || !matches!(
            ev.event_type.as_str(),
            "MessageSent" | "MessageEdited" | "MessageDeleted" | "MessagesExpired"
        )
    {
        return Ok(None);
    }
    let room_id = RoomId::from_stream_id(&ev.stream_id)
        .ok_or_else(|| format!("not a room stream id: {}", ev.stream_id))?;
    let event = RoomEvent::from_stored(&ev.event_type, ev.schema_version, ev.data.clone())
        .map_err(|e| {
            format!(
                "cannot decode {} (schema {}): {e}",
                ev.event_type, ev.schema_version
            )
        })?;
    Ok(match event {
        RoomEvent::MessageSent {
            message_id,
            seq,
            sender_id,
            body,
            ..
        } => Some(Change::Sent(MessageDoc {
            message_id: message_id.0,
            room_id: room_id.0,
            seq: i64::try_from(seq).map_err(|_| format!("seq {seq} out of range"))?,
            sender_id: sender_id.0,
            sent_at: ev.occurred_at,
            body: body.into_inner(),
            sent_position: ev.position,
            position: ev.position,
        })),
        RoomEvent::MessageEdited {
            message_id, body, ..
        } => Some(Change::Edited {
            message_id: message_id.0,
            body: body.into_inner(),
            position: ev.position,
        }),
        RoomEvent::MessageDeleted { message_id, .. } => Some(Change::Deleted {
            message_id: message_id.0,
            position: ev.position,
        }),
        RoomEvent::MessagesExpired { up_to_seq } => Some(Change::RoomExpired {
            room_id: room_id.0,
            up_to_seq: i64::try_from(up_to_seq)
                .map_err(|_| format!("seq {up_to_seq} out of range"))?,
            position: ev.position,
        }),
        _ => None,
    })
}

fn failed(e: SearchError) -> ApplyBatchError {
    match e {
        SearchError::Gap { checkpoint, .. } => ApplyBatchError::Gap { checkpoint },
        other => ApplyBatchError::Failed(anyhow::Error::new(other).context("the search index")),
    }
}

impl Projection for SearchIndex {
    fn name(&self) -> &str {
        SEARCH
    }

    fn checkpoint(&self) -> BoxFuture<'_, anyhow::Result<i64>> {
        Box::pin(async move { Ok(self.backend().await?.checkpoint().await?) })
    }

    fn apply_batch<'a>(
        &'a self,
        batch: Batch<'a>,
    ) -> BoxFuture<'a, Result<Applied, ApplyBatchError>> {
        Box::pin(async move {
            let backend = self.backend().await?;
            let checkpoint = backend.checkpoint().await.map_err(failed)?;
            let fresh = batch.events.partition_point(|e| e.position <= checkpoint);
            let skipped = fresh as u64;
            let events = &batch.events[fresh..];
            let Some(first) = events.first() else {
                return Ok(Applied {
                    checkpoint,
                    applied: 0,
                    skipped,
                    poison: None,
                });
            };
            if first.position != checkpoint + 1 {
                return Err(ApplyBatchError::Gap { checkpoint });
            }
            let mut changes = Vec::new();
            let mut last = checkpoint;
            let mut poison = None;
            for ev in events {
                if !batch.dead_lettered.contains(&ev.position) {
                    match change(ev) {
                        Ok(Some(c)) => changes.push(c),
                        Ok(None) => {}
                        Err(reason) => {
                            poison = Some(Poison {
                                position: ev.position,
                                reason,
                            });
                            break;
                        }
                    }
                }
                last = ev.position;
            }
            if last > checkpoint {
                backend
                    .apply(checkpoint, changes, last)
                    .await
                    .map_err(failed)?;
            }
            Ok(Applied {
                checkpoint: last,
                applied: u64::try_from(last - checkpoint).unwrap_or_default(),
                skipped,
                poison,
            })
        })
    }

    fn reset(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.backend().await?.reset().await?) })
    }

    fn stage(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn Staged>>> {
        Box::pin(async move {
            // Staging needs no live writer: with settings only, the live index is not opened
            // (its writer may be another process, e.g. the platform serving meanwhile).
            let staged = match (self.backend.get(), &self.settings) {
                (Some(backend), _) => backend.stage().await?,
                (None, Some(settings)) => settings.stage().await?,
                (None, None) => anyhow::bail!("a search index without settings or backend"),
            };
            let copy = SearchIndex::new(staged.copy());
            Ok(Box::new(StagedSearch { staged, copy }) as Box<dyn Staged>)
        })
    }
}

/// How many times the last stretch is caught up before the switch: each round reads the log
/// to its head, so more than one is needed only when the live writer runs ahead of the log
/// reads (which it cannot while held; an OpenSearch writer can, and is caught up with after
/// the switch).
const LAST_STRETCH_ROUNDS: usize = 10;

/// A rebuild's copy of the search index ([`Projection::stage`]).
struct StagedSearch {
    staged: Box<dyn StagedIndex>,
    /// The copy as a projection: the same code as the live one, on the copy's backend.
    copy: SearchIndex,
}

impl Staged for StagedSearch {
    fn copy(&self) -> &dyn Projection {
        &self.copy
    }

    fn bulk_loaded(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.staged.bulk_loaded().await?) })
    }

    fn switch<'a>(self: Box<Self>, replay: &'a Replay) -> BoxFuture<'a, anyhow::Result<Switched>> {
        Box::pin(async move {
            let StagedSearch { staged, copy } = *self;
            // Most of the way while the live writer keeps going...
            replay.catch_up(&copy).await?;
            // ...then the last stretch with it held still (where the backend can), until the
            // copy has everything the live index has, so the switch never moves readers back.
            // A backend that cannot hold its live writer is caught up once more after the
            // switch instead: a live writer running ahead of the log reads is not an error.
            staged.hold().await?;
            let after = staged.catch_up_after_switch();
            let mut rounds = 0;
            let mut checkpoint = loop {
                replay.catch_up(&copy).await?;
                let (mine, live) = (copy.checkpoint().await?, staged.live_checkpoint().await?);
                rounds += 1;
                if mine >= live || (after && rounds >= LAST_STRETCH_ROUNDS) {
                    break mine;
                }
                anyhow::ensure!(
                    rounds < LAST_STRETCH_ROUNDS,
                    "the search index's copy stays behind the live one ({mine} < {live})"
                );
            };
            let epoch = staged.switch().await?;
            if after {
                // What the live writer wrote to the old index while the alias moved.
                replay.catch_up(&copy).await?;
                checkpoint = copy.checkpoint().await?;
            }
            tracing::info!(epoch, checkpoint, "search index rebuilt and switched");
            Ok(Switched { epoch, checkpoint })
        })
    }

    fn abandon(self: Box<Self>) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.staged.abandon().await?) })
    }
}
