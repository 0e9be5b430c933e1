//! What the benchmarks share: argument parsing, a closed-loop load generator and a row printer.
//! Machines are noisy: compare rows of one run, not runs.

// Each benchmark is its own crate and uses a part of this module.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub mod sdk;

/// `--small` (CI size) and `--requests N`, with the sizes a benchmark gives for both cases.
pub struct Args {
    pub small: bool,
    pub requests: usize,
    pub concurrency: usize,
}

impl Args {
    pub fn parse(full_requests: usize, small_requests: usize) -> Args {
        let argv: Vec<String> = std::env::args().collect();
        let small = argv.iter().any(|a| a == "--small");
        let requests = argv
            .iter()
            .position(|a| a == "--requests")
            .and_then(|i| argv.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(if small { small_requests } else { full_requests });
        Args {
            small,
            requests,
            concurrency: 16,
        }
    }
}

pub struct Stats {
    pub per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// Runs `n` calls of `op` with `concurrency` in flight; every call must succeed.
pub async fn measure<F, Fut>(n: usize, concurrency: usize, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (op, next) = (op.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
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

/// One result line: `label` (e.g. the backend or org size), the operation and its figures.
pub fn row(label: &str, op: &str, s: &Stats) {
    println!(
        "{label:<9} {op:<40} {:>9.0} req/s   p50 {:>8.2} ms   p99 {:>8.2} ms",
        s.per_sec,
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3
    );
}

/// The service running in-process on a loopback port, and a token with every scope.
pub struct Service {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Service {
    /// Migrates `database_url`, serves the app on port 0 with `allowed` base URLs allowed.
    pub async fn start(database_url: &str, allowed: &[&str]) -> Service {
        Self::start_with(database_url, allowed, |_| {}).await
    }

    /// [`Self::start`] with a change to the configuration.
    pub async fn start_with(
        database_url: &str,
        allowed: &[&str],
        configure: impl FnOnce(&mut openai_governor::config::Config),
    ) -> Service {
        use openai_governor::{app, auth, config, store};
        let secret =
            secrecy::SecretString::from("bench-secret-bench-secret-bench-secret".to_owned());
        let mut config = config::Config::ephemeral(database_url, secret.clone(), allowed).unwrap();
        // The sandbox checks a key's permission before validating a write (as OpenAI is
        // believed to): a full key's connection test is then `ok`, as in production with
        // OG_OPENAI_CHECKS_PERMISSION_FIRST=true.
        config.openai_checks_permission_first = true;
        configure(&mut config);
        let store = store::connect(database_url).await.unwrap();
        store.migrate().await.unwrap();
        let built = app::build_with_store(config, store).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(app::serve(listener, built.router, std::future::pending()));
        let token = auth::mint_hs256(
            &secret,
            "bench",
            &auth::Scope::ALL,
            Duration::from_secs(3600),
            None,
            None,
        )
        .unwrap();
        Service {
            base,
            token,
            http: reqwest::Client::new(),
        }
    }
}

/// A fresh Postgres database for a benchmark on the server `TEST_POSTGRES_URL` names (`None`
/// without one); call [`ScratchDb::drop_now`] at the end.
pub struct ScratchDb {
    pub url: String,
    admin: String,
    name: String,
}

impl ScratchDb {
    pub async fn create(prefix: &str) -> Option<ScratchDb> {
        use sqlx::Connection as _;
        let admin = std::env::var("TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        let name = format!("og_bench_{prefix}_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        Some(ScratchDb {
            url: url.to_string(),
            admin,
            name,
        })
    }

    pub async fn drop_now(self) {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&self.admin).await.unwrap();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

/// What the benchmarks ask of the service besides their measured calls.
impl Service {
    /// Creates a connection to the sandbox; returns its id.
    pub async fn connect(&self, name: &str, key: &str, sandbox_url: &str) -> String {
        let res: Value = self
            .http
            .post(format!("{}/v1/connections", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"name": name, "admin_key": key, "base_url": sandbox_url}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        res["id"].as_str().expect("connection created").to_owned()
    }

    /// Runs one sync to its end; returns the finished run and its wall time.
    pub async fn sync(&self, connection: &str) -> (Value, Duration) {
        self.sync_with(connection, false).await
    }

    /// [`Self::sync`], full even where an incremental one would do when `full`.
    pub async fn sync_with(&self, connection: &str, full: bool) -> (Value, Duration) {
        let started = Instant::now();
        let run = self.start_sync(connection, full).await;
        let run = self.finish_sync(&run).await;
        (run, started.elapsed())
    }

    /// Starts a sync (`full` forces a full one); its run id.
    pub async fn start_sync(&self, connection: &str, full: bool) -> String {
        let run: Value = self
            .http
            .post(format!(
                "{}/v1/connections/{connection}/syncs?full={full}",
                self.base
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        run["id"].as_str().expect("a sync run").to_owned()
    }

    /// Waits for the run to finish; it must have succeeded.
    pub async fn finish_sync(&self, run: &str) -> Value {
        let url = format!("{}/v1/syncs/{run}", self.base);
        loop {
            let run: Value = self
                .http
                .get(&url)
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if run["status"] != "running" {
                assert_eq!(run["status"], "succeeded", "the sync failed: {run}");
                return run;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
