//! Offboarding: removing a person from one organization (or every connected one) with what
//! they held there. These are the plain types of its record; the work is in
//! `service::offboarding`. Imports nothing of ours but ids.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ConnectionId, GrantId};

/// How the offboarding of one organization ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OffboardStatus {
    /// The person was removed from the organization (and so from its projects).
    Removed,
    /// The person is not (or no longer) in the organization: nothing to remove. Their pending
    /// invites, if any, were still deleted.
    NotAMember,
    /// Refused before anything was written (the last organization owner).
    Refused,
    /// OpenAI failed or refused part way; `error` says why and the lists say what was done.
    Failed,
}

impl OffboardStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Removed => "removed",
            Self::NotAMember => "not_a_member",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

/// A project membership the person held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeldProject {
    /// `proj_…`.
    pub project_id: String,
    /// The project's name.
    pub name: Option<String>,
    /// Their project role.
    pub role: String,
}

/// A project API key the person owned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeldKey {
    /// The key's project.
    pub project_id: String,
    /// `key_…`.
    pub key_id: String,
    /// The key's name.
    pub name: Option<String>,
    /// `sk-proj-…abcd`.
    pub redacted_value: String,
}

/// Why one organization's offboarding was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OffboardError {
    /// The error code the same failure has as a problem (`last_owner`, `upstream_refused`,
    /// `upstream_unavailable`, `connection_not_found`…).
    pub code: String,
    /// What happened, with OpenAI's request id when there is one.
    pub message: String,
}

/// What offboarding did in one organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConnectionOffboarding {
    /// The connection (organization).
    #[schema(value_type = String, format = Uuid)]
    pub connection_id: ConnectionId,
    /// Its name.
    pub connection_name: String,
    /// How it ended.
    pub status: OffboardStatus,
    /// The person's OpenAI user id there, when they were a member.
    pub user_id: Option<String>,
    /// Their organization role before (`owner`, `reader`…).
    pub org_role: Option<String>,
    /// The project memberships they held (all removed with them).
    pub projects: Vec<HeldProject>,
    /// Their project API keys that were deleted (`delete_api_keys: true`).
    pub api_keys_deleted: Vec<HeldKey>,
    /// Their project API keys left in place: without an owner in the project they stop
    /// working (`owner_project_access: inactive`) but still exist.
    pub api_keys_kept: Vec<HeldKey>,
    /// Pending invites for their email that were deleted.
    pub invites_deleted: Vec<String>,
    /// Live grants of theirs on this connection, marked revoked after the removal.
    #[schema(value_type = Vec<String>)]
    pub grants_revoked: Vec<GrantId>,
    /// OpenAI's `x-request-id` of every write, in order.
    pub upstream_request_ids: Vec<String>,
    /// Why it was refused or failed.
    pub error: Option<OffboardError>,
}

/// The record of one offboarding request: one entry per organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Offboarding {
    /// Identifies this offboarding; its audit entries carry it in `detail.offboarding_id`.
    #[schema(format = Uuid)]
    pub id: String,
    /// The person's email (lower-cased), as given or as OpenAI knows them.
    pub email: Option<String>,
    /// The person's OpenAI user id, as given or as found.
    pub user_id: Option<String>,
    /// Whether their project API keys were to be deleted.
    pub delete_api_keys: bool,
    /// Why.
    pub reason: String,
    /// Ticket reference.
    pub ticket: Option<String>,
    /// JWT subject of the caller.
    pub requested_by: String,
    /// When it was done.
    pub at: DateTime<Utc>,
    /// Per organization, in connection order.
    pub connections: Vec<ConnectionOffboarding>,
}

/// Where an offboarding request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Recorded, under way (it goes on when the caller goes away).
    Running,
    /// Finished; `result` says what happened in each organization.
    Succeeded,
    /// Ended with an error for the whole request (`error`); with one organization, a refusal
    /// or an OpenAI failure. Its audit entries say what was done.
    Failed,
}

/// An offboarding request as recorded before anything is done, and its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OffboardingRun {
    /// The offboarding's id (the `detail.offboarding_id` of its audit entries).
    #[schema(format = Uuid)]
    pub id: String,
    /// Where it stands.
    pub status: RunStatus,
    /// JWT subject of the caller.
    pub requested_by: String,
    /// The person's email, as asked.
    pub email: Option<String>,
    /// The person's user id, as asked.
    pub user_id: Option<String>,
    /// The organizations it covers.
    #[schema(value_type = Vec<String>)]
    pub connection_ids: Vec<ConnectionId>,
    /// Whether their API keys are to be deleted.
    pub delete_api_keys: bool,
    /// Why.
    pub reason: String,
    /// Ticket reference.
    pub ticket: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// What was removed, per organization, once it succeeded.
    pub result: Option<Offboarding>,
    /// Why it failed.
    pub error: Option<OffboardError>,
}
