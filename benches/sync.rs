//! Sync benchmark: a full inventory sync of a generated organization through the real service
//! (HTTP API, store, OpenAI client) against the sandbox with latency and per-endpoint rate
//! limits, printing wall time, OpenAI requests next to their lower bound, 429s met and peak
//! memory; an incremental sync after ~1% of the memberships changed; the latency of the
//! `access for a person` query; then the peak memory of syncing a 50,000-user organization.
//!
//! `cargo bench --bench sync` (release; SQLite, and Postgres when `TEST_POSTGRES_URL` names a
//! server); `-- --small` for CI (a small organization, no latency).
//! Peak memory is the process's resident high-water mark (`VmHWM`), reset before each sync;
//! the sandbox runs in the same process, so its organization is part of the baseline shown.

mod common;

use common::{ScratchDb, Service};
use openai_governor_sandbox::{
    self as sandbox, Faults, KeyProfile, OrgShape, RateLimit, SandboxConfig,
};
use serde_json::{Value, json};

/// Resident memory (current, peak) in MiB, from `/proc/self/status` (Linux).
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak to the current resident size (Linux `clear_refs` 5).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The fewest requests that can read the organization: every list at its largest page size,
/// at least one request per list (even an empty one), plus the one audit-log read that lets
/// the next sync be incremental.
fn lower_bound(sb: &sandbox::SandboxHandle, cost_days: u64) -> u64 {
    let pages = |n: usize, page: usize| (n.div_ceil(page)).max(1) as u64;
    sb.state().read(|org| {
        let active: Vec<&String> = org
            .projects
            .iter()
            .filter(|p| !p.archived())
            .map(|p| &p.id)
            .collect();
        let per_project = |map: &std::collections::HashMap<String, usize>, page| {
            active
                .iter()
                .map(|p| pages(map.get(*p).copied().unwrap_or(0), page))
                .sum::<u64>()
        };
        let count = |f: &dyn Fn(&str) -> usize| {
            active
                .iter()
                .map(|p| (p.to_string(), f(p)))
                .collect::<std::collections::HashMap<_, _>>()
        };
        let members = count(&|p| org.project_users.get(p).map_or(0, |t| t.len()));
        let accounts = count(&|p| org.service_accounts.get(p).map_or(0, |t| t.len()));
        let keys = count(&|p| org.api_keys.get(p).map_or(0, |t| t.len()));
        let groups = count(&|p| org.project_groups.get(p).map_or(0, |t| t.len()));
        let project_roles = count(&|p| org.roles.iter().filter(|r| r.usable_in_project(p)).count());
        // One role-assignment list per group of each active project, at most 1000 a page.
        let group_assignments: u64 = active
            .iter()
            .flat_map(|p| {
                org.project_groups
                    .get(*p)
                    .into_iter()
                    .flat_map(|t| t.iter())
                    .map(move |g| (p, g))
            })
            .map(|(p, g)| {
                let n = org
                    .project_group_roles
                    .get(&((*p).clone(), g.group_id.clone()))
                    .map_or(0, |t| t.len());
                pages(n, 1000)
            })
            .sum();
        let org_roles = org
            .roles
            .iter()
            .filter(|r| r.resource_type == "api.organization")
            .count();
        1 + pages(org.users.len(), 100)
            + pages(org.invites.len(), 100)
            + pages(org.projects.len(), 100)
            + pages(org.groups.len(), 1000)
            + pages(org_roles, 1000)
            + pages(org.admin_keys.len(), 100)
            + pages(cost_days as usize, 180)
            + per_project(&members, 100)
            + per_project(&accounts, 100)
            + per_project(&keys, 100)
            + per_project(&groups, 100)
            + per_project(&project_roles, 1000)
            + group_assignments
            + org
                .groups
                .iter()
                .map(|g| {
                    pages(org.group_users.get(&g.id).map_or(0, |t| t.len()), 1000)
                        + pages(org.group_roles.get(&g.id).map_or(0, |t| t.len()), 1000)
                })
                .sum::<u64>()
    })
}

/// What else to measure after the full sync.
#[derive(Clone, Copy)]
struct Extras {
    /// An incremental sync after changing ~1% of the memberships.
    incremental: bool,
    /// `GET /v1/access` latency and throughput, with this many queries.
    access_queries: usize,
}

async fn bench(label: &str, database_url: &str, shape: OrgShape, faults: Faults, extras: Extras) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sb = sandbox::start(
        SandboxConfig {
            org: shape.clone(),
            faults,
            ..SandboxConfig::default()
        },
        listener,
    )
    .await
    .unwrap();
    let sandbox_url = sb.base_url().to_string();
    let service = Service::start(database_url, &[&sandbox_url]).await;
    let id = service
        .connect("bench", sb.key(KeyProfile::All), &sandbox_url)
        .await;
    let bound = lower_bound(&sb, 30);
    reset_peak();
    let (before, _) = memory();
    let (run, wall) = service.sync(&id).await;
    let (_, peak) = memory();
    let stats = &run["stats"];
    let requests = stats["upstream_requests"].as_u64().unwrap_or(0);
    let items: u64 = stats["counts"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    println!(
        "{label:<9} {} users, {} projects: full sync {:>7.2} s, {items} items, {requests} requests \
         (lower bound {bound}, {:+.1}%), {} × 429, RSS {before:.0} MiB before, peak {peak:.0} MiB (+{:.0})",
        shape.users,
        shape.projects,
        wall.as_secs_f64(),
        (requests as f64 / bound as f64 - 1.0) * 100.0,
        stats["rate_limited"],
        peak - before,
    );
    if extras.incremental {
        let changed = change_one_percent(&sb).await;
        let (run, inc_wall) = service.sync(&id).await;
        let stats = &run["stats"];
        assert_eq!(stats["mode"], "incremental", "{run}");
        let inc_requests = stats["upstream_requests"].as_u64().unwrap_or(0);
        println!(
            "{label:<9} incremental sync after {changed} changes ({} audit events): {:>7.2} s, \
             {inc_requests} requests = {:.1}% of the full sync's, {} × 429",
            stats["audit_events"],
            inc_wall.as_secs_f64(),
            inc_requests as f64 / requests.max(1) as f64 * 100.0,
            stats["rate_limited"],
        );
    }
    if extras.access_queries > 0 {
        let emails: Vec<String> = sb
            .state()
            .read(|org| org.users.iter().map(|u| u.email.clone()).collect());
        for (in_flight, what) in [(1, "latency"), (16, "throughput")] {
            let (http, base, token) = (
                service.http.clone(),
                service.base.clone(),
                service.token.clone(),
            );
            let emails = emails.clone();
            let s = common::measure(extras.access_queries, in_flight, move |i| {
                let req = http
                    .get(format!("{base}/v1/access"))
                    .query(&[("email", &emails[(i * 7919) % emails.len()])])
                    .bearer_auth(&token);
                async move {
                    let res = match req.send().await {
                        Ok(r) => r,
                        Err(e) => {
                            eprintln!("access query failed: {e}");
                            return false;
                        }
                    };
                    let status = res.status();
                    let body: Value = res.json().await.unwrap_or_default();
                    let found = body["connections"]
                        .as_array()
                        .is_some_and(|c| !c.is_empty());
                    if status != 200 || !found {
                        eprintln!("access query answered {status}: {body}");
                    }
                    status == 200 && found
                }
            })
            .await;
            common::row(
                label,
                &format!("GET /v1/access?email=, {in_flight} in flight ({what})"),
                &s,
            );
        }
    }
}

/// Changes about 1% of the project memberships in the dashboard (so the audit log has them):
/// role changes, additions and removals, plus a few people joining. Returns how many.
async fn change_one_percent(sb: &sandbox::SandboxHandle) -> usize {
    let http = reqwest::Client::new();
    let dashboard = |path: &str| sb.control_url().join(&format!("dashboard{path}")).unwrap();
    let (memberships, plan) = sb.state().read(|org| {
        let memberships: usize = org.project_users.values().map(|t| t.len()).sum();
        let n = (memberships / 100).max(4);
        let users: Vec<&String> = org.users.iter().map(|u| &u.id).collect();
        let mut plan = Vec::new();
        for (i, p) in org.projects.iter().filter(|p| !p.archived()).enumerate() {
            if plan.len() >= n {
                break;
            }
            let Some(members) = org.project_users.get(&p.id) else {
                continue;
            };
            let Some(m) = members.iter().find(|m| m.role != "owner") else {
                continue;
            };
            let outsider = users.iter().find(|u| !members.contains(u.as_str()));
            match (i % 3, outsider) {
                (0, _) => plan.push((
                    "POST",
                    format!("/organization/projects/{}/users/{}", p.id, m.user_id),
                    json!({"role": "owner"}),
                )),
                (1, Some(u)) => plan.push((
                    "POST",
                    format!("/organization/projects/{}/users", p.id),
                    json!({"user_id": u, "role": "member"}),
                )),
                _ => plan.push((
                    "DELETE",
                    format!("/organization/projects/{}/users/{}", p.id, m.user_id),
                    Value::Null,
                )),
            }
        }
        (memberships, plan)
    });
    let _ = memberships;
    for (method, path, body) in &plan {
        let req = match *method {
            "POST" => http.post(dashboard(path)).json(body),
            _ => http.delete(dashboard(path)),
        };
        let res = req.send().await.unwrap();
        assert!(
            res.status().is_success(),
            "{method} {path}: {}",
            res.status()
        );
    }
    plan.len()
}

#[tokio::main]
async fn main() {
    let small = std::env::args().any(|a| a == "--small");
    let dir = tempfile::tempdir().unwrap();
    let (shape, faults) = if small {
        (
            OrgShape {
                users: 100,
                projects: 8,
                members_per_project: 12,
                ..OrgShape::small()
            },
            Faults::default(),
        )
    } else {
        (
            OrgShape {
                users: 2_000,
                projects: 300,
                archived_share: 0.1,
                members_per_project: 12,
                groups: 20,
                members_per_group: 15,
                custom_roles: 5,
                service_accounts_per_project: 1,
                api_keys_per_project: 2,
                invites: 40,
                audit_days: 7,
            },
            // OpenAI-like: 20 ms per answer and at most 20 requests a second per endpoint.
            Faults {
                latency_ms: 20,
                rate_limits: vec![RateLimit {
                    endpoint: "*".into(),
                    max_requests: 20,
                    window_secs: 1,
                }],
                ..Faults::default()
            },
        )
    };
    println!("openai-governor sync benchmark\n");
    let sqlite = format!("sqlite://{}/sync.db", dir.path().display());
    let extras = Extras {
        incremental: true,
        access_queries: if small { 200 } else { 2_000 },
    };
    bench("sqlite", &sqlite, shape.clone(), faults.clone(), extras).await;
    if let Some(db) = ScratchDb::create("sync").await {
        bench("postgres", &db.url, shape, faults, extras).await;
        db.drop_now().await;
    }
    // Memory with the large organization (no latency or limits: only the size matters here).
    let large = if small {
        OrgShape {
            users: 1_000,
            projects: 10,
            groups: 5,
            ..OrgShape::large()
        }
    } else {
        OrgShape::large()
    };
    let sqlite = format!("sqlite://{}/large.db", dir.path().display());
    let memory_only = Extras {
        incremental: false,
        access_queries: 0,
    };
    bench("sqlite", &sqlite, large, Faults::default(), memory_only).await;
}
