//! Settings of the OpenAI client: timeouts, retry policy, rate budget and concurrency.
//!
//! Plain data with production defaults; depends on nothing else of ours.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// How one client talks to OpenAI. `Default` gives sane production values.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    /// Per HTTP attempt, up to the end of the response body.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    pub user_agent: String,
    /// Most HTTP requests in flight at once, over all clones of the client.
    pub max_concurrency: usize,
    pub rate: RateBudgetConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            user_agent: concat!("openai-governor/", env!("CARGO_PKG_VERSION")).to_string(),
            max_concurrency: 8,
            rate: RateBudgetConfig::default(),
        }
    }
}

/// Retries with exponential backoff and full jitter; `Retry-After` wins when it is longer.
///
/// Retried: 429 always (the request was refused, not performed); 5xx, timeouts and broken
/// connections only for idempotent operations, or writes the caller declared safe to repeat
/// (see `Client::retrying_writes`); connection failures before anything was sent always.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub factor: f32,
    pub jitter: bool,
    /// A `Retry-After` longer than this is not waited for: the 429 is returned at once, and
    /// the endpoint family pauses for at most this long.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// No retries at all: the first answer is the answer (used by the connection test).
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    pub(crate) fn backoff(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        let mut builder = ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .with_max_times(self.max_retries as usize);
        if self.jitter {
            builder = builder.with_jitter();
        }
        builder.build()
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 6,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
            factor: 2.0,
            jitter: true,
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// The adaptive rate budget: one token bucket per endpoint family (users, projects, RBAC, ...).
///
/// Each family starts at `initial_per_second`; a 429 divides its rate by `decrease_factor`
/// (at most once per burst of concurrent 429s) and pauses it for `Retry-After`; every
/// `increase_after` successes in a row add `increase_step`, up to `max_per_second`.
#[derive(Debug, Clone, PartialEq)]
pub struct RateBudgetConfig {
    pub initial_per_second: f64,
    pub max_per_second: f64,
    pub min_per_second: f64,
    /// Requests that may go at once after an idle period.
    pub burst: u32,
    pub decrease_factor: f64,
    pub increase_step: f64,
    pub increase_after: u32,
    /// Pause after a 429 without `Retry-After`.
    pub default_pause: Duration,
}

impl Default for RateBudgetConfig {
    fn default() -> Self {
        RateBudgetConfig {
            initial_per_second: 5.0,
            max_per_second: 50.0,
            min_per_second: 0.2,
            burst: 5,
            decrease_factor: 2.0,
            increase_step: 1.0,
            increase_after: 20,
            default_pause: Duration::from_secs(1),
        }
    }
}

impl RateBudgetConfig {
    /// A budget that never limits (for tests and benchmarks against a local sandbox).
    pub fn unlimited() -> Self {
        RateBudgetConfig {
            initial_per_second: 1_000_000.0,
            max_per_second: 1_000_000.0,
            min_per_second: 1_000_000.0,
            burst: 1_000_000,
            ..RateBudgetConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_never_retries() {
        assert_eq!(RetryPolicy::none().backoff().count(), 0);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_retries: 5,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            factor: 2.0,
            jitter: false,
            max_retry_after: Duration::from_secs(1),
        };
        // backon computes in f32: compare whole milliseconds.
        let delays: Vec<_> = policy.backoff().map(|d| d.as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 500, 500]);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let policy = RetryPolicy {
            jitter: true,
            ..RetryPolicy::default()
        };
        for d in policy.backoff() {
            // backon's jitter adds up to the delay itself again.
            assert!(d <= policy.max_delay * 2, "{d:?}");
        }
    }
}
