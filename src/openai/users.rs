//! Operations on organization users, invites and admin API keys.
//!
//! Thin typed wrappers over `Client`'s HTTP core; nothing of our store.

use futures::Stream;

use super::budget::EndpointFamily;
use super::client::{Client, Idempotency, Reply};
use super::error::OpenAiError;
use super::models::{AdminApiKey, CreateInvite, Deleted, Invite, ModifyUser, OrgUser};
use super::pagination::CursorPage;
use super::params::{CursorParams, RbacListParams};

pub(crate) const LEGACY_MAX_LIMIT: u32 = 100;

impl Client {
    pub async fn list_users(
        &self,
        p: &super::params::ListUsersParams,
    ) -> Result<Reply<CursorPage<OrgUser>>, OpenAiError> {
        self.get(EndpointFamily::Users, &["organization", "users"], p.query())
            .await
    }

    pub fn users(
        &self,
        p: &super::params::ListUsersParams,
    ) -> impl Stream<Item = Result<OrgUser, OpenAiError>> + Send + use<> {
        self.stream::<_, CursorPage<_>>(
            EndpointFamily::Users,
            &["organization", "users"],
            p,
            LEGACY_MAX_LIMIT,
        )
    }

    /// By id, else by email (case-insensitive); `None` if there is no such member.
    pub async fn find_user(
        &self,
        user_id: Option<&str>,
        email: Option<&str>,
    ) -> Result<Option<OrgUser>, OpenAiError> {
        match (user_id, email) {
            (Some(user_id), _) => match self.get_user(user_id).await {
                Ok(r) => Ok(Some(r.data)),
                Err(e) if e.kind == super::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            (None, Some(email)) => {
                let p = super::params::ListUsersParams {
                    emails: vec![email.to_owned()],
                    limit: Some(10),
                    after: None,
                };
                let page = self.list_users(&p).await?.data.data;
                Ok(page.into_iter().find(|u| {
                    u.email
                        .as_deref()
                        .is_some_and(|m| m.eq_ignore_ascii_case(email))
                }))
            }
            (None, None) => Ok(None),
        }
    }

    pub async fn get_user(&self, user_id: &str) -> Result<Reply<OrgUser>, OpenAiError> {
        self.get(
            EndpointFamily::Users,
            &["organization", "users", user_id],
            Vec::new(),
        )
        .await
    }

    pub async fn modify_user(
        &self,
        user_id: &str,
        body: &ModifyUser,
    ) -> Result<Reply<OrgUser>, OpenAiError> {
        self.post(
            EndpointFamily::Users,
            &["organization", "users", user_id],
            body,
            Idempotency::Idempotent,
        )
        .await
    }

    pub async fn delete_user(&self, user_id: &str) -> Result<Reply<Deleted>, OpenAiError> {
        self.delete(EndpointFamily::Users, &["organization", "users", user_id])
            .await
    }

    pub async fn list_invites(
        &self,
        p: &CursorParams,
    ) -> Result<Reply<CursorPage<Invite>>, OpenAiError> {
        self.get(
            EndpointFamily::Invites,
            &["organization", "invites"],
            p.query(),
        )
        .await
    }

    pub fn invites(
        &self,
        p: &CursorParams,
    ) -> impl Stream<Item = Result<Invite, OpenAiError>> + Send + use<> {
        self.stream::<_, CursorPage<_>>(
            EndpointFamily::Invites,
            &["organization", "invites"],
            p,
            LEGACY_MAX_LIMIT,
        )
    }

    pub async fn create_invite(&self, body: &CreateInvite) -> Result<Reply<Invite>, OpenAiError> {
        self.post(
            EndpointFamily::Invites,
            &["organization", "invites"],
            body,
            Idempotency::NonIdempotent,
        )
        .await
    }

    /// Poll it for `status`.
    pub async fn get_invite(&self, invite_id: &str) -> Result<Reply<Invite>, OpenAiError> {
        self.get(
            EndpointFamily::Invites,
            &["organization", "invites", invite_id],
            Vec::new(),
        )
        .await
    }

    /// Pending invites only.
    pub async fn delete_invite(&self, invite_id: &str) -> Result<Reply<Deleted>, OpenAiError> {
        self.delete(
            EndpointFamily::Invites,
            &["organization", "invites", invite_id],
        )
        .await
    }

    pub async fn list_admin_api_keys(
        &self,
        p: &RbacListParams,
    ) -> Result<Reply<CursorPage<AdminApiKey>>, OpenAiError> {
        self.get(
            EndpointFamily::AdminApiKeys,
            &["organization", "admin_api_keys"],
            p.query(),
        )
        .await
    }

    pub fn admin_api_keys(
        &self,
        p: &RbacListParams,
    ) -> impl Stream<Item = Result<AdminApiKey, OpenAiError>> + Send + use<> {
        self.stream::<_, CursorPage<_>>(
            EndpointFamily::AdminApiKeys,
            &["organization", "admin_api_keys"],
            p,
            LEGACY_MAX_LIMIT,
        )
    }

    pub async fn get_admin_api_key(&self, key_id: &str) -> Result<Reply<AdminApiKey>, OpenAiError> {
        self.get(
            EndpointFamily::AdminApiKeys,
            &["organization", "admin_api_keys", key_id],
            Vec::new(),
        )
        .await
    }
}
