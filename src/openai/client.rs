//! The HTTP core of the OpenAI client: one request with auth, timeouts, rate budget, bounded
//! concurrency, retries and error mapping. The operations live in the sibling modules.
//!
//! Knows nothing of our store or server. Never logs request or response bodies, and the
//! admin key only ever sits in a header marked sensitive.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use url::Url;

use super::budget::{EndpointFamily, FamilyBudget, RateBudget};
use super::config::ClientConfig;
use super::error::{self, ErrorKind, OpenAiError};
use super::params::Query;

/// The answer to one operation: the typed body and what the response said about itself.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    /// The parsed body.
    pub data: T,
    /// Status, request id, organization, timing.
    pub meta: ResponseMeta,
}

/// Facts about the response an operation's answer came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseMeta {
    /// HTTP status.
    pub status: u16,
    /// The `x-request-id` header.
    pub request_id: Option<String>,
    /// The `openai-organization` header.
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
}

/// The organization every answer must come from: fixed, or learned from the first answer
/// that names one (then reported once through `on_learn`, so the caller can persist it).
pub struct OrganizationPin {
    organization: std::sync::OnceLock<String>,
    on_learn: Option<OnLearn>,
}

/// Hears the organization a learning pin was set to.
type OnLearn = Box<dyn Fn(&str) + Send + Sync>;

impl OrganizationPin {
    /// Answers must name `organization`.
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

    /// The organization pinned so far.
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
    permits: Semaphore,
    /// HTTP requests sent by this client and its clones (what a sync reports it cost).
    sent: AtomicU64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("retry_writes", &self.retry_writes)
            .finish_non_exhaustive()
    }
}

/// Largest response body read; anything longer is an invalid response, not an OOM.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Whether repeating a request after an unknown outcome is harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Reads, deletes and "set to this value" updates.
    Idempotent,
    /// Creates: repeating may create twice (or fail on the duplicate).
    NonIdempotent,
}

/// One operation to perform.
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

/// How one attempt ended.
enum Attempt {
    Success {
        status: u16,
        headers: HeaderMap,
        body: Vec<u8>,
    },
    Failure {
        error: OpenAiError,
        /// Repeating is harmless whatever the operation (nothing was performed).
        always_retryable: bool,
        /// Repeating is harmless for idempotent operations.
        retryable_if_idempotent: bool,
        retry_after: Option<Duration>,
    },
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `Retry-After-Ms` (milliseconds) or `Retry-After` (seconds; an HTTP date is not supported
/// and falls back to the default pause).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = header_text(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    header_text(headers, "retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// A one-line description of a transport error and its causes, without the URL.
fn describe(err: &reqwest::Error) -> String {
    let mut text = String::from(if err.is_timeout() {
        "request timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_body() || err.is_decode() {
        "response body broke off"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl Client {
    /// A client for the admin API at `base_url` (e.g. `https://api.openai.com/v1`).
    ///
    /// Fails on a base URL that is not http(s), an admin key that cannot be sent in a header,
    /// or when the HTTP stack cannot start. Redirects are never followed.
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
                    format!("cannot build HTTP client: {}", describe(&e)),
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
                sent: AtomicU64::new(0),
                config,
            }),
            retry_writes: false,
            pin: None,
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

    /// The base URL requests go to.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A clone that also retries non-idempotent writes (creates) after an unknown outcome
    /// (5xx, timeout, broken connection). Use it only when a duplicate is harmless or the
    /// caller reconciles afterwards (e.g. re-adding a member answers 400 and is checked).
    pub fn retrying_writes(&self) -> Client {
        Client {
            inner: self.inner.clone(),
            retry_writes: true,
            pin: self.pin.clone(),
        }
    }

    /// The current rate of each endpoint family used so far, and its 429 count.
    pub fn rate_budget(&self) -> Vec<(EndpointFamily, FamilyBudget)> {
        let mut all: Vec<_> = self.inner.budget.snapshot().into_iter().collect();
        all.sort_by_key(|(family, _)| family.as_str());
        all
    }

    /// HTTP requests sent so far by this client and its clones, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.inner.sent.load(Ordering::Relaxed)
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

    /// GET `path` with `query`.
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

    /// DELETE `path`.
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

    /// POST `body` as JSON to `path`.
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

    /// Performs one operation: budget, concurrency, attempts, retries, parsing.
    pub(crate) async fn execute<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
    ) -> Result<Reply<T>, OpenAiError> {
        let started = Instant::now();
        let url = self.url(call.path, &call.query)?;
        let policy = &self.inner.config.retry;
        let mut backoff = policy.backoff();
        let may_repeat_unknown = call.idempotency == Idempotency::Idempotent || self.retry_writes;
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            let ticket = self.inner.budget.acquire(call.family).await;
            let attempt = {
                // The semaphore is never closed, so acquiring cannot fail; if it ever did,
                // going on without a permit is better than failing the call.
                let _permit = self.inner.permits.acquire().await.ok();
                self.inner.sent.fetch_add(1, Ordering::Relaxed);
                self.attempt(&call, &url).await
            };
            let (error, retryable, wait) = match attempt {
                Attempt::Success {
                    status,
                    headers,
                    body,
                } => {
                    self.inner.budget.on_success(call.family);
                    let organization = header_text(&headers, "openai-organization");
                    if let Some(pin) = &self.pin
                        && let Err(mut mismatch) = pin.check(organization.as_deref())
                    {
                        mismatch.status = Some(status);
                        mismatch.request_id = header_text(&headers, "x-request-id");
                        mismatch.organization = organization;
                        mismatch.elapsed = started.elapsed();
                        mismatch.attempts = attempts;
                        return Err(mismatch);
                    }
                    let meta = ResponseMeta {
                        status,
                        request_id: header_text(&headers, "x-request-id"),
                        organization: header_text(&headers, "openai-organization"),
                        elapsed: started.elapsed(),
                        attempts,
                    };
                    match serde_json::from_slice::<T>(&body) {
                        Ok(data) => return Ok(Reply { data, meta }),
                        Err(e) => {
                            // Garbled JSON may be a glitch worth a retry; well-formed JSON of
                            // the wrong shape will not get better.
                            let garbled = e.is_syntax() || e.is_eof();
                            let detail = if call.secret_response {
                                "body does not match the documented shape".to_string()
                            } else {
                                e.to_string()
                            };
                            let mut err = OpenAiError::new(
                                ErrorKind::InvalidResponse,
                                format!(
                                    "cannot parse the response of {}: {detail}",
                                    call.family.as_str()
                                ),
                            );
                            err.status = Some(meta.status);
                            err.request_id = meta.request_id;
                            err.organization = meta.organization;
                            // A write that answered 2xx happened: never repeat it.
                            let retryable = garbled && call.method == Method::GET;
                            (err, retryable, None)
                        }
                    }
                }
                Attempt::Failure {
                    error,
                    always_retryable,
                    retryable_if_idempotent,
                    retry_after,
                } => {
                    // An error from another organization is not that organization's answer
                    // to us: say what is wrong instead.
                    if let Some(pin) = &self.pin
                        && pin.organization().is_some()
                        && let Err(mut mismatch) = pin.check(error.organization.as_deref())
                    {
                        mismatch.status = error.status;
                        mismatch.request_id = error.request_id.clone();
                        mismatch.organization = error.organization.clone();
                        mismatch.elapsed = started.elapsed();
                        mismatch.attempts = attempts;
                        return Err(mismatch.scrub(self.inner.key.expose_secret()));
                    }
                    if let ErrorKind::RateLimited { retry_after } = error.kind {
                        // Pause the family, but never longer than the policy lets one call
                        // wait: a Retry-After beyond that fails this call at once, and must
                        // not silently stall the family's next calls for the whole of it.
                        let pause = retry_after.map(|w| w.min(policy.max_retry_after));
                        self.inner.budget.on_throttled(call.family, ticket, pause);
                    }
                    let retryable =
                        always_retryable || (retryable_if_idempotent && may_repeat_unknown);
                    (error, retryable, retry_after)
                }
            };
            let finish = |mut error: OpenAiError| {
                error.elapsed = started.elapsed();
                error.attempts = attempts;
                error.scrub(self.inner.key.expose_secret())
            };
            if !retryable {
                return Err(finish(error));
            }
            if wait.is_some_and(|w| w > policy.max_retry_after) {
                return Err(finish(error));
            }
            let Some(delay) = backoff.next() else {
                return Err(finish(error));
            };
            let delay = delay.max(wait.unwrap_or_default());
            tracing::debug!(
                family = call.family.as_str(),
                method = %call.method,
                attempt = attempts,
                delay_ms = delay.as_millis() as u64,
                status = error.status,
                request_id = error.request_id.as_deref(),
                kind = error.kind.label(),
                "retrying OpenAI request"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP exchange, classified.
    async fn attempt(&self, call: &Call<'_>, url: &Url) -> Attempt {
        let sent = Instant::now();
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), url.clone())
            .header(header::AUTHORIZATION, self.inner.auth.clone())
            .header(header::ACCEPT, "application/json");
        if let Some(body) = &call.body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return transport_failure(&e, call.family, sent),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match read_body(response).await {
            Ok(body) => body,
            Err(failure) => {
                return with_headers(failure, status, &headers);
            }
        };
        tracing::debug!(
            family = call.family.as_str(),
            method = %call.method,
            path = url.path(),
            status = status.as_u16(),
            request_id = header_text(&headers, "x-request-id").as_deref(),
            elapsed_ms = sent.elapsed().as_millis() as u64,
            "OpenAI request"
        );
        if status.is_success() {
            return Attempt::Success {
                status: status.as_u16(),
                headers,
                body,
            };
        }
        let code = status.as_u16();
        let wait = retry_after(&headers);
        let mut error = if status.is_redirection() {
            OpenAiError::new(
                ErrorKind::InvalidResponse,
                format!("unexpected redirect (HTTP {code}); redirects are not followed"),
            )
        } else {
            let parsed = error::parse_error_body(code, &body);
            let mut e = OpenAiError::new(error::kind_for_status(code, &parsed, wait), "");
            e.message = parsed.message;
            e.error_type = parsed.error_type;
            e.code = parsed.code;
            e.param = parsed.param;
            e
        };
        error.status = Some(code);
        error.request_id = header_text(&headers, "x-request-id");
        error.organization = header_text(&headers, "openai-organization");
        let server_side = status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT;
        Attempt::Failure {
            error,
            always_retryable: status == StatusCode::TOO_MANY_REQUESTS,
            retryable_if_idempotent: server_side,
            retry_after: wait,
        }
    }
}

fn transport_failure(e: &reqwest::Error, family: EndpointFamily, sent: Instant) -> Attempt {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Network
    };
    tracing::debug!(
        family = family.as_str(),
        elapsed_ms = sent.elapsed().as_millis() as u64,
        error = %describe(e),
        "OpenAI request failed"
    );
    Attempt::Failure {
        error: OpenAiError::new(kind, describe(e)),
        // Nothing reached the server when the connection could not be made.
        always_retryable: e.is_connect(),
        retryable_if_idempotent: true,
        retry_after: None,
    }
}

fn with_headers(failure: Attempt, status: StatusCode, headers: &HeaderMap) -> Attempt {
    match failure {
        Attempt::Failure {
            mut error,
            always_retryable,
            retryable_if_idempotent,
            retry_after,
        } => {
            error.status = Some(status.as_u16());
            error.request_id = header_text(headers, "x-request-id");
            error.organization = header_text(headers, "openai-organization");
            Attempt::Failure {
                error,
                always_retryable,
                retryable_if_idempotent,
                retry_after,
            }
        }
        success => success,
    }
}

/// Reads the body up to `MAX_BODY`.
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, Attempt> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(Attempt::Failure {
                        error: OpenAiError::new(
                            ErrorKind::InvalidResponse,
                            format!("response body larger than {MAX_BODY} bytes"),
                        ),
                        always_retryable: false,
                        retryable_if_idempotent: false,
                        retry_after: None,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                let kind = if e.is_timeout() {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Network
                };
                return Err(Attempt::Failure {
                    error: OpenAiError::new(kind, describe(&e)),
                    always_retryable: false,
                    retryable_if_idempotent: true,
                    retry_after: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderName;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(
                HeaderName::from_static(n),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn retry_after_headers() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2")])),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers(&[("retry-after", "2"), ("retry-after-ms", "150")])),
            Some(Duration::from_millis(150))
        );
        assert_eq!(
            retry_after(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            None
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")])), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    fn client(base: &str) -> Result<Client, OpenAiError> {
        Client::new(
            Url::parse(base).unwrap(),
            SecretString::from("sk-admin-abc".to_string()),
            ClientConfig::default(),
        )
    }

    #[test]
    fn urls_keep_the_base_path_and_encode_ids() {
        let c = client("http://127.0.0.1:9/v1").unwrap();
        let url = c
            .url(
                &["organization", "users", "user/x y"],
                &vec![("emails[]".into(), "a@b".into())],
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/v1/organization/users/user%2Fx%20y?emails%5B%5D=a%40b"
        );
        let c = client("https://api.openai.com/v1/").unwrap();
        let url = c.url(&["projects", "p", "roles"], &Query::new()).unwrap();
        assert_eq!(url.as_str(), "https://api.openai.com/v1/projects/p/roles");
        for bad in ["", ".", ".."] {
            let err = c
                .url(&["organization", "users", bad], &Query::new())
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadRequest);
        }
    }

    #[test]
    fn bad_base_urls_and_keys_are_refused_without_echoing_the_key() {
        assert!(client("ftp://x/v1").is_err());
        assert!(client("http://x/v1?a=b").is_err());
        let err = Client::new(
            Url::parse("http://x/v1").unwrap(),
            SecretString::from("sk-admin-\nEVIL".to_string()),
            ClientConfig::default(),
        )
        .unwrap_err();
        assert!(!err.to_string().contains("EVIL"));
        assert!(
            Client::new(
                Url::parse("http://x/v1").unwrap(),
                SecretString::from("  ".to_string()),
                ClientConfig::default(),
            )
            .is_err()
        );
        let c = client("http://x/v1").unwrap();
        assert!(!format!("{c:?}").contains("sk-admin"));
    }
}
