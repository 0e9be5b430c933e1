//! The inventory's SQL, rows and [`InventoryStore`] implementation, compiled for each
//! backend (see [`crate::store`]).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use super::POSTGRES;
use super::This;
use super::audit_sql::insert_audit;
use super::changes_sql::{record_changes, sequence_changes};
use crate::domain::{
    ConnectionId, DataText, Item, ItemKind, ItemPage, ItemQuery, Replaced, SyncId, SyncMode, SyncRun,
    SyncStats, SyncStatus,
};
use crate::store::{
    InventoryStore, StoreError, SyncAudit, SyncStart, not_found_on_foreign_key,
};

/// Takes the connection's lease unless a live one exists; returns the sync id on success.
pub(super) const TAKE_LEASE: &str = "INSERT INTO sync_leases (connection_id, sync_id, expires_at) \
     VALUES ($1, $2, $3) ON CONFLICT (connection_id) DO UPDATE \
     SET sync_id = excluded.sync_id, expires_at = excluded.expires_at \
     WHERE sync_leases.expires_at < $4 RETURNING sync_id";
pub(super) const LEASE_HOLDER: &str = "SELECT sync_id FROM sync_leases WHERE connection_id = $1";
pub(super) const RENEW_LEASE: &str =
    "UPDATE sync_leases SET expires_at = $3 WHERE connection_id = $1 AND sync_id = $2";
/// Releases a held lease (one row affected = it was still ours).
pub(super) const RELEASE_LEASE: &str =
    "DELETE FROM sync_leases WHERE connection_id = $1 AND sync_id = $2";
/// Items of runs whose worker died (their lease expired and was just taken over).
pub(super) const DELETE_ABANDONED_ITEMS: &str = "DELETE FROM inventory_items WHERE sync_id IN \
     (SELECT sync_id FROM inventory_syncs WHERE connection_id = $1 AND status = 'running')";
/// Marks those runs failed.
pub(super) const FAIL_ABANDONED: &str = "UPDATE inventory_syncs SET status = 'failed', \
     finished_at = $2, error = 'abandoned: the process running this sync stopped before it finished' \
     WHERE connection_id = $1 AND status = 'running'";
pub(super) const INSERT_SYNC: &str = "INSERT INTO inventory_syncs \
     (sync_id, connection_id, status, requested_by, started_at, finished_at, stats, error) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(super) const UPDATE_SYNC: &str = "UPDATE inventory_syncs \
     SET status = $2, finished_at = $3, stats = $4, error = $5 WHERE sync_id = $1";
/// The snapshot readers see.
pub(super) const HEAD: &str = "SELECT sync_id FROM inventory_heads WHERE connection_id = $1";
/// Points readers at a new snapshot.
pub(super) const SET_HEAD: &str = "INSERT INTO inventory_heads (connection_id, sync_id, synced_at) \
     VALUES ($1, $2, $3) ON CONFLICT (connection_id) DO UPDATE \
     SET sync_id = excluded.sync_id, synced_at = excluded.synced_at";
/// Forgets a connection's logged write-throughs (see `read_model.rs`).
pub(super) const DROP_PATCHES: &str = "DELETE FROM head_patches WHERE connection_id = $1";
pub(super) const DELETE_ITEMS: &str = "DELETE FROM inventory_items WHERE sync_id = $1";

pub(super) const GET_SYNC: &str = "SELECT sync_id, connection_id, status, requested_by, \
     started_at, finished_at, stats, error FROM inventory_syncs WHERE sync_id = $1";
/// A connection's runs, newest first, before a cursor.
pub(super) const LIST_SYNCS: &str = "SELECT sync_id, connection_id, status, requested_by, \
     started_at, finished_at, stats, error FROM inventory_syncs \
     WHERE connection_id = $1 AND (CAST($2 AS TEXT) IS NULL OR sync_id < $2) ORDER BY sync_id DESC LIMIT $3";

/// The run whose snapshot readers see.
pub(super) const HEAD_SYNC: &str = "SELECT s.sync_id, s.connection_id, s.status, s.requested_by, \
     s.started_at, s.finished_at, s.stats, s.error FROM inventory_heads h \
     JOIN inventory_syncs s ON s.sync_id = h.sync_id WHERE h.connection_id = $1";

/// Copies a snapshot's items into another run's snapshot, except the `replaced` ones (a NULL
/// parent or subject never matches: `NOT (NULL)` would drop the row instead); binds:
/// `$1` target sync, `$2` source sync, then two a scope (one for `Kind`).
pub(super) fn copy_items_sql(replaced: &[Replaced]) -> (String, Vec<String>) {
    let mut binds = Vec::new();
    let mut conditions = Vec::new();
    let mut bind = |v: &str| {
        binds.push(v.to_owned());
        format!("${}", binds.len() + 2)
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
         SELECT $1, kind, item_key, parent_id, subject_id, email, role, status, data \
         FROM inventory_items WHERE sync_id = $2{except}"
    );
    (sql, binds)
}

/// Items per multi-row INSERT (9 binds each: well under both backends' limits).
pub(super) const INSERT_CHUNK: usize = 1000;

pub(super) fn insert_items_sql(rows: usize) -> String {
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
            sql.push_str(&format!("${}", r * 9 + c));
        }
        sql.push(')');
    }
    sql
}

/// The page query for `q` on the current snapshot of a connection, and its text binds in
/// order (`$1` connection id, `$2` kind, then each filter given, then the cursor); the limit
/// is the last placeholder. One statement: the head and its items are read together, so a
/// sync that publishes meanwhile cannot split a page between two snapshots.
pub(super) fn item_page_sql(connection_id: &str, q: &ItemQuery) -> (String, Vec<String>) {
    let mut binds = vec![connection_id.to_owned(), q.kind.as_str().to_owned()];
    let mut on = String::from("i.sync_id = h.sync_id AND i.kind = $2");
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
            on.push_str(&format!(" AND {condition}${}", binds.len()));
        }
    }
    let limit = binds.len() + 1;
    let sql = if POSTGRES {
        // Postgres plans the plain join as "every item of the kind, then the top of a sort"
        // (27 ms a page at 50,000 users); the lateral page walks the index and stops.
        // One row an item: aggregating the page into one JSON value (as on SQLite) was
        // slower here (p50 0.78 → 1.18 ms a page of 100), the server building the text.
        format!(
            "SELECT h.sync_id AS head_sync_id, h.synced_at, i.item_key, i.parent_id, \
             i.subject_id, i.email, i.role, i.status, i.data \
             FROM inventory_heads h LEFT JOIN LATERAL (SELECT * FROM inventory_items i \
             WHERE {on} ORDER BY i.item_key LIMIT ${limit}) i ON true \
             WHERE h.connection_id = $1 ORDER BY i.item_key"
        )
    } else {
        // One row a page, so a page crosses from the connection's thread to us once, not once
        // an item (1.7× the pages a second). Two aggregates over the same rows: the fields as
        // small JSON arrays, and the stored `data` texts joined as they are. Building one
        // object an item (`json_object(…, json(data))`) parsed every `data` again and sorted
        // the page a second time: twice the statement's cost. Both aggregates take the rows
        // in one order, so they pair by position; the order itself is restored by key.
        // A subquery in FROM cannot see `h`: it reads the head again, in the same statement,
        // which sees one state throughout.
        let on = on.replace(
            "i.sync_id = h.sync_id",
            "i.sync_id = (SELECT sync_id FROM inventory_heads WHERE connection_id = $1)",
        );
        format!(
            "SELECT h.sync_id AS head_sync_id, h.synced_at, p.fields, p.data \
             FROM inventory_heads h, (SELECT json_group_array(json_array(i.item_key, \
             i.parent_id, i.subject_id, i.email, i.role, i.status)) AS fields, \
             '[' || group_concat(i.data, ',') || ']' AS data \
             FROM (SELECT * FROM inventory_items i WHERE {on} ORDER BY i.item_key \
             LIMIT ${limit}) i) p WHERE h.connection_id = $1"
        )
    };
    (sql, binds)
}

/// How long reading a finished run waits for this replica to load the snapshot it published.
const PUBLISH_WAIT: Duration = Duration::from_secs(10);

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

/// A row of [`item_page_sql`] on Postgres: the head, and an item unless the page is empty.
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
    data: Option<DataText>,
}

/// The row of [`item_page_sql`] on SQLite: the head, its items' fields as a JSON array of
/// arrays, and their `data` as a JSON array, in the same order.
#[derive(sqlx::FromRow)]
pub(super) struct PageRow {
    head_sync_id: String,
    synced_at: DateTime<Utc>,
    fields: Option<String>,
    data: Option<String>,
}

/// An item's fields in a [`PageRow`]: key, parent, subject, email, role, status.
type PageFields = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The head a page was read from (`None` = never synced).
fn head_of(row: Option<(&str, DateTime<Utc>)>) -> Result<Option<(SyncId, DateTime<Utc>)>, StoreError> {
    row.map(|(id, at)| Ok((id.parse().map_err(|_| corrupt("head sync_id"))?, at)))
        .transpose()
}

/// Turns the rows of a Postgres page query of `kind` into a page.
fn item_rows(kind: ItemKind, rows: Vec<ItemRow>) -> Result<ItemPage<DataText>, StoreError> {
    let head = head_of(rows.first().map(|r| (r.head_sync_id.as_str(), r.synced_at)))?;
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
                data: r.data.unwrap_or_default(),
            })
        })
        .collect();
    Ok(ItemPage {
        sync_id: head.map(|h| h.0),
        synced_at: head.map(|h| h.1),
        items,
    })
}

/// Turns the row of a SQLite page query of `kind` into a page.
fn item_page(kind: ItemKind, row: Option<PageRow>) -> Result<ItemPage<DataText>, StoreError> {
    let head = head_of(row.as_ref().map(|r| (r.head_sync_id.as_str(), r.synced_at)))?;
    let mut items = Vec::new();
    // `data` is NULL when nothing matched (joining no texts); the fields are then `[]`.
    if let Some(PageRow {
        fields: Some(fields),
        data,
        ..
    }) = row
    {
        let fields: Vec<PageFields> =
            serde_json::from_str(&fields).map_err(|_| corrupt("item page"))?;
        let data: Vec<DataText> = serde_json::from_str(data.as_deref().unwrap_or("[]"))
            .map_err(|_| corrupt("item page"))?;
        if fields.len() != data.len() {
            return Err(corrupt("item page"));
        }
        items = fields
            .into_iter()
            .zip(data)
            .map(
                |((key, parent_id, subject_id, email, role, status), data)| Item {
                    kind,
                    key,
                    parent_id,
                    subject_id,
                    email,
                    role,
                    status,
                    data,
                },
            )
            .collect();
        if !items.is_sorted_by(|a, b| a.key < b.key) {
            items.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        }
    }
    Ok(ItemPage {
        sync_id: head.map(|h| h.0),
        synced_at: head.map(|h| h.1),
        items,
    })
}

#[async_trait]
impl InventoryStore for This {
    async fn start_sync(
        &self,
        run: &SyncRun,
        lease_until_ms: i64,
        now_ms: i64,
    ) -> Result<SyncStart, StoreError> {
        let connection_id = run.connection_id.to_string();
        let sync_id = run.id.to_string();
        let mut tx = self.pool.begin().await?;
        let taken: Option<(String,)> = sqlx::query_as(TAKE_LEASE)
            .bind(&connection_id)
            .bind(&sync_id)
            .bind(lease_until_ms)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await
            .map_err(not_found_on_foreign_key)?;
        if taken.is_none() {
            let (holder,): (String,) = sqlx::query_as(LEASE_HOLDER)
                .bind(&connection_id)
                .fetch_one(&mut *tx)
                .await?;
            let holder = holder.parse().map_err(|_| corrupt("lease sync_id"))?;
            return Ok(SyncStart::Busy(holder));
        }
        sqlx::query(DELETE_ABANDONED_ITEMS)
            .bind(&connection_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(FAIL_ABANDONED)
            .bind(&connection_id)
            .bind(run.started_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(INSERT_SYNC)
            .bind(&sync_id)
            .bind(&connection_id)
            .bind(run.status.as_str())
            .bind(&run.requested_by)
            .bind(run.started_at)
            .bind(run.finished_at)
            .bind(Json(&run.stats))
            .bind(&run.error)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(SyncStart::Started)
    }

    async fn renew_sync_lease(&self, run: &SyncRun, until_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(RENEW_LEASE)
            .bind(run.connection_id.to_string())
            .bind(run.id.to_string())
            .bind(until_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_items(&self, sync_id: SyncId, items: &[Item]) -> Result<(), StoreError> {
        let sync_id = sync_id.to_string();
        for chunk in items.chunks(INSERT_CHUNK) {
            let mut query = sqlx::query(AssertSqlSafe(insert_items_sql(chunk.len())));
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
                    .bind(Json(&item.data));
            }
            query.execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn finish_sync(&self, run: &SyncRun, audit: SyncAudit<'_>) -> Result<bool, StoreError> {
        let connection_id = run.connection_id.to_string();
        let sync_id = run.id.to_string();
        let mut run = run.clone();
        let mut tx = self.pool.begin().await?;
        let held = sqlx::query(RELEASE_LEASE)
            .bind(&connection_id)
            .bind(&sync_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !held {
            run.status = SyncStatus::Failed;
            run.error = Some(
                "the sync lost its lease (it stalled past its expiry and another run took \
                 over); nothing was published"
                    .to_owned(),
            );
        }
        let mut recorded = 0;
        let drop_items = if run.status == SyncStatus::Succeeded {
            let old: Option<(String,)> = sqlx::query_as(HEAD)
                .bind(&connection_id)
                .fetch_optional(&mut *tx)
                .await?;
            // The changes feed: diffed before the old items go (none for a baseline).
            if let Some((old,)) = &old {
                recorded = record_changes(&mut tx, old, &run).await?;
                run.stats.changes = Some(recorded);
            }
            sqlx::query(SET_HEAD)
                .bind(&connection_id)
                .bind(&sync_id)
                .bind(run.finished_at.unwrap_or(run.started_at))
                .execute(&mut *tx)
                .await?;
            // A new head is loaded whole: the old one's write-throughs are done with.
            sqlx::query(DROP_PATCHES)
                .bind(&connection_id)
                .execute(&mut *tx)
                .await?;
            old.map(|(id,)| id)
        } else {
            Some(sync_id.clone())
        };
        if let Some(drop_items) = drop_items {
            sqlx::query(DELETE_ITEMS)
                .bind(drop_items)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(UPDATE_SYNC)
            .bind(&sync_id)
            .bind(run.status.as_str())
            .bind(run.finished_at)
            .bind(Json(&run.stats))
            .bind(&run.error)
            .execute(&mut *tx)
            .await?;
        // Last, so the feed's head and the audit chain's are held only for the commit (in
        // this order: nothing takes them the other way round).
        sequence_changes(&mut tx, &connection_id, recorded).await?;
        insert_audit(&mut tx, &audit(&run, held)).await?;
        // Before the commit: whoever reads the run as finished from now on waits for this
        // replica to answer from its snapshot (`get_sync`).
        let publishing = self.model.publishing(run.connection_id);
        tx.commit().await?;
        if held && run.status == SyncStatus::Succeeded {
            self.published(run.connection_id).await?;
        }
        drop(publishing);
        // A full snapshot replaced the table's contents: refresh the planner's statistics so
        // the access queries keep their index plans (SQLite has none until asked; Postgres'
        // autovacuum would get there later). Best effort.
        if held && run.status == SyncStatus::Succeeded && run.stats.mode == SyncMode::Full {
            let analyze = if POSTGRES {
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

    async fn get_sync(&self, id: SyncId) -> Result<SyncRun, StoreError> {
        let row: SyncRow = sqlx::query_as(GET_SYNC)
            .bind(id.to_string())
            .fetch_one(&self.pool)
            .await?;
        let run: SyncRun = row.try_into()?;
        if run.status != SyncStatus::Running {
            // Finished, perhaps a moment ago by this replica: once its snapshot is loaded
            // here, a read made after seeing the run finished answers from it.
            self.model.settled(run.connection_id, PUBLISH_WAIT).await;
        }
        Ok(run)
    }

    async fn list_syncs(
        &self,
        connection_id: ConnectionId,
        before: Option<SyncId>,
        limit: u32,
    ) -> Result<Vec<SyncRun>, StoreError> {
        let rows: Vec<SyncRow> = sqlx::query_as(LIST_SYNCS)
            .bind(connection_id.to_string())
            .bind(before.map(|b| b.to_string()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let runs: Vec<SyncRun> = rows
            .into_iter()
            .map(TryInto::try_into)
            .collect::<Result<_, _>>()?;
        // As `get_sync`: a list that shows a run finished is followed by reads of its snapshot.
        if runs.iter().any(|r| r.status != SyncStatus::Running) {
            self.model.settled(connection_id, PUBLISH_WAIT).await;
        }
        Ok(runs)
    }

    async fn head_sync(&self, connection_id: ConnectionId) -> Result<Option<SyncRun>, StoreError> {
        let row: Option<SyncRow> = sqlx::query_as(HEAD_SYNC)
            .bind(connection_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(TryInto::try_into).transpose()
    }

    async fn copy_items(
        &self,
        from: SyncId,
        to: SyncId,
        replaced: &[Replaced],
    ) -> Result<u64, StoreError> {
        let (sql, binds) = copy_items_sql(replaced);
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(to.to_string())
            .bind(from.to_string());
        for b in binds {
            q = q.bind(b);
        }
        Ok(q.execute(&self.pool).await?.rows_affected())
    }

    async fn list_items(
        &self,
        connection_id: ConnectionId,
        query: &ItemQuery,
    ) -> Result<ItemPage<DataText>, StoreError> {
        let (sql, binds) = item_page_sql(&connection_id.to_string(), query);
        let limit = i64::from(query.limit);
        if POSTGRES {
            let mut q = sqlx::query_as::<_, ItemRow>(AssertSqlSafe(sql));
            for b in binds {
                q = q.bind(b);
            }
            item_rows(query.kind, q.bind(limit).fetch_all(&self.pool).await?)
        } else {
            let mut q = sqlx::query_as::<_, PageRow>(AssertSqlSafe(sql));
            for b in binds {
                q = q.bind(b);
            }
            item_page(query.kind, q.bind(limit).fetch_optional(&self.pool).await?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_queries_bind_only_the_filters_given() {
        let mut q = ItemQuery::all(ItemKind::ProjectMember, 10);
        q.parent_id = Some("proj_1".into());
        q.email = Some("Ada@X.com".into());
        let (sql, binds) = item_page_sql("c1", &q);
        assert_eq!(binds, ["c1", "project_member", "proj_1", "ada@x.com"]);
        assert!(sql.contains("i.parent_id = $3 AND i.email = $4"), "{sql}");
        assert!(sql.contains("LIMIT $5"), "{sql}");
    }

    #[test]
    fn sqlite_pages_pair_fields_with_data_and_keep_key_order() {
        let row = |fields: &str, data: &str| PageRow {
            head_sync_id: SyncId::new().to_string(),
            synced_at: Utc::now(),
            fields: Some(fields.into()),
            data: Some(data.into()),
        };
        let fields = r#"[["b",null,"u2",null,null,null],["a","p","u1","a@x.com","owner",null]]"#;
        let page = item_page(
            ItemKind::ProjectMember,
            Some(row(fields, r#"[{"id":"u2"},{"id":"u1"}]"#)),
        )
        .unwrap();
        let got: Vec<_> = page
            .items
            .iter()
            .map(|i| (i.key.as_str(), i.subject_id.as_deref(), i.data.get()))
            .collect();
        assert_eq!(
            got,
            [("a", Some("u1"), r#"{"id":"u1"}"#), ("b", Some("u2"), r#"{"id":"u2"}"#)]
        );
        assert_eq!(page.items[0].role.as_deref(), Some("owner"));
        assert!(page.sync_id.is_some());
        // A page whose two halves disagree is refused, not paired wrongly.
        assert!(item_page(ItemKind::User, Some(row(fields, r#"[{"id":"u2"}]"#))).is_err());
        // Fields without their data are refused too.
        let halved = PageRow {
            data: None,
            ..row(fields, "")
        };
        assert!(item_page(ItemKind::User, Some(halved)).is_err());
        // Nothing matched: the head, no items.
        let empty = PageRow {
            fields: Some("[]".into()),
            data: None,
            ..row("", "")
        };
        let page = item_page(ItemKind::User, Some(empty)).unwrap();
        assert!(page.sync_id.is_some() && page.items.is_empty());
        // Never synced: no head.
        assert_eq!(item_page(ItemKind::User, None).unwrap().sync_id, None);
    }

    #[test]
    fn copies_leave_out_what_was_fetched_again() {
        let (sql, binds) = copy_items_sql(&[
            Replaced::Kind(ItemKind::Invite),
            Replaced::Parent(ItemKind::ProjectMember, "proj_1".into()),
            Replaced::Prefix(ItemKind::RoleAssignment, "proj_1/group/".into()),
        ]);
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
        let (sql, binds) = copy_items_sql(&[]);
        assert!(
            binds.is_empty() && sql.ends_with("WHERE sync_id = $2"),
            "{sql}"
        );
    }

    #[test]
    fn inserts_number_nine_binds_a_row() {
        let sql = insert_items_sql(2);
        assert!(
            sql.ends_with("($10,$11,$12,$13,$14,$15,$16,$17,$18)"),
            "{sql}"
        );
    }
}
