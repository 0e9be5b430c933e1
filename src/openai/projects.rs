//! Operations on projects and what hangs off them: members, service accounts, API keys and
//! project groups (all under `/organization/projects/{p}/...`).
//!
//! Thin typed wrappers over `Client`'s HTTP core; nothing of our store.

use futures::Stream;
use serde::Serialize;

use super::budget::EndpointFamily;
use super::client::{Client, Idempotency, Reply};
use super::error::OpenAiError;
use super::models::{
    CreateProject, CreateServiceAccount, CreateServiceAccountApiKey, CreatedServiceAccount,
    Deleted, GroupType, ModifyProject, Project, ProjectApiKey, ProjectGroup, ProjectUser,
    ServiceAccount, ServiceAccountApiKey, UpdateServiceAccount,
};
use super::pagination::{CursorPage, RbacPage};
use super::params::{CursorParams, ListProjectApiKeysParams, ListProjectsParams, RbacListParams};
use super::users::LEGACY_MAX_LIMIT;

/// Largest page of project groups.
const PROJECT_GROUPS_MAX_LIMIT: u32 = 100;

#[derive(Serialize)]
struct AddMember<'a> {
    user_id: &'a str,
    role: &'a str,
}

#[derive(Serialize)]
struct SetRole<'a> {
    role: &'a str,
}

#[derive(Serialize)]
struct AddGroup<'a> {
    group_id: &'a str,
    role: &'a str,
}

#[derive(Serialize)]
struct Empty {}

impl Client {
    /// `GET /organization/projects`: one page of projects.
    pub async fn list_projects(
        &self,
        p: &ListProjectsParams,
    ) -> Result<Reply<CursorPage<Project>>, OpenAiError> {
        self.get(
            EndpointFamily::Projects,
            &["organization", "projects"],
            p.query(),
        )
        .await
    }

    /// Every project matching `p`, fetched page by page.
    pub fn projects(
        &self,
        p: &ListProjectsParams,
    ) -> impl Stream<Item = Result<Project, OpenAiError>> + Send + use<> {
        self.stream::<_, CursorPage<_>>(
            EndpointFamily::Projects,
            &["organization", "projects"],
            p,
            LEGACY_MAX_LIMIT,
        )
    }

    /// `GET /organization/projects/{project_id}`.
    pub async fn get_project(&self, project_id: &str) -> Result<Reply<Project>, OpenAiError> {
        self.get(
            EndpointFamily::Projects,
            &["organization", "projects", project_id],
            Vec::new(),
        )
        .await
    }

    /// `POST /organization/projects` (not repeated after an unknown outcome).
    pub async fn create_project(
        &self,
        body: &CreateProject,
    ) -> Result<Reply<Project>, OpenAiError> {
        self.post(
            EndpointFamily::Projects,
            &["organization", "projects"],
            body,
            Idempotency::NonIdempotent,
        )
        .await
    }

    /// `POST /organization/projects/{project_id}`: rename or change the key id.
    pub async fn modify_project(
        &self,
        project_id: &str,
        body: &ModifyProject,
    ) -> Result<Reply<Project>, OpenAiError> {
        self.post(
            EndpointFamily::Projects,
            &["organization", "projects", project_id],
            body,
            Idempotency::Idempotent,
        )
        .await
    }

    /// `POST /organization/projects/{project_id}/archive` (projects cannot be deleted).
    pub async fn archive_project(&self, project_id: &str) -> Result<Reply<Project>, OpenAiError> {
        self.post(
            EndpointFamily::Projects,
            &["organization", "projects", project_id, "archive"],
            &Empty {},
            Idempotency::Idempotent,
        )
        .await
    }

    /// `GET /organization/projects/{p}/users`: one page of members (400 on archived projects).
    pub async fn list_project_users(
        &self,
        project_id: &str,
        p: &CursorParams,
    ) -> Result<Reply<CursorPage<ProjectUser>>, OpenAiError> {
        self.get(
            EndpointFamily::ProjectUsers,
            &["organization", "projects", project_id, "users"],
            p.query(),
        )
        .await
    }

    /// Every member of a project, fetched page by page.
    pub fn project_users(
        &self,
        project_id: &str,
        p: &CursorParams,
    ) -> impl Stream<Item = Result<ProjectUser, OpenAiError>> + Send + use<> {
        self.stream::<_, CursorPage<_>>(
            EndpointFamily::ProjectUsers,
            &["organization", "projects", project_id, "users"],
            p,
            LEGACY_MAX_LIMIT,
        )
    }

    /// `POST /organization/projects/{p}/users`: add an organization member to a project.
    /// Adding an existing member is a 400 (not repeated after an unknown outcome).
    pub async fn add_project_user(
        &self,
        project_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<Reply<ProjectUser>, OpenAiError> {
        self.post(
            EndpointFamily::ProjectUsers,
            &["organization", "projects", project_id, "users"],
            &AddMember { user_id, role },
            Idempotency::NonIdempotent,
        )
        .await
    }

    /// `GET /organization/projects/{p}/users/{user_id}`.
    pub async fn get_project_user(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<Reply<ProjectUser>, OpenAiError> {
        self.get(
            EndpointFamily::ProjectUsers,
            &["organization", "projects", project_id, "users", user_id],
            Vec::new(),
        )
        .await
    }

    /// `POST /organization/projects/{p}/users/{user_id}`: set a member's project role.
    pub async fn modify_project_user(
        &self,
        project_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<Reply<ProjectUser>, OpenAiError> {
        self.post(
            EndpointFamily::ProjectUsers,
            &["organization", "projects", project_id, "users", user_id],
            &SetRole { role },
            Idempotency::Idempotent,
        )
        .await
    }

    /// `DELETE /organization/projects/{p}/users/{user_id}`: remove a member from a project.
    pub async fn remove_project_user(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> Result<Reply<Deleted>, OpenAiError> {
        self.delete(
            EndpointFamily::ProjectUsers,
            &["organization", "projects", project_id, "users", user_id],
        )
        .await
    }

    /// `GET /organization/projects/{p}/service_accounts`: one page.
    pub async fn list_project_service_accounts(
        &self,
        project_id: &str,
        p: &CursorParams,
    ) -> Result<Reply<CursorPage<ServiceAccount>>, OpenAiError> {
        self.get(
            EndpointFamily::ServiceAccounts,
            &["organization", "projects", project_id, "service_accounts"],
            p.query(),
        )
        .await
    }

    /// Every service account of a project, fetched page by page.
    pub fn project_service_accounts(
        &self,
        project_id: &str,
        p: &CursorParams,
    ) -> impl Stream<Item = Result<ServiceAccount, OpenAiError>> + Send + use<> {
        self.stream::<_, CursorPage<_>>(
            EndpointFamily::ServiceAccounts,
            &["organization", "projects", project_id, "service_accounts"],
            p,
            LEGACY_MAX_LIMIT,
        )
    }

    /// `POST /organization/projects/{p}/service_accounts`. The answer holds the account's
    /// key, shown once: it is a `SecretString`, and the call is never repeated blindly.
    pub async fn create_project_service_account(
        &self,
        project_id: &str,
        body: &CreateServiceAccount,
    ) -> Result<Reply<CreatedServiceAccount>, OpenAiError> {
        self.post_secret(
            EndpointFamily::ServiceAccounts,
            &["organization", "projects", project_id, "service_accounts"],
            body,
        )
        .await
    }

    /// `GET /organization/projects/{p}/service_accounts/{sa}`.
    pub async fn get_project_service_account(
        &self,
        project_id: &str,
        service_account_id: &str,
    ) -> Result<Reply<ServiceAccount>, OpenAiError> {
        self.get(
            EndpointFamily::ServiceAccounts,
            &[
                "organization",
                "projects",
                project_id,
                "service_accounts",
                service_account_id,
            ],
            Vec::new(),
        )
        .await
    }

    /// `POST /organization/projects/{p}/service_accounts/{sa}`: rename or change role.
    pub async fn modify_project_service_account(
        &self,
        project_id: &str,
        service_account_id: &str,
        body: &UpdateServiceAccount,
    ) -> Result<Reply<ServiceAccount>, OpenAiError> {
        self.post(
            EndpointFamily::ServiceAccounts,
            &[
                "organization",
                "projects",
                project_id,
                "service_accounts",
                service_account_id,
            ],
            body,
            Idempotency::Idempotent,
        )
        .await
    }

    /// `DELETE /organization/projects/{p}/service_accounts/{sa}` (and its keys).
    pub async fn delete_project_service_account(
        &self,
        project_id: &str,
        service_account_id: &str,
    ) -> Result<Reply<Deleted>, OpenAiError> {
        self.delete(
            EndpointFamily::ServiceAccounts,
            &[
                "organization",
                "projects",
                project_id,
                "service_accounts",
                service_account_id,
            ],
        )
        .await
    }

    /// `POST .../service_accounts/{sa}/api_keys`: mint a key, whose value is shown once.
    pub async fn create_service_account_api_key(
        &self,
        project_id: &str,
        service_account_id: &str,
        body: &CreateServiceAccountApiKey,
    ) -> Result<Reply<ServiceAccountApiKey>, OpenAiError> {
        self.post_secret(
            EndpointFamily::ServiceAccounts,
            &[
                "organization",
                "projects",
                project_id,
                "service_accounts",
                service_account_id,
                "api_keys",
            ],
            body,
        )
        .await
    }

    /// `GET /organization/projects/{p}/api_keys`: one page (filter defaults to `any`).
    pub async fn list_project_api_keys(
        &self,
        project_id: &str,
        p: &ListProjectApiKeysParams,
    ) -> Result<Reply<CursorPage<ProjectApiKey>>, OpenAiError> {
        self.get(
            EndpointFamily::ProjectApiKeys,
            &["organization", "projects", project_id, "api_keys"],
            p.query(),
        )
        .await
    }

    /// Every API key of a project, fetched page by page.
    pub fn project_api_keys(
        &self,
        project_id: &str,
        p: &ListProjectApiKeysParams,
    ) -> impl Stream<Item = Result<ProjectApiKey, OpenAiError>> + Send + use<> {
        self.stream::<_, CursorPage<_>>(
            EndpointFamily::ProjectApiKeys,
            &["organization", "projects", project_id, "api_keys"],
            p,
            LEGACY_MAX_LIMIT,
        )
    }

    /// `GET /organization/projects/{p}/api_keys/{key_id}`.
    pub async fn get_project_api_key(
        &self,
        project_id: &str,
        key_id: &str,
    ) -> Result<Reply<ProjectApiKey>, OpenAiError> {
        self.get(
            EndpointFamily::ProjectApiKeys,
            &["organization", "projects", project_id, "api_keys", key_id],
            Vec::new(),
        )
        .await
    }

    /// `DELETE /organization/projects/{p}/api_keys/{key_id}` (service-account keys: 400).
    pub async fn delete_project_api_key(
        &self,
        project_id: &str,
        key_id: &str,
    ) -> Result<Reply<Deleted>, OpenAiError> {
        self.delete(
            EndpointFamily::ProjectApiKeys,
            &["organization", "projects", project_id, "api_keys", key_id],
        )
        .await
    }

    /// `GET /organization/projects/{p}/groups`: one page of groups with project access.
    pub async fn list_project_groups(
        &self,
        project_id: &str,
        p: &RbacListParams,
    ) -> Result<Reply<RbacPage<ProjectGroup>>, OpenAiError> {
        self.get(
            EndpointFamily::ProjectGroups,
            &["organization", "projects", project_id, "groups"],
            p.query(),
        )
        .await
    }

    /// Every group with access to a project, fetched page by page.
    pub fn project_groups(
        &self,
        project_id: &str,
        p: &RbacListParams,
    ) -> impl Stream<Item = Result<ProjectGroup, OpenAiError>> + Send + use<> {
        self.stream::<_, RbacPage<_>>(
            EndpointFamily::ProjectGroups,
            &["organization", "projects", project_id, "groups"],
            p,
            PROJECT_GROUPS_MAX_LIMIT,
        )
    }

    /// `POST /organization/projects/{p}/groups`: give a group a project role (`role` is a
    /// role **id**).
    pub async fn add_project_group(
        &self,
        project_id: &str,
        group_id: &str,
        role_id: &str,
    ) -> Result<Reply<ProjectGroup>, OpenAiError> {
        self.post(
            EndpointFamily::ProjectGroups,
            &["organization", "projects", project_id, "groups"],
            &AddGroup {
                group_id,
                role: role_id,
            },
            Idempotency::NonIdempotent,
        )
        .await
    }

    /// `GET /organization/projects/{p}/groups/{group_id}` (`group_type` defaults to `group`).
    pub async fn get_project_group(
        &self,
        project_id: &str,
        group_id: &str,
        group_type: Option<GroupType>,
    ) -> Result<Reply<ProjectGroup>, OpenAiError> {
        let query = group_type
            .map(|t| vec![("group_type".to_string(), t.as_str().to_string())])
            .unwrap_or_default();
        self.get(
            EndpointFamily::ProjectGroups,
            &["organization", "projects", project_id, "groups", group_id],
            query,
        )
        .await
    }

    /// `DELETE /organization/projects/{p}/groups/{group_id}`.
    pub async fn remove_project_group(
        &self,
        project_id: &str,
        group_id: &str,
    ) -> Result<Reply<Deleted>, OpenAiError> {
        self.delete(
            EndpointFamily::ProjectGroups,
            &["organization", "projects", project_id, "groups", group_id],
        )
        .await
    }
}
