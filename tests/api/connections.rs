//! `/v1/connections` end to end: the service over HTTP, its store, and the sandbox as OpenAI.

use openai_governor::auth::Scope;
use openai_governor::store::Backend;
use openai_governor_sandbox::KeyProfile;
use serde_json::{Value, json};

use crate::helpers::{DEAD_BASE_URL, TestApp, assert_problem};

fn capability<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["capabilities"]
        .as_array()
        .and_then(|caps| caps.iter().find(|c| c["capability"] == name))
        .unwrap_or_else(|| panic!("capability {name} missing in {report}"))
}

/// The whole story: create, test, restricted key, wrong key, list, rotate, delete; the
/// plaintext key is never served and never stored.
async fn lifecycle(backend: Backend) {
    // Trusting OpenAI to check permission first, so the write probes give exact answers.
    let options = crate::helpers::Options {
        openai_checks_permission_first: true,
        ..Default::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    let admin = app.admin_token();
    let full_key = app.sandbox.key(KeyProfile::All).to_owned();
    let org = app.sandbox.organization_id().to_owned();

    // Create: 201, Location, hint only.
    let res = app
        .post(
            "/v1/connections",
            &admin,
            json!({"name": "acme-prod", "admin_key": full_key, "expected_organization_id": org,
                   "base_url": app.sandbox.base_url().as_str()}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let text = res.text().await.unwrap();
    assert!(!text.contains(&full_key), "key echoed: {text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/connections/{id}"));
    assert_eq!(
        created["key_hint"],
        format!("sk-admin-…{}", &full_key[full_key.len() - 4..])
    );
    assert_eq!(created["created_by"], "admin@test");
    assert!(created["last_test"].is_null());

    // Test: every capability works, organization matches.
    let res = app
        .post(&format!("/v1/connections/{id}/test"), &admin, json!(null))
        .await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["status"], "ok", "{report:#}");
    assert_eq!(report["organization_id"], org.as_str());
    assert_eq!(report["organization_matches"], true);
    assert_eq!(report["capabilities"].as_array().unwrap().len(), 12);
    for cap in report["capabilities"].as_array().unwrap() {
        assert_eq!(cap["status"], "ok", "{cap:#}");
        for probe in cap["probes"].as_array().unwrap() {
            assert!(probe["latency_ms"].is_u64(), "{probe}");
            assert!(
                probe["request_id"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("req_")),
                "{probe}"
            );
        }
    }
    // The report is stored on the connection.
    let got: Value = app
        .get(&format!("/v1/connections/{id}"), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["last_test"], report);

    // A restricted key (no usage scope): degraded, the missing scope named, nothing else lost.
    let res = app
        .post(
            "/v1/connections/test",
            &admin,
            json!({"admin_key": app.sandbox.key(KeyProfile::NoUsage),
                   "base_url": app.sandbox.base_url().as_str()}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["status"], "degraded", "{report:#}");
    let usage = capability(&report, "read_usage_and_costs");
    assert_eq!(usage["status"], "missing_scope");
    assert_eq!(
        usage["probes"][0]["missing_scopes"],
        json!(["api.usage.read"])
    );
    assert!(
        usage["summary"]
            .as_str()
            .unwrap()
            .contains("api.usage.read")
    );
    assert_eq!(capability(&report, "read_users")["status"], "ok");
    assert_eq!(capability(&report, "read_project_members")["status"], "ok");

    // A wrong key: failed, with OpenAI's words, and nothing else attempted.
    let res = app
        .post(
            "/v1/connections/test",
            &admin,
            json!({"admin_key": "sk-admin-this-key-does-not-exist-0000",
                   "base_url": app.sandbox.base_url().as_str()}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["status"], "failed");
    assert!(
        report["summary"]
            .as_str()
            .unwrap()
            .contains("rejected the admin key"),
        "{report:#}"
    );
    let users = capability(&report, "read_users");
    assert_eq!(users["status"], "error");
    assert_eq!(users["probes"][0]["http_status"], 401);
    assert_eq!(capability(&report, "read_projects")["status"], "skipped");
    // Testing a key stores nothing.
    let list: Value = app
        .get("/v1/connections", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // Rotate the key: new hint, old report cleared, the new key is what the test uses.
    let ro_key = app.sandbox.key(KeyProfile::ReadOnly).to_owned();
    let res = app
        .patch(
            &format!("/v1/connections/{id}"),
            &admin,
            json!({"admin_key": ro_key, "name": "acme"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(!text.contains(&ro_key));
    let rotated: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rotated["name"], "acme");
    assert_eq!(
        rotated["key_hint"],
        format!("sk-admin-…{}", &ro_key[ro_key.len() - 4..])
    );
    assert!(rotated["last_test"].is_null());
    let report: Value = app
        .post(&format!("/v1/connections/{id}/test"), &admin, json!(null))
        .await
        .json()
        .await
        .unwrap();
    // A read-only key reads everything but cannot grant or revoke: not "all work".
    assert_eq!(report["status"], "degraded", "{report:#}");
    for cap in report["capabilities"].as_array().unwrap() {
        let want = if cap["capability"].as_str().unwrap().starts_with("read_") {
            "ok"
        } else {
            "missing_scope"
        };
        assert_eq!(cap["status"], want, "{cap:#}");
    }
    let grants = report["features"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["feature"] == "grants"))
        .unwrap();
    assert_eq!(grants["status"], "unavailable", "{report:#}");

    // Neither key is anywhere in the database.
    let dump = app.db.dump().await;
    for key in [&full_key, &ro_key] {
        assert!(
            !dump.windows(key.len()).any(|w| w == key.as_bytes()),
            "plaintext key stored"
        );
    }
    assert!(!dump.is_empty());

    // Delete, then it is gone.
    let res = app.delete(&format!("/v1/connections/{id}"), &admin).await;
    assert_eq!(res.status(), 204);
    let res = app.get(&format!("/v1/connections/{id}"), &admin).await;
    assert_problem(res, 404, "connection_not_found").await;
    let res = app.delete(&format!("/v1/connections/{id}"), &admin).await;
    assert_problem(res, 404, "connection_not_found").await;
}

async fn expected_organization_mismatch_fails(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let res = app
        .post(
            "/v1/connections/test",
            &app.admin_token(),
            json!({"admin_key": app.sandbox.key(KeyProfile::All),
                   "expected_organization_id": "org-somebodyelse",
                   "base_url": app.sandbox.base_url().as_str()}),
        )
        .await;
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["status"], "failed");
    assert_eq!(report["organization_matches"], false);
    assert!(
        report["summary"]
            .as_str()
            .unwrap()
            .contains("org-somebodyelse")
    );
}

async fn unreachable_upstream_is_a_clear_failure(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let res = app
        .post(
            "/v1/connections/test",
            &app.admin_token(),
            json!({"admin_key": "sk-admin-unreachable-host-1234", "base_url": DEAD_BASE_URL}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["status"], "failed");
    assert!(
        report["summary"]
            .as_str()
            .unwrap()
            .contains("could not reach"),
        "{report:#}"
    );
    assert!(report["organization_id"].is_null());
}

async fn validation_and_allowlist(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin_token();
    // Every invalid field is reported at once.
    let res = app
        .post(
            "/v1/connections",
            &admin,
            json!({"name": " ", "admin_key": "sk-proj-abcdefghijklmnop", "expected_organization_id": "acme"}),
        )
        .await;
    let body = assert_problem(res, 422, "validation_failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "admin_key", "expected_organization_id"]);
    assert!(
        body["errors"][1]["message"]
            .as_str()
            .unwrap()
            .contains("project")
    );
    assert!(
        !body.to_string().contains("sk-proj-abcdefghijklmnop"),
        "key echoed: {body}"
    );

    // A base URL outside the allowlist is refused, for create, update and key tests alike.
    for evil in [
        "https://evil.example.com/v1",
        "http://169.254.169.254/latest",
        "https://api.openai.com/v2",
    ] {
        let res = app
            .post(
                "/v1/connections",
                &admin,
                json!({"name": "x", "admin_key": "sk-admin-abcdefghijkl", "base_url": evil}),
            )
            .await;
        assert_problem(res, 422, "base_url_not_allowed").await;
        let res = app
            .post(
                "/v1/connections/test",
                &admin,
                json!({"admin_key": "sk-admin-abcdefghijkl", "base_url": evil}),
            )
            .await;
        assert_problem(res, 422, "base_url_not_allowed").await;
    }
    let c = app
        .create_connection("ok", app.sandbox.key(KeyProfile::All))
        .await;
    let id = c["id"].as_str().unwrap();
    let res = app
        .patch(
            &format!("/v1/connections/{id}"),
            &admin,
            json!({"base_url": "https://evil.example.com/v1"}),
        )
        .await;
    assert_problem(res, 422, "base_url_not_allowed").await;
    let res = app
        .post(
            "/v1/connections",
            &admin,
            json!({"name": "y", "admin_key": "sk-admin-abcdefghijkl", "base_url": "ftp://x"}),
        )
        .await;
    assert_problem(res, 422, "validation_failed").await;

    // Nothing of the refused requests was stored; the name conflict is a 409.
    let list: Value = app
        .get("/v1/connections", &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let res = app
        .post(
            "/v1/connections",
            &admin,
            json!({"name": "ok", "admin_key": "sk-admin-abcdefghijkl", "base_url": app.sandbox.base_url().as_str()}),
        )
        .await;
    assert_problem(res, 409, "connection_name_taken").await;

    // Clearing the expected organization with an explicit null.
    let res = app
        .patch(
            &format!("/v1/connections/{id}"),
            &admin,
            json!({"expected_organization_id": "org-abc"}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expected_organization_id"], "org-abc");
    let res = app
        .patch(
            &format!("/v1/connections/{id}"),
            &admin,
            json!({"expected_organization_id": null}),
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert!(body["expected_organization_id"].is_null());
    assert_eq!(body["name"], "ok");
}

async fn listing_pages_and_scopes(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let key = app.sandbox.key(KeyProfile::All).to_owned();
    for i in 0..5 {
        app.create_connection(&format!("c{i}"), &key).await;
    }
    let reader = app.token("reader@test", &[Scope::ConnectionsRead]);
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/connections?limit=2&after={a}"),
            None => "/v1/connections?limit=2".to_owned(),
        };
        let page: Value = app.get(&path, &reader).await.json().await.unwrap();
        names.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned()),
        );
        if page["has_more"] == false {
            assert!(page["next_cursor"].is_null());
            break;
        }
        after = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);

    // A reader cannot write or test.
    let res = app
        .post(
            "/v1/connections",
            &reader,
            json!({"name": "n", "admin_key": key}),
        )
        .await;
    let body = assert_problem(res, 403, "insufficient_scope").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("connections:write")
    );
    let first: Value = app
        .get("/v1/connections?limit=1", &reader)
        .await
        .json()
        .await
        .unwrap();
    let id = first["data"][0]["id"].as_str().unwrap();
    let res = app
        .post(&format!("/v1/connections/{id}/test"), &reader, json!(null))
        .await;
    assert_problem(res, 403, "insufficient_scope").await;
    let res = app.delete(&format!("/v1/connections/{id}"), &reader).await;
    assert_problem(res, 403, "insufficient_scope").await;
    // A writer without read cannot list.
    let writer = app.token("writer@test", &[Scope::ConnectionsWrite]);
    let res = app.get("/v1/connections", &writer).await;
    assert_problem(res, 403, "insufficient_scope").await;

    // Bad paging parameters are 400s.
    for q in ["limit=0", "limit=201", "limit=abc", "after=not-a-uuid"] {
        let res = app.get(&format!("/v1/connections?{q}"), &reader).await;
        assert_problem(res, 400, "invalid_parameter").await;
    }
}

crate::backend_tests!(
    lifecycle,
    expected_organization_mismatch_fails,
    unreachable_upstream_is_a_clear_failure,
    validation_and_allowlist,
    listing_pages_and_scopes,
);

/// OpenAI failing in the middle of a test: a 5xx, a timeout. Each is a distinct, readable line
/// of the report, never a 500 from us.
#[tokio::test]
async fn upstream_faults_are_reported_not_raised() {
    use openai_governor_sandbox::Faults;
    let options = crate::helpers::Options {
        openai_request_timeout: std::time::Duration::from_millis(800),
        ..Default::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let body = json!({"admin_key": app.sandbox.key(KeyProfile::All), "base_url": app.sandbox.base_url().as_str()});

    // Every request answers 503.
    app.sandbox.state().set_faults(Faults {
        error_rate: 1.0,
        error_status: Some(503),
        ..Faults::default()
    });
    let res = app
        .post("/v1/connections/test", &app.admin_token(), body.clone())
        .await;
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["status"], "failed");
    assert!(
        report["summary"]
            .as_str()
            .unwrap()
            .contains("server error (HTTP 503)"),
        "{report:#}"
    );

    // Only usage answers 500: the rest works, the report is degraded and says why.
    app.sandbox.state().set_faults(Faults {
        error_rate: 1.0,
        only: Some("/organization/costs".into()),
        ..Faults::default()
    });
    let report: Value = app
        .post("/v1/connections/test", &app.admin_token(), body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["status"], "degraded", "{report:#}");
    let usage = capability(&report, "read_usage_and_costs");
    assert_eq!(usage["status"], "error");
    assert_eq!(usage["probes"][0]["http_status"], 500);

    // Requests hang: the test ends at the client timeout with a clear message.
    app.sandbox.state().set_faults(Faults {
        hang_rate: 1.0,
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let report: Value = app
        .post("/v1/connections/test", &app.admin_token(), body)
        .await
        .json()
        .await
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(report["status"], "failed");
    assert!(
        report["summary"]
            .as_str()
            .unwrap()
            .contains("did not answer in time"),
        "{report:#}"
    );
}
