//! The raw settings: every flag and environment variable of the service subcommands (each
//! flattens [`Settings`]; `sandbox` does not), and the logging flags all subcommands share, as
//! clap parses them. Checked and turned into a [`Config`](super::Config) by `Config::load`.

use std::path::PathBuf;
use std::time::Duration;

/// Raw settings as given on the command line or in the environment. No `Debug`: it holds
/// secrets as plain strings until [`Config::load`](super::Config::load) wraps them.
#[derive(clap::Args, Clone)]
pub struct Settings {
    /// Store URL: `sqlite://path/file.db` (embedded, the default) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/openai-governor.db"
    )]
    pub database_url: String,
    /// Where development secrets are generated (SQLite only). Default: the SQLite file's directory.
    #[arg(long, env = "OG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Encryption key ring for admin keys: `version:base64(32 bytes)[,…]`; the highest version
    /// seals, all open. Required with Postgres.
    #[arg(long, env = "OG_ENCRYPTION_KEYS", hide_env_values = true)]
    pub encryption_keys: Option<String>,
    /// HS256 shared secret for caller JWTs (at least 32 bytes).
    #[arg(long, env = "OG_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<String>,
    /// Path of a PEM public key (RSA or EC P-256) verifying caller JWTs.
    #[arg(long, env = "OG_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// JWKS URL whose keys verify caller JWTs (fetched, cached, refreshed on unknown `kid`).
    #[arg(long, env = "OG_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,
    /// Asymmetric algorithms accepted (comma-separated, `RS256`, `ES256`).
    #[arg(
        long,
        env = "OG_JWT_ALGORITHMS",
        value_delimiter = ',',
        default_value = "RS256,ES256"
    )]
    pub jwt_algorithms: Vec<String>,
    /// Required `iss` claim, when set.
    #[arg(long, env = "OG_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim, when set.
    #[arg(long, env = "OG_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Clock skew tolerated on `exp` / `nbf`, in seconds.
    #[arg(long, env = "OG_JWT_LEEWAY_SECS", default_value_t = 30)]
    pub jwt_leeway_secs: u64,
    /// Longest token lifetime accepted (`exp - iat`, or `exp - now` without `iat`); `0s`
    /// accepts any.
    #[arg(long, env = "OG_JWT_MAX_LIFETIME", default_value = "24h", value_parser = humantime::parse_duration)]
    pub jwt_max_lifetime: Duration,
    /// The token claim listing the caller's groups (a string array or a space-separated
    /// string), matched by `groups:` of the policy's callers.
    #[arg(long, env = "OG_JWT_GROUPS_CLAIM")]
    pub jwt_groups_claim: Option<String>,
    /// Shortest time a fetched JWKS is kept (its `Cache-Control: max-age` is raised to this).
    #[arg(long, env = "OG_JWKS_MIN_TTL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub jwks_min_ttl: Duration,
    /// Longest time a fetched JWKS is trusted before it is fetched again (keys the provider
    /// removed stop verifying after this).
    #[arg(long, env = "OG_JWKS_MAX_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub jwks_max_ttl: Duration,
    /// Least time between two JWKS fetches caused by unknown `kid`s, and the backoff after a
    /// failed fetch.
    #[arg(long, env = "OG_JWKS_REFETCH_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub jwks_refetch_interval: Duration,
    /// How long `Idempotency-Key`s are remembered.
    #[arg(long, env = "OG_IDEMPOTENCY_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub idempotency_ttl: Duration,
    /// Requests per second each caller (token subject and client; peer IP before
    /// authentication) may make on average; `0` turns the limit off.
    #[arg(long, env = "OG_RATE_LIMIT_PER_SECOND", default_value_t = 20)]
    pub rate_limit_per_second: u32,
    /// Requests a caller may make in a burst above the average rate.
    #[arg(long, env = "OG_RATE_LIMIT_BURST", default_value_t = 100)]
    pub rate_limit_burst: u32,
    /// Connection tests (stored or dry-run) running at once across all callers; `0` = no cap.
    #[arg(long, env = "OG_MAX_CONCURRENT_CONNECTION_TESTS", default_value_t = 4)]
    pub max_concurrent_connection_tests: u32,
    /// On-demand sync requests per connection and minute; `0` = no cap.
    #[arg(long, env = "OG_SYNC_REQUESTS_PER_MINUTE", default_value_t = 6)]
    pub sync_requests_per_minute: u32,
    /// Extra OpenAI base URLs connections may use (comma-separated, exact match), e.g. a
    /// data-residency host or an egress proxy. `https://api.openai.com/v1` is always allowed.
    #[arg(long, env = "OG_OPENAI_ALLOWED_BASE_URLS", value_delimiter = ',')]
    pub openai_allowed_base_urls: Vec<String>,
    /// Allow `http://` base URLs that are not on loopback in OG_OPENAI_ALLOWED_BASE_URLS (an
    /// admin key would cross the network in clear text); off by default.
    #[arg(long, env = "OG_OPENAI_ALLOW_PLAINTEXT_HTTP", default_value_t = false, action = clap::ArgAction::Set)]
    pub openai_allow_plaintext_http: bool,
    /// Connect timeout for calls to OpenAI, e.g. `5s`.
    #[arg(long, env = "OG_OPENAI_CONNECT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub openai_connect_timeout: Duration,
    /// Timeout of one call to OpenAI, e.g. `20s`.
    #[arg(long, env = "OG_OPENAI_REQUEST_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub openai_request_timeout: Duration,
    /// Retries of a failed OpenAI read (429, 5xx, network), with exponential backoff from
    /// 250 ms (honouring `Retry-After`).
    #[arg(long, env = "OG_OPENAI_MAX_RETRIES", default_value_t = 6)]
    pub openai_max_retries: u32,
    /// Trust OpenAI to check a key's permission before validating a write, so the connection
    /// test reports write capabilities from its no-op write probes (see
    /// docs/connection-test.md). Off: they are `unknown` unless a missing-scope answer proves
    /// the order.
    #[arg(long, env = "OG_OPENAI_CHECKS_PERMISSION_FIRST", default_value_t = false, action = clap::ArgAction::Set)]
    pub openai_checks_permission_first: bool,
    /// Time between scheduled syncs of each connection (plus up to 10% jitter); `0s` turns
    /// scheduled syncs off.
    #[arg(long, env = "OG_SYNC_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub sync_interval: Duration,
    /// Longest time between two full syncs of a connection; the syncs in between read only
    /// what the audit log says changed. `0s` makes every sync full.
    #[arg(long, env = "OG_SYNC_FULL_EVERY", default_value = "24h", value_parser = humantime::parse_duration)]
    pub sync_full_every: Duration,
    /// Also sync every user's organization role assignments: one request per user each full
    /// sync, so off by default.
    #[arg(long, env = "OG_SYNC_USER_ROLES", default_value_t = false, action = clap::ArgAction::Set)]
    pub sync_user_roles: bool,
    /// How often the grant worker looks for expired grants, interrupted writes and invites to
    /// poll; `0s` turns it off (for a replica that should only serve reads).
    #[arg(long, env = "OG_GRANT_TICK", default_value = "10s", value_parser = humantime::parse_duration)]
    pub grant_tick: Duration,
    /// How long a write on a grant may take before another worker treats it as interrupted
    /// (its process died) and reconciles it.
    #[arg(long, env = "OG_GRANT_LEASE", default_value = "2m", value_parser = humantime::parse_duration)]
    pub grant_lease: Duration,
    /// How long a request waits for another write on the same access, or for the first
    /// request with the same `Idempotency-Key`, before answering 409 (retry later).
    #[arg(long, env = "OG_GRANT_LOCK_WAIT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub grant_lock_wait: Duration,
    /// How often the invite sent for a grant is polled for acceptance.
    #[arg(long, env = "OG_GRANT_INVITE_POLL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub grant_invite_poll: Duration,
    /// How long `POST /v1/offboardings` waits for the offboarding to end before answering
    /// `202` with a record to poll (it goes on either way).
    #[arg(long, env = "OG_OFFBOARDING_WAIT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub offboarding_wait: Duration,
    /// Days of daily costs each sync fetches.
    #[arg(long, env = "OG_SYNC_COST_DAYS", default_value_t = 30)]
    pub sync_cost_days: u32,
    /// Timeout of one request to this service, e.g. `60s`.
    #[arg(long, env = "OG_REQUEST_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "OG_BODY_LIMIT_BYTES", default_value_t = 64 * 1024)]
    pub body_limit_bytes: usize,
    /// Whether `serve` applies pending migrations at start. `false` for a service role that
    /// may not change the schema (migrations then run as the owner: `openai-governor migrate`).
    #[arg(long, env = "OG_MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate: bool,
    /// Origins allowed by CORS (comma-separated); none by default.
    #[arg(long, env = "OG_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
    /// The policy file (YAML): which caller may do what, where, for how long. Without one,
    /// every token with the scope may do anything (a warning at start and in `/readyz`).
    /// Reloaded on SIGHUP.
    #[arg(long, env = "OG_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,
    /// Accept a policy with the HS256 shared secret (development only: every holder of the
    /// secret can mint any caller's token, so the policy cannot tell callers apart).
    #[arg(long, env = "OG_POLICY_ALLOW_HS256", default_value_t = false, action = clap::ArgAction::Set)]
    pub policy_allow_hs256: bool,
}

/// Logging, for every subcommand (the sandbox logs too).
#[derive(clap::Args, Clone)]
pub struct LogSettings {
    /// Log format: `auto` (pretty on a terminal, JSON otherwise), `json` or `pretty`.
    #[arg(long, env = "OG_LOG_FORMAT", default_value = "auto", global = true)]
    pub log_format: String,
    /// Log filter in `tracing` syntax, e.g. `info,openai_governor=debug`.
    #[arg(long, env = "OG_LOG", default_value = "info", global = true)]
    pub log: String,
}
