//! The admin's state: its database pool and settings, templates, keys, the security
//! policy, and the argon2 login queue. Built once in `startup`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use deadpool_postgres::Pool;
use secrecy::{ExposeSecret, SecretString};

use super::{render, security};
use crate::config::Settings;

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

/// Everything the admin's handlers share.
pub struct AdminState {
    pub(crate) settings: Arc<Settings>,
    pub(crate) pool: Pool,
    policy: ArcSwap<Policy>,
    pub(crate) templates: render::Templates,
    pub(crate) keys: security::Keys,
    pub(crate) cookies: security::CookieNames,
    /// A real hash to verify unknown usernames against, so they take as long as known ones.
    dummy_hash: tokio::sync::OnceCell<String>,
    /// Logins between their permit and the end of their password check.
    pending_logins: Arc<AtomicUsize>,
}

/// One login's place in the bounded argon2 queue, given back on drop.
pub(crate) struct LoginPermit(Arc<AtomicUsize>);

impl Drop for LoginPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AdminState {
    pub fn new(settings: Arc<Settings>, pool: Pool) -> Self {
        Self {
            policy: ArcSwap::from_pointee(Policy::default()),
            templates: render::Templates::load(),
            keys: security::Keys::derive(settings.secret_key.expose_secret().as_bytes()),
            cookies: security::CookieNames::for_env(settings.app_env),
            dummy_hash: tokio::sync::OnceCell::new(),
            pending_logins: Arc::default(),
            settings,
            pool,
        }
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    pub fn set_policy(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
    }

    /// A place in the bounded login queue, or None when `max_pending_logins` are waiting.
    pub(crate) fn login_permit(&self) -> Option<LoginPermit> {
        let limit = self.policy.load().max_pending_logins;
        self.pending_logins
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| LoginPermit(self.pending_logins.clone()))
    }

    /// Verify a password with argon2 on the bounded hashing pool (off the runtime).
    pub(crate) async fn verify_password(&self, password: SecretString, phc: String) -> bool {
        tracing::debug!("argon2: checking a password");
        crate::auth::password::verify_async(password, phc).await
    }

    /// Hash a password with argon2 on the bounded hashing pool (off the runtime).
    pub(crate) async fn hash_password(&self, password: SecretString) -> String {
        tracing::debug!("argon2: hashing a password");
        crate::auth::password::hash_async(password).await
    }

    pub(crate) async fn dummy_hash(&self) -> String {
        self.dummy_hash
            .get_or_init(|| async {
                self.hash_password(SecretString::from(
                    "greeter-no-such-user-placeholder".to_owned(),
                ))
                .await
            })
            .await
            .clone()
    }
}
