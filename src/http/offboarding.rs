//! Offboarding (`/v1/offboardings`): remove a person from one organization or from every
//! connected one, in one call. A thin handler over
//! [`OffboardingService`](crate::service::OffboardingService); accepts an `Idempotency-Key`
//! (see [`super::idempotency`]).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::connections::connection_id;
use super::extract::{DryRunParams, Json, Path, Query};
use super::idempotency::idempotent;
use crate::auth::{Principal, Scope};
use crate::domain::offboarding::{Offboarding, OffboardingRun};
use crate::error::AppError;
use crate::http::AppState;
use crate::service::offboarding::{OffboardInput, OffboardingPreview};

/// The `200` of an offboarding: what was done, or (dry run) what would be.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Only its schema is used: the handler serializes either body directly.
pub enum OffboardingAnswer {
    Done(Offboarding),
    Preview(OffboardingPreview),
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_offboarding))
        .routes(routes!(get_offboarding))
}

/// Who to offboard, from where, and why.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffboardingIn {
    /// The person's email.
    #[schema(format = Email, max_length = 320)]
    pub email: Option<String>,
    /// Or their OpenAI user id (`user-…`).
    #[schema(pattern = r"^[\t\n\x0b\x0c\r ]*user-", max_length = 100)]
    pub user_id: Option<String>,
    /// The organization (connection id)…
    #[schema(format = Uuid)]
    pub connection_id: Option<String>,
    /// …or `true` for every connected organization.
    #[serde(default)]
    pub all_connections: bool,
    /// Also delete the project API keys they own (default `false`: the keys stay, and stop
    /// working as their owner is no longer in the project).
    #[serde(default)]
    pub delete_api_keys: bool,
    /// Why (kept in the audit trail).
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub reason: String,
    /// The ticket of the request, e.g. `SEC-123`.
    #[schema(max_length = 200)]
    pub ticket: Option<String>,
}

/// Offboard a person.
///
/// Removes the person from the organization (`connection_id`) or from every connected one
/// (`all_connections: true`): their pending invites are deleted, their project API keys too
/// when `delete_api_keys` is set, then they are removed from the organization, which removes
/// every project and group membership. Their live grants there are marked revoked. Each
/// organization gets one `user.offboarded` audit entry whose `before` lists what they held
/// and `after` what remains.
///
/// Someone who is not in an organization is a success with status `not_a_member`, so a retry
/// is safe. The last owner of an organization is refused before anything is written (OpenAI
/// refuses it too). With one `connection_id`, a refusal is a `409 last_owner` and an OpenAI
/// failure a `502`; with `all_connections`, the answer is always `200` and each
/// organization's `status` (`removed`, `not_a_member`, `refused`, `failed`) and `error` say
/// how it went: retry failed ones with a new `Idempotency-Key`.
///
/// The request is recorded before anything is sent to OpenAI and runs to its end even if
/// the caller goes away. When it takes longer than the server's wait (`OG_OFFBOARDING_WAIT`,
/// 10 s by default) the answer is `202` with the record (`status: running`) and a `Location`
/// to poll (`GET /v1/offboardings/{id}`).
#[utoipa::path(
    post, path = "", operation_id = "create_offboarding", tag = "offboarding",
    params(
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes a retry safe: the same key and body return the first answer"),
        DryRunParams,
    ),
    request_body = OffboardingIn,
    responses(
        (status = 200, description = "What was removed, per organization; with `dry_run=true`, what would be", body = OffboardingAnswer),
        (status = 202, description = "Still running: poll the `Location`", body = OffboardingRun),
    ),
    security(("bearer" = ["access:write"]))
)]
async fn create_offboarding(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    Query(params): Query<DryRunParams>,
    Json(body): Json<OffboardingIn>,
) -> Result<Response, AppError> {
    if params.dry_run == Some(true) {
        // A question, not a write: no idempotency record, no offboarding record.
        super::idempotency::key_of(&headers)?;
        let input = offboard_input(&body)?;
        let preview = state.offboarding.preview(&who, input).await?;
        return Ok((StatusCode::OK, Json(preview)).into_response());
    }
    idempotent(
        &state,
        &who,
        Scope::AccessWrite,
        &headers,
        "POST /v1/offboardings",
        &body,
        || async {
            let input = match offboard_input(&body) {
                Ok(i) => i,
                Err(e) => return e.into_response(),
            };
            let started = match state.offboarding.start(&who, input).await {
                Ok(s) => s,
                Err(e) => return e.into_response(),
            };
            let mut done = started.done;
            // Dropping the handle (on timeout, or when the caller goes away and this future is
            // dropped) detaches the task: the offboarding finishes and records itself.
            match tokio::time::timeout(started.wait, &mut done).await {
                Ok(Ok(Ok(o))) => (StatusCode::OK, Json(o)).into_response(),
                Ok(Ok(Err(e))) => e.into_response(),
                Ok(Err(join)) => AppError::internal(join).into_response(),
                Err(_) => {
                    let location = format!("/v1/offboardings/{}", started.run.id);
                    (
                        StatusCode::ACCEPTED,
                        [(axum::http::header::LOCATION, location)],
                        Json(started.run),
                    )
                        .into_response()
                }
            }
        },
    )
    .await
}

fn offboard_input(body: &OffboardingIn) -> Result<OffboardInput, AppError> {
    Ok(OffboardInput {
        email: body.email.clone(),
        user_id: body.user_id.clone(),
        connection_id: body
            .connection_id
            .as_deref()
            .map(connection_id)
            .transpose()?,
        all_connections: body.all_connections,
        delete_api_keys: body.delete_api_keys,
        reason: body.reason.clone(),
        ticket: body.ticket.clone(),
    })
}

/// An offboarding's record: `running` until it ends, then what was removed (`result`) or why
/// it failed (`error`).
#[utoipa::path(
    get, path = "/{offboarding_id}", operation_id = "get_offboarding", tag = "offboarding",
    params(("offboarding_id" = String, Path, format = Uuid, description = "Offboarding id (UUID)")),
    responses(
        (status = 200, description = "The record", body = OffboardingRun),
    ),
    security(("bearer" = ["access:write"]), ("bearer" = ["audit:read"]))
)]
async fn get_offboarding(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<OffboardingRun>, AppError> {
    crate::domain::ids::parse_uuid("offboarding id", &id)?;
    Ok(Json(state.offboarding.get(&who, &id).await?))
}
