//! Access questions over the synced inventory: a person's access across every connection
//! (`/v1/access`), who can reach a project (`/v1/connections/{id}/projects/{project_id}/access`)
//! and a streamed export of a connection's snapshot (`/v1/connections/{id}/export`). Thin
//! handlers over [`AccessService`](crate::service::AccessService); answered from our store,
//! never by calling OpenAI.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::extract::{Json, Path, Query};
use super::inventory::ItemOut;
use crate::auth::Principal;
use crate::domain::access::{
    ConnectionAccess, HolderCursor, Holders, Owners, Person, PersonCursor, ProjectReach,
    ReachCursor, ReachPage,
};
use crate::domain::person::{Email, UserId};
use crate::domain::{ConnectionId, ItemKind, SyncId};
use crate::error::{AppError, ErrorCode};
use crate::service::access::ExportPage;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(person_access))
        .routes(routes!(permission_holders))
}

pub fn connection_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(project_access))
        .routes(routes!(connection_owners))
        .routes(routes!(export_inventory))
}

/// Whom to look up: exactly one of `email` and `user_id`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PersonParams {
    /// The person's email (case-insensitive).
    #[param(format = Email, max_length = 320)]
    pub email: Option<String>,
    /// The person's OpenAI user id (`user-...`), the same in every organization.
    #[param(pattern = r"^[\t\n\x0b\x0c\r ]*user-", max_length = 100)]
    pub user_id: Option<String>,
    /// Projects per page, across connections, 1–1000 (default 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Where the page starts: after `<connection id> <project id>` (one space between),
    /// e.g. the `next_cursor` of the previous page; a connection id alone starts at that
    /// connection's first project.
    #[param(
        max_length = 1000,
        pattern = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}( [^\x00]*)?$"
    )]
    pub after: Option<String>,
}

/// A person's access across every connection.
#[derive(Serialize, ToSchema)]
pub struct PersonAccessOut {
    /// The email asked about (lower-cased), if asked by email.
    pub email: Option<String>,
    /// The user id asked about, if asked by id.
    pub user_id: Option<String>,
    /// One entry per connection where the person is a user or has a pending invite, each
    /// from that connection's last successful sync (`synced_at`), in connection id order;
    /// empty for unknown people. A page holds at most `limit` projects: a connection
    /// continued from the previous page repeats its `user`, `invites`, `groups` and
    /// `api_keys`, and its `projects` go on where the previous page stopped.
    pub connections: Vec<ConnectionAccess>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `after` for the next page.
    pub next_cursor: Option<String>,
}

/// Filter of who-can-reach.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReachParams {
    /// Only paths whose role grants this permission, e.g.
    /// `api.organization.projects.write` (who can manage the project's members).
    #[param(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub permission: Option<String>,
    /// People per page, 1–1000 (default 100, like the other lists).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Where the page starts: after the person `<email> <user id>` (one space between; an
    /// absent part is empty) in the order of the list, e.g. the `next_cursor` of the
    /// previous page.
    #[param(max_length = 1000)]
    pub after: Option<String>,
}

/// The largest page of people who can reach a project.
pub const MAX_REACH_PAGE: u32 = 1000;
/// A page of people who can reach a project when the caller does not say: every
/// organization owner reaches every project, so in a large organization the whole answer is
/// thousands of people.
const DEFAULT_REACH_PAGE: u32 = 100;

/// Which permission, and paging.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HolderParams {
    /// The permission, e.g. `api.organization.projects.api_keys.write`.
    #[param(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub permission: String,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Where the page starts: after the holder `<connection id> <project id> <email> <user
    /// id>` (single spaces; an absent part is empty, no project for an organization role)
    /// in the order of the list, e.g. the `next_cursor` of the previous page.
    #[param(
        max_length = 1000,
        pattern = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}( [^\x00]*)?$"
    )]
    pub after: Option<String>,
}

/// Paging of a connection's owners.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OwnerParams {
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Where the page starts: after this user id (owners come in user id order), e.g. the
    /// `next_cursor` of the previous page.
    #[param(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub after: Option<String>,
}

/// The connection an export comes from.
#[derive(Serialize, ToSchema)]
pub struct ExportConnection {
    /// Connection id.
    #[schema(value_type = String, format = Uuid)]
    pub id: ConnectionId,
    /// Its name.
    pub name: String,
}

/// The shape of an export (streamed, not built in memory).
#[derive(Serialize, ToSchema)]
pub struct ExportDocument {
    /// The connection.
    pub connection: ExportConnection,
    /// The snapshot exported; `null` before the first successful sync.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub sync_id: Option<SyncId>,
    /// When it was taken.
    pub synced_at: Option<DateTime<Utc>>,
    /// Every kind (all present, possibly empty) → its items ordered by key.
    pub items: BTreeMap<ItemKind, Vec<ItemOut>>,
}

fn bad(message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::InvalidParameter, message)
}

/// The longest `after` position the list endpoints take, in characters.
const MAX_CURSOR: usize = 1000;

/// `after`, refused when longer than the document allows.
fn cursor(after: &Option<String>) -> Result<Option<&str>, AppError> {
    match after.as_deref() {
        Some(raw) if raw.chars().count() > MAX_CURSOR => Err(bad(format!(
            "after must be at most {MAX_CURSOR} characters: pass the next_cursor of the \
             previous page"
        ))),
        other => Ok(other),
    }
}

fn person(email: Option<String>, user_id: Option<String>) -> Result<Person, AppError> {
    // Each parse trims, and counts the length as sent.
    match (email, user_id) {
        (Some(email), None) => Email::parse(&email)
            .map(|e| Person::Email(e.into_string()))
            .map_err(|m| bad(format!("email {m}"))),
        (None, Some(id)) => UserId::parse(&id)
            .map(|u| Person::UserId(u.into_string()))
            .map_err(|m| bad(format!("user_id {m}"))),
        (Some(_), Some(_)) => Err(bad("give either email or user_id, not both")),
        (None, None) => Err(bad("give email or user_id")),
    }
}

/// A person's access across every connection.
///
/// For each connection where the person is a user or has a pending invite: their
/// organization role, every project they can reach and how (`direct` membership, a `group`
/// with access to it, a pending `invite`), the permissions each role grants, their groups and
/// their API keys. Answered from each connection's last sync (`synced_at`), never by calling
/// OpenAI. An unknown person gets an empty list, not a 404.
#[utoipa::path(
    get, path = "", operation_id = "get_person_access", tag = "inventory",
    params(PersonParams),
    responses(
        (status = 200, body = PersonAccessOut),
    ),
    security(("bearer" = ["inventory:read"]))
)]
async fn person_access(
    State(state): State<AppState>,
    who: Principal,
    Query(params): Query<PersonParams>,
) -> Result<Json<PersonAccessOut>, AppError> {
    let person = person(params.email, params.user_id)?;
    let limit = params.limit.unwrap_or(MAX_REACH_PAGE);
    if !(1..=MAX_REACH_PAGE).contains(&limit) {
        return Err(bad(format!("limit must be between 1 and {MAX_REACH_PAGE}")));
    }
    let after = match cursor(&params.after)? {
        Some(raw) => Some(PersonCursor::decode(raw).ok_or_else(|| {
            bad(
                "after must be a position `<connection id> <project id>`, such as the \
                 next_cursor of a previous page",
            )
        })?),
        None => None,
    };
    let page = state
        .access
        .person_access(&who, &person, after.as_ref(), limit as usize)
        .await?;
    let (email, user_id) = match person {
        Person::Email(e) => (Some(e), None),
        Person::UserId(u) => (None, Some(u)),
    };
    Ok(Json(PersonAccessOut {
        email,
        user_id,
        connections: page.connections,
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    }))
}

/// Everyone holding a permission, anywhere.
///
/// Across every connection's last sync: who holds `permission` organization-wide through
/// their organization role, and who holds it in each project, with every path granting it
/// there. Ordered by connection, then the organization-wide holders by user id, then project
/// by project (people by email then user id); in pages.
#[utoipa::path(
    get, path = "/holders", operation_id = "list_permission_holders", tag = "inventory",
    params(HolderParams),
    responses(
        (status = 200, body = Holders),
    ),
    security(("bearer" = ["inventory:read"]))
)]
async fn permission_holders(
    State(state): State<AppState>,
    who: Principal,
    Query(params): Query<HolderParams>,
) -> Result<Json<Holders>, AppError> {
    let permission = params.permission.trim();
    if permission.is_empty() || params.permission.chars().count() > 200 {
        return Err(bad(
            "permission must be a permission name, e.g. api.organization.projects.api_keys.write",
        ));
    }
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_REACH_PAGE).contains(&limit) {
        return Err(bad(format!("limit must be between 1 and {MAX_REACH_PAGE}")));
    }
    let after = match cursor(&params.after)? {
        Some(raw) => Some(HolderCursor::decode(raw).ok_or_else(|| {
            bad(
                "after must be a position `<connection id> <project id> <email> <user id>`, \
                 such as the next_cursor of a previous page",
            )
        })?),
        None => None,
    };
    let holders = state
        .access
        .holders(&who, permission, after, limit as usize)
        .await?;
    Ok(Json(holders))
}

/// A connection's organization owners.
///
/// Everyone whose organization role is `owner` (they can manage every project), with what the
/// role grants, from the connection's last sync; ordered by user id, in pages. Empty before
/// the first sync.
#[utoipa::path(
    get, path = "/{connection_id}/owners", operation_id = "list_connection_owners",
    tag = "inventory",
    params(
        ("connection_id" = String, Path, format = Uuid, description = "Connection id (UUID)"),
        OwnerParams,
    ),
    responses(
        (status = 200, body = Owners),
    ),
    security(("bearer" = ["inventory:read"]))
)]
async fn connection_owners(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<ConnectionId>,
    Query(params): Query<OwnerParams>,
) -> Result<Json<Owners>, AppError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_REACH_PAGE).contains(&limit) {
        return Err(bad(format!("limit must be between 1 and {MAX_REACH_PAGE}")));
    }
    // Counted before trimming, as the document's maxLength counts.
    if let Some(raw) = params.after.as_deref()
        && (raw.trim().is_empty() || raw.chars().count() > 200)
    {
        return Err(bad(
            "after must be a user id of at most 200 characters, such as the next_cursor of \
             a previous page",
        ));
    }
    let after = params.after.as_deref().map(str::trim);
    let owners = state.access.owners(&who, id, after, limit as usize).await?;
    Ok(Json(owners))
}

/// Who can reach a project.
///
/// Every person with a path to the project — `direct` member, member of a `group` with
/// access, pending `invite`, `organization_owner` — with the role and permissions of each
/// path, plus the project's service accounts. `permission` keeps only the paths granting it.
/// People come in pages ordered by email then user id (`limit`, `after` = `next_cursor`);
/// service accounts come with the first page.
/// A group's project role is not synced, so group paths carry `role: null` and match no
/// permission filter.
#[utoipa::path(
    get, path = "/{connection_id}/projects/{project_id}/access", operation_id = "get_project_access",
    tag = "inventory",
    params(
        ("connection_id" = String, Path, format = Uuid, description = "Connection id (UUID)"),
        ("project_id" = String, Path, description = "OpenAI project id (proj_...)"),
        ReachParams,
    ),
    responses(
        (status = 200, body = ProjectReach),
    ),
    security(("bearer" = ["inventory:read"]))
)]
async fn project_access(
    State(state): State<AppState>,
    who: Principal,
    Path((id, project_id)): Path<(ConnectionId, String)>,
    Query(params): Query<ReachParams>,
) -> Result<Json<ProjectReach>, AppError> {
    // Counted as sent, as the document's maxLength counts.
    if params
        .permission
        .as_deref()
        .is_some_and(|p| p.trim().is_empty() || p.chars().count() > 200)
    {
        return Err(bad(
            "permission must be a permission name, e.g. api.organization.projects.write",
        ));
    }
    let permission = params.permission.map(|p| p.trim().to_owned());
    let limit = params.limit.unwrap_or(DEFAULT_REACH_PAGE);
    if !(1..=MAX_REACH_PAGE).contains(&limit) {
        return Err(bad(format!("limit must be between 1 and {MAX_REACH_PAGE}")));
    }
    let after = cursor(&params.after)?.map(ReachCursor::decode);
    let page = ReachPage {
        after,
        limit: limit as usize,
    };
    let reach = state
        .access
        .project_reach(&who, id, &project_id, permission.as_deref(), &page)
        .await?;
    Ok(Json(reach))
}

struct Writer {
    pages: BoxStream<'static, Result<ExportPage, AppError>>,
    current: Option<ItemKind>,
    first: bool,
    done: bool,
}

async fn write_next(mut w: Writer) -> Option<(Result<Vec<u8>, std::io::Error>, Writer)> {
    if w.done {
        return None;
    }
    let mut buf = Vec::new();
    match w.pages.next().await {
        Some(Ok((kind, items))) => {
            if w.current != Some(kind) {
                if w.current.is_some() {
                    buf.extend_from_slice(b"],");
                }
                buf.extend_from_slice(format!("\"{}\":[", kind.as_str()).as_bytes());
                w.current = Some(kind);
                w.first = true;
            }
            for item in items {
                if !w.first {
                    buf.push(b',');
                }
                w.first = false;
                if let Err(e) = serde_json::to_writer(&mut buf, &ItemOut::from(item)) {
                    w.done = true;
                    return Some((Err(std::io::Error::other(e)), w));
                }
            }
            Some((Ok(buf), w))
        }
        Some(Err(e)) => {
            // Headers are sent: the only way to tell the client is to break the body.
            tracing::error!(error = %e.message, "export stopped");
            w.done = true;
            Some((Err(std::io::Error::other(e.message)), w))
        }
        None => {
            if w.current.is_some() {
                buf.push(b']');
            }
            buf.extend_from_slice(b"}}");
            w.done = true;
            Some((Ok(buf), w))
        }
    }
}

/// Export a connection's whole inventory snapshot as one JSON document.
///
/// Streams `{connection, sync_id, synced_at, items: {user: [...], project: [...], ...}}`
/// with every kind present, read from the store in pages; memory stays flat however large
/// the organization. If a sync publishes a new snapshot while the export is read, the body
/// is cut short (invalid JSON) rather than mixing two snapshots: export again.
#[utoipa::path(
    get, path = "/{connection_id}/export", operation_id = "export_inventory", tag = "inventory",
    params(("connection_id" = String, Path, format = Uuid, description = "Connection id (UUID)")),
    responses(
        (status = 200, body = ExportDocument),
    ),
    security(("bearer" = ["inventory:read"]))
)]
async fn export_inventory(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<ConnectionId>,
) -> Result<Response, AppError> {
    let export = state.access.export(&who, id).await?;
    let mut head = Vec::new();
    let prefix = serde_json::json!({
        "connection": ExportConnection { id, name: export.connection.name.clone() },
        "sync_id": export.sync_id,
        "synced_at": export.synced_at,
    });
    serde_json::to_writer(&mut head, &prefix).map_err(AppError::internal)?;
    // `{...}` → `{..., "items": {` : the object is reopened to append the streamed part.
    head.pop();
    head.extend_from_slice(b",\"items\":{");
    let writer = Writer {
        pages: export.pages,
        current: None,
        first: true,
        done: false,
    };
    let body = stream::once(async move { Ok::<_, std::io::Error>(head) })
        .chain(stream::unfold(writer, write_next));
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"inventory-{id}.json\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}
