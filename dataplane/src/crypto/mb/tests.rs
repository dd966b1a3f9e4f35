//! The burst engine against the one-packet path, the RustCrypto crates and the Wycheproof
//! vectors, at every width this CPU runs.

use ::aes::cipher::{BlockCipherDecrypt, KeyInit};
use proptest::prelude::*;
use serde_json::Value;

use super::aes::{AesPath, cbc_encrypt_lanes_with};
use super::sha512::{MacJob, TAG_BUF_LEN, hmac_burst};
use super::*;
use crate::crypto::{
    MacAlgorithm, MacKey, PayloadSecret, Suite, open_fast_path, seal_fast_path, sealed_overhead,
};
use crate::replay::ReplayError;

const SUITES: [Suite; 2] = [Suite::AesCbc256HmacSha384, Suite::AesCbc256HmacSha512];

fn widths() -> Vec<Width> {
    let available: Vec<Width> = Width::ALL.into_iter().filter(|w| w.is_available()).collect();
    assert!(available.contains(&Width::Scalar));
    available
}

fn session(suite: Suite, key_id: u8, seed: u8) -> SessionKeys {
    SessionKeys::derive(suite, key_id, &PayloadSecret::from_bytes([seed; 32]))
}

fn random_session(suite: Suite, key_id: u8) -> SessionKeys {
    SessionKeys::derive(suite, key_id, &PayloadSecret::generate().unwrap())
}

fn payload(len: usize, salt: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(131) ^ salt.wrapping_mul(7)) as u8).collect()
}

fn buffer(keys: &SessionKeys, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0xa5; payload.len() + sealed_overhead(keys.suite(), payload.len())];
    buf[..payload.len()].copy_from_slice(payload);
    buf
}

/// One packet of a test burst.
struct Packet {
    keys: SessionKeys,
    direction: Direction,
    number: u64,
    payload: Vec<u8>,
}

/// Seals every packet with the one-packet path.
fn seal_each(packets: &[Packet]) -> Vec<Vec<u8>> {
    packets
        .iter()
        .map(|p| {
            let mut buf = buffer(&p.keys, &p.payload);
            let n =
                seal_fast_path(&p.keys, p.direction, p.number, &mut buf, p.payload.len()).unwrap();
            buf.truncate(n);
            buf
        })
        .collect()
}

/// Seals every packet in one burst at `width`.
fn seal_together(width: Width, packets: &[Packet]) -> Vec<Vec<u8>> {
    let mut bufs: Vec<Vec<u8>> = packets.iter().map(|p| buffer(&p.keys, &p.payload)).collect();
    let mut jobs: Vec<SealJob<'_>> = packets
        .iter()
        .zip(bufs.iter_mut())
        .map(|(p, buf)| SealJob::new(&p.keys, p.direction, p.number, buf, p.payload.len()))
        .collect();
    seal_burst_with(width, &mut jobs);
    let lengths: Vec<usize> = jobs.iter().map(|job| job.result().unwrap().unwrap()).collect();
    drop(jobs);
    bufs.iter_mut().zip(lengths).for_each(|(buf, n)| buf.truncate(n));
    bufs
}

fn mixed_burst(lengths: &[usize]) -> Vec<Packet> {
    lengths
        .iter()
        .enumerate()
        .map(|(i, &len)| Packet {
            keys: session(SUITES[i % 2], (i % 3) as u8, i as u8),
            direction: if i % 4 == 3 { Direction::Reverse } else { Direction::Forward },
            number: 1 + (i as u64) * 977,
            payload: payload(len, i),
        })
        .collect()
}

#[test]
fn width_detect_is_available() {
    assert!(Width::detect().is_available());
    assert_eq!(Width::Avx512.lanes(), 8);
}

#[test]
fn seal_matches_single_packet_mixed_burst() {
    let lengths =
        [0, 1, 15, 16, 17, 64, 95, 96, 111, 112, 127, 128, 1400, 1424, 9000, 3, 256, 512, 1024];
    let packets = mixed_burst(&lengths);
    let expected = seal_each(&packets);
    for width in widths() {
        let ours = seal_together(width, &packets);
        for (i, (a, b)) in ours.iter().zip(&expected).enumerate() {
            assert_eq!(a, b, "{width:?} packet {i}, {} bytes", lengths[i]);
        }
    }
}

#[test]
fn seal_matches_single_packet_every_burst_size() {
    for width in widths() {
        for count in 1..=MAX_BURST + 3 {
            let lengths: Vec<usize> = (0..count).map(|i| (i * 53) % 1500).collect();
            let packets = mixed_burst(&lengths);
            assert_eq!(seal_together(width, &packets), seal_each(&packets), "{width:?} {count}");
        }
    }
}

#[test]
fn seal_matches_single_packet_random_keys() {
    for width in widths() {
        let packets: Vec<Packet> = (0..20)
            .map(|i| Packet {
                keys: random_session(SUITES[i % 2], i as u8),
                direction: Direction::Forward,
                number: Sequence::MAX_NUMBER - i as u64,
                payload: payload(i * 97, i),
            })
            .collect();
        assert_eq!(seal_together(width, &packets), seal_each(&packets), "{width:?}");
    }
}

#[test]
fn seal_errors_stay_with_their_job() {
    let keys = session(Suite::AesCbc256HmacSha384, 0, 1);
    let mut good = buffer(&keys, &payload(40, 0));
    let mut small = vec![0u8; 60];
    let mut zero = buffer(&keys, &payload(10, 1));
    let mut huge = buffer(&keys, &payload(10, 2));
    let mut expected_good = good.clone();
    let n = seal_fast_path(&keys, Direction::Forward, 5, &mut expected_good, 40).unwrap();
    for width in widths() {
        let mut work = good.clone();
        let mut jobs = [
            SealJob::new(&keys, Direction::Forward, 1, &mut small, 4),
            SealJob::new(&keys, Direction::Forward, 0, &mut zero, 10),
            SealJob::new(&keys, Direction::Forward, 5, &mut work, 40),
            SealJob::new(&keys, Direction::Forward, Sequence::MAX_NUMBER + 1, &mut huge, 10),
        ];
        seal_burst_with(width, &mut jobs);
        assert_eq!(
            jobs[0].result(),
            Some(Err(CryptoError::BufferTooSmall { needed: 72, available: 60 }))
        );
        assert_eq!(jobs[1].result(), Some(Err(CryptoError::SequenceZero)));
        assert_eq!(jobs[2].result(), Some(Ok(n)), "{width:?}");
        assert_eq!(jobs[3].result(), Some(Err(CryptoError::SequenceExhausted)));
        assert_eq!(&jobs[2].buf()[..n], &expected_good[..n], "{width:?}");
    }
    good.clear();
}

#[test]
fn job_result_is_none_before_burst() {
    let keys = session(Suite::AesCbc256HmacSha384, 0, 1);
    let mut buf = vec![0u8; 128];
    let job = SealJob::new(&keys, Direction::Forward, 1, &mut buf, 4);
    assert_eq!(job.result(), None);
}

/// Opens every sealed packet with the one-packet path, each against its own window.
fn open_each(packets: &[Packet], sealed: &[Vec<u8>], windows: &mut [ReplayWindow]) -> Vec<String> {
    packets
        .iter()
        .zip(sealed)
        .zip(windows.iter_mut())
        .map(|((p, s), window)| {
            let mut work = s.clone();
            match open_fast_path(&p.keys, p.direction, window, &mut work) {
                Ok(n) => format!("ok {}", hex::encode(&work[..n])),
                Err(error) => format!("err {error:?}"),
            }
        })
        .collect()
}

fn open_together(
    width: Width,
    packets: &[Packet],
    sealed: &[Vec<u8>],
    windows: &mut [ReplayWindow],
) -> Vec<String> {
    let mut work: Vec<Vec<u8>> = sealed.to_vec();
    let mut jobs: Vec<OpenJob<'_>> = packets
        .iter()
        .zip(work.iter_mut())
        .zip(windows.iter_mut())
        .map(|((p, packet), window)| OpenJob::new(&p.keys, p.direction, window, packet))
        .collect();
    open_burst_with(width, &mut jobs);
    jobs.iter()
        .map(|job| match job.result().unwrap() {
            Ok(n) => format!("ok {}", hex::encode(&job.packet()[..n])),
            Err(error) => format!("err {error:?}"),
        })
        .collect()
}

#[test]
fn open_round_trip_mixed_burst() {
    let lengths = [0, 1, 15, 16, 17, 64, 111, 112, 1424, 9000, 200, 33];
    let packets = mixed_burst(&lengths);
    let sealed = seal_each(&packets);
    for width in widths() {
        let mut windows = vec![ReplayWindow::new(); packets.len()];
        let results = open_together(width, &packets, &sealed, &mut windows);
        for (i, (result, p)) in results.iter().zip(&packets).enumerate() {
            assert_eq!(result, &format!("ok {}", hex::encode(&p.payload)), "{width:?} {i}");
        }
        let replays = open_together(width, &packets, &sealed, &mut windows);
        for (i, (result, p)) in replays.iter().zip(&packets).enumerate() {
            let expected = OpenError::Replay(ReplayError::Duplicate { number: p.number });
            assert_eq!(result, &format!("err {expected:?}"), "{width:?} replay {i}");
        }
    }
}

#[test]
fn open_matches_single_packet_on_tampering() {
    let packets = mixed_burst(&[40, 0, 130, 1424]);
    let sealed = seal_each(&packets);
    for width in widths() {
        for (which, original) in sealed.iter().enumerate() {
            for index in (0..original.len()).step_by(7).chain([original.len() - 1]) {
                let mut tampered = sealed.clone();
                tampered[which][index] ^= 0x40;
                let mut ours = vec![ReplayWindow::new(); packets.len()];
                let mut theirs = vec![ReplayWindow::new(); packets.len()];
                ours[0].record(2).unwrap();
                theirs[0].record(2).unwrap();
                let a = open_together(width, &packets, &tampered, &mut ours);
                let b = open_each(&packets, &tampered, &mut theirs);
                assert_eq!(a, b, "{width:?} packet {which} byte {index}");
                assert_eq!(ours, theirs, "{width:?} windows after packet {which} byte {index}");
                assert!(a[which].starts_with("err"), "{width:?} accepted byte {index}");
            }
        }
    }
}

#[test]
fn open_bad_tag_leaves_window() {
    let packets = mixed_burst(&[64]);
    let mut sealed = seal_each(&packets);
    let last = sealed[0].len() - 1;
    sealed[0][last] ^= 1;
    for width in widths() {
        let mut windows = vec![ReplayWindow::new()];
        let before = windows.clone();
        let results = open_together(width, &packets, &sealed, &mut windows);
        assert_eq!(results[0], format!("err {:?}", OpenError::Crypto(CryptoError::BadTag)));
        assert_eq!(windows, before, "{width:?}");
    }
}

#[test]
fn open_rejects_reflection_wrong_key_id_and_short() {
    let keys = session(Suite::AesCbc256HmacSha384, 3, 9);
    let keys4 = session(Suite::AesCbc256HmacSha384, 4, 9);
    let sealed_forward = seal_each(&[Packet {
        keys: keys.clone(),
        direction: Direction::Forward,
        number: 1,
        payload: payload(20, 0),
    }]);
    let sealed_other_id = seal_each(&[Packet {
        keys: keys4,
        direction: Direction::Forward,
        number: 1,
        payload: payload(20, 0),
    }]);
    for width in widths() {
        let mut w1 = ReplayWindow::new();
        let mut w2 = ReplayWindow::new();
        let mut w3 = ReplayWindow::new();
        let mut reflected = sealed_forward[0].clone();
        let mut other_id = sealed_other_id[0].clone();
        let mut short = vec![0u8; 30];
        let mut jobs = [
            OpenJob::new(&keys, Direction::Reverse, &mut w1, &mut reflected),
            OpenJob::new(&keys, Direction::Forward, &mut w2, &mut other_id),
            OpenJob::new(&keys, Direction::Forward, &mut w3, &mut short),
        ];
        open_burst_with(width, &mut jobs);
        let bad_tag = Some(Err(OpenError::Crypto(CryptoError::BadTag)));
        assert_eq!(jobs[0].result(), bad_tag, "{width:?} reflected");
        assert_eq!(jobs[1].result(), bad_tag, "{width:?} other key id");
        assert_eq!(
            jobs[2].result(),
            Some(Err(OpenError::Crypto(CryptoError::TooShort { len: 30, trailer: 56 }))),
            "{width:?} short"
        );
    }
}

fn reference_hmac(algorithm: MacAlgorithm, key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    match algorithm {
        MacAlgorithm::Sha384 => {
            let mut mac = hmac::Hmac::<sha2::Sha384>::new_from_slice(key).unwrap();
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        MacAlgorithm::Sha512 => {
            let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// Tags `messages` under `keys` in one burst at `width`.
fn burst_tags(width: Width, keys: &[MacKey], messages: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let jobs: Vec<MacJob<'_>> = keys
        .iter()
        .zip(messages)
        .map(|(key, message)| {
            let (inner, outer) = key.states();
            MacJob { inner, outer, tag_len: key.algorithm().tag_len(), message }
        })
        .collect();
    let mut tags = vec![[0u8; TAG_BUF_LEN]; jobs.len()];
    let mut outputs: Vec<&mut [u8]> = tags.iter_mut().map(|t| &mut t[..]).collect();
    hmac_burst(width, &jobs, &mut outputs);
    drop(outputs);
    tags.iter().zip(&jobs).map(|(tag, job)| tag[..job.tag_len].to_vec()).collect()
}

#[test]
fn hmac_burst_matches_hmac_crate_random_keys() {
    let mut seed = [0u8; 64 * 40];
    getrandom::fill(&mut seed).unwrap();
    let keys_bytes: Vec<Vec<u8>> =
        (0..40).map(|i| seed[i * 64..i * 64 + (i * 5) % 64 + 1].to_vec()).collect();
    let algorithms: Vec<MacAlgorithm> = (0..40)
        .map(|i| if i % 2 == 0 { MacAlgorithm::Sha384 } else { MacAlgorithm::Sha512 })
        .collect();
    let keys: Vec<MacKey> =
        keys_bytes.iter().zip(&algorithms).map(|(k, &a)| MacKey::new(a, k)).collect();
    let messages: Vec<Vec<u8>> = (0..40).map(|i| payload((i * 233) % 3000, i)).collect();
    for width in widths() {
        let tags = burst_tags(width, &keys, &messages);
        for i in 0..40 {
            let expected = reference_hmac(algorithms[i], &keys_bytes[i], &messages[i]);
            assert_eq!(tags[i], expected, "{width:?} message {i}");
        }
    }
}

/// Returns the head block whose encryption under `key` is `iv`, so that a lane encrypts
/// with that IV.
fn head_for_iv(key: &[u8; 32], iv: &[u8; 16]) -> [u8; 16] {
    let mut block = (*iv).into();
    ::aes::Aes256Dec::new(&(*key).into()).decrypt_block(&mut block);
    block.into()
}

fn wycheproof(name: &str) -> Value {
    let path = [env!("CARGO_MANIFEST_DIR"), "tests", "vectors", "wycheproof", name]
        .iter()
        .collect::<std::path::PathBuf>();
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn field(case: &Value, name: &str) -> Vec<u8> {
    hex::decode(case[name].as_str().unwrap()).unwrap()
}

#[test]
fn wycheproof_hmac_in_one_burst() {
    for (name, algorithm) in [
        ("hmac_sha384_test.json", MacAlgorithm::Sha384),
        ("hmac_sha512_test.json", MacAlgorithm::Sha512),
    ] {
        let file = wycheproof(name);
        let mut keys = Vec::new();
        let mut messages = Vec::new();
        let mut expected = Vec::new();
        for group in file["testGroups"].as_array().unwrap() {
            for case in group["tests"].as_array().unwrap() {
                keys.push(MacKey::new(algorithm, &field(case, "key")));
                messages.push(field(case, "msg"));
                expected.push((field(case, "tag"), case["result"].as_str().unwrap() == "valid"));
            }
        }
        assert_eq!(keys.len() as u64, file["numberOfTests"].as_u64().unwrap());
        for width in widths() {
            let tags = burst_tags(width, &keys, &messages);
            for (i, (tag, (vector, valid))) in tags.iter().zip(&expected).enumerate() {
                let prefix = &tag[..vector.len()] == vector.as_slice();
                assert_eq!(prefix, *valid, "{name} {width:?} case index {i}");
            }
        }
    }
}

#[test]
fn wycheproof_cbc_in_lockstep() {
    let file = wycheproof("aes_cbc_pkcs5_test.json");
    let group = file["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["keySize"].as_u64() == Some(256))
        .unwrap();
    let cases: Vec<&Value> = group["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"].as_str() == Some("valid"))
        .collect();
    let keys: Vec<[u8; 32]> = cases.iter().map(|c| field(c, "key").try_into().unwrap()).collect();
    assert!(cases.len() > 10);
    for path in [AesPath::AesNi, AesPath::Vaes].into_iter().filter(|p| p.is_available()) {
        let mut buffers: Vec<Vec<u8>> = cases
            .iter()
            .map(|c| {
                let mut msg = field(c, "msg");
                let pad = 16 - msg.len() % 16;
                msg.resize(msg.len() + pad, pad as u8);
                msg
            })
            .collect();
        let mut lanes: Vec<CbcLane<'_>> = buffers
            .iter_mut()
            .zip(&keys)
            .zip(&cases)
            .map(|((buf, key), case)| CbcLane {
                key,
                head: head_for_iv(key, &field(case, "iv").try_into().unwrap()),
                blocks: buf.as_chunks_mut::<16>().0,
                chain: [0; 16],
            })
            .collect();
        assert!(cbc_encrypt_lanes_with(path, &mut lanes));
        drop(lanes);
        for (buf, case) in buffers.iter().zip(&cases) {
            assert_eq!(buf, &field(case, "ct"), "{path:?} case {}", case["tcId"]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn burst_equals_single_packet(
        lengths in proptest::collection::vec(0usize..=9000, 1..=20),
        suites in proptest::collection::vec(0usize..2, 20),
        seeds in proptest::collection::vec(any::<u8>(), 20),
        numbers in proptest::collection::vec(1u64..=Sequence::MAX_NUMBER, 20),
    ) {
        let packets: Vec<Packet> = lengths
            .iter()
            .enumerate()
            .map(|(i, &len)| Packet {
                keys: session(SUITES[suites[i]], seeds[i], seeds[i] ^ 0x5a),
                direction: if seeds[i] % 2 == 0 { Direction::Forward } else { Direction::Reverse },
                number: numbers[i],
                payload: payload(len, usize::from(seeds[i])),
            })
            .collect();
        let expected = seal_each(&packets);
        for width in widths() {
            let ours = seal_together(width, &packets);
            prop_assert_eq!(&ours, &expected, "{:?}", width);
            let mut windows = vec![ReplayWindow::new(); packets.len()];
            let opened = open_together(width, &packets, &ours, &mut windows);
            for (result, p) in opened.iter().zip(&packets) {
                prop_assert_eq!(result, &format!("ok {}", hex::encode(&p.payload)));
            }
        }
    }
}
