//! The veth topology of the AF_XDP legs, in two network namespaces the bench creates and
//! deletes on drop:
//!
//! ```text
//!   svrb-<pid>-g (load generator)          svrb-<pid>-f (forwarder: svrd or testpmd)
//!   [ bg<pid>a  host1 MAC ] ============== [ bf<pid>a  r1 LAN MAC ]
//!   [ bg<pid>b  host5 MAC ] ============== [ bf<pid>b  r2 LAN MAC ]
//! ```
//!
//! Every veth has one queue each way, so native XDP sees every frame on queue 0, and IPv6
//! is off in both namespaces, so no router solicitations or MLD reports reach the sockets.
//! No interface has an IP address: the frames the bench sends are taken by XDP before the
//! kernel stack would see them.

use std::fs::File;
use std::process::Command;
use std::thread;

use nix::sched::{CloneFlags, setns};

use crate::topology::{HOST1_MAC, HOST5_MAC, R1_LAN_MAC, R2_LAN_MAC};

/// The two namespaces and the two veth pairs.
#[derive(Debug)]
pub struct Topology {
    pub generator_ns: String,
    pub forwarder_ns: String,
    /// Generator side of the host1 link.
    pub host1_if: String,
    /// Generator side of the host5 link.
    pub host5_if: String,
    /// Forwarder side of the host1 link (r1's LAN).
    pub r1_lan_if: String,
    /// Forwarder side of the host5 link (r2's LAN).
    pub r2_lan_if: String,
}

impl Topology {
    /// Creates the namespaces and links; on error, whatever was made is deleted.
    pub fn create() -> Result<Topology, String> {
        require_root()?;
        let pid = std::process::id();
        let topology = Topology {
            generator_ns: format!("svrb-{pid}-g"),
            forwarder_ns: format!("svrb-{pid}-f"),
            host1_if: format!("bg{pid}a"),
            host5_if: format!("bg{pid}b"),
            r1_lan_if: format!("bf{pid}a"),
            r2_lan_if: format!("bf{pid}b"),
        };
        // From here on, Drop deletes what exists.
        run("ip", &["netns", "add", &topology.generator_ns])?;
        run("ip", &["netns", "add", &topology.forwarder_ns])?;
        let links = [
            (&topology.host1_if, HOST1_MAC, &topology.r1_lan_if, R1_LAN_MAC),
            (&topology.host5_if, HOST5_MAC, &topology.r2_lan_if, R2_LAN_MAC),
        ];
        for (generator_if, generator_mac, forwarder_if, forwarder_mac) in links {
            let (generator_mac, forwarder_mac) = (mac(generator_mac), mac(forwarder_mac));
            #[rustfmt::skip]
            let args = [
                "link", "add", generator_if, "netns", &topology.generator_ns,
                "address", &generator_mac, "numtxqueues", "1", "numrxqueues", "1",
                "type", "veth", "peer", forwarder_if, "netns", &topology.forwarder_ns,
                "address", &forwarder_mac, "numtxqueues", "1", "numrxqueues", "1",
            ];
            run("ip", &args)?;
        }
        for (ns, interfaces) in [
            (&topology.generator_ns, [&topology.host1_if, &topology.host5_if]),
            (&topology.forwarder_ns, [&topology.r1_lan_if, &topology.r2_lan_if]),
        ] {
            for key in ["all", "default"] {
                let setting = format!("net.ipv6.conf.{key}.disable_ipv6=1");
                run("ip", &["netns", "exec", ns, "sysctl", "-qw", &setting])?;
            }
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
            for interface in interfaces {
                run("ip", &["-n", ns, "link", "set", interface, "up"])?;
            }
        }
        Ok(topology)
    }

    /// Runs `f` on a thread inside the generator's namespace.
    pub fn in_generator<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, String> {
        in_netns(&self.generator_ns, f)
    }

    /// Runs `f` on a thread inside the forwarder's namespace.
    pub fn in_forwarder<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, String> {
        in_netns(&self.forwarder_ns, f)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends inside it, and with them their peers.
        for ns in [&self.generator_ns, &self.forwarder_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a new thread that has entered the network namespace `ns`. Sockets and BPF
/// objects made there stay bound to that namespace after the thread ends.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    let path = format!("/run/netns/{ns}");
    thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
                setns(file, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {ns}: {e}"))?;
                Ok(f())
            })
            .join()
            .map_err(|_| format!("thread in namespace {ns} panicked"))?
    })
}

/// Fails unless the process runs as root, which namespaces, veth and XDP need.
pub fn require_root() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("");
    if euid == "0" {
        Ok(())
    } else {
        Err("the AF_XDP and DPDK legs need root: they create network namespaces, veth pairs \
             and XDP programs"
            .into())
    }
}

/// Runs `program args`, returning its stderr as the error when it fails.
pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

/// A MAC address in `ip`'s notation.
pub fn mac(bytes: [u8; 6]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}
