//! BFD authentication on peer paths: derives each path's key generations from the peer's
//! pair secrets and hands them to the BFD thread.

use tracing::warn;
use zeroize::Zeroizing;

use super::plan::Plan;
use crate::bfd::PathId;
use crate::bfd::auth::KeyGeneration;
use crate::bfd::driver::DriverHandle;

/// Installs the BFD keys derived from `secrets` (oldest first) on every path to `peer`.
/// With no secret left the paths fall back to plain BFD.
pub(super) fn install_keys(
    bfd: &DriverHandle,
    plan: &Plan,
    bfd_paths: &[Option<PathId>],
    peer: usize,
    secrets: &[Zeroizing<[u8; 32]>],
) {
    let Some(remote) = plan.peers.get(peer) else {
        return;
    };
    let keys: Vec<KeyGeneration> = secrets
        .iter()
        .map(|secret| {
            KeyGeneration::derive(secret, &plan.peering_common_name, &remote.peering_common_name)
        })
        .collect();
    for (index, path) in plan.paths.iter().enumerate() {
        if path.peer != peer {
            continue;
        }
        let Some(id) = bfd_paths.get(index).copied().flatten() else {
            continue;
        };
        if let Err(error) = bfd.set_keys(id, keys.clone()) {
            warn!(peer = %remote.name, path = index, %error, "bfd authentication keys not installed");
        }
    }
}
