//! AES-256 with AES-NI and VAES across many keys at once: the key schedule in the form the lanes
//! read, and CBC encryption of several packets in lockstep.
//!
//! CBC encryption of one packet is a chain: each block waits for the previous ciphertext,
//! so one packet keeps a single `aesenc` in flight while the unit could run several. Here
//! block `i` of up to [`LANES`] packets (AES-NI) or [`VAES_LANES`] packets (VAES) is
//! encrypted in one step, each under its own key, so the steps of different packets
//! overlap in the pipeline. A packet that has no block `i` leaves the step, and the
//! remaining lanes continue with fewer registers.

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::{
    __m128i, _mm_aesenc_si128, _mm_aesenclast_si128, _mm_aeskeygenassist_si128, _mm_loadu_si128,
    _mm_setzero_si128, _mm_shuffle_epi32, _mm_slli_si128, _mm_storeu_si128, _mm_xor_si128,
};

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::aes_cbc::BLOCK_LEN;

/// Packets encrypted in one lockstep group with 128-bit AES-NI. Eight chains of 14 rounds
/// keep both AES units of a current x86 core busy.
pub(crate) const LANES: usize = 8;

/// Packets encrypted in one lockstep group with VAES: four per 512-bit register, in four
/// registers.
pub(crate) const VAES_LANES: usize = 16;

/// The AES instructions that run the lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AesPath {
    /// 128-bit `aesenc`, one block per instruction.
    AesNi,
    /// 512-bit `vaesenc` (VAES with AVX-512F), four blocks per instruction.
    Vaes,
}

impl AesPath {
    /// Returns the widest path this CPU runs. AES-NI itself was checked when the keys were
    /// expanded.
    pub(crate) fn detect() -> AesPath {
        if AesPath::Vaes.is_available() { AesPath::Vaes } else { AesPath::AesNi }
    }

    /// Reports whether this CPU has the instructions of the path.
    pub(crate) fn is_available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected;
            match self {
                AesPath::AesNi => is_x86_feature_detected!("aes"),
                AesPath::Vaes => {
                    is_x86_feature_detected!("aes")
                        && is_x86_feature_detected!("vaes")
                        && is_x86_feature_detected!("avx512f")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = self;
            false
        }
    }
}

/// Number of round keys of AES-256 (14 rounds plus the initial whitening key).
const ROUND_KEYS: usize = 15;

/// The expanded encryption key of AES-256 (FIPS 197, 5.2), as 15 round keys in the byte
/// order `aesenc` reads. Wiped on drop and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct RoundKeys {
    keys: [[u8; BLOCK_LEN]; ROUND_KEYS],
}

impl core::fmt::Debug for RoundKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("RoundKeys { .. }")
    }
}

impl RoundKeys {
    /// Expands `key` with `aeskeygenassist`; returns `None` when the CPU has no AES-NI, in
    /// which case the burst functions use the one-packet path.
    pub(crate) fn expand(key: &[u8; 32]) -> Option<RoundKeys> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("aes") {
            let mut keys = [[0u8; BLOCK_LEN]; ROUND_KEYS];
            // SAFETY: AES-NI (and SSE2, which x86_64 always has) was detected just above.
            unsafe { expand_aesni(key, &mut keys) };
            return Some(RoundKeys { keys });
        }
        let _ = key;
        None
    }
}

/// One packet's part in a lockstep group: its key, the CBC chaining value (the IV before
/// the first block) and the whole blocks to encrypt in place.
pub(crate) struct CbcLane<'a> {
    pub(crate) keys: &'a RoundKeys,
    pub(crate) chain: [u8; BLOCK_LEN],
    pub(crate) blocks: &'a mut [[u8; BLOCK_LEN]],
}

impl CbcLane<'_> {
    /// Returns a lane with no blocks, to fill unused entries of a fixed-size array.
    pub(crate) fn empty() -> CbcLane<'static> {
        CbcLane { keys: &NO_KEYS, chain: [0; BLOCK_LEN], blocks: &mut [] }
    }
}

/// The key of [`CbcLane::empty`], which encrypts nothing.
static NO_KEYS: RoundKeys = RoundKeys { keys: [[0; BLOCK_LEN]; ROUND_KEYS] };

/// Encrypts each lane's blocks in CBC mode, the lanes in lockstep; the lanes may differ in
/// length, including zero blocks. Each lane's `chain` ends as its last ciphertext block.
/// The lanes are reordered within each group of [`LANES`], longest first.
///
/// Callers check first that the CPU has AES-NI, which [`RoundKeys::expand`] did when it
/// returned the keys the lanes hold.
pub(crate) fn cbc_encrypt_lanes(lanes: &mut [CbcLane<'_>]) {
    cbc_encrypt_lanes_with(AesPath::detect(), lanes);
}

/// [`cbc_encrypt_lanes`] on a chosen path; a path this CPU lacks runs as
/// [`AesPath::AesNi`].
pub(crate) fn cbc_encrypt_lanes_with(path: AesPath, lanes: &mut [CbcLane<'_>]) {
    #[cfg(target_arch = "x86_64")]
    if path == AesPath::Vaes && path.is_available() {
        for group in lanes.chunks_mut(VAES_LANES) {
            // SAFETY: VAES, AVX-512F and AES-NI were detected by `is_available`.
            unsafe { vaes::cbc_encrypt_group(group) };
        }
    } else {
        for group in lanes.chunks_mut(LANES) {
            // SAFETY: every lane contains a RoundKeys, and RoundKeys exist only after
            // `expand` detected AES-NI on this CPU.
            unsafe { cbc_encrypt_group(group) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (path, lanes);
}

/// Expands an AES-256 key (FIPS 197, 5.2). Each even round key is derived from the previous
/// even key and `SubWord(RotWord(w)) ^ rcon` of the last odd word. Each odd key is derived
/// from the previous odd key and `SubWord(w)` of the last even word. `aeskeygenassist`
/// computes both word functions.
///
/// # Safety
/// The CPU must support AES-NI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes")]
unsafe fn expand_aesni(key: &[u8; 32], out: &mut [[u8; BLOCK_LEN]; ROUND_KEYS]) {
    /// Folds the four words of `prev` into a running XOR and adds the broadcast word `t`.
    #[target_feature(enable = "aes")]
    fn next(prev: __m128i, t: __m128i) -> __m128i {
        let mut k = prev;
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        _mm_xor_si128(k, t)
    }

    // SAFETY: `key` is 32 bytes, so both unaligned 16-byte loads stay inside it.
    let (mut even, mut odd) = unsafe {
        (_mm_loadu_si128(key.as_ptr().cast()), _mm_loadu_si128(key.as_ptr().add(16).cast()))
    };
    let mut keys = [_mm_setzero_si128(); ROUND_KEYS];
    keys[0] = even;
    keys[1] = odd;

    macro_rules! even {
        ($index:expr, $rcon:expr) => {
            even = next(even, _mm_shuffle_epi32::<0xff>(_mm_aeskeygenassist_si128::<$rcon>(odd)));
            keys[$index] = even;
        };
    }
    macro_rules! odd {
        ($index:expr) => {
            odd = next(odd, _mm_shuffle_epi32::<0xaa>(_mm_aeskeygenassist_si128::<0>(even)));
            keys[$index] = odd;
        };
    }
    even!(2, 0x01);
    odd!(3);
    even!(4, 0x02);
    odd!(5);
    even!(6, 0x04);
    odd!(7);
    even!(8, 0x08);
    odd!(9);
    even!(10, 0x10);
    odd!(11);
    even!(12, 0x20);
    odd!(13);
    even!(14, 0x40);

    for (slot, key) in out.iter_mut().zip(keys) {
        // SAFETY: each slot is 16 bytes, the width of one unaligned store.
        unsafe { _mm_storeu_si128(slot.as_mut_ptr().cast(), key) };
    }
}

/// Encrypts up to [`LANES`] lanes: the lanes are ordered by length, longest first, and run
/// in phases, each phase with the lanes that still have blocks.
///
/// # Safety
/// The CPU must support AES-NI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes")]
unsafe fn cbc_encrypt_group(group: &mut [CbcLane<'_>]) {
    group.sort_unstable_by_key(|lane| core::cmp::Reverse(lane.blocks.len()));
    let mut done = 0;
    for active in (1..=group.len()).rev() {
        let end = group[active - 1].blocks.len();
        if end > done {
            let lanes = &mut group[..active];
            // SAFETY: the caller guarantees AES-NI; every lane in `lanes` has at least
            // `end` blocks because the group is sorted by length, longest first.
            unsafe {
                match active {
                    1 => steps::<1>(lanes, done, end),
                    2 => steps::<2>(lanes, done, end),
                    3 => steps::<3>(lanes, done, end),
                    4 => steps::<4>(lanes, done, end),
                    5 => steps::<5>(lanes, done, end),
                    6 => steps::<6>(lanes, done, end),
                    7 => steps::<7>(lanes, done, end),
                    _ => steps::<8>(lanes, done, end),
                }
            }
            done = end;
        }
    }
}

/// Encrypts blocks `from..to` of the first `K` lanes, one block of each lane per step.
///
/// # Safety
/// The CPU must support AES-NI; `lanes` has at least `K` entries and each of the first `K`
/// has at least `to` blocks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes")]
unsafe fn steps<const K: usize>(lanes: &mut [CbcLane<'_>], from: usize, to: usize) {
    let mut keys = [[_mm_setzero_si128(); ROUND_KEYS]; K];
    let mut chains = [_mm_setzero_si128(); K];
    for (j, lane) in lanes[..K].iter().enumerate() {
        for (slot, round_key) in keys[j].iter_mut().zip(&lane.keys.keys) {
            // SAFETY: a round key is 16 bytes.
            *slot = unsafe { _mm_loadu_si128(round_key.as_ptr().cast()) };
        }
        // SAFETY: the chaining value is 16 bytes.
        chains[j] = unsafe { _mm_loadu_si128(lane.chain.as_ptr().cast()) };
    }

    for index in from..to {
        let mut state = [_mm_setzero_si128(); K];
        for j in 0..K {
            // SAFETY: the caller guarantees lane j has at least `to` > `index` blocks, and
            // a block is 16 bytes.
            let plain = unsafe { _mm_loadu_si128(lanes[j].blocks[index].as_ptr().cast()) };
            state[j] = _mm_xor_si128(_mm_xor_si128(plain, chains[j]), keys[j][0]);
        }
        // One round of every lane before the next round, so the K chains overlap.
        #[allow(clippy::needless_range_loop, reason = "the round indexes each lane's keys")]
        for round in 1..ROUND_KEYS - 1 {
            for j in 0..K {
                state[j] = _mm_aesenc_si128(state[j], keys[j][round]);
            }
        }
        for j in 0..K {
            chains[j] = _mm_aesenclast_si128(state[j], keys[j][ROUND_KEYS - 1]);
            // SAFETY: as for the load above.
            unsafe { _mm_storeu_si128(lanes[j].blocks[index].as_mut_ptr().cast(), chains[j]) };
        }
    }

    for (lane, chain) in lanes[..K].iter_mut().zip(chains) {
        // SAFETY: the chaining value is 16 bytes.
        unsafe { _mm_storeu_si128(lane.chain.as_mut_ptr().cast(), chain) };
    }
}

/// Lockstep CBC with VAES: lane `4g + i` of a group is 128-bit part `i` of register `g`.
#[cfg(target_arch = "x86_64")]
mod vaes {
    use core::arch::x86_64::{
        __m128i, __m512i, _mm_loadu_si128, _mm_setzero_si128, _mm_storeu_si128,
        _mm512_aesenc_epi128, _mm512_aesenclast_epi128, _mm512_extracti32x4_epi32,
        _mm512_inserti32x4, _mm512_setzero_si512, _mm512_xor_si512,
    };

    use super::{CbcLane, ROUND_KEYS};

    /// Encrypts up to sixteen lanes, longest first, in phases of the lanes that still have
    /// blocks; a phase uses only the registers its lanes need.
    ///
    /// # Safety
    /// The CPU must support VAES, AVX-512F and AES-NI.
    #[target_feature(enable = "aes,vaes,avx512f")]
    pub(super) unsafe fn cbc_encrypt_group(group: &mut [CbcLane<'_>]) {
        group.sort_unstable_by_key(|lane| core::cmp::Reverse(lane.blocks.len()));
        let mut done = 0;
        for active in (1..=group.len()).rev() {
            let end = group[active - 1].blocks.len();
            if end > done {
                let lanes = &mut group[..active];
                match active.div_ceil(4) {
                    1 => steps::<1>(lanes, done, end),
                    2 => steps::<2>(lanes, done, end),
                    3 => steps::<3>(lanes, done, end),
                    _ => steps::<4>(lanes, done, end),
                }
                done = end;
            }
        }
    }

    /// Encrypts blocks `from..to` of every lane in `lanes`, which fill `G` registers. The
    /// parts of the last register past the final lane compute on zeros and are dropped.
    /// Every lane has at least `to` blocks because of the phase order above.
    #[target_feature(enable = "aes,vaes,avx512f")]
    fn steps<const G: usize>(lanes: &mut [CbcLane<'_>], from: usize, to: usize) {
        let active = lanes.len().min(4 * G);
        let mut keys = [[_mm512_setzero_si512(); ROUND_KEYS]; G];
        let mut chains = [_mm512_setzero_si512(); G];
        for g in 0..G {
            for (round, key) in keys[g].iter_mut().enumerate() {
                *key = gather(active, g, |j| lanes[j].keys.keys[round]);
            }
            chains[g] = gather(active, g, |j| lanes[j].chain);
        }

        for index in from..to {
            let mut state = [_mm512_setzero_si512(); G];
            for g in 0..G {
                let plain = gather(active, g, |j| lanes[j].blocks[index]);
                state[g] = _mm512_xor_si512(_mm512_xor_si512(plain, chains[g]), keys[g][0]);
            }
            // One round of every register before the next round, so the G chains overlap.
            #[allow(clippy::needless_range_loop, reason = "the round indexes each register's keys")]
            for round in 1..ROUND_KEYS - 1 {
                for g in 0..G {
                    state[g] = _mm512_aesenc_epi128(state[g], keys[g][round]);
                }
            }
            for g in 0..G {
                chains[g] = _mm512_aesenclast_epi128(state[g], keys[g][ROUND_KEYS - 1]);
                scatter(active, g, chains[g], |j, block| lanes[j].blocks[index] = block);
            }
        }

        for (g, chain) in chains.into_iter().enumerate() {
            scatter(active, g, chain, |j, block| lanes[j].chain = block);
        }
    }

    /// Builds register `g` from the 16-byte values `read(j)` of lanes `4g..4g + 4` below
    /// `active`, with zeros for the others.
    #[target_feature(enable = "avx512f")]
    fn gather(active: usize, g: usize, mut read: impl FnMut(usize) -> [u8; 16]) -> __m512i {
        let part = |i: usize, read: &mut dyn FnMut(usize) -> [u8; 16]| -> __m128i {
            let j = 4 * g + i;
            if j < active {
                let block = read(j);
                // SAFETY: `block` is 16 bytes, one unaligned load.
                unsafe { _mm_loadu_si128(block.as_ptr().cast()) }
            } else {
                _mm_setzero_si128()
            }
        };
        let mut v = _mm512_setzero_si512();
        v = _mm512_inserti32x4::<0>(v, part(0, &mut read));
        v = _mm512_inserti32x4::<1>(v, part(1, &mut read));
        v = _mm512_inserti32x4::<2>(v, part(2, &mut read));
        _mm512_inserti32x4::<3>(v, part(3, &mut read))
    }

    /// Hands the 128-bit parts of register `g` to `write` for lanes `4g..4g + 4` below
    /// `active`.
    #[target_feature(enable = "avx512f")]
    fn scatter(active: usize, g: usize, v: __m512i, mut write: impl FnMut(usize, [u8; 16])) {
        let parts = [
            _mm512_extracti32x4_epi32::<0>(v),
            _mm512_extracti32x4_epi32::<1>(v),
            _mm512_extracti32x4_epi32::<2>(v),
            _mm512_extracti32x4_epi32::<3>(v),
        ];
        for (i, part) in parts.into_iter().enumerate() {
            let j = 4 * g + i;
            if j < active {
                let mut block = [0u8; 16];
                // SAFETY: `block` is 16 bytes, one unaligned store.
                unsafe { _mm_storeu_si128(block.as_mut_ptr().cast(), part) };
                write(j, block);
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use aes::cipher::{BlockCipherEncrypt, KeyInit};

    fn reference_cbc(key: &[u8; 32], iv: &[u8; 16], data: &mut [[u8; 16]]) {
        let cipher = aes::Aes256Enc::new(&(*key).into());
        let mut chain = *iv;
        for block in data {
            for (b, c) in block.iter_mut().zip(chain) {
                *b ^= c;
            }
            let mut array = (*block).into();
            cipher.encrypt_block(&mut array);
            *block = array.into();
            chain = *block;
        }
    }

    #[test]
    fn expansion_matches_fips_197_c3() {
        let Some(keys) = RoundKeys::expand(&core::array::from_fn(|i| i as u8)) else {
            return;
        };
        for path in paths() {
            let mut block: [[u8; 16]; 1] = [core::array::from_fn(|i| (i as u8) * 0x11)];
            let mut lane = CbcLane { keys: &keys, chain: [0; 16], blocks: &mut block };
            cbc_encrypt_lanes_with(path, core::slice::from_mut(&mut lane));
            assert_eq!(hex::encode(block[0]), "8ea2b7ca516745bfeafc49904b496089", "{path:?}");
        }
    }

    fn paths() -> Vec<AesPath> {
        [AesPath::AesNi, AesPath::Vaes].into_iter().filter(|p| p.is_available()).collect()
    }

    #[test]
    fn lanes_of_every_length_match_reference() {
        let lengths = [0usize, 1, 2, 3, 5, 8, 13, 21, 34, 1, 0, 7, 9, 4, 4, 40, 2, 0, 6, 11];
        for (path, count) in
            paths().into_iter().flat_map(|p| (1..=lengths.len()).map(move |c| (p, c)))
        {
            let keys: Vec<[u8; 32]> =
                (0..count).map(|j| core::array::from_fn(|i| (i * 7 + j * 13) as u8)).collect();
            let ivs: Vec<[u8; 16]> =
                (0..count).map(|j| core::array::from_fn(|i| (i + j * 3) as u8)).collect();
            let plain: Vec<Vec<[u8; 16]>> = (0..count)
                .map(|j| {
                    (0..lengths[j]).map(|b| core::array::from_fn(|i| (i + b + j) as u8)).collect()
                })
                .collect();
            let schedules: Vec<RoundKeys> =
                keys.iter().map(|k| RoundKeys::expand(k).unwrap()).collect();
            let mut ours = plain.clone();
            let mut lanes: Vec<CbcLane<'_>> = ours
                .iter_mut()
                .zip(&schedules)
                .zip(&ivs)
                .map(|((blocks, keys), iv)| CbcLane { keys, chain: *iv, blocks })
                .collect();
            cbc_encrypt_lanes_with(path, &mut lanes);
            for lane in &lanes {
                let last = lane.blocks.last().copied();
                assert!(
                    last.is_none() || last == Some(lane.chain),
                    "{path:?} chain, {count} lanes"
                );
            }
            drop(lanes);
            for j in 0..count {
                let mut expected = plain[j].clone();
                reference_cbc(&keys[j], &ivs[j], &mut expected);
                assert_eq!(ours[j], expected, "{path:?} lane {j} of {count}");
            }
        }
    }
}
