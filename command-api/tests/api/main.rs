//! API tests: the real command-api over HTTP, against real PostgreSQL and NATS.
#![allow(clippy::unwrap_used)]

mod flows;
mod helpers;
