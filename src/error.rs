//! Typed errors, and the one place that decides what a client is told about a failure:
//! its status and words. [`ApiError`], warp's rejections and [`Fault`]s outside the admin
//! become JSON here; [`AdminError`]s, and faults of admin requests, become a [`Failure`]
//! that the admin's error page (`admin::page`) shows as HTML, with its security headers.

use std::convert::Infallible;
use std::sync::Arc;

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
    /// A form or query that is malformed, lacks a field, or holds what PostgreSQL cannot
    /// store (a NUL byte): 400, with a sentence for the page.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Too many password checks are queued: answered at once with 503 and `Retry-After`.
    #[error("too many password checks in progress")]
    Busy,
    /// A body larger than the admin's forms ever are.
    #[error("request body too large")]
    PayloadTooLarge,
    /// A POST whose length is not given up front (chunked).
    #[error("content-length required")]
    LengthRequired,
    /// A method the admin does not answer (not GET, HEAD or POST).
    #[error("method not allowed")]
    MethodNotAllowed,
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
            AdminError::BadRequest(why) => (StatusCode::BAD_REQUEST, "Bad request", *why),
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
            AdminError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request too large",
                "The form was larger than any form of this site.",
            ),
            AdminError::LengthRequired => (
                StatusCode::LENGTH_REQUIRED,
                "Length required",
                "The form was sent without a Content-Length.",
            ),
            AdminError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "The admin answers GET, HEAD and POST only.",
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

/// A failure no handler answered: the handler panicked, or the request took too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Panic,
    Timeout,
}

impl Fault {
    pub fn failure(self) -> Failure {
        match self {
            Fault::Panic => Failure {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                heading: "Server error",
                detail: "Something went wrong on our side. Please try again.",
            },
            Fault::Timeout => Failure {
                status: StatusCode::SERVICE_UNAVAILABLE,
                heading: "Request timed out",
                detail: "The request took too long. Please try again in a moment.",
            },
        }
    }

    /// The JSON API's words for it.
    pub fn json(self) -> warp::reply::Response {
        match self {
            Fault::Panic => json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
            Fault::Timeout => json_error(StatusCode::SERVICE_UNAVAILABLE, "request timed out"),
        }
    }
}

/// The response for a [`Fault`] of a request to `path`, chosen by the routes (the server
/// loop knows no pages).
pub type FaultResponder = Arc<dyn Fn(&str, Fault) -> warp::reply::Response + Send + Sync>;

/// JSON for every path (the metrics port).
pub fn json_faults() -> FaultResponder {
    Arc::new(|_, fault| fault.json())
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
