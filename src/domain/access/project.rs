//! Everyone who can reach one project of one connection: members, group members, invitees,
//! service accounts and organization owners, each with every path and its permissions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{AccessPath, Via, group_paths, invite_path, invite_projects, role_book, text, union};
use crate::domain::permissions::{PermissionSource, RoleLevel};
use crate::domain::{Item, ItemKind, SyncId};

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
    /// People, ordered by email then user id: one page of them.
    pub people: Vec<Reacher>,
    /// The project's service accounts (on the first page).
    pub service_accounts: Vec<ServiceAccountReach>,
    /// Whether more people follow.
    pub has_more: bool,
    /// Pass as `after` to get the next page of people.
    pub next_cursor: Option<String>,
}

/// Where a page of [`ProjectReach::people`] starts: after this person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ReachCursor {
    email: Option<String>,
    user_id: Option<String>,
}

impl ReachCursor {
    fn of(r: &Reacher) -> Self {
        Self {
            email: r.email.clone(),
            user_id: r.user_id.clone(),
        }
    }

    /// The opaque text form callers pass back.
    pub fn encode(&self) -> String {
        super::encode_cursor(self)
    }

    /// Reads [`Self::encode`]'s form; `None` for anything else.
    pub fn decode(raw: &str) -> Option<Self> {
        super::decode_cursor(raw)
    }
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

/// Assembles who can reach `project` from the items the store read about it. Invites not
/// naming the project are ignored (the store may over-select them).
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
        has_more: false,
        next_cursor: None,
    }
}

impl ProjectReach {
    /// Keeps the page of at most `limit` people after `after` (service accounts only on the
    /// first page), saying whether more follow.
    pub fn page(mut self, after: Option<&ReachCursor>, limit: usize) -> Self {
        if let Some(a) = after {
            let key = (a.email.as_ref(), a.user_id.as_ref());
            self.people
                .retain(|r| (r.email.as_ref(), r.user_id.as_ref()) > key);
            self.service_accounts.clear();
        }
        self.has_more = self.people.len() > limit;
        self.people.truncate(limit);
        self.next_cursor = if self.has_more {
            self.people.last().map(|r| ReachCursor::of(r).encode())
        } else {
            None
        };
        self
    }

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
