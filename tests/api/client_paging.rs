//! Paging through more than 1,000 items in each of the three pagination styles (legacy
//! `after=last_id`, RBAC `after=next`, usage `page=next_page`): exact counts, no duplicates,
//! and exactly ceil(n / limit) requests with the limit at its maximum.

use std::collections::HashSet;

use futures::TryStreamExt;
use openai_governor::openai::{
    BucketWidth, CostsParams, ListUsersParams, RbacListParams, UsageKind, UsageParams,
};
use openai_governor_sandbox::{KeyProfile, OrgShape, SandboxConfig};

use crate::helpers::{openai_client, start_sandbox, test_client_config};

/// A fixed clock on a day boundary, so that day buckets line up exactly.
const NOW: i64 = 20_000 * 86_400;

fn pages(n: usize, limit: usize) -> u64 {
    n.div_ceil(limit) as u64
}

#[tokio::test]
async fn legacy_cursor_lists_page_through_thousands_of_users() {
    let sandbox = start_sandbox(SandboxConfig {
        org: OrgShape {
            users: 2_345,
            ..OrgShape::small()
        },
        ..SandboxConfig::default()
    })
    .await;
    // And a few more added later, as the dashboard would.
    let added: serde_json::Value = reqwest::Client::new()
        .post(sandbox.control_url().join("users").unwrap())
        .json(&serde_json::json!({"count": 30}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(added["data"].as_array().unwrap().len(), 30);
    let client = openai_client(&sandbox, KeyProfile::All, test_client_config());
    let expected: Vec<String> = sandbox
        .state()
        .read(|org| org.users.iter().map(|u| u.id.clone()).collect());
    assert_eq!(expected.len(), 2_375);
    sandbox.state().reset_counters();

    let ids: Vec<String> = client
        .users(&ListUsersParams::default())
        .map_ok(|u| u.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids, expected, "every user, once, in order");
    let counters = sandbox.counters();
    assert_eq!(
        counters.requests("GET /organization/users"),
        pages(2_375, 100)
    );
    assert_eq!(counters.status(200), pages(2_375, 100));
    assert_eq!(counters.total, pages(2_375, 100));
}

#[tokio::test]
async fn rbac_lists_page_through_thousands_of_groups_and_group_members() {
    let sandbox = start_sandbox(SandboxConfig {
        org: OrgShape {
            groups: 2_500,
            members_per_group: 0,
            ..OrgShape::small()
        },
        ..SandboxConfig::default()
    })
    .await;
    let state = sandbox.state();
    let client = openai_client(&sandbox, KeyProfile::All, test_client_config());
    state.reset_counters();

    let groups: Vec<String> = client
        .groups(&RbacListParams::default())
        .map_ok(|g| g.id)
        .try_collect()
        .await
        .unwrap();
    let expected: Vec<String> = state.read(|org| org.groups.iter().map(|g| g.id.clone()).collect());
    assert_eq!(groups.len(), 2_500);
    assert_eq!(groups, expected);
    assert_eq!(
        sandbox.request_count("GET /organization/groups"),
        pages(2_500, 1_000)
    );

    // One group with everybody in it; members default to newest first.
    let sandbox = start_sandbox(SandboxConfig {
        org: OrgShape {
            users: 1_500,
            groups: 1,
            members_per_group: 1_500,
            ..OrgShape::small()
        },
        ..SandboxConfig::default()
    })
    .await;
    let state = sandbox.state();
    let group = state.read(|org| org.groups.iter().next().unwrap().id.clone());
    let client = openai_client(&sandbox, KeyProfile::All, test_client_config());
    let members: Vec<String> = client
        .group_users(&group, &RbacListParams::default())
        .map_ok(|u| u.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(members.len(), 1_500);
    let unique: HashSet<&String> = members.iter().collect();
    assert_eq!(unique.len(), 1_500);
    let mut expected: Vec<String> =
        state.read(|org| org.users.iter().map(|u| u.id.clone()).collect());
    expected.reverse();
    assert_eq!(members, expected);
    assert_eq!(
        sandbox.request_count("GET /organization/groups/{group_id}/users"),
        pages(1_500, 1_000)
    );
    assert_eq!(sandbox.counters().total, pages(1_500, 1_000));
}

#[tokio::test]
async fn usage_pages_through_thousands_of_buckets() {
    let sandbox = start_sandbox(SandboxConfig {
        now: Some(NOW),
        ..SandboxConfig::default()
    })
    .await;
    let client = openai_client(&sandbox, KeyProfile::ReadOnly, test_client_config());
    let days = 1_200;
    let start = NOW - days * 86_400;

    // Costs: daily buckets, at most 180 a page.
    let costs: Vec<_> = client
        .costs(&CostsParams {
            start_time: start,
            end_time: Some(NOW),
            ..Default::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(costs.len(), days as usize);
    for (i, bucket) in costs.iter().enumerate() {
        assert_eq!(bucket.start_time, start + i as i64 * 86_400, "bucket {i}");
        assert_eq!(bucket.end_time, bucket.start_time + 86_400);
    }
    assert_eq!(
        sandbox.request_count("GET /organization/costs"),
        pages(days as usize, 180)
    );

    // Usage: daily buckets, at most 31 a page.
    let usage: Vec<_> = client
        .usage(
            UsageKind::Completions,
            &UsageParams {
                start_time: start,
                end_time: Some(NOW),
                bucket_width: Some(BucketWidth::Day),
                ..Default::default()
            },
        )
        .try_collect()
        .await
        .unwrap();
    let starts: HashSet<i64> = usage.iter().map(|b| b.start_time).collect();
    assert_eq!(usage.len(), days as usize);
    assert_eq!(starts.len(), days as usize, "no bucket twice");
    assert_eq!(
        sandbox.request_count("GET /organization/usage/completions"),
        pages(days as usize, 31)
    );

    // Minute buckets: at most 1,440 a page.
    let minutes = 3_000;
    let fine: Vec<_> = client
        .usage(
            UsageKind::Embeddings,
            &UsageParams {
                start_time: NOW - minutes * 60,
                end_time: Some(NOW),
                bucket_width: Some(BucketWidth::Minute),
                ..Default::default()
            },
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(fine.len(), minutes as usize);
    assert_eq!(
        sandbox.request_count("GET /organization/usage/embeddings"),
        pages(minutes as usize, 1_440)
    );
}
