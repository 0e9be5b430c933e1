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
use tokio::sync::mpsc;

use crate::domain::{Item, ItemKind};
use crate::openai::{
    Assignee, Client, CostsParams, CursorParams, ErrorKind, ListProjectApiKeysParams,
    ListProjectsParams, ListUsersParams, OpenAiError, OrgUser, ProjectGroup, RbacListParams,
    RoleScope,
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
    /// Also list every user's organization role assignments (one request per user).
    pub user_roles: bool,
}

/// Kinds the key may not be allowed to read without the sync failing: the rest of the
/// inventory is still worth having (a key without `api.usage.read` has no costs).
const OPTIONAL: [ItemKind; 7] = [
    ItemKind::Cost,
    ItemKind::Group,
    ItemKind::GroupMember,
    ItemKind::Role,
    ItemKind::RoleAssignment,
    ItemKind::AdminKey,
    ItemKind::ProjectGroup,
];

/// Why parts of the inventory were skipped (kind → reason).
pub type Skipped = BTreeMap<ItemKind, String>;

mod incremental;
mod items;

use incremental::gone;
use items::{
    account_item, admin_key_item, cost_items, group_item, key_item, org_role_item, project_item,
    role_item,
};

pub use incremental::{Changes, NotIncremental, audit_mark, fetch_changes};
pub(crate) use items::{
    assignment_item, assignment_key, group_member_item, invite_item, is_archived, member_item,
    project_group_item, user_item,
};

/// An assignee's role assignments as items.
async fn assignments(client: &Client, who: Assignee) -> Result<Vec<Item>, OpenAiError> {
    let roles = all(client.role_assignments(&who, &RbacListParams::default())).await?;
    Ok(roles.iter().map(|a| assignment_item(&who, a)).collect())
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

/// Sends a list to the writer as its pages arrive (memory stays at a page, not a list).
async fn pipe<T>(
    stream: impl Stream<Item = Result<T, OpenAiError>>,
    sink: &mpsc::Sender<Vec<Item>>,
    mut item: impl FnMut(&T) -> Item,
) -> Result<(), OpenAiError> {
    let mut pages = std::pin::pin!(stream.try_chunks(PIPE_CHUNK));
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| e.1)?;
        send(sink, page.iter().map(&mut item).collect()).await?;
    }
    Ok(())
}

/// Items sent to the writer at once from a piped list.
const PIPE_CHUNK: usize = 500;

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
    let cursor = CursorParams::default();
    let rbac = RbacListParams::default();
    let costs = CostsParams {
        start_time: plan.now - i64::from(plan.cost_days) * 86_400,
        end_time: Some(plan.now),
        group_by: vec!["project_id".into(), "line_item".into()],
        ..Default::default()
    };
    // Optional kinds the key cannot read, noted by every branch below.
    let skips = std::sync::Mutex::new(Skipped::new());
    let skips = &skips;
    let sink = &sink;
    let concurrency = plan.concurrency.max(1);

    // Independent chains, all at once: each waits only for the list it needs, never for
    // another chain's slowest endpoint. The per-project lists, the busiest endpoints, start
    // as soon as the three pages of projects are in, not after the users list's chain of
    // pages; each endpoint's own limit is then the only bound.
    let users_then_roles = async {
        // User ids are kept only when their role assignments are listed too.
        let mut user_ids = Vec::new();
        // The big list goes to the writer page by page instead of being held whole.
        pipe(
            client.users(&ListUsersParams::default()),
            sink,
            |u: &OrgUser| {
                if plan.user_roles {
                    user_ids.push(u.id.clone());
                }
                user_item(u)
            },
        )
        .await?;
        // Users' organization role assignments: one request per user (OG_SYNC_USER_ROLES).
        let mut lists = futures::stream::iter(user_ids)
            .map(|uid| assignments(client, Assignee::OrgUser(uid)))
            .buffer_unordered(concurrency);
        while let Some(items) = lists.next().await {
            let items = match items {
                // A user removed since the list was read.
                Err(e) if gone(&e) => Vec::new(),
                other => optional_in(ItemKind::RoleAssignment, other, skips)?,
            };
            send(sink, items).await?;
        }
        Ok::<_, OpenAiError>(())
    };
    let projects_then_lists = async {
        let projects = all(client.projects(&ListProjectsParams {
            include_archived: true,
            ..Default::default()
        }))
        .await?;
        send(sink, projects.iter().map(project_item).collect()).await?;
        // Archived projects have no readable members.
        let active: Vec<String> = projects
            .iter()
            .filter(|p| !is_archived(p))
            .map(|p| p.id.clone())
            .collect();
        let mut lists = futures::stream::iter(active)
            .map(|pid| project_items(client, pid, concurrency, skips))
            .buffer_unordered(concurrency);
        while let Some(items) = lists.next().await {
            send(sink, items?).await?;
        }
        Ok(())
    };
    let groups_then_members = async {
        let groups = noted(
            ItemKind::Group,
            all(client.groups(&rbac)).await,
            skips,
            Level::Organization,
        )?;
        let Some(groups) = groups else {
            skips.lock().unwrap_or_else(|e| e.into_inner()).insert(
                ItemKind::GroupMember,
                "groups cannot be read with this key".into(),
            );
            return Ok(());
        };
        send(sink, groups.iter().map(group_item).collect()).await?;
        let mut lists = futures::stream::iter(groups.into_iter().map(|g| g.id))
            .map(|gid| group_items(client, gid, skips))
            .buffer_unordered(concurrency);
        while let Some(items) = lists.next().await {
            send(sink, items?).await?;
        }
        Ok(())
    };
    let the_rest = async {
        let (invites, roles, admin_keys, cost_buckets) = tokio::join!(
            pipe(client.invites(&cursor), sink, invite_item),
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
        invites?;
        if let Some(roles) = noted(ItemKind::Role, roles, skips, Level::Organization)? {
            send(sink, roles.iter().map(org_role_item).collect()).await?;
        }
        if let Some(keys) = noted(ItemKind::AdminKey, admin_keys, skips, Level::Organization)? {
            send(sink, keys.iter().map(admin_key_item).collect()).await?;
        }
        if let Some(buckets) = noted(ItemKind::Cost, cost_buckets, skips, Level::Organization)? {
            send(sink, cost_items(&buckets)).await?;
        }
        Ok(())
    };
    futures::try_join!(
        users_then_roles,
        projects_then_lists,
        groups_then_members,
        the_rest
    )?;
    Ok(std::mem::take(
        &mut *skips.lock().unwrap_or_else(|e| e.into_inner()),
    ))
}

/// Where an optional list was read: the organization's own, or one of a project or group.
#[derive(Clone, Copy, PartialEq)]
enum Level {
    Organization,
    Nested,
}

/// [`optional`] with the reason noted in `skips` (shared by every branch of the fetch). An
/// organization-level reason wins over a project's or group's, whichever was met first.
fn noted<T>(
    kind: ItemKind,
    result: Result<Vec<T>, OpenAiError>,
    skips: &std::sync::Mutex<Skipped>,
    level: Level,
) -> Result<Option<Vec<T>>, OpenAiError> {
    let mut none = Skipped::new();
    let found = optional(kind, result, &mut none)?;
    let mut skips = skips.lock().unwrap_or_else(|e| e.into_inner());
    for (kind, why) in none {
        if level == Level::Organization {
            skips.insert(kind, why);
        } else {
            skips.entry(kind).or_insert(why);
        }
    }
    Ok(found)
}

/// An optional list inside a per-project, per-group or per-user fetch: a missing scope is
/// noted in `skips` and yields nothing.
fn optional_in<T>(
    kind: ItemKind,
    result: Result<Vec<T>, OpenAiError>,
    skips: &std::sync::Mutex<Skipped>,
) -> Result<Vec<T>, OpenAiError> {
    Ok(noted(kind, result, skips, Level::Nested)?.unwrap_or_default())
}

/// A project's members, service accounts, API keys, groups, roles and its groups' role
/// assignments there. A missing scope on the optional ones is noted in `skips` and does not
/// fail the project.
async fn project_items(
    client: &Client,
    pid: String,
    concurrency: usize,
    skips: &std::sync::Mutex<Skipped>,
) -> Result<Vec<Item>, OpenAiError> {
    let cursor = CursorParams::default();
    let rbac = RbacListParams::default();
    let (members, accounts, keys, groups, roles) = tokio::join!(
        all(client.project_users(&pid, &cursor)),
        all(client.project_service_accounts(&pid, &cursor)),
        all(client.project_api_keys(&pid, &ListProjectApiKeysParams::default())),
        all(client.project_groups(&pid, &rbac)),
        all(client.roles(&RoleScope::Project(pid.clone()), &rbac)),
    );
    let mut items: Vec<Item> = members?.iter().map(|m| member_item(&pid, m)).collect();
    items.extend(accounts?.iter().map(|sa| account_item(&pid, sa)));
    items.extend(keys?.iter().map(|k| key_item(&pid, k)));
    let roles = optional_in(ItemKind::Role, roles, skips)?;
    items.extend(roles.iter().map(|r| role_item(Some(&pid), r)));
    let groups = optional_in(ItemKind::ProjectGroup, groups, skips)?;
    items.extend(groups.iter().map(|g| project_group_item(&pid, g)));
    items.extend(project_group_assignments(client, &pid, &groups, concurrency, skips).await?);
    Ok(items)
}

/// The project-level role assignments of a project's groups (one list per group).
async fn project_group_assignments(
    client: &Client,
    pid: &str,
    groups: &[ProjectGroup],
    concurrency: usize,
    skips: &std::sync::Mutex<Skipped>,
) -> Result<Vec<Item>, OpenAiError> {
    // Futures made up front: a closure over them is not `Send` for every lifetime.
    let lists: Vec<_> = groups
        .iter()
        .map(|g| {
            assignments(
                client,
                Assignee::ProjectGroup {
                    project_id: pid.to_owned(),
                    group_id: g.group_id.clone(),
                },
            )
        })
        .collect();
    let mut lists = futures::stream::iter(lists).buffer_unordered(concurrency.max(1));
    let mut items = Vec::new();
    while let Some(list) = lists.next().await {
        items.extend(optional_in(ItemKind::RoleAssignment, list, skips)?);
    }
    Ok(items)
}

/// A group's members and its organization-level role assignments.
async fn group_items(
    client: &Client,
    gid: String,
    skips: &std::sync::Mutex<Skipped>,
) -> Result<Vec<Item>, OpenAiError> {
    let (members, roles) = tokio::join!(
        all(client.group_users(&gid, &RbacListParams::default())),
        assignments(client, Assignee::OrgGroup(gid.clone())),
    );
    let mut items: Vec<Item> = members?
        .iter()
        .map(|m| group_member_item(&gid, m))
        .collect();
    items.extend(optional_in(ItemKind::RoleAssignment, roles, skips)?);
    Ok(items)
}
