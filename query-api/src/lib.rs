//! The query side of the chat platform: REST reads over the read models built by
//! the projector, and the WebSocket live feed fanned out from the event stream.

pub mod configuration;
pub mod epoch;
pub mod metrics;
pub mod routes;
pub mod startup;
pub mod state;
pub mod ws;

/// The projection whose checkpoint `min_position` waits on (written by the projector).
pub const READ_MODELS: &str = "read_models";
