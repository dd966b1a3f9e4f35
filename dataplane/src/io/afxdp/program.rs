//! svrd's XDP program: the filter that decides which packets an AF_XDP socket receives,
//! and the BPF instructions generated from it.
//!
//! The program is assembled here from eBPF instructions instead of being compiled from
//! C, so svrd needs no BPF toolchain. Everything the filter does not select returns
//! `XDP_PASS` and goes on through the kernel stack, which keeps ARP, IPv6 neighbour
//! discovery and the host's own traffic working while a socket is bound.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::io::IoError;

/// UDP port of BFD on SVR peer paths.
pub const BFD_PORT: u16 = 1280;

/// The SVR waypoint port range.
pub const WAYPOINT_PORTS: PortRange = PortRange { first: 16384, last: 65535 };

/// Most port ranges or local addresses one filter may list. This keeps the program far
/// below the verifier's limits and every jump offset within 16 bits.
pub const MAX_FILTER_ENTRIES: usize = 64;

/// An inclusive range of UDP destination ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    /// A range of one port.
    pub const fn single(port: u16) -> PortRange {
        PortRange { first: port, last: port }
    }
}

/// Selection of the packets svrd takes from the kernel on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XdpFilter {
    /// A WAN port: IPv4 or IPv6 UDP to one of `udp_ports`, which carries SVR and BFD.
    /// Non-first IPv4 fragments and IPv6 packets with extension headers before UDP go
    /// to the kernel, because their UDP port is not in the packet.
    Wan { udp_ports: Vec<PortRange> },
    /// A LAN port: all IPv4 and IPv6 traffic except packets to `local_addrs`,
    /// multicast and broadcast (destination 224.0.0.0 and up, or ff00::/8), and ICMPv6
    /// neighbour discovery (types 133 to 137).
    Lan { local_addrs: Vec<IpAddr> },
}

impl XdpFilter {
    /// The WAN filter with the standard SVR ports: BFD on 1280 and waypoints 16384-65535.
    pub fn wan_default() -> XdpFilter {
        XdpFilter::Wan { udp_ports: vec![PortRange::single(BFD_PORT), WAYPOINT_PORTS] }
    }

    /// Checks the filter against the limits the program generator accepts.
    pub fn validate(&self) -> Result<(), IoError> {
        let (count, field) = match self {
            XdpFilter::Wan { udp_ports } => {
                if let Some(range) = udp_ports.iter().find(|r| r.first > r.last) {
                    return Err(IoError::InvalidConfig {
                        field: "XDP filter port range start",
                        value: u64::from(range.first),
                        expected: "a first port not above the last port",
                    });
                }
                (udp_ports.len(), "XDP filter port ranges")
            }
            XdpFilter::Lan { local_addrs } => (local_addrs.len(), "XDP filter local addresses"),
        };

        if count > MAX_FILTER_ENTRIES {
            return Err(IoError::InvalidConfig {
                field,
                value: count as u64,
                expected: "at most 64 entries",
            });
        }
        Ok(())
    }
}

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    /// Destination register in the low nibble and source in the high one on a
    /// little-endian host; the other way round on a big-endian one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub(crate) fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        let regs = if cfg!(target_endian = "little") { dst | (src << 4) } else { (dst << 4) | src };
        Insn { code, regs, off, imm }
    }

    /// Destination register number.
    pub fn dst(self) -> u8 {
        if cfg!(target_endian = "little") { self.regs & 0x0f } else { self.regs >> 4 }
    }

    /// Source register number.
    pub fn src(self) -> u8 {
        if cfg!(target_endian = "little") { self.regs >> 4 } else { self.regs & 0x0f }
    }
}

/// Generates the program for `filter`, with `map_fd` the XSKMAP it redirects into.
pub fn assemble(filter: &XdpFilter, map_fd: i32) -> Result<Vec<Insn>, IoError> {
    filter.validate()?;

    let mut asm = Asm::default();
    let ipv4 = asm.label();
    let ipv6 = asm.label();
    let redirect = asm.label();
    let pass = asm.label();

    // Keep the context in r6, which calls preserve, and load the packet bounds:
    // r2 = xdp_md.data, r3 = xdp_md.data_end.
    asm.mov64_reg(R6, R1);
    asm.ldx(W, R2, R6, XDP_MD_DATA);
    asm.ldx(W, R3, R6, XDP_MD_DATA_END);

    // Ethernet: the 14-byte header must be inside the packet before the EtherType at
    // offset 12 may be read. Anything but IPv4 and IPv6 (ARP, VLAN tags, LLDP) passes.
    asm.bounds_check(ETH_HLEN, pass);
    asm.ldx(H, R5, R2, 12);
    asm.jmp_imm(JEQ, R5, i32::from(wire_u16(ETH_P_IP)), ipv4);
    asm.jmp_imm(JEQ, R5, i32::from(wire_u16(ETH_P_IPV6)), ipv6);
    asm.ja(pass);

    asm.bind(ipv4);
    match filter {
        XdpFilter::Wan { udp_ports } => {
            let ports = asm.label();
            emit_wan_ipv4(&mut asm, ports, pass);
            asm.bind(ports);
            emit_port_match(&mut asm, udp_ports, redirect, pass);
        }
        XdpFilter::Lan { local_addrs } => emit_lan_ipv4(&mut asm, local_addrs, redirect, pass),
    }

    asm.bind(ipv6);
    match filter {
        XdpFilter::Wan { udp_ports } => {
            let ports = asm.label();
            emit_wan_ipv6(&mut asm, ports, pass);
            asm.bind(ports);
            emit_port_match(&mut asm, udp_ports, redirect, pass);
        }
        XdpFilter::Lan { local_addrs } => emit_lan_ipv6(&mut asm, local_addrs, redirect, pass),
    }

    // Redirect: bpf_redirect_map(xsks, rx_queue_index, XDP_PASS). The low bits of the
    // flags argument are the action when no socket is bound to that queue, so a packet
    // arriving before the socket is registered still reaches the kernel.
    asm.bind(redirect);
    asm.ldx(W, R2, R6, XDP_MD_RX_QUEUE_INDEX);
    asm.ld_map_fd(R1, map_fd);
    asm.mov64_imm(R3, XDP_PASS);
    asm.call(HELPER_REDIRECT_MAP);
    asm.exit();

    asm.bind(pass);
    asm.mov64_imm(R0, XDP_PASS);
    asm.exit();

    asm.finish()
}

/// IPv4 on a WAN port: UDP, first fragment or unfragmented, then the destination port
/// in r5 (network order) and a jump to `ports`.
fn emit_wan_ipv4(asm: &mut Asm, ports: Label, pass: Label) {
    // The fixed 20-byte header must be present; protocol is at IPv4 offset 9.
    asm.bounds_check(ETH_HLEN + IPV4_HLEN, pass);
    asm.ldx(B, R5, R2, ETH_HLEN + 9);
    asm.jmp_imm(JNE, R5, i32::from(IPPROTO_UDP), pass);

    // A non-zero fragment offset (low 13 bits of IPv4 bytes 6-7) means no UDP header.
    asm.ldx(H, R5, R2, ETH_HLEN + 6);
    asm.be16_to_host(R5);
    asm.alu64_imm(AND, R5, 0x1fff);
    asm.jmp_imm(JNE, R5, 0, pass);

    // Header length: IHL (low nibble of byte 0) times 4, at least 20. The verifier
    // tracks r5 as 20..=60, so the UDP pointer r4 = data + 14 + r5 is a bounded
    // variable offset that one check against data_end makes readable.
    asm.ldx(B, R5, R2, ETH_HLEN);
    asm.alu64_imm(AND, R5, 0x0f);
    asm.alu64_imm(LSH, R5, 2);
    asm.jmp_imm(JLT, R5, i32::from(IPV4_HLEN), pass);
    asm.mov64_reg(R4, R2);
    asm.alu64_reg(ADD, R4, R5);
    asm.alu64_imm(ADD, R4, i32::from(ETH_HLEN));
    asm.mov64_reg(R5, R4);
    asm.alu64_imm(ADD, R5, i32::from(UDP_HLEN));
    asm.jmp_reg(JGT, R5, R3, pass);

    // The destination port is at UDP offset 2.
    asm.ldx(H, R5, R4, 2);
    asm.ja(ports);
}

/// IPv6 on a WAN port: next header UDP directly after the fixed header, then the
/// destination port in r5 and a jump to `ports`.
fn emit_wan_ipv6(asm: &mut Asm, ports: Label, pass: Label) {
    // Fixed 40-byte header plus the 8-byte UDP header; next header is at offset 6.
    asm.bounds_check(ETH_HLEN + IPV6_HLEN + UDP_HLEN, pass);
    asm.ldx(B, R5, R2, ETH_HLEN + 6);
    asm.jmp_imm(JNE, R5, i32::from(IPPROTO_UDP), pass);
    asm.ldx(H, R5, R2, ETH_HLEN + IPV6_HLEN + 2);
    asm.ja(ports);
}

/// Compares the destination port in r5 (network order) against each range.
fn emit_port_match(asm: &mut Asm, ranges: &[PortRange], redirect: Label, pass: Label) {
    // Convert to host order once, so ranges compare as numbers.
    asm.be16_to_host(R5);
    for range in ranges {
        if range.first == range.last {
            asm.jmp_imm(JEQ, R5, i32::from(range.first), redirect);
            continue;
        }
        let next = asm.label();
        asm.jmp_imm(JLT, R5, i32::from(range.first), next);
        asm.jmp_imm(JLE, R5, i32::from(range.last), redirect);
        asm.bind(next);
    }
    asm.ja(pass);
}

/// IPv4 on a LAN port: everything except multicast, broadcast and the host's addresses.
fn emit_lan_ipv4(asm: &mut Asm, local: &[IpAddr], redirect: Label, pass: Label) {
    // The destination address is at IPv4 offset 16.
    asm.bounds_check(ETH_HLEN + IPV4_HLEN, pass);
    let dst = ETH_HLEN + 16;

    // First octet 224 or above: multicast, reserved or limited broadcast.
    asm.ldx(B, R5, R2, dst);
    asm.jmp_imm(JGE, R5, 224, pass);

    // A 32-bit load reads the address in host order, so each local address is compared
    // as the u32 its bytes make in host order (a 32-bit compare, so no sign extension).
    asm.ldx(W, R5, R2, dst);
    for addr in local.iter().filter_map(v4) {
        asm.jmp32_imm(JEQ, R5, wire_u32(addr.octets()), pass);
    }
    asm.ja(redirect);
}

/// IPv6 on a LAN port: everything except multicast, the host's addresses and
/// neighbour discovery.
fn emit_lan_ipv6(asm: &mut Asm, local: &[IpAddr], redirect: Label, pass: Label) {
    // The destination address is at IPv6 offset 24, its first byte 0xff for multicast
    // (all neighbour solicitations to solicited-node groups included).
    asm.bounds_check(ETH_HLEN + IPV6_HLEN, pass);
    let dst = ETH_HLEN + 24;
    asm.ldx(B, R5, R2, dst);
    asm.jmp_imm(JEQ, R5, 0xff, pass);

    // Each local address as four 32-bit words: any mismatch moves on to the next one.
    for addr in local.iter().filter_map(v6) {
        let next = asm.label();
        for (i, word) in addr.octets().chunks_exact(4).enumerate() {
            let bytes = [word[0], word[1], word[2], word[3]];
            asm.ldx(W, R5, R2, dst + 4 * i as i16);
            asm.jmp32_imm(JNE, R5, wire_u32(bytes), next);
        }
        asm.ja(pass);
        asm.bind(next);
    }

    // RFC 4861 messages (router solicitation 133 to redirect 137) are ICMPv6 (next
    // header 58) with the type in the first byte; they go to the kernel, which owns
    // neighbour discovery. Their first byte must be checked in bounds first.
    asm.ldx(B, R5, R2, ETH_HLEN + 6);
    asm.jmp_imm(JNE, R5, i32::from(IPPROTO_ICMPV6), redirect);
    asm.bounds_check(ETH_HLEN + IPV6_HLEN + 1, pass);
    asm.ldx(B, R5, R2, ETH_HLEN + IPV6_HLEN);
    asm.jmp_imm(JLT, R5, 133, redirect);
    asm.jmp_imm(JGT, R5, 137, redirect);
    asm.ja(pass);
}

fn v4(addr: &IpAddr) -> Option<Ipv4Addr> {
    match addr {
        IpAddr::V4(v4) => Some(*v4),
        IpAddr::V6(_) => None,
    }
}

fn v6(addr: &IpAddr) -> Option<Ipv6Addr> {
    match addr {
        IpAddr::V6(v6) => Some(*v6),
        IpAddr::V4(_) => None,
    }
}

/// The value a 16-bit load returns for a big-endian field holding `value`.
fn wire_u16(value: u16) -> u16 {
    u16::from_ne_bytes(value.to_be_bytes())
}

/// The value a 32-bit load returns for these four wire bytes, as a JMP32 immediate.
fn wire_u32(bytes: [u8; 4]) -> i32 {
    i32::from_ne_bytes(bytes)
}

// Registers.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const R6: u8 = 6;

// Instruction classes, sizes, modes and operations (linux/bpf_common.h, linux/bpf.h).
const CLASS_LD: u8 = 0x00;
const CLASS_LDX: u8 = 0x01;
const CLASS_ALU: u8 = 0x04;
const CLASS_JMP: u8 = 0x05;
const CLASS_JMP32: u8 = 0x06;
const CLASS_ALU64: u8 = 0x07;
const W: u8 = 0x00;
const H: u8 = 0x08;
const B: u8 = 0x10;
const DW: u8 = 0x18;
const MODE_IMM: u8 = 0x00;
const MODE_MEM: u8 = 0x60;
const SRC_K: u8 = 0x00;
const SRC_X: u8 = 0x08;
const ADD: u8 = 0x00;
const AND: u8 = 0x50;
const LSH: u8 = 0x60;
const MOV: u8 = 0xb0;
const END: u8 = 0xd0;
const TO_BE: u8 = 0x08;
const JA: u8 = 0x00;
const JEQ: u8 = 0x10;
const JGT: u8 = 0x20;
const JGE: u8 = 0x30;
const JNE: u8 = 0x50;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;
const JLT: u8 = 0xa0;
const JLE: u8 = 0xb0;
const PSEUDO_MAP_FD: u8 = 1;

/// `bpf_redirect_map`, helper number 51.
const HELPER_REDIRECT_MAP: i32 = 51;
/// The XDP action that hands the packet to the kernel stack.
const XDP_PASS: i32 = 2;

// struct xdp_md field offsets.
const XDP_MD_DATA: i16 = 0;
const XDP_MD_DATA_END: i16 = 4;
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

// Header sizes and protocol numbers.
const ETH_HLEN: i16 = 14;
const IPV4_HLEN: i16 = 20;
const IPV6_HLEN: i16 = 40;
const UDP_HLEN: i16 = 8;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;

/// A jump target, bound to an instruction index by [`Asm::bind`].
#[derive(Debug, Clone, Copy)]
struct Label(usize);

/// A small assembler with forward labels, enough for the filter program.
#[derive(Debug, Default)]
struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    /// Jump instructions whose offset waits for a label: (instruction index, label).
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }

    fn mov64_reg(&mut self, dst: u8, src: u8) {
        self.alu64_reg(MOV, dst, src);
    }

    fn mov64_imm(&mut self, dst: u8, imm: i32) {
        self.alu64_imm(MOV, dst, imm);
    }

    fn alu64_reg(&mut self, op: u8, dst: u8, src: u8) {
        self.insns.push(Insn::new(CLASS_ALU64 | op | SRC_X, dst, src, 0, 0));
    }

    fn alu64_imm(&mut self, op: u8, dst: u8, imm: i32) {
        self.insns.push(Insn::new(CLASS_ALU64 | op | SRC_K, dst, 0, 0, imm));
    }

    /// Converts the low 16 bits of `dst` from big-endian to host order.
    fn be16_to_host(&mut self, dst: u8) {
        self.insns.push(Insn::new(CLASS_ALU | END | TO_BE, dst, 0, 0, 16));
    }

    fn ldx(&mut self, size: u8, dst: u8, src: u8, off: i16) {
        self.insns.push(Insn::new(CLASS_LDX | size | MODE_MEM, dst, src, off, 0));
    }

    /// Loads the map with file descriptor `fd` into `dst` (a two-slot instruction).
    fn ld_map_fd(&mut self, dst: u8, fd: i32) {
        self.insns.push(Insn::new(CLASS_LD | DW | MODE_IMM, dst, PSEUDO_MAP_FD, 0, fd));
        self.insns.push(Insn::new(0, 0, 0, 0, 0));
    }

    fn jmp_imm(&mut self, op: u8, dst: u8, imm: i32, target: Label) {
        self.jump(Insn::new(CLASS_JMP | op | SRC_K, dst, 0, 0, imm), target);
    }

    fn jmp32_imm(&mut self, op: u8, dst: u8, imm: i32, target: Label) {
        self.jump(Insn::new(CLASS_JMP32 | op | SRC_K, dst, 0, 0, imm), target);
    }

    fn jmp_reg(&mut self, op: u8, dst: u8, src: u8, target: Label) {
        self.jump(Insn::new(CLASS_JMP | op | SRC_X, dst, src, 0, 0), target);
    }

    fn ja(&mut self, target: Label) {
        self.jump(Insn::new(CLASS_JMP | JA, 0, 0, 0, 0), target);
    }

    /// Jumps to `fail` unless `len` bytes from the start of the packet (r2) lie before
    /// data_end (r3); clobbers r4. The verifier allows reads below `len` afterwards.
    fn bounds_check(&mut self, len: i16, fail: Label) {
        self.mov64_reg(R4, R2);
        self.alu64_imm(ADD, R4, i32::from(len));
        self.jmp_reg(JGT, R4, R3, fail);
    }

    fn call(&mut self, helper: i32) {
        self.insns.push(Insn::new(CLASS_JMP | CALL, 0, 0, 0, helper));
    }

    fn exit(&mut self) {
        self.insns.push(Insn::new(CLASS_JMP | EXIT, 0, 0, 0, 0));
    }

    fn jump(&mut self, insn: Insn, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.insns.push(insn);
    }

    /// Resolves every jump offset: the distance from the instruction after the jump.
    fn finish(mut self) -> Result<Vec<Insn>, IoError> {
        for &(at, label) in &self.fixups {
            let target = self.labels[label.0].ok_or(IoError::InvalidConfig {
                field: "XDP program label",
                value: label.0 as u64,
                expected: "a label bound to an instruction",
            })?;
            let distance = target as i64 - at as i64 - 1;
            self.insns[at].off = i16::try_from(distance).map_err(|_| IoError::InvalidConfig {
                field: "XDP program jump distance",
                value: distance.unsigned_abs(),
                expected: "a jump within 32767 instructions",
            })?;
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    //! The generated program runs here on a small interpreter of the instructions it
    //! uses, so the filter's decisions are checked without loading it into a kernel.
    //! The interpreter rejects any packet read outside the bounds the program checked
    //! against data_end, as the verifier would.

    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Verdict {
        Pass,
        Redirect { queue: u64 },
    }

    const CTX: u64 = 0x1000;
    const DATA: u64 = 0x10_0000;
    const MAP_FD: i32 = 7;
    const QUEUE: u32 = 0;

    fn run(program: &[Insn], packet: &[u8]) -> Verdict {
        let mut reg = [0u64; 11];
        reg[1] = CTX;
        let data_end = DATA + packet.len() as u64;
        let mut pc = 0usize;

        for _ in 0..10_000 {
            let insn = program[pc];
            let (dst, src) = (insn.dst() as usize, insn.src() as usize);
            let class = insn.code & 0x07;
            pc += 1;

            match class {
                CLASS_LDX => {
                    let size = match insn.code & 0x18 {
                        W => 4,
                        H => 2,
                        B => 1,
                        _ => 8,
                    };
                    let addr = reg[src].wrapping_add(insn.off as i64 as u64);
                    reg[dst] = if reg[src] == CTX {
                        match insn.off {
                            XDP_MD_DATA => DATA,
                            XDP_MD_DATA_END => data_end,
                            XDP_MD_RX_QUEUE_INDEX => u64::from(QUEUE),
                            other => panic!("ctx read at {other}"),
                        }
                    } else {
                        assert!(addr >= DATA, "read below the packet start");
                        assert!(addr + size <= data_end, "read past data_end");
                        let at = (addr - DATA) as usize;
                        let mut bytes = [0u8; 8];
                        bytes[..size as usize].copy_from_slice(&packet[at..at + size as usize]);
                        u64::from_le_bytes(bytes)
                    };
                }
                CLASS_LD => {
                    assert_eq!(insn.src(), PSEUDO_MAP_FD);
                    assert_eq!(insn.imm, MAP_FD);
                    reg[dst] = 0xfeed;
                    pc += 1;
                }
                CLASS_ALU64 | CLASS_ALU => {
                    let operand =
                        if insn.code & SRC_X != 0 { reg[src] } else { insn.imm as i64 as u64 };
                    match insn.code & 0xf0 {
                        ADD => reg[dst] = reg[dst].wrapping_add(operand),
                        AND => reg[dst] &= operand,
                        LSH => reg[dst] <<= operand,
                        MOV => reg[dst] = operand,
                        END => reg[dst] = u64::from((reg[dst] as u16).swap_bytes()),
                        op => panic!("alu op {op:#x}"),
                    }
                }
                CLASS_JMP | CLASS_JMP32 => {
                    let op = insn.code & 0xf0;
                    if op == EXIT {
                        assert_eq!(reg[0], XDP_PASS as u64);
                        return Verdict::Pass;
                    }
                    if op == CALL {
                        assert_eq!(insn.imm, HELPER_REDIRECT_MAP);
                        assert_eq!(reg[1], 0xfeed);
                        assert_eq!(reg[3], XDP_PASS as u64);
                        return Verdict::Redirect { queue: reg[2] };
                    }
                    let mut left = reg[dst];
                    let mut right =
                        if insn.code & SRC_X != 0 { reg[src] } else { insn.imm as i64 as u64 };
                    if class == CLASS_JMP32 {
                        left &= 0xffff_ffff;
                        right &= 0xffff_ffff;
                    }
                    let taken = match op {
                        JA => true,
                        JEQ => left == right,
                        JNE => left != right,
                        JGT => left > right,
                        JGE => left >= right,
                        JLT => left < right,
                        JLE => left <= right,
                        other => panic!("jump op {other:#x}"),
                    };
                    if taken {
                        pc = (pc as i64 + i64::from(insn.off)) as usize;
                    }
                }
                other => panic!("class {other:#x}"),
            }
        }
        panic!("program did not exit");
    }

    fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    fn ipv4(protocol: u8, dst: [u8; 4], frag: u16, l4: &[u8]) -> Vec<u8> {
        let total = (20 + l4.len()) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 1]);
        ip.extend_from_slice(&frag.to_be_bytes());
        ip.extend_from_slice(&[64, protocol, 0, 0, 10, 220, 0, 2]);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(l4);
        ethernet(ETH_P_IP, &ip)
    }

    fn ipv6(next_header: u8, dst: Ipv6Addr, l4: &[u8]) -> Vec<u8> {
        let mut ip = vec![0x60, 0, 0, 0];
        ip.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        ip.extend_from_slice(&[next_header, 64]);
        ip.extend_from_slice(&"fd00:220::2".parse::<Ipv6Addr>().unwrap().octets());
        ip.extend_from_slice(&dst.octets());
        ip.extend_from_slice(l4);
        ethernet(ETH_P_IPV6, &ip)
    }

    fn udp(dport: u16) -> Vec<u8> {
        let mut header = vec![0x30, 0x39];
        header.extend_from_slice(&dport.to_be_bytes());
        header.extend_from_slice(&[0, 12, 0, 0, b'd', b'a', b't', b'a']);
        header
    }

    fn wan() -> Vec<Insn> {
        assemble(&XdpFilter::wan_default(), MAP_FD).unwrap()
    }

    fn lan() -> Vec<Insn> {
        let local_addrs = vec!["10.220.1.1".parse().unwrap(), "fd00:220:1::1".parse().unwrap()];
        assemble(&XdpFilter::Lan { local_addrs }, MAP_FD).unwrap()
    }

    const REDIRECT: Verdict = Verdict::Redirect { queue: QUEUE as u64 };
    const HOST: [u8; 4] = [10, 220, 1, 1];
    const OTHER: [u8; 4] = [10, 220, 9, 9];

    #[test]
    fn wan_redirects_waypoint_ports() {
        let program = wan();
        for port in [16384, 30000, 65535] {
            assert_eq!(run(&program, &ipv4(17, HOST, 0, &udp(port))), REDIRECT, "port {port}");
        }
    }

    #[test]
    fn wan_redirects_bfd_port() {
        assert_eq!(run(&wan(), &ipv4(17, HOST, 0, &udp(BFD_PORT))), REDIRECT);
    }

    #[test]
    fn wan_passes_other_ports() {
        let program = wan();
        for port in [53, 1279, 1281, 16383] {
            assert_eq!(run(&program, &ipv4(17, HOST, 0, &udp(port))), Verdict::Pass, "{port}");
        }
    }

    #[test]
    fn wan_passes_tcp_and_icmp() {
        let program = wan();
        assert_eq!(run(&program, &ipv4(6, HOST, 0, &udp(20000))), Verdict::Pass);
        assert_eq!(run(&program, &ipv4(1, HOST, 0, &[8, 0, 0, 0, 0, 1, 0, 1])), Verdict::Pass);
    }

    #[test]
    fn wan_passes_arp() {
        assert_eq!(run(&wan(), &ethernet(0x0806, &[0; 28])), Verdict::Pass);
    }

    #[test]
    fn wan_passes_later_fragment() {
        let packet = ipv4(17, HOST, 185, &udp(20000));
        assert_eq!(run(&wan(), &packet), Verdict::Pass);

        let first_with_more = ipv4(17, HOST, 0x2000, &udp(20000));
        assert_eq!(run(&wan(), &first_with_more), REDIRECT);
    }

    #[test]
    fn wan_honours_ihl_options() {
        let mut packet = ipv4(17, HOST, 0, &[0; 4]);
        packet[14] = 0x46;
        packet.extend_from_slice(&udp(20000));
        assert_eq!(run(&wan(), &packet), REDIRECT);
    }

    #[test]
    fn wan_passes_truncated_udp() {
        let packet = ipv4(17, HOST, 0, &udp(20000)[..6]);
        assert_eq!(run(&wan(), &packet), Verdict::Pass);
        assert_eq!(run(&wan(), &ethernet(ETH_P_IP, &[0x45; 10])), Verdict::Pass);
        assert_eq!(run(&wan(), &[0u8; 10]), Verdict::Pass);
    }

    #[test]
    fn wan_ipv6_udp() {
        let dst: Ipv6Addr = "fd00:220:1::1".parse().unwrap();
        assert_eq!(run(&wan(), &ipv6(17, dst, &udp(40000))), REDIRECT);
        assert_eq!(run(&wan(), &ipv6(17, dst, &udp(4000))), Verdict::Pass);
        assert_eq!(run(&wan(), &ipv6(58, dst, &[135, 0, 0, 0])), Verdict::Pass);
    }

    #[test]
    fn lan_redirects_transit() {
        let program = lan();
        assert_eq!(run(&program, &ipv4(17, OTHER, 0, &udp(53))), REDIRECT);
        assert_eq!(run(&program, &ipv4(1, OTHER, 0, &[8, 0, 0, 0])), REDIRECT);
        assert_eq!(run(&program, &ipv4(6, OTHER, 0, &[0; 20])), REDIRECT);
    }

    #[test]
    fn lan_passes_local_and_broadcast() {
        let program = lan();
        assert_eq!(run(&program, &ipv4(1, HOST, 0, &[8, 0, 0, 0])), Verdict::Pass);
        assert_eq!(run(&program, &ipv4(17, [255; 4], 0, &udp(67))), Verdict::Pass);
        assert_eq!(run(&program, &ipv4(17, [224, 0, 0, 5], 0, &udp(520))), Verdict::Pass);
        assert_eq!(run(&program, &ethernet(0x0806, &[0; 28])), Verdict::Pass);
    }

    #[test]
    fn lan_ipv6_neighbour_discovery() {
        let program = lan();
        let other: Ipv6Addr = "fd00:220:9::9".parse().unwrap();
        for icmp_type in 133..=137 {
            let packet = ipv6(58, other, &[icmp_type, 0, 0, 0]);
            assert_eq!(run(&program, &packet), Verdict::Pass, "type {icmp_type}");
        }
        assert_eq!(run(&program, &ipv6(58, other, &[128, 0, 0, 0])), REDIRECT);
        assert_eq!(run(&program, &ipv6(58, other, &[])), Verdict::Pass);
    }

    #[test]
    fn lan_ipv6_local_and_multicast() {
        let program = lan();
        let local: Ipv6Addr = "fd00:220:1::1".parse().unwrap();
        let near: Ipv6Addr = "fd00:220:1::2".parse().unwrap();
        assert_eq!(run(&program, &ipv6(17, local, &udp(22))), Verdict::Pass);
        assert_eq!(run(&program, &ipv6(17, near, &udp(22))), REDIRECT);
        assert_eq!(run(&program, &ipv6(17, "ff02::1".parse().unwrap(), &udp(22))), Verdict::Pass);
    }

    #[test]
    fn filter_rejects_reversed_range() {
        let filter = XdpFilter::Wan { udp_ports: vec![PortRange { first: 2000, last: 1000 }] };
        let err = assemble(&filter, MAP_FD).unwrap_err();
        assert!(matches!(err, IoError::InvalidConfig { value: 2000, .. }));
    }

    #[test]
    fn filter_rejects_too_many_entries() {
        let udp_ports = (0..65).map(PortRange::single).collect();
        let err = XdpFilter::Wan { udp_ports }.validate().unwrap_err();
        assert!(matches!(err, IoError::InvalidConfig { value: 65, .. }));
    }

    #[test]
    fn program_ends_in_exit() {
        let program = wan();
        let last = program[program.len() - 1];
        assert_eq!(last.code, CLASS_JMP | EXIT);
        assert!(program.len() < 200);
    }
}
