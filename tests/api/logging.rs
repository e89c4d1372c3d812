//! The logs of the real binary: every line of a request carries its request id (JSON:
//! under "span"), and pretty logs written to a pipe are plain text.

use crate::admin_support::{browser, form_post};
use crate::helpers::{ServerProcess, wait_for};
use crate::postgres::{self, TEMPLATE_DB};

/// POST a login with `request_id`; returns the status.
async fn login(address: std::net::SocketAddr, request_id: &str) -> u16 {
    let url = format!("http://{address}/admin/login/");
    form_post(
        &browser(),
        &url,
        &url,
        &[("username", "nobody"), ("password", "not the password")],
    )
    .await
    .header("X-Request-Id", request_id)
    .send()
    .await
    .unwrap()
    .status()
    .as_u16()
}

#[tokio::test]
async fn every_line_of_a_request_carries_its_request_id_errors_included() {
    let server = postgres::shared().clone();
    let db_name = server.create_database(Some(TEMPLATE_DB)).await;
    let process = ServerProcess::start(&server, &db_name).await;

    // A handler's own line (the failed login) ...
    assert_eq!(login(process.address, "story-login-failed").await, 200);
    // ... and an error line: the throttle's table is gone, so the login's query fails.
    let db = greeter::db::connect(&server.settings(&db_name))
        .await
        .unwrap();
    db.batch_execute("ALTER TABLE admin_login_failures RENAME TO gone")
        .await
        .unwrap();
    assert_eq!(login(process.address, "story-database-error").await, 500);

    for id in ["story-login-failed", "story-database-error"] {
        let access = process
            .logs
            .wait_for_json("the access line", |l| l["request_id"] == id)
            .await;
        assert_eq!(access["target"], "access");
        assert_eq!(access["path"], "/admin/login/");
    }
    let lines = process.logs.json();
    let of = |id: &str| -> Vec<serde_json::Value> {
        lines
            .iter()
            .filter(|l| l["span"]["request_id"] == id)
            .cloned()
            .collect()
    };
    let failed = of("story-login-failed");
    assert!(
        failed
            .iter()
            .any(|l| l["level"] == "INFO" && l["target"] != "access"),
        "no handler line carries the id: {lines:#?}"
    );
    let errors = of("story-database-error");
    let error = errors
        .iter()
        .find(|l| l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error line carries the id: {lines:#?}"));
    assert_eq!(error["span"]["method"], "POST");
    assert_eq!(error["span"]["route"], "/admin");
}

#[tokio::test]
async fn pretty_logs_written_to_a_pipe_have_no_colour() {
    let server = postgres::shared().clone();
    let db_name = server.create_database(Some(TEMPLATE_DB)).await;
    let process = ServerProcess::start_with(&server, &db_name, |env| {
        env.insert("LOG_FORMAT".into(), "pretty".into());
    })
    .await;
    wait_for(
        "the listening line",
        std::time::Duration::from_secs(30),
        || async {
            process
                .logs
                .lines()
                .iter()
                .any(|l| l.contains("greeter is listening"))
        },
    )
    .await;
    let lines = process.logs.lines();
    assert!(
        lines.iter().all(|l| !l.contains('\x1b')),
        "escape sequences in piped logs: {lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains(" INFO ")), "{lines:?}");
}
