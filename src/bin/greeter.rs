//! `greeter`: the HTTP server (`serve`, the default), `createsuperuser` and `createtoken`.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use greeter::auth::{password, users};
use greeter::config::{self, ConfigError, DatabaseSettings, ProcessEnv, Settings};
use greeter::startup::{Application, shutdown_signal};
use secrecy::{ExposeSecret, SecretString};

// musl's allocator is slow under multi-threaded load; the static images are musl.
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "greeter",
    version,
    about = "The greeter HTTP server and admin tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, the admin and /metrics (the default).
    Serve,
    /// Create an admin superuser, like Django's `createsuperuser`.
    ///
    /// The password comes from ADMIN_PASSWORD (or ADMIN_PASSWORD_FILE), else from a prompt
    /// on a terminal, else from the first line of standard input.
    Createsuperuser {
        /// The new user's name; prompted for on a terminal when omitted.
        #[arg(long)]
        username: Option<String>,
        /// Never prompt; fail instead when something is missing.
        #[arg(long)]
        noinput: bool,
    },
    /// Create an API token for /api/v1/ and print it (once: only its hash is stored).
    Createtoken {
        /// What the token is for, e.g. "ci-deploy" (1-100 characters).
        #[arg(long)]
        name: String,
        /// greetings:read or greetings:write (which includes reading); repeatable.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// The token stops working after this many days (1-3650); never, if omitted.
        #[arg(long)]
        expires_in_days: Option<u32>,
        /// The owner: an existing active admin (staff) user.
        #[arg(long)]
        username: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Createsuperuser { username, noinput } => createsuperuser(username, noinput),
        Command::Createtoken {
            name,
            scopes,
            expires_in_days,
            username,
        } => createtoken(&name, &scopes, expires_in_days, &username),
    }
}

fn config_failure(e: &ConfigError) -> ExitCode {
    eprintln!("greeter: {e}");
    ExitCode::from(2)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

/// glibc raises its mmap threshold after the first large `free`; from then on argon2's
/// 19 MiB buffers come from the malloc heap and stay resident after use (measured: RSS
/// ~110 MiB after a login flood instead of ~12 MiB). A fixed threshold keeps them
/// mmap-backed, so they go back to the OS as soon as a hash is done.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only changes malloc's tuning; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        // One arena per core instead of eight: memory freed by the log writer thread
        // otherwise stays spread over many half-empty arenas.
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn serve() -> ExitCode {
    tune_allocator();
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => return config_failure(&e),
    };
    let _log_guard = greeter::telemetry::init(settings.log_format);
    let result = runtime().block_on(async {
        let app = Application::build(settings).await?;
        app.run_until(shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "greeter stopped");
            eprintln!("greeter: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn createsuperuser(username: Option<String>, noinput: bool) -> ExitCode {
    let database = match DatabaseSettings::from_source(&ProcessEnv) {
        Ok(db) => db,
        Err(e) => return config_failure(&e),
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
    let result = runtime().block_on(async {
        let client =
            greeter::migrations::connect_with_retry(&database, Duration::from_secs(10)).await?;
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

fn createtoken(
    name: &str,
    scope_names: &[String],
    expires_in_days: Option<u32>,
    username: &str,
) -> ExitCode {
    use greeter::api::tokens::{self, NewToken, Scope, Scopes};
    const COMMAND: &str = "greeter createtoken";
    let mut scopes = Vec::new();
    for name in scope_names {
        match Scope::parse(name) {
            Some(scope) => scopes.push(scope),
            None => {
                return command_usage(
                    COMMAND,
                    &format!("unknown scope {name:?}: use greetings:read or greetings:write"),
                );
            }
        }
    }
    if !users::username_is_valid(username) {
        return command_usage(
            COMMAND,
            "the username must be 1-150 letters, digits and @ . + - _",
        );
    }
    let new = NewToken {
        name,
        scopes: Scopes::from_list(&scopes),
        expires_in_days,
    };
    if let Err(e) = tokens::validate(&new) {
        return command_usage(COMMAND, &e.to_string());
    }
    let database = match DatabaseSettings::from_source(&ProcessEnv) {
        Ok(db) => db,
        Err(e) => return config_failure(&e),
    };
    let result = runtime().block_on(async {
        let client =
            greeter::migrations::connect_with_retry(&database, Duration::from_secs(10)).await?;
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
        Ok(Err(e)) => command_failure(COMMAND, &e.to_string()),
        Err(e) => command_failure(COMMAND, &format!("cannot reach the database: {e:#}")),
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

fn command_usage(command: &str, message: &str) -> ExitCode {
    eprintln!("{command}: {message}");
    ExitCode::from(2)
}

fn command_failure(command: &str, message: &str) -> ExitCode {
    eprintln!("{command}: {message}");
    ExitCode::FAILURE
}

fn fail(message: &str) -> ExitCode {
    eprintln!("greeter createsuperuser: {message}");
    ExitCode::FAILURE
}
