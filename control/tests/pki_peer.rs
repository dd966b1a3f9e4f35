//! Router certificate state: peer checks and own-certificate evaluation keep the alarm table
//! in step.
#![allow(clippy::unwrap_used, clippy::panic, reason = "test")]

mod pki_support;

use pki_support::*;
use svr_control::alarm::{AlarmCause, AlarmTable, Severity};
use svr_control::pki::{
    CrlError, IdentityOrigin, InvalidCertificateBehavior, OwnIdentity, PeerCertificateOutcome,
    PeerCertificates, PeeringAction, RevocationList, TrustStore,
};

fn invalid_cause(peer: &str) -> AlarmCause {
    AlarmCause::PeerCertificateInvalid { peer: peer.into() }
}

#[test]
fn check_peer_raises_then_clears() {
    let ca = root("ca");
    let mut pki = PeerCertificates::new(trust(&[&ca]), InvalidCertificateBehavior::FailHard);
    let mut alarms = AlarmTable::new("n");
    let now = system_time(NOW);

    let wrong = issue(ee_params("r3", 2), Key::p256(), &ca);
    match pki.check_peer("r2", std::slice::from_ref(&wrong.der), now, &mut alarms) {
        PeerCertificateOutcome::Invalid { verdict, .. } => {
            assert_eq!(verdict.action, PeeringAction::RemoveUntilValid)
        }
        PeerCertificateOutcome::Valid(_) => panic!("wrong name accepted"),
    }
    let alarm = alarms.get_by_cause(&invalid_cause("r2")).unwrap();
    assert_eq!(alarm.spec.severity, Severity::Critical);
    assert!(alarm.spec.message.contains("name-mismatch"), "{}", alarm.spec.message);

    // The same certificate on a second path changes nothing.
    pki.check_peer("r2", std::slice::from_ref(&wrong.der), now, &mut alarms);
    assert_eq!(alarms.len(), 1);

    let right = issue(ee_params("r2", 3), Key::p256(), &ca);
    let outcome = pki.check_peer("r2", std::slice::from_ref(&right.der), now, &mut alarms);
    assert!(matches!(outcome, PeerCertificateOutcome::Valid(_)));
    assert!(alarms.is_empty());
    assert!(pki.validated("r2").is_some());
}

#[test]
fn unauthenticated_peer_alarm() {
    let pki = PeerCertificates::default();
    let mut alarms = AlarmTable::new("n");
    pki.peer_unauthenticated("r2", &"signature does not verify", system_time(NOW), &mut alarms);
    let cause = AlarmCause::PeerUnauthenticated { peer: "r2".into() };
    let alarm = alarms.get_by_cause(&cause).unwrap();
    assert_eq!(alarm.spec.message, "Unable to authenticate peer r2: signature does not verify");
    pki.peer_authenticated("r2", &mut alarms);
    assert!(alarms.is_empty());
}

#[test]
fn eskm_self_signed_with_ca_raises() {
    let ca = root("ca");
    let own = self_signed(ee_params("r1", 1), Key::p256());
    let identity =
        OwnIdentity::from_bytes(&own.der, &own.key.pkcs8(), IdentityOrigin::Generated).unwrap();
    let pki = PeerCertificates::new(trust(&[&ca]), InvalidCertificateBehavior::FailSoft);
    let mut alarms = AlarmTable::new("n");

    pki.evaluate_own(&identity, "r1", true, system_time(NOW), &mut alarms);
    let alarm = alarms.get_by_cause(&AlarmCause::NoValidCertificate).unwrap();
    assert!(alarm.spec.message.contains("no valid signed certificate"), "{}", alarm.spec.message);

    // With ESKM disabled the same certificate raises nothing.
    pki.evaluate_own(&identity, "r1", false, system_time(NOW), &mut alarms);
    assert!(alarms.get_by_cause(&AlarmCause::NoValidCertificate).is_none());
}

#[test]
fn eskm_self_signed_without_ca_raises() {
    let own = self_signed(ee_params("r1", 1), Key::p256());
    let identity =
        OwnIdentity::from_bytes(&own.der, &own.key.pkcs8(), IdentityOrigin::Generated).unwrap();
    let pki = PeerCertificates::new(TrustStore::new(), InvalidCertificateBehavior::FailSoft);
    let mut alarms = AlarmTable::new("n");
    pki.evaluate_own(&identity, "r1", true, system_time(NOW), &mut alarms);
    let alarm = alarms.get_by_cause(&AlarmCause::NoValidCertificate).unwrap();
    assert_eq!(alarm.spec.severity, Severity::Major);
    assert!(alarm.spec.message.contains("self-signed"), "{}", alarm.spec.message);
}

#[test]
fn eskm_signed_without_ca_no_alarm() {
    let ca = root("ca");
    let own = issue(ee_params("r1", 2), Key::p256(), &ca);
    let identity =
        OwnIdentity::from_bytes(&own.der, &own.key.pkcs8(), IdentityOrigin::Installed).unwrap();
    let pki = PeerCertificates::new(TrustStore::new(), InvalidCertificateBehavior::FailSoft);
    let mut alarms = AlarmTable::new("n");
    pki.evaluate_own(&identity, "r1", true, system_time(NOW), &mut alarms);
    assert!(alarms.get_by_cause(&AlarmCause::NoValidCertificate).is_none());
}

#[test]
fn check_peer_named_expects_common_name() {
    let ca = root("ca");
    let cert = issue(ee_params("svr-r2", 3), Key::p256(), &ca);
    let mut pki = PeerCertificates::new(trust(&[&ca]), InvalidCertificateBehavior::FailHard);
    let mut alarms = AlarmTable::new("n");
    let chain = std::slice::from_ref(&cert.der);
    let outcome = pki.check_peer_named("r2", "svr-r2", chain, system_time(NOW), &mut alarms);
    assert!(matches!(outcome, PeerCertificateOutcome::Valid(_)), "{outcome:?}");

    // The alarm names the router, the check the peering-common-name.
    let outcome = pki.check_peer_named("r2", "other", chain, system_time(NOW), &mut alarms);
    let PeerCertificateOutcome::Invalid { verdict, .. } = outcome else {
        panic!("a certificate for another name passed");
    };
    assert_eq!(verdict.action, PeeringAction::RemoveUntilValid);
    let alarm = alarms.get_by_cause(&AlarmCause::PeerCertificateInvalid { peer: "r2".into() });
    assert!(alarm.unwrap().spec.message.starts_with("Peer r2 certificate is invalid"));
}

#[test]
fn trust_replace_moves_generation() {
    let (a, b) = (root("a"), root("b"));
    let mut store = trust(&[&a]);
    let other = trust(&[&b]);
    assert_eq!(store.generation(), other.generation());
    assert!(store.replace_with(other));
    assert!(store.generation() > 1, "a replaced store keeps its old generation");
    assert!(!store.replace_with(trust(&[&b])), "the same anchors counted as a change");
}

#[test]
fn eskm_signed_certificate_no_alarm() {
    let ca = root("ca");
    let mut p = ee_params("r1", 1);
    p.not_after = at(NOW + 200 * DAY);
    let own = issue(p, Key::p256(), &ca);
    let identity =
        OwnIdentity::from_bytes(&own.der, &own.key.pkcs8(), IdentityOrigin::Installed).unwrap();
    let pki = PeerCertificates::new(trust(&[&ca]), InvalidCertificateBehavior::FailSoft);
    let mut alarms = AlarmTable::new("n");
    pki.evaluate_own(&identity, "r1", true, system_time(NOW), &mut alarms);
    assert!(alarms.is_empty(), "{}", alarms.render_table());
}

#[test]
fn own_revoked_raises_critical_and_eskm() {
    let ca = root("ca");
    let own = issue(ee_params("r1", 66), Key::p256(), &ca);
    let identity =
        OwnIdentity::from_bytes(&own.der, &own.key.pkcs8(), IdentityOrigin::Installed).unwrap();
    let mut pki = PeerCertificates::new(trust(&[&ca]), InvalidCertificateBehavior::FailSoft);
    let list = RevocationList::parse("ca.crl", &ca.crl(&[66])).unwrap();
    pki.revocations.insert(list, &pki.trust.clone()).unwrap();
    let mut alarms = AlarmTable::new("n");
    pki.evaluate_own(&identity, "r1", true, system_time(NOW), &mut alarms);
    let revoked = alarms.get_by_cause(&AlarmCause::OwnCertificateRevoked).unwrap();
    assert_eq!(revoked.spec.severity, Severity::Critical);
    assert!(alarms.get_by_cause(&AlarmCause::NoValidCertificate).is_some());
}

#[test]
fn expired_self_signed_without_ca_raises() {
    let mut p = ee_params("r1", 1);
    p.not_after = at(NOW - 1);
    let own = self_signed(p, Key::p256());
    let identity =
        OwnIdentity::from_bytes(&own.der, &own.key.pkcs8(), IdentityOrigin::Generated).unwrap();
    let pki = PeerCertificates::new(TrustStore::new(), InvalidCertificateBehavior::FailSoft);
    let mut alarms = AlarmTable::new("n");
    pki.evaluate_own(&identity, "r1", true, system_time(NOW), &mut alarms);
    assert_eq!(
        alarms.get_by_cause(&AlarmCause::OwnCertificate).unwrap().spec.severity,
        Severity::Critical
    );
    // The expiry is the reason given, not the self-signature.
    let alarm = alarms.get_by_cause(&AlarmCause::NoValidCertificate).unwrap();
    let not_after = svr_control::pki::error::format_unix(NOW - 1);
    let expected = format!("the router's own certificate expired at {not_after} (notAfter)");
    assert!(alarm.spec.message.ends_with(&expected), "{}", alarm.spec.message);
}

#[test]
fn crl_failure_alarm_until_fetched() {
    let pki = PeerCertificates::default();
    let mut alarms = AlarmTable::new("n");
    let failed: Result<(), CrlError> =
        Err(CrlError::TimedOut { source: "http://crl/ca.crl".into() });
    pki.crl_result("r1", "http://crl/ca.crl", &failed, system_time(NOW), &mut alarms);
    let cause = AlarmCause::CrlUnavailable { source: "http://crl/ca.crl".into() };
    assert!(alarms.get_by_cause(&cause).unwrap().spec.message.contains("timed out"));
    pki.crl_result(
        "r1",
        "http://crl/ca.crl",
        &Ok::<(), CrlError>(()),
        system_time(NOW),
        &mut alarms,
    );
    assert!(alarms.is_empty());
}

#[test]
fn expired_own_alarm_names_not_after() {
    let ca = root("ca");
    let mut params = ee_params("r1", 2);
    params.not_after = at(NOW - DAY);
    let own = issue(params, Key::p256(), &ca);
    let identity =
        OwnIdentity::from_bytes(&own.der, &own.key.pkcs8(), IdentityOrigin::Installed).unwrap();
    let not_after = svr_control::pki::error::format_unix(NOW - DAY);
    let expected = format!("the router's own certificate expired at {not_after} (notAfter)");

    // Without trusted CAs, and with the CA that signed it.
    for trust_store in [TrustStore::new(), trust(&[&ca])] {
        let pki = PeerCertificates::new(trust_store, InvalidCertificateBehavior::FailSoft);
        let mut alarms = AlarmTable::new("n");
        pki.evaluate_own(&identity, "r1", true, system_time(NOW), &mut alarms);
        let alarm = alarms.get_by_cause(&AlarmCause::NoValidCertificate).unwrap();
        assert!(alarm.spec.message.ends_with(&expected), "{}", alarm.spec.message);
    }
}
