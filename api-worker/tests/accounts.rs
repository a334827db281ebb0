//! Accounts, tokens, login limits, profiles and watchlists, with isolation
//! between users, against moto and the TMDB stub.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Fixture, call, send, sign_up};
use serde_json::json;

fn signup_body(email: &str, password: &str) -> serde_json::Value {
    json!({"email": email, "password": password})
}

#[tokio::test]
async fn sign_up_log_in_and_read_the_profile() {
    let fx = Fixture::new("acct-happy").await;
    let (_, app) = fx.app(&[]);
    let answer = call(
        &app,
        Method::POST,
        "/api/v1/auth/signup",
        None,
        Some(json!({"email": " Ada@Example.com ", "password": "correct horse battery", "displayName": "Ada"})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    assert_eq!(answer.body["status"], "accepted");
    assert!(answer.body.get("token").is_none() && answer.body.get("user").is_none());

    // The address is claimed once, for the account that holds the argon2id hash.
    let claim = fx
        .dynamo
        .get_item()
        .table_name(&fx.users_table)
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S("email#ada@example.com".into()),
        )
        .send()
        .await
        .expect("get")
        .item
        .expect("claim item");
    let user_id = claim["userId"].as_s().expect("user id").clone();
    let item = fx
        .dynamo
        .get_item()
        .table_name(&fx.users_table)
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("user#{user_id}")),
        )
        .send()
        .await
        .expect("get")
        .item
        .expect("profile item");
    assert!(
        item["passwordHash"]
            .as_s()
            .is_ok_and(|h| h.starts_with("$argon2id$"))
    );

    let login = call(
        &app,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(signup_body("ADA@example.com", "correct horse battery")),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    assert_eq!(login.body["tokenType"], "Bearer");
    assert_eq!(login.body["expiresIn"], 900);
    let token = login.body["token"].as_str().expect("token");
    let me = call(&app, Method::GET, "/api/v1/me", Some(token), None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["displayName"], "Ada");
    assert_eq!(me.body["email"], "ada@example.com");

    let updated = call(
        &app,
        Method::PATCH,
        "/api/v1/me",
        Some(token),
        Some(json!({"displayName": "Ada L."})),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    assert_eq!(updated.body["displayName"], "Ada L.");
    let me = call(&app, Method::GET, "/api/v1/me", Some(token), None).await;
    assert_eq!(me.body["displayName"], "Ada L.");

    let again = call(
        &app,
        Method::POST,
        "/api/v1/auth/signup",
        None,
        Some(signup_body("ada@EXAMPLE.com", "another good one")),
    )
    .await;
    // A taken address is answered like a free one, and nothing changes.
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text);
    assert_eq!(again.text, answer.text);
    let old = call(
        &app,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(signup_body("ada@example.com", "correct horse battery")),
    )
    .await;
    assert_eq!(old.status, StatusCode::OK, "{}", old.text);
}

#[tokio::test]
async fn bad_account_requests_are_explained() {
    let fx = Fixture::new("acct-bad").await;
    // Every case below is a sign-up from one address: more than the default burst.
    let (_, app) = fx.app(&["--body-limit=1024", "--signup-address-burst=50"]);
    let signup = "/api/v1/auth/signup";
    for (body, status, needle) in [
        (
            signup_body("not-an-address", "correct horse battery"),
            400,
            "email is not a valid address",
        ),
        (
            signup_body("ada@example", "correct horse battery"),
            400,
            "domain",
        ),
        (
            signup_body("ada@example.com", "short"),
            400,
            "password must be 10 to 128 characters",
        ),
        (
            signup_body("ada@example.com", "aaaaaaaaaaaaaa"),
            400,
            "4 different characters",
        ),
        (
            signup_body("ada@example.com", "password1234"),
            400,
            "password is too common or too easy to guess",
        ),
        (
            signup_body("ada@example.com", "Qwertyuiop123"),
            400,
            "password is too common or too easy to guess",
        ),
        (json!({"email": "ada@example.com"}), 422, "password"),
        (
            json!({"email": "ada@example.com", "password": "correct horse battery", "admin": true}),
            422,
            "admin",
        ),
        (
            json!({"email": 5, "password": "correct horse battery"}),
            422,
            "email",
        ),
        (
            json!({"email": "ada@example.com", "password": "correct horse battery", "displayName": "  "}),
            400,
            "displayName",
        ),
    ] {
        call(&app, Method::POST, signup, None, Some(body))
            .await
            .assert_problem(status, needle);
    }
    let raw = |content_type: &str, body: String| {
        Request::post(signup)
            .header("content-type", content_type)
            .body(Body::from(body))
            .expect("request")
    };
    send(&app, raw("application/json", "{not json".into()))
        .await
        .assert_problem(400, "");
    send(&app, raw("text/plain", "{}".into()))
        .await
        .assert_problem(415, "application/json");
    let huge = json!({"email": "ada@example.com", "password": "x".repeat(4096)}).to_string();
    send(&app, raw("application/json", huge))
        .await
        .assert_problem(413, "too large");
    send(
        &app,
        Request::post(signup).body(Body::empty()).expect("request"),
    )
    .await
    .assert_problem(415, "application/json");

    // Profile routes need a valid, unexpired token signed with our key.
    call(&app, Method::GET, "/api/v1/me", None, None)
        .await
        .assert_problem(401, "log in first");
    call(&app, Method::GET, "/api/v1/me", Some("garbage"), None)
        .await
        .assert_problem(401, "malformed");
    let request = Request::get("/api/v1/me")
        .header("authorization", "Basic YTpi")
        .body(Body::empty())
        .expect("request");
    let basic = send(&app, request).await;
    basic.assert_problem(401, "Bearer");
    assert_eq!(basic.header("www-authenticate"), Some("Bearer"));

    let (state, accounts) = fx.serving(&[]);
    let app = api_worker::app(state, Some(accounts.clone()));
    let (user_id, _) = sign_up(&app, "grace@example.com").await;
    let signer = accounts.auth.signer();
    let expired = signer.issue(&user_id, api_worker::clock::now_epoch() - 3600);
    call(&app, Method::GET, "/api/v1/me", Some(&expired), None)
        .await
        .assert_problem(401, "expired");
    let foreign = api_worker::tokens::TokenSigner::new(
        b"someone else's key, 32 bytes long!",
        std::time::Duration::from_secs(60),
    )
    .issue(&user_id, api_worker::clock::now_epoch());
    call(&app, Method::GET, "/api/v1/me", Some(&foreign), None)
        .await
        .assert_problem(401, "signature");
    let fresh = signer.issue(&user_id, api_worker::clock::now_epoch());
    call(
        &app,
        Method::PATCH,
        "/api/v1/me",
        Some(&fresh),
        Some(json!({})),
    )
    .await
    .assert_problem(400, "displayName");
    call(
        &app,
        Method::PATCH,
        "/api/v1/me",
        Some(&fresh),
        Some(json!({"displayName": "x".repeat(51)})),
    )
    .await
    .assert_problem(400, "displayName");
    // A token for an account that does not exist (deleted since) finds nothing.
    let ghost = signer.issue(
        "00000000-0000-4000-8000-000000000000",
        api_worker::clock::now_epoch(),
    );
    call(&app, Method::GET, "/api/v1/me", Some(&ghost), None)
        .await
        .assert_problem(404, "no longer exists");
}

#[tokio::test]
async fn logins_are_limited_per_account_and_per_address() {
    let fx = Fixture::new("acct-limit").await;
    let (_, app) = fx.app(&[
        "--login-account-burst=3",
        "--login-address-burst=7",
        "--login-address-refill=1h",
    ]);
    sign_up(&app, "lin@example.com").await;
    let login = |email: &str, password: &str| {
        let body = signup_body(email, password);
        let app = app.clone();
        async move { call(&app, Method::POST, "/api/v1/auth/login", None, Some(body)).await }
    };
    login("lin@example.com", "wrong password!")
        .await
        .assert_problem(401, "email or password is incorrect");
    login("nobody@example.com", "wrong password!")
        .await
        .assert_problem(401, "email or password is incorrect");
    login("lin@example.com", "wrong password!")
        .await
        .assert_problem(401, "incorrect");
    login("lin@example.com", "wrong password!")
        .await
        .assert_problem(401, "incorrect");
    // Three failures: the account is locked for a while, even with the right password.
    let locked = login("lin@example.com", "correct horse battery").await;
    locked.assert_problem(429, "too many failed logins for this account");
    assert!(
        locked
            .header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1))
    );
    // Another account from the same address still works (its sign-up logs
    // in: the 7th attempt), until the address budget (7 attempts) is spent.
    sign_up(&app, "max@example.com").await;
    login("max@example.com", "correct horse battery")
        .await
        .assert_problem(429, "from this address");
}

#[tokio::test]
async fn watchlist_add_list_remove() {
    let fx = Fixture::new("wl-happy").await;
    let (_, app) = fx.app(&[]);
    let (_, token) = sign_up(&app, "wl@example.com").await;
    let token = Some(token.as_str());
    let added = call(&app, Method::PUT, "/api/v1/me/watchlist/550", token, None).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    assert_eq!(added.body["movie"]["title"], "Fight Club");
    let again = call(&app, Method::PUT, "/api/v1/me/watchlist/550", token, None).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "adding twice is harmless: {}",
        again.text
    );
    assert_eq!(
        call(&app, Method::PUT, "/api/v1/me/watchlist/603", token, None)
            .await
            .status,
        StatusCode::CREATED
    );

    let list = call(&app, Method::GET, "/api/v1/me/watchlist", token, None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let items = list.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    let ids: Vec<_> = items
        .iter()
        .map(|i| i["movieId"].as_u64().unwrap_or_default())
        .collect();
    assert!(ids.contains(&550) && ids.contains(&603));
    assert!(
        items
            .iter()
            .all(|i| i["movie"]["title"].as_str().is_some_and(|t| !t.is_empty()))
    );

    assert_eq!(
        call(
            &app,
            Method::DELETE,
            "/api/v1/me/watchlist/550",
            token,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    call(
        &app,
        Method::DELETE,
        "/api/v1/me/watchlist/550",
        token,
        None,
    )
    .await
    .assert_problem(404, "not on your watchlist");
    let list = call(&app, Method::GET, "/api/v1/me/watchlist", token, None).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));

    call(&app, Method::PUT, "/api/v1/me/watchlist/abc", token, None)
        .await
        .assert_problem(400, "movie id");
    call(&app, Method::PUT, "/api/v1/me/watchlist/0", token, None)
        .await
        .assert_problem(400, "movie id");
    call(
        &app,
        Method::PUT,
        "/api/v1/me/watchlist/999999",
        token,
        None,
    )
    .await
    .assert_problem(404, "does not exist");
    call(&app, Method::DELETE, "/api/v1/me/watchlist/x", token, None)
        .await
        .assert_problem(400, "movie id");
    call(&app, Method::GET, "/api/v1/me/watchlist", None, None)
        .await
        .assert_problem(401, "log in first");
    call(
        &app,
        Method::PUT,
        "/api/v1/me/watchlist/550",
        Some("bad.token.here"),
        None,
    )
    .await
    .assert_problem(401, "");
}

#[tokio::test]
async fn users_only_ever_see_and_change_their_own_data() {
    let fx = Fixture::new("wl-isolation").await;
    let (_, app) = fx.app(&[]);
    let (a_id, a) = sign_up(&app, "alice@example.com").await;
    let (b_id, b) = sign_up(&app, "bob@example.com").await;
    assert_ne!(a_id, b_id);
    assert_eq!(
        call(
            &app,
            Method::PUT,
            "/api/v1/me/watchlist/550",
            Some(&a),
            None
        )
        .await
        .status,
        StatusCode::CREATED
    );

    // B sees an empty list and B's own profile.
    let b_list = call(&app, Method::GET, "/api/v1/me/watchlist", Some(&b), None).await;
    assert_eq!(
        b_list.body["items"].as_array().map(Vec::len),
        Some(0),
        "{}",
        b_list.text
    );
    let b_me = call(&app, Method::GET, "/api/v1/me", Some(&b), None).await;
    assert_eq!(b_me.body["email"], "bob@example.com");

    // B removing "550" affects only B's (empty) list; A's entry stays.
    call(
        &app,
        Method::DELETE,
        "/api/v1/me/watchlist/550",
        Some(&b),
        None,
    )
    .await
    .assert_problem(404, "not on your watchlist");
    let a_list = call(&app, Method::GET, "/api/v1/me/watchlist", Some(&a), None).await;
    assert_eq!(a_list.body["items"].as_array().map(Vec::len), Some(1));

    // B changing a profile changes B's only.
    call(
        &app,
        Method::PATCH,
        "/api/v1/me",
        Some(&b),
        Some(json!({"displayName": "Mallory"})),
    )
    .await;
    let a_me = call(&app, Method::GET, "/api/v1/me", Some(&a), None).await;
    assert_eq!(a_me.body["displayName"], "alice");

    // There is no route naming another user's id, and a token's subject
    // cannot be swapped without breaking the signature.
    for uri in [
        format!("/api/v1/users/{a_id}"),
        format!("/api/v1/users/{a_id}/watchlist"),
        format!("/api/v1/me/watchlist?userId={a_id}"),
    ] {
        let answer = call(&app, Method::GET, &uri, Some(&b), None).await;
        assert!(
            answer.text.find(&a_id).is_none(),
            "{uri} leaked A's data: {}",
            answer.text
        );
        assert!(
            !answer.text.contains("Fight Club"),
            "{uri} leaked A's data: {}",
            answer.text
        );
    }
    let mut parts: Vec<String> = b.split('.').map(str::to_owned).collect();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = String::from_utf8(engine.decode(&parts[1]).expect("payload"))
        .expect("utf-8")
        .replace(&b_id, &a_id);
    parts[1] = engine.encode(claims);
    let forged = parts.join(".");
    call(
        &app,
        Method::GET,
        "/api/v1/me/watchlist",
        Some(&forged),
        None,
    )
    .await
    .assert_problem(401, "signature");
}
