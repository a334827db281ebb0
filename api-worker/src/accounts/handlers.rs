//! The account endpoints: sign-up, login and the caller's profile.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::Accounts;
use super::store::{NewUser, Profile};
use super::validation::{
    check_display_name, check_password, default_display_name, normalise_email,
};
use crate::auth::CurrentUser;
use crate::client::ClientAddress;
use crate::clock::now_epoch;
use crate::error::{AppError, JsonBody, Result};

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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignupResponse {
    user: Profile,
    #[serde(flatten)]
    token: TokenResponse,
}

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

pub async fn signup(
    State(accounts): State<Accounts>,
    JsonBody(request): JsonBody<SignupRequest>,
) -> Result<impl IntoResponse> {
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
    let Some(user) = accounts.store.create(user).await? else {
        return Err(AppError::Conflict(
            "an account with this email already exists; log in instead".into(),
        ));
    };
    tracing::info!(user_id = %id, "account created");
    let token = issue(&accounts, &id);
    Ok((
        StatusCode::CREATED,
        axum::Json(SignupResponse { user, token }),
    ))
}

pub async fn login(
    State(accounts): State<Accounts>,
    ClientAddress(address): ClientAddress,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<impl IntoResponse> {
    let now = Instant::now();
    let address_key = format!("address:{address}");
    if let Err(retry_after) = accounts.by_address.check(&address_key, now) {
        return Err(AppError::TooManyRequests {
            detail: "too many login attempts from this address; wait and try again".into(),
            retry_after,
        });
    }
    accounts.by_address.spend(&address_key, now);
    let failed = || AppError::Unauthorized("email or password is incorrect".into());
    // A malformed address cannot have an account: same answer, no lookup.
    let Ok(email) = normalise_email(&request.email) else {
        accounts.passwords.dummy_hash().await?;
        return Err(failed());
    };
    let account_key = format!("account:{email}");
    if let Err(retry_after) = accounts.by_account.check(&account_key, now) {
        return Err(AppError::TooManyRequests {
            detail: "too many failed logins for this account; wait and try again".into(),
            retry_after,
        });
    }
    let (user_id, hash) = match accounts.store.credentials(&email).await? {
        Some(found) => (Some(found.user_id), found.password_hash),
        None => (None, accounts.passwords.dummy_hash().await?),
    };
    let verified = accounts.passwords.verify(request.password, hash).await?;
    match user_id {
        Some(user_id) if verified => {
            accounts.by_account.reset(&account_key);
            tracing::info!(%user_id, "login");
            Ok(axum::Json(issue(&accounts, &user_id)))
        }
        _ => {
            accounts.by_account.spend(&account_key, now);
            Err(failed())
        }
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
