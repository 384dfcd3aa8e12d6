//! The WebSocket live feed against the real command-api (with its relay) and
//! query-api nodes: delivery, kicks, non-members, resume, typing and ephemeral
//! messages, presence (including a `kill -9`ed node) and slow consumers.
#![allow(clippy::unwrap_used)]

mod delivery;
mod ephemeral;
mod helpers;
mod presence;
mod resume;
mod slow;
mod upcasting;
