//! What a message says about the files sent with it. The bytes live in blob storage under
//! the attachment's id; events carry only this description, so the log stays small and a
//! projection never reads a file.

use crate::ids::AttachmentId;
use crate::values::FileName;
use serde::{Deserialize, Serialize};

/// Most attachments one message may carry.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 10;

/// One file sent with a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub attachment_id: AttachmentId,
    pub name: FileName,
    /// Bytes.
    pub size: u64,
    /// Sniffed from the bytes when uploaded, never taken from the client
    /// (`application/octet-stream` when not recognised).
    pub content_type: String,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// An image's dimensions; present when it decoded and has a thumbnail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSize>,
}

/// An image's width and height in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSize {
    pub width: u32,
    pub height: u32,
}
