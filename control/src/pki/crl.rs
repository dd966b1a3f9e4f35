//! Certificate revocation lists (`certificate-revocation-list`): where they come from (a file
//! or an `http://` URL), the poll schedule, parsing and signature checks, and the set of
//! revoked serials consulted by peer validation.
//!
//! The poller is pure: `due(now)` reports when to fetch and `apply(now, bytes)` takes the
//! fetched bytes. The daemon does the fetching, with [`CrlSource::fetch`] or its own I/O.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::crypto::{PublicKey, SignatureAlg};
use super::error::{CrlError, ValidationError};
use super::validate::{TrustStore, certificate_key, fingerprint, parse_certificate};

/// Default cap on a fetched CRL body.
pub const DEFAULT_MAX_CRL_BYTES: usize = 8 * 1024 * 1024;

/// Cap on the HTTP status line and headers.
const MAX_HTTP_HEADER_BYTES: usize = 16 * 1024;

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
                    subject: cert.subject().to_string(),
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

/// Writes an IPv6 address in brackets, as URLs and the Host header need.
fn host_text(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_owned() }
}

/// Strips leading zero bytes so serials compare as integers.
fn normalize_serial(raw: &[u8]) -> Vec<u8> {
    let start = raw.iter().take_while(|b| **b == 0).count();
    raw[start..].to_vec()
}

/// Fetches `path` with a minimal HTTP/1.1 GET and `Connection: close`. The whole response is
/// read up to the caps, and both `Content-Length` and chunked bodies are decoded.
fn http_get(
    source: &str,
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
    max_bytes: usize,
) -> Result<Vec<u8>, CrlError> {
    let deadline = Instant::now() + timeout;
    let io = |error| CrlError::Io { source: source.to_owned(), error };
    let timed_out = || CrlError::TimedOut { source: source.to_owned() };

    // NOTE: name resolution goes through the system resolver and is not bounded by `timeout`;
    // configure CRL URLs with an address or a name the local resolver answers quickly.
    let addrs: Vec<_> = (host, port).to_socket_addrs().map_err(io)?.collect();
    let mut last_error = None;
    let mut stream = None;
    for addr in addrs {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timed_out());
        }
        match TcpStream::connect_timeout(&addr, remaining) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(mut stream) = stream else {
        return Err(match last_error {
            Some(e) if e.kind() == std::io::ErrorKind::TimedOut => timed_out(),
            Some(e) => io(e),
            None => io(std::io::Error::new(std::io::ErrorKind::NotFound, "no address")),
        });
    };

    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: svrd\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        host_text(host)
    );
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    stream.write_all(request.as_bytes()).map_err(io)?;

    let cap = max_bytes.saturating_add(MAX_HTTP_HEADER_BYTES);
    let mut response = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timed_out());
        }
        stream.set_read_timeout(Some(remaining)).map_err(io)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if response.len() > cap {
                    return Err(CrlError::TooLarge { source: source.to_owned(), max: max_bytes });
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    parse_http_response(source, &response, max_bytes)
}

fn parse_http_response(
    source: &str,
    response: &[u8],
    max_bytes: usize,
) -> Result<Vec<u8>, CrlError> {
    let malformed = |detail: &str| CrlError::HttpMalformed {
        source: source.to_owned(),
        detail: detail.to_owned(),
    };
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(malformed("no end of headers"));
    };
    if end > MAX_HTTP_HEADER_BYTES {
        return Err(malformed("headers too long"));
    }
    let head =
        std::str::from_utf8(&response[..end]).map_err(|_| malformed("headers are not UTF-8"))?;
    let body = &response[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(malformed("status line is not HTTP/1.x"));
    }
    if status != "200" {
        return Err(CrlError::HttpStatus {
            source: source.to_owned(),
            status: status_line.to_owned(),
        });
    }

    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(malformed("header line without ':'"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length =
                Some(value.parse::<usize>().map_err(|_| malformed("bad Content-Length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
            if !chunked {
                return Err(malformed("unsupported Transfer-Encoding"));
            }
        }
    }

    let too_large = || CrlError::TooLarge { source: source.to_owned(), max: max_bytes };
    if chunked {
        return decode_chunked(body, max_bytes).map_err(|e| match e {
            ChunkError::TooLarge => too_large(),
            ChunkError::Malformed(d) => malformed(d),
        });
    }
    match content_length {
        Some(len) if len > max_bytes => Err(too_large()),
        Some(len) if body.len() < len => Err(malformed("body shorter than Content-Length")),
        Some(len) => Ok(body[..len].to_vec()),
        None if body.len() > max_bytes => Err(too_large()),
        None => Ok(body.to_vec()),
    }
}

enum ChunkError {
    TooLarge,
    Malformed(&'static str),
}

/// RFC 9112 section 7.1: chunk-size in hex, optional extensions, CRLF, data, CRLF; a zero
/// chunk ends the body (trailers are ignored).
fn decode_chunked(mut body: &[u8], max_bytes: usize) -> Result<Vec<u8>, ChunkError> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return Err(ChunkError::Malformed("chunk size line without CRLF"));
        };
        let line =
            std::str::from_utf8(&body[..eol]).map_err(|_| ChunkError::Malformed("chunk size"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ChunkError::Malformed("chunk size"))?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if out.len().saturating_add(size) > max_bytes {
            return Err(ChunkError::TooLarge);
        }
        if body.len() < size + 2 || &body[size..size + 2] != b"\r\n" {
            return Err(ChunkError::Malformed("truncated chunk"));
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}
