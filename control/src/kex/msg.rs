//! The ESKM message set and its byte encoding: a fixed header, a body per message type and
//! the sender's signature over both.

use std::fmt;

use super::KexAlgorithm;
use super::dh::DhGroup;
use super::error::DecodeError;
use super::mlkem::MlKemLevel;

/// Protocol version carried in every message.
pub const VERSION: u8 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 32;
/// Largest certificate accepted, in bytes.
pub const MAX_CERTIFICATE: usize = 16 * 1024;
/// Largest signature accepted, in bytes (a DER ECDSA P-521 signature is at most 139 bytes,
/// an RSA-4096 signature 512).
pub const MAX_SIGNATURE: usize = 1024;
/// Largest sealed body accepted, in bytes.
pub const MAX_SEALED: usize = 1024;

/// Message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MessageKind {
    /// The sender's certificate.
    Certificate = 1,
    /// Acknowledges the receiver's certificate by its SHA-384 fingerprint.
    CertificateAck = 2,
    /// The sender's salt for an exchange, with the algorithm it is configured for.
    Salt = 3,
    /// Acknowledges the receiver's salt.
    SaltAck = 4,
    /// The sender's DH public value and, on the ML-KEM key generator, its encapsulation key.
    KeyExchange = 5,
    /// The ML-KEM ciphertext, from the encapsulating side.
    Encapsulation = 6,
    /// The sender's metadata key bundle, sealed under the peer key(s) of the exchange.
    MetadataKey = 7,
    /// Acknowledges a metadata key by its index, sealed under the peer key(s).
    MetadataKeyAck = 8,
    /// Asks the receiver to start a new exchange with an id above the one in the header.
    RekeyRequest = 9,
}

impl MessageKind {
    fn from_code(code: u8) -> Result<Self, DecodeError> {
        Ok(match code {
            1 => MessageKind::Certificate,
            2 => MessageKind::CertificateAck,
            3 => MessageKind::Salt,
            4 => MessageKind::SaltAck,
            5 => MessageKind::KeyExchange,
            6 => MessageKind::Encapsulation,
            7 => MessageKind::MetadataKey,
            8 => MessageKind::MetadataKeyAck,
            9 => MessageKind::RekeyRequest,
            _ => return Err(DecodeError::UnknownType { kind: code }),
        })
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            MessageKind::Certificate => "certificate",
            MessageKind::CertificateAck => "certificate-ack",
            MessageKind::Salt => "salt",
            MessageKind::SaltAck => "salt-ack",
            MessageKind::KeyExchange => "key-exchange",
            MessageKind::Encapsulation => "encapsulation",
            MessageKind::MetadataKey => "metadata-key",
            MessageKind::MetadataKeyAck => "metadata-key-ack",
            MessageKind::RekeyRequest => "rekey-request",
        };
        f.write_str(name)
    }
}

/// The fixed header of every message.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +---------------+---------------+-------------------------------+
/// |    Version    |     Type      |          Body Length          |
/// +---------------+---------------+-------------------------------+
/// |                  Sender Boot Id (64 bits)                     |
/// +                                                               +
/// |                                                               |
/// +---------------------------------------------------------------+
/// |                 Receiver Boot Id (64 bits)                    |
/// +                                                               +
/// |                                                               |
/// +---------------------------------------------------------------+
/// |                  Sequence Number (64 bits)                    |
/// +                                                               +
/// |                                                               |
/// +---------------------------------------------------------------+
/// |                     Exchange Id (32 bits)                     |
/// +---------------------------------------------------------------+
/// |                    Body (Body Length octets)                  |
/// +-------------------------------+-------------------------------+
/// |       Signature Length        |  Signature (variable)         |
/// +-------------------------------+-------------------------------+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub kind: MessageKind,
    /// Boot id of the sender; it grows across restarts of the sender.
    pub sender_boot: u64,
    /// Boot id of the receiver as the sender last saw it, 0 when unknown (certificate only).
    pub receiver_boot: u64,
    /// Per-peer sequence number of the sender, starting at 1 at each boot; every
    /// transmission, retransmissions included, takes a new one.
    pub sequence: u64,
    /// Exchange the message belongs to (0 for certificate messages).
    pub exchange: u32,
}

/// The body of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// `Cert Length (u16) | Certificate`.
    Certificate { certificate: Vec<u8> },
    /// `Fingerprint (48)`: SHA-384 of the certificate being acknowledged.
    CertificateAck { fingerprint: [u8; 48] },
    /// `Salt (u32) | Algorithm (5)`.
    Salt { salt: u32, algorithm: KexAlgorithm },
    /// `Acknowledged Salt (u32) | Algorithm (5)`.
    SaltAck { salt: u32, algorithm: KexAlgorithm },
    /// `Algorithm (5) | DH Length (u16) | DH Public | EK Length (u16) | Encapsulation Key`.
    KeyExchange { algorithm: KexAlgorithm, dh_public: Vec<u8>, encapsulation_key: Vec<u8> },
    /// `CT Length (u16) | Ciphertext`.
    Encapsulation { ciphertext: Vec<u8> },
    /// Sealed metadata key bundle (rest of the body).
    MetadataKey { sealed: Vec<u8> },
    /// Sealed acknowledged index (rest of the body).
    MetadataKeyAck { sealed: Vec<u8> },
    /// Empty.
    RekeyRequest,
}

impl Body {
    /// Returns the message type of this body.
    pub fn kind(&self) -> MessageKind {
        match self {
            Body::Certificate { .. } => MessageKind::Certificate,
            Body::CertificateAck { .. } => MessageKind::CertificateAck,
            Body::Salt { .. } => MessageKind::Salt,
            Body::SaltAck { .. } => MessageKind::SaltAck,
            Body::KeyExchange { .. } => MessageKind::KeyExchange,
            Body::Encapsulation { .. } => MessageKind::Encapsulation,
            Body::MetadataKey { .. } => MessageKind::MetadataKey,
            Body::MetadataKeyAck { .. } => MessageKind::MetadataKeyAck,
            Body::RekeyRequest => MessageKind::RekeyRequest,
        }
    }
}

/// A decoded message, borrowing the bytes it was read from.
#[derive(Debug)]
pub struct Message<'a> {
    /// Header fields.
    pub header: Header,
    /// Body fields.
    pub body: Body,
    /// Header and body: the bytes the signature covers (after the signing context).
    pub signed: &'a [u8],
    /// The signature.
    pub signature: &'a [u8],
}

/// Encodes the header and body, without the signature.
pub fn encode_unsigned(header: &Header, body: &Body) -> Vec<u8> {
    let mut b = Vec::new();
    match body {
        Body::Certificate { certificate } => put_var(&mut b, certificate),
        Body::CertificateAck { fingerprint } => b.extend_from_slice(fingerprint),
        Body::Salt { salt, algorithm } | Body::SaltAck { salt, algorithm } => {
            b.extend_from_slice(&salt.to_be_bytes());
            b.extend_from_slice(&algorithm.code());
        }
        Body::KeyExchange { algorithm, dh_public, encapsulation_key } => {
            b.extend_from_slice(&algorithm.code());
            put_var(&mut b, dh_public);
            put_var(&mut b, encapsulation_key);
        }
        Body::Encapsulation { ciphertext } => put_var(&mut b, ciphertext),
        Body::MetadataKey { sealed } | Body::MetadataKeyAck { sealed } => {
            b.extend_from_slice(sealed)
        }
        Body::RekeyRequest => {}
    }

    let mut out = Vec::with_capacity(HEADER_LEN + b.len() + 2 + 72);
    out.push(VERSION);
    out.push(header.kind as u8);
    // Bodies are bounded far below 64 KiB by the field caps, so the length fits.
    out.extend_from_slice(&(b.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
    out.extend_from_slice(&header.sender_boot.to_be_bytes());
    out.extend_from_slice(&header.receiver_boot.to_be_bytes());
    out.extend_from_slice(&header.sequence.to_be_bytes());
    out.extend_from_slice(&header.exchange.to_be_bytes());
    out.extend_from_slice(&b);
    out
}

/// Appends the signature to an encoded unsigned message.
pub fn append_signature(mut unsigned: Vec<u8>, signature: &[u8]) -> Vec<u8> {
    let len = signature.len().min(usize::from(u16::MAX));
    unsigned.extend_from_slice(&(len as u16).to_be_bytes());
    unsigned.extend_from_slice(&signature[..len]);
    unsigned
}

/// Builds the associated data that sealed bodies authenticate: the header with the body
/// length set to zero, because the signature already covers the length.
pub fn seal_aad(header: &Header) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0] = VERSION;
    out[1] = header.kind as u8;
    out[4..12].copy_from_slice(&header.sender_boot.to_be_bytes());
    out[12..20].copy_from_slice(&header.receiver_boot.to_be_bytes());
    out[20..28].copy_from_slice(&header.sequence.to_be_bytes());
    out[28..32].copy_from_slice(&header.exchange.to_be_bytes());
    out
}

/// Decodes a message. Every length is checked before it is used; nothing is trusted until
/// the caller verifies the signature.
pub fn decode(bytes: &[u8]) -> Result<Message<'_>, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::UnknownVersion { version });
    }
    let kind = MessageKind::from_code(r.u8()?)?;
    let body_len = usize::from(r.u16()?);
    let header = Header {
        kind,
        sender_boot: r.u64()?,
        receiver_boot: r.u64()?,
        sequence: r.u64()?,
        exchange: r.u32()?,
    };

    let body_bytes = r.take(body_len)?;
    let signed = &bytes[..r.pos];
    let sig_len = usize::from(r.u16()?);
    if sig_len > MAX_SIGNATURE {
        return Err(DecodeError::FieldTooLong {
            field: "signature",
            len: sig_len,
            max: MAX_SIGNATURE,
        });
    }
    let signature = r.take(sig_len)?;
    r.finish()?;

    let body = decode_body(kind, body_bytes)?;
    Ok(Message { header, body, signed, signature })
}

fn decode_body(kind: MessageKind, bytes: &[u8]) -> Result<Body, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let body = match kind {
        MessageKind::Certificate => {
            Body::Certificate { certificate: r.var("certificate", MAX_CERTIFICATE)?.to_vec() }
        }
        MessageKind::CertificateAck => {
            let mut fingerprint = [0u8; 48];
            fingerprint.copy_from_slice(r.take(48)?);
            Body::CertificateAck { fingerprint }
        }
        MessageKind::Salt => Body::Salt { salt: r.u32()?, algorithm: r.algorithm()? },
        MessageKind::SaltAck => Body::SaltAck { salt: r.u32()?, algorithm: r.algorithm()? },
        MessageKind::KeyExchange => {
            let algorithm = r.algorithm()?;
            let dh_public = r.var("dh public value", 512)?.to_vec();
            let encapsulation_key = r.var("encapsulation key", 1568)?.to_vec();
            Body::KeyExchange { algorithm, dh_public, encapsulation_key }
        }
        MessageKind::Encapsulation => {
            Body::Encapsulation { ciphertext: r.var("ciphertext", 1568)?.to_vec() }
        }
        MessageKind::MetadataKey | MessageKind::MetadataKeyAck => {
            let rest = r.take(bytes.len())?;
            if rest.len() > MAX_SEALED {
                return Err(DecodeError::FieldTooLong {
                    field: "sealed body",
                    len: rest.len(),
                    max: MAX_SEALED,
                });
            }
            let sealed = rest.to_vec();
            if kind == MessageKind::MetadataKey {
                Body::MetadataKey { sealed }
            } else {
                Body::MetadataKeyAck { sealed }
            }
        }
        MessageKind::RekeyRequest => Body::RekeyRequest,
    };
    r.finish()?;
    Ok(body)
}

fn put_var(out: &mut Vec<u8>, field: &[u8]) {
    let len = field.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&field[..len]);
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(DecodeError::Truncated { offset: self.pos, needed: n });
        };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }

    fn var(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u16()?);
        if len > max {
            return Err(DecodeError::FieldTooLong { field, len, max });
        }
        self.take(len)
    }

    fn algorithm(&mut self) -> Result<KexAlgorithm, DecodeError> {
        let b = self.take(5)?;
        KexAlgorithm::from_code([b[0], b[1], b[2], b[3], b[4]])
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes { count: self.bytes.len() - self.pos })
        }
    }
}

impl KexAlgorithm {
    /// Encodes the algorithm as its 5-byte wire code: kind (1 DH, 2 ML-KEM, 3 hybrid), DH bits (u16, 0 without DH),
    /// ML-KEM size (u16, 0 without ML-KEM).
    pub fn code(&self) -> [u8; 5] {
        let (kind, dh, kem) = match self {
            KexAlgorithm::DiffieHellman(g) => (1u8, g.bits(), 0u16),
            KexAlgorithm::MlKem(l) => (2, 0, l.size()),
            KexAlgorithm::Hybrid(g, l) => (3, g.bits(), l.size()),
        };
        let d = dh.to_be_bytes();
        let k = kem.to_be_bytes();
        [kind, d[0], d[1], k[0], k[1]]
    }

    /// Decodes a wire code written by [`KexAlgorithm::code`].
    pub fn from_code(code: [u8; 5]) -> Result<Self, DecodeError> {
        let kind = code[0];
        let dh_bits = u16::from_be_bytes([code[1], code[2]]);
        let ml_kem = u16::from_be_bytes([code[3], code[4]]);
        let err = DecodeError::UnknownAlgorithm { kind, dh_bits, ml_kem };
        let group = DhGroup::from_bits(dh_bits);
        let level = MlKemLevel::from_size(ml_kem);
        match (kind, group, level, dh_bits, ml_kem) {
            (1, Some(g), None, _, 0) => Ok(KexAlgorithm::DiffieHellman(g)),
            (2, None, Some(l), 0, _) => Ok(KexAlgorithm::MlKem(l)),
            (3, Some(g), Some(l), _, _) => Ok(KexAlgorithm::Hybrid(g, l)),
            _ => Err(err),
        }
    }
}

/// Builds the bytes a signature covers: a context label, both peering common names (so a
/// message cannot be replayed towards another router), then header and body.
pub fn signing_input(sender: &str, receiver: &str, signed: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + sender.len() + receiver.len() + signed.len());
    out.extend_from_slice(b"svrd eskm v1 signature");
    out.push(sender.len().min(255) as u8);
    out.extend_from_slice(sender.as_bytes());
    out.push(receiver.len().min(255) as u8);
    out.extend_from_slice(receiver.as_bytes());
    out.extend_from_slice(signed);
    out
}
