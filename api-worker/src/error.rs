//! The one error type of the HTTP API and its `application/problem+json`
//! rendering (RFC 9457), plus extractors whose rejections render the same way.
//!
//! Client errors explain themselves in `detail`; an internal error answers a
//! bare 500 and hands its cause to the request middleware, which logs it
//! next to the request id.

use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

pub type Result<T, E = AppError> = std::result::Result<T, E>;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after: Duration,
    },
    /// A client error whose status comes from a framework rejection
    /// (413 body too large, 415 wrong content type, 422 invalid JSON shape).
    #[error("{detail}")]
    Rejected { status: StatusCode, detail: String },
    /// The upstream (TMDB) answered something we cannot use.
    #[error("{0}")]
    BadGateway(String),
    #[error("{detail}")]
    Unavailable {
        detail: String,
        retry_after: Option<Duration>,
    },
    #[error("the request took longer than {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The cause of a 500, attached to the response for the middleware to log.
#[derive(Debug, Clone)]
pub struct InternalErrorCause(pub String);

impl AppError {
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Self::Internal(error.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Rejected { status, .. } => *status,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Renders a problem document with the status's reason phrase as title.
pub fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

fn seconds_header(duration: Duration) -> HeaderValue {
    // Retry-After is whole seconds; round up so a client never retries early.
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(cause) = &self {
            let mut response = problem(
                status,
                "internal error; the request id identifies it in the logs",
            );
            response
                .extensions_mut()
                .insert(InternalErrorCause(format!("{cause:#}")));
            return response;
        }
        let mut response = problem(status, &self.to_string());
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::TooManyRequests { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, seconds_header(*retry_after));
            }
            Self::Unavailable {
                retry_after: Some(retry_after),
                ..
            } => {
                headers.insert(header::RETRY_AFTER, seconds_header(*retry_after));
            }
            _ => {}
        }
        response
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let detail = match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                "the body must be JSON with `Content-Type: application/json`".to_owned()
            }
            JsonRejection::BytesRejection(_) if status == StatusCode::PAYLOAD_TOO_LARGE => {
                "the request body is too large".to_owned()
            }
            _ => rejection.body_text(),
        };
        Self::Rejected { status, detail }
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        Self::Rejected {
            status: StatusCode::BAD_REQUEST,
            detail: rejection.body_text(),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        Self::Rejected {
            status: StatusCode::BAD_REQUEST,
            detail: rejection.body_text(),
        }
    }
}

/// `axum::Json` whose rejection is a problem document.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// `axum::extract::Path` whose rejection is a problem document.
#[derive(Debug)]
pub struct PathParam<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParam<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// `axum::extract::Query` whose rejection is a problem document.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_explain_themselves_as_problem_json() {
        let response =
            AppError::BadRequest("page must be between 1 and 500".into()).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn internal_errors_hide_their_cause_from_the_client() {
        let response =
            AppError::internal(anyhow::anyhow!("dynamodb: secret detail")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let cause = response
            .extensions()
            .get::<InternalErrorCause>()
            .expect("cause attached");
        assert!(cause.0.contains("secret detail"));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let error = AppError::TooManyRequests {
            detail: "slow down".into(),
            retry_after: Duration::from_millis(1200),
        };
        assert_eq!(error.into_response().headers()[header::RETRY_AFTER], "2");
    }
}
