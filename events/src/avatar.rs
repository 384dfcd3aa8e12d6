//! What a user's avatar is in the log: a reference to an image in blob storage, never the
//! bytes. The image is the server's own square rendering of what the user uploaded (the
//! command side decodes the upload and stores a small PNG or JPEG), under a random id.
//!
//! Not personal data to seal (ADR 23): the reference is a random id, a content type, a size
//! and a digest, none of which says anything about the person. The picture itself lives in
//! blob storage under a key of its user (`avatars/<user_id>/<avatar_id>`), outside the log,
//! and an erasure deletes it there; a rebuild after an erasure finds `UserErased` after every
//! `AvatarChanged` and clears the avatar as the live read models did.

use crate::ids::{AvatarId, UserId};
use serde::{Deserialize, Serialize};

/// The largest upload accepted (413 `avatar_too_large` above).
pub const MAX_UPLOAD_BYTES: u64 = 2 * 1024 * 1024;

/// The content types an uploaded avatar may have, as sniffed from its bytes.
pub const ACCEPTED_TYPES: &[&str] = &["image/png", "image/jpeg", "image/webp", "image/gif"];

/// Where `user`'s avatar `avatar` is served (query-api's `GET /v1/users/{user_id}/avatar`):
/// the `avatar_url` every read and answer gives. The id in the query makes each picture's URL
/// its own, so a client may cache it for as long as it is named.
pub fn url(user: UserId, avatar: AvatarId) -> String {
    format!("/v1/users/{user}/avatar?v={avatar}")
}

/// The prefix of every blob of `user`'s avatars (in blob storage, beside the log).
pub fn prefix(user: UserId) -> String {
    format!("avatars/{user}")
}

/// The blob key of `user`'s avatar `avatar`: written by command-api, served by query-api.
pub fn blob_key(user: UserId, avatar: AvatarId) -> String {
    format!("{}/{avatar}", prefix(user))
}

/// One stored avatar image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvatarRef {
    /// The image's id in blob storage: new for every upload, so it also names this version of
    /// the picture (an `ETag`, a cache key).
    pub avatar_id: AvatarId,
    /// What the stored image is: `image/png` or `image/jpeg` (the server's rendering).
    pub content_type: String,
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 of the stored bytes, lowercase hex: the same picture uploaded again is no
    /// change.
    pub sha256: String,
    /// The image's width and height in pixels (it is square).
    pub side: u32,
}

impl AvatarRef {
    /// Whether `other` shows the same picture (same stored bytes), whatever its id.
    pub fn same_picture(&self, other: &AvatarRef) -> bool {
        self.sha256 == other.sha256 && self.content_type == other.content_type
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_url_names_the_user_and_the_picture() {
        let user = UserId(Uuid::from_u128(1));
        let avatar = AvatarId(Uuid::from_u128(2));
        assert_eq!(
            url(user, avatar),
            "/v1/users/00000000-0000-0000-0000-000000000001/avatar\
             ?v=00000000-0000-0000-0000-000000000002"
        );
    }
}
