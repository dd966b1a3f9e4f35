//! The alarm table (`show alarms`): active alarms keyed by cause, each with an id
//! `<node>:<seq>`, time, severity, source, category, process and message, plus the alarm
//! causes raised by the PKI and the rules that decide them.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::pki::ValidationError;
use crate::pki::error::format_unix;
use crate::pki::validate::unix_seconds;

/// Own certificate expiring within this window raises a minor alarm.
pub const EXPIRY_MINOR_WINDOW: Duration = Duration::from_secs(30 * 86_400);
/// Own certificate expiring within this window raises a major alarm.
pub const EXPIRY_MAJOR_WINDOW: Duration = Duration::from_secs(7 * 86_400);

/// Process name shown for alarms raised by the certificate code.
pub const PKI_PROCESS: &str = "pki";

/// Alarm severity, shown upper-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Minor,
    Major,
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Minor => "MINOR",
            Self::Major => "MAJOR",
            Self::Critical => "CRITICAL",
        })
    }
}

/// Alarm category, shown upper-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Peer,
    System,
    Interface,
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Peer => "PEER",
            Self::System => "SYSTEM",
            Self::Interface => "INTERFACE",
        })
    }
}

/// Cause of an alarm. One cause has at most one active alarm.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AlarmCause {
    /// The router's certificate expires soon, has expired or is otherwise invalid.
    OwnCertificate,
    /// The router's certificate is listed in a CRL.
    OwnCertificateRevoked,
    /// ESKM is enabled but the router has no valid signed certificate.
    NoValidCertificate,
    /// A peer's certificate failed validation.
    PeerCertificateInvalid { peer: String },
    /// A peer's key or rekey message did not authenticate.
    PeerUnauthenticated { peer: String },
    /// A configured CRL could not be fetched or applied.
    CrlUnavailable { source: String },
    /// The Linux interface under a port was deleted, or replaced by a new interface of the
    /// same name that the port is not yet bound to.
    InterfaceLost { interface: String },
}

/// Everything an alarm shows except its id and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmSpec {
    pub severity: Severity,
    pub source: String,
    pub category: Category,
    pub process: String,
    pub message: String,
}

/// `<node>:<seq>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlarmId {
    pub node: String,
    pub seq: u64,
}

impl fmt::Display for AlarmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.seq)
    }
}

/// An alarm id that is not `<node>:<seq>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAlarmId(pub String);

impl fmt::Display for BadAlarmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid alarm id {:?}, expected <node>:<number>", self.0)
    }
}

impl std::error::Error for BadAlarmId {}

impl std::str::FromStr for AlarmId {
    type Err = BadAlarmId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadAlarmId(s.to_owned());
        let (node, seq) = s.rsplit_once(':').ok_or_else(bad)?;
        if node.is_empty() {
            return Err(bad());
        }
        let seq = seq.parse().map_err(|_| bad())?;
        Ok(Self { node: node.to_owned(), seq })
    }
}

/// One active alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    pub id: AlarmId,
    pub time: SystemTime,
    pub cause: AlarmCause,
    pub spec: AlarmSpec,
}

/// Outcome of [`AlarmTable::raise`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raised {
    /// A new alarm with this id.
    New(AlarmId),
    /// The cause already had this alarm with the same content.
    Unchanged(AlarmId),
    /// The cause's alarm changed severity or text; it keeps its id and takes the new time.
    Updated(AlarmId),
}

/// Active alarms of one node.
#[derive(Debug, Clone)]
pub struct AlarmTable {
    node: String,
    next_seq: u64,
    alarms: BTreeMap<u64, Alarm>,
    by_cause: HashMap<AlarmCause, u64>,
}

impl AlarmTable {
    /// Creates an empty table whose ids start at `<node>:1`.
    pub fn new(node: &str) -> Self {
        Self {
            node: node.to_owned(),
            next_seq: 1,
            alarms: BTreeMap::new(),
            by_cause: HashMap::new(),
        }
    }

    /// Raises the alarm of `cause`. Raising again with the same content changes nothing.
    pub fn raise(&mut self, cause: AlarmCause, spec: AlarmSpec, now: SystemTime) -> Raised {
        if let Some(alarm) = self.by_cause.get(&cause).and_then(|seq| self.alarms.get_mut(seq)) {
            if alarm.spec == spec {
                return Raised::Unchanged(alarm.id.clone());
            }
            tracing::debug!(id = %alarm.id, severity = %spec.severity, message = %spec.message, "alarm updated");
            alarm.spec = spec;
            alarm.time = now;
            return Raised::Updated(alarm.id.clone());
        }

        let id = AlarmId { node: self.node.clone(), seq: self.next_seq };
        self.next_seq += 1;
        tracing::debug!(%id, severity = %spec.severity, message = %spec.message, "alarm raised");
        self.by_cause.insert(cause.clone(), id.seq);
        self.alarms.insert(id.seq, Alarm { id: id.clone(), time: now, cause, spec });
        Raised::New(id)
    }

    /// Clears the alarm of `cause`, returning it if one was active.
    pub fn clear(&mut self, cause: &AlarmCause) -> Option<Alarm> {
        let seq = self.by_cause.remove(cause)?;
        let alarm = self.alarms.remove(&seq)?;
        tracing::debug!(id = %alarm.id, "alarm cleared");
        Some(alarm)
    }

    /// Raises the alarm when `spec` is `Some`, clears it when `None`.
    pub fn set(
        &mut self,
        cause: AlarmCause,
        spec: Option<AlarmSpec>,
        now: SystemTime,
    ) -> Option<Raised> {
        match spec {
            Some(spec) => Some(self.raise(cause, spec, now)),
            None => {
                self.clear(&cause);
                None
            }
        }
    }

    /// Active alarms in id order.
    pub fn list(&self) -> impl Iterator<Item = &Alarm> {
        self.alarms.values()
    }

    /// Number of active alarms.
    pub fn len(&self) -> usize {
        self.alarms.len()
    }

    /// True when no alarm is active.
    pub fn is_empty(&self) -> bool {
        self.alarms.is_empty()
    }

    /// The alarm with this id.
    pub fn get(&self, id: &AlarmId) -> Option<&Alarm> {
        if id.node != self.node {
            return None;
        }
        self.alarms.get(&id.seq)
    }

    /// The alarm of this cause.
    pub fn get_by_cause(&self, cause: &AlarmCause) -> Option<&Alarm> {
        self.by_cause.get(cause).and_then(|seq| self.alarms.get(seq))
    }

    /// `show alarms`: a table with the columns ID, Time, Severity, Source, Category, Process
    /// and Message, the fields of [`AlarmTable::render_detail`] in the same order.
    pub fn render_table(&self) -> String {
        let header = ["ID", "Time", "Severity", "Source", "Category", "Process", "Message"];
        let rows: Vec<[String; 7]> = self
            .list()
            .map(|a| {
                [
                    a.id.to_string(),
                    format_time(a.time),
                    a.spec.severity.to_string(),
                    a.spec.source.clone(),
                    a.spec.category.to_string(),
                    a.spec.process.clone(),
                    a.spec.message.clone(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }

        let mut out = String::new();
        let mut push_row = |cells: &[&str]| {
            let line: Vec<String> =
                cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        };
        push_row(&header);
        let rule: Vec<String> = widths.iter().map(|w| "=".repeat(*w)).collect();
        push_row(&rule.iter().map(String::as_str).collect::<Vec<_>>());
        for row in &rows {
            push_row(&row.iter().map(String::as_str).collect::<Vec<_>>());
        }
        let count = match rows.len() {
            1 => "\nThere is 1 active alarm\n".to_owned(),
            n => format!("\nThere are {n} active alarms\n"),
        };
        out.push_str(&count);
        out
    }

    /// Returns `show alarms` as JSON: one object per alarm with every column of
    /// [`AlarmTable::render_table`].
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(self.list().map(alarm_json).collect())
    }

    /// Returns `show alarms id <id>` as JSON, with every line of
    /// [`AlarmTable::render_detail`].
    pub fn detail_json(&self, id: &AlarmId) -> Option<serde_json::Value> {
        self.get(id).map(alarm_json)
    }

    /// `show alarms id <id>`: Time, Severity, Source, Category, Process and Message lines.
    pub fn render_detail(&self, id: &AlarmId) -> Option<String> {
        let a = self.get(id)?;
        Some(format!(
            "ID: {}\nTime: {}\nSeverity: {}\nSource: {}\nCategory: {}\nProcess: {}\nMessage: {}\n",
            a.id,
            format_time(a.time),
            a.spec.severity,
            a.spec.source,
            a.spec.category,
            a.spec.process,
            a.spec.message
        ))
    }
}

/// Converts one alarm to JSON, with its fields named as the text output labels them.
fn alarm_json(alarm: &Alarm) -> serde_json::Value {
    serde_json::json!({
        "id": alarm.id.to_string(),
        "time": format_time(alarm.time),
        "severity": alarm.spec.severity.to_string(),
        "source": alarm.spec.source,
        "category": alarm.spec.category.to_string(),
        "process": alarm.spec.process,
        "message": alarm.spec.message,
    })
}

fn format_time(t: SystemTime) -> String {
    format_unix(unix_seconds(t))
}

/// Computes the own-certificate alarm at `now` for a certificate valid until `not_after`
/// (Unix seconds, inclusive). It is minor within 30 days of expiry, major within 7 days and
/// critical after expiry. `None` means no alarm.
pub fn own_certificate_expiry(router: &str, not_after: i64, now: SystemTime) -> Option<AlarmSpec> {
    let now = unix_seconds(now);
    let remaining = not_after.saturating_sub(now);
    let (severity, message) = if remaining < 0 {
        (
            Severity::Critical,
            format!("Certificate for {router} expired at {}", format_unix(not_after)),
        )
    } else if remaining <= EXPIRY_MAJOR_WINDOW.as_secs() as i64 {
        (Severity::Major, expiring_message(router, remaining, not_after))
    } else if remaining <= EXPIRY_MINOR_WINDOW.as_secs() as i64 {
        (Severity::Minor, expiring_message(router, remaining, not_after))
    } else {
        return None;
    };
    Some(pki_spec(severity, router, Category::System, message))
}

fn expiring_message(router: &str, remaining: i64, not_after: i64) -> String {
    let days = remaining / 86_400;
    format!("Certificate for {router} expires in {days} days, at {}", format_unix(not_after))
}

/// Raises or clears the own-certificate alarms from the certificate's expiry and revocation
/// state at `now`.
pub fn evaluate_own_certificate(
    table: &mut AlarmTable,
    router: &str,
    not_after: i64,
    revoked: Option<&ValidationError>,
    now: SystemTime,
) {
    table.set(AlarmCause::OwnCertificate, own_certificate_expiry(router, not_after, now), now);
    let revoked_spec = revoked.map(|e| {
        pki_spec(
            Severity::Critical,
            router,
            Category::System,
            format!("Certificate for {router} is revoked: {e}"),
        )
    });
    table.set(AlarmCause::OwnCertificateRevoked, revoked_spec, now);
}

/// Builds the alarm raised while ESKM is enabled and the router has no valid signed
/// certificate. It is major: peering still works with a self-signed certificate, and an
/// expired or revoked certificate raises its own critical alarm beside this one.
pub fn no_valid_certificate(router: &str, detail: &str) -> AlarmSpec {
    pki_spec(
        Severity::Major,
        router,
        Category::System,
        format!(
            "Enhanced security key management is enabled but {router} has no valid signed certificate: {detail}"
        ),
    )
}

/// Builds the alarm `Peer <name> certificate is invalid: <reason> - <detail>`.
pub fn peer_certificate_invalid(peer: &str, error: &ValidationError) -> AlarmSpec {
    pki_spec(
        Severity::Critical,
        peer,
        Category::Peer,
        format!("Peer {peer} certificate is invalid: {} - {error}", error.reason()),
    )
}

/// Builds the alarm for a peer whose key or rekey message failed authentication.
pub fn peer_unauthenticated(peer: &str, detail: &str) -> AlarmSpec {
    pki_spec(
        Severity::Major,
        peer,
        Category::Peer,
        format!("Unable to authenticate peer {peer}: {detail}"),
    )
}

/// Builds the alarm for a CRL that could not be fetched or applied. It stays until the CRL
/// is applied.
pub fn crl_unavailable(router: &str, source: &str, detail: &str) -> AlarmSpec {
    pki_spec(
        Severity::Major,
        router,
        Category::System,
        format!("Certificate revocation list {source} cannot be retrieved: {detail}"),
    )
}

/// Process name shown for alarms raised by the dataplane's port handling.
pub const DATAPLANE_PROCESS: &str = "dataplane";

/// Builds the alarm for a port whose Linux interface was deleted or replaced. It stays
/// until the port is bound to an interface of that name again.
pub fn interface_lost(interface: &str, detail: &str) -> AlarmSpec {
    AlarmSpec {
        severity: Severity::Critical,
        source: interface.to_owned(),
        category: Category::Interface,
        process: DATAPLANE_PROCESS.to_owned(),
        message: format!("Interface {interface} is not bound to the dataplane: {detail}"),
    }
}

fn pki_spec(severity: Severity, source: &str, category: Category, message: String) -> AlarmSpec {
    AlarmSpec {
        severity,
        source: source.to_owned(),
        category,
        process: PKI_PROCESS.to_owned(),
        message,
    }
}
