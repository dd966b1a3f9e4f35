//! ML-KEM (FIPS 203) at the three parameter sets, over the ml-kem crate: the long-lived
//! decapsulation key pair, encapsulation-key and ciphertext checks, encapsulation and
//! decapsulation with implicit rejection.

use std::fmt;

use ml_kem::array::Array;
use ml_kem::{
    B32, Decapsulate, DecapsulationKey, EncapsulationKey, KeyExport, MlKem512, MlKem768, MlKem1024,
    Seed,
};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::error::MlKemError;

/// Parses an encapsulation key of parameter set `$p`, returning early with the error.
///
/// EncapsulationKey::new performs the modulus check. Re-encoding and comparing repeats the
/// FIPS 203 check here, so the check does not depend on the crate version.
macro_rules! parse_ek {
    ($p:ty, $level:expr, $ek:expr) => {{
        let (level, ek): (MlKemLevel, &[u8]) = ($level, $ek);
        let expected = level.encapsulation_key_len();
        let encoded = Array::try_from(ek).map_err(|_| MlKemError::EncapsulationKeyLength {
            level,
            expected,
            actual: ek.len(),
        })?;
        let key = EncapsulationKey::<$p>::new(&encoded)
            .map_err(|_| MlKemError::EncapsulationKeyModulus { level })?;
        if key.to_bytes().as_slice() != ek {
            return Err(MlKemError::EncapsulationKeyModulus { level });
        }
        key
    }};
}

/// Length of a decapsulation-key seed (d || z, FIPS 203 section 7.1).
pub const SEED_LEN: usize = 64;

/// Length of an ML-KEM shared secret.
pub const SHARED_SECRET_LEN: usize = 32;

/// An ML-KEM parameter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum MlKemLevel {
    /// ML-KEM-512 (security category 1).
    MlKem512,
    /// ML-KEM-768 (security category 3).
    MlKem768,
    /// ML-KEM-1024 (security category 5).
    MlKem1024,
}

impl MlKemLevel {
    /// Every parameter set, smallest first.
    pub const ALL: [MlKemLevel; 3] =
        [MlKemLevel::MlKem512, MlKemLevel::MlKem768, MlKemLevel::MlKem1024];

    /// Returns the parameter set for an `ml-kem-key-size` value (512, 768 or 1024).
    pub fn from_size(size: u16) -> Option<Self> {
        match size {
            512 => Some(MlKemLevel::MlKem512),
            768 => Some(MlKemLevel::MlKem768),
            1024 => Some(MlKemLevel::MlKem1024),
            _ => None,
        }
    }

    /// Returns the `ml-kem-key-size` value.
    pub fn size(self) -> u16 {
        match self {
            MlKemLevel::MlKem512 => 512,
            MlKemLevel::MlKem768 => 768,
            MlKemLevel::MlKem1024 => 1024,
        }
    }

    /// Length of an encapsulation key, 384k + 32 bytes.
    pub fn encapsulation_key_len(self) -> usize {
        match self {
            MlKemLevel::MlKem512 => 800,
            MlKemLevel::MlKem768 => 1184,
            MlKemLevel::MlKem1024 => 1568,
        }
    }

    /// Length of a ciphertext, 32 (du k + dv) bytes.
    pub fn ciphertext_len(self) -> usize {
        match self {
            MlKemLevel::MlKem512 => 768,
            MlKemLevel::MlKem768 => 1088,
            MlKemLevel::MlKem1024 => 1568,
        }
    }
}

impl fmt::Display for MlKemLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ML-KEM-{}", self.size())
    }
}

/// An ML-KEM shared secret.
pub struct MlKemSecret(Zeroizing<[u8; SHARED_SECRET_LEN]>);

impl MlKemSecret {
    /// Returns the secret bytes.
    pub fn as_bytes(&self) -> &[u8; SHARED_SECRET_LEN] {
        &self.0
    }
}

impl fmt::Debug for MlKemSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MlKemSecret(..)")
    }
}

/// A decapsulation key with its encapsulation key, made once at start-up and reused.
///
/// The 64-byte seed is the whole private state, so the daemon can seal it (for example in
/// a TPM) and restore the same key pair with [`MlKemKeyPair::from_seed`].
pub struct MlKemKeyPair {
    level: MlKemLevel,
    seed: Zeroizing<[u8; SEED_LEN]>,
    inner: Inner,
    encapsulation_key: Vec<u8>,
}

enum Inner {
    L512(DecapsulationKey<MlKem512>),
    L768(DecapsulationKey<MlKem768>),
    L1024(DecapsulationKey<MlKem1024>),
}

impl MlKemKeyPair {
    /// Generates a key pair from 64 random bytes.
    pub fn generate<R: CryptoRng + ?Sized>(level: MlKemLevel, rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        rng.fill_bytes(seed.as_mut_slice());
        Self::build(level, seed)
    }

    /// Rebuilds a key pair from its seed (ML-KEM.KeyGen_internal(d, z)).
    pub fn from_seed(level: MlKemLevel, seed: &[u8]) -> Result<Self, MlKemError> {
        let bytes: [u8; SEED_LEN] =
            seed.try_into().map_err(|_| MlKemError::SeedLength { actual: seed.len() })?;
        Ok(Self::build(level, Zeroizing::new(bytes)))
    }

    fn build(level: MlKemLevel, seed: Zeroizing<[u8; SEED_LEN]>) -> Self {
        let s: Seed = Array::from(*seed);
        let (inner, encapsulation_key) = match level {
            MlKemLevel::MlKem512 => {
                let dk = DecapsulationKey::<MlKem512>::from_seed(s);
                let ek = dk.encapsulation_key().to_bytes().to_vec();
                (Inner::L512(dk), ek)
            }
            MlKemLevel::MlKem768 => {
                let dk = DecapsulationKey::<MlKem768>::from_seed(s);
                let ek = dk.encapsulation_key().to_bytes().to_vec();
                (Inner::L768(dk), ek)
            }
            MlKemLevel::MlKem1024 => {
                let dk = DecapsulationKey::<MlKem1024>::from_seed(s);
                let ek = dk.encapsulation_key().to_bytes().to_vec();
                (Inner::L1024(dk), ek)
            }
        };
        MlKemKeyPair { level, seed, inner, encapsulation_key }
    }

    /// Returns the parameter set.
    pub fn level(&self) -> MlKemLevel {
        self.level
    }

    /// Returns the seed, for sealing and a later restore.
    pub fn seed(&self) -> &[u8; SEED_LEN] {
        &self.seed
    }

    /// Returns the encoded encapsulation key that is sent to the peer.
    pub fn encapsulation_key(&self) -> &[u8] {
        &self.encapsulation_key
    }

    /// Decapsulates a ciphertext.
    ///
    /// Only the length is checked (FIPS 203 section 7.3, ciphertext type check). A
    /// ciphertext of the right length always yields a secret: an invalid one yields the
    /// implicit-rejection secret derived from z, with no error path that could tell the
    /// two apart.
    pub fn decapsulate(&self, ciphertext: &[u8]) -> Result<MlKemSecret, MlKemError> {
        let expected = self.level.ciphertext_len();
        let wrong = || MlKemError::CiphertextLength {
            level: self.level,
            expected,
            actual: ciphertext.len(),
        };
        let shared = match &self.inner {
            Inner::L512(dk) => dk.decapsulate(&Array::try_from(ciphertext).map_err(|_| wrong())?),
            Inner::L768(dk) => dk.decapsulate(&Array::try_from(ciphertext).map_err(|_| wrong())?),
            Inner::L1024(dk) => dk.decapsulate(&Array::try_from(ciphertext).map_err(|_| wrong())?),
        };
        Ok(MlKemSecret(Zeroizing::new(shared.into())))
    }
}

impl fmt::Debug for MlKemKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MlKemKeyPair").field("level", &self.level).finish_non_exhaustive()
    }
}

/// Checks an encapsulation key as FIPS 203 section 7.2 requires: the type check (length
/// 384k + 32) and the modulus check (ByteEncode12(ByteDecode12(ek)) equals ek, so every
/// coefficient is below q).
pub fn check_encapsulation_key(level: MlKemLevel, ek: &[u8]) -> Result<(), MlKemError> {
    match level {
        MlKemLevel::MlKem512 => drop(parse_ek!(MlKem512, level, ek)),
        MlKemLevel::MlKem768 => drop(parse_ek!(MlKem768, level, ek)),
        MlKemLevel::MlKem1024 => drop(parse_ek!(MlKem1024, level, ek)),
    }
    Ok(())
}

/// Checks the peer's encapsulation key and encapsulates a fresh shared secret to it.
/// Returns the ciphertext and the secret.
pub fn encapsulate<R: CryptoRng + ?Sized>(
    level: MlKemLevel,
    ek: &[u8],
    rng: &mut R,
) -> Result<(Vec<u8>, MlKemSecret), MlKemError> {
    let mut m = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(m.as_mut_slice());
    encapsulate_deterministic(level, ek, &m)
}

/// Encapsulation with the message m given (ML-KEM.Encaps_internal), for known-answer tests.
pub fn encapsulate_deterministic(
    level: MlKemLevel,
    ek: &[u8],
    m: &[u8; 32],
) -> Result<(Vec<u8>, MlKemSecret), MlKemError> {
    let m: B32 = Array::from(*m);
    let (ct, shared) = match level {
        MlKemLevel::MlKem512 => {
            let (ct, k) = parse_ek!(MlKem512, level, ek).encapsulate_deterministic(&m);
            (ct.to_vec(), k)
        }
        MlKemLevel::MlKem768 => {
            let (ct, k) = parse_ek!(MlKem768, level, ek).encapsulate_deterministic(&m);
            (ct.to_vec(), k)
        }
        MlKemLevel::MlKem1024 => {
            let (ct, k) = parse_ek!(MlKem1024, level, ek).encapsulate_deterministic(&m);
            (ct.to_vec(), k)
        }
    };
    Ok((ct, MlKemSecret(Zeroizing::new(shared.into()))))
}
