//! `api-worker`: the movie service. One [`AppState`], one [`app`] router
//! and one job handler ([`jobs::handle_message`]) serve every runtime: the
//! `serve` and `worker` subcommands here, and the Lambda functions
//! (module `lambda`, feature `lambda`).

pub mod accounts;
pub mod cache;
pub mod clock;
pub mod config;
pub mod error;
pub mod http;
pub mod jobs;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod metrics;
pub mod movies;
pub mod notify;
pub mod ops;
pub mod ratelimit;
pub mod server;
pub mod state;
pub mod tmdb;
pub mod tokens;
pub mod watchlist;
pub mod web;
pub mod worker;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use tower_http::catch_panic::CatchPanicLayer;

pub use crate::error::{AppError, Result};
pub use crate::state::AppState;

/// The whole HTTP surface: API, operational endpoints and web page.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(movies::router())
        .merge(accounts::router())
        .merge(watchlist::router());
    Router::new()
        .nest("/api/v1", api)
        .merge(ops::router())
        .merge(web::router())
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.http.body_limit))
        .layer(from_fn_with_state(state.clone(), http::timeout))
        .layer(CatchPanicLayer::custom(http::panic_response))
        .layer(from_fn_with_state(state.clone(), http::observe))
        .with_state(state)
}
