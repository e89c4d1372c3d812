//! The public routes (port 8080) and the metrics route (port 9090).

pub mod favicon;
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
        .or(crate::api::routes(state.api.clone()))
        .unify()
        .or(favicon::route())
        .unify()
        .or(crate::admin::routes(state.admin.clone()))
        .unify()
        .recover(crate::error::handle_rejection)
        .unify()
        .boxed()
}

/// The routes whose handlers only read memory (see `server::Observe`): `GET /`.
pub const FROM_MEMORY: &[&str] = &["/"];

/// A bounded set of metric labels: unknown paths must not create new time series.
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        p if p.starts_with("/api/") => "/api",
        "/favicon.ico" => "/favicon.ico",
        p if p.starts_with("/admin/static/") => "/admin/static",
        p if p == "/admin" || p.starts_with("/admin/") => "/admin",
        _ => "unmatched",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_bounded() {
        assert_eq!(route_label("/"), "/");
        assert_eq!(route_label("/admin/users/3/"), "/admin");
        assert_eq!(route_label("/admin/static/admin.css"), "/admin/static");
        assert_eq!(route_label("/api/v1/greetings/7"), "/api");
        assert_eq!(route_label("/wp-login.php"), "unmatched");
        // Only GET / skips the request timeout; a route that reads the database must not.
        assert!(FROM_MEMORY.contains(&route_label("/")));
        for path in ["/admin/", "/api/v1/greetings", "/readyz", "/nowhere"] {
            assert!(!FROM_MEMORY.contains(&route_label(path)), "{path}");
        }
    }
}
