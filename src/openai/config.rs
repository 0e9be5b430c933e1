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
            // Enough to keep 20 ms answers coming at 800 a second when nothing limits us, few
            // enough that the first burst into an unknown limit costs a handful of 429s.
            max_concurrency: 16,
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
    /// Retries after a 429 (counted apart from `max_retries`: the request was refused, not
    /// performed, so repeating it is always harmless; the budget paces the repeats).
    pub max_rate_limited_retries: u32,
}

impl RetryPolicy {
    /// No retries at all: the first answer is the answer (used by the connection test).
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            max_rate_limited_retries: 0,
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
            max_rate_limited_retries: 20,
        }
    }
}

/// The rate budget of each connection (see `budget`): nothing paced until OpenAI answers 429,
/// then the window it let through, per endpoint template or concrete path.
#[derive(Debug, Clone, PartialEq)]
pub struct RateBudgetConfig {
    /// Share of a learned window background work (syncs) may use: the rest is interactive
    /// work's (grants, revokes, tests), which also goes first.
    pub background_share: f64,
    /// Pause after a 429 without `Retry-After`; doubles while the 429s go on, up to `max_pause`.
    pub default_pause: Duration,
    pub max_pause: Duration,
    /// Longest window learned.
    pub max_window: Duration,
    /// While a learned window is what holds requests back and no 429 came for this long, it
    /// grows by `probe_step` (a share, at least one request), in case OpenAI raised the limit.
    pub probe_after: Duration,
    pub probe_step: f64,
    /// Learn from 429s at all (off: never paced nor paused, 429s only counted; for tests and
    /// benchmarks against a local sandbox).
    pub learn: bool,
}

impl Default for RateBudgetConfig {
    fn default() -> Self {
        RateBudgetConfig {
            background_share: 0.95,
            default_pause: Duration::from_secs(1),
            max_pause: Duration::from_secs(60),
            max_window: Duration::from_secs(600),
            probe_after: Duration::from_secs(60),
            probe_step: 0.05,
            learn: true,
        }
    }
}

impl RateBudgetConfig {
    /// A budget that never limits (for tests and benchmarks against a local sandbox).
    pub fn unlimited() -> Self {
        RateBudgetConfig {
            learn: false,
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
            max_rate_limited_retries: 0,
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
            max_rate_limited_retries: 0,
            jitter: true,
            ..RetryPolicy::default()
        };
        for d in policy.backoff() {
            // backon's jitter adds up to the delay itself again.
            assert!(d <= policy.max_delay * 2, "{d:?}");
        }
    }
}
