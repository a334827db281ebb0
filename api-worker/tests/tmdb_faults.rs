//! TMDB failures, injected through the stub's control API. The stub's fault
//! settings are global, so every test here holds one lock and resets the
//! stub before and after (also when it fails).

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{Env, Fixture, get};
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

static STUB: Mutex<()> = Mutex::const_new(());

/// Exclusive use of the stub's fault settings; resets them when dropped.
struct Faults {
    control: String,
    http: reqwest::Client,
    _lock: MutexGuard<'static, ()>,
}

impl Faults {
    async fn take() -> Self {
        let lock = STUB.lock().await;
        let control = format!(
            "{}/__control",
            Env::get().tmdb_base_url.trim_end_matches('/')
        );
        let faults = Self {
            control,
            http: reqwest::Client::new(),
            _lock: lock,
        };
        faults.reset().await;
        faults
    }

    async fn reset(&self) {
        let response = self
            .http
            .post(format!("{}/reset", self.control))
            .send()
            .await
            .expect("stub control reachable");
        assert!(
            response.status().is_success(),
            "resetting the stub: {}",
            response.status()
        );
    }

    async fn set(&self, settings: Value) {
        let response = self
            .http
            .put(&self.control)
            .json(&settings)
            .send()
            .await
            .expect("stub control reachable");
        assert!(
            response.status().is_success(),
            "stub refused {settings}: {}",
            response.text().await.unwrap_or_default()
        );
    }

    async fn counters(&self) -> Value {
        let state: Value = self
            .http
            .get(&self.control)
            .send()
            .await
            .expect("stub")
            .json()
            .await
            .expect("json");
        state["counters"].clone()
    }
}

impl Drop for Faults {
    fn drop(&mut self) {
        let url = format!("{}/reset", self.control);
        // Drop may run during a panic and cannot await: reset on a thread.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let _ = reqwest::Client::new().post(url).send().await;
            });
        })
        .join();
    }
}

#[tokio::test]
async fn a_wrong_key_is_a_clear_bad_gateway() {
    let _faults = Faults::take().await;
    let fx = Fixture::new("tmdb-key").await;
    let (_, app) = fx.app(&["--tmdb-api-key=not-the-key"]);
    get(&app, "/api/v1/movies/550")
        .await
        .assert_problem(502, "the movie database gave an answer we cannot use");
    get(&app, "/api/v1/movies/popular")
        .await
        .assert_problem(502, "cannot load popular movies");
    // Neither TMDB's own words nor our configuration reach the client.
    let answer = get(&app, "/api/v1/movies/603").await;
    for secret in ["TMDB", "API key", "Invalid API key", "status_code"] {
        assert!(
            !answer.text.contains(secret),
            "{secret} leaked: {}",
            answer.text
        );
    }
}

#[tokio::test]
async fn rate_limits_are_retried_after_the_delay_tmdb_asks_for() {
    let faults = Faults::take().await;
    let fx = Fixture::new("tmdb-429").await;
    let (_, app) = fx.app(&[]);
    faults
        .set(json!({"rate_limit": true, "rate_limit_count": 2, "retry_after_s": 1}))
        .await;
    let started = Instant::now();
    let answer = get(&app, "/api/v1/movies/603").await;
    let elapsed = started.elapsed();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["title"], "The Matrix");
    assert!(
        elapsed >= Duration::from_secs(2),
        "two Retry-After: 1 waits were honoured, took {elapsed:?}"
    );
    let counters = faults.counters().await;
    assert_eq!(counters["faults_injected"]["rate_limit"], 2);
    assert_eq!(
        counters["requests_by_kind"]["details"], 3,
        "two refused attempts and one success"
    );
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let faults = Faults::take().await;
    let fx = Fixture::new("tmdb-5xx").await;
    let (_, app) = fx.app(&[]);
    faults
        .set(json!({"fail_status": 502, "fail_count": 2}))
        .await;
    let answer = get(&app, "/api/v1/movies/popular?page=2").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(faults.counters().await["faults_injected"]["error"], 2);
}

#[tokio::test]
async fn during_an_outage_cached_items_are_served_stale_and_the_rest_is_503() {
    let faults = Faults::take().await;
    let fx = Fixture::new("tmdb-outage").await;
    // Entries go stale at once, so every request tries TMDB first.
    let (_, app) = fx.app(&["--cache-details-ttl=0s", "--cache-lists-ttl=0s"]);
    let fresh = get(&app, "/api/v1/movies/550").await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text);
    assert_eq!(
        get(&app, "/api/v1/movies/search?query=matrix").await.status,
        StatusCode::OK
    );

    faults.set(json!({"fail_status": 503})).await;
    let stale = get(&app, "/api/v1/movies/550").await;
    assert_eq!(stale.status, StatusCode::OK, "{}", stale.text);
    assert_eq!(stale.header("x-cache"), Some("stale"));
    assert!(
        stale
            .header("warning")
            .is_some_and(|w| w.starts_with("110"))
    );
    assert!(stale.header("age").is_some());
    assert_eq!(stale.body, fresh.body);
    assert_eq!(
        get(&app, "/api/v1/movies/search?query=MATRIX")
            .await
            .header("x-cache"),
        Some("stale")
    );

    // A new process (empty memory) still has DynamoDB's copy.
    let (_, restarted) = fx.app(&["--cache-details-ttl=0s"]);
    assert_eq!(
        get(&restarted, "/api/v1/movies/550")
            .await
            .header("x-cache"),
        Some("stale")
    );

    let uncached = get(&app, "/api/v1/movies/603").await;
    uncached.assert_problem(503, "the movie database is unavailable");
    assert!(uncached.header("retry-after").is_some());
    get(&app, "/api/v1/movies/popular?page=2")
        .await
        .assert_problem(503, "nothing is cached");
}

#[tokio::test]
async fn a_slow_tmdb_is_bypassed_when_a_stale_copy_exists() {
    let faults = Faults::take().await;
    let fx = Fixture::new("tmdb-slow").await;
    let (_, app) = fx.app(&[
        "--cache-details-ttl=0s",
        "--tmdb-stale-deadline=500ms",
        "--tmdb-attempt-timeout=2s",
    ]);
    assert_eq!(get(&app, "/api/v1/movies/13").await.status, StatusCode::OK);
    faults.set(json!({"latency_ms": 3000})).await;
    let started = Instant::now();
    let answer = get(&app, "/api/v1/movies/13").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.header("x-cache"), Some("stale"));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "answered in {:?}",
        started.elapsed()
    );

    // With nothing cached the full deadline applies, then 503.
    let (_, app) = fx.app(&["--tmdb-deadline=1s", "--tmdb-attempt-timeout=400ms"]);
    let started = Instant::now();
    get(&app, "/api/v1/movies/11")
        .await
        .assert_problem(503, "unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the deadline: {:?}",
        started.elapsed()
    );

    // The request time-out bounds everything, whatever the TMDB settings.
    let (_, app) = fx.app(&[
        "--request-timeout=1s",
        "--tmdb-deadline=10s",
        "--tmdb-attempt-timeout=5s",
    ]);
    let started = Instant::now();
    get(&app, "/api/v1/movies/12")
        .await
        .assert_problem(503, "took longer than 1s");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cut at the time-out: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn concurrent_misses_for_one_key_make_one_tmdb_call() {
    let faults = Faults::take().await;
    let fx = Fixture::new("tmdb-coalesce").await;
    let (_, app) = fx.app(&[]);
    // A slow TMDB keeps the first call open while the others arrive.
    faults.set(json!({"latency_ms": 400})).await;
    for (uri, kind) in [
        ("/api/v1/movies/680", "details"),
        ("/api/v1/movies/search?query=pulp", "search"),
    ] {
        let answers = futures::future::join_all((0..20).map(|_| get(&app, uri))).await;
        for answer in &answers {
            assert_eq!(answer.status, StatusCode::OK, "{uri}: {}", answer.text);
            assert_eq!(answer.body, answers[0].body, "{uri}: one answer for all");
        }
        assert_eq!(
            faults.counters().await["requests_by_kind"][kind],
            1,
            "20 concurrent misses for {uri} made one TMDB call"
        );
    }
}

/// `movieapp_tmdb_requests_total` for one endpoint and outcome, 0 if absent.
fn tmdb_requests(state: &api_worker::AppState, endpoint: &str, outcome: &str) -> u64 {
    let metrics = state.metrics.encode().expect("metrics");
    let prefix =
        format!(r#"movieapp_tmdb_requests_total{{endpoint="{endpoint}",outcome="{outcome}"}} "#);
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |n| n.parse().expect("a count"))
}

#[tokio::test]
async fn an_answer_over_the_size_cap_is_refused_before_it_is_read() {
    let faults = Faults::take().await;
    let fx = Fixture::new("tmdb-huge").await;
    let (state, app) = fx.app(&[]);
    // 100 KB of padding is under the default cap (1 MiB) and still served.
    faults.set(json!({"pad_bytes": 100_000})).await;
    let answer = get(&app, "/api/v1/movies/550").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["title"], "Fight Club");
    // 4 MiB is not: a clear 502, counted as too_large, tried once.
    faults.set(json!({"pad_bytes": 4 * 1024 * 1024})).await;
    let answer = get(&app, "/api/v1/movies/603").await;
    answer.assert_problem(502, "the movie database gave an answer we cannot use");
    assert_eq!(tmdb_requests(&state, "details", "too_large"), 1);
    assert_eq!(faults.counters().await["requests_by_kind"]["details"], 2);
    // A search page the same.
    get(&app, "/api/v1/movies/search?query=matrix")
        .await
        .assert_problem(502, "the movie database gave an answer we cannot use");
    assert_eq!(tmdb_requests(&state, "search", "too_large"), 1);
}

#[tokio::test]
async fn an_endless_answer_is_cut_at_the_size_cap() {
    let faults = Faults::take().await;
    let fx = Fixture::new("tmdb-endless").await;
    let (state, app) = fx.app(&["--tmdb-max-response-bytes=65536"]);
    faults.set(json!({"endless_body": true})).await;
    let answer = get(&app, "/api/v1/movies/680").await;
    answer.assert_problem(502, "the movie database gave an answer we cannot use");
    // Cut when the cap is passed (too_large, not a time-out), and not retried.
    assert_eq!(tmdb_requests(&state, "details", "too_large"), 1);
    assert_eq!(faults.counters().await["requests_by_kind"]["details"], 1);
}
