//! The OpenAPI document of the command side (served by `startup::ops` with
//! liveness, readiness and metrics, which `http_kit::service` provides).

use http_kit::openapi::BearerAuth;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "chat command-api", description = "Commands of the event-sourced chat platform. Errors: {\"error\":{\"code\",\"message\"}}."),
    paths(
        super::auth::register, super::auth::login, super::auth::refresh, super::auth::logout,
        super::rooms::create_room, super::rooms::update_room, super::rooms::join, super::rooms::leave,
        super::rooms::invite, super::rooms::kick, super::rooms::change_role, super::rooms::open_direct,
        super::messages::send_message, super::messages::edit_message, super::messages::delete_message,
        super::messages::add_reaction, super::messages::remove_reaction, super::messages::mark_read,
        super::ephemeral::typing, super::ephemeral::ephemeral,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;
