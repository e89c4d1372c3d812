//! `/api/v1/greetings`: every route and status, the admin's rules, audit entries, and
//! activation reaching `GET /` on every replica.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::api_support::*;
use crate::helpers::wait_for;

#[tokio::test]
async fn create_read_update_list_and_delete_a_greeting() {
    let app = spawn_api_app().await;
    let token = write_token(&app).await;

    let response = api(
        &app,
        Method::POST,
        "/api/v1/greetings",
        Some(&token),
        Some(json!({"message": "Hello from the API"})),
    )
    .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(location, format!("/api/v1/greetings/{id}"));
    assert_eq!(created["message"], "Hello from the API");
    assert_eq!(created["is_active"], false);
    for field in ["created_at", "updated_at"] {
        let text = created[field].as_str().unwrap();
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{field} {text:?} is not RFC 3339: {e}"));
    }

    let fetched: Value = api(&app, Method::GET, &location, Some(&token), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fetched, created);

    let changed = api(
        &app,
        Method::PATCH,
        &location,
        Some(&token),
        Some(json!({"message": "Changed by the API"})),
    )
    .await;
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["message"], "Changed by the API");
    assert_eq!(changed["id"], id);

    let listed: Value = api(&app, Method::GET, "/api/v1/greetings", Some(&token), None)
        .await
        .json()
        .await
        .unwrap();
    let messages: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["Hello, World!", "Changed by the API"]);
    assert_eq!(listed["next_after"], Value::Null);

    let deleted = api(&app, Method::DELETE, &location, Some(&token), None).await;
    assert_eq!(deleted.status(), 204);
    problem(
        api(&app, Method::GET, &location, Some(&token), None).await,
        404,
        "not-found",
    )
    .await;
    problem(
        api(&app, Method::DELETE, &location, Some(&token), None).await,
        404,
        "not-found",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn the_list_pages_with_a_cursor() {
    let app = spawn_api_app().await;
    let token = write_token(&app).await;
    for i in 0..4 {
        create_greeting(&app, &token, &format!("greeting {i}")).await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/greetings?limit=2".to_owned();
    loop {
        let page: Value = api(&app, Method::GET, &path, Some(&token), None)
            .await
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|g| g["message"].as_str().unwrap().to_owned()),
        );
        match page["next_after"].as_i64() {
            Some(after) => path = format!("/api/v1/greetings?limit=2&after={after}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "Hello, World!",
            "greeting 0",
            "greeting 1",
            "greeting 2",
            "greeting 3"
        ]
    );
    for bad in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "after=-1",
        "after=",
        "limit=",
        "after=99999999999999999999",
    ] {
        problem(
            api(
                &app,
                Method::GET,
                &format!("/api/v1/greetings?{bad}"),
                Some(&token),
                None,
            )
            .await,
            400,
            "invalid-query",
        )
        .await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn activation_reaches_get_slash_on_every_replica_within_a_second() {
    let first = spawn_api_app().await;
    let second = second_replica(&first).await;
    let token = write_token(&first).await;
    let created = create_greeting(&first, &token, "Activated through the API").await;
    let id = created["id"].as_i64().unwrap();

    let response = api(
        &first,
        Method::POST,
        &format!("/api/v1/greetings/{id}/activate"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let started = std::time::Instant::now();
    let active: Value = response.json().await.unwrap();
    assert_eq!(active["is_active"], true);
    for app in [&first, &second] {
        wait_for(
            "the activated greeting on GET /",
            Duration::from_secs(1),
            || async { app.served_message().await == "Activated through the API" },
        )
        .await;
    }
    assert!(started.elapsed() < Duration::from_secs(1));

    // Exactly one greeting is active, and the active one cannot be deleted.
    let listed: Value = api(&first, Method::GET, "/api/v1/greetings", Some(&token), None)
        .await
        .json()
        .await
        .unwrap();
    let active: Vec<i64> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["is_active"] == true)
        .map(|g| g["id"].as_i64().unwrap())
        .collect();
    assert_eq!(active, [id]);
    problem(
        api(
            &first,
            Method::DELETE,
            &format!("/api/v1/greetings/{id}"),
            Some(&token),
            None,
        )
        .await,
        409,
        "active-greeting",
    )
    .await;
    assert_eq!(first.served_message().await, "Activated through the API");
    second.shutdown().await;
    first.shutdown().await;
}

#[tokio::test]
async fn bad_bodies_get_413_415_422_and_change_nothing() {
    let app = spawn_api_app().await;
    let token = write_token(&app).await;
    let url = app.url("/api/v1/greetings");
    let post = |body: Vec<u8>, content_type: Option<&'static str>| {
        let mut request = app.client.post(&url).bearer_auth(&token).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send()
    };
    let json = Some("application/json");

    problem(
        post(vec![b'x'; 20_000], json).await.unwrap(),
        413,
        "payload-too-large",
    )
    .await;
    problem(
        post(br#"{"message": "hi"}"#.to_vec(), Some("text/plain"))
            .await
            .unwrap(),
        415,
        "unsupported-media-type",
    )
    .await;
    problem(
        post(br#"{"message": "hi"}"#.to_vec(), None).await.unwrap(),
        415,
        "unsupported-media-type",
    )
    .await;
    let too_long = serde_json::to_vec(&json!({"message": "x".repeat(501)})).unwrap();
    let body = problem(post(too_long, json).await.unwrap(), 422, "invalid-body").await;
    assert_eq!(body["errors"][0]["field"], "message");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("500")
    );
    for bad in [
        &b"not json"[..],
        br#"{"message": ""}"#,
        br#"{"message": 42}"#,
        br#"{}"#,
        br#"{"message": "hi", "is_active": true}"#,
        br#"{"message": "nul \u0000 byte"}"#,
        b"",
    ] {
        problem(post(bad.to_vec(), json).await.unwrap(), 422, "invalid-body").await;
    }
    // Exactly 500 characters (multi-byte ones) is fine.
    let longest = "é".repeat(500);
    assert_eq!(
        create_greeting(&app, &token, &longest).await["message"],
        longest
    );

    // A chunked body without Content-Length is capped while it is read.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = app.address.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let head = format!(
            "POST /api/v1/greetings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let chunk = format!("400\r\n{}\r\n", " ".repeat(1024));
        for _ in 0..40 {
            if stream.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
        let mut answer = vec![0u8; 12];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 413");
    }

    let count = app.query_i64("SELECT count(*) FROM greetings").await;
    assert_eq!(count, 2, "only the valid greeting was stored");
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_routes_ids_and_methods_get_404_and_405() {
    let app = spawn_api_app().await;
    let token = write_token(&app).await;
    for path in [
        "/api/v1/nothing",
        "/api/v1/greetings/0",
        "/api/v1/greetings/-1",
        "/api/v1/greetings/abc",
        "/api/v1/greetings/99999999999999999999",
        "/api/v1/greetings/999999",
        "/api/v1/greetings/1/unknown",
        "/api/v2/greetings",
    ] {
        problem(
            api(&app, Method::GET, path, Some(&token), None).await,
            404,
            "not-found",
        )
        .await;
    }
    for (method, path, allow) in [
        (Method::PUT, "/api/v1/greetings", "GET, HEAD, POST"),
        (
            Method::POST,
            "/api/v1/greetings/1",
            "GET, HEAD, PATCH, DELETE",
        ),
        (Method::GET, "/api/v1/greetings/1/activate", "POST"),
        (Method::DELETE, "/api/v1/openapi.json", "GET, HEAD"),
    ] {
        let response = api(&app, method, path, Some(&token), None).await;
        assert_eq!(response.headers()["allow"], allow);
        problem(response, 405, "method-not-allowed").await;
    }
    for (method, path) in [
        (Method::PATCH, "/api/v1/greetings/999999"),
        (Method::POST, "/api/v1/greetings/999999/activate"),
    ] {
        let response = api(
            &app,
            method,
            path,
            Some(&token),
            Some(json!({"message": "x"})),
        )
        .await;
        problem(response, 404, "not-found").await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn every_write_is_an_audit_entry_naming_the_token_and_its_owner() {
    let app = spawn_api_app().await;
    let token = write_token(&app).await;
    let created = create_greeting(&app, &token, "Audited").await;
    let path = format!("/api/v1/greetings/{}", created["id"]);
    api(
        &app,
        Method::PATCH,
        &path,
        Some(&token),
        Some(json!({"message": "Audited again"})),
    )
    .await;
    api(
        &app,
        Method::POST,
        &format!("{path}/activate"),
        Some(&token),
        None,
    )
    .await;
    api(
        &app,
        Method::POST,
        "/api/v1/greetings/1/activate",
        Some(&token),
        None,
    )
    .await;
    api(&app, Method::DELETE, &path, Some(&token), None).await;
    // Reads and refused writes leave no entry.
    api(&app, Method::GET, &path, Some(&token), None).await;
    api(
        &app,
        Method::DELETE,
        "/api/v1/greetings/1",
        Some(&token),
        None,
    )
    .await;

    let rows = app
        .db()
        .await
        .query(
            "SELECT a.action, a.object_type, a.username, a.user_id, a.api_token_name,
                    a.api_token_id = t.id, a.object_repr, a.client_addr
             FROM admin_audit_log a LEFT JOIN api_tokens t ON t.id = a.api_token_id
             ORDER BY a.id",
            &[],
        )
        .await
        .unwrap();
    let owner_id = app.user_id(OWNER).await;
    let actions: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        actions,
        ["create", "update", "activate", "activate", "delete"]
    );
    for row in &rows {
        assert_eq!(row.get::<_, String>(1), "greeting");
        assert_eq!(row.get::<_, String>(2), OWNER);
        assert_eq!(row.get::<_, Option<i64>>(3), Some(owner_id));
        assert_eq!(
            row.get::<_, Option<String>>(4).as_deref(),
            Some("test token")
        );
        assert_eq!(row.get::<_, Option<bool>>(5), Some(true));
        assert_eq!(
            row.get::<_, Option<String>>(7).as_deref(),
            Some("127.0.0.1")
        );
    }
    assert_eq!(rows[1].get::<_, String>(6), "Audited again");

    // The admin's audit page says which token made the change.
    let admin = crate::admin_support::logged_in_admin(&app).await;
    let entry = app
        .query_i64("SELECT min(id) FROM admin_audit_log WHERE api_token_id IS NOT NULL")
        .await;
    let (status, html) =
        crate::admin_support::get(&app, &admin, &format!("/admin/audit/{entry}/")).await;
    assert_eq!(status, 200);
    assert!(html.contains("with the token “test token”"), "{html}");
    app.shutdown().await;
}

#[tokio::test]
async fn reads_come_from_memory_kept_current_by_notify_and_from_sql_past_the_cap() {
    let app = spawn_api_app().await;
    let token = read_token(&app).await;
    // A change made elsewhere (psql, the admin, another replica) reaches the API's reads
    // through the same NOTIFY as GET /.
    let db = app.db().await;
    db.execute(
        "UPDATE greetings SET message = 'Changed in SQL' WHERE id = 1",
        &[],
    )
    .await
    .unwrap();
    wait_for(
        "the API to read the change",
        Duration::from_secs(1),
        || async {
            let body: Value = api(&app, Method::GET, "/api/v1/greetings/1", Some(&token), None)
                .await
                .json()
                .await
                .unwrap();
            body["message"] == "Changed in SQL"
        },
    )
    .await;
    assert!(
        app.state.api.greetings.get().is_some(),
        "served from memory"
    );

    // More greetings than the snapshot holds: reads go to PostgreSQL, with the same answers.
    let extra = greeter::api::snapshot::MAX_CACHED;
    db.execute(
        "INSERT INTO greetings (message) SELECT 'bulk ' || n FROM generate_series(1, $1::BIGINT) n",
        &[&extra],
    )
    .await
    .unwrap();
    wait_for(
        "the snapshot to be dropped",
        Duration::from_secs(5),
        || async { app.state.api.greetings.get().is_none() },
    )
    .await;
    let page: Value = api(
        &app,
        Method::GET,
        "/api/v1/greetings?limit=2&after=1",
        Some(&token),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(page["items"][0]["message"], "bulk 1");
    assert_eq!(page["items"][1]["message"], "bulk 2");
    assert_eq!(page["next_after"], page["items"][1]["id"]);
    let last = extra + 1;
    let one: Value = api(
        &app,
        Method::GET,
        &format!("/api/v1/greetings/{last}"),
        Some(&token),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(one["message"], format!("bulk {extra}"));
    app.shutdown().await;
}
