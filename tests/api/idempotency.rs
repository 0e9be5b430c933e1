//! `Idempotency-Key` keeps only final answers: a refusal for want of scope, a busy access and
//! other "retry" answers release the key, and keys expire after `OG_IDEMPOTENCY_TTL`.

use std::time::Duration;

use openai_governor::auth::Scope;
use openai_governor::store::Backend;
use openai_governor_sandbox::{Faults, HoldAfterApply};
use serde_json::{Value, json};

use crate::helpers::{
    Options, TestApp, TestDb, assert_problem, sandbox_person, sandbox_project, synced_connection,
};

const ADD_MEMBER: &str = "POST /organization/projects/{project_id}/users";

async fn post_with_key(
    app: &TestApp,
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn replayed(res: &reqwest::Response) -> bool {
    res.headers().get("idempotent-replayed").is_some()
}

/// A grant on a connection that does not exist: a cheap, final 404.
fn missing_connection_grant() -> Value {
    json!({"connection_id": uuid::Uuid::now_v7().to_string(), "email": "a@corp.io",
           "project_id": "proj_x", "role": "member", "reason": "r"})
}

async fn a_refusal_for_want_of_scope_is_not_kept(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let body = missing_connection_grant();
    // The same subject, first with a token lacking the scope.
    let reader = app.token("wf@corp", &[Scope::InventoryRead]);
    let res = post_with_key(&app, "/v1/grants", &reader, "k-scope", &body).await;
    assert_problem(res, 403, "insufficient_scope").await;
    // Then with a good token and the same key: it runs.
    let writer = app.token("wf@corp", &[Scope::AccessWrite]);
    let res = post_with_key(&app, "/v1/grants", &writer, "k-scope", &body).await;
    assert!(!replayed(&res));
    let first = assert_problem(res, 404, "connection_not_found").await;
    // Its final answer is kept and replayed: the same problem, code and detail (it once came
    // back as a generic `not_found`), with the replay's own request id.
    let res = post_with_key(&app, "/v1/grants", &writer, "k-scope", &body).await;
    assert!(replayed(&res));
    let again = assert_problem(res, 404, "connection_not_found").await;
    assert_eq!(again["detail"], first["detail"]);
    assert_ne!(again["request_id"], first["request_id"]);
    // A no-scope token with a key that was used: refused for its scope, not replayed.
    let res = post_with_key(&app, "/v1/grants", &reader, "k-scope", &body).await;
    assert!(!replayed(&res));
    assert_problem(res, 403, "insufficient_scope").await;
    // The offboarding route too.
    let off = json!({"email": "a@corp.io", "all_connections": true, "reason": "left"});
    let res = post_with_key(&app, "/v1/offboardings", &reader, "k-off", &off).await;
    assert_problem(res, 403, "insufficient_scope").await;
    let res = post_with_key(&app, "/v1/offboardings", &writer, "k-off", &off).await;
    assert!(!replayed(&res));
    assert_eq!(res.status(), 200);
}

async fn a_busy_answer_is_not_kept(backend: Backend) {
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
    let uid = sandbox_person(&app.sandbox, "bo@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;
    let writer = app.token("wf@corp", &[Scope::AccessWrite]);
    // OpenAI applies the first grant's write and holds its answer until released.
    app.sandbox.state().set_faults(Faults {
        hold_after_apply: Some(HoldAfterApply {
            endpoint: ADD_MEMBER.into(),
            times: 1,
        }),
        ..Faults::default()
    });
    let body = json!({"connection_id": conn, "user_id": uid, "project_id": pid,
                      "role": "member", "reason": "r"});
    let first = post_with_key(&app, "/v1/grants", &writer, "g-1", &body);
    let second = async {
        while app.sandbox.counters().requests(ADD_MEMBER) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let res = app
            .get(
                &format!("/v1/grants?status=pending&connection_id={conn}"),
                &app.admin_token(),
            )
            .await;
        let page: Value = res.json().await.unwrap();
        let id = page["data"][0]["id"].as_str().unwrap().to_owned();
        // A revoke with a key while the grant is being written: 409 busy.
        let path = format!("/v1/grants/{id}/revoke");
        let res = post_with_key(&app, &path, &writer, "r-1", &json!({})).await;
        assert_problem(res, 409, "access_busy").await;
        app.sandbox.state().release_held();
        path
    };
    let (first, path) = tokio::join!(first, second);
    assert_eq!(first.status(), 201);
    // The retry with the same key runs, and its answer is the one kept.
    let res = post_with_key(&app, &path, &writer, "r-1", &json!({})).await;
    assert!(!replayed(&res));
    assert_eq!(res.status(), 200);
    let revoked: Value = res.json().await.unwrap();
    assert_eq!(revoked["revoke_outcome"], "removed");
    let res = post_with_key(&app, &path, &writer, "r-1", &json!({})).await;
    assert!(replayed(&res));
    assert_eq!(res.json::<Value>().await.unwrap(), revoked);
}

async fn keys_expire_after_the_ttl(backend: Backend) {
    let Some(app) = TestApp::spawn_with(
        backend,
        Options {
            configure: Some(Box::new(|c| c.idempotency_ttl = Duration::from_secs(1))),
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let writer = app.token("wf@corp", &[Scope::AccessWrite]);
    let body = missing_connection_grant();
    let res = post_with_key(&app, "/v1/grants", &writer, "k-ttl", &body).await;
    assert_eq!(res.status(), 404);
    let other = missing_connection_grant();
    let res = post_with_key(&app, "/v1/grants", &writer, "k-ttl", &other).await;
    assert_problem(res, 409, "idempotency_key_reused").await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    // Older than the TTL: a new request under the old key runs.
    let res = post_with_key(&app, "/v1/grants", &writer, "k-ttl", &other).await;
    assert!(!replayed(&res));
    assert_eq!(res.status(), 404);
}

async fn the_store_expires_and_purges_answered_keys(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let store = db.store().await;
    let t0 = chrono::Utc::now() - chrono::Duration::hours(2);
    let old = t0 - chrono::Duration::hours(1);
    let rec = store
        .idempotency_begin("s", "done", "POST /v1/grants", "fp1", t0, old)
        .await
        .unwrap();
    assert!(rec.fresh);
    store
        .idempotency_finish("s", "done", Some((201, "{}")))
        .await
        .unwrap();
    // An in-progress key of the same age is left to the abandoned-request rule.
    store
        .idempotency_begin("s", "running", "POST /v1/grants", "fp2", t0, old)
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let cutoff = now - chrono::Duration::hours(1);
    // Within the TTL the answer replays; past it, the key is new again.
    let rec = store
        .idempotency_begin("s", "done", "POST /v1/grants", "fp9", now, old)
        .await
        .unwrap();
    assert!(!rec.fresh);
    assert_eq!(rec.answer, Some((201, "{}".to_owned())));
    let rec = store
        .idempotency_begin("s", "done", "POST /v1/grants", "fp9", now, cutoff)
        .await
        .unwrap();
    assert!(rec.fresh);
    assert_eq!(rec.fingerprint, "fp9");
    store
        .idempotency_finish("s", "done", Some((200, "{}")))
        .await
        .unwrap();
    // The purge drops answered keys older than the cutoff, not running ones or newer ones.
    store
        .idempotency_begin("s", "old-2", "POST /v1/grants", "fp", t0, old)
        .await
        .unwrap();
    store
        .idempotency_finish("s", "old-2", Some((200, "{}")))
        .await
        .unwrap();
    assert_eq!(store.idempotency_purge(cutoff).await.unwrap(), 1);
    let rec = store
        .idempotency_begin("s", "running", "POST /v1/grants", "fp2", now, cutoff)
        .await
        .unwrap();
    assert!(!rec.fresh, "an in-progress key is not expired");
    let rec = store
        .idempotency_begin("s", "done", "POST /v1/grants", "fp9", now, cutoff)
        .await
        .unwrap();
    assert!(!rec.fresh, "a recent key is kept");
}

async fn a_request_cut_off_by_the_timeout_releases_its_key(backend: Backend) {
    let Some(app) = TestApp::spawn_with(
        backend,
        Options {
            grant_lock_wait: Duration::from_millis(300),
            configure: Some(Box::new(|c| c.request_timeout = Duration::from_millis(700))),
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let pid = sandbox_project(&app.sandbox, "Slow").await;
    let uid = sandbox_person(&app.sandbox, "sy@corp.io", "reader");
    let conn = synced_connection(&app, "org").await;
    let writer = app.token("wf@corp", &[Scope::AccessWrite]);
    // OpenAI holds the write's answer: the request times out while the grant is written.
    app.sandbox.state().set_faults(Faults {
        hold_after_apply: Some(HoldAfterApply {
            endpoint: ADD_MEMBER.into(),
            times: 1,
        }),
        ..Faults::default()
    });
    let body = json!({"connection_id": conn, "user_id": uid, "project_id": pid,
                      "role": "member", "reason": "r"});
    let res = post_with_key(&app, "/v1/grants", &writer, "t-1", &body).await;
    assert_problem(res, 408, "request_timeout").await;
    // The retry is not told the key is in progress forever: it runs, and finds the access
    // still held by the interrupted write (whose lease the reconciler will take over).
    let res = post_with_key(&app, "/v1/grants", &writer, "t-1", &body).await;
    assert!(!replayed(&res));
    assert_problem(res, 409, "access_busy").await;
    app.sandbox.state().release_held();
}

crate::backend_tests!(
    a_request_cut_off_by_the_timeout_releases_its_key,
    a_refusal_for_want_of_scope_is_not_kept,
    a_busy_answer_is_not_kept,
    keys_expire_after_the_ttl,
    the_store_expires_and_purges_answered_keys,
);
