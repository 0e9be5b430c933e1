//! Grant benchmark: the latency `POST /v1/grants` adds on top of the OpenAI calls a grant
//! needs, and how many grants (and revokes) per second the service sustains.
//!
//! `cargo bench --bench grants` (release; SQLite, and Postgres when `TEST_POSTGRES_URL` names a
//! server; `-- --requests N` latency pairs; `-- --small` for CI).
//! The sandbox answers at once (no latency, no rate limits), so what is measured is the
//! service: HTTP, JWT, store writes, audit entry, and the OpenAI calls it chooses to make.
//! Everything (sandbox, service, load) shares the machine's cores: compare rows of one run.
//!
//! Two services share one database: as deployed (the OpenAI client's default rate budget,
//! which no `OG_*` setting changes), and the same wiring with that budget unlimited, to show
//! the service's own cost.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Args, ScratchDb, Service};
use openai_governor::crypto::KeyRing;
use openai_governor::openai::{
    Client, ClientConfig, CreateProject, ErrorKind, RateBudgetConfig, RetryPolicy,
};
use openai_governor::service::{GrantService, GrantSettings, OpenAiClients};
use openai_governor::{app, auth, config, http, store};
use openai_governor_sandbox::{self as sandbox, KeyProfile, SandboxConfig, SandboxHandle};
use serde_json::{Value, json};

const ADD_MEMBER: &str = "POST /organization/projects/{project_id}/users";
const REMOVE_MEMBER: &str = "DELETE /organization/projects/{project_id}/users/{user_id}";

/// Concurrent callers in the throughput runs.
const CALLERS: usize = 8;

/// The service twice over one database: as deployed, and with an unlimited OpenAI rate budget.
async fn start(database_url: &str, allowed: &str) -> (Service, Service) {
    let secret = secrecy::SecretString::from("bench-secret-bench-secret-bench-secret".to_owned());
    let spec = KeyRing::generate_spec(1);
    let mut config = config::Config::ephemeral(database_url, secret.clone(), &[allowed]).unwrap();
    config.key_ring = KeyRing::parse(&spec).unwrap();
    let settings = http::HttpSettings {
        request_timeout: config.request_timeout,
        body_limit_bytes: config.body_limit_bytes,
        cors_allowed_origins: Vec::new(),
    };
    let mut unlimited = app::openai_client_config(&config);
    unlimited.rate = RateBudgetConfig::unlimited();
    let store = store::connect(database_url).await.unwrap();
    store.migrate().await.unwrap();
    let allowed_base_urls = config.allowed_base_urls.clone();
    let built = app::build_with_store(config, store.clone()).unwrap();
    // Same key ring (parsed from the same spec), same store; only the grant client differs.
    let mut state = built.state.clone();
    let clients = OpenAiClients::new(
        store.clone(),
        Arc::new(KeyRing::parse(&spec).unwrap()),
        unlimited,
        allowed_base_urls,
    );
    state.grants = GrantService::new(store, clients, GrantSettings::default());
    let unthrottled = http::router(state, &settings);
    let token = auth::mint_hs256(
        &secret,
        "bench",
        &auth::Scope::ALL,
        Duration::from_secs(3600),
        None,
        None,
    )
    .unwrap();
    let mut services = Vec::new();
    for router in [built.router, unthrottled] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(app::serve(listener, router, std::future::pending()));
        services.push(Service {
            base,
            token: token.clone(),
            http: reqwest::Client::new(),
        });
    }
    let unthrottled = services.pop().unwrap();
    (services.pop().unwrap(), unthrottled)
}

/// `n` organization members nobody granted anything yet (as the dashboard would add them).
fn people(sb: &SandboxHandle, prefix: &str, n: usize) -> Vec<String> {
    sb.state().write(|org| {
        let now = org.now();
        (0..n)
            .map(|i| {
                let email = format!("{prefix}{i}@bench.io");
                org.add_user(&email, &email, "reader", now).unwrap()
            })
            .collect()
    })
}

/// Creates a connection to the sandbox and syncs it once (so grants write through to a
/// snapshot, as they would in production).
async fn connect(s: &Service, key: &str, sandbox_url: &str) -> String {
    let id = s.connect("bench", key, sandbox_url).await;
    s.sync(&id).await;
    id
}

/// `POST /v1/grants` making `user` a member of `project`; the grant's id, or why it failed.
async fn grant(s: &Service, connection: &str, project: &str, user: &str) -> Result<String, String> {
    let res = s
        .http
        .post(format!("{}/v1/grants", s.base))
        .bearer_auth(&s.token)
        .json(
            &json!({"connection_id": connection, "user_id": user, "project_id": project,
                      "role": "member", "reason": "bench"}),
        )
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status();
    let body: Value = res.json().await.map_err(|e| e.to_string())?;
    if status != 201 || body["outcome"] != "granted" {
        return Err(format!("{status}: {body}"));
    }
    Ok(body["id"].as_str().unwrap_or_default().to_owned())
}

/// The OpenAI calls a grant of a new member needs, made directly: read the project, the user
/// and the membership (absent), then add the membership.
async fn direct(client: &Client, project: &str, user: &str) {
    client.get_project(project).await.expect("get project");
    client.get_user(user).await.expect("get user");
    match client.get_project_user(project, user).await {
        Err(e) if e.kind == ErrorKind::NotFound => {}
        other => panic!("{user} should not be in {project} yet: {other:?}"),
    }
    client
        .add_project_user(project, user, "member")
        .await
        .expect("add project user");
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Part 1: one grant at a time, interleaved with the same OpenAI calls made directly.
#[allow(clippy::too_many_arguments)]
async fn latency(
    label: &str,
    what: &str,
    sb: &SandboxHandle,
    client: &Client,
    s: &Service,
    connection: &str,
    project: &str,
    pairs: usize,
) {
    let warmup = (pairs / 10).clamp(5, 50);
    let users = people(sb, &format!("lat-{what}-{label}-"), 2 * (pairs + warmup));
    let (mut a, mut b, mut diff) = (Vec::new(), Vec::new(), Vec::new());
    let mut service_calls = 0;
    for i in 0..pairs + warmup {
        let (direct_user, grant_user) = (&users[2 * i], &users[2 * i + 1]);
        // Alternate which goes first, so neither always runs on a warm or a cold cache.
        let mut took = [Duration::ZERO; 2];
        let mut calls = 0;
        for k in 0..2 {
            if (i + k) % 2 == 0 {
                let t = Instant::now();
                direct(client, project, direct_user).await;
                took[0] = t.elapsed();
            } else {
                let before = sb.counters().total;
                let t = Instant::now();
                grant(s, connection, project, grant_user).await.unwrap();
                took[1] = t.elapsed();
                calls = sb.counters().total - before;
            }
        }
        if i >= warmup {
            a.push(took[0]);
            b.push(took[1]);
            diff.push(took[1].as_secs_f64() - took[0].as_secs_f64());
            service_calls += calls;
        }
    }
    a.sort();
    b.sort();
    diff.sort_by(f64::total_cmp);
    let paired = |p: f64| diff[((diff.len() as f64 * p) as usize).min(diff.len() - 1)] * 1e3;
    println!(
        "{label:<9} grant latency, {what}, {pairs} interleaved pairs, 1 in flight:\n\
         {:<9}   (a) 4 OpenAI calls made directly       p50 {:>7.2} ms   p99 {:>7.2} ms\n\
         {:<9}   (b) POST /v1/grants ({:.1} OpenAI calls) p50 {:>7.2} ms   p99 {:>7.2} ms\n\
         {:<9}   added (b) − (a) per percentile         p50 {:>+7.2} ms   p99 {:>+7.2} ms   \
         (paired differences: p50 {:+.2} ms, p99 {:+.2} ms)",
        "",
        ms(pct(&a, 0.5)),
        ms(pct(&a, 0.99)),
        "",
        service_calls as f64 / pairs as f64,
        ms(pct(&b, 0.5)),
        ms(pct(&b, 0.99)),
        "",
        ms(pct(&b, 0.5)) - ms(pct(&a, 0.5)),
        ms(pct(&b, 0.99)) - ms(pct(&a, 0.99)),
        paired(0.5),
        paired(0.99),
    );
}

/// Part 2: `CALLERS` callers granting distinct people for `secs`; returns the grants' ids.
#[allow(clippy::too_many_arguments)]
async fn sustained(
    label: &str,
    what: &str,
    sb: &SandboxHandle,
    s: &Service,
    connection: &str,
    project: &str,
    secs: f64,
    pool: usize,
) -> Vec<String> {
    let users = Arc::new(people(sb, &format!("tp-{what}-{label}-"), pool));
    let next = Arc::new(AtomicUsize::new(0));
    let writes_before = sb.counters().requests(ADD_MEMBER);
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(secs);
    let mut callers = Vec::new();
    for _ in 0..CALLERS {
        let (users, next) = (users.clone(), next.clone());
        let (s, connection, project) = (
            Service {
                base: s.base.clone(),
                token: s.token.clone(),
                http: s.http.clone(),
            },
            connection.to_owned(),
            project.to_owned(),
        );
        callers.push(tokio::spawn(async move {
            let mut done = Vec::new();
            while Instant::now() < until {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(user) = users.get(i) else { break };
                let t = Instant::now();
                let id = grant(&s, &connection, &project, user).await.unwrap();
                done.push((t.elapsed(), id));
            }
            done
        }));
    }
    let mut done = Vec::new();
    for c in callers {
        done.extend(c.await.expect("caller"));
    }
    let elapsed = started.elapsed();
    let writes = sb.counters().requests(ADD_MEMBER) - writes_before;
    let mut lat: Vec<Duration> = done.iter().map(|(d, _)| *d).collect();
    lat.sort();
    println!(
        "{label:<9} grants sustained, {what}, {CALLERS} callers: {:>6} grants in {:.2} s = {:>7.1} grants/s   \
         p50 {:>7.2} ms   p99 {:>7.2} ms   sandbox writes {writes} ({})",
        done.len(),
        elapsed.as_secs_f64(),
        done.len() as f64 / elapsed.as_secs_f64(),
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        if writes == done.len() as u64 {
            "one per grant"
        } else {
            "NOT one per grant"
        },
    );
    if done.len() >= users.len() {
        println!("{label:<9}   (ran out of the {pool} people prepared before the time was up)");
    }
    done.into_iter().map(|(_, id)| id).collect()
}

/// Revokes `ids`, `CALLERS` at a time. Failures are counted and shown, not fatal: on SQLite,
/// concurrent revokes can meet `database is locked` (see the README).
async fn revokes(label: &str, sb: &SandboxHandle, s: &Service, ids: Vec<String>) {
    let removes_before = sb.counters().requests(REMOVE_MEMBER);
    let n = ids.len();
    let (ids, next) = (Arc::new(ids), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let mut callers = Vec::new();
    for _ in 0..CALLERS {
        let (ids, next, http, base, token) = (
            ids.clone(),
            next.clone(),
            s.http.clone(),
            s.base.clone(),
            s.token.clone(),
        );
        callers.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (Vec::new(), Vec::new());
            while let Some(id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) {
                let t = Instant::now();
                let res = http
                    .post(format!("{base}/v1/grants/{id}/revoke"))
                    .bearer_auth(&token)
                    .json(&json!({"reason": "bench"}))
                    .send()
                    .await
                    .unwrap();
                let status = res.status();
                let body: Value = res.json().await.unwrap_or_default();
                if status == 200 && body["revoke_outcome"] == "removed" {
                    ok.push(t.elapsed());
                } else {
                    failed.push(format!("{status} {}", body["code"]));
                }
            }
            (ok, failed)
        }));
    }
    let (mut lat, mut failed) = (Vec::new(), Vec::new());
    for c in callers {
        let (ok, bad) = c.await.expect("caller");
        lat.extend(ok);
        failed.extend(bad);
    }
    let elapsed = started.elapsed();
    lat.sort();
    let removes = sb.counters().requests(REMOVE_MEMBER) - removes_before;
    println!(
        "{label:<9} revokes, unlimited budget, {CALLERS} callers: {:>6} revoked in {:.2} s = {:>7.1} revokes/s   \
         p50 {:>7.2} ms   p99 {:>7.2} ms   sandbox removals {removes} ({})",
        lat.len(),
        elapsed.as_secs_f64(),
        lat.len() as f64 / elapsed.as_secs_f64(),
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99)),
        if removes == lat.len() as u64 {
            "one per revoke"
        } else {
            "NOT one per revoke"
        },
    );
    if !failed.is_empty() {
        println!(
            "{label:<9}   FAILED: {} of {n} revokes (first: {})",
            failed.len(),
            failed[0]
        );
    }
}

async fn bench(label: &str, database_url: &str, args: &Args) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // No latency, no rate limits: the sandbox's own time is all the baseline measures.
    let sb = sandbox::start(SandboxConfig::default(), listener)
        .await
        .unwrap();
    let sandbox_url = sb.base_url().to_string();
    let key = sb.key(KeyProfile::All).to_owned();
    let client = Client::new(
        sb.base_url(),
        secrecy::SecretString::from(key.clone()),
        ClientConfig {
            retry: RetryPolicy::none(),
            rate: RateBudgetConfig::unlimited(),
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let project = client
        .create_project(&CreateProject {
            name: "Bench".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .data
        .id;
    let (deployed, unthrottled) = start(database_url, &sandbox_url).await;
    let connection = connect(&deployed, &key, &sandbox_url).await;
    let secs = if args.small { 1.0 } else { 5.0 };

    latency(
        label,
        "unlimited budget",
        &sb,
        &client,
        &unthrottled,
        &connection,
        &project,
        args.requests,
    )
    .await;
    let ids = sustained(
        label,
        "unlimited budget",
        &sb,
        &unthrottled,
        &connection,
        &project,
        secs,
        (4000.0 * secs) as usize,
    )
    .await;
    revokes(label, &sb, &unthrottled, ids).await;

    // As deployed: the client's rate budget (per connection and endpoint family: 5 requests/s
    // at first, +1/s every 20 successes, at most 50/s) paces the grants' OpenAI calls.
    latency(
        label,
        "as deployed",
        &sb,
        &client,
        &deployed,
        &connection,
        &project,
        (args.requests / 20).max(5),
    )
    .await;
    sustained(
        label,
        "as deployed",
        &sb,
        &deployed,
        &connection,
        &project,
        secs,
        (200.0 * secs) as usize,
    )
    .await;
    println!();
}

#[tokio::main]
async fn main() {
    let args = Args::parse(1000, 50);
    println!(
        "openai-governor grant benchmark: sandbox without latency or rate limits; \
         'unlimited budget' = the service's OpenAI rate budget off (bench-only wiring), \
         'as deployed' = its default budget\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/grants.db", dir.path().display());
    bench("sqlite", &sqlite, &args).await;
    match ScratchDb::create("grants").await {
        Some(db) => {
            bench("postgres", &db.url, &args).await;
            db.drop_now().await;
        }
        None => println!("(TEST_POSTGRES_URL not set: Postgres skipped)"),
    }
}
