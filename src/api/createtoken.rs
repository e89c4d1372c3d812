//! `greeter createtoken`: create an API token and print it, once, on standard output.
//!
//! Exit codes, as for `createsuperuser`: 0 created, 1 refused or failed (no such active
//! staff user, the database), 2 a usage or configuration mistake.

use std::process::ExitCode;
use std::time::Duration;

use crate::auth::tokens::{self, NewToken, Scope, Scopes};
use crate::auth::users;
use crate::config::{DatabaseSettings, ProcessEnv};

const COMMAND: &str = "greeter createtoken";

/// Run the command with its parsed flags.
pub fn run(
    name: &str,
    scope_names: &[String],
    expires_in_days: Option<u32>,
    username: &str,
) -> ExitCode {
    let mut scopes = Vec::new();
    for scope in scope_names {
        match Scope::parse(scope) {
            Some(scope) => scopes.push(scope),
            None => {
                return usage(&format!(
                    "unknown scope {scope:?}: use greetings:read or greetings:write"
                ));
            }
        }
    }
    if !users::username_is_valid(username) {
        return usage("the username must be 1-150 letters, digits and @ . + - _");
    }
    let new = NewToken {
        name,
        scopes: Scopes::from_list(&scopes),
        expires_in_days,
    };
    if let Err(e) = tokens::validate(&new) {
        return usage(&e.to_string());
    }
    let database = match DatabaseSettings::from_source(&ProcessEnv) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("greeter: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let result = runtime.block_on(async {
        let client =
            crate::migrations::connect_with_retry(&database, Duration::from_secs(10)).await?;
        anyhow::Ok(tokens::create(&client, username, &new).await)
    });
    match result {
        Ok(Ok(created)) => {
            eprintln!(
                "Token {name:?} (id {}) created for {:?}; it is shown only this once:",
                created.id, created.owner_username
            );
            println!("{}", created.token);
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => fail(&e.to_string()),
        Err(e) => fail(&format!("cannot reach the database: {e:#}")),
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("{COMMAND}: {message}");
    ExitCode::from(2)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("{COMMAND}: {message}");
    ExitCode::FAILURE
}
