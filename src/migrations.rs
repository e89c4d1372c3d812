//! Schema migrations, embedded at compile time from `migrations/`.
//!
//! refinery itself takes no lock, so two runners started at once would both try to apply
//! the same migration. We hold a PostgreSQL advisory lock on the *same* client the runner
//! uses for the whole run: the second runner waits, then finds nothing left to apply.
//!
//! refinery 0.10 runs every migration inside a transaction (refinery-core 0.10.1,
//! `src/drivers/tokio_postgres.rs`: `execute` opens one around the file and the history
//! row), where `CREATE INDEX CONCURRENTLY` cannot run. A migration whose first line is
//! [`NO_TRANSACTION`] is therefore applied here, statement by statement, and then recorded
//! in refinery's history with refinery's own `Target::FakeVersion` (the history row and its
//! checksum, without running the SQL), so refinery, the readiness check and `--wait` see
//! it exactly like any other applied migration.

use std::collections::BTreeSet;
use std::time::Duration;

use refinery::{Migration, Report, Runner, Target};
use tokio_postgres::Client;

use crate::config::DatabaseSettings;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// refinery's history table (its default name, spelled out because queries depend on it).
pub const HISTORY_TABLE: &str = "refinery_schema_history";

/// An arbitrary constant shared by every greeter-migrate: "greeter\0" as a big-endian i64.
const ADVISORY_LOCK_KEY: i64 = 0x6772_6565_7465_7200;

/// The first line of a migration that runs outside a transaction, one statement at a time
/// (see [`statements`] for how the file is split). Such a migration must be safe to run
/// again from the start: if it fails half-way, nothing is recorded and the next run
/// repeats it.
pub const NO_TRANSACTION: &str = "-- greeter:no-transaction";

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("database error: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Refinery(#[from] refinery::Error),
    #[error("migration {migration} failed: {source}")]
    Statement {
        migration: String,
        source: tokio_postgres::Error,
    },
    #[error("another greeter-migrate held the migration lock for more than {}s", .0.as_secs())]
    LockTimeout(Duration),
    #[error("migration {0} ran but refinery did not record it")]
    NotRecorded(String),
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
    let applied = applied_versions(client).await?;
    Ok(embedded_versions()
        .into_iter()
        .filter(|(version, _)| !applied.contains(version))
        .collect())
}

/// The versions in refinery's history table (none before the first run created it).
async fn applied_versions(client: &Client) -> Result<BTreeSet<i32>, tokio_postgres::Error> {
    let table_exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&HISTORY_TABLE])
        .await?
        .get(0);
    if !table_exists {
        return Ok(BTreeSet::new());
    }
    Ok(client
        .query(&format!("SELECT version FROM {HISTORY_TABLE}"), &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Apply every pending migration while holding the advisory lock; returns what was applied.
pub async fn apply(
    client: &mut Client,
    lock_timeout: Duration,
) -> Result<Vec<String>, MigrateError> {
    // lock_timeout bounds every lock wait of the migrations (CREATE INDEX CONCURRENTLY waits
    // for old transactions) instead of hanging forever.
    client
        .batch_execute(&format!(
            "SET lock_timeout = '{}ms'",
            lock_timeout.as_millis()
        ))
        .await?;
    tracing::info!("waiting for the migration lock");
    // Polled, not waited for in `pg_advisory_lock`: a runner blocked there sits in a
    // statement, i.e. a transaction, and CREATE INDEX CONCURRENTLY in the lock holder waits
    // for every transaction of the database to end, so the two would deadlock.
    let deadline = tokio::time::Instant::now() + lock_timeout;
    let mut delay = Duration::from_millis(50);
    loop {
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&ADVISORY_LOCK_KEY])
            .await?
            .get(0);
        if locked {
            break;
        }
        if tokio::time::Instant::now() + delay > deadline {
            return Err(MigrateError::LockTimeout(lock_timeout));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
    tracing::info!("migration lock acquired");
    let result = run_pending(client).await;
    // Unlock even when the run failed; the lock would also go with the session.
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&ADVISORY_LOCK_KEY])
        .await;
    let applied = result?;
    unlock?;
    Ok(applied)
}

/// refinery applies the migrations up to the next one marked [`NO_TRANSACTION`], we apply
/// that one, refinery records it; until none is left, then refinery applies the rest.
async fn run_pending(client: &mut Client) -> Result<Vec<String>, MigrateError> {
    let mut migrations = embedded::migrations::runner().get_migrations().clone();
    migrations.sort();
    let runner = |target: Target| {
        Runner::new(&migrations)
            .set_abort_missing(false)
            .set_abort_divergent(true)
            .set_target(target)
    };
    let names = |report: Report| -> Vec<String> {
        report
            .applied_migrations()
            .iter()
            .map(|m| m.to_string())
            .collect()
    };
    let mut applied = Vec::new();
    loop {
        let done = applied_versions(client).await?;
        // Like refinery, only versions above the newest applied one are pending (an older
        // unapplied one is logged by refinery and skipped).
        let newest = done.last().copied();
        let next = migrations.iter().find(|m| {
            !done.contains(&m.version())
                && newest.is_none_or(|v| m.version() > v)
                && runs_outside_transaction(m)
        });
        let Some(migration) = next else {
            applied.extend(names(runner(Target::Latest).run_async(client).await?));
            return Ok(applied);
        };
        let version = migration.version();
        applied.extend(names(
            runner(Target::Version(version - 1))
                .run_async(client)
                .await?,
        ));
        tracing::info!(%migration, "applying migration outside a transaction");
        for statement in statements(migration.sql().unwrap_or_default()) {
            client
                .batch_execute(&statement)
                .await
                .map_err(|source| MigrateError::Statement {
                    migration: migration.to_string(),
                    source,
                })?;
        }
        runner(Target::FakeVersion(version))
            .run_async(client)
            .await?;
        if !applied_versions(client).await?.contains(&version) {
            return Err(MigrateError::NotRecorded(migration.to_string()));
        }
        applied.push(migration.to_string());
    }
}

fn runs_outside_transaction(migration: &Migration) -> bool {
    migration
        .sql()
        .and_then(|sql| sql.lines().next())
        .is_some_and(|first| first.trim_end() == NO_TRANSACTION)
}

/// The statements of a [`NO_TRANSACTION`] migration, each to be sent on its own (several in
/// one simple query would run in one implicit transaction). A statement ends with a line
/// whose last character is `;`, except inside a `$$`-quoted body (each `$$` on a line
/// opens or closes one); lines starting with `--` are comments and never end one.
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for line in sql.lines() {
        let trimmed = line.trim();
        let comment = trimmed.starts_with("--");
        if !comment || quoted {
            current.push_str(line);
            current.push('\n');
        }
        if comment {
            continue;
        }
        if !line.matches("$$").count().is_multiple_of(2) {
            quoted = !quoted;
        }
        if !quoted && trimmed.ends_with(';') {
            out.push(std::mem::take(&mut current).trim().to_owned());
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_line_ends_but_not_inside_dollar_quotes_or_comments() {
        let sql = "-- greeter:no-transaction\n-- a comment; with a semicolon and $$\n\
                   CREATE EXTENSION IF NOT EXISTS pg_trgm;\n\n\
                   DO $$\nBEGIN\n    PERFORM 1;\n    -- inside;\nEND\n$$;\n\
                   CREATE INDEX CONCURRENTLY i\n    ON t (a);\nSELECT 'trailing'";
        assert_eq!(
            statements(sql),
            vec![
                "CREATE EXTENSION IF NOT EXISTS pg_trgm;",
                "DO $$\nBEGIN\n    PERFORM 1;\n    -- inside;\nEND\n$$;",
                "CREATE INDEX CONCURRENTLY i\n    ON t (a);",
                "SELECT 'trailing'",
            ]
        );
    }

    #[test]
    fn the_scale_indexes_migration_runs_each_concurrent_build_on_its_own() {
        let migrations = embedded::migrations::runner().get_migrations().clone();
        let v4 = migrations
            .iter()
            .find(|m| m.version() == 4)
            .expect("V4 is embedded");
        assert!(runs_outside_transaction(v4));
        let parts = statements(v4.sql().unwrap());
        let concurrent: Vec<&String> = parts
            .iter()
            .filter(|s| s.contains("CONCURRENTLY"))
            .collect();
        assert_eq!(concurrent.len(), 9, "{parts:#?}");
        assert!(concurrent.iter().all(|s| s.starts_with("CREATE INDEX")));
        assert_eq!(parts.len(), 12, "extension, drop-invalid, 9 indexes, check");
        // The schema itself is still created in refinery's transactions.
        assert!(
            migrations
                .iter()
                .filter(|m| m.version() <= 2)
                .all(|m| !runs_outside_transaction(m))
        );
    }
}
