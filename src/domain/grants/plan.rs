//! The rules: what OpenAI holds about a grant's person and target ([`AccessState`]), and
//! the one write a grant or a revoke needs given that ([`plan_grant`], [`plan_revoke`]), or
//! why it is refused before anything is written ([`Refusal`]).

use super::{Grant, GrantOutcome, GrantTarget, RevokeOutcome};

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
    /// Its name in a dry run's answer.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AddProjectUser { .. } => "add_project_user",
            Self::SetProjectRole { .. } => "set_project_role",
            Self::RemoveProjectUser { .. } => "remove_project_user",
            Self::Invite => "invite",
            Self::DeleteInvite { .. } => "delete_invite",
            Self::AddGroupUser { .. } => "add_group_user",
            Self::RemoveGroupUser { .. } => "remove_group_user",
            Self::AssignRole { .. } => "assign_role",
            Self::UnassignRole { .. } => "unassign_role",
            Self::AddProjectGroup { .. } => "add_project_group",
            Self::RemoveProjectGroup => "remove_project_group",
            Self::SetOrganizationRole { .. } => "set_organization_role",
        }
    }

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

pub(super) fn plan_project_grant(
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
    if grant.outcome() == Some(GrantOutcome::AlreadyHeld) {
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

pub(super) fn plan_project_revoke(
    grant: &Grant,
    state: &ProjectAccessState,
) -> Result<Step, Refusal> {
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
    if grant.attempts() == 0 {
        return planned;
    }
    match planned {
        Outcome::Grant(GrantOutcome::AlreadyHeld) if grant.previous_role.is_some() => {
            Outcome::Grant(GrantOutcome::RoleChanged)
        }
        Outcome::Grant(GrantOutcome::AlreadyHeld) => Outcome::Grant(GrantOutcome::Granted),
        Outcome::Revoke(RevokeOutcome::AlreadyAbsent)
            if grant.invite_id.is_some() && grant.outcome() == Some(GrantOutcome::Invited) =>
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
