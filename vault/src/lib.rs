//! Erasure by crypto-shredding (issue #18, ADR 23).
//!
//! The personal values of events (message bodies, usernames, display names, attachment
//! names: [`fields::SEALED`]) are sealed in the log under a data key of their owner
//! ([`cipher`], XChaCha20-Poly1305), kept in the `data_keys` table beside the log. Every
//! reader opens events with the [`Keyring`] before decoding them. Erasing a user deletes
//! their keys: their values read as `[erased]` in every projection, every rebuild and the
//! live feed, while the log itself stays append-only and every other value intact.

pub mod cipher;
pub mod fields;
pub mod keyring;

pub use fields::{ERASED_TEXT, erased_username, is_erased, open_blind};
pub use keyring::{Keyring, USER_ERASED, VaultError};

/// Runs this crate's migrations (`data_keys`, `erased_users`): command-api, which writes the
/// keys, runs them. Other crates' migrations in the same database are ignored.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    eventlog::pool::migrate_retrying(&migrator, pool).await
}
