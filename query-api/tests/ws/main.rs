//! The WebSocket live feed against the real command-api (with its relay) and
//! query-api nodes: delivery, kicks, non-members, resume, typing and ephemeral
//! messages, presence (including a `kill -9`ed node), slow consumers and epoch switches.
#![allow(clippy::unwrap_used)]

mod avatars;
mod bans;
mod deactivation;
mod delivery;
mod ephemeral;
mod epoch;
mod erasure;
mod helpers;
mod notifications;
mod presence;
mod rate_limit;
mod resume;
mod retention;
mod shutdown;
mod slow;
mod upcasting;
