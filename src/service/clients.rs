//! One OpenAI client per connection, shared by the use cases that call OpenAI (syncs and
//! grants), so the rate budget a client learned from 429s carries over between them.
//!
//! Every client is built under the same checks: the stored base URL is still allowed, the
//! connection needs no new test, the key opens only for that base URL, and every answer must
//! come from the organization the connection is pinned to (learned and stored on the first
//! answer when nothing pins it yet).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use url::Url;

use super::connections::{crypto_failure, not_found};
use crate::crypto::KeyRing;
use crate::domain::{Connection, ConnectionId, LearnedRate};
use crate::error::{AppError, ErrorCode};
use crate::openai::{Client, ClientConfig, LearnedLimit, OrganizationPin};
use crate::store::ConnectionStore;

/// A connection's client and the connection version (`updated_at`) it was built for.
type CachedClient = (DateTime<Utc>, Client);

/// Builds and caches the clients.
#[derive(Clone)]
pub struct OpenAiClients {
    store: Arc<dyn ConnectionStore>,
    keys: Arc<KeyRing>,
    config: ClientConfig,
    allowed_base_urls: Arc<Vec<Url>>,
    cache: Arc<Mutex<HashMap<ConnectionId, CachedClient>>>,
}

impl OpenAiClients {
    /// Clients built with `config`, opening keys with `keys`, for connections whose base URL
    /// is one of `allowed_base_urls`.
    pub fn new(
        store: Arc<dyn ConnectionStore>,
        keys: Arc<KeyRing>,
        config: ClientConfig,
        allowed_base_urls: Vec<Url>,
    ) -> Self {
        Self {
            store,
            keys,
            config,
            allowed_base_urls: Arc::new(allowed_base_urls),
            cache: Arc::default(),
        }
    }

    /// The connection's client: the cached one unless the connection changed since (a new
    /// key or base URL changes `updated_at`).
    pub async fn client(&self, connection: &Connection) -> Result<Client, AppError> {
        let id = connection.id;
        if connection.test_required {
            return Err(AppError::new(
                ErrorCode::ConnectionTestRequired,
                format!(
                    "connection {id} got a new admin key or base URL and has not passed a test \
                     since; run POST /v1/connections/{id}/test (it must reach organization {})",
                    pinned_or_any(connection)
                ),
            ));
        }
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((version, client)) = cache.get(&id)
                && *version == connection.updated_at
            {
                return Ok(client.clone());
            }
        }
        // The base URL the key was sealed for, read with it: the key opens for no other.
        let stored = self.store.sealed_key(id).await.map_err(not_found(id))?;
        // Checked each time a client is built, not only when the URL was saved: an operator
        // who takes a URL off the allowlist stops every key from being sent there.
        still_allowed(&self.allowed_base_urls, id, &stored.base_url)?;
        let key = self
            .keys
            .open(id, &stored.base_url, &stored.sealed)
            .map_err(|e| crypto_failure(id, e))?;
        let pin = match connection
            .organization_id
            .clone()
            .or_else(|| connection.expected_organization_id.clone())
        {
            Some(org) => OrganizationPin::fixed(org),
            None => {
                let store = self.store.clone();
                OrganizationPin::learn(move |org: &str| {
                    let (store, org) = (store.clone(), org.to_owned());
                    tokio::spawn(async move {
                        match store.pin_organization(id, &org, false).await {
                            Ok(true) => {
                                tracing::info!(connection_id = %id, organization_id = %org, "connection pinned to its organization");
                            }
                            Ok(false) => {
                                tracing::warn!(connection_id = %id, organization_id = %org, "connection was pinned to another organization meanwhile");
                            }
                            Err(e) => {
                                tracing::warn!(connection_id = %id, error = %e, "could not store the organization pin");
                            }
                        }
                    });
                })
            }
        };
        let client = Client::new(stored.base_url, key, self.config.clone())
            .map_err(|e| {
                AppError::new(
                    ErrorCode::ValidationFailed,
                    format!("the connection cannot be used: {}", e.message),
                )
            })?
            .pinned(pin);
        self.recall(id, &client).await;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(id, (connection.updated_at, client.clone()));
        Ok(client)
    }
}

impl OpenAiClients {
    /// Gives `client` the rates learned for the connection before (by this process before a
    /// restart, or by another replica). A store failure only costs the head start.
    pub async fn recall(&self, id: ConnectionId, client: &Client) {
        match self.store.learned_rates(id).await {
            Ok(rates) => {
                let limits: Vec<LearnedLimit> = rates.into_iter().map(limit).collect();
                client.seed_limits(&limits);
            }
            Err(e) => {
                tracing::warn!(connection_id = %id, error = %e, "could not read the learned OpenAI rates");
            }
        }
    }

    /// Keeps what `client`'s budget learned, for restarts and the other replicas.
    pub async fn remember(&self, id: ConnectionId, client: &Client) {
        let rates: Vec<LearnedRate> = client.learned_limits().into_iter().map(rate).collect();
        if let Err(e) = self.store.save_learned_rates(id, &rates).await {
            tracing::warn!(connection_id = %id, error = %e, "could not keep the learned OpenAI rates");
        }
    }
}

fn limit(r: LearnedRate) -> LearnedLimit {
    LearnedLimit {
        scope: r.scope,
        per_path: r.per_path,
        requests: r.requests,
        window: std::time::Duration::from_millis(u64::try_from(r.window_ms).unwrap_or(0)),
        throttled: 0,
        learned_at_ms: r.learned_at_ms,
    }
}

fn rate(l: LearnedLimit) -> LearnedRate {
    LearnedRate {
        scope: l.scope,
        per_path: l.per_path,
        requests: l.requests,
        window_ms: i64::try_from(l.window.as_millis()).unwrap_or(i64::MAX),
        learned_at_ms: l.learned_at_ms,
    }
}

fn pinned_or_any(c: &Connection) -> &str {
    c.organization_id
        .as_deref()
        .or(c.expected_organization_id.as_deref())
        .unwrap_or("of its first test")
}

/// A stored base URL must still be on the allowlist when its key is about to be used.
pub(super) fn still_allowed(allowed: &[Url], id: ConnectionId, url: &Url) -> Result<(), AppError> {
    if allowed.contains(url) {
        return Ok(());
    }
    Err(AppError::new(
        ErrorCode::BaseUrlNotAllowed,
        format!(
            "connection {id} uses base URL {url}, which is no longer in \
             OG_OPENAI_ALLOWED_BASE_URLS; ask an operator, or update the connection"
        ),
    ))
}
