//! The HTTP surface's own errors: every one is problem JSON with a code and the request id,
//! including those axum and tower-http produce by default.

use openai_governor::store::Backend;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem};

#[tokio::test]
async fn framework_errors_are_problems() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let token = app.admin_token();

    let res = app.get("/v1/nothing-here", &token).await;
    let body = assert_problem(res, 404, "not_found").await;
    assert_eq!(body["instance"], "/v1/nothing-here");

    let res = app
        .http
        .put(app.url("/v1/connections"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(res, 405, "method_not_allowed").await;

    // Malformed JSON, wrong shape, unknown field, wrong content type, too large.
    let res = app
        .http
        .post(app.url("/v1/connections"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "malformed_json").await;
    let res = app
        .post("/v1/connections", &token, json!({"name": 5}))
        .await;
    let body = assert_problem(res, 400, "malformed_json").await;
    assert!(
        body["detail"].as_str().unwrap().contains("name")
            || body["detail"].as_str().unwrap().contains("invalid type")
    );
    let res = app
        .post(
            "/v1/connections",
            &token,
            json!({"name": "x", "admin_key": "sk-admin-secret-in-wrong-place", "adminKey": 1}),
        )
        .await;
    let body = assert_problem(res, 400, "malformed_json").await;
    assert!(
        body["detail"].as_str().unwrap().contains("adminKey"),
        "{body}"
    );
    let res = app
        .post(
            "/v1/connections",
            &token,
            json!({"name": ["sk-admin-secret-as-a-list-item"], "admin_key": "k"}),
        )
        .await;
    let body = assert_problem(res, 400, "malformed_json").await;
    assert!(
        !body.to_string().contains("secret-as-a-list"),
        "value echoed: {body}"
    );
    let res = app
        .http
        .post(app.url("/v1/connections"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_problem(res, 415, "unsupported_media_type").await;
    let big = "x".repeat(64 * 1024);
    let res = app
        .post(
            "/v1/connections",
            &token,
            json!({"name": big, "admin_key": "k"}),
        )
        .await;
    assert_problem(res, 413, "payload_too_large").await;

    // A malformed id in the path.
    let res = app.get("/v1/connections/not-a-uuid", &token).await;
    assert_problem(res, 400, "invalid_parameter").await;

    // A caller's request id is kept and echoed.
    let res = app
        .http
        .get(app.url("/v1/connections/00000000-0000-0000-0000-000000000000"))
        .bearer_auth(&token)
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-me-123");
    let body = assert_problem(res, 404, "connection_not_found").await;
    assert_eq!(body["request_id"], "trace-me-123");
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"status": "ok", "store": "sqlite"}));
    assert!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .headers()
            .contains_key("x-request-id")
    );
}
