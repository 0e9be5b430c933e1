//! Typed identifiers, so a connection id cannot be passed where another id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Identifier of a connection to one OpenAI organization. UUIDv7, so ids sort by creation time
/// and make a stable pagination cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ConnectionId(pub Uuid);

impl ConnectionId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for ConnectionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for ConnectionId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Identifier of a grant (a request for access, and its fate). UUIDv7, like [`ConnectionId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct GrantId(pub Uuid);

impl GrantId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for GrantId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for GrantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for GrantId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// A malformed id: the message the API answers it with (a 400 `invalid_parameter`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{raw}` is not a {what} (a UUID)")]
pub struct InvalidId {
    /// `connection id`, `grant id`, `sync id`.
    pub what: &'static str,
    /// The text given, cut to 64 characters (it is echoed back).
    pub raw: String,
}

impl InvalidId {
    fn new(what: &'static str, raw: &str) -> Self {
        Self {
            what,
            raw: raw.chars().take(64).collect(),
        }
    }
}

/// Only the hyphenated form (`format: uuid` in the OpenAPI document): `Uuid::parse_str`
/// alone would also take the simple, braced and URN forms the schema calls invalid.
fn parse_id<T>(what: &'static str, raw: &str, id: fn(Uuid) -> T) -> Result<T, InvalidId> {
    parse_uuid(what, raw).map(id)
}

/// A hyphenated UUID, or [`InvalidId`] naming `what` was expected (e.g. `offboarding id`).
pub fn parse_uuid(what: &'static str, raw: &str) -> Result<Uuid, InvalidId> {
    if raw.len() != 36 {
        return Err(InvalidId::new(what, raw));
    }
    Uuid::try_parse(raw).map_err(|_| InvalidId::new(what, raw))
}

/// Deserializes an id from its text form; a malformed one fails with [`InvalidId`]'s message
/// (which a path, query or body rejection then carries).
struct IdVisitor<T> {
    what: &'static str,
    id: fn(Uuid) -> T,
}

impl<T> serde::de::Visitor<'_> for IdVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} (a UUID)", self.what)
    }

    fn visit_str<E: serde::de::Error>(self, raw: &str) -> Result<T, E> {
        parse_id(self.what, raw, self.id).map_err(E::custom)
    }
}

impl ConnectionId {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        parse_id("connection id", raw, Self)
    }
}

impl GrantId {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        parse_id("grant id", raw, Self)
    }
}

impl super::SyncId {
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        parse_id("sync id", raw, Self)
    }
}

impl<'de> Deserialize<'de> for ConnectionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(IdVisitor {
            what: "connection id",
            id: Self,
        })
    }
}

impl<'de> Deserialize<'de> for GrantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(IdVisitor {
            what: "grant id",
            id: Self,
        })
    }
}

impl<'de> Deserialize<'de> for super::SyncId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(IdVisitor {
            what: "sync id",
            id: Self,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_ids_say_which_id_and_cut_the_value_short() {
        let long = "x".repeat(100);
        let err = ConnectionId::parse(&long).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("`{}` is not a connection id (a UUID)", &long[..64])
        );
        let err = serde_json::from_str::<GrantId>("\"42\"").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`42` is not a grant id (a UUID)"),
            "{err}"
        );
        for other_form in [
            "67e5504410b1426f9247bb680e5fe0c8",
            "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
            "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
        ] {
            assert!(GrantId::parse(other_form).is_err(), "{other_form}");
        }
        assert!(GrantId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").is_ok());
        let id = GrantId::new();
        let back: GrantId = serde_json::from_str(&serde_json::to_string(&id).unwrap()).unwrap();
        assert_eq!(back, id);
    }
}
