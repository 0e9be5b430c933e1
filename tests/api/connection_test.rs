//! The connection test's write capabilities and feature verdicts, end to end over HTTP with
//! both stores, against a sandbox that checks permission first and one that validates first;
//! and the admin key scrubbed from what OpenAI (or a proxy) echoes back.

use openai_governor::openai::{Client, ListUsersParams};
use openai_governor::service::Prober;
use openai_governor::store::Backend;
use openai_governor_sandbox::{Faults, KeyProfile, SandboxConfig};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Options, TestApp, test_client_config};

const WRITES: [&str; 5] = [
    "write_project_members",
    "write_users_and_invites",
    "write_groups",
    "write_roles",
    "write_keys",
];
const READS: [&str; 7] = [
    "read_users",
    "read_projects",
    "read_project_members",
    "read_service_accounts_and_keys",
    "read_groups_and_roles",
    "read_audit_logs",
    "read_usage_and_costs",
];

fn line<'a>(report: &'a Value, key: &str, name: &str) -> &'a Value {
    report[key]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|c| c["capability"] == name || c["feature"] == name)
        })
        .unwrap_or_else(|| panic!("{name} missing in {report:#}"))
}

fn capability_status(report: &Value, name: &str) -> String {
    line(report, "capabilities", name)["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn feature_status(report: &Value, name: &str) -> String {
    line(report, "features", name)["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Everything the sandbox holds (users, invites, memberships, groups, roles, keys, the
/// audit log, the id generator): equal before and after means the probes changed nothing.
fn snapshot(app: &TestApp) -> String {
    app.sandbox.state().read(|org| format!("{org:?}"))
}

async fn test_key(app: &TestApp, profile: KeyProfile) -> Value {
    let res = app
        .post(
            "/v1/connections/test",
            &app.admin_token(),
            json!({"admin_key": app.sandbox.key(profile),
                   "base_url": app.sandbox.base_url().as_str()}),
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn spawn(backend: Backend, trust: bool, validation_first: bool) -> Option<TestApp> {
    TestApp::spawn_with(
        backend,
        Options {
            openai_checks_permission_first: trust,
            sandbox: SandboxConfig {
                faults: Faults {
                    validation_before_permission: validation_first,
                    ..Faults::default()
                },
                ..SandboxConfig::default()
            },
            ..Options::default()
        },
    )
    .await
}

/// OpenAI checks permission first (and we trust it to): a full key can write, a read-only
/// key cannot, and the report says which features each one serves. Nothing changes.
async fn permission_first_gives_exact_answers(backend: Backend) {
    let Some(app) = spawn(backend, true, false).await else {
        return;
    };
    let before = snapshot(&app);

    let full = test_key(&app, KeyProfile::All).await;
    assert_eq!(full["status"], "ok", "{full:#}");
    assert_eq!(full["capabilities"].as_array().unwrap().len(), 12);
    for name in READS.iter().chain(&WRITES) {
        assert_eq!(capability_status(&full, name), "ok", "{name}: {full:#}");
    }
    for probe in line(&full, "capabilities", "write_users_and_invites")["probes"]
        .as_array()
        .unwrap()
    {
        assert_eq!(probe["http_status"], 404, "{probe}");
        assert!(probe["endpoint"].as_str().unwrap().starts_with("DELETE "));
    }
    for feature in ["sync", "incremental_sync", "costs", "grants", "offboarding"] {
        assert_eq!(feature_status(&full, feature), "works", "{full:#}");
    }
    assert!(
        full["summary"]
            .as_str()
            .unwrap()
            .starts_with("every capability works"),
        "{full:#}"
    );

    // The read-only key of the issue: reads work, no write does, and it is not "all work".
    let read_only = test_key(&app, KeyProfile::ReadOnly).await;
    assert_eq!(read_only["status"], "degraded", "{read_only:#}");
    for name in READS {
        assert_eq!(capability_status(&read_only, name), "ok", "{name}");
    }
    for name in WRITES {
        let l = line(&read_only, "capabilities", name);
        assert_eq!(l["status"], "missing_scope", "{l:#}");
        assert_eq!(
            l["probes"][0]["missing_scopes"],
            json!(["api.management.write"])
        );
        assert_eq!(l["probes"][0]["http_status"], 401);
    }
    for (feature, want) in [
        ("sync", "works"),
        ("incremental_sync", "works"),
        ("costs", "works"),
        ("grants", "unavailable"),
        ("offboarding", "unavailable"),
    ] {
        assert_eq!(feature_status(&read_only, feature), want, "{feature}");
    }
    let grants = line(&read_only, "features", "grants");
    assert_eq!(grants["lacking"], json!(["write_project_members"]));
    let summary = read_only["summary"].as_str().unwrap();
    assert!(!summary.contains("every capability"), "{summary}");
    assert!(summary.contains("grants unavailable"), "{summary}");
    assert!(summary.contains("offboarding unavailable"), "{summary}");

    // A key without usage: costs unavailable, sync works without them (partial).
    let no_usage = test_key(&app, KeyProfile::NoUsage).await;
    assert_eq!(feature_status(&no_usage, "costs"), "unavailable");
    assert_eq!(feature_status(&no_usage, "sync"), "partial");
    assert_eq!(feature_status(&no_usage, "grants"), "works");

    // The probes changed nothing, yet they were sent: 404 to the keys that may write (full,
    // no-usage), 401 to the read-only one.
    assert_eq!(snapshot(&app), before);
    let counters = app.sandbox.counters();
    let deletes: Vec<_> = counters
        .endpoints
        .iter()
        .filter(|(k, _)| k.starts_with("DELETE "))
        .collect();
    assert_eq!(deletes.len(), 6, "{deletes:#?}");
    for (endpoint, count) in deletes {
        assert_eq!(count.requests, 3, "{endpoint}");
        assert_eq!(count.statuses.get(&404), Some(&2), "{endpoint}: {count:?}");
        assert_eq!(count.statuses.get(&401), Some(&1), "{endpoint}: {count:?}");
    }
}

/// OpenAI validates first: the probes' validation refusals say nothing about the key, so the
/// write lines are `unknown` for every key, never "works", and nothing is learned.
async fn validation_first_is_unknown_never_works(backend: Backend) {
    let Some(app) = spawn(backend, false, true).await else {
        return;
    };
    let before = snapshot(&app);
    for profile in [KeyProfile::ReadOnly, KeyProfile::All, KeyProfile::ReadOnly] {
        let report = test_key(&app, profile).await;
        assert_eq!(report["status"], "degraded", "{report:#}");
        for name in READS {
            assert_eq!(capability_status(&report, name), "ok", "{name}");
        }
        for name in WRITES {
            let l = line(&report, "capabilities", name);
            assert_eq!(l["status"], "unknown", "{profile:?} {l:#}");
            assert_eq!(l["probes"][0]["http_status"], 404, "{l:#}");
            assert!(
                l["summary"].as_str().unwrap().starts_with("not verified"),
                "{l:#}"
            );
        }
        assert_eq!(feature_status(&report, "grants"), "unknown");
        assert_eq!(feature_status(&report, "offboarding"), "unknown");
        assert_eq!(feature_status(&report, "sync"), "works");
        let summary = report["summary"].as_str().unwrap();
        assert!(summary.contains("grants not verified"), "{summary}");
    }
    assert_eq!(snapshot(&app), before);
    // Every probe reached the sandbox and got the validation answer, whatever the key.
    let counters = app.sandbox.counters();
    for (endpoint, count) in counters
        .endpoints
        .iter()
        .filter(|(k, _)| k.starts_with("DELETE "))
    {
        assert_eq!(count.statuses.get(&404), Some(&3), "{endpoint}: {count:?}");
    }
}

/// Not trusted by configuration, the order is learned: a read-only key's missing-scope
/// answers prove the server checks permission first, and from then on a full key's
/// validation refusals count as "works".
async fn permission_first_is_learned_from_a_missing_scope(backend: Backend) {
    let Some(app) = spawn(backend, false, false).await else {
        return;
    };
    let before = snapshot(&app);
    let first = test_key(&app, KeyProfile::All).await;
    for name in WRITES {
        assert_eq!(capability_status(&first, name), "unknown", "{name}");
    }
    assert_eq!(first["status"], "degraded");
    assert_eq!(feature_status(&first, "grants"), "unknown");

    let read_only = test_key(&app, KeyProfile::ReadOnly).await;
    for name in WRITES {
        assert_eq!(
            capability_status(&read_only, name),
            "missing_scope",
            "{name}"
        );
    }
    assert_eq!(feature_status(&read_only, "grants"), "unavailable");

    let again = test_key(&app, KeyProfile::All).await;
    assert_eq!(again["status"], "ok", "{again:#}");
    for name in WRITES {
        assert_eq!(capability_status(&again, name), "ok", "{name}");
    }
    assert_eq!(snapshot(&app), before);
}

crate::backend_tests!(
    permission_first_gives_exact_answers,
    validation_first_is_unknown_never_works,
    permission_first_is_learned_from_a_missing_scope,
);

/// A raw loopback "proxy" that answers every request 401 and echoes the bearer key it was
/// sent in the error's message (past the 500-character cut), `type`, `code`, `param` (cut
/// short) and `x-request-id`.
async fn echoing_server() -> url::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let key = text
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("authorization: Bearer ")
                            .or_else(|| l.strip_prefix("Authorization: Bearer "))
                    })
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                let body = json!({"error": {
                    "message": format!("{} proxy saw {key} and refused", "x".repeat(470)),
                    "type": key,
                    "code": format!("bad_key:{key}"),
                    "param": &key[..key.len().min(30)],
                }})
                .to_string();
                let head = format!(
                    "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nx-request-id: req_{key}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    url::Url::parse(&format!("http://{addr}/v1")).unwrap()
}

const ECHOED_KEY: &str = "sk-admin-Zq81LmXv0PaTr5Nc2Wd7Ke4Yb9Hs6Gf3Ju1Ip8Ox0Qw2Er4Ty6Ui8Op0As";

/// Pieces of the key that must appear nowhere: its head, its tail, its middle.
fn assert_no_key(text: &str) {
    let secret = &ECHOED_KEY["sk-admin-".len()..];
    for start in (0..secret.len() - 10).step_by(5) {
        let piece = &secret[start..start + 10];
        assert!(!text.contains(piece), "key piece {piece} leaked in {text}");
    }
}

/// The key echoed everywhere, and cut in half by the message limit, never reaches the
/// caller: not in the client's error (fields, Display, Debug) nor in the test report.
#[tokio::test]
async fn an_echoed_key_is_scrubbed_everywhere_before_truncation() {
    let base = echoing_server().await;
    let key = SecretString::from(ECHOED_KEY.to_owned());
    let client = Client::new(base.clone(), key.clone(), test_client_config()).unwrap();
    let err = client
        .list_users(&ListUsersParams::default())
        .await
        .expect_err("the proxy refuses");
    assert_eq!(err.status, Some(401));
    let fields = format!(
        "{} | {:?} | {:?} | {:?} | {:?} | {:?} | {err} | {err:?}",
        err.message, err.error_type, err.code, err.param, err.request_id, err.organization
    );
    assert_no_key(&fields);
    assert!(err.message.contains("[redacted]"), "{}", err.message);
    assert!(err.message.len() <= 503, "{}", err.message.len());
    assert_eq!(err.error_type.as_deref(), Some("[redacted]"));
    assert_eq!(err.code.as_deref(), Some("bad_key:[redacted]"));
    assert_eq!(err.param.as_deref(), Some("[redacted]"));

    let report = Prober::new(test_client_config())
        .run(&base, &key, None)
        .await;
    assert_eq!(
        report.status,
        openai_governor::domain::OverallStatus::Failed
    );
    let text = serde_json::to_string(&report).unwrap();
    assert_no_key(&text);
    assert!(text.contains("[redacted]"), "{text}");
}
