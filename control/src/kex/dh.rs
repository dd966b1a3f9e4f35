//! Finite-field Diffie-Hellman over the MODP groups (RFC 2409 group 2, RFC 3526 groups 14
//! and 16) with g = 2: ephemeral key pairs, public-value checks and the shared secret.

use std::fmt;
use std::sync::OnceLock;

use num_bigint::BigUint;
use num_traits::{One, Zero};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::error::DhError;

/// A MODP group. Every group here is a safe prime p = 2q + 1 with generator 2, and 2 is a
/// quadratic residue for each of them (p = 7 mod 8), so 2 generates the subgroup of order q.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DhGroup {
    /// 1024-bit MODP group, RFC 2409 section 6.2 (Oakley group 2).
    Modp1024,
    /// 2048-bit MODP group, RFC 3526 section 3 (group 14).
    Modp2048,
    /// 4096-bit MODP group, RFC 3526 section 5 (group 16).
    Modp4096,
}

impl DhGroup {
    /// Every supported group, smallest first.
    pub const ALL: [DhGroup; 3] = [DhGroup::Modp1024, DhGroup::Modp2048, DhGroup::Modp4096];

    /// Returns the group for a `dh-key-size` value in bits (1024, 2048 or 4096).
    pub fn from_bits(bits: u16) -> Option<Self> {
        match bits {
            1024 => Some(DhGroup::Modp1024),
            2048 => Some(DhGroup::Modp2048),
            4096 => Some(DhGroup::Modp4096),
            _ => None,
        }
    }

    /// Size of the prime in bits.
    pub fn bits(self) -> u16 {
        match self {
            DhGroup::Modp1024 => 1024,
            DhGroup::Modp2048 => 2048,
            DhGroup::Modp4096 => 4096,
        }
    }

    /// Length in bytes of every encoded public value and shared secret of this group.
    pub fn encoded_len(self) -> usize {
        usize::from(self.bits() / 8)
    }

    /// Returns the length in bits of the ephemeral private exponent.
    ///
    /// Each length is at least twice the group's estimated security strength, the rule NIST
    /// SP 800-56A sets for private keys in safe-prime groups. The strengths are 80 bits for
    /// 1024 (not an approved group, kept for compatibility), 112 for 2048 and 152 for 4096,
    /// so the minimums are 160, 224 and 304. The lengths chosen are 224, 256 and 320 bits, so
    /// no group gets a shorter exponent than the 2048-bit group's minimum.
    pub fn exponent_bits(self) -> u32 {
        match self {
            DhGroup::Modp1024 => 224,
            DhGroup::Modp2048 => 256,
            DhGroup::Modp4096 => 320,
        }
    }

    /// Returns the prime p.
    pub fn prime(self) -> &'static BigUint {
        &self.params().p
    }

    /// Returns the subgroup order q = (p - 1) / 2.
    pub fn order(self) -> &'static BigUint {
        &self.params().q
    }

    fn params(self) -> &'static GroupParams {
        static P1024: OnceLock<GroupParams> = OnceLock::new();
        static P2048: OnceLock<GroupParams> = OnceLock::new();
        static P4096: OnceLock<GroupParams> = OnceLock::new();
        match self {
            DhGroup::Modp1024 => P1024.get_or_init(|| GroupParams::from_hex(MODP_1024_HEX)),
            DhGroup::Modp2048 => P2048.get_or_init(|| GroupParams::from_hex(MODP_2048_HEX)),
            DhGroup::Modp4096 => P4096.get_or_init(|| GroupParams::from_hex(MODP_4096_HEX)),
        }
    }
}

impl fmt::Display for DhGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "modp-{}", self.bits())
    }
}

/// An ephemeral Diffie-Hellman key pair, used for one exchange.
pub struct DhKeyPair {
    group: DhGroup,
    // Big-endian private exponent x. The bytes are wiped on drop.
    private: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
}

impl DhKeyPair {
    /// Generates a private exponent of `group.exponent_bits()` bits and its public value
    /// 2^x mod p.
    pub fn generate<R: CryptoRng + ?Sized>(group: DhGroup, rng: &mut R) -> Self {
        let nbytes = (group.exponent_bits() / 8) as usize;
        let mut private = Zeroizing::new(vec![0u8; nbytes]);
        rng.fill_bytes(&mut private);
        // The top bit is set so that every exponent has the full length (and is never zero).
        private[0] |= 0x80;

        let x = BigUint::from_bytes_be(&private);
        let y = blinded_pow(group, &BigUint::from(2u32), &x, rng);
        let public = encode_fixed(group, &y);
        DhKeyPair { group, private, public }
    }

    /// The group this key pair belongs to.
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The public value, big-endian at the full group length.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// Checks the peer's public value and computes the shared secret y^x mod p.
    pub fn agree<R: CryptoRng + ?Sized>(
        &self,
        peer_public: &[u8],
        rng: &mut R,
    ) -> Result<DhSecret, DhError> {
        let y = check_public(self.group, peer_public)?;
        Ok(self.agree_checked(&y, rng))
    }

    /// Computes the shared secret with a public value that already passed
    /// [`check_public`].
    pub fn agree_checked<R: CryptoRng + ?Sized>(&self, y: &BigUint, rng: &mut R) -> DhSecret {
        let x = BigUint::from_bytes_be(&self.private);
        let z = blinded_pow(self.group, y, &x, rng);
        DhSecret(Zeroizing::new(encode_fixed(self.group, &z)))
    }
}

impl fmt::Debug for DhKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhKeyPair").field("group", &self.group).finish_non_exhaustive()
    }
}

/// A Diffie-Hellman shared secret, big-endian at the full group length (leading zeros kept).
pub struct DhSecret(Zeroizing<Vec<u8>>);

impl DhSecret {
    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for DhSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DhSecret(..)")
    }
}

/// Checks a received public value and returns it as an integer.
///
/// The value must be exactly `group.encoded_len()` bytes, satisfy 1 < y < p - 1 (SP 800-56A rev. 3,
/// section 5.6.2.3.1, partial check) and lie in the subgroup of order q, y^q = 1 mod p (the
/// full check of the same section). The full check rules out the small subgroup {1, p - 1}
/// that a safe prime leaves open.
pub fn check_public(group: DhGroup, bytes: &[u8]) -> Result<BigUint, DhError> {
    if bytes.len() != group.encoded_len() {
        return Err(DhError::WrongLength {
            group,
            expected: group.encoded_len(),
            actual: bytes.len(),
        });
    }

    let p = group.prime();
    let y = BigUint::from_bytes_be(bytes);
    let p_minus_one = p - 1u32;
    if y <= BigUint::one() || y >= p_minus_one {
        return Err(DhError::OutOfRange { group });
    }

    if y.modpow(group.order(), p) != BigUint::one() {
        return Err(DhError::NotInSubgroup { group });
    }
    Ok(y)
}

/// Encodes an integer below p big-endian at the full group length, with leading zeros.
pub fn encode_fixed(group: DhGroup, value: &BigUint) -> Vec<u8> {
    let len = group.encoded_len();
    let bytes = value.to_bytes_be();
    let mut out = vec![0u8; len];
    // A value below p never has more bytes than the group; a longer one would be a bug in
    // the caller, and keeping its low-order bytes still yields a fixed-length output.
    let take = bytes.len().min(len);
    out[len - take..].copy_from_slice(&bytes[bytes.len() - take..]);
    out
}

/// Computes base^x mod p with the exponent blinded as x + r*q for a fresh random 64-bit r.
///
/// num-bigint's modpow runs in time and memory-access patterns that depend on the exponent
/// bits. Because base lies in the subgroup of order q, base^(x + r*q) = base^x, and each call
/// uses a different exponent bit pattern, so an attacker who averages timing or cache traces
/// over many operations does not see a fixed pattern for x. It does not protect against an
/// attacker who can recover the exponent from a single trace, it does not blind the base,
/// and the limb buffers that num-bigint allocates for x are not wiped when freed. The cost
/// is a full-length exponent, about 8 times the work of the short exponent for 2048 bits.
fn blinded_pow<R: CryptoRng + ?Sized>(
    group: DhGroup,
    base: &BigUint,
    x: &BigUint,
    rng: &mut R,
) -> BigUint {
    let r = BigUint::from(rng.next_u64() | 1);
    let exponent = x + r * group.order();
    base.modpow(&exponent, group.prime())
}

struct GroupParams {
    p: BigUint,
    q: BigUint,
}

impl GroupParams {
    fn from_hex(hex: &str) -> Self {
        // The constants below are checked by the tests. Should one fail to parse, p is zero
        // and every public value fails the range check, so the group fails closed.
        let p = BigUint::parse_bytes(hex.as_bytes(), 16).unwrap_or_else(BigUint::zero);
        let q = if p.is_zero() { BigUint::zero() } else { (&p - 1u32) >> 1 };
        GroupParams { p, q }
    }
}

// The primes are p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) * pi) + k), with
// k = 129093 for n = 1024, 124476 for 2048 and 240904 for 4096 (RFC 2409 and RFC 3526).
const MODP_1024_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
);

const MODP_2048_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
);

const MODP_4096_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7",
    "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8",
    "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2",
    "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9",
    "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF",
);
