//! Shared by the packet I/O tests: IPv4/UDP frame building and checking, the
//! packet-path checks that run against every backend, and (for AF_XDP) network
//! namespaces that delete themselves.

#![allow(dead_code, reason = "each test binary uses a different part of this module")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failed step fails the test with its message"
)]

pub mod netns;

use std::{
    collections::VecDeque,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use svr_dataplane::io::{Burst, Frame, PacketIo};

/// Datagrams in flight at once in the packet-path checks; small enough that no queue
/// on the way (veth, socket buffers) overflows on a loaded 2-core host.
pub const WINDOW: usize = 64;
/// Time limit for one packet-path check.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// One end of a UDP flow at the Ethernet, IPv4 and UDP layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// A flow between the backend under test (`near`) and the other end of its wire (`far`).
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    pub near: Endpoint,
    pub far: Endpoint,
}

impl Flow {
    pub fn reversed(&self) -> Flow {
        Flow { near: self.far, far: self.near }
    }
}

/// The other end of the backend's wire: a kernel UDP socket, or the peer memory port.
pub trait Far {
    /// Sends one datagram to the near end.
    fn send(&mut self, payload: &[u8]);
    /// Receives one datagram from the near end, or `None` after `timeout`.
    fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>>;
}

/// Payload of datagram `seq`: its number, then a pattern that depends on it, with
/// lengths from 16 to 1000 bytes so short and long frames both pass.
pub fn payload(seq: usize) -> Vec<u8> {
    let len = 16 + (seq * 37) % 985;
    let mut bytes = (seq as u64).to_be_bytes().to_vec();
    bytes.extend((8..len).map(|j| (seq.wrapping_mul(31) + j * 7) as u8));
    bytes
}

fn seq_of(bytes: &[u8]) -> usize {
    assert!(bytes.len() >= 8, "payload of {} bytes has no sequence number", bytes.len());
    u64::from_be_bytes(bytes[..8].try_into().unwrap()) as usize
}

/// The parsed headers and payload of an Ethernet/IPv4/UDP frame.
#[derive(Debug)]
pub struct UdpFrame<'a> {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub payload: &'a [u8],
}

/// Writes an Ethernet/IPv4/UDP frame from `flow.near` to `flow.far` with valid IPv4 and
/// UDP checksums into `frame`.
pub fn build_udp(frame: &mut Frame, flow: &Flow, payload: &[u8]) {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    frame.copy_from(&vec![0u8; 14 + ip_len]).unwrap();
    let bytes = frame.data_mut();

    bytes[0..6].copy_from_slice(&flow.far.mac);
    bytes[6..12].copy_from_slice(&flow.near.mac);
    bytes[12..14].copy_from_slice(&0x0800u16.to_be_bytes());

    let ip = &mut bytes[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&flow.near.ip.octets());
    ip[16..20].copy_from_slice(&flow.far.ip.octets());
    let header_sum = checksum(&[&ip[..20]]);
    ip[10..12].copy_from_slice(&header_sum.to_be_bytes());

    let udp = &mut ip[20..];
    udp[0..2].copy_from_slice(&flow.near.port.to_be_bytes());
    udp[2..4].copy_from_slice(&flow.far.port.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp[8..].copy_from_slice(payload);
    let sum = udp_checksum(flow.near.ip, flow.far.ip, udp);
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
}

/// Parses an Ethernet/IPv4/UDP frame, checking lengths and both checksums.
pub fn parse_udp(bytes: &[u8]) -> Result<UdpFrame<'_>, String> {
    if bytes.len() < 42 {
        return Err(format!("frame of {} bytes is too short for IPv4/UDP", bytes.len()));
    }
    let ethertype = u16::from_be_bytes([bytes[12], bytes[13]]);
    if ethertype != 0x0800 {
        return Err(format!("ethertype {ethertype:#06x}, expected IPv4"));
    }

    let ip = &bytes[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 {
        return Err(format!("IPv4 version/IHL byte {:#04x} is invalid", ip[0]));
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total > ip.len() || total < ihl + 8 {
        return Err(format!("IPv4 total length {total} does not fit the {}-byte frame", ip.len()));
    }
    if checksum(&[&ip[..ihl]]) != 0 {
        return Err("IPv4 header checksum is wrong".into());
    }
    if ip[9] != 17 {
        return Err(format!("IP protocol {}, expected UDP", ip[9]));
    }

    let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let udp = &ip[ihl..total];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len != udp.len() {
        return Err(format!("UDP length {udp_len}, expected {}", udp.len()));
    }
    let stored = u16::from_be_bytes([udp[6], udp[7]]);
    if stored != 0 && udp_checksum_verify(src_ip, dst_ip, udp) != 0 {
        return Err(format!("UDP checksum {stored:#06x} is wrong"));
    }

    let mac = |at: usize| -> [u8; 6] { bytes[at..at + 6].try_into().unwrap() };
    Ok(UdpFrame {
        src: Endpoint { mac: mac(6), ip: src_ip, port: u16::from_be_bytes([udp[0], udp[1]]) },
        dst: Endpoint { mac: mac(0), ip: dst_ip, port: u16::from_be_bytes([udp[2], udp[3]]) },
        payload: &udp[8..],
    })
}

/// The Internet checksum (RFC 1071) over the concatenation of `parts`.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &byte in *part {
            match odd.take() {
                Some(high) => sum += u32::from(u16::from_be_bytes([high, byte])),
                None => odd = Some(byte),
            }
        }
    }
    if let Some(high) = odd {
        sum += u32::from(u16::from_be_bytes([high, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, udp_len: usize) -> [u8; 12] {
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = 17;
    pseudo[10..12].copy_from_slice(&(udp_len as u16).to_be_bytes());
    pseudo
}

/// The UDP checksum (RFC 768) of `udp` with its checksum field zero.
fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let pseudo = pseudo_header(src, dst, udp.len());
    let sum = checksum(&[&pseudo, &udp[..6], &[0, 0], &udp[8..]]);
    if sum == 0 { 0xffff } else { sum }
}

/// Zero when the stored checksum of `udp` is correct.
fn udp_checksum_verify(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let pseudo = pseudo_header(src, dst, udp.len());
    checksum(&[&pseudo, udp])
}

/// Swaps source and destination at every layer, turning a received frame into its
/// reply; the checksums stay valid because each sum covers both addresses.
pub fn swap_in_place(frame: &mut Frame) {
    let bytes = frame.data_mut();
    for i in 0..6 {
        bytes.swap(i, 6 + i);
    }
    for i in 0..4 {
        bytes.swap(26 + i, 30 + i);
    }
    let ihl = usize::from(bytes[14] & 0x0f) * 4;
    let udp = 14 + ihl;
    bytes.swap(udp, udp + 2);
    bytes.swap(udp + 1, udp + 3);
}

fn assert_addressing(got: &UdpFrame<'_>, from: &Endpoint, to: &Endpoint) {
    assert_eq!(got.src.ip, from.ip, "source address");
    assert_eq!(got.dst.ip, to.ip, "destination address");
    assert_eq!(got.src.port, from.port, "source port");
    assert_eq!(got.dst.port, to.port, "destination port");
    assert_eq!(got.dst.mac, to.mac, "destination MAC");
}

/// Outcome of one packet-path check, for the rate it reports.
#[derive(Debug)]
pub struct Transfer {
    pub count: usize,
    pub elapsed: Duration,
}

impl Transfer {
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }
}

/// `far` sends `count` datagrams; the backend must receive every one, addressed per
/// `flow`, with the exact payload bytes.
pub fn check_receive(
    io: &mut dyn PacketIo,
    far: &mut dyn Far,
    flow: &Flow,
    count: usize,
) -> Transfer {
    let start = Instant::now();
    let mut seen = vec![false; count];
    let (mut sent, mut received) = (0, 0);
    let mut burst = Burst::new();

    while received < count {
        assert!(
            start.elapsed() < CHECK_TIMEOUT,
            "received {received} of {count} datagrams ({sent} sent) before the time limit"
        );
        while sent < count && sent - received < WINDOW {
            far.send(&payload(sent));
            sent += 1;
        }

        if io.rx_burst(&mut burst).unwrap() == 0 {
            io.wait_readable(Duration::from_millis(5)).unwrap();
            continue;
        }
        for frame in burst.drain() {
            let got = parse_udp(frame.data()).unwrap_or_else(|e| panic!("received frame: {e}"));
            assert_addressing(&got, &flow.far, &flow.near);
            let seq = seq_of(got.payload);
            assert!(seq < count, "sequence number {seq} out of range");
            assert_eq!(got.payload, payload(seq), "payload of datagram {seq}");
            assert!(!seen[seq], "datagram {seq} received twice");
            seen[seq] = true;
            received += 1;
            io.free(frame);
        }
    }
    Transfer { count, elapsed: start.elapsed() }
}

/// The backend builds and sends `count` datagrams; `far` must receive every one with
/// the exact payload bytes.
pub fn check_transmit(
    io: &mut dyn PacketIo,
    far: &mut dyn Far,
    flow: &Flow,
    count: usize,
) -> Transfer {
    let start = Instant::now();
    let mut seen = vec![false; count];
    let (mut sent, mut received) = (0, 0);
    let mut burst = Burst::new();

    while received < count {
        assert!(
            start.elapsed() < CHECK_TIMEOUT,
            "far end received {received} of {count} datagrams ({sent} sent) before the time limit"
        );
        while sent < count && sent - received < WINDOW && !burst.is_full() {
            let mut frame = io.alloc().expect("pool has a free frame");
            build_udp(&mut frame, flow, &payload(sent));
            burst.push(frame).unwrap();
            sent += 1;
        }
        if !burst.is_empty() {
            let frames = burst.len();
            assert_eq!(io.tx_burst(&mut burst).unwrap(), frames, "frames queued");
        }

        let mut next = far.recv(far_wait(sent, received, count));
        while let Some(bytes) = next {
            let seq = seq_of(&bytes);
            assert!(seq < count, "sequence number {seq} out of range");
            assert_eq!(bytes, payload(seq), "payload of datagram {seq}");
            assert!(!seen[seq], "datagram {seq} received twice");
            seen[seq] = true;
            received += 1;
            next = far.recv(Duration::ZERO);
        }
    }
    Transfer { count, elapsed: start.elapsed() }
}

/// `far` sends `count` datagrams and the backend echoes each one back with addresses
/// swapped; `far` must get every payload back.
pub fn check_echo(io: &mut dyn PacketIo, far: &mut dyn Far, count: usize) -> Transfer {
    let start = Instant::now();
    let mut seen = vec![false; count];
    let (mut sent, mut echoed) = (0, 0);
    let mut burst = Burst::new();

    while echoed < count {
        assert!(
            start.elapsed() < CHECK_TIMEOUT,
            "{echoed} of {count} datagrams echoed ({sent} sent) before the time limit"
        );
        while sent < count && sent - echoed < WINDOW {
            far.send(&payload(sent));
            sent += 1;
        }

        if io.rx_burst(&mut burst).unwrap() > 0 {
            for frame in burst.iter_mut() {
                parse_udp(frame.data()).unwrap_or_else(|e| panic!("received frame: {e}"));
                swap_in_place(frame);
            }
            let frames = burst.len();
            assert_eq!(io.tx_burst(&mut burst).unwrap(), frames, "echoes queued");
        }

        let mut next = far.recv(far_wait(sent, echoed, count));
        while let Some(bytes) = next {
            let seq = seq_of(&bytes);
            assert!(seq < count, "sequence number {seq} out of range");
            assert_eq!(bytes, payload(seq), "echo of datagram {seq}");
            assert!(!seen[seq], "echo {seq} received twice");
            seen[seq] = true;
            echoed += 1;
            next = far.recv(Duration::ZERO);
        }
    }
    Transfer { count, elapsed: start.elapsed() }
}

/// How long the far end waits for a datagram: not at all while more may be sent, a
/// little when the window is full or everything is sent.
fn far_wait(sent: usize, done: usize, count: usize) -> Duration {
    if sent == count || sent - done >= WINDOW { Duration::from_millis(2) } else { Duration::ZERO }
}

/// The far end as a memory port: builds and parses whole frames for the flow.
pub struct FarPort<P: PacketIo> {
    pub port: P,
    /// The flow as seen from this end (near = this port).
    pub flow: Flow,
    pending: VecDeque<Vec<u8>>,
}

impl<P: PacketIo> FarPort<P> {
    pub fn new(port: P, flow_from_backend: &Flow) -> FarPort<P> {
        FarPort { port, flow: flow_from_backend.reversed(), pending: VecDeque::new() }
    }
}

impl<P: PacketIo> Far for FarPort<P> {
    fn send(&mut self, payload: &[u8]) {
        let mut frame = self.port.alloc().expect("far pool has a free frame");
        build_udp(&mut frame, &self.flow, payload);
        let mut burst = Burst::new();
        burst.push(frame).unwrap();
        assert_eq!(self.port.tx_burst(&mut burst).unwrap(), 1, "far end queued the frame");
    }

    fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        if let Some(bytes) = self.pending.pop_front() {
            return Some(bytes);
        }
        let mut burst = Burst::new();
        if self.port.rx_burst(&mut burst).unwrap() == 0 {
            self.port.wait_readable(timeout).unwrap();
            self.port.rx_burst(&mut burst).unwrap();
        }
        for frame in burst.drain() {
            let got = parse_udp(frame.data()).unwrap_or_else(|e| panic!("far end frame: {e}"));
            assert_addressing(&got, &self.flow.far, &self.flow.near);
            self.pending.push_back(got.payload.to_vec());
            self.port.free(frame);
        }
        self.pending.pop_front()
    }
}
