//! Accounts: sign-up, login and the caller's profile (`/api/v1/auth/*`,
//! `/api/v1/me`), served only where [`Accounts`] is configured.
//!
//! - [`validation`]: what addresses, passwords and names must look like;
//! - [`password`]: argon2id hashing on a bounded blocking pool;
//! - [`store`]: the users table;
//! - [`lockout`]: failed logins per account, shared through DynamoDB;
//! - [`handlers`]: the endpoints, with the per-client limits.

pub mod handlers;
pub mod lockout;
pub mod password;
pub mod store;
pub mod validation;

use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};

use crate::auth::Authenticator;
use crate::config::AuthSettings;
use crate::ratelimit::{CLIENT_KEYS, KeyedLimiter, Rate};
use crate::tokens::TokenSigner;
use lockout::Lockouts;
use password::Passwords;
use store::UserStore;

#[derive(Debug)]
pub struct Inner {
    pub auth: Authenticator,
    pub passwords: Passwords,
    pub store: UserStore,
    pub lockouts: Lockouts,
    /// Login attempts per client address.
    pub logins: KeyedLimiter<IpAddr>,
    /// Sign-ups per client address.
    pub signups: KeyedLimiter<IpAddr>,
}

/// The accounts feature's state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Accounts(Arc<Inner>);

impl Deref for Accounts {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl FromRef<Accounts> for Authenticator {
    fn from_ref(accounts: &Accounts) -> Self {
        accounts.auth.clone()
    }
}

impl Accounts {
    /// Checks `settings` (without echoing the signing key) and builds the
    /// feature over the users table `users_table`.
    pub fn new(
        settings: AuthSettings,
        dynamo: aws_sdk_dynamodb::Client,
        users_table: String,
        movies_table: String,
    ) -> anyhow::Result<Self> {
        settings.validate().map_err(anyhow::Error::msg)?;
        Ok(Self(Arc::new(Inner {
            auth: Authenticator::new(TokenSigner::new(
                settings.token_signing_key.expose().as_bytes(),
                settings.token_ttl,
            )),
            passwords: Passwords::new(settings.argon2_memory_kib, settings.argon2_iterations),
            store: UserStore::new(dynamo.clone(), users_table),
            lockouts: Lockouts::new(
                dynamo,
                movies_table,
                Rate {
                    burst: settings.login_account_burst,
                    refill: settings.login_account_refill,
                },
            ),
            logins: KeyedLimiter::new(
                Rate {
                    burst: settings.login_address_burst,
                    refill: settings.login_address_refill,
                },
                CLIENT_KEYS,
            ),
            signups: KeyedLimiter::new(
                Rate {
                    burst: settings.signup_address_burst,
                    refill: settings.signup_address_refill,
                },
                CLIENT_KEYS,
            ),
        })))
    }
}

pub fn router() -> Router<Accounts> {
    Router::new()
        .route("/auth/signup", post(handlers::signup))
        .route("/auth/login", post(handlers::login))
        .route(
            "/me",
            get(handlers::read_profile).patch(handlers::update_profile),
        )
}
