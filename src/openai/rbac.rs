//! RBAC operations: groups and their users, roles (organization and project level) and role
//! assignments of users and groups at both levels. Project RBAC lives under
//! `/projects/{p}/...` with no `/organization` prefix. RBAC lists page with `after=<next>`.
//!
//! Thin typed wrappers over `Client`'s HTTP core; nothing of our store.

use futures::Stream;
use serde::{Deserialize, Serialize};

use super::budget::EndpointFamily;
use super::client::{Client, Idempotency, Reply};
use super::error::OpenAiError;
use super::models::{
    AssignedRole, CreateRole, Deleted, Group, GroupUser, GroupUserAssignment, OrgUser, Role,
    UpdateRole,
};
use super::pagination::RbacPage;
use super::params::RbacListParams;

const RBAC_MAX_LIMIT: u32 = 1000;

/// Where roles are defined: the organization or one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleScope {
    Organization,
    Project(String),
}

impl RoleScope {
    fn path(&self) -> Vec<&str> {
        match self {
            RoleScope::Organization => vec!["organization", "roles"],
            RoleScope::Project(p) => vec!["projects", p, "roles"],
        }
    }
}

/// Who holds role assignments, and at which level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    OrgUser(String),
    OrgGroup(String),
    ProjectUser {
        project_id: String,
        user_id: String,
    },
    ProjectGroup {
        project_id: String,
        group_id: String,
    },
}

impl Assignee {
    fn path(&self) -> Vec<&str> {
        match self {
            Assignee::OrgUser(u) => vec!["organization", "users", u, "roles"],
            Assignee::OrgGroup(g) => vec!["organization", "groups", g, "roles"],
            Assignee::ProjectUser {
                project_id,
                user_id,
            } => vec!["projects", project_id, "users", user_id, "roles"],
            Assignee::ProjectGroup {
                project_id,
                group_id,
            } => vec!["projects", project_id, "groups", group_id, "roles"],
        }
    }
}

/// Answer to assigning a role: `user.role` (with `user`) or `group.role` (with `group`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoleAssignment {
    pub object: String,
    pub user: Option<OrgUser>,
    pub group: Option<Group>,
    pub role: Role,
}

#[derive(Serialize)]
struct Name<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct UserId<'a> {
    user_id: &'a str,
}

#[derive(Serialize)]
struct RoleId<'a> {
    role_id: &'a str,
}

fn with<'a>(mut base: Vec<&'a str>, more: &[&'a str]) -> Vec<&'a str> {
    base.extend_from_slice(more);
    base
}

impl Client {
    pub async fn list_groups(
        &self,
        p: &RbacListParams,
    ) -> Result<Reply<RbacPage<Group>>, OpenAiError> {
        self.get(
            EndpointFamily::Groups,
            &["organization", "groups"],
            p.query(),
        )
        .await
    }

    pub fn groups(
        &self,
        p: &RbacListParams,
    ) -> impl Stream<Item = Result<Group, OpenAiError>> + Send + use<> {
        self.stream::<_, RbacPage<_>>(
            EndpointFamily::Groups,
            &["organization", "groups"],
            p,
            RBAC_MAX_LIMIT,
        )
    }

    pub async fn create_group(&self, name: &str) -> Result<Reply<Group>, OpenAiError> {
        self.post(
            EndpointFamily::Groups,
            &["organization", "groups"],
            &Name { name },
            Idempotency::NonIdempotent,
        )
        .await
    }

    pub async fn get_group(&self, group_id: &str) -> Result<Reply<Group>, OpenAiError> {
        self.get(
            EndpointFamily::Groups,
            &["organization", "groups", group_id],
            Vec::new(),
        )
        .await
    }

    pub async fn update_group(
        &self,
        group_id: &str,
        name: &str,
    ) -> Result<Reply<Group>, OpenAiError> {
        self.post(
            EndpointFamily::Groups,
            &["organization", "groups", group_id],
            &Name { name },
            Idempotency::Idempotent,
        )
        .await
    }

    pub async fn delete_group(&self, group_id: &str) -> Result<Reply<Deleted>, OpenAiError> {
        self.delete(
            EndpointFamily::Groups,
            &["organization", "groups", group_id],
        )
        .await
    }

    pub async fn list_group_users(
        &self,
        group_id: &str,
        p: &RbacListParams,
    ) -> Result<Reply<RbacPage<GroupUser>>, OpenAiError> {
        self.get(
            EndpointFamily::Groups,
            &["organization", "groups", group_id, "users"],
            p.query(),
        )
        .await
    }

    pub fn group_users(
        &self,
        group_id: &str,
        p: &RbacListParams,
    ) -> impl Stream<Item = Result<GroupUser, OpenAiError>> + Send + use<> {
        self.stream::<_, RbacPage<_>>(
            EndpointFamily::Groups,
            &["organization", "groups", group_id, "users"],
            p,
            RBAC_MAX_LIMIT,
        )
    }

    pub async fn add_group_user(
        &self,
        group_id: &str,
        user_id: &str,
    ) -> Result<Reply<GroupUserAssignment>, OpenAiError> {
        self.post(
            EndpointFamily::Groups,
            &["organization", "groups", group_id, "users"],
            &UserId { user_id },
            Idempotency::NonIdempotent,
        )
        .await
    }

    pub async fn get_group_user(
        &self,
        group_id: &str,
        user_id: &str,
    ) -> Result<Reply<GroupUser>, OpenAiError> {
        self.get(
            EndpointFamily::Groups,
            &["organization", "groups", group_id, "users", user_id],
            Vec::new(),
        )
        .await
    }

    pub async fn remove_group_user(
        &self,
        group_id: &str,
        user_id: &str,
    ) -> Result<Reply<Deleted>, OpenAiError> {
        self.delete(
            EndpointFamily::Groups,
            &["organization", "groups", group_id, "users", user_id],
        )
        .await
    }

    pub async fn list_roles(
        &self,
        p: &RbacListParams,
    ) -> Result<Reply<RbacPage<Role>>, OpenAiError> {
        self.list_scoped_roles(&RoleScope::Organization, p).await
    }

    pub async fn list_project_roles(
        &self,
        project_id: &str,
        p: &RbacListParams,
    ) -> Result<Reply<RbacPage<Role>>, OpenAiError> {
        self.list_scoped_roles(&RoleScope::Project(project_id.to_string()), p)
            .await
    }

    pub async fn list_scoped_roles(
        &self,
        scope: &RoleScope,
        p: &RbacListParams,
    ) -> Result<Reply<RbacPage<Role>>, OpenAiError> {
        self.get(EndpointFamily::Roles, &scope.path(), p.query())
            .await
    }

    pub fn roles(
        &self,
        scope: &RoleScope,
        p: &RbacListParams,
    ) -> impl Stream<Item = Result<Role, OpenAiError>> + Send + use<> {
        self.stream::<_, RbacPage<_>>(EndpointFamily::Roles, &scope.path(), p, RBAC_MAX_LIMIT)
    }

    /// Only custom roles can be created, updated or deleted.
    pub async fn create_role(
        &self,
        scope: &RoleScope,
        body: &CreateRole,
    ) -> Result<Reply<Role>, OpenAiError> {
        self.post(
            EndpointFamily::Roles,
            &scope.path(),
            body,
            Idempotency::NonIdempotent,
        )
        .await
    }

    pub async fn get_role(
        &self,
        scope: &RoleScope,
        role_id: &str,
    ) -> Result<Reply<Role>, OpenAiError> {
        self.get(
            EndpointFamily::Roles,
            &with(scope.path(), &[role_id]),
            Vec::new(),
        )
        .await
    }

    pub async fn update_role(
        &self,
        scope: &RoleScope,
        role_id: &str,
        body: &UpdateRole,
    ) -> Result<Reply<Role>, OpenAiError> {
        self.post(
            EndpointFamily::Roles,
            &with(scope.path(), &[role_id]),
            body,
            Idempotency::Idempotent,
        )
        .await
    }

    pub async fn delete_role(
        &self,
        scope: &RoleScope,
        role_id: &str,
    ) -> Result<Reply<Deleted>, OpenAiError> {
        self.delete(EndpointFamily::Roles, &with(scope.path(), &[role_id]))
            .await
    }

    pub async fn list_role_assignments(
        &self,
        assignee: &Assignee,
        p: &RbacListParams,
    ) -> Result<Reply<RbacPage<AssignedRole>>, OpenAiError> {
        self.get(EndpointFamily::RoleAssignments, &assignee.path(), p.query())
            .await
    }

    pub fn role_assignments(
        &self,
        assignee: &Assignee,
        p: &RbacListParams,
    ) -> impl Stream<Item = Result<AssignedRole, OpenAiError>> + Send + use<> {
        self.stream::<_, RbacPage<_>>(
            EndpointFamily::RoleAssignments,
            &assignee.path(),
            p,
            RBAC_MAX_LIMIT,
        )
    }

    /// Assigning twice is harmless, so this may be repeated.
    pub async fn assign_role(
        &self,
        assignee: &Assignee,
        role_id: &str,
    ) -> Result<Reply<RoleAssignment>, OpenAiError> {
        self.post(
            EndpointFamily::RoleAssignments,
            &assignee.path(),
            &RoleId { role_id },
            Idempotency::Idempotent,
        )
        .await
    }

    pub async fn get_role_assignment(
        &self,
        assignee: &Assignee,
        role_id: &str,
    ) -> Result<Reply<AssignedRole>, OpenAiError> {
        self.get(
            EndpointFamily::RoleAssignments,
            &with(assignee.path(), &[role_id]),
            Vec::new(),
        )
        .await
    }

    pub async fn unassign_role(
        &self,
        assignee: &Assignee,
        role_id: &str,
    ) -> Result<Reply<Deleted>, OpenAiError> {
        self.delete(
            EndpointFamily::RoleAssignments,
            &with(assignee.path(), &[role_id]),
        )
        .await
    }
}
