//! Avatars (issue #18): the picture a user shows beside their name. An upload is read whole (it
//! is small: [`AVATAR_MAX_BYTES`]), its type sniffed from its bytes (only
//! [`events::avatar::ACCEPTED_TYPES`]), decoded within bounds and stored as the server's own
//! square rendering, [`AVATAR_SIDE`] pixels at most, under a key of its user
//! (`avatars/<user_id>/<avatar_id>`), never the bytes the client sent. The user's stream then
//! names it with an `AvatarChanged` (`routes::avatars`).
//!
//! Every blob of a user is under their prefix, so an erasure deletes them all at once
//! ([`Avatars::delete_all`]), including any an interrupted upload left behind.

use blobs::BlobStore;
use bytes::Bytes;
use events::avatar::{ACCEPTED_TYPES, AvatarRef};
use events::{AvatarId, UserId};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The largest upload accepted (413 `avatar_too_large` above).
pub const AVATAR_MAX_BYTES: u64 = events::avatar::MAX_UPLOAD_BYTES;

/// The stored picture's side, in pixels (a smaller upload keeps its own, never upscaled).
pub const AVATAR_SIDE: u32 = 256;

/// Avatars decoded at once: each decode may take up to the decoder's 256 MiB.
const RENDERS_AT_ONCE: usize = 1;

pub use events::avatar::{blob_key, prefix};

/// Why an upload was refused; nothing is stored then.
#[derive(Debug, thiserror::Error)]
pub enum AvatarError {
    #[error("the image is larger than {max_bytes} bytes")]
    TooLarge { max_bytes: u64 },
    #[error("the image is wider or taller than can be decoded: {0}")]
    TooManyPixels(String),
    #[error("the image is empty")]
    Empty,
    #[error("images of type {0} are not accepted")]
    TypeNotAllowed(String),
    #[error("the image does not decode: {0}")]
    Unreadable(String),
    #[error("the upload did not arrive whole")]
    Body,
    #[error("blob storage failed: {0}")]
    Store(#[from] blobs::BlobError),
}

/// Avatars' blobs.
#[derive(Clone)]
pub struct Avatars {
    store: BlobStore,
    renders: Arc<Semaphore>,
}

impl Avatars {
    pub fn new(store: BlobStore) -> Avatars {
        Avatars {
            store,
            renders: Arc::new(Semaphore::new(RENDERS_AT_ONCE)),
        }
    }

    /// Reads `body` (at most [`AVATAR_MAX_BYTES`]), checks its type from its bytes, renders
    /// it square and stores the rendering as a new avatar of `user`: what the user's stream
    /// will name. Nothing is stored when it is refused.
    pub async fn store<S, E>(&self, user: UserId, body: S) -> Result<AvatarRef, AvatarError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    {
        let bytes = read_limited(body, AVATAR_MAX_BYTES).await?;
        if bytes.is_empty() {
            return Err(AvatarError::Empty);
        }
        let sniffed = blobs::sniff(&bytes).unwrap_or("application/octet-stream");
        if !ACCEPTED_TYPES.contains(&sniffed) {
            return Err(AvatarError::TypeNotAllowed(sniffed.to_owned()));
        }
        let rendered = {
            let _one = self
                .renders
                .acquire()
                .await
                .map_err(|_| AvatarError::Unreadable("shutting down".into()))?;
            tokio::task::spawn_blocking(move || blobs::square_thumbnail(&bytes, AVATAR_SIDE))
                .await
                .map_err(|e| AvatarError::Unreadable(e.to_string()))?
        }
        .map_err(|e| match e {
            blobs::ThumbnailError::TooLarge(m) => AvatarError::TooManyPixels(m),
            other => AvatarError::Unreadable(other.to_string()),
        })?;
        let avatar = AvatarRef {
            avatar_id: AvatarId::new(),
            content_type: rendered.content_type.to_owned(),
            size: rendered.bytes.len() as u64,
            sha256: format!("{:x}", Sha256::digest(&rendered.bytes)),
            side: rendered.thumb_width,
        };
        self.store
            .put_bytes(
                &blob_key(user, avatar.avatar_id),
                Bytes::from(rendered.bytes),
            )
            .await?;
        Ok(avatar)
    }

    /// Deletes one avatar's blob (a failure is logged: the blob is then an orphan under its
    /// user's prefix, never served, and deleted with the rest at an erasure).
    pub async fn delete(&self, user: UserId, id: AvatarId) {
        let key = blob_key(user, id);
        if let Err(e) = self.store.delete(&key).await {
            tracing::warn!(error = %e, %key, "deleting an avatar failed");
        }
    }

    /// Deletes every avatar blob of `user` (an erasure; a failure is logged).
    pub async fn delete_all(&self, user: UserId) {
        match self.store.delete_prefix(&prefix(user)).await {
            Ok(n) => tracing::debug!(%user, deleted = n, "avatars deleted"),
            Err(e) => tracing::warn!(error = %e, %user, "deleting a user's avatars failed"),
        }
    }
}

/// `body` whole, or [`AvatarError::TooLarge`] as soon as more than `max_bytes` arrived.
async fn read_limited<S, E>(mut body: S, max_bytes: u64) -> Result<Vec<u8>, AvatarError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
{
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| AvatarError::Body)?;
        if (out.len() + chunk.len()) as u64 > max_bytes {
            return Err(AvatarError::TooLarge { max_bytes });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
        futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn a_body_is_read_whole_up_to_the_limit_and_refused_past_it() {
        let whole = read_limited(body(&[b"abc", b"de"]), 5).await;
        assert!(matches!(whole.as_deref(), Ok(b"abcde")));
        let over = read_limited(body(&[b"abc", b"def"]), 5).await;
        assert!(matches!(over, Err(AvatarError::TooLarge { max_bytes: 5 })));
        let failing = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("cut")),
        ]);
        assert!(matches!(
            read_limited(failing, 5).await,
            Err(AvatarError::Body)
        ));
    }

    #[test]
    fn keys_are_the_users() {
        let user = UserId(uuid::Uuid::from_u128(1));
        let id = AvatarId(uuid::Uuid::from_u128(2));
        assert_eq!(blob_key(user, id), format!("{}/{}", prefix(user), id),);
    }
}
