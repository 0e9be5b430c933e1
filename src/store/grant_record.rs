//! A grant as the `grants.data` column keeps it: a versioned record owned by the store, so
//! the API's field names and the domain's state type can change without breaking rows.
//!
//! Version 1 is the flat layout every row written so far has (rows from before the version
//! field read as 1). A change of layout adds a version and a reader for it; rows are never
//! rewritten in place.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::grants::{
    FlatState, Grant, GrantOutcome, GrantState, GrantStatus, GrantTarget, Grantee, PendingOp,
    RevokeOutcome,
};
use crate::domain::{ConnectionId, GrantId};

/// The layout written now.
const VERSION: u32 = 1;

fn v1() -> u32 {
    1
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct GrantRecord {
    #[serde(default = "v1")]
    v: u32,
    id: GrantId,
    connection_id: ConnectionId,
    grantee: Grantee,
    target: GrantTarget,
    reason: String,
    ticket: Option<String>,
    requested_by: String,
    client_id: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    status: GrantStatus,
    outcome: Option<GrantOutcome>,
    previous_role: Option<String>,
    invite_id: Option<String>,
    error: Option<String>,
    upstream_request_id: Option<String>,
    // Added after v1's first rows: absent in older ones.
    #[serde(default, skip_serializing_if = "is_zero")]
    extensions: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy_rule: Option<String>,
    pending: Option<PendingOp>,
    attempts: u32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
    ended_by: Option<String>,
    end_reason: Option<String>,
    end_ticket: Option<String>,
    revoke_outcome: Option<RevokeOutcome>,
}

/// A record of a version this build cannot read (written by a newer one).
#[derive(Debug, thiserror::Error)]
#[error("grant record version {0} is newer than this build reads (up to {VERSION})")]
pub(super) struct UnknownVersion(u32);

impl From<&Grant> for GrantRecord {
    fn from(g: &Grant) -> Self {
        let s = g.flat_state();
        Self {
            v: VERSION,
            id: g.id,
            connection_id: g.connection_id,
            grantee: g.grantee.clone(),
            target: g.target.clone(),
            reason: g.reason.clone(),
            ticket: g.ticket.clone(),
            requested_by: g.requested_by.clone(),
            client_id: g.client_id.clone(),
            expires_at: g.expires_at,
            status: s.status,
            outcome: s.outcome,
            previous_role: g.previous_role.clone(),
            invite_id: g.invite_id.clone(),
            error: s.error,
            upstream_request_id: g.upstream_request_id.clone(),
            extensions: g.extensions,
            policy_rule: g.policy_rule.clone(),
            pending: s.pending,
            attempts: s.attempts,
            created_at: g.created_at,
            updated_at: g.updated_at,
            ended_at: s.ended_at,
            ended_by: s.ended_by,
            end_reason: s.end_reason,
            end_ticket: s.end_ticket,
            revoke_outcome: s.revoke_outcome,
        }
    }
}

impl TryFrom<GrantRecord> for Grant {
    type Error = UnknownVersion;

    fn try_from(r: GrantRecord) -> Result<Self, UnknownVersion> {
        if r.v != 1 {
            return Err(UnknownVersion(r.v));
        }
        let flat = FlatState {
            status: r.status,
            pending: r.pending,
            outcome: r.outcome,
            error: r.error,
            attempts: r.attempts,
            ended_at: r.ended_at,
            ended_by: r.ended_by,
            end_reason: r.end_reason,
            end_ticket: r.end_ticket,
            revoke_outcome: r.revoke_outcome,
        };
        Ok(Grant {
            state: GrantState::from_flat(flat, r.invite_id.as_deref()),
            id: r.id,
            connection_id: r.connection_id,
            grantee: r.grantee,
            target: r.target,
            reason: r.reason,
            ticket: r.ticket,
            requested_by: r.requested_by,
            client_id: r.client_id,
            expires_at: r.expires_at,
            previous_role: r.previous_role,
            invite_id: r.invite_id,
            upstream_request_id: r.upstream_request_id,
            extensions: r.extensions,
            policy_rule: r.policy_rule,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Decodes a `data` column into a grant; a record this build cannot read is a decode error.
pub(super) fn decode(json: sqlx::types::Json<GrantRecord>) -> Result<Grant, sqlx::Error> {
    Grant::try_from(json.0).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row in the layout stored before records had a version.
    const UNVERSIONED_ROW: &str = r#"{"id":"0193a1b2-0000-7000-8000-000000000001",
        "connection_id":"0193a1b2-0000-7000-8000-000000000002",
        "grantee":{"email":"ann@corp.example","user_id":"user-ann","group_id":null},
        "target":{"type":"project","project_id":"proj_1","role":"member"},
        "reason":"on call","ticket":"SEC-1","requested_by":"portal","client_id":null,
        "expires_at":null,"status":"revoked","outcome":"invited","previous_role":null,
        "invite_id":"invite-1","error":null,"upstream_request_id":"req_1","pending":null,
        "attempts":0,"created_at":"2026-11-01T10:00:00Z","updated_at":"2026-11-02T10:00:00Z",
        "ended_at":"2026-11-02T10:00:00Z","ended_by":"alice","end_reason":"done",
        "end_ticket":null,"revoke_outcome":"invite_deleted"}"#;

    #[test]
    fn an_unversioned_row_reads_as_version_one_and_writes_back_the_same() {
        let record: GrantRecord = serde_json::from_str(UNVERSIONED_ROW).unwrap();
        assert_eq!(record.v, 1);
        let grant = Grant::try_from(record).unwrap();
        assert_eq!(grant.status(), GrantStatus::Revoked);
        assert_eq!(grant.outcome(), Some(GrantOutcome::Invited));
        assert_eq!(grant.revoke_outcome(), Some(RevokeOutcome::InviteDeleted));
        assert_eq!(grant.end().map(|e| e.by.as_str()), Some("alice"));
        let mut again = serde_json::to_value(GrantRecord::from(&grant)).unwrap();
        assert_eq!(again["v"], 1);
        again.as_object_mut().unwrap().remove("v");
        let before: serde_json::Value = serde_json::from_str(UNVERSIONED_ROW).unwrap();
        assert_eq!(again, before, "the v1 layout is kept field for field");
    }

    #[test]
    fn a_record_from_a_newer_build_is_refused_not_misread() {
        let mut row: serde_json::Value = serde_json::from_str(UNVERSIONED_ROW).unwrap();
        row["v"] = 2.into();
        let record: GrantRecord = serde_json::from_value(row).unwrap();
        let err = Grant::try_from(record).unwrap_err();
        assert!(err.to_string().contains("version 2"), "{err}");
    }
}
