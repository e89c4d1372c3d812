//! Liveness (`/healthz`) and readiness (`/readyz`).

use std::time::Duration;

use http::StatusCode;
use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{get_or_head, with_state};
use crate::state::AppState;

/// Readiness must answer well within the probe's own timeout.
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
        .then(readyz);
    healthz.or(readyz).unify().boxed()
}

async fn readyz(state: AppState) -> Response {
    match readiness_problem(&state).await {
        None => health(StatusCode::OK, None),
        Some(reason) => health(StatusCode::SERVICE_UNAVAILABLE, Some(reason)),
    }
}

/// Why this replica should not receive traffic, if it should not.
async fn readiness_problem(state: &AppState) -> Option<String> {
    if state.is_draining() {
        return Some("shutting down".into());
    }
    if state.greeting.get().is_none() {
        return Some("greeting not loaded yet".into());
    }
    let check = async {
        let client = state.pool.get().await.map_err(|e| {
            tracing::debug!(error = %e, "readiness: no database connection");
            "database unavailable".to_owned()
        })?;
        let missing = crate::migrations::missing(&client).await.map_err(|e| {
            tracing::debug!(error = %e, "readiness: schema query failed");
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
