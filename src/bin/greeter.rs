//! `greeter`: the HTTP server (`serve`, the default), `createsuperuser` and `createtoken`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use greeter::config::Settings;
use greeter::startup::{Application, shutdown_signal};

// mimalloc in every build (Cargo.toml says why): the images are musl, whose allocator
// serialises threads, and the benchmark should measure the allocator they run.
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
        Command::Createsuperuser { username, noinput } => {
            greeter::createsuperuser::run(username, noinput)
        }
        Command::Createtoken {
            name,
            scopes,
            expires_in_days,
            username,
        } => greeter::api::createtoken::run(&name, &scopes, expires_in_days, &username),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

fn serve() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("greeter: {e}");
            return ExitCode::from(2);
        }
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
