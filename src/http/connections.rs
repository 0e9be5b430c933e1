//! `/v1/connections` and `/v1/connection-tests`: DTOs and thin handlers over
//! [`ConnectionService`](crate::service::ConnectionService).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::extract::{Json, Path, Query};
use crate::auth::Principal;
use crate::domain::{Connection, ConnectionId, TestReport};
use crate::error::{AppError, ErrorCode};
use crate::service::connections::MAX_PAGE;
use crate::service::grants::EndInput;
use crate::service::{ConnectionPatchInput, KeyTestInput, NewConnectionInput};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_connection, list_connections))
        .routes(routes!(
            get_connection,
            update_connection,
            delete_connection
        ))
        .routes(routes!(test_connection))
        .routes(routes!(test_admin_key))
}

/// A connection to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionIn {
    /// Unique name, 1–100 characters, not blank, no control characters (trimmed).
    #[schema(
        example = "acme-prod",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    /// The OpenAI admin key (`sk-admin-…`). Accepted here once, never returned.
    #[schema(value_type = String, format = Password, example = "sk-admin-0123456789abcdef", pattern = "^sk-admin-[!-~]{8,503}$")]
    pub admin_key: SecretString,
    /// The organization id (`org-…`) the key must belong to; checked by every test.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^org-[A-Za-z0-9_-]{1,60}$")]
    pub expected_organization_id: Option<String>,
    /// OpenAI base URL; default `https://api.openai.com/v1`. Others must be allowlisted.
    #[serde(default)]
    #[schema(format = Uri, example = "https://api.openai.com/v1")]
    pub base_url: Option<String>,
}

/// Changes to a connection. Absent fields stay; `expected_organization_id: null` clears it.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPatch {
    /// New name (as on create).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: Option<String>,
    /// Replacement admin key; clears the last test report.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password, pattern = "^sk-admin-[!-~]{8,503}$")]
    pub admin_key: Option<SecretString>,
    /// New expected organization id, or `null` to stop checking.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = "^org-[A-Za-z0-9_-]{1,60}$")]
    pub expected_organization_id: Option<Option<String>>,
    /// New base URL (allowlisted); clears the last test report.
    #[serde(default)]
    #[schema(format = Uri, example = "https://api.openai.com/v1")]
    pub base_url: Option<String>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A key to test without saving it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyTestIn {
    /// The OpenAI admin key (`sk-admin-…`). Not stored.
    #[schema(value_type = String, format = Password, pattern = "^sk-admin-[!-~]{8,503}$")]
    pub admin_key: SecretString,
    /// OpenAI base URL; default `https://api.openai.com/v1`.
    #[serde(default)]
    #[schema(format = Uri, example = "https://api.openai.com/v1")]
    pub base_url: Option<String>,
    /// The organization id the key must belong to.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^org-[A-Za-z0-9_-]{1,60}$")]
    pub expected_organization_id: Option<String>,
}

/// A connection as served. The admin key is never part of it.
#[derive(Serialize, ToSchema)]
pub struct ConnectionOut {
    /// Identifier (UUID).
    #[schema(value_type = String, format = Uuid)]
    pub id: ConnectionId,
    /// Unique name.
    pub name: String,
    /// OpenAI base URL.
    pub base_url: String,
    /// Expected organization id.
    pub expected_organization_id: Option<String>,
    /// The organization the connection is pinned to: the one its key reached on the first
    /// successful call. Every answer from OpenAI must come from it.
    pub organization_id: Option<String>,
    /// The key or base URL changed and no test has passed since: nothing is sent to OpenAI
    /// with this connection (syncs, grants, offboarding answer 409) until one does.
    pub test_required: bool,
    /// `sk-admin-…abcd`: the key's last four characters.
    pub key_hint: String,
    /// The last test report; absent until tested, cleared when the key or URL changes.
    pub last_test: Option<TestReport>,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// Who created it (JWT `sub`).
    pub created_by: String,
    /// When last changed.
    pub updated_at: DateTime<Utc>,
    /// Who last changed it (JWT `sub`).
    pub updated_by: String,
}

impl From<Connection> for ConnectionOut {
    fn from(c: Connection) -> Self {
        Self {
            id: c.id,
            name: c.name,
            base_url: c.base_url.to_string(),
            expected_organization_id: c.expected_organization_id,
            organization_id: c.organization_id,
            test_required: c.test_required,
            key_hint: c.key_hint,
            last_test: c.last_test,
            created_at: c.created_at,
            created_by: c.created_by,
            updated_at: c.updated_at,
            updated_by: c.updated_by,
        }
    }
}

/// A page of connections.
#[derive(Serialize, ToSchema)]
pub struct ConnectionList {
    /// Connections in creation order.
    pub data: Vec<ConnectionOut>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `after` to get the next page.
    #[schema(value_type = Option<String>)]
    pub next_cursor: Option<ConnectionId>,
}

/// Paging of the connection list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Cursor: the `next_cursor` of the previous page (a connection id).
    #[param(format = Uuid)]
    pub after: Option<String>,
}

/// How to delete a connection.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Revoke the connection's live grants first (needs `access:write` too); without it, a
    /// connection with live grants is not deleted (409 `connection_has_live_grants`).
    pub revoke_grants: Option<bool>,
}

/// A connection id given in a body or query (grants, offboarding), with the message a
/// malformed one in a path gets.
pub(super) fn connection_id(raw: &str) -> Result<ConnectionId, AppError> {
    Ok(ConnectionId::parse(raw)?)
}

/// Create a connection to an OpenAI organization.
///
/// The admin key is encrypted at rest and never returned; responses carry `key_hint`.
#[utoipa::path(
    post, path = "/", operation_id = "create_connection", tag = "connections",
    request_body = ConnectionIn,
    responses(
        (status = 201, description = "Created", body = ConnectionOut),
    ),
    security(("bearer" = ["connections:write"]))
)]
async fn create_connection(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<ConnectionIn>,
) -> Result<impl IntoResponse, AppError> {
    let created = state
        .connections
        .create(
            &who,
            NewConnectionInput {
                name: body.name,
                admin_key: body.admin_key,
                expected_organization_id: body.expected_organization_id,
                base_url: body.base_url,
            },
        )
        .await?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/connections/{}", created.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((
        StatusCode::CREATED,
        headers,
        Json(ConnectionOut::from(created)),
    ))
}

/// List connections, oldest first.
#[utoipa::path(
    get, path = "/", operation_id = "list_connections", tag = "connections",
    params(ListParams),
    responses(
        (status = 200, body = ConnectionList),
    ),
    security(("bearer" = ["connections:read"]))
)]
async fn list_connections(
    State(state): State<AppState>,
    who: Principal,
    Query(params): Query<ListParams>,
) -> Result<Json<ConnectionList>, AppError> {
    let after = params.after.as_deref().map(connection_id).transpose()?;
    let limit = params.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(AppError::new(
            ErrorCode::InvalidParameter,
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let (page, has_more) = state.connections.list(&who, after, limit).await?;
    let next_cursor = if has_more {
        page.last().map(|c| c.id)
    } else {
        None
    };
    Ok(Json(ConnectionList {
        data: page.into_iter().map(ConnectionOut::from).collect(),
        has_more,
        next_cursor,
    }))
}

/// Get a connection, with its last test report.
#[utoipa::path(
    get, path = "/{connection_id}", operation_id = "get_connection", tag = "connections",
    params(("connection_id" = String, Path, format = Uuid, description = "Connection id (UUID)")),
    responses(
        (status = 200, body = ConnectionOut),
    ),
    security(("bearer" = ["connections:read"]))
)]
async fn get_connection(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<ConnectionId>,
) -> Result<Json<ConnectionOut>, AppError> {
    Ok(Json(state.connections.get(&who, id).await?.into()))
}

/// Change a connection: rename, replace the admin key, change the expected organization or base URL.
#[utoipa::path(
    patch, path = "/{connection_id}", operation_id = "update_connection", tag = "connections",
    params(("connection_id" = String, Path, format = Uuid, description = "Connection id (UUID)")),
    request_body = ConnectionPatch,
    responses(
        (status = 200, body = ConnectionOut),
    ),
    security(("bearer" = ["connections:write"]))
)]
async fn update_connection(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<ConnectionId>,
    Json(patch): Json<ConnectionPatch>,
) -> Result<Json<ConnectionOut>, AppError> {
    let input = ConnectionPatchInput {
        name: patch.name,
        admin_key: patch.admin_key,
        expected_organization_id: patch.expected_organization_id,
        base_url: patch.base_url,
    };
    Ok(Json(
        state.connections.update(&who, id, input).await?.into(),
    ))
}

/// Delete a connection; its encrypted admin key and inventory are destroyed with it, its
/// grants' records and audit entries are kept. Refused while grants on it are live, unless
/// `revoke_grants=true` revokes them first.
#[utoipa::path(
    delete, path = "/{connection_id}", operation_id = "delete_connection", tag = "connections",
    params(("connection_id" = String, Path, format = Uuid, description = "Connection id (UUID)"), DeleteParams),
    responses(
        (status = 204, description = "Deleted"),
    ),
    security(("bearer" = ["connections:write", "access:write"]))
)]
async fn delete_connection(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<ConnectionId>,
    Query(params): Query<DeleteParams>,
) -> Result<StatusCode, AppError> {
    if params.revoke_grants == Some(true) {
        // Authorize the delete before revoking anything.
        state.connections.get_for_delete(&who, id).await?;
        state
            .grants
            .revoke_connection_grants(
                &who,
                id,
                EndInput {
                    reason: Some("the connection is being deleted".into()),
                    ticket: None,
                },
            )
            .await?;
    }
    state.connections.delete(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Test a saved connection: which capabilities its key has, which organization it reaches,
/// how fast. The report is stored on the connection.
///
/// Upstream failures (wrong key, timeout, OpenAI 5xx) are part of the report, not errors.
#[utoipa::path(
    post, path = "/{connection_id}/test", operation_id = "test_connection", tag = "connections",
    params(("connection_id" = String, Path, format = Uuid, description = "Connection id (UUID)")),
    responses(
        (status = 200, body = TestReport),
    ),
    security(("bearer" = ["connections:write"]))
)]
async fn test_connection(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<ConnectionId>,
) -> Result<Json<TestReport>, AppError> {
    Ok(Json(state.connections.test(&who, id).await?))
}

/// Test an admin key before saving it. Nothing is stored.
#[utoipa::path(
    post, path = "/test", operation_id = "test_admin_key", tag = "connections",
    request_body = KeyTestIn,
    responses(
        (status = 200, body = TestReport),
    ),
    security(("bearer" = ["connections:write"]))
)]
async fn test_admin_key(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<KeyTestIn>,
) -> Result<Json<TestReport>, AppError> {
    let input = KeyTestInput {
        admin_key: body.admin_key,
        base_url: body.base_url,
        expected_organization_id: body.expected_organization_id,
    };
    Ok(Json(state.connections.test_key(&who, input).await?))
}
