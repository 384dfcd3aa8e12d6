//! Where attachments are kept and what is accepted, from the layered settings every service
//! reads (flat keys, flattened into a service's settings: `APP_BLOB_BACKEND`,
//! `APP_ATTACHMENT_MAX_BYTES`, …).

use std::path::{Path, PathBuf};

use config::ConfigError;
use config::builder::{ConfigBuilder, DefaultState};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

use crate::store::{Backend, BlobError, BlobStore, S3Config};

/// The blob backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Files under `blob_dir` (the default: nothing to run).
    #[default]
    Local,
    /// An S3-compatible bucket (`s3_*`).
    S3,
}

/// The attachments section of a service's settings. `Debug` shows no secret.
#[derive(Clone, Debug, Deserialize)]
pub struct BlobSettings {
    /// `local` or `s3` (`APP_BLOB_BACKEND`).
    pub blob_backend: BackendKind,
    /// The local backend's directory (`APP_BLOB_DIR`); empty: the service's default, the
    /// platform's data directory's `blobs/`.
    pub blob_dir: String,
    /// The S3 endpoint (`APP_S3_ENDPOINT`); empty: AWS itself, by region.
    pub s3_endpoint: String,
    pub s3_bucket: String,
    pub s3_region: String,
    pub s3_access_key_id: String,
    pub s3_secret_access_key: SecretString,
    /// Largest upload accepted (413 `attachment_too_large` above); 25 MiB by default.
    #[serde(deserialize_with = "number")]
    pub attachment_max_bytes: u64,
    /// An upload no message referenced is deleted this long after it was last named.
    #[serde(deserialize_with = "number")]
    pub attachment_ttl_secs: u64,
    /// Content types accepted, as sniffed from the bytes: a comma-separated list of types
    /// and `type/*` families. `application/octet-stream` stands for "not recognised".
    pub attachment_types: String,
}

fn number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        N(u64),
        S(String),
    }
    match N::deserialize(d)? {
        N::N(n) => Ok(n),
        N::S(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

/// What is accepted by default: what people share in chats. Anything not recognised is
/// kept as `application/octet-stream` and only ever served as a download.
pub const DEFAULT_TYPES: &str = "image/*,video/*,audio/*,application/pdf,application/zip,\
    application/gzip,application/x-7z-compressed,application/x-tar,application/vnd.*,\
    application/msword,application/rtf,application/epub+zip,application/octet-stream";

impl BlobSettings {
    pub fn defaults(
        builder: ConfigBuilder<DefaultState>,
    ) -> Result<ConfigBuilder<DefaultState>, ConfigError> {
        builder
            .set_default("blob_backend", "local")?
            .set_default("blob_dir", "")?
            .set_default("s3_endpoint", "")?
            .set_default("s3_bucket", "chat")?
            .set_default("s3_region", "us-east-1")?
            .set_default("s3_access_key_id", "")?
            .set_default("s3_secret_access_key", "")?
            .set_default("attachment_max_bytes", 25u64 << 20)?
            .set_default("attachment_ttl_secs", 24 * 3600)?
            .set_default("attachment_types", DEFAULT_TYPES)
    }

    /// The backend these settings name; `default_dir` when the local one has no `blob_dir`.
    pub fn backend(&self, default_dir: &Path) -> Backend {
        match self.blob_backend {
            BackendKind::Local => Backend::Local {
                dir: if self.blob_dir.is_empty() {
                    default_dir.to_path_buf()
                } else {
                    PathBuf::from(&self.blob_dir)
                },
            },
            BackendKind::S3 => Backend::S3(S3Config {
                endpoint: (!self.s3_endpoint.is_empty()).then(|| self.s3_endpoint.clone()),
                bucket: self.s3_bucket.clone(),
                region: self.s3_region.clone(),
                access_key_id: self.s3_access_key_id.clone(),
                secret_access_key: self.s3_secret_access_key.clone(),
                allow_http: self.s3_endpoint.starts_with("http://"),
            }),
        }
    }

    /// Opens the store these settings name.
    pub fn open(&self, default_dir: &Path) -> Result<BlobStore, BlobError> {
        BlobStore::open(&self.backend(default_dir))
    }

    /// Whether a sniffed content type is accepted.
    pub fn allows(&self, content_type: &str) -> bool {
        self.attachment_types
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .any(|t| match t.strip_suffix('*') {
                Some(family) => content_type.starts_with(family),
                None => content_type == t,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(types: &str) -> BlobSettings {
        BlobSettings {
            blob_backend: BackendKind::Local,
            blob_dir: String::new(),
            s3_endpoint: String::new(),
            s3_bucket: "chat".into(),
            s3_region: "us-east-1".into(),
            s3_access_key_id: String::new(),
            s3_secret_access_key: SecretString::from(String::new()),
            attachment_max_bytes: 1,
            attachment_ttl_secs: 1,
            attachment_types: types.into(),
        }
    }

    #[test]
    fn types_match_exactly_or_by_family() {
        let s = settings(DEFAULT_TYPES);
        for ok in [
            "image/png",
            "application/pdf",
            "application/vnd.ms-excel",
            "application/octet-stream",
        ] {
            assert!(s.allows(ok), "{ok}");
        }
        for refused in ["text/html", "application/x-msdownload", "application/pdfx"] {
            assert!(!s.allows(refused), "{refused}");
        }
        assert!(!settings("image/png").allows("application/octet-stream"));
    }
}
