//! Sending, exchange steps, timers and status of one peer: the parts of the engine that
//! move an exchange forward.

use std::time::Duration;

use tracing::{debug, warn};

use crate::kex::dh::DhKeyPair;
use crate::kex::error::ReceiveError;
use crate::kex::keys::{
    PeerKey, PeerKeyKind, PeerKeySet, TranscriptSide, canonical_salts, transcript_hash,
};
use crate::kex::msg::{self, Body, Header, MessageKind, signing_input};
use crate::kex::peer::{Exchange, HeldKey, Peer, SecurityStatus};

use super::*;

impl Ctx {
    // ---- sending ----

    pub(super) fn next_header(
        &mut self,
        peer: &mut Peer,
        kind: MessageKind,
        exchange: u32,
    ) -> Header {
        peer.tx_seq += 1;
        Header {
            kind,
            sender_boot: self.config.boot_id,
            receiver_boot: peer.peer_boot.unwrap_or(0),
            sequence: peer.tx_seq,
            exchange,
        }
    }

    pub(super) fn emit(&mut self, id: PeerId, peer: &Peer, header: &Header, body: &Body) {
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

    pub(super) fn send(&mut self, id: PeerId, peer: &mut Peer, exchange: u32, body: Body) {
        let header = self.next_header(peer, body.kind(), exchange);
        self.emit(id, peer, &header, &body);
    }

    pub(super) fn send_certificate(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
        let certificate = self.config.certificate.clone();
        self.send(id, peer, 0, Body::Certificate { certificate });
        self.arm_retransmit(peer, now);
    }

    pub(super) fn send_salt(&mut self, id: PeerId, peer: &mut Peer) {
        let Some(ex) = &peer.exchange else { return };
        let (eid, salt, algorithm) = (ex.id, ex.salt, ex.algorithm);
        self.send(id, peer, eid, Body::Salt { salt, algorithm });
    }

    pub(super) fn send_key_exchange(&mut self, id: PeerId, peer: &mut Peer) {
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

    pub(super) fn send_sealed(
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

    pub(super) fn send_metadata_key(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
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

    pub(super) fn arm_retransmit(&mut self, peer: &mut Peer, now: Duration) {
        if peer.retransmit_at.is_none() {
            peer.retransmit_at = Some(now + self.cadence(peer));
        }
        if peer.deadline.is_none() && !peer.timed_out {
            peer.deadline = Some(now + self.config.timers.timeout);
        }
    }

    /// Resends whatever the peer has not acknowledged in the current stage.
    pub(super) fn retransmit(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
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

    pub(super) fn retry(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
        peer.retransmit_at = None;
        if peer.cert_rec && peer.cert_ack {
            self.start_exchange(id, peer, now);
        } else {
            self.send_certificate(id, peer, now);
        }
        peer.retransmit_at = Some(now + self.cadence(peer));
    }

    // ---- exchange steps ----

    pub(super) fn start_exchange(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
        let eid = peer.max_exchange.wrapping_add(1).max(1);
        self.begin_exchange(peer, eid, None);
        debug!(%id, exchange = eid, algorithm = %peer.config.algorithm, "peer key exchange started");
        self.send_salt(id, peer);
        peer.retransmit_at = None;
        self.arm_retransmit(peer, now);
    }

    pub(super) fn begin_exchange(&mut self, peer: &mut Peer, eid: u32, peer_salt: Option<u32>) {
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
    pub(super) fn progress(
        &mut self,
        id: PeerId,
        peer: &mut Peer,
        now: Duration,
    ) -> Result<(), ReceiveError> {
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

    pub(super) fn try_establish(&mut self, peer: &mut Peer) -> Result<(), ReceiveError> {
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
    pub(super) fn confirm(&mut self, peer: &mut Peer, exchange: u32, now: Duration) {
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

    pub(super) fn reset_after_restart(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
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

    pub(super) fn forget_peer_keys(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
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

    pub(super) fn retire_own_keys(&mut self, now: Duration) {
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

    pub(super) fn peer_timers(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
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

    /// Recomputes the status and the in-service flag, and arms or clears the timers that
    /// follow from them.
    pub(super) fn update_status(&mut self, id: PeerId, peer: &mut Peer, now: Duration) {
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
