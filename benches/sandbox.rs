//! Sandbox benchmark: how long seeding an organization takes, and how many requests per
//! second the sandbox serves, on a small and a large organization (the large one must not be
//! slower to serve: lists page by cursor index, lookups are by id).
//!
//! `cargo bench --bench sandbox` (release: the 50,000-user, 2,000-project organization;
//! `-- --requests N`; `-- --small` for CI: a 2,000-user organization and few requests).
//! Real HTTP on loopback, 16 requests in flight, one reqwest client.

mod common;

use std::time::Instant;

use common::{Args, Stats, measure, row};
use openai_governor_sandbox::{self as sandbox, KeyProfile, OrgShape, SandboxConfig};
use serde_json::{Value, json};

/// Seeds `shape` without serving it and prints how long that took and what it made.
fn seed(label: &str, shape: &OrgShape) {
    let config = SandboxConfig {
        org: shape.clone(),
        ..SandboxConfig::default()
    };
    let started = Instant::now();
    let (state, _keys, _stop) = sandbox::build_state(&config);
    let took = started.elapsed();
    let (memberships, keys) = state.read(|org| {
        (
            org.project_users.values().map(|t| t.len()).sum::<usize>(),
            org.api_keys.values().map(|t| t.len()).sum::<usize>(),
        )
    });
    println!(
        "{label:<9} seed {} users, {} projects, {memberships} memberships, {} groups, {keys} API keys: {:.0} ms",
        shape.users,
        shape.projects,
        shape.groups,
        took.as_secs_f64() * 1e3
    );
}

/// GET `path` (relative to `/v1`) `n` times; each answer must be 200.
async fn gets(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    n: usize,
    concurrency: usize,
    path: impl Fn(usize) -> String + Send + Sync + 'static,
) -> Stats {
    let (http, base, key) = (http.clone(), base.to_owned(), key.to_owned());
    measure(n, concurrency, move |i| {
        let req = http.get(format!("{base}{}", path(i))).bearer_auth(&key);
        async move { req.send().await.is_ok_and(|r| r.status() == 200) }
    })
    .await
}

/// Serves `shape` and measures the operations a sync and a grant make. Returns the first-page users
/// list throughput (compared across sizes).
async fn serve(label: &str, shape: &OrgShape, args: &Args) -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let config = SandboxConfig {
        org: shape.clone(),
        ..SandboxConfig::default()
    };
    let sb = sandbox::start(config, listener).await.expect("sandbox");
    let base = sb.base_url().to_string();
    let base = base.trim_end_matches('/').to_owned();
    let key = sb.key(KeyProfile::All).to_owned();
    let (users, project, project_users) = sb.state().read(|org| {
        let users: Vec<String> = org.users.iter().map(|u| u.id.clone()).collect();
        let project = org
            .projects
            .iter()
            .find(|p| !p.archived() && p.id != org.default_project_id)
            .map(|p| p.id.clone())
            .expect("an active project");
        let members = org.project_users.get(&project).map_or(0, |t| t.len());
        (users, project, members)
    });
    let http = reqwest::Client::new();
    let (n, c) = (args.requests, args.concurrency);

    // Warm up connections and caches, then the row compared across sizes: same page size on
    // both, so the only difference is the size of the organization behind it.
    gets(&http, &base, &key, n / 4 + 1, c, |_| {
        "/organization/users?limit=10".to_owned()
    })
    .await;
    let first = gets(&http, &base, &key, n, c, |_| {
        "/organization/users?limit=10".to_owned()
    })
    .await;
    row(label, "list users, first page of 10", &first);

    let s = gets(&http, &base, &key, n, c, |_| {
        "/organization/users?limit=100".to_owned()
    })
    .await;
    row(label, "list users, first page of 100", &s);

    let middle = users[users.len() / 2].clone();
    let s = gets(&http, &base, &key, n, c, move |_| {
        format!("/organization/users?limit=100&after={middle}")
    })
    .await;
    row(label, "list users, page from the middle", &s);

    let ids = users.clone();
    let s = gets(&http, &base, &key, n, c, move |i| {
        format!("/organization/users/{}", ids[i % ids.len()])
    })
    .await;
    row(label, "get user", &s);

    let p = project.clone();
    let s = gets(&http, &base, &key, n, c, move |_| {
        format!("/organization/projects/{p}/users?limit=100")
    })
    .await;
    row(
        label,
        &format!("list project members ({project_users})"),
        &s,
    );

    let s = gets(&http, &base, &key, n, c, |_| {
        "/organization/projects?limit=100&include_archived=true".to_owned()
    })
    .await;
    row(label, "list projects, first page of 100", &s);

    let start = chrono::Utc::now().timestamp() - 30 * 86_400;
    let s = gets(&http, &base, &key, n, c, move |_| {
        format!("/organization/costs?start_time={start}&limit=30")
    })
    .await;
    row(label, "costs, 30 daily buckets", &s);

    // Writes take the organization's write lock: change a member's project role back and forth.
    let member = sb.state().read(|org| {
        org.project_users.get(&project).and_then(|t| {
            t.iter()
                .find(|m| m.role != "owner")
                .map(|m| m.user_id.clone())
        })
    });
    if let Some(member) = member {
        let (h, b, k) = (http.clone(), base.clone(), key.clone());
        let url = format!("{b}/organization/projects/{project}/users/{member}");
        let s = measure(n, c, move |i| {
            let role = if i % 2 == 0 { "owner" } else { "member" };
            let req = h.post(&url).bearer_auth(&k).json(&json!({ "role": role }));
            async move {
                match req.send().await {
                    Ok(r) if r.status() == 200 => r.json::<Value>().await.is_ok(),
                    _ => false,
                }
            }
        })
        .await;
        row(label, "change a project member's role (write)", &s);
    }
    first.per_sec
}

#[tokio::main]
async fn main() {
    let args = Args::parse(20_000, 200);
    let large = if args.small {
        OrgShape {
            users: 2_000,
            projects: 100,
            ..OrgShape::large()
        }
    } else {
        OrgShape::large()
    };
    println!(
        "openai-governor sandbox benchmark: {} requests per row, {} in flight\n",
        args.requests, args.concurrency
    );
    seed("small", &OrgShape::small());
    seed("large", &large);
    println!();
    let small_rps = serve("small", &OrgShape::small(), &args).await;
    println!();
    let large_rps = serve("large", &large, &args).await;
    println!(
        "\nlarge / small throughput, first page of 10 users: {:.2} (1.0 = size does not slow it down)",
        large_rps / small_rps
    );
}
