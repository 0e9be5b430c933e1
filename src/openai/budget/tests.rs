use super::*;

fn config() -> RateBudgetConfig {
    RateBudgetConfig {
        default_pause: Duration::from_millis(50),
        ..RateBudgetConfig::default()
    }
}

const GET: Method = Method::GET;

fn path(project: &str) -> [&str; 4] {
    ["organization", "projects", project, "users"]
}

#[test]
fn templates_replace_ids_and_keep_the_literal_words() {
    assert_eq!(
        template_key(&GET, &path("proj_1")),
        "GET /organization/projects/{}/users"
    );
    assert_eq!(
        template_key(&Method::POST, &["organization", "certificates", "activate"]),
        "POST /organization/certificates/activate"
    );
    assert_eq!(
        template_key(&GET, &["projects", "proj_9", "groups", "g_1", "roles"]),
        "GET /projects/{}/groups/{}/roles"
    );
}

#[test]
fn every_literal_word_of_the_spec_is_known() {
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/spec/openai-admin-api/openapi.admin.yaml"
    ))
    .expect("the spec is in the repository");
    let mut checked = 0;
    for line in spec.lines() {
        let Some(template) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) else {
            continue;
        };
        let concrete: Vec<&str> = template
            .split('/')
            .map(|s| if s.starts_with('{') { "id_1" } else { s })
            .collect();
        let expected: String = template
            .split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        assert_eq!(
            template_key(&GET, &concrete),
            format!("GET /{expected}"),
            "{template}"
        );
        checked += 1;
    }
    assert!(checked > 50, "only {checked} paths in the spec");
}

#[tokio::test]
async fn nothing_is_paced_until_a_429() {
    let budget = RateBudget::new(config());
    let start = Instant::now();
    for i in 0..200 {
        let p = format!("proj_{i}");
        let t = budget.acquire(&GET, &path(&p), Priority::Background).await;
        budget.on_success(&t);
    }
    assert!(start.elapsed() < Duration::from_millis(50));
    assert!(budget.learned().is_empty());
}

fn seeded(scope: &str, per_path: bool, requests: u32, window_ms: u64) -> LearnedLimit {
    LearnedLimit {
        scope: scope.into(),
        per_path,
        requests,
        window: Duration::from_millis(window_ms),
        throttled: 0,
        learned_at_ms: 1,
    }
}

const MEMBERS: &str = "GET /organization/projects/{}/users";

#[tokio::test]
async fn a_429_on_fresh_paths_teaches_the_template_its_window() {
    let budget = RateBudget::new(config());
    // 20 go through on 20 projects, the 21st project's request is refused with 200 ms left.
    for i in 0..20 {
        let p = format!("proj_{i}");
        let t = budget.acquire(&GET, &path(&p), Priority::Background).await;
        budget.on_success(&t);
    }
    let t = budget
        .acquire(&GET, &path("proj_20"), Priority::Background)
        .await;
    // Another request of the same burst, sent before the 429 came back.
    let same_burst = budget
        .acquire(&GET, &path("proj_21"), Priority::Background)
        .await;
    budget.on_throttled(&t, Some(Duration::from_millis(200)));
    budget.on_throttled(&same_burst, Some(Duration::from_millis(200)));
    let learned = budget.learned();
    assert_eq!(learned.len(), 1, "{learned:?}");
    let l = &learned[0];
    assert_eq!(l.scope, MEMBERS);
    assert!(!l.per_path);
    assert_eq!(l.throttled, 2);
    // 20 per the time they took plus the pause: learned once for the burst.
    assert_eq!(l.requests, 20, "{l:?}");
    assert!(
        l.window >= Duration::from_millis(200) && l.window < Duration::from_millis(260),
        "{l:?}"
    );
    // Paused for Retry-After; then a window. Interactive work used this endpoint: 19
    // background requests at once (95% of 20), the 20th waits for the next window.
    let start = Instant::now();
    budget
        .acquire(&GET, &path("grant_0"), Priority::Interactive)
        .await;
    for i in 0..18 {
        let p = format!("again_{i}");
        let t = budget.acquire(&GET, &path(&p), Priority::Background).await;
        budget.on_success(&t);
    }
    let paused = start.elapsed();
    assert!(paused >= Duration::from_millis(190), "{paused:?}");
    assert!(paused < Duration::from_millis(300), "{paused:?}");
    // Interactive work still has the window's last request.
    let t = Instant::now();
    budget
        .acquire(&GET, &path("grant"), Priority::Interactive)
        .await;
    assert!(t.elapsed() < Duration::from_millis(20), "{:?}", t.elapsed());
    budget
        .acquire(&GET, &path("again_19"), Priority::Background)
        .await;
    let next = start.elapsed() - paused;
    assert!(next >= Duration::from_millis(150), "{next:?}");
}

#[tokio::test]
async fn a_429_on_a_busy_path_is_that_paths_limit() {
    let budget = RateBudget::new(config());
    let users = ["organization", "users"];
    for _ in 0..10 {
        let t = budget.acquire(&GET, &users, Priority::Background).await;
        budget.on_success(&t);
    }
    let t = budget.acquire(&GET, &users, Priority::Background).await;
    budget.on_throttled(&t, Some(Duration::from_millis(100)));
    let learned = budget.learned();
    assert_eq!(learned.len(), 1, "{learned:?}");
    assert!(learned[0].per_path);
    assert_eq!(learned[0].scope, "GET /organization/users");
    assert_eq!(learned[0].requests, 10);
    // The template of many paths is not slowed by one of them: other projects go at once.
    for _ in 0..5 {
        let t = budget
            .acquire(&GET, &path("proj_a"), Priority::Background)
            .await;
        budget.on_success(&t);
    }
    let t = budget
        .acquire(&GET, &path("proj_a"), Priority::Background)
        .await;
    budget.on_throttled(&t, Some(Duration::from_millis(300)));
    let start = Instant::now();
    let t = budget
        .acquire(&GET, &path("proj_b"), Priority::Background)
        .await;
    budget.on_success(&t);
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "{:?}",
        start.elapsed()
    );
    let start = Instant::now();
    budget
        .acquire(&GET, &path("proj_a"), Priority::Background)
        .await;
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn interactive_work_goes_before_a_full_background_window() {
    let budget = RateBudget::new(config());
    budget.seed(&[seeded(MEMBERS, false, 10, 300)]);
    // Alone, background work may take the whole window.
    let start = Instant::now();
    for i in 0..10 {
        let p = format!("alone{i}");
        budget.acquire(&GET, &path(&p), Priority::Background).await;
    }
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "{:?}",
        start.elapsed()
    );
    // An interactive request then waits for the next window, and from then on background
    // work leaves it a tenth: 8 more go with it, the next background one waits.
    budget
        .acquire(&GET, &path("grant"), Priority::Interactive)
        .await;
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
    let start = Instant::now();
    for i in 0..8 {
        let p = format!("p{i}");
        budget.acquire(&GET, &path(&p), Priority::Background).await;
    }
    budget
        .acquire(&GET, &path("grant2"), Priority::Interactive)
        .await;
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "{:?}",
        start.elapsed()
    );
    budget
        .acquire(&GET, &path("p8"), Priority::Background)
        .await;
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn without_retry_after_the_pause_doubles_and_the_window_shrinks() {
    let budget = RateBudget::new(config());
    budget.seed(&[seeded(MEMBERS, false, 20, 1000)]);
    let t = budget
        .acquire(&GET, &path("p1"), Priority::Interactive)
        .await;
    budget.on_throttled(&t, None);
    let start = Instant::now();
    let t = budget
        .acquire(&GET, &path("p2"), Priority::Interactive)
        .await;
    let first = start.elapsed();
    budget.on_throttled(&t, None);
    let start = Instant::now();
    budget
        .acquire(&GET, &path("p3"), Priority::Interactive)
        .await;
    let second = start.elapsed();
    assert!(first >= Duration::from_millis(45), "{first:?}");
    assert!(second >= Duration::from_millis(95), "{second:?}");
    // A tenth fewer each time: 20, 18, 17.
    assert_eq!(budget.learned()[0].requests, 17);
}

#[test]
fn a_newer_learned_window_wins_over_a_seeded_one() {
    let budget = RateBudget::new(config());
    let limit = |requests, learned_at_ms| LearnedLimit {
        learned_at_ms,
        ..seeded("GET /organization/users", true, requests, 1000)
    };
    budget.seed(&[limit(5, 100)]);
    budget.seed(&[limit(7, 50)]);
    assert_eq!(budget.learned()[0].requests, 5);
    budget.seed(&[limit(9, 200)]);
    assert_eq!(budget.learned()[0].requests, 9);
    assert_eq!(budget.learned()[0].per_second(), 9.0);
}

#[test]
fn unlimited_learns_nothing() {
    let budget = RateBudget::new(RateBudgetConfig::unlimited());
    budget.seed(&[seeded("GET /organization/users", false, 1, 1000)]);
    assert!(budget.learned().is_empty());
}

/// A fixed-window server that tells its window in OpenAI's headers, as the sandbox does:
/// `limit` per `window`, starting with the first request.
struct ToldServer {
    limit: u32,
    window: Duration,
    state: Mutex<(Option<Instant>, u32)>,
}

impl ToldServer {
    /// Decides a request arriving now: its headers and whether it was refused.
    fn arrive(&self) -> (RateHeaders, bool) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        if state
            .0
            .is_none_or(|start| now.duration_since(start) >= self.window)
        {
            *state = (Some(now), 0);
        }
        let reset = self
            .window
            .saturating_sub(now.duration_since(state.0.unwrap_or(now)));
        let refused = state.1 >= self.limit;
        if !refused {
            state.1 += 1;
        }
        let told = RateHeaders {
            limit: self.limit,
            remaining: self.limit - state.1,
            reset,
        };
        (told, refused)
    }
}

/// `workers` callers send `requests` requests in all to projects of one template, each
/// answered after `latency`; returns the 429s drawn.
async fn crawl(
    budget: &std::sync::Arc<RateBudget>,
    server: &std::sync::Arc<ToldServer>,
    workers: usize,
    requests: usize,
    latency: Duration,
) -> u32 {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (budget, server, next) = (budget.clone(), server.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut refused = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let project = format!("proj_{i}");
                loop {
                    let t = budget
                        .acquire(&GET, &path(&project), Priority::Background)
                        .await;
                    let (told, no) = server.arrive();
                    tokio::time::sleep(latency).await;
                    budget.on_answer(&t, Some(told));
                    if !no {
                        budget.on_success(&t);
                        break;
                    }
                    refused += 1;
                    budget.on_throttled(&t, Some(told.reset));
                }
            }
            refused
        }));
    }
    let mut refused = 0;
    for task in tasks {
        refused += task.await.unwrap();
    }
    refused
}

#[tokio::test]
async fn told_limits_are_kept_without_a_single_429() {
    let budget = std::sync::Arc::new(RateBudget::new(config()));
    let server = std::sync::Arc::new(ToldServer {
        limit: 10,
        window: Duration::from_millis(200),
        state: Mutex::new((None, 0)),
    });
    // 8 in flight, 45 requests: 10 a window, so the last goes in the fifth window.
    let start = Instant::now();
    let refused = crawl(&budget, &server, 8, 45, Duration::from_millis(5)).await;
    let took = start.elapsed();
    assert_eq!(refused, 0);
    assert!(took >= Duration::from_millis(800), "{took:?}");
    assert!(took < Duration::from_millis(1150), "{took:?}");
    // What the headers told is kept for a restart or another replica, like a learned window.
    let learned = budget.learned();
    assert_eq!(learned.len(), 1, "{learned:?}");
    assert_eq!(learned[0].scope, MEMBERS);
    assert_eq!(learned[0].requests, 10);
    assert!(
        learned[0].window > Duration::from_millis(180),
        "{learned:?}"
    );
    assert!(
        learned[0].window <= Duration::from_millis(200),
        "{learned:?}"
    );
    assert_eq!(learned[0].throttled, 0);
    // A budget seeded with it (the next replica) is as careful from its first request.
    let replica = std::sync::Arc::new(RateBudget::new(config()));
    replica.seed(&learned);
    let fresh = std::sync::Arc::new(ToldServer {
        limit: 10,
        window: Duration::from_millis(200),
        state: Mutex::new((None, 0)),
    });
    assert_eq!(
        crawl(&replica, &fresh, 16, 30, Duration::from_millis(5)).await,
        0
    );
}

#[tokio::test]
async fn without_what_was_told_a_first_burst_above_the_limit_draws_429s() {
    // The same server and callers with an empty budget and 16 in flight: the first 16 go
    // before any answer can tell the limit, so exactly 6 are refused, then none.
    let budget = std::sync::Arc::new(RateBudget::new(config()));
    let server = std::sync::Arc::new(ToldServer {
        limit: 10,
        window: Duration::from_millis(200),
        state: Mutex::new((None, 0)),
    });
    let refused = crawl(&budget, &server, 16, 40, Duration::from_millis(5)).await;
    assert_eq!(refused, 6);
}

#[tokio::test]
async fn one_paths_told_limit_leaves_the_templates_other_paths_free() {
    let budget = RateBudget::new(config());
    let told = |remaining| RateHeaders {
        limit: 3,
        remaining,
        reset: Duration::from_millis(300),
    };
    for remaining in [2, 1, 0] {
        let t = budget
            .acquire(&GET, &path("proj_a"), Priority::Background)
            .await;
        budget.on_answer(&t, Some(told(remaining)));
        budget.on_success(&t);
    }
    // The server counted no more than this path's own requests: the path's limit, learned
    // for it alone once nothing was left.
    let learned = budget.learned();
    assert_eq!(learned.len(), 1, "{learned:?}");
    assert!(learned[0].per_path, "{learned:?}");
    assert_eq!(learned[0].scope, "GET /organization/projects/proj_a/users");
    let start = Instant::now();
    budget
        .acquire(&GET, &path("proj_b"), Priority::Background)
        .await;
    assert!(start.elapsed() < Duration::from_millis(50));
    budget
        .acquire(&GET, &path("proj_a"), Priority::Background)
        .await;
    assert!(
        start.elapsed() >= Duration::from_millis(280),
        "{:?}",
        start.elapsed()
    );
}
