//! The changes feed's SQL, rows and [`ChangesStore`] implementation, compiled for each
//! backend like `inventory_sql.rs`.
//!
//! The diff runs inside the transaction that publishes a new snapshot, before the previous
//! snapshot's items are dropped: one `INSERT ... SELECT` compares the two snapshots by
//! (kind, key) in the database, so nothing travels through Rust and the changes appear exactly
//! when the snapshot does. No FULL OUTER JOIN: `added` and `removed` are anti-joins and
//! `changed` an inner join, each a primary-key lookup per item, comparing the columns that
//! matter (role, status, email, parent, subject) — not `data`, whose timestamps
//! (`last_used_at`) move every day. `IS DISTINCT FROM` needs SQLite 3.39+ (sqlx bundles a
//! newer one) and is standard in Postgres.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use super::inventory_sql::corrupt;
use super::{Db, Query, QueryAs, This};
use crate::domain::{Change, ChangeQuery, EventVerb, ExpectedChange, ItemKind, SyncRun, SyncStats};
use crate::store::{ChangesStore, StoreError, not_found_on_foreign_key};

/// Kinds never compared: a cost item is one day's figure, each sync brings new days.
const NEVER_COMPARED: [ItemKind; 1] = [ItemKind::Cost];

/// Children of a project: an archived project's are not listed by OpenAI, so they vanish from
/// the snapshot with the archive; its `project.archived` change stands for them.
const PROJECT_CHILDREN: &str = "'project_member', 'project_group', 'service_account', 'api_key'";

/// Whether an expected change matches the observed item `x` (`$3` connection, `$4` seen at).
fn expected(change: &str, x: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM expected_changes e WHERE e.connection_id = $3 \
         AND e.kind = {x}.kind AND e.item_key = {x}.item_key AND e.change = '{change}' \
         AND (e.role IS NULL OR e.role = {x}.role) AND (e.status IS NULL OR e.status = {x}.status) \
         AND e.until_at >= $4)"
    )
}

/// The diff of snapshot `$1` (previous) against `$2` (new) of connection `$3`, seen at `$4`,
/// leaving out `excluded` kinds (never compared, or skipped by either sync: a kind the key
/// could not read is not a kind whose items all vanished).
pub(super) fn record_changes_sql(excluded: &[ItemKind]) -> String {
    let excluded = excluded
        .iter()
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO inventory_changes (connection_id, sync_id, seen_at, kind, item_key, change, \
         parent_id, subject_id, email, role_before, role_after, status_before, status_after, \
         data_before, data_after, by_governor) \
         SELECT $3, $2, $4, n.kind, n.item_key, 'added', n.parent_id, n.subject_id, n.email, \
         NULL, n.role, NULL, n.status, NULL, n.data, {added} \
         FROM inventory_items n WHERE n.sync_id = $2 AND n.kind NOT IN ({excluded}) \
         AND NOT EXISTS (SELECT 1 FROM inventory_items o \
           WHERE o.sync_id = $1 AND o.kind = n.kind AND o.item_key = n.item_key) \
         UNION ALL \
         SELECT $3, $2, $4, o.kind, o.item_key, 'removed', o.parent_id, o.subject_id, o.email, \
         o.role, NULL, o.status, NULL, o.data, NULL, {removed} \
         FROM inventory_items o WHERE o.sync_id = $1 AND o.kind NOT IN ({excluded}) \
         AND NOT EXISTS (SELECT 1 FROM inventory_items n \
           WHERE n.sync_id = $2 AND n.kind = o.kind AND n.item_key = o.item_key) \
         AND NOT (o.kind IN ({PROJECT_CHILDREN}) AND EXISTS (SELECT 1 FROM inventory_items p \
           WHERE p.sync_id = $2 AND p.kind = 'project' AND p.item_key = o.parent_id \
           AND p.status = 'archived')) \
         UNION ALL \
         SELECT $3, $2, $4, n.kind, n.item_key, 'changed', n.parent_id, n.subject_id, n.email, \
         o.role, n.role, o.status, n.status, o.data, n.data, {changed} \
         FROM inventory_items o JOIN inventory_items n \
           ON n.sync_id = $2 AND n.kind = o.kind AND n.item_key = o.item_key \
         WHERE o.sync_id = $1 AND o.kind NOT IN ({excluded}) \
         AND (o.role IS DISTINCT FROM n.role OR o.status IS DISTINCT FROM n.status \
           OR o.email IS DISTINCT FROM n.email OR o.parent_id IS DISTINCT FROM n.parent_id \
           OR o.subject_id IS DISTINCT FROM n.subject_id)",
        added = expected("added", "n"),
        removed = expected("removed", "o"),
        changed = expected("changed", "n"),
    )
}

/// The kinds a diff between runs with these stats leaves out.
pub(super) fn excluded_kinds(old: &SyncStats, new: &SyncStats) -> Vec<ItemKind> {
    let mut kinds: Vec<ItemKind> = NEVER_COMPARED.to_vec();
    kinds.extend(old.skipped.keys().chain(new.skipped.keys()).copied());
    kinds.sort();
    kinds.dedup();
    kinds
}

/// A previous run's stats (which kinds it skipped).
pub(super) const SYNC_STATS: &str = "SELECT stats FROM inventory_syncs WHERE sync_id = $1";

/// Drops expectations that are met by the changes of sync `$3` or expired at `$2`.
pub(super) const DROP_MET_EXPECTATIONS: &str = "DELETE FROM expected_changes \
     WHERE connection_id = $1 AND (until_at < $2 OR EXISTS (SELECT 1 FROM inventory_changes c \
       WHERE c.sync_id = $3 AND c.by_governor AND c.kind = expected_changes.kind \
       AND c.item_key = expected_changes.item_key AND c.change = expected_changes.change))";

pub(super) const INSERT_EXPECTED: &str = "INSERT INTO expected_changes \
     (connection_id, kind, item_key, change, role, status, until_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// A project whose status became `archived` (never NULL: every column is coalesced).
const ARCHIVED: &str = "(c.kind = 'project' AND COALESCE(c.status_after, '') = 'archived' \
     AND COALESCE(c.status_before, '') <> 'archived')";
/// A project whose status left `archived`.
const UNARCHIVED: &str = "(c.kind = 'project' AND COALESCE(c.status_before, '') = 'archived' \
     AND COALESCE(c.status_after, '') <> 'archived')";

/// The SQL form of [`crate::domain::event_verb`]: the same rules in the same order.
fn verb_condition(verb: EventVerb) -> String {
    let changed = format!("c.change = 'changed' AND NOT {ARCHIVED} AND NOT {UNARCHIVED}");
    let role_same = "c.role_before IS NOT DISTINCT FROM c.role_after";
    let status_same = "c.status_before IS NOT DISTINCT FROM c.status_after";
    match verb {
        EventVerb::Added => "c.change = 'added'".to_owned(),
        EventVerb::Removed => "c.change = 'removed'".to_owned(),
        EventVerb::Archived => format!("c.change = 'changed' AND {ARCHIVED}"),
        EventVerb::Unarchived => format!("c.change = 'changed' AND {UNARCHIVED}"),
        EventVerb::RoleChanged => format!("{changed} AND NOT ({role_same})"),
        EventVerb::StatusChanged => {
            format!("{changed} AND {role_same} AND NOT ({status_same})")
        }
        EventVerb::Updated => format!("{changed} AND {role_same} AND {status_same}"),
    }
}

/// A value bound to a change query.
pub(super) enum Bind {
    Text(String),
    Time(DateTime<Utc>),
    Int(i64),
}

/// The page query for `q` and its binds in order (the limit is the last).
pub(super) fn change_page_sql(q: &ChangeQuery) -> (String, Vec<Bind>) {
    let mut binds = Vec::new();
    let mut conditions = Vec::new();
    let bind = |binds: &mut Vec<Bind>, b: Bind| {
        binds.push(b);
        format!("${}", binds.len())
    };
    if let Some(id) = q.connection_id {
        let p = bind(&mut binds, Bind::Text(id.to_string()));
        conditions.push(format!("c.connection_id = {p}"));
    }
    if let Some(kind) = q.kind {
        let p = bind(&mut binds, Bind::Text(kind.as_str().to_owned()));
        conditions.push(format!("c.kind = {p}"));
    }
    if let Some(event) = q.event {
        let p = bind(&mut binds, Bind::Text(event.kind.as_str().to_owned()));
        conditions.push(format!("c.kind = {p} AND {}", verb_condition(event.verb)));
    }
    if let Some(since) = q.since {
        let p = bind(&mut binds, Bind::Time(since));
        conditions.push(format!("c.seen_at >= {p}"));
    }
    match q.drift {
        Some(true) => conditions.push("NOT c.by_governor".to_owned()),
        Some(false) => conditions.push("c.by_governor".to_owned()),
        None => {}
    }
    if let Some(after) = q.after {
        let p = bind(&mut binds, Bind::Int(after));
        conditions.push(format!("c.seq > {p}"));
    }
    let limit = bind(&mut binds, Bind::Int(i64::from(q.limit)));
    // Every committed change has its seq; the condition keeps any other out of the feed.
    conditions.push("c.seq IS NOT NULL".to_owned());
    let filter = format!("WHERE {}", conditions.join(" AND "));
    let sql = format!(
        "SELECT c.seq, c.previous_seq, c.connection_id, c.sync_id, c.seen_at, c.kind, c.item_key, \
         c.change, c.parent_id, c.subject_id, c.email, c.role_before, c.role_after, \
         c.status_before, c.status_after, c.data_before, c.data_after, c.by_governor \
         FROM inventory_changes c {filter} ORDER BY c.seq LIMIT {limit}"
    );
    (sql, binds)
}

/// One `inventory_changes` row.
#[derive(sqlx::FromRow)]
pub(super) struct ChangeRow {
    /// The public id (`change_id` is the insertion order, not shown).
    seq: i64,
    previous_seq: Option<i64>,
    connection_id: String,
    sync_id: String,
    seen_at: DateTime<Utc>,
    kind: String,
    item_key: String,
    change: String,
    parent_id: Option<String>,
    subject_id: Option<String>,
    email: Option<String>,
    role_before: Option<String>,
    role_after: Option<String>,
    status_before: Option<String>,
    status_after: Option<String>,
    data_before: Option<Json<serde_json::Value>>,
    data_after: Option<Json<serde_json::Value>>,
    by_governor: bool,
}

impl TryFrom<ChangeRow> for Change {
    type Error = StoreError;
    fn try_from(r: ChangeRow) -> Result<Self, StoreError> {
        Ok(Change {
            id: r.seq,
            previous_id: r.previous_seq,
            connection_id: r
                .connection_id
                .parse()
                .map_err(|_| corrupt("change connection_id"))?,
            sync_id: r.sync_id.parse().map_err(|_| corrupt("change sync_id"))?,
            seen_at: r.seen_at,
            kind: r.kind.parse().map_err(|_| corrupt("change kind"))?,
            key: r.item_key,
            change: r.change.parse().map_err(|_| corrupt("change"))?,
            parent_id: r.parent_id,
            subject_id: r.subject_id,
            email: r.email,
            role_before: r.role_before,
            role_after: r.role_after,
            status_before: r.status_before,
            status_after: r.status_after,
            before: r.data_before.map(|d| d.0),
            after: r.data_after.map(|d| d.0),
            by_governor: r.by_governor,
        })
    }
}

impl Bind {
    pub(super) fn bind<'q, O>(self, q: QueryAs<'q, O>) -> QueryAs<'q, O> {
        match self {
            Bind::Text(v) => q.bind(v),
            Bind::Time(v) => q.bind(v),
            Bind::Int(v) => q.bind(v),
        }
    }
}

/// Binds an expected change to the next seven parameters (those of [`INSERT_EXPECTED`]).
pub(super) fn bind_expected<'q>(q: Query<'q>, e: &ExpectedChange) -> Query<'q> {
    q.bind(e.connection_id.to_string())
        .bind(e.kind.as_str())
        .bind(&e.key)
        .bind(e.change.as_str())
        .bind(&e.role)
        .bind(&e.status)
        .bind(e.until)
}

/// Takes the feed's head (its row lock, held to the commit, serializes the publishers that
/// recorded changes) and moves it past `$1` new changes; returns the seq before them.
pub(super) const CLAIM_CHANGES: &str =
    "UPDATE changes_head SET seq = seq + $1 WHERE id = 1 RETURNING seq - $1";

/// The last sequenced change of connection `$1`.
pub(super) const LAST_OF_CONNECTION: &str =
    "SELECT MAX(seq) FROM inventory_changes WHERE connection_id = $1";

/// Numbers connection `$1`'s unsequenced changes (the publishing transaction's own: no other
/// transaction's are visible, and a connection publishes one sync at a time) from `$2 + 1` in
/// the order they were recorded, each linked to the one before (`$3` before the first).
pub(super) const SEQUENCE_CHANGES: &str = "UPDATE inventory_changes \
     SET seq = $2 + r.n, previous_seq = CASE WHEN r.n = 1 THEN $3 ELSE $2 + r.n - 1 END \
     FROM (SELECT change_id, row_number() OVER (ORDER BY change_id) AS n \
           FROM inventory_changes WHERE connection_id = $1 AND seq IS NULL) r \
     WHERE inventory_changes.change_id = r.change_id";

/// Gives the `count` changes just recorded for `connection_id` their place in the feed. Call
/// last before the commit: the feed's head is held from here to the commit, so a reader that
/// sees seq N sees every seq below it, and seqs are dense. A publish without changes takes
/// no lock.
pub(super) async fn sequence_changes(
    tx: &mut sqlx::Transaction<'_, Db>,
    connection_id: &str,
    count: u64,
) -> Result<(), StoreError> {
    if count == 0 {
        return Ok(());
    }
    let n = i64::try_from(count).map_err(|_| corrupt("change count"))?;
    let (base,): (i64,) = sqlx::query_as(CLAIM_CHANGES)
        .bind(n)
        .fetch_one(&mut **tx)
        .await?;
    let (previous,): (Option<i64>,) = sqlx::query_as(LAST_OF_CONNECTION)
        .bind(connection_id)
        .fetch_one(&mut **tx)
        .await?;
    let numbered = sqlx::query(SEQUENCE_CHANGES)
        .bind(connection_id)
        .bind(base)
        .bind(previous)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if numbered != count {
        return Err(corrupt("unsequenced changes"));
    }
    Ok(())
}

/// Records the diff of snapshot `old` against `run`'s in the publishing transaction (call
/// before `old`'s items are dropped, and [`sequence_changes`] before the commit); returns
/// how many changes.
pub(super) async fn record_changes(
    tx: &mut sqlx::Transaction<'_, Db>,
    old: &str,
    run: &SyncRun,
) -> Result<u64, StoreError> {
    let connection_id = run.connection_id.to_string();
    let sync_id = run.id.to_string();
    let seen_at = run.finished_at.unwrap_or(run.started_at);
    let old_stats: Option<(Json<SyncStats>,)> = sqlx::query_as(SYNC_STATS)
        .bind(old)
        .fetch_optional(&mut **tx)
        .await?;
    let old_stats = old_stats.map(|(s,)| s.0).unwrap_or_default();
    let excluded = excluded_kinds(&old_stats, &run.stats);
    let recorded = sqlx::query(AssertSqlSafe(record_changes_sql(&excluded)))
        .bind(old)
        .bind(&sync_id)
        .bind(&connection_id)
        .bind(seen_at)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    sqlx::query(DROP_MET_EXPECTATIONS)
        .bind(&connection_id)
        .bind(seen_at)
        .bind(&sync_id)
        .execute(&mut **tx)
        .await?;
    Ok(recorded)
}

#[async_trait]
impl ChangesStore for This {
    async fn list_changes(&self, query: &ChangeQuery) -> Result<Vec<Change>, StoreError> {
        let (sql, binds) = change_page_sql(query);
        let mut q = sqlx::query_as::<_, ChangeRow>(AssertSqlSafe(sql));
        for b in binds {
            q = b.bind(q);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn expect_change(&self, e: &ExpectedChange) -> Result<(), StoreError> {
        bind_expected(sqlx::query(INSERT_EXPECTED), e)
            .execute(&self.pool)
            .await
            .map_err(not_found_on_foreign_key)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChangeEvent, ConnectionId};

    #[test]
    fn the_diff_leaves_out_costs_and_skipped_kinds() {
        let mut new = SyncStats::default();
        new.skipped.insert(ItemKind::Group, "no scope".into());
        let kinds = excluded_kinds(&SyncStats::default(), &new);
        assert_eq!(kinds, [ItemKind::Group, ItemKind::Cost]);
        let sql = record_changes_sql(&kinds);
        assert!(sql.contains("NOT IN ('group', 'cost')"), "{sql}");
        assert!(!sql.contains('?'), "every placeholder is `$N`: {sql}");
    }

    #[test]
    fn page_queries_bind_only_the_filters_given() {
        let q = ChangeQuery {
            connection_id: Some(ConnectionId::new()),
            event: Some("project.archived".parse::<ChangeEvent>().unwrap()),
            drift: Some(true),
            after: Some(7),
            limit: 10,
            ..ChangeQuery::default()
        };
        let (sql, binds) = change_page_sql(&q);
        assert_eq!(binds.len(), 4);
        assert!(
            sql.contains("c.connection_id = $1 AND c.kind = $2"),
            "{sql}"
        );
        assert!(
            sql.contains("NOT c.by_governor AND c.seq > $3"),
            "{sql}"
        );
        assert!(sql.ends_with("LIMIT $4"), "{sql}");
    }
}
