//! Engine tests driven by hand: one test per receive error, alarms, configuration checks
//! and the `show peers security` snapshot.

// Test helpers outside #[test] functions unwrap too; a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use svr_control::kex::engine::{Mode, is_generator};
use svr_control::kex::error::{DhError, MlKemError, SealError, SignatureError};
use svr_control::kex::msg::{self, Body, Header, MessageKind};
use svr_control::kex::sign::{MessageSigner, P256Signer, P256Verifier, PeerVerifier};
use svr_control::kex::{
    Action, AlarmKind, ConfigError, DhGroup, Engine, EngineConfig, HmacAlgorithm, KexAlgorithm,
    KexTimers, MlKemKeyPair, MlKemLevel, PeerConfig, PeerId, ReceiveError, SecurityStatus,
};

const A: PeerId = PeerId(0);
const B: PeerId = PeerId(1);
const BOOT_A: u64 = 100;
const BOOT_B: u64 = 200;
const DH1024: KexAlgorithm = KexAlgorithm::DiffieHellman(DhGroup::Modp1024);
const MLKEM512: KexAlgorithm = KexAlgorithm::MlKem(MlKemLevel::MlKem512);

fn cert(name: &str, v: &P256Verifier) -> Vec<u8> {
    let mut c = format!("cert {name} ").into_bytes();
    c.extend_from_slice(&v.to_sec1());
    c
}

/// Two engines, "a" (PeerId 0) and "b" (PeerId 1), exchanging by hand.
struct Pair {
    a: Engine,
    b: Engine,
    b_key: P256Signer,
    cert_a: Vec<u8>,
    cert_b: Vec<u8>,
    verifier_a: P256Verifier,
    verifier_b: P256Verifier,
    now: Duration,
    /// Messages in flight: (to, bytes).
    wire: Vec<(PeerId, Vec<u8>)>,
    alarms: Vec<(PeerId, AlarmKind, bool)>,
}

struct Options {
    alg_a: KexAlgorithm,
    alg_b: KexAlgorithm,
    prio_a: u32,
    prio_b: u32,
    // What each side believes the other's priority is.
    prio_b_at_a: u32,
    prio_a_at_b: u32,
    ml_kem_a: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            alg_a: DH1024,
            alg_b: DH1024,
            prio_a: 1,
            prio_b: 2,
            prio_b_at_a: 2,
            prio_a_at_b: 1,
            ml_kem_a: true,
        }
    }
}

fn engine(
    name: &str,
    boot: u64,
    signer: P256Signer,
    certificate: Vec<u8>,
    priority: u32,
    ml_kem: bool,
    seed: u64,
) -> Engine {
    let mut rng = StdRng::seed_from_u64(seed);
    let pairs = if ml_kem {
        MlKemLevel::ALL.iter().map(|l| MlKemKeyPair::generate(*l, &mut rng)).collect()
    } else {
        Vec::new()
    };
    let config = EngineConfig {
        peering_common_name: name.into(),
        ml_kem_keygen_priority: priority,
        boot_id: boot,
        certificate,
        metadata_hmac: HmacAlgorithm::Sha512,
        timers: KexTimers { retransmit_interval: Duration::from_secs(5), ..KexTimers::default() },
    };
    Engine::new(config, Box::new(signer), pairs, Box::new(rng), Duration::ZERO).unwrap().0
}

impl Pair {
    fn new(o: Options) -> Self {
        let mut rng = StdRng::seed_from_u64(42);
        let ka = P256Signer::generate(&mut rng);
        let kb = P256Signer::generate(&mut rng);
        let (va, vb) = (ka.verifier(), kb.verifier());
        let (cert_a, cert_b) = (cert("a", &va), cert("b", &vb));
        let b_key = P256Signer::from_scalar(&kb.to_scalar()).unwrap();
        let mut a = engine("a", BOOT_A, ka, cert_a.clone(), o.prio_a, o.ml_kem_a, 1);
        let mut b = engine("b", BOOT_B, kb, cert_b.clone(), o.prio_b, true, 2);
        let now = Duration::ZERO;
        let pa = PeerConfig {
            peering_common_name: "b".into(),
            ml_kem_keygen_priority: o.prio_b_at_a,
            algorithm: o.alg_a,
        };
        let pb = PeerConfig {
            peering_common_name: "a".into(),
            ml_kem_keygen_priority: o.prio_a_at_b,
            algorithm: o.alg_b,
        };
        let from_a = a.add_peer(B, pa, now).unwrap();
        let from_b = b.add_peer(A, pb, now).unwrap();
        let mut pair = Pair {
            a,
            b,
            b_key,
            cert_a,
            cert_b,
            verifier_a: va,
            verifier_b: vb,
            now,
            wire: Vec::new(),
            alarms: Vec::new(),
        };
        pair.take(A, from_a);
        pair.take(B, from_b);
        pair
    }

    /// Queues the actions of engine `at` (A for engine a, B for engine b).
    fn take(&mut self, at: PeerId, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { peer, bytes } => self.wire.push((peer, bytes)),
                Action::Alarm { peer, kind, raised, .. } => self.alarms.push((peer, kind, raised)),
                Action::ValidateCertificate { peer, certificate } => {
                    let r = if at == A {
                        let v = Box::new(self.verifier_b.clone());
                        self.a.certificate_validated(peer, &certificate, v, self.now)
                    } else {
                        let v = Box::new(self.verifier_a.clone());
                        self.b.certificate_validated(peer, &certificate, v, self.now)
                    };
                    self.take(at, r.actions);
                }
                _ => {}
            }
        }
    }

    /// Delivers one message; returns the receiver's result.
    fn deliver(&mut self, to: PeerId, bytes: &[u8]) -> Result<MessageKind, ReceiveError> {
        let r = if to == B {
            self.b.receive(A, bytes, self.now)
        } else {
            self.a.receive(B, bytes, self.now)
        };
        self.take(to, r.actions);
        r.result
    }

    /// Delivers everything in flight, repeatedly, except messages `hold` keeps back.
    fn pump_holding(
        &mut self,
        hold: impl Fn(PeerId, MessageKind) -> bool,
    ) -> Vec<(PeerId, Vec<u8>)> {
        let mut held = Vec::new();
        for _ in 0..100 {
            if self.wire.is_empty() {
                break;
            }
            let wire = std::mem::take(&mut self.wire);
            for (to, bytes) in wire {
                let kind = msg::decode(&bytes).unwrap().header.kind;
                if hold(to, kind) {
                    held.push((to, bytes));
                } else {
                    let _ = self.deliver(to, &bytes);
                }
            }
        }
        held
    }

    fn pump(&mut self) {
        self.pump_holding(|_, _| false);
    }

    fn complete(o: Options) -> Self {
        let mut p = Pair::new(o);
        p.pump();
        assert_eq!(p.status_a(), SecurityStatus::MkeyExchComp);
        assert_eq!(p.b.snapshot(A).unwrap().status, SecurityStatus::MkeyExchComp);
        p
    }

    fn status_a(&self) -> SecurityStatus {
        self.a.snapshot(B).unwrap().status
    }

    /// Builds a message from b to a, signed with b's real key.
    fn msg_from_b(&self, kind_body: Body, exchange: u32, sequence: u64) -> Vec<u8> {
        self.signed_from_b(
            Header {
                kind: kind_body.kind(),
                sender_boot: BOOT_B,
                receiver_boot: BOOT_A,
                sequence,
                exchange,
            },
            &kind_body,
            &self.b_key,
        )
    }

    fn signed_from_b(&self, header: Header, body: &Body, key: &dyn MessageSigner) -> Vec<u8> {
        let unsigned = msg::encode_unsigned(&header, body);
        let sig = key.sign(&msg::signing_input("b", "a", &unsigned));
        msg::append_signature(unsigned, &sig)
    }
}

fn exchange_a(p: &Pair) -> u32 {
    p.a.snapshot(B).unwrap().exchange
}

#[test]
fn pair_completes_with_snapshot_fields() {
    let p = Pair::complete(Options::default());
    let a = p.a.snapshot(B).unwrap();
    let b = p.b.snapshot(A).unwrap();
    assert_eq!(a.status.label(), "MKEY_EXCH_COMP");
    assert_eq!(a.salt, b.peer_salt);
    assert_eq!(a.peer_salt, b.salt);
    assert_ne!(a.salt, 0);
    assert_eq!(a.key_index, 1);
    assert_eq!(a.peer_key_index, 1);
    assert!(a.cert_rec);
    assert!(a.cert_ack);
    assert!(a.salt_rec);
    assert!(a.salt_ack);
    assert!(a.key_rec);
    assert!(a.key_ack);
    assert!(a.in_service);
    assert_eq!(a.exchange, 1);
    let _ = (&p.cert_a, &p.cert_b);
}

#[test]
fn pair_completes_every_algorithm() {
    for alg in [
        DH1024,
        MLKEM512,
        KexAlgorithm::Hybrid(DhGroup::Modp1024, MlKemLevel::MlKem512),
        KexAlgorithm::MlKem(MlKemLevel::MlKem1024),
    ] {
        let p = Pair::complete(Options { alg_a: alg, alg_b: alg, ..Options::default() });
        assert_eq!(p.a.snapshot(B).unwrap().algorithm, alg);
    }
}

#[test]
fn status_walks_through_stages() {
    let mut p = Pair::new(Options::default());
    assert_eq!(p.status_a(), SecurityStatus::CertExch);
    let held = p.pump_holding(|_, k| k == MessageKind::SaltAck || k == MessageKind::Salt);
    assert_eq!(p.status_a(), SecurityStatus::SaltExch);
    p.wire = held;
    let held = p.pump_holding(|_, k| k == MessageKind::KeyExchange);
    assert_eq!(p.status_a(), SecurityStatus::KeyExch);
    p.wire = held;
    let held = p.pump_holding(|_, k| k == MessageKind::MetadataKeyAck);
    assert_eq!(p.status_a(), SecurityStatus::MkeyExch);
    p.wire = held;
    p.pump();
    assert_eq!(p.status_a(), SecurityStatus::MkeyExchComp);
}

#[test]
fn rejects_decode_error() {
    let mut p = Pair::complete(Options::default());
    let r = p.deliver(A, &[1, 2, 3]);
    assert!(matches!(r, Err(ReceiveError::Decode(_))), "{r:?}");
    assert_eq!(p.a.counters(B).unwrap()["decode-error"], 1);
}

#[test]
fn rejects_bad_signature_with_alarm() {
    let mut p = Pair::complete(Options::default());
    let before = p.a.snapshot(B);
    let mut rng = StdRng::seed_from_u64(9);
    let forger = P256Signer::generate(&mut rng);
    let header = Header {
        kind: MessageKind::RekeyRequest,
        sender_boot: BOOT_B,
        receiver_boot: BOOT_A,
        sequence: 500,
        exchange: 5,
    };
    let forged = p.signed_from_b(header, &Body::RekeyRequest, &forger);
    let r = p.deliver(A, &forged);
    assert!(matches!(r, Err(ReceiveError::BadSignature(SignatureError::Mismatch))), "{r:?}");
    assert!(p.alarms.contains(&(B, AlarmKind::UnableToAuthenticatePeer, true)));
    assert_eq!(p.a.snapshot(B), before);
    assert!(p.wire.is_empty(), "a forged rekey request triggered messages");
}

#[test]
fn rejects_replayed() {
    let mut p = Pair::complete(Options::default());
    let m = p.msg_from_b(Body::RekeyRequest, 0, 900);
    assert!(p.deliver(A, &m).is_ok());
    let r = p.deliver(A, &m);
    assert!(matches!(r, Err(ReceiveError::Replayed { sequence: 900 })), "{r:?}");
    // Older than the 64-entry window.
    let old = p.msg_from_b(Body::RekeyRequest, 0, 900 - 64);
    assert!(matches!(p.deliver(A, &old), Err(ReceiveError::Replayed { .. })));
}

#[test]
fn rejects_stale_boot() {
    let mut p = Pair::complete(Options::default());
    let header = Header {
        kind: MessageKind::RekeyRequest,
        sender_boot: BOOT_B - 1,
        receiver_boot: BOOT_A,
        sequence: 1000,
        exchange: 9,
    };
    let m = p.signed_from_b(header, &Body::RekeyRequest, &p.b_key);
    let r = p.deliver(A, &m);
    assert!(matches!(r, Err(ReceiveError::StaleBoot { boot: 199, current: BOOT_B })), "{r:?}");
}

#[test]
fn rejects_wrong_receiver_boot() {
    let mut p = Pair::complete(Options::default());
    let header = Header {
        kind: MessageKind::RekeyRequest,
        sender_boot: BOOT_B,
        receiver_boot: BOOT_A - 1,
        sequence: 1000,
        exchange: 9,
    };
    let m = p.signed_from_b(header, &Body::RekeyRequest, &p.b_key);
    let r = p.deliver(A, &m);
    assert!(matches!(r, Err(ReceiveError::WrongReceiverBoot { .. })), "{r:?}");
}

#[test]
fn rejects_stale_exchange() {
    let mut p = Pair::complete(Options::default());
    let actions = p.a.rekey_peer(B, p.now);
    p.take(A, actions);
    p.pump();
    assert_eq!(exchange_a(&p), 2);
    let m = p.msg_from_b(Body::SaltAck { salt: 1, algorithm: DH1024 }, 1, 1000);
    let r = p.deliver(A, &m);
    assert!(matches!(r, Err(ReceiveError::StaleExchange { exchange: 1, current: 2 })), "{r:?}");
}

/// Runs until a is waiting for b's key exchange message, which is kept back.
fn waiting_for_key_exchange(o: Options) -> Pair {
    let mut p = Pair::new(o);
    let held = p.pump_holding(|to, k| to == A && k == MessageKind::KeyExchange);
    assert_eq!(held.len(), 1);
    assert_eq!(p.status_a(), SecurityStatus::KeyExch);
    p
}

#[test]
fn rejects_dh_out_of_range_with_alarm() {
    let mut p = waiting_for_key_exchange(Options::default());
    let before = p.a.snapshot(B);
    let body = Body::KeyExchange {
        algorithm: DH1024,
        dh_public: vec![0u8; 128],
        encapsulation_key: Vec::new(),
    };
    let m = p.msg_from_b(body, 1, 1000);
    let r = p.deliver(A, &m);
    assert!(
        matches!(r, Err(ReceiveError::Dh(DhError::OutOfRange { group: DhGroup::Modp1024 }))),
        "{r:?}"
    );
    assert!(p.alarms.contains(&(B, AlarmKind::UnableToAuthenticatePeer, true)));
    assert_eq!(p.a.snapshot(B), before);
}

#[test]
fn rejects_dh_wrong_length() {
    let mut p = waiting_for_key_exchange(Options::default());
    let body = Body::KeyExchange {
        algorithm: DH1024,
        dh_public: vec![2u8; 127],
        encapsulation_key: Vec::new(),
    };
    let r = p.deliver(A, &p.msg_from_b(body, 1, 1000));
    assert!(matches!(r, Err(ReceiveError::Dh(DhError::WrongLength { actual: 127, .. }))), "{r:?}");
}

#[test]
fn rejects_mlkem_invalid_encapsulation_key() {
    // a has the lower priority, so b generates and a encapsulates to b's key.
    let o = Options { alg_a: MLKEM512, alg_b: MLKEM512, ..Options::default() };
    let mut p = waiting_for_key_exchange(o);
    let before = p.a.snapshot(B);
    let body = Body::KeyExchange {
        algorithm: MLKEM512,
        dh_public: Vec::new(),
        encapsulation_key: vec![0xffu8; 800],
    };
    let r = p.deliver(A, &p.msg_from_b(body, 1, 1000));
    assert!(
        matches!(r, Err(ReceiveError::MlKem(MlKemError::EncapsulationKeyModulus { .. }))),
        "{r:?}"
    );
    assert_eq!(p.a.snapshot(B), before);
    let short = Body::KeyExchange {
        algorithm: MLKEM512,
        dh_public: Vec::new(),
        encapsulation_key: vec![0u8; 799],
    };
    let r = p.deliver(A, &p.msg_from_b(short, 1, 1001));
    assert!(matches!(r, Err(ReceiveError::MlKem(MlKemError::EncapsulationKeyLength { .. }))));
}

#[test]
fn rejects_mlkem_ciphertext_length() {
    // a has the higher priority here, so a generates and b's encapsulation goes to a.
    let o = Options {
        alg_a: MLKEM512,
        alg_b: MLKEM512,
        prio_a: 5,
        prio_a_at_b: 5,
        ..Options::default()
    };
    let mut p = Pair::new(o);
    let _held = p.pump_holding(|to, k| to == A && k == MessageKind::Encapsulation);
    let r = p.deliver(A, &p.msg_from_b(Body::Encapsulation { ciphertext: vec![0; 767] }, 1, 1000));
    assert!(matches!(r, Err(ReceiveError::MlKem(MlKemError::CiphertextLength { .. }))), "{r:?}");
}

#[test]
fn rejects_seal_bad_tag_with_alarm() {
    let mut p = Pair::complete(Options::default());
    let before = p.a.snapshot(B);
    let m = p.msg_from_b(Body::MetadataKey { sealed: vec![0u8; 16 + 48 + 48] }, 1, 1000);
    let r = p.deliver(A, &m);
    assert!(matches!(r, Err(ReceiveError::Seal(SealError::BadTag))), "{r:?}");
    assert!(p.alarms.contains(&(B, AlarmKind::UnableToAuthenticatePeer, true)));
    assert_eq!(p.a.snapshot(B), before);
    let m = p.msg_from_b(Body::MetadataKey { sealed: vec![0u8; 20] }, 1, 1001);
    assert!(matches!(
        p.deliver(A, &m),
        Err(ReceiveError::Seal(SealError::BadLength { actual: 20 }))
    ));
}

#[test]
fn rejects_conflicting_salt() {
    let mut p = Pair::complete(Options::default());
    let peer_salt = p.a.snapshot(B).unwrap().peer_salt;
    let m = p.msg_from_b(Body::Salt { salt: peer_salt ^ 1, algorithm: DH1024 }, 1, 1000);
    let r = p.deliver(A, &m);
    assert!(matches!(r, Err(ReceiveError::Conflict { field: "salt", exchange: 1 })), "{r:?}");
}

#[test]
fn rejects_unexpected_key_exchange() {
    let mut p = Pair::complete(Options::default());
    let body =
        Body::KeyExchange { algorithm: DH1024, dh_public: vec![2; 128], encapsulation_key: vec![] };
    let r = p.deliver(A, &p.msg_from_b(body, 7, 1000));
    assert!(
        matches!(r, Err(ReceiveError::Unexpected { kind: MessageKind::KeyExchange, .. })),
        "{r:?}"
    );
}

#[test]
fn rejects_unknown_certificate_ack() {
    let mut p = Pair::complete(Options::default());
    let r = p.deliver(A, &p.msg_from_b(Body::CertificateAck { fingerprint: [7; 48] }, 0, 1000));
    assert!(
        matches!(r, Err(ReceiveError::UnknownAck { kind: MessageKind::CertificateAck })),
        "{r:?}"
    );
}

#[test]
fn rejects_stale_metadata_key() {
    let mut p = Pair::complete(Options::default());
    // b rotates twice; the two metadata keys reach a in reverse order.
    let first = p.b.rotate_metadata_key(p.now);
    p.take(B, first);
    let second = p.b.rotate_metadata_key(p.now);
    p.take(B, second);
    let mut wire = std::mem::take(&mut p.wire);
    wire.retain(|(to, _)| *to == A);
    assert_eq!(wire.len(), 2);
    assert!(p.deliver(A, &wire[1].1).is_ok());
    let r = p.deliver(A, &wire[0].1);
    assert!(matches!(r, Err(ReceiveError::StaleMetadataKey { index: 2, current: 3 })), "{r:?}");
}

#[test]
fn rejects_algorithm_mismatch() {
    let o = Options { alg_b: MLKEM512, ..Options::default() };
    let mut p = Pair::new(o);
    p.pump();
    assert_eq!(p.status_a(), SecurityStatus::SaltExch);
    assert!(p.a.counters(B).unwrap()["algorithm-mismatch"] >= 1);
    let r = p.deliver(A, &p.msg_from_b(Body::Salt { salt: 5, algorithm: MLKEM512 }, 9, 1000));
    assert!(matches!(r, Err(ReceiveError::AlgorithmMismatch { .. })), "{r:?}");
}

#[test]
fn rejects_role_conflict() {
    // Each side believes it has the higher priority, so both send an encapsulation key.
    let o = Options {
        alg_a: MLKEM512,
        alg_b: MLKEM512,
        prio_a: 9,
        prio_b: 9,
        prio_b_at_a: 0,
        prio_a_at_b: 0,
        ..Options::default()
    };
    let mut p = Pair::new(o);
    p.pump();
    assert_eq!(p.status_a(), SecurityStatus::KeyExch);
    assert!(p.a.counters(B).unwrap()["ml-kem-role-conflict"] >= 1);
}

#[test]
fn rejects_before_certificate() {
    let mut p = Pair::new(Options::default());
    p.wire.clear();
    let m = p.msg_from_b(Body::Salt { salt: 5, algorithm: DH1024 }, 1, 1000);
    assert!(matches!(p.deliver(A, &m), Err(ReceiveError::NoVerifier)));
}

#[test]
fn certificate_pending_then_validated() {
    let mut p = Pair::new(Options::default());
    let wire = std::mem::take(&mut p.wire);
    let (_, cert_msg) = wire.iter().find(|(to, _)| *to == A).unwrap().clone();
    let r = p.b_side_receive_raw(&cert_msg);
    assert!(matches!(r.0, Err(ReceiveError::CertificatePending)), "{:?}", r.0);
    assert!(r.1.iter().any(|a| matches!(a, Action::ValidateCertificate { peer: B, .. })));
    // The validation result makes a process the held message.
    let v = Box::new(p.verifier_b.clone());
    let cert_b = p.cert_b.clone();
    let done = p.a.certificate_validated(B, &cert_b, v, p.now);
    assert_eq!(done.result.unwrap(), MessageKind::Certificate);
    assert!(p.a.snapshot(B).unwrap().cert_rec);
}

impl Pair {
    /// Delivers to a and returns its actions without handling validation requests.
    fn b_side_receive_raw(
        &mut self,
        bytes: &[u8],
    ) -> (Result<MessageKind, ReceiveError>, Vec<Action>) {
        let r = self.a.receive(B, bytes, self.now);
        (r.result, r.actions)
    }
}

#[test]
fn certificate_return_after_rejection_reported() {
    let mut p = Pair::complete(Options::default());
    // b presents another certificate, which a rejects.
    let other = b"another certificate".to_vec();
    let bogus = p.msg_from_b(Body::Certificate { certificate: other.clone() }, 2, 2000);
    let (r, actions) = p.b_side_receive_raw(&bogus);
    assert!(matches!(r, Err(ReceiveError::CertificatePending)), "{r:?}");
    assert!(actions.iter().any(|a| matches!(a, Action::ValidateCertificate { .. })));
    let _ = p.a.certificate_rejected(B, &other, "expired", p.now);

    // b goes back to the certificate a accepted, signed with its key: a reports the return
    // once and goes on under that certificate.
    let cert_b = p.cert_b.clone();
    let back = p.msg_from_b(Body::Certificate { certificate: cert_b.clone() }, 3, 2001);
    let (r, actions) = p.b_side_receive_raw(&back);
    assert!(r.is_ok(), "{r:?}");
    let returned: Vec<&Action> =
        actions.iter().filter(|a| matches!(a, Action::CertificateReturned { .. })).collect();
    assert_eq!(returned.len(), 1, "{actions:?}");
    assert!(matches!(returned[0], Action::CertificateReturned { peer: B, certificate }
        if *certificate == cert_b));
    let again = p.msg_from_b(Body::Certificate { certificate: cert_b }, 4, 2002);
    let (_, actions) = p.b_side_receive_raw(&again);
    assert!(!actions.iter().any(|a| matches!(a, Action::CertificateReturned { .. })));
}

#[test]
fn certificate_return_needs_signature() {
    let mut p = Pair::complete(Options::default());
    let other = b"another certificate".to_vec();
    let bogus = p.msg_from_b(Body::Certificate { certificate: other.clone() }, 2, 2000);
    let _ = p.b_side_receive_raw(&bogus);
    let _ = p.a.certificate_rejected(B, &other, "expired", p.now);

    // The accepted certificate in a message not signed by b's key reports nothing.
    let cert_b = p.cert_b.clone();
    let mut forged = p.msg_from_b(Body::Certificate { certificate: cert_b }, 3, 2001);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let (r, actions) = p.b_side_receive_raw(&forged);
    assert!(matches!(r, Err(ReceiveError::BadSignature(_))), "{r:?}");
    assert!(!actions.iter().any(|a| matches!(a, Action::CertificateReturned { .. })));
}

#[test]
fn certificate_rejected_is_remembered() {
    let mut p = Pair::new(Options::default());
    let wire = std::mem::take(&mut p.wire);
    let (_, cert_msg) = wire.iter().find(|(to, _)| *to == A).unwrap().clone();
    let _ = p.b_side_receive_raw(&cert_msg);
    let cert_b = p.cert_b.clone();
    let actions = p.a.certificate_rejected(B, &cert_b, "expired", p.now);
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::Alarm { kind: AlarmKind::CertificateRejected, raised: true, .. }
    )));
    // The retransmitted certificate is rejected without asking again.
    let again = p.msg_from_b(Body::Certificate { certificate: cert_b }, 0, 1000);
    let (r, actions) = p.b_side_receive_raw(&again);
    assert!(matches!(r, Err(ReceiveError::CertificateRejected)), "{r:?}");
    assert!(!actions.iter().any(|a| matches!(a, Action::ValidateCertificate { .. })));
    assert!(!p.a.snapshot(B).unwrap().cert_rec);
}

#[test]
fn certificate_signed_by_other_key_rejected() {
    // A valid certificate of b in a message signed by someone else does not install it.
    let mut p = Pair::new(Options::default());
    p.wire.clear();
    let mut rng = StdRng::seed_from_u64(3);
    let forger = P256Signer::generate(&mut rng);
    let header = Header {
        kind: MessageKind::Certificate,
        sender_boot: BOOT_B,
        receiver_boot: 0,
        sequence: 1,
        exchange: 0,
    };
    let m = p.signed_from_b(header, &Body::Certificate { certificate: p.cert_b.clone() }, &forger);
    let _ = p.b_side_receive_raw(&m);
    let v = Box::new(p.verifier_b.clone());
    let cert_b = p.cert_b.clone();
    let r = p.a.certificate_validated(B, &cert_b, v, p.now);
    assert!(matches!(r.result, Err(ReceiveError::BadSignature(_))), "{:?}", r.result);
    assert!(!p.a.snapshot(B).unwrap().cert_rec);
}

#[test]
fn rejects_no_peer_key_and_requests_rekey() {
    let mut p = Pair::complete(Options::default());
    let m = p.msg_from_b(Body::MetadataKey { sealed: vec![0u8; 112] }, 5, 1000);
    let r = p.deliver(A, &m);
    assert!(matches!(r, Err(ReceiveError::NoPeerKey { exchange: 5 })), "{r:?}");
    let request = p.wire.iter().any(|(to, b)| {
        *to == B && msg::decode(b).unwrap().header.kind == MessageKind::RekeyRequest
    });
    assert!(request, "no rekey request sent");
}

#[test]
fn rekey_request_starts_exchange() {
    let mut p = Pair::complete(Options::default());
    // A sequence number just ahead of b's own keeps b's later messages inside a's
    // replay window.
    assert!(p.deliver(A, &p.msg_from_b(Body::RekeyRequest, 1, 30)).is_ok());
    assert_eq!(exchange_a(&p), 2);
    p.pump();
    assert_eq!(p.status_a(), SecurityStatus::MkeyExchComp);
    assert!(p.a.snapshot(B).unwrap().in_service);
}

#[test]
fn rejects_unknown_peer() {
    let mut p = Pair::complete(Options::default());
    let r = p.a.receive(PeerId(9), &[0; 40], p.now);
    assert!(matches!(r.result, Err(ReceiveError::UnknownPeer)));
    assert_eq!(p.a.unknown_peer_count(), 1);
}

#[test]
fn rejects_when_standby() {
    let mut p = Pair::complete(Options::default());
    let actions = p.a.set_mode(Mode::Standby, p.now);
    assert!(
        actions.iter().any(|a| matches!(a, Action::PathService { peer: B, in_service: false }))
    );
    assert_eq!(p.status_a(), SecurityStatus::EskmStandby);
    let m = p.msg_from_b(Body::RekeyRequest, 1, 1000);
    assert!(matches!(p.deliver(A, &m), Err(ReceiveError::Inactive)));
    let _ = p.a.set_mode(Mode::Disabled, p.now);
    assert_eq!(p.status_a(), SecurityStatus::EskmDisabled);
}

#[test]
fn active_again_after_standby() {
    let mut p = Pair::complete(Options::default());
    let _ = p.a.set_mode(Mode::Standby, p.now);
    let actions = p.a.set_mode(Mode::Active, p.now);
    p.take(A, actions);
    p.pump();
    assert_eq!(p.status_a(), SecurityStatus::MkeyExchComp);
    assert!(p.a.snapshot(B).unwrap().in_service);
    assert_eq!(p.a.snapshot(B).unwrap().exchange, 2);
}

#[test]
fn rejects_missing_ml_kem_key_pair() {
    // a generates but was given no key pairs.
    let o = Options {
        alg_a: MLKEM512,
        alg_b: MLKEM512,
        prio_a: 5,
        prio_a_at_b: 5,
        ml_kem_a: false,
        ..Options::default()
    };
    let mut p = Pair::new(o);
    p.pump();
    let r = p.deliver(A, &p.msg_from_b(Body::Encapsulation { ciphertext: vec![0; 768] }, 1, 1000));
    assert!(
        matches!(r, Err(ReceiveError::MissingMlKemKeyPair { level: MlKemLevel::MlKem512 })),
        "{r:?}"
    );
}

#[test]
fn restart_of_peer_takes_paths_out() {
    let mut p = Pair::complete(Options::default());
    // b restarts with a higher boot id and the same certificate key.
    let mut rng = StdRng::seed_from_u64(77);
    let _ = &mut rng;
    let key = P256Signer::from_scalar(&p.b_key.to_scalar()).unwrap();
    let mut b = engine("b", BOOT_B + 1, key, p.cert_b.clone(), 2, true, 3);
    let pb = PeerConfig {
        peering_common_name: "a".into(),
        ml_kem_keygen_priority: 1,
        algorithm: DH1024,
    };
    let actions = b.add_peer(A, pb, p.now).unwrap();
    p.b = b;
    p.wire.clear();
    p.take(B, actions);
    let cert = p.wire.iter().find(|(to, _)| *to == A).unwrap().1.clone();
    p.wire.clear();
    let r = p.a.receive(B, &cert, p.now);
    assert!(r.result.is_ok());
    assert!(
        r.actions.iter().any(|a| matches!(a, Action::PathService { peer: B, in_service: false }))
    );
    assert!(r.actions.iter().any(|a| matches!(a, Action::SealTowardsPeer { peer: B, key: None })));
    p.take(A, r.actions);
    p.pump();
    assert_eq!(p.status_a(), SecurityStatus::MkeyExchComp);
    assert!(p.a.snapshot(B).unwrap().in_service);
}

#[test]
fn timers_checked_against_ranges() {
    assert!(KexTimers::from_config(30, 3600, Some(24)).is_ok());
    assert!(KexTimers::from_config(30, 3600, None).unwrap().rekey_interval.is_none());
    assert_eq!(
        KexTimers::from_config(4, 3600, Some(24)),
        Err(ConfigError::TimerOutOfRange {
            name: "peer-key-retransmit-interval",
            seconds: 4,
            min: 5,
            max: 3600
        })
    );
    assert!(matches!(
        KexTimers::from_config(30, 3600, Some(721)),
        Err(ConfigError::TimerOutOfRange { name: "peer-key-rekey-interval", .. })
    ));
    assert!(matches!(
        KexTimers::from_config(30, 10, Some(24)),
        Err(ConfigError::TimerOutOfRange { name: "peer-key-timeout", .. })
    ));
    let d = KexTimers::default();
    assert_eq!(d.retransmit_interval, Duration::from_secs(30));
    assert_eq!(d.timeout, Duration::from_secs(3600));
    assert_eq!(d.rekey_interval, Some(Duration::from_secs(86400)));
    assert_eq!(d.switch_delay, Duration::from_secs(30));
    assert_eq!(d.grace, Duration::from_secs(30));
}

#[test]
fn config_names_checked() {
    let mut p = Pair::new(Options::default());
    let dup = PeerConfig {
        peering_common_name: "b".into(),
        ml_kem_keygen_priority: 0,
        algorithm: DH1024,
    };
    assert_eq!(
        p.a.add_peer(PeerId(5), dup, p.now).err(),
        Some(ConfigError::DuplicateCommonName { name: "b".into() })
    );
    let own = PeerConfig {
        peering_common_name: "a".into(),
        ml_kem_keygen_priority: 0,
        algorithm: DH1024,
    };
    assert!(matches!(
        p.a.add_peer(PeerId(6), own, p.now),
        Err(ConfigError::DuplicateCommonName { .. })
    ));
    let empty = PeerConfig {
        peering_common_name: String::new(),
        ml_kem_keygen_priority: 0,
        algorithm: DH1024,
    };
    assert_eq!(
        p.a.add_peer(PeerId(7), empty, p.now).err(),
        Some(ConfigError::CommonNameLength { len: 0 })
    );
}

#[test]
fn generator_by_priority_then_name() {
    assert!(is_generator(10, "a", 5, "b"));
    assert!(!is_generator(5, "z", 10, "a"));
    // Tie: the bytewise greater name generates, and exactly one side does.
    assert!(is_generator(3, "b", 3, "a"));
    assert!(!is_generator(3, "a", 3, "b"));
}

#[test]
fn algorithm_precedence() {
    let auth = KexAlgorithm::default();
    let router = MLKEM512;
    let peer = KexAlgorithm::Hybrid(DhGroup::Modp4096, MlKemLevel::MlKem1024);
    assert_eq!(KexAlgorithm::resolve(Some(peer), Some(router), auth), peer);
    assert_eq!(KexAlgorithm::resolve(None, Some(router), auth), router);
    assert_eq!(KexAlgorithm::resolve(None, None, auth), auth);
    assert_eq!(auth, KexAlgorithm::DiffieHellman(DhGroup::Modp2048));
}

#[test]
fn verifier_rejects_malformed_signature() {
    let mut rng = StdRng::seed_from_u64(1);
    let s = P256Signer::generate(&mut rng);
    let v = s.verifier();
    let sig = s.sign(b"msg");
    assert_eq!(v.verify(b"msg", &sig), Ok(()));
    assert_eq!(v.verify(b"msh", &sig), Err(SignatureError::Mismatch));
    assert_eq!(v.verify(b"msg", &sig[..10]), Err(SignatureError::Malformed { len: 10 }));
}

#[test]
fn timer_before_deadline_sends_nothing() {
    let mut p = Pair::new(Options::default());
    p.wire.clear();
    let deadline = p.a.next_deadline().unwrap();
    assert_eq!(deadline, Duration::from_secs(5), "first retransmission after 5 s");
    let early = p.a.on_timer(deadline - Duration::from_millis(1));
    assert!(!early.iter().any(|a| matches!(a, Action::Send { .. })));
    assert!(early.iter().any(|a| matches!(a, Action::ArmTimer { at } if *at == deadline)));
    let due = p.a.on_timer(deadline);
    let sent: Vec<_> = due
        .iter()
        .filter_map(|a| match a {
            Action::Send { bytes, .. } => Some(msg::decode(bytes).unwrap().header.kind),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![MessageKind::Certificate], "retransmits the unacknowledged certificate");
}

#[test]
fn set_timers_moves_rekey_schedule() {
    let mut rng = StdRng::seed_from_u64(7);
    let key = P256Signer::generate(&mut rng);
    let certificate = cert("a", &key.verifier());
    let mut a = engine("a", BOOT_A, key, certificate, 1, false, 3);
    let day = Duration::from_secs(86400);
    assert_eq!(a.next_deadline(), Some(day), "the default rekey interval is 24 h");

    // A new retransmit interval leaves the rekey schedule alone.
    let now = Duration::from_secs(10);
    let faster = KexTimers { retransmit_interval: Duration::from_secs(7), ..KexTimers::default() };
    a.set_timers(faster, now);
    assert_eq!(a.next_deadline(), Some(day));

    // A new rekey interval restarts the schedule from now.
    let hour = Duration::from_secs(3600);
    let hourly = KexTimers { rekey_interval: Some(hour), ..KexTimers::default() };
    let actions = a.set_timers(hourly, now);
    assert_eq!(a.next_deadline(), Some(now + hour));
    assert!(
        actions.iter().any(|x| matches!(x, Action::ArmTimer { at } if *at == now + hour)),
        "{actions:?}"
    );

    let never = KexTimers { rekey_interval: None, ..KexTimers::default() };
    a.set_timers(never, now);
    assert_eq!(a.next_deadline(), None, "no rotation is due when rekeying is off");
}
