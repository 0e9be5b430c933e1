//! The JWKS cache: keys fetched from the identity provider, kept for the response's
//! `Cache-Control: max-age` clamped to configured bounds. Lookups of known `kid`s read a
//! snapshot under a lock never held across an `await`, so they never wait for a fetch.
//! Fetches are single-flight (waiters share the one in flight), and both unknown `kid`s and
//! failed fetches are remembered for `refetch_interval`, so random `kid`s cost the provider at
//! most one request per interval. Depends on nothing of ours but the configuration.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::AuthError;
use crate::config::JwksSettings;

type KeyMap = HashMap<String, (Algorithm, DecodingKey)>;

/// A cached key set for one JWKS URL.
pub(super) struct JwksCache {
    url: url::Url,
    algorithms: Vec<Algorithm>,
    http: reqwest::Client,
    settings: JwksSettings,
    state: RwLock<State>,
    /// Held for the duration of a fetch: the single flight.
    fetch: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Default)]
struct State {
    keys: Arc<KeyMap>,
    /// Until when the set is fresh; after it a refresh starts in the background.
    fresh_until: Option<Instant>,
    /// Until when the set's keys verify at all (a stale set covers a provider outage for one
    /// more TTL, then its keys stop verifying).
    trusted_until: Option<Instant>,
    /// When the last fetch ended, and whether it failed.
    last_attempt: Option<(Instant, bool)>,
    /// Bumped by every fetch, so waiters know one ended while they waited.
    generation: u64,
}

impl State {
    fn lookup(&self, kid: &str, now: Instant) -> Option<(Algorithm, DecodingKey)> {
        if self.trusted_until.is_some_and(|t| now < t) {
            self.keys.get(kid).cloned()
        } else {
            None
        }
    }

    fn miss(&self) -> AuthError {
        match self.last_attempt {
            Some((_, true)) => AuthError::KeysUnavailable,
            _ => AuthError::UnknownKey,
        }
    }
}

impl JwksCache {
    pub(super) fn new(
        url: url::Url,
        algorithms: Vec<Algorithm>,
        settings: JwksSettings,
    ) -> Result<Self, AuthError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| AuthError::KeysUnavailable)?;
        Ok(Self {
            url,
            algorithms,
            http,
            settings,
            state: RwLock::new(State::default()),
            fetch: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    pub(super) fn allows(&self, algorithm: Algorithm) -> bool {
        self.algorithms.contains(&algorithm)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-update; the data is still whole.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The key with id `kid`, fetching the set when it is unknown (at most once per
    /// `refetch_interval`).
    pub(super) async fn key(
        self: &Arc<Self>,
        kid: &str,
    ) -> Result<(Algorithm, DecodingKey), AuthError> {
        let now = Instant::now();
        let seen = {
            let state = self.read();
            if let Some(found) = state.lookup(kid, now) {
                if state.fresh_until.is_some_and(|t| now >= t) && !self.backing_off(&state, now) {
                    self.refresh_in_background(state.generation);
                }
                return Ok(found);
            }
            if self.backing_off(&state, now) {
                return Err(state.miss());
            }
            state.generation
        };
        let _flight = self.fetch.lock().await;
        if self.read().generation == seen {
            self.refresh().await;
        }
        // Either our fetch or the one we waited for.
        let state = self.read();
        state
            .lookup(kid, Instant::now())
            .ok_or_else(|| state.miss())
    }

    fn backing_off(&self, state: &State, now: Instant) -> bool {
        state
            .last_attempt
            .is_some_and(|(at, _)| now.duration_since(at) < self.settings.refetch_interval)
    }

    /// Starts a refresh unless one is in flight; requests keep using the stale set meanwhile.
    fn refresh_in_background(self: &Arc<Self>, seen: u64) {
        let Ok(flight) = self.fetch.clone().try_lock_owned() else {
            return;
        };
        let cache = self.clone();
        tokio::spawn(async move {
            let _flight = flight;
            if cache.read().generation == seen {
                cache.refresh().await;
            }
        });
    }

    /// Fetches the set and replaces the cached one (or records the failure). Call with the
    /// fetch lock held.
    async fn refresh(&self) {
        let fetched = self.fetch_set().await;
        let now = Instant::now();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.generation += 1;
        match fetched {
            Ok((keys, ttl)) => {
                state.keys = Arc::new(keys);
                state.fresh_until = Some(now + ttl);
                state.trusted_until = Some(now + ttl * 2);
                state.last_attempt = Some((now, false));
            }
            Err(()) => state.last_attempt = Some((now, true)),
        }
    }

    async fn fetch_set(&self) -> Result<(KeyMap, Duration), ()> {
        let response = self
            .http
            .get(self.url.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| tracing::warn!(error = %e, "JWKS fetch failed"))?;
        let max_age = response
            .headers()
            .get_all(reqwest::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(max_age);
        let set: JwkSet = response
            .json()
            .await
            .map_err(|e| tracing::warn!(error = %e, "JWKS is not a key set"))?;
        let ttl = max_age
            .unwrap_or(self.settings.min_ttl)
            .clamp(self.settings.min_ttl, self.settings.max_ttl);
        let keys = set
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
        Ok((keys, ttl))
    }
}

/// `max-age=N` of a `Cache-Control` value (`no-store` / `no-cache` count as zero).
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').map(str::trim).find_map(|directive| {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        lower
            .strip_prefix("max-age=")
            .and_then(|n| n.trim_matches('"').parse::<u64>().ok())
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("Max-Age=\"5\""), Some(Duration::from_secs(5)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
