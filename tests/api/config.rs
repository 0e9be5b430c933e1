//! Boot-time configuration rules: fail closed on Postgres, generate development secrets
//! (0600) on SQLite, refuse ambiguous or weak settings.

use clap::Parser;
use openai_governor::config::{Config, ConfigError, JwtKeys, Settings};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

fn settings(args: &[&str]) -> Settings {
    let mut argv = vec!["test"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).expect("flags parse").settings
}

fn refused(args: &[&str]) -> String {
    match Config::load(&settings(args)) {
        Err(ConfigError::Invalid(msg)) => msg,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("accepted {args:?}"),
    }
}

#[test]
fn postgres_without_an_encryption_key_is_refused() {
    let msg = refused(&[
        "--database-url",
        "postgres://localhost/x",
        "--jwt-hs256-secret",
        &"s".repeat(40),
    ]);
    assert!(msg.contains("OG_ENCRYPTION_KEYS"), "{msg}");
    let msg = refused(&[
        "--database-url",
        "postgres://localhost/x",
        "--encryption-keys",
        "1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ]);
    assert!(msg.contains("caller authentication"), "{msg}");
    // An empty variable (`OG_ENCRYPTION_KEYS=` in a compose file) is unset, not a key.
    let msg = refused(&[
        "--database-url",
        "postgres://localhost/x",
        "--encryption-keys",
        "",
    ]);
    assert!(msg.contains("OG_ENCRYPTION_KEYS is required"), "{msg}");
}

#[test]
fn sqlite_generates_private_development_secrets_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/gov.db", dir.path().display());
    let first = Config::load(&settings(&["--database-url", &url])).unwrap();
    assert!(first.dev.created);
    let key_file = first.dev.encryption_key_file.clone().unwrap();
    let jwt_file = first.dev.jwt_secret_file.clone().unwrap();
    assert!(key_file.starts_with(dir.path()));
    #[cfg(unix)]
    for f in [&key_file, &jwt_file] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    assert!(matches!(first.jwt.keys, JwtKeys::Hs256(_)));
    // A second start reuses them (keys sealed by the first still open).
    let second = Config::load(&settings(&["--database-url", &url])).unwrap();
    assert!(!second.dev.created);
    let id = openai_governor::domain::ConnectionId::new();
    let base: url::Url = "https://api.openai.com/v1".parse().unwrap();
    let sealed = first
        .key_ring
        .seal(id, &base, &"sk-admin-x".to_owned().into())
        .unwrap();
    assert!(second.key_ring.open(id, &base, &sealed).is_ok());
}

#[test]
fn bad_settings_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/gov.db", dir.path().display());
    let msg = refused(&["--database-url", "mysql://x"]);
    assert!(msg.contains("DATABASE_URL"), "{msg}");
    let msg = refused(&["--database-url", &url, "--encryption-keys", "1:short"]);
    assert!(msg.contains("OG_ENCRYPTION_KEYS"), "{msg}");
    assert!(!msg.contains("short"), "key material echoed: {msg}");
    let msg = refused(&["--database-url", &url, "--jwt-hs256-secret", "tooshort"]);
    assert!(msg.contains("32 bytes"), "{msg}");
    let msg = refused(&[
        "--database-url",
        &url,
        "--jwt-hs256-secret",
        &"s".repeat(40),
        "--jwt-jwks-url",
        "https://idp.example.com/jwks.json",
    ]);
    assert!(msg.contains("only one"), "{msg}");
    let msg = refused(&[
        "--database-url",
        &url,
        "--openai-allowed-base-urls",
        "https://user:pw@proxy/v1",
    ]);
    assert!(msg.contains("credentials"), "{msg}");
    let msg = refused(&[
        "--database-url",
        &url,
        "--jwt-jwks-url",
        "https://idp.example.com/jwks.json",
        "--jwt-algorithms",
        "HS256",
    ]);
    assert!(msg.contains("HS256"), "{msg}");
}

#[test]
fn plain_http_base_urls_only_on_loopback_or_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/x.db", dir.path().display());
    let base = ["--database-url", url.as_str(), "--jwt-hs256-secret"];
    let secret = "s".repeat(40);
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.push(&secret);
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let args = with(&["--openai-allowed-base-urls", "http://proxy.internal/v1"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let msg = refused(&args);
    assert!(msg.contains("OG_OPENAI_ALLOW_PLAINTEXT_HTTP"), "{msg}");
    for ok in [
        vec!["--openai-allowed-base-urls", "http://127.0.0.1:8089/v1"],
        vec!["--openai-allowed-base-urls", "https://proxy.internal/v1"],
        vec![
            "--openai-allowed-base-urls",
            "http://proxy.internal/v1",
            "--openai-allow-plaintext-http",
            "true",
        ],
    ] {
        let args = with(&ok);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert!(Config::load(&settings(&args)).is_ok(), "{ok:?}");
    }
}
