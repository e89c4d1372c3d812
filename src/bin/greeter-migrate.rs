//! `greeter-migrate`: apply the embedded migrations once, or (`--wait`) gate until the
//! database schema is current. See "Migrations" in DOCS.md.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use greeter::auth::{password, users};
use greeter::config::{self, AdminBootstrap, ConfigError, DatabaseSettings, ProcessEnv};
use greeter::migrations;
use secrecy::ExposeSecret;

// mimalloc in every build (Cargo.toml says why): the images are musl, whose allocator
// serialises threads, and the benchmark should measure the allocator they run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "greeter-migrate",
    version,
    about = "Apply greeter's database migrations (or wait until they are applied)"
)]
struct Cli {
    /// Apply nothing: exit 0 once every embedded migration is applied, fail after --timeout.
    #[arg(long)]
    wait: bool,
    /// How long to wait for the database (and, with --wait, for the migrations).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    timeout: u64,
}

/// How often `--wait` looks again.
const POLL: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let loaded = (|| -> Result<_, ConfigError> {
        let database = DatabaseSettings::from_source(&ProcessEnv)?;
        // The gate never creates users, so it ignores the ADMIN_* variables.
        let admin = if cli.wait {
            None
        } else {
            AdminBootstrap::from_source(&ProcessEnv)?
        };
        if let Some(admin) = &admin {
            check_admin(admin)?;
        }
        Ok((database, admin, config::log_format_from_env()?))
    })();
    let (database, admin, log_format) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("greeter-migrate: {e}");
            return ExitCode::from(2);
        }
    };
    let _log_guard = greeter::telemetry::init(log_format);
    let timeout = Duration::from_secs(cli.timeout);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let ok = if cli.wait {
        runtime.block_on(wait_until_current(&database, timeout))
    } else {
        runtime.block_on(apply(&database, admin, timeout))
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The bootstrap user is checked before touching the database, like any configuration.
fn check_admin(admin: &AdminBootstrap) -> Result<(), ConfigError> {
    if !users::username_is_valid(&admin.username) {
        return Err(ConfigError {
            variable: "ADMIN_USERNAME".into(),
            problem: "is invalid: use 1-150 letters, digits and @ . + - _".into(),
        });
    }
    let problems = password::validate(admin.password.expose_secret(), &admin.username);
    if let Some(problem) = problems.first() {
        return Err(ConfigError {
            variable: "ADMIN_PASSWORD".into(),
            problem: format!("is too weak: {problem}"),
        });
    }
    Ok(())
}

async fn apply(
    database: &DatabaseSettings,
    admin: Option<AdminBootstrap>,
    timeout: Duration,
) -> bool {
    let mut client = match migrations::connect_with_retry(database, timeout).await {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(
                error = greeter::db::describe(&e),
                timeout_s = timeout.as_secs(),
                "database not reachable; giving up"
            );
            return false;
        }
    };
    match migrations::apply(&mut client, timeout).await {
        Ok(applied) if applied.is_empty() => tracing::info!("schema is current; nothing to apply"),
        Ok(applied) => {
            for migration in &applied {
                tracing::info!(migration = %migration, "applied");
            }
            tracing::info!(count = applied.len(), "migrations applied");
        }
        Err(e) => {
            tracing::error!(error = greeter::db::describe(&e), "migrations failed");
            return false;
        }
    }
    let Some(admin) = admin else {
        return true;
    };
    match users::create_superuser(&client, &admin.username, admin.password).await {
        Ok(_) => {
            tracing::info!(username = %admin.username, "superuser created");
            true
        }
        Err(users::CreateUserError::AlreadyExists(_)) => {
            tracing::info!(username = %admin.username, "superuser exists; password left unchanged");
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "creating the superuser failed");
            false
        }
    }
}

async fn wait_until_current(database: &DatabaseSettings, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut client: Option<tokio_postgres::Client> = None;
    let mut last_problem;
    loop {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = greeter::db::connect(database)
                .await
                .map_err(|e| {
                    tracing::warn!(
                        error = greeter::db::describe(&e),
                        "database not reachable yet"
                    );
                })
                .ok();
        }
        last_problem = match &client {
            None => "the database is not reachable".to_owned(),
            Some(c) => match migrations::missing(c).await {
                Ok(missing) if missing.is_empty() => {
                    tracing::info!(
                        migrations = migrations::embedded_versions().len(),
                        "schema is current"
                    );
                    return true;
                }
                Ok(missing) => {
                    let (version, name) = &missing[0];
                    format!(
                        "migration V{version}__{name} is not applied ({} pending)",
                        missing.len()
                    )
                }
                Err(e) => format!("cannot read the schema history: {e}"),
            },
        };
        if tokio::time::Instant::now() + POLL > deadline {
            break;
        }
        tracing::info!(reason = %last_problem, "waiting for migrations");
        tokio::time::sleep(POLL).await;
    }
    tracing::error!(timeout_s = timeout.as_secs(), reason = %last_problem, "gave up waiting");
    eprintln!(
        "greeter-migrate: timed out after {}s: {last_problem}",
        timeout.as_secs()
    );
    false
}
