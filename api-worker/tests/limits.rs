//! Brute force and enumeration at the login and sign-up endpoints, against
//! moto: lockouts shared through DynamoDB, checked and spent before the
//! password is, identical answers whether or not an address has an account,
//! and per-client limits on sign-up and on TMDB calls.

mod common;

use axum::Router;
use axum::http::{Method, StatusCode};
use common::{Answer, Fixture, call, get, sign_up};
use serde_json::json;

async fn login(app: &Router, email: &str, password: &str) -> Answer {
    call(
        app,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await
}

/// Lifts the per-client login limit so the per-account one is what shows.
const MANY_CLIENT_ATTEMPTS: &str = "--login-address-burst=10000";

#[tokio::test]
async fn fifty_concurrent_wrong_passwords_are_evaluated_at_most_burst_times() {
    let fx = Fixture::new("lock-race").await;
    let (_, app) = fx.app(&[
        MANY_CLIENT_ATTEMPTS,
        "--login-account-burst=5",
        "--login-account-refill=1h",
    ]);
    sign_up(&app, "ada@example.com").await;
    let answers = futures::future::join_all((0..50).map(|i| {
        let app = app.clone();
        async move { login(&app, "ada@example.com", &format!("wrong password {i}")).await }
    }))
    .await;
    let evaluated = answers
        .iter()
        .filter(|a| a.status == StatusCode::UNAUTHORIZED)
        .count();
    let limited = answers
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        evaluated + limited,
        50,
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert!(
        evaluated <= 5,
        "{evaluated} guesses were checked; the burst is 5"
    );
    // Locked: even the right password waits.
    login(&app, "ada@example.com", "correct horse battery")
        .await
        .assert_problem(429, "too many failed logins");
}

#[tokio::test]
async fn two_api_worker_processes_share_one_lockout() {
    let fx = Fixture::new("lock-shared").await;
    let flags = [
        MANY_CLIENT_ATTEMPTS,
        "--login-account-burst=3",
        "--login-account-refill=1h",
    ];
    // Two states: nothing in memory is shared between them, as between Pods.
    let (_, first) = fx.app(&flags);
    let (_, second) = fx.app(&flags);
    sign_up(&first, "grace@example.com").await;
    for _ in 0..3 {
        login(&first, "grace@example.com", "wrong password!")
            .await
            .assert_problem(401, "incorrect");
    }
    let answer = login(&second, "grace@example.com", "correct horse battery").await;
    answer.assert_problem(429, "too many failed logins");
    assert!(answer.header("retry-after").is_some());
}

#[tokio::test]
async fn login_answers_do_not_tell_whether_an_account_exists() {
    let fx = Fixture::new("lock-enum").await;
    let (_, app) = fx.app(&[
        MANY_CLIENT_ATTEMPTS,
        "--login-account-burst=2",
        "--login-account-refill=1h",
    ]);
    sign_up(&app, "known@example.com").await;
    for round in 0..3 {
        let known = login(&app, "known@example.com", "wrong password!").await;
        let unknown = login(&app, "unknown@example.com", "wrong password!").await;
        assert_eq!(known.status, unknown.status, "round {round}");
        assert_eq!(known.text, unknown.text, "round {round}");
        let expected = if round < 2 { 401 } else { 429 };
        assert_eq!(
            known.status.as_u16(),
            expected,
            "round {round}: {}",
            known.text
        );
    }
}

#[tokio::test]
async fn sign_up_answers_do_not_tell_whether_an_address_is_taken() {
    let fx = Fixture::new("signup-enum").await;
    let (_, app) = fx.app(&[]);
    let body = |password: &str| Some(json!({"email": "taken@example.com", "password": password}));
    let first = call(
        &app,
        Method::POST,
        "/api/v1/auth/signup",
        None,
        body("correct horse battery"),
    )
    .await;
    let second = call(
        &app,
        Method::POST,
        "/api/v1/auth/signup",
        None,
        body("another good one!"),
    )
    .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    assert_eq!(second.status, first.status, "{}", second.text);
    assert_eq!(second.text, first.text);
    // The first sign-up made the account; the second changed nothing.
    login(&app, "taken@example.com", "correct horse battery").await;
    let ok = login(&app, "taken@example.com", "correct horse battery").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    login(&app, "taken@example.com", "another good one!")
        .await
        .assert_problem(401, "incorrect");
}

#[tokio::test]
async fn sign_ups_are_limited_per_client() {
    let fx = Fixture::new("signup-limit").await;
    let (_, app) = fx.app(&["--signup-address-burst=2", "--signup-address-refill=1h"]);
    for i in 0..2 {
        let answer = call(
            &app,
            Method::POST,
            "/api/v1/auth/signup",
            None,
            Some(json!({"email": format!("user{i}@example.com"), "password": "correct horse battery"})),
        )
        .await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    }
    let answer = call(
        &app,
        Method::POST,
        "/api/v1/auth/signup",
        None,
        Some(json!({"email": "user3@example.com", "password": "correct horse battery"})),
    )
    .await;
    answer.assert_problem(429, "too many sign-ups");
    assert!(answer.header("retry-after").is_some());
}

#[tokio::test]
async fn one_client_gets_a_bounded_share_of_tmdb() {
    let fx = Fixture::new("tmdb-share").await;
    let (_, app) = fx.app(&["--tmdb-client-burst=2", "--tmdb-client-refill=1h"]);
    for query in ["alien", "brazil"] {
        let answer = get(&app, &format!("/api/v1/movies/search?query={query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    let answer = get(&app, "/api/v1/movies/search?query=casablanca").await;
    answer.assert_problem(429, "too many requests");
    assert!(answer.header("retry-after").is_some());
    // What is cached is still served to that client.
    let cached = get(&app, "/api/v1/movies/search?query=alien").await;
    assert_eq!(cached.status, StatusCode::OK, "{}", cached.text);
}
