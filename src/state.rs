//! The one application state shared by every handler, built in `startup`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::Pool;
use warp::Filter;

use crate::admin::AdminState;
use crate::api::ApiState;
use crate::config::Settings;
use crate::greeting::GreetingCache;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: Pool,
    pub greeting: Arc<GreetingCache>,
    /// The admin's own state: templates, keys and security policy.
    pub admin: Arc<AdminState>,
    /// The API's token cache, greeting snapshot, rate limiter and OpenAPI document.
    pub api: Arc<ApiState>,
    draining: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(
        settings: Arc<Settings>,
        pool: Pool,
        admin: Arc<AdminState>,
        api: Arc<ApiState>,
    ) -> Self {
        Self {
            api,
            settings,
            pool,
            greeting: Arc::new(GreetingCache::default()),
            admin,
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Set once SIGTERM arrived: readiness fails so the endpoint is removed.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// Hand the shared state to a handler.
pub fn with_state(
    state: AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}
