//! Pen-test low findings on accounts: the password policy (12+ characters and a zxcvbn
//! score of 3, the same rule in the admin forms, `createsuperuser` and the bootstrap
//! admin), re-authentication for changes to one's own account, the "one active
//! superuser" guarantee in the database, the sessions list, and no pooled connection
//! held across argon2 on the password pages.

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;

use crate::admin_support::*;
use crate::helpers::{binary, server_env, spawn_app};
use crate::postgres::{self, TEMPLATE_DB};

/// Long enough and outside the old 40-word list, so the old rule accepted it; zxcvbn
/// scores it 2 of 4 ("similar to a commonly used password").
const WEAK_BUT_LONG: &str = "Password12345!";

#[tokio::test]
async fn a_long_but_guessable_password_is_refused_with_zxcvbn_feedback() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let r = submit(
        &app,
        &client,
        "/admin/users/add/",
        "/admin/users/add/",
        &[
            ("username", "carol"),
            ("password1", WEAK_BUT_LONG),
            ("password2", WEAK_BUT_LONG),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let at = html.find(r#"id="id_password2-errors""#).expect("a password error");
    assert!(html[at..].contains("too easy to guess"), "{html}");
    // zxcvbn's own words (its warning and suggestions) are shown as well.
    assert!(html[at..].contains("similar to a commonly used password"), "{html}");
    assert!(html[at..].contains("Add another word or two"), "{html}");
    let users: i64 = app
        .db()
        .await
        .query_one("SELECT count(*) FROM users WHERE username = 'carol'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 0);
    // A password made of the username is weak for that user.
    let r = submit(
        &app,
        &client,
        "/admin/users/add/",
        "/admin/users/add/",
        &[
            ("username", "maximiliana"),
            ("password1", "maximiliana1990"),
            ("password2", "maximiliana1990"),
        ],
    )
    .await;
    assert!(r.text().await.unwrap().contains("too easy to guess"));
    app.shutdown().await;
}

#[tokio::test]
async fn createsuperuser_applies_the_same_rule() {
    let server = postgres::shared().clone();
    let db = server.create_database(Some(TEMPLATE_DB)).await;
    let env = server_env(&server, &db);
    let mut child = binary("greeter", &env)
        .args(["createsuperuser", "--username", "bob"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{WEAK_BUT_LONG}\n").as_bytes())
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("too easy to guess"), "{stderr}");
    assert!(!stderr.contains(WEAK_BUT_LONG), "never printed: {stderr}");
}

/// The bootstrap admin (`ADMIN_PASSWORD` for greeter-migrate): a weak one stops the
/// migrator before it touches the database, naming the variable and not the value.
#[test]
fn a_weak_bootstrap_password_fails_naming_the_variable() {
    let mut env: HashMap<String, String> = server_env(&postgres::shared().clone(), "unused");
    env.insert("ADMIN_USERNAME".into(), "admin".into());
    env.insert("ADMIN_PASSWORD".into(), WEAK_BUT_LONG.into());
    let output = binary("greeter-migrate", &env).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("ADMIN_PASSWORD"), "{stderr}");
    assert!(stderr.contains("too easy to guess"), "{stderr}");
    assert!(!stderr.contains(WEAK_BUT_LONG), "never printed: {stderr}");
}
