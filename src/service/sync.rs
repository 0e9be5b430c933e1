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
    AdminApiKey, AssignedRole, Assignee, AuditLog, AuditLogParams, Client, CostsParams,
    CursorParams, ErrorKind, Group, GroupUser, Invite, ListProjectApiKeysParams,
    ListProjectsParams, ListUsersParams, OpenAiError, OrgUser, Project, ProjectApiKey,
    ProjectGroup, ProjectUser, RbacListParams, Role, RoleScope, ServiceAccount, TimeRange,
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

fn to_json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

pub(crate) fn user_item(u: &OrgUser) -> Item {
    Item::new(ItemKind::User, &u.id, to_json(u)).subject(&u.id)
}

pub(crate) fn invite_item(i: &Invite) -> Item {
    Item::new(ItemKind::Invite, &i.id, to_json(i))
}

fn project_item(p: &Project) -> Item {
    Item::new(ItemKind::Project, &p.id, to_json(p))
}

pub(crate) fn is_archived(p: &Project) -> bool {
    p.archived_at.is_some() || p.status.as_ref().is_some_and(|s| s.as_str() == "archived")
}

fn group_item(g: &Group) -> Item {
    Item::new(ItemKind::Group, &g.id, to_json(g))
}

/// An organization role (`project` = `None`, keyed by id) or a role listed in a project
/// (keyed `project/id`: predefined project roles are listed in every project).
fn role_item(project: Option<&str>, r: &Role) -> Item {
    let key = match project {
        Some(pid) => format!("{pid}/{}", r.id),
        None => r.id.clone(),
    };
    let mut item = Item::new(ItemKind::Role, key, to_json(r))
        .subject(&r.id)
        .role(Some(r.name.clone()))
        .status(Some(r.resource_type.clone()));
    item.parent_id = project.map(str::to_owned);
    item
}

fn org_role_item(r: &Role) -> Item {
    role_item(None, r)
}

/// Where an assignment holds and who holds it.
fn assignee_parts(who: &Assignee) -> (Option<&str>, &'static str, &str) {
    match who {
        Assignee::OrgUser(u) => (None, "user", u),
        Assignee::OrgGroup(g) => (None, "group", g),
        Assignee::ProjectUser {
            project_id,
            user_id,
        } => (Some(project_id), "user", user_id),
        Assignee::ProjectGroup {
            project_id,
            group_id,
        } => (Some(project_id), "group", group_id),
    }
}

/// The key prefix of an assignee's role assignments (`scope/principal_type/principal/`).
fn assignment_prefix(who: &Assignee) -> String {
    let (project, ptype, principal) = assignee_parts(who);
    format!("{}/{ptype}/{principal}/", project.unwrap_or("organization"))
}

/// The inventory key of `role_id` assigned to `who`.
pub(crate) fn assignment_key(who: &Assignee, role_id: &str) -> String {
    format!("{}{role_id}", assignment_prefix(who))
}

pub(crate) fn assignment_item(who: &Assignee, a: &AssignedRole) -> Item {
    let (project, ptype, principal) = assignee_parts(who);
    let role = if a.name.is_empty() { &a.id } else { &a.name };
    let mut item = Item::new(
        ItemKind::RoleAssignment,
        assignment_key(who, &a.id),
        to_json(a),
    )
    .subject(principal)
    .role(Some(role.clone()))
    .status(Some(ptype.to_owned()));
    item.parent_id = project.map(str::to_owned);
    item
}

/// An assignee's role assignments as items.
async fn assignments(client: &Client, who: Assignee) -> Result<Vec<Item>, OpenAiError> {
    let roles = all(client.role_assignments(&who, &RbacListParams::default())).await?;
    Ok(roles.iter().map(|a| assignment_item(&who, a)).collect())
}

fn admin_key_item(k: &AdminApiKey) -> Item {
    Item::new(ItemKind::AdminKey, &k.id, to_json(k))
}

pub(crate) fn member_item(pid: &str, m: &ProjectUser) -> Item {
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

pub(crate) fn project_group_item(pid: &str, g: &ProjectGroup) -> Item {
    Item::new(
        ItemKind::ProjectGroup,
        format!("{pid}/{}", g.group_id),
        to_json(g),
    )
    .parent(pid)
    .subject(&g.group_id)
}

pub(crate) fn group_member_item(gid: &str, m: &GroupUser) -> Item {
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
    let mut skipped = Skipped::new();
    let cursor = CursorParams::default();
    let rbac = RbacListParams::default();
    let costs = CostsParams {
        start_time: plan.now - i64::from(plan.cost_days) * 86_400,
        end_time: Some(plan.now),
        group_by: vec!["project_id".into(), "line_item".into()],
        ..Default::default()
    };
    // User ids are kept only when their role assignments are listed too.
    let mut user_ids = Vec::new();
    let keep_ids = |u: &OrgUser| {
        if plan.user_roles {
            user_ids.push(u.id.clone());
        }
        user_item(u)
    };
    let (users, invites, projects, groups, roles, admin_keys, cost_buckets) = tokio::join!(
        // The big lists go to the writer page by page instead of being held whole.
        pipe(client.users(&ListUsersParams::default()), &sink, keep_ids),
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
        send(&sink, roles.iter().map(org_role_item).collect()).await?;
    }
    if let Some(keys) = optional(ItemKind::AdminKey, admin_keys, &mut skipped)? {
        send(&sink, keys.iter().map(admin_key_item).collect()).await?;
    }
    if let Some(buckets) = optional(ItemKind::Cost, cost_buckets, &mut skipped)? {
        send(&sink, cost_items(&buckets)).await?;
    }

    // Per project and per group, concurrently. Archived projects have no readable members.
    let optional_skips = std::sync::Mutex::new(Skipped::new());
    let mut active = Vec::new();
    for p in &projects {
        if !is_archived(p) {
            active.push(p.id.clone());
        }
    }
    let mut per_project = futures::stream::iter(active)
        .map(|pid| project_items(client, pid, plan.concurrency, &optional_skips))
        .buffer_unordered(plan.concurrency.max(1));
    while let Some(items) = per_project.next().await {
        send(&sink, items?).await?;
    }
    drop(per_project);
    if let Some(groups) = groups {
        let mut per_group = futures::stream::iter(groups.into_iter().map(|g| g.id))
            .map(|gid| group_items(client, gid, &optional_skips))
            .buffer_unordered(plan.concurrency.max(1));
        while let Some(items) = per_group.next().await {
            send(&sink, items?).await?;
        }
    }
    // Users' organization role assignments: one request per user (OG_SYNC_USER_ROLES).
    let mut per_user = futures::stream::iter(user_ids)
        .map(|uid| assignments(client, Assignee::OrgUser(uid)))
        .buffer_unordered(plan.concurrency.max(1));
    while let Some(items) = per_user.next().await {
        let items = match items {
            // A user removed since the list was read.
            Err(e) if gone(&e) => Vec::new(),
            other => optional_in(ItemKind::RoleAssignment, other, &optional_skips)?,
        };
        send(&sink, items).await?;
    }
    drop(per_user);
    for (kind, why) in optional_skips
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
    {
        skipped.entry(kind).or_insert(why);
    }
    Ok(skipped)
}

/// An optional list inside a per-project or per-group fetch: a missing scope is noted in
/// `skips` (shared by every project and group) and yields nothing.
fn optional_in<T>(
    kind: ItemKind,
    result: Result<Vec<T>, OpenAiError>,
    skips: &std::sync::Mutex<Skipped>,
) -> Result<Vec<T>, OpenAiError> {
    let mut none = Skipped::new();
    let found = optional(kind, result, &mut none)?;
    if !none.is_empty() {
        skips.lock().unwrap_or_else(|e| e.into_inner()).extend(none);
    }
    Ok(found.unwrap_or_default())
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
    ProjectRoles(String),
    /// An organization-level assignee's role assignments (project-level group ones come
    /// with [`Refresh::ProjectGroups`]; project-level user ones are not kept).
    Assignments(AssigneeKey),
    AdminKeys,
}

/// [`Assignee`], ordered (for deduplication).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum AssigneeKey {
    OrgUser(String),
    OrgGroup(String),
}

impl AssigneeKey {
    fn assignee(&self) -> Assignee {
        match self {
            Self::OrgUser(u) => Assignee::OrgUser(u.clone()),
            Self::OrgGroup(g) => Assignee::OrgGroup(g.clone()),
        }
    }
}

/// The refreshes one event calls for; `None` for events that change nothing we keep.
/// `user_roles`: whether users' organization role assignments are kept.
fn refreshes(event: &AuditLog, user_roles: bool) -> Vec<Refresh> {
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
                    out.push(Refresh::ProjectRoles(pid.clone()));
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
            if let Some(gid) = object {
                out.push(Refresh::GroupMembers(gid.clone()));
                if kind == "group.deleted" {
                    // Its assignments at every level go with it (the refresh finds it gone).
                    out.push(Refresh::Assignments(AssigneeKey::OrgGroup(gid)));
                }
            }
        }
        "role" if kind.starts_with("role.assignment") => {
            let field = |f: &str| {
                event
                    .details()
                    .and_then(|d| d.get(f))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let (Some(ptype), Some(principal)) = (field("principal_type"), field("principal_id"))
            else {
                return out;
            };
            let in_project = field("resource_type").as_deref() == Some("api.project");
            match (ptype.as_str(), in_project) {
                ("group", false) => {
                    out.push(Refresh::Assignments(AssigneeKey::OrgGroup(principal)))
                }
                // Giving a group access to a project is a project-level assignment: the
                // project's groups and their assignments there are read again.
                ("group", true) => {
                    out.extend(field("resource_id").or(project).map(Refresh::ProjectGroups))
                }
                ("user", false) if user_roles => {
                    out.push(Refresh::Assignments(AssigneeKey::OrgUser(principal)))
                }
                // Project-level user assignments are not kept.
                _ => {}
            }
        }
        "role" => {
            // Custom roles are organization- or project-level; the event names the project
            // (a project role) or the organization's default one: both are read again.
            out.push(Refresh::Roles);
            out.extend(in_project(Refresh::ProjectRoles));
        }
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
    if let Some(e) = events.iter().find(|e| e.event_type == "role.deleted") {
        // A deleted role leaves every assignment of it, wherever it was held.
        return Err(NotIncremental::Fallback(format!(
            "a role was deleted (audit event {}): its assignments are read again",
            e.id
        )));
    }
    let todo: std::collections::BTreeSet<Refresh> = events
        .iter()
        .flat_map(|e| refreshes(e, plan.user_roles))
        .collect();
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
                    Replaced::Subject(ItemKind::GroupMember, uid.clone()),
                    Replaced::Subject(ItemKind::RoleAssignment, uid),
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
                    ItemKind::Role,
                    ItemKind::RoleAssignment,
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
        Refresh::ProjectGroups(pid) => {
            // The project's groups and their role assignments there.
            let groups = match all(client.project_groups(&pid, &rbac)).await {
                Ok(groups) => groups,
                Err(e) if gone(&e) => Vec::new(),
                Err(e) => return Err(e),
            };
            let mut items: Vec<Item> = groups.iter().map(|g| project_group_item(&pid, g)).collect();
            let skips = std::sync::Mutex::new(Skipped::new());
            items.extend(list_or_gone(
                project_group_assignments(client, &pid, &groups, 4, &skips).await,
            )?);
            (
                vec![
                    Replaced::Parent(ItemKind::ProjectGroup, pid.clone()),
                    Replaced::Prefix(ItemKind::RoleAssignment, format!("{pid}/group/")),
                ],
                items,
            )
        }
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
                .map(org_role_item)
                .collect(),
        ),
        Refresh::ProjectRoles(pid) => (
            vec![Replaced::Parent(ItemKind::Role, pid.clone())],
            list_or_gone(
                all(client.roles(&RoleScope::Project(pid.clone()), &rbac))
                    .await
                    .map(|v| v.iter().map(|r| role_item(Some(&pid), r)).collect()),
            )?,
        ),
        Refresh::Assignments(key) => {
            let who = key.assignee();
            match assignments(client, who.clone()).await {
                Ok(items) => (
                    vec![Replaced::Prefix(
                        ItemKind::RoleAssignment,
                        assignment_prefix(&who),
                    )],
                    items,
                ),
                // The group or user is gone: so are its assignments at every level.
                Err(e) if gone(&e) => {
                    let (_, _, principal) = assignee_parts(&who);
                    (
                        vec![Replaced::Subject(
                            ItemKind::RoleAssignment,
                            principal.to_owned(),
                        )],
                        Vec::new(),
                    )
                }
                Err(e) => return Err(e),
            }
        }
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
