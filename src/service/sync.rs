//! Fetching one organization's whole inventory through the OpenAI client, as [`Item`]s sent
//! in batches to a writer (so the store writes while the next pages are fetched).
//!
//! Request economy is what matters under OpenAI's rate limits: every list at its largest page
//! size (the client's default), organization-wide lists fetched together, then the
//! per-project and per-group lists concurrently within the client's rate budget, archived
//! projects skipped (OpenAI answers 400 on their member endpoints) and nothing fetched twice.

// The client's error carries what a failed sync must report (message, status, request id);
// it costs a network round trip anyway, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use futures::{Stream, StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::domain::{Item, ItemKind};
use crate::openai::{
    Client, CostsParams, CursorParams, ErrorKind, ListProjectApiKeysParams, ListProjectsParams,
    ListUsersParams, OpenAiError, RbacListParams, RoleScope,
};

/// What a fetch covers.
#[derive(Debug, Clone)]
pub struct FetchPlan {
    /// Days of daily costs to fetch, ending now (0 = none).
    pub cost_days: u32,
    /// Now, in Unix seconds (the end of the cost window).
    pub now: i64,
    /// Per-project and per-group lists in flight at once (the client's rate budget and
    /// concurrency limit still apply).
    pub concurrency: usize,
}

/// Kinds the key may not be allowed to read without the sync failing: the rest of the
/// inventory is still worth having (a key without `api.usage.read` has no costs).
const OPTIONAL: [ItemKind; 6] = [
    ItemKind::Cost,
    ItemKind::Group,
    ItemKind::GroupMember,
    ItemKind::Role,
    ItemKind::AdminKey,
    ItemKind::ProjectGroup,
];

/// Why parts of the inventory were skipped (kind → reason).
pub type Skipped = BTreeMap<ItemKind, String>;

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

async fn all<T>(stream: impl Stream<Item = Result<T, OpenAiError>>) -> Result<Vec<T>, OpenAiError> {
    stream.try_collect().await
}

/// A list of an optional kind: `Ok(None)` (and a reason in `skipped`) when the key lacks
/// the scope for it.
fn optional<T>(
    kind: ItemKind,
    result: Result<Vec<T>, OpenAiError>,
    skipped: &mut Skipped,
) -> Result<Option<Vec<T>>, OpenAiError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if OPTIONAL.contains(&kind) && matches!(e.kind, ErrorKind::MissingScope { .. }) => {
            skipped.insert(kind, e.message.clone());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

async fn send(sink: &mpsc::Sender<Vec<Item>>, items: Vec<Item>) -> Result<(), OpenAiError> {
    if items.is_empty() {
        return Ok(());
    }
    sink.send(items).await.map_err(|_| {
        OpenAiError::new(
            ErrorKind::Network,
            "the sync stopped writing (store failure)",
        )
    })
}

/// Fetches everything and sends it to `sink`; returns what was skipped. Any other error ends
/// the fetch (the caller then publishes nothing).
pub async fn fetch(
    client: &Client,
    plan: &FetchPlan,
    sink: mpsc::Sender<Vec<Item>>,
) -> Result<Skipped, OpenAiError> {
    let mut skipped = Skipped::new();
    let cursor = CursorParams::default();
    let rbac = RbacListParams::default();
    let costs = CostsParams {
        start_time: plan.now - i64::from(plan.cost_days) * 86_400,
        end_time: Some(plan.now),
        group_by: vec!["project_id".into(), "line_item".into()],
        ..Default::default()
    };
    let (users, invites, projects, groups, roles, admin_keys, cost_buckets) = tokio::join!(
        all(client.users(&ListUsersParams::default())),
        all(client.invites(&cursor)),
        all(client.projects(&ListProjectsParams {
            include_archived: true,
            ..Default::default()
        })),
        all(client.groups(&rbac)),
        all(client.roles(&RoleScope::Organization, &rbac)),
        all(client.admin_api_keys(&rbac)),
        async {
            if plan.cost_days == 0 {
                Ok(Vec::new())
            } else {
                all(client.costs(&costs)).await
            }
        },
    );

    let users = users?;
    send(
        &sink,
        users
            .iter()
            .map(|u| Item::new(ItemKind::User, &u.id, to_json(u)).subject(&u.id))
            .collect(),
    )
    .await?;
    send(
        &sink,
        invites?
            .iter()
            .map(|i| Item::new(ItemKind::Invite, &i.id, to_json(i)))
            .collect(),
    )
    .await?;
    let projects = projects?;
    send(
        &sink,
        projects
            .iter()
            .map(|p| Item::new(ItemKind::Project, &p.id, to_json(p)))
            .collect(),
    )
    .await?;
    let groups = optional(ItemKind::Group, groups, &mut skipped)?;
    if let Some(groups) = &groups {
        send(
            &sink,
            groups
                .iter()
                .map(|g| Item::new(ItemKind::Group, &g.id, to_json(g)))
                .collect(),
        )
        .await?;
    } else {
        skipped.insert(
            ItemKind::GroupMember,
            "groups cannot be read with this key".into(),
        );
    }
    if let Some(roles) = optional(ItemKind::Role, roles, &mut skipped)? {
        send(
            &sink,
            roles
                .iter()
                .map(|r| {
                    Item::new(ItemKind::Role, &r.id, to_json(r))
                        .role(Some(r.name.clone()))
                        .status(Some(r.resource_type.clone()))
                })
                .collect(),
        )
        .await?;
    }
    if let Some(keys) = optional(ItemKind::AdminKey, admin_keys, &mut skipped)? {
        send(
            &sink,
            keys.iter()
                .map(|k| Item::new(ItemKind::AdminKey, &k.id, to_json(k)))
                .collect(),
        )
        .await?;
    }
    if let Some(buckets) = optional(ItemKind::Cost, cost_buckets, &mut skipped)? {
        send(&sink, cost_items(&buckets)).await?;
    }

    // Per project and per group, concurrently. Archived projects have no readable members.
    let project_group_scope = std::sync::Mutex::new(None::<String>);
    let mut active = Vec::new();
    for p in &projects {
        let archived =
            p.archived_at.is_some() || p.status.as_ref().is_some_and(|s| s.as_str() == "archived");
        if !archived {
            active.push(p.id.clone());
        }
    }
    let mut per_project = futures::stream::iter(active)
        .map(|pid| project_items(client, pid, &project_group_scope))
        .buffer_unordered(plan.concurrency.max(1));
    while let Some(items) = per_project.next().await {
        send(&sink, items?).await?;
    }
    drop(per_project);
    if let Some(why) = project_group_scope
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
    {
        skipped.insert(ItemKind::ProjectGroup, why);
    }
    if let Some(groups) = groups {
        let mut per_group = futures::stream::iter(groups.into_iter().map(|g| g.id))
            .map(|gid| group_members(client, gid))
            .buffer_unordered(plan.concurrency.max(1));
        while let Some(items) = per_group.next().await {
            send(&sink, items?).await?;
        }
    }
    Ok(skipped)
}

/// A project's members, service accounts, API keys and groups. A missing scope on project
/// groups is noted in `group_scope` and does not fail the project.
async fn project_items(
    client: &Client,
    pid: String,
    group_scope: &std::sync::Mutex<Option<String>>,
) -> Result<Vec<Item>, OpenAiError> {
    let cursor = CursorParams::default();
    let (members, accounts, keys, groups) = tokio::join!(
        all(client.project_users(&pid, &cursor)),
        all(client.project_service_accounts(&pid, &cursor)),
        all(client.project_api_keys(&pid, &ListProjectApiKeysParams::default())),
        all(client.project_groups(&pid, &RbacListParams::default())),
    );
    let mut items = Vec::new();
    for m in members? {
        items.push(
            Item::new(
                ItemKind::ProjectMember,
                format!("{pid}/{}", m.id),
                to_json(&m),
            )
            .parent(&pid)
            .subject(&m.id),
        );
    }
    for sa in accounts? {
        items.push(
            Item::new(ItemKind::ServiceAccount, &sa.id, to_json(&sa))
                .parent(&pid)
                .subject(&sa.id),
        );
    }
    for k in keys? {
        let data = to_json(&k);
        let access = data
            .get("owner_project_access")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let (owner, email) = match (&k.owner.user, &k.owner.service_account) {
            (Some(u), _) => (Some(u.id.clone()), u.email.as_deref()),
            (None, Some(sa)) => (Some(sa.id.clone()), None),
            (None, None) => (None, None),
        };
        let mut item = Item::new(ItemKind::ApiKey, &k.id, data)
            .parent(&pid)
            .email(email)
            .status(access);
        item.subject_id = owner;
        items.push(item);
    }
    let mut none = Skipped::new();
    match optional(ItemKind::ProjectGroup, groups, &mut none)? {
        Some(groups) => {
            for g in groups {
                items.push(
                    Item::new(
                        ItemKind::ProjectGroup,
                        format!("{pid}/{}", g.group_id),
                        to_json(&g),
                    )
                    .parent(&pid)
                    .subject(&g.group_id),
                );
            }
        }
        None => {
            let mut scope = group_scope.lock().unwrap_or_else(|e| e.into_inner());
            *scope = none.into_values().next();
        }
    }
    Ok(items)
}

async fn group_members(client: &Client, gid: String) -> Result<Vec<Item>, OpenAiError> {
    let members = all(client.group_users(&gid, &RbacListParams::default())).await?;
    Ok(members
        .iter()
        .map(|m| {
            Item::new(ItemKind::GroupMember, format!("{gid}/{}", m.id), to_json(m))
                .parent(&gid)
                .subject(&m.id)
        })
        .collect())
}

/// One item per day, project and line item.
fn cost_items(buckets: &[crate::openai::CostBucket]) -> Vec<Item> {
    let mut items = Vec::new();
    for b in buckets {
        for r in &b.results {
            let project = r.project_id.clone();
            let key = format!(
                "{}/{}/{}",
                b.start_time,
                project.as_deref().unwrap_or("-"),
                r.line_item.as_deref().unwrap_or("-")
            );
            let mut data = to_json(r);
            if let Value::Object(map) = &mut data {
                map.insert("start_time".into(), json!(b.start_time));
                map.insert("end_time".into(), json!(b.end_time));
            }
            let mut item = Item::new(ItemKind::Cost, key, data);
            item.parent_id = project;
            items.push(item);
        }
    }
    items
}
