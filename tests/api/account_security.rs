//! Pen-test low findings on accounts: the password policy (12+ characters and a zxcvbn
//! score of 3, the same rule in the admin forms, `createsuperuser` and the bootstrap
//! admin), re-authentication for changes to one's own account, the "one active
//! superuser" guarantee in the database, the sessions list, and no pooled connection
//! held across argon2 on the password pages.

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::admin_support::*;
use crate::helpers::{ServerProcess, binary, server_env, spawn_app, wait_for};
use crate::postgres::{self, TEMPLATE_DB};

/// Long enough and outside the old 40-word list, so the old rule accepted it; zxcvbn
/// scores it 2 of 4 ("similar to a commonly used password").
const WEAK_BUT_LONG: &str = "Password12345!";

/// Generous: only a server that never gets there hits it.
const NEVER: Duration = Duration::from_secs(30);

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

async fn user_id(app: &crate::helpers::TestApp, username: &str) -> i64 {
    app.db()
        .await
        .query_one("SELECT id FROM users WHERE username = $1", &[&username])
        .await
        .unwrap()
        .get(0)
}

async fn password_hash(app: &crate::helpers::TestApp, id: i64) -> String {
    app.db()
        .await
        .query_one("SELECT password_hash FROM users WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

const NEW_PASSWORD: &str = "an entirely fresh passphrase";

/// A superuser's own password, set through the users' set-password page, needs the
/// current one, like the password-change page: an unattended browser is not enough.
#[tokio::test]
async fn setting_ones_own_password_needs_the_current_one() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let other_device = browser();
    assert_eq!(
        login_as(&app, &other_device, ADMIN, ADMIN_PASSWORD)
            .await
            .status(),
        302
    );
    let id = user_id(&app, ADMIN).await;
    let page = format!("/admin/users/{id}/password/");
    let (_, html) = get(&app, &client, &page).await;
    assert!(html.contains(r#"name="old_password""#), "{html}");
    let before = password_hash(&app, id).await;
    for (old, error) in [
        ("", "This field is required."),
        ("not my password at all", "entered incorrectly"),
    ] {
        let r = submit(
            &app,
            &client,
            &page,
            &page,
            &[
                ("old_password", old),
                ("password1", NEW_PASSWORD),
                ("password2", NEW_PASSWORD),
            ],
        )
        .await;
        assert_eq!(r.status(), 200, "{old:?}");
        let html = r.text().await.unwrap();
        let at = html.find(r#"id="id_old_password-errors""#).expect("an error");
        assert!(html[at..].contains(error), "{error}");
        assert_eq!(password_hash(&app, id).await, before, "unchanged");
    }
    let r = submit(
        &app,
        &client,
        &page,
        &page,
        &[
            ("old_password", ADMIN_PASSWORD),
            ("password1", NEW_PASSWORD),
            ("password2", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(r.status(), 302);
    assert_ne!(password_hash(&app, id).await, before);
    // This browser got a new session and stays in; the other device is out.
    assert_eq!(get(&app, &client, "/admin/").await.0, 200);
    assert_eq!(get(&app, &other_device, "/admin/").await.0, 302);

    // Another user's password needs no old one (a superuser may reset it).
    let other = app.create_user("zed", "zeds old passphrase", true, false).await;
    let page = format!("/admin/users/{other}/password/");
    let (_, html) = get(&app, &client, &page).await;
    assert!(!html.contains(r#"name="old_password""#));
    let r = submit(
        &app,
        &client,
        &page,
        &page,
        &[("password1", NEW_PASSWORD), ("password2", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(r.status(), 302);
    app.shutdown().await;
}

/// Renaming one's own account changes what one logs in with: it needs the password.
#[tokio::test]
async fn renaming_ones_own_account_needs_the_password() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let id = user_id(&app, ADMIN).await;
    let page = format!("/admin/users/{id}/");
    let fields = |password: &'static str| {
        vec![
            ("username", "boss"),
            ("is_active", "on"),
            ("is_staff", "on"),
            ("is_superuser", "on"),
            ("current_password", password),
        ]
    };
    for (password, error) in [
        ("", "This field is required."),
        ("a wrong guess here", "entered incorrectly"),
    ] {
        let r = submit(&app, &client, &page, &page, &fields(password)).await;
        assert_eq!(r.status(), 200, "{password:?}");
        let html = r.text().await.unwrap();
        let at = html
            .find(r#"id="id_current_password-errors""#)
            .expect("an error");
        assert!(html[at..].contains(error), "{error}");
    }
    assert_eq!(user_id(&app, ADMIN).await, id, "not renamed");
    let r = submit(&app, &client, &page, &page, &fields(ADMIN_PASSWORD)).await;
    assert_eq!(r.status(), 302);
    assert_eq!(user_id(&app, "boss").await, id);
    // Saving one's own account unchanged needs no password.
    let r = submit(
        &app,
        &client,
        &page,
        &page,
        &[
            ("username", "boss"),
            ("is_active", "on"),
            ("is_staff", "on"),
            ("is_superuser", "on"),
        ],
    )
    .await;
    assert_eq!(r.status(), 302);
    app.shutdown().await;
}

/// Lines of a child's stdout, collected by a thread as they come.
struct LogLines(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl LogLines {
    fn follow(stdout: std::process::ChildStdout) -> Self {
        use std::io::BufRead;
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Self(lines)
    }

    fn count(&self, needle: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

/// GET `page` for its CSRF token, then POST `fields` with it to `action` on `base`.
async fn post_form(
    client: &reqwest::Client,
    base: &str,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> reqwest::Result<reqwest::Response> {
    let html = client
        .get(format!("{base}{page}"))
        .send()
        .await?
        .text()
        .await?;
    let token = csrf_token(&html);
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    form.push(("csrf_token", &token));
    client
        .post(format!("{base}{action}"))
        .form(&form)
        .send()
        .await
}

/// An argon2id PHC string whose check does not end within a test: the stored hash's
/// parameters are the ones a check uses, and t = 2^32-1 passes take hours (over 8 KiB,
/// so it costs one core, no memory).
const ENDLESS_PHC: &str =
    "$argon2id$v=19$m=8,t=4294967295,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaA";

/// Pen-test finding 2, on the logged-in password pages: a password change (its old
/// password check) and a set-password (its hash) give their pooled connection back while
/// argon2 queues and runs. The real binary with a pool of 2: two password changes stuck
/// in argon2 for good, then two set-passwords queued behind them on the hashing threads;
/// other pages still get a connection (before: they waited 3 s and got a 503).
#[tokio::test]
async fn password_pages_hold_no_connection_while_argon2_runs() {
    use secrecy::SecretString;
    const POOL: usize = 2;
    let server = postgres::shared().clone();
    let db_name = server.create_database(Some(TEMPLATE_DB)).await;
    let db = greeter::db::connect(&server.settings(&db_name)).await.unwrap();
    let hash = greeter::auth::password::hash(&SecretString::from(ADMIN_PASSWORD.to_owned()));
    db.execute(
        "INSERT INTO users (username, password_hash, is_staff, is_superuser)
         VALUES ('admin', $1, TRUE, TRUE), ('zed', $1, TRUE, FALSE)",
        &[&hash],
    )
    .await
    .unwrap();
    let mut process = ServerProcess::start_with(
        &server,
        &db_name,
        &[
            ("DATABASE_POOL_MAX", &POOL.to_string()),
            ("RUST_LOG", "info,greeter::admin=debug"),
        ],
    )
    .await;
    let log = LogLines::follow(process.child.stdout.take().unwrap());
    let base = format!("http://{}", process.address);
    let client = browser();
    let r = post_form(
        &client,
        &base,
        "/admin/login/",
        "/admin/login/",
        &[("username", ADMIN), ("password", ADMIN_PASSWORD)],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 302, "logged in");
    db.execute(
        "UPDATE users SET password_hash = $1 WHERE username = 'admin'",
        &[&ENDLESS_PHC],
    )
    .await
    .unwrap();

    // Enough endless checks to occupy every hashing thread (at most the pair limit, 5).
    let stuck = greeter::auth::password::hash_threads().clamp(POOL, 5);
    // The login's own check was logged already.
    let checks_before = log.count("argon2: checking a password");
    let mut requests = Vec::new();
    for _ in 0..stuck {
        let (client, base) = (client.clone(), base.clone());
        requests.push(tokio::spawn(async move {
            let page = "/admin/password_change/";
            let _ = post_form(
                &client,
                &base,
                page,
                page,
                &[
                    ("old_password", "a guess at the old one"),
                    ("new_password1", NEW_PASSWORD),
                    ("new_password2", NEW_PASSWORD),
                ],
            )
            .await;
        }));
    }
    wait_for("the password checks to start", NEVER, || async {
        log.count("argon2: checking a password") >= checks_before + stuck
    })
    .await;
    let r = client.get(format!("{base}/admin/")).send().await.unwrap();
    assert_eq!(r.status(), 200, "a page while {stuck} password checks run");

    let zed: i64 = db
        .query_one("SELECT id FROM users WHERE username = 'zed'", &[])
        .await
        .unwrap()
        .get(0);
    for _ in 0..POOL {
        let (client, base) = (client.clone(), base.clone());
        requests.push(tokio::spawn(async move {
            let page = format!("/admin/users/{zed}/password/");
            let _ = post_form(
                &client,
                &base,
                &page,
                &page,
                &[("password1", NEW_PASSWORD), ("password2", NEW_PASSWORD)],
            )
            .await;
        }));
    }
    wait_for("the new passwords to queue for hashing", NEVER, || async {
        log.count("argon2: hashing a password") >= POOL
    })
    .await;
    let r = client.get(format!("{base}/admin/")).send().await.unwrap();
    assert_eq!(r.status(), 200, "a page while {POOL} new passwords wait for argon2");
    for request in &requests {
        request.abort();
    }
    drop(process);
}
