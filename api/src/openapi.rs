//! The OpenAPI document, generated from the handlers' annotations.
//!
//! Each handler lists what it answers itself; [`SharedAnswers`] adds what the layers around every
//! handler answer (a missing token, a body that is not JSON, too large or invalid, a rate limit),
//! so the document is true for every operation without each annotation repeating them.
//! `scripts/schemathesis` holds the server to it.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response, ResponseBuilder};
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
        routes::auth::forgot_password,
        routes::auth::reset_password,
        routes::auth::verify_email,
        routes::auth::resend_verification,
        routes::me::get_me,
        routes::me::patch_me,
        routes::me::set_time_zone,
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
        routes::recordings::storage,
        routes::recordings::admin_list,
        routes::proctoring::read,
        routes::proctoring::set_settings,
        routes::proctoring::consent,
        routes::proctoring::review,
        routes::proctoring::snapshot,
        routes::workspace::read,
        routes::workspace::history,
        routes::workspace::run,
        routes::workspace::runs,
        routes::questions::list,
        routes::questions::create,
        routes::questions::read,
        routes::questions::update,
        routes::questions::for_interview,
        routes::questions::attach,
        routes::questions::interview_question,
        routes::questions::reveal,
        routes::questions::run_tests,
        routes::scorecards::list_templates,
        routes::scorecards::create_template,
        routes::scorecards::update_template,
        routes::scorecards::read_notes,
        routes::scorecards::save_notes,
        routes::scorecards::list,
        routes::scorecards::submit,
        routes::admin::list_users,
        routes::admin::set_role,
        routes::admin::audit_log,
        routes::admin::outbox_view,
        routes::admin::list_webhooks,
        routes::admin::create_webhook,
        routes::admin::delete_webhook,
        routes::admin::rotate_webhook_secret,
        routes::admin::set_active,
        routes::admin::nodes,
        routes::live::list,
        routes::live::close,
        routes::candidates::export,
        routes::candidates::erase,
        routes::ops::healthz,
        routes::ops::readyz,
        routes::ops::metrics,
        routes::ops::openapi,
    ),
    modifiers(&BearerAuth, &SharedAnswers),
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

/// Paths behind a per-client rate limit (they take secrets or passwords).
const RATE_LIMITED: [&str; 10] = [
    "/api/auth/register",
    "/api/auth/login",
    "/api/me",
    "/api/invites/inspect",
    "/api/invites/redeem",
    "/api/interviews/{id}/phone-pairings",
    "/api/interviews/{id}/phone-pairings/{candidate_id}",
    "/api/phone/inspect",
    "/api/phone/redeem",
    "/api/phone/join",
];

struct SharedAnswers;

impl Modify for SharedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                let needs_token = operation
                    .security
                    .as_ref()
                    .is_some_and(|requirements| !requirements.is_empty());
                if needs_token {
                    add(operation, "401", "No valid bearer token");
                }
                if operation.request_body.is_some() {
                    add(operation, "400", "The body is not well-formed JSON");
                    add(
                        operation,
                        "413",
                        "The body is larger than the server accepts",
                    );
                    add(operation, "415", "The body is not sent as application/json");
                    add(
                        operation,
                        "422",
                        "The body does not satisfy the schema's rules",
                    );
                }
                if path.contains('{') {
                    add(
                        operation,
                        "404",
                        "No such resource, or none the caller may see",
                    );
                }
                if RATE_LIMITED.contains(&path.as_str()) {
                    add(operation, "429", "Too many attempts; see Retry-After");
                }
            }
        }
    }
}

/// Adds an error answer with the shared error body, unless the operation lists that status.
fn add(operation: &mut Operation, status: &str, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| RefOr::T(error_answer(description)));
}

fn error_answer(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}
