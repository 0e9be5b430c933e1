//! Everyone who can reach one project of one connection: members, group members, invitees,
//! service accounts and organization owners, each with every path and its permissions.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    AccessPath, ProjectItems, Via, group_paths, invite_path, invite_projects, role_book, text,
    union,
};
use crate::domain::permissions::{PermissionSource, Permissions, RoleLevel};
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
    #[schema(value_type = Vec<String>)]
    pub permissions: Permissions,
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
    #[schema(value_type = Vec<String>)]
    pub permissions: Permissions,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachCursor {
    pub email: Option<String>,
    pub user_id: Option<String>,
}

impl ReachCursor {
    fn of(r: &Reacher) -> Self {
        Self {
            email: r.email.clone(),
            user_id: r.user_id.clone(),
        }
    }

    /// The order of people on a project: by email, then user id.
    pub fn key(&self) -> (Option<&String>, Option<&String>) {
        (self.email.as_ref(), self.user_id.as_ref())
    }

    /// The text form callers pass back: `email user_id`.
    pub fn encode(&self) -> String {
        format!(
            "{}{}{}",
            self.email.as_deref().unwrap_or(""),
            super::CURSOR_SEP,
            self.user_id.as_deref().unwrap_or("")
        )
    }

    /// Reads [`Self::encode`]'s form; every string is a position.
    pub fn decode(raw: &str) -> Self {
        let (email, user_id) = super::person_key(raw);
        Self { email, user_id }
    }
}

/// Which page of a project's people to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachPage {
    /// After this person (service accounts come only with the first page).
    pub after: Option<ReachCursor>,
    /// At most this many people.
    pub limit: usize,
}

impl ReachPage {
    /// The first page of at most `limit` people.
    pub fn first(limit: usize) -> Self {
        Self { after: None, limit }
    }

    fn admits(&self, r: &Reacher) -> bool {
        self.after
            .as_ref()
            .is_none_or(|a| (r.email.as_ref(), r.user_id.as_ref()) > a.key())
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
        permissions: Permissions::default(),
    });
    if r.email.is_none() {
        r.email = item.email.clone();
    }
    if r.name.is_none() {
        r.name = text(&item.data, "name");
    }
    r.paths.push(path);
}

/// Assembles one page of who can reach a project from what the store read about it; with
/// `permission`, only the paths granting it (and the people holding one). Invites not
/// naming the project are ignored (the store may over-select them).
///
/// The organization's owners reach every project, so in a large organization they are most
/// of the answer: they come from `found.owners`, already in page order, and only a page of
/// them is made into [`Reacher`]s. The owners who also reach the project another way are
/// among `found.items` (their user items), so their paths are merged.
pub fn project_reach(
    found: &ProjectItems,
    permission: Option<&str>,
    page: &ReachPage,
) -> ProjectReach {
    let project = &found.project;
    let items = found.items.as_slice();
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
    // Org owners act as project owners everywhere: one path, the same for each.
    let mut owner_path = AccessPath::new(
        Via::OrganizationOwner,
        book.grant_in(RoleLevel::Project, Some(pid), Some("owner")),
    );
    owner_path.role = Some("owner".into());
    let owner_permissions = union(std::slice::from_ref(&owner_path));
    for u in of(ItemKind::User).filter(|u| u.role.as_deref() == Some("owner")) {
        add(&mut people, u.subject_id.as_ref(), u, owner_path.clone());
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
    let granting = |p: &AccessPath| permission.is_none_or(|want| p.has(want));
    let mut others: Vec<Reacher> = people
        .into_values()
        .filter_map(|mut r| {
            r.paths.retain(granting);
            r.paths
                .sort_by(|a, b| (a.via, &a.group_id).cmp(&(b.via, &b.group_id)));
            r.permissions = union(&r.paths);
            (!r.paths.is_empty() && page.admits(&r)).then_some(r)
        })
        .collect();
    others.sort_by(|a, b| (&a.email, &a.user_id).cmp(&(&b.email, &b.user_id)));
    // The owners who reach it only as owners, in the same order, when their path counts.
    let merged: BTreeSet<&str> = of(ItemKind::User)
        .filter_map(|u| u.subject_id.as_deref())
        .collect();
    let owners = found
        .owners
        .iter()
        .filter(|_| granting(&owner_path))
        .filter(|u| {
            u.subject_id
                .as_deref()
                .is_none_or(|id| !merged.contains(id))
        })
        .map(|u| Reacher {
            user_id: u.subject_id.clone(),
            email: u.email.clone(),
            name: text(&u.data, "name"),
            permissions: owner_permissions.clone(),
            paths: vec![owner_path.clone()],
        })
        .filter(|r| page.admits(r));
    let mut people = merge_sorted(others.into_iter(), owners, page.limit + 1);
    let has_more = people.len() > page.limit;
    people.truncate(page.limit);
    let next_cursor = if has_more {
        people.last().map(|r| ReachCursor::of(r).encode())
    } else {
        None
    };
    let service_accounts = of(ItemKind::ServiceAccount)
        .filter(|s| s.parent_id.as_deref() == Some(pid) && page.after.is_none())
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
        .filter(|s| permission.is_none_or(|want| s.permissions.contains(want)))
        .collect();
    ProjectReach {
        project_id: pid.to_owned(),
        project_name: text(&project.data, "name"),
        project_status: project.status.clone(),
        sync_id: found.sync_id,
        synced_at: found.synced_at,
        people,
        service_accounts,
        has_more,
        next_cursor,
    }
}

/// The first `n` of two sequences each ordered by (email, user id), in that order.
fn merge_sorted(
    a: impl Iterator<Item = Reacher>,
    b: impl Iterator<Item = Reacher>,
    n: usize,
) -> Vec<Reacher> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    let mut out = Vec::with_capacity(n.min(256));
    while out.len() < n {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => (&x.email, &x.user_id) <= (&y.email, &y.user_id),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.extend(if take_a { a.next() } else { b.next() });
    }
    out
}
