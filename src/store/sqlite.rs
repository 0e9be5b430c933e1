//! The embedded default: a SQLite file (WAL mode, `secure_delete` so a deleted key's
//! ciphertext is overwritten in the file, not just unlinked).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;

use super::access_sql::access_store;
use super::audit_sql::audit_store;
use super::changes_sql::changes_store;
use super::grants_sql::grant_store;
use super::inventory_sql::inventory_store;
use super::offboarding_sql::offboarding_store;
use super::rows::{
    CONNECTION_COLUMNS, ConnectionRow, SEALED_KEY_COLUMNS, SealedKeyRow, connections,
    corrupt_grant_id,
};
use super::{ConnectionChanges, ConnectionDelete, NewConnection, SealedKey, Store, StoreError};
use crate::domain::{Connection, ConnectionId, SealedSecret, TestReport};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// SQLite implementation of [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The same database with `synchronous = NORMAL`: commits that need not wait for the
    /// disk flush (see [`super::GrantStore`]).
    lazy: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file a `sqlite:` URL names.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .pragma("secure_delete", "ON");
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(e.into()))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            // A file on this machine does not go stale: skip a round trip per query.
            .test_before_acquire(false)
            .connect_with(options.clone().synchronous(SqliteSynchronous::Full))
            .await?;
        // The safety level cannot change inside a transaction, hence a pool of its own.
        let lazy = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await?;
        Ok(Self { pool, lazy })
    }
}

inventory_store!(SqliteStore, false);
changes_store!(SqliteStore, sqlx::Sqlite, false);
access_store!(SqliteStore, false);
audit_store!(SqliteStore, sqlx::Sqlite, false);
offboarding_store!(SqliteStore, false);
grant_store!(SqliteStore, sqlx::Sqlite, false);

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(e.into()))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_connection(&self, new: NewConnection) -> Result<Connection, StoreError> {
        let sql = format!(
            "INSERT INTO connections (connection_id, name, base_url, expected_organization_id, \
             key_hint, key_version, key_binding, key_ciphertext, created_at, created_by, \
             updated_at, updated_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?9, ?10) RETURNING {CONNECTION_COLUMNS}"
        );
        let row: ConnectionRow = sqlx::query_as(AssertSqlSafe(sql))
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
        let sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE connection_id = ?1");
        let row: ConnectionRow = sqlx::query_as(AssertSqlSafe(sql))
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
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections \
             WHERE ?1 IS NULL OR connection_id > ?1 ORDER BY connection_id LIMIT ?2"
        );
        let rows: Vec<ConnectionRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(after.map(|a| a.to_string()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        connections(rows)
    }

    async fn update_connection(
        &self,
        id: ConnectionId,
        changes: ConnectionChanges,
        at: DateTime<Utc>,
        by: &str,
    ) -> Result<Connection, StoreError> {
        // One statement: all changes land together or none do.
        let sql = format!(
            "UPDATE connections SET \
               name = COALESCE(?2, name), \
               base_url = COALESCE(?3, base_url), \
               expected_organization_id = CASE WHEN ?4 THEN ?5 ELSE expected_organization_id END, \
               key_hint = COALESCE(?6, key_hint), \
               key_version = COALESCE(?7, key_version), \
               key_ciphertext = COALESCE(?8, key_ciphertext), \
               key_binding = COALESCE(?12, key_binding), \
               last_test_report = CASE WHEN ?9 THEN NULL ELSE last_test_report END, \
               test_required = CASE WHEN ?9 THEN TRUE ELSE test_required END, \
               updated_at = ?10, updated_by = ?11 \
             WHERE connection_id = ?1 RETURNING {CONNECTION_COLUMNS}"
        );
        let (hint, sealed) = changes.key.unzip();
        let row: ConnectionRow = sqlx::query_as(AssertSqlSafe(sql))
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
        row.try_into()
    }

    async fn delete_connection(&self, id: ConnectionId) -> Result<ConnectionDelete, StoreError> {
        let mut tx = self.pool.begin().await?;
        // A write first: SQLite takes the database's write lock now, so no grant can be
        // inserted between the check below and the delete.
        sqlx::query(
            "UPDATE connections SET connection_id = connection_id WHERE connection_id = ?1",
        )
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let live: Vec<(String,)> = sqlx::query_as(
            "SELECT grant_id FROM grants WHERE connection_id = ?1 \
             AND status IN ('pending', 'active', 'invited') ORDER BY grant_id",
        )
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
        let done = sqlx::query("DELETE FROM connections WHERE connection_id = ?1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(ConnectionDelete::Deleted)
    }

    async fn sealed_key(&self, id: ConnectionId) -> Result<SealedKey, StoreError> {
        let sql = format!("SELECT {SEALED_KEY_COLUMNS} FROM connections WHERE connection_id = ?1");
        let row: SealedKeyRow = sqlx::query_as(AssertSqlSafe(sql))
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
        let done = sqlx::query(
            "UPDATE connections SET organization_id = ?2, \
             test_required = CASE WHEN ?3 THEN FALSE ELSE test_required END \
             WHERE connection_id = ?1 AND (organization_id IS NULL OR organization_id = ?2)",
        )
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
        let done =
            sqlx::query("UPDATE connections SET last_test_report = ?2 WHERE connection_id = ?1")
                .bind(id.to_string())
                .bind(Json(report))
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn keys_to_reseal(
        &self,
        version: u32,
        binding: u32,
    ) -> Result<Vec<SealedKey>, StoreError> {
        let sql = format!(
            "SELECT {SEALED_KEY_COLUMNS} FROM connections \
             WHERE key_version <> ?1 OR key_binding <> ?2 ORDER BY connection_id"
        );
        let rows: Vec<SealedKeyRow> = sqlx::query_as(AssertSqlSafe(sql))
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
        let done = sqlx::query(
            "UPDATE connections SET key_version = ?2, key_ciphertext = ?3, key_binding = ?6 \
             WHERE connection_id = ?1 AND key_version = ?4 AND key_ciphertext = ?5",
        )
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
