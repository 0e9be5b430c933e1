//! Test scaffolding: fresh databases per test, the app on port 0, the sandbox, tokens.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openai_governor::app;
use openai_governor::auth::{Scope, mint_hs256};
use openai_governor::config::{Config, JwtKeys};
use openai_governor::store::{self, Backend, Store};
use openai_governor_sandbox::{self as sandbox, SandboxConfig, SandboxHandle};
use secrecy::SecretString;
use sqlx::Connection as _;

/// A fresh, migrated database that disappears with the value.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// The SQLite file, to look inside it.
    pub file: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
    pg_admin: Option<(String, String)>,
}

/// The Postgres server for tests, if configured. Under `CI=true`, a missing one fails the test.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but TEST_POSTGRES_URL is not set: Postgres tests would be skipped");
            }
            eprintln!("TEST_POSTGRES_URL not set: skipping the Postgres variant");
            None
        }
    }
}

impl TestDb {
    /// A database of the given backend; `None` when Postgres is not configured (see above).
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let file = dir.path().join("governor.db");
                Some(TestDb {
                    backend,
                    url: format!("sqlite://{}", file.display()),
                    file: Some(file),
                    _dir: Some(dir),
                    pg_admin: None,
                })
            }
            Backend::Postgres => {
                let admin = postgres_admin_url()?;
                let name = format!("og_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("connect to TEST_POSTGRES_URL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let mut url = url::Url::parse(&admin).expect("TEST_POSTGRES_URL is a URL");
                url.set_path(&name);
                Some(TestDb {
                    backend,
                    url: url.to_string(),
                    file: None,
                    _dir: None,
                    pg_admin: Some((admin, name)),
                })
            }
        }
    }

    /// Opens and migrates the store.
    pub async fn store(&self) -> Arc<dyn Store> {
        let store = store::connect(&self.url).await.expect("open store");
        store.migrate().await.expect("migrate");
        store
    }

    /// Every byte the database holds about connections, for secret scans.
    pub async fn dump(&self) -> Vec<u8> {
        match self.backend {
            Backend::Sqlite => {
                let file = self.file.as_ref().expect("sqlite file");
                let mut bytes = std::fs::read(file).unwrap_or_default();
                for suffix in ["-wal", "-shm"] {
                    let mut p = file.clone().into_os_string();
                    p.push(suffix);
                    bytes.extend(std::fs::read(PathBuf::from(p)).unwrap_or_default());
                }
                bytes
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("connect");
                let rows: Vec<(String,)> =
                    sqlx::query_as("SELECT row_to_json(c)::text FROM connections c")
                        .fetch_all(&mut conn)
                        .await
                        .expect("dump");
                rows.into_iter().flat_map(|(r,)| r.into_bytes()).collect()
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_admin.take() {
            // Drop runs outside any runtime guarantee: use a thread with its own runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await
                    .ok()
                })
            })
            .join();
        }
    }
}

/// A closed port on loopback, to provoke connection failures.
pub const DEAD_BASE_URL: &str = "http://127.0.0.1:9/v1";

/// The service on port 0 with a sandbox beside it.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub sandbox: SandboxHandle,
    pub db: TestDb,
    pub jwt_secret: SecretString,
    /// The service's state (to run the grant worker's pass by hand).
    pub state: openai_governor::http::AppState,
    /// What the service answered, checked against `openapi/openapi.json` on drop.
    pub served: crate::served::Served,
    _server: tokio::task::JoinHandle<()>,
}

/// A change to the configuration a test makes (see [`Options::configure`]).
pub type Configure = Box<dyn FnOnce(&mut Config) + Send>;

/// Options for [`TestApp::spawn_with`].
pub struct Options {
    pub sandbox: SandboxConfig,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub openai_request_timeout: Duration,
    /// `OG_OPENAI_CHECKS_PERMISSION_FIRST`. On by default here: the sandbox is known to check
    /// scopes first (unless its `validation_before_permission` fault is set); production's
    /// default is off.
    pub openai_checks_permission_first: bool,
    pub keys: Option<JwtKeys>,
    /// Scheduled syncs every this long (zero = off, the default).
    pub sync_interval: Duration,
    /// `OG_SYNC_USER_ROLES`.
    pub sync_user_roles: bool,
    /// `OG_GRANT_TICK` (zero = the worker is not started; tests call `work_once`).
    pub grant_tick: Duration,
    /// `OG_GRANT_LEASE`.
    pub grant_lease: Duration,
    /// `OG_GRANT_LOCK_WAIT`.
    pub grant_lock_wait: Duration,
    /// Base URLs allowed beside the sandbox's (e.g. a second sandbox).
    pub extra_base_urls: Vec<String>,
    /// `OG_OFFBOARDING_WAIT`.
    pub offboarding_wait: Duration,
    /// Any other change to the configuration, applied last.
    pub configure: Option<Configure>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sandbox: SandboxConfig::default(),
            issuer: None,
            audience: None,
            openai_request_timeout: Duration::from_secs(5),
            openai_checks_permission_first: true,
            keys: None,
            sync_interval: Duration::ZERO,
            sync_user_roles: false,
            grant_tick: Duration::ZERO,
            grant_lease: Duration::from_secs(120),
            grant_lock_wait: Duration::from_secs(10),
            extra_base_urls: Vec::new(),
            offboarding_wait: Duration::from_secs(10),
            configure: None,
        }
    }
}

pub fn random_secret() -> SecretString {
    SecretString::from(format!("test-secret-{}", uuid::Uuid::new_v4().simple()))
}

impl TestApp {
    /// The default app on `backend`; `None` when that backend is not available.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, Options::default()).await
    }

    /// An app with options.
    pub async fn spawn_with(backend: Backend, options: Options) -> Option<TestApp> {
        let db = TestDb::new(backend).await?;
        let store = db.store().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sandbox");
        let sandbox = sandbox::start(options.sandbox, listener)
            .await
            .expect("start sandbox");
        // Every answer the sandbox gives in this test is checked against OpenAI's spec on drop.
        sandbox
            .state()
            .start_recording(crate::contract::RECORD_BUDGET);
        let jwt_secret = random_secret();
        let sandbox_url = sandbox.base_url().to_string();
        let mut allowed = vec![sandbox_url.as_str(), DEAD_BASE_URL];
        allowed.extend(options.extra_base_urls.iter().map(String::as_str));
        let mut config = Config::ephemeral(&db.url, jwt_secret.clone(), &allowed).expect("config");
        if let Some(keys) = options.keys {
            config.jwt.keys = keys;
        }
        config.jwt.issuer = options.issuer;
        config.jwt.audience = options.audience;
        config.jwt.leeway = Duration::from_secs(0);
        config.openai_connect_timeout = Duration::from_secs(2);
        config.openai_request_timeout = options.openai_request_timeout;
        config.openai_checks_permission_first = options.openai_checks_permission_first;
        // Two quick retries (250 ms, 500 ms): failures show without waiting out the backoff.
        config.openai_max_retries = 2;
        config.sync_interval = options.sync_interval;
        config.sync_user_roles = options.sync_user_roles;
        config.body_limit_bytes = 16 * 1024;
        config.grant_tick = options.grant_tick;
        config.grant_lease = options.grant_lease;
        config.grant_lock_wait = options.grant_lock_wait;
        config.grant_invite_poll = Duration::ZERO;
        config.offboarding_wait = options.offboarding_wait;
        if let Some(configure) = options.configure {
            configure(&mut config);
        }
        let built = app::build_with_store(config, store.clone()).expect("build app");
        built.spawn_scheduler();
        built.spawn_grant_worker();
        let state = built.state.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind app");
        let addr = listener.local_addr().expect("addr");
        let served = crate::served::Served::default();
        let router = served.wrap(built.router);
        let server = tokio::spawn(async move {
            let _ = app::serve(listener, router, std::future::pending()).await;
        });
        Some(TestApp {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            sandbox,
            db,
            jwt_secret,
            state,
            served,
            _server: server,
        })
    }

    /// A token for `sub` with `scopes`, valid for an hour.
    pub fn token(&self, sub: &str, scopes: &[Scope]) -> String {
        mint_hs256(
            &self.jwt_secret,
            sub,
            scopes,
            Duration::from_secs(3600),
            None,
            None,
        )
        .expect("mint")
    }

    /// A token with every scope.
    pub fn admin_token(&self) -> String {
        self.token("admin@test", &Scope::ALL)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request with a token and, if given, a JSON body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("request")
    }

    /// POST JSON with a token.
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    /// PATCH JSON with a token.
    pub async fn patch(
        &self,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.send(reqwest::Method::PATCH, path, token, Some(body))
            .await
    }

    /// DELETE with a token.
    pub async fn delete(&self, path: &str, token: &str) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, path, token, None).await
    }

    /// Creates a connection to the sandbox with `key`; returns its JSON.
    pub async fn create_connection(&self, name: &str, key: &str) -> serde_json::Value {
        let res = self
            .post(
                "/v1/connections",
                &self.admin_token(),
                serde_json::json!({
                    "name": name,
                    "admin_key": key,
                    "base_url": self.sandbox.base_url().as_str(),
                }),
            )
            .await;
        assert_eq!(
            res.status(),
            201,
            "create failed: {}",
            res.text().await.unwrap_or_default()
        );
        res.json().await.expect("json")
    }
}

impl Drop for TestApp {
    /// The contract checks: every `/v1` answer the sandbox gave during the test must validate
    /// against OpenAI's published schemas, and every answer the service gave against ours
    /// (skipped when the test is already failing).
    fn drop(&mut self) {
        let recording = self.sandbox.state().stop_recording();
        if !std::thread::panicking() {
            crate::contract::assert_recording(&recording);
            self.served.assert_conforms();
        }
    }
}

/// Asserts a problem response: status, `code`, content type, request id; returns the body.
/// `value` percent-encoded for a query string (cursors hold spaces and `@`).
pub fn query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

pub async fn assert_problem(res: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(res.status().as_u16(), status, "status");
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(ct, "application/problem+json", "content type");
    let header_id = res
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: serde_json::Value = res.json().await.expect("problem json");
    assert_eq!(body["code"], code, "code in {body}");
    assert_eq!(body["status"], status, "status in {body}");
    assert_eq!(body["type"], format!("urn:openai-governor:problem:{code}"));
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "detail in {body}"
    );
    assert!(header_id.is_some(), "x-request-id header");
    assert_eq!(
        body["request_id"].as_str(),
        header_id.as_deref(),
        "request id in body"
    );
    body
}

/// Runs a test body once per backend.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(openai_governor::store::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(openai_governor::store::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A sandbox on port 0 with `config`, for tests of the OpenAI client; like [`TestApp`], every
/// answer it gives is checked against OpenAI's published schemas when it is dropped.
pub async fn start_sandbox(config: SandboxConfig) -> CheckedSandbox {
    CheckedSandbox(crate::contract::recording_sandbox(config).await)
}

/// A sandbox whose answers must all match the spec (checked on drop, unless already failing).
pub struct CheckedSandbox(SandboxHandle);

impl std::ops::Deref for CheckedSandbox {
    type Target = SandboxHandle;
    fn deref(&self) -> &SandboxHandle {
        &self.0
    }
}

impl Drop for CheckedSandbox {
    fn drop(&mut self) {
        let recording = self.0.state().stop_recording();
        if !std::thread::panicking() {
            crate::contract::assert_recording(&recording);
        }
    }
}

/// Quick retries for tests: `max_retries` attempts after the first, 5-50 ms apart.
pub fn quick_retries(max_retries: u32) -> openai_governor::openai::RetryPolicy {
    openai_governor::openai::RetryPolicy {
        max_retries,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
        factor: 2.0,
        jitter: true,
        max_retry_after: Duration::from_secs(5),
        max_rate_limited_retries: max_retries,
    }
}

/// Client settings for tests: quick retries, no rate budget, a 5 s request timeout.
pub fn test_client_config() -> openai_governor::openai::ClientConfig {
    openai_governor::openai::ClientConfig {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        retry: quick_retries(3),
        rate: openai_governor::openai::RateBudgetConfig::unlimited(),
        ..Default::default()
    }
}

/// A client of `sandbox` with the key of `profile`.
pub fn openai_client(
    sandbox: &SandboxHandle,
    profile: sandbox::KeyProfile,
    config: openai_governor::openai::ClientConfig,
) -> openai_governor::openai::Client {
    openai_governor::openai::Client::new(
        sandbox.base_url(),
        SecretString::from(sandbox.key(profile).to_owned()),
        config,
    )
    .expect("client")
}

/// A connection to the app's sandbox with every scope, synced once so that the inventory has
/// a snapshot (grants and offboarding write through to it).
pub async fn synced_connection(app: &TestApp, name: &str) -> String {
    let c = app
        .create_connection(name, app.sandbox.key(sandbox::KeyProfile::All))
        .await;
    let id = c["id"].as_str().expect("connection id").to_owned();
    crate::inventory::sync(app, &id).await;
    id
}

/// A new project in the sandbox, created through the API (its creator, the key's owner, is
/// its owner); returns its id.
pub async fn sandbox_project(sandbox: &SandboxHandle, name: &str) -> String {
    let client = openai_client(sandbox, sandbox::KeyProfile::All, test_client_config());
    let p = client
        .create_project(&openai_governor::openai::CreateProject {
            name: name.to_owned(),
            ..Default::default()
        })
        .await
        .expect("create project");
    p.data.id
}

/// A new organization member, as if added in the dashboard; returns the user id.
pub fn sandbox_person(sandbox: &SandboxHandle, email: &str, org_role: &str) -> String {
    sandbox.state().write(|org| {
        let now = org.now();
        org.add_user(email, email, org_role, now).expect("add user")
    })
}
