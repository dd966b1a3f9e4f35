//! Certificate revocation lists (`certificate-revocation-list`): where they come from (a file
//! or an `http://` URL), the poll schedule, parsing and signature checks, and the set of
//! revoked serials consulted by peer validation.
//!
//! The poller is pure: `due(now)` reports when to fetch and `apply(now, bytes)` takes the
//! fetched bytes. The daemon does the fetching, with [`CrlSource::fetch`] or its own I/O.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::crypto::{PublicKey, SignatureAlg};
use super::error::{CrlError, ValidationError};
use super::http::{host_text, http_get};
use super::validate::{TrustStore, certificate_key, fingerprint, parse_certificate};

/// Default cap on a fetched CRL body.
pub const DEFAULT_MAX_CRL_BYTES: usize = 8 * 1024 * 1024;

/// Location of a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlSource {
    /// A local file, DER or PEM.
    File(PathBuf),
    /// A plain-HTTP URL.
    Http { host: String, port: u16, path: String },
}

impl CrlSource {
    /// Parses a configured location: `http://host[:port]/path`, `file:///path` or an
    /// absolute path. HTTPS is not supported: CRLs are signed, so transport security adds
    /// only confidentiality of which CRL is fetched.
    pub fn parse(location: &str) -> Result<Self, CrlError> {
        let invalid = |detail| CrlError::InvalidSource { source: location.to_owned(), detail };
        if let Some(rest) = location.strip_prefix("http://") {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            // RFC 3986 section 3.2.2: an IPv6 address is written in brackets.
            let (host, port_text) = if let Some(bracketed) = authority.strip_prefix('[') {
                let (host, after) =
                    bracketed.split_once(']').ok_or_else(|| invalid("unclosed '[' in host"))?;
                (host, after.strip_prefix(':'))
            } else {
                match authority.rsplit_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (authority, None),
                }
            };
            let port = match port_text {
                Some(p) => p.parse::<u16>().map_err(|_| invalid("port is not a number"))?,
                None => 80,
            };
            if host.is_empty() {
                return Err(invalid("missing host"));
            }
            return Ok(Self::Http { host: host.to_owned(), port, path: path.to_owned() });
        }
        if location.starts_with("https://") {
            return Err(invalid("https is not supported, use http:// or a file path"));
        }
        let path = location.strip_prefix("file://").unwrap_or(location);
        if !path.starts_with('/') {
            return Err(invalid("expected an http:// URL or an absolute file path"));
        }
        Ok(Self::File(PathBuf::from(path)))
    }

    /// Text of the location, as configured.
    pub fn display(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            Self::Http { host, port, path } => format!("http://{}:{port}{path}", host_text(host)),
        }
    }

    /// Reads the CRL bytes: the whole file, or the body of an HTTP/1.1 GET. The fetch gives
    /// up after `timeout` in total and rejects bodies over `max_bytes`.
    pub fn fetch(&self, timeout: Duration, max_bytes: usize) -> Result<Vec<u8>, CrlError> {
        match self {
            Self::File(path) => {
                let io = |error| CrlError::Io { source: self.display(), error };
                let len = std::fs::metadata(path).map_err(io)?.len();
                if len > max_bytes as u64 {
                    return Err(CrlError::TooLarge { source: self.display(), max: max_bytes });
                }
                std::fs::read(path).map_err(io)
            }
            Self::Http { host, port, path } => {
                http_get(&self.display(), host, *port, path, timeout, max_bytes)
            }
        }
    }
}

/// Result of applying fetched CRL bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlUpdate {
    /// Same bytes as last time; nothing changed.
    Unchanged,
    /// The list was replaced; `generation` is the new [`RevocationSet::generation`].
    Updated { entries: usize, generation: u64 },
}

/// Poll schedule of one configured CRL.
#[derive(Debug, Clone)]
pub struct CrlPoller {
    source: CrlSource,
    interval: Duration,
    retry: Duration,
    next_due: Option<SystemTime>,
    failures: u32,
}

impl CrlPoller {
    /// Creates a poller that is due at once, then every `interval` after a successful fetch
    /// and `retry` after a failed one.
    pub fn new(source: CrlSource, interval: Duration, retry: Duration) -> Self {
        Self { source, interval, retry, next_due: None, failures: 0 }
    }

    /// The CRL location.
    pub fn source(&self) -> &CrlSource {
        &self.source
    }

    /// True when the CRL should be fetched at `now`.
    pub fn due(&self, now: SystemTime) -> bool {
        self.next_due.is_none_or(|t| now >= t)
    }

    /// Time of the next fetch; `None` before the first one.
    pub fn next_due(&self) -> Option<SystemTime> {
        self.next_due
    }

    /// Number of failed fetches or applies since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Parses and checks fetched bytes and stores them in `set`; schedules the next poll.
    pub fn apply(
        &mut self,
        now: SystemTime,
        bytes: &[u8],
        set: &mut RevocationSet,
        trust: &TrustStore,
    ) -> Result<CrlUpdate, CrlError> {
        let result = RevocationList::parse(&self.source.display(), bytes)
            .and_then(|list| set.insert(list, trust));
        match &result {
            Ok(update) => {
                self.failures = 0;
                self.next_due = Some(now + self.interval);
                tracing::debug!(crl = %self.source.display(), ?update, "CRL applied");
            }
            Err(e) => {
                self.fetch_failed(now);
                tracing::warn!(crl = %self.source.display(), error = %e, "CRL rejected");
            }
        }
        result
    }

    /// Makes the CRL due at once, as when the operator asks for the lists to be read again.
    pub fn due_now(&mut self) {
        self.next_due = None;
    }

    /// Records a failed fetch and schedules a retry.
    pub fn fetch_failed(&mut self, now: SystemTime) {
        self.failures = self.failures.saturating_add(1);
        self.next_due = Some(now + self.retry);
    }
}

/// One parsed CRL: issuer, revoked serials and what is needed to check its signature.
#[derive(Debug, Clone)]
pub struct RevocationList {
    source: String,
    digest: [u8; 32],
    issuer: Vec<u8>,
    issuer_display: String,
    serials: HashSet<Vec<u8>>,
    this_update: i64,
    next_update: Option<i64>,
    algorithm: SignatureAlg,
    tbs: Vec<u8>,
    signature: Vec<u8>,
}

impl RevocationList {
    /// Parses a CRL in DER, or in PEM with an `X509 CRL` block.
    pub fn parse(source: &str, bytes: &[u8]) -> Result<Self, CrlError> {
        let malformed = |detail: String| CrlError::Malformed { source: source.to_owned(), detail };
        let der = if bytes.starts_with(b"-----BEGIN") {
            let (_, pem) = x509_parser::pem::parse_x509_pem(bytes)
                .map_err(|e| malformed(format!("PEM: {e}")))?;
            if pem.label != "X509 CRL" {
                return Err(malformed(format!("PEM label {:?}, expected \"X509 CRL\"", pem.label)));
            }
            pem.contents
        } else {
            bytes.to_vec()
        };

        let (rest, crl) =
            CertificateRevocationList::from_der(&der).map_err(|e| malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(malformed(format!("{} trailing bytes", rest.len())));
        }
        let algorithm =
            SignatureAlg::from_identifier(&crl.signature_algorithm).map_err(|algorithm| {
                CrlError::UnsupportedAlgorithm { source: source.to_owned(), algorithm }
            })?;
        let serials =
            crl.iter_revoked_certificates().map(|r| normalize_serial(r.raw_serial())).collect();

        Ok(Self {
            source: source.to_owned(),
            digest: fingerprint(&der),
            issuer: crl.issuer().as_raw().to_vec(),
            issuer_display: crl.issuer().to_string(),
            serials,
            this_update: crl.last_update().timestamp(),
            next_update: crl.next_update().map(|t| t.timestamp()),
            algorithm,
            tbs: crl.tbs_cert_list.as_ref().to_vec(),
            signature: crl.signature_value.data.to_vec(),
        })
    }

    /// Location the list came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Issuer distinguished name.
    pub fn issuer(&self) -> &str {
        &self.issuer_display
    }

    /// Number of revoked serials.
    pub fn len(&self) -> usize {
        self.serials.len()
    }

    /// True when nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.serials.is_empty()
    }

    /// Returns thisUpdate and nextUpdate, Unix seconds.
    ///
    /// NOTE: a list past its nextUpdate is still consulted; only the poller's fetch
    /// failures raise an alarm.
    pub fn updates(&self) -> (i64, Option<i64>) {
        (self.this_update, self.next_update)
    }

    fn signed_by(&self, key: &PublicKey) -> bool {
        key.verify_with(self.algorithm, &self.tbs, &self.signature)
    }
}

/// All CRLs in force, keyed by location, with a generation counter for caches.
#[derive(Debug, Clone, Default)]
pub struct RevocationSet {
    lists: BTreeMap<String, RevocationList>,
    generation: u64,
}

impl RevocationSet {
    /// Creates an empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counter bumped on every change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The stored lists.
    pub fn lists(&self) -> impl Iterator<Item = &RevocationList> {
        self.lists.values()
    }

    /// Stores a list, replacing the one from the same location. When the issuer is a trusted
    /// CA the signature is checked now and a bad one rejects the list, keeping the old one.
    /// Lists from other issuers (intermediates) are checked against the issuer's key each
    /// time they are consulted, and never count unless that check passes.
    pub fn insert(
        &mut self,
        list: RevocationList,
        trust: &TrustStore,
    ) -> Result<CrlUpdate, CrlError> {
        if self.lists.get(&list.source).is_some_and(|old| old.digest == list.digest) {
            return Ok(CrlUpdate::Unchanged);
        }
        if let Some(key) = trusted_issuer_key(trust, &list.issuer)
            && !list.signed_by(&key)
        {
            return Err(CrlError::SignatureInvalid {
                source: list.source.clone(),
                issuer: list.issuer_display.clone(),
            });
        }
        let entries = list.len();
        self.lists.insert(list.source.clone(), list);
        self.generation += 1;
        Ok(CrlUpdate::Updated { entries, generation: self.generation })
    }

    /// Drops the list from `source`.
    pub fn remove(&mut self, source: &str) -> bool {
        let removed = self.lists.remove(source).is_some();
        if removed {
            self.generation += 1;
        }
        removed
    }

    /// Checks `cert` against every list issued by `issuer_name` whose signature verifies under
    /// `issuer_key`.
    pub(crate) fn check(
        &self,
        cert: &X509Certificate<'_>,
        issuer_name: &[u8],
        issuer_key: &PublicKey,
    ) -> Result<(), ValidationError> {
        let serial = normalize_serial(cert.raw_serial());
        for list in self.lists.values().filter(|l| l.issuer == issuer_name) {
            if !list.signed_by(issuer_key) {
                tracing::warn!(crl = %list.source, issuer = %list.issuer_display,
                    "ignoring CRL whose signature does not verify under its issuer");
                continue;
            }
            if list.serials.contains(&serial) {
                return Err(ValidationError::Revoked {
                    subject: crate::printable::escape_control(&cert.subject().to_string())
                        .into_owned(),
                    serial: cert.raw_serial_as_string(),
                    crl: list.source.clone(),
                });
            }
        }
        Ok(())
    }

    /// Checks the router's own certificate: against CRLs of its issuing trusted CA, or its
    /// own CRLs when it is self-signed. Returns the `Revoked` error when it is listed.
    pub fn check_own(&self, cert_der: &[u8], trust: &TrustStore) -> Result<(), ValidationError> {
        let cert = parse_certificate(cert_der)?;
        let issuer = cert.issuer().as_raw();
        if issuer == cert.subject().as_raw() {
            let key = certificate_key(&cert)?;
            return self.check(&cert, issuer, &key);
        }
        match trusted_issuer_key(trust, issuer) {
            Some(key) => self.check(&cert, issuer, &key),
            None => Ok(()),
        }
    }
}

/// Finds the key of the trusted CA named `issuer`, if one is configured.
fn trusted_issuer_key(trust: &TrustStore, issuer: &[u8]) -> Option<PublicKey> {
    trust
        .anchors()
        .filter_map(|der| parse_certificate(der).ok())
        .filter(|anchor| anchor.subject().as_raw() == issuer)
        .find_map(|anchor| certificate_key(&anchor).ok())
}

/// Strips leading zero bytes so serials compare as integers.
fn normalize_serial(raw: &[u8]) -> Vec<u8> {
    let start = raw.iter().take_while(|b| **b == 0).count();
    raw[start..].to_vec()
}
