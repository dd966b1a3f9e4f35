//! The router's own certificate and private key: loaded when installed, otherwise a
//! self-signed ECDSA P-256 certificate generated on first start and kept in the state
//! directory, its key in a mode-0600 file or sealed by a TPM.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ecdsa::signature::Signer;
use p256::pkcs8::DecodePrivateKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use zeroize::Zeroizing;

use super::crypto::PublicKey;
use super::error::IdentityError;
use super::validate::{
    PEERING_URI_PREFIX, certificate_key, fingerprint, parse_certificate, unix_seconds,
};

/// File names inside the state directory.
pub const GENERATED_CERTIFICATE: &str = "peering.crt";
pub const GENERATED_KEY: &str = "peering.key";
pub const GENERATED_SEALED_KEY: &str = "peering.key.sealed";

/// Default lifetime of a generated self-signed certificate.
pub const DEFAULT_SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Storage of private keys at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProtection {
    /// A file readable by the owner only (mode 0600).
    File,
    /// Sealed by the TPM reached through this TCTI string.
    #[cfg(feature = "tpm")]
    Tpm { tcti: String },
}

/// Sources of the router's certificate and private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// The router's peering-common-name.
    pub common_name: String,
    /// Directory for the generated certificate and key (created mode 0700).
    pub state_dir: PathBuf,
    /// Installed certificate, PEM (the first block is the router's, later blocks are the
    /// intermediates sent with it) or DER. `None` selects the generated certificate.
    pub certificate: Option<PathBuf>,
    /// Installed private key: PKCS#8, SEC1 or PKCS#1, PEM or DER, or a blob sealed by the TPM.
    pub private_key: Option<PathBuf>,
    /// Protection of the generated key.
    pub protection: KeyProtection,
    /// Lifetime of a generated certificate.
    pub self_signed_validity: Duration,
}

impl IdentityConfig {
    /// Configuration for a generated identity with file protection.
    pub fn generated(common_name: &str, state_dir: &Path) -> Self {
        Self {
            common_name: common_name.to_owned(),
            state_dir: state_dir.to_owned(),
            certificate: None,
            private_key: None,
            protection: KeyProtection::File,
            self_signed_validity: DEFAULT_SELF_SIGNED_VALIDITY,
        }
    }
}

/// Whether the certificate was installed or generated here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityOrigin {
    Installed,
    Generated,
}

/// The router's certificate, the intermediates sent with it, and its private key.
///
/// `sign` makes the signatures that peers check with [`super::ValidatedPeer::verify`]: ECDSA
/// DER signatures over SHA-256/384/512 matched to the curve, RSA PKCS#1 v1.5 or PSS (by the
/// certificate's key type) over SHA-256.
#[derive(Debug)]
pub struct OwnIdentity {
    chain: Vec<Vec<u8>>,
    key: PrivateKey,
    public_key: PublicKey,
    common_name: String,
    not_before: i64,
    not_after: i64,
    fingerprint: [u8; 32],
    self_signed: bool,
    origin: IdentityOrigin,
}

impl OwnIdentity {
    /// Loads the installed identity, or the generated one from the state directory, creating
    /// it when missing, expired or made for another name.
    pub fn load(config: &IdentityConfig, now: SystemTime) -> Result<Self, IdentityError> {
        match (&config.certificate, &config.private_key) {
            (Some(cert), Some(key)) => Self::load_installed(cert, key, &config.protection),
            (None, None) => Self::load_generated(config, now),
            _ => Err(IdentityError::Incomplete {
                detail: "a certificate and a private key must be configured together",
            }),
        }
    }

    /// Builds an identity from certificate bytes (PEM or DER) and private-key bytes
    /// (PKCS#8, SEC1 or PKCS#1; PEM or DER).
    pub fn from_bytes(
        certificate: &[u8],
        private_key: &[u8],
        origin: IdentityOrigin,
    ) -> Result<Self, IdentityError> {
        let memory = PathBuf::from("(memory)");
        Self::assemble(&memory, certificate, &memory, private_key, origin)
    }

    /// Signs a message with the private key.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError> {
        self.key.sign(message)
    }

    /// DER of the router's certificate.
    pub fn certificate_der(&self) -> &[u8] {
        &self.chain[0]
    }

    /// Returns the certificate followed by any intermediates, as sent to peers.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// Public key of the certificate.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// Configured or certificate common name.
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// notBefore and notAfter, Unix seconds.
    pub fn validity(&self) -> (i64, i64) {
        (self.not_before, self.not_after)
    }

    /// SHA-256 of the certificate DER.
    pub fn fingerprint(&self) -> &[u8; 32] {
        &self.fingerprint
    }

    /// True when the certificate is its own issuer.
    pub fn is_self_signed(&self) -> bool {
        self.self_signed
    }

    /// Installed or generated.
    pub fn origin(&self) -> IdentityOrigin {
        self.origin
    }

    fn load_installed(
        cert_path: &Path,
        key_path: &Path,
        protection: &KeyProtection,
    ) -> Result<Self, IdentityError> {
        let cert = fs::read(cert_path).map_err(io(cert_path))?;
        let key = load_secret(key_path, protection)?;
        Self::assemble(cert_path, &cert, key_path, &key, IdentityOrigin::Installed)
    }

    fn load_generated(config: &IdentityConfig, now: SystemTime) -> Result<Self, IdentityError> {
        let cert_path = config.state_dir.join(GENERATED_CERTIFICATE);
        let key_path = config.state_dir.join(match config.protection {
            KeyProtection::File => GENERATED_KEY,
            #[cfg(feature = "tpm")]
            KeyProtection::Tpm { .. } => GENERATED_SEALED_KEY,
        });

        #[cfg(feature = "tpm")]
        if matches!(config.protection, KeyProtection::Tpm { .. }) {
            let plain = config.state_dir.join(GENERATED_KEY);
            if cert_path.exists() && plain.exists() && !key_path.exists() {
                seal_plain_key(&plain, &key_path, &config.protection)?;
            }
        }

        if cert_path.exists() && key_path.exists() {
            let cert = fs::read(&cert_path).map_err(io(&cert_path))?;
            let key = load_secret(&key_path, &config.protection)?;
            let identity =
                Self::assemble(&cert_path, &cert, &key_path, &key, IdentityOrigin::Generated)?;
            let fresh = unix_seconds(now) <= identity.not_after;
            if identity.common_name == config.common_name && fresh {
                tracing::debug!(path = %cert_path.display(), "reusing generated certificate");
                return Ok(identity);
            }
            tracing::debug!(
                path = %cert_path.display(),
                stored_name = %identity.common_name,
                fresh,
                "replacing generated certificate"
            );
        }
        Self::generate(config, &cert_path, &key_path, now)
    }

    fn generate(
        config: &IdentityConfig,
        cert_path: &Path,
        key_path: &Path,
        now: SystemTime,
    ) -> Result<Self, IdentityError> {
        let (cert_pem, key_der) =
            generate_self_signed(&config.common_name, now, config.self_signed_validity)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.state_dir)
            .map_err(io(&config.state_dir))?;

        // Key first, so a crash between the two writes leaves no certificate without a key.
        write_key(key_path, &key_der, &config.protection)?;
        write_file(cert_path, cert_pem.as_bytes(), 0o644)?;
        tracing::debug!(path = %cert_path.display(), name = %config.common_name,
            "generated self-signed peering certificate");
        Self::assemble(
            cert_path,
            cert_pem.as_bytes(),
            key_path,
            &key_der,
            IdentityOrigin::Generated,
        )
    }

    fn assemble(
        cert_path: &Path,
        cert_bytes: &[u8],
        key_path: &Path,
        key_bytes: &[u8],
        origin: IdentityOrigin,
    ) -> Result<Self, IdentityError> {
        let bad_cert =
            |detail: String| IdentityError::Certificate { path: cert_path.to_owned(), detail };
        if cert_bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(bad_cert("empty file".into()));
        }
        let pem = contains(cert_bytes, b"-----BEGIN");
        let chain = if pem {
            super::validate::pem_certificates(cert_bytes).map_err(|e| bad_cert(e.to_string()))?
        } else {
            vec![cert_bytes.to_vec()]
        };
        let cert = parse_certificate(&chain[0]).map_err(|e| {
            // Bytes that are neither PEM nor a DER SEQUENCE get no parser detail.
            if !pem && cert_bytes.first() != Some(&0x30) {
                bad_cert("not a DER or PEM certificate".into())
            } else {
                bad_cert(e.to_string())
            }
        })?;
        let public_key = certificate_key(&cert).map_err(|e| bad_cert(e.to_string()))?;
        let key = PrivateKey::parse(key_bytes, &public_key)
            .map_err(|detail| IdentityError::PrivateKey { path: key_path.to_owned(), detail })?;
        if !key.matches(&public_key) {
            return Err(IdentityError::KeyMismatch {
                certificate: cert_path.to_owned(),
                key: key_path.to_owned(),
            });
        }

        let common_name = cert
            .subject()
            .iter_common_name()
            .find_map(|a| a.as_str().ok())
            .map(str::to_owned)
            .unwrap_or_default();
        Ok(Self {
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
            fingerprint: fingerprint(&chain[0]),
            common_name,
            chain,
            key,
            public_key,
            origin,
        })
    }
}

/// A private key of an allowed type. Each variant zeroizes on drop.
enum PrivateKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
    Rsa { key: rsa::RsaPrivateKey, pss: bool },
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Self::P256(_) => "P-256",
            Self::P384(_) => "P-384",
            Self::P521(_) => "P-521",
            Self::Rsa { .. } => "RSA",
        };
        write!(f, "PrivateKey({kind}, redacted)")
    }
}

/// Reason given for a private key protected by a passphrase.
const ENCRYPTED_KEY: &str =
    "encrypted private keys are not supported; decrypt it with openssl pkey";

/// Returns whether `needle` occurs in `bytes`.
fn contains(bytes: &[u8], needle: &[u8]) -> bool {
    bytes.windows(needle.len()).any(|window| window == needle)
}

impl PrivateKey {
    /// Parses PEM or DER in PKCS#8, SEC1 (EC) or PKCS#1 (RSA) form. The certificate's key type
    /// decides whether RSA signs with PSS.
    fn parse(bytes: &[u8], cert_key: &PublicKey) -> Result<Self, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err("empty file".into());
        }
        // PKCS#8 EncryptedPrivateKeyInfo, or a traditional PEM key with an encryption header.
        if contains(bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
            || contains(bytes, b"Proc-Type: 4,ENCRYPTED")
        {
            return Err(ENCRYPTED_KEY.into());
        }
        let (label, der) = if bytes.starts_with(b"-----BEGIN") {
            let (_, pem) =
                x509_parser::pem::parse_x509_pem(bytes).map_err(|e| format!("PEM: {e}"))?;
            (pem.label.clone(), Zeroizing::new(pem.contents))
        } else {
            (String::new(), Zeroizing::new(bytes.to_vec()))
        };
        let pss = matches!(cert_key, PublicKey::Rsa { pss: true, .. });

        match label.as_str() {
            "EC PRIVATE KEY" => return Self::from_sec1(&der),
            "RSA PRIVATE KEY" => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                let key =
                    rsa::RsaPrivateKey::from_pkcs1_der(&der).map_err(|e| format!("PKCS#1: {e}"))?;
                return Ok(Self::Rsa { key, pss });
            }
            "PRIVATE KEY" | "" => {}
            other => return Err(format!("PEM label {other:?}, expected a private key")),
        }

        if let Ok(sk) = p256::SecretKey::from_pkcs8_der(&der) {
            return Ok(Self::P256(sk.into()));
        }
        if let Ok(sk) = p384::SecretKey::from_pkcs8_der(&der) {
            return Ok(Self::P384(sk.into()));
        }
        if let Ok(sk) = p521::SecretKey::from_pkcs8_der(&der) {
            return p521::ecdsa::SigningKey::from_bytes(&sk.to_bytes())
                .map(Self::P521)
                .map_err(|e| format!("P-521 key: {e}"));
        }
        if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_der(&der) {
            return Ok(Self::Rsa { key, pss });
        }
        if label.is_empty()
            && let Ok(key) = Self::from_sec1(&der)
        {
            return Ok(key);
        }
        Err("not a P-256, P-384, P-521 or RSA private key".into())
    }

    fn from_sec1(der: &[u8]) -> Result<Self, String> {
        if let Ok(sk) = p256::SecretKey::from_sec1_der(der) {
            return Ok(Self::P256(sk.into()));
        }
        if let Ok(sk) = p384::SecretKey::from_sec1_der(der) {
            return Ok(Self::P384(sk.into()));
        }
        if let Ok(sk) = p521::SecretKey::from_sec1_der(der) {
            return p521::ecdsa::SigningKey::from_bytes(&sk.to_bytes())
                .map(Self::P521)
                .map_err(|e| format!("P-521 key: {e}"));
        }
        Err("SEC1 key on an unsupported curve".into())
    }

    fn matches(&self, public: &PublicKey) -> bool {
        match (self, public) {
            (Self::P256(k), PublicKey::P256(p)) => k.verifying_key() == p,
            (Self::P384(k), PublicKey::P384(p)) => k.verifying_key() == p,
            (Self::P521(k), PublicKey::P521(p)) => {
                p521::ecdsa::VerifyingKey::from(k).to_encoded_point(false)
                    == p.to_encoded_point(false)
            }
            (Self::Rsa { key, .. }, PublicKey::Rsa { key: p, .. }) => {
                &rsa::RsaPublicKey::from(key) == p
            }
            _ => false,
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let failed = |e: ecdsa::Error| IdentityError::Sign { detail: e.to_string() };
        match self {
            Self::P256(k) => {
                let sig: p256::ecdsa::Signature = k.try_sign(message).map_err(failed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Self::P384(k) => {
                let sig: p384::ecdsa::Signature = k.try_sign(message).map_err(failed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Self::P521(k) => {
                let sig: p521::ecdsa::Signature = k.try_sign(message).map_err(failed)?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            // The randomized signers blind the RSA private operation, the mitigation for the
            // timing side channel of RUSTSEC-2023-0071 in rsa 0.9.
            Self::Rsa { key, pss: false } => {
                let signer = rsa::pkcs1v15::SigningKey::<sha2_010::Sha256>::new(key.clone());
                let sig =
                    signer.try_sign_with_rng(&mut rand_core_06::OsRng, message).map_err(failed)?;
                Ok(sig.to_vec())
            }
            Self::Rsa { key, pss: true } => {
                let signer = rsa::pss::BlindedSigningKey::<sha2_010::Sha256>::new(key.clone());
                let sig =
                    signer.try_sign_with_rng(&mut rand_core_06::OsRng, message).map_err(failed)?;
                Ok(sig.to_vec())
            }
        }
    }
}

/// Makes a self-signed P-256 certificate: CN and SAN URI `urn:ssr:peering:<name>`, end
/// entity, digitalSignature, client and server auth. Returns the certificate PEM and the
/// key's PKCS#8 DER.
fn generate_self_signed(
    name: &str,
    now: SystemTime,
    validity: Duration,
) -> Result<(String, Zeroizing<Vec<u8>>), IdentityError> {
    use p256::pkcs8::EncodePrivateKey;
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
        KeyUsagePurpose, SanType, SerialNumber,
    };

    let generate = |e: &dyn std::fmt::Display| IdentityError::Generate { detail: e.to_string() };
    // The key is made and kept by p256, whose secret types zeroize on drop. rcgen only gets
    // the public point and a signing callback.
    let secret = p256::SecretKey::random(&mut rand_core_06::OsRng);
    let key = P256Signer::new(p256::ecdsa::SigningKey::from(&secret));
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    let uri = rcgen::string::Ia5String::try_from(format!("{PEERING_URI_PREFIX}{name}"))
        .map_err(|e| generate(&e))?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ClientAuth, ExtendedKeyUsagePurpose::ServerAuth];

    let mut serial = [0u8; 16];
    rand_core_06::RngCore::fill_bytes(&mut rand_core_06::OsRng, &mut serial);
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));

    // notBefore a minute back tolerates small clock differences between peers.
    let start = unix_seconds(now) - 60;
    let end = start.saturating_add(i64::try_from(validity.as_secs()).unwrap_or(i64::MAX / 2));
    params.not_before =
        time::OffsetDateTime::from_unix_timestamp(start).map_err(|e| generate(&e))?;
    params.not_after = time::OffsetDateTime::from_unix_timestamp(end).map_err(|e| generate(&e))?;

    let cert = params.self_signed(&key).map_err(|e| generate(&e))?;
    let pkcs8 = secret.to_pkcs8_der().map_err(|e| generate(&e))?;
    Ok((cert.pem(), Zeroizing::new(pkcs8.as_bytes().to_vec())))
}

/// A P-256 key as rcgen's signer, so the private key never enters rcgen's own key types.
struct P256Signer {
    key: p256::ecdsa::SigningKey,
    point: Vec<u8>,
}

impl P256Signer {
    fn new(key: p256::ecdsa::SigningKey) -> Self {
        let point = key.verifying_key().to_encoded_point(false).as_bytes().to_vec();
        Self { key, point }
    }
}

impl rcgen::PublicKeyData for P256Signer {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for P256Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig: p256::ecdsa::Signature =
            self.key.try_sign(message).map_err(|_| rcgen::Error::RemoteKeyError)?;
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

/// Reads a secret stored by [`store_secret`], unsealing it with the TPM when the file is a
/// sealed blob.
pub fn load_secret(
    path: &Path,
    protection: &KeyProtection,
) -> Result<Zeroizing<Vec<u8>>, IdentityError> {
    let bytes = Zeroizing::new(fs::read(path).map_err(io(path))?);
    #[cfg(feature = "tpm")]
    if bytes.starts_with(super::tpm::SealedBlob::MAGIC) {
        let KeyProtection::Tpm { tcti } = protection else {
            return Err(IdentityError::PrivateKey {
                path: path.to_owned(),
                detail: "file is sealed by a TPM but no TPM is configured".into(),
            });
        };
        let blob = super::tpm::SealedBlob::from_bytes(&bytes).map_err(IdentityError::Tpm)?;
        let mut tpm = super::tpm::Tpm::open(tcti).map_err(IdentityError::Tpm)?;
        return tpm.unseal(&blob).map_err(IdentityError::Tpm);
    }
    let _ = protection;
    Ok(bytes)
}

/// Stores secret bytes (a private key, an ML-KEM decapsulation key): sealed by the TPM, or
/// as they are in a file of mode 0600. Only the sealed blob reaches the disk with a TPM.
pub fn store_secret(
    path: &Path,
    secret: &[u8],
    protection: &KeyProtection,
) -> Result<(), IdentityError> {
    match protection {
        KeyProtection::File => write_file(path, secret, 0o600),
        #[cfg(feature = "tpm")]
        KeyProtection::Tpm { tcti } => {
            let mut tpm = super::tpm::Tpm::open(tcti).map_err(IdentityError::Tpm)?;
            let blob = tpm.seal(secret).map_err(IdentityError::Tpm)?;
            write_file(path, &blob.to_bytes(), 0o600)
        }
    }
}

/// Moves a generated key from its plain file into the TPM when a TPM is configured later,
/// so the router keeps its certificate.
#[cfg(feature = "tpm")]
fn seal_plain_key(
    plain: &Path,
    sealed: &Path,
    protection: &KeyProtection,
) -> Result<(), IdentityError> {
    let pem = load_secret(plain, &KeyProtection::File)?;
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).map_err(|e| {
        IdentityError::PrivateKey { path: plain.to_owned(), detail: format!("PEM: {e}") }
    })?;
    let der = Zeroizing::new(block.contents);
    write_key(sealed, &der, protection)?;
    fs::remove_file(plain).map_err(io(plain))?;
    tracing::debug!(path = %sealed.display(), "sealed the generated key with the TPM");
    Ok(())
}

/// Stores the generated key: PEM PKCS#8 in a file, or the DER sealed by the TPM.
fn write_key(path: &Path, pkcs8: &[u8], protection: &KeyProtection) -> Result<(), IdentityError> {
    match protection {
        KeyProtection::File => {
            let pem = Zeroizing::new(pem_encode("PRIVATE KEY", pkcs8));
            store_secret(path, pem.as_bytes(), protection)
        }
        #[cfg(feature = "tpm")]
        KeyProtection::Tpm { .. } => store_secret(path, pkcs8, protection),
    }
}

/// Writes through a temporary file and a rename, so readers never see half a file. The mode
/// is set at creation, before any byte is written.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IdentityError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io { path: path.to_owned(), source }
}

/// RFC 7468 textual encoding with 64-column base64 lines.
fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Zeroizing::new(String::with_capacity(der.len().div_ceil(3) * 4));
    for chunk in der.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
