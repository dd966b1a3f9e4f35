//! Test certificate authority built with rcgen: CAs, intermediates and peer certificates with
//! P-256, P-384, P-521, RSA and Ed25519 keys, plus byte patches for cases rcgen cannot make.
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PublicKeyData, RevokedCertParams, SanType, SerialNumber, SignatureAlgorithm, SigningKey,
};
use time::OffsetDateTime;

/// Validation time used by the tests: 2027-01-15 08:00:00 UTC.
pub const NOW: i64 = 1_800_000_000;
pub const DAY: i64 = 86_400;

pub fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

pub fn system_time(secs: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
}

/// A test key: ring-backed through rcgen, P-521 through RustCrypto, or public only.
pub enum Key {
    Ring(KeyPair),
    P521 {
        key: p521::ecdsa::SigningKey,
        point: Vec<u8>,
    },
    PublicOnly(rcgen::SubjectPublicKeyInfo),
    /// Signs with `inner` after applying `patches` to the to-be-signed bytes; certificates it
    /// issues get the same patches, so their signatures stay valid.
    Patching {
        inner: Box<Key>,
        patches: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

impl Key {
    pub fn p256() -> Self {
        Key::Ring(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap())
    }
    pub fn p384() -> Self {
        Key::Ring(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap())
    }
    pub fn ed25519() -> Self {
        Key::Ring(KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap())
    }
    pub fn p521() -> Self {
        let key = p521::ecdsa::SigningKey::random(&mut rand_core_06::OsRng);
        let point =
            p521::ecdsa::VerifyingKey::from(&key).to_encoded_point(false).as_bytes().to_vec();
        Key::P521 { key, point }
    }
    /// RSA key of `bits` with SHA-256 signatures (ring signs RSA from PKCS#8).
    pub fn rsa(bits: usize) -> Self {
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rand_core_06::OsRng, bits).unwrap();
        let der = key.to_pkcs8_der().unwrap();
        Key::Ring(
            KeyPair::from_pkcs8_der_and_sign_algo(&der.as_bytes().into(), &rcgen::PKCS_RSA_SHA256)
                .unwrap(),
        )
    }
    /// Only the public half of an RSA key of `bits` (ring cannot sign with keys under 2048).
    pub fn rsa_public(bits: usize) -> Self {
        use rsa::pkcs8::EncodePublicKey;
        let key = rsa::RsaPrivateKey::new(&mut rand_core_06::OsRng, bits).unwrap();
        let spki = rsa::RsaPublicKey::from(&key).to_public_key_der().unwrap();
        Key::PublicOnly(rcgen::SubjectPublicKeyInfo::from_der(spki.as_bytes()).unwrap())
    }

    /// PKCS#8 DER of the private key.
    pub fn pkcs8(&self) -> Vec<u8> {
        match self {
            Key::Ring(k) => k.serialize_der(),
            Key::P521 { key, .. } => {
                use p521::pkcs8::EncodePrivateKey;
                let sk = p521::SecretKey::from_bytes(&key.to_bytes()).unwrap();
                sk.to_pkcs8_der().unwrap().as_bytes().to_vec()
            }
            Key::PublicOnly(_) => panic!("no private key"),
            Key::Patching { inner, .. } => inner.pkcs8(),
        }
    }

    fn is_p521(&self) -> bool {
        matches!(self, Key::P521 { .. })
    }
}

impl PublicKeyData for Key {
    fn der_bytes(&self) -> &[u8] {
        match self {
            Key::Ring(k) => k.der_bytes(),
            Key::P521 { point, .. } => point,
            Key::PublicOnly(k) => k.der_bytes(),
            Key::Patching { inner, .. } => inner.der_bytes(),
        }
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self {
            Key::Ring(k) => k.algorithm(),
            // rcgen's ring backend has no P-521; P-384 identifiers are written and patched
            // to P-521 ones (same lengths) before signing and in the output.
            Key::P521 { .. } => &rcgen::PKCS_ECDSA_P384_SHA384,
            Key::PublicOnly(k) => k.algorithm(),
            Key::Patching { inner, .. } => inner.algorithm(),
        }
    }
}

impl SigningKey for Key {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            Key::Ring(k) => k.sign(msg),
            Key::P521 { key, .. } => {
                use ecdsa::signature::Signer;
                let sig: p521::ecdsa::Signature = key.sign(&patch_p521(msg));
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Key::PublicOnly(_) => Err(rcgen::Error::RemoteKeyError),
            Key::Patching { inner, patches } => inner.sign(&apply_patches(msg, patches)),
        }
    }
}

const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_ECDSA_SHA384: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const OID_ECDSA_SHA512: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
pub const OID_SHA256_RSA: &[u8] =
    &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
pub const OID_SHA1_RSA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05];
pub const OID_MD5_RSA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04];

/// Replaces every occurrence of `from` with `to` (same length).
pub fn replace_all(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

fn apply_patches(bytes: &[u8], patches: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    patches.iter().fold(bytes.to_vec(), |b, (from, to)| replace_all(&b, from, to))
}

pub const OID_RSA_ENCRYPTION: &[u8] =
    &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
pub const OID_RSASSA_PSS: &[u8] =
    &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
pub const OID_DSA_SHA256: &[u8] =
    &[0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x02];
pub const OID_CURVE_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const OID_CURVE_P192: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x01];

fn patch_p521(bytes: &[u8]) -> Vec<u8> {
    replace_all(&replace_all(bytes, OID_P384, OID_P521), OID_ECDSA_SHA384, OID_ECDSA_SHA512)
}

/// A certificate with its parameters and key, able to issue others.
pub struct Cert {
    pub der: Vec<u8>,
    pub params: CertificateParams,
    pub key: Key,
}

impl Cert {
    pub fn pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.der)
    }

    pub fn issuer(&self) -> Issuer<'_, &Key> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// Signs a CRL from this CA listing `serials`.
    pub fn crl(&self, serials: &[u64]) -> Vec<u8> {
        let params = CertificateRevocationListParams {
            this_update: at(NOW - DAY),
            next_update: at(NOW + 7 * DAY),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: at(NOW - DAY),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer()).unwrap().der().to_vec()
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "svrd test");
    dn.push(DnType::CommonName, cn);
    dn
}

/// CA parameters: critical CA:TRUE, keyCertSign and cRLSign, valid a year either side of NOW.
pub fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = at(NOW - 365 * DAY);
    p.not_after = at(NOW + 365 * DAY);
    p
}

/// Peer parameters: CN, digitalSignature, clientAuth and serverAuth, valid 30 days either
/// side of NOW, the given serial.
pub fn ee_params(cn: &str, serial: u64) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ClientAuth, ExtendedKeyUsagePurpose::ServerAuth];
    p.not_before = at(NOW - 30 * DAY);
    p.not_after = at(NOW + 30 * DAY);
    p.serial_number = Some(SerialNumber::from(serial));
    p
}

pub fn san_uri(uri: &str) -> SanType {
    SanType::URI(rcgen::string::Ia5String::try_from(uri.to_owned()).unwrap())
}

pub fn self_signed(params: CertificateParams, key: Key) -> Cert {
    let cert = params.self_signed(&key).unwrap();
    let der = if key.is_p521() { patch_p521(cert.der()) } else { cert.der().to_vec() };
    Cert { der, params, key }
}

pub fn issue(params: CertificateParams, key: Key, issuer: &Cert) -> Cert {
    let cert = params.signed_by(&key, &issuer.issuer()).unwrap();
    let mut der = if key.is_p521() || issuer.key.is_p521() {
        patch_p521(cert.der())
    } else {
        cert.der().to_vec()
    };
    if let Key::Patching { patches, .. } = &issuer.key {
        der = apply_patches(&der, patches);
    }
    Cert { der, params, key }
}

/// Makes a P-256 root CA named `cn`.
pub fn root(cn: &str) -> Cert {
    self_signed(ca_params(cn), Key::p256())
}

/// Builds a trust store containing `cas`.
pub fn trust(cas: &[&Cert]) -> svr_control::pki::TrustStore {
    let mut t = svr_control::pki::TrustStore::new();
    for ca in cas {
        t.add_der(ca.der.clone()).unwrap();
    }
    t
}

pub fn pem_encode(label: &str, der: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b = String::new();
    for c in der.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            b.push(if i <= c.len() { A[((n >> (18 - 6 * i)) & 63) as usize] as char } else { '=' });
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("svrd-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Wraps a CA so the certificates it issues carry `patches`, signed over.
pub fn patching(ca: Cert, patches: &[(&[u8], &[u8])]) -> Cert {
    let patches = patches.iter().map(|(f, t)| (f.to_vec(), t.to_vec())).collect();
    Cert { der: ca.der, params: ca.params, key: Key::Patching { inner: Box::new(ca.key), patches } }
}
