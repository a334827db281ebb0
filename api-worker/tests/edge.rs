//! The public edge: what a stranger on the public port can and cannot see,
//! the client address behind proxies, and the headers every answer carries.
//! Against moto and the TMDB stub.

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use common::{Answer, Fixture, get, send};
use serde_json::json;

/// A request as it arrives from the TCP peer `peer`, with `headers`.
fn from(
    peer: &str,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = match body {
        Some(body) => request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .expect("request");
    let peer: SocketAddr = format!("{peer}:40000").parse().expect("peer");
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

async fn wrong_login(app: &Router, peer: &str, forwarded_for: &str, n: usize) -> Answer {
    let body = json!({"email": format!("nobody{n}@example.com"), "password": "not the password"});
    send(
        app,
        from(
            peer,
            Method::POST,
            "/api/v1/auth/login",
            &[("x-forwarded-for", forwarded_for)],
            Some(body),
        ),
    )
    .await
}

#[tokio::test]
async fn admin_endpoints_are_not_on_the_public_port() {
    let fx = Fixture::new("edge-admin").await;
    let (_, app) = fx.app(&[]);
    get(&app, "/metrics")
        .await
        .assert_problem(404, "no such resource");

    // Readiness on the public port says "not ready" and nothing else.
    let (state, broken) = fx.app(&["--users-table=no-such-table"]);
    let answer = get(&broken, "/readyz").await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text
    );
    for secret in [
        "no-such-table",
        "table",
        "ResourceNotFound",
        &fx.movies_table,
    ] {
        assert!(
            !answer.text.contains(secret),
            "{secret} leaked: {}",
            answer.text
        );
    }

    // The admin listener names what is missing and serves the metrics.
    let admin = api_worker::admin_app(state);
    get(&admin, "/readyz")
        .await
        .assert_problem(503, "no-such-table");
    let metrics = get(&admin, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics.text.contains("movieapp_api_worker_build_info"),
        "{}",
        metrics.text
    );
    get(&admin, "/api/v1/movies/550")
        .await
        .assert_problem(404, "no such resource");
}

#[tokio::test]
async fn every_answer_carries_nosniff_and_a_referrer_policy_and_hsts_only_over_https() {
    let fx = Fixture::new("edge-headers").await;
    let (_, app) = fx.app(&["--trusted-proxies=10.0.0.0/8"]);
    for uri in [
        "/healthz",
        "/readyz",
        "/api/v1/movies/550",
        "/no/such/page",
        "/api/v1/movies/abc",
        "/",
    ] {
        let answer = send(&app, from("203.0.113.7", Method::GET, uri, &[], None)).await;
        assert_eq!(
            answer.header("x-content-type-options"),
            Some("nosniff"),
            "{uri}"
        );
        assert_eq!(
            answer.header("referrer-policy"),
            Some("no-referrer"),
            "{uri}"
        );
        assert_eq!(
            answer.header("strict-transport-security"),
            None,
            "{uri} over plain HTTP"
        );
    }
    // HTTPS as a trusted proxy reports it: HSTS.
    let https = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "203.0.113.7"),
    ];
    let answer = send(
        &app,
        from("10.0.0.2", Method::GET, "/healthz", &https, None),
    )
    .await;
    assert!(
        answer
            .header("strict-transport-security")
            .is_some_and(|v| v.starts_with("max-age=")),
        "{:?}",
        answer.headers
    );
    // The same claim from a stranger is not believed.
    let answer = send(
        &app,
        from("203.0.113.7", Method::GET, "/healthz", &https, None),
    )
    .await;
    assert_eq!(answer.header("strict-transport-security"), None);
}

#[tokio::test]
async fn a_spoofed_forwarded_header_is_ignored_and_a_trusted_one_is_honoured() {
    let fx = Fixture::new("edge-xff").await;
    // One login attempt per client address, none refilled during the test.
    let (_, app) = fx.app(&[
        "--trusted-proxies=10.0.0.0/8",
        "--login-address-burst=1",
        "--login-address-refill=1h",
    ]);
    // A stranger cannot pose as many clients: its header is ignored, and
    // its second attempt is limited whatever the header says.
    wrong_login(&app, "203.0.113.7", "198.51.100.1", 1)
        .await
        .assert_problem(401, "incorrect");
    wrong_login(&app, "203.0.113.7", "198.51.100.2", 2)
        .await
        .assert_problem(429, "too many login attempts");
    // Behind the trusted proxy every client has its own limit, and what a
    // client wrote into the header (left of the proxy's entry) is not used.
    wrong_login(&app, "10.0.0.2", "192.0.2.9, 198.51.100.3", 3)
        .await
        .assert_problem(401, "incorrect");
    wrong_login(&app, "10.0.0.3", "192.0.2.9, 198.51.100.4", 4)
        .await
        .assert_problem(401, "incorrect");
    wrong_login(&app, "10.0.0.2", "192.0.2.10, 198.51.100.3", 5)
        .await
        .assert_problem(429, "too many login attempts");
}
