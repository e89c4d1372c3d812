//! The public routes (port 8080) and the metrics route (port 9090).

pub mod greeting;
pub mod health;
pub mod metrics;

use std::sync::Arc;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::error::FaultResponder;
use crate::state::AppState;

/// GET or HEAD (hyper drops the body of a HEAD response).
pub fn get_or_head() -> BoxedFilter<()> {
    warp::get().or(warp::head()).unify().boxed()
}

/// What a panicked or timed-out request on `LISTEN_ADDR` gets: the admin's HTML error
/// page under `/admin`, JSON elsewhere.
pub fn public_faults(state: AppState) -> FaultResponder {
    Arc::new(move |path, fault| {
        if path == "/admin" || path.starts_with("/admin/") {
            crate::admin::error_response(&state.admin, fault.failure())
        } else {
            fault.json()
        }
    })
}

/// Everything served on `LISTEN_ADDR`.
pub fn public(state: AppState) -> BoxedFilter<(Response,)> {
    greeting::route(state.clone())
        .or(health::routes(state.clone()))
        .unify()
        .or(crate::admin::routes(state.admin.clone()))
        .unify()
        .recover(crate::error::handle_rejection)
        .unify()
        .boxed()
}
