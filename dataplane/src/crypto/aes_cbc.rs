//! AES-256 in CBC mode with PKCS#7 padding, in place, with the key schedule kept per key.
//!
//! Only the encryption schedule is stored. Decryption derives the inverse schedule from it
//! when it is needed, which on AES-NI costs thirteen `aesimc` instructions and halves the key
//! memory a session holds.

use aes::Aes256Enc;
use aes::cipher::array::Array;
use aes::cipher::consts::U16;
use aes::cipher::{
    BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit,
    KeyInit,
};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use super::CryptoError;

/// AES block length in bytes.
pub const BLOCK_LEN: usize = 16;

/// A CBC initialisation vector.
pub type Iv = [u8; BLOCK_LEN];

/// An AES-256 encryption key schedule. It wipes itself on drop (the aes crate's `zeroize`
/// feature) and prints no key material.
#[derive(Clone)]
pub struct CbcKey {
    schedule: Aes256Enc,
    /// The key itself, which the multi-buffer lanes expand into their own schedule form.
    /// Keeping 32 bytes instead of a second 240-byte schedule keeps sessions small.
    key: Zeroizing<[u8; 32]>,
}

impl ZeroizeOnDrop for CbcKey {}

impl core::fmt::Debug for CbcKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CbcKey { .. }")
    }
}

impl CbcKey {
    /// Expands a 256-bit key.
    pub fn new(key: &[u8; 32]) -> CbcKey {
        CbcKey { schedule: Aes256Enc::new(&Array::from(*key)), key: Zeroizing::new(*key) }
    }

    /// Returns the key bytes, for [`mb`](super::mb) to expand.
    pub(crate) fn key_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// Encrypts one block with the raw cipher. Used to derive IVs from sequence numbers
    /// (NIST SP 800-38A, appendix C: the forward cipher applied to a nonce gives an
    /// unpredictable IV).
    pub fn encrypt_block(&self, block: &mut [u8; BLOCK_LEN]) {
        let mut array = Array::from(*block);
        self.schedule.encrypt_block(&mut array);
        *block = array.into();
    }

    /// Pads `buf[..len]` with PKCS#7 and encrypts it in place; returns the ciphertext length,
    /// which is `len` rounded up to the next multiple of 16 (a full block of padding when
    /// `len` is already a multiple).
    pub fn encrypt_padded(
        &self,
        iv: &Iv,
        buf: &mut [u8],
        len: usize,
    ) -> Result<usize, CryptoError> {
        encrypt_padded_with(&self.schedule, iv, buf, len)
    }

    /// Decrypts `buf` in place and strips the PKCS#7 padding; returns the plaintext length.
    ///
    /// Callers verify the packet's tag first, so a padding error here means a peer sealed a
    /// malformed packet under a valid key, not an attacker probing for a padding oracle.
    pub fn decrypt_padded(&self, iv: &Iv, buf: &mut [u8]) -> Result<usize, CryptoError> {
        decrypt_padded_with(&aes::Aes256Dec::from(&self.schedule), iv, buf)
    }
}

/// CBC encryption with PKCS#7 padding under any 128-bit block cipher; [`CbcKey`] uses it
/// with AES-256, and the vector tests with every AES key size.
pub(crate) fn encrypt_padded_with<C: BlockCipherEncrypt<BlockSize = U16>>(
    cipher: &C,
    iv: &Iv,
    buf: &mut [u8],
    len: usize,
) -> Result<usize, CryptoError> {
    let padded = padded_len(len);
    if buf.len() < padded {
        return Err(CryptoError::BufferTooSmall { needed: padded, available: buf.len() });
    }
    let pad = (padded - len) as u8;
    buf[len..padded].fill(pad);

    let (blocks, _) = Array::slice_as_chunks_mut(&mut buf[..padded]);
    cbc::Encryptor::<&C>::inner_iv_init(cipher, &Array::from(*iv)).encrypt_blocks(blocks);
    Ok(padded)
}

/// CBC decryption with PKCS#7 unpadding under any 128-bit block cipher.
pub(crate) fn decrypt_padded_with<C: BlockCipherDecrypt<BlockSize = U16>>(
    cipher: &C,
    iv: &Iv,
    buf: &mut [u8],
) -> Result<usize, CryptoError> {
    if buf.is_empty() || !buf.len().is_multiple_of(BLOCK_LEN) {
        return Err(CryptoError::CiphertextLength { len: buf.len() });
    }
    let (blocks, _) = Array::slice_as_chunks_mut(buf);
    cbc::Decryptor::<&C>::inner_iv_init(cipher, &Array::from(*iv)).decrypt_blocks(blocks);

    let pad = usize::from(buf[buf.len() - 1]);
    let valid = (1..=BLOCK_LEN).contains(&pad)
        && buf[buf.len() - pad..].iter().all(|&b| usize::from(b) == pad);
    if !valid {
        return Err(CryptoError::BadPadding);
    }
    Ok(buf.len() - pad)
}

/// Length of the PKCS#7-padded ciphertext for `len` plaintext bytes.
pub const fn padded_len(len: usize) -> usize {
    (len / BLOCK_LEN + 1).saturating_mul(BLOCK_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_length_to_three_blocks() {
        let key = CbcKey::new(&[7; 32]);
        let iv = [9; 16];
        for len in 0..=48 {
            let plain: Vec<u8> = (0..len as u8).collect();
            let mut buf = vec![0u8; 64];
            buf[..len].copy_from_slice(&plain);
            let ct_len = key.encrypt_padded(&iv, &mut buf, len).unwrap();
            assert_eq!(ct_len, padded_len(len));
            if len > 0 {
                assert_ne!(&buf[..len], &plain[..], "len {len} left plaintext");
            }
            let pt_len = key.decrypt_padded(&iv, &mut buf[..ct_len]).unwrap();
            assert_eq!(&buf[..pt_len], &plain[..], "len {len}");
        }
    }

    #[test]
    fn matches_cbc_crate_with_pkcs7() {
        use aes::cipher::KeyIvInit;
        let key = [0x42; 32];
        let iv = [0x24; 16];
        let plain = b"thirty-three bytes of plain text!";
        let mut ours = [0u8; 48];
        ours[..plain.len()].copy_from_slice(plain);
        let n = CbcKey::new(&key).encrypt_padded(&iv, &mut ours, plain.len()).unwrap();

        let mut theirs = [0u8; 48];
        theirs[..plain.len()].copy_from_slice(plain);
        theirs[plain.len()..].fill(48 - plain.len() as u8);
        let (blocks, _) = Array::slice_as_chunks_mut(&mut theirs[..]);
        cbc::Encryptor::<Aes256Enc>::new(&key.into(), &iv.into()).encrypt_blocks(blocks);
        assert_eq!(&ours[..n], &theirs[..]);
    }

    #[test]
    fn short_buffer_is_an_error() {
        let key = CbcKey::new(&[1; 32]);
        let mut buf = [0u8; 16];
        let err = key.encrypt_padded(&[0; 16], &mut buf, 16).unwrap_err();
        assert_eq!(err, CryptoError::BufferTooSmall { needed: 32, available: 16 });
    }

    #[test]
    fn ragged_ciphertext_is_an_error() {
        let key = CbcKey::new(&[1; 32]);
        assert_eq!(
            key.decrypt_padded(&[0; 16], &mut [0u8; 17]).unwrap_err(),
            CryptoError::CiphertextLength { len: 17 }
        );
        assert_eq!(
            key.decrypt_padded(&[0; 16], &mut []).unwrap_err(),
            CryptoError::CiphertextLength { len: 0 }
        );
    }

    #[test]
    fn bad_padding_is_an_error() {
        let key = CbcKey::new(&[1; 32]);
        let iv = [0; 16];
        // Each plaintext is one full block followed by a padding block; decrypting only the
        // first block leaves its own last bytes to be read as padding.
        let cases: [(&str, [u8; 16]); 3] = [
            ("zero length", [0; 16]),
            ("longer than a block", [17; 16]),
            ("inconsistent bytes", [[0; 13].as_slice(), &[1, 3, 2]].concat().try_into().unwrap()),
        ];
        for (name, block) in cases {
            let mut buf = [0u8; 32];
            buf[..16].copy_from_slice(&block);
            key.encrypt_padded(&iv, &mut buf, 16).unwrap();
            assert_eq!(
                key.decrypt_padded(&iv, &mut buf[..16]),
                Err(CryptoError::BadPadding),
                "{name}"
            );
        }
    }
}
