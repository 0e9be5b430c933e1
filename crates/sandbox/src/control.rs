//! The control API under `/_sandbox/` (a path OpenAI does not use): counters, faults,
//! invite acceptance and expiry, and changes a person would make in the dashboard (drift).
//!
//! No admin key is needed: it is for tests and demos on loopback. Every admin operation is also
//! mounted under `/_sandbox/dashboard/...` (same paths as `/v1/...`), recorded in the audit log
//! with a `session` actor. Depends only on the sandbox's model and HTTP plumbing.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::http::{ApiError, ApiResult, body};
use super::model::{Actor, not_found};
use super::{Faults, SandboxState};

pub fn routes() -> Router<SandboxState> {
    Router::new()
        .route("/counters", get(counters).delete(reset_counters))
        .route("/faults", get(faults).put(set_faults).post(set_faults))
        .route("/faults/release", post(release_held))
        .route("/invites/{invite_id}/accept", post(accept_invite))
        .route("/invites/{invite_id}/expire", post(expire_invite))
        .route("/users", post(add_users))
        .route("/summary", get(summary))
}

async fn counters(State(s): State<SandboxState>) -> ApiResult {
    Ok(Json(json!(s.counters())))
}

async fn reset_counters(State(s): State<SandboxState>) -> ApiResult {
    s.reset_counters();
    Ok(Json(json!(s.counters())))
}

async fn faults(State(s): State<SandboxState>) -> ApiResult {
    Ok(Json(json!(s.faults())))
}

async fn set_faults(State(s): State<SandboxState>, raw: Bytes) -> ApiResult {
    let f: Faults = body(&raw)?;
    s.set_faults(f);
    Ok(Json(json!(s.faults())))
}

async fn release_held(State(s): State<SandboxState>) -> ApiResult {
    s.release_held();
    Ok(Json(json!(s.faults())))
}

/// Makes a pending invite expire now; answers the invite (`status: "expired"`).
async fn expire_invite(State(s): State<SandboxState>, Path(id): Path<String>) -> ApiResult {
    s.write(|org| {
        org.expire_invite(&id)?;
        let now = org.now();
        let inv = org
            .invites
            .get(&id)
            .ok_or_else(|| not_found("invite", &id))?;
        Ok(Json(inv.to_json(now)))
    })
}

async fn accept_invite(State(s): State<SandboxState>, Path(id): Path<String>) -> ApiResult {
    let user_id = s.accept_invite(&id)?;
    s.read(|org| Ok(Json(org.user(&user_id)?.to_json())))
}

#[derive(Deserialize)]
struct UsersIn {
    /// One person: email (name and role optional).
    email: Option<String>,
    name: Option<String>,
    role: Option<String>,
    /// Or many generated people: `count` users `bulk-<n>@<domain>`.
    count: Option<usize>,
    domain: Option<String>,
}

/// Adds members directly, as if they had accepted invites in the dashboard.
async fn add_users(State(s): State<SandboxState>, raw: Bytes) -> ApiResult {
    let req: UsersIn = body(&raw)?;
    let role = req.role.clone().unwrap_or_else(|| "reader".to_owned());
    s.write(|org| {
        let now = org.now();
        let mut added = Vec::new();
        match (&req.email, req.count) {
            (Some(email), _) => {
                let name = req
                    .name
                    .clone()
                    .unwrap_or_else(|| email.split('@').next().unwrap_or("user").to_owned());
                added.push(org.add_user(&name, email, &role, now)?);
            }
            (None, Some(n)) => {
                let domain = req
                    .domain
                    .clone()
                    .unwrap_or_else(|| "bulk.example.com".to_owned());
                let base = org.users.len();
                for i in 0..n {
                    let email = format!("bulk-{}@{domain}", base + i);
                    added.push(org.add_user(&format!("Bulk {}", base + i), &email, &role, now)?);
                }
            }
            (None, None) => {
                return Err(ApiError::invalid("Give 'email' or 'count'.", Some("email")));
            }
        }
        for id in &added {
            let (email, r) = org.user(id).map(|u| (u.email.clone(), u.role.clone()))?;
            let actor = Actor::Session {
                user_id: id.clone(),
                email,
            };
            org.audit(
                &actor,
                "user.added",
                None,
                id,
                json!({"id": id, "data": {"role": r}}),
            );
        }
        let users: Vec<serde_json::Value> = added
            .iter()
            .filter_map(|id| org.users.get(id))
            .map(|u| u.to_json())
            .collect();
        Ok(Json(json!({"object": "list", "data": users})))
    })
}

async fn summary(State(s): State<SandboxState>) -> ApiResult {
    s.read(|org| {
        Ok(Json(json!({
            "organization_id": org.id,
            "default_project_id": org.default_project_id,
            "users": org.users.len(),
            "projects": org.projects.len(),
            "archived_projects": org.projects.iter().filter(|p| p.archived()).count(),
            "project_memberships": org.project_users.values().map(|t| t.len()).sum::<usize>(),
            "invites": org.invites.len(),
            "groups": org.groups.len(),
            "roles": org.roles.len(),
            "service_accounts": org.service_accounts.values().map(|t| t.len()).sum::<usize>(),
            "api_keys": org.api_keys.values().map(|t| t.len()).sum::<usize>(),
            "admin_keys": org.admin_keys.len(),
            "audit_events": org.audit.len(),
        })))
    })
}
