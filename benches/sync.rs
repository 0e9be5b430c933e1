//! Sync benchmark: our full sync against the official Python SDK's crawl, under each upstream
//! model the rate budget must be right for, with the physical bound next to each.
//!
//! `TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench sync`
//! (release; SQLite, and Postgres when `TEST_POSTGRES_URL` names a server; `-- --small` for CI:
//! a small organization and short limits; `-- --only 20/s` runs the models whose name holds
//! that text, and skips the large-org memory run). For each model a sandbox of the same generated
//! organization is started and synced through the real service (HTTP API, store, OpenAI
//! client with its default, learning rate budget: nothing is known at the first sync):
//! - no limit, 20 ms an answer (2,000 users / 300 projects);
//! - 20 requests a second per endpoint template, 20 ms (the same org): a first full sync
//!   (nothing learned), a second (what the first learned), a grant on the connection while a
//!   full sync runs against one on the idle connection, and an incremental sync after ~1% of
//!   the memberships changed;
//! - 60 requests a minute per endpoint template, and per concrete path (300 users / 100
//!   projects; per path, also the same sync without any limit, the least it can take when no
//!   path reaches its limit).
//!
//! Printed: requests (and their lower bound), 429s, wall time, the physical bound (for a
//! window of N requests per W seconds, the busiest endpoint's `(⌈requests ÷ N⌉ − 1) × W`, at
//! least the users list's page chain × latency), where the time went, and the SDK crawl's
//! requests, 429s and wall time on its own fresh sandbox. Then the peak memory of a full
//! sync of the 50,000-user organization (no latency, no limits).
//! Peak memory is the process's resident high-water mark (`VmHWM`), reset before that sync;
//! the sandbox runs in the same process, so its organization is part of the baseline shown.

mod common;

use std::time::{Duration, Instant};

use common::{ScratchDb, Service};
use openai_governor_sandbox::{
    self as sandbox, Counters, Faults, KeyProfile, OrgShape, RateLimit, SandboxConfig,
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

/// One upstream model: an organization and how the sandbox limits and delays answers.
#[derive(Clone)]
struct Model {
    name: &'static str,
    shape: OrgShape,
    latency_ms: u64,
    /// At most N requests per W seconds, per template (or per concrete path).
    limit: Option<(u32, u64)>,
    per_path: bool,
    /// The second sync, the grant during a sync and the incremental sync.
    extras: bool,
}

impl Model {
    fn faults(&self) -> Faults {
        let rate_limits = match self.limit {
            Some((n, w)) if self.per_path => vec![RateLimit::per_path("*", n, w)],
            Some((n, w)) => vec![RateLimit::per_template("*", n, w)],
            None => Vec::new(),
        };
        Faults {
            latency_ms: self.latency_ms,
            rate_limits,
            ..Faults::default()
        }
    }

    async fn sandbox(&self) -> sandbox::SandboxHandle {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        sandbox::start(
            SandboxConfig {
                org: self.shape.clone(),
                faults: self.faults(),
                ..SandboxConfig::default()
            },
            listener,
        )
        .await
        .unwrap()
    }

    /// The least wall time any client could take for the requests in `spent`, and the
    /// busiest endpoint with its requests.
    fn bound(&self, spent: &Counters) -> (Duration, String) {
        let ok =
            |c: &sandbox::EndpointCount| c.requests - c.statuses.get(&429).copied().unwrap_or(0);
        let pages = |endpoint: &str| spent.endpoints.get(endpoint).map_or(0, ok);
        // The requests that must follow one another: the users list's pages, or the projects
        // list's and then a project's groups and their role assignments.
        let chain = pages("GET /organization/users").max(pages("GET /organization/projects") + 2);
        let latency = Duration::from_millis(self.latency_ms * chain);
        let busiest = spent
            .endpoints
            .iter()
            // Per path: the id-free templates are one path each; a path with an id is read a
            // page or two, far below any limit here.
            .filter(|(endpoint, _)| !self.per_path || !endpoint.contains('{'))
            .max_by_key(|(_, c)| ok(c));
        let Some((endpoint, count)) = busiest else {
            return (latency, String::new());
        };
        let busiest = format!("{endpoint}: {}", ok(count));
        let Some((n, w)) = self.limit else {
            return (latency, busiest);
        };
        let windows = ok(count).div_ceil(u64::from(n)).saturating_sub(1);
        (latency.max(Duration::from_secs(windows * w)), busiest)
    }
}

fn models(small: bool) -> Vec<Model> {
    let (big, small_org) = if small {
        (
            OrgShape {
                users: 100,
                projects: 8,
                members_per_project: 12,
                ..OrgShape::small()
            },
            OrgShape {
                users: 40,
                projects: 5,
                members_per_project: 6,
                ..OrgShape::small()
            },
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
            // 300 users / 100 projects: at 40 projects no endpoint reaches 60 requests, and a
            // limit that never binds shows nothing.
            OrgShape {
                users: 300,
                projects: 100,
                archived_share: 0.1,
                members_per_project: 10,
                groups: 10,
                members_per_group: 10,
                custom_roles: 3,
                service_accounts_per_project: 1,
                api_keys_per_project: 2,
                invites: 10,
                audit_days: 7,
            },
        )
    };
    // CI's small run keeps the limits' shape but not their waits.
    let (per_second, per_minute) = if small {
        ((5, 1), (8, 2))
    } else {
        ((20, 1), (60, 60))
    };
    let latency_ms = if small { 2 } else { 20 };
    vec![
        Model {
            name: "no limit",
            shape: big.clone(),
            latency_ms,
            limit: None,
            per_path: false,
            extras: false,
        },
        Model {
            name: "20/s per template",
            shape: big,
            latency_ms,
            limit: Some(per_second),
            per_path: false,
            extras: true,
        },
        Model {
            name: "60/min per template",
            shape: small_org.clone(),
            latency_ms,
            limit: Some(per_minute),
            per_path: false,
            extras: false,
        },
        Model {
            name: "60/min per path",
            shape: small_org,
            latency_ms,
            limit: Some(per_minute),
            per_path: true,
            extras: false,
        },
    ]
}

/// Requests (and 429s) of each endpoint between two readings of the counters.
fn delta(after: &Counters, before: &Counters) -> Counters {
    let mut out = Counters {
        total: after.total - before.total,
        ..Counters::default()
    };
    for (endpoint, a) in &after.endpoints {
        let b = before.endpoints.get(endpoint);
        let mut c = a.clone();
        c.requests -= b.map_or(0, |b| b.requests);
        for (status, n) in &mut c.statuses {
            *n -= b.and_then(|b| b.statuses.get(status)).copied().unwrap_or(0);
        }
        out.endpoints.insert(endpoint.clone(), c);
    }
    out
}

/// One sync as measured: the sandbox's view of its requests and the run's own record.
struct Measured {
    requests: u64,
    throttled: u64,
    wall: Duration,
    bound: Duration,
    busiest: String,
    time: Value,
}

impl Measured {
    fn line(&self, label: &str) -> String {
        let t = &self.time;
        format!(
            "{label:<34} {:>6} requests {:>4} × 429 ({:>4.1}%)  wall {:>6.2} s  bound {:>6.2} s  \
             = {:>4.2} × bound   limited by {} (request-seconds waiting for the budget {:.1}, \
             for a slot {:.1}, for OpenAI {:.1}; writing {:.1} s)",
            self.requests,
            self.throttled,
            self.throttled as f64 / self.requests.max(1) as f64 * 100.0,
            self.wall.as_secs_f64(),
            self.bound.as_secs_f64(),
            self.wall.as_secs_f64() / self.bound.as_secs_f64().max(1e-3),
            t["limited_by"].as_str().unwrap_or("?"),
            t["budget_wait_ms"].as_f64().unwrap_or(0.0) / 1e3,
            t["slot_wait_ms"].as_f64().unwrap_or(0.0) / 1e3,
            t["upstream_ms"].as_f64().unwrap_or(0.0) / 1e3,
            t["writing_ms"].as_f64().unwrap_or(0.0) / 1e3,
        )
    }
}

async fn measured_sync(
    model: &Model,
    sb: &sandbox::SandboxHandle,
    service: &Service,
    connection: &str,
    full: bool,
) -> (Measured, Value) {
    let before = sb.counters();
    let (run, wall) = service.sync_with(connection, full).await;
    let spent = delta(&sb.counters(), &before);
    let (bound, busiest) = model.bound(&spent);
    let m = Measured {
        requests: spent.total,
        throttled: spent.status(429),
        wall,
        bound,
        busiest,
        time: run["stats"]["time"].clone(),
    };
    (m, run)
}

/// `POST /v1/grants` making `user` a member of `project`; its latency.
async fn grant(service: &Service, connection: &str, project: &str, user: &str) -> Duration {
    let started = Instant::now();
    let res = service
        .http
        .post(format!("{}/v1/grants", service.base))
        .bearer_auth(&service.token)
        .json(
            &json!({"connection_id": connection, "user_id": user, "project_id": project,
                      "role": "member", "reason": "bench"}),
        )
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap_or_default();
    assert!(
        status == 201 && body["outcome"] == "granted",
        "grant: {status} {body}"
    );
    started.elapsed()
}

/// Pairs of (project, user not in it) for `n` grants.
fn grant_targets(sb: &sandbox::SandboxHandle, n: usize) -> Vec<(String, String)> {
    sb.state().read(|org| {
        let mut out = Vec::new();
        for p in org.projects.iter().filter(|p| !p.archived()) {
            if p.id == org.default_project_id {
                continue;
            }
            let members = org.project_users.get(&p.id);
            if let Some(u) = org
                .users
                .iter()
                .rev()
                .find(|u| members.is_none_or(|m| !m.contains(u.id.as_str())))
            {
                out.push((p.id.clone(), u.id.clone()));
            }
            if out.len() == n {
                break;
            }
        }
        out
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// What one backend's runs of one model printed, and the figures the targets need.
struct ModelRun {
    lines: Vec<String>,
    cold: Measured,
    /// Per path: the same sync of the same organization without any limit.
    unlimited: Option<Duration>,
}

async fn run_model(model: &Model, backend: &str, database_url: &str) -> ModelRun {
    let sb = model.sandbox().await;
    let url = sb.base_url().to_string();
    let service = &Service::start(database_url, &[url.as_str()]).await;
    let connection = service
        .connect(model.name, sb.key(KeyProfile::All), &url)
        .await;
    let bound = lower_bound(&sb, 30);
    let (cold, run) = measured_sync(model, &sb, service, &connection, true).await;
    let mut lines = vec![format!(
        "{}  (lower bound {bound} requests: {:+.1}%; busiest {})",
        cold.line(&format!("{backend}: first full sync")),
        (cold.requests as f64 / bound as f64 - 1.0) * 100.0,
        cold.busiest
    )];
    assert_eq!(run["stats"]["mode"], "full");
    if model.extras {
        let (warm, _) = measured_sync(model, &sb, service, &connection, true).await;
        lines.push(warm.line(&format!("{backend}: second (learned)")));
        // Grants on the idle connection, then the same while a full sync runs.
        let targets = grant_targets(&sb, 10);
        let (idle, busy) = targets.split_at(targets.len() / 2);
        let mut idle_times = Vec::new();
        for (p, u) in idle {
            idle_times.push(grant(service, &connection, p, u).await);
        }
        let running = service.start_sync(&connection, true).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut busy_times = Vec::new();
        for (p, u) in busy {
            busy_times.push(grant(service, &connection, p, u).await);
        }
        service.finish_sync(&running).await;
        let (idle, busy) = (median(idle_times), median(busy_times));
        let added = busy.as_secs_f64() - idle.as_secs_f64();
        lines.push(format!(
            "{:<34} median {:.1} ms on the idle connection, {:.1} ms during a full sync: \
             {:+.1} ms (within 50 ms: {})",
            format!("{backend}: a grant"),
            idle.as_secs_f64() * 1e3,
            busy.as_secs_f64() * 1e3,
            added * 1e3,
            verdict(added <= 0.050)
        ));
        let changed = change_one_percent(&sb).await;
        let before = sb.counters();
        let (run, wall) = service.sync_with(&connection, false).await;
        let spent = delta(&sb.counters(), &before);
        assert_eq!(run["stats"]["mode"], "incremental", "{run}");
        lines.push(format!(
            "{:<34} {:>6} requests {:>4} × 429 after {changed} changes: {:.1}% of a full \
             sync's requests (< 5%: {}), {:.2} s",
            format!("{backend}: incremental"),
            spent.total,
            spent.status(429),
            spent.total as f64 / cold.requests.max(1) as f64 * 100.0,
            verdict((spent.total as f64) < 0.05 * cold.requests as f64),
            wall.as_secs_f64()
        ));
    }
    let mut unlimited = None;
    if model.per_path {
        let free = Model {
            limit: None,
            ..model.clone()
        };
        let sb = free.sandbox().await;
        let url = sb.base_url().to_string();
        let service = &Service::start(database_url, &[url.as_str()]).await;
        let connection = service
            .connect("unlimited", sb.key(KeyProfile::All), &url)
            .await;
        let (m, _) = measured_sync(&free, &sb, service, &connection, true).await;
        lines.push(m.line(&format!("{backend}: same org, no limit")));
        unlimited = Some(m.wall);
    }
    ModelRun {
        lines,
        cold,
        unlimited,
    }
}

/// The SDK crawl on its own fresh sandbox of the model: requests, 429s and wall time.
async fn sdk_crawl(model: &Model, python: &std::path::Path) -> Option<(Measured, usize)> {
    let sb = model.sandbox().await;
    let before = sb.counters();
    let crawl = common::sdk::crawl(python, sb.base_url().as_str(), sb.key(KeyProfile::All)).await?;
    let spent = delta(&sb.counters(), &before);
    let (bound, busiest) = model.bound(&spent);
    Some((
        Measured {
            requests: spent.total,
            throttled: spent.status(429),
            wall: crawl.wall,
            bound,
            busiest,
            time: Value::Null,
        },
        crawl.kinds,
    ))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// A number no database file in `dir` uses yet.
fn first_free(dir: &tempfile::TempDir) -> usize {
    std::fs::read_dir(dir.path()).map_or(0, |d| d.count())
}

/// Each model's targets, from the first backend's run and the SDK crawl.
fn targets(
    model: &Model,
    ours: &Measured,
    unlimited: Option<Duration>,
    sdk: Option<&Measured>,
    concurrency: usize,
) {
    // Per path nothing may bind: then the least it can take is what it takes without limits.
    let bound = ours.bound.max(unlimited.unwrap_or_default());
    let ratio = ours.wall.as_secs_f64() / bound.as_secs_f64().max(1e-3);
    let share = ours.throttled as f64 / ours.requests.max(1) as f64;
    match model.limit {
        None => {
            let ideal = ours.requests as f64 * model.latency_ms as f64 / 1e3 / concurrency as f64;
            println!(
                "  target: wall ≤ 1.5 × requests × {} ms ÷ {concurrency} in flight (a sync's share) = {:.2} s: \
                 {:.2} s, {:.2} × ({})",
                model.latency_ms,
                1.5 * ideal,
                ours.wall.as_secs_f64(),
                ours.wall.as_secs_f64() / ideal.max(1e-3),
                verdict(ours.wall.as_secs_f64() <= 1.5 * ideal)
            );
        }
        Some(_) => {
            println!(
                "  target: wall ≤ 1.3 × bound{}: {ratio:.2} × ({}); 429s ≤ 2%: {:.1}% ({})",
                if unlimited.is_some() {
                    " (or than the same sync without limits)"
                } else {
                    ""
                },
                verdict(ratio <= 1.3),
                share * 100.0,
                verdict(model.per_path || share <= 0.02)
            );
        }
    }
    if let Some(sdk) = sdk
        && model.limit.is_some_and(|(n, _)| n == 20)
    {
        let faster = sdk.wall.as_secs_f64() / ours.wall.as_secs_f64().max(1e-3);
        println!(
            "  target: ≥ 2 × faster than the SDK crawl while fetching more: {faster:.2} × ({}), \
             {} requests against its {}",
            verdict(faster >= 2.0),
            ours.requests,
            sdk.requests
        );
    }
}

#[tokio::main]
async fn main() {
    let small = std::env::args().any(|a| a == "--small");
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let dir = tempfile::tempdir().unwrap();
    println!(
        "openai-governor sync benchmark{}\n",
        if small { " (--small)" } else { "" }
    );
    // A sync may hold 12 of a connection's 16 requests in flight: the rest are kept for
    // interactive work (grants) on the same connection.
    let total = openai_governor::openai::ClientConfig::default().max_concurrency;
    let concurrency = total - total / 4;
    let python = common::sdk::ensure_venv();
    for model in models(small) {
        if only
            .as_ref()
            .is_some_and(|o| !model.name.contains(o.as_str()))
        {
            continue;
        }
        let limit = match model.limit {
            None => "no limit".to_owned(),
            Some((n, w)) => format!(
                "{n} requests per {w} s per {}",
                if model.per_path {
                    "concrete path"
                } else {
                    "endpoint template"
                }
            ),
        };
        println!(
            "{}: {limit}, {} ms an answer, {} users / {} projects",
            model.name, model.latency_ms, model.shape.users, model.shape.projects
        );
        let mut first: Option<(Measured, Option<Duration>)> = None;
        for (k, backend) in ["sqlite", "postgres"].into_iter().enumerate() {
            let scratch = if backend == "postgres" {
                match ScratchDb::create("sync").await {
                    Some(db) => Some(db),
                    None => continue,
                }
            } else {
                None
            };
            let url = match &scratch {
                Some(db) => db.url.clone(),
                None => format!(
                    "sqlite://{}/sync-{}-{k}.db",
                    dir.path().display(),
                    first_free(&dir)
                ),
            };
            let run = run_model(&model, backend, &url).await;
            if let Some(db) = scratch {
                db.drop_now().await;
            }
            for l in &run.lines {
                println!("  {l}");
            }
            first.get_or_insert((run.cold, run.unlimited));
        }
        let sdk = match &python {
            Some(python) => sdk_crawl(&model, python).await,
            None => None,
        };
        if let Some((sdk, kinds)) = &sdk {
            println!(
                "  {:<34} {:>6} requests {:>4} × 429 ({:>4.1}%)  wall {:>6.2} s  ({kinds} kinds of list)",
                "official Python SDK crawl",
                sdk.requests,
                sdk.throttled,
                sdk.throttled as f64 / sdk.requests.max(1) as f64 * 100.0,
                sdk.wall.as_secs_f64()
            );
        }
        if let Some((ours, unlimited)) = &first {
            targets(
                &model,
                ours,
                *unlimited,
                sdk.as_ref().map(|(m, _)| m),
                concurrency,
            );
        }
        println!();
    }
    if only.is_some() {
        return;
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
    let sb = Model {
        name: "large",
        shape: large.clone(),
        latency_ms: 0,
        limit: None,
        per_path: false,
        extras: false,
    }
    .sandbox()
    .await;
    let sqlite = format!("sqlite://{}/large.db", dir.path().display());
    let service = Service::start(&sqlite, &[sb.base_url().as_str()]).await;
    let id = service
        .connect("large", sb.key(KeyProfile::All), sb.base_url().as_str())
        .await;
    reset_peak();
    let (before, _) = memory();
    let (run, wall) = service.sync(&id).await;
    let (_, peak) = memory();
    println!(
        "large org, sqlite: {} users, {} projects: full sync {:.2} s, {} requests (lower bound {}), \
         RSS {before:.0} MiB before, peak {peak:.0} MiB (+{:.0})",
        large.users,
        large.projects,
        wall.as_secs_f64(),
        run["stats"]["upstream_requests"],
        lower_bound(&sb, 30),
        peak - before
    );
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
