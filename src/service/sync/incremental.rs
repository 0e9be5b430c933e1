//! The incremental sync: which audit-log events since the last mark touch which part of the
//! inventory, and fetching just those parts again.

use futures::StreamExt;
use serde_json::Value;

use super::items::{
    account_item, admin_key_item, assignee_parts, assignment_prefix, cost_items, group_item,
    group_member_item, invite_item, is_archived, key_item, member_item, org_role_item,
    project_group_item, project_item, role_item, user_item,
};
use super::{FetchPlan, Skipped, all, assignments, optional, project_group_assignments};
use crate::domain::{AuditMark, Item, ItemKind, Replaced};
use crate::openai::{
    Assignee, AuditLog, AuditLogParams, Client, CostsParams, CursorParams, ErrorKind,
    ListProjectApiKeysParams, OpenAiError, RbacListParams, RoleScope, TimeRange,
};

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
pub(super) fn gone(e: &OpenAiError) -> bool {
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
