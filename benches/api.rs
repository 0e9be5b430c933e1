//! API benchmark: what the service adds on top of its store and of OpenAI.
//!
//! `cargo bench --bench api` (release; `-- --requests N`, `-- --small` for CI). Runs the app
//! in-process on loopback with the sandbox beside it, on SQLite and (when `TEST_POSTGRES_URL`
//! names a server) on Postgres, and prints throughput and latency percentiles per operation.
//! Machines are noisy: compare rows of one run, not runs.

mod common;

use common::{Args, ScratchDb, Service, measure, row};

use openai_governor::store::Backend;
use openai_governor_sandbox::{self as sandbox, Faults, KeyProfile, SandboxConfig};
use serde_json::{Value, json};

async fn run(backend: Backend, database_url: String, args: &Args) {
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sb = sandbox::start(SandboxConfig::default(), listener)
        .await
        .unwrap();
    let Service { base, token, http } =
        Service::start(&database_url, &[sb.base_url().as_str()]).await;
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
    let probes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = probes.clone();
    let s = measure(tests, 4, move |_| {
        let counted = counted.clone();
        let (h, b, t, k, u) = (h.clone(), b.clone(), t.clone(), k.clone(), u.clone());
        async move {
            let res = h
                .post(format!("{b}/v1/connections/test"))
                .bearer_auth(&t)
                .json(&json!({"admin_key": k, "base_url": u}))
                .send()
                .await;
            let Ok(report) = res else { return false };
            let Ok(v) = report.json::<Value>().await else {
                return false;
            };
            let n: usize = v["capabilities"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| c["probes"].as_array().map_or(0, Vec::len))
                        .sum()
                })
                .unwrap_or(0);
            counted.store(n, std::sync::atomic::Ordering::Relaxed);
            v["status"] == "ok"
        }
    })
    .await;
    let probes = probes.load(std::sync::atomic::Ordering::Relaxed);
    row(name, &format!("connection test, {probes} probes @20ms"), &s);
    println!(
        "{name:<9} connection test wall time = {:.1} × one 20 ms OpenAI call ({probes} probes)",
        s.p50.as_secs_f64() / 0.020
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse(4000, 100);
    println!(
        "openai-governor API benchmark: {} requests per row, {} in flight\n",
        args.requests, args.concurrency
    );
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/bench.db", dir.path().display());
    run(Backend::Sqlite, sqlite, &args).await;
    match ScratchDb::create("api").await {
        Some(db) => {
            run(Backend::Postgres, db.url.clone(), &args).await;
            db.drop_now().await;
        }
        None => println!("(TEST_POSTGRES_URL not set: Postgres skipped)"),
    }
}
