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

mod footprint;
mod publish;
mod strings;

use strings::{Strings, Sym};

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

/// One connection's snapshot. Items live in slots; the indexes hold slot numbers; every id
/// and name is a symbol of the head's [`Strings`].
pub(super) struct Head {
    info: HeadInfo,
    strings: Strings,
    slots: Vec<Option<Stored>>,
    free: Vec<u32>,
    by_key: HashMap<(ItemKind, Sym), u32>,
    by_subject: HashMap<Sym, Vec<u32>>,
    by_parent: HashMap<Sym, Vec<u32>>,
    by_email: HashMap<Sym, Vec<u32>>,
    /// Pending invites by each project they name.
    invites_by_project: HashMap<Sym, Vec<u32>>,
    /// Organization owners by user id, and in the order a project's people are listed (by
    /// email, then user id): they reach every project, so pages of them are read in order.
    owners: BTreeMap<Box<str>, u32>,
    owners_in_order: BTreeMap<PersonKey, u32>,
    /// Organization-level roles: every project question needs them.
    org_roles: BTreeSet<u32>,
    /// Users by user id and projects by id, in order: the holders listing walks them.
    users: BTreeMap<Box<str>, u32>,
    projects: BTreeMap<Box<str>, u32>,
}

/// Where a person is listed among a project's people: (email, user id).
type PersonKey = (Option<String>, Option<String>);

/// An item as the model keeps it: the fields the questions follow, as symbols, and of `data`
/// only [`DATA_FIELDS`], as compact JSON text. A parsed map costs a B-tree node (about 600
/// bytes) an item, and a `String` per field its own heap block; the text is parsed again
/// only for the items an answer returns.
struct Stored {
    kind: ItemKind,
    key: Sym,
    parent_id: Option<Sym>,
    subject_id: Option<Sym>,
    email: Option<Sym>,
    role: Option<Sym>,
    status: Option<Sym>,
    data: Box<str>,
}

fn push(map: &mut HashMap<Sym, Vec<u32>>, key: Option<Sym>, slot: u32) {
    if let Some(k) = key {
        map.entry(k).or_default().push(slot);
    }
}

fn pull(map: &mut HashMap<Sym, Vec<u32>>, key: Option<Sym>, slot: u32) {
    if let Some(k) = key
        && let Some(v) = map.get_mut(&k)
    {
        v.retain(|s| *s != slot);
        if v.is_empty() {
            map.remove(&k);
        }
    }
}

impl Head {
    /// An empty head, filled item by item with [`Self::upsert`] as the rows stream in (the
    /// snapshot's rows are never all held at once) and swapped in by [`ReadModel::install`].
    pub(super) fn new(info: HeadInfo) -> Self {
        Head {
            info,
            strings: Strings::default(),
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

    fn text(&self, sym: Option<Sym>) -> Option<&str> {
        self.strings.opt(sym)
    }

    /// The item again (its trimmed `data`).
    fn full(&self, i: &Stored) -> Item {
        let owned = |s: Option<Sym>| self.text(s).map(str::to_owned);
        Item {
            kind: i.kind,
            key: self.strings.str(i.key).to_owned(),
            parent_id: owned(i.parent_id),
            subject_id: owned(i.subject_id),
            email: owned(i.email),
            role: owned(i.role),
            status: owned(i.status),
            // Written by `upsert` from a parsed value: it parses.
            data: serde_json::from_str(&i.data).unwrap_or_default(),
        }
    }

    fn is_owner(&self, i: &Stored) -> bool {
        i.kind == ItemKind::User && self.text(i.role) == Some("owner")
    }

    fn pending_invite(&self, i: &Stored) -> bool {
        i.kind == ItemKind::Invite && self.text(i.status) == Some("pending")
    }

    fn user_id(&self, user: &Stored) -> Box<str> {
        self.strings.str(user.subject_id.unwrap_or(user.key)).into()
    }

    fn person_key(&self, user: &Stored) -> PersonKey {
        let owned = |s: Option<Sym>| self.text(s).map(str::to_owned);
        (owned(user.email), owned(user.subject_id))
    }

    pub(super) fn upsert(&mut self, mut item: Item) {
        if !KINDS.contains(&item.kind) {
            return;
        }
        self.remove(item.kind, &item.key);
        // Pending invites are indexed by the projects they name, read before `data` is text.
        let invited: Vec<Sym> =
            if item.kind == ItemKind::Invite && item.status.as_deref() == Some("pending") {
                invite_projects(&item)
                    .iter()
                    .map(|p| self.strings.intern(&p.id))
                    .collect()
            } else {
                Vec::new()
            };
        if let Value::Object(map) = &mut item.data {
            map.retain(|k, _| DATA_FIELDS.contains(&k.as_str()));
        }
        let s = &mut self.strings;
        let stored = Stored {
            kind: item.kind,
            key: s.intern(&item.key),
            parent_id: s.intern_opt(item.parent_id.as_deref()),
            subject_id: s.intern_opt(item.subject_id.as_deref()),
            email: s.intern_opt(item.email.as_deref()),
            role: s.intern_opt(item.role.as_deref()),
            status: s.intern_opt(item.status.as_deref()),
            data: item.data.to_string().into_boxed_str(),
        };
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.index(slot, &stored, &invited, true);
        self.by_key.insert((stored.kind, stored.key), slot);
        self.slots[slot as usize] = Some(stored);
    }

    fn remove(&mut self, kind: ItemKind, key: &str) {
        let Some(key) = self.strings.get(key) else {
            return;
        };
        let Some(slot) = self.by_key.remove(&(kind, key)) else {
            return;
        };
        if let Some(item) = self.slots[slot as usize].take() {
            let invited: Vec<Sym> = if self.pending_invite(&item) {
                let data = serde_json::from_str(&item.data).unwrap_or_default();
                let invite = Item::new(ItemKind::Invite, "", data);
                invite_projects(&invite)
                    .iter()
                    .filter_map(|p| self.strings.get(&p.id))
                    .collect()
            } else {
                Vec::new()
            };
            self.index(slot, &item, &invited, false);
        }
        self.free.push(slot);
    }

    /// Adds `slot` to (or with `add` false removes it from) the indexes `item` belongs in;
    /// `invited` are the projects a pending invite names.
    fn index(&mut self, slot: u32, item: &Stored, invited: &[Sym], add: bool) {
        let each = if add { push } else { pull };
        each(&mut self.by_subject, item.subject_id, slot);
        each(&mut self.by_parent, item.parent_id, slot);
        each(&mut self.by_email, item.email, slot);
        for &p in invited {
            each(&mut self.invites_by_project, Some(p), slot);
        }
        if self.is_owner(item) {
            let (id, order) = (self.user_id(item), self.person_key(item));
            if add {
                self.owners.insert(id, slot);
                self.owners_in_order.insert(order, slot);
            } else {
                self.owners.remove(&id);
                self.owners_in_order.remove(&order);
            }
        }
        if item.kind == ItemKind::Role && item.parent_id.is_none() {
            if add {
                self.org_roles.insert(slot);
            } else {
                self.org_roles.remove(&slot);
            }
        }
        let id = self.user_id(item);
        let ordered = match item.kind {
            ItemKind::User => Some(&mut self.users),
            ItemKind::Project => Some(&mut self.projects),
            _ => None,
        };
        if let Some(map) = ordered {
            if add {
                map.insert(id, slot);
            } else {
                map.remove(&id);
            }
        }
    }

    fn get_sym(&self, kind: ItemKind, key: Sym) -> Option<(u32, &Stored)> {
        let slot = *self.by_key.get(&(kind, key))?;
        Some((slot, self.item(slot)?))
    }

    /// The items of `kind` among the slots `index` lists under `key`.
    fn find<'a>(
        &'a self,
        index: &'a HashMap<Sym, Vec<u32>>,
        key: Option<Sym>,
        kind: ItemKind,
    ) -> impl Iterator<Item = (u32, &'a Stored)> + 'a {
        key.and_then(|k| index.get(&k))
            .into_iter()
            .flatten()
            .filter_map(move |&s| Some((s, self.item(s)?)))
            .filter(move |(_, i)| i.kind == kind)
    }

    /// The person's user items: by email, or by user id.
    fn users(&self, email: Option<&str>, user_id: Option<&str>) -> Vec<&Stored> {
        let mut users = Vec::new();
        if let Some(e) = email {
            let e = self.strings.get(e);
            users.extend(self.find(&self.by_email, e, ItemKind::User).map(|(_, i)| i));
        }
        if let Some(u) = user_id {
            let u = self.strings.get(u);
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
            let Some(uid) = user.subject_id else {
                continue;
            };
            for kind in [
                ItemKind::User,
                ItemKind::ProjectMember,
                ItemKind::GroupMember,
                ItemKind::ApiKey,
            ] {
                found.extend(self.find(&self.by_subject, Some(uid), kind).map(|(s, _)| s));
            }
            for (_, gm) in self.find(&self.by_subject, Some(uid), ItemKind::GroupMember) {
                let Some(gid) = gm.parent_id else {
                    continue;
                };
                found.extend(self.get_sym(ItemKind::Group, gid).map(|(s, _)| s));
                found.extend(
                    self.find(&self.by_subject, Some(gid), ItemKind::ProjectGroup)
                        .map(|(s, _)| s),
                );
                found.extend(
                    self.find(&self.by_subject, Some(gid), ItemKind::RoleAssignment)
                        .filter(|(_, a)| a.parent_id.is_some())
                        .map(|(s, _)| s),
                );
            }
        }
        for e in emails {
            found.extend(
                self.find(&self.by_email, self.strings.get(e), ItemKind::Invite)
                    .filter(|(_, i)| self.pending_invite(i))
                    .map(|(s, _)| s),
            );
        }
        let held: Vec<&Stored> = found.iter().filter_map(|&s| self.item(s)).collect();
        // Role names held, as symbols: a role object matches by name, subject or key, which
        // are interned in the same table, so equal text is an equal symbol.
        let roles: BTreeSet<Sym> = held.iter().filter_map(|i| i.role).collect();
        let matches = |r: &Stored| {
            roles
                .iter()
                .any(|&name| r.role == Some(name) || r.subject_id == Some(name) || r.key == name)
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
                    if let Some(p) = i.parent_id {
                        more.extend(
                            self.find(&self.by_parent, Some(p), ItemKind::Role)
                                .filter(|(_, r)| matches(r))
                                .map(|(s, _)| s),
                        );
                        projects.insert(p);
                    }
                }
                ItemKind::ApiKey => projects.extend(i.parent_id),
                ItemKind::Invite => projects.extend(
                    invite_projects(&self.full(i))
                        .iter()
                        .filter_map(|p| self.strings.get(&p.id)),
                ),
                _ => {}
            }
        }
        for p in projects {
            more.extend(self.get_sym(ItemKind::Project, p).map(|(s, _)| s));
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
        let pid = self.strings.get(project_id)?;
        let (project, _) = self.get_sym(ItemKind::Project, pid)?;
        let mut found = BTreeSet::new();
        for kind in [
            ItemKind::ProjectMember,
            ItemKind::ProjectGroup,
            ItemKind::ServiceAccount,
            ItemKind::RoleAssignment,
            ItemKind::Role,
        ] {
            found.extend(self.find(&self.by_parent, Some(pid), kind).map(|(s, _)| s));
        }
        for (_, pg) in self.find(&self.by_parent, Some(pid), ItemKind::ProjectGroup) {
            let Some(gid) = pg.subject_id else {
                continue;
            };
            found.extend(self.get_sym(ItemKind::Group, gid).map(|(s, _)| s));
            found.extend(
                self.find(&self.by_parent, Some(gid), ItemKind::GroupMember)
                    .map(|(s, _)| s),
            );
        }
        found.extend(self.invites_by_project.get(&pid).into_iter().flatten());
        // The owners among the people found: their paths merge with the owner's path.
        let mut merged = BTreeSet::new();
        for &s in &found {
            let Some(i) = self.item(s) else { continue };
            match i.kind {
                ItemKind::ProjectMember | ItemKind::GroupMember => {
                    let owner = self.text(i.subject_id).and_then(|u| self.owners.get(u));
                    merged.extend(owner.copied());
                }
                ItemKind::Invite => {
                    let owners = self.find(&self.by_email, i.email, ItemKind::User);
                    merged.extend(owners.filter(|(_, u)| self.is_owner(u)).map(|(s, _)| s));
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
            .filter_map(|&s| self.item(s).map(|i| self.full(i)))
            .collect();
        out.sort_by(|a, b| (a.kind.as_str(), &a.key).cmp(&(b.kind.as_str(), &b.key)));
        out
    }

    fn items_at(&self, slots: impl IntoIterator<Item = u32>) -> Vec<Item> {
        slots
            .into_iter()
            .filter_map(|s| self.item(s).map(|i| self.full(i)))
            .collect()
    }
}

/// Every connection's head, and what has been loaded.
#[derive(Default)]
pub(super) struct ReadModel {
    heads: RwLock<HashMap<ConnectionId, Head>>,
    /// Connections whose new snapshot this replica is committing and loading: a sync is
    /// reported finished here only once its snapshot is also what this replica answers with.
    publishing: std::sync::Mutex<HashMap<ConnectionId, usize>>,
    published: tokio::sync::Notify,
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
    pub(super) fn install(&self, mut head: Head) {
        head.strings.shrink();
        head.slots.shrink_to_fit();
        let f = head.footprint();
        tracing::info!(
            connection_id = %head.info.connection_id,
            sync_id = %head.info.sync_id,
            items = f.items,
            strings = f.strings,
            data_bytes = f.data,
            strings_bytes = f.strings_bytes,
            slots_bytes = f.slots,
            index_bytes = f.indexes,
            "read model loaded a snapshot"
        );
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
            emails.extend(
                users
                    .into_iter()
                    .filter_map(|u| head.text(u.email).map(str::to_owned)),
            );
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
            project: head.full(head.item(project)?),
            items: head.items(&found),
            owners: head.items_at(owners),
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
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut users = head.items_at(
            head.owners
                .range::<str, _>((from, Bound::Unbounded))
                .map(|(_, &s)| s)
                .take(limit + 1),
        );
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

    /// The name of a connection whose snapshot is held.
    pub(super) fn head_name(&self, id: ConnectionId) -> Option<String> {
        self.read().get(&id).map(|h| h.info.name.clone())
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
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let users = head
            .users
            .range::<str, _>((from, Bound::Unbounded))
            .filter(|&(_, &s)| {
                head.item(s)
                    .and_then(|u| head.text(u.role))
                    .is_some_and(|r| roles.iter().any(|x| x == r))
            })
            .map(|(_, &s)| s)
            .take(limit);
        head.items_at(users)
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
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        head.projects
            .range::<str, _>((from, Bound::Unbounded))
            .take(limit)
            .map(|(id, _)| id.to_string())
            .collect()
    }

    /// A project's name in the connection's snapshot.
    pub(super) fn project_name(&self, id: ConnectionId, project_id: &str) -> Option<String> {
        let heads = self.read();
        let head = heads.get(&id)?;
        let item = head.full(head.item(*head.projects.get(project_id)?)?);
        item.data.get("name")?.as_str().map(str::to_owned)
    }
}
