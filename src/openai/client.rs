//! The HTTP core of the OpenAI client: one request with auth, timeouts, rate budget, bounded
//! concurrency, retries and error mapping. The operations live in the sibling modules.
//!
//! Knows nothing of our store or server. Never logs request or response bodies, and the
//! admin key only ever sits in a header marked sensitive.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use url::Url;

use super::budget::{EndpointFamily, LearnedLimit, Priority, RateBudget};
use super::config::ClientConfig;
use super::error::{ErrorKind, OpenAiError};
use super::params::Query;

/// The answer to one operation: the typed body and what the response said about itself.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub data: T,
    pub meta: ResponseMeta,
}

/// Facts about the response an operation's answer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseMeta {
    pub status: u16,
    pub request_id: Option<String>,
    pub organization: Option<String>,
    /// Time spent on the operation, retries and waits included.
    pub elapsed: Duration,
    /// HTTP attempts made (1 without retries).
    pub attempts: u32,
}

/// A typed client of OpenAI's administration API. Cheap to clone: clones share the
/// connection pool, the rate budget and the concurrency limit.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    retry_writes: bool,
    pin: Option<Arc<OrganizationPin>>,
    priority: Priority,
    meter: Option<Arc<Meter>>,
}

/// What the requests of one piece of work (a sync) cost, counted by the clone it used (see
/// [`Client::metered`]). Times are summed over requests, so with several in flight they add
/// up to more than the wall time.
#[derive(Debug, Default)]
pub struct Meter {
    requests: AtomicU64,
    throttled: AtomicU64,
    budget_wait_us: AtomicU64,
    slot_wait_us: AtomicU64,
    upstream_us: AtomicU64,
}

/// A reading of a [`Meter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeterReading {
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// 429 answers among them.
    pub throttled: u64,
    /// Time requests waited for the rate budget (pauses after 429s, a learned window).
    pub budget_wait: Duration,
    /// Time requests waited for a free slot (the client's concurrency cap).
    pub slot_wait: Duration,
    /// Time from sending a request to its whole answer (OpenAI's latency).
    pub upstream: Duration,
}

impl Meter {
    pub fn reading(&self) -> MeterReading {
        MeterReading {
            requests: self.requests.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            budget_wait: Duration::from_micros(self.budget_wait_us.load(Ordering::Relaxed)),
            slot_wait: Duration::from_micros(self.slot_wait_us.load(Ordering::Relaxed)),
            upstream: Duration::from_micros(self.upstream_us.load(Ordering::Relaxed)),
        }
    }

    fn add(counter: &AtomicU64, d: Duration) {
        counter.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// The organization every answer must come from: fixed, or learned from the first answer
/// that names one (then reported once through `on_learn`, so the caller can persist it).
pub struct OrganizationPin {
    organization: std::sync::OnceLock<String>,
    on_learn: Option<OnLearn>,
}

type OnLearn = Box<dyn Fn(&str) + Send + Sync>;

impl OrganizationPin {
    pub fn fixed(organization: String) -> Self {
        Self {
            organization: std::sync::OnceLock::from(organization),
            on_learn: None,
        }
    }

    /// Answers must name the organization the first one names; `on_learn` hears it.
    pub fn learn(on_learn: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self {
            organization: std::sync::OnceLock::new(),
            on_learn: Some(Box::new(on_learn)),
        }
    }

    pub fn organization(&self) -> Option<&str> {
        self.organization.get().map(String::as_str)
    }

    /// Checks an answer's `openai-organization` header. An answer without one cannot be
    /// checked and is let through (OpenAI sends it on every admin API answer).
    fn check(&self, seen: Option<&str>) -> Result<(), OpenAiError> {
        let Some(seen) = seen else { return Ok(()) };
        let mut learned = false;
        let pinned = self.organization.get_or_init(|| {
            learned = true;
            seen.to_owned()
        });
        if pinned != seen {
            return Err(OpenAiError::new(
                ErrorKind::OrganizationMismatch,
                format!(
                    "OpenAI answered for organization {seen}, but this connection is pinned to \
                     {pinned}: its key or base URL now reaches another organization; nothing \
                     more is sent with it"
                ),
            ));
        }
        if learned && let Some(on_learn) = &self.on_learn {
            on_learn(seen);
        }
        Ok(())
    }
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    auth: HeaderValue,
    key: SecretString,
    config: ClientConfig,
    budget: RateBudget,
    /// Requests in flight, over all clones.
    permits: Semaphore,
    /// Of those, what background work may hold: the rest stays free for interactive work.
    background_permits: Semaphore,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("retry_writes", &self.retry_writes)
            .finish_non_exhaustive()
    }
}

/// Slots background work may hold of `total`: a quarter stays free for interactive work.
fn background_slots(total: usize) -> usize {
    let total = total.max(1);
    (total - total / 4).max(1)
}

/// Whether repeating a request after an unknown outcome is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Reads, deletes and "set to this value" updates.
    Idempotent,
    /// Creates: repeating may create twice (or fail on the duplicate).
    NonIdempotent,
}

pub(crate) struct Call<'a> {
    pub method: Method,
    pub path: &'a [&'a str],
    pub query: Query,
    pub body: Option<Vec<u8>>,
    pub family: EndpointFamily,
    pub idempotency: Idempotency,
    /// The response holds a secret shown once: no detail of it may reach an error.
    pub secret_response: bool,
}

mod transport;

impl Client {
    /// A client for the admin API at `base_url` (e.g. `https://api.openai.com/v1`).
    pub fn new(
        base_url: Url,
        admin_key: SecretString,
        config: ClientConfig,
    ) -> Result<Client, OpenAiError> {
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
            return Err(OpenAiError::new(
                ErrorKind::BadRequest,
                "base URL must be an http(s) URL with a host",
            ));
        }
        if base_url.query().is_some() || base_url.fragment().is_some() {
            return Err(OpenAiError::new(
                ErrorKind::BadRequest,
                "base URL must not have a query or fragment",
            ));
        }
        let key = admin_key.expose_secret().trim();
        if key.is_empty() {
            return Err(OpenAiError::new(
                ErrorKind::Unauthorized,
                "the admin key is empty",
            ));
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            OpenAiError::new(
                ErrorKind::Unauthorized,
                "the admin key contains characters not allowed in an HTTP header",
            )
        })?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(config.user_agent.clone())
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| {
                OpenAiError::new(
                    ErrorKind::Network,
                    format!("cannot build HTTP client: {}", transport::describe(&e)),
                )
            })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base: base_url,
                auth,
                key: SecretString::from(key.to_string()),
                budget: RateBudget::new(config.rate.clone()),
                permits: Semaphore::new(config.max_concurrency.max(1)),
                background_permits: Semaphore::new(background_slots(config.max_concurrency)),
                config,
            }),
            retry_writes: false,
            pin: None,
            priority: Priority::Interactive,
            meter: None,
        })
    }

    /// This client, checking that every answer comes from the organization `pin` names.
    pub fn pinned(mut self, pin: OrganizationPin) -> Client {
        self.pin = Some(Arc::new(pin));
        self
    }

    /// The organization answers must come from, once known.
    pub fn organization(&self) -> Option<&str> {
        self.pin.as_deref().and_then(OrganizationPin::organization)
    }

    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A clone that also retries non-idempotent writes (creates) after an unknown outcome
    /// (5xx, timeout, broken connection). Use it only when a duplicate is harmless or the
    /// caller reconciles afterwards (e.g. re-adding a member answers 400 and is checked).
    pub fn retrying_writes(&self) -> Client {
        Client {
            retry_writes: true,
            ..self.clone()
        }
    }

    /// A clone for background work (syncs): it waits behind interactive work on the same
    /// connection, for the rate budget and for a free slot.
    pub fn background(&self) -> Client {
        Client {
            priority: Priority::Background,
            ..self.clone()
        }
    }

    /// A clone whose requests are also counted in `meter`.
    pub fn metered(&self, meter: Arc<Meter>) -> Client {
        Client {
            meter: Some(meter),
            ..self.clone()
        }
    }

    /// The rates the budget learned from OpenAI's 429s, to keep (see `seed_limits`).
    pub fn learned_limits(&self) -> Vec<LearnedLimit> {
        self.inner.budget.learned()
    }

    /// Rates learned before (by an earlier process or another replica); newer ones learned
    /// here are kept.
    pub fn seed_limits(&self, limits: &[LearnedLimit]) {
        self.inner.budget.seed(limits);
    }

    /// 429s met so far by this client and its clones.
    pub fn throttled(&self) -> u64 {
        self.inner.budget.throttled()
    }

    fn url(&self, path: &[&str], query: &Query) -> Result<Url, OpenAiError> {
        let mut url = self.inner.base.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|_| {
                OpenAiError::new(ErrorKind::BadRequest, "base URL cannot carry a path")
            })?;
            segments.pop_if_empty();
            for segment in path {
                // `url` silently drops "." and "..": an id like that would change the path.
                if segment.is_empty() || *segment == "." || *segment == ".." {
                    return Err(OpenAiError::new(
                        ErrorKind::BadRequest,
                        format!("invalid id in request path: {segment:?}"),
                    ));
                }
                segments.push(segment);
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        family: EndpointFamily,
        path: &[&str],
        query: Query,
    ) -> Result<Reply<T>, OpenAiError> {
        self.execute(Call {
            method: Method::GET,
            path,
            query,
            body: None,
            family,
            idempotency: Idempotency::Idempotent,
            secret_response: false,
        })
        .await
    }

    pub(crate) async fn delete<T: DeserializeOwned>(
        &self,
        family: EndpointFamily,
        path: &[&str],
    ) -> Result<Reply<T>, OpenAiError> {
        self.execute(Call {
            method: Method::DELETE,
            path,
            query: Query::new(),
            body: None,
            family,
            idempotency: Idempotency::Idempotent,
            secret_response: false,
        })
        .await
    }

    pub(crate) async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        family: EndpointFamily,
        path: &[&str],
        body: &B,
        idempotency: Idempotency,
    ) -> Result<Reply<T>, OpenAiError> {
        self.post_inner(family, path, body, idempotency, false)
            .await
    }

    /// POST whose answer carries a secret shown once (service-account keys).
    pub(crate) async fn post_secret<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        family: EndpointFamily,
        path: &[&str],
        body: &B,
    ) -> Result<Reply<T>, OpenAiError> {
        self.post_inner(family, path, body, Idempotency::NonIdempotent, true)
            .await
    }

    async fn post_inner<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        family: EndpointFamily,
        path: &[&str],
        body: &B,
        idempotency: Idempotency,
        secret_response: bool,
    ) -> Result<Reply<T>, OpenAiError> {
        let body = serde_json::to_vec(body).map_err(|e| {
            OpenAiError::new(
                ErrorKind::BadRequest,
                format!("cannot encode request body: {e}"),
            )
        })?;
        self.execute(Call {
            method: Method::POST,
            path,
            query: Query::new(),
            body: Some(body),
            family,
            idempotency,
            secret_response,
        })
        .await
    }
}
