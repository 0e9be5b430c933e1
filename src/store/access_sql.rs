//! The access questions, answered from the read model (`read_model.rs`), and the statements
//! that keep it in step with the database: loading a head whole, polling the heads, and
//! re-reading the items a write-through of another replica touched. Compiled for each backend
//! like `inventory_sql.rs`.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use futures::TryStreamExt;
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::inventory_sql::corrupt;
use crate::store::read_model::{Head, HeadInfo, POLL, ReadModel};
use super::{Db, POSTGRES, This};
use crate::domain::access::{KINDS, OwnerItems, Person, ProjectItems, ReachPage, SnapshotItem};
use crate::domain::{ConnectionId, Item, ItemKind};
use crate::store::{AccessStore, StoreError};

type Pool = sqlx::Pool<Db>;

/// Every head with its connection's name.
pub(super) const HEADS: &str = "SELECT h.connection_id, c.name, h.sync_id, h.synced_at, \
     h.version FROM inventory_heads h JOIN connections c ON c.connection_id = h.connection_id";

/// One connection's head.
pub(super) const HEAD_OF: &str = "SELECT h.connection_id, c.name, h.sync_id, h.synced_at, \
     h.version FROM inventory_heads h JOIN connections c ON c.connection_id = h.connection_id \
     WHERE h.connection_id = $1";

/// The items of a snapshot the read model holds (`$2`: the kinds, comma-separated).
pub(super) const SNAPSHOT_ITEMS: &str = "SELECT kind, item_key, parent_id, subject_id, email, \
     role, status, data FROM inventory_items WHERE sync_id = $1 \
     AND (',' || $2 || ',') LIKE ('%,' || kind || ',%')";

/// The write-throughs of a connection after version `$2`, each with the item as it is now in
/// the head (absent: removed), and the head they were read against: one statement, so the
/// items and the head agree.
pub(super) const PATCHES_AFTER: &str = "SELECT h.sync_id, p.version, p.kind, p.item_key, \
     i.parent_id, i.subject_id, i.email, i.role, i.status, i.data \
     FROM head_patches p JOIN inventory_heads h ON h.connection_id = p.connection_id \
     LEFT JOIN inventory_items i ON i.sync_id = h.sync_id AND i.kind = p.kind \
       AND i.item_key = p.item_key \
     WHERE p.connection_id = $1 AND p.version > $2 ORDER BY p.version";

#[derive(sqlx::FromRow)]
struct HeadRow {
    connection_id: String,
    name: String,
    sync_id: String,
    synced_at: DateTime<Utc>,
    version: i64,
}

impl TryFrom<HeadRow> for HeadInfo {
    type Error = StoreError;
    fn try_from(r: HeadRow) -> Result<Self, StoreError> {
        Ok(HeadInfo {
            connection_id: r
                .connection_id
                .parse()
                .map_err(|_| corrupt("connection_id"))?,
            name: r.name,
            sync_id: r.sync_id.parse().map_err(|_| corrupt("sync_id"))?,
            synced_at: r.synced_at,
            version: r.version,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    kind: String,
    item_key: String,
    parent_id: Option<String>,
    subject_id: Option<String>,
    email: Option<String>,
    role: Option<String>,
    status: Option<String>,
    data: Json<serde_json::Value>,
}

impl TryFrom<ItemRow> for Item {
    type Error = StoreError;
    fn try_from(r: ItemRow) -> Result<Item, StoreError> {
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

#[derive(sqlx::FromRow)]
struct PatchRow {
    sync_id: String,
    version: i64,
    kind: String,
    item_key: String,
    parent_id: Option<String>,
    subject_id: Option<String>,
    email: Option<String>,
    role: Option<String>,
    status: Option<String>,
    data: Option<Json<serde_json::Value>>,
}

fn kinds() -> String {
    KINDS.map(ItemKind::as_str).join(",")
}

/// Loads a connection's head whole and swaps it in (drops it when there is none). The head
/// row and its items are read in one transaction, so they belong to one snapshot.
pub(super) async fn load_head(
    pool: &Pool,
    model: &ReadModel,
    id: ConnectionId,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    if POSTGRES {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
    }
    let head: Option<HeadRow> = sqlx::query_as(HEAD_OF)
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    let Some(head) = head else {
        tx.commit().await?;
        model.remove(id);
        return Ok(());
    };
    let info = HeadInfo::try_from(head)?;
    let sync_id = info.sync_id.to_string();
    let mut head = Head::new(info);
    {
        // Row by row: each is trimmed into the head as it arrives, so the snapshot's full
        // JSON is never in memory at once (at 50,000 users that was most of the peak).
        let mut rows = sqlx::query_as::<_, ItemRow>(SNAPSHOT_ITEMS)
            .bind(sync_id)
            .bind(kinds())
            .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            head.upsert(Item::try_from(row)?);
        }
    }
    tx.commit().await?;
    model.install(head);
    Ok(())
}

/// Brings the model in step with the database: new or republished heads loaded, heads of
/// deleted connections dropped, renames taken, other replicas' write-throughs applied.
pub(super) async fn refresh(pool: &Pool, model: &ReadModel) -> Result<(), StoreError> {
    let _one = model.refresh.lock().await;
    let rows: Vec<HeadRow> = sqlx::query_as(HEADS).fetch_all(pool).await?;
    let now = rows
        .into_iter()
        .map(HeadInfo::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let held = model.infos();
    for gone in held
        .iter()
        .filter(|h| !now.iter().any(|n| n.connection_id == h.connection_id))
    {
        model.remove(gone.connection_id);
    }
    for head in now {
        let mine = held.iter().find(|h| h.connection_id == head.connection_id);
        match mine {
            Some(m) if m.sync_id == head.sync_id => {
                if m.name != head.name {
                    model.rename(head.connection_id, &head.name);
                }
                if m.version < head.version && !apply_patches(pool, model, m).await? {
                    load_head(pool, model, head.connection_id).await?;
                }
            }
            _ => load_head(pool, model, head.connection_id).await?,
        }
    }
    Ok(())
}

/// Applies the write-throughs after `mine.version`; `false` if the head was republished
/// meanwhile (the caller loads it whole).
async fn apply_patches(pool: &Pool, model: &ReadModel, mine: &HeadInfo) -> Result<bool, StoreError> {
    let rows: Vec<PatchRow> = sqlx::query_as(PATCHES_AFTER)
        .bind(mine.connection_id.to_string())
        .bind(mine.version)
        .fetch_all(pool)
        .await?;
    let mut upserts = Vec::new();
    let mut removals = Vec::new();
    let mut version = None;
    for r in rows {
        if r.sync_id != mine.sync_id.to_string() {
            return Ok(false);
        }
        version = Some(r.version);
        let kind = r.kind.parse::<ItemKind>().map_err(|_| corrupt("kind"))?;
        match r.data {
            Some(data) => upserts.push(Item {
                kind,
                key: r.item_key,
                parent_id: r.parent_id,
                subject_id: r.subject_id,
                email: r.email,
                role: r.role,
                status: r.status,
                data: data.0,
            }),
            None => removals.push((kind, r.item_key)),
        }
    }
    model.patch(mine.connection_id, upserts, &removals, version);
    Ok(true)
}

/// Polls the database for the other replicas' changes while the model is alive.
async fn poll(pool: Pool, model: Weak<ReadModel>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(model) = model.upgrade() else {
            return;
        };
        if let Err(e) = refresh(&pool, &model).await {
            tracing::warn!(error = %e, "refreshing the read model failed; answers may lag until it succeeds");
        }
    }
}

impl This {
    /// The read model, loaded (on first use, with its poller started).
    async fn read_model(&self) -> Result<&ReadModel, StoreError> {
        self.model
            .ready
            .get_or_try_init(|| async {
                refresh(&self.pool, &self.model).await?;
                tokio::spawn(poll(self.pool.clone(), Arc::downgrade(&self.model)));
                Ok::<_, StoreError>(())
            })
            .await?;
        Ok(&self.model)
    }

    /// After a publish: the new head, loaded now so this replica's next read sees it.
    pub(super) async fn published(&self, id: ConnectionId) -> Result<(), StoreError> {
        if self.model.ready.initialized() {
            let _one = self.model.refresh.lock().await;
            load_head(&self.pool, &self.model, id).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl AccessStore for This {
    async fn person_items(&self, person: &Person) -> Result<Vec<SnapshotItem>, StoreError> {
        Ok(self.read_model().await?.person_items(person))
    }

    async fn project_items(
        &self,
        connection_id: ConnectionId,
        project_id: &str,
        page: &ReachPage,
    ) -> Result<Option<ProjectItems>, StoreError> {
        Ok(self
            .read_model()
            .await?
            .project_items(connection_id, project_id, page))
    }

    async fn owner_items(
        &self,
        connection_id: ConnectionId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Option<OwnerItems>, StoreError> {
        Ok(self
            .read_model()
            .await?
            .owner_items(connection_id, after, limit))
    }

    async fn snapshot_heads(&self) -> Result<Vec<(ConnectionId, String)>, StoreError> {
        Ok(self.read_model().await?.heads())
    }

    async fn snapshot_name(
        &self,
        connection_id: ConnectionId,
    ) -> Result<Option<String>, StoreError> {
        Ok(self.read_model().await?.head_name(connection_id))
    }

    async fn org_role_items(&self, connection_id: ConnectionId) -> Result<Vec<Item>, StoreError> {
        Ok(self.read_model().await?.org_roles(connection_id))
    }

    async fn users_with_roles(
        &self,
        connection_id: ConnectionId,
        roles: &[String],
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        Ok(self
            .read_model()
            .await?
            .users_with_roles(connection_id, roles, after, limit))
    }

    async fn project_ids(
        &self,
        connection_id: ConnectionId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .read_model()
            .await?
            .project_ids(connection_id, after, limit))
    }

    async fn project_name(
        &self,
        connection_id: ConnectionId,
        project_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .read_model()
            .await?
            .project_name(connection_id, project_id))
    }
}
