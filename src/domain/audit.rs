//! The audit trail: one [`AuditEntry`] for every change openai-governor makes or attempts
//! (connections, keys, tests, syncs, grants, revocations, expiries, offboarding), appended and
//! never changed. Entries name who (JWT subject and client), what, on which target, why (reason,
//! ticket), how it ended, OpenAI's request id, and the access before and after.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ConnectionId, GrantId};

/// The subject recorded for changes the service makes on its own (scheduled syncs, expiry,
/// reconciliation after a crash).
pub const SYSTEM_ACTOR: &str = "openai-governor";

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum AuditAction {
    /// A connection was created.
    #[serde(rename = "connection.created")]
    ConnectionCreated,
    /// A connection's name, URL or expected organization changed.
    #[serde(rename = "connection.updated")]
    ConnectionUpdated,
    /// A connection's admin key was replaced.
    #[serde(rename = "connection.key_replaced")]
    ConnectionKeyReplaced,
    /// A connection (and its sealed key) was deleted.
    #[serde(rename = "connection.deleted")]
    ConnectionDeleted,
    /// A connection was tested.
    #[serde(rename = "connection.tested")]
    ConnectionTested,
    /// A sync run ended (succeeded or failed).
    #[serde(rename = "sync.finished")]
    SyncFinished,
    /// Access was granted (or found already held, or an invite sent).
    #[serde(rename = "grant.created")]
    GrantCreated,
    /// An invite sent for a grant was accepted, so the grant became active.
    #[serde(rename = "grant.activated")]
    GrantActivated,
    /// A grant's expiry was changed.
    #[serde(rename = "grant.extended")]
    GrantExtended,
    /// A grant was revoked on request.
    #[serde(rename = "grant.revoked")]
    GrantRevoked,
    /// A grant was revoked by the expiry worker.
    #[serde(rename = "grant.expired")]
    GrantExpired,
    /// A write whose outcome was unknown (crash, timeout) was resolved by reading OpenAI.
    #[serde(rename = "grant.reconciled")]
    GrantReconciled,
    /// Access not tied to a grant was revoked.
    #[serde(rename = "access.revoked")]
    AccessRevoked,
    /// A person was removed from an organization with everything they held.
    #[serde(rename = "user.offboarded")]
    UserOffboarded,
    /// An offboarding was recorded, before anything was sent to OpenAI.
    #[serde(rename = "offboarding.started")]
    OffboardingStarted,
}

impl AuditAction {
    /// Every action.
    pub const ALL: [AuditAction; 15] = [
        Self::ConnectionCreated,
        Self::ConnectionUpdated,
        Self::ConnectionKeyReplaced,
        Self::ConnectionDeleted,
        Self::ConnectionTested,
        Self::SyncFinished,
        Self::GrantCreated,
        Self::GrantActivated,
        Self::GrantExtended,
        Self::GrantRevoked,
        Self::GrantExpired,
        Self::GrantReconciled,
        Self::AccessRevoked,
        Self::UserOffboarded,
        Self::OffboardingStarted,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionCreated => "connection.created",
            Self::ConnectionUpdated => "connection.updated",
            Self::ConnectionKeyReplaced => "connection.key_replaced",
            Self::ConnectionDeleted => "connection.deleted",
            Self::ConnectionTested => "connection.tested",
            Self::SyncFinished => "sync.finished",
            Self::GrantCreated => "grant.created",
            Self::GrantActivated => "grant.activated",
            Self::GrantExtended => "grant.extended",
            Self::GrantRevoked => "grant.revoked",
            Self::GrantExpired => "grant.expired",
            Self::GrantReconciled => "grant.reconciled",
            Self::AccessRevoked => "access.revoked",
            Self::UserOffboarded => "user.offboarded",
            Self::OffboardingStarted => "offboarding.started",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditAction {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|a| a.as_str() == s).ok_or(())
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Done: the access (or the record) changed.
    Succeeded,
    /// Nothing needed doing: the access was already as asked.
    Unchanged,
    /// Waiting on someone else (an invite to accept).
    Pending,
    /// Refused or failed; `detail.message` says why.
    Failed,
}

impl AuditOutcome {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Unchanged => "unchanged",
            Self::Pending => "pending",
            Self::Failed => "failed",
        }
    }
}

impl FromStr for AuditOutcome {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "succeeded" => Ok(Self::Succeeded),
            "unchanged" => Ok(Self::Unchanged),
            "pending" => Ok(Self::Pending),
            "failed" => Ok(Self::Failed),
            _ => Err(()),
        }
    }
}

/// One change made or attempted, as it is appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// Who: the caller's JWT subject, or `openai-governor` for the service's own work.
    pub actor: String,
    /// The caller's OAuth client, when the token names one.
    pub client_id: Option<String>,
    /// What.
    pub action: AuditAction,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The connection (organization) it concerns.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub connection_id: Option<ConnectionId>,
    /// The grant it concerns.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub grant_id: Option<GrantId>,
    /// The person whose access changed (OpenAI user id), when known.
    pub user_id: Option<String>,
    /// The person's email (lower-cased), when known.
    pub email: Option<String>,
    /// The project whose access changed.
    pub project_id: Option<String>,
    /// The group whose membership changed, or the group that was granted access.
    pub group_id: Option<String>,
    /// Why, as the caller gave it.
    pub reason: Option<String>,
    /// The caller's ticket reference (`SEC-123`).
    pub ticket: Option<String>,
    /// OpenAI's `x-request-id` of the write, when one was made.
    pub upstream_request_id: Option<String>,
    /// The access before the change (for example `{"project_role": "member"}`), when known.
    pub before: Option<serde_json::Value>,
    /// The access after the change.
    pub after: Option<serde_json::Value>,
    /// Anything else worth keeping: an error message, counts, the sync id.
    pub detail: Option<serde_json::Value>,
}

impl AuditEntry {
    /// An entry with only who, what and how filled in; the rest is set field by field.
    pub fn new(
        at: DateTime<Utc>,
        actor: impl Into<String>,
        client_id: Option<String>,
        action: AuditAction,
        outcome: AuditOutcome,
    ) -> Self {
        Self {
            at,
            actor: actor.into(),
            client_id,
            action,
            outcome,
            connection_id: None,
            grant_id: None,
            user_id: None,
            email: None,
            project_id: None,
            group_id: None,
            reason: None,
            ticket: None,
            upstream_request_id: None,
            before: None,
            after: None,
            detail: None,
        }
    }
}

/// Position of an entry in the log: increasing in append order, the pagination cursor.
pub type AuditId = i64;

/// An appended entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// Its position in the log.
    pub id: AuditId,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// Filters of an audit read; every `None` matches all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// One connection.
    pub connection_id: Option<ConnectionId>,
    /// One actor (JWT subject).
    pub actor: Option<String>,
    /// One person, by email (compared lower-cased).
    pub email: Option<String>,
    /// One person, by OpenAI user id.
    pub user_id: Option<String>,
    /// One project.
    pub project_id: Option<String>,
    /// One grant.
    pub grant_id: Option<GrantId>,
    /// One action.
    pub action: Option<AuditAction>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Cursor: entries after this id.
    pub after: Option<AuditId>,
    /// Page size.
    pub limit: u32,
}
