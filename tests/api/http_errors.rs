//! The HTTP surface's own errors: every one is problem JSON with a code and the request id,
//! including those axum and tower-http produce by default.

use openai_governor::store::Backend;
use openai_governor_sandbox::KeyProfile;
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
    let body = assert_problem(res, 400, "invalid_parameter").await;
    assert_eq!(
        body["detail"],
        "`not-a-uuid` is not a connection id (a UUID)"
    );
    let res = app
        .get("/v1/connections/not-a-uuid/inventory/people", &token)
        .await;
    let body = assert_problem(res, 400, "invalid_parameter").await;
    assert_eq!(
        body["detail"],
        "`not-a-uuid` is not a connection id (a UUID)"
    );

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
    assert_eq!(
        body,
        json!({"status": "ok", "store": "sqlite", "policy": "none"})
    );
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

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.http
        .request(reqwest::Method::OPTIONS, app.url("/v1/grants"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, idempotency-key",
        )
        .send()
        .await
        .unwrap()
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
}

async fn cors_app(origins: &[&str]) -> TestApp {
    let origins: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
    let options = crate::helpers::Options {
        configure: Some(Box::new(move |c| c.cors_allowed_origins = origins)),
        ..crate::helpers::Options::default()
    };
    TestApp::spawn_with(Backend::Sqlite, options).await.unwrap()
}

#[tokio::test]
async fn cors_any_origin_starts_and_allows_idempotency_keys() {
    let app = cors_app(&["*"]).await;
    let res = preflight(&app, "https://portal.example.com").await;
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    let allowed = header(&res, "access-control-allow-headers").unwrap_or_default();
    for h in ["authorization", "content-type", "idempotency-key"] {
        assert!(allowed.contains(h), "{h} in {allowed}");
    }
    // Tokens travel in a header, never in cookies: no credentials.
    assert!(header(&res, "access-control-allow-credentials").is_none());
    // A real request carries the origin header and exposes ours.
    let res = app
        .http
        .get(app.url("/v1/connections"))
        .bearer_auth(app.admin_token())
        .header("origin", "https://portal.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    let exposed = header(&res, "access-control-expose-headers").unwrap_or_default();
    for h in ["x-request-id", "idempotent-replayed", "retry-after"] {
        assert!(exposed.contains(h), "{h} in {exposed}");
    }
}

#[tokio::test]
async fn cors_listed_origins_only() {
    let app = cors_app(&["https://portal.example.com"]).await;
    let res = preflight(&app, "https://portal.example.com").await;
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some("https://portal.example.com")
    );
    assert!(
        header(&res, "access-control-allow-headers")
            .unwrap_or_default()
            .contains("idempotency-key")
    );
    let res = preflight(&app, "https://evil.example.com").await;
    assert!(header(&res, "access-control-allow-origin").is_none());
}

#[test]
fn cors_settings_are_checked_at_start() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: openai_governor::config::Settings,
    }
    let load = |origins: &str| {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/gov.db", dir.path().display());
        let settings = Cli::try_parse_from([
            "test",
            "--database-url",
            &url,
            "--cors-allowed-origins",
            origins,
        ])
        .unwrap()
        .settings;
        openai_governor::config::Config::load(&settings).map(|c| c.cors_allowed_origins)
    };
    assert_eq!(load("*").unwrap(), vec!["*"]);
    assert_eq!(
        load("https://a.example.com,http://localhost:3000").unwrap(),
        vec!["https://a.example.com", "http://localhost:3000"]
    );
    for bad in [
        "*,https://a.example.com",
        "https://a.example.com/",
        "https://a.example.com/app",
        "a.example.com",
        "ftp://a.example.com",
    ] {
        let err = load(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(err.to_string().contains("OG_CORS_ALLOWED_ORIGINS"), "{err}");
    }
}

/// A NUL character cannot be stored by Postgres: it is refused at the edge on both backends
/// (it once answered 500 on Postgres from an inventory filter), and nothing is written.
async fn nul_characters_are_refused(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.admin_token();
    let conn = app
        .create_connection("nul", app.sandbox.key(KeyProfile::All))
        .await;
    let id = conn["id"].as_str().unwrap();
    let res = app
        .get(
            &format!("/v1/connections/{id}/inventory/user?email=a%00b@corp.io"),
            &token,
        )
        .await;
    let body = assert_problem(res, 400, "invalid_parameter").await;
    assert!(body["detail"].as_str().unwrap().contains("NUL"), "{body}");
    let res = app
        .post(
            "/v1/grants",
            &token,
            json!({"connection_id": id, "email": "a@corp.io", "project_id": "proj_x",
                   "role": "member", "reason": "bad\u{0}reason"}),
        )
        .await;
    assert_problem(res, 422, "validation_failed").await;
    // An escaped backslash before `u0000` is text, not a NUL.
    let res = app
        .patch(
            &format!("/v1/connections/{id}"),
            &token,
            json!({"name": "back\\u0000slash"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let grants: serde_json::Value = app.get("/v1/grants", &token).await.json().await.unwrap();
    assert_eq!(grants["data"], json!([]), "nothing was recorded");
}

/// Bodies are JSON objects (serde would read a struct from an array: `[null, null]` once
/// patched a connection with nothing and answered 200), and a dry run still checks its
/// `Idempotency-Key` (found by schemathesis).
async fn bodies_are_objects_and_dry_runs_check_their_key(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let token = app.admin_token();
    let conn = app
        .create_connection("shape", app.sandbox.key(KeyProfile::All))
        .await;
    let id = conn["id"].as_str().unwrap();
    for body in [json!([null, null]), json!("name"), json!(1)] {
        let res = app
            .patch(&format!("/v1/connections/{id}"), &token, body)
            .await;
        assert_problem(res, 400, "malformed_json").await;
    }
    for path in ["/v1/grants?dry_run=true", "/v1/offboardings?dry_run=true"] {
        let res = app
            .http
            .post(app.url(path))
            .bearer_auth(&token)
            .header("idempotency-key", "")
            .json(&json!({"connection_id": id, "email": "a@corp.io", "reason": "r"}))
            .send()
            .await
            .unwrap();
        assert_problem(res, 400, "invalid_parameter").await;
    }
}

crate::backend_tests!(
    nul_characters_are_refused,
    bodies_are_objects_and_dry_runs_check_their_key,
);
