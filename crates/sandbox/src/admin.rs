//! Organization-level handlers: users, invites and admin API keys.
//!
//! Depends only on the sandbox's model and HTTP plumbing.

use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::SandboxState;
use super::http::{ApiError, ApiResult, Params, bad_cursor, body, legacy_list};
use super::model::{
    Actor, AdminKey, Assignment, Invite, InviteProject, ORG_RESOURCE, Refusal,
    SCOPE_MANAGEMENT_READ, SCOPE_MANAGEMENT_WRITE, SCOPE_USAGE_READ, alnum, not_found,
};

/// Routes under `/organization/users`, `/organization/invites`, `/organization/admin_api_keys`.
pub fn routes() -> Router<SandboxState> {
    Router::new()
        .route("/organization/users", get(list_users))
        .route(
            "/organization/users/{user_id}",
            get(retrieve_user).post(modify_user).delete(delete_user),
        )
        .route(
            "/organization/invites",
            get(list_invites).post(create_invite),
        )
        .route(
            "/organization/invites/{invite_id}",
            get(retrieve_invite).delete(delete_invite),
        )
        .route(
            "/organization/admin_api_keys",
            get(list_admin_keys).post(create_admin_key),
        )
        .route(
            "/organization/admin_api_keys/{key_id}",
            get(retrieve_admin_key).delete(delete_admin_key),
        )
}

async fn list_users(State(s): State<SandboxState>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let limit = p.limit(20, 1, 100)?;
    let emails: Vec<String> = p.all("emails").iter().map(|e| e.to_lowercase()).collect();
    s.read(|org| {
        let (items, more) = org
            .users
            .page(p.get("after"), limit, false, |u| {
                emails.is_empty() || emails.contains(&u.email.to_lowercase())
            })
            .map_err(bad_cursor)?;
        Ok(legacy_list(
            items.iter().map(|u| u.to_json()).collect(),
            more,
        ))
    })
}

async fn retrieve_user(State(s): State<SandboxState>, Path(user_id): Path<String>) -> ApiResult {
    s.read(|org| Ok(Json(org.user(&user_id)?.to_json())))
}

#[derive(Deserialize)]
struct UserUpdate {
    role: Option<String>,
    role_id: Option<String>,
}

async fn modify_user(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path(user_id): Path<String>,
    raw: Bytes,
) -> ApiResult {
    let req: UserUpdate = body(&raw)?;
    s.write(|org| {
        let current = org.user(&user_id)?.role.clone();
        if req.role.is_none() && req.role_id.is_none() {
            return Err(ApiError::invalid(
                "Missing required parameter: 'role'.",
                Some("role"),
            ));
        }
        if let Some(role) = &req.role {
            if !matches!(role.as_str(), "owner" | "reader") {
                return Err(ApiError::invalid(
                    format!("Invalid role '{role}': expected 'owner' or 'reader'."),
                    Some("role"),
                ));
            }
            if current == "owner" && role != "owner" && org.owner_count() <= 1 {
                return Err(ApiError::invalid(
                    "The organization must keep at least one owner.",
                    Some("role"),
                ));
            }
            if let Some(u) = org.users.get_mut(&user_id) {
                u.role = role.clone();
            }
        }
        if let Some(role_id) = &req.role_id {
            let role = org.role(role_id)?;
            if role.resource_type != ORG_RESOURCE {
                return Err(ApiError::invalid(
                    format!("Role {role_id} is not an organization role."),
                    Some("role_id"),
                ));
            }
            let now = org.now();
            let by = actor_user(&actor);
            org.user_roles
                .entry(user_id.clone())
                .or_default()
                .insert(Assignment {
                    role_id: role_id.clone(),
                    created_at: now,
                    created_by: Some(by),
                });
        }
        let role = org.user(&user_id)?.role.clone();
        org.audit(
            &actor,
            "user.updated",
            None,
            &user_id,
            json!({"id": user_id, "changes_requested": {"role": req.role.clone().unwrap_or(role)}}),
        );
        Ok(Json(org.user(&user_id)?.to_json()))
    })
}

pub fn actor_user(actor: &Actor) -> String {
    match actor {
        Actor::ApiKey { user_id, .. } | Actor::Session { user_id, .. } => user_id.clone(),
    }
}

async fn delete_user(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path(user_id): Path<String>,
) -> ApiResult {
    s.write(|org| {
        org.remove_user(&user_id)?;
        org.audit(
            &actor,
            "user.deleted",
            None,
            &user_id,
            json!({"id": user_id}),
        );
        Ok(Json(
            json!({"object": "organization.user.deleted", "id": user_id, "deleted": true}),
        ))
    })
}

async fn list_invites(State(s): State<SandboxState>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let limit = p.limit(20, 1, 100)?;
    s.read(|org| {
        let now = org.now();
        let (items, more) = org
            .invites
            .page(p.get("after"), limit, false, |_| true)
            .map_err(bad_cursor)?;
        Ok(legacy_list(
            items.iter().map(|i| i.to_json(now)).collect(),
            more,
        ))
    })
}

#[derive(Deserialize)]
struct InviteProjectIn {
    id: String,
    role: String,
}

#[derive(Deserialize)]
struct InviteIn {
    email: String,
    role: String,
    projects: Option<Vec<InviteProjectIn>>,
}

async fn create_invite(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    raw: Bytes,
) -> ApiResult {
    let req: InviteIn = body(&raw)?;
    if !matches!(req.role.as_str(), "owner" | "reader") {
        return Err(ApiError::invalid(
            format!("Invalid role '{}': expected 'owner' or 'reader'.", req.role),
            Some("role"),
        ));
    }
    if !req.email.contains('@') {
        return Err(ApiError::invalid(
            format!("Invalid email address '{}'.", req.email),
            Some("email"),
        ));
    }
    s.write(|org| {
        if org.user_by_email(&req.email).is_some() {
            return Err(ApiError::invalid(
                format!("{} is already a member of this organization.", req.email),
                Some("email"),
            ));
        }
        let now = org.now();
        let pending = org
            .invites
            .iter()
            .any(|i| i.email.eq_ignore_ascii_case(&req.email) && i.status(now) == "pending");
        if pending {
            return Err(ApiError::invalid(
                format!("An invite for {} is already pending.", req.email),
                Some("email"),
            ));
        }
        // Omitted `projects` means the default project (legacy behaviour); `[]` means none.
        let projects = match &req.projects {
            None => vec![InviteProject {
                id: org.default_project_id.clone(),
                role: "member".into(),
            }],
            Some(list) => {
                let mut out = Vec::new();
                for p in list {
                    if !matches!(p.role.as_str(), "owner" | "member") {
                        return Err(ApiError::invalid(
                            format!(
                                "Invalid project role '{}': expected 'owner' or 'member'.",
                                p.role
                            ),
                            Some("projects"),
                        ));
                    }
                    match org.projects.get(&p.id) {
                        None => {
                            return Err(ApiError::invalid(
                                format!("No project found with id '{}'.", p.id),
                                Some("projects"),
                            ));
                        }
                        Some(pr) if pr.archived() => {
                            return Err(ApiError::invalid(
                                format!("Project {} is archived.", p.id),
                                Some("projects"),
                            ));
                        }
                        Some(_) => out.push(InviteProject {
                            id: p.id.clone(),
                            role: p.role.clone(),
                        }),
                    }
                }
                out
            }
        };
        let id = org.new_id("invite-");
        let invite = Invite {
            id: id.clone(),
            email: req.email.clone(),
            role: req.role.clone(),
            created_at: now,
            expires_at: now + 7 * 86_400,
            accepted_at: None,
            projects,
        };
        let out = invite.to_json(now);
        org.invites.insert(invite);
        org.audit(
            &actor,
            "invite.sent",
            None,
            &id,
            json!({"id": id, "data": {"email": req.email, "role": req.role}}),
        );
        Ok(Json(out))
    })
}

async fn retrieve_invite(State(s): State<SandboxState>, Path(id): Path<String>) -> ApiResult {
    s.read(|org| {
        let inv = org
            .invites
            .get(&id)
            .ok_or_else(|| not_found("invite", &id))?;
        Ok(Json(inv.to_json(org.now())))
    })
}

async fn delete_invite(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult {
    s.write(|org| {
        let now = org.now();
        let inv = org
            .invites
            .get(&id)
            .ok_or_else(|| not_found("invite", &id))?;
        if inv.status(now) == "accepted" {
            return Err(Refusal::Invalid(
                format!("Invite {id} has already been accepted and cannot be deleted."),
                None,
            )
            .into());
        }
        org.invites.remove(&id);
        org.audit(&actor, "invite.deleted", None, &id, json!({"id": id}));
        Ok(Json(
            json!({"object": "organization.invite.deleted", "id": id, "deleted": true}),
        ))
    })
}

async fn list_admin_keys(State(s): State<SandboxState>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let limit = p.limit(20, 1, 100)?;
    let desc = p.desc(false)?;
    s.read(|org| {
        let (items, more) = org
            .admin_keys
            .page(p.get("after"), limit, desc, |_| true)
            .map_err(bad_cursor)?;
        Ok(legacy_list(
            items.iter().map(|k| org.admin_key_json(k)).collect(),
            more,
        ))
    })
}

#[derive(Deserialize)]
struct AdminKeyIn {
    name: String,
    expires_in_seconds: Option<i64>,
}

async fn create_admin_key(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    raw: Bytes,
) -> ApiResult {
    let req: AdminKeyIn = body(&raw)?;
    if let Some(e) = req.expires_in_seconds
        && !(1..=31_536_000).contains(&e)
    {
        return Err(ApiError::invalid(
            "Invalid 'expires_in_seconds': expected 1 to 31536000.",
            Some("expires_in_seconds"),
        ));
    }
    s.write(|org| {
        let now = org.now();
        let id = format!("key_{}", alnum(&mut org.rng, 16));
        let value = format!("sk-admin-{}", alnum(&mut org.rng, 48));
        let key = AdminKey {
            id: id.clone(),
            name: req.name.clone(),
            value: value.clone(),
            scopes: vec![
                SCOPE_MANAGEMENT_READ.into(),
                SCOPE_MANAGEMENT_WRITE.into(),
                SCOPE_USAGE_READ.into(),
            ],
            created_at: now,
            expires_at: req.expires_in_seconds.map(|e| now + e),
            owner_user_id: actor_user(&actor),
        };
        let mut out = org.admin_key_json(&key);
        out["value"] = json!(value);
        org.admin_key_values.insert(value, id.clone());
        org.admin_keys.insert(key);
        org.audit(&actor, "api_key.created", None, &id, json!({"id": id, "data": {"scopes": ["api.management.read", "api.management.write", "api.usage.read"]}}));
        Ok(Json(out))
    })
}

async fn retrieve_admin_key(State(s): State<SandboxState>, Path(id): Path<String>) -> ApiResult {
    s.read(|org| {
        let k = org
            .admin_keys
            .get(&id)
            .ok_or_else(|| not_found("admin API key", &id))?;
        Ok(Json(org.admin_key_json(k)))
    })
}

async fn delete_admin_key(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult {
    s.write(|org| {
        let k = org
            .admin_keys
            .remove(&id)
            .ok_or_else(|| not_found("admin API key", &id))?;
        org.admin_key_values.remove(&k.value);
        org.audit(&actor, "api_key.deleted", None, &id, json!({"id": id}));
        Ok(Json(
            json!({"id": id, "object": "organization.admin_api_key.deleted", "deleted": true}),
        ))
    })
}
