//! Grants: a request for access ("alice@corp, member of project X, 8 hours, ticket SEC-123")
//! and the truth about what became of it. The rules here decide what a grant must do given
//! what OpenAI says the person holds now ([`plan_grant`], [`plan_revoke`]);
//! the service reads that state, records the intent, writes, and records the outcome.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ConnectionId, GrantId};

/// The predefined project roles; any other name must be a custom project role.
pub const PROJECT_ROLES: [&str; 2] = ["owner", "member"];

/// Where a grant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    /// Recorded; the write to OpenAI is under way (or its outcome is being reconciled).
    Pending,
    /// The person holds the access.
    Active,
    /// An organization invite naming the project was sent; active once accepted.
    Invited,
    /// OpenAI refused, the invite expired, or the grant could not be carried out; see `error`.
    Failed,
    /// Revoked on request.
    Revoked,
    /// Revoked at its expiry.
    Expired,
}

impl GrantStatus {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Invited => "invited",
            Self::Failed => "failed",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    /// Whether the grant still holds (or is about to hold) access that a revoke would undo.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Pending | Self::Active | Self::Invited)
    }
}

impl FromStr for GrantStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            Self::Pending,
            Self::Active,
            Self::Invited,
            Self::Failed,
            Self::Revoked,
            Self::Expired,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or(())
    }
}

impl fmt::Display for GrantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What granting did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantOutcome {
    /// The access was added.
    Granted,
    /// The person was a member with another role; the role was changed.
    RoleChanged,
    /// The person already held exactly this access: nothing was written.
    AlreadyHeld,
    /// The person is not in the organization: an invite naming the project was sent.
    Invited,
}

/// What revoking did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevokeOutcome {
    /// The access this grant added was removed.
    Removed,
    /// The role this grant changed was set back to what it was.
    RoleRestored,
    /// The pending invite was deleted.
    InviteDeleted,
    /// The access was already gone (OpenAI said "not a member"): nothing to remove.
    AlreadyAbsent,
    /// The person held this access before the grant: revoking leaves it as it was.
    NothingToUndo,
}

/// Who receives the access: a person, or a group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Grantee {
    /// The person's email (lower-cased); needed to invite someone who is not yet a member.
    pub email: Option<String>,
    /// The person's OpenAI user id (`user-…`), when known.
    pub user_id: Option<String>,
    /// Or a group (`group_…`): the access goes to everyone in it.
    #[serde(default)]
    pub group_id: Option<String>,
}

/// What access is granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GrantTarget {
    /// Membership of a project with a role: `owner`, `member` or a custom project role.
    Project {
        /// The project (`proj_…`).
        project_id: String,
        /// The role.
        role: String,
    },
    /// Membership of a group (`group_…`), and so whatever the group holds.
    Group {
        /// The group.
        group_id: String,
    },
    /// An RBAC role assigned to the person: an organization role, or (with `project_id`) a
    /// role in one project.
    Role {
        /// The role (`role_…`).
        role_id: String,
        /// The project, for a project-level assignment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        project_id: Option<String>,
    },
    /// The person's organization role: `owner` or `reader`.
    OrganizationRole {
        /// The role.
        role: String,
    },
}

impl GrantTarget {
    /// The project a target is about: a project membership's, or a project-level role's.
    pub fn project_id(&self) -> Option<&str> {
        match self {
            Self::Project { project_id, .. } => Some(project_id),
            Self::Role { project_id, .. } => project_id.as_deref(),
            Self::Group { .. } | Self::OrganizationRole { .. } => None,
        }
    }

    /// The group of a group target.
    pub fn group_id(&self) -> Option<&str> {
        match self {
            Self::Group { group_id } => Some(group_id),
            _ => None,
        }
    }

    /// What is held once granted: the project or organization role, `member` for a group
    /// membership, the role id for a role assignment.
    pub fn role(&self) -> &str {
        match self {
            Self::Project { role, .. } | Self::OrganizationRole { role } => role,
            Self::Group { .. } => "member",
            Self::Role { role_id, .. } => role_id,
        }
    }

    /// The thing granted, for messages: the project, group, role or organization.
    pub fn name(&self) -> &str {
        match self {
            Self::Project { project_id, .. } => project_id,
            Self::Group { group_id } => group_id,
            Self::Role { role_id, .. } => role_id,
            Self::OrganizationRole { .. } => "the organization",
        }
    }
}

/// A write in flight: recorded before the call to OpenAI, cleared with the outcome. A grant
/// found with one after its lease ran out was interrupted (crash) and is reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PendingOp {
    /// Granting.
    Apply,
    /// Revoking on request.
    Revoke,
    /// Revoking at expiry.
    Expire,
}

impl PendingOp {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Revoke => "revoke",
            Self::Expire => "expire",
        }
    }
}

/// A grant and everything that happened to it. Not a wire type: the API shows it through its
/// own type and the store keeps it as a versioned record, so each can change on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub id: GrantId,
    pub connection_id: ConnectionId,
    /// `user_id` and `email` become what OpenAI calls the person once they are found.
    pub grantee: Grantee,
    pub target: GrantTarget,
    pub reason: String,
    pub ticket: Option<String>,
    /// The JWT subject that asked, and its OAuth client.
    pub requested_by: String,
    pub client_id: Option<String>,
    /// When the access is revoked by itself (`None`: until revoked).
    pub expires_at: Option<DateTime<Utc>>,
    pub state: GrantState,
    /// What the person held of the target before (see [`AccessState::held`]; `None`:
    /// nothing), so that a revoke restores it.
    pub previous_role: Option<String>,
    /// The organization invite sent for this grant, when the person was not a member.
    pub invite_id: Option<String>,
    /// OpenAI's request id of the last write.
    pub upstream_request_id: Option<String>,
    /// How many times the expiry was changed (policies cap it).
    pub extensions: u32,
    /// The policy rule that allowed the grant (`None` without a policy).
    pub policy_rule: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Grant {
    /// The key of the access this grant is about: two grants with the same key touch the same
    /// membership, so only one write on it is in flight at a time.
    pub fn access_key(&self) -> String {
        access_key(self.connection_id, &self.grantee, &self.target)
    }
}

/// See [`Grant::access_key`]: the person by email when known (what requests name), else id.
pub fn access_key(connection: ConnectionId, who: &Grantee, target: &GrantTarget) -> String {
    let person = match (&who.group_id, &who.email, &who.user_id) {
        (Some(g), _, _) => format!("group:{}", g.to_lowercase()),
        (None, Some(e), _) => format!("email:{}", e.to_lowercase()),
        (None, None, Some(u)) => format!("user:{u}"),
        (None, None, None) => String::new(),
    };
    let what = match target {
        GrantTarget::Project { project_id, .. } => format!("project:{}", project_id.to_lowercase()),
        GrantTarget::Group { group_id } => format!("group:{}", group_id.to_lowercase()),
        GrantTarget::Role {
            role_id,
            project_id,
        } => format!(
            "role:{}@{}",
            role_id.to_lowercase(),
            project_id
                .as_deref()
                .unwrap_or("organization")
                .to_lowercase()
        ),
        GrantTarget::OrganizationRole { .. } => "organization_role".to_owned(),
    };
    format!("{connection}|{person}|{what}")
}

/// Filters of a grant listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GrantQuery {
    /// One connection.
    pub connection_id: Option<ConnectionId>,
    /// One status.
    pub status: Option<GrantStatus>,
    /// One person, by email.
    pub email: Option<String>,
    /// One project.
    pub project_id: Option<String>,
    /// Cursor: grants created after this one.
    pub after: Option<GrantId>,
    /// Page size.
    pub limit: u32,
}

mod plan;
mod request;
mod state;
#[cfg(test)]
mod tests;

pub use plan::{
    AccessState, GroupAccessState, OrgRoleState, Outcome, ProjectAccessState, ProjectGroupState,
    Refusal, RoleAccessState, Step, Write, landed, plan_grant, plan_revoke,
};
pub use request::{GrantIn, GrantRequest, RequestError, check_end, expiry, whole_number};
pub use state::{Attempt, BadTransition, End, EndKind, FlatState, GrantState, Held};
