//! The audit trail end to end: connection use cases and syncs append entries with the right
//! actor, action and outcome; the list filters and pages; the export is NDJSON with every
//! entry; `audit:read` is required; bad parameters are named; no admin key ever appears.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use openai_governor::auth::Scope;
use openai_governor::store::Backend;
use openai_governor_sandbox::{Faults, KeyProfile};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, assert_problem};
use crate::inventory::sync;

/// A key the sandbox refuses (well formed, unknown).
const WRONG_KEY: &str = "sk-admin-this-key-does-not-exist-0000";

fn auditor(app: &TestApp) -> String {
    app.token("auditor", &[Scope::AuditRead])
}

fn writer(app: &TestApp, sub: &str) -> String {
    app.token(sub, &[Scope::ConnectionsRead, Scope::ConnectionsWrite])
}

/// A page of the trail at `path`, asserting 200.
async fn page(app: &TestApp, path: &str) -> Value {
    let res = app.get(path, &auditor(app)).await;
    assert_eq!(
        res.status(),
        200,
        "{path}: {}",
        res.text().await.unwrap_or_default()
    );
    res.json().await.unwrap()
}

/// The entries of a page.
fn data(page: &Value) -> Vec<Value> {
    page["data"].as_array().unwrap().clone()
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

/// Waits until the trail at `path` holds at least `n` entries (sync entries are appended by
/// the background task just after the run is recorded).
async fn at_least(app: &TestApp, path: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let entries = data(&page(app, path).await);
        if entries.len() >= n {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: fewer than {n} entries: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The whole export for `query`, asserting 200 and the media type; one value per line.
async fn export(app: &TestApp, query: &str) -> (String, Vec<Value>) {
    let res = app
        .get(&format!("/v1/audit/export{query}"), &auditor(app))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let body = res.text().await.unwrap();
    assert!(body.is_empty() || body.ends_with('\n'), "lines end: {body}");
    let lines = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    (body, lines)
}

fn param(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn connection_changes_are_audited(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let (alice, bob) = (writer(&app, "alice"), writer(&app, "bob"));
    let res = app
        .post(
            "/v1/connections",
            &alice,
            json!({"name": "prod", "admin_key": app.sandbox.key(KeyProfile::All),
                   "base_url": app.sandbox.base_url().as_str()}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/connections/{id}");

    let report: Value = app
        .post(&format!("{path}/test"), &alice, json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["status"], "ok");
    let res = app.patch(&path, &bob, json!({"name": "production"})).await;
    assert_eq!(res.status(), 200);
    // Renamed and re-keyed in one PATCH: two entries.
    let res = app
        .patch(
            &path,
            &bob,
            json!({"name": "prod-eu", "admin_key": WRONG_KEY}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let rekeyed: Value = res.json().await.unwrap();
    let report: Value = app
        .post(&format!("{path}/test"), &bob, json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["status"], "failed");
    assert_eq!(app.delete(&path, &alice).await.status(), 204);

    let entries = data(&page(&app, &format!("/v1/audit?connection_id={id}")).await);
    assert_eq!(
        actions(&entries),
        [
            "connection.created",
            "connection.tested",
            "connection.updated",
            "connection.updated",
            "connection.key_replaced",
            "connection.tested",
            "connection.deleted",
        ]
    );
    let actors: Vec<&str> = entries
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(
        actors,
        ["alice", "alice", "bob", "bob", "bob", "bob", "alice"]
    );
    let outcomes: Vec<&str> = entries
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "succeeded",
            "succeeded",
            "succeeded",
            "succeeded",
            "succeeded",
            "failed",
            "succeeded"
        ]
    );
    for e in &entries {
        assert_eq!(e["connection_id"], id.as_str());
        assert_eq!(
            e["client_id"],
            Value::Null,
            "the test tokens name no client"
        );
        assert!(e["id"].is_i64() && e["at"].is_string(), "{e}");
    }
    assert!(
        entries
            .windows(2)
            .all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64()),
        "oldest first"
    );
    assert_eq!(entries[0]["after"]["name"], "prod");
    assert_eq!(entries[0]["after"]["key_hint"], created["key_hint"]);
    assert_eq!(entries[1]["detail"]["status"], "ok");
    assert_eq!(
        entries[2]["before"],
        json!({"name": "prod"}),
        "only what changed"
    );
    assert_eq!(entries[2]["after"], json!({"name": "production"}));
    assert_eq!(entries[3]["after"], json!({"name": "prod-eu"}));
    assert_eq!(entries[4]["before"]["key_hint"], created["key_hint"]);
    assert_eq!(entries[4]["after"]["key_hint"], rekeyed["key_hint"]);
    assert_eq!(entries[5]["detail"]["status"], "failed");
    assert_eq!(entries[6]["before"]["name"], "prod-eu");
}

async fn syncs_are_audited(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let conn = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let id = conn["id"].as_str().unwrap();
    let run = sync(&app, id).await;
    assert_eq!(run["status"], "succeeded");
    let path = format!("/v1/audit?action=sync.finished&connection_id={id}");
    let entries = at_least(&app, &path, 1).await;
    let e = &entries[0];
    assert_eq!(e["actor"], "admin@test");
    assert_eq!(e["outcome"], "succeeded");
    assert_eq!(e["detail"]["sync_id"], run["id"]);
    assert_eq!(e["detail"]["mode"], "full");
    assert_eq!(e["detail"]["published"], true);
    assert!(e["detail"]["counts"]["user"].as_u64().unwrap() > 0, "{e}");
    assert_eq!(e["detail"]["message"], Value::Null);

    // OpenAI failing throughout: a failed sync, with why.
    app.sandbox.state().set_faults(Faults {
        error_rate: 1.0,
        error_status: Some(503),
        ..Faults::default()
    });
    let run = sync(&app, id).await;
    assert_eq!(run["status"], "failed");
    app.sandbox.state().set_faults(Faults::default());
    let entries = at_least(&app, &path, 2).await;
    let e = &entries[1];
    assert_eq!(e["outcome"], "failed");
    assert_eq!(e["detail"]["sync_id"], run["id"]);
    assert_eq!(e["detail"]["message"], run["error"]);
    assert!(e["detail"]["message"].as_str().unwrap().contains("OpenAI"));
}

async fn scheduled_syncs_are_the_service_s(backend: Backend) {
    let options = Options {
        sync_interval: Duration::from_millis(600),
        ..Options::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    app.create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let entries = at_least(&app, "/v1/audit?actor=openai-governor", 1).await;
    assert_eq!(entries[0]["action"], "sync.finished");
    assert_eq!(entries[0]["outcome"], "succeeded");
}

async fn filters_paging_and_export(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let start = Utc::now();
    let mut ids = Vec::new();
    for (i, who) in ["alice", "bob", "carol"].into_iter().enumerate() {
        let res = app
            .post(
                "/v1/connections",
                &writer(&app, who),
                json!({"name": format!("org-{i}"), "admin_key": app.sandbox.key(KeyProfile::ReadOnly),
                       "base_url": app.sandbox.base_url().as_str()}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        ids.push(c["id"].as_str().unwrap().to_owned());
    }
    let middle = Utc::now();
    let res = app
        .post(
            &format!("/v1/connections/{}/test", ids[0]),
            &writer(&app, "bob"),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.delete(
            &format!("/v1/connections/{}", ids[2]),
            &writer(&app, "carol")
        )
        .await
        .status(),
        204
    );

    let all = data(&page(&app, "/v1/audit").await);
    assert_eq!(all.len(), 5);
    let by = |path: &str| {
        let path = path.to_owned();
        let app = &app;
        async move { actions(&data(&page(app, &path).await)).join(" ") }
    };
    assert_eq!(
        by("/v1/audit?actor=bob").await,
        "connection.created connection.tested"
    );
    assert_eq!(
        by("/v1/audit?action=connection.created").await,
        "connection.created connection.created connection.created"
    );
    assert_eq!(
        by(&format!("/v1/audit?connection_id={}", ids[2])).await,
        "connection.created connection.deleted"
    );
    assert_eq!(
        by(&format!(
            "/v1/audit?connection_id={}&actor=bob&action=connection.tested",
            ids[0]
        ))
        .await,
        "connection.tested"
    );
    assert_eq!(
        by(&format!(
            "/v1/audit?connection_id={}&actor=alice&action=connection.tested",
            ids[0]
        ))
        .await,
        ""
    );
    assert_eq!(
        by(&format!("/v1/audit?since={}", param(middle))).await,
        "connection.tested connection.deleted"
    );
    assert_eq!(
        by(&format!(
            "/v1/audit?since={}&until={}",
            param(start),
            param(middle)
        ))
        .await,
        "connection.created connection.created connection.created"
    );
    // Filters on fields connection entries do not carry match nothing (and are accepted).
    for q in [
        "email=Ann@Example.com",
        "user_id=user-abc",
        "project_id=proj_abc",
        "grant_id=0190f1a2-0000-7000-8000-000000000000",
    ] {
        assert_eq!(by(&format!("/v1/audit?{q}")).await, "", "{q}");
    }

    // Paging: two at a time, following the cursor, gives the whole list once.
    let mut seen = Vec::new();
    let mut path = "/v1/audit?limit=2".to_owned();
    loop {
        let p = page(&app, &path).await;
        let entries = data(&p);
        assert!(entries.len() <= 2);
        seen.extend(entries);
        match p["next_cursor"].as_i64() {
            Some(next) => {
                assert_eq!(p["has_more"], true);
                path = format!("/v1/audit?limit=2&after={next}");
            }
            None => {
                assert_eq!(p["has_more"], false);
                break;
            }
        }
    }
    assert_eq!(seen, all);
    let last = all.last().unwrap()["id"].as_i64().unwrap();
    assert!(data(&page(&app, &format!("/v1/audit?after={last}")).await).is_empty());

    // The export: every entry, one per line, the same objects as the list; filters apply.
    let (_, lines) = export(&app, "").await;
    assert_eq!(lines, all);
    let (_, lines) = export(&app, "?actor=carol").await;
    assert_eq!(
        actions(&lines),
        ["connection.created", "connection.deleted"]
    );
    let (body, lines) = export(&app, "?actor=nobody").await;
    assert!(body.is_empty() && lines.is_empty());
}

/// More entries than one page of the store's export reads (500), to see the pages join up.
async fn export_streams_every_page(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let conn = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let path = format!("/v1/connections/{}", conn["id"].as_str().unwrap());
    let admin = app.admin_token();
    for i in 0..520 {
        let res = app
            .patch(&path, &admin, json!({"name": format!("acme-{i}")}))
            .await;
        assert_eq!(res.status(), 200);
    }
    let (_, lines) = export(&app, "").await;
    assert_eq!(lines.len(), 521);
    assert!(
        lines
            .windows(2)
            .all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64())
    );
    assert_eq!(lines[520]["after"]["name"], "acme-519");
}

async fn audit_read_is_required_and_params_are_checked(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let others: Vec<Scope> = Scope::ALL
        .into_iter()
        .filter(|s| *s != Scope::AuditRead)
        .collect();
    let token = app.token("admin-without-audit", &others);
    for path in ["/v1/audit", "/v1/audit/export"] {
        assert_problem(app.get(path, &token).await, 403, "insufficient_scope").await;
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_problem(res, 401, "unauthenticated").await;
    }

    let auditor = auditor(&app);
    for (query, named) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("after=x", "after"),
        ("after=-1", "after"),
        ("since=yesterday", "since"),
        ("until=2026-13-01", "until"),
        ("connection_id=not-a-uuid", "connection_id"),
        ("grant_id=42", "grant_id"),
        ("action=connection.exploded", "action"),
        ("actor=", "actor"),
        ("wat=1", "wat"),
    ] {
        let res = app.get(&format!("/v1/audit?{query}"), &auditor).await;
        let body = assert_problem(res, 400, "invalid_parameter").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(named), "{query}: {detail}");
    }
    // An empty window is a question with an empty answer, not a mistake: each parameter is
    // valid alone, and the schema cannot relate two of them.
    let res = app
        .get(
            "/v1/audit?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
            &auditor,
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["data"], serde_json::json!([]));
    for query in ["limit=5", "after=1", "since=soon"] {
        let res = app
            .get(&format!("/v1/audit/export?{query}"), &auditor)
            .await;
        assert_problem(res, 400, "invalid_parameter").await;
    }

    // Nothing changes or deletes entries.
    let res = app
        .send(reqwest::Method::DELETE, "/v1/audit", &auditor, None)
        .await;
    assert_problem(res, 405, "method_not_allowed").await;
    let res = app.post("/v1/audit", &auditor, json!({})).await;
    assert_problem(res, 405, "method_not_allowed").await;
}

/// Every admin key that went through the API, and the wrong one, never appears in the trail.
async fn no_admin_key_in_the_trail(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let keys: Vec<String> = [KeyProfile::All, KeyProfile::ReadOnly, KeyProfile::NoUsage]
        .into_iter()
        .map(|p| app.sandbox.key(p).to_owned())
        .chain([WRONG_KEY.to_owned()])
        .collect();
    let conn = app.create_connection("acme", &keys[0]).await;
    let id = conn["id"].as_str().unwrap();
    let path = format!("/v1/connections/{id}");
    let admin = app.admin_token();
    for key in &keys[1..] {
        let res = app.patch(&path, &admin, json!({"admin_key": key})).await;
        assert_eq!(res.status(), 200);
        app.post(&format!("{path}/test"), &admin, json!({})).await;
    }
    let res = app
        .patch(&path, &admin, json!({"admin_key": &keys[0]}))
        .await;
    assert_eq!(res.status(), 200);
    // A replaced key is tested before it is used.
    app.post(&format!("{path}/test"), &admin, json!({})).await;
    sync(&app, id).await;
    at_least(&app, "/v1/audit?action=sync.finished", 1).await;
    assert_eq!(app.delete(&path, &admin).await.status(), 204);

    let list = app
        .get("/v1/audit?limit=500", &auditor(&app))
        .await
        .text()
        .await
        .unwrap();
    let (exported, lines) = export(&app, "").await;
    assert!(lines.len() >= 10, "{exported}");
    for key in &keys {
        // The whole key, and its secret part (after `sk-admin-`) without the last 4 characters
        // the hint shows.
        let secret = &key["sk-admin-".len()..key.len() - 4];
        for (what, text) in [("list", &list), ("export", &exported)] {
            assert!(!text.contains(key.as_str()), "{what} holds an admin key");
            assert!(!text.contains(secret), "{what} holds part of an admin key");
        }
    }
}

crate::backend_tests!(
    connection_changes_are_audited,
    syncs_are_audited,
    scheduled_syncs_are_the_service_s,
    filters_paging_and_export,
    export_streams_every_page,
    audit_read_is_required_and_params_are_checked,
    no_admin_key_in_the_trail,
);
