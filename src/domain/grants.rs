//! Grants: a request for access ("alice@corp, member of project X, 8 hours, ticket SEC-123")
//! and the truth about what became of it. The rules here decide what a grant must do given
//! what OpenAI says the person holds now ([`plan_project_grant`], [`plan_project_revoke`]);
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

/// Who receives the access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Grantee {
    /// The person's email (lower-cased); needed to invite someone who is not yet a member.
    pub email: Option<String>,
    /// The person's OpenAI user id (`user-…`), when known.
    pub user_id: Option<String>,
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
}

impl GrantTarget {
    /// The project of a project target; empty for a group target (whose code paths never
    /// ask).
    pub fn project_id(&self) -> &str {
        match self {
            Self::Project { project_id, .. } => project_id,
            Self::Group { .. } => "",
        }
    }

    /// The group of a group target.
    pub fn group_id(&self) -> Option<&str> {
        match self {
            Self::Group { group_id } => Some(group_id),
            Self::Project { .. } => None,
        }
    }

    /// The role granted (`member` for a group membership).
    pub fn role(&self) -> &str {
        match self {
            Self::Project { role, .. } => role,
            Self::Group { .. } => "member",
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

/// A grant and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Grant {
    /// Identifier.
    #[schema(value_type = String, format = Uuid)]
    pub id: GrantId,
    /// The organization.
    #[schema(value_type = String, format = Uuid)]
    pub connection_id: ConnectionId,
    /// Who receives the access (`user_id` is filled in once known).
    pub grantee: Grantee,
    /// What access.
    pub target: GrantTarget,
    /// Why, as the requester gave it.
    pub reason: String,
    /// The requester's ticket reference.
    pub ticket: Option<String>,
    /// The JWT subject that asked.
    pub requested_by: String,
    /// The OAuth client that asked, when the token names one.
    pub client_id: Option<String>,
    /// When the access is revoked by itself (`None`: until revoked).
    pub expires_at: Option<DateTime<Utc>>,
    /// Where it is.
    pub status: GrantStatus,
    /// What granting did (once known).
    pub outcome: Option<GrantOutcome>,
    /// The project role the person held before (`None`: not a member).
    pub previous_role: Option<String>,
    /// The organization invite sent for this grant, when the person was not a member.
    pub invite_id: Option<String>,
    /// Why it failed: our reason or OpenAI's message.
    pub error: Option<String>,
    /// OpenAI's request id of the last write.
    pub upstream_request_id: Option<String>,
    /// A write in flight (see [`PendingOp`]).
    pub pending: Option<PendingOp>,
    /// Writes attempted so far for the pending operation (bounded, so a grant never loops).
    pub attempts: u32,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was revoked or expired.
    pub ended_at: Option<DateTime<Utc>>,
    /// Who revoked it (the expiry worker is `openai-governor`).
    pub ended_by: Option<String>,
    /// Why it was revoked.
    pub end_reason: Option<String>,
    /// The revoke's ticket.
    pub end_ticket: Option<String>,
    /// What revoking did.
    pub revoke_outcome: Option<RevokeOutcome>,
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
    let person = who
        .email
        .as_deref()
        .map(|e| format!("email:{}", e.to_lowercase()))
        .or_else(|| who.user_id.as_ref().map(|u| format!("user:{u}")))
        .unwrap_or_default();
    match target {
        GrantTarget::Project { project_id, .. } => {
            format!(
                "{connection}|{person}|project:{}",
                project_id.to_lowercase()
            )
        }
        GrantTarget::Group { group_id } => {
            format!("{connection}|{person}|group:{}", group_id.to_lowercase())
        }
    }
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

/// What OpenAI says now about the person and the project, read before every write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectAccessState {
    /// The project is archived.
    pub archived: bool,
    /// The project is the organization's default project.
    pub is_default: bool,
    /// The person's organization membership: user id and org role, if a member.
    pub member: Option<(String, String)>,
    /// Their project role, if a project member.
    pub project_role: Option<String>,
    /// Owners of the project.
    pub project_owners: usize,
    /// Pending invite for the email: id and the project roles it names.
    pub invite: Option<(String, Vec<(String, String)>)>,
}

/// The one write a grant needs, or why it needs none or cannot be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantStep {
    /// Nothing to write: already held (`Invited` when a pending invite already names it).
    Done(GrantOutcome),
    /// Add the member to the project.
    AddMember { user_id: String },
    /// Change the member's project role.
    ChangeRole { user_id: String, from: String },
    /// Invite the email to the organization with the project.
    Invite,
}

/// Why a request is refused before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The project is archived.
    ProjectArchived,
    /// The person is an organization owner: they own every project implicitly.
    OrgOwner,
    /// The change would leave the project without an owner.
    LastOwner,
    /// Removing someone from the default project only: only leaving the organization does.
    DefaultProject,
    /// Not a member, and no email to invite.
    EmailRequired,
    /// A pending invite for the email does not name the project.
    InvitePending { invite_id: String },
    /// The group is managed by the identity provider (SCIM): change it there.
    ScimManaged,
    /// Group memberships are for organization members only.
    NotAMember,
}

impl Refusal {
    /// A sentence a person can act on.
    pub fn message(&self, project_id: &str) -> String {
        match self {
            Self::ProjectArchived => format!(
                "project {project_id} is archived; OpenAI does not change the members of \
                 archived projects"
            ),
            Self::OrgOwner => "the person is an owner of the organization and so owns every \
                 project implicitly; change their organization role first"
                .to_owned(),
            Self::LastOwner => format!(
                "the person is the last owner of project {project_id}; add another owner first"
            ),
            Self::DefaultProject => format!(
                "project {project_id} is the organization's default project: everyone in the \
                 organization is in it; remove the person from the organization instead \
                 (offboarding)"
            ),
            Self::EmailRequired => "the person is not a member of the organization; give \
                 their email so that they can be invited"
                .to_owned(),
            Self::ScimManaged => format!(
                "group {project_id} is managed by your identity provider (SCIM); change its \
                 members there"
            ),
            Self::NotAMember => "the person is not a member of the organization; only members \
                 can join a group (grant them a project first: that sends an invite)"
                .to_owned(),
            Self::InvitePending { invite_id } => format!(
                "the person has a pending organization invite ({invite_id}) that does not \
                 include project {project_id}; delete it or wait for it to be accepted"
            ),
        }
    }
}

/// Decides the write a project grant needs, given OpenAI's state now.
pub fn plan_project_grant(
    state: &ProjectAccessState,
    target: &GrantTarget,
    has_email: bool,
) -> Result<GrantStep, Refusal> {
    if state.archived {
        return Err(Refusal::ProjectArchived);
    }
    let role = target.role();
    match (&state.member, &state.project_role) {
        (Some((_, org_role)), _) if org_role == "owner" && role != "owner" => {
            Err(Refusal::OrgOwner)
        }
        (Some(_), Some(current)) if current == role => {
            Ok(GrantStep::Done(GrantOutcome::AlreadyHeld))
        }
        (Some((user_id, _)), Some(current)) => {
            if current == "owner" && state.project_owners <= 1 {
                return Err(Refusal::LastOwner);
            }
            Ok(GrantStep::ChangeRole {
                user_id: user_id.clone(),
                from: current.clone(),
            })
        }
        (Some((user_id, _)), None) => Ok(GrantStep::AddMember {
            user_id: user_id.clone(),
        }),
        (None, _) => match &state.invite {
            Some((_, projects))
                if projects
                    .iter()
                    .any(|(p, r)| p == target.project_id() && r == role) =>
            {
                Ok(GrantStep::Done(GrantOutcome::Invited))
            }
            Some((invite_id, _)) => Err(Refusal::InvitePending {
                invite_id: invite_id.clone(),
            }),
            None if has_email => Ok(GrantStep::Invite),
            None => Err(Refusal::EmailRequired),
        },
    }
}

/// What OpenAI says now about the person and a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAccessState {
    /// The group is managed by SCIM.
    pub scim_managed: bool,
    /// The person's user id, if an organization member.
    pub member: Option<String>,
    /// Whether they are in the group.
    pub in_group: bool,
}

/// The write a group grant needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupStep {
    /// Nothing to write.
    Done(GrantOutcome),
    /// Add the user to the group.
    Add { user_id: String },
}

/// Decides the write a group grant needs.
pub fn plan_group_grant(state: &GroupAccessState) -> Result<GroupStep, Refusal> {
    if state.scim_managed {
        return Err(Refusal::ScimManaged);
    }
    match &state.member {
        None => Err(Refusal::NotAMember),
        Some(_) if state.in_group => Ok(GroupStep::Done(GrantOutcome::AlreadyHeld)),
        Some(user_id) => Ok(GroupStep::Add {
            user_id: user_id.clone(),
        }),
    }
}

/// Decides how to undo a group grant: remove the membership it added.
pub fn plan_group_revoke(grant: &Grant, state: &GroupAccessState) -> Result<RevokeStep, Refusal> {
    if grant.outcome == Some(GrantOutcome::AlreadyHeld) {
        return Ok(RevokeStep::Done(RevokeOutcome::NothingToUndo));
    }
    match &state.member {
        Some(user_id) if state.in_group => {
            if state.scim_managed {
                return Err(Refusal::ScimManaged);
            }
            Ok(RevokeStep::Remove {
                user_id: user_id.clone(),
            })
        }
        _ => Ok(RevokeStep::Done(RevokeOutcome::AlreadyAbsent)),
    }
}

/// The one write a revoke needs to undo what a grant did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeStep {
    /// Nothing to write.
    Done(RevokeOutcome),
    /// Remove the member from the project.
    Remove { user_id: String },
    /// Set the role back.
    Restore { user_id: String, role: String },
    /// Delete the pending invite.
    DeleteInvite { invite_id: String },
}

/// Decides how to undo `grant` given OpenAI's state now: remove what it added, restore the
/// role it changed, leave alone what the person held before it.
pub fn plan_project_revoke(
    grant: &Grant,
    state: &ProjectAccessState,
) -> Result<RevokeStep, Refusal> {
    if grant.outcome == Some(GrantOutcome::AlreadyHeld) {
        return Ok(RevokeStep::Done(RevokeOutcome::NothingToUndo));
    }
    let Some((user_id, org_role)) = &state.member else {
        // Not (or no longer) in the organization: a pending invite of ours is deleted.
        return Ok(match (&grant.invite_id, &state.invite) {
            (Some(ours), Some((pending, _))) if ours == pending => RevokeStep::DeleteInvite {
                invite_id: ours.clone(),
            },
            _ => RevokeStep::Done(RevokeOutcome::AlreadyAbsent),
        });
    };
    let Some(current) = &state.project_role else {
        return Ok(RevokeStep::Done(RevokeOutcome::AlreadyAbsent));
    };
    if state.archived {
        return Err(Refusal::ProjectArchived);
    }
    if org_role == "owner" {
        return Err(Refusal::OrgOwner);
    }
    if current == "owner" && state.project_owners <= 1 {
        return Err(Refusal::LastOwner);
    }
    match &grant.previous_role {
        Some(before) if before == current => Ok(RevokeStep::Done(RevokeOutcome::NothingToUndo)),
        Some(before) => Ok(RevokeStep::Restore {
            user_id: user_id.clone(),
            role: before.clone(),
        }),
        None if state.is_default => Err(Refusal::DefaultProject),
        None => Ok(RevokeStep::Remove {
            user_id: user_id.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ProjectAccessState {
        ProjectAccessState {
            archived: false,
            is_default: false,
            member: Some(("user-1".into(), "reader".into())),
            project_role: None,
            project_owners: 1,
            invite: None,
        }
    }

    fn target(role: &str) -> GrantTarget {
        GrantTarget::Project {
            project_id: "proj_1".into(),
            role: role.into(),
        }
    }

    fn grant(outcome: GrantOutcome, previous: Option<&str>) -> Grant {
        let now = Utc::now();
        Grant {
            id: GrantId::new(),
            connection_id: ConnectionId::new(),
            grantee: Grantee {
                email: Some("a@x.io".into()),
                user_id: None,
            },
            target: target("member"),
            reason: "r".into(),
            ticket: None,
            requested_by: "s".into(),
            client_id: None,
            expires_at: None,
            status: GrantStatus::Active,
            outcome: Some(outcome),
            previous_role: previous.map(str::to_owned),
            invite_id: None,
            error: None,
            upstream_request_id: None,
            pending: None,
            attempts: 0,
            created_at: now,
            updated_at: now,
            ended_at: None,
            ended_by: None,
            end_reason: None,
            end_ticket: None,
            revoke_outcome: None,
        }
    }

    #[test]
    fn a_member_is_added_and_a_holder_left_alone() {
        let s = state();
        assert_eq!(
            plan_project_grant(&s, &target("member"), true),
            Ok(GrantStep::AddMember {
                user_id: "user-1".into()
            })
        );
        let held = ProjectAccessState {
            project_role: Some("member".into()),
            ..s.clone()
        };
        assert_eq!(
            plan_project_grant(&held, &target("member"), true),
            Ok(GrantStep::Done(GrantOutcome::AlreadyHeld))
        );
        assert_eq!(
            plan_project_grant(&held, &target("owner"), true),
            Ok(GrantStep::ChangeRole {
                user_id: "user-1".into(),
                from: "member".into()
            })
        );
    }

    #[test]
    fn refusals_come_before_any_write() {
        let archived = ProjectAccessState {
            archived: true,
            ..state()
        };
        assert_eq!(
            plan_project_grant(&archived, &target("member"), true),
            Err(Refusal::ProjectArchived)
        );
        let owner = ProjectAccessState {
            member: Some(("user-1".into(), "owner".into())),
            project_role: Some("owner".into()),
            ..state()
        };
        assert_eq!(
            plan_project_grant(&owner, &target("member"), true),
            Err(Refusal::OrgOwner)
        );
        let last = ProjectAccessState {
            project_role: Some("owner".into()),
            ..state()
        };
        assert_eq!(
            plan_project_grant(&last, &target("member"), true),
            Err(Refusal::LastOwner)
        );
        let stranger = ProjectAccessState {
            member: None,
            ..state()
        };
        assert_eq!(
            plan_project_grant(&stranger, &target("member"), false),
            Err(Refusal::EmailRequired)
        );
        assert_eq!(
            plan_project_grant(&stranger, &target("member"), true),
            Ok(GrantStep::Invite)
        );
        let invited_elsewhere = ProjectAccessState {
            invite: Some(("invite-1".into(), vec![("proj_2".into(), "member".into())])),
            ..stranger.clone()
        };
        assert_eq!(
            plan_project_grant(&invited_elsewhere, &target("member"), true),
            Err(Refusal::InvitePending {
                invite_id: "invite-1".into()
            })
        );
        let invited_here = ProjectAccessState {
            invite: Some(("invite-1".into(), vec![("proj_1".into(), "member".into())])),
            ..stranger
        };
        assert_eq!(
            plan_project_grant(&invited_here, &target("member"), true),
            Ok(GrantStep::Done(GrantOutcome::Invited))
        );
    }

    #[test]
    fn group_grants_refuse_scim_and_strangers() {
        let s = GroupAccessState {
            scim_managed: false,
            member: Some("user-1".into()),
            in_group: false,
        };
        assert_eq!(
            plan_group_grant(&s),
            Ok(GroupStep::Add {
                user_id: "user-1".into()
            })
        );
        let scim = GroupAccessState {
            scim_managed: true,
            ..s.clone()
        };
        assert_eq!(plan_group_grant(&scim), Err(Refusal::ScimManaged));
        let stranger = GroupAccessState {
            member: None,
            ..s.clone()
        };
        assert_eq!(plan_group_grant(&stranger), Err(Refusal::NotAMember));
        let held = GroupAccessState {
            in_group: true,
            ..s
        };
        assert_eq!(
            plan_group_grant(&held),
            Ok(GroupStep::Done(GrantOutcome::AlreadyHeld))
        );
        assert_eq!(
            plan_group_revoke(&grant(GrantOutcome::Granted, None), &held),
            Ok(RevokeStep::Remove {
                user_id: "user-1".into()
            })
        );
    }

    #[test]
    fn a_revoke_undoes_only_what_the_grant_did() {
        let holds = ProjectAccessState {
            project_role: Some("member".into()),
            project_owners: 2,
            ..state()
        };
        assert_eq!(
            plan_project_revoke(&grant(GrantOutcome::Granted, None), &holds),
            Ok(RevokeStep::Remove {
                user_id: "user-1".into()
            })
        );
        assert_eq!(
            plan_project_revoke(&grant(GrantOutcome::AlreadyHeld, None), &holds),
            Ok(RevokeStep::Done(RevokeOutcome::NothingToUndo))
        );
        let owner_now = ProjectAccessState {
            project_role: Some("owner".into()),
            ..holds.clone()
        };
        assert_eq!(
            plan_project_revoke(
                &grant(GrantOutcome::RoleChanged, Some("member")),
                &owner_now
            ),
            Ok(RevokeStep::Restore {
                user_id: "user-1".into(),
                role: "member".into()
            })
        );
        let gone = ProjectAccessState {
            project_role: None,
            ..holds.clone()
        };
        assert_eq!(
            plan_project_revoke(&grant(GrantOutcome::Granted, None), &gone),
            Ok(RevokeStep::Done(RevokeOutcome::AlreadyAbsent))
        );
        let default = ProjectAccessState {
            is_default: true,
            ..holds
        };
        assert_eq!(
            plan_project_revoke(&grant(GrantOutcome::Granted, None), &default),
            Err(Refusal::DefaultProject)
        );
    }
}
