//! Caller authentication: every way a token can be wrong is a 401 problem with
//! `WWW-Authenticate: Bearer`; a valid token without the scope is a 403.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openai_governor::config::JwtKeys;
use openai_governor::store::Backend;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, assert_problem};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).expect("fixture")
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn claims(extra: Value) -> Value {
    let mut c = json!({"sub": "alice", "exp": now() + 600, "scope": "connections:read"});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.clone(), v.clone());
            }
        }
    }
    c
}

/// The audience asymmetric-key tests configure (required with a public key or JWKS).
pub const AUDIENCE: &str = "openai-governor";

/// Claims for the asymmetric-key tests: with the configured audience.
fn aud_claims(extra: Value) -> Value {
    let mut c = claims(extra);
    c["aud"] = AUDIENCE.into();
    c
}

fn hs(secret: &[u8], alg: Algorithm, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
}

async fn status_of(app: &TestApp, token: &str) -> reqwest::Response {
    app.get("/v1/connections", token).await
}

async fn assert_401(app: &TestApp, token: &str, detail_has: &str) {
    let res = status_of(app, token).await;
    assert_eq!(
        res.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let body = assert_problem(res, 401, "unauthenticated").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(detail_has),
        "expected `{detail_has}` in `{detail}`"
    );
}

#[tokio::test]
async fn hs256_failure_cases() {
    let options = Options {
        issuer: Some("https://idp.test".into()),
        audience: Some("openai-governor".into()),
        ..Options::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let secret = app.jwt_secret.expose_secret().as_bytes().to_vec();
    let good = |extra: Value| {
        let mut c = claims(json!({"iss": "https://idp.test", "aud": "openai-governor"}));
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };

    // The valid token works.
    let ok = hs(&secret, Algorithm::HS256, &good(json!({})));
    assert_eq!(status_of(&app, &ok).await.status(), 200);

    // No header, another scheme, an empty bearer, garbage.
    let res = app
        .http
        .get(app.url("/v1/connections"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthenticated").await;
    let res = app
        .http
        .get(app.url("/v1/connections"))
        .header("authorization", format!("Basic {}", B64.encode("a:b")))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthenticated").await;
    assert_401(&app, "not.a.jwt", "malformed").await;

    assert_401(
        &app,
        &hs(&secret, Algorithm::HS256, &good(json!({"exp": now() - 10}))),
        "expired",
    )
    .await;
    assert_401(
        &app,
        &hs(
            b"another-secret-another-secret-123",
            Algorithm::HS256,
            &good(json!({})),
        ),
        "signature",
    )
    .await;
    assert_401(
        &app,
        &hs(&secret, Algorithm::HS384, &good(json!({}))),
        "algorithm",
    )
    .await;
    assert_401(
        &app,
        &hs(
            &secret,
            Algorithm::HS256,
            &good(json!({"iss": "https://evil.test"})),
        ),
        "issuer",
    )
    .await;
    assert_401(
        &app,
        &hs(&secret, Algorithm::HS256, &good(json!({"iss": null}))),
        "iss",
    )
    .await;
    assert_401(
        &app,
        &hs(
            &secret,
            Algorithm::HS256,
            &good(json!({"aud": "someone-else"})),
        ),
        "audience",
    )
    .await;
    assert_401(
        &app,
        &hs(&secret, Algorithm::HS256, &good(json!({"aud": null}))),
        "aud",
    )
    .await;
    assert_401(
        &app,
        &hs(&secret, Algorithm::HS256, &good(json!({"exp": null}))),
        "exp",
    )
    .await;
    assert_401(
        &app,
        &hs(&secret, Algorithm::HS256, &good(json!({"sub": null}))),
        "sub",
    )
    .await;
    assert_401(
        &app,
        &hs(
            &secret,
            Algorithm::HS256,
            &good(json!({"nbf": now() + 600})),
        ),
        "not valid yet",
    )
    .await;

    // `alg: none`, signed or not.
    let unsigned = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(good(json!({})).to_string())
    );
    assert_401(&app, &unsigned, "malformed").await;
    let forged = format!("{unsigned}{}", B64.encode("sig"));
    assert_401(&app, &forged, "malformed").await;

    // Valid token, no scope for the operation: 403.
    let no_scope = hs(
        &secret,
        Algorithm::HS256,
        &good(json!({"scope": "inventory:read"})),
    );
    let body = assert_problem(status_of(&app, &no_scope).await, 403, "insufficient_scope").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("connections:read")
    );

    // Scopes also come from `scp` and `permissions` arrays.
    for claim in ["scp", "permissions"] {
        let t = hs(
            &secret,
            Algorithm::HS256,
            &good(json!({"scope": null, claim: ["connections:read"]})),
        );
        assert_eq!(status_of(&app, &t).await.status(), 200, "{claim}");
    }
}

#[tokio::test]
async fn rs256_with_a_pem_key_and_no_key_confusion() {
    let pem = fixture("rsa-public.pem");
    let options = Options {
        keys: Some(JwtKeys::Pem {
            algorithm: Algorithm::RS256,
            pem: pem.clone(),
        }),
        audience: Some(AUDIENCE.into()),
        ..Options::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let key = EncodingKey::from_rsa_pem(&fixture("rsa-private.pem")).unwrap();
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &aud_claims(json!({})), &key).unwrap();
    assert_eq!(status_of(&app, &token).await.status(), 200);
    // The classic confusion attack: HS256 "signed" with the public key as the secret.
    assert_401(
        &app,
        &hs(&pem, Algorithm::HS256, &aud_claims(json!({}))),
        "algorithm",
    )
    .await;
    // An ES256 token is not accepted where RS256 is configured.
    let ec = EncodingKey::from_ec_pem(&fixture("ec-private.pem")).unwrap();
    let token =
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &aud_claims(json!({})), &ec).unwrap();
    assert_401(&app, &token, "algorithm").await;
}

#[tokio::test]
async fn es256_and_rs256_from_a_jwks_url() {
    // A JWKS endpoint on loopback that counts its fetches.
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetches.clone();
    let jwks: Value = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    let idp = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, idp).await });

    let options = Options {
        keys: Some(JwtKeys::Jwks {
            url: url.parse().unwrap(),
            algorithms: vec![Algorithm::RS256, Algorithm::ES256],
        }),
        audience: Some(AUDIENCE.into()),
        ..Options::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let sign = |alg, kid: &str, pem: &str| {
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&fixture(pem)).unwrap(),
            _ => EncodingKey::from_rsa_pem(&fixture(pem)).unwrap(),
        };
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &aud_claims(json!({})), &key).unwrap()
    };
    let es = sign(Algorithm::ES256, "ec-1", "ec-private.pem");
    assert_eq!(status_of(&app, &es).await.status(), 200);
    let rs = sign(Algorithm::RS256, "rsa-1", "rsa-private.pem");
    assert_eq!(status_of(&app, &rs).await.status(), 200);
    assert_eq!(
        fetches.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "keys are cached"
    );
    // A token claiming one key's id but signed with the other key.
    let mixed = sign(Algorithm::ES256, "rsa-1", "ec-private.pem");
    assert_401(&app, &mixed, "algorithm").await;
    // Unknown kid: one refresh at most, then refused.
    let unknown = sign(Algorithm::ES256, "ec-404", "ec-private.pem");
    assert_401(&app, &unknown, "unknown").await;
    assert_401(&app, &unknown, "unknown").await;
    assert!(
        fetches.load(std::sync::atomic::Ordering::SeqCst) <= 2,
        "refresh is rate-limited"
    );
    // An HS256 token is refused outright.
    assert_401(
        &app,
        &hs(
            b"whatever-whatever-whatever-123456",
            Algorithm::HS256,
            &aud_claims(json!({})),
        ),
        "algorithm",
    )
    .await;
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    settings: openai_governor::config::Settings,
}

fn load(args: &[&str]) -> Result<openai_governor::config::Config, String> {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/gov.db", dir.path().display());
    let mut argv = vec!["test", "--database-url", &url];
    argv.extend_from_slice(args);
    let settings = Cli::try_parse_from(argv).expect("flags parse").settings;
    openai_governor::config::Config::load(&settings).map_err(|e| e.to_string())
}

#[tokio::test]
async fn asymmetric_keys_need_an_audience_to_start() {
    let pem = format!("{FIXTURES}/rsa-public.pem");
    for keys in [
        vec!["--jwt-public-key-file", pem.as_str()],
        vec!["--jwt-jwks-url", "https://idp.test/.well-known/jwks.json"],
    ] {
        let err = load(&keys).err().expect("refused without an audience");
        assert!(err.contains("OG_JWT_AUDIENCE"), "{err}");
        let mut with = keys.clone();
        with.extend(["--jwt-audience", AUDIENCE]);
        assert!(load(&with).is_ok(), "{with:?}");
    }
    // A shared secret is ours alone: no audience needed.
    assert!(load(&["--jwt-hs256-secret", &"s".repeat(40)]).is_ok());

    // A configuration built by hand is refused by the app too.
    let db = crate::helpers::TestDb::new(Backend::Sqlite).await.unwrap();
    let mut config =
        openai_governor::config::Config::ephemeral(&db.url, crate::helpers::random_secret(), &[])
            .unwrap();
    config.jwt.keys = JwtKeys::Pem {
        algorithm: Algorithm::RS256,
        pem: fixture("rsa-public.pem"),
    };
    let err = openai_governor::app::build_with_store(config, db.store().await)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("OG_JWT_AUDIENCE"), "{err}");
}

#[tokio::test]
async fn tokens_living_longer_than_the_maximum_are_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let secret = app.jwt_secret.expose_secret().as_bytes().to_vec();
    let hour = 3600;
    let token = |extra: Value| hs(&secret, Algorithm::HS256, &claims(extra));
    // Within the default 24 h, with and without `iat`.
    let ok = token(json!({"iat": now(), "exp": now() + 23 * hour}));
    assert_eq!(status_of(&app, &ok).await.status(), 200);
    let ok = token(json!({"exp": now() + 23 * hour}));
    assert_eq!(status_of(&app, &ok).await.status(), 200);
    // 25 h from `iat`, though only 2 h remain.
    assert_401(
        &app,
        &token(json!({"iat": now() - 23 * hour, "exp": now() + 2 * hour})),
        "lifetime",
    )
    .await;
    // No `iat`: what remains counts.
    assert_401(&app, &token(json!({"exp": now() + 25 * hour})), "lifetime").await;
    // An `iat` in the future does not shorten it.
    assert_401(
        &app,
        &token(json!({"iat": now() + 48 * hour, "exp": now() + 49 * hour})),
        "lifetime",
    )
    .await;
    // A year-long token, the kind that leaks.
    assert_401(
        &app,
        &token(json!({"iat": now(), "exp": now() + 365 * 24 * hour})),
        "lifetime",
    )
    .await;

    // Zero turns the check off.
    let options = crate::helpers::Options {
        configure: Some(Box::new(|c| c.jwt.max_lifetime = std::time::Duration::ZERO)),
        ..Options::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let secret = app.jwt_secret.expose_secret().as_bytes().to_vec();
    let long = hs(
        &secret,
        Algorithm::HS256,
        &claims(json!({"iat": now(), "exp": now() + 365 * 24 * hour})),
    );
    assert_eq!(status_of(&app, &long).await.status(), 200);
}

#[tokio::test]
async fn the_token_command_mints_only_what_the_service_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/gov.db", dir.path().display());
    let run = |args: &[&str], max: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_openai-governor"))
            .env_clear()
            .env("DATABASE_URL", &url)
            .env("OG_LOG", "warn")
            .env("OG_JWT_MAX_LIFETIME", max)
            .arg("token")
            .args(args)
            .output()
            .expect("run the binary")
    };
    let out = run(&["--ttl", "25h"], "24h");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OG_JWT_MAX_LIFETIME"), "{err}");
    let out = run(&["--ttl", "2h"], "24h");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    // The minted token verifies with the service's own configuration (same data directory).
    let settings = {
        use clap::Parser;
        Cli::try_parse_from(["test", "--database-url", &url])
            .unwrap()
            .settings
    };
    let config = openai_governor::config::Config::load(&settings).unwrap();
    let verifier = openai_governor::auth::JwtVerifier::new(&config.jwt).unwrap();
    let who = verifier
        .verify(token.trim())
        .await
        .expect("minted token verifies");
    assert_eq!(who.subject, "local-admin");
    let claims: Value =
        serde_json::from_slice(&B64.decode(token.trim().split('.').nth(1).unwrap()).unwrap())
            .unwrap();
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 2 * 3600);
}
