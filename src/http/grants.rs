//! Grants (`/v1/grants`): grant project access, follow it, revoke it, change its expiry.
//! Thin handlers over [`GrantService`](crate::service::GrantService); every write accepts an
//! `Idempotency-Key` (see [`super::idempotency`]).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::connections::connection_id;
use super::extract::{Json, Path, Query};
use super::idempotency::idempotent;
use crate::auth::{Principal, Scope};
use crate::domain::GrantId;
use crate::domain::grants::{Grant, GrantQuery, GrantStatus};
use crate::error::{AppError, ErrorCode, Problem};
use crate::http::AppState;
use crate::service::grants::{EndInput, Finished, GrantInput, MAX_PAGE};

/// Routes under `/v1/grants`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_grant, list_grants))
        .routes(routes!(get_grant, update_grant))
        .routes(routes!(revoke_grant))
}

/// A grant to make: who (a person by email or OpenAI user id, or a group) and what (project
/// access with a role, a group membership, a role, or an organization role).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantIn {
    /// The organization (connection id).
    #[schema(format = Uuid)]
    pub connection_id: String,
    /// The person's email. Needed to invite someone who is not yet in the organization.
    pub email: Option<String>,
    /// Or the person's OpenAI user id (`user-…`).
    pub user_id: Option<String>,
    /// Or a group (`group_…`) instead of a person: it gets project access (`project_id` with
    /// `role`) or a role (`role_id`), and so does everyone in it.
    pub grantee_group_id: Option<String>,
    /// The project (`proj_…`): with `role`, project membership; with `role_id`, a role
    /// assignment in that project.
    pub project_id: Option<String>,
    /// The group (`group_…`) to add the person to, instead of a project.
    pub group_id: Option<String>,
    /// With `project_id`: `owner`, `member`, or a custom project role's name (for a group, a
    /// role id too).
    pub role: Option<String>,
    /// An RBAC role (`role_…`) to assign to the person: an organization role, or with
    /// `project_id` a project role.
    pub role_id: Option<String>,
    /// The organization role to give the person: `owner` or `reader`.
    pub organization_role: Option<String>,
    /// Why (kept in the audit trail).
    pub reason: String,
    /// The ticket of the request, e.g. `SEC-123`.
    pub ticket: Option<String>,
    /// Revoke at this time (RFC 3339).
    pub expires_at: Option<DateTime<Utc>>,
    /// Or this many seconds from now (1 to 366 days).
    pub expires_in_seconds: Option<i64>,
}

/// Why and under which ticket a grant is revoked.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeIn {
    /// Why (kept in the audit trail).
    pub reason: Option<String>,
    /// The ticket of the revocation.
    pub ticket: Option<String>,
}

/// A new expiry for a live grant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantPatch {
    /// The new expiry (RFC 3339).
    pub expires_at: Option<DateTime<Utc>>,
    /// Or this many seconds from now.
    pub expires_in_seconds: Option<i64>,
    /// Why (kept in the audit trail).
    pub reason: Option<String>,
    /// The ticket of the change.
    pub ticket: Option<String>,
}

/// Filters and paging of grants.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GrantParams {
    /// Only this connection's grants.
    pub connection_id: Option<String>,
    /// Only grants in this status.
    pub status: Option<String>,
    /// Only this person's grants (email, case-insensitive).
    pub email: Option<String>,
    /// Only this project's grants.
    pub project_id: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    /// Cursor: the `next_cursor` of the previous page.
    pub after: Option<String>,
}

/// A page of grants, oldest first.
#[derive(Serialize, ToSchema)]
pub struct GrantList {
    /// Grants, oldest first.
    pub data: Vec<Grant>,
    /// Whether another page follows.
    pub has_more: bool,
    /// Pass as `after` to get the next page.
    #[schema(value_type = Option<String>)]
    pub next_cursor: Option<GrantId>,
}

/// `201`/`200` with the grant when its outcome is stored, `202` while it is reconciled.
fn answer(result: Result<Finished, AppError>, done: StatusCode) -> Response {
    let (status, grant) = match result {
        Ok(Finished::Done(g)) => (done, g),
        Ok(Finished::Pending(g)) => (StatusCode::ACCEPTED, g),
        Err(e) => return e.into_response(),
    };
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/grants/{}", grant.id)) {
        headers.insert(header::LOCATION, location);
    }
    (status, headers, Json(grant)).into_response()
}

/// Grant a person access to a project (or membership of a group).
///
/// Reads what OpenAI holds, then adds the member, changes their role, or (for someone not in
/// the organization) sends an invite naming the project: the grant is then `invited` until the
/// invite is accepted. Granting what the person already holds succeeds with outcome
/// `already_held` and writes nothing. Refused up front, with a typed problem: archived
/// project, lowering an organization owner, the last project owner, a pending invite without
/// the project. With an expiry, the access is revoked when it passes. The answer is `201`
/// with the grant, or `202` if OpenAI's answer is unknown (the service reconciles it: follow
/// `Location`).
#[utoipa::path(
    post, path = "", operation_id = "create_grant", tag = "grants",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: the same key and body return the first answer")),
    request_body = GrantIn,
    responses(
        (status = 201, description = "The grant's outcome (active, invited)", body = Grant),
        (status = 202, description = "Outcome unknown for now: reconciling", body = Grant),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Refused (archived project, owner rules, pending invite) or the key was reused", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "OpenAI refused or failed; the grant is recorded as failed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["access:write"]))
)]
async fn create_grant(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    Json(body): Json<GrantIn>,
) -> Result<Response, AppError> {
    idempotent(
        &state,
        &who,
        Scope::AccessWrite,
        &headers,
        "POST /v1/grants",
        &body,
        || async {
            let input = match grant_input(&body) {
                Ok(i) => i,
                Err(e) => return e.into_response(),
            };
            answer(state.grants.grant(&who, input).await, StatusCode::CREATED)
        },
    )
    .await
}

fn grant_input(body: &GrantIn) -> Result<GrantInput, AppError> {
    Ok(GrantInput {
        connection_id: Some(connection_id(&body.connection_id)?),
        email: body.email.clone(),
        user_id: body.user_id.clone(),
        grantee_group_id: body.grantee_group_id.clone(),
        project_id: body.project_id.clone(),
        group_id: body.group_id.clone(),
        role_id: body.role_id.clone(),
        organization_role: body.organization_role.clone(),
        role: body.role.clone(),
        reason: body.reason.clone(),
        ticket: body.ticket.clone(),
        expires_at: body.expires_at,
        expires_in_seconds: body.expires_in_seconds,
    })
}

/// List grants.
#[utoipa::path(
    get, path = "", operation_id = "list_grants", tag = "grants",
    params(GrantParams),
    responses(
        (status = 200, body = GrantList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["access:write"]), ("bearer" = ["audit:read"]))
)]
async fn list_grants(
    State(state): State<AppState>,
    who: Principal,
    Query(p): Query<GrantParams>,
) -> Result<Json<GrantList>, AppError> {
    let limit = p.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(AppError::new(
            ErrorCode::InvalidParameter,
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let status = p
        .status
        .as_deref()
        .map(|s| {
            s.parse::<GrantStatus>().map_err(|()| {
                AppError::new(
                    ErrorCode::InvalidParameter,
                    "status must be one of pending, active, invited, failed, revoked, expired",
                )
            })
        })
        .transpose()?;
    let q = GrantQuery {
        connection_id: p.connection_id.as_deref().map(connection_id).transpose()?,
        status,
        email: p.email,
        project_id: p.project_id,
        after: p.after.as_deref().map(GrantId::parse).transpose()?,
        limit: limit + 1,
    };
    let mut data = state.grants.list(&who, q).await?;
    let has_more = data.len() > limit as usize;
    data.truncate(limit as usize);
    let next_cursor = if has_more {
        data.last().map(|g| g.id)
    } else {
        None
    };
    Ok(Json(GrantList {
        data,
        has_more,
        next_cursor,
    }))
}

/// Get a grant.
#[utoipa::path(
    get, path = "/{grant_id}", operation_id = "get_grant", tag = "grants",
    params(("grant_id" = String, Path, description = "Grant id (UUID)")),
    responses(
        (status = 200, body = Grant),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["access:write"]), ("bearer" = ["audit:read"]))
)]
async fn get_grant(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<GrantId>,
) -> Result<Json<Grant>, AppError> {
    Ok(Json(state.grants.get(&who, id).await?))
}

/// Change a live grant's expiry (extend it, or shorten it).
#[utoipa::path(
    patch, path = "/{grant_id}", operation_id = "update_grant", tag = "grants",
    params(
        ("grant_id" = String, Path, description = "Grant id (UUID)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
    ),
    request_body = GrantPatch,
    responses(
        (status = 200, body = Grant),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The grant ended, or is being changed", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["access:write"]))
)]
async fn update_grant(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    Path(id): Path<GrantId>,
    Json(body): Json<GrantPatch>,
) -> Result<Response, AppError> {
    if body.expires_at.is_none() && body.expires_in_seconds.is_none() {
        return Err(AppError::validation(vec![crate::error::FieldError {
            field: "expires_at".into(),
            message: "give the new expiry: expires_at or expires_in_seconds".into(),
        }]));
    }
    let op = format!("PATCH /v1/grants/{id}");
    idempotent(
        &state,
        &who,
        Scope::AccessWrite,
        &headers,
        &op,
        &body,
        || async {
            let end = EndInput {
                reason: body.reason.clone(),
                ticket: body.ticket.clone(),
            };
            match state
                .grants
                .set_expiry(&who, id, body.expires_at, body.expires_in_seconds, end)
                .await
            {
                Ok(g) => Json(g).into_response(),
                Err(e) => e.into_response(),
            }
        },
    )
    .await
}

/// Revoke a grant: undo what it did.
///
/// Removes the membership the grant added, sets back the role it changed, or deletes the
/// invite it sent. Access the person held before the grant is left alone (`nothing_to_undo`);
/// access already gone is a success that says so (`already_absent`). Revoking a grant that
/// already ended answers it as it is.
#[utoipa::path(
    post, path = "/{grant_id}/revoke", operation_id = "revoke_grant", tag = "grants",
    params(
        ("grant_id" = String, Path, description = "Grant id (UUID)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe"),
    ),
    request_body(content = RevokeIn, description = "Why (optional)"),
    responses(
        (status = 200, description = "Revoked (see `revoke_outcome`)", body = Grant),
        (status = 202, description = "Outcome unknown for now: reconciling", body = Grant),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Refused (owner rules, default project) or the grant failed", body = Problem, content_type = "application/problem+json"),
        (status = 502, body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["access:write"]))
)]
async fn revoke_grant(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    Path(id): Path<GrantId>,
    Json(body): Json<RevokeIn>,
) -> Result<Response, AppError> {
    let op = format!("POST /v1/grants/{id}/revoke");
    idempotent(
        &state,
        &who,
        Scope::AccessWrite,
        &headers,
        &op,
        &body,
        || async {
            let end = EndInput {
                reason: body.reason.clone(),
                ticket: body.ticket.clone(),
            };
            answer(state.grants.revoke(&who, id, end).await, StatusCode::OK)
        },
    )
    .await
}
