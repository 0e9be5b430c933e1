//! A grant asked with `dry_run`: what the policy says (and with which rule), the expiry that
//! would apply, and what OpenAI's current state would make of it (the one write it needs, or
//! none, or the domain rule refusing it). Reads OpenAI; writes nothing, stores nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::GrantService;
use super::write::{missing, refusal_error};
use crate::auth::{Principal, Scope};
use crate::domain::grants::{Grant, GrantIn, GrantOutcome, Outcome, Step, plan_grant};
use crate::domain::policy::Action;
use crate::error::AppError;
use crate::openai::ErrorKind;
use crate::service::connections::not_found;
use crate::service::problems::upstream_message;

/// What a grant would do.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GrantPreview {
    /// Always `true`: nothing was written or stored.
    pub dry_run: bool,
    /// `allowed` or `denied` by the policy (`allowed` when no policy is in force).
    pub decision: &'static str,
    /// The rule that decided (`default-deny` when none allowed it; `null` without a policy).
    pub policy_rule: Option<String>,
    /// Why it would be refused, for a person.
    pub message: Option<String>,
    /// The expiry the grant would get (the rule's default when none was asked).
    pub expires_at: Option<DateTime<Utc>>,
    /// What granting would do, read from OpenAI now (`null` when refused).
    pub outcome: Option<GrantOutcome>,
    /// The one write it would make (`add_project_user`, `set_project_role`, `invite`, ...);
    /// `null` when none is needed or it is refused.
    pub write: Option<&'static str>,
    /// The problem code it would be refused with by a rule of OpenAI's or ours
    /// (`last_owner`, `project_archived`, ...), or `upstream_unavailable` when OpenAI could
    /// not be read.
    pub refused: Option<String>,
}

impl GrantService {
    /// Answers what [`GrantService::grant`] would do, without doing it. Requires
    /// `access:write`; an invalid request or an unknown connection is refused as a grant is.
    pub async fn dry_run(
        &self,
        who: &Principal,
        input: &GrantIn,
    ) -> Result<GrantPreview, AppError> {
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
        let mut preview = GrantPreview {
            dry_run: true,
            decision: "allowed",
            policy_rule: None,
            message: None,
            expires_at: grant.expires_at,
            outcome: None,
            write: None,
            refused: None,
        };
        let id = connection.id.to_string();
        let project = self.project_name(&connection, &grant).await;
        let scope = super::policy::scope(
            Action::Grant,
            &id,
            &connection.name,
            &grant,
            project.as_deref(),
        );
        let decided = self.policy.check(who, &scope).and_then(|rule| match rule {
            Some(rule) => {
                let at = rule.check_grant(
                    now,
                    grant.expires_at,
                    grant.ticket.as_deref(),
                    &grant.reason,
                )?;
                Ok(Some((rule.id, at)))
            }
            None => Ok(None),
        });
        match decided {
            Ok(Some((rule, at))) => {
                preview.policy_rule = Some(rule);
                preview.expires_at = at;
                grant.expires_at = at;
            }
            Ok(None) => {}
            Err(d) => {
                preview.decision = "denied";
                preview.policy_rule = Some(d.rule);
                preview.message = Some(d.message);
                return Ok(preview);
            }
        }
        let client = self.clients.client(&connection).await?;
        match self.read_state(&client, &grant).await {
            Ok((state, grantee)) => {
                grant.grantee = grantee;
                match plan_grant(&grant, &state) {
                    Ok(Step::Done(Outcome::Grant(o))) => preview.outcome = Some(o),
                    Ok(Step::Write(w, Outcome::Grant(o))) => {
                        preview.outcome = Some(o);
                        preview.write = Some(w.name());
                    }
                    Ok(_) => {}
                    Err(r) => {
                        let e = refusal_error(&r, &grant.target);
                        preview.refused = Some(e.code.as_str().to_owned());
                        preview.message = Some(e.message);
                    }
                }
            }
            Err(e) if e.kind == ErrorKind::NotFound => {
                let (code, message) = missing(&grant);
                preview.refused = Some(code.as_str().to_owned());
                preview.message = Some(message);
            }
            Err(e) => {
                preview.refused = Some("upstream_unavailable".to_owned());
                preview.message = Some(upstream_message(&e));
            }
        }
        Ok(preview)
    }
}
