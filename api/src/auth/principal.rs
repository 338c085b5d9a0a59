//! Extractors that authenticate a request from its `Authorization: Bearer` header.
//!
//! Handlers state what they need in their signature: [`Principal`] (any signed-in caller,
//! including invite guests), [`AuthUser`] (an account), or [`MaybePrincipal`] (optional). There
//! is no middleware to forget.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

pub use super::tokens::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::interviews;
use crate::store::users::{self, AccountRole};

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthenticated)?;
        let principal = state.tokens.verify_access(token)?;
        current(state, principal).await
    }
}

/// The caller an access token names, for a socket that receives its token in a message
/// rather than a header; the same checks as the [`Principal`] extractor.
pub async fn from_token(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let principal = state.tokens.verify_access(token)?;
    current(state, principal).await
}

/// Refuses a token whose session ended while it lives: a guest's whose invite was reissued; an
/// account's that was deactivated, or whose sessions a password reset ended.
pub(crate) async fn current(state: &AppState, principal: Principal) -> Result<Principal, ApiError> {
    match &principal {
        Principal::Guest {
            participant_id,
            epoch,
            ..
        } => {
            let stored = interviews::participant(state.db.pool(), participant_id)
                .await?
                .map(|p| p.session_epoch);
            if stored != Some(*epoch) {
                return Err(ApiError::Unauthenticated);
            }
        }
        Principal::User { id, epoch, .. } => {
            match users::session_state(state.db.pool(), id).await? {
                Some((None, stored)) if stored == *epoch => {}
                _ => return Err(ApiError::Unauthenticated),
            }
        }
    }
    Ok(principal)
}

/// An authenticated caller, if the request has a valid token.
#[derive(Debug, Clone)]
pub struct MaybePrincipal(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybePrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(parts) {
            None => Ok(MaybePrincipal(None)),
            Some(token) => {
                let principal = state.tokens.verify_access(token)?;
                Ok(MaybePrincipal(Some(current(state, principal).await?)))
            }
        }
    }
}

/// A signed-in account (not an invite guest).
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// User id.
    pub id: String,
    /// Platform role, as stored now.
    pub role: AccountRole,
}

impl AuthUser {
    /// Refuses unless the account is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == AccountRole::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("only admins may do this"))
        }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Principal::from_request_parts(parts, state).await? {
            // The role is read afresh: a demoted admin must lose admin rights at once, not when
            // their access token expires. One indexed lookup per account request.
            Principal::User { id, .. } => {
                let user = users::by_id(state.db.pool(), &id)
                    .await?
                    .ok_or(ApiError::Unauthenticated)?;
                Ok(AuthUser {
                    role: user.role()?,
                    id,
                })
            }
            Principal::Guest { .. } => Err(ApiError::Forbidden(
                "this needs an account; invite links only open their interview",
            )),
        }
    }
}
