//! Users in the admin: list, search, ordering, pagination, add, change, set password,
//! delete; superusers only; nobody locks themself out.

use crate::admin_support::*;
use crate::helpers::{TestApp, spawn_app};

/// Users inserted directly (a placeholder hash: they never log in).
async fn insert_users(app: &TestApp, names: &[&str]) {
    let db = app.db().await;
    for name in names {
        db.execute(
            "INSERT INTO users (username, password_hash, is_staff) VALUES ($1, 'x', TRUE)",
            &[name],
        )
        .await
        .unwrap();
    }
}

/// The usernames in a list page, in order.
fn listed(html: &str) -> Vec<String> {
    html.split(r#"<th scope="row"><a href="/admin/users/"#)
        .skip(1)
        .map(|part| {
            let start = part.find("/\">").unwrap() + 3;
            let end = part.find("</a>").unwrap();
            part[start..end].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_list_searches_orders_and_paginates() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let names: Vec<String> = (0..30).map(|i| format!("member{i:02}")).collect();
    insert_users(&app, &names.iter().map(String::as_str).collect::<Vec<_>>()).await;
    insert_users(&app, &["zed", "under_score"]).await;

    let (status, html) = get(&app, &client, "/admin/users/").await;
    assert_eq!(status, 200);
    assert!(html.contains("<title>Select user to change | Greeter administration</title>"));
    assert!(html.contains("<span>33 in total</span>"));
    let first = listed(&html);
    assert_eq!(first.len(), 25);
    assert_eq!(first[0], "admin");
    assert!(html.contains(r#"aria-sort="ascending""#));

    let next = crate::admin_scale::link(&html, "next").expect("a next page");
    let (_, html) = get(&app, &client, &next).await;
    assert_eq!(listed(&html).len(), 8);
    assert!(html.contains(r#"rel="prev""#));
    // Out-of-range and junk page numbers show a real page instead of failing.
    assert_eq!(get(&app, &client, "/admin/users/?p=99").await.0, 200);
    assert_eq!(get(&app, &client, "/admin/users/?p=-1").await.0, 200);

    let (_, html) = get(&app, &client, "/admin/users/?o=-username").await;
    assert_eq!(listed(&html)[0], "zed");
    let (_, html) = get(&app, &client, "/admin/users/?o=bogus;DROP TABLE users").await;
    assert_eq!(listed(&html)[0], "admin");

    let (_, html) = get(&app, &client, "/admin/users/?q=MEMBER1").await;
    assert_eq!(listed(&html).len(), 10);
    assert!(html.contains(r#"value="MEMBER1""#));
    // LIKE wildcards are matched literally.
    let (_, html) = get(&app, &client, "/admin/users/?q=_").await;
    assert_eq!(listed(&html), vec!["under_score"]);
    let (_, html) = get(&app, &client, "/admin/users/?q=%25").await;
    assert!(listed(&html).is_empty());
    assert!(html.contains("No users found."));
    app.shutdown().await;
}

#[tokio::test]
async fn adding_a_user_validates_the_form() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let (status, html) = get(&app, &client, "/admin/users/add/").await;
    assert_eq!(status, 200);
    assert!(html.contains("<title>Add user | Greeter administration</title>"));
    for (username, p1, p2, field, error) in [
        (
            "",
            "long enough pass",
            "long enough pass",
            "id_username-errors",
            "This field is required.",
        ),
        (
            "bad name!",
            "long enough pass",
            "long enough pass",
            "id_username-errors",
            "Enter a valid username",
        ),
        (
            "Admin",
            "long enough pass",
            "long enough pass",
            "id_username-errors",
            "A user with that username already exists.",
        ),
        (
            "carol",
            "long enough pass",
            "other pass here",
            "id_password2-errors",
            "didn’t match",
        ),
        (
            "carol",
            "carol",
            "carol",
            "id_password2-errors",
            "too short",
        ),
        (
            "carol",
            "carolcarol2024",
            "carolcarol2024",
            "id_password2-errors",
            "too easy to guess",
        ),
    ] {
        let r = submit(
            &app,
            &client,
            "/admin/users/add/",
            "/admin/users/add/",
            &[("username", username), ("password1", p1), ("password2", p2)],
        )
        .await;
        assert_eq!(r.status(), 200, "{username}");
        let html = r.text().await.unwrap();
        let at = html
            .find(&format!(r#"id="{field}""#))
            .unwrap_or_else(|| panic!("no {field} for {username:?}"));
        assert!(html[at..].contains(error), "{error}");
        // What was typed is kept, except passwords.
        if !username.is_empty() {
            assert!(html.contains(&format!(r#"value="{username}""#)));
        }
        assert!(!html.contains(p1) || p1 == username);
    }

    let r = submit(
        &app,
        &client,
        "/admin/users/add/",
        "/admin/users/add/",
        &[
            ("username", "carol"),
            ("password1", "carols own passphrase"),
            ("password2", "carols own passphrase"),
        ],
    )
    .await;
    assert_eq!(r.status(), 302);
    let id = app.user_id("carol").await;
    assert_eq!(location(&r), format!("/admin/users/{id}/"));
    let html = follow(&app, &client, &r).await;
    assert!(html.contains("The user “carol” was added successfully."));
    // A new user is not staff until a superuser says so, so cannot log in yet.
    let row = app
        .db()
        .await
        .query_one(
            "SELECT is_staff, password_hash FROM users WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    assert!(row.get::<_, String>(1).starts_with("$argon2id$"));
    assert_eq!(
        login_as(&app, &browser(), "carol", "carols own passphrase")
            .await
            .status(),
        200
    );
    assert!(
        audit_actions(&app)
            .await
            .contains(&("admin".into(), "create".into(), "user".into()))
    );
    app.shutdown().await;
}

#[tokio::test]
async fn changing_flags_lets_a_user_log_in_and_is_audited() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let id = app
        .create_user("dave", "daves passphrase", false, false)
        .await;
    let page = format!("/admin/users/{id}/");
    let (status, html) = get(&app, &client, &page).await;
    assert_eq!(status, 200);
    assert!(html.contains("<title>dave | Change user | Greeter administration</title>"));
    for label in ["Active", "Staff status", "Superuser status"] {
        assert!(html.contains(&format!(">{label}</label>")));
    }
    let r = submit(
        &app,
        &client,
        &page,
        &page,
        &[
            ("username", "dave"),
            ("is_active", "on"),
            ("is_staff", "on"),
        ],
    )
    .await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/admin/users/");
    assert!(
        follow(&app, &client, &r)
            .await
            .contains("The user “dave” was changed successfully.")
    );
    let dave = browser();
    assert_eq!(
        login_as(&app, &dave, "dave", "daves passphrase")
            .await
            .status(),
        302
    );
    // Staff but not superuser: greetings yes, users and the audit log no.
    assert_eq!(get(&app, &dave, "/admin/greetings/").await.0, 200);
    for path in [
        "/admin/users/".to_owned(),
        "/admin/users/add/".to_owned(),
        format!("/admin/users/{id}/"),
        format!("/admin/users/{id}/password/"),
        format!("/admin/users/{id}/delete/"),
        "/admin/audit/".to_owned(),
    ] {
        let (status, html) = get(&app, &dave, &path).await;
        assert_eq!(status, 403, "{path}");
        assert!(html.contains("Permission denied"));
    }
    let (_, index) = get(&app, &dave, "/admin/").await;
    assert!(!index.contains("/admin/users/"));
    // Nor may they POST there, even with a valid token.
    let (_, greetings) = get(&app, &dave, "/admin/greetings/").await;
    let r = dave
        .post(app.url("/admin/users/add/"))
        .form(&[
            ("username", "eve"),
            ("password1", "eves passphrase"),
            ("password2", "eves passphrase"),
            ("csrf_token", &csrf_token(&greetings)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let (before, after): (serde_json::Value, serde_json::Value) = {
        let row = app
            .db()
            .await
            .query_one(
                "SELECT before, after FROM admin_audit_log WHERE action = 'update' AND object_type = 'user'",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(before["is_staff"], false);
    assert_eq!(after["is_staff"], true);
    assert_eq!(after["username"], "dave");
    // Deactivating the user ends their session at once.
    let r = submit(
        &app,
        &client,
        &page,
        &page,
        &[("username", "dave"), ("is_staff", "on")],
    )
    .await;
    assert_eq!(r.status(), 302);
    assert_eq!(get(&app, &dave, "/admin/").await.0, 302);
    app.shutdown().await;
}

#[tokio::test]
async fn nobody_can_lock_themself_out() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let me = app.user_id(ADMIN).await;
    let page = format!("/admin/users/{me}/");
    let (_, html) = get(&app, &client, &page).await;
    assert!(html.contains("This is your own account"));
    assert!(!html.contains(&format!("/admin/users/{me}/delete/")));
    for (fields, error_id) in [
        (
            vec![
                ("username", ADMIN),
                ("is_staff", "on"),
                ("is_superuser", "on"),
            ],
            "id_is_active-errors",
        ),
        (
            vec![
                ("username", ADMIN),
                ("is_active", "on"),
                ("is_superuser", "on"),
            ],
            "id_is_staff-errors",
        ),
        (
            vec![("username", ADMIN), ("is_active", "on"), ("is_staff", "on")],
            "id_is_superuser-errors",
        ),
    ] {
        let r = submit(&app, &client, &page, &page, &fields).await;
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        let at = html.find(&format!(r#"id="{error_id}""#)).expect(error_id);
        assert!(html[at..].contains("you would lock yourself out"));
    }
    // Nor delete themself.
    let r = client
        .get(app.url(&format!("/admin/users/{me}/delete/")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(
        follow(&app, &client, &r)
            .await
            .contains("You cannot delete your own account.")
    );
    let (_, any) = get(&app, &client, "/admin/").await;
    let r = client
        .post(app.url(&format!("/admin/users/{me}/delete/")))
        .form(&[("csrf_token", csrf_token(&any))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let row = app
        .db()
        .await
        .query_one(
            "SELECT is_active AND is_staff AND is_superuser FROM users WHERE id = $1",
            &[&me],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(get(&app, &client, "/admin/").await.0, 200);
    app.shutdown().await;
}

#[tokio::test]
async fn setting_a_password_logs_the_user_out_everywhere() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let id = app
        .create_user("frank", "franks passphrase", true, false)
        .await;
    let frank = browser();
    assert_eq!(
        login_as(&app, &frank, "frank", "franks passphrase")
            .await
            .status(),
        302
    );
    let page = format!("/admin/users/{id}/password/");
    let r = submit(
        &app,
        &client,
        &page,
        &page,
        &[("password1", "abc"), ("password2", "abc")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("too short"));
    let r = submit(
        &app,
        &client,
        &page,
        &page,
        &[
            ("password1", "a new one for frank"),
            ("password2", "a new one for frank"),
        ],
    )
    .await;
    assert_eq!(r.status(), 302);
    assert!(
        follow(&app, &client, &r)
            .await
            .contains("Password changed successfully.")
    );
    assert_eq!(get(&app, &frank, "/admin/").await.0, 302);
    assert_eq!(
        login_as(&app, &browser(), "frank", "a new one for frank")
            .await
            .status(),
        302
    );
    let after = audit_after(&app, "set_password").await;
    assert_eq!(after, serde_json::json!({"password": "changed"}));
    app.shutdown().await;
}

#[tokio::test]
async fn deleting_asks_for_confirmation_then_deletes() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let id = app
        .create_user("gina", "ginas passphrase", true, false)
        .await;
    let gina = browser();
    assert_eq!(
        login_as(&app, &gina, "gina", "ginas passphrase")
            .await
            .status(),
        302
    );
    let page = format!("/admin/users/{id}/delete/");
    let (status, html) = get(&app, &client, &page).await;
    assert_eq!(status, 200);
    assert!(html.contains("Are you sure you want to delete the user “<strong>gina</strong>”?"));
    assert!(user_exists(&app, id).await, "GET must not delete");
    let r = submit(&app, &client, &page, &page, &[]).await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/admin/users/");
    assert!(
        follow(&app, &client, &r)
            .await
            .contains("The user “gina” was deleted successfully.")
    );
    assert!(!user_exists(&app, id).await);
    assert_eq!(get(&app, &gina, "/admin/").await.0, 302);
    // The audit log keeps the user's entries and records the deletion.
    let actions = audit_actions(&app).await;
    assert_eq!(actions[0], ("admin".into(), "delete".into(), "user".into()));
    assert!(actions.contains(&("gina".into(), "login".into(), "session".into())));
    // Gone means 404.
    assert_eq!(
        get(&app, &client, &format!("/admin/users/{id}/")).await.0,
        404
    );
    app.shutdown().await;
}

async fn user_exists(app: &TestApp, id: i64) -> bool {
    app.db()
        .await
        .query_one("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)", &[&id])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn bad_ids_are_404() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    for path in [
        "/admin/users/0/",
        "/admin/users/-1/",
        "/admin/users/abc/",
        "/admin/users/1e3/",
        "/admin/users/99999/",
        "/admin/users/99999999999999999999999/",
        "/admin/users/1%20OR%201=1/",
        "/admin/users/99999/password/",
        "/admin/users/99999/delete/",
        "/admin/users/1/unknown/",
    ] {
        let (status, html) = get(&app, &client, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(html.contains("Page not found"), "{path}");
    }
    app.shutdown().await;
}
