//! Liveness and readiness probes, unauthenticated and outside `/v1`.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::extract::Json;
use crate::error::{AppError, ErrorCode};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// Probe answer.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    /// Store backend, on readiness.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<&'static str>,
    /// On readiness: `enforced` when a policy file is in force, `none` when every token with
    /// a scope may use it everywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<&'static str>,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "health",
    responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        store: None,
        policy: None,
    })
}

/// The process can serve: the store answers.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "health",
    responses(
        (status = 200, body = Health),
    ))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, AppError> {
    state.store.ping().await.map_err(|e| AppError {
        source: Some(e.into()),
        ..AppError::new(ErrorCode::ServiceUnavailable, "the store is unreachable")
    })?;
    Ok(Json(Health {
        status: "ok",
        store: Some(state.store.backend()),
        policy: Some(if state.policy.enforced() {
            "enforced"
        } else {
            "none"
        }),
    }))
}
