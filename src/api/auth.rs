//! Bearer-token checks without a database round trip: every replica keeps the valid
//! tokens (their hashes, scopes, owner and expiry) in memory and reloads them whenever
//! PostgreSQL NOTIFYs `api_tokens_changed` (a trigger on `api_tokens`, and on the owners'
//! `is_active`/`is_staff`/`is_superuser`). A revocation therefore reaches every replica
//! as fast as a greeting change does.
//!
//! Fail closed: while the LISTEN connection is down a replica cannot know about
//! revocations, so it forgets every token and answers 503 until it has reconnected and
//! reloaded. Last-use times are marked in memory at most once a minute per token and
//! written in one batched UPDATE every few seconds.

pub use super::problem::AuthError;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::snapshot::GreetingSnapshot;
use crate::auth::tokens::{self, Scopes, TokenHash};
use crate::config::DatabaseSettings;
use crate::listen::{Handler, Listener};

pub const CHANNEL: &str = "api_tokens_changed";

/// `application_name` of the token LISTEN connection, as seen in `pg_stat_activity`.
pub const LISTENER_APPLICATION_NAME: &str = "greeter-token-listener";

/// A token's last use is written at most this often.
const LAST_USED_GRANULARITY_SECS: i64 = 60;
/// How often the marked last uses are written.
const LAST_USED_FLUSH_EVERY: Duration = Duration::from_secs(2);

/// A valid token as this replica knows it.
#[derive(Debug)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub owner_id: i64,
    pub owner_username: String,
    pub scopes: Scopes,
    pub expires_at: Option<OffsetDateTime>,
    hash: TokenHash,
    /// Unix seconds of the last use marked for writing.
    marked_at: AtomicI64,
}

#[derive(Default)]
pub struct TokenCache {
    /// `None` until loaded, and again whenever the listener loses its connection.
    tokens: ArcSwapOption<HashMap<TokenHash, Arc<TokenRecord>>>,
    /// Token ids whose use was marked since the last flush.
    used: std::sync::Mutex<HashSet<i64>>,
}

impl TokenCache {
    pub fn is_loaded(&self) -> bool {
        self.tokens.load().is_some()
    }

    /// Check an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<Arc<TokenRecord>, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let header = std::str::from_utf8(header).map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = header.split_once(' ').ok_or(AuthError::Malformed)?;
        let token = token.trim_matches(' ');
        if !scheme.eq_ignore_ascii_case("bearer") || !tokens::looks_like_token(token) {
            return Err(AuthError::Malformed);
        }
        let map = self.tokens.load();
        let map = map.as_ref().ok_or(AuthError::Unavailable)?;
        let hash = tokens::hash(token);
        let record = map.get(&hash).ok_or(AuthError::Invalid)?;
        // The map found it by hash; compare the full hashes in constant time anyway, so
        // the decision itself never depends on where two hashes first differ.
        if !tokens::hashes_equal(&record.hash, &hash) {
            return Err(AuthError::Invalid);
        }
        let now = OffsetDateTime::now_utc();
        if record.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::Expired);
        }
        self.mark_used(record, now.unix_timestamp());
        Ok(record.clone())
    }

    fn mark_used(&self, record: &TokenRecord, now: i64) {
        let marked = record.marked_at.load(Ordering::Relaxed);
        if now - marked >= LAST_USED_GRANULARITY_SECS
            && record
                .marked_at
                .compare_exchange(marked, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            && let Ok(mut used) = self.used.lock()
        {
            used.insert(record.id);
        }
    }

    fn take_used(&self) -> Vec<i64> {
        self.used
            .lock()
            .map(|mut used| used.drain().collect())
            .unwrap_or_default()
    }

    fn forget(&self) {
        self.tokens.store(None);
    }
}

/// Every token that may be used now: not revoked, not expired, owner an active admin.
async fn load(
    client: &tokio_postgres::Client,
) -> Result<HashMap<TokenHash, Arc<TokenRecord>>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT t.id, t.name, t.owner_id, u.username, t.scopes, t.expires_at, t.token_hash
             FROM api_tokens t JOIN users u ON u.id = t.owner_id
             WHERE t.revoked_at IS NULL
               AND (t.expires_at IS NULL OR t.expires_at > now())
               AND u.is_active AND (u.is_staff OR u.is_superuser)",
            &[],
        )
        .await?;
    let mut map = HashMap::with_capacity(rows.len());
    for row in rows {
        let stored: Vec<u8> = row.get(6);
        let Ok(hash) = TokenHash::try_from(stored.as_slice()) else {
            continue;
        };
        let scopes: Vec<String> = row.get(4);
        map.insert(
            hash,
            Arc::new(TokenRecord {
                id: row.get(0),
                name: row.get(1),
                owner_id: row.get(2),
                owner_username: row.get(3),
                scopes: Scopes::from_names(&scopes),
                expires_at: row.get(5),
                hash,
                marked_at: AtomicI64::new(0),
            }),
        );
    }
    Ok(map)
}

/// The token LISTEN connection; it also carries the greeting snapshot's channel.
const LISTENER: Listener = Listener {
    name: "token listener",
    while_down: "API refused until reconnected",
    application_name: LISTENER_APPLICATION_NAME,
    channels: &[CHANNEL, crate::greeting::CHANNEL],
};

/// Keep `cache` current until `shutdown` turns true (reconnecting with backoff).
pub async fn listen(
    settings: DatabaseSettings,
    cache: Arc<TokenCache>,
    greetings: Arc<GreetingSnapshot>,
    shutdown: watch::Receiver<bool>,
) {
    let handler = TokenListener { cache, greetings };
    crate::listen::keep_listening(&LISTENER, &settings, &handler, shutdown).await;
}

/// What the token listener keeps current.
struct TokenListener {
    cache: Arc<TokenCache>,
    greetings: Arc<GreetingSnapshot>,
}

impl Handler for TokenListener {
    async fn connected(
        &self,
        client: &tokio_postgres::Client,
    ) -> Result<(), tokio_postgres::Error> {
        self.greetings.reload(client).await?;
        self.cache.tokens.store(Some(Arc::new(load(client).await?)));
        Ok(())
    }

    async fn notified(
        &self,
        client: &tokio_postgres::Client,
        channels: &[String],
    ) -> Result<(), tokio_postgres::Error> {
        let changed = |channel: &str| channels.iter().any(|c| c == channel);
        if changed(crate::greeting::CHANNEL) {
            self.greetings.reload(client).await?;
        }
        if changed(CHANNEL) {
            self.cache.tokens.store(Some(Arc::new(load(client).await?)));
            tracing::info!("API tokens reloaded after a change notification");
        }
        Ok(())
    }

    /// Fail closed: a revocation (or a greeting change) could be missed meanwhile.
    fn disconnected(&self) {
        self.cache.forget();
        self.greetings.forget();
    }
}

/// Write the marked last uses every few seconds (and once more at shutdown).
pub async fn flush_last_used(
    pool: deadpool_postgres::Pool,
    cache: Arc<TokenCache>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(LAST_USED_FLUSH_EVERY) => false,
            _ = shutdown.wait_for(|stop| *stop) => true,
        };
        let ids = cache.take_used();
        if !ids.is_empty() {
            let written = async {
                let client = pool.get().await.map_err(|e| e.to_string())?;
                client
                    .execute(
                        "UPDATE api_tokens SET last_used_at = now() WHERE id = ANY($1)",
                        &[&ids],
                    )
                    .await
                    .map_err(|e| crate::db::describe(&e))
            }
            .await;
            if let Err(error) = written {
                tracing::warn!(error, tokens = ids.len(), "could not record API token use");
            }
        }
        if stopping {
            return;
        }
    }
}
