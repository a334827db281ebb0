//! The TMDB client: per-attempt time-outs, an overall deadline, retries with
//! full-jitter exponential backoff on 429/5xx/time-outs that honour
//! `Retry-After`, and a client-side rate limit under TMDB's.

use std::time::{Duration, SystemTime};

use reqwest::{StatusCode, Url, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use crate::config::TmdbSettings;
use crate::metrics::Metrics;
use crate::ratelimit::{Pacer, Rate};

/// Why a TMDB call gave no usable answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TmdbError {
    #[error("TMDB has no such resource")]
    NotFound,
    #[error("TMDB rejected the configured API key (HTTP {0}); check the TMDB Secret")]
    Unauthorized(u16),
    #[error("TMDB is rate limiting us")]
    RateLimited { retry_after: Option<Duration> },
    #[error("TMDB is unavailable: {0}")]
    Unavailable(String),
    #[error("TMDB refused the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("TMDB sent a response we cannot read: {0}")]
    Malformed(String),
    #[error("TMDB sent a response larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
}

impl TmdbError {
    /// The outcome label of `movieapp_tmdb_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Unauthorized(_) => "unauthorized",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Rejected { .. } => "rejected",
            Self::Malformed(_) => "malformed",
            Self::TooLarge { .. } => "too_large",
        }
    }

    /// When to suggest a client come back.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// Which TMDB operation, a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Popular,
    Search,
    Details,
}

impl Endpoint {
    pub fn label(self) -> &'static str {
        match self {
            Self::Popular => "popular",
            Self::Search => "search",
            Self::Details => "details",
        }
    }
}

#[derive(Debug, Clone)]
enum Auth {
    /// A v3 key, sent as the `api_key` query parameter.
    ApiKey(String),
    /// A v4 read access token, sent as `Authorization: Bearer`.
    Bearer(String),
}

impl Auth {
    fn from_key(key: &str) -> Self {
        // v4 tokens are JWTs; v3 keys are 32 hex characters.
        if key.starts_with("eyJ") && key.contains('.') {
            Self::Bearer(key.to_owned())
        } else {
            Self::ApiKey(key.to_owned())
        }
    }
}

/// One page of a TMDB list (`/3/movie/popular`, `/3/search/movie`).
#[derive(Debug, Clone, Deserialize)]
pub struct TmdbPage {
    #[serde(default)]
    pub page: u32,
    #[serde(default)]
    pub results: Vec<TmdbMovie>,
    #[serde(default)]
    pub total_pages: u32,
    #[serde(default)]
    pub total_results: u64,
}

/// A movie as TMDB lists or details it; fields TMDB may omit are optional.
#[derive(Debug, Clone, Deserialize)]
pub struct TmdbMovie {
    pub id: u64,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub original_title: Option<String>,
    #[serde(default)]
    pub overview: Option<String>,
    #[serde(default)]
    pub release_date: Option<String>,
    #[serde(default)]
    pub poster_path: Option<String>,
    #[serde(default)]
    pub vote_average: Option<f64>,
    #[serde(default)]
    pub runtime: Option<u32>,
    #[serde(default)]
    pub genres: Vec<TmdbGenre>,
    #[serde(default)]
    pub tagline: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TmdbGenre {
    pub name: String,
}

#[derive(Debug)]
pub struct TmdbClient {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
    pacer: Pacer,
    attempt_timeout: Duration,
    max_attempts: u32,
    max_response_bytes: u64,
    metrics: Metrics,
}

/// How much of an error answer is read for TMDB's `status_message`.
const ERROR_BODY_LIMIT: u64 = 16 * 1024;

const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

impl TmdbClient {
    pub fn new(settings: &TmdbSettings, metrics: Metrics) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.tmdb_attempt_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("movieapp-api-worker/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base: settings.tmdb_base_url.clone(),
            auth: Auth::from_key(settings.tmdb_api_key.expose()),
            pacer: Pacer::new(Rate::per_second(settings.tmdb_requests_per_second)),
            attempt_timeout: settings.tmdb_attempt_timeout,
            max_attempts: settings.tmdb_max_attempts,
            max_response_bytes: settings.tmdb_max_response_bytes,
            metrics,
        })
    }

    pub async fn popular(&self, page: u32, deadline: Instant) -> Result<TmdbPage, TmdbError> {
        let query = [("page", page.to_string())];
        self.get(Endpoint::Popular, "3/movie/popular", &query, deadline)
            .await
    }

    pub async fn search(
        &self,
        text: &str,
        page: u32,
        deadline: Instant,
    ) -> Result<TmdbPage, TmdbError> {
        let query = [
            ("query", text.to_owned()),
            ("page", page.to_string()),
            ("include_adult", "false".into()),
        ];
        self.get(Endpoint::Search, "3/search/movie", &query, deadline)
            .await
    }

    pub async fn movie(&self, id: u64, deadline: Instant) -> Result<TmdbMovie, TmdbError> {
        self.get(Endpoint::Details, &format!("3/movie/{id}"), &[], deadline)
            .await
    }

    /// `path` below the base URL, which may itself carry a path.
    fn url(&self, path: &str) -> Result<Url, TmdbError> {
        // `join` would drop a base path without a trailing slash.
        let mut base = self.base.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.join(path)
            .map_err(|e| TmdbError::Malformed(format!("bad URL: {e}")))
    }

    async fn get<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        path: &str,
        query: &[(&str, String)],
        deadline: Instant,
    ) -> Result<T, TmdbError> {
        let url = self.url(path)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Err(wait) = self.pacer.acquire(deadline).await {
                let error = TmdbError::RateLimited {
                    retry_after: Some(wait),
                };
                self.metrics.tmdb_request(endpoint.label(), error.outcome());
                return Err(error);
            }
            let result = self.attempt::<T>(&url, query, deadline).await;
            let outcome = match &result {
                Ok(_) => "ok",
                Err(error) => error.outcome(),
            };
            self.metrics.tmdb_request(endpoint.label(), outcome);
            let error = match result {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let retryable = matches!(
                error,
                TmdbError::RateLimited { .. } | TmdbError::Unavailable(_)
            );
            if !retryable || attempt >= self.max_attempts {
                return Err(error);
            }
            let delay = match error.retry_after() {
                Some(retry_after) => {
                    // Everyone waits, not only this call: TMDB asked us to.
                    self.pacer
                        .pause_until(std::time::Instant::now() + retry_after);
                    retry_after
                }
                None => backoff(attempt),
            };
            if Instant::now() + delay >= deadline {
                tracing::debug!(
                    endpoint = endpoint.label(),
                    attempt,
                    ?delay,
                    "no time left to retry TMDB"
                );
                return Err(error);
            }
            tracing::debug!(endpoint = endpoint.label(), attempt, ?delay, %error, "retrying TMDB");
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        url: &Url,
        query: &[(&str, String)],
        deadline: Instant,
    ) -> Result<T, TmdbError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TmdbError::Unavailable("deadline passed".into()));
        }
        let mut request = self
            .http
            .get(url.clone())
            .query(query)
            .timeout(self.attempt_timeout.min(left));
        request = match &self.auth {
            Auth::ApiKey(key) => request.query(&[("api_key", key)]),
            Auth::Bearer(token) => request.bearer_auth(token),
        };
        let response = request
            .send()
            .await
            .map_err(|e| TmdbError::Unavailable(describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            let bytes = read_capped(response, self.max_response_bytes).await?;
            return serde_json::from_slice(&bytes).map_err(|e| TmdbError::Malformed(e.to_string()));
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let message = status_message(response).await;
        Err(match status {
            StatusCode::NOT_FOUND => TmdbError::NotFound,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                TmdbError::Unauthorized(status.as_u16())
            }
            StatusCode::TOO_MANY_REQUESTS => TmdbError::RateLimited { retry_after },
            s if s.is_server_error() => TmdbError::Unavailable(format!("HTTP {}", s.as_u16())),
            s => TmdbError::Rejected {
                status: s.as_u16(),
                message,
            },
        })
    }
}

/// The body of `response`, refused as soon as it is known to exceed `limit`
/// bytes: from `Content-Length` before reading, or while reading a body
/// without one. Memory held never exceeds `limit` plus one chunk.
async fn read_capped(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, TmdbError> {
    let too_large = TmdbError::TooLarge { limit };
    let announced = response.content_length();
    if announced.is_some_and(|length| length > limit) {
        return Err(too_large);
    }
    let capacity = usize::try_from(announced.unwrap_or(0).min(limit)).unwrap_or(0);
    let mut body = Vec::with_capacity(capacity);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| TmdbError::Unavailable(describe(&e)))?
    {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// TMDB's own error text (`status_message`), when it sent one.
async fn status_message(response: reqwest::Response) -> String {
    #[derive(Deserialize)]
    struct Body {
        status_message: Option<String>,
    }
    let text = read_capped(response, ERROR_BODY_LIMIT)
        .await
        .unwrap_or_default();
    serde_json::from_slice::<Body>(&text)
        .ok()
        .and_then(|b| b.status_message)
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "cannot connect".into()
    } else {
        "request failed".into()
    }
}

/// Full jitter: a random delay up to the exponential bound.
fn backoff(attempt: u32) -> Duration {
    let bound = BACKOFF_BASE
        .saturating_mul(1 << attempt.min(10))
        .min(BACKOFF_CAP);
    bound.mul_f64(fastrand::f64())
}

/// `Retry-After` as seconds or an HTTP date; capped at an hour.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or_default(),
    };
    Some(delay.min(Duration::from_secs(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:27 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("999999", now),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn backoff_stays_within_its_bound() {
        for attempt in 1..20 {
            let delay = backoff(attempt);
            assert!(delay <= BACKOFF_CAP, "{delay:?}");
            assert!(delay <= BACKOFF_BASE * (1 << attempt.min(10)));
        }
    }

    #[test]
    fn v4_tokens_go_in_a_bearer_header() {
        assert!(matches!(
            Auth::from_key("eyJhbGciOiJIUzI1NiJ9.e30.sig"),
            Auth::Bearer(_)
        ));
        assert!(matches!(
            Auth::from_key("0123456789abcdef0123456789abcdef"),
            Auth::ApiKey(_)
        ));
    }

    #[test]
    fn lists_and_details_tolerate_missing_fields() {
        let page: TmdbPage =
            serde_json::from_str(r#"{"page":1,"results":[{"id":5}]}"#).expect("parses");
        assert_eq!(page.results[0].id, 5);
        let movie: TmdbMovie = serde_json::from_str(
            r#"{"id":550,"title":"Fight Club","genres":[{"id":18,"name":"Drama"}],"runtime":139,"poster_path":null}"#,
        )
        .expect("parses");
        assert_eq!(movie.genres[0].name, "Drama");
    }
}
