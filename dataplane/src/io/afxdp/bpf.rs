//! The bpf(2) calls the AF_XDP backend makes, without libbpf: creating the XSKMAP,
//! loading the XDP program, attaching it with a BPF link and registering sockets.
//!
//! Each call fills a zeroed `union bpf_attr` of 128 bytes with the fields it uses, at
//! their offsets in linux/bpf.h.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

use super::program::{self, Insn, XdpFilter};
use crate::io::{
    IoError,
    error::{SysOp, SysTarget, from_errno},
};

/// Attachment mode of an XDP program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// Generic XDP, run by the kernel stack after the driver built an skb. Works on every
    /// interface.
    Skb,
    /// Native XDP, run by the driver before an skb exists. veth and most NIC drivers
    /// support it.
    Native,
}

impl XdpMode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            XdpMode::Skb => "skb",
            XdpMode::Native => "native",
        }
    }

    fn link_flags(self) -> u32 {
        match self {
            XdpMode::Skb => XDP_FLAGS_SKB_MODE,
            XdpMode::Native => XDP_FLAGS_DRV_MODE,
        }
    }
}

/// svrd's XDP program attached to one interface, with the XSKMAP its sockets register
/// in. The program detaches when this value is dropped, or when the process exits,
/// because the attachment is a BPF link owned by this process.
#[derive(Debug)]
pub struct XdpAttachment {
    interface: String,
    ifindex: u32,
    mode: XdpMode,
    max_queues: u32,
    // Field order is drop order: closing the link detaches the program first, then the
    // program and map descriptors close.
    _link: OwnedFd,
    _program: OwnedFd,
    map: OwnedFd,
}

impl XdpAttachment {
    /// Loads the program for `filter` and attaches it to `interface` in `mode`.
    ///
    /// `max_queues` sizes the XSKMAP: sockets may be registered for queue ids below it.
    pub fn attach(
        interface: &str,
        mode: XdpMode,
        filter: &XdpFilter,
        max_queues: u32,
    ) -> Result<XdpAttachment, IoError> {
        let target = SysTarget { interface, zero_copy: false, mode: mode.name() };
        let ifindex = super::interface_index(interface)?;

        if max_queues == 0 || max_queues > 1024 {
            return Err(IoError::InvalidConfig {
                field: "XSKMAP queues",
                value: u64::from(max_queues),
                expected: "1 to 1024",
            });
        }
        let map =
            create_xskmap(max_queues).map_err(|e| from_errno(SysOp::MapCreate, e, &target))?;

        let insns = program::assemble(filter, map.as_raw_fd())?;
        let program = load_program(&insns, &target)?;

        let link = create_link(&program, ifindex, mode)
            .map_err(|e| from_errno(SysOp::LinkCreate, e, &target))?;

        tracing::debug!(interface, ifindex, mode = mode.name(), "attached svrd XDP program");
        Ok(XdpAttachment {
            interface: interface.to_owned(),
            ifindex,
            mode,
            max_queues,
            map,
            _link: link,
            _program: program,
        })
    }

    /// Name of the interface the program is attached to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Index of the interface the program is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Mode the program was attached in.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Number of queue ids the XSKMAP has room for.
    pub fn max_queues(&self) -> u32 {
        self.max_queues
    }

    /// Directs packets the filter selects on `queue` to the socket `xsk_fd`.
    pub(crate) fn register(&self, queue: u32, xsk_fd: RawFd) -> Result<(), IoError> {
        let target =
            SysTarget { interface: &self.interface, zero_copy: false, mode: self.mode.name() };
        map_update(&self.map, queue, xsk_fd as u32)
            .map_err(|e| from_errno(SysOp::MapUpdate, e, &target))
    }
}

/// Loads raw instructions as an XDP program, returning the verifier log on rejection.
pub(crate) fn load_program(insns: &[Insn], target: &SysTarget<'_>) -> Result<OwnedFd, IoError> {
    // First without a log: a log buffer that is too small for a successful load's
    // output would itself fail the load with ENOSPC.
    match prog_load(insns, None) {
        Ok(fd) => return Ok(fd),
        Err(err) if matches!(err.raw_os_error(), Some(libc::EPERM)) => {
            return Err(from_errno(SysOp::ProgramLoad, err, target));
        }
        Err(_) => {}
    }

    let mut log = vec![0u8; VERIFIER_LOG_SIZE];
    match prog_load(insns, Some(&mut log)) {
        Ok(fd) => Ok(fd),
        Err(source) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let log = String::from_utf8_lossy(&log[..end]).into_owned();
            if log.is_empty() {
                return Err(from_errno(SysOp::ProgramLoad, source, target));
            }
            Err(IoError::VerifierRejected { log, source })
        }
    }
}

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const VERIFIER_LOG_SIZE: usize = 1 << 20;
/// The program's licence as the kernel reads it; it calls no GPL-only helper.
const LICENSE: &[u8] = b"Apache-2.0\0";
const PROGRAM_NAME: &[u8] = b"svrd_xdp";

/// `union bpf_attr`, as bytes. Each command reads only the fields it defines, and the
/// kernel requires the rest to be zero.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }

    fn u32_at(&mut self, offset: usize, value: u32) -> &mut Attr {
        self.0[offset..offset + 4].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn u64_at(&mut self, offset: usize, value: u64) -> &mut Attr {
        self.0[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn bytes_at(&mut self, offset: usize, value: &[u8]) -> &mut Attr {
        self.0[offset..offset + value.len()].copy_from_slice(value);
        self
    }
}

/// Runs one bpf(2) command and returns its non-negative result.
fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, writable 128-byte buffer for the whole call and its size
    // is passed with it; the kernel reads and writes at most that many bytes. Pointers
    // stored inside it are guaranteed valid by the callers below.
    let ret = unsafe {
        libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), std::mem::size_of::<Attr>())
    };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

fn owned_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = RawFd::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned `fd` as a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn create_xskmap(max_entries: u32) -> io::Result<OwnedFd> {
    // map_type @0, key_size @4, value_size @8, max_entries @12, map_name @28.
    let mut attr = Attr::new();
    attr.u32_at(0, BPF_MAP_TYPE_XSKMAP)
        .u32_at(4, 4)
        .u32_at(8, 4)
        .u32_at(12, max_entries)
        .bytes_at(28, b"svrd_xsks");
    owned_fd(bpf(BPF_MAP_CREATE, &mut attr)?)
}

fn prog_load(insns: &[Insn], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    // prog_type @0, insn_cnt @4, insns @8, license @16, log_level @24, log_size @28,
    // log_buf @32, prog_name @48.
    let mut attr = Attr::new();
    attr.u32_at(0, BPF_PROG_TYPE_XDP)
        .u32_at(4, insns.len() as u32)
        .u64_at(8, insns.as_ptr() as u64)
        .u64_at(16, LICENSE.as_ptr() as u64)
        .bytes_at(48, PROGRAM_NAME);
    if let Some(log) = log {
        attr.u32_at(24, 1).u32_at(28, log.len() as u32).u64_at(32, log.as_mut_ptr() as u64);
        // The log buffer outlives the call because `log` borrows it until return.
        return owned_fd(bpf(BPF_PROG_LOAD, &mut attr)?);
    }
    owned_fd(bpf(BPF_PROG_LOAD, &mut attr)?)
}

fn create_link(program: &OwnedFd, ifindex: u32, mode: XdpMode) -> io::Result<OwnedFd> {
    // prog_fd @0, target_ifindex @4, attach_type @8, flags @12.
    let mut attr = Attr::new();
    attr.u32_at(0, program.as_raw_fd() as u32)
        .u32_at(4, ifindex)
        .u32_at(8, BPF_XDP)
        .u32_at(12, mode.link_flags());
    owned_fd(bpf(BPF_LINK_CREATE, &mut attr)?)
}

fn map_update(map: &OwnedFd, key: u32, value: u32) -> io::Result<()> {
    // map_fd @0, key @8, value @16, flags @24 (BPF_ANY = 0).
    let key = key.to_ne_bytes();
    let value = value.to_ne_bytes();
    let mut attr = Attr::new();
    attr.u32_at(0, map.as_raw_fd() as u32)
        .u64_at(8, key.as_ptr() as u64)
        .u64_at(16, value.as_ptr() as u64);
    bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn require_root() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let root = status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
        assert!(root, "loading a BPF program needs root: run this test as root");
    }

    #[test]
    fn verifier_rejects_unchecked_read() {
        require_root();
        // r2 = ctx->data; r0 = *(u8 *)(r2 + 0) with no check against data_end; exit.
        let insns =
            [Insn::new(0x61, 2, 1, 0, 0), Insn::new(0x71, 0, 2, 0, 0), Insn::new(0x95, 0, 0, 0, 0)];
        let target = SysTarget { interface: "none", zero_copy: false, mode: "skb" };

        let err = load_program(&insns, &target).unwrap_err();
        let IoError::VerifierRejected { log, .. } = &err else { panic!("{err}") };
        assert!(log.contains("invalid access to packet"), "verifier log: {log}");
    }

    #[test]
    fn generated_program_loads() {
        require_root();
        let map = create_xskmap(4).unwrap();
        let target = SysTarget { interface: "none", zero_copy: false, mode: "skb" };
        let lan = XdpFilter::Lan {
            local_addrs: vec!["10.220.1.1".parse().unwrap(), "fd00:220::1".parse().unwrap()],
        };

        for filter in [XdpFilter::wan_default(), lan] {
            let insns = program::assemble(&filter, map.as_raw_fd()).unwrap();
            if let Err(err) = load_program(&insns, &target) {
                panic!("{filter:?}: {err}");
            }
        }
    }
}
