//! Rows as the database returns them, and their conversion to domain types. Shared by both
//! backends: every column type here decodes from SQLite and from Postgres alike.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{SealedKey, StoreError};
use crate::domain::{Connection, SealedSecret, TestReport};

/// The columns every connection query selects (never the ciphertext).
/// Interpolated into queries with `AssertSqlSafe`: a constant, never caller data.
pub(super) const CONNECTION_COLUMNS: &str = "connection_id, name, base_url, \
    expected_organization_id, organization_id, test_required, key_hint, last_test_report, \
    created_at, created_by, updated_at, updated_by";

/// The columns of a sealed key and what it is bound to.
pub(super) const SEALED_KEY_COLUMNS: &str =
    "connection_id, base_url, key_version, key_binding, key_ciphertext";

/// One `connections` row without its sealed key.
#[derive(sqlx::FromRow)]
pub(super) struct ConnectionRow {
    connection_id: String,
    name: String,
    base_url: String,
    expected_organization_id: Option<String>,
    organization_id: Option<String>,
    test_required: bool,
    key_hint: String,
    last_test_report: Option<Json<TestReport>>,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
}

/// A stored value that does not parse: the database was edited by hand or by a newer version.
fn corrupt(what: &str) -> StoreError {
    StoreError::Other(sqlx::Error::Decode(
        format!("corrupt {what} in connections").into(),
    ))
}

impl TryFrom<ConnectionRow> for Connection {
    type Error = StoreError;
    fn try_from(row: ConnectionRow) -> Result<Self, StoreError> {
        Ok(Connection {
            id: row
                .connection_id
                .parse()
                .map_err(|_| corrupt("connection_id"))?,
            name: row.name,
            base_url: row.base_url.parse().map_err(|_| corrupt("base_url"))?,
            expected_organization_id: row.expected_organization_id,
            organization_id: row.organization_id,
            test_required: row.test_required,
            key_hint: row.key_hint,
            last_test: row.last_test_report.map(|j| j.0),
            created_at: row.created_at,
            created_by: row.created_by,
            updated_at: row.updated_at,
            updated_by: row.updated_by,
        })
    }
}

/// The sealed key columns.
#[derive(sqlx::FromRow)]
pub(super) struct SealedKeyRow {
    connection_id: String,
    base_url: String,
    key_version: i64,
    key_binding: i64,
    key_ciphertext: Vec<u8>,
}

impl TryFrom<SealedKeyRow> for SealedKey {
    type Error = StoreError;
    fn try_from(row: SealedKeyRow) -> Result<Self, StoreError> {
        Ok(SealedKey {
            id: row
                .connection_id
                .parse()
                .map_err(|_| corrupt("connection_id"))?,
            base_url: row.base_url.parse().map_err(|_| corrupt("base_url"))?,
            sealed: SealedSecret {
                key_version: u32::try_from(row.key_version).map_err(|_| corrupt("key_version"))?,
                binding: u32::try_from(row.key_binding).map_err(|_| corrupt("key_binding"))?,
                ciphertext: row.key_ciphertext,
            },
        })
    }
}

/// Converts a list of rows, failing on the first corrupt one.
pub(super) fn connections(rows: Vec<ConnectionRow>) -> Result<Vec<Connection>, StoreError> {
    rows.into_iter().map(Connection::try_from).collect()
}

/// A grant id in `grants` that does not parse.
pub(super) fn corrupt_grant_id() -> StoreError {
    StoreError::Other(sqlx::Error::Decode("corrupt grant_id in grants".into()))
}
