//! Inventory syncs end to end: the service syncs a sandbox organization over HTTP and the
//! store must then hold exactly what the sandbox holds, object by object; failures in the
//! middle of a sync leave the previous snapshot readable; one sync per connection at a time.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use openai_governor::auth::Scope;
use openai_governor::store::Backend;
use openai_governor_sandbox::{Faults, KeyProfile, OrgShape, PageFault, RateLimit, SandboxConfig};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, assert_problem};

/// Starts a sync and waits until it has finished; returns the finished run.
pub(crate) async fn sync(app: &TestApp, connection: &str) -> Value {
    start_and_wait(app, connection, "").await
}

/// A full sync (even where an incremental one would be possible), finished.
pub(crate) async fn full_sync(app: &TestApp, connection: &str) -> Value {
    start_and_wait(app, connection, "?full=true").await
}

async fn start_and_wait(app: &TestApp, connection: &str, query: &str) -> Value {
    let res = app
        .post(
            &format!("/v1/connections/{connection}/syncs{query}"),
            &app.admin_token(),
            json!({}),
        )
        .await;
    assert_eq!(
        res.status(),
        202,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let run: Value = res.json().await.unwrap();
    assert_eq!(run["status"], "running");
    assert_eq!(
        location,
        format!("/v1/syncs/{}", run["id"].as_str().unwrap())
    );
    wait(app, &location).await
}

/// Polls a sync until it is no longer running.
async fn wait(app: &TestApp, location: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run: Value = app
            .get(location, &app.admin_token())
            .await
            .json()
            .await
            .unwrap();
        if run["status"] != "running" {
            return run;
        }
        assert!(Instant::now() < deadline, "sync still running: {run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every item of a kind (following cursors with a small page to exercise paging), and the
/// `sync_id` of the snapshot they came from.
async fn items(app: &TestApp, connection: &str, kind: &str, filter: &str) -> (Vec<Value>, Value) {
    let mut all = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let res = app
            .get(
                &format!("/v1/connections/{connection}/inventory/{kind}?limit=7{filter}{after}"),
                &app.token("portal", &[Scope::InventoryRead]),
            )
            .await;
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.unwrap();
        pages += 1;
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => after = format!("&after={c}"),
            None => return (all, page["sync_id"].clone()),
        }
        assert!(pages < 1000, "paging does not end");
    }
}

fn keys(items: &[Value], f: impl Fn(&Value) -> String) -> BTreeSet<String> {
    items.iter().map(f).collect()
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// Compares the connection's current snapshot with the sandbox's state, kind by kind and
/// object by object; returns the synced projects.
async fn assert_store_matches_sandbox(app: &TestApp, id: &str, run_id: &Value) -> Vec<Value> {
    let state = app.sandbox.state();
    let (users, sync_id) = items(app, id, "user", "").await;
    assert_eq!(&sync_id, run_id, "readers see the new snapshot");
    assert_eq!(
        keys(&users, |u| format!(
            "{} {} {}",
            s(&u["key"]),
            s(&u["email"]),
            s(&u["role"])
        )),
        state.read(|org| org
            .users
            .iter()
            .map(|u| format!("{} {} {}", u.id, u.email.to_lowercase(), u.role))
            .collect::<BTreeSet<_>>()),
    );

    let (projects, _) = items(app, id, "project", "").await;
    assert_eq!(
        keys(&projects, |p| format!(
            "{} {}",
            s(&p["key"]),
            s(&p["status"])
        )),
        state.read(|org| org
            .projects
            .iter()
            .map(|p| format!(
                "{} {}",
                p.id,
                if p.archived() { "archived" } else { "active" }
            ))
            .collect::<BTreeSet<_>>()),
        "archived projects included"
    );

    let (members, _) = items(app, id, "project_member", "").await;
    let expected_members = state.read(|org| {
        org.projects
            .iter()
            .filter(|p| !p.archived())
            .flat_map(|p| {
                org.project_users
                    .get(&p.id)
                    .into_iter()
                    .flat_map(|t| t.iter())
                    .map(|m| format!("{} {} {}", p.id, m.user_id, m.role))
                    .collect::<Vec<_>>()
            })
            .collect::<BTreeSet<_>>()
    });
    assert!(!expected_members.is_empty());
    assert_eq!(
        keys(&members, |m| format!(
            "{} {} {}",
            s(&m["parent_id"]),
            s(&m["subject_id"]),
            s(&m["role"])
        )),
        expected_members
    );

    // One project's members by filter, as a portal asks "who is in project X".
    let project = members[0]["parent_id"].as_str().unwrap().to_owned();
    let (one, _) = items(app, id, "project_member", &format!("&parent_id={project}")).await;
    assert!(one.iter().all(|m| m["parent_id"] == project.as_str()));
    assert_eq!(
        one.len(),
        state.read(|org| org.project_users.get(&project).map_or(0, |t| t.len()))
    );

    let (invites, _) = items(app, id, "invite", "").await;
    assert_eq!(
        keys(&invites, |i| s(&i["key"])),
        state.read(|org| org
            .invites
            .iter()
            .map(|i| i.id.clone())
            .collect::<BTreeSet<_>>())
    );

    let (groups, _) = items(app, id, "group", "").await;
    assert_eq!(
        keys(&groups, |g| s(&g["key"])),
        state.read(|org| org
            .groups
            .iter()
            .map(|g| g.id.clone())
            .collect::<BTreeSet<_>>())
    );
    let (group_members, _) = items(app, id, "group_member", "").await;
    assert_eq!(
        keys(&group_members, |m| format!(
            "{} {}",
            s(&m["parent_id"]),
            s(&m["subject_id"])
        )),
        state.read(|org| org
            .group_users
            .iter()
            .flat_map(|(g, t)| t.iter().map(move |m| format!("{g} {}", m.user_id)))
            .collect::<BTreeSet<_>>())
    );

    let active = |org: &openai_governor_sandbox::Org, pid: &str| {
        org.projects.get(pid).is_some_and(|p| !p.archived())
    };
    let (accounts, _) = items(app, id, "service_account", "").await;
    assert_eq!(
        keys(&accounts, |a| format!(
            "{} {}",
            s(&a["parent_id"]),
            s(&a["key"])
        )),
        state.read(|org| org
            .service_accounts
            .iter()
            .filter(|(p, _)| active(org, p))
            .flat_map(|(p, t)| t.iter().map(move |a| format!("{p} {}", a.id)))
            .collect::<BTreeSet<_>>())
    );
    let (api_keys, _) = items(app, id, "api_key", "").await;
    assert_eq!(
        keys(&api_keys, |k| format!(
            "{} {}",
            s(&k["parent_id"]),
            s(&k["key"])
        )),
        state.read(|org| org
            .api_keys
            .iter()
            .filter(|(p, _)| active(org, p))
            .flat_map(|(p, t)| t.iter().map(move |k| format!("{p} {}", k.id)))
            .collect::<BTreeSet<_>>())
    );
    assert!(
        api_keys.iter().all(|k| k["subject_id"].is_string()),
        "every key has its owner"
    );

    // Roles: the organization's keyed by id, each active project's (predefined project roles
    // and its custom ones) keyed `project/id`.
    let (roles, _) = items(app, id, "role", "").await;
    let expected_roles = state.read(|org| {
        let mut out: BTreeSet<String> = org
            .roles
            .iter()
            .filter(|r| r.resource_type == "api.organization")
            .map(|r| format!("{} - {} {}", r.id, r.name, r.resource_type))
            .collect();
        for p in org.projects.iter().filter(|p| !p.archived()) {
            out.extend(
                org.roles
                    .iter()
                    .filter(|r| r.usable_in_project(&p.id))
                    .map(|r| format!("{}/{} {} {} {}", p.id, r.id, p.id, r.name, r.resource_type)),
            );
        }
        out
    });
    assert!(expected_roles.iter().any(|r| r.contains("api.project")));
    assert_eq!(
        keys(&roles, |r| format!(
            "{} {} {} {}",
            s(&r["key"]),
            r["parent_id"].as_str().unwrap_or("-"),
            s(&r["role"]),
            s(&r["status"])
        )),
        expected_roles
    );
    assert!(roles.iter().all(|r| r["subject_id"] == r["data"]["id"]));

    // Role assignments of groups: organization level, and project level in active projects
    // the group has access to.
    let (assigned, _) = items(app, id, "role_assignment", "").await;
    let expected_assigned = state.read(|org| {
        let role = |rid: &str| org.roles.get(rid).map(|r| r.name.clone());
        let mut out = BTreeSet::new();
        for (g, t) in &org.group_roles {
            for a in t.iter() {
                if let Some(name) = role(&a.role_id) {
                    out.insert(format!("organization/group/{g}/{} - {g} {name}", a.role_id));
                }
            }
        }
        for ((p, g), t) in &org.project_group_roles {
            let has_access = org.project_groups.get(p).is_some_and(|pg| pg.contains(g));
            if !active(org, p) || !has_access {
                continue;
            }
            for a in t.iter() {
                if let Some(name) = role(&a.role_id) {
                    out.insert(format!("{p}/group/{g}/{} {p} {g} {name}", a.role_id));
                }
            }
        }
        out
    });
    assert!(
        expected_assigned
            .iter()
            .any(|a| a.starts_with("organization/"))
            && expected_assigned.iter().any(|a| a.starts_with("proj")),
        "the seeded organization has group role assignments at both levels"
    );
    assert_eq!(
        keys(
            &assigned
                .iter()
                .filter(|a| a["status"] == "group")
                .cloned()
                .collect::<Vec<_>>(),
            |a| format!(
                "{} {} {} {}",
                s(&a["key"]),
                a["parent_id"].as_str().unwrap_or("-"),
                s(&a["subject_id"]),
                s(&a["role"])
            )
        ),
        expected_assigned
    );

    let (costs, _) = items(app, id, "cost", "").await;
    assert!(!costs.is_empty(), "30 days of costs");
    assert!(
        costs
            .iter()
            .all(|c| c["data"]["amount"]["value"].is_number())
    );
    let (admin_keys, _) = items(app, id, "admin_key", "").await;
    assert_eq!(
        admin_keys.len(),
        state.read(|org| org.admin_keys.len()),
        "admin keys, redacted"
    );
    for k in &admin_keys {
        let text = k.to_string();
        for key in app.sandbox.keys() {
            assert!(!text.contains(&key.value), "an admin key value leaked");
        }
    }
    projects
}

async fn sync_mirrors_the_sandbox_object_by_object(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let conn = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let id = conn["id"].as_str().unwrap();
    app.sandbox.state().reset_counters();

    let run = sync(&app, id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["requested_by"], "admin@test");
    assert!(run["finished_at"].is_string());
    let requests = app.sandbox.counters().total;
    assert_eq!(
        run["stats"]["upstream_requests"], requests,
        "every request is counted"
    );
    assert_eq!(run["stats"]["rate_limited"], 0);

    let projects = assert_store_matches_sandbox(&app, id, &run["id"]).await;
    let (users, _) = items(&app, id, "user", "").await;
    assert_eq!(run["stats"]["counts"]["user"], users.len());

    // Request economy: nothing fetched twice, archived projects never asked for members.
    let counters = app.sandbox.counters();
    for (endpoint, count) in &counters.endpoints {
        if endpoint.contains("{project_id}") || endpoint.contains("{group_id}") {
            continue;
        }
        assert_eq!(
            count.requests, 1,
            "{endpoint} fetched once (one page each here)"
        );
    }
    let active_projects = projects.iter().filter(|p| p["status"] == "active").count() as u64;
    assert_eq!(
        counters.requests("GET /organization/projects/{project_id}/users"),
        active_projects,
        "one members request per active project"
    );
    assert_eq!(
        counters.requests("GET /projects/{project_id}/roles"),
        active_projects,
        "one roles request per active project"
    );
    let (groups, project_groups) = app.sandbox.state().read(|org| {
        let project_groups = org
            .project_groups
            .iter()
            .filter(|(p, _)| org.projects.get(p).is_some_and(|p| !p.archived()))
            .map(|(_, t)| t.len() as u64)
            .sum::<u64>();
        (org.groups.len() as u64, project_groups)
    });
    assert!(project_groups > 0);
    assert_eq!(
        counters.requests("GET /organization/groups/{group_id}/roles"),
        groups,
        "one role-assignment request per group"
    );
    assert_eq!(
        counters.requests("GET /projects/{project_id}/groups/{group_id}/roles"),
        project_groups,
        "one role-assignment request per group of an active project"
    );
    assert_eq!(
        counters.requests("GET /organization/users/{user_id}/roles"),
        0,
        "users' role assignments are off by default"
    );

    // The sync is listed on the connection.
    let list: Value = app
        .get(&format!("/v1/connections/{id}/syncs"), &app.admin_token())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["id"], run["id"]);
}

/// With `OG_SYNC_USER_ROLES`, every user's organization role assignments are synced too, one
/// request per user.
async fn users_role_assignments_are_synced_when_asked_for(backend: Backend) {
    let options = Options {
        sync_user_roles: true,
        ..Options::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    let conn = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let id = conn["id"].as_str().unwrap();
    app.sandbox.state().reset_counters();
    let run = sync(&app, id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let (assigned, _) = items(&app, id, "role_assignment", "&status=user").await;
    let expected = app.sandbox.state().read(|org| {
        org.user_roles
            .iter()
            .flat_map(|(u, t)| {
                t.iter().filter_map(move |a| {
                    let name = &org.roles.get(&a.role_id)?.name;
                    Some(format!("organization/user/{u}/{} {u} {name}", a.role_id))
                })
            })
            .collect::<BTreeSet<_>>()
    });
    assert!(
        !expected.is_empty(),
        "the seed assigns roles to a few users"
    );
    assert_eq!(
        keys(&assigned, |a| format!(
            "{} {} {}",
            s(&a["key"]),
            s(&a["subject_id"]),
            s(&a["role"])
        )),
        expected
    );
    assert_eq!(
        app.sandbox
            .counters()
            .requests("GET /organization/users/{user_id}/roles"),
        app.sandbox.state().read(|org| org.users.len() as u64),
        "one request per user"
    );
}

async fn a_key_without_usage_scope_syncs_everything_else(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let conn = app
        .create_connection("no-usage", app.sandbox.key(KeyProfile::NoUsage))
        .await;
    let id = conn["id"].as_str().unwrap();
    let run = sync(&app, id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(
        run["stats"]["skipped"]["cost"]
            .as_str()
            .unwrap()
            .contains("api.usage.read"),
        "{run}"
    );
    let (costs, _) = items(&app, id, "cost", "").await;
    assert!(costs.is_empty());
    let (users, _) = items(&app, id, "user", "").await;
    assert_eq!(users.len(), app.sandbox.state().read(|org| org.users.len()));
}

async fn a_sync_failing_midway_leaves_the_previous_snapshot(backend: Backend) {
    let options = Options {
        sandbox: SandboxConfig {
            org: OrgShape {
                users: 250,
                ..OrgShape::small()
            },
            ..SandboxConfig::default()
        },
        ..Options::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    let conn = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let id = conn["id"].as_str().unwrap();
    let first = sync(&app, id).await;
    assert_eq!(first["status"], "succeeded");
    let (before, _) = items(&app, id, "user", "").await;

    // People join (in the dashboard), then the third page of the users list fails for good.
    app.sandbox
        .state()
        .write(|org| {
            let now = org.now();
            org.add_user("Late Joiner", "late@example.com", "reader", now)
        })
        .unwrap();
    app.sandbox.state().set_faults(Faults {
        page_fault: Some(PageFault {
            endpoint: "GET /organization/users".into(),
            page: 3,
            status: 500,
            times: 0,
        }),
        ..Faults::default()
    });
    // Full syncs: the joiner was written straight into the sandbox, with no audit event.
    let failed = full_sync(&app, id).await;
    assert_eq!(failed["status"], "failed");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("OpenAI"), "{error}");
    assert!(
        error.contains("request"),
        "names OpenAI's request id: {error}"
    );

    // Readers still see the first snapshot, whole.
    let (after, sync_id) = items(&app, id, "user", "").await;
    assert_eq!(sync_id, first["id"]);
    assert_eq!(after, before);
    let (members, _) = items(&app, id, "project_member", "").await;
    assert!(!members.is_empty());

    // Once OpenAI recovers, the next sync publishes the change.
    app.sandbox.state().set_faults(Faults::default());
    let third = full_sync(&app, id).await;
    assert_eq!(third["status"], "succeeded");
    let (users, sync_id) = items(&app, id, "user", "&email=LATE@example.com").await;
    assert_eq!(sync_id, third["id"]);
    assert_eq!(users.len(), 1, "the email filter is case-insensitive");
}

async fn one_sync_per_connection_at_a_time(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let conn = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let id = conn["id"].as_str().unwrap();
    app.sandbox.state().set_faults(Faults {
        latency_ms: 200,
        ..Faults::default()
    });
    let path = format!("/v1/connections/{id}/syncs");
    let res = app.post(&path, &app.admin_token(), json!({})).await;
    assert_eq!(res.status(), 202);
    let running: Value = res.json().await.unwrap();
    let res = app.post(&path, &app.admin_token(), json!({})).await;
    let problem = assert_problem(res, 409, "sync_in_progress").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(running["id"].as_str().unwrap()),
        "names the running sync: {problem}"
    );
    let done = wait(
        &app,
        &format!("/v1/syncs/{}", running["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(done["status"], "succeeded");
    app.sandbox.state().set_faults(Faults::default());
    assert_eq!(sync(&app, id).await["status"], "succeeded", "free again");
}

async fn inventory_errors_are_clear(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin_token();
    let conn = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let id = conn["id"].as_str().unwrap();

    // Before the first sync: an empty page that says so.
    let page: Value = app
        .get(&format!("/v1/connections/{id}/inventory/user"), &admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"], json!([]));
    assert_eq!(page["sync_id"], Value::Null);
    assert_eq!(page["synced_at"], Value::Null);

    let missing = "0192f000-0000-7000-8000-000000000000";
    let res = app
        .post(
            &format!("/v1/connections/{missing}/syncs"),
            &admin,
            json!({}),
        )
        .await;
    assert_problem(res, 404, "connection_not_found").await;
    let res = app.get(&format!("/v1/syncs/{missing}"), &admin).await;
    assert_problem(res, 404, "sync_not_found").await;
    let res = app.get("/v1/syncs/not-a-uuid", &admin).await;
    let body = assert_problem(res, 400, "invalid_parameter").await;
    assert_eq!(body["detail"], "`not-a-uuid` is not a sync id (a UUID)");
    let res = app
        .get(&format!("/v1/connections/{id}/inventory/people"), &admin)
        .await;
    let problem = assert_problem(res, 404, "not_found").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("project_member")
    );
    let res = app
        .get(
            &format!("/v1/connections/{id}/inventory/user?limit=0"),
            &admin,
        )
        .await;
    assert_problem(res, 400, "invalid_parameter").await;
    let res = app
        .get(
            &format!("/v1/connections/{id}/inventory/user?colour=red"),
            &admin,
        )
        .await;
    assert_problem(res, 400, "invalid_parameter").await;

    // Scopes: reading needs inventory:read, starting needs connections:write.
    let reader = app.token("portal", &[Scope::InventoryRead]);
    let res = app
        .post(&format!("/v1/connections/{id}/syncs"), &reader, json!({}))
        .await;
    assert_problem(res, 403, "insufficient_scope").await;
    let writer = app.token("ops", &[Scope::ConnectionsWrite]);
    let res = app
        .get(&format!("/v1/connections/{id}/inventory/user"), &writer)
        .await;
    assert_problem(res, 403, "insufficient_scope").await;

    // Deleting the connection deletes its inventory and syncs.
    let run = sync(&app, id).await;
    let res = app.delete(&format!("/v1/connections/{id}"), &admin).await;
    assert_eq!(res.status(), 204);
    let res = app
        .get(
            &format!("/v1/syncs/{}", run["id"].as_str().unwrap()),
            &admin,
        )
        .await;
    assert_problem(res, 404, "sync_not_found").await;
}

/// Scheduled syncs: a new connection is synced without anyone asking, and again once the
/// interval (plus its jitter) has passed since the last one.
async fn the_scheduler_syncs_every_connection(backend: Backend) {
    let options = Options {
        sync_interval: Duration::from_millis(600),
        ..Options::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    let conn = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let id = conn["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let runs = loop {
        let list: Value = app
            .get(&format!("/v1/connections/{id}/syncs"), &app.admin_token())
            .await
            .json()
            .await
            .unwrap();
        let runs = list["data"].as_array().unwrap().clone();
        let done = runs.iter().filter(|r| r["status"] == "succeeded").count();
        if done >= 2 {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "scheduled syncs did not run: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(runs.iter().all(|r| r["requested_by"] == "scheduler"));
    let started = |r: &Value| {
        chrono::DateTime::parse_from_rfc3339(r["started_at"].as_str().unwrap()).unwrap()
    };
    let (newer, older) = (started(&runs[0]), started(&runs[1]));
    assert!(
        newer - older >= chrono::Duration::milliseconds(600),
        "not before the interval: {older} → {newer}"
    );
}

/// Incremental sync: changes made through OpenAI's API and in the dashboard (the sandbox's
/// control API) are read from the audit log; only what they touch is fetched again, and the
/// store then matches the sandbox object by object.
async fn incremental_sync_fetches_only_what_changed(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let conn = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let id = conn["id"].as_str().unwrap();
    app.sandbox.state().reset_counters();
    let first = sync(&app, id).await;
    assert_eq!(first["stats"]["mode"], "full");
    assert_eq!(
        first["stats"]["full_reason"],
        "first sync of this connection"
    );
    assert!(first["stats"]["audit_mark"].is_object(), "{first}");
    let full_requests = first["stats"]["upstream_requests"].as_u64().unwrap();

    // Pick a project with members and a user outside it.
    let (project, member, outsider) = app.sandbox.state().read(|org| {
        let p = org
            .projects
            .iter()
            .find(|p| {
                !p.archived()
                    && p.id != org.default_project_id
                    && org.project_users.get(&p.id).is_some_and(|t| t.len() >= 2)
            })
            .expect("an active project with members");
        let members = &org.project_users[&p.id];
        let member = members
            .iter()
            .find(|m| m.role != "owner")
            .or_else(|| members.iter().last())
            .unwrap()
            .user_id
            .clone();
        let outsider = org
            .users
            .iter()
            .find(|u| !members.contains(&u.id))
            .unwrap()
            .id
            .clone();
        (p.id.clone(), member, outsider)
    });
    let http = reqwest::Client::new();
    let api = |path: &str| {
        format!(
            "{}{path}",
            app.sandbox.base_url().as_str().trim_end_matches('/')
        )
    };
    let dashboard = |path: &str| {
        app.sandbox
            .control_url()
            .join(&format!("dashboard{path}"))
            .unwrap()
    };
    let key = app.sandbox.key(KeyProfile::All).to_owned();
    // Through OpenAI's API: someone joins the project.
    let res = http
        .post(api(&format!("/organization/projects/{project}/users")))
        .bearer_auth(&key)
        .json(&json!({"user_id": outsider, "role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
    // In the dashboard: a member leaves the project, a new person joins the organization,
    // and a project is created.
    let res = http
        .delete(dashboard(&format!(
            "/organization/projects/{project}/users/{member}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let res = http
        .post(app.sandbox.control_url().join("users").unwrap())
        .json(&json!({"email": "newcomer@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = http
        .post(dashboard("/organization/projects"))
        .json(&json!({"name": "fresh"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "{}",
        res.text().await.unwrap_or_default()
    );

    app.sandbox.state().reset_counters();
    let second = sync(&app, id).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(second["stats"]["mode"], "incremental", "{second}");
    assert!(
        second["stats"]["audit_events"].as_u64().unwrap() >= 4,
        "{second}"
    );
    assert_store_matches_sandbox(&app, id, &second["id"]).await;

    // Only what changed was fetched: no list of all users or all projects, members of the
    // touched projects only.
    let counters = app.sandbox.counters();
    assert_eq!(
        counters.requests("GET /organization/users"),
        0,
        "{counters:?}"
    );
    assert_eq!(
        counters.requests("GET /organization/projects"),
        0,
        "{counters:?}"
    );
    let member_lists = counters.requests("GET /organization/projects/{project_id}/users");
    assert!(member_lists <= 3, "touched projects only: {counters:?}");
    let requests = second["stats"]["upstream_requests"].as_u64().unwrap();
    assert_eq!(requests, counters.total);
    // 1 audit-log page + 1 costs + 3 users (the joiner, the leaver, the newcomer) + the
    // members of 3 projects (the one changed, the default one the newcomer joined, the new
    // one) + the new project and its service accounts, keys, groups and roles: 13, against
    // the full sync's whole walk.
    assert_eq!(requests, 13, "{counters:?}");
    assert!(requests < full_requests);
    assert_eq!(
        second["stats"]["last_full_at"],
        first["stats"]["last_full_at"]
    );

    // Nothing happened since: the next one reads the audit log and the costs, nothing else.
    app.sandbox.state().reset_counters();
    let quiet = sync(&app, id).await;
    assert_eq!(quiet["stats"]["mode"], "incremental");
    assert_eq!(quiet["stats"]["audit_events"], 0);
    assert_eq!(app.sandbox.counters().total, 2, "audit log + costs");
    assert_store_matches_sandbox(&app, id, &quiet["id"]).await;

    // Asked for, a full sync reads everything again.
    let full = full_sync(&app, id).await;
    assert_eq!(full["stats"]["mode"], "full");
    assert_eq!(full["stats"]["full_reason"], "a full sync was requested");
}

/// A larger organization of another shape, synced through a storm of 429s (the sync slows
/// down and finishes, exact), then a sync whose per-project calls hang until they time out
/// (it fails; readers keep the complete previous snapshot).
async fn syncs_through_rate_limits_and_timeouts(backend: Backend) {
    let options = Options {
        sandbox: SandboxConfig {
            seed: 7,
            org: OrgShape {
                users: 180,
                projects: 12,
                archived_share: 0.25,
                members_per_project: 9,
                groups: 6,
                members_per_group: 5,
                custom_roles: 3,
                service_accounts_per_project: 2,
                api_keys_per_project: 2,
                invites: 8,
                audit_days: 2,
            },
            ..SandboxConfig::default()
        },
        openai_request_timeout: Duration::from_millis(300),
        ..Options::default()
    };
    let Some(app) = TestApp::spawn_with(backend, options).await else {
        return;
    };
    let conn = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let id = conn["id"].as_str().unwrap();
    app.sandbox.state().set_faults(Faults {
        rate_limits: vec![RateLimit::per_template(
            "GET /organization/projects/*",
            4,
            1,
        )],
        ..Faults::default()
    });
    let stormy = sync(&app, id).await;
    assert_eq!(stormy["status"], "succeeded", "{stormy}");
    let throttled = app.sandbox.counters().status(429);
    assert!(throttled > 0, "the storm was met");
    assert_eq!(stormy["stats"]["rate_limited"], throttled, "and counted");
    assert_store_matches_sandbox(&app, id, &stormy["id"]).await;
    let (before, _) = items(&app, id, "project_member", "").await;

    app.sandbox.state().set_faults(Faults {
        hang_rate: 1.0,
        only: Some("GET /organization/projects/{project_id}/users".into()),
        ..Faults::default()
    });
    let hung = full_sync(&app, id).await;
    assert_eq!(hung["status"], "failed");
    assert!(
        hung["error"].as_str().unwrap().contains("timed out"),
        "{hung}"
    );
    let (after, sync_id) = items(&app, id, "project_member", "").await;
    assert_eq!(
        sync_id, stormy["id"],
        "the previous snapshot is still served"
    );
    assert_eq!(after, before);
}

crate::backend_tests!(
    syncs_through_rate_limits_and_timeouts,
    incremental_sync_fetches_only_what_changed,
    the_scheduler_syncs_every_connection,
    sync_mirrors_the_sandbox_object_by_object,
    a_key_without_usage_scope_syncs_everything_else,
    users_role_assignments_are_synced_when_asked_for,
    a_sync_failing_midway_leaves_the_previous_snapshot,
    one_sync_per_connection_at_a_time,
    inventory_errors_are_clear,
);
