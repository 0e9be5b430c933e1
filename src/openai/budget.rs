//! The per-connection rate budget: an adaptive token bucket per endpoint family.
//!
//! The buckets are `governor` GCRA limiters; this module only adds the policy around them
//! (start conservative, slow down on 429, pause for `Retry-After`, speed up again on
//! success). `governor` has no way to change a limiter's quota in place, so a rate change
//! swaps in a new limiter. Depends on nothing else of ours but the config.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::config::RateBudgetConfig;

/// Groups of endpoints that share one token bucket; each is the endpoint of its name (and its
/// items) unless noted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointFamily {
    Users,
    Invites,
    Projects,
    ProjectUsers,
    ServiceAccounts,
    ProjectApiKeys,
    ProjectGroups,
    /// `/organization/groups` and group users.
    Groups,
    /// `/organization/roles` and `/projects/{p}/roles`.
    Roles,
    /// Role assignments of users and groups, org and project level.
    RoleAssignments,
    AdminApiKeys,
    AuditLogs,
    /// `/organization/usage/*` and `/organization/costs`.
    Usage,
}

impl EndpointFamily {
    /// A stable snake_case name (for logs and metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointFamily::Users => "users",
            EndpointFamily::Invites => "invites",
            EndpointFamily::Projects => "projects",
            EndpointFamily::ProjectUsers => "project_users",
            EndpointFamily::ServiceAccounts => "service_accounts",
            EndpointFamily::ProjectApiKeys => "project_api_keys",
            EndpointFamily::ProjectGroups => "project_groups",
            EndpointFamily::Groups => "groups",
            EndpointFamily::Roles => "roles",
            EndpointFamily::RoleAssignments => "role_assignments",
            EndpointFamily::AdminApiKeys => "admin_api_keys",
            EndpointFamily::AuditLogs => "audit_logs",
            EndpointFamily::Usage => "usage",
        }
    }
}

/// What a caller got from `acquire`: the generation its request was sent under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    generation: u64,
}

struct Bucket {
    rate: f64,
    limiter: Arc<DefaultDirectRateLimiter>,
    paused_until: Option<Instant>,
    successes: u32,
    // Bumped on every slow-down, so the other 429s of the same burst (sent before it) do not
    // divide the rate again.
    generation: u64,
    throttled: u64,
}

/// A snapshot of one family's budget.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyBudget {
    pub rate_per_second: f64,
    /// 429s seen for this family.
    pub throttled: u64,
}

/// The buckets of one connection, shared by all clones of a client.
pub(crate) struct RateBudget {
    config: RateBudgetConfig,
    clock: DefaultClock,
    buckets: Mutex<HashMap<EndpointFamily, Bucket>>,
}

fn limiter(rate: f64, burst: u32) -> Arc<DefaultDirectRateLimiter> {
    let period = Duration::from_secs_f64(1.0 / rate.max(1e-6)).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    Arc::new(RateLimiter::direct(quota))
}

impl RateBudget {
    pub(crate) fn new(config: RateBudgetConfig) -> Self {
        RateBudget {
            config,
            clock: DefaultClock::default(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn with_bucket<R>(&self, family: EndpointFamily, f: impl FnOnce(&mut Bucket) -> R) -> R {
        // A panic while holding the lock leaves only numbers behind: keep going.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(family).or_insert_with(|| Bucket {
            rate: self.config.initial_per_second,
            limiter: limiter(self.config.initial_per_second, self.config.burst),
            paused_until: None,
            successes: 0,
            generation: 0,
            throttled: 0,
        });
        f(bucket)
    }

    pub(crate) async fn acquire(&self, family: EndpointFamily) -> Ticket {
        loop {
            let (limiter, paused_until, generation) = self.with_bucket(family, |b| {
                (b.limiter.clone(), b.paused_until, b.generation)
            });
            if let Some(until) = paused_until
                && until > Instant::now()
            {
                tokio::time::sleep_until(until.into()).await;
                continue;
            }
            match limiter.check() {
                Ok(()) => return Ticket { generation },
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.clock.now());
                    // Re-check after the wait: the limiter may have been swapped meanwhile.
                    tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
                }
            }
        }
    }

    /// Records a non-429 answer: after enough of them the rate grows again.
    pub(crate) fn on_success(&self, family: EndpointFamily) {
        let config = &self.config;
        self.with_bucket(family, |b| {
            b.successes += 1;
            if b.successes >= config.increase_after && b.rate < config.max_per_second {
                b.successes = 0;
                b.rate = (b.rate + config.increase_step).min(config.max_per_second);
                b.limiter = limiter(b.rate, config.burst);
            }
        });
    }

    /// Records a 429: slows the family down (once per burst) and pauses it.
    pub(crate) fn on_throttled(
        &self,
        family: EndpointFamily,
        ticket: Ticket,
        retry_after: Option<Duration>,
    ) {
        let config = &self.config;
        self.with_bucket(family, |b| {
            b.throttled += 1;
            b.successes = 0;
            if ticket.generation == b.generation {
                b.generation += 1;
                b.rate = (b.rate / config.decrease_factor.max(1.0)).max(config.min_per_second);
                // Burst 1 after a 429: the server just told us we were too fast.
                b.limiter = limiter(b.rate, 1);
            }
            let pause = retry_after.unwrap_or(config.default_pause);
            let until = Instant::now() + pause;
            if b.paused_until.is_none_or(|p| p < until) {
                b.paused_until = Some(until);
            }
        });
    }

    pub(crate) fn snapshot(&self) -> HashMap<EndpointFamily, FamilyBudget> {
        let buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        buckets
            .iter()
            .map(|(family, b)| {
                (
                    *family,
                    FamilyBudget {
                        rate_per_second: b.rate,
                        throttled: b.throttled,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RateBudgetConfig {
        RateBudgetConfig {
            initial_per_second: 100.0,
            max_per_second: 104.0,
            min_per_second: 10.0,
            burst: 3,
            decrease_factor: 2.0,
            increase_step: 2.0,
            increase_after: 3,
            default_pause: Duration::from_millis(50),
        }
    }

    #[tokio::test]
    async fn burst_goes_at_once_then_the_rate_applies() {
        let budget = RateBudget::new(RateBudgetConfig {
            initial_per_second: 20.0,
            burst: 3,
            ..config()
        });
        let start = Instant::now();
        for _ in 0..3 {
            budget.acquire(EndpointFamily::Users).await;
        }
        assert!(start.elapsed() < Duration::from_millis(30));
        for _ in 0..4 {
            budget.acquire(EndpointFamily::Users).await;
        }
        // Four more at 20/s need about 200 ms.
        let spent = start.elapsed();
        assert!(spent >= Duration::from_millis(180), "{spent:?}");
        assert!(spent < Duration::from_millis(600), "{spent:?}");
        // Another family has its own bucket.
        let other = Instant::now();
        budget.acquire(EndpointFamily::Roles).await;
        assert!(other.elapsed() < Duration::from_millis(30));
    }

    #[tokio::test]
    async fn a_429_halves_once_per_burst_and_pauses() {
        let budget = RateBudget::new(config());
        let t1 = budget.acquire(EndpointFamily::Groups).await;
        let t2 = budget.acquire(EndpointFamily::Groups).await;
        budget.on_throttled(EndpointFamily::Groups, t1, Some(Duration::from_millis(120)));
        budget.on_throttled(EndpointFamily::Groups, t2, None);
        let snap = budget.snapshot();
        let g = &snap[&EndpointFamily::Groups];
        assert_eq!(g.rate_per_second, 50.0);
        assert_eq!(g.throttled, 2);
        let start = Instant::now();
        let t3 = budget.acquire(EndpointFamily::Groups).await;
        assert!(start.elapsed() >= Duration::from_millis(100));
        budget.on_throttled(EndpointFamily::Groups, t3, Some(Duration::ZERO));
        budget.on_throttled(EndpointFamily::Groups, t3, Some(Duration::ZERO));
        assert_eq!(
            budget.snapshot()[&EndpointFamily::Groups].rate_per_second,
            25.0
        );
        let t4 = budget.acquire(EndpointFamily::Groups).await;
        budget.on_throttled(EndpointFamily::Groups, t4, Some(Duration::ZERO));
        let t5 = budget.acquire(EndpointFamily::Groups).await;
        budget.on_throttled(EndpointFamily::Groups, t5, Some(Duration::ZERO));
        // Never below the floor.
        assert_eq!(
            budget.snapshot()[&EndpointFamily::Groups].rate_per_second,
            10.0
        );
    }

    #[tokio::test]
    async fn successes_raise_the_rate_up_to_the_cap() {
        let budget = RateBudget::new(config());
        for _ in 0..9 {
            budget.on_success(EndpointFamily::Usage);
        }
        assert_eq!(
            budget.snapshot()[&EndpointFamily::Usage].rate_per_second,
            104.0
        );
    }
}
