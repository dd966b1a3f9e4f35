//! The key exchange engine: one per router, driving the security state machine of every
//! peer. Inputs are received messages, timer expiries, certificate validation results and
//! operator commands, each with the current time; outputs are [`Action`]s.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use std::time::Duration;
use zeroize::Zeroizing;

use rand_core::CryptoRng;
use tracing::{debug, warn};

use super::error::{ConfigError, ReceiveError};
use super::keys::{HmacAlgorithm, MetadataKeyBundle, fingerprint};
use super::mlkem::{MlKemKeyPair, MlKemLevel};
use super::msg::MessageKind;
use super::peer::{Peer, PeerSecuritySnapshot};
use super::sign::{MessageSigner, PeerVerifier};
use super::{KexAlgorithm, KexTimers};

mod exchange;
mod receive;

/// Caller-assigned id of a peer router.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub u32);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer {}", self.0)
    }
}

/// This router's side of the exchange.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// `peering-common-name` of this router.
    pub peering_common_name: String,
    /// `ml-kem-keygen-priority` of this router.
    pub ml_kem_keygen_priority: u32,
    /// Boot id: must grow across restarts of this router (the daemon uses the wall-clock
    /// time in microseconds at start-up), so that peers reject messages of an earlier boot.
    pub boot_id: u64,
    /// This router's certificate, as sent to peers (DER).
    // NOTE: there is no call to replace this router's certificate while running; a new
    // certificate takes a new engine (and so a restart as the peers see it).
    pub certificate: Vec<u8>,
    /// HMAC algorithm of this router's metadata keys.
    pub metadata_hmac: HmacAlgorithm,
    /// Timers.
    pub timers: KexTimers,
}

/// One peer router as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's `peering-common-name`.
    pub peering_common_name: String,
    /// The peer's `ml-kem-keygen-priority`, as copied into the peer entry.
    pub ml_kem_keygen_priority: u32,
    /// The algorithm resolved for this peering (see [`KexAlgorithm::resolve`]).
    pub algorithm: KexAlgorithm,
}

/// Alarms the engine raises and clears.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlarmKind {
    /// A message from the peer failed authentication (signature, or a signed value that
    /// fails cryptographic checks).
    UnableToAuthenticatePeer,
    /// No exchange completed within `peer-key-timeout`.
    PeerKeyTimeout,
    /// The caller rejected the peer's certificate.
    CertificateRejected,
}

/// An effect for the caller to carry out.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Send these bytes to the peer (in BFD metadata, on any of its paths).
    Send { peer: PeerId, bytes: Vec<u8> },
    /// Call [`Engine::on_timer`] at this time (replaces any earlier request).
    ArmTimer { at: Duration },
    /// Validate this certificate, then call [`Engine::certificate_validated`] or
    /// [`Engine::certificate_rejected`].
    ValidateCertificate { peer: PeerId, certificate: Vec<u8> },
    /// The peer presented, in a message signed with its key, the certificate accepted
    /// earlier, after it had presented one that was rejected. The exchange goes on under
    /// the accepted certificate; the owner may lift what it restricted for the rejection
    /// once the certificate still checks out.
    CertificateReturned { peer: PeerId, certificate: Vec<u8> },
    /// Seal SVR metadata towards the peer with this key from now on (`None`: no key).
    SealTowardsPeer { peer: PeerId, key: Option<MetadataKeyBundle> },
    /// This router's metadata keys that the dataplane accepts, by index.
    OpenKeys { keys: Vec<MetadataKeyBundle> },
    /// Put the peer's paths in or out of service.
    PathService { peer: PeerId, in_service: bool },
    /// Raise or clear an alarm.
    Alarm { peer: PeerId, kind: AlarmKind, raised: bool, detail: String },
}

/// The outcome of [`Engine::receive`].
#[derive(Debug)]
pub struct Receipt {
    /// Effects to carry out, also on rejection (an alarm, for example).
    pub actions: Vec<Action>,
    /// The accepted message type, or why the message was rejected.
    pub result: Result<MessageKind, ReceiveError>,
}

/// Operating mode of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Running the exchange.
    Active,
    /// HA standby node: silent, status `ESKM_STANDBY`.
    Standby,
    /// ESKM off: silent, status `ESKM_DISABLED`.
    Disabled,
}

struct OwnKey {
    bundle: MetadataKeyBundle,
    retire_at: Option<Duration>,
    // Peers that may still seal with this key, and the latest time one of them moved on.
    waiting: BTreeSet<PeerId>,
    latest_ack: Duration,
    superseded: bool,
}

struct Ctx {
    config: EngineConfig,
    fingerprint: [u8; 48],
    signer: Box<dyn MessageSigner>,
    rng: Box<dyn CryptoRng + Send>,
    ml_kem: BTreeMap<MlKemLevel, MlKemKeyPair>,
    own_keys: Vec<OwnKey>,
    next_metadata_rotation: Option<Duration>,
    mode: Mode,
    out: Vec<Action>,
    unknown_peer_count: u64,
}

/// The ESKM engine of one router.
pub struct Engine {
    ctx: Ctx,
    peers: BTreeMap<PeerId, Peer>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("name", &self.ctx.config.peering_common_name)
            .field("boot_id", &self.ctx.config.boot_id)
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

const AUTH_ALARM_INTERVAL: Duration = Duration::from_secs(60);

impl Engine {
    /// Creates the engine and this router's first metadata key (index 1).
    ///
    /// `ml_kem` holds the long-lived ML-KEM key pairs made at start-up, at most one per
    /// parameter set; a peering that needs this router to generate at a level missing here
    /// fails with [`ReceiveError::MissingMlKemKeyPair`].
    pub fn new(
        config: EngineConfig,
        signer: Box<dyn MessageSigner>,
        ml_kem: Vec<MlKemKeyPair>,
        mut rng: Box<dyn CryptoRng + Send>,
        now: Duration,
    ) -> Result<(Self, Vec<Action>), ConfigError> {
        check_name(&config.peering_common_name)?;
        let bundle = MetadataKeyBundle::generate(1, config.metadata_hmac, &mut *rng);
        let next_metadata_rotation = config.timers.rekey_interval.map(|i| now + i);
        let mut ctx = Ctx {
            fingerprint: fingerprint(&config.certificate),
            config,
            signer,
            rng,
            ml_kem: ml_kem.into_iter().map(|k| (k.level(), k)).collect(),
            own_keys: vec![OwnKey {
                bundle,
                retire_at: None,
                waiting: BTreeSet::new(),
                latest_ack: now,
                superseded: false,
            }],
            next_metadata_rotation,
            mode: Mode::Active,
            out: Vec::new(),
            unknown_peer_count: 0,
        };
        ctx.publish_open_keys();
        let mut engine = Engine { ctx, peers: BTreeMap::new() };
        let actions = engine.finish();
        Ok((engine, actions))
    }

    /// Adds a peer and starts the certificate exchange with it.
    pub fn add_peer(
        &mut self,
        id: PeerId,
        config: PeerConfig,
        now: Duration,
    ) -> Result<Vec<Action>, ConfigError> {
        check_name(&config.peering_common_name)?;
        let duplicate = config.peering_common_name == self.ctx.config.peering_common_name
            || self.peers.iter().any(|(other, p)| {
                *other != id && p.config.peering_common_name == config.peering_common_name
            });
        if duplicate {
            return Err(ConfigError::DuplicateCommonName { name: config.peering_common_name });
        }

        let mut peer = Peer::new(config);
        if self.ctx.mode == Mode::Active {
            self.ctx.send_certificate(id, &mut peer, now);
        }
        self.ctx.update_status(id, &mut peer, now);
        self.peers.insert(id, peer);
        Ok(self.finish())
    }

    /// Removes a peer; its path goes out of service and its keys are dropped.
    pub fn remove_peer(&mut self, id: PeerId, now: Duration) -> Vec<Action> {
        if let Some(mut peer) = self.peers.remove(&id) {
            self.ctx.forget_peer_keys(id, &mut peer, now);
        }
        self.finish()
    }

    /// Changes the algorithm of a peering. The peering returns to the salt stage; the
    /// certificate exchange is not repeated, and the old keys stay in use until the new
    /// exchange completes.
    pub fn set_algorithm(
        &mut self,
        id: PeerId,
        algorithm: KexAlgorithm,
        now: Duration,
    ) -> Vec<Action> {
        if let Some(peer) = self.peers.get_mut(&id)
            && peer.config.algorithm != algorithm
        {
            peer.config.algorithm = algorithm;
            if self.ctx.mode == Mode::Active && peer.cert_rec && peer.cert_ack {
                self.ctx.start_exchange(id, peer, now);
            }
            self.ctx.update_status(id, peer, now);
        }
        self.finish()
    }

    /// Switches between active, standby and disabled. Leaving standby or disabled starts
    /// every peering again with the certificate exchange. The peer's validated certificate,
    /// boot id and replay window are kept, so only this router's certificate needs an
    /// acknowledgement.
    pub fn set_mode(&mut self, mode: Mode, now: Duration) -> Vec<Action> {
        if self.ctx.mode == mode {
            return self.finish();
        }
        self.ctx.mode = mode;
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            self.ctx.forget_peer_keys(id, peer, now);
            let mut fresh = Peer::new(peer.config.clone());
            fresh.counters = std::mem::take(&mut peer.counters);
            fresh.tx_seq = peer.tx_seq;
            fresh.max_exchange = peer.max_exchange;
            fresh.peer_boot = peer.peer_boot;
            fresh.window = peer.window;
            fresh.certificate = peer.certificate.take();
            fresh.fingerprint = peer.fingerprint;
            fresh.verifier = peer.verifier.take();
            fresh.cert_rec = fresh.verifier.is_some();
            *peer = fresh;
            if mode == Mode::Active {
                self.ctx.send_certificate(id, peer, now);
            }
            self.ctx.update_status(id, peer, now);
        }
        self.finish()
    }

    /// Handles a message received from a peer.
    pub fn receive(&mut self, id: PeerId, bytes: &[u8], now: Duration) -> Receipt {
        let result = match self.peers.get_mut(&id) {
            None => {
                self.ctx.unknown_peer_count += 1;
                Err(ReceiveError::UnknownPeer)
            }
            Some(peer) => {
                let result = self.ctx.receive(id, peer, bytes, now, None);
                self.ctx.after_receive(id, peer, &result, now);
                result
            }
        };
        Receipt { actions: self.finish(), result }
    }

    /// Reports the result of a [`Action::ValidateCertificate`]: the certificate is valid and `verifier`
    /// checks signatures with its key. The message that carried it is processed now.
    pub fn certificate_validated(
        &mut self,
        id: PeerId,
        certificate: &[u8],
        verifier: Box<dyn PeerVerifier>,
        now: Duration,
    ) -> Receipt {
        let Some(peer) = self.peers.get_mut(&id) else {
            return Receipt { actions: self.finish(), result: Err(ReceiveError::UnknownPeer) };
        };
        if peer.pending_certificate.as_deref() != Some(certificate) {
            // A result for a certificate that is no longer pending changes nothing.
            return Receipt { actions: self.finish(), result: Err(ReceiveError::NoVerifier) };
        }
        let Some(bytes) = peer.pending_message.take() else {
            return Receipt { actions: self.finish(), result: Err(ReceiveError::NoVerifier) };
        };
        peer.pending_certificate = None;
        let result = self.ctx.receive(id, peer, &bytes, now, Some(verifier));
        self.ctx.after_receive(id, peer, &result, now);
        Receipt { actions: self.finish(), result }
    }

    /// Reports the result of a [`Action::ValidateCertificate`]: the certificate is invalid. The
    /// peering stays in certificate exchange and an alarm is raised.
    pub fn certificate_rejected(
        &mut self,
        id: PeerId,
        certificate: &[u8],
        reason: &str,
        now: Duration,
    ) -> Vec<Action> {
        if let Some(peer) = self.peers.get_mut(&id)
            && peer.pending_certificate.as_deref() == Some(certificate)
        {
            peer.pending_certificate = None;
            peer.pending_message = None;
            peer.rejected_fingerprint = Some(fingerprint(certificate));
            peer.count("certificate-rejected");
            warn!(%id, reason, "peer certificate rejected");
            self.ctx.out.push(Action::Alarm {
                peer: id,
                kind: AlarmKind::CertificateRejected,
                raised: true,
                detail: reason.to_owned(),
            });
            let _ = now;
        }
        self.finish()
    }

    /// Runs every timer due at `now`: retransmissions, timeouts, rekeys, key switches and
    /// key retirement.
    pub fn on_timer(&mut self, now: Duration) -> Vec<Action> {
        if self.ctx.mode != Mode::Active {
            return self.finish();
        }

        if self.ctx.next_metadata_rotation.is_some_and(|t| t <= now) {
            self.rotate_metadata_key_inner(now);
        }

        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            self.ctx.peer_timers(id, peer, now);
        }

        self.ctx.retire_own_keys(now);
        self.finish()
    }

    /// Input for an interface state change on one of the peer's paths: a peer declared
    /// invalid after `peer-key-timeout` retries at once.
    pub fn interface_changed(&mut self, id: PeerId, now: Duration) -> Vec<Action> {
        if self.ctx.mode == Mode::Active
            && let Some(peer) = self.peers.get_mut(&id)
            && peer.timed_out
        {
            self.ctx.retry(id, peer, now);
            self.ctx.update_status(id, peer, now);
        }
        self.finish()
    }

    /// `rotate security metadata-key`: a new metadata key with the next index, sent to
    /// every peer now.
    pub fn rotate_metadata_key(&mut self, now: Duration) -> Vec<Action> {
        if self.ctx.mode == Mode::Active {
            self.rotate_metadata_key_inner(now);
        }
        self.finish()
    }

    /// Starts a new peer-key exchange with the peer now (on-demand rekey).
    pub fn rekey_peer(&mut self, id: PeerId, now: Duration) -> Vec<Action> {
        if self.ctx.mode == Mode::Active
            && let Some(peer) = self.peers.get_mut(&id)
            && peer.cert_rec
            && peer.cert_ack
        {
            self.ctx.start_exchange(id, peer, now);
            self.ctx.update_status(id, peer, now);
        }
        self.finish()
    }

    /// Returns the `show peers security` fields of a peer.
    pub fn snapshot(&self, id: PeerId) -> Option<PeerSecuritySnapshot> {
        let index = self.ctx.current_index();
        self.peers.get(&id).map(|p| p.snapshot(index))
    }

    /// The pair secrets of the peer keys held for a peer, oldest first. The dataplane
    /// authenticates the packets with metadata it sends under the oldest, which both sides
    /// hold until the exchange replacing it is confirmed, and accepts all of them.
    pub fn pair_secrets(&self, id: PeerId) -> Vec<Zeroizing<[u8; 32]>> {
        let Some(peer) = self.peers.get(&id) else {
            return Vec::new();
        };
        peer.keys.iter().map(|held| held.keys.pair_secret()).collect()
    }

    /// Counters of rejected messages and other events for a peer, by name.
    pub fn counters(&self, id: PeerId) -> Option<&BTreeMap<&'static str, u64>> {
        self.peers.get(&id).map(|p| &p.counters)
    }

    /// Messages received for peer ids that are not configured.
    pub fn unknown_peer_count(&self) -> u64 {
        self.ctx.unknown_peer_count
    }

    /// Replaces the timers, as a configuration reload does. Retransmit and timeout timers
    /// already armed keep their time and use the new values when next armed. A changed
    /// rekey interval restarts the metadata and peer rekey schedules from `now`.
    pub fn set_timers(&mut self, timers: KexTimers, now: Duration) -> Vec<Action> {
        let rekey_changed = timers.rekey_interval != self.ctx.config.timers.rekey_interval;
        self.ctx.config.timers = timers;
        if rekey_changed {
            let next = timers.rekey_interval.map(|i| now + i);
            self.ctx.next_metadata_rotation = next;
            for peer in self.peers.values_mut() {
                if peer.rekey_at.is_some() {
                    peer.rekey_at = next;
                }
            }
        }
        self.finish()
    }

    /// This router's current metadata key index.
    pub fn metadata_key_index(&self) -> u32 {
        self.ctx.current_index()
    }

    /// Returns the earliest time at which [`Engine::on_timer`] has work.
    pub fn next_deadline(&self) -> Option<Duration> {
        let mut next = self.ctx.next_metadata_rotation;
        let mut fold = |t: Option<Duration>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for k in &self.ctx.own_keys {
            fold(k.retire_at);
        }
        if self.ctx.mode == Mode::Active {
            for p in self.peers.values() {
                fold(p.retransmit_at);
                fold(p.deadline);
                fold(p.rekey_at);
                fold(p.pending_seal.as_ref().map(|(_, t)| *t));
                for k in &p.keys {
                    fold(k.retire_at);
                }
            }
        }
        next
    }

    fn rotate_metadata_key_inner(&mut self, now: Duration) {
        let index = self.ctx.current_index().wrapping_add(1).max(1);
        let bundle =
            MetadataKeyBundle::generate(index, self.ctx.config.metadata_hmac, &mut *self.ctx.rng);
        // Peers that acknowledged an earlier key may still seal with it.
        let waiting: BTreeSet<PeerId> =
            self.peers.iter().filter(|(_, p)| p.mkey_acked.is_some()).map(|(id, _)| *id).collect();
        for key in &mut self.ctx.own_keys {
            if !key.superseded {
                key.superseded = true;
                key.waiting = waiting.clone();
                key.latest_ack = now;
            }
        }
        self.ctx.own_keys.push(OwnKey {
            bundle,
            retire_at: None,
            waiting: BTreeSet::new(),
            latest_ack: now,
            superseded: false,
        });
        self.ctx.next_metadata_rotation = self.ctx.config.timers.rekey_interval.map(|i| now + i);
        debug!(index, "metadata key rotated");
        self.ctx.publish_open_keys();
        self.ctx.retire_own_keys(now);

        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            let Some(peer) = self.peers.get_mut(&id) else { continue };
            let ready = peer.exchange.as_ref().is_some_and(|e| e.established);
            if ready {
                self.ctx.send_metadata_key(id, peer, now);
            }
            self.ctx.update_status(id, peer, now);
        }
    }

    fn finish(&mut self) -> Vec<Action> {
        let mut actions = std::mem::take(&mut self.ctx.out);
        if let Some(at) = self.next_deadline() {
            actions.push(Action::ArmTimer { at });
        }
        actions
    }
}

fn check_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 255 {
        return Err(ConfigError::CommonNameLength { len: name.len() });
    }
    Ok(())
}

impl Ctx {
    fn current_index(&self) -> u32 {
        self.own_keys.last().map_or(0, |k| k.bundle.index)
    }

    fn current_bundle(&self) -> Option<&MetadataKeyBundle> {
        self.own_keys.last().map(|k| &k.bundle)
    }

    fn publish_open_keys(&mut self) {
        let keys = self.own_keys.iter().map(|k| k.bundle.clone()).collect();
        self.out.push(Action::OpenKeys { keys });
    }

    fn cadence(&self, peer: &Peer) -> Duration {
        if peer.timed_out {
            self.config.timers.timeout
        } else {
            self.config.timers.retransmit_interval
        }
    }
}

/// Decides whether the local router generates the ML-KEM key pair. The higher
/// `ml-kem-keygen-priority` generates, and on a tie the bytewise greater peering common name
/// does.
pub fn is_generator(
    local_priority: u32,
    local_name: &str,
    peer_priority: u32,
    peer_name: &str,
) -> bool {
    match local_priority.cmp(&peer_priority) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => local_name.as_bytes() > peer_name.as_bytes(),
    }
}
