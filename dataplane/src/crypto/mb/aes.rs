//! AES-256-CBC encryption of several packets in lockstep, each under its own key, with
//! AES-NI or VAES.
//!
//! CBC encryption of one packet is a chain: each block waits for the previous ciphertext,
//! so one packet keeps a single `aesenc` in flight while the unit could run several. Here
//! block `i` of up to [`LANES`] packets (AES-NI) or [`VAES_LANES`] packets (VAES) is
//! encrypted in one step, each under its own key, so the steps of different packets
//! overlap in the pipeline. A packet that has no block `i` leaves the step, and the
//! remaining lanes continue with fewer registers.
//!
//! Each lane encrypts a head block before its payload, starting from a zero chaining value,
//! and keeps the head's ciphertext only as the chaining value of the payload. With the
//! payload IV's input block as the head this derives the IV (the encryption of that block
//! under the same key) and encrypts the payload in one pass over the key schedule. The
//! schedules are expanded for each call and wiped before it returns.

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::{
    __m128i, _mm_aesenc_si128, _mm_aesenclast_si128, _mm_aeskeygenassist_si128, _mm_loadu_si128,
    _mm_setzero_si128, _mm_shuffle_epi32, _mm_slli_si128, _mm_storeu_si128, _mm_xor_si128,
};

#[cfg(target_arch = "x86_64")]
use zeroize::Zeroize;

use crate::crypto::aes_cbc::BLOCK_LEN;

/// Packets encrypted in one lockstep group with 128-bit AES-NI. Eight chains of 14 rounds
/// keep both AES units of a current x86 core busy.
pub(crate) const LANES: usize = 8;

/// Packets encrypted in one lockstep group with VAES: four per 512-bit register, in four
/// registers. On AMD Zen 4 a group of eight registers (32 packets) measured slower.
pub(crate) const VAES_LANES: usize = 16;

/// The AES instructions that run the lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AesPath {
    /// 128-bit `aesenc`, one block per instruction.
    AesNi,
    /// 512-bit `vaesenc` (VAES with AVX-512F and AVX-512BW), four blocks per instruction.
    Vaes,
}

impl AesPath {
    /// Returns the widest path this CPU runs, or `None` without AES-NI.
    pub(crate) fn detect() -> Option<AesPath> {
        [AesPath::Vaes, AesPath::AesNi].into_iter().find(|path| path.is_available())
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
                        && is_x86_feature_detected!("avx512bw")
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
#[cfg(target_arch = "x86_64")]
const ROUND_KEYS: usize = 15;

/// One packet's part in a lockstep group: CBC encryption of `head || blocks` under `key`
/// from a zero chaining value, with the head's ciphertext kept out of the buffer.
pub(crate) struct CbcLane<'a> {
    pub(crate) key: &'a [u8; 32],
    /// The block encrypted first; its ciphertext is the IV of `blocks`.
    pub(crate) head: [u8; BLOCK_LEN],
    /// The whole blocks to encrypt in place.
    pub(crate) blocks: &'a mut [[u8; BLOCK_LEN]],
    /// Output: the last ciphertext block, which is the encrypted head when `blocks` is
    /// empty.
    pub(crate) chain: [u8; BLOCK_LEN],
}

impl CbcLane<'_> {
    /// Returns a lane with no blocks, to fill unused entries of a fixed-size array.
    pub(crate) fn empty() -> CbcLane<'static> {
        CbcLane { key: &[0; 32], head: [0; BLOCK_LEN], blocks: &mut [], chain: [0; BLOCK_LEN] }
    }
}

/// Encrypts each lane in lockstep on `path`. The lanes may differ in length, including
/// zero blocks. Returns `false`, with nothing encrypted, when the CPU lacks the path's
/// instructions.
pub(crate) fn cbc_encrypt_lanes_with(path: AesPath, lanes: &mut [CbcLane<'_>]) -> bool {
    if !path.is_available() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    match path {
        AesPath::Vaes => {
            for group in lanes.chunks_mut(VAES_LANES) {
                // SAFETY: VAES, AVX-512F, AVX-512BW and AES-NI were detected just above.
                unsafe { vaes::cbc_encrypt_group(group) };
            }
        }
        AesPath::AesNi => {
            for group in lanes.chunks_mut(LANES) {
                // SAFETY: AES-NI was detected just above.
                unsafe { cbc_encrypt_group(group) };
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = lanes;
    true
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
unsafe fn expand_aesni(key: &[u8; 32], keys: &mut [__m128i; ROUND_KEYS]) {
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
}

/// Encrypts up to [`LANES`] lanes: the lanes are ordered by length, longest first, and run
/// in phases, each phase with the lanes that still have blocks.
///
/// # Safety
/// The CPU must support AES-NI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes")]
unsafe fn cbc_encrypt_group(group: &mut [CbcLane<'_>]) {
    let count = group.len().min(LANES);
    let group = &mut group[..count];
    let order = longest_first(group);
    let mut schedules = [[_mm_setzero_si128(); ROUND_KEYS]; LANES];
    for (lane, schedule) in group.iter().zip(schedules.iter_mut()) {
        // SAFETY: the caller guarantees AES-NI.
        unsafe { expand_aesni(lane.key, schedule) };
    }

    // The heads of all lanes in lockstep, from a zero chaining value.
    let mut x = [_mm_setzero_si128(); LANES];
    for ((state, lane), schedule) in x.iter_mut().zip(group.iter()).zip(&schedules) {
        // SAFETY: a head is 16 bytes.
        let head = unsafe { _mm_loadu_si128(lane.head.as_ptr().cast()) };
        *state = _mm_xor_si128(head, schedule[0]);
    }
    for round in 1..ROUND_KEYS - 1 {
        for (state, schedule) in x.iter_mut().zip(&schedules) {
            *state = _mm_aesenc_si128(*state, schedule[round]);
        }
    }
    for ((state, lane), schedule) in x.iter().zip(group.iter_mut()).zip(&schedules) {
        let chain = _mm_aesenclast_si128(*state, schedule[ROUND_KEYS - 1]);
        // SAFETY: the chaining value is 16 bytes.
        unsafe { _mm_storeu_si128(lane.chain.as_mut_ptr().cast(), chain) };
    }

    let mut done = 0;
    for active in (1..=group.len()).rev() {
        let end = group[order[active - 1]].blocks.len();
        if end > done {
            let order = &order[..active];
            // SAFETY: the caller guarantees AES-NI; every lane in `order` has at least
            // `end` blocks because the order is by length, longest first.
            unsafe {
                match active {
                    1 => steps::<1>(group, order, &schedules, done, end),
                    2 => steps::<2>(group, order, &schedules, done, end),
                    3 => steps::<3>(group, order, &schedules, done, end),
                    4 => steps::<4>(group, order, &schedules, done, end),
                    5 => steps::<5>(group, order, &schedules, done, end),
                    6 => steps::<6>(group, order, &schedules, done, end),
                    7 => steps::<7>(group, order, &schedules, done, end),
                    _ => steps::<8>(group, order, &schedules, done, end),
                }
            }
            done = end;
        }
    }
    schedules.iter_mut().flatten().for_each(Zeroize::zeroize);
    x.zeroize();
}

/// Returns the indexes of `lanes`, longest lane first, in an array of [`VAES_LANES`]
/// entries of which the first `lanes.len()` count.
fn longest_first(lanes: &[CbcLane<'_>]) -> [usize; VAES_LANES] {
    let mut order: [usize; VAES_LANES] = core::array::from_fn(|j| j);
    let count = lanes.len().min(VAES_LANES);
    order[..count].sort_unstable_by_key(|&j| core::cmp::Reverse(lanes[j].blocks.len()));
    order
}

/// Encrypts blocks `from..to` of the `K` lanes that `order` names, one block of each lane
/// per step, continuing each lane's CBC chain from `chain`.
///
/// # Safety
/// The CPU must support AES-NI; `order` has at least `K` entries, each an index of `lanes`
/// with at least `to` blocks and of `schedules`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes")]
unsafe fn steps<const K: usize>(
    lanes: &mut [CbcLane<'_>],
    order: &[usize],
    schedules: &[[__m128i; ROUND_KEYS]; LANES],
    from: usize,
    to: usize,
) {
    let order: [usize; K] = core::array::from_fn(|j| order[j]);
    let keys: [&[__m128i; ROUND_KEYS]; K] = core::array::from_fn(|j| &schedules[order[j]]);
    let chain_of = |lane: &CbcLane<'_>| {
        // SAFETY: a chaining value is 16 bytes.
        unsafe { _mm_loadu_si128(lane.chain.as_ptr().cast()) }
    };
    let mut chains: [__m128i; K] = core::array::from_fn(|j| chain_of(&lanes[order[j]]));

    for index in from..to {
        let mut x = [_mm_setzero_si128(); K];
        for j in 0..K {
            // SAFETY: the caller guarantees lane j has at least `to` > `index` blocks, and
            // a block is 16 bytes.
            let plain = unsafe { _mm_loadu_si128(lanes[order[j]].blocks[index].as_ptr().cast()) };
            x[j] = _mm_xor_si128(_mm_xor_si128(plain, chains[j]), keys[j][0]);
        }
        // One round of every lane before the next round, so the K chains overlap.
        #[allow(clippy::needless_range_loop, reason = "the round indexes each lane's keys")]
        for round in 1..ROUND_KEYS - 1 {
            for j in 0..K {
                x[j] = _mm_aesenc_si128(x[j], keys[j][round]);
            }
        }
        for j in 0..K {
            chains[j] = _mm_aesenclast_si128(x[j], keys[j][ROUND_KEYS - 1]);
            let block = lanes[order[j]].blocks[index].as_mut_ptr();
            // SAFETY: as for the load above.
            unsafe { _mm_storeu_si128(block.cast(), chains[j]) };
        }
    }

    for (&j, chain) in order.iter().zip(chains) {
        // SAFETY: the chaining value is 16 bytes.
        unsafe { _mm_storeu_si128(lanes[j].chain.as_mut_ptr().cast(), chain) };
    }
}

/// Lockstep CBC with VAES: lane `4g + i` of a group is 128-bit part `i` of register `g`.
#[cfg(target_arch = "x86_64")]
mod vaes {
    use core::arch::x86_64::{
        __m512i, _mm_loadu_si128, _mm_setzero_si128, _mm_storeu_si128, _mm512_aesenc_epi128,
        _mm512_aesenclast_epi128, _mm512_bslli_epi128, _mm512_castsi128_si512,
        _mm512_castsi512_si128, _mm512_extracti32x4_epi32, _mm512_inserti32x4, _mm512_loadu_si512,
        _mm512_set1_epi32, _mm512_set4_epi32, _mm512_setzero_si512, _mm512_shuffle_epi8,
        _mm512_shuffle_i64x2, _mm512_storeu_si512, _mm512_ternarylogic_epi64, _mm512_xor_si512,
    };

    use zeroize::Zeroize;

    use super::{BLOCK_LEN, CbcLane, ROUND_KEYS, VAES_LANES, longest_first};

    /// Registers of a full group.
    const REGISTERS: usize = VAES_LANES / 4;

    /// Steps whose blocks are loaded and stored together: four consecutive blocks of a lane
    /// are one 64-byte load or store, turned into block `i` of four lanes by a 4x4
    /// transposition. That replaces sixteen 16-byte inserts or extracts per register.
    const RUN: usize = 4;

    /// The round keys of a group: `keys[g][round]` is that round key of lanes `4g..4g + 4`.
    type Schedules = [[__m512i; ROUND_KEYS]; REGISTERS];

    /// The block addresses of the lane positions: `next[j]` is read and written by the next
    /// step and then advanced by `stride[j]` bytes. Positions without a lane, and lanes
    /// that have left, point at a scratch buffer of [`RUN`] blocks with stride 0.
    struct Slots {
        next: [*mut u8; VAES_LANES],
        stride: [usize; VAES_LANES],
    }

    /// Encrypts up to [`VAES_LANES`] lanes, longest first, in phases of the lanes that still have
    /// blocks; a phase uses only the registers its lanes need.
    ///
    /// # Safety
    /// The CPU must support VAES, AVX-512F, AVX-512BW and AES-NI, and `group` has at most
    /// [`VAES_LANES`] lanes.
    #[target_feature(enable = "aes,vaes,avx512f,avx512bw")]
    pub(super) unsafe fn cbc_encrypt_group(group: &mut [CbcLane<'_>]) {
        let count = group.len().min(VAES_LANES);
        let group = &mut group[..count];
        let order = longest_first(group);
        let registers = count.div_ceil(4);

        let mut keys: Schedules = [[_mm512_setzero_si512(); ROUND_KEYS]; REGISTERS];
        let lane_keys: [&[u8; 32]; VAES_LANES] =
            core::array::from_fn(|j| group[order[j].min(count - 1)].key);
        for (g, schedule) in keys.iter_mut().enumerate().take(registers) {
            let lanes = &lane_keys[4 * g..count.min(4 * g + 4)];
            expand(gather(lanes, 0), gather(lanes, BLOCK_LEN), schedule);
        }

        // The heads go through one step from a zero chaining value. Positions without a
        // lane, and lanes that have left, read and write `scratch` instead.
        let mut heads = [[0u8; BLOCK_LEN]; VAES_LANES];
        for (head, &j) in heads.iter_mut().zip(&order[..count]) {
            *head = group[j].head;
        }
        let mut scratch = [0u8; RUN * BLOCK_LEN];
        let scratch: *mut u8 = scratch.as_mut_ptr();
        let mut slots = Slots {
            next: {
                let base = heads.as_mut_ptr();
                core::array::from_fn(|j| base.wrapping_add(j).cast())
            },
            stride: [0; VAES_LANES],
        };
        let mut chains = [_mm512_setzero_si512(); REGISTERS];
        run(registers, &keys, &mut chains, &mut slots, 1);

        // Every lane reads its own blocks from here on.
        for (position, &j) in order.iter().enumerate() {
            match group.get_mut(j) {
                Some(lane) if position < count && !lane.blocks.is_empty() => {
                    slots.next[position] = lane.blocks.as_mut_ptr().cast();
                    slots.stride[position] = BLOCK_LEN;
                }
                _ => slots.next[position] = scratch,
            }
        }

        let mut done = 0;
        for active in (0..=count).rev() {
            // The lane at `active`, if any, has no blocks past `done`: it leaves with its
            // last ciphertext as its chaining value, before a step overwrites that part.
            if let Some(lane) = order[..count].get(active).map(|&j| &mut group[j]) {
                lane.chain = extract(&chains, active);
                slots.next[active] = scratch;
                slots.stride[active] = 0;
            }
            // Every lane below `active` has at least `end` blocks.
            if let Some(last) = active.checked_sub(1) {
                let end = group[order[last]].blocks.len();
                if end > done {
                    run(active.div_ceil(4), &keys, &mut chains, &mut slots, end - done);
                    done = end;
                }
            }
        }

        keys.iter_mut().flatten().for_each(Zeroize::zeroize);
        chains.zeroize();
    }

    /// Runs `steps` CBC steps over the lane positions of the first `registers` registers.
    #[target_feature(enable = "aes,vaes,avx512f,avx512bw")]
    fn run(
        registers: usize,
        keys: &Schedules,
        chains: &mut [__m512i; REGISTERS],
        slots: &mut Slots,
        steps: usize,
    ) {
        // SAFETY: every `next` pointer of the registers run is either a lane's block buffer
        // with at least `steps` blocks left (the phase order guarantees it) and stride 16,
        // or the scratch buffer with stride 0.
        unsafe {
            match registers {
                0 => {}
                1 => run_registers::<1>(keys, chains, slots, steps),
                2 => run_registers::<2>(keys, chains, slots, steps),
                3 => run_registers::<3>(keys, chains, slots, steps),
                _ => run_registers::<4>(keys, chains, slots, steps),
            }
        }
    }

    /// Encrypts `steps` blocks at each of the `4 * G` first lane positions.
    ///
    /// # Safety
    /// Each of the first `4 * G` positions of `slots` points at `steps` blocks spaced by its
    /// stride, readable and writable, or at [`RUN`] blocks with stride 0.
    #[target_feature(enable = "aes,vaes,avx512f,avx512bw")]
    unsafe fn run_registers<const G: usize>(
        keys: &Schedules,
        chains: &mut [__m512i; REGISTERS],
        slots: &mut Slots,
        steps: usize,
    ) {
        let mut state: [__m512i; G] = core::array::from_fn(|g| chains[g]);
        let mut left = steps;
        while left >= RUN {
            let mut plain = [[_mm512_setzero_si512(); RUN]; G];
            for (g, blocks) in plain.iter_mut().enumerate() {
                // SAFETY: the caller guarantees `RUN` readable blocks at each position.
                *blocks = transpose(core::array::from_fn(|k| unsafe {
                    _mm512_loadu_si512(slots.next[4 * g + k].cast())
                }));
            }
            let mut cipher = [[_mm512_setzero_si512(); RUN]; G];
            for i in 0..RUN {
                let mut x: [__m512i; G] = core::array::from_fn(|g| {
                    _mm512_ternarylogic_epi64::<0x96>(plain[g][i], state[g], keys[g][0])
                });
                rounds(&mut x, keys);
                for g in 0..G {
                    state[g] = _mm512_aesenclast_epi128(x[g], keys[g][ROUND_KEYS - 1]);
                    cipher[g][i] = state[g];
                }
            }
            for (g, blocks) in cipher.iter().enumerate() {
                for (k, lane) in transpose(*blocks).into_iter().enumerate() {
                    // SAFETY: the caller guarantees `RUN` writable blocks at each position.
                    unsafe { _mm512_storeu_si512(slots.next[4 * g + k].cast(), lane) };
                }
            }
            for (next, stride) in slots.next.iter_mut().zip(slots.stride).take(4 * G) {
                *next = next.wrapping_add(RUN * stride);
            }
            left -= RUN;
        }

        for _ in 0..left {
            let mut x: [__m512i; G] = core::array::from_fn(|g| {
                // SAFETY: the caller guarantees a readable block at each position.
                let plain = unsafe { load(&slots.next[4 * g..4 * g + 4]) };
                _mm512_ternarylogic_epi64::<0x96>(plain, state[g], keys[g][0])
            });
            rounds(&mut x, keys);
            for g in 0..G {
                state[g] = _mm512_aesenclast_epi128(x[g], keys[g][ROUND_KEYS - 1]);
                // SAFETY: the caller guarantees a writable block at each position.
                unsafe { store(&slots.next[4 * g..4 * g + 4], state[g]) };
            }
            for (next, stride) in slots.next.iter_mut().zip(slots.stride).take(4 * G) {
                *next = next.wrapping_add(stride);
            }
        }
        chains[..G].copy_from_slice(&state);
    }

    /// Runs rounds 1 to 13 of every register, one round of all registers before the next,
    /// so the `G` chains overlap.
    #[target_feature(enable = "aes,vaes,avx512f")]
    fn rounds<const G: usize>(x: &mut [__m512i; G], keys: &Schedules) {
        #[allow(clippy::needless_range_loop, reason = "the round indexes each register's keys")]
        for round in 1..ROUND_KEYS - 1 {
            for g in 0..G {
                x[g] = _mm512_aesenc_epi128(x[g], keys[g][round]);
            }
        }
    }

    /// Transposes four registers of four 128-bit blocks: part `i` of output `k` is part
    /// `k` of input `i`.
    #[target_feature(enable = "avx512f")]
    fn transpose(r: [__m512i; 4]) -> [__m512i; 4] {
        let t0 = _mm512_shuffle_i64x2::<0x44>(r[0], r[1]);
        let t1 = _mm512_shuffle_i64x2::<0xee>(r[0], r[1]);
        let t2 = _mm512_shuffle_i64x2::<0x44>(r[2], r[3]);
        let t3 = _mm512_shuffle_i64x2::<0xee>(r[2], r[3]);
        [
            _mm512_shuffle_i64x2::<0x88>(t0, t2),
            _mm512_shuffle_i64x2::<0xdd>(t0, t2),
            _mm512_shuffle_i64x2::<0x88>(t1, t3),
            _mm512_shuffle_i64x2::<0xdd>(t1, t3),
        ]
    }

    /// Loads the 16-byte blocks at four positions into one register.
    ///
    /// # Safety
    /// Each pointer is valid for a 16-byte read.
    #[target_feature(enable = "avx512f")]
    unsafe fn load(next: &[*mut u8]) -> __m512i {
        // SAFETY: the caller guarantees each pointer is readable for 16 bytes.
        unsafe {
            let v = _mm512_castsi128_si512(_mm_loadu_si128(next[0].cast()));
            let v = _mm512_inserti32x4::<1>(v, _mm_loadu_si128(next[1].cast()));
            let v = _mm512_inserti32x4::<2>(v, _mm_loadu_si128(next[2].cast()));
            _mm512_inserti32x4::<3>(v, _mm_loadu_si128(next[3].cast()))
        }
    }

    /// Stores the four 128-bit parts of `v` at four positions.
    ///
    /// # Safety
    /// Each pointer is valid for a 16-byte write.
    #[target_feature(enable = "avx512f")]
    unsafe fn store(next: &[*mut u8], v: __m512i) {
        // SAFETY: the caller guarantees each pointer is writable for 16 bytes.
        unsafe {
            _mm_storeu_si128(next[0].cast(), _mm512_castsi512_si128(v));
            _mm_storeu_si128(next[1].cast(), _mm512_extracti32x4_epi32::<1>(v));
            _mm_storeu_si128(next[2].cast(), _mm512_extracti32x4_epi32::<2>(v));
            _mm_storeu_si128(next[3].cast(), _mm512_extracti32x4_epi32::<3>(v));
        }
    }

    /// Returns the 128-bit part of lane position `j`.
    #[target_feature(enable = "avx512f")]
    fn extract(chains: &[__m512i; REGISTERS], j: usize) -> [u8; BLOCK_LEN] {
        let v = chains[j / 4];
        let part = match j % 4 {
            0 => _mm512_castsi512_si128(v),
            1 => _mm512_extracti32x4_epi32::<1>(v),
            2 => _mm512_extracti32x4_epi32::<2>(v),
            _ => _mm512_extracti32x4_epi32::<3>(v),
        };
        let mut block = [0u8; BLOCK_LEN];
        // SAFETY: `block` is 16 bytes, one unaligned 128-bit store.
        unsafe { _mm_storeu_si128(block.as_mut_ptr().cast(), part) };
        block
    }

    /// Builds a register from the 16 bytes at `offset` of the keys of up to four lanes,
    /// zeros past the last.
    #[target_feature(enable = "avx512f")]
    fn gather(keys: &[&[u8; 32]], offset: usize) -> __m512i {
        let part = |i: usize| match keys.get(i) {
            // SAFETY: `offset` is 0 or 16, so 16 bytes from it are inside the 32-byte key.
            Some(key) => unsafe {
                _mm_loadu_si128(key[offset..offset + BLOCK_LEN].as_ptr().cast())
            },
            None => _mm_setzero_si128(),
        };
        let v = _mm512_castsi128_si512(part(0));
        let v = _mm512_inserti32x4::<1>(v, part(1));
        let v = _mm512_inserti32x4::<2>(v, part(2));
        _mm512_inserti32x4::<3>(v, part(3))
    }

    /// Expands four AES-256 keys at once (FIPS 197, 5.2), one per 128-bit part.
    ///
    /// `vaeskeygenassist` has no 512-bit form, so the word functions come from
    /// `vaesenclast` instead: with the same word in all four columns, ShiftRows leaves the
    /// state unchanged and the instruction computes `SubWord` of that word plus the round
    /// key, which carries the round constant.
    #[target_feature(enable = "aes,vaes,avx512f,avx512bw")]
    fn expand(low: __m512i, high: __m512i, keys: &mut [__m512i; ROUND_KEYS]) {
        // Byte indexes, per 128-bit part, of RotWord of the last word in every column and
        // of the last word itself in every column.
        let rot_last = _mm512_set4_epi32(0x0c0f0e0d, 0x0c0f0e0d, 0x0c0f0e0d, 0x0c0f0e0d);
        let last = _mm512_set4_epi32(0x0f0e0d0c, 0x0f0e0d0c, 0x0f0e0d0c, 0x0f0e0d0c);
        let zero = _mm512_setzero_si512();

        // Folds the four words of `prev` into a running XOR and adds the broadcast `t`.
        let next = |prev: __m512i, t: __m512i| {
            let mut k = prev;
            k = _mm512_xor_si512(k, _mm512_bslli_epi128::<4>(k));
            k = _mm512_xor_si512(k, _mm512_bslli_epi128::<4>(k));
            k = _mm512_xor_si512(k, _mm512_bslli_epi128::<4>(k));
            _mm512_xor_si512(k, t)
        };

        let mut even = low;
        let mut odd = high;
        keys[0] = even;
        keys[1] = odd;
        let mut rcon = 1i32;
        for pair in 1..=7 {
            let t = _mm512_aesenclast_epi128(
                _mm512_shuffle_epi8(odd, rot_last),
                _mm512_set1_epi32(rcon),
            );
            even = next(even, t);
            keys[2 * pair] = even;
            if pair < 7 {
                let t = _mm512_aesenclast_epi128(_mm512_shuffle_epi8(even, last), zero);
                odd = next(odd, t);
                keys[2 * pair + 1] = odd;
            }
            rcon <<= 1;
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};

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

    /// Returns the head block whose encryption under `key` is `iv`.
    fn head_for_iv(key: &[u8; 32], iv: &[u8; 16]) -> [u8; 16] {
        let mut array = (*iv).into();
        aes::Aes256Dec::new(&(*key).into()).decrypt_block(&mut array);
        array.into()
    }

    fn paths() -> Vec<AesPath> {
        [AesPath::AesNi, AesPath::Vaes].into_iter().filter(|p| p.is_available()).collect()
    }

    #[test]
    fn head_matches_fips_197_c3() {
        let key: [u8; 32] = core::array::from_fn(|i| i as u8);
        for path in paths() {
            let mut lane = CbcLane {
                key: &key,
                head: core::array::from_fn(|i| (i as u8) * 0x11),
                blocks: &mut [],
                chain: [0; 16],
            };
            assert!(cbc_encrypt_lanes_with(path, core::slice::from_mut(&mut lane)));
            assert_eq!(hex::encode(lane.chain), "8ea2b7ca516745bfeafc49904b496089", "{path:?}");
        }
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
            let mut ours = plain.clone();
            let mut lanes: Vec<CbcLane<'_>> = ours
                .iter_mut()
                .zip(&keys)
                .zip(&ivs)
                .map(|((blocks, key), iv)| CbcLane {
                    key,
                    head: head_for_iv(key, iv),
                    blocks,
                    chain: [0; 16],
                })
                .collect();
            assert!(cbc_encrypt_lanes_with(path, &mut lanes));
            for lane in &lanes {
                let last = lane.blocks.last().copied();
                let iv = ivs[keys.iter().position(|k| k == lane.key).unwrap()];
                assert_eq!(lane.chain, last.unwrap_or(iv), "{path:?} chain, {count} lanes");
            }
            drop(lanes);
            for j in 0..count {
                let mut expected = plain[j].clone();
                reference_cbc(&keys[j], &ivs[j], &mut expected);
                assert_eq!(ours[j], expected, "{path:?} lane {j} of {count}");
            }
        }
    }

    #[test]
    fn empty_group_encrypts_nothing() {
        for path in paths() {
            assert!(cbc_encrypt_lanes_with(path, &mut []), "{path:?}");
        }
    }

    #[test]
    fn vaes_expansion_matches_aes_ni() {
        if !AesPath::Vaes.is_available() {
            return;
        }
        // Random-looking keys of sixteen lanes, one block each; both paths must agree with
        // the aes crate, which checks the expanded schedules of all four register parts.
        let keys: Vec<[u8; 32]> = (0..16u8)
            .map(|j| core::array::from_fn(|i| (i as u8).wrapping_mul(151) ^ j.wrapping_mul(89)))
            .collect();
        for path in paths() {
            let mut lanes: Vec<CbcLane<'_>> = keys
                .iter()
                .map(|key| CbcLane { key, head: [0x3c; 16], blocks: &mut [], chain: [0; 16] })
                .collect();
            assert!(cbc_encrypt_lanes_with(path, &mut lanes));
            for lane in &lanes {
                let mut expected = [0x3c; 16];
                reference_cbc(lane.key, &[0; 16], core::slice::from_mut(&mut expected));
                assert_eq!(lane.chain, expected, "{path:?}");
            }
        }
    }
}
