//! A person as requests name them: an email address or an OpenAI user id, each checked once
//! when a request is parsed (grants, offboarding, access queries).

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// An email address, trimmed and lower-cased (how OpenAI compares them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// The message a request's `email` field gets when it is not one.
    pub const INVALID: &'static str = "must be an email address";

    /// The longest address (RFC 5321's path limit), as the OpenAPI document states it.
    pub const MAX_LEN: usize = 320;

    /// Checks a caller's email (surrounding spaces aside): at most [`Self::MAX_LEN`] characters,
    /// one `@` with something on both sides, no spaces or control characters — what
    /// `format: email` lets through, and no more.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let e = raw.trim().to_lowercase();
        // Counted as sent, in characters, as the document's maxLength counts.
        let valid = raw.chars().count() <= Self::MAX_LEN
            && !e.chars().any(|c| c.is_whitespace() || c.is_control())
            && e.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            });
        if !valid {
            return Err(Self::INVALID);
        }
        Ok(Self(e))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// An OpenAI user id (`user-…`), trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// The message a request's `user_id` field gets when it is not one.
    pub const INVALID: &'static str = "must be an OpenAI user id (user-…)";

    /// The longest user id accepted.
    pub const MAX_LEN: usize = 100;

    /// Checks a caller's user id: `user-…` once trimmed, at most [`Self::MAX_LEN`]
    /// characters as sent (what the document's `maxLength` counts).
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let u = raw.trim();
        if !u.starts_with("user-") || raw.chars().count() > Self::MAX_LEN {
            return Err(Self::INVALID);
        }
        Ok(Self(u.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

macro_rules! as_text {
    ($($t:ty),*) => {$(
        impl Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
as_text!(Email, UserId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_user_ids_are_checked_and_normalised() {
        assert_eq!(
            Email::parse(" Alice@Corp.io ").map(|e| e.into_string()),
            Ok("alice@corp.io".to_owned())
        );
        for bad in [
            "alice",
            "@corp.io",
            "alice@",
            "",
            "a@b@c.io",
            "al ice@corp.io",
            "a\u{7}@c.io",
        ] {
            assert_eq!(Email::parse(bad), Err(Email::INVALID));
        }
        assert_eq!(
            UserId::parse(" user-1 ").map(|u| u.into_string()),
            Ok("user-1".to_owned())
        );
        assert_eq!(UserId::parse("bob"), Err(UserId::INVALID));
        // Lengths count characters as sent, spaces included (the document's maxLength).
        let padded = format!("{}user-1", " ".repeat(95));
        assert_eq!(UserId::parse(&padded), Err(UserId::INVALID));
        assert!(UserId::parse(&padded[1..]).is_ok());
        let wide = format!("{}@c.io", "é".repeat(200));
        assert!(Email::parse(&wide).is_ok(), "200 characters, 400 bytes");
    }
}
