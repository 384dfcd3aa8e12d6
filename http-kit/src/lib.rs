//! Shared by every HTTP service of the platform: access-token and password auth,
//! the one JSON error shape, extractors whose rejections use it, logging, settings
//! (with secrets that never show), and the service scaffold: health, readiness,
//! metrics and OpenAPI routes ([`service`]), binding and serving ([`serve`]).

pub mod admin;
pub mod auth;
pub mod correlation;
pub mod error;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod nats;
pub mod openapi;
pub mod parse_errors;
pub mod rate_limit;
pub mod revocation;
pub mod runtime;
pub mod secret;
pub mod serve;
pub mod service;
pub mod settings;
pub mod telemetry;
pub mod tls;
pub mod web;

pub use serve::shutdown_signal;
