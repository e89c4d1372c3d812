//! What the one-shot commands (`createsuperuser`, `createtoken`) share: their messages on
//! standard error, their exit codes (0 done, 1 refused or failed, 2 a usage or
//! configuration mistake), reading the database settings and one database round.

use std::fmt::Display;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::{DatabaseSettings, ProcessEnv};

/// How long a command waits for the database to accept connections.
const CONNECT_FOR: Duration = Duration::from_secs(10);

/// A command, by the name its messages start with (e.g. "greeter createtoken").
pub struct Command(pub &'static str);

impl Command {
    /// A usage or configuration mistake: exit code 2.
    pub fn usage(&self, message: &str) -> ExitCode {
        eprintln!("{}: {message}", self.0);
        ExitCode::from(2)
    }

    /// Refused or failed: exit code 1.
    pub fn fail(&self, message: &str) -> ExitCode {
        eprintln!("{}: {message}", self.0);
        ExitCode::FAILURE
    }

    /// A usage error unless `username` is one the admin accepts.
    pub fn check_username(&self, username: &str) -> Result<(), ExitCode> {
        if crate::auth::users::username_is_valid(username) {
            Ok(())
        } else {
            Err(self.usage("the username must be 1-150 letters, digits and @ . + - _"))
        }
    }

    /// Connect (retrying while the database starts) and run `work` on the connection.
    /// Either failing is reported and turned into exit code 1.
    pub fn with_database<T, E: Display>(
        &self,
        database: &DatabaseSettings,
        work: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, E>,
    ) -> Result<T, ExitCode> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("the tokio runtime starts");
        let result = runtime.block_on(async {
            let client = crate::migrations::connect_with_retry(database, CONNECT_FOR).await?;
            anyhow::Ok(work(&client).await)
        });
        match result {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(e)) => Err(self.fail(&e.to_string())),
            Err(e) => Err(self.fail(&format!("cannot reach the database: {e:#}"))),
        }
    }
}

/// The `DATABASE_*` settings from the environment; a mistake (the variable is named, no
/// secret shown) is exit code 2.
pub fn database_settings() -> Result<DatabaseSettings, ExitCode> {
    DatabaseSettings::from_source(&ProcessEnv).map_err(|e| {
        eprintln!("greeter: {e}");
        ExitCode::from(2)
    })
}
