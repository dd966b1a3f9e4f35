//! ML-KEM wrapper tests: Wycheproof decapsulation vectors (Apache-2.0, see
//! `vectors/LICENSE`), encapsulation-key checks and round trips.

// Test helpers outside #[test] functions unwrap too; a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use svr_control::kex::error::MlKemError;
use svr_control::kex::mlkem::{self, MlKemKeyPair, MlKemLevel};

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn hex_field(test: &Value, key: &str) -> Vec<u8> {
    hex::decode(test[key].as_str().unwrap_or("")).unwrap()
}

struct Tally {
    valid: usize,
    invalid: usize,
}

/// Runs one Wycheproof file: the key pair is rebuilt from the seed, its encapsulation key
/// must equal `ek`, and decapsulating `c` must give `K`. Invalid cases (wrong seed or
/// ciphertext length) must be rejected by the wrapper.
fn run_file(name: &str, level: MlKemLevel) -> Tally {
    let file = load(name);
    let mut tally = Tally { valid: 0, invalid: 0 };
    for group in file["testGroups"].as_array().unwrap() {
        for test in group["tests"].as_array().unwrap() {
            let id = test["tcId"].as_u64().unwrap();
            let seed = hex_field(test, "seed");
            let ct = hex_field(test, "c");
            let valid = test["result"].as_str() == Some("valid");

            let pair = MlKemKeyPair::from_seed(level, &seed);
            if !valid {
                let rejected = match pair {
                    Err(MlKemError::SeedLength { actual }) => actual == seed.len(),
                    Err(_) => false,
                    Ok(pair) => matches!(
                        pair.decapsulate(&ct),
                        Err(MlKemError::CiphertextLength { actual, .. }) if actual == ct.len()
                    ),
                };
                assert!(rejected, "{name} tcId {id}: invalid case accepted");
                tally.invalid += 1;
                continue;
            }

            let pair = pair.unwrap_or_else(|e| panic!("{name} tcId {id}: {e}"));
            assert_eq!(pair.encapsulation_key(), hex_field(test, "ek"), "{name} tcId {id}: ek");
            assert_eq!(pair.seed().as_slice(), seed.as_slice());
            mlkem::check_encapsulation_key(level, pair.encapsulation_key()).unwrap();
            let secret = pair.decapsulate(&ct).unwrap();
            assert_eq!(secret.as_bytes().as_slice(), hex_field(test, "K"), "{name} tcId {id}: K");
            tally.valid += 1;
        }
    }
    tally
}

#[test]
fn wycheproof_mlkem512() {
    let t = run_file("mlkem_512_test.json", MlKemLevel::MlKem512);
    assert_eq!((t.valid, t.invalid), (153, 40));
}

#[test]
fn wycheproof_mlkem768() {
    let t = run_file("mlkem_768_test.json", MlKemLevel::MlKem768);
    assert_eq!((t.valid, t.invalid), (153, 40));
}

#[test]
fn wycheproof_mlkem1024() {
    let t = run_file("mlkem_1024_test.json", MlKemLevel::MlKem1024);
    assert_eq!((t.valid, t.invalid), (153, 40));
}

/// The files give no encapsulation randomness, so encapsulation is checked by a round
/// trip through the deterministic API against the vectors' decapsulation keys.
#[test]
fn wycheproof_keys_encapsulate_round_trip() {
    for (name, level) in [
        ("mlkem_512_test.json", MlKemLevel::MlKem512),
        ("mlkem_768_test.json", MlKemLevel::MlKem768),
        ("mlkem_1024_test.json", MlKemLevel::MlKem1024),
    ] {
        let file = load(name);
        let test = &file["testGroups"][1]["tests"][0];
        let pair = MlKemKeyPair::from_seed(level, &hex_field(test, "seed")).unwrap();
        let m = [0x5au8; 32];
        let (ct, sent) =
            mlkem::encapsulate_deterministic(level, pair.encapsulation_key(), &m).unwrap();
        assert_eq!(ct.len(), level.ciphertext_len());
        let (ct2, sent2) =
            mlkem::encapsulate_deterministic(level, pair.encapsulation_key(), &m).unwrap();
        assert_eq!(ct, ct2, "{level}: deterministic encapsulation");
        assert_eq!(sent.as_bytes(), sent2.as_bytes());
        assert_eq!(pair.decapsulate(&ct).unwrap().as_bytes(), sent.as_bytes());
    }
}

fn key_pair(level: MlKemLevel) -> MlKemKeyPair {
    MlKemKeyPair::from_seed(level, &[7u8; 64]).unwrap()
}

#[test]
fn ek_length_rejected() {
    for level in MlKemLevel::ALL {
        let ek = key_pair(level).encapsulation_key().to_vec();
        for len in [0, ek.len() - 1, ek.len() + 1] {
            let mut bad = ek.clone();
            bad.resize(len, 0);
            assert_eq!(
                mlkem::check_encapsulation_key(level, &bad),
                Err(MlKemError::EncapsulationKeyLength {
                    level,
                    expected: level.encapsulation_key_len(),
                    actual: len
                })
            );
        }
    }
}

/// Sets coefficient `index` of the encoded t vector to `value` (12-bit little-endian
/// packing, two coefficients per three bytes).
fn set_coefficient(ek: &mut [u8], index: usize, value: u16) {
    let base = (index / 2) * 3;
    if index.is_multiple_of(2) {
        ek[base] = (value & 0xff) as u8;
        ek[base + 1] = (ek[base + 1] & 0xf0) | ((value >> 8) as u8 & 0x0f);
    } else {
        ek[base + 1] = (ek[base + 1] & 0x0f) | (((value & 0x0f) as u8) << 4);
        ek[base + 2] = (value >> 4) as u8;
    }
}

#[test]
fn ek_modulus_rejected() {
    for level in MlKemLevel::ALL {
        let ek = key_pair(level).encapsulation_key().to_vec();
        for (index, value) in [(0, 3329u16), (1, 3329), (5, 4095), (255, 3330)] {
            let mut bad = ek.clone();
            set_coefficient(&mut bad, index, value);
            assert_eq!(
                mlkem::check_encapsulation_key(level, &bad),
                Err(MlKemError::EncapsulationKeyModulus { level }),
                "{level}: coefficient {index} = {value}"
            );
            assert!(matches!(
                mlkem::encapsulate_deterministic(level, &bad, &[0; 32]),
                Err(MlKemError::EncapsulationKeyModulus { .. })
            ));
        }
        // The largest valid coefficient, q - 1, passes.
        let mut edge = ek.clone();
        set_coefficient(&mut edge, 0, 3328);
        assert_eq!(mlkem::check_encapsulation_key(level, &edge), Ok(()));
    }
}

#[test]
fn ciphertext_length_rejected() {
    for level in MlKemLevel::ALL {
        let pair = key_pair(level);
        let len = level.ciphertext_len();
        for bad in [0, len - 1, len + 1] {
            assert_eq!(
                pair.decapsulate(&vec![0u8; bad]).err(),
                Some(MlKemError::CiphertextLength { level, expected: len, actual: bad })
            );
        }
    }
}

#[test]
fn tampered_ciphertext_implicit_rejection() {
    for level in MlKemLevel::ALL {
        let pair = key_pair(level);
        let (mut ct, secret) =
            mlkem::encapsulate_deterministic(level, pair.encapsulation_key(), &[1; 32]).unwrap();
        ct[10] ^= 1;
        // A tampered ciphertext of the right length yields a secret, just a different one.
        let other = pair.decapsulate(&ct).unwrap();
        assert_ne!(other.as_bytes(), secret.as_bytes());
        assert_eq!(pair.decapsulate(&ct).unwrap().as_bytes(), other.as_bytes());
    }
}

#[test]
fn seed_length_rejected() {
    assert_eq!(
        MlKemKeyPair::from_seed(MlKemLevel::MlKem768, &[0u8; 63]).err(),
        Some(MlKemError::SeedLength { actual: 63 })
    );
}

#[test]
fn level_sizes_match_fips203() {
    for level in MlKemLevel::ALL {
        let pair = key_pair(level);
        assert_eq!(pair.encapsulation_key().len(), level.encapsulation_key_len());
        assert_eq!(MlKemLevel::from_size(level.size()), Some(level));
    }
    assert_eq!(MlKemLevel::from_size(256), None);
}
