//! The greeting served by `GET /`: kept in memory, refreshed by PostgreSQL LISTEN/NOTIFY.
//!
//! A trigger on `greetings` calls `pg_notify('greeting_changed')` on every change. Each
//! replica keeps one dedicated connection LISTENing on that channel and reloads the active
//! greeting when it fires. After a lost connection it reconnects with backoff and reloads
//! once, so a change made while it was disconnected is not missed.

pub mod store;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_postgres::AsyncMessage;

use crate::config::DatabaseSettings;

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

/// Keep `cache` current until `shutdown` turns true.
pub async fn listen(
    settings: DatabaseSettings,
    cache: Arc<GreetingCache>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = tokio::select! {
            result = listen_once(&settings, &cache) => result,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        // The greeting stays in memory and `GET /` keeps serving it; only the gauge drops.
        cache.set_connected(false);
        match result {
            Ok(()) => {
                // It was connected, so start the backoff afresh.
                backoff = Duration::from_millis(100);
                tracing::warn!("greeting listener connection closed; reconnecting");
            }
            Err(e) => tracing::warn!(
                error = crate::db::describe(&e),
                retry_in_ms = backoff.as_millis() as u64,
                "greeting listener failed; reconnecting"
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One connection's life: LISTEN, load, then reload on each notification until it drops.
async fn listen_once(
    settings: &DatabaseSettings,
    cache: &GreetingCache,
) -> Result<(), tokio_postgres::Error> {
    let mut config = settings.pg_config();
    // A name of its own, so operators (and tests) can tell this connection apart.
    config.application_name(LISTENER_APPLICATION_NAME);
    let (client, mut connection) = config.connect(crate::db::tls_connector()).await?;
    // The connection must be polled to make progress; its messages carry the notifications.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "greeting listener connection error");
                    break;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    cache.set(&load_active(&client).await?);
    cache.set_connected(true);
    tracing::info!("greeting listener connected");
    // Notifications that arrive during a reload coalesce into one further reload.
    while rx.recv().await.is_some() {
        while rx.try_recv().is_ok() {}
        let message = load_active(&client).await?;
        cache.set(&message);
        tracing::info!("greeting reloaded after a change notification");
    }
    driver.abort();
    Ok(())
}
