//! Grant requests as callers send them, parsed once into what a grant is made of: who
//! ([`Grantee`]), what ([`GrantTarget`]), why and until when. Every invalid field is named,
//! so a caller hears about all of them at once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Grant, GrantState, GrantTarget, Grantee};
use crate::domain::ids::InvalidId;
use crate::domain::{ConnectionId, Email, GrantId, UserId, ValidationError};

/// A grant to make: who (a person by email or OpenAI user id, or a group) and what (project
/// access with a role, a group membership, a role, or an organization role).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantIn {
    /// The organization (connection id).
    #[schema(format = Uuid)]
    pub connection_id: String,
    /// The person's email. Needed to invite someone who is not yet in the organization.
    #[schema(format = Email, max_length = 320)]
    pub email: Option<String>,
    /// Or the person's OpenAI user id (`user-…`).
    #[schema(pattern = r"^[\t\n\x0b\x0c\r ]*user-", max_length = 100)]
    pub user_id: Option<String>,
    /// Or a group (`group_…`) instead of a person: it gets project access (`project_id` with
    /// `role`) or a role (`role_id`), and so does everyone in it.
    #[schema(pattern = r"^[\t\n\x0b\x0c\r ]*group_", max_length = 100)]
    pub grantee_group_id: Option<String>,
    /// The project (`proj_…`): with `role`, project membership; with `role_id`, a role
    /// assignment in that project.
    #[schema(pattern = r"^[\t\n\x0b\x0c\r ]*proj_", max_length = 100)]
    pub project_id: Option<String>,
    /// The group (`group_…`) to add the person to, instead of a project.
    #[schema(pattern = r"^[\t\n\x0b\x0c\r ]*group_", max_length = 100)]
    pub group_id: Option<String>,
    /// With `project_id`: `owner`, `member`, or a custom project role's name (for a group, a
    /// role id too); for a group membership only `member` (or leave it out).
    #[schema(max_length = 100, pattern = r"^[^\x00]*[^\s\x00][^\x00]*$")]
    pub role: Option<String>,
    /// An RBAC role (`role_…`) to assign to the person: an organization role, or with
    /// `project_id` a project role.
    #[schema(pattern = r"^[\t\n\x0b\x0c\r ]*role_", max_length = 100)]
    pub role_id: Option<String>,
    /// The organization role to give the person: `owner` or `reader`.
    #[schema(pattern = r"^[\t\n\x0b\x0c\r ]*(owner|reader)[\t\n\x0b\x0c\r ]*$")]
    pub organization_role: Option<String>,
    /// Why (kept in the audit trail).
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub reason: String,
    /// The ticket of the request, e.g. `SEC-123`.
    #[schema(max_length = 200)]
    pub ticket: Option<String>,
    /// Revoke at this time (RFC 3339): in the future, within 366 days.
    pub expires_at: Option<DateTime<Utc>>,
    /// Or this many seconds from now (1 to 366 days).
    #[schema(minimum = 1, maximum = 31622400)]
    #[serde(default, deserialize_with = "whole_number")]
    pub expires_in_seconds: Option<i64>,
}

/// Reads an optional integer the way JSON Schema counts one: `1437.0` and `1.4e3` are whole
/// numbers (and generated clients may send them so), a fraction is not.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    // Past ±2^53 a float is no exact integer; such values are far outside every bound anyway.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() <= EXACT)
                .map(|f| f as i64)
        })
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("expected a whole number, found {n}")))
}

/// A grant request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct GrantRequest {
    pub connection_id: ConnectionId,
    pub grantee: Grantee,
    pub target: GrantTarget,
    pub reason: String,
    pub ticket: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Why a request was refused: a malformed id (told first, on its own), or invalid fields.
#[derive(Debug)]
pub enum RequestError {
    Id(InvalidId),
    Fields(Vec<ValidationError>),
}

fn field(field: &'static str, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field,
        message: message.into(),
    }
}

fn fields(errors: Vec<ValidationError>) -> Result<(), Vec<ValidationError>> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks the reason and ticket of a revoke or an expiry change.
pub fn check_end(reason: Option<&str>, ticket: Option<&str>) -> Result<(), Vec<ValidationError>> {
    let mut errors = Vec::new();
    if reason.is_some_and(|r| r.chars().count() > 1000) {
        errors.push(field("reason", "at most 1000 characters"));
    }
    if ticket.is_some_and(|t| t.chars().count() > 200) {
        errors.push(field("ticket", "at most 200 characters"));
    }
    fields(errors)
}

/// The expiry a request asks for: a time, or seconds from now; at least one second ahead and
/// at most 366 days.
pub fn expiry(
    at: Option<DateTime<Utc>>,
    in_seconds: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ValidationError> {
    let t = match (at, in_seconds) {
        (Some(_), Some(_)) => {
            return Err(field(
                "expires_in_seconds",
                "give expires_at or expires_in_seconds, not both",
            ));
        }
        (Some(t), None) => t,
        (None, Some(s)) => {
            if !(1..=366 * 86_400).contains(&s) {
                return Err(field(
                    "expires_in_seconds",
                    "must be between 1 and 31622400 (366 days)",
                ));
            }
            now + chrono::Duration::seconds(s)
        }
        (None, None) => return Ok(None),
    };
    if t <= now {
        return Err(field("expires_at", "must be in the future"));
    }
    if t > now + chrono::Duration::days(366) {
        return Err(field("expires_at", "must be within 366 days"));
    }
    Ok(Some(t))
}

fn trimmed(v: &Option<String>) -> Option<String> {
    v.as_ref().map(|s| s.trim().to_owned())
}

/// Trimmed `v` starts with `prefix`; the length is checked as sent ([`too_long`]).
fn is_id(v: &str, prefix: &str) -> bool {
    v.starts_with(prefix)
}

/// The longest id or role name a request may hold, in characters as sent (what the
/// document's `maxLength` counts, before trimming).
const MAX_ID: usize = 100;

fn too_long(errors: &mut Vec<ValidationError>, name: &'static str, v: &Option<String>) {
    if v.as_ref().is_some_and(|s| s.chars().count() > MAX_ID) {
        errors.push(field(name, format!("at most {MAX_ID} characters")));
    }
}

impl GrantIn {
    /// The person or group who receives the access.
    fn grantee(&self, errors: &mut Vec<ValidationError>) -> Grantee {
        let email = self.email.as_ref().map(|e| e.trim().to_lowercase());
        if let Some(Err(m)) = self.email.as_deref().map(Email::parse) {
            errors.push(field("email", m));
        }
        let user_id = trimmed(&self.user_id);
        if let Some(Err(m)) = self.user_id.as_deref().map(UserId::parse) {
            errors.push(field("user_id", m));
        }
        too_long(errors, "grantee_group_id", &self.grantee_group_id);
        let group_id = trimmed(&self.grantee_group_id);
        match (&group_id, email.is_some() || user_id.is_some()) {
            (None, false) => errors.push(field(
                "email",
                "give the person's email or user_id, or grantee_group_id for a group",
            )),
            (Some(_), true) => errors.push(field(
                "grantee_group_id",
                "the access goes to a person or to a group, not both",
            )),
            (Some(g), false) if !is_id(g, "group_") => errors.push(field(
                "grantee_group_id",
                "must be an OpenAI group id (group_…)",
            )),
            _ => {}
        }
        Grantee {
            email,
            user_id,
            group_id,
        }
    }

    /// The one access asked for.
    fn target(&self, errors: &mut Vec<ValidationError>) -> Option<GrantTarget> {
        too_long(errors, "project_id", &self.project_id);
        too_long(errors, "group_id", &self.group_id);
        too_long(errors, "role_id", &self.role_id);
        too_long(errors, "role", &self.role);
        let (project_id, group_id) = (trimmed(&self.project_id), trimmed(&self.group_id));
        let (role_id, org_role) = (trimmed(&self.role_id), trimmed(&self.organization_role));
        if project_id.as_deref().is_some_and(|p| !is_id(p, "proj_")) {
            errors.push(field("project_id", "must be an OpenAI project id (proj_…)"));
        }
        let no_role = |errors: &mut Vec<ValidationError>, what: &str| {
            if self.role.is_some() {
                errors.push(field("role", format!("{what} takes no role: leave it out")));
            }
        };
        Some(match (project_id, group_id, role_id, org_role) {
            (Some(project_id), None, None, None) => {
                let role = self.role.as_deref().unwrap_or_default().trim().to_owned();
                if role.is_empty() {
                    errors.push(field(
                        "role",
                        "must be owner, member or a custom project role's name",
                    ));
                }
                GrantTarget::Project { project_id, role }
            }
            (None, Some(group_id), None, None) => {
                if !is_id(&group_id, "group_") {
                    errors.push(field("group_id", "must be an OpenAI group id (group_…)"));
                }
                if self.role.as_deref().is_some_and(|r| r != "member") {
                    errors.push(field(
                        "role",
                        "a group membership has no role: leave it out",
                    ));
                }
                GrantTarget::Group { group_id }
            }
            (project_id, None, Some(role_id), None) => {
                if !is_id(&role_id, "role_") {
                    errors.push(field("role_id", "must be an OpenAI role id (role_…)"));
                }
                no_role(errors, "a role assignment");
                GrantTarget::Role {
                    role_id,
                    project_id,
                }
            }
            (None, None, None, Some(role)) => {
                if role != "owner" && role != "reader" {
                    errors.push(field("organization_role", "must be owner or reader"));
                }
                no_role(errors, "an organization role");
                GrantTarget::OrganizationRole { role }
            }
            _ => {
                errors.push(field(
                    "project_id",
                    "give one target: project_id with role, group_id, role_id (with project_id \
                     for a project role), or organization_role",
                ));
                return None;
            }
        })
    }

    /// Checks the request, naming every invalid field.
    pub fn parse(&self, now: DateTime<Utc>) -> Result<GrantRequest, RequestError> {
        let connection_id = ConnectionId::parse(&self.connection_id).map_err(RequestError::Id)?;
        let mut errors = Vec::new();
        let grantee = self.grantee(&mut errors);
        let target = self.target(&mut errors);
        if grantee.group_id.is_some()
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
        let reason = self.reason.trim();
        if reason.is_empty() || self.reason.chars().count() > 1000 {
            errors.push(field("reason", "required, at most 1000 characters"));
        }
        if self
            .ticket
            .as_ref()
            .is_some_and(|t| t.chars().count() > 200)
        {
            errors.push(field("ticket", "at most 200 characters"));
        }
        let expires_at = match expiry(self.expires_at, self.expires_in_seconds, now) {
            Ok(t) => t,
            Err(e) => {
                errors.push(e);
                None
            }
        };
        match target {
            Some(target) if errors.is_empty() => Ok(GrantRequest {
                connection_id,
                grantee,
                target,
                reason: reason.to_owned(),
                ticket: self.ticket.as_ref().map(|t| t.trim().to_owned()),
                expires_at,
            }),
            _ => Err(RequestError::Fields(errors)),
        }
    }
}

impl Grant {
    /// A new grant for `request`, about to be applied.
    pub fn new(
        request: GrantRequest,
        requested_by: String,
        client_id: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: GrantId::new(),
            connection_id: request.connection_id,
            grantee: request.grantee,
            target: request.target,
            reason: request.reason,
            ticket: request.ticket,
            requested_by,
            client_id,
            expires_at: request.expires_at,
            state: GrantState::Applying(Default::default()),
            previous_role: None,
            invite_id: None,
            upstream_request_id: None,
            extensions: 0,
            policy_rule: None,
            created_at: now,
            updated_at: now,
        }
    }
}
