//! An offboarding asked with `dry_run`: the policy's decision and, per organization, what
//! OpenAI holds of the person now and so what offboarding would remove. Reads OpenAI; writes
//! nothing, records nothing.

use futures::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;

use super::validate::Valid;
use super::{OffboardInput, OffboardingService, validate};
use crate::auth::{Principal, Scope};
use crate::domain::offboarding::{HeldKey, HeldProject, OffboardError};
use crate::domain::{Connection, ConnectionId};
use crate::error::{AppError, ErrorCode};

/// Organizations a dry run reads at once.
const PREVIEW_CONCURRENCY: usize = 16;

/// What an offboarding would do.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OffboardingPreview {
    /// Always `true`: nothing was written or recorded.
    pub dry_run: bool,
    /// `allowed` or `denied` by the policy (`allowed` when no policy is in force).
    pub decision: &'static str,
    /// The rule that refused (`default-deny` when none allowed it).
    pub policy_rule: Option<String>,
    /// Why it would be refused, for a person.
    pub message: Option<String>,
    /// Per organization, when allowed.
    pub connections: Vec<ConnectionPreview>,
}

/// What offboarding would do in one organization.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionPreview {
    #[schema(value_type = String, format = Uuid)]
    pub connection_id: ConnectionId,
    pub connection_name: String,
    /// The rule allowing it here (`null` without a policy).
    pub policy_rule: Option<String>,
    /// `would_remove`, `not_a_member` (only invites, if any, would go), `refused` (the last
    /// owner) or `failed` (OpenAI could not be read).
    pub status: &'static str,
    /// Their organization role.
    pub org_role: Option<String>,
    /// The projects they would leave.
    pub projects: Vec<HeldProject>,
    /// Pending invites that would be deleted.
    pub invites: Vec<String>,
    /// Their project API keys (deleted only with `delete_api_keys`).
    pub api_keys: Vec<HeldKey>,
    /// Why it would be refused or could not be read.
    pub error: Option<OffboardError>,
}

impl OffboardingService {
    /// Answers what [`OffboardingService::start`] would do, without doing it. Requires
    /// `access:write`.
    pub async fn preview(
        &self,
        who: &Principal,
        input: OffboardInput,
    ) -> Result<OffboardingPreview, AppError> {
        who.require(Scope::AccessWrite)?;
        let v = validate(&input)?;
        let connections = self.covered(&v).await?;
        let mut preview = OffboardingPreview {
            dry_run: true,
            decision: "allowed",
            policy_rule: None,
            message: None,
            connections: Vec::new(),
        };
        let rules = match self.decide(who, &v, &connections) {
            Ok(rules) => rules,
            Err((_, d)) => {
                preview.decision = "denied";
                preview.policy_rule = Some(d.rule);
                preview.message = Some(d.message);
                return Ok(preview);
            }
        };
        // Organizations are read at once (16 at a time): each has its own rate budget, and
        // one after the other an offboarding across many connections outlasts any timeout.
        // (The futures are made first, lazily: a closure inside the stream trips the
        // compiler's proof that the handler's future is `Send`.)
        let rows: Vec<_> = connections
            .iter()
            .zip(rules)
            .map(|(c, rule)| self.preview_one(&v, c, rule))
            .collect();
        preview.connections = futures::stream::iter(rows)
            .buffered(PREVIEW_CONCURRENCY)
            .collect()
            .await;
        Ok(preview)
    }

    /// What offboarding would do in one organization.
    async fn preview_one(
        &self,
        v: &Valid,
        c: &Connection,
        rule: Option<String>,
    ) -> ConnectionPreview {
        let mut row = ConnectionPreview {
            connection_id: c.id,
            connection_name: c.name.clone(),
            policy_rule: rule,
            status: "not_a_member",
            org_role: None,
            projects: Vec::new(),
            invites: Vec::new(),
            api_keys: Vec::new(),
            error: None,
        };
        let failed = |code: ErrorCode, message: String| OffboardError {
            code: code.as_str().to_owned(),
            message,
        };
        let held = match self.clients.client(c).await {
            Ok(client) => match self.read_held(&client, v).await {
                Ok(held) => Some((client, held)),
                Err(f) => {
                    row.error = Some(failed(f.code, f.message));
                    None
                }
            },
            Err(e) => {
                row.error = Some(failed(e.code, e.message));
                None
            }
        };
        let Some((client, held)) = held else {
            row.status = "failed";
            return row;
        };
        row.org_role = held.user.as_ref().and_then(|u| u.role.clone());
        row.projects = held.projects.clone();
        row.invites = held.invites.clone();
        row.api_keys = held.keys.clone();
        if held.user.is_some() {
            row.status = "would_remove";
        }
        if row.org_role.as_deref() == Some("owner") {
            match self.owner_count(&client).await {
                Ok(n) if n <= 1 => {
                    row.status = "refused";
                    row.error = Some(failed(
                        ErrorCode::LastOwner,
                        format!(
                            "the last owner of organization {}: OpenAI refuses to remove \
                             the last owner",
                            c.name
                        ),
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    row.status = "failed";
                    row.error = Some(failed(
                        ErrorCode::UpstreamUnavailable,
                        crate::service::problems::upstream_message(&e),
                    ));
                }
            }
        }
        row
    }
}
