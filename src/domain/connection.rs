//! A connection: one OpenAI organization reached with one admin key, and the rules on its fields.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{ConnectionId, TestReport};

/// A connection as stored and served. The admin key itself is never part of it: only its hint.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    pub id: ConnectionId,
    /// Unique human name, e.g. `acme-prod`.
    pub name: String,
    /// OpenAI API base URL, e.g. `https://api.openai.com/v1`.
    pub base_url: Url,
    /// The organization id the admin expects the key to belong to.
    pub expected_organization_id: Option<String>,
    /// `sk-admin-…abcd`: enough to recognise the key, useless to an attacker.
    pub key_hint: String,
    /// The organization the connection is pinned to: the expected one, or the one its key
    /// reached on the first successful call. Every answer from OpenAI must name it.
    pub organization_id: Option<String>,
    /// The key or base URL changed since the last successful test: nothing calls OpenAI
    /// with this connection until a test passes (and reaches the pinned organization).
    pub test_required: bool,
    pub last_test: Option<TestReport>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
}

/// What OpenAI was seen to allow on one endpoint scope of a connection: `requests` per
/// `window_ms` on a template (`GET /organization/projects/{}/users`) or, with `per_path`, on
/// one concrete path. Kept so a restart or another replica does not learn it again from 429s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedRate {
    pub scope: String,
    pub per_path: bool,
    pub requests: u32,
    pub window_ms: i64,
    /// Unix milliseconds; the newest of two wins.
    pub learned_at_ms: i64,
}

/// An admin key sealed by the key ring: `key_version` names the encryption key,
/// `ciphertext` is nonce ‖ AEAD output. Opaque to everything but `crypto`.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub key_version: u32,
    /// What the associated data binds it to: 1 = row and key version (legacy, opened only to
    /// re-seal), 2 = also the base URL the key may be sent to.
    pub binding: u32,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_version", &self.key_version)
            .field("binding", &self.binding)
            .field("len", &self.ciphertext.len())
            .finish()
    }
}

/// A field that breaks a rule, with a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

pub const MAX_NAME_LEN: usize = 100;

/// Checks a connection name: at most 100 characters as sent, not blank, no control
/// characters; trimmed.
pub fn validate_name(name: &str) -> Result<String, ValidationError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(ValidationError::new(
            "name",
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "name",
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Checks an expected organization id: OpenAI's look like `org-…` (exactly; the schema's
/// pattern says the same).
pub fn validate_organization_id(org: &str) -> Result<String, ValidationError> {
    let ok = org.starts_with("org-")
        && org.len() <= 64
        && org[4..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && org.len() > 4;
    if ok {
        Ok(org.to_owned())
    } else {
        Err(ValidationError::new(
            "expected_organization_id",
            "must look like an OpenAI organization id (`org-` followed by letters and digits)",
        ))
    }
}

/// An OpenAI admin API key that passed the format check. Redacts itself in `Debug`.
#[derive(Clone)]
pub struct AdminKey(SecretString);

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminKey({})", self.hint())
    }
}

pub const ADMIN_KEY_PREFIX: &str = "sk-admin-";

impl AdminKey {
    /// Accepts `sk-admin-…` keys; explains the usual mistake (a project key) clearly.
    pub fn parse(key: SecretString) -> Result<Self, ValidationError> {
        let raw = key.expose_secret();
        if raw.trim() != raw || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ValidationError::new(
                "admin_key",
                "must not contain whitespace (check for a trailing newline when pasting)",
            ));
        }
        if !raw.starts_with(ADMIN_KEY_PREFIX) {
            let hint = if raw.starts_with("sk-") {
                "this looks like a project or user API key; the administration API needs an \
                 admin key (`sk-admin-…`), created by an organization owner under \
                 Settings > Organization > Admin keys"
            } else {
                "must be an OpenAI admin API key (`sk-admin-…`)"
            };
            return Err(ValidationError::new("admin_key", hint));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ValidationError::new(
                "admin_key",
                "must be ASCII letters, digits and punctuation, as OpenAI's keys are",
            ));
        }
        if raw.len() < ADMIN_KEY_PREFIX.len() + 8 || raw.len() > 512 {
            return Err(ValidationError::new(
                "admin_key",
                "has an implausible length for an OpenAI admin key",
            ));
        }
        Ok(Self(key))
    }

    /// `sk-admin-…abcd`: the prefix and the last four characters.
    pub fn hint(&self) -> String {
        let raw = self.0.expose_secret();
        let tail: String = raw
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("{ADMIN_KEY_PREFIX}…{tail}")
    }

    /// The secret, for the crypto module and the OpenAI client only.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_key_rules() {
        let ok = AdminKey::parse("sk-admin-abcdefgh1234WXYZ".into()).unwrap();
        assert_eq!(ok.hint(), "sk-admin-…WXYZ");
        assert!(!format!("{ok:?}").contains("abcdefgh"));
        let proj = AdminKey::parse("sk-proj-abcdefghijkl".into()).unwrap_err();
        assert!(proj.message.contains("project"));
        assert!(AdminKey::parse("sk-admin-abc".into()).is_err());
        assert!(AdminKey::parse("sk-admin-abcdefgh1234\n".into()).is_err());
        assert!(AdminKey::parse("hello".into()).is_err());
    }

    #[test]
    fn name_and_org_rules() {
        assert_eq!(validate_name("  prod ").unwrap(), "prod");
        assert!(validate_name("   ").is_err());
        assert!(validate_name(&"x".repeat(101)).is_err());
        assert!(validate_name("a\u{7}b").is_err());
        assert!(validate_organization_id("org-abc123").is_ok());
        assert!(validate_organization_id("org-").is_err());
        assert!(validate_organization_id("acme").is_err());
    }
}
