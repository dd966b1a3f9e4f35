//! Signature algorithm identifiers and the signature checks behind them, including RSASSA-PSS
//! parameters that rcgen cannot write into a certificate.
#![allow(clippy::unwrap_used, reason = "test")]

use rsa::pkcs8::EncodePublicKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use svr_control::pki::{HashAlg, PublicKey, SignatureAlg};
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

/// RSASSA-PSS AlgorithmIdentifier with SHA-256, MGF1-SHA-256 and a 32-byte salt.
const PSS_SHA256: &[u8] = &[
    0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34, 0xa0,
    0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
    0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30,
    0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03,
    0x02, 0x01, 0x20,
];

fn algorithm(der: &[u8]) -> Result<SignatureAlg, String> {
    let (_, id) = AlgorithmIdentifier::from_der(der).unwrap();
    SignatureAlg::from_identifier(&id)
}

#[test]
fn pss_parameters_parsed() {
    assert_eq!(
        algorithm(PSS_SHA256),
        Ok(SignatureAlg::RsaPss { hash: HashAlg::Sha256, salt_len: 32 })
    );
}

#[test]
fn pss_default_sha1_rejected() {
    // RSASSA-PSS with empty parameters means SHA-1 and MGF1-SHA-1 (RFC 4055 defaults).
    let der =
        [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x00];
    let err = algorithm(&der).unwrap_err();
    assert!(err.contains("sha1"), "{err}");
}

#[test]
fn pss_mismatched_mgf_hash_rejected() {
    let mut der = PSS_SHA256.to_vec();
    // The MGF1 hash OID ends at byte 59: make it SHA-384 while the message hash stays SHA-256.
    assert_eq!(der[59], 0x01);
    der[59] = 0x02;
    let err = algorithm(&der).unwrap_err();
    assert!(err.contains("mask generation"), "{err}");
}

#[test]
fn pss_signature_verifies() {
    let key = rsa::RsaPrivateKey::new(&mut rand_core_06::OsRng, 2048).unwrap();
    let spki_der = rsa::RsaPublicKey::from(&key).to_public_key_der().unwrap();
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der.as_bytes()).unwrap();
    let public = PublicKey::from_spki(&spki).unwrap();
    let alg = algorithm(PSS_SHA256).unwrap();

    let signer = rsa::pss::SigningKey::<sha2_010::Sha256>::new(key);
    let sig = signer.sign_with_rng(&mut rand_core_06::OsRng, b"tbs").to_vec();
    assert!(public.verify_with(alg, b"tbs", &sig));
    assert!(!public.verify_with(alg, b"tbt", &sig));
    assert!(!public.verify_with(SignatureAlg::RsaPkcs1(HashAlg::Sha256), b"tbs", &sig));
}

#[test]
fn ecdsa_identifiers_parsed() {
    let sha384 = [0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    assert_eq!(algorithm(&sha384), Ok(SignatureAlg::Ecdsa(HashAlg::Sha384)));
    let sha1 = [0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
    assert!(algorithm(&sha1).unwrap_err().contains("ecdsa-with-SHA1"));
}
