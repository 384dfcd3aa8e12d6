//! Builds the read models from the event stream. (Being filled in.)

/// The projection of all read models (its checkpoint name).
pub const READ_MODELS: &str = "read_models";
