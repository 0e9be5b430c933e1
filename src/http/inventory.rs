//! Inventory: start and follow syncs (`/v1/connections/{id}/syncs`, `/v1/syncs/{id}`) and
//! read a connection's current snapshot (`/v1/connections/{id}/inventory/{kind}`). Thin
//! handlers over [`InventoryService`](crate::service::InventoryService).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::extract::{Json, Path, Query};
use crate::auth::Principal;
use crate::domain::{
    ConnectionId, DataText, Item, ItemKind, ItemQuery, SyncId, SyncRun, SyncStats, SyncStatus,
};
use crate::error::{AppError, ErrorCode};
use crate::service::inventory::MAX_PAGE;

pub fn connection_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_sync, list_syncs))
        .routes(routes!(list_inventory))
}

pub fn sync_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_sync))
}

/// A sync run as served.
#[derive(Serialize, ToSchema)]
pub struct SyncOut {
    /// Identifier (UUID); also names the snapshot it produced.
    #[schema(value_type = String, format = Uuid)]
    pub id: SyncId,
    /// The connection synced.
    #[schema(value_type = String, format = Uuid)]
    pub connection_id: ConnectionId,
    /// `running`, `succeeded` (its snapshot is what readers see) or `failed` (readers still
    /// see the previous snapshot).
    pub status: SyncStatus,
    /// Who started it (JWT `sub`).
    pub requested_by: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
    /// Items per kind, OpenAI requests made, 429s met, parts skipped (and why).
    pub stats: SyncStats,
    /// Why it failed (OpenAI's message and request id when OpenAI failed).
    pub error: Option<String>,
}

impl From<SyncRun> for SyncOut {
    fn from(r: SyncRun) -> Self {
        Self {
            id: r.id,
            connection_id: r.connection_id,
            status: r.status,
            requested_by: r.requested_by,
            started_at: r.started_at,
            finished_at: r.finished_at,
            stats: r.stats,
            error: r.error,
        }
    }
}

/// A page of sync runs, newest first.
#[derive(Serialize, ToSchema)]
pub struct SyncList {
    /// Runs, newest first.
    pub data: Vec<SyncOut>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `before` to get the next (older) page.
    #[schema(value_type = Option<String>)]
    pub next_cursor: Option<SyncId>,
}

/// One inventory object.
#[derive(Serialize, ToSchema)]
pub struct ItemOut {
    /// What it is.
    pub kind: ItemKind,
    /// Unique among the snapshot's items of this kind: the object's id, or
    /// `<project or group id>/<member id>` for memberships.
    pub key: String,
    /// The project (memberships, service accounts, API keys, costs) or group (members).
    pub parent_id: Option<String>,
    /// The user, group or service account it is about.
    pub subject_id: Option<String>,
    /// The person's email, lower-cased.
    pub email: Option<String>,
    /// Role name.
    pub role: Option<String>,
    /// Project status, invite status, API key `owner_project_access`, or role level.
    pub status: Option<String>,
    /// The object as OpenAI returned it at the last sync.
    #[schema(value_type = Object)]
    pub data: DataText,
}

impl From<Item<DataText>> for ItemOut {
    fn from(i: Item<DataText>) -> Self {
        Self {
            kind: i.kind,
            key: i.key,
            parent_id: i.parent_id,
            subject_id: i.subject_id,
            email: i.email,
            role: i.role,
            status: i.status,
            data: i.data,
        }
    }
}

/// A page of a connection's inventory, from its last successful sync.
#[derive(Serialize, ToSchema)]
pub struct ItemList {
    /// Items ordered by `key`.
    pub data: Vec<ItemOut>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `after` to get the next page.
    pub next_cursor: Option<String>,
    /// The sync the data comes from; `null` before the first successful sync.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub sync_id: Option<SyncId>,
    /// When that sync finished: how fresh the data is.
    pub synced_at: Option<DateTime<Utc>>,
}

/// How to sync.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StartSyncParams {
    /// Read everything even when an incremental sync (only what the audit log says changed)
    /// is possible. Default `false`.
    #[serde(default)]
    pub full: bool,
}

/// Paging of sync runs.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SyncListParams {
    /// Page size, 1–500 (default 20).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Cursor: the `next_cursor` of the previous page (a sync id).
    #[param(format = Uuid)]
    pub before: Option<String>,
}

/// Filters and paging of inventory items.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ItemParams {
    /// Only items of this project or group (e.g. the members of one project).
    pub parent_id: Option<String>,
    /// Only items about this user, group or service account (e.g. one user's memberships).
    pub subject_id: Option<String>,
    /// Only items of this email (case-insensitive).
    pub email: Option<String>,
    /// Only items with this role.
    pub role: Option<String>,
    /// Only items with this status (`archived` projects, `pending` invites, `inactive` keys...).
    pub status: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Cursor: the `next_cursor` of the previous page.
    pub after: Option<String>,
}

fn limit(raw: Option<u32>, default: u32) -> Result<u32, AppError> {
    let limit = raw.unwrap_or(default);
    if limit == 0 || limit > MAX_PAGE {
        return Err(AppError::new(
            ErrorCode::InvalidParameter,
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(limit)
}

fn item_kind(raw: &str) -> Result<ItemKind, AppError> {
    raw.parse().map_err(|_| {
        let kinds: Vec<&str> = ItemKind::ALL.iter().map(|k| k.as_str()).collect();
        AppError::new(
            ErrorCode::NotFound,
            format!(
                "`{}` is not an inventory kind; use one of: {}",
                raw.chars().take(64).collect::<String>(),
                kinds.join(", ")
            ),
        )
    })
}

/// Start a sync of a connection's inventory.
///
/// Returns at once with the `running` sync; poll `Location` until it has finished. Readers
/// keep seeing the previous snapshot until the new one is complete. When the previous sync
/// read the audit log, this one reads only what changed since (`stats.mode: incremental`),
/// unless `full=true` or a periodic full sync is due.
#[utoipa::path(
    post, path = "/{connection_id}/syncs", operation_id = "start_sync", tag = "inventory",
    params(("connection_id" = String, Path, format = Uuid, description = "Connection id (UUID)"), StartSyncParams),
    responses(
        (status = 202, description = "Started", body = SyncOut),
    ),
    security(("bearer" = ["connections:write"]))
)]
async fn start_sync(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<ConnectionId>,
    Query(params): Query<StartSyncParams>,
) -> Result<impl IntoResponse, AppError> {
    let run = state.inventory.start_sync(&who, id, params.full).await?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/syncs/{}", run.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::ACCEPTED, headers, Json(SyncOut::from(run))))
}

/// List a connection's syncs, newest first.
#[utoipa::path(
    get, path = "/{connection_id}/syncs", operation_id = "list_syncs", tag = "inventory",
    params(("connection_id" = String, Path, format = Uuid, description = "Connection id (UUID)"), SyncListParams),
    responses(
        (status = 200, body = SyncList),
    ),
    security(("bearer" = ["inventory:read"]))
)]
async fn list_syncs(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<ConnectionId>,
    Query(params): Query<SyncListParams>,
) -> Result<Json<SyncList>, AppError> {
    let before = params.before.as_deref().map(SyncId::parse).transpose()?;
    let limit = limit(params.limit, 20)?;
    let mut runs = state
        .inventory
        .list_syncs(&who, id, before, limit + 1)
        .await?;
    let has_more = runs.len() > limit as usize;
    runs.truncate(limit as usize);
    let next_cursor = if has_more {
        runs.last().map(|r| r.id)
    } else {
        None
    };
    Ok(Json(SyncList {
        data: runs.into_iter().map(SyncOut::from).collect(),
        has_more,
        next_cursor,
    }))
}

/// Get a sync: its status, counts and error.
#[utoipa::path(
    get, path = "/{sync_id}", operation_id = "get_sync", tag = "inventory",
    params(("sync_id" = String, Path, format = Uuid, description = "Sync id (UUID)")),
    responses(
        (status = 200, body = SyncOut),
    ),
    security(("bearer" = ["inventory:read"]))
)]
async fn get_sync(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<SyncId>,
) -> Result<Json<SyncOut>, AppError> {
    Ok(Json(state.inventory.get_sync(&who, id).await?.into()))
}

/// Read a connection's inventory, one kind at a time, from its last successful sync.
///
/// Kinds: `user`, `invite`, `project`, `project_member`, `project_group`, `service_account`,
/// `api_key`, `group`, `group_member`, `role`, `admin_key`, `cost`. Answered from our store,
/// never by calling OpenAI; `synced_at` says how fresh it is.
#[utoipa::path(
    get, path = "/{connection_id}/inventory/{kind}", operation_id = "list_inventory", tag = "inventory",
    params(
        ("connection_id" = String, Path, format = Uuid, description = "Connection id (UUID)"),
        ("kind" = ItemKind, Path, description = "What to list"),
        ItemParams,
    ),
    responses(
        (status = 200, body = ItemList),
    ),
    security(("bearer" = ["inventory:read"]))
)]
async fn list_inventory(
    State(state): State<AppState>,
    who: Principal,
    Path((id, kind)): Path<(ConnectionId, String)>,
    Query(params): Query<ItemParams>,
) -> Result<Json<ItemList>, AppError> {
    let kind = item_kind(&kind)?;
    let limit = limit(params.limit, 100)?;
    let query = ItemQuery {
        kind,
        parent_id: params.parent_id,
        subject_id: params.subject_id,
        email: params.email,
        role: params.role,
        status: params.status,
        after: params.after,
        limit: limit + 1,
    };
    let mut page = state.inventory.list_items(&who, id, query).await?;
    let has_more = page.items.len() > limit as usize;
    page.items.truncate(limit as usize);
    let next_cursor = if has_more {
        page.items.last().map(|i| i.key.clone())
    } else {
        None
    };
    Ok(Json(ItemList {
        data: page.items.into_iter().map(ItemOut::from).collect(),
        has_more,
        next_cursor,
        sync_id: page.sync_id,
        synced_at: page.synced_at,
    }))
}
