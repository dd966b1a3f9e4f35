//! SHA-512 compression of one message, as fast as one core runs it.
//!
//! HMAC over one packet is a single chain of SHA-512 blocks, so the only speed to gain is
//! inside the compression function (FIPS 180-4, 6.4.2). Each block has two parts:
//!
//! - the message schedule, 64 words computed from the block's 16, which only depends on
//!   the block. Two words at a time fit one 128-bit vector, because word `t` needs words
//!   `t - 2` and older. It runs in the vector unit and leaves the sum of each word and its
//!   round constant in memory;
//! - 80 rounds, a chain of scalar additions, rotations and bit functions, with BMI2's
//!   `rorx` for rotations that keep their source register.
//!
//! The schedule of the words 16 rounds ahead is computed between rounds, so the vector and
//! the scalar units run at the same time. The rounds read each scheduled word as a memory
//! operand: left to itself the compiler moves the words from vector to scalar registers
//! one by one, which costs more than the load.
//!
//! [`compress`] picks the widest variant the CPU supports at run time, and falls back to
//! the sha2 crate's compression function elsewhere. Every variant gives the same output,
//! which the tests check against the sha2 crate on random blocks.
#![allow(
    unsafe_code,
    reason = "the AVX2 and AVX-512 intrinsics of std::arch run only inside target_feature \
              functions, which are unsafe to call until the CPU features are detected, and \
              their loads and stores take raw pointers"
)]

/// SHA-512 block length in bytes.
pub(crate) const BLOCK_LEN: usize = 128;

/// The implementations [`compress`] chooses between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    /// The sha2 crate's compression function.
    Portable,
    /// AVX2 schedule with rotations built from shifts, BMI2 rounds.
    Avx2,
    /// AVX-512VL schedule with native 64-bit rotations, BMI2 rounds.
    Avx512,
}

impl Variant {
    /// Every variant, for tests that run them all.
    #[cfg(test)]
    pub(crate) const ALL: [Variant; 3] = [Variant::Portable, Variant::Avx2, Variant::Avx512];

    /// The fastest variant this CPU supports.
    pub(crate) fn detect() -> Variant {
        if Variant::Avx512.is_available() {
            Variant::Avx512
        } else if Variant::Avx2.is_available() {
            Variant::Avx2
        } else {
            Variant::Portable
        }
    }

    /// The name benchmarks report.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Variant::Portable => "portable",
            Variant::Avx2 => "avx2",
            Variant::Avx512 => "avx512",
        }
    }

    /// Reports whether this CPU has the instructions the variant needs.
    pub(crate) fn is_available(self) -> bool {
        match self {
            Variant::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Variant::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("bmi2")
            }
            #[cfg(target_arch = "x86_64")]
            Variant::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("bmi2")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// Compresses `blocks` into `state` with the fastest variant this CPU has.
#[inline]
pub(crate) fn compress(state: &mut [u64; 8], blocks: &[[u8; BLOCK_LEN]]) {
    // std caches the CPUID answers, so detection is a few loads and branches.
    match Variant::detect() {
        Variant::Portable => sha2::block_api::compress512(state, blocks),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: detect() returns Avx2 only when the CPU has AVX2 and BMI2.
        Variant::Avx2 => unsafe { x86::compress_avx2(state, blocks) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: detect() returns Avx512 only when the CPU has AVX-512F, AVX-512VL and BMI2.
        Variant::Avx512 => unsafe { x86::compress_avx512(state, blocks) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => sha2::block_api::compress512(state, blocks),
    }
}

/// Compresses `blocks` into `state` with the given variant, which must be available.
#[cfg(test)]
pub(crate) fn compress_with(variant: Variant, state: &mut [u64; 8], blocks: &[[u8; BLOCK_LEN]]) {
    assert!(variant.is_available(), "{variant:?} is not available on this CPU");
    match variant {
        Variant::Portable => sha2::block_api::compress512(state, blocks),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: availability was asserted above.
        Variant::Avx2 => unsafe { x86::compress_avx2(state, blocks) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: availability was asserted above.
        Variant::Avx512 => unsafe { x86::compress_avx512(state, blocks) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the portable variant exists off x86_64"),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    pub(super) use avx2::compress as compress_avx2;
    pub(super) use avx512::compress as compress_avx512;

    /// One round of FIPS 180-4 6.4.2 step 3, with the working variables renamed by the
    /// caller instead of moved. `$ab` receives `a ^ b`, which the next round uses as its
    /// `b ^ c` in the majority function: `maj(a, b, c) = ((a ^ b) & (b ^ c)) ^ b`.
    macro_rules! round {
        ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident,
         $ab:ident, $bc:ident, $wk:expr) => {
            let hk = $h.wrapping_add($wk);
            let choice = $g ^ ($e & ($f ^ $g));
            let sigma1 = $e.rotate_right(14) ^ $e.rotate_right(18) ^ $e.rotate_right(41);
            let t1 = hk.wrapping_add(choice).wrapping_add(sigma1);
            let sigma0 = $a.rotate_right(28) ^ $a.rotate_right(34) ^ $a.rotate_right(39);
            $ab = $a ^ $b;
            let majority = ($ab & $bc) ^ $b;
            $d = $d.wrapping_add(t1);
            $h = t1.wrapping_add(sigma0.wrapping_add(majority));
        };
    }

    /// A 64-bit rotation right of both words of a vector, in one AVX-512VL instruction.
    macro_rules! ror_native {
        ($x:expr, $n:literal) => {
            _mm_ror_epi64::<$n>($x)
        };
    }

    /// A 64-bit rotation right of both words of a vector, from two shifts.
    macro_rules! ror_shifts {
        ($x:expr, $n:literal) => {
            _mm_or_si128(_mm_srli_epi64::<$n>($x), _mm_slli_epi64::<{ 64 - $n }>($x))
        };
    }

    /// A module holding the compression function built for `$features`, with `$ror` as
    /// the schedule's rotation. Every function in it carries the same target features, so
    /// the compiler inlines them into each other.
    macro_rules! variant {
        ($module:ident, $features:literal, $ror:ident) => {
            mod $module {
                #[allow(unused_imports, reason = "each variant uses its own rotation")]
                use core::arch::x86_64::{
                    __m128i, _mm_add_epi64, _mm_alignr_epi8, _mm_loadu_si128, _mm_or_si128,
                    _mm_ror_epi64, _mm_set_epi8, _mm_shuffle_epi8, _mm_slli_epi64, _mm_srli_epi64,
                    _mm_storeu_si128, _mm_xor_si128,
                };

                use crate::crypto::mb::ROUND_CONSTANTS;
                use crate::crypto::sha512::BLOCK_LEN;

                /// Compresses `blocks` into `state`.
                ///
                /// # Safety
                /// The CPU must support the target features of this function.
                #[target_feature(enable = $features)]
                pub(in crate::crypto::sha512) unsafe fn compress(
                    state: &mut [u64; 8],
                    blocks: &[[u8; BLOCK_LEN]],
                ) {
                    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
                    for block in blocks {
                        let mut wk = [0u64; 80];
                        let mut words = load_block(block, &mut wk);
                        let start = [a, b, c, d, e, f, g, h];
                        let mut ab;
                        let mut bc = b ^ c;

                        // Rounds t..t+8, scheduling words t+16..t+24 between them.
                        macro_rules! eight {
                            ($t:expr) => {
                                round!(a, b, c, d, e, f, g, h, ab, bc, scheduled(&wk, $t));
                                round!(h, a, b, c, d, e, f, g, bc, ab, scheduled(&wk, $t + 1));
                                schedule_pair(&mut words, &mut wk, $t + 16);
                                round!(g, h, a, b, c, d, e, f, ab, bc, scheduled(&wk, $t + 2));
                                round!(f, g, h, a, b, c, d, e, bc, ab, scheduled(&wk, $t + 3));
                                schedule_pair(&mut words, &mut wk, $t + 18);
                                round!(e, f, g, h, a, b, c, d, ab, bc, scheduled(&wk, $t + 4));
                                round!(d, e, f, g, h, a, b, c, bc, ab, scheduled(&wk, $t + 5));
                                schedule_pair(&mut words, &mut wk, $t + 20);
                                round!(c, d, e, f, g, h, a, b, ab, bc, scheduled(&wk, $t + 6));
                                round!(b, c, d, e, f, g, h, a, bc, ab, scheduled(&wk, $t + 7));
                                schedule_pair(&mut words, &mut wk, $t + 22);
                            };
                        }
                        eight!(0);
                        eight!(8);
                        eight!(16);
                        eight!(24);
                        eight!(32);
                        eight!(40);
                        eight!(48);
                        eight!(56);
                        eight!(64);
                        eight!(72);

                        let end = [a, b, c, d, e, f, g, h];
                        [a, b, c, d, e, f, g, h] =
                            core::array::from_fn(|i| start[i].wrapping_add(end[i]));
                    }
                    *state = [a, b, c, d, e, f, g, h];
                }

                /// Loads the 16 big-endian words of `block` as eight pairs, and writes each
                /// word plus its round constant to `wk[0..16]`.
                #[target_feature(enable = $features)]
                fn load_block(block: &[u8; BLOCK_LEN], wk: &mut [u64; 80]) -> [__m128i; 8] {
                    // Reverses the bytes of each 64-bit half.
                    let swap = _mm_set_epi8(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
                    core::array::from_fn(|pair| {
                        // SAFETY: pair < 8, so bytes 16 * pair .. + 16 are inside the block.
                        let raw = unsafe { _mm_loadu_si128(block.as_ptr().add(16 * pair).cast()) };
                        let words = _mm_shuffle_epi8(raw, swap);
                        store_sum(wk, 2 * pair, words);
                        words
                    })
                }

                /// Computes words `t` and `t + 1` (`t` even) of the schedule from the ring of
                /// the last 16 words in `words`, stores them plus their round constants in
                /// `wk`, and puts them in the ring where words `t - 16` and `t - 15` were.
                /// From word 80 on it does nothing, so the last rounds read like the others.
                #[target_feature(enable = $features)]
                fn schedule_pair(words: &mut [__m128i; 8], wk: &mut [u64; 80], t: usize) {
                    if t >= 80 {
                        return;
                    }
                    let slot = (t / 2) % 8;
                    let back = |distance: usize| words[(slot + 8 - distance / 2) % 8];
                    // Words t-16 and t-15, t-15 and t-14, t-7 and t-6, t-2 and t-1.
                    let w16 = back(16);
                    let w15 = _mm_alignr_epi8::<8>(back(14), w16);
                    let w7 = _mm_alignr_epi8::<8>(back(6), back(8));
                    let w2 = back(2);
                    let sigma0 = _mm_xor_si128(
                        _mm_xor_si128($ror!(w15, 1), $ror!(w15, 8)),
                        _mm_srli_epi64::<7>(w15),
                    );
                    let sigma1 = _mm_xor_si128(
                        _mm_xor_si128($ror!(w2, 19), $ror!(w2, 61)),
                        _mm_srli_epi64::<6>(w2),
                    );
                    let next = _mm_add_epi64(_mm_add_epi64(w16, w7), _mm_add_epi64(sigma0, sigma1));
                    words[slot] = next;
                    store_sum(wk, t, next);
                }

                /// Stores words `t` and `t + 1` plus their round constants at `wk[t..t + 2]`.
                #[target_feature(enable = $features)]
                fn store_sum(wk: &mut [u64; 80], t: usize, words: __m128i) {
                    let constants = &ROUND_CONSTANTS[t..t + 2];
                    let target = &mut wk[t..t + 2];
                    // SAFETY: both slices hold exactly two u64: one unaligned 128-bit load
                    // and one unaligned 128-bit store.
                    unsafe {
                        let k = _mm_loadu_si128(constants.as_ptr().cast());
                        _mm_storeu_si128(target.as_mut_ptr().cast(), _mm_add_epi64(words, k));
                    }
                }

                /// Word `t` plus its round constant, read from memory (see the module
                /// comment of `sha512`).
                #[inline(always)]
                fn scheduled(wk: &[u64; 80], t: usize) -> u64 {
                    let word = &wk[t];
                    // SAFETY: `word` is a valid, aligned reference to an initialised u64.
                    unsafe { core::ptr::read_volatile(word) }
                }
            }
        };
    }

    variant!(avx512, "avx512f,avx512vl,bmi2", ror_native);
    variant!(avx2, "avx2,bmi2", ror_shifts);
}

#[cfg(test)]
mod tests {
    use super::{BLOCK_LEN, Variant, compress_with};

    /// SplitMix64: enough randomness for test inputs, and the same inputs on every run.
    struct Inputs(u64);

    impl Inputs {
        fn word(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn block(&mut self) -> [u8; BLOCK_LEN] {
            let mut block = [0u8; BLOCK_LEN];
            for chunk in block.chunks_mut(8) {
                chunk.copy_from_slice(&self.word().to_le_bytes());
            }
            block
        }
    }

    #[test]
    fn every_variant_matches_the_sha2_crate() {
        let mut inputs = Inputs(0x005b_a512);
        for blocks in [1, 2, 3, 7, 12, 40] {
            for _ in 0..20 {
                let message: Vec<[u8; BLOCK_LEN]> = (0..blocks).map(|_| inputs.block()).collect();
                let start: [u64; 8] = core::array::from_fn(|_| inputs.word());
                let mut expected = start;
                sha2::block_api::compress512(&mut expected, &message);
                for variant in Variant::ALL.into_iter().filter(|v| v.is_available()) {
                    let mut state = start;
                    compress_with(variant, &mut state, &message);
                    assert_eq!(state, expected, "{variant:?}, {blocks} blocks");
                }
            }
        }
    }

    #[test]
    fn every_variant_handles_extreme_words() {
        // All-zero and all-one blocks and states drive every carry and rotation edge.
        for fill in [0x00u8, 0xff, 0x80, 0x01] {
            let message = vec![[fill; BLOCK_LEN]; 3];
            for start in [[0u64; 8], [u64::MAX; 8]] {
                let mut expected = start;
                sha2::block_api::compress512(&mut expected, &message);
                for variant in Variant::ALL.into_iter().filter(|v| v.is_available()) {
                    let mut state = start;
                    compress_with(variant, &mut state, &message);
                    assert_eq!(state, expected, "{variant:?}, fill {fill:#04x}");
                }
            }
        }
    }

    #[test]
    fn detection_picks_an_available_variant() {
        assert!(Variant::detect().is_available());
        // An empty message leaves the state alone in every variant.
        for variant in Variant::ALL.into_iter().filter(|v| v.is_available()) {
            let mut state = [7u64; 8];
            compress_with(variant, &mut state, &[]);
            assert_eq!(state, [7u64; 8]);
        }
    }
}
