//! Key material of the exchange: peer keys derived with HKDF-SHA-384 from the shared
//! secrets, the sealing of message bodies under them (AES-256-CBC then HMAC-SHA-384), and
//! this router's metadata key bundle.

use std::fmt;

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use aes::{Aes256Dec, Aes256Enc};
use cbc::cipher::block_padding::Pkcs7;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use rand_core::CryptoRng;
use sha2::{Digest, Sha384};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::error::{DecodeError, SealError};

/// Length of a peer key and of a metadata key secret.
pub const KEY_LEN: usize = 32;
/// Length of the CBC IV at the front of each sealed layer.
pub const IV_LEN: usize = 16;
/// Length of the HMAC-SHA-384 tag at the end of each sealed layer.
pub const TAG_LEN: usize = 48;
/// Length of an encoded metadata key bundle.
pub const BUNDLE_LEN: usize = 4 + 1 + KEY_LEN;

const BLOCK: usize = 16;
const MAC_KEY_LEN: usize = 48;

/// Source of a peer key: the DH or the ML-KEM shared secret. In hybrid mode a peering has
/// one of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKeyKind {
    /// Derived from the Diffie-Hellman shared secret.
    Dh,
    /// Derived from the ML-KEM shared secret.
    MlKem,
}

impl PeerKeyKind {
    fn label(self) -> &'static [u8] {
        match self {
            PeerKeyKind::Dh => b"svrd eskm v1 peer key dh",
            PeerKeyKind::MlKem => b"svrd eskm v1 peer key ml-kem",
        }
    }
}

/// A peer key with the encryption and MAC keys derived from it.
pub struct PeerKey {
    kind: PeerKeyKind,
    enc: Zeroizing<[u8; KEY_LEN]>,
    mac: Zeroizing<[u8; MAC_KEY_LEN]>,
    pair: Zeroizing<[u8; KEY_LEN]>,
}

impl PeerKey {
    /// Derives a peer key from a shared secret.
    ///
    /// The peer key is HKDF-SHA-384 (RFC 5869) with the two salts as HKDF salt (in
    /// canonical order, see [`canonical_salts`]) and info = label || transcript hash. The
    /// AES-256 key and the HMAC-SHA-384 key are then expanded from the peer key with
    /// labels of their own, so neither is used for two purposes.
    pub fn derive(
        kind: PeerKeyKind,
        shared_secret: &[u8],
        salts: &[u8; 8],
        transcript: &[u8; 48],
    ) -> Self {
        let mut info = Vec::with_capacity(64 + transcript.len());
        info.extend_from_slice(kind.label());
        info.extend_from_slice(transcript);
        let mut peer_key = Zeroizing::new([0u8; KEY_LEN]);
        expand(&Hkdf::<Sha384>::new(Some(salts), shared_secret), &info, peer_key.as_mut_slice());

        let hk = Hkdf::<Sha384>::new(None, peer_key.as_slice());
        let mut enc = Zeroizing::new([0u8; KEY_LEN]);
        let mut mac = Zeroizing::new([0u8; MAC_KEY_LEN]);
        let mut pair = Zeroizing::new([0u8; KEY_LEN]);
        expand(&hk, b"svrd eskm v1 aes-256-cbc", enc.as_mut_slice());
        expand(&hk, b"svrd eskm v1 hmac-sha-384", mac.as_mut_slice());
        expand(&hk, b"svrd eskm v1 pair secret", pair.as_mut_slice());
        PeerKey { kind, enc, mac, pair }
    }

    /// Returns the secret the key was derived from.
    pub fn kind(&self) -> PeerKeyKind {
        self.kind
    }

    /// Encrypts `plaintext` with AES-256-CBC under a random IV, then appends an
    /// HMAC-SHA-384 tag over aad || IV || ciphertext (encrypt-then-MAC).
    pub fn seal<R: CryptoRng + ?Sized>(
        &self,
        aad: &[u8],
        plaintext: &[u8],
        rng: &mut R,
    ) -> Vec<u8> {
        let mut iv = [0u8; IV_LEN];
        rng.fill_bytes(&mut iv);
        let ct = cbc::Encryptor::<Aes256Enc>::new((&*self.enc).into(), (&iv).into())
            .encrypt_padded_vec::<Pkcs7>(plaintext);

        let mut out = Vec::with_capacity(IV_LEN + ct.len() + TAG_LEN);
        out.extend_from_slice(&iv);
        out.extend_from_slice(&ct);
        let tag = self.tag(aad, &out);
        out.extend_from_slice(&tag);
        out
    }

    /// Checks the tag in constant time and only then decrypts.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let len = sealed.len();
        if len < IV_LEN + BLOCK + TAG_LEN || !(len - IV_LEN - TAG_LEN).is_multiple_of(BLOCK) {
            return Err(SealError::BadLength { actual: len });
        }

        let (body, tag) = sealed.split_at(len - TAG_LEN);
        let expected = self.tag(aad, body);
        if !bool::from(expected.as_slice().ct_eq(tag)) {
            return Err(SealError::BadTag);
        }

        let (iv, ct) = body.split_at(IV_LEN);
        let mut iv_block = [0u8; IV_LEN];
        iv_block.copy_from_slice(iv);
        cbc::Decryptor::<Aes256Dec>::new((&*self.enc).into(), (&iv_block).into())
            .decrypt_padded_vec::<Pkcs7>(ct)
            .map(Zeroizing::new)
            .map_err(|_| SealError::BadPadding)
    }

    fn tag(&self, aad: &[u8], iv_and_ct: &[u8]) -> [u8; TAG_LEN] {
        // An HMAC key of any length is valid, so new_from_slice cannot fail here.
        let mut mac = match <Hmac<Sha384> as KeyInit>::new_from_slice(self.mac.as_slice()) {
            Ok(mac) => mac,
            Err(_) => return [0u8; TAG_LEN],
        };
        mac.update(&(aad.len() as u64).to_be_bytes());
        mac.update(aad);
        mac.update(iv_and_ct);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&mac.finalize().into_bytes());
        tag
    }
}

impl fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerKey").field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// The peer keys of one exchange: one key, or in hybrid mode the DH key and the ML-KEM key.
#[derive(Debug)]
pub struct PeerKeySet {
    /// Keys in sealing order: the first seals the plaintext, the next seals its output.
    layers: Vec<PeerKey>,
}

impl PeerKeySet {
    /// Builds a set from keys in sealing order (DH first in hybrid mode).
    pub fn new(layers: Vec<PeerKey>) -> Self {
        PeerKeySet { layers }
    }

    /// Seals with each key in turn: in hybrid mode first under the DH key, then the result
    /// under the ML-KEM key.
    pub fn seal<R: CryptoRng + ?Sized>(
        &self,
        aad: &[u8],
        plaintext: &[u8],
        rng: &mut R,
    ) -> Vec<u8> {
        let mut data = plaintext.to_vec();
        for key in &self.layers {
            let sealed = key.seal(aad, &data, rng);
            data.zeroize();
            data = sealed;
        }
        data
    }

    /// Opens in the reverse order of [`PeerKeySet::seal`].
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let mut data = Zeroizing::new(sealed.to_vec());
        for key in self.layers.iter().rev() {
            data = key.open(aad, &data)?;
        }
        Ok(data)
    }

    /// Returns the keys in sealing order.
    pub fn layers(&self) -> &[PeerKey] {
        &self.layers
    }

    /// The secret the dataplane derives the two routers' pair keys from (the keys that
    /// authenticate SVR packets with metadata between them). In hybrid mode it depends on
    /// both peer keys, so breaking one of them does not reveal it.
    pub fn pair_secret(&self) -> Zeroizing<[u8; KEY_LEN]> {
        let mut ikm = Zeroizing::new(Vec::with_capacity(self.layers.len() * KEY_LEN));
        for key in &self.layers {
            ikm.extend_from_slice(key.pair.as_slice());
        }
        let mut secret = Zeroizing::new([0u8; KEY_LEN]);
        expand(
            &Hkdf::<Sha384>::new(None, &ikm),
            b"svrd eskm v1 pair secret",
            secret.as_mut_slice(),
        );
        secret
    }
}

/// Returns the two 32-bit salts as HKDF salt: the salt of the router with the bytewise
/// smaller peering common name first, so that both sides build the same bytes.
pub fn canonical_salts(local_name: &str, local: u32, peer_name: &str, peer: u32) -> [u8; 8] {
    let (first, second) =
        if local_name.as_bytes() < peer_name.as_bytes() { (local, peer) } else { (peer, local) };
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&first.to_be_bytes());
    out[4..].copy_from_slice(&second.to_be_bytes());
    out
}

/// One router's contribution to the transcript of an exchange.
#[derive(Clone, Copy, Debug)]
pub struct TranscriptSide<'a> {
    /// Peering common name.
    pub name: &'a str,
    /// SHA-384 of the router's certificate.
    pub certificate_fingerprint: &'a [u8; 48],
    /// The router's salt.
    pub salt: u32,
    /// Its Diffie-Hellman public value, empty without DH.
    pub dh_public: &'a [u8],
}

/// Hashes the exchange transcript with SHA-384: exchange id, algorithm code, both sides in
/// canonical order (name, certificate fingerprint, salt, DH public value), then the ML-KEM
/// encapsulation key and ciphertext. Every field is length-prefixed.
pub fn transcript_hash(
    exchange: u32,
    algorithm: [u8; 5],
    a: TranscriptSide<'_>,
    b: TranscriptSide<'_>,
    encapsulation_key: &[u8],
    ciphertext: &[u8],
) -> [u8; 48] {
    let (first, second) = if a.name.as_bytes() < b.name.as_bytes() { (a, b) } else { (b, a) };
    let mut h = Sha384::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u32).to_be_bytes());
        h.update(bytes);
    };
    field(b"svrd eskm v1 transcript");
    field(&exchange.to_be_bytes());
    field(&algorithm);
    for side in [first, second] {
        field(side.name.as_bytes());
        field(side.certificate_fingerprint);
        field(&side.salt.to_be_bytes());
        field(side.dh_public);
    }
    field(encapsulation_key);
    field(ciphertext);
    let mut out = [0u8; 48];
    out.copy_from_slice(&h.finalize());
    out
}

/// SHA-384 of a certificate's bytes.
pub fn fingerprint(certificate: &[u8]) -> [u8; 48] {
    let mut out = [0u8; 48];
    out.copy_from_slice(&Sha384::digest(certificate));
    out
}

/// HMAC algorithm the dataplane uses with a metadata key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HmacAlgorithm {
    /// HMAC-SHA-384.
    Sha384,
    /// HMAC-SHA-512.
    Sha512,
}

impl HmacAlgorithm {
    fn code(self) -> u8 {
        match self {
            HmacAlgorithm::Sha384 => 1,
            HmacAlgorithm::Sha512 => 2,
        }
    }

    fn from_code(code: u8) -> Result<Self, DecodeError> {
        match code {
            1 => Ok(HmacAlgorithm::Sha384),
            2 => Ok(HmacAlgorithm::Sha512),
            _ => Err(DecodeError::UnknownHmac { code }),
        }
    }
}

/// A router's metadata key: the secret from which the dataplane derives its metadata keys,
/// the HMAC algorithm and the index that names it in packets. One bundle serves all peers.
#[derive(Clone, PartialEq, Eq)]
pub struct MetadataKeyBundle {
    /// Index of the key; it grows by one at each rotation.
    pub index: u32,
    /// HMAC algorithm.
    pub hmac: HmacAlgorithm,
    secret: Zeroizing<[u8; KEY_LEN]>,
}

impl MetadataKeyBundle {
    /// Generates a bundle with a fresh random secret.
    pub fn generate<R: CryptoRng + ?Sized>(index: u32, hmac: HmacAlgorithm, rng: &mut R) -> Self {
        let mut secret = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(secret.as_mut_slice());
        MetadataKeyBundle { index, hmac, secret }
    }

    /// Returns the 32-byte secret.
    pub fn secret(&self) -> &[u8; KEY_LEN] {
        &self.secret
    }

    /// Encodes the bundle: index (u32, big-endian), HMAC code (1 = SHA-384, 2 = SHA-512),
    /// secret (32 bytes).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(BUNDLE_LEN));
        out.extend_from_slice(&self.index.to_be_bytes());
        out.push(self.hmac.code());
        out.extend_from_slice(self.secret.as_slice());
        out
    }

    /// Decodes a bundle written by [`MetadataKeyBundle::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < BUNDLE_LEN {
            return Err(DecodeError::Truncated { offset: bytes.len(), needed: BUNDLE_LEN });
        }
        if bytes.len() > BUNDLE_LEN {
            return Err(DecodeError::TrailingBytes { count: bytes.len() - BUNDLE_LEN });
        }
        let index = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let hmac = HmacAlgorithm::from_code(bytes[4])?;
        let mut secret = Zeroizing::new([0u8; KEY_LEN]);
        secret.copy_from_slice(&bytes[5..]);
        Ok(MetadataKeyBundle { index, hmac, secret })
    }
}

impl fmt::Debug for MetadataKeyBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataKeyBundle")
            .field("index", &self.index)
            .field("hmac", &self.hmac)
            .finish_non_exhaustive()
    }
}

fn expand(hk: &Hkdf<Sha384>, info: &[u8], out: &mut [u8]) {
    // HKDF-SHA-384 can produce up to 255 * 48 bytes; every output here is at most 48, so
    // expand cannot fail.
    if hk.expand(info, out).is_err() {
        out.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_bad_padding_after_valid_tag() {
        let key = PeerKey::derive(PeerKeyKind::Dh, &[1; 32], &[0; 8], &[0; 48]);
        // A block that does not decrypt to valid PKCS#7 padding, with a correct tag: the
        // tag check passes and the padding check fails.
        let mut body = vec![0u8; IV_LEN + BLOCK];
        body[IV_LEN..].copy_from_slice(&[0x55; BLOCK]);
        let tag = key.tag(b"aad", &body);
        body.extend_from_slice(&tag);
        let mut padding_ok = 0;
        match key.open(b"aad", &body) {
            Err(SealError::BadPadding) => {}
            Ok(_) => padding_ok += 1,
            Err(e) => panic!("unexpected {e}"),
        }
        // A random block pads correctly with probability about 1/256; this one does not.
        assert_eq!(padding_ok, 0);
    }
}
