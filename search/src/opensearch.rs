//! The cluster backend: an OpenSearch index behind the alias `<prefix>-messages`.
//!
//! - An index template (`<prefix>-messages-template`) gives every `<prefix>-messages-*` index
//!   the analysis of [`crate::analysis`] in Lucene's terms ([`template`]), so a rebuild can fill
//!   a fresh index and swap the alias atomically.
//! - Documents are written in bulk with external versions: a message's version is the log
//!   position of the last event applied to it, so a replay of older events can never replace
//!   newer data. A deleted message becomes a tombstone document (with the delete's position as
//!   its version) rather than being removed: a removed document's version is forgotten after a
//!   while, and a replayed send would bring it back. An erased sender's messages, and a room's
//!   messages its retention expired, become tombstones the same way (listed by a search on
//!   `sender_id`, or on `room_id` and a range of `seq`, after a refresh, rather than removed by
//!   `_delete_by_query`).
//! - The checkpoint is a document of its own (`_checkpoint`), written after the documents it
//!   covers, so it is never ahead of them; the events between it and the documents are
//!   re-applied after a crash, harmlessly (the versions refuse older writes).
//! - Blue/green rebuilds ([`OpenSearchStaged`]): a copy fills `<prefix>-messages-<n+1>`
//!   directly, then one `_aliases` request moves the alias onto it. So that a writer never
//!   moves a checkpoint over documents it did not write, every write names the concrete index
//!   its checkpoint was read from (not the alias), and the checkpoint moves only if its
//!   document is still the one read (`if_seq_no`/`if_primary_term`). A live writer that wrote
//!   to the old index while the alias moved finds the new index's checkpoint on its next
//!   write and the framework fills the gap from the log.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use opensearch::http::headers::HeaderMap;
use opensearch::http::transport::Transport;
use opensearch::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::analysis::{self, MAX_PREFIX, MIN_PREFIX};
use crate::backend::{
    BoxFuture, Change, Hit, MessageDoc, SearchBackend, SearchError, SearchPage, SearchRequest,
    Sort, StagedIndex,
};
use crate::query::Clause;

/// The id of the checkpoint document.
const CHECKPOINT_ID: &str = "_checkpoint";
/// How often an index is refreshed (a sent message is searchable within a second).
const REFRESH_INTERVAL: &str = "500ms";
/// Longest wait for one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The CJK ranges of [`analysis::is_cjk`] as a Java regex class.
const CJK_CLASS: &str = "[\\u1100-\\u11FF\\u3040-\\u30FF\\u3130-\\u318F\\u31F0-\\u31FF\\u3400-\\u4DBF\\u4E00-\\u9FFF\\uAC00-\\uD7AF\\uF900-\\uFAFF\\uFF66-\\uFF9F\\x{20000}-\\x{2FFFF}]";

/// The index template: [`crate::analysis`]'s rules for Lucene, and the document's mapping.
pub fn template(prefix: &str, replicas: u32) -> Value {
    json!({
        "index_patterns": [format!("{prefix}-messages-*")],
        "template": {
            "settings": {
                "number_of_shards": 1,
                "number_of_replicas": replicas,
                // A sent message is searchable within a second.
                "refresh_interval": REFRESH_INTERVAL,
                "analysis": {
                    "tokenizer": {
                        // A CJK letter alone, or a run of other letters and digits (Rust's
                        // `char::is_alphanumeric`). Matching tokens (`group: 0`) rather than
                        // replacing characters keeps the offsets right.
                        "words": {
                            "type": "pattern",
                            "group": 0,
                            "pattern": format!(
                                "[\\p{{IsAlphabetic}}\\p{{N}}&&{CJK_CLASS}]|[\\p{{IsAlphabetic}}\\p{{N}}&&[^{}]]+",
                                &CJK_CLASS[1..CJK_CLASS.len() - 1]
                            )
                        }
                    },
                    "filter": {
                        "prefixes": { "type": "edge_ngram", "min_gram": MIN_PREFIX, "max_gram": MAX_PREFIX }
                    },
                    "analyzer": {
                        analysis::WORDS: {
                            "type": "custom", "tokenizer": "words",
                            "filter": ["lowercase", "asciifolding"]
                        },
                        analysis::PREFIXES: {
                            "type": "custom", "tokenizer": "words",
                            "filter": ["lowercase", "asciifolding", "prefixes"]
                        }
                    }
                }
            },
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "kind": { "type": "keyword" },
                    "message_id": { "type": "keyword" },
                    "room_id": { "type": "keyword" },
                    "sender_id": { "type": "keyword" },
                    "seq": { "type": "long" },
                    "sent_at_us": { "type": "long" },
                    "sent_position": { "type": "long" },
                    "position": { "type": "long" },
                    "has_link": { "type": "boolean" },
                    "checkpoint": { "type": "long" },
                    "body": {
                        "type": "text",
                        "analyzer": analysis::WORDS,
                        "fields": {
                            "prefix": {
                                "type": "text",
                                "analyzer": analysis::PREFIXES,
                                "search_analyzer": analysis::WORDS
                            }
                        }
                    }
                }
            }
        }
    })
}

/// A message index in OpenSearch (see the module).
pub struct OpenSearchIndex {
    client: opensearch::OpenSearch,
    prefix: String,
    replicas: u32,
    /// A rebuild's copy writes this index directly; `None`: the alias (the live index).
    index: Option<String>,
    /// Whether [`Self::ensure`] has run for the alias.
    ensured: AtomicBool,
    /// One write at a time through this handle (the projection is the one writer; the
    /// checkpoint's condition catches any other).
    writing: Mutex<()>,
    /// A position every search sees (a lower bound).
    visible: AtomicI64,
}

/// The checkpoint document as read: where and which version of it.
#[derive(Clone, Debug)]
struct Checkpoint {
    position: i64,
    /// The concrete index (the alias resolved).
    index: String,
    /// `(_seq_no, _primary_term)`; `None` when the index has no checkpoint document yet.
    version: Option<(i64, i64)>,
}

/// Documents per bulk request, and bulk requests in flight: a rebuild's batches hold tens of
/// thousands of documents, and two requests keep the node busy while the next is encoded.
/// (Concurrent requests are safe: a document's external version decides, not the order.)
const BULK_DOCS: usize = 5_000;

#[derive(Deserialize)]
struct Source {
    #[serde(default)]
    kind: String,
    message_id: Option<Uuid>,
    room_id: Option<Uuid>,
    sender_id: Option<Uuid>,
    seq: Option<i64>,
    sent_at_us: Option<i64>,
    body: Option<String>,
    sent_position: Option<i64>,
    position: Option<i64>,
}

impl Source {
    fn message(self) -> Option<MessageDoc> {
        if self.kind != "message" {
            return None;
        }
        Some(MessageDoc {
            message_id: self.message_id?,
            room_id: self.room_id?,
            seq: self.seq?,
            sender_id: self.sender_id?,
            sent_at: DateTime::<Utc>::from_timestamp_micros(self.sent_at_us?)?,
            body: self.body?,
            sent_position: self.sent_position?,
            position: self.position?,
        })
    }
}

/// A document write: its id, its version, its source, and whether it replaces a document of
/// an equal version too (`external_gte`; else only older ones).
type Write = (Uuid, i64, Value, bool);

/// What a deleted (or erased) message leaves: its id and version, nothing else.
fn tombstone(message_id: Uuid, position: i64) -> Value {
    json!({ "kind": "tombstone", "message_id": message_id, "position": position })
}

/// Makes a tombstone of each message in `held` (in the index before this batch, with its
/// version) and of each live one this batch wrote that `matches`, at its version or
/// `position`, whichever is newer: a version never goes back (a message edited after an
/// erasure keeps its newer one, and its tombstone replaces it at that version).
fn bury(
    held: impl IntoIterator<Item = (Uuid, i64)>,
    docs: &mut HashMap<Uuid, Option<MessageDoc>>,
    matches: impl Fn(&MessageDoc) -> bool,
    position: i64,
    writes: &mut Vec<Write>,
) {
    let mut versions: HashMap<Uuid, i64> = held.into_iter().collect();
    for (id, doc) in docs.iter() {
        if let Some(d) = doc
            && matches(d)
        {
            let v = versions.entry(*id).or_insert(d.position);
            *v = (*v).max(d.position);
        }
    }
    let mut ids: Vec<(Uuid, i64)> = versions.into_iter().collect();
    ids.sort_unstable();
    for (id, version) in ids {
        let version = version.max(position);
        writes.push((id, version, tombstone(id, version), true));
        docs.insert(id, None);
    }
}

fn source(doc: &MessageDoc) -> Value {
    json!({
        "kind": "message",
        "message_id": doc.message_id,
        "room_id": doc.room_id,
        "sender_id": doc.sender_id,
        "seq": doc.seq,
        "sent_at_us": doc.sent_at.timestamp_micros(),
        "sent_position": doc.sent_position,
        "position": doc.position,
        "has_link": analysis::has_link(&doc.body),
        "body": doc.body,
    })
}

impl OpenSearchIndex {
    /// A client of the cluster at `url` for the indexes named `<prefix>-messages…`. Nothing is
    /// sent until [`Self::ensure`] or a first call.
    pub fn new(url: &str, prefix: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !prefix.is_empty()
                && prefix.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'-'
                    || b == b'_'),
            "an OpenSearch index prefix is lower-case letters, digits, - and _: {prefix:?}"
        );
        let transport =
            Transport::single_node(url).with_context(|| format!("the OpenSearch URL {url:?}"))?;
        Ok(OpenSearchIndex {
            client: opensearch::OpenSearch::new(transport),
            prefix: prefix.to_owned(),
            replicas: 0,
            index: None,
            ensured: AtomicBool::new(false),
            writing: Mutex::new(()),
            visible: AtomicI64::new(0),
        })
    }

    /// A handle on the same cluster and prefix writing `index` directly.
    fn on_index(&self, index: &str) -> OpenSearchIndex {
        OpenSearchIndex {
            client: self.client.clone(),
            prefix: self.prefix.clone(),
            replicas: self.replicas,
            index: Some(index.to_owned()),
            ensured: AtomicBool::new(true),
            writing: Mutex::new(()),
            visible: AtomicI64::new(0),
        }
    }

    /// Where reads and writes go: the copy's index, or the alias.
    fn target(&self) -> String {
        self.index.clone().unwrap_or_else(|| self.alias())
    }

    fn index_name(&self, n: i64) -> String {
        format!("{}-messages-{n}", self.prefix)
    }

    /// The number of an index of this prefix (`<prefix>-messages-<n>`).
    fn number(&self, index: &str) -> Result<i64, SearchError> {
        index
            .strip_prefix(&format!("{}-messages-", self.prefix))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                SearchError::Other(anyhow::anyhow!(
                    "{index:?} is not an index of the prefix {:?}",
                    self.prefix
                ))
            })
    }

    /// The index behind the alias.
    async fn live_index(&self) -> Result<String, SearchError> {
        let reply = self
            .call(
                Method::Get,
                &format!("/_alias/{}", self.alias()),
                None,
                &[200],
            )
            .await?;
        let names: Vec<&String> = reply
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        match names.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(SearchError::Other(anyhow::anyhow!(
                "the alias {} points at {} indexes, not one: {reply}",
                self.alias(),
                names.len()
            ))),
        }
    }

    /// [`Self::ensure`] once per handle of the alias.
    async fn ensure_once(&self) -> Result<(), SearchError> {
        if self.index.is_none() && !self.ensured.load(Ordering::Acquire) {
            self.ensure().await?;
            self.ensured.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Replicas of each index (0 by default: a single node could not allocate them).
    pub fn with_replicas(mut self, replicas: u32) -> Self {
        self.replicas = replicas;
        self
    }

    /// The alias searches and writes go through.
    pub fn alias(&self) -> String {
        format!("{}-messages", self.prefix)
    }

    fn first_index(&self) -> String {
        format!("{}-messages-1", self.prefix)
    }

    /// Puts the index template and, when the alias does not exist yet, creates the first index
    /// behind it. Idempotent; concurrent callers agree on the first index's name.
    pub async fn ensure(&self) -> Result<(), SearchError> {
        let name = format!("{}-messages-template", self.prefix);
        self.call(
            Method::Put,
            &format!("/_index_template/{name}"),
            Some(template(&self.prefix, self.replicas)),
            &[200],
        )
        .await?;
        let (status, _) = self
            .request(Method::Head, &format!("/_alias/{}", self.alias()), None)
            .await?;
        if status == StatusCode::OK {
            return Ok(());
        }
        let body = json!({ "aliases": { self.alias(): { "is_write_index": true } } });
        let (status, reply) = self
            .request(Method::Put, &format!("/{}", self.first_index()), Some(body))
            .await?;
        let exists = reply["error"]["type"] == "resource_already_exists_exception";
        if !status.is_success() && !exists {
            return Err(failure(status, &reply, "create the search index"));
        }
        // A checkpoint document from the start (as in a staged index), so that every write of
        // the checkpoint is conditional on the one read. (Already there: nothing to do.)
        self.call(
            Method::Put,
            &format!("/{}/_create/{CHECKPOINT_ID}", self.first_index()),
            Some(json!({ "kind": "checkpoint", "checkpoint": 0 })),
            &[201, 409],
        )
        .await?;
        Ok(())
    }

    /// Deletes every index and the template of this prefix (tests clean up with it).
    pub async fn delete_all(&self) -> Result<(), SearchError> {
        self.delete_indexes().await?;
        self.call(
            Method::Delete,
            &format!("/_index_template/{}-messages-template", self.prefix),
            None,
            &[200, 404],
        )
        .await?;
        Ok(())
    }

    /// Deletes every `<prefix>-messages-*` index (and so the alias).
    async fn delete_indexes(&self) -> Result<(), SearchError> {
        self.call(
            Method::Delete,
            &format!("/{}-messages-*?expand_wildcards=all", self.prefix),
            None,
            &[200, 404],
        )
        .await?;
        Ok(())
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), SearchError> {
        self.send(
            method,
            path,
            body.map(|b| b.to_string()),
            "application/json",
        )
        .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        content_type: &'static str,
    ) -> Result<(StatusCode, Value), SearchError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            opensearch::http::headers::CONTENT_TYPE,
            opensearch::http::headers::HeaderValue::from_static(content_type),
        );
        let response = self
            .client
            .send::<String, ()>(method, path, headers, None, body, Some(REQUEST_TIMEOUT))
            .await
            .map_err(|e| SearchError::Unavailable(format!("OpenSearch: {e}")))?;
        let status = response.status_code();
        let text = response
            .text()
            .await
            .map_err(|e| SearchError::Unavailable(format!("OpenSearch: {e}")))?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// A request that must answer one of `ok`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        ok: &[u16],
    ) -> Result<Value, SearchError> {
        let (status, reply) = self.request(method, path, body).await?;
        if ok.contains(&status.as_u16()) {
            return Ok(reply);
        }
        Err(failure(status, &reply, path))
    }

    /// The checkpoint document's value (realtime: the last one written).
    async fn read_checkpoint(&self) -> Result<i64, SearchError> {
        Ok(self.checkpoint_doc().await?.position)
    }

    /// The checkpoint document (realtime), where it is and its version.
    async fn checkpoint_doc(&self) -> Result<Checkpoint, SearchError> {
        self.ensure_once().await?;
        let (status, reply) = self
            .request(
                Method::Get,
                &format!("/{}/_doc/{CHECKPOINT_ID}", self.target()),
                None,
            )
            .await?;
        let index = reply["_index"].as_str().unwrap_or_default().to_owned();
        match status.as_u16() {
            200 if !index.is_empty() => Ok(Checkpoint {
                position: reply["_source"]["checkpoint"].as_i64().unwrap_or(0),
                index,
                version: reply["_seq_no"]
                    .as_i64()
                    .zip(reply["_primary_term"].as_i64()),
            }),
            404 if !index.is_empty() && reply["found"] == false => Ok(Checkpoint {
                position: 0,
                index,
                version: None,
            }),
            _ => Err(failure(status, &reply, "read the search checkpoint")),
        }
    }

    /// The current documents of `ids` in `index` (realtime), tombstones as `None`.
    async fn current(
        &self,
        index: &str,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Option<MessageDoc>>, SearchError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let reply = self
            .call(
                Method::Post,
                &format!("/{index}/_mget"),
                Some(json!({ "ids": ids })),
                &[200],
            )
            .await?;
        let mut out = HashMap::new();
        for doc in reply["docs"].as_array().into_iter().flatten() {
            let (Some(id), true) = (
                doc["_id"].as_str().and_then(|s| Uuid::parse_str(s).ok()),
                doc["found"].as_bool().unwrap_or(false),
            ) else {
                continue;
            };
            let source: Source = serde_json::from_value(doc["_source"].clone())
                .context("a stored message is not readable")?;
            out.insert(id, source.message());
        }
        Ok(out)
    }

    async fn apply_now(&self, from: i64, changes: Vec<Change>, to: i64) -> Result<(), SearchError> {
        let _one = self.writing.lock().await;
        // Read every time, never cached: after a switch the alias names another index, whose
        // checkpoint is the one to continue from.
        let at = self.checkpoint_doc().await?;
        if at.position != from {
            return Err(SearchError::Gap {
                checkpoint: at.position,
                expected: from,
            });
        }
        // Edits need the message's other fields: from this batch, or from the index.
        let sent_here: std::collections::HashSet<Uuid> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Sent(d) => Some(d.message_id),
                _ => None,
            })
            .collect();
        let mut lookup: Vec<Uuid> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Edited { message_id, .. } if !sent_here.contains(message_id) => {
                    Some(*message_id)
                }
                _ => None,
            })
            .collect();
        lookup.sort();
        lookup.dedup();
        let mut docs: HashMap<Uuid, Option<MessageDoc>> = self.current(&at.index, &lookup).await?;
        // An erasure needs the sender's messages in the index before this batch.
        let mut erased: Vec<Uuid> = changes
            .iter()
            .filter_map(|c| match c {
                Change::SenderErased { sender_id, .. } => Some(*sender_id),
                _ => None,
            })
            .collect();
        erased.sort();
        erased.dedup();
        // An expiry needs the room's messages up to its seq in the index before this batch.
        let mut expired: Vec<(Uuid, i64)> = changes
            .iter()
            .filter_map(|c| match c {
                Change::RoomExpired {
                    room_id, up_to_seq, ..
                } => Some((*room_id, *up_to_seq)),
                _ => None,
            })
            .collect();
        expired.sort();
        expired.dedup();
        let mut sent_by: HashMap<Uuid, Vec<(Uuid, i64)>> = HashMap::new();
        let mut expired_in: HashMap<(Uuid, i64), Vec<(Uuid, i64)>> = HashMap::new();
        if !erased.is_empty() || !expired.is_empty() {
            // Searches see the last refresh only: first make every write so far searchable.
            self.call(
                Method::Post,
                &format!("/{}/_refresh", at.index),
                None,
                &[200],
            )
            .await?;
            for sender in erased {
                let filter = json!({ "term": { "sender_id": sender } });
                let held = self.holding(&at.index, filter, "a sender's").await?;
                sent_by.insert(sender, held);
            }
            for (room, up_to_seq) in expired {
                let filter = json!([
                    { "term": { "room_id": room } },
                    { "range": { "seq": { "lte": up_to_seq } } }
                ]);
                let held = self.holding(&at.index, filter, "a room's").await?;
                expired_in.insert((room, up_to_seq), held);
            }
        }
        // The writes of this batch, in order: (id, version, source, whether an equal version
        // is replaced).
        let mut writes: Vec<Write> = Vec::new();
        for change in changes {
            match change {
                Change::Sent(doc) => {
                    writes.push((doc.message_id, doc.position, source(&doc), false));
                    docs.insert(doc.message_id, Some(doc));
                }
                Change::Edited {
                    message_id,
                    body,
                    position,
                } => {
                    let Some(Some(doc)) = docs.get_mut(&message_id) else {
                        continue;
                    };
                    if doc.position >= position {
                        continue;
                    }
                    doc.body = body;
                    doc.position = position;
                    writes.push((message_id, position, source(doc), false));
                }
                Change::Deleted {
                    message_id,
                    position,
                } => {
                    writes.push((message_id, position, tombstone(message_id, position), false));
                    docs.insert(message_id, None);
                }
                Change::SenderErased {
                    sender_id,
                    position,
                } => {
                    // Each of the sender's messages becomes a tombstone, as with a delete (a
                    // removed document's version would be forgotten, and a replayed send would
                    // bring it back): those in the index before this batch, and those this
                    // batch wrote before the erasure. A tombstone holds no sender.
                    let held = sent_by.get(&sender_id).into_iter().flatten().copied();
                    bury(
                        held,
                        &mut docs,
                        |d| d.sender_id == sender_id,
                        position,
                        &mut writes,
                    );
                }
                Change::RoomExpired {
                    room_id,
                    up_to_seq,
                    position,
                } => {
                    // Each of the room's messages up to `up_to_seq` becomes a tombstone, as
                    // with an erasure. A tombstone holds no room.
                    let held = expired_in
                        .get(&(room_id, up_to_seq))
                        .into_iter()
                        .flatten()
                        .copied();
                    let expired = |d: &MessageDoc| d.room_id == room_id && d.seq <= up_to_seq;
                    bury(held, &mut docs, expired, position, &mut writes);
                }
            }
        }
        // Into the index the checkpoint was read from, whatever the alias says meanwhile.
        self.bulk(&at.index, &writes).await?;
        // Only now the checkpoint: never ahead of the documents.
        if self.write_checkpoint(&at, to).await? {
            return Ok(());
        }
        // The checkpoint document changed since it was read: another writer, or the index was
        // switched away (and maybe deleted, and re-created empty by this very write).
        if self.index.is_none() && self.live_index().await? != at.index {
            self.call(Method::Delete, &format!("/{}", at.index), None, &[200, 404])
                .await?;
        }
        let now = self.read_checkpoint().await?;
        if now != from {
            return Err(SearchError::Gap {
                checkpoint: now,
                expected: from,
            });
        }
        Err(SearchError::Unavailable(
            "the search checkpoint changed during a write; try again".to_owned(),
        ))
    }

    /// Moves the checkpoint `at` (as read) to `to` if its document is still the one read;
    /// whether it did.
    async fn write_checkpoint(&self, at: &Checkpoint, to: i64) -> Result<bool, SearchError> {
        let path = match at.version {
            Some((seq_no, term)) => format!(
                "/{}/_doc/{CHECKPOINT_ID}?if_seq_no={seq_no}&if_primary_term={term}",
                at.index
            ),
            None => format!("/{}/_create/{CHECKPOINT_ID}", at.index),
        };
        let (status, reply) = self
            .request(
                Method::Put,
                &path,
                Some(json!({ "kind": "checkpoint", "checkpoint": to })),
            )
            .await?;
        match status.as_u16() {
            200 | 201 => Ok(true),
            // Another writer moved it, or a switch moved the alias away from this index and
            // deleted it (between this batch's documents and its checkpoint): either way the
            // document is not the one read.
            409 | 404 => Ok(false),
            _ => Err(failure(status, &reply, "write the search checkpoint")),
        }
    }

    /// Moves the checkpoint back to `to` without touching a document: what a crash between
    /// writing documents and the checkpoint leaves. For the contract suite, which checks that
    /// replaying from there is harmless.
    #[doc(hidden)]
    pub async fn rewind_checkpoint(&self, to: i64) -> Result<(), SearchError> {
        let _one = self.writing.lock().await;
        let at = self.checkpoint_doc().await?;
        if !self.write_checkpoint(&at, to).await? {
            return Err(SearchError::Unavailable(
                "the search checkpoint changed during a rewind".to_owned(),
            ));
        }
        Ok(())
    }

    /// The messages in `index` (as of its last refresh) that pass `filter` (a clause, or an
    /// array of clauses: a sender's, a room's up to a seq), with their versions; `whose` names
    /// them in an error.
    async fn holding(
        &self,
        index: &str,
        filter: Value,
        whose: &str,
    ) -> Result<Vec<(Uuid, i64)>, SearchError> {
        let mut filters = vec![json!({ "term": { "kind": "message" } })];
        match filter {
            Value::Array(clauses) => filters.extend(clauses),
            clause => filters.push(clause),
        }
        let mut out = Vec::new();
        let mut after: Option<Value> = None;
        loop {
            let mut body = json!({
                "query": { "bool": { "filter": filters } },
                "size": BULK_DOCS,
                "sort": [{ "message_id": "asc" }],
                "version": true,
                "_source": false,
                "track_total_hits": false,
            });
            if let Some(a) = after.take() {
                body["search_after"] = a;
            }
            let reply = self
                .call(
                    Method::Post,
                    &format!("/{index}/_search"),
                    Some(body),
                    &[200],
                )
                .await?;
            if reply["_shards"]["failed"].as_u64().unwrap_or(0) > 0 {
                return Err(SearchError::Unavailable(format!(
                    "OpenSearch: a shard failed to list {whose} messages: {reply}"
                )));
            }
            let hits = reply["hits"]["hits"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for hit in &hits {
                let id = hit["_id"]
                    .as_str()
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .context("a stored message id is not a UUID")?;
                let version = hit["_version"]
                    .as_i64()
                    .context("a stored message has no version")?;
                out.push((id, version));
            }
            match hits.last() {
                Some(last) if hits.len() == BULK_DOCS => after = Some(last["sort"].clone()),
                _ => return Ok(out),
            }
        }
    }

    /// Writes `writes` into `index`, [`BULK_DOCS`] per request, two requests at a time.
    async fn bulk(&self, index: &str, writes: &[Write]) -> Result<(), SearchError> {
        let mut chunks = writes.chunks(BULK_DOCS);
        while let Some(first) = chunks.next() {
            match chunks.next() {
                Some(second) => {
                    tokio::try_join!(self.bulk_one(index, first), self.bulk_one(index, second))?;
                }
                None => self.bulk_one(index, first).await?,
            }
        }
        Ok(())
    }

    async fn bulk_one(&self, index: &str, writes: &[Write]) -> Result<(), SearchError> {
        let mut body = String::with_capacity(writes.len() * 320);
        for (id, version, doc, equal) in writes {
            let version_type = if *equal { "external_gte" } else { "external" };
            let action = json!({ "index": {
                "_index": index, "_id": id, "version": version, "version_type": version_type
            }});
            body.push_str(&action.to_string());
            body.push('\n');
            body.push_str(&doc.to_string());
            body.push('\n');
        }
        let (status, reply) = self
            .send(Method::Post, "/_bulk", Some(body), "application/x-ndjson")
            .await?;
        if !status.is_success() {
            return Err(failure(status, &reply, "bulk-index messages"));
        }
        if reply["errors"].as_bool() == Some(true) {
            for item in reply["items"].as_array().into_iter().flatten() {
                let result = &item["index"];
                let code = result["status"].as_u64().unwrap_or(0);
                // 409: the index holds a newer version already (a replay): nothing to do.
                if code >= 300 && code != 409 {
                    return Err(SearchError::Other(anyhow::anyhow!(
                        "OpenSearch refused a document ({code}): {}",
                        result["error"]
                    )));
                }
            }
        }
        Ok(())
    }

    fn query(&self, req: &SearchRequest, snapshot: i64) -> Value {
        let mut must: Vec<Value> = req.clauses.iter().map(clause).collect();
        if must.is_empty() {
            must.push(json!({ "match_all": {} }));
        }
        let mut filter = vec![
            json!({ "term": { "kind": "message" } }),
            json!({ "terms": { "room_id": req.rooms } }),
        ];
        if !req.senders.is_empty() {
            filter.push(json!({ "terms": { "sender_id": req.senders } }));
        }
        if req.sent_from.is_some() || req.sent_before.is_some() {
            let mut range = serde_json::Map::new();
            if let Some(t) = req.sent_from {
                range.insert("gte".into(), json!(t.timestamp_micros()));
            }
            if let Some(t) = req.sent_before {
                range.insert("lt".into(), json!(t.timestamp_micros()));
            }
            filter.push(json!({ "range": { "sent_at_us": range } }));
        }
        if req.has_link {
            filter.push(json!({ "term": { "has_link": true } }));
        }
        filter.push(json!({ "range": { "sent_position": { "lte": snapshot } } }));
        json!({ "bool": { "must": must, "filter": filter } })
    }

    async fn search_now(&self, req: SearchRequest) -> Result<SearchPage, SearchError> {
        let snapshot = req.snapshot.unwrap_or(i64::MAX);
        let mut body = json!({
            "query": self.query(&req, snapshot),
            "size": req.limit + 1,
            "track_total_hits": false,
            "_source": ["kind", "message_id", "room_id", "sender_id", "seq", "sent_at_us",
                        "body", "sent_position", "position"],
        });
        match req.sort {
            Sort::Relevance => {
                body["sort"] = json!([{ "_score": "desc" }, { "sent_position": "desc" }]);
                if let Some(a) = req.after {
                    body["search_after"] = json!([a.score.unwrap_or(f32::MAX), a.sent_position]);
                }
            }
            Sort::Recent => {
                body["sort"] = json!([{ "sent_position": "desc" }]);
                if let Some(a) = req.after {
                    body["search_after"] = json!([a.sent_position]);
                }
            }
        }
        if req.snapshot.is_none() {
            body["aggs"] = json!({ "snapshot": { "max": { "field": "sent_position" } } });
        }
        let path = format!("/{}/_search", self.target());
        // A switch deletes the old index right after moving the alias: a search that resolved
        // the alias before may find its index gone (or its shard closed). Asked again, the
        // alias names the new index.
        let mut tries = 0;
        let reply = loop {
            tries += 1;
            let (status, reply) = self
                .request(Method::Post, &path, Some(body.clone()))
                .await?;
            let missing = status == StatusCode::NOT_FOUND
                && reply["error"]["type"] == "index_not_found_exception";
            let failed_shards = reply["_shards"]["failed"].as_u64().unwrap_or(0) > 0;
            if (missing || failed_shards || status.is_server_error()) && tries < 3 {
                continue;
            }
            if missing {
                // Nothing was ever indexed here.
                return Ok(SearchPage {
                    hits: Vec::new(),
                    more: false,
                    snapshot: 0,
                });
            }
            if status != StatusCode::OK || failed_shards {
                return Err(failure(status, &reply, "search"));
            }
            break reply;
        };
        let snapshot = match req.snapshot {
            Some(s) => s,
            None => reply["aggregations"]["snapshot"]["value"]
                .as_f64()
                .map_or(0, |v| v as i64),
        };
        let mut hits = Vec::new();
        for hit in reply["hits"]["hits"].as_array().into_iter().flatten() {
            let source: Source = serde_json::from_value(hit["_source"].clone())
                .context("a stored message is not readable")?;
            if let Some(doc) = source.message() {
                let score = match req.sort {
                    Sort::Relevance => hit["sort"][0].as_f64().unwrap_or(0.0) as f32,
                    Sort::Recent => 0.0,
                };
                hits.push(Hit { doc, score });
            }
        }
        let more = hits.len() > req.limit;
        hits.truncate(req.limit);
        Ok(SearchPage {
            hits,
            more,
            snapshot,
        })
    }
}

fn clause(c: &Clause) -> Value {
    let term = |field: &str, t: &str| json!({ "term": { field: t } });
    match c {
        // The word's starts include the word: they match, the whole word adds to the score.
        Clause::Word(w) if (MIN_PREFIX..=MAX_PREFIX).contains(&w.chars().count()) => json!({
            "bool": {
                "must": [term("body.prefix", w)],
                "should": [{ "term": { "body": { "value": w, "boost": 2.0 } } }]
            }
        }),
        Clause::Word(w) => term("body", w),
        Clause::Prefix(p) => term("body.prefix", p),
        Clause::Phrase(words) if words.len() == 1 => term("body", &words[0]),
        Clause::Phrase(words) => json!({
            "match_phrase": { "body": { "query": words.join(" "), "analyzer": analysis::WORDS } }
        }),
    }
}

fn failure(status: StatusCode, reply: &Value, what: &str) -> SearchError {
    let message = format!("{what}: OpenSearch answered {status}: {reply}");
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        SearchError::Unavailable(message)
    } else {
        SearchError::Other(anyhow::anyhow!(message))
    }
}

impl SearchBackend for OpenSearchIndex {
    fn kind(&self) -> &'static str {
        "opensearch"
    }

    fn checkpoint(&self) -> BoxFuture<'_, Result<i64, SearchError>> {
        Box::pin(self.read_checkpoint())
    }

    fn apply(
        &self,
        from: i64,
        changes: Vec<Change>,
        to: i64,
    ) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(self.apply_now(from, changes, to))
    }

    fn reset(&self) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(async move {
            let _one = self.writing.lock().await;
            if self.index.is_some() {
                return Err(SearchError::Other(anyhow::anyhow!(
                    "a rebuild's copy is not reset"
                )));
            }
            self.ensure_once().await?;
            // The next number, so that the epoch moves on as with a switch.
            let next = self.number(&self.live_index().await?)? + 1;
            self.delete_indexes().await?;
            let body = json!({ "aliases": { self.alias(): { "is_write_index": true } } });
            self.call(
                Method::Put,
                &format!("/{}", self.index_name(next)),
                Some(body),
                &[200],
            )
            .await?;
            self.visible.store(0, Ordering::Release);
            Ok(())
        })
    }

    fn visible_position(&self, at_least: i64) -> BoxFuture<'_, Result<i64, SearchError>> {
        Box::pin(async move {
            let seen = self.visible.load(Ordering::Acquire);
            if seen >= at_least {
                return Ok(seen);
            }
            let written = self.read_checkpoint().await?;
            if written >= at_least {
                // Everything up to `written` was indexed before it: a refresh now shows it all.
                self.call(
                    Method::Post,
                    &format!("/{}/_refresh", self.target()),
                    None,
                    &[200],
                )
                .await?;
                self.visible.fetch_max(written, Ordering::AcqRel);
            }
            Ok(written)
        })
    }

    fn search(&self, req: SearchRequest) -> BoxFuture<'_, Result<SearchPage, SearchError>> {
        Box::pin(async move {
            if req.rooms.is_empty() || req.limit == 0 {
                return Ok(SearchPage {
                    hits: Vec::new(),
                    more: false,
                    snapshot: req.snapshot.unwrap_or(0),
                });
            }
            self.search_now(req).await
        })
    }

    fn epoch(&self) -> BoxFuture<'_, Result<i64, SearchError>> {
        Box::pin(async move {
            match &self.index {
                Some(index) => self.number(index),
                None => {
                    self.ensure_once().await?;
                    self.number(&self.live_index().await?)
                }
            }
        })
    }

    fn stage(&self) -> BoxFuture<'_, Result<Box<dyn StagedIndex>, SearchError>> {
        Box::pin(async move {
            if self.index.is_some() {
                return Err(SearchError::Other(anyhow::anyhow!(
                    "a rebuild's copy cannot be staged"
                )));
            }
            Ok(Box::new(self.stage_next().await?) as Box<dyn StagedIndex>)
        })
    }
}

impl OpenSearchIndex {
    /// Creates the index after the live one for a rebuild (see [`OpenSearchStaged`]),
    /// deleting what an interrupted rebuild left under that name.
    pub async fn stage_next(&self) -> Result<OpenSearchStaged, SearchError> {
        self.ensure_once().await?;
        let old = self.live_index().await?;
        let epoch = self.number(&old)? + 1;
        let new = self.index_name(epoch);
        self.call(Method::Delete, &format!("/{new}"), None, &[200, 404])
            .await?;
        // The template gives it the analysis and the mapping; during the load it is neither
        // refreshed (nothing searches it) nor replicated (replicas are copied once, at the end).
        self.call(
            Method::Put,
            &format!("/{new}"),
            Some(json!({ "settings": { "index": {
                "number_of_replicas": 0, "refresh_interval": "-1"
            } } })),
            &[200],
        )
        .await?;
        // A checkpoint document from the start, so that every write of a checkpoint is
        // conditional on the one read.
        self.call(
            Method::Put,
            &format!("/{new}/_create/{CHECKPOINT_ID}"),
            Some(json!({ "kind": "checkpoint", "checkpoint": 0 })),
            &[201],
        )
        .await?;
        tracing::info!(index = %new, "search index staged");
        Ok(OpenSearchStaged {
            live: self.on_index(&old),
            alias: self.alias(),
            copy: Arc::new(self.on_index(&new)),
            old,
            new,
            epoch,
        })
    }
}

/// The next OpenSearch index, filled by a blue/green rebuild
/// ([`OpenSearchIndex::stage_next`]): `<prefix>-messages-<n+1>`, written directly (bulk
/// settings until the switch). [`StagedIndex::switch`] restores the settings, refreshes,
/// moves the alias in one `_aliases` request and deletes the old index. A live writer in
/// another process cannot be held still: its writes meanwhile land in the old index, and
/// [`StagedIndex::catch_up_after_switch`] says the copy must replay the log once more after
/// the switch (the live writer continues from the new index's checkpoint).
pub struct OpenSearchStaged {
    /// The live index as it was when staged.
    live: OpenSearchIndex,
    alias: String,
    copy: Arc<OpenSearchIndex>,
    old: String,
    new: String,
    epoch: i64,
}

impl OpenSearchStaged {
    async fn switch_now(self) -> Result<i64, SearchError> {
        let c = &self.copy;
        c.call(
            Method::Put,
            &format!("/{}/_settings", self.new),
            Some(json!({ "index": {
                "number_of_replicas": self.live.replicas, "refresh_interval": REFRESH_INTERVAL
            } })),
            &[200],
        )
        .await?;
        c.call(
            Method::Post,
            &format!("/{}/_refresh", self.new),
            None,
            &[200],
        )
        .await?;
        // One request: searches see the old index or the new one, never neither. If the old
        // index is no longer behind the alias (another switch), nothing changes.
        c.call(
            Method::Post,
            "/_aliases",
            Some(json!({ "actions": [
                { "remove": { "index": self.old, "alias": self.alias, "must_exist": true } },
                { "add": { "index": self.new, "alias": self.alias, "is_write_index": true } }
            ] })),
            &[200],
        )
        .await?;
        tracing::info!(index = %self.new, "search index switched");
        c.call(Method::Delete, &format!("/{}", self.old), None, &[200, 404])
            .await?;
        Ok(self.epoch)
    }
}

impl StagedIndex for OpenSearchStaged {
    fn epoch(&self) -> i64 {
        self.epoch
    }

    fn copy(&self) -> Arc<dyn SearchBackend> {
        self.copy.clone()
    }

    fn bulk_loaded(&self) -> BoxFuture<'_, Result<(), SearchError>> {
        // OpenSearch merges in the background as it goes; nothing waits for the end.
        Box::pin(async { Ok(()) })
    }

    fn live_checkpoint(&self) -> BoxFuture<'_, Result<i64, SearchError>> {
        Box::pin(self.live.read_checkpoint())
    }

    fn hold(&self) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(async { Ok(()) })
    }

    fn catch_up_after_switch(&self) -> bool {
        true
    }

    fn switch(self: Box<Self>) -> BoxFuture<'static, Result<i64, SearchError>> {
        Box::pin(self.switch_now())
    }

    fn abandon(self: Box<Self>) -> BoxFuture<'static, Result<(), SearchError>> {
        Box::pin(async move {
            self.copy
                .call(Method::Delete, &format!("/{}", self.new), None, &[200, 404])
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_states_the_cjk_ranges_of_the_analysis() {
        let t = template("p", 0);
        let pattern = t["template"]["settings"]["analysis"]["tokenizer"]["words"]["pattern"]
            .as_str()
            .expect("pattern")
            .to_owned();
        let inner = &CJK_CLASS[1..CJK_CLASS.len() - 1];
        assert_eq!(
            pattern,
            format!(
                "[\\p{{IsAlphabetic}}\\p{{N}}&&[{inner}]]|[\\p{{IsAlphabetic}}\\p{{N}}&&[^{inner}]]+"
            )
        );
        assert!(
            pattern.starts_with(r"[\p{IsAlphabetic}\p{N}&&[\u1100-\u11FF"),
            "{pattern}"
        );
        // Every range of `is_cjk` is in the class, and only those.
        for (lo, hi) in [
            (0x1100, 0x11FF),
            (0x3040, 0x30FF),
            (0x3130, 0x318F),
            (0x31F0, 0x31FF),
            (0x3400, 0x4DBF),
            (0x4E00, 0x9FFF),
            (0xAC00, 0xD7AF),
            (0xF900, 0xFAFF),
            (0xFF66, 0xFF9F),
        ] {
            assert!(
                inner.contains(&format!("\\u{lo:04X}-\\u{hi:04X}")),
                "{lo:X}"
            );
            for c in [lo, hi] {
                assert!(analysis::is_cjk(char::from_u32(c).expect("char")));
            }
            assert!(
                !analysis::is_cjk(char::from_u32(hi + 1).expect("char"))
                    || hi + 1 == 0x3040
                    || hi + 1 == 0x3400
            );
        }
        assert!(inner.contains("\\x{20000}-\\x{2FFFF}"));
    }
}
