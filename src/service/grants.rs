//! Grants and revocations of project access: read OpenAI's state, decide with the domain's
//! rules, record the intent, write once, record the outcome and its audit entry together.
//!
//! Never half-done: a grant is stored `pending` (holding the lock on its access and a lease)
//! before anything is written to OpenAI. If the process dies before the outcome is stored,
//! the lease runs out and the worker ([`GrantService::work_once`]) reconciles the grant by
//! reading OpenAI again: the same decision code runs, and because it starts from what OpenAI
//! holds, a write that landed is not repeated. The worker also expires grants and polls the
//! invites sent for people who were not yet members.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use super::clients::OpenAiClients;
use super::connections::not_found;
use super::sync::{
    assignment_item, assignment_key, group_member_item, invite_item, is_archived, member_item,
    project_group_item, user_item,
};
use crate::auth::{Principal, Scope};
use crate::domain::audit::{AuditAction, AuditEntry, AuditOutcome, SYSTEM_ACTOR};
use crate::domain::grants::{
    AccessState, Grant, GrantOutcome, GrantQuery, GrantStatus, GrantTarget, Grantee,
    GroupAccessState, OrgRoleState, Outcome, PendingOp, ProjectAccessState, ProjectGroupState,
    Refusal, RevokeOutcome, RoleAccessState, Step, Write, landed, plan_grant, plan_revoke,
};
use crate::domain::{ChangeKind, ConnectionId, ExpectedChange, GrantId, Item, ItemKind};
use crate::error::{AppError, ErrorCode, FieldError};
use crate::openai::{
    Assignee, Client, CreateInvite, ErrorKind, InviteProject, InviteStatus, ModifyUser,
    OpenAiError, OrgUser, Reply, RoleScope,
};
use crate::store::{GrantSaveExtras, Store, StoreError};

/// Largest page of grants a caller can ask for.
pub const MAX_PAGE: u32 = 200;

/// The name OpenAI gives every organization's default project (the API has no flag for it).
const DEFAULT_PROJECT_NAME: &str = "Default project";

/// How the grant machinery behaves.
#[derive(Debug, Clone)]
pub struct GrantSettings {
    /// How long a writer owns a grant before the worker may take it over as interrupted.
    /// Longer than one OpenAI write with its retries.
    pub lease: Duration,
    /// How long a request waits for another write on the same access to finish.
    pub lock_wait: Duration,
    /// How often the worker looks for due, interrupted and invited grants.
    pub tick: Duration,
    /// How often an invite sent for a grant is polled.
    pub invite_poll: Duration,
    /// Writes attempted for one operation before it is left to the worker (or fails).
    pub max_attempts: u32,
}

impl Default for GrantSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(120),
            lock_wait: Duration::from_secs(10),
            tick: Duration::from_secs(10),
            invite_poll: Duration::from_secs(60),
            max_attempts: 3,
        }
    }
}

/// A grant to make.
#[derive(Debug, Clone, Default)]
pub struct GrantInput {
    /// The organization.
    pub connection_id: Option<ConnectionId>,
    /// The person's email.
    pub email: Option<String>,
    /// Or their OpenAI user id.
    pub user_id: Option<String>,
    /// Or a group, instead of a person (project access or a role only).
    pub grantee_group_id: Option<String>,
    /// The project (with `role`, or with `role_id`)...
    pub project_id: Option<String>,
    /// ...or the group to join.
    pub group_id: Option<String>,
    /// Or the RBAC role to assign (with `project_id`: a project-level assignment)...
    pub role_id: Option<String>,
    /// ...or the organization role to set (`owner`, `reader`).
    pub organization_role: Option<String>,
    /// The project role (project grants only).
    pub role: Option<String>,
    /// Why.
    pub reason: String,
    /// Ticket reference.
    pub ticket: Option<String>,
    /// Revoke at this time.
    pub expires_at: Option<DateTime<Utc>>,
    /// Or this many seconds from now.
    pub expires_in_seconds: Option<i64>,
}

/// A revocation or expiry change requested on a grant.
#[derive(Debug, Clone, Default)]
pub struct EndInput {
    /// Why.
    pub reason: Option<String>,
    /// Ticket reference.
    pub ticket: Option<String>,
}

/// Who acts: a caller, or the service itself.
#[derive(Debug, Clone)]
struct Actor {
    subject: String,
    client_id: Option<String>,
}

impl Actor {
    fn of(who: &Principal) -> Self {
        Self {
            subject: who.subject.clone(),
            client_id: who.client_id.clone(),
        }
    }

    fn system() -> Self {
        Self {
            subject: SYSTEM_ACTOR.to_owned(),
            client_id: None,
        }
    }
}

/// The grant use cases and the worker.
#[derive(Clone)]
pub struct GrantService {
    store: Arc<dyn Store>,
    clients: OpenAiClients,
    settings: Arc<GrantSettings>,
    /// This process, as a lease owner.
    instance: Arc<str>,
}

fn grant_not_found(id: GrantId) -> impl FnOnce(StoreError) -> AppError {
    move |e| match e {
        StoreError::NotFound => {
            AppError::new(ErrorCode::GrantNotFound, format!("no grant has id {id}"))
        }
        other => other.into(),
    }
}

fn refusal_error(r: &Refusal, target: &GrantTarget) -> AppError {
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
fn missing(grant: &Grant) -> (ErrorCode, String) {
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

/// The access an audit entry records as before/after, from what is held (see
/// [`AccessState::held`]).
fn access_json(target: &GrantTarget, held: Option<String>) -> serde_json::Value {
    match target {
        GrantTarget::Project { .. } => serde_json::json!({ "project_role": held }),
        GrantTarget::Group { .. } => serde_json::json!({ "group_member": held.is_some() }),
        GrantTarget::Role { .. } => serde_json::json!({ "role_id": held }),
        GrantTarget::OrganizationRole { .. } => serde_json::json!({ "organization_role": held }),
    }
}

/// Who holds a role-assignment grant's role: its group, or its person once their user id is
/// known; in the target's project, if it names one.
fn assignee(grant: &Grant) -> Option<Assignee> {
    let project_id = grant.target.project_id().map(str::to_owned);
    Some(match (&grant.grantee.group_id, project_id) {
        (Some(group_id), Some(project_id)) => Assignee::ProjectGroup {
            project_id,
            group_id: group_id.clone(),
        },
        (Some(group_id), None) => Assignee::OrgGroup(group_id.clone()),
        (None, Some(project_id)) => Assignee::ProjectUser {
            project_id,
            user_id: grant.grantee.user_id.clone()?,
        },
        (None, None) => Assignee::OrgUser(grant.grantee.user_id.clone()?),
    })
}

/// The inventory item that records the access a grant is about (kind and key, as a sync
/// stores it), once the person's user id is known.
fn access_item(grant: &Grant) -> Option<(ItemKind, String)> {
    if let Some(gid) = &grant.grantee.group_id {
        return Some(match &grant.target {
            GrantTarget::Project { project_id, .. } => {
                (ItemKind::ProjectGroup, format!("{project_id}/{gid}"))
            }
            GrantTarget::Role { role_id, .. } => (
                ItemKind::RoleAssignment,
                assignment_key(&assignee(grant)?, role_id),
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
            assignment_key(&assignee(grant)?, role_id),
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

/// OpenAI's failure in words, with its request id.
fn upstream_message(e: &OpenAiError) -> String {
    let id = e
        .request_id
        .as_deref()
        .map(|r| format!(" (request {r})"))
        .unwrap_or_default();
    format!("OpenAI: {}: {}{id}", e.kind.label(), e.message)
}

/// A failure whose outcome is unknown (the write may have landed): reconcile, don't fail.
fn ambiguous(e: &OpenAiError) -> bool {
    e.is_transient() || matches!(e.kind, ErrorKind::InvalidResponse)
}

fn upstream_unavailable(e: &OpenAiError) -> AppError {
    AppError::new(ErrorCode::UpstreamUnavailable, upstream_message(e))
}

/// Whether a read found the thing (OpenAI's "not found" is an answer, not an error).
async fn present<T>(
    read: impl Future<Output = Result<T, OpenAiError>>,
) -> Result<bool, OpenAiError> {
    match read.await {
        Ok(_) => Ok(true),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn field(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// What a write did, for the record.
#[derive(Default)]
struct Written {
    upserts: Vec<Item>,
    removals: Vec<(ItemKind, String)>,
}

/// How a grant operation ended, for the caller.
pub enum Finished {
    /// The outcome is stored.
    Done(Grant),
    /// The outcome is unknown for now; the worker will reconcile it.
    Pending(Grant),
}

impl GrantService {
    /// Wires the use cases to their dependencies.
    pub fn new(store: Arc<dyn Store>, clients: OpenAiClients, settings: GrantSettings) -> Self {
        Self {
            store,
            clients,
            settings: Arc::new(settings),
            instance: uuid::Uuid::now_v7().to_string().into(),
        }
    }

    /// The same service under a new lease-owner identity: what another replica sharing the
    /// database would be (for running several workers in one process, and for tests).
    pub fn replica(&self) -> Self {
        Self {
            instance: uuid::Uuid::now_v7().to_string().into(),
            ..self.clone()
        }
    }

    /// The worker's period.
    pub fn tick(&self) -> Duration {
        self.settings.tick
    }

    /// How the grant machinery behaves.
    pub fn settings(&self) -> &GrantSettings {
        &self.settings
    }

    /// One grant. Requires `access:write` or `audit:read`.
    pub async fn get(&self, who: &Principal, id: GrantId) -> Result<Grant, AppError> {
        if !who.has(Scope::AuditRead) {
            who.require(Scope::AccessWrite)?;
        }
        self.store.get_grant(id).await.map_err(grant_not_found(id))
    }

    /// A page of grants. Requires `access:write` or `audit:read`.
    pub async fn list(&self, who: &Principal, mut q: GrantQuery) -> Result<Vec<Grant>, AppError> {
        if !who.has(Scope::AuditRead) {
            who.require(Scope::AccessWrite)?;
        }
        q.limit = q.limit.clamp(1, MAX_PAGE);
        Ok(self.store.list_grants(&q).await?)
    }

    /// Grants project access. Requires `access:write`.
    pub async fn grant(&self, who: &Principal, input: GrantInput) -> Result<Finished, AppError> {
        who.require(Scope::AccessWrite)?;
        let now = Utc::now();
        let Valid {
            connection_id,
            grantee,
            target,
            expires_at,
        } = validate(&input, now)?;
        let connection = self
            .store
            .get_connection(connection_id)
            .await
            .map_err(not_found(connection_id))?;
        let client = self.clients.client(&connection).await?;
        let mut grant = Grant {
            id: GrantId::new(),
            connection_id,
            grantee,
            target,
            reason: input.reason.trim().to_owned(),
            ticket: input.ticket.map(|t| t.trim().to_owned()),
            requested_by: who.subject.clone(),
            client_id: who.client_id.clone(),
            expires_at,
            status: GrantStatus::Pending,
            outcome: None,
            previous_role: None,
            invite_id: None,
            error: None,
            upstream_request_id: None,
            pending: Some(PendingOp::Apply),
            attempts: 0,
            created_at: now,
            updated_at: now,
            ended_at: None,
            ended_by: None,
            end_reason: None,
            end_ticket: None,
            revoke_outcome: None,
        };
        // The intent, with the access lock: a concurrent identical grant waits here and then
        // finds the access held, so OpenAI sees one write.
        let deadline = tokio::time::Instant::now() + self.settings.lock_wait;
        loop {
            let now = Utc::now();
            match self
                .store
                .insert_grant(&grant, &self.instance, now, add(now, self.settings.lease))
                .await
            {
                Ok(()) => break,
                Err(StoreError::Locked) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(StoreError::NotFound) => {
                    return Err(not_found(connection_id)(StoreError::NotFound));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let actor = Actor::of(who);
        self.drive(&client, &mut grant, &actor, PendingOp::Apply)
            .await
    }

    /// Revokes a grant: undoes what it did (removes the membership it added, restores the
    /// role it changed, deletes its pending invite). Requires `access:write`.
    pub async fn revoke(
        &self,
        who: &Principal,
        id: GrantId,
        input: EndInput,
    ) -> Result<Finished, AppError> {
        who.require(Scope::AccessWrite)?;
        check_end_input(&input)?;
        let actor = Actor::of(who);
        let Some(mut grant) = self.claim_live(id).await? else {
            // Already ended by a revoke or expiry: a success that says so.
            return Ok(Finished::Done(self.store.get_grant(id).await?));
        };
        let connection = self
            .store
            .get_connection(grant.connection_id)
            .await
            .map_err(not_found(grant.connection_id))?;
        let client = self.clients.client(&connection).await?;
        grant.end_reason = input.reason.map(|r| r.trim().to_owned());
        grant.end_ticket = input.ticket.map(|t| t.trim().to_owned());
        grant.ended_by = Some(actor.subject.clone());
        self.end(&client, &mut grant, PendingOp::Revoke, &actor)
            .await
    }

    /// Revokes every live grant on a connection (before it is deleted), one at a time, and
    /// returns those still live afterwards (a revoke whose outcome is pending, or refused).
    /// Requires `access:write`.
    pub async fn revoke_connection_grants(
        &self,
        who: &Principal,
        connection_id: ConnectionId,
        input: EndInput,
    ) -> Result<Vec<GrantId>, AppError> {
        who.require(Scope::AccessWrite)?;
        let mut still_live = Vec::new();
        for status in [
            GrantStatus::Active,
            GrantStatus::Invited,
            GrantStatus::Pending,
        ] {
            let mut after = None;
            loop {
                let page = self
                    .store
                    .list_grants(&GrantQuery {
                        connection_id: Some(connection_id),
                        status: Some(status),
                        after,
                        limit: MAX_PAGE,
                        ..GrantQuery::default()
                    })
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                for grant in page {
                    let ended = self
                        .revoke(
                            who,
                            grant.id,
                            EndInput {
                                reason: input.reason.clone(),
                                ticket: input.ticket.clone(),
                            },
                        )
                        .await;
                    match ended {
                        Ok(Finished::Done(g)) if !g.status.is_live() => {}
                        Ok(Finished::Done(g) | Finished::Pending(g)) => still_live.push(g.id),
                        Err(e) => {
                            tracing::warn!(grant_id = %grant.id, error = %e.message, "revoke before deleting the connection failed");
                            still_live.push(grant.id);
                        }
                    }
                }
            }
        }
        Ok(still_live)
    }

    /// Changes a live grant's expiry (`None` keeps the access until revoked). Requires
    /// `access:write`.
    pub async fn set_expiry(
        &self,
        who: &Principal,
        id: GrantId,
        expires_at: Option<DateTime<Utc>>,
        expires_in_seconds: Option<i64>,
        input: EndInput,
    ) -> Result<Grant, AppError> {
        who.require(Scope::AccessWrite)?;
        check_end_input(&input)?;
        let now = Utc::now();
        let expires_at = expiry(expires_at, expires_in_seconds, now)?;
        let grant = self
            .store
            .get_grant(id)
            .await
            .map_err(grant_not_found(id))?;
        if !grant.status.is_live() {
            return Err(AppError::new(
                ErrorCode::GrantNotLive,
                format!(
                    "grant {id} is {}; only a live grant's expiry can change",
                    grant.status
                ),
            ));
        }
        let claimed = self
            .store
            .claim_grant(
                id,
                &[GrantStatus::Active, GrantStatus::Invited],
                false,
                &self.instance,
                now,
                add(now, self.settings.lease),
            )
            .await
            .map_err(grant_not_found(id))?;
        let Some(mut grant) = claimed else {
            return Err(AppError::new(
                ErrorCode::AccessBusy,
                format!("grant {id} is being changed right now; retry when it has finished"),
            ));
        };
        let before = grant.expires_at;
        grant.expires_at = expires_at;
        grant.updated_at = now;
        let mut entry = self.entry(&grant, &Actor::of(who), AuditAction::GrantExtended);
        entry.outcome = AuditOutcome::Succeeded;
        entry.reason = input.reason;
        entry.ticket = input.ticket;
        entry.before = Some(serde_json::json!({ "expires_at": before }));
        entry.after = Some(serde_json::json!({ "expires_at": expires_at }));
        self.store
            .save_grant(
                &grant,
                &self.instance,
                true,
                GrantSaveExtras {
                    audit: Some(&entry),
                    ..GrantSaveExtras::default()
                },
            )
            .await?;
        Ok(grant)
    }

    /// Takes a live grant for revoking, waiting for a write in flight on it to end; `None` if
    /// it already ended (revoked or expired).
    async fn claim_live(&self, id: GrantId) -> Result<Option<Grant>, AppError> {
        let deadline = tokio::time::Instant::now() + self.settings.lock_wait;
        loop {
            let now = Utc::now();
            let claimed = self
                .store
                .claim_grant(
                    id,
                    &[GrantStatus::Active, GrantStatus::Invited],
                    true,
                    &self.instance,
                    now,
                    add(now, self.settings.lease),
                )
                .await;
            let retry = match claimed {
                Ok(Some(g)) => return Ok(Some(g)),
                Err(StoreError::Locked) => true,
                Err(e) => return Err(grant_not_found(id)(e)),
                Ok(None) => {
                    let g = self
                        .store
                        .get_grant(id)
                        .await
                        .map_err(grant_not_found(id))?;
                    match g.status {
                        GrantStatus::Revoked | GrantStatus::Expired => return Ok(None),
                        GrantStatus::Failed => {
                            return Err(AppError::new(
                                ErrorCode::GrantNotLive,
                                format!("grant {id} failed; it holds no access to revoke"),
                            ));
                        }
                        // Pending, or held by someone's live lease: wait for it.
                        _ => true,
                    }
                }
            };
            if !retry || tokio::time::Instant::now() >= deadline {
                return Err(AppError::new(
                    ErrorCode::AccessBusy,
                    format!("grant {id} is being changed right now; retry when it has finished"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Reads what OpenAI holds now about the grant's person and target.
    async fn read_state(
        &self,
        client: &Client,
        grant: &mut Grant,
    ) -> Result<AccessState, OpenAiError> {
        Ok(match grant.target.clone() {
            GrantTarget::Project { project_id, role }
                if let Some(group_id) = grant.grantee.group_id.clone() =>
            {
                client.get_group(&group_id).await?;
                AccessState::ProjectGroup(
                    read_project_group_state(client, group_id, &project_id, &role).await?,
                )
            }
            GrantTarget::Project { project_id, .. } => {
                AccessState::Project(self.read_project_state(client, grant, &project_id).await?)
            }
            GrantTarget::Group { group_id } => {
                let group = client.get_group(&group_id).await?.data;
                let member = self.resolve_user(client, grant).await?.map(|u| u.id);
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
                let member = self.principal(client, grant).await?;
                let assigned = match assignee(grant) {
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
                let member = self
                    .resolve_user(client, grant)
                    .await?
                    .map(|u| (u.id, u.role.unwrap_or_default()));
                // Counting owners reads every user: only when an owner would be demoted.
                let demoting = grant.pending != Some(PendingOp::Apply) || role != "owner";
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
        })
    }

    /// The grantee's id in the organization: its group's (which must exist), or the
    /// person's user id (`None` if not a member).
    async fn principal(
        &self,
        client: &Client,
        grant: &mut Grant,
    ) -> Result<Option<String>, OpenAiError> {
        match grant.grantee.group_id.clone() {
            Some(group_id) => {
                client.get_group(&group_id).await?;
                Ok(Some(group_id))
            }
            None => Ok(self.resolve_user(client, grant).await?.map(|u| u.id)),
        }
    }

    /// What OpenAI holds now about the person and a project.
    async fn read_project_state(
        &self,
        client: &Client,
        grant: &mut Grant,
        project_id: &str,
    ) -> Result<ProjectAccessState, OpenAiError> {
        let project = client.get_project(project_id).await?.data;
        let archived = is_archived(&project);
        let is_default = project
            .name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(DEFAULT_PROJECT_NAME));
        let member = self.resolve_user(client, grant).await?;
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
            && let Some(email) = &grant.grantee.email
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

    /// The person as an organization member (by id or by email), filling in the grant's
    /// grantee; `None` if not a member.
    async fn resolve_user(
        &self,
        client: &Client,
        grant: &mut Grant,
    ) -> Result<Option<OrgUser>, OpenAiError> {
        let user = client
            .find_user(
                grant.grantee.user_id.as_deref(),
                grant.grantee.email.as_deref(),
            )
            .await?;
        if let Some(u) = &user {
            // What OpenAI calls the person is the truth from now on.
            grant.grantee.user_id = Some(u.id.clone());
            if let Some(m) = &u.email {
                grant.grantee.email = Some(m.to_lowercase());
            }
        }
        Ok(user)
    }

    /// Carries a grant with a pending operation to its outcome (a request, or the worker
    /// after a crash): read OpenAI's state, plan, record the intent, write once, record the
    /// outcome. After a write whose answer was lost, the state is read again rather than the
    /// write repeated; a write OpenAI refused (and the state confirms) fails the operation.
    async fn drive(
        &self,
        client: &Client,
        grant: &mut Grant,
        actor: &Actor,
        op: PendingOp,
    ) -> Result<Finished, AppError> {
        let mut last_error: Option<OpenAiError> = None;
        loop {
            let first = op == PendingOp::Apply && grant.attempts == 0;
            let state = match self.read_state(client, grant).await {
                Ok(s) => s,
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
                        .settle(client, grant, actor, op, o, Some(&state), None)
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
                if grant.attempts >= self.settings.max_attempts {
                    return self.leave_pending(grant, &e).await;
                }
            }
            // The intent, with what the person held before: recorded before the write.
            if op == PendingOp::Apply {
                grant.previous_role = state.held();
            }
            grant.attempts += 1;
            grant.updated_at = Utc::now();
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
                Ok((request_id, item)) => {
                    grant.upstream_request_id = request_id;
                    return self
                        .settle(client, grant, actor, op, outcome, None, item)
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
    async fn execute(
        &self,
        client: &Client,
        grant: &mut Grant,
        write: &Write,
    ) -> Result<(Option<String>, Option<Item>), OpenAiError> {
        let target = grant.target.clone();
        let pid = target.project_id().unwrap_or_default();
        let gid = target.group_id().unwrap_or_default();
        let role = target.role();
        let no_item = |r: Reply<_>| (r.meta.request_id, None);
        match write {
            Write::AddProjectUser { user_id } => client
                .add_project_user(pid, user_id, role)
                .await
                .map(|r| (r.meta.request_id, Some(member_item(pid, &r.data)))),
            Write::SetProjectRole { user_id, role } => client
                .modify_project_user(pid, user_id, role)
                .await
                .map(|r| (r.meta.request_id, Some(member_item(pid, &r.data)))),
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
                grant.invite_id = Some(r.data.id.clone());
                Ok((r.meta.request_id, Some(invite_item(&r.data))))
            }
            Write::DeleteInvite { invite_id } => client
                .delete_invite(invite_id)
                .await
                .map(|r| (r.meta.request_id, None)),
            Write::AddGroupUser { user_id } => client
                .add_group_user(gid, user_id)
                .await
                .map(|r| (r.meta.request_id, None)),
            Write::RemoveGroupUser { user_id } => {
                client.remove_group_user(gid, user_id).await.map(no_item)
            }
            Write::AssignRole { .. } | Write::UnassignRole { .. } => {
                let Some(who) = assignee(grant) else {
                    return Err(OpenAiError::new(
                        ErrorKind::InvalidResponse,
                        "a role assignment without the person's user id",
                    ));
                };
                if matches!(write, Write::AssignRole { .. }) {
                    client
                        .assign_role(&who, role)
                        .await
                        .map(|r| (r.meta.request_id, None))
                } else {
                    client.unassign_role(&who, role).await.map(no_item)
                }
            }
            Write::AddProjectGroup { role_id } => {
                let group = grant.grantee.group_id.clone().unwrap_or_default();
                client
                    .add_project_group(pid, &group, role_id)
                    .await
                    .map(|r| (r.meta.request_id, Some(project_group_item(pid, &r.data))))
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
                    .map(|r| (r.meta.request_id, Some(user_item(&r.data))))
            }
        }
    }

    /// Records an operation's outcome.
    #[allow(clippy::too_many_arguments)]
    async fn settle(
        &self,
        client: &Client,
        grant: &mut Grant,
        actor: &Actor,
        op: PendingOp,
        outcome: Outcome,
        state: Option<&AccessState>,
        known: Option<Item>,
    ) -> Result<Finished, AppError> {
        match outcome {
            Outcome::Grant(o) => self.applied(client, grant, actor, o, state, known).await,
            Outcome::Revoke(o) => self.ended(client, grant, actor, op, o).await,
        }
    }

    /// The grant holds: record it as active (or invited) with its audit entry.
    async fn applied(
        &self,
        client: &Client,
        grant: &mut Grant,
        actor: &Actor,
        outcome: GrantOutcome,
        state: Option<&AccessState>,
        known: Option<Item>,
    ) -> Result<Finished, AppError> {
        if outcome == GrantOutcome::AlreadyHeld
            && let Some(state) = state
        {
            grant.previous_role = state.held();
        }
        grant.outcome = Some(outcome);
        grant.status = if outcome == GrantOutcome::Invited {
            GrantStatus::Invited
        } else {
            GrantStatus::Active
        };
        if outcome == GrantOutcome::Invited
            && let Some(AccessState::Project(s)) = state
            && let Some((id, _)) = &s.invite
        {
            grant.invite_id = Some(id.clone());
        }
        grant.pending = None;
        grant.error = None;
        grant.updated_at = Utc::now();
        let written = match known {
            Some(item) => Written {
                upserts: vec![item],
                removals: Vec::new(),
            },
            None => self.observed(client, grant).await,
        };
        let action = if grant.attempts > 0 && actor.subject == SYSTEM_ACTOR {
            AuditAction::GrantReconciled
        } else {
            AuditAction::GrantCreated
        };
        let mut entry = self.entry(grant, actor, action);
        entry.outcome = match outcome {
            GrantOutcome::AlreadyHeld => AuditOutcome::Unchanged,
            GrantOutcome::Invited => AuditOutcome::Pending,
            _ => AuditOutcome::Succeeded,
        };
        entry.before = Some(access_json(&grant.target, grant.previous_role.clone()));
        entry.after = Some(match outcome {
            GrantOutcome::Invited => serde_json::json!({ "invite_id": grant.invite_id }),
            _ => access_json(&grant.target, Some(grant.target.role().to_owned())),
        });
        self.finish(grant, &entry, written).await
    }

    /// What OpenAI now holds for the grant, as snapshot items (best effort: a failed read only
    /// delays the write-through to the next sync).
    async fn observed(&self, client: &Client, grant: &Grant) -> Written {
        let group = grant.grantee.group_id.as_deref();
        let user = grant.grantee.user_id.as_deref();
        let item = match (&grant.target, group, user) {
            (GrantTarget::Project { .. }, None, _)
                if grant.status == GrantStatus::Invited
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
            (GrantTarget::Role { role_id, .. }, _, _) => match assignee(grant) {
                Some(who) => client
                    .get_role_assignment(&who, role_id)
                    .await
                    .map(|r| assignment_item(&who, &r.data)),
                None => return Written::default(),
            },
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

    /// Stores a final state, its audit entry, and the write-through.
    async fn finish(
        &self,
        grant: &mut Grant,
        entry: &AuditEntry,
        written: Written,
    ) -> Result<Finished, AppError> {
        let extras = GrantSaveExtras {
            audit: Some(entry),
            expect: None,
            upserts: &written.upserts,
            removals: &written.removals,
            // Lost in a power cut, the outcome is found again by reading OpenAI.
            lazy_commit: true,
        };
        if !self
            .store
            .save_grant(grant, &self.instance, true, extras)
            .await?
        {
            // Our lease was taken over (we were too slow); the new owner records the outcome.
            return Ok(Finished::Pending(self.store.get_grant(grant.id).await?));
        }
        Ok(Finished::Done(grant.clone()))
    }

    /// Records a refusal or failure and returns it as the caller's error.
    async fn fail(
        &self,
        grant: &mut Grant,
        actor: &Actor,
        code: ErrorCode,
        message: String,
    ) -> Result<Finished, AppError> {
        let op = grant.pending.take();
        grant.updated_at = Utc::now();
        grant.attempts = 0;
        let action = match op {
            Some(PendingOp::Revoke) => AuditAction::GrantRevoked,
            Some(PendingOp::Expire) => AuditAction::GrantExpired,
            _ => AuditAction::GrantCreated,
        };
        if matches!(op, Some(PendingOp::Revoke | PendingOp::Expire)) {
            // The revoke did not happen: the grant keeps what it held.
            grant.status =
                if grant.invite_id.is_some() && grant.outcome == Some(GrantOutcome::Invited) {
                    GrantStatus::Invited
                } else {
                    GrantStatus::Active
                };
            grant.ended_at = None;
            grant.ended_by = None;
            grant.end_reason = None;
            grant.end_ticket = None;
        } else {
            grant.status = GrantStatus::Failed;
            grant.error = Some(message.clone());
        }
        let mut entry = self.entry(grant, actor, action);
        entry.outcome = AuditOutcome::Failed;
        entry.detail = Some(serde_json::json!({ "code": code.as_str(), "message": message }));
        self.store
            .save_grant(
                grant,
                &self.instance,
                true,
                GrantSaveExtras {
                    audit: Some(&entry),
                    ..GrantSaveExtras::default()
                },
            )
            .await?;
        let mut e = AppError::new(code, message);
        if matches!(
            code,
            ErrorCode::UpstreamRefused
                | ErrorCode::UpstreamUnavailable
                | ErrorCode::OrganizationMismatch
        ) {
            e.message = format!(
                "{} (grant {} is recorded as {})",
                e.message, grant.id, grant.status
            );
        }
        Err(e)
    }

    /// The outcome is unknown (OpenAI unreachable after the write was sent): keep the lease
    /// until it runs out, then the worker reconciles.
    async fn leave_pending(
        &self,
        grant: &mut Grant,
        e: &OpenAiError,
    ) -> Result<Finished, AppError> {
        tracing::warn!(grant_id = %grant.id, error = %upstream_message(e), "grant outcome unknown; the worker will reconcile it");
        grant.error = Some(format!(
            "outcome unknown, reconciling: {}",
            upstream_message(e)
        ));
        grant.updated_at = Utc::now();
        self.store
            .save_grant(grant, &self.instance, false, GrantSaveExtras::default())
            .await?;
        Ok(Finished::Pending(grant.clone()))
    }

    /// Ends a claimed grant: undo what it did (revoke or expiry).
    async fn end(
        &self,
        client: &Client,
        grant: &mut Grant,
        op: PendingOp,
        actor: &Actor,
    ) -> Result<Finished, AppError> {
        if grant.pending != Some(op) {
            grant.pending = Some(op);
            grant.attempts = 0;
        }
        // Stored with the intent, before a write; until then the claim's lease is enough.
        grant.status = GrantStatus::Pending;
        grant.updated_at = Utc::now();
        self.drive(client, grant, actor, op).await
    }

    /// The revoke or expiry is done: record it with the write-through.
    async fn ended(
        &self,
        client: &Client,
        grant: &mut Grant,
        actor: &Actor,
        op: PendingOp,
        outcome: RevokeOutcome,
    ) -> Result<Finished, AppError> {
        let now = Utc::now();
        grant.status = if op == PendingOp::Expire {
            GrantStatus::Expired
        } else {
            GrantStatus::Revoked
        };
        grant.revoke_outcome = Some(outcome);
        grant.pending = None;
        grant.error = None;
        grant.ended_at = Some(now);
        grant.ended_by.get_or_insert_with(|| actor.subject.clone());
        grant.updated_at = now;
        let written = match outcome {
            // The person stays in the organization: only their access item goes.
            RevokeOutcome::Removed | RevokeOutcome::AlreadyAbsent => Written {
                upserts: Vec::new(),
                removals: access_item(grant)
                    .filter(|(kind, _)| *kind != ItemKind::User)
                    .into_iter()
                    .collect(),
            },
            RevokeOutcome::InviteDeleted => Written {
                upserts: Vec::new(),
                removals: grant
                    .invite_id
                    .iter()
                    .map(|i| (ItemKind::Invite, i.clone()))
                    .collect(),
            },
            RevokeOutcome::RoleRestored => self.observed(client, grant).await,
            RevokeOutcome::NothingToUndo => Written::default(),
        };
        let action = if op == PendingOp::Expire {
            AuditAction::GrantExpired
        } else {
            AuditAction::GrantRevoked
        };
        let mut entry = self.entry(grant, actor, action);
        entry.reason = grant.end_reason.clone().or_else(|| {
            (op == PendingOp::Expire).then(|| "the grant reached its expiry".to_owned())
        });
        entry.ticket = grant.end_ticket.clone().or_else(|| grant.ticket.clone());
        entry.outcome = match outcome {
            RevokeOutcome::AlreadyAbsent | RevokeOutcome::NothingToUndo => AuditOutcome::Unchanged,
            _ => AuditOutcome::Succeeded,
        };
        entry.before = Some(access_json(
            &grant.target,
            Some(grant.target.role().to_owned()),
        ));
        let after = match outcome {
            RevokeOutcome::RoleRestored | RevokeOutcome::NothingToUndo => {
                grant.previous_role.clone()
            }
            _ => None,
        };
        entry.after = Some(access_json(&grant.target, after));
        entry.detail = Some(serde_json::json!({ "revoke_outcome": outcome }));
        self.finish(grant, &entry, written).await
    }

    /// The audit entry of a grant's change, with who and what filled in.
    fn entry(&self, grant: &Grant, actor: &Actor, action: AuditAction) -> AuditEntry {
        let mut e = AuditEntry::new(
            Utc::now(),
            actor.subject.clone(),
            actor.client_id.clone(),
            action,
            AuditOutcome::Succeeded,
        );
        e.connection_id = Some(grant.connection_id);
        e.grant_id = Some(grant.id);
        e.user_id = grant.grantee.user_id.clone();
        e.email = grant.grantee.email.clone();
        e.project_id = grant.target.project_id().map(str::to_owned);
        e.group_id = grant
            .target
            .group_id()
            .or(grant.grantee.group_id.as_deref())
            .map(str::to_owned);
        e.reason = Some(grant.reason.clone());
        e.ticket = grant.ticket.clone();
        e.upstream_request_id = grant.upstream_request_id.clone();
        e
    }

    /// Runs [`Self::work_once`] every tick, for ever (started by `serve`).
    pub async fn run_worker(self) {
        let mut tick = tokio::time::interval(self.settings.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.work_once().await {
                tracing::warn!(error = %e, "grant worker: the store failed; retrying next tick");
            }
        }
    }

    /// One pass of the worker: reconciles interrupted grants, expires due ones and polls
    /// invites. Safe to run on every replica at once: each grant is claimed before it is
    /// touched. Returns how many grants it worked on.
    pub async fn work_once(&self) -> Result<usize, StoreError> {
        let now = Utc::now();
        let grants = self.store.grants_needing_work(now, 100).await?;
        let mut worked = 0;
        for g in grants {
            let result = self.work_on(g).await;
            match result {
                Ok(true) => worked += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e.message, "grant worker: a grant could not be handled")
                }
            }
        }
        Ok(worked)
    }

    async fn work_on(&self, g: Grant) -> Result<bool, AppError> {
        let now = Utc::now();
        let due = g.expires_at.is_some_and(|t| t <= now);
        let actor = Actor::system();
        let lease = add(now, self.settings.lease);
        let claim = |statuses: &'static [GrantStatus], lock: bool, until: DateTime<Utc>| {
            let store = self.store.clone();
            let instance = self.instance.clone();
            async move {
                match store
                    .claim_grant(g.id, statuses, lock, &instance, now, until)
                    .await
                {
                    Ok(g) => Ok(g),
                    Err(StoreError::Locked) => Ok(None),
                    Err(e) => Err(AppError::from(e)),
                }
            }
        };
        let connection = match self.store.get_connection(g.connection_id).await {
            Ok(c) => c,
            Err(_) => return Ok(false),
        };
        let client = self.clients.client(&connection).await?;
        match g.status {
            GrantStatus::Pending => {
                let Some(mut grant) = claim(&[GrantStatus::Pending], true, lease).await? else {
                    return Ok(false);
                };
                let result = match grant.pending {
                    Some(PendingOp::Apply) | None => {
                        self.drive(&client, &mut grant, &actor, PendingOp::Apply)
                            .await
                    }
                    Some(op) => self.end(&client, &mut grant, op, &actor).await,
                };
                // A refusal found while reconciling is recorded on the grant; nothing to raise.
                let _ = result;
                Ok(true)
            }
            GrantStatus::Active | GrantStatus::Invited if due => {
                let Some(mut grant) =
                    claim(&[GrantStatus::Active, GrantStatus::Invited], true, lease).await?
                else {
                    return Ok(false);
                };
                grant.ended_by = Some(SYSTEM_ACTOR.to_owned());
                let _ = self
                    .end(&client, &mut grant, PendingOp::Expire, &actor)
                    .await;
                Ok(true)
            }
            GrantStatus::Invited => {
                // The lease doubles as "polled until": the next poll waits for it to run out.
                let until = add(now, self.settings.invite_poll);
                let Some(mut grant) = claim(&[GrantStatus::Invited], false, until).await? else {
                    return Ok(false);
                };
                self.poll_invite(&client, &mut grant, &actor).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Checks an invited grant's invite: accepted → active, expired or deleted → failed.
    async fn poll_invite(
        &self,
        client: &Client,
        grant: &mut Grant,
        actor: &Actor,
    ) -> Result<(), AppError> {
        let Some(invite_id) = grant.invite_id.clone() else {
            return Ok(());
        };
        let status = match client.get_invite(&invite_id).await {
            Ok(r) => Some(r.data.status),
            Err(e) if e.kind == ErrorKind::NotFound => None,
            Err(e) => return Err(upstream_unavailable(&e)),
        };
        match status {
            Some(InviteStatus::Pending) => Ok(()),
            Some(InviteStatus::Accepted) => {
                let state = self
                    .read_state(client, grant)
                    .await
                    .map_err(|e| upstream_unavailable(&e))?;
                if state.held().as_deref() == Some(grant.target.role()) {
                    grant.status = GrantStatus::Active;
                    grant.updated_at = Utc::now();
                    let mut written = self.observed(client, grant).await;
                    written.removals.push((ItemKind::Invite, invite_id.clone()));
                    if let Ok(r) = client.get_invite(&invite_id).await {
                        written.upserts.push(invite_item(&r.data));
                    }
                    let mut entry = self.entry(grant, actor, AuditAction::GrantActivated);
                    entry.after = Some(serde_json::json!({ "project_role": grant.target.role() }));
                    entry.detail = Some(serde_json::json!({ "invite_id": invite_id }));
                    self.finish(grant, &entry, written).await?;
                } else {
                    let message = format!(
                        "invite {invite_id} was accepted but the person is not a {} of project {}",
                        grant.target.role(),
                        grant.target.name()
                    );
                    self.invite_failed(grant, actor, message).await?;
                }
                Ok(())
            }
            other => {
                let message = match other {
                    None => format!("invite {invite_id} was deleted before it was accepted"),
                    _ => format!("invite {invite_id} expired before it was accepted"),
                };
                self.invite_failed(grant, actor, message).await
            }
        }
    }

    async fn invite_failed(
        &self,
        grant: &mut Grant,
        actor: &Actor,
        message: String,
    ) -> Result<(), AppError> {
        grant.status = GrantStatus::Failed;
        grant.error = Some(message.clone());
        grant.updated_at = Utc::now();
        let mut entry = self.entry(grant, actor, AuditAction::GrantActivated);
        entry.outcome = AuditOutcome::Failed;
        entry.detail = Some(serde_json::json!({ "message": message }));
        let removals = grant
            .invite_id
            .iter()
            .map(|i| (ItemKind::Invite, i.clone()))
            .collect();
        self.finish(
            grant,
            &entry,
            Written {
                upserts: Vec::new(),
                removals,
            },
        )
        .await
        .map(|_| ())
    }
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

fn check_end_input(input: &EndInput) -> Result<(), AppError> {
    let mut errors = Vec::new();
    if input.reason.as_ref().is_some_and(|r| r.len() > 1000) {
        errors.push(field("reason", "at most 1000 characters"));
    }
    if input.ticket.as_ref().is_some_and(|t| t.len() > 200) {
        errors.push(field("ticket", "at most 200 characters"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::validation(errors))
    }
}

/// The expiry a request asks for: a time, or seconds from now; at least one second ahead and
/// at most a year.
fn expiry(
    at: Option<DateTime<Utc>>,
    in_seconds: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, AppError> {
    let t = match (at, in_seconds) {
        (Some(_), Some(_)) => {
            return Err(AppError::validation(vec![field(
                "expires_in_seconds",
                "give expires_at or expires_in_seconds, not both",
            )]));
        }
        (Some(t), None) => t,
        (None, Some(s)) => {
            if !(1..=366 * 86_400).contains(&s) {
                return Err(AppError::validation(vec![field(
                    "expires_in_seconds",
                    "must be between 1 and 31622400 (366 days)",
                )]));
            }
            now + chrono::Duration::seconds(s)
        }
        (None, None) => return Ok(None),
    };
    if t <= now {
        return Err(AppError::validation(vec![field(
            "expires_at",
            "must be in the future",
        )]));
    }
    if t > now + chrono::Duration::days(366) {
        return Err(AppError::validation(vec![field(
            "expires_at",
            "must be within 366 days",
        )]));
    }
    Ok(Some(t))
}

/// A grant request that passed [`validate`].
struct Valid {
    connection_id: ConnectionId,
    grantee: Grantee,
    target: GrantTarget,
    expires_at: Option<DateTime<Utc>>,
}

/// Checks a grant request, naming every invalid field.
fn validate(input: &GrantInput, now: DateTime<Utc>) -> Result<Valid, AppError> {
    let mut errors = Vec::new();
    if input.connection_id.is_none() {
        errors.push(field("connection_id", "required"));
    }
    let email = input.email.as_ref().map(|e| e.trim().to_lowercase());
    if let Some(e) = &email
        && (e.len() > 320 || !e.contains('@') || e.starts_with('@') || e.ends_with('@'))
    {
        errors.push(field("email", "must be an email address"));
    }
    let user_id = input.user_id.as_ref().map(|u| u.trim().to_owned());
    if let Some(u) = &user_id
        && (!u.starts_with("user-") || u.len() > 100)
    {
        errors.push(field("user_id", "must be an OpenAI user id (user-…)"));
    }
    let grantee_group = input.grantee_group_id.as_ref().map(|g| g.trim().to_owned());
    match (&grantee_group, email.is_some() || user_id.is_some()) {
        (None, false) => errors.push(field(
            "email",
            "give the person's email or user_id, or grantee_group_id for a group",
        )),
        (Some(_), true) => errors.push(field(
            "grantee_group_id",
            "the access goes to a person or to a group, not both",
        )),
        (Some(g), false) if !g.starts_with("group_") || g.len() > 100 => {
            errors.push(field(
                "grantee_group_id",
                "must be an OpenAI group id (group_…)",
            ));
        }
        _ => {}
    }
    let trimmed = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_owned());
    let (project_id, group_id) = (trimmed(&input.project_id), trimmed(&input.group_id));
    let (role_id, org_role) = (trimmed(&input.role_id), trimmed(&input.organization_role));
    if let Some(p) = &project_id
        && (!p.starts_with("proj_") || p.len() > 100)
    {
        errors.push(field("project_id", "must be an OpenAI project id (proj_…)"));
    }
    let no_role = |errors: &mut Vec<FieldError>, what: &str| {
        if input.role.is_some() {
            errors.push(field("role", format!("{what} takes no role: leave it out")));
        }
    };
    let target = match (project_id, group_id, role_id, org_role) {
        (Some(project_id), None, None, None) => {
            let role = input.role.as_deref().unwrap_or_default().trim().to_owned();
            if role.is_empty() || role.len() > 100 {
                errors.push(field(
                    "role",
                    "must be owner, member or a custom project role's name",
                ));
            }
            Some(GrantTarget::Project { project_id, role })
        }
        (None, Some(group_id), None, None) => {
            if !group_id.starts_with("group_") || group_id.len() > 100 {
                errors.push(field("group_id", "must be an OpenAI group id (group_…)"));
            }
            if input.role.as_deref().is_some_and(|r| r != "member") {
                errors.push(field(
                    "role",
                    "a group membership has no role: leave it out",
                ));
            }
            Some(GrantTarget::Group { group_id })
        }
        (project_id, None, Some(role_id), None) => {
            if !role_id.starts_with("role_") || role_id.len() > 100 {
                errors.push(field("role_id", "must be an OpenAI role id (role_…)"));
            }
            no_role(&mut errors, "a role assignment");
            Some(GrantTarget::Role {
                role_id,
                project_id,
            })
        }
        (None, None, None, Some(role)) => {
            if role != "owner" && role != "reader" {
                errors.push(field("organization_role", "must be owner or reader"));
            }
            no_role(&mut errors, "an organization role");
            Some(GrantTarget::OrganizationRole { role })
        }
        _ => {
            errors.push(field(
                "project_id",
                "give one target: project_id with role, group_id, role_id (with project_id for \
                 a project role), or organization_role",
            ));
            None
        }
    };
    if grantee_group.is_some()
        && matches!(
            target,
            Some(GrantTarget::Group { .. } | GrantTarget::OrganizationRole { .. })
        )
    {
        errors.push(field(
            "grantee_group_id",
            "a group can be given project access or a role, not a group membership or an \
             organization role",
        ));
    }
    let reason = input.reason.trim();
    if reason.is_empty() || reason.len() > 1000 {
        errors.push(field("reason", "required, at most 1000 characters"));
    }
    if input.ticket.as_ref().is_some_and(|t| t.len() > 200) {
        errors.push(field("ticket", "at most 200 characters"));
    }
    let expires_at = match expiry(input.expires_at, input.expires_in_seconds, now) {
        Ok(t) => t,
        Err(e) => {
            errors.extend(e.errors);
            None
        }
    };
    match input.connection_id {
        Some(connection_id) if errors.is_empty() => match target {
            Some(target) => Ok(Valid {
                connection_id,
                grantee: Grantee {
                    email,
                    user_id,
                    group_id: grantee_group,
                },
                target,
                expires_at,
            }),
            None => Err(AppError::validation(errors)),
        },
        _ => Err(AppError::validation(errors)),
    }
}
