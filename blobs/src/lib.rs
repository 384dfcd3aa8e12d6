//! Blob storage for attachments (issue 17) and avatars, and what is learnt from a blob's bytes:
//!
//! - [`store`]: one type, [`BlobStore`], over the `object_store` crate: the local filesystem by
//!   default ([`Backend::Local`]), S3-compatible storage for clusters ([`Backend::S3`]). Uploads
//!   are streamed (memory per upload is bounded by one part, never the whole blob) and hashed
//!   (SHA-256) as they pass; one over its size limit, or whose body fails, leaves nothing stored.
//!   Downloads are streams, whole or a byte range.
//! - [`sniff()`]: the content type from the bytes (magic numbers), never from the client, and
//!   never an HTML-like type.
//! - [`thumbnail()`]: a bounded decode of an image and a small PNG or JPEG of it;
//!   [`square_thumbnail()`], of its middle square (avatars).
//!
//! No HTTP types: the routes that serve these live in the API crates.

pub mod settings;
pub mod sniff;
pub mod store;
pub mod thumbnail;

pub use sniff::sniff;
pub use store::{
    Backend, Blob, BlobError, BlobStore, LOCAL_PART_SIZE, PutError, S3_PART_SIZE, S3Config,
    SNIFF_BYTES, Stored,
};
pub use thumbnail::{Thumbnail, ThumbnailError, square_thumbnail, thumbnail};
