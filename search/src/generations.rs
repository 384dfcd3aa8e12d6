//! The Tantivy index's directory as generations, for blue/green rebuilds (ADR 11).
//!
//! `data_dir/search/` holds one Tantivy index per generation, `gen-<n>/`, and a pointer file,
//! `CURRENT`, naming the live one (`<n>` and a newline; `n` is the search projection's epoch).
//! The pointer is replaced atomically (a temporary file, fsync, rename, fsync of the
//! directory), so a reader sees the old generation or the new one, never a mix.
//!
//! Who may delete what:
//! - a generation below the live one is garbage, deleted only by someone holding its
//!   Tantivy writer lock (so never under a writer still using it; readers keep their open
//!   files, which Linux keeps until they are closed);
//! - a generation above the live one is a rebuild's copy in progress, deleted only by the next
//!   [`crate::TantivyIndex::stage`], again under its writer lock (a running rebuild holds it).
//!
//! `switch.lock` holds the live writer still: the live writer takes it for each commit, a
//! rebuild's switch for its last catch-up and the pointer's flip, so the flip never lands
//! between a commit of the live writer and the copy catching up with it.
//!
//! The layout before generations (the index files in `search/` itself) is generation 1: a
//! reader opens it where it is; the writer moves it into `gen-1/` by hard links (the old names
//! stay valid until the pointer exists, so a reader never finds a half-moved index), writes
//! the pointer, then deletes the old names.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tantivy::Directory as _;
use tantivy::directory::{DirectoryLock, INDEX_WRITER_LOCK, Lock, MmapDirectory};

/// The pointer file's name.
pub const POINTER: &str = "CURRENT";
/// The lock that holds the live writer still during a switch.
const SWITCH_LOCK: &str = "switch.lock";
/// Tantivy's last-commit file: in the root, it marks the pre-generation layout.
const META: &str = "meta.json";

/// A generation of the index and where its files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub generation: i64,
    pub dir: PathBuf,
}

/// The directory of generation `n`.
pub fn generation_dir(root: &Path, n: i64) -> PathBuf {
    root.join(format!("gen-{n}"))
}

/// The generation the pointer names, `None` without a pointer.
pub fn read_pointer(root: &Path) -> anyhow::Result<Option<i64>> {
    match std::fs::read_to_string(root.join(POINTER)) {
        Ok(text) => {
            let n = text.trim().parse::<i64>().with_context(|| {
                format!(
                    "the search index's pointer {} holds {text:?}, not a generation",
                    root.join(POINTER).display()
                )
            })?;
            Ok(Some(n))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("read {}", root.join(POINTER).display())),
    }
}

/// Points at generation `n`: write a temporary file, fsync it, rename it over the pointer,
/// fsync the directory. A crash leaves the old pointer or the new one.
pub fn write_pointer(root: &Path, n: i64) -> anyhow::Result<()> {
    let tmp = root.join(format!(
        "{POINTER}.tmp-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(format!("{n}\n").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, root.join(POINTER))?;
        sync_dir(root)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("point the search index at generation {n}"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Where the live generation is: the pointer's, or the pre-generation layout (generation 1 in
/// the root itself); `None` when the root holds no index yet.
pub fn locate(root: &Path) -> anyhow::Result<Option<Location>> {
    if let Some(n) = read_pointer(root)? {
        return Ok(Some(Location {
            generation: n,
            dir: generation_dir(root, n),
        }));
    }
    if root.join(META).exists() {
        return Ok(Some(Location {
            generation: 1,
            dir: root.to_path_buf(),
        }));
    }
    Ok(None)
}

/// Every `gen-<n>` directory in the root, by number.
pub fn generations(root: &Path) -> anyhow::Result<Vec<i64>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("list {}", root.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("list {}", root.display()))?;
        let name = entry.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|s| s.strip_prefix("gen-"))
            .and_then(|s| s.parse::<i64>().ok())
            && entry.file_type().is_ok_and(|t| t.is_dir())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn lock(dir: &Path, lock: &Lock) -> anyhow::Result<Option<DirectoryLock>> {
    let directory = MmapDirectory::open(dir)
        .with_context(|| format!("open the search index directory {}", dir.display()))?;
    match directory.acquire_lock(lock) {
        Ok(l) => Ok(Some(l)),
        Err(tantivy::directory::error::LockError::LockBusy) => Ok(None),
        Err(e) => Err(anyhow::Error::new(e).context(format!("lock {}", dir.display()))),
    }
}

/// Tantivy's writer lock of the index in `dir`, if no one holds it.
pub fn try_writer_lock(dir: &Path) -> anyhow::Result<Option<DirectoryLock>> {
    lock(dir, &INDEX_WRITER_LOCK)
}

/// The switch lock of `root`, waiting up to `within` for it (polling: a switch holds it for a
/// moment only, and a blocking lock could wait forever on a stuck process).
pub fn switch_lock(root: &Path, within: Duration) -> anyhow::Result<DirectoryLock> {
    let deadline = Instant::now() + within;
    let switch = Lock {
        filepath: PathBuf::from(SWITCH_LOCK),
        is_blocking: false,
    };
    loop {
        if let Some(l) = lock(root, &switch)? {
            return Ok(l);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the search index's switch lock in {} was held for over {within:?}",
            root.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Deletes generation `n` if no writer holds it; whether it did.
pub fn delete_if_unused(root: &Path, n: i64) -> anyhow::Result<bool> {
    let dir = generation_dir(root, n);
    if !dir.exists() {
        return Ok(true);
    }
    let Some(held) = try_writer_lock(&dir)? else {
        return Ok(false);
    };
    std::fs::remove_dir_all(&dir)
        .with_context(|| format!("delete the old search index {}", dir.display()))?;
    drop(held);
    Ok(true)
}

/// Deletes what the live generation `live` makes garbage: older generations no writer holds,
/// and the pre-generation layout's files once the pointer exists. Never a newer generation (a
/// rebuild's copy in progress).
pub fn collect_garbage(root: &Path, live: i64) -> anyhow::Result<()> {
    for n in generations(root)? {
        if n < live && !delete_if_unused(root, n)? {
            tracing::info!(
                generation = n,
                "an old search index generation is still being written; left for its writer"
            );
        }
    }
    if read_pointer(root)?.is_some() {
        for name in legacy_files(root)? {
            let path = root.join(&name);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("delete {}", path.display()));
                }
            }
        }
    }
    Ok(())
}

/// The files of the pre-generation layout in the root: every regular file but the pointer,
/// its temporaries and the locks.
fn legacy_files(root: &Path) -> anyhow::Result<Vec<std::ffi::OsString>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).with_context(|| format!("list {}", root.display()))? {
        let entry = entry.with_context(|| format!("list {}", root.display()))?;
        let name = entry.file_name();
        let text = name.to_string_lossy();
        if !entry.file_type().is_ok_and(|t| t.is_file())
            || text.starts_with(POINTER)
            || text.ends_with(".lock")
        {
            continue;
        }
        out.push(name);
    }
    Ok(out)
}

/// Moves the pre-generation layout in `root` into `gen-1/` (see the module) and points at it.
/// The caller holds the root's writer lock. An interrupted migration is started over.
pub fn migrate(root: &Path) -> anyhow::Result<Location> {
    let dir = generation_dir(root, 1);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("delete a half-made {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    for name in legacy_files(root)? {
        std::fs::hard_link(root.join(&name), dir.join(&name)).with_context(|| {
            format!("link {} into {}", root.join(&name).display(), dir.display())
        })?;
    }
    sync_dir(&dir).with_context(|| format!("sync {}", dir.display()))?;
    write_pointer(root, 1)?;
    tracing::info!(dir = %dir.display(), "the search index moved into its first generation");
    Ok(Location { generation: 1, dir })
}
