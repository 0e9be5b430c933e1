//! Admin keys at rest: AES-256-GCM with a random 96-bit nonce per seal, a versioned key ring
//! (the newest key seals, every key opens) and associated data binding each ciphertext to its
//! connection row, key version and the base URL it may be sent to: a key copied to another
//! row, or a row whose base URL was changed behind the service's back, does not open. There
//! is no plaintext mode. Depends only on `domain`.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretString};
use url::Url;
use zeroize::Zeroizing;

use crate::domain::{ConnectionId, SealedSecret};

const NONCE_LEN: usize = 12;
/// The binding new seals use (see [`SealedSecret::binding`]).
pub const CURRENT_BINDING: u32 = 2;
const KEY_LEN: usize = 32;

/// Why sealing or opening failed. Never carries key material or plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("invalid encryption key ring: {0}")]
    InvalidKeyRing(String),
    #[error("no encryption key with version {0} is configured")]
    UnknownVersion(u32),
    /// Authentication failed: wrong key, wrong row, or tampered data.
    #[error("ciphertext does not authenticate (wrong key, wrong row or tampered)")]
    Unauthentic,
}

pub struct KeyRing {
    ciphers: BTreeMap<u32, Aes256Gcm>,
    current: u32,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("versions", &self.ciphers.keys().collect::<Vec<_>>())
            .field("current", &self.current)
            .finish()
    }
}

impl KeyRing {
    /// Parses `version:base64key[,version:base64key…]`; the highest version seals.
    /// Each key is 32 random bytes, standard base64.
    pub fn parse(spec: &SecretString) -> Result<Self, CryptoError> {
        let mut ciphers = BTreeMap::new();
        for part in spec.expose_secret().split(',').map(str::trim) {
            if part.is_empty() {
                continue;
            }
            let (version, key) = part.split_once(':').ok_or_else(|| {
                CryptoError::InvalidKeyRing(
                    "each entry must be `<version>:<base64 of 32 bytes>`".into(),
                )
            })?;
            let version: u32 = version.trim().parse().map_err(|_| {
                CryptoError::InvalidKeyRing("a key version must be a positive integer".into())
            })?;
            if version == 0 {
                return Err(CryptoError::InvalidKeyRing(
                    "key versions start at 1".into(),
                ));
            }
            let bytes = Zeroizing::new(B64.decode(key.trim()).map_err(|_| {
                CryptoError::InvalidKeyRing(format!("key version {version} is not valid base64"))
            })?);
            if bytes.len() != KEY_LEN {
                return Err(CryptoError::InvalidKeyRing(format!(
                    "key version {version} must decode to {KEY_LEN} bytes, not {}",
                    bytes.len()
                )));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| CryptoError::InvalidKeyRing("bad key length".into()))?;
            if ciphers.insert(version, cipher).is_some() {
                return Err(CryptoError::InvalidKeyRing(format!(
                    "key version {version} appears twice"
                )));
            }
        }
        let current = *ciphers
            .keys()
            .next_back()
            .ok_or_else(|| CryptoError::InvalidKeyRing("no keys given".into()))?;
        Ok(Self { ciphers, current })
    }

    /// A new random key, as a one-entry ring specification with the given version.
    pub fn generate_spec(version: u32) -> SecretString {
        let key = Zeroizing::new(rand::random::<[u8; KEY_LEN]>());
        SecretString::from(format!("{version}:{}", B64.encode(key.as_slice())))
    }

    pub fn current_version(&self) -> u32 {
        self.current
    }

    pub fn seal(
        &self,
        id: ConnectionId,
        base_url: &Url,
        plaintext: &SecretString,
    ) -> Result<SealedSecret, CryptoError> {
        self.seal_bound(id, CURRENT_BINDING, base_url, plaintext)
    }

    fn seal_bound(
        &self,
        id: ConnectionId,
        binding: u32,
        base_url: &Url,
        plaintext: &SecretString,
    ) -> Result<SealedSecret, CryptoError> {
        let cipher = self
            .ciphers
            .get(&self.current)
            .ok_or(CryptoError::UnknownVersion(self.current))?;
        let nonce = Nonce::generate();
        let aad = associated_data(id, self.current, binding, base_url)?;
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::Unauthentic)?;
        let mut ciphertext = Vec::with_capacity(NONCE_LEN + sealed.len());
        ciphertext.extend_from_slice(nonce.as_slice());
        ciphertext.extend_from_slice(&sealed);
        Ok(SealedSecret {
            key_version: self.current,
            binding,
            ciphertext,
        })
    }

    /// Decrypts a sealed key of the connection `id`. Fails if it was sealed for another row or
    /// (binding 2) another base URL.
    pub fn open(
        &self,
        id: ConnectionId,
        base_url: &Url,
        sealed: &SealedSecret,
    ) -> Result<SecretString, CryptoError> {
        let cipher = self
            .ciphers
            .get(&sealed.key_version)
            .ok_or(CryptoError::UnknownVersion(sealed.key_version))?;
        if sealed.ciphertext.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Unauthentic);
        }
        let (nonce, body) = sealed.ciphertext.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| CryptoError::Unauthentic)?;
        let aad = associated_data(id, sealed.key_version, sealed.binding, base_url)?;
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    &nonce,
                    Payload {
                        msg: body,
                        aad: &aad,
                    },
                )
                .map_err(|_| CryptoError::Unauthentic)?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| CryptoError::Unauthentic)?;
        Ok(SecretString::from(text.to_owned()))
    }

    /// Seals the way rows written before binding 2 were (row and key version only), so that
    /// tests can show such rows are upgraded. Not for production use.
    #[doc(hidden)]
    pub fn seal_legacy(
        &self,
        id: ConnectionId,
        plaintext: &SecretString,
    ) -> Result<SealedSecret, CryptoError> {
        let unused: Url = "https://legacy.invalid/"
            .parse()
            .map_err(|_| CryptoError::Unauthentic)?;
        self.seal_bound(id, 1, &unused, plaintext)
    }

    /// Re-seals under the current key and binding when `sealed` is under an older one;
    /// `None` if current.
    pub fn reseal(
        &self,
        id: ConnectionId,
        base_url: &Url,
        sealed: &SealedSecret,
    ) -> Result<Option<SealedSecret>, CryptoError> {
        if sealed.key_version == self.current && sealed.binding == CURRENT_BINDING {
            return Ok(None);
        }
        let plain = self.open(id, base_url, sealed)?;
        self.seal(id, base_url, &plain).map(Some)
    }
}

/// Binds a ciphertext to its purpose, its row, its key version and (binding 2) its base URL.
fn associated_data(
    id: ConnectionId,
    version: u32,
    binding: u32,
    base_url: &Url,
) -> Result<Vec<u8>, CryptoError> {
    match binding {
        1 => Ok(format!("openai-governor/admin-key/v1|connection={id}|key={version}").into_bytes()),
        2 => Ok(format!(
            "openai-governor/admin-key/v2|connection={id}|key={version}|base_url={base_url}"
        )
        .into_bytes()),
        _ => Err(CryptoError::Unauthentic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        s.parse().unwrap()
    }

    fn ring(spec: &str) -> KeyRing {
        KeyRing::parse(&SecretString::from(spec.to_owned())).unwrap()
    }

    #[test]
    fn seal_open_roundtrip_and_binding() {
        let spec = KeyRing::generate_spec(1);
        let ring = KeyRing::parse(&spec).unwrap();
        let id = ConnectionId::new();
        let key = SecretString::from("sk-admin-secret-value-1234".to_owned());
        let base = url("https://api.openai.com/v1");
        let sealed = ring.seal(id, &base, &key).unwrap();
        assert_eq!(sealed.binding, CURRENT_BINDING);
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            ring.open(id, &base, &sealed).unwrap().expose_secret(),
            key.expose_secret()
        );
        // Copied to another row: must not open.
        assert!(matches!(
            ring.open(ConnectionId::new(), &base, &sealed),
            Err(CryptoError::Unauthentic)
        ));
        // The row's base URL changed behind our back: must not open.
        assert!(matches!(
            ring.open(id, &url("https://evil.example/v1"), &sealed),
            Err(CryptoError::Unauthentic)
        ));
        // Relabelled as the legacy binding (which leaves the URL out): must not open.
        let legacy = SealedSecret {
            binding: 1,
            ..sealed.clone()
        };
        assert!(ring.open(id, &base, &legacy).is_err());
        // Tampered: must not open.
        let mut bad = sealed.clone();
        let last = bad.ciphertext.len() - 1;
        bad.ciphertext[last] ^= 1;
        assert!(ring.open(id, &base, &bad).is_err());
        // Two seals of the same key differ (random nonce).
        assert_ne!(
            ring.seal(id, &base, &key).unwrap().ciphertext,
            sealed.ciphertext
        );
    }

    #[test]
    fn rotation() {
        let v1 = KeyRing::generate_spec(1);
        let v2 = KeyRing::generate_spec(2);
        let old = KeyRing::parse(&v1).unwrap();
        let both = ring(&format!("{},{}", v1.expose_secret(), v2.expose_secret()));
        assert_eq!(both.current_version(), 2);
        let id = ConnectionId::new();
        let key = SecretString::from("sk-admin-rotate-me-please".to_owned());
        let base = url("https://api.openai.com/v1");
        let sealed = old.seal(id, &base, &key).unwrap();
        let resealed = both.reseal(id, &base, &sealed).unwrap().unwrap();
        assert_eq!(resealed.key_version, 2);
        assert!(both.reseal(id, &base, &resealed).unwrap().is_none());
        assert!(matches!(
            old.open(id, &base, &resealed),
            Err(CryptoError::UnknownVersion(2))
        ));
        // Changing the version label of a ciphertext breaks authentication.
        let relabelled = SealedSecret {
            key_version: 1,
            ..resealed
        };
        assert!(both.open(id, &base, &relabelled).is_err());
    }

    #[test]
    fn legacy_binding_is_resealed_with_the_base_url() {
        let ring = KeyRing::parse(&KeyRing::generate_spec(1)).unwrap();
        let id = ConnectionId::new();
        let base = url("http://127.0.0.1:8089/v1");
        let key = SecretString::from("sk-admin-legacy-binding".to_owned());
        let legacy = ring.seal_legacy(id, &key).unwrap();
        let resealed = ring.reseal(id, &base, &legacy).unwrap().unwrap();
        assert_eq!(
            (resealed.key_version, resealed.binding),
            (1, CURRENT_BINDING)
        );
        assert_eq!(
            ring.open(id, &base, &resealed).unwrap().expose_secret(),
            key.expose_secret()
        );
        assert!(
            ring.open(id, &url("http://127.0.0.1:9/v1"), &resealed)
                .is_err()
        );
    }

    #[test]
    fn bad_specs_are_refused_without_echoing_keys() {
        for spec in ["", "1", "x:AAAA", "0:AAAA", "1:not-base64!!", "1:AAAA"] {
            let err = KeyRing::parse(&SecretString::from(spec.to_owned())).unwrap_err();
            assert!(!err.to_string().contains("not-base64"), "{err}");
        }
        let k = KeyRing::generate_spec(1);
        let dup = format!("{0},{0}", k.expose_secret());
        assert!(KeyRing::parse(&SecretString::from(dup)).is_err());
    }
}
