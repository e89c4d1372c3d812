//! PostgreSQL connections: the pool used by request handlers, and single connections for
//! the migrator and the LISTEN task. TLS follows `DATABASE_SSLMODE`.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::DatabaseSettings;

/// How long a request may wait for a free pooled connection before it fails fast.
const POOL_WAIT: Duration = Duration::from_secs(1);
/// How long the pool may spend opening one connection for a request. Shorter than the
/// migrator's connect timeout: with PostgreSQL away the admin must answer its 503 page
/// within about a second, not hang (an in-cluster connect takes milliseconds).
const POOL_CREATE: Duration = Duration::from_secs(1);

/// A TLS connector trusting the platform's CA bundle (the image ships `ca-certificates`;
/// `SSL_CERT_FILE` can point at a provider's CA, e.g. for a managed database).
/// Unlike libpq's `require`, the server certificate *is* verified.
pub fn tls_connector() -> MakeRustlsConnect {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        // A single unparsable certificate in the bundle must not disable TLS entirely.
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// The request pool. Connections are created lazily, so building it never touches the
/// network: the server starts (and reports not-ready) even while PostgreSQL is down.
pub fn build_pool(settings: &DatabaseSettings) -> Pool {
    let manager = Manager::from_config(
        settings.pg_config(),
        tls_connector(),
        ManagerConfig {
            // `Fast` only checks that the connection task is still alive; a dead server
            // shows up as a closed connection, and the admin then answers 503.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(settings.pool_max)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_WAIT))
        .create_timeout(Some(POOL_CREATE.min(settings.connect_timeout)))
        .recycle_timeout(Some(Duration::from_secs(2)))
        .build()
        .expect("pool configuration is valid: a runtime is set")
}

/// One dedicated connection whose driver task runs in the background.
pub async fn connect(
    settings: &DatabaseSettings,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = settings.pg_config().connect(tls_connector()).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "database connection closed with an error");
        }
    });
    Ok(client)
}

/// An error with its causes, e.g. "error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer" — tokio-postgres' own Display shows only the first part.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
