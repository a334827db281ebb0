//! `/api/v1/movies`: popular, search and details from TMDB through the cache.
//!
//! Lookup order: memory (fresh) → DynamoDB (fresh) → TMDB. When TMDB fails
//! and any kept copy exists, that copy is served with `X-Cache: stale`,
//! `Age` and a `Warning` header instead of an error.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::cache::{CacheKey, Entry};
use crate::client::Client;
use crate::clock::now_epoch;
use crate::error::{AppError, PathParam, QueryParams, Result};
use crate::state::AppState;
use crate::tmdb::{TmdbError, TmdbMovie, TmdbPage};

/// TMDB serves pages 1..=500 of any list.
pub const MAX_PAGE: u32 = 500;
pub const MAX_QUERY_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MovieSummary {
    pub id: u64,
    pub title: String,
    pub overview: String,
    pub release_date: Option<String>,
    pub poster_url: Option<String>,
    pub vote_average: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MovieDetails {
    #[serde(flatten)]
    pub summary: MovieSummary,
    pub runtime: Option<u32>,
    pub genres: Vec<String>,
    pub tagline: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MoviePage {
    pub page: u32,
    pub total_pages: u32,
    pub total_results: u64,
    pub results: Vec<MovieSummary>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl MovieSummary {
    pub fn from_tmdb(movie: &TmdbMovie, image_base: &str) -> Self {
        let title = non_empty(movie.title.clone())
            .or_else(|| non_empty(movie.original_title.clone()))
            .unwrap_or_else(|| format!("Movie {}", movie.id));
        Self {
            id: movie.id,
            title,
            overview: movie.overview.clone().unwrap_or_default(),
            release_date: non_empty(movie.release_date.clone()),
            poster_url: non_empty(movie.poster_path.clone()).map(|path| {
                format!(
                    "{}/{}",
                    image_base.trim_end_matches('/'),
                    path.trim_start_matches('/')
                )
            }),
            vote_average: movie
                .vote_average
                .filter(|v| v.is_finite())
                .unwrap_or_default(),
        }
    }
}

impl MovieDetails {
    pub fn from_tmdb(movie: &TmdbMovie, image_base: &str) -> Self {
        Self {
            summary: MovieSummary::from_tmdb(movie, image_base),
            runtime: movie.runtime,
            genres: movie.genres.iter().map(|g| g.name.clone()).collect(),
            tagline: non_empty(movie.tagline.clone()),
            status: non_empty(movie.status.clone()),
        }
    }
}

impl MoviePage {
    pub fn from_tmdb(page: &TmdbPage, image_base: &str) -> Self {
        Self {
            page: page.page,
            total_pages: page.total_pages.min(MAX_PAGE),
            total_results: page.total_results,
            results: page
                .results
                .iter()
                .map(|m| MovieSummary::from_tmdb(m, image_base))
                .collect(),
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/movies/popular", get(popular_handler))
        .route("/movies/search", get(search_handler))
        .route("/movies/{id}", get(details_handler))
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    page: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    query: Option<String>,
    page: Option<u32>,
}

async fn popular_handler(
    State(state): State<AppState>,
    client: Client,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response> {
    let page = valid_page(q.page)?;
    Ok(popular(&state, page, Some(client.key()))
        .await?
        .into_response())
}

async fn search_handler(
    State(state): State<AppState>,
    client: Client,
    QueryParams(q): QueryParams<SearchQuery>,
) -> Result<Response> {
    let page = valid_page(q.page)?;
    let query = normalise_query(q.query.as_deref().unwrap_or_default())?;
    Ok(search(&state, &query, page, Some(client.key()))
        .await?
        .into_response())
}

async fn details_handler(
    State(state): State<AppState>,
    client: Client,
    PathParam(id): PathParam<String>,
) -> Result<Response> {
    let id = valid_movie_id(&id)?;
    Ok(details(&state, id, Some(client.key()))
        .await?
        .into_response())
}

pub fn valid_page(page: Option<u32>) -> Result<u32> {
    match page.unwrap_or(1) {
        page @ 1..=MAX_PAGE => Ok(page),
        page => Err(AppError::BadRequest(format!(
            "page must be between 1 and {MAX_PAGE}, got {page}"
        ))),
    }
}

/// TMDB ids are positive 32-bit integers.
pub fn valid_movie_id(id: &str) -> Result<u64> {
    match id.parse::<u64>() {
        Ok(n @ 1..=0x7fff_ffff) => Ok(n),
        _ => Err(AppError::BadRequest(format!(
            "movie id must be a positive integer, got {id:?}"
        ))),
    }
}

/// Trims, lower-cases and collapses whitespace, so equal searches share a
/// cache entry; rejects empty and overlong queries.
pub fn normalise_query(query: &str) -> Result<String> {
    let normalised = query
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    if normalised.is_empty() {
        return Err(AppError::BadRequest(
            "query is required and must not be blank".into(),
        ));
    }
    if normalised.chars().count() > MAX_QUERY_CHARS {
        return Err(AppError::BadRequest(format!(
            "query must be at most {MAX_QUERY_CHARS} characters"
        )));
    }
    if normalised.chars().any(char::is_control) {
        return Err(AppError::BadRequest(
            "query must not contain control characters".into(),
        ));
    }
    Ok(normalised)
}

/// Where a served body came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Memory,
    Dynamo,
    Tmdb,
    /// TMDB failed; this is an older copy.
    Stale,
}

#[derive(Debug, Clone)]
pub struct Served {
    pub body: Bytes,
    pub source: Source,
    pub age: u64,
}

impl IntoResponse for Served {
    fn into_response(self) -> Response {
        let cache = match self.source {
            Source::Memory | Source::Dynamo => "hit",
            Source::Tmdb => "miss",
            Source::Stale => "stale",
        };
        let mut response = (StatusCode::OK, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert("x-cache", HeaderValue::from_static(cache));
        if self.source == Source::Stale {
            headers.insert(header::AGE, HeaderValue::from(self.age));
            headers.insert(
                header::WARNING,
                HeaderValue::from_static("110 - \"Response is Stale\""),
            );
        }
        response
    }
}

/// `client` (the key of per-client limits) is who would cause a TMDB
/// call; `None` for jobs, which are not limited per client.
pub async fn popular(state: &AppState, page: u32, client: Option<IpAddr>) -> Result<Served> {
    let image_base = state.settings.tmdb.tmdb_image_base_url.clone();
    cached(
        state,
        client,
        CacheKey::popular(page),
        "popular movies",
        |deadline| async move {
            let page = state.tmdb.popular(page, deadline).await?;
            Ok(MoviePage::from_tmdb(&page, &image_base))
        },
    )
    .await
}

pub async fn search(
    state: &AppState,
    query: &str,
    page: u32,
    client: Option<IpAddr>,
) -> Result<Served> {
    let image_base = state.settings.tmdb.tmdb_image_base_url.clone();
    cached(
        state,
        client,
        CacheKey::search(query, page),
        "search results",
        |deadline| async move {
            let page = state.tmdb.search(query, page, deadline).await?;
            Ok(MoviePage::from_tmdb(&page, &image_base))
        },
    )
    .await
}

pub async fn details(state: &AppState, id: u64, client: Option<IpAddr>) -> Result<Served> {
    let image_base = state.settings.tmdb.tmdb_image_base_url.clone();
    let result = cached(
        state,
        client,
        CacheKey::movie(id),
        "movie details",
        |deadline| async move {
            let movie = state.tmdb.movie(id, deadline).await?;
            Ok(MovieDetails::from_tmdb(&movie, &image_base))
        },
    )
    .await;
    match result {
        Err(AppError::NotFound(_)) => Err(AppError::NotFound(format!("movie {id} does not exist"))),
        other => other,
    }
}

/// Fetches details straight from TMDB and stores them: the refresh job's
/// view, which must not be answered from the cache it refreshes.
pub async fn refetch_details(state: &AppState, id: u64) -> Result<Option<MovieDetails>, TmdbError> {
    let deadline = Instant::now() + state.settings.tmdb.tmdb_deadline;
    let movie = match state.tmdb.movie(id, deadline).await {
        Ok(movie) => movie,
        Err(TmdbError::NotFound) => return Ok(None),
        Err(error) => return Err(error),
    };
    let details = MovieDetails::from_tmdb(&movie, &state.settings.tmdb.tmdb_image_base_url);
    store(state, &CacheKey::movie(id), &details).await;
    Ok(Some(details))
}

fn entry_of<T: Serialize>(value: &T) -> Entry {
    // Our own types always serialise.
    Entry {
        body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
        fetched_at: now_epoch(),
    }
}

async fn store<T: Serialize>(state: &AppState, key: &CacheKey, value: &T) -> Entry {
    let entry = entry_of(value);
    if let Err(error) = state.cache.store(key, entry.clone()).await {
        // A cache that cannot be written only costs a later TMDB call.
        tracing::warn!(key = %key.key, error = format!("{error:#}"), "could not write the movies cache");
    }
    entry
}

/// Why a lookup past memory found no fresh answer (shared by every caller
/// that waited for the same lookup).
#[derive(Debug)]
enum Miss {
    NotFound,
    /// The client has used up its share of TMDB calls.
    Limited {
        retry_after: Duration,
        stale: Option<Entry>,
    },
    Failed {
        error: TmdbError,
        stale: Option<Entry>,
    },
}

/// The lookup behind a memory miss: DynamoDB (fresh), then TMDB, which is
/// given less time when a stale copy could be served instead.
async fn lookup<T, Fut>(
    state: &AppState,
    client: Option<IpAddr>,
    key: &CacheKey,
    fetch: impl FnOnce(Instant) -> Fut,
    source: &mut Source,
) -> Result<Entry, Miss>
where
    T: Serialize,
    Fut: Future<Output = Result<T, TmdbError>>,
{
    let now = now_epoch();
    let stale = match state.cache.stored(key).await {
        Ok(Some(entry)) if state.cache.is_fresh(key, &entry, now) => {
            *source = Source::Dynamo;
            return Ok(entry);
        }
        Ok(stale) => stale,
        Err(error) => {
            tracing::warn!(key = %key.key, error = format!("{error:#}"), "could not read the movies cache");
            None
        }
    };
    if let Some(client) = client
        && let Err(retry_after) = state.tmdb_clients.take(&client, std::time::Instant::now())
    {
        return Err(Miss::Limited { retry_after, stale });
    }
    let tmdb = &state.settings.tmdb;
    let budget = if stale.is_some() {
        tmdb.tmdb_stale_deadline
    } else {
        tmdb.tmdb_deadline
    };
    match fetch(Instant::now() + budget).await {
        Ok(value) => {
            *source = Source::Tmdb;
            let entry = entry_of(&value);
            if let Err(error) = state.cache.persist(key, &entry).await {
                tracing::warn!(key = %key.key, error = format!("{error:#}"), "could not write the movies cache");
            }
            Ok(entry)
        }
        Err(TmdbError::NotFound) => Err(Miss::NotFound),
        Err(error) => Err(Miss::Failed { error, stale }),
    }
}

async fn cached<T, F, Fut>(
    state: &AppState,
    client: Option<IpAddr>,
    key: CacheKey,
    what: &str,
    fetch: F,
) -> Result<Served>
where
    T: Serialize,
    F: FnOnce(Instant) -> Fut,
    Fut: Future<Output = Result<T, TmdbError>>,
{
    let kind = key.kind.label();
    if let Some(entry) = state.cache.memory(&key).await {
        state.metrics.cache_lookup(kind, "hit");
        return Ok(Served {
            age: entry.age(now_epoch()).as_secs(),
            body: entry.body,
            source: Source::Memory,
        });
    }
    // Answered by another request's lookup unless ours runs.
    let mut source = Source::Memory;
    let loaded = state
        .cache
        .load(&key, lookup(state, client, &key, fetch, &mut source))
        .await;
    let now = now_epoch();
    let miss = match loaded {
        Ok((entry, loaded_here)) => {
            let result = match (loaded_here, source) {
                (false, _) => "coalesced",
                (true, Source::Dynamo) => "hit_dynamodb",
                (true, _) => "miss",
            };
            state.metrics.cache_lookup(kind, result);
            return Ok(Served {
                age: entry.age(now).as_secs(),
                body: entry.body,
                source,
            });
        }
        Err(miss) => miss,
    };
    match miss.as_ref() {
        Miss::NotFound => {
            state.metrics.cache_lookup(kind, "miss");
            Err(AppError::NotFound(format!(
                "TMDB has no {what} for this request"
            )))
        }
        Miss::Limited {
            stale: Some(entry), ..
        }
        | Miss::Failed {
            stale: Some(entry), ..
        } => {
            state.metrics.cache_lookup(kind, "stale");
            tracing::warn!(key = %key.key, "no fresh answer; serving a stale copy");
            Ok(Served {
                body: entry.body.clone(),
                source: Source::Stale,
                age: entry.age(now).as_secs(),
            })
        }
        Miss::Limited {
            retry_after,
            stale: None,
        } => {
            state.metrics.cache_lookup(kind, "limited");
            Err(AppError::TooManyRequests {
                detail: format!(
                    "too many requests for {what} that are not cached from this address; try again later"
                ),
                retry_after: *retry_after,
            })
        }
        Miss::Failed { error, stale: None } => {
            state.metrics.cache_lookup(kind, "miss");
            tracing::warn!(key = %key.key, %error, "TMDB failed and nothing is cached");
            Err(upstream_error(error.clone(), what))
        }
    }
}

/// The client's view of a TMDB failure with nothing cached to fall back on:
/// TMDB's own words (and whether our key was refused) stay in the log.
fn upstream_error(error: TmdbError, what: &str) -> AppError {
    match error {
        TmdbError::Unauthorized(_)
        | TmdbError::Rejected { .. }
        | TmdbError::Malformed(_)
        | TmdbError::TooLarge { .. } => AppError::BadGateway(format!(
            "cannot load {what}: the movie database gave an answer we cannot use"
        )),
        TmdbError::RateLimited { retry_after } => AppError::Unavailable {
            detail: format!(
                "cannot load {what}: the movie database is busy and nothing is cached; try again later"
            ),
            retry_after: retry_after.or(Some(Duration::from_secs(1))),
        },
        TmdbError::Unavailable(_) | TmdbError::NotFound => AppError::Unavailable {
            detail: format!(
                "cannot load {what}: the movie database is unavailable and nothing is cached; try again later"
            ),
            retry_after: Some(Duration::from_secs(5)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_bounded() {
        assert_eq!(valid_page(None).ok(), Some(1));
        assert_eq!(valid_page(Some(500)).ok(), Some(500));
        assert!(valid_page(Some(0)).is_err());
        assert!(valid_page(Some(501)).is_err());
    }

    #[test]
    fn movie_ids_are_positive_32_bit_integers() {
        assert_eq!(valid_movie_id("550").ok(), Some(550));
        for bad in ["0", "-1", "abc", "1.5", "4294967296", ""] {
            assert!(valid_movie_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn queries_are_normalised_for_the_cache() {
        assert_eq!(
            normalise_query("  Fight   CLUB ").ok().as_deref(),
            Some("fight club")
        );
        assert!(normalise_query("   ").is_err());
        assert!(normalise_query(&"x".repeat(101)).is_err());
    }

    #[test]
    fn tmdb_movies_become_our_shape() {
        let movie: TmdbMovie = serde_json::from_str(
            r#"{"id":550,"title":"","original_title":"Fight Club","poster_path":"/p.jpg","release_date":"","genres":[{"name":"Drama"}]}"#,
        )
        .expect("parses");
        let details = MovieDetails::from_tmdb(&movie, "https://img/t/p/w342/");
        assert_eq!(details.summary.title, "Fight Club");
        assert_eq!(
            details.summary.poster_url.as_deref(),
            Some("https://img/t/p/w342/p.jpg")
        );
        assert_eq!(details.summary.release_date, None);
        let json = serde_json::to_value(&details).expect("serialises");
        assert_eq!(json["genres"][0], "Drama");
        assert_eq!(json["posterUrl"], "https://img/t/p/w342/p.jpg");
    }
}
