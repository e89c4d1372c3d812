//! Bearer tokens: 401/403, expiry, revocation seen by a second replica at once, the
//! owner losing admin rights, fail-closed without the listener, last use, rate limit.

use std::time::Duration;

use greeter::api::tokens::Scope;
use reqwest::Method;
use serde_json::json;

use crate::api_support::*;
use crate::helpers::{kill_connections, wait_for};

const LIST: &str = "/api/v1/greetings";

#[tokio::test]
async fn missing_malformed_and_unknown_tokens_get_401_with_www_authenticate() {
    let app = spawn_api_app().await;
    let valid = write_token(&app).await;
    let unknown = greeter::api::tokens::generate();

    let missing = app.client.get(app.url(LIST)).send().await.unwrap();
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"greeter\""
    );
    problem(missing, 401, "unauthorized").await;

    for header in [
        format!("Basic {valid}"),
        valid.clone(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Bearer {}", &valid[..valid.len() - 1]),
        format!("Bearer {}x", valid),
        format!("Bearer xrt_{}", &valid[4..]),
        format!("Bearer {unknown}"),
    ] {
        let response = app
            .client
            .get(app.url(LIST))
            .header("authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"greeter\", error=\"invalid_token\"",
            "{header}"
        );
        problem(response, 401, "unauthorized").await;
    }
    // Every operation needs the token; only the document is public.
    for (method, path) in [
        (Method::POST, LIST),
        (Method::GET, "/api/v1/greetings/1"),
        (Method::PATCH, "/api/v1/greetings/1"),
        (Method::DELETE, "/api/v1/greetings/1"),
        (Method::POST, "/api/v1/greetings/1/activate"),
    ] {
        problem(
            api(&app, method, path, None, None).await,
            401,
            "unauthorized",
        )
        .await;
    }
    assert_eq!(
        api(&app, Method::GET, "/api/v1/openapi.json", None, None)
            .await
            .status(),
        200
    );
    // The scheme is case-insensitive (RFC 7235).
    let lower = app
        .client
        .get(app.url(LIST))
        .header("authorization", format!("bearer {valid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn a_read_token_may_read_but_gets_403_for_every_write() {
    let app = spawn_api_app().await;
    let read = read_token(&app).await;
    assert_eq!(
        api(&app, Method::GET, LIST, Some(&read), None)
            .await
            .status(),
        200
    );
    assert_eq!(
        api(&app, Method::GET, "/api/v1/greetings/1", Some(&read), None)
            .await
            .status(),
        200
    );
    for (method, path) in [
        (Method::POST, LIST),
        (Method::PATCH, "/api/v1/greetings/1"),
        (Method::DELETE, "/api/v1/greetings/1"),
        (Method::POST, "/api/v1/greetings/1/activate"),
    ] {
        let response = api(
            &app,
            method,
            path,
            Some(&read),
            Some(json!({"message": "no"})),
        )
        .await;
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"greeter\", error=\"insufficient_scope\", scope=\"greetings:write\""
        );
        problem(response, 403, "insufficient-scope").await;
    }
    assert_eq!(app.served_message().await, "Hello, World!");
    app.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_gets_401() {
    let app = spawn_api_app().await;
    let token = token(&[&app], &[Scope::GreetingsRead], Some(1)).await;
    assert_eq!(
        api(&app, Method::GET, LIST, Some(&token), None)
            .await
            .status(),
        200
    );
    // A day later, as far as this token is concerned.
    app.db()
        .await
        .execute(
            "UPDATE api_tokens SET expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    wait_for(
        "the expired token to be refused",
        Duration::from_secs(10),
        || async {
            api(&app, Method::GET, LIST, Some(&token), None)
                .await
                .status()
                == 401
        },
    )
    .await;
    let body = problem(
        api(&app, Method::GET, LIST, Some(&token), None).await,
        401,
        "unauthorized",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("revoked")
            || body["detail"].as_str().unwrap().contains("expired")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn an_expiry_that_passes_while_loaded_is_checked_per_request() {
    let app = spawn_api_app().await;
    let token = token(&[&app], &[Scope::GreetingsRead], Some(1)).await;
    // Move the expiry a moment into the future, so it passes while the token is cached.
    app.db()
        .await
        .execute(
            "UPDATE api_tokens SET expires_at = now() + interval '2 seconds'",
            &[],
        )
        .await
        .unwrap();
    wait_for("the token to expire", Duration::from_secs(15), || async {
        api(&app, Method::GET, LIST, Some(&token), None)
            .await
            .status()
            == 401
    })
    .await;
    let body = problem(
        api(&app, Method::GET, LIST, Some(&token), None).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(body["detail"], "The token has expired.");
    app.shutdown().await;
}

#[tokio::test]
async fn revocation_is_seen_by_a_second_running_replica_at_once() {
    let first = spawn_api_app().await;
    let second = second_replica(&first).await;
    let token = token(&[&first, &second], &[Scope::GreetingsWrite], None).await;
    for app in [&first, &second] {
        assert_eq!(
            api(app, Method::GET, LIST, Some(&token), None)
                .await
                .status(),
            200
        );
    }
    let id: i64 = first
        .db()
        .await
        .query_one("SELECT id FROM api_tokens", &[])
        .await
        .unwrap()
        .get(0);
    let revoked = greeter::api::tokens::revoke(&first.db().await, id, None)
        .await
        .unwrap();
    assert!(revoked.is_some());
    let started = std::time::Instant::now();
    for app in [&second, &first] {
        wait_for(
            "the revoked token to be refused",
            Duration::from_secs(1),
            || async {
                api(app, Method::GET, LIST, Some(&token), None)
                    .await
                    .status()
                    == 401
            },
        )
        .await;
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    second.shutdown().await;
    first.shutdown().await;
}

#[tokio::test]
async fn a_deactivated_or_demoted_owner_ends_their_tokens() {
    let app = spawn_api_app().await;
    let token = write_token(&app).await;
    let db = app.db().await;
    db.execute(
        "UPDATE users SET is_staff = FALSE WHERE username = $1",
        &[&OWNER],
    )
    .await
    .unwrap();
    wait_for(
        "the demoted owner's token to be refused",
        Duration::from_secs(5),
        || async {
            api(&app, Method::GET, LIST, Some(&token), None)
                .await
                .status()
                == 401
        },
    )
    .await;
    db.execute(
        "UPDATE users SET is_staff = TRUE WHERE username = $1",
        &[&OWNER],
    )
    .await
    .unwrap();
    wait_accepted(&app, &token).await;
    db.execute(
        "UPDATE users SET is_active = FALSE WHERE username = $1",
        &[&OWNER],
    )
    .await
    .unwrap();
    wait_for(
        "the deactivated owner's token to be refused",
        Duration::from_secs(5),
        || async {
            api(&app, Method::GET, LIST, Some(&token), None)
                .await
                .status()
                == 401
        },
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn without_its_listener_a_replica_fails_closed_then_recovers() {
    let app = spawn_api_app().await;
    let token = write_token(&app).await;
    let db = app.db().await;
    // From another database: PostgreSQL will not disallow the current one.
    let admin = greeter::db::connect(&app.server.settings("postgres"))
        .await
        .unwrap();
    // No new connections to this database (superusers included), then kill the LISTEN
    // connection: the replica cannot hear of revocations any more.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
            app.db_name
        ))
        .await
        .unwrap();
    assert_eq!(kill_connections(&db, "greeter-token-listener").await, 1);
    wait_for(
        "the API to fail closed",
        Duration::from_secs(10),
        || async { !app.state.api.tokens.is_loaded() },
    )
    .await;
    let refused = api(&app, Method::GET, LIST, Some(&token), None).await;
    assert_eq!(refused.headers()["retry-after"], "1");
    problem(refused, 503, "unavailable").await;
    // GET / keeps serving from memory meanwhile.
    assert_eq!(app.served_message().await, "Hello, World!");

    // Revoked while nobody listens: the reload after reconnecting must still drop it.
    db.execute("UPDATE api_tokens SET revoked_at = now()", &[])
        .await
        .unwrap();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
            app.db_name
        ))
        .await
        .unwrap();
    wait_tokens_loaded(&app).await;
    problem(
        api(&app, Method::GET, LIST, Some(&token), None).await,
        401,
        "unauthorized",
    )
    .await;
    let fresh = write_token(&app).await;
    assert_eq!(
        api(&app, Method::GET, LIST, Some(&fresh), None)
            .await
            .status(),
        200
    );
    app.shutdown().await;
}

#[tokio::test]
async fn last_use_is_recorded_without_a_write_per_request() {
    let app = spawn_api_app().await;
    let token = read_token(&app).await;
    let db = app.db().await;
    let last_used = || async {
        db.query_one("SELECT last_used_at IS NOT NULL FROM api_tokens", &[])
            .await
            .unwrap()
            .get::<_, bool>(0)
    };
    for _ in 0..20 {
        assert_eq!(
            api(&app, Method::GET, LIST, Some(&token), None)
                .await
                .status(),
            200
        );
    }
    wait_for(
        "last_used_at to be written",
        Duration::from_secs(15),
        || async { last_used().await },
    )
    .await;
    let updates: i64 = db
        .query_one(
            "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'api_tokens'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(updates <= 2, "{updates} updates for 20 requests");
    app.shutdown().await;
}

#[tokio::test]
async fn past_the_rate_limit_a_token_gets_429_with_retry_after() {
    let app = spawn_api_app().await;
    app.state.api.set_rate_limit(5);
    let token = read_token(&app).await;
    let other = read_token(&app).await;
    let mut limited = None;
    for _ in 0..50 {
        let response = api(&app, Method::GET, LIST, Some(&token), None).await;
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), 200);
    }
    let response = limited.expect("no 429 within 50 requests at a limit of 5/s");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1).contains(&retry_after), "{retry_after}");
    problem(response, 429, "rate-limited").await;
    // The limit is per token: another token is not affected.
    assert_eq!(
        api(&app, Method::GET, LIST, Some(&other), None)
            .await
            .status(),
        200
    );
    app.shutdown().await;
}
