//! ICMP "fragmentation needed" (RFC 792, RFC 1191) and ICMPv6 "packet too big" (RFC 4443
//! section 3.2) errors sent back to a LAN host whose packet is too long for the WAN and
//! may not be fragmented, with their rate limit and counters.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::FiveTuple;
use super::checksum::{self, protocol};
use super::headers::{BuildError, IpHeaderFields, Macs, emit_ip_frame, ip_frame_header_len};
use super::parse::{ETHERNET_LEN, IpFields, ParsedFrame};

/// ICMP type "destination unreachable" (RFC 792).
pub const ICMP_DESTINATION_UNREACHABLE: u8 = 3;
/// ICMP code "fragmentation needed and DF set" (RFC 792, RFC 1191 section 4).
pub const ICMP_FRAGMENTATION_NEEDED: u8 = 4;
/// ICMPv6 type "packet too big" (RFC 4443 section 3.2).
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
/// Length of the ICMP and ICMPv6 header before the quoted packet.
pub const ICMP_HEADER_LEN: usize = 8;
/// Smallest MTU every IPv6 link has (RFC 8200 section 5).
pub const IPV6_MIN_MTU: u16 = 1280;
/// Smallest MTU every IPv4 host accepts (RFC 791).
pub const IPV4_MIN_MTU: u16 = 68;

/// An IPv4 ICMP error quotes at most this much, so that it stays within the 576 bytes
/// every host accepts (RFC 1812 section 4.3.2.3).
const IPV4_ERROR_MAX: usize = 576;
/// TTL or hop limit of the errors sent.
const ERROR_TTL: u8 = 64;
/// Type of service of IPv4 errors: precedence 6, internetwork control (RFC 1812 section
/// 4.3.2.5).
const ERROR_TOS: u8 = 0xc0;

/// Rate limit of the errors one worker sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpConfig {
    /// Errors sent per second over time; 0 sends none.
    pub rate: u32,
    /// Errors that may be sent at once after a quiet time.
    pub burst: u32,
}

impl Default for IcmpConfig {
    fn default() -> IcmpConfig {
        IcmpConfig { rate: 100, burst: 10 }
    }
}

/// Counters of the errors of one worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IcmpCounters {
    /// ICMP "fragmentation needed" errors sent.
    pub fragmentation_needed_sent: u64,
    /// ICMPv6 "packet too big" errors sent.
    pub packet_too_big_sent: u64,
    /// Errors not sent because of the rate limit.
    pub rate_limited: u64,
    /// Errors not sent because the packet may not get one in reply: an ICMP error
    /// itself, or from or to an address that is not unicast.
    pub suppressed: u64,
}

/// A token bucket for ICMP errors, driven by the time passed in.
#[derive(Debug)]
#[cfg_attr(test, derive(Clone))]
pub struct IcmpLimiter {
    config: IcmpConfig,
    tokens: u32,
    refilled: Option<Instant>,
    identification: u16,
    counters: IcmpCounters,
}

impl IcmpLimiter {
    /// Creates a limiter with a full bucket.
    pub fn new(config: IcmpConfig) -> IcmpLimiter {
        IcmpLimiter {
            config,
            tokens: config.burst,
            refilled: None,
            identification: 0,
            counters: IcmpCounters::default(),
        }
    }

    /// Returns the counters.
    pub fn counters(&self) -> &IcmpCounters {
        &self.counters
    }

    /// Returns the counters, writable.
    pub fn counters_mut(&mut self) -> &mut IcmpCounters {
        &mut self.counters
    }

    /// Takes a token for one error at `now`; counts the error as rate limited when none is
    /// left.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens == 0 {
            self.counters.rate_limited += 1;
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// Returns the IPv4 identification of the next error.
    fn next_identification(&mut self) -> u16 {
        self.identification = self.identification.wrapping_add(1);
        self.identification
    }

    fn refill(&mut self, now: Instant) {
        if self.config.rate == 0 {
            self.tokens = 0;
            return;
        }
        let Some(last) = self.refilled else {
            self.refilled = Some(now);
            return;
        };
        let interval = Duration::from_secs(1) / self.config.rate;
        let elapsed = now.saturating_duration_since(last);
        let earned = elapsed.as_nanos() / interval.as_nanos().max(1);
        if earned == 0 {
            return;
        }
        let earned = u32::try_from(earned).unwrap_or(u32::MAX);
        self.tokens = self.tokens.saturating_add(earned).min(self.config.burst);
        // Keep the part of an interval already elapsed unless the bucket is full.
        self.refilled = if self.tokens == self.config.burst {
            Some(now)
        } else {
            Some(last + interval * earned)
        };
    }
}

/// Returns whether the packet in `parsed` may get an ICMP error in reply: RFC 1812 section
/// 4.3.2.7 and RFC 4443 section 2.4 (e) forbid errors about ICMP errors, about packets to
/// multicast or broadcast addresses, and about packets from addresses that do not name one
/// host.
pub fn may_answer(parsed: &ParsedFrame, frame: &[u8]) -> bool {
    if parsed.destination_mac[0] & 1 != 0 {
        return false;
    }
    if !is_unicast(parsed.tuple.source) || !is_unicast(parsed.tuple.destination) {
        return false;
    }
    let message_type = frame.get(parsed.l4_start).copied().unwrap_or(0);
    match parsed.tuple.protocol {
        // Echo request and reply, timestamp, information and address mask messages are
        // queries; every other ICMP type is an error or unknown.
        protocol::ICMP => matches!(message_type, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18),
        // ICMPv6 types below 128 are errors (RFC 4443 section 2.1).
        protocol::ICMPV6 => message_type >= 128,
        _ => true,
    }
}

fn is_unicast(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_loopback() || v4.is_multicast() || v4.is_broadcast())
        }
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_loopback() || v6.is_multicast()),
    }
}

/// Length of the frame [`emit_too_big`] writes for the packet in `parsed`.
pub fn too_big_len(parsed: &ParsedFrame) -> usize {
    let header_len = ip_frame_header_len(parsed.tuple.source) + ICMP_HEADER_LEN;
    let max_quoted = match parsed.ip {
        IpFields::V4 { .. } => IPV4_ERROR_MAX - (header_len - ETHERNET_LEN),
        IpFields::V6 { .. } => usize::from(IPV6_MIN_MTU) - (header_len - ETHERNET_LEN),
    };
    header_len + (parsed.end - ETHERNET_LEN).min(max_quoted)
}

/// Writes into `out`, of [`too_big_len`] bytes, an error for the packet in `frame` that
/// informs its source the largest packet that crosses is `mtu` bytes: ICMP type 3 code 4
/// with the next-hop MTU (RFC 1191 section 4) for IPv4, ICMPv6 type 2 (RFC 4443 section
/// 3.2) for IPv6. The error goes from `source` to the packet's source, and quotes as much
/// of the packet as the minimum MTU allows. Both checksums are computed. `source` must be of
/// the packet's IP family.
///
/// ```text
/// +--------+--------+-----------------+
/// |  type  |  code  |    checksum     |
/// +--------+--------+-----------------+
/// | IPv4: unused (16) | next-hop MTU  |
/// | IPv6: MTU (32)                    |
/// +-----------------------------------+
/// | as much of the packet as fits     |
/// ```
pub fn emit_too_big(
    out: &mut [u8],
    macs: Macs,
    source: IpAddr,
    parsed: &ParsedFrame,
    frame: &[u8],
    mtu: u16,
    limiter: &mut IcmpLimiter,
) -> Result<(), BuildError> {
    let needed = too_big_len(parsed);
    if out.len() != needed {
        return Err(BuildError::ShortBuffer { needed, available: out.len() });
    }
    let v4 = matches!(parsed.ip, IpFields::V4 { .. });
    if source.is_ipv4() != v4 {
        return Err(BuildError::FamilyMismatch);
    }
    let error_protocol = if v4 { protocol::ICMP } else { protocol::ICMPV6 };
    let tuple = FiveTuple {
        source,
        destination: parsed.tuple.source,
        source_port: 0,
        destination_port: 0,
        protocol: error_protocol,
    };
    let fields = IpHeaderFields {
        tos: if v4 { ERROR_TOS } else { 0 },
        ttl: ERROR_TTL,
        identification: if v4 { limiter.next_identification() } else { 0 },
        dont_fragment: false,
        flow_label: 0,
    };
    emit_ip_frame(out, macs, &tuple, &fields)?;

    let header_len = ip_frame_header_len(tuple.source);
    let message = &mut out[header_len..];
    let quoted_len = message.len() - ICMP_HEADER_LEN;
    message[ICMP_HEADER_LEN..].copy_from_slice(&frame[ETHERNET_LEN..ETHERNET_LEN + quoted_len]);
    message[2..4].fill(0);
    if v4 {
        message[0] = ICMP_DESTINATION_UNREACHABLE;
        message[1] = ICMP_FRAGMENTATION_NEEDED;
        message[4..6].fill(0);
        message[6..8].copy_from_slice(&mtu.max(IPV4_MIN_MTU).to_be_bytes());
        limiter.counters.fragmentation_needed_sent += 1;
    } else {
        message[0] = ICMPV6_PACKET_TOO_BIG;
        message[1] = 0;
        message[4..8].copy_from_slice(&u32::from(mtu.max(IPV6_MIN_MTU)).to_be_bytes());
        limiter.counters.packet_too_big_sent += 1;
    }
    checksum::fill_l4(tuple.source, tuple.destination, error_protocol, message);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::forward::parse::parse_frame;

    const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
    const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const HOST: Ipv4Addr = Ipv4Addr::new(10, 201, 1, 10);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 201, 5, 10);

    /// RFC 1071 sum written apart from the crate's; 0 over a message with its checksum.
    fn sum(parts: &[&[u8]]) -> u16 {
        let bytes = parts.concat();
        let mut total: u64 = 0;
        for chunk in bytes.chunks(2) {
            let high = u64::from(chunk[0]) << 8;
            total += high | chunk.get(1).map_or(0, |low| u64::from(*low));
        }
        while total > 0xffff {
            total = (total & 0xffff) + (total >> 16);
        }
        !(total as u16)
    }

    fn ipv4_echo(len: usize, dont_fragment: bool) -> Vec<u8> {
        let mut frame = Vec::new();
        frame.extend_from_slice(&ROUTER_MAC);
        frame.extend_from_slice(&HOST_MAC);
        frame.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, if dont_fragment { 0x40 } else { 0 }, 0];
        ip[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        ip.extend_from_slice(&[64, 1, 0, 0]);
        ip.extend_from_slice(&HOST.octets());
        ip.extend_from_slice(&SERVER.octets());
        let checksum = sum(&[&ip]);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        frame.extend_from_slice(&ip);
        let mut icmp = vec![8, 0, 0, 0, 0, 7, 0, 1];
        icmp.extend((0..len - 28).map(|i| i as u8));
        let checksum = sum(&[&icmp]);
        icmp[2..4].copy_from_slice(&checksum.to_be_bytes());
        frame.extend_from_slice(&icmp);
        frame
    }

    fn ipv6_udp(len: usize) -> Vec<u8> {
        let source = Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, 0x10);
        let destination = Ipv6Addr::new(0xfd05, 0, 0, 0, 0, 0, 0, 0x10);
        let mut frame = Vec::new();
        frame.extend_from_slice(&ROUTER_MAC);
        frame.extend_from_slice(&HOST_MAC);
        frame.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        frame.extend_from_slice(&((len - 40) as u16).to_be_bytes());
        frame.extend_from_slice(&[17, 64]);
        frame.extend_from_slice(&source.octets());
        frame.extend_from_slice(&destination.octets());
        let mut udp = vec![0x9c, 0x40, 0, 53];
        udp.extend_from_slice(&((len - 40) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend((0..len - 48).map(|i| i as u8));
        let checksum =
            sum(&[&source.octets(), &destination.octets(), &[0, 0], &udp[4..6], &[0, 17], &udp]);
        udp[6..8].copy_from_slice(&checksum.to_be_bytes());
        frame.extend_from_slice(&udp);
        frame
    }

    fn answer(frame: &[u8], mtu: u16) -> Vec<u8> {
        let parsed = parse_frame(frame).unwrap();
        let mut limiter = IcmpLimiter::new(IcmpConfig::default());
        // Junk first, so that every byte is shown to be written.
        let mut out = vec![0xa5; too_big_len(&parsed)];
        let macs = Macs { source: ROUTER_MAC, destination: parsed.source_mac };
        let source = parsed.tuple.destination;
        emit_too_big(&mut out, macs, source, &parsed, frame, mtu, &mut limiter).unwrap();
        out
    }

    #[test]
    fn fragmentation_needed_fields() {
        let original = ipv4_echo(1500, true);
        let error = answer(&original, 1427);
        assert_eq!(error.len(), 14 + 576, "quotes up to 576 bytes of ip packet");
        assert_eq!(error[0..6], HOST_MAC);
        assert_eq!(error[6..12], ROUTER_MAC);
        assert_eq!(error[12..14], [0x08, 0x00]);
        let ip = &error[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 576);
        assert_eq!(ip[6] & 0x40, 0, "df clear");
        assert_eq!(ip[9], 1, "protocol icmp");
        assert_eq!(ip[12..16], SERVER.octets(), "from the original destination");
        assert_eq!(ip[16..20], HOST.octets(), "to the original source");
        assert_eq!(sum(&[ip]), 0, "ipv4 header checksum");
        let icmp = &error[34..];
        assert_eq!((icmp[0], icmp[1]), (3, 4));
        assert_eq!(icmp[4..6], [0, 0], "unused field");
        assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1427, "next-hop mtu");
        assert_eq!(sum(&[icmp]), 0, "icmp checksum");
        assert_eq!(icmp[8..], original[14..14 + 548], "quoted packet");
    }

    #[test]
    fn fragmentation_needed_parses() {
        let error = answer(&ipv4_echo(1500, true), 1400);
        let parsed = parse_frame(&error).unwrap();
        assert_eq!(parsed.tuple.protocol, 1);
        assert_eq!(parsed.tuple.source, IpAddr::V4(SERVER));
        assert_eq!(parsed.end, error.len());
        assert!(!may_answer(&parsed, &error), "an error is never answered with an error");
    }

    #[test]
    fn short_packet_quoted_whole() {
        let original = ipv4_echo(100, true);
        let error = answer(&original, 1400);
        assert_eq!(error.len(), 14 + 20 + 8 + 100);
        assert_eq!(error[42..], original[14..]);
        assert_eq!(sum(&[&error[34..]]), 0);
    }

    #[test]
    fn ipv4_mtu_floor() {
        let error = answer(&ipv4_echo(100, true), 40);
        assert_eq!(u16::from_be_bytes([error[40], error[41]]), 68);
    }

    #[test]
    fn packet_too_big_fields() {
        let original = ipv6_udp(1500);
        let error = answer(&original, 1455);
        assert_eq!(error.len(), 14 + 1280, "fills the ipv6 minimum mtu");
        assert_eq!(error[12..14], [0x86, 0xdd]);
        let ip = &error[14..54];
        assert_eq!(ip[0] >> 4, 6);
        assert_eq!(usize::from(u16::from_be_bytes([ip[4], ip[5]])), 1280 - 40);
        assert_eq!(ip[6], 58, "next header icmpv6");
        assert_eq!(ip[8..24], original[38..54], "from the original destination");
        assert_eq!(ip[24..40], original[22..38], "to the original source");
        let icmp = &error[54..];
        assert_eq!((icmp[0], icmp[1]), (2, 0));
        assert_eq!(u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]), 1455);
        let len = (icmp.len() as u32).to_be_bytes();
        assert_eq!(sum(&[&ip[8..24], &ip[24..40], &len, &[0, 0, 0, 58], icmp]), 0, "checksum");
        assert_eq!(icmp[8..], original[14..14 + 1232], "quoted packet");
    }

    #[test]
    fn ipv6_mtu_floor() {
        let error = answer(&ipv6_udp(1500), 1000);
        assert_eq!(u32::from_be_bytes([error[58], error[59], error[60], error[61]]), 1280);
    }

    #[test]
    fn broadcast_not_answered() {
        let mut frame = ipv4_echo(1500, true);
        frame[0] = 0xff;
        assert!(!may_answer(&parse_frame(&frame).unwrap(), &frame));
        let frame = ipv4_echo(1500, true);
        assert!(may_answer(&parse_frame(&frame).unwrap(), &frame));
    }

    #[test]
    fn icmpv6_error_not_answered() {
        let mut frame = ipv6_udp(200);
        frame[20] = 58;
        frame[54] = 1;
        assert!(!may_answer(&parse_frame(&frame).unwrap(), &frame));
    }

    #[test]
    fn limiter_burst_then_rate() {
        let mut limiter = IcmpLimiter::new(IcmpConfig { rate: 10, burst: 3 });
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.allow(start));
        }
        assert!(!limiter.allow(start), "burst used up");
        assert!(!limiter.allow(start + Duration::from_millis(99)));
        assert!(limiter.allow(start + Duration::from_millis(100)), "one token per 100 ms");
        assert!(!limiter.allow(start + Duration::from_millis(150)));
        assert!(limiter.allow(start + Duration::from_millis(200)));
        assert_eq!(limiter.counters().rate_limited, 3);
        // A long quiet time refills to the burst, not beyond.
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.allow(later));
        }
        assert!(!limiter.allow(later));
    }

    #[test]
    fn limiter_rate_zero_sends_none() {
        let mut limiter = IcmpLimiter::new(IcmpConfig { rate: 0, burst: 5 });
        assert!(!limiter.allow(Instant::now()));
    }
}
