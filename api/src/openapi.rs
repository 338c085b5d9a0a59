//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

/// Sightline's HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Sightline API", description = "Accounts, interviews, invites, room join tokens, phone pairing and recordings."),
    paths(
        routes::auth::register,
        routes::auth::login,
        routes::auth::refresh,
        routes::auth::logout,
        routes::me::get_me,
        routes::me::patch_me,
        routes::interviews::create,
        routes::interviews::my,
        routes::interviews::read,
        routes::interviews::update,
        routes::interviews::cancel,
        routes::interviews::join,
        routes::interviews::reissue_invite,
        routes::invites::inspect,
        routes::invites::redeem,
        routes::phone::create,
        routes::phone::remove,
        routes::phone::inspect,
        routes::phone::redeem,
        routes::phone::join,
        routes::recordings::start,
        routes::recordings::stop,
        routes::recordings::consent,
        routes::recordings::settings,
        routes::recordings::set_settings,
        routes::recordings::list,
        routes::recordings::read,
        routes::recordings::media,
        routes::recordings::remove,
        routes::admin::list_users,
        routes::admin::set_role,
        routes::admin::audit_log,
        routes::ops::healthz,
        routes::ops::readyz,
        routes::ops::metrics,
        routes::ops::openapi,
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
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
