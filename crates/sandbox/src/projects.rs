//! Project handlers: projects, their members, service accounts, API keys and groups.
//!
//! Depends only on the sandbox's model and HTTP plumbing.

use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::SandboxState;
use super::admin::actor_user;
use super::http::{ApiError, ApiResult, Params, bad_cursor, body, legacy_list, rbac_list};
use super::model::{
    Actor, Assignment, KeyOwner, Project, ProjectApiKey, ProjectGroup, ServiceAccount, alnum,
    not_found,
};
use super::table::Table;

pub fn routes() -> Router<SandboxState> {
    let p = "/organization/projects/{project_id}";
    Router::new()
        .route(
            "/organization/projects",
            get(list_projects).post(create_project),
        )
        .route(p, get(retrieve_project).post(modify_project))
        .route(&format!("{p}/archive"), post(archive_project))
        .route(&format!("{p}/users"), get(list_members).post(add_member))
        .route(
            &format!("{p}/users/{{user_id}}"),
            get(retrieve_member)
                .post(modify_member)
                .delete(remove_member),
        )
        .route(
            &format!("{p}/service_accounts"),
            get(list_service_accounts).post(create_service_account),
        )
        .route(
            &format!("{p}/service_accounts/{{service_account_id}}"),
            get(retrieve_service_account)
                .post(modify_service_account)
                .delete(delete_service_account),
        )
        .route(
            &format!("{p}/service_accounts/{{service_account_id}}/api_keys"),
            post(create_service_account_key),
        )
        .route(&format!("{p}/api_keys"), get(list_api_keys))
        .route(
            &format!("{p}/api_keys/{{api_key_id}}"),
            get(retrieve_api_key).delete(delete_api_key),
        )
        .route(
            &format!("{p}/groups"),
            get(list_project_groups).post(add_project_group),
        )
        .route(
            &format!("{p}/groups/{{group_id}}"),
            get(retrieve_project_group).delete(remove_project_group),
        )
}

async fn list_projects(State(s): State<SandboxState>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let limit = p.limit(20, 1, 100)?;
    let include_archived = p.bool("include_archived")?.unwrap_or(false);
    s.read(|org| {
        let (items, more) = org
            .projects
            .page(p.get("after"), limit, false, |pr| {
                include_archived || !pr.archived()
            })
            .map_err(bad_cursor)?;
        Ok(legacy_list(
            items.iter().map(|pr| pr.to_json()).collect(),
            more,
        ))
    })
}

#[derive(Deserialize)]
struct ProjectIn {
    name: String,
    residency: Option<String>,
    external_key_id: Option<String>,
}

const RESIDENCIES: &[&str] = &[
    "GLOBAL",
    "US_STORAGE_PROCESSING",
    "EU_STORAGE_PROCESSING",
    "JP_STORAGE",
    "KR_STORAGE",
    "CA_STORAGE",
    "SG_STORAGE",
    "IN_STORAGE",
    "AU_STORAGE",
    "GB_STORAGE",
    "AE_STORAGE",
    "AE_STORAGE_PROCESSING",
];

async fn create_project(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    raw: Bytes,
) -> ApiResult {
    let req: ProjectIn = body(&raw)?;
    if req.name.trim().is_empty() {
        return Err(ApiError::invalid(
            "Project name must not be empty.",
            Some("name"),
        ));
    }
    let residency = req.residency.clone().unwrap_or_else(|| "GLOBAL".to_owned());
    if !RESIDENCIES.contains(&residency.as_str()) {
        return Err(ApiError::invalid(
            format!("Invalid residency '{residency}'."),
            Some("residency"),
        ));
    }
    s.write(|org| {
        let now = org.now();
        let id = org.new_id("proj_");
        let project = Project {
            id: id.clone(),
            name: req.name.clone(),
            created_at: now,
            archived_at: None,
            residency,
            external_key_id: req.external_key_id.clone(),
        };
        let out = project.to_json();
        org.projects.insert(project);
        // The creator becomes the project's owner, as in the dashboard.
        let mut members = Table::default();
        let creator = actor_user(&actor);
        if org.users.contains(&creator) {
            members.insert(super::model::Membership {
                user_id: creator,
                role: "owner".into(),
                added_at: now,
            });
        }
        org.project_users.insert(id.clone(), members);
        org.audit(
            &actor,
            "project.created",
            Some(&id),
            &id,
            json!({"id": id, "data": {"name": req.name, "title": req.name}}),
        );
        Ok(Json(out))
    })
}

async fn retrieve_project(State(s): State<SandboxState>, Path(id): Path<String>) -> ApiResult {
    s.read(|org| Ok(Json(org.project(&id)?.to_json())))
}

#[derive(Deserialize)]
struct ProjectUpdate {
    name: Option<String>,
    external_key_id: Option<String>,
}

async fn modify_project(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult {
    let req: ProjectUpdate = body(&raw)?;
    s.write(|org| {
        org.project(&id)?;
        if id == org.default_project_id {
            return Err(ApiError::invalid(
                "The default project cannot be modified.",
                None,
            ));
        }
        org.active_project(&id)?;
        if let Some(name) = &req.name
            && name.trim().is_empty()
        {
            return Err(ApiError::invalid(
                "Project name must not be empty.",
                Some("name"),
            ));
        }
        let Some(p) = org.projects.get_mut(&id) else {
            return Err(not_found("project", &id).into());
        };
        if let Some(name) = &req.name {
            p.name = name.clone();
        }
        if req.external_key_id.is_some() {
            p.external_key_id = req.external_key_id.clone();
        }
        let out = p.to_json();
        let title = p.name.clone();
        org.audit(
            &actor,
            "project.updated",
            Some(&id),
            &id,
            json!({"id": id, "changes_requested": {"title": title}}),
        );
        Ok(Json(out))
    })
}

async fn archive_project(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult {
    s.write(|org| {
        org.project(&id)?;
        if id == org.default_project_id {
            return Err(ApiError::invalid(
                "The default project cannot be archived.",
                None,
            ));
        }
        let now = org.now();
        let Some(p) = org.projects.get_mut(&id) else {
            return Err(not_found("project", &id).into());
        };
        if p.archived_at.is_none() {
            p.archived_at = Some(now);
            let out = p.to_json();
            org.audit(
                &actor,
                "project.archived",
                Some(&id),
                &id,
                json!({"id": id}),
            );
            return Ok(Json(out));
        }
        Ok(Json(p.to_json()))
    })
}

async fn list_members(
    State(s): State<SandboxState>,
    Path(pid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let limit = p.limit(20, 1, 100)?;
    s.read(|org| {
        org.active_project(&pid)?;
        let empty = Table::default();
        let members = org.project_users.get(&pid).unwrap_or(&empty);
        let (items, more) = members
            .page(p.get("after"), limit, false, |_| true)
            .map_err(bad_cursor)?;
        Ok(legacy_list(
            items.iter().map(|m| org.project_user_json(m)).collect(),
            more,
        ))
    })
}

#[derive(Deserialize)]
struct MemberIn {
    user_id: Option<String>,
    email: Option<String>,
    role: String,
}

async fn add_member(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path(pid): Path<String>,
    raw: Bytes,
) -> ApiResult {
    let req: MemberIn = body(&raw)?;
    s.write(|org| {
        org.active_project(&pid)?;
        let user_id = match (&req.user_id, &req.email) {
            (Some(u), _) => u.clone(),
            (None, Some(e)) => match org.user_by_email(e) {
                Some(u) => u.id.clone(),
                None => {
                    return Err(ApiError::invalid(
                        format!("No organization member with email {e}. Users must be added to the organization before they can be added to a project."),
                        Some("email"),
                    ));
                }
            },
            (None, None) => {
                return Err(ApiError::invalid("Missing required parameter: 'user_id'.", Some("user_id")));
            }
        };
        org.add_project_user(&pid, &user_id, &req.role)?;
        org.audit(&actor, "user.added", Some(&pid), &user_id, json!({"id": user_id, "data": {"role": req.role}}));
        let m = org.project_users.get(&pid).and_then(|t| t.get(&user_id)).ok_or_else(|| not_found("project user", &user_id))?;
        Ok(Json(org.project_user_json(m)))
    })
}

async fn retrieve_member(
    State(s): State<SandboxState>,
    Path((pid, uid)): Path<(String, String)>,
) -> ApiResult {
    s.read(|org| {
        org.active_project(&pid)?;
        let m = org
            .project_users
            .get(&pid)
            .and_then(|t| t.get(&uid))
            .ok_or_else(|| not_found("project user", &uid))?;
        Ok(Json(org.project_user_json(m)))
    })
}

#[derive(Deserialize)]
struct MemberUpdate {
    role: Option<String>,
}

async fn modify_member(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path((pid, uid)): Path<(String, String)>,
    raw: Bytes,
) -> ApiResult {
    let req: MemberUpdate = body(&raw)?;
    let role = req
        .role
        .ok_or_else(|| ApiError::invalid("Missing required parameter: 'role'.", Some("role")))?;
    s.write(|org| {
        org.set_project_role(&pid, &uid, &role)?;
        org.audit(
            &actor,
            "user.updated",
            Some(&pid),
            &uid,
            json!({"id": uid, "changes_requested": {"role": role}}),
        );
        let m = org
            .project_users
            .get(&pid)
            .and_then(|t| t.get(&uid))
            .ok_or_else(|| not_found("project user", &uid))?;
        Ok(Json(org.project_user_json(m)))
    })
}

async fn remove_member(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path((pid, uid)): Path<(String, String)>,
) -> ApiResult {
    s.write(|org| {
        org.remove_project_user(&pid, &uid)?;
        org.audit(&actor, "user.deleted", Some(&pid), &uid, json!({"id": uid}));
        Ok(Json(
            json!({"object": "organization.project.user.deleted", "id": uid, "deleted": true}),
        ))
    })
}

async fn list_service_accounts(
    State(s): State<SandboxState>,
    Path(pid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let limit = p.limit(20, 1, 100)?;
    s.read(|org| {
        org.active_project(&pid)?;
        let empty = Table::default();
        let t = org.service_accounts.get(&pid).unwrap_or(&empty);
        let (items, more) = t
            .page(p.get("after"), limit, false, |_| true)
            .map_err(bad_cursor)?;
        Ok(legacy_list(
            items.iter().map(|sa| sa.to_json()).collect(),
            more,
        ))
    })
}

#[derive(Deserialize)]
struct ServiceAccountIn {
    name: String,
    create_service_account_only: Option<bool>,
}

fn mint_key(org: &mut super::model::Org, pid: &str, sa_id: &str, name: &str) -> serde_json::Value {
    let now = org.now();
    let kid = format!("key_{}", alnum(&mut org.rng, 16));
    let value = format!("sk-svcacct-{}", alnum(&mut org.rng, 64));
    let redacted = super::model::redact(&value);
    org.api_keys
        .entry(pid.to_owned())
        .or_default()
        .insert(ProjectApiKey {
            id: kid.clone(),
            name: name.to_owned(),
            redacted_value: redacted,
            created_at: now,
            last_used_at: None,
            owner: KeyOwner::ServiceAccount(sa_id.to_owned()),
        });
    json!({"object": "organization.project.service_account.api_key", "value": value,
        "name": name, "created_at": now, "id": kid})
}

async fn create_service_account(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path(pid): Path<String>,
    raw: Bytes,
) -> ApiResult {
    let req: ServiceAccountIn = body(&raw)?;
    if req.name.trim().is_empty() {
        return Err(ApiError::invalid(
            "Service account name must not be empty.",
            Some("name"),
        ));
    }
    s.write(|org| {
        org.active_project(&pid)?;
        let now = org.now();
        let id = org.new_id("svc_acct_");
        let only = req.create_service_account_only.unwrap_or(false);
        let role = if only { "none" } else { "member" };
        org.service_accounts
            .entry(pid.clone())
            .or_default()
            .insert(ServiceAccount {
                id: id.clone(),
                name: req.name.clone(),
                role: role.into(),
                created_at: now,
            });
        // The key value is returned here once and never again.
        let api_key = if only {
            serde_json::Value::Null
        } else {
            mint_key(org, &pid, &id, "Secret Key")
        };
        org.audit(
            &actor,
            "service_account.created",
            Some(&pid),
            &id,
            json!({"id": id, "data": {"role": role}}),
        );
        Ok(Json(
            json!({"object": "organization.project.service_account", "id": id,
            "name": req.name, "role": role, "created_at": now, "api_key": api_key}),
        ))
    })
}

async fn retrieve_service_account(
    State(s): State<SandboxState>,
    Path((pid, sid)): Path<(String, String)>,
) -> ApiResult {
    s.read(|org| {
        org.active_project(&pid)?;
        let sa = org
            .service_accounts
            .get(&pid)
            .and_then(|t| t.get(&sid))
            .ok_or_else(|| not_found("service account", &sid))?;
        Ok(Json(sa.to_json()))
    })
}

#[derive(Deserialize)]
struct ServiceAccountUpdate {
    name: Option<String>,
    role: Option<String>,
}

async fn modify_service_account(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path((pid, sid)): Path<(String, String)>,
    raw: Bytes,
) -> ApiResult {
    let req: ServiceAccountUpdate = body(&raw)?;
    if let Some(r) = &req.role
        && !matches!(r.as_str(), "owner" | "member")
    {
        return Err(ApiError::invalid(
            format!("Invalid role '{r}': expected 'owner' or 'member'."),
            Some("role"),
        ));
    }
    s.write(|org| {
        org.active_project(&pid)?;
        let sa = org
            .service_accounts
            .get_mut(&pid)
            .and_then(|t| t.get_mut(&sid))
            .ok_or_else(|| not_found("service account", &sid))?;
        if let Some(n) = &req.name {
            sa.name = n.clone();
        }
        if let Some(r) = &req.role {
            sa.role = r.clone();
        }
        let out = sa.to_json();
        let role = sa.role.clone();
        org.audit(
            &actor,
            "service_account.updated",
            Some(&pid),
            &sid,
            json!({"id": sid, "changes_requested": {"role": role}}),
        );
        Ok(Json(out))
    })
}

async fn delete_service_account(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path((pid, sid)): Path<(String, String)>,
) -> ApiResult {
    s.write(|org| {
        org.active_project(&pid)?;
        org.service_accounts
            .get_mut(&pid)
            .and_then(|t| t.remove(&sid))
            .ok_or_else(|| not_found("service account", &sid))?;
        if let Some(keys) = org.api_keys.get_mut(&pid) {
            keys.retain(|k| k.owner != KeyOwner::ServiceAccount(sid.clone()));
        }
        org.audit(&actor, "service_account.deleted", Some(&pid), &sid, json!({"id": sid}));
        Ok(Json(json!({"object": "organization.project.service_account.deleted", "id": sid, "deleted": true})))
    })
}

#[derive(Deserialize, Default)]
struct KeyIn {
    name: Option<String>,
}

async fn create_service_account_key(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path((pid, sid)): Path<(String, String)>,
    raw: Bytes,
) -> ApiResult {
    let req: KeyIn = body(&raw)?;
    s.write(|org| {
        org.active_project(&pid)?;
        if !org
            .service_accounts
            .get(&pid)
            .is_some_and(|t| t.contains(&sid))
        {
            return Err(not_found("service account", &sid).into());
        }
        let name = req.name.clone().unwrap_or_else(|| "Secret Key".to_owned());
        let out = mint_key(org, &pid, &sid, &name);
        let kid = out["id"].as_str().unwrap_or_default().to_owned();
        org.audit(
            &actor,
            "api_key.created",
            Some(&pid),
            &kid,
            json!({"id": kid, "data": {"scopes": []}}),
        );
        Ok(Json(out))
    })
}

async fn list_api_keys(
    State(s): State<SandboxState>,
    Path(pid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let limit = p.limit(20, 1, 100)?;
    let access = p.get("owner_project_access").unwrap_or("active").to_owned();
    if !matches!(access.as_str(), "active" | "inactive" | "any") {
        return Err(ApiError::invalid(
            format!(
                "Invalid 'owner_project_access': '{access}'. Expected 'active', 'inactive' or 'any'."
            ),
            Some("owner_project_access"),
        ));
    }
    s.read(|org| {
        org.project(&pid)?;
        let empty = Table::default();
        let t = org.api_keys.get(&pid).unwrap_or(&empty);
        let (items, more) = t
            .page(p.get("after"), limit, false, |k| match access.as_str() {
                "any" => true,
                "active" => org.key_active(&pid, k),
                _ => !org.key_active(&pid, k),
            })
            .map_err(bad_cursor)?;
        Ok(legacy_list(
            items.iter().map(|k| org.api_key_json(&pid, k)).collect(),
            more,
        ))
    })
}

async fn retrieve_api_key(
    State(s): State<SandboxState>,
    Path((pid, kid)): Path<(String, String)>,
) -> ApiResult {
    s.read(|org| {
        org.project(&pid)?;
        let k = org
            .api_keys
            .get(&pid)
            .and_then(|t| t.get(&kid))
            .ok_or_else(|| not_found("API key", &kid))?;
        Ok(Json(org.api_key_json(&pid, k)))
    })
}

async fn delete_api_key(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path((pid, kid)): Path<(String, String)>,
) -> ApiResult {
    s.write(|org| {
        org.project(&pid)?;
        let k = org
            .api_keys
            .get(&pid)
            .and_then(|t| t.get(&kid))
            .ok_or_else(|| not_found("API key", &kid))?;
        if matches!(k.owner, KeyOwner::ServiceAccount(_)) {
            return Err(ApiError::invalid(
                "Service account API keys cannot be deleted directly; delete the service account instead.",
                None,
            ));
        }
        if let Some(t) = org.api_keys.get_mut(&pid) {
            t.remove(&kid);
        }
        org.audit(&actor, "api_key.deleted", Some(&pid), &kid, json!({"id": kid}));
        Ok(Json(json!({"object": "organization.project.api_key.deleted", "id": kid, "deleted": true})))
    })
}

fn project_group_json(org: &super::model::Org, pid: &str, pg: &ProjectGroup) -> serde_json::Value {
    let name = org
        .groups
        .get(&pg.group_id)
        .map(|g| g.name.clone())
        .unwrap_or_default();
    json!({"object": "project.group", "project_id": pid, "group_id": pg.group_id,
        "group_name": name, "group_type": "group", "created_at": pg.created_at})
}

async fn list_project_groups(
    State(s): State<SandboxState>,
    Path(pid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let limit = p.limit(20, 0, 100)?;
    let desc = p.desc(false)?;
    s.read(|org| {
        org.project(&pid)?;
        let empty = Table::default();
        let t = org.project_groups.get(&pid).unwrap_or(&empty);
        let (items, more) = t
            .page(p.get("after"), limit, desc, |_| true)
            .map_err(bad_cursor)?;
        let last = items.last().map(|g| g.group_id.clone());
        Ok(rbac_list(
            items
                .iter()
                .map(|g| project_group_json(org, &pid, g))
                .collect(),
            last,
            more,
        ))
    })
}

#[derive(Deserialize)]
struct ProjectGroupIn {
    group_id: String,
    role: String,
}

async fn add_project_group(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path(pid): Path<String>,
    raw: Bytes,
) -> ApiResult {
    let req: ProjectGroupIn = body(&raw)?;
    s.write(|org| {
        org.active_project(&pid)?;
        org.group(&req.group_id)?;
        let role = org.role(&req.role)?;
        if !role.usable_in_project(&pid) {
            return Err(ApiError::invalid(format!("Role {} is not a role of project {pid}.", req.role), Some("role")));
        }
        if org.project_groups.get(&pid).is_some_and(|t| t.contains(&req.group_id)) {
            return Err(ApiError::invalid(format!("Group {} already has access to project {pid}.", req.group_id), Some("group_id")));
        }
        let now = org.now();
        let pg = ProjectGroup { group_id: req.group_id.clone(), role_id: req.role.clone(), created_at: now };
        let out = project_group_json(org, &pid, &pg);
        org.project_groups.entry(pid.clone()).or_default().insert(pg);
        org.project_group_roles
            .entry((pid.clone(), req.group_id.clone()))
            .or_default()
            .insert(Assignment { role_id: req.role.clone(), created_at: now, created_by: Some(actor_user(&actor)) });
        org.audit(&actor, "role.assignment.created", Some(&pid), &req.group_id, json!({"id": req.role, "principal_id": req.group_id, "principal_type": "group", "resource_id": pid, "resource_type": "api.project"}));
        Ok(Json(out))
    })
}

async fn retrieve_project_group(
    State(s): State<SandboxState>,
    Path((pid, gid)): Path<(String, String)>,
) -> ApiResult {
    s.read(|org| {
        org.project(&pid)?;
        let pg = org
            .project_groups
            .get(&pid)
            .and_then(|t| t.get(&gid))
            .ok_or_else(|| not_found("project group", &gid))?;
        Ok(Json(project_group_json(org, &pid, pg)))
    })
}

async fn remove_project_group(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path((pid, gid)): Path<(String, String)>,
) -> ApiResult {
    s.write(|org| {
        org.active_project(&pid)?;
        let pg = org
            .project_groups
            .get_mut(&pid)
            .and_then(|t| t.remove(&gid))
            .ok_or_else(|| not_found("project group", &gid))?;
        org.project_group_roles.remove(&(pid.clone(), gid.clone()));
        org.audit(&actor, "role.assignment.deleted", Some(&pid), &gid, json!({"id": pg.role_id, "principal_id": gid, "principal_type": "group", "resource_id": pid, "resource_type": "api.project"}));
        Ok(Json(json!({"object": "project.group.deleted", "deleted": true})))
    })
}
