//! Typed errors and the one place where they, and warp's rejections, become responses.

use std::convert::Infallible;

use http::StatusCode;
use serde::Serialize;
use warp::Reply;
use warp::reject::Rejection;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the service is not ready: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    status: u16,
}

/// A JSON error response: `{"error": "...", "status": N}`.
pub fn json_error(status: StatusCode, message: &str) -> warp::reply::Response {
    warp::reply::with_status(
        warp::reply::json(&ErrorBody {
            error: message,
            status: status.as_u16(),
        }),
        status,
    )
    .into_response()
}

/// Map every rejection to a JSON error. Client mistakes are 4xx; only our own failures
/// are 5xx, and their details go to the log, not to the client.
pub async fn handle_rejection(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    use warp::reject;
    let (status, message): (StatusCode, String) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not found".into())
    } else if let Some(e) = rejection.find::<ApiError>() {
        if let ApiError::Internal(source) = e {
            tracing::error!(error = ?source, "request failed");
        }
        (e.status(), e.to_string())
    } else if rejection.find::<reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed".into())
    } else if rejection.find::<reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large".into(),
        )
    } else if rejection.find::<reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "content-length required".into(),
        )
    } else if rejection.find::<reject::UnsupportedMediaType>().is_some() {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type".into(),
        )
    } else if let Some(e) = rejection.find::<reject::InvalidQuery>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else if let Some(e) = rejection.find::<reject::InvalidHeader>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else if let Some(e) = rejection.find::<reject::MissingHeader>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else if let Some(e) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else {
        // Any other rejection is a malformed request that no route accepted.
        tracing::debug!(?rejection, "unhandled rejection");
        (StatusCode::BAD_REQUEST, "bad request".into())
    };
    Ok(json_error(status, &message))
}
