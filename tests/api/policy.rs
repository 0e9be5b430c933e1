//! The operator's policy, tried as two portals and a break-glass admin would: each refusal is
//! a `403 policy_denied` naming its rule, writes nothing upstream and is in the audit trail;
//! reads show only the organizations a caller may read; a reload changes the answers.

use openai_governor::auth::Scope;
use openai_governor::domain::policy;
use openai_governor::service::policy::PolicyGate;
use openai_governor::store::Backend;
use openai_governor_sandbox::SandboxHandle;
use serde_json::{Value, json};

use crate::helpers::{
    Options, TestApp, assert_problem, sandbox_person, sandbox_project, synced_connection,
};

/// Two portals on their own organizations, a reader of the audit trail, a break-glass admin
/// (`admin@test`, the helpers' admin token, which also creates the connections).
const POLICY: &str = r#"
version: 1
callers:
  portal-a: {subjects: [portal-a]}
  portal-b: {subjects: [portal-b]}
  auditor: {subjects: [auditor]}
  breakglass: {subjects: [admin@test]}
rules:
  - id: no-org-owner
    effect: deny
    callers: ["*"]
    except: [breakglass]
    actions: [grant]
    kinds: [organization_role]
    roles: [owner]
    message: only the break-glass admin may make organization owners
  - id: no-project-owner
    effect: deny
    callers: ["*"]
    actions: [grant]
    kinds: [project]
    roles: [owner]
  - id: portal-a
    effect: allow
    callers: [portal-a]
    actions: [read, grant, extend, revoke, offboard]
    connections: [acme]
    duration: {default: 7d, max: 30d}
    extensions: {max: 2, total: 60d}
    ticket: {required: true, pattern: "^SEC-[0-9]+$"}
  - id: portal-b
    effect: allow
    callers: [portal-b]
    actions: [read, grant, revoke]
    connections: [acme, beta]
  - id: auditor
    effect: allow
    callers: [auditor]
    actions: [audit]
    connections: [beta]
  - id: breakglass
    effect: allow
    callers: [breakglass]
    actions: ["*"]
    others_grants: true
    all_connections: true
"#;

fn gate(text: &str) -> PolicyGate {
    PolicyGate::with(policy::parse(text).expect("policy parses"))
}

async fn app(backend: Backend) -> Option<TestApp> {
    let options = Options {
        configure: Some(Box::new(|c| c.policy = gate(POLICY))),
        ..Options::default()
    };
    TestApp::spawn_with(backend, options).await
}

fn portal(app: &TestApp, who: &str) -> String {
    app.token(
        who,
        &[
            Scope::AccessWrite,
            Scope::InventoryRead,
            Scope::ConnectionsRead,
            Scope::AuditRead,
        ],
    )
}

/// Every request to OpenAI that is not a read.
fn upstream_writes(sandbox: &SandboxHandle) -> u64 {
    sandbox
        .counters()
        .endpoints
        .iter()
        .filter(|(k, _)| !k.starts_with("GET "))
        .map(|(_, c)| c.requests)
        .sum()
}

async fn denied(res: reqwest::Response, rule: &str) -> Value {
    if res.status() != 403 {
        panic!(
            "expected a refusal by `{rule}`, got {}: {}",
            res.status(),
            res.text().await.unwrap()
        );
    }
    let p = assert_problem(res, 403, "policy_denied").await;
    assert_eq!(p["policy_rule"], rule, "{p}");
    assert!(p["detail"].as_str().is_some_and(|d| d.len() > 20), "{p}");
    p
}

async fn audit_len(app: &TestApp) -> usize {
    let trail = ok(
        app.get("/v1/audit?limit=500", &app.admin_token()).await,
        200,
    )
    .await;
    trail["data"].as_array().unwrap().len()
}

async fn ok(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status);
    res.json().await.unwrap()
}

async fn refusals_are_403_write_nothing_and_are_audited(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Payments").await;
    sandbox_person(&app.sandbox, "alice@corp.io", "reader");
    let acme = synced_connection(&app, "acme").await;
    let beta = synced_connection(&app, "beta").await;
    let (a, b) = (portal(&app, "portal-a"), portal(&app, "portal-b"));
    let body = |conn: &str, extra: Value| {
        let mut v = json!({"connection_id": conn, "email": "alice@corp.io", "project_id": pid,
                           "role": "member", "reason": "on-call", "ticket": "SEC-1"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    let before = upstream_writes(&app.sandbox);
    let cases = [
        (
            "another organization",
            body(&beta, json!({})),
            "default-deny",
        ),
        (
            "a forbidden role",
            body(&acme, json!({"role": "owner"})),
            "no-project-owner",
        ),
        (
            "too long",
            body(&acme, json!({"expires_in_seconds": 31 * 86_400})),
            "portal-a",
        ),
        (
            "no ticket",
            body(&acme, json!({"ticket": null})),
            "portal-a",
        ),
        (
            "a ticket of the wrong form",
            body(&acme, json!({"ticket": "JIRA-9"})),
            "portal-a",
        ),
        (
            "an organization owner",
            json!({"connection_id": acme, "email": "alice@corp.io",
                   "organization_role": "owner", "reason": "x", "ticket": "SEC-1"}),
            "no-org-owner",
        ),
    ];
    // The dry run says the same, with the rule, and leaves no trace.
    let trail_before = audit_len(&app).await;
    for (what, body, rule) in &cases {
        let d = ok(
            app.post("/v1/grants?dry_run=true", &a, body.clone()).await,
            200,
        )
        .await;
        assert_eq!(d["dry_run"], true);
        assert_eq!(d["decision"], "denied", "{what}: {d}");
        assert_eq!(d["policy_rule"], *rule, "{what}: {d}");
        assert!(d["message"].is_string(), "{what}: {d}");
    }
    let d = ok(
        app.post("/v1/grants?dry_run=true", &a, body(&acme, json!({})))
            .await,
        200,
    )
    .await;
    assert_eq!(d["decision"], "allowed", "{d}");
    assert_eq!(d["policy_rule"], "portal-a");
    assert_eq!(d["outcome"], "granted");
    assert_eq!(d["write"], "add_project_user");
    assert!(
        d["expires_at"].is_string(),
        "the rule's default expiry: {d}"
    );
    assert_eq!(
        audit_len(&app).await,
        trail_before,
        "a dry run is not an attempt"
    );
    let grants = ok(app.get("/v1/grants", &app.admin_token()).await, 200).await;
    assert_eq!(
        grants["data"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );

    for (what, body, rule) in &cases {
        let p = denied(app.post("/v1/grants", &a, body.clone()).await, rule).await;
        assert!(!p["detail"].as_str().unwrap().is_empty(), "{what}: {p}");
    }
    assert_eq!(
        upstream_writes(&app.sandbox),
        before,
        "refusals write nothing upstream"
    );

    // The dry part is over: allowed, with the rule's default expiry and the rule recorded.
    let g = ok(
        app.post("/v1/grants", &a, body(&acme, json!({}))).await,
        201,
    )
    .await;
    assert_eq!(g["policy_rule"], "portal-a");
    let expires: chrono::DateTime<chrono::Utc> = g["expires_at"].as_str().unwrap().parse().unwrap();
    let week = chrono::Utc::now() + chrono::Duration::days(7);
    assert!((expires - week).num_seconds().abs() < 60, "{g}");
    let id = g["id"].as_str().unwrap().to_owned();
    let after_grant = upstream_writes(&app.sandbox);

    // Another caller's grant: portal-b may revoke on acme, but only its own grants.
    let path = format!("/v1/grants/{id}/revoke");
    denied(
        app.post(&path, &b, json!({"reason": "mine now"})).await,
        "portal-b",
    )
    .await;
    // Extensions: two allowed, the third refused; past the total lifetime refused.
    let extend = |days: i64| json!({"expires_in_seconds": days * 86_400, "reason": "more", "ticket": "SEC-2"});
    let far = app.patch(&format!("/v1/grants/{id}"), &a, extend(29)).await;
    assert_eq!(far.status(), 200);
    denied(
        // Beyond the 30 days the rule allows.
        app.patch(&format!("/v1/grants/{id}"), &a, extend(45)).await,
        "portal-a",
    )
    .await;
    let g2 = ok(
        app.patch(&format!("/v1/grants/{id}"), &a, extend(1)).await,
        200,
    )
    .await;
    assert_eq!(g2["extensions"], 2);
    denied(
        app.patch(&format!("/v1/grants/{id}"), &a, extend(2)).await,
        "portal-a",
    )
    .await;
    // Offboarding: portal-b may not; portal-a may per connection but not everywhere.
    let off = |extra: Value| {
        let mut v = json!({"email": "alice@corp.io", "reason": "left", "ticket": "SEC-3"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    denied(
        app.post("/v1/offboardings", &b, off(json!({"connection_id": acme})))
            .await,
        "default-deny",
    )
    .await;
    denied(
        app.post(
            "/v1/offboardings",
            &a,
            off(json!({"all_connections": true})),
        )
        .await,
        "portal-a",
    )
    .await;
    // The same as dry runs, and what an allowed one would remove.
    let dry = "/v1/offboardings?dry_run=true";
    for (token, extra, want, rule) in [
        (
            &b,
            json!({"connection_id": acme}),
            "denied",
            Some("default-deny"),
        ),
        (
            &a,
            json!({"all_connections": true}),
            "denied",
            Some("portal-a"),
        ),
        (&a, json!({"connection_id": acme}), "allowed", None),
    ] {
        let d = ok(app.post(dry, token, off(extra)).await, 200).await;
        assert_eq!(d["dry_run"], true);
        assert_eq!(d["decision"], want, "{d}");
        assert_eq!(d["policy_rule"].as_str(), rule, "{d}");
        if want == "allowed" {
            let c = &d["connections"][0];
            assert_eq!(c["policy_rule"], "portal-a", "{d}");
            assert_eq!(c["status"], "would_remove", "{d}");
            assert!(
                c["projects"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["project_id"] == pid.as_str()),
                "the granted project is among those she would leave: {d}"
            );
        }
    }
    assert_eq!(
        upstream_writes(&app.sandbox),
        after_grant,
        "no write for any refusal or dry run"
    );

    // Every refusal is on record, with its rule.
    let trail = ok(
        app.get("/v1/audit?limit=500", &app.admin_token()).await,
        200,
    )
    .await;
    let refused: Vec<&Value> = trail["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "denied")
        .collect();
    assert_eq!(refused.len(), cases.len() + 5, "{refused:#?}");
    assert!(
        refused
            .iter()
            .all(|e| e["detail"]["policy_rule"].is_string())
    );
    let created = trail["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "grant.created" && e["outcome"] == "succeeded")
        .unwrap();
    assert_eq!(created["detail"]["policy_rule"], "portal-a");

    // Revoking its own grant is fine.
    let r = ok(app.post(&path, &a, json!({"reason": "done"})).await, 200).await;
    assert_eq!(r["status"], "revoked");
}

async fn reads_show_only_the_organizations_a_caller_may_read(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Payments").await;
    sandbox_person(&app.sandbox, "alice@corp.io", "reader");
    let acme = synced_connection(&app, "acme").await;
    let beta = synced_connection(&app, "beta").await;
    let a = portal(&app, "portal-a");
    let list = ok(app.get("/v1/connections", &a).await, 200).await;
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme"]);
    denied(
        app.get(&format!("/v1/connections/{beta}"), &a).await,
        "default-deny",
    )
    .await;
    denied(
        app.get(&format!("/v1/connections/{beta}/projects/{pid}/access"), &a)
            .await,
        "default-deny",
    )
    .await;
    denied(
        app.get(&format!("/v1/connections/{beta}/inventory/user"), &a)
            .await,
        "default-deny",
    )
    .await;
    denied(
        app.get(&format!("/v1/changes?connection_id={beta}"), &a)
            .await,
        "default-deny",
    )
    .await;
    // A change in the organization, seen by both connections' next syncs: portal-a's feed
    // holds acme's only.
    sandbox_person(&app.sandbox, "bob@corp.io", "reader");
    crate::inventory::full_sync(&app, &acme).await;
    crate::inventory::full_sync(&app, &beta).await;
    let all = ok(app.get("/v1/changes", &app.admin_token()).await, 200).await;
    let mine = ok(app.get("/v1/changes", &a).await, 200).await;
    let mine = mine["data"].as_array().unwrap();
    assert!(!mine.is_empty());
    assert!(
        mine.iter().all(|c| c["connection_id"] == acme.as_str()),
        "{mine:#?}"
    );
    assert!(all["data"].as_array().unwrap().len() > mine.len());
    let person = ok(app.get("/v1/access?email=alice@corp.io", &a).await, 200).await;
    let seen: Vec<&str> = person["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["connection_id"].as_str().unwrap())
        .collect();
    assert_eq!(seen, [acme.as_str()]);
    let admin = ok(
        app.get("/v1/access?email=alice@corp.io", &app.admin_token())
            .await,
        200,
    )
    .await;
    assert_eq!(admin["connections"].as_array().unwrap().len(), 2);

    // The auditor reads beta's entries only; entries naming no connection are not its.
    let auditor = portal(&app, "auditor");
    let trail = ok(app.get("/v1/audit?limit=500", &auditor).await, 200).await;
    let entries = trail["data"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries.iter().all(|e| e["connection_id"] == beta.as_str()),
        "{entries:#?}"
    );
    let all = ok(
        app.get("/v1/audit?limit=500", &app.admin_token()).await,
        200,
    )
    .await;
    assert!(all["data"].as_array().unwrap().len() > entries.len());

    let ready = ok(app.get("/readyz", &a).await, 200).await;
    assert_eq!(ready["policy"], "enforced");
}

async fn a_policy_file_reloads_and_a_bad_one_is_refused(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, POLICY).unwrap();
    let gate = PolicyGate::from_file(&file).unwrap();
    let options = Options {
        configure: Some(Box::new({
            let gate = gate.clone();
            move |c| c.policy = gate
        })),
        ..Options::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    let acme = synced_connection(&app, "acme").await;
    let a = portal(&app, "portal-a");
    assert_eq!(
        app.get(&format!("/v1/connections/{acme}"), &a)
            .await
            .status(),
        200
    );
    // portal-a loses acme.
    std::fs::write(
        &file,
        POLICY.replace(
            "connections: [acme]\n    duration",
            "connections: [beta]\n    duration",
        ),
    )
    .unwrap();
    assert_eq!(gate.reload().unwrap(), 6);
    denied(
        app.get(&format!("/v1/connections/{acme}"), &a).await,
        "default-deny",
    )
    .await;
    // A broken file: refused with its line, the previous policy stays.
    std::fs::write(
        &file,
        "rules:\n  - id: x\n    effect: allow\n    callers: [nobody]\n    actions: [read]\n",
    )
    .unwrap();
    let e = gate.reload().unwrap_err();
    assert_eq!(e.line, Some(2), "{e}");
    denied(
        app.get(&format!("/v1/connections/{acme}"), &a).await,
        "default-deny",
    )
    .await;
}

/// A caller known by a group in a configured claim: `security` reads the whole audit trail,
/// the same token without the group reads none of it.
async fn a_caller_is_known_by_its_groups_claim(backend: Backend) {
    let text = "callers:\n  security: {groups: [security]}\n  ops: {subjects: [admin@test]}\nrules:\n  - id: security-audit\n    effect: allow\n    callers: [security]\n    actions: [audit]\n  - id: ops\n    effect: allow\n    callers: [ops]\n    actions: [\"*\"]\n";
    let options = Options {
        configure: Some(Box::new(move |c| {
            c.policy = gate(text);
            c.jwt.groups_claim = Some("groups".into());
        })),
        ..Options::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    synced_connection(&app, "acme").await;
    let mint = |groups: &[&str]| {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = json!({"sub": "siem", "iat": now, "exp": now + 600,
                            "scope": "audit:read", "groups": groups});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(
                secrecy::ExposeSecret::expose_secret(&app.jwt_secret).as_bytes(),
            ),
        )
        .unwrap()
    };
    let with = ok(app.get("/v1/audit", &mint(&["eng", "security"])).await, 200).await;
    assert!(!with["data"].as_array().unwrap().is_empty());
    let without = ok(app.get("/v1/audit", &mint(&["eng"])).await, 200).await;
    assert!(without["data"].as_array().unwrap().is_empty(), "{without}");
}

/// Reads of a synced connection are checked against the name its snapshot is held under:
/// a rename changes what the policy allows on the next read, and a deleted connection is
/// gone on the next read, though both reads are answered without reading the connection.
async fn a_rename_or_delete_changes_reads_at_once(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Payments").await;
    let acme = synced_connection(&app, "acme").await;
    let a = portal(&app, "portal-a");
    let reads = [
        format!("/v1/connections/{acme}/projects/{pid}/access"),
        format!("/v1/connections/{acme}/inventory/user"),
        format!("/v1/connections/{acme}/owners"),
    ];
    for path in &reads {
        ok(app.get(path, &a).await, 200).await;
    }
    let admin = app.admin_token();
    let path = format!("/v1/connections/{acme}");
    ok(
        app.patch(&path, &admin, json!({"name": "gamma"})).await,
        200,
    )
    .await;
    for path in &reads {
        denied(app.get(path, &a).await, "default-deny").await;
    }
    ok(app.patch(&path, &admin, json!({"name": "acme"})).await, 200).await;
    ok(app.get(&reads[0], &a).await, 200).await;
    assert_eq!(app.delete(&path, &admin).await.status(), 204);
    for path in &reads {
        assert_problem(app.get(path, &a).await, 404, "connection_not_found").await;
    }
}

crate::backend_tests!(
    a_rename_or_delete_changes_reads_at_once,
    a_caller_is_known_by_its_groups_claim,
    refusals_are_403_write_nothing_and_are_audited,
    reads_show_only_the_organizations_a_caller_may_read,
    a_policy_file_reloads_and_a_bad_one_is_refused,
);
