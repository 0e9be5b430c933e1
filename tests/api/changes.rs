//! The changes feed end to end: sync the sandbox, change the organization as a person would in
//! the dashboard, sync again, and the feed lists exactly those changes, as drift, with the
//! right events; a failed sync in between records nothing; the filters and their errors.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use openai_governor::auth::Scope;
use openai_governor::store::Backend;
use openai_governor_sandbox::{Faults, KeyProfile, PageFault};
use serde_json::Value;

use crate::helpers::{TestApp, assert_problem};
use crate::inventory::{full_sync, sync};

/// A page of the feed at `path` (with a reader's token), asserting 200.
async fn feed(app: &TestApp, path: &str) -> Value {
    let res = app
        .get(path, &app.token("portal", &[Scope::InventoryRead]))
        .await;
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

/// `event key` of each change of a page.
fn events(page: &Value) -> BTreeSet<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["event"].as_str().unwrap(),
                c["key"].as_str().unwrap()
            )
        })
        .collect()
}

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

fn param(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// What the test changed in the dashboard, as the feed must report it.
struct Drift {
    expected: BTreeSet<String>,
    archived: String,
}

/// Changes the organization directly, as a person in the dashboard would: a member added to
/// a project, one removed, one's role changed, an API key deleted, a project archived, a
/// person added to the organization.
fn change_in_dashboard(app: &TestApp) -> Drift {
    app.sandbox.state().write(|org| {
        let now = org.now();
        let owns_key = |org: &openai_governor_sandbox::Org, p: &str, u: &str| {
            org.api_keys.get(p).is_some_and(|t| {
                t.iter()
                    .any(|k| org.api_key_json(p, k)["owner"]["user"]["id"] == u)
            })
        };
        let active: Vec<String> = org
            .projects
            .iter()
            .filter(|p| !p.archived())
            .map(|p| p.id.clone())
            .collect();
        let p = active
            .iter()
            .find(|p| {
                org.project_users.get(*p).map_or(0, |t| t.len()) >= 3
                    && org.api_keys.get(*p).is_some_and(|t| !t.is_empty())
            })
            .expect("an active project with members and keys")
            .clone();
        let q = active
            .iter()
            .find(|q| **q != p)
            .expect("a second active project")
            .clone();
        let members: Vec<(String, String)> = org.project_users[&p]
            .iter()
            .map(|m| (m.user_id.clone(), m.role.clone()))
            .collect();
        // Removing a key's owner would also change the key's access: pick one without keys.
        let (gone, _) = members
            .iter()
            .find(|(u, _)| !owns_key(org, &p, u))
            .expect("a member without keys")
            .clone();
        let (promoted, role) = members.iter().find(|(u, _)| *u != gone).unwrap().clone();
        let joiner = org
            .users
            .iter()
            .map(|u| u.id.clone())
            .find(|u| members.iter().all(|(m, _)| m != u) && !owns_key(org, &p, u))
            .expect("a user outside the project");
        let key = org.api_keys[&p].iter().next().unwrap().id.clone();
        // Archiving q takes its roles and its groups' role assignments out of the inventory.
        let mut archived_roles: Vec<String> = org
            .roles
            .iter()
            .filter(|r| r.usable_in_project(&q))
            .map(|r| format!("role.removed {q}/{}", r.id))
            .collect();
        for ((pid, g), t) in &org.project_group_roles {
            if *pid == q && org.project_groups.get(pid).is_some_and(|pg| pg.contains(g)) {
                archived_roles.extend(
                    t.iter()
                        .map(|a| format!("role_assignment.removed {q}/group/{g}/{}", a.role_id)),
                );
            }
        }

        let table = org.project_users.get_mut(&p).unwrap();
        table.remove(&gone);
        table.get_mut(&promoted).unwrap().role =
            if role == "owner" { "member" } else { "owner" }.to_owned();
        org.add_project_user(&p, &joiner, "member").unwrap();
        org.api_keys.get_mut(&p).unwrap().remove(&key);
        org.projects.get_mut(&q).unwrap().archived_at = Some(now);
        let newcomer = org
            .add_user("New Person", "New.Person@example.com", "reader", now)
            .unwrap();
        Drift {
            expected: [
                format!("project_member.removed {p}/{gone}"),
                format!("project_member.role_changed {p}/{promoted}"),
                format!("project_member.added {p}/{joiner}"),
                format!("api_key.removed {key}"),
                format!("project.archived {q}"),
                format!("user.added {newcomer}"),
            ]
            .into_iter()
            .chain(archived_roles)
            .collect(),
            archived: q,
        }
    })
}

async fn dashboard_changes_are_listed_as_drift(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let conn = app
        .create_connection("acme", app.sandbox.key(KeyProfile::All))
        .await;
    let id = conn["id"].as_str().unwrap();
    let other = app
        .create_connection("acme-again", app.sandbox.key(KeyProfile::All))
        .await;
    let other = other["id"].as_str().unwrap();

    let baseline = sync(&app, id).await;
    assert_eq!(baseline["status"], "succeeded", "{baseline}");
    assert_eq!(baseline["stats"]["changes"], Value::Null, "the baseline");
    assert_eq!(
        feed(&app, &format!("/v1/changes?connection_id={id}")).await["data"],
        serde_json::json!([])
    );

    let drift = change_in_dashboard(&app);

    // OpenAI fails this time: nothing is published, nothing recorded.
    app.sandbox.state().set_faults(Faults {
        page_fault: Some(PageFault {
            endpoint: "GET /organization/users".into(),
            page: 1,
            status: 500,
            times: 0,
        }),
        ..Faults::default()
    });
    // (Full syncs: these changes were written straight into the sandbox's state, without
    // audit-log events, so only a full sync can see them.)
    let failed = full_sync(&app, id).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["stats"]["changes"], Value::Null);
    assert_eq!(
        feed(&app, "/v1/changes").await["data"],
        serde_json::json!([])
    );

    app.sandbox.state().set_faults(Faults::default());
    let second = full_sync(&app, id).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(second["stats"]["changes"], drift.expected.len());

    let all = feed(&app, &format!("/v1/changes?connection_id={id}")).await;
    assert_eq!(events(&all), drift.expected, "exactly what was changed");
    assert_eq!(all["has_more"], false);
    for change in all["data"].as_array().unwrap() {
        assert_eq!(change["drift"], true);
        assert_eq!(change["by_governor"], false);
        assert_eq!(change["sync_id"], second["id"]);
        assert_eq!(change["connection_id"], id);
        assert_eq!(at(&change["seen_at"]), at(&second["finished_at"]));
    }
    let archived = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["event"] == "project.archived")
        .unwrap();
    assert_eq!(archived["key"], drift.archived.as_str());
    assert_eq!(archived["status_before"], "active");
    assert_eq!(archived["status_after"], "archived");
    assert_eq!(archived["before"]["status"], "active");
    assert!(archived["after"]["archived_at"].is_number());
    let added = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["event"] == "user.added")
        .unwrap();
    assert_eq!(added["email"], "new.person@example.com");
    assert_eq!(added["role_after"], "reader");
    assert_eq!(added["before"], Value::Null);

    // Filters.
    let members = feed(&app, "/v1/changes?kind=project_member").await;
    assert_eq!(events(&members).len(), 3);
    let by_event = feed(&app, "/v1/changes?event=project_member.role_changed").await;
    assert_eq!(events(&by_event).len(), 1);
    assert!(
        events(&by_event)
            .iter()
            .all(|e| e.starts_with("project_member.role_changed"))
    );
    let none_ours = feed(&app, "/v1/changes?drift=false").await;
    assert_eq!(none_ours["data"], serde_json::json!([]));
    assert_eq!(
        events(&feed(&app, "/v1/changes?drift=true").await),
        drift.expected
    );
    let before = param(at(&baseline["finished_at"]));
    assert_eq!(
        events(&feed(&app, &format!("/v1/changes?since={before}")).await),
        drift.expected
    );
    let later = param(at(&second["finished_at"]) + chrono::Duration::seconds(1));
    assert_eq!(
        feed(&app, &format!("/v1/changes?since={later}")).await["data"],
        serde_json::json!([])
    );
    // Another connection (the same organization, synced once: its baseline) has none.
    assert_eq!(sync(&app, other).await["status"], "succeeded");
    assert_eq!(
        feed(&app, &format!("/v1/changes?connection_id={other}")).await["data"],
        serde_json::json!([])
    );
    assert_eq!(
        feed(&app, &format!("/v1/connections/{other}/changes")).await["data"],
        serde_json::json!([])
    );
    assert_eq!(
        events(&feed(&app, &format!("/v1/connections/{id}/changes?kind=user")).await).len(),
        1
    );

    // Paging: two at a time, in the order recorded.
    let mut seen = BTreeSet::new();
    let mut after = String::new();
    let mut last_id = 0;
    loop {
        let page = feed(&app, &format!("/v1/changes?limit=2{after}")).await;
        for c in page["data"].as_array().unwrap() {
            let id = c["id"].as_i64().unwrap();
            assert!(id > last_id, "ordered by id");
            last_id = id;
        }
        seen.extend(events(&page));
        match page["next_cursor"].as_i64() {
            Some(c) => after = format!("&after={c}"),
            None => break,
        }
    }
    assert_eq!(seen, drift.expected);
    let polled = feed(&app, &format!("/v1/changes?after={last_id}")).await;
    assert_eq!(polled["data"], serde_json::json!([]), "nothing new since");

    // Bad parameters are problems naming the parameter.
    let token = app.token("portal", &[Scope::InventoryRead]);
    for (query, status, code) in [
        ("kind=nope", 400, "invalid_parameter"),
        ("event=user.archived", 400, "invalid_parameter"),
        ("event=user", 400, "invalid_parameter"),
        ("since=yesterday", 400, "invalid_parameter"),
        ("drift=maybe", 400, "invalid_parameter"),
        ("limit=0", 400, "invalid_parameter"),
        ("limit=501", 400, "invalid_parameter"),
        ("after=x", 400, "invalid_parameter"),
        ("connection_id=nope", 400, "invalid_parameter"),
        ("unknown=1", 400, "invalid_parameter"),
        (
            "connection_id=0196f1c5-0000-7000-8000-000000000000",
            404,
            "connection_not_found",
        ),
    ] {
        let res = app.get(&format!("/v1/changes?{query}"), &token).await;
        let problem = assert_problem(res, status, code).await;
        assert!(problem["detail"].is_string(), "{query}: {problem}");
    }
    let res = app
        .get(
            "/v1/connections/0196f1c5-0000-7000-8000-000000000000/changes",
            &token,
        )
        .await;
    assert_problem(res, 404, "connection_not_found").await;
    let res = app
        .get("/v1/changes", &app.token("ops", &[Scope::ConnectionsRead]))
        .await;
    assert_problem(res, 403, "insufficient_scope").await;
}

crate::backend_tests!(dashboard_changes_are_listed_as_drift);
