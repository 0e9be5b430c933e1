//! The real binary, as an operator runs it: `sandbox`, `token`, `serve`, `migrate`,
//! `openapi`, `rekey`, each a separate process talking over loopback; and what `--help` lists.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const BIN: &str = env!("CARGO_BIN_EXE_openai-governor");

/// A child process killed when dropped.
struct Proc {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn command(env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OG_LOG", "warn")
        .env("OG_LOG_FORMAT", "json");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

fn spawn(env: &[(&str, &str)], args: &[&str]) -> Proc {
    spawn_logging_to(env, args, Stdio::inherit())
}

fn spawn_logging_to(env: &[(&str, &str)], args: &[&str], stderr: Stdio) -> Proc {
    let mut child = command(env)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn binary");
    let stdout = child.stdout.take().expect("stdout");
    Proc {
        child,
        lines: BufReader::new(stdout).lines(),
    }
}

impl Proc {
    async fn line(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("process printed nothing in time")
            .expect("read stdout")
            .expect("process ended early")
    }
}

async fn run(env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let out = command(env).args(args).output().await.expect("run binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Sandbox {
    _proc: Proc,
    base_url: String,
    full_key: String,
}

async fn sandbox() -> Sandbox {
    let mut proc = spawn(&[], &["sandbox", "--listen", "127.0.0.1:0"]);
    let first = proc.line().await;
    let base_url = first
        .strip_prefix("base_url ")
        .expect("base_url line")
        .to_owned();
    // Key lines follow; read until the one with every scope (the sandbox prints nothing after
    // its keys, so reading past the last one would block).
    let full_key = loop {
        let line = proc.line().await;
        let parts: Vec<&str> = line.split_whitespace().collect();
        let ["key", _name, value, scopes] = parts.as_slice() else {
            panic!("unexpected sandbox line: {line}");
        };
        let scopes = scopes.strip_prefix("scopes=").unwrap_or("");
        let all = [
            "api.management.read",
            "api.management.write",
            "api.usage.read",
        ]
        .iter()
        .all(|s| scopes.split(',').any(|x| x == *s));
        if all {
            break value.to_string();
        }
    };
    Sandbox {
        _proc: proc,
        base_url,
        full_key,
    }
}

/// `serve`, logging at `trace` into `log`.
async fn serve(env: &[(&str, &str)], log: &std::path::Path) -> (Proc, String) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut env = env.to_vec();
    env.push(("OG_LOG", "trace"));
    let mut proc = spawn_logging_to(&env, &["serve", "--listen", "127.0.0.1:0"], file.into());
    let line = proc.line().await;
    let base = line
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_owned();
    (proc, base)
}

fn key_spec(version: u32) -> String {
    use secrecy::ExposeSecret;
    openai_governor::crypto::KeyRing::generate_spec(version)
        .expose_secret()
        .to_owned()
}

#[tokio::test]
async fn operator_story_with_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("gov.db");
    let db = format!("sqlite://{}", db_file.display());
    let sb = sandbox().await;
    let k1 = key_spec(1);
    let k2 = key_spec(2);
    let jwt = "a-shared-secret-of-at-least-32-bytes!!";
    let env_v1 = [
        ("DATABASE_URL", db.as_str()),
        ("OG_ENCRYPTION_KEYS", k1.as_str()),
        ("OG_JWT_HS256_SECRET", jwt),
        ("OG_OPENAI_ALLOWED_BASE_URLS", sb.base_url.as_str()),
        ("OG_OPENAI_CHECKS_PERMISSION_FIRST", "true"),
    ];

    let log = dir.path().join("serve.log");
    let (ok, out, err) = run(&env_v1, &["migrate"]).await;
    assert!(ok, "migrate: {err}");
    assert!(out.contains("migrations applied (sqlite)"));
    let (ok, token, err) = run(&env_v1, &["token", "--sub", "ops@corp", "--ttl", "10m"]).await;
    assert!(ok, "token: {err}");
    let token = token.trim().to_owned();

    let http = reqwest::Client::new();
    let id;
    {
        let (_server, base) = serve(&env_v1, &log).await;
        let res = http
            .post(format!("{base}/v1/connections"))
            .bearer_auth(&token)
            .json(&json!({"name": "prod", "admin_key": sb.full_key, "base_url": sb.base_url}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let created: Value = res.json().await.unwrap();
        assert_eq!(created["created_by"], "ops@corp");
        id = created["id"].as_str().unwrap().to_owned();
        let report: Value = http
            .post(format!("{base}/v1/connections/{id}/test"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(report["status"], "ok", "{report:#}");
        let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
    }

    // Rotate: add key 2, re-encrypt, then drop key 1; the connection still works.
    let both = format!("{k1},{k2}");
    let env_both = [
        ("DATABASE_URL", db.as_str()),
        ("OG_ENCRYPTION_KEYS", both.as_str()),
        ("OG_JWT_HS256_SECRET", jwt),
    ];
    let (ok, out, err) = run(&env_both, &["rekey"]).await;
    assert!(ok, "rekey: {err}");
    assert!(out.contains("1 examined, 1 re-encrypted"), "{out}");
    let (ok, out, _) = run(&env_both, &["rekey"]).await;
    assert!(ok && out.contains("0 examined"), "{out}");
    let env_v2 = [
        ("DATABASE_URL", db.as_str()),
        ("OG_ENCRYPTION_KEYS", k2.as_str()),
        ("OG_JWT_HS256_SECRET", jwt),
        ("OG_OPENAI_ALLOWED_BASE_URLS", sb.base_url.as_str()),
        ("OG_OPENAI_CHECKS_PERMISSION_FIRST", "true"),
    ];
    {
        let (_server, base) = serve(&env_v2, &log).await;
        let report: Value = http
            .post(format!("{base}/v1/connections/{id}/test"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(report["status"], "ok", "opened under key 2: {report:#}");
        let res = http
            .delete(format!("{base}/v1/connections/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    // Nothing secret reached the logs, even at `trace` (HTTP client and server internals
    // included): not the admin key, the caller's token, the JWT secret or an encryption key.
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("connection created"), "the log was captured");
    for secret in [
        sb.full_key.as_str(),
        token.as_str(),
        jwt,
        k1.as_str(),
        k2.as_str(),
    ] {
        let tail = &secret[secret.len() - 12..];
        assert!(!logs.contains(tail), "a secret reached the log");
    }
    // The plaintext key never touched the disk.
    let mut bytes = std::fs::read(&db_file).unwrap();
    bytes.extend(std::fs::read(dir.path().join("gov.db-wal")).unwrap_or_default());
    let key = sb.full_key.as_bytes();
    assert!(!bytes.windows(key.len()).any(|w| w == key));
}

#[tokio::test]
async fn embedded_default_needs_no_setup() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/data/gov.db", dir.path().display());
    let env = [("DATABASE_URL", db.as_str())];
    // `token` works on a fresh machine: it creates the development JWT secret...
    let (ok, token, err) = run(&env, &["token", "--scope", "connections:read"]).await;
    assert!(ok, "{err}");
    // ...which the server then uses; no subcommand means `serve` (OG_LISTEN from the env).
    let mut proc = spawn(
        &[("DATABASE_URL", db.as_str()), ("OG_LISTEN", "127.0.0.1:0")],
        &[],
    );
    let line = proc.line().await;
    let base = line
        .strip_prefix("listening on ")
        .expect("listening")
        .to_owned();
    let res = reqwest::Client::new()
        .get(format!("{base}/v1/connections"))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(dir.path().join("data/encryption-keys").exists());
    assert!(dir.path().join("data/jwt-hs256-secret").exists());
}

#[tokio::test]
async fn refusals_and_openapi() {
    let (ok, _, err) = run(&[("DATABASE_URL", "postgres://127.0.0.1:1/x")], &["serve"]).await;
    assert!(!ok);
    assert!(
        err.contains("OG_ENCRYPTION_KEYS is required with Postgres"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/gov.db", dir.path().display());
    let (ok, _, err) = run(
        &[
            ("DATABASE_URL", db.as_str()),
            ("OG_JWT_JWKS_URL", "https://idp.example.com/jwks.json"),
        ],
        &["token"],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("identity provider"), "{err}");

    let (ok, out, _) = run(&[], &["openapi"]).await;
    assert!(ok);
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap();
    assert_eq!(out, committed);

    let (ok, _, err) = run(&[], &["token", "--scope", "root"]).await;
    assert!(!ok);
    assert!(err.contains("unknown scope"), "{err}");
}

#[tokio::test]
async fn each_subcommand_lists_only_its_own_flags() {
    let (ok, sandbox, err) = run(&[], &["sandbox", "--help"]).await;
    assert!(ok, "{err}");
    assert!(sandbox.contains("--seed"), "{sandbox}");
    assert!(!sandbox.contains("--jwt-"), "{sandbox}");
    assert!(!sandbox.contains("--database-url"), "{sandbox}");
    let (ok, serve, err) = run(&[], &["serve", "--help"]).await;
    assert!(ok, "{err}");
    assert!(serve.contains("--jwt-"), "{serve}");
    assert!(serve.contains("--database-url"), "{serve}");
}

#[tokio::test]
async fn a_policy_file_is_checked_at_start_and_reloaded_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let good = "callers:\n  portal: {subjects: [portal]}\n  ops: {subjects: [ops@corp]}\nrules:\n  - id: ops\n    effect: allow\n    callers: [ops]\n    actions: [\"*\"]\n  - id: portal-reads\n    effect: allow\n    callers: [portal]\n    actions: [read]\n    connections: [prod]\n";
    let bad = "rules:\n  - id: portal-reads\n    effect: allow\n    callers: [portal]\n    actions: [read]\n    colour: red\n";
    let file = dir.path().join("policy.yaml");
    let file_s = file.display().to_string();
    std::fs::write(&file, bad).unwrap();
    let (ok, _, err) = run(&[], &["policy", "check", &file_s]).await;
    assert!(!ok);
    assert!(err.contains("line 6") && err.contains("colour"), "{err}");
    std::fs::write(&file, good).unwrap();
    let (ok, out, err) = run(&[], &["policy", "check", &file_s]).await;
    assert!(ok, "{err}");
    assert!(out.contains("2 caller(s), 2 rule(s): valid"), "{out}");

    let sb = sandbox().await;
    let db = format!("sqlite://{}", dir.path().join("gov.db").display());
    let keys = key_spec(1);
    let jwt = "a-shared-secret-of-at-least-32-bytes!!";
    let mut env = vec![
        ("DATABASE_URL", db.as_str()),
        ("OG_ENCRYPTION_KEYS", keys.as_str()),
        ("OG_JWT_HS256_SECRET", jwt),
        ("OG_OPENAI_ALLOWED_BASE_URLS", sb.base_url.as_str()),
        ("OG_POLICY_FILE", file_s.as_str()),
    ];
    // HS256 cannot tell callers apart: refused with a policy unless allowed for development.
    let (ok, _, err) = run(&env, &["serve", "--listen", "127.0.0.1:0"]).await;
    assert!(!ok);
    assert!(err.contains("OG_POLICY_ALLOW_HS256"), "{err}");
    env.push(("OG_POLICY_ALLOW_HS256", "true"));
    std::fs::write(&file, bad).unwrap();
    let (ok, _, err) = run(&env, &["serve", "--listen", "127.0.0.1:0"]).await;
    assert!(!ok, "a bad policy file stops the start");
    assert!(
        err.contains("OG_POLICY_FILE") && err.contains("line 6"),
        "{err}"
    );

    std::fs::write(&file, good).unwrap();
    let log = dir.path().join("serve.log");
    let (server, base) = serve(&env, &log).await;
    let http = reqwest::Client::new();
    let ready: Value = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["policy"], "enforced");
    let secret = secrecy::SecretString::from(jwt.to_owned());
    let token = |sub: &str| {
        openai_governor::auth::mint_hs256(
            &secret,
            sub,
            &openai_governor::auth::Scope::ALL,
            Duration::from_secs(600),
            None,
            None,
        )
        .unwrap()
    };
    let res = http
        .post(format!("{base}/v1/connections"))
        .bearer_auth(token("ops@corp"))
        .json(&json!({"name": "prod", "admin_key": sb.full_key, "base_url": sb.base_url}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let portal_reads = || async {
        http.get(format!("{base}/v1/connections/{id}"))
            .bearer_auth(token("portal"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(portal_reads().await, 200);

    // The portal loses `prod`; SIGHUP; the next answers are refusals.
    std::fs::write(
        &file,
        good.replace("connections: [prod]", "connections: [staging]"),
    )
    .unwrap();
    let pid = server.child.id().unwrap().to_string();
    let hup = |pid: String| async move {
        let status = Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    };
    hup(pid.clone()).await;
    let mut refused = false;
    for _ in 0..50 {
        if portal_reads().await == 403 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the reloaded policy applies");
    // A broken file on reload: logged, the policy in force stays, the service serves on.
    std::fs::write(&file, bad).unwrap();
    hup(pid).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(portal_reads().await, 403);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("policy reload refused"), "{logged}");
}
