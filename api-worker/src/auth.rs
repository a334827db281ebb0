//! Who is calling: the bearer-token extractor [`CurrentUser`], usable in any
//! router whose state provides an [`Authenticator`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::clock::now_epoch;
use crate::error::{AppError, Result};
use crate::tokens::TokenSigner;

/// Issues and checks login tokens; cheap to clone.
#[derive(Debug, Clone)]
pub struct Authenticator(Arc<TokenSigner>);

impl Authenticator {
    pub fn new(signer: TokenSigner) -> Self {
        Self(Arc::new(signer))
    }

    pub fn issue(&self, user_id: &str) -> String {
        self.0.issue(user_id, now_epoch())
    }

    pub fn ttl(&self) -> Duration {
        self.0.ttl()
    }

    pub fn signer(&self) -> &TokenSigner {
        &self.0
    }

    /// The user id a bearer token was issued to, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<String> {
        self.0
            .verify(token, now_epoch())
            .map(|claims| claims.sub)
            .map_err(|e| AppError::Unauthorized(e.to_string()))
    }
}

/// The authenticated caller, from `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: String,
}

impl<S> FromRequestParts<S> for CurrentUser
where
    S: Send + Sync,
    Authenticator: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            AppError::Unauthorized(
                "log in first: send `Authorization: Bearer <token>` from /api/v1/auth/login".into(),
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                AppError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?;
        let id = Authenticator::from_ref(state).verify(token)?;
        Ok(Self { id })
    }
}
