//! The data keys as a process sees them: read from `data_keys` once and kept, so sealing a
//! message or opening an event costs no query once its owner's key is known.
//!
//! A key absent from the table was shredded (keys are committed before any event names them),
//! so an absence is remembered too. A process forgets an owner's keys when it reads their
//! `UserErased` in the log ([`Keyring::open_events`]) or is told so ([`Keyring::forget`]).

use crate::cipher::DataKey;
use crate::fields::{self, KeyId, Known, NotLoaded};
use eventlog::RecordedEvent;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Keys kept per process before the cache starts again from empty (each is ~100 bytes).
const MAX_KEYS_KEPT: usize = 500_000;

/// How long a process trusts what it read of a key before it reads it again: a rotation by
/// another replica, or an erasure whose notice this process missed, is followed within this.
pub const KEY_TTL: Duration = Duration::from_secs(300);

/// The stored type of the event that erases a user (its payload names `user_id`).
pub const USER_ERASED: &str = "UserErased";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("user {0} was erased: nothing is sealed for them any more")]
    Erased(Uuid),
    #[error(transparent)]
    NotLoaded(#[from] NotLoaded),
    #[error("reading or writing the data keys")]
    Db(#[from] sqlx::Error),
}

#[derive(Default)]
struct Cache {
    /// `None`: shredded (for good). A key is read again after [`KEY_TTL`].
    keys: HashMap<KeyId, (Option<Arc<DataKey>>, Instant)>,
    /// The key each owner's new values are sealed under, and when it was read.
    current: HashMap<Uuid, (KeyId, Instant)>,
}

impl Cache {
    /// Whether `owner`'s current key is known, and was read within [`KEY_TTL`].
    fn has_current(&self, owner: &Uuid) -> bool {
        self.current
            .get(owner)
            .is_some_and(|(_, at)| at.elapsed() < KEY_TTL)
    }
}

/// Seals and opens the personal values of events with their owners' data keys.
pub struct Keyring {
    pool: PgPool,
    sealing: bool,
    cache: RwLock<Cache>,
}

impl Keyring {
    /// Keys in `pool`'s `data_keys`. With `sealing` off, new values are written in plain text
    /// (to measure what sealing costs; nothing written so can be erased from the log), and
    /// sealed ones still open.
    pub fn new(pool: PgPool, sealing: bool) -> Self {
        Keyring {
            pool,
            sealing,
            cache: RwLock::default(),
        }
    }

    /// Whether new personal values are sealed.
    pub fn sealing(&self) -> bool {
        self.sealing
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.keys.len() > MAX_KEYS_KEPT {
            *cache = Cache::default();
        }
        cache
    }

    /// Makes sure the key each of `owners`' new values will be sealed under is loaded, making
    /// an owner's first key when they have none. [`VaultError::Erased`] for an erased owner.
    pub async fn prepare_sealing(
        &self,
        owners: impl IntoIterator<Item = Uuid>,
    ) -> Result<(), VaultError> {
        if !self.sealing {
            return Ok(());
        }
        let missing: Vec<Uuid> = {
            let cache = self.read();
            let set: HashSet<Uuid> = owners
                .into_iter()
                .filter(|o| !cache.has_current(o))
                .collect();
            set.into_iter().collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let fresh: Vec<Vec<u8>> = missing
            .iter()
            .map(|_| DataKey::generate().bytes().to_vec())
            .collect();
        // Each owner's first key, unless they have one or were erased; a racing process may
        // make it first, and then both use that one.
        sqlx::query(
            "INSERT INTO data_keys (user_id, version, key)
             SELECT t.u, 1, t.k FROM unnest($1::uuid[], $2::bytea[]) AS t(u, k)
             WHERE NOT EXISTS (SELECT 1 FROM data_keys d WHERE d.user_id = t.u)
               AND NOT EXISTS (SELECT 1 FROM erased_users e WHERE e.user_id = t.u)
             ON CONFLICT DO NOTHING",
        )
        .bind(&missing)
        .bind(&fresh)
        .execute(&self.pool)
        .await?;
        let rows: Vec<(Uuid, i32, Vec<u8>)> = sqlx::query_as(
            "SELECT DISTINCT ON (user_id) user_id, version, key FROM data_keys
             WHERE user_id = ANY($1) ORDER BY user_id, version DESC",
        )
        .bind(&missing)
        .fetch_all(&self.pool)
        .await?;
        let mut cache = self.write();
        for (owner, version, bytes) in rows {
            if let Some(key) = DataKey::from_bytes(&bytes) {
                let id = KeyId { owner, version };
                cache.keys.insert(id, (Some(Arc::new(key)), Instant::now()));
                cache.current.insert(owner, (id, Instant::now()));
            }
        }
        match missing.iter().find(|o| !cache.has_current(o)) {
            Some(erased) => Err(VaultError::Erased(*erased)),
            None => Ok(()),
        }
    }

    /// Seals the personal values of `data` (an `event_type` payload) under `owner`'s current
    /// key, loaded by [`Keyring::prepare_sealing`] before. Nothing when sealing is off.
    pub fn seal(&self, event_type: &str, data: &mut Value, owner: Uuid) -> Result<(), VaultError> {
        if !self.sealing || !fields::has_sealed(event_type) {
            return Ok(());
        }
        let cache = self.read();
        let (id, _) = cache
            .current
            .get(&owner)
            .copied()
            .ok_or(NotLoaded(KeyId { owner, version: 0 }))?;
        match cache.keys.get(&id) {
            Some((Some(key), _)) => {
                fields::seal(event_type, data, id, key);
                Ok(())
            }
            Some((None, _)) => Err(VaultError::Erased(owner)),
            None => Err(NotLoaded(id).into()),
        }
    }

    /// Loads the keys `ids` that are not known yet (with every other key of their owners).
    pub async fn load(&self, ids: impl IntoIterator<Item = KeyId>) -> Result<(), sqlx::Error> {
        let wanted: HashSet<KeyId> = {
            let cache = self.read();
            ids.into_iter()
                .filter(|id| match cache.keys.get(id) {
                    Some((None, _)) => false,
                    Some((Some(_), at)) => at.elapsed() >= KEY_TTL,
                    None => true,
                })
                .collect()
        };
        if wanted.is_empty() {
            return Ok(());
        }
        let owners: Vec<Uuid> = wanted
            .iter()
            .map(|id| id.owner)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let rows: Vec<(Uuid, i32, Vec<u8>)> =
            sqlx::query_as("SELECT user_id, version, key FROM data_keys WHERE user_id = ANY($1)")
                .bind(&owners)
                .fetch_all(&self.pool)
                .await?;
        let mut cache = self.write();
        let now = Instant::now();
        for id in &wanted {
            // Committed before any event named it: absent now means shredded.
            cache.keys.insert(*id, (None, now));
        }
        for (owner, version, bytes) in rows {
            if let Some(key) = DataKey::from_bytes(&bytes) {
                cache
                    .keys
                    .insert(KeyId { owner, version }, (Some(Arc::new(key)), now));
            }
        }
        Ok(())
    }

    /// Opens `data` with the keys loaded (see [`fields::open`]).
    pub fn open(&self, event_type: &str, data: &mut Value) -> Result<(), NotLoaded> {
        if !fields::has_sealed(event_type) {
            return Ok(());
        }
        let cache = self.read();
        fields::open(event_type, data, |id| match cache.keys.get(&id) {
            Some((Some(key), _)) => Known::Key(key),
            Some((None, _)) => Known::Shredded,
            None => Known::Unknown,
        })
    }

    /// Opens `events` (in log order) in place: loads the keys they name in one query, then
    /// opens each in turn, forgetting an owner's keys at their `UserErased` so that nothing
    /// after it opens (a send that raced the erasure was sealed under a key now gone).
    pub async fn open_events(&self, events: &mut [RecordedEvent]) -> Result<(), VaultError> {
        let ids: Vec<KeyId> = events
            .iter()
            .flat_map(|e| fields::keys_named(&e.event_type, &e.data))
            .collect();
        self.load(ids).await?;
        for e in events.iter_mut() {
            if e.event_type == USER_ERASED
                && let Some(owner) = erased_user(&e.data)
            {
                self.forget(owner);
            }
            self.open(&e.event_type, &mut e.data)?;
        }
        Ok(())
    }

    /// Opens one event in place (see [`Keyring::open_events`]).
    pub async fn open_event(&self, event: &mut RecordedEvent) -> Result<(), VaultError> {
        self.open_events(std::slice::from_mut(event)).await
    }

    /// Treats every key of `owner` as shredded from now on (they were erased).
    pub fn forget(&self, owner: Uuid) {
        let mut cache = self.write();
        cache.current.remove(&owner);
        for (id, (key, _)) in cache.keys.iter_mut() {
            if id.owner == owner {
                *key = None;
            }
        }
    }

    /// Drops what this process knows of `owner`'s keys, to read them again when next needed:
    /// on a notice that the owner may have been erased (a key gone from the table is then
    /// known shredded; one still there is read back as it was).
    pub fn invalidate(&self, owner: Uuid) {
        let mut cache = self.write();
        cache.current.remove(&owner);
        cache.keys.retain(|id, _| id.owner != owner);
    }

    /// Gives `owner` a new key: their new values are sealed under it, the older ones still
    /// open with theirs. The log is not rewritten. Returns the new version.
    pub async fn rotate(&self, owner: Uuid) -> Result<i32, VaultError> {
        let fresh = DataKey::generate();
        let version: Option<i32> = sqlx::query_scalar(
            "INSERT INTO data_keys (user_id, version, key)
             SELECT $1, COALESCE((SELECT max(version) FROM data_keys WHERE user_id = $1), 0) + 1, $2
             WHERE NOT EXISTS (SELECT 1 FROM erased_users WHERE user_id = $1)
             RETURNING version",
        )
        .bind(owner)
        .bind(fresh.bytes())
        .fetch_optional(&self.pool)
        .await?;
        let version = version.ok_or(VaultError::Erased(owner))?;
        let id = KeyId { owner, version };
        let mut cache = self.write();
        cache
            .keys
            .insert(id, (Some(Arc::new(fresh)), Instant::now()));
        cache.current.insert(owner, (id, Instant::now()));
        Ok(version)
    }

    /// Shreds every key of `owner` in the caller's transaction, and records that no key is
    /// ever made for them again. Returns how many keys were deleted. The caller appends the
    /// `UserErased` event in the same transaction and calls [`Keyring::forget`] after.
    pub async fn shred(conn: &mut PgConnection, owner: Uuid, by: Uuid) -> Result<u64, sqlx::Error> {
        sqlx::query(
            "INSERT INTO erased_users (user_id, erased_by) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(owner)
        .bind(by)
        .execute(&mut *conn)
        .await?;
        let deleted = sqlx::query("DELETE FROM data_keys WHERE user_id = $1")
            .bind(owner)
            .execute(&mut *conn)
            .await?;
        Ok(deleted.rows_affected())
    }
}

/// The user a `UserErased` payload names.
pub fn erased_user(data: &Value) -> Option<Uuid> {
    data.get("user_id")?.as_str()?.parse().ok()
}
