//! `/api/v1/`: the token-authenticated JSON API for greetings.
//!
//! One warp filter takes every `/api/...` request and [`respond`] routes it, so that the
//! order of checks is the same everywhere: route (404/405), token (401), rate limit (429),
//! scope (403), then the request itself (400/413/415/422) and the database (404/409).
//! Every error is answered by [`problem::ApiProblem`] as `application/problem+json`.

pub mod auth;
pub mod createtoken;
pub mod greetings;
pub mod openapi;
pub mod problem;
pub mod snapshot;
/// The token model lives with the users it belongs to ([`crate::auth::tokens`]).
pub use crate::auth::tokens;

use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{HeaderMap, HeaderValue, Method, header};
use tokio::sync::watch;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use self::auth::{AuthError, TokenCache, TokenRecord};
use self::problem::ApiProblem;
use self::tokens::Scope;
use crate::admin::audit::TokenActor;
use crate::config::Settings;
use crate::server::ClientAddr;

/// Largest accepted request body (a greeting is at most 500 characters).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, warp::Error>> + Send>>;

/// The API's own state, built in `startup`: the pool and settings it needs, the token
/// cache, the greeting snapshot, the rate limiter, the document.
pub struct ApiState {
    settings: Arc<Settings>,
    pool: deadpool_postgres::Pool,
    pub tokens: Arc<TokenCache>,
    pub greetings: Arc<snapshot::GreetingSnapshot>,
    limiter: ArcSwap<DefaultKeyedRateLimiter<i64>>,
    document: Bytes,
}

impl ApiState {
    pub fn new(settings: Arc<Settings>, pool: deadpool_postgres::Pool) -> Self {
        let document = serde_json::to_vec(&openapi::document()).expect("a JSON value serialises");
        let requests_per_second = settings.network.api_rate_limit;
        Self {
            settings,
            pool,
            tokens: Arc::default(),
            greetings: Arc::default(),
            limiter: ArcSwap::from_pointee(limiter(requests_per_second)),
            document: document.into(),
        }
    }

    /// Replace the per-token rate limit (tests; `API_RATE_LIMIT` sets it at start).
    pub fn set_rate_limit(&self, requests_per_second: u32) {
        self.limiter.store(Arc::new(limiter(requests_per_second)));
    }

    /// The served OpenAPI document.
    pub fn document_json(&self) -> &[u8] {
        &self.document
    }

    /// `Err(seconds to wait)` once `token` is over its rate.
    fn check_rate(&self, token: i64) -> Result<(), u64> {
        self.limiter.load().check_key(&token).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

fn limiter(requests_per_second: u32) -> DefaultKeyedRateLimiter<i64> {
    let rate = NonZeroU32::new(requests_per_second).unwrap_or(NonZeroU32::MIN);
    RateLimiter::keyed(Quota::per_second(rate))
}

/// The token listener and the last-use writer, until `shutdown`.
pub async fn run_background(api: Arc<ApiState>, shutdown: watch::Receiver<bool>) {
    tokio::join!(
        auth::listen(
            api.settings.database.clone(),
            api.tokens.clone(),
            api.greetings.clone(),
            shutdown.clone()
        ),
        auth::flush_last_used(api.pool.clone(), api.tokens.clone(), shutdown),
    );
}

/// One API request, as the dispatcher sees it.
struct ApiRequest {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    client_addr: Option<std::net::IpAddr>,
    body: BodyStream,
}

/// Every `/api/...` route. Wire it in before the JSON rejection handler.
pub fn routes(api: Arc<ApiState>) -> BoxedFilter<(Response,)> {
    warp::path("api")
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<ClientAddr>())
        .and(warp::body::stream().map(box_body))
        .and(warp::any().map(move || api.clone()))
        .then(
            |method: Method,
             path: warp::path::FullPath,
             query: String,
             headers: HeaderMap,
             addr: Option<ClientAddr>,
             body: BodyStream,
             state: Arc<ApiState>| async move {
                let request = ApiRequest {
                    method,
                    path: path.as_str().to_owned(),
                    query,
                    headers,
                    client_addr: addr.map(|a| a.0.ip()),
                    body,
                };
                respond(&state, request)
                    .await
                    .unwrap_or_else(ApiProblem::into_response)
            },
        )
        .boxed()
}

/// The body as a stream of `Bytes`, read only by the operations that take one.
fn box_body<S, B>(stream: S) -> BodyStream
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    Box::pin(stream.map(|chunk| {
        chunk.map(|mut buf| {
            let n = buf.remaining();
            buf.copy_to_bytes(n)
        })
    }))
}

/// The operations, by path: what the dispatcher matched.
#[derive(Clone, Copy)]
enum Route {
    Document,
    Greetings,
    Greeting(i64),
    Activate(i64),
}

fn parse_id(segment: &str) -> Option<i64> {
    if segment.is_empty() || segment.len() > 19 || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse::<i64>().ok().filter(|id| *id > 0)
}

fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/api/v1/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["openapi.json"] => Some(Route::Document),
        ["greetings"] => Some(Route::Greetings),
        ["greetings", id] => parse_id(id).map(Route::Greeting),
        ["greetings", id, "activate"] => parse_id(id).map(Route::Activate),
        _ => None,
    }
}

/// What an operation needs: its scope and whether it reads a body.
enum Operation {
    List,
    Create,
    Get(i64),
    Update(i64),
    Delete(i64),
    Activate(i64),
}

impl Operation {
    fn scope(&self) -> Scope {
        match self {
            Operation::List | Operation::Get(_) => Scope::GreetingsRead,
            _ => Scope::GreetingsWrite,
        }
    }
}

fn is_get(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

async fn respond(state: &ApiState, mut req: ApiRequest) -> Result<Response, ApiProblem> {
    let route = route(&req.path).ok_or(ApiProblem::NotFound)?;
    let m = &req.method;
    let operation = match route {
        Route::Document if is_get(m) => return Ok(document(state)),
        Route::Document => return Err(ApiProblem::MethodNotAllowed("GET, HEAD")),
        Route::Greetings if is_get(m) => Operation::List,
        Route::Greetings if m == Method::POST => Operation::Create,
        Route::Greetings => return Err(ApiProblem::MethodNotAllowed("GET, HEAD, POST")),
        Route::Greeting(id) if is_get(m) => Operation::Get(id),
        Route::Greeting(id) if m == Method::PATCH => Operation::Update(id),
        Route::Greeting(id) if m == Method::DELETE => Operation::Delete(id),
        Route::Greeting(_) => return Err(ApiProblem::MethodNotAllowed("GET, HEAD, PATCH, DELETE")),
        Route::Activate(id) if m == Method::POST => Operation::Activate(id),
        Route::Activate(_) => return Err(ApiProblem::MethodNotAllowed("POST")),
    };

    let token = authenticate(state, &req.headers)?;
    state
        .check_rate(token.id)
        .map_err(|retry_after_secs| ApiProblem::RateLimited { retry_after_secs })?;
    if !token.scopes.allows(operation.scope()) {
        return Err(ApiProblem::InsufficientScope(operation.scope()));
    }
    let actor = TokenActor {
        token_id: token.id,
        token_name: &token.name,
        owner_id: token.owner_id,
        owner_username: &token.owner_username,
        client_addr: req.client_addr,
    };

    match operation {
        Operation::List => {
            let query = greetings::ListQuery::parse(&req.query)?;
            greetings::list(&state.greetings, &state.pool, &query).await
        }
        Operation::Get(id) => greetings::get(&state.greetings, &state.pool, id).await,
        write => {
            let input = match write {
                Operation::Create | Operation::Update(_) => Some(read_input(&mut req).await?),
                _ => None,
            };
            let mut db = state.pool.get().await?;
            let response = match (write, input) {
                (Operation::Create, Some(input)) => greetings::create(&mut db, &actor, input).await,
                (Operation::Update(id), Some(input)) => {
                    greetings::update(&mut db, &actor, id, input).await
                }
                (Operation::Delete(id), _) => greetings::delete(&mut db, &actor, id).await,
                (Operation::Activate(id), _) => greetings::activate(&mut db, &actor, id).await,
                _ => unreachable!("reads are answered above; create and update have a body"),
            };
            // Read your own writes: this replica's snapshot is current before the answer
            // (other replicas reload on the NOTIFY, within milliseconds). After a refused
            // write too: a 404 or 409 may be news (someone else's change) as well.
            if let Err(e) = state.greetings.reload(&**db).await {
                state.greetings.forget();
                tracing::warn!(
                    error = crate::db::describe(&e),
                    "greeting snapshot reload failed"
                );
            }
            response
        }
    }
}

fn authenticate(state: &ApiState, headers: &HeaderMap) -> Result<Arc<TokenRecord>, ApiProblem> {
    state
        .tokens
        .authenticate(
            headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
        )
        .map_err(|e| match e {
            AuthError::Unavailable => ApiProblem::Unavailable(
                "The token list is not loaded (no database notifications); try again shortly.",
            ),
            other => ApiProblem::Unauthorized(other),
        })
}

fn document(state: &ApiState) -> Response {
    let mut response = Response::new(Bytes::copy_from_slice(state.document_json()).into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The body as a greeting: refused by its declared length before reading, by its actual
/// length while reading (chunked bodies), then by content type and content.
async fn read_input(req: &mut ApiRequest) -> Result<greetings::GreetingInput, ApiProblem> {
    let declared = req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiProblem::PayloadTooLarge);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = req.body.next().await {
        let chunk = chunk.map_err(|_| {
            ApiProblem::InvalidBody(vec![problem::FieldError {
                field: "body".into(),
                message: "the body could not be read".into(),
            }])
        })?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiProblem::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    greetings::parse_input(
        req.headers
            .get(header::CONTENT_TYPE)
            .map(HeaderValue::as_bytes),
        &body,
    )
}
