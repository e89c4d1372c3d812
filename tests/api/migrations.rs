//! greeter-migrate against a real database: exactly-once under concurrency, the --wait
//! gate, the admin bootstrap, and tolerance of newer migrations after a rollback.

use std::collections::HashMap;
use std::process::Output;

use greeter::migrations::embedded_versions;
use secrecy::SecretString;

use crate::helpers::binary;
use crate::postgres;

async fn empty_database() -> (postgres::Server, String, HashMap<String, String>) {
    let server = postgres::shared().clone();
    let db = server.create_database(None).await;
    let env = server.env(&db).into_iter().collect();
    (server, db, env)
}

async fn run(env: &HashMap<String, String>, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::from(binary("greeter-migrate", env));
    command
        .args(args)
        .output()
        .await
        .expect("run greeter-migrate")
}

#[tokio::test]
async fn eight_concurrent_migrators_apply_each_migration_once() {
    let (server, db, mut env) = empty_database().await;
    env.insert("ADMIN_USERNAME".into(), "admin".into());
    env.insert(
        "ADMIN_PASSWORD".into(),
        "a-long-bootstrap-passphrase".into(),
    );
    let runs: Vec<_> = (0..8).map(|_| run(&env, &[])).collect();
    let outputs = futures_util::future::join_all(runs).await;
    for output in &outputs {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    let client = greeter::db::connect(&server.settings(&db)).await.unwrap();
    let rows = client
        .query(
            "SELECT version, count(*) FROM refinery_schema_history GROUP BY version ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    let expected: Vec<i32> = embedded_versions().iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, expected);
    assert!(
        rows.iter().all(|r| r.get::<_, i64>(1) == 1),
        "a migration ran twice"
    );
    // Exactly one run applied them; the other seven found nothing to do.
    let appliers = outputs
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stdout).contains("migrations applied"))
        .count();
    assert_eq!(appliers, 1);
    let users: i64 = client
        .query_one(
            "SELECT count(*) FROM users WHERE username = 'admin' AND is_superuser",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 1);
}

#[tokio::test]
async fn wait_fails_on_an_empty_schema_and_passes_on_a_current_one() {
    let (_server, _db, env) = empty_database().await;
    let gate = run(&env, &["--wait", "--timeout", "2"]).await;
    assert_eq!(gate.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&gate.stderr);
    let (first_version, first_name) = &embedded_versions()[0];
    assert!(
        stderr.contains(&format!("V{first_version}__{first_name}")),
        "names the missing migration: {stderr}"
    );
    // The gate must not have applied anything itself.
    let again = run(&env, &["--wait", "--timeout", "1"]).await;
    assert_eq!(again.status.code(), Some(1));

    assert!(run(&env, &[]).await.status.success());
    let gate = run(&env, &["--wait", "--timeout", "5"]).await;
    assert!(
        gate.status.success(),
        "{}",
        String::from_utf8_lossy(&gate.stdout)
    );
}

#[tokio::test]
async fn the_admin_bootstrap_never_overwrites_a_password() {
    let (server, db, mut env) = empty_database().await;
    env.insert("ADMIN_USERNAME".into(), "boss".into());
    env.insert("ADMIN_PASSWORD".into(), "first-long-passphrase".into());
    assert!(run(&env, &[]).await.status.success());
    env.insert("ADMIN_PASSWORD".into(), "second-long-passphrase".into());
    let second = run(&env, &[]).await;
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("password left unchanged"));
    let client = greeter::db::connect(&server.settings(&db)).await.unwrap();
    let hash: String = client
        .query_one(
            "SELECT password_hash FROM users WHERE username = 'boss'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(greeter::auth::password::verify(
        &SecretString::from("first-long-passphrase".to_owned()),
        &hash
    ));
}

#[tokio::test]
async fn newer_migrations_from_a_later_release_are_not_an_error() {
    let (server, db, env) = empty_database().await;
    assert!(run(&env, &[]).await.status.success());
    let client = greeter::db::connect(&server.settings(&db)).await.unwrap();
    client
        .execute(
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
             VALUES (9999, 'from_a_newer_release', '2026-01-01T00:00:00Z', '0')",
            &[],
        )
        .await
        .unwrap();
    let apply = run(&env, &[]).await;
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stdout)
    );
    assert!(
        run(&env, &["--wait", "--timeout", "3"])
            .await
            .status
            .success()
    );
}

#[tokio::test]
async fn an_unreachable_database_fails_after_the_timeout() {
    let mut env: HashMap<String, String> = postgres::shared().env("nowhere").into_iter().collect();
    env.insert("DATABASE_PORT".into(), postgres::free_port().to_string());
    let started = std::time::Instant::now();
    let output = run(&env, &["--timeout", "2"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(started.elapsed().as_secs() < 10, "bounded retry");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("database not reachable yet"), "{stdout}");
}
