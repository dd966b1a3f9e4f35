//! Errors of the PKI: one enum for certificate path validation, one for loading and storing
//! keys and certificates, one for revocation lists.

use std::fmt;
use std::path::PathBuf;

/// Reason a peer certificate chain was rejected. Each variant names the rule that failed.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidationError {
    /// A certificate or CRL is not valid DER or not a well-formed X.509 structure.
    Malformed { what: &'static str, detail: String },
    /// The chain has more certificates than the validator accepts.
    ChainTooLong { count: usize, max: usize },
    /// `now` is after the certificate's notAfter (Unix seconds).
    Expired { subject: String, not_after: i64 },
    /// `now` is before the certificate's notBefore (Unix seconds).
    NotYetValid { subject: String, not_before: i64 },
    /// An issuing certificate lacks Basic Constraints with `CA:TRUE`.
    IssuerNotCa { issuer: String },
    /// A configured trusted CA certificate without Basic Constraints `CA:TRUE`. `found`
    /// describes what it has instead.
    NotCaCertificate { subject: String, found: &'static str },
    /// An issuing certificate has `CA:TRUE` in a Basic Constraints extension that is not
    /// marked critical.
    BasicConstraintsNotCritical { issuer: String },
    /// The certificate of a router, the peer's or this router's own, is a CA certificate.
    EndEntityIsCa { subject: String },
    /// An issuer's pathLenConstraint allows fewer intermediates than follow it.
    PathLengthExceeded { issuer: String, max: u32, found: u32 },
    /// A Key Usage extension is present but lacks the bit the certificate's role needs.
    KeyUsageMissing { subject: String, usage: &'static str },
    /// A critical extension that the validator does not process.
    UnknownCriticalExtension { subject: String, oid: String },
    /// A signature did not verify under the issuer's public key.
    SignatureInvalid { subject: String },
    /// A signature algorithm outside the allowed set (SHA-1, MD5, DSA, Ed25519, ...).
    UnsupportedSignatureAlgorithm { subject: String, algorithm: String },
    /// A public key type or elliptic curve outside the allowed set.
    UnsupportedKey { subject: String, algorithm: String },
    /// An RSA key shorter than the minimum.
    WeakKey { subject: String, bits: usize, min: usize },
    /// Neither the subject CN nor a SAN URI matches the expected peering-common-name.
    NameMismatch { expected: String, got: String },
    /// No path leads from the certificate to a trusted CA.
    Untrusted { subject: String, issuer: String },
    /// The certificate's serial number is listed in a verified CRL.
    Revoked { subject: String, serial: String, crl: String },
}

impl ValidationError {
    /// Short reason word, used in the `Peer <name> certificate is invalid: <reason> - <detail>`
    /// alarm message.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed { .. } => "malformed",
            Self::ChainTooLong { .. } => "chain-too-long",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not-yet-valid",
            Self::IssuerNotCa { .. } => "issuer-not-ca",
            Self::NotCaCertificate { .. } => "not-ca",
            Self::BasicConstraintsNotCritical { .. } => "basic-constraints-not-critical",
            Self::EndEntityIsCa { .. } => "end-entity-is-ca",
            Self::PathLengthExceeded { .. } => "path-length-exceeded",
            Self::KeyUsageMissing { .. } => "key-usage-missing",
            Self::UnknownCriticalExtension { .. } => "unknown-critical-extension",
            Self::SignatureInvalid { .. } => "signature-invalid",
            Self::UnsupportedSignatureAlgorithm { .. } => "unsupported-signature-algorithm",
            Self::UnsupportedKey { .. } => "unsupported-key",
            Self::WeakKey { .. } => "weak-key",
            Self::NameMismatch { .. } => "name-mismatch",
            Self::Untrusted { .. } => "untrusted",
            Self::Revoked { .. } => "revoked",
        }
    }

    /// True for failures that forbid new sessions whatever the invalid-certificate-behavior:
    /// an expired or revoked peer must redo key exchange before it carries traffic again.
    pub fn blocks_new_sessions(&self) -> bool {
        matches!(self, Self::Expired { .. } | Self::Revoked { .. })
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { what, detail } => write!(f, "malformed {what}: {detail}"),
            Self::ChainTooLong { count, max } => {
                write!(f, "chain of {count} certificates is longer than the maximum {max}")
            }
            Self::Expired { subject, not_after } => {
                write!(f, "certificate {subject} expired at {}", format_unix(*not_after))
            }
            Self::NotYetValid { subject, not_before } => {
                write!(
                    f,
                    "certificate {subject} is not yet valid until {}",
                    format_unix(*not_before)
                )
            }
            Self::IssuerNotCa { issuer } => {
                write!(f, "issuer {issuer} is not a CA (basic constraints CA:TRUE missing)")
            }
            Self::NotCaCertificate { subject, found } => write!(
                f,
                "certificate {subject} is not a CA certificate ({found}); expected a CA \
                 certificate with basicConstraints CA:TRUE"
            ),
            Self::BasicConstraintsNotCritical { issuer } => {
                write!(f, "issuer {issuer} has basic constraints not marked critical")
            }
            Self::EndEntityIsCa { subject } => {
                write!(
                    f,
                    "certificate {subject} is a CA certificate (basicConstraints CA:TRUE), but a \
                     router certificate must be an end-entity certificate"
                )
            }
            Self::PathLengthExceeded { issuer, max, found } => write!(
                f,
                "path length exceeded: issuer {issuer} allows {max} intermediates, found {found}"
            ),
            Self::KeyUsageMissing { subject, usage } => {
                write!(f, "key usage of {subject} lacks {usage}")
            }
            Self::UnknownCriticalExtension { subject, oid } => {
                write!(f, "certificate {subject} has unknown critical extension {oid}")
            }
            Self::SignatureInvalid { subject } => {
                write!(f, "signature of certificate {subject} is invalid")
            }
            Self::UnsupportedSignatureAlgorithm { subject, algorithm } => {
                write!(f, "certificate {subject} uses unsupported signature algorithm {algorithm}")
            }
            Self::UnsupportedKey { subject, algorithm } => {
                write!(f, "certificate {subject} has unsupported key type {algorithm}")
            }
            Self::WeakKey { subject, bits, min } => {
                write!(f, "certificate {subject} has a weak key: {bits} bits, minimum {min}")
            }
            Self::NameMismatch { expected, got } => {
                write!(f, "name mismatch: expected {expected}, got {got}")
            }
            Self::Untrusted { subject, issuer } => write!(
                f,
                "certificate {subject} is untrusted: no path from issuer {issuer} to a trusted CA"
            ),
            Self::Revoked { subject, serial, crl } => {
                write!(f, "certificate {subject} serial {serial} is revoked by CRL {crl}")
            }
        }
    }
}

impl std::error::Error for ValidationError {}

/// Failure to load, create or store the router's own certificate and key.
#[non_exhaustive]
#[derive(Debug)]
pub enum IdentityError {
    /// Reading or writing a file failed.
    Io { path: PathBuf, source: std::io::Error },
    /// The certificate file contains no certificate, or one that does not parse.
    Certificate { path: PathBuf, detail: String },
    /// The private key does not parse or is of an unsupported type.
    PrivateKey { path: PathBuf, detail: String },
    /// The private key does not belong to the certificate.
    KeyMismatch { certificate: PathBuf, key: PathBuf },
    /// A certificate path is configured without a key path, or the reverse.
    Incomplete { detail: &'static str },
    /// Generating the self-signed certificate failed.
    Generate { detail: String },
    /// Signing a message failed.
    Sign { detail: String },
    /// Sealing or unsealing with the TPM failed.
    #[cfg(feature = "tpm")]
    Tpm(super::tpm::TpmError),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Certificate { path, detail } => {
                write!(f, "invalid certificate in {}: {detail}", path.display())
            }
            Self::PrivateKey { path, detail } => {
                write!(f, "invalid private key in {}: {detail}", path.display())
            }
            Self::KeyMismatch { certificate, key } => write!(
                f,
                "private key {} does not match the public key of certificate {}",
                key.display(),
                certificate.display()
            ),
            Self::Incomplete { detail } => write!(f, "incomplete identity configuration: {detail}"),
            Self::Generate { detail } => {
                write!(f, "failed to generate the self-signed certificate: {detail}")
            }
            Self::Sign { detail } => write!(f, "signing failed: {detail}"),
            #[cfg(feature = "tpm")]
            Self::Tpm(e) => write!(f, "tpm: {e}"),
        }
    }
}

impl std::error::Error for IdentityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            #[cfg(feature = "tpm")]
            Self::Tpm(e) => Some(e),
            _ => None,
        }
    }
}

/// Failure to fetch or apply a certificate revocation list.
#[non_exhaustive]
#[derive(Debug)]
pub enum CrlError {
    /// The configured location is neither a file path nor an `http://` URL.
    InvalidSource { source: String, detail: &'static str },
    /// Reading the file or talking to the HTTP server failed.
    Io { source: String, error: std::io::Error },
    /// The HTTP server returned a status other than `200`.
    HttpStatus { source: String, status: String },
    /// The HTTP response is not well formed.
    HttpMalformed { source: String, detail: String },
    /// The body is larger than the cap.
    TooLarge { source: String, max: usize },
    /// The fetch did not finish within the timeout.
    TimedOut { source: String },
    /// The bytes are not a CRL.
    Malformed { source: String, detail: String },
    /// The CRL's signature algorithm is not allowed.
    UnsupportedAlgorithm { source: String, algorithm: String },
    /// The CRL names a trusted CA as issuer but its signature does not verify under it.
    SignatureInvalid { source: String, issuer: String },
}

impl fmt::Display for CrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSource { source, detail } => {
                write!(f, "invalid CRL location {source:?}: {detail}")
            }
            Self::Io { source, error } => write!(f, "failed to fetch CRL {source}: {error}"),
            Self::HttpStatus { source, status } => {
                write!(f, "CRL {source}: HTTP status {status}, expected 200")
            }
            Self::HttpMalformed { source, detail } => {
                write!(f, "CRL {source}: malformed HTTP response: {detail}")
            }
            Self::TooLarge { source, max } => {
                write!(f, "CRL {source} is larger than the maximum {max} bytes")
            }
            Self::TimedOut { source } => write!(f, "fetching CRL {source} timed out"),
            Self::Malformed { source, detail } => write!(f, "malformed CRL {source}: {detail}"),
            Self::UnsupportedAlgorithm { source, algorithm } => {
                write!(f, "CRL {source} uses unsupported signature algorithm {algorithm}")
            }
            Self::SignatureInvalid { source, issuer } => {
                write!(f, "signature of CRL {source} does not verify under issuer {issuer}")
            }
        }
    }
}

impl std::error::Error for CrlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_unix(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day), after Howard
/// Hinnant's `civil_from_days` algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::format_unix;

    #[test]
    fn format_unix_epoch_and_leap_day() {
        assert_eq!(format_unix(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_unix(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_unix(1_798_761_599), "2026-12-31 23:59:59 UTC");
    }
}
