//! Metadata-key rotations that the workers request when the tombstones of a Security ID
//! pass their high-water mark (`svr_dataplane::session::Tombstones`).
//!
//! A worker drops its tombstones of a Security ID only once this router retires that
//! metadata key. So when they fill up, the control thread starts the rotation that
//! `rotate security metadata-key` starts. Once the old key retires, its tombstones go.

use std::time::Duration;

use tracing::{info, warn};

use super::Daemon;
use crate::kex::{self, Action};

impl Daemon {
    /// Rotates the metadata key when a worker requested it, and returns whether anything
    /// the workers use changed. Without ESKM the keys come from the security policies, so a
    /// request is only logged.
    pub(super) fn poll_rotation_requests(&mut self) -> bool {
        let queue = &self.control.rotation_requests;
        let requests = std::iter::from_fn(|| queue.pop());
        if !self.plan.eskm {
            for security_id in requests {
                warn!(
                    security_id,
                    "tombstones of deleted sessions passed their high-water mark, but metadata \
                     keys from security policies cannot rotate: change the policy's keys on \
                     every router and reload, or the tombstones will be forgotten once full, \
                     and first packets of those sessions can then be replayed"
                );
            }
            return false;
        }
        let now = self.now();
        let Some((old, actions)) = rotate_on_request(requests, &mut self.kex, now) else {
            return false;
        };
        let changed = self.handle(actions);
        let index = self.kex.metadata_key_index();
        info!(
            old,
            index,
            "metadata key rotated because the tombstones of deleted sessions under the old key \
             passed their high-water mark"
        );
        changed
    }
}

/// Takes every request (a Security ID) from `requests` and rotates the metadata key of
/// `kex` once when any names its current key. Requests for an older key are dropped,
/// because a rotation since then has moved new sessions to a newer key. Returns the
/// Security ID rotated away from and the key exchange's actions.
fn rotate_on_request(
    requests: impl Iterator<Item = u32>,
    kex: &mut kex::Engine,
    now: Duration,
) -> Option<(u32, Vec<Action>)> {
    let current = kex.metadata_key_index();
    let mut requested = false;
    for security_id in requests {
        requested |= security_id == current;
    }
    requested.then(|| (current, kex.rotate_metadata_key(now)))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::kex::sign::P256Signer;
    use crate::kex::{EngineConfig, HmacAlgorithm, KexTimers};

    fn kex_engine() -> kex::Engine {
        let mut rng = StdRng::seed_from_u64(7);
        let config = EngineConfig {
            peering_common_name: "r1".into(),
            ml_kem_keygen_priority: 0,
            boot_id: 1,
            certificate: vec![1, 2, 3],
            metadata_hmac: HmacAlgorithm::Sha384,
            timers: KexTimers::default(),
        };
        let signer = Box::new(P256Signer::generate(&mut rng));
        let (engine, _) = kex::Engine::new(config, signer, vec![], Box::new(rng), Duration::ZERO)
            .expect("engine without peers");
        engine
    }

    fn opened_indexes(actions: &[Action]) -> Vec<u32> {
        actions
            .iter()
            .find_map(|action| match action {
                Action::OpenKeys { keys } => Some(keys.iter().map(|k| k.index).collect()),
                _ => None,
            })
            .unwrap_or_default()
    }

    #[test]
    fn request_for_current_key_rotates() {
        let mut kex = kex_engine();
        let first = kex.metadata_key_index();
        // Two workers request a rotation away from the current key.
        let requests = [first, first].into_iter();

        let (old, actions) = rotate_on_request(requests, &mut kex, Duration::from_secs(1))
            .expect("a request for the current key rotates it");
        assert_eq!(old, first);
        assert_eq!(kex.metadata_key_index(), first + 1, "one rotation for two requests");
        assert_eq!(opened_indexes(&actions), vec![first, first + 1]);
    }

    #[test]
    fn request_for_old_key_ignored() {
        let mut kex = kex_engine();
        let first = kex.metadata_key_index();
        kex.rotate_metadata_key(Duration::from_secs(1));
        let requests = [first].into_iter();

        assert!(rotate_on_request(requests, &mut kex, Duration::from_secs(2)).is_none());
        assert_eq!(kex.metadata_key_index(), first + 1);
    }

    #[test]
    fn no_request_no_rotation() {
        let mut kex = kex_engine();
        let first = kex.metadata_key_index();
        let requests = std::iter::empty();
        assert!(rotate_on_request(requests, &mut kex, Duration::from_secs(1)).is_none());
        assert_eq!(kex.metadata_key_index(), first);
    }
}
