//! The per-connection rate budget: learns how fast OpenAI lets us go and spends it by priority.
//!
//! OpenAI's admin limits are unknown in advance (as low as a few requests a minute on some
//! endpoints), mostly come without rate-limit headers, and may be counted per endpoint
//! template (`GET /organization/projects/{}/users`) or per concrete path. So the budget:
//! - starts optimistic: nothing learned, nothing paced (the client's concurrency cap holds);
//! - on a 429 pauses the scope (for `Retry-After`, else a pause that doubles while 429s go on)
//!   and learns a window from what the server let through before it: the N successes since
//!   the scope's last pause, per the time they took plus the pause (for a server window of N
//!   requests per W seconds that is N per W; with `Retry-After` in whole seconds, rounded up,
//!   the window is guessed to be those whole seconds, falling back to the longer length if
//!   the guess draws a 429); refused again inside a learned window, a tenth fewer requests;
//! - tells template limits from path limits by where the 429 lands: on a path that took most
//!   of its template's recent requests it is learned for that path only (the other paths of
//!   the template stay free), on a path barely used yet it can only be the template's limit;
//! - spends a learned window as a window: N requests, then nothing until W after the first of
//!   them. A server that counts fixed windows starts its next one on the same request as we
//!   do (its window ended no later than ours), so it never sees more than N in one; a token
//!   bucket of N per W is full again after W. Bursting a window, rather than spacing requests
//!   1/rate apart, is what a 60-a-minute limit needs: 60 at once and then a minute, not one a
//!   second for two minutes;
//! - gives background work (syncs) only `background_share` of a window on endpoints that
//!   interactive work (grants, tests) used in the last ten minutes, which may take the rest, and probes upward slowly (5% more a window after a
//!   minute without 429s), in case a limit was raised;
//! - when the server sends OpenAI's `x-ratelimit-*-requests` headers, believes them instead
//!   of guessing: no more requests than `remaining` (less those still in flight, which the
//!   server may not have counted yet) until `reset`, then `limit` again; the window so told
//!   is kept like a learned one, so the first sync of a replica draws no 429 to learn it;
//! - hands out what it learned ([`LearnedLimit`]) so the caller can keep it between runs and
//!   replicas, and takes it back ([`RateBudget::seed`]).
//!
//! Depends on nothing else of ours but the config.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;

use super::config::RateBudgetConfig;

/// Groups of endpoints, for logs and error messages (the budget itself is per template).
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

/// Who is waiting: interactive work (a grant, a revoke, a connection test) goes before
/// background work (a sync) on the same connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    #[default]
    Interactive,
    Background,
}

/// Every literal path segment of OpenAI's admin API (from `spec/openai-admin-api`): any other
/// segment is an id, so a concrete path maps to its template. An id can never be one of these
/// words (OpenAI ids carry a prefix: `user_…`, `proj_…`).
const LITERAL_SEGMENTS: &[&str] = &[
    "activate",
    "admin_api_keys",
    "api_keys",
    "archive",
    "audio_speeches",
    "audio_transcriptions",
    "audit_logs",
    "certificates",
    "code_interpreter_sessions",
    "completions",
    "costs",
    "data_retention",
    "deactivate",
    "embeddings",
    "file_search_calls",
    "groups",
    "hosted_tool_permissions",
    "images",
    "invites",
    "model_permissions",
    "moderations",
    "organization",
    "projects",
    "rate_limits",
    "roles",
    "service_accounts",
    "spend_alerts",
    "spend_limit",
    "usage",
    "users",
    "vector_stores",
    "web_search_calls",
];

/// `GET /organization/projects/{}/users` for `["organization", "projects", "proj_1", "users"]`.
pub(crate) fn template_key(method: &Method, path: &[&str]) -> String {
    let mut key = method.as_str().to_owned();
    key.push(' ');
    for segment in path {
        key.push('/');
        key.push_str(if LITERAL_SEGMENTS.contains(segment) {
            segment
        } else {
            "{}"
        });
    }
    key
}

fn path_key(method: &Method, path: &[&str]) -> String {
    let mut key = method.as_str().to_owned();
    key.push(' ');
    for segment in path {
        key.push('/');
        key.push_str(segment);
    }
    key
}

/// A window the budget learned for one scope: what to keep between runs and replicas.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnedLimit {
    /// `GET /organization/projects/{}/users` (a template) or, with `per_path`, a concrete path.
    pub scope: String,
    pub per_path: bool,
    /// Requests the server let through per `window`.
    pub requests: u32,
    pub window: Duration,
    /// 429s this scope drew (in this process).
    pub throttled: u64,
    /// When it was learned, in Unix milliseconds (the newer of two wins on a merge).
    pub learned_at_ms: i64,
}

impl LearnedLimit {
    pub fn per_second(&self) -> f64 {
        f64::from(self.requests) / self.window.as_secs_f64().max(1e-3)
    }
}

/// What a caller got from `acquire`: which scopes it was counted in, and their generation
/// (so the other 429s of one burst, sent before the first came back, teach nothing again).
#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    template: String,
    path: String,
    template_generation: u64,
    path_generation: Option<u64>,
}

/// What OpenAI's `x-ratelimit-limit-requests`, `-remaining-requests` and `-reset-requests`
/// said with one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateHeaders {
    pub limit: u32,
    pub remaining: u32,
    /// Until the window resets (from when the answer came).
    pub reset: Duration,
}

/// A scope's window as the server's headers told it.
#[derive(Debug, Clone, Copy)]
struct Told {
    limit: u32,
    /// The fewest `remaining` an answer of this window said. The server counts in the
    /// order requests arrive, so every request answered so far is counted in it, and those
    /// in flight may be: `remaining − in flight` may still go.
    remaining: u32,
    reset_at: Instant,
    /// The longest `reset` seen: the window's length (a fresh window's first answer says
    /// nearly all of it).
    window: Duration,
    /// Set when our clock, not an answer, started this window (the last told one ended):
    /// the end the server told for that one, to know its next window's answers apart.
    rolled_from: Option<Instant>,
}

impl Told {
    fn left(&self, in_flight: u32) -> u32 {
        self.remaining.saturating_sub(in_flight)
    }
}

/// Answers of one window may tell its end a little differently (the server rounds, latency
/// varies); further apart than this they are two windows.
const TOLD_SLACK: Duration = Duration::from_millis(50);

/// A learned window: at most `requests` per `length`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    requests: u32,
    length: Duration,
}

impl Window {
    /// How long we keep a window open: its length and a margin (2%, at least 10 ms), so that
    /// the first request of our next window cannot reach the server before its window has
    /// ended (two requests sent in order can arrive a few milliseconds apart the other way).
    fn span(self) -> Duration {
        self.length + (self.length / 50).max(Duration::from_millis(10))
    }
}

/// One scope's pace.
#[derive(Debug)]
struct Scope {
    /// `None`: nothing learned, not paced.
    limit: Option<Window>,
    learned_at_ms: i64,
    /// The current window of ours: when its first request went, and how many went since.
    window_start: Option<Instant>,
    window_used: u32,
    paused_until: Option<Instant>,
    /// The next pause after a 429 without `Retry-After` (doubles while they go on).
    pause: Duration,
    generation: u64,
    /// The first request since the scope was last paused, and the successes since.
    run_started: Option<Instant>,
    run_ok: u32,
    /// The window length certain to be long enough, while `limit` holds a shorter guess.
    fallback: Option<Duration>,
    /// The generation whose window the first 429 taught: its late answers still count.
    learned_from: Option<u64>,
    /// The last interactive request (see `allowance`).
    last_interactive: Option<Instant>,
    /// Whether the limit held a request back since the last change, and when that was.
    binding: bool,
    last_change: Instant,
    throttled: u64,
    /// Requests counted here whose answer has not come yet.
    in_flight: u32,
    /// What the rate-limit headers said last; while it holds it replaces `limit`.
    told: Option<Told>,
}

impl Scope {
    fn new(config: &RateBudgetConfig, now: Instant) -> Self {
        Scope {
            limit: None,
            learned_at_ms: 0,
            window_start: None,
            window_used: 0,
            paused_until: None,
            pause: config.default_pause,
            generation: 0,
            run_started: None,
            run_ok: 0,
            fallback: None,
            learned_from: None,
            last_interactive: None,
            binding: false,
            last_change: now,
            throttled: 0,
            in_flight: 0,
            told: None,
        }
    }

    /// Requests of `priority` a window allows. Background work leaves room for interactive
    /// work only on the endpoints interactive work used lately: the lists a sync reads are
    /// rarely what a grant calls.
    fn allowance(&self, limit: Window, priority: Priority, config: &RateBudgetConfig) -> u32 {
        let now = Instant::now();
        let shared = self
            .last_interactive
            .is_some_and(|t| now.duration_since(t) < INTERACTIVE_RECENTLY);
        match priority {
            Priority::Background if shared => {
                let share = config.background_share.clamp(0.0, 1.0);
                // Truncation is the point: the rest of the window is interactive work's.
                ((f64::from(limit.requests) * share) as u32).max(1)
            }
            _ => limit.requests,
        }
    }

    /// How long a request of `priority` must wait before it may go.
    fn wait(&mut self, now: Instant, priority: Priority, config: &RateBudgetConfig) -> Duration {
        if priority == Priority::Interactive {
            // Seen waiting: background work leaves it room from this window on.
            self.last_interactive = Some(now);
        }
        if let Some(until) = self.paused_until {
            if until > now {
                return until - now;
            }
            self.paused_until = None;
        }
        if let Some(told) = self.told_now(now) {
            let window = Window {
                requests: told.limit,
                length: told.window,
            };
            // Background work leaves interactive work its share of what is left.
            let reserve = told.limit - self.allowance(window, priority, config).min(told.limit);
            if told.left(self.in_flight) > reserve {
                return Duration::ZERO;
            }
            self.binding = true;
            // The same margin as a learned window's (see `Window::span`).
            let margin = window.span() - window.length;
            return told.reset_at + margin - now;
        }
        let Some(limit) = self.limit else {
            return Duration::ZERO;
        };
        match self.window_start {
            Some(start) if now < start + limit.span() => {
                if self.window_used < self.allowance(limit, priority, config) {
                    Duration::ZERO
                } else {
                    self.binding = true;
                    start + limit.span() - now
                }
            }
            _ => Duration::ZERO,
        }
    }

    /// The told window as of `now`: once its reset has passed, a new one of `limit` starts
    /// (those in flight may count in it, see [`Told`]).
    fn told_now(&mut self, now: Instant) -> Option<Told> {
        let told = self.told.as_mut()?;
        if now >= told.reset_at {
            told.rolled_from = Some(told.rolled_from.unwrap_or(told.reset_at));
            told.remaining = told.limit;
            told.reset_at = now + told.window;
        }
        Some(*told)
    }

    /// Takes in what an answer's rate-limit headers say; `counted`: its request was counted
    /// in this scope; `keep`: the headers surely tell this scope's window, worth keeping.
    fn on_answer(&mut self, now: Instant, counted: bool, rate: Option<RateHeaders>, keep: bool) {
        if counted {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        let Some(rate) = rate.filter(|r| r.limit > 0) else {
            return;
        };
        let reset_at = now + rate.reset;
        let remaining = rate.remaining.min(rate.limit);
        let window = self.told.map_or(rate.reset, |t| t.window.max(rate.reset));
        let fresh = Told {
            limit: rate.limit,
            remaining,
            reset_at,
            window,
            rolled_from: None,
        };
        match &mut self.told {
            // We started this window by the clock: an answer from the server's next window
            // (it ends after the one that ended) tells it; a late one from before does not.
            Some(t) if t.rolled_from.is_some() => {
                if t.rolled_from.is_some_and(|end| reset_at > end + TOLD_SLACK) {
                    *t = fresh;
                }
            }
            // A late answer from a window that has ended since.
            Some(t) if reset_at + TOLD_SLACK < t.reset_at => {}
            // The same window.
            Some(t) if reset_at <= t.reset_at + TOLD_SLACK => {
                t.remaining = t.remaining.min(remaining);
                t.limit = rate.limit;
                t.window = window;
            }
            _ => self.told = Some(fresh),
        }
        if !keep {
            return;
        }
        // Kept like a learned window, for a restart or another replica.
        let ms = u64::try_from(window.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
        let kept = Window {
            requests: rate.limit,
            length: Duration::from_millis(ms.max(1)),
        };
        if self.limit != Some(kept) {
            self.limit = Some(kept);
            self.learned_at_ms = unix_ms();
        }
    }

    fn take(&mut self, now: Instant, priority: Priority) {
        self.in_flight = self.in_flight.saturating_add(1);
        self.run_started.get_or_insert(now);
        if priority == Priority::Interactive {
            self.last_interactive = Some(now);
        }
        if let Some(limit) = self.limit {
            match self.window_start {
                Some(start) if now < start + limit.span() => self.window_used += 1,
                _ => {
                    self.window_start = Some(now);
                    self.window_used = 1;
                }
            }
        }
    }

    fn on_success(&mut self, now: Instant, config: &RateBudgetConfig, generation: Option<u64>) {
        // An answer to a request sent in the window the first 429 taught us: it went through
        // in that window too, so the window holds one more than was counted then.
        if generation.is_some() && generation == self.learned_from && self.told.is_none() {
            if let Some(limit) = &mut self.limit {
                limit.requests = limit.requests.saturating_add(1);
            }
            return;
        }
        self.run_ok = self.run_ok.saturating_add(1);
        self.pause = config.default_pause;
        if self.told.is_some() {
            // The server says what its limit is: nothing to probe.
            return;
        }
        if let Some(limit) = &mut self.limit
            && self.binding
            && now.duration_since(self.last_change) >= config.probe_after
        {
            let more = ((f64::from(limit.requests) * config.probe_step) as u32).max(1);
            limit.requests = limit.requests.saturating_add(more);
            self.binding = false;
            self.last_change = now;
        }
    }

    /// The first 429 of a burst: pause, and learn from what went through before it.
    fn on_throttled(
        &mut self,
        now: Instant,
        retry_after: Option<Duration>,
        config: &RateBudgetConfig,
        prior: Option<(u32, Instant)>,
    ) {
        self.learned_from = self.limit.is_none().then_some(self.generation);
        self.generation += 1;
        let pause = match retry_after {
            Some(wait) => wait,
            None => {
                let pause = self.pause;
                self.pause = (self.pause * 2).min(config.max_pause);
                pause
            }
        };
        let (ok, since) = match (self.run_started, prior) {
            (Some(since), _) => (self.run_ok, since),
            (None, Some(prior)) => prior,
            (None, None) => (0, now),
        };
        let since = now.duration_since(since);
        let length = (since + pause).min(config.max_window);
        self.limit = Some(match self.limit {
            // Refused inside a window learned from a guess: the guess was wrong.
            Some(limit) if self.fallback.is_some() => Window {
                requests: limit.requests,
                length: self.fallback.take().unwrap_or(limit.length),
            },
            // Refused inside a learned window: a tenth fewer (at least one), and with one a
            // window left, longer windows.
            Some(limit) if limit.requests > 1 => Window {
                requests: limit.requests - (limit.requests / 10).max(1),
                length: limit.length,
            },
            Some(limit) => Window {
                requests: 1,
                length: (limit.length * 2).min(config.max_window),
            },
            None if ok > 0 => {
                // `Retry-After` in whole seconds is rounded up: the window ends somewhere in
                // the last second of it, so it is `since + pause` long at most. Limits are
                // per second or per minute, so guess the window is the whole seconds of
                // `Retry-After` (a fixed window that started with our first request and
                // ends when the pause does); if that guess draws a 429, fall back.
                let whole =
                    retry_after.filter(|w| w.subsec_nanos() == 0 && *w >= Duration::from_secs(1));
                match whole {
                    Some(w) if since < w && w < length => {
                        self.fallback = Some(length);
                        Window {
                            requests: ok,
                            length: w,
                        }
                    }
                    _ => Window {
                        requests: ok,
                        length: length.max(Duration::from_millis(1)),
                    },
                }
            }
            // Nothing went through since the last pause: the pause was too short, and the
            // requests waiting must not all go at once when it ends.
            None => Window {
                requests: 1,
                length: pause.max(Duration::from_millis(1)),
            },
        });
        self.learned_at_ms = unix_ms();
        let until = now + pause;
        self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        // The next window starts with the first request after the pause.
        self.window_start = None;
        self.window_used = 0;
        self.run_started = None;
        self.run_ok = 0;
        self.binding = false;
        self.last_change = now;
    }

    fn extend_pause(&mut self, now: Instant, retry_after: Option<Duration>) {
        if let Some(wait) = retry_after {
            let until = now + wait;
            self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
        }
    }
}

/// A template's recent traffic per concrete path, to tell a path's limit from the template's.
#[derive(Debug, Default)]
struct Recent {
    since: Option<Instant>,
    sends: u32,
    paths: HashMap<String, (u32, Instant)>,
}

/// How long after an interactive request on a scope background work leaves room for more.
const INTERACTIVE_RECENTLY: Duration = Duration::from_secs(600);

/// How long the per-path counts cover before they start again.
const RECENT: Duration = Duration::from_secs(60);

impl Recent {
    fn record(&mut self, now: Instant, path: &str) {
        if self.since.is_none_or(|s| now.duration_since(s) > RECENT) {
            *self = Recent {
                since: Some(now),
                ..Recent::default()
            };
        }
        self.sends += 1;
        self.paths
            .entry(path.to_owned())
            .and_modify(|(n, _)| *n += 1)
            .or_insert((1, now));
    }

    /// Whether a 429 on `path` is that path's own limit: the path took at least two and at
    /// least half of the template's recent requests.
    fn path_limited(&self, path: &str) -> Option<(u32, Instant)> {
        let &(n, first) = self.paths.get(path)?;
        (n >= 2 && 2 * n >= self.sends).then_some((n.saturating_sub(1), first))
    }
}

#[derive(Default)]
struct State {
    templates: HashMap<String, (Scope, Recent)>,
    paths: HashMap<String, Scope>,
}

/// The budget of one connection, shared by all clones of its client.
pub(crate) struct RateBudget {
    config: RateBudgetConfig,
    state: Mutex<State>,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl RateBudget {
    pub(crate) fn new(config: RateBudgetConfig) -> Self {
        RateBudget {
            config,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves only numbers behind: keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until a request to `path` may go, and counts it (the client waits for a slot in
    /// between: `ready`, then `try_acquire`).
    #[cfg(test)]
    pub(crate) async fn acquire(
        &self,
        method: &Method,
        path: &[&str],
        priority: Priority,
    ) -> Ticket {
        loop {
            match self.try_acquire(method, path, priority) {
                Ok(ticket) => return ticket,
                // Re-checked after the wait: the window may have changed meanwhile.
                Err(wait) => tokio::time::sleep(wait.max(Duration::from_millis(1))).await,
            }
        }
    }

    /// Waits until a request to `path` could go, without counting it (see `try_acquire`).
    pub(crate) async fn ready(&self, method: &Method, path: &[&str], priority: Priority) {
        let template = template_key(method, path);
        let concrete = path_key(method, path);
        let config = &self.config;
        loop {
            let wait = {
                let now = Instant::now();
                let mut state = self.state();
                let State { templates, paths } = &mut *state;
                let (scope, _) = templates
                    .entry(template.clone())
                    .or_insert_with(|| (Scope::new(config, now), Recent::default()));
                let wait = scope.wait(now, priority, config);
                match paths.get_mut(&concrete) {
                    Some(p) => wait.max(p.wait(now, priority, config)),
                    None => wait,
                }
            };
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// Counts a request to `path` if it may go now; else how long to wait. The client calls
    /// it once it holds a slot, right before sending: a request counted in one window and
    /// sent in the next (after waiting for a slot) would overfill the server's next window.
    pub(crate) fn try_acquire(
        &self,
        method: &Method,
        path: &[&str],
        priority: Priority,
    ) -> Result<Ticket, Duration> {
        let template = template_key(method, path);
        let concrete = path_key(method, path);
        let config = &self.config;
        let now = Instant::now();
        let mut state = self.state();
        let State { templates, paths } = &mut *state;
        let (scope, recent) = templates
            .entry(template.clone())
            .or_insert_with(|| (Scope::new(config, now), Recent::default()));
        let mut wait = scope.wait(now, priority, config);
        let path_generation = match paths.get_mut(&concrete) {
            Some(p) => {
                wait = wait.max(p.wait(now, priority, config));
                if wait.is_zero() {
                    p.take(now, priority);
                }
                Some(p.generation)
            }
            None => None,
        };
        if !wait.is_zero() {
            return Err(wait);
        }
        scope.take(now, priority);
        recent.record(now, &concrete);
        Ok(Ticket {
            template_generation: scope.generation,
            template,
            path: concrete,
            path_generation,
        })
    }

    /// Records that an attempt's answer came (any answer, or none: a network error), with
    /// its rate-limit headers if it had them. Call it before `on_success` / `on_throttled`.
    pub(crate) fn on_answer(&self, ticket: &Ticket, rate: Option<RateHeaders>) {
        let now = Instant::now();
        let config = &self.config;
        let mut state = self.state();
        let State { templates, paths } = &mut *state;
        let Some((template, recent)) = templates.get_mut(&ticket.template) else {
            return;
        };
        let counted_on_path = ticket.path_generation.is_some();
        let rate = rate.filter(|r| r.limit > 0 && config.learn);
        // Whose window the headers tell, from their numbers: a server that counted more
        // requests than we sent to this path lately counts the template's. Else it may
        // count the path's only, and pacing the template by one path's `remaining` would
        // slow its other paths for nothing; but once that is no more than could be in
        // flight, both are paced by it (the template at worst to that many in flight)
        // and the path gets a scope of its own; only the path's, when it took most of
        // the template's recent requests.
        let sent_to_path = recent.paths.get(&ticket.path).map_or(1, |(n, _)| *n);
        let (to_template, to_path, kept) = match rate {
            None => (None, None, false),
            Some(r) if r.limit.saturating_sub(r.remaining) > sent_to_path => (rate, None, true),
            // Most of the template's recent requests went to this path (a 429 here would
            // be learned for it alone): its own window.
            Some(_)
                if paths.contains_key(&ticket.path)
                    || recent.path_limited(&ticket.path).is_some() =>
            {
                (
                    None,
                    rate.filter(|r| {
                        r.remaining < template.in_flight || paths.contains_key(&ticket.path)
                    }),
                    false,
                )
            }
            Some(r) if r.remaining < template.in_flight => (rate, rate, false),
            Some(_) => (None, None, false),
        };
        template.on_answer(now, true, to_template, kept);
        if to_path.is_some() {
            paths
                .entry(ticket.path.clone())
                .or_insert_with(|| Scope::new(config, now))
                .on_answer(now, counted_on_path, to_path, true);
        } else if counted_on_path && let Some(p) = paths.get_mut(&ticket.path) {
            p.on_answer(now, true, None, false);
        }
    }

    /// Records an answer that was not a 429.
    pub(crate) fn on_success(&self, ticket: &Ticket) {
        let now = Instant::now();
        let mut state = self.state();
        if let Some((scope, _)) = state.templates.get_mut(&ticket.template) {
            scope.on_success(now, &self.config, Some(ticket.template_generation));
        }
        if let Some(scope) = state.paths.get_mut(&ticket.path) {
            scope.on_success(now, &self.config, ticket.path_generation);
        }
    }

    /// Records a 429: pauses and slows the scope it belongs to (once per burst).
    pub(crate) fn on_throttled(&self, ticket: &Ticket, retry_after: Option<Duration>) {
        if !self.config.learn {
            return self.count_only(ticket);
        }
        let now = Instant::now();
        let config = &self.config;
        let mut state = self.state();
        let State { templates, paths } = &mut *state;
        let Some((template, recent)) = templates.get_mut(&ticket.template) else {
            return;
        };
        template.throttled += 1;
        let path_limited = recent.path_limited(&ticket.path);
        let known_path = paths.contains_key(&ticket.path);
        if path_limited.is_some() || known_path {
            let scope = paths
                .entry(ticket.path.clone())
                .or_insert_with(|| Scope::new(config, now));
            scope.throttled += 1;
            if ticket.path_generation.is_none_or(|g| g == scope.generation) {
                scope.on_throttled(now, retry_after, config, path_limited);
            } else {
                scope.extend_pause(now, retry_after);
            }
            return;
        }
        if ticket.template_generation == template.generation {
            template.on_throttled(now, retry_after, config, None);
        } else {
            template.extend_pause(now, retry_after);
        }
    }

    fn count_only(&self, ticket: &Ticket) {
        if let Some((scope, _)) = self.state().templates.get_mut(&ticket.template) {
            scope.throttled += 1;
        }
    }

    /// 429s met so far, over all scopes (path scopes count in their template too).
    pub(crate) fn throttled(&self) -> u64 {
        self.state()
            .templates
            .values()
            .map(|(s, _)| s.throttled)
            .sum()
    }

    /// Every window learned so far, templates first.
    pub(crate) fn learned(&self) -> Vec<LearnedLimit> {
        let state = self.state();
        let mut out: Vec<LearnedLimit> = Vec::new();
        let templates = state.templates.iter().map(|(k, (s, _))| (k, s, false));
        let paths = state.paths.iter().map(|(k, s)| (k, s, true));
        for (scope, s, per_path) in templates.chain(paths) {
            if let Some(limit) = s.limit
                && s.learned_at_ms > 0
            {
                out.push(LearnedLimit {
                    scope: scope.clone(),
                    per_path,
                    requests: limit.requests,
                    window: limit.length,
                    throttled: s.throttled,
                    learned_at_ms: s.learned_at_ms,
                });
            }
        }
        out.sort_by(|a, b| (a.per_path, &a.scope).cmp(&(b.per_path, &b.scope)));
        out
    }

    /// Takes windows learned elsewhere (the store: an earlier run, another replica); one
    /// learned here more recently is kept.
    pub(crate) fn seed(&self, limits: &[LearnedLimit]) {
        if !self.config.learn {
            return;
        }
        let now = Instant::now();
        let config = &self.config;
        let mut state = self.state();
        for limit in limits {
            if limit.requests == 0 || limit.window.is_zero() {
                continue;
            }
            let scope = if limit.per_path {
                state
                    .paths
                    .entry(limit.scope.clone())
                    .or_insert_with(|| Scope::new(config, now))
            } else {
                &mut state
                    .templates
                    .entry(limit.scope.clone())
                    .or_insert_with(|| (Scope::new(config, now), Recent::default()))
                    .0
            };
            if scope.learned_at_ms < limit.learned_at_ms {
                scope.limit = Some(Window {
                    requests: limit.requests,
                    length: limit.window.min(config.max_window),
                });
                scope.learned_at_ms = limit.learned_at_ms;
            }
        }
    }
}

#[cfg(test)]
mod tests;
