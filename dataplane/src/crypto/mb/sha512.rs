//! SHA-512 compression of several independent messages at once, and HMAC-SHA-384/512 over
//! a burst of messages built on it.
//!
//! Each 64-bit lane of a vector register carries the state of a different message, so one
//! instruction runs the same step of the compression function (FIPS 180-4, 6.4.2) for
//! every lane. A 512-bit AVX-512 register has eight lanes, and a 256-bit AVX2 register has
//! four. The blocks of the lanes are transposed on load, so that register `t` holds
//! message word `t` of every lane. SHA-384 uses the same compression with other initial
//! values (FIPS 180-4, 6.5), so the HMAC keyed states decide which of the two a lane runs.
//!
//! [`hmac_burst`] keeps every lane busy while messages of different lengths pass through:
//! a lane that finishes its inner hash takes its outer block next, and a lane that finishes
//! a tag takes the next message of the burst.

use sha2::block_api::compress512;
use zeroize::Zeroize;

use super::Width;

/// SHA-512 block length in bytes.
pub(crate) const BLOCK_LEN: usize = 128;

/// Bytes of the longest HMAC tag (HMAC-SHA-512); SHA-384 tags are 48.
pub(crate) const TAG_BUF_LEN: usize = 64;

/// FIPS 180-4, 4.2.3: the 80 SHA-512 round constants.
pub(crate) const ROUND_CONSTANTS: [u64; 80] = [
    0x428a2f98d728ae22,
    0x7137449123ef65cd,
    0xb5c0fbcfec4d3b2f,
    0xe9b5dba58189dbbc,
    0x3956c25bf348b538,
    0x59f111f1b605d019,
    0x923f82a4af194f9b,
    0xab1c5ed5da6d8118,
    0xd807aa98a3030242,
    0x12835b0145706fbe,
    0x243185be4ee4b28c,
    0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f,
    0x80deb1fe3b1696b1,
    0x9bdc06a725c71235,
    0xc19bf174cf692694,
    0xe49b69c19ef14ad2,
    0xefbe4786384f25e3,
    0x0fc19dc68b8cd5b5,
    0x240ca1cc77ac9c65,
    0x2de92c6f592b0275,
    0x4a7484aa6ea6e483,
    0x5cb0a9dcbd41fbd4,
    0x76f988da831153b5,
    0x983e5152ee66dfab,
    0xa831c66d2db43210,
    0xb00327c898fb213f,
    0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2,
    0xd5a79147930aa725,
    0x06ca6351e003826f,
    0x142929670a0e6e70,
    0x27b70a8546d22ffc,
    0x2e1b21385c26c926,
    0x4d2c6dfc5ac42aed,
    0x53380d139d95b3df,
    0x650a73548baf63de,
    0x766a0abb3c77b2a8,
    0x81c2c92e47edaee6,
    0x92722c851482353b,
    0xa2bfe8a14cf10364,
    0xa81a664bbc423001,
    0xc24b8b70d0f89791,
    0xc76c51a30654be30,
    0xd192e819d6ef5218,
    0xd69906245565a910,
    0xf40e35855771202a,
    0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8,
    0x1e376c085141ab53,
    0x2748774cdf8eeb99,
    0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63,
    0x4ed8aa4ae3418acb,
    0x5b9cca4f7763e373,
    0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc,
    0x78a5636f43172f60,
    0x84c87814a1f0ab72,
    0x8cc702081a6439ec,
    0x90befffa23631e28,
    0xa4506cebde82bde9,
    0xbef9a3f7b2c67915,
    0xc67178f2e372532b,
    0xca273eceea26619c,
    0xd186b8c721c0c207,
    0xeada7dd6cde0eb1e,
    0xf57d4f7fee6ed178,
    0x06f067aa72176fba,
    0x0a637dc5a2c898a6,
    0x113f9804bef90dae,
    0x1b710b35131c471b,
    0x28db77f523047d84,
    0x32caab7b40c72493,
    0x3c9ebe0a15c9bebc,
    0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6,
    0x597f299cfc657e2a,
    0x5fcb6fab3ad6faec,
    0x6c44198c4a475817,
];

/// One message to authenticate: the HMAC key as its two precomputed states (the SHA-512
/// chaining values after the `ipad` and `opad` blocks) and the tag length, 48 or 64.
pub(crate) struct MacJob<'a> {
    pub(crate) inner: &'a [u64; 8],
    pub(crate) outer: &'a [u64; 8],
    pub(crate) tag_len: usize,
    pub(crate) message: &'a [u8],
}

impl MacJob<'_> {
    /// A job with an empty message, to fill unused entries of a fixed-size array.
    pub(crate) const EMPTY: MacJob<'static> =
        MacJob { inner: &[0; 8], outer: &[0; 8], tag_len: 48, message: &[] };
}

/// Computes the HMAC tag of every job into the matching entry of `tags`, whose first
/// `tag_len` bytes it writes, with as many lanes as `width` gives. A width this CPU lacks
/// runs as [`Width::Scalar`].
pub(crate) fn hmac_burst(width: Width, jobs: &[MacJob<'_>], tags: &mut [&mut [u8]]) {
    let width = if width.is_available() { width } else { Width::Scalar };
    match width {
        #[cfg(target_arch = "x86_64")]
        Width::Avx512 => schedule::<8>(jobs, tags, |state, runs, count| {
            // SAFETY: `is_available` detected AVX-512F and AVX-512BW just above, and
            // `schedule` hands over runs of `count` blocks or of one block.
            unsafe { avx512::compress(state, runs, count) }
        }),
        #[cfg(target_arch = "x86_64")]
        Width::Avx2 => schedule::<4>(jobs, tags, |state, runs, count| {
            // SAFETY: `is_available` detected AVX2 just above, and `schedule` hands over
            // runs of `count` blocks or of one block.
            unsafe { avx2::compress(state, runs, count) }
        }),
        _ => schedule::<1>(jobs, tags, |state, runs, count| {
            let mut lane = core::array::from_fn(|w| state[w][0]);
            match runs[0].get(..count) {
                Some(blocks) => compress512(&mut lane, blocks),
                None => (0..count).for_each(|_| compress512(&mut lane, &runs[0][..1])),
            }
            for (word, value) in state.iter_mut().zip(lane) {
                word[0] = value;
            }
            lane.zeroize();
        }),
    }
}

/// The chaining values of `L` lanes, word-major: `state[w][lane]`.
type LaneState<const L: usize> = [[u64; L]; 8];

/// The source of a lane's next blocks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// No job: the lane compresses a block of zeros and its result is never read.
    Idle,
    /// The whole blocks of the message, read in place.
    Message,
    /// The padded final blocks of the inner hash, one or two, in the lane's pad buffer.
    Pad,
    /// The outer block, `inner digest || padding`, in the lane's outer buffer.
    Outer,
}

/// The progress of one lane through its job.
#[derive(Clone, Copy)]
struct Lane {
    job: usize,
    source: Source,
    /// Blocks of `source` already compressed.
    done: usize,
    /// Whole message blocks.
    full: usize,
    /// Padded final blocks after the whole ones: one or two.
    pad_blocks: usize,
}

impl Lane {
    const IDLE: Lane = Lane { job: 0, source: Source::Idle, done: 0, full: 0, pad_blocks: 0 };
}

/// The block an idle lane compresses; its result is never read.
static ZERO_BLOCK: [u8; BLOCK_LEN] = [0; BLOCK_LEN];

/// The blocks of each lane that are not read from the message in place.
struct Buffers<const L: usize> {
    pads: [[[u8; BLOCK_LEN]; 2]; L],
    outers: [[u8; BLOCK_LEN]; L],
}

/// Runs the jobs through `L` lanes of `compress` until every tag is written.
///
/// `compress(state, runs, count)` compresses `count` blocks into each lane. Each run holds
/// at least `count` blocks, except that an idle lane's run is one block of zeros, which it
/// compresses over and over. A lane stays on its message's whole blocks for as long as
/// every other busy lane has blocks left in its own source, so a burst of similar lengths
/// keeps its chaining values in registers for most of the message.
fn schedule<const L: usize>(
    jobs: &[MacJob<'_>],
    tags: &mut [&mut [u8]],
    mut compress: impl FnMut(&mut LaneState<L>, &[&[[u8; BLOCK_LEN]]; L], usize),
) {
    let mut lanes = [Lane::IDLE; L];
    let mut buffers = Buffers { pads: [[[0; BLOCK_LEN]; 2]; L], outers: [[0; BLOCK_LEN]; L] };
    let mut state: LaneState<L> = [[0; L]; 8];
    let mut queued = 0;

    loop {
        for (index, lane) in lanes.iter_mut().enumerate() {
            if lane.source == Source::Idle && queued < jobs.len() {
                start(lane, &mut buffers.pads[index], queued, &jobs[queued]);
                load_lane(&mut state, index, jobs[queued].inner);
                queued += 1;
            }
        }
        let busy = lanes.iter().filter(|lane| lane.source != Source::Idle).count();
        if busy == 0 {
            break;
        }

        // A single lane left with nothing queued runs faster on the one-message
        // compression than as one lane of a wide register.
        if L > 1 && busy == 1 && queued == jobs.len() {
            if let Some(index) = lanes.iter().position(|lane| lane.source != Source::Idle) {
                finish_alone(&mut lanes[index], &mut buffers, &mut state, index, jobs, tags);
            }
            continue;
        }

        let runs: [&[[u8; BLOCK_LEN]]; L] =
            core::array::from_fn(|index| run(&lanes[index], &buffers, index, jobs));
        let count = lanes
            .iter()
            .zip(&runs)
            .filter(|(lane, _)| lane.source != Source::Idle)
            .map(|(_, run)| run.len())
            .min()
            .unwrap_or(1);
        compress(&mut state, &runs, count);

        for (index, lane) in lanes.iter_mut().enumerate() {
            advance(lane, &mut buffers, &mut state, index, count, jobs, tags);
        }
    }
    // The chaining values and the inner digests in the outer blocks are as secret as the
    // keyed states they came from.
    state.zeroize();
    buffers.outers.iter_mut().for_each(|outer| outer[..TAG_BUF_LEN].zeroize());
}

/// Starts the inner hash of `job` in a lane. The message's last partial block and its
/// padding (FIPS 180-4, 5.1.2: a one bit, zeros, the bit length in 128 bits) go to the
/// lane's pad buffer, and the length counts the `ipad` block already absorbed into the
/// keyed state.
fn start(lane: &mut Lane, pad: &mut [[u8; BLOCK_LEN]; 2], index: usize, job: &MacJob<'_>) {
    let (blocks, rest) = job.message.as_chunks::<BLOCK_LEN>();
    let pad_blocks = if rest.len() + 1 + 16 <= BLOCK_LEN { 1 } else { 2 };
    let end = pad_blocks * BLOCK_LEN;
    let flat = pad.as_flattened_mut();
    flat[..rest.len()].copy_from_slice(rest);
    flat[rest.len()] = 0x80;
    flat[rest.len() + 1..end - 16].fill(0);
    let bit_len = ((BLOCK_LEN + job.message.len()) as u128) * 8;
    flat[end - 16..end].copy_from_slice(&bit_len.to_be_bytes());

    let source = if blocks.is_empty() { Source::Pad } else { Source::Message };
    *lane = Lane { job: index, source, done: 0, full: blocks.len(), pad_blocks };
}

/// Returns the blocks a lane has left in its current source.
fn run<'b, const L: usize>(
    lane: &Lane,
    buffers: &'b Buffers<L>,
    index: usize,
    jobs: &'b [MacJob<'_>],
) -> &'b [[u8; BLOCK_LEN]] {
    match lane.source {
        Source::Idle => core::slice::from_ref(&ZERO_BLOCK),
        Source::Message => &jobs[lane.job].message.as_chunks::<BLOCK_LEN>().0[lane.done..],
        Source::Pad => &buffers.pads[index][lane.done..lane.pad_blocks],
        Source::Outer => core::slice::from_ref(&buffers.outers[index]),
    }
}

/// Moves a lane past the `count` blocks it just compressed, to its next source when the
/// current one is used up.
fn advance<const L: usize>(
    lane: &mut Lane,
    buffers: &mut Buffers<L>,
    state: &mut LaneState<L>,
    index: usize,
    count: usize,
    jobs: &[MacJob<'_>],
    tags: &mut [&mut [u8]],
) {
    lane.done += count;
    match lane.source {
        Source::Idle => {}
        Source::Message => {
            if lane.done == lane.full {
                lane.source = Source::Pad;
                lane.done = 0;
            }
        }
        Source::Pad => {
            if lane.done == lane.pad_blocks {
                start_outer(lane, &mut buffers.outers[index], state, index, &jobs[lane.job]);
            }
        }
        Source::Outer => {
            let tag_len = jobs[lane.job].tag_len;
            write_lane(state, index, &mut tags[lane.job][..tag_len]);
            lane.source = Source::Idle;
        }
    }
}

/// Builds the outer block, `inner digest || padding`, and loads the outer keyed state.
fn start_outer<const L: usize>(
    lane: &mut Lane,
    outer: &mut [u8; BLOCK_LEN],
    state: &mut LaneState<L>,
    index: usize,
    job: &MacJob<'_>,
) {
    write_lane(state, index, &mut outer[..job.tag_len]);
    outer[job.tag_len] = 0x80;
    outer[job.tag_len + 1..BLOCK_LEN - 16].fill(0);
    let bit_len = ((BLOCK_LEN + job.tag_len) as u128) * 8;
    outer[BLOCK_LEN - 16..].copy_from_slice(&bit_len.to_be_bytes());
    load_lane(state, index, job.outer);
    lane.source = Source::Outer;
    lane.done = 0;
}

/// Completes one lane's job with the one-message compression function.
fn finish_alone<const L: usize>(
    lane: &mut Lane,
    buffers: &mut Buffers<L>,
    state: &mut LaneState<L>,
    index: usize,
    jobs: &[MacJob<'_>],
    tags: &mut [&mut [u8]],
) {
    while lane.source != Source::Idle {
        let mut words: [u64; 8] = core::array::from_fn(|w| state[w][index]);
        let blocks = run(lane, buffers, index, jobs);
        let count = blocks.len();
        crate::crypto::sha512::compress(&mut words, blocks);
        load_lane(state, index, &words);
        words.zeroize();
        advance(lane, buffers, state, index, count, jobs, tags);
    }
}

fn load_lane<const L: usize>(state: &mut LaneState<L>, index: usize, words: &[u64; 8]) {
    for (word, value) in state.iter_mut().zip(words) {
        word[index] = *value;
    }
}

/// Writes the first `out.len()` bytes of a lane's chaining value, big-endian.
fn write_lane<const L: usize>(state: &LaneState<L>, index: usize, out: &mut [u8]) {
    // Whole words are stored with fixed-size copies, which compile to plain stores. Tags
    // are 48 or 64 bytes, so they end on a whole word and the last branch is for callers
    // that ask for another length.
    let whole = out.len() / 8;
    let mut chunks = out.chunks_exact_mut(8);
    for (chunk, word) in (&mut chunks).zip(state) {
        chunk.copy_from_slice(&word[index].to_be_bytes());
    }
    let rest = chunks.into_remainder();
    if let Some(word) = state.get(whole) {
        let len = rest.len();
        rest.copy_from_slice(&word[index].to_be_bytes()[..len]);
    }
}

/// Expands to one round of SHA-512 on vectors (FIPS 180-4, 6.4.2 step 3), preceded for
/// rounds 16 to 79 by the message schedule (step 1), which rewrites `$w[$i]` in place.
/// The functions it calls (`add`, `broadcast`, the sigmas, `choose`, `majority`) are those
/// of the module it expands in.
#[cfg(target_arch = "x86_64")]
macro_rules! sha512_round {
    ($w:ident, $chunk:expr, $i:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident,
     $f:ident, $g:ident, $h:ident) => {
        if $chunk > 0 {
            $w[$i] = add(
                add(small_sigma1($w[($i + 14) & 15]), $w[($i + 9) & 15]),
                add(small_sigma0($w[($i + 1) & 15]), $w[$i]),
            );
        }
        let constant = broadcast(ROUND_CONSTANTS[$chunk * 16 + $i]);
        let t1 = add(add($h, big_sigma1($e)), add(choose($e, $f, $g), add(constant, $w[$i])));
        let t2 = add(big_sigma0($a), majority($a, $b, $c));
        $h = $g;
        $g = $f;
        $f = $e;
        $e = add($d, t1);
        $d = $c;
        $c = $b;
        $b = $a;
        $a = add(t1, t2);
    };
}

/// Expands to the 80 rounds of SHA-512 over the transposed block `$w`, as five runs of the
/// sixteen rounds that share one window of the message schedule. The runs are written out
/// with constant indices so that the message words and the working variables stay in
/// registers.
#[cfg(target_arch = "x86_64")]
macro_rules! sha512_rounds {
    ($w:ident, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident) => {
        sha512_sixteen!($w, 0, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_sixteen!($w, 1, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_sixteen!($w, 2, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_sixteen!($w, 3, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_sixteen!($w, 4, $a, $b, $c, $d, $e, $f, $g, $h);
    };
}

/// Expands to rounds `16 * $chunk` to `16 * $chunk + 15`.
#[cfg(target_arch = "x86_64")]
macro_rules! sha512_sixteen {
    ($w:ident, $chunk:literal, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident,
     $g:ident, $h:ident) => {
        sha512_round!($w, $chunk, 0, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_round!($w, $chunk, 1, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_round!($w, $chunk, 2, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_round!($w, $chunk, 3, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_round!($w, $chunk, 4, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_round!($w, $chunk, 5, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_round!($w, $chunk, 6, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_round!($w, $chunk, 7, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_round!($w, $chunk, 8, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_round!($w, $chunk, 9, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_round!($w, $chunk, 10, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_round!($w, $chunk, 11, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_round!($w, $chunk, 12, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_round!($w, $chunk, 13, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_round!($w, $chunk, 14, $a, $b, $c, $d, $e, $f, $g, $h);
        sha512_round!($w, $chunk, 15, $a, $b, $c, $d, $e, $f, $g, $h);
    };
}

/// Eight lanes in 512-bit registers.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use core::arch::x86_64::{
        __m512i, _mm512_add_epi64, _mm512_loadu_si512, _mm512_permutex2var_epi64, _mm512_ror_epi64,
        _mm512_set_epi64, _mm512_set1_epi64, _mm512_shuffle_epi8, _mm512_srli_epi64,
        _mm512_storeu_si512, _mm512_ternarylogic_epi64, _mm512_unpackhi_epi64,
        _mm512_unpacklo_epi64,
    };

    use super::{BLOCK_LEN, LaneState, ROUND_CONSTANTS};

    /// Compresses `count` blocks into each of eight lanes, keeping the chaining values in
    /// registers from block to block.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512BW, and each run holds at least `count`
    /// blocks or exactly one, which is then compressed `count` times.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn compress(
        state: &mut LaneState<8>,
        runs: &[&[[u8; BLOCK_LEN]]; 8],
        count: usize,
    ) {
        let mut next: [*const u8; 8] = core::array::from_fn(|j| runs[j].as_ptr().cast());
        let stride: [usize; 8] =
            core::array::from_fn(|j| if runs[j].len() > 1 { BLOCK_LEN } else { 0 });
        // SAFETY: each state word row is eight u64, one 512-bit unaligned load.
        let load = |row: &[u64; 8]| unsafe { _mm512_loadu_si512(row.as_ptr().cast()) };
        let mut chaining: [__m512i; 8] = core::array::from_fn(|i| load(&state[i]));

        for _ in 0..count {
            let mut w = [broadcast(0); 16];
            for half in 0..2 {
                let rows: [__m512i; 8] = core::array::from_fn(|j| {
                    // SAFETY: `next[j]` points at a whole block of its run (the caller
                    // guarantees enough blocks), so bytes 64 * half .. + 64 are inside it.
                    let row = unsafe { _mm512_loadu_si512(next[j].add(64 * half).cast()) };
                    byte_swap(row)
                });
                let columns = transpose(rows);
                w[8 * half..8 * half + 8].copy_from_slice(&columns);
            }

            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = chaining;
            sha512_rounds!(w, a, b, c, d, e, f, g, h);
            for (word, end) in chaining.iter_mut().zip([a, b, c, d, e, f, g, h]) {
                *word = add(*word, end);
            }
            for (pointer, step) in next.iter_mut().zip(stride) {
                *pointer = pointer.wrapping_add(step);
            }
        }

        for (row, word) in state.iter_mut().zip(chaining) {
            // SAFETY: as for the load.
            unsafe { _mm512_storeu_si512(row.as_mut_ptr().cast(), word) };
        }
    }

    /// Turns eight rows of eight words (lane `j`, words 0..8) into eight columns (word `t`
    /// of lanes 0..8).
    #[target_feature(enable = "avx512f")]
    fn transpose(r: [__m512i; 8]) -> [__m512i; 8] {
        // Pairs of lanes: even words of lanes j, j+1 in `lo`, odd words in `hi`.
        let lo: [__m512i; 4] =
            core::array::from_fn(|p| _mm512_unpacklo_epi64(r[2 * p], r[2 * p + 1]));
        let hi: [__m512i; 4] =
            core::array::from_fn(|p| _mm512_unpackhi_epi64(r[2 * p], r[2 * p + 1]));
        // Quads of lanes: words t and t + 4 of four lanes.
        let first = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
        let second = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
        let quad = |x: __m512i, y: __m512i| {
            (_mm512_permutex2var_epi64(x, first, y), _mm512_permutex2var_epi64(x, second, y))
        };
        let (w04_0, w26_0) = quad(lo[0], lo[1]);
        let (w15_0, w37_0) = quad(hi[0], hi[1]);
        let (w04_1, w26_1) = quad(lo[2], lo[3]);
        let (w15_1, w37_1) = quad(hi[2], hi[3]);
        // Both quads of lanes: word t of all eight.
        let low = _mm512_set_epi64(11, 10, 9, 8, 3, 2, 1, 0);
        let high = _mm512_set_epi64(15, 14, 13, 12, 7, 6, 5, 4);
        let join = |x: __m512i, y: __m512i| {
            (_mm512_permutex2var_epi64(x, low, y), _mm512_permutex2var_epi64(x, high, y))
        };
        let (w0, w4) = join(w04_0, w04_1);
        let (w1, w5) = join(w15_0, w15_1);
        let (w2, w6) = join(w26_0, w26_1);
        let (w3, w7) = join(w37_0, w37_1);
        [w0, w1, w2, w3, w4, w5, w6, w7]
    }

    /// Reverses the bytes of each 64-bit word: message words are big-endian.
    #[target_feature(enable = "avx512f,avx512bw")]
    fn byte_swap(x: __m512i) -> __m512i {
        let order = _mm512_set_epi64(
            0x08090a0b0c0d0e0f,
            0x0001020304050607,
            0x08090a0b0c0d0e0f,
            0x0001020304050607,
            0x08090a0b0c0d0e0f,
            0x0001020304050607,
            0x08090a0b0c0d0e0f,
            0x0001020304050607,
        );
        _mm512_shuffle_epi8(x, order)
    }

    #[target_feature(enable = "avx512f")]
    fn add(x: __m512i, y: __m512i) -> __m512i {
        _mm512_add_epi64(x, y)
    }

    #[target_feature(enable = "avx512f")]
    fn broadcast(value: u64) -> __m512i {
        _mm512_set1_epi64(value as i64)
    }

    /// Three-way XOR (truth table 0x96).
    #[target_feature(enable = "avx512f")]
    fn xor3(x: __m512i, y: __m512i, z: __m512i) -> __m512i {
        _mm512_ternarylogic_epi64::<0x96>(x, y, z)
    }

    #[target_feature(enable = "avx512f")]
    fn big_sigma0(x: __m512i) -> __m512i {
        xor3(_mm512_ror_epi64::<28>(x), _mm512_ror_epi64::<34>(x), _mm512_ror_epi64::<39>(x))
    }

    #[target_feature(enable = "avx512f")]
    fn big_sigma1(x: __m512i) -> __m512i {
        xor3(_mm512_ror_epi64::<14>(x), _mm512_ror_epi64::<18>(x), _mm512_ror_epi64::<41>(x))
    }

    #[target_feature(enable = "avx512f")]
    fn small_sigma0(x: __m512i) -> __m512i {
        xor3(_mm512_ror_epi64::<1>(x), _mm512_ror_epi64::<8>(x), _mm512_srli_epi64::<7>(x))
    }

    #[target_feature(enable = "avx512f")]
    fn small_sigma1(x: __m512i) -> __m512i {
        xor3(_mm512_ror_epi64::<19>(x), _mm512_ror_epi64::<61>(x), _mm512_srli_epi64::<6>(x))
    }

    /// `Ch(e, f, g) = (e & f) ^ (!e & g)`, truth table 0xca.
    #[target_feature(enable = "avx512f")]
    fn choose(e: __m512i, f: __m512i, g: __m512i) -> __m512i {
        _mm512_ternarylogic_epi64::<0xca>(e, f, g)
    }

    /// `Maj(a, b, c)`, truth table 0xe8.
    #[target_feature(enable = "avx512f")]
    fn majority(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
        _mm512_ternarylogic_epi64::<0xe8>(a, b, c)
    }
}

/// Four lanes in 256-bit registers.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::{
        __m256i, _mm256_add_epi64, _mm256_and_si256, _mm256_andnot_si256, _mm256_loadu_si256,
        _mm256_or_si256, _mm256_permute2x128_si256, _mm256_set_epi64x, _mm256_set1_epi64x,
        _mm256_shuffle_epi8, _mm256_slli_epi64, _mm256_srli_epi64, _mm256_storeu_si256,
        _mm256_unpackhi_epi64, _mm256_unpacklo_epi64, _mm256_xor_si256,
    };

    use super::{BLOCK_LEN, LaneState, ROUND_CONSTANTS};

    /// Compresses `count` blocks into each of four lanes, keeping the chaining values in
    /// registers from block to block.
    ///
    /// # Safety
    /// The CPU must support AVX2, and each run holds at least `count` blocks or exactly
    /// one, which is then compressed `count` times.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn compress(
        state: &mut LaneState<4>,
        runs: &[&[[u8; BLOCK_LEN]]; 4],
        count: usize,
    ) {
        let mut next: [*const u8; 4] = core::array::from_fn(|j| runs[j].as_ptr().cast());
        let stride: [usize; 4] =
            core::array::from_fn(|j| if runs[j].len() > 1 { BLOCK_LEN } else { 0 });
        // SAFETY: each state word row is four u64, one 256-bit unaligned load.
        let load = |row: &[u64; 4]| unsafe { _mm256_loadu_si256(row.as_ptr().cast()) };
        let mut chaining: [__m256i; 8] = core::array::from_fn(|i| load(&state[i]));

        for _ in 0..count {
            let mut w = [broadcast(0); 16];
            for quarter in 0..4 {
                let rows: [__m256i; 4] = core::array::from_fn(|j| {
                    // SAFETY: `next[j]` points at a whole block of its run (the caller
                    // guarantees enough blocks), so bytes 32 * quarter .. + 32 are inside.
                    let row = unsafe { _mm256_loadu_si256(next[j].add(32 * quarter).cast()) };
                    byte_swap(row)
                });
                let columns = transpose(rows);
                w[4 * quarter..4 * quarter + 4].copy_from_slice(&columns);
            }

            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = chaining;
            sha512_rounds!(w, a, b, c, d, e, f, g, h);
            for (word, end) in chaining.iter_mut().zip([a, b, c, d, e, f, g, h]) {
                *word = add(*word, end);
            }
            for (pointer, step) in next.iter_mut().zip(stride) {
                *pointer = pointer.wrapping_add(step);
            }
        }

        for (row, word) in state.iter_mut().zip(chaining) {
            // SAFETY: as for the load.
            unsafe { _mm256_storeu_si256(row.as_mut_ptr().cast(), word) };
        }
    }

    /// Turns four rows of four words into four columns.
    #[target_feature(enable = "avx2")]
    fn transpose(r: [__m256i; 4]) -> [__m256i; 4] {
        let lo01 = _mm256_unpacklo_epi64(r[0], r[1]);
        let hi01 = _mm256_unpackhi_epi64(r[0], r[1]);
        let lo23 = _mm256_unpacklo_epi64(r[2], r[3]);
        let hi23 = _mm256_unpackhi_epi64(r[2], r[3]);
        [
            _mm256_permute2x128_si256::<0x20>(lo01, lo23),
            _mm256_permute2x128_si256::<0x20>(hi01, hi23),
            _mm256_permute2x128_si256::<0x31>(lo01, lo23),
            _mm256_permute2x128_si256::<0x31>(hi01, hi23),
        ]
    }

    #[target_feature(enable = "avx2")]
    fn byte_swap(x: __m256i) -> __m256i {
        let order = _mm256_set_epi64x(
            0x08090a0b0c0d0e0f,
            0x0001020304050607,
            0x08090a0b0c0d0e0f,
            0x0001020304050607,
        );
        _mm256_shuffle_epi8(x, order)
    }

    #[target_feature(enable = "avx2")]
    fn add(x: __m256i, y: __m256i) -> __m256i {
        _mm256_add_epi64(x, y)
    }

    #[target_feature(enable = "avx2")]
    fn broadcast(value: u64) -> __m256i {
        _mm256_set1_epi64x(value as i64)
    }

    /// Rotates each word right by `R`; `L` is `64 - R`.
    #[target_feature(enable = "avx2")]
    fn ror<const R: i32, const L: i32>(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_srli_epi64::<R>(x), _mm256_slli_epi64::<L>(x))
    }

    #[target_feature(enable = "avx2")]
    fn xor3(x: __m256i, y: __m256i, z: __m256i) -> __m256i {
        _mm256_xor_si256(_mm256_xor_si256(x, y), z)
    }

    #[target_feature(enable = "avx2")]
    fn big_sigma0(x: __m256i) -> __m256i {
        xor3(ror::<28, 36>(x), ror::<34, 30>(x), ror::<39, 25>(x))
    }

    #[target_feature(enable = "avx2")]
    fn big_sigma1(x: __m256i) -> __m256i {
        xor3(ror::<14, 50>(x), ror::<18, 46>(x), ror::<41, 23>(x))
    }

    #[target_feature(enable = "avx2")]
    fn small_sigma0(x: __m256i) -> __m256i {
        xor3(ror::<1, 63>(x), ror::<8, 56>(x), _mm256_srli_epi64::<7>(x))
    }

    #[target_feature(enable = "avx2")]
    fn small_sigma1(x: __m256i) -> __m256i {
        xor3(ror::<19, 45>(x), ror::<61, 3>(x), _mm256_srli_epi64::<6>(x))
    }

    #[target_feature(enable = "avx2")]
    fn choose(e: __m256i, f: __m256i, g: __m256i) -> __m256i {
        _mm256_xor_si256(_mm256_and_si256(e, f), _mm256_andnot_si256(e, g))
    }

    /// `Maj(a, b, c) = ((a ^ b) & c) ^ (a & b)`, the same function with one fewer operation.
    #[target_feature(enable = "avx2")]
    fn majority(a: __m256i, b: __m256i, c: __m256i) -> __m256i {
        _mm256_xor_si256(_mm256_and_si256(_mm256_xor_si256(a, b), c), _mm256_and_si256(a, b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{MacAlgorithm, MacKey};

    fn widths() -> Vec<Width> {
        Width::ALL.into_iter().filter(|w| w.is_available()).collect()
    }

    /// Checks each job's tag in a burst at `width` against the one-message HMAC.
    fn check_burst(width: Width, keys: &[MacKey], messages: &[&[u8]]) {
        let jobs: Vec<MacJob<'_>> = keys
            .iter()
            .zip(messages)
            .map(|(key, message)| {
                let (inner, outer) = key.states();
                MacJob { inner, outer, tag_len: key.algorithm().tag_len(), message }
            })
            .collect();
        let mut tags = vec![[0u8; TAG_BUF_LEN]; jobs.len()];
        let mut outputs: Vec<&mut [u8]> = tags.iter_mut().map(|t| &mut t[..]).collect();
        hmac_burst(width, &jobs, &mut outputs);
        drop(outputs);
        for (j, (key, message)) in keys.iter().zip(messages).enumerate() {
            let expected = key.tag(message);
            let tag_len = key.algorithm().tag_len();
            assert_eq!(
                &tags[j][..tag_len],
                expected.as_bytes(),
                "{width:?} job {j} of {}, {} bytes",
                jobs.len(),
                message.len()
            );
        }
    }

    #[test]
    fn long_runs_beside_idle_lanes() {
        // Three long messages leave most lanes idle while the busy ones compress runs of
        // many blocks, so the idle lanes repeat their one zero block within a run. A
        // fourth, shorter message ends the runs of the others early.
        let data: Vec<u8> = (0..6000u32).map(|i| (i * 13 + 5) as u8).collect();
        let messages: Vec<&[u8]> =
            vec![&data[..2000], &data[7..3007], &data[1..5001], &data[..700]];
        for width in widths() {
            for count in 1..=messages.len() {
                let keys: Vec<MacKey> = (0..count)
                    .map(|j| {
                        let algorithm =
                            if j % 2 == 1 { MacAlgorithm::Sha512 } else { MacAlgorithm::Sha384 };
                        MacKey::new(algorithm, &[0x40 + j as u8; 64])
                    })
                    .collect();
                check_burst(width, &keys, &messages[..count]);
            }
        }
    }

    #[test]
    fn write_lane_partial_word() {
        let mut state: LaneState<2> = [[0; 2]; 8];
        state[0] = [0x0102_0304_0506_0708, 0x1112_1314_1516_1718];
        state[1] = [0x2122_2324_2526_2728, 0x3132_3334_3536_3738];
        let mut out = [0u8; 13];
        write_lane(&state, 1, &mut out);
        assert_eq!(
            out,
            [0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x31, 0x32, 0x33, 0x34, 0x35]
        );
    }

    #[test]
    fn burst_matches_mac_key_for_mixed_lengths() {
        let lengths = [0usize, 1, 111, 112, 113, 127, 128, 129, 239, 240, 256, 1432, 9000, 5, 64];
        let data: Vec<u8> = (0..9000u32).map(|i| (i * 31 + 7) as u8).collect();
        for width in widths() {
            for count in [1, 2, 3, 4, 5, 7, 8, 9, 15] {
                let keys: Vec<MacKey> = (0..count)
                    .map(|j| {
                        let algorithm =
                            if j % 3 == 1 { MacAlgorithm::Sha512 } else { MacAlgorithm::Sha384 };
                        MacKey::new(algorithm, &[j as u8; 48])
                    })
                    .collect();
                let jobs: Vec<MacJob<'_>> = (0..count)
                    .map(|j| {
                        let (inner, outer) = keys[j].states();
                        MacJob {
                            inner,
                            outer,
                            tag_len: keys[j].algorithm().tag_len(),
                            message: &data[j..j + lengths[j % lengths.len()].min(9000 - j)],
                        }
                    })
                    .collect();
                let mut tags = vec![[0u8; TAG_BUF_LEN]; count];
                let mut outputs: Vec<&mut [u8]> = tags.iter_mut().map(|t| &mut t[..]).collect();
                hmac_burst(width, &jobs, &mut outputs);
                drop(outputs);
                for (j, job) in jobs.iter().enumerate() {
                    let expected = keys[j].tag(job.message);
                    assert_eq!(
                        &tags[j][..job.tag_len],
                        expected.as_bytes(),
                        "{width:?} job {j} of {count}, {} bytes",
                        job.message.len()
                    );
                }
            }
        }
    }
}
