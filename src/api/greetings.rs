//! `/api/v1/greetings`: the handlers, their request and response types, and the OpenAPI
//! annotations the served document is generated from. The rules (message length, one
//! active greeting, the active one cannot be deleted) and the activation itself are the
//! admin's: [`crate::greeting::store`]. Every write is an audit-log entry naming the token
//! and its owner, written in the same transaction as the change.

use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_postgres::GenericClient;
use utoipa::{IntoParams, ToSchema};
use warp::reply::Response;

use super::problem::{ApiProblem, FieldError, Problem};
pub use super::snapshot::Greeting;
use super::snapshot::{GreetingSnapshot, row, select};
use crate::admin::audit::{self, Change, TokenActor};
use crate::greeting::store;

pub const DEFAULT_LIMIT: i64 = 25;
pub const MAX_LIMIT: i64 = 100;

/// A greeting's message, to create one or to change it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GreetingInput {
    /// 1-500 characters, stored exactly as sent.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\u0000]*$",
        example = "Hello from the API"
    )]
    pub message: String,
}

/// One page of greetings, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct GreetingPage {
    pub items: Vec<Greeting>,
    /// Pass as `after` for the next page; `null` on the last page.
    #[schema(minimum = 1)]
    pub next_after: Option<i64>,
}

/// The list's cursor pagination.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1-100 (default 25).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// Only greetings with an id above this (the previous page's `next_after`).
    #[param(minimum = 0)]
    pub after: Option<i64>,
}

impl ListQuery {
    /// Parse `limit` and `after` (an empty value is invalid); other parameters are
    /// ignored, the first of repeated ones wins.
    pub fn parse(raw: &str) -> Result<Self, ApiProblem> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
            .map_err(|_| ApiProblem::InvalidQuery("The query string is malformed.".into()))?;
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let number = |name: &str, min: i64, max: i64| -> Result<Option<i64>, ApiProblem> {
            value(name)
                .map(|v| {
                    v.parse::<i64>()
                        .ok()
                        .filter(|n| (min..=max).contains(n))
                        .ok_or_else(|| {
                            ApiProblem::InvalidQuery(format!(
                                "{name} must be a whole number from {min} to {max}."
                            ))
                        })
                })
                .transpose()
        };
        Ok(Self {
            limit: number("limit", 1, MAX_LIMIT)?,
            after: number("after", 0, i64::MAX)?,
        })
    }
}

const PROBLEM: &str = super::problem::CONTENT_TYPE;

impl Greeting {
    fn summary(&self) -> serde_json::Value {
        json!({"message": self.message, "is_active": self.is_active})
    }
}

async fn find(client: &impl GenericClient, id: i64) -> Result<Greeting, ApiProblem> {
    client
        .query_opt(&format!("{} WHERE id = $1", select()), &[&id])
        .await?
        .map(|r| row(&r))
        .ok_or(ApiProblem::NotFound)
}

fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    warp::Reply::into_response(warp::reply::with_status(warp::reply::json(body), status))
}

/// Parse and validate a greeting body (content type, JSON shape, the admin's rules).
pub fn parse_input(content_type: Option<&[u8]>, body: &[u8]) -> Result<GreetingInput, ApiProblem> {
    let is_json = content_type
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiProblem::UnsupportedMediaType);
    }
    let input: GreetingInput = serde_json::from_slice(body).map_err(|e| {
        ApiProblem::InvalidBody(vec![FieldError {
            field: "body".into(),
            message: e.to_string(),
        }])
    })?;
    if let Some(problem) = store::validate_message(&input.message) {
        return Err(ApiProblem::InvalidBody(vec![FieldError {
            field: "message".into(),
            message: problem.into(),
        }]));
    }
    Ok(input)
}

/// List greetings, oldest first, with cursor pagination.
#[utoipa::path(
    get,
    path = "/api/v1/greetings",
    operation_id = "listGreetings",
    tag = "greetings",
    params(ListQuery),
    security(("bearer" = ["greetings:read"])),
    responses(
        (status = 200, description = "One page of greetings", body = GreetingPage),
        (status = 400, description = "Invalid `limit` or `after`", body = Problem, content_type = PROBLEM),
    )
)]
pub(crate) async fn list(
    snapshot: &GreetingSnapshot,
    pool: &deadpool_postgres::Pool,
    query: &ListQuery,
) -> Result<Response, ApiProblem> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let after = query.after.unwrap_or(0);
    if let Some(items) = snapshot.get() {
        let (items, next_after) = super::snapshot::page(&items, after, limit);
        return Ok(json_response(
            StatusCode::OK,
            &GreetingPage { items, next_after },
        ));
    }
    let db = pool.get().await?;
    let rows = db
        .query(
            &format!("{} WHERE id > $1 ORDER BY id LIMIT $2", select()),
            &[&after, &(limit + 1)],
        )
        .await?;
    let mut items: Vec<Greeting> = rows.iter().map(row).collect();
    let next_after = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|g| g.id)
    } else {
        None
    };
    Ok(json_response(
        StatusCode::OK,
        &GreetingPage { items, next_after },
    ))
}

/// Create a greeting (inactive; activate it to serve it).
#[utoipa::path(
    post,
    path = "/api/v1/greetings",
    operation_id = "createGreeting",
    tag = "greetings",
    request_body = GreetingInput,
    security(("bearer" = ["greetings:write"])),
    responses(
        (status = 201, description = "Created", body = Greeting,
            headers(("Location" = String, description = "The new greeting's URL"))),
        (status = 403, description = "The token lacks greetings:write", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid greeting", body = Problem, content_type = PROBLEM),
    )
)]
pub(crate) async fn create(
    db: &mut deadpool_postgres::Object,
    actor: &TokenActor<'_>,
    input: GreetingInput,
) -> Result<Response, ApiProblem> {
    let tx = db.transaction().await?;
    let created = tx
        .query_one(
            &format!(
                "WITH created AS (INSERT INTO greetings (message) VALUES ($1) RETURNING *)
                 {}",
                select().replace("FROM greetings", "FROM created")
            ),
            &[&input.message],
        )
        .await
        .map(|r| row(&r))?;
    audit::record_via_token(
        &*tx,
        actor,
        Change {
            action: "create",
            object_type: "greeting",
            object_id: Some(created.id),
            object_repr: &store::short(&created.message),
            before: None,
            after: Some(created.summary()),
        },
    )
    .await?;
    tx.commit().await?;
    let mut response = json_response(StatusCode::CREATED, &created);
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/greetings/{}", created.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// One greeting.
#[utoipa::path(
    get,
    path = "/api/v1/greetings/{id}",
    operation_id = "getGreeting",
    tag = "greetings",
    params(("id" = i64, Path, minimum = 1, description = "The greeting's id")),
    security(("bearer" = ["greetings:read"])),
    responses(
        (status = 200, description = "The greeting", body = Greeting),
        (status = 404, description = "No such greeting", body = Problem, content_type = PROBLEM),
    )
)]
pub(crate) async fn get(
    snapshot: &GreetingSnapshot,
    pool: &deadpool_postgres::Pool,
    id: i64,
) -> Result<Response, ApiProblem> {
    if let Some(items) = snapshot.get() {
        let greeting = super::snapshot::find(&items, id).ok_or(ApiProblem::NotFound)?;
        return Ok(json_response(StatusCode::OK, greeting));
    }
    let db = pool.get().await?;
    Ok(json_response(StatusCode::OK, &find(&**db, id).await?))
}

/// Change a greeting's message (an active one changes what `GET /` serves).
#[utoipa::path(
    patch,
    path = "/api/v1/greetings/{id}",
    operation_id = "updateGreeting",
    tag = "greetings",
    params(("id" = i64, Path, minimum = 1, description = "The greeting's id")),
    request_body = GreetingInput,
    security(("bearer" = ["greetings:write"])),
    responses(
        (status = 200, description = "The changed greeting", body = Greeting),
        (status = 403, description = "The token lacks greetings:write", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such greeting", body = Problem, content_type = PROBLEM),
        (status = 413, description = "Body too large", body = Problem, content_type = PROBLEM),
        (status = 415, description = "Not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "Invalid greeting", body = Problem, content_type = PROBLEM),
    )
)]
pub(crate) async fn update(
    db: &mut deadpool_postgres::Object,
    actor: &TokenActor<'_>,
    id: i64,
    input: GreetingInput,
) -> Result<Response, ApiProblem> {
    let tx = db.transaction().await?;
    let before = tx
        .query_opt(&format!("{} WHERE id = $1 FOR UPDATE", select()), &[&id])
        .await?
        .map(|r| row(&r))
        .ok_or(ApiProblem::NotFound)?;
    tx.execute(
        "UPDATE greetings SET message = $2, updated_at = now() WHERE id = $1",
        &[&id, &input.message],
    )
    .await?;
    let after = find(&*tx, id).await?;
    audit::record_via_token(
        &*tx,
        actor,
        Change {
            action: "update",
            object_type: "greeting",
            object_id: Some(id),
            object_repr: &store::short(&after.message),
            before: Some(before.summary()),
            after: Some(after.summary()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(json_response(StatusCode::OK, &after))
}

/// Delete an inactive greeting.
#[utoipa::path(
    delete,
    path = "/api/v1/greetings/{id}",
    operation_id = "deleteGreeting",
    tag = "greetings",
    params(("id" = i64, Path, minimum = 1, description = "The greeting's id")),
    security(("bearer" = ["greetings:write"])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The token lacks greetings:write", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such greeting", body = Problem, content_type = PROBLEM),
        (status = 409, description = "It is the active greeting", body = Problem, content_type = PROBLEM),
    )
)]
pub(crate) async fn delete(
    db: &mut deadpool_postgres::Object,
    actor: &TokenActor<'_>,
    id: i64,
) -> Result<Response, ApiProblem> {
    let tx = db.transaction().await?;
    let target = find(&*tx, id).await?;
    if target.is_active {
        return Err(ApiProblem::ActiveGreeting);
    }
    // Checked again under the greetings lock: it may have been activated (or deleted)
    // since it was read.
    if !store::delete_inactive(&*tx, id).await? {
        return Err(match find(&*tx, id).await {
            Ok(_) => ApiProblem::ActiveGreeting,
            Err(e) => e,
        });
    }
    audit::record_via_token(
        &*tx,
        actor,
        Change {
            action: "delete",
            object_type: "greeting",
            object_id: Some(id),
            object_repr: &store::short(&target.message),
            before: Some(target.summary()),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    let mut response = Response::new(Vec::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// Make this the active greeting: every replica's `GET /` serves it within a second
/// (the same NOTIFY path as an admin change).
#[utoipa::path(
    post,
    path = "/api/v1/greetings/{id}/activate",
    operation_id = "activateGreeting",
    tag = "greetings",
    params(("id" = i64, Path, minimum = 1, description = "The greeting's id")),
    security(("bearer" = ["greetings:write"])),
    responses(
        (status = 200, description = "The greeting, now active", body = Greeting),
        (status = 403, description = "The token lacks greetings:write", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such greeting", body = Problem, content_type = PROBLEM),
    )
)]
pub(crate) async fn activate(
    db: &mut deadpool_postgres::Object,
    actor: &TokenActor<'_>,
    id: i64,
) -> Result<Response, ApiProblem> {
    let tx = db.transaction().await?;
    let target = find(&*tx, id).await?;
    let previous = store::activate(&*tx, id).await?;
    let active = find(&*tx, id).await?;
    audit::record_via_token(
        &*tx,
        actor,
        Change {
            action: "activate",
            object_type: "greeting",
            object_id: Some(id),
            object_repr: &store::short(&target.message),
            before: Some(json!({
                "active_greeting": previous.map(|p| json!({"id": p.id, "message": p.message})),
            })),
            after: Some(json!({"active_greeting": {"id": id, "message": target.message}})),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(json_response(StatusCode::OK, &active))
}
