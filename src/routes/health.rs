//! Liveness (`/healthz`) and readiness (`/readyz`) on the public port, and the database
//! check (`/dbz`) on the internal metrics port.
//!
//! Readiness means "this pod can serve": the greeting has been loaded once and the pod
//! is not draining. It never touches the database: `GET /` is served from memory, so a
//! PostgreSQL outage must not take every replica out of the Service at once. Operators
//! see the database through `greeter_database_up` and `/dbz` on port 9090 instead.

use std::time::Duration;

use http::StatusCode;
use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::get_or_head;
use crate::state::AppState;
use crate::state::with_state;

/// The database check must answer well within a scraper's or a person's patience.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize)]
struct Health<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

fn health(status: StatusCode, reason: Option<String>) -> Response {
    let word = if status.is_success() {
        "ok"
    } else {
        "unavailable"
    };
    warp::reply::with_status(
        warp::reply::json(&Health {
            status: word,
            reason,
        }),
        status,
    )
    .into_response()
}

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    // Liveness: the process serves HTTP. No database access, so a database outage
    // never makes Kubernetes restart healthy pods.
    let healthz = warp::path!("healthz")
        .and(get_or_head())
        .map(|| health(StatusCode::OK, None));
    let readyz = warp::path!("readyz")
        .and(get_or_head())
        .and(with_state(state))
        .map(|state: AppState| match readiness_problem(&state) {
            None => health(StatusCode::OK, None),
            Some(reason) => health(StatusCode::SERVICE_UNAVAILABLE, Some(reason.into())),
        });
    healthz.or(readyz).unify().boxed()
}

/// Why this replica should not receive traffic, if it should not. Public, so the
/// reasons are fixed words: no schema or migration names.
fn readiness_problem(state: &AppState) -> Option<&'static str> {
    if state.is_draining() {
        return Some("shutting down");
    }
    if state.greeting.get().is_none() {
        return Some("greeting not loaded yet");
    }
    None
}

/// `GET /dbz` for the internal port: a real query against PostgreSQL, and whether every
/// migration this binary embeds is applied. No probe uses it.
pub fn database_route(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("dbz")
        .and(get_or_head())
        .and(with_state(state))
        .then(|state: AppState| async move {
            match database_problem(&state).await {
                None => health(StatusCode::OK, None),
                Some(reason) => health(StatusCode::SERVICE_UNAVAILABLE, Some(reason)),
            }
        })
        .boxed()
}

async fn database_problem(state: &AppState) -> Option<String> {
    let check = async {
        let client = state.pool.get().await.map_err(|e| {
            tracing::debug!(error = %e, "database check: no connection");
            "database unavailable".to_owned()
        })?;
        let missing = crate::migrations::missing(&client).await.map_err(|e| {
            tracing::debug!(error = %e, "database check: schema query failed");
            "database unavailable".to_owned()
        })?;
        match missing.first() {
            None => Ok(()),
            Some((version, name)) => Err(format!("migration V{version}__{name} not applied")),
        }
    };
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(())) => None,
        Ok(Err(reason)) => Some(reason),
        Err(_) => Some("database check timed out".into()),
    }
}
