//! Middleware every request passes: request ids, logs, metrics, security
//! headers, time-outs and a panic guard. Route labels are templates (`/api/v1/movies/{id}`).

use std::any::Any;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::error::{AppError, InternalErrorCause, problem};
use crate::state::AppState;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// `<random per process>-<counter>`: unique without a syscall per request.
fn new_request_id() -> String {
    static PREFIX: LazyLock<u32> = LazyLock::new(|| fastrand::u32(..));
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:08x}-{}",
        *PREFIX,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A caller's id is kept when it is short and plain, so ids join up across
/// services; anything else is replaced.
fn incoming_request_id(request: &Request) -> Option<String> {
    let value = request.headers().get(&REQUEST_ID)?.to_str().ok()?;
    let plain = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    plain.then(|| value.to_owned())
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Request id, span, access log and metrics.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = incoming_request_id(&request).unwrap_or_else(new_request_id);
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let span = tracing::info_span!("request", request_id = %request_id, method, route = %route);
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status();
    state
        .metrics
        .http_request(method, &route, status.as_u16(), elapsed);
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let _entered = span.enter();
    if let Some(InternalErrorCause(cause)) = response.extensions().get::<InternalErrorCause>() {
        tracing::error!(status = status.as_u16(), latency_ms, %cause, "request failed");
    } else if status.is_server_error() {
        tracing::warn!(
            status = status.as_u16(),
            latency_ms,
            "request answered with a server error"
        );
    } else if status.is_client_error() {
        tracing::info!(status = status.as_u16(), latency_ms, "request refused");
    } else {
        tracing::debug!(status = status.as_u16(), latency_ms, "request served");
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID.clone(), value);
    }
    // Every answer, errors and JSON included: no MIME sniffing, no URLs
    // (search terms, ids) handed to other sites in Referer.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Bounds each request by `--request-timeout`.
pub async fn timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.http.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::Timeout(limit).into_response(),
    }
}

/// A panicking handler answers 500 (logged with its message) and the
/// connection survives.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".into());
    let mut response = problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; the request id identifies it in the logs",
    );
    response
        .extensions_mut()
        .insert(InternalErrorCause(format!("panic: {message}")));
    response
}

pub async fn not_found() -> AppError {
    AppError::NotFound("no such resource; see /openapi.json for the API".into())
}

pub async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed(
        "this method is not allowed here; see /openapi.json for the API".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_plain_incoming_ones_are_kept() {
        assert_ne!(new_request_id(), new_request_id());
        let request = Request::builder()
            .header("x-request-id", "abc-123")
            .body(axum::body::Body::empty());
        assert_eq!(
            incoming_request_id(&request.expect("request")).as_deref(),
            Some("abc-123")
        );
        let request = Request::builder()
            .header("x-request-id", "a b<script>")
            .body(axum::body::Body::empty());
        assert_eq!(incoming_request_id(&request.expect("request")), None);
    }
}
