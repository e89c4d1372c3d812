//! The admin's state: its database pool and settings, templates, keys, the security
//! policy, and the argon2 login queue. Built once in `startup`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deadpool_postgres::Pool;
use secrecy::{ExposeSecret, SecretString};

use super::{render, security};
use crate::config::Settings;

/// The admin's security rules come in with the settings (`Settings::admin_policy`).
pub use crate::config::AdminPolicy as Policy;

/// Everything the admin's handlers share.
pub struct AdminState {
    pub(crate) settings: Arc<Settings>,
    pub(crate) pool: Pool,
    policy: Arc<Policy>,
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
            policy: Arc::new(settings.admin_policy.clone()),
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
        self.policy.clone()
    }

    /// A place in the bounded login queue, or None when `max_pending_logins` are waiting.
    pub(crate) fn login_permit(&self) -> Option<LoginPermit> {
        let limit = self.policy.max_pending_logins;
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
