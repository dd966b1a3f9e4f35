//! Sealing of secret bytes (certificate private keys, ML-KEM decapsulation keys) with a TPM
//! 2.0, through tss-esapi 7.7.
//!
//! An ECC P-256 storage primary is derived in the owner hierarchy each time a context opens.
//! The TPM derives it from its owner seed, so it is the same key until the owner is cleared. A secret becomes a
//! KeyedHash sealed-data object under that primary, and only the object's marshalled public
//! and private areas are stored, so the bytes on disk can be unsealed by that TPM only.
//!
//! Create and Unseal run under an HMAC session salted with the primary and with parameter
//! encryption, so the secret does not cross the link to the TPM in clear.
//!
//! A sealed-data object contains at most 128 bytes: swtpm 0.7.1 rejects 129 bytes in
//! TPM2_Create with TPM_RC_SIZE, and 128 is the common MAX_SYM_DATA of TPM 2.0 chips. Longer
//! secrets are encrypted with ChaCha20-Poly1305 under a random
//! 32-byte key, and that key is what the TPM seals.

use std::fmt;
use std::str::FromStr;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use tss_esapi::Context;
use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{KeyHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    EccPoint, KeyedHashScheme, Private, Public, PublicBuilder, PublicEccParametersBuilder,
    PublicKeyedHashParameters, SensitiveData, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};
use zeroize::Zeroizing;

/// Largest secret sealed directly into a sealed-data object.
pub const MAX_DIRECT_SEAL: usize = 128;

const BLOB_MAGIC: &[u8; 8] = b"SVRTPM01";
const KIND_DIRECT: u8 = 1;
const KIND_ENVELOPE: u8 = 2;
const ENVELOPE_AAD: &[u8] = b"svrd tpm envelope v1";

/// Failure of a TPM operation or of decoding a sealed blob.
#[non_exhaustive]
#[derive(Debug)]
pub enum TpmError {
    /// The TCTI string does not parse or the TPM cannot be reached.
    Connect { tcti: String, source: tss_esapi::Error },
    /// A TPM command failed.
    Command { command: &'static str, source: tss_esapi::Error },
    /// The stored blob is not one this module wrote.
    BadBlob { detail: &'static str },
    /// The envelope did not decrypt: the blob was altered or sealed by another TPM.
    EnvelopeOpen,
    /// The TPM returned no session handle for a started session.
    NoSession,
}

impl fmt::Display for TpmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect { tcti, source } => {
                write!(f, "failed to open TPM via {tcti:?}: {source}")
            }
            Self::Command { command, source } => write!(f, "TPM {command} failed: {source}"),
            Self::BadBlob { detail } => write!(f, "invalid sealed blob: {detail}"),
            Self::EnvelopeOpen => write!(f, "sealed envelope failed authentication"),
            Self::NoSession => write!(f, "TPM StartAuthSession returned no session"),
        }
    }
}

impl std::error::Error for TpmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect { source, .. } | Self::Command { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The marshalled public and private areas of a sealed-data object, plus the encrypted secret
/// when the secret is longer than [`MAX_DIRECT_SEAL`].
///
/// ```text
///  "SVRTPM01" | kind (1 = direct, 2 = envelope) | u32 len | TPM2B_PUBLIC
///             | u32 len | TPM2B_PRIVATE | [u32 len | nonce (12) | ciphertext + tag]
/// ```
/// Lengths are big-endian.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedBlob {
    public: Vec<u8>,
    private: Vec<u8>,
    envelope: Option<Vec<u8>>,
}

impl fmt::Debug for SealedBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedBlob")
            .field("public_len", &self.public.len())
            .field("private_len", &self.private.len())
            .field("envelope_len", &self.envelope.as_ref().map(Vec::len))
            .finish()
    }
}

impl SealedBlob {
    /// First bytes of every encoded blob.
    pub const MAGIC: &'static [u8] = BLOB_MAGIC;

    /// Encodes the blob for storage.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(BLOB_MAGIC);
        out.push(if self.envelope.is_some() { KIND_ENVELOPE } else { KIND_DIRECT });
        for part in
            [Some(&self.public), Some(&self.private), self.envelope.as_ref()].into_iter().flatten()
        {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    /// Decodes a stored blob.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TpmError> {
        let rest = bytes
            .strip_prefix(BLOB_MAGIC.as_slice())
            .ok_or(TpmError::BadBlob { detail: "bad magic" })?;
        let (&kind, mut rest) =
            rest.split_first().ok_or(TpmError::BadBlob { detail: "truncated" })?;
        let mut take = || -> Result<Vec<u8>, TpmError> {
            let truncated = TpmError::BadBlob { detail: "truncated" };
            let (len, tail) = rest.split_at_checked(4).ok_or(truncated)?;
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let (part, tail) =
                tail.split_at_checked(len).ok_or(TpmError::BadBlob { detail: "truncated" })?;
            rest = tail;
            Ok(part.to_vec())
        };
        let public = take()?;
        let private = take()?;
        let envelope = match kind {
            KIND_DIRECT => None,
            KIND_ENVELOPE => Some(take()?),
            _ => return Err(TpmError::BadBlob { detail: "unknown kind" }),
        };
        if !rest.is_empty() {
            return Err(TpmError::BadBlob { detail: "trailing bytes" });
        }
        Ok(Self { public, private, envelope })
    }
}

/// An open TPM with the storage primary loaded.
pub struct Tpm {
    context: Context,
    primary: KeyHandle,
}

impl fmt::Debug for Tpm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tpm").finish_non_exhaustive()
    }
}

impl Tpm {
    /// Opens the TPM named by a TCTI string such as `swtpm:host=127.0.0.1,port=2321` or
    /// `device:/dev/tpmrm0`, and creates the storage primary.
    pub fn open(tcti: &str) -> Result<Self, TpmError> {
        let connect = |source| TpmError::Connect { tcti: tcti.to_owned(), source };
        let name = TctiNameConf::from_str(tcti).map_err(connect)?;
        let mut context = Context::new(name).map_err(connect)?;
        context.set_sessions((Some(AuthSession::Password), None, None));
        let primary = context
            .create_primary(Hierarchy::Owner, storage_primary_template()?, None, None, None, None)
            .map_err(command("CreatePrimary"))?
            .key_handle;
        Ok(Self { context, primary })
    }

    /// Seals `secret` under the storage primary.
    pub fn seal(&mut self, secret: &[u8]) -> Result<SealedBlob, TpmError> {
        if secret.len() <= MAX_DIRECT_SEAL {
            let (public, private) = self.seal_direct(secret)?;
            return Ok(SealedBlob { public, private, envelope: None });
        }

        let mut data_key = Zeroizing::new([0u8; 32]);
        let mut nonce = [0u8; 12];
        rand_core_06::RngCore::fill_bytes(&mut rand_core_06::OsRng, data_key.as_mut());
        rand_core_06::RngCore::fill_bytes(&mut rand_core_06::OsRng, &mut nonce);
        let cipher = ChaCha20Poly1305::new(data_key.as_ref().into());
        let ciphertext = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: secret, aad: ENVELOPE_AAD })
            .map_err(|_| TpmError::BadBlob { detail: "envelope encryption failed" })?;
        let (public, private) = self.seal_direct(data_key.as_ref())?;
        let mut envelope = nonce.to_vec();
        envelope.extend_from_slice(&ciphertext);
        Ok(SealedBlob { public, private, envelope: Some(envelope) })
    }

    /// Loads a sealed object, unseals it and flushes it again.
    pub fn unseal(&mut self, blob: &SealedBlob) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        let inner = self.unseal_direct(&blob.public, &blob.private)?;
        let Some(envelope) = &blob.envelope else {
            return Ok(inner);
        };
        if inner.len() != 32 || envelope.len() < 12 {
            return Err(TpmError::BadBlob { detail: "envelope key or nonce has the wrong size" });
        }
        let cipher = ChaCha20Poly1305::new(inner.as_slice().into());
        let (nonce, ciphertext) = envelope.split_at(12);
        let nonce: [u8; 12] =
            nonce.try_into().map_err(|_| TpmError::BadBlob { detail: "nonce" })?;
        let plain = cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad: ENVELOPE_AAD })
            .map_err(|_| TpmError::EnvelopeOpen)?;
        Ok(Zeroizing::new(plain))
    }

    fn seal_direct(&mut self, secret: &[u8]) -> Result<(Vec<u8>, Vec<u8>), TpmError> {
        let sensitive =
            SensitiveData::try_from(secret.to_vec()).map_err(command("SensitiveData"))?;
        let template = sealed_object_template()?;
        let primary = self.primary;
        let created = self.with_encrypted_session("Create", |ctx| {
            ctx.create(primary, template, None, Some(sensitive), None, None)
        })?;
        let public = created.out_public.marshall().map_err(command("marshal public"))?;
        Ok((public, created.out_private.value().to_vec()))
    }

    fn unseal_direct(
        &mut self,
        public: &[u8],
        private: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        let public = Public::unmarshall(public).map_err(command("unmarshal public"))?;
        let private = Private::try_from(private.to_vec()).map_err(command("unmarshal private"))?;
        let handle = self.context.load(self.primary, private, public).map_err(command("Load"))?;
        let unsealed = self.with_encrypted_session("Unseal", |ctx| ctx.unseal(handle.into()));
        // The object is flushed whether or not unseal worked: the TPM has only a few
        // transient slots and no resource manager may be running.
        let flushed = self.context.flush_context(handle.into());
        let data = unsealed?;
        flushed.map_err(command("FlushContext"))?;
        Ok(Zeroizing::new(data.value().to_vec()))
    }
}

impl Tpm {
    /// Runs one command under an HMAC session salted with the storage primary, with
    /// parameter encryption both ways (AES-128-CFB), so a secret never crosses the bus to the
    /// TPM in clear.
    fn with_encrypted_session<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut Context) -> tss_esapi::Result<T>,
    ) -> Result<T, TpmError> {
        // TPM2_StartAuthSession takes no authorization, so the default password session
        // must not be sent with it.
        let primary = self.primary;
        let session = self
            .context
            .execute_without_session(|ctx| {
                ctx.start_auth_session(
                    Some(primary),
                    None,
                    None,
                    SessionType::Hmac,
                    SymmetricDefinition::AES_128_CFB,
                    HashingAlgorithm::Sha256,
                )
            })
            .map_err(command("StartAuthSession"))?
            .ok_or(TpmError::NoSession)?;
        let (attributes, mask) = SessionAttributesBuilder::new()
            .with_decrypt(true)
            .with_encrypt(true)
            .with_continue_session(true)
            .build();
        let result = self
            .context
            .tr_sess_set_attributes(session, attributes, mask)
            .map_err(command("TRSess_SetAttributes"))
            .and_then(|()| {
                self.context.execute_with_session(Some(session), f).map_err(command(name))
            });
        let flushed = self.context.flush_context(SessionHandle::from(session).into());
        let value = result?;
        flushed.map_err(command("FlushContext"))?;
        Ok(value)
    }
}

impl Drop for Tpm {
    fn drop(&mut self) {
        if let Err(e) = self.context.flush_context(self.primary.into()) {
            tracing::warn!(error = %e, "failed to flush the TPM storage primary");
        }
    }
}

fn command(name: &'static str) -> impl Fn(tss_esapi::Error) -> TpmError {
    move |source| TpmError::Command { command: name, source }
}

/// Restricted decryption ECC P-256 key with AES-128-CFB for its children, the usual
/// storage-primary template (TCG EK/SRK profiles use the same shape).
fn storage_primary_template() -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_decrypt(true)
        .with_restricted(true)
        .build()
        .map_err(command("primary attributes"))?;
    let ecc = PublicEccParametersBuilder::new_restricted_decryption_key(
        SymmetricDefinitionObject::AES_128_CFB,
        EccCurve::NistP256,
    )
    .build()
    .map_err(command("primary parameters"))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(ecc)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(command("primary template"))
}

/// KeyedHash object with the Null scheme: sealed data that can only be unsealed, never used to
/// sign or decrypt, bound to this TPM and this parent.
fn sealed_object_template() -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .with_user_with_auth(true)
        .build()
        .map_err(command("sealed object attributes"))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Default::default())
        .build()
        .map_err(command("sealed object template"))
}
