//! The served OpenAPI document is the one utoipa generates from the handlers (there is no
//! committed copy to drift), it is OpenAPI 3.1, and it describes what the server does.

use reqwest::Method;
use serde_json::Value;

use crate::api_support::*;

#[tokio::test]
async fn the_served_document_is_the_generated_one_and_covers_every_operation() {
    let app = spawn_api_app().await;
    let response = api(&app, Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served: Value = response.json().await.unwrap();
    let generated = greeter::api::openapi::document();
    assert_eq!(served, generated);

    assert_eq!(served["openapi"], "3.1.0");
    let mut operations: Vec<(String, String, String)> = Vec::new();
    for (path, item) in served["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations.push((
                method.clone(),
                path.clone(),
                op["operationId"].as_str().unwrap().to_owned(),
            ));
            let responses = op["responses"].as_object().unwrap();
            for status in ["401", "405", "429", "503"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} lacks {status}"
                );
            }
            assert!(op["security"][0]["bearer"].is_array(), "{method} {path}");
        }
    }
    operations.sort();
    assert_eq!(
        operations,
        [
            ("delete", "/api/v1/greetings/{id}", "deleteGreeting"),
            ("get", "/api/v1/greetings", "listGreetings"),
            ("get", "/api/v1/greetings/{id}", "getGreeting"),
            ("patch", "/api/v1/greetings/{id}", "updateGreeting"),
            ("post", "/api/v1/greetings", "createGreeting"),
            (
                "post",
                "/api/v1/greetings/{id}/activate",
                "activateGreeting"
            ),
        ]
        .map(|(m, p, o)| (m.to_owned(), p.to_owned(), o.to_owned()))
    );
    assert_eq!(
        served["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let created = &served["paths"]["/api/v1/greetings"]["post"]["responses"]["201"];
    assert!(created["headers"]["Location"].is_object());
    assert_eq!(
        created["links"]["GetGreeting"]["parameters"]["id"],
        "$response.body#/id"
    );
    let message = &served["components"]["schemas"]["GreetingInput"]["properties"]["message"];
    assert_eq!(message["maxLength"], 500);
    assert_eq!(message["minLength"], 1);
    app.shutdown().await;
}

#[test]
fn docs_list_every_problem_type() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/DOCS.md")).unwrap();
    for slug in greeter::api::problem::SLUGS {
        assert!(
            docs.contains(&format!("/api/v1/problems/{slug}")),
            "DOCS.md does not list the problem type {slug}"
        );
    }
}
