//! A veth pair between two network namespaces made for one test, deleted on drop.
//!
//! ```text
//!   namespace svrio-<pid>-<n>-x          namespace svrio-<pid>-<n>-k
//!   [ sx<pid>-<n> 10.220.0.1/24 ] ===== [ sk<pid>-<n> 10.220.0.2/24 ]
//!     XSK side (svrd)                      kernel side (UDP sockets, ping)
//! ```
//!
//! By default both ends have one rx and one tx queue, so native XDP receives every
//! packet on queue 0, and IPv6 is off, so no router solicitations or MLD reports
//! appear. The kernel side
//! has transmit checksum offload off: otherwise its UDP packets cross the veth with a
//! partial checksum that only the kernel's skb metadata completes.

use std::{
    fs::File,
    net::{Ipv4Addr, Ipv6Addr, UdpSocket},
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
    thread,
};

use nix::sched::{CloneFlags, setns};

use super::Endpoint;

pub const XSK_IP: Ipv4Addr = Ipv4Addr::new(10, 220, 0, 1);
pub const XSK_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x220, 0, 0, 0, 0, 0, 1);
pub const KERNEL_IP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x220, 0, 0, 0, 0, 0, 2);
pub const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(10, 220, 0, 2);
pub const XSK_MAC: [u8; 6] = [0x02, 0x22, 0x00, 0x00, 0x00, 0x01];
pub const KERNEL_MAC: [u8; 6] = [0x02, 0x22, 0x00, 0x00, 0x00, 0x02];

/// Fails the test with an explanation unless it runs as root.
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("");
    assert_eq!(
        euid, "0",
        "AF_XDP tests need root: they create network namespaces and veth pairs and load \
         an XDP program. Run them as root (for example with sudo -E), or filter them out \
         with `-E 'not binary(io_afxdp)'`."
    );
}

/// The two namespaces and the veth pair between them.
#[derive(Debug)]
pub struct Pair {
    pub xsk_ns: String,
    pub kernel_ns: String,
    pub xsk_if: String,
    pub kernel_if: String,
}

impl Pair {
    /// Creates the namespaces and a single-queue veth pair with IPv4 only, addressed
    /// and up.
    pub fn new() -> Pair {
        Pair::build(1, false)
    }

    /// Creates the namespaces and a veth pair with `queues` queues each way, with IPv6
    /// (fd00:220::1 and ::2, no duplicate address detection) when `ipv6` is set.
    pub fn build(queues: u32, ipv6: bool) -> Pair {
        require_root();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();

        let pair = Pair {
            xsk_ns: format!("svrio-{pid}-{n}-x"),
            kernel_ns: format!("svrio-{pid}-{n}-k"),
            xsk_if: format!("sx{pid}-{n}"),
            kernel_if: format!("sk{pid}-{n}"),
        };
        assert!(pair.xsk_if.len() < 16, "interface name {} too long", pair.xsk_if);

        // From here on, Drop removes whatever was created.
        ip(&["netns", "add", &pair.xsk_ns]);
        ip(&["netns", "add", &pair.kernel_ns]);
        let mac = |m: [u8; 6]| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        let queues = queues.to_string();
        let (xsk_mac, kernel_mac) = (mac(XSK_MAC), mac(KERNEL_MAC));
        let xsk_end = ["name", &pair.xsk_if, "netns", &pair.xsk_ns, "address", &xsk_mac];
        let kernel_end =
            ["name", &pair.kernel_if, "netns", &pair.kernel_ns, "address", &kernel_mac];
        let queue_args = ["numtxqueues", &queues, "numrxqueues", &queues];
        let mut command = Command::new("ip");
        command.args(["link", "add"]).args(xsk_end).args(queue_args);
        command.args(["type", "veth", "peer"]).args(kernel_end).args(queue_args);
        run(&mut command);

        for (ns, ifname, addr, addr6) in [
            (&pair.xsk_ns, &pair.xsk_if, XSK_IP, XSK_IP6),
            (&pair.kernel_ns, &pair.kernel_if, KERNEL_IP, KERNEL_IP6),
        ] {
            let disable = if ipv6 { 0 } else { 1 };
            for key in ["all", "default", ifname.as_str()] {
                let setting = format!("net.ipv6.conf.{key}.disable_ipv6={disable}");
                run(Command::new("ip").args(["netns", "exec", ns, "sysctl", "-qw", &setting]));
            }
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", ifname]);
            if ipv6 {
                let addr6 = format!("{addr6}/64");
                ip(&["-n", ns, "-6", "addr", "add", &addr6, "dev", ifname, "nodad"]);
            }
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", ifname, "up"]);
        }
        run(Command::new("ip").args([
            "netns",
            "exec",
            &pair.kernel_ns,
            "ethtool",
            "-K",
            &pair.kernel_if,
            "tx",
            "off",
        ]));
        pair
    }

    /// Runs `f` on a thread inside the XSK-side namespace. Sockets and BPF objects made
    /// there stay in that namespace after the thread ends.
    pub fn in_xsk_ns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.xsk_ns, f)
    }

    /// Runs `f` on a thread inside the kernel-side namespace.
    pub fn in_kernel_ns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.kernel_ns, f)
    }

    /// A UDP socket in the kernel-side namespace bound to `port`.
    pub fn kernel_socket(&self, port: u16) -> UdpSocket {
        self.in_kernel_ns(|| UdpSocket::bind((KERNEL_IP, port)).unwrap())
    }

    /// Endpoint of the XSK side at `port`.
    pub fn xsk_endpoint(port: u16) -> Endpoint {
        Endpoint { mac: XSK_MAC, ip: XSK_IP, port }
    }

    /// Endpoint of the kernel side at `port`.
    pub fn kernel_endpoint(port: u16) -> Endpoint {
        Endpoint { mac: KERNEL_MAC, ip: KERNEL_IP, port }
    }

    /// Runs a command inside the kernel-side namespace and returns whether it succeeded.
    pub fn kernel_exec(&self, args: &[&str]) -> bool {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.kernel_ns]).args(args);
        command.status().map(|status| status.success()).unwrap_or(false)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and with it the peer.
        for ns in [&self.xsk_ns, &self.kernel_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a thread that has entered the network namespace `ns`.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                setns(file, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {ns}: {e}"));
                f()
            })
            .join()
            .unwrap()
    })
}

/// Runs `ip ARGS` and fails the test if it fails.
pub fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

/// Runs `command` and fails the test, with its stderr, if it fails.
pub fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
}
