//! `/api/v1/me/watchlist`: the caller's own watchlist, and nobody else's.
//!
//! Every key is built from the token's subject, never from the request, so
//! no request can name another user's items. Each entry keeps a snapshot of
//! the movie (the `movie` attribute, our details JSON): listing needs no
//! TMDB call, and the refresh job compares it with TMDB to notify watchers.
//!
//! A list is read in pages in movie id order (`limit`, and the opaque
//! `cursor` of the previous page), and holds at most
//! `--watchlist-max-entries` movies: a count item at movie id 0 in the
//! user's partition is raised in the same transaction that adds an entry,
//! on the condition that it is below the cap, so concurrent adds on any
//! replica cannot pass it. Within one process, changes of one list take
//! turns (`Turns`).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};
use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use movieapp_model::WATCHLISTS;
use serde::{Deserialize, Serialize};

use crate::auth::{Authenticator, CurrentUser};
use crate::client::Client;
use crate::clock::{now_epoch, rfc3339};
use crate::error::{AppError, PathParam, QueryParams, Result};
use crate::movies::{self, MovieDetails, MovieSummary};
use crate::state::AppState;
use crate::turns::Turns;

pub const MOVIE: &str = "movie";
pub const ADDED_AT: &str = "addedAt";
/// The count item's attribute: how many entries the list holds.
const COUNT: &str = "entries";
/// The movie id of the count item; no TMDB movie has id 0.
const COUNT_ITEM_ID: u64 = 0;
/// Entries per page when the request names no `limit`, and the most it may.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 100;
/// A cursor is `m:<the last movie id of the previous page>`, base64url.
const CURSOR_PREFIX: &str = "m:";

fn user_attr() -> &'static str {
    WATCHLISTS.partition_key.name
}

fn movie_attr() -> &'static str {
    WATCHLISTS.sort_key.map_or("movieId", |k| k.name)
}

/// The watchlist's state: the shared one and who may call.
#[derive(Debug, Clone)]
pub struct WatchlistState {
    pub app: AppState,
    pub auth: Authenticator,
    /// Changes of one user's list in this process take turns.
    pub turns: Arc<Turns>,
}

impl FromRef<WatchlistState> for Arc<Turns> {
    fn from_ref(state: &WatchlistState) -> Self {
        state.turns.clone()
    }
}

impl FromRef<WatchlistState> for AppState {
    fn from_ref(state: &WatchlistState) -> Self {
        state.app.clone()
    }
}

impl FromRef<WatchlistState> for Authenticator {
    fn from_ref(state: &WatchlistState) -> Self {
        state.auth.clone()
    }
}

pub fn router() -> Router<WatchlistState> {
    Router::new()
        .route("/me/watchlist", get(list))
        .route("/me/watchlist/{movie_id}", put(add).delete(remove))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchlistItem {
    pub movie_id: u64,
    pub added_at: String,
    pub movie: MovieSummary,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Watchlist {
    items: Vec<WatchlistItem>,
    /// Where the next page starts; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

fn valid_limit(limit: Option<&str>) -> Result<u32> {
    let Some(text) = limit else {
        return Ok(DEFAULT_PAGE);
    };
    match text.parse::<u32>() {
        Ok(limit @ 1..=MAX_PAGE) => Ok(limit),
        _ => Err(AppError::BadRequest(format!(
            "limit must be a whole number between 1 and {MAX_PAGE}, got {text:?}"
        ))),
    }
}

fn encode_cursor(last_movie_id: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{last_movie_id}"))
}

/// The movie id after which the page starts (0: the first page).
fn decode_cursor(cursor: Option<&str>) -> Result<u64> {
    let Some(cursor) = cursor else {
        return Ok(COUNT_ITEM_ID);
    };
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(CURSOR_PREFIX)?.parse::<u64>().ok())
        .filter(|id| *id != COUNT_ITEM_ID)
        .ok_or_else(|| {
            AppError::BadRequest(
                "cursor is not one this API gave out: use the nextCursor of the previous page, or none for the first page"
                    .into(),
            )
        })
}

type Item = HashMap<String, AttributeValue>;

fn item_from(item: &Item) -> Option<(u64, WatchlistItem)> {
    let movie_id = item.get(movie_attr())?.as_n().ok()?.parse().ok()?;
    let added_at: u64 = item
        .get(ADDED_AT)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let details: MovieDetails = serde_json::from_str(item.get(MOVIE)?.as_s().ok()?).ok()?;
    Some((
        added_at,
        WatchlistItem {
            movie_id,
            added_at: rfc3339(added_at),
            movie: details.summary,
        },
    ))
}

/// One page of the caller's list: at most `limit` entries (one DynamoDB
/// query of `limit + 1` items, the extra one only telling that more follow).
async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<axum::Json<Watchlist>> {
    let limit = valid_limit(query.limit.as_deref())?;
    let after = decode_cursor(query.cursor.as_deref())?;
    let output = state
        .dynamo
        .query()
        .table_name(&state.settings.watchlists_table)
        .key_condition_expression("#user = :user AND #movie > :after")
        .expression_attribute_names("#user", user_attr())
        .expression_attribute_names("#movie", movie_attr())
        .expression_attribute_values(":user", AttributeValue::S(user.id.clone()))
        .expression_attribute_values(":after", AttributeValue::N(after.to_string()))
        .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
        .send()
        .await
        .context("reading a watchlist")?;
    let mut items: Vec<WatchlistItem> = output
        .items()
        .iter()
        .filter_map(item_from)
        .map(|(_, item)| item)
        .collect();
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|item| encode_cursor(item.movie_id))
    } else {
        None
    };
    Ok(axum::Json(Watchlist { items, next_cursor }))
}

/// The count item's key in `user_id`'s partition.
fn count_key(user_id: &str) -> [(String, AttributeValue); 2] {
    [
        (
            user_attr().to_owned(),
            AttributeValue::S(user_id.to_owned()),
        ),
        (
            movie_attr().to_owned(),
            AttributeValue::N(COUNT_ITEM_ID.to_string()),
        ),
    ]
}

/// Why adding an entry did not happen.
enum AddRefused {
    Listed(Option<Item>),
    Full,
}

async fn add(
    State(state): State<AppState>,
    State(turns): State<Arc<Turns>>,
    user: CurrentUser,
    client: Client,
    PathParam(id): PathParam<String>,
) -> Result<Response> {
    let movie_id = movies::valid_movie_id(&id)?;
    // The movie must exist; its details (cached) become the entry's snapshot.
    let served = movies::details(&state, movie_id, Some(client.key())).await?;
    let details: MovieDetails =
        serde_json::from_slice(&served.body).context("reading cached movie details")?;
    let now = now_epoch();
    let snapshot = String::from_utf8_lossy(&served.body).into_owned();
    let fresh = || WatchlistItem {
        movie_id,
        added_at: rfc3339(now),
        movie: details.summary.clone(),
    };
    let inserted = {
        let _turn = turns.take(&user.id).await;
        insert(&state, &user.id, movie_id, now, snapshot).await?
    };
    match inserted {
        Ok(()) => Ok((StatusCode::CREATED, axum::Json(fresh())).into_response()),
        // Already listed: adding again is a no-op that shows the entry.
        Err(AddRefused::Listed(existing)) => {
            let item = existing
                .as_ref()
                .and_then(item_from)
                .map_or_else(fresh, |(_, item)| item);
            Ok((StatusCode::OK, axum::Json(item)).into_response())
        }
        Err(AddRefused::Full) => Err(AppError::Conflict(format!(
            "your watchlist holds at most {} movies; remove one to add another",
            state.http.watchlist_max_entries
        ))),
    }
}

/// Puts the entry and raises the count in one transaction: the entry must
/// be new and the count below the cap. An error is DynamoDB's own failure.
async fn insert(
    state: &AppState,
    user_id: &str,
    movie_id: u64,
    now: u64,
    snapshot: String,
) -> anyhow::Result<std::result::Result<(), AddRefused>> {
    let table = &state.settings.watchlists_table;
    let put = Put::builder()
        .table_name(table)
        .item(user_attr(), AttributeValue::S(user_id.to_owned()))
        .item(movie_attr(), AttributeValue::N(movie_id.to_string()))
        .item(ADDED_AT, AttributeValue::N(now.to_string()))
        .item(MOVIE, AttributeValue::S(snapshot))
        .condition_expression("attribute_not_exists(#movie)")
        .expression_attribute_names("#movie", movie_attr())
        .return_values_on_condition_check_failure(
            aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
        )
        .build()
        .context("building a watchlist entry")?;
    let count = Update::builder()
        .table_name(table)
        .set_key(Some(count_key(user_id).into_iter().collect()))
        .update_expression("ADD #count :one")
        .condition_expression("attribute_not_exists(#count) OR #count < :cap")
        .expression_attribute_names("#count", COUNT)
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .expression_attribute_values(
            ":cap",
            AttributeValue::N(state.http.watchlist_max_entries.to_string()),
        )
        .build()
        .context("building a watchlist count")?;
    let result = state
        .dynamo
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().put(put).build())
        .transact_items(TransactWriteItem::builder().update(count).build())
        .send()
        .await;
    let error = match result {
        Ok(_) => return Ok(Ok(())),
        Err(error) => error,
    };
    let reasons = match error.as_service_error() {
        Some(
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                canceled,
            ),
        ) => canceled.cancellation_reasons().to_vec(),
        _ => return Err(anyhow::Error::new(error).context("adding to a watchlist")),
    };
    let failed = |i: usize| {
        reasons
            .get(i)
            .and_then(|r| r.code())
            .is_some_and(|code| code == "ConditionalCheckFailed")
    };
    if failed(0) {
        let existing = reasons.first().and_then(|r| r.item.clone());
        return Ok(Err(AddRefused::Listed(existing)));
    }
    if failed(1) {
        return Ok(Err(AddRefused::Full));
    }
    Err(anyhow::Error::new(error).context("adding to a watchlist"))
}

async fn remove(
    State(state): State<AppState>,
    State(turns): State<Arc<Turns>>,
    user: CurrentUser,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode> {
    let movie_id = movies::valid_movie_id(&id)?;
    let _turn = turns.take(&user.id).await;
    let output = state
        .dynamo
        .delete_item()
        .table_name(&state.settings.watchlists_table)
        .key(user_attr(), AttributeValue::S(user.id.clone()))
        .key(movie_attr(), AttributeValue::N(movie_id.to_string()))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .context("removing from a watchlist")?;
    if output.attributes.is_none_or(|a| a.is_empty()) {
        return Err(AppError::NotFound(format!(
            "movie {movie_id} is not on your watchlist"
        )));
    }
    // Lower the count. Should this fail after the delete, the count stays
    // one too high: the cap errs towards fewer entries, never more.
    let lowered = state
        .dynamo
        .update_item()
        .table_name(&state.settings.watchlists_table)
        .set_key(Some(count_key(&user.id).into_iter().collect()))
        .update_expression("ADD #count :minus_one")
        .condition_expression("#count > :zero")
        .expression_attribute_names("#count", COUNT)
        .expression_attribute_values(":minus_one", AttributeValue::N("-1".into()))
        .expression_attribute_values(":zero", AttributeValue::N("0".into()))
        .send()
        .await;
    if let Err(error) = lowered
        && !error
            .as_service_error()
            .is_some_and(|e| e.is_conditional_check_failed_exception())
    {
        tracing::warn!(error = %anyhow::Error::new(error), "lowering a watchlist count");
    }
    Ok(StatusCode::NO_CONTENT)
}
