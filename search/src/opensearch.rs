//! The cluster backend: an OpenSearch index behind the alias `<prefix>-messages`.
//!
//! - An index template (`<prefix>-messages-template`) gives every `<prefix>-messages-*` index
//!   the analysis of [`crate::analysis`] in Lucene's terms ([`template`]), so a rebuild can fill
//!   a fresh index and swap the alias atomically.
//! - Documents are written in bulk with external versions: a message's version is the log
//!   position of the last event applied to it, so a replay of older events can never replace
//!   newer data. A deleted message becomes a tombstone document (with the delete's position as
//!   its version) rather than being removed: a removed document's version is forgotten after a
//!   while, and a replayed send would bring it back.
//! - The checkpoint is a document of its own (`_checkpoint`), written after the documents it
//!   covers, so it is never ahead of them; the events between it and the documents are
//!   re-applied after a crash, harmlessly (the versions refuse older writes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
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
    BoxFuture, Change, Hit, MessageDoc, SearchBackend, SearchError, SearchPage, SearchRequest, Sort,
};
use crate::query::Clause;

/// The id of the checkpoint document.
const CHECKPOINT_ID: &str = "_checkpoint";
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
                "refresh_interval": "500ms",
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
    /// The writer's checkpoint, once read (there is one writer, the projection).
    checkpoint: Mutex<Option<i64>>,
    /// A position every search sees (a lower bound).
    visible: AtomicI64,
}

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
            checkpoint: Mutex::new(None),
            visible: AtomicI64::new(0),
        })
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
        if status.is_success() || exists {
            return Ok(());
        }
        Err(failure(status, &reply, "create the search index"))
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
        let (status, reply) = self
            .request(
                Method::Get,
                &format!("/{}/_doc/{CHECKPOINT_ID}", self.alias()),
                None,
            )
            .await?;
        match status.as_u16() {
            200 => Ok(reply["_source"]["checkpoint"].as_i64().unwrap_or(0)),
            404 => Ok(0),
            _ => Err(failure(status, &reply, "read the search checkpoint")),
        }
    }

    /// The current documents of `ids` (realtime), tombstones as `None`.
    async fn current(
        &self,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Option<MessageDoc>>, SearchError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let reply = self
            .call(
                Method::Post,
                &format!("/{}/_mget", self.alias()),
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
        let mut checkpoint = self.checkpoint.lock().await;
        let at = match *checkpoint {
            Some(c) => c,
            None => {
                self.ensure().await?;
                self.read_checkpoint().await?
            }
        };
        *checkpoint = Some(at);
        if at != from {
            return Err(SearchError::Gap {
                checkpoint: at,
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
        let mut docs: HashMap<Uuid, Option<MessageDoc>> = self.current(&lookup).await?;
        // The last write of each document in this batch: (version, source).
        let mut writes: Vec<(Uuid, i64, Value)> = Vec::new();
        for change in changes {
            match change {
                Change::Sent(doc) => {
                    writes.push((doc.message_id, doc.position, source(&doc)));
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
                    writes.push((message_id, position, source(doc)));
                }
                Change::Deleted {
                    message_id,
                    position,
                } => {
                    writes.push((
                        message_id,
                        position,
                        json!({ "kind": "tombstone", "message_id": message_id, "position": position }),
                    ));
                    docs.insert(message_id, None);
                }
            }
        }
        if !writes.is_empty() {
            self.bulk(&writes).await?;
        }
        // Only now the checkpoint: never ahead of the documents.
        if let Err(e) = self.write_checkpoint(to).await {
            *checkpoint = None;
            return Err(e);
        }
        *checkpoint = Some(to);
        Ok(())
    }

    async fn write_checkpoint(&self, to: i64) -> Result<(), SearchError> {
        self.call(
            Method::Put,
            &format!("/{}/_doc/{CHECKPOINT_ID}", self.alias()),
            Some(json!({ "kind": "checkpoint", "checkpoint": to })),
            &[200, 201],
        )
        .await?;
        Ok(())
    }

    /// Moves the checkpoint back to `to` without touching a document: what a crash between
    /// writing documents and the checkpoint leaves. For the contract suite, which checks that
    /// replaying from there is harmless.
    #[doc(hidden)]
    pub async fn rewind_checkpoint(&self, to: i64) -> Result<(), SearchError> {
        let mut checkpoint = self.checkpoint.lock().await;
        self.ensure().await?;
        self.write_checkpoint(to).await?;
        *checkpoint = Some(to);
        Ok(())
    }

    async fn bulk(&self, writes: &[(Uuid, i64, Value)]) -> Result<(), SearchError> {
        let alias = self.alias();
        let mut body = String::with_capacity(writes.len() * 256);
        for (id, version, doc) in writes {
            let action = json!({ "index": {
                "_index": alias, "_id": id, "version": version, "version_type": "external"
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
        let (status, reply) = self
            .request(
                Method::Post,
                &format!("/{}/_search", self.alias()),
                Some(body),
            )
            .await?;
        if status == StatusCode::NOT_FOUND && reply["error"]["type"] == "index_not_found_exception"
        {
            // Nothing was ever indexed here.
            return Ok(SearchPage {
                hits: Vec::new(),
                more: false,
                snapshot: 0,
            });
        }
        if status != StatusCode::OK {
            return Err(failure(status, &reply, "search"));
        }
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
        Box::pin(async move {
            let mut cached = self.checkpoint.lock().await;
            if let Some(c) = *cached {
                return Ok(c);
            }
            self.ensure().await?;
            let c = self.read_checkpoint().await?;
            *cached = Some(c);
            Ok(c)
        })
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
            let mut checkpoint = self.checkpoint.lock().await;
            *checkpoint = None;
            self.delete_indexes().await?;
            self.ensure().await?;
            *checkpoint = Some(0);
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
                    &format!("/{}/_refresh", self.alias()),
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
