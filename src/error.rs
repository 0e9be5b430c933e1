//! The one error type callers see: [`AppError`] with a typed [`ErrorCode`], rendered as
//! RFC 9457 problem JSON. Internal causes are logged with their chain and never shown.
//! Depends on nothing of ours but the store's error type.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Stable, machine-readable error codes. Adding one is fine; renaming one breaks callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No bearer token, or one that failed verification.
    Unauthenticated,
    /// The token is valid but lacks the scope the operation needs.
    InsufficientScope,
    /// The operator's policy does not allow this caller to do this (`policy_rule` names the rule).
    PolicyDenied,
    /// No route matches the path.
    NotFound,
    /// The connection does not exist (or was deleted).
    ConnectionNotFound,
    /// The sync run does not exist (or its connection was deleted).
    SyncNotFound,
    /// The project is not in the connection's last synced inventory.
    ProjectNotFound,
    /// A sync of this connection is already running (one at a time per connection).
    SyncInProgress,
    /// The grant does not exist (or its connection was deleted).
    GrantNotFound,
    /// The grant is already revoked, expired or failed: there is nothing to revoke or extend.
    GrantNotLive,
    /// The project is archived: OpenAI does not change its members.
    ProjectArchived,
    /// The person owns the organization and so every project: their project role cannot be lowered or removed.
    OrgOwner,
    /// The change would leave the project without an owner.
    LastOwner,
    /// Everyone in the organization is in its default project: only offboarding removes someone from it.
    DefaultProject,
    /// The person has a pending organization invite that does not include the project.
    InvitePending,
    /// The person is not in the organization and no email was given to invite them.
    EmailRequired,
    /// Another write on the same access is in flight and did not finish in time; retry.
    AccessBusy,
    /// The Idempotency-Key was used before with a different request.
    IdempotencyKeyReused,
    /// The first request with this Idempotency-Key is still running; retry shortly.
    IdempotencyKeyInProgress,
    /// OpenAI refused the write; the grant is recorded as failed with OpenAI's message.
    UpstreamRefused,
    /// OpenAI could not be read or written (timeouts, 5xx, rate limits after retries, or a key without the needed scope).
    UpstreamUnavailable,
    /// The group is managed by the identity provider (SCIM): change its members there.
    ScimManaged,
    /// The group already has access to the project with another role.
    GroupHasAccess,
    /// The person is not a member of the organization, which the change needs.
    NotAMember,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The body is not valid JSON or does not have the expected shape.
    MalformedJson,
    /// A path or query parameter could not be parsed.
    InvalidParameter,
    /// The request is well formed but some field is invalid.
    ValidationFailed,
    /// The base URL is not the default and not in the configured allowlist.
    BaseUrlNotAllowed,
    /// Another connection already has this name.
    ConnectionNameTaken,
    /// The connection has live grants; revoke them first (or `?revoke_grants=true`).
    ConnectionHasLiveGrants,
    /// The connection's key or base URL changed and it has not passed a test since.
    ConnectionTestRequired,
    /// OpenAI answered for another organization than the one the connection is pinned to.
    OrganizationMismatch,
    /// The connection is pinned to an organization; it cannot be pointed at another.
    OrganizationPinned,
    /// The change points the connection at another base URL without the admin key for it.
    AdminKeyRequired,
    /// The stored admin key cannot be decrypted with the configured key ring.
    EncryptionKeyUnavailable,
    /// The request took longer than the server's request timeout.
    RequestTimeout,
    /// A dependency (the store) is unreachable.
    ServiceUnavailable,
    /// An unexpected server-side failure; details are in the server log under the request id.
    Internal,
    /// The caller sent more requests than its rate allows; retry after `Retry-After` seconds.
    RateLimited,
    /// Too many connection tests are running at once; retry after `Retry-After` seconds.
    TooManyConnectionTests,
    /// Too many sync requests for this connection; retry after `Retry-After` seconds.
    TooManySyncRequests,
}

impl ErrorCode {
    /// The HTTP status this code is always served with.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            Unauthenticated => StatusCode::UNAUTHORIZED,
            InsufficientScope | PolicyDenied => StatusCode::FORBIDDEN,
            NotFound | ConnectionNotFound | SyncNotFound | ProjectNotFound => StatusCode::NOT_FOUND,
            GrantNotFound => StatusCode::NOT_FOUND,
            GrantNotLive => StatusCode::CONFLICT,
            ProjectArchived => StatusCode::CONFLICT,
            OrgOwner => StatusCode::CONFLICT,
            LastOwner => StatusCode::CONFLICT,
            DefaultProject => StatusCode::CONFLICT,
            InvitePending => StatusCode::CONFLICT,
            // The organization's current state refuses it (as the other 409s), not the
            // request's form: the same body succeeds once the person is a member.
            EmailRequired => StatusCode::CONFLICT,
            AccessBusy => StatusCode::CONFLICT,
            IdempotencyKeyReused => StatusCode::CONFLICT,
            IdempotencyKeyInProgress => StatusCode::CONFLICT,
            UpstreamRefused => StatusCode::BAD_GATEWAY,
            UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            ScimManaged => StatusCode::CONFLICT,
            GroupHasAccess => StatusCode::CONFLICT,
            NotAMember => StatusCode::CONFLICT,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            MalformedJson | InvalidParameter => StatusCode::BAD_REQUEST,
            ValidationFailed | BaseUrlNotAllowed => StatusCode::UNPROCESSABLE_ENTITY,
            ConnectionNameTaken | SyncInProgress => StatusCode::CONFLICT,
            ConnectionHasLiveGrants | ConnectionTestRequired => StatusCode::CONFLICT,
            OrganizationMismatch | OrganizationPinned => StatusCode::CONFLICT,
            // Whether the URL is new depends on the stored connection, not on the body
            // alone: the same PATCH is fine for a connection already pointed there.
            AdminKeyRequired => StatusCode::CONFLICT,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            EncryptionKeyUnavailable | Internal => StatusCode::INTERNAL_SERVER_ERROR,
            RateLimited | TooManyConnectionTests | TooManySyncRequests => {
                StatusCode::TOO_MANY_REQUESTS
            }
        }
    }

    /// Short human title, constant per code (RFC 9457 `title`).
    pub fn title(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Unauthenticated => "Authentication required",
            InsufficientScope => "Insufficient scope",
            PolicyDenied => "Denied by policy",
            NotFound => "Not found",
            ConnectionNotFound => "Connection not found",
            SyncNotFound => "Sync not found",
            ProjectNotFound => "Project not found",
            SyncInProgress => "Sync in progress",
            GrantNotFound => "Grant not found",
            GrantNotLive => "Grant not live",
            ProjectArchived => "Project archived",
            OrgOwner => "Organization owner",
            LastOwner => "Last owner",
            DefaultProject => "Default project",
            InvitePending => "Invite pending",
            EmailRequired => "Email required",
            AccessBusy => "Access busy",
            IdempotencyKeyReused => "Idempotency key reused",
            IdempotencyKeyInProgress => "Idempotency key in progress",
            UpstreamRefused => "OpenAI refused the change",
            UpstreamUnavailable => "OpenAI unavailable",
            ScimManaged => "Group managed by SCIM",
            GroupHasAccess => "Group already has access",
            NotAMember => "Not an organization member",
            MethodNotAllowed => "Method not allowed",
            PayloadTooLarge => "Payload too large",
            UnsupportedMediaType => "Unsupported media type",
            MalformedJson => "Malformed JSON body",
            InvalidParameter => "Invalid parameter",
            ValidationFailed => "Validation failed",
            BaseUrlNotAllowed => "Base URL not allowed",
            ConnectionNameTaken => "Connection name taken",
            ConnectionHasLiveGrants => "Connection has live grants",
            ConnectionTestRequired => "Connection test required",
            OrganizationMismatch => "Organization mismatch",
            OrganizationPinned => "Organization pinned",
            AdminKeyRequired => "Admin key required",
            EncryptionKeyUnavailable => "Encryption key unavailable",
            RequestTimeout => "Request timeout",
            ServiceUnavailable => "Service unavailable",
            Internal => "Internal error",
            RateLimited => "Rate limited",
            TooManyConnectionTests => "Too many connection tests",
            TooManySyncRequests => "Too many sync requests",
        }
    }

    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Unauthenticated => "unauthenticated",
            InsufficientScope => "insufficient_scope",
            PolicyDenied => "policy_denied",
            NotFound => "not_found",
            ConnectionNotFound => "connection_not_found",
            SyncNotFound => "sync_not_found",
            ProjectNotFound => "project_not_found",
            SyncInProgress => "sync_in_progress",
            GrantNotFound => "grant_not_found",
            GrantNotLive => "grant_not_live",
            ProjectArchived => "project_archived",
            OrgOwner => "org_owner",
            LastOwner => "last_owner",
            DefaultProject => "default_project",
            InvitePending => "invite_pending",
            EmailRequired => "email_required",
            AccessBusy => "access_busy",
            IdempotencyKeyReused => "idempotency_key_reused",
            IdempotencyKeyInProgress => "idempotency_key_in_progress",
            UpstreamRefused => "upstream_refused",
            UpstreamUnavailable => "upstream_unavailable",
            ScimManaged => "scim_managed",
            GroupHasAccess => "group_has_access",
            NotAMember => "not_a_member",
            MethodNotAllowed => "method_not_allowed",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            MalformedJson => "malformed_json",
            InvalidParameter => "invalid_parameter",
            ValidationFailed => "validation_failed",
            BaseUrlNotAllowed => "base_url_not_allowed",
            ConnectionNameTaken => "connection_name_taken",
            ConnectionHasLiveGrants => "connection_has_live_grants",
            ConnectionTestRequired => "connection_test_required",
            OrganizationMismatch => "organization_mismatch",
            OrganizationPinned => "organization_pinned",
            AdminKeyRequired => "admin_key_required",
            EncryptionKeyUnavailable => "encryption_key_unavailable",
            RequestTimeout => "request_timeout",
            ServiceUnavailable => "service_unavailable",
            Internal => "internal",
            RateLimited => "rate_limited",
            TooManyConnectionTests => "too_many_connection_tests",
            TooManySyncRequests => "too_many_sync_requests",
        }
    }

    /// The code a bare status (from a layer or fallback that built no problem) stands for.
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::UNAUTHORIZED => Self::Unauthenticated,
            StatusCode::FORBIDDEN => Self::InsufficientScope,
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::REQUEST_TIMEOUT => Self::RequestTimeout,
            StatusCode::SERVICE_UNAVAILABLE => Self::ServiceUnavailable,
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimited,
            s if s.is_client_error() => Self::InvalidParameter,
            _ => Self::Internal,
        }
    }
}

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON pointer-ish path of the field, e.g. `base_url`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// RFC 9457 problem details, as served.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// URI identifying the problem type: `urn:openai-governor:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Constant title of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What happened, for a person.
    pub detail: String,
    /// Stable machine-readable code.
    #[schema(value_type = String)]
    pub code: ErrorCode,
    /// The path of the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The request id (`x-request-id`), to find the request in the server log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Invalid fields, for `validation_failed`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<FieldError>,
    /// The policy rule that refused, for `policy_denied` (`default-deny` when none allowed it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_rule: Option<String>,
}

impl Problem {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("urn:openai-governor:problem:{}", code.as_str()),
            title: code.title().to_owned(),
            status: code.status().as_u16(),
            detail: detail.into(),
            code,
            instance: None,
            request_id: None,
            errors: Vec::new(),
            policy_rule: None,
        }
    }

    /// Render as a response; `http::problem_layer` fills in `instance` and `request_id`.
    pub fn into_response_with_status(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.extensions_mut().insert(self);
        response
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct AppError {
    pub code: ErrorCode,
    /// A message a person can act on. Never contains secrets or internal error text.
    pub message: String,
    /// Field-level details for validation failures.
    pub errors: Vec<FieldError>,
    /// The policy rule that refused, for `policy_denied`.
    pub policy_rule: Option<String>,
    /// The internal cause, logged, never served.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            errors: Vec::new(),
            policy_rule: None,
            source: None,
        }
    }

    /// A 422 listing the invalid fields.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let message = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid; see `errors`", errors.len()),
        };
        Self {
            errors,
            ..Self::new(ErrorCode::ValidationFailed, message)
        }
    }

    /// An unexpected failure: the cause is logged, the caller sees a generic message.
    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(
                ErrorCode::Internal,
                "an unexpected error occurred; the server log has details under this request id",
            )
        }
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::new(ErrorCode::NotFound, "the resource does not exist"),
            StoreError::Conflict(what) => Self::new(ErrorCode::ConnectionNameTaken, what),
            StoreError::Locked => Self::new(
                ErrorCode::AccessBusy,
                "another write on the same access is in flight; retry when it has finished",
            ),
            StoreError::Unavailable(e) => Self {
                source: Some(e.into()),
                ..Self::new(
                    ErrorCode::ServiceUnavailable,
                    "the store is unreachable; retry later",
                )
            },
            StoreError::Other(e) => Self::internal(e),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.code.status().is_server_error() {
            // `{:#}`-style chain for operators; never reaches the caller.
            let chain = error_chain(&self);
            tracing::error!(code = self.code.as_str(), error = %chain, "request failed");
        }
        let mut problem = Problem::new(self.code, self.message);
        problem.errors = self.errors;
        problem.policy_rule = self.policy_rule;
        problem.into_response_with_status()
    }
}

/// `err: cause: cause` on one line, for logs.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}
