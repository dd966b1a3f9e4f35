//! Path validation of a peer's certificate chain against the trusted CA list: signatures,
//! roles, constraints, validity dates, revocation and the expected peering-common-name.
//!
//! The rules follow RFC 5280 section 6 reduced to what peering needs. There is no policy
//! processing and no name-constraint processing, so a critical certificatePolicies or
//! nameConstraints extension is rejected as an unknown critical extension.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2_010::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use super::crl::RevocationSet;
use super::crypto::{KeyRejection, PublicKey, SignatureAlg};
use super::error::{IdentityError, ValidationError};
use crate::printable::escape_control;

/// Maximum number of certificates a peer may send (its own plus intermediates).
pub const MAX_CHAIN: usize = 8;

/// SAN URI prefix that carries a peering-common-name.
pub const PEERING_URI_PREFIX: &str = "urn:ssr:peering:";

// Extensions this validator processes; any other critical extension rejects the certificate.
const OID_SUBJECT_KEY_ID: &str = "2.5.29.14";
const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_AUTHORITY_KEY_ID: &str = "2.5.29.35";
const OID_EXT_KEY_USAGE: &str = "2.5.29.37";
const KNOWN_EXTENSIONS: [&str; 6] = [
    OID_SUBJECT_KEY_ID,
    OID_KEY_USAGE,
    OID_SUBJECT_ALT_NAME,
    OID_BASIC_CONSTRAINTS,
    OID_AUTHORITY_KEY_ID,
    OID_EXT_KEY_USAGE,
];

/// Detail of a file that holds neither a DER certificate nor a PEM `CERTIFICATE` block.
const NOT_A_CERTIFICATE: &str = "not a DER or PEM certificate";

/// The line that opens a PEM certificate block.
const PEM_BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// The configured trusted CA certificates (`trusted-ca-certificate`), with a generation
/// number that changes whenever the set changes so cached results can be dropped.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    anchors: Vec<Vec<u8>>,
    generation: u64,
}

impl TrustStore {
    /// Creates an empty store: peers are then accepted only with self-signed certificates.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every certificate of a PEM bundle (issuing CA up to root, concatenated). Each
    /// must be a CA certificate (basicConstraints CA:TRUE).
    pub fn add_pem_bundle(&mut self, pem: &[u8]) -> Result<usize, ValidationError> {
        let ders = pem_certificates(pem)?;
        let count = ders.len();
        for der in ders {
            self.add_ca(der)?;
        }
        Ok(count)
    }

    /// Adds the certificates of one CA file: a PEM bundle, or one DER certificate. Each
    /// must be a CA certificate (basicConstraints CA:TRUE).
    pub fn add_certificates(&mut self, bytes: &[u8]) -> Result<usize, ValidationError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(malformed("CA certificate file", "empty file"));
        }
        // A DER certificate starts with a SEQUENCE tag; PEM text never does.
        if bytes.first() == Some(&0x30) {
            if X509Certificate::from_der(bytes).is_err() {
                return Err(malformed("CA certificate file", NOT_A_CERTIFICATE));
            }
            self.add_ca(bytes.to_vec())?;
            return Ok(1);
        }
        if !bytes.windows(PEM_BEGIN.len()).any(|window| window == PEM_BEGIN) {
            return Err(malformed("CA certificate file", NOT_A_CERTIFICATE));
        }
        self.add_pem_bundle(bytes)
    }

    /// Reads PEM bundle files, one per `trusted-ca-certificate` entry.
    pub fn from_pem_files(paths: &[PathBuf]) -> Result<Self, IdentityError> {
        let mut store = Self::new();
        for path in paths {
            let pem = std::fs::read(path)
                .map_err(|source| IdentityError::Io { path: path.clone(), source })?;
            store.add_certificates(&pem).map_err(|e| IdentityError::Certificate {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        }
        Ok(store)
    }

    /// Adds one DER certificate. It must parse; its CA role is checked when it issues.
    pub fn add_der(&mut self, der: Vec<u8>) -> Result<(), ValidationError> {
        parse_certificate(&der)?;
        if !self.anchors.contains(&der) {
            self.anchors.push(der);
            self.generation += 1;
        }
        Ok(())
    }

    /// Adds one configured CA certificate in DER. Path validation accepts an issuer only
    /// with basicConstraints CA:TRUE, so any other certificate is rejected here, where the
    /// configuration is read, instead of failing every chain later.
    fn add_ca(&mut self, der: Vec<u8>) -> Result<(), ValidationError> {
        let not_ca = {
            let cert = parse_certificate(&der)?;
            let bc = cert
                .basic_constraints()
                .map_err(|e| malformed("basic constraints", &e.to_string()))?;
            match bc {
                Some(bc) if bc.value.ca => None,
                Some(_) => Some((name_text(cert.subject()), "basicConstraints CA:FALSE")),
                None => Some((name_text(cert.subject()), "no basicConstraints")),
            }
        };
        if let Some((subject, found)) = not_ca {
            return Err(ValidationError::NotCaCertificate { subject, found });
        }
        self.add_der(der)
    }

    /// Takes the anchors of `other`, as when the configured CAs are read again. The
    /// generation moves past both stores' when the anchors differ, so results cached under
    /// either are not reused. Returns whether the anchors changed.
    pub fn replace_with(&mut self, other: TrustStore) -> bool {
        if self.anchors == other.anchors {
            return false;
        }
        self.generation = self.generation.max(other.generation) + 1;
        self.anchors = other.anchors;
        true
    }

    /// Removes every anchor.
    pub fn clear(&mut self) {
        if !self.anchors.is_empty() {
            self.anchors.clear();
            self.generation += 1;
        }
    }

    /// True when no CA is configured.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// Number of anchors.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Counter bumped on every change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn anchors(&self) -> impl Iterator<Item = &[u8]> {
        self.anchors.iter().map(Vec::as_slice)
    }
}

/// A peer whose certificate chain passed validation. It keeps the peer's public key, which
/// authenticates every later key and rekey message from that peer.
#[derive(Debug, Clone)]
pub struct ValidatedPeer {
    name: String,
    public_key: PublicKey,
    fingerprint: [u8; 32],
    subject: String,
    serial: String,
    not_before: i64,
    not_after: i64,
    self_signed: bool,
}

/// A key-exchange signature did not verify under the peer's certificate key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSignature {
    pub peer: String,
}

impl std::fmt::Display for BadSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "signature from peer {} does not verify under its certificate key", self.peer)
    }
}

impl std::error::Error for BadSignature {}

impl ValidatedPeer {
    /// Verifies a key-exchange message signature made by the peer's certificate key.
    ///
    /// ECDSA signatures are DER `SEQUENCE { r, s }` over SHA-256 (P-256), SHA-384 (P-384) or
    /// SHA-512 (P-521). RSA signatures use SHA-256, with PSS (salt 32 bytes) for
    /// id-RSASSA-PSS keys and PKCS#1 v1.5 for rsaEncryption keys.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), BadSignature> {
        let alg = self.public_key.message_algorithm();
        if self.public_key.verify_with(alg, message, signature) {
            Ok(())
        } else {
            Err(BadSignature { peer: self.name.clone() })
        }
    }

    /// The peering-common-name the chain was validated for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The peer certificate's public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// SHA-256 of the peer certificate's DER.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// Subject distinguished name of the peer certificate.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Serial number, hex with `:` separators.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// Latest notBefore and earliest notAfter over the whole path (Unix seconds): outside
    /// this window the path is no longer valid.
    pub fn validity_window(&self) -> (i64, i64) {
        (self.not_before, self.not_after)
    }

    /// True when the certificate was accepted as self-signed because no CA is configured.
    pub fn is_self_signed(&self) -> bool {
        self.self_signed
    }
}

/// Validates a peer chain: `chain[0]` is the peer's certificate, the rest are intermediates in
/// any order. `now` is the validation time; the notBefore and notAfter seconds themselves are
/// inside the validity period.
pub fn validate_peer(
    chain: &[Vec<u8>],
    expected_name: &str,
    now: SystemTime,
    trust: &TrustStore,
    revocations: &RevocationSet,
) -> Result<ValidatedPeer, ValidationError> {
    validate_peer_at(chain, expected_name, unix_seconds(now), trust, revocations)
}

/// As [`validate_peer`], with `now` in Unix seconds.
pub fn validate_peer_at(
    chain: &[Vec<u8>],
    expected_name: &str,
    now: i64,
    trust: &TrustStore,
    revocations: &RevocationSet,
) -> Result<ValidatedPeer, ValidationError> {
    if chain.is_empty() {
        return Err(malformed("certificate chain", "no certificate"));
    }
    if chain.len() > MAX_CHAIN {
        return Err(ValidationError::ChainTooLong { count: chain.len(), max: MAX_CHAIN });
    }
    let parsed: Vec<X509Certificate<'_>> =
        chain.iter().map(|der| parse_certificate(der)).collect::<Result<_, _>>()?;
    let ee = &parsed[0];

    // The end entity: its name, its role, its extensions, its dates and its key.
    check_name(ee, expected_name)?;
    check_end_entity(ee)?;
    check_extensions(ee)?;
    check_validity(ee, now)?;
    let ee_key = certificate_key(ee)?;

    let mut window = (ee.validity().not_before.timestamp(), ee.validity().not_after.timestamp());
    let self_signed = trust.is_empty();
    if self_signed {
        validate_self_signed(ee, &ee_key, revocations)?;
        tracing::warn!(
            peer = expected_name,
            subject = %ee.subject(),
            "accepting self-signed peer certificate: no trusted CA is configured"
        );
    } else {
        let anchors: Vec<X509Certificate<'_>> =
            trust.anchors().map(parse_certificate).collect::<Result<_, _>>()?;
        let path = build_path(&parsed, &anchors)?;
        check_issuers(&path, now, &mut window)?;
        check_revocation(ee, &path, revocations)?;
    }

    Ok(ValidatedPeer {
        name: expected_name.to_owned(),
        public_key: ee_key,
        fingerprint: fingerprint(&chain[0]),
        subject: name_text(ee.subject()),
        serial: ee.raw_serial_as_string(),
        not_before: window.0,
        not_after: window.1,
        self_signed,
    })
}

/// SHA-256 over a certificate's DER.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// Splits a PEM bundle into the DER of each `CERTIFICATE` block; other blocks are skipped.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, ValidationError> {
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| malformed("PEM", &e.to_string()))?;
        if block.label == "CERTIFICATE" {
            out.push(block.contents);
        }
    }
    if out.is_empty() {
        return Err(malformed("PEM", "no CERTIFICATE block"));
    }
    Ok(out)
}

/// Parses one DER certificate, rejecting trailing bytes and a TBS signature algorithm that
/// differs from the outer one (RFC 5280 section 4.1.1.2).
pub fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, ValidationError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| malformed("certificate", &e.to_string()))?;
    if !rest.is_empty() {
        return Err(malformed("certificate", &format!("{} trailing bytes", rest.len())));
    }
    if cert.tbs_certificate.signature != cert.signature_algorithm {
        return Err(malformed("certificate", "inner and outer signature algorithms differ"));
    }
    Ok(cert)
}

/// Converts a `SystemTime` to Unix seconds, rounding down; times before 1970 are negative.
pub fn unix_seconds(now: SystemTime) -> i64 {
    match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let before = e.duration();
            let secs = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            if before.subsec_nanos() > 0 { -secs - 1 } else { -secs }
        }
    }
}

/// One link of a built path, from the peer certificate towards the trust anchor.
struct Link<'c, 'a> {
    cert: &'c X509Certificate<'a>,
    key: PublicKey,
}

/// Accepts the peer certificate as its own issuer: it must be self-issued and its signature
/// must verify under its own key.
fn validate_self_signed(
    ee: &X509Certificate<'_>,
    ee_key: &PublicKey,
    revocations: &RevocationSet,
) -> Result<(), ValidationError> {
    if ee.subject().as_raw() != ee.issuer().as_raw() {
        return Err(ValidationError::Untrusted {
            subject: name_text(ee.subject()),
            issuer: name_text(ee.issuer()),
        });
    }
    let alg = signature_alg(ee)?;
    if !ee_key.verify_with(alg, ee.tbs_certificate.as_ref(), &ee.signature_value.data) {
        return Err(ValidationError::SignatureInvalid { subject: name_text(ee.subject()) });
    }
    revocations.check(ee, ee.subject().as_raw(), ee_key)
}

/// Builds the path upwards from `chain[0]`. At each step a trusted CA whose subject matches
/// the issuer name and whose key verifies the signature ends the path. Otherwise a matching
/// intermediate from the chain continues it.
fn build_path<'c, 'a>(
    chain: &'c [X509Certificate<'a>],
    anchors: &'c [X509Certificate<'a>],
) -> Result<Vec<Link<'c, 'a>>, ValidationError> {
    let mut path: Vec<Link<'c, 'a>> = Vec::new();
    let mut used: HashSet<usize> = HashSet::from([0]);
    let mut child = &chain[0];

    // Each step uses up one intermediate or ends at an anchor, so the loop is bounded.
    for _ in 0..=chain.len() {
        let alg = signature_alg(child)?;
        let issuer_name = child.issuer().as_raw();
        let mut signature_failed = false;

        for anchor in anchors.iter().filter(|a| a.subject().as_raw() == issuer_name) {
            let key = certificate_key(anchor)?;
            if key.verify_with(alg, child.tbs_certificate.as_ref(), &child.signature_value.data) {
                path.push(Link { cert: anchor, key });
                return Ok(path);
            }
            signature_failed = true;
        }

        let mut next = None;
        for (i, candidate) in chain.iter().enumerate() {
            if used.contains(&i) || candidate.subject().as_raw() != issuer_name {
                continue;
            }
            let key = certificate_key(candidate)?;
            if key.verify_with(alg, child.tbs_certificate.as_ref(), &child.signature_value.data) {
                next = Some((i, key));
                break;
            }
            signature_failed = true;
        }

        let Some((i, key)) = next else {
            if signature_failed {
                return Err(ValidationError::SignatureInvalid {
                    subject: name_text(child.subject()),
                });
            }
            return Err(ValidationError::Untrusted {
                subject: name_text(child.subject()),
                issuer: name_text(child.issuer()),
            });
        };
        used.insert(i);
        path.push(Link { cert: &chain[i], key });
        child = &chain[i];
    }

    Err(ValidationError::Untrusted {
        subject: name_text(chain[0].subject()),
        issuer: name_text(chain[0].issuer()),
    })
}

/// Checks every issuer on the path: CA role, critical Basic Constraints, path length, key
/// usage, extensions and dates. Narrows `window` to the dates of the whole path.
fn check_issuers(
    path: &[Link<'_, '_>],
    now: i64,
    window: &mut (i64, i64),
) -> Result<(), ValidationError> {
    for (index, link) in path.iter().enumerate() {
        let cert = link.cert;
        let issuer = name_text(cert.subject());
        let bc =
            cert.basic_constraints().map_err(|e| malformed("basic constraints", &e.to_string()))?;
        let Some(bc) = bc.filter(|bc| bc.value.ca) else {
            return Err(ValidationError::IssuerNotCa { issuer });
        };
        if !bc.critical {
            return Err(ValidationError::BasicConstraintsNotCritical { issuer });
        }

        // RFC 5280 section 4.2.1.9: pathLenConstraint counts the non-self-issued
        // intermediate certificates that may follow this one in the path.
        if let Some(max) = bc.value.path_len_constraint {
            let found = path[..index]
                .iter()
                .filter(|l| l.cert.subject().as_raw() != l.cert.issuer().as_raw())
                .count() as u32;
            if found > max {
                return Err(ValidationError::PathLengthExceeded { issuer, max, found });
            }
        }

        let ku = cert.key_usage().map_err(|e| malformed("key usage", &e.to_string()))?;
        if ku.is_some_and(|ku| !ku.value.key_cert_sign()) {
            return Err(ValidationError::KeyUsageMissing { subject: issuer, usage: "keyCertSign" });
        }
        check_extensions(cert)?;
        check_validity(cert, now)?;
        window.0 = window.0.max(cert.validity().not_before.timestamp());
        window.1 = window.1.min(cert.validity().not_after.timestamp());
    }
    Ok(())
}

/// Looks up each certificate below the anchor in the CRLs of its issuer.
fn check_revocation(
    peer: &X509Certificate<'_>,
    path: &[Link<'_, '_>],
    revocations: &RevocationSet,
) -> Result<(), ValidationError> {
    // path[0] issued the peer certificate, path[i] issued path[i - 1].
    for (index, link) in path.iter().enumerate() {
        let issuer_name = link.cert.subject().as_raw();
        let child = if index == 0 { peer } else { path[index - 1].cert };
        revocations.check(child, issuer_name, &link.key)?;
    }
    Ok(())
}

/// Checks that the certificate names the router `expected`. A certificate with peering
/// URIs in its subject alternative names names the router of those URIs, which must all
/// agree, and its CN does not count; one without them names the router of its CN. So a
/// certificate speaks for one router, and cannot carry a second identity in the other
/// field.
fn check_name(ee: &X509Certificate<'_>, expected: &str) -> Result<(), ValidationError> {
    let cns: Vec<&str> = ee.subject().iter_common_name().filter_map(|a| a.as_str().ok()).collect();
    let san =
        ee.subject_alternative_name().map_err(|e| malformed("subject alt name", &e.to_string()))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|s| s.value.general_names.iter())
        .filter_map(|n| if let GeneralName::URI(u) = n { Some(*u) } else { None })
        .collect();
    let peering: Vec<&str> =
        uris.iter().filter_map(|u| u.strip_prefix(PEERING_URI_PREFIX)).collect();
    let named = if peering.is_empty() {
        cns.contains(&expected)
    } else {
        peering.iter().all(|name| *name == expected)
    };
    if named {
        return Ok(());
    }

    let mut got: Vec<String> = cns.iter().map(|cn| format!("CN={}", escape_control(cn))).collect();
    got.extend(uris.iter().map(|u| format!("URI:{}", escape_control(u))));
    let got =
        if got.is_empty() { "no common name or peering URI".to_owned() } else { got.join(", ") };
    Err(ValidationError::NameMismatch { expected: expected.to_owned(), got })
}

/// Returns a certificate name as text with its control characters escaped, because the
/// name comes from the peer and ends up in alarms and logs.
fn name_text(name: &X509Name<'_>) -> String {
    escape_control(&name.to_string()).into_owned()
}

fn check_end_entity(ee: &X509Certificate<'_>) -> Result<(), ValidationError> {
    let subject = || name_text(ee.subject());
    let bc = ee.basic_constraints().map_err(|e| malformed("basic constraints", &e.to_string()))?;
    if bc.is_some_and(|bc| bc.value.ca) {
        return Err(ValidationError::EndEntityIsCa { subject: subject() });
    }
    let ku = ee.key_usage().map_err(|e| malformed("key usage", &e.to_string()))?;
    if ku.is_some_and(|ku| !ku.value.digital_signature()) {
        return Err(ValidationError::KeyUsageMissing {
            subject: subject(),
            usage: "digitalSignature",
        });
    }

    // A peering certificate authenticates a TLS-like client or server role.
    let eku =
        ee.extended_key_usage().map_err(|e| malformed("extended key usage", &e.to_string()))?;
    if let Some(eku) = eku {
        let e = eku.value;
        if !(e.any || e.client_auth || e.server_auth) {
            return Err(ValidationError::KeyUsageMissing {
                subject: subject(),
                usage: "extendedKeyUsage clientAuth or serverAuth",
            });
        }
    }
    Ok(())
}

/// Rejects extensions that failed to parse and every critical extension not processed here.
fn check_extensions(cert: &X509Certificate<'_>) -> Result<(), ValidationError> {
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        if let ParsedExtension::ParseError { error } = ext.parsed_extension() {
            return Err(malformed("extension", &format!("{oid}: {error}")));
        }
        if ext.critical && !KNOWN_EXTENSIONS.contains(&oid.as_str()) {
            return Err(ValidationError::UnknownCriticalExtension {
                subject: name_text(cert.subject()),
                oid,
            });
        }
    }
    Ok(())
}

fn check_validity(cert: &X509Certificate<'_>, now: i64) -> Result<(), ValidationError> {
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    if now < not_before {
        return Err(ValidationError::NotYetValid {
            subject: name_text(cert.subject()),
            not_before,
        });
    }
    if now > not_after {
        return Err(ValidationError::Expired { subject: name_text(cert.subject()), not_after });
    }
    Ok(())
}

fn signature_alg(cert: &X509Certificate<'_>) -> Result<SignatureAlg, ValidationError> {
    SignatureAlg::from_identifier(&cert.signature_algorithm).map_err(|algorithm| {
        ValidationError::UnsupportedSignatureAlgorithm {
            subject: name_text(cert.subject()),
            algorithm,
        }
    })
}

/// Decodes a certificate's public key, mapping a rejected key to the matching variant.
pub(crate) fn certificate_key(cert: &X509Certificate<'_>) -> Result<PublicKey, ValidationError> {
    let subject = || name_text(cert.subject());
    PublicKey::from_spki(cert.public_key()).map_err(|rejection| match rejection {
        KeyRejection::Unsupported(algorithm) => {
            ValidationError::UnsupportedKey { subject: subject(), algorithm }
        }
        KeyRejection::Weak(bits) => {
            ValidationError::WeakKey { subject: subject(), bits, min: super::crypto::MIN_RSA_BITS }
        }
        KeyRejection::Malformed(detail) => malformed("public key", &detail),
    })
}

fn malformed(what: &'static str, detail: &str) -> ValidationError {
    ValidationError::Malformed { what, detail: detail.to_owned() }
}
