//! `greeter createsuperuser`: create an admin superuser, like Django's command.
//!
//! Exit codes: 0 created, 1 refused or failed (a password rule, an existing name, the
//! database), 2 a usage or configuration mistake.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::auth::{password, users};
use crate::config::{self, DatabaseSettings, ProcessEnv};

/// Run the command: `username` from `--username`, `noinput` from `--noinput`.
pub fn run(username: Option<String>, noinput: bool) -> ExitCode {
    let database = match DatabaseSettings::from_source(&ProcessEnv) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("greeter: {e}");
            return ExitCode::from(2);
        }
    };
    let interactive = !noinput && std::io::stdin().is_terminal();
    let username = match username {
        Some(name) => name,
        None if interactive => match prompt("Username: ") {
            Ok(name) => name,
            Err(e) => return fail(&format!("cannot read the username: {e}")),
        },
        None => return usage("--username is required when not prompting"),
    };
    if !users::username_is_valid(&username) {
        return usage("the username must be 1-150 letters, digits and @ . + - _");
    }
    let password = match read_password(interactive, noinput) {
        Ok(password) => password,
        Err(message) => return usage(&message),
    };
    let problems = password::validate(password.expose_secret(), &username);
    if !problems.is_empty() {
        for problem in problems {
            eprintln!("greeter createsuperuser: {problem}");
        }
        return ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let result = runtime.block_on(async {
        let client =
            crate::migrations::connect_with_retry(&database, Duration::from_secs(10)).await?;
        anyhow::Ok(users::create_superuser(&client, &username, password).await)
    });
    match result {
        Ok(Ok(_)) => {
            println!("Superuser {username:?} created successfully.");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => fail(&e.to_string()),
        Err(e) => fail(&format!("cannot reach the database: {e:#}")),
    }
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

fn usage(message: &str) -> ExitCode {
    eprintln!("greeter createsuperuser: {message}");
    ExitCode::from(2)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("greeter createsuperuser: {message}");
    ExitCode::FAILURE
}
