//! Alarm table behaviour, own-certificate expiry thresholds on an injected clock, and the
//! invalid-certificate-behavior decision.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod pki_support;

use pki_support::{DAY, NOW, system_time};
use svr_control::alarm::{
    AlarmCause, AlarmId, AlarmTable, Category, Raised, Severity, evaluate_own_certificate,
    own_certificate_expiry, peer_certificate_invalid,
};
use svr_control::pki::{
    InvalidCertificateBehavior, PeeringAction, ValidationError, decide_invalid_certificate,
};

const NOT_AFTER: i64 = NOW + 100 * DAY;

fn severity_at(now: i64) -> Option<Severity> {
    own_certificate_expiry("r1", NOT_AFTER, system_time(now)).map(|s| s.severity)
}

#[test]
fn expiry_minor_at_exactly_30_days() {
    assert_eq!(severity_at(NOT_AFTER - 30 * DAY - 1), None);
    assert_eq!(severity_at(NOT_AFTER - 30 * DAY), Some(Severity::Minor));
    assert_eq!(severity_at(NOT_AFTER - 30 * DAY + 1), Some(Severity::Minor));
}

#[test]
fn expiry_major_at_exactly_7_days() {
    assert_eq!(severity_at(NOT_AFTER - 7 * DAY - 1), Some(Severity::Minor));
    assert_eq!(severity_at(NOT_AFTER - 7 * DAY), Some(Severity::Major));
    assert_eq!(severity_at(NOT_AFTER - 7 * DAY + 1), Some(Severity::Major));
}

#[test]
fn expiry_critical_after_not_after() {
    assert_eq!(severity_at(NOT_AFTER), Some(Severity::Major));
    assert_eq!(severity_at(NOT_AFTER + 1), Some(Severity::Critical));
    let spec = own_certificate_expiry("r1", NOT_AFTER, system_time(NOT_AFTER + 1)).unwrap();
    assert!(spec.message.contains("expired"), "{}", spec.message);
    assert_eq!(spec.category, Category::System);
}

#[test]
fn evaluate_escalates_then_clears() {
    let mut table = AlarmTable::new("r1-node");
    evaluate_own_certificate(&mut table, "r1", NOT_AFTER, None, system_time(NOT_AFTER - 20 * DAY));
    let a = table.get_by_cause(&AlarmCause::OwnCertificate).unwrap().clone();
    assert_eq!(a.spec.severity, Severity::Minor);
    assert!(a.spec.message.contains("expires in 20 days"), "{}", a.spec.message);

    evaluate_own_certificate(&mut table, "r1", NOT_AFTER, None, system_time(NOT_AFTER - 3 * DAY));
    let b = table.get_by_cause(&AlarmCause::OwnCertificate).unwrap();
    assert_eq!(b.spec.severity, Severity::Major);
    assert_eq!(b.id, a.id);

    // A renewed certificate clears the alarm.
    evaluate_own_certificate(
        &mut table,
        "r1",
        NOT_AFTER + 365 * DAY,
        None,
        system_time(NOT_AFTER - 3 * DAY),
    );
    assert!(table.is_empty());
}

#[test]
fn evaluate_revoked_is_critical() {
    let mut table = AlarmTable::new("n");
    let revoked = ValidationError::Revoked {
        subject: "CN=r1".into(),
        serial: "05".into(),
        crl: "x.crl".into(),
    };
    evaluate_own_certificate(&mut table, "r1", NOT_AFTER, Some(&revoked), system_time(NOW));
    let a = table.get_by_cause(&AlarmCause::OwnCertificateRevoked).unwrap();
    assert_eq!(a.spec.severity, Severity::Critical);
    assert!(table.get_by_cause(&AlarmCause::OwnCertificate).is_none());
    evaluate_own_certificate(&mut table, "r1", NOT_AFTER, None, system_time(NOW));
    assert!(table.is_empty());
}

#[test]
fn raise_idempotent_per_cause() {
    let mut table = AlarmTable::new("combo-east-1");
    let err = ValidationError::NameMismatch { expected: "r2".into(), got: "CN=r3".into() };
    let cause = AlarmCause::PeerCertificateInvalid { peer: "r2".into() };
    let spec = peer_certificate_invalid("r2", &err);
    let first = table.raise(cause.clone(), spec.clone(), system_time(NOW));
    let id = AlarmId { node: "combo-east-1".into(), seq: 1 };
    assert_eq!(first, Raised::New(id.clone()));
    assert_eq!(
        table.raise(cause.clone(), spec, system_time(NOW + 5)),
        Raised::Unchanged(id.clone())
    );
    assert_eq!(table.len(), 1);
    assert_eq!(table.get(&id).unwrap().time, system_time(NOW));
}

#[test]
fn clear_then_raise_gets_new_id() {
    let mut table = AlarmTable::new("n");
    let cause = AlarmCause::PeerUnauthenticated { peer: "r2".into() };
    let spec = svr_control::alarm::peer_unauthenticated("r2", "bad signature");
    table.raise(cause.clone(), spec.clone(), system_time(NOW));
    assert!(table.clear(&cause).is_some());
    assert!(table.clear(&cause).is_none());
    assert_eq!(
        table.raise(cause, spec, system_time(NOW)),
        Raised::New(AlarmId { node: "n".into(), seq: 2 })
    );
}

#[test]
fn list_ordered_and_lookup_by_id() {
    let mut table = AlarmTable::new("n");
    for peer in ["c", "a", "b"] {
        let err = ValidationError::SignatureInvalid { subject: format!("CN={peer}") };
        table.raise(
            AlarmCause::PeerCertificateInvalid { peer: peer.into() },
            peer_certificate_invalid(peer, &err),
            system_time(NOW),
        );
    }
    let ids: Vec<String> = table.list().map(|a| a.id.to_string()).collect();
    assert_eq!(ids, ["n:1", "n:2", "n:3"]);
    let id: AlarmId = "n:2".parse().unwrap();
    assert_eq!(table.get(&id).unwrap().spec.source, "a");
    assert!(table.get(&"other:2".parse().unwrap()).is_none());
    assert!("n2".parse::<AlarmId>().is_err());
    assert!("n:x".parse::<AlarmId>().is_err());
}

#[test]
fn peer_invalid_message_and_detail_render() {
    let mut table = AlarmTable::new("combo-east-1");
    let err = ValidationError::Expired { subject: "CN=RTR_WEST_COMBO".into(), not_after: NOW };
    let spec = peer_certificate_invalid("RTR_WEST_COMBO", &err);
    assert_eq!(
        spec.message,
        "Peer RTR_WEST_COMBO certificate is invalid: expired - certificate CN=RTR_WEST_COMBO expired at 2027-01-15 08:00:00 UTC"
    );
    assert_eq!(spec.severity, Severity::Critical);
    assert_eq!(spec.category, Category::Peer);
    table.raise(
        AlarmCause::PeerCertificateInvalid { peer: "RTR_WEST_COMBO".into() },
        spec,
        system_time(NOW),
    );

    let detail = table.render_detail(&"combo-east-1:1".parse().unwrap()).unwrap();
    for line in [
        "Time: 2027-01-15 08:00:00 UTC",
        "Severity: CRITICAL",
        "Source: RTR_WEST_COMBO",
        "Category: PEER",
        "Process: pki",
        "Message: Peer RTR_WEST_COMBO certificate is invalid: expired",
    ] {
        assert!(detail.contains(line), "missing {line:?} in\n{detail}");
    }
    let listing = table.render_table();
    let header = listing.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("Severity") && header.ends_with("Message"),
        "{header}"
    );
    assert!(listing.contains("combo-east-1:1"), "{listing}");
    assert!(listing.contains("There is 1 active alarm\n"), "{listing}");

    let rows = table.to_json();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    let message = table.list().next().unwrap().spec.message.clone();
    assert!(message.starts_with("Peer RTR_WEST_COMBO certificate is invalid: expired"));
    let expected = serde_json::json!({
        "id": "combo-east-1:1",
        "time": "2027-01-15 08:00:00 UTC",
        "severity": "CRITICAL",
        "source": "RTR_WEST_COMBO",
        "category": "PEER",
        "process": "pki",
        "message": message,
    });
    assert_eq!(rows[0], expected);
    assert_eq!(table.detail_json(&"combo-east-1:1".parse().unwrap()), Some(expected));
}

/// Splits a line of the `show alarms` table into its cells, at the columns where the runs
/// of `=` in the rule line under the header start. The last cell runs to the end of the line.
fn table_cells<'a>(rule: &str, line: &'a str) -> Vec<&'a str> {
    let starts: Vec<usize> = rule
        .char_indices()
        .filter(|&(index, c)| c == '=' && (index == 0 || rule.as_bytes()[index - 1] == b' '))
        .map(|(index, _)| index)
        .collect();
    let mut cells = Vec::new();
    for (number, &start) in starts.iter().enumerate() {
        let end = starts.get(number + 1).copied().unwrap_or(line.len()).min(line.len());
        cells.push(line.get(start..end).unwrap_or("").trim_end());
    }
    cells
}

#[test]
fn alarm_table_has_process_column() {
    let mut table = AlarmTable::new("r1-node");
    let spec = own_certificate_expiry("r1", NOT_AFTER, system_time(NOT_AFTER - 3 * DAY)).unwrap();
    table.raise(AlarmCause::OwnCertificate, spec, system_time(NOT_AFTER - 3 * DAY));

    let listing = table.render_table();
    let lines: Vec<&str> = listing.lines().collect();
    let rule = lines[1];
    assert_eq!(
        table_cells(rule, lines[0]),
        ["ID", "Time", "Severity", "Source", "Category", "Process", "Message"],
        "{listing}"
    );
    let row = table_cells(rule, lines[2]);
    assert_eq!(row.len(), 7, "{listing}");
    assert_eq!(row[0], "r1-node:1");
    assert_eq!(row[2], "MAJOR");
    assert_eq!(row[3], "r1");
    assert_eq!(row[4], "SYSTEM");
    assert_eq!(row[5], "pki");
    assert!(row[6].starts_with("Certificate for r1 expires in 3 days"), "{listing}");
}

#[test]
fn fail_soft_keeps_peerings() {
    let err = ValidationError::NameMismatch { expected: "r2".into(), got: "CN=x".into() };
    let v = decide_invalid_certificate(InvalidCertificateBehavior::FailSoft, "r2", &err);
    assert_eq!(v.action, PeeringAction::Keep);
    assert!(v.new_sessions);
    assert_eq!(v.cause, AlarmCause::PeerCertificateInvalid { peer: "r2".into() });
    assert!(v.alarm.message.starts_with("Peer r2 certificate is invalid: name-mismatch - "));
}

#[test]
fn fail_hard_removes_peerings() {
    let err = ValidationError::NameMismatch { expected: "r2".into(), got: "CN=x".into() };
    let v = decide_invalid_certificate(InvalidCertificateBehavior::FailHard, "r2", &err);
    assert_eq!(v.action, PeeringAction::RemoveUntilValid);
    assert!(!v.new_sessions);
}

#[test]
fn revoked_or_expired_blocks_new_sessions_in_fail_soft() {
    let revoked =
        ValidationError::Revoked { subject: "CN=r2".into(), serial: "01".into(), crl: "c".into() };
    let expired = ValidationError::Expired { subject: "CN=r2".into(), not_after: 0 };
    for err in [revoked, expired] {
        let v = decide_invalid_certificate(InvalidCertificateBehavior::FailSoft, "r2", &err);
        assert_eq!(v.action, PeeringAction::Keep);
        assert!(!v.new_sessions, "{err}");
    }
}

#[test]
fn severity_and_category_upper_case() {
    assert_eq!(Severity::Minor.to_string(), "MINOR");
    assert_eq!(Severity::Major.to_string(), "MAJOR");
    assert_eq!(Severity::Critical.to_string(), "CRITICAL");
    assert_eq!(Category::Peer.to_string(), "PEER");
    assert_eq!(Category::System.to_string(), "SYSTEM");
}
