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
    /// What the person held of the target before (see [`AccessState::held`]; `None`:
    /// nothing), so that a revoke restores it.
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

/// What OpenAI holds now about the grant's person and target, read before every write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessState {
    /// For a project membership.
    Project(ProjectAccessState),
    /// For a group membership.
    Group(GroupAccessState),
    /// For a role assignment.
    Role(RoleAccessState),
    /// For an organization role.
    OrganizationRole(OrgRoleState),
    /// For a group's access to a project.
    ProjectGroup(ProjectGroupState),
}

impl AccessState {
    /// What the person holds of the target now, in [`GrantTarget::role`]'s terms (`None`:
    /// nothing): what a grant records as held before it, and what a revoke restores.
    pub fn held(&self) -> Option<String> {
        match self {
            Self::Project(s) => s.project_role.clone(),
            Self::Group(s) => s.in_group.then(|| "member".to_owned()),
            Self::Role(s) => s.assigned.clone(),
            Self::OrganizationRole(s) => s.member.as_ref().map(|(_, r)| r.clone()),
            Self::ProjectGroup(s) => s
                .roles
                .iter()
                .flatten()
                .find(|r| s.role_id.as_ref() == Some(*r))
                .cloned(),
        }
    }
}

/// What OpenAI says now about the person and the project.
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

/// What OpenAI says now about the person and a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAccessState {
    /// The role's project is archived (project-level roles).
    pub archived: bool,
    /// The person's user id if an organization member (the group's id for a group).
    pub member: Option<String>,
    /// The role id, when the role is assigned to them now.
    pub assigned: Option<String>,
}

/// What OpenAI says now about a group's access to a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectGroupState {
    /// The project is archived.
    pub archived: bool,
    /// The id of the granted role, found among the project's roles by name or id.
    pub role_id: Option<String>,
    /// The role ids the group holds in the project, if it has access at all.
    pub roles: Option<Vec<String>>,
}

/// What OpenAI says now about the person's organization role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRoleState {
    /// The person's user id and organization role, if a member.
    pub member: Option<(String, String)>,
    /// Owners of the organization (counted only when it matters: demoting an owner).
    pub owners: usize,
}

/// One write to OpenAI. The project, group or role it is about is the grant's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Add the user to the project with the target's role.
    AddProjectUser { user_id: String },
    /// Set the user's project role.
    SetProjectRole { user_id: String, role: String },
    /// Remove the user from the project.
    RemoveProjectUser { user_id: String },
    /// Invite the grantee's email to the organization, naming the project.
    Invite,
    /// Delete the pending invite.
    DeleteInvite { invite_id: String },
    /// Add the user to the group.
    AddGroupUser { user_id: String },
    /// Remove the user from the group.
    RemoveGroupUser { user_id: String },
    /// Assign the role to the grantee (a user or a group).
    AssignRole { principal: String },
    /// Take the role from the grantee.
    UnassignRole { principal: String },
    /// Give the group access to the project with a role.
    AddProjectGroup { role_id: String },
    /// Take the group's access to the project.
    RemoveProjectGroup,
    /// Set the user's organization role.
    SetOrganizationRole { user_id: String, role: String },
}

impl Write {
    /// Whether it takes access away (OpenAI's "not found" then means it is already gone).
    pub fn is_removal(&self) -> bool {
        matches!(
            self,
            Self::RemoveProjectUser { .. }
                | Self::DeleteInvite { .. }
                | Self::RemoveGroupUser { .. }
                | Self::UnassignRole { .. }
                | Self::RemoveProjectGroup
        )
    }
}

/// What a grant or a revoke did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A grant's.
    Grant(GrantOutcome),
    /// A revoke's or an expiry's.
    Revoke(RevokeOutcome),
}

/// The one write an operation needs and what it will have done, or why it needs none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to write.
    Done(Outcome),
    /// This write, then the outcome.
    Write(Write, Outcome),
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
    /// The change would leave the organization without an owner.
    LastOrganizationOwner,
    /// Removing someone from the default project only: only leaving the organization does.
    DefaultProject,
    /// Not a member, and no email to invite.
    EmailRequired,
    /// A pending invite for the email does not name the project.
    InvitePending { invite_id: String },
    /// The group is managed by the identity provider (SCIM): change it there.
    ScimManaged,
    /// Group memberships and roles are for organization members only.
    NotAMember,
    /// The project has no role of that name or id.
    UnknownRole { role: String },
    /// The group already has access to the project, with another role.
    GroupHasAccess,
}

impl Refusal {
    /// A sentence a person can act on; `target` names the project, group or role.
    pub fn message(&self, target: &str) -> String {
        match self {
            Self::ProjectArchived => format!(
                "project {target} is archived; OpenAI does not change the members or roles of \
                 archived projects"
            ),
            Self::OrgOwner => "the person is an owner of the organization and so owns every \
                 project implicitly; change their organization role first"
                .to_owned(),
            Self::LastOwner => {
                format!("the person is the last owner of project {target}; add another owner first")
            }
            Self::LastOrganizationOwner => "the person is the organization's last owner; make \
                 someone else an owner first"
                .to_owned(),
            Self::DefaultProject => format!(
                "project {target} is the organization's default project: everyone in the \
                 organization is in it; remove the person from the organization instead \
                 (offboarding)"
            ),
            Self::EmailRequired => "the person is not a member of the organization; give \
                 their email so that they can be invited"
                .to_owned(),
            Self::ScimManaged => format!(
                "group {target} is managed by your identity provider (SCIM); change its \
                 members there"
            ),
            Self::NotAMember => "the person is not a member of the organization; only members \
                 can join a group or hold a role (grant them a project first: that sends an \
                 invite)"
                .to_owned(),
            Self::UnknownRole { role } => {
                format!("project {target} has no role named {role} (nor with that id)")
            }
            Self::GroupHasAccess => format!(
                "the group already has access to project {target} with another role; give it \
                 this role as a role assignment instead (role_id with project_id), or revoke \
                 its access first"
            ),
            Self::InvitePending { invite_id } => format!(
                "the person has a pending organization invite ({invite_id}) that does not \
                 include project {target}; delete it or wait for it to be accepted"
            ),
        }
    }
}

/// Decides the write a grant needs, given OpenAI's state now.
pub fn plan_grant(grant: &Grant, state: &AccessState) -> Result<Step, Refusal> {
    let done = |o| Ok(Step::Done(Outcome::Grant(o)));
    let write = |w, o| Ok(Step::Write(w, Outcome::Grant(o)));
    let role = grant.target.role();
    match state {
        AccessState::Project(s) => {
            plan_project_grant(s, &grant.target, grant.grantee.email.is_some())
        }
        AccessState::Group(s) => {
            if s.scim_managed {
                return Err(Refusal::ScimManaged);
            }
            match &s.member {
                None => Err(Refusal::NotAMember),
                Some(_) if s.in_group => done(GrantOutcome::AlreadyHeld),
                Some(user_id) => write(
                    Write::AddGroupUser {
                        user_id: user_id.clone(),
                    },
                    GrantOutcome::Granted,
                ),
            }
        }
        AccessState::Role(s) => match &s.member {
            _ if s.archived => Err(Refusal::ProjectArchived),
            None => Err(Refusal::NotAMember),
            Some(_) if s.assigned.is_some() => done(GrantOutcome::AlreadyHeld),
            Some(principal) => write(
                Write::AssignRole {
                    principal: principal.clone(),
                },
                GrantOutcome::Granted,
            ),
        },
        AccessState::OrganizationRole(s) => match &s.member {
            None => Err(Refusal::NotAMember),
            Some((_, current)) if current == role => done(GrantOutcome::AlreadyHeld),
            Some((_, current)) if current == "owner" && s.owners <= 1 => {
                Err(Refusal::LastOrganizationOwner)
            }
            Some((user_id, _)) => write(
                Write::SetOrganizationRole {
                    user_id: user_id.clone(),
                    role: role.to_owned(),
                },
                GrantOutcome::RoleChanged,
            ),
        },
        AccessState::ProjectGroup(s) => {
            if s.archived {
                return Err(Refusal::ProjectArchived);
            }
            let Some(role_id) = &s.role_id else {
                return Err(Refusal::UnknownRole {
                    role: role.to_owned(),
                });
            };
            match &s.roles {
                None => write(
                    Write::AddProjectGroup {
                        role_id: role_id.clone(),
                    },
                    GrantOutcome::Granted,
                ),
                Some(roles) if roles.contains(role_id) => done(GrantOutcome::AlreadyHeld),
                Some(_) => Err(Refusal::GroupHasAccess),
            }
        }
    }
}

fn plan_project_grant(
    state: &ProjectAccessState,
    target: &GrantTarget,
    has_email: bool,
) -> Result<Step, Refusal> {
    let write = |w, o| Ok(Step::Write(w, Outcome::Grant(o)));
    if state.archived {
        return Err(Refusal::ProjectArchived);
    }
    let role = target.role();
    match (&state.member, &state.project_role) {
        (Some((_, org_role)), _) if org_role == "owner" && role != "owner" => {
            Err(Refusal::OrgOwner)
        }
        (Some(_), Some(current)) if current == role => {
            Ok(Step::Done(Outcome::Grant(GrantOutcome::AlreadyHeld)))
        }
        (Some((user_id, _)), Some(current)) => {
            if current == "owner" && state.project_owners <= 1 {
                return Err(Refusal::LastOwner);
            }
            write(
                Write::SetProjectRole {
                    user_id: user_id.clone(),
                    role: role.to_owned(),
                },
                GrantOutcome::RoleChanged,
            )
        }
        (Some((user_id, _)), None) => write(
            Write::AddProjectUser {
                user_id: user_id.clone(),
            },
            GrantOutcome::Granted,
        ),
        (None, _) => match &state.invite {
            Some((_, projects))
                if projects
                    .iter()
                    .any(|(p, r)| Some(p.as_str()) == target.project_id() && r == role) =>
            {
                Ok(Step::Done(Outcome::Grant(GrantOutcome::Invited)))
            }
            Some((invite_id, _)) => Err(Refusal::InvitePending {
                invite_id: invite_id.clone(),
            }),
            None if has_email => write(Write::Invite, GrantOutcome::Invited),
            None => Err(Refusal::EmailRequired),
        },
    }
}

/// Decides how to undo `grant` given OpenAI's state now: remove what it added, restore the
/// role it changed, leave alone what the person held before it.
pub fn plan_revoke(grant: &Grant, state: &AccessState) -> Result<Step, Refusal> {
    let done = |o| Ok(Step::Done(Outcome::Revoke(o)));
    let write = |w, o| Ok(Step::Write(w, Outcome::Revoke(o)));
    if grant.outcome == Some(GrantOutcome::AlreadyHeld) {
        return done(RevokeOutcome::NothingToUndo);
    }
    match state {
        AccessState::Project(s) => plan_project_revoke(grant, s),
        AccessState::Group(s) => match &s.member {
            Some(_) if s.scim_managed && s.in_group => Err(Refusal::ScimManaged),
            Some(user_id) if s.in_group => write(
                Write::RemoveGroupUser {
                    user_id: user_id.clone(),
                },
                RevokeOutcome::Removed,
            ),
            _ => done(RevokeOutcome::AlreadyAbsent),
        },
        AccessState::Role(s) => match &s.member {
            Some(_) if s.archived && s.assigned.is_some() => Err(Refusal::ProjectArchived),
            Some(principal) if s.assigned.is_some() => write(
                Write::UnassignRole {
                    principal: principal.clone(),
                },
                RevokeOutcome::Removed,
            ),
            _ => done(RevokeOutcome::AlreadyAbsent),
        },
        AccessState::OrganizationRole(s) => {
            let Some((user_id, current)) = &s.member else {
                return done(RevokeOutcome::AlreadyAbsent);
            };
            let before = grant.previous_role.as_deref().unwrap_or("reader");
            if current == before {
                return done(RevokeOutcome::NothingToUndo);
            }
            if current == "owner" && s.owners <= 1 {
                return Err(Refusal::LastOrganizationOwner);
            }
            write(
                Write::SetOrganizationRole {
                    user_id: user_id.clone(),
                    role: before.to_owned(),
                },
                RevokeOutcome::RoleRestored,
            )
        }
        AccessState::ProjectGroup(s) => match &s.roles {
            None => done(RevokeOutcome::AlreadyAbsent),
            Some(_) if s.archived => Err(Refusal::ProjectArchived),
            Some(_) => write(Write::RemoveProjectGroup, RevokeOutcome::Removed),
        },
    }
}

fn plan_project_revoke(grant: &Grant, state: &ProjectAccessState) -> Result<Step, Refusal> {
    let done = |o| Ok(Step::Done(Outcome::Revoke(o)));
    let write = |w, o| Ok(Step::Write(w, Outcome::Revoke(o)));
    let Some((user_id, org_role)) = &state.member else {
        // Not (or no longer) in the organization: a pending invite of ours is deleted.
        return match (&grant.invite_id, &state.invite) {
            (Some(ours), Some((pending, _))) if ours == pending => write(
                Write::DeleteInvite {
                    invite_id: ours.clone(),
                },
                RevokeOutcome::InviteDeleted,
            ),
            _ => done(RevokeOutcome::AlreadyAbsent),
        };
    };
    let Some(current) = &state.project_role else {
        return done(RevokeOutcome::AlreadyAbsent);
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
        Some(before) if before == current => done(RevokeOutcome::NothingToUndo),
        Some(before) => write(
            Write::SetProjectRole {
                user_id: user_id.clone(),
                role: before.clone(),
            },
            RevokeOutcome::RoleRestored,
        ),
        None if state.is_default => Err(Refusal::DefaultProject),
        None => write(
            Write::RemoveProjectUser {
                user_id: user_id.clone(),
            },
            RevokeOutcome::Removed,
        ),
    }
}

/// The outcome of an operation re-planned after one of its writes was sent: what holds now
/// is that write's doing, not the state the person was already in.
pub fn landed(grant: &Grant, planned: Outcome) -> Outcome {
    if grant.attempts == 0 {
        return planned;
    }
    match planned {
        Outcome::Grant(GrantOutcome::AlreadyHeld) if grant.previous_role.is_some() => {
            Outcome::Grant(GrantOutcome::RoleChanged)
        }
        Outcome::Grant(GrantOutcome::AlreadyHeld) => Outcome::Grant(GrantOutcome::Granted),
        Outcome::Revoke(RevokeOutcome::AlreadyAbsent)
            if grant.invite_id.is_some() && grant.outcome == Some(GrantOutcome::Invited) =>
        {
            Outcome::Revoke(RevokeOutcome::InviteDeleted)
        }
        Outcome::Revoke(RevokeOutcome::AlreadyAbsent) if grant.previous_role.is_none() => {
            Outcome::Revoke(RevokeOutcome::Removed)
        }
        Outcome::Revoke(RevokeOutcome::NothingToUndo) if grant.previous_role.is_some() => {
            Outcome::Revoke(RevokeOutcome::RoleRestored)
        }
        o => o,
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

    fn write(w: Write, o: Outcome) -> Result<Step, Refusal> {
        Ok(Step::Write(w, o))
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
                ..Grantee::default()
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
            write(
                Write::AddProjectUser {
                    user_id: "user-1".into()
                },
                Outcome::Grant(GrantOutcome::Granted)
            )
        );
        let held = ProjectAccessState {
            project_role: Some("member".into()),
            ..s.clone()
        };
        assert_eq!(
            plan_project_grant(&held, &target("member"), true),
            Ok(Step::Done(Outcome::Grant(GrantOutcome::AlreadyHeld)))
        );
        assert_eq!(
            plan_project_grant(&held, &target("owner"), true),
            write(
                Write::SetProjectRole {
                    user_id: "user-1".into(),
                    role: "owner".into()
                },
                Outcome::Grant(GrantOutcome::RoleChanged)
            )
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
            write(Write::Invite, Outcome::Grant(GrantOutcome::Invited))
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
            Ok(Step::Done(Outcome::Grant(GrantOutcome::Invited)))
        );
    }

    #[test]
    fn group_grants_refuse_scim_and_strangers() {
        let g = grant(GrantOutcome::Granted, None);
        let s = GroupAccessState {
            scim_managed: false,
            member: Some("user-1".into()),
            in_group: false,
        };
        let plan = |s: &GroupAccessState| plan_grant(&g, &AccessState::Group(s.clone()));
        assert_eq!(
            plan(&s),
            write(
                Write::AddGroupUser {
                    user_id: "user-1".into()
                },
                Outcome::Grant(GrantOutcome::Granted)
            )
        );
        let scim = GroupAccessState {
            scim_managed: true,
            ..s.clone()
        };
        assert_eq!(plan(&scim), Err(Refusal::ScimManaged));
        let stranger = GroupAccessState {
            member: None,
            ..s.clone()
        };
        assert_eq!(plan(&stranger), Err(Refusal::NotAMember));
        let held = GroupAccessState {
            in_group: true,
            ..s
        };
        assert_eq!(
            plan(&held),
            Ok(Step::Done(Outcome::Grant(GrantOutcome::AlreadyHeld)))
        );
        assert_eq!(
            plan_revoke(&g, &AccessState::Group(held)),
            write(
                Write::RemoveGroupUser {
                    user_id: "user-1".into()
                },
                Outcome::Revoke(RevokeOutcome::Removed)
            )
        );
    }

    #[test]
    fn role_assignments_need_a_member_and_undo_only_their_own() {
        let g = grant(GrantOutcome::Granted, None);
        let s = RoleAccessState {
            archived: false,
            member: Some("user-1".into()),
            assigned: None,
        };
        let grant_plan = |s: &RoleAccessState| plan_grant(&g, &AccessState::Role(s.clone()));
        assert_eq!(
            grant_plan(&s),
            write(
                Write::AssignRole {
                    principal: "user-1".into()
                },
                Outcome::Grant(GrantOutcome::Granted)
            )
        );
        let stranger = RoleAccessState {
            member: None,
            ..s.clone()
        };
        assert_eq!(grant_plan(&stranger), Err(Refusal::NotAMember));
        let archived = RoleAccessState {
            archived: true,
            ..s.clone()
        };
        assert_eq!(grant_plan(&archived), Err(Refusal::ProjectArchived));
        let held = RoleAccessState {
            assigned: Some("role_1".into()),
            ..s.clone()
        };
        assert_eq!(
            grant_plan(&held),
            Ok(Step::Done(Outcome::Grant(GrantOutcome::AlreadyHeld)))
        );
        assert_eq!(
            plan_revoke(&g, &AccessState::Role(held.clone())),
            write(
                Write::UnassignRole {
                    principal: "user-1".into()
                },
                Outcome::Revoke(RevokeOutcome::Removed)
            )
        );
        assert_eq!(
            plan_revoke(&g, &AccessState::Role(s)),
            Ok(Step::Done(Outcome::Revoke(RevokeOutcome::AlreadyAbsent)))
        );
        let before = grant(GrantOutcome::AlreadyHeld, Some("role_1"));
        assert_eq!(
            plan_revoke(&before, &AccessState::Role(held)),
            Ok(Step::Done(Outcome::Revoke(RevokeOutcome::NothingToUndo)))
        );
    }

    #[test]
    fn an_organization_role_keeps_one_owner_and_is_restored() {
        let mut g = grant(GrantOutcome::RoleChanged, Some("reader"));
        g.target = GrantTarget::OrganizationRole {
            role: "owner".into(),
        };
        let reader = OrgRoleState {
            member: Some(("user-1".into(), "reader".into())),
            owners: 1,
        };
        assert_eq!(
            plan_grant(&g, &AccessState::OrganizationRole(reader.clone())),
            write(
                Write::SetOrganizationRole {
                    user_id: "user-1".into(),
                    role: "owner".into()
                },
                Outcome::Grant(GrantOutcome::RoleChanged)
            )
        );
        let sole_owner = OrgRoleState {
            member: Some(("user-1".into(), "owner".into())),
            owners: 1,
        };
        assert_eq!(
            plan_revoke(&g, &AccessState::OrganizationRole(sole_owner.clone())),
            Err(Refusal::LastOrganizationOwner)
        );
        let two_owners = OrgRoleState {
            owners: 2,
            ..sole_owner
        };
        assert_eq!(
            plan_revoke(&g, &AccessState::OrganizationRole(two_owners)),
            write(
                Write::SetOrganizationRole {
                    user_id: "user-1".into(),
                    role: "reader".into()
                },
                Outcome::Revoke(RevokeOutcome::RoleRestored)
            )
        );
        assert_eq!(
            plan_revoke(&g, &AccessState::OrganizationRole(reader)),
            Ok(Step::Done(Outcome::Revoke(RevokeOutcome::NothingToUndo)))
        );
        let gone = OrgRoleState {
            member: None,
            owners: 1,
        };
        assert_eq!(
            plan_grant(&g, &AccessState::OrganizationRole(gone)),
            Err(Refusal::NotAMember)
        );
    }

    #[test]
    fn a_group_gets_project_access_once_and_loses_it_on_revoke() {
        let g = grant(GrantOutcome::Granted, None);
        let none = ProjectGroupState {
            archived: false,
            role_id: Some("role_m".into()),
            roles: None,
        };
        let plan = |s: &ProjectGroupState| plan_grant(&g, &AccessState::ProjectGroup(s.clone()));
        assert_eq!(
            plan(&none),
            write(
                Write::AddProjectGroup {
                    role_id: "role_m".into()
                },
                Outcome::Grant(GrantOutcome::Granted)
            )
        );
        let held = ProjectGroupState {
            roles: Some(vec!["role_m".into()]),
            ..none.clone()
        };
        assert_eq!(
            plan(&held),
            Ok(Step::Done(Outcome::Grant(GrantOutcome::AlreadyHeld)))
        );
        assert_eq!(
            AccessState::ProjectGroup(held.clone()).held().as_deref(),
            Some("role_m")
        );
        let other = ProjectGroupState {
            roles: Some(vec!["role_o".into()]),
            ..none.clone()
        };
        assert_eq!(plan(&other), Err(Refusal::GroupHasAccess));
        let unknown = ProjectGroupState {
            role_id: None,
            ..none.clone()
        };
        assert_eq!(
            plan(&unknown),
            Err(Refusal::UnknownRole {
                role: "member".into()
            })
        );
        assert_eq!(
            plan_revoke(&g, &AccessState::ProjectGroup(held)),
            write(
                Write::RemoveProjectGroup,
                Outcome::Revoke(RevokeOutcome::Removed)
            )
        );
        assert_eq!(
            plan_revoke(&g, &AccessState::ProjectGroup(none)),
            Ok(Step::Done(Outcome::Revoke(RevokeOutcome::AlreadyAbsent)))
        );
    }

    #[test]
    fn a_write_that_landed_is_reported_as_ours() {
        let mut g = grant(GrantOutcome::Granted, None);
        let held = Outcome::Grant(GrantOutcome::AlreadyHeld);
        assert_eq!(landed(&g, held), held);
        g.attempts = 1;
        assert_eq!(landed(&g, held), Outcome::Grant(GrantOutcome::Granted));
        assert_eq!(
            landed(&g, Outcome::Revoke(RevokeOutcome::AlreadyAbsent)),
            Outcome::Revoke(RevokeOutcome::Removed)
        );
        g.previous_role = Some("member".into());
        assert_eq!(landed(&g, held), Outcome::Grant(GrantOutcome::RoleChanged));
        assert_eq!(
            landed(&g, Outcome::Revoke(RevokeOutcome::NothingToUndo)),
            Outcome::Revoke(RevokeOutcome::RoleRestored)
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
            plan_revoke(
                &grant(GrantOutcome::Granted, None),
                &AccessState::Project(holds.clone())
            ),
            write(
                Write::RemoveProjectUser {
                    user_id: "user-1".into()
                },
                Outcome::Revoke(RevokeOutcome::Removed)
            )
        );
        assert_eq!(
            plan_revoke(
                &grant(GrantOutcome::AlreadyHeld, None),
                &AccessState::Project(holds.clone())
            ),
            Ok(Step::Done(Outcome::Revoke(RevokeOutcome::NothingToUndo)))
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
            write(
                Write::SetProjectRole {
                    user_id: "user-1".into(),
                    role: "member".into()
                },
                Outcome::Revoke(RevokeOutcome::RoleRestored)
            )
        );
        let gone = ProjectAccessState {
            project_role: None,
            ..holds.clone()
        };
        assert_eq!(
            plan_revoke(
                &grant(GrantOutcome::Granted, None),
                &AccessState::Project(gone.clone())
            ),
            Ok(Step::Done(Outcome::Revoke(RevokeOutcome::AlreadyAbsent)))
        );
        let default = ProjectAccessState {
            is_default: true,
            ..holds
        };
        assert_eq!(
            plan_revoke(
                &grant(GrantOutcome::Granted, None),
                &AccessState::Project(default.clone())
            ),
            Err(Refusal::DefaultProject)
        );
    }
}
