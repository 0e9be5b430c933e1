//! The inventory's SQL and rows, shared by both backends: the statements are written once
//! with SQLite's `?N` placeholders and turned into Postgres' `$N` by [`dialect`].

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::StoreError;
use crate::domain::{
    Item, ItemKind, ItemPage, ItemQuery, Replaced, SyncId, SyncRun, SyncStats, SyncStatus,
};

/// Rewrites `?N` placeholders as `$N` for Postgres; SQLite's text is returned unchanged.
pub(super) fn dialect(sql: &str, postgres: bool) -> String {
    if !postgres {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// Takes the connection's lease unless a live one exists; returns the sync id on success.
pub(super) const TAKE_LEASE: &str = "INSERT INTO sync_leases (connection_id, sync_id, expires_at) \
     VALUES (?1, ?2, ?3) ON CONFLICT (connection_id) DO UPDATE \
     SET sync_id = excluded.sync_id, expires_at = excluded.expires_at \
     WHERE sync_leases.expires_at < ?4 RETURNING sync_id";
/// Who holds the lease.
pub(super) const LEASE_HOLDER: &str = "SELECT sync_id FROM sync_leases WHERE connection_id = ?1";
/// Extends a held lease.
pub(super) const RENEW_LEASE: &str =
    "UPDATE sync_leases SET expires_at = ?3 WHERE connection_id = ?1 AND sync_id = ?2";
/// Releases a held lease (one row affected = it was still ours).
pub(super) const RELEASE_LEASE: &str =
    "DELETE FROM sync_leases WHERE connection_id = ?1 AND sync_id = ?2";
/// Items of runs whose worker died (their lease expired and was just taken over).
pub(super) const DELETE_ABANDONED_ITEMS: &str = "DELETE FROM inventory_items WHERE sync_id IN \
     (SELECT sync_id FROM inventory_syncs WHERE connection_id = ?1 AND status = 'running')";
/// Marks those runs failed.
pub(super) const FAIL_ABANDONED: &str = "UPDATE inventory_syncs SET status = 'failed', \
     finished_at = ?2, error = 'abandoned: the process running this sync stopped before it finished' \
     WHERE connection_id = ?1 AND status = 'running'";
/// Records a new run.
pub(super) const INSERT_SYNC: &str = "INSERT INTO inventory_syncs \
     (sync_id, connection_id, status, requested_by, started_at, finished_at, stats, error) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
/// Records how a run ended.
pub(super) const UPDATE_SYNC: &str = "UPDATE inventory_syncs \
     SET status = ?2, finished_at = ?3, stats = ?4, error = ?5 WHERE sync_id = ?1";
/// The snapshot readers see.
pub(super) const HEAD: &str = "SELECT sync_id FROM inventory_heads WHERE connection_id = ?1";
/// Points readers at a new snapshot.
pub(super) const SET_HEAD: &str = "INSERT INTO inventory_heads (connection_id, sync_id, synced_at) \
     VALUES (?1, ?2, ?3) ON CONFLICT (connection_id) DO UPDATE \
     SET sync_id = excluded.sync_id, synced_at = excluded.synced_at";
/// Drops a snapshot's items.
pub(super) const DELETE_ITEMS: &str = "DELETE FROM inventory_items WHERE sync_id = ?1";

/// One run.
pub(super) const GET_SYNC: &str = "SELECT sync_id, connection_id, status, requested_by, \
     started_at, finished_at, stats, error FROM inventory_syncs WHERE sync_id = ?1";
/// A connection's runs, newest first, before a cursor.
pub(super) const LIST_SYNCS: &str = "SELECT sync_id, connection_id, status, requested_by, \
     started_at, finished_at, stats, error FROM inventory_syncs \
     WHERE connection_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR sync_id < ?2) ORDER BY sync_id DESC LIMIT ?3";

/// The run whose snapshot readers see.
pub(super) const HEAD_SYNC: &str = "SELECT s.sync_id, s.connection_id, s.status, s.requested_by, \
     s.started_at, s.finished_at, s.stats, s.error FROM inventory_heads h \
     JOIN inventory_syncs s ON s.sync_id = h.sync_id WHERE h.connection_id = ?1";

/// Copies a snapshot's items into another run's snapshot, except the `replaced` ones (a NULL
/// parent or subject never matches: `NOT (NULL)` would drop the row instead); binds:
/// `?1` target sync, `?2` source sync, then two a scope (one for `Kind`).
pub(super) fn copy_items_sql(replaced: &[Replaced], postgres: bool) -> (String, Vec<String>) {
    let mut binds = Vec::new();
    let mut conditions = Vec::new();
    let mut bind = |v: &str| {
        binds.push(v.to_owned());
        format!("?{}", binds.len() + 2)
    };
    for r in replaced {
        conditions.push(match r {
            Replaced::Kind(k) => format!("kind = {}", bind(k.as_str())),
            Replaced::Key(k, key) => {
                let k = bind(k.as_str());
                format!("(kind = {k} AND item_key = {})", bind(key))
            }
            Replaced::Parent(k, parent) => {
                let k = bind(k.as_str());
                format!(
                    "(kind = {k} AND parent_id IS NOT NULL AND parent_id = {})",
                    bind(parent)
                )
            }
            Replaced::Subject(k, subject) => {
                let k = bind(k.as_str());
                format!(
                    "(kind = {k} AND subject_id IS NOT NULL AND subject_id = {})",
                    bind(subject)
                )
            }
            Replaced::Prefix(k, prefix) => {
                // substr rather than LIKE: ids hold `_`, a LIKE wildcard.
                let k = bind(k.as_str());
                let n = prefix.chars().count();
                format!(
                    "(kind = {k} AND substr(item_key, 1, {n}) = {})",
                    bind(prefix)
                )
            }
        });
    }
    let except = if conditions.is_empty() {
        String::new()
    } else {
        format!(" AND NOT ({})", conditions.join(" OR "))
    };
    let sql = format!(
        "INSERT INTO inventory_items \
         (sync_id, kind, item_key, parent_id, subject_id, email, role, status, data) \
         SELECT ?1, kind, item_key, parent_id, subject_id, email, role, status, data \
         FROM inventory_items WHERE sync_id = ?2{except}"
    );
    (dialect(&sql, postgres), binds)
}

/// Items per multi-row INSERT (9 binds each: well under both backends' limits).
pub(super) const INSERT_CHUNK: usize = 1000;

/// `INSERT` of `rows` items (placeholders numbered for the dialect).
pub(super) fn insert_items_sql(rows: usize, postgres: bool) -> String {
    let mut sql = String::from(
        "INSERT INTO inventory_items \
         (sync_id, kind, item_key, parent_id, subject_id, email, role, status, data) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 1..=9 {
            if c > 1 {
                sql.push(',');
            }
            sql.push_str(&format!("?{}", r * 9 + c));
        }
        sql.push(')');
    }
    dialect(&sql, postgres)
}

/// The page query for `q` on the current snapshot of a connection, and its text binds in
/// order (`?1` connection id, `?2` kind, then each filter given, then the cursor); the limit
/// is the last placeholder. One statement: the head and its items are read together, so a
/// sync that publishes meanwhile cannot split a page between two snapshots.
pub(super) fn item_page_sql(
    connection_id: &str,
    q: &ItemQuery,
    postgres: bool,
) -> (String, Vec<String>) {
    let mut binds = vec![connection_id.to_owned(), q.kind.as_str().to_owned()];
    let mut on = String::from("i.sync_id = h.sync_id AND i.kind = ?2");
    let filters = [
        ("i.parent_id = ", &q.parent_id),
        ("i.subject_id = ", &q.subject_id),
        ("i.email = ", &q.email),
        ("i.role = ", &q.role),
        ("i.status = ", &q.status),
        ("i.item_key > ", &q.after),
    ];
    for (condition, value) in filters {
        if let Some(v) = value {
            let v = if condition.starts_with("i.email") {
                v.to_lowercase()
            } else {
                v.clone()
            };
            binds.push(v);
            on.push_str(&format!(" AND {condition}?{}", binds.len()));
        }
    }
    let sql = format!(
        "SELECT h.sync_id AS head_sync_id, h.synced_at, i.item_key, i.parent_id, i.subject_id, \
         i.email, i.role, i.status, i.data \
         FROM inventory_heads h LEFT JOIN inventory_items i ON {on} \
         WHERE h.connection_id = ?1 ORDER BY i.item_key LIMIT ?{}",
        binds.len() + 1
    );
    (dialect(&sql, postgres), binds)
}

/// A stored value that does not parse: the database was edited by hand or by a newer version.
pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Other(sqlx::Error::Decode(
        format!("corrupt {what} in the inventory tables").into(),
    ))
}

/// One `inventory_syncs` row.
#[derive(sqlx::FromRow)]
pub(super) struct SyncRow {
    sync_id: String,
    connection_id: String,
    status: String,
    requested_by: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    stats: Json<SyncStats>,
    error: Option<String>,
}

impl TryFrom<SyncRow> for SyncRun {
    type Error = StoreError;
    fn try_from(row: SyncRow) -> Result<Self, StoreError> {
        Ok(SyncRun {
            id: row.sync_id.parse().map_err(|_| corrupt("sync_id"))?,
            connection_id: row
                .connection_id
                .parse()
                .map_err(|_| corrupt("connection_id"))?,
            status: SyncStatus::from_str(&row.status).map_err(|_| corrupt("status"))?,
            requested_by: row.requested_by,
            started_at: row.started_at,
            finished_at: row.finished_at,
            stats: row.stats.0,
            error: row.error,
        })
    }
}

/// A row of [`item_page_sql`]: the head, and an item unless the page is empty.
#[derive(sqlx::FromRow)]
pub(super) struct ItemRow {
    head_sync_id: String,
    synced_at: DateTime<Utc>,
    item_key: Option<String>,
    parent_id: Option<String>,
    subject_id: Option<String>,
    email: Option<String>,
    role: Option<String>,
    status: Option<String>,
    data: Option<Json<serde_json::Value>>,
}

/// Turns the rows of a page query of `kind` into a page (no rows = never synced).
pub(super) fn item_page(kind: ItemKind, rows: Vec<ItemRow>) -> Result<ItemPage, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(ItemPage {
            sync_id: None,
            synced_at: None,
            items: Vec::new(),
        });
    };
    let sync_id: SyncId = first
        .head_sync_id
        .parse()
        .map_err(|_| corrupt("head sync_id"))?;
    let synced_at = first.synced_at;
    let items = rows
        .into_iter()
        .filter_map(|r| {
            let key = r.item_key?;
            Some(Item {
                kind,
                key,
                parent_id: r.parent_id,
                subject_id: r.subject_id,
                email: r.email,
                role: r.role,
                status: r.status,
                data: r.data.map(|d| d.0).unwrap_or_default(),
            })
        })
        .collect();
    Ok(ItemPage {
        sync_id: Some(sync_id),
        synced_at: Some(synced_at),
        items,
    })
}

/// [`super::InventoryStore`] for a backend, the same for both (the statements above, bound
/// and run on `self.pool`); `$pg` selects the placeholder dialect.
macro_rules! inventory_store {
    ($store:ty, $pg:expr) => {
        #[async_trait::async_trait]
        impl super::InventoryStore for $store {
            async fn start_sync(
                &self,
                run: &crate::domain::SyncRun,
                lease_until_ms: i64,
                now_ms: i64,
            ) -> Result<super::SyncStart, super::StoreError> {
                use super::inventory_sql::*;
                let connection_id = run.connection_id.to_string();
                let sync_id = run.id.to_string();
                let mut tx = self.pool.begin().await?;
                let taken: Option<(String,)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(dialect(TAKE_LEASE, $pg)))
                        .bind(&connection_id)
                        .bind(&sync_id)
                        .bind(lease_until_ms)
                        .bind(now_ms)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(super::not_found_on_foreign_key)?;
                if taken.is_none() {
                    let (holder,): (String,) =
                        sqlx::query_as(sqlx::AssertSqlSafe(dialect(LEASE_HOLDER, $pg)))
                            .bind(&connection_id)
                            .fetch_one(&mut *tx)
                            .await?;
                    let holder = holder.parse().map_err(|_| corrupt("lease sync_id"))?;
                    return Ok(super::SyncStart::Busy(holder));
                }
                sqlx::query(sqlx::AssertSqlSafe(dialect(DELETE_ABANDONED_ITEMS, $pg)))
                    .bind(&connection_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(dialect(FAIL_ABANDONED, $pg)))
                    .bind(&connection_id)
                    .bind(run.started_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(dialect(INSERT_SYNC, $pg)))
                    .bind(&sync_id)
                    .bind(&connection_id)
                    .bind(run.status.as_str())
                    .bind(&run.requested_by)
                    .bind(run.started_at)
                    .bind(run.finished_at)
                    .bind(sqlx::types::Json(&run.stats))
                    .bind(&run.error)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(super::SyncStart::Started)
            }

            async fn renew_sync_lease(
                &self,
                run: &crate::domain::SyncRun,
                until_ms: i64,
            ) -> Result<bool, super::StoreError> {
                use super::inventory_sql::*;
                let done = sqlx::query(sqlx::AssertSqlSafe(dialect(RENEW_LEASE, $pg)))
                    .bind(run.connection_id.to_string())
                    .bind(run.id.to_string())
                    .bind(until_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_items(
                &self,
                sync_id: crate::domain::SyncId,
                items: &[crate::domain::Item],
            ) -> Result<(), super::StoreError> {
                use super::inventory_sql::*;
                let sync_id = sync_id.to_string();
                for chunk in items.chunks(INSERT_CHUNK) {
                    let sql = insert_items_sql(chunk.len(), $pg);
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for item in chunk {
                        query = query
                            .bind(&sync_id)
                            .bind(item.kind.as_str())
                            .bind(&item.key)
                            .bind(&item.parent_id)
                            .bind(&item.subject_id)
                            .bind(&item.email)
                            .bind(&item.role)
                            .bind(&item.status)
                            .bind(sqlx::types::Json(&item.data));
                    }
                    query.execute(&self.pool).await?;
                }
                Ok(())
            }

            async fn finish_sync(
                &self,
                run: &crate::domain::SyncRun,
            ) -> Result<bool, super::StoreError> {
                use super::inventory_sql::*;
                use crate::domain::SyncStatus;
                let connection_id = run.connection_id.to_string();
                let sync_id = run.id.to_string();
                let mut run = run.clone();
                let mut tx = self.pool.begin().await?;
                let held = sqlx::query(sqlx::AssertSqlSafe(dialect(RELEASE_LEASE, $pg)))
                    .bind(&connection_id)
                    .bind(&sync_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if !held {
                    run.status = SyncStatus::Failed;
                    run.error = Some(
                        "the sync lost its lease (it stalled past its expiry and another run \
                         took over); nothing was published"
                            .to_owned(),
                    );
                }
                let drop_items = if run.status == SyncStatus::Succeeded {
                    let old: Option<(String,)> =
                        sqlx::query_as(sqlx::AssertSqlSafe(dialect(HEAD, $pg)))
                            .bind(&connection_id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    // The changes feed: diffed before the old items go (none for a baseline).
                    if let Some((old,)) = &old {
                        run.stats.changes = Some(Self::changes_record(&mut tx, old, &run).await?);
                    }
                    sqlx::query(sqlx::AssertSqlSafe(dialect(SET_HEAD, $pg)))
                        .bind(&connection_id)
                        .bind(&sync_id)
                        .bind(run.finished_at.unwrap_or(run.started_at))
                        .execute(&mut *tx)
                        .await?;
                    old.map(|(id,)| id)
                } else {
                    Some(sync_id.clone())
                };
                if let Some(drop_items) = drop_items {
                    sqlx::query(sqlx::AssertSqlSafe(dialect(DELETE_ITEMS, $pg)))
                        .bind(drop_items)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(sqlx::AssertSqlSafe(dialect(UPDATE_SYNC, $pg)))
                    .bind(&sync_id)
                    .bind(run.status.as_str())
                    .bind(run.finished_at)
                    .bind(sqlx::types::Json(&run.stats))
                    .bind(&run.error)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                // A full snapshot replaced the table's contents: refresh the planner's
                // statistics so the access queries keep their index plans (SQLite has none
                // until asked; Postgres' autovacuum would get there later). Best effort.
                if held
                    && run.status == SyncStatus::Succeeded
                    && run.stats.mode == crate::domain::SyncMode::Full
                {
                    let analyze = if $pg {
                        "ANALYZE inventory_items"
                    } else {
                        "PRAGMA analysis_limit = 1000; ANALYZE inventory_items"
                    };
                    if let Err(e) = sqlx::raw_sql(analyze).execute(&self.pool).await {
                        tracing::warn!(error = %e, "refreshing planner statistics failed");
                    }
                }
                Ok(held)
            }

            async fn get_sync(
                &self,
                id: crate::domain::SyncId,
            ) -> Result<crate::domain::SyncRun, super::StoreError> {
                use super::inventory_sql::*;
                let row: SyncRow = sqlx::query_as(sqlx::AssertSqlSafe(dialect(GET_SYNC, $pg)))
                    .bind(id.to_string())
                    .fetch_one(&self.pool)
                    .await?;
                row.try_into()
            }

            async fn list_syncs(
                &self,
                connection_id: crate::domain::ConnectionId,
                before: Option<crate::domain::SyncId>,
                limit: u32,
            ) -> Result<Vec<crate::domain::SyncRun>, super::StoreError> {
                use super::inventory_sql::*;
                let rows: Vec<SyncRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(dialect(LIST_SYNCS, $pg)))
                        .bind(connection_id.to_string())
                        .bind(before.map(|b| b.to_string()))
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn head_sync(
                &self,
                connection_id: crate::domain::ConnectionId,
            ) -> Result<Option<crate::domain::SyncRun>, super::StoreError> {
                use super::inventory_sql::*;
                let row: Option<SyncRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(dialect(HEAD_SYNC, $pg)))
                        .bind(connection_id.to_string())
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn copy_items(
                &self,
                from: crate::domain::SyncId,
                to: crate::domain::SyncId,
                replaced: &[crate::domain::Replaced],
            ) -> Result<u64, super::StoreError> {
                use super::inventory_sql::*;
                let (sql, binds) = copy_items_sql(replaced, $pg);
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(to.to_string())
                    .bind(from.to_string());
                for b in binds {
                    q = q.bind(b);
                }
                Ok(q.execute(&self.pool).await?.rows_affected())
            }

            async fn list_items(
                &self,
                connection_id: crate::domain::ConnectionId,
                query: &crate::domain::ItemQuery,
            ) -> Result<crate::domain::ItemPage, super::StoreError> {
                use super::inventory_sql::*;
                let (sql, binds) = item_page_sql(&connection_id.to_string(), query, $pg);
                let mut q = sqlx::query_as::<_, ItemRow>(sqlx::AssertSqlSafe(sql));
                for b in binds {
                    q = q.bind(b);
                }
                let rows = q.bind(i64::from(query.limit)).fetch_all(&self.pool).await?;
                item_page(query.kind, rows)
            }
        }
    };
}
pub(super) use inventory_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_are_numbered_like_sqlite_ones() {
        assert_eq!(
            dialect("a = ?1 AND b > ?12 OR c IS ?", true),
            "a = $1 AND b > $12 OR c IS ?"
        );
        assert_eq!(dialect("a = ?1", false), "a = ?1");
    }

    #[test]
    fn page_queries_bind_only_the_filters_given() {
        let mut q = ItemQuery::all(ItemKind::ProjectMember, 10);
        q.parent_id = Some("proj_1".into());
        q.email = Some("Ada@X.com".into());
        let (sql, binds) = item_page_sql("c1", &q, true);
        assert_eq!(binds, ["c1", "project_member", "proj_1", "ada@x.com"]);
        assert!(sql.contains("i.parent_id = $3 AND i.email = $4"), "{sql}");
        assert!(sql.ends_with("LIMIT $5"), "{sql}");
    }

    #[test]
    fn copies_leave_out_what_was_fetched_again() {
        let (sql, binds) = copy_items_sql(
            &[
                Replaced::Kind(ItemKind::Invite),
                Replaced::Parent(ItemKind::ProjectMember, "proj_1".into()),
                Replaced::Prefix(ItemKind::RoleAssignment, "proj_1/group/".into()),
            ],
            true,
        );
        assert_eq!(
            binds,
            [
                "invite",
                "project_member",
                "proj_1",
                "role_assignment",
                "proj_1/group/"
            ]
        );
        assert!(
            sql.ends_with(
                "WHERE sync_id = $2 AND NOT (kind = $3 OR (kind = $4 AND parent_id IS NOT NULL \
                 AND parent_id = $5) OR (kind = $6 AND substr(item_key, 1, 13) = $7))"
            ),
            "{sql}"
        );
        let (sql, binds) = copy_items_sql(&[], false);
        assert!(
            binds.is_empty() && sql.ends_with("WHERE sync_id = ?2"),
            "{sql}"
        );
    }

    #[test]
    fn inserts_number_nine_binds_a_row() {
        let sql = insert_items_sql(2, false);
        assert!(
            sql.ends_with("(?10,?11,?12,?13,?14,?15,?16,?17,?18)"),
            "{sql}"
        );
    }
}
