//! Per-peer security state: the stage of the exchange with one peer router, the values
//! and keys of its current exchange, the replay window, and the `show peers security`
//! snapshot built from them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::KexAlgorithm;
use super::dh::DhKeyPair;
use super::engine::PeerConfig;
use super::keys::{MetadataKeyBundle, PeerKeySet};
use super::mlkem::MlKemSecret;
use super::sign::PeerVerifier;

/// The `Security Status` of a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SecurityStatus {
    /// ESKM is turned off on this router.
    EskmDisabled,
    /// This node is the standby node of an HA router; the active node runs the exchange.
    EskmStandby,
    /// Exchanging certificates: waiting for the peer's certificate or its acknowledgement
    /// of ours.
    CertExch,
    /// Exchanging salts for the current exchange.
    SaltExch,
    /// Exchanging DH public values and/or the ML-KEM key and ciphertext.
    KeyExch,
    /// Peer key established; exchanging metadata keys under it.
    MkeyExch,
    /// Metadata keys exchanged and acknowledged both ways.
    MkeyExchComp,
}

impl SecurityStatus {
    /// Returns the label that `show peers security` shows.
    pub fn label(self) -> &'static str {
        match self {
            SecurityStatus::EskmDisabled => "ESKM_DISABLED",
            SecurityStatus::EskmStandby => "ESKM_STANDBY",
            SecurityStatus::CertExch => "CERT_EXCH",
            SecurityStatus::SaltExch => "SALT_EXCH",
            SecurityStatus::KeyExch => "KEY_EXCH",
            SecurityStatus::MkeyExch => "MKEY_EXCH",
            SecurityStatus::MkeyExchComp => "MKEY_EXCH_COMP",
        }
    }
}

impl fmt::Display for SecurityStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The fields of `show peers security` for one peer, plus the exchange details behind them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSecuritySnapshot {
    /// `Security Status`.
    pub status: SecurityStatus,
    /// `Salt`: this router's salt in the current exchange (0 before one starts).
    pub salt: u32,
    /// `Peer Salt`: the peer's salt in the current exchange (0 until received).
    pub peer_salt: u32,
    /// `Key Index`: this router's current metadata key index.
    pub key_index: u32,
    /// `Peer Ki`: the index of the newest metadata key received from the peer (0 if none).
    pub peer_key_index: u32,
    /// `Cert Rec`.
    pub cert_rec: bool,
    /// `Cert Ack`.
    pub cert_ack: bool,
    /// `Salt Rec`.
    pub salt_rec: bool,
    /// `Salt Ack`.
    pub salt_ack: bool,
    /// `Key Rec`: the peer's metadata key was received under the current peer key.
    pub key_rec: bool,
    /// `Key Ack`: the peer acknowledged this router's current metadata key under the
    /// current peer key.
    pub key_ack: bool,
    /// Id of the current exchange (0 before the first).
    pub exchange: u32,
    /// Algorithm configured for the peering.
    pub algorithm: KexAlgorithm,
    /// Whether the peer's paths are in service.
    pub in_service: bool,
    /// Whether the peer was declared invalid after `peer-key-timeout`.
    pub timed_out: bool,
}

/// Sliding window over the peer's sequence numbers (64 entries), so that reordered
/// messages are accepted once and duplicates never.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReplayWindow {
    top: u64,
    // Bit i set: sequence number top - i was accepted.
    bits: u64,
}

impl ReplayWindow {
    pub(crate) fn is_fresh(&self, seq: u64) -> bool {
        if seq == 0 {
            return false;
        }
        if seq > self.top {
            return true;
        }
        let age = self.top - seq;
        age < 64 && self.bits & (1u64 << age) == 0
    }

    pub(crate) fn mark(&mut self, seq: u64) {
        if seq > self.top {
            let shift = seq - self.top;
            self.bits = if shift >= 64 { 0 } else { self.bits << shift };
            self.bits |= 1;
            self.top = seq;
        } else {
            let age = self.top - seq;
            if age < 64 {
                self.bits |= 1u64 << age;
            }
        }
    }
}

/// One peer-key exchange in progress or completed.
pub(crate) struct Exchange {
    pub(crate) id: u32,
    pub(crate) algorithm: KexAlgorithm,
    pub(crate) salt: u32,
    pub(crate) peer_salt: Option<u32>,
    pub(crate) salt_ack: bool,
    pub(crate) key_sent: bool,
    pub(crate) dh: Option<DhKeyPair>,
    pub(crate) peer_dh: Option<Vec<u8>>,
    /// Whether this router generates the ML-KEM key pair (the peer encapsulates).
    pub(crate) generator: bool,
    pub(crate) peer_ek: Option<Vec<u8>>,
    pub(crate) ciphertext: Option<Vec<u8>>,
    pub(crate) kem_secret: Option<MlKemSecret>,
    pub(crate) established: bool,
    /// A sealed message from the peer opened under this exchange's key.
    pub(crate) confirmed: bool,
    pub(crate) mkey_sent: bool,
    pub(crate) peer_mkey_received: bool,
}

/// A peer key set kept to open messages of its exchange.
pub(crate) struct HeldKey {
    pub(crate) exchange: u32,
    pub(crate) keys: PeerKeySet,
    pub(crate) retire_at: Option<Duration>,
}

/// Everything the engine keeps about one peer.
pub(crate) struct Peer {
    pub(crate) config: PeerConfig,

    pub(crate) peer_boot: Option<u64>,
    pub(crate) window: ReplayWindow,
    pub(crate) tx_seq: u64,

    pub(crate) certificate: Option<Vec<u8>>,
    pub(crate) fingerprint: Option<[u8; 48]>,
    pub(crate) verifier: Option<Box<dyn PeerVerifier>>,
    pub(crate) pending_certificate: Option<Vec<u8>>,
    pub(crate) pending_message: Option<Vec<u8>>,
    pub(crate) rejected_fingerprint: Option<[u8; 48]>,
    pub(crate) cert_rec: bool,
    pub(crate) cert_ack: bool,

    pub(crate) exchange: Option<Exchange>,
    pub(crate) max_exchange: u32,
    pub(crate) keys: Vec<HeldKey>,

    pub(crate) peer_mkey: Option<MetadataKeyBundle>,
    pub(crate) mkey_acked: Option<(u32, u32)>,
    pub(crate) seal_key: Option<MetadataKeyBundle>,
    pub(crate) pending_seal: Option<(MetadataKeyBundle, Duration)>,

    pub(crate) retransmit_at: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) rekey_at: Option<Duration>,
    pub(crate) timed_out: bool,
    pub(crate) in_service: bool,
    pub(crate) status: SecurityStatus,
    pub(crate) last_auth_alarm: Option<Duration>,
    pub(crate) last_rekey_request: Option<Duration>,

    pub(crate) counters: BTreeMap<&'static str, u64>,
}

impl Peer {
    pub(crate) fn new(config: PeerConfig) -> Self {
        Peer {
            config,
            peer_boot: None,
            window: ReplayWindow::default(),
            tx_seq: 0,
            certificate: None,
            fingerprint: None,
            verifier: None,
            pending_certificate: None,
            pending_message: None,
            rejected_fingerprint: None,
            cert_rec: false,
            cert_ack: false,
            exchange: None,
            max_exchange: 0,
            keys: Vec::new(),
            peer_mkey: None,
            mkey_acked: None,
            seal_key: None,
            pending_seal: None,
            retransmit_at: None,
            deadline: None,
            rekey_at: None,
            timed_out: false,
            in_service: false,
            status: SecurityStatus::CertExch,
            last_auth_alarm: None,
            last_rekey_request: None,
            counters: BTreeMap::new(),
        }
    }

    pub(crate) fn count(&mut self, name: &'static str) {
        *self.counters.entry(name).or_insert(0) += 1;
    }

    pub(crate) fn held(&self, exchange: u32) -> Option<&PeerKeySet> {
        self.keys.iter().find(|k| k.exchange == exchange).map(|k| &k.keys)
    }

    /// Computes the stage from the flags. The engine applies standby and disabled itself.
    pub(crate) fn compute_status(&self, own_index: u32) -> SecurityStatus {
        if !(self.cert_rec && self.cert_ack) {
            return SecurityStatus::CertExch;
        }
        let Some(ex) = &self.exchange else {
            return SecurityStatus::SaltExch;
        };
        if ex.peer_salt.is_none() || !ex.salt_ack {
            return SecurityStatus::SaltExch;
        }
        if !ex.established {
            return SecurityStatus::KeyExch;
        }
        if !ex.peer_mkey_received || self.mkey_acked != Some((ex.id, own_index)) {
            return SecurityStatus::MkeyExch;
        }
        SecurityStatus::MkeyExchComp
    }

    pub(crate) fn snapshot(&self, own_index: u32) -> PeerSecuritySnapshot {
        let ex = self.exchange.as_ref();
        PeerSecuritySnapshot {
            status: self.status,
            salt: ex.map_or(0, |e| e.salt),
            peer_salt: ex.and_then(|e| e.peer_salt).unwrap_or(0),
            key_index: own_index,
            peer_key_index: self.peer_mkey.as_ref().map_or(0, |k| k.index),
            cert_rec: self.cert_rec,
            cert_ack: self.cert_ack,
            salt_rec: ex.is_some_and(|e| e.peer_salt.is_some()),
            salt_ack: ex.is_some_and(|e| e.salt_ack),
            key_rec: ex.is_some_and(|e| e.peer_mkey_received),
            key_ack: ex.is_some_and(|e| self.mkey_acked == Some((e.id, own_index))),
            exchange: ex.map_or(0, |e| e.id),
            algorithm: self.config.algorithm,
            in_service: self.in_service,
            timed_out: self.timed_out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReplayWindow;

    #[test]
    fn window_accepts_reordered_once() {
        let mut w = ReplayWindow::default();
        assert!(!w.is_fresh(0), "sequence 0 is never valid");
        for seq in [5, 3, 4, 1, 2] {
            assert!(w.is_fresh(seq), "first sight of {seq}");
            w.mark(seq);
            assert!(!w.is_fresh(seq), "second sight of {seq}");
        }
        assert!(w.is_fresh(6));
    }

    #[test]
    fn window_rejects_older_than_64() {
        let mut w = ReplayWindow::default();
        w.mark(100);
        assert!(w.is_fresh(37), "63 below the top is inside the window");
        assert!(!w.is_fresh(36), "64 below the top is outside the window");
        w.mark(300);
        assert!(!w.is_fresh(100));
        assert!(w.is_fresh(299));
    }
}
