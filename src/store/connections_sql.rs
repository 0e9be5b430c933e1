//! Connections' SQL, rows and [`ConnectionStore`] implementation, compiled for each backend
//! like `inventory_sql.rs`. Every column type here decodes from SQLite and from Postgres alike.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{POSTGRES, This};
use crate::domain::{Connection, ConnectionId, LearnedRate, SealedSecret, TestReport};
use crate::store::{
    ConnectionChanges, ConnectionDelete, ConnectionStore, NewConnection, SealedKey, StoreError,
};

/// The columns every connection query selects (never the ciphertext).
macro_rules! connection_columns {
    () => {
        "connection_id, name, base_url, expected_organization_id, organization_id, \
         test_required, key_hint, last_test_report, created_at, created_by, updated_at, \
         updated_by"
    };
}

/// The columns of a sealed key and what it is bound to.
macro_rules! sealed_key_columns {
    () => {
        "connection_id, base_url, key_version, key_binding, key_ciphertext"
    };
}

/// Inserts a connection (`$9`/`$10` are both its creation and its last update).
const INSERT_CONNECTION: &str = concat!(
    "INSERT INTO connections (connection_id, name, base_url, expected_organization_id, \
     key_hint, key_version, key_binding, key_ciphertext, created_at, created_by, updated_at, \
     updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $9, $10) RETURNING ",
    connection_columns!()
);

const GET_CONNECTION: &str = concat!(
    "SELECT ",
    connection_columns!(),
    " FROM connections WHERE connection_id = $1"
);

/// Connections after the cursor `$1` (none: from the first), at most `$2`.
const LIST_CONNECTIONS: &str = concat!(
    "SELECT ",
    connection_columns!(),
    " FROM connections WHERE CAST($1 AS TEXT) IS NULL OR connection_id > $1 \
     ORDER BY connection_id LIMIT $2"
);

/// Every change in one statement: all land together or none do. `$4` says whether the
/// expected organization changes (to `$5`, maybe NULL); `$9` clears the last test.
const UPDATE_CONNECTION: &str = concat!(
    "UPDATE connections SET \
       name = COALESCE($2, name), \
       base_url = COALESCE($3, base_url), \
       expected_organization_id = CASE WHEN $4 THEN $5 ELSE expected_organization_id END, \
       key_hint = COALESCE($6, key_hint), \
       key_version = COALESCE($7, key_version), \
       key_ciphertext = COALESCE($8, key_ciphertext), \
       key_binding = COALESCE($12, key_binding), \
       last_test_report = CASE WHEN $9 THEN NULL ELSE last_test_report END, \
       test_required = CASE WHEN $9 THEN TRUE ELSE test_required END, \
       updated_at = $10, updated_by = $11 \
     WHERE connection_id = $1 RETURNING ",
    connection_columns!()
);

/// Postgres: locks the row first, so a grant being inserted (its foreign key check locks the
/// row too) either committed before and is seen by [`LIVE_GRANTS`], or fails once the row is
/// gone.
const LOCK_CONNECTION_PG: &str = "SELECT 1 FROM connections WHERE connection_id = $1 FOR UPDATE";

/// SQLite: a write first, so the transaction takes the database's write lock now and no
/// grant can be inserted between [`LIVE_GRANTS`] and the delete.
const LOCK_CONNECTION_SQLITE: &str =
    "UPDATE connections SET connection_id = connection_id WHERE connection_id = $1";

const LIVE_GRANTS: &str = "SELECT grant_id FROM grants WHERE connection_id = $1 \
     AND status IN ('pending', 'active', 'invited') ORDER BY grant_id";

/// Deletes a connection (its sealed key and snapshots go with it).
const DELETE_CONNECTION: &str = "DELETE FROM connections WHERE connection_id = $1";

const SEALED_KEY: &str = concat!(
    "SELECT ",
    sealed_key_columns!(),
    " FROM connections WHERE connection_id = $1"
);

/// Pins the organization (`$2`) unless pinned to another; `$3` clears `test_required`.
const PIN_ORGANIZATION: &str = "UPDATE connections SET organization_id = $2, \
     test_required = CASE WHEN $3 THEN FALSE ELSE test_required END \
     WHERE connection_id = $1 AND (organization_id IS NULL OR organization_id = $2)";

const SAVE_TEST_REPORT: &str =
    "UPDATE connections SET last_test_report = $2 WHERE connection_id = $1";

const LEARNED_RATES: &str = "SELECT scope, per_path, requests, window_ms, learned_at_ms \
     FROM learned_rates WHERE connection_id = $1";

/// A learned rate, unless the one stored for its scope is as new or newer.
const SAVE_LEARNED_RATE: &str = "INSERT INTO learned_rates \
     (connection_id, scope, per_path, requests, window_ms, learned_at_ms) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (connection_id, scope, per_path) DO UPDATE SET \
       requests = excluded.requests, window_ms = excluded.window_ms, \
       learned_at_ms = excluded.learned_at_ms \
     WHERE excluded.learned_at_ms > learned_rates.learned_at_ms";

/// Sealed keys not sealed under version `$1` with binding `$2`.
const KEYS_TO_RESEAL: &str = concat!(
    "SELECT ",
    sealed_key_columns!(),
    " FROM connections WHERE key_version <> $1 OR key_binding <> $2 ORDER BY connection_id"
);

/// Replaces the sealed key (`$2`, `$3`, `$6`) if it is still the expected one (`$4`, `$5`).
const SWAP_SEALED_KEY: &str = "UPDATE connections \
     SET key_version = $2, key_ciphertext = $3, key_binding = $6 \
     WHERE connection_id = $1 AND key_version = $4 AND key_ciphertext = $5";

/// One `connections` row without its sealed key.
#[derive(sqlx::FromRow)]
struct ConnectionRow {
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

#[derive(sqlx::FromRow)]
struct SealedKeyRow {
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

/// A grant id in `grants` that does not parse.
fn corrupt_grant_id() -> StoreError {
    StoreError::Other(sqlx::Error::Decode("corrupt grant_id in grants".into()))
}

#[async_trait]
impl ConnectionStore for This {
    async fn insert_connection(&self, new: NewConnection) -> Result<Connection, StoreError> {
        let row: ConnectionRow = sqlx::query_as(INSERT_CONNECTION)
            .bind(new.id.to_string())
            .bind(&new.name)
            .bind(new.base_url.as_str())
            .bind(&new.expected_organization_id)
            .bind(&new.key_hint)
            .bind(i64::from(new.sealed_key.key_version))
            .bind(i64::from(new.sealed_key.binding))
            .bind(&new.sealed_key.ciphertext)
            .bind(new.at)
            .bind(&new.by)
            .fetch_one(&self.pool)
            .await?;
        row.try_into()
    }

    async fn get_connection(&self, id: ConnectionId) -> Result<Connection, StoreError> {
        let row: ConnectionRow = sqlx::query_as(GET_CONNECTION)
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await?;
        row.try_into()
    }

    async fn list_connections(
        &self,
        after: Option<ConnectionId>,
        limit: u32,
    ) -> Result<Vec<Connection>, StoreError> {
        let rows: Vec<ConnectionRow> = sqlx::query_as(LIST_CONNECTIONS)
            .bind(after.map(|a| a.to_string()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(Connection::try_from).collect()
    }

    async fn update_connection(
        &self,
        id: ConnectionId,
        changes: ConnectionChanges,
        at: DateTime<Utc>,
        by: &str,
    ) -> Result<Connection, StoreError> {
        let (hint, sealed) = changes.key.unzip();
        let row: ConnectionRow = sqlx::query_as(UPDATE_CONNECTION)
            .bind(id.to_string())
            .bind(changes.name)
            .bind(changes.base_url.map(String::from))
            .bind(changes.expected_organization_id.is_some())
            .bind(changes.expected_organization_id.flatten())
            .bind(hint)
            .bind(sealed.as_ref().map(|s| i64::from(s.key_version)))
            .bind(sealed.as_ref().map(|s| s.ciphertext.clone()))
            .bind(changes.clear_last_test)
            .bind(at)
            .bind(by)
            .bind(sealed.as_ref().map(|s| i64::from(s.binding)))
            .fetch_one(&self.pool)
            .await?;
        let connection: Connection = row.try_into()?;
        self.model.rename(id, &connection.name);
        Ok(connection)
    }

    async fn delete_connection(&self, id: ConnectionId) -> Result<ConnectionDelete, StoreError> {
        let mut tx = self.pool.begin().await?;
        let lock = if POSTGRES {
            LOCK_CONNECTION_PG
        } else {
            LOCK_CONNECTION_SQLITE
        };
        sqlx::query(lock)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let live: Vec<(String,)> = sqlx::query_as(LIVE_GRANTS)
            .bind(id.to_string())
            .fetch_all(&mut *tx)
            .await?;
        if !live.is_empty() {
            return live
                .into_iter()
                .map(|(g,)| g.parse().map_err(|_| corrupt_grant_id()))
                .collect::<Result<_, _>>()
                .map(ConnectionDelete::LiveGrants);
        }
        let done = sqlx::query(DELETE_CONNECTION)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        self.model.remove(id);
        Ok(ConnectionDelete::Deleted)
    }

    async fn sealed_key(&self, id: ConnectionId) -> Result<SealedKey, StoreError> {
        let row: SealedKeyRow = sqlx::query_as(SEALED_KEY)
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await?;
        row.try_into()
    }

    async fn pin_organization(
        &self,
        id: ConnectionId,
        organization_id: &str,
        tested: bool,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(PIN_ORGANIZATION)
            .bind(id.to_string())
            .bind(organization_id)
            .bind(tested)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 1 {
            return Ok(true);
        }
        // Pinned elsewhere, or gone.
        self.get_connection(id).await.map(|_| false)
    }

    async fn save_test_report(
        &self,
        id: ConnectionId,
        report: &TestReport,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(SAVE_TEST_REPORT)
            .bind(id.to_string())
            .bind(Json(report))
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn learned_rates(&self, id: ConnectionId) -> Result<Vec<LearnedRate>, StoreError> {
        let rows: Vec<(String, bool, i64, i64, i64)> = sqlx::query_as(LEARNED_RATES)
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(scope, per_path, requests, window_ms, learned_at_ms)| LearnedRate {
                    scope,
                    per_path,
                    requests: u32::try_from(requests).unwrap_or(u32::MAX),
                    window_ms,
                    learned_at_ms,
                },
            )
            .collect())
    }

    async fn save_learned_rates(
        &self,
        id: ConnectionId,
        rates: &[LearnedRate],
    ) -> Result<(), StoreError> {
        if rates.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for rate in rates {
            let saved = sqlx::query(SAVE_LEARNED_RATE)
                .bind(id.to_string())
                .bind(&rate.scope)
                .bind(rate.per_path)
                .bind(i64::from(rate.requests))
                .bind(rate.window_ms)
                .bind(rate.learned_at_ms)
                .execute(&mut *tx)
                .await;
            // A foreign-key failure: the connection was deleted meanwhile.
            saved.map_err(crate::store::not_found_on_foreign_key)?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn keys_to_reseal(
        &self,
        version: u32,
        binding: u32,
    ) -> Result<Vec<SealedKey>, StoreError> {
        let rows: Vec<SealedKeyRow> = sqlx::query_as(KEYS_TO_RESEAL)
            .bind(i64::from(version))
            .bind(i64::from(binding))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn swap_sealed_key(
        &self,
        id: ConnectionId,
        expected: &SealedSecret,
        new: &SealedSecret,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(SWAP_SEALED_KEY)
            .bind(id.to_string())
            .bind(i64::from(new.key_version))
            .bind(&new.ciphertext)
            .bind(i64::from(expected.key_version))
            .bind(&expected.ciphertext)
            .bind(i64::from(new.binding))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
