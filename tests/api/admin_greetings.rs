//! Greetings in the admin: CRUD, exactly one active, and `GET /` following activation.

use std::time::Duration;

use crate::admin_support::*;
use crate::helpers::{TestApp, spawn_app, spawn_app_on, wait_for};

async fn greetings(app: &TestApp) -> Vec<(i64, String, bool)> {
    app.db()
        .await
        .query(
            "SELECT id, message, is_active FROM greetings ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn active_count(app: &TestApp) -> i64 {
    app.db()
        .await
        .query_one("SELECT count(*) FROM greetings WHERE is_active", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn add_list_change_and_delete_a_greeting() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let (status, html) = get(&app, &client, "/admin/greetings/add/").await;
    assert_eq!(status, 200);
    assert!(html.contains("<title>Add greeting | Greeter administration</title>"));
    assert!(html.contains(r#"<label for="id_message">Message</label>"#));

    // Errors next to the field, what was typed kept.
    let long = "x".repeat(501);
    for (message, error) in [
        ("   ", "This field is required."),
        (long.as_str(), "at most 500 characters"),
    ] {
        let r = add_greeting(&app, &client, &[("message", message)]).await;
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        let at = html
            .find(r#"id="id_message-errors""#)
            .expect("message errors");
        assert!(html[at..].contains(error));
    }

    let r = add_greeting(
        &app,
        &client,
        &[("message", "Bonjour <b>&</b> tout le monde")],
    )
    .await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/admin/greetings/");
    let html = follow(&app, &client, &r).await;
    assert!(html.contains("was added successfully."));
    // Escaped, never raw HTML.
    assert!(html.contains("Bonjour &lt;b&gt;&amp;&lt;/b&gt; tout le monde"));
    assert!(!html.contains("<b>&</b>"));
    let all = greetings(&app).await;
    assert_eq!(all.len(), 2);
    let (id, _, active) = all[1].clone();
    assert!(!active, "not active unless asked");
    assert_eq!(app.served_message().await, "Hello, World!");

    let page = format!("/admin/greetings/{id}/");
    let (status, html) = get(&app, &client, &page).await;
    assert_eq!(status, 200);
    assert!(html.contains("| Change greeting | Greeter administration</title>"));
    let r = submit(
        &app,
        &client,
        &page,
        &page,
        &[("message", "Bonjour tout le monde")],
    )
    .await;
    assert_eq!(r.status(), 302);
    assert_eq!(greetings(&app).await[1].1, "Bonjour tout le monde");

    let delete = format!("/admin/greetings/{id}/delete/");
    let (status, html) = get(&app, &client, &delete).await;
    assert_eq!(status, 200);
    assert!(html.contains("Are you sure you want to delete the greeting"));
    assert_eq!(greetings(&app).await.len(), 2, "GET must not delete");
    let r = submit(&app, &client, &delete, &delete, &[]).await;
    assert_eq!(r.status(), 302);
    assert!(
        follow(&app, &client, &r)
            .await
            .contains("was deleted successfully.")
    );
    assert_eq!(greetings(&app).await.len(), 1);
    let actions: Vec<String> = audit_actions(&app)
        .await
        .into_iter()
        .filter(|(_, _, t)| t == "greeting")
        .map(|(_, a, _)| a)
        .collect();
    assert_eq!(actions, vec!["delete", "update", "create"]);
    app.shutdown().await;
}

#[tokio::test]
async fn activating_a_greeting_changes_get_root_on_every_replica() {
    let app = spawn_app().await;
    // A second replica of the same database.
    let replica = spawn_app_on(
        app.server.clone(),
        app.db_name.clone(),
        app.settings.clone(),
    )
    .await;
    let client = logged_in_admin(&app).await;
    add_greeting(&app, &client, &[("message", "Hallo Welt")]).await;
    let id = greetings(&app).await[1].0;

    let (_, list) = get(&app, &client, "/admin/greetings/").await;
    assert!(list.contains(&format!(r#"action="/admin/greetings/{id}/activate/""#)));
    let r = client
        .post(app.url(&format!("/admin/greetings/{id}/activate/")))
        .form(&[("csrf_token", csrf_token(&list))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(follow(&app, &client, &r).await.contains("is now active"));
    assert_eq!(active_count(&app).await, 1);
    for (name, target) in [("first", &app), ("second", &replica)] {
        let took = wait_for(
            &format!("the {name} replica to serve the new greeting"),
            Duration::from_secs(30),
            || async { target.served_message().await == "Hallo Welt" },
        )
        .await;
        println!("{name} replica served the activated greeting after {took:?}");
    }

    // Activating through the change form (the checkbox) works the same way.
    add_greeting(
        &app,
        &client,
        &[("message", "Hej världen"), ("is_active", "on")],
    )
    .await;
    assert_eq!(active_count(&app).await, 1);
    wait_for(
        "the checkbox activation",
        Duration::from_secs(30),
        || async { replica.served_message().await == "Hej världen" },
    )
    .await;
    let first = greetings(&app).await[0].0;
    let page = format!("/admin/greetings/{first}/");
    submit(
        &app,
        &client,
        &page,
        &page,
        &[("message", "Hello, World!"), ("is_active", "on")],
    )
    .await;
    assert_eq!(active_count(&app).await, 1);
    wait_for(
        "the change-form activation",
        Duration::from_secs(30),
        || async { app.served_message().await == "Hello, World!" },
    )
    .await;

    let activate = audit_after(&app, "activate").await;
    assert_eq!(activate["active_greeting"]["message"], "Hallo Welt");
    replica.shutdown().await;
    app.shutdown().await;
}

#[tokio::test]
async fn exactly_one_greeting_stays_active() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    let active = greetings(&app).await[0].0;
    let page = format!("/admin/greetings/{active}/");
    // Unticking the only active greeting is refused with an error next to the box.
    let r = submit(&app, &client, &page, &page, &[("message", "Hello, World!")]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let at = html
        .find(r#"id="id_is_active-errors""#)
        .expect("is_active errors");
    assert!(html[at..].contains("Exactly one greeting is active."));
    assert_eq!(active_count(&app).await, 1);
    // The active greeting cannot be deleted.
    let delete = format!("/admin/greetings/{active}/delete/");
    let r = client.get(app.url(&delete)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(
        follow(&app, &client, &r)
            .await
            .contains("The active greeting cannot be deleted.")
    );
    let (_, any) = get(&app, &client, "/admin/").await;
    let r = client
        .post(app.url(&delete))
        .form(&[("csrf_token", csrf_token(&any))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(greetings(&app).await.len(), 1);

    // Many concurrent activations: never two active, never an error.
    for i in 0..5 {
        add_greeting(&app, &client, &[("message", &format!("g{i}"))]).await;
    }
    let ids: Vec<i64> = greetings(&app).await.iter().map(|g| g.0).collect();
    let (_, any) = get(&app, &client, "/admin/").await;
    let token = csrf_token(&any);
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let client = client.clone();
            let url = app.url(&format!("/admin/greetings/{id}/activate/"));
            let token = token.clone();
            tokio::spawn(async move {
                client
                    .post(url)
                    .form(&[("csrf_token", token)])
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 302);
    }
    assert_eq!(active_count(&app).await, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn bad_greeting_ids_are_404() {
    let app = spawn_app().await;
    let client = logged_in_admin(&app).await;
    for path in [
        "/admin/greetings/0/",
        "/admin/greetings/x/",
        "/admin/greetings/424242/",
        "/admin/greetings/424242/delete/",
        "/admin/greetings/007x/",
    ] {
        assert_eq!(get(&app, &client, path).await.0, 404, "{path}");
    }
    let (_, any) = get(&app, &client, "/admin/").await;
    let r = client
        .post(app.url("/admin/greetings/424242/activate/"))
        .form(&[("csrf_token", csrf_token(&any))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(active_count(&app).await, 1);
    app.shutdown().await;
}
