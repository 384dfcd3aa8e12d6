//! API tests: the real command-api over HTTP, against real PostgreSQL and NATS.
#![allow(clippy::unwrap_used)]

mod admin;
mod authz;
mod avatars;
mod bans;
mod concurrency;
mod counted;
mod errors;
mod flows;
mod helpers;
mod idempotency;
mod jwt;
mod long_rooms;
mod oidc;
mod ops;
mod rate_limits;
mod replicas;
mod rounds;
mod sessions;
mod shutdown;
