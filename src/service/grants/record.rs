//! Recording outcomes: a grant's final state, its audit entry and the inventory write-through
//! stored together; failures, operations left pending, and ends (revoke, expiry).

use chrono::Utc;

use super::write::{Written, access_item};
use super::{Actor, Finished, GrantService};
use crate::domain::audit::{AuditAction, AuditEntry, AuditOutcome, SYSTEM_ACTOR};
use crate::domain::grants::{
    AccessState, EndKind, Grant, GrantOutcome, GrantTarget, Outcome, RevokeOutcome,
};
use crate::domain::{Item, ItemKind};
use crate::error::{AppError, ErrorCode};
use crate::openai::{Client, OpenAiError};
use crate::service::problems::upstream_message;
use crate::store::GrantSaveExtras;

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

impl GrantService {
    /// Records an operation's outcome.
    pub(super) async fn settle(
        &self,
        client: &Client,
        grant: &mut Grant,
        actor: &Actor,
        outcome: Outcome,
        state: Option<&AccessState>,
        known: Option<Item>,
    ) -> Result<Finished, AppError> {
        match outcome {
            Outcome::Grant(o) => self.applied(client, grant, actor, o, state, known).await,
            Outcome::Revoke(o) => self.ended(client, grant, actor, o).await,
        }
    }

    /// The grant holds: record it as active (or invited) with its audit entry.
    pub(super) async fn applied(
        &self,
        client: &Client,
        grant: &mut Grant,
        actor: &Actor,
        outcome: GrantOutcome,
        state: Option<&AccessState>,
        known: Option<Item>,
    ) -> Result<Finished, AppError> {
        let reconciled = grant.attempts() > 0 && actor.subject == SYSTEM_ACTOR;
        if outcome == GrantOutcome::AlreadyHeld
            && let Some(state) = state
        {
            grant.previous_role = state.held();
        }
        // An invite found pending (rather than sent by this write) is the grant's from now on.
        let found_invite = match state {
            Some(AccessState::Project(s)) if outcome == GrantOutcome::Invited => {
                s.invite.as_ref().map(|(id, _)| id.clone())
            }
            _ => None,
        };
        grant.granted(outcome, found_invite, Utc::now())?;
        let written = match known {
            Some(item) => Written {
                upserts: vec![item],
                removals: Vec::new(),
            },
            None => self.observed(client, grant).await,
        };
        let action = if reconciled {
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

    /// Stores a final state, its audit entry, and the write-through.
    pub(super) async fn finish(
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
    pub(super) async fn fail(
        &self,
        grant: &mut Grant,
        actor: &Actor,
        code: ErrorCode,
        message: String,
    ) -> Result<Finished, AppError> {
        // A failed end leaves the grant holding what it held.
        let action = match grant.failed(message.clone(), Utc::now())? {
            Some(EndKind::Revoke) => AuditAction::GrantRevoked,
            Some(EndKind::Expire) => AuditAction::GrantExpired,
            None => AuditAction::GrantCreated,
        };
        let mut entry = self.entry(grant, actor, action);
        entry.outcome = AuditOutcome::Failed;
        entry.add_detail(serde_json::json!({ "code": code.as_str(), "message": message }));
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
                e.message,
                grant.id,
                grant.status()
            );
        }
        Err(e)
    }

    /// The outcome is unknown (OpenAI unreachable after the write was sent): keep the lease
    /// until it runs out, then the worker reconciles.
    pub(super) async fn leave_pending(
        &self,
        grant: &mut Grant,
        e: &OpenAiError,
    ) -> Result<Finished, AppError> {
        tracing::warn!(grant_id = %grant.id, error = %upstream_message(e), "grant outcome unknown; the worker will reconcile it");
        let why = format!("outcome unknown, reconciling: {}", upstream_message(e));
        grant.reconciling(why, Utc::now())?;
        self.store
            .save_grant(grant, &self.instance, false, GrantSaveExtras::default())
            .await?;
        Ok(Finished::Pending(grant.clone()))
    }

    /// The revoke or expiry is done: record it with the write-through.
    pub(super) async fn ended(
        &self,
        client: &Client,
        grant: &mut Grant,
        actor: &Actor,
        outcome: RevokeOutcome,
    ) -> Result<Finished, AppError> {
        grant.ended(outcome, Utc::now())?;
        let end = grant.end().cloned().ok_or_else(|| {
            AppError::internal(format!("grant {} ended without an end", grant.id))
        })?;
        let expired = end.kind == EndKind::Expire;
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
        let action = if expired {
            AuditAction::GrantExpired
        } else {
            AuditAction::GrantRevoked
        };
        let mut entry = self.entry(grant, actor, action);
        entry.reason = end
            .reason
            .or_else(|| expired.then(|| "the grant reached its expiry".to_owned()));
        entry.ticket = end.ticket.or_else(|| grant.ticket.clone());
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
        entry.add_detail(serde_json::json!({ "revoke_outcome": outcome }));
        self.finish(grant, &entry, written).await
    }

    /// The audit entry of a grant's change, with who and what filled in.
    pub(super) fn entry(&self, grant: &Grant, actor: &Actor, action: AuditAction) -> AuditEntry {
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
        if let Some(rule) = &grant.policy_rule {
            e.add_detail(serde_json::json!({ "policy_rule": rule }));
        }
        e
    }
}
