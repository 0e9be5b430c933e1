//! Connections: create, read, change, delete and test, with every rule checked before
//! anything is stored. The admin key enters here once and leaves only sealed.

use std::sync::Arc;

use crate::domain::policy::Action;
use crate::service::policy::PolicyGate;

use chrono::Utc;
use secrecy::SecretString;
use url::Url;

use super::Prober;
use super::audit::AuditService;
use crate::auth::{Principal, Scope};
use crate::config::{DEFAULT_OPENAI_BASE_URL, normalize_base_url};
use crate::crypto::{CryptoError, KeyRing};
use crate::domain::audit::{AuditAction, AuditEntry, AuditOutcome};
use crate::domain::connection::{validate_name, validate_organization_id};
use crate::domain::connection_test::OverallStatus;
use crate::domain::{AdminKey, Connection, ConnectionId, TestReport, ValidationError};
use crate::error::{AppError, ErrorCode, FieldError};
use crate::store::{
    ConnectionChanges, ConnectionDelete, ConnectionStore, NewConnection, Store, StoreError,
};

/// Largest page of connections a caller can ask for.
pub const MAX_PAGE: u32 = 200;

pub struct NewConnectionInput {
    pub name: String,
    /// The admin key, accepted once.
    pub admin_key: SecretString,
    pub expected_organization_id: Option<String>,
    /// Base URL; the default when absent.
    pub base_url: Option<String>,
}

/// Changes to a connection; absent fields stay.
#[derive(Default)]
pub struct ConnectionPatchInput {
    pub name: Option<String>,
    pub admin_key: Option<SecretString>,
    /// New expected organization; `Some(None)` clears it.
    pub expected_organization_id: Option<Option<String>>,
    pub base_url: Option<String>,
}

/// A key to test without saving it.
pub struct KeyTestInput {
    pub admin_key: SecretString,
    /// Base URL; the default when absent.
    pub base_url: Option<String>,
    pub expected_organization_id: Option<String>,
}

#[derive(Clone)]
pub struct ConnectionService {
    store: Arc<dyn ConnectionStore>,
    keys: Arc<KeyRing>,
    allowed_base_urls: Arc<Vec<Url>>,
    prober: Prober,
    audit: AuditService,
    policy: PolicyGate,
}

/// Collects every invalid field of a request, so the caller hears about all of them at once.
#[derive(Default)]
struct Checks(Vec<FieldError>);

impl Checks {
    fn check<T>(&mut self, result: Result<T, ValidationError>) -> Option<T> {
        result
            .map_err(|e| {
                self.0.push(FieldError {
                    field: e.field.to_owned(),
                    message: e.message,
                })
            })
            .ok()
    }

    fn into_error(self) -> AppError {
        AppError::validation(self.0)
    }
}

/// A key and where to use it: what both a create and a key test need.
struct KeyTarget {
    key: AdminKey,
    expected_organization_id: Option<String>,
    base_url: Url,
}

pub(super) fn not_found(id: ConnectionId) -> impl FnOnce(StoreError) -> AppError {
    move |e| match e {
        StoreError::NotFound => AppError::new(
            ErrorCode::ConnectionNotFound,
            format!("no connection has id {id}"),
        ),
        other => other.into(),
    }
}

pub(super) fn crypto_failure(id: ConnectionId, e: CryptoError) -> AppError {
    tracing::error!(connection_id = %id, error = %e, "stored admin key cannot be opened");
    AppError {
        source: Some(e.into()),
        ..AppError::new(
            ErrorCode::EncryptionKeyUnavailable,
            "the stored admin key cannot be decrypted with the configured encryption keys \
             (was a key version removed from OG_ENCRYPTION_KEYS?); replace the key or ask an operator",
        )
    }
}

impl ConnectionService {
    /// Wires the use cases to their dependencies.
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        allowed_base_urls: Vec<Url>,
        prober: Prober,
    ) -> Self {
        Self {
            audit: AuditService::new(store.clone()),
            store,
            keys,
            allowed_base_urls: Arc::new(allowed_base_urls),
            prober,
            policy: PolicyGate::open(),
        }
    }

    /// The same service under the operator's policy.
    pub fn with_policy(self, policy: PolicyGate) -> Self {
        Self { policy, ..self }
    }

    /// Whether `who` sees the connection at all: it may read or manage it.
    fn sees(&self, who: &Principal, c: &Connection) -> bool {
        self.policy.sees(who, Action::Read, c.id, &c.name)
            || self.policy.sees(who, Action::Manage, c.id, &c.name)
    }

    /// The connection `id`, if `who` may do `action` on it.
    async fn managed(&self, who: &Principal, id: ConnectionId) -> Result<Connection, AppError> {
        let c = self.store.get_connection(id).await.map_err(not_found(id))?;
        self.policy.require_on(who, Action::Manage, &c)?;
        Ok(c)
    }

    /// Appends what `who` did to connection `id`. The change is already made when this runs:
    /// if the append fails, the caller gets the store's error (and the log says which change
    /// went unrecorded) rather than a success the trail does not show.
    async fn audited(
        &self,
        who: &Principal,
        id: ConnectionId,
        action: AuditAction,
        outcome: AuditOutcome,
        fill: impl FnOnce(&mut AuditEntry),
    ) -> Result<(), AppError> {
        let mut entry = AuditEntry::new(
            Utc::now(),
            who.subject.clone(),
            who.client_id.clone(),
            action,
            outcome,
        );
        entry.connection_id = Some(id);
        fill(&mut entry);
        self.audit.record(&entry).await?;
        Ok(())
    }

    /// Checks a base URL against the allowlist. Malformed → `validation_failed`; well formed
    /// but not allowed → `base_url_not_allowed`.
    fn base_url(&self, raw: Option<&str>, checks: &mut Checks) -> Result<Option<Url>, AppError> {
        let raw = raw.unwrap_or(DEFAULT_OPENAI_BASE_URL);
        let url = match normalize_base_url(raw.trim()) {
            Ok(url) => url,
            Err(why) => {
                checks.0.push(FieldError {
                    field: "base_url".into(),
                    message: why,
                });
                return Ok(None);
            }
        };
        if !self.allowed_base_urls.contains(&url) {
            return Err(AppError::new(
                ErrorCode::BaseUrlNotAllowed,
                format!(
                    "base_url {url} is not allowed; use {DEFAULT_OPENAI_BASE_URL} or ask an operator \
                     to add it to OG_OPENAI_ALLOWED_BASE_URLS"
                ),
            ));
        }
        Ok(Some(url))
    }

    /// Checks a key, its expected organization and its base URL; `None` if any is invalid
    /// (the reasons are in `checks`).
    fn key_target(
        &self,
        checks: &mut Checks,
        admin_key: SecretString,
        expected_organization_id: Option<&str>,
        base_url: Option<&str>,
    ) -> Result<Option<KeyTarget>, AppError> {
        let key = checks.check(AdminKey::parse(admin_key));
        let expected =
            expected_organization_id.map(|org| checks.check(validate_organization_id(org)));
        let base_url = self.base_url(base_url, checks)?;
        Ok(match (key, expected, base_url) {
            (Some(key), None, Some(base_url)) => Some(KeyTarget {
                key,
                expected_organization_id: None,
                base_url,
            }),
            (Some(key), Some(Some(org)), Some(base_url)) => Some(KeyTarget {
                key,
                expected_organization_id: Some(org),
                base_url,
            }),
            _ => None,
        })
    }

    /// Creates a connection. Requires `connections:write`.
    pub async fn create(
        &self,
        who: &Principal,
        input: NewConnectionInput,
    ) -> Result<Connection, AppError> {
        who.require(Scope::ConnectionsWrite)?;
        // A new connection is known by its name (its id does not exist yet).
        self.policy.decide(
            who,
            &crate::domain::policy::Scope::new(Action::Manage).on(crate::domain::policy::Named {
                id: "",
                name: Some(input.name.trim()),
            }),
        )?;
        let mut checks = Checks::default();
        let name = checks.check(validate_name(&input.name));
        let target = self.key_target(
            &mut checks,
            input.admin_key,
            input.expected_organization_id.as_deref(),
            input.base_url.as_deref(),
        )?;
        let (
            Some(name),
            Some(KeyTarget {
                key,
                expected_organization_id: expected,
                base_url,
            }),
        ) = (name, target)
        else {
            return Err(checks.into_error());
        };

        let id = ConnectionId::new();
        let sealed = self
            .keys
            .seal(id, &base_url, key.secret())
            .map_err(AppError::internal)?;
        let created = self
            .store
            .insert_connection(NewConnection {
                id,
                name,
                base_url,
                expected_organization_id: expected,
                key_hint: key.hint(),
                sealed_key: sealed,
                at: Utc::now(),
                by: who.subject.clone(),
            })
            .await
            .map_err(name_conflict)?;
        tracing::info!(connection_id = %id, name = %created.name, by = %who.subject, "connection created");
        self.audited(
            who,
            id,
            AuditAction::ConnectionCreated,
            AuditOutcome::Succeeded,
            |e| e.after = Some(described(&created)),
        )
        .await?;
        Ok(created)
    }

    /// One connection. Requires `connections:read`.
    pub async fn get(&self, who: &Principal, id: ConnectionId) -> Result<Connection, AppError> {
        who.require(Scope::ConnectionsRead)?;
        let c = self.store.get_connection(id).await.map_err(not_found(id))?;
        if !self.sees(who, &c) {
            self.policy.require_on(who, Action::Read, &c)?;
        }
        Ok(c)
    }

    /// A page of connections in creation order, and whether more follow. Requires `connections:read`.
    pub async fn list(
        &self,
        who: &Principal,
        after: Option<ConnectionId>,
        limit: u32,
    ) -> Result<(Vec<Connection>, bool), AppError> {
        who.require(Scope::ConnectionsRead)?;
        let limit = limit.clamp(1, MAX_PAGE);
        // Filtered by the policy: read on until the page is full or the list ends.
        let (mut page, mut cursor) = (Vec::new(), after);
        loop {
            let got = self.store.list_connections(cursor, limit + 1).await?;
            let end = got.len() <= limit as usize;
            cursor = got.last().map(|c| c.id);
            page.extend(got.into_iter().filter(|c| self.sees(who, c)));
            if end || page.len() > limit as usize {
                break;
            }
        }
        let more = page.len() > limit as usize;
        page.truncate(limit as usize);
        Ok((page, more))
    }

    /// Changes a connection; a new key or base URL clears the last test report (it no longer
    /// describes the connection) and requires a new test before the connection is used again.
    /// Requires `connections:write`.
    pub async fn update(
        &self,
        who: &Principal,
        id: ConnectionId,
        patch: ConnectionPatchInput,
    ) -> Result<Connection, AppError> {
        who.require(Scope::ConnectionsWrite)?;
        self.managed(who, id).await?;
        let mut checks = Checks::default();
        let name = patch
            .name
            .as_deref()
            .and_then(|n| checks.check(validate_name(n)));
        let key = patch
            .admin_key
            .and_then(|k| checks.check(AdminKey::parse(k)));
        let expected = match patch.expected_organization_id {
            Some(Some(org)) => checks.check(validate_organization_id(&org)).map(Some),
            Some(None) => Some(None),
            None => None,
        };
        let base_url = match patch.base_url.as_deref() {
            Some(raw) => self.base_url(Some(raw), &mut checks)?,
            None => None,
        };
        if !checks.0.is_empty() {
            return Err(checks.into_error());
        }
        // The state before: the rules below depend on it, and the audit entry shows it (a
        // concurrent writer may slip in between: the entry's `before` is then what this
        // caller last saw, which is what it changed).
        let before = self.store.get_connection(id).await.map_err(not_found(id))?;
        let base_url = base_url.filter(|url| *url != before.base_url);
        // The key is sealed for its base URL, and whoever may point a connection elsewhere
        // must show they hold a key for that place.
        if base_url.is_some() && key.is_none() {
            return Err(AppError::new(
                ErrorCode::AdminKeyRequired,
                format!(
                    "connection {id} is pointed at {}; a new base_url needs the admin key \
                     again in the same request (the stored key is sealed for the current \
                     base URL and is never sent anywhere else)",
                    before.base_url
                ),
            ));
        }
        if let (Some(pinned), Some(Some(expected))) = (&before.organization_id, &expected)
            && pinned != expected
        {
            return Err(AppError::new(
                ErrorCode::OrganizationPinned,
                format!(
                    "connection {id} is pinned to organization {pinned} (its key reached it); \
                     it cannot be pointed at {expected}: create a new connection for that \
                     organization"
                ),
            ));
        }
        let sealed_key = key
            .as_ref()
            .map(|k| {
                let url = base_url.as_ref().unwrap_or(&before.base_url);
                self.keys.seal(id, url, k.secret()).map(|s| (k.hint(), s))
            })
            .transpose()
            .map_err(AppError::internal)?;
        let changes = ConnectionChanges {
            clear_last_test: sealed_key.is_some() || base_url.is_some(),
            name,
            base_url,
            expected_organization_id: expected,
            key: sealed_key,
        };
        let replaced_key = changes.key.is_some();
        let edited = changes.name.is_some()
            || changes.base_url.is_some()
            || changes.expected_organization_id.is_some();
        let updated = self
            .store
            .update_connection(id, changes, Utc::now(), &who.subject)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => name_conflict(e),
                other => not_found(id)(other),
            })?;
        tracing::info!(connection_id = %id, by = %who.subject, replaced_key, "connection updated");
        // A PATCH that renames and replaces the key records both entries, so that filtering
        // on `connection.key_replaced` finds every key change; an empty PATCH (it still
        // stamps `updated_at`) records `connection.updated` with no fields.
        if edited || !replaced_key {
            let (was, now) = edits(&before, &updated);
            self.audited(
                who,
                id,
                AuditAction::ConnectionUpdated,
                AuditOutcome::Succeeded,
                |e| {
                    e.before = Some(was);
                    e.after = Some(now);
                },
            )
            .await?;
        }
        if replaced_key {
            self.audited(
                who,
                id,
                AuditAction::ConnectionKeyReplaced,
                AuditOutcome::Succeeded,
                |e| {
                    // Only the hint the API shows; never the key.
                    e.before = Some(serde_json::json!({ "key_hint": before.key_hint }));
                    e.after = Some(serde_json::json!({ "key_hint": updated.key_hint }));
                },
            )
            .await?;
        }
        Ok(updated)
    }

    /// Deletes a connection and its sealed key, unless grants on it are live: access given
    /// through a connection must stay revocable and on record. Grant records are kept.
    /// Requires `connections:write`.
    pub async fn delete(&self, who: &Principal, id: ConnectionId) -> Result<(), AppError> {
        who.require(Scope::ConnectionsWrite)?;
        // Read first: the entry outlives the row and should say what was deleted.
        let before = self.managed(who, id).await?;
        match self
            .store
            .delete_connection(id)
            .await
            .map_err(not_found(id))?
        {
            ConnectionDelete::Deleted => {}
            ConnectionDelete::LiveGrants(grants) => {
                let shown: Vec<String> = grants.iter().take(20).map(ToString::to_string).collect();
                let more = grants.len().saturating_sub(shown.len());
                return Err(AppError::new(
                    ErrorCode::ConnectionHasLiveGrants,
                    format!(
                        "connection {id} has {} live grant(s): {}{}; revoke them first, or \
                         delete with ?revoke_grants=true to revoke them and then delete",
                        grants.len(),
                        shown.join(", "),
                        if more > 0 {
                            format!(" and {more} more")
                        } else {
                            String::new()
                        }
                    ),
                ));
            }
        }
        tracing::info!(connection_id = %id, by = %who.subject, "connection deleted");
        self.audited(
            who,
            id,
            AuditAction::ConnectionDeleted,
            AuditOutcome::Succeeded,
            |e| e.before = Some(described(&before)),
        )
        .await
    }

    /// Checks that `who` may delete connection `id` (which exists), before anything else is
    /// done towards the delete.
    pub async fn get_for_delete(
        &self,
        who: &Principal,
        id: ConnectionId,
    ) -> Result<Connection, AppError> {
        who.require(Scope::ConnectionsWrite)?;
        self.managed(who, id).await
    }

    /// Tests a saved connection with its stored key and stores the report.
    /// Requires `connections:write` (it uses the secret and records a result).
    pub async fn test(&self, who: &Principal, id: ConnectionId) -> Result<TestReport, AppError> {
        who.require(Scope::ConnectionsWrite)?;
        let connection = self.managed(who, id).await?;
        let stored = self.store.sealed_key(id).await.map_err(not_found(id))?;
        super::clients::still_allowed(&self.allowed_base_urls, id, &stored.base_url)?;
        let key = self
            .keys
            .open(id, &stored.base_url, &stored.sealed)
            .map_err(|e| crypto_failure(id, e))?;
        // The pinned organization, once there is one, is what the key must reach.
        let expected = connection
            .organization_id
            .clone()
            .or_else(|| connection.expected_organization_id.clone());
        let report = self.prober.run(&stored.base_url, &key, expected).await;
        self.store
            .save_test_report(id, &report)
            .await
            .map_err(not_found(id))?;
        // A test that reached the right organization pins it and lets the connection be used.
        if report.status != OverallStatus::Failed
            && report.organization_matches != Some(false)
            && let Some(org) = &report.organization_id
        {
            self.store
                .pin_organization(id, org, true)
                .await
                .map_err(not_found(id))?;
        }
        tracing::info!(connection_id = %id, by = %who.subject, status = ?report.status, "connection tested");
        // `degraded` is a test that ran and found missing capabilities: it succeeded.
        let outcome = match report.status {
            OverallStatus::Failed => AuditOutcome::Failed,
            OverallStatus::Ok | OverallStatus::Degraded => AuditOutcome::Succeeded,
        };
        self.audited(who, id, AuditAction::ConnectionTested, outcome, |e| {
            e.detail = Some(serde_json::json!({
                "status": report.status,
                "summary": report.summary,
                "organization_id": report.organization_id,
                "organization_matches": report.organization_matches,
            }));
        })
        .await?;
        Ok(report)
    }

    /// Tests a key without storing anything. Requires `connections:write`.
    pub async fn test_key(
        &self,
        who: &Principal,
        input: KeyTestInput,
    ) -> Result<TestReport, AppError> {
        who.require(Scope::ConnectionsWrite)?;
        let mut checks = Checks::default();
        let target = self.key_target(
            &mut checks,
            input.admin_key,
            input.expected_organization_id.as_deref(),
            input.base_url.as_deref(),
        )?;
        let Some(KeyTarget {
            key,
            expected_organization_id: expected,
            base_url,
        }) = target
        else {
            return Err(checks.into_error());
        };
        Ok(self.prober.run(&base_url, key.secret(), expected).await)
    }
}

/// A connection as an audit entry describes it: what the API shows, never the key.
fn described(c: &Connection) -> serde_json::Value {
    serde_json::json!({
        "name": c.name,
        "base_url": c.base_url.as_str(),
        "expected_organization_id": c.expected_organization_id,
        "key_hint": c.key_hint,
    })
}

/// The fields an update changed, before and after (key aside: it has its own entry).
fn edits(before: &Connection, after: &Connection) -> (serde_json::Value, serde_json::Value) {
    let mut was = serde_json::Map::new();
    let mut now = serde_json::Map::new();
    let mut field = |name: &str, b: serde_json::Value, a: serde_json::Value| {
        if b != a {
            was.insert(name.to_owned(), b);
            now.insert(name.to_owned(), a);
        }
    };
    field(
        "name",
        before.name.clone().into(),
        after.name.clone().into(),
    );
    field(
        "base_url",
        before.base_url.as_str().into(),
        after.base_url.as_str().into(),
    );
    field(
        "expected_organization_id",
        before.expected_organization_id.clone().into(),
        after.expected_organization_id.clone().into(),
    );
    (was.into(), now.into())
}

fn name_conflict(e: StoreError) -> AppError {
    match e {
        StoreError::Conflict(_) => AppError::new(
            ErrorCode::ConnectionNameTaken,
            "another connection already has this name; pick another or update that one",
        ),
        other => other.into(),
    }
}
