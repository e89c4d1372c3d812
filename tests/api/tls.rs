//! DATABASE_SSLMODE against a real TLS-only PostgreSQL: the server certificate is verified
//! against the trusted CAs (SSL_CERT_FILE can name a provider's CA bundle).

use std::collections::HashMap;

use crate::helpers::binary;
use crate::postgres::PgCluster;

#[test]
fn sslmode_require_verifies_the_server_certificate() {
    let (cluster, ca_cert) = PgCluster::start_tls_only();
    let mut env: HashMap<String, String> = cluster.server().env("postgres").into_iter().collect();

    // Plain text is refused by this server (hostssl only).
    let plain = binary("greeter-migrate", &env)
        .args(["--timeout", "1"])
        .output()
        .unwrap();
    assert_eq!(plain.status.code(), Some(1));

    // TLS, but the test CA is not trusted: the certificate is rejected.
    env.insert("DATABASE_SSLMODE".into(), "require".into());
    env.insert("SSL_CERT_FILE".into(), "/nonexistent/ca.pem".into());
    let untrusted = binary("greeter-migrate", &env)
        .args(["--timeout", "1"])
        .output()
        .unwrap();
    assert_eq!(untrusted.status.code(), Some(1));
    let log = String::from_utf8_lossy(&untrusted.stdout);
    assert!(log.to_lowercase().contains("certificate"), "{log}");

    // Trusting the CA, `require` and `prefer` both connect over TLS and migrate.
    env.insert("SSL_CERT_FILE".into(), ca_cert.to_string_lossy().into());
    for mode in ["require", "prefer"] {
        env.insert("DATABASE_SSLMODE".into(), mode.into());
        let trusted = binary("greeter-migrate", &env)
            .args(["--timeout", "5"])
            .output()
            .unwrap();
        assert!(
            trusted.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&trusted.stdout)
        );
    }
}
