//! The sandbox's write paths used by grants, over real HTTP: a write whose answer is lost
//! (`hold_after_apply`), invites that expire (`POST /_sandbox/invites/{id}/expire`), and
//! OpenAI's answers to adding, removing and inviting members (held to the spec on drop).

use std::time::Duration;

use openai_governor_sandbox::{KeyProfile, SandboxConfig, SandboxHandle};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::contract::{assert_recording, recording_sandbox};
use crate::helpers::start_sandbox;

const ADD_MEMBER: &str = "POST /organization/projects/{project_id}/users";

/// Raw calls: `/v1` with the `all` key, and the control API.
struct Calls {
    http: Client,
    v1: String,
    control: String,
    key: String,
}

impl Calls {
    fn new(sb: &SandboxHandle) -> Calls {
        Calls {
            http: Client::new(),
            v1: sb.base_url().as_str().trim_end_matches('/').to_owned(),
            control: sb.control_url().as_str().trim_end_matches('/').to_owned(),
            key: sb.key(KeyProfile::All).to_owned(),
        }
    }

    fn v1(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.v1))
            .bearer_auth(&self.key)
    }

    async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.v1(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.expect("v1 request")).await
    }

    async fn control(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.control));
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req.send().await.expect("control request")).await
    }

    async fn set_faults(&self, faults: Value) {
        let (status, v) = self.control(Method::PUT, "/faults", Some(faults)).await;
        assert_eq!(status, 200, "{v}");
    }

    /// A new organization member (as if they had joined in the dashboard).
    async fn new_user(&self, email: &str) -> String {
        let (status, v) = self
            .control(Method::POST, "/users", Some(json!({"email": email})))
            .await;
        assert_eq!(status, 200, "{v}");
        v["data"][0]["id"].as_str().expect("user id").to_owned()
    }

    async fn held(&self) -> u64 {
        let (_, c) = self.control(Method::GET, "/counters", None).await;
        c["endpoints"][ADD_MEMBER]["held"].as_u64().unwrap_or(0)
    }

    /// Waits (bounded) until `n` requests are held: a release sent earlier would release none.
    async fn until_held(&self, n: u64) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while self.held().await < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the request was held");
    }
}

async fn answer(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn default_project(sb: &SandboxHandle) -> String {
    sb.state().read(|org| org.default_project_id.clone())
}

fn other_project(sb: &SandboxHandle) -> String {
    sb.state().read(|org| {
        org.projects
            .iter()
            .find(|p| p.id != org.default_project_id && !p.archived())
            .map(|p| p.id.clone())
            .expect("a second active project in the seed")
    })
}

/// An OpenAI error object: `{"error": {message, type, param, code}}`.
fn assert_error(v: &Value, param: Option<&str>) {
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(e["type"], "invalid_request_error", "{v}");
    assert_eq!(e["param"].as_str(), param, "{v}");
}

#[tokio::test]
async fn a_held_write_lands_but_its_answer_never_comes() {
    let sb = start_sandbox(SandboxConfig::default()).await;
    let calls = Calls::new(&sb);
    let project = default_project(&sb);
    let user = calls.new_user("held@example.com").await;
    calls
        .set_faults(json!({"hold_after_apply": {"endpoint": ADD_MEMBER, "times": 1}}))
        .await;

    // Our side gives up (a timeout, or a crash): the connection goes away while held.
    let err = calls
        .v1(
            Method::POST,
            &format!("/organization/projects/{project}/users"),
        )
        .json(&json!({"user_id": user, "role": "member"}))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("no answer");
    assert!(err.is_timeout(), "{err}");

    // Yet the write happened at "OpenAI".
    let (status, member) = calls
        .api(
            Method::GET,
            &format!("/organization/projects/{project}/users/{user}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{member}");
    assert_eq!(member["role"], "member");
    assert_eq!(calls.held().await, 1);
    let (_, faults) = calls.control(Method::GET, "/faults", None).await;
    assert_eq!(faults["hold_after_apply"], Value::Null, "times: 1 is spent");

    // Retrying the write is answered as OpenAI answers a duplicate: 400.
    let (status, v) = calls
        .api(
            Method::POST,
            &format!("/organization/projects/{project}/users"),
            Some(json!({"user_id": user, "role": "member"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_error(&v, Some("user_id"));
}

#[tokio::test]
async fn held_requests_answer_503_when_released_changed_or_shut_down() {
    let sb = recording_sandbox(SandboxConfig::default()).await;
    let state = sb.state().clone();
    let calls = Calls::new(&sb);
    let project = default_project(&sb);
    let add = |user: String| {
        let req = calls
            .v1(
                Method::POST,
                &format!("/organization/projects/{project}/users"),
            )
            .json(&json!({"user_id": user, "role": "member"}));
        tokio::spawn(async move { answer(req.send().await.expect("answered")).await })
    };
    let within = |t: tokio::task::JoinHandle<(StatusCode, Value)>| async {
        tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("answered once released")
            .expect("task")
    };
    calls
        .set_faults(json!({"hold_after_apply": {"endpoint": "POST /organization/projects/*"}}))
        .await;

    // Released, the faults staying as they are.
    let first = add(calls.new_user("first@example.com").await);
    calls.until_held(1).await;
    let (status, faults) = calls.control(Method::POST, "/faults/release", None).await;
    assert_eq!(status, 200);
    assert_eq!(faults["hold_after_apply"]["times"], 0, "{faults}");
    let (status, v) = within(first).await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["type"], "server_error", "{v}");

    // Released by setting the faults again.
    let second = add(calls.new_user("second@example.com").await);
    calls.until_held(2).await;
    calls.set_faults(json!({})).await;
    assert_eq!(within(second).await.0, 503);

    // Released by shutdown.
    calls
        .set_faults(json!({"hold_after_apply": {"endpoint": ADD_MEMBER, "times": 0}}))
        .await;
    let third = add(calls.new_user("third@example.com").await);
    calls.until_held(3).await;
    let stopping = tokio::spawn(sb.shutdown());
    assert_eq!(within(third).await.0, 503);
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("shut down")
        .expect("task")
        .expect("served");
    let members = state.read(|org| org.project_users[&project].len());
    assert!(members >= 3);
    assert_recording(&state.stop_recording());
}

#[tokio::test]
async fn an_invite_can_be_made_to_expire() {
    let sb = start_sandbox(SandboxConfig::default()).await;
    let calls = Calls::new(&sb);
    let invite = |email: &'static str| {
        let calls = &calls;
        async move {
            let (status, v) = calls
                .api(
                    Method::POST,
                    "/organization/invites",
                    Some(json!({"email": email, "role": "reader", "projects": []})),
                )
                .await;
            assert_eq!(status, 200, "{v}");
            v["id"].as_str().expect("invite id").to_owned()
        }
    };
    let id = invite("late@example.com").await;

    let (status, v) = calls
        .control(Method::POST, &format!("/invites/{id}/expire"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "organization.invite");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["status"], "expired");
    let (_, seen) = calls
        .api(Method::GET, &format!("/organization/invites/{id}"), None)
        .await;
    assert_eq!(seen["status"], "expired", "{seen}");

    // Not pending any more: cannot expire again, nor be accepted.
    let (status, v) = calls
        .control(Method::POST, &format!("/invites/{id}/expire"), None)
        .await;
    assert_eq!(status, 400, "{v}");
    assert_error(&v, None);
    let (status, _) = calls
        .control(Method::POST, &format!("/invites/{id}/accept"), None)
        .await;
    assert_eq!(status, 400);
    let (status, v) = calls
        .control(Method::POST, "/invites/invite-nope/expire", None)
        .await;
    assert_eq!(status, 404, "{v}");

    // The person can be invited again; an accepted invite cannot expire.
    let again = invite("late@example.com").await;
    let (status, _) = calls
        .control(Method::POST, &format!("/invites/{again}/accept"), None)
        .await;
    assert_eq!(status, 200);
    let (status, v) = calls
        .control(Method::POST, &format!("/invites/{again}/expire"), None)
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("accepted")),
        "{v}"
    );
}

#[tokio::test]
async fn accepted_invites_join_exactly_the_listed_projects() {
    let sb = start_sandbox(SandboxConfig::default()).await;
    let calls = Calls::new(&sb);
    let default = default_project(&sb);
    let other = other_project(&sb);

    // `projects` omitted: the default project (legacy); `[]`: none; a list: exactly those.
    let cases = [
        (
            "omitted@example.com",
            None,
            vec![(default.clone(), "member")],
        ),
        ("empty@example.com", Some(json!([])), vec![]),
        (
            "listed@example.com",
            Some(json!([{"id": other, "role": "owner"}])),
            vec![(other.clone(), "owner")],
        ),
        (
            "both@example.com",
            Some(json!([{"id": other, "role": "member"}, {"id": default, "role": "owner"}])),
            vec![(other.clone(), "member"), (default.clone(), "owner")],
        ),
    ];
    for (email, projects, expected) in cases {
        let mut body = json!({"email": email, "role": "reader"});
        if let Some(p) = projects {
            body["projects"] = p;
        }
        let (status, inv) = calls
            .api(Method::POST, "/organization/invites", Some(body))
            .await;
        assert_eq!(status, 200, "{inv}");
        let listed: Vec<(String, String)> = inv["projects"]
            .as_array()
            .expect("projects")
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().unwrap().to_owned(),
                    p["role"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|(p, r)| (p.clone(), (*r).to_owned()))
            .collect();
        assert_eq!(listed, want, "{email}: the invite lists its projects");

        let id = inv["id"].as_str().unwrap();
        let (status, user) = calls
            .control(Method::POST, &format!("/invites/{id}/accept"), None)
            .await;
        assert_eq!(status, 200, "{user}");
        let user = user["id"].as_str().unwrap();
        for project in [&default, &other] {
            let (status, m) = calls
                .api(
                    Method::GET,
                    &format!("/organization/projects/{project}/users/{user}"),
                    None,
                )
                .await;
            match want.iter().find(|(p, _)| p == project) {
                Some((_, role)) => {
                    assert_eq!(status, 200, "{email} in {project}: {m}");
                    assert_eq!(m["role"], role.as_str(), "{email} in {project}");
                }
                None => assert_eq!(status, 404, "{email} not in {project}: {m}"),
            }
        }
    }
}

#[tokio::test]
async fn membership_writes_answer_as_openai_does() {
    let sb = start_sandbox(SandboxConfig::default()).await;
    let calls = Calls::new(&sb);
    let project = other_project(&sb);
    let users = format!("/organization/projects/{project}/users");
    let user = calls.new_user("member@example.com").await;

    // Removing someone who is not a member: 404 with an error object.
    let (status, v) = calls
        .api(Method::DELETE, &format!("{users}/{user}"), None)
        .await;
    assert_eq!(status, 404, "{v}");
    assert_error(&v, None);

    // Adding: 200, then the same again: 400 on `user_id`, the membership unchanged.
    let add = json!({"user_id": user, "role": "member"});
    let (status, v) = calls.api(Method::POST, &users, Some(add.clone())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "organization.project.user");
    let owner = json!({"user_id": user, "role": "owner"});
    let (status, v) = calls.api(Method::POST, &users, Some(owner)).await;
    assert_eq!(status, 400, "{v}");
    assert_error(&v, Some("user_id"));
    let (_, m) = calls
        .api(Method::GET, &format!("{users}/{user}"), None)
        .await;
    assert_eq!(m["role"], "member");

    // Removing the member: 200, then again: 404.
    let (status, v) = calls
        .api(Method::DELETE, &format!("{users}/{user}"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["deleted"], true);
    let (status, v) = calls
        .api(Method::DELETE, &format!("{users}/{user}"), None)
        .await;
    assert_eq!(status, 404, "{v}");

    // Someone outside the organization cannot be added (invite them instead): 400.
    let (status, v) = calls
        .api(
            Method::POST,
            &users,
            Some(json!({"user_id": "user-nobody", "role": "member"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_error(&v, Some("user_id"));
}

#[tokio::test]
async fn scim_managed_groups_refuse_member_writes() {
    let sb = start_sandbox(SandboxConfig::default()).await;
    let calls = Calls::new(&sb);
    let user = calls.new_user("scim@example.com").await;
    let (status, g) = calls
        .api(
            Method::POST,
            "/organization/groups",
            Some(json!({"name": "idp-managed"})),
        )
        .await;
    assert_eq!(status, 200, "{g}");
    let group = g["id"].as_str().unwrap().to_owned();
    let members = format!("/organization/groups/{group}/users");
    let (status, _) = calls
        .api(Method::POST, &members, Some(json!({"user_id": user})))
        .await;
    assert_eq!(status, 200);
    // The identity provider takes the group over.
    sb.state().write(|org| {
        org.groups.get_mut(&group).unwrap().is_scim_managed = true;
    });

    let other = calls.new_user("scim2@example.com").await;
    let (status, v) = calls
        .api(Method::POST, &members, Some(json!({"user_id": other})))
        .await;
    assert_eq!(status, 400, "{v}");
    assert_error(&v, None);
    let (status, v) = calls
        .api(Method::DELETE, &format!("{members}/{user}"), None)
        .await;
    assert_eq!(status, 400, "{v}");
    assert_error(&v, None);
    let (_, list) = calls.api(Method::GET, &members, None).await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, vec![user.as_str()], "membership unchanged");
}
