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

use crate::domain::{AuditMark, Item, ItemKind, Replaced};
use crate::openai::{
    AdminApiKey, AuditLog, AuditLogParams, Client, CostsParams, CursorParams, ErrorKind, Group,
    GroupUser, Invite, ListProjectApiKeysParams, ListProjectsParams, ListUsersParams, OpenAiError,
    OrgUser, Project, ProjectApiKey, ProjectGroup, ProjectUser, RbacListParams, Role, RoleScope,
    ServiceAccount, TimeRange,
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

fn user_item(u: &OrgUser) -> Item {
    Item::new(ItemKind::User, &u.id, to_json(u)).subject(&u.id)
}

fn invite_item(i: &Invite) -> Item {
    Item::new(ItemKind::Invite, &i.id, to_json(i))
}

fn project_item(p: &Project) -> Item {
    Item::new(ItemKind::Project, &p.id, to_json(p))
}

fn is_archived(p: &Project) -> bool {
    p.archived_at.is_some() || p.status.as_ref().is_some_and(|s| s.as_str() == "archived")
}

fn group_item(g: &Group) -> Item {
    Item::new(ItemKind::Group, &g.id, to_json(g))
}

fn role_item(r: &Role) -> Item {
    Item::new(ItemKind::Role, &r.id, to_json(r))
        .role(Some(r.name.clone()))
        .status(Some(r.resource_type.clone()))
}

fn admin_key_item(k: &AdminApiKey) -> Item {
    Item::new(ItemKind::AdminKey, &k.id, to_json(k))
}

fn member_item(pid: &str, m: &ProjectUser) -> Item {
    Item::new(
        ItemKind::ProjectMember,
        format!("{pid}/{}", m.id),
        to_json(m),
    )
    .parent(pid)
    .subject(&m.id)
}

fn account_item(pid: &str, sa: &ServiceAccount) -> Item {
    Item::new(ItemKind::ServiceAccount, &sa.id, to_json(sa))
        .parent(pid)
        .subject(&sa.id)
}

fn key_item(pid: &str, k: &ProjectApiKey) -> Item {
    let data = to_json(k);
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
        .parent(pid)
        .email(email)
        .status(access);
    item.subject_id = owner;
    item
}

fn project_group_item(pid: &str, g: &ProjectGroup) -> Item {
    Item::new(
        ItemKind::ProjectGroup,
        format!("{pid}/{}", g.group_id),
        to_json(g),
    )
    .parent(pid)
    .subject(&g.group_id)
}

fn group_member_item(gid: &str, m: &GroupUser) -> Item {
    Item::new(ItemKind::GroupMember, format!("{gid}/{}", m.id), to_json(m))
        .parent(gid)
        .subject(&m.id)
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
    item: fn(&T) -> Item,
) -> Result<(), OpenAiError> {
    let mut pages = std::pin::pin!(stream.try_chunks(PIPE_CHUNK));
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| e.1)?;
        send(sink, page.iter().map(item).collect()).await?;
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
        // The big lists go to the writer page by page instead of being held whole.
        pipe(client.users(&ListUsersParams::default()), &sink, user_item),
        pipe(client.invites(&cursor), &sink, invite_item),
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

    users?;
    invites?;
    let projects = projects?;
    send(&sink, projects.iter().map(project_item).collect()).await?;
    let groups = optional(ItemKind::Group, groups, &mut skipped)?;
    if let Some(groups) = &groups {
        send(&sink, groups.iter().map(group_item).collect()).await?;
    } else {
        skipped.insert(
            ItemKind::GroupMember,
            "groups cannot be read with this key".into(),
        );
    }
    if let Some(roles) = optional(ItemKind::Role, roles, &mut skipped)? {
        send(&sink, roles.iter().map(role_item).collect()).await?;
    }
    if let Some(keys) = optional(ItemKind::AdminKey, admin_keys, &mut skipped)? {
        send(&sink, keys.iter().map(admin_key_item).collect()).await?;
    }
    if let Some(buckets) = optional(ItemKind::Cost, cost_buckets, &mut skipped)? {
        send(&sink, cost_items(&buckets)).await?;
    }

    // Per project and per group, concurrently. Archived projects have no readable members.
    let project_group_scope = std::sync::Mutex::new(None::<String>);
    let mut active = Vec::new();
    for p in &projects {
        if !is_archived(p) {
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
    let mut items: Vec<Item> = members?.iter().map(|m| member_item(&pid, m)).collect();
    items.extend(accounts?.iter().map(|sa| account_item(&pid, sa)));
    items.extend(keys?.iter().map(|k| key_item(&pid, k)));
    let mut none = Skipped::new();
    match optional(ItemKind::ProjectGroup, groups, &mut none)? {
        Some(groups) => {
            items.extend(groups.iter().map(|g| project_group_item(&pid, g)));
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
    Ok(members.iter().map(|m| group_member_item(&gid, m)).collect())
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

/// Where the audit log is now: where the next incremental sync will start. One request (the
/// newest events, enough to know every one in the newest second). `Err` with the reason
/// when the audit log cannot be read (not enabled, or the key may not read it).
pub async fn audit_mark(client: &Client) -> Result<Option<AuditMark>, String> {
    let newest = AuditLogParams::default();
    match client.list_audit_logs(&newest).await {
        Ok(reply) => {
            let events = &reply.data.data;
            Ok((!events.is_empty()).then(|| {
                AuditMark::default().advance(events.iter().map(|e| (e.id.as_str(), e.effective_at)))
            }))
        }
        Err(e) => Err(format!("the audit log cannot be read: {}", e.message)),
    }
}

/// What an audit-log event makes an incremental sync fetch again. Ordered and deduplicated,
/// so ten events about one project's members cost one request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Refresh {
    User(String),
    Invites,
    Project(String),
    ProjectMembers(String),
    ProjectAccounts(String),
    ProjectKeys(String),
    ProjectGroups(String),
    Groups,
    GroupMembers(String),
    Roles,
    AdminKeys,
}

/// The refreshes one event calls for; `None` for events that change nothing we keep.
fn refreshes(event: &AuditLog) -> Vec<Refresh> {
    let object = event
        .details()
        .and_then(|d| d.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let project = event.project.as_ref().and_then(|p| p.id.clone());
    let in_project = |f: fn(String) -> Refresh| project.clone().map(f);
    let kind = event.event_type.as_str();
    let family = kind.split('.').next().unwrap_or_default();
    let mut out = Vec::new();
    match family {
        "user" => {
            out.extend(object.map(Refresh::User));
            out.extend(in_project(Refresh::ProjectMembers));
        }
        "invite" => out.push(Refresh::Invites),
        "project" => {
            let pid = object.or(project);
            if let Some(pid) = pid {
                if kind == "project.created" {
                    out.push(Refresh::ProjectMembers(pid.clone()));
                    out.push(Refresh::ProjectAccounts(pid.clone()));
                    out.push(Refresh::ProjectKeys(pid.clone()));
                    out.push(Refresh::ProjectGroups(pid.clone()));
                }
                out.push(Refresh::Project(pid));
            }
        }
        "service_account" => {
            out.extend(in_project(Refresh::ProjectAccounts));
            out.extend(in_project(Refresh::ProjectKeys));
        }
        "api_key" => {
            out.extend(in_project(Refresh::ProjectKeys));
            out.push(Refresh::AdminKeys);
        }
        "group" => {
            out.push(Refresh::Groups);
            out.extend(object.map(Refresh::GroupMembers));
        }
        // Role assignments are not part of the snapshot yet; role definitions are.
        "role" if !kind.starts_with("role.assignment") => out.push(Refresh::Roles),
        _ => {}
    }
    out
}

/// What an incremental sync found: the items to drop from the previous snapshot, their
/// fresh versions, and the new audit mark.
#[derive(Debug)]
pub struct Changes {
    /// Items of the previous snapshot not to carry over.
    pub replaced: Vec<Replaced>,
    /// Fresh items.
    pub items: Vec<Item>,
    /// Audit-log events read.
    pub events: u64,
    /// The newest event accounted for.
    pub mark: AuditMark,
    /// Parts skipped (as in a full sync).
    pub skipped: Skipped,
}

/// Why an incremental sync could not be made.
#[derive(Debug)]
pub enum NotIncremental {
    /// A full sync is needed instead (the reason says why).
    Fallback(String),
    /// OpenAI failed: the sync fails as a full one would.
    Failed(OpenAiError),
}

impl From<OpenAiError> for NotIncremental {
    fn from(e: OpenAiError) -> Self {
        Self::Failed(e)
    }
}

/// Reads the audit log since `since` and fetches again only what it names.
pub async fn fetch_changes(
    client: &Client,
    plan: &FetchPlan,
    since: &AuditMark,
    max_events: usize,
) -> Result<Changes, NotIncremental> {
    let params = AuditLogParams {
        effective_at: TimeRange {
            gte: Some(since.effective_at),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut events = Vec::new();
    let mut stream = std::pin::pin!(client.audit_logs(&params));
    while let Some(event) = stream.next().await {
        let event = event.map_err(|e| match e.kind {
            ErrorKind::MissingScope { .. } | ErrorKind::Forbidden | ErrorKind::NotFound => {
                NotIncremental::Fallback(format!("the audit log cannot be read: {}", e.message))
            }
            _ => NotIncremental::Failed(e),
        })?;
        if since.covers(&event.id, event.effective_at) {
            continue;
        }
        events.push(event);
        if events.len() > max_events {
            return Err(NotIncremental::Fallback(format!(
                "more than {max_events} audit-log events since the last sync"
            )));
        }
    }
    let mark = since.advance(events.iter().map(|e| (e.id.as_str(), e.effective_at)));
    let todo: std::collections::BTreeSet<Refresh> = events.iter().flat_map(refreshes).collect();
    let mut changes = Changes {
        replaced: Vec::new(),
        items: Vec::new(),
        events: events.len() as u64,
        mark,
        skipped: Skipped::new(),
    };
    let mut done = futures::stream::iter(todo)
        .map(|r| refresh(client, r))
        .buffer_unordered(plan.concurrency.max(1));
    while let Some(result) = done.next().await {
        let (replaced, items) = result?;
        changes.replaced.extend(replaced);
        changes.items.extend(items);
    }
    drop(done);
    // Costs move every day: always fetched again (one request for the window).
    if plan.cost_days > 0 {
        let costs = CostsParams {
            start_time: plan.now - i64::from(plan.cost_days) * 86_400,
            end_time: Some(plan.now),
            group_by: vec!["project_id".into(), "line_item".into()],
            ..Default::default()
        };
        let result = all(client.costs(&costs)).await;
        if let Some(buckets) = optional(ItemKind::Cost, result, &mut changes.skipped)? {
            changes.replaced.push(Replaced::Kind(ItemKind::Cost));
            changes.items.extend(cost_items(&buckets));
        }
    }
    Ok(changes)
}

/// Whether an error means the object (or the list's parent) is gone or not readable as
/// such (an archived project's member lists answer 400): drop what we had, add nothing.
fn gone(e: &OpenAiError) -> bool {
    matches!(e.kind, ErrorKind::NotFound | ErrorKind::BadRequest)
}

/// Fetches one refresh: what it replaces and the fresh items.
async fn refresh(
    client: &Client,
    what: Refresh,
) -> Result<(Vec<Replaced>, Vec<Item>), OpenAiError> {
    let cursor = CursorParams::default();
    let rbac = RbacListParams::default();
    let list_or_gone = |r: Result<Vec<Item>, OpenAiError>| match r {
        Ok(items) => Ok(items),
        Err(e) if gone(&e) => Ok(Vec::new()),
        Err(e) => Err(e),
    };
    Ok(match what {
        Refresh::User(uid) => match client.get_user(&uid).await {
            Ok(u) => (
                vec![Replaced::Key(ItemKind::User, uid)],
                vec![user_item(&u.data)],
            ),
            Err(e) if gone(&e) => (
                vec![
                    Replaced::Key(ItemKind::User, uid.clone()),
                    Replaced::Subject(ItemKind::ProjectMember, uid.clone()),
                    Replaced::Subject(ItemKind::GroupMember, uid),
                ],
                Vec::new(),
            ),
            Err(e) => return Err(e),
        },
        Refresh::Invites => (
            vec![Replaced::Kind(ItemKind::Invite)],
            all(client.invites(&cursor))
                .await?
                .iter()
                .map(invite_item)
                .collect(),
        ),
        Refresh::Project(pid) => {
            let project = match client.get_project(&pid).await {
                Ok(p) => Some(p.data),
                Err(e) if gone(&e) => None,
                Err(e) => return Err(e),
            };
            let mut replaced = vec![Replaced::Key(ItemKind::Project, pid.clone())];
            if project.as_ref().is_none_or(is_archived) {
                // Archived or gone: nothing of it is readable any more.
                for kind in [
                    ItemKind::ProjectMember,
                    ItemKind::ServiceAccount,
                    ItemKind::ApiKey,
                    ItemKind::ProjectGroup,
                ] {
                    replaced.push(Replaced::Parent(kind, pid.clone()));
                }
            }
            (replaced, project.iter().map(project_item).collect())
        }
        Refresh::ProjectMembers(pid) => (
            vec![Replaced::Parent(ItemKind::ProjectMember, pid.clone())],
            list_or_gone(
                all(client.project_users(&pid, &cursor))
                    .await
                    .map(|v| v.iter().map(|m| member_item(&pid, m)).collect()),
            )?,
        ),
        Refresh::ProjectAccounts(pid) => (
            vec![Replaced::Parent(ItemKind::ServiceAccount, pid.clone())],
            list_or_gone(
                all(client.project_service_accounts(&pid, &cursor))
                    .await
                    .map(|v| v.iter().map(|a| account_item(&pid, a)).collect()),
            )?,
        ),
        Refresh::ProjectKeys(pid) => (
            vec![Replaced::Parent(ItemKind::ApiKey, pid.clone())],
            list_or_gone(
                all(client.project_api_keys(&pid, &ListProjectApiKeysParams::default()))
                    .await
                    .map(|v| v.iter().map(|k| key_item(&pid, k)).collect()),
            )?,
        ),
        Refresh::ProjectGroups(pid) => (
            vec![Replaced::Parent(ItemKind::ProjectGroup, pid.clone())],
            list_or_gone(
                all(client.project_groups(&pid, &rbac))
                    .await
                    .map(|v| v.iter().map(|g| project_group_item(&pid, g)).collect()),
            )?,
        ),
        Refresh::Groups => (
            vec![Replaced::Kind(ItemKind::Group)],
            all(client.groups(&rbac))
                .await?
                .iter()
                .map(group_item)
                .collect(),
        ),
        Refresh::GroupMembers(gid) => (
            vec![Replaced::Parent(ItemKind::GroupMember, gid.clone())],
            list_or_gone(
                all(client.group_users(&gid, &rbac))
                    .await
                    .map(|v| v.iter().map(|m| group_member_item(&gid, m)).collect()),
            )?,
        ),
        Refresh::Roles => (
            vec![Replaced::Kind(ItemKind::Role)],
            all(client.roles(&RoleScope::Organization, &rbac))
                .await?
                .iter()
                .map(role_item)
                .collect(),
        ),
        Refresh::AdminKeys => (
            vec![Replaced::Kind(ItemKind::AdminKey)],
            all(client.admin_api_keys(&rbac))
                .await?
                .iter()
                .map(admin_key_item)
                .collect(),
        ),
    })
}
