//! `GET /`: the greeting, from memory.

use std::sync::Arc;

use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::get_or_head;
use crate::error::ApiError;
use crate::greeting::GreetingCache;
use crate::state::AppState;
use crate::timestamp::Timestamp;

#[derive(Serialize)]
struct GreetingBody<'a> {
    message: &'a str,
    environment: &'static str,
    time: Timestamp,
}

pub fn route(state: AppState) -> BoxedFilter<(Response,)> {
    // Only what the handler reads: cloning the whole AppState per request costs a
    // reference count per field.
    let greeting = state.greeting.clone();
    let environment = state.settings.app_env.as_str();
    warp::path::end()
        .and(get_or_head())
        .and_then(move || greet(greeting.clone(), environment))
        .boxed()
}

/// Listed in `routes::FROM_MEMORY`, so it runs without the request timeout: it must not
/// await anything that can hang — it reads memory only.
async fn greet(
    greeting: Arc<GreetingCache>,
    environment: &'static str,
) -> Result<Response, warp::Rejection> {
    let message = greeting.get().ok_or_else(|| {
        warp::reject::custom(ApiError::Unavailable(
            "the greeting has not been loaded from the database yet".into(),
        ))
    })?;
    Ok(warp::reply::json(&GreetingBody {
        message: &message,
        environment,
        time: Timestamp::now(),
    })
    .into_response())
}
