//! Liveness, readiness, metrics and the OpenAPI document.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;
use utoipa::OpenApi;

/// The process is up.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// The process can serve commands: PostgreSQL answers. NATS is reported but does
/// not gate readiness: commands are durable in the log and relayed when it returns.
pub async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let db = sqlx::query("SELECT 1").execute(&st.pool).await.is_ok();
    let nats = st
        .nats
        .as_ref()
        .map(|c| format!("{:?}", c.connection_state()).to_lowercase());
    let status = if db {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ready": db, "postgres": db, "nats": nats })),
    )
}

pub async fn metrics(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let body = st.render_metrics().map_err(|e| ApiError::internal(&e))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "chat command-api", description = "Commands of the event-sourced chat platform. Errors: {\"error\":{\"code\",\"message\"}}."),
    paths(
        super::auth::register, super::auth::login, super::auth::refresh,
        super::rooms::create_room, super::rooms::update_room, super::rooms::join, super::rooms::leave,
        super::rooms::invite, super::rooms::kick, super::rooms::change_role, super::rooms::open_direct,
        super::messages::send_message, super::messages::edit_message, super::messages::delete_message,
        super::messages::add_reaction, super::messages::remove_reaction, super::messages::mark_read,
        super::ephemeral::typing, super::ephemeral::ephemeral,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

pub async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}
