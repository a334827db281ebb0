//! A watchlist under abuse: bounded pages that follow a cursor, bad cursors
//! refused, and a per-user cap that holds under concurrent adds, against
//! moto and the TMDB stub.

mod common;

use axum::http::{Method, StatusCode};
use base64::Engine;
use common::{Answer, Fixture, call, sign_up};

/// Movies of the stub's catalogue, in id order.
const MOVIES: [u64; 8] = [11, 13, 77, 78, 98, 105, 120, 121];

async fn add(app: &axum::Router, token: &str, id: u64) -> Answer {
    let uri = format!("/api/v1/me/watchlist/{id}");
    call(app, Method::PUT, &uri, Some(token), None).await
}

async fn list(app: &axum::Router, token: &str, query: &str) -> Answer {
    let uri = format!("/api/v1/me/watchlist{query}");
    call(app, Method::GET, &uri, Some(token), None).await
}

/// Every page from the first with `limit`, following `nextCursor`.
async fn pages(app: &axum::Router, token: &str, limit: u32) -> Vec<Vec<u64>> {
    let mut pages = Vec::new();
    let mut query = format!("?limit={limit}");
    loop {
        let page = list(app, token, &query).await;
        assert_eq!(page.status, StatusCode::OK, "{query}: {}", page.text);
        let ids: Vec<u64> = page.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| item["movieId"].as_u64().expect("movieId"))
            .collect();
        assert!(ids.len() <= limit as usize, "{query}: {ids:?}");
        pages.push(ids);
        match page.body["nextCursor"].as_str() {
            Some(cursor) => query = format!("?limit={limit}&cursor={cursor}"),
            None => return pages,
        }
        assert!(pages.len() <= MOVIES.len(), "the cursor never ends");
    }
}

#[tokio::test]
async fn a_watchlist_is_read_in_pages_that_follow_a_cursor() {
    let fx = Fixture::new("wl-pages").await;
    let (_, app) = fx.app(&[]);
    let (_, token) = sign_up(&app, "pages@example.com").await;
    for id in MOVIES.iter().rev() {
        assert_eq!(add(&app, &token, *id).await.status, StatusCode::CREATED);
    }
    let pages = pages(&app, &token, 3).await;
    assert_eq!(pages.len(), 3, "{pages:?}");
    let all: Vec<u64> = pages.concat();
    assert_eq!(all, MOVIES, "every entry once, in movie id order");
    // Without a limit a page holds up to 50.
    let whole = list(&app, &token, "").await;
    assert_eq!(whole.body["items"].as_array().map(Vec::len), Some(8));
    assert!(whole.body.get("nextCursor").is_none(), "{}", whole.text);
    // An empty list is one empty page.
    let (_, other) = sign_up(&app, "empty@example.com").await;
    assert_eq!(pages_len(&app, &other).await, 0);
}

async fn pages_len(app: &axum::Router, token: &str) -> usize {
    let answer = list(app, token, "?limit=10").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(answer.body.get("nextCursor").is_none(), "{}", answer.text);
    answer.body["items"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn bad_cursors_and_limits_are_a_clear_400() {
    let fx = Fixture::new("wl-cursor").await;
    let (_, app) = fx.app(&[]);
    let (_, token) = sign_up(&app, "cursor@example.com").await;
    let b64 = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
    for (query, needle) in [
        ("?cursor=", "cursor"),
        ("?cursor=not-a-cursor!", "cursor"),
        (&format!("?cursor={}", b64("550")) as &str, "cursor"),
        (&format!("?cursor={}", b64("m:abc")), "cursor"),
        (&format!("?cursor={}", b64("m:0")), "cursor"),
        (&format!("?cursor={}", b64(&"9".repeat(40))), "cursor"),
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=ten", "limit"),
        ("?limit=-1", "limit"),
    ] {
        list(&app, &token, query).await.assert_problem(400, needle);
    }
}

#[tokio::test]
async fn a_watchlist_holds_at_most_the_cap_even_under_concurrent_adds() {
    let fx = Fixture::new("wl-cap").await;
    let (_, app) = fx.app(&["--watchlist-max-entries=5"]);
    let (_, token) = sign_up(&app, "cap@example.com").await;
    // Eight different movies at once: five fit, three are refused.
    let answers = futures::future::join_all(MOVIES.iter().map(|id| add(&app, &token, *id))).await;
    let created = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .count();
    assert_eq!(
        created,
        5,
        "{:?}",
        answers.iter().map(|a| &a.text).collect::<Vec<_>>()
    );
    for refused in answers.iter().filter(|a| a.status != StatusCode::CREATED) {
        refused.assert_problem(409, "at most 5 movies");
    }
    let listed: Vec<u64> = pages(&app, &token, 100).await.concat();
    assert_eq!(listed.len(), 5, "{listed:?}");
    // Adding a listed movie again is still harmless at the cap.
    assert_eq!(add(&app, &token, listed[0]).await.status, StatusCode::OK);
    // Removing one makes room for one.
    let remove = format!("/api/v1/me/watchlist/{}", listed[0]);
    assert_eq!(
        call(&app, Method::DELETE, &remove, Some(&token), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let missing: Vec<u64> = MOVIES
        .iter()
        .copied()
        .filter(|id| !listed.contains(id))
        .collect();
    assert_eq!(
        add(&app, &token, missing[0]).await.status,
        StatusCode::CREATED
    );
    add(&app, &token, missing[1])
        .await
        .assert_problem(409, "at most 5 movies");
    // Removing what is not listed does not make room.
    let absent = format!("/api/v1/me/watchlist/{}", missing[1]);
    call(&app, Method::DELETE, &absent, Some(&token), None)
        .await
        .assert_problem(404, "not on your watchlist");
    add(&app, &token, missing[1])
        .await
        .assert_problem(409, "at most 5 movies");
    // Another user's cap is their own.
    let (_, other) = sign_up(&app, "cap-other@example.com").await;
    assert_eq!(
        add(&app, &other, missing[1]).await.status,
        StatusCode::CREATED
    );
}
