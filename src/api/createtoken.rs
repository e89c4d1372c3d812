//! `greeter createtoken`: create an API token and print it, once, on standard output.
//!
//! Exit codes, as for `createsuperuser`: 0 created, 1 refused or failed (no such active
//! staff user, the database), 2 a usage or configuration mistake.

use std::process::ExitCode;

use crate::auth::tokens::{self, NewToken, Scope, Scopes};
use crate::command::{self, Command};

const COMMAND: Command = Command("greeter createtoken");

/// Run the command with its parsed flags.
pub fn run(
    name: &str,
    scope_names: &[String],
    expires_in_days: Option<u32>,
    username: &str,
) -> ExitCode {
    match create(name, scope_names, expires_in_days, username) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

fn create(
    name: &str,
    scope_names: &[String],
    expires_in_days: Option<u32>,
    username: &str,
) -> Result<(), ExitCode> {
    let mut scopes = Vec::new();
    for scope in scope_names {
        match Scope::parse(scope) {
            Some(scope) => scopes.push(scope),
            None => {
                return Err(COMMAND.usage(&format!(
                    "unknown scope {scope:?}: use greetings:read or greetings:write"
                )));
            }
        }
    }
    COMMAND.check_username(username)?;
    let new = NewToken {
        name,
        scopes: Scopes::from_list(&scopes),
        expires_in_days,
    };
    tokens::validate(&new).map_err(|e| COMMAND.usage(&e.to_string()))?;
    let database = command::database_settings()?;
    let created = COMMAND.with_database(&database, async |client| {
        tokens::create(client, username, &new).await
    })?;
    eprintln!(
        "Token {name:?} (id {}) created for {:?}; it is shown only this once:",
        created.id, created.owner_username
    );
    println!("{}", created.token);
    Ok(())
}
