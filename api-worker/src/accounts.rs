//! Accounts: sign-up, login and the caller's profile (`/api/v1/auth/*`,
//! `/api/v1/me`).
//!
//! Passwords are hashed with argon2id on the blocking pool (bounded, since
//! each hash holds its memory cost). Sign-up writes the profile
//! (`user#<uuid>`) and the e-mail claim (`email#<address>`) in one
//! transaction guarded by `attribute_not_exists`, so an address belongs to
//! one account only. Logins are limited per client address (every attempt)
//! and per account (failed attempts).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem};
use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, Semaphore};

use crate::clock::{now_epoch, rfc3339};
use crate::config::AuthSettings;
use crate::error::{AppError, JsonBody, Result};
use crate::ratelimit::{KeyedLimiter, Rate};
use crate::state::AppState;
use crate::tokens::{TokenError, TokenSigner};

pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 128;
pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_DISPLAY_NAME_CHARS: usize = 50;

const ID: &str = "id";
const USER_ID: &str = "userId";
const EMAIL: &str = "email";
const DISPLAY_NAME: &str = "displayName";
const PASSWORD_HASH: &str = "passwordHash";
const CREATED_AT: &str = "createdAt";
const UPDATED_AT: &str = "updatedAt";

#[derive(Debug)]
pub struct Accounts {
    signer: TokenSigner,
    params: Params,
    /// Each hash holds `argon2_memory_kib` of memory: bound how many run at once.
    hashing: Arc<Semaphore>,
    /// Verified against when an address is unknown, so both paths cost the same.
    dummy_hash: OnceCell<String>,
    by_address: KeyedLimiter,
    by_account: KeyedLimiter,
    address_header: Option<String>,
}

impl Accounts {
    pub fn new(settings: AuthSettings) -> Self {
        let params = Params::new(
            settings.argon2_memory_kib.max(Params::MIN_M_COST),
            settings.argon2_iterations,
            1,
            None,
        )
        .unwrap_or_default();
        let hashing = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2);
        Self {
            signer: TokenSigner::new(
                settings.token_signing_key.expose().as_bytes(),
                settings.token_ttl,
            ),
            params,
            hashing: Arc::new(Semaphore::new(hashing)),
            dummy_hash: OnceCell::new(),
            by_address: KeyedLimiter::new(Rate {
                burst: settings.login_address_burst,
                refill: settings.login_address_refill,
            }),
            by_account: KeyedLimiter::new(Rate {
                burst: settings.login_account_burst,
                refill: settings.login_account_refill,
            }),
            address_header: settings
                .client_address_header
                .map(|h| h.to_ascii_lowercase()),
        }
    }

    pub fn signer(&self) -> &TokenSigner {
        &self.signer
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    async fn hash(&self, password: String) -> Result<String> {
        let _permit = self.hashing.acquire().await.map_err(AppError::internal)?;
        let argon2 = self.argon2();
        tokio::task::spawn_blocking(move || {
            argon2
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
        })
        .await
        .map_err(AppError::internal)?
        .map_err(|e| AppError::internal(anyhow::anyhow!("hashing a password: {e}")))
    }

    async fn verify(&self, password: String, hash: String) -> Result<bool> {
        let _permit = self.hashing.acquire().await.map_err(AppError::internal)?;
        let argon2 = self.argon2();
        tokio::task::spawn_blocking(move || {
            argon2
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
        .map_err(AppError::internal)
    }

    async fn dummy_hash(&self) -> Result<String> {
        self.dummy_hash
            .get_or_try_init(|| self.hash("not a password of anyone".into()))
            .await
            .cloned()
    }
}

fn accounts(state: &AppState) -> Result<&Accounts> {
    state.accounts.as_ref().ok_or_else(|| {
        AppError::internal(anyhow::anyhow!(
            "accounts are not configured in this process"
        ))
    })
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/signup", post(signup))
        .route("/auth/login", post(login))
        .route("/me", get(read_profile).patch(update_profile))
}

/// The authenticated caller, from `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: String,
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
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
        let claims = accounts(state)?
            .signer
            .verify(token, now_epoch())
            .map_err(|e| match e {
                TokenError::Expired => AppError::Unauthorized(e.to_string()),
                TokenError::Malformed | TokenError::BadSignature => {
                    AppError::Unauthorized(e.to_string())
                }
            })?;
        Ok(Self { id: claims.sub })
    }
}

/// Where a request came from: the peer address, or the last entry of the
/// configured proxy header (the one our trusted proxy appended).
fn client_address(parts: &Parts, header: Option<&str>) -> String {
    let from_header = header
        .and_then(|name| parts.headers.get_all(name).iter().next_back())
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    from_header
        .or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

#[derive(Debug)]
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let header = state
            .accounts
            .as_ref()
            .and_then(|a| a.address_header.as_deref());
        Ok(Self(client_address(parts, header)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SignupRequest {
    email: String,
    password: String,
    display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProfileUpdate {
    display_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenResponse {
    token: String,
    token_type: &'static str,
    expires_in: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SignupResponse {
    user: Profile,
    #[serde(flatten)]
    token: TokenResponse,
}

/// Lower-cases and checks an address: one `@`, a dotted domain, no spaces.
pub fn normalise_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let invalid = |why: &str| AppError::BadRequest(format!("email is not a valid address: {why}"));
    if email.is_empty() {
        return Err(invalid("it is empty"));
    }
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(invalid("it is longer than 254 characters"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(invalid("it has no @"));
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return Err(invalid(
            "the part before @ must be 1 to 64 characters, with one @",
        ));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains spaces or control characters"));
    }
    let labels_ok = domain.split('.').all(|l| {
        !l.is_empty() && !l.starts_with('-') && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    });
    if !domain.contains('.') || !labels_ok {
        return Err(invalid("the domain must look like example.com"));
    }
    Ok(email)
}

pub fn check_password(password: &str, email: &str) -> Result<()> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(AppError::BadRequest(format!(
            "password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters, got {chars}"
        )));
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 4 {
        return Err(AppError::BadRequest(
            "password must use at least 4 different characters".into(),
        ));
    }
    if password.trim().eq_ignore_ascii_case(email) {
        return Err(AppError::BadRequest(
            "password must not be the email address".into(),
        ));
    }
    Ok(())
}

fn check_display_name(name: &str) -> Result<String> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_DISPLAY_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(AppError::BadRequest(format!(
            "displayName must be 1 to {MAX_DISPLAY_NAME_CHARS} printable characters"
        )));
    }
    Ok(name.to_owned())
}

fn new_user_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| AppError::internal(anyhow::anyhow!("no randomness")))?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string())
}

fn user_key(id: &str) -> AttributeValue {
    AttributeValue::S(format!("user#{id}"))
}

fn email_key(email: &str) -> AttributeValue {
    AttributeValue::S(format!("email#{email}"))
}

fn issue(accounts: &Accounts, user_id: &str) -> TokenResponse {
    TokenResponse {
        token: accounts.signer.issue(user_id, now_epoch()),
        token_type: "Bearer",
        expires_in: accounts.signer.ttl().as_secs(),
    }
}

async fn signup(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<SignupRequest>,
) -> Result<impl IntoResponse> {
    let accounts = accounts(&state)?;
    let email = normalise_email(&request.email)?;
    check_password(&request.password, &email)?;
    let display_name = match request.display_name.as_deref() {
        Some(name) => check_display_name(name)?,
        None => email
            .split('@')
            .next()
            .unwrap_or_default()
            .chars()
            .take(MAX_DISPLAY_NAME_CHARS)
            .collect(),
    };
    let password_hash = accounts.hash(request.password).await?;
    let id = new_user_id()?;
    let now = now_epoch();
    let table = &state.settings.users_table;
    let profile = Put::builder()
        .table_name(table)
        .item(ID, user_key(&id))
        .item(EMAIL, AttributeValue::S(email.clone()))
        .item(DISPLAY_NAME, AttributeValue::S(display_name.clone()))
        .item(PASSWORD_HASH, AttributeValue::S(password_hash))
        .item(CREATED_AT, AttributeValue::N(now.to_string()))
        .item(UPDATED_AT, AttributeValue::N(now.to_string()))
        .condition_expression("attribute_not_exists(id)")
        .build()
        .map_err(AppError::internal)?;
    let claim = Put::builder()
        .table_name(table)
        .item(ID, email_key(&email))
        .item(USER_ID, AttributeValue::S(id.clone()))
        .item(CREATED_AT, AttributeValue::N(now.to_string()))
        .condition_expression("attribute_not_exists(id)")
        .build()
        .map_err(AppError::internal)?;
    let result = state
        .dynamo
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().put(profile).build())
        .transact_items(TransactWriteItem::builder().put(claim).build())
        .send()
        .await;
    if let Err(error) = result {
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            error.as_service_error()
        {
            let taken = cancelled
                .cancellation_reasons()
                .iter()
                .any(|r| r.code() == Some("ConditionalCheckFailed"));
            if taken {
                return Err(AppError::Conflict(
                    "an account with this email already exists; log in instead".into(),
                ));
            }
        }
        return Err(AppError::internal(
            anyhow::Error::new(error).context("creating an account"),
        ));
    }
    tracing::info!(user_id = %id, "account created");
    let user = Profile {
        id: id.clone(),
        email,
        display_name,
        created_at: rfc3339(now),
        updated_at: rfc3339(now),
    };
    let token = issue(accounts, &id);
    Ok((
        StatusCode::CREATED,
        axum::Json(SignupResponse { user, token }),
    ))
}

async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<impl IntoResponse> {
    let accounts = accounts(&state)?;
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
        accounts.dummy_hash().await?;
        return Err(failed());
    };
    let account_key = format!("account:{email}");
    if let Err(retry_after) = accounts.by_account.check(&account_key, now) {
        return Err(AppError::TooManyRequests {
            detail: "too many failed logins for this account; wait and try again".into(),
            retry_after,
        });
    }
    let user = find_by_email(&state, &email).await?;
    let (user_id, hash) = match user {
        Some((id, item)) => (Some(id), string(&item, PASSWORD_HASH).unwrap_or_default()),
        None => (None, accounts.dummy_hash().await?),
    };
    let verified = accounts.verify(request.password, hash).await?;
    match user_id {
        Some(user_id) if verified => {
            accounts.by_account.reset(&account_key);
            tracing::info!(%user_id, "login");
            Ok(axum::Json(issue(accounts, &user_id)))
        }
        _ => {
            accounts.by_account.spend(&account_key, now);
            Err(failed())
        }
    }
}

type Item = HashMap<String, AttributeValue>;

fn string(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number(item: &Item, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or_default()
}

async fn get_item(state: &AppState, key: AttributeValue) -> Result<Option<Item>> {
    let output = state
        .dynamo
        .get_item()
        .table_name(&state.settings.users_table)
        .key(ID, key)
        .consistent_read(true)
        .send()
        .await
        .context("reading the users table")?;
    Ok(output.item)
}

async fn find_by_email(state: &AppState, email: &str) -> Result<Option<(String, Item)>> {
    let Some(claim) = get_item(state, email_key(email)).await? else {
        return Ok(None);
    };
    let Some(user_id) = string(&claim, USER_ID) else {
        return Ok(None);
    };
    Ok(get_item(state, user_key(&user_id))
        .await?
        .map(|item| (user_id, item)))
}

fn profile(id: &str, item: &Item) -> Profile {
    Profile {
        id: id.to_owned(),
        email: string(item, EMAIL).unwrap_or_default(),
        display_name: string(item, DISPLAY_NAME).unwrap_or_default(),
        created_at: rfc3339(number(item, CREATED_AT)),
        updated_at: rfc3339(number(item, UPDATED_AT)),
    }
}

fn gone() -> AppError {
    AppError::NotFound("this account no longer exists".into())
}

async fn read_profile(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<axum::Json<Profile>> {
    let item = get_item(&state, user_key(&user.id))
        .await?
        .ok_or_else(gone)?;
    Ok(axum::Json(profile(&user.id, &item)))
}

async fn update_profile(
    State(state): State<AppState>,
    user: CurrentUser,
    JsonBody(update): JsonBody<ProfileUpdate>,
) -> Result<axum::Json<Profile>> {
    let Some(display_name) = update.display_name.as_deref() else {
        return Err(AppError::BadRequest(
            "nothing to update: send displayName".into(),
        ));
    };
    let display_name = check_display_name(display_name)?;
    let result = state
        .dynamo
        .update_item()
        .table_name(&state.settings.users_table)
        .key(ID, user_key(&user.id))
        .update_expression("SET #name = :name, #updated = :now")
        .condition_expression("attribute_exists(id)")
        .expression_attribute_names("#name", DISPLAY_NAME)
        .expression_attribute_names("#updated", UPDATED_AT)
        .expression_attribute_values(":name", AttributeValue::S(display_name))
        .expression_attribute_values(":now", AttributeValue::N(now_epoch().to_string()))
        .return_values(ReturnValue::AllNew)
        .send()
        .await;
    match result {
        Ok(output) => Ok(axum::Json(profile(
            &user.id,
            &output.attributes.unwrap_or_default(),
        ))),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Err(gone())
        }
        Err(error) => Err(AppError::internal(
            anyhow::Error::new(error).context("updating a profile"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalise_email("  Ada@Example.COM ").ok().as_deref(),
            Some("ada@example.com")
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@@example.com",
            "ada@-x.com",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad}");
        }
        assert!(normalise_email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn passwords_follow_the_rules() {
        assert!(check_password("correct horse battery", "ada@example.com").is_ok());
        assert!(check_password("short", "ada@example.com").is_err());
        assert!(check_password(&"ab".repeat(65), "ada@example.com").is_err());
        assert!(check_password("aaaaaaaaaaaa", "ada@example.com").is_err());
        assert!(check_password("ada@example.com", "ada@example.com").is_err());
    }

    #[test]
    fn user_ids_are_random_uuids() {
        let a = new_user_id().expect("id");
        let b = new_user_id().expect("id");
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4", "version 4");
    }

    #[test]
    fn the_proxy_header_wins_when_configured() {
        let request = axum::http::Request::builder()
            .header("x-forwarded-for", "10.0.0.1, 203.0.113.7")
            .body(())
            .expect("request");
        let (parts, ()) = request.into_parts();
        assert_eq!(
            client_address(&parts, Some("x-forwarded-for")),
            "203.0.113.7"
        );
        assert_eq!(client_address(&parts, None), "unknown");
    }
}
