//! The one application state shared by every handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::Pool;

use crate::config::Settings;
use crate::greeting::GreetingCache;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: Pool,
    pub greeting: Arc<GreetingCache>,
    /// The admin's templates, keys and security policy.
    pub admin: Arc<crate::admin::AdminState>,
    /// The API's token cache, rate limiter and OpenAPI document.
    pub api: Arc<crate::api::ApiState>,
    draining: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(settings: Settings, pool: Pool) -> Self {
        Self {
            admin: Arc::new(crate::admin::AdminState::new(&settings)),
            api: Arc::new(crate::api::ApiState::new(settings.network.api_rate_limit)),
            settings: Arc::new(settings),
            pool,
            greeting: Arc::new(GreetingCache::default()),
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
