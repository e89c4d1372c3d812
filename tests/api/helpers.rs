//! Spawning the real application for tests: in-process on random ports (fast), or as the
//! real binary (for signals, exit codes and stdout).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use greeter::config::{AppEnv, LogFormat, Settings};
use greeter::startup::Application;
use greeter::state::AppState;
use secrecy::SecretString;
use tokio::sync::oneshot;

use crate::postgres::{self, Server, TEMPLATE_DB};

pub const TEST_SECRET_KEY: &str = "test-secret-key-that-is-long-enough-0123456789";

pub struct TestApp {
    pub address: String,
    pub metrics_address: String,
    pub db_name: String,
    pub server: Server,
    pub settings: Settings,
    pub state: AppState,
    /// Keeps cookies, never follows redirects (tests assert on them).
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Settings for a test database on `server`, listening on free loopback ports.
pub fn test_settings(server: &Server, db_name: &str) -> Settings {
    Settings {
        secret_key: SecretString::from(TEST_SECRET_KEY.to_owned()),
        app_env: AppEnv::Local,
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        log_format: LogFormat::Json,
        database: server.settings(db_name),
        payment_api_key: None,
        network: Default::default(),
        admin_policy: Default::default(),
    }
}

/// A new app on its own freshly migrated database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], after `customise` adjusted the settings.
pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    let server = postgres::shared().clone();
    let db_name = server.create_database(Some(TEMPLATE_DB)).await;
    let mut settings = test_settings(&server, &db_name);
    customise(&mut settings);
    spawn_app_on(server, db_name, settings).await
}

/// Start an app for an existing database (e.g. a second replica of the same database).
pub async fn spawn_app_on(server: Server, db_name: String, settings: Settings) -> TestApp {
    let app = Application::build(settings.clone())
        .await
        .expect("the application builds");
    let address = format!("http://{}", app.http_addr());
    let metrics_address = format!("http://{}", app.metrics_addr());
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let test_app = TestApp {
        address,
        metrics_address,
        db_name,
        server,
        settings,
        state,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .unwrap(),
        stop: Some(stop),
        task: Some(task),
    };
    // The greeting loads asynchronously; tests start once the replica could serve it.
    wait_for("the greeting to load", Duration::from_secs(10), || async {
        test_app.state.greeting.get().is_some()
    })
    .await;
    test_app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// The message `GET /` serves right now.
    pub async fn served_message(&self) -> String {
        let body: serde_json::Value = self.get("/").await.json().await.unwrap();
        body["message"].as_str().unwrap().to_owned()
    }

    /// A connection to this test's own database.
    pub async fn db(&self) -> tokio_postgres::Client {
        greeter::db::connect(&self.server.settings(&self.db_name))
            .await
            .expect("connect to the test database")
    }

    /// The one `bigint` that `sql` (without parameters) selects, e.g. a `count(*)`.
    pub async fn query_i64(&self, sql: &str) -> i64 {
        self.db().await.query_one(sql, &[]).await.unwrap().get(0)
    }

    /// The id of the user named `username`.
    pub async fn user_id(&self, username: &str) -> i64 {
        self.db()
            .await
            .query_one("SELECT id FROM users WHERE username = $1", &[&username])
            .await
            .unwrap()
            .get(0)
    }

    /// Insert a user with a known password.
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        is_staff: bool,
        is_superuser: bool,
    ) -> i64 {
        let hash = greeter::auth::password::hash(&SecretString::from(password.to_owned()));
        self.db()
            .await
            .query_one(
                "INSERT INTO users (username, password_hash, is_staff, is_superuser)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&username, &hash, &is_staff, &is_superuser],
            )
            .await
            .expect("insert user")
            .get(0)
    }

    /// Stop like SIGTERM would, and wait until the server has finished.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server run");
        }
    }
}

/// Poll `condition` until it holds, or panic naming what never happened.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Terminate this database's connections named `application_name` from the server side,
/// as a failover would; returns how many there were.
pub async fn kill_connections(db: &tokio_postgres::Client, application_name: &str) -> i64 {
    db.query_one(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = $1",
        &[&application_name],
    )
    .await
    .unwrap()
    .get(0)
}

/// Environment for running the real `greeter` binary against `db_name`.
pub fn server_env(server: &Server, db_name: &str) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = server.env(db_name).into_iter().collect();
    env.insert("SECRET_KEY".into(), TEST_SECRET_KEY.into());
    env.insert("DEBUG".into(), "false".into());
    env.insert("APP_ENV".into(), "local".into());
    env.insert("LOG_FORMAT".into(), "json".into());
    env
}

/// Run one of the package's binaries with exactly `env` (nothing inherited but PATH).
pub fn binary(name: &str, env: &HashMap<String, String>) -> Command {
    let path = match name {
        "greeter" => env!("CARGO_BIN_EXE_greeter"),
        "greeter-migrate" => env!("CARGO_BIN_EXE_greeter-migrate"),
        other => panic!("unknown binary {other}"),
    };
    let mut command = Command::new(path);
    command.env_clear().envs(env);
    if let Some(p) = std::env::var_os("PATH") {
        command.env("PATH", p);
    }
    command
}

/// A `greeter serve` process on ports the kernel picked (`127.0.0.1:0`, read back from its
/// "greeter is listening" line); its stdout is collected into [`Logs`].
pub struct ServerProcess {
    pub child: Child,
    pub address: SocketAddr,
    pub logs: Logs,
}

impl ServerProcess {
    pub async fn start(server: &Server, db_name: &str) -> Self {
        Self::start_with(server, db_name, |_| {}).await
    }

    /// Like [`ServerProcess::start`], after `customise` adjusted the environment. JSON logs
    /// are needed to read the address back; with other formats `address` is unknown (port 0).
    pub async fn start_with(
        server: &Server,
        db_name: &str,
        customise: impl FnOnce(&mut HashMap<String, String>),
    ) -> Self {
        let mut env = server_env(server, db_name);
        env.insert("LISTEN_ADDR".into(), "127.0.0.1:0".into());
        env.insert("METRICS_ADDR".into(), "127.0.0.1:0".into());
        customise(&mut env);
        let json = env.get("LOG_FORMAT").map(String::as_str) == Some("json");
        let mut child = binary("greeter", &env)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start greeter");
        let logs = Logs::collect(child.stdout.take().expect("piped stdout"));
        let mut process = Self {
            child,
            address: "127.0.0.1:0".parse().unwrap(),
            logs,
        };
        if !json {
            return process;
        }
        let listening = process
            .logs
            .wait_for_json("the \"greeter is listening\" line", |l| {
                l["message"] == "greeter is listening"
            })
            .await;
        process.address = listening["http"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {listening}"));
        let url = format!("http://{}/readyz", process.address);
        wait_for(
            "the server to become ready",
            Duration::from_secs(30),
            || {
                let url = url.clone();
                async move { matches!(reqwest::get(&url).await, Ok(r) if r.status() == 200) }
            },
        )
        .await;
        process
    }

    pub fn signal(&self, signal: libc::c_int) {
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill failed");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines a child process wrote to stdout so far, read by a thread of their own.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<String>>>);

impl Logs {
    pub fn collect(stdout: impl Read + Send + 'static) -> Self {
        let logs = Self::default();
        let lines = logs.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        logs
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// How many lines so far contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Every line that is a JSON object.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Wait (generously) for a JSON line matching `condition`, and return it.
    pub async fn wait_for_json(
        &self,
        what: &str,
        condition: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut found = None;
        wait_for(what, Duration::from_secs(30), || {
            found = self.json().into_iter().find(|l| condition(l));
            std::future::ready(found.is_some())
        })
        .await;
        found.unwrap()
    }
}
