//! The admin at `/admin/`: server-rendered pages for users, greetings, the audit log and
//! the settings, in the spirit of Django's admin, working without JavaScript.
//!
//! One warp filter takes every `/admin/...` request and `web::respond` routes it by hand:
//! that keeps the security rules (login required, CSRF on every POST, response headers)
//! in one place instead of repeating them on each of ~25 warp routes.

mod audit;
mod auth_views;
mod greetings;
mod listing;
mod pages;
mod render;
mod security;
mod session;
mod throttle;
mod users;
mod web;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, Method};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::config::Settings;
use crate::routes::with_state;
use crate::server::ClientAddr;
use crate::state::AppState;

pub use security::fingerprint;
pub use web::AdminError;

/// Largest accepted form body: the biggest form (a greeting) is far below this.
const MAX_FORM_BYTES: u64 = 64 * 1024;

/// The tunable security rules. Production uses [`Policy::default`]; tests shorten the
/// timeouts through [`AdminState::set_policy`] instead of waiting for half an hour.
#[derive(Debug, Clone)]
pub struct Policy {
    /// A session unused for this long is over.
    pub idle_timeout: Duration,
    /// A session is over this long after login, however active.
    pub absolute_timeout: Duration,
    /// Attempts on one username from one client address, within `failure_window`, that
    /// lock this pair out (the soft lockout: other addresses may still try).
    pub pair_failure_limit: i32,
    /// Attempts on one username from anywhere, within `failure_window`, that lock it out
    /// (the hard lock, much higher than the pair's).
    pub username_failure_limit: i32,
    /// Attempts from one client address (IPv6: one /64), within `failure_window`, that
    /// lock it out.
    pub address_failure_limit: i32,
    pub failure_window: Duration,
    pub lockout: Duration,
    /// After this many attempts on a (username, address) pair each further failed
    /// attempt is answered more slowly.
    pub slowdown_after: i32,
    pub slowdown_step: Duration,
    pub slowdown_max: Duration,
    /// Login attempts allowed to wait for or run argon2 at once (per process); beyond
    /// them a login is answered at once with 503 and `Retry-After` instead of queueing.
    pub max_pending_logins: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 60 * 60),
            pair_failure_limit: 5,
            username_failure_limit: 100,
            address_failure_limit: 50,
            failure_window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
            slowdown_after: 2,
            slowdown_step: Duration::from_millis(250),
            slowdown_max: Duration::from_secs(2),
            max_pending_logins: 4 * crate::auth::password::hash_threads().max(4),
        }
    }
}

/// The admin's part of [`AppState`]: templates, keys, the policy, and the argon2 limiter.
pub struct AdminState {
    policy: ArcSwap<Policy>,
    templates: render::Templates,
    keys: security::Keys,
    cookies: security::CookieNames,
    /// A real hash to verify unknown usernames against, so they take as long as known ones.
    dummy_hash: tokio::sync::OnceCell<String>,
    /// Logins between their permit and the end of their password check.
    pending_logins: Arc<std::sync::atomic::AtomicUsize>,
}

/// One login's place in the bounded argon2 queue, given back on drop.
pub(crate) struct LoginPermit(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for LoginPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl AdminState {
    pub fn new(settings: &Settings) -> Self {
        use secrecy::ExposeSecret;
        Self {
            policy: ArcSwap::from_pointee(Policy::default()),
            templates: render::Templates::load(),
            keys: security::Keys::derive(settings.secret_key.expose_secret().as_bytes()),
            cookies: security::CookieNames::for_env(settings.app_env),
            dummy_hash: tokio::sync::OnceCell::new(),
            pending_logins: Arc::default(),
        }
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    pub fn set_policy(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
    }

    /// Whether cookies carry `Secure` and the `__Host-` prefix.
    pub fn secure_cookies(&self) -> bool {
        self.cookies.secure
    }

    /// The session cookie's name (`__Host-greeter_session`, or `greeter_session` locally).
    pub fn session_cookie_name(&self) -> &'static str {
        self.cookies.session
    }

    /// A place in the bounded login queue, or None when `max_pending_logins` are waiting.
    fn login_permit(&self) -> Option<LoginPermit> {
        use std::sync::atomic::Ordering;
        let limit = self.policy.load().max_pending_logins;
        self.pending_logins
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| LoginPermit(self.pending_logins.clone()))
    }

    /// Verify a password with argon2 on the bounded hashing pool (off the runtime).
    async fn verify_password(&self, password: secrecy::SecretString, phc: String) -> bool {
        crate::auth::password::verify_async(password, phc).await
    }

    /// Hash a password with argon2 on the bounded hashing pool (off the runtime).
    async fn hash_password(&self, password: secrecy::SecretString) -> String {
        crate::auth::password::hash_async(password).await
    }

    async fn dummy_hash(&self) -> String {
        self.dummy_hash
            .get_or_init(|| async {
                self.hash_password(secrecy::SecretString::from(
                    "greeter-no-such-user-placeholder".to_owned(),
                ))
                .await
            })
            .await
            .clone()
    }
}

/// What the dispatcher knows about one request.
pub(crate) struct AdminRequest {
    pub method: Method,
    /// The path below `/admin/`, split at `/`; a trailing slash leaves no empty segment.
    pub segments: Vec<String>,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub cookies: std::collections::HashMap<String, String>,
    pub client_addr: Option<IpAddr>,
    pub body: Bytes,
}

impl AdminRequest {
    /// `path?query`, as the browser asked for it.
    pub fn path_and_query(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    pub fn is_post(&self) -> bool {
        self.method == Method::POST
    }
}

/// The form body, at most [`MAX_FORM_BYTES`] (checked before reading). Unlike warp's
/// `content_length_limit` alone, a POST without any body (no Content-Length, not
/// chunked) is accepted as an empty form, so CSRF checking answers it with a 403.
fn form_body() -> BoxedFilter<(Bytes,)> {
    let sized = warp::body::content_length_limit(MAX_FORM_BYTES).and(warp::body::bytes());
    let empty = warp::header::optional::<u64>("content-length")
        .and(warp::header::optional::<String>("transfer-encoding"))
        .and_then(|length: Option<u64>, chunked: Option<String>| async move {
            if length.is_none() && chunked.is_none() {
                Ok(Bytes::new())
            } else {
                Err(warp::reject::not_found())
            }
        });
    sized.or(empty).unify().boxed()
}

/// Every `/admin` route. Wire it in before the JSON rejection handler.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let common = warp::path("admin")
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<ClientAddr>())
        .and(with_state(state));
    let read = common
        .clone()
        .and(crate::routes::get_or_head())
        .and(warp::method())
        .map(|path, query, headers, addr, state, method| {
            (path, query, headers, addr, state, method, Bytes::new())
        })
        .untuple_one();
    let write = common
        .and(warp::post())
        .and(warp::method())
        .and(form_body());
    read.or(write)
        .unify()
        .then(
            |path: warp::path::FullPath,
             query: String,
             headers: HeaderMap,
             addr: Option<ClientAddr>,
             state: AppState,
             method: Method,
             body: Bytes| async move {
                let request = AdminRequest {
                    segments: path
                        .as_str()
                        .strip_prefix("/admin")
                        .unwrap_or_default()
                        .split('/')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    path: path.as_str().to_owned(),
                    query,
                    cookies: security::parse_cookies(&headers),
                    headers,
                    client_addr: addr.map(|a| a.0.ip()),
                    method,
                    body,
                };
                web::respond(&state, request).await
            },
        )
        .boxed()
}
