//! Limits on our own callers, in one middleware: a rate per caller (the verified token's
//! subject and client; the peer IP for requests without a valid token), a cap on connection
//! tests running at once, and a rate of sync requests per connection. Each refusal is a 429
//! problem with `Retry-After`. `/healthz` is never limited. The token verified here is handed
//! to the [`Principal`] extractor, so it is verified once.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::Semaphore;

use super::AppState;
use crate::auth::{AuthError, Principal};
use crate::config::CallerLimits;
use crate::error::{AppError, ErrorCode};

type Keyed = RateLimiter<String, HashMapStateStore<String>, DefaultClock>;

/// Keys kept before idle ones are dropped (a full bucket is the same as no entry).
const MAX_KEYS: usize = 10_000;

/// A verification done by the limiter, for the extractor.
#[derive(Clone)]
pub(super) struct Verified(pub(super) Result<Principal, AuthError>);

pub struct Limits {
    callers: Option<Keyed>,
    connection_tests: Option<Arc<Semaphore>>,
    syncs: Option<Keyed>,
    clock: DefaultClock,
}

impl Limits {
    /// Limiters for `config`; a zero turns its limit off.
    pub fn new(config: CallerLimits) -> Self {
        let callers = NonZeroU32::new(config.per_second).map(|rate| {
            let burst = NonZeroU32::new(config.burst).unwrap_or(rate);
            RateLimiter::hashmap(Quota::per_second(rate).allow_burst(burst))
        });
        let syncs = NonZeroU32::new(config.syncs_per_minute)
            .map(|rate| RateLimiter::hashmap(Quota::per_minute(rate)));
        let connection_tests = (config.concurrent_connection_tests > 0)
            .then(|| Arc::new(Semaphore::new(config.concurrent_connection_tests as usize)));
        Self {
            callers,
            connection_tests,
            syncs,
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` if `key` is over its rate.
    fn check(&self, limiter: &Keyed, key: String) -> Result<(), Duration> {
        if limiter.len() > MAX_KEYS {
            limiter.retain_recent();
        }
        limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// What a request is, for the caps.
enum Capped<'a> {
    ConnectionTest,
    Sync(&'a str),
    Other,
}

fn capped<'a>(method: &Method, path: &'a str) -> Capped<'a> {
    if method != Method::POST {
        return Capped::Other;
    }
    let Some(rest) = path.strip_prefix("/v1/connections/") else {
        return Capped::Other;
    };
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        ["test"] | [_, "test"] => Capped::ConnectionTest,
        [id, "syncs"] => Capped::Sync(id),
        _ => Capped::Other,
    }
}

/// A 429 with `Retry-After` (whole seconds, at least one).
fn too_many(code: ErrorCode, message: &str, wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = AppError::new(code, message).into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

pub async fn limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let limits = state.limits.clone();
    let path = req.uri().path().to_owned();
    if path == "/healthz" {
        return next.run(req).await;
    }
    let cap = capped(req.method(), &path);
    let mut verified = None;
    if let Some(callers) = &limits.callers {
        let principal = match bearer(&req) {
            Some(token) => Some(state.auth.verify(token).await),
            None => None,
        };
        let key = match &principal {
            // Debug-quoted, so no subject can imitate another's (subject, client) pair.
            Some(Ok(p)) => format!("sub:{:?}", (&p.subject, &p.client_id)),
            _ => match req.extensions().get::<ConnectInfo<SocketAddr>>() {
                Some(ConnectInfo(addr)) => format!("ip:{}", addr.ip()),
                None => "ip:unknown".to_owned(),
            },
        };
        if let Err(wait) = limits.check(callers, key) {
            return too_many(
                ErrorCode::RateLimited,
                "too many requests from this caller; retry after the time in Retry-After",
                wait,
            );
        }
        if let Some(p) = principal {
            verified = Some(p.is_ok());
            req.extensions_mut().insert(Verified(p));
        }
    }
    if matches!(cap, Capped::Other) {
        return next.run(req).await;
    }
    // The caps count only callers with a valid token (the others are refused anyway).
    let authenticated = match verified {
        Some(ok) => ok,
        None => match bearer(&req).map(str::to_owned) {
            Some(token) => {
                let p = state.auth.verify(&token).await;
                let ok = p.is_ok();
                req.extensions_mut().insert(Verified(p));
                ok
            }
            None => false,
        },
    };
    let _permit = match cap {
        _ if !authenticated => None,
        Capped::ConnectionTest => match &limits.connection_tests {
            Some(tests) => match tests.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    return too_many(
                        ErrorCode::TooManyConnectionTests,
                        "too many connection tests are running; retry shortly",
                        Duration::from_secs(2),
                    );
                }
            },
            None => None,
        },
        Capped::Sync(id) => {
            // By the parsed id, so that spellings of one id share a bucket; a malformed id
            // is refused by the handler.
            if let Some(syncs) = &limits.syncs
                && let Ok(id) = uuid::Uuid::parse_str(id)
                && let Err(wait) = limits.check(syncs, id.to_string())
            {
                return too_many(
                    ErrorCode::TooManySyncRequests,
                    "too many sync requests for this connection; retry after the time in \
                     Retry-After",
                    wait,
                );
            }
            None
        }
        Capped::Other => None,
    };
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_routes() {
        let post = Method::POST;
        assert!(matches!(
            capped(&post, "/v1/connections/test"),
            Capped::ConnectionTest
        ));
        assert!(matches!(
            capped(&post, "/v1/connections/abc/test"),
            Capped::ConnectionTest
        ));
        assert!(matches!(
            capped(&post, "/v1/connections/abc/syncs"),
            Capped::Sync("abc")
        ));
        assert!(matches!(
            capped(&Method::GET, "/v1/connections/abc/syncs"),
            Capped::Other
        ));
        assert!(matches!(
            capped(&post, "/v1/connections/abc/syncs/x"),
            Capped::Other
        ));
    }
}
