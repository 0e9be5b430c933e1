//! RBAC handlers: groups, group members, roles and role assignments at organization level
//! (`/organization/...`) and project level (`/projects/{p}/...`, no `/organization` prefix).
//!
//! Depends only on the sandbox's model and HTTP plumbing.

use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::SandboxState;
use super::admin::actor_user;
use super::http::{ApiError, ApiResult, Params, bad_cursor, body, rbac_list};
use super::model::{
    Actor, Assignment, Group, GroupMember, ORG_RESOURCE, Org, PROJECT_RESOURCE, Role, not_found,
};
use super::table::Table;

pub fn routes() -> Router<SandboxState> {
    Router::new()
        .route("/organization/groups", get(list_groups).post(create_group))
        .route(
            "/organization/groups/{group_id}",
            get(retrieve_group).post(update_group).delete(delete_group),
        )
        .route(
            "/organization/groups/{group_id}/users",
            get(list_group_users).post(add_group_user),
        )
        .route(
            "/organization/groups/{group_id}/users/{user_id}",
            get(retrieve_group_user).delete(remove_group_user),
        )
        .route(
            "/organization/roles",
            get(list_org_roles).post(create_org_role),
        )
        .route(
            "/organization/roles/{role_id}",
            get(retrieve_org_role)
                .post(update_org_role)
                .delete(delete_org_role),
        )
        .route(
            "/projects/{project_id}/roles",
            get(list_project_roles).post(create_project_role),
        )
        .route(
            "/projects/{project_id}/roles/{role_id}",
            get(retrieve_project_role)
                .post(update_project_role)
                .delete(delete_project_role),
        )
        .route(
            "/organization/users/{user_id}/roles",
            get(list_user_roles).post(assign_user_role),
        )
        .route(
            "/organization/users/{user_id}/roles/{role_id}",
            get(retrieve_user_role).delete(unassign_user_role),
        )
        .route(
            "/organization/groups/{group_id}/roles",
            get(list_group_roles).post(assign_group_role),
        )
        .route(
            "/organization/groups/{group_id}/roles/{role_id}",
            get(retrieve_group_role).delete(unassign_group_role),
        )
        .route(
            "/projects/{project_id}/users/{user_id}/roles",
            get(list_project_user_roles).post(assign_project_user_role),
        )
        .route(
            "/projects/{project_id}/users/{user_id}/roles/{role_id}",
            get(retrieve_project_user_role).delete(unassign_project_user_role),
        )
        .route(
            "/projects/{project_id}/groups/{group_id}/roles",
            get(list_project_group_roles).post(assign_project_group_role),
        )
        .route(
            "/projects/{project_id}/groups/{group_id}/roles/{role_id}",
            get(retrieve_project_group_role).delete(unassign_project_group_role),
        )
}

async fn list_groups(State(s): State<SandboxState>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let limit = p.limit(100, 0, 1000)?;
    let desc = p.desc(false)?;
    s.read(|org| {
        let (items, more) = org
            .groups
            .page(p.get("after"), limit, desc, |_| true)
            .map_err(bad_cursor)?;
        let last = items.last().map(|g| g.id.clone());
        Ok(rbac_list(
            items.iter().map(|g| g.to_json()).collect(),
            last,
            more,
        ))
    })
}

#[derive(Deserialize)]
struct GroupIn {
    name: String,
}

async fn create_group(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    raw: Bytes,
) -> ApiResult {
    let req: GroupIn = body(&raw)?;
    if req.name.trim().is_empty() {
        return Err(ApiError::invalid(
            "Group name must not be empty.",
            Some("name"),
        ));
    }
    s.write(|org| {
        let now = org.now();
        let id = org.new_id("group_");
        let g = Group {
            id: id.clone(),
            name: req.name.clone(),
            created_at: now,
            is_scim_managed: false,
        };
        let out = g.to_json();
        org.groups.insert(g);
        org.audit(
            &actor,
            "group.created",
            None,
            &id,
            json!({"id": id, "data": {"group_name": req.name}}),
        );
        Ok(Json(out))
    })
}

async fn retrieve_group(State(s): State<SandboxState>, Path(gid): Path<String>) -> ApiResult {
    s.read(|org| Ok(Json(org.group(&gid)?.to_json())))
}

fn writable_group<'a>(org: &'a Org, gid: &str) -> Result<&'a Group, ApiError> {
    let g = org.group(gid)?;
    if g.is_scim_managed {
        return Err(ApiError::invalid(
            format!("Group {gid} is managed by SCIM and cannot be changed through the API."),
            None,
        ));
    }
    Ok(g)
}

async fn update_group(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path(gid): Path<String>,
    raw: Bytes,
) -> ApiResult {
    let req: GroupIn = body(&raw)?;
    s.write(|org| {
        writable_group(org, &gid)?;
        let g = org.groups.get_mut(&gid).ok_or_else(|| not_found("group", &gid))?;
        g.name = req.name.clone();
        let out = json!({"id": g.id, "name": g.name, "created_at": g.created_at, "is_scim_managed": g.is_scim_managed});
        org.audit(&actor, "group.updated", None, &gid, json!({"id": gid, "changes_requested": {"group_name": req.name}}));
        Ok(Json(out))
    })
}

async fn delete_group(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path(gid): Path<String>,
) -> ApiResult {
    s.write(|org| {
        writable_group(org, &gid)?;
        org.remove_group(&gid)?;
        org.audit(&actor, "group.deleted", None, &gid, json!({"id": gid}));
        Ok(Json(
            json!({"object": "group.deleted", "id": gid, "deleted": true}),
        ))
    })
}

async fn list_group_users(
    State(s): State<SandboxState>,
    Path(gid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let limit = p.limit(100, 0, 1000)?;
    let desc = p.desc(true)?;
    s.read(|org| {
        org.group(&gid)?;
        let empty = Table::default();
        let t = org.group_users.get(&gid).unwrap_or(&empty);
        let (items, more) = t
            .page(p.get("after"), limit, desc, |_| true)
            .map_err(bad_cursor)?;
        let last = items.last().map(|m| m.user_id.clone());
        let data = items
            .iter()
            .map(|m| {
                let u = org.users.get(&m.user_id);
                json!({"id": m.user_id, "name": u.map_or("", |u| u.name.as_str()),
                    "email": u.map(|u| u.email.as_str())})
            })
            .collect();
        Ok(rbac_list(data, last, more))
    })
}

#[derive(Deserialize)]
struct GroupUserIn {
    user_id: String,
}

async fn add_group_user(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path(gid): Path<String>,
    raw: Bytes,
) -> ApiResult {
    let req: GroupUserIn = body(&raw)?;
    s.write(|org| {
        writable_group(org, &gid)?;
        if !org.users.contains(&req.user_id) {
            return Err(ApiError::invalid(
                format!("User {} is not a member of the organization.", req.user_id),
                Some("user_id"),
            ));
        }
        let now = org.now();
        let t = org.group_users.entry(gid.clone()).or_default();
        if t.contains(&req.user_id) {
            return Err(ApiError::invalid(
                format!("User {} is already in group {gid}.", req.user_id),
                Some("user_id"),
            ));
        }
        t.insert(GroupMember {
            user_id: req.user_id.clone(),
            added_at: now,
        });
        org.audit(
            &actor,
            "group.updated",
            None,
            &gid,
            json!({"id": gid, "changes_requested": {}}),
        );
        Ok(Json(
            json!({"object": "group.user", "user_id": req.user_id, "group_id": gid}),
        ))
    })
}

async fn retrieve_group_user(
    State(s): State<SandboxState>,
    Path((gid, uid)): Path<(String, String)>,
) -> ApiResult {
    s.read(|org| {
        org.group(&gid)?;
        if !org.group_users.get(&gid).is_some_and(|t| t.contains(&uid)) {
            return Err(not_found("group user", &uid).into());
        }
        let u = org.user(&uid)?;
        Ok(Json(
            json!({"id": u.id, "name": u.name, "email": u.email, "picture": null,
            "is_service_account": false, "user_type": "user"}),
        ))
    })
}

async fn remove_group_user(
    State(s): State<SandboxState>,
    Extension(actor): Extension<Actor>,
    Path((gid, uid)): Path<(String, String)>,
) -> ApiResult {
    s.write(|org| {
        writable_group(org, &gid)?;
        org.group_users
            .get_mut(&gid)
            .and_then(|t| t.remove(&uid))
            .ok_or_else(|| not_found("group user", &uid))?;
        org.audit(
            &actor,
            "group.updated",
            None,
            &gid,
            json!({"id": gid, "changes_requested": {}}),
        );
        Ok(Json(
            json!({"object": "group.user.deleted", "deleted": true}),
        ))
    })
}

fn list_roles(s: &SandboxState, q: Option<&str>, project: Option<&str>) -> ApiResult {
    let p = Params::parse(q);
    let limit = p.limit(1000, 0, 1000)?;
    let desc = p.desc(false)?;
    s.read(|org| {
        if let Some(pid) = project {
            org.project(pid)?;
        }
        let (items, more) = org
            .roles
            .page(p.get("after"), limit, desc, |r| match project {
                None => r.resource_type == ORG_RESOURCE,
                Some(pid) => r.usable_in_project(pid),
            })
            .map_err(bad_cursor)?;
        let last = items.last().map(|r| r.id.clone());
        Ok(rbac_list(
            items.iter().map(|r| r.to_json()).collect(),
            last,
            more,
        ))
    })
}

#[derive(Deserialize)]
struct RoleIn {
    role_name: String,
    permissions: Vec<String>,
    description: Option<String>,
}

fn create_role(s: &SandboxState, actor: &Actor, raw: &[u8], project: Option<&str>) -> ApiResult {
    let req: RoleIn = body(raw)?;
    if req.role_name.trim().is_empty() {
        return Err(ApiError::invalid(
            "Role name must not be empty.",
            Some("role_name"),
        ));
    }
    s.write(|org| {
        if let Some(pid) = project {
            org.active_project(pid)?;
        }
        let now = org.now();
        let id = org.new_id("role_");
        let resource_type = if project.is_some() { PROJECT_RESOURCE } else { ORG_RESOURCE };
        let role = Role {
            id: id.clone(),
            name: req.role_name.clone(),
            description: req.description.clone(),
            permissions: req.permissions.clone(),
            resource_type: resource_type.into(),
            predefined: false,
            project_id: project.map(str::to_owned),
            created_at: now,
            updated_at: now,
        };
        let out = role.to_json();
        org.roles.insert(role);
        let resource_id = project.map_or_else(|| org.id.clone(), str::to_owned);
        org.audit(actor, "role.created", project, &id, json!({"id": id, "role_name": req.role_name, "permissions": req.permissions, "resource_type": resource_type, "resource_id": resource_id}));
        Ok(Json(out))
    })
}

fn scoped_role<'a>(
    org: &'a Org,
    role_id: &str,
    project: Option<&str>,
) -> Result<&'a Role, ApiError> {
    let r = org.role(role_id)?;
    let ok = match project {
        None => r.resource_type == ORG_RESOURCE,
        Some(pid) => r.usable_in_project(pid),
    };
    if ok {
        Ok(r)
    } else {
        Err(not_found("role", role_id).into())
    }
}

#[derive(Deserialize)]
struct RoleUpdate {
    permissions: Option<Vec<String>>,
    description: Option<String>,
    role_name: Option<String>,
}

fn update_role(
    s: &SandboxState,
    actor: &Actor,
    role_id: &str,
    raw: &[u8],
    project: Option<&str>,
) -> ApiResult {
    let req: RoleUpdate = body(raw)?;
    s.write(|org| {
        if let Some(pid) = project {
            org.project(pid)?;
        }
        if scoped_role(org, role_id, project)?.predefined {
            return Err(ApiError::invalid(
                "Predefined roles cannot be changed.",
                None,
            ));
        }
        let now = org.now();
        let r = org
            .roles
            .get_mut(role_id)
            .ok_or_else(|| not_found("role", role_id))?;
        if let Some(n) = &req.role_name {
            r.name = n.clone();
        }
        if let Some(d) = &req.description {
            r.description = Some(d.clone());
        }
        if let Some(p) = &req.permissions {
            r.permissions = p.clone();
        }
        r.updated_at = now;
        let out = r.to_json();
        org.audit(
            actor,
            "role.updated",
            project,
            role_id,
            json!({"id": role_id, "changes_requested": {"role_name": req.role_name}}),
        );
        Ok(Json(out))
    })
}

fn delete_role(s: &SandboxState, actor: &Actor, role_id: &str, project: Option<&str>) -> ApiResult {
    s.write(|org| {
        if let Some(pid) = project {
            org.project(pid)?;
        }
        scoped_role(org, role_id, project)?;
        org.remove_role(role_id)?;
        org.audit(
            actor,
            "role.deleted",
            project,
            role_id,
            json!({"id": role_id}),
        );
        Ok(Json(
            json!({"object": "role.deleted", "id": role_id, "deleted": true}),
        ))
    })
}

async fn list_org_roles(State(s): State<SandboxState>, RawQuery(q): RawQuery) -> ApiResult {
    list_roles(&s, q.as_deref(), None)
}
async fn create_org_role(
    State(s): State<SandboxState>,
    Extension(a): Extension<Actor>,
    raw: Bytes,
) -> ApiResult {
    create_role(&s, &a, &raw, None)
}
async fn retrieve_org_role(State(s): State<SandboxState>, Path(rid): Path<String>) -> ApiResult {
    s.read(|org| Ok(Json(scoped_role(org, &rid, None)?.to_json())))
}
async fn update_org_role(
    State(s): State<SandboxState>,
    Extension(a): Extension<Actor>,
    Path(rid): Path<String>,
    raw: Bytes,
) -> ApiResult {
    update_role(&s, &a, &rid, &raw, None)
}
async fn delete_org_role(
    State(s): State<SandboxState>,
    Extension(a): Extension<Actor>,
    Path(rid): Path<String>,
) -> ApiResult {
    delete_role(&s, &a, &rid, None)
}
async fn list_project_roles(
    State(s): State<SandboxState>,
    Path(pid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    list_roles(&s, q.as_deref(), Some(&pid))
}
async fn create_project_role(
    State(s): State<SandboxState>,
    Extension(a): Extension<Actor>,
    Path(pid): Path<String>,
    raw: Bytes,
) -> ApiResult {
    create_role(&s, &a, &raw, Some(&pid))
}
async fn retrieve_project_role(
    State(s): State<SandboxState>,
    Path((pid, rid)): Path<(String, String)>,
) -> ApiResult {
    s.read(|org| {
        org.project(&pid)?;
        Ok(Json(scoped_role(org, &rid, Some(&pid))?.to_json()))
    })
}
async fn update_project_role(
    State(s): State<SandboxState>,
    Extension(a): Extension<Actor>,
    Path((pid, rid)): Path<(String, String)>,
    raw: Bytes,
) -> ApiResult {
    update_role(&s, &a, &rid, &raw, Some(&pid))
}
async fn delete_project_role(
    State(s): State<SandboxState>,
    Extension(a): Extension<Actor>,
    Path((pid, rid)): Path<(String, String)>,
) -> ApiResult {
    delete_role(&s, &a, &rid, Some(&pid))
}

/// Who holds an assignment.
enum Principal {
    User(String),
    Group(String),
    ProjectUser(String, String),
    ProjectGroup(String, String),
}

impl Principal {
    fn project(&self) -> Option<&str> {
        match self {
            Principal::ProjectUser(p, _) | Principal::ProjectGroup(p, _) => Some(p),
            _ => None,
        }
    }

    fn check(&self, org: &Org) -> Result<(), ApiError> {
        match self {
            Principal::User(u) => org.user(u).map(|_| ()),
            Principal::Group(g) => org.group(g).map(|_| ()),
            Principal::ProjectUser(p, u) => {
                org.active_project(p).and_then(|_| org.user(u)).map(|_| ())
            }
            Principal::ProjectGroup(p, g) => {
                org.active_project(p).and_then(|_| org.group(g)).map(|_| ())
            }
        }
        .map_err(ApiError::from)
    }

    fn table<'a>(&self, org: &'a Org) -> Option<&'a Table<Assignment>> {
        match self {
            Principal::User(u) => org.user_roles.get(u),
            Principal::Group(g) => org.group_roles.get(g),
            Principal::ProjectUser(p, u) => org.project_user_roles.get(&(p.clone(), u.clone())),
            Principal::ProjectGroup(p, g) => org.project_group_roles.get(&(p.clone(), g.clone())),
        }
    }

    fn table_mut<'a>(&self, org: &'a mut Org) -> &'a mut Table<Assignment> {
        match self {
            Principal::User(u) => org.user_roles.entry(u.clone()).or_default(),
            Principal::Group(g) => org.group_roles.entry(g.clone()).or_default(),
            Principal::ProjectUser(p, u) => org
                .project_user_roles
                .entry((p.clone(), u.clone()))
                .or_default(),
            Principal::ProjectGroup(p, g) => org
                .project_group_roles
                .entry((p.clone(), g.clone()))
                .or_default(),
        }
    }

    fn is_user(&self) -> bool {
        matches!(self, Principal::User(_) | Principal::ProjectUser(..))
    }

    fn id(&self) -> &str {
        match self {
            Principal::User(i)
            | Principal::Group(i)
            | Principal::ProjectUser(_, i)
            | Principal::ProjectGroup(_, i) => i,
        }
    }
}

fn list_assignments(s: &SandboxState, who: Principal, q: Option<&str>) -> ApiResult {
    let p = Params::parse(q);
    let limit = p.limit(1000, 0, 1000)?;
    let desc = p.desc(false)?;
    s.read(|org| {
        who.check(org)?;
        let empty = Table::default();
        let t = who.table(org).unwrap_or(&empty);
        let (items, more) = t
            .page(p.get("after"), limit, desc, |a| {
                org.roles.contains(&a.role_id)
            })
            .map_err(bad_cursor)?;
        let last = items.last().map(|a| a.role_id.clone());
        let data: Vec<Value> = items
            .iter()
            .filter_map(|a| org.roles.get(&a.role_id).map(|r| a.to_json(r)))
            .collect();
        Ok(rbac_list(data, last, more))
    })
}

#[derive(Deserialize)]
struct AssignIn {
    role_id: String,
}

fn assign(s: &SandboxState, actor: &Actor, who: Principal, raw: &[u8]) -> ApiResult {
    let req: AssignIn = body(raw)?;
    s.write(|org| {
        who.check(org)?;
        let role = org.role(&req.role_id)?;
        let fits = match who.project() {
            None => role.resource_type == ORG_RESOURCE,
            Some(pid) => role.usable_in_project(pid),
        };
        if !fits {
            return Err(ApiError::invalid(format!("Role {} cannot be assigned at this level.", req.role_id), Some("role_id")));
        }
        let role_json = role.to_json();
        let now = org.now();
        let by = actor_user(actor);
        who.table_mut(org).insert(Assignment { role_id: req.role_id.clone(), created_at: now, created_by: Some(by) });
        let (ptype, resource_type) = (if who.is_user() { "user" } else { "group" }, if who.project().is_some() { PROJECT_RESOURCE } else { ORG_RESOURCE });
        let resource_id = who.project().map_or_else(|| org.id.clone(), str::to_owned);
        org.audit(actor, "role.assignment.created", who.project(), who.id(), json!({"id": req.role_id, "principal_id": who.id(), "principal_type": ptype, "resource_id": resource_id, "resource_type": resource_type}));
        let out = match &who {
            Principal::User(u) | Principal::ProjectUser(_, u) => json!({"object": "user.role", "user": org.user(u)?.to_json(), "role": role_json}),
            Principal::Group(g) | Principal::ProjectGroup(_, g) => json!({"object": "group.role", "group": org.group(g)?.to_assignment_json(), "role": role_json}),
        };
        Ok(Json(out))
    })
}

fn retrieve_assignment(s: &SandboxState, who: Principal, role_id: &str) -> ApiResult {
    s.read(|org| {
        who.check(org)?;
        let a = who
            .table(org)
            .and_then(|t| t.get(role_id))
            .ok_or_else(|| not_found("role assignment", role_id))?;
        let r = org.role(role_id)?;
        Ok(Json(a.to_json(r)))
    })
}

fn unassign(s: &SandboxState, actor: &Actor, who: Principal, role_id: &str) -> ApiResult {
    s.write(|org| {
        who.check(org)?;
        who.table_mut(org).remove(role_id).ok_or_else(|| not_found("role assignment", role_id))?;
        let (ptype, resource_type) = (if who.is_user() { "user" } else { "group" }, if who.project().is_some() { PROJECT_RESOURCE } else { ORG_RESOURCE });
        let resource_id = who.project().map_or_else(|| org.id.clone(), str::to_owned);
        org.audit(actor, "role.assignment.deleted", who.project(), who.id(), json!({"id": role_id, "principal_id": who.id(), "principal_type": ptype, "resource_id": resource_id, "resource_type": resource_type}));
        let object = if who.is_user() { "user.role.deleted" } else { "group.role.deleted" };
        Ok(Json(json!({"object": object, "deleted": true})))
    })
}

async fn list_user_roles(
    State(s): State<SandboxState>,
    Path(u): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    list_assignments(&s, Principal::User(u), q.as_deref())
}
async fn assign_user_role(
    State(s): State<SandboxState>,
    Extension(a): Extension<Actor>,
    Path(u): Path<String>,
    raw: Bytes,
) -> ApiResult {
    assign(&s, &a, Principal::User(u), &raw)
}
async fn retrieve_user_role(
    State(s): State<SandboxState>,
    Path((u, r)): Path<(String, String)>,
) -> ApiResult {
    retrieve_assignment(&s, Principal::User(u), &r)
}
async fn unassign_user_role(
    State(s): State<SandboxState>,
    Extension(a): Extension<Actor>,
    Path((u, r)): Path<(String, String)>,
) -> ApiResult {
    unassign(&s, &a, Principal::User(u), &r)
}
async fn list_group_roles(
    State(s): State<SandboxState>,
    Path(g): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    list_assignments(&s, Principal::Group(g), q.as_deref())
}
async fn assign_group_role(
    State(s): State<SandboxState>,
    Extension(a): Extension<Actor>,
    Path(g): Path<String>,
    raw: Bytes,
) -> ApiResult {
    assign(&s, &a, Principal::Group(g), &raw)
}
async fn retrieve_group_role(
    State(s): State<SandboxState>,
    Path((g, r)): Path<(String, String)>,
) -> ApiResult {
    retrieve_assignment(&s, Principal::Group(g), &r)
}
async fn unassign_group_role(
    State(s): State<SandboxState>,
    Extension(a): Extension<Actor>,
    Path((g, r)): Path<(String, String)>,
) -> ApiResult {
    unassign(&s, &a, Principal::Group(g), &r)
}
async fn list_project_user_roles(
    State(s): State<SandboxState>,
    Path((p, u)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    list_assignments(&s, Principal::ProjectUser(p, u), q.as_deref())
}
async fn assign_project_user_role(
    State(s): State<SandboxState>,
    Extension(a): Extension<Actor>,
    Path((p, u)): Path<(String, String)>,
    raw: Bytes,
) -> ApiResult {
    assign(&s, &a, Principal::ProjectUser(p, u), &raw)
}
async fn retrieve_project_user_role(
    State(s): State<SandboxState>,
    Path((p, u, r)): Path<(String, String, String)>,
) -> ApiResult {
    retrieve_assignment(&s, Principal::ProjectUser(p, u), &r)
}
async fn unassign_project_user_role(
    State(s): State<SandboxState>,
    Extension(a): Extension<Actor>,
    Path((p, u, r)): Path<(String, String, String)>,
) -> ApiResult {
    unassign(&s, &a, Principal::ProjectUser(p, u), &r)
}
async fn list_project_group_roles(
    State(s): State<SandboxState>,
    Path((p, g)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    list_assignments(&s, Principal::ProjectGroup(p, g), q.as_deref())
}
async fn assign_project_group_role(
    State(s): State<SandboxState>,
    Extension(a): Extension<Actor>,
    Path((p, g)): Path<(String, String)>,
    raw: Bytes,
) -> ApiResult {
    assign(&s, &a, Principal::ProjectGroup(p, g), &raw)
}
async fn retrieve_project_group_role(
    State(s): State<SandboxState>,
    Path((p, g, r)): Path<(String, String, String)>,
) -> ApiResult {
    retrieve_assignment(&s, Principal::ProjectGroup(p, g), &r)
}
async fn unassign_project_group_role(
    State(s): State<SandboxState>,
    Extension(a): Extension<Actor>,
    Path((p, g, r)): Path<(String, String, String)>,
) -> ApiResult {
    unassign(&s, &a, Principal::ProjectGroup(p, g), &r)
}
