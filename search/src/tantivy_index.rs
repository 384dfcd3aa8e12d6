//! The embedded backend: a Tantivy index in a directory on the host.
//!
//! One process writes it (the `search` projection; Tantivy's lock file refuses a second
//! writer), any number read it. Every [`SearchBackend::apply`] is one Tantivy commit whose
//! payload is the new checkpoint, so the documents and the checkpoint are one atomic step: a
//! crash leaves the index at its last commit, documents and checkpoint together. Readers
//! reload when a commit lands (Tantivy watches `meta.json`) and when a read asks for a newer
//! position ([`SearchBackend::visible_position`]).
//!
//! The directory holds generations of the index ([`crate::generations`]); every handle
//! follows the live one, and a blue/green rebuild fills the next one
//! ([`TantivyIndex::stage_in`], [`TantivyStaged`]).

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::directory::{DirectoryLock, MmapDirectory};
use tantivy::indexer::{LogMergePolicy, NoMergePolicy};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, PhraseQuery, Query, RangeQuery,
    TermQuery, TermSetQuery,
};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
    Value as _,
};
use tantivy::{
    Directory as _, DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher,
    TantivyDocument, Term,
};
use uuid::Uuid;

use crate::analysis::{self, MAX_PREFIX, MIN_PREFIX, PREFIXES, WORDS};
use crate::backend::{
    BoxFuture, Change, Hit, MessageDoc, SearchBackend, SearchError, SearchPage, SearchRequest,
    Sort, StagedIndex,
};
use crate::generations::{self, Location};
use crate::query::Clause;

/// The writer's memory and threads.
#[derive(Clone, Copy, Debug)]
pub struct WriterSettings {
    /// Indexing threads (each gets an equal share of `heap_bytes`, at least 15 MB).
    pub threads: usize,
    pub heap_bytes: usize,
}

impl Default for WriterSettings {
    fn default() -> Self {
        WriterSettings {
            threads: 1,
            heap_bytes: 64 << 20,
        }
    }
}

#[derive(Clone, Copy)]
struct Fields {
    message_id: Field,
    room_id: Field,
    sender_id: Field,
    seq: Field,
    sent_at: Field,
    sent_position: Field,
    position: Field,
    /// False for a deleted message's tombstone (kept so its version outlives it).
    live: Field,
    has_link: Field,
    body: Field,
    body_prefix: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = |tokenizer: &str, record: IndexRecordOption| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(record),
        )
    };
    let fields = Fields {
        message_id: b.add_text_field("message_id", STRING | STORED),
        room_id: b.add_text_field("room_id", STRING | STORED),
        sender_id: b.add_text_field("sender_id", STRING | STORED),
        seq: b.add_i64_field("seq", STORED),
        // Filters on numbers read the columns (fast fields): no term dictionary to build at
        // every commit.
        sent_at: b.add_i64_field("sent_at_us", STORED | FAST),
        sent_position: b.add_i64_field("sent_position", STORED | FAST),
        position: b.add_i64_field("position", STORED),
        // Tombstones hold no room id, so the rooms filter of every search leaves them out.
        live: b.add_bool_field("live", STORED),
        // 1 with a link, else 0 (a column; a range over booleans is not supported).
        has_link: b.add_u64_field("has_link", FAST),
        body: b.add_text_field(
            "body",
            text(WORDS, IndexRecordOption::WithFreqsAndPositions).set_stored(),
        ),
        body_prefix: b.add_text_field("body_prefix", text(PREFIXES, IndexRecordOption::WithFreqs)),
    };
    (b.build(), fields)
}

struct Writer {
    writer: IndexWriter,
    checkpoint: i64,
    /// The highest position any document was written with: only a change at or below it can
    /// meet a newer version already in the index (after a rewind), so only those look it up.
    written: i64,
}

/// What the index holds for a message id.
#[derive(Clone, Debug)]
enum Current {
    Live(MessageDoc),
    /// Deleted at this position.
    Gone(i64),
}

impl Current {
    fn version(&self) -> i64 {
        match self {
            Current::Live(d) => d.position,
            Current::Gone(p) => *p,
        }
    }
}

/// One step of a commit, in the order of the changes.
enum Write {
    /// The document of a message (or its tombstone), and whether it replaces one (only then
    /// is the old one deleted).
    Doc(Uuid, Current, bool),
    /// Every document of this sender added before this step is deleted.
    Sender(Uuid),
}

/// The commit payload: the checkpoint and the highest position written.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Payload {
    checkpoint: i64,
    written: i64,
}

/// A Tantivy message index (see the module): a cheap handle to share.
///
/// It follows the live generation of its directory ([`crate::generations`]): each call first
/// reads the pointer (one small file), and when a rebuild has switched generations the handle
/// reopens on the new one before answering. A writer then takes the new generation's writer
/// lock, continues from its checkpoint and deletes the old generation; a reader's searches
/// that were already running finish on the old one's open files.
#[derive(Clone)]
pub struct TantivyIndex(Arc<Shared>);

struct Shared {
    /// The directory of generations (`<data_dir>/search`); `None` for a rebuild's copy, which
    /// stays in its own generation.
    root: Option<PathBuf>,
    /// How it writes; `None` for a reader.
    writes: Option<WriterSettings>,
    /// The generation open now.
    current: RwLock<Arc<Inner>>,
    /// One reopen at a time.
    following: Mutex<()>,
}

/// One generation, open.
struct Inner {
    generation: i64,
    dir: PathBuf,
    index: Index,
    /// The index's directory: its cache of mapped files keeps an entry for every file ever
    /// opened until it is pruned (Tantivy 0.27 prunes it only when asked for its info).
    mmap: MmapDirectory,
    fields: Fields,
    /// Reloaded only through [`Inner::reload`].
    reader: IndexReader,
    /// Reloads one at a time: each reads the newest commit, so they only move forward. (Two
    /// at once could end with the older searcher stored last.)
    reloading: Mutex<()>,
    /// The writer; `None` inside once it is retired (the handle moved on to a newer
    /// generation, or this copy went live and its lock was handed over).
    writer: Option<Mutex<Option<Writer>>>,
    /// A position every searcher from `reader` holds (a lower bound).
    visible: AtomicI64,
    /// A reader's subscription to new commits (Tantivy watches `meta.json`).
    watch: OnceLock<tantivy::directory::WatchHandle>,
}

/// The writer of a generation, locked.
struct WriterGuard<'a>(MutexGuard<'a, Option<Writer>>);

impl std::ops::Deref for WriterGuard<'_> {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("checked when locked"))
    }
}

impl std::ops::DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut Writer {
        self.0
            .as_mut()
            .unwrap_or_else(|| unreachable!("checked when locked"))
    }
}

/// How long the live writer waits for a switch to let go of the switch lock (it holds it for
/// the last catch-up and the pointer's flip only).
const SWITCH_WAIT: Duration = Duration::from_secs(60);

impl WriterSettings {
    /// A rebuild's copy: a larger budget and every core, as nothing else is indexed while it
    /// loads (merges wait for [`crate::StagedIndex::bulk_loaded`]).
    pub fn bulk() -> WriterSettings {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        WriterSettings {
            threads: cores.clamp(1, 4),
            heap_bytes: 512 << 20,
        }
    }
}

impl TantivyIndex {
    /// Opens (creating it if needed) the index in `dir` as its one writer. An index of the
    /// layout before generations is moved into its first generation.
    pub fn open_writer(dir: &Path, settings: WriterSettings) -> anyhow::Result<Self> {
        let at = init(dir, true)?;
        let inner = Inner::open(&at, Some((settings, false)))?;
        // What an earlier switch or migration left for the writer to delete.
        generations::collect_garbage(dir, at.generation)?;
        Self::with(Some(dir), Some(settings), inner)
    }

    /// Opens (creating it if needed) the index in `dir` to search it.
    pub fn open_reader(dir: &Path) -> anyhow::Result<Self> {
        let at = init(dir, false)?;
        Self::with(Some(dir), None, Inner::open(&at, None)?)
    }

    fn with(
        root: Option<&Path>,
        writes: Option<WriterSettings>,
        inner: Inner,
    ) -> anyhow::Result<Self> {
        let inner = Arc::new(inner);
        inner.watch()?;
        Ok(TantivyIndex(Arc::new(Shared {
            root: root.map(Path::to_path_buf),
            writes,
            current: RwLock::new(inner),
            following: Mutex::new(()),
        })))
    }

    /// Starts a blue/green rebuild of the index in `dir`: an empty next generation beside the
    /// live one (see [`TantivyStaged`]). What an interrupted rebuild left is deleted first; a
    /// rebuild still running (holding that generation's writer lock) is an error. The live
    /// index's writer, if any, may be another process: it is not needed here.
    pub fn stage_in(dir: &Path, settings: WriterSettings) -> anyhow::Result<TantivyStaged> {
        let live = init(dir, true)?;
        for n in generations::generations(dir)? {
            if n > live.generation && !generations::delete_if_unused(dir, n)? {
                anyhow::bail!(
                    "generation {n} of the search index in {} is being written by another rebuild",
                    dir.display()
                );
            }
        }
        let at = Location {
            generation: live.generation + 1,
            dir: generations::generation_dir(dir, live.generation + 1),
        };
        let copy = Self::with(
            None,
            Some(settings),
            Inner::open(&at, Some((settings, true)))?,
        )?;
        tracing::info!(generation = at.generation, dir = %at.dir.display(), "search index staged");
        Ok(TantivyStaged {
            root: dir.to_path_buf(),
            live: live.generation,
            copy,
            hold: Mutex::new(None),
        })
    }

    /// The generation this handle searches and writes now (after following the pointer).
    pub fn generation(&self) -> Result<i64, SearchError> {
        Ok(self.0.current()?.generation)
    }

    /// Moves the checkpoint back to `to` without touching a document: the state a crash
    /// between writing documents and the checkpoint would leave, if a commit were not atomic.
    /// For the contract suite, which checks that replaying from there is harmless.
    #[doc(hidden)]
    pub async fn rewind_checkpoint(&self, to: i64) -> Result<(), SearchError> {
        blocking(self.0.clone(), move |s| {
            let ix = s.current()?;
            let mut w = ix.writer()?;
            let written = w.written;
            commit(
                &mut w.writer,
                Payload {
                    checkpoint: to,
                    written,
                },
            )?;
            w.checkpoint = to;
            Ok(())
        })
        .await
    }
}

/// The live generation of `root`, creating the first one in a new directory. A writer moves
/// the layout before generations into generation 1 (under that layout's writer lock: a writer
/// of an older version would hold it); a reader opens it where it is and follows the move.
fn init(root: &Path, writer: bool) -> anyhow::Result<Location> {
    std::fs::create_dir_all(root)
        .with_context(|| format!("create the search index directory {}", root.display()))?;
    match generations::locate(root)? {
        Some(at) if at.dir == root && writer => {
            let _held = generations::try_writer_lock(root)?.with_context(|| {
                format!(
                    "take the search index's writer lock in {} (is another projector writing it?)",
                    root.display()
                )
            })?;
            generations::migrate(root)
        }
        Some(at) => Ok(at),
        None => {
            // A new index: generation 1. (Two processes doing this at once make the same
            // empty index and write the same pointer.)
            open(&generations::generation_dir(root, 1))?;
            if generations::read_pointer(root)?.is_none() {
                generations::write_pointer(root, 1)?;
            }
            generations::locate(root)?.context("the search index's pointer vanished")
        }
    }
}

impl Shared {
    /// The live generation, reopened on first use after a switch.
    fn current(&self) -> Result<Arc<Inner>, SearchError> {
        let open = self.open();
        let Some(root) = &self.root else {
            return Ok(open);
        };
        match generations::locate(root)? {
            Some(at) if at.dir != open.dir => self.follow(root, &at),
            _ => Ok(open),
        }
    }

    fn open(&self) -> Arc<Inner> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reopens on generation `at` (the pointer's). A writer hands its old generation's lock
    /// back and deletes that generation, of which it was the last writer.
    fn follow(&self, root: &Path, at: &Location) -> Result<Arc<Inner>, SearchError> {
        let _one = self.following.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.open();
        if old.dir == at.dir {
            return Ok(old);
        }
        let next = Arc::new(Inner::open(at, self.writes.map(|s| (s, false)))?);
        next.watch()?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next.clone();
        tracing::info!(
            from = old.generation,
            to = next.generation,
            writer = self.writes.is_some(),
            "the search index switched generations"
        );
        if self.writes.is_some() {
            old.retire();
            if let Err(e) = generations::collect_garbage(root, next.generation) {
                tracing::warn!(error = %format!("{e:#}"), "delete an old search index generation");
            }
        }
        Ok(next)
    }

    /// Runs `op` on the live generation; when it fails because a switch moved the index
    /// meanwhile (its old directory deleted under a reload), runs it again on the new one.
    fn run<T>(
        &self,
        mut op: impl FnMut(&Inner) -> Result<T, SearchError>,
    ) -> Result<T, SearchError> {
        let mut tries = 0;
        loop {
            let ix = self.current()?;
            let err = match op(&ix) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            tries += 1;
            let moved = self.root.as_ref().is_some_and(|root| {
                generations::locate(root)
                    .ok()
                    .flatten()
                    .is_some_and(|at| at.dir != ix.dir)
            });
            if !moved || tries >= 3 {
                return Err(err);
            }
        }
    }

    /// Holds a switch off while the live writer commits (see [`crate::generations`]); a
    /// copy's writer and readers need not.
    fn hold_switch(&self) -> Result<Option<DirectoryLock>, SearchError> {
        match (&self.root, self.writes) {
            (Some(root), Some(_)) => Ok(Some(generations::switch_lock(root, SWITCH_WAIT)?)),
            _ => Ok(None),
        }
    }
}

impl Inner {
    /// Opens the generation at `at`, with a writer when `writes` says how (and whether it is a
    /// bulk load: no merges until [`Inner::merge_all`]).
    fn open(at: &Location, writes: Option<(WriterSettings, bool)>) -> anyhow::Result<Inner> {
        let (index, mmap) = open(&at.dir)?;
        let writer = match writes {
            None => None,
            Some((settings, bulk)) => {
                let writer: IndexWriter = index
                    .writer_with_num_threads(
                        settings.threads.max(1),
                        settings
                            .heap_bytes
                            .max(settings.threads.max(1) * (15 << 20) + (1 << 20)),
                    )
                    .with_context(|| {
                        format!(
                            "take the search index's writer lock in {} (is another projector \
                             writing it?)",
                            at.dir.display()
                        )
                    })?;
                if bulk {
                    // Every commit of a bulk load leaves segments; merging them as they come
                    // would rewrite each message at several levels. One merge at the end.
                    writer.set_merge_policy(Box::new(NoMergePolicy));
                }
                let Payload {
                    checkpoint,
                    written,
                } = payload(&index)?;
                Some(Writer {
                    writer,
                    checkpoint,
                    written,
                })
            }
        };
        Inner::new(at, index, mmap, writer)
    }

    fn new(
        at: &Location,
        index: Index,
        mmap: MmapDirectory,
        writer: Option<Writer>,
    ) -> anyhow::Result<Inner> {
        let (_, fields) = schema();
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .context("open a reader of the search index")?;
        let visible = AtomicI64::new(payload(&index)?.checkpoint);
        Ok(Inner {
            generation: at.generation,
            dir: at.dir.clone(),
            index,
            mmap,
            fields,
            reader,
            reloading: Mutex::new(()),
            writer: writer.map(|w| Mutex::new(Some(w))),
            visible,
            watch: OnceLock::new(),
        })
    }

    /// A reader follows the commits of the writer, another process (the writer reloads itself
    /// after each).
    fn watch(self: &Arc<Self>) -> anyhow::Result<()> {
        if self.writer.is_some() {
            return Ok(());
        }
        let weak = Arc::downgrade(self);
        let handle = self
            .index
            .directory()
            .watch(tantivy::directory::WatchCallback::new(move || {
                if let Some(inner) = weak.upgrade()
                    && let Err(e) = inner.reload()
                {
                    tracing::warn!(error = %e, "reload the search index");
                }
            }))
            .context("watch the search index for commits")?;
        let _ = self.watch.set(handle);
        Ok(())
    }

    /// Makes the reader's searcher the newest commit's, one reload at a time.
    fn reload(&self) -> tantivy::Result<()> {
        let _one = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        self.reader.reload()?;
        // Every commit opens new segment files and retires old ones; the cache's entries for
        // the retired ones would otherwise grow without bound (R9's soak, RELIABILITY.md).
        self.mmap.get_cache_info();
        Ok(())
    }

    fn writer(&self) -> Result<WriterGuard<'_>, SearchError> {
        let w = self
            .writer
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("this search index was opened to read only"))?;
        // A panic while writing poisons the lock; the writer is rolled back on every error, so
        // what it holds is the last commit.
        let guard = w.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            return Err(SearchError::Unavailable(format!(
                "generation {} of the search index is no longer written here",
                self.generation
            )));
        }
        Ok(WriterGuard(guard))
    }

    /// Closes the writer (waiting for its merges), releasing its lock.
    fn retire(&self) {
        let Some(w) = &self.writer else { return };
        let taken = w.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = taken
            && let Err(e) = w.writer.wait_merging_threads()
        {
            tracing::warn!(error = %e, generation = self.generation, "close a search index writer");
        }
    }

    /// Merges every segment into one, then lets the usual merge policy take over: the end of
    /// a bulk load.
    fn merge_all(&self) -> Result<(), SearchError> {
        let mut w = self.writer()?;
        let segments = self
            .index
            .searchable_segment_ids()
            .context("list the search index's segments")?;
        if segments.len() > 1 {
            w.writer
                .merge(&segments)
                .wait()
                .context("merge the search index's segments")?;
        }
        w.writer.set_merge_policy(Box::<LogMergePolicy>::default());
        drop(w);
        self.reload()
            .context("reload the search index after a merge")?;
        Ok(())
    }

    fn apply_now(&self, from: i64, changes: Vec<Change>, to: i64) -> Result<(), SearchError> {
        let mut w = self.writer()?;
        if w.checkpoint != from {
            return Err(SearchError::Gap {
                checkpoint: w.checkpoint,
                expected: from,
            });
        }
        let written = w.written;
        let result = self.write(&mut w.writer, changes, written, to);
        if result.is_err() {
            // Drop whatever this call added: the index stays at its last commit.
            if let Err(e) = w.writer.rollback() {
                tracing::error!(error = %e, "roll back the search index's writer");
            }
            return result;
        }
        w.checkpoint = to;
        w.written = w.written.max(to);
        drop(w);
        self.reload()
            .context("reload the search index after a commit")?;
        self.visible.fetch_max(to, Ordering::AcqRel);
        Ok(())
    }

    fn write(
        &self,
        writer: &mut IndexWriter,
        changes: Vec<Change>,
        written: i64,
        to: i64,
    ) -> Result<(), SearchError> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        // What this call wrote (not yet searchable), by message.
        let mut pending: HashMap<Uuid, Current> = HashMap::new();
        // What the index holds for `id`; a send above `written` (`sent_at`) skips the lookup.
        let current =
            |pending: &HashMap<Uuid, Current>, id: Uuid, sent_at: i64| match pending.get(&id) {
                Some(c) => Ok(Some(c.clone())),
                None if sent_at > written => Ok(None),
                None => self.stored(&searcher, id),
            };
        // Each write, and whether it replaces a document (only then is the old one deleted:
        // a delete costs a term lookup in every segment at the commit). A message first seen
        // above `written` has no document yet: any would come from one of its own events,
        // all at or after its send.
        let mut writes: Vec<Write> = Vec::new();
        for change in changes {
            match change {
                Change::Sent(doc) => {
                    let before = current(&pending, doc.message_id, doc.position)?;
                    if before.as_ref().is_some_and(|c| c.version() >= doc.position) {
                        continue;
                    }
                    writes.push(Write::Doc(
                        doc.message_id,
                        Current::Live(doc),
                        before.is_some(),
                    ));
                }
                Change::Edited {
                    message_id,
                    body,
                    position,
                } => {
                    // Edits need the message's other fields; a deleted or unknown one stays so.
                    let Some(Current::Live(mut doc)) = current(&pending, message_id, 0)? else {
                        continue;
                    };
                    if doc.position >= position {
                        continue;
                    }
                    doc.body = body;
                    doc.position = position;
                    writes.push(Write::Doc(message_id, Current::Live(doc), true));
                }
                Change::Deleted {
                    message_id,
                    position,
                } => {
                    // (Always looked up: the message was sent earlier, maybe below `written`.)
                    let before = current(&pending, message_id, 0)?;
                    if before.as_ref().is_some_and(|c| c.version() >= position) {
                        continue;
                    }
                    writes.push(Write::Doc(
                        message_id,
                        Current::Gone(position),
                        before.is_some(),
                    ));
                }
                Change::SenderErased {
                    sender_id,
                    position,
                } => {
                    // One delete of every document of the sender added before it (committed,
                    // or earlier in this call), then a tombstone for each of them so that its
                    // version outlives it, as with a delete. (A tombstone holds no sender.)
                    let mut versions: HashMap<Uuid, i64> = HashMap::new();
                    for (id, version) in self.sent_by(&searcher, sender_id)? {
                        if !pending.contains_key(&id) {
                            versions.insert(id, version);
                        }
                    }
                    for (id, c) in &pending {
                        if let Current::Live(doc) = c
                            && doc.sender_id == sender_id
                        {
                            versions.insert(*id, doc.position);
                        }
                    }
                    writes.push(Write::Sender(sender_id));
                    let mut ids: Vec<(Uuid, i64)> = versions.into_iter().collect();
                    ids.sort_unstable();
                    for (id, version) in ids {
                        // Its version never goes back (a message edited after the erasure
                        // keeps its newer one).
                        let gone = Current::Gone(version.max(position));
                        pending.insert(id, gone.clone());
                        writes.push(Write::Doc(id, gone, false));
                    }
                    continue;
                }
                Change::RoomExpired {
                    room_id,
                    up_to_seq,
                    position,
                } => {
                    // Every document of the room up to `up_to_seq` added before it (committed,
                    // or earlier in this call) becomes a tombstone, as with a delete, each
                    // replaced by id.
                    let mut versions: HashMap<Uuid, i64> = HashMap::new();
                    for (id, version) in self.expiring(&searcher, room_id, up_to_seq)? {
                        if !pending.contains_key(&id) {
                            versions.insert(id, version);
                        }
                    }
                    for (id, c) in &pending {
                        if let Current::Live(doc) = c
                            && doc.room_id == room_id
                            && doc.seq <= up_to_seq
                        {
                            versions.insert(*id, doc.position);
                        }
                    }
                    let mut ids: Vec<(Uuid, i64)> = versions.into_iter().collect();
                    ids.sort_unstable();
                    for (id, version) in ids {
                        // Its version never goes back, as with an erasure.
                        let gone = Current::Gone(version.max(position));
                        pending.insert(id, gone.clone());
                        writes.push(Write::Doc(id, gone, true));
                    }
                    continue;
                }
            }
            if let Some(Write::Doc(id, c, _)) = writes.last() {
                pending.insert(*id, c.clone());
            }
        }
        for write in writes {
            let (id, c) = match write {
                Write::Sender(sender_id) => {
                    writer.delete_term(Term::from_field_text(f.sender_id, &sender_id.to_string()));
                    continue;
                }
                Write::Doc(id, c, replaces) => {
                    if replaces {
                        writer.delete_term(id_term(f, id));
                    }
                    (id, c)
                }
            };
            let d = match &c {
                Current::Live(doc) => self.document(doc),
                Current::Gone(position) => {
                    let mut d = TantivyDocument::new();
                    d.add_text(f.message_id, id.to_string());
                    d.add_i64(f.position, *position);
                    d.add_bool(f.live, false);
                    d
                }
            };
            writer.add_document(d).context("add a document")?;
        }
        commit(
            writer,
            Payload {
                checkpoint: to,
                written: written.max(to),
            },
        )
    }

    fn document(&self, doc: &MessageDoc) -> TantivyDocument {
        let f = self.fields;
        let mut d = TantivyDocument::new();
        d.add_text(f.message_id, doc.message_id.to_string());
        d.add_text(f.room_id, doc.room_id.to_string());
        d.add_text(f.sender_id, doc.sender_id.to_string());
        d.add_i64(f.seq, doc.seq);
        d.add_i64(f.sent_at, doc.sent_at.timestamp_micros());
        d.add_i64(f.sent_position, doc.sent_position);
        d.add_i64(f.position, doc.position);
        d.add_bool(f.live, true);
        d.add_u64(f.has_link, u64::from(analysis::has_link(&doc.body)));
        d.add_text(f.body, &doc.body);
        d.add_text(f.body_prefix, &doc.body);
        d
    }

    /// The messages of `sender_id` that `searcher` holds (tombstones hold no sender), each
    /// with its version.
    fn sent_by(
        &self,
        searcher: &Searcher,
        sender_id: Uuid,
    ) -> Result<Vec<(Uuid, i64)>, SearchError> {
        let term = Term::from_field_text(self.fields.sender_id, &sender_id.to_string());
        let query = TermQuery::new(term, IndexRecordOption::Basic);
        let addresses = searcher
            .search(&query, &DocSetCollector)
            .context("look a sender's messages up")?;
        addresses
            .into_iter()
            .map(|address| {
                let (id, _, version) = self.summary(searcher, address)?;
                Ok((id, version))
            })
            .collect()
    }

    /// The messages of `room_id` that `searcher` holds with a seq at or below `up_to_seq`,
    /// each with its version.
    ///
    /// The seq is stored, not indexed, and reading a stored document is what costs. Within a
    /// room, seq and the log position of the send grow together (both follow the room
    /// stream's versions), and that position is a column: the room's documents are put in its
    /// order, and read only up to the first past `up_to_seq`. An expiry reads the messages it
    /// expires (and one more), not the whole room.
    fn expiring(
        &self,
        searcher: &Searcher,
        room_id: Uuid,
        up_to_seq: i64,
    ) -> Result<Vec<(Uuid, i64)>, SearchError> {
        let term = Term::from_field_text(self.fields.room_id, &room_id.to_string());
        let query = TermQuery::new(term, IndexRecordOption::Basic);
        let addresses = searcher
            .search(&query, &DocSetCollector)
            .context("look a room's messages up")?;
        let columns = searcher
            .segment_readers()
            .iter()
            .map(|segment| {
                segment
                    .fast_fields()
                    .i64("sent_position")
                    .map(|c| c.first_or_default_col(0))
            })
            .collect::<Result<Vec<_>, _>>()
            .context("read the sent_position column")?;
        let mut ordered: Vec<(i64, DocAddress)> = addresses
            .into_iter()
            .map(|a| (columns[a.segment_ord as usize].get_val(a.doc_id), a))
            .collect();
        ordered.sort_unstable();
        let mut out = Vec::new();
        for (_, address) in ordered {
            let (id, seq, version) = self.summary(searcher, address)?;
            if seq > up_to_seq {
                break;
            }
            out.push((id, version));
        }
        Ok(out)
    }

    /// The id, seq and version of the stored message at `address`.
    fn summary(
        &self,
        searcher: &Searcher,
        address: DocAddress,
    ) -> Result<(Uuid, i64, i64), SearchError> {
        let f = self.fields;
        let d: TantivyDocument = searcher.doc(address).context("read a stored message")?;
        let id = d
            .get_first(f.message_id)
            .and_then(|v| v.as_str())
            .and_then(|s| Uuid::parse_str(s).ok())
            .context("a stored message id is not a UUID")?;
        let int = |field: Field| {
            d.get_first(field)
                .and_then(|v| v.as_i64())
                .unwrap_or_default()
        };
        Ok((id, int(f.seq), int(f.position)))
    }

    /// What `searcher` holds for `message_id`, if anything.
    fn stored(
        &self,
        searcher: &Searcher,
        message_id: Uuid,
    ) -> Result<Option<Current>, SearchError> {
        let f = self.fields;
        let query = TermQuery::new(id_term(f, message_id), IndexRecordOption::Basic);
        let top = searcher
            .search(&query, &TopDocs::with_limit(1).order_by_score())
            .context("look a message up")?;
        let Some((_, address)) = top.first() else {
            return Ok(None);
        };
        let d: TantivyDocument = searcher.doc(*address).context("read a stored message")?;
        if d.get_first(f.live).and_then(|v| v.as_bool()) == Some(false) {
            let position = d
                .get_first(f.position)
                .and_then(|v| v.as_i64())
                .unwrap_or_default();
            return Ok(Some(Current::Gone(position)));
        }
        Ok(Some(Current::Live(self.load(searcher, *address)?)))
    }

    fn load(&self, searcher: &Searcher, address: DocAddress) -> Result<MessageDoc, SearchError> {
        let f = self.fields;
        let d: TantivyDocument = searcher.doc(address).context("read a stored message")?;
        let text = |field: Field| {
            d.get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let int = |field: Field| {
            d.get_first(field)
                .and_then(|v| v.as_i64())
                .unwrap_or_default()
        };
        let uuid =
            |field: Field| Uuid::parse_str(&text(field)).context("a stored id is not a UUID");
        Ok(MessageDoc {
            message_id: uuid(f.message_id)?,
            room_id: uuid(f.room_id)?,
            seq: int(f.seq),
            sender_id: uuid(f.sender_id)?,
            sent_at: DateTime::<Utc>::from_timestamp_micros(int(f.sent_at)).unwrap_or_default(),
            body: text(f.body),
            sent_position: int(f.sent_position),
            position: int(f.position),
        })
    }

    /// The query of `req` over a searcher whose newest message was sent at `newest`.
    fn query(&self, req: &SearchRequest, snapshot: i64, newest: i64) -> Box<dyn Query> {
        let f = self.fields;
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for clause in &req.clauses {
            must.push((Occur::Must, self.clause(clause)));
        }
        if must.is_empty() {
            must.push((Occur::Must, Box::new(AllQuery)));
        }
        let mut filter =
            |q: Box<dyn Query>| must.push((Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0))));
        filter(Box::new(TermSetQuery::new(
            req.rooms
                .iter()
                .map(|r| Term::from_field_text(f.room_id, &r.to_string())),
        )));
        if !req.senders.is_empty() {
            filter(Box::new(TermSetQuery::new(
                req.senders
                    .iter()
                    .map(|s| Term::from_field_text(f.sender_id, &s.to_string())),
            )));
        }
        if req.sent_from.is_some() || req.sent_before.is_some() {
            let micros = |t: DateTime<Utc>| Term::from_field_i64(f.sent_at, t.timestamp_micros());
            filter(Box::new(RangeQuery::new(
                req.sent_from
                    .map_or(Bound::Unbounded, |t| Bound::Included(micros(t))),
                req.sent_before
                    .map_or(Bound::Unbounded, |t| Bound::Excluded(micros(t))),
            )));
        }
        if req.has_link {
            let yes = Term::from_field_u64(f.has_link, 1);
            filter(Box::new(RangeQuery::new(
                Bound::Included(yes.clone()),
                Bound::Included(yes),
            )));
        }
        // The snapshot, and for `recent` the keyset: everything sent before the last hit.
        let mut upper = snapshot;
        if let (Sort::Recent, Some(after)) = (req.sort, req.after) {
            upper = upper.min(after.sent_position - 1);
        }
        // (A first page's snapshot is everything there is: no filter needed.)
        if upper < newest {
            filter(Box::new(RangeQuery::new(
                Bound::Unbounded,
                Bound::Included(Term::from_field_i64(f.sent_position, upper)),
            )));
        }
        Box::new(BooleanQuery::new(must))
    }

    fn clause(&self, clause: &Clause) -> Box<dyn Query> {
        let f = self.fields;
        let term = |field: Field, t: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, t),
                IndexRecordOption::WithFreqs,
            ))
        };
        match clause {
            // The word's starts include the word itself: they decide what matches (one posting
            // list drives), and the whole word only adds to the score (it is looked up at
            // those documents, not merged with them).
            Clause::Word(w) if (MIN_PREFIX..=MAX_PREFIX).contains(&w.chars().count()) => {
                Box::new(BooleanQuery::new(vec![
                    (Occur::Must, term(f.body_prefix, w)),
                    (
                        Occur::Should,
                        Box::new(BoostQuery::new(term(f.body, w), 2.0)),
                    ),
                ]))
            }
            Clause::Word(w) => term(f.body, w),
            Clause::Prefix(p) => term(f.body_prefix, p),
            Clause::Phrase(words) if words.len() == 1 => term(f.body, &words[0]),
            Clause::Phrase(words) => Box::new(PhraseQuery::new(
                words
                    .iter()
                    .map(|w| Term::from_field_text(f.body, w))
                    .collect(),
            )),
        }
    }

    fn search_now(&self, req: SearchRequest) -> Result<SearchPage, SearchError> {
        let searcher = self.reader.searcher();
        let newest = max_sent_position(&searcher)?;
        let snapshot = req.snapshot.unwrap_or(newest);
        let query = self.query(&req, snapshot, newest);
        let want = req.limit + 1;
        let addresses: Vec<(f32, DocAddress)> = match req.sort {
            Sort::Recent => searcher
                .search(
                    &query,
                    &TopDocs::with_limit(want)
                        .order_by_fast_field::<i64>("sent_position", Order::Desc),
                )
                .context("search")?
                .into_iter()
                .map(|(_, a)| (0.0, a))
                .collect(),
            Sort::Relevance => {
                let after = req.after;
                let collector = TopDocs::with_limit(want).tweak_score(
                    move |segment: &tantivy::SegmentReader| {
                        let positions = segment
                            .fast_fields()
                            .i64("sent_position")
                            .ok()
                            .map(|c| c.first_or_default_col(0));
                        move |doc: tantivy::DocId, score: tantivy::Score| {
                            let p = positions.as_ref().map_or(0, |c| c.get_val(doc));
                            let past = after.is_none_or(|a| {
                                let s = a.score.unwrap_or(f32::INFINITY);
                                score < s || (score == s && p < a.sent_position)
                            });
                            if past {
                                (score, p)
                            } else {
                                (f32::NEG_INFINITY, i64::MIN)
                            }
                        }
                    },
                );
                searcher
                    .search(&query, &collector)
                    .context("search")?
                    .into_iter()
                    .filter(|((score, _), _)| score.is_finite())
                    .map(|((score, _), a)| (score, a))
                    .collect()
            }
        };
        let more = addresses.len() > req.limit;
        let hits = addresses
            .into_iter()
            .take(req.limit)
            .map(|(score, address)| {
                Ok(Hit {
                    doc: self.load(&searcher, address)?,
                    score,
                })
            })
            .collect::<Result<Vec<_>, SearchError>>()?;
        Ok(SearchPage {
            hits,
            more,
            snapshot,
        })
    }
}

/// The index in `dir`, and its directory (whose cache of mapped files [`Inner::reload`]
/// prunes).
fn open(dir: &Path) -> anyhow::Result<(Index, MmapDirectory)> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("create the search index directory {}", dir.display()))?;
    let directory = MmapDirectory::open(dir)
        .with_context(|| format!("open the search index directory {}", dir.display()))?;
    let (schema, _) = schema();
    let index = Index::open_or_create(directory.clone(), schema).with_context(|| {
        format!(
            "open the search index in {} (made by another version? `projector rebuild search`)",
            dir.display()
        )
    })?;
    index
        .tokenizers()
        .register(WORDS, analysis::words_analyzer());
    index
        .tokenizers()
        .register(PREFIXES, analysis::prefixes_analyzer());
    Ok((index, directory))
}

/// The last commit's payload (zeros before the first).
fn payload(index: &Index) -> anyhow::Result<Payload> {
    let metas = index
        .load_metas()
        .context("read the search index's last commit")?;
    match metas.payload {
        None => Ok(Payload::default()),
        Some(p) => serde_json::from_str(&p).with_context(|| {
            format!("the search index's commit payload {p:?} is not a checkpoint")
        }),
    }
}

/// Commits everything added since the last commit with `payload`, in one atomic step.
fn commit(writer: &mut IndexWriter, payload: Payload) -> Result<(), SearchError> {
    let mut prepared = writer.prepare_commit().context("prepare a commit")?;
    prepared.set_payload(&serde_json::to_string(&payload).context("encode the payload")?);
    prepared.commit().context("commit the search index")?;
    Ok(())
}

fn id_term(f: Fields, message_id: Uuid) -> Term {
    Term::from_field_text(f.message_id, &message_id.to_string())
}

/// The highest `sent_position` among the searcher's documents (deleted ones included: an
/// upper bound is all a snapshot needs).
fn max_sent_position(searcher: &Searcher) -> Result<i64, SearchError> {
    let mut max = 0;
    for segment in searcher.segment_readers() {
        let column = segment
            .fast_fields()
            .i64("sent_position")
            .context("read the sent_position column")?;
        if segment.num_docs() > 0 {
            max = max.max(column.max_value());
        }
    }
    Ok(max)
}

fn blocking<T: Send + 'static>(
    index: Arc<Shared>,
    f: impl FnOnce(&Shared) -> Result<T, SearchError> + Send + 'static,
) -> BoxFuture<'static, Result<T, SearchError>> {
    Box::pin(async move {
        tokio::task::spawn_blocking(move || f(&index))
            .await
            .map_err(|e| SearchError::Other(anyhow::anyhow!("a search task failed: {e}")))?
    })
}

/// Each call moves a handle onto Tokio's blocking pool (Tantivy's work is CPU and disk).
impl SearchBackend for TantivyIndex {
    fn kind(&self) -> &'static str {
        "tantivy"
    }

    fn checkpoint(&self) -> BoxFuture<'_, Result<i64, SearchError>> {
        blocking(self.0.clone(), |s| {
            s.run(|ix| {
                let writing = ix.writer.as_ref().and_then(|w| {
                    let w = w.lock().unwrap_or_else(|p| p.into_inner());
                    w.as_ref().map(|w| w.checkpoint)
                });
                match writing {
                    Some(c) => Ok(c),
                    // A reader, or a copy that went live: its last commit.
                    None => Ok(payload(&ix.index)?.checkpoint),
                }
            })
        })
    }

    fn apply(
        &self,
        from: i64,
        changes: Vec<Change>,
        to: i64,
    ) -> BoxFuture<'_, Result<(), SearchError>> {
        blocking(self.0.clone(), move |s| {
            // Under the switch lock, the generation cannot change before the commit: a switch
            // waits for it, then catches its copy up with it.
            let _held = s.hold_switch()?;
            s.current()?.apply_now(from, changes, to)
        })
    }

    fn reset(&self) -> BoxFuture<'_, Result<(), SearchError>> {
        blocking(self.0.clone(), |s| {
            let _held = s.hold_switch()?;
            let ix = s.current()?;
            let mut w = ix.writer()?;
            w.writer
                .delete_all_documents()
                .context("empty the search index")?;
            commit(&mut w.writer, Payload::default())?;
            w.checkpoint = 0;
            w.written = 0;
            drop(w);
            ix.reload().context("reload the search index")?;
            ix.visible.store(0, Ordering::Release);
            Ok(())
        })
    }

    fn visible_position(&self, at_least: i64) -> BoxFuture<'_, Result<i64, SearchError>> {
        blocking(self.0.clone(), move |s| {
            s.run(|ix| {
                let seen = ix.visible.load(Ordering::Acquire);
                if seen >= at_least {
                    return Ok(seen);
                }
                let committed = payload(&ix.index)?.checkpoint;
                if committed > seen {
                    ix.reload().context("reload the search index")?;
                    ix.visible.fetch_max(committed, Ordering::AcqRel);
                }
                Ok(committed)
            })
        })
    }

    fn search(&self, req: SearchRequest) -> BoxFuture<'_, Result<SearchPage, SearchError>> {
        blocking(self.0.clone(), move |s| {
            if req.rooms.is_empty() || req.limit == 0 {
                return Ok(SearchPage {
                    hits: Vec::new(),
                    more: false,
                    snapshot: req.snapshot.unwrap_or(0),
                });
            }
            s.run(|ix| ix.search_now(req.clone()))
        })
    }

    fn epoch(&self) -> BoxFuture<'_, Result<i64, SearchError>> {
        blocking(self.0.clone(), |s| Ok(s.current()?.generation))
    }

    fn stage(&self) -> BoxFuture<'_, Result<Box<dyn StagedIndex>, SearchError>> {
        let root = self.0.root.clone();
        Box::pin(async move {
            let root = root.context("a rebuild's copy of the search index cannot be staged")?;
            let staged =
                tokio::task::spawn_blocking(move || Self::stage_in(&root, WriterSettings::bulk()))
                    .await
                    .map_err(|e| {
                        SearchError::Other(anyhow::anyhow!("a search task failed: {e}"))
                    })??;
            Ok(Box::new(staged) as Box<dyn StagedIndex>)
        })
    }
}

/// The next generation of a Tantivy index, filled by a blue/green rebuild
/// ([`TantivyIndex::stage_in`]): its copy writes `gen-<n+1>/` with bulk settings (no merges
/// until [`StagedIndex::bulk_loaded`]); [`StagedIndex::switch`] releases the copy's writer
/// lock and flips the pointer under the switch lock. Dropped without a switch, it leaves the
/// live generation untouched; the next stage deletes what it wrote.
pub struct TantivyStaged {
    root: PathBuf,
    /// The live generation when it was staged.
    live: i64,
    copy: TantivyIndex,
    /// The switch lock, from [`StagedIndex::hold`] to the switch.
    hold: Mutex<Option<DirectoryLock>>,
}

impl TantivyStaged {
    fn switch_now(self) -> Result<i64, SearchError> {
        let taken = self.hold.lock().unwrap_or_else(|p| p.into_inner()).take();
        let held = match taken {
            Some(h) => h,
            None => generations::switch_lock(&self.root, SWITCH_WAIT)?,
        };
        let live = generations::read_pointer(&self.root)?;
        if live != Some(self.live) {
            return Err(SearchError::Other(anyhow::anyhow!(
                "the live search index moved from generation {} to {live:?} during the rebuild \
                 (another rebuild?)",
                self.live
            )));
        }
        let next = self.live + 1;
        // Its last commit is its final state: hand its writer lock over to the live writer,
        // which takes it when it sees the pointer.
        let copy = self.copy.0.open();
        copy.retire();
        generations::write_pointer(&self.root, next)?;
        drop(held);
        tracing::info!(generation = next, "search index switched");
        // The live writer, when there is one, deletes the old generation once it has moved:
        // until then it holds the old one's writer lock and this leaves it alone.
        if let Err(e) = generations::collect_garbage(&self.root, next) {
            tracing::warn!(error = %format!("{e:#}"), "delete an old search index generation");
        }
        Ok(next)
    }

    fn abandon_now(self) -> Result<(), SearchError> {
        self.copy.0.open().retire();
        drop(self.hold);
        generations::delete_if_unused(&self.root, self.live + 1)?;
        Ok(())
    }
}

impl StagedIndex for TantivyStaged {
    fn epoch(&self) -> i64 {
        self.live + 1
    }

    fn copy(&self) -> Arc<dyn SearchBackend> {
        Arc::new(self.copy.clone())
    }

    fn bulk_loaded(&self) -> BoxFuture<'_, Result<(), SearchError>> {
        blocking(self.copy.0.clone(), |s| s.current()?.merge_all())
    }

    fn live_checkpoint(&self) -> BoxFuture<'_, Result<i64, SearchError>> {
        let root = self.root.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let at = generations::locate(&root)?.context("the live search index vanished")?;
                Ok(payload(&open(&at.dir)?.0)?.checkpoint)
            })
            .await
            .map_err(|e| SearchError::Other(anyhow::anyhow!("a search task failed: {e}")))?
        })
    }

    fn hold(&self) -> BoxFuture<'_, Result<(), SearchError>> {
        Box::pin(async move {
            let root = self.root.clone();
            let held =
                tokio::task::spawn_blocking(move || generations::switch_lock(&root, SWITCH_WAIT))
                    .await
                    .map_err(|e| {
                        SearchError::Other(anyhow::anyhow!("a search task failed: {e}"))
                    })??;
            *self.hold.lock().unwrap_or_else(|p| p.into_inner()) = Some(held);
            Ok(())
        })
    }

    fn switch(self: Box<Self>) -> BoxFuture<'static, Result<i64, SearchError>> {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || self.switch_now())
                .await
                .map_err(|e| SearchError::Other(anyhow::anyhow!("a search task failed: {e}")))?
        })
    }

    fn abandon(self: Box<Self>) -> BoxFuture<'static, Result<(), SearchError>> {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || self.abandon_now())
                .await
                .map_err(|e| SearchError::Other(anyhow::anyhow!("a search task failed: {e}")))?
        })
    }
}
