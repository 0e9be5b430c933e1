//! The one write to OpenAI: driving a pending operation (read, plan, record the intent, write,
//! record the outcome), sending the write, and reading back what it left.

use chrono::Utc;

use super::{Actor, Finished, GrantService};
use crate::domain::grants::{
    Grant, GrantStatus, GrantTarget, Grantee, PendingOp, Refusal, Step, Write, landed, plan_grant,
    plan_revoke,
};
use crate::domain::{ChangeKind, ExpectedChange, Item, ItemKind};
use crate::error::{AppError, ErrorCode};
use crate::openai::{
    Assignee, Client, CreateInvite, ErrorKind, InviteProject, ModifyUser, OpenAiError, Reply,
};
use crate::service::problems::upstream_message;
use crate::service::sync::{
    assignment_item, assignment_key, group_member_item, invite_item, member_item,
    project_group_item, user_item,
};
use crate::store::GrantSaveExtras;

pub(super) fn refusal_error(r: &Refusal, target: &GrantTarget) -> AppError {
    let code = match r {
        Refusal::ProjectArchived => ErrorCode::ProjectArchived,
        Refusal::OrgOwner => ErrorCode::OrgOwner,
        Refusal::LastOwner | Refusal::LastOrganizationOwner => ErrorCode::LastOwner,
        Refusal::DefaultProject => ErrorCode::DefaultProject,
        Refusal::EmailRequired => ErrorCode::EmailRequired,
        Refusal::InvitePending { .. } => ErrorCode::InvitePending,
        Refusal::ScimManaged => ErrorCode::ScimManaged,
        Refusal::NotAMember => ErrorCode::NotAMember,
        Refusal::UnknownRole { .. } => ErrorCode::NotFound,
        Refusal::GroupHasAccess => ErrorCode::GroupHasAccess,
    };
    AppError::new(code, r.message(target.name()))
}

/// The target (or a grantee group) does not exist (found on the first read, before anything
/// was written).
pub(super) fn missing(grant: &Grant) -> (ErrorCode, String) {
    if let Some(group) = &grant.grantee.group_id {
        return (
            ErrorCode::NotFound,
            format!(
                "group {group}, or {} of the grant, does not exist in this organization",
                grant.target.name()
            ),
        );
    }
    match &grant.target {
        GrantTarget::Project { project_id, .. } => (
            ErrorCode::ProjectNotFound,
            format!("project {project_id} does not exist in this organization"),
        ),
        GrantTarget::Group { group_id } => (
            ErrorCode::NotFound,
            format!("group {group_id} does not exist in this organization"),
        ),
        GrantTarget::Role {
            role_id,
            project_id: Some(p),
        } => (
            ErrorCode::NotFound,
            format!("project {p} does not exist, or has no role {role_id}"),
        ),
        GrantTarget::Role { role_id, .. } => (
            ErrorCode::NotFound,
            format!("role {role_id} is not an organization role of this organization"),
        ),
        GrantTarget::OrganizationRole { .. } => (
            ErrorCode::NotFound,
            "the person is not in this organization".to_owned(),
        ),
    }
}

/// Who holds a role-assignment grant's role: its group, or its person once their user id is
/// known; in the target's project, if it names one.
pub(super) fn assignee(who: &Grantee, target: &GrantTarget) -> Option<Assignee> {
    let project_id = target.project_id().map(str::to_owned);
    Some(match (&who.group_id, project_id) {
        (Some(group_id), Some(project_id)) => Assignee::ProjectGroup {
            project_id,
            group_id: group_id.clone(),
        },
        (Some(group_id), None) => Assignee::OrgGroup(group_id.clone()),
        (None, Some(project_id)) => Assignee::ProjectUser {
            project_id,
            user_id: who.user_id.clone()?,
        },
        (None, None) => Assignee::OrgUser(who.user_id.clone()?),
    })
}

/// The inventory item that records the access a grant is about (kind and key, as a sync
/// stores it), once the person's user id is known.
pub(super) fn access_item(grant: &Grant) -> Option<(ItemKind, String)> {
    if let Some(gid) = &grant.grantee.group_id {
        return Some(match &grant.target {
            GrantTarget::Project { project_id, .. } => {
                (ItemKind::ProjectGroup, format!("{project_id}/{gid}"))
            }
            GrantTarget::Role { role_id, .. } => (
                ItemKind::RoleAssignment,
                assignment_key(&assignee(&grant.grantee, &grant.target)?, role_id),
            ),
            _ => return None,
        });
    }
    let uid = grant.grantee.user_id.as_deref()?;
    Some(match &grant.target {
        GrantTarget::Project { project_id, .. } => {
            (ItemKind::ProjectMember, format!("{project_id}/{uid}"))
        }
        GrantTarget::Group { group_id } => (ItemKind::GroupMember, format!("{group_id}/{uid}")),
        GrantTarget::Role { role_id, .. } => (
            ItemKind::RoleAssignment,
            assignment_key(&assignee(&grant.grantee, &grant.target)?, role_id),
        ),
        GrantTarget::OrganizationRole { .. } => (ItemKind::User, uid.to_owned()),
    })
}

/// The change a write is about to make, announced so that the next sync marks it
/// `by_governor` rather than drift.
fn expected_for(grant: &Grant, write: &Write) -> Option<ExpectedChange> {
    let (change, role) = match write {
        Write::AddProjectUser { .. } => (ChangeKind::Added, Some(grant.target.role().to_owned())),
        Write::SetProjectRole { role, .. } => (ChangeKind::Changed, Some(role.clone())),
        Write::AddGroupUser { .. } | Write::AssignRole { .. } | Write::AddProjectGroup { .. } => {
            (ChangeKind::Added, None)
        }
        Write::RemoveProjectUser { .. }
        | Write::RemoveGroupUser { .. }
        | Write::UnassignRole { .. }
        | Write::RemoveProjectGroup => (ChangeKind::Removed, None),
        Write::SetOrganizationRole { .. } => (ChangeKind::Changed, None),
        Write::Invite | Write::DeleteInvite { .. } => return None,
    };
    let (kind, key) = access_item(grant)?;
    Some(ExpectedChange {
        connection_id: grant.connection_id,
        kind,
        key,
        change,
        role,
        status: None,
        until: Utc::now() + chrono::Duration::days(2),
    })
}

/// A failure whose outcome is unknown (the write may have landed): reconcile, don't fail.
pub(super) fn ambiguous(e: &OpenAiError) -> bool {
    e.is_transient() || matches!(e.kind, ErrorKind::InvalidResponse)
}

/// OpenAI's answer to a write: its request id, the new state as an inventory item when the
/// answer carries it, and the invite a `Write::Invite` sent.
pub(super) struct Sent {
    request_id: Option<String>,
    item: Option<Item>,
    invite_id: Option<String>,
}

/// A write whose answer is not the new state.
fn no_item<T>(r: Reply<T>) -> Sent {
    Sent::new(r.meta.request_id, None)
}

impl Sent {
    fn new(request_id: Option<String>, item: Option<Item>) -> Self {
        Self {
            request_id,
            item,
            invite_id: None,
        }
    }
}

/// What a write did, for the record.
#[derive(Default)]
pub(super) struct Written {
    pub(super) upserts: Vec<Item>,
    pub(super) removals: Vec<(ItemKind, String)>,
}

impl GrantService {
    /// Carries a grant with a pending operation to its outcome (a request, or the worker
    /// after a crash): read OpenAI's state, plan, record the intent, write once, record the
    /// outcome. After a write whose answer was lost, the state is read again rather than the
    /// write repeated; a write OpenAI refused (and the state confirms) fails the operation.
    pub(super) async fn drive(
        &self,
        client: &Client,
        grant: &mut Grant,
        actor: &Actor,
    ) -> Result<Finished, AppError> {
        let Some(op) = grant.pending() else {
            return Err(AppError::internal(format!(
                "grant {} has no operation in flight",
                grant.id
            )));
        };
        let mut last_error: Option<OpenAiError> = None;
        loop {
            let first = op == PendingOp::Apply && grant.attempts() == 0;
            let state = match self.read_state(client, grant).await {
                Ok((state, who)) => {
                    grant.grantee = who;
                    state
                }
                Err(e) if first && e.kind == ErrorKind::NotFound => {
                    let (code, message) = missing(grant);
                    return self.fail(grant, actor, code, message).await;
                }
                Err(e) if first && !ambiguous(&e) => {
                    let message = upstream_message(&e);
                    let code = if e.kind == ErrorKind::OrganizationMismatch {
                        ErrorCode::OrganizationMismatch
                    } else {
                        ErrorCode::UpstreamUnavailable
                    };
                    return self.fail(grant, actor, code, message).await;
                }
                Err(e) => return self.leave_pending(grant, &e).await,
            };
            let planned = if op == PendingOp::Apply {
                plan_grant(grant, &state)
            } else {
                plan_revoke(grant, &state)
            };
            let (write, outcome) = match planned {
                Ok(Step::Done(o)) => {
                    let o = landed(grant, o);
                    return self
                        .settle(client, grant, actor, o, Some(&state), None)
                        .await;
                }
                Ok(Step::Write(w, o)) => (w, o),
                Err(refusal) => {
                    let e = refusal_error(&refusal, &grant.target);
                    return self.fail(grant, actor, e.code, e.message).await;
                }
            };
            if let Some(e) = last_error.take() {
                if !ambiguous(&e) {
                    let message = upstream_message(&e);
                    return self
                        .fail(grant, actor, ErrorCode::UpstreamRefused, message)
                        .await;
                }
                if grant.attempts() >= self.settings.max_attempts {
                    return self.leave_pending(grant, &e).await;
                }
            }
            // The intent, with what the person held before: recorded before the write.
            if op == PendingOp::Apply {
                grant.previous_role = state.held();
            }
            grant.attempted(Utc::now())?;
            let expect = expected_for(grant, &write);
            let extras = GrantSaveExtras {
                expect: expect.as_ref(),
                ..GrantSaveExtras::default()
            };
            if !self
                .store
                .save_grant(grant, &self.instance, false, extras)
                .await?
            {
                return Ok(Finished::Pending(self.store.get_grant(grant.id).await?));
            }
            match self.execute(client, grant, &write).await {
                Ok(sent) => {
                    grant.upstream_request_id = sent.request_id;
                    if sent.invite_id.is_some() {
                        grant.invite_id = sent.invite_id;
                    }
                    return self
                        .settle(client, grant, actor, outcome, None, sent.item)
                        .await;
                }
                Err(e) => {
                    grant.upstream_request_id = e.request_id.clone();
                    // "Not a member" answered to a removal: the re-read says what holds.
                    if !(write.is_removal() && e.kind == ErrorKind::NotFound) {
                        last_error = Some(e);
                    }
                }
            }
        }
    }

    /// Sends one write. OpenAI's answer, when it is the new state, comes back as the
    /// inventory item to write through (no need to read it back).
    pub(super) async fn execute(
        &self,
        client: &Client,
        grant: &Grant,
        write: &Write,
    ) -> Result<Sent, OpenAiError> {
        let target = &grant.target;
        let pid = target.project_id().unwrap_or_default();
        let gid = target.group_id().unwrap_or_default();
        let role = target.role();
        match write {
            Write::AddProjectUser { user_id } => client
                .add_project_user(pid, user_id, role)
                .await
                .map(|r| Sent::new(r.meta.request_id, Some(member_item(pid, &r.data)))),
            Write::SetProjectRole { user_id, role } => client
                .modify_project_user(pid, user_id, role)
                .await
                .map(|r| Sent::new(r.meta.request_id, Some(member_item(pid, &r.data)))),
            Write::RemoveProjectUser { user_id } => {
                client.remove_project_user(pid, user_id).await.map(no_item)
            }
            Write::Invite => {
                let body = CreateInvite {
                    email: grant.grantee.email.clone().unwrap_or_default(),
                    role: "reader".to_owned(),
                    // Named explicitly: an invite without `projects` would add the default
                    // project instead.
                    projects: Some(vec![InviteProject {
                        id: pid.to_owned(),
                        role: role.to_owned(),
                    }]),
                };
                let r = client.create_invite(&body).await?;
                Ok(Sent {
                    invite_id: Some(r.data.id.clone()),
                    ..Sent::new(r.meta.request_id, Some(invite_item(&r.data)))
                })
            }
            Write::DeleteInvite { invite_id } => client.delete_invite(invite_id).await.map(no_item),
            Write::AddGroupUser { user_id } => {
                client.add_group_user(gid, user_id).await.map(no_item)
            }
            Write::RemoveGroupUser { user_id } => {
                client.remove_group_user(gid, user_id).await.map(no_item)
            }
            Write::AssignRole { .. } | Write::UnassignRole { .. } => {
                let Some(who) = assignee(&grant.grantee, &grant.target) else {
                    return Err(OpenAiError::new(
                        ErrorKind::InvalidResponse,
                        "a role assignment without the person's user id",
                    ));
                };
                if matches!(write, Write::AssignRole { .. }) {
                    client.assign_role(&who, role).await.map(no_item)
                } else {
                    client.unassign_role(&who, role).await.map(no_item)
                }
            }
            Write::AddProjectGroup { role_id } => {
                let group = grant.grantee.group_id.clone().unwrap_or_default();
                client
                    .add_project_group(pid, &group, role_id)
                    .await
                    .map(|r| Sent::new(r.meta.request_id, Some(project_group_item(pid, &r.data))))
            }
            Write::RemoveProjectGroup => {
                let group = grant.grantee.group_id.clone().unwrap_or_default();
                client.remove_project_group(pid, &group).await.map(no_item)
            }
            Write::SetOrganizationRole { user_id, role } => {
                let body = ModifyUser {
                    role: Some(role.clone()),
                    role_id: None,
                };
                client
                    .modify_user(user_id, &body)
                    .await
                    .map(|r| Sent::new(r.meta.request_id, Some(user_item(&r.data))))
            }
        }
    }

    /// What OpenAI now holds for the grant, as snapshot items (best effort: a failed read only
    /// delays the write-through to the next sync).
    pub(super) async fn observed(&self, client: &Client, grant: &Grant) -> Written {
        let group = grant.grantee.group_id.as_deref();
        let user = grant.grantee.user_id.as_deref();
        let item = match (&grant.target, group, user) {
            (GrantTarget::Project { .. }, None, _)
                if grant.status() == GrantStatus::Invited
                    && let Some(invite_id) = &grant.invite_id =>
            {
                client
                    .get_invite(invite_id)
                    .await
                    .map(|r| invite_item(&r.data))
            }
            (GrantTarget::Project { project_id, .. }, Some(gid), _) => client
                .get_project_group(project_id, gid, None)
                .await
                .map(|r| project_group_item(project_id, &r.data)),
            (GrantTarget::Role { role_id, .. }, _, _) => {
                match assignee(&grant.grantee, &grant.target) {
                    Some(who) => client
                        .get_role_assignment(&who, role_id)
                        .await
                        .map(|r| assignment_item(&who, &r.data)),
                    None => return Written::default(),
                }
            }
            (_, _, None) => return Written::default(),
            (GrantTarget::Project { project_id, .. }, None, Some(uid)) => client
                .get_project_user(project_id, uid)
                .await
                .map(|r| member_item(project_id, &r.data)),
            (GrantTarget::Group { group_id }, _, Some(uid)) => client
                .get_group_user(group_id, uid)
                .await
                .map(|r| group_member_item(group_id, &r.data)),
            (GrantTarget::OrganizationRole { .. }, _, Some(uid)) => {
                client.get_user(uid).await.map(|r| user_item(&r.data))
            }
        };
        Written {
            upserts: item.into_iter().collect(),
            removals: Vec::new(),
        }
    }
}
