//! Grants end to end: the service over HTTP, OpenAI played by the sandbox, both stores.
//! Each test builds the people and projects it needs in the sandbox, grants and revokes
//! through `/v1/grants`, and checks three places: the grant as served, the sandbox's state
//! and request counters (what OpenAI would have seen), and the audit trail.

use std::time::Duration;

use futures::TryStreamExt;

use openai_governor::auth::Scope;
use openai_governor::openai::{Assignee, CreateRole, RoleScope};
use openai_governor::store::Backend;
use openai_governor_sandbox::{Faults, HoldAfterApply, KeyProfile, SandboxHandle};
use serde_json::{Value, json};

use crate::helpers::{
    Options, TestApp, assert_problem, openai_client, sandbox_person, sandbox_project,
    synced_connection, test_client_config,
};

const ADD_MEMBER: &str = "POST /organization/projects/{project_id}/users";
const SET_ROLE: &str = "POST /organization/projects/{project_id}/users/{user_id}";
const REMOVE_MEMBER: &str = "DELETE /organization/projects/{project_id}/users/{user_id}";
const INVITE: &str = "POST /organization/invites";

fn project_role(sandbox: &SandboxHandle, project: &str, user: &str) -> Option<String> {
    sandbox.state().read(|org| {
        org.project_users
            .get(project)
            .and_then(|m| m.get(user))
            .map(|m| m.role.clone())
    })
}

fn writer(app: &TestApp) -> String {
    app.token("workflow@corp", &[Scope::AccessWrite])
}

async fn grant(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/v1/grants", &writer(app), body).await
}

async fn created(res: reqwest::Response, status: u16) -> Value {
    let code = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert_eq!(code, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn revoke(app: &TestApp, id: &str, body: Value) -> reqwest::Response {
    app.post(&format!("/v1/grants/{id}/revoke"), &writer(app), body)
        .await
}

/// The connection's snapshot items of `kind` with `parent` (what a portal reads).
async fn inventory(app: &TestApp, connection: &str, kind: &str, parent: &str) -> Vec<Value> {
    let res = app
        .get(
            &format!("/v1/connections/{connection}/inventory/{kind}?parent_id={parent}"),
            &app.admin_token(),
        )
        .await;
    let page: Value = created(res, 200).await;
    page["data"].as_array().unwrap().clone()
}

async fn audit(app: &TestApp, grant: &str) -> Vec<Value> {
    let res = app
        .get(&format!("/v1/audit?grant_id={grant}"), &app.admin_token())
        .await;
    let page: Value = created(res, 200).await;
    page["data"].as_array().unwrap().clone()
}

fn writes(sandbox: &SandboxHandle, endpoint: &str) -> u64 {
    sandbox.counters().requests(endpoint)
}

async fn grant_to_a_member_shows_at_once_and_revokes(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Payments").await;
    let uid = sandbox_person(&app.sandbox, "alice@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;

    let res = grant(
        &app,
        json!({"connection_id": conn, "email": "Alice@Corp.io", "project_id": pid,
               "role": "member", "reason": "on-call", "ticket": "SEC-123"}),
    )
    .await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let g = created(res, 201).await;
    assert_eq!(
        location,
        format!("/v1/grants/{}", g["id"].as_str().unwrap())
    );
    assert_eq!(g["status"], "active");
    assert_eq!(g["outcome"], "granted");
    assert_eq!(g["grantee"]["user_id"], uid.as_str());
    assert_eq!(g["grantee"]["email"], "alice@corp.io");
    assert_eq!(g["requested_by"], "workflow@corp");
    assert_eq!(g["previous_role"], Value::Null);
    assert!(g["upstream_request_id"].is_string(), "{g}");
    assert_eq!(
        project_role(&app.sandbox, &pid, &uid).as_deref(),
        Some("member")
    );
    assert_eq!(writes(&app.sandbox, ADD_MEMBER), 1);

    // Write-through: the inventory shows the membership without a sync.
    let members = inventory(&app, &conn, "project_member", &pid).await;
    assert!(
        members
            .iter()
            .any(|m| m["subject_id"] == uid.as_str() && m["role"] == "member"),
        "{members:?}"
    );

    let id = g["id"].as_str().unwrap();
    let fetched = created(app.get(&location, &writer(&app)).await, 200).await;
    assert_eq!(fetched, g);

    let r = created(
        revoke(&app, id, json!({"reason": "done", "ticket": "SEC-124"})).await,
        200,
    )
    .await;
    assert_eq!(r["status"], "revoked");
    assert_eq!(r["revoke_outcome"], "removed");
    assert_eq!(r["ended_by"], "workflow@corp");
    assert_eq!(project_role(&app.sandbox, &pid, &uid), None);
    assert!(
        inventory(&app, &conn, "project_member", &pid)
            .await
            .iter()
            .all(|m| m["subject_id"] != uid.as_str())
    );

    // Revoking again: the grant as it is, no second write.
    let again = created(revoke(&app, id, json!({})).await, 200).await;
    assert_eq!(again["status"], "revoked");
    assert_eq!(writes(&app.sandbox, REMOVE_MEMBER), 1);

    // The audit trail: who, what, why, which ticket, before and after.
    let trail = audit(&app, id).await;
    let actions: Vec<&str> = trail
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["grant.created", "grant.revoked"], "{trail:?}");
    assert_eq!(trail[0]["actor"], "workflow@corp");
    assert_eq!(trail[0]["ticket"], "SEC-123");
    assert_eq!(trail[0]["reason"], "on-call");
    assert_eq!(trail[0]["outcome"], "succeeded");
    assert_eq!(trail[0]["user_id"], uid.as_str());
    assert_eq!(trail[0]["project_id"], pid.as_str());
    assert_eq!(trail[0]["before"], json!({"project_role": null}));
    assert_eq!(trail[0]["after"], json!({"project_role": "member"}));
    assert_eq!(trail[1]["ticket"], "SEC-124");
    assert_eq!(trail[1]["after"], json!({"project_role": null}));
    assert!(trail[0]["upstream_request_id"].is_string());
}

async fn held_access_is_left_alone_and_a_role_change_is_undone(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Research").await;
    let uid = sandbox_person(&app.sandbox, "bob@corp.io", "reader");
    let owner = sandbox_person(&app.sandbox, "olga@corp.io", "reader");
    app.sandbox.state().write(|org| {
        org.add_project_user(&pid, &owner, "owner").unwrap();
        org.add_project_user(&pid, &uid, "member").unwrap();
    });
    let conn = synced_connection(&app, "org").await;
    app.sandbox.state().reset_counters();

    // Already a member: a success that says so, and nothing written.
    let held = created(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": uid, "project_id": pid, "role": "member",
                   "reason": "r"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(held["outcome"], "already_held");
    assert_eq!(held["previous_role"], "member");
    assert_eq!(
        writes(&app.sandbox, ADD_MEMBER) + writes(&app.sandbox, SET_ROLE),
        0
    );
    let undone = created(
        revoke(&app, held["id"].as_str().unwrap(), json!({})).await,
        200,
    )
    .await;
    assert_eq!(undone["revoke_outcome"], "nothing_to_undo");
    assert_eq!(
        project_role(&app.sandbox, &pid, &uid).as_deref(),
        Some("member")
    );
    assert_eq!(writes(&app.sandbox, REMOVE_MEMBER), 0);

    // Another role: a role change, and the revoke sets the old role back.
    let changed = created(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": uid, "project_id": pid, "role": "owner",
                   "reason": "r"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(changed["outcome"], "role_changed");
    assert_eq!(changed["previous_role"], "member");
    assert_eq!(
        project_role(&app.sandbox, &pid, &uid).as_deref(),
        Some("owner")
    );
    let members = inventory(&app, &conn, "project_member", &pid).await;
    assert!(
        members
            .iter()
            .any(|m| m["subject_id"] == uid.as_str() && m["role"] == "owner")
    );
    let restored = created(
        revoke(&app, changed["id"].as_str().unwrap(), json!({})).await,
        200,
    )
    .await;
    assert_eq!(restored["revoke_outcome"], "role_restored");
    assert_eq!(
        project_role(&app.sandbox, &pid, &uid).as_deref(),
        Some("member")
    );
    let members = inventory(&app, &conn, "project_member", &pid).await;
    assert!(
        members
            .iter()
            .any(|m| m["subject_id"] == uid.as_str() && m["role"] == "member")
    );
}

async fn revoking_access_already_gone_succeeds_and_says_so(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Gone").await;
    let uid = sandbox_person(&app.sandbox, "carol@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;
    let g = created(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": uid, "project_id": pid,
                          "role": "member", "reason": "r"}),
        )
        .await,
        201,
    )
    .await;
    // Someone removes her in the dashboard.
    app.sandbox
        .state()
        .write(|org| org.remove_project_user(&pid, &uid).unwrap());
    let r = created(
        revoke(&app, g["id"].as_str().unwrap(), json!({})).await,
        200,
    )
    .await;
    assert_eq!(r["status"], "revoked");
    assert_eq!(r["revoke_outcome"], "already_absent");
    let trail = audit(&app, g["id"].as_str().unwrap()).await;
    assert_eq!(trail.last().unwrap()["outcome"], "unchanged");
}

async fn a_non_member_is_invited_and_the_grant_follows_the_invite(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Onboarding").await;
    let conn = synced_connection(&app, "org").await;
    let g = created(
        grant(
            &app,
            json!({"connection_id": conn, "email": "dan@new.io", "project_id": pid,
                          "role": "member", "reason": "new hire", "ticket": "HR-1"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(g["status"], "invited");
    assert_eq!(g["outcome"], "invited");
    let invite_id = g["invite_id"].as_str().unwrap().to_owned();
    // The invite names exactly the project (never the implicit default project).
    let projects = app.sandbox.state().read(|org| {
        org.invites
            .get(&invite_id)
            .map(|i| {
                i.projects
                    .iter()
                    .map(|p| (p.id.clone(), p.role.clone()))
                    .collect::<Vec<_>>()
            })
            .unwrap()
    });
    assert_eq!(projects, [(pid.clone(), "member".to_owned())]);

    // Still pending: the worker changes nothing.
    app.state.grants.work_once().await.unwrap();
    let same = created(
        app.get(
            &format!("/v1/grants/{}", g["id"].as_str().unwrap()),
            &writer(&app),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(same["status"], "invited");

    // Accepted through the sandbox's control API: the next pass makes the grant active.
    let res = reqwest::Client::new()
        .post(
            app.sandbox
                .control_url()
                .join(&format!("invites/{invite_id}/accept"))
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let uid: Value = res.json().await.unwrap();
    let uid = uid["id"].as_str().unwrap().to_owned();
    app.state.grants.work_once().await.unwrap();
    let active = created(
        app.get(
            &format!("/v1/grants/{}", g["id"].as_str().unwrap()),
            &writer(&app),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(active["status"], "active", "{active}");
    assert_eq!(active["grantee"]["user_id"], uid.as_str());
    let members = inventory(&app, &conn, "project_member", &pid).await;
    assert!(members.iter().any(|m| m["subject_id"] == uid.as_str()));
    let trail = audit(&app, g["id"].as_str().unwrap()).await;
    let actions: Vec<&str> = trail
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["grant.created", "grant.activated"]);
    assert_eq!(trail[0]["outcome"], "pending");
    assert_eq!(trail[1]["actor"], "openai-governor");

    // An invite that expires fails its grant.
    let late = created(
        grant(
            &app,
            json!({"connection_id": conn, "email": "erin@new.io", "project_id": pid,
                          "role": "member", "reason": "r"}),
        )
        .await,
        201,
    )
    .await;
    let late_invite = late["invite_id"].as_str().unwrap().to_owned();
    app.sandbox.state().expire_invite(&late_invite).unwrap();
    app.state.grants.work_once().await.unwrap();
    let failed = created(
        app.get(
            &format!("/v1/grants/{}", late["id"].as_str().unwrap()),
            &writer(&app),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"].as_str().unwrap().contains("expired"),
        "{failed}"
    );

    // Revoking an invited grant deletes its invite.
    let third = created(
        grant(
            &app,
            json!({"connection_id": conn, "email": "fay@new.io", "project_id": pid,
                          "role": "member", "reason": "r"}),
        )
        .await,
        201,
    )
    .await;
    let r = created(
        revoke(&app, third["id"].as_str().unwrap(), json!({})).await,
        200,
    )
    .await;
    assert_eq!(r["revoke_outcome"], "invite_deleted");
    let gone = app.sandbox.state().read(|org| {
        org.invites
            .get(third["invite_id"].as_str().unwrap())
            .is_none()
    });
    assert!(gone);
    assert_eq!(writes(&app.sandbox, INVITE), 3);
}

async fn refusals_are_typed_and_write_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Rules").await;
    let archived = sandbox_project(&app.sandbox, "Old").await;
    let boss = sandbox_person(&app.sandbox, "boss@corp.io", "owner");
    let sole = sandbox_person(&app.sandbox, "sole@corp.io", "reader");
    let pending = "pat@new.io";
    app.sandbox.state().write(|org| {
        org.add_project_user(&pid, &sole, "owner").unwrap();
        // The project's creator (the key's owner) is its other owner: leave `sole` alone.
        if let Some(members) = org.project_users.get_mut(&pid) {
            members.retain(|m| m.user_id == sole);
        }
    });
    let client = openai_client(&app.sandbox, KeyProfile::All, test_client_config());
    client.archive_project(&archived).await.unwrap();
    client
        .create_invite(&openai_governor::openai::CreateInvite {
            email: pending.into(),
            role: "reader".into(),
            projects: Some(vec![]),
        })
        .await
        .unwrap();
    let conn = synced_connection(&app, "org").await;
    app.sandbox.state().reset_counters();
    let body = |who: Value, project: &str, role: &str| {
        let mut b = json!({"connection_id": conn, "project_id": project, "role": role,
                           "reason": "r"});
        b.as_object_mut()
            .unwrap()
            .extend(who.as_object().unwrap().clone());
        b
    };

    let p = assert_problem(
        grant(&app, body(json!({"user_id": sole}), &archived, "member")).await,
        409,
        "project_archived",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("archived"));
    assert_problem(
        grant(&app, body(json!({"user_id": boss}), &pid, "member")).await,
        409,
        "org_owner",
    )
    .await;
    assert_problem(
        grant(&app, body(json!({"user_id": sole}), &pid, "member")).await,
        409,
        "last_owner",
    )
    .await;
    assert_problem(
        grant(&app, body(json!({"email": pending}), &pid, "member")).await,
        409,
        "invite_pending",
    )
    .await;
    assert_problem(
        grant(
            &app,
            body(json!({"user_id": "user-nobody"}), &pid, "member"),
        )
        .await,
        409,
        "email_required",
    )
    .await;
    assert_problem(
        grant(
            &app,
            body(json!({"user_id": sole}), "proj_missing", "member"),
        )
        .await,
        404,
        "project_not_found",
    )
    .await;
    assert_eq!(
        writes(&app.sandbox, ADD_MEMBER)
            + writes(&app.sandbox, SET_ROLE)
            + writes(&app.sandbox, INVITE),
        0,
        "a refusal writes nothing"
    );
    // Each refusal is on record as a failed grant and a failed audit entry.
    let failed: Value = created(
        app.get("/v1/grants?status=failed", &writer(&app)).await,
        200,
    )
    .await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 6);
    // A failed grant holds nothing: it can be neither revoked nor extended.
    let failed_id = failed["data"][0]["id"].as_str().unwrap().to_owned();
    assert_problem(
        revoke(&app, &failed_id, json!({})).await,
        409,
        "grant_not_live",
    )
    .await;
    assert_problem(
        app.patch(
            &format!("/v1/grants/{failed_id}"),
            &writer(&app),
            json!({"expires_in_seconds": 60}),
        )
        .await,
        409,
        "grant_not_live",
    )
    .await;
    // An expiry change must say what the new expiry is, one way.
    for body in [
        json!({"reason": "r"}),
        json!({"expires_in_seconds": 60, "expires_at": "2030-01-01T00:00:00Z"}),
    ] {
        assert_problem(
            app.patch(&format!("/v1/grants/{failed_id}"), &writer(&app), body)
                .await,
            422,
            "validation_failed",
        )
        .await;
    }
    let trail: Value = created(
        app.get("/v1/audit?action=grant.created", &app.admin_token())
            .await,
        200,
    )
    .await;
    assert!(
        trail["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["outcome"] == "failed")
    );

    // OpenAI's own refusal (a role it does not know) is a 502 and a failed grant.
    let member = sandbox_person(&app.sandbox, "mia@corp.io", "reader");
    let p = assert_problem(
        grant(&app, body(json!({"user_id": member}), &pid, "no-such-role")).await,
        502,
        "upstream_refused",
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("recorded as failed"),
        "{p}"
    );

    // Invalid requests: every field named, nothing recorded.
    let p = assert_problem(
        grant(
            &app,
            json!({"connection_id": conn, "email": "not-an-email", "project_id": "x",
                          "role": "", "reason": " ", "expires_in_seconds": 0}),
        )
        .await,
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
    assert_eq!(
        fields,
        [
            "email",
            "project_id",
            "role",
            "reason",
            "expires_in_seconds"
        ]
    );
    assert_problem(
        grant(
            &app,
            body(json!({"user_id": sole}), &pid, "member")
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert(
                        "connection_id".into(),
                        json!(uuid::Uuid::now_v7().to_string()),
                    );
                    Value::Object(o)
                })
                .unwrap(),
        )
        .await,
        404,
        "connection_not_found",
    )
    .await;
    let reader = app.token("portal", &[Scope::InventoryRead]);
    assert_problem(
        app.post(
            "/v1/grants",
            &reader,
            body(json!({"user_id": sole}), &pid, "member"),
        )
        .await,
        403,
        "insufficient_scope",
    )
    .await;
    assert_problem(
        revoke(&app, "not-a-uuid", json!({})).await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_problem(
        revoke(&app, &uuid::Uuid::now_v7().to_string(), json!({})).await,
        404,
        "grant_not_found",
    )
    .await;
}

async fn idempotency_keys_replay_and_refuse_reuse(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Idem").await;
    let uid = sandbox_person(&app.sandbox, "ivy@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;
    let body = json!({"connection_id": conn, "user_id": uid, "project_id": pid, "role": "member",
                      "reason": "r"});
    let send = |key: &str, body: Value| {
        app.http
            .post(app.url("/v1/grants"))
            .bearer_auth(writer(&app))
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = send("k-1", body.clone()).await.unwrap();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = created(first, 201).await;
    let again = send("k-1", body.clone()).await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.headers()["location"].to_str().unwrap(),
        format!("/v1/grants/{}", first["id"].as_str().unwrap())
    );
    assert_eq!(created(again, 201).await, first);
    assert_eq!(writes(&app.sandbox, ADD_MEMBER), 1);

    let mut other = body.clone();
    other["role"] = json!("owner");
    assert_problem(
        send("k-1", other).await.unwrap(),
        409,
        "idempotency_key_reused",
    )
    .await;
    // Keys belong to their caller: another subject's same key is a new request.
    let res = app
        .http
        .post(app.url("/v1/grants"))
        .bearer_auth(app.token("someone-else", &[Scope::AccessWrite]))
        .header("idempotency-key", "k-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created(res, 201).await["outcome"], "already_held");
    assert_problem(
        send("", body.clone()).await.unwrap(),
        400,
        "invalid_parameter",
    )
    .await;

    // A revoke replayed is the same answer, and one write.
    let rid = first["id"].as_str().unwrap();
    let revoke_with = |key: &str| {
        app.http
            .post(app.url(&format!("/v1/grants/{rid}/revoke")))
            .bearer_auth(writer(&app))
            .header("idempotency-key", key)
            .json(&json!({"reason": "x"}))
            .send()
    };
    let r1 = created(revoke_with("r-1").await.unwrap(), 200).await;
    let r2 = revoke_with("r-1").await.unwrap();
    assert_eq!(r2.headers()["idempotent-replayed"], "true");
    assert_eq!(created(r2, 200).await, r1);
    assert_eq!(writes(&app.sandbox, REMOVE_MEMBER), 1);
}

async fn concurrent_duplicates_make_one_upstream_write(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Race").await;
    let uid = sandbox_person(&app.sandbox, "rae@corp.io", "reader");
    let other = sandbox_person(&app.sandbox, "rob@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;
    // Slow writes, so that the duplicates really overlap.
    app.sandbox.state().set_faults(Faults {
        latency_ms: 150,
        only: Some(ADD_MEMBER.into()),
        ..Faults::default()
    });
    let body = |u: &str| {
        json!({"connection_id": conn, "user_id": u, "project_id": pid, "role": "member",
               "reason": "r"})
    };
    // Without a key: the access lock serializes them; the second finds the access held.
    let (a, b) = tokio::join!(grant(&app, body(&uid)), grant(&app, body(&uid)));
    let (a, b) = (created(a, 201).await, created(b, 201).await);
    let mut outcomes = [
        a["outcome"].as_str().unwrap(),
        b["outcome"].as_str().unwrap(),
    ];
    outcomes.sort();
    assert_eq!(outcomes, ["already_held", "granted"]);
    assert_eq!(writes(&app.sandbox, ADD_MEMBER), 1);

    // With one key: the second waits for the first and replays its answer.
    let send = || {
        app.http
            .post(app.url("/v1/grants"))
            .bearer_auth(writer(&app))
            .header("idempotency-key", "same")
            .json(&body(&other))
            .send()
    };
    let (a, b) = tokio::join!(send(), send());
    let (a, b) = (a.unwrap(), b.unwrap());
    let replayed = [&a, &b]
        .iter()
        .filter(|r| r.headers().get("idempotent-replayed").is_some())
        .count();
    assert_eq!(replayed, 1);
    assert_eq!(created(a, 201).await, created(b, 201).await);
    assert_eq!(writes(&app.sandbox, ADD_MEMBER), 2);
}

async fn time_bound_grants_expire_once_and_can_be_extended(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Temp").await;
    let uid = sandbox_person(&app.sandbox, "tim@corp.io", "reader");
    let kept = sandbox_person(&app.sandbox, "kim@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;
    let short = created(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": uid, "project_id": pid,
                          "role": "member", "reason": "incident", "expires_in_seconds": 1}),
        )
        .await,
        201,
    )
    .await;
    let long = created(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": kept, "project_id": pid,
                          "role": "member", "reason": "r", "expires_in_seconds": 1}),
        )
        .await,
        201,
    )
    .await;
    // Extended before it expires.
    let res = app
        .patch(
            &format!("/v1/grants/{}", long["id"].as_str().unwrap()),
            &writer(&app),
            json!({"expires_in_seconds": 3600, "reason": "still needed", "ticket": "SEC-9"}),
        )
        .await;
    let extended = created(res, 200).await;
    assert!(extended["expires_at"].as_str().unwrap() > long["expires_at"].as_str().unwrap());

    // Two replicas' workers (each its own lease owner) run at once: the expiry happens once.
    let replica = app.state.grants.replica();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (a, b) = tokio::join!(app.state.grants.work_once(), replica.work_once());
    assert_eq!(
        a.unwrap() + b.unwrap(),
        1,
        "one pass expires it, the other finds it taken"
    );
    let expired = created(
        app.get(
            &format!("/v1/grants/{}", short["id"].as_str().unwrap()),
            &writer(&app),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(expired["status"], "expired");
    assert_eq!(expired["revoke_outcome"], "removed");
    assert_eq!(expired["ended_by"], "openai-governor");
    assert_eq!(project_role(&app.sandbox, &pid, &uid), None);
    assert_eq!(
        project_role(&app.sandbox, &pid, &kept).as_deref(),
        Some("member")
    );
    assert_eq!(writes(&app.sandbox, REMOVE_MEMBER), 1);
    let trail = audit(&app, short["id"].as_str().unwrap()).await;
    assert_eq!(trail.last().unwrap()["action"], "grant.expired");
    assert_eq!(trail.last().unwrap()["actor"], "openai-governor");
    let trail = audit(&app, long["id"].as_str().unwrap()).await;
    assert_eq!(trail.last().unwrap()["action"], "grant.extended");
    assert_eq!(trail.last().unwrap()["ticket"], "SEC-9");

    // An ended grant's expiry cannot change.
    assert_problem(
        app.patch(
            &format!("/v1/grants/{}", short["id"].as_str().unwrap()),
            &writer(&app),
            json!({"expires_in_seconds": 60}),
        )
        .await,
        409,
        "grant_not_live",
    )
    .await;
}

async fn a_write_whose_answer_is_lost_is_reconciled_not_repeated(backend: Backend) {
    let Some(app) = TestApp::spawn_with(
        backend,
        Options {
            openai_request_timeout: Duration::from_millis(500),
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Lost").await;
    let uid = sandbox_person(&app.sandbox, "lou@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;
    // OpenAI applies the write but its answer never arrives (the client times out).
    app.sandbox.state().set_faults(Faults {
        hold_after_apply: Some(HoldAfterApply {
            endpoint: ADD_MEMBER.into(),
            times: 1,
        }),
        ..Faults::default()
    });
    let g = created(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": uid, "project_id": pid,
                          "role": "member", "reason": "r"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(g["status"], "active", "{g}");
    assert_eq!(g["outcome"], "granted");
    assert_eq!(
        writes(&app.sandbox, ADD_MEMBER),
        1,
        "the write is not repeated"
    );
    assert_eq!(
        project_role(&app.sandbox, &pid, &uid).as_deref(),
        Some("member")
    );
    app.sandbox.state().release_held();
}

async fn group_membership_grants_and_scim_refusal(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let client = openai_client(&app.sandbox, KeyProfile::All, test_client_config());
    let gid = client.create_group("Analysts").await.unwrap().data.id;
    let scim = client.create_group("From Okta").await.unwrap().data.id;
    app.sandbox.state().write(|org| {
        if let Some(g) = org.groups.get_mut(&scim) {
            g.is_scim_managed = true;
        }
    });
    let uid = sandbox_person(&app.sandbox, "gus@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;
    let in_group = |g: &str| {
        app.sandbox
            .state()
            .read(|org| org.group_users.get(g).is_some_and(|m| m.contains(&uid)))
    };

    let g = created(
        grant(
            &app,
            json!({"connection_id": conn, "email": "gus@corp.io", "group_id": gid,
                          "reason": "analytics", "ticket": "SEC-7"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(g["status"], "active");
    assert_eq!(g["outcome"], "granted");
    assert_eq!(g["target"], json!({"type": "group", "group_id": gid}));
    assert!(in_group(&gid));
    let members = inventory(&app, &conn, "group_member", &gid).await;
    assert!(
        members.iter().any(|m| m["subject_id"] == uid.as_str()),
        "{members:?}"
    );
    let trail = audit(&app, g["id"].as_str().unwrap()).await;
    assert_eq!(trail[0]["group_id"], gid.as_str());
    assert_eq!(trail[0]["after"], json!({"group_member": true}));

    let r = created(
        revoke(&app, g["id"].as_str().unwrap(), json!({})).await,
        200,
    )
    .await;
    assert_eq!(r["revoke_outcome"], "removed");
    assert!(!in_group(&gid));
    assert!(
        inventory(&app, &conn, "group_member", &gid)
            .await
            .iter()
            .all(|m| m["subject_id"] != uid.as_str())
    );

    app.sandbox.state().reset_counters();
    assert_problem(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": uid, "group_id": scim,
                          "reason": "r"}),
        )
        .await,
        409,
        "scim_managed",
    )
    .await;
    assert_problem(
        grant(
            &app,
            json!({"connection_id": conn, "email": "nobody@new.io", "group_id": gid,
                          "reason": "r"}),
        )
        .await,
        409,
        "not_a_member",
    )
    .await;
    assert_eq!(
        writes(&app.sandbox, "POST /organization/groups/{group_id}/users"),
        0
    );
    let p = assert_problem(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": uid, "group_id": gid,
                          "project_id": "proj_x", "role": "member", "reason": "r"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "project_id");
}

async fn a_refused_revoke_keeps_the_grant_active(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let default = app
        .sandbox
        .state()
        .read(|org| org.default_project_id.clone());
    let uid = sandbox_person(&app.sandbox, "dee@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;
    let g = created(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": uid, "project_id": default,
                          "role": "member", "reason": "r"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(g["outcome"], "granted", "{g}");
    let id = g["id"].as_str().unwrap();
    let p = assert_problem(
        revoke(&app, id, json!({"reason": "leaving", "ticket": "T-1"})).await,
        409,
        "default_project",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("offboarding"), "{p}");
    let still = created(
        app.get(&format!("/v1/grants/{id}"), &writer(&app)).await,
        200,
    )
    .await;
    assert_eq!(still["status"], "active");
    assert_eq!(still["ended_by"], Value::Null);
    assert_eq!(still["end_reason"], Value::Null);
    assert_eq!(
        project_role(&app.sandbox, &default, &uid).as_deref(),
        Some("member")
    );
    assert_eq!(writes(&app.sandbox, REMOVE_MEMBER), 0);
    let trail = audit(&app, id).await;
    let last = trail.last().unwrap();
    assert_eq!(last["action"], "grant.revoked");
    assert_eq!(last["outcome"], "failed");
    assert_eq!(last["detail"]["code"], "default_project");
}

/// The connection's snapshot items of `kind` about `subject` (one person's access).
async fn inventory_of(app: &TestApp, connection: &str, kind: &str, subject: &str) -> Vec<Value> {
    let res = app
        .get(
            &format!("/v1/connections/{connection}/inventory/{kind}?subject_id={subject}"),
            &app.admin_token(),
        )
        .await;
    let page: Value = created(res, 200).await;
    page["data"].as_array().unwrap().clone()
}

async fn role_assignment_grants_at_both_levels(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let client = openai_client(&app.sandbox, KeyProfile::All, test_client_config());
    let pid = sandbox_project(&app.sandbox, "Research").await;
    let role = |name: &str| CreateRole {
        role_name: name.into(),
        permissions: vec!["api.groups.read".into()],
        description: None,
    };
    let org_role = client
        .create_role(&RoleScope::Organization, &role("auditor"))
        .await
        .unwrap()
        .data
        .id;
    let project_role = client
        .create_role(&RoleScope::Project(pid.clone()), &role("evaluator"))
        .await
        .unwrap()
        .data
        .id;
    let uid = sandbox_person(&app.sandbox, "rita@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;
    let holds = |project: Option<&str>, role: &str| {
        app.sandbox.state().read(|org| match project {
            None => org.user_roles.get(&uid).is_some_and(|t| t.contains(role)),
            Some(p) => org
                .project_user_roles
                .get(&(p.to_owned(), uid.clone()))
                .is_some_and(|t| t.contains(role)),
        })
    };

    // Organization level: assigned, shown at once, audited, and taken back by the revoke.
    let g = created(
        grant(
            &app,
            json!({"connection_id": conn, "email": "rita@corp.io", "role_id": org_role,
                   "reason": "quarterly audit", "ticket": "SEC-9"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(g["status"], "active", "{g}");
    assert_eq!(g["outcome"], "granted");
    assert_eq!(g["target"], json!({"type": "role", "role_id": org_role}));
    assert!(holds(None, &org_role));
    let shown = inventory_of(&app, &conn, "role_assignment", &uid).await;
    assert!(
        shown.iter().any(|i| i["role"] == "auditor"),
        "the assignment is in the inventory at once: {shown:?}"
    );
    let trail = audit(&app, g["id"].as_str().unwrap()).await;
    assert_eq!(trail[0]["before"], json!({"role_id": null}));
    assert_eq!(trail[0]["after"], json!({"role_id": org_role}));

    // The same role again: held already, and revoking that grant leaves it in place.
    let again = created(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": uid, "role_id": org_role, "reason": "r"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(again["outcome"], "already_held");
    let r = created(
        revoke(&app, again["id"].as_str().unwrap(), json!({})).await,
        200,
    )
    .await;
    assert_eq!(r["revoke_outcome"], "nothing_to_undo");
    assert!(holds(None, &org_role));

    let r = created(
        revoke(&app, g["id"].as_str().unwrap(), json!({"reason": "done"})).await,
        200,
    )
    .await;
    assert_eq!(r["revoke_outcome"], "removed");
    assert!(!holds(None, &org_role));
    assert!(
        inventory_of(&app, &conn, "role_assignment", &uid)
            .await
            .iter()
            .all(|i| i["role"] != "auditor")
    );

    // Project level, and a revoke of an assignment someone already removed.
    let g = created(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": uid, "project_id": pid,
                   "role_id": project_role, "reason": "evals"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(g["outcome"], "granted", "{g}");
    assert!(holds(Some(&pid), &project_role));
    client
        .unassign_role(
            &Assignee::ProjectUser {
                project_id: pid.clone(),
                user_id: uid.clone(),
            },
            &project_role,
        )
        .await
        .unwrap();
    let r = created(
        revoke(&app, g["id"].as_str().unwrap(), json!({})).await,
        200,
    )
    .await;
    assert_eq!(r["revoke_outcome"], "already_absent");

    // Refused or invalid: nothing is assigned.
    app.sandbox.state().reset_counters();
    assert_problem(
        grant(
            &app,
            json!({"connection_id": conn, "email": "stranger@new.io", "role_id": org_role,
                   "reason": "r"}),
        )
        .await,
        409,
        "not_a_member",
    )
    .await;
    let p = assert_problem(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": uid, "role_id": "role_doesnotexist",
                   "reason": "r"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("role_doesnotexist"),
        "{p}"
    );
    let p = assert_problem(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": uid, "role_id": org_role,
                   "role": "member", "reason": "r"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "role");
    assert_eq!(
        writes(&app.sandbox, "POST /organization/users/{user_id}/roles"),
        0
    );
}

async fn organization_role_grants_keep_an_owner(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let uid = sandbox_person(&app.sandbox, "olga@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;
    let org_role = |u: &str| {
        app.sandbox
            .state()
            .read(|org| org.users.get(u).map(|u| u.role.clone()))
    };

    let g = created(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": uid, "organization_role": "owner",
                   "reason": "on-call lead", "expires_in_seconds": 3600}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(g["outcome"], "role_changed", "{g}");
    assert_eq!(g["previous_role"], "reader");
    assert_eq!(org_role(&uid).as_deref(), Some("owner"));
    let shown = inventory_of(&app, &conn, "user", &uid).await;
    assert_eq!(shown[0]["data"]["role"], "owner", "{shown:?}");
    let trail = audit(&app, g["id"].as_str().unwrap()).await;
    assert_eq!(trail[0]["before"], json!({"organization_role": "reader"}));
    assert_eq!(trail[0]["after"], json!({"organization_role": "owner"}));

    let r = created(
        revoke(&app, g["id"].as_str().unwrap(), json!({})).await,
        200,
    )
    .await;
    assert_eq!(r["revoke_outcome"], "role_restored");
    assert_eq!(org_role(&uid).as_deref(), Some("reader"));
    let shown = inventory_of(&app, &conn, "user", &uid).await;
    assert_eq!(shown[0]["data"]["role"], "reader");

    // The organization's only owner cannot be made a reader.
    let owners: Vec<String> = app.sandbox.state().read(|org| {
        org.users
            .iter()
            .filter(|u| u.role == "owner")
            .map(|u| u.id.clone())
            .collect()
    });
    assert_eq!(owners.len(), 1, "the sandbox org starts with one owner");
    app.sandbox.state().reset_counters();
    assert_problem(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": owners[0], "organization_role": "reader",
                   "reason": "r"}),
        )
        .await,
        409,
        "last_owner",
    )
    .await;
    assert_eq!(org_role(&owners[0]).as_deref(), Some("owner"));
    assert_problem(
        grant(
            &app,
            json!({"connection_id": conn, "email": "nobody@new.io", "organization_role": "owner",
                   "reason": "r"}),
        )
        .await,
        409,
        "not_a_member",
    )
    .await;
    let p = assert_problem(
        grant(
            &app,
            json!({"connection_id": conn, "user_id": uid, "organization_role": "admin",
                   "reason": "r"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "organization_role");
    assert_eq!(
        writes(&app.sandbox, "POST /organization/users/{user_id}"),
        0
    );
}

async fn a_group_gets_project_access_and_roles(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let client = openai_client(&app.sandbox, KeyProfile::All, test_client_config());
    let pid = sandbox_project(&app.sandbox, "Shared").await;
    let gid = client.create_group("Data team").await.unwrap().data.id;
    let other = client.create_group("Admins").await.unwrap().data.id;
    let auditor = client
        .create_role(
            &RoleScope::Organization,
            &CreateRole {
                role_name: "auditor".into(),
                permissions: vec!["api.groups.read".into()],
                description: None,
            },
        )
        .await
        .unwrap()
        .data
        .id;
    let conn = synced_connection(&app, "org").await;
    let has_access = |g: &str| {
        app.sandbox
            .state()
            .read(|org| org.project_groups.get(&pid).is_some_and(|t| t.contains(g)))
    };

    // Project access for a group, by the role's name.
    let g = created(
        grant(
            &app,
            json!({"connection_id": conn, "grantee_group_id": gid, "project_id": pid,
                   "role": "member", "reason": "team project", "ticket": "SEC-11"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(g["status"], "active", "{g}");
    assert_eq!(g["outcome"], "granted");
    assert_eq!(g["grantee"]["group_id"], gid.as_str());
    assert!(has_access(&gid));
    let shown = inventory(&app, &conn, "project_group", &pid).await;
    assert!(
        shown.iter().any(|i| i["subject_id"] == gid.as_str()),
        "{shown:?}"
    );
    let trail = audit(&app, g["id"].as_str().unwrap()).await;
    assert_eq!(trail[0]["group_id"], gid.as_str());
    assert_eq!(trail[0]["project_id"], pid.as_str());

    let again = created(
        grant(
            &app,
            json!({"connection_id": conn, "grantee_group_id": gid, "project_id": pid,
                   "role": "member", "reason": "r"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(again["outcome"], "already_held", "{again}");

    let r = created(
        revoke(&app, g["id"].as_str().unwrap(), json!({})).await,
        200,
    )
    .await;
    assert_eq!(r["revoke_outcome"], "removed");
    assert!(!has_access(&gid));
    assert!(
        inventory(&app, &conn, "project_group", &pid)
            .await
            .iter()
            .all(|i| i["subject_id"] != gid.as_str())
    );

    // An organization role for a group.
    let held = |g: &str| {
        app.sandbox
            .state()
            .read(|org| org.group_roles.get(g).is_some_and(|t| t.contains(&auditor)))
    };
    let a = created(
        grant(
            &app,
            json!({"connection_id": conn, "grantee_group_id": gid, "role_id": auditor,
                   "reason": "audit season"}),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(a["outcome"], "granted", "{a}");
    assert!(held(&gid));
    let r = created(
        revoke(&app, a["id"].as_str().unwrap(), json!({})).await,
        200,
    )
    .await;
    assert_eq!(r["revoke_outcome"], "removed");
    assert!(!held(&gid));

    // Refusals, before any write.
    let owner_role = client
        .roles(&RoleScope::Project(pid.clone()), &Default::default())
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.name == "owner")
        .expect("a predefined owner project role")
        .id;
    client
        .add_project_group(&pid, &other, &owner_role)
        .await
        .unwrap();
    app.sandbox.state().reset_counters();
    let p = assert_problem(
        grant(
            &app,
            json!({"connection_id": conn, "grantee_group_id": other, "project_id": pid,
                   "role": "member", "reason": "r"}),
        )
        .await,
        409,
        "group_has_access",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("role_id"), "{p}");
    assert_problem(
        grant(
            &app,
            json!({"connection_id": conn, "grantee_group_id": gid, "project_id": pid,
                   "role": "no-such-role", "reason": "r"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        grant(
            &app,
            json!({"connection_id": conn, "grantee_group_id": "group_missing", "project_id": pid,
                   "role": "member", "reason": "r"}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    for (body, field) in [
        (
            json!({"connection_id": conn, "grantee_group_id": gid, "email": "a@corp.io",
                   "project_id": pid, "role": "member", "reason": "r"}),
            "grantee_group_id",
        ),
        (
            json!({"connection_id": conn, "grantee_group_id": gid, "group_id": other,
                   "reason": "r"}),
            "grantee_group_id",
        ),
    ] {
        let p = assert_problem(grant(&app, body).await, 422, "validation_failed").await;
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    assert_eq!(
        writes(
            &app.sandbox,
            "POST /organization/projects/{project_id}/groups"
        ),
        0
    );
}

async fn busy_waits_end_in_a_409_that_says_retry(backend: Backend) {
    let Some(app) = TestApp::spawn_with(
        backend,
        Options {
            grant_lock_wait: Duration::from_millis(300),
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Busy").await;
    let uid = sandbox_person(&app.sandbox, "bea@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;
    // OpenAI applies the write and holds its answer until released.
    app.sandbox.state().set_faults(Faults {
        hold_after_apply: Some(HoldAfterApply {
            endpoint: ADD_MEMBER.into(),
            times: 1,
        }),
        ..Faults::default()
    });
    let body = json!({"connection_id": conn, "user_id": uid, "project_id": pid,
                      "role": "member", "reason": "r"});
    let send = || {
        app.http
            .post(app.url("/v1/grants"))
            .bearer_auth(writer(&app))
            .header("idempotency-key", "busy-1")
            .json(&body)
            .send()
    };
    let others = async {
        while writes(&app.sandbox, ADD_MEMBER) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The same key while the first request runs: waited for, then 409.
        let started = std::time::Instant::now();
        let p = assert_problem(send().await.unwrap(), 409, "idempotency_key_in_progress").await;
        assert!(started.elapsed() >= Duration::from_millis(300), "{p}");
        // A revoke of the grant being written: waited for, then 409.
        let res = app
            .get(
                &format!("/v1/grants?status=pending&connection_id={conn}"),
                &writer(&app),
            )
            .await;
        let pending = created(res, 200).await;
        let id = pending["data"][0]["id"].as_str().unwrap().to_owned();
        assert_problem(revoke(&app, &id, json!({})).await, 409, "access_busy").await;
        app.sandbox.state().release_held();
        id
    };
    let (first, id) = tokio::join!(send(), others);
    let g = created(first.unwrap(), 201).await;
    assert_eq!(g["id"], id.as_str());
    assert_eq!(g["status"], "active");
    assert_eq!(writes(&app.sandbox, ADD_MEMBER), 1);
    // Once done, the key replays and the revoke goes through.
    let again = send().await.unwrap();
    assert!(again.headers().get("idempotent-replayed").is_some());
    let r = created(revoke(&app, &id, json!({})).await, 200).await;
    assert_eq!(r["revoke_outcome"], "removed");
}

crate::backend_tests!(
    busy_waits_end_in_a_409_that_says_retry,
    a_group_gets_project_access_and_roles,
    role_assignment_grants_at_both_levels,
    organization_role_grants_keep_an_owner,
    a_refused_revoke_keeps_the_grant_active,
    group_membership_grants_and_scim_refusal,
    grant_to_a_member_shows_at_once_and_revokes,
    held_access_is_left_alone_and_a_role_change_is_undone,
    revoking_access_already_gone_succeeds_and_says_so,
    a_non_member_is_invited_and_the_grant_follows_the_invite,
    refusals_are_typed_and_write_nothing,
    idempotency_keys_replay_and_refuse_reuse,
    concurrent_duplicates_make_one_upstream_write,
    time_bound_grants_expire_once_and_can_be_extended,
    a_write_whose_answer_is_lost_is_reconciled_not_repeated,
);
