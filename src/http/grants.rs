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
use super::extract::{DryRunParams, Json, Path, Query};
use super::idempotency::idempotent;
use crate::auth::{Principal, Scope};
use crate::domain::grants::{
    Grant, GrantIn, GrantOutcome, GrantQuery, GrantStatus, GrantTarget, Grantee, PendingOp,
    RevokeOutcome,
};
use crate::domain::{ConnectionId, GrantId};
use crate::error::{AppError, ErrorCode};
use crate::http::AppState;
use crate::service::grants::{EndInput, Finished, GrantPreview, MAX_PAGE};

/// Routes under `/v1/grants`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_grant, list_grants))
        .routes(routes!(get_grant, update_grant))
        .routes(routes!(revoke_grant))
}

/// A grant and everything that happened to it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(as = Grant)]
pub struct GrantOut {
    /// Identifier.
    #[schema(value_type = String, format = Uuid)]
    pub id: GrantId,
    /// The organization.
    #[schema(value_type = String, format = Uuid)]
    pub connection_id: ConnectionId,
    /// Who receives the access (`user_id` is filled in once known).
    pub grantee: Grantee,
    /// What access.
    pub target: GrantTarget,
    /// Why, as the requester gave it.
    pub reason: String,
    /// The requester's ticket reference.
    pub ticket: Option<String>,
    /// The JWT subject that asked.
    pub requested_by: String,
    /// The OAuth client that asked, when the token names one.
    pub client_id: Option<String>,
    /// When the access is revoked by itself (`None`: until revoked).
    pub expires_at: Option<DateTime<Utc>>,
    /// Where it is.
    pub status: GrantStatus,
    /// What granting did (once known).
    pub outcome: Option<GrantOutcome>,
    /// What the person held of the target before (see [`AccessState::held`]; `None`:
    /// nothing), so that a revoke restores it.
    pub previous_role: Option<String>,
    /// The organization invite sent for this grant, when the person was not a member.
    pub invite_id: Option<String>,
    /// Why it failed: our reason or OpenAI's message.
    pub error: Option<String>,
    /// OpenAI's request id of the last write.
    pub upstream_request_id: Option<String>,
    /// A write in flight (see [`PendingOp`]).
    pub pending: Option<PendingOp>,
    /// Writes attempted so far for the pending operation (bounded, so a grant never loops).
    pub attempts: u32,
    /// How many times the expiry was changed (a policy may cap it).
    #[serde(default)]
    pub extensions: u32,
    /// The policy rule that allowed the grant (`null` when no policy is in force).
    #[serde(default)]
    pub policy_rule: Option<String>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was revoked or expired.
    pub ended_at: Option<DateTime<Utc>>,
    /// Who revoked it (the expiry worker is `openai-governor`).
    pub ended_by: Option<String>,
    /// Why it was revoked.
    pub end_reason: Option<String>,
    /// The revoke's ticket.
    pub end_ticket: Option<String>,
    /// What revoking did.
    pub revoke_outcome: Option<RevokeOutcome>,
}

impl From<Grant> for GrantOut {
    fn from(g: Grant) -> Self {
        let s = g.flat_state();
        Self {
            id: g.id,
            connection_id: g.connection_id,
            grantee: g.grantee,
            target: g.target,
            reason: g.reason,
            ticket: g.ticket,
            requested_by: g.requested_by,
            client_id: g.client_id,
            expires_at: g.expires_at,
            status: s.status,
            outcome: s.outcome,
            previous_role: g.previous_role,
            invite_id: g.invite_id,
            error: s.error,
            upstream_request_id: g.upstream_request_id,
            pending: s.pending,
            attempts: s.attempts,
            extensions: g.extensions,
            policy_rule: g.policy_rule,
            created_at: g.created_at,
            updated_at: g.updated_at,
            ended_at: s.ended_at,
            ended_by: s.ended_by,
            end_reason: s.end_reason,
            end_ticket: s.end_ticket,
            revoke_outcome: s.revoke_outcome,
        }
    }
}

/// Why and under which ticket a grant is revoked.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeIn {
    /// Why (kept in the audit trail).
    #[schema(max_length = 1000)]
    pub reason: Option<String>,
    /// The ticket of the revocation.
    #[schema(max_length = 200)]
    pub ticket: Option<String>,
}

/// A new expiry for a live grant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantPatch {
    /// The new expiry (RFC 3339): in the future, within 366 days.
    pub expires_at: Option<DateTime<Utc>>,
    /// Or this many seconds from now (1 to 366 days).
    #[schema(minimum = 1, maximum = 31622400)]
    #[serde(default, deserialize_with = "crate::domain::grants::whole_number")]
    pub expires_in_seconds: Option<i64>,
    /// Why (kept in the audit trail).
    #[schema(max_length = 1000)]
    pub reason: Option<String>,
    /// The ticket of the change.
    #[schema(max_length = 200)]
    pub ticket: Option<String>,
}

/// Filters and paging of grants.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GrantParams {
    /// Only this connection's grants.
    #[param(format = Uuid)]
    pub connection_id: Option<String>,
    /// Only grants in this status.
    #[param(value_type = Option<GrantStatus>)]
    pub status: Option<String>,
    /// Only this person's grants (email, case-insensitive).
    pub email: Option<String>,
    /// Only this project's grants.
    pub project_id: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// Cursor: the `next_cursor` of the previous page (a grant id).
    #[param(format = Uuid)]
    pub after: Option<String>,
}

/// A page of grants, oldest first.
#[derive(Serialize, ToSchema)]
pub struct GrantList {
    /// Grants, oldest first.
    pub data: Vec<GrantOut>,
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
    (status, headers, Json(GrantOut::from(grant))).into_response()
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
    params(
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retry safe: the same key and body return the first answer"),
        DryRunParams,
    ),
    request_body = GrantIn,
    responses(
        (status = 200, description = "With `dry_run=true`: what the grant would do; nothing was written", body = GrantPreview),
        (status = 201, description = "The grant's outcome (active, invited)", body = GrantOut),
        (status = 202, description = "Outcome unknown for now: reconciling", body = GrantOut),
    ),
    security(("bearer" = ["access:write"]))
)]
async fn create_grant(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    Query(params): Query<DryRunParams>,
    Json(body): Json<GrantIn>,
) -> Result<Response, AppError> {
    if params.dry_run == Some(true) {
        // A question, not a write: no idempotency record either.
        super::idempotency::key_of(&headers)?;
        let preview = state.grants.dry_run(&who, &body).await?;
        return Ok((StatusCode::OK, Json(preview)).into_response());
    }
    idempotent(
        &state,
        &who,
        Scope::AccessWrite,
        &headers,
        "POST /v1/grants",
        &body,
        || async { answer(state.grants.grant(&who, &body).await, StatusCode::CREATED) },
    )
    .await
}

/// List grants.
#[utoipa::path(
    get, path = "", operation_id = "list_grants", tag = "grants",
    params(GrantParams),
    responses(
        (status = 200, body = GrantList),
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
    let mut data: Vec<GrantOut> = state
        .grants
        .list(&who, q)
        .await?
        .into_iter()
        .map(GrantOut::from)
        .collect();
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
    params(("grant_id" = String, Path, format = Uuid, description = "Grant id (UUID)")),
    responses(
        (status = 200, body = GrantOut),
    ),
    security(("bearer" = ["access:write"]), ("bearer" = ["audit:read"]))
)]
async fn get_grant(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<GrantId>,
) -> Result<Json<GrantOut>, AppError> {
    Ok(Json(state.grants.get(&who, id).await?.into()))
}

/// Change a live grant's expiry (extend it, or shorten it).
#[utoipa::path(
    patch, path = "/{grant_id}", operation_id = "update_grant", tag = "grants",
    params(
        ("grant_id" = String, Path, format = Uuid, description = "Grant id (UUID)"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retry safe"),
    ),
    request_body = GrantPatch,
    responses(
        (status = 200, body = GrantOut),
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
                Ok(g) => Json(GrantOut::from(g)).into_response(),
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
        ("grant_id" = String, Path, format = Uuid, description = "Grant id (UUID)"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retry safe"),
    ),
    request_body(content = RevokeIn, description = "Why (optional)"),
    responses(
        (status = 200, description = "Revoked (see `revoke_outcome`)", body = GrantOut),
        (status = 202, description = "Outcome unknown for now: reconciling", body = GrantOut),
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
