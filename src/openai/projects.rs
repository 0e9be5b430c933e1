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

    pub async fn get_project(&self, project_id: &str) -> Result<Reply<Project>, OpenAiError> {
        self.get(
            EndpointFamily::Projects,
            &["organization", "projects", project_id],
            Vec::new(),
        )
        .await
    }

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

    /// Projects cannot be deleted, only archived.
    pub async fn archive_project(&self, project_id: &str) -> Result<Reply<Project>, OpenAiError> {
        self.post(
            EndpointFamily::Projects,
            &["organization", "projects", project_id, "archive"],
            &Empty {},
            Idempotency::Idempotent,
        )
        .await
    }

    /// 400 on archived projects.
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

    /// Adds an organization member; an existing member answers 400.
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

    /// The answer holds the account's key, shown once (a `SecretString`).
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

    /// Also deletes the account's keys.
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

    /// The key's value is shown once.
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

    /// Service-account keys answer 400.
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

    /// `group_type: None` lets OpenAI default to `group`.
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
