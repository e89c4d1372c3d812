//! The greeting served by `GET /`: kept in memory, refreshed by PostgreSQL LISTEN/NOTIFY.
//!
//! A trigger on `greetings` calls `pg_notify('greeting_changed')` on every change. Each
//! replica keeps one dedicated connection LISTENing on that channel and reloads the active
//! greeting when it fires. After a lost connection it reconnects with backoff and reloads
//! once, so a change made while it was disconnected is not missed.

pub mod store;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

use crate::config::DatabaseSettings;
use crate::listen::{Handler, Listener};

pub const CHANNEL: &str = "greeting_changed";

/// `application_name` of the LISTEN connection, as seen in `pg_stat_activity`.
pub const LISTENER_APPLICATION_NAME: &str = "greeter-listener";

/// Served when no greeting is marked active (the admin keeps one active, psql might not).
pub const FALLBACK_MESSAGE: &str = "Hello, World!";

/// The current message, readable without locks on the hot path.
#[derive(Default)]
pub struct GreetingCache {
    message: ArcSwapOption<String>,
    /// Whether the LISTEN connection is up: the `greeter_database_up` gauge. Readiness
    /// does not look at it (a database outage must not empty the Service).
    connected: std::sync::atomic::AtomicBool,
}

impl GreetingCache {
    /// `None` until the first load from the database succeeded.
    pub fn get(&self) -> Option<Arc<String>> {
        self.message.load_full()
    }

    pub fn set(&self, message: &str) {
        self.message.store(Some(Arc::new(message.to_owned())));
    }

    /// Whether the listener currently holds a working database connection.
    pub fn database_connected(&self) -> bool {
        self.connected.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set_connected(&self, up: bool) {
        self.connected
            .store(up, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Read the active greeting's message.
pub async fn load_active(client: &tokio_postgres::Client) -> Result<String, tokio_postgres::Error> {
    let row = client
        .query_opt("SELECT message FROM greetings WHERE is_active LIMIT 1", &[])
        .await?;
    Ok(row
        .map(|r| r.get(0))
        .unwrap_or_else(|| FALLBACK_MESSAGE.to_owned()))
}

/// The greeting's LISTEN connection.
const LISTENER: Listener = Listener {
    name: "greeting listener",
    while_down: "reconnecting",
    application_name: LISTENER_APPLICATION_NAME,
    channels: &[CHANNEL],
};

/// Keep `cache` current until `shutdown` turns true.
pub async fn listen(
    settings: DatabaseSettings,
    cache: Arc<GreetingCache>,
    shutdown: watch::Receiver<bool>,
) {
    crate::listen::keep_listening(&LISTENER, &settings, &*cache, shutdown).await;
}

impl Handler for GreetingCache {
    async fn connected(
        &self,
        client: &tokio_postgres::Client,
    ) -> Result<(), tokio_postgres::Error> {
        self.set(&load_active(client).await?);
        self.set_connected(true);
        Ok(())
    }

    async fn notified(
        &self,
        client: &tokio_postgres::Client,
        _channels: &[String],
    ) -> Result<(), tokio_postgres::Error> {
        let message = load_active(client).await?;
        self.set(&message);
        tracing::info!("greeting reloaded after a change notification");
        Ok(())
    }

    /// The greeting stays in memory and `GET /` keeps serving it; only the gauge drops.
    fn disconnected(&self) {
        self.set_connected(false);
    }
}
