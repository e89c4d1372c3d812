//! `GET /`: the greeting, from memory.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::get_or_head;
use crate::error::ApiError;
use crate::state::AppState;
use crate::state::with_state;

#[derive(Serialize)]
struct GreetingBody<'a> {
    message: &'a str,
    environment: &'static str,
    time: String,
}

pub fn route(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path::end()
        .and(get_or_head())
        .and(with_state(state))
        .and_then(greet)
        .boxed()
}

async fn greet(state: AppState) -> Result<Response, warp::Rejection> {
    let message = state.greeting.get().ok_or_else(|| {
        warp::reject::custom(ApiError::Unavailable(
            "the greeting has not been loaded from the database yet".into(),
        ))
    })?;
    let time = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .map_err(|e| warp::reject::custom(ApiError::Internal(e.into())))?;
    Ok(warp::reply::json(&GreetingBody {
        message: &message,
        environment: state.settings.app_env.as_str(),
        time,
    })
    .into_response())
}
