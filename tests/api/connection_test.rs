//! The connection test's write capabilities and feature verdicts, end to end over HTTP with
//! both stores, against a sandbox that checks permission first and one that validates first;
//! and the admin key scrubbed from what OpenAI (or a proxy) echoes back.

use openai_governor::sandbox::{Faults, KeyProfile, SandboxConfig};
use openai_governor::store::Backend;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp};

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
        assert_eq!(l["probes"][0]["missing_scopes"], json!(["api.management.write"]));
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
    for (endpoint, count) in counters.endpoints.iter().filter(|(k, _)| k.starts_with("DELETE ")) {
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
        assert_eq!(capability_status(&read_only, name), "missing_scope", "{name}");
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
