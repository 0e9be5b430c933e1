//! One request on the wire: attempts with the rate budget and bounded concurrency, retries
//! after an unknown outcome only when harmless, the organization pin check, the body size
//! cap and the mapping of failures to `OpenAiError`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use url::Url;

use super::super::budget::{EndpointFamily, Priority, RateHeaders};
use super::super::error::{self, ErrorKind, OpenAiError};
use super::{Call, Client, Idempotency, Meter, Reply, ResponseMeta};

/// Largest response body read; anything longer is an invalid response, not an OOM.
const MAX_BODY: usize = 32 * 1024 * 1024;

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
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
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

/// OpenAI's `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests` and
/// `x-ratelimit-reset-requests` (a Go duration: `1s`, `250ms`, `6m0s`), all three or none.
pub(super) fn rate_headers(headers: &HeaderMap) -> Option<RateHeaders> {
    let number = |name| header_text(headers, name).and_then(|v| v.parse::<u32>().ok());
    Some(RateHeaders {
        limit: number("x-ratelimit-limit-requests")?,
        remaining: number("x-ratelimit-remaining-requests")?,
        reset: go_duration(&header_text(headers, "x-ratelimit-reset-requests")?)?,
    })
}

/// A Go duration of non-negative parts (`1h2m3.5s`, `250ms`, `0s`); `None` when malformed.
fn go_duration(text: &str) -> Option<Duration> {
    const UNITS: &[(&str, f64)] = &[
        ("ns", 1e-9),
        ("us", 1e-6),
        ("µs", 1e-6),
        ("ms", 1e-3),
        ("h", 3600.0),
        ("m", 60.0),
        ("s", 1.0),
    ];
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut secs = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&n| n > 0)?;
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let &(unit, scale) = UNITS.iter().find(|(u, _)| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
        secs += value * scale;
    }
    (secs.is_finite() && secs < 1e9 && !text.is_empty()).then(|| Duration::from_secs_f64(secs))
}

/// A one-line description of a transport error and its causes, without the URL.
pub(super) fn describe(err: &reqwest::Error) -> String {
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
        let mut throttled_retries: u32 = 0;
        let meter = self.meter.as_deref();
        loop {
            attempts += 1;
            let queued = Instant::now();
            let mut budgeted;
            // A slot first, then the budget counts the request right before it goes: counted
            // earlier, a request that then waited for a slot could land in the server's next
            // window on top of that window's own.
            let (ticket, _background, _permit) = loop {
                self.inner
                    .budget
                    .ready(&call.method, call.path, self.priority)
                    .await;
                budgeted = Instant::now();
                // The semaphores are never closed, so acquiring cannot fail; if it ever did,
                // going on without a permit is better than failing the call.
                let background = match self.priority {
                    Priority::Background => self.inner.background_permits.acquire().await.ok(),
                    Priority::Interactive => None,
                };
                let permit = self.inner.permits.acquire().await.ok();
                if let Ok(ticket) =
                    self.inner
                        .budget
                        .try_acquire(&call.method, call.path, self.priority)
                {
                    break (ticket, background, permit);
                }
            };
            let attempt = {
                let sent = Instant::now();
                let (attempt, rate) = self.attempt(&call, &url).await;
                self.inner.budget.on_answer(&ticket, rate);
                if let Some(m) = meter {
                    m.requests.fetch_add(1, Ordering::Relaxed);
                    Meter::add(&m.budget_wait_us, budgeted - queued);
                    Meter::add(&m.slot_wait_us, sent - budgeted);
                    Meter::add(&m.upstream_us, sent.elapsed());
                }
                attempt
            };
            let (error, retryable, wait) = match attempt {
                Attempt::Success {
                    status,
                    headers,
                    body,
                } => {
                    self.inner.budget.on_success(&ticket);
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
                        if let Some(m) = meter {
                            m.throttled.fetch_add(1, Ordering::Relaxed);
                        }
                        // Pause the scope, but never longer than the policy lets one call
                        // wait: a Retry-After beyond that fails this call at once, and must
                        // not silently stall the scope's next calls for the whole of it.
                        let pause = retry_after.map(|w| w.min(policy.max_retry_after));
                        self.inner.budget.on_throttled(&ticket, pause);
                        if retry_after.is_none_or(|w| w <= policy.max_retry_after)
                            && throttled_retries < policy.max_rate_limited_retries
                        {
                            throttled_retries += 1;
                            // A learning budget waits out the pause before the next attempt
                            // goes; without one, wait here.
                            if !self.inner.config.rate.learn {
                                let wait = retry_after.unwrap_or(policy.min_delay);
                                tokio::time::sleep(wait).await;
                            }
                            continue;
                        }
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

    /// One attempt, and the rate-limit headers its answer carried.
    async fn attempt(&self, call: &Call<'_>, url: &Url) -> (Attempt, Option<RateHeaders>) {
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
            Err(e) => return (transport_failure(&e, call.family, sent), None),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let rate = rate_headers(&headers);
        let body = match read_body(response).await {
            Ok(body) => body,
            Err(failure) => {
                return (with_headers(failure, status, &headers), rate);
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
        (answer(status, headers, body), rate)
    }
}

/// What an answer that came whole means.
fn answer(status: StatusCode, headers: HeaderMap, body: Vec<u8>) -> Attempt {
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
    use super::super::super::config::ClientConfig;
    use super::super::super::params::Query;
    use super::*;
    use reqwest::header::HeaderName;
    use reqwest::header::HeaderValue;
    use secrecy::SecretString;

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

    #[test]
    fn rate_limit_headers_in_go_durations() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("1s", Some(ms(1000))),
            ("250ms", Some(ms(250))),
            ("6m0s", Some(ms(360_000))),
            ("1h2m3.5s", Some(ms(3_723_500))),
            ("0s", Some(Duration::ZERO)),
            ("0", Some(Duration::ZERO)),
            ("20µs", Some(Duration::from_micros(20))),
            ("", None),
            ("1", None),
            ("s", None),
            ("-1s", None),
            ("1x", None),
            ("1.2.3s", None),
        ] {
            assert_eq!(go_duration(text), want, "{text:?}");
        }
        let told = rate_headers(&headers(&[
            ("x-ratelimit-limit-requests", "60"),
            ("x-ratelimit-remaining-requests", "59"),
            ("x-ratelimit-reset-requests", "1m0s"),
        ]));
        assert_eq!(
            told,
            Some(RateHeaders {
                limit: 60,
                remaining: 59,
                reset: Duration::from_secs(60),
            })
        );
        // All three or nothing: half a window is no window.
        assert_eq!(
            rate_headers(&headers(&[
                ("x-ratelimit-limit-requests", "60"),
                ("x-ratelimit-remaining-requests", "59"),
            ])),
            None
        );
        assert_eq!(
            rate_headers(&headers(&[
                ("x-ratelimit-limit-requests", "many"),
                ("x-ratelimit-remaining-requests", "59"),
                ("x-ratelimit-reset-requests", "1s"),
            ])),
            None
        );
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
