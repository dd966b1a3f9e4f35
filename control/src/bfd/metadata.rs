//! Metadata carried after the BFD control packet on SVR peer paths: the fragment framing,
//! the fragmenter and a reassembler with bounded memory. The bytes carried are opaque
//! here; the key-exchange layer encrypts them before they arrive.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use tracing::warn;

use super::timers::{Instant, LogLimit};

/// First two bytes of every fragment header.
pub const MAGIC: u16 = 0x5356;

/// Version of the framing defined here.
pub const FRAME_VERSION: u8 = 1;

/// Length of the fragment header, in bytes.
pub const HEADER_LEN: usize = 24;

/// Largest fragment count accepted; a message needing more is rejected.
pub const MAX_FRAGMENTS: u16 = 128;

/// Largest message the framing carries by default: well above an ML-KEM-1024 ciphertext
/// (1568 bytes) or a certificate chain of a few certificates, well below the 32-bit field.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 64 * 1024;

/// Bytes of the IPv4 and UDP headers plus the BFD control packet that precede a fragment.
const IPV4_UDP_BFD_OVERHEAD: usize = 20 + 8 + super::packet::CONTROL_LEN;

/// Bytes of the IPv6 and UDP headers plus the BFD control packet that precede a fragment.
const IPV6_UDP_BFD_OVERHEAD: usize = 40 + 8 + super::packet::CONTROL_LEN;

/// Header of one metadata fragment, placed right after the BFD control packet.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-------------------------------+---------------+---------------+
/// |         Magic (0x5356)        |    Version    | Reserved (0)  |
/// +-------------------------------+---------------+---------------+
/// |                          Message Id                           |
/// +-------------------------------+-------------------------------+
/// |        Fragment Index         |        Fragment Count         |
/// +-------------------------------+-------------------------------+
/// |                   Total Length (message bytes)                |
/// +---------------------------------------------------------------+
/// |               Fragment Offset (bytes into message)            |
/// +-------------------------------+-------------------------------+
/// |        Fragment Length        |         Reserved (0)          |
/// +-------------------------------+-------------------------------+
/// |                   Fragment data (Fragment Length bytes) ...   |
/// +---------------------------------------------------------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader {
    pub message_id: u32,
    pub index: u16,
    pub count: u16,
    pub total_len: u32,
    pub offset: u32,
    pub fragment_len: u16,
}

impl FragmentHeader {
    /// Parses the header and checks it against the section length and the framing rules
    /// that need no reassembly state. Returns the header and the fragment data.
    pub fn parse(section: &[u8]) -> Result<(FragmentHeader, &[u8]), MetadataError> {
        if section.len() < HEADER_LEN {
            return Err(MetadataError::Truncated { len: section.len() });
        }
        let u16_at = |i: usize| u16::from_be_bytes([section[i], section[i + 1]]);
        let u32_at = |i: usize| {
            u32::from_be_bytes([section[i], section[i + 1], section[i + 2], section[i + 3]])
        };

        let magic = u16_at(0);
        if magic != MAGIC {
            return Err(MetadataError::BadMagic { magic });
        }
        if section[2] != FRAME_VERSION {
            return Err(MetadataError::UnsupportedVersion { version: section[2] });
        }
        if section[3] != 0 || u16_at(22) != 0 {
            return Err(MetadataError::ReservedNotZero);
        }

        let header = FragmentHeader {
            message_id: u32_at(4),
            index: u16_at(8),
            count: u16_at(10),
            total_len: u32_at(12),
            offset: u32_at(16),
            fragment_len: u16_at(20),
        };
        let data = &section[HEADER_LEN..];
        if usize::from(header.fragment_len) != data.len() {
            return Err(MetadataError::FragmentLengthMismatch {
                declared: header.fragment_len,
                actual: data.len(),
            });
        }
        header.check_bounds()?;
        Ok((header, data))
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `out`.
    pub fn emit(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        out[2] = FRAME_VERSION;
        out[3] = 0;
        out[4..8].copy_from_slice(&self.message_id.to_be_bytes());
        out[8..10].copy_from_slice(&self.index.to_be_bytes());
        out[10..12].copy_from_slice(&self.count.to_be_bytes());
        out[12..16].copy_from_slice(&self.total_len.to_be_bytes());
        out[16..20].copy_from_slice(&self.offset.to_be_bytes());
        out[20..22].copy_from_slice(&self.fragment_len.to_be_bytes());
        out[22..24].copy_from_slice(&0u16.to_be_bytes());
    }

    fn check_bounds(&self) -> Result<(), MetadataError> {
        if self.count == 0 {
            return Err(MetadataError::ZeroFragmentCount);
        }
        if self.count > MAX_FRAGMENTS {
            return Err(MetadataError::TooManyFragments { count: self.count, max: MAX_FRAGMENTS });
        }
        if self.index >= self.count {
            return Err(MetadataError::IndexOutOfRange { index: self.index, count: self.count });
        }
        if self.total_len == 0 {
            return Err(MetadataError::EmptyMessage);
        }
        if self.fragment_len == 0 {
            return Err(MetadataError::EmptyFragment);
        }
        let end = u64::from(self.offset) + u64::from(self.fragment_len);
        if end > u64::from(self.total_len) {
            return Err(MetadataError::FragmentOutOfBounds {
                offset: self.offset,
                len: self.fragment_len,
                total: self.total_len,
            });
        }
        Ok(())
    }
}

/// Returns how many message bytes fit in one fragment on a path of `path_mtu` bytes.
pub fn max_fragment_data(path_mtu: usize, ipv6: bool) -> Result<usize, MetadataError> {
    let overhead = if ipv6 { IPV6_UDP_BFD_OVERHEAD } else { IPV4_UDP_BFD_OVERHEAD };
    let room = path_mtu.saturating_sub(overhead + HEADER_LEN).min(usize::from(u16::MAX));

    // Below this a message of the default maximum size would need too many fragments.
    if room < 64 {
        return Err(MetadataError::PathMtuTooSmall { mtu: path_mtu });
    }
    Ok(room)
}

/// Splits `message` into metadata sections (header plus data) of at most `max_data`
/// message bytes each.
pub fn fragment(
    message_id: u32,
    message: &[u8],
    max_data: usize,
    max_message_len: usize,
) -> Result<Vec<Vec<u8>>, MetadataError> {
    if message.is_empty() {
        return Err(MetadataError::EmptyMessage);
    }
    if message.len() > max_message_len {
        return Err(MetadataError::MessageTooLarge { len: message.len(), max: max_message_len });
    }
    let total_len = u32::try_from(message.len())
        .map_err(|_| MetadataError::MessageTooLarge { len: message.len(), max: max_message_len })?;
    let max_data = max_data.clamp(1, usize::from(u16::MAX));
    let chunks = message.len().div_ceil(max_data);
    let count = u16::try_from(chunks).ok().filter(|count| *count <= MAX_FRAGMENTS).ok_or(
        MetadataError::TooManyFragments {
            count: u16::try_from(chunks).unwrap_or(u16::MAX),
            max: MAX_FRAGMENTS,
        },
    )?;

    let mut sections = Vec::with_capacity(chunks);
    for (index, chunk) in message.chunks(max_data).enumerate() {
        // index < count <= MAX_FRAGMENTS and offset < total_len, so the conversions hold.
        let header = FragmentHeader {
            message_id,
            index: index as u16,
            count,
            total_len,
            offset: (index * max_data) as u32,
            fragment_len: chunk.len() as u16,
        };
        let mut head = [0u8; HEADER_LEN];
        header.emit(&mut head);
        let mut section = Vec::with_capacity(HEADER_LEN + chunk.len());
        section.extend_from_slice(&head);
        section.extend_from_slice(chunk);
        sections.push(section);
    }
    Ok(sections)
}

/// A metadata fragment or message that was rejected, or a local request that cannot be
/// framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetadataError {
    // Malformed fragments.
    Truncated { len: usize },
    BadMagic { magic: u16 },
    UnsupportedVersion { version: u8 },
    ReservedNotZero,
    FragmentLengthMismatch { declared: u16, actual: usize },
    ZeroFragmentCount,
    IndexOutOfRange { index: u16, count: u16 },
    EmptyMessage,
    EmptyFragment,
    FragmentOutOfBounds { offset: u32, len: u16, total: u32 },

    // Resource limits.
    MessageTooLarge { len: usize, max: usize },
    TooManyFragments { count: u16, max: u16 },
    TooManyMessages { max: usize },
    MemoryLimit { needed: usize, limit: usize },

    // Fragments that contradict earlier ones of the same message.
    InconsistentHeader { message_id: u32 },
    Overlap { message_id: u32, index: u16 },
    CoverageMismatch { message_id: u32 },

    // Local misuse.
    PathMtuTooSmall { mtu: usize },
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetadataError::Truncated { len } => {
                write!(
                    f,
                    "metadata section of {len} bytes is shorter than the {HEADER_LEN}-byte header"
                )
            }
            MetadataError::BadMagic { magic } => {
                write!(f, "metadata magic {magic:#06x} is invalid, expected {MAGIC:#06x}")
            }
            MetadataError::UnsupportedVersion { version } => {
                write!(
                    f,
                    "metadata framing version {version} is not supported, expected {FRAME_VERSION}"
                )
            }
            MetadataError::ReservedNotZero => f.write_str("metadata reserved bits are not zero"),
            MetadataError::FragmentLengthMismatch { declared, actual } => write!(
                f,
                "metadata fragment length {declared} does not match the {actual} bytes present"
            ),
            MetadataError::ZeroFragmentCount => f.write_str("metadata fragment count is zero"),
            MetadataError::IndexOutOfRange { index, count } => {
                write!(f, "metadata fragment index {index} is not below the count {count}")
            }
            MetadataError::EmptyMessage => f.write_str("metadata message is empty"),
            MetadataError::EmptyFragment => f.write_str("metadata fragment carries no data"),
            MetadataError::FragmentOutOfBounds { offset, len, total } => write!(
                f,
                "metadata fragment at offset {offset} with {len} bytes exceeds the total length {total}"
            ),
            MetadataError::MessageTooLarge { len, max } => {
                write!(f, "metadata message of {len} bytes exceeds the maximum of {max}")
            }
            MetadataError::TooManyFragments { count, max } => {
                write!(f, "metadata message of {count} fragments exceeds the maximum of {max}")
            }
            MetadataError::TooManyMessages { max } => {
                write!(f, "metadata reassembly already holds the maximum of {max} messages")
            }
            MetadataError::MemoryLimit { needed, limit } => {
                write!(f, "metadata reassembly needs {needed} bytes, above the limit of {limit}")
            }
            MetadataError::InconsistentHeader { message_id } => write!(
                f,
                "metadata message {message_id} fragment disagrees with earlier fragments on count or total length"
            ),
            MetadataError::Overlap { message_id, index } => {
                write!(f, "metadata message {message_id} fragment {index} overlaps received data")
            }
            MetadataError::CoverageMismatch { message_id } => write!(
                f,
                "metadata message {message_id} has all fragments but they do not cover the total length"
            ),
            MetadataError::PathMtuTooSmall { mtu } => {
                write!(f, "path mtu {mtu} leaves no room for metadata fragments")
            }
        }
    }
}

impl std::error::Error for MetadataError {}

/// Bounds on what one reassembler (one peer path) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Largest message accepted, in bytes.
    pub max_message_len: usize,
    /// Messages reassembled at the same time.
    pub max_messages: usize,
    /// Bytes reserved for all messages in reassembly together.
    pub max_total_bytes: usize,
    /// A message not complete this long after its first fragment is discarded.
    pub timeout: Duration,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_messages: 8,
            max_total_bytes: 256 * 1024,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Counts of fragments by outcome, one counter per rejection reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReassemblyCounters {
    pub completed: u64,
    pub duplicates: u64,
    pub timed_out: u64,
    pub truncated: u64,
    pub bad_magic: u64,
    pub unsupported_version: u64,
    pub reserved_not_zero: u64,
    pub fragment_length_mismatch: u64,
    pub zero_fragment_count: u64,
    pub index_out_of_range: u64,
    pub empty_message: u64,
    pub empty_fragment: u64,
    pub fragment_out_of_bounds: u64,
    pub message_too_large: u64,
    pub too_many_fragments: u64,
    pub too_many_messages: u64,
    pub memory_limit: u64,
    pub inconsistent_header: u64,
    pub overlap: u64,
    pub coverage_mismatch: u64,
}

impl ReassemblyCounters {
    fn count(&mut self, error: &MetadataError) {
        let counter = match error {
            MetadataError::Truncated { .. } => &mut self.truncated,
            MetadataError::BadMagic { .. } => &mut self.bad_magic,
            MetadataError::UnsupportedVersion { .. } => &mut self.unsupported_version,
            MetadataError::ReservedNotZero => &mut self.reserved_not_zero,
            MetadataError::FragmentLengthMismatch { .. } => &mut self.fragment_length_mismatch,
            MetadataError::ZeroFragmentCount => &mut self.zero_fragment_count,
            MetadataError::IndexOutOfRange { .. } => &mut self.index_out_of_range,
            MetadataError::EmptyMessage => &mut self.empty_message,
            MetadataError::EmptyFragment => &mut self.empty_fragment,
            MetadataError::FragmentOutOfBounds { .. } => &mut self.fragment_out_of_bounds,
            MetadataError::MessageTooLarge { .. } => &mut self.message_too_large,
            MetadataError::TooManyFragments { .. } => &mut self.too_many_fragments,
            MetadataError::TooManyMessages { .. } => &mut self.too_many_messages,
            MetadataError::MemoryLimit { .. } => &mut self.memory_limit,
            MetadataError::InconsistentHeader { .. } => &mut self.inconsistent_header,
            MetadataError::Overlap { .. } => &mut self.overlap,
            MetadataError::CoverageMismatch { .. } => &mut self.coverage_mismatch,
            // Only the sender produces this one.
            MetadataError::PathMtuTooSmall { .. } => return,
        };
        *counter += 1;
    }

    /// Total fragments rejected for any reason (duplicates and timeouts excluded).
    pub fn rejected(&self) -> u64 {
        self.truncated
            + self.bad_magic
            + self.unsupported_version
            + self.reserved_not_zero
            + self.fragment_length_mismatch
            + self.zero_fragment_count
            + self.index_out_of_range
            + self.empty_message
            + self.empty_fragment
            + self.fragment_out_of_bounds
            + self.message_too_large
            + self.too_many_fragments
            + self.too_many_messages
            + self.memory_limit
            + self.inconsistent_header
            + self.overlap
            + self.coverage_mismatch
    }
}

/// What an accepted fragment led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reassembled {
    /// The message is complete; here are its bytes.
    Complete(Vec<u8>),
    /// More fragments are needed.
    Pending,
    /// The fragment repeats one already received; nothing changed.
    Duplicate,
}

#[derive(Debug)]
struct Partial {
    message_id: u32,
    count: u16,
    total_len: u32,
    first_seen: Instant,
    /// Bit i set when fragment i arrived.
    received: u128,
    /// Byte ranges received, as (offset, end).
    ranges: Vec<(u32, u32)>,
    buffer: Vec<u8>,
}

/// Number of delivered message ids remembered so late duplicates are not delivered twice.
const DELIVERED_MEMORY: usize = 64;

/// Reassembles metadata messages from one peer path.
#[derive(Debug)]
pub struct Reassembler {
    limits: ReassemblyLimits,
    partials: Vec<Partial>,
    reserved_bytes: usize,
    delivered: VecDeque<u32>,
    counters: ReassemblyCounters,
    reject_log: LogLimit,
}

impl Reassembler {
    pub fn new(limits: ReassemblyLimits) -> Reassembler {
        Reassembler {
            limits,
            partials: Vec::new(),
            reserved_bytes: 0,
            delivered: VecDeque::with_capacity(DELIVERED_MEMORY),
            counters: ReassemblyCounters::default(),
            reject_log: LogLimit::new(Duration::from_secs(1)),
        }
    }

    pub fn counters(&self) -> &ReassemblyCounters {
        &self.counters
    }

    /// Messages currently in reassembly.
    pub fn pending_messages(&self) -> usize {
        self.partials.len()
    }

    /// Bytes currently reserved for messages in reassembly.
    pub fn reserved_bytes(&self) -> usize {
        self.reserved_bytes
    }

    /// Accepts one metadata section (header plus data). Every rejection is counted.
    pub fn insert(&mut self, section: &[u8], now: Instant) -> Result<Reassembled, MetadataError> {
        self.expire(now);
        let result = self.insert_checked(section, now);
        match &result {
            Ok(Reassembled::Complete(_)) => self.counters.completed += 1,
            Ok(Reassembled::Duplicate) => self.counters.duplicates += 1,
            Ok(Reassembled::Pending) => {}
            Err(error) => {
                self.counters.count(error);
                if let Some(suppressed) = self.reject_log.allow(now) {
                    warn!(%error, suppressed, "bfd metadata fragment rejected");
                }
            }
        }
        result
    }

    /// Discards messages whose first fragment is older than the timeout; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let timeout = self.limits.timeout;
        let before = self.partials.len();
        let mut freed = 0;
        self.partials.retain(|partial| {
            let keep = now.since(partial.first_seen) < timeout;
            if !keep {
                freed += partial.buffer.len();
            }
            keep
        });
        self.reserved_bytes -= freed;
        let expired = before - self.partials.len();
        self.counters.timed_out += expired as u64;
        expired
    }

    fn insert_checked(
        &mut self,
        section: &[u8],
        now: Instant,
    ) -> Result<Reassembled, MetadataError> {
        let (header, data) = FragmentHeader::parse(section)?;
        let total = header.total_len as usize;
        if total > self.limits.max_message_len {
            return Err(MetadataError::MessageTooLarge {
                len: total,
                max: self.limits.max_message_len,
            });
        }

        // Fragments of a message already delivered are late duplicates.
        if self.delivered.contains(&header.message_id) {
            return Ok(Reassembled::Duplicate);
        }

        let slot = match self.partials.iter().position(|p| p.message_id == header.message_id) {
            Some(slot) => slot,
            None => self.open(&header, now)?,
        };
        let partial = &mut self.partials[slot];

        // Every fragment of a message must agree on its shape.
        if partial.count != header.count || partial.total_len != header.total_len {
            return Err(MetadataError::InconsistentHeader { message_id: header.message_id });
        }

        let start = header.offset;
        let end = header.offset + u32::from(header.fragment_len);
        let bit = 1u128 << header.index;
        if partial.received & bit != 0 {
            // The same fragment again is harmless; different bytes under its index are not.
            let same_range = partial.ranges.contains(&(start, end));
            let same_bytes = same_range && partial.buffer[start as usize..end as usize] == *data;
            if same_bytes {
                return Ok(Reassembled::Duplicate);
            }
            return Err(MetadataError::Overlap {
                message_id: header.message_id,
                index: header.index,
            });
        }
        if partial.ranges.iter().any(|&(s, e)| start < e && s < end) {
            return Err(MetadataError::Overlap {
                message_id: header.message_id,
                index: header.index,
            });
        }

        partial.buffer[start as usize..end as usize].copy_from_slice(data);
        partial.ranges.push((start, end));
        partial.received |= bit;

        let all = if partial.count == 128 { u128::MAX } else { (1u128 << partial.count) - 1 };
        if partial.received != all {
            return Ok(Reassembled::Pending);
        }

        // All fragments are in and none overlap, so they cover the message exactly when
        // their lengths add up to the total.
        let covered: u64 = partial.ranges.iter().map(|&(s, e)| u64::from(e - s)).sum();
        let message_id = partial.message_id;
        let done = self.partials.swap_remove(slot);
        self.reserved_bytes -= done.buffer.len();
        if covered != u64::from(done.total_len) {
            return Err(MetadataError::CoverageMismatch { message_id });
        }
        if self.delivered.len() == DELIVERED_MEMORY {
            self.delivered.pop_front();
        }
        self.delivered.push_back(message_id);
        Ok(Reassembled::Complete(done.buffer))
    }

    /// Reserves space for a new message, within the limits.
    fn open(&mut self, header: &FragmentHeader, now: Instant) -> Result<usize, MetadataError> {
        if self.partials.len() >= self.limits.max_messages {
            return Err(MetadataError::TooManyMessages { max: self.limits.max_messages });
        }
        let total = header.total_len as usize;
        let needed = self.reserved_bytes + total;
        if needed > self.limits.max_total_bytes {
            return Err(MetadataError::MemoryLimit { needed, limit: self.limits.max_total_bytes });
        }
        self.reserved_bytes = needed;
        self.partials.push(Partial {
            message_id: header.message_id,
            count: header.count,
            total_len: header.total_len,
            first_seen: now,
            received: 0,
            ranges: Vec::with_capacity(usize::from(header.count)),
            buffer: vec![0; total],
        });
        Ok(self.partials.len() - 1)
    }
}
