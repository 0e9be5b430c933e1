//! The inventory of a connected organization as we keep it: a snapshot of items per sync, and
//! the sync runs that produce snapshots. Every kind of object is one [`Item`]: the object as
//! OpenAI described it (`data`) plus the few fields portals filter and join on. One shape
//! keeps the store, the diff between snapshots and the read API the same for every kind.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ConnectionId;

/// What an item is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// An organization member (`organization.user`); subject = its id.
    User,
    /// An invite, with the projects it will grant.
    Invite,
    /// A project, archived ones included (status `active` / `archived`).
    Project,
    /// A user's membership of a project; parent = project, subject = user.
    ProjectMember,
    /// A group's access to a project; parent = project, subject = group.
    ProjectGroup,
    /// A project service account; parent = project.
    ServiceAccount,
    /// A project API key; parent = project, subject = owner (user or service account),
    /// status = `owner_project_access`.
    ApiKey,
    /// An RBAC group.
    Group,
    /// A user's membership of a group; parent = group, subject = user.
    GroupMember,
    /// An RBAC role: organization roles keyed by id; project roles (`/projects/{p}/roles`)
    /// keyed `project/id` with parent = project. subject = role id, role = name, status =
    /// resource type.
    Role,
    /// A role assigned to a group or user, keyed `scope/principal_type/principal/role_id`
    /// (scope `organization` or a project id); parent = project (none at organization
    /// level), subject = the group or user, role = role name, status = `group` / `user`.
    RoleAssignment,
    /// An admin API key (redacted).
    AdminKey,
    /// One day's cost of one project and line item; parent = project.
    Cost,
}

impl ItemKind {
    /// Every kind, in the order a sync reports them.
    pub const ALL: [ItemKind; 13] = [
        Self::User,
        Self::Invite,
        Self::Project,
        Self::ProjectMember,
        Self::ProjectGroup,
        Self::ServiceAccount,
        Self::ApiKey,
        Self::Group,
        Self::GroupMember,
        Self::Role,
        Self::RoleAssignment,
        Self::AdminKey,
        Self::Cost,
    ];

    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Invite => "invite",
            Self::Project => "project",
            Self::ProjectMember => "project_member",
            Self::ProjectGroup => "project_group",
            Self::ServiceAccount => "service_account",
            Self::ApiKey => "api_key",
            Self::Group => "group",
            Self::GroupMember => "group_member",
            Self::Role => "role",
            Self::RoleAssignment => "role_assignment",
            Self::AdminKey => "admin_key",
            Self::Cost => "cost",
        }
    }
}

impl FromStr for ItemKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item<D = serde_json::Value> {
    pub kind: ItemKind,
    /// Unique among the items of its kind in one snapshot (an id, or `parent/id`).
    pub key: String,
    /// The project or group it belongs to.
    pub parent_id: Option<String>,
    /// The user, group or service account it is about.
    pub subject_id: Option<String>,
    /// The person's email, lower-cased (users, invites, memberships, user-owned keys).
    pub email: Option<String>,
    /// Role name (org role, project role, role of a membership).
    pub role: Option<String>,
    /// Kind-specific state (project status, invite status, key owner access, role level).
    pub status: Option<String>,
    /// The object as OpenAI returned it: parsed, or as the store's JSON text ([`DataText`]).
    pub data: D,
}

/// An item's `data` as the store holds it: JSON text, passed through to a page's answer
/// without being parsed and serialized again (that was most of what serving a page cost).
pub type DataText = Box<serde_json::value::RawValue>;

impl Item<DataText> {
    /// The item with its `data` parsed.
    pub fn parsed(self) -> Item {
        Item {
            // Text the store read as valid JSON parses (into `null` were it ever not).
            data: serde_json::from_str(self.data.get()).unwrap_or_default(),
            kind: self.kind,
            key: self.key,
            parent_id: self.parent_id,
            subject_id: self.subject_id,
            email: self.email,
            role: self.role,
            status: self.status,
        }
    }
}

impl Item {
    /// An item of `kind` keyed by `key`, holding `data`; role, status and email are taken
    /// from `data`'s `role`, `status` and `email` fields when they are strings.
    pub fn new(kind: ItemKind, key: impl Into<String>, data: serde_json::Value) -> Item {
        let text = |field: &str| data.get(field).and_then(|v| v.as_str()).map(str::to_owned);
        Item {
            kind,
            key: key.into(),
            parent_id: None,
            subject_id: None,
            email: text("email").map(|e| e.to_lowercase()),
            role: text("role"),
            status: text("status"),
            data,
        }
    }

    pub fn parent(mut self, id: impl Into<String>) -> Item {
        self.parent_id = Some(id.into());
        self
    }

    pub fn subject(mut self, id: impl Into<String>) -> Item {
        self.subject_id = Some(id.into());
        self
    }

    pub fn email(mut self, email: Option<&str>) -> Item {
        if let Some(e) = email {
            self.email = Some(e.to_lowercase());
        }
        self
    }

    pub fn role(mut self, role: Option<String>) -> Item {
        self.role = role;
        self
    }

    pub fn status(mut self, status: Option<String>) -> Item {
        self.status = status;
        self
    }
}

/// Identifier of a sync run (and of the snapshot it produced). UUIDv7: sorts by start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SyncId(pub Uuid);

impl SyncId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for SyncId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SyncId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for SyncId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Where a sync run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// Fetching; readers still see the previous snapshot.
    Running,
    /// Its snapshot replaced the previous one.
    Succeeded,
    /// Nothing changed for readers; `error` says why.
    Failed,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for SyncStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "running" => Ok(Self::Running),
            "succeeded" => Ok(Self::Succeeded),
            "failed" => Ok(Self::Failed),
            _ => Err(()),
        }
    }
}

/// How a sync run read the organization.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Everything, list by list.
    #[default]
    Full,
    /// Only what the audit log says changed since the previous sync; the rest carried over.
    Incremental,
}

/// Where the audit log had got to when a sync read it: the next incremental sync reads from
/// `effective_at` on, skipping the events at that second it already accounted for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditMark {
    /// The newest event's time (Unix seconds).
    pub effective_at: i64,
    /// The events at that second already accounted for (the log's resolution is a second).
    pub ids: Vec<String>,
}

impl AuditMark {
    /// Whether an event was accounted for by the sync that set this mark.
    pub fn covers(&self, id: &str, effective_at: i64) -> bool {
        effective_at < self.effective_at
            || (effective_at == self.effective_at && self.ids.iter().any(|i| i == id))
    }

    /// The mark after reading `events` (newest first) from this one.
    pub fn advance<'a>(&self, events: impl IntoIterator<Item = (&'a str, i64)>) -> AuditMark {
        let mut next = self.clone();
        for (id, at) in events {
            if at > next.effective_at {
                next = AuditMark {
                    effective_at: at,
                    ids: Vec::new(),
                };
            }
            if at == next.effective_at && !next.ids.iter().any(|i| i == id) {
                next.ids.push(id.to_owned());
            }
        }
        next
    }
}

/// What a sync run cost and found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct SyncStats {
    /// Full or incremental.
    pub mode: SyncMode,
    /// Why a full sync was made rather than an incremental one.
    pub full_reason: Option<String>,
    /// Audit-log events read (incremental syncs).
    pub audit_events: u64,
    /// The newest audit-log event accounted for (`None` when the audit log cannot be read:
    /// the next sync is full again).
    pub audit_mark: Option<AuditMark>,
    /// When the last full sync this snapshot builds on started.
    pub last_full_at: Option<DateTime<Utc>>,
    /// Items fetched per kind.
    pub counts: BTreeMap<ItemKind, u64>,
    /// HTTP requests sent to OpenAI, retries included.
    pub upstream_requests: u64,
    /// 429 answers met.
    pub rate_limited: u64,
    /// Where the time went: OpenAI, our rate budget or the store.
    pub time: Option<SyncTime>,
    /// Parts of the inventory the key cannot read (kind → why), e.g. costs without
    /// `api.usage.read`. The sync still succeeds; those kinds stay empty.
    pub skipped: BTreeMap<ItemKind, String>,
    /// Changes recorded against the previous snapshot (see `/v1/changes`); `null` for the
    /// first sync of a connection (the baseline) and for failed syncs.
    #[serde(default)]
    pub changes: Option<u64>,
}

/// Where a sync's time went. Request times are summed over the requests (several are in
/// flight at once, so they add up to more than the wall time); the store's is the writer's,
/// which writes one batch at a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct SyncTime {
    /// From the start of the fetch to the last write.
    pub wall_ms: u64,
    /// Requests waiting for the rate budget: pauses after 429s, a learned window spent.
    pub budget_wait_ms: u64,
    /// Requests waiting for a free slot (the client's cap on requests in flight).
    pub slot_wait_ms: u64,
    /// Requests waiting for OpenAI's answers.
    pub upstream_ms: u64,
    /// The store writing what was fetched.
    pub writing_ms: u64,
    /// What held the sync back most: `store` when the writer was busy for most of the wall
    /// time, else the longest of the requests' waits: `rate_budget` (OpenAI's limits, as
    /// learned), `concurrency` (our cap on requests in flight) or `openai` (its answers).
    pub limited_by: String,
}

impl SyncTime {
    pub fn new(
        wall: Duration,
        budget_wait: Duration,
        slot_wait: Duration,
        upstream: Duration,
        writing: Duration,
    ) -> Self {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let limited_by = if writing.as_secs_f64() >= 0.8 * wall.as_secs_f64() {
            "store"
        } else if budget_wait >= slot_wait && budget_wait > upstream {
            "rate_budget"
        } else if slot_wait > upstream {
            "concurrency"
        } else {
            "openai"
        };
        SyncTime {
            wall_ms: ms(wall),
            budget_wait_ms: ms(budget_wait),
            slot_wait_ms: ms(slot_wait),
            upstream_ms: ms(upstream),
            writing_ms: ms(writing),
            limited_by: limited_by.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncRun {
    pub id: SyncId,
    pub connection_id: ConnectionId,
    pub status: SyncStatus,
    /// Who asked (JWT subject, or `scheduler`).
    pub requested_by: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Counts and costs (final once finished).
    pub stats: SyncStats,
    pub error: Option<String>,
}

impl SyncRun {
    pub fn start(connection_id: ConnectionId, requested_by: &str, at: DateTime<Utc>) -> SyncRun {
        SyncRun {
            id: SyncId::new(),
            connection_id,
            status: SyncStatus::Running,
            requested_by: requested_by.to_owned(),
            started_at: at,
            finished_at: None,
            stats: SyncStats::default(),
            error: None,
        }
    }
}

/// Items of the previous snapshot that an incremental sync fetched again, so they are not
/// carried over (their fresh versions, if any, are inserted instead).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Replaced {
    /// Every item of a kind (e.g. all invites).
    Kind(ItemKind),
    Key(ItemKind, String),
    /// The items of a kind under a project or group (e.g. one project's members).
    Parent(ItemKind, String),
    /// The items of a kind about one subject (e.g. a removed user's memberships).
    Subject(ItemKind, String),
    /// The items of a kind whose key starts with a prefix (`organization/group/group_1/`).
    Prefix(ItemKind, String),
}

/// Which items of a connection's current snapshot to read.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemQuery {
    pub kind: ItemKind,
    pub parent_id: Option<String>,
    pub subject_id: Option<String>,
    /// Only items of this email (compared lower-cased).
    pub email: Option<String>,
    pub role: Option<String>,
    pub status: Option<String>,
    /// Cursor: the last key of the previous page.
    pub after: Option<String>,
    pub limit: u32,
}

impl ItemQuery {
    pub fn all(kind: ItemKind, limit: u32) -> ItemQuery {
        ItemQuery {
            kind,
            parent_id: None,
            subject_id: None,
            email: None,
            role: None,
            status: None,
            after: None,
            limit,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ItemPage<D = serde_json::Value> {
    /// The sync whose snapshot answered (`None` before the first successful sync).
    pub sync_id: Option<SyncId>,
    pub synced_at: Option<DateTime<Utc>>,
    pub items: Vec<Item<D>>,
}

impl ItemPage<DataText> {
    /// The page with its items' `data` parsed.
    pub fn parsed(self) -> ItemPage {
        ItemPage {
            sync_id: self.sync_id,
            synced_at: self.synced_at,
            items: self.items.into_iter().map(Item::parsed).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_portals_filter_on_come_from_the_object() {
        let item = Item::new(
            ItemKind::ProjectMember,
            "proj_1/user_1",
            json!({"id": "user_1", "email": "Ada@Example.com", "role": "owner"}),
        )
        .parent("proj_1")
        .subject("user_1");
        assert_eq!(item.email.as_deref(), Some("ada@example.com"));
        assert_eq!(item.role.as_deref(), Some("owner"));
        assert_eq!(item.status, None);
        assert_eq!(item.parent_id.as_deref(), Some("proj_1"));
    }

    #[test]
    fn audit_marks_skip_what_was_seen_at_their_second_only() {
        let start = AuditMark::default().advance([("e3", 20), ("e2", 20), ("e1", 10)]);
        assert_eq!(start.effective_at, 20);
        assert_eq!(start.ids, ["e3", "e2"]);
        assert!(start.covers("e2", 20) && start.covers("e0", 19));
        assert!(!start.covers("e4", 20), "another event in the same second");
        let next = start.advance([("e4", 20)]);
        assert_eq!(next.ids, ["e3", "e2", "e4"]);
        let later = next.advance([("e6", 31), ("e5", 30)]);
        assert_eq!(
            (later.effective_at, later.ids.clone()),
            (31, vec!["e6".to_owned()])
        );
        assert_eq!(later.advance([]), later, "no events: unchanged");
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in ItemKind::ALL {
            assert_eq!(kind.as_str().parse::<ItemKind>(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                json!(kind.as_str()),
                "serde and as_str agree"
            );
        }
        assert!("nope".parse::<ItemKind>().is_err());
    }
}
