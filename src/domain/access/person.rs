//! One person's access across connections: their membership, pending invites, groups, API
//! keys and every project they can reach, with each path.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    AccessPath, InvitedProject, SnapshotItem, Via, group_paths, int, invite_path, invite_projects,
    role_book, text, union,
};
use crate::domain::permissions::{PermissionSource, Permissions, RoleBook, RoleLevel};
use crate::domain::{ConnectionId, Item, ItemKind, SyncId};

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
    #[schema(value_type = Vec<String>)]
    pub permissions: Permissions,
    /// Where `permissions` came from.
    pub permissions_source: PermissionSource,
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
    #[schema(value_type = Vec<String>)]
    pub permissions: Permissions,
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
    #[schema(value_type = Vec<String>)]
    pub permissions: Permissions,
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

pub(super) fn grant_user(book: &RoleBook, i: &Item) -> OrgUser {
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

/// Assembles what the snapshots say about one person from the items the store read.
/// Connections come out in the order of their ids.
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

/// Where a page of a person's access starts: in `connection_id` (and every later connection),
/// after project `after_project` (`""`: from that connection's first project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonCursor {
    pub connection_id: ConnectionId,
    pub after_project: String,
}

impl PersonCursor {
    /// The text form callers pass back: `connection_id after_project`.
    pub fn encode(&self) -> String {
        format!(
            "{}{}{}",
            self.connection_id,
            super::CURSOR_SEP,
            self.after_project
        )
    }

    /// Reads [`Self::encode`]'s form; `None` unless it starts with a connection id.
    pub fn decode(raw: &str) -> Option<Self> {
        let (connection_id, after_project) = super::connection_key(raw)?;
        Some(Self {
            connection_id,
            after_project: after_project.to_owned(),
        })
    }
}

/// A page of a person's access: at most `limit` projects, across connections in id order.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonPage {
    /// A connection continued from the previous page repeats its user, invites, groups and
    /// keys (small, and each page then stands alone); its `projects` go on where it stopped.
    pub connections: Vec<ConnectionAccess>,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

/// Cuts [`person_access`]'s answer (connections in id order, projects in id order) into the
/// page starting at `after`, holding at most `limit` (≥ 1) projects.
pub fn person_page(
    all: Vec<ConnectionAccess>,
    after: Option<&PersonCursor>,
    limit: usize,
) -> PersonPage {
    let mut budget = limit.max(1);
    let mut connections = Vec::new();
    let mut next = None;
    for mut c in all {
        if let Some(a) = after {
            if c.connection_id < a.connection_id {
                continue;
            }
            if c.connection_id == a.connection_id {
                c.projects.retain(|p| p.project_id > a.after_project);
            }
        }
        if budget == 0 {
            next = Some(PersonCursor {
                connection_id: c.connection_id,
                after_project: String::new(),
            });
            break;
        }
        if c.projects.len() > budget {
            c.projects.truncate(budget);
            next = c.projects.last().map(|p| PersonCursor {
                connection_id: c.connection_id,
                after_project: p.project_id.clone(),
            });
            connections.push(c);
            break;
        }
        budget -= c.projects.len();
        connections.push(c);
    }
    PersonPage {
        connections,
        has_more: next.is_some(),
        next_cursor: next.as_ref().map(PersonCursor::encode),
    }
}
