//! The command side of the chat platform: authenticates users, decides commands
//! with the pure `events` domain, appends to the PostgreSQL event log with group
//! commit, and relays the log to JetStream.

pub mod attachments;
pub mod avatars;
pub mod configuration;
pub mod idempotency;
pub mod mentions;
pub mod message_keys;
pub mod metrics;
pub mod oidc;
pub mod rate_limits;
pub mod retention;
pub mod rooms;
pub mod routes;
pub mod startup;
pub mod state;

pub use http_kit::{auth, error, extract, telemetry};
