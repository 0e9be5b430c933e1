//! Key rotation: re-seal every admin key under the newest encryption key and binding. Safe
//! to run while the service serves (each row is swapped only if nobody replaced its key
//! meanwhile). At start-up, keys sealed before the base URL joined the associated data are
//! re-sealed the same way ([`upgrade_bindings`]): the migration that a plain SQL file cannot
//! do, since it needs the key ring.

use crate::crypto::{CURRENT_BINDING, KeyRing};
use crate::store::{ConnectionStore, SealedKey, StoreError};

/// What a rekey run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RekeyReport {
    pub examined: usize,
    pub resealed: usize,
    /// Rows changed by another writer during the run (already re-sealed by it).
    pub raced: usize,
    /// Rows whose key could not be opened with the configured ring (listed by id).
    pub failed: Vec<String>,
}

/// Re-seals every key not under the ring's current version and binding.
pub async fn rekey(store: &dyn ConnectionStore, ring: &KeyRing) -> Result<RekeyReport, StoreError> {
    reseal_where(store, ring, |_| true).await
}

/// Re-seals the keys still under a legacy binding (run at start-up, after the migrations).
pub async fn upgrade_bindings(
    store: &dyn ConnectionStore,
    ring: &KeyRing,
) -> Result<RekeyReport, StoreError> {
    reseal_where(store, ring, |k| k.sealed.binding != CURRENT_BINDING).await
}

async fn reseal_where(
    store: &dyn ConnectionStore,
    ring: &KeyRing,
    wanted: impl Fn(&SealedKey) -> bool,
) -> Result<RekeyReport, StoreError> {
    let mut report = RekeyReport::default();
    let stale = store
        .keys_to_reseal(ring.current_version(), CURRENT_BINDING)
        .await?;
    for SealedKey {
        id,
        base_url,
        sealed,
    } in stale.into_iter().filter(|k| wanted(k))
    {
        report.examined += 1;
        match ring.reseal(id, &base_url, &sealed) {
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
