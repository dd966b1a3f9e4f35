//! Start-up checks of an installed router certificate: the faults that stop the daemon
//! (another name, a CA certificate, not yet valid, a broken self-signature) and the chain
//! fault that only warns.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

mod pki_support;

use pki_support::*;
use svr_control::pki::own_check::check_installed;
use svr_control::pki::{IdentityOrigin, OwnIdentity, TrustStore, ValidationError};

fn identity(cert: &Cert) -> OwnIdentity {
    OwnIdentity::from_bytes(&cert.der, &cert.key.pkcs8(), IdentityOrigin::Installed).unwrap()
}

#[test]
fn own_check_signed_matching_passes() {
    let ca = root("own CA");
    let ee = issue(ee_params("r1", 3), Key::p256(), &ca);
    let result = check_installed(&identity(&ee), "r1", &trust(&[&ca]), system_time(NOW));
    assert_eq!(result.unwrap(), None);
}

#[test]
fn own_check_san_uri_matches() {
    let ca = root("own CA");
    let mut params = ee_params("router-one", 3);
    params.subject_alt_names = vec![san_uri("urn:ssr:peering:r1")];
    let ee = issue(params, Key::p256(), &ca);
    let result = check_installed(&identity(&ee), "r1", &trust(&[&ca]), system_time(NOW));
    assert_eq!(result.unwrap(), None);
}

#[test]
fn own_check_wrong_name_rejected() {
    let ca = root("own CA");
    let ee = issue(ee_params("r2", 3), Key::p256(), &ca);
    let error = check_installed(&identity(&ee), "r1", &trust(&[&ca]), system_time(NOW));
    assert!(matches!(error, Err(ValidationError::NameMismatch { .. })), "{error:?}");
}

#[test]
fn own_check_ca_certificate_rejected() {
    let ca = root("own CA");
    let mut params = ca_params("r1");
    params.key_usages.push(rcgen::KeyUsagePurpose::DigitalSignature);
    let inner = issue(params, Key::p256(), &ca);
    let error = check_installed(&identity(&inner), "r1", &trust(&[&ca]), system_time(NOW));
    assert!(matches!(error, Err(ValidationError::EndEntityIsCa { .. })), "{error:?}");
    // The same check runs on peers and on the router's own certificate.
    let message = error.unwrap_err().to_string();
    assert!(!message.contains("peer"), "{message}");
    assert!(message.contains("is a CA certificate (basicConstraints CA:TRUE)"), "{message}");
}

#[test]
fn own_check_not_yet_valid_rejected() {
    let ca = root("own CA");
    let mut params = ee_params("r1", 3);
    params.not_before = at(NOW + DAY);
    let ee = issue(params, Key::p256(), &ca);
    let error = check_installed(&identity(&ee), "r1", &trust(&[&ca]), system_time(NOW));
    assert!(matches!(error, Err(ValidationError::NotYetValid { .. })), "{error:?}");
}

#[test]
fn own_check_expired_left_to_alarm() {
    let ca = root("own CA");
    let ee = issue(ee_params("r1", 3), Key::p256(), &ca);
    let later = system_time(NOW + 60 * DAY);
    assert_eq!(check_installed(&identity(&ee), "r1", &trust(&[&ca]), later).unwrap(), None);
}

#[test]
fn own_check_bad_self_signature_rejected() {
    let mut ee = self_signed(ee_params("r1", 3), Key::p256());
    // The last byte belongs to the signature value.
    let last = ee.der.len() - 1;
    ee.der[last] ^= 0x01;
    let error = check_installed(&identity(&ee), "r1", &TrustStore::new(), system_time(NOW));
    assert!(matches!(error, Err(ValidationError::SignatureInvalid { .. })), "{error:?}");
}

#[test]
fn own_check_self_signed_without_cas_passes() {
    let ee = self_signed(ee_params("r1", 3), Key::p256());
    let result = check_installed(&identity(&ee), "r1", &TrustStore::new(), system_time(NOW));
    assert_eq!(result.unwrap(), None);
}

#[test]
fn own_check_untrusted_chain_warns() {
    let ca = root("own CA");
    let other = root("other CA");
    let ee = issue(ee_params("r1", 3), Key::p256(), &ca);
    let result = check_installed(&identity(&ee), "r1", &trust(&[&other]), system_time(NOW));
    assert!(matches!(result, Ok(Some(ValidationError::Untrusted { .. }))), "{result:?}");
}

#[test]
fn own_check_bad_issuer_signature_warns() {
    let ca = root("own CA");
    let mut ee = issue(ee_params("r1", 3), Key::p256(), &ca);
    let last = ee.der.len() - 1;
    ee.der[last] ^= 0x01;
    let result = check_installed(&identity(&ee), "r1", &trust(&[&ca]), system_time(NOW));
    assert!(matches!(result, Ok(Some(_))), "{result:?}");
}
