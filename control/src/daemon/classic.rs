//! Classic mode in the daemon: with `enhanced-security-key-management false` the keyring
//! takes its keys from the security policies ([`crate::classic`]) in place of the key
//! exchange, and the management commands report them.

use std::time::Instant;

use tracing::info;

use super::Daemon;
use super::bfdauth;
use super::plan::PathPlan;
use crate::mgmt::{KeyStatus, PeerPathSecurity};

/// Security status of every peer path without ESKM, the label SSR uses when ESKM is off.
const ESKM_DISABLED: &str = "ESKM_DISABLED";

impl Daemon {
    /// Installs the plan's classic-mode keys: the router's own metadata keys, and per peer
    /// its metadata key and pair secret. A peer with keys is in service, so its paths carry
    /// traffic as soon as BFD has them up. BFD keys change only for peers whose pair secret
    /// changed. Returns whether anything the workers use changed.
    pub(super) fn install_classic(&mut self) -> bool {
        let Some(keys) = self.plan.classic.clone() else {
            return false;
        };
        let mut changed = false;
        let own: Vec<u32> = keys.own.iter().map(|k| k.index()).collect();
        let running: Vec<u32> = self.keyring.own.iter().map(|k| k.index()).collect();
        if own != running {
            self.keyring.own = keys.own.clone();
            self.metadata_rekeyed_at = Instant::now();
            changed = true;
        }
        for index in 0..self.plan.peers.len() {
            let retired = self.plan.peers[index].retired;
            let metadata =
                if retired { None } else { keys.peer_metadata.get(index).cloned().flatten() };
            let secrets = if retired {
                Vec::new()
            } else {
                keys.pair_secrets.get(index).cloned().unwrap_or_default()
            };
            let old = &self.keyring.pair_secrets[index];
            let same_secrets =
                old.len() == secrets.len() && old.iter().zip(&secrets).all(|(a, b)| **a == **b);
            if !same_secrets {
                bfdauth::install_keys(&self.bfd, &self.plan, &self.bfd_paths, index, &secrets);
                self.keyring.pair_secrets[index] = secrets;
                changed = true;
            }
            let in_service = metadata.is_some();
            let old_index = self.keyring.peer_metadata[index].as_ref().map(|k| k.index());
            if old_index != metadata.as_ref().map(|k| k.index()) || !same_secrets {
                changed = true;
            }
            self.keyring.peer_metadata[index] = metadata;
            if self.keyring.peer_in_service[index] != in_service {
                self.keyring.peer_in_service[index] = in_service;
                changed = true;
            }
            if !retired {
                info!(peer = %self.plan.peers[index].name, in_service, "classic-mode keys installed");
            }
        }
        changed
    }

    /// Fills a `show peers security` row for classic mode. No exchange runs, so salts are
    /// 0 and nothing is received or acknowledged. The key indexes are the Security IDs of
    /// the policies' metadata keys: the one peers seal towards this router with on the
    /// path's interface, and the one it seals towards the peer with.
    pub(super) fn classic_row(&self, path: &PathPlan, row: &mut PeerPathSecurity) {
        let network_interface = &self.plan.ports[path.port].network_interface;
        let own_index = self.plan.classic.as_ref().and_then(|keys| {
            keys.own_by_interface
                .iter()
                .find(|(name, _)| name == network_interface)
                .map(|(_, index)| *index)
        });
        row.security_status = ESKM_DISABLED.into();
        row.salt = 0;
        row.peer_salt = 0;
        row.key_index = own_index.unwrap_or(0);
        row.peer_key_index =
            self.keyring.peer_metadata[path.peer].as_ref().map_or(0, |keys| keys.index());
        row.cert_received = false;
        row.cert_acknowledged = false;
        row.salt_received = false;
        row.salt_acknowledged = false;
        row.key_received = false;
        row.key_acknowledged = false;
    }

    /// Returns `show security key-status` for classic mode. Neither key manager runs: the
    /// keys are static, and only a configuration reload changes them, which the config
    /// key change count counts.
    pub(super) fn classic_key_status(&self) -> KeyStatus {
        KeyStatus {
            node: format!("{}.{}", self.plan.node, self.plan.router),
            key_manager_state: "Inactive".into(),
            rekey_index: 1,
            key_change_count: 0,
            config_key_change_count: self.classic_key_changes,
            metadata_rekey_index: 0,
            metadata_last_rekey_secs: self.metadata_rekeyed_at.elapsed().as_secs(),
            metadata_next_rekey_secs: None,
            metadata_key_manager_state: "Inactive".into(),
        }
    }
}
