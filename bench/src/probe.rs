//! The load generator's packets: IPv4/UDP Ethernet frames whose UDP payload starts with a
//! probe (flow, sequence number and transmit time), built from a per-flow template with
//! the UDP checksum updated for each probe.
//!
//! ```text
//!  UDP payload
//!  0       2       4                               12                              20
//!  +-------+-------+-------------------------------+-------------------------------+---
//!  | magic | flow  |  sequence (big endian, u64)   | transmit time ns (big endian) |fill
//!  +-------+-------+-------------------------------+-------------------------------+---
//! ```
//!
//! Frame sizes count the Ethernet header and exclude the frame check sequence, as DPDK's
//! testpmd counts them: a 64-byte frame carries 22 bytes of UDP payload.

use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::time::Instant;

/// First two bytes of every probe.
pub const MAGIC: u16 = 0x5642;
/// Bytes of the probe at the start of the UDP payload.
pub const PROBE_LEN: usize = 20;
/// Ethernet, IPv4 and UDP header bytes in front of the probe.
pub const HEADERS_LEN: usize = 14 + 20 + 8;
/// Smallest frame with room for a probe.
pub const MIN_FRAME: usize = HEADERS_LEN + PROBE_LEN;
/// Largest frame the generator builds; the sealed packet of a larger one would not fit a
/// 1500-byte WAN MTU.
pub const MAX_FRAME: usize = 1400;
/// UDP destination port of generated packets.
pub const DESTINATION_PORT: u16 = 5201;
/// UDP source port of flow 0; flow `n` uses this plus `n`.
pub const FIRST_SOURCE_PORT: u16 = 40000;

/// One probe: which flow, which packet of it, and when it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub flow: u16,
    pub sequence: u64,
    /// Nanoseconds on [`now_ns`]'s clock.
    pub sent_ns: u64,
}

impl Probe {
    /// Writes the probe into the first [`PROBE_LEN`] bytes of `payload`; returns `None`
    /// when `payload` is shorter.
    pub fn emit(&self, payload: &mut [u8]) -> Option<()> {
        let out = payload.get_mut(..PROBE_LEN)?;
        out[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        out[2..4].copy_from_slice(&self.flow.to_be_bytes());
        out[4..12].copy_from_slice(&self.sequence.to_be_bytes());
        out[12..20].copy_from_slice(&self.sent_ns.to_be_bytes());
        Some(())
    }

    /// Reads the probe at the start of a UDP payload; `None` when the payload is too short
    /// or does not start with [`MAGIC`].
    pub fn parse(payload: &[u8]) -> Option<Probe> {
        let bytes = payload.get(..PROBE_LEN)?;
        if u16::from_be_bytes([bytes[0], bytes[1]]) != MAGIC {
            return None;
        }
        let mut sequence = [0u8; 8];
        sequence.copy_from_slice(&bytes[4..12]);
        let mut sent = [0u8; 8];
        sent.copy_from_slice(&bytes[12..20]);
        Some(Probe {
            flow: u16::from_be_bytes([bytes[2], bytes[3]]),
            sequence: u64::from_be_bytes(sequence),
            sent_ns: u64::from_be_bytes(sent),
        })
    }

    /// Reads the probe of an Ethernet frame built by [`FrameTemplate`]: IPv4 without
    /// options, UDP. Returns `None` for any other frame.
    pub fn from_frame(frame: &[u8]) -> Option<Probe> {
        if frame.get(12..14)? != [0x08, 0x00] || *frame.get(14)? != 0x45 || *frame.get(23)? != 17 {
            return None;
        }
        Probe::parse(frame.get(HEADERS_LEN..)?)
    }
}

/// Nanoseconds since the first call in this process, on the monotonic clock. Sender and
/// receiver run in one process, so their readings compare directly.
pub fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    start.elapsed().as_nanos() as u64
}

/// Addresses of the generated frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    pub source_mac: [u8; 6],
    pub destination_mac: [u8; 6],
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
}

/// A frame of one flow and size with the probe zeroed, and the one's-complement sum of
/// everything the UDP checksum covers except the probe.
#[derive(Debug, Clone)]
pub struct FrameTemplate {
    bytes: Vec<u8>,
    flow: u16,
    partial_sum: u32,
}

impl FrameTemplate {
    /// Builds the template of `flow` with `frame_len` bytes, clamped to [`MIN_FRAME`] ..=
    /// [`MAX_FRAME`]. The flow selects the UDP source port.
    pub fn new(addresses: &Addresses, flow: u16, frame_len: usize) -> FrameTemplate {
        let ports = (FIRST_SOURCE_PORT.wrapping_add(flow), DESTINATION_PORT);
        FrameTemplate::with_ports(addresses, flow, frame_len, ports)
    }

    /// Builds the template of a reply in `flow`, with the ports of [`new`](Self::new)
    /// swapped.
    pub fn reply(addresses: &Addresses, flow: u16, frame_len: usize) -> FrameTemplate {
        let ports = (DESTINATION_PORT, FIRST_SOURCE_PORT.wrapping_add(flow));
        FrameTemplate::with_ports(addresses, flow, frame_len, ports)
    }

    fn with_ports(
        addresses: &Addresses,
        flow: u16,
        frame_len: usize,
        (source_port, destination_port): (u16, u16),
    ) -> FrameTemplate {
        let frame_len = frame_len.clamp(MIN_FRAME, MAX_FRAME);
        let udp_len = (frame_len - 14 - 20) as u16;
        let mut bytes = Vec::with_capacity(frame_len);
        bytes.extend_from_slice(&addresses.destination_mac);
        bytes.extend_from_slice(&addresses.source_mac);
        bytes.extend_from_slice(&[0x08, 0x00]);

        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(udp_len + 20).to_be_bytes());
        ip[6] = 0x40; // don't fragment
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&addresses.source.octets());
        ip[16..20].copy_from_slice(&addresses.destination.octets());
        let ip_sum = fold(ones_sum(&ip, 0));
        ip[10..12].copy_from_slice(&(!ip_sum).to_be_bytes());
        bytes.extend_from_slice(&ip);

        bytes.extend_from_slice(&source_port.to_be_bytes());
        bytes.extend_from_slice(&destination_port.to_be_bytes());
        bytes.extend_from_slice(&udp_len.to_be_bytes());
        bytes.extend_from_slice(&[0, 0]);
        // A fill that differs per byte, so that a corrupted copy shows.
        bytes.extend((0..frame_len - HEADERS_LEN).map(|i| (i % 251) as u8));
        bytes[HEADERS_LEN..MIN_FRAME].fill(0);

        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&addresses.source.octets());
        pseudo[4..8].copy_from_slice(&addresses.destination.octets());
        pseudo[9] = 17;
        pseudo[10..12].copy_from_slice(&udp_len.to_be_bytes());
        let partial_sum = ones_sum(&bytes[34..], ones_sum(&pseudo, 0));
        FrameTemplate { bytes, flow, partial_sum }
    }

    /// Frame length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Writes the frame for packet `sequence`, sent at `sent_ns`, into `out` (which must be
    /// [`len`](Self::len) bytes) with its UDP checksum.
    pub fn write(&self, out: &mut [u8], sequence: u64, sent_ns: u64) {
        out.copy_from_slice(&self.bytes);
        let probe = Probe { flow: self.flow, sequence, sent_ns };
        let _ = probe.emit(&mut out[HEADERS_LEN..]);
        let sum = fold(ones_sum(&out[HEADERS_LEN..MIN_FRAME], self.partial_sum));
        // RFC 768: a computed checksum of zero is sent as all ones.
        let checksum = match !sum {
            0 => 0xffff,
            value => value,
        };
        out[40..42].copy_from_slice(&checksum.to_be_bytes());
    }
}

/// Frame sizes of a simple IMIX: seven 64-byte, four 576-byte and one 1400-byte frame in
/// every twelve (the classic 7:4:1 mix, its large size capped at [`MAX_FRAME`]).
pub const IMIX: [usize; 12] = [64, 64, 64, 64, 64, 64, 64, 576, 576, 576, 576, 1400];

fn ones_sum(bytes: &[u8], mut sum: u32) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for pair in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([pair[0], pair[1]])));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRESSES: Addresses = Addresses {
        source_mac: [2, 0, 0, 0, 0, 1],
        destination_mac: [2, 0, 0, 0, 0, 2],
        source: Ipv4Addr::new(10, 230, 1, 10),
        destination: Ipv4Addr::new(10, 230, 5, 10),
    };

    /// RFC 1071 checksum over `parts`, computed apart from the generator's incremental sum.
    fn checksum(parts: &[&[u8]]) -> u16 {
        let bytes = parts.concat();
        let mut sum: u64 = 0;
        for chunk in bytes.chunks(2) {
            let word = if chunk.len() == 2 { [chunk[0], chunk[1]] } else { [chunk[0], 0] };
            sum += u64::from(u16::from_be_bytes(word));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    fn frame(template: &FrameTemplate, sequence: u64, sent_ns: u64) -> Vec<u8> {
        let mut out = vec![0xa5; template.len()];
        template.write(&mut out, sequence, sent_ns);
        out
    }

    #[test]
    fn probe_round_trip() {
        let probe = Probe { flow: 513, sequence: 0x0102_0304_0506_0708, sent_ns: u64::MAX - 7 };
        let mut payload = [0u8; 22];
        probe.emit(&mut payload).unwrap();
        assert_eq!(payload[0..2], MAGIC.to_be_bytes());
        assert_eq!(payload[4..12], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Probe::parse(&payload), Some(probe));
    }

    #[test]
    fn probe_rejects_short_payload() {
        let mut short = [0u8; PROBE_LEN - 1];
        assert!(Probe { flow: 0, sequence: 0, sent_ns: 0 }.emit(&mut short).is_none());
        assert_eq!(Probe::parse(&short), None);
    }

    #[test]
    fn probe_rejects_wrong_magic() {
        let mut payload = [0u8; PROBE_LEN];
        Probe { flow: 1, sequence: 2, sent_ns: 3 }.emit(&mut payload).unwrap();
        payload[0] ^= 0x80;
        assert_eq!(Probe::parse(&payload), None);
    }

    #[test]
    fn template_sizes_clamped() {
        assert_eq!(FrameTemplate::new(&ADDRESSES, 0, 64).len(), 64);
        assert_eq!(FrameTemplate::new(&ADDRESSES, 0, 1400).len(), 1400);
        assert_eq!(FrameTemplate::new(&ADDRESSES, 0, 10).len(), MIN_FRAME);
        assert_eq!(FrameTemplate::new(&ADDRESSES, 0, 9000).len(), MAX_FRAME);
    }

    #[test]
    fn template_frame_checksums_valid() {
        for size in [MIN_FRAME, 63, 64, 577, 1400] {
            let template = FrameTemplate::new(&ADDRESSES, 3, size);
            for (sequence, sent) in [(0, 0), (1, 999), (u64::MAX, u64::MAX), (77, 0x8000_0001)] {
                let bytes = frame(&template, sequence, sent);
                assert_eq!(checksum(&[&bytes[14..34]]), 0, "ipv4 header checksum, {size} B");
                let udp = &bytes[34..];
                let pseudo = [&bytes[26..34], &[0, 17], &(udp.len() as u16).to_be_bytes()[..]];
                let sum = checksum(&[pseudo[0], pseudo[1], pseudo[2], udp]);
                assert!(sum == 0 || sum == 0xffff, "udp checksum {sum:#x}, {size} B");
            }
        }
    }

    #[test]
    fn template_frame_carries_probe() {
        let template = FrameTemplate::new(&ADDRESSES, 9, 64);
        let bytes = frame(&template, 41, 123_456);
        assert_eq!(bytes[0..6], ADDRESSES.destination_mac);
        assert_eq!(bytes[6..12], ADDRESSES.source_mac);
        assert_eq!(u16::from_be_bytes([bytes[34], bytes[35]]), FIRST_SOURCE_PORT + 9);
        assert_eq!(u16::from_be_bytes([bytes[38], bytes[39]]), 22 + 8);
        let probe = Probe::from_frame(&bytes).unwrap();
        assert_eq!(probe, Probe { flow: 9, sequence: 41, sent_ns: 123_456 });
    }

    #[test]
    fn from_frame_rejects_other_traffic() {
        let template = FrameTemplate::new(&ADDRESSES, 0, 64);
        let mut bytes = frame(&template, 1, 1);
        bytes[23] = 6;
        assert_eq!(Probe::from_frame(&bytes), None, "tcp");
        bytes[23] = 17;
        bytes[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(Probe::from_frame(&bytes), None, "ipv6 ethertype");
        assert_eq!(Probe::from_frame(&bytes[..30]), None, "truncated");
    }

    #[test]
    fn imix_mean_size() {
        let mean = IMIX.iter().sum::<usize>() as f64 / IMIX.len() as f64;
        assert!((mean - 346.0).abs() < 1.0, "imix mean {mean}");
    }

    #[test]
    fn now_ns_monotonic() {
        let first = now_ns();
        let second = now_ns();
        assert!(second >= first);
    }
}
