//! The OpenAI client under the sandbox's faults: a storm of 429s, 5xx bursts, hanging
//! requests, malformed bodies, a cursor that repeats and a failing n-th page.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use openai_governor::openai::{
    ClientConfig, CostsParams, CreateProject, ErrorKind, ListUsersParams, ModifyProject,
    RateBudgetConfig, RbacListParams, RetryPolicy,
};
use openai_governor_sandbox::{
    Faults, KeyProfile, OrgShape, PageFault, RateLimit, SandboxConfig, SandboxHandle,
};

use crate::helpers::{
    CheckedSandbox, openai_client, quick_retries, start_sandbox, test_client_config,
};

fn config_with(retry: RetryPolicy) -> ClientConfig {
    ClientConfig {
        retry,
        ..test_client_config()
    }
}

async fn sandbox_with_users(users: usize) -> CheckedSandbox {
    start_sandbox(SandboxConfig {
        org: OrgShape {
            users,
            ..OrgShape::small()
        },
        ..SandboxConfig::default()
    })
    .await
}

fn some_user(sandbox: &SandboxHandle) -> String {
    sandbox
        .state()
        .read(|org| org.users.iter().nth(1).unwrap().id.clone())
}

/// Fails the test instead of hanging when a stream does not end.
async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("finished in time")
}

#[tokio::test]
async fn a_storm_of_429s_slows_the_client_down_and_it_finishes() {
    let sandbox = sandbox_with_users(300).await;
    let limit = 20;
    sandbox.state().set_faults(Faults {
        rate_limits: vec![RateLimit::per_template(
            "GET /organization/users*",
            limit,
            1,
        )],
        ..Faults::default()
    });
    let client = openai_client(
        &sandbox,
        KeyProfile::All,
        ClientConfig {
            retry: RetryPolicy {
                max_retries: 10,
                min_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(500),
                ..quick_retries(10)
            },
            rate: RateBudgetConfig::default(),
            ..test_client_config()
        },
    );
    let expected: HashSet<String> = sandbox
        .state()
        .read(|org| org.users.iter().map(|u| u.id.clone()).collect());
    let targets: Vec<String> = expected.iter().take(30).cloned().collect();

    // Three listings of every user (12 pages each) and 30 single reads, all at once,
    // sharing one client and so one budget.
    let started = Instant::now();
    let listings = (0..3).map(|_| {
        let client = client.clone();
        async move {
            client
                .users(&ListUsersParams {
                    limit: Some(25),
                    ..Default::default()
                })
                .map_ok(|u| u.id)
                .try_collect::<Vec<_>>()
                .await
        }
    });
    let reads = targets.iter().map(|id| {
        let client = client.clone();
        async move { client.get_user(id).await }
    });
    let (listings, reads) = within(30, async {
        futures::join!(
            futures::future::join_all(listings),
            futures::future::join_all(reads)
        )
    })
    .await;
    let elapsed = started.elapsed();

    for listing in listings {
        let ids = listing.expect("listing finished");
        assert_eq!(ids.len(), expected.len());
        assert_eq!(ids.into_iter().collect::<HashSet<_>>(), expected);
    }
    for (read, id) in reads.into_iter().zip(&targets) {
        assert_eq!(&read.expect("read finished").data.id, id);
    }

    let counters = sandbox.counters();
    let throttled = counters.status(429);
    let succeeded = counters.status(200);
    assert_eq!(succeeded, 3 * 12 + 30);
    assert_eq!(counters.total, succeeded + throttled);
    // It was throttled, learnt from it, and the 429s stayed few: at most what was in flight
    // on each of the two endpoints when it first met the limit (the budget starts
    // optimistic), where a client that ignored them would have drawn one for nearly every
    // request beyond the first window.
    let in_flight = test_client_config().max_concurrency as u64;
    assert!(throttled >= 1, "the storm never hit: {counters:?}");
    assert!(
        throttled <= 2 * in_flight,
        "{throttled} 429s for {succeeded} requests: {counters:?}"
    );
    eprintln!("429 storm: {succeeded} answered, {throttled} refused in {elapsed:?}");
    assert_eq!(client.throttled(), throttled);
    // What it learned: the listings' one path has its own rate, the single reads (a path
    // each) their template's; both about the limit of 20 a second.
    let learned = client.learned_limits();
    eprintln!("learned after the storm: {learned:?}");
    for l in &learned {
        assert!(
            l.requests <= 20 && l.window >= Duration::from_millis(900),
            "{l:?}"
        );
    }
    assert!(
        learned
            .iter()
            .any(|l| l.per_path && l.scope == "GET /organization/users"),
        "{learned:?}"
    );
    // 66 requests at no more than 20 per second per endpoint take more than a second, and
    // waiting out Retry-After did not take forever.
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}

#[tokio::test]
async fn without_a_budget_the_same_limit_refuses_everything_beyond_it() {
    // The control for the storm above: the sandbox's limit is real, and a client that sends
    // everything at once (no budget, no retries) draws a 429 for every request beyond it.
    let sandbox = sandbox_with_users(50).await;
    sandbox.state().set_faults(Faults {
        rate_limits: vec![RateLimit::per_template("GET /organization/users*", 20, 1)],
        ..Faults::default()
    });
    let client = openai_client(&sandbox, KeyProfile::All, config_with(RetryPolicy::none()));
    let ids: Vec<String> = sandbox
        .state()
        .read(|org| org.users.iter().take(30).map(|u| u.id.clone()).collect());
    let results = futures::future::join_all(ids.iter().map(|id| client.get_user(id))).await;
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(e) if matches!(e.kind, ErrorKind::RateLimited { .. })))
        .count();
    assert_eq!(refused, 10);
    assert_eq!(sandbox.counters().status(429), 10);
}

#[tokio::test]
async fn a_429_is_a_typed_error_once_retries_are_spent_or_retry_after_is_too_long() {
    let sandbox = sandbox_with_users(10).await;
    sandbox.state().set_faults(Faults {
        rate_limits: vec![RateLimit::per_template("GET /organization/users", 2, 60)],
        ..Faults::default()
    });
    let client = openai_client(&sandbox, KeyProfile::All, config_with(RetryPolicy::none()));
    for _ in 0..2 {
        client
            .list_users(&ListUsersParams::default())
            .await
            .unwrap();
    }
    let err = client
        .list_users(&ListUsersParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::RateLimited { retry_after: Some(d) } if d >= Duration::from_secs(55)),
        "{err:?}"
    );
    assert_eq!(err.status, Some(429));
    assert_eq!(err.code.as_deref(), Some("rate_limit_exceeded"));
    assert!(err.request_id.is_some());
    assert!(err.is_transient());

    // Retries allowed, but Retry-After (a minute) is beyond what we wait: answered at once.
    let max_wait = Duration::from_millis(400);
    let patient = openai_client(
        &sandbox,
        KeyProfile::All,
        ClientConfig {
            rate: RateBudgetConfig::default(),
            ..config_with(RetryPolicy {
                max_retry_after: max_wait,
                ..quick_retries(5)
            })
        },
    );
    let started = Instant::now();
    let err = patient
        .list_users(&ListUsersParams::default())
        .await
        .unwrap_err();
    assert!(matches!(err.kind, ErrorKind::RateLimited { .. }), "{err}");
    assert_eq!(err.attempts, 1);
    assert!(started.elapsed() < max_wait, "{:?}", started.elapsed());
    // Another endpoint is not held back by this one's limit.
    let started = Instant::now();
    let user = within(10, patient.get_user(&some_user(&sandbox)))
        .await
        .expect("another endpoint is not limited");
    assert_eq!(user.data.object, "organization.user");
    assert!(started.elapsed() < max_wait / 2, "{:?}", started.elapsed());
    // The same endpoint's next call waits out the pause, but no longer than the policy's
    // longest wait, not the minute Retry-After asked for; still refused, it says so at once.
    let started = Instant::now();
    let err = within(10, patient.list_users(&ListUsersParams::default()))
        .await
        .unwrap_err();
    assert!(matches!(err.kind, ErrorKind::RateLimited { .. }), "{err}");
    let waited = started.elapsed();
    assert!(waited >= max_wait - Duration::from_millis(50), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[tokio::test]
async fn a_burst_of_5xx_is_retried_for_reads_and_fails_typed_without_retries() {
    let sandbox = sandbox_with_users(10).await;
    let user = some_user(&sandbox);
    let burst = |n| Faults {
        error_burst: n,
        error_status: Some(503),
        only: Some("GET /organization/users/{user_id}".into()),
        ..Faults::default()
    };

    sandbox.state().set_faults(burst(3));
    let client = openai_client(&sandbox, KeyProfile::All, config_with(quick_retries(4)));
    let reply = client.get_user(&user).await.unwrap();
    assert_eq!(reply.data.id, user);
    assert_eq!(reply.meta.attempts, 4);
    let counters = sandbox.counters();
    let endpoint = &counters.endpoints["GET /organization/users/{user_id}"];
    assert_eq!(endpoint.statuses.get(&503), Some(&3));
    assert_eq!(endpoint.statuses.get(&200), Some(&1));

    // Without retries the 5xx comes back typed.
    sandbox.state().set_faults(burst(3));
    let stingy = openai_client(&sandbox, KeyProfile::All, config_with(RetryPolicy::none()));
    let err = stingy.get_user(&user).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Upstream);
    assert_eq!(err.status, Some(503));
    assert_eq!(err.attempts, 1);
    assert_eq!(err.error_type.as_deref(), Some("server_error"));
    assert!(
        err.request_id
            .as_deref()
            .is_some_and(|r| r.starts_with("req_"))
    );
    assert!(err.is_transient());
    // The rest of the burst is spent by the next calls, then reads work again.
    assert!(stingy.get_user(&user).await.is_err());
    assert!(stingy.get_user(&user).await.is_err());
    stingy.get_user(&user).await.unwrap();
}

#[tokio::test]
async fn writes_are_not_repeated_after_a_5xx_unless_declared_safe() {
    let sandbox = sandbox_with_users(10).await;
    let state = sandbox.state();
    let projects = || state.read(|org| org.projects.len());
    let before = projects();
    let create = CreateProject {
        name: "Once".into(),
        ..Default::default()
    };
    let client = openai_client(&sandbox, KeyProfile::All, config_with(quick_retries(3)));

    state.set_faults(Faults {
        error_burst: 1,
        only: Some("POST /organization/projects".into()),
        ..Faults::default()
    });
    let err = client.create_project(&create).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Upstream);
    assert_eq!(err.status, Some(500));
    assert_eq!(err.attempts, 1, "a create is not repeated blindly");
    assert_eq!(sandbox.request_count("POST /organization/projects"), 1);
    assert_eq!(projects(), before);

    // Declared safe to repeat: retried, and created exactly once.
    state.set_faults(Faults {
        error_burst: 1,
        only: Some("POST /organization/projects".into()),
        ..Faults::default()
    });
    let created = client
        .retrying_writes()
        .create_project(&create)
        .await
        .unwrap();
    assert_eq!(created.meta.attempts, 2);
    assert_eq!(projects(), before + 1);
    assert_eq!(sandbox.request_count("POST /organization/projects"), 3);

    // "Set to this value" updates are idempotent and retried by default.
    state.set_faults(Faults {
        error_burst: 2,
        only: Some("POST /organization/projects/{project_id}".into()),
        ..Faults::default()
    });
    let renamed = client
        .modify_project(
            &created.data.id,
            &ModifyProject {
                name: Some("Renamed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.meta.attempts, 3);
    assert_eq!(renamed.data.name.as_deref(), Some("Renamed"));
}

#[tokio::test]
async fn hanging_requests_time_out_quickly_with_a_typed_error() {
    let sandbox = sandbox_with_users(10).await;
    let user = some_user(&sandbox);
    sandbox.state().set_faults(Faults {
        hang_rate: 1.0,
        only: Some("/organization/groups".into()),
        ..Faults::default()
    });
    let short = |retry| ClientConfig {
        request_timeout: Duration::from_millis(250),
        ..config_with(retry)
    };

    let client = openai_client(&sandbox, KeyProfile::All, short(RetryPolicy::none()));
    let started = Instant::now();
    let err = client
        .list_groups(&RbacListParams::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert_eq!(err.status, None);
    assert_eq!(err.attempts, 1);
    assert!(err.is_transient());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A read is retried after a timeout; a create is not (it may have happened).
    let retrying = openai_client(&sandbox, KeyProfile::All, short(quick_retries(2)));
    let err = retrying
        .list_groups(&RbacListParams::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert_eq!(err.attempts, 3);
    let err = retrying.create_group("slow").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert_eq!(err.attempts, 1);
    let counters = sandbox.counters();
    assert_eq!(counters.endpoints["GET /organization/groups"].hung, 4);
    assert_eq!(counters.endpoints["POST /organization/groups"].hung, 1);
    // Endpoints outside the fault still answer.
    retrying.get_user(&user).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn malformed_bodies_are_typed_errors_and_writes_that_happened_are_not_repeated() {
    let sandbox = sandbox_with_users(10).await;
    let state = sandbox.state();
    let user = some_user(&sandbox);
    state.set_faults(Faults {
        malformed_rate: 1.0,
        only: Some("/organization/users/{user_id}".into()),
        ..Faults::default()
    });
    let stingy = openai_client(&sandbox, KeyProfile::All, config_with(RetryPolicy::none()));
    let err = stingy.get_user(&user).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidResponse, "{err}");
    assert_eq!(err.status, Some(200));
    assert!(err.request_id.is_some());
    assert!(err.message.contains("users"), "{err}");

    // Garbled JSON on a read is retried (it may be a glitch), then reported.
    let client = openai_client(&sandbox, KeyProfile::All, config_with(quick_retries(2)));
    let err = client.get_user(&user).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidResponse);
    assert_eq!(err.attempts, 3);
    assert_eq!(
        sandbox.counters().endpoints["GET /organization/users/{user_id}"].malformed,
        4
    );

    // A write that answered 2xx happened: never repeated, even though its body was garbled.
    let before = state.read(|org| org.users.get(&user).unwrap().role.clone());
    assert_eq!(before, "reader");
    let err = client
        .modify_user(
            &user,
            &openai_governor::openai::ModifyUser {
                role: Some("owner".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidResponse);
    assert_eq!(err.attempts, 1);
    assert_eq!(
        sandbox.request_count("POST /organization/users/{user_id}"),
        1
    );
    assert_eq!(
        state.read(|org| org.users.get(&user).unwrap().role.clone()),
        "owner"
    );

    // A stream over a list that answers garbage ends with the error.
    state.set_faults(Faults {
        malformed_rate: 1.0,
        only: Some("GET /organization/users".into()),
        ..Faults::default()
    });
    let items: Vec<_> = within(10, stingy.users(&ListUsersParams::default()).collect()).await;
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].as_ref().unwrap_err().kind,
        ErrorKind::InvalidResponse
    );

    // Now and then garbage: retries absorb it and the listing is complete.
    state.set_faults(Faults {
        malformed_rate: 0.3,
        only: Some("GET /organization/users".into()),
        ..Faults::default()
    });
    state.reset_counters();
    let patient = openai_client(&sandbox, KeyProfile::All, config_with(quick_retries(12)));
    let ids: Vec<String> = patient
        .users(&ListUsersParams {
            limit: Some(2),
            ..Default::default()
        })
        .map_ok(|u| u.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids.len(), 10);
    let c = &sandbox.counters().endpoints["GET /organization/users"];
    assert_eq!(c.requests, 5 + c.malformed);
}

#[tokio::test]
async fn a_repeating_cursor_ends_every_pagination_style_with_an_error() {
    let sandbox = start_sandbox(SandboxConfig {
        org: OrgShape {
            users: 30,
            groups: 30,
            members_per_group: 1,
            ..OrgShape::small()
        },
        ..SandboxConfig::default()
    })
    .await;
    let state = sandbox.state();
    state.set_faults(Faults {
        repeat_cursor: Some("*".into()),
        ..Faults::default()
    });
    let client = openai_client(&sandbox, KeyProfile::All, test_client_config());

    let users: Vec<_> = within(
        10,
        client
            .users(&ListUsersParams {
                limit: Some(10),
                ..Default::default()
            })
            .collect(),
    )
    .await;
    let groups: Vec<_> = within(
        10,
        client
            .groups(&RbacListParams {
                limit: Some(10),
                ..Default::default()
            })
            .collect(),
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let costs: Vec<_> = within(
        10,
        client
            .costs(&CostsParams {
                start_time: now - 30 * 86_400,
                limit: Some(7),
                ..Default::default()
            })
            .collect(),
    )
    .await;

    // The first page, then an error instead of the same page again (and again).
    for (name, first_page, results) in [
        (
            "users",
            10,
            users.iter().map(|r| r.as_ref().err()).collect::<Vec<_>>(),
        ),
        (
            "groups",
            10,
            groups.iter().map(|r| r.as_ref().err()).collect(),
        ),
        ("costs", 7, costs.iter().map(|r| r.as_ref().err()).collect()),
    ] {
        assert_eq!(results.len(), first_page + 1, "{name}");
        assert!(results[..first_page].iter().all(Option::is_none), "{name}");
        let err = results[first_page].expect("an error last");
        assert_eq!(err.kind, ErrorKind::InvalidResponse, "{name}");
        assert!(err.message.contains("did not advance"), "{name}: {err}");
    }
    let counters = sandbox.counters();
    for endpoint in [
        "GET /organization/users",
        "GET /organization/groups",
        "GET /organization/costs",
    ] {
        assert_eq!(counters.requests(endpoint), 2, "{endpoint}");
    }
}

#[tokio::test]
async fn a_failing_nth_page_is_retried_or_ends_the_stream() {
    let sandbox = sandbox_with_users(50).await;
    let state = sandbox.state();
    let page_fault = |times| Faults {
        page_fault: Some(PageFault {
            endpoint: "GET /organization/users".into(),
            page: 3,
            status: 502,
            times,
        }),
        ..Faults::default()
    };
    let list = ListUsersParams {
        limit: Some(10),
        ..Default::default()
    };

    // Fails twice, then succeeds: the retries carry the listing through.
    state.set_faults(page_fault(2));
    let client = openai_client(&sandbox, KeyProfile::All, config_with(quick_retries(3)));
    let ids: Vec<String> = client
        .users(&list)
        .map_ok(|u| u.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids.len(), 50);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 50);
    let counters = sandbox.counters();
    assert_eq!(counters.status(502), 2);
    assert_eq!(counters.requests("GET /organization/users"), 5 + 2);

    // Always fails: two pages of users, then the typed error, then the end.
    state.reset_counters();
    state.set_faults(page_fault(0));
    let items: Vec<_> = within(10, client.users(&list).collect()).await;
    assert_eq!(items.len(), 21);
    assert!(items[..20].iter().all(Result::is_ok));
    let err = items[20].as_ref().unwrap_err();
    assert_eq!(err.kind, ErrorKind::Upstream);
    assert_eq!(err.status, Some(502));
    assert_eq!(err.attempts, 4);
    assert_eq!(
        sandbox.counters().requests("GET /organization/users"),
        2 + 4
    );
}

#[tokio::test]
async fn concurrency_is_bounded_across_clones() {
    let sandbox = sandbox_with_users(10).await;
    let latency = Duration::from_millis(120);
    sandbox.state().set_faults(Faults {
        latency_ms: latency.as_millis() as u64,
        only: Some("GET /organization/users/{user_id}".into()),
        ..Faults::default()
    });
    let client = openai_client(
        &sandbox,
        KeyProfile::All,
        ClientConfig {
            max_concurrency: 2,
            ..test_client_config()
        },
    );
    let ids: Vec<String> = sandbox
        .state()
        .read(|org| org.users.iter().take(6).map(|u| u.id.clone()).collect());
    let started = Instant::now();
    // Six calls on six clones: at most two in flight, so at least three rounds of latency.
    let results = futures::future::join_all(ids.iter().map(|id| {
        let client = client.clone();
        async move { client.get_user(id).await }
    }))
    .await;
    let elapsed = started.elapsed();
    assert!(results.iter().all(Result::is_ok));
    assert!(elapsed >= latency * 3, "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}
