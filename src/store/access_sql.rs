//! The access queries' SQL, rows and [`AccessStore`] implementation, compiled for each
//! backend like `inventory_sql.rs`. Readers only see the snapshot each
//! connection's `inventory_heads` row names; every statement joins it with its items, so one
//! statement never mixes two snapshots of a connection.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::types::Json;

use super::This;
use super::inventory_sql::corrupt;
use crate::domain::access::{Person, ProjectItems, SnapshotItem, referenced_projects};
use crate::domain::{ConnectionId, Item, ItemKind, SyncId};
use crate::store::{AccessStore, StoreError};

/// The item columns the access queries select (`i` the items' alias).
macro_rules! item_columns {
    () => {
        "i.kind, i.item_key, i.parent_id, i.subject_id, i.email, i.role, i.status, i.data"
    };
}
const ITEM_COLUMNS: &str = item_columns!();

/// Everything the current snapshots say about one person (`$1` lower-cased email, `$2` user id;
/// either may be NULL): user item, memberships, group memberships with those groups, the groups'
/// project accesses and project-level role assignments, API keys, pending invites (by `$1` or the
/// users' emails), and the role objects of the roles held (by name or id; only organization-wide
/// ones and those of projects reached as a member or through a group). The email and subject
/// indexes find the person; the rest is read by primary key or parent index within a snapshot.
pub(super) const PERSON_SQL: &str = concat!(
    "WITH me AS MATERIALIZED ( \
           SELECT h.connection_id, h.sync_id, h.synced_at, i.subject_id AS user_id, i.email \
           FROM inventory_items i JOIN inventory_heads h ON h.sync_id = i.sync_id \
           WHERE i.kind = 'user' AND (i.email = $1 OR i.subject_id = $2)), \
         invited AS ( \
           SELECT h.connection_id, h.sync_id, h.synced_at, ",
    item_columns!(),
    " \
           FROM inventory_items i JOIN inventory_heads h ON h.sync_id = i.sync_id \
           WHERE i.kind = 'invite' AND i.status = 'pending' AND i.email = $1 \
           UNION \
           SELECT h.connection_id, h.sync_id, h.synced_at, ",
    item_columns!(),
    " \
           FROM me JOIN inventory_items i ON i.email = me.email \
           JOIN inventory_heads h ON h.sync_id = i.sync_id \
           WHERE i.kind = 'invite' AND i.status = 'pending'), \
         held AS MATERIALIZED ( \
           SELECT me.connection_id, me.sync_id, me.synced_at, ",
    item_columns!(),
    " \
           FROM me JOIN inventory_items i ON i.sync_id = me.sync_id AND i.subject_id = me.user_id \
             AND i.kind IN ('user', 'project_member', 'group_member', 'api_key') \
           UNION ALL \
           SELECT me.connection_id, me.sync_id, me.synced_at, ",
    item_columns!(),
    " \
           FROM me JOIN inventory_items gm ON gm.sync_id = me.sync_id \
             AND gm.kind = 'group_member' AND gm.subject_id = me.user_id \
           JOIN inventory_items i ON i.sync_id = me.sync_id AND i.kind = 'group' \
             AND i.item_key = gm.parent_id \
           UNION ALL \
           SELECT me.connection_id, me.sync_id, me.synced_at, ",
    item_columns!(),
    " \
           FROM me JOIN inventory_items gm ON gm.sync_id = me.sync_id \
             AND gm.kind = 'group_member' AND gm.subject_id = me.user_id \
           JOIN inventory_items i ON i.sync_id = me.sync_id AND i.kind = 'project_group' \
             AND i.subject_id = gm.parent_id \
           UNION ALL \
           SELECT me.connection_id, me.sync_id, me.synced_at, ",
    item_columns!(),
    " \
           FROM me JOIN inventory_items gm ON gm.sync_id = me.sync_id \
             AND gm.kind = 'group_member' AND gm.subject_id = me.user_id \
           JOIN inventory_items i ON i.sync_id = me.sync_id AND i.kind = 'role_assignment' \
             AND i.subject_id = gm.parent_id AND i.parent_id IS NOT NULL \
           UNION ALL \
           SELECT * FROM invited), \
         held_roles AS MATERIALIZED ( \
           SELECT DISTINCT connection_id, sync_id, synced_at, role FROM held \
           WHERE role IS NOT NULL), \
         held_projects AS MATERIALIZED ( \
           SELECT DISTINCT sync_id, parent_id AS project_id FROM held \
           WHERE kind IN ('project_member', 'project_group') AND parent_id IS NOT NULL), \
         found AS ( \
           SELECT * FROM held \
           UNION ALL \
           SELECT * FROM ( \
             SELECT r.connection_id, r.sync_id, r.synced_at, ",
    item_columns!(),
    " \
             FROM held_roles r JOIN inventory_items i ON i.sync_id = r.sync_id \
               AND i.kind = 'role' AND i.parent_id IS NULL \
               AND (i.role = r.role OR i.subject_id = r.role OR i.item_key = r.role) \
             UNION \
             SELECT r.connection_id, r.sync_id, r.synced_at, ",
    item_columns!(),
    " \
             FROM held_projects p JOIN inventory_items i ON i.sync_id = p.sync_id \
               AND i.kind = 'role' AND i.parent_id = p.project_id \
             JOIN held_roles r ON r.sync_id = p.sync_id \
               AND (i.role = r.role OR i.subject_id = r.role OR i.item_key = r.role)) AS r) \
         SELECT f.connection_id, cn.name AS connection_name, f.sync_id, f.synced_at, f.kind, \
           f.item_key, f.parent_id, f.subject_id, f.email, f.role, f.status, f.data \
         FROM found f JOIN connections cn ON cn.connection_id = f.connection_id \
         ORDER BY f.connection_id, f.kind, f.item_key"
);

/// Project ids per statement when reading the names of the projects a person reaches.
pub(super) const PROJECT_CHUNK: usize = 500;

/// The project items of some snapshots with some keys (`sync_ids` placeholders first, then
/// `keys`); over-selects across snapshots, which is harmless.
pub(super) fn projects_sql(sync_ids: usize, keys: usize) -> String {
    let list = |from: usize, n: usize| {
        (from..from + n)
            .map(|k| format!("${k}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "SELECT i.sync_id, {ITEM_COLUMNS} FROM inventory_items i \
         WHERE i.kind = 'project' AND i.sync_id IN ({}) AND i.item_key IN ({})",
        list(1, sync_ids),
        list(1 + sync_ids, keys)
    )
}

/// Everything about one project (`$2`) in a connection's (`$1`) current snapshot: the project,
/// its members, group accesses and role assignments, those groups and their members, service
/// accounts, pending invites that may name it (`$3`, a LIKE pattern over the invite's JSON; the
/// caller keeps the exact matches), organization owners and the organization's and project's roles.
pub(super) const PROJECT_SQL: &str = concat!(
    "WITH h AS (SELECT sync_id, synced_at FROM inventory_heads WHERE connection_id = $1), \
         pg AS (SELECT i.subject_id AS group_id FROM h JOIN inventory_items i \
           ON i.sync_id = h.sync_id AND i.kind = 'project_group' AND i.parent_id = $2) \
         SELECT h.sync_id, h.synced_at, ",
    item_columns!(),
    " FROM h JOIN inventory_items i \
           ON i.sync_id = h.sync_id AND i.kind = 'project' AND i.item_key = $2 \
         UNION ALL \
         SELECT h.sync_id, h.synced_at, ",
    item_columns!(),
    " FROM h JOIN inventory_items i \
           ON i.sync_id = h.sync_id \
           AND i.kind IN ('project_member', 'project_group', 'service_account', 'role_assignment') \
           AND i.parent_id = $2 \
         UNION ALL \
         SELECT h.sync_id, h.synced_at, ",
    item_columns!(),
    " FROM h JOIN inventory_items i \
           ON i.sync_id = h.sync_id AND i.kind = 'group' AND i.item_key IN (SELECT group_id FROM pg) \
         UNION ALL \
         SELECT h.sync_id, h.synced_at, ",
    item_columns!(),
    " FROM h JOIN inventory_items i \
           ON i.sync_id = h.sync_id AND i.kind = 'group_member' \
           AND i.parent_id IN (SELECT group_id FROM pg) \
         UNION ALL \
         SELECT h.sync_id, h.synced_at, ",
    item_columns!(),
    " FROM h JOIN inventory_items i \
           ON i.sync_id = h.sync_id AND i.kind = 'invite' AND i.status = 'pending' \
           AND CAST(i.data AS TEXT) LIKE $3 \
         UNION ALL \
         SELECT h.sync_id, h.synced_at, ",
    item_columns!(),
    " FROM h JOIN inventory_items i \
           ON i.sync_id = h.sync_id AND i.kind = 'user' AND i.role = 'owner' \
         UNION ALL \
         SELECT h.sync_id, h.synced_at, ",
    item_columns!(),
    " FROM h JOIN inventory_items i \
           ON i.sync_id = h.sync_id AND i.kind = 'role' \
           AND (i.parent_id IS NULL OR i.parent_id = $2)"
);

/// The LIKE pattern finding invites whose JSON mentions `project_id` as a string.
pub(super) fn mentions(project_id: &str) -> String {
    format!("%\"{project_id}\"%")
}

/// An item as the access queries return it.
#[derive(sqlx::FromRow)]
pub(super) struct AccessRow {
    kind: String,
    item_key: String,
    parent_id: Option<String>,
    subject_id: Option<String>,
    email: Option<String>,
    role: Option<String>,
    status: Option<String>,
    data: Json<serde_json::Value>,
}

impl TryFrom<AccessRow> for Item {
    type Error = StoreError;
    fn try_from(r: AccessRow) -> Result<Item, StoreError> {
        Ok(Item {
            kind: r.kind.parse::<ItemKind>().map_err(|_| corrupt("kind"))?,
            key: r.item_key,
            parent_id: r.parent_id,
            subject_id: r.subject_id,
            email: r.email,
            role: r.role,
            status: r.status,
            data: r.data.0,
        })
    }
}

/// A row of [`PERSON_SQL`].
#[derive(sqlx::FromRow)]
pub(super) struct PersonRow {
    connection_id: String,
    connection_name: String,
    sync_id: String,
    synced_at: DateTime<Utc>,
    #[sqlx(flatten)]
    item: AccessRow,
}

impl TryFrom<PersonRow> for SnapshotItem {
    type Error = StoreError;
    fn try_from(r: PersonRow) -> Result<SnapshotItem, StoreError> {
        Ok(SnapshotItem {
            connection_id: r
                .connection_id
                .parse::<ConnectionId>()
                .map_err(|_| corrupt("connection_id"))?,
            connection_name: r.connection_name,
            sync_id: r.sync_id.parse().map_err(|_| corrupt("sync_id"))?,
            synced_at: r.synced_at,
            item: r.item.try_into()?,
        })
    }
}

/// A row of [`projects_sql`].
#[derive(sqlx::FromRow)]
pub(super) struct ProjectRow {
    pub(super) sync_id: String,
    #[sqlx(flatten)]
    pub(super) item: AccessRow,
}

/// A row of [`PROJECT_SQL`].
#[derive(sqlx::FromRow)]
pub(super) struct SnapshotRow {
    sync_id: String,
    synced_at: DateTime<Utc>,
    #[sqlx(flatten)]
    item: AccessRow,
}

/// Turns [`PROJECT_SQL`]'s rows into the project's items, `None` when the connection has
/// no snapshot or the project is not in it.
pub(super) fn project_items(
    project_id: &str,
    rows: Vec<SnapshotRow>,
) -> Result<Option<ProjectItems>, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let sync_id: SyncId = first.sync_id.parse().map_err(|_| corrupt("sync_id"))?;
    let synced_at = first.synced_at;
    let mut project = None;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let item: Item = r.item.try_into()?;
        if item.kind == ItemKind::Project && item.key == project_id {
            project = Some(item);
        } else {
            items.push(item);
        }
    }
    Ok(project.map(|project| ProjectItems {
        sync_id,
        synced_at,
        project,
        items,
    }))
}

/// Adds the project items read by [`projects_sql`] to a person's items, each under the
/// connection of its snapshot.
pub(super) fn add_projects(
    found: &mut Vec<SnapshotItem>,
    rows: Vec<ProjectRow>,
) -> Result<(), StoreError> {
    let snapshots: BTreeMap<SyncId, (ConnectionId, String, DateTime<Utc>)> = found
        .iter()
        .map(|s| {
            (
                s.sync_id,
                (s.connection_id, s.connection_name.clone(), s.synced_at),
            )
        })
        .collect();
    for r in rows {
        let sync_id: SyncId = r.sync_id.parse().map_err(|_| corrupt("sync_id"))?;
        if let Some((connection_id, name, synced_at)) = snapshots.get(&sync_id) {
            found.push(SnapshotItem {
                connection_id: *connection_id,
                connection_name: name.clone(),
                sync_id,
                synced_at: *synced_at,
                item: r.item.try_into()?,
            });
        }
    }
    Ok(())
}

#[async_trait]
impl AccessStore for This {
    async fn person_items(&self, person: &Person) -> Result<Vec<SnapshotItem>, StoreError> {
        let (email, user_id) = match person {
            Person::Email(e) => (Some(e.to_lowercase()), None),
            Person::UserId(u) => (None, Some(u.clone())),
        };
        let rows: Vec<PersonRow> = sqlx::query_as(PERSON_SQL)
            .bind(email)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        let mut found = rows
            .into_iter()
            .map(SnapshotItem::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let wanted = referenced_projects(&found);
        let sync_ids: Vec<String> = wanted.keys().map(|s| s.to_string()).collect();
        let keys: Vec<String> = wanted
            .into_values()
            .flatten()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in keys.chunks(PROJECT_CHUNK) {
            let sql = projects_sql(sync_ids.len(), chunk.len());
            let mut q = sqlx::query_as::<_, ProjectRow>(AssertSqlSafe(sql));
            for s in &sync_ids {
                q = q.bind(s);
            }
            for k in chunk {
                q = q.bind(k);
            }
            let rows = q.fetch_all(&self.pool).await?;
            add_projects(&mut found, rows)?;
        }
        Ok(found)
    }

    async fn project_items(
        &self,
        connection_id: ConnectionId,
        project_id: &str,
    ) -> Result<Option<ProjectItems>, StoreError> {
        let rows: Vec<SnapshotRow> = sqlx::query_as(PROJECT_SQL)
            .bind(connection_id.to_string())
            .bind(project_id)
            .bind(mentions(project_id))
            .fetch_all(&self.pool)
            .await?;
        project_items(project_id, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_use_numbered_placeholders() {
        assert!(PERSON_SQL.contains("i.email = $1 OR i.subject_id = $2"));
        assert!(!PERSON_SQL.contains('?'));
        let sql = projects_sql(2, 3);
        assert!(
            sql.contains("IN ($1,$2) AND i.item_key IN ($3,$4,$5)"),
            "{sql}"
        );
        assert!(PROJECT_SQL.contains("LIKE $3"));
        assert_eq!(mentions("proj_1"), "%\"proj_1\"%");
    }
}
