//! The background worker: reconciles interrupted grants, expires due ones and polls the
//! invites sent for people who were not yet members.

use chrono::{DateTime, Utc};

use super::write::Written;
use super::{Actor, GrantService, add};
use crate::domain::ItemKind;
use crate::domain::audit::{AuditAction, AuditOutcome, SYSTEM_ACTOR};
use crate::domain::grants::{End, EndKind, Grant, GrantStatus};
use crate::error::{AppError, ErrorCode};
use crate::openai::{Client, ErrorKind, InviteStatus, OpenAiError};
use crate::service::problems::upstream_message;
use crate::service::sync::invite_item;
use crate::store::StoreError;

fn upstream_unavailable(e: &OpenAiError) -> AppError {
    AppError::new(ErrorCode::UpstreamUnavailable, upstream_message(e))
}

impl GrantService {
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

    pub(super) async fn work_on(&self, g: Grant) -> Result<bool, AppError> {
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
        let connection = match self.connections.get_connection(g.connection_id).await {
            Ok(c) => c,
            Err(_) => return Ok(false),
        };
        let client = self.clients.client(&connection).await?;
        match g.status() {
            GrantStatus::Pending => {
                let Some(mut grant) = claim(&[GrantStatus::Pending], true, lease).await? else {
                    return Ok(false);
                };
                // A refusal found while reconciling is recorded on the grant; nothing to raise.
                let _ = self.drive(&client, &mut grant, &actor).await;
                Ok(true)
            }
            GrantStatus::Active | GrantStatus::Invited if due => {
                let Some(mut grant) =
                    claim(&[GrantStatus::Active, GrantStatus::Invited], true, lease).await?
                else {
                    return Ok(false);
                };
                let end = End {
                    kind: EndKind::Expire,
                    by: SYSTEM_ACTOR.to_owned(),
                    reason: None,
                    ticket: None,
                };
                grant.ending(end, Utc::now())?;
                let _ = self.drive(&client, &mut grant, &actor).await;
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
    pub(super) async fn poll_invite(
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
                let (state, who) = self
                    .read_state(client, grant)
                    .await
                    .map_err(|e| upstream_unavailable(&e))?;
                grant.grantee = who;
                if state.held().as_deref() == Some(grant.target.role()) {
                    grant.accepted(Utc::now())?;
                    let mut written = self.observed(client, grant).await;
                    written.removals.push((ItemKind::Invite, invite_id.clone()));
                    if let Ok(r) = client.get_invite(&invite_id).await {
                        written.upserts.push(invite_item(&r.data));
                    }
                    let mut entry = self.entry(grant, actor, AuditAction::GrantActivated);
                    entry.after = Some(serde_json::json!({ "project_role": grant.target.role() }));
                    entry.add_detail(serde_json::json!({ "invite_id": invite_id }));
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

    pub(super) async fn invite_failed(
        &self,
        grant: &mut Grant,
        actor: &Actor,
        message: String,
    ) -> Result<(), AppError> {
        grant.failed(message.clone(), Utc::now())?;
        let mut entry = self.entry(grant, actor, AuditAction::GrantActivated);
        entry.outcome = AuditOutcome::Failed;
        entry.add_detail(serde_json::json!({ "message": message }));
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
