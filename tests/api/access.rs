//! Access questions end to end: people set up in the sandbox, synced over HTTP, then asked
//! about through the API — a person's paths across connections, who can reach a project,
//! the permissions of each role, the streamed export, and the errors.
//!
//! Two organizations from one sandbox: the first connection is synced, then the sandbox
//! changes (the person leaves, a new project, an invite) and a second connection is synced;
//! each connection keeps its own snapshot, as two organizations would.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openai_governor::auth::Scope;
use openai_governor::domain::permissions::{ORG_ROLES, PROJECT_ROLES};
use openai_governor::openai::{CreateInvite, CreateProject, InviteProject};
use openai_governor::store::Backend;
use openai_governor_sandbox::{KeyProfile, OrgShape, SandboxConfig};
use serde_json::{Value, json};

use crate::helpers::{
    Options, TestApp, assert_problem, openai_client, query_value, test_client_config,
};

/// Starts a sync and waits for it to succeed; returns the run.
async fn sync(app: &TestApp, connection: &str) -> Value {
    sync_within(app, connection, Duration::from_secs(60)).await
}

async fn sync_within(app: &TestApp, connection: &str, limit: Duration) -> Value {
    let res = app
        .post(
            &format!("/v1/connections/{connection}/syncs"),
            &app.admin_token(),
            json!({}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let deadline = Instant::now() + limit;
    loop {
        let run: Value = app
            .get(&location, &app.admin_token())
            .await
            .json()
            .await
            .unwrap();
        if run["status"] != "running" {
            assert_eq!(run["status"], "succeeded", "{run}");
            return run;
        }
        assert!(Instant::now() < deadline, "sync still running: {run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn reader(app: &TestApp) -> String {
    app.token("portal", &[Scope::InventoryRead])
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let res = app.get(path, &reader(app)).await;
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

/// A person's access through every page, each connection's projects joined again.
async fn person_all_pages(app: &TestApp, email: &str) -> Value {
    let path = format!("/v1/access?email={email}");
    let mut whole = get_json(app, &path).await;
    while let Some(cursor) = whole["next_cursor"].as_str().map(str::to_owned) {
        let page = get_json(app, &format!("{path}&after={}", query_value(&cursor))).await;
        let have = whole["connections"].as_array_mut().unwrap();
        for c in page["connections"].as_array().unwrap() {
            match have
                .iter_mut()
                .find(|h| h["connection_id"] == c["connection_id"])
            {
                Some(h) => h["projects"]
                    .as_array_mut()
                    .unwrap()
                    .extend(c["projects"].as_array().unwrap().iter().cloned()),
                None => have.push(c.clone()),
            }
        }
        whole["next_cursor"] = page["next_cursor"].clone();
    }
    whole
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

fn table(t: &[(&str, &[&str])], name: &str) -> Vec<String> {
    let mut out: Vec<String> = t
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    out.sort();
    out
}

/// The paths of a project in a connection's answer: (via, group or invite, role).
fn paths(project: &Value) -> Vec<(String, String, Value)> {
    project["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let via = p["via"].as_str().unwrap().to_owned();
            let by = p["group_name"]
                .as_str()
                .or(p["invite_id"].as_str())
                .unwrap_or("")
                .to_owned();
            (via, by, p["role"].clone())
        })
        .collect()
}

struct World {
    acme: String,
    globex: String,
    alice: String,
    project_a: String,
    project_b: String,
    project_c: String,
    group: String,
    member_role: String,
    invite: String,
    acme_run: Value,
}

/// Alice: in "acme", a reader, member of project A, in group "eng" which has access to
/// project B; in "globex", not a user but invited as owner of project C.
async fn world(app: &TestApp) -> World {
    let state = app.sandbox.state();
    let client = openai_client(&app.sandbox, KeyProfile::All, test_client_config());
    let alice = state
        .write(|org| {
            let now = org.now();
            org.add_user("Alice Example", "Alice@Corp.com", "reader", now)
        })
        .unwrap();
    let project = |name: &str| CreateProject {
        name: name.into(),
        ..Default::default()
    };
    let project_a = client
        .create_project(&project("Alpha"))
        .await
        .unwrap()
        .data
        .id;
    let project_b = client
        .create_project(&project("Beta"))
        .await
        .unwrap()
        .data
        .id;
    client
        .add_project_user(&project_a, &alice, "member")
        .await
        .unwrap();
    let group = client.create_group("eng").await.unwrap().data.id;
    client.add_group_user(&group, &alice).await.unwrap();
    let member_role = state.read(|org| {
        org.roles
            .iter()
            .find(|r| r.resource_type == "api.project" && r.name == "member")
            .map(|r| r.id.clone())
            .unwrap()
    });
    client
        .add_project_group(&project_b, &group, &member_role)
        .await
        .unwrap();
    let acme = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let acme_run = sync(app, &acme).await;

    // "globex": Alice has left; she is invited back to a new project only.
    client.delete_user(&alice).await.unwrap();
    let project_c = client
        .create_project(&project("Gamma"))
        .await
        .unwrap()
        .data
        .id;
    let invite = client
        .create_invite(&CreateInvite {
            email: "alice@corp.com".into(),
            role: "reader".into(),
            projects: Some(vec![InviteProject {
                id: project_c.clone(),
                role: "owner".into(),
            }]),
        })
        .await
        .unwrap()
        .data
        .id;
    let globex = app
        .create_connection("globex", app.sandbox.key(KeyProfile::All))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sync(app, &globex).await;
    World {
        acme,
        globex,
        alice,
        project_a,
        project_b,
        project_c,
        group,
        member_role,
        invite,
        acme_run,
    }
}

async fn a_person_s_access_across_connections_path_by_path(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    let answer = get_json(&app, "/v1/access?email=ALICE@corp.com").await;
    assert_eq!(answer["email"], "alice@corp.com");
    let conns = answer["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2, "{answer}");
    let (acme, globex) = (&conns[0], &conns[1]);
    assert_eq!(acme["connection_id"], w.acme.as_str());
    assert_eq!(acme["connection_name"], "acme");
    assert_eq!(acme["sync_id"], w.acme_run["id"]);
    assert!(acme["synced_at"].is_string());

    // Acme: her org role, with the permissions of the synced predefined role object.
    let user = &acme["user"];
    assert_eq!(user["id"], w.alice.as_str());
    assert_eq!(user["role"], "reader");
    assert_eq!(user["permissions_source"], "role");
    assert_eq!(strings(&user["permissions"]), table(ORG_ROLES, "reader"));
    let projects: BTreeMap<String, &Value> = acme["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["project_id"].as_str().unwrap().to_owned(), p))
        .collect();
    assert_eq!(projects.len(), 2, "{acme}");
    let a = projects[&w.project_a];
    assert_eq!(a["project_name"], "Alpha");
    assert_eq!(paths(a), [("direct".into(), "".into(), json!("member"))]);
    // The project's own synced `member` role answers (listed in project A).
    assert_eq!(a["paths"][0]["permissions_source"], "role");
    assert_eq!(a["paths"][0]["role_id"], w.member_role.as_str());
    assert_eq!(strings(&a["permissions"]), table(PROJECT_ROLES, "member"));
    let b = projects[&w.project_b];
    assert_eq!(
        paths(b),
        [("group".into(), "eng".into(), json!("member"))],
        "the group's project role, from its synced role assignment"
    );
    assert_eq!(b["paths"][0]["group_id"], w.group.as_str());
    assert_eq!(b["paths"][0]["role_id"], w.member_role.as_str());
    assert_eq!(b["paths"][0]["permissions_source"], "role");
    assert_eq!(strings(&b["permissions"]), table(PROJECT_ROLES, "member"));
    assert_eq!(acme["groups"], json!([{"id": w.group, "name": "eng"}]));
    assert_eq!(acme["invites"], json!([]));
    assert_eq!(acme["api_keys"], json!([]));

    // Globex: not a user, a pending invite granting project C as owner.
    assert_eq!(globex["connection_name"], "globex");
    assert_eq!(globex["user"], Value::Null);
    assert_eq!(globex["invites"][0]["id"], w.invite.as_str());
    assert_eq!(globex["invites"][0]["role"], "reader");
    assert_eq!(
        globex["invites"][0]["projects"],
        json!([{"id": w.project_c, "role": "owner"}])
    );
    let c = &globex["projects"][0];
    assert_eq!(c["project_id"], w.project_c.as_str());
    assert_eq!(c["project_name"], "Gamma");
    assert_eq!(
        paths(c),
        [("invite".into(), w.invite.clone(), json!("owner"))]
    );
    assert_eq!(strings(&c["permissions"]), table(PROJECT_ROLES, "owner"));
    assert_eq!(globex["groups"], json!([]));

    // By user id: the same person (her invite elsewhere is found through her email).
    let by_id = get_json(&app, &format!("/v1/access?user_id={}", w.alice)).await;
    assert_eq!(by_id["user_id"], w.alice.as_str());
    assert_eq!(by_id["connections"], answer["connections"]);

    // A seeded member who owns API keys: every key the snapshot holds for them.
    let keys: Value = get_json(
        &app,
        &format!("/v1/connections/{}/inventory/api_key?limit=500", w.acme),
    )
    .await;
    let owned = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["email"].is_string())
        .expect("a user-owned key")
        .clone();
    let owner_email = owned["email"].as_str().unwrap();
    let expected: Vec<&str> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["subject_id"] == owned["subject_id"])
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    let theirs = get_json(&app, &format!("/v1/access?email={owner_email}")).await;
    let acme_keys: Vec<&str> = theirs["connections"][0]["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    let mut expected = expected;
    expected.sort();
    let mut acme_keys = acme_keys;
    acme_keys.sort();
    assert_eq!(acme_keys, expected);
}

async fn who_can_reach_a_project_by_each_path(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    let state = app.sandbox.state();
    let reach = |pid: &str| format!("/v1/connections/{}/projects/{pid}/access", w.acme);

    let b = get_json(&app, &reach(&w.project_b)).await;
    assert_eq!(b["project_name"], "Beta");
    assert_eq!(b["sync_id"], w.acme_run["id"]);
    let alice = b["people"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user_id"] == w.alice.as_str())
        .expect("alice reaches B");
    assert_eq!(alice["email"], "alice@corp.com");
    assert_eq!(
        paths(alice),
        [("group".into(), "eng".into(), json!("member"))]
    );
    let owners: Vec<String> = state.read(|org| {
        org.users
            .iter()
            .filter(|u| u.role == "owner")
            .map(|u| u.id.clone())
            .collect()
    });
    for p in b["people"].as_array().unwrap() {
        let is_owner = owners.iter().any(|o| p["user_id"] == o.as_str());
        let via_owner = paths(p).iter().any(|(v, _, _)| v == "organization_owner");
        assert_eq!(is_owner, via_owner, "org owners reach every project: {p}");
    }

    let a = get_json(&app, &reach(&w.project_a)).await;
    let alice = a["people"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user_id"] == w.alice.as_str())
        .unwrap();
    assert_eq!(
        paths(alice),
        [("direct".into(), "".into(), json!("member"))]
    );

    // The default project: seeded members, pending invitees and service accounts.
    let default = state.read(|org| org.default_project_id.clone());
    let d = get_json(&app, &reach(&default)).await;
    let pending: Vec<String> = state.read(|org| {
        let now = org.now();
        let mut v: Vec<String> = org
            .invites
            .iter()
            .filter(|i| i.status(now) == "pending" && i.projects.iter().any(|p| p.id == default))
            .map(|i| i.email.to_lowercase())
            .collect();
        v.sort();
        v
    });
    assert!(!pending.is_empty());
    let mut invited: Vec<String> = d["people"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| paths(p).iter().any(|(v, _, _)| v == "invite"))
        .map(|p| {
            assert_eq!(p["user_id"], Value::Null, "invitees have no user id yet");
            p["email"].as_str().unwrap().to_owned()
        })
        .collect();
    invited.sort();
    assert_eq!(invited, pending);
    let direct: usize = d["people"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| paths(p).iter().any(|(v, _, _)| v == "direct"))
        .count();
    assert_eq!(
        direct,
        state.read(|org| org.project_users.get(&default).map_or(0, |t| t.len()))
    );
    assert_eq!(
        d["service_accounts"].as_array().unwrap().len(),
        state.read(|org| org.service_accounts.get(&default).map_or(0, |t| t.len()))
    );
    assert!(
        d["service_accounts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["role"] == "member" && s["permissions_source"] == "role")
    );

    // Who can manage the project: only owner paths remain.
    let writers = get_json(
        &app,
        &format!(
            "{}?permission=api.organization.projects.write",
            reach(&default)
        ),
    )
    .await;
    let people = writers["people"].as_array().unwrap();
    assert!(!people.is_empty());
    for p in people {
        for path in p["paths"].as_array().unwrap() {
            assert_eq!(path["role"], "owner", "{p}");
        }
    }
    assert_eq!(writers["service_accounts"], json!([]));
    assert!(people.len() < d["people"].as_array().unwrap().len());

    // Project C exists only in globex's snapshot.
    let res = app.get(&reach(&w.project_c), &reader(&app)).await;
    assert_problem(res, 404, "project_not_found").await;
    let c = get_json(
        &app,
        &format!(
            "/v1/connections/{}/projects/{}/access",
            w.globex, w.project_c
        ),
    )
    .await;
    let invitee = c["people"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["email"] == "alice@corp.com")
        .expect("alice, invited");
    assert_eq!(invitee["user_id"], Value::Null);
    assert_eq!(
        paths(invitee),
        [("invite".into(), w.invite.clone(), json!("owner"))]
    );
}

/// The legacy role table agrees with the predefined roles the sandbox reports.
async fn predefined_roles_agree_with_the_synced_ones(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sync(&app, &id).await;
    let roles = get_json(
        &app,
        &format!("/v1/connections/{id}/inventory/role?limit=500"),
    )
    .await;
    let (mut org_roles, mut project_roles) = (0, 0);
    for r in roles["data"].as_array().unwrap() {
        if r["data"]["predefined_role"] == true {
            let name = r["role"].as_str().unwrap();
            let (t, n) = match r["status"].as_str() {
                Some("api.organization") => (ORG_ROLES, &mut org_roles),
                _ => (PROJECT_ROLES, &mut project_roles),
            };
            assert_eq!(strings(&r["data"]["permissions"]), table(t, name));
            *n += 1;
        }
    }
    assert_eq!(org_roles, ORG_ROLES.len());
    // Predefined project roles are listed in every active project.
    assert!(project_roles >= PROJECT_ROLES.len() && project_roles % PROJECT_ROLES.len() == 0);
}

async fn export_streams_the_whole_snapshot(backend: Backend) {
    // More users than one export chunk (1000), so the user list spans queries.
    let options = Options {
        sandbox: SandboxConfig {
            org: OrgShape {
                users: 1100,
                ..OrgShape::small()
            },
            ..SandboxConfig::default()
        },
        ..Options::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    let id = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Before the first sync: every kind, empty.
    let res = app
        .get(&format!("/v1/connections/{id}/export"), &reader(&app))
        .await;
    assert_eq!(res.status(), 200);
    let empty: Value = res.json().await.unwrap();
    assert_eq!(empty["sync_id"], Value::Null);
    assert_eq!(empty["items"]["user"], json!([]));

    let run = sync(&app, &id).await;
    let started = Instant::now();
    let res = app
        .get(&format!("/v1/connections/{id}/export"), &reader(&app))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let text = res.text().await.unwrap();
    eprintln!("export of {} bytes in {:?}", text.len(), started.elapsed());
    let doc: Value = serde_json::from_str(&text).expect("one JSON document");
    assert_eq!(doc["connection"], json!({"id": id, "name": "acme"}));
    assert_eq!(doc["sync_id"], run["id"]);
    assert!(doc["synced_at"].is_string());
    let items = doc["items"].as_object().unwrap();
    assert_eq!(items.len(), 13, "every kind is present");
    for (kind, list) in items {
        let expected = run["stats"]["counts"][kind].as_u64().unwrap_or(0);
        assert_eq!(list.as_array().unwrap().len() as u64, expected, "{kind}");
    }
    let users = items["user"].as_array().unwrap();
    assert_eq!(users.len(), 1100);
    let keys: Vec<&str> = users.iter().map(|u| u["key"].as_str().unwrap()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "in key order, no duplicates across chunks");
}

async fn access_errors_are_clear(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = reader(&app);

    // Nobody synced yet / unknown people: an empty answer, not a 404.
    let none = get_json(&app, "/v1/access?email=nobody@nowhere.example").await;
    assert_eq!(none["connections"], json!([]));
    let project = app
        .sandbox
        .state()
        .read(|org| org.default_project_id.clone());
    let res = app
        .get(
            &format!("/v1/connections/{id}/projects/{project}/access"),
            &token,
        )
        .await;
    assert_problem(res, 404, "project_not_found").await;
    sync(&app, &id).await;
    let none = get_json(&app, "/v1/access?user_id=user-nobody").await;
    assert_eq!(none["connections"], json!([]));

    for bad in [
        "/v1/access",
        "/v1/access?email=a@b.c&user_id=user-x",
        "/v1/access?email=not-an-email",
        "/v1/access?email=a@b.c&colour=red",
        "/v1/access?user_id=",
    ] {
        let res = app.get(bad, &token).await;
        assert_problem(res, 400, "invalid_parameter").await;
    }
    let res = app
        .get(
            &format!("/v1/connections/{id}/projects/{project}/access?permission="),
            &token,
        )
        .await;
    assert_problem(res, 400, "invalid_parameter").await;
    let res = app.get("/v1/connections/not-a-uuid/export", &token).await;
    assert_problem(res, 400, "invalid_parameter").await;

    let missing = "0192f000-0000-7000-8000-000000000000";
    let res = app
        .get(
            &format!("/v1/connections/{missing}/projects/{project}/access"),
            &token,
        )
        .await;
    assert_problem(res, 404, "connection_not_found").await;
    let res = app
        .get(&format!("/v1/connections/{missing}/export"), &token)
        .await;
    assert_problem(res, 404, "connection_not_found").await;
    let res = app
        .get(
            &format!("/v1/connections/{id}/projects/proj_nope/access"),
            &token,
        )
        .await;
    let problem = assert_problem(res, 404, "project_not_found").await;
    assert!(problem["detail"].as_str().unwrap().contains("proj_nope"));

    // Every access question needs inventory:read.
    let writer = app.token("ops", &[Scope::ConnectionsRead, Scope::ConnectionsWrite]);
    for path in [
        "/v1/access?email=a@b.c".to_owned(),
        format!("/v1/connections/{id}/projects/{project}/access"),
        format!("/v1/connections/{id}/export"),
    ] {
        let res = app.get(&path, &writer).await;
        assert_problem(res, 403, "insufficient_scope").await;
    }
}

/// A project with hundreds of members comes in pages: every person once, in order, the
/// service accounts on the first page, and a cursor that is not ours is refused.
async fn who_can_reach_a_large_project_comes_in_pages(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let project = app.sandbox.state().write(|org| {
        let now = org.now();
        let project = org.default_project_id.clone();
        for n in 0..230 {
            let id = org
                .add_user(
                    &format!("P{n}"),
                    &format!("p{n:03}@corp.com"),
                    "reader",
                    now,
                )
                .unwrap();
            org.add_project_user(&project, &id, "member").ok();
        }
        project
    });
    let id = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sync(&app, &id).await;
    let path = format!("/v1/connections/{id}/projects/{project}/access");
    let first = get_json(&app, &path).await;
    assert_eq!(
        (
            first["people"].as_array().unwrap().len(),
            &first["has_more"]
        ),
        (100, &json!(true)),
        "a page of 100 unless asked"
    );
    let whole = get_json(&app, &format!("{path}?limit=1000")).await;
    assert_eq!(whole["has_more"], false);
    let everyone: Vec<Value> = whole["people"].as_array().unwrap().clone();
    assert!(everyone.len() > 230, "{}", everyone.len());

    let mut paged: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit=100&after={}", query_value(c)),
            None => format!("{path}?limit=100"),
        };
        let page = get_json(&app, &url).await;
        let people = page["people"].as_array().unwrap();
        assert!(people.len() <= 100);
        let accounts = page["service_accounts"].as_array().unwrap();
        assert_eq!(
            accounts.is_empty(),
            pages > 0,
            "service accounts come with the first page only"
        );
        paged.extend(people.iter().cloned());
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(page["has_more"], true);
                let last = people.last().unwrap();
                let position = format!(
                    "{} {}",
                    last["email"].as_str().unwrap_or(""),
                    last["user_id"].as_str().unwrap_or("")
                );
                assert_eq!(c, position, "the cursor is the last person's position");
                cursor = Some(c.to_owned());
            }
            None => {
                assert_eq!(page["has_more"], false);
                break;
            }
        }
    }
    assert_eq!(pages, everyone.len().div_ceil(100));
    assert_eq!(
        paged, everyone,
        "the pages are the whole answer, once, in order"
    );

    // Any text names a position among the people; only its length is bounded.
    let too_long = format!("after={}", "a".repeat(1001));
    for bad in ["limit=0", "limit=1001", &too_long] {
        let res = app.get(&format!("{path}?{bad}"), &reader(&app)).await;
        assert_problem(res, 400, "invalid_parameter").await;
    }
}

/// Someone in hundreds of projects, seen through two connections: the pages hold every
/// project of each connection once, in order, at most `limit` a page.
async fn a_person_in_hundreds_of_projects_comes_in_pages(backend: Backend) {
    let options = Options {
        sandbox: SandboxConfig {
            org: OrgShape {
                projects: 250,
                archived_share: 0.0,
                ..OrgShape::small()
            },
            ..SandboxConfig::default()
        },
        ..Options::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    let email = app.sandbox.state().write(|org| {
        let now = org.now();
        let id = org
            .add_user("Busy", "busy@corp.com", "reader", now)
            .unwrap();
        let projects: Vec<String> = org.projects.iter().map(|p| p.id.clone()).collect();
        for p in projects {
            org.add_project_user(&p, &id, "member").ok();
        }
        "busy@corp.com".to_owned()
    });
    for name in ["acme", "acme-eu"] {
        let id = app
            .create_connection(name, app.sandbox.key(KeyProfile::All))
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        sync(&app, &id).await;
    }
    let path = format!("/v1/access?email={email}");
    let whole = get_json(&app, &path).await;
    assert_eq!(whole["has_more"], false);
    let flatten = |connections: &[Value]| -> Vec<(String, String)> {
        connections
            .iter()
            .flat_map(|c| {
                let conn = c["connection_id"].as_str().unwrap().to_owned();
                c["projects"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |p| (conn.clone(), p["project_id"].as_str().unwrap().to_owned()))
            })
            .collect()
    };
    let all = flatten(whole["connections"].as_array().unwrap());
    assert_eq!(whole["connections"].as_array().unwrap().len(), 2);
    assert_eq!(
        all.len(),
        2 * 250,
        "every project, through both connections"
    );

    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&limit=120&after={}", query_value(c)),
            None => format!("{path}&limit=120"),
        };
        let page = get_json(&app, &url).await;
        let connections = page["connections"].as_array().unwrap();
        for c in connections {
            assert_eq!(c["user"]["email"], email.as_str(), "each page stands alone");
        }
        let got = flatten(connections);
        assert!(got.len() <= 120);
        paged.extend(got);
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(page["has_more"], true);
                cursor = Some(c.to_owned());
            }
            None => {
                assert_eq!(page["has_more"], false);
                break;
            }
        }
    }
    assert_eq!(pages, all.len().div_ceil(120));
    assert_eq!(paged, all, "the pages are the whole answer, once, in order");

    for bad in [
        "limit=0",
        "limit=1001",
        "after=not-a-cursor",
        "after=bm90IGpzb24",
    ] {
        let res = app.get(&format!("{path}&{bad}"), &reader(&app)).await;
        assert_problem(res, 400, "invalid_parameter").await;
    }
}

/// The 50,000-user organization (`OrgShape::large()`), synced, then asked about: for a spread
/// of people and projects, the answers hold exactly what the sandbox's own state holds.
async fn the_large_organization_answers_like_the_sandbox(backend: Backend) {
    let options = Options {
        sandbox: SandboxConfig {
            org: OrgShape::large(),
            ..SandboxConfig::default()
        },
        configure: Some(Box::new(|c| {
            c.openai_rate = openai_governor::openai::RateBudgetConfig::unlimited();
        })),
        ..Options::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    let id = app
        .create_connection("large", app.sandbox.key(KeyProfile::All))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sync_within(&app, &id, Duration::from_secs(600)).await;
    type Expected = (String, BTreeMap<String, String>, Vec<String>);
    // Per sampled person: org role, active project -> role, groups.
    let (people, projects, owners) = app.sandbox.state().read(|org| {
        let active: BTreeMap<&str, bool> = org
            .projects
            .iter()
            .map(|p| (p.id.as_str(), p.archived_at.is_none()))
            .collect();
        let people: Vec<(String, Expected)> = org
            .users
            .iter()
            .step_by(997)
            .map(|u| {
                let projects = org
                    .project_users
                    .iter()
                    .filter(|(p, _)| active.get(p.as_str()) == Some(&true))
                    .filter_map(|(p, members)| Some((p.clone(), members.get(&u.id)?.role.clone())))
                    .collect();
                let mut groups: Vec<String> = org
                    .group_users
                    .iter()
                    .filter(|(_, m)| m.get(&u.id).is_some())
                    .map(|(g, _)| g.clone())
                    .collect();
                groups.sort();
                (u.email.to_lowercase(), (u.role.clone(), projects, groups))
            })
            .collect();
        let projects: Vec<(String, BTreeMap<String, String>)> = org
            .projects
            .iter()
            .filter(|p| p.archived_at.is_none())
            .step_by(97)
            .map(|p| {
                let members = org
                    .project_users
                    .get(&p.id)
                    .map(|m| {
                        m.iter()
                            .map(|m| (m.user_id.clone(), m.role.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                (p.id.clone(), members)
            })
            .collect();
        let owners: BTreeSet<String> = org
            .users
            .iter()
            .filter(|u| u.role == "owner")
            .map(|u| u.id.clone())
            .collect();
        (people, projects, owners)
    });
    assert!(people.len() >= 50 && projects.len() >= 18 && owners.len() > 1_000);
    for (email, (role, expected_projects, groups)) in &people {
        let answer = person_all_pages(&app, email).await;
        let c = &answer["connections"][0];
        assert_eq!(c["user"]["role"], role.as_str(), "{email}");
        let direct: BTreeMap<String, String> = c["projects"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| {
                let path = p["paths"]
                    .as_array()?
                    .iter()
                    .find(|x| x["via"] == "direct")?;
                Some((
                    p["project_id"].as_str()?.to_owned(),
                    path["role"].as_str()?.to_owned(),
                ))
            })
            .collect();
        assert_eq!(&direct, expected_projects, "{email}: direct projects");
        let got: Vec<String> = c["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(&got, groups, "{email}: groups");
    }
    for (project, members) in &projects {
        let path = format!("/v1/connections/{id}/projects/{project}/access");
        let mut people: Vec<Value> = Vec::new();
        let mut page = get_json(&app, &path).await;
        loop {
            people.extend(page["people"].as_array().unwrap().iter().cloned());
            let Some(next) = page["next_cursor"].as_str() else {
                break;
            };
            page = get_json(&app, &format!("{path}?after={}", query_value(next))).await;
        }
        let direct: BTreeMap<String, String> = people
            .iter()
            .filter_map(|r| {
                let path = r["paths"]
                    .as_array()?
                    .iter()
                    .find(|x| x["via"] == "direct")?;
                Some((
                    r["user_id"].as_str()?.to_owned(),
                    path["role"].as_str()?.to_owned(),
                ))
            })
            .collect();
        assert_eq!(&direct, members, "{project}: direct members");
        // Every owner reaches it, once: the pages of owners neither skip nor repeat anyone.
        let as_owner: Vec<&str> = people
            .iter()
            .filter(|r| {
                r["paths"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|x| x["via"] == "organization_owner"))
            })
            .filter_map(|r| r["user_id"].as_str())
            .collect();
        assert_eq!(as_owner.len(), owners.len(), "{project}: owners once each");
        assert!(as_owner.iter().all(|o| owners.contains(*o)), "{project}");
        let mut ids: Vec<&str> = people
            .iter()
            .filter_map(|r| r["user_id"].as_str())
            .collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "{project}: nobody twice");
    }
}

/// A connection's organization owners: every owner the sandbox has, in pages by user id, each
/// with the owner role's permissions; empty before the first sync; the usual errors.
async fn a_connection_s_owners_come_in_pages(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/connections/{id}/owners");
    let before = get_json(&app, &path).await;
    assert_eq!(before["data"], json!([]));
    assert_eq!(before["sync_id"], Value::Null);
    let mut expected: Vec<String> = app.sandbox.state().write(|org| {
        let now = org.now();
        for n in 0..4 {
            org.add_user(&format!("O{n}"), &format!("o{n}@corp.com"), "owner", now)
                .unwrap();
        }
        org.users
            .iter()
            .filter(|u| u.role == "owner")
            .map(|u| u.id.clone())
            .collect()
    });
    expected.sort();
    assert!(expected.len() >= 5);
    sync(&app, &id).await;
    let mut seen = Vec::new();
    let mut url = format!("{path}?limit=2");
    loop {
        let page = get_json(&app, &url).await;
        assert!(page["sync_id"].is_string());
        for u in page["data"].as_array().unwrap() {
            assert_eq!(u["role"], "owner");
            assert_eq!(strings(&u["permissions"]), table(ORG_ROLES, "owner"));
            seen.push(u["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("{path}?limit=2&after={}", query_value(c)),
            None => break,
        }
    }
    assert_eq!(seen, expected);

    for bad in ["limit=0", "limit=1001", "after=", "colour=red"] {
        let res = app.get(&format!("{path}?{bad}"), &reader(&app)).await;
        assert_problem(res, 400, "invalid_parameter").await;
    }
    let res = app
        .get(&path, &app.token("portal", &[Scope::AccessWrite]))
        .await;
    assert_problem(res, 403, "insufficient_scope").await;
    let res = app
        .get(
            "/v1/connections/0192f000-0000-7000-8000-000000000000/owners",
            &reader(&app),
        )
        .await;
    assert_problem(res, 404, "connection_not_found").await;
}

/// Everyone holding a permission anywhere, paged three at a time, is exactly what each
/// connection's users (by organization role) and each project's who-can-reach (filtered by
/// the permission) say, in connection, user id, project, person order.
async fn holders_of_a_permission_agree_with_every_project_s_answer(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let w = world(&app).await;
    let mut connections = [w.acme.clone(), w.globex.clone()];
    connections.sort();
    type Row = (String, Option<String>, Option<String>, Option<String>);
    for permission in [
        "api.organization.projects.api_keys.write",
        "api.organization.read",
        "api.organization.admin",
    ] {
        let mut expected: Vec<Row> = Vec::new();
        for c in &connections {
            let users = get_json(
                &app,
                &format!("/v1/connections/{c}/inventory/user?limit=500"),
            )
            .await;
            let mut org: Vec<Row> = users["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|u| {
                    let role = u["role"].as_str().unwrap_or_default();
                    ORG_ROLES
                        .iter()
                        .any(|(n, perms)| *n == role && perms.contains(&permission))
                })
                .map(|u| {
                    (
                        c.clone(),
                        None,
                        u["email"].as_str().map(str::to_owned),
                        u["subject_id"].as_str().map(str::to_owned),
                    )
                })
                .collect();
            org.sort_by(|a, b| a.3.cmp(&b.3));
            expected.extend(org);
            let projects = get_json(
                &app,
                &format!("/v1/connections/{c}/inventory/project?limit=500"),
            )
            .await;
            let mut ids: Vec<String> = projects["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["key"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            for p in ids {
                let reach = get_json(
                    &app,
                    &format!("/v1/connections/{c}/projects/{p}/access?permission={permission}"),
                )
                .await;
                for r in reach["people"].as_array().unwrap() {
                    expected.push((
                        c.clone(),
                        Some(p.clone()),
                        r["email"].as_str().map(str::to_owned),
                        r["user_id"].as_str().map(str::to_owned),
                    ));
                }
            }
        }
        assert!(!expected.is_empty(), "{permission}");
        let mut got: Vec<Row> = Vec::new();
        let base = format!("/v1/access/holders?permission={permission}&limit=3");
        let mut url = base.clone();
        loop {
            let page = get_json(&app, &url).await;
            assert_eq!(page["permission"], permission);
            let data = page["data"].as_array().unwrap();
            assert!(data.len() <= 3);
            for h in data {
                if h["project_id"].is_null() {
                    assert!(h["organization_role"].is_string(), "{h}");
                } else {
                    assert!(!h["paths"].as_array().unwrap().is_empty(), "{h}");
                }
                got.push((
                    h["connection_id"].as_str().unwrap().to_owned(),
                    h["project_id"].as_str().map(str::to_owned),
                    h["email"].as_str().map(str::to_owned),
                    h["user_id"].as_str().map(str::to_owned),
                ));
            }
            match page["next_cursor"].as_str() {
                Some(c) => url = format!("{base}&after={}", query_value(c)),
                None => break,
            }
        }
        assert_eq!(got, expected, "{permission}");
    }
    for bad in [
        "/v1/access/holders",
        "/v1/access/holders?permission=",
        "/v1/access/holders?permission=x&limit=0",
        "/v1/access/holders?permission=x&after=zzz",
    ] {
        assert_problem(app.get(bad, &reader(&app)).await, 400, "invalid_parameter").await;
    }
    let res = app
        .get(
            "/v1/access/holders?permission=x",
            &app.token("portal", &[Scope::AccessWrite]),
        )
        .await;
    assert_problem(res, 403, "insufficient_scope").await;
}

crate::backend_tests!(
    a_person_s_access_across_connections_path_by_path,
    who_can_reach_a_project_by_each_path,
    predefined_roles_agree_with_the_synced_ones,
    export_streams_the_whole_snapshot,
    access_errors_are_clear,
    who_can_reach_a_large_project_comes_in_pages,
    a_person_in_hundreds_of_projects_comes_in_pages,
    the_large_organization_answers_like_the_sandbox,
    a_connection_s_owners_come_in_pages,
    holders_of_a_permission_agree_with_every_project_s_answer,
);
