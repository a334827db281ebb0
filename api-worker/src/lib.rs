//! `api-worker`: the movie service. One [`AppState`], one [`app`] router
//! and one job handler ([`jobs::handle_message`]) serve every runtime: the
//! `serve` and `worker` subcommands here, and the Lambda functions
//! (module `lambda`, feature `lambda`).

pub mod accounts;
pub mod auth;
pub mod cache;
pub mod client;
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
pub mod readiness;
pub mod server;
pub mod state;
pub mod tmdb;
pub mod tokens;
pub mod turns;
pub mod watchlist;
pub mod web;
pub mod worker;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use tower_http::catch_panic::CatchPanicLayer;

pub use crate::accounts::Accounts;
pub use crate::error::{AppError, Result};
pub use crate::state::AppState;

/// What a process serving HTTP (`serve`, the Lambda HTTP function) runs
/// on: the shared state and the accounts over its users table.
pub fn serving(
    settings: config::Settings,
    auth: config::AuthSettings,
    http: config::HttpSettings,
    aws: &aws_config::SdkConfig,
) -> anyhow::Result<(AppState, Accounts)> {
    let state = AppState::new(settings, http, aws)?;
    let accounts = Accounts::new(
        auth,
        state.dynamo.clone(),
        state.settings.users_table.clone(),
        state.settings.movies_table.clone(),
    )?;
    Ok((state, accounts))
}

/// The admin listener's surface: `/metrics`, the detailed `/readyz` and
/// `/healthz`.
pub fn admin_app(state: AppState) -> Router {
    Router::new()
        .merge(ops::admin_router())
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(from_fn_with_state(state.clone(), http::timeout))
        .layer(CatchPanicLayer::custom(http::panic_response))
        .layer(from_fn_with_state(state.clone(), http::observe))
        .with_state(state)
}

/// The public HTTP surface: API, web page, `/healthz`, a `/readyz` that
/// reveals nothing and the OpenAPI document. The
/// account and watchlist routes are mounted only with `accounts`.
pub fn app(state: AppState, accounts: Option<Accounts>) -> Router {
    let mut api = Router::new().merge(movies::router());
    if let Some(accounts) = accounts {
        let watchlist = watchlist::WatchlistState {
            app: state.clone(),
            auth: accounts.auth.clone(),
            turns: Default::default(),
        };
        api = api
            .merge(accounts::router().with_state(accounts))
            .merge(watchlist::router().with_state(watchlist));
    }
    Router::new()
        .nest("/api/v1", api)
        .merge(ops::public_router())
        .merge(web::router())
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.http.body_limit))
        .layer(from_fn_with_state(state.clone(), http::timeout))
        .layer(CatchPanicLayer::custom(http::panic_response))
        .layer(from_fn_with_state(state.client.clone(), client::resolve))
        .layer(from_fn_with_state(state.clone(), http::observe))
        .with_state(state)
}
