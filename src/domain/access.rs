//! Who can reach what, answered from synced snapshots: a person's access across every
//! connection, everyone who can reach one project, each path with the role it holds and the
//! permissions that role grants. Pure assembly over [`Item`]s the store read; imports
//! nothing else of ours (no axum, no sqlx).
//!
//! Paths to a project: `direct` (a project member), `group` (a member of a group that has
//! access to the project), `invite` (a pending invite that will grant it) and, on the
//! who-can-reach side only, `organization_owner` (org owners can manage every project).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::permissions::{Grant, PermissionSource, RoleBook, RoleDef, RoleLevel};
use super::{ConnectionId, Item, ItemKind, SyncId};

/// Whom an access question is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Person {
    /// An email address (compared lower-cased, as stored).
    Email(String),
    /// An OpenAI user id (`user-...`), the same in every organization the person belongs to.
    UserId(String),
}

/// An item of a connection's current snapshot, with the snapshot it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotItem {
    /// The connection.
    pub connection_id: ConnectionId,
    /// Its name.
    pub connection_name: String,
    /// The snapshot (sync) the item belongs to.
    pub sync_id: SyncId,
    /// When that sync finished.
    pub synced_at: DateTime<Utc>,
    /// The item.
    pub item: Item,
}

/// What a connection's current snapshot holds about one project, as the store read it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectItems {
    /// The snapshot.
    pub sync_id: SyncId,
    /// When it was taken.
    pub synced_at: DateTime<Utc>,
    /// The project.
    pub project: Item,
    /// Members, group accesses, groups and their members, service accounts, candidate
    /// invites, organization owners and role objects.
    pub items: Vec<Item>,
}

/// How a project is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// A project member.
    Direct,
    /// A member of a group that has access to the project (`group_id`, `group_name`).
    Group,
    /// A pending invite that grants the project on acceptance (`invite_id`).
    Invite,
    /// An organization owner: owners can manage every project of the organization.
    OrganizationOwner,
}

/// One path to a project and what it grants.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AccessPath {
    /// How the project is reached.
    pub via: Via,
    /// The group, for `group`.
    pub group_id: Option<String>,
    /// The group's name, for `group`.
    pub group_name: Option<String>,
    /// The invite, for `invite`.
    pub invite_id: Option<String>,
    /// Project role held this way (`null` when the snapshot does not say, e.g. a group
    /// whose project role assignments were not synced).
    pub role: Option<String>,
    /// The RBAC role object the permissions come from, when one matched.
    pub role_id: Option<String>,
    /// What the role grants in the project.
    pub permissions: Vec<String>,
    /// `role` (a synced role object), `predefined` (the legacy role table) or `unknown`.
    pub permissions_source: PermissionSource,
}

impl AccessPath {
    fn new(via: Via, grant: Grant) -> Self {
        Self {
            via,
            group_id: None,
            group_name: None,
            invite_id: None,
            role: grant.role,
            role_id: grant.role_id,
            permissions: grant.permissions,
            permissions_source: grant.permissions_source,
        }
    }

    /// Whether this path grants `permission`.
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }
}

/// The union of the permissions of some paths, sorted.
fn union(paths: &[AccessPath]) -> Vec<String> {
    paths
        .iter()
        .flat_map(|p| p.permissions.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A person's organization membership.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OrgUser {
    /// `user-...`.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Email, lower-cased.
    pub email: Option<String>,
    /// Organization role (`owner`, `reader`, ...).
    pub role: Option<String>,
    /// What the organization role grants.
    pub permissions: Vec<String>,
    /// Where `permissions` came from.
    pub permissions_source: PermissionSource,
}

/// A project invite entry: which project, with which role.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InvitedProject {
    /// `proj_...`.
    pub id: String,
    /// Project role on acceptance.
    pub role: Option<String>,
}

/// A pending invite of the person.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PendingInvite {
    /// `invite-...`.
    pub id: String,
    /// Invited address, lower-cased.
    pub email: Option<String>,
    /// Organization role on acceptance.
    pub role: Option<String>,
    /// What that role grants.
    pub permissions: Vec<String>,
    /// Where `permissions` came from.
    pub permissions_source: PermissionSource,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// Projects granted on acceptance.
    pub projects: Vec<InvitedProject>,
}

/// A project the person can reach, with every path.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProjectAccess {
    /// `proj_...`.
    pub project_id: String,
    /// Name, when the project is in the snapshot.
    pub project_name: Option<String>,
    /// `active` or `archived`.
    pub project_status: Option<String>,
    /// Every way the person reaches it.
    pub paths: Vec<AccessPath>,
    /// The union of the paths' permissions.
    pub permissions: Vec<String>,
}

/// A group the person belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct GroupRef {
    /// `group_...`.
    pub id: String,
    /// Name.
    pub name: Option<String>,
}

/// An API key the person owns.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OwnedKey {
    /// `key_...`.
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// The project it belongs to.
    pub project_id: Option<String>,
    /// `sk-proj-...abcd`.
    pub redacted_value: Option<String>,
    /// `active`, or `inactive` when the owner no longer has access to the project.
    pub owner_project_access: Option<String>,
    /// Unix seconds.
    pub created_at: Option<i64>,
    /// Unix seconds.
    pub last_used_at: Option<i64>,
}

/// What one connection's snapshot says about a person.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConnectionAccess {
    /// The connection.
    #[schema(value_type = String, format = Uuid)]
    pub connection_id: ConnectionId,
    /// Its name.
    pub connection_name: String,
    /// The snapshot answering.
    #[schema(value_type = String, format = Uuid)]
    pub sync_id: SyncId,
    /// When it was taken: how fresh this answer is.
    pub synced_at: DateTime<Utc>,
    /// The person's membership of the organization (`null` when only invited).
    pub user: Option<OrgUser>,
    /// Pending invites.
    pub invites: Vec<PendingInvite>,
    /// Projects reachable, by project id.
    pub projects: Vec<ProjectAccess>,
    /// Groups the person belongs to.
    pub groups: Vec<GroupRef>,
    /// API keys the person owns.
    pub api_keys: Vec<OwnedKey>,
}

fn text(data: &Value, field: &str) -> Option<String> {
    data.get(field).and_then(Value::as_str).map(str::to_owned)
}

fn int(data: &Value, field: &str) -> Option<i64> {
    data.get(field).and_then(Value::as_i64)
}

/// The role objects among `items`, for a [`RoleBook`].
fn role_book<'a>(items: impl Iterator<Item = &'a Item>) -> RoleBook {
    RoleBook::new(
        items
            .filter(|i| i.kind == ItemKind::Role)
            .map(|i| RoleDef {
                // Project roles are keyed `project/id`: the id is the subject (or in `data`).
                id: i
                    .subject_id
                    .clone()
                    .or_else(|| text(&i.data, "id"))
                    .unwrap_or_else(|| i.key.clone()),
                project_id: i.parent_id.clone(),
                name: i.role.clone().unwrap_or_default(),
                resource_type: i.status.clone().unwrap_or_default(),
                permissions: permissions(&i.data),
            })
            .collect(),
    )
}

/// A role object's (or an assigned role's) `permissions`.
fn permissions(data: &Value) -> Vec<String> {
    data.get("permissions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// What a synced role assignment grants: the assigned role's own permissions.
fn assignment_grant(a: &Item) -> Grant {
    Grant {
        role: a.role.clone(),
        role_id: text(&a.data, "id"),
        permissions: permissions(&a.data),
        permissions_source: PermissionSource::Role,
    }
}

/// An invite's `projects[]`.
pub fn invite_projects(invite: &Item) -> Vec<InvitedProject> {
    invite
        .data
        .get("projects")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    Some(InvitedProject {
                        id: text(p, "id")?,
                        role: text(p, "role"),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The projects a person's items refer to, per snapshot: the store reads their names next.
pub fn referenced_projects(items: &[SnapshotItem]) -> BTreeMap<SyncId, BTreeSet<String>> {
    let mut out: BTreeMap<SyncId, BTreeSet<String>> = BTreeMap::new();
    for s in items {
        let i = &s.item;
        let ids: Vec<String> = match i.kind {
            ItemKind::ProjectMember | ItemKind::ProjectGroup | ItemKind::ApiKey => {
                i.parent_id.iter().cloned().collect()
            }
            ItemKind::Invite => invite_projects(i).into_iter().map(|p| p.id).collect(),
            _ => Vec::new(),
        };
        if !ids.is_empty() {
            out.entry(s.sync_id).or_default().extend(ids);
        }
    }
    out
}

fn grant_user(book: &RoleBook, i: &Item) -> OrgUser {
    let g = book.grant(RoleLevel::Organization, i.role.as_deref());
    OrgUser {
        id: i.subject_id.clone().unwrap_or_else(|| i.key.clone()),
        name: text(&i.data, "name"),
        email: i.email.clone(),
        role: i.role.clone(),
        permissions: g.permissions,
        permissions_source: g.permissions_source,
    }
}

fn pending_invite(book: &RoleBook, i: &Item) -> PendingInvite {
    let g = book.grant(RoleLevel::Organization, i.role.as_deref());
    PendingInvite {
        id: i.key.clone(),
        email: i.email.clone(),
        role: i.role.clone(),
        permissions: g.permissions,
        permissions_source: g.permissions_source,
        expires_at: int(&i.data, "expires_at"),
        projects: invite_projects(i),
    }
}

fn invite_path(book: &RoleBook, invite: &Item, project: &InvitedProject) -> AccessPath {
    let mut path = AccessPath::new(
        Via::Invite,
        book.grant_in(
            RoleLevel::Project,
            Some(&project.id),
            project.role.as_deref(),
        ),
    );
    path.invite_id = Some(invite.key.clone());
    path
}

/// The paths a group's access to a project gives its members: one per role the group was
/// assigned in the project (synced role assignments), or one whose role is what the access
/// item says (usually nothing) when no assignment was synced.
fn group_paths(
    book: &RoleBook,
    access: &Item,
    group_name: Option<String>,
    items: &[Item],
) -> Vec<AccessPath> {
    let pid = access.parent_id.as_deref();
    let gid = access.subject_id.as_deref();
    let assigned: Vec<Grant> = items
        .iter()
        .filter(|a| {
            a.kind == ItemKind::RoleAssignment
                && a.status.as_deref() == Some("group")
                && a.parent_id.as_deref() == pid
                && a.subject_id.as_deref() == gid
        })
        .map(assignment_grant)
        .collect();
    let grants = if assigned.is_empty() {
        vec![book.grant_in(RoleLevel::Project, pid, access.role.as_deref())]
    } else {
        assigned
    };
    let name = group_name.or_else(|| text(&access.data, "group_name"));
    grants
        .into_iter()
        .map(|g| {
            let mut path = AccessPath::new(Via::Group, g);
            path.group_id = access.subject_id.clone();
            path.group_name = name.clone();
            path
        })
        .collect()
}

/// Assembles what the snapshots say about one person from the items the store read: per
/// connection their user and pending invites, every project with each path, their groups
/// and API keys. Connections come out in the order of their ids.
pub fn person_access(items: Vec<SnapshotItem>) -> Vec<ConnectionAccess> {
    let mut by_connection: BTreeMap<ConnectionId, Vec<SnapshotItem>> = BTreeMap::new();
    for s in items {
        by_connection.entry(s.connection_id).or_default().push(s);
    }
    let mut out = Vec::new();
    for (connection_id, rows) in by_connection {
        let first = &rows[0];
        let (connection_name, sync_id, synced_at) = (
            first.connection_name.clone(),
            first.sync_id,
            first.synced_at,
        );
        let items: Vec<Item> = rows.into_iter().map(|s| s.item).collect();
        let of = |kind: ItemKind| items.iter().filter(move |i| i.kind == kind);
        let book = role_book(items.iter());
        let user = of(ItemKind::User).next().map(|u| grant_user(&book, u));
        let invites: Vec<&Item> = of(ItemKind::Invite).collect();
        if user.is_none() && invites.is_empty() {
            continue;
        }
        let group_names: BTreeMap<&str, Option<String>> = of(ItemKind::Group)
            .map(|g| (g.key.as_str(), text(&g.data, "name")))
            .collect();
        let projects_seen: BTreeMap<&str, &Item> =
            of(ItemKind::Project).map(|p| (p.key.as_str(), p)).collect();
        let mut paths: BTreeMap<String, Vec<AccessPath>> = BTreeMap::new();
        for m in of(ItemKind::ProjectMember) {
            if let Some(pid) = &m.parent_id {
                paths.entry(pid.clone()).or_default().push(AccessPath::new(
                    Via::Direct,
                    book.grant_in(RoleLevel::Project, Some(pid), m.role.as_deref()),
                ));
            }
        }
        for pg in of(ItemKind::ProjectGroup) {
            if let (Some(pid), Some(gid)) = (&pg.parent_id, &pg.subject_id) {
                let name = group_names.get(gid.as_str()).cloned().flatten();
                paths
                    .entry(pid.clone())
                    .or_default()
                    .extend(group_paths(&book, pg, name, &items));
            }
        }
        for inv in &invites {
            for p in invite_projects(inv) {
                let path = invite_path(&book, inv, &p);
                paths.entry(p.id).or_default().push(path);
            }
        }
        let projects = paths
            .into_iter()
            .map(|(project_id, mut paths)| {
                paths.sort_by(|a, b| (a.via, &a.group_id).cmp(&(b.via, &b.group_id)));
                let project = projects_seen.get(project_id.as_str());
                ProjectAccess {
                    project_name: project.and_then(|p| text(&p.data, "name")),
                    project_status: project.and_then(|p| p.status.clone()),
                    permissions: union(&paths),
                    project_id,
                    paths,
                }
            })
            .collect();
        let groups = of(ItemKind::GroupMember)
            .filter_map(|m| m.parent_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|id| GroupRef {
                name: group_names.get(id.as_str()).cloned().flatten(),
                id,
            })
            .collect();
        let api_keys = of(ItemKind::ApiKey)
            .map(|k| OwnedKey {
                id: k.key.clone(),
                name: text(&k.data, "name"),
                project_id: k.parent_id.clone(),
                redacted_value: text(&k.data, "redacted_value"),
                owner_project_access: k.status.clone(),
                created_at: int(&k.data, "created_at"),
                last_used_at: int(&k.data, "last_used_at"),
            })
            .collect();
        out.push(ConnectionAccess {
            connection_id,
            connection_name,
            sync_id,
            synced_at,
            invites: invites.iter().map(|i| pending_invite(&book, i)).collect(),
            user,
            projects,
            groups,
            api_keys,
        });
    }
    out
}

/// A person who can reach a project, with every path.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Reacher {
    /// `user-...`; `null` for someone only invited.
    pub user_id: Option<String>,
    /// Email, lower-cased.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Every way they reach the project.
    pub paths: Vec<AccessPath>,
    /// The union of the paths' permissions.
    pub permissions: Vec<String>,
}

/// A service account of the project.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ServiceAccountReach {
    /// `svc_acct_...` (or the key of the item).
    pub id: String,
    /// Name.
    pub name: Option<String>,
    /// Project role (`owner`, `member`, `none`).
    pub role: Option<String>,
    /// What the role grants.
    pub permissions: Vec<String>,
    /// Where `permissions` came from.
    pub permissions_source: PermissionSource,
}

/// Everyone who can reach one project of one connection.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProjectReach {
    /// `proj_...`.
    pub project_id: String,
    /// Name.
    pub project_name: Option<String>,
    /// `active` or `archived`.
    pub project_status: Option<String>,
    /// The snapshot answering.
    #[schema(value_type = String, format = Uuid)]
    pub sync_id: SyncId,
    /// When it was taken.
    pub synced_at: DateTime<Utc>,
    /// People, ordered by email then user id.
    pub people: Vec<Reacher>,
    /// The project's service accounts.
    pub service_accounts: Vec<ServiceAccountReach>,
}

/// Adds a path to the person `item` names (by user id, or by email when only invited).
fn add(people: &mut BTreeMap<String, Reacher>, id: Option<&String>, item: &Item, path: AccessPath) {
    let key = match (id, &item.email) {
        (Some(id), _) => id.clone(),
        (None, email) => format!("email:{}", email.as_deref().unwrap_or(&item.key)),
    };
    let r = people.entry(key).or_insert_with(|| Reacher {
        user_id: id.cloned(),
        email: item.email.clone(),
        name: text(&item.data, "name"),
        paths: Vec::new(),
        permissions: Vec::new(),
    });
    if r.email.is_none() {
        r.email = item.email.clone();
    }
    if r.name.is_none() {
        r.name = text(&item.data, "name");
    }
    r.paths.push(path);
}

/// Assembles who can reach `project` from the items the store read about it (members,
/// group accesses with those groups and their members, candidate invites, service accounts,
/// organization owners, role objects). Invites not naming the project are ignored (the
/// store may over-select them).
pub fn project_reach(
    project: &Item,
    sync_id: SyncId,
    synced_at: DateTime<Utc>,
    items: &[Item],
) -> ProjectReach {
    let pid = project.key.as_str();
    let of = |kind: ItemKind| items.iter().filter(move |i| i.kind == kind);
    let book = role_book(items.iter());
    // Keyed by user id, or by `email:` for the invited.
    let mut people: BTreeMap<String, Reacher> = BTreeMap::new();
    for m in of(ItemKind::ProjectMember).filter(|m| m.parent_id.as_deref() == Some(pid)) {
        let path = AccessPath::new(
            Via::Direct,
            book.grant_in(RoleLevel::Project, Some(pid), m.role.as_deref()),
        );
        add(&mut people, m.subject_id.as_ref(), m, path);
    }
    let group_names: BTreeMap<&str, Option<String>> = of(ItemKind::Group)
        .map(|g| (g.key.as_str(), text(&g.data, "name")))
        .collect();
    for pg in of(ItemKind::ProjectGroup).filter(|g| g.parent_id.as_deref() == Some(pid)) {
        let Some(gid) = pg.subject_id.as_deref() else {
            continue;
        };
        let name = group_names.get(gid).cloned().flatten();
        let paths = group_paths(&book, pg, name, items);
        for m in of(ItemKind::GroupMember).filter(|m| m.parent_id.as_deref() == Some(gid)) {
            for path in &paths {
                add(&mut people, m.subject_id.as_ref(), m, path.clone());
            }
        }
    }
    for u in of(ItemKind::User).filter(|u| u.role.as_deref() == Some("owner")) {
        // Org owners act as project owners everywhere.
        let mut path = AccessPath::new(
            Via::OrganizationOwner,
            book.grant_in(RoleLevel::Project, Some(pid), Some("owner")),
        );
        path.role = Some("owner".into());
        add(&mut people, u.subject_id.as_ref(), u, path);
    }
    // Invitees: matched to a member of the same email when there is one.
    let by_email: BTreeMap<String, String> = people
        .iter()
        .filter_map(|(k, r)| Some((r.email.clone()?, k.clone())))
        .collect();
    for inv in of(ItemKind::Invite).filter(|i| i.status.as_deref() == Some("pending")) {
        for p in invite_projects(inv).iter().filter(|p| p.id == pid) {
            let path = invite_path(&book, inv, p);
            let existing = inv.email.as_ref().and_then(|e| by_email.get(e)).cloned();
            match existing {
                Some(key) => {
                    if let Some(r) = people.get_mut(&key) {
                        r.paths.push(path);
                    }
                }
                None => add(&mut people, None, inv, path),
            }
        }
    }
    let mut people: Vec<Reacher> = people
        .into_values()
        .map(|mut r| {
            r.paths
                .sort_by(|a, b| (a.via, &a.group_id).cmp(&(b.via, &b.group_id)));
            r.permissions = union(&r.paths);
            r
        })
        .collect();
    people.sort_by(|a, b| (&a.email, &a.user_id).cmp(&(&b.email, &b.user_id)));
    let service_accounts = of(ItemKind::ServiceAccount)
        .filter(|s| s.parent_id.as_deref() == Some(pid))
        .map(|s| {
            let g = book.grant_in(RoleLevel::Project, Some(pid), s.role.as_deref());
            ServiceAccountReach {
                id: s.subject_id.clone().unwrap_or_else(|| s.key.clone()),
                name: text(&s.data, "name"),
                role: s.role.clone(),
                permissions: g.permissions,
                permissions_source: g.permissions_source,
            }
        })
        .collect();
    ProjectReach {
        project_id: pid.to_owned(),
        project_name: text(&project.data, "name"),
        project_status: project.status.clone(),
        sync_id,
        synced_at,
        people,
        service_accounts,
    }
}

impl ProjectReach {
    /// Keeps only the paths (and so the people and service accounts) granting `permission`.
    pub fn granting(mut self, permission: &str) -> Self {
        for r in &mut self.people {
            r.paths.retain(|p| p.has(permission));
            r.permissions = union(&r.paths);
        }
        self.people.retain(|r| !r.paths.is_empty());
        self.service_accounts
            .retain(|s| s.permissions.iter().any(|p| p == permission));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snap(item: Item) -> SnapshotItem {
        SnapshotItem {
            connection_id: "0192f000-0000-7000-8000-000000000001".parse().unwrap(),
            connection_name: "acme".into(),
            sync_id: "0192f000-0000-7000-8000-000000000002".parse().unwrap(),
            synced_at: Utc::now(),
            item,
        }
    }

    fn alice_items() -> Vec<Item> {
        vec![
            Item::new(
                ItemKind::User,
                "user-a",
                json!({"id": "user-a", "email": "alice@corp.com", "role": "reader", "name": "Alice"}),
            )
            .subject("user-a"),
            Item::new(
                ItemKind::ProjectMember,
                "proj_A/user-a",
                json!({"id": "user-a", "email": "alice@corp.com", "role": "member"}),
            )
            .parent("proj_A")
            .subject("user-a"),
            Item::new(
                ItemKind::GroupMember,
                "group_1/user-a",
                json!({"id": "user-a", "email": "alice@corp.com"}),
            )
            .parent("group_1")
            .subject("user-a"),
            Item::new(ItemKind::Group, "group_1", json!({"id": "group_1", "name": "eng"})),
            Item::new(
                ItemKind::ProjectGroup,
                "proj_B/group_1",
                json!({"group_id": "group_1", "group_name": "eng"}),
            )
            .parent("proj_B")
            .subject("group_1"),
            Item::new(
                ItemKind::Invite,
                "invite-1",
                json!({"email": "alice@corp.com", "role": "reader", "status": "pending",
                       "projects": [{"id": "proj_C", "role": "owner"}]}),
            ),
            Item::new(ItemKind::Project, "proj_A", json!({"name": "A", "status": "active"})),
        ]
    }

    #[test]
    fn a_person_s_paths_are_named_with_their_permissions() {
        let out = person_access(alice_items().into_iter().map(snap).collect());
        assert_eq!(out.len(), 1);
        let c = &out[0];
        let user = c.user.as_ref().unwrap();
        assert_eq!(user.role.as_deref(), Some("reader"));
        assert_eq!(user.permissions_source, PermissionSource::Predefined);
        let vias: Vec<(String, Via, Option<String>)> = c
            .projects
            .iter()
            .flat_map(|p| {
                p.paths
                    .iter()
                    .map(|x| (p.project_id.clone(), x.via, x.role.clone()))
            })
            .collect();
        assert_eq!(
            vias,
            [
                ("proj_A".into(), Via::Direct, Some("member".into())),
                ("proj_B".into(), Via::Group, None),
                ("proj_C".into(), Via::Invite, Some("owner".into())),
            ]
        );
        assert_eq!(c.projects[0].project_name.as_deref(), Some("A"));
        assert_eq!(c.projects[1].paths[0].group_name.as_deref(), Some("eng"));
        assert!(
            c.projects[2]
                .permissions
                .contains(&"api.organization.projects.write".to_owned())
        );
        assert_eq!(c.groups[0].name.as_deref(), Some("eng"));
        let refs = referenced_projects(&alice_items().into_iter().map(snap).collect::<Vec<_>>());
        assert_eq!(
            refs.values().next().unwrap().iter().collect::<Vec<_>>(),
            ["proj_A", "proj_B", "proj_C"]
        );
    }

    #[test]
    fn who_can_reach_merges_paths_per_person_and_filters_by_permission() {
        let mut items = alice_items();
        items.push(
            Item::new(
                ItemKind::GroupMember,
                "group_1/user-b",
                json!({"id": "user-b", "email": "bob@corp.com", "name": "Bob"}),
            )
            .parent("group_1")
            .subject("user-b"),
        );
        items.push(
            Item::new(
                ItemKind::ProjectMember,
                "proj_B/user-b",
                json!({"id": "user-b", "email": "bob@corp.com", "role": "owner"}),
            )
            .parent("proj_B")
            .subject("user-b"),
        );
        let project = Item::new(ItemKind::Project, "proj_B", json!({"name": "B"}));
        let reach = project_reach(&project, SyncId::new(), Utc::now(), &items);
        let who: Vec<(Option<&str>, Vec<Via>)> = reach
            .people
            .iter()
            .map(|r| (r.email.as_deref(), r.paths.iter().map(|p| p.via).collect()))
            .collect();
        assert_eq!(
            who,
            [
                (Some("alice@corp.com"), vec![Via::Group]),
                (Some("bob@corp.com"), vec![Via::Direct, Via::Group]),
            ]
        );
        let writers = reach.granting("api.organization.projects.write");
        assert_eq!(writers.people.len(), 1);
        assert_eq!(writers.people[0].paths.len(), 1, "only the owner path");
    }

    #[test]
    fn a_group_path_holds_the_roles_assigned_to_the_group_in_the_project() {
        let mut items = alice_items();
        items.push(
            Item::new(
                ItemKind::RoleAssignment,
                "proj_B/group/group_1/role_x",
                json!({"id": "role_x", "name": "deployer", "permissions": ["api.deploy"]}),
            )
            .parent("proj_B")
            .subject("group_1")
            .role(Some("deployer".into()))
            .status(Some("group".into())),
        );
        // The group's organization-level assignment does not grant anything in a project.
        items.push(
            Item::new(
                ItemKind::RoleAssignment,
                "organization/group/group_1/role_y",
                json!({"id": "role_y", "name": "auditor", "permissions": ["api.audit"]}),
            )
            .subject("group_1")
            .role(Some("auditor".into()))
            .status(Some("group".into())),
        );
        let out = person_access(items.iter().cloned().map(snap).collect());
        let b = &out[0].projects[1];
        assert_eq!(b.project_id, "proj_B");
        assert_eq!(b.paths.len(), 1);
        let path = &b.paths[0];
        assert_eq!(
            (path.via, path.role.as_deref(), path.role_id.as_deref()),
            (Via::Group, Some("deployer"), Some("role_x"))
        );
        assert_eq!(path.permissions, ["api.deploy"]);
        assert_eq!(path.permissions_source, PermissionSource::Role);
        let project = Item::new(ItemKind::Project, "proj_B", json!({"name": "B"}));
        let reach = project_reach(&project, SyncId::new(), Utc::now(), &items);
        assert_eq!(reach.people[0].paths[0].role.as_deref(), Some("deployer"));
        assert_eq!(
            reach.granting("api.deploy").people.len(),
            1,
            "the assigned role's permissions count"
        );
    }
}
