//! Reading what OpenAI holds now about a grant's person and target (the state the rules plan
//! from), and who the person is there. Reads change nothing: what they learn is returned.

use futures::{StreamExt, TryStreamExt};

use super::write::assignee;
use super::{DEFAULT_PROJECT_NAME, GrantService};
use crate::domain::grants::{
    AccessState, Grant, GrantTarget, Grantee, GroupAccessState, OrgRoleState, PendingOp,
    ProjectAccessState, ProjectGroupState, RoleAccessState,
};
use crate::openai::{Assignee, Client, ErrorKind, InviteStatus, OpenAiError, OrgUser, RoleScope};
use crate::service::sync::is_archived;

/// Whether a read found the thing (OpenAI's "not found" is an answer, not an error).
pub(super) async fn present<T>(
    read: impl Future<Output = Result<T, OpenAiError>>,
) -> Result<bool, OpenAiError> {
    match read.await {
        Ok(_) => Ok(true),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

impl GrantService {
    /// Reads what OpenAI holds now about the grant's person and target, and the grantee as
    /// OpenAI names them (user id and email filled in once the person is found).
    pub(super) async fn read_state(
        &self,
        client: &Client,
        grant: &Grant,
    ) -> Result<(AccessState, Grantee), OpenAiError> {
        let mut who = grant.grantee.clone();
        let state = match grant.target.clone() {
            GrantTarget::Project { project_id, role }
                if let Some(group_id) = who.group_id.clone() =>
            {
                client.get_group(&group_id).await?;
                AccessState::ProjectGroup(
                    read_project_group_state(client, group_id, &project_id, &role).await?,
                )
            }
            GrantTarget::Project { project_id, .. } => {
                AccessState::Project(read_project_state(client, &mut who, &project_id).await?)
            }
            GrantTarget::Group { group_id } => {
                let group = client.get_group(&group_id).await?.data;
                let member = resolve_user(client, &mut who).await?.map(|u| u.id);
                let in_group = match &member {
                    Some(uid) => present(client.get_group_user(&group_id, uid)).await?,
                    None => false,
                };
                AccessState::Group(GroupAccessState {
                    scim_managed: group.is_scim_managed,
                    member,
                    in_group,
                })
            }
            GrantTarget::Role {
                role_id,
                project_id,
            } => {
                let archived = match &project_id {
                    Some(p) => is_archived(&client.get_project(p).await?.data),
                    None => false,
                };
                let scope = project_id.map_or(RoleScope::Organization, RoleScope::Project);
                client.get_role(&scope, &role_id).await?;
                let member = principal(client, &mut who).await?;
                let assigned = match assignee(&who, &grant.target) {
                    Some(who) => present(client.get_role_assignment(&who, &role_id)).await?,
                    None => false,
                };
                AccessState::Role(RoleAccessState {
                    archived,
                    member,
                    assigned: assigned.then_some(role_id),
                })
            }
            GrantTarget::OrganizationRole { role } => {
                let member = resolve_user(client, &mut who)
                    .await?
                    .map(|u| (u.id, u.role.unwrap_or_default()));
                // Counting owners reads every user: only when an owner would be demoted.
                let demoting = grant.pending() != Some(PendingOp::Apply) || role != "owner";
                let owners = match &member {
                    Some((_, current)) if current == "owner" && demoting => {
                        client
                            .users(&Default::default())
                            .try_fold(0usize, |n, u| async move {
                                Ok(n + usize::from(u.role.as_deref() == Some("owner")))
                            })
                            .await?
                    }
                    _ => 0,
                };
                AccessState::OrganizationRole(OrgRoleState { member, owners })
            }
        };
        Ok((state, who))
    }
}

/// The grantee's id in the organization: its group's (which must exist), or the person's
/// user id (`None` if not a member).
async fn principal(client: &Client, who: &mut Grantee) -> Result<Option<String>, OpenAiError> {
    match who.group_id.clone() {
        Some(group_id) => {
            client.get_group(&group_id).await?;
            Ok(Some(group_id))
        }
        None => Ok(resolve_user(client, who).await?.map(|u| u.id)),
    }
}

/// What OpenAI holds now about the person and a project.
async fn read_project_state(
    client: &Client,
    who: &mut Grantee,
    project_id: &str,
) -> Result<ProjectAccessState, OpenAiError> {
    let project = client.get_project(project_id).await?.data;
    let archived = is_archived(&project);
    let is_default = project
        .name
        .as_deref()
        .is_some_and(|n| n.eq_ignore_ascii_case(DEFAULT_PROJECT_NAME));
    let member = resolve_user(client, who).await?;
    let mut state = ProjectAccessState {
        archived,
        is_default,
        member: member
            .as_ref()
            .map(|u| (u.id.clone(), u.role.clone().unwrap_or_default())),
        project_role: None,
        project_owners: 0,
        invite: None,
    };
    if let Some(u) = &member
        && !archived
    {
        state.project_role = match client.get_project_user(project_id, &u.id).await {
            Ok(r) => Some(r.data.role),
            Err(e) if e.kind == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if state.project_role.as_deref() == Some("owner") {
            state.project_owners = client
                .project_users(project_id, &Default::default())
                .try_fold(0usize, |n, m| async move {
                    Ok(n + usize::from(m.role == "owner"))
                })
                .await?;
        }
    }
    if member.is_none()
        && let Some(email) = &who.email
    {
        let email = email.clone();
        let mut invites = Box::pin(client.invites(&Default::default()));
        while let Some(inv) = invites.next().await {
            let inv = inv?;
            if inv.status == InviteStatus::Pending && inv.email.eq_ignore_ascii_case(&email) {
                let projects = inv.projects.iter().map(|p| (p.id.clone(), p.role.clone()));
                state.invite = Some((inv.id.clone(), projects.collect()));
                break;
            }
        }
    }
    Ok(state)
}

/// The person as an organization member (by id or by email), `None` if not a member; `who`
/// takes what OpenAI calls them, the truth from now on.
async fn resolve_user(client: &Client, who: &mut Grantee) -> Result<Option<OrgUser>, OpenAiError> {
    let user = client
        .find_user(who.user_id.as_deref(), who.email.as_deref())
        .await?;
    if let Some(u) = &user {
        who.user_id = Some(u.id.clone());
        if let Some(m) = &u.email {
            who.email = Some(m.to_lowercase());
        }
    }
    Ok(user)
}

/// What OpenAI holds now about a group grantee's access to a project; `role` is the
/// project role granted, by name or id.
async fn read_project_group_state(
    client: &Client,
    group_id: String,
    project_id: &str,
    role: &str,
) -> Result<ProjectGroupState, OpenAiError> {
    let archived = is_archived(&client.get_project(project_id).await?.data);
    let scope = RoleScope::Project(project_id.to_owned());
    let role_id = client
        .roles(&scope, &Default::default())
        .try_filter(|r| {
            let found = r.id == role || r.name.eq_ignore_ascii_case(role);
            async move { found }
        })
        .map_ok(|r| r.id)
        .boxed()
        .try_next()
        .await?;
    let roles = if present(client.get_project_group(project_id, &group_id, None)).await? {
        let who = Assignee::ProjectGroup {
            project_id: project_id.to_owned(),
            group_id,
        };
        let held = client.role_assignments(&who, &Default::default());
        Some(held.map_ok(|a| a.id).try_collect().await?)
    } else {
        None
    };
    Ok(ProjectGroupState {
        archived,
        role_id,
        roles,
    })
}
