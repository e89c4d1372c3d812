//! A throwaway PostgreSQL for the tests, or the server named by `GREETER_TEST_DATABASE_URL`.
//!
//! initdb/pg_ctl come from PATH (`nix develop`) or `/usr/lib/postgresql/*/bin` (Debian).
//! initdb refuses to run as root, so as root every server command runs as the `postgres`
//! user through `runuser` (no sudo needed). Each test gets its own database, copied from a
//! migrated template database, which takes milliseconds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use greeter::config::{DatabaseSettings, SslMode};
use secrecy::SecretString;

pub const TEMPLATE_DB: &str = "greeter_template";
const TEST_SUPERUSER: &str = "greeter_test";

/// One PostgreSQL server owned by the tests: its data directory, port and tools.
pub struct PgCluster {
    bin_dir: PathBuf,
    root: PathBuf,
    pub port: u16,
    as_postgres_user: bool,
    /// Extra `-c name=value` server options (e.g. TLS), kept across restarts.
    extra_options: String,
}

impl PgCluster {
    /// initdb a new cluster in a fresh temporary directory and start it on a free port.
    pub fn start() -> Self {
        let cluster = Self::init();
        cluster.start_server();
        cluster
    }

    /// A cluster that only accepts TLS connections, with a certificate for 127.0.0.1
    /// signed by a throwaway CA. Returns the cluster and the CA certificate's path.
    pub fn start_tls_only() -> (Self, PathBuf) {
        let mut cluster = Self::init();
        let ca = crate::tls_certs::issue(&cluster.root, "127.0.0.1");
        cluster.give_to_postgres(&[&ca.server_cert, &ca.server_key]);
        cluster.extra_options = format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            ca.server_cert.display(),
            ca.server_key.display()
        );
        // hostssl only: a plain-text connection attempt is refused.
        let hba = cluster.root.join("data/pg_hba.conf");
        std::fs::write(&hba, "hostssl all all 127.0.0.1/32 trust\n").expect("write pg_hba.conf");
        cluster.start_server();
        (cluster, ca.ca_cert)
    }

    fn give_to_postgres(&self, files: &[&Path]) {
        if self.as_postgres_user {
            for file in files {
                let status = Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(file)
                    .status()
                    .expect("run chown");
                assert!(status.success());
            }
        }
    }

    /// initdb only; the server is not started.
    fn init() -> Self {
        let bin_dir = find_bin_dir();
        let as_postgres_user = unsafe { libc::geteuid() } == 0;
        let root = std::env::temp_dir().join(format!("greeter-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&root).expect("create the cluster directory");
        if as_postgres_user {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&root)
                .status()
                .expect("run chown");
            assert!(
                status.success(),
                "running as root needs a `postgres` system user (apt-get install postgresql)"
            );
        }
        let cluster = Self {
            bin_dir,
            root,
            port: free_port(),
            as_postgres_user,
            extra_options: String::new(),
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data_dir(),
                "-U",
                TEST_SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        );
        cluster
    }

    fn data_dir(&self) -> String {
        self.root.join("data").to_string_lossy().into_owned()
    }

    /// (Re)start the server on the same port and data directory.
    pub fn start_server(&self) {
        // Durability is irrelevant for throwaway test data; these make it much faster.
        // TCP on loopback only: no Unix socket, whose path could pass the 104-byte limit
        // under a long TMPDIR (macOS, Nix sandboxes).
        let options = format!(
            "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=400 {}",
            self.port, self.extra_options
        );
        let log = self
            .root
            .join("postgres.log")
            .to_string_lossy()
            .into_owned();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// Stop the server (fast mode: existing connections are terminated).
    pub fn stop_server(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "fast", "-w", "stop"],
        );
    }

    /// A server tool, run as the `postgres` user when we are root.
    fn command(&self, tool: &str) -> Command {
        let program = self.bin_dir.join(tool);
        let mut command = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.current_dir(&self.root).stdin(Stdio::null());
        command
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let output = self
            .command(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn server(&self) -> Server {
        Server {
            host: "127.0.0.1".into(),
            port: self.port,
            user: TEST_SUPERUSER.into(),
            password: "unused-with-trust-auth".into(),
        }
    }

    /// Stop immediately and delete the data; used at process exit and by Drop.
    fn destroy(&self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// Connection facts for a server the tests may create databases on.
#[derive(Clone, Debug)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

impl Server {
    pub fn settings(&self, database: &str) -> DatabaseSettings {
        DatabaseSettings {
            name: database.into(),
            user: self.user.clone(),
            password: SecretString::from(self.password.clone()),
            host: self.host.clone(),
            port: self.port,
            pool_max: 8,
            sslmode: SslMode::Disable,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// The environment a greeter process needs to reach `database`.
    pub fn env(&self, database: &str) -> Vec<(String, String)> {
        [
            ("DATABASE_NAME", database.to_owned()),
            ("DATABASE_USER", self.user.clone()),
            ("DATABASE_PASSWORD", self.password.clone()),
            ("DATABASE_HOST", self.host.clone()),
            ("DATABASE_PORT", self.port.to_string()),
            ("DATABASE_SSLMODE", "disable".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Create an empty database, or one copied from the migrated template.
    pub async fn create_database(&self, template: Option<&str>) -> String {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let client = greeter::db::connect(&self.settings("postgres"))
            .await
            .expect("connect to the test server");
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        // Two copies of one template at the same instant can collide; retry briefly.
        for attempt in 0.. {
            match client.batch_execute(&sql).await {
                Ok(()) => break,
                Err(e) if attempt < 20 => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{sql}: {e}"),
            }
        }
        name
    }
}

/// The server shared by every test in this binary, with the migrated template database.
pub fn shared() -> &'static Server {
    static SHARED: OnceLock<(Server, Option<PgCluster>)> = OnceLock::new();
    &SHARED
        .get_or_init(|| {
            let (server, cluster) = match std::env::var("GREETER_TEST_DATABASE_URL") {
                Ok(url) => (server_from_url(&url), None),
                Err(_) => {
                    let cluster = PgCluster::start();
                    (cluster.server(), Some(cluster))
                }
            };
            prepare_template(&server);
            if let Some(cluster) = &cluster {
                register_cleanup(cluster);
            }
            (server, cluster)
        })
        .0
}

fn server_from_url(url: &str) -> Server {
    let config = tokio_postgres::Config::from_str(url).expect("GREETER_TEST_DATABASE_URL parses");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    Server {
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        user: config.get_user().unwrap_or("postgres").to_owned(),
        password: config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default(),
    }
}

/// Build the template once per test binary, on its own runtime (OnceLock init is sync).
fn prepare_template(server: &Server) {
    let server = server.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let admin = greeter::db::connect(&server.settings("postgres"))
                .await
                .expect("connect to the test server");
            admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {TEMPLATE_DB}"))
                .await
                .expect("drop the old template");
            admin
                .batch_execute(&format!("CREATE DATABASE {TEMPLATE_DB}"))
                .await
                .expect("create the template");
            let mut client = greeter::db::connect(&server.settings(TEMPLATE_DB))
                .await
                .expect("connect to the template");
            greeter::migrations::apply(&mut client, Duration::from_secs(30))
                .await
                .expect("migrate the template");
        });
    })
    .join()
    .expect("template preparation");
}

/// The test harness exits through `exit()`, which runs atexit handlers but no destructors
/// of statics: stop the shared server there so no postgres outlives the tests.
fn register_cleanup(cluster: &PgCluster) {
    static CLEANUP: OnceLock<(PathBuf, PathBuf, bool)> = OnceLock::new();
    CLEANUP.get_or_init(|| {
        (
            cluster.bin_dir.clone(),
            cluster.root.clone(),
            cluster.as_postgres_user,
        )
    });
    extern "C" fn stop_shared() {
        if let Some((bin_dir, root, as_postgres_user)) = CLEANUP.get() {
            let cluster = PgCluster {
                bin_dir: bin_dir.clone(),
                root: root.clone(),
                port: 0,
                as_postgres_user: *as_postgres_user,
                extra_options: String::new(),
            };
            drop(cluster); // Drop stops the server and deletes the directory.
        }
    }
    unsafe {
        libc::atexit(stop_shared);
    }
}

/// The directory with initdb and pg_ctl: PATH first (nix develop), then Debian's layout.
fn find_bin_dir() -> PathBuf {
    let from_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).find_map(|dir| {
            let initdb = dir.join("initdb");
            // Resolve links (Debian may link initdb into /usr/local/bin) to the real bin dir.
            let real = std::fs::canonicalize(&initdb).ok()?;
            let bin = real.parent()?.to_path_buf();
            bin.join("pg_ctl").exists().then_some(bin)
        })
    });
    from_path
        .or_else(debian_bin_dir)
        .expect("PostgreSQL server tools not found: put initdb/pg_ctl on PATH or apt-get install postgresql")
}

fn debian_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            let bin = entry.path().join("bin");
            Path::new(&bin)
                .join("initdb")
                .exists()
                .then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A port that was free a moment ago (the OS picks it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}
