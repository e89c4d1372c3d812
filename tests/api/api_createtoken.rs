//! `greeter createtoken`: prints the token once, stores only its hash, exit 2 for bad
//! arguments (like createsuperuser), 1 for what the database refuses.

use std::process::Output;

use crate::helpers::{binary, server_env, spawn_app};

fn createtoken(env: &std::collections::HashMap<String, String>, args: &[&str]) -> Output {
    binary("greeter", env)
        .arg("createtoken")
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn creates_a_working_token_and_refuses_bad_arguments() {
    let app = spawn_app().await;
    app.create_user("alice", "alice-password-123", true, false)
        .await;
    app.create_user("nostaff", "nostaff-password-123", false, false)
        .await;
    crate::api_support::wait_tokens_loaded(&app).await;
    let env = server_env(&app.server, &app.db_name);

    let created = createtoken(
        &env,
        &[
            "--name",
            "ci",
            "--scope",
            "greetings:write",
            "--expires-in-days",
            "30",
            "--username",
            "ALICE",
        ],
    );
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(created.status.success(), "{stderr}");
    let stdout = String::from_utf8(created.stdout).unwrap();
    let token = stdout.trim();
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the token on stdout: {stdout}"
    );
    assert!(greeter::api::tokens::looks_like_token(token), "{token}");
    assert!(stderr.contains("shown only this once"), "{stderr}");

    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT t.token_hash, t.scopes, u.username, t.expires_at > now() + interval '29 days',
                    t.expires_at < now() + interval '31 days', t.name
             FROM api_tokens t JOIN users u ON u.id = t.owner_id",
            &[],
        )
        .await
        .unwrap();
    let stored: Vec<u8> = row.get(0);
    assert_eq!(
        stored,
        greeter::api::tokens::hash(token).to_vec(),
        "only the hash is stored"
    );
    assert_eq!(row.get::<_, Vec<String>>(1), ["greetings:write"]);
    assert_eq!(row.get::<_, String>(2), "alice");
    assert!(row.get::<_, bool>(3) && row.get::<_, bool>(4));
    assert_eq!(row.get::<_, String>(5), "ci");
    let everything: String = db
        .query_one("SELECT row_to_json(t)::text FROM api_tokens t", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        !everything.contains(&token[4..]),
        "the token itself is nowhere in the row"
    );

    crate::api_support::wait_accepted(&app, token).await;
    let response = crate::api_support::api(
        &app,
        reqwest::Method::POST,
        "/api/v1/greetings",
        Some(token),
        Some(serde_json::json!({"message": "From CI"})),
    )
    .await;
    assert_eq!(response.status(), 201);

    // Bad arguments: exit 2, nothing stored.
    for args in [
        &["--scope", "greetings:read", "--username", "alice"][..],
        &["--name", "x", "--username", "alice"],
        &["--name", "x", "--scope", "admin", "--username", "alice"],
        &["--name", "x", "--scope", "greetings:read"],
        &[
            "--name",
            "x",
            "--scope",
            "greetings:read",
            "--username",
            "bad name",
        ],
        &[
            "--name",
            "",
            "--scope",
            "greetings:read",
            "--username",
            "alice",
        ],
        &[
            "--name",
            "x",
            "--scope",
            "greetings:read",
            "--username",
            "alice",
            "--expires-in-days",
            "0",
        ],
        &[
            "--name",
            "x",
            "--scope",
            "greetings:read",
            "--username",
            "alice",
            "--expires-in-days",
            "soon",
        ],
        &[
            "--name",
            "x",
            "--scope",
            "greetings:read",
            "--username",
            "alice",
            "--expires-in-days",
            "3651",
        ],
    ] {
        let out = createtoken(&env, args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
    // What the database refuses: exit 1.
    for user in ["nobody", "nostaff"] {
        let out = createtoken(
            &env,
            &[
                "--name",
                "x",
                "--scope",
                "greetings:read",
                "--username",
                user,
            ],
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no active admin"));
    }
    // Missing database settings: exit 2 naming the variable.
    let mut no_db = env.clone();
    no_db.remove("DATABASE_NAME");
    let out = createtoken(
        &no_db,
        &[
            "--name",
            "x",
            "--scope",
            "greetings:read",
            "--username",
            "alice",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_NAME"));

    let count: i64 = db
        .query_one("SELECT count(*) FROM api_tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
    app.shutdown().await;
}
