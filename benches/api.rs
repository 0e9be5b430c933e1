//! API benchmark: what the service adds on top of its store and of OpenAI.
//!
//! `cargo bench --bench api` (release; `-- --requests N`, `-- --small` for CI). Runs the app
//! in-process on loopback with the sandbox beside it, on SQLite and (when `TEST_POSTGRES_URL`
//! names a server) on Postgres, and prints throughput and latency percentiles per operation.
//! Machines are noisy: compare rows of one run, not runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openai_governor::app;
use openai_governor::auth::{Scope, mint_hs256};
use openai_governor::config::Config;
use openai_governor::sandbox::{self, Faults, KeyProfile, SandboxConfig};
use openai_governor::store::{self, Backend};
use secrecy::SecretString;
use serde_json::{Value, json};

struct Args {
    requests: usize,
    concurrency: usize,
}

fn args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let small = argv.iter().any(|a| a == "--small");
    let requests = argv
        .iter()
        .position(|a| a == "--requests")
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if small { 100 } else { 4000 });
    Args {
        requests,
        concurrency: 16,
    }
}

struct Stats {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// Runs `n` calls of `op` with `concurrency` in flight; every call must succeed.
async fn measure<F, Fut>(n: usize, concurrency: usize, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (op, next) = (op.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break lat;
                }
                let t = Instant::now();
                assert!(op(i).await, "operation {i} failed");
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for w in workers {
        all.extend(w.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Stats {
        per_sec: n as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

fn row(backend: &str, op: &str, s: &Stats) {
    println!(
        "{backend:<9} {op:<34} {:>9.0} req/s   p50 {:>8.2} ms   p99 {:>8.2} ms",
        s.per_sec,
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3
    );
}

async fn run(backend: Backend, database_url: String, args: &Args) {
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sb = sandbox::start(SandboxConfig::default(), listener)
        .await
        .unwrap();
    let secret = SecretString::from("bench-secret-bench-secret-bench-secret".to_owned());
    let config =
        Config::ephemeral(&database_url, secret.clone(), &[sb.base_url().as_str()]).unwrap();
    let store = store::connect(&database_url).await.unwrap();
    store.migrate().await.unwrap();
    let built = app::build_with_store(config, store).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app::serve(listener, built.router, std::future::pending()));
    let token = mint_hs256(
        &secret,
        "bench",
        &Scope::ALL,
        Duration::from_secs(3600),
        None,
        None,
    )
    .unwrap();
    let http = reqwest::Client::new();
    let key = sb.key(KeyProfile::All).to_owned();
    let sandbox_url = sb.base_url().to_string();

    let (h, b, t, k, u) = (
        http.clone(),
        base.clone(),
        token.clone(),
        key.clone(),
        sandbox_url.clone(),
    );
    let s = measure(args.requests, args.concurrency, move |i| {
        let (h, b, t, k, u) = (h.clone(), b.clone(), t.clone(), k.clone(), u.clone());
        async move {
            let res = h
                .post(format!("{b}/v1/connections"))
                .bearer_auth(&t)
                .json(&json!({"name": format!("c{i}"), "admin_key": k, "base_url": u}))
                .send()
                .await;
            res.is_ok_and(|r| r.status() == 201)
        }
    })
    .await;
    row(name, "create connection (seal + insert)", &s);

    let first: Value = http
        .get(format!("{base}/v1/connections?limit=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = first["data"][0]["id"].as_str().unwrap().to_owned();
    let (h, b, t) = (http.clone(), base.clone(), token.clone());
    let s = measure(args.requests, args.concurrency, move |_| {
        let (h, url, t) = (h.clone(), format!("{b}/v1/connections/{id}"), t.clone());
        async move {
            h.get(url)
                .bearer_auth(&t)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    row(name, "get connection (JWT + read)", &s);

    let (h, b, t) = (http.clone(), base.clone(), token.clone());
    let s = measure(args.requests, args.concurrency, move |_| {
        let (h, url, t) = (h.clone(), format!("{b}/v1/connections?limit=50"), t.clone());
        async move {
            h.get(url)
                .bearer_auth(&t)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    row(name, "list 50 connections", &s);

    // A connection test with 20 ms of latency on every OpenAI call: the probes run in two
    // dependent rounds, so the test should take about 2 × 20 ms, not 10 × 20 ms.
    sb.state().set_faults(Faults {
        latency_ms: 20,
        ..Faults::default()
    });
    let tests = (args.requests / 20).max(10);
    let (h, b, t, k, u) = (
        http.clone(),
        base.clone(),
        token.clone(),
        key.clone(),
        sandbox_url.clone(),
    );
    let s = measure(tests, 4, move |_| {
        let (h, b, t, k, u) = (h.clone(), b.clone(), t.clone(), k.clone(), u.clone());
        async move {
            let res = h
                .post(format!("{b}/v1/connections/test"))
                .bearer_auth(&t)
                .json(&json!({"admin_key": k, "base_url": u}))
                .send()
                .await;
            match res {
                Ok(r) => r.json::<Value>().await.is_ok_and(|v| v["status"] == "ok"),
                Err(_) => false,
            }
        }
    })
    .await;
    row(name, "connection test, 10 probes @20ms", &s);
    println!(
        "{name:<9} connection test wall time = {:.1} × one 20 ms OpenAI call (10 probes in 2 rounds)",
        s.p50.as_secs_f64() / 0.020
    );
}

#[tokio::main]
async fn main() {
    let args = args();
    println!(
        "openai-governor API benchmark: {} requests per row, {} in flight\n",
        args.requests, args.concurrency
    );
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/bench.db", dir.path().display());
    run(Backend::Sqlite, sqlite, &args).await;
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(admin) if !admin.is_empty() => {
            use sqlx::Connection as _;
            let name = format!("og_bench_{}", std::process::id());
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            sqlx::query(sqlx::AssertSqlSafe(drop.clone()))
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let mut url = url::Url::parse(&admin).unwrap();
            url.set_path(&name);
            run(Backend::Postgres, url.to_string(), &args).await;
            sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        _ => println!("(TEST_POSTGRES_URL not set: Postgres skipped)"),
    }
}
