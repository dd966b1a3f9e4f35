//! Receiving: the acceptance checks every message passes and the handler of each
//! message type.

use std::time::Duration;

use tracing::{debug, warn};

use crate::kex::KexAlgorithm;
use crate::kex::error::{DecodeError, ReceiveError};
use crate::kex::keys::{MetadataKeyBundle, fingerprint};
use crate::kex::mlkem;
use crate::kex::msg::{self, Body, Header, MessageKind, signing_input};
use crate::kex::peer::{Exchange, Peer};
use crate::kex::sign::PeerVerifier;

use super::*;

impl Ctx {
    // ---- receiving ----

    pub(super) fn receive(
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
                // NOTE: a newer unvalidated certificate replaces the pending one, so a flood
                // of bogus certificates can delay validation of the real one until the flood
                // stops. The signature cannot be checked before validation supplies the key.
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
                // The accepted certificate again, signed with its key, after another one was
                // rejected: the peer went back to it.
                if let Body::Certificate { certificate } = &m.body
                    && peer.rejected_fingerprint.take().is_some()
                {
                    self.out.push(Action::CertificateReturned {
                        peer: id,
                        certificate: certificate.clone(),
                    });
                }
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

    pub(super) fn dispatch(
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
                    // Reply to a first certificate with ours at once (after a restart of
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

    pub(super) fn check_algorithm(
        &self,
        peer: &Peer,
        algorithm: KexAlgorithm,
    ) -> Result<(), ReceiveError> {
        if algorithm != peer.config.algorithm {
            return Err(ReceiveError::AlgorithmMismatch {
                local: peer.config.algorithm,
                peer: algorithm,
            });
        }
        Ok(())
    }

    /// The exchange a message names, which must be the current one.
    pub(super) fn current_exchange<'p>(
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

    pub(super) fn on_salt(
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
    pub(super) fn on_key_exchange(
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
                    crate::kex::dh::check_public(group, &dh_public).map_err(ReceiveError::Dh)?;
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
        // Duplicates get no reply: the retransmit timer resends what the peer lacks,
        // and replying would let two sides echo each other at the round-trip rate.
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

    pub(super) fn on_encapsulation(
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

    pub(super) fn open_sealed(
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
    pub(super) fn request_rekey(
        &mut self,
        id: PeerId,
        peer: &mut Peer,
        exchange: u32,
        now: Duration,
    ) {
        let interval = self.config.timers.retransmit_interval;
        let due = peer.last_rekey_request.is_none_or(|t| now >= t + interval);
        if peer.cert_rec && peer.cert_ack && due {
            peer.last_rekey_request = Some(now);
            self.send(id, peer, exchange, Body::RekeyRequest);
        }
    }

    pub(super) fn on_metadata_key(
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

    pub(super) fn on_metadata_key_ack(
        &mut self,
        id: PeerId,
        peer: &mut Peer,
        h: &Header,
        sealed: &[u8],
        now: Duration,
    ) -> Result<(), ReceiveError> {
        let plain = self.open_sealed(id, peer, h, sealed, now)?;
        let Ok(bytes) = <[u8; 4]>::try_from(plain.as_slice()) else {
            let error = if plain.len() < 4 {
                DecodeError::Truncated { offset: plain.len(), needed: 4 }
            } else {
                DecodeError::TrailingBytes { count: plain.len() - 4 }
            };
            return Err(ReceiveError::Decode(error));
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

    pub(super) fn after_receive(
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
}
