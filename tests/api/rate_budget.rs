//! The OpenAI rate budget as the service uses it: what one replica learned from 429s is kept
//! in the store, so a restart or another replica syncs without drawing them again; and
//! interactive work goes before a sync's requests on the same connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use openai_governor::app;
use openai_governor::config::Config;
use openai_governor::crypto::KeyRing;
use openai_governor::openai::{ClientConfig, LearnedLimit, RateBudgetConfig};
use openai_governor::store::Backend;
use openai_governor_sandbox::{Faults, KeyProfile, OrgShape, RateLimit, SandboxConfig};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, openai_client, start_sandbox, test_client_config};
use crate::inventory::full_sync;

const MEMBERS: &str = "GET /organization/projects/{project_id}/users";

/// A second service on the app's database, with the same keys: another replica, or the same
/// one after a restart. Its base URL.
async fn replica(app: &TestApp, keys: &secrecy::SecretString) -> String {
    let mut config = Config::ephemeral(
        &app.db.url,
        app.jwt_secret.clone(),
        &[app.sandbox.base_url().as_str()],
    )
    .expect("config");
    config.key_ring = KeyRing::parse(keys).expect("keys");
    let built = app::build_with_store(config, app.db.store().await).expect("build replica");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind replica");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let router = app.served.wrap(built.router);
    tokio::spawn(async move {
        let _ = app::serve(listener, router, std::future::pending()).await;
    });
    base
}

/// A full sync through the service at `base`, finished.
async fn full_sync_at(app: &TestApp, base: &str, connection: &str) -> Value {
    let token = app.admin_token();
    let run: Value = app
        .http
        .post(format!(
            "{base}/v1/connections/{connection}/syncs?full=true"
        ))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("run");
    let url = format!("{base}/v1/syncs/{}", run["id"].as_str().expect("id"));
    for _ in 0..3000 {
        let run: Value = app
            .http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("poll")
            .json()
            .await
            .expect("run");
        if run["status"] != "running" {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the sync did not finish");
}

async fn a_learned_rate_survives_a_restart_and_reaches_another_replica(backend: Backend) {
    let keys = KeyRing::generate_spec(1);
    let ring = keys.expose_secret().to_owned();
    let options = Options {
        sandbox: SandboxConfig {
            org: OrgShape {
                users: 60,
                projects: 24,
                archived_share: 0.0,
                members_per_project: 3,
                ..OrgShape::small()
            },
            ..SandboxConfig::default()
        },
        configure: Some(Box::new(move |c: &mut Config| {
            c.key_ring = KeyRing::parse(&secrecy::SecretString::from(ring)).expect("keys");
        })),
        ..Options::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    let conn = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let id = conn["id"].as_str().unwrap();
    // Eight member lists a second: the first sync lists 24 projects' members and meets it.
    app.sandbox.state().set_faults(Faults {
        rate_limits: vec![RateLimit::per_template(MEMBERS, 8, 1)],
        ..Faults::default()
    });
    let before = app.sandbox.counters();
    let first = full_sync(&app, id).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let after = app.sandbox.counters();
    let throttled = after.status(429) - before.status(429);
    let requests = after.total - before.total;
    assert!(throttled > 0, "the limit was met: {after:?}");
    assert_eq!(first["stats"]["rate_limited"], throttled, "{first}");
    assert_eq!(first["stats"]["upstream_requests"], requests, "{first}");
    let time = &first["stats"]["time"];
    assert!(time["budget_wait_ms"].as_u64().unwrap() > 0, "{time}");
    assert!(time["upstream_ms"].as_u64().is_some(), "{time}");
    assert!(time["wall_ms"].as_u64().unwrap() > 0, "{time}");

    // It is in the store, for the template (24 paths), at no more than the limit.
    let store = app.db.store().await;
    let learned = store
        .learned_rates(id.parse().unwrap())
        .await
        .expect("learned rates");
    let members = learned
        .iter()
        .find(|r| r.scope == "GET /organization/projects/{}/users")
        .unwrap_or_else(|| panic!("{learned:?}"));
    assert!(!members.per_path, "{members:?}");
    assert!(members.requests <= 8, "{members:?}");
    assert!(members.window_ms >= 1000, "{members:?}");

    // Another replica (or this one restarted) on the same store: the same full sync, the
    // same requests but for the 429s, and none of them.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let other = replica(&app, &keys).await;
    let before = app.sandbox.counters();
    let second = full_sync_at(&app, &other, id).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let after = app.sandbox.counters();
    assert_eq!(after.status(429) - before.status(429), 0, "{after:?}");
    assert_eq!(after.total - before.total, requests - throttled);
    assert_eq!(second["stats"]["rate_limited"], 0, "{second}");
    assert_eq!(
        second["stats"]["time"]["limited_by"], "rate_budget",
        "{second}"
    );
}

async fn a_limit_told_in_headers_is_kept_without_drawing_a_429(backend: Backend) {
    let options = Options {
        sandbox: SandboxConfig {
            org: OrgShape {
                users: 60,
                projects: 30,
                archived_share: 0.0,
                members_per_project: 3,
                ..OrgShape::small()
            },
            ..SandboxConfig::default()
        },
        ..Options::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    let conn = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let id = conn["id"].as_str().unwrap();
    let before = app.sandbox.counters();
    let unlimited = full_sync(&app, id).await;
    assert_eq!(unlimited["status"], "succeeded", "{unlimited}");
    let requests = app.sandbox.counters().total - before.total;

    // 13 member lists a second, told in OpenAI's headers: more than a sync has in flight
    // at once (12), fewer than the 30 lists. Without the headers the budget learns it from
    // a 429 (the test above); with them it never oversteps: the same requests, no 429.
    app.sandbox.state().set_faults(Faults {
        rate_limits: vec![RateLimit {
            headers: true,
            ..RateLimit::per_template(MEMBERS, 13, 1)
        }],
        ..Faults::default()
    });
    let before = app.sandbox.counters();
    let limited = full_sync(&app, id).await;
    assert_eq!(limited["status"], "succeeded", "{limited}");
    let after = app.sandbox.counters();
    assert_eq!(after.status(429) - before.status(429), 0, "{after:?}");
    assert_eq!(after.total - before.total, requests);
    assert_eq!(limited["stats"]["rate_limited"], 0, "{limited}");
    // 30 lists at 13 a second: the third window.
    let wall = limited["stats"]["time"]["wall_ms"].as_u64().unwrap();
    assert!(wall >= 2000, "{limited}");
    assert_eq!(
        limited["stats"]["time"]["limited_by"], "rate_budget",
        "{limited}"
    );

    // What the headers told is in the store, for the template, as they told it.
    let learned = app
        .db
        .store()
        .await
        .learned_rates(id.parse().unwrap())
        .await
        .expect("learned rates");
    let members = learned
        .iter()
        .find(|r| r.scope == "GET /organization/projects/{}/users")
        .unwrap_or_else(|| panic!("{learned:?}"));
    assert!(!members.per_path, "{members:?}");
    assert_eq!(members.requests, 13, "{members:?}");
    assert!(
        members.window_ms > 900 && members.window_ms <= 1000,
        "{members:?}"
    );
}

crate::backend_tests!(
    a_learned_rate_survives_a_restart_and_reaches_another_replica,
    a_limit_told_in_headers_is_kept_without_drawing_a_429,
);

#[tokio::test]
async fn an_interactive_request_goes_before_the_queued_background_ones() {
    let sandbox = start_sandbox(SandboxConfig {
        org: OrgShape {
            users: 30,
            ..OrgShape::small()
        },
        ..SandboxConfig::default()
    })
    .await;
    let client = openai_client(
        &sandbox,
        KeyProfile::All,
        ClientConfig {
            rate: RateBudgetConfig::default(),
            ..test_client_config()
        },
    );
    // What an earlier sync learned: ten user reads a second.
    client.seed_limits(&[LearnedLimit {
        scope: "GET /organization/users/{}".into(),
        per_path: false,
        requests: 10,
        window: Duration::from_secs(1),
        throttled: 0,
        learned_at_ms: 1,
    }]);
    let ids: Vec<String> = sandbox
        .state()
        .read(|org| org.users.iter().map(|u| u.id.clone()).collect());
    // A grant read a user just now: background work leaves interactive work a tenth of each
    // window of this endpoint from now on.
    let started = std::time::Instant::now();
    client
        .get_user(&ids[0])
        .await
        .expect("first interactive read");
    let done = Arc::new(AtomicUsize::new(0));
    let background = client.background();
    let queued: Vec<_> = ids[1..21]
        .iter()
        .map(|id| {
            let (client, id, done) = (background.clone(), id.clone(), done.clone());
            tokio::spawn(async move {
                client.get_user(&id).await.expect("background read");
                done.fetch_add(1, Ordering::SeqCst)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The first window is spent (the grant's read and nine background ones): this one waits
    // for the second, where it has its place whatever the eleven queued background reads do.
    let asked = std::time::Instant::now();
    let interactive = {
        let (client, id, done) = (client.clone(), ids[21].clone(), done.clone());
        tokio::spawn(async move {
            client.get_user(&id).await.expect("interactive read");
            done.fetch_add(1, Ordering::SeqCst)
        })
    };
    let position = interactive.await.unwrap();
    let waited = asked.elapsed();
    for q in queued {
        q.await.unwrap();
    }
    let all = started.elapsed();
    // Background: nine, nine, then two in the third window (two seconds in); the
    // interactive read is answered in the second.
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
    assert!(all >= Duration::from_millis(1900), "{all:?}");
    assert!(
        position < 18,
        "the interactive read came {position}th of 21"
    );
    let counters = sandbox.counters();
    assert_eq!(counters.total, 22);
    assert_eq!(counters.status(429), 0);
}
