//! The sandbox: a stateful in-memory fake of OpenAI's administration API, faithful enough
//! that the official SDKs work against it (point their base URL at [`SandboxHandle::base_url`]).
//! Served under `/v1` with scoped admin keys, OpenAI's headers and error bodies; a control API
//! under `/_sandbox/` reads counters, sets faults, accepts invites and makes "dashboard"
//! changes (drift). Used by tests (port 0) and by the `openai-governor sandbox` subcommand.
//! Its own crate so that it cannot reach into the service (store, http, OpenAI client) and the
//! production build (`--no-default-features`) leaves it out.

mod admin;
mod control;
mod faults;
mod http;
mod model;
mod projects;
mod rbac;
mod record;
mod reports;
mod seed;
mod table;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

pub use faults::{Counters, EndpointCount, Faults, HoldAfterApply, PageFault, RateLimit};
pub use model::{
    Actor, KeyOwner, Org, ProjectApiKey, Refusal, SCOPE_MANAGEMENT_READ, SCOPE_MANAGEMENT_WRITE,
    SCOPE_USAGE_READ,
};
pub use record::{RecordedResponse, Recording};
pub use seed::{KeySpec, OrgShape};

use http::ApiError;

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Seed of the generated organization (same seed → same ids).
    pub seed: u64,
    pub org: OrgShape,
    pub faults: Faults,
    /// Admin keys beyond the three profile keys: (name, scopes).
    pub extra_keys: Vec<KeySpec>,
    /// Freeze the clock at this Unix time (deterministic timestamps); `None` = wall clock.
    pub now: Option<i64>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            org: OrgShape::small(),
            faults: Faults::default(),
            extra_keys: Vec::new(),
            now: None,
        }
    }
}

/// The admin-key scope sets the sandbox always issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProfile {
    All,
    ReadOnly,
    NoUsage,
    UsageOnly,
}

impl KeyProfile {
    pub const ALL: [KeyProfile; 4] = [Self::All, Self::ReadOnly, Self::NoUsage, Self::UsageOnly];

    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::ReadOnly => "read-only",
            Self::NoUsage => "no-usage",
            Self::UsageOnly => "usage-only",
        }
    }

    pub fn scopes(self) -> &'static [&'static str] {
        match self {
            Self::All => &[
                SCOPE_MANAGEMENT_READ,
                SCOPE_MANAGEMENT_WRITE,
                SCOPE_USAGE_READ,
            ],
            Self::ReadOnly => &[SCOPE_MANAGEMENT_READ, SCOPE_USAGE_READ],
            Self::NoUsage => &[SCOPE_MANAGEMENT_READ, SCOPE_MANAGEMENT_WRITE],
            Self::UsageOnly => &[SCOPE_USAGE_READ],
        }
    }
}

/// A plaintext admin key the sandbox accepts (for tests and the CLI printout only).
#[derive(Clone, PartialEq, Eq)]
pub struct SandboxKey {
    pub name: String,
    pub value: String,
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for SandboxKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxKey")
            .field("name", &self.name)
            .field("value", &"[redacted]")
            .field("scopes", &self.scopes)
            .finish()
    }
}

struct Inner {
    org: RwLock<Org>,
    faults: Mutex<faults::FaultRuntime>,
    counters: Mutex<Counters>,
    recorder: Mutex<Option<record::Recorder>>,
    org_id: String,
    shutdown: watch::Receiver<bool>,
    /// Bumped to release requests held by `hold_after_apply`; only changed under the faults lock.
    release: watch::Sender<u64>,
}

/// A shared handle on the running sandbox's state: tests inspect and change it directly.
#[derive(Clone)]
pub struct SandboxState {
    inner: Arc<Inner>,
}

impl SandboxState {
    pub fn read<R>(&self, f: impl FnOnce(&Org) -> R) -> R {
        let guard = self.inner.org.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// Changes the organization directly (no audit event unless `f` records one). Inside a
    /// dry run (a request validated for a key lacking the scope) `f` changes a throwaway copy.
    pub fn write<R>(&self, f: impl FnOnce(&mut Org) -> R) -> R {
        if DRY_RUN.try_with(|_| ()).is_ok() {
            let mut copy = self.read(Org::clone);
            return f(&mut copy);
        }
        let mut guard = self.inner.org.write().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    pub fn organization_id(&self) -> &str {
        &self.inner.org_id
    }

    pub fn faults(&self) -> Faults {
        self.lock_faults().faults.clone()
    }

    /// Replaces the faults in force (and resets their windows and page counters). Requests
    /// held by `hold_after_apply` are released: they answer 503.
    pub fn set_faults(&self, faults: Faults) {
        let mut rt = self.lock_faults();
        rt.set(faults);
        self.inner.release.send_modify(|g| *g += 1);
    }

    /// Releases the requests held by `hold_after_apply` (they answer 503); the faults stay.
    pub fn release_held(&self) {
        let _rt = self.lock_faults();
        self.inner.release.send_modify(|g| *g += 1);
    }

    pub fn counters(&self) -> Counters {
        self.inner
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn reset_counters(&self) {
        *self
            .inner
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Counters::default();
    }

    /// Accepts an invite as the invitee would; returns the new user's id.
    pub fn accept_invite(&self, invite_id: &str) -> Result<String, Refusal> {
        self.write(|org| org.accept_invite(invite_id))
    }

    pub fn expire_invite(&self, invite_id: &str) -> Result<(), Refusal> {
        self.write(|org| org.expire_invite(invite_id))
    }

    /// Starts recording every `/v1` answer (status, template, body) for contract checks,
    /// keeping at most `budget_bytes` of bodies; later answers are only counted as dropped.
    /// Restarting clears what was recorded.
    pub fn start_recording(&self, budget_bytes: usize) {
        *self.lock_recorder() = Some(record::Recorder {
            recording: Recording::default(),
            budget_left: budget_bytes,
        });
    }

    pub fn stop_recording(&self) -> Recording {
        self.lock_recorder()
            .take()
            .map(|r| r.recording)
            .unwrap_or_default()
    }

    /// Takes what was recorded so far; recording goes on (the budget is not restored).
    pub fn take_recorded(&self) -> Recording {
        self.lock_recorder()
            .as_mut()
            .map(|r| std::mem::take(&mut r.recording))
            .unwrap_or_default()
    }

    fn is_recording(&self) -> bool {
        self.lock_recorder().is_some()
    }

    fn push_recorded(&self, entry: RecordedResponse) {
        if let Some(r) = self.lock_recorder().as_mut() {
            let size = entry.body.len() + entry.path.len();
            if size <= r.budget_left {
                r.budget_left -= size;
                r.recording.responses.push(entry);
            } else {
                r.recording.dropped += 1;
            }
        }
    }

    fn lock_recorder(&self) -> MutexGuard<'_, Option<record::Recorder>> {
        self.inner
            .recorder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn lock_faults(&self) -> MutexGuard<'_, faults::FaultRuntime> {
        self.inner.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, endpoint: &str, f: impl FnOnce(&mut EndpointCount)) {
        let mut c = self
            .inner
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let entry = c.endpoints.entry(endpoint.to_owned()).or_default();
        let before = entry.requests;
        f(entry);
        let added = entry.requests - before;
        c.total += added;
    }

    async fn until_shutdown(&self) {
        let mut rx = self.inner.shutdown.clone();
        // Resolves when shutdown is signalled or the sender is gone.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// A running sandbox. Dropping it (or [`SandboxHandle::shutdown`]) stops the server.
pub struct SandboxHandle {
    state: SandboxState,
    base_url: url::Url,
    keys: Vec<SandboxKey>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxHandle")
            .field("base_url", &self.base_url.as_str())
            .field("organization_id", &self.state.organization_id())
            .finish_non_exhaustive()
    }
}

impl SandboxHandle {
    /// `http://127.0.0.1:PORT/v1`, what the OpenAI SDKs take as `base_url`.
    pub fn base_url(&self) -> url::Url {
        self.base_url.clone()
    }

    /// `http://127.0.0.1:PORT/_sandbox/`, the control API.
    pub fn control_url(&self) -> url::Url {
        let mut u = self.base_url.clone();
        u.set_path("/_sandbox/");
        u
    }

    /// The `org-...` id sent in the `openai-organization` header.
    pub fn organization_id(&self) -> &str {
        self.state.organization_id()
    }

    pub fn key(&self, profile: KeyProfile) -> &str {
        self.keys
            .iter()
            .find(|k| k.name == profile.name())
            .map_or("", |k| k.value.as_str())
    }

    pub fn keys(&self) -> &[SandboxKey] {
        &self.keys
    }

    /// Requests received by an endpoint: see [`Counters::requests`].
    pub fn request_count(&self, endpoint: &str) -> u64 {
        self.state.counters().requests(endpoint)
    }

    pub fn counters(&self) -> Counters {
        self.state.counters()
    }

    pub fn state(&self) -> &SandboxState {
        &self.state
    }

    pub async fn shutdown(mut self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Builds the organization and state without serving it (benchmarks measure seeding with it).
pub fn build_state(config: &SandboxConfig) -> (SandboxState, Vec<SandboxKey>, watch::Sender<bool>) {
    let mut specs: Vec<KeySpec> = KeyProfile::ALL
        .iter()
        .map(|p| {
            (
                p.name().to_owned(),
                p.scopes().iter().map(|s| (*s).to_owned()).collect(),
            )
        })
        .collect();
    specs.extend(config.extra_keys.iter().cloned());
    let now = config.now.unwrap_or_else(|| chrono::Utc::now().timestamp());
    let org = seed::generate(config.seed, &config.org, &specs, now, config.now.is_some());
    let keys = org
        .admin_keys
        .iter()
        .map(|k| SandboxKey {
            name: k.name.clone(),
            value: k.value.clone(),
            scopes: k.scopes.clone(),
        })
        .collect();
    let (stop, shutdown) = watch::channel(false);
    let mut rt = faults::FaultRuntime::default();
    rt.set(config.faults.clone());
    let state = SandboxState {
        inner: Arc::new(Inner {
            org_id: org.id.clone(),
            org: RwLock::new(org),
            faults: Mutex::new(rt),
            counters: Mutex::new(Counters::default()),
            recorder: Mutex::new(None),
            shutdown,
            release: watch::Sender::new(0),
        }),
    };
    (state, keys, stop)
}

/// Start serving on an already-bound listener (tests bind 127.0.0.1:0). Returns at once.
pub async fn start(
    config: SandboxConfig,
    listener: tokio::net::TcpListener,
) -> std::io::Result<SandboxHandle> {
    let addr = listener.local_addr()?;
    let (state, keys, stop) = build_state(&config);
    let app = router(state.clone());
    let mut rx = stop.subscribe();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
    });
    let base_url = url::Url::parse(&format!("http://{addr}/v1"))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    Ok(SandboxHandle {
        state,
        base_url,
        keys,
        stop,
        task: Some(task),
    })
}

/// The whole app: `/v1` (admin API), `/_sandbox/` (control API, dashboard changes).
fn router(state: SandboxState) -> Router {
    let v1 = admin_routes()
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route_layer(middleware::from_fn_with_state(state.clone(), faults::apply))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            record::record,
        ));
    let dashboard =
        admin_routes().route_layer(middleware::from_fn_with_state(state.clone(), as_dashboard));
    Router::new()
        .nest("/v1", v1)
        .nest("/_sandbox/dashboard", dashboard)
        .nest("/_sandbox", control::routes())
        .fallback(invalid_url)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            openai_headers,
        ))
        .with_state(state)
}

/// Every admin route (mounted twice: under `/v1` with keys, under the dashboard as a person).
fn admin_routes() -> Router<SandboxState> {
    Router::new()
        .merge(admin::routes())
        .merge(projects::routes())
        .merge(rbac::routes())
        .merge(reports::routes())
        .method_not_allowed_fallback(invalid_url)
}

async fn invalid_url(method: Method, uri: axum::http::Uri) -> Response {
    ApiError {
        status: axum::http::StatusCode::NOT_FOUND,
        ..ApiError::invalid(format!("Invalid URL ({method} {})", uri.path()), None)
    }
    .into_response()
}

tokio::task_local! {
    /// Set while a request is only validated (`Faults::validation_before_permission`).
    static DRY_RUN: ();
}

fn required_scope(method: &Method, path: &str) -> &'static str {
    let p = path.strip_prefix("/v1").unwrap_or(path);
    if p.starts_with("/organization/usage/") || p == "/organization/costs" {
        SCOPE_USAGE_READ
    } else if method == Method::GET {
        SCOPE_MANAGEMENT_READ
    } else {
        SCOPE_MANAGEMENT_WRITE
    }
}

async fn authenticate(State(state): State<SandboxState>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().to_owned())
        .filter(|v| !v.is_empty());
    let Some(presented) = presented else {
        return ApiError::bad_key(None).into_response();
    };
    let scope = required_scope(req.method(), req.uri().path());
    let validation_first = state.lock_faults().faults.validation_before_permission;
    let verdict = state.read(|org| {
        let now = org.now();
        let key = org
            .admin_key_values
            .get(&presented)
            .and_then(|id| org.admin_keys.get(id))
            .filter(|k| k.expires_at.is_none_or(|e| e > now));
        match key {
            None => Err(ApiError::bad_key(Some(&presented))),
            Some(k) => {
                let lacking = !k.scopes.iter().any(|s| s == scope);
                if lacking && !validation_first {
                    return Err(ApiError::missing_scope(scope));
                }
                let actor = Actor::ApiKey {
                    key_id: k.id.clone(),
                    user_id: k.owner_user_id.clone(),
                    email: org
                        .users
                        .get(&k.owner_user_id)
                        .map(|u| u.email.clone())
                        .unwrap_or_default(),
                };
                Ok((actor, lacking))
            }
        }
    });
    match verdict {
        Ok((actor, lacking)) => {
            req.extensions_mut().insert(actor);
            if !lacking {
                return next.run(req).await;
            }
            // Validation first: the handler runs against a copy; its refusal is the answer,
            // and a request it would have carried out is refused for the scope instead.
            let answer = DRY_RUN.scope((), next.run(req)).await;
            if answer.status().is_success() {
                ApiError::missing_scope(scope).into_response()
            } else {
                answer
            }
        }
        Err(e) => e.into_response(),
    }
}

/// Control-API twin of the admin routes: the change is made by the first org owner in the
/// dashboard, so it shows up as drift (audit actor `session`).
async fn as_dashboard(State(state): State<SandboxState>, mut req: Request, next: Next) -> Response {
    let actor = state.read(|org| {
        let owner = org
            .users
            .iter()
            .find(|u| u.role == "owner")
            .or_else(|| org.users.iter().next());
        owner.map(|u| Actor::Session {
            user_id: u.id.clone(),
            email: u.email.clone(),
        })
    });
    let actor = actor.unwrap_or(Actor::Session {
        user_id: "user-dashboard".to_owned(),
        email: "dashboard@example.com".to_owned(),
    });
    req.extensions_mut().insert(actor);
    next.run(req).await
}

async fn openai_headers(State(state): State<SandboxState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let id: u128 = rand::random();
    if let Ok(v) = HeaderValue::from_str(&format!("req_{id:032x}")) {
        h.insert("x-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(state.organization_id()) {
        h.insert("openai-organization", v);
    }
    h.insert("openai-version", HeaderValue::from_static("2020-10-01"));
    if let Ok(v) = HeaderValue::from_str(&started.elapsed().as_millis().to_string()) {
        h.insert("openai-processing-ms", v);
    }
    resp
}

/// Flags of the `openai-governor sandbox` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// Seed of the generated organization.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Start from the large organization (50,000 users, 2,000 projects); size flags override.
    #[arg(long)]
    pub large: bool,
    /// Organization members.
    #[arg(long)]
    pub users: Option<usize>,
    /// Projects (including the default project).
    #[arg(long)]
    pub projects: Option<usize>,
    /// Members per project.
    #[arg(long)]
    pub members_per_project: Option<usize>,
    /// RBAC groups.
    #[arg(long)]
    pub groups: Option<usize>,
    /// Pending invites.
    #[arg(long)]
    pub invites: Option<usize>,
    /// Latency added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share (0-1) of requests answered with a 5xx.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share (0-1) of requests never answered.
    #[arg(long, default_value_t = 0.0)]
    pub hang_rate: f64,
    /// Share (0-1) of requests answered with a truncated JSON body.
    #[arg(long, default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Rate limit `ENDPOINT=N/SECONDS[,FLAG...]`, e.g. `GET /organization/users=10/1`
    /// (repeatable): at most N requests per window, then 429. Flags: `per_path` (a window per
    /// concrete path, not per template), `no_retry_after` (429 without `Retry-After`),
    /// `headers` (`x-ratelimit-*-requests` on every answer).
    #[arg(long = "rate-limit", value_parser = parse_rate_limit)]
    pub rate_limits: Vec<RateLimit>,
    /// Fail the n-th page of a list: `ENDPOINT#N`, e.g. `GET /organization/users#3`.
    #[arg(long, value_parser = parse_page_fault)]
    pub fail_page: Option<PageFault>,
}

fn parse_rate_limit(s: &str) -> Result<RateLimit, String> {
    const FORM: &str = "expected ENDPOINT=N/SECONDS[,per_path][,no_retry_after][,headers]";
    let (endpoint, spec) = s.rsplit_once('=').ok_or_else(|| FORM.to_owned())?;
    let mut parts = spec.split(',');
    let window = parts.next().unwrap_or_default();
    let (n, secs) = window.split_once('/').ok_or_else(|| FORM.to_owned())?;
    let mut limit = RateLimit::per_template(
        endpoint.trim(),
        n.trim().parse().map_err(|_| format!("bad count '{n}'"))?,
        secs.trim()
            .parse()
            .map_err(|_| format!("bad seconds '{secs}'"))?,
    );
    for flag in parts {
        match flag.trim().replace('-', "_").as_str() {
            "per_path" => limit.per_path = true,
            "per_template" => limit.per_path = false,
            "no_retry_after" => limit.retry_after = false,
            "retry_after" => limit.retry_after = true,
            "headers" => limit.headers = true,
            "no_headers" => limit.headers = false,
            "" => {}
            _ => return Err(format!("unknown rate-limit flag '{}'; {FORM}", flag.trim())),
        }
    }
    Ok(limit)
}

fn parse_page_fault(s: &str) -> Result<PageFault, String> {
    let (endpoint, n) = s
        .rsplit_once('#')
        .ok_or_else(|| "expected ENDPOINT#N".to_owned())?;
    Ok(PageFault {
        endpoint: endpoint.trim().to_owned(),
        page: n.trim().parse().map_err(|_| format!("bad page '{n}'"))?,
        status: 500,
        times: 0,
    })
}

impl SandboxArgs {
    pub fn config(&self) -> SandboxConfig {
        let mut org = if self.large {
            OrgShape::large()
        } else {
            OrgShape::small()
        };
        if let Some(n) = self.users {
            org.users = n;
        }
        if let Some(n) = self.projects {
            org.projects = n;
        }
        if let Some(n) = self.members_per_project {
            org.members_per_project = n;
        }
        if let Some(n) = self.groups {
            org.groups = n;
        }
        if let Some(n) = self.invites {
            org.invites = n;
        }
        SandboxConfig {
            seed: self.seed,
            org,
            faults: Faults {
                latency_ms: self.latency_ms,
                error_rate: self.error_rate,
                hang_rate: self.hang_rate,
                malformed_rate: self.malformed_rate,
                rate_limits: self.rate_limits.clone(),
                page_fault: self.fail_page.clone(),
                ..Faults::default()
            },
            extra_keys: Vec::new(),
            now: None,
        }
    }
}

/// Runs the `sandbox` subcommand: prints `base_url ...` and one `key <name> <value> scopes=...`
/// line per key on stdout, then serves until `shutdown` resolves.
pub async fn run_cli(
    args: SandboxArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use std::io::Write;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let handle = start(args.config(), listener).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "base_url {}", handle.base_url())?;
        for k in handle.keys() {
            writeln!(
                out,
                "key {} {} scopes={}",
                k.name,
                k.value,
                k.scopes.join(",")
            )?;
        }
        out.flush()?;
    }
    shutdown.await;
    handle.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_flags() {
        assert_eq!(
            parse_rate_limit("GET /organization/users=20/1"),
            Ok(RateLimit::per_template("GET /organization/users", 20, 1))
        );
        assert_eq!(
            parse_rate_limit("GET /organization/projects/*=5/2,per_path"),
            Ok(RateLimit::per_path("GET /organization/projects/*", 5, 2))
        );
        let all = parse_rate_limit("*=5/1, per_path ,no_retry_after,headers").unwrap();
        assert_eq!(
            all,
            RateLimit {
                per_path: true,
                retry_after: false,
                headers: true,
                ..RateLimit::per_template("*", 5, 1)
            }
        );
        assert_eq!(
            parse_rate_limit("*=5/1,no-retry-after").map(|r| r.retry_after),
            Ok(false)
        );
        assert!(parse_rate_limit("*=5/1,sometimes").is_err());
        assert!(parse_rate_limit("*=5").is_err());
        assert!(parse_rate_limit("GET /organization/users").is_err());
        assert!(parse_rate_limit("*=x/1").is_err());
    }

    #[test]
    fn the_cli_takes_rate_limit_flags() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            sandbox: SandboxArgs,
        }
        let cli = Cli::try_parse_from([
            "sandbox",
            "--rate-limit",
            "GET /organization/users=20/1",
            "--rate-limit",
            "*=5/1,per_path,headers",
        ])
        .unwrap();
        let limits = cli.sandbox.config().faults.rate_limits;
        assert_eq!(limits.len(), 2);
        assert!(!limits[0].per_path && limits[0].retry_after && !limits[0].headers);
        assert!(limits[1].per_path && limits[1].retry_after && limits[1].headers);
    }
}
