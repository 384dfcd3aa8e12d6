//! Message search, one contract and two backends (docs/architecture.md D5, ADR 10):
//!
//! - [`analysis`]: how text becomes terms (words split at punctuation, folded, every CJK
//!   character a term, word starts for partial words), the same for both backends;
//! - [`query`]: the `q` language (words, `"phrases"`, `prefix*`, `in:`, `from:`, `before:`,
//!   `after:`, `has:link`);
//! - [`backend`]: the [`SearchBackend`] trait the `search` projection writes through and the
//!   query API reads through, and what flows through it;
//! - [`tantivy_index`]: the embedded default, an index directory on the host, kept as
//!   generations for blue/green rebuilds ([`generations`]);
//! - [`opensearch`]: an OpenSearch cluster, written with external versions and read through an
//!   alias;
//! - [`highlight`]: snippets as marked plain-text segments; [`cursor`]: opaque page cursors.

pub mod analysis;
pub mod backend;
pub mod cursor;
pub mod generations;
pub mod highlight;
pub mod opensearch;
pub mod query;
pub mod settings;
pub mod tantivy_index;

pub use backend::{
    After, BoxFuture, Change, Hit, MessageDoc, SearchBackend, SearchError, SearchPage,
    SearchRequest, Sort, StagedIndex,
};
pub use cursor::Cursor;
pub use opensearch::OpenSearchIndex;
pub use query::{Clause, ParsedQuery, QueryError};
pub use settings::{BackendKind, SearchSettings};
pub use tantivy_index::{TantivyIndex, TantivyStaged};

/// The name of the search projection (its checkpoint, consumer, metrics and dead letters).
pub const PROJECTION: &str = "search";
