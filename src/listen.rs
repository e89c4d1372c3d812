//! A LISTEN connection kept alive with backoff: the machinery shared by the greeting
//! listener (src/greeting.rs) and the API token listener (src/api/auth.rs).
//!
//! One dedicated connection (with its own `application_name`, so operators and tests can
//! tell it apart in `pg_stat_activity`) LISTENs on some channels, loads once, and reloads
//! on every notification. When it drops, the handler is told (each side decides what a
//! lost connection means) and it reconnects with backoff, loading again, so a change made
//! while it was disconnected is not missed.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, Client, Error};

use crate::config::DatabaseSettings;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Which connection to keep and how its log lines read.
pub struct Listener {
    /// Start of every log line, e.g. "greeting listener".
    pub name: &'static str,
    /// What a lost connection means, ending the disconnect warnings, e.g. "reconnecting".
    pub while_down: &'static str,
    /// `application_name` of the connection, as seen in `pg_stat_activity`.
    pub application_name: &'static str,
    pub channels: &'static [&'static str],
}

/// What to do with the connection.
pub trait Handler: Send + Sync {
    /// Just connected and LISTENing: load everything.
    fn connected(&self, client: &Client) -> impl Future<Output = Result<(), Error>> + Send;

    /// Notifications arrived on `channels` (each named once, however many came while the
    /// previous reload ran): reload what they concern.
    fn notified(
        &self,
        client: &Client,
        channels: &[String],
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The connection failed or was lost (not called at shutdown).
    fn disconnected(&self);
}

/// Keep the connection until `shutdown` turns true, reconnecting with backoff.
pub async fn keep_listening(
    listener: &Listener,
    settings: &DatabaseSettings,
    handler: &impl Handler,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = listener.name;
    let while_down = listener.while_down;
    let mut backoff = FIRST_BACKOFF;
    loop {
        let result = tokio::select! {
            result = listen_once(listener, settings, handler) => result,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        handler.disconnected();
        match result {
            Ok(()) => {
                // It was connected, so start the backoff afresh.
                backoff = FIRST_BACKOFF;
                tracing::warn!("{name} connection closed; {while_down}");
            }
            Err(e) => tracing::warn!(
                error = crate::db::describe(&e),
                retry_in_ms = backoff.as_millis() as u64,
                "{name} failed; {while_down}"
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: LISTEN, load, then reload on each notification until it drops.
async fn listen_once(
    listener: &Listener,
    settings: &DatabaseSettings,
    handler: &impl Handler,
) -> Result<(), Error> {
    let name = listener.name;
    let mut config = settings.pg_config();
    config.application_name(listener.application_name);
    let (client, mut connection) = config.connect(crate::db::tls_connector()).await?;
    // The connection must be polled to make progress; its messages carry the notifications.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.channel().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "{name} connection error");
                    break;
                }
            }
        }
    });
    let listen: Vec<String> = listener
        .channels
        .iter()
        .map(|channel| format!("LISTEN {channel}"))
        .collect();
    client.batch_execute(&listen.join("; ")).await?;
    handler.connected(&client).await?;
    tracing::info!("{name} connected");
    // Notifications that arrive during a reload coalesce into one further reload.
    while let Some(first) = rx.recv().await {
        let mut channels = vec![first];
        while let Ok(channel) = rx.try_recv() {
            if !channels.contains(&channel) {
                channels.push(channel);
            }
        }
        handler.notified(&client, &channels).await?;
    }
    driver.abort();
    Ok(())
}
