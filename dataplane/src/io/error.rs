//! Errors of the packet I/O layer, and the one place where an errno from a socket, mmap
//! or bpf(2) call becomes a typed [`IoError`].

use std::{error::Error, fmt, io};

/// Failure to set up or drive a packet I/O backend.
#[derive(Debug)]
#[non_exhaustive]
pub enum IoError {
    // Local misuse: configuration values the backend cannot work with.
    /// A configuration value is out of range.
    InvalidConfig { field: &'static str, value: u64, expected: &'static str },

    // The host: interfaces, queues and privileges.
    /// No interface of that name exists in the current network namespace.
    InterfaceNotFound { interface: String },
    /// The interface has no receive queue with that index.
    QueueNotFound { interface: String, queue: u32, queues: u32 },
    /// The process lacks a privilege the operation needs (CAP_NET_RAW, CAP_BPF,
    /// CAP_NET_ADMIN, or root).
    PermissionDenied { operation: &'static str, source: io::Error },
    /// Another AF_XDP socket still held the queue after every bind attempt.
    BindBusy { interface: String, queue: u32, attempts: u32 },
    /// The driver of the interface cannot run AF_XDP in zero-copy mode.
    ZeroCopyUnsupported { interface: String },
    /// The driver of the interface cannot attach an XDP program in the requested mode.
    XdpModeUnsupported { interface: String, mode: &'static str },
    /// Another XDP program is already attached to the interface.
    XdpProgramAttached { interface: String },

    // svrd's XDP program.
    /// The kernel verifier rejected the XDP program; `log` is its output.
    VerifierRejected { log: String, source: io::Error },

    // Anything else the kernel returned.
    /// A system call failed with an errno that has no variant of its own.
    Syscall { operation: &'static str, source: io::Error },

    // DPDK.
    /// An EAL argument cannot be passed to DPDK as it is.
    EalArgument { argument: String, expected: &'static str },
    /// `rte_eal_init` failed; `message` is DPDK's text for `errno`.
    EalInit { errno: i32, message: String },
    /// EAL is already running in this process with other arguments, and it can only be
    /// initialised once per process.
    EalConflict { running: String, requested: String },
    /// No DPDK port (ethdev) has that name.
    PortNotFound { port: String },
    /// A DPDK call failed with an error code that has no variant of its own.
    Dpdk { operation: &'static str, port: String, errno: i32, message: String },
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoError::InvalidConfig { field, value, expected } => {
                write!(f, "invalid {field} {value}: expected {expected}")
            }
            IoError::InterfaceNotFound { interface } => {
                write!(f, "interface {interface:?} not found in this network namespace")
            }
            IoError::QueueNotFound { interface, queue, queues } => write!(
                f,
                "queue {queue} not found on interface {interface:?}: it has {queues} receive \
                 queues"
            ),
            IoError::PermissionDenied { operation, .. } => write!(
                f,
                "permission denied for {operation}: run as root or grant CAP_NET_ADMIN, \
                 CAP_NET_RAW and CAP_BPF"
            ),
            IoError::BindBusy { interface, queue, attempts } => write!(
                f,
                "queue {queue} of interface {interface:?} still busy after {attempts} bind \
                 attempts: another AF_XDP socket is bound to it"
            ),
            IoError::ZeroCopyUnsupported { interface } => write!(
                f,
                "driver of interface {interface:?} does not support AF_XDP zero-copy: use copy \
                 mode"
            ),
            IoError::XdpModeUnsupported { interface, mode } => {
                write!(f, "driver of interface {interface:?} cannot attach XDP in {mode} mode")
            }
            IoError::XdpProgramAttached { interface } => {
                write!(f, "another XDP program is already attached to interface {interface:?}")
            }
            IoError::VerifierRejected { log, .. } => {
                write!(f, "kernel verifier rejected the XDP program: {}", log.trim_end())
            }
            IoError::Syscall { operation, source } => write!(f, "{operation} failed: {source}"),
            IoError::EalArgument { argument, expected } => {
                write!(f, "invalid EAL argument {argument:?}: expected {expected}")
            }
            IoError::EalInit { errno, message } => write!(
                f,
                "DPDK EAL initialisation failed: {message} (rte_errno {errno}); check the EAL \
                 arguments and that the drivers of the --vdev devices are installed"
            ),
            IoError::EalConflict { running, requested } => write!(
                f,
                "DPDK EAL already initialised with {running:?}, cannot initialise again with \
                 {requested:?}: EAL runs once per process"
            ),
            IoError::PortNotFound { port } => write!(
                f,
                "DPDK port {port:?} not found: expected the name of a probed device, such as \
                 a --vdev name or a PCI address"
            ),
            IoError::Dpdk { operation, port, errno, message } => {
                write!(f, "{operation} failed on DPDK port {port:?}: {message} (error {errno})")
            }
        }
    }
}

impl Error for IoError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            IoError::PermissionDenied { source, .. }
            | IoError::VerifierRejected { source, .. }
            | IoError::Syscall { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A system call the AF_XDP backend makes, for mapping its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(target_os = "linux"), expect(dead_code, reason = "only AF_XDP makes syscalls"))]
pub(crate) enum SysOp {
    Socket,
    InterfaceIndex,
    UmemMmap,
    UmemRegister,
    RingSetup,
    RingMmap,
    Bind,
    MapCreate,
    ProgramLoad,
    LinkCreate,
    MapUpdate,
    Poll,
    Statistics,
}

impl SysOp {
    fn name(self) -> &'static str {
        match self {
            SysOp::Socket => "socket(AF_XDP)",
            SysOp::InterfaceIndex => "interface index lookup",
            SysOp::UmemMmap => "UMEM mmap",
            SysOp::UmemRegister => "setsockopt(XDP_UMEM_REG)",
            SysOp::RingSetup => "setsockopt of an AF_XDP ring size",
            SysOp::RingMmap => "AF_XDP ring mmap",
            SysOp::Bind => "bind(AF_XDP)",
            SysOp::MapCreate => "bpf(BPF_MAP_CREATE)",
            SysOp::ProgramLoad => "bpf(BPF_PROG_LOAD)",
            SysOp::LinkCreate => "bpf(BPF_LINK_CREATE)",
            SysOp::MapUpdate => "bpf(BPF_MAP_UPDATE_ELEM)",
            SysOp::Poll => "poll",
            SysOp::Statistics => "getsockopt(XDP_STATISTICS)",
        }
    }
}

/// Interface and options of a failed call, for building its error.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(target_os = "linux"), expect(dead_code, reason = "only AF_XDP makes syscalls"))]
pub(crate) struct SysTarget<'a> {
    pub interface: &'a str,
    pub zero_copy: bool,
    pub mode: &'static str,
}

/// Maps the errno of a failed call to its [`IoError`].
///
/// `BindBusy` is not produced here because only the bind retry loop has the attempt
/// count. That loop calls this for the other bind errors.
#[cfg_attr(not(target_os = "linux"), expect(dead_code, reason = "only AF_XDP makes syscalls"))]
pub(crate) fn from_errno(op: SysOp, source: io::Error, target: &SysTarget<'_>) -> IoError {
    let interface = || target.interface.to_owned();
    let errno = source.raw_os_error().unwrap_or(0);

    match (op, errno) {
        (_, libc::EPERM | libc::EACCES) => {
            IoError::PermissionDenied { operation: op.name(), source }
        }
        (SysOp::InterfaceIndex | SysOp::Bind | SysOp::LinkCreate, libc::ENODEV) => {
            IoError::InterfaceNotFound { interface: interface() }
        }
        (SysOp::Bind, libc::EOPNOTSUPP) if target.zero_copy => {
            IoError::ZeroCopyUnsupported { interface: interface() }
        }
        (SysOp::LinkCreate, libc::EOPNOTSUPP) => {
            IoError::XdpModeUnsupported { interface: interface(), mode: target.mode }
        }
        (SysOp::LinkCreate, libc::EBUSY | libc::EEXIST) => {
            IoError::XdpProgramAttached { interface: interface() }
        }
        _ => IoError::Syscall { operation: op.name(), source },
    }
}

/// A frame operation that does not fit the frame's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// Growing at the front needs more headroom than the frame has.
    NoHeadroom { requested: usize, available: usize },
    /// Growing at the end needs more tailroom than the frame has.
    NoTailroom { requested: usize, available: usize },
    /// Stripping more bytes than the packet has.
    TooShort { requested: usize, len: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::NoHeadroom { requested, available } => {
                write!(f, "frame headroom too small: {requested} bytes requested, {available} free")
            }
            FrameError::NoTailroom { requested, available } => {
                write!(f, "frame tailroom too small: {requested} bytes requested, {available} free")
            }
            FrameError::TooShort { requested, len } => {
                write!(f, "frame too short: {requested} bytes to strip from a {len}-byte packet")
            }
        }
    }
}

impl Error for FrameError {}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: SysTarget<'static> =
        SysTarget { interface: "veth0", zero_copy: false, mode: "native" };

    fn errno(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn errno_eperm_is_permission_denied() {
        let err = from_errno(SysOp::Socket, errno(libc::EPERM), &TARGET);
        assert!(matches!(err, IoError::PermissionDenied { operation: "socket(AF_XDP)", .. }));
        assert!(err.source().is_some());
    }

    #[test]
    fn errno_enodev_is_interface_not_found() {
        let err = from_errno(SysOp::InterfaceIndex, errno(libc::ENODEV), &TARGET);
        assert!(
            matches!(err, IoError::InterfaceNotFound { ref interface } if interface == "veth0")
        );
    }

    #[test]
    fn errno_eopnotsupp_bind_zero_copy() {
        let target = SysTarget { zero_copy: true, ..TARGET };
        let err = from_errno(SysOp::Bind, errno(libc::EOPNOTSUPP), &target);
        assert!(matches!(err, IoError::ZeroCopyUnsupported { .. }));

        let copy = from_errno(SysOp::Bind, errno(libc::EOPNOTSUPP), &TARGET);
        assert!(matches!(copy, IoError::Syscall { operation: "bind(AF_XDP)", .. }));
    }

    #[test]
    fn errno_link_create_mode_and_busy() {
        let mode = from_errno(SysOp::LinkCreate, errno(libc::EOPNOTSUPP), &TARGET);
        assert!(matches!(mode, IoError::XdpModeUnsupported { mode: "native", .. }));

        let busy = from_errno(SysOp::LinkCreate, errno(libc::EBUSY), &TARGET);
        assert!(matches!(busy, IoError::XdpProgramAttached { .. }));
    }

    #[test]
    fn errno_other_is_syscall() {
        let err = from_errno(SysOp::Poll, errno(libc::EINTR), &TARGET);
        assert!(matches!(err, IoError::Syscall { operation: "poll", .. }));
        assert!(err.to_string().starts_with("poll failed: "));
    }

    #[test]
    fn display_names_values() {
        let err = IoError::QueueNotFound { interface: "wan0".into(), queue: 3, queues: 1 };
        assert_eq!(
            err.to_string(),
            "queue 3 not found on interface \"wan0\": it has 1 receive queues"
        );

        let err = IoError::InvalidConfig {
            field: "ring size",
            value: 1000,
            expected: "a power of two from 64 to 16384",
        };
        assert_eq!(
            err.to_string(),
            "invalid ring size 1000: expected a power of two from 64 to 16384"
        );
    }
}
