//! The account endpoints: sign-up, login and the caller's profile.

use std::net::IpAddr;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::Accounts;
use super::store::{NewUser, Profile};
use super::validation::{
    check_display_name, check_password, default_display_name, normalise_email,
};
use crate::auth::CurrentUser;
use crate::client::Client;
use crate::clock::now_epoch;
use crate::error::{AppError, JsonBody, Result};
use crate::ratelimit::KeyedLimiter;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignupRequest {
    email: String,
    password: String,
    display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileUpdate {
    display_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// The one answer to every well-formed sign-up, whether it made an account
/// or the address already had one: the answer must not tell which.
const SIGNED_UP: &str = r#"{"status":"accepted","detail":"If this address had no account, it has one now: log in with it."}"#;

fn new_user_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| AppError::internal(anyhow::anyhow!("no randomness")))?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string())
}

fn issue(accounts: &Accounts, user_id: &str) -> TokenResponse {
    TokenResponse {
        token: accounts.auth.issue(user_id),
        token_type: "Bearer",
        expires_in: accounts.auth.ttl().as_secs(),
    }
}

fn gone() -> AppError {
    AppError::NotFound("this account no longer exists".into())
}

fn too_many(detail: &str, retry_after: std::time::Duration) -> AppError {
    AppError::TooManyRequests {
        detail: detail.into(),
        retry_after,
    }
}

/// Counts a request of `client` against `limiter`: a 429 saying `detail`
/// when the address is over its rate.
fn admit(limiter: &KeyedLimiter<IpAddr>, client: &Client, detail: &str) -> Result<()> {
    limiter
        .take(&client.key(), Instant::now())
        .map_err(|wait| too_many(detail, wait))
}

/// Creates an account. A taken address is answered like a free one (after
/// the same argon2 hash and one DynamoDB write that fails its condition),
/// so sign-up does not tell whether an address has an account.
pub async fn signup(
    State(accounts): State<Accounts>,
    client: Client,
    JsonBody(request): JsonBody<SignupRequest>,
) -> Result<impl IntoResponse> {
    admit(
        &accounts.signups,
        &client,
        "too many sign-ups from this address; wait and try again",
    )?;
    let email = normalise_email(&request.email)?;
    check_password(&request.password, &email)?;
    let display_name = match request.display_name.as_deref() {
        Some(name) => check_display_name(name)?,
        None => default_display_name(&email),
    };
    let password_hash = accounts.passwords.hash(request.password).await?;
    let id = new_user_id()?;
    let user = NewUser {
        id: id.clone(),
        email,
        display_name,
        password_hash,
        now: now_epoch(),
    };
    match accounts.store.create(user).await? {
        Some(_) => tracing::info!(user_id = %id, "account created"),
        None => tracing::info!("sign-up for an address that has an account; nothing changed"),
    }
    Ok((
        StatusCode::ACCEPTED,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        SIGNED_UP,
    ))
}

/// Logs in. Every attempt counts against the client address; the account's
/// failure budget (shared by every replica) is spent before the password
/// is checked, and cleared by a success. Known and unknown addresses take
/// the same path: their answers differ by one DynamoDB read at most.
pub async fn login(
    State(accounts): State<Accounts>,
    client: Client,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<impl IntoResponse> {
    admit(
        &accounts.logins,
        &client,
        "too many login attempts from this address; wait and try again",
    )?;
    let failed = || AppError::Unauthorized("email or password is incorrect".into());
    // A malformed address cannot have an account: same answer, no lookup.
    let Ok(email) = normalise_email(&request.email) else {
        accounts.passwords.dummy_hash().await?;
        return Err(failed());
    };
    accounts.lockouts.reserve(&email).await?.map_err(|wait| {
        too_many(
            "too many failed logins for this account; wait and try again",
            wait,
        )
    })?;
    let (user_id, hash) = match accounts.store.credentials(&email).await? {
        Some(found) => (Some(found.user_id), found.password_hash),
        None => (None, accounts.passwords.dummy_hash().await?),
    };
    let verified = accounts.passwords.verify(request.password, hash).await?;
    match user_id {
        Some(user_id) if verified => {
            accounts.lockouts.clear(&email).await?;
            tracing::info!(%user_id, "login");
            Ok(axum::Json(issue(&accounts, &user_id)))
        }
        _ => Err(failed()),
    }
}

pub async fn read_profile(
    State(accounts): State<Accounts>,
    user: CurrentUser,
) -> Result<axum::Json<Profile>> {
    let profile = accounts.store.profile(&user.id).await?.ok_or_else(gone)?;
    Ok(axum::Json(profile))
}

pub async fn update_profile(
    State(accounts): State<Accounts>,
    user: CurrentUser,
    JsonBody(update): JsonBody<ProfileUpdate>,
) -> Result<axum::Json<Profile>> {
    let Some(display_name) = update.display_name.as_deref() else {
        return Err(AppError::BadRequest(
            "nothing to update: send displayName".into(),
        ));
    };
    let display_name = check_display_name(display_name)?;
    let profile = accounts
        .store
        .rename(&user.id, display_name, now_epoch())
        .await?
        .ok_or_else(gone)?;
    Ok(axum::Json(profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_random_uuids() {
        let a = new_user_id().expect("id");
        let b = new_user_id().expect("id");
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4", "version 4");
    }
}
