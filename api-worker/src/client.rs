//! Where a request came from, resolved once per request by [`resolve`] and
//! read by handlers through the [`ClientAddress`] extractor.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::HeaderName;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

/// How to find the client: the peer address, or the last entry of a header
/// that a trusted proxy appends to.
#[derive(Debug, Clone, Default)]
pub struct ClientResolver {
    header: Option<HeaderName>,
}

impl ClientResolver {
    pub fn new(header: Option<&str>) -> anyhow::Result<Self> {
        let header = header
            .map(|name| {
                HeaderName::try_from(name.trim().to_ascii_lowercase())
                    .map_err(|_| anyhow::anyhow!("{name:?} is not an HTTP header name"))
            })
            .transpose()?;
        Ok(Self { header })
    }

    fn address(&self, parts: &Parts) -> String {
        let from_header = self
            .header
            .as_ref()
            .and_then(|name| parts.headers.get_all(name).iter().next_back())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        from_header
            .or_else(|| peer(parts).map(|addr| addr.ip().to_string()))
            .unwrap_or_else(|| "unknown".into())
    }
}

fn peer(parts: &Parts) -> Option<SocketAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}

/// The client's address as [`resolve`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(pub String);

/// Middleware: finds the client once and records it for the handlers.
pub async fn resolve(
    State(resolver): State<ClientResolver>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let address = ClientAddress(resolver.address(&parts));
    parts.extensions.insert(address);
    next.run(Request::from_parts(parts, body)).await
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        // Without the middleware (a router built without `app`): the peer.
        Ok(parts
            .extensions
            .get::<Self>()
            .cloned()
            .unwrap_or_else(|| Self(ClientResolver::default().address(parts))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_header_wins_when_configured() {
        let request = axum::http::Request::builder()
            .header("x-forwarded-for", "10.0.0.1, 203.0.113.7")
            .body(())
            .expect("request");
        let (parts, ()) = request.into_parts();
        let resolver = ClientResolver::new(Some("X-Forwarded-For")).expect("header name");
        assert_eq!(resolver.address(&parts), "203.0.113.7");
        assert_eq!(ClientResolver::default().address(&parts), "unknown");
    }
}
