//! RBAC objects: groups and their members, roles, and roles as assigned to users and groups.

use serde::{Deserialize, Serialize};

use super::null_as_default;
use super::users::OrgUser;

open_enum! {
    GroupType {
        Group = "group",
        TenantGroup = "tenant_group",
    }
}

/// A group of users (`GroupResponse`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiGroup)]
pub struct Group {
    /// `group` when present (the schema omits it).
    pub object: Option<String>,
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// Managed by the identity provider: writes may fail or be overwritten.
    #[serde(alias = "scim_managed")]
    pub is_scim_managed: bool,
    /// Absent in update answers.
    pub group_type: Option<GroupType>,
}

/// A member of a group as listed (`GroupUser`) or retrieved (`GroupMemberUser`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiGroupUser)]
pub struct GroupUser {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Picture URL (retrieve only).
    pub picture: Option<String>,
    /// Whether a service account (retrieve only).
    pub is_service_account: Option<bool>,
    /// `user` or `tenant_user` (retrieve only; open string).
    pub user_type: Option<String>,
}

/// Answer to adding a user to a group (`group.user`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupUserAssignment {
    pub object: String,
    pub user_id: String,
    pub group_id: String,
}

/// A role (`role`): predefined or custom, organization or project level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiRole)]
pub struct Role {
    pub object: String,
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// Permissions such as `api.groups.read`.
    #[serde(deserialize_with = "null_as_default")]
    pub permissions: Vec<String>,
    /// `api.organization` or `api.project` (open string).
    pub resource_type: String,
    /// Whether OpenAI defines it.
    pub predefined_role: bool,
}

/// Body to create a role (organization or project).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CreateRole {
    pub role_name: String,
    pub permissions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Body to update a role (organization or project).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpdateRole {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_name: Option<String>,
    /// New permissions (replaces the list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A principal a role assignment is inherited from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiAssignmentSource)]
pub struct AssignmentSource {
    pub principal_id: String,
    pub principal_type: String,
}

/// A role as assigned to a user or group (`AssignedRoleDetails`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
#[schema(as = OpenAiAssignedRole)]
pub struct AssignedRole {
    pub id: String,
    pub name: String,
    #[serde(deserialize_with = "null_as_default")]
    pub permissions: Vec<String>,
    pub resource_type: String,
    pub predefined_role: bool,
    pub description: Option<String>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    pub created_by: Option<String>,
    /// Where the assignment comes from, when inherited.
    pub assignment_sources: Option<Vec<AssignmentSource>>,
}

/// Answer to assigning a role to a user (`user.role`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserRoleAssignment {
    pub object: String,
    pub user: OrgUser,
    pub role: Role,
}

/// Answer to assigning a role to a group (`group.role`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupRoleAssignment {
    pub object: String,
    pub group: Group,
    pub role: Role,
}
