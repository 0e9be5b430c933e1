use super::*;
use crate::{SandboxConfig, build_state, router};
use tower::ServiceExt;

/// A sandbox state (not served), its `all` key, the default project and a member of the
/// organization who is not in it.
fn org() -> (SandboxState, String, watch::Sender<bool>, String, String) {
    let (state, keys, stop) = build_state(&SandboxConfig::default());
    let key = keys
        .iter()
        .find(|k| k.name == "all")
        .map(|k| k.value.clone())
        .unwrap();
    let (project, user) = state.write(|org| {
        let now = org.now();
        let user = org
            .add_user("Held", "held@example.com", "reader", now)
            .unwrap();
        (org.default_project_id.clone(), user)
    });
    (state, key, stop, project, user)
}

fn add_member(key: &str, project: &str, user: &str) -> Request {
    Request::post(format!("/v1/organization/projects/{project}/users"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Body::from(format!(
            r#"{{"user_id": "{user}", "role": "member"}}"#
        )))
        .unwrap()
}

fn is_member(state: &SandboxState, project: &str, user: &str) -> bool {
    state.read(|org| {
        org.project_users
            .get(project)
            .is_some_and(|t| t.contains(user))
    })
}

fn held(state: &SandboxState) -> u64 {
    state
        .counters()
        .endpoints
        .get("POST /organization/projects/{project_id}/users")
        .map_or(0, |c| c.held)
}

/// Waits (bounded) until `n` requests are held: releasing earlier would release nothing.
async fn until_held(state: &SandboxState, n: u64) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while held(state) < n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the request was held");
}

fn hold(endpoint: &str, times: u32) -> Faults {
    Faults {
        hold_after_apply: Some(HoldAfterApply {
            endpoint: endpoint.to_owned(),
            times,
        }),
        ..Faults::default()
    }
}

#[tokio::test]
async fn a_held_write_is_applied_and_a_client_that_gives_up_breaks_nothing() {
    let (state, key, _stop, project, user) = org();
    state.set_faults(hold("POST /organization/projects/*", 1));
    let app = router(state.clone());

    // The caller gives up: the in-flight future is dropped while held (a disconnect).
    let gave_up = tokio::time::timeout(
        Duration::from_millis(200),
        app.clone().oneshot(add_member(&key, &project, &user)),
    )
    .await;
    assert!(gave_up.is_err(), "the answer was withheld");
    assert!(is_member(&state, &project, &user), "the write was applied");
    let c = state.counters().endpoints["POST /organization/projects/{project_id}/users"].clone();
    assert_eq!((c.requests, c.held), (1, 1));
    assert!(c.statuses.is_empty(), "no answer was sent: {c:?}");
    assert_eq!(state.faults().hold_after_apply, None, "times: 1 is spent");
    state.release_held(); // nobody is waiting any more: harmless

    // The next request answers normally: adding the same member again is a 400.
    let res = app
        .oneshot(add_member(&key, &project, &user))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn held_requests_answer_503_when_released_changed_or_shut_down() {
    let (state, key, stop, project, user) = org();
    let app = router(state.clone());
    let send = |user: String| {
        let req = add_member(&key, &project, &user);
        tokio::spawn(app.clone().oneshot(req))
    };
    let status = |t: tokio::task::JoinHandle<Result<Response, std::convert::Infallible>>| async {
        tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("answered once released")
            .unwrap()
            .unwrap()
            .status()
    };

    // Exact template, every time (`times: 0`); released without changing the faults.
    state.set_faults(hold("POST /organization/projects/{project_id}/users", 0));
    let first = send(user.clone());
    until_held(&state, 1).await;
    state.release_held();
    assert_eq!(status(first).await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(state.faults().hold_after_apply.is_some(), "the fault stays");

    // Released by changing the faults.
    let second = state.write(|org| {
        let now = org.now();
        org.add_user("Second", "second@example.com", "reader", now)
            .unwrap()
    });
    let held_second = send(second.clone());
    until_held(&state, 2).await;
    state.set_faults(Faults::default());
    assert_eq!(status(held_second).await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(is_member(&state, &project, &second));

    // Released by shutdown.
    state.set_faults(hold("/organization/projects/*", 0));
    let third = state.write(|org| {
        let now = org.now();
        org.add_user("Third", "third@example.com", "reader", now)
            .unwrap()
    });
    let held_third = send(third);
    until_held(&state, 3).await;
    stop.send(true).unwrap();
    assert_eq!(status(held_third).await, StatusCode::SERVICE_UNAVAILABLE);
    let c = state.counters().endpoints["POST /organization/projects/{project_id}/users"].clone();
    assert_eq!(c.statuses.get(&503), Some(&3), "{c:?}");
}

#[tokio::test]
async fn other_endpoints_and_refused_requests_are_not_held() {
    let (state, key, _stop, project, user) = org();
    state.set_faults(Faults {
        error_burst: 1,
        ..hold("POST /organization/projects/{project_id}/users", 1)
    });
    let app = router(state.clone());
    // A 5xx injected before the handler: nothing applied, nothing held, `times` not spent.
    let res = app
        .clone()
        .oneshot(add_member(&key, &project, &user))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!is_member(&state, &project, &user));
    let res = app
        .oneshot(
            Request::get("/v1/organization/users?limit=1")
                .header("authorization", format!("Bearer {key}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(held(&state), 0);
    assert_eq!(
        state.faults().hold_after_apply.map(|h| h.times),
        Some(1),
        "still armed"
    );
}

/// One `GET /v1{path}` over real HTTP on a fresh connection: the status and the headers
/// (names lowercased).
async fn http_get(
    base: &url::Url,
    key: &str,
    path: &str,
) -> (u16, std::collections::HashMap<String, String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = format!("{}:{}", base.host_str().unwrap(), base.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /v1{path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\n\
         connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("answered")
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

/// A served sandbox with these rate limits, its `all` key and two active projects.
async fn limited(limits: Vec<RateLimit>) -> (crate::SandboxHandle, String, [String; 2]) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = SandboxConfig {
        faults: Faults {
            rate_limits: limits,
            ..Faults::default()
        },
        ..SandboxConfig::default()
    };
    let handle = crate::start(config, listener).await.unwrap();
    let key = handle.key(crate::KeyProfile::All).to_owned();
    let projects: Vec<String> = handle.state().read(|org| {
        org.projects
            .iter()
            .filter(|p| p.archived_at.is_none())
            .map(|p| p.id.clone())
            .take(2)
            .collect()
    });
    let projects: [String; 2] = projects.try_into().expect("two active projects");
    (handle, key, projects)
}

fn members(project: &str) -> String {
    format!("/organization/projects/{project}/users")
}

/// Parses what [`go_duration`] prints (`1h2m3.5s`, `250ms`).
fn parse_go_duration(s: &str) -> Duration {
    if let Some(ms) = s.strip_suffix("ms") {
        return Duration::from_millis(ms.parse().unwrap());
    }
    let mut rest = s.strip_suffix('s').expect("ends in s");
    let mut total = Duration::ZERO;
    for (unit, secs) in [('h', 3600), ('m', 60)] {
        if let Some((n, r)) = rest.split_once(unit) {
            total += Duration::from_secs(n.parse::<u64>().unwrap() * secs);
            rest = r;
        }
    }
    total + Duration::from_secs_f64(rest.parse().unwrap())
}

#[test]
fn durations_print_as_go_and_openai_do() {
    let ms = Duration::from_millis;
    for (d, want) in [
        (Duration::ZERO, "0s"),
        (Duration::from_nanos(1), "1ms"),
        (ms(250), "250ms"),
        (ms(999), "999ms"),
        (ms(1000), "1s"),
        (ms(1500), "1.5s"),
        (ms(17_280), "17.28s"),
        (Duration::from_micros(59_999_001), "1m0s"),
        (ms(360_000), "6m0s"),
        (ms(3_661_001), "1h1m1.001s"),
        (ms(3_600_000), "1h0m0s"),
    ] {
        assert_eq!(go_duration(d), want, "{d:?}");
        assert!(parse_go_duration(want) <= d + ms(1), "{want}");
    }
}

#[tokio::test]
async fn a_per_template_window_is_shared_by_every_path_of_the_template() {
    let (sb, key, [a, b]) = limited(vec![RateLimit::per_template(
        "GET /organization/projects/{project_id}/users",
        2,
        60,
    )])
    .await;
    let base = sb.base_url();
    assert_eq!(http_get(&base, &key, &members(&a)).await.0, 200);
    assert_eq!(http_get(&base, &key, &members(&b)).await.0, 200);
    let (status, headers) = http_get(&base, &key, &members(&a)).await;
    assert_eq!(status, 429, "the third request of the template");
    let retry: u64 = headers["retry-after"].parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert!(
        !headers.contains_key("x-ratelimit-remaining-requests"),
        "no rate headers unless asked: {headers:?}"
    );
    assert_eq!(http_get(&base, &key, &members(&b)).await.0, 429);
    // Other endpoints are not limited.
    assert_eq!(http_get(&base, &key, "/organization/users").await.0, 200);
}

#[tokio::test]
async fn a_per_path_window_is_not_shared_between_paths() {
    let (sb, key, [a, b]) = limited(vec![RateLimit::per_path(
        "GET /organization/projects/*",
        2,
        60,
    )])
    .await;
    let base = sb.base_url();
    for _ in 0..2 {
        assert_eq!(http_get(&base, &key, &members(&a)).await.0, 200);
    }
    assert_eq!(http_get(&base, &key, &members(&a)).await.0, 429);
    // Project b's members, and project a's service accounts, have windows of their own.
    for _ in 0..2 {
        assert_eq!(http_get(&base, &key, &members(&b)).await.0, 200);
    }
    assert_eq!(http_get(&base, &key, &members(&b)).await.0, 429);
    let accounts = format!("/organization/projects/{a}/service_accounts");
    assert_eq!(http_get(&base, &key, &accounts).await.0, 200);
    let c = sb.counters();
    assert_eq!(c.status(429), 2, "{c:?}");
}

#[tokio::test]
async fn a_429_without_retry_after_when_it_is_off() {
    let (sb, key, _) = limited(vec![RateLimit {
        retry_after: false,
        ..RateLimit::per_template("GET /organization/users", 1, 60)
    }])
    .await;
    let base = sb.base_url();
    assert_eq!(http_get(&base, &key, "/organization/users").await.0, 200);
    let (status, headers) = http_get(&base, &key, "/organization/users").await;
    assert_eq!(status, 429);
    assert!(!headers.contains_key("retry-after"), "{headers:?}");
    assert!(
        headers.contains_key("x-request-id"),
        "still OpenAI's headers"
    );
}

#[tokio::test]
async fn rate_headers_count_down_on_every_answer_when_on() {
    let (sb, key, _) = limited(vec![RateLimit {
        headers: true,
        ..RateLimit::per_template("GET /organization/users", 3, 60)
    }])
    .await;
    let base = sb.base_url();
    let mut last_reset = Duration::from_secs(60);
    for remaining in [2, 1, 0] {
        let (status, h) = http_get(&base, &key, "/organization/users").await;
        assert_eq!(status, 200);
        assert_eq!(h["x-ratelimit-limit-requests"], "3");
        assert_eq!(h["x-ratelimit-remaining-requests"], remaining.to_string());
        let reset = parse_go_duration(&h["x-ratelimit-reset-requests"]);
        assert!(
            reset > Duration::ZERO && reset <= last_reset,
            "{reset:?} after {last_reset:?}"
        );
        last_reset = reset;
    }
    let (status, h) = http_get(&base, &key, "/organization/users").await;
    assert_eq!(status, 429);
    assert_eq!(h["x-ratelimit-limit-requests"], "3");
    assert_eq!(h["x-ratelimit-remaining-requests"], "0");
    assert!(parse_go_duration(&h["x-ratelimit-reset-requests"]) <= last_reset);
    assert!(h.contains_key("retry-after"));
    // An endpoint the limit does not match carries none.
    let (status, h) = http_get(&base, &key, "/organization/invites").await;
    assert_eq!(status, 200);
    assert!(!h.contains_key("x-ratelimit-limit-requests"), "{h:?}");
}

#[test]
fn rate_limits_read_old_json_with_the_defaults() {
    let old: RateLimit = serde_json::from_str(
        r#"{"endpoint": "GET /organization/users", "max_requests": 5, "window_secs": 1}"#,
    )
    .unwrap();
    assert_eq!(
        old,
        RateLimit::per_template("GET /organization/users", 5, 1)
    );
    let new: RateLimit = serde_json::from_str(
        r#"{"endpoint": "*", "max_requests": 1, "window_secs": 2, "per_path": true,
            "retry_after": false, "headers": true}"#,
    )
    .unwrap();
    assert!(new.per_path && !new.retry_after && new.headers);
}

#[test]
fn patterns() {
    let t = "/organization/projects/{project_id}/users";
    let c = "/organization/projects/proj_1/users";
    assert!(endpoint_matches("*", "GET", t, c));
    assert!(endpoint_matches(
        "GET /organization/projects/{project_id}/users",
        "GET",
        t,
        c
    ));
    assert!(endpoint_matches(
        "/organization/projects/proj_1/users",
        "POST",
        t,
        c
    ));
    assert!(endpoint_matches(
        "GET /v1/organization/projects/*",
        "GET",
        t,
        c
    ));
    assert!(!endpoint_matches(
        "POST /organization/projects/*",
        "GET",
        t,
        c
    ));
    assert!(!endpoint_matches("GET /organization/users", "GET", t, c));
}
