//! Building the key-exchange engine from the router's certificate, its ML-KEM keys and the
//! plan's peers, at start-up and again when the router's certificate is replaced.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::info;

use super::plan::Plan;
use super::{DaemonError, IdentitySigner, os_seeded_rng};
use crate::kex::{self, Action, EngineConfig, HmacAlgorithm, MlKemKeyPair, PeerConfig, PeerId};
use crate::pki::OwnIdentity;

/// Creates the engine with every peer of `plan` added (none without ESKM); returns it with the actions of its
/// first steps (certificates to send, keys to open). The boot id is the wall-clock time in
/// microseconds, so it grows across restarts and across rebuilds within one run.
pub fn build(
    plan: &Plan,
    identity: &Arc<OwnIdentity>,
    ml_kem: Vec<MlKemKeyPair>,
    key_grace: Duration,
    now: Duration,
) -> Result<(kex::Engine, Vec<Action>), DaemonError> {
    let boot_id = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_micros() as u64);
    let timers = kex::KexTimers { switch_delay: key_grace, grace: key_grace, ..plan.timers };
    let config = EngineConfig {
        peering_common_name: plan.peering_common_name.clone(),
        ml_kem_keygen_priority: plan.ml_kem_keygen_priority,
        boot_id,
        certificate: identity.certificate_der().to_vec(),
        metadata_hmac: HmacAlgorithm::Sha384,
        timers,
    };
    let (mut engine, mut pending) = kex::Engine::new(
        config,
        Box::new(IdentitySigner(Arc::clone(identity))),
        ml_kem,
        Box::new(os_seeded_rng()?),
        now,
    )
    .map_err(|e| DaemonError::Kex(e.to_string()))?;
    // Without ESKM the engine has no peers, so it sends nothing and installs no keys.
    let peers = if plan.eskm { plan.peers.as_slice() } else { &[] };
    for (index, peer) in peers.iter().enumerate() {
        let config = PeerConfig {
            peering_common_name: peer.peering_common_name.clone(),
            ml_kem_keygen_priority: peer.ml_kem_keygen_priority,
            algorithm: peer.algorithm,
        };
        let actions = engine
            .add_peer(PeerId(index as u32), config, now)
            .map_err(|e| DaemonError::Kex(e.to_string()))?;
        pending.extend(actions);
        info!(peer = %peer.name, algorithm = %peer.algorithm, "peer configured");
    }
    Ok((engine, pending))
}
