//! The command side of the chat platform: authenticates users, decides commands
//! with the pure `events` domain, appends to the PostgreSQL event log with group
//! commit, and relays the log to JetStream.

pub mod auth;
pub mod configuration;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod rooms;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
