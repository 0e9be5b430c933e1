//! The operator's policy on grants: asked before anything is stored or written, every
//! refusal appended to the audit trail (outcome `denied`, `detail.policy_rule`).

use chrono::{DateTime, Utc};

use super::{Actor, GrantService};
use crate::auth::Principal;
use crate::domain::Connection;
use crate::domain::audit::{AuditAction, AuditOutcome};
use crate::domain::grants::{Grant, GrantTarget};
use crate::domain::policy::{Action, Denied, Named, Rule, Scope};
use crate::error::AppError;
use crate::service::policy::{Allowed, denied};

/// The `type` of a grant target, as policy rules name it in `kinds`.
pub fn kind(target: &GrantTarget) -> &'static str {
    match target {
        GrantTarget::Project { .. } => "project",
        GrantTarget::Group { .. } => "group",
        GrantTarget::Role { .. } => "role",
        GrantTarget::OrganizationRole { .. } => "organization_role",
    }
}

/// What the policy is asked about `action` on `grant`'s access.
pub(super) fn scope<'a>(
    action: Action,
    id: &'a str,
    name: &'a str,
    grant: &'a Grant,
    project_name: Option<&'a str>,
) -> Scope<'a> {
    let project = grant.target.project_id().map(|id| Named {
        id,
        name: project_name,
    });
    Scope::new(action)
        .on(Named {
            id,
            name: Some(name),
        })
        .target(kind(&grant.target), grant.target.role(), project)
}

/// Whether `who` is the caller that asked for `grant`.
fn granted_by(grant: &Grant, who: &Principal) -> bool {
    grant.requested_by == who.subject && grant.client_id == who.client_id
}

impl GrantService {
    /// The name of the grant's project in the snapshot, so rules may name projects by name
    /// (`None`: no project, not synced yet, or no policy to ask).
    pub(super) async fn project_name(
        &self,
        connection: &Connection,
        grant: &Grant,
    ) -> Option<String> {
        let project = grant.target.project_id()?;
        if !self.policy.enforced() {
            return None;
        }
        self.access
            .project_name(connection.id, project)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "project name lookup for the policy failed");
                None
            })
    }

    /// The rule allowing `action` on `grant` (new, or live for revoke and extend), or the
    /// refusal, audited. A revoke or extend of another caller's grant needs a rule with
    /// `others_grants`.
    pub(super) async fn authorize(
        &self,
        who: &Principal,
        action: Action,
        connection: &Connection,
        grant: &Grant,
    ) -> Result<Allowed, AppError> {
        let id = connection.id.to_string();
        let project = self.project_name(connection, grant).await;
        let decided = self.policy.check(
            who,
            &scope(action, &id, &connection.name, grant, project.as_deref()),
        );
        let refusal = match decided {
            Ok(Some(rule))
                if action != Action::Grant && !rule.any_granter && !granted_by(grant, who) =>
            {
                Denied {
                    message: format!(
                        "grant {} was made by `{}`; policy rule `{}` lets this caller {} only its \
                         own grants",
                        grant.id,
                        grant.requested_by,
                        rule.id,
                        action.as_str()
                    ),
                    rule: rule.id,
                }
            }
            Ok(allowed) => return Ok(allowed),
            Err(d) => d,
        };
        Err(self.refused(who, action, grant, refusal).await)
    }

    /// Applies the allowing rule's limits to a new grant; the expiry to use.
    pub(super) async fn limit_grant(
        &self,
        who: &Principal,
        rule: &Rule,
        grant: &Grant,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, AppError> {
        match rule.check_grant(
            now,
            grant.expires_at,
            grant.ticket.as_deref(),
            &grant.reason,
        ) {
            Ok(expiry) => Ok(expiry),
            Err(d) => Err(self.refused(who, Action::Grant, grant, d).await),
        }
    }

    /// Applies the allowing rule's limits to a new expiry of a live grant.
    pub(super) async fn limit_extension(
        &self,
        who: &Principal,
        rule: &Rule,
        grant: &Grant,
        new_expiry: Option<DateTime<Utc>>,
        ticket: Option<&str>,
        reason: Option<&str>,
    ) -> Result<(), AppError> {
        let checked = rule.check_extension(
            Utc::now(),
            grant.created_at,
            grant.extensions,
            new_expiry,
            ticket,
            reason.unwrap_or_default(),
        );
        match checked {
            Ok(()) => Ok(()),
            Err(d) => Err(self.refused(who, Action::Extend, grant, d).await),
        }
    }

    /// Records a refusal in the audit trail and returns it as the caller's error. A new
    /// grant's entry names no grant id: nothing was stored under it.
    async fn refused(&self, who: &Principal, action: Action, grant: &Grant, d: Denied) -> AppError {
        let audit_action = match action {
            Action::Revoke => AuditAction::GrantRevoked,
            Action::Extend => AuditAction::GrantExtended,
            _ => AuditAction::GrantCreated,
        };
        let mut entry = self.entry(grant, &Actor::of(who), audit_action);
        entry.outcome = AuditOutcome::Denied;
        if action == Action::Grant {
            entry.grant_id = None;
        }
        entry.add_detail(serde_json::json!({ "policy_rule": d.rule, "message": d.message }));
        if let Err(e) = self.audit.append_audit(&entry).await {
            // The refusal stands either way: nothing was written.
            tracing::warn!(error = %e, "could not audit a policy refusal");
        }
        denied(d)
    }
}
