//! Verification of caller JWTs with `jsonwebtoken`: HS256 with a shared secret, or RS256 /
//! ES256 with a PEM key or a JWKS URL (cached, see [`super::jwks`]). The algorithm is pinned
//! by configuration, never taken from the token alone. Asymmetric keys need an audience, and
//! tokens living longer than the configured maximum are refused.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::jwks::JwksCache;
use super::{Principal, Scope};
use crate::config::{JwtConfig, JwtKeys};

/// Why a token was refused. Every variant is a 401 to the caller.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token: send `Authorization: Bearer <jwt>`")]
    Missing,
    /// Not a JWT, or a claim has the wrong type.
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token algorithm is not accepted by this service")]
    WrongAlgorithm,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token issuer is not accepted")]
    WrongIssuer,
    #[error("token audience is not accepted")]
    WrongAudience,
    /// A required claim (`exp`, `sub`) is absent.
    #[error("token lacks the required claim `{0}`")]
    MissingClaim(String),
    /// The `kid` is not in the key set, even after a refresh.
    #[error("token signing key is unknown")]
    UnknownKey,
    #[error("the token verification keys could not be fetched")]
    KeysUnavailable,
    /// `exp - iat` (or `exp - now`) exceeds the configured maximum.
    #[error("token lifetime exceeds the {0} s this service accepts: ask for a shorter-lived token")]
    LifetimeTooLong(u64),
    /// The verifier's configuration is unsafe (reported at start, never to a caller).
    #[error("{0}")]
    Misconfigured(&'static str),
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
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    iat: Option<f64>,
    /// Every other claim (the groups claim is configurable).
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// Scope (or group) names from a space-separated string or an array of strings.
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
    Jwks(Arc<JwksCache>),
}

pub struct JwtVerifier {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: Duration,
    max_lifetime: Duration,
    groups_claim: Option<String>,
}

impl JwtVerifier {
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
            JwtKeys::Jwks { url, algorithms } => Keys::Jwks(Arc::new(JwksCache::new(
                url.clone(),
                algorithms.clone(),
                config.jwks,
            )?)),
        };
        // An identity provider's key signs tokens for every service it serves: without an
        // audience, a token minted for another service would be accepted here.
        if !matches!(config.keys, JwtKeys::Hs256(_)) && config.audience.is_none() {
            return Err(AuthError::Misconfigured(
                "OG_JWT_AUDIENCE is required with a public key or a JWKS URL",
            ));
        }
        Ok(Self {
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway,
            max_lifetime: config.max_lifetime,
            groups_claim: config.groups_claim.clone(),
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
                if !cache.allows(header.alg) {
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
        self.check_lifetime(&claims)?;
        principal(claims, self.groups_claim.as_deref())
    }

    /// Refuses tokens valid for longer than the maximum. Without `iat` the remaining lifetime
    /// (`exp - now`) counts; an `iat` in the future does not shorten it.
    fn check_lifetime(&self, claims: &Claims) -> Result<(), AuthError> {
        if self.max_lifetime.is_zero() {
            return Ok(());
        }
        let exp = claims
            .exp
            .ok_or_else(|| AuthError::MissingClaim("exp".into()))?;
        let now = jsonwebtoken::get_current_timestamp() as f64;
        let start = claims.iat.map_or(now, |iat| iat.min(now));
        let allowed = (self.max_lifetime + self.leeway).as_secs_f64();
        if exp - start > allowed {
            return Err(AuthError::LifetimeTooLong(self.max_lifetime.as_secs()));
        }
        Ok(())
    }
}

fn principal(mut claims: Claims, groups_claim: Option<&str>) -> Result<Principal, AuthError> {
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
    let groups = groups_claim
        .and_then(|c| claims.other.remove(c))
        .map(|v| scope_names(&v).into_iter().map(str::to_owned).collect())
        .unwrap_or_default();
    Ok(Principal {
        subject,
        client_id: claims.azp.or(claims.client_id),
        scopes,
        groups,
    })
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
