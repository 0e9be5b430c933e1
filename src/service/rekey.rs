//! Key rotation: re-seal every admin key under the newest encryption key. Safe to run while
//! the service serves (each row is swapped only if nobody replaced its key meanwhile).

use crate::crypto::KeyRing;
use crate::store::{Store, StoreError};

/// What a rekey run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RekeyReport {
    /// Rows sealed under an older key.
    pub examined: usize,
    /// Rows re-sealed.
    pub resealed: usize,
    /// Rows changed by another writer during the run (already re-sealed by it).
    pub raced: usize,
    /// Rows whose key could not be opened with the configured ring (listed by id).
    pub failed: Vec<String>,
}

/// Re-seals every key not under the ring's current version.
pub async fn rekey(store: &dyn Store, ring: &KeyRing) -> Result<RekeyReport, StoreError> {
    let mut report = RekeyReport::default();
    for (id, sealed) in store.keys_not_under(ring.current_version()).await? {
        report.examined += 1;
        match ring.reseal(id, &sealed) {
            Ok(Some(new)) => {
                if store.swap_sealed_key(id, &sealed, &new).await? {
                    report.resealed += 1;
                } else {
                    report.raced += 1;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(connection_id = %id, error = %e, "cannot re-seal admin key");
                report.failed.push(id.to_string());
            }
        }
    }
    Ok(report)
}
