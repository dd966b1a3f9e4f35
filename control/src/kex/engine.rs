//! The key exchange engine: one per router, driving the security state machine of every
//! peer. Inputs are received messages, timer expiries, certificate validation results and
//! operator commands, each with the current time; outputs are [`Action`]s.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use rand_core::CryptoRng;
use tracing::{debug, warn};

use super::dh::DhKeyPair;
use super::error::{ConfigError, ReceiveError};
use super::keys::{
    HmacAlgorithm, MetadataKeyBundle, PeerKey, PeerKeyKind, PeerKeySet, TranscriptSide,
    canonical_salts, fingerprint, transcript_hash,
};
use super::mlkem::{self, MlKemKeyPair, MlKemLevel};
use super::msg::{self, Body, Header, MessageKind, signing_input};
use super::peer::{Exchange, HeldKey, Peer, PeerSecuritySnapshot, SecurityStatus};
use super::sign::{MessageSigner, PeerVerifier};
use super::{KexAlgorithm, KexTimers};

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

    /// Answers a [`Action::ValidateCertificate`]: the certificate is valid and `verifier`
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
            // An answer for a certificate that is no longer pending changes nothing.
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

    /// Answers a [`Action::ValidateCertificate`]: the certificate is not acceptable. The
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

    /// The `show peers security` fields of a peer.
    pub fn snapshot(&self, id: PeerId) -> Option<PeerSecuritySnapshot> {
        let index = self.ctx.current_index();
        self.peers.get(&id).map(|p| p.snapshot(index))
    }

    /// Counters of rejected messages and other events for a peer, by name.
    pub fn counters(&self, id: PeerId) -> Option<&BTreeMap<&'static str, u64>> {
        self.peers.get(&id).map(|p| &p.counters)
    }

    /// Messages received for peer ids that are not configured.
    pub fn unknown_peer_count(&self) -> u64 {
        self.ctx.unknown_peer_count
    }

    /// This router's current metadata key index.
    pub fn metadata_key_index(&self) -> u32 {
        self.ctx.current_index()
    }

    /// The earliest time at which [`Engine::on_timer`] has work.
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

    // ---- sending ----

    fn next_header(&mut self, peer: &mut Peer, kind: MessageKind, exchange: u32) -> Header {
        peer.tx_seq += 1;
        Header {
            kind,
            sender_boot: self.config.boot_id,
            receiver_boot: peer.peer_boot.unwrap_or(0),
            sequence: peer.tx_seq,
            exchange,
        }
    }

    fn emit(&mut self, id: PeerId, peer: &Peer, header: &Header, body: &Body) {
        let unsigned = msg::encode_unsigned(header, body);
        let context = signing_input(
            &self.config.peering_common_name,
            &peer.config.peering_common_name,
            &unsigned,
        );
        let signature = self.signer.sign(&context);
        let bytes = msg::append_signature(unsigned, &signature);
        self.out.push(Action::Send { peer: id, bytes });
    }

    fn send(&mut self, id: PeerId, peer: &mut Peer, exchange: u32, body: Body) {
        let header = self.next_header(peer, body.kind(), exchange);
        self.emit(id, peer, &header, &body);
    }

    fn send_certificate(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
        let certificate = self.config.certificate.clone();
        self.send(id, peer, 0, Body::Certificate { certificate });
        self.arm_retransmit(peer, now);
    }

    fn send_salt(&mut self, id: PeerId, peer: &mut Peer) {
        let Some(ex) = &peer.exchange else { return };
        let (eid, salt, algorithm) = (ex.id, ex.salt, ex.algorithm);
        self.send(id, peer, eid, Body::Salt { salt, algorithm });
    }

    fn send_key_exchange(&mut self, id: PeerId, peer: &mut Peer) {
        let Some(ex) = &peer.exchange else { return };
        let eid = ex.id;
        let algorithm = ex.algorithm;
        let dh_public = ex.dh.as_ref().map(|d| d.public().to_vec()).unwrap_or_default();
        let encapsulation_key = match (ex.generator, algorithm.ml_kem()) {
            (true, Some(level)) => match self.ml_kem.get(&level) {
                Some(pair) => pair.encapsulation_key().to_vec(),
                None => {
                    tracing::error!(%id, %level, "no ML-KEM key pair supplied for this level");
                    Vec::new()
                }
            },
            _ => Vec::new(),
        };
        let ciphertext = if ex.generator { None } else { ex.ciphertext.clone() };
        self.send(id, peer, eid, Body::KeyExchange { algorithm, dh_public, encapsulation_key });
        if let Some(ciphertext) = ciphertext {
            self.send(id, peer, eid, Body::Encapsulation { ciphertext });
        }
        if let Some(ex) = &mut peer.exchange {
            ex.key_sent = true;
        }
    }

    fn send_sealed(
        &mut self,
        id: PeerId,
        peer: &mut Peer,
        exchange: u32,
        kind: MessageKind,
        plain: &[u8],
    ) {
        let header = self.next_header(peer, kind, exchange);
        let aad = msg::seal_aad(&header);
        let Some(keys) = peer.held(exchange) else { return };
        let sealed = keys.seal(&aad, plain, &mut *self.rng);
        let body = match kind {
            MessageKind::MetadataKey => Body::MetadataKey { sealed },
            _ => Body::MetadataKeyAck { sealed },
        };
        self.emit(id, peer, &header, &body);
    }

    fn send_metadata_key(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
        let Some(ex) = &peer.exchange else { return };
        if !ex.established {
            return;
        }
        let eid = ex.id;
        let Some(plain) = self.current_bundle().map(|b| b.encode()) else { return };
        self.send_sealed(id, peer, eid, MessageKind::MetadataKey, &plain);
        if let Some(ex) = &mut peer.exchange {
            ex.mkey_sent = true;
        }
        self.arm_retransmit(peer, now);
    }

    fn arm_retransmit(&mut self, peer: &mut Peer, now: Duration) {
        if peer.retransmit_at.is_none() {
            peer.retransmit_at = Some(now + self.cadence(peer));
        }
        if peer.deadline.is_none() && !peer.timed_out {
            peer.deadline = Some(now + self.config.timers.timeout);
        }
    }

    /// Resends whatever the peer has not acknowledged in the current stage.
    fn retransmit(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
        let own_index = self.current_index();
        match peer.compute_status(own_index) {
            SecurityStatus::CertExch if !peer.cert_ack => {
                let certificate = self.config.certificate.clone();
                self.send(id, peer, 0, Body::Certificate { certificate });
            }
            SecurityStatus::SaltExch => {
                if peer.exchange.is_none() {
                    self.start_exchange(id, peer, now);
                } else {
                    self.send_salt(id, peer);
                }
            }
            SecurityStatus::KeyExch => self.send_key_exchange(id, peer),
            SecurityStatus::MkeyExch => {
                let confirmed = peer.exchange.as_ref().is_some_and(|e| e.confirmed);
                if !confirmed {
                    // The peer may not have our key exchange values yet.
                    self.send_key_exchange(id, peer);
                }
                if peer.mkey_acked != peer.exchange.as_ref().map(|e| (e.id, own_index)) {
                    self.send_metadata_key(id, peer, now);
                }
            }
            _ => {}
        }
    }

    fn retry(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
        peer.retransmit_at = None;
        if peer.cert_rec && peer.cert_ack {
            self.start_exchange(id, peer, now);
        } else {
            self.send_certificate(id, peer, now);
        }
        peer.retransmit_at = Some(now + self.cadence(peer));
    }

    // ---- exchange steps ----

    fn start_exchange(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
        let eid = peer.max_exchange.wrapping_add(1).max(1);
        self.begin_exchange(peer, eid, None);
        debug!(%id, exchange = eid, algorithm = %peer.config.algorithm, "peer key exchange started");
        self.send_salt(id, peer);
        peer.retransmit_at = None;
        self.arm_retransmit(peer, now);
    }

    fn begin_exchange(&mut self, peer: &mut Peer, eid: u32, peer_salt: Option<u32>) {
        let algorithm = peer.config.algorithm;
        let mut salt = 0;
        while salt == 0 {
            salt = self.rng.next_u32();
        }
        let dh = algorithm.dh_group().map(|g| DhKeyPair::generate(g, &mut *self.rng));
        let generator = is_generator(
            self.config.ml_kem_keygen_priority,
            &self.config.peering_common_name,
            peer.config.ml_kem_keygen_priority,
            &peer.config.peering_common_name,
        );
        peer.max_exchange = peer.max_exchange.max(eid);
        // The next rekey is scheduled when this exchange completes.
        peer.rekey_at = None;
        peer.exchange = Some(Exchange {
            id: eid,
            algorithm,
            salt,
            peer_salt,
            salt_ack: false,
            key_sent: false,
            dh,
            peer_dh: None,
            generator,
            peer_ek: None,
            ciphertext: None,
            kem_secret: None,
            established: false,
            confirmed: false,
            mkey_sent: false,
            peer_mkey_received: false,
        });
    }

    /// Moves the exchange forward as far as its inputs allow.
    fn progress(&mut self, id: PeerId, peer: &mut Peer, now: Duration) -> Result<(), ReceiveError> {
        if peer.cert_rec && peer.cert_ack && peer.exchange.is_none() {
            self.start_exchange(id, peer, now);
        }
        let ready_to_send_keys = peer
            .exchange
            .as_ref()
            .is_some_and(|e| e.peer_salt.is_some() && e.salt_ack && !e.key_sent);
        if ready_to_send_keys {
            self.send_key_exchange(id, peer);
        }
        self.try_establish(peer)?;
        let send_mkey = peer.exchange.as_ref().is_some_and(|e| e.established && !e.mkey_sent);
        if send_mkey {
            self.send_metadata_key(id, peer, now);
        }
        Ok(())
    }

    fn try_establish(&mut self, peer: &mut Peer) -> Result<(), ReceiveError> {
        let Some(ex) = &mut peer.exchange else { return Ok(()) };
        if ex.established || !ex.key_sent {
            return Ok(());
        }
        let Some(peer_salt) = ex.peer_salt else { return Ok(()) };

        let mut layers = Vec::new();
        let dh_secret = match (&ex.dh, &ex.peer_dh) {
            (Some(dh), Some(peer_dh)) => {
                // The value passed check_public when it was received.
                let y = num_bigint::BigUint::from_bytes_be(peer_dh);
                Some(dh.agree_checked(&y, &mut *self.rng))
            }
            (Some(_), None) => return Ok(()),
            _ => None,
        };

        let (ek, kem_ready) = match ex.algorithm.ml_kem() {
            None => (Vec::new(), true),
            Some(level) => {
                let ek = if ex.generator {
                    match self.ml_kem.get(&level) {
                        Some(k) => k.encapsulation_key().to_vec(),
                        None => return Err(ReceiveError::MissingMlKemKeyPair { level }),
                    }
                } else {
                    ex.peer_ek.clone().unwrap_or_default()
                };
                (ek, ex.kem_secret.is_some() && ex.ciphertext.is_some())
            }
        };
        if !kem_ready {
            return Ok(());
        }

        let local_dh = ex.dh.as_ref().map(|d| d.public().to_vec()).unwrap_or_default();
        let remote_dh = ex.peer_dh.clone().unwrap_or_default();
        let Some(peer_fp) = peer.fingerprint else { return Ok(()) };
        let transcript = transcript_hash(
            ex.id,
            ex.algorithm.code(),
            TranscriptSide {
                name: &self.config.peering_common_name,
                certificate_fingerprint: &self.fingerprint,
                salt: ex.salt,
                dh_public: &local_dh,
            },
            TranscriptSide {
                name: &peer.config.peering_common_name,
                certificate_fingerprint: &peer_fp,
                salt: peer_salt,
                dh_public: &remote_dh,
            },
            &ek,
            ex.ciphertext.as_deref().unwrap_or_default(),
        );
        let salts = canonical_salts(
            &self.config.peering_common_name,
            ex.salt,
            &peer.config.peering_common_name,
            peer_salt,
        );
        if let Some(secret) = &dh_secret {
            layers.push(PeerKey::derive(PeerKeyKind::Dh, secret.as_bytes(), &salts, &transcript));
        }
        if let Some(secret) = &ex.kem_secret {
            layers.push(PeerKey::derive(
                PeerKeyKind::MlKem,
                secret.as_bytes(),
                &salts,
                &transcript,
            ));
        }
        ex.established = true;
        // The ephemeral DH private value is no longer needed once the key is derived.
        let eid = ex.id;
        peer.keys.retain(|k| k.exchange != eid);
        peer.keys.push(HeldKey { exchange: eid, keys: PeerKeySet::new(layers), retire_at: None });
        debug!(exchange = eid, "peer key established");
        Ok(())
    }

    /// Marks the current exchange confirmed (the peer sealed under its key) and schedules
    /// the retirement of older peer keys.
    fn confirm(&mut self, peer: &mut Peer, exchange: u32, now: Duration) {
        let Some(ex) = &mut peer.exchange else { return };
        if ex.id != exchange || ex.confirmed {
            return;
        }
        ex.confirmed = true;
        ex.dh = None;
        let retire = now + self.config.timers.switch_delay + self.config.timers.grace;
        for key in &mut peer.keys {
            if key.exchange != exchange && key.retire_at.is_none() {
                key.retire_at = Some(retire);
            }
        }
    }

    // ---- receiving ----

    fn receive(
        &mut self,
        id: PeerId,
        peer: &mut Peer,
        bytes: &[u8],
        now: Duration,
        candidate: Option<Box<dyn PeerVerifier>>,
    ) -> Result<MessageKind, ReceiveError> {
        if self.mode != Mode::Active {
            return Err(ReceiveError::Inactive);
        }
        let m = msg::decode(bytes).map_err(ReceiveError::Decode)?;
        let h = m.header;

        // The receiver boot id binds the message to this boot. Only a certificate may be
        // sent before the sender has learned it.
        let to_ok = h.receiver_boot == self.config.boot_id
            || (h.receiver_boot == 0 && h.kind == MessageKind::Certificate);
        if !to_ok {
            return Err(ReceiveError::WrongReceiverBoot {
                boot: h.receiver_boot,
                expected: self.config.boot_id,
            });
        }
        if let Some(current) = peer.peer_boot
            && h.sender_boot < current
        {
            return Err(ReceiveError::StaleBoot { boot: h.sender_boot, current });
        }

        // Pick the key that must verify the signature.
        let input = signing_input(
            &peer.config.peering_common_name,
            &self.config.peering_common_name,
            m.signed,
        );
        let mut new_certificate = None;
        match (&m.body, candidate) {
            (Body::Certificate { certificate }, Some(verifier)) => {
                verifier.verify(&input, m.signature).map_err(ReceiveError::BadSignature)?;
                new_certificate = Some((certificate.clone(), verifier));
            }
            (Body::Certificate { certificate }, None)
                if peer.certificate.as_deref() != Some(certificate.as_slice()) =>
            {
                let fp = fingerprint(certificate);
                if peer.rejected_fingerprint == Some(fp) {
                    return Err(ReceiveError::CertificateRejected);
                }
                if peer.pending_certificate.as_deref() != Some(certificate.as_slice()) {
                    peer.pending_certificate = Some(certificate.clone());
                    self.out.push(Action::ValidateCertificate {
                        peer: id,
                        certificate: certificate.clone(),
                    });
                }
                peer.pending_message = Some(bytes.to_vec());
                return Err(ReceiveError::CertificatePending);
            }
            (_, _) => {
                let Some(verifier) = &peer.verifier else {
                    return Err(ReceiveError::NoVerifier);
                };
                verifier.verify(&input, m.signature).map_err(ReceiveError::BadSignature)?;
            }
        }

        // A verified message from a newer boot means the peer restarted and lost its keys.
        let restarted = peer.peer_boot.is_some_and(|b| h.sender_boot > b);
        if restarted {
            debug!(%id, boot = h.sender_boot, "peer restarted");
            peer.count("peer-restart");
            self.reset_after_restart(id, peer, now);
        }
        if peer.peer_boot.is_none() || restarted {
            // Adopted only for the first verified message or a restart; both are signed.
            peer.peer_boot = Some(h.sender_boot);
        }

        if !peer.window.is_fresh(h.sequence) {
            return Err(ReceiveError::Replayed { sequence: h.sequence });
        }

        self.dispatch(id, peer, &h, m.body, new_certificate, now)?;
        peer.window.mark(h.sequence);

        if peer.timed_out {
            // A valid message ends the invalid state: retransmission returns to its normal
            // interval, with a new timeout.
            peer.timed_out = false;
            peer.retransmit_at = Some(now + self.config.timers.retransmit_interval);
            peer.deadline = Some(now + self.config.timers.timeout);
            self.out.push(Action::Alarm {
                peer: id,
                kind: AlarmKind::PeerKeyTimeout,
                raised: false,
                detail: String::new(),
            });
        }
        Ok(h.kind)
    }

    fn dispatch(
        &mut self,
        id: PeerId,
        peer: &mut Peer,
        h: &Header,
        body: Body,
        new_certificate: Option<(Vec<u8>, Box<dyn PeerVerifier>)>,
        now: Duration,
    ) -> Result<(), ReceiveError> {
        match body {
            Body::Certificate { .. } => {
                if let Some((certificate, verifier)) = new_certificate {
                    peer.fingerprint = Some(fingerprint(&certificate));
                    peer.certificate = Some(certificate);
                    peer.verifier = Some(verifier);
                    peer.rejected_fingerprint = None;
                }
                let first = !peer.cert_rec;
                peer.cert_rec = true;
                if let Some(fp) = peer.fingerprint {
                    self.send(id, peer, 0, Body::CertificateAck { fingerprint: fp });
                }
                if first && !peer.cert_ack {
                    // Answer a first certificate with ours at once (after a restart of
                    // either side this saves a retransmit interval).
                    let certificate = self.config.certificate.clone();
                    self.send(id, peer, 0, Body::Certificate { certificate });
                    self.arm_retransmit(peer, now);
                }
                self.progress(id, peer, now)
            }
            Body::CertificateAck { fingerprint: fp } => {
                if fp != self.fingerprint {
                    return Err(ReceiveError::UnknownAck { kind: MessageKind::CertificateAck });
                }
                peer.cert_ack = true;
                self.progress(id, peer, now)
            }
            Body::Salt { salt, algorithm } => {
                self.on_salt(id, peer, h.exchange, salt, algorithm, now)
            }
            Body::SaltAck { salt, algorithm } => {
                self.check_algorithm(peer, algorithm)?;
                let ex = self.current_exchange(peer, h.exchange, MessageKind::SaltAck)?;
                if ex.salt != salt {
                    return Err(ReceiveError::UnknownAck { kind: MessageKind::SaltAck });
                }
                ex.salt_ack = true;
                self.progress(id, peer, now)
            }
            Body::KeyExchange { algorithm, dh_public, encapsulation_key } => self.on_key_exchange(
                id,
                peer,
                h.exchange,
                algorithm,
                dh_public,
                encapsulation_key,
                now,
            ),
            Body::Encapsulation { ciphertext } => {
                self.on_encapsulation(id, peer, h.exchange, ciphertext, now)
            }
            Body::MetadataKey { sealed } => self.on_metadata_key(id, peer, h, &sealed, now),
            Body::MetadataKeyAck { sealed } => self.on_metadata_key_ack(id, peer, h, &sealed, now),
            Body::RekeyRequest => {
                if !(peer.cert_rec && peer.cert_ack) {
                    return Err(ReceiveError::Unexpected {
                        kind: MessageKind::RekeyRequest,
                        status: peer.status,
                    });
                }
                let current = peer.exchange.as_ref().map_or(0, |e| e.id);
                if current <= h.exchange {
                    peer.max_exchange = peer.max_exchange.max(h.exchange);
                    self.start_exchange(id, peer, now);
                }
                Ok(())
            }
        }
    }

    fn check_algorithm(&self, peer: &Peer, algorithm: KexAlgorithm) -> Result<(), ReceiveError> {
        if algorithm != peer.config.algorithm {
            return Err(ReceiveError::AlgorithmMismatch {
                local: peer.config.algorithm,
                peer: algorithm,
            });
        }
        Ok(())
    }

    /// The exchange a message names, which must be the current one.
    fn current_exchange<'p>(
        &self,
        peer: &'p mut Peer,
        exchange: u32,
        kind: MessageKind,
    ) -> Result<&'p mut Exchange, ReceiveError> {
        let status = peer.status;
        let current = peer.exchange.as_ref().map(|e| e.id);
        match (current, peer.exchange.as_mut()) {
            (Some(cur), Some(ex)) if cur == exchange => Ok(ex),
            (Some(cur), _) if exchange < cur => {
                Err(ReceiveError::StaleExchange { exchange, current: cur })
            }
            _ => Err(ReceiveError::Unexpected { kind, status }),
        }
    }

    fn on_salt(
        &mut self,
        id: PeerId,
        peer: &mut Peer,
        exchange: u32,
        salt: u32,
        algorithm: KexAlgorithm,
        now: Duration,
    ) -> Result<(), ReceiveError> {
        self.check_algorithm(peer, algorithm)?;
        if !peer.cert_rec {
            return Err(ReceiveError::Unexpected { kind: MessageKind::Salt, status: peer.status });
        }
        let current = peer.exchange.as_ref().map(|e| (e.id, e.peer_salt));
        match current {
            Some((cur, _)) if exchange < cur => {
                return Err(ReceiveError::StaleExchange { exchange, current: cur });
            }
            Some((cur, Some(known))) if exchange == cur && known != salt => {
                return Err(ReceiveError::Conflict { field: "salt", exchange });
            }
            Some((cur, _)) if exchange == cur => {
                if let Some(ex) = &mut peer.exchange {
                    ex.peer_salt = Some(salt);
                }
            }
            _ => {
                // The peer started a newer exchange (a rekey, or both sides at once):
                // join it with a fresh salt of our own.
                self.begin_exchange(peer, exchange, Some(salt));
                debug!(%id, exchange, "joined peer key exchange started by the peer");
                self.send_salt(id, peer);
                peer.retransmit_at = None;
                self.arm_retransmit(peer, now);
            }
        }
        // The peer only sends a salt once it holds our certificate.
        peer.cert_ack = true;
        let Some(ex) = &peer.exchange else { return Ok(()) };
        let body = Body::SaltAck { salt, algorithm: ex.algorithm };
        self.send(id, peer, exchange, body);
        self.progress(id, peer, now)
    }

    #[allow(clippy::too_many_arguments)]
    fn on_key_exchange(
        &mut self,
        id: PeerId,
        peer: &mut Peer,
        exchange: u32,
        algorithm: KexAlgorithm,
        dh_public: Vec<u8>,
        encapsulation_key: Vec<u8>,
        now: Duration,
    ) -> Result<(), ReceiveError> {
        self.check_algorithm(peer, algorithm)?;
        let ex = self.current_exchange(peer, exchange, MessageKind::KeyExchange)?;
        if ex.peer_salt.is_none() {
            return Err(ReceiveError::Unexpected {
                kind: MessageKind::KeyExchange,
                status: peer.status,
            });
        }

        // Check everything before changing anything.
        let mut duplicate = true;
        if let Some(group) = algorithm.dh_group() {
            match &ex.peer_dh {
                Some(known) if *known != dh_public => {
                    return Err(ReceiveError::Conflict { field: "dh public value", exchange });
                }
                Some(_) => {}
                None => {
                    super::dh::check_public(group, &dh_public).map_err(ReceiveError::Dh)?;
                    duplicate = false;
                }
            }
        }
        let mut encapsulate_to = None;
        if let Some(level) = algorithm.ml_kem() {
            if ex.generator {
                if !encapsulation_key.is_empty() {
                    return Err(ReceiveError::RoleConflict);
                }
            } else {
                if encapsulation_key.is_empty() {
                    return Err(ReceiveError::RoleConflict);
                }
                match &ex.peer_ek {
                    Some(known) if *known != encapsulation_key => {
                        return Err(ReceiveError::Conflict {
                            field: "encapsulation key",
                            exchange,
                        });
                    }
                    Some(_) => {}
                    None => {
                        mlkem::check_encapsulation_key(level, &encapsulation_key)
                            .map_err(ReceiveError::MlKem)?;
                        encapsulate_to = Some(level);
                        duplicate = false;
                    }
                }
            }
        }

        // Apply.
        if algorithm.dh_group().is_some() && ex.peer_dh.is_none() {
            ex.peer_dh = Some(dh_public);
        }
        if let Some(level) = encapsulate_to {
            let (ct, secret) = mlkem::encapsulate(level, &encapsulation_key, &mut *self.rng)
                .map_err(ReceiveError::MlKem)?;
            ex.peer_ek = Some(encapsulation_key);
            ex.ciphertext = Some(ct);
            ex.kem_secret = Some(secret);
        }
        // The peer sends key exchange values only after it holds our salt.
        ex.salt_ack = true;
        // Duplicates are not answered: the retransmit timer resends what the peer lacks,
        // and answering would let two sides echo each other at the round-trip rate.
        let _ = duplicate;
        let send_ct = encapsulate_to.is_some() && ex.key_sent;
        if send_ct {
            let eid = exchange;
            if let Some(ct) = peer.exchange.as_ref().and_then(|e| e.ciphertext.clone()) {
                self.send(id, peer, eid, Body::Encapsulation { ciphertext: ct });
            }
        }
        self.progress(id, peer, now)
    }

    fn on_encapsulation(
        &mut self,
        id: PeerId,
        peer: &mut Peer,
        exchange: u32,
        ciphertext: Vec<u8>,
        now: Duration,
    ) -> Result<(), ReceiveError> {
        let status = peer.status;
        let algorithm = peer.config.algorithm;
        let ex = self.current_exchange(peer, exchange, MessageKind::Encapsulation)?;
        let Some(level) = algorithm.ml_kem() else {
            return Err(ReceiveError::Unexpected { kind: MessageKind::Encapsulation, status });
        };
        if !ex.generator {
            return Err(ReceiveError::RoleConflict);
        }
        match &ex.ciphertext {
            Some(known) if *known != ciphertext => {
                return Err(ReceiveError::Conflict { field: "ciphertext", exchange });
            }
            Some(_) => return Ok(()),
            None => {}
        }
        let Some(pair) = self.ml_kem.get(&level) else {
            return Err(ReceiveError::MissingMlKemKeyPair { level });
        };
        let secret = pair.decapsulate(&ciphertext).map_err(ReceiveError::MlKem)?;
        ex.ciphertext = Some(ciphertext);
        ex.kem_secret = Some(secret);
        // The peer encapsulates only after it holds our salt and key exchange message.
        ex.salt_ack = true;
        self.progress(id, peer, now)
    }

    fn open_sealed(
        &mut self,
        id: PeerId,
        peer: &mut Peer,
        h: &Header,
        sealed: &[u8],
        now: Duration,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, ReceiveError> {
        let Some(keys) = peer.held(h.exchange) else {
            let current = peer.exchange.as_ref().map_or(0, |e| e.id);
            if h.exchange < current {
                return Err(ReceiveError::StaleExchange { exchange: h.exchange, current });
            }
            // A sealed message of the current exchange can overtake the key exchange
            // message it depends on; the peer retransmits it. One of a later exchange
            // means the peer holds a key this router never made or lost.
            if h.exchange > current {
                self.request_rekey(id, peer, h.exchange, now);
            }
            return Err(ReceiveError::NoPeerKey { exchange: h.exchange });
        };
        keys.open(&msg::seal_aad(h), sealed).map_err(ReceiveError::Seal)
    }

    /// Asks the peer for a new exchange after a sealed message named a later exchange than
    /// this router's current one. Rate-limited to one request per retransmit interval.
    fn request_rekey(&mut self, id: PeerId, peer: &mut Peer, exchange: u32, now: Duration) {
        let interval = self.config.timers.retransmit_interval;
        let due = peer.last_rekey_request.is_none_or(|t| now >= t + interval);
        if peer.cert_rec && peer.cert_ack && due {
            peer.last_rekey_request = Some(now);
            self.send(id, peer, exchange, Body::RekeyRequest);
        }
    }

    fn on_metadata_key(
        &mut self,
        id: PeerId,
        peer: &mut Peer,
        h: &Header,
        sealed: &[u8],
        now: Duration,
    ) -> Result<(), ReceiveError> {
        let plain = self.open_sealed(id, peer, h, sealed, now)?;
        let bundle = MetadataKeyBundle::decode(&plain).map_err(ReceiveError::Decode)?;
        if let Some(known) = &peer.peer_mkey {
            if bundle.index < known.index {
                return Err(ReceiveError::StaleMetadataKey {
                    index: bundle.index,
                    current: known.index,
                });
            }
            if bundle.index == known.index && bundle != *known {
                return Err(ReceiveError::Conflict { field: "metadata key", exchange: h.exchange });
            }
        }

        self.confirm(peer, h.exchange, now);
        if let Some(ex) = &mut peer.exchange
            && ex.id == h.exchange
        {
            ex.peer_mkey_received = true;
        }
        let index = bundle.index;
        let is_new = peer.peer_mkey.as_ref().is_none_or(|k| k.index != index);
        if is_new {
            debug!(%id, index, "peer metadata key received");
            peer.peer_mkey = Some(bundle.clone());
            if peer.seal_key.is_none() {
                // Nothing is sealed towards the peer yet, so the key can be used at once.
                peer.seal_key = Some(bundle.clone());
                peer.pending_seal = None;
                self.out.push(Action::SealTowardsPeer { peer: id, key: Some(bundle) });
            } else {
                // Keep sealing with the old key for the switch delay, so the peer has
                // certainly installed the new one.
                peer.pending_seal = Some((bundle, now + self.config.timers.switch_delay));
            }
        }
        self.send_sealed(id, peer, h.exchange, MessageKind::MetadataKeyAck, &index.to_be_bytes());
        self.progress(id, peer, now)
    }

    fn on_metadata_key_ack(
        &mut self,
        id: PeerId,
        peer: &mut Peer,
        h: &Header,
        sealed: &[u8],
        now: Duration,
    ) -> Result<(), ReceiveError> {
        let plain = self.open_sealed(id, peer, h, sealed, now)?;
        let Ok(bytes) = <[u8; 4]>::try_from(plain.as_slice()) else {
            return Err(ReceiveError::Decode(super::error::DecodeError::TrailingBytes {
                count: plain.len().saturating_sub(4),
            }));
        };
        let index = u32::from_be_bytes(bytes);
        if !self.own_keys.iter().any(|k| k.bundle.index == index) {
            return Err(ReceiveError::UnknownAck { kind: MessageKind::MetadataKeyAck });
        }

        self.confirm(peer, h.exchange, now);
        let current = peer.exchange.as_ref().map_or(0, |e| e.id);
        // Record the acknowledgement of the current key under the current exchange, or
        // the first acknowledgement of any key (the peer can seal towards us from then on).
        let is_current = index == self.current_index() && h.exchange == current;
        if is_current || peer.mkey_acked.is_none() {
            peer.mkey_acked = Some((h.exchange, index));
        }
        // The peer now seals with `index` within the switch delay; older keys wait only
        // for the peers that have not moved on.
        for key in &mut self.own_keys {
            if key.superseded && key.bundle.index < index && key.waiting.remove(&id) {
                key.latest_ack = key.latest_ack.max(now);
            }
        }
        self.retire_own_keys(now);
        self.progress(id, peer, now)
    }

    fn reset_after_restart(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
        self.forget_peer_keys(id, peer, now);
        peer.window = Default::default();
        peer.cert_rec = false;
        peer.cert_ack = false;
        peer.exchange = None;
        peer.timed_out = false;
        peer.retransmit_at = None;
        peer.deadline = None;
        peer.rekey_at = None;
        peer.last_rekey_request = None;
    }

    fn forget_peer_keys(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
        peer.keys.clear();
        peer.peer_mkey = None;
        peer.mkey_acked = None;
        peer.pending_seal = None;
        if peer.seal_key.take().is_some() {
            self.out.push(Action::SealTowardsPeer { peer: id, key: None });
        }
        if peer.in_service {
            peer.in_service = false;
            self.out.push(Action::PathService { peer: id, in_service: false });
        }
        for key in &mut self.own_keys {
            if key.waiting.remove(&id) {
                key.latest_ack = key.latest_ack.max(now);
            }
        }
        self.retire_own_keys(now);
    }

    fn retire_own_keys(&mut self, now: Duration) {
        let delay = self.config.timers.switch_delay + self.config.timers.grace;
        let mut changed = false;
        for key in &mut self.own_keys {
            if key.superseded && key.retire_at.is_none() && key.waiting.is_empty() {
                key.retire_at = Some(key.latest_ack + delay);
            }
        }
        let before = self.own_keys.len();
        self.own_keys.retain(|k| k.retire_at.is_none_or(|t| t > now));
        if self.own_keys.len() != before {
            changed = true;
        }
        if changed {
            debug!(remaining = self.own_keys.len(), "old metadata keys retired");
            self.publish_open_keys();
        }
    }

    fn peer_timers(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
        if let Some((bundle, at)) = peer.pending_seal.take() {
            if at <= now {
                debug!(%id, index = bundle.index, "switched to the peer's new metadata key");
                peer.seal_key = Some(bundle.clone());
                self.out.push(Action::SealTowardsPeer { peer: id, key: Some(bundle) });
            } else {
                peer.pending_seal = Some((bundle, at));
            }
        }
        peer.keys.retain(|k| k.retire_at.is_none_or(|t| t > now));

        if peer.deadline.is_some_and(|t| t <= now) {
            peer.deadline = None;
            if peer.status != SecurityStatus::MkeyExchComp {
                warn!(%id, status = %peer.status, "peer key exchange timed out");
                peer.timed_out = true;
                peer.count("peer-key-timeout");
                self.out.push(Action::Alarm {
                    peer: id,
                    kind: AlarmKind::PeerKeyTimeout,
                    raised: true,
                    detail: format!("no key exchange completed, stuck in {}", peer.status),
                });
                peer.retransmit_at = Some(now + self.config.timers.timeout);
                if !peer.in_service {
                    // A peer without keys seals with none of ours, so old metadata keys
                    // need not wait for its acknowledgement.
                    for key in &mut self.own_keys {
                        if key.waiting.remove(&id) {
                            key.latest_ack = key.latest_ack.max(now);
                        }
                    }
                    self.retire_own_keys(now);
                }
            }
        }

        if peer.retransmit_at.is_some_and(|t| t <= now) {
            peer.retransmit_at = None;
            if peer.timed_out {
                self.retry(id, peer, now);
            } else {
                self.retransmit(id, peer, now);
                if peer.retransmit_at.is_none() {
                    peer.retransmit_at = Some(now + self.cadence(peer));
                }
            }
        }

        if peer.rekey_at.is_some_and(|t| t <= now) {
            peer.rekey_at = None;
            if peer.cert_rec && peer.cert_ack {
                self.start_exchange(id, peer, now);
            }
        }
        self.update_status(id, peer, now);
    }

    fn after_receive(
        &mut self,
        id: PeerId,
        peer: &mut Peer,
        result: &Result<MessageKind, ReceiveError>,
        now: Duration,
    ) {
        match result {
            Ok(kind) => {
                peer.count("accepted");
                tracing::trace!(%id, %kind, "key exchange message accepted");
            }
            Err(e) => {
                peer.count(e.counter());
                if e.is_authentication_failure() {
                    let due = peer.last_auth_alarm.is_none_or(|t| now >= t + AUTH_ALARM_INTERVAL);
                    if due {
                        peer.last_auth_alarm = Some(now);
                        warn!(%id, error = %e, "unable to authenticate peer");
                        self.out.push(Action::Alarm {
                            peer: id,
                            kind: AlarmKind::UnableToAuthenticatePeer,
                            raised: true,
                            detail: e.to_string(),
                        });
                    }
                } else {
                    debug!(%id, error = %e, "key exchange message rejected");
                }
            }
        }
        self.update_status(id, peer, now);
    }

    /// Recomputes the status and the in-service flag, and arms or clears the timers that
    /// follow from them.
    fn update_status(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
        let status = match self.mode {
            Mode::Standby => SecurityStatus::EskmStandby,
            Mode::Disabled => SecurityStatus::EskmDisabled,
            Mode::Active => peer.compute_status(self.current_index()),
        };
        if status != peer.status {
            debug!(%id, from = %peer.status, to = %status, "peer security status changed");
            if status == SecurityStatus::MkeyExchComp {
                peer.retransmit_at = None;
                peer.deadline = None;
                if peer.rekey_at.is_none() {
                    peer.rekey_at = self.config.timers.rekey_interval.map(|i| now + i);
                }
                if peer.timed_out {
                    peer.timed_out = false;
                    self.out.push(Action::Alarm {
                        peer: id,
                        kind: AlarmKind::PeerKeyTimeout,
                        raised: false,
                        detail: String::new(),
                    });
                }
            }
            peer.status = status;
        }

        let in_service = self.mode == Mode::Active
            && peer.cert_rec
            && peer.seal_key.is_some()
            && peer.mkey_acked.is_some()
            && !(peer.timed_out && peer.keys.is_empty());
        if in_service != peer.in_service {
            peer.in_service = in_service;
            debug!(%id, in_service, "peer paths service state changed");
            self.out.push(Action::PathService { peer: id, in_service });
        }
    }
}

/// Whether the local router generates the ML-KEM key pair: the higher
/// `ml-kem-keygen-priority` generates; on a tie the bytewise greater peering common name
/// generates.
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
