//! Limits on our own callers: a rate per caller (verified subject; peer IP without a valid
//! token), a cap on connection tests at once, a rate of sync requests per connection. Every
//! refusal is a 429 problem with `Retry-After`; `/healthz` is never limited.

use std::time::Duration;

use openai_governor::auth::Scope;
use openai_governor::config::CallerLimits;
use openai_governor::store::Backend;
use openai_governor_sandbox::{Faults, KeyProfile};
use serde_json::json;

use crate::helpers::{Options, TestApp, assert_problem};

async fn app_with(limits: CallerLimits) -> TestApp {
    let options = Options {
        configure: Some(Box::new(move |c| c.limits = limits)),
        ..Options::default()
    };
    TestApp::spawn_with(Backend::Sqlite, options).await.unwrap()
}

async fn assert_429(res: reqwest::Response, code: &str) -> u64 {
    let retry_after = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("Retry-After in whole seconds");
    assert!(retry_after >= 1);
    assert_problem(res, 429, code).await;
    retry_after
}

#[tokio::test]
async fn each_caller_has_its_own_rate() {
    let app = app_with(CallerLimits {
        per_second: 1,
        burst: 3,
        ..CallerLimits::OFF
    })
    .await;
    let alice = app.token("alice", &[Scope::ConnectionsRead]);
    for _ in 0..3 {
        assert_eq!(app.get("/v1/connections", &alice).await.status(), 200);
    }
    assert_429(app.get("/v1/connections", &alice).await, "rate_limited").await;
    // Another token of the same subject shares the bucket; another subject does not.
    let alice_again = app.token("alice", &[Scope::ConnectionsRead, Scope::AuditRead]);
    assert_429(app.get("/v1/audit", &alice_again).await, "rate_limited").await;
    let bob = app.token("bob", &[Scope::ConnectionsRead]);
    assert_eq!(app.get("/v1/connections", &bob).await.status(), 200);
    // Liveness is never limited.
    for _ in 0..20 {
        let res = app.http.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    // The bucket refills at the rate.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(app.get("/v1/connections", &alice).await.status(), 200);
}

#[tokio::test]
async fn callers_without_a_valid_token_are_limited_by_address() {
    let app = app_with(CallerLimits {
        per_second: 1,
        burst: 2,
        ..CallerLimits::OFF
    })
    .await;
    // Forged tokens with a different subject each are one caller: the peer address.
    for i in 0..2 {
        let res = app.get("/v1/connections", &format!("forged.{i}.x")).await;
        assert_problem(res, 401, "unauthenticated").await;
    }
    let res = app
        .http
        .get(app.url("/v1/connections"))
        .send()
        .await
        .unwrap();
    assert_429(res, "rate_limited").await;
    // A valid caller from the same address has its own bucket.
    let res = app.get("/v1/connections", &app.admin_token()).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn connection_tests_at_once_are_capped() {
    let app = app_with(CallerLimits {
        concurrent_connection_tests: 1,
        ..CallerLimits::OFF
    })
    .await;
    // Slow OpenAI, so that the tests overlap.
    app.sandbox.state().set_faults(Faults {
        latency_ms: 400,
        ..Faults::default()
    });
    let token = app.admin_token();
    let body = json!({"admin_key": app.sandbox.key(KeyProfile::All),
                      "base_url": app.sandbox.base_url().as_str()});
    let first = app.post("/v1/connections/test", &token, body.clone());
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.post("/v1/connections/test", &token, body.clone()).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status(), 200);
    assert_429(second, "too_many_connection_tests").await;
    // The permit is returned when the test ends.
    app.sandbox.state().set_faults(Faults::default());
    let res = app.post("/v1/connections/test", &token, body.clone()).await;
    assert_eq!(res.status(), 200);
    // A caller without a valid token takes no permit (and is refused as before).
    let res = app.post("/v1/connections/test", "bad.token.x", body).await;
    assert_problem(res, 401, "unauthenticated").await;
}

#[tokio::test]
async fn sync_requests_per_connection_are_capped() {
    let app = app_with(CallerLimits {
        syncs_per_minute: 2,
        ..CallerLimits::OFF
    })
    .await;
    let a = app
        .create_connection("a", app.sandbox.key(KeyProfile::All))
        .await;
    let b = app
        .create_connection("b", app.sandbox.key(KeyProfile::All))
        .await;
    let token = app.admin_token();
    let sync = |id: &serde_json::Value| {
        let path = format!("/v1/connections/{}/syncs", id["id"].as_str().unwrap());
        let token = token.clone();
        let app = &app;
        async move { app.post(&path, &token, json!({})).await }
    };
    for _ in 0..2 {
        let res = sync(&a).await;
        assert!(
            res.status().is_success() || res.status() == 409,
            "{}",
            res.status()
        );
    }
    let wait = assert_429(sync(&a).await, "too_many_sync_requests").await;
    assert!(wait <= 30, "one request every 30 s: {wait}");
    // The same id spelled in capitals is the same connection.
    let upper = format!(
        "/v1/connections/{}/syncs",
        a["id"].as_str().unwrap().to_uppercase()
    );
    assert_429(
        app.post(&upper, &token, json!({})).await,
        "too_many_sync_requests",
    )
    .await;
    // Another connection is not affected.
    let res = sync(&b).await;
    assert!(res.status().is_success(), "{}", res.status());
}
