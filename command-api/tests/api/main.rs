//! API tests: the real command-api over HTTP, against real PostgreSQL and NATS.
#![allow(clippy::unwrap_used)]

mod concurrency;
mod flows;
mod helpers;
