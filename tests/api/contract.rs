//! Contract tests: every answer the sandbox gives validates against OpenAI's published schemas
//! (`spec/openai-admin-api/openapi.admin.yaml`, see `spec.rs`). The spec is the arbiter.
//!
//! `every_endpoint_matches_the_spec` drives each `/v1` operation the sandbox serves (success
//! and the main error statuses) with raw HTTP; `TestApp` checks what the sandbox answered in
//! every other test when it is dropped (`assert_recording`).

use std::collections::{BTreeMap, BTreeSet};

use openai_governor_sandbox::{
    self as sandbox, Faults, KeyProfile, RateLimit, RecordedResponse, Recording, SandboxConfig,
    SandboxHandle,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::spec::{Violation, spec};

/// Bytes of response bodies a test keeps for the contract check (beyond: counted, not kept).
pub const RECORD_BUDGET: usize = 64 * 1024 * 1024;

/// Checks recorded answers; returns how many were validated.
pub fn check_recording(rec: &Recording) -> Result<usize, Vec<Violation>> {
    let mut violations = Vec::new();
    let mut checked = 0;
    for r in &rec.responses {
        if r.malformed_by_fault {
            continue;
        }
        checked += 1;
        if let Err(v) = check_response(r) {
            violations.extend(v);
        }
    }
    if violations.is_empty() {
        Ok(checked)
    } else {
        Err(violations)
    }
}

/// Checks one recorded answer.
pub fn check_response(r: &RecordedResponse) -> Result<(), Vec<Violation>> {
    match serde_json::from_str::<Value>(&r.body) {
        Ok(body) => spec().validate(&r.method, &r.template, &r.path, r.status, &body),
        Err(e) => Err(vec![Violation {
            method: r.method.clone(),
            path: r.path.clone(),
            status: r.status,
            pointer: String::new(),
            error: format!("body is not JSON ({e}): {:.200}", r.body),
        }]),
    }
}

/// Panics with every violation (method, path, status, JSON pointer, error).
pub fn assert_recording(rec: &Recording) {
    if rec.dropped > 0 {
        eprintln!(
            "contract: {} sandbox answers were not recorded (budget spent)",
            rec.dropped
        );
    }
    if let Err(violations) = check_recording(rec) {
        let mut msg = format!(
            "{} sandbox answers break the OpenAI spec:\n",
            violations.len()
        );
        for v in violations.iter().take(50) {
            msg.push_str(&format!("  {v}\n"));
        }
        panic!("{msg}");
    }
}

/// Raw calls to the sandbox with a chosen key.
struct Raw {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Raw {
    fn new(sb: &SandboxHandle, profile: KeyProfile) -> Raw {
        Raw {
            http: reqwest::Client::new(),
            base: sb.base_url().as_str().trim_end_matches('/').to_owned(),
            key: sb.key(profile).to_owned(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if !self.key.is_empty() {
            req = req.bearer_auth(&self.key);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request to the sandbox");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A call that must succeed; returns the body.
    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method.clone(), path, body).await;
        assert_eq!(status, 200, "{method} {path}: {v}");
        v
    }

    async fn get(&self, path: &str) -> Value {
        self.ok(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.ok(Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Value {
        self.ok(Method::DELETE, path, None).await
    }

    /// A call that must fail with `status`.
    async fn fails(&self, status: u16, method: Method, path: &str, body: Option<Value>) {
        let (got, v) = self.call(method.clone(), path, body).await;
        assert_eq!(got, status, "{method} {path}: {v}");
    }
}

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

/// A sandbox on port 0 that records its answers: end a test with
/// `assert_recording(&sb.state().stop_recording())` to hold them to the spec.
pub async fn recording_sandbox(config: SandboxConfig) -> SandboxHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sb = sandbox::start(config, listener).await.expect("sandbox");
    sb.state().start_recording(RECORD_BUDGET);
    sb
}

/// Every spec operation the sandbox routes (anything but its "Invalid URL" fallback),
/// found by probing a throwaway sandbox with placeholder ids.
async fn served_operations() -> BTreeSet<(String, String)> {
    let sb = recording_sandbox(SandboxConfig::default()).await;
    let raw = Raw::new(&sb, KeyProfile::All);
    let mut served = BTreeSet::new();
    for (method, op) in spec().operations() {
        let path = op
            .template
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let body = (m == Method::POST).then(|| json!({}));
        let (_, v) = raw.call(m, &path, body).await;
        let message = v["error"]["message"].as_str().unwrap_or_default();
        if !message.starts_with("Invalid URL") {
            served.insert((method.to_owned(), op.template.clone()));
        }
    }
    // The probes' answers are contract-checked too (mostly 400/404).
    assert_recording(&sb.state().stop_recording());
    assert!(
        served.contains(&("GET".to_owned(), "/organization/users".to_owned())),
        "the probe does not recognise served operations: {served:?}"
    );
    served
}

#[tokio::test]
async fn the_recorder_is_bounded_and_off_by_default() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sb = sandbox::start(SandboxConfig::default(), listener)
        .await
        .expect("sandbox");
    let api = Raw::new(&sb, KeyProfile::All);
    api.get("/organization/users?limit=1").await;
    assert_eq!(sb.state().take_recorded(), Recording::default(), "off");

    sb.state().start_recording(600);
    for _ in 0..3 {
        api.get("/organization/users?limit=100").await;
    }
    api.fails(404, Method::GET, "/organization/users/user_nope", None)
        .await;
    let rec = sb.state().stop_recording();
    assert!(
        rec.dropped >= 1,
        "a page of users is over the budget: {rec:?}"
    );
    let last = rec.responses.last().expect("the small 404 fits");
    assert_eq!(
        (last.method.as_str(), last.template.as_str(), last.status),
        ("GET", "/organization/users/{user_id}", 404)
    );
    assert_eq!(last.path, "/organization/users/user_nope");
    assert_recording(&rec);
}

#[tokio::test]
async fn every_endpoint_matches_the_spec() {
    let sb = recording_sandbox(SandboxConfig::default()).await;
    let api = Raw::new(&sb, KeyProfile::All);
    let now = chrono::Utc::now().timestamp();

    // ---- users ----
    let page = api.get("/organization/users?limit=2").await;
    let after = page["last_id"].as_str().expect("last_id").to_owned();
    api.get(&format!("/organization/users?limit=2&after={after}"))
        .await;
    let email = page["data"][0]["email"].as_str().expect("email").to_owned();
    api.get(&format!("/organization/users?emails[]={email}"))
        .await;
    let control = reqwest::Client::new();
    let added: Value = control
        .post(sb.control_url().join("users").expect("url"))
        .json(&json!({"email": "contract@example.com", "name": "Contract"}))
        .send()
        .await
        .expect("control")
        .json()
        .await
        .expect("json");
    let user = id(&added["data"][0]);
    api.get(&format!("/organization/users/{user}")).await;
    api.post(
        &format!("/organization/users/{user}"),
        json!({"role": "reader"}),
    )
    .await;

    // ---- projects ----
    api.get("/organization/projects?include_archived=true&limit=3")
        .await;
    let project = id(&api
        .post("/organization/projects", json!({"name": "Contract"}))
        .await);
    let p = format!("/organization/projects/{project}");
    api.get(&p).await;
    api.post(&p, json!({"name": "Contract renamed"})).await;

    // ---- invites ----
    api.get("/organization/invites").await;
    let invite = id(&api
        .post(
            "/organization/invites",
            json!({"email": "invitee@example.com", "role": "reader",
                "projects": [{"id": project, "role": "member"}]}),
        )
        .await);
    api.get(&format!("/organization/invites/{invite}")).await;
    api.delete(&format!("/organization/invites/{invite}")).await;

    // ---- admin keys ----
    api.get("/organization/admin_api_keys?limit=5").await;
    let key = id(&api
        .post(
            "/organization/admin_api_keys",
            json!({"name": "contract", "expires_in_seconds": 3600}),
        )
        .await);
    api.get(&format!("/organization/admin_api_keys/{key}"))
        .await;
    api.delete(&format!("/organization/admin_api_keys/{key}"))
        .await;

    // ---- project members ----
    api.get(&format!("{p}/users")).await;
    api.post(
        &format!("{p}/users"),
        json!({"user_id": user, "role": "member"}),
    )
    .await;
    api.get(&format!("{p}/users/{user}")).await;
    api.post(&format!("{p}/users/{user}"), json!({"role": "owner"}))
        .await;

    // ---- service accounts and project API keys ----
    api.get(&format!("{p}/service_accounts")).await;
    let sa = id(&api
        .post(&format!("{p}/service_accounts"), json!({"name": "bot"}))
        .await);
    api.get(&format!("{p}/service_accounts/{sa}")).await;
    api.post(
        &format!("{p}/service_accounts/{sa}"),
        json!({"name": "bot 2"}),
    )
    .await;
    api.post(
        &format!("{p}/service_accounts/{sa}/api_keys"),
        json!({"name": "second"}),
    )
    .await;
    api.get(&format!("{p}/api_keys?owner_project_access=any"))
        .await;
    // Only user-owned keys can be deleted directly: find one in the seeded projects.
    let seeded = api.get("/organization/projects?limit=20").await;
    let mut user_key = None;
    for proj in seeded["data"].as_array().expect("projects") {
        let keys = api
            .get(&format!("/organization/projects/{}/api_keys", id(proj)))
            .await;
        if let Some(k) = keys["data"]
            .as_array()
            .and_then(|ks| ks.iter().find(|k| k["owner"]["type"] == "user"))
        {
            user_key = Some((id(proj), id(k)));
            break;
        }
    }
    let (key_project, api_key) = user_key.expect("a user-owned project API key in the seed");
    let k = format!("/organization/projects/{key_project}/api_keys/{api_key}");
    api.get(&k).await;
    api.delete(&k).await;
    api.delete(&format!("{p}/service_accounts/{sa}")).await;

    // ---- groups ----
    let group = id(&api
        .post("/organization/groups", json!({"name": "contract-group"}))
        .await);
    let g = format!("/organization/groups/{group}");
    api.get("/organization/groups?limit=5").await;
    api.get(&g).await;
    api.post(&g, json!({"name": "contract-group-2"})).await;
    api.post(&format!("{g}/users"), json!({"user_id": user}))
        .await;
    api.get(&format!("{g}/users")).await;
    api.get(&format!("{g}/users/{user}")).await;

    // ---- roles and assignments ----
    api.get("/organization/roles").await;
    let role = id(&api
        .post(
            "/organization/roles",
            json!({"role_name": "contract-org-role", "permissions": ["api.groups.read"]}),
        )
        .await);
    let r = format!("/organization/roles/{role}");
    api.get(&r).await;
    api.post(&r, json!({"description": "for the contract test"}))
        .await;
    let pr_base = format!("/projects/{project}/roles");
    api.get(&pr_base).await;
    let prole = id(&api
        .post(
            &pr_base,
            json!({"role_name": "contract-project-role",
                "permissions": ["api.organization.projects.api_keys.read"]}),
        )
        .await);
    let pr = format!("{pr_base}/{prole}");
    api.get(&pr).await;
    api.post(&pr, json!({"description": "for the contract test"}))
        .await;

    for (base, role_id) in [
        (format!("/organization/users/{user}/roles"), &role),
        (format!("/organization/groups/{group}/roles"), &role),
        (format!("/projects/{project}/users/{user}/roles"), &prole),
        (format!("/projects/{project}/groups/{group}/roles"), &prole),
    ] {
        api.post(&base, json!({"role_id": role_id})).await;
        api.get(&base).await;
        api.get(&format!("{base}/{role_id}")).await;
        api.delete(&format!("{base}/{role_id}")).await;
    }

    // ---- project groups ----
    api.post(
        &format!("{p}/groups"),
        json!({"group_id": group, "role": prole}),
    )
    .await;
    api.get(&format!("{p}/groups")).await;
    api.get(&format!("{p}/groups/{group}")).await;
    api.delete(&format!("{p}/groups/{group}")).await;

    // ---- teardown: every delete ----
    api.delete(&format!("{g}/users/{user}")).await;
    api.delete(&pr).await;
    api.delete(&r).await;
    api.delete(&g).await;
    api.delete(&format!("{p}/users/{user}")).await;
    api.post(&format!("{p}/archive"), json!({})).await;
    api.delete(&format!("/organization/users/{user}")).await;

    // ---- reports ----
    let audit = api.get("/organization/audit_logs?limit=3").await;
    let last = audit["last_id"].as_str().expect("audit last_id").to_owned();
    api.get(&format!("/organization/audit_logs?limit=3&after={last}"))
        .await;
    let start = now - 3 * 86_400;
    api.get(&format!(
        "/organization/costs?start_time={start}&limit=3&group_by[]=project_id&group_by[]=line_item"
    ))
    .await;
    for kind in [
        "completions",
        "embeddings",
        "moderations",
        "images",
        "audio_speeches",
        "audio_transcriptions",
        "vector_stores",
        "code_interpreter_sessions",
        "file_search_calls",
        "web_search_calls",
    ] {
        let u = format!("/organization/usage/{kind}?start_time={start}&bucket_width=1d&limit=2");
        let first = api.get(&u).await;
        api.get(&format!("{u}&group_by[]=project_id")).await;
        if let Some(next) = first["next_page"].as_str() {
            api.get(&format!("{u}&page={next}")).await;
        }
    }

    // ---- errors: 400, 401 (no key, unknown key, missing scope), 404 ----
    api.fails(400, Method::GET, "/organization/users?limit=1000", None)
        .await;
    api.fails(
        400,
        Method::POST,
        "/organization/invites",
        Some(json!({"role": "reader"})),
    )
    .await;
    api.fails(
        400,
        Method::GET,
        &format!("{p}/users"), // archived project
        None,
    )
    .await;
    api.fails(404, Method::GET, "/organization/users/user_nope", None)
        .await;
    api.fails(404, Method::GET, "/organization/projects/proj_nope", None)
        .await;
    api.fails(404, Method::DELETE, "/organization/groups/group_nope", None)
        .await;
    let nobody = Raw {
        key: String::new(),
        ..Raw::new(&sb, KeyProfile::All)
    };
    nobody
        .fails(401, Method::GET, "/organization/users", None)
        .await;
    let stranger = Raw {
        key: "sk-admin-not-a-key".to_owned(),
        ..Raw::new(&sb, KeyProfile::All)
    };
    stranger
        .fails(401, Method::GET, "/organization/projects", None)
        .await;
    Raw::new(&sb, KeyProfile::UsageOnly)
        .fails(401, Method::GET, "/organization/users", None)
        .await;
    Raw::new(&sb, KeyProfile::ReadOnly)
        .fails(
            401,
            Method::POST,
            "/organization/projects",
            Some(json!({"name": "nope"})),
        )
        .await;
    Raw::new(&sb, KeyProfile::NoUsage)
        .fails(
            401,
            Method::GET,
            &format!("/organization/costs?start_time={start}"),
            None,
        )
        .await;

    // ---- injected faults: 429 and 5xx carry OpenAI's error shape too ----
    sb.state().set_faults(Faults {
        rate_limits: vec![RateLimit::per_template(
            "GET /organization/audit_logs",
            0,
            60,
        )],
        error_burst: 1,
        only: Some("GET /organization/invites".to_owned()),
        ..Faults::default()
    });
    api.fails(429, Method::GET, "/organization/audit_logs", None)
        .await;
    api.fails(500, Method::GET, "/organization/invites", None)
        .await;
    sb.state().set_faults(Faults::default());

    // ---- every answer validates; every served operation answered 2xx at least once ----
    let rec = sb.state().stop_recording();
    assert_eq!(rec.dropped, 0, "recording budget too small");
    assert_recording(&rec);
    let checked = check_recording(&rec).unwrap_or_default();
    let mut ok: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut statuses = BTreeSet::new();
    for r in &rec.responses {
        statuses.insert(r.status);
        if (200..300).contains(&r.status) {
            let op = spec()
                .operation(&r.method, &r.template)
                .expect("validated, so in the spec");
            *ok.entry((r.method.clone(), op.template.clone()))
                .or_default() += 1;
        }
    }
    for s in [200, 400, 401, 404, 429, 500] {
        assert!(statuses.contains(&s), "no answer with status {s} checked");
    }
    let served = served_operations().await;
    let missing: Vec<String> = served
        .iter()
        .filter(|k| !ok.contains_key(*k))
        .map(|(m, t)| format!("{m} {t}"))
        .collect();
    assert!(
        missing.is_empty(),
        "served but never answered 2xx in this test (add them): {missing:#?}"
    );
    eprintln!(
        "contract: {checked} answers valid; {} of {} spec operations served and covered",
        served.len(),
        spec().operations().count()
    );
}

#[test]
fn a_wrong_body_is_reported_with_its_pointer() {
    let user = json!({"object": "organization.user", "id": "user_1", "name": "A",
        "email": "a@example.com", "role": "owner", "added_at": 1_700_000_000});
    let good = json!({"object": "list", "data": [user], "first_id": "user_1",
        "last_id": "user_1", "has_more": false});
    let spec = spec();
    spec.validate(
        "GET",
        "/organization/users",
        "/organization/users",
        200,
        &good,
    )
    .expect("a valid list");

    let mut bad = good.clone();
    bad["data"][0]["added_at"] = json!("yesterday");
    let errs = spec
        .validate(
            "GET",
            "/organization/users",
            "/organization/users?limit=1",
            200,
            &bad,
        )
        .expect_err("a string timestamp must fail");
    assert_eq!(errs[0].pointer, "/data/0/added_at", "{errs:?}");
    let text = errs[0].to_string();
    assert!(
        text.starts_with("GET /organization/users?limit=1 -> 200: at '/data/0/added_at'"),
        "{text}"
    );

    // An error status without a documented schema must still be OpenAI's error shape.
    let errs = spec
        .validate(
            "GET",
            "/organization/users/{user_id}",
            "/organization/users/u",
            404,
            &json!({"error": "not found"}),
        )
        .expect_err("a string error must fail");
    assert_eq!(errs[0].pointer, "/error");

    // A 2xx the spec does not document fails; so does an operation it does not have.
    assert!(
        spec.validate("GET", "/organization/users", "/", 201, &good)
            .is_err()
    );
    assert!(
        spec.validate("GET", "/organization/nothing", "/", 200, &good)
            .is_err()
    );
}

#[test]
#[should_panic(expected = "break the OpenAI spec")]
fn a_recording_with_a_wrong_body_fails() {
    assert_recording(&Recording {
        responses: vec![RecordedResponse {
            method: "GET".to_owned(),
            template: "/organization/projects/{project_id}".to_owned(),
            path: "/organization/projects/proj_1".to_owned(),
            status: 200,
            body: r#"{"object": "organization.project", "id": "proj_1"}"#.to_owned(),
            malformed_by_fault: false,
        }],
        dropped: 0,
    });
}

/// The order of the scope check and validation, both ways: by default a key lacking the scope
/// is refused before its request is looked at; with `validation_before_permission` an invalid
/// request gets its validation answer first, and a valid one is refused for the scope without
/// changing anything. Answers still match the spec.
#[tokio::test]
async fn scope_check_before_or_after_validation() {
    let sb = crate::helpers::start_sandbox(SandboxConfig::default()).await;
    let http = reqwest::Client::new();
    let base = sb.base_url().as_str().trim_end_matches('/').to_owned();
    let (project, user) = sb.state().read(|org| {
        let project = org.default_project_id.clone();
        let members = org.project_users.get(&project);
        let outsider = org
            .users
            .iter()
            .find(|u| members.is_none_or(|m| !m.contains(&u.id)))
            .map(|u| u.id.clone())
            .expect("a user outside the default project");
        (project, outsider)
    });
    let call = |key: &str, method: Method, path: String, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let res = req.send().await.expect("request");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let read_only = sb.key(KeyProfile::ReadOnly).to_owned();
    let valid = || {
        (
            format!("/organization/projects/{project}/users"),
            Some(json!({"user_id": user, "role": "member"})),
        )
    };
    let invalid = || {
        (
            "/organization/projects/proj_nope/users".to_owned(),
            Some(json!({"user_id": user, "role": "member"})),
        )
    };
    let malformed = || {
        (
            format!("/organization/projects/{project}/users"),
            Some(json!({"role": 7})),
        )
    };
    let missing_write = |v: &Value| {
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Missing scopes: api.management.write"))
    };
    let snapshot = || sb.state().read(|org| format!("{org:?}"));
    let before = snapshot();

    // Permission first (the default): every write of the read-only key is a 401.
    for (path, body) in [valid(), invalid(), malformed()] {
        let (status, v) = call(&read_only, Method::POST, path, body).await;
        assert_eq!(status, 401, "{v}");
        assert!(missing_write(&v), "{v}");
    }
    assert_eq!(snapshot(), before);

    // Validation first: the invalid requests get their validation answers; the valid one is
    // refused for the scope, and nothing changed (the handler ran on a copy).
    sb.state().set_faults(Faults {
        validation_before_permission: true,
        ..Faults::default()
    });
    let (path, body) = invalid();
    let (status, v) = call(&read_only, Method::POST, path, body).await;
    assert_eq!(status, 404, "{v}");
    let (path, body) = malformed();
    let (status, v) = call(&read_only, Method::POST, path, body).await;
    assert_eq!(status, 400, "{v}");
    let (path, body) = valid();
    let (status, v) = call(&read_only, Method::POST, path, body).await;
    assert_eq!(status, 401, "{v}");
    assert!(missing_write(&v), "{v}");
    let (status, v) = call(
        &read_only,
        Method::DELETE,
        format!("/organization/projects/{project}/users/user-nobody"),
        None,
    )
    .await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(snapshot(), before);
    // Reads of a key with the scope, and writes of a key with write, work as before.
    let (status, v) = call(
        &read_only,
        Method::GET,
        format!("/organization/projects/{project}/users?limit=1"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (path, body) = valid();
    let (status, v) = call(sb.key(KeyProfile::All), Method::POST, path, body).await;
    assert_eq!(status, 200, "{v}");
    assert_ne!(snapshot(), before);
}
