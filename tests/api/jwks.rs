//! The JWKS cache against a real identity provider on loopback that can be made slow, made
//! to fail, and rotate its keys: known keys never wait for a fetch, fetches are shared and
//! their failures remembered, and removed keys stop verifying after the clamped max age.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openai_governor::config::{JwksSettings, JwtKeys};
use openai_governor::store::Backend;
use serde_json::{Value, json};

use crate::auth::AUDIENCE;
use crate::helpers::{Options, TestApp, assert_problem};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).expect("fixture")
}

/// What the identity provider serves, changeable while it runs.
#[derive(Clone)]
struct Idp {
    url: String,
    fetches: Arc<AtomicUsize>,
    serving: Arc<Mutex<Serving>>,
}

#[derive(Clone)]
struct Serving {
    keys: Vec<Value>,
    delay: Duration,
    fail: bool,
    cache_control: Option<&'static str>,
}

impl Idp {
    async fn start() -> Idp {
        let all: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
        let serving = Arc::new(Mutex::new(Serving {
            keys: all["keys"].as_array().unwrap().clone(),
            delay: Duration::ZERO,
            fail: false,
            cache_control: None,
        }));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (s, f) = (serving.clone(), fetches.clone());
        let router = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (s, f) = (s.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    let now = s.lock().unwrap().clone();
                    tokio::time::sleep(now.delay).await;
                    let mut response = if now.fail {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
                    } else {
                        axum::Json(json!({"keys": now.keys})).into_response()
                    };
                    if let Some(cc) = now.cache_control {
                        response
                            .headers_mut()
                            .insert("cache-control", axum::http::HeaderValue::from_static(cc));
                    }
                    response
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Idp {
            url,
            fetches,
            serving,
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn set(&self, change: impl FnOnce(&mut Serving)) {
        change(&mut self.serving.lock().unwrap());
    }

    /// Serves only the key with `kid`.
    fn only(&self, kid: &str) {
        let all: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
        let keys: Vec<Value> = all["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["kid"] == kid)
            .cloned()
            .collect();
        assert_eq!(keys.len(), 1);
        self.set(|s| s.keys = keys);
    }

    async fn app(&self, jwks: JwksSettings) -> TestApp {
        let options = Options {
            keys: Some(JwtKeys::Jwks {
                url: self.url.parse().unwrap(),
                algorithms: vec![Algorithm::RS256, Algorithm::ES256],
            }),
            audience: Some(AUDIENCE.into()),
            configure: Some(Box::new(move |c| c.jwt.jwks = jwks)),
            ..Options::default()
        };
        TestApp::spawn_with(Backend::Sqlite, options).await.unwrap()
    }
}

use axum::response::IntoResponse;

/// A token signed by the fixture key of `kid`'s type, claiming `kid`.
fn token(kid: &str) -> String {
    let (alg, key) = if kid.starts_with("rsa") {
        (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&fixture("rsa-private.pem")).unwrap(),
        )
    } else {
        (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&fixture("ec-private.pem")).unwrap(),
        )
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({"sub": "alice", "aud": AUDIENCE, "iat": now, "exp": now + 600,
                        "scope": "connections:read"});
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

async fn call(app: &TestApp, token: &str) -> reqwest::Response {
    app.get("/v1/connections", token).await
}

async fn refused(app: &TestApp, token: &str, detail_has: &str) {
    let body = assert_problem(call(app, token).await, 401, "unauthenticated").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(detail_has), "`{detail_has}` in `{detail}`");
}

fn settings(min: u64, max: u64, refetch: u64) -> JwksSettings {
    JwksSettings {
        min_ttl: Duration::from_secs(min),
        max_ttl: Duration::from_secs(max),
        refetch_interval: Duration::from_secs(refetch),
    }
}

#[tokio::test]
async fn a_known_key_never_waits_for_a_slow_fetch_and_waiters_share_one() {
    let idp = Idp::start().await;
    // The default refetch interval (10 s): the test waits it out once.
    let app = idp.app(settings(3600, 3600, 10)).await;
    assert_eq!(call(&app, &token("ec-1")).await.status(), 200);
    assert_eq!(idp.fetches(), 1);
    tokio::time::sleep(Duration::from_millis(10_200)).await;

    // The provider is now slow, and unknown `kid`s arrive together: one fetch for them all.
    idp.set(|s| s.delay = Duration::from_millis(2_000));
    let unknown = async {
        let calls = (0..5).map(|i| {
            let t = token(&format!("random-{i}"));
            let app = &app;
            async move { call(app, &t).await.status().as_u16() }
        });
        futures::future::join_all(calls).await
    };
    let known = async {
        while idp.fetches() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        let status = call(&app, &token("ec-1")).await.status();
        (status, started.elapsed())
    };
    let (statuses, (status, took)) = tokio::join!(unknown, known);
    assert_eq!(statuses, vec![401; 5]);
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_millis(1_000),
        "a known key waited {took:?} for the fetch in flight"
    );
    assert_eq!(idp.fetches(), 2, "the waiters shared one fetch");

    // More unknown `kid`s right after: remembered, no fetch, no wait.
    let started = Instant::now();
    refused(&app, &token("random-9"), "unknown").await;
    assert!(started.elapsed() < Duration::from_millis(1_000));
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn a_failed_fetch_is_remembered_for_the_backoff() {
    let idp = Idp::start().await;
    idp.set(|s| s.fail = true);
    let app = idp.app(settings(60, 3600, 1)).await;
    refused(&app, &token("ec-1"), "could not be fetched").await;
    assert_eq!(idp.fetches(), 1);
    // Within the backoff: refused at once, the provider is left alone.
    for _ in 0..5 {
        refused(&app, &token("ec-1"), "could not be fetched").await;
    }
    assert_eq!(idp.fetches(), 1, "failures are remembered");
    // After it, a fetch again; the provider is back.
    idp.set(|s| s.fail = false);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(call(&app, &token("ec-1")).await.status(), 200);
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn removed_keys_stop_verifying_after_the_clamped_max_age() {
    let idp = Idp::start().await;
    idp.only("ec-1");
    // The provider asks for a day; we keep a set at most 1 s before asking again.
    idp.set(|s| s.cache_control = Some("public, max-age=86400"));
    let app = idp.app(settings(1, 1, 1)).await;
    assert_eq!(call(&app, &token("ec-1")).await.status(), 200);
    assert_eq!(idp.fetches(), 1);

    // The provider rotates: ec-1 is removed, rsa-1 added.
    idp.only("rsa-1");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = call(&app, &token("ec-1")).await.status();
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the removed key still verifies");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    refused(&app, &token("ec-1"), "unknown").await;
    assert_eq!(call(&app, &token("rsa-1")).await.status(), 200);
    assert!(idp.fetches() <= 4, "{} fetches", idp.fetches());
}

#[tokio::test]
async fn a_short_max_age_is_raised_to_the_minimum() {
    let idp = Idp::start().await;
    idp.set(|s| s.cache_control = Some("no-store"));
    let app = idp.app(settings(3600, 3600, 10)).await;
    for _ in 0..10 {
        assert_eq!(call(&app, &token("ec-1")).await.status(), 200);
        assert_eq!(call(&app, &token("rsa-1")).await.status(), 200);
    }
    assert_eq!(idp.fetches(), 1);
}
