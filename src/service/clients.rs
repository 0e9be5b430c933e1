//! One OpenAI client per connection, shared by the use cases that call OpenAI (syncs and
//! grants), so the rate budget a client learned from 429s carries over between them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::connections::{crypto_failure, not_found};
use crate::crypto::KeyRing;
use crate::domain::{Connection, ConnectionId};
use crate::error::{AppError, ErrorCode};
use crate::openai::{Client, ClientConfig};
use crate::store::Store;

/// A connection's client and the connection version (`updated_at`) it was built for.
type CachedClient = (DateTime<Utc>, Client);

/// Builds and caches the clients.
#[derive(Clone)]
pub struct OpenAiClients {
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    config: ClientConfig,
    cache: Arc<Mutex<HashMap<ConnectionId, CachedClient>>>,
}

impl OpenAiClients {
    /// Clients built with `config`, opening keys with `keys`.
    pub fn new(store: Arc<dyn Store>, keys: Arc<KeyRing>, config: ClientConfig) -> Self {
        Self {
            store,
            keys,
            config,
            cache: Arc::default(),
        }
    }

    /// The connection's client: the cached one unless the connection changed since (a new
    /// key or base URL changes `updated_at`).
    pub async fn client(&self, connection: &Connection) -> Result<Client, AppError> {
        let id = connection.id;
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((version, client)) = cache.get(&id)
                && *version == connection.updated_at
            {
                return Ok(client.clone());
            }
        }
        let sealed = self.store.sealed_key(id).await.map_err(not_found(id))?;
        let key = self
            .keys
            .open(id, &sealed)
            .map_err(|e| crypto_failure(id, e))?;
        let client =
            Client::new(connection.base_url.clone(), key, self.config.clone()).map_err(|e| {
                AppError::new(
                    ErrorCode::ValidationFailed,
                    format!("the connection cannot be used: {}", e.message),
                )
            })?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(id, (connection.updated_at, client.clone()));
        Ok(client)
    }
}
