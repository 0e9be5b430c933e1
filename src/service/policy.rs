//! The operator's policy as the use cases ask it: the file loaded at start (and again on
//! reload), the caller taken from the verified token, refusals as `policy_denied` problems.
//! Without a policy file every caller with the scope may do anything (as before policies),
//! and [`PolicyGate::enforced`] says so for `/readyz`.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::auth::Principal;
use crate::domain::policy::{
    self, Action, Caller, Denied, Named, Policy, PolicyError, Rule, Scope,
};
use crate::domain::{Connection, ConnectionId};
use crate::error::{AppError, ErrorCode};
use crate::store::{AccessStore, ConnectionStore};

/// The policy in force, shared by every service of the process.
#[derive(Clone, Default)]
pub struct PolicyGate {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    path: Option<PathBuf>,
    current: RwLock<Option<Arc<Policy>>>,
}

/// What the policy said yes with: the deciding rule (`None` without a policy file).
pub type Allowed = Option<Rule>;

/// Reads and checks a policy file.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
        line: None,
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    policy::parse(&text)
}

impl PolicyGate {
    /// No policy: everything the token's scopes allow.
    pub fn open() -> Self {
        Self::default()
    }

    /// The policy of `path`, refused whole if the file is not valid.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let policy = load(path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: Some(path.to_owned()),
                current: RwLock::new(Some(Arc::new(policy))),
            }),
        })
    }

    /// A policy given whole (tests, embedding).
    pub fn with(policy: Policy) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: None,
                current: RwLock::new(Some(Arc::new(policy))),
            }),
        }
    }

    /// Reads the file again; a file that is not valid leaves the policy in force unchanged.
    pub fn reload(&self) -> Result<usize, PolicyError> {
        let Some(path) = &self.inner.path else {
            return Ok(0);
        };
        let policy = load(path)?;
        let rules = policy.rules.len();
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(policy));
        Ok(rules)
    }

    /// Whether a policy is in force.
    pub fn enforced(&self) -> bool {
        self.current().is_some()
    }

    fn current(&self) -> Option<Arc<Policy>> {
        self.inner
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The rule allowing `scope` for `who`, or a `policy_denied` refusal.
    pub fn decide(&self, who: &Principal, scope: &Scope<'_>) -> Result<Allowed, AppError> {
        self.check(who, scope).map_err(denied)
    }

    /// [`Self::decide`] with the refusal as the domain states it (to audit it first).
    pub fn check(&self, who: &Principal, scope: &Scope<'_>) -> Result<Allowed, Denied> {
        let Some(policy) = self.current() else {
            return Ok(None);
        };
        policy.decide(&caller(who), scope).map(|r| Some(r.clone()))
    }

    /// Whether `who` may do `action` on `connection` at all: what scoped reads filter by.
    pub fn allows(&self, who: &Principal, action: Action, connection: Named<'_>) -> bool {
        self.current()
            .is_none_or(|p| p.allows(&caller(who), action, connection))
    }

    /// Whether `who` may do `action` on every connection (entries that name none).
    pub fn allows_everywhere(&self, who: &Principal, action: Action) -> bool {
        self.current()
            .is_none_or(|p| p.allows_everywhere(&caller(who), action))
    }
}

impl PolicyGate {
    /// `Ok` when `who` may do `action` on `connection`, else the `policy_denied` problem.
    pub fn require_on(
        &self,
        who: &Principal,
        action: Action,
        connection: &Connection,
    ) -> Result<Allowed, AppError> {
        self.require_named(who, action, connection.id, &connection.name)
    }

    /// [`Self::require_on`] for the connection `id` named `name`.
    pub fn require_named(
        &self,
        who: &Principal,
        action: Action,
        id: ConnectionId,
        name: &str,
    ) -> Result<Allowed, AppError> {
        let id = id.to_string();
        self.decide(who, &Scope::new(action).on(named(&id, name)))
    }

    /// `Ok` when `who` may read the connection `id`: checked against the name its snapshot
    /// is held under in the read model (no database round trip on the reads portals make
    /// most; a rename or delete reaches the model at once here, within its poll elsewhere),
    /// or, without a snapshot, against the stored connection (`connection_not_found` when
    /// there is none).
    pub async fn require_read(
        &self,
        who: &Principal,
        id: ConnectionId,
        access: &dyn AccessStore,
        connections: &dyn ConnectionStore,
    ) -> Result<(), AppError> {
        match access.snapshot_name(id).await? {
            Some(name) => self.require_named(who, Action::Read, id, &name),
            None => {
                let c = connections
                    .get_connection(id)
                    .await
                    .map_err(super::connections::not_found(id))?;
                self.require_on(who, Action::Read, &c)
            }
        }
        .map(drop)
    }

    /// Whether `who` may see (`action`) the connection `id` named `name`: what lists filter by.
    pub fn sees(&self, who: &Principal, action: Action, id: ConnectionId, name: &str) -> bool {
        let id = id.to_string();
        self.allows(who, action, named(&id, name))
    }
}

/// What a list filtered by the policy needs: connection names (rules name connections by
/// name), each looked up once per read; a deleted connection is known by its id alone.
pub struct Names {
    connections: Arc<dyn ConnectionStore>,
    seen: BTreeMap<ConnectionId, String>,
}

impl Names {
    pub fn new(connections: Arc<dyn ConnectionStore>) -> Self {
        Self {
            connections,
            seen: BTreeMap::new(),
        }
    }

    /// Whether `who` may do `action` on connection `id`.
    pub async fn sees(
        &mut self,
        policy: &PolicyGate,
        who: &Principal,
        action: Action,
        id: ConnectionId,
    ) -> bool {
        if let Entry::Vacant(slot) = self.seen.entry(id) {
            let name = match self.connections.get_connection(id).await {
                Ok(c) => c.name,
                Err(_) => String::new(),
            };
            slot.insert(name);
        }
        let name = self.seen.get(&id).map(String::as_str).unwrap_or_default();
        policy.sees(who, action, id, name)
    }
}

fn named<'a>(id: &'a str, name: &'a str) -> Named<'a> {
    Named {
        id,
        name: Some(name),
    }
}

fn caller(who: &Principal) -> Caller<'_> {
    Caller {
        subject: &who.subject,
        client_id: who.client_id.as_deref(),
        groups: &who.groups,
    }
}

/// A policy refusal as the problem callers see.
pub fn denied(d: Denied) -> AppError {
    AppError {
        policy_rule: Some(d.rule),
        ..AppError::new(ErrorCode::PolicyDenied, d.message)
    }
}
