//! Wycheproof vectors for HMAC-SHA-384, HMAC-SHA-512 and AES-CBC with PKCS#7, run in full.

use std::path::PathBuf;

use aes::cipher::KeyInit;
use serde::Deserialize;

use super::aes_cbc::{decrypt_padded_with, encrypt_padded_with};
use super::{CryptoError, MacAlgorithm, MacKey};

#[derive(Deserialize)]
struct File<G> {
    #[serde(rename = "numberOfTests")]
    number_of_tests: usize,
    #[serde(rename = "testGroups")]
    groups: Vec<G>,
}

#[derive(Deserialize)]
struct MacGroup {
    #[serde(rename = "tagSize")]
    tag_bits: usize,
    tests: Vec<MacCase>,
}

#[derive(Deserialize)]
struct MacCase {
    #[serde(rename = "tcId")]
    id: u32,
    key: String,
    msg: String,
    tag: String,
    result: String,
}

#[derive(Deserialize)]
struct CbcGroup {
    #[serde(rename = "keySize")]
    key_bits: usize,
    tests: Vec<CbcCase>,
}

#[derive(Deserialize)]
struct CbcCase {
    #[serde(rename = "tcId")]
    id: u32,
    key: String,
    iv: String,
    msg: String,
    ct: String,
    result: String,
}

fn load<G: for<'de> Deserialize<'de>>(name: &str) -> File<G> {
    let path: PathBuf =
        [env!("CARGO_MANIFEST_DIR"), "tests", "vectors", "wycheproof", name].iter().collect();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap()
}

fn run_mac(name: &str, algorithm: MacAlgorithm) {
    let file: File<MacGroup> = load(name);
    let mut ran = 0;
    for group in &file.groups {
        let full = group.tag_bits == algorithm.tag_len() * 8;
        for case in &group.tests {
            let mac = MacKey::new(algorithm, &unhex(&case.key));
            let message = unhex(&case.msg);
            let tag = unhex(&case.tag);
            let ours = mac.tag(&message);
            let prefix_matches = ours.as_bytes()[..tag.len()] == tag[..];
            match (case.result.as_str(), full) {
                ("valid", true) => {
                    assert!(mac.verify(&message, &tag), "{name} case {} rejected", case.id);
                }
                ("valid", false) => {
                    // The vector is right about the truncated tag, but svrd's verifier only
                    // takes full-length tags, so it must reject it.
                    assert!(prefix_matches, "{name} case {} truncated tag differs", case.id);
                    assert!(
                        !mac.verify(&message, &tag),
                        "{name} case {} truncated accepted",
                        case.id
                    );
                }
                ("invalid", _) => {
                    assert!(!mac.verify(&message, &tag), "{name} case {} accepted", case.id);
                }
                (other, _) => panic!("{name} case {}: unknown result {other}", case.id),
            }
            ran += 1;
        }
    }
    assert_eq!(ran, file.number_of_tests);
}

#[test]
fn wycheproof_hmac_sha384() {
    run_mac("hmac_sha384_test.json", MacAlgorithm::Sha384);
}

#[test]
fn wycheproof_hmac_sha512() {
    run_mac("hmac_sha512_test.json", MacAlgorithm::Sha512);
}

fn cbc_case<C>(cipher: C, case: &CbcCase) -> Result<(), String>
where
    C: aes::cipher::BlockCipherEncrypt<BlockSize = aes::cipher::consts::U16>
        + aes::cipher::BlockCipherDecrypt<BlockSize = aes::cipher::consts::U16>,
{
    let iv: [u8; 16] = unhex(&case.iv).try_into().map_err(|_| "iv length".to_string())?;
    let message = unhex(&case.msg);
    let ciphertext = unhex(&case.ct);

    let mut decrypted = ciphertext.clone();
    let opened = decrypt_padded_with(&cipher, &iv, &mut decrypted);
    if case.result == "invalid" {
        return match opened {
            Err(CryptoError::BadPadding) | Err(CryptoError::CiphertextLength { .. }) => Ok(()),
            other => Err(format!("invalid ciphertext gave {other:?}")),
        };
    }
    let len = opened.map_err(|e| format!("valid ciphertext rejected: {e}"))?;
    if decrypted[..len] != message[..] {
        return Err("decryption differs".into());
    }

    let mut encrypted = message.clone();
    encrypted.resize(message.len() + 16, 0);
    let len = encrypt_padded_with(&cipher, &iv, &mut encrypted, message.len())
        .map_err(|e| format!("encrypt failed: {e}"))?;
    if encrypted[..len] != ciphertext[..] {
        return Err("encryption differs".into());
    }
    Ok(())
}

#[test]
fn wycheproof_aes_cbc_pkcs5() {
    let file: File<CbcGroup> = load("aes_cbc_pkcs5_test.json");
    let mut ran = 0;
    for group in &file.groups {
        for case in &group.tests {
            let key = unhex(&case.key);
            let outcome = match group.key_bits {
                128 => cbc_case(aes::Aes128::new_from_slice(&key).unwrap(), case),
                192 => cbc_case(aes::Aes192::new_from_slice(&key).unwrap(), case),
                256 => cbc_case(aes::Aes256::new_from_slice(&key).unwrap(), case),
                other => panic!("unexpected key size {other}"),
            };
            if let Err(message) = outcome {
                panic!("aes-cbc case {} ({} bits): {message}", case.id, group.key_bits);
            }
            ran += 1;
        }
    }
    assert_eq!(ran, file.number_of_tests);
}

#[test]
fn wycheproof_aes256_through_cbc_key() {
    // The 256-bit cases again, through the type the packet path uses.
    let file: File<CbcGroup> = load("aes_cbc_pkcs5_test.json");
    let group = file.groups.iter().find(|g| g.key_bits == 256).unwrap();
    for case in group.tests.iter().filter(|c| c.result == "valid") {
        let key: [u8; 32] = unhex(&case.key).try_into().unwrap();
        let iv: [u8; 16] = unhex(&case.iv).try_into().unwrap();
        let mut buf = unhex(&case.ct);
        let len = super::CbcKey::new(&key).decrypt_padded(&iv, &mut buf).unwrap();
        assert_eq!(buf[..len], unhex(&case.msg)[..], "case {}", case.id);
    }
}
