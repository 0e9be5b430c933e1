//! The changes feed: what differs between two successive snapshots of an organization's
//! inventory, one [`Change`] per item added, removed or changed, and the typed event a portal
//! reads from it (`project_member.role_changed`, `project.archived`, ...).
//!
//! A change is *drift* unless openai-governor made it itself: a write through the service first
//! records an [`ExpectedChange`], and the diff marks the change it then observes `by_governor`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ConnectionId, ItemKind, SyncId};

/// How an item differs between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// In the new snapshot only.
    Added,
    /// In the old snapshot only.
    Removed,
    /// In both, with a different role, status, email, parent or subject.
    Changed,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Changed => "changed",
        }
    }
}

impl FromStr for ChangeKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "added" => Ok(Self::Added),
            "removed" => Ok(Self::Removed),
            "changed" => Ok(Self::Changed),
            _ => Err(()),
        }
    }
}

/// The second half of an event name: what happened to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventVerb {
    Added,
    Removed,
    /// A project's status became `archived`.
    Archived,
    /// A project's status left `archived`.
    Unarchived,
    RoleChanged,
    /// The status differs (invite accepted or expired, key access, ...).
    StatusChanged,
    /// Only the email, parent or subject differs.
    Updated,
}

impl EventVerb {
    pub const ALL: [EventVerb; 7] = [
        Self::Added,
        Self::Removed,
        Self::Archived,
        Self::Unarchived,
        Self::RoleChanged,
        Self::StatusChanged,
        Self::Updated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed => "removed",
            Self::Archived => "archived",
            Self::Unarchived => "unarchived",
            Self::RoleChanged => "role_changed",
            Self::StatusChanged => "status_changed",
            Self::Updated => "updated",
        }
    }
}

/// A typed event name, `<kind>.<verb>`: `user.added`, `project.archived`,
/// `project_member.role_changed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChangeEvent {
    pub kind: ItemKind,
    pub verb: EventVerb,
}

impl fmt::Display for ChangeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind.as_str(), self.verb.as_str())
    }
}

impl FromStr for ChangeEvent {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (kind, verb) = s.split_once('.').ok_or(())?;
        let kind: ItemKind = kind.parse()?;
        let verb = EventVerb::ALL
            .into_iter()
            .find(|v| v.as_str() == verb)
            .ok_or(())?;
        let project_only = matches!(verb, EventVerb::Archived | EventVerb::Unarchived);
        if project_only && kind != ItemKind::Project {
            return Err(());
        }
        Ok(ChangeEvent { kind, verb })
    }
}

/// The verb of a change, from what differs. The store's `event` filter mirrors these rules
/// in SQL (`store/changes_sql.rs`, `verb_condition`); the conformance suite checks they agree.
pub fn event_verb(
    kind: ItemKind,
    change: ChangeKind,
    role: (Option<&str>, Option<&str>),
    status: (Option<&str>, Option<&str>),
) -> EventVerb {
    match change {
        ChangeKind::Added => EventVerb::Added,
        ChangeKind::Removed => EventVerb::Removed,
        ChangeKind::Changed => {
            let archived = |s: Option<&str>| s == Some("archived");
            if kind == ItemKind::Project && archived(status.1) && !archived(status.0) {
                EventVerb::Archived
            } else if kind == ItemKind::Project && archived(status.0) && !archived(status.1) {
                EventVerb::Unarchived
            } else if role.0 != role.1 {
                EventVerb::RoleChanged
            } else if status.0 != status.1 {
                EventVerb::StatusChanged
            } else {
                EventVerb::Updated
            }
        }
    }
}

/// Identifier of a change: increases with each change recorded (the feed's cursor).
pub type ChangeId = i64;

/// One difference between a connection's previous and new snapshot. Parent, subject and
/// email are the new values when the item changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Its place in the feed: dense, in commit order.
    pub id: ChangeId,
    /// The previous change of the same connection (`None` for its first).
    pub previous_id: Option<ChangeId>,
    pub connection_id: ConnectionId,
    pub sync_id: SyncId,
    /// When that sync finished: the change happened between the previous sync and then.
    pub seen_at: DateTime<Utc>,
    pub kind: ItemKind,
    pub key: String,
    pub change: ChangeKind,
    pub parent_id: Option<String>,
    pub subject_id: Option<String>,
    pub email: Option<String>,
    pub role_before: Option<String>,
    pub role_after: Option<String>,
    pub status_before: Option<String>,
    pub status_after: Option<String>,
    /// The object as the previous sync saw it.
    pub before: Option<serde_json::Value>,
    /// The object as this sync saw it.
    pub after: Option<serde_json::Value>,
    /// Made through openai-governor (an expected change matched); otherwise drift.
    pub by_governor: bool,
}

impl Change {
    pub fn event(&self) -> ChangeEvent {
        ChangeEvent {
            kind: self.kind,
            verb: event_verb(
                self.kind,
                self.change,
                (self.role_before.as_deref(), self.role_after.as_deref()),
                (self.status_before.as_deref(), self.status_after.as_deref()),
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChangeQuery {
    pub connection_id: Option<ConnectionId>,
    pub kind: Option<ItemKind>,
    pub event: Option<ChangeEvent>,
    /// Only changes seen at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// `Some(true)`: drift only; `Some(false)`: changes made by openai-governor only.
    pub drift: Option<bool>,
    /// Cursor: the last id of the previous page.
    pub after: Option<ChangeId>,
    pub limit: u32,
}

/// A change openai-governor is about to make in an organization, so that the sync which
/// observes it marks it `by_governor` instead of drift. `role` / `status`, when given, must
/// match the item's new values (ignored for removals).
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedChange {
    pub connection_id: ConnectionId,
    pub kind: ItemKind,
    /// The item's key as the inventory will hold it (e.g. `proj_1/user_1`).
    pub key: String,
    pub change: ChangeKind,
    pub role: Option<String>,
    pub status: Option<String>,
    /// After this time the expectation no longer matches (a sync must see it before).
    pub until: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb(
        kind: ItemKind,
        role: (Option<&str>, Option<&str>),
        status: (Option<&str>, Option<&str>),
    ) -> String {
        ChangeEvent {
            kind,
            verb: event_verb(kind, ChangeKind::Changed, role, status),
        }
        .to_string()
    }

    #[test]
    fn events_name_what_differs() {
        assert_eq!(
            verb(
                ItemKind::Project,
                (None, None),
                (Some("active"), Some("archived"))
            ),
            "project.archived"
        );
        assert_eq!(
            verb(
                ItemKind::Project,
                (None, None),
                (Some("archived"), Some("active"))
            ),
            "project.unarchived"
        );
        assert_eq!(
            verb(
                ItemKind::ProjectMember,
                (Some("member"), Some("owner")),
                (None, None)
            ),
            "project_member.role_changed"
        );
        assert_eq!(
            verb(
                ItemKind::Invite,
                (Some("reader"), Some("reader")),
                (Some("pending"), Some("accepted"))
            ),
            "invite.status_changed"
        );
        assert_eq!(
            verb(
                ItemKind::User,
                (Some("reader"), Some("reader")),
                (None, None)
            ),
            "user.updated"
        );
        let added = event_verb(
            ItemKind::ApiKey,
            ChangeKind::Added,
            (None, None),
            (None, None),
        );
        assert_eq!(added, EventVerb::Added);
    }

    #[test]
    fn event_names_round_trip() {
        for kind in ItemKind::ALL {
            for verb in EventVerb::ALL {
                let event = ChangeEvent { kind, verb };
                let parsed = event.to_string().parse::<ChangeEvent>();
                if matches!(verb, EventVerb::Archived | EventVerb::Unarchived)
                    && kind != ItemKind::Project
                {
                    assert!(parsed.is_err(), "{event}");
                } else {
                    assert_eq!(parsed, Ok(event));
                }
            }
        }
        assert!("user".parse::<ChangeEvent>().is_err());
        assert!("user.joined".parse::<ChangeEvent>().is_err());
        assert!("nope.added".parse::<ChangeEvent>().is_err());
    }
}
