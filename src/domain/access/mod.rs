//! Who can reach what, answered from synced snapshots: a person's access across every
//! connection, everyone who can reach one project, each path with the role it holds and the
//! permissions that role grants. Pure assembly over [`Item`]s the store read; imports
//! nothing else of ours (no axum, no sqlx). The paths to a project are the [`Via`]s.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::permissions::{Grant, PermissionSource, Permissions, RoleBook, RoleDef, RoleLevel};
use super::{ConnectionId, Item, ItemKind, SyncId};

/// The kinds of item the access questions read.
pub const KINDS: [ItemKind; 11] = [
    ItemKind::User,
    ItemKind::Invite,
    ItemKind::Project,
    ItemKind::ProjectMember,
    ItemKind::ProjectGroup,
    ItemKind::ServiceAccount,
    ItemKind::ApiKey,
    ItemKind::Group,
    ItemKind::GroupMember,
    ItemKind::Role,
    ItemKind::RoleAssignment,
];

/// The fields of an item's `data` the answers read (a read model may keep only these):
/// keep this list in step with the `text`/`int`/`get` calls of this module.
pub const DATA_FIELDS: [&str; 9] = [
    "id",
    "name",
    "permissions",
    "projects",
    "group_name",
    "expires_at",
    "redacted_value",
    "created_at",
    "last_used_at",
];

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
    pub connection_id: ConnectionId,
    pub connection_name: String,
    pub sync_id: SyncId,
    pub synced_at: DateTime<Utc>,
    pub item: Item,
}

/// What a connection's current snapshot holds about one project, as the store read it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectItems {
    pub sync_id: SyncId,
    pub synced_at: DateTime<Utc>,
    pub project: Item,
    /// Members, group accesses, groups and their members, service accounts, candidate
    /// invites, role objects, and the user items of the organization owners among those
    /// people (by user id, or by email for the invited).
    pub items: Vec<Item>,
    /// The other organization owners' user items, by email then user id, after the page's
    /// start: the first `limit + 1` of them (or all there are).
    pub owners: Vec<Item>,
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
    #[schema(value_type = Vec<String>)]
    pub permissions: Permissions,
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

    pub fn has(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }
}

/// The permissions of all `paths`, sorted and once each; when they all share one list (one
/// path, or an owner's same path), that list when it is already sorted.
fn union(paths: &[AccessPath]) -> Permissions {
    if let Some(first) = paths.first()
        && paths.iter().all(|p| p.permissions.same(&first.permissions))
        && first.permissions.iter().is_sorted_by(|a, b| a < b)
    {
        return first.permissions.clone();
    }
    paths
        .iter()
        .flat_map(|p| p.permissions.iter())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A project invite entry: which project, with which role.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InvitedProject {
    /// `proj_...`.
    pub id: String,
    /// Project role on acceptance.
    pub role: Option<String>,
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
fn permissions(data: &Value) -> Permissions {
    data.get("permissions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
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

/// Page cursors are positions written as text, like OpenAI's own `after=<id>`: the sort key
/// of the last row answered, its fields separated by single spaces (no OpenAI id contains
/// one; an absent field is empty). Any string of the documented form names a position, and
/// a page starts strictly after it, so a cursor never has to be one this service made.
pub(crate) const CURSOR_SEP: char = ' ';

/// `email user_id` → the two fields; the user id is after the *last* space (ids have none,
/// emails from a synced snapshot might), and empty fields are absent.
fn person_key(raw: &str) -> (Option<String>, Option<String>) {
    let (email, user) = raw.rsplit_once(CURSOR_SEP).unwrap_or((raw, ""));
    (non_empty(email), non_empty(user))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// A leading connection id (the hyphenated form) and what follows its separator.
fn connection_key(raw: &str) -> Option<(ConnectionId, &str)> {
    let (id, rest) = raw.split_once(CURSOR_SEP).unwrap_or((raw, ""));
    let id = crate::domain::ids::parse_uuid("connection id", id).ok()?;
    Some((ConnectionId(id), rest))
}

mod holders;
mod owners;
mod person;
mod project;
#[cfg(test)]
mod tests;

pub use holders::*;
pub use owners::*;
pub use person::*;
pub use project::*;
