//! Offboarding end to end: `POST /v1/offboardings` over HTTP, OpenAI played by the sandbox,
//! both stores. Each test builds the person in the sandbox, offboards them, and checks the
//! answer, the sandbox's state and request counters, the audit trail and the inventory.

use openai_governor::auth::Scope;
use openai_governor::openai::CreateInvite;
use openai_governor::store::Backend;
use openai_governor_sandbox::{Faults, KeyOwner, KeyProfile, ProjectApiKey, SandboxHandle};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, assert_problem, openai_client, sandbox_person, sandbox_project, synced_connection,
    test_client_config,
};

const DELETE_USER: &str = "DELETE /organization/users/{user_id}";
const DELETE_KEY: &str = "DELETE /organization/projects/{project_id}/api_keys/{api_key_id}";
const DELETE_INVITE: &str = "DELETE /organization/invites/{invite_id}";

/// Gives `user` a project API key in `project`; returns the key id.
fn key(sandbox: &SandboxHandle, project: &str, user: &str, name: &str) -> String {
    sandbox.state().write(|org| {
        let id = org.new_id("key_");
        let now = org.now();
        org.api_keys
            .entry(project.to_owned())
            .or_default()
            .insert(ProjectApiKey {
                id: id.clone(),
                name: name.to_owned(),
                redacted_value: "sk-proj-...abcd".to_owned(),
                created_at: now,
                last_used_at: None,
                owner: KeyOwner::User(user.to_owned()),
            });
        id
    })
}

fn key_exists(sandbox: &SandboxHandle, project: &str, key: &str) -> bool {
    sandbox
        .state()
        .read(|org| org.api_keys.get(project).is_some_and(|t| t.contains(key)))
}

fn is_member(sandbox: &SandboxHandle, user: &str) -> bool {
    sandbox.state().read(|org| org.users.contains(user))
}

fn writer(app: &TestApp) -> String {
    app.token("hr-workflow@corp", &[Scope::AccessWrite])
}

async fn offboard(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/v1/offboardings", &writer(app), body).await
}

async fn ok(res: reqwest::Response) -> Value {
    let code = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert_eq!(code, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    let res = app
        .get(
            &format!("/v1/audit?action=user.offboarded&{query}"),
            &app.admin_token(),
        )
        .await;
    ok(res).await["data"].as_array().unwrap().clone()
}

async fn inventory(app: &TestApp, connection: &str, kind: &str, query: &str) -> Vec<Value> {
    let res = app
        .get(
            &format!("/v1/connections/{connection}/inventory/{kind}?{query}"),
            &app.admin_token(),
        )
        .await;
    ok(res).await["data"].as_array().unwrap().clone()
}

fn writes(sandbox: &SandboxHandle, endpoint: &str) -> u64 {
    sandbox.counters().requests(endpoint)
}

/// Every write the sandbox saw (POST and DELETE on `/v1`).
fn all_writes(sandbox: &SandboxHandle) -> u64 {
    sandbox
        .counters()
        .endpoints
        .iter()
        .filter(|(k, _)| k.starts_with("POST ") || k.starts_with("DELETE "))
        .map(|(_, c)| c.requests)
        .sum()
}

async fn a_member_is_removed_with_memberships_and_keys_kept_by_default(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let payments = sandbox_project(&app.sandbox, "Payments").await;
    let research = sandbox_project(&app.sandbox, "Research").await;
    let extra = sandbox_project(&app.sandbox, "Extra").await;
    let uid = sandbox_person(&app.sandbox, "alice@corp.io", "reader");
    app.sandbox.state().write(|org| {
        org.add_project_user(&payments, &uid, "member").unwrap();
        org.add_project_user(&research, &uid, "owner").unwrap();
    });
    let k1 = key(&app.sandbox, &payments, &uid, "alice-ci");
    let k2 = key(&app.sandbox, &research, &uid, "alice-notebook");
    let client = openai_client(&app.sandbox, KeyProfile::All, test_client_config());
    let group = client.create_group("Analysts").await.unwrap().data.id;
    client.add_group_user(&group, &uid).await.unwrap();
    let conn = synced_connection(&app, "org").await;
    // A live grant made through us: offboarding marks it revoked.
    let g = app
        .post(
            "/v1/grants",
            &writer(&app),
            json!({"connection_id": conn, "email": "alice@corp.io", "project_id": extra,
                   "role": "member", "reason": "temp"}),
        )
        .await;
    assert_eq!(g.status(), 201);
    let grant: Value = g.json().await.unwrap();
    let before = inventory(&app, &conn, "group_member", &format!("subject_id={uid}")).await;
    assert_eq!(before.len(), 1, "{before:?}");
    app.sandbox.state().reset_counters();

    let o = ok(offboard(
        &app,
        json!({"email": "Alice@Corp.io", "connection_id": conn, "reason": "left the company",
               "ticket": "HR-7"}),
    )
    .await)
    .await;
    assert_eq!(o["email"], "alice@corp.io");
    assert_eq!(o["user_id"], uid.as_str());
    assert_eq!(o["requested_by"], "hr-workflow@corp");
    assert_eq!(o["delete_api_keys"], false);
    let c = &o["connections"][0];
    assert_eq!(o["connections"].as_array().unwrap().len(), 1);
    assert_eq!(c["status"], "removed");
    assert_eq!(c["connection_id"], conn.as_str());
    assert_eq!(c["user_id"], uid.as_str());
    assert_eq!(c["org_role"], "reader");
    let mut projects: Vec<(String, String)> = c["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["project_id"].as_str().unwrap().to_owned(),
                p["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    projects.sort();
    let mut expected = vec![
        (payments.clone(), "member".to_owned()),
        (research.clone(), "owner".to_owned()),
        (extra.clone(), "member".to_owned()),
    ];
    expected.sort();
    assert_eq!(projects, expected);
    assert_eq!(c["api_keys_deleted"], json!([]));
    let kept: Vec<&str> = c["api_keys_kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(kept.len(), 2);
    assert!(kept.contains(&k1.as_str()) && kept.contains(&k2.as_str()));
    assert_eq!(c["grants_revoked"], json!([grant["id"]]));
    assert_eq!(c["error"], Value::Null);
    assert!(!c["upstream_request_ids"].as_array().unwrap().is_empty());

    // OpenAI: the user and every membership gone, the keys kept (now inactive), one removal.
    assert!(!is_member(&app.sandbox, &uid));
    assert!(key_exists(&app.sandbox, &payments, &k1));
    assert!(key_exists(&app.sandbox, &research, &k2));
    assert_eq!(writes(&app.sandbox, DELETE_USER), 1);
    assert_eq!(writes(&app.sandbox, DELETE_KEY), 0);
    let in_group = app.sandbox.state().read(|org| {
        org.group_users
            .get(&group)
            .is_some_and(|t| t.contains(&uid))
    });
    assert!(!in_group);

    // The grant is recorded as revoked (the access was already gone: nothing more written).
    let g = ok(app
        .get(
            &format!("/v1/grants/{}", grant["id"].as_str().unwrap()),
            &writer(&app),
        )
        .await)
    .await;
    assert_eq!(g["status"], "revoked");
    assert_eq!(g["revoke_outcome"], "already_absent");

    // One audit entry: before what they held, after what remains.
    let trail = audit(&app, &format!("connection_id={conn}")).await;
    assert_eq!(trail.len(), 1, "{trail:?}");
    let e = &trail[0];
    assert_eq!(e["actor"], "hr-workflow@corp");
    assert_eq!(e["outcome"], "succeeded");
    assert_eq!(e["user_id"], uid.as_str());
    assert_eq!(e["email"], "alice@corp.io");
    assert_eq!(e["reason"], "left the company");
    assert_eq!(e["ticket"], "HR-7");
    assert_eq!(e["before"]["org_role"], "reader");
    assert_eq!(e["before"]["projects"].as_array().unwrap().len(), 3);
    assert_eq!(e["before"]["api_keys"].as_array().unwrap().len(), 2);
    assert_eq!(e["after"]["org_role"], Value::Null);
    assert_eq!(e["after"]["projects"], json!([]));
    assert_eq!(e["after"]["api_keys"].as_array().unwrap().len(), 2);
    assert_eq!(e["detail"]["offboarding_id"], o["id"]);
    assert_eq!(e["detail"]["status"], "removed");
    assert!(e["upstream_request_id"].is_string());

    // Write-through: the inventory shows it at once, before any sync.
    assert_eq!(
        inventory(&app, &conn, "user", "email=alice@corp.io").await,
        Vec::<Value>::new()
    );
    let q = format!("subject_id={uid}");
    assert!(
        inventory(&app, &conn, "project_member", &q)
            .await
            .is_empty()
    );
    assert!(inventory(&app, &conn, "group_member", &q).await.is_empty());
    let keys = inventory(&app, &conn, "api_key", &q).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k["status"] == "inactive"), "{keys:?}");
}

async fn keys_are_deleted_when_asked_and_a_replay_writes_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = sandbox_project(&app.sandbox, "A").await;
    let b = sandbox_project(&app.sandbox, "B").await;
    let uid = sandbox_person(&app.sandbox, "bob@corp.io", "reader");
    app.sandbox.state().write(|org| {
        org.add_project_user(&a, &uid, "member").unwrap();
        org.add_project_user(&b, &uid, "member").unwrap();
    });
    let k1 = key(&app.sandbox, &a, &uid, "k1");
    let k2 = key(&app.sandbox, &b, &uid, "k2");
    // A key in a project he already left (owner_project_access: inactive) is his too.
    let c = sandbox_project(&app.sandbox, "C").await;
    let k3 = key(&app.sandbox, &c, &uid, "k3");
    let conn = synced_connection(&app, "org").await;
    app.sandbox.state().reset_counters();

    let body = json!({"user_id": uid, "connection_id": conn, "delete_api_keys": true,
                      "reason": "contract ended"});
    let send = |key: &str, body: Value| {
        app.http
            .post(app.url("/v1/offboardings"))
            .bearer_auth(writer(&app))
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = send("off-1", body.clone()).await.unwrap();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = ok(first).await;
    let c0 = &first["connections"][0];
    assert_eq!(c0["status"], "removed");
    assert_eq!(first["email"], "bob@corp.io");
    let mut deleted: Vec<&str> = c0["api_keys_deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    deleted.sort();
    let mut want = vec![k1.as_str(), k2.as_str(), k3.as_str()];
    want.sort();
    assert_eq!(deleted, want);
    assert_eq!(c0["api_keys_kept"], json!([]));
    for (p, k) in [(&a, &k1), (&b, &k2), (&c, &k3)] {
        assert!(!key_exists(&app.sandbox, p, k));
    }
    assert!(!is_member(&app.sandbox, &uid));
    assert_eq!(writes(&app.sandbox, DELETE_KEY), 3);
    assert_eq!(writes(&app.sandbox, DELETE_USER), 1);

    // The same key and body: the first answer, nothing sent to OpenAI.
    let again = send("off-1", body.clone()).await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(ok(again).await, first);
    assert_eq!(writes(&app.sandbox, DELETE_USER), 1);
    assert_eq!(writes(&app.sandbox, DELETE_KEY), 3);
    // The same key with another body is refused.
    let mut other = body.clone();
    other["delete_api_keys"] = json!(false);
    assert_problem(
        send("off-1", other).await.unwrap(),
        409,
        "idempotency_key_reused",
    )
    .await;

    // A new request: he is gone already, a success that says so.
    let second = ok(send("off-2", body.clone()).await.unwrap()).await;
    assert_eq!(second["connections"][0]["status"], "not_a_member");
    assert_eq!(writes(&app.sandbox, DELETE_USER), 1);

    let trail = audit(&app, &format!("user_id={uid}")).await;
    assert_eq!(trail.len(), 2, "{trail:?}");
    assert_eq!(trail[0]["before"]["api_keys"].as_array().unwrap().len(), 3);
    assert_eq!(trail[0]["after"]["api_keys"], json!([]));
    assert_eq!(
        trail[0]["detail"]["api_keys_deleted"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(trail[1]["outcome"], "unchanged");
    assert_eq!(trail[1]["detail"]["status"], "not_a_member");
    let q = format!("subject_id={uid}");
    assert!(inventory(&app, &conn, "api_key", &q).await.is_empty());
}

async fn someone_not_in_the_org_is_a_success_that_says_so(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let client = openai_client(&app.sandbox, KeyProfile::All, test_client_config());
    let invite = client
        .create_invite(&CreateInvite {
            email: "pat@new.io".into(),
            role: "reader".into(),
            projects: Some(vec![]),
        })
        .await
        .unwrap()
        .data
        .id;
    let conn = synced_connection(&app, "org").await;
    app.sandbox.state().reset_counters();

    let o = ok(offboard(
        &app,
        json!({"email": "nobody@corp.io", "connection_id": conn, "reason": "cleanup"}),
    )
    .await)
    .await;
    let c = &o["connections"][0];
    assert_eq!(c["status"], "not_a_member");
    assert_eq!(c["user_id"], Value::Null);
    assert_eq!(c["projects"], json!([]));
    assert_eq!(all_writes(&app.sandbox), 0);
    let trail = audit(&app, "email=nobody@corp.io").await;
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0]["outcome"], "unchanged");

    // Invited but not yet a member: the pending invite is deleted.
    let o = ok(offboard(
        &app,
        json!({"email": "pat@new.io", "connection_id": conn, "reason": "offer withdrawn"}),
    )
    .await)
    .await;
    let c = &o["connections"][0];
    assert_eq!(c["status"], "not_a_member");
    assert_eq!(c["invites_deleted"], json!([invite]));
    assert_eq!(writes(&app.sandbox, DELETE_INVITE), 1);
    assert_eq!(writes(&app.sandbox, DELETE_USER), 0);
    let pending = app
        .sandbox
        .state()
        .read(|org| org.invites.contains(&invite));
    assert!(!pending);
    let trail = audit(&app, "email=pat@new.io").await;
    assert_eq!(trail[0]["outcome"], "succeeded");
    assert_eq!(trail[0]["before"]["invites"], json!([invite]));
    assert_eq!(trail[0]["after"]["invites"], json!([]));
    assert!(
        inventory(&app, &conn, "invite", "email=pat@new.io")
            .await
            .is_empty()
    );
}

async fn the_last_owner_is_refused_with_nothing_written(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    // One owner left: the seed's first user (the admin keys' owner).
    let owner = app.sandbox.state().write(|org| {
        let first = org.users.iter().next().unwrap().id.clone();
        for u in org.users.iter_mut() {
            if u.id != first {
                u.role = "reader".to_owned();
            }
        }
        first
    });
    let conn = synced_connection(&app, "org").await;
    let other = synced_connection(&app, "org-again").await;
    app.sandbox.state().reset_counters();

    let res = offboard(
        &app,
        json!({"user_id": owner, "connection_id": conn, "reason": "r"}),
    )
    .await;
    let p = assert_problem(res, 409, "last_owner").await;
    assert!(p["detail"].as_str().unwrap().contains("last owner"), "{p}");
    assert_eq!(writes(&app.sandbox, DELETE_USER), 0);
    assert_eq!(all_writes(&app.sandbox), 0);
    assert!(is_member(&app.sandbox, &owner));

    // The refusal is in the trail.
    let trail = audit(&app, &format!("connection_id={conn}")).await;
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0]["outcome"], "failed");
    assert_eq!(trail[0]["detail"]["status"], "refused");
    assert_eq!(trail[0]["detail"]["error"]["code"], "last_owner");
    assert_eq!(trail[0]["before"], trail[0]["after"]);

    // Across every connection: 200, each organization says it refused.
    let o = ok(offboard(
        &app,
        json!({"user_id": owner, "all_connections": true, "reason": "r"}),
    )
    .await)
    .await;
    let cs = o["connections"].as_array().unwrap();
    assert_eq!(cs.len(), 2);
    let ids: Vec<&str> = cs
        .iter()
        .map(|c| c["connection_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [conn.as_str(), other.as_str()]);
    for c in cs {
        assert_eq!(c["status"], "refused");
        assert_eq!(c["error"]["code"], "last_owner");
    }
    assert_eq!(all_writes(&app.sandbox), 0);
}

async fn every_connection_at_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Shared").await;
    let uid = sandbox_person(&app.sandbox, "carol@corp.io", "owner");
    app.sandbox.state().write(|org| {
        org.add_project_user(&pid, &uid, "member").unwrap();
    });
    // Two connections to the same organization: the first removes her, the second finds her
    // already gone.
    let first = synced_connection(&app, "org-1").await;
    let second = synced_connection(&app, "org-2").await;
    app.sandbox.state().reset_counters();

    let o = ok(offboard(
        &app,
        json!({"email": "carol@corp.io", "all_connections": true, "reason": "left",
               "ticket": "HR-9"}),
    )
    .await)
    .await;
    let cs = o["connections"].as_array().unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0]["connection_id"], first.as_str());
    assert_eq!(cs[0]["connection_name"], "org-1");
    assert_eq!(cs[0]["status"], "removed");
    assert_eq!(cs[0]["org_role"], "owner");
    assert_eq!(cs[1]["connection_id"], second.as_str());
    assert_eq!(cs[1]["status"], "not_a_member");
    assert_eq!(o["user_id"], uid.as_str());
    assert_eq!(writes(&app.sandbox, DELETE_USER), 1);
    assert!(!is_member(&app.sandbox, &uid));

    let trail = audit(&app, "email=carol@corp.io").await;
    assert_eq!(trail.len(), 2);
    for e in &trail {
        assert_eq!(e["detail"]["offboarding_id"], o["id"]);
        assert_eq!(e["ticket"], "HR-9");
    }
    // Neither snapshot shows her any more: the second one's was stale, and is cleaned too.
    for conn in [&first, &second] {
        assert!(
            inventory(&app, conn, "user", "email=carol@corp.io")
                .await
                .is_empty()
        );
        let q = format!("subject_id={uid}");
        assert!(inventory(&app, conn, "project_member", &q).await.is_empty());
    }
}

async fn scope_validation_and_unknown_connections(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let conn = synced_connection(&app, "org").await;
    let body = json!({"email": "a@corp.io", "connection_id": conn, "reason": "r"});
    let reader = app.token("viewer", &[Scope::ConnectionsRead, Scope::AuditRead]);
    assert_problem(
        app.post("/v1/offboardings", &reader, body.clone()).await,
        403,
        "insufficient_scope",
    )
    .await;

    let res = offboard(
        &app,
        json!({"user_id": "bob", "connection_id": conn, "all_connections": true, "reason": " "}),
    )
    .await;
    let p = assert_problem(res, 422, "validation_failed").await;
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["user_id", "all_connections", "reason"], "{p}");
    let p = assert_problem(
        offboard(&app, json!({"reason": "r"})).await,
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "connection_id"], "{p}");
    assert_problem(
        offboard(
            &app,
            json!({"email": "a@corp.io", "connection_id": "nope", "reason": "r"}),
        )
        .await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_problem(
        offboard(
            &app,
            json!({"email": "a@corp.io", "connection_id": uuid::Uuid::now_v7(), "reason": "r"}),
        )
        .await,
        404,
        "connection_not_found",
    )
    .await;
    assert_problem(
        offboard(
            &app,
            json!({"email": "a@corp.io", "all_connections": true, "reason": "r", "force": true}),
        )
        .await,
        400,
        "malformed_json",
    )
    .await;
    assert_eq!(all_writes(&app.sandbox), 0);
}

async fn a_dry_run_reads_the_organizations_at_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let uid = sandbox_person(&app.sandbox, "dora@corp.io", "reader");
    let key = app.sandbox.key(KeyProfile::All).to_owned();
    let mut ids = Vec::new();
    for i in 0..10 {
        let c = app.create_connection(&format!("org-{i:02}"), &key).await;
        ids.push(c["id"].as_str().unwrap().to_owned());
    }
    // Every lookup of a person is slow: one organization after the other, ten would take
    // at least 10 × 400 ms.
    app.sandbox.state().set_faults(Faults {
        latency_ms: 400,
        only: Some("GET /organization/users".into()),
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let d = ok(app
        .post(
            "/v1/offboardings?dry_run=true",
            &writer(&app),
            json!({"email": "dora@corp.io", "all_connections": true, "reason": "left"}),
        )
        .await)
    .await;
    let took = started.elapsed();
    let rows = d["connections"].as_array().unwrap();
    // In the connections' order, whatever order the reads finished in.
    let got: Vec<&str> = rows
        .iter()
        .map(|c| c["connection_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids, "{d}");
    for c in rows {
        assert_eq!(c["status"], "would_remove", "{d}");
    }
    assert!(
        took < std::time::Duration::from_millis(3_000),
        "ten organizations read one after the other: {took:?}"
    );
    assert!(is_member(&app.sandbox, &uid));
    assert_eq!(all_writes(&app.sandbox), 0);
}

crate::backend_tests!(
    a_member_is_removed_with_memberships_and_keys_kept_by_default,
    keys_are_deleted_when_asked_and_a_replay_writes_nothing,
    someone_not_in_the_org_is_a_success_that_says_so,
    the_last_owner_is_refused_with_nothing_written,
    every_connection_at_once,
    a_dry_run_reads_the_organizations_at_once,
    scope_validation_and_unknown_connections,
);
