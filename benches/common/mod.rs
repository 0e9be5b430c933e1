//! What the benchmarks share: argument parsing, a closed-loop load generator and a row printer.
//! Machines are noisy: compare rows of one run, not runs.

// Each benchmark is its own crate and uses a part of this module.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
