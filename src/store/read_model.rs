//! The read model: each connection's current snapshot held in memory, indexed by the keys the
//! access questions follow (person → memberships → projects, group → members, project →
//! everything on it), so an answer costs what it returns, not the size of the organization.
//!
//! The database stays the truth; this is a cache of it that is never partly updated:
//! - a published snapshot is loaded whole, off to the side, then swapped in;
//! - a write-through (a grant's outcome) is applied here by the replica that made it as soon as
//!   it commits, and logged in `head_patches` with a new head `version`, which other replicas
//!   poll ([`POLL`]) and apply by re-reading just those items;
//! - every read and every change holds the lock for the microseconds it takes, so a reader
//!   sees one state of each connection's snapshot.
//!
//! Only the kinds the access questions read are held ([`KINDS`]), and of `data` only the
//! fields they read ([`DATA_FIELDS`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::RwLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::access::{
    DATA_FIELDS, KINDS, OwnerItems, Person, ProjectItems, ReachPage, SnapshotItem, invite_projects,
};
use crate::domain::{ConnectionId, Item, ItemKind, SyncId};

/// How often a replica looks for snapshots and write-throughs made by the others.
pub(super) const POLL: Duration = Duration::from_millis(250);

/// What a connection's `inventory_heads` row says, with the connection's name.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HeadInfo {
    pub(super) connection_id: ConnectionId,
    pub(super) name: String,
    pub(super) sync_id: SyncId,
    pub(super) synced_at: DateTime<Utc>,
    /// Write-throughs applied: the last `head_patches` version seen.
    pub(super) version: i64,
}

/// One connection's snapshot. Items live in slots; the indexes hold slot numbers.
pub(super) struct Head {
    info: HeadInfo,
    slots: Vec<Option<Stored>>,
    free: Vec<u32>,
    by_key: HashMap<(ItemKind, String), u32>,
    by_subject: HashMap<String, Vec<u32>>,
    by_parent: HashMap<String, Vec<u32>>,
    by_email: HashMap<String, Vec<u32>>,
    /// Pending invites by each project they name.
    invites_by_project: HashMap<String, Vec<u32>>,
    /// Organization owners by user id, and in the order a project's people are listed (by
    /// email, then user id): they reach every project, so pages of them are read in order.
    owners: BTreeMap<String, u32>,
    owners_in_order: BTreeMap<PersonKey, u32>,
    /// Organization-level roles: every project question needs them.
    org_roles: BTreeSet<u32>,
    /// Users by user id and projects by id, in order: the holders listing walks them.
    users: BTreeMap<String, u32>,
    projects: BTreeMap<String, u32>,
}

/// Where a person is listed among a project's people: (email, user id).
type PersonKey = (Option<String>, Option<String>);

fn person_key(user: &Stored) -> PersonKey {
    (owned(&user.email), owned(&user.subject_id))
}

fn user_id(user: &Stored) -> String {
    user.subject_id.as_deref().unwrap_or(&user.key).to_owned()
}

fn is_owner(i: &Stored) -> bool {
    i.kind == ItemKind::User && i.role.as_deref() == Some("owner")
}

/// An item as the model keeps it: the fields the questions follow, and of `data` only
/// [`DATA_FIELDS`], as compact JSON text. A parsed map costs a B-tree node (about 600
/// bytes) an item, which at 50,000 users was most of the model; the text is parsed again
/// only for the items an answer returns.
struct Stored {
    kind: ItemKind,
    key: Box<str>,
    parent_id: Option<Box<str>>,
    subject_id: Option<Box<str>>,
    email: Option<Box<str>>,
    role: Option<Box<str>>,
    status: Option<Box<str>>,
    data: Box<str>,
}

fn boxed(s: Option<String>) -> Option<Box<str>> {
    s.map(String::into_boxed_str)
}

fn owned(s: &Option<Box<str>>) -> Option<String> {
    s.as_deref().map(str::to_owned)
}

impl Stored {
    fn of(mut item: Item) -> Self {
        if let Value::Object(map) = &mut item.data {
            map.retain(|k, _| DATA_FIELDS.contains(&k.as_str()));
        }
        Stored {
            kind: item.kind,
            key: item.key.into_boxed_str(),
            parent_id: boxed(item.parent_id),
            subject_id: boxed(item.subject_id),
            email: boxed(item.email),
            role: boxed(item.role),
            status: boxed(item.status),
            data: item.data.to_string().into_boxed_str(),
        }
    }

    /// The item again (its trimmed `data`).
    fn item(&self) -> Item {
        Item {
            kind: self.kind,
            key: self.key.to_string(),
            parent_id: owned(&self.parent_id),
            subject_id: owned(&self.subject_id),
            email: owned(&self.email),
            role: owned(&self.role),
            status: owned(&self.status),
            // Written by `of` from a parsed value: it parses.
            data: serde_json::from_str(&self.data).unwrap_or_default(),
        }
    }
}

fn push(map: &mut HashMap<String, Vec<u32>>, key: &Option<Box<str>>, slot: u32) {
    // Looked up first: `entry` would allocate the key for every item, most of them already in.
    if let Some(k) = key {
        match map.get_mut(&**k) {
            Some(slots) => slots.push(slot),
            None => {
                map.insert(k.to_string(), vec![slot]);
            }
        }
    }
}

fn pull(map: &mut HashMap<String, Vec<u32>>, key: &Option<Box<str>>, slot: u32) {
    if let Some(k) = key
        && let Some(v) = map.get_mut(&**k)
    {
        v.retain(|s| *s != slot);
        if v.is_empty() {
            map.remove(&**k);
        }
    }
}

fn pending_invite(i: &Stored) -> bool {
    i.kind == ItemKind::Invite && i.status.as_deref() == Some("pending")
}

impl Head {
    /// An empty head, filled item by item with [`Self::upsert`] as the rows stream in (the
    /// snapshot's rows are never all held at once) and swapped in by [`ReadModel::install`].
    pub(super) fn new(info: HeadInfo) -> Self {
        Head {
            info,
            slots: Vec::new(),
            free: Vec::new(),
            by_key: HashMap::new(),
            by_subject: HashMap::new(),
            by_parent: HashMap::new(),
            by_email: HashMap::new(),
            invites_by_project: HashMap::new(),
            owners: BTreeMap::new(),
            owners_in_order: BTreeMap::new(),
            org_roles: BTreeSet::new(),
            users: BTreeMap::new(),
            projects: BTreeMap::new(),
        }
    }

    fn item(&self, slot: u32) -> Option<&Stored> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    pub(super) fn upsert(&mut self, item: Item) {
        if !KINDS.contains(&item.kind) {
            return;
        }
        self.remove(item.kind, &item.key);
        let item = Stored::of(item);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.index(slot, &item, true);
        self.by_key.insert((item.kind, item.key.to_string()), slot);
        self.slots[slot as usize] = Some(item);
    }

    fn remove(&mut self, kind: ItemKind, key: &str) {
        let Some(slot) = self.by_key.remove(&(kind, key.to_owned())) else {
            return;
        };
        if let Some(item) = self.slots[slot as usize].take() {
            self.index(slot, &item, false);
        }
        self.free.push(slot);
    }

    /// Adds `slot` to (or with `add` false removes it from) the indexes `item` belongs in.
    fn index(&mut self, slot: u32, item: &Stored, add: bool) {
        let each = if add { push } else { pull };
        each(&mut self.by_subject, &item.subject_id, slot);
        each(&mut self.by_parent, &item.parent_id, slot);
        each(&mut self.by_email, &item.email, slot);
        if pending_invite(item) {
            for p in invite_projects(&item.item()) {
                each(&mut self.invites_by_project, &Some(p.id.into()), slot);
            }
        }
        if is_owner(item) {
            if add {
                self.owners.insert(user_id(item), slot);
                self.owners_in_order.insert(person_key(item), slot);
            } else {
                self.owners.remove(&user_id(item));
                self.owners_in_order.remove(&person_key(item));
            }
        }
        if item.kind == ItemKind::Role && item.parent_id.is_none() {
            if add {
                self.org_roles.insert(slot);
            } else {
                self.org_roles.remove(&slot);
            }
        }
        let ordered = match item.kind {
            ItemKind::User => Some(&mut self.users),
            ItemKind::Project => Some(&mut self.projects),
            _ => None,
        };
        if let Some(map) = ordered {
            let id = user_id(item);
            if add {
                map.insert(id, slot);
            } else {
                map.remove(&id);
            }
        }
    }

    fn get(&self, kind: ItemKind, key: &str) -> Option<(u32, &Stored)> {
        let slot = *self.by_key.get(&(kind, key.to_owned()))?;
        Some((slot, self.item(slot)?))
    }

    /// The items of `kind` among the slots `index` lists under `key`.
    fn find<'a>(
        &'a self,
        index: &'a HashMap<String, Vec<u32>>,
        key: &str,
        kind: ItemKind,
    ) -> impl Iterator<Item = (u32, &'a Stored)> + 'a {
        index
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(move |&s| Some((s, self.item(s)?)))
            .filter(move |(_, i)| i.kind == kind)
    }

    /// The person's user items: by email, or by user id.
    fn users(&self, email: Option<&str>, user_id: Option<&str>) -> Vec<&Stored> {
        let mut users = Vec::new();
        if let Some(e) = email {
            users.extend(self.find(&self.by_email, e, ItemKind::User).map(|(_, i)| i));
        }
        if let Some(u) = user_id {
            users.extend(
                self.find(&self.by_subject, u, ItemKind::User)
                    .map(|(_, i)| i),
            );
        }
        users
    }

    /// What [`AccessStore::person_items`](super::AccessStore::person_items) returns for this
    /// snapshot: the person's user item, memberships, groups and their project accesses and
    /// project role assignments, API keys, pending invites to any of `emails` (the one asked
    /// for and the person's in every connection), the role objects of the roles those hold,
    /// and the projects they name.
    fn person(
        &self,
        email: Option<&str>,
        user_id: Option<&str>,
        emails: &BTreeSet<String>,
    ) -> BTreeSet<u32> {
        let mut found = BTreeSet::new();
        for user in self.users(email, user_id) {
            let Some(uid) = user.subject_id.as_deref() else {
                continue;
            };
            for kind in [
                ItemKind::User,
                ItemKind::ProjectMember,
                ItemKind::GroupMember,
                ItemKind::ApiKey,
            ] {
                found.extend(self.find(&self.by_subject, uid, kind).map(|(s, _)| s));
            }
            for (_, gm) in self.find(&self.by_subject, uid, ItemKind::GroupMember) {
                let Some(gid) = gm.parent_id.as_deref() else {
                    continue;
                };
                found.extend(self.get(ItemKind::Group, gid).map(|(s, _)| s));
                found.extend(
                    self.find(&self.by_subject, gid, ItemKind::ProjectGroup)
                        .map(|(s, _)| s),
                );
                found.extend(
                    self.find(&self.by_subject, gid, ItemKind::RoleAssignment)
                        .filter(|(_, a)| a.parent_id.is_some())
                        .map(|(s, _)| s),
                );
            }
        }
        for e in emails {
            found.extend(
                self.find(&self.by_email, e, ItemKind::Invite)
                    .filter(|(_, i)| pending_invite(i))
                    .map(|(s, _)| s),
            );
        }
        let held: Vec<&Stored> = found.iter().filter_map(|&s| self.item(s)).collect();
        let roles: BTreeSet<&str> = held.iter().filter_map(|i| i.role.as_deref()).collect();
        let matches = |r: &Stored| {
            roles.iter().any(|&name| {
                r.role.as_deref() == Some(name)
                    || r.subject_id.as_deref() == Some(name)
                    || &*r.key == name
            })
        };
        let mut more = BTreeSet::new();
        more.extend(
            self.org_roles
                .iter()
                .filter(|&&s| self.item(s).is_some_and(matches)),
        );
        let mut projects = BTreeSet::new();
        for i in &held {
            match i.kind {
                ItemKind::ProjectMember | ItemKind::ProjectGroup => {
                    if let Some(p) = i.parent_id.as_deref() {
                        more.extend(
                            self.find(&self.by_parent, p, ItemKind::Role)
                                .filter(|(_, r)| matches(r))
                                .map(|(s, _)| s),
                        );
                        projects.insert(p.to_owned());
                    }
                }
                ItemKind::ApiKey => projects.extend(owned(&i.parent_id)),
                ItemKind::Invite => {
                    projects.extend(invite_projects(&i.item()).into_iter().map(|p| p.id))
                }
                _ => {}
            }
        }
        for p in projects {
            more.extend(self.get(ItemKind::Project, &p).map(|(s, _)| s));
        }
        found.extend(more);
        found
    }

    /// What [`AccessStore::project_items`](super::AccessStore::project_items) returns: the
    /// project, its members, group accesses, service accounts and role assignments, those
    /// groups and their members, pending invites naming it, the role objects of the
    /// organization and of the project, and the owners among those people; and the page's
    /// share of the other owners, in order.
    fn project(
        &self,
        project_id: &str,
        page: &ReachPage,
    ) -> Option<(u32, BTreeSet<u32>, Vec<u32>)> {
        let (project, _) = self.get(ItemKind::Project, project_id)?;
        let mut found = BTreeSet::new();
        for kind in [
            ItemKind::ProjectMember,
            ItemKind::ProjectGroup,
            ItemKind::ServiceAccount,
            ItemKind::RoleAssignment,
            ItemKind::Role,
        ] {
            found.extend(self.find(&self.by_parent, project_id, kind).map(|(s, _)| s));
        }
        for (_, pg) in self.find(&self.by_parent, project_id, ItemKind::ProjectGroup) {
            let Some(gid) = pg.subject_id.as_deref() else {
                continue;
            };
            found.extend(self.get(ItemKind::Group, gid).map(|(s, _)| s));
            found.extend(
                self.find(&self.by_parent, gid, ItemKind::GroupMember)
                    .map(|(s, _)| s),
            );
        }
        found.extend(
            self.invites_by_project
                .get(project_id)
                .into_iter()
                .flatten(),
        );
        // The owners among the people found: their paths merge with the owner's path.
        let mut merged = BTreeSet::new();
        for &s in &found {
            let Some(i) = self.item(s) else { continue };
            match i.kind {
                ItemKind::ProjectMember | ItemKind::GroupMember => {
                    if let Some(&o) = i.subject_id.as_deref().and_then(|u| self.owners.get(u)) {
                        merged.insert(o);
                    }
                }
                ItemKind::Invite => {
                    let owners = i
                        .email
                        .iter()
                        .flat_map(|e| self.find(&self.by_email, e, ItemKind::User));
                    merged.extend(owners.filter(|(_, u)| is_owner(u)).map(|(s, _)| s));
                }
                _ => {}
            }
        }
        found.extend(&merged);
        found.extend(&self.org_roles);
        found.remove(&project);
        let from = match &page.after {
            Some(a) => Bound::Excluded((a.email.clone(), a.user_id.clone())),
            None => Bound::Unbounded,
        };
        let owners = self
            .owners_in_order
            .range((from, Bound::Unbounded))
            .map(|(_, &s)| s)
            .filter(|s| !merged.contains(s))
            .take(page.limit + 1)
            .collect();
        Some((project, found, owners))
    }

    /// Items of `slots`, in the order the SQL queries returned them (kind, then key).
    fn items(&self, slots: &BTreeSet<u32>) -> Vec<Item> {
        let mut out: Vec<Item> = slots
            .iter()
            .filter_map(|&s| self.item(s).map(Stored::item))
            .collect();
        out.sort_by(|a, b| (a.kind.as_str(), &a.key).cmp(&(b.kind.as_str(), &b.key)));
        out
    }
}

/// Every connection's head, and what has been loaded.
#[derive(Default)]
pub(super) struct ReadModel {
    heads: RwLock<HashMap<ConnectionId, Head>>,
    /// Serializes loads and applied patches, so a slower load never replaces a newer one.
    pub(super) refresh: tokio::sync::Mutex<()>,
    /// Set once every head was loaded and the poller started.
    pub(super) ready: tokio::sync::OnceCell<()>,
}

impl ReadModel {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ConnectionId, Head>> {
        // A panic while holding the lock leaves whole heads behind (each change is applied
        // item by item, each complete), so a poisoned lock is still safe to read.
        self.heads.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ConnectionId, Head>> {
        self.heads.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The heads held now, for the poller to compare with the database's.
    pub(super) fn infos(&self) -> Vec<HeadInfo> {
        self.read().values().map(|h| h.info.clone()).collect()
    }

    /// Swaps in a loaded snapshot.
    pub(super) fn install(&self, head: Head) {
        self.write().insert(head.info.connection_id, head);
    }

    pub(super) fn remove(&self, id: ConnectionId) {
        self.write().remove(&id);
    }

    pub(super) fn rename(&self, id: ConnectionId, name: &str) {
        if let Some(h) = self.write().get_mut(&id) {
            h.info.name = name.to_owned();
        }
    }

    /// A write-through: items put in and taken out of a connection's head (nothing without
    /// one, like the database). With `version`, the patches up to it are now applied.
    pub(super) fn patch(
        &self,
        id: ConnectionId,
        upserts: impl IntoIterator<Item = Item>,
        removals: &[(ItemKind, String)],
        version: Option<i64>,
    ) {
        let mut heads = self.write();
        let Some(head) = heads.get_mut(&id) else {
            return;
        };
        for (kind, key) in removals {
            head.remove(*kind, key);
        }
        for item in upserts {
            head.upsert(item);
        }
        if let Some(v) = version {
            head.info.version = head.info.version.max(v);
        }
    }

    pub(super) fn person_items(&self, person: &Person) -> Vec<SnapshotItem> {
        let (email, user_id) = match person {
            Person::Email(e) => (Some(e.to_lowercase()), None),
            Person::UserId(u) => (None, Some(u.as_str())),
        };
        let heads = self.read();
        let mut ids: Vec<&ConnectionId> = heads.keys().collect();
        ids.sort();
        // An invite is found by the person's email in any organization they belong to.
        let mut emails: BTreeSet<String> = email.iter().cloned().collect();
        for head in heads.values() {
            let users = head.users(email.as_deref(), user_id);
            emails.extend(users.into_iter().filter_map(|u| owned(&u.email)));
        }
        let mut out = Vec::new();
        for id in ids {
            let head = &heads[id];
            let found = head.person(email.as_deref(), user_id, &emails);
            out.extend(head.items(&found).into_iter().map(|item| SnapshotItem {
                connection_id: head.info.connection_id,
                connection_name: head.info.name.clone(),
                sync_id: head.info.sync_id,
                synced_at: head.info.synced_at,
                item,
            }));
        }
        out
    }

    pub(super) fn project_items(
        &self,
        id: ConnectionId,
        project_id: &str,
        page: &ReachPage,
    ) -> Option<ProjectItems> {
        let heads = self.read();
        let head = heads.get(&id)?;
        let (project, found, owners) = head.project(project_id, page)?;
        Some(ProjectItems {
            sync_id: head.info.sync_id,
            synced_at: head.info.synced_at,
            project: head.item(project)?.item(),
            items: head.items(&found),
            owners: owners
                .into_iter()
                .filter_map(|s| head.item(s).map(Stored::item))
                .collect(),
        })
    }

    /// A page of the connection's organization owners by user id, after `after`.
    pub(super) fn owner_items(
        &self,
        id: ConnectionId,
        after: Option<&str>,
        limit: usize,
    ) -> Option<OwnerItems> {
        let heads = self.read();
        let head = heads.get(&id)?;
        let from = match after {
            Some(a) => Bound::Excluded(a.to_owned()),
            None => Bound::Unbounded,
        };
        let mut users: Vec<Item> = head
            .owners
            .range((from, Bound::Unbounded))
            .filter_map(|(_, &s)| head.item(s))
            .take(limit + 1)
            .map(Stored::item)
            .collect();
        let has_more = users.len() > limit;
        users.truncate(limit);
        Some(OwnerItems {
            sync_id: head.info.sync_id,
            synced_at: head.info.synced_at,
            users,
            roles: head.items(&head.org_roles),
            has_more,
        })
    }

    /// The connections with a snapshot, by id, with their names.
    pub(super) fn heads(&self) -> Vec<(ConnectionId, String)> {
        let mut out: Vec<_> = self
            .read()
            .values()
            .map(|h| (h.info.connection_id, h.info.name.clone()))
            .collect();
        out.sort();
        out
    }

    /// The organization-level role objects of a connection's snapshot.
    pub(super) fn org_roles(&self, id: ConnectionId) -> Vec<Item> {
        let heads = self.read();
        heads
            .get(&id)
            .map(|h| h.items(&h.org_roles))
            .unwrap_or_default()
    }

    /// Up to `limit` users holding one of `roles` as organization role, by user id after
    /// `after`.
    pub(super) fn users_with_roles(
        &self,
        id: ConnectionId,
        roles: &[String],
        after: Option<&str>,
        limit: usize,
    ) -> Vec<Item> {
        let heads = self.read();
        let Some(head) = heads.get(&id) else {
            return Vec::new();
        };
        let from = match after {
            Some(a) => Bound::Excluded(a.to_owned()),
            None => Bound::Unbounded,
        };
        head.users
            .range((from, Bound::Unbounded))
            .filter_map(|(_, &s)| head.item(s))
            .filter(|u| {
                u.role
                    .as_deref()
                    .is_some_and(|r| roles.iter().any(|x| x == r))
            })
            .take(limit)
            .map(Stored::item)
            .collect()
    }

    /// Up to `limit` project ids of a connection's snapshot after `after`, in order.
    pub(super) fn project_ids(
        &self,
        id: ConnectionId,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<String> {
        let heads = self.read();
        let Some(head) = heads.get(&id) else {
            return Vec::new();
        };
        let from = match after {
            Some(a) => Bound::Excluded(a.to_owned()),
            None => Bound::Unbounded,
        };
        head.projects
            .range((from, Bound::Unbounded))
            .take(limit)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// A project's name in the connection's snapshot.
    pub(super) fn project_name(&self, id: ConnectionId, project_id: &str) -> Option<String> {
        let heads = self.read();
        let head = heads.get(&id)?;
        let item = head.item(*head.projects.get(project_id)?)?;
        item.item().data.get("name")?.as_str().map(str::to_owned)
    }
}
