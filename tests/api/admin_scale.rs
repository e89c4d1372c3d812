//! The admin's lists at scale (issue 13): keyset pages that show every row exactly once
//! even when many rows share a sort key, malformed cursors, estimated counts for large
//! tables, and migration V4's indexes (valid, serving the search, built on a non-empty
//! database by a database owner that is not a superuser, and safe to run again).

use std::collections::{HashMap, HashSet};

use crate::admin_support::*;
use crate::helpers::{TestApp, binary, spawn_app};
use crate::postgres;

const V4_INDEXES: [&str; 9] = [
    "users_username_trgm",
    "users_lower_username_id",
    "users_date_joined_id",
    "users_last_login_id",
    "greetings_list",
    "admin_audit_log_action_at",
    "admin_audit_log_object_type_at",
    "admin_audit_log_username_at",
    "admin_audit_log_recent",
];

/// A page's link with `rel` (e.g. "next"), as the browser would follow it.
pub fn link(html: &str, rel: &str) -> Option<String> {
    let marker = format!(r#"" rel="{rel}">"#);
    let end = html.find(&marker)?;
    let start = html[..end].rfind(r#"href=""#)? + r#"href=""#.len();
    Some(unescape(&html[start..end]))
}

/// An attribute value as the browser reads it (handlebars escapes `&`, `=` and quotes).
fn unescape(value: &str) -> String {
    value
        .replace("&#x3D;", "=")
        .replace("&#x27;", "'")
        .replace("&#x60;", "`")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// The ids of the rows listed in a page, in order: links `prefix<id>/`.
fn row_ids(html: &str, prefix: &str) -> Vec<i64> {
    let marker = format!(r#"href="{prefix}"#);
    html.match_indices(&marker)
        .filter_map(|(at, _)| {
            let rest = &html[at + marker.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (!digits.is_empty() && rest[digits.len()..].starts_with("/\""))
                .then(|| digits.parse().unwrap())
        })
        .collect()
}

/// Every row of a list, following "Next" from `start` to the end, then "Previous" from
/// the last page back to the start; both walks must agree.
async fn walk(app: &TestApp, client: &reqwest::Client, start: &str, prefix: &str) -> Vec<i64> {
    let mut forward = Vec::new();
    let mut path = start.to_owned();
    let mut pages = 0;
    loop {
        let (status, html) = get(app, client, &path).await;
        assert_eq!(status, 200, "{path}");
        let ids = row_ids(&html, prefix);
        assert!(ids.len() <= 25, "{path}");
        forward.extend(ids);
        pages += 1;
        assert!(pages < 100, "the walk does not end");
        match link(&html, "next") {
            Some(next) => {
                assert_eq!(
                    row_ids(&html, prefix).len(),
                    25,
                    "only the last page is short"
                );
                path = next;
            }
            None => break,
        }
    }
    let mut backward = Vec::new();
    let mut html = get(app, client, &path).await.1;
    loop {
        let mut ids = row_ids(&html, prefix);
        ids.reverse();
        backward.extend(ids);
        match link(&html, "prev") {
            Some(prev) => html = get(app, client, &prev).await.1,
            None => break,
        }
    }
    backward.reverse();
    assert_eq!(forward, backward, "Next and Previous disagree from {start}");
    forward
}

async fn ids_in_order(app: &TestApp, sql: &str) -> Vec<i64> {
    app.db()
        .await
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn assert_once(ids: &[i64]) {
    let distinct: HashSet<&i64> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "a row shown twice");
}

#[tokio::test]
async fn keyset_pages_show_every_row_exactly_once_when_sort_keys_tie() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let db = app.db().await;
    // 70 users: groups of 7 joined at the same instant, every third never logged in, and
    // logins shared by groups of 5 — ties in every ordering but the username.
    db.batch_execute(
        "INSERT INTO users (username, password_hash, date_joined, last_login)
         SELECT format('u%s', i), 'x', timestamptz '2025-01-01 00:00Z' + (i / 7) * interval '1 day',
                CASE WHEN i % 3 = 0 THEN NULL
                     ELSE timestamptz '2026-01-01 00:00Z' + (i / 5) * interval '1.5 second' END
         FROM generate_series(1, 70) AS i;
         -- 60 more greetings (V1 made the active one), all with the same is_active.
         INSERT INTO greetings (message) SELECT format('greeting %s', i) FROM generate_series(1, 60) AS i;
         -- 80 audit entries at 3 instants (the table is append-only; inserting is allowed).
         INSERT INTO admin_audit_log (at, user_id, username, action, object_type, object_repr)
         SELECT timestamptz '2026-06-01 12:00:00.123456Z' + (i % 3) * interval '1 microsecond',
                NULL, 'someone', 'update', 'greeting', format('entry %s', i)
         FROM generate_series(1, 80) AS i;",
    )
    .await
    .unwrap();

    for (o, order) in [
        ("username", "lower(username), id"),
        ("-username", "lower(username) DESC, id DESC"),
        ("date_joined", "date_joined, id"),
        ("-date_joined", "date_joined DESC, id DESC"),
        ("last_login", "last_login NULLS FIRST, id"),
        ("-last_login", "last_login DESC NULLS LAST, id DESC"),
    ] {
        let shown = walk(
            &app,
            &client,
            &format!("/admin/users/?o={o}"),
            "/admin/users/",
        )
        .await;
        assert_once(&shown);
        let expected = ids_in_order(&app, &format!("SELECT id FROM users ORDER BY {order}")).await;
        assert_eq!(shown.len(), 71, "{o}");
        assert_eq!(shown, expected, "{o}");
    }
    // A search keeps its filter across pages (u1 to u70, not admin).
    let shown = walk(
        &app,
        &client,
        "/admin/users/?q=U&o=-date_joined",
        "/admin/users/",
    )
    .await;
    let expected = ids_in_order(
        &app,
        "SELECT id FROM users WHERE username ILIKE '%u%' ORDER BY date_joined DESC, id DESC",
    )
    .await;
    assert_eq!(shown.len(), 70);
    assert_eq!(shown, expected);

    let shown = walk(&app, &client, "/admin/greetings/", "/admin/greetings/").await;
    assert_once(&shown);
    let expected = ids_in_order(
        &app,
        "SELECT id FROM greetings ORDER BY is_active DESC, id DESC",
    )
    .await;
    assert_eq!(shown.len(), 61);
    assert_eq!(shown, expected);

    let shown = walk(&app, &client, "/admin/audit/", "/admin/audit/").await;
    assert_once(&shown);
    let expected = ids_in_order(
        &app,
        "SELECT id FROM admin_audit_log ORDER BY at DESC, id DESC",
    )
    .await;
    assert!(shown.len() >= 81, "the seeded entries and the login");
    assert_eq!(shown, expected);
    // Filtered, the pages keep the filter.
    let shown = walk(
        &app,
        &client,
        "/admin/audit/?action=update&user=SOMEONE",
        "/admin/audit/",
    )
    .await;
    assert_eq!(shown.len(), 80);

    // "Last" is the end of the list, "First" its start.
    let (_, last) = get(&app, &client, "/admin/users/?o=username&last=1").await;
    let expected = ids_in_order(&app, "SELECT id FROM users ORDER BY lower(username), id").await;
    assert_eq!(
        row_ids(&last, "/admin/users/"),
        expected[expected.len() - 25..]
    );
    assert!(link(&last, "next").is_none());
    assert!(last.contains("&laquo; First"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_malformed_cursor_shows_the_first_page() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    app.db()
        .await
        .batch_execute(
            "INSERT INTO users (username, password_hash)
             SELECT format('m%s', i), 'x' FROM generate_series(1, 30) AS i",
        )
        .await
        .unwrap();
    let (_, first) = get(&app, &client, "/admin/users/?o=date_joined").await;
    let first_ids = row_ids(&first, "/admin/users/");
    assert_eq!(first_ids.len(), 25);
    for cursor in [
        "after=abc",
        "after=.2026-01-01",
        "after=-5.2026-01-01",
        "after=99999999999999999999.2026-01-01",
        "before=1",
        "after=1.",
        // Well-formed, but not a timestamp: PostgreSQL refuses it, the list shrugs.
        "after=1.2026-13-45%2025%3A00",
        "after=1.not%20a%20time",
        "before=3.yesterday%3F",
        "after=1.%E2%80%AE",
        "last=yes",
    ] {
        let (status, html) = get(
            &app,
            &client,
            &format!("/admin/users/?o=date_joined&{cursor}"),
        )
        .await;
        assert_eq!(status, 200, "{cursor}: {html}");
        assert_eq!(row_ids(&html, "/admin/users/"), first_ids, "{cursor}");
    }
    for path in [
        "/admin/audit/?after=7.not-a-time",
        "/admin/audit/?before=x",
        "/admin/greetings/?after=1.maybe",
        "/admin/greetings/?before=1.",
    ] {
        let (status, html) = get(&app, &client, path).await;
        assert_eq!(status, 200, "{path}: {html}");
        assert!(!html.contains(r#"rel="prev""#), "{path} is the first page");
    }
    // The old page numbers are ignored too.
    assert_eq!(get(&app, &client, "/admin/users/?p=99").await.0, 200);
    app.shutdown().await;
}

#[tokio::test]
async fn large_tables_show_estimated_counts_and_the_search_uses_its_index() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let db = app.db().await;
    // Small: counted exactly.
    let (_, html) = get(&app, &client, "/admin/users/").await;
    assert!(html.contains("<span>1 in total</span>"), "{html}");
    let (_, html) = get(&app, &client, "/admin/").await;
    assert!(
        html.contains("<td>1</td>"),
        "the exact greetings count: {html}"
    );

    db.batch_execute(
        "INSERT INTO users (username, password_hash)
         SELECT format('bulk%s', i), 'x' FROM generate_series(1, 20000) AS i;
         ANALYZE users",
    )
    .await
    .unwrap();
    let (_, html) = get(&app, &client, "/admin/users/").await;
    assert!(
        html.contains("<span>about 20,000 in total</span>"),
        "{html}"
    );
    let (_, html) = get(&app, &client, "/admin/").await;
    assert!(html.contains("<td>about 20,000</td>"), "{html}");
    // A filtered list with few matches is counted exactly.
    let (_, html) = get(&app, &client, "/admin/users/?q=bulk1999").await;
    assert!(
        html.contains("<span>11 in total</span>"),
        "bulk1999, bulk19990-9: {html}"
    );
    let (_, html) = get(&app, &client, "/admin/users/?q=bulk1").await;
    assert!(html.contains("in total</span>"));

    // The planner picks the trigram index for a selective search on 20,000 users.
    let plan: Vec<String> = db
        .query(
            "EXPLAIN SELECT id FROM users WHERE username ILIKE '%ulk1234%' \
             ORDER BY lower(username), id LIMIT 26",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        plan.iter().any(|line| line.contains("users_username_trgm")),
        "{plan:#?}"
    );
    app.shutdown().await;
}

async fn index_validity(client: &tokio_postgres::Client) -> HashMap<String, bool> {
    client
        .query(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE c.relname = ANY ($1)",
            &[&V4_INDEXES.to_vec()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn all_valid(validity: &HashMap<String, bool>) -> bool {
    V4_INDEXES
        .iter()
        .all(|name| validity.get(*name) == Some(&true))
}

#[tokio::test]
async fn every_test_database_has_the_indexes_valid() {
    let app = spawn_app().await;
    let validity = index_validity(&app.db().await).await;
    assert!(all_valid(&validity), "{validity:?}");
    app.shutdown().await;
}

async fn migrate(env: &HashMap<String, String>) -> String {
    let output = tokio::process::Command::from(binary("greeter-migrate", env))
        .output()
        .await
        .expect("run greeter-migrate");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The embedded migrations, for bringing a database to an older version.
mod before_v4 {
    refinery::embed_migrations!("migrations");
}

#[tokio::test]
async fn the_index_migration_runs_as_a_non_superuser_owner_on_full_tables_and_again() {
    let server = postgres::shared().clone();
    let superuser = greeter::db::connect(&server.settings("postgres"))
        .await
        .unwrap();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (role, database) = (format!("owner_{suffix}"), format!("t_{suffix}"));
    superuser
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
        ))
        .await
        .unwrap();
    superuser
        .batch_execute(&format!("CREATE DATABASE {database} OWNER {role}"))
        .await
        .unwrap();
    let mut env: HashMap<String, String> = server.env(&database).into_iter().collect();
    env.insert("DATABASE_USER".into(), role.clone());
    let mut settings = server.settings(&database);
    settings.user = role.clone();
    // A database at V3, the version before the index migration: refinery itself applies
    // V1..V3 (each in its transaction), as the previous release's greeter-migrate did.
    // (Deleting V4's history row from a current database would not do: refinery, and so
    // greeter-migrate, never applies a version below the newest applied one.)
    let mut owner = greeter::db::connect(&settings).await.unwrap();
    before_v4::migrations::runner()
        .set_target(refinery::Target::Version(3))
        .run_async(&mut owner)
        .await
        .unwrap();
    let is_superuser: bool = owner
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!is_superuser);

    // Fill the tables, then pretend an earlier attempt at V4 was interrupted: one index
    // left INVALID by a failed concurrent build.
    owner
        .batch_execute(
            "INSERT INTO users (username, password_hash, last_login)
             SELECT format('full%s', i), 'x', CASE WHEN i % 2 = 0 THEN now() END
             FROM generate_series(1, 5000) AS i;
             INSERT INTO admin_audit_log (user_id, username, action, object_type)
             SELECT i % 50, format('full%s', i % 50), 'login', 'session'
             FROM generate_series(1, 20000) AS i",
        )
        .await
        .unwrap();
    let failed = owner
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY users_date_joined_id ON users (is_staff)")
        .await;
    assert!(failed.is_err(), "duplicates make the build fail");
    assert_eq!(
        index_validity(&owner).await.get("users_date_joined_id"),
        Some(&false),
        "the failed build left an invalid index"
    );
    let missing = greeter::migrations::missing(&owner).await.unwrap();
    assert_eq!(
        missing.first(),
        Some(&(4, "admin_scale_indexes".to_owned()))
    );

    let stdout = migrate(&env).await;
    assert!(stdout.contains("V4__admin_scale_indexes"), "{stdout}");
    let validity = index_validity(&owner).await;
    assert!(all_valid(&validity), "{validity:?}");
    // The rebuilt index is V4's, not the failed unique one.
    let definition: String = owner
        .query_one(
            "SELECT pg_get_indexdef('users_date_joined_id'::regclass)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(definition.contains("(date_joined, id)"), "{definition}");
    // Recorded once, with refinery's checksum: the readiness check and refinery agree.
    assert!(
        greeter::migrations::missing(&owner)
            .await
            .unwrap()
            .is_empty()
    );
    let recorded: i64 = owner
        .query_one(
            "SELECT count(*) FROM refinery_schema_history WHERE version = 4",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 1);
    let stdout = migrate(&env).await;
    assert!(stdout.contains("nothing to apply"), "{stdout}");

    // Every statement of V4 can run again as it is, outside a transaction.
    let sql = include_str!("../../migrations/V4__admin_scale_indexes.sql");
    for statement in greeter::migrations::statements(sql) {
        owner.batch_execute(&statement).await.unwrap();
    }
    assert!(all_valid(&index_validity(&owner).await));
    drop(owner);
    superuser
        .batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))
        .await
        .unwrap();
    superuser
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();
}
