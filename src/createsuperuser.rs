//! `greeter createsuperuser`: create an admin superuser, like Django's command.
//!
//! Exit codes: 0 created, 1 refused or failed (a password rule, an existing name, the
//! database), 2 a usage or configuration mistake.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;

use secrecy::{ExposeSecret, SecretString};

use crate::auth::{password, users};
use crate::command::{self, Command};
use crate::config;

const COMMAND: Command = Command("greeter createsuperuser");

/// Run the command: `username` from `--username`, `noinput` from `--noinput`.
pub fn run(username: Option<String>, noinput: bool) -> ExitCode {
    match create(username, noinput) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

fn create(username: Option<String>, noinput: bool) -> Result<(), ExitCode> {
    let database = command::database_settings()?;
    let interactive = !noinput && std::io::stdin().is_terminal();
    let username = match username {
        Some(name) => name,
        None if interactive => prompt("Username: ")
            .map_err(|e| COMMAND.fail(&format!("cannot read the username: {e}")))?,
        None => return Err(COMMAND.usage("--username is required when not prompting")),
    };
    COMMAND.check_username(&username)?;
    let password =
        read_password(interactive, noinput).map_err(|message| COMMAND.usage(&message))?;
    let problems = password::validate(password.expose_secret(), &username);
    if !problems.is_empty() {
        for problem in problems {
            eprintln!("{}: {problem}", COMMAND.0);
        }
        return Err(ExitCode::FAILURE);
    }
    COMMAND.with_database(&database, async |client| {
        users::create_superuser(client, &username, password).await
    })?;
    println!("Superuser {username:?} created successfully.");
    Ok(())
}

/// ADMIN_PASSWORD(_FILE), else a double prompt on a terminal, else one line of stdin.
fn read_password(interactive: bool, noinput: bool) -> Result<SecretString, String> {
    if let Some(password) = config::admin_password_from_env().map_err(|e| e.to_string())? {
        return Ok(password);
    }
    if noinput {
        return Err("--noinput needs ADMIN_PASSWORD or ADMIN_PASSWORD_FILE".into());
    }
    if interactive {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let second = rpassword::prompt_password("Password (again): ").map_err(|e| e.to_string())?;
        if first != second {
            return Err("the two passwords differ".into());
        }
        return Ok(SecretString::from(first));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(4096)
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err("no password on stdin (or set ADMIN_PASSWORD)".into());
    }
    Ok(SecretString::from(password))
}

fn prompt(label: &str) -> std::io::Result<String> {
    print!("{label}");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}
