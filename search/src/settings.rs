//! Which index a process uses, from the layered settings every service reads (flat keys:
//! `APP_SEARCH_BACKEND`, `APP_DATA_DIR`, `APP_OPENSEARCH_URL`, …), and opening it.

use std::path::PathBuf;
use std::sync::Arc;

use config::ConfigError;
use config::builder::{ConfigBuilder, DefaultState};
use serde::{Deserialize, Deserializer};

use crate::backend::{SearchBackend, StagedIndex};
use crate::opensearch::OpenSearchIndex;
use crate::tantivy_index::{TantivyIndex, WriterSettings};

/// The search backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// An embedded index under `data_dir` (the default: no server to run).
    #[default]
    Tantivy,
    /// An OpenSearch cluster at `opensearch_url`.
    OpenSearch,
}

/// The search section of a service's settings (flattened into it).
#[derive(Clone, Debug, Deserialize)]
pub struct SearchSettings {
    /// `tantivy` or `opensearch` (`APP_SEARCH_BACKEND`).
    pub search_backend: BackendKind,
    /// The platform's data directory (`APP_DATA_DIR`); the Tantivy index is its `search/`.
    pub data_dir: PathBuf,
    /// The cluster (`APP_OPENSEARCH_URL`).
    pub opensearch_url: String,
    /// Index names start with it: the alias is `<prefix>-messages`.
    pub opensearch_index_prefix: String,
    /// Replicas of each index (0 on a single node).
    #[serde(deserialize_with = "number")]
    pub opensearch_replicas: u32,
    /// The Tantivy writer's memory budget, in MiB.
    #[serde(deserialize_with = "number")]
    pub search_writer_heap_mib: u32,
}

fn number<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        N(u32),
        S(String),
    }
    match N::deserialize(d)? {
        N::N(n) => Ok(n),
        N::S(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

impl SearchSettings {
    pub fn defaults(
        builder: ConfigBuilder<DefaultState>,
    ) -> Result<ConfigBuilder<DefaultState>, ConfigError> {
        builder
            .set_default("search_backend", "tantivy")?
            .set_default("data_dir", "data")?
            .set_default("opensearch_url", "http://127.0.0.1:9200")?
            .set_default("opensearch_index_prefix", "chat")?
            .set_default("opensearch_replicas", 0)?
            .set_default("search_writer_heap_mib", 64)
    }

    /// Where the Tantivy index lives.
    pub fn index_dir(&self) -> PathBuf {
        self.data_dir.join("search")
    }

    /// The index as its one writer (the search projection).
    pub fn open_writer(&self) -> anyhow::Result<Arc<dyn SearchBackend>> {
        match self.search_backend {
            BackendKind::Tantivy => Ok(Arc::new(TantivyIndex::open_writer(
                &self.index_dir(),
                WriterSettings {
                    threads: 1,
                    heap_bytes: (self.search_writer_heap_mib as usize) << 20,
                },
            )?)),
            BackendKind::OpenSearch => Ok(Arc::new(self.opensearch()?)),
        }
    }

    /// The index to search (a query API in another process than the writer).
    pub fn open_reader(&self) -> anyhow::Result<Arc<dyn SearchBackend>> {
        match self.search_backend {
            BackendKind::Tantivy => Ok(Arc::new(TantivyIndex::open_reader(&self.index_dir())?)),
            BackendKind::OpenSearch => Ok(Arc::new(self.opensearch()?)),
        }
    }

    /// Starts a blue/green rebuild of the index (see [`SearchBackend::stage`]) without opening
    /// its live writer, which may be another process's (the platform serving while `projector
    /// rebuild` runs).
    pub async fn stage(&self) -> anyhow::Result<Box<dyn StagedIndex>> {
        match self.search_backend {
            BackendKind::Tantivy => {
                let dir = self.index_dir();
                let bulk = WriterSettings::bulk();
                let settings = WriterSettings {
                    heap_bytes: bulk
                        .heap_bytes
                        .max((self.search_writer_heap_mib as usize) << 20),
                    ..bulk
                };
                let staged =
                    tokio::task::spawn_blocking(move || TantivyIndex::stage_in(&dir, settings))
                        .await??;
                Ok(Box::new(staged))
            }
            BackendKind::OpenSearch => Ok(Box::new(self.opensearch()?.stage_next().await?)),
        }
    }

    fn opensearch(&self) -> anyhow::Result<OpenSearchIndex> {
        Ok(
            OpenSearchIndex::new(&self.opensearch_url, &self.opensearch_index_prefix)?
                .with_replicas(self.opensearch_replicas),
        )
    }
}
