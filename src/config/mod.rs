//! Configuration: command-line flags and `OG_*` / `DATABASE_URL` environment variables
//! (flags win), parsed by clap, then checked once at boot by [`Config::load`]. Secrets are
//! held in secret types from the moment they are parsed. Knows nothing of HTTP handlers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use secrecy::SecretString;
use url::Url;

use crate::crypto::KeyRing;
use crate::store::Backend;

mod settings;
#[cfg(test)]
mod tests;

pub use settings::{LogSettings, Settings};

/// The OpenAI API base URL used when a connection names none.
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// Why the configuration was refused at boot.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting is invalid; the message names it and the fix.
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read or written.
    #[error("{what} ({path}): {source}")]
    Io {
        /// What the file is for.
        what: &'static str,
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// How caller JWTs are verified.
pub enum JwtKeys {
    /// HS256 with a shared secret.
    Hs256(SecretString),
    /// One PEM public key and the algorithm it verifies.
    Pem {
        /// `RS256` or `ES256`.
        algorithm: Algorithm,
        pem: Vec<u8>,
    },
    /// A JWKS endpoint; keys may use any of `algorithms`.
    Jwks {
        /// Where to fetch the key set.
        url: Url,
        algorithms: Vec<Algorithm>,
    },
}

/// Caller authentication settings.
pub struct JwtConfig {
    pub keys: JwtKeys,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Tolerated clock skew.
    pub leeway: Duration,
    /// Longest accepted token lifetime (zero = any).
    pub max_lifetime: Duration,
    /// How a JWKS is cached.
    pub jwks: JwksSettings,
    /// The claim naming the caller's groups, which policy callers may match.
    pub groups_claim: Option<String>,
}

/// How a JWKS is cached: its `Cache-Control: max-age` clamped to `[min_ttl, max_ttl]`, and
/// at most one fetch per `refetch_interval` for unknown `kid`s or after a failure.
#[derive(Debug, Clone, Copy)]
pub struct JwksSettings {
    /// Shortest time a fetched set is kept.
    pub min_ttl: Duration,
    /// Longest time a fetched set is kept.
    pub max_ttl: Duration,
    /// Least time between two fetches triggered by unknown `kid`s or after a failed fetch.
    pub refetch_interval: Duration,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(3600),
            refetch_interval: Duration::from_secs(10),
        }
    }
}

/// Limits on callers of this service (zero = off).
#[derive(Debug, Clone, Copy)]
pub struct CallerLimits {
    /// Average requests per second per caller.
    pub per_second: u32,
    /// Burst per caller.
    pub burst: u32,
    /// Connection tests running at once.
    pub concurrent_connection_tests: u32,
    /// Sync requests per connection and minute.
    pub syncs_per_minute: u32,
}

impl CallerLimits {
    /// No limits (tests, benchmarks, embedding).
    pub const OFF: CallerLimits = CallerLimits {
        per_second: 0,
        burst: 0,
        concurrent_connection_tests: 0,
        syncs_per_minute: 0,
    };
}

/// Secrets generated on first start (embedded SQLite mode only), so operators can be told.
#[derive(Debug, Default, Clone)]
pub struct DevBootstrap {
    /// The encryption key file, if it was generated or loaded from the data directory.
    pub encryption_key_file: Option<PathBuf>,
    /// The JWT secret file, if it was generated or loaded from the data directory.
    pub jwt_secret_file: Option<PathBuf>,
    /// Whether anything was created during this start.
    pub created: bool,
}

/// The checked configuration the service runs with.
pub struct Config {
    pub database_url: String,
    pub backend: Backend,
    pub key_ring: KeyRing,
    /// Caller JWT verification.
    pub jwt: JwtConfig,
    /// Base URLs connections may use (normalized, exact match).
    pub allowed_base_urls: Vec<Url>,
    /// OpenAI connect timeout.
    pub openai_connect_timeout: Duration,
    /// OpenAI per-call timeout.
    pub openai_request_timeout: Duration,
    /// Retries of a failed OpenAI call (syncs; the connection test never retries).
    pub openai_max_retries: u32,
    /// The OpenAI client's rate budget: the adaptive default, not a setting; tests and
    /// benchmarks against the sandbox lift it.
    pub openai_rate: crate::openai::RateBudgetConfig,
    /// Whether the connection test trusts OpenAI to check permission before validation.
    pub openai_checks_permission_first: bool,
    /// Time between scheduled syncs (zero = off).
    pub sync_interval: Duration,
    /// Days of costs a sync fetches.
    pub sync_cost_days: u32,
    /// Longest time between full syncs (zero = always full).
    pub sync_full_every: Duration,
    /// Whether syncs list every user's organization role assignments.
    pub sync_user_roles: bool,
    /// Grant worker period (zero = off).
    pub grant_tick: Duration,
    /// Lease of a write on a grant.
    pub grant_lease: Duration,
    /// Wait for a busy access or idempotency key.
    pub grant_lock_wait: Duration,
    /// Invite polling period.
    pub grant_invite_poll: Duration,
    /// How long an offboarding request waits for the end before answering `202`.
    pub offboarding_wait: Duration,
    /// Per-request timeout of this service.
    pub request_timeout: Duration,
    /// Body size limit.
    pub body_limit_bytes: usize,
    /// Whether `serve` migrates at start.
    pub migrate: bool,
    /// CORS origins (`*` alone: any origin, without credentials).
    pub cors_allowed_origins: Vec<String>,
    /// How long idempotency keys are remembered.
    pub idempotency_ttl: Duration,
    /// Rate limits and caps on callers.
    pub limits: CallerLimits,
    /// The operator's policy (open when no policy file is given).
    pub policy: crate::service::policy::PolicyGate,
    /// What was generated in development mode.
    pub dev: DevBootstrap,
}

impl Config {
    /// Validates settings. With SQLite, missing secrets are generated into (or read from) the
    /// data directory with 0600 permissions; with Postgres, a missing encryption key is fatal.
    pub fn load(settings: &Settings) -> Result<Config, ConfigError> {
        let backend = Backend::from_url(&settings.database_url).ok_or_else(|| {
            ConfigError::Invalid(
                "DATABASE_URL must start with `sqlite:` (embedded) or `postgres:`".into(),
            )
        })?;
        let mut dev = DevBootstrap::default();
        let data_dir = settings
            .data_dir
            .clone()
            .unwrap_or_else(|| sqlite_dir(&settings.database_url));

        let ring_spec = match (non_empty(&settings.encryption_keys), backend) {
            (Some(spec), _) => SecretString::from(spec.to_owned()),
            (None, Backend::Postgres) => {
                return Err(ConfigError::Invalid(
                    "OG_ENCRYPTION_KEYS is required with Postgres: admin keys are never stored \
                     unencrypted. Generate one with `openssl rand -base64 32` and set \
                     OG_ENCRYPTION_KEYS=1:<that value>"
                        .into(),
                ));
            }
            (None, Backend::Sqlite) => {
                let path = data_dir.join("encryption-keys");
                let (spec, created) = read_or_create_secret(&path, "encryption key ring", || {
                    KeyRing::generate_spec(1)
                })?;
                dev.encryption_key_file = Some(path);
                dev.created |= created;
                spec
            }
        };
        let key_ring = KeyRing::parse(&ring_spec)
            .map_err(|e| ConfigError::Invalid(format!("OG_ENCRYPTION_KEYS: {e}")))?;

        let keys = jwt_keys(settings, backend, &data_dir, &mut dev)?;
        let jwt = JwtConfig {
            keys,
            issuer: settings.jwt_issuer.clone().filter(|s| !s.is_empty()),
            audience: settings.jwt_audience.clone().filter(|s| !s.is_empty()),
            leeway: Duration::from_secs(settings.jwt_leeway_secs),
            max_lifetime: settings.jwt_max_lifetime,
            groups_claim: non_empty(&settings.jwt_groups_claim).map(str::to_owned),
            jwks: JwksSettings {
                min_ttl: settings.jwks_min_ttl,
                max_ttl: settings.jwks_max_ttl,
                refetch_interval: settings.jwks_refetch_interval,
            },
        };
        if !matches!(jwt.keys, JwtKeys::Hs256(_)) && jwt.audience.is_none() {
            return Err(ConfigError::Invalid(
                "OG_JWT_AUDIENCE is required with OG_JWT_PUBLIC_KEY_FILE or OG_JWT_JWKS_URL: an \
                 identity provider signs tokens for many services, and only the audience says \
                 a token was meant for this one"
                    .into(),
            ));
        }
        if settings.jwks_min_ttl > settings.jwks_max_ttl {
            return Err(ConfigError::Invalid(
                "OG_JWKS_MIN_TTL must not exceed OG_JWKS_MAX_TTL".into(),
            ));
        }
        if settings.rate_limit_per_second > 0 && settings.rate_limit_burst == 0 {
            return Err(ConfigError::Invalid(
                "OG_RATE_LIMIT_BURST must be at least 1 when OG_RATE_LIMIT_PER_SECOND is set"
                    .into(),
            ));
        }
        let cors_allowed_origins = cors_origins(&settings.cors_allowed_origins)?;

        let mut allowed_base_urls =
            vec![normalize_base_url(DEFAULT_OPENAI_BASE_URL).map_err(ConfigError::Invalid)?];
        for raw in settings
            .openai_allowed_base_urls
            .iter()
            .filter(|s| !s.trim().is_empty())
        {
            let url = normalize_base_url(raw.trim()).map_err(|e| {
                ConfigError::Invalid(format!("OG_OPENAI_ALLOWED_BASE_URLS: `{raw}`: {e}"))
            })?;
            if url.scheme() == "http" && !is_loopback(&url) && !settings.openai_allow_plaintext_http
            {
                return Err(ConfigError::Invalid(format!(
                    "OG_OPENAI_ALLOWED_BASE_URLS: `{raw}` is plain http to a host other than \
                     loopback: admin keys would cross the network unencrypted. Use https, or \
                     set OG_OPENAI_ALLOW_PLAINTEXT_HTTP=true if the path is protected otherwise"
                )));
            }
            allowed_base_urls.push(url);
        }
        if settings.body_limit_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "OG_BODY_LIMIT_BYTES must be at least 1024".into(),
            ));
        }
        let policy = match settings
            .policy_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            Some(path) => {
                let gate = crate::service::policy::PolicyGate::from_file(path).map_err(|e| {
                    ConfigError::Invalid(format!("OG_POLICY_FILE {}: {e}", path.display()))
                })?;
                if matches!(jwt.keys, JwtKeys::Hs256(_)) && !settings.policy_allow_hs256 {
                    return Err(ConfigError::Invalid(
                        "OG_POLICY_FILE names callers, but tokens are verified with the HS256 \
                         shared secret: every holder of it can mint any caller's token. Use \
                         OG_JWT_PUBLIC_KEY_FILE or OG_JWT_JWKS_URL (one signer per caller), or \
                         set OG_POLICY_ALLOW_HS256=true for development"
                            .into(),
                    ));
                }
                gate
            }
            None => crate::service::policy::PolicyGate::open(),
        };

        Ok(Config {
            database_url: settings.database_url.clone(),
            backend,
            key_ring,
            jwt,
            allowed_base_urls,
            openai_connect_timeout: settings.openai_connect_timeout,
            openai_request_timeout: settings.openai_request_timeout,
            openai_max_retries: settings.openai_max_retries,
            openai_rate: Default::default(),
            openai_checks_permission_first: settings.openai_checks_permission_first,
            sync_interval: settings.sync_interval,
            sync_cost_days: settings.sync_cost_days,
            sync_full_every: settings.sync_full_every,
            sync_user_roles: settings.sync_user_roles,
            grant_tick: settings.grant_tick,
            grant_lease: settings.grant_lease,
            grant_lock_wait: settings.grant_lock_wait,
            grant_invite_poll: settings.grant_invite_poll,
            offboarding_wait: settings.offboarding_wait,
            request_timeout: settings.request_timeout,
            body_limit_bytes: settings.body_limit_bytes,
            migrate: settings.migrate,
            cors_allowed_origins,
            idempotency_ttl: settings.idempotency_ttl,
            limits: CallerLimits {
                per_second: settings.rate_limit_per_second,
                burst: settings.rate_limit_burst,
                concurrent_connection_tests: settings.max_concurrent_connection_tests,
                syncs_per_minute: settings.sync_requests_per_minute,
            },
            policy,
            dev,
        })
    }

    /// A configuration that touches no file: a fresh random encryption key, HS256 callers with
    /// `jwt_secret`, and `extra_base_urls` allowed beside OpenAI's. For tests, benchmarks and
    /// embedding: caller limits are off ([`CallerLimits::OFF`]); defaults as documented for
    /// everything else.
    pub fn ephemeral(
        database_url: &str,
        jwt_secret: SecretString,
        extra_base_urls: &[&str],
    ) -> Result<Config, ConfigError> {
        let backend = Backend::from_url(database_url)
            .ok_or_else(|| ConfigError::Invalid("unsupported database URL".into()))?;
        let mut allowed_base_urls =
            vec![normalize_base_url(DEFAULT_OPENAI_BASE_URL).map_err(ConfigError::Invalid)?];
        for raw in extra_base_urls {
            allowed_base_urls.push(normalize_base_url(raw).map_err(ConfigError::Invalid)?);
        }
        Ok(Config {
            database_url: database_url.to_owned(),
            backend,
            key_ring: KeyRing::parse(&KeyRing::generate_spec(1))
                .map_err(|e| ConfigError::Invalid(e.to_string()))?,
            jwt: JwtConfig {
                keys: JwtKeys::Hs256(jwt_secret),
                issuer: None,
                audience: None,
                leeway: Duration::from_secs(30),
                max_lifetime: Duration::from_secs(24 * 3600),
                groups_claim: None,
                jwks: JwksSettings::default(),
            },
            allowed_base_urls,
            openai_connect_timeout: Duration::from_secs(5),
            openai_request_timeout: Duration::from_secs(20),
            openai_max_retries: 6,
            openai_rate: Default::default(),
            openai_checks_permission_first: false,
            sync_interval: Duration::ZERO,
            sync_cost_days: 30,
            sync_full_every: Duration::from_secs(24 * 3600),
            sync_user_roles: false,
            grant_tick: Duration::ZERO,
            grant_lease: Duration::from_secs(120),
            grant_lock_wait: Duration::from_secs(10),
            grant_invite_poll: Duration::from_secs(60),
            offboarding_wait: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            body_limit_bytes: 64 * 1024,
            migrate: true,
            cors_allowed_origins: Vec::new(),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            limits: CallerLimits::OFF,
            policy: crate::service::policy::PolicyGate::open(),
            dev: DevBootstrap::default(),
        })
    }

    /// The HS256 secret, when tokens can be minted locally (`token` subcommand).
    pub fn hs256_secret(&self) -> Option<&SecretString> {
        match &self.jwt.keys {
            JwtKeys::Hs256(secret) => Some(secret),
            _ => None,
        }
    }
}

fn jwt_keys(
    settings: &Settings,
    backend: Backend,
    data_dir: &Path,
    dev: &mut DevBootstrap,
) -> Result<JwtKeys, ConfigError> {
    let hs256_secret = non_empty(&settings.jwt_hs256_secret);
    let public_key_file = settings
        .jwt_public_key_file
        .as_ref()
        .filter(|p| !p.as_os_str().is_empty());
    let jwks_url = non_empty(&settings.jwt_jwks_url);
    let configured = [
        hs256_secret.is_some(),
        public_key_file.is_some(),
        jwks_url.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if configured > 1 {
        return Err(ConfigError::Invalid(
            "set only one of OG_JWT_HS256_SECRET, OG_JWT_PUBLIC_KEY_FILE, OG_JWT_JWKS_URL".into(),
        ));
    }
    let algorithms = settings
        .jwt_algorithms
        .iter()
        .filter(|a| !a.trim().is_empty())
        .map(|a| match a.trim() {
            "RS256" => Ok(Algorithm::RS256),
            "ES256" => Ok(Algorithm::ES256),
            other => Err(ConfigError::Invalid(format!(
                "OG_JWT_ALGORITHMS: `{other}` is not supported (use RS256 and/or ES256)"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(secret) = hs256_secret {
        if secret.len() < 32 {
            return Err(ConfigError::Invalid(
                "OG_JWT_HS256_SECRET must be at least 32 bytes".into(),
            ));
        }
        return Ok(JwtKeys::Hs256(SecretString::from(secret.to_owned())));
    }
    if let Some(path) = public_key_file {
        let pem = std::fs::read(path).map_err(|source| ConfigError::Io {
            what: "JWT public key",
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8_lossy(&pem);
        // The key type decides the algorithm; it must also be one the operator allowed.
        let algorithm = if text.contains("BEGIN RSA PUBLIC KEY")
            || jsonwebtoken::DecodingKey::from_rsa_pem(&pem).is_ok()
        {
            Algorithm::RS256
        } else if jsonwebtoken::DecodingKey::from_ec_pem(&pem).is_ok() {
            Algorithm::ES256
        } else {
            return Err(ConfigError::Invalid(format!(
                "OG_JWT_PUBLIC_KEY_FILE ({}) is not an RSA or EC PEM public key",
                path.display()
            )));
        };
        if !algorithms.contains(&algorithm) {
            return Err(ConfigError::Invalid(format!(
                "OG_JWT_PUBLIC_KEY_FILE holds a {algorithm:?} key but OG_JWT_ALGORITHMS does not allow it"
            )));
        }
        return Ok(JwtKeys::Pem { algorithm, pem });
    }
    if let Some(url) = jwks_url {
        let url = Url::parse(url)
            .map_err(|e| ConfigError::Invalid(format!("OG_JWT_JWKS_URL is not a URL ({e})")))?;
        if algorithms.is_empty() {
            return Err(ConfigError::Invalid(
                "OG_JWT_ALGORITHMS must not be empty".into(),
            ));
        }
        return Ok(JwtKeys::Jwks { url, algorithms });
    }
    match backend {
        Backend::Postgres => Err(ConfigError::Invalid(
            "configure caller authentication: OG_JWT_HS256_SECRET, OG_JWT_PUBLIC_KEY_FILE or \
             OG_JWT_JWKS_URL"
                .into(),
        )),
        Backend::Sqlite => {
            let path = data_dir.join("jwt-hs256-secret");
            let (secret, created) = read_or_create_secret(&path, "JWT secret", || {
                use base64::Engine;
                SecretString::from(
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(rand::random::<[u8; 32]>()),
                )
            })?;
            dev.jwt_secret_file = Some(path);
            dev.created |= created;
            Ok(JwtKeys::Hs256(secret))
        }
    }
}

/// CORS origins: `*` alone (any origin), or exact origins (`scheme://host[:port]`).
fn cors_origins(raw: &[String]) -> Result<Vec<String>, ConfigError> {
    let origins: Vec<String> = raw
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if origins.iter().any(|o| o == "*") {
        if origins.len() > 1 {
            return Err(ConfigError::Invalid(
                "OG_CORS_ALLOWED_ORIGINS: `*` allows every origin; give it alone".into(),
            ));
        }
        return Ok(origins);
    }
    for origin in &origins {
        let ok = Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.origin().ascii_serialization() == *origin
        }) && axum::http::HeaderValue::from_str(origin).is_ok();
        if !ok {
            return Err(ConfigError::Invalid(format!(
                "OG_CORS_ALLOWED_ORIGINS: `{origin}` is not an origin like https://portal.example.com (scheme, lowercase host, optional port; no path or trailing slash)"
            )));
        }
    }
    Ok(origins)
}

/// An optional setting, with an empty value (`VAR=` in a compose file) meaning unset.
fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// The directory of a SQLite URL's file (`data` for the default).
fn sqlite_dir(url: &str) -> PathBuf {
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or("");
    Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Reads a secret file, or creates it (0600, create-new so two processes cannot race).
fn read_or_create_secret(
    path: &Path,
    what: &'static str,
    generate: impl FnOnce() -> SecretString,
) -> Result<(SecretString, bool), ConfigError> {
    use secrecy::ExposeSecret;
    use std::io::Write;
    let io = |source| ConfigError::Io {
        what,
        path: path.to_path_buf(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok((SecretString::from(text.trim().to_owned()), false)),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let secret = generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(secret.expose_secret().as_bytes())
                .and_then(|_| file.write_all(b"\n"))
                .map_err(io)?;
            Ok((secret, true))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(io)?;
            Ok((SecretString::from(text.trim().to_owned()), false))
        }
        Err(e) => Err(io(e)),
    }
}

/// Whether a URL's host is this machine (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses a base URL for comparison: http(s) only, no credentials, query or fragment,
/// no trailing slash on the path.
pub fn normalize_base_url(raw: &str) -> Result<Url, String> {
    let mut url = Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must use http or https".into());
    }
    if url.host_str().is_none() {
        return Err("must have a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}
