//! Issue 11, "access that outlives its record" and "the key and where it is sent": a
//! connection cannot be deleted from under live grants, is pinned to one organization, needs
//! a new test after a new key or base URL, and its key opens only for its base URL.

use std::sync::Arc;

use chrono::Utc;
use openai_governor::auth::Scope;
use openai_governor::crypto::{CURRENT_BINDING, KeyRing};
use openai_governor::domain::ConnectionId;
use openai_governor::service::OpenAiClients;
use openai_governor::store::{Backend, NewConnection};
use openai_governor_sandbox::{self as sandbox, KeyProfile, SandboxConfig};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::helpers::{
    DEAD_BASE_URL, Options, TestApp, TestDb, assert_problem, sandbox_person, sandbox_project,
    synced_connection, test_client_config,
};

const ADD_MEMBER: &str = "POST /organization/projects/{project_id}/users";

async fn body(res: reqwest::Response, status: u16) -> Value {
    let code = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert_eq!(code, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn project_role(app: &TestApp, project: &str, user: &str) -> Option<String> {
    app.sandbox.state().read(|org| {
        org.project_users
            .get(project)
            .and_then(|m| m.get(user))
            .map(|m| m.role.clone())
    })
}

/// Runs SQL against the test database as its owner would (behind the service's back).
async fn tamper(db: &TestDb, sql: &str, binds: &[&str]) {
    let at = Utc::now();
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.replace("$", "?")));
            for b in binds {
                q = q.bind(*b);
            }
            q.bind(at).execute(&mut conn).await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
            for b in binds {
                q = q.bind(*b);
            }
            q.bind(at).execute(&mut conn).await.unwrap();
        }
    }
}

async fn deleting_a_connection_never_strands_live_grants(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Payments").await;
    let uid = sandbox_person(&app.sandbox, "bob@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;
    let writer = app.token("workflow@corp", &[Scope::AccessWrite]);
    let g = body(
        app.post(
            "/v1/grants",
            &writer,
            json!({"connection_id": conn, "email": "bob@corp.io", "project_id": pid,
                   "role": "member", "reason": "incident", "expires_in_seconds": 60}),
        )
        .await,
        201,
    )
    .await;
    let gid = g["id"].as_str().unwrap().to_owned();
    assert_eq!(g["status"], "active");
    let path = format!("/v1/connections/{conn}");

    // Refused, naming the grant; nothing changes.
    let p = assert_problem(
        app.delete(&path, &app.admin_token()).await,
        409,
        "connection_has_live_grants",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains(&gid), "{p}");
    assert_eq!(project_role(&app, &pid, &uid).as_deref(), Some("member"));
    let still = body(app.get(&format!("/v1/grants/{gid}"), &writer).await, 200).await;
    assert_eq!(still["status"], "active");

    // Revoking first needs `access:write` too; without it nothing is revoked or deleted.
    let admin_only = app.token("ops", &[Scope::ConnectionsWrite]);
    assert_problem(
        app.delete(&format!("{path}?revoke_grants=true"), &admin_only)
            .await,
        403,
        "insufficient_scope",
    )
    .await;
    assert_eq!(project_role(&app, &pid, &uid).as_deref(), Some("member"));
    assert_eq!(
        body(app.get(&path, &app.admin_token()).await, 200).await["id"],
        conn.as_str()
    );

    // With it: the grant is revoked at OpenAI, then the connection goes.
    let both = app.token("ops", &[Scope::ConnectionsWrite, Scope::AccessWrite]);
    body(
        app.delete(&format!("{path}?revoke_grants=true"), &both)
            .await,
        204,
    )
    .await;
    assert_eq!(project_role(&app, &pid, &uid), None);
    assert_problem(
        app.get(&path, &app.admin_token()).await,
        404,
        "connection_not_found",
    )
    .await;
    // The grant and its audit entries outlive the connection.
    let ended = body(app.get(&format!("/v1/grants/{gid}"), &writer).await, 200).await;
    assert_eq!(ended["status"], "revoked");
    assert_eq!(ended["connection_id"], conn.as_str());
    let trail = body(
        app.get(&format!("/v1/audit?grant_id={gid}"), &app.admin_token())
            .await,
        200,
    )
    .await;
    let actions: Vec<&str> = trail["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"grant.created"), "{actions:?}");
    assert!(actions.contains(&"grant.revoked"), "{actions:?}");
}

async fn a_new_key_or_url_must_pass_a_test_at_the_pinned_organization(backend: Backend) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = sandbox::start(
        SandboxConfig {
            seed: 4242,
            ..SandboxConfig::default()
        },
        listener,
    )
    .await
    .unwrap();
    let other_url = other.base_url().to_string();
    let Some(app) = TestApp::spawn_with(
        backend,
        Options {
            extra_base_urls: vec![other_url.clone()],
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    assert_ne!(other.organization_id(), app.sandbox.organization_id());
    let admin = app.admin_token();
    let c = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let id = c["id"].as_str().unwrap();
    let path = format!("/v1/connections/{id}");
    assert_eq!(c["test_required"], false);
    let report = body(
        app.post(&format!("{path}/test"), &admin, json!({})).await,
        200,
    )
    .await;
    assert_eq!(report["status"], "ok", "{report}");
    let pinned = body(app.get(&path, &admin).await, 200).await;
    assert_eq!(pinned["organization_id"], app.sandbox.organization_id());

    // Pointing elsewhere needs the key again: the stored one is sealed for this URL.
    let p = assert_problem(
        app.patch(&path, &admin, json!({"base_url": other_url}))
            .await,
        409,
        "admin_key_required",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("admin key"), "{p}");

    // Another organization's key and URL: accepted, but nothing runs until a test passes.
    let swapped = body(
        app.patch(
            &path,
            &admin,
            json!({"base_url": other_url, "admin_key": other.key(KeyProfile::All)}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(swapped["test_required"], true);
    assert_problem(
        app.post(&format!("{path}/syncs"), &admin, json!({})).await,
        409,
        "connection_test_required",
    )
    .await;
    let pid = sandbox_project(&other, "Elsewhere").await;
    sandbox_person(&other, "eve@corp.io", "reader");
    let writer = app.token("workflow@corp", &[Scope::AccessWrite]);
    assert_problem(
        app.post(
            "/v1/grants",
            &writer,
            json!({"connection_id": id, "email": "eve@corp.io", "project_id": pid,
                   "role": "owner", "reason": "x"}),
        )
        .await,
        409,
        "connection_test_required",
    )
    .await;
    assert_eq!(other.request_count(ADD_MEMBER), 0);
    assert_eq!(other.request_count("GET /organization/users"), 0);

    // The test reaches the other organization: a failure, and the connection stays blocked.
    let report = body(
        app.post(&format!("{path}/test"), &admin, json!({})).await,
        200,
    )
    .await;
    assert_eq!(report["status"], "failed", "{report}");
    assert_eq!(report["organization_matches"], false);
    let after = body(app.get(&path, &admin).await, 200).await;
    assert_eq!(after["test_required"], true);
    assert_eq!(after["organization_id"], app.sandbox.organization_id());
    assert_problem(
        app.post(&format!("{path}/syncs"), &admin, json!({})).await,
        409,
        "connection_test_required",
    )
    .await;
    // Nor can the expectation be moved to the other organization.
    assert_problem(
        app.patch(
            &path,
            &admin,
            json!({"expected_organization_id": other.organization_id()}),
        )
        .await,
        409,
        "organization_pinned",
    )
    .await;

    // Back to a key of the pinned organization: the test passes and syncs run again.
    body(
        app.patch(
            &path,
            &admin,
            json!({"base_url": app.sandbox.base_url().as_str(),
                   "admin_key": app.sandbox.key(KeyProfile::All)}),
        )
        .await,
        200,
    )
    .await;
    let report = body(
        app.post(&format!("{path}/test"), &admin, json!({})).await,
        200,
    )
    .await;
    assert_eq!(report["status"], "ok", "{report}");
    let run = crate::inventory::sync(&app, id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
}

async fn every_answer_must_come_from_the_pinned_organization(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin_token();
    // Never tested: the first successful sync pins the organization it reached.
    let conn = synced_connection(&app, "org").await;
    let path = format!("/v1/connections/{conn}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let c = body(app.get(&path, &admin).await, 200).await;
        if c["organization_id"] == app.sandbox.organization_id() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never pinned: {c}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // The stored pin names another organization than OpenAI answers for (as when a key's
    // organization changed behind our back): syncs fail and grants write nothing.
    tamper(
        &app.db,
        "UPDATE connections SET organization_id = 'org-elsewhere', updated_at = $2 \
         WHERE connection_id = $1",
        &[&conn],
    )
    .await;
    let run = crate::inventory::sync(&app, &conn).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run.to_string().contains("org-elsewhere"), "{run}");

    let pid = sandbox_project(&app.sandbox, "Payments").await;
    sandbox_person(&app.sandbox, "bob@corp.io", "reader");
    let writer = app.token("workflow@corp", &[Scope::AccessWrite]);
    let p = assert_problem(
        app.post(
            "/v1/grants",
            &writer,
            json!({"connection_id": conn, "email": "bob@corp.io", "project_id": pid,
                   "role": "member", "reason": "x"}),
        )
        .await,
        409,
        "organization_mismatch",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("pinned"), "{p}");
    assert_eq!(app.sandbox.request_count(ADD_MEMBER), 0);
}

async fn a_stored_key_opens_only_for_its_allowed_base_url(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin_token();
    let c = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let id = c["id"].as_str().unwrap();
    // The row's base URL is changed behind the service's back (to another allowed URL):
    // the sealed key no longer opens, so it is sent nowhere.
    tamper(
        &app.db,
        "UPDATE connections SET base_url = $2, updated_at = $3 WHERE connection_id = $1",
        &[id, DEAD_BASE_URL],
    )
    .await;
    assert_problem(
        app.post(&format!("/v1/connections/{id}/syncs"), &admin, json!({}))
            .await,
        500,
        "encryption_key_unavailable",
    )
    .await;
    assert_problem(
        app.post(&format!("/v1/connections/{id}/test"), &admin, json!({}))
            .await,
        500,
        "encryption_key_unavailable",
    )
    .await;
}

/// The allowlist is checked whenever a client is built (an operator who removes a URL stops
/// keys from going there), and rows sealed before the base URL joined the associated data
/// are re-sealed with it.
async fn clients_recheck_the_allowlist_and_legacy_keys_are_rebound(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let store = db.store().await;
    let ring = Arc::new(KeyRing::parse(&KeyRing::generate_spec(1)).unwrap());
    let id = ConnectionId::new();
    let base: url::Url = "http://127.0.0.1:9/v1".parse().unwrap();
    let key = SecretString::from("sk-admin-legacy-row-0000".to_owned());
    let created = store
        .insert_connection(NewConnection {
            id,
            name: "legacy".into(),
            base_url: base.clone(),
            expected_organization_id: None,
            key_hint: "sk-admin-…0000".into(),
            sealed_key: ring.seal_legacy(id, &key).unwrap(),
            at: Utc::now(),
            by: "test".into(),
        })
        .await
        .unwrap();
    let report = openai_governor::service::rekey::upgrade_bindings(store.as_ref(), &ring)
        .await
        .unwrap();
    assert_eq!(report.resealed, 1, "{report:?}");
    let stored = store.sealed_key(id).await.unwrap();
    assert_eq!(stored.sealed.binding, CURRENT_BINDING);
    assert_eq!(
        ring.open(id, &base, &stored.sealed)
            .unwrap()
            .expose_secret(),
        key.expose_secret()
    );
    assert!(
        ring.open(
            id,
            &"http://127.0.0.1:10/v1".parse().unwrap(),
            &stored.sealed
        )
        .is_err()
    );
    // A second run has nothing left to do.
    let again = openai_governor::service::rekey::upgrade_bindings(store.as_ref(), &ring)
        .await
        .unwrap();
    assert_eq!(again.examined, 0);

    let refused = OpenAiClients::new(store.clone(), ring.clone(), test_client_config(), vec![]);
    let err = refused.client(&created).await.unwrap_err();
    assert_eq!(err.code.as_str(), "base_url_not_allowed", "{}", err.message);
    let allowed = OpenAiClients::new(store.clone(), ring, test_client_config(), vec![base]);
    assert!(allowed.client(&created).await.is_ok());
}

async fn poll_offboarding(app: &TestApp, location: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let run = body(app.get(location, &app.admin_token()).await, 200).await;
        if run["status"] != "running" {
            return run;
        }
        assert!(std::time::Instant::now() < deadline, "still running: {run}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn in_org(app: &TestApp, user: &str) -> bool {
    app.sandbox.state().read(|org| org.users.contains(user))
}

/// A long offboarding answers 202 with a record to poll; one whose caller goes away mid-way
/// still finishes, with its audit entries and its grants revoked.
async fn an_offboarding_outlives_its_caller(backend: Backend) {
    let Some(app) = TestApp::spawn_with(
        backend,
        Options {
            offboarding_wait: std::time::Duration::from_secs(1),
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Payments").await;
    let alice = sandbox_person(&app.sandbox, "alice@corp.io", "reader");
    let bob = sandbox_person(&app.sandbox, "bob@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;
    let writer = app.token("workflow@corp", &[Scope::AccessWrite]);
    let g = body(
        app.post(
            "/v1/grants",
            &writer,
            json!({"connection_id": conn, "email": "bob@corp.io", "project_id": pid,
                   "role": "member", "reason": "temp"}),
        )
        .await,
        201,
    )
    .await;
    // Every OpenAI answer now takes 400 ms: an offboarding (three rounds of calls or more) takes
    // longer than the 1 s wait.
    app.sandbox
        .state()
        .set_faults(openai_governor_sandbox::Faults {
            latency_ms: 400,
            ..Default::default()
        });

    let res = app
        .post(
            "/v1/offboardings",
            &writer,
            json!({"email": "alice@corp.io", "connection_id": conn, "reason": "left"}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let run = body(res, 202).await;
    assert_eq!(run["status"], "running");
    assert_eq!(
        location,
        format!("/v1/offboardings/{}", run["id"].as_str().unwrap())
    );
    let done = poll_offboarding(&app, &location).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["result"]["connections"][0]["status"], "removed",
        "{done}"
    );
    assert!(!in_org(&app, &alice));

    // The caller gives up after 500 ms, before the wait is over: the work goes on.
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(500))
        .build()
        .unwrap();
    let dropped = impatient
        .post(app.url("/v1/offboardings"))
        .bearer_auth(&writer)
        .json(&json!({"email": "bob@corp.io", "connection_id": conn, "reason": "left"}))
        .send()
        .await;
    assert!(dropped.is_err(), "the request should have timed out");
    // The intent was recorded before anything was sent; it names the offboarding.
    let started = body(
        app.get(
            "/v1/audit?action=offboarding.started&email=bob@corp.io",
            &app.admin_token(),
        )
        .await,
        200,
    )
    .await;
    let id = started["data"][0]["detail"]["offboarding_id"]
        .as_str()
        .expect("an offboarding.started entry")
        .to_owned();
    let done = poll_offboarding(&app, &format!("/v1/offboardings/{id}")).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(!in_org(&app, &bob));
    let revoked = body(
        app.get(
            &format!("/v1/grants/{}", g["id"].as_str().unwrap()),
            &writer,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    let trail = body(
        app.get(
            "/v1/audit?action=user.offboarded&email=bob@corp.io",
            &app.admin_token(),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(trail["data"][0]["detail"]["offboarding_id"], id.as_str());

    // Malformed and unknown ids, and callers without the scope.
    assert_problem(
        app.get("/v1/offboardings/nope", &app.admin_token()).await,
        400,
        "invalid_parameter",
    )
    .await;
    assert_problem(
        app.get(
            &format!("/v1/offboardings/{}", uuid::Uuid::now_v7()),
            &app.admin_token(),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    let reader = app.token("reader", &[Scope::InventoryRead]);
    assert_problem(
        app.get(&format!("/v1/offboardings/{id}"), &reader).await,
        403,
        "insufficient_scope",
    )
    .await;
}

/// An offboarding whose process died mid-way (its record `running`, its lease run out) is
/// resumed by the worker, as its requester, and finishes on record.
async fn an_interrupted_offboarding_is_resumed(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let carol = sandbox_person(&app.sandbox, "carol@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;
    let id = uuid::Uuid::now_v7().to_string();
    let at = Utc::now() - chrono::Duration::minutes(10);
    let run = openai_governor::domain::offboarding::OffboardingRun {
        id: id.clone(),
        status: openai_governor::domain::offboarding::RunStatus::Running,
        requested_by: "hr-portal".into(),
        email: Some("carol@corp.io".into()),
        user_id: None,
        connection_ids: vec![conn.parse().unwrap()],
        delete_api_keys: false,
        reason: "left".into(),
        ticket: Some("HR-9".into()),
        created_at: at,
        finished_at: None,
        result: None,
        error: None,
    };
    // What a process that died right after recording the intent leaves behind.
    app.state
        .store
        .insert_offboarding(&run, "a-dead-process", at + chrono::Duration::minutes(2))
        .await
        .unwrap();
    assert!(in_org(&app, &carol));
    // A live lease is left alone.
    let fresh = openai_governor::domain::offboarding::OffboardingRun {
        id: uuid::Uuid::now_v7().to_string(),
        email: Some("dan@corp.io".into()),
        ..run.clone()
    };
    app.state
        .store
        .insert_offboarding(
            &fresh,
            "a-live-process",
            Utc::now() + chrono::Duration::minutes(2),
        )
        .await
        .unwrap();

    assert_eq!(app.state.offboarding.work_once().await.unwrap(), 1);
    assert!(!in_org(&app, &carol));
    let done = body(
        app.get(&format!("/v1/offboardings/{id}"), &app.admin_token())
            .await,
        200,
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["result"]["connections"][0]["status"], "removed",
        "{done}"
    );
    let trail = body(
        app.get(
            "/v1/audit?action=user.offboarded&email=carol@corp.io",
            &app.admin_token(),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(trail["data"][0]["actor"], "hr-portal", "{trail}");
    assert_eq!(trail["data"][0]["detail"]["offboarding_id"], id.as_str());
    let untouched = body(
        app.get(
            &format!("/v1/offboardings/{}", fresh.id),
            &app.admin_token(),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(untouched["status"], "running");
    // Nothing is left to resume.
    assert_eq!(app.state.offboarding.work_once().await.unwrap(), 0);
}

/// A grant racing the delete of its connection: either the grant lands and the delete is
/// refused, or the delete lands and the grant is refused; never a live grant on a deleted
/// connection.
async fn a_grant_racing_a_delete_never_outlives_its_record(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Payments").await;
    sandbox_person(&app.sandbox, "race@corp.io", "reader");
    let writer = app.token("workflow@corp", &[Scope::AccessWrite]);
    let admin = app.admin_token();
    let (mut granted, mut deleted) = (0, 0);
    for i in 0..12 {
        let c = app
            .create_connection(&format!("race-{i}"), app.sandbox.key(KeyProfile::All))
            .await;
        let id = c["id"].as_str().unwrap().to_owned();
        let path = format!("/v1/connections/{id}");
        let grant = app.post(
            "/v1/grants",
            &writer,
            json!({"connection_id": id, "email": "race@corp.io", "project_id": pid,
                   "role": "member", "reason": "race"}),
        );
        let delete = async {
            // Let the grant get under way about half the time.
            if i % 2 == 1 {
                tokio::time::sleep(std::time::Duration::from_millis(i as u64)).await;
            }
            app.delete(&path, &admin).await
        };
        let (g, d) = tokio::join!(grant, delete);
        let (gs, ds) = (g.status().as_u16(), d.status().as_u16());
        let g: Value = g.json().await.unwrap();
        match (gs, ds) {
            (201, 409) => {
                granted += 1;
                let gid = g["id"].as_str().unwrap();
                body(
                    app.post(&format!("/v1/grants/{gid}/revoke"), &writer, json!({}))
                        .await,
                    200,
                )
                .await;
                body(app.delete(&path, &admin).await, 204).await;
            }
            (404, 204) => {
                deleted += 1;
                assert_eq!(g["code"], "connection_not_found", "{g}");
            }
            other => panic!("grant {other:?}: {g}"),
        }
        // Nothing live is left on a deleted connection.
        let live = body(
            app.get("/v1/grants?status=active&limit=200", &writer).await,
            200,
        )
        .await;
        assert!(live["data"].as_array().unwrap().is_empty(), "{live}");
    }
    eprintln!("race outcomes: {granted} granted first, {deleted} deleted first");
    assert_eq!(granted + deleted, 12);
}

crate::backend_tests!(
    a_grant_racing_a_delete_never_outlives_its_record,
    an_interrupted_offboarding_is_resumed,
    an_offboarding_outlives_its_caller,
    deleting_a_connection_never_strands_live_grants,
    a_new_key_or_url_must_pass_a_test_at_the_pinned_organization,
    every_answer_must_come_from_the_pinned_organization,
    a_stored_key_opens_only_for_its_allowed_base_url,
    clients_recheck_the_allowlist_and_legacy_keys_are_rebound,
);
