//! Movies routes, the cache layers and the operational endpoints, against
//! moto and the (healthy) TMDB stub.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Fixture, call, get, send};

#[tokio::test]
async fn popular_pages_are_served_then_cached() {
    let fx = Fixture::new("mv-popular").await;
    let (_, app) = fx.app(&[]);
    let first = get(&app, "/api/v1/movies/popular").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.header("x-cache"), Some("miss"));
    assert_eq!(first.body["page"], 1);
    let results = first.body["results"].as_array().expect("results");
    assert_eq!(results.len(), 20);
    assert!(
        results[0]["posterUrl"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://"))
    );
    assert!(results[0]["title"].as_str().is_some_and(|t| !t.is_empty()));

    let again = get(&app, "/api/v1/movies/popular?page=1").await;
    assert_eq!(again.header("x-cache"), Some("hit"));
    assert_eq!(again.body, first.body);

    let third = get(&app, "/api/v1/movies/popular?page=3").await;
    assert_eq!(third.status, StatusCode::OK);
    assert_eq!(third.body["page"], 3);
    assert!(
        third.body["results"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
}

#[tokio::test]
async fn movie_details_are_cached_in_dynamodb_with_a_ttl() {
    let fx = Fixture::new("mv-details").await;
    let (_, app) = fx.app(&[]);
    let answer = get(&app, "/api/v1/movies/550").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["title"], "Fight Club");
    assert_eq!(answer.body["runtime"], 139);
    assert_eq!(answer.body["releaseDate"], "1999-10-15");
    assert!(
        answer.body["genres"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == "Drama"))
    );

    let item = fx
        .dynamo
        .get_item()
        .table_name(&fx.movies_table)
        .key("key", AttributeValue::S("movie#550".into()))
        .send()
        .await
        .expect("get item")
        .item
        .expect("the details were written to the movies table");
    let expires: u64 = item["expiresAt"]
        .as_n()
        .expect("expiresAt")
        .parse()
        .expect("number");
    let now = api_worker::clock::now_epoch();
    assert!(
        expires > now + 86_400,
        "kept for days so it can be served stale"
    );

    // A fresh process with a key TMDB refuses still answers, from DynamoDB.
    let (_, other) = fx.app(&["--tmdb-api-key=wrong-key"]);
    let cached = get(&other, "/api/v1/movies/550").await;
    assert_eq!(cached.status, StatusCode::OK, "{}", cached.text);
    assert_eq!(cached.header("x-cache"), Some("hit"));
    assert_eq!(cached.body, answer.body);
}

#[tokio::test]
async fn search_finds_titles_and_normalises_queries() {
    let fx = Fixture::new("mv-search").await;
    let (_, app) = fx.app(&[]);
    let answer = get(&app, "/api/v1/movies/search?query=fight%20club").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let results = answer.body["results"].as_array().expect("results");
    assert!(results.iter().any(|m| m["id"] == 550), "{}", answer.text);

    let same = get(&app, "/api/v1/movies/search?query=%20%20Fight%20%20CLUB%20").await;
    assert_eq!(
        same.header("x-cache"),
        Some("hit"),
        "equal searches share an entry"
    );

    let none = get(&app, "/api/v1/movies/search?query=zzzzqqqq").await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(none.body["results"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn bad_movie_requests_are_explained() {
    let fx = Fixture::new("mv-bad").await;
    let (_, app) = fx.app(&[]);
    for (uri, status, needle) in [
        (
            "/api/v1/movies/popular?page=0",
            400,
            "page must be between 1 and 500",
        ),
        (
            "/api/v1/movies/popular?page=501",
            400,
            "page must be between 1 and 500",
        ),
        ("/api/v1/movies/popular?page=abc", 400, "page"),
        ("/api/v1/movies/popular?page=-1", 400, "page"),
        ("/api/v1/movies/popular?page=99999999999", 400, "page"),
        ("/api/v1/movies/search", 400, "query is required"),
        (
            "/api/v1/movies/search?query=%20%20",
            400,
            "query is required",
        ),
        ("/api/v1/movies/search?query=a&page=0", 400, "page"),
        (
            "/api/v1/movies/abc",
            400,
            "movie id must be a positive integer",
        ),
        (
            "/api/v1/movies/0",
            400,
            "movie id must be a positive integer",
        ),
        (
            "/api/v1/movies/-5",
            400,
            "movie id must be a positive integer",
        ),
        (
            "/api/v1/movies/99999999999",
            400,
            "movie id must be a positive integer",
        ),
        ("/api/v1/movies/999999", 404, "movie 999999 does not exist"),
        ("/api/v1/nothing-here", 404, "no such resource"),
        ("/nothing/here", 404, "no such resource"),
    ] {
        get(&app, uri).await.assert_problem(status, needle);
    }
    let long = format!("/api/v1/movies/search?query={}", "x".repeat(101));
    get(&app, &long)
        .await
        .assert_problem(400, "at most 100 characters");
    call(&app, Method::POST, "/api/v1/movies/550", None, None)
        .await
        .assert_problem(405, "not allowed");
    call(&app, Method::DELETE, "/healthz", None, None)
        .await
        .assert_problem(405, "not allowed");
}

#[tokio::test]
async fn operational_endpoints_answer() {
    let fx = Fixture::new("mv-ops").await;
    let (state, app) = fx.app(&[]);
    let health = get(&app, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");

    let ready = get(&app, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);

    let openapi = get(&app, "/openapi.json").await;
    assert_eq!(openapi.status, StatusCode::OK);
    assert!(openapi.body["paths"]["/api/v1/movies/{id}"].is_object());

    get(&app, "/api/v1/movies/550").await;
    get(&app, "/api/v1/movies/550").await;
    let metrics = get(&api_worker::admin_app(state.clone()), "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    for expected in [
        r#"movieapp_http_requests_total{method="GET",route="/api/v1/movies/{id}",status="200"} 2"#,
        r#"movieapp_cache_lookups_total{kind="movie",result="hit"} 1"#,
        r#"movieapp_cache_lookups_total{kind="movie",result="miss"} 1"#,
        r#"movieapp_tmdb_requests_total{endpoint="details",outcome="ok"} 1"#,
        "movieapp_http_request_duration_seconds_bucket",
    ] {
        assert!(
            metrics.text.contains(expected),
            "{expected} missing from\n{}",
            metrics.text
        );
    }

    // Request ids: generated, or kept when the caller sent a plain one.
    assert!(
        health
            .header("x-request-id")
            .is_some_and(|id| !id.is_empty())
    );
    let request = Request::get("/healthz")
        .header("x-request-id", "trace-42")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        send(&app, request).await.header("x-request-id"),
        Some("trace-42")
    );

    // Readiness fails when a table is gone; the admin listener names it.
    let (broken_state, broken) = fx.app(&["--users-table=no-such-table"]);
    get(&broken, "/readyz")
        .await
        .assert_problem(503, "not ready");
    get(&api_worker::admin_app(broken_state), "/readyz")
        .await
        .assert_problem(503, "no-such-table");
}

#[tokio::test]
async fn the_web_page_and_its_assets_are_served() {
    let fx = Fixture::new("mv-web").await;
    let (_, app) = fx.app(&[]);
    let page = get(&app, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    assert!(page.header("content-security-policy").is_some());
    assert!(page.text.contains("app.js"));
    for asset in ["/app.js", "/app.css"] {
        assert_eq!(get(&app, asset).await.status, StatusCode::OK, "{asset}");
    }
}
