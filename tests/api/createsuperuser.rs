//! `greeter createsuperuser`, like Django's: password from stdin or ADMIN_PASSWORD.

use std::io::Write;
use std::process::{Output, Stdio};

use secrecy::SecretString;

use crate::helpers::{binary, server_env};
use crate::postgres::{self, TEMPLATE_DB};

fn createsuperuser(
    env: &std::collections::HashMap<String, String>,
    args: &[&str],
    stdin: &str,
) -> Output {
    let mut child = binary("greeter", env)
        .arg("createsuperuser")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn creates_a_superuser_from_stdin_and_refuses_duplicates_and_weak_passwords() {
    let server = postgres::shared().clone();
    let db = server.create_database(Some(TEMPLATE_DB)).await;
    let env = server_env(&server, &db);

    let created = createsuperuser(&env, &["--username", "alice"], "a-strong-passphrase\n");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    let client = greeter::db::connect(&server.settings(&db)).await.unwrap();
    let row = client
        .query_one(
            "SELECT password_hash, is_staff, is_superuser, is_active FROM users WHERE username = 'alice'",
            &[],
        )
        .await
        .unwrap();
    let hash: String = row.get(0);
    assert!(hash.starts_with("$argon2id$"), "never stored in plain text");
    assert!(greeter::auth::password::verify(
        &SecretString::from("a-strong-passphrase".to_owned()),
        &hash
    ));
    assert!(row.get::<_, bool>(1) && row.get::<_, bool>(2) && row.get::<_, bool>(3));

    let duplicate = createsuperuser(&env, &["--username", "ALICE"], "another-passphrase\n");
    assert_eq!(duplicate.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already exists"));

    let weak = createsuperuser(&env, &["--username", "bob"], "12345\n");
    assert_eq!(weak.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("too short"));

    let no_input = createsuperuser(&env, &["--username", "carol", "--noinput"], "");
    assert_eq!(no_input.status.code(), Some(2));

    let mut with_env = env.clone();
    with_env.insert("ADMIN_PASSWORD".into(), "password-from-the-env".into());
    let from_env = createsuperuser(&with_env, &["--username", "carol", "--noinput"], "");
    assert!(from_env.status.success());
}
