//! A real crash between a grant's intent and its outcome: the service binary runs as its own
//! process, OpenAI (the sandbox, in this process) applies the write but holds the answer, the
//! service is killed with SIGKILL, and a new process on the same database must bring the grant
//! to a true state without writing again. A second round hangs the write *before* it applies:
//! the new process must then make it, once.

use std::process::Stdio;
use std::time::{Duration, Instant};

use openai_governor::auth::{Scope, mint_hs256};
use openai_governor::openai::CreateProject;
use openai_governor::store::Backend;
use openai_governor_sandbox::{Faults, HoldAfterApply, KeyProfile, SandboxConfig};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{TestDb, openai_client, start_sandbox, test_client_config};

const BIN: &str = env!("CARGO_BIN_EXE_openai-governor");
const ADD_MEMBER: &str = "POST /organization/projects/{project_id}/users";

/// `serve` on port 0 with `env`; returns the process and its base URL.
async fn serve(env: &[(&str, String)]) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OG_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("serve printed nothing")
        .expect("read")
        .expect("serve ended");
    let base = line
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_owned();
    (child, base)
}

/// Polls the grant until `done` holds; returns it.
async fn wait_for(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let g: Value = http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if done(&g) {
            return g;
        }
        assert!(Instant::now() < deadline, "grant never settled: {g}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_killed_service_leaves_no_grant_half_done(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else {
        return;
    };
    let sandbox = start_sandbox(SandboxConfig::default()).await;
    let secret = SecretString::from("a-shared-secret-of-at-least-32-bytes!!".to_owned());
    let keys = openai_governor::crypto::KeyRing::generate_spec(1);
    let env = [
        ("DATABASE_URL", db.url.clone()),
        ("OG_ENCRYPTION_KEYS", keys.expose_secret().to_owned()),
        ("OG_JWT_HS256_SECRET", secret.expose_secret().to_owned()),
        (
            "OG_OPENAI_ALLOWED_BASE_URLS",
            sandbox.base_url().to_string(),
        ),
        ("OG_OPENAI_REQUEST_TIMEOUT", "60s".to_owned()),
        ("OG_GRANT_TICK", "100ms".to_owned()),
        // A write older than this is treated as interrupted.
        ("OG_GRANT_LEASE", "2s".to_owned()),
    ];
    let token = mint_hs256(
        &secret,
        "workflow",
        &Scope::ALL,
        Duration::from_secs(600),
        None,
        None,
    )
    .unwrap();
    let http = reqwest::Client::new();
    let client = openai_client(&sandbox, KeyProfile::All, test_client_config());
    let pid = client
        .create_project(&CreateProject {
            name: "Crash".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .data
        .id;
    let (held_user, hung_user) = sandbox.state().write(|org| {
        let now = org.now();
        (
            org.add_user("held", "held@corp.io", "reader", now).unwrap(),
            org.add_user("hung", "hung@corp.io", "reader", now).unwrap(),
        )
    });

    let (mut first, base) = serve(&env).await;
    let res = http
        .post(format!("{base}/v1/connections"))
        .bearer_auth(&token)
        .json(
            &json!({"name": "prod", "admin_key": sandbox.key(KeyProfile::All),
                      "base_url": sandbox.base_url().as_str()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let conn = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let grant_body = |user: &str| {
        json!({"connection_id": conn, "user_id": user, "project_id": pid, "role": "member",
               "reason": "crash test"})
    };

    // Round 1: OpenAI applies the write and holds its answer; the service dies waiting.
    sandbox.state().set_faults(Faults {
        hold_after_apply: Some(HoldAfterApply {
            endpoint: ADD_MEMBER.into(),
            times: 1,
        }),
        ..Faults::default()
    });
    let pending = tokio::spawn({
        let (http, url, token, body) = (
            http.clone(),
            format!("{base}/v1/grants"),
            token.clone(),
            grant_body(&held_user),
        );
        async move { http.post(url).bearer_auth(token).json(&body).send().await }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while sandbox
        .counters()
        .endpoints
        .get(ADD_MEMBER)
        .is_none_or(|c| c.held == 0)
    {
        assert!(
            Instant::now() < deadline,
            "the write never reached the sandbox"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.start_kill().unwrap(); // SIGKILL: no shutdown hook runs.
    first.wait().await.unwrap();
    assert!(
        pending.await.unwrap().is_err(),
        "the caller saw the connection drop"
    );
    sandbox.state().set_faults(Faults::default());

    // The intent is on record, the outcome is not.
    let store = db.store().await;
    let grants = store
        .list_grants(&openai_governor::domain::grants::GrantQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].status().as_str(), "pending");
    let id = grants[0].id;

    // Round 2 starts the service again: its worker reconciles once the lease runs out.
    let (mut second, base) = serve(&env).await;
    let url = format!("{base}/v1/grants/{id}");
    let g = wait_for(&http, &url, &token, |g| g["status"] != "pending").await;
    assert_eq!(g["status"], "active", "{g}");
    assert_eq!(g["outcome"], "granted");
    assert_eq!(
        sandbox.counters().requests(ADD_MEMBER),
        1,
        "exactly one upstream write"
    );
    let role = sandbox.state().read(|org| {
        org.project_users
            .get(&pid)
            .and_then(|m| m.get(&held_user))
            .map(|m| m.role.clone())
    });
    assert_eq!(role.as_deref(), Some("member"));
    let trail: Value = http
        .get(format!("{base}/v1/audit?grant_id={id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last = trail["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "grant.reconciled");
    assert_eq!(last["actor"], "openai-governor");

    // Round 3: the write hangs before OpenAI applies it; after the kill, the restarted
    // service finds nothing applied and writes it — one applied write in all.
    sandbox.state().set_faults(Faults {
        hang_rate: 1.0,
        only: Some(ADD_MEMBER.into()),
        ..Faults::default()
    });
    let before = sandbox.counters().requests(ADD_MEMBER);
    let pending = tokio::spawn({
        let (http, url, token, body) = (
            http.clone(),
            format!("{base}/v1/grants"),
            token.clone(),
            grant_body(&hung_user),
        );
        async move { http.post(url).bearer_auth(token).json(&body).send().await }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while sandbox.counters().requests(ADD_MEMBER) == before {
        assert!(
            Instant::now() < deadline,
            "the write never reached the sandbox"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    second.start_kill().unwrap();
    second.wait().await.unwrap();
    let _ = pending.await;
    sandbox.state().set_faults(Faults::default());
    let (_third, base) = serve(&env).await;
    let grants: Value = http
        .get(format!("{base}/v1/grants?status=pending"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = grants["data"][0]["id"]
        .as_str()
        .expect("a pending grant")
        .to_owned();
    let g = wait_for(&http, &format!("{base}/v1/grants/{id}"), &token, |g| {
        g["status"] != "pending"
    })
    .await;
    assert_eq!(g["status"], "active", "{g}");
    let role = sandbox.state().read(|org| {
        org.project_users
            .get(&pid)
            .and_then(|m| m.get(&hung_user))
            .map(|m| m.role.clone())
    });
    assert_eq!(role.as_deref(), Some("member"));
    assert_eq!(
        sandbox.counters().requests(ADD_MEMBER),
        before + 2,
        "the hung request, then one that applied"
    );
}

crate::backend_tests!(a_killed_service_leaves_no_grant_half_done);
