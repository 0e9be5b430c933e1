//! Verification of caller JWTs with `jsonwebtoken`: HS256 with a shared secret, or RS256 /
//! ES256 with a PEM key or a JWKS URL (cached; refetched on an unknown `kid`, at most every
//! few seconds). The algorithm is pinned by configuration, never taken from the token alone.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::sync::RwLock;

use super::{Principal, Scope};
use crate::config::{JwtConfig, JwtKeys};

/// Why a token was refused. Every variant is a 401 to the caller.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token: send `Authorization: Bearer <jwt>`")]
    Missing,
    /// Not a JWT, or a claim has the wrong type.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The token's algorithm is not the one configured.
    #[error("token algorithm is not accepted by this service")]
    WrongAlgorithm,
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is in the past.
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// A required claim (`exp`, `sub`) is absent.
    #[error("token lacks the required claim `{0}`")]
    MissingClaim(String),
    /// The `kid` is not in the key set, even after a refresh.
    #[error("token signing key is unknown")]
    UnknownKey,
    /// The JWKS endpoint could not be read.
    #[error("the token verification keys could not be fetched")]
    KeysUnavailable,
}

impl From<jsonwebtoken::errors::Error> for AuthError {
    fn from(err: jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind as K;
        match err.kind() {
            K::InvalidSignature => AuthError::BadSignature,
            K::ExpiredSignature => AuthError::Expired,
            K::ImmatureSignature => AuthError::NotYetValid,
            K::InvalidIssuer => AuthError::WrongIssuer,
            K::InvalidAudience => AuthError::WrongAudience,
            K::InvalidAlgorithm | K::InvalidAlgorithmName => AuthError::WrongAlgorithm,
            K::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
            K::InvalidKeyFormat | K::InvalidRsaKey(_) | K::InvalidEcdsaKey => {
                AuthError::BadSignature
            }
            _ => AuthError::Malformed("not a valid JWT".into()),
        }
    }
}

/// The claims we read. Others are ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    scope: Option<serde_json::Value>,
    #[serde(default)]
    scp: Option<serde_json::Value>,
    #[serde(default)]
    permissions: Option<serde_json::Value>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
}

/// Scope names from a space-separated string or an array of strings.
fn scope_names(value: &serde_json::Value) -> Vec<&str> {
    match value {
        serde_json::Value::String(s) => s.split_whitespace().collect(),
        serde_json::Value::Array(items) => items.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    }
}

enum Keys {
    Static {
        algorithm: Algorithm,
        key: DecodingKey,
    },
    Jwks(JwksCache),
}

struct JwksCache {
    url: url::Url,
    algorithms: Vec<Algorithm>,
    http: reqwest::Client,
    keys: RwLock<CachedKeys>,
}

#[derive(Default)]
struct CachedKeys {
    by_kid: HashMap<String, (Algorithm, DecodingKey)>,
    fetched_at: Option<Instant>,
}

/// Minimum time between two JWKS fetches, so unknown `kid`s cannot be used to flood the IdP.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(10);

/// Verifies bearer tokens into [`Principal`]s.
pub struct JwtVerifier {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
}

impl JwtVerifier {
    /// Builds a verifier from the checked configuration.
    pub fn new(config: &JwtConfig) -> Result<Self, AuthError> {
        let keys = match &config.keys {
            JwtKeys::Hs256(secret) => Keys::Static {
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            },
            JwtKeys::Pem { algorithm, pem } => {
                let key = match algorithm {
                    Algorithm::ES256 => DecodingKey::from_ec_pem(pem),
                    _ => DecodingKey::from_rsa_pem(pem),
                }
                .map_err(|_| AuthError::Malformed("configured PEM key is invalid".into()))?;
                Keys::Static {
                    algorithm: *algorithm,
                    key,
                }
            }
            JwtKeys::Jwks { url, algorithms } => Keys::Jwks(JwksCache {
                url: url.clone(),
                algorithms: algorithms.clone(),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|_| AuthError::KeysUnavailable)?,
                keys: RwLock::new(CachedKeys::default()),
            }),
        };
        Ok(Self {
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway,
        })
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut v = Validation::new(algorithm);
        v.algorithms = vec![algorithm];
        v.leeway = self.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        // jsonwebtoken checks `iss`/`aud` only when present unless they are also required:
        // a configured issuer or audience must not be bypassed by leaving the claim out.
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(iss) => {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            None => v.iss = None,
        }
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        v
    }

    /// Verifies a compact JWT and returns the caller it names.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        // `alg: none` and unknown algorithms fail here: `Algorithm` has no such variant.
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Malformed("not a JWT with a supported algorithm".into()))?;
        let claims = match &self.keys {
            Keys::Static { algorithm, key } => {
                if header.alg != *algorithm {
                    return Err(AuthError::WrongAlgorithm);
                }
                jsonwebtoken::decode::<Claims>(token, key, &self.validation(*algorithm))?.claims
            }
            Keys::Jwks(cache) => {
                if !cache.algorithms.contains(&header.alg) {
                    return Err(AuthError::WrongAlgorithm);
                }
                let kid = header.kid.clone().ok_or(AuthError::UnknownKey)?;
                let (algorithm, key) = cache.key(&kid).await?;
                if header.alg != algorithm {
                    return Err(AuthError::WrongAlgorithm);
                }
                jsonwebtoken::decode::<Claims>(token, &key, &self.validation(algorithm))?.claims
            }
        };
        principal(claims)
    }
}

fn principal(claims: Claims) -> Result<Principal, AuthError> {
    let subject = claims
        .sub
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AuthError::MissingClaim("sub".into()))?;
    let mut scopes = BTreeSet::new();
    for value in [&claims.scope, &claims.scp, &claims.permissions]
        .into_iter()
        .flatten()
    {
        scopes.extend(scope_names(value).into_iter().filter_map(Scope::parse));
    }
    Ok(Principal {
        subject,
        client_id: claims.azp.or(claims.client_id),
        scopes,
    })
}

impl JwksCache {
    async fn key(&self, kid: &str) -> Result<(Algorithm, DecodingKey), AuthError> {
        if let Some(found) = self.keys.read().await.by_kid.get(kid) {
            return Ok(found.clone());
        }
        let mut cache = self.keys.write().await;
        // Another task may have refreshed while we waited for the lock.
        if let Some(found) = cache.by_kid.get(kid) {
            return Ok(found.clone());
        }
        let recently = cache
            .fetched_at
            .is_some_and(|t| t.elapsed() < JWKS_MIN_REFRESH);
        if recently {
            return Err(AuthError::UnknownKey);
        }
        let set: JwkSet = self
            .http
            .get(self.url.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| {
                tracing::warn!(error = %e, "JWKS fetch failed");
                AuthError::KeysUnavailable
            })?
            .json()
            .await
            .map_err(|_| AuthError::KeysUnavailable)?;
        cache.fetched_at = Some(Instant::now());
        cache.by_kid = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let alg = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                        Algorithm::ES256
                    }
                    _ => return None,
                };
                if !self.algorithms.contains(&alg) {
                    return None;
                }
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((kid, (alg, key)))
            })
            .collect();
        cache.by_kid.get(kid).cloned().ok_or(AuthError::UnknownKey)
    }
}

/// Mints an HS256 token (the `token` subcommand and tests).
pub fn mint_hs256(
    secret: &SecretString,
    subject: &str,
    scopes: &[Scope],
    lifetime: Duration,
    issuer: Option<&str>,
    audience: Option<&str>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = serde_json::json!({
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime.as_secs(),
        "scope": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
    });
    if let Some(iss) = issuer {
        claims["iss"] = iss.into();
    }
    if let Some(aud) = audience {
        claims["aud"] = aud.into();
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
}
