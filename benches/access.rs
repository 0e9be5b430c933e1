//! Access read benchmark: what portals ask most, at the organization sizes users have.
//!
//! `TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench access`
//! (release; `-- --small` for CI; `-- --only 50k` or `-- --only sqlite` runs the sizes and
//! backends whose label contains the word, e.g. for profiling one). For a 2,000-user / 300-project organization and the
//! 50,000-user / 2,000-project one (`OrgShape::large()`), on SQLite and (with
//! `TEST_POSTGRES_URL`) Postgres: the sandbox's organization is synced into a fresh database,
//! then the real `openai-governor serve` binary is started on it in its own process and
//! measured over loopback: `/healthz` at 16 in flight; a person's access, who can reach a
//! project and a page of 100 inventory items, at 1 and 16 in flight, over 200 different people
//! and projects; the time to load the read model (the first access query after start, which
//! is what a publish costs); and the service's peak resident memory. Each figure is printed
//! next to issue 13's target. Machines are noisy: compare rows of one run.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Args, ScratchDb, Service, Stats, measure};
use openai_governor::auth::{Scope, mint_hs256};
use openai_governor::crypto::KeyRing;
use openai_governor::openai::RateBudgetConfig;
use openai_governor_sandbox::{self as sandbox, KeyProfile, OrgShape, SandboxConfig};
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_openai-governor");

struct Size {
    name: &'static str,
    shape: OrgShape,
}

fn sizes(small: bool) -> Vec<Size> {
    if small {
        return vec![
            Size {
                name: "10 users",
                shape: OrgShape::small(),
            },
            Size {
                name: "200 users",
                shape: OrgShape {
                    users: 200,
                    projects: 20,
                    members_per_project: 8,
                    ..OrgShape::small()
                },
            },
        ];
    }
    vec![
        Size {
            name: "2k users",
            shape: OrgShape {
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
        },
        Size {
            name: "50k users",
            shape: OrgShape::large(),
        },
    ]
}

/// `serve` from the release binary on `database_url`; the process and its base URL.
async fn serve(database_url: &str, secret: &SecretString, sandbox_url: &str) -> (Child, String) {
    let keys = KeyRing::generate_spec(1);
    let child = Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // The read model logs what each loaded snapshot takes.
        .env("OG_LOG", "warn,openai_governor::store::read_model=info")
        .env("DATABASE_URL", database_url)
        .env("OG_ENCRYPTION_KEYS", keys.expose_secret())
        .env("OG_JWT_HS256_SECRET", secret.expose_secret())
        .env("OG_OPENAI_ALLOWED_BASE_URLS", sandbox_url)
        // The caller rate limit off: the load generator is one caller.
        .env("OG_RATE_LIMIT_PER_SECOND", "0")
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn serve");
    listening(child).await
}

/// A started server process and the base URL its first line (`listening on …`) gives.
async fn listening(mut child: Child) -> (Child, String) {
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .next_line()
        .await
        .expect("read")
        .expect("the server printed nothing");
    let base = line
        .strip_prefix("listening on ")
        .expect("a listening line")
        .to_owned();
    (child, base)
}

/// `--static-server N`: this benchmark run again as a bare axum server on tokio's default
/// runtime (as `serve` uses) that answers every request with the same N bytes of JSON from
/// memory. Measured like the real answers, it is the most the machine gives for answers of
/// that size over loopback with the load generator beside it: no auth, no lookup, no JSON to
/// build.
async fn static_server(bytes: usize) {
    use axum::http::header::CONTENT_TYPE;
    let body = axum::body::Bytes::from(format!(
        "{{\"pad\":\"{}\"}}",
        "x".repeat(bytes.saturating_sub(10))
    ));
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { ([(CONTENT_TYPE, "application/json")], body) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening on http://{}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.unwrap();
}

/// The static server of [`static_server`] in its own process, answering `bytes` bytes.
async fn spawn_static(bytes: usize) -> (Child, String) {
    let child = Command::new(std::env::current_exe().expect("own path"))
        .args(["--static-server", &bytes.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the static server");
    listening(child).await
}

/// The mean size of the answers to `paths` (a sample of them).
async fn mean_bytes(http: &reqwest::Client, token: &str, paths: &[String]) -> usize {
    let sample = &paths[..paths.len().min(20)];
    let mut total = 0;
    for p in sample {
        let r = http.get(p).bearer_auth(token).send().await.unwrap();
        total += r.bytes().await.unwrap().len();
    }
    total / sample.len().max(1)
}

/// The process's peak resident memory (`VmHWM`), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM:")
}

/// A memory figure of `/proc/{pid}/status` (`VmRSS:`, `VmHWM:`), in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

struct Measured {
    one: Stats,
    many: Stats,
}

/// Measures GET `paths` (cycled) at 1 and at 16 in flight.
async fn get_both(
    http: &reqwest::Client,
    token: &str,
    paths: &[String],
    one: usize,
    many: usize,
) -> Measured {
    let run = |n: usize, in_flight: usize| {
        let (http, token, paths) = (http.clone(), token.to_owned(), paths.to_vec());
        measure(n, in_flight, move |i| {
            let (http, token) = (http.clone(), token.clone());
            let url = paths[i % paths.len()].clone();
            async move {
                match http.get(&url).bearer_auth(&token).send().await {
                    Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
                    Ok(r) => {
                        eprintln!("{url}: {}", r.status());
                        false
                    }
                    Err(e) => {
                        eprintln!("{url}: {e}");
                        false
                    }
                }
            }
        })
    };
    let one = run(one, 1).await;
    let many = run(many, 16).await;
    Measured { one, many }
}

/// What one run hands back for the summary: its lines and the two p99s compared across sizes.
struct Run {
    lines: Vec<String>,
    person_p99: Duration,
    project_p99: Duration,
}

async fn run(backend: &str, database_url: &str, size: &Size, args: &Args) -> Run {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = SandboxConfig {
        org: size.shape.clone(),
        ..SandboxConfig::default()
    };
    let sb = sandbox::start(config, listener).await.unwrap();
    let sandbox_url = sb.base_url().to_string();
    // The inventory, synced by an in-process service with the client's rate budget lifted.
    let syncer = Service::start_with(database_url, &[sandbox_url.as_str()], |c| {
        c.openai_rate = RateBudgetConfig::unlimited();
    })
    .await;
    let connection = syncer
        .connect("bench", sb.key(KeyProfile::All), &sandbox_url)
        .await;
    let (_, synced) = syncer.sync(&connection).await;

    let (emails, projects) = sb.state().read(|org| {
        let n = org.users.len();
        let emails: Vec<String> = org
            .users
            .iter()
            .step_by((n / 200).max(1))
            .map(|u| u.email.to_lowercase())
            .collect();
        let projects: Vec<String> = org
            .projects
            .iter()
            .filter(|p| p.archived_at.is_none() && p.id != org.default_project_id)
            .filter(|p| org.project_users.get(&p.id).is_some_and(|m| !m.is_empty()))
            .take(200)
            .map(|p| p.id.clone())
            .collect();
        (emails, projects)
    });

    let secret = SecretString::from("bench-secret-bench-secret-bench-secret".to_owned());
    let (child, base) = serve(database_url, &secret, &sandbox_url).await;
    let pid = child.id().unwrap_or_default();
    let idle_rss = peak_rss_mib(pid);
    let token = mint_hs256(
        &secret,
        "bench",
        &[Scope::InventoryRead],
        Duration::from_secs(3600),
        None,
        None,
    )
    .unwrap();
    let http = reqwest::Client::new();

    // The first access query loads every head whole: what publishing a snapshot costs.
    let t = Instant::now();
    let first = http
        .get(format!("{base}/v1/access?email={}", emails[0]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let load = t.elapsed();
    let (loaded_rss, load_peak) = (status_mib(pid, "VmRSS:"), peak_rss_mib(pid));

    let (one, many) = if args.small {
        (50, 200)
    } else {
        (2_000, 20_000)
    };
    let health = measure(many, 16, {
        let (http, base) = (http.clone(), base.clone());
        move |_| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                http.get(format!("{base}/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            }
        }
    })
    .await;
    let person_paths: Vec<String> = emails
        .iter()
        .map(|e| format!("{base}/v1/access?email={e}"))
        .collect();
    let project_paths: Vec<String> = projects
        .iter()
        .map(|p| format!("{base}/v1/connections/{connection}/projects/{p}/access"))
        .collect();
    let page_paths: Vec<String> = (0..20)
        .map(|k| {
            let kind = ["user", "project_member", "api_key", "group_member"][k % 4];
            format!("{base}/v1/connections/{connection}/inventory/{kind}?limit=100")
        })
        .collect();
    let person = get_both(&http, &token, &person_paths, one, many).await;
    let project = get_both(&http, &token, &project_paths, one, many).await;
    let page = get_both(&http, &token, &page_paths, one / 4, many / 4).await;
    let rss = peak_rss_mib(pid);
    let mut sizes = Vec::new();
    for paths in [&person_paths, &project_paths, &page_paths] {
        sizes.push(mean_bytes(&http, &token, paths).await);
    }
    drop(child);
    // The ceiling for each answer's size: the same bytes sent by a bare server.
    let mut ceilings = Vec::new();
    for &bytes in &sizes {
        let (server, base) = spawn_static(bytes).await;
        let url = vec![format!("{base}/")];
        ceilings.push(get_both(&http, &token, &url, 1, many).await.many.per_sec);
        drop(server);
    }

    let label = format!("{backend}, {}", size.name);
    println!("\n{label} (synced in {:.1} s)", synced.as_secs_f64());
    println!(
        "  /healthz, 16 in flight                     {:>8.0} req/s",
        health.per_sec
    );
    let mut lines = Vec::new();
    for (k, (what, m)) in [
        ("GET /v1/access?email=", &person),
        ("GET …/projects/{p}/access", &project),
        ("GET …/inventory/{kind}?limit=100", &page),
    ]
    .into_iter()
    .enumerate()
    {
        let share = m.many.per_sec / health.per_sec;
        println!(
            "  {what:<34} 1 in flight p50 {:>6.2} ms p99 {:>6.2} ms (≤ 2 ms: {}) · 16 in flight {:>7.0} req/s = {:>5.1}% of /healthz (≥ 25%: {})",
            ms(m.one.p50),
            ms(m.one.p99),
            verdict(m.one.p99 <= Duration::from_millis(2)),
            m.many.per_sec,
            share * 100.0,
            verdict(share >= 0.25)
        );
        println!(
            "  {:<34} answers of {:.1} KB; a bare server sending the same bytes: {:>7.0} req/s = {:>5.1}% of /healthz (the answer reaches {:.0}% of it)",
            "",
            sizes[k] as f64 / 1024.0,
            ceilings[k],
            ceilings[k] / health.per_sec * 100.0,
            m.many.per_sec / ceilings[k] * 100.0
        );
        lines.push(format!(
            "{label}|{what}|{:.2}|{:.2}|{:.0}|{:.1}",
            ms(m.one.p50),
            ms(m.one.p99),
            m.many.per_sec,
            share * 100.0
        ));
    }
    println!(
        "  read model load (first query)             {:>8.0} ms (≤ 5 s: {})",
        ms(load),
        verdict(load <= Duration::from_secs(5))
    );
    println!(
        "  service peak RSS                          {:>8.1} MiB (idle {:.1} MiB, after the load {:.1} MiB with a peak of {:.1} MiB during it; ≤ 128 MiB: {})",
        rss,
        idle_rss,
        loaded_rss,
        load_peak,
        verdict(rss <= 128.0)
    );
    lines.push(format!(
        "{label}|read model load {:.0} ms|peak RSS {:.1} MiB",
        ms(load),
        rss
    ));
    Run {
        lines,
        person_p99: person.one.p99,
        project_p99: project.one.p99,
    }
}

#[tokio::main]
async fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if let Some(bytes) = argv
        .windows(2)
        .find(|w| w[0] == "--static-server")
        .and_then(|w| w[1].parse().ok())
    {
        return static_server(bytes).await;
    }
    let args = Args::parse(0, 0);
    println!(
        "openai-governor access benchmark{}",
        if args.small { " (--small)" } else { "" }
    );
    let mut summary = Vec::new();
    // Per backend, the runs from the smaller size to the larger.
    let mut by_backend: Vec<(&str, Vec<Run>)> =
        vec![("sqlite", Vec::new()), ("postgres", Vec::new())];
    let only: Vec<&str> = argv
        .windows(2)
        .filter(|w| w[0] == "--only")
        .map(|w| w[1].as_str())
        .collect();
    let (backends, size_words): (Vec<&str>, Vec<&str>) = only
        .into_iter()
        .partition(|o| ["sqlite", "postgres"].contains(o));
    let backend_wanted = |b: &str| backends.is_empty() || backends.contains(&b);
    for size in sizes(args.small) {
        if !size_words.is_empty() && !size_words.iter().any(|w| size.name.contains(w)) {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        if backend_wanted("sqlite") {
            by_backend[0]
                .1
                .push(run("sqlite", &url, &size, &args).await);
        }
        if !backend_wanted("postgres") {
            continue;
        }
        if let Some(db) = ScratchDb::create("access").await {
            by_backend[1]
                .1
                .push(run("postgres", &db.url, &size, &args).await);
            db.drop_now().await;
        }
    }
    println!("\nsummary (label|query|p50 ms|p99 ms|req/s at 16|% of healthz):");
    for (_, runs) in &by_backend {
        for r in runs {
            summary.extend(r.lines.iter().cloned());
        }
    }
    for l in summary {
        println!("{l}");
    }
    // The latency must not grow with the organization: larger size's p99 over the smaller's.
    for (backend, runs) in &by_backend {
        if let [small, large] = runs.as_slice() {
            for (what, a, b) in [
                ("person", small.person_p99, large.person_p99),
                ("project", small.project_p99, large.project_p99),
            ] {
                let ratio = b.as_secs_f64() / a.as_secs_f64().max(1e-9);
                println!(
                    "{backend}: {what} p99 larger/smaller org {ratio:.2} (≤ 1.5: {})",
                    verdict(ratio <= 1.5)
                );
            }
        }
    }
}
