//! Signature algorithms and public keys allowed in certificates, CRLs and key-exchange
//! messages, and the signature checks over them (RustCrypto p256/p384/p521 and rsa).
//!
//! Allowed: ECDSA on P-256, P-384 and P-521 with SHA-256/384/512; RSA PKCS#1 v1.5 and
//! RSASSA-PSS with SHA-256/384/512 and keys of at least 2048 bits. Everything else (SHA-1,
//! MD5, DSA, Ed25519, other curves) is rejected.

use ecdsa::signature::hazmat::PrehashVerifier;
use rsa::traits::PublicKeyParts;
use sha2_010::{Digest, Sha256, Sha384, Sha512};
use x509_parser::signature_algorithm::RsaSsaPssParams;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

/// Minimum RSA modulus size in bits.
pub const MIN_RSA_BITS: usize = 2048;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_MGF1: &str = "1.2.840.113549.1.1.8";
const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const OID_SHA384: &str = "2.16.840.1.101.3.4.2.2";
const OID_SHA512: &str = "2.16.840.1.101.3.4.2.3";

/// Hash function of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    fn from_oid(oid: &str) -> Option<Self> {
        match oid {
            OID_SHA256 => Some(Self::Sha256),
            OID_SHA384 => Some(Self::Sha384),
            OID_SHA512 => Some(Self::Sha512),
            _ => None,
        }
    }

    fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(message).to_vec(),
            Self::Sha384 => Sha384::digest(message).to_vec(),
            Self::Sha512 => Sha512::digest(message).to_vec(),
        }
    }

    fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

/// An allowed signature algorithm, read from an X.509 AlgorithmIdentifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlg {
    /// ECDSA, signature DER-encoded as `SEQUENCE { r, s }`.
    Ecdsa(HashAlg),
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1(HashAlg),
    /// RSASSA-PSS with MGF1 over the same hash and the given salt length in bytes.
    RsaPss { hash: HashAlg, salt_len: usize },
}

impl SignatureAlg {
    /// Reads an AlgorithmIdentifier, or returns its OID as text when it is not allowed.
    pub fn from_identifier(id: &AlgorithmIdentifier<'_>) -> Result<Self, String> {
        let oid = id.algorithm.to_id_string();
        let alg = match oid.as_str() {
            "1.2.840.10045.4.3.2" => Self::Ecdsa(HashAlg::Sha256),
            "1.2.840.10045.4.3.3" => Self::Ecdsa(HashAlg::Sha384),
            "1.2.840.10045.4.3.4" => Self::Ecdsa(HashAlg::Sha512),
            "1.2.840.113549.1.1.11" => Self::RsaPkcs1(HashAlg::Sha256),
            "1.2.840.113549.1.1.12" => Self::RsaPkcs1(HashAlg::Sha384),
            "1.2.840.113549.1.1.13" => Self::RsaPkcs1(HashAlg::Sha512),
            OID_RSASSA_PSS => return Self::from_pss_params(id, &oid),
            _ => return Err(algorithm_name(&oid)),
        };
        Ok(alg)
    }

    /// Reads RSASSA-PSS parameters (RFC 4055 section 3.1): the hash, the mask generation
    /// function and the salt length. Only MGF1 over the same SHA-2 hash and trailer field 1
    /// are allowed.
    fn from_pss_params(id: &AlgorithmIdentifier<'_>, oid: &str) -> Result<Self, String> {
        let Some(any) = id.parameters.as_ref() else {
            return Err(format!("{oid} without parameters"));
        };
        let params =
            RsaSsaPssParams::try_from(any).map_err(|_| format!("{oid} (bad parameters)"))?;
        let hash_oid = params.hash_algorithm_oid().to_id_string();
        let Some(hash) = HashAlg::from_oid(&hash_oid) else {
            return Err(format!("rsassa-pss with hash {}", algorithm_name(&hash_oid)));
        };
        let mgf =
            params.mask_gen_algorithm().map_err(|_| format!("{oid} (bad mask generation)"))?;
        if mgf.mgf.to_id_string() != OID_MGF1 || mgf.hash.to_id_string() != hash_oid {
            return Err(format!("rsassa-pss with mask generation {} over {}", mgf.mgf, mgf.hash));
        }
        if params.trailer_field() != 1 {
            return Err(format!("rsassa-pss with trailer field {}", params.trailer_field()));
        }
        let salt_len = params.salt_length() as usize;
        Ok(Self::RsaPss { hash, salt_len })
    }
}

/// Names the common rejected algorithms so errors read better than a bare OID.
fn algorithm_name(oid: &str) -> String {
    let name = match oid {
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10040.4.3" => "dsa-with-sha1",
        "2.16.840.1.101.3.4.3.2" => "dsa-with-sha256",
        "1.3.101.112" => "ed25519",
        "1.3.101.113" => "ed448",
        "1.3.14.3.2.26" => "sha1",
        _ => return oid.to_owned(),
    };
    format!("{name} ({oid})")
}

/// A public key of an allowed type.
#[derive(Clone)]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(Box<p521::ecdsa::VerifyingKey>),
    /// RSA; `pss` is set when the key is an id-RSASSA-PSS key (RFC 4055), which may only make
    /// PSS signatures.
    Rsa {
        key: rsa::RsaPublicKey,
        pss: bool,
    },
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.describe())
    }
}

/// Reason a public key was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRejection {
    /// Key type or curve not allowed; carries the OID or curve name.
    Unsupported(String),
    /// RSA key shorter than [`MIN_RSA_BITS`].
    Weak(usize),
    /// The key bytes do not decode.
    Malformed(String),
}

impl PublicKey {
    /// Decodes a SubjectPublicKeyInfo, enforcing the allowed key types and sizes.
    pub fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, KeyRejection> {
        let oid = spki.algorithm.algorithm.to_id_string();
        let bits = spki.subject_public_key.data.as_ref();
        match oid.as_str() {
            OID_EC_PUBLIC_KEY => Self::ec_from_spki(spki, bits),
            OID_RSA_ENCRYPTION | OID_RSASSA_PSS => {
                let key = rsa_from_pkcs1(bits)?;
                Ok(Self::Rsa { key, pss: oid == OID_RSASSA_PSS })
            }
            _ => Err(KeyRejection::Unsupported(algorithm_name(&oid))),
        }
    }

    fn ec_from_spki(spki: &SubjectPublicKeyInfo<'_>, point: &[u8]) -> Result<Self, KeyRejection> {
        // RFC 5480 section 2.1.1: the parameters are a namedCurve OID.
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string())
            .ok_or_else(|| KeyRejection::Unsupported("ecPublicKey without named curve".into()))?;
        let bad = |e: ecdsa::Error| KeyRejection::Malformed(format!("ec point: {e}"));
        match curve.as_str() {
            OID_P256 => {
                Ok(Self::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?))
            }
            OID_P384 => {
                Ok(Self::P384(p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?))
            }
            OID_P521 => Ok(Self::P521(Box::new(
                p521::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?,
            ))),
            other => Err(KeyRejection::Unsupported(format!("elliptic curve {other}"))),
        }
    }

    /// Short description such as `ECDSA P-256` or `RSA 3072`.
    pub fn describe(&self) -> String {
        match self {
            Self::P256(_) => "ECDSA P-256".into(),
            Self::P384(_) => "ECDSA P-384".into(),
            Self::P521(_) => "ECDSA P-521".into(),
            Self::Rsa { key, pss: false } => format!("RSA {}", key.n().bits()),
            Self::Rsa { key, pss: true } => format!("RSA-PSS {}", key.n().bits()),
        }
    }

    /// Verifies `signature` over `message` with an explicit algorithm (certificates, CRLs).
    pub fn verify_with(&self, alg: SignatureAlg, message: &[u8], signature: &[u8]) -> bool {
        match (self, alg) {
            (Self::P256(k), SignatureAlg::Ecdsa(h)) => {
                ecdsa_verify!(p256, k, h, message, signature)
            }
            (Self::P384(k), SignatureAlg::Ecdsa(h)) => {
                ecdsa_verify!(p384, k, h, message, signature)
            }
            (Self::P521(k), SignatureAlg::Ecdsa(h)) => {
                ecdsa_verify!(p521, k, h, message, signature)
            }
            (Self::Rsa { key, pss: false }, SignatureAlg::RsaPkcs1(h)) => {
                let digest = h.digest(message);
                let scheme = match h {
                    HashAlg::Sha256 => rsa::Pkcs1v15Sign::new::<Sha256>(),
                    HashAlg::Sha384 => rsa::Pkcs1v15Sign::new::<Sha384>(),
                    HashAlg::Sha512 => rsa::Pkcs1v15Sign::new::<Sha512>(),
                };
                key.verify(scheme, &digest, signature).is_ok()
            }
            (Self::Rsa { key, .. }, SignatureAlg::RsaPss { hash, salt_len }) => {
                let digest = hash.digest(message);
                let scheme = match hash {
                    HashAlg::Sha256 => rsa::Pss::new_with_salt::<Sha256>(salt_len),
                    HashAlg::Sha384 => rsa::Pss::new_with_salt::<Sha384>(salt_len),
                    HashAlg::Sha512 => rsa::Pss::new_with_salt::<Sha512>(salt_len),
                };
                key.verify(scheme, &digest, signature).is_ok()
            }
            _ => false,
        }
    }

    /// Returns the algorithm of key-exchange signatures made with this key: ECDSA with the hash
    /// matched to the curve, RSA with SHA-256 in PSS (salt = hash length) for id-RSASSA-PSS keys
    /// and PKCS#1 v1.5 for rsaEncryption keys.
    pub fn message_algorithm(&self) -> SignatureAlg {
        match self {
            Self::P256(_) => SignatureAlg::Ecdsa(HashAlg::Sha256),
            Self::P384(_) => SignatureAlg::Ecdsa(HashAlg::Sha384),
            Self::P521(_) => SignatureAlg::Ecdsa(HashAlg::Sha512),
            Self::Rsa { pss: false, .. } => SignatureAlg::RsaPkcs1(HashAlg::Sha256),
            Self::Rsa { pss: true, .. } => SignatureAlg::RsaPss {
                hash: HashAlg::Sha256,
                salt_len: HashAlg::Sha256.output_len(),
            },
        }
    }
}

fn rsa_from_pkcs1(bits: &[u8]) -> Result<rsa::RsaPublicKey, KeyRejection> {
    use rsa::pkcs1::DecodeRsaPublicKey;

    // Decoding through `rsa` rejects moduli above its own maximum (4096 bits by default), so
    // the size check happens on the parsed modulus first.
    let parsed = rsa::pkcs1::RsaPublicKey::try_from(bits)
        .map_err(|e| KeyRejection::Malformed(format!("rsa public key: {e}")))?;
    let modulus = parsed.modulus.as_bytes();
    let leading = modulus.iter().take_while(|b| **b == 0).count();
    let significant = &modulus[leading..];
    let size = match significant.first() {
        Some(first) => (significant.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    };
    if size < MIN_RSA_BITS {
        return Err(KeyRejection::Weak(size));
    }
    rsa::RsaPublicKey::from_pkcs1_der(bits)
        .map_err(|e| KeyRejection::Malformed(format!("rsa public key: {e}")))
}

/// Verifies a DER-encoded ECDSA signature over the `hash` digest of `message`. ECDSA accepts
/// a digest of any length (FIPS 186-5 section 6.4.1 truncates it to the curve order size).
macro_rules! ecdsa_verify {
    ($curve:ident, $key:expr, $hash:expr, $message:expr, $signature:expr) => {{
        match $curve::ecdsa::Signature::from_der($signature) {
            Ok(sig) => $key.verify_prehash(&$hash.digest($message), &sig).is_ok(),
            Err(_) => false,
        }
    }};
}
use ecdsa_verify;
