//! Uploads (issue #17): a file is streamed to blob storage, its type sniffed from its bytes,
//! an image thumbnailed, and the upload described in `attachments` (beside the log, like
//! credentials). A send names uploads by id; they are then *claimed* (checked to be the
//! sender's, in this room) and their description goes into the `MessageSent`. Uploads no
//! message sent are collected after a while, with their blobs.

use blobs::settings::BlobSettings;
use blobs::{BlobStore, PutError};
use bytes::Bytes;
use events::attachment::{Attachment, ImageSize};
use events::values::FileName;
use events::{AttachmentId, RoomId, UserId};
use futures::Stream;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// A thumbnail's longest side, in pixels.
pub const THUMBNAIL_SIDE: u32 = 320;

/// Images decoded for thumbnails at once: each may take up to the decoder's 256 MiB.
const THUMBNAILS_AT_ONCE: usize = 2;

/// Unsent uploads deleted per collection round.
const COLLECT_BATCH: i64 = 500;

fn seq_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// The blob key of an attachment's bytes.
pub fn blob_key(id: AttachmentId) -> String {
    format!("attachments/{id}")
}

/// The blob key of an image attachment's thumbnail.
pub fn thumbnail_key(id: AttachmentId) -> String {
    format!("attachments/{id}.thumbnail")
}

/// Why an upload or a claim was refused.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error("the file is larger than {max_bytes} bytes")]
    TooLarge { max_bytes: u64 },
    #[error("the file is empty")]
    Empty,
    #[error("files of type {0} are not accepted")]
    TypeNotAllowed(String),
    #[error("the upload did not arrive whole")]
    Body,
    #[error("no such attachment uploaded by you to this room")]
    NotFound,
    #[error("blob storage failed: {0}")]
    Store(#[from] blobs::BlobError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Uploads and their blobs.
#[derive(Clone)]
pub struct Attachments {
    pool: PgPool,
    store: BlobStore,
    settings: BlobSettings,
    thumbnails: Arc<Semaphore>,
}

impl Attachments {
    pub fn new(pool: PgPool, store: BlobStore, settings: BlobSettings) -> Attachments {
        Attachments {
            pool,
            store,
            settings,
            thumbnails: Arc::new(Semaphore::new(THUMBNAILS_AT_ONCE)),
        }
    }

    pub fn max_bytes(&self) -> u64 {
        self.settings.attachment_max_bytes
    }

    /// Streams `body` into blob storage as a new attachment of `room_id` by `uploader`. Nothing
    /// is left stored when it is refused (empty, too large, a type not accepted, a body that
    /// broke).
    pub async fn upload<S, E>(
        &self,
        room_id: RoomId,
        uploader: UserId,
        name: FileName,
        body: S,
    ) -> Result<Attachment, AttachmentError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::error::Error + Send + Sync + 'static,
    {
        let id = AttachmentId::new();
        let key = blob_key(id);
        let stored = self
            .store
            .put_stream(&key, body, self.max_bytes())
            .await
            .map_err(|e| match e {
                PutError::TooLarge { max_bytes } => AttachmentError::TooLarge { max_bytes },
                PutError::Body(_) => AttachmentError::Body,
                PutError::Store(e) => AttachmentError::Store(e),
            })?;
        if stored.size == 0 {
            self.store.delete(&key).await?;
            return Err(AttachmentError::Empty);
        }
        let content_type = blobs::sniff(&stored.head).unwrap_or("application/octet-stream");
        if !self.settings.allows(content_type) {
            self.store.delete(&key).await?;
            return Err(AttachmentError::TypeNotAllowed(content_type.to_owned()));
        }
        let image = if content_type.starts_with("image/") {
            self.thumbnail(id).await
        } else {
            None
        };
        let attachment = Attachment {
            attachment_id: id,
            name,
            size: stored.size,
            content_type: content_type.to_owned(),
            sha256: stored.sha256,
            image,
        };
        let inserted = sqlx::query(
            "INSERT INTO attachments (attachment_id, room_id, uploader_id, name, size, \
             content_type, sha256, width, height) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id.0)
        .bind(room_id.0)
        .bind(uploader.0)
        .bind(attachment.name.as_str())
        .bind(i64::try_from(attachment.size).unwrap_or(i64::MAX))
        .bind(&attachment.content_type)
        .bind(&attachment.sha256)
        .bind(image.map(|i| i64::from(i.width)))
        .bind(image.map(|i| i64::from(i.height)))
        .execute(&self.pool)
        .await;
        if let Err(e) = inserted {
            self.forget(id).await;
            return Err(e.into());
        }
        Ok(attachment)
    }

    /// An image's thumbnail, stored beside it, and its size; `None` when it does not decode
    /// within the decoder's limits (it is then sent as a file).
    async fn thumbnail(&self, id: AttachmentId) -> Option<ImageSize> {
        let _one = self.thumbnails.acquire().await.ok()?;
        let blob = self.store.get(&blob_key(id), None).await.ok()?;
        let bytes = read_all(blob).await?;
        let made = tokio::task::spawn_blocking(move || blobs::thumbnail(&bytes, THUMBNAIL_SIDE))
            .await
            .ok()?
            .map_err(|e| tracing::debug!(error = %e, %id, "no thumbnail"))
            .ok()?;
        self.store
            .put_bytes(&thumbnail_key(id), Bytes::from(made.bytes))
            .await
            .map_err(|e| tracing::warn!(error = %e, %id, "storing a thumbnail failed"))
            .ok()?;
        Some(ImageSize {
            width: made.width,
            height: made.height,
        })
    }

    /// The descriptions of `ids` (each at most once, in the order given) when each is an
    /// upload of `uploader` to `room_id`; they are then safe from collection for a while.
    pub async fn claim(
        &self,
        room_id: RoomId,
        uploader: UserId,
        ids: &[AttachmentId],
    ) -> Result<Vec<Attachment>, AttachmentError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let uuids: Vec<Uuid> = ids.iter().map(|i| i.0).collect();
        let rows: Vec<Row> = sqlx::query_as(
            "UPDATE attachments SET claimed_at = now() \
             WHERE attachment_id = ANY($1) AND room_id = $2 AND uploader_id = $3 \
             RETURNING attachment_id, name, size, content_type, sha256, width, height",
        )
        .bind(&uuids)
        .bind(room_id.0)
        .bind(uploader.0)
        .fetch_all(&self.pool)
        .await?;
        ids.iter()
            .map(|id| {
                rows.iter()
                    .find(|r| r.attachment_id == id.0)
                    .ok_or(AttachmentError::NotFound)
                    .and_then(Row::attachment)
            })
            .collect()
    }

    /// `ids` were sent with a message: never collected.
    pub async fn sent(&self, ids: &[AttachmentId]) -> Result<(), sqlx::Error> {
        let uuids: Vec<Uuid> = ids.iter().map(|i| i.0).collect();
        sqlx::query("UPDATE attachments SET sent = TRUE WHERE attachment_id = ANY($1)")
            .bind(&uuids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Deletes up to one batch of uploads no message sent within the time to live, with their
    /// blobs; how many. An upload a committed message names (the process stopped before
    /// marking it sent) is marked instead: the log is asked, not the flag.
    pub async fn collect(&self) -> Result<usize, AttachmentError> {
        let ttl = i64::try_from(self.settings.attachment_ttl_secs).unwrap_or(i64::MAX);
        let stale: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT attachment_id, room_id FROM attachments \
             WHERE NOT sent AND claimed_at < now() - make_interval(secs => $1) \
             ORDER BY claimed_at LIMIT $2",
        )
        .bind(ttl as f64)
        .bind(COLLECT_BATCH)
        .fetch_all(&self.pool)
        .await?;
        let mut collected = 0;
        for (attachment_id, room_id) in stale {
            let id = AttachmentId(attachment_id);
            let named: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = $1 \
                 AND event_type = 'MessageSent' \
                 AND data -> 'attachments' @> jsonb_build_array(\
                     jsonb_build_object('attachment_id', $2::text)))",
            )
            .bind(RoomId(room_id).stream_id())
            .bind(attachment_id.to_string())
            .fetch_one(&self.pool)
            .await?;
            if named {
                self.sent(&[id]).await?;
                continue;
            }
            self.forget(id).await;
            sqlx::query("DELETE FROM attachments WHERE attachment_id = $1 AND NOT sent")
                .bind(attachment_id)
                .execute(&self.pool)
                .await?;
            collected += 1;
        }
        Ok(collected)
    }

    /// Erases the names of `uploader`'s uploads in the caller's transaction (ADR 23); the ids,
    /// whose bytes [`Attachments::delete_blobs`] deletes once it committed.
    pub async fn erase_names(
        conn: &mut sqlx::PgConnection,
        uploader: Uuid,
    ) -> Result<Vec<AttachmentId>, sqlx::Error> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE attachments SET name = $2 WHERE uploader_id = $1 RETURNING attachment_id",
        )
        .bind(uploader)
        .bind(vault::ERASED_TEXT)
        .fetch_all(&mut *conn)
        .await?;
        Ok(ids.into_iter().map(AttachmentId).collect())
    }

    /// The room's messages after `after_seq` up to `up_to_seq` expired (its retention): each
    /// upload they sent that no later message of the room sent too is deleted, its
    /// description and its blobs (a later send cannot claim it any more). How many. Read from
    /// the log, so the files of deleted messages go too.
    pub async fn expire(
        &self,
        room_id: RoomId,
        after_seq: u64,
        up_to_seq: u64,
    ) -> Result<usize, sqlx::Error> {
        let (after, up_to) = (seq_i64(after_seq), seq_i64(up_to_seq));
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT (a ->> 'attachment_id')::uuid FROM events e, \
             jsonb_array_elements(e.data -> 'attachments') a \
             WHERE e.stream_id = $1 AND e.event_type = 'MessageSent' \
             AND jsonb_typeof(e.data -> 'attachments') = 'array' \
             AND (e.data ->> 'seq')::bigint > $2 AND (e.data ->> 'seq')::bigint <= $3",
        )
        .bind(room_id.stream_id())
        .bind(after)
        .bind(up_to)
        .fetch_all(&self.pool)
        .await?;
        let mut expired = 0;
        for attachment_id in ids {
            let sent_later: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM events WHERE stream_id = $1 \
                 AND event_type = 'MessageSent' AND (data ->> 'seq')::bigint > $2 \
                 AND data -> 'attachments' @> jsonb_build_array(\
                     jsonb_build_object('attachment_id', $3::text)))",
            )
            .bind(room_id.stream_id())
            .bind(up_to)
            .bind(attachment_id.to_string())
            .fetch_one(&self.pool)
            .await?;
            if sent_later {
                continue;
            }
            let gone =
                sqlx::query("DELETE FROM attachments WHERE attachment_id = $1 AND room_id = $2")
                    .bind(attachment_id)
                    .bind(room_id.0)
                    .execute(&self.pool)
                    .await?;
            if gone.rows_affected() > 0 {
                self.forget(AttachmentId(attachment_id)).await;
                expired += 1;
            }
        }
        Ok(expired)
    }

    /// Deletes the blobs of `ids` (failures are logged).
    pub async fn delete_blobs(&self, ids: &[AttachmentId]) {
        for id in ids {
            self.forget(*id).await;
        }
    }

    /// Deletes an attachment's blobs (a failure is logged: the blob is then an orphan, never
    /// served, as no row or message names it).
    async fn forget(&self, id: AttachmentId) {
        for key in [blob_key(id), thumbnail_key(id)] {
            if let Err(e) = self.store.delete(&key).await {
                tracing::warn!(error = %e, %key, "deleting a blob failed");
            }
        }
    }

    /// Collects unsent uploads forever, every quarter of their time to live (at least every
    /// 10 s, at most every 10 min).
    pub async fn collect_forever(self) {
        let every = Duration::from_secs(self.settings.attachment_ttl_secs / 4)
            .clamp(Duration::from_secs(10), Duration::from_secs(600));
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match self.collect().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(collected = n, "unsent uploads deleted"),
                Err(e) => tracing::warn!(error = %e, "collecting unsent uploads failed"),
            }
        }
    }
}

async fn read_all(blob: blobs::Blob) -> Option<Vec<u8>> {
    use futures::TryStreamExt;
    let mut out = Vec::with_capacity(usize::try_from(blob.size).ok()?);
    let mut stream = blob.stream;
    while let Some(chunk) = stream.try_next().await.ok()? {
        out.extend_from_slice(&chunk);
    }
    Some(out)
}

#[derive(sqlx::FromRow)]
struct Row {
    attachment_id: Uuid,
    name: String,
    size: i64,
    content_type: String,
    sha256: String,
    width: Option<i32>,
    height: Option<i32>,
}

impl Row {
    fn attachment(&self) -> Result<Attachment, AttachmentError> {
        Ok(Attachment {
            attachment_id: AttachmentId(self.attachment_id),
            name: FileName::parse(&self.name).map_err(|_| AttachmentError::NotFound)?,
            size: u64::try_from(self.size).unwrap_or(0),
            content_type: self.content_type.clone(),
            sha256: self.sha256.clone(),
            image: match (self.width, self.height) {
                (Some(w), Some(h)) => Some(ImageSize {
                    width: u32::try_from(w).unwrap_or(0),
                    height: u32::try_from(h).unwrap_or(0),
                }),
                _ => None,
            },
        })
    }
}
