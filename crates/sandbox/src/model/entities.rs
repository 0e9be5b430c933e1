//! The organization's entities and the JSON OpenAI answers with for each (as in
//! `openapi.admin.yaml`): plain records, the rules that span them live in `model`.

use serde_json::{Value, json};

use super::PROJECT_RESOURCE;
use crate::table::Keyed;

#[derive(Debug, Clone)]
pub struct User {
    /// `user-...`
    pub id: String,
    pub name: String,
    /// Email, unique in the organization (compared case-insensitively).
    pub email: String,
    /// Legacy org role: `owner` or `reader`.
    pub role: String,
    pub added_at: i64,
}

impl Keyed for User {
    fn key(&self) -> &str {
        &self.id
    }
}

impl User {
    pub fn to_json(&self) -> Value {
        json!({"object": "organization.user", "id": self.id, "name": self.name,
            "email": self.email, "role": self.role, "added_at": self.added_at,
            "is_default": false, "is_service_account": false, "is_scim_managed": false})
    }
}

/// A project invite carried by an org invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteProject {
    pub id: String,
    /// `member` or `owner`.
    pub role: String,
}

#[derive(Debug, Clone)]
pub struct Invite {
    /// `invite-...`
    pub id: String,
    pub email: String,
    /// `owner` or `reader`.
    pub role: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Set once accepted.
    pub accepted_at: Option<i64>,
    /// Memberships granted on acceptance.
    pub projects: Vec<InviteProject>,
}

impl Keyed for Invite {
    fn key(&self) -> &str {
        &self.id
    }
}

impl Invite {
    /// `pending`, `accepted` or `expired` at time `now`.
    pub fn status(&self, now: i64) -> &'static str {
        if self.accepted_at.is_some() {
            "accepted"
        } else if self.expires_at <= now {
            "expired"
        } else {
            "pending"
        }
    }

    /// The `organization.invite` object.
    pub fn to_json(&self, now: i64) -> Value {
        let projects: Vec<Value> = self
            .projects
            .iter()
            .map(|p| json!({"id": p.id, "role": p.role}))
            .collect();
        json!({"object": "organization.invite", "id": self.id, "email": self.email,
            "role": self.role, "status": self.status(now), "created_at": self.created_at,
            "expires_at": self.expires_at, "accepted_at": self.accepted_at, "projects": projects})
    }
}

#[derive(Debug, Clone)]
pub struct Project {
    /// `proj_...`
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// Set when archived.
    pub archived_at: Option<i64>,
    /// Data residency, e.g. `GLOBAL`.
    pub residency: String,
    pub external_key_id: Option<String>,
}

impl Keyed for Project {
    fn key(&self) -> &str {
        &self.id
    }
}

impl Project {
    pub fn archived(&self) -> bool {
        self.archived_at.is_some()
    }

    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "object": "organization.project", "name": self.name,
            "created_at": self.created_at, "archived_at": self.archived_at,
            "status": if self.archived() { "archived" } else { "active" },
            "external_key_id": self.external_key_id, "residency": self.residency})
    }
}

/// A user's membership of a project (keyed by user id).
#[derive(Debug, Clone)]
pub struct Membership {
    pub user_id: String,
    /// `owner` or `member`.
    pub role: String,
    pub added_at: i64,
}

impl Keyed for Membership {
    fn key(&self) -> &str {
        &self.user_id
    }
}

#[derive(Debug, Clone)]
pub struct ServiceAccount {
    /// `svc_acct_...`
    pub id: String,
    pub name: String,
    /// `owner`, `member` or `none`.
    pub role: String,
    pub created_at: i64,
}

impl Keyed for ServiceAccount {
    fn key(&self) -> &str {
        &self.id
    }
}

impl ServiceAccount {
    pub fn to_json(&self) -> Value {
        json!({"object": "organization.project.service_account", "id": self.id,
            "name": self.name, "role": self.role, "created_at": self.created_at})
    }
}

/// Who owns a project API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOwner {
    /// A user (by id).
    User(String),
    /// A service account of the same project (by id).
    ServiceAccount(String),
}

/// A project API key (only its redacted value is kept).
#[derive(Debug, Clone)]
pub struct ProjectApiKey {
    /// `key_...`
    pub id: String,
    pub name: String,
    /// `sk-proj-...abcd` style.
    pub redacted_value: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub owner: KeyOwner,
}

impl Keyed for ProjectApiKey {
    fn key(&self) -> &str {
        &self.id
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    /// `group_...`
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// Managed by SCIM.
    pub is_scim_managed: bool,
}

impl Keyed for Group {
    fn key(&self) -> &str {
        &self.id
    }
}

impl Group {
    /// The `GroupResponse` object (list and retrieve).
    pub fn to_json(&self) -> Value {
        json!({"object": "group", "id": self.id, "name": self.name, "created_at": self.created_at,
            "is_scim_managed": self.is_scim_managed, "group_type": "group"})
    }

    /// The `Group` object nested in role assignments.
    pub fn to_assignment_json(&self) -> Value {
        json!({"object": "group", "id": self.id, "name": self.name,
            "created_at": self.created_at, "scim_managed": self.is_scim_managed})
    }
}

/// A group member (keyed by user id).
#[derive(Debug, Clone)]
pub struct GroupMember {
    pub user_id: String,
    pub added_at: i64,
}

impl Keyed for GroupMember {
    fn key(&self) -> &str {
        &self.user_id
    }
}

/// A role, predefined or custom, at organization or project level.
#[derive(Debug, Clone)]
pub struct Role {
    /// `role_...`
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// Permissions, e.g. `api.groups.read`.
    pub permissions: Vec<String>,
    /// `api.organization` or `api.project`.
    pub resource_type: String,
    /// Predefined by OpenAI (cannot be changed).
    pub predefined: bool,
    /// For a custom project role, its project; predefined project roles apply to all.
    pub project_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Keyed for Role {
    fn key(&self) -> &str {
        &self.id
    }
}

impl Role {
    pub fn to_json(&self) -> Value {
        json!({"object": "role", "id": self.id, "name": self.name,
            "description": self.description, "permissions": self.permissions,
            "resource_type": self.resource_type, "predefined_role": self.predefined})
    }

    /// Whether this role may be assigned inside `project_id`.
    pub fn usable_in_project(&self, project_id: &str) -> bool {
        self.resource_type == PROJECT_RESOURCE
            && self.project_id.as_deref().is_none_or(|p| p == project_id)
    }
}

/// A role given to a principal (keyed by role id).
#[derive(Debug, Clone)]
pub struct Assignment {
    pub role_id: String,
    pub created_at: i64,
    /// Who assigned it (user id), if known.
    pub created_by: Option<String>,
}

impl Keyed for Assignment {
    fn key(&self) -> &str {
        &self.role_id
    }
}

impl Assignment {
    /// The `AssignedRoleDetails` object.
    pub fn to_json(&self, role: &Role) -> Value {
        json!({"id": role.id, "name": role.name, "permissions": role.permissions,
            "resource_type": role.resource_type, "predefined_role": role.predefined,
            "description": role.description, "created_at": self.created_at,
            "updated_at": self.created_at, "created_by": self.created_by,
            "created_by_user_obj": null, "metadata": null, "assignment_sources": null})
    }
}

/// A group's access to a project.
#[derive(Debug, Clone)]
pub struct ProjectGroup {
    pub group_id: String,
    /// Project role id given to the group.
    pub role_id: String,
    pub created_at: i64,
}

impl Keyed for ProjectGroup {
    fn key(&self) -> &str {
        &self.group_id
    }
}

/// An admin API key; its plaintext is kept so the sandbox can authenticate it.
#[derive(Clone)]
pub struct AdminKey {
    /// `key_...`
    pub id: String,
    pub name: String,
    pub value: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    /// Unix seconds, or never.
    pub expires_at: Option<i64>,
    pub owner_user_id: String,
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("value", &"[redacted]")
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl Keyed for AdminKey {
    fn key(&self) -> &str {
        &self.id
    }
}

/// `sk-admin...abcd`: what OpenAI shows of a key.
pub fn redact(value: &str) -> String {
    let tail: String = value
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let head: String = value.chars().take(8).collect();
    format!("{head}...{tail}")
}

#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// `audit_log-...`
    pub id: String,
    /// Event type, e.g. `user.added`.
    pub kind: String,
    pub effective_at: i64,
    /// Project id and name.
    pub project: Option<(String, String)>,
    /// Actor user id, email, and key id when made with a key.
    pub actor_user_id: String,
    pub actor_email: String,
    pub actor_key_id: Option<String>,
    pub actor: Value,
    /// Id of the resource the event is about.
    pub resource_id: String,
    /// The details object (stored under a property named as `kind`).
    pub details: Value,
}

impl Keyed for AuditEvent {
    fn key(&self) -> &str {
        &self.id
    }
}

impl AuditEvent {
    /// The `AuditLog` object.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"id": self.id, "type": self.kind, "effective_at": self.effective_at,
            "actor": self.actor});
        if let Some((id, name)) = &self.project {
            v["project"] = json!({"id": id, "name": name});
        }
        v[self.kind.as_str()] = self.details.clone();
        v
    }
}
