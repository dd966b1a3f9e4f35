//! Own identity: generation on first start, reuse across restarts, key file protection,
//! installed certificates, and signatures that peers verify.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod pki_support;

use std::os::unix::fs::PermissionsExt;

use pki_support::*;
use svr_control::pki::identity::{
    GENERATED_CERTIFICATE, GENERATED_KEY, KeyProtection, load_secret, store_secret,
};
use svr_control::pki::{
    IdentityConfig, IdentityError, IdentityOrigin, OwnIdentity, RevocationSet, TrustStore,
    ValidationError, validate_peer,
};

#[test]
fn generated_identity_reused_across_loads() {
    let dir = TempDir::new("ident");
    let config = IdentityConfig::generated("r1", dir.path());
    let first = OwnIdentity::load(&config, system_time(NOW)).unwrap();
    let second = OwnIdentity::load(&config, system_time(NOW + DAY)).unwrap();
    assert_eq!(first.certificate_der(), second.certificate_der());
    assert_eq!(first.fingerprint(), second.fingerprint());
    assert_eq!(first.origin(), IdentityOrigin::Generated);
    assert!(first.is_self_signed());
    assert_eq!(first.common_name(), "r1");
    assert_eq!(first.public_key().describe(), "ECDSA P-256");

    // Signatures from the reloaded key verify under the first load's certificate.
    let peer = validate_peer(
        first.chain(),
        "r1",
        system_time(NOW),
        &TrustStore::new(),
        &RevocationSet::new(),
    )
    .unwrap();
    assert!(peer.verify(b"hello", &second.sign(b"hello").unwrap()).is_ok());
}

#[test]
fn generated_key_file_mode_0600() {
    let dir = TempDir::new("ident");
    OwnIdentity::load(&IdentityConfig::generated("r1", dir.path()), system_time(NOW)).unwrap();
    let key = std::fs::metadata(dir.path().join(GENERATED_KEY)).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(dir.path().join(GENERATED_KEY)).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(dir.path().join(GENERATED_CERTIFICATE).exists());
}

#[test]
fn generated_certificate_has_name_and_uri() {
    let dir = TempDir::new("ident");
    let id =
        OwnIdentity::load(&IdentityConfig::generated("rtr-east", dir.path()), system_time(NOW))
            .unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(id.certificate_der()).unwrap();
    let cn: Vec<_> =
        cert.subject().iter_common_name().map(|a| a.as_str().unwrap().to_owned()).collect();
    assert_eq!(cn, ["rtr-east"]);
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let uris: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => Some(u.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(uris, ["urn:ssr:peering:rtr-east"]);
    assert!(!cert.is_ca());
    let (from, until) = id.validity();
    assert!(from <= NOW);
    assert!(until > NOW + 365 * DAY);
}

#[test]
fn generated_identity_replaced_on_name_change() {
    let dir = TempDir::new("ident");
    let a =
        OwnIdentity::load(&IdentityConfig::generated("r1", dir.path()), system_time(NOW)).unwrap();
    let b =
        OwnIdentity::load(&IdentityConfig::generated("r9", dir.path()), system_time(NOW)).unwrap();
    assert_ne!(a.certificate_der(), b.certificate_der());
    assert_eq!(b.common_name(), "r9");
}

#[test]
fn generated_identity_replaced_when_expired() {
    let dir = TempDir::new("ident");
    let mut config = IdentityConfig::generated("r1", dir.path());
    config.self_signed_validity = std::time::Duration::from_secs(DAY as u64);
    let a = OwnIdentity::load(&config, system_time(NOW)).unwrap();
    let b = OwnIdentity::load(&config, system_time(NOW + 2 * DAY)).unwrap();
    assert_ne!(a.certificate_der(), b.certificate_der());
}

#[test]
fn installed_pem_identity_loads() {
    let dir = TempDir::new("ident");
    let ca = self_signed(ca_params("ca"), Key::p384());
    let ee = issue(ee_params("r1", 3), Key::p384(), &ca);
    let cert_path = dir.path().join("r1.pem");
    let key_path = dir.path().join("r1.key");
    std::fs::write(&cert_path, format!("{}{}", ee.pem(), ca.pem())).unwrap();
    std::fs::write(&key_path, pem_encode("PRIVATE KEY", &ee.key.pkcs8())).unwrap();

    let mut config = IdentityConfig::generated("r1", dir.path());
    config.certificate = Some(cert_path);
    config.private_key = Some(key_path);
    let id = OwnIdentity::load(&config, system_time(NOW)).unwrap();
    assert_eq!(id.origin(), IdentityOrigin::Installed);
    assert_eq!(id.chain().len(), 2);
    assert!(!id.is_self_signed());
    assert!(!dir.path().join(GENERATED_CERTIFICATE).exists());

    let trust = trust(&[&ca]);
    let peer =
        validate_peer(id.chain(), "r1", system_time(NOW), &trust, &RevocationSet::new()).unwrap();
    assert!(peer.verify(b"m", &id.sign(b"m").unwrap()).is_ok());
}

#[test]
fn installed_der_identity_loads() {
    let ca = root("ca");
    let ee = issue(ee_params("r1", 3), Key::p256(), &ca);
    let id = OwnIdentity::from_bytes(&ee.der, &ee.key.pkcs8(), IdentityOrigin::Installed).unwrap();
    assert_eq!(id.certificate_der(), ee.der.as_slice());
}

#[test]
fn rsa_identity_signs_pkcs1() {
    let ca = root("ca");
    let ee = issue(ee_params("r1", 3), Key::rsa(2048), &ca);
    let id = OwnIdentity::from_bytes(&ee.der, &ee.key.pkcs8(), IdentityOrigin::Installed).unwrap();
    let peer =
        validate_peer(id.chain(), "r1", system_time(NOW), &trust(&[&ca]), &RevocationSet::new())
            .unwrap();
    let sig = id.sign(b"m").unwrap();
    assert_eq!(sig.len(), 256);
    assert!(peer.verify(b"m", &sig).is_ok());
    assert!(peer.verify(b"n", &sig).is_err());
}

#[test]
fn key_mismatch_rejected() {
    let ca = root("ca");
    let ee = issue(ee_params("r1", 3), Key::p256(), &ca);
    let other = Key::p256();
    let err =
        OwnIdentity::from_bytes(&ee.der, &other.pkcs8(), IdentityOrigin::Installed).unwrap_err();
    assert!(matches!(err, IdentityError::KeyMismatch { .. }), "{err}");
}

#[test]
fn garbage_key_rejected() {
    let ca = root("ca");
    let ee = issue(ee_params("r1", 3), Key::p256(), &ca);
    let err =
        OwnIdentity::from_bytes(&ee.der, b"not a key", IdentityOrigin::Installed).unwrap_err();
    assert!(matches!(err, IdentityError::PrivateKey { .. }), "{err}");
}

#[test]
fn certificate_without_key_rejected() {
    let dir = TempDir::new("ident");
    let mut config = IdentityConfig::generated("r1", dir.path());
    config.certificate = Some(dir.path().join("x.pem"));
    let err = OwnIdentity::load(&config, system_time(NOW)).unwrap_err();
    assert!(matches!(err, IdentityError::Incomplete { .. }), "{err}");
}

#[test]
fn missing_installed_file_reports_path() {
    let dir = TempDir::new("ident");
    let mut config = IdentityConfig::generated("r1", dir.path());
    config.certificate = Some(dir.path().join("absent.pem"));
    config.private_key = Some(dir.path().join("absent.key"));
    let err = OwnIdentity::load(&config, system_time(NOW)).unwrap_err();
    assert!(err.to_string().contains("absent.pem"), "{err}");
}

#[test]
fn own_revocation_detected() {
    let ca = root("ca");
    let ee = issue(ee_params("r1", 44), Key::p256(), &ca);
    let t = trust(&[&ca]);
    let mut crls = RevocationSet::new();
    crls.insert(svr_control::pki::RevocationList::parse("c", &ca.crl(&[44])).unwrap(), &t).unwrap();
    let err = crls.check_own(&ee.der, &t).unwrap_err();
    assert!(matches!(err, ValidationError::Revoked { .. }), "{err}");
    let fine = issue(ee_params("r1", 45), Key::p256(), &ca);
    assert!(crls.check_own(&fine.der, &t).is_ok());
}

#[test]
fn file_secret_round_trip_mode_0600() {
    let dir = TempDir::new("secret");
    let path = dir.path().join("mlkem.key");
    let secret: Vec<u8> = (0..2400u32).map(|i| i as u8).collect();
    store_secret(&path, &secret, &KeyProtection::File).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(load_secret(&path, &KeyProtection::File).unwrap().as_slice(), secret.as_slice());
}

#[test]
fn trust_store_from_pem_files() {
    let dir = TempDir::new("trust");
    let a = root("a");
    let b = root("b");
    let pa = dir.path().join("a.pem");
    let pb = dir.path().join("b.pem");
    std::fs::write(&pa, a.pem()).unwrap();
    std::fs::write(&pb, b.pem()).unwrap();
    let store = TrustStore::from_pem_files(&[pa, pb.clone()]).unwrap();
    assert_eq!(store.len(), 2);

    std::fs::write(&pb, "garbage").unwrap();
    let err = TrustStore::from_pem_files(&[pb]).unwrap_err();
    assert!(matches!(err, IdentityError::Certificate { .. }), "{err}");
    let err = TrustStore::from_pem_files(&[dir.path().join("none.pem")]).unwrap_err();
    assert!(matches!(err, IdentityError::Io { .. }), "{err}");
}

#[test]
fn empty_certificate_says_so() {
    let key = Key::p256();
    let err = OwnIdentity::from_bytes(b"", &key.pkcs8(), IdentityOrigin::Installed).unwrap_err();
    assert!(matches!(err, IdentityError::Certificate { .. }), "{err}");
    assert!(err.to_string().ends_with(": empty file"), "{err}");
}

#[test]
fn garbage_certificate_says_so() {
    let key = Key::p256();
    let err =
        OwnIdentity::from_bytes(b"garbage\n", &key.pkcs8(), IdentityOrigin::Installed).unwrap_err();
    assert!(err.to_string().ends_with(": not a DER or PEM certificate"), "{err}");
}

#[test]
fn empty_key_says_so() {
    let ca = root("ca");
    let ee = issue(ee_params("r1", 3), Key::p256(), &ca);
    let err = OwnIdentity::from_bytes(&ee.der, b"\n", IdentityOrigin::Installed).unwrap_err();
    assert!(matches!(err, IdentityError::PrivateKey { .. }), "{err}");
    assert!(err.to_string().ends_with(": empty file"), "{err}");
}

#[test]
fn encrypted_key_says_so() {
    let ca = root("ca");
    let ee = issue(ee_params("r1", 3), Key::p256(), &ca);
    let pem = pem_encode("ENCRYPTED PRIVATE KEY", &[0x30, 0x00]);
    let err =
        OwnIdentity::from_bytes(&ee.der, pem.as_bytes(), IdentityOrigin::Installed).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("encrypted private keys are not supported; decrypt it with openssl pkey"),
        "{err}"
    );
}
