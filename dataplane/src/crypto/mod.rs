//! Per-packet crypto: AES-CBC-256 then HMAC-SHA-384 or -512, encrypt-then-MAC.
//!
//! The byte layouts are defined in `docs/protocol.md`; in short, every SVR packet between
//! routers ends in a trailer of an 8-byte sequence field and a full-length tag:
//!
//! ```text
//! +---------------------+----------------------+--------------+-------------------+
//! | SVR metadata (opt.) | payload (ciphertext) | key id | seq | tag (48 / 64 B)   |
//! +---------------------+----------------------+--------------+-------------------+
//!                                              |<-- 1 --><-7->|
//! |<------------------- covered by the tag ------------------>|
//! ```
//!
//! - Payload ciphertext is AES-CBC-256 with PKCS#7 padding under the session's payload key.
//!   Its IV is not sent: it is the AES encryption, under the same key, of a block made of
//!   the direction and the sequence field ([`payload_iv`]), so it is unique per key and
//!   unpredictable without the key.
//! - The encrypted payload-TLV section of the metadata is `IV || AES-CBC-256(TLVs)` under the
//!   receiving router's metadata key, with a fresh random IV, because many routers encrypt
//!   under one router's metadata key and a counter could not be kept unique among them.
//! - The tag is keyed by the sending and receiving routers' pair key when the packet carries
//!   metadata, and by the session's MAC key for that direction otherwise.
//!
//! Keys are expanded once ([`SessionKeys`], [`MetadataKeys`], [`PairKeys`]) and every check of a tag runs
//! in constant time before anything is decrypted or any state is changed.
//!
//! [`mb`] seals and opens whole bursts of session packets, with the same bytes on the wire
//! as [`seal_fast_path`] and [`open_fast_path`], by running many packets through SIMD lanes
//! at once.

mod aes_cbc;
mod error;
mod hmac;
mod keys;
pub mod mb;
mod seal;
mod sha512;

pub use aes_cbc::{BLOCK_LEN, CbcKey, Iv, padded_len};
pub use error::CryptoError;
pub use hmac::{MAX_TAG_LEN, MacAlgorithm, MacKey, Tag};
pub use keys::{
    KeyId, MetadataKeys, MetadataSecret, PAYLOAD_KEY_TLV_LEN, PairKeys, PairSecret, PayloadKeyTlv,
    PayloadSecret, SECRET_LEN, SessionKeys, Suite,
};
pub use seal::{
    Direction, OpenError, SEQUENCE_LEN, Sequence, decrypt_metadata_section, decrypt_payload,
    encrypt_metadata_section, encrypt_payload, open_fast_path, open_trailer, payload_iv,
    seal_fast_path, seal_trailer, sealed_overhead, verify_trailer,
};

#[cfg(test)]
mod vectors;

/// The SHA-512 compression this CPU runs for one-packet HMAC: `avx512`, `avx2` or
/// `portable` (the sha2 crate's).
pub fn sha512_variant() -> &'static str {
    sha512::Variant::detect().name()
}
