//! The committed OpenAPI document is what the code generates, and the service serves it.
//! Regenerate with `UPDATE_OPENAPI=1 cargo test openapi` (or `openai-governor openapi`).

use openai_governor::store::Backend;

use crate::helpers::TestApp;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

fn generated() -> String {
    let doc = openai_governor::http::openapi();
    format!("{}\n", serde_json::to_string_pretty(&doc).unwrap())
}

#[test]
fn committed_document_is_current() {
    let generated = generated();
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(COMMITTED, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo test openapi` and commit it"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    // Every operation has a stable id and declares its security.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["operationId"].is_string(),
                "{method} {path} lacks operationId"
            );
            if path.starts_with("/v1/") {
                assert!(op["security"].is_array(), "{method} {path} lacks security");
            }
        }
    }
}

/// Every `$ref` names a schema the document holds, and every response is described: client
/// generators refuse the document, or skip the operation, otherwise.
#[test]
fn references_resolve_and_responses_are_described() {
    fn walk(v: &serde_json::Value, doc: &serde_json::Value, at: &str, bad: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(|r| r.as_str())
                    && doc.pointer(r.trim_start_matches('#')).is_none()
                {
                    bad.push(format!("{at}: dangling {r}"));
                }
                for (k, child) in map {
                    walk(child, doc, &format!("{at}/{k}"), bad);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, doc, &format!("{at}/{i}"), bad);
                }
            }
            _ => {}
        }
    }
    let doc: serde_json::Value = serde_json::from_str(&generated()).unwrap();
    let mut bad = Vec::new();
    walk(&doc, &doc, "", &mut bad);
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().into_iter().flatten() {
                if response["description"]
                    .as_str()
                    .is_none_or(|d| d.trim().is_empty())
                {
                    bad.push(format!("{method} {path} {status}: no description"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[tokio::test]
async fn document_and_docs_are_served() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let served: serde_json::Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expected: serde_json::Value = serde_json::from_str(&generated()).unwrap();
    assert_eq!(served, expected);
    let res = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("swagger"), "docs page");
}
