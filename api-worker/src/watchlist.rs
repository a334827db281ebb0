//! `/api/v1/me/watchlist`: the caller's own watchlist, and nobody else's.
//!
//! Every key is built from the token's subject, never from the request, so
//! no request can name another user's items. Each entry keeps a snapshot of
//! the movie (the `movie` attribute, our details JSON): listing needs no
//! TMDB call, and the refresh job compares it with TMDB to notify watchers.

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use movieapp_model::WATCHLISTS;
use serde::Serialize;

use crate::auth::{Authenticator, CurrentUser};
use crate::client::Client;
use crate::clock::{now_epoch, rfc3339};
use crate::error::{AppError, PathParam, Result};
use crate::movies::{self, MovieDetails, MovieSummary};
use crate::state::AppState;

pub const MOVIE: &str = "movie";
pub const ADDED_AT: &str = "addedAt";

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
struct Watchlist {
    items: Vec<WatchlistItem>,
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

async fn list(State(state): State<AppState>, user: CurrentUser) -> Result<axum::Json<Watchlist>> {
    let mut entries = Vec::new();
    let mut start = None;
    loop {
        let output = state
            .dynamo
            .query()
            .table_name(&state.settings.watchlists_table)
            .key_condition_expression("#user = :user")
            .expression_attribute_names("#user", user_attr())
            .expression_attribute_values(":user", AttributeValue::S(user.id.clone()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("reading a watchlist")?;
        entries.extend(output.items().iter().filter_map(item_from));
        start = output.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    // Newest first; ties by id so the order is stable.
    entries.sort_by(|(a_at, a), (b_at, b)| b_at.cmp(a_at).then(a.movie_id.cmp(&b.movie_id)));
    Ok(axum::Json(Watchlist {
        items: entries.into_iter().map(|(_, item)| item).collect(),
    }))
}

async fn add(
    State(state): State<AppState>,
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
    let result = state
        .dynamo
        .put_item()
        .table_name(&state.settings.watchlists_table)
        .item(user_attr(), AttributeValue::S(user.id.clone()))
        .item(movie_attr(), AttributeValue::N(movie_id.to_string()))
        .item(ADDED_AT, AttributeValue::N(now.to_string()))
        .item(
            MOVIE,
            AttributeValue::S(String::from_utf8_lossy(&served.body).into_owned()),
        )
        .condition_expression("attribute_not_exists(#movie)")
        .expression_attribute_names("#movie", movie_attr())
        .return_values_on_condition_check_failure(
            aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
        )
        .send()
        .await;
    match result {
        Ok(_) => {
            let item = WatchlistItem {
                movie_id,
                added_at: rfc3339(now),
                movie: details.summary,
            };
            Ok((StatusCode::CREATED, axum::Json(item)).into_response())
        }
        Err(error) => {
            if let Some(existing) = error
                .as_service_error()
                .and_then(|e| match e {
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => {
                        Some(c.item.clone())
                    }
                    _ => None,
                })
            {
                // Already listed: adding again is a no-op that shows the entry.
                let item = existing.as_ref().and_then(item_from).map(|(_, item)| item).unwrap_or(WatchlistItem {
                    movie_id,
                    added_at: rfc3339(now),
                    movie: details.summary,
                });
                return Ok((StatusCode::OK, axum::Json(item)).into_response());
            }
            Err(AppError::internal(
                anyhow::Error::new(error).context("adding to a watchlist"),
            ))
        }
    }
}

async fn remove(
    State(state): State<AppState>,
    user: CurrentUser,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode> {
    let movie_id = movies::valid_movie_id(&id)?;
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
    Ok(StatusCode::NO_CONTENT)
}
