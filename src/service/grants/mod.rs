//! Grants and revocations of project access: read OpenAI's state, decide with the domain's
//! rules, record the intent, write once, record the outcome and its audit entry together.
//!
//! Never half-done: a grant is stored `pending` (holding the lock on its access and a lease)
//! before anything is written to OpenAI. If the process dies before the outcome is stored,
//! the lease runs out and the worker ([`GrantService::work_once`]) reconciles the grant by
//! reading OpenAI again: the same decision code runs, and because it starts from what OpenAI
//! holds, a write that landed is not repeated. The worker also expires grants and polls the
//! invites sent for people who were not yet members.
//!
//! This module holds the use cases (grant, revoke, set_expiry, list, get); the other jobs
//! are one module each: [`read`] (OpenAI's state), [`write`] (the one write), [`record`]
//! (outcomes and audit entries), [`worker`] (expiry, reconcile, invites). Requests are parsed
//! by the domain ([`GrantIn::parse`]) and the grant moves through its state's transitions.

mod dry_run;
mod policy;
mod read;
mod record;
mod worker;
mod write;

use std::sync::Arc;

pub use dry_run::GrantPreview;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::clients::OpenAiClients;
use super::connections::not_found;
use crate::auth::{Principal, Scope};
use crate::domain::audit::{AuditAction, AuditOutcome, SYSTEM_ACTOR};
use crate::domain::grants::{
    BadTransition, End, EndKind, Grant, GrantIn, GrantQuery, GrantStatus, check_end, expiry,
};
use crate::domain::policy::Action;
use crate::domain::{ConnectionId, GrantId};
use crate::error::{AppError, ErrorCode};
use crate::service::policy::{Names, PolicyGate};
use crate::service::problems::invalid;
use crate::store::{
    AccessStore, AuditStore, ConnectionStore, GrantSaveExtras, GrantStore, Store, StoreError,
};

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

/// A revocation or expiry change requested on a grant.
#[derive(Debug, Clone, Default)]
pub struct EndInput {
    pub reason: Option<String>,
    pub ticket: Option<String>,
}

impl EndInput {
    fn check(&self) -> Result<(), AppError> {
        check_end(self.reason.as_deref(), self.ticket.as_deref()).map_err(invalid)
    }

    /// The end this asks for, by `actor`.
    fn end(self, kind: EndKind, actor: &Actor) -> End {
        End {
            kind,
            by: actor.subject.clone(),
            reason: self.reason.map(|r| r.trim().to_owned()),
            ticket: self.ticket.map(|t| t.trim().to_owned()),
        }
    }
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
    store: Arc<dyn GrantStore>,
    connections: Arc<dyn ConnectionStore>,
    audit: Arc<dyn AuditStore>,
    /// Project names for the policy.
    access: Arc<dyn AccessStore>,
    policy: PolicyGate,
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

/// A transition the state refused: our bug, reported as an internal error.
impl From<BadTransition> for AppError {
    fn from(e: BadTransition) -> Self {
        AppError::internal(e)
    }
}

fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
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
            connections: store.clone(),
            audit: store.clone(),
            access: store.clone(),
            policy: PolicyGate::open(),
            store,
            clients,
            settings: Arc::new(settings),
            instance: uuid::Uuid::now_v7().to_string().into(),
        }
    }

    /// The same service under the operator's policy.
    pub fn with_policy(self, policy: PolicyGate) -> Self {
        Self { policy, ..self }
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
        let grant = self
            .store
            .get_grant(id)
            .await
            .map_err(grant_not_found(id))?;
        if self.policy.enforced() {
            let c = self
                .connections
                .get_connection(grant.connection_id)
                .await
                .map_err(not_found(grant.connection_id))?;
            self.policy.require_on(who, Action::Read, &c)?;
        }
        Ok(grant)
    }

    /// A page of grants. Requires `access:write` or `audit:read`.
    pub async fn list(&self, who: &Principal, mut q: GrantQuery) -> Result<Vec<Grant>, AppError> {
        if !who.has(Scope::AuditRead) {
            who.require(Scope::AccessWrite)?;
        }
        q.limit = q.limit.clamp(1, MAX_PAGE);
        if !self.policy.enforced() {
            return Ok(self.store.list_grants(&q).await?);
        }
        // Only the grants of connections this caller may read; read on until the page is
        // full or the list ends (the cursor stays the grant id).
        let mut names = Names::new(self.connections.clone());
        let mut out = Vec::new();
        loop {
            let page = self.store.list_grants(&q).await?;
            let end = page.len() < q.limit as usize;
            q.after = page.last().map(|g| g.id).or(q.after);
            for g in page {
                if names
                    .sees(&self.policy, who, Action::Read, g.connection_id)
                    .await
                {
                    out.push(g);
                }
            }
            if end || out.len() >= q.limit as usize {
                out.truncate(q.limit as usize);
                return Ok(out);
            }
        }
    }

    /// Grants project access. Requires `access:write`.
    pub async fn grant(&self, who: &Principal, input: &GrantIn) -> Result<Finished, AppError> {
        who.require(Scope::AccessWrite)?;
        let now = Utc::now();
        let request = input.parse(now)?;
        let connection_id = request.connection_id;
        let connection = self
            .connections
            .get_connection(connection_id)
            .await
            .map_err(not_found(connection_id))?;
        let mut grant = Grant::new(request, who.subject.clone(), who.client_id.clone(), now);
        if let Some(rule) = self
            .authorize(who, Action::Grant, &connection, &grant)
            .await?
        {
            grant.expires_at = self.limit_grant(who, &rule, &grant, now).await?;
            grant.policy_rule = Some(rule.id);
        }
        let client = self.clients.client(&connection).await?;
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
        self.drive(&client, &mut grant, &Actor::of(who)).await
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
        input.check()?;
        let actor = Actor::of(who);
        if self.policy.enforced() {
            // Asked before the claim, so a refused caller never holds the grant's lease.
            let grant = self
                .store
                .get_grant(id)
                .await
                .map_err(grant_not_found(id))?;
            let connection = self
                .connections
                .get_connection(grant.connection_id)
                .await
                .map_err(not_found(grant.connection_id))?;
            self.authorize(who, Action::Revoke, &connection, &grant)
                .await?;
        }
        let Some(mut grant) = self.claim_live(id).await? else {
            // Already ended by a revoke or expiry: a success that says so.
            return Ok(Finished::Done(self.store.get_grant(id).await?));
        };
        let connection = self
            .connections
            .get_connection(grant.connection_id)
            .await
            .map_err(not_found(grant.connection_id))?;
        let client = self.clients.client(&connection).await?;
        grant.ending(input.end(EndKind::Revoke, &actor), Utc::now())?;
        self.drive(&client, &mut grant, &actor).await
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
                        Ok(Finished::Done(g)) if !g.status().is_live() => {}
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
        input.check()?;
        let now = Utc::now();
        let expires_at =
            expiry(expires_at, expires_in_seconds, now).map_err(|e| invalid(vec![e]))?;
        let grant = self
            .store
            .get_grant(id)
            .await
            .map_err(grant_not_found(id))?;
        if !grant.status().is_live() {
            return Err(AppError::new(
                ErrorCode::GrantNotLive,
                format!(
                    "grant {id} is {}; only a live grant's expiry can change",
                    grant.status()
                ),
            ));
        }
        if self.policy.enforced() {
            let connection = self
                .connections
                .get_connection(grant.connection_id)
                .await
                .map_err(not_found(grant.connection_id))?;
            if let Some(rule) = self
                .authorize(who, Action::Extend, &connection, &grant)
                .await?
            {
                self.limit_extension(
                    who,
                    &rule,
                    &grant,
                    expires_at,
                    input.ticket.as_deref(),
                    input.reason.as_deref(),
                )
                .await?;
            }
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
        grant.extensions += 1;
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
                    match g.status() {
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
}
