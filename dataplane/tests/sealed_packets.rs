//! Whole sealed SVR packets: metadata and payload sealed by one router and opened by the
//! next, tampering, the false-positive marker, and a hub that re-seals metadata while the
//! payload ciphertext crosses unchanged.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]

use std::net::Ipv4Addr;

use svr_dataplane::crypto::Sequence;
use svr_dataplane::crypto::{
    CryptoError, Direction, MetadataKeys, MetadataSecret, PairKeys, PairSecret, PayloadKeyTlv,
    PayloadSecret, SessionKeys, Suite,
};
use svr_dataplane::packet::{
    COOKIE, HeaderTlv, Ipv4Context, MetadataRepr, PayloadKeyBlob, PayloadSection, PayloadTlv,
    SessionContext,
};
use svr_dataplane::replay::ReplayWindow;
use svr_dataplane::sealed::{
    Opened, Outgoing, OutgoingMetadata, PayloadTlvs, ReceiveError, Received, SealError, classify,
    decrypt_carried, open_with_metadata, open_without_metadata, peek_sequence, seal,
};
use uuid::Uuid;

/// A receiving router: its metadata key, and its pair keys with the sender (named "r1").
struct Router {
    metadata: MetadataKeys,
    from_sender: PairKeys,
    sender_to_it: PairKeys,
}

fn router(index: u32, byte: u8) -> Router {
    let pair = PairSecret::from_bytes([byte ^ 0xff; 32]);
    let name = format!("router-{byte}");
    Router {
        metadata: MetadataKeys::derive(
            index,
            Suite::AesCbc256HmacSha384,
            &MetadataSecret::from_bytes([byte; 32]),
        ),
        from_sender: PairKeys::derive(Suite::AesCbc256HmacSha384, &pair, &name, "r1"),
        sender_to_it: PairKeys::derive(Suite::AesCbc256HmacSha384, &pair, "r1", &name),
    }
}

fn payload_key() -> PayloadKeyTlv {
    PayloadKeyTlv {
        suite: Suite::AesCbc256HmacSha384,
        key_id: 0,
        secret: PayloadSecret::from_bytes([0x77; 32]),
    }
}

fn forward_tlvs(key: &PayloadKeyTlv) -> Vec<PayloadTlv> {
    vec![
        PayloadTlv::ForwardContext(SessionContext::V4(Ipv4Context {
            source: Ipv4Addr::new(10, 1, 0, 10),
            destination: Ipv4Addr::new(10, 5, 0, 10),
            source_port: 40000,
            destination_port: 5201,
            protocol: 17,
        })),
        PayloadTlv::SessionUuid(Uuid::from_u128(0x1234)),
        PayloadTlv::Tenant("corp".into()),
        PayloadTlv::Service("iperf".into()),
        PayloadTlv::SourceRouter("r1".into()),
        PayloadTlv::SessionEncrypted,
        PayloadTlv::PayloadKey(PayloadKeyBlob::new(key.emit().to_vec()).unwrap()),
    ]
}

fn seal_first_packet(
    to: &Router,
    session: &SessionKeys,
    tlvs: &[PayloadTlv],
    payload: &[u8],
) -> Vec<u8> {
    let mut out = vec![0u8; 2048];
    let packet = Outgoing {
        session,
        direction: Direction::Forward,
        number: 1,
        encrypt: true,
        metadata: Some(OutgoingMetadata {
            keys: &to.metadata,
            tag_key: to.sender_to_it.send(),
            header_tlvs: &[],
            payload_tlvs: tlvs.into(),
        }),
    };
    let len = seal(&mut out, &packet, payload).unwrap();
    out.truncate(len);
    out
}

/// The receive procedure of an egress router for the first packet of a session: returns
/// the decrypted payload or the reason for the drop.
fn receive_first(me: &Router, packet: &mut [u8]) -> Result<Vec<u8>, ReceiveError> {
    let Received::Metadata { security_id } = classify(packet)? else {
        return Err(ReceiveError::NoMetadata);
    };
    if security_id != me.metadata.index() {
        return Err(ReceiveError::WrongMetadataKey { security_id, index: me.metadata.index() });
    }
    let opened = open_with_metadata(packet, &me.metadata, me.from_sender.receive())?;
    let session = session_from(&opened);
    let mut window = ReplayWindow::new();
    window.check(opened.sequence.number()).unwrap();
    let plain = decrypt_carried(packet, &opened, &session, Direction::Forward, true)?;
    window.record(opened.sequence.number()).unwrap();
    Ok(packet[plain].to_vec())
}

fn session_from(opened: &Opened) -> SessionKeys {
    let metadata = opened.metadata.as_ref().unwrap();
    let blob = metadata
        .payload_tlvs
        .iter()
        .find_map(|tlv| match tlv {
            PayloadTlv::PayloadKey(blob) => Some(blob.as_bytes().to_vec()),
            _ => None,
        })
        .unwrap();
    PayloadKeyTlv::parse(&blob).unwrap().session_keys()
}

#[test]
fn first_packet_round_trip() {
    let r2 = router(5, 0x22);
    let key = payload_key();
    let session = key.session_keys();
    let tlvs = forward_tlvs(&key);
    let payload = b"first datagram of the session".to_vec();
    let mut packet = seal_first_packet(&r2, &session, &tlvs, &payload);

    assert_eq!(classify(&packet).unwrap(), Received::Metadata { security_id: 5 });
    let opened =
        open_with_metadata(&mut packet.clone(), &r2.metadata, r2.from_sender.receive()).unwrap();
    let metadata = opened.metadata.as_ref().unwrap();
    assert_eq!(metadata.payload_tlvs, tlvs);
    assert_eq!(metadata.header_tlvs, vec![HeaderTlv::SecurityId(5)]);
    assert_eq!(receive_first(&r2, &mut packet).unwrap(), payload);
}

#[test]
fn first_packet_hides_names_and_payload() {
    let r2 = router(5, 0x22);
    let key = payload_key();
    let packet = seal_first_packet(&r2, &key.session_keys(), &forward_tlvs(&key), b"secret text");
    for needle in [&b"corp"[..], b"iperf", b"secret text", &[10, 1, 0, 10], key.secret.expose()] {
        assert!(!packet.windows(needle.len()).any(|w| w == needle), "{needle:?} visible");
    }
}

#[test]
fn every_flipped_byte_of_a_first_packet_is_rejected() {
    let r2 = router(5, 0x22);
    let key = payload_key();
    let packet = seal_first_packet(&r2, &key.session_keys(), &forward_tlvs(&key), b"payload bytes");
    for index in 0..packet.len() {
        let mut tampered = packet.clone();
        tampered[index] ^= 0x04;
        assert!(receive_first(&r2, &mut tampered).is_err(), "flip at byte {index} accepted");
    }
}

#[test]
fn metadata_for_another_router_is_rejected() {
    let r2 = router(5, 0x22);
    let r3 = router(5, 0x33);
    let key = payload_key();
    let mut packet = seal_first_packet(&r2, &key.session_keys(), &forward_tlvs(&key), b"x");
    assert_eq!(
        open_with_metadata(&mut packet, &r3.metadata, r3.from_sender.receive()),
        Err(ReceiveError::Crypto(CryptoError::BadTag))
    );
}

#[test]
fn wrong_security_id_is_rejected() {
    let r2 = router(5, 0x22);
    let old = router(4, 0x22);
    let key = payload_key();
    let mut packet = seal_first_packet(&r2, &key.session_keys(), &forward_tlvs(&key), b"x");
    assert_eq!(
        open_with_metadata(&mut packet, &old.metadata, r2.from_sender.receive()),
        Err(ReceiveError::WrongMetadataKey { security_id: 5, index: 4 })
    );
}

#[test]
fn metadata_without_security_id_is_rejected() {
    let repr = MetadataRepr { header_tlvs: vec![], payload: PayloadSection::Opaque(vec![0; 32]) };
    let mut packet = vec![0u8; 200];
    let len = repr.emit(&mut packet).unwrap();
    packet.truncate(len + 100);
    assert_eq!(classify(&packet), Err(ReceiveError::MissingSecurityId));
}

#[test]
fn duplicate_security_id_is_rejected() {
    let repr = MetadataRepr {
        header_tlvs: vec![HeaderTlv::SecurityId(1), HeaderTlv::SecurityId(2)],
        payload: PayloadSection::Opaque(vec![0; 32]),
    };
    let mut packet = vec![0u8; 200];
    repr.emit(&mut packet).unwrap();
    assert_eq!(classify(&packet), Err(ReceiveError::DuplicateSecurityId));
}

#[test]
fn caller_security_id_is_refused() {
    let r2 = router(5, 0x22);
    let session = payload_key().session_keys();
    let packet = Outgoing {
        session: &session,
        direction: Direction::Forward,
        number: 1,
        encrypt: true,
        metadata: Some(OutgoingMetadata {
            keys: &r2.metadata,
            tag_key: r2.sender_to_it.send(),
            header_tlvs: &[HeaderTlv::SecurityId(9)],
            payload_tlvs: PayloadTlvs::default(),
        }),
    };
    assert_eq!(seal(&mut [0u8; 512], &packet, b"x"), Err(SealError::SecurityIdGiven));
}

#[test]
fn session_packet_round_trip_both_directions() {
    let session = payload_key().session_keys();
    for direction in [Direction::Forward, Direction::Reverse] {
        let packet =
            Outgoing { session: &session, direction, number: 42, encrypt: true, metadata: None };
        let mut out = vec![0u8; 256];
        let len = seal(&mut out, &packet, b"fast path").unwrap();
        out.truncate(len);
        assert_eq!(classify(&out).unwrap(), Received::Session);
        assert_eq!(peek_sequence(&out, 48).unwrap().number(), 42);
        let opened = open_without_metadata(&out, &session, direction).unwrap();
        let plain = decrypt_carried(&mut out, &opened, &session, direction, true).unwrap();
        assert_eq!(&out[plain], b"fast path");
    }
}

#[test]
fn plaintext_payload_starting_with_cookie_gets_a_marker() {
    let session = payload_key().session_keys();
    let mut payload = COOKIE.to_vec();
    payload.extend_from_slice(b" and more");
    let packet = Outgoing {
        session: &session,
        direction: Direction::Forward,
        number: 1,
        encrypt: false,
        metadata: None,
    };
    let mut out = vec![0u8; 256];
    let len = seal(&mut out, &packet, &payload).unwrap();
    out.truncate(len);
    assert_eq!(&out[..8], &COOKIE, "marker missing");
    assert_eq!(&out[12..20], &COOKIE, "payload not after the marker");
    assert_eq!(classify(&out).unwrap(), Received::Session);
    let opened = open_without_metadata(&out, &session, Direction::Forward).unwrap();
    let plain = decrypt_carried(&mut out, &opened, &session, Direction::Forward, false).unwrap();
    assert_eq!(&out[plain], &payload[..]);
}

#[test]
fn hub_reseals_metadata_and_keeps_payload_ciphertext() {
    let hub = router(7, 0x44);
    let spoke2 = router(9, 0x55);
    let key = payload_key();
    let session = key.session_keys();
    let tlvs = forward_tlvs(&key);
    let payload = b"end-to-end payload through the hub".to_vec();
    let from_spoke1 = seal_first_packet(&hub, &session, &tlvs, &payload);

    // The hub authenticates and decrypts the metadata under its own key, then re-seals it
    // for spoke2 with the carried bytes as they came, under the same packet number.
    let mut at_hub = from_spoke1.clone();
    let opened = open_with_metadata(&mut at_hub, &hub.metadata, hub.from_sender.receive()).unwrap();
    let carried = at_hub[opened.carried.clone()].to_vec();
    let metadata = opened.metadata.unwrap();
    let mut to_spoke2 = vec![0u8; 2048];
    let len = seal(
        &mut to_spoke2,
        &Outgoing {
            session: &session,
            direction: Direction::Forward,
            number: opened.sequence.number(),
            encrypt: false,
            metadata: Some(OutgoingMetadata {
                keys: &spoke2.metadata,
                tag_key: spoke2.sender_to_it.send(),
                header_tlvs: &[],
                payload_tlvs: metadata.payload_tlvs.as_slice().into(),
            }),
        },
        &carried,
    )
    .unwrap();
    to_spoke2.truncate(len);

    let tail =
        |packet: &[u8]| packet[packet.len() - 56 - carried.len()..packet.len() - 56].to_vec();
    assert_eq!(tail(&from_spoke1), tail(&to_spoke2), "payload ciphertext changed at the hub");
    assert_eq!(receive_first(&spoke2, &mut to_spoke2).unwrap(), payload);
}

#[test]
fn seal_into_small_buffer_is_an_error() {
    let session = payload_key().session_keys();
    let packet = Outgoing {
        session: &session,
        direction: Direction::Forward,
        number: 1,
        encrypt: true,
        metadata: None,
    };
    assert!(matches!(
        seal(&mut [0u8; 40], &packet, b"four"),
        Err(SealError::Crypto(CryptoError::BufferTooSmall { .. }))
    ));
}

#[test]
fn number_zero_is_refused() {
    let session = payload_key().session_keys();
    let packet = Outgoing {
        session: &session,
        direction: Direction::Forward,
        number: 0,
        encrypt: true,
        metadata: None,
    };
    assert_eq!(
        seal(&mut [0u8; 256], &packet, b"x"),
        Err(SealError::Crypto(CryptoError::SequenceZero))
    );
}

/// The seeds of the `open` fuzz target are real packets under that target's keys (metadata
/// secret 0x11 with index 1, payload secret 0x22, pair secret 0x33 used for both
/// directions). `SVR_WRITE_CORPUS=1` writes them anew;
/// otherwise this checks that each mode-0 seed still opens.
#[test]
fn open_fuzz_seeds_are_valid_packets() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/open");
    let metadata = MetadataKeys::derive(
        1,
        Suite::AesCbc256HmacSha384,
        &MetadataSecret::from_bytes([0x11; 32]),
    );
    let session =
        SessionKeys::derive(Suite::AesCbc256HmacSha384, 0, &PayloadSecret::from_bytes([0x22; 32]));
    let pair_secret = PairSecret::from_bytes([0x33; 32]);
    let pair = PairKeys::derive(Suite::AesCbc256HmacSha384, &pair_secret, "a", "b");

    if std::env::var_os("SVR_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        let key = PayloadKeyTlv {
            suite: Suite::AesCbc256HmacSha384,
            key_id: 0,
            secret: PayloadSecret::from_bytes([0x22; 32]),
        };
        let first = seal_first_packet(
            &Router {
                metadata: metadata.clone(),
                from_sender: pair.clone(),
                sender_to_it: pair.clone(),
            },
            &session,
            &forward_tlvs(&key),
            b"seed payload",
        );
        let mut fast = vec![0u8; 256];
        let packet = Outgoing {
            session: &session,
            direction: Direction::Forward,
            number: 1,
            encrypt: true,
            metadata: None,
        };
        let len = seal(&mut fast, &packet, b"seed fast path").unwrap();
        fast.truncate(len);
        for (name, mode, bytes) in [
            ("first-packet", 0u8, &first[..]),
            ("session-packet", 0, &fast[..]),
            ("first-packet-body", 1, &first[..first.len() - 56]),
            ("session-packet-body", 1, &fast[..fast.len() - 56]),
        ] {
            let mut seed = vec![mode];
            seed.extend_from_slice(bytes);
            std::fs::write(dir.join(name), seed).unwrap();
        }
    }

    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let seed = std::fs::read(entry.unwrap().path()).unwrap();
        if seed[0] != 0 {
            continue;
        }
        let mut packet = seed[1..].to_vec();
        let opened = match classify(&packet).unwrap() {
            Received::Metadata { .. } => {
                open_with_metadata(&mut packet, &metadata, pair.send()).unwrap()
            }
            Received::Session => {
                open_without_metadata(&packet, &session, Direction::Forward).unwrap()
            }
        };
        decrypt_carried(&mut packet, &opened, &session, Direction::Forward, true).unwrap();
        checked += 1;
    }
    assert_eq!(checked, 2);
}

#[test]
fn another_peer_of_the_receiver_cannot_forge_metadata() {
    // r3 also peers with r2 and so holds r2's metadata key, but not the r1-r2 pair key.
    let r2 = router(5, 0x22);
    let r3_to_r2 = PairKeys::derive(
        Suite::AesCbc256HmacSha384,
        &PairSecret::from_bytes([0x99; 32]),
        "r3",
        "router-34",
    );
    let key = payload_key();
    let mut out = vec![0u8; 2048];
    let claimed = forward_tlvs(&key);
    let forged = Outgoing {
        session: &key.session_keys(),
        direction: Direction::Forward,
        number: Sequence::MAX_NUMBER,
        encrypt: true,
        metadata: Some(OutgoingMetadata {
            keys: &r2.metadata,
            tag_key: r3_to_r2.send(),
            header_tlvs: &[],
            payload_tlvs: claimed.as_slice().into(),
        }),
    };
    let len = seal(&mut out, &forged, b"claims to come from r1").unwrap();
    out.truncate(len);
    // r2 checks packets arriving on r1's path with the r1-r2 pair key.
    assert_eq!(
        open_with_metadata(&mut out, &r2.metadata, r2.from_sender.receive()),
        Err(ReceiveError::Crypto(CryptoError::BadTag))
    );
}

#[test]
fn decrypted_payload_key_is_wiped_from_the_buffer() {
    let r2 = router(5, 0x22);
    let key = payload_key();
    let mut packet = seal_first_packet(&r2, &key.session_keys(), &forward_tlvs(&key), b"x");
    open_with_metadata(&mut packet, &r2.metadata, r2.from_sender.receive()).unwrap();
    let secret = key.secret.expose();
    assert!(
        !packet.windows(secret.len()).any(|w| w == secret),
        "payload secret left in the buffer"
    );
}

#[test]
fn two_payload_keys_are_rejected() {
    let r2 = router(5, 0x22);
    let key = payload_key();
    let mut tlvs = forward_tlvs(&key);
    tlvs.push(PayloadTlv::PayloadKey(PayloadKeyBlob::new(vec![1]).unwrap()));
    let mut packet = seal_first_packet(&r2, &key.session_keys(), &tlvs, b"x");
    assert_eq!(
        open_with_metadata(&mut packet, &r2.metadata, r2.from_sender.receive()),
        Err(ReceiveError::DuplicatePayloadKey)
    );
}

#[test]
fn short_payload_and_sequence_spelling_the_cookie_get_a_marker() {
    // Seven cookie bytes of payload followed by a sequence field whose key id is the
    // cookie's last byte: without a marker the receiver would read metadata.
    let session = SessionKeys::derive(
        Suite::AesCbc256HmacSha384,
        COOKIE[7],
        &PayloadSecret::from_bytes([1; 32]),
    );
    let packet = Outgoing {
        session: &session,
        direction: Direction::Forward,
        number: 1,
        encrypt: false,
        metadata: None,
    };
    let mut out = vec![0u8; 256];
    let len = seal(&mut out, &packet, &COOKIE[..7]).unwrap();
    out.truncate(len);
    assert_eq!(classify(&out).unwrap(), Received::Session);
    let opened = open_without_metadata(&out, &session, Direction::Forward).unwrap();
    assert_eq!(&out[opened.carried.clone()], &COOKIE[..7]);
}

#[test]
fn stale_buffer_bytes_do_not_add_a_marker() {
    let session = payload_key().session_keys();
    let packet = Outgoing {
        session: &session,
        direction: Direction::Forward,
        number: 1,
        encrypt: false,
        metadata: None,
    };
    let mut out = COOKIE.repeat(16);
    let len = seal(&mut out, &packet, &COOKIE[..3]).unwrap();
    assert_eq!(len, 3 + 8 + 48);
}

#[test]
fn oversized_payload_is_refused() {
    // The bound leaves room for a 12-byte marker, a full padding block and the trailer.
    let session = payload_key().session_keys();
    let packet = Outgoing {
        session: &session,
        direction: Direction::Forward,
        number: 1,
        encrypt: true,
        metadata: None,
    };
    let mut out = vec![0u8; 70_100];
    assert_eq!(
        seal(&mut out, &packet, &vec![0u8; 70_000]),
        Err(SealError::Crypto(CryptoError::PayloadTooLarge {
            len: 70_000,
            max: 65_507 - 12 - 16 - 56
        }))
    );
}
