//! `GET /metrics` and the database check `GET /dbz` on the internal metrics port.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Reply, http::header};

use crate::state::AppState;
use crate::state::with_state;

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|state: AppState| {
            warp::reply::with_header(
                crate::metrics::render(&state.pool, state.greeting.database_connected()),
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .into_response()
        })
        .or(super::health::database_route(state))
        .unify()
        .recover(crate::error::handle_rejection)
        .unify()
        .boxed()
}
