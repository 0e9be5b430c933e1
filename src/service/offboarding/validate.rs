//! Checking an offboarding request, naming every invalid field.

use super::OffboardInput;
use crate::domain::{ConnectionId, Email, UserId};
use crate::error::AppError;
use crate::service::problems::field;

/// A request that passed [`validate`].
#[derive(Debug, Clone)]
pub(super) struct Valid {
    pub(super) email: Option<String>,
    pub(super) user_id: Option<String>,
    pub(super) connection_id: Option<ConnectionId>,
    pub(super) delete_api_keys: bool,
    pub(super) reason: String,
    pub(super) ticket: Option<String>,
}

/// Checks a request, naming every invalid field.
pub(super) fn validate(input: &OffboardInput) -> Result<Valid, AppError> {
    let mut errors = Vec::new();
    let email = input.email.as_ref().map(|e| e.trim().to_lowercase());
    if let Some(Err(m)) = input.email.as_deref().map(Email::parse) {
        errors.push(field("email", m));
    }
    let user_id = input.user_id.as_ref().map(|u| u.trim().to_owned());
    if let Some(Err(m)) = input.user_id.as_deref().map(UserId::parse) {
        errors.push(field("user_id", m));
    }
    if email.is_none() && user_id.is_none() {
        errors.push(field("email", "give the person's email or user_id"));
    }
    match (input.connection_id, input.all_connections) {
        (None, false) => errors.push(field(
            "connection_id",
            "give a connection_id, or all_connections: true",
        )),
        (Some(_), true) => errors.push(field(
            "all_connections",
            "give a connection_id or all_connections: true, not both",
        )),
        _ => {}
    }
    let reason = input.reason.trim();
    if reason.is_empty() || input.reason.chars().count() > 1000 {
        errors.push(field("reason", "required, at most 1000 characters"));
    }
    if input
        .ticket
        .as_ref()
        .is_some_and(|t| t.chars().count() > 200)
    {
        errors.push(field("ticket", "at most 200 characters"));
    }
    if !errors.is_empty() {
        return Err(AppError::validation(errors));
    }
    Ok(Valid {
        email,
        user_id,
        connection_id: input.connection_id,
        delete_api_keys: input.delete_api_keys,
        reason: reason.to_owned(),
        ticket: input.ticket.as_ref().map(|t| t.trim().to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> OffboardInput {
        OffboardInput {
            email: Some(" Alice@Corp.io ".into()),
            connection_id: Some(ConnectionId::new()),
            reason: "left".into(),
            ..Default::default()
        }
    }

    #[test]
    fn validation_names_every_field() {
        let v = validate(&input()).unwrap();
        assert_eq!(v.email.as_deref(), Some("alice@corp.io"));
        let bad = OffboardInput {
            email: None,
            user_id: Some("bob".into()),
            connection_id: Some(ConnectionId::new()),
            all_connections: true,
            reason: " ".into(),
            ..Default::default()
        };
        let e = validate(&bad).unwrap_err();
        let fields: Vec<_> = e.errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["user_id", "all_connections", "reason"]);
        let none = OffboardInput {
            connection_id: None,
            email: None,
            ..input()
        };
        let e = validate(&none).unwrap_err();
        let fields: Vec<_> = e.errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["email", "connection_id"]);
    }
}
