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

/// What went wrong while handling an admin request; the admin shows it as its HTML
/// error page.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("not found")]
    NotFound,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("CSRF verification failed")]
    Csrf,
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("template error: {0}")]
    Template(#[from] handlebars::RenderError),
    /// A form or query PostgreSQL could not store (a NUL byte): 400.
    #[error("bad request")]
    BadRequest,
    /// Too many password checks are queued: answered at once with 503 and `Retry-After`.
    #[error("too many password checks in progress")]
    Busy,
}

/// A failure as the client is told about it: the status, a heading and one sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub status: StatusCode,
    pub heading: &'static str,
    pub detail: &'static str,
}

impl AdminError {
    /// PostgreSQL cannot be reached right now (refused, timed out, connection lost, server
    /// shutting down): a 503 the user can retry, not a server bug.
    fn is_database_unavailable(&self) -> bool {
        match self {
            AdminError::Pool(_) => true,
            AdminError::Database(e) => {
                e.is_closed()
                    || e.code().is_some_and(|code| {
                        // Class 08 connection exception, 57 operator intervention
                        // (admin_shutdown, cannot_connect_now).
                        code.code().starts_with("08") || code.code().starts_with("57")
                    })
                    || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
            }
            _ => false,
        }
    }

    /// What the client is told; our own failures are logged here, with `path`.
    pub fn failure(&self, path: &str) -> Failure {
        let (status, heading, detail) = match self {
            AdminError::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "The page you asked for does not exist.",
            ),
            AdminError::Forbidden(why) => (StatusCode::FORBIDDEN, "Permission denied", *why),
            AdminError::BadRequest => (
                StatusCode::BAD_REQUEST,
                "Bad request",
                "The form contained a character that cannot be stored (a NUL byte).",
            ),
            AdminError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                "Too many logins are being checked right now. Please try again in a moment.",
            ),
            AdminError::Csrf => (
                StatusCode::FORBIDDEN,
                "Forbidden (CSRF verification failed)",
                "The form was not submitted from this site, or it is too old. Reload the page \
                 and try again. Cookies must be enabled.",
            ),
            AdminError::Pool(_) | AdminError::Database(_) if self.is_database_unavailable() => {
                tracing::warn!(error = %self, path, "admin request: database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Database unavailable",
                    "The database is unavailable, try again in a moment.",
                )
            }
            AdminError::Database(_) | AdminError::Pool(_) | AdminError::Template(_) => {
                tracing::error!(error = %self, path, "admin request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Server error",
                    "Something went wrong on our side. Please try again.",
                )
            }
        };
        Failure {
            status,
            heading,
            detail,
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
