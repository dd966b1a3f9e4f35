//! Multi-buffer seal and open: a burst of session packets through AES-CBC and HMAC lanes
//! together, byte for byte the same as [`seal_fast_path`] and [`open_fast_path`].
//!
//! One packet at a time, both algorithms are chains: each CBC block and each SHA-512 block
//! waits for the one before it, so the core's vector units sit mostly idle. Across a burst
//! the packets are independent, so this module runs them side by side:
//!
//! - payload IV and CBC encryption in one pass: each packet's key is expanded for the burst,
//!   and the IV input block is encrypted as the first block of the packet's lane. Each
//!   step runs block `i` of up to sixteen packets (VAES) or eight (128-bit AES-NI), and
//!   lanes leave as their packets end;
//! - HMAC: SHA-512 compression of eight packets at once with AVX-512, four with AVX2, or
//!   one with the sha2 crate's compression function ([`Width`]), from the keyed states a
//!   [`MacKey`](crate::crypto::MacKey) keeps. Each lane compresses its message's whole
//!   blocks in place, in runs that keep the chaining values in registers.
//!
//! CBC decryption has no chain, and [`CbcKey`](crate::crypto::CbcKey) already decrypts
//! the blocks of one packet in parallel, so opening reuses it.
//!
//! [`seal_fast_path`]: crate::crypto::seal_fast_path
//! [`open_fast_path`]: crate::crypto::open_fast_path
#![allow(
    unsafe_code,
    reason = "the AES-NI, AVX2 and AVX-512 intrinsics of std::arch run only inside \
              target_feature functions, which are unsafe to call until the CPU features \
              are detected, and their loads and stores take raw pointers"
)]

mod aes;
mod sha512;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use self::aes::{AesPath, CbcLane, cbc_encrypt_lanes_with};
pub(crate) use self::sha512::ROUND_CONSTANTS;
use self::sha512::{MacJob, TAG_BUF_LEN, hmac_burst};
use super::aes_cbc::{BLOCK_LEN, Iv, padded_len};
use super::seal::{OpenError, SEQUENCE_LEN, Sequence, open_trailer};
use super::{CryptoError, Direction, SessionKeys};
use crate::replay::ReplayWindow;

/// Packets sealed or opened together; longer bursts are processed in slices of this size,
/// which bounds the stack the engine uses.
pub const MAX_BURST: usize = 32;

/// How many SHA-512 lanes the HMAC stage runs side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Width {
    /// One lane, with the sha2 crate's compression function; works on every CPU.
    Scalar,
    /// Four lanes in 256-bit AVX2 registers.
    Avx2,
    /// Eight lanes in 512-bit AVX-512 registers (AVX-512F and AVX-512BW).
    Avx512,
}

impl Width {
    /// Every width, narrowest first.
    pub const ALL: [Width; 3] = [Width::Scalar, Width::Avx2, Width::Avx512];

    /// Returns the widest width this CPU runs.
    pub fn detect() -> Width {
        if Width::Avx512.is_available() {
            Width::Avx512
        } else if Width::Avx2.is_available() {
            Width::Avx2
        } else {
            Width::Scalar
        }
    }

    /// Reports whether this CPU has the instructions the width needs.
    pub fn is_available(self) -> bool {
        match self {
            Width::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Width::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Width::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Messages hashed per SHA-512 step.
    pub const fn lanes(self) -> usize {
        match self {
            Width::Scalar => 1,
            Width::Avx2 => 4,
            Width::Avx512 => 8,
        }
    }

    /// Short name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Width::Scalar => "scalar",
            Width::Avx2 => "avx2x4",
            Width::Avx512 => "avx512x8",
        }
    }
}

/// One packet to seal: the arguments of [`seal_fast_path`](crate::crypto::seal_fast_path)
/// and, after [`seal_burst`], its result.
#[derive(Debug)]
pub struct SealJob<'a> {
    keys: &'a SessionKeys,
    direction: Direction,
    number: u64,
    buf: &'a mut [u8],
    len: usize,
    result: Option<Result<usize, CryptoError>>,
}

impl<'a> SealJob<'a> {
    /// Creates a job that seals the payload `buf[..len]` in place as packet `number` of
    /// `direction`.
    pub fn new(
        keys: &'a SessionKeys,
        direction: Direction,
        number: u64,
        buf: &'a mut [u8],
        len: usize,
    ) -> SealJob<'a> {
        SealJob { keys, direction, number, buf, len, result: None }
    }

    /// Returns the sealed length or the error, or `None` before a burst ran.
    pub fn result(&self) -> Option<Result<usize, CryptoError>> {
        self.result
    }

    /// Returns the packet buffer.
    pub fn buf(&self) -> &[u8] {
        self.buf
    }
}

/// One packet to open: the arguments of [`open_fast_path`](crate::crypto::open_fast_path)
/// and, after [`open_burst`], its result.
///
/// Each job borrows its session's replay window mutably, so two packets of one session
/// direction go in different bursts.
#[derive(Debug)]
pub struct OpenJob<'a> {
    keys: &'a SessionKeys,
    direction: Direction,
    window: &'a mut ReplayWindow,
    packet: &'a mut [u8],
    result: Option<Result<usize, OpenError>>,
}

impl<'a> OpenJob<'a> {
    /// Creates a job that opens a sealed packet in place under `keys`, checked against
    /// `window`.
    pub fn new(
        keys: &'a SessionKeys,
        direction: Direction,
        window: &'a mut ReplayWindow,
        packet: &'a mut [u8],
    ) -> OpenJob<'a> {
        OpenJob { keys, direction, window, packet, result: None }
    }

    /// Returns the plaintext length at the start of the packet or the error, or `None`
    /// before a burst ran.
    pub fn result(&self) -> Option<Result<usize, OpenError>> {
        self.result
    }

    /// Returns the packet buffer.
    pub fn packet(&self) -> &[u8] {
        self.packet
    }
}

/// Seals every job as [`seal_fast_path`](crate::crypto::seal_fast_path) would, with the
/// widest [`Width`] this CPU runs.
pub fn seal_burst(jobs: &mut [SealJob<'_>]) {
    seal_burst_with(Width::detect(), jobs);
}

/// Seals every job with the given HMAC width; a width this CPU lacks runs as
/// [`Width::Scalar`]. The output is the same at every width.
pub fn seal_burst_with(width: Width, jobs: &mut [SealJob<'_>]) {
    let width = if width.is_available() { width } else { Width::Scalar };
    for slice in jobs.chunks_mut(MAX_BURST) {
        seal_slice(width, slice);
    }
}

/// Opens every job as [`open_fast_path`](crate::crypto::open_fast_path) would, with the
/// widest [`Width`] this CPU runs.
pub fn open_burst(jobs: &mut [OpenJob<'_>]) {
    open_burst_with(Width::detect(), jobs);
}

/// Opens every job with the given HMAC width; a width this CPU lacks runs as
/// [`Width::Scalar`].
///
/// A packet's tag is checked in constant time before it is decrypted, and its replay
/// window changes only after the tag and the padding are found valid.
pub fn open_burst_with(width: Width, jobs: &mut [OpenJob<'_>]) {
    let width = if width.is_available() { width } else { Width::Scalar };
    for slice in jobs.chunks_mut(MAX_BURST) {
        open_slice(width, slice);
    }
}

/// The state of one job between the stages of a slice.
#[derive(Clone, Copy)]
struct Staged {
    sequence: Sequence,
    /// Payload ciphertext length; the sequence field follows it.
    body_len: usize,
}

fn seal_slice(width: Width, jobs: &mut [SealJob<'_>]) {
    let mut staged: [Option<Staged>; MAX_BURST] = [None; MAX_BURST];

    // Arguments are checked as the one-packet path checks them, and the payload padded.
    for (job, stage) in jobs.iter_mut().zip(staged.iter_mut()) {
        job.result = None;
        match prepare_seal(job) {
            Ok(prepared) => *stage = Some(prepared),
            Err(error) => job.result = Some(Err(error)),
        }
    }

    encrypt_payloads(jobs, &staged);

    // Each tag goes straight into its packet, after the sequence field.
    let mut macs: [MacJob<'_>; MAX_BURST] = core::array::from_fn(|_| MacJob::EMPTY);
    let mut outputs: [&mut [u8]; MAX_BURST] = Default::default();
    let mut count = 0;
    for (job, stage) in jobs.iter_mut().zip(&staged) {
        // A job whose encryption failed already carries its error.
        let (Some(stage), None) = (stage, job.result) else { continue };
        let tag_len = job.keys.suite().tag_len();
        let authenticated = stage.body_len + SEQUENCE_LEN;
        let (message, rest) = job.buf.split_at_mut(authenticated);
        let (inner, outer) = job.keys.mac(job.direction).states();
        macs[count] = MacJob { inner, outer, tag_len, message };
        outputs[count] = &mut rest[..tag_len];
        job.result = Some(Ok(authenticated + tag_len));
        count += 1;
    }
    hmac_burst(width, &macs[..count], &mut outputs[..count]);
}

/// Checks a seal job's arguments, pads its payload (PKCS#7) and writes the sequence field
/// after it, in place.
fn prepare_seal(job: &mut SealJob<'_>) -> Result<Staged, CryptoError> {
    let sequence = Sequence::new(job.keys.key_id(), job.number)?;
    let body_len = padded_len(job.len);
    let needed = body_len + SEQUENCE_LEN + job.keys.suite().tag_len();
    if job.buf.len() < needed {
        return Err(CryptoError::BufferTooSmall { needed, available: job.buf.len() });
    }
    let pad = (body_len - job.len) as u8;
    job.buf[job.len..body_len].fill(pad);
    job.buf[body_len..body_len + SEQUENCE_LEN].copy_from_slice(&sequence.to_bytes());
    Ok(Staged { sequence, body_len })
}

/// Builds the block whose encryption is the payload IV. The layout is drawn at
/// [`payload_iv`](crate::crypto::payload_iv).
fn iv_input(direction: Direction, sequence: Sequence) -> Iv {
    let mut block = [0u8; BLOCK_LEN];
    block[0] = match direction {
        Direction::Forward => 0,
        Direction::Reverse => 1,
    };
    block[1] = b'P';
    block[8..].copy_from_slice(&sequence.to_bytes());
    block
}

/// Derives each staged job's IV and encrypts its padded payload from that IV in CBC mode.
/// With AES-NI both run in one pass of lockstep lanes, the IV input block as each lane's
/// head.
fn encrypt_payloads(jobs: &mut [SealJob<'_>], staged: &[Option<Staged>; MAX_BURST]) {
    let path = AesPath::detect();
    let mut lanes: [CbcLane<'_>; MAX_BURST] = core::array::from_fn(|_| CbcLane::empty());
    let mut count = 0;
    for (job, stage) in jobs.iter_mut().zip(staged) {
        let Some(stage) = stage else { continue };
        let keys = job.keys;
        let head = iv_input(job.direction, stage.sequence);
        if path.is_some() {
            let (blocks, _) = job.buf[..stage.body_len].as_chunks_mut::<BLOCK_LEN>();
            let key = keys.cbc().key_bytes();
            lanes[count] = CbcLane { key, head, blocks, chain: [0; BLOCK_LEN] };
            count += 1;
        } else {
            // Without AES-NI each packet goes through the aes crate; the buffer was checked
            // above, so this repeats the same padding and cannot fail.
            let mut iv = head;
            keys.cbc().encrypt_block(&mut iv);
            if let Err(error) = keys.cbc().encrypt_padded(&iv, job.buf, job.len) {
                job.result = Some(Err(error));
            }
        }
    }
    if let Some(path) = path {
        cbc_encrypt_lanes_with(path, &mut lanes[..count]);
    }
}

/// Derives the IV of each staged job: the encryption of its IV input block under its key.
fn derive_ivs(jobs: &[OpenJob<'_>], staged: &[Option<Staged>; MAX_BURST]) -> [Iv; MAX_BURST] {
    let mut ivs = [[0u8; BLOCK_LEN]; MAX_BURST];
    let path = AesPath::detect();
    let mut lanes: [CbcLane<'_>; MAX_BURST] = core::array::from_fn(|_| CbcLane::empty());
    let mut owners = [0usize; MAX_BURST];
    let mut count = 0;
    for (index, (job, stage)) in jobs.iter().zip(staged).enumerate() {
        let Some(stage) = stage else { continue };
        let head = iv_input(job.direction, stage.sequence);
        if path.is_some() {
            let key = job.keys.cbc().key_bytes();
            lanes[count] = CbcLane { key, head, blocks: &mut [], chain: [0; BLOCK_LEN] };
            owners[count] = index;
            count += 1;
        } else {
            ivs[index] = head;
            job.keys.cbc().encrypt_block(&mut ivs[index]);
        }
    }
    if let Some(path) = path {
        cbc_encrypt_lanes_with(path, &mut lanes[..count]);
        for (lane, &index) in lanes[..count].iter().zip(&owners[..count]) {
            ivs[index] = lane.chain;
        }
    }
    ivs
}

fn open_slice(width: Width, jobs: &mut [OpenJob<'_>]) {
    let mut staged: [Option<Staged>; MAX_BURST] = [None; MAX_BURST];

    // The unauthenticated sequence field picks the replay pre-check, as on the one-packet
    // path; nothing is changed yet.
    for (job, stage) in jobs.iter_mut().zip(staged.iter_mut()) {
        match claim(job) {
            Ok(claimed) => *stage = Some(claimed),
            Err(error) => job.result = Some(Err(error)),
        }
    }

    let mut tags = [[0u8; TAG_BUF_LEN]; MAX_BURST];
    let mut owners = [0usize; MAX_BURST];
    let count = {
        let mut macs: [MacJob<'_>; MAX_BURST] = core::array::from_fn(|_| MacJob::EMPTY);
        let mut count = 0;
        for (index, (job, stage)) in jobs.iter().zip(&staged).enumerate() {
            if let Some(stage) = stage {
                let (inner, outer) = job.keys.mac(job.direction).states();
                macs[count] = MacJob {
                    inner,
                    outer,
                    tag_len: job.keys.suite().tag_len(),
                    message: &job.packet[..stage.body_len + SEQUENCE_LEN],
                };
                owners[count] = index;
                count += 1;
            }
        }
        let mut outputs: [&mut [u8]; MAX_BURST] = Default::default();
        for (output, tag) in outputs.iter_mut().zip(tags.iter_mut()) {
            *output = tag;
        }
        hmac_burst(width, &macs[..count], &mut outputs[..count]);
        count
    };

    // RFC 2104 section 5 and encrypt-then-MAC: the tag is compared in constant time, and
    // a packet that fails goes no further.
    for (tag, &index) in tags[..count].iter().zip(&owners[..count]) {
        let job = &mut jobs[index];
        let Some(stage) = staged[index] else { continue };
        let tag_len = job.keys.suite().tag_len();
        let start = stage.body_len + SEQUENCE_LEN;
        let received = &job.packet[start..start + tag_len];
        let authentic: bool = tag[..tag_len].ct_eq(received).into();
        if !authentic || stage.sequence.key_id() != job.keys.key_id() {
            job.result = Some(Err(OpenError::Crypto(CryptoError::BadTag)));
            staged[index] = None;
        }
    }

    // The tags computed for rejected packets would tell a forger the right tag.
    tags.zeroize();

    let ivs = derive_ivs(jobs, &staged);

    for ((job, stage), iv) in jobs.iter_mut().zip(&staged).zip(&ivs) {
        let Some(stage) = stage else { continue };
        job.result = Some(finish_open(job, stage, iv));
    }
}

/// Reads the claimed sequence field and runs the replay pre-check.
fn claim(job: &OpenJob<'_>) -> Result<Staged, OpenError> {
    let (sequence, body_len) = open_trailer(job.packet, job.keys.suite().tag_len())?;
    job.window.check(sequence.number()).map_err(OpenError::Replay)?;
    Ok(Staged { sequence, body_len })
}

/// Decrypts an authenticated packet and records its number in the replay window.
fn finish_open(job: &mut OpenJob<'_>, stage: &Staged, iv: &Iv) -> Result<usize, OpenError> {
    let len = job.keys.cbc().decrypt_padded(iv, &mut job.packet[..stage.body_len])?;
    job.window.record(stage.sequence.number()).map_err(OpenError::Replay)?;
    Ok(len)
}

#[cfg(test)]
mod tests;
