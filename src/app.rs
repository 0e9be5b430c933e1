//! Application wiring: building the [`AppState`] from a [`Config`], and serving on a bound
//! listener until a shutdown future resolves (so tests bind port 0).

use std::future::Future;
use std::sync::Arc;

use crate::service::policy::PolicyGate;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::auth::JwtVerifier;
use crate::config::Config;
use crate::http::AppState;
use crate::http::limits::Limits;
use crate::http::{self, HttpSettings};
use crate::openai::ClientConfig;
use crate::service::idempotency::IdempotencyService;
use crate::service::{
    AccessService, AuditService, ChangesService, ConnectionService, GrantService, GrantSettings,
    InventoryService, OffboardingService, OpenAiClients, Prober, Schedule, SyncSettings,
};
use crate::store::{self, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("authentication: {0}")]
    Auth(#[from] crate::auth::AuthError),
}

pub struct App {
    pub router: axum::Router,
    pub state: AppState,
    /// Scheduled syncs, when configured.
    pub schedule: Option<Schedule>,
}

impl App {
    /// Starts the sync scheduler in the background, if one is configured. The task ends with
    /// the runtime; a sync it started and that is cut off is taken over after its lease.
    pub fn spawn_scheduler(&self) -> Option<tokio::task::JoinHandle<()>> {
        let schedule = self.schedule?;
        Some(tokio::spawn(
            self.state.inventory.clone().run_schedule(schedule),
        ))
    }

    /// Starts the grant worker (expiry, crash reconciliation, invite polling) and the
    /// offboarding worker (resuming interrupted offboardings) unless the grant tick is zero.
    /// Every replica may run it: grants are claimed before they are touched.
    pub fn spawn_grant_worker(&self) -> Option<tokio::task::JoinHandle<()>> {
        let grants = self.state.grants.clone();
        let tick = grants.tick();
        if tick.is_zero() {
            return None;
        }
        let offboarding = self.state.offboarding.clone();
        Some(tokio::spawn(async move {
            tokio::join!(grants.run_worker(), offboarding.run_worker(tick));
        }))
    }
}

/// The OpenAI client settings the service uses for a configuration.
pub fn openai_client_config(config: &Config) -> ClientConfig {
    let mut client = ClientConfig {
        connect_timeout: config.openai_connect_timeout,
        request_timeout: config.openai_request_timeout,
        rate: config.openai_rate.clone(),
        ..ClientConfig::default()
    };
    client.retry.max_retries = config.openai_max_retries;
    client
}

/// Opens and (unless `OG_MIGRATE=false`) migrates the store, then wires everything. The key
/// ring moves into the state.
pub async fn build(config: Config) -> Result<App, StartError> {
    let store = store::connect(&config.database_url).await?;
    if config.migrate {
        store.migrate().await?;
    }
    let upgraded =
        crate::service::rekey::upgrade_bindings(store.as_ref(), &config.key_ring).await?;
    if upgraded.resealed > 0 || !upgraded.failed.is_empty() {
        tracing::info!(
            resealed = upgraded.resealed,
            failed = upgraded.failed.len(),
            "admin keys re-sealed with their base URL in the associated data"
        );
    }
    build_with_store(config, store)
}

/// Wires everything around an already opened, migrated store.
pub fn build_with_store(config: Config, store: Arc<dyn Store>) -> Result<App, StartError> {
    let auth = Arc::new(JwtVerifier::new(&config.jwt)?);
    let prober = Prober::new(openai_client_config(&config))
        .checks_permission_first(config.openai_checks_permission_first);
    let settings = HttpSettings {
        request_timeout: config.request_timeout,
        body_limit_bytes: config.body_limit_bytes,
        cors_allowed_origins: config.cors_allowed_origins.clone(),
    };
    let sync = SyncSettings {
        client: openai_client_config(&config),
        cost_days: config.sync_cost_days,
        full_every: config.sync_full_every,
        user_roles: config.sync_user_roles,
        ..SyncSettings::default()
    };
    // Look for due connections every 30 s, or more often with a short interval (tests).
    let schedule = (!config.sync_interval.is_zero()).then(|| Schedule {
        interval: config.sync_interval,
        tick: (config.sync_interval / 10).clamp(Duration::from_millis(50), Duration::from_secs(30)),
    });
    let Config {
        key_ring,
        allowed_base_urls,
        grant_tick,
        grant_lease,
        grant_lock_wait,
        grant_invite_poll,
        offboarding_wait,
        idempotency_ttl,
        limits,
        policy,
        ..
    } = config;
    let key_ring = Arc::new(key_ring);
    let connections = ConnectionService::new(
        store.clone(),
        key_ring.clone(),
        allowed_base_urls.clone(),
        prober,
    )
    .with_policy(policy.clone());
    let clients = OpenAiClients::new(
        store.clone(),
        key_ring,
        sync.client.clone(),
        allowed_base_urls,
    );
    let inventory =
        InventoryService::new(store.clone(), clients.clone(), sync).with_policy(policy.clone());
    let changes = ChangesService::new(store.clone()).with_policy(policy.clone());
    let access = AccessService::new(store.clone()).with_policy(policy.clone());
    let grant_settings = GrantSettings {
        lease: grant_lease,
        lock_wait: grant_lock_wait,
        tick: grant_tick,
        invite_poll: grant_invite_poll,
        ..GrantSettings::default()
    };
    let grants = GrantService::new(store.clone(), clients.clone(), grant_settings);
    let audit = AuditService::new(store.clone()).with_policy(policy.clone(), store.clone());
    // The offboarding is authorized whole; the grants it revokes go through an unpoliced
    // grant service.
    let offboarding = OffboardingService::new(
        store.clone(),
        clients,
        grants.clone(),
        audit.clone(),
        offboarding_wait,
    )
    .with_policy(policy.clone());
    let grants = grants.with_policy(policy.clone());
    let state = AppState {
        idempotency: IdempotencyService::new(
            store.clone(),
            idempotency_ttl,
            grant_lock_wait,
            grant_lease,
        ),
        limits: Arc::new(Limits::new(limits)),
        policy,
        offboarding,
        access,
        audit,
        grants,
        store,
        auth,
        connections,
        inventory,
        changes,
    };
    let router = http::router(state.clone(), &settings);
    Ok(App {
        router,
        state,
        schedule,
    })
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests.
/// Handlers see the peer address (`ConnectInfo`), which limits unauthenticated callers.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Resolves on Ctrl-C or SIGTERM.
/// Reads the policy file again on every SIGHUP; a file that is not valid is logged and the
/// policy in force stays.
pub fn reload_policy_on_sighup(policy: PolicyGate) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).ok()?;
    Some(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match policy.reload() {
                Ok(rules) => tracing::info!(rules, "policy reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "policy reload refused; the previous policy stays in force")
                }
            }
        }
    }))
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; draining requests");
}
