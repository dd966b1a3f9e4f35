//! Peer chain validation: one test per rejection rule, and good chains for each key type.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod pki_support;

use pki_support::*;
use rcgen::{BasicConstraints, CustomExtension, IsCa, KeyUsagePurpose};
use svr_control::pki::{
    IdentityOrigin, OwnIdentity, RevocationList, RevocationSet, TrustStore, ValidationCache,
    ValidationError, validate_peer_at,
};

fn check(chain: &[&Cert], name: &str, now: i64, trust: &TrustStore) -> Result<(), ValidationError> {
    let ders: Vec<Vec<u8>> = chain.iter().map(|c| c.der.clone()).collect();
    validate_peer_at(&ders, name, now, trust, &RevocationSet::new()).map(|_| ())
}

fn identity(cert: &Cert) -> OwnIdentity {
    OwnIdentity::from_bytes(&cert.der, &cert.key.pkcs8(), IdentityOrigin::Installed).unwrap()
}

/// Validates `ee` under `ca` and checks a message signed by the peer's key verifies, and
/// that a changed message or signature does not.
fn assert_chain_and_signatures(ca: &Cert, ee: &Cert, key_type: &str) {
    let trust = trust(&[ca]);
    let peer =
        validate_peer_at(std::slice::from_ref(&ee.der), "r2", NOW, &trust, &RevocationSet::new())
            .unwrap();
    assert_eq!(peer.name(), "r2");
    assert_eq!(peer.public_key().describe(), key_type);
    assert!(!peer.is_self_signed());

    let signer = identity(ee);
    let message = b"peer key message";
    let sig = signer.sign(message).unwrap();
    assert!(peer.verify(message, &sig).is_ok());
    assert!(peer.verify(b"peer key messagf", &sig).is_err());
    let mut bad = sig.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(peer.verify(message, &bad).is_err());
}

#[test]
fn p256_chain_valid() {
    let ca = root("ca");
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    assert_chain_and_signatures(&ca, &ee, "ECDSA P-256");
}

#[test]
fn p384_chain_valid() {
    let ca = self_signed(ca_params("ca"), Key::p384());
    let ee = issue(ee_params("r2", 2), Key::p384(), &ca);
    assert_chain_and_signatures(&ca, &ee, "ECDSA P-384");
}

#[test]
fn p521_chain_valid() {
    let ca = self_signed(ca_params("ca"), Key::p521());
    let ee = issue(ee_params("r2", 2), Key::p521(), &ca);
    assert_chain_and_signatures(&ca, &ee, "ECDSA P-521");
}

#[test]
fn rsa_chain_valid() {
    let ca = self_signed(ca_params("ca"), Key::rsa(2048));
    let ee = issue(ee_params("r2", 2), Key::rsa(2048), &ca);
    assert_chain_and_signatures(&ca, &ee, "RSA 2048");
}

#[test]
fn mixed_p384_ca_p256_peer_valid() {
    let ca = self_signed(ca_params("ca"), Key::p384());
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    assert_chain_and_signatures(&ca, &ee, "ECDSA P-256");
}

#[test]
fn intermediate_chain_valid_any_order() {
    let root = root("root");
    let inter1 = issue(ca_params("inter1"), Key::p256(), &root);
    let inter2 = issue(ca_params("inter2"), Key::p384(), &inter1);
    let ee = issue(ee_params("r2", 2), Key::p256(), &inter2);
    let t = trust(&[&root]);
    assert_eq!(check(&[&ee, &inter2, &inter1], "r2", NOW, &t), Ok(()));
    assert_eq!(check(&[&ee, &inter1, &inter2], "r2", NOW, &t), Ok(()));
}

#[test]
fn intermediate_missing_untrusted() {
    let root = root("root");
    let inter = issue(ca_params("inter"), Key::p256(), &root);
    let ee = issue(ee_params("r2", 2), Key::p256(), &inter);
    let err = check(&[&ee], "r2", NOW, &trust(&[&root])).unwrap_err();
    assert!(matches!(err, ValidationError::Untrusted { .. }), "{err}");
}

#[test]
fn other_ca_untrusted() {
    let ca = root("ca");
    let other = root("other");
    let ee = issue(ee_params("r2", 2), Key::p256(), &other);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(matches!(err, ValidationError::Untrusted { .. }), "{err}");
    assert!(err.to_string().contains("other"), "{err}");
}

#[test]
fn expired_rejected() {
    let ca = root("ca");
    let mut p = ee_params("r2", 2);
    p.not_after = at(NOW - 1);
    let ee = issue(p, Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert_eq!(err.reason(), "expired");
    assert!(matches!(err, ValidationError::Expired { not_after, .. } if not_after == NOW - 1));
    assert!(err.to_string().contains("expired at 2027-01-15 07:59:59 UTC"), "{err}");
}

#[test]
fn not_yet_valid_rejected() {
    let ca = root("ca");
    let mut p = ee_params("r2", 2);
    p.not_before = at(NOW + DAY);
    let ee = issue(p, Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(
        matches!(err, ValidationError::NotYetValid { not_before, .. } if not_before == NOW + DAY)
    );
    assert!(err.to_string().contains("not yet valid until 2027-01-16 08:00:00 UTC"), "{err}");
}

#[test]
fn validity_boundaries_inclusive_at_exact_second() {
    let ca = root("ca");
    let mut p = ee_params("r2", 2);
    p.not_before = at(NOW);
    p.not_after = at(NOW + 100);
    let ee = issue(p, Key::p256(), &ca);
    let t = trust(&[&ca]);
    assert!(matches!(check(&[&ee], "r2", NOW - 1, &t), Err(ValidationError::NotYetValid { .. })));
    assert_eq!(check(&[&ee], "r2", NOW, &t), Ok(()));
    assert_eq!(check(&[&ee], "r2", NOW + 100, &t), Ok(()));
    assert!(matches!(check(&[&ee], "r2", NOW + 101, &t), Err(ValidationError::Expired { .. })));
}

#[test]
fn expired_ca_rejected() {
    let mut p = ca_params("ca");
    p.not_after = at(NOW - 10);
    let ca = self_signed(p, Key::p256());
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(
        matches!(err, ValidationError::Expired { ref subject, .. } if subject.contains("CN=ca")),
        "{err}"
    );
}

#[test]
fn issuer_without_ca_flag_rejected() {
    let mut p = ca_params("ca");
    p.is_ca = IsCa::NoCa;
    let ca = self_signed(p, Key::p256());
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(matches!(err, ValidationError::IssuerNotCa { .. }), "{err}");
}

#[test]
fn issuer_ca_false_rejected() {
    let mut p = ca_params("ca");
    p.is_ca = IsCa::ExplicitNoCa;
    let ca = self_signed(p, Key::p256());
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(matches!(err, ValidationError::IssuerNotCa { .. }), "{err}");
}

#[test]
fn basic_constraints_not_critical_rejected() {
    let mut p = ca_params("ca");
    p.is_ca = IsCa::NoCa;
    // basicConstraints ::= SEQUENCE { cA BOOLEAN TRUE }, not marked critical.
    p.custom_extensions = vec![CustomExtension::from_oid_content(
        &[2, 5, 29, 19],
        vec![0x30, 0x03, 0x01, 0x01, 0xff],
    )];
    let ca = self_signed(p, Key::p256());
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(matches!(err, ValidationError::BasicConstraintsNotCritical { .. }), "{err}");
}

#[test]
fn end_entity_ca_rejected() {
    let ca = root("ca");
    let mut p = ca_params("r2");
    p.key_usages.push(KeyUsagePurpose::DigitalSignature);
    let ee = issue(p, Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(matches!(err, ValidationError::EndEntityIsCa { .. }), "{err}");
}

#[test]
fn path_length_exceeded_rejected() {
    let mut p = ca_params("root");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let root = self_signed(p, Key::p256());
    let inter = issue(ca_params("inter"), Key::p256(), &root);
    let ee = issue(ee_params("r2", 2), Key::p256(), &inter);
    let err = check(&[&ee, &inter], "r2", NOW, &trust(&[&root])).unwrap_err();
    assert!(matches!(err, ValidationError::PathLengthExceeded { max: 0, found: 1, .. }), "{err}");
}

#[test]
fn path_length_within_limit_valid() {
    let mut p = ca_params("root");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    let root = self_signed(p, Key::p256());
    let mut ip = ca_params("inter");
    ip.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let inter = issue(ip, Key::p256(), &root);
    let ee = issue(ee_params("r2", 2), Key::p256(), &inter);
    assert_eq!(check(&[&ee, &inter], "r2", NOW, &trust(&[&root])), Ok(()));
}

#[test]
fn ca_key_usage_without_cert_sign_rejected() {
    let mut p = ca_params("ca");
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
    let ca = self_signed(p, Key::p256());
    // rcgen checks the issuer's key usages only for CRLs, so it still signs.
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(matches!(err, ValidationError::KeyUsageMissing { usage: "keyCertSign", .. }), "{err}");
}

#[test]
fn peer_key_usage_without_digital_signature_rejected() {
    let ca = root("ca");
    let mut p = ee_params("r2", 2);
    p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    let ee = issue(p, Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(
        matches!(err, ValidationError::KeyUsageMissing { usage: "digitalSignature", .. }),
        "{err}"
    );
}

#[test]
fn peer_without_key_usage_extension_valid() {
    let ca = root("ca");
    let mut p = ee_params("r2", 2);
    p.key_usages.clear();
    p.extended_key_usages.clear();
    let ee = issue(p, Key::p256(), &ca);
    assert_eq!(check(&[&ee], "r2", NOW, &trust(&[&ca])), Ok(()));
}

#[test]
fn unknown_critical_extension_rejected() {
    let ca = root("ca");
    let mut p = ee_params("r2", 2);
    let mut ext =
        CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 7], vec![0x05, 0x00]);
    ext.set_criticality(true);
    p.custom_extensions = vec![ext];
    let ee = issue(p, Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(
        matches!(err, ValidationError::UnknownCriticalExtension { ref oid, .. } if oid == "1.3.6.1.4.1.99999.7"),
        "{err}"
    );
    assert!(err.to_string().contains("1.3.6.1.4.1.99999.7"));
}

#[test]
fn unknown_noncritical_extension_valid() {
    let ca = root("ca");
    let mut p = ee_params("r2", 2);
    p.custom_extensions =
        vec![CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 7], vec![0x05, 0x00])];
    let ee = issue(p, Key::p256(), &ca);
    assert_eq!(check(&[&ee], "r2", NOW, &trust(&[&ca])), Ok(()));
}

#[test]
fn flipped_signature_byte_rejected() {
    let ca = root("ca");
    let mut ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    // The last byte of the certificate is the last byte of the ECDSA s value.
    let last = ee.der.len() - 1;
    ee.der[last] ^= 0x01;
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(matches!(err, ValidationError::SignatureInvalid { .. }), "{err}");
}

#[test]
fn tampered_tbs_rejected() {
    let ca = root("ca");
    let mut ee = issue(ee_params("r2", 0x5a5a5a), Key::p256(), &ca);
    ee.der = replace_all(&ee.der, &[0x02, 0x03, 0x5a, 0x5a, 0x5a], &[0x02, 0x03, 0x5a, 0x5a, 0x5b]);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(matches!(err, ValidationError::SignatureInvalid { .. }), "{err}");
}

#[test]
fn sha1_signature_algorithm_rejected() {
    let ca = self_signed(ca_params("ca"), Key::rsa(2048));
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    let sha1 = replace_all(&ee.der, OID_SHA256_RSA, OID_SHA1_RSA);
    assert_ne!(sha1, ee.der);
    let err =
        validate_peer_at(&[sha1], "r2", NOW, &trust(&[&ca]), &RevocationSet::new()).unwrap_err();
    assert!(
        matches!(err, ValidationError::UnsupportedSignatureAlgorithm { ref algorithm, .. } if algorithm.contains("sha1")),
        "{err}"
    );
}

#[test]
fn md5_signature_algorithm_rejected() {
    let ca = self_signed(ca_params("ca"), Key::rsa(2048));
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    let md5 = replace_all(&ee.der, OID_SHA256_RSA, OID_MD5_RSA);
    let err =
        validate_peer_at(&[md5], "r2", NOW, &trust(&[&ca]), &RevocationSet::new()).unwrap_err();
    assert!(
        matches!(err, ValidationError::UnsupportedSignatureAlgorithm { ref algorithm, .. } if algorithm.contains("md5")),
        "{err}"
    );
}

#[test]
fn ed25519_signature_rejected() {
    let ca = self_signed(ca_params("ca"), Key::ed25519());
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(
        matches!(err, ValidationError::UnsupportedSignatureAlgorithm { ref algorithm, .. } if algorithm.contains("ed25519")),
        "{err}"
    );
}

#[test]
fn ed25519_peer_key_rejected() {
    let ca = root("ca");
    let ee = issue(ee_params("r2", 2), Key::ed25519(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(matches!(err, ValidationError::UnsupportedKey { .. }), "{err}");
}

#[test]
fn weak_rsa_key_rejected() {
    let ca = root("ca");
    let ee = issue(ee_params("r2", 2), Key::rsa_public(1024), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(matches!(err, ValidationError::WeakKey { bits: 1024, min: 2048, .. }), "{err}");
}

#[test]
fn name_mismatch_rejected() {
    let ca = root("ca");
    let ee = issue(ee_params("r3", 2), Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert_eq!(err.to_string(), "name mismatch: expected r2, got CN=r3");
}

#[test]
fn san_uri_matches_peering_name() {
    let ca = root("ca");
    let mut p = ee_params("r2-node-a", 2);
    p.subject_alt_names = vec![san_uri("urn:ssr:peering:r2")];
    let ee = issue(p, Key::p256(), &ca);
    let t = trust(&[&ca]);
    assert_eq!(check(&[&ee], "r2", NOW, &t), Ok(()));
    // The peering URI names the router; the CN is not a second identity.
    assert!(matches!(
        check(&[&ee], "r2-node-a", NOW, &t),
        Err(ValidationError::NameMismatch { .. })
    ));
    let err = check(&[&ee], "r9", NOW, &t).unwrap_err();
    assert_eq!(
        err.to_string(),
        "name mismatch: expected r9, got CN=r2-node-a, URI:urn:ssr:peering:r2"
    );
}

#[test]
fn san_uri_for_other_router_overrides_cn() {
    let ca = root("ca");
    let mut p = ee_params("r2", 2);
    p.subject_alt_names = vec![san_uri("urn:ssr:peering:r5")];
    let ee = issue(p, Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert_eq!(err.to_string(), "name mismatch: expected r2, got CN=r2, URI:urn:ssr:peering:r5");
}

#[test]
fn san_uris_must_agree() {
    let ca = root("ca");
    let mut p = ee_params("r2", 2);
    p.subject_alt_names = vec![san_uri("urn:ssr:peering:r2"), san_uri("urn:ssr:peering:r3")];
    let ee = issue(p, Key::p256(), &ca);
    let t = trust(&[&ca]);
    assert!(matches!(check(&[&ee], "r2", NOW, &t), Err(ValidationError::NameMismatch { .. })));
    assert!(matches!(check(&[&ee], "r3", NOW, &t), Err(ValidationError::NameMismatch { .. })));
}

#[test]
fn san_uri_other_scheme_not_matched() {
    let ca = root("ca");
    let mut p = ee_params("x", 2);
    p.subject_alt_names = vec![san_uri("urn:other:r2")];
    let ee = issue(p, Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(matches!(err, ValidationError::NameMismatch { .. }), "{err}");
}

#[test]
fn revoked_peer_rejected() {
    let ca = root("ca");
    let ee = issue(ee_params("r2", 0x1234), Key::p256(), &ca);
    let t = trust(&[&ca]);
    let mut crls = RevocationSet::new();
    crls.insert(RevocationList::parse("ca.crl", &ca.crl(&[7, 0x1234])).unwrap(), &t).unwrap();
    let err = validate_peer_at(std::slice::from_ref(&ee.der), "r2", NOW, &t, &crls).unwrap_err();
    assert!(matches!(err, ValidationError::Revoked { ref crl, .. } if crl == "ca.crl"), "{err}");
    assert!(err.to_string().contains("12:34"), "{err}");

    let other = issue(ee_params("r2", 8), Key::p256(), &ca);
    assert!(validate_peer_at(std::slice::from_ref(&other.der), "r2", NOW, &t, &crls).is_ok());
}

#[test]
fn revoked_intermediate_rejected() {
    let root = root("root");
    let mut ip = ca_params("inter");
    ip.serial_number = Some(rcgen::SerialNumber::from(55u64));
    let inter = issue(ip, Key::p256(), &root);
    let ee = issue(ee_params("r2", 2), Key::p256(), &inter);
    let t = trust(&[&root]);
    let mut crls = RevocationSet::new();
    crls.insert(RevocationList::parse("root.crl", &root.crl(&[55])).unwrap(), &t).unwrap();
    let err =
        validate_peer_at(&[ee.der.clone(), inter.der.clone()], "r2", NOW, &t, &crls).unwrap_err();
    assert!(
        matches!(err, ValidationError::Revoked { ref subject, .. } if subject.contains("inter")),
        "{err}"
    );
}

#[test]
fn crl_from_intermediate_checked_at_use() {
    let root = root("root");
    let inter = issue(ca_params("inter"), Key::p256(), &root);
    let ee = issue(ee_params("r2", 9), Key::p256(), &inter);
    let t = trust(&[&root]);
    let mut crls = RevocationSet::new();
    crls.insert(RevocationList::parse("inter.crl", &inter.crl(&[9])).unwrap(), &t).unwrap();
    let err =
        validate_peer_at(&[ee.der.clone(), inter.der.clone()], "r2", NOW, &t, &crls).unwrap_err();
    assert!(matches!(err, ValidationError::Revoked { .. }), "{err}");

    // A CRL with the intermediate's name but another key's signature does not count.
    let impostor = self_signed(ca_params("inter"), Key::p256());
    let mut forged = RevocationSet::new();
    forged.insert(RevocationList::parse("forged.crl", &impostor.crl(&[9])).unwrap(), &t).unwrap();
    assert!(validate_peer_at(&[ee.der.clone(), inter.der.clone()], "r2", NOW, &t, &forged).is_ok());
}

#[test]
fn malformed_der_rejected() {
    let t = TrustStore::new();
    let err =
        validate_peer_at(&[vec![0x30, 0x03, 0x02, 0x01]], "r2", NOW, &t, &RevocationSet::new())
            .unwrap_err();
    assert!(matches!(err, ValidationError::Malformed { what: "certificate", .. }), "{err}");

    let ca = root("ca");
    let mut trailing = ca.der.clone();
    trailing.push(0);
    let err = validate_peer_at(&[trailing], "ca", NOW, &t, &RevocationSet::new()).unwrap_err();
    assert!(matches!(err, ValidationError::Malformed { .. }), "{err}");

    let err = validate_peer_at(&[], "r2", NOW, &t, &RevocationSet::new()).unwrap_err();
    assert!(matches!(err, ValidationError::Malformed { .. }), "{err}");
}

#[test]
fn chain_too_long_rejected() {
    let ca = root("ca");
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    let chain = vec![ee.der.clone(); 9];
    let err =
        validate_peer_at(&chain, "r2", NOW, &trust(&[&ca]), &RevocationSet::new()).unwrap_err();
    assert_eq!(err, ValidationError::ChainTooLong { count: 9, max: 8 });
}

#[test]
fn self_signed_accepted_without_ca() {
    let mut p = ee_params("r2", 2);
    p.subject_alt_names = vec![san_uri("urn:ssr:peering:r2")];
    let ee = self_signed(p, Key::p256());
    let peer = validate_peer_at(
        std::slice::from_ref(&ee.der),
        "r2",
        NOW,
        &TrustStore::new(),
        &RevocationSet::new(),
    )
    .unwrap();
    assert!(peer.is_self_signed());
    let sig = identity(&ee).sign(b"m").unwrap();
    assert!(peer.verify(b"m", &sig).is_ok());
}

#[test]
fn self_signed_rejected_with_ca() {
    let ca = root("ca");
    let ee = self_signed(ee_params("r2", 2), Key::p256());
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    assert!(matches!(err, ValidationError::Untrusted { .. }), "{err}");
}

#[test]
fn self_signed_bad_signature_rejected_without_ca() {
    let mut ee = self_signed(ee_params("r2", 2), Key::p256());
    let last = ee.der.len() - 1;
    ee.der[last] ^= 0x01;
    let err = check(&[&ee], "r2", NOW, &TrustStore::new()).unwrap_err();
    assert!(matches!(err, ValidationError::SignatureInvalid { .. }), "{err}");
}

#[test]
fn issued_peer_rejected_without_ca() {
    let ca = root("ca");
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &TrustStore::new()).unwrap_err();
    assert!(matches!(err, ValidationError::Untrusted { .. }), "{err}");
}

#[test]
fn trust_store_from_pem_bundle() {
    let root = root("root");
    let inter = issue(ca_params("inter"), Key::p256(), &root);
    let bundle = format!("{}{}", inter.pem(), root.pem());
    let mut t = TrustStore::new();
    assert_eq!(t.add_pem_bundle(bundle.as_bytes()).unwrap(), 2);
    assert_eq!(t.len(), 2);
    let ee = issue(ee_params("r2", 2), Key::p256(), &inter);
    assert_eq!(check(&[&ee], "r2", NOW, &t), Ok(()));
    assert!(t.add_pem_bundle(b"no pem here").is_err());
}

#[test]
fn cache_reuses_until_inputs_change() {
    let ca = root("ca");
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    let mut t = trust(&[&ca]);
    let crls = RevocationSet::new();
    let mut cache = ValidationCache::new();
    let chain = vec![ee.der.clone()];
    let now = system_time(NOW);

    assert!(cache.validate("r2", &chain, now, &t, &crls).is_ok());
    assert!(cache.validate("r2", &chain, now, &t, &crls).is_ok());
    assert_eq!((cache.hits(), cache.misses()), (1, 1));

    // A new CA generation forces a full validation.
    t.add_der(root("other").der).unwrap();
    assert!(cache.validate("r2", &chain, now, &t, &crls).is_ok());
    assert_eq!(cache.misses(), 2);

    // Past the certificate's notAfter the cached success is not reused.
    let late = system_time(NOW + 31 * DAY);
    assert!(matches!(
        cache.validate("r2", &chain, late, &t, &crls),
        Err(ValidationError::Expired { .. })
    ));
    assert_eq!(cache.misses(), 3);
    assert!(cache.validated("r2").is_none());
}

#[test]
fn cache_revalidates_on_crl_change() {
    let ca = root("ca");
    let ee = issue(ee_params("r2", 5), Key::p256(), &ca);
    let t = trust(&[&ca]);
    let mut crls = RevocationSet::new();
    let mut cache = ValidationCache::new();
    let chain = vec![ee.der.clone()];
    let now = system_time(NOW);
    assert!(cache.validate("r2", &chain, now, &t, &crls).is_ok());
    crls.insert(RevocationList::parse("ca.crl", &ca.crl(&[5])).unwrap(), &t).unwrap();
    let err = cache.validate("r2", &chain, now, &t, &crls).unwrap_err();
    assert!(matches!(err, ValidationError::Revoked { .. }), "{err}");
}

#[test]
fn rsa_pss_key_signs_with_pss() {
    let ca = patching(root("ca"), &[(OID_RSA_ENCRYPTION, OID_RSASSA_PSS)]);
    let ee = issue(ee_params("r2", 2), Key::rsa(2048), &ca);
    assert_chain_and_signatures(&ca, &ee, "RSA-PSS 2048");

    // A PKCS#1 v1.5 signature from the same key does not verify under a PSS-only key.
    let peer = validate_peer_at(
        std::slice::from_ref(&ee.der),
        "r2",
        NOW,
        &trust(&[&ca]),
        &RevocationSet::new(),
    )
    .unwrap();
    let pkcs1 = identity_from_parts(&ee.der, &ee.key, false).sign(b"m").unwrap();
    assert!(peer.verify(b"m", &pkcs1).is_err());
}

/// Loads the key of `der` as an identity; with `pss` false the certificate's key type is set
/// back to rsaEncryption, so the identity signs with PKCS#1 v1.5.
fn identity_from_parts(der: &[u8], key: &Key, pss: bool) -> OwnIdentity {
    let patched =
        if pss { der.to_vec() } else { replace_all(der, OID_RSASSA_PSS, OID_RSA_ENCRYPTION) };
    OwnIdentity::from_bytes(&patched, &key.pkcs8(), IdentityOrigin::Installed).unwrap()
}

#[test]
fn unsupported_curve_rejected() {
    let ca = root("ca");
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    // Only the subject key carries the P-256 curve OID; the CA's own key is outside this DER.
    let p192 = replace_all(&ee.der, OID_CURVE_P256, OID_CURVE_P192);
    assert_ne!(p192, ee.der);
    let err =
        validate_peer_at(&[p192], "r2", NOW, &trust(&[&ca]), &RevocationSet::new()).unwrap_err();
    assert!(
        matches!(err, ValidationError::UnsupportedKey { ref algorithm, .. } if algorithm.contains("1.2.840.10045.3.1.1")),
        "{err}"
    );
}

#[test]
fn dsa_signature_algorithm_rejected() {
    let ca = self_signed(ca_params("ca"), Key::rsa(2048));
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    let dsa = replace_all(&ee.der, OID_SHA256_RSA, OID_DSA_SHA256);
    let err =
        validate_peer_at(&[dsa], "r2", NOW, &trust(&[&ca]), &RevocationSet::new()).unwrap_err();
    assert!(
        matches!(err, ValidationError::UnsupportedSignatureAlgorithm { ref algorithm, .. } if algorithm.contains("dsa")),
        "{err}"
    );
}

const ESCAPE_CN: &str = "r3\u{1b}]0;title\u{7}\u{1b}[2J";

#[test]
fn name_mismatch_escapes_control() {
    let ca = root("ca");
    let ee = issue(ee_params(ESCAPE_CN, 2), Key::p256(), &ca);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    let text = err.to_string();
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(!text.contains('\u{7}'), "{text:?}");
    assert!(text.contains("r3\\x1b]0;title\\x07"), "{text:?}");
}

#[test]
fn untrusted_subject_escapes_control() {
    let ca = root("ca");
    let other = root("other");
    let ee = issue(ee_params(ESCAPE_CN, 2), Key::p256(), &other);
    let err = check(&[&ee], "r2", NOW, &trust(&[&ca])).unwrap_err();
    let text = err.to_string();
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("\\x1b"), "{text:?}");
}

#[test]
fn ca_file_der_accepted() {
    let ca = root("ca");
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    let mut store = TrustStore::new();
    assert_eq!(store.add_certificates(&ca.der).unwrap(), 1);
    assert!(check(&[&ee], "r2", NOW, &store).is_ok());
}

#[test]
fn ca_file_pem_accepted() {
    let ca = root("ca");
    let mut store = TrustStore::new();
    assert_eq!(store.add_certificates(ca.pem().as_bytes()).unwrap(), 1);
}

#[test]
fn ca_file_empty_says_so() {
    let err = TrustStore::new().add_certificates(b"\n").unwrap_err();
    assert_eq!(err.to_string(), "malformed CA certificate file: empty file");
}

#[test]
fn ca_file_garbage_says_so() {
    let err = TrustStore::new().add_certificates(b"garbage\n").unwrap_err();
    assert_eq!(err.to_string(), "malformed CA certificate file: not a DER or PEM certificate");
    let err = TrustStore::new().add_certificates(&[0x30, 0x03, 1, 2, 3]).unwrap_err();
    assert_eq!(err.to_string(), "malformed CA certificate file: not a DER or PEM certificate");
}

#[test]
fn ca_file_end_entity_rejected() {
    let ca = root("ca");
    let ee = issue(ee_params("r2", 2), Key::p256(), &ca);
    for bytes in [ee.der.clone(), ee.pem().into_bytes()] {
        let mut store = TrustStore::new();
        let err = store.add_certificates(&bytes).unwrap_err();
        assert!(matches!(err, ValidationError::NotCaCertificate { .. }), "{err}");
        assert!(err.to_string().contains("CN=r2 is not a CA certificate"), "{err}");
        assert!(store.is_empty());
    }
}
