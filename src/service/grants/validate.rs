//! Checking grant, revoke and expiry requests, naming every invalid field.

use chrono::{DateTime, Utc};

use super::{EndInput, GrantInput};
use crate::domain::grants::{GrantTarget, Grantee};
use crate::domain::{ConnectionId, Email, UserId};
use crate::error::{AppError, FieldError};
use crate::service::problems::field;

pub(super) fn check_end_input(input: &EndInput) -> Result<(), AppError> {
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
pub(super) fn expiry(
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
pub(super) struct Valid {
    pub(super) connection_id: ConnectionId,
    pub(super) grantee: Grantee,
    pub(super) target: GrantTarget,
    pub(super) expires_at: Option<DateTime<Utc>>,
}

/// Checks a grant request, naming every invalid field.
pub(super) fn validate(input: &GrantInput, now: DateTime<Utc>) -> Result<Valid, AppError> {
    let mut errors = Vec::new();
    if input.connection_id.is_none() {
        errors.push(field("connection_id", "required"));
    }
    let email = input.email.as_ref().map(|e| e.trim().to_lowercase());
    if let Some(Err(m)) = email.as_deref().map(Email::parse) {
        errors.push(field("email", m));
    }
    let user_id = input.user_id.as_ref().map(|u| u.trim().to_owned());
    if let Some(Err(m)) = user_id.as_deref().map(UserId::parse) {
        errors.push(field("user_id", m));
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
