//! Grants and the write-through to the current snapshot: SQL and [`GrantStore`]
//! implementation, compiled for each backend like `inventory_sql.rs`.
//!
//! Two columns keep writes single: `lock_key` (unique) holds the grant's `access_key` while a
//! write on that membership is in flight, so a second request for the same access waits
//! instead of writing twice; `lease_owner`/`lease_until` say who works on the grant, so the
//! expiry worker and the reconciler of one replica never act on a grant another one holds.
//! Claims are single conditional `UPDATE`s: in Postgres the losing updater re-checks the
//! condition after the winner commits and matches nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use super::audit_sql::insert_audit;
use super::changes_sql::{INSERT_EXPECTED, bind_expected};
use super::{Conn, POSTGRES, Query, This};
use crate::store::grant_record::{GrantRecord, decode};
use crate::domain::grants::{Grant, GrantQuery, GrantStatus};
use crate::domain::{ConnectionId, GrantId, Item, ItemKind};
use crate::store::{GrantSaveExtras, GrantStore, StoreError, grant_write_error};

/// Columns rewritten from the record on every save.
pub(super) const INSERT_GRANT: &str = "INSERT INTO grants (grant_id, connection_id, status, \
     email, user_id, project_id, expires_at, access_key, lock_key, lease_owner, lease_until, \
     created_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12)";

/// Saves the record while the caller still holds its lease (`$8` owner); `$7` true releases
/// the lock and lease.
pub(super) const SAVE_GRANT: &str = "UPDATE grants SET status = $2, email = $3, user_id = $4, \
     expires_at = $5, data = $6, \
     lock_key = CASE WHEN $7 THEN NULL ELSE lock_key END, \
     lease_owner = CASE WHEN $7 THEN NULL ELSE lease_owner END, \
     lease_until = CASE WHEN $7 THEN NULL ELSE lease_until END \
     WHERE grant_id = $1 AND lease_owner = $8";

/// Postgres: [`SAVE_GRANT`] and the expected change of the write it plans
/// ([`INSERT_EXPECTED`], binds `$9`–`$15`) as one statement, so the record
/// that must reach the disk before the write costs one round trip. The expectation is
/// inserted only if the grant was saved: one row affected means both.
pub(super) const SAVE_GRANT_EXPECTING_PG: &str = "WITH saved AS (UPDATE grants SET status = $2, \
     email = $3, user_id = $4, expires_at = $5, data = $6, \
     lock_key = CASE WHEN $7 THEN NULL ELSE lock_key END, \
     lease_owner = CASE WHEN $7 THEN NULL ELSE lease_owner END, \
     lease_until = CASE WHEN $7 THEN NULL ELSE lease_until END \
     WHERE grant_id = $1 AND lease_owner = $8 RETURNING 1) \
     INSERT INTO expected_changes (connection_id, kind, item_key, change, role, status, until_at) \
     SELECT $9, $10, $11, $12, $13, $14, $15 FROM saved";

/// Takes a lease on a grant in one of the listed statuses (`$5`, a comma-separated list)
/// unless someone else's lease is live at `$4`, and with `$6` the access lock.
pub(super) const CLAIM_GRANT: &str = "UPDATE grants \
     SET lock_key = CASE WHEN $6 THEN access_key ELSE lock_key END, \
     lease_owner = $2, lease_until = $3 \
     WHERE grant_id = $1 AND (lease_until IS NULL OR lease_until < $4) \
     AND (',' || $5 || ',') LIKE ('%,' || status || ',%') \
     RETURNING data";

/// Drops a stale lock left by a crashed writer on the same access (its lease ran out), so
/// the claim that follows can take it; the crashed grant itself is reconciled separately.
pub(super) const DROP_STALE_LOCK: &str = "UPDATE grants SET lock_key = NULL \
     WHERE lock_key = $1 AND lease_until < $2";

/// [`DROP_STALE_LOCK`] for the access of grant `$1`. A write as a transaction's first
/// statement: SQLite then takes the write lock at once (waiting out `busy_timeout`) instead of
/// failing a read transaction's later upgrade with "database is locked".
pub(super) const DROP_STALE_LOCK_OF: &str = "UPDATE grants SET lock_key = NULL \
     WHERE lock_key = (SELECT access_key FROM grants WHERE grant_id = $1) AND lease_until < $2";

pub(super) const GET_GRANT: &str = "SELECT data FROM grants WHERE grant_id = $1";

/// Grants needing work at `$1`, with no live lease: due for expiry, interrupted (pending), or
/// waiting for an invite to be accepted (polled no more often than `$2`: their `updated_at` is
/// not in `data`'s columns, so the lease doubles as "last polled").
pub(super) const GRANTS_NEEDING_WORK: &str = "SELECT data FROM grants \
     WHERE (lease_until IS NULL OR lease_until < $1) \
     AND (status = 'pending' \
       OR (status IN ('active', 'invited') AND expires_at IS NOT NULL AND expires_at <= $1) \
       OR status = 'invited') \
     ORDER BY grant_id LIMIT $2";

/// A page of grants matching `q` (filters bound in order), newest last.
pub(super) fn grant_page_sql(q: &GrantQuery) -> (String, Vec<String>) {
    let mut sql = String::from("SELECT data FROM grants WHERE 1 = 1");
    let mut binds = Vec::new();
    let mut filter = |column: &str, value: Option<String>| {
        if let Some(v) = value {
            binds.push(v);
            sql.push_str(&format!(" AND {column} = ${}", binds.len()));
        }
    };
    filter("connection_id", q.connection_id.map(|c| c.to_string()));
    filter("status", q.status.map(|s| s.as_str().to_owned()));
    filter("email", q.email.as_ref().map(|e| e.to_lowercase()));
    filter("project_id", q.project_id.clone());
    if let Some(after) = q.after {
        binds.push(after.to_string());
        sql.push_str(&format!(" AND grant_id > ${}", binds.len()));
    }
    sql.push_str(&format!(" ORDER BY grant_id LIMIT {}", q.limit));
    (sql, binds)
}

/// The columns a grant's record fills, in `INSERT_GRANT` / `SAVE_GRANT` terms.
pub(super) fn email_of(g: &Grant) -> Option<String> {
    g.grantee.email.as_ref().map(|e| e.to_lowercase())
}

/// Drops an item from the connection's current snapshot.
pub(super) const HEAD_DELETE_ITEM: &str = "DELETE FROM inventory_items \
     WHERE kind = $2 AND item_key = $3 \
     AND sync_id = (SELECT sync_id FROM inventory_heads WHERE connection_id = $1)";

/// Puts an item in the connection's current snapshot, replacing the one with its key.
pub(super) const HEAD_UPSERT_ITEM: &str = "INSERT INTO inventory_items \
     (sync_id, kind, item_key, parent_id, subject_id, email, role, status, data) \
     SELECT sync_id, $2, $3, $4, $5, $6, $7, $8, $9 FROM inventory_heads WHERE connection_id = $1 \
     ON CONFLICT (sync_id, kind, item_key) DO UPDATE SET parent_id = excluded.parent_id, \
     subject_id = excluded.subject_id, email = excluded.email, role = excluded.role, \
     status = excluded.status, data = excluded.data";

/// Binds `$1`–`$8` of [`SAVE_GRANT`] (and [`SAVE_GRANT_EXPECTING_PG`]).
fn bind_save<'q>(query: Query<'q>, g: &Grant, release: bool, owner: &str) -> Query<'q> {
    query
        .bind(g.id.to_string())
        .bind(g.status().as_str())
        .bind(email_of(g))
        .bind(&g.grantee.user_id)
        .bind(g.expires_at)
        .bind(Json(GrantRecord::from(g)))
        .bind(release)
        .bind(owner)
}

/// Bumps a head's version for a write-through (no row: no head, nothing to patch).
pub(super) const BUMP_HEAD: &str =
    "UPDATE inventory_heads SET version = version + 1 WHERE connection_id = $1 RETURNING version";

/// Logs an item a write-through touched, for the other replicas' read models.
pub(super) const LOG_PATCH: &str = "INSERT INTO head_patches (connection_id, version, kind, \
     item_key) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";

/// Replaces items of the connection's current snapshot on `conn`, and logs them under a new
/// head version (see `read_model.rs`).
async fn patch_head_on(
    conn: &mut Conn,
    connection_id: ConnectionId,
    upserts: &[Item],
    removals: &[(ItemKind, String)],
) -> Result<(), StoreError> {
    if upserts.is_empty() && removals.is_empty() {
        return Ok(());
    }
    let id = connection_id.to_string();
    let version: Option<(i64,)> = sqlx::query_as(BUMP_HEAD)
        .bind(&id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some((version,)) = version else {
        return Ok(());
    };
    let touched = removals
        .iter()
        .map(|(k, key)| (*k, key))
        .chain(upserts.iter().map(|i| (i.kind, &i.key)));
    for (kind, key) in touched {
        sqlx::query(LOG_PATCH)
            .bind(&id)
            .bind(version)
            .bind(kind.as_str())
            .bind(key)
            .execute(&mut *conn)
            .await?;
    }
    for (kind, key) in removals {
        sqlx::query(HEAD_DELETE_ITEM)
            .bind(&id)
            .bind(kind.as_str())
            .bind(key)
            .execute(&mut *conn)
            .await?;
    }
    for i in upserts {
        sqlx::query(HEAD_UPSERT_ITEM)
            .bind(&id)
            .bind(i.kind.as_str())
            .bind(&i.key)
            .bind(&i.parent_id)
            .bind(&i.subject_id)
            .bind(&i.email)
            .bind(&i.role)
            .bind(&i.status)
            .bind(Json(&i.data))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl GrantStore for This {
    async fn insert_grant(
        &self,
        g: &Grant,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let key = g.access_key();
        // One statement, committed on its own; a lock held by a lease that ran out is dropped
        // (and the insert tried again) only when it is in the way.
        for retry in [true, false] {
            let inserted = sqlx::query(INSERT_GRANT)
                .bind(g.id.to_string())
                .bind(g.connection_id.to_string())
                .bind(g.status().as_str())
                .bind(email_of(g))
                .bind(&g.grantee.user_id)
                .bind(g.target.project_id())
                .bind(g.expires_at)
                .bind(&key)
                .bind(owner)
                .bind(until)
                .bind(g.created_at)
                .bind(Json(GrantRecord::from(g)))
                .execute(&self.lazy)
                .await
                .map_err(grant_write_error);
            match inserted {
                Err(StoreError::Locked) if retry => {
                    let dropped = sqlx::query(DROP_STALE_LOCK)
                        .bind(&key)
                        .bind(now)
                        .execute(&self.lazy)
                        .await?
                        .rows_affected();
                    if dropped == 0 {
                        return Err(StoreError::Locked);
                    }
                }
                other => return other.map(|_| ()),
            }
        }
        Err(StoreError::Locked)
    }

    async fn get_grant(&self, id: GrantId) -> Result<Grant, StoreError> {
        let (g,): (Json<GrantRecord>,) = sqlx::query_as(GET_GRANT)
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(decode(g)?)
    }

    async fn list_grants(&self, q: &GrantQuery) -> Result<Vec<Grant>, StoreError> {
        let (sql, binds) = grant_page_sql(q);
        let mut query = sqlx::query_as::<_, (Json<GrantRecord>,)>(AssertSqlSafe(sql));
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(g,)| decode(g)).collect::<Result<_, _>>()?)
    }

    async fn claim_grant(
        &self,
        id: GrantId,
        statuses: &[GrantStatus],
        lock: bool,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Grant>, StoreError> {
        let statuses = statuses
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let mut tx = self.lazy.begin().await?;
        sqlx::query(DROP_STALE_LOCK_OF)
            .bind(id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let row: Option<(Json<GrantRecord>,)> = sqlx::query_as(CLAIM_GRANT)
            .bind(id.to_string())
            .bind(owner)
            .bind(until)
            .bind(now)
            .bind(statuses)
            .bind(lock)
            .fetch_optional(&mut *tx)
            .await
            .map_err(grant_write_error)?;
        tx.commit().await?;
        if row.is_none() {
            // Not claimable, or absent: tell the two apart.
            self.get_grant(id).await?;
        }
        Ok(row.map(|(g,)| decode(g)).transpose()?)
    }

    async fn save_grant(
        &self,
        g: &Grant,
        owner: &str,
        release: bool,
        extras: GrantSaveExtras<'_>,
    ) -> Result<bool, StoreError> {
        if POSTGRES
            && let Some(e) = extras.expect
            && extras.audit.is_none()
            && extras.upserts.is_empty()
            && extras.removals.is_empty()
        {
            let save = bind_save(sqlx::query(SAVE_GRANT_EXPECTING_PG), g, release, owner);
            let saved = bind_expected(save, e)
                .execute(&self.pool)
                .await?
                .rows_affected();
            return Ok(saved == 1);
        }
        let pool = if extras.lazy_commit && extras.expect.is_none() {
            &self.lazy
        } else {
            &self.pool
        };
        let mut tx = pool.begin().await?;
        let saved = bind_save(sqlx::query(SAVE_GRANT), g, release, owner)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !saved {
            return Ok(false);
        }
        if let Some(e) = extras.expect {
            bind_expected(sqlx::query(INSERT_EXPECTED), e)
                .execute(&mut *tx)
                .await?;
        }
        patch_head_on(&mut tx, g.connection_id, extras.upserts, extras.removals).await?;
        // Last: appending locks the audit chain's head until the commit.
        if let Some(entry) = extras.audit {
            insert_audit(&mut tx, entry).await?;
        }
        tx.commit().await?;
        self.model
            .patch(g.connection_id, extras.upserts.iter().cloned(), extras.removals, None);
        Ok(true)
    }

    async fn grants_needing_work(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Grant>, StoreError> {
        let rows: Vec<(Json<GrantRecord>,)> = sqlx::query_as(GRANTS_NEEDING_WORK)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(g,)| decode(g)).collect::<Result<_, _>>()?)
    }

    async fn patch_head(
        &self,
        connection_id: ConnectionId,
        upserts: &[Item],
        removals: &[(ItemKind, String)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        patch_head_on(&mut tx, connection_id, upserts, removals).await?;
        tx.commit().await?;
        self.model
            .patch(connection_id, upserts.iter().cloned(), removals, None);
        Ok(())
    }
}
