//! Schema migrations, embedded at compile time from `migrations/`.
//!
//! refinery itself takes no lock, so two runners started at once would both try to apply
//! the same migration. We hold a PostgreSQL advisory lock on the *same* client the runner
//! uses for the whole run: the second runner waits, then finds nothing left to apply.

use std::collections::BTreeSet;
use std::time::Duration;

use refinery::Migration;
use tokio_postgres::Client;

use crate::config::DatabaseSettings;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// refinery's history table (its default name, spelled out because queries depend on it).
pub const HISTORY_TABLE: &str = "refinery_schema_history";

/// An arbitrary constant shared by every greeter-migrate: "greeter\0" as a big-endian i64.
const ADVISORY_LOCK_KEY: i64 = 0x6772_6565_7465_7200;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Refinery(#[from] refinery::Error),
}

/// (version, name) of every migration this binary embeds, in order.
pub fn embedded_versions() -> Vec<(i32, String)> {
    let mut all: Vec<(i32, String)> = embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m: &Migration| (m.version(), m.name().to_owned()))
        .collect();
    all.sort();
    all
}

/// The embedded migrations that the database has not applied yet, oldest first.
/// Versions the database has but this binary does not know (after a rollback of the
/// code) are ignored: the schema only moves forward and old code keeps working.
pub async fn missing(client: &Client) -> Result<Vec<(i32, String)>, tokio_postgres::Error> {
    let table_exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&HISTORY_TABLE])
        .await?
        .get(0);
    let applied: BTreeSet<i32> = if table_exists {
        client
            .query(&format!("SELECT version FROM {HISTORY_TABLE}"), &[])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect()
    } else {
        BTreeSet::new()
    };
    Ok(embedded_versions()
        .into_iter()
        .filter(|(version, _)| !applied.contains(version))
        .collect())
}

/// Apply every pending migration while holding the advisory lock; returns what was applied.
pub async fn apply(
    client: &mut Client,
    lock_timeout: Duration,
) -> Result<Vec<String>, MigrateError> {
    // lock_timeout bounds the wait for a concurrent runner instead of hanging forever.
    client
        .batch_execute(&format!(
            "SET lock_timeout = '{}ms'",
            lock_timeout.as_millis()
        ))
        .await?;
    tracing::info!("waiting for the migration lock");
    client
        .execute("SELECT pg_advisory_lock($1)", &[&ADVISORY_LOCK_KEY])
        .await?;
    tracing::info!("migration lock acquired");
    let result = embedded::migrations::runner()
        .set_abort_missing(false)
        .set_abort_divergent(true)
        .run_async(client)
        .await;
    // Unlock even when the run failed; the lock would also go with the session.
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&ADVISORY_LOCK_KEY])
        .await;
    let report = result?;
    unlock?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

/// Connect, retrying with exponential backoff (capped at 5 s) until `timeout` passes.
pub async fn connect_with_retry(
    settings: &DatabaseSettings,
    timeout: Duration,
) -> Result<Client, tokio_postgres::Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1u32;
    loop {
        match crate::db::connect(settings).await {
            Ok(client) => {
                tracing::info!(attempt, "connected to the database");
                return Ok(client);
            }
            Err(e) if tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(
                    attempt,
                    error = crate::db::describe(&e),
                    host = %settings.host,
                    port = settings.port,
                    retry_in_ms = delay.as_millis() as u64,
                    "database not reachable yet"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}
