//! The API's errors: one typed enum, mapped to `application/problem+json` (RFC 9457) in
//! one place. Each kind has a stable `type` URI (`/api/v1/problems/<slug>`, relative to
//! the server, listed in DOCS.md); clients branch on it, not on `title` or `detail`.

use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;
use warp::reply::Response;

use crate::auth::tokens::Scope;

/// Why a request's credentials are refused (all answered 401, except `Unavailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer grt_…` of the right length and alphabet.
    Malformed,
    /// Unknown, revoked, or its owner is no longer an active admin user.
    Invalid,
    Expired,
    /// The token list is not loaded (start-up, or the LISTEN connection is lost).
    Unavailable,
}

pub const CONTENT_TYPE: &str = "application/problem+json";

/// A problem detail object (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `/api/v1/problems/not-found`.
    #[schema(example = "/api/v1/problems/not-found")]
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem; the same for every occurrence.
    pub title: String,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong this time.
    pub detail: String,
    /// For 422: which field is wrong and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(nullable = false)]
    pub errors: Vec<FieldError>,
}

/// One invalid field of a request body.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's name (`message`), or `body` for the document as a whole.
    pub field: String,
    pub message: String,
}

/// Everything an API request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiProblem {
    #[error("authentication failed")]
    Unauthorized(AuthError),
    #[error("missing scope {0:?}")]
    InsufficientScope(Scope),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed(&'static str),
    #[error("the active greeting cannot be deleted")]
    ActiveGreeting,
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("body too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("invalid body")]
    InvalidBody(Vec<FieldError>),
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<tokio_postgres::Error> for ApiProblem {
    fn from(e: tokio_postgres::Error) -> Self {
        if database_unavailable(&e) {
            tracing::warn!(
                error = crate::db::describe(&e),
                "API request: database unavailable"
            );
            ApiProblem::Unavailable("The database is unavailable; try again in a moment.")
        } else {
            ApiProblem::Internal(crate::db::describe(&e))
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiProblem {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        tracing::warn!(error = %e, "API request: no database connection");
        ApiProblem::Unavailable("The database is unavailable; try again in a moment.")
    }
}

/// PostgreSQL cannot be reached right now (refused, timed out, lost, shutting down).
fn database_unavailable(e: &tokio_postgres::Error) -> bool {
    e.is_closed()
        || e.code()
            .is_some_and(|code| code.code().starts_with("08") || code.code().starts_with("57"))
        || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// The `type` URI of a problem kind.
pub fn type_uri(slug: &str) -> String {
    format!("/api/v1/problems/{slug}")
}

/// Every `type` slug the API uses (DOCS.md lists them; a test keeps both in step).
pub const SLUGS: &[&str] = &[
    "unauthorized",
    "insufficient-scope",
    "not-found",
    "method-not-allowed",
    "active-greeting",
    "invalid-query",
    "payload-too-large",
    "unsupported-media-type",
    "invalid-body",
    "rate-limited",
    "unavailable",
    "internal",
];

impl ApiProblem {
    fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        use ApiProblem::*;
        match self {
            Unauthorized(why) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Missing or invalid token",
                match why {
                    AuthError::Missing => {
                        "Send the token as `Authorization: Bearer grt_...`.".into()
                    }
                    AuthError::Malformed => {
                        "The Authorization header is not `Bearer` and a grt_ token.".into()
                    }
                    AuthError::Expired => "The token has expired.".into(),
                    _ => "The token is unknown or has been revoked.".into(),
                },
            ),
            InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                "insufficient-scope",
                "Insufficient scope",
                format!(
                    "This operation needs a token with the {} scope.",
                    scope.as_str()
                ),
            ),
            NotFound => (
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                "No such resource.".into(),
            ),
            MethodNotAllowed(allow) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                format!("This resource allows {allow}."),
            ),
            ActiveGreeting => (
                StatusCode::CONFLICT,
                "active-greeting",
                "The active greeting cannot be deleted",
                "Activate another greeting first.".into(),
            ),
            InvalidQuery(why) => (
                StatusCode::BAD_REQUEST,
                "invalid-query",
                "Invalid query parameters",
                why.clone(),
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
                format!("The body must be at most {} bytes.", super::MAX_BODY_BYTES),
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "Send the body as application/json.".into(),
            ),
            InvalidBody(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-body",
                "Invalid request body",
                "The body is not a valid document for this operation; see errors.".into(),
            ),
            RateLimited { retry_after_secs } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!("This token's rate limit is exhausted; retry in {retry_after_secs} s."),
            ),
            Unavailable(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                (*why).into(),
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
                "Something went wrong on our side.".into(),
            ),
        }
    }

    pub fn into_response(self) -> Response {
        if let ApiProblem::Internal(error) = &self {
            tracing::error!(error, "API request failed");
        }
        let (status, slug, title, detail) = self.parts();
        let errors = match self {
            ApiProblem::InvalidBody(ref errors) => errors
                .iter()
                .map(|e| FieldError {
                    field: e.field.clone(),
                    message: e.message.clone(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let body = Problem {
            kind: type_uri(slug),
            title: title.into(),
            status: status.as_u16(),
            detail,
            errors,
        };
        let mut response = Response::new(
            serde_json::to_vec(&body)
                .unwrap_or_else(|_| b"{}".to_vec())
                .into(),
        );
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        match self {
            // RFC 6750 section 3: no error code when no credentials were sent.
            ApiProblem::Unauthorized(AuthError::Missing) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"greeter\""),
                );
            }
            ApiProblem::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"greeter\", error=\"invalid_token\""),
                );
            }
            ApiProblem::InsufficientScope(scope) => {
                if let Ok(value) = HeaderValue::from_str(&format!(
                    "Bearer realm=\"greeter\", error=\"insufficient_scope\", scope=\"{}\"",
                    scope.as_str()
                )) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            ApiProblem::MethodNotAllowed(allow) => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiProblem::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            ApiProblem::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
