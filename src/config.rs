//! Configuration from the environment, as listed in DOCS.md ("Configuration reference").
//!
//! Every problem becomes a [`ConfigError`] that names the variable and never its value, so
//! the binaries can print one line and exit with status 2.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// A configuration problem: which variable, and what is wrong with it (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
}

impl ConfigError {
    fn new(variable: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            variable: variable.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration error: {} {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Where variables come from: the process environment in production, a map in tests.
pub trait Source {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        // A value that is not valid UTF-8 is reported as invalid by `text`, not ignored.
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    }
}

impl Source for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Every variable the code reads, for the docs test that compares DOCS.md with the code.
pub const VARIABLES: &[&str] = &[
    "SECRET_KEY",
    "DEBUG",
    "APP_ENV",
    "LISTEN_ADDR",
    "METRICS_ADDR",
    "DATABASE_NAME",
    "DATABASE_USER",
    "DATABASE_PASSWORD",
    "DATABASE_HOST",
    "DATABASE_PORT",
    "DATABASE_POOL_MAX",
    "DATABASE_SSLMODE",
    "LOG_FORMAT",
    "ADMIN_USERNAME",
    "ADMIN_PASSWORD",
    "PAYMENT_API_KEY",
    "TRUSTED_PROXIES",
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_ADDRESS",
    "HEADER_READ_TIMEOUT_SECS",
    "IDLE_TIMEOUT_SECS",
    "HTTP2_CLEARTEXT",
];

/// Variables that may instead be read from the file named by `<NAME>_FILE`.
pub const SECRET_VARIABLES: &[&str] = &[
    "SECRET_KEY",
    "DATABASE_PASSWORD",
    "ADMIN_PASSWORD",
    "PAYMENT_API_KEY",
];

struct Reader<'a> {
    source: &'a dyn Source,
}

impl Reader<'_> {
    /// A plain variable; empty counts as unset.
    fn optional(&self, name: &str) -> Option<String> {
        self.source.var(name).filter(|v| !v.trim().is_empty())
    }

    fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.optional(name)
            .ok_or_else(|| ConfigError::new(name, "is required but not set"))
    }

    /// A secret: from `NAME` or from the file named by `NAME_FILE`, never both.
    fn optional_secret(&self, name: &str) -> Result<Option<SecretString>, ConfigError> {
        let file_var = format!("{name}_FILE");
        match (self.optional(name), self.optional(&file_var)) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                name,
                format!("and {file_var} are both set; set only one"),
            )),
            (Some(value), None) => Ok(Some(SecretString::from(value))),
            (None, Some(path)) => read_secret_file(&file_var, Path::new(&path)).map(Some),
            (None, None) => Ok(None),
        }
    }

    fn required_secret(&self, name: &str) -> Result<SecretString, ConfigError> {
        self.optional_secret(name)?.ok_or_else(|| {
            ConfigError::new(name, format!("is required but not set (nor {name}_FILE)"))
        })
    }

    fn parsed<T>(
        &self,
        name: &str,
        default: T,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => parse(raw.trim())
                .ok_or_else(|| ConfigError::new(name, format!("is invalid: expected {expected}"))),
        }
    }
}

fn read_secret_file(file_var: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let content = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            file_var,
            format!("names a file that cannot be read ({})", e.kind()),
        )
    })?;
    // Files written by editors and `echo` end with a newline that is not part of the secret.
    let trimmed = content.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(ConfigError::new(file_var, "names an empty file"));
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// `local` relaxes what only makes sense behind TLS (the `Secure` cookie flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Local,
    Production,
}

impl AppEnv {
    pub fn as_str(self) -> &'static str {
        match self {
            AppEnv::Local => "local",
            AppEnv::Production => "production",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
}

/// How to reach PostgreSQL. Shared by the server, the migrator and `createsuperuser`.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub name: String,
    pub user: String,
    pub password: SecretString,
    pub host: String,
    pub port: u16,
    pub pool_max: usize,
    pub sslmode: SslMode,
    pub connect_timeout: Duration,
}

impl DatabaseSettings {
    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader { source };
        Ok(Self {
            name: r.required("DATABASE_NAME")?,
            user: r.required("DATABASE_USER")?,
            password: r.required_secret("DATABASE_PASSWORD")?,
            host: r.required("DATABASE_HOST")?,
            port: r.parsed(
                "DATABASE_PORT",
                5432,
                |v| v.parse().ok().filter(|p| *p != 0),
                "a port number 1-65535",
            )?,
            pool_max: r.parsed(
                "DATABASE_POOL_MAX",
                16,
                |v| v.parse().ok().filter(|n| (1..=1000).contains(n)),
                "a whole number 1-1000",
            )?,
            sslmode: r.parsed(
                "DATABASE_SSLMODE",
                SslMode::Prefer,
                |v| match v {
                    "disable" => Some(SslMode::Disable),
                    "prefer" => Some(SslMode::Prefer),
                    "require" => Some(SslMode::Require),
                    _ => None,
                },
                "disable, prefer or require",
            )?,
            connect_timeout: Duration::from_secs(5),
        })
    }

    /// The tokio-postgres configuration for these settings.
    pub fn pg_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .dbname(&self.name)
            .user(&self.user)
            .password(self.password.expose_secret())
            .host(&self.host)
            .port(self.port)
            .application_name("greeter")
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            // Notice a silently vanished server (node loss) in about a minute, not hours.
            .keepalives_idle(Duration::from_secs(30))
            .ssl_mode(match self.sslmode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require => tokio_postgres::config::SslMode::Require,
            });
        config
    }
}

/// The superuser that the migrator creates if it does not exist yet.
#[derive(Debug, Clone)]
pub struct AdminBootstrap {
    pub username: String,
    pub password: SecretString,
}

impl AdminBootstrap {
    /// Both `ADMIN_USERNAME` and `ADMIN_PASSWORD` set: Some; neither: None; one: an error.
    pub fn from_source(source: &dyn Source) -> Result<Option<Self>, ConfigError> {
        let r = Reader { source };
        match (
            r.optional("ADMIN_USERNAME"),
            r.optional_secret("ADMIN_PASSWORD")?,
        ) {
            (Some(username), Some(password)) => Ok(Some(Self { username, password })),
            (None, None) => Ok(None),
            (Some(_), None) => Err(ConfigError::new(
                "ADMIN_PASSWORD",
                "is required when ADMIN_USERNAME is set",
            )),
            (None, Some(_)) => Err(ConfigError::new(
                "ADMIN_USERNAME",
                "is required when ADMIN_PASSWORD is set",
            )),
        }
    }
}

/// Everything the HTTP server needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub secret_key: SecretString,
    pub app_env: AppEnv,
    pub listen_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub log_format: LogFormat,
    pub database: DatabaseSettings,
    pub payment_api_key: Option<SecretString>,
    pub network: NetworkSettings,
}

/// Connection limits and the proxies whose forwarding headers are believed.
#[derive(Debug, Clone)]
pub struct NetworkSettings {
    /// Peers whose `X-Forwarded-For` / `Forwarded` name the real client (default: none).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Open connections per process; more are closed at once.
    pub max_connections: usize,
    /// Open connections per client address (trusted proxies are exempt).
    pub max_connections_per_address: usize,
    /// A new connection must complete its first request's headers within this (covers
    /// silence before the first byte, a partial HTTP/2 preface, partial HTTP/1 headers).
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Whether the HTTP port also speaks HTTP/2 over plain TCP (h2c, "prior knowledge").
    /// Off by default: behind a Service, an ingress or a TLS-terminating proxy HTTP/1.1
    /// is what arrives, and h2c only adds attack surface. The metrics port never does.
    pub http2_cleartext: bool,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            max_connections: 2048,
            max_connections_per_address: 256,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            http2_cleartext: false,
        }
    }
}

impl NetworkSettings {
    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader { source };
        let d = Self::default();
        let count = |name: &str, default: usize| {
            r.parsed(
                name,
                default,
                |v| v.parse().ok().filter(|n| (1..=1_000_000).contains(n)),
                "a whole number from 1 to 1000000",
            )
        };
        let secs = |name: &str, default: Duration| {
            r.parsed(
                name,
                default,
                |v| {
                    v.parse::<u64>()
                        .ok()
                        .filter(|n| (1..=3600).contains(n))
                        .map(Duration::from_secs)
                },
                "whole seconds from 1 to 3600",
            )
        };
        Ok(Self {
            trusted_proxies: r.parsed(
                "TRUSTED_PROXIES",
                Vec::new(),
                parse_cidrs,
                "a comma-separated list of CIDRs like 10.0.0.0/8,fd00::/8",
            )?,
            max_connections: count("MAX_CONNECTIONS", d.max_connections)?,
            max_connections_per_address: count(
                "MAX_CONNECTIONS_PER_ADDRESS",
                d.max_connections_per_address,
            )?,
            header_read_timeout: secs("HEADER_READ_TIMEOUT_SECS", d.header_read_timeout)?,
            idle_timeout: secs("IDLE_TIMEOUT_SECS", d.idle_timeout)?,
            http2_cleartext: r.parsed(
                "HTTP2_CLEARTEXT",
                d.http2_cleartext,
                parse_bool,
                "true, false, 1 or 0",
            )?,
        })
    }
}

/// `10.0.0.0/8, 192.0.2.1` (a bare address is its own /32 or /128).
fn parse_cidrs(raw: &str) -> Option<Vec<ipnet::IpNet>> {
    raw.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<ipnet::IpNet>()
                .ok()
                .or_else(|| v.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
                .map(|n| n.trunc())
        })
        .collect()
}

pub const MIN_SECRET_KEY_BYTES: usize = 32;

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&ProcessEnv)
    }

    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let r = Reader { source };
        let secret_key = r.required_secret("SECRET_KEY")?;
        if secret_key.expose_secret().len() < MIN_SECRET_KEY_BYTES {
            return Err(ConfigError::new(
                "SECRET_KEY",
                format!("is too short: at least {MIN_SECRET_KEY_BYTES} bytes are required"),
            ));
        }
        let debug = parse_bool(&r.required("DEBUG")?)
            .ok_or_else(|| ConfigError::new("DEBUG", "is invalid: expected true, false, 1 or 0"))?;
        let addr = |name: &str, default: &str| {
            r.parsed(
                name,
                default.parse().expect("valid default address"),
                |v| v.parse().ok(),
                "an address like 0.0.0.0:8080",
            )
        };
        Ok(Self {
            secret_key,
            app_env: r.parsed(
                "APP_ENV",
                AppEnv::Production,
                |v| match v {
                    "local" => Some(AppEnv::Local),
                    "production" => Some(AppEnv::Production),
                    _ => None,
                },
                "local or production",
            )?,
            listen_addr: addr("LISTEN_ADDR", "0.0.0.0:8080")?,
            metrics_addr: addr("METRICS_ADDR", "0.0.0.0:9090")?,
            log_format: log_format(&r, debug)?,
            database: DatabaseSettings::from_source(source)?,
            payment_api_key: r.optional_secret("PAYMENT_API_KEY")?,
            network: NetworkSettings::from_source(source)?,
        })
    }
}

/// `LOG_FORMAT` wins; otherwise DEBUG picks pretty logs for humans, JSON for machines.
fn log_format(r: &Reader<'_>, debug: bool) -> Result<LogFormat, ConfigError> {
    let default = if debug {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    };
    r.parsed(
        "LOG_FORMAT",
        default,
        |v| match v {
            "json" => Some(LogFormat::Json),
            "pretty" => Some(LogFormat::Pretty),
            _ => None,
        },
        "json or pretty",
    )
}

/// The log format for the tools that do not load the full [`Settings`] (migrator, CLI).
pub fn log_format_from_env() -> Result<LogFormat, ConfigError> {
    log_format(
        &Reader {
            source: &ProcessEnv,
        },
        false,
    )
}

/// Read `ADMIN_PASSWORD` (or `ADMIN_PASSWORD_FILE`) alone, for `createsuperuser`.
pub fn admin_password_from_env() -> Result<Option<SecretString>, ConfigError> {
    Reader {
        source: &ProcessEnv,
    }
    .optional_secret("ADMIN_PASSWORD")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HashMap<String, String> {
        [
            ("SECRET_KEY", "k".repeat(40).as_str()),
            ("DEBUG", "false"),
            ("DATABASE_NAME", "greeter"),
            ("DATABASE_USER", "greeter"),
            ("DATABASE_PASSWORD", "s3cret-value"),
            ("DATABASE_HOST", "localhost"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn err(env: HashMap<String, String>) -> ConfigError {
        Settings::from_source(&env).expect_err("config should be rejected")
    }

    #[test]
    fn defaults_apply() {
        let s = Settings::from_source(&base()).unwrap();
        assert_eq!(s.database.port, 5432);
        assert_eq!(s.app_env, AppEnv::Production);
        assert_eq!(s.listen_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(s.metrics_addr.to_string(), "0.0.0.0:9090");
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.database.sslmode, SslMode::Prefer);
    }

    #[test]
    fn every_required_variable_is_named_when_missing() {
        for name in [
            "SECRET_KEY",
            "DEBUG",
            "DATABASE_NAME",
            "DATABASE_USER",
            "DATABASE_PASSWORD",
            "DATABASE_HOST",
        ] {
            let mut env = base();
            env.remove(name);
            assert_eq!(err(env).variable, name);
        }
    }

    #[test]
    fn invalid_values_name_the_variable_not_the_value() {
        for (name, bad) in [
            ("DEBUG", "yes-please"),
            ("DATABASE_PORT", "99999"),
            ("APP_ENV", "staging-x"),
            ("DATABASE_SSLMODE", "verify-all"),
            ("LOG_FORMAT", "xml"),
            ("LISTEN_ADDR", "nowhere"),
            ("DATABASE_POOL_MAX", "none"),
        ] {
            let mut env = base();
            env.insert(name.into(), bad.into());
            let e = err(env);
            assert_eq!(e.variable, name);
            assert!(!e.to_string().contains(bad), "{e} leaks the value");
        }
    }

    #[test]
    fn short_secret_key_is_rejected_without_echoing_it() {
        let mut env = base();
        env.insert("SECRET_KEY".into(), "tooshort-secret".into());
        let e = err(env);
        assert_eq!(e.variable, "SECRET_KEY");
        assert!(!e.to_string().contains("tooshort-secret"));
    }

    #[test]
    fn secrets_can_come_from_files() {
        let dir = std::env::temp_dir().join(format!("greeter-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("db-password");
        std::fs::write(&file, "from-a-file\n").unwrap();
        let mut env = base();
        env.remove("DATABASE_PASSWORD");
        env.insert(
            "DATABASE_PASSWORD_FILE".into(),
            file.to_string_lossy().into(),
        );
        let s = Settings::from_source(&env).unwrap();
        assert_eq!(s.database.password.expose_secret(), "from-a-file");

        env.insert("DATABASE_PASSWORD".into(), "also-set".into());
        assert_eq!(err(env.clone()).variable, "DATABASE_PASSWORD");

        env.remove("DATABASE_PASSWORD");
        env.insert(
            "DATABASE_PASSWORD_FILE".into(),
            dir.join("absent").to_string_lossy().into(),
        );
        assert_eq!(err(env).variable, "DATABASE_PASSWORD_FILE");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Records every variable name the loaders ask for.
    struct Recording(std::cell::RefCell<Vec<String>>, HashMap<String, String>);

    impl Source for Recording {
        fn var(&self, name: &str) -> Option<String> {
            self.0.borrow_mut().push(name.to_owned());
            self.1.get(name).cloned()
        }
    }

    #[test]
    fn variables_lists_exactly_what_the_loaders_read() {
        let source = Recording(Default::default(), base());
        Settings::from_source(&source).unwrap();
        AdminBootstrap::from_source(&source).unwrap();
        let mut read: Vec<String> = source.0.take();
        read.sort();
        read.dedup();
        let mut expected: Vec<String> = VARIABLES.iter().map(|v| v.to_string()).collect();
        expected.extend(SECRET_VARIABLES.iter().map(|v| format!("{v}_FILE")));
        expected.sort();
        assert_eq!(
            read, expected,
            "VARIABLES (and DOCS.md) must match the code"
        );
    }

    #[test]
    fn admin_bootstrap_needs_both_or_neither() {
        let mut env = HashMap::new();
        assert!(AdminBootstrap::from_source(&env).unwrap().is_none());
        env.insert("ADMIN_USERNAME".to_string(), "admin".to_string());
        assert_eq!(
            AdminBootstrap::from_source(&env).unwrap_err().variable,
            "ADMIN_PASSWORD"
        );
        env.insert("ADMIN_PASSWORD".to_string(), "pw".to_string());
        assert!(AdminBootstrap::from_source(&env).unwrap().is_some());
    }
}
