//! HMAC-SHA-384 and HMAC-SHA-512 with the keyed states computed once per key.
//!
//! HMAC (RFC 2104) hashes `K ^ ipad` and `K ^ opad` as the first block of the inner and outer
//! hashes. Those two blocks depend only on the key, so a [`MacKey`] stores the SHA-512
//! chaining state after each of them (64 bytes apiece) and a tag costs only the message
//! blocks plus one outer block. SHA-384 is SHA-512 with other initial values and a
//! truncated output (FIPS 180-4, 5.3.4 and 6.5), so one compression function serves both.

use sha2::Digest;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::sha512::compress as compress512;

/// SHA-512 block length in bytes.
const BLOCK_LEN: usize = 128;

/// FIPS 180-4, 5.3.5: initial hash value of SHA-512.
const SHA512_IV: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// FIPS 180-4, 5.3.4: initial hash value of SHA-384.
const SHA384_IV: [u64; 8] = [
    0xcbbb9d5dc1059ed8,
    0x629a292a367cd507,
    0x9159015a3070dd17,
    0x152fecd8f70e5939,
    0x67332667ffc00b31,
    0x8eb44a8768581511,
    0xdb0c2e0d64f98fa7,
    0x47b5481dbefa4fa4,
];

/// The hash under an HMAC key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MacAlgorithm {
    /// HMAC-SHA-384: 48-byte tags.
    Sha384,
    /// HMAC-SHA-512: 64-byte tags.
    Sha512,
}

impl MacAlgorithm {
    /// Length in bytes of a full tag, which is the length svrd sends: tags are never truncated.
    pub const fn tag_len(self) -> usize {
        match self {
            MacAlgorithm::Sha384 => 48,
            MacAlgorithm::Sha512 => 64,
        }
    }

    /// The name used in configuration and logs.
    pub const fn name(self) -> &'static str {
        match self {
            MacAlgorithm::Sha384 => "hmac-sha-384",
            MacAlgorithm::Sha512 => "hmac-sha-512",
        }
    }

    const fn initial_state(self) -> [u64; 8] {
        match self {
            MacAlgorithm::Sha384 => SHA384_IV,
            MacAlgorithm::Sha512 => SHA512_IV,
        }
    }
}

/// The longest tag any algorithm produces.
pub const MAX_TAG_LEN: usize = 64;

/// A computed tag: [`MacAlgorithm::tag_len`] bytes are meaningful.
#[derive(Clone, Copy)]
pub struct Tag {
    bytes: [u8; MAX_TAG_LEN],
    len: usize,
}

impl Tag {
    /// The tag bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl core::fmt::Debug for Tag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // A tag is public once sent, but a tag computed for a rejected packet is an oracle
        // output, so only its length is shown.
        write!(f, "Tag({} bytes)", self.len)
    }
}

/// An HMAC key in precomputed form: the SHA-512 state after the `ipad` and `opad` blocks.
///
/// The two states are as secret as the key itself, so they are wiped on drop and never
/// printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MacKey {
    #[zeroize(skip)]
    algorithm: MacAlgorithm,
    inner: [u64; 8],
    outer: [u64; 8],
}

impl MacKey {
    /// Precomputes the keyed states for `key`. Keys longer than the 128-byte block are hashed
    /// first, as RFC 2104 section 2 requires; any length, including zero, is accepted.
    pub fn new(algorithm: MacAlgorithm, key: &[u8]) -> MacKey {
        let mut block = [0u8; BLOCK_LEN];
        if key.len() > BLOCK_LEN {
            match algorithm {
                MacAlgorithm::Sha384 => block[..48].copy_from_slice(&sha2::Sha384::digest(key)),
                MacAlgorithm::Sha512 => block[..64].copy_from_slice(&sha2::Sha512::digest(key)),
            }
        } else {
            block[..key.len()].copy_from_slice(key);
        }

        let mut inner = algorithm.initial_state();
        let mut outer = algorithm.initial_state();
        block.iter_mut().for_each(|b| *b ^= 0x36);
        compress512(&mut inner, core::slice::from_ref(&block));
        block.iter_mut().for_each(|b| *b ^= 0x36 ^ 0x5c);
        compress512(&mut outer, core::slice::from_ref(&block));
        block.zeroize();

        MacKey { algorithm, inner, outer }
    }

    /// The algorithm this key is for.
    pub fn algorithm(&self) -> MacAlgorithm {
        self.algorithm
    }

    /// The SHA-512 chaining values after the `ipad` and the `opad` block, for
    /// [`mb`](super::mb).
    pub(crate) fn states(&self) -> (&[u64; 8], &[u64; 8]) {
        (&self.inner, &self.outer)
    }

    /// Computes the full-length tag of `message`.
    pub fn tag(&self, message: &[u8]) -> Tag {
        let mut state = self.inner;
        let inner_len = BLOCK_LEN + message.len();
        let (blocks, rest) = message.as_chunks::<BLOCK_LEN>();
        compress512(&mut state, blocks);
        finish(&mut state, rest, inner_len);

        let tag_len = self.algorithm.tag_len();
        let mut inner_hash = [0u8; MAX_TAG_LEN];
        write_digest(&state, &mut inner_hash[..tag_len]);

        let mut state = self.outer;
        finish(&mut state, &inner_hash[..tag_len], BLOCK_LEN + tag_len);

        let mut tag = Tag { bytes: [0; MAX_TAG_LEN], len: tag_len };
        write_digest(&state, &mut tag.bytes[..tag_len]);
        state.zeroize();
        inner_hash.zeroize();
        tag
    }

    /// Checks `tag` against the tag of `message` in constant time.
    ///
    /// The tag must be full length: a truncated tag is rejected, whatever its prefix.
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        if tag.len() != self.algorithm.tag_len() {
            return false;
        }
        self.tag(message).as_bytes().ct_eq(tag).into()
    }
}

impl core::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MacKey").field("algorithm", &self.algorithm).finish_non_exhaustive()
    }
}

/// Pads and compresses the last partial block of a message of `total_len` bytes (counting
/// the key block), per FIPS 180-4 5.1.2: a one bit, zeros, then the bit length in 128 bits.
fn finish(state: &mut [u64; 8], rest: &[u8], total_len: usize) {
    let mut blocks = [[0u8; BLOCK_LEN]; 2];
    let flat = blocks.as_flattened_mut();
    flat[..rest.len()].copy_from_slice(rest);
    flat[rest.len()] = 0x80;

    // The length field takes the last 16 bytes; a second block is needed when the one bit
    // and the length do not fit after the remainder.
    let used = if rest.len() + 1 + 16 <= BLOCK_LEN { 1 } else { 2 };
    let bit_len = (total_len as u128) * 8;
    flat[used * BLOCK_LEN - 16..used * BLOCK_LEN].copy_from_slice(&bit_len.to_be_bytes());
    compress512(state, &blocks[..used]);
    blocks.as_flattened_mut().zeroize();
}

fn write_digest(state: &[u64; 8], out: &mut [u8]) {
    for (chunk, word) in out.chunks_mut(8).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes()[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{KeyInit, Mac};

    fn reference(algorithm: MacAlgorithm, key: &[u8], message: &[u8]) -> Vec<u8> {
        match algorithm {
            MacAlgorithm::Sha384 => {
                let mut mac = hmac::Hmac::<sha2::Sha384>::new_from_slice(key).unwrap();
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
            MacAlgorithm::Sha512 => {
                let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    #[test]
    fn matches_hmac_crate_at_block_edges() {
        let key: Vec<u8> = (0..200u8).collect();
        let message: Vec<u8> = (0..600u32).map(|i| (i * 7) as u8).collect();
        for algorithm in [MacAlgorithm::Sha384, MacAlgorithm::Sha512] {
            for key_len in [0, 1, 47, 48, 64, 127, 128, 129, 200] {
                let mac = MacKey::new(algorithm, &key[..key_len]);
                for len in [0, 1, 110, 111, 112, 113, 127, 128, 129, 239, 240, 256, 600] {
                    let expected = reference(algorithm, &key[..key_len], &message[..len]);
                    assert_eq!(
                        mac.tag(&message[..len]).as_bytes(),
                        expected,
                        "{algorithm:?} key {key_len} len {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn verify_rejects_truncated_and_flipped_tags() {
        let mac = MacKey::new(MacAlgorithm::Sha384, b"key");
        let tag = mac.tag(b"message");
        assert!(mac.verify(b"message", tag.as_bytes()));
        assert!(!mac.verify(b"message", &tag.as_bytes()[..24]));
        assert!(!mac.verify(b"messagf", tag.as_bytes()));
        let mut flipped = tag.as_bytes().to_vec();
        flipped[47] ^= 1;
        assert!(!mac.verify(b"message", &flipped));
    }

    #[test]
    fn debug_hides_key_state() {
        let mac = MacKey::new(MacAlgorithm::Sha512, &[0xAB; 64]);
        let shown = format!("{mac:?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(shown.contains("Sha512"));
    }
}
