//! What the integration tests of the HTTP services share (a dev-dependency only):
//!
//! - [`apps`]: a test's database, stream and JWT secret ([`TestEnv`]), the settings of
//!   the real command-api and query-api pointed at them, and those services served on
//!   port 0 in the background ([`Node`], [`Running`]);
//! - [`http`]: a client of the HTTP API ([`Api`]): requests, responses with the JSON
//!   error-shape assertions ([`Res`]), registering users, creating rooms, sending;
//! - [`ws`]: a client of the WebSocket live feed ([`Client`]);
//! - [`wait`]: waiting for a condition with a deadline;
//! - [`postgres`]: a PostgreSQL server of one test's own, to stop and start again
//!   ([`OwnedPostgres`]).
//!
//! What only one crate's tests need stays in that crate's `tests/*/helpers.rs`.

pub mod apps;
pub mod http;
pub mod nats;
pub mod postgres;
pub mod process;
pub mod wait;
pub mod ws;

pub use apps::{Node, Running, TestEnv};
pub use http::{Api, PASSWORD, Res, TestUser, unique};
pub use nats::OwnedNats;
pub use postgres::OwnedPostgres;
pub use wait::{DEADLINE, wait_until};
pub use ws::{Client, Got, is_message};
