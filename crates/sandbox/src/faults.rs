//! Fault injection and request counting for the sandbox's `/v1` routes. Faults are set at
//! start (config, CLI flags) and at run time (`PUT /_sandbox/faults`). Endpoints are named
//! `"METHOD /path/{template}"` without `/v1`. Must not depend on the handlers.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::SandboxState;
use super::http::ApiError;

/// Which endpoints a rule applies to: `"*"` = all; `"GET /organization/users"` = one method
/// and path; a bare path = every method on it; a trailing `*` matches a prefix
/// (`"GET /organization/*"`). Paths are the spec's templates (`{project_id}`) or concrete paths.
pub fn endpoint_matches(pattern: &str, method: &str, template: &str, concrete: &str) -> bool {
    let pattern = pattern.trim();
    if pattern == "*" || pattern.is_empty() {
        return true;
    }
    let (pm, pp) = match pattern.split_once(' ') {
        Some((m, p)) => (Some(m), p.trim()),
        None => (None, pattern),
    };
    if let Some(m) = pm
        && !m.eq_ignore_ascii_case(method)
    {
        return false;
    }
    let pp = pp.strip_prefix("/v1").unwrap_or(pp);
    match pp.strip_suffix('*') {
        Some(prefix) => template.starts_with(prefix) || concrete.starts_with(prefix),
        None => pp == template || pp == concrete,
    }
}

/// A per-endpoint rate limit: at most `max_requests` per `window_secs` (a fixed window that
/// starts with its first request), then 429 (+ `Retry-After` unless `retry_after` is off).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RateLimit {
    /// Endpoint pattern (see [`endpoint_matches`]); each matching endpoint has its own window.
    pub endpoint: String,
    pub max_requests: u32,
    /// Window length in seconds (at least 1).
    pub window_secs: u64,
    /// Count a window per concrete path (`GET /organization/projects/proj_1/users`) instead of
    /// per template (`GET /organization/projects/{project_id}/users`, all projects together).
    #[serde(default)]
    pub per_path: bool,
    /// Send `Retry-After` (whole seconds) with the 429; off: no such header at all.
    #[serde(default = "yes")]
    pub retry_after: bool,
    /// Every answer on a matching endpoint (2xx and 429 alike) carries OpenAI's
    /// `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests` and
    /// `x-ratelimit-reset-requests` (e.g. `1s`, `250ms`, `6m0s`). Off by default: the admin
    /// API is reported to send none.
    #[serde(default)]
    pub headers: bool,
}

fn yes() -> bool {
    true
}

impl RateLimit {
    /// One window per matching `"METHOD template"`, with `Retry-After` and no rate headers.
    pub fn per_template(endpoint: impl Into<String>, max_requests: u32, window_secs: u64) -> Self {
        Self {
            endpoint: endpoint.into(),
            max_requests,
            window_secs,
            per_path: false,
            retry_after: true,
            headers: false,
        }
    }

    /// One window per matching `"METHOD concrete path"`, with `Retry-After` and no rate headers.
    pub fn per_path(endpoint: impl Into<String>, max_requests: u32, window_secs: u64) -> Self {
        Self {
            per_path: true,
            ..Self::per_template(endpoint, max_requests, window_secs)
        }
    }
}

/// Make the n-th page of a list fail.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PageFault {
    pub endpoint: String,
    /// 1-based page number: page 1 is a request without cursor, each cursor request is the next.
    pub page: u32,
    #[serde(default = "default_status")]
    pub status: u16,
    /// How many times that page fails before it succeeds (0 = always).
    #[serde(default)]
    pub times: u32,
}

fn default_status() -> u16 {
    500
}

/// Apply matching requests, then withhold their answers: a write that landed at OpenAI while
/// the caller crashed or timed out. The connection is held until the faults are set again,
/// held requests are released (`POST /_sandbox/faults/release`) or the sandbox shuts down;
/// then it answers 503. A client that gives up first just disconnects.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HoldAfterApply {
    pub endpoint: String,
    /// How many matching requests are held (0 = all); the fault is removed after the last.
    #[serde(default)]
    pub times: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Faults {
    pub latency_ms: u64,
    /// Share (0.0 – 1.0) of requests answered with an injected 5xx.
    pub error_rate: f64,
    /// The next N matching requests answer an injected 5xx (a burst), then it stops.
    pub error_burst: u32,
    pub error_status: Option<u16>,
    /// Share of requests that never get an answer.
    pub hang_rate: f64,
    /// Share of requests answered 200 with a truncated, unparseable JSON body.
    pub malformed_rate: f64,
    /// Restricts latency, error, hang and malformed faults to matching endpoints (`None` = all).
    pub only: Option<String>,
    pub rate_limits: Vec<RateLimit>,
    pub page_fault: Option<PageFault>,
    /// Lists on matching endpoints ignore their cursor (`after` / `page`), so the same cursor
    /// comes back forever.
    pub repeat_cursor: Option<String>,
    /// See [`HoldAfterApply`]; only for requests no other fault refused.
    pub hold_after_apply: Option<HoldAfterApply>,
    /// Validate before checking the key's scopes: a key lacking the scope gets the 400/404 of
    /// an invalid request, and the missing-scope 401 only for a valid one (which then changes
    /// nothing). Off: scopes first, as (we believe) OpenAI does.
    pub validation_before_permission: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointCount {
    pub requests: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub hung: u64,
    pub malformed: u64,
    /// Requests applied whose answers were withheld (`hold_after_apply`).
    #[serde(default)]
    pub held: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counters {
    /// All `/v1` requests.
    pub total: u64,
    /// By endpoint (`"GET /organization/users"`).
    pub endpoints: BTreeMap<String, EndpointCount>,
}

impl Counters {
    /// Requests to the endpoints `endpoint` matches (see [`endpoint_matches`]).
    pub fn requests(&self, endpoint: &str) -> u64 {
        self.endpoints
            .iter()
            .filter(|(k, _)| match k.split_once(' ') {
                Some((m, p)) => endpoint_matches(endpoint, m, p, p),
                None => false,
            })
            .map(|(_, c)| c.requests)
            .sum()
    }

    /// Answers with this status across all endpoints.
    pub fn status(&self, status: u16) -> u64 {
        self.endpoints
            .values()
            .map(|c| c.statuses.get(&status).copied().unwrap_or(0))
            .sum()
    }
}

/// Mutable fault bookkeeping (windows, burst and page counters).
#[derive(Debug, Default)]
pub struct FaultRuntime {
    pub faults: Faults,
    windows: HashMap<(usize, String), (Instant, u32)>,
    pages: HashMap<String, u32>,
    page_failures: u32,
}

impl FaultRuntime {
    pub fn set(&mut self, faults: Faults) {
        *self = Self {
            faults,
            ..Self::default()
        };
    }
}

enum Decision {
    Pass { malformed: bool },
    Fail(ApiError),
    Hang,
}

/// What [`decide`] tells [`apply`].
struct Verdict {
    decision: Decision,
    latency: Duration,
    /// `repeat_cursor` matches: the cursor is stripped before the handler sees it.
    repeat: bool,
    /// The `x-ratelimit-*-requests` to send (a matching rate limit has `headers` on).
    limit: Option<LimitHeaders>,
}

/// The state of one rate-limit window, as OpenAI's `x-ratelimit-*-requests` headers tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LimitHeaders {
    limit: u32,
    remaining: u32,
    /// Until the window resets.
    reset: Duration,
}

impl LimitHeaders {
    fn apply(self, headers: &mut axum::http::HeaderMap) {
        for (name, value) in [
            ("x-ratelimit-limit-requests", self.limit.to_string()),
            ("x-ratelimit-remaining-requests", self.remaining.to_string()),
            ("x-ratelimit-reset-requests", go_duration(self.reset)),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
    }
}

/// A duration as Go prints it (and OpenAI's reset headers show it), to the millisecond,
/// rounded up: `250ms`, `1s`, `1.5s`, `6m0s`, `1h0m0s`; `0s` for zero.
fn go_duration(d: Duration) -> String {
    use std::fmt::Write as _;
    let ms = d.as_nanos().div_ceil(1_000_000);
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    let _ = write!(out, "{s}");
    if frac > 0 {
        let digits = format!("{frac:03}");
        let _ = write!(out, ".{}", digits.trim_end_matches('0'));
    }
    out.push('s');
    out
}

fn has_cursor(uri: &Uri) -> bool {
    uri.query().is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "after" || k == "page")
    })
}

fn strip_cursor(uri: &Uri) -> Option<Uri> {
    let q = uri.query()?;
    let kept: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            url::form_urlencoded::parse(q.as_bytes()).filter(|(k, _)| k != "after" && k != "page"),
        )
        .finish();
    let pq = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{kept}", uri.path())
    };
    pq.parse().ok()
}

fn decide(state: &SandboxState, method: &str, template: &str, uri: &Uri) -> Verdict {
    let mut rt = state.lock_faults();
    let concrete = uri
        .path()
        .strip_prefix("/v1")
        .unwrap_or(uri.path())
        .to_owned();
    let f = rt.faults.clone();
    let endpoint = format!("{method} {template}");
    let repeat = f
        .repeat_cursor
        .as_deref()
        .is_some_and(|p| endpoint_matches(p, method, template, &concrete));

    let verdict = |decision, latency, limit| Verdict {
        decision,
        latency,
        repeat,
        limit,
    };

    // Rate limits first: a limited request does no work. Of several matching limits that
    // show headers, the one with the fewest requests left is shown.
    let now = Instant::now();
    let mut shown: Option<LimitHeaders> = None;
    for (i, rl) in f.rate_limits.iter().enumerate() {
        if !endpoint_matches(&rl.endpoint, method, template, &concrete) {
            continue;
        }
        let window = Duration::from_secs(rl.window_secs.max(1));
        let key = if rl.per_path {
            format!("{method} {concrete}")
        } else {
            endpoint.clone()
        };
        let slot = rt.windows.entry((i, key)).or_insert((now, 0));
        if now.duration_since(slot.0) >= window {
            *slot = (now, 0);
        }
        let left = window.saturating_sub(now.duration_since(slot.0));
        if slot.1 >= rl.max_requests {
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            let error = ApiError {
                retry_after: rl.retry_after.then_some(secs.max(1)),
                ..ApiError::rate_limited(secs.max(1))
            };
            let limit = if rl.headers {
                Some(LimitHeaders {
                    limit: rl.max_requests,
                    remaining: 0,
                    reset: left,
                })
            } else {
                shown
            };
            return verdict(Decision::Fail(error), Duration::ZERO, limit);
        }
        slot.1 += 1;
        if rl.headers {
            let this = LimitHeaders {
                limit: rl.max_requests,
                remaining: rl.max_requests - slot.1,
                reset: left,
            };
            if shown.is_none_or(|s| this.remaining < s.remaining) {
                shown = Some(this);
            }
        }
    }

    if let Some(pf) = &f.page_fault
        && endpoint_matches(&pf.endpoint, method, template, &concrete)
    {
        let page = if has_cursor(uri) {
            rt.pages.get(&endpoint).copied().unwrap_or(0) + 1
        } else {
            1
        };
        if page == pf.page && (pf.times == 0 || rt.page_failures < pf.times) {
            rt.page_failures += 1;
            let status =
                StatusCode::from_u16(pf.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return verdict(
                Decision::Fail(ApiError::server(status)),
                Duration::ZERO,
                shown,
            );
        }
        rt.pages.insert(endpoint.clone(), page);
    }

    let scoped = f
        .only
        .as_deref()
        .is_none_or(|p| endpoint_matches(p, method, template, &concrete));
    if !scoped {
        return verdict(Decision::Pass { malformed: false }, Duration::ZERO, shown);
    }
    let latency = Duration::from_millis(f.latency_ms);
    let error_status = StatusCode::from_u16(f.error_status.unwrap_or(500))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if rt.faults.error_burst > 0 {
        rt.faults.error_burst -= 1;
        return verdict(
            Decision::Fail(ApiError::server(error_status)),
            latency,
            shown,
        );
    }
    drop(rt);
    let mut rng = rand::rng();
    if f.hang_rate > 0.0 && rng.random_bool(f.hang_rate.clamp(0.0, 1.0)) {
        return verdict(Decision::Hang, latency, shown);
    }
    if f.error_rate > 0.0 && rng.random_bool(f.error_rate.clamp(0.0, 1.0)) {
        return verdict(
            Decision::Fail(ApiError::server(error_status)),
            latency,
            shown,
        );
    }
    let malformed = f.malformed_rate > 0.0 && rng.random_bool(f.malformed_rate.clamp(0.0, 1.0));
    verdict(Decision::Pass { malformed }, latency, shown)
}

/// Takes one hold if `hold_after_apply` matches: returns the receiver that tells the held
/// request to answer. Subscribed under the faults lock, so a release that follows the decision
/// is never missed.
fn take_hold(
    state: &SandboxState,
    method: &str,
    template: &str,
    uri: &Uri,
) -> Option<watch::Receiver<u64>> {
    let mut rt = state.lock_faults();
    let hold = rt.faults.hold_after_apply.as_mut()?;
    let concrete = uri.path().strip_prefix("/v1").unwrap_or(uri.path());
    if !endpoint_matches(&hold.endpoint, method, template, concrete) {
        return None;
    }
    match hold.times {
        0 => {}
        1 => rt.faults.hold_after_apply = None,
        _ => hold.times -= 1,
    }
    Some(state.inner.release.subscribe())
}

/// Middleware on every matched `/v1` route: counts the request, then applies the faults.
pub async fn apply(State(state): State<SandboxState>, mut req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| {
            m.as_str()
                .strip_prefix("/v1")
                .unwrap_or(m.as_str())
                .to_owned()
        })
        .unwrap_or_else(|| req.uri().path().to_owned());
    let endpoint = format!("{method} {template}");
    state.count(&endpoint, |c| c.requests += 1);

    let Verdict {
        decision,
        latency,
        repeat,
        limit,
    } = decide(&state, &method, &template, req.uri());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut response = match decision {
        Decision::Hang => {
            state.count(&endpoint, |c| c.hung += 1);
            state.until_shutdown().await;
            ApiError::server(StatusCode::SERVICE_UNAVAILABLE).into_response()
        }
        Decision::Fail(e) => e.into_response(),
        Decision::Pass { malformed } => {
            if repeat && let Some(uri) = strip_cursor(req.uri()) {
                *req.uri_mut() = uri;
            }
            let hold = take_hold(&state, &method, &template, req.uri());
            let resp = next.run(req).await;
            if let Some(mut release) = hold {
                // The change is made; its answer is lost. If the client disconnects meanwhile,
                // this future is dropped here, which is harmless: nothing is left half-done.
                drop(resp);
                state.count(&endpoint, |c| c.held += 1);
                tokio::select! {
                    _ = release.changed() => {}
                    () = state.until_shutdown() => {}
                }
                ApiError::server(StatusCode::SERVICE_UNAVAILABLE).into_response()
            } else if malformed && resp.status().is_success() {
                state.count(&endpoint, |c| c.malformed += 1);
                truncate_body(resp).await
            } else {
                resp
            }
        }
    };
    if let Some(limit) = limit {
        limit.apply(response.headers_mut());
    }
    let status = response.status().as_u16();
    state.count(&endpoint, |c| *c.statuses.entry(status).or_default() += 1);
    response
}

async fn truncate_body(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let cut = (bytes.len() / 2).max(1).min(bytes.len());
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.extensions.insert(super::record::MalformedByFault);
    Response::from_parts(parts, Body::from(bytes.slice(..cut)))
}

#[cfg(test)]
mod tests;
