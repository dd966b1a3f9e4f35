//! Opens the router's ports: AF_XDP sockets on Linux interfaces, and DPDK ports (NICs by
//! PCI address, or virtual devices) when svrd is built with the `dpdk` feature. A caller
//! that runs the router in its own process may supply the ports instead ([`SuppliedPort`]),
//! for example memory ports.
//!
//! DPDK's EAL starts once, with the virtual devices and PCI addresses of every DPDK port
//! and the configured `eal-argument`s. A port of driver `auto` that also names an
//! `interface-name` falls back to AF_XDP when DPDK cannot open it; any other failure stops
//! svrd with the device and the reason.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use svr_dataplane::io::afxdp::{XdpAttachment, XdpFilter, XdpMode, Xsk, XskConfig};
use svr_dataplane::worker::Port;
use tracing::{debug, info, warn};

use super::{DaemonError, DpdkDevice, Plan, PortBinding, PortPlan, sys};

/// The opened ports, indexed as the plan's ports are.
pub(super) struct OpenedPorts {
    pub ports: Vec<Port>,
    /// The XDP program of each AF_XDP port; `None` for a port that no kernel stack serves
    /// (a DPDK port or a supplied one).
    pub attachments: Vec<Option<Arc<XdpAttachment>>>,
    /// Each port's MAC address.
    pub macs: Vec<[u8; 6]>,
    /// EAL's runtime directory when svrd started EAL with a file prefix of its own, removed
    /// at a clean stop with the files EAL leaves in it.
    pub dpdk_runtime_dir: Option<PathBuf>,
}

impl OpenedPorts {
    /// Returns whether no kernel stack serves port `index`, so that svrd itself replies to
    /// ARP and neighbour discovery on it.
    pub fn lacks_kernel_stack(&self, index: usize) -> bool {
        self.attachments.get(index).is_some_and(Option::is_none)
    }
}

/// A port that the caller of [`super::run_with_ports`] opened for one device-interface of
/// the router. svrd treats it as it treats a DPDK port. No kernel stack serves it, so svrd
/// replies to ARP and neighbour discovery on it, resolves its next hops itself, and runs
/// BFD through the workers. Its link is not watched.
pub struct SuppliedPort {
    /// The name of the router's `device-interface` this port stands for.
    pub device_interface: String,
    pub port: Port,
    /// The MAC address svrd writes as the source of the frames it sends on the port.
    pub mac: [u8; 6],
}

impl std::fmt::Debug for SuppliedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuppliedPort")
            .field("device_interface", &self.device_interface)
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

/// Orders `supplied` as the plan's ports: each device-interface of the plan must have
/// exactly one supplied port, and each supplied port must name a device-interface.
fn take_supplied(plan: &Plan, supplied: Vec<SuppliedPort>) -> Result<OpenedPorts, DaemonError> {
    let mut slots: Vec<Option<SuppliedPort>> = plan.ports.iter().map(|_| None).collect();
    for port in supplied {
        let Some(index) = plan.ports.iter().position(|p| p.name == port.device_interface) else {
            return Err(DaemonError::Dataplane(format!(
                "supplied port {}: router {} has no device-interface of that name; expected \
                 one of: {}",
                port.device_interface,
                plan.router,
                device_interface_names(plan)
            )));
        };
        if slots[index].is_some() {
            return Err(DaemonError::Dataplane(format!(
                "device-interface {}: more than one port supplied",
                port.device_interface
            )));
        }
        slots[index] = Some(port);
    }

    let mut opened = OpenedPorts {
        ports: Vec::new(),
        attachments: Vec::new(),
        macs: Vec::new(),
        dpdk_runtime_dir: None,
    };
    for (slot, plan_port) in slots.into_iter().zip(&plan.ports) {
        let Some(port) = slot else {
            return Err(DaemonError::Dataplane(format!(
                "device-interface {}: no port supplied; every device-interface of router {} \
                 needs one ({})",
                plan_port.name,
                plan.router,
                device_interface_names(plan)
            )));
        };
        info!(port = %plan_port.name, lan = plan_port.tenant.is_some(), "port open (supplied)");
        opened.ports.push(port.port);
        opened.attachments.push(None);
        opened.macs.push(port.mac);
    }
    Ok(opened)
}

/// The origin of the router's ports.
pub(super) enum PortSource {
    /// The ports of the configuration: AF_XDP sockets and DPDK ports.
    Configured,
    /// Ports the caller of [`super::run_with_ports`] opened.
    Supplied(Vec<SuppliedPort>),
}

impl PortSource {
    /// Checks that this svrd can open the plan's ports, before the daemon starts anything.
    pub(super) fn check(&self, plan: &Plan) -> Result<(), DaemonError> {
        match self {
            PortSource::Configured => require_dpdk(plan),
            PortSource::Supplied(_) => Ok(()),
        }
    }

    /// Opens the ports, indexed as the plan's ports are.
    pub(super) fn open(self, plan: &Plan) -> Result<OpenedPorts, DaemonError> {
        match self {
            PortSource::Configured => open_ports(plan),
            PortSource::Supplied(ports) => take_supplied(plan, ports),
        }
    }
}

/// Returns the DPDK ports of `plan` that this svrd cannot open because it was built without the
/// `dpdk` feature, each with whether it falls back to AF_XDP. Empty in a build with DPDK.
pub fn ports_needing_dpdk(plan: &Plan) -> Vec<(&PortPlan, &DpdkDevice, bool)> {
    if cfg!(feature = "dpdk") {
        return Vec::new();
    }
    plan.ports
        .iter()
        .filter_map(|port| match &port.binding {
            PortBinding::Dpdk { device, fallback } => Some((port, device, *fallback)),
            PortBinding::AfXdp => None,
        })
        .collect()
}

/// Formats the error for a DPDK port in a svrd built without DPDK.
pub fn without_dpdk_message(port: &PortPlan, device: &DpdkDevice) -> String {
    format!(
        "device-interface {} ({}): this svrd was built without DPDK; rebuild with \
         `--features dpdk`, or bind the port with interface-name and driver af-xdp",
        port.name,
        device.port_name()
    )
}

/// Fails on the first DPDK port without an AF_XDP fallback that this build cannot open, or
/// whose virtual device names a Linux interface (`iface=`) that does not exist.
fn require_dpdk(plan: &Plan) -> Result<(), DaemonError> {
    if let Some((port, device, _)) =
        ports_needing_dpdk(plan).into_iter().find(|(_, _, fallback)| !fallback)
    {
        return Err(DaemonError::Dataplane(without_dpdk_message(port, device)));
    }
    for port in &plan.ports {
        if let PortBinding::Dpdk { device, fallback: false } = &port.binding {
            require_vdev_interface(port, device)?;
        }
    }
    Ok(())
}

/// Fails when `device` is a virtual device whose `iface=` names a Linux interface that does
/// not exist in this network namespace, which DPDK would report only as a failed probe.
fn require_vdev_interface(port: &PortPlan, device: &DpdkDevice) -> Result<(), DaemonError> {
    let DpdkDevice::Vdev(argument) = device else { return Ok(()) };
    let Some(interface) = crate::config::vdev_interface(argument) else { return Ok(()) };
    if nix::net::if_::if_nametoindex(interface).is_ok() {
        return Ok(());
    }
    Err(DaemonError::Dataplane(format!(
        "device-interface {} ({argument}): interface {interface} not found; create it or \
         name an existing interface in iface=",
        port.name
    )))
}

fn device_interface_names(plan: &Plan) -> String {
    plan.ports.iter().map(|port| port.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// Opens every port of `plan`.
fn open_ports(plan: &Plan) -> Result<OpenedPorts, DaemonError> {
    let mut dpdk = dpdk::Opener::new(plan);
    let mut opened = OpenedPorts {
        ports: Vec::new(),
        attachments: Vec::new(),
        macs: Vec::new(),
        dpdk_runtime_dir: None,
    };
    for port in &plan.ports {
        if let PortBinding::Dpdk { device, fallback } = &port.binding {
            match dpdk.open(port, device) {
                Ok((io, mac)) => {
                    info!(port = %port.name, device = device.port_name(), lan = port.tenant.is_some(), "port open (dpdk)");
                    opened.ports.push(io);
                    opened.attachments.push(None);
                    opened.macs.push(mac);
                    continue;
                }
                Err(error) if *fallback => {
                    warn!(port = %port.name, %error, interface = %port.linux_name, "dpdk cannot open the port; using af-xdp");
                }
                Err(error) => return Err(error),
            }
        }
        let (attachment, xsk) = open_xdp_port(port)?;
        info!(port = %port.name, interface = %port.linux_name, lan = port.tenant.is_some(), "port open (af-xdp)");
        opened.ports.push(xsk);
        opened.attachments.push(Some(attachment));
        opened.macs.push(sys::mac_address(&port.linux_name).unwrap_or_default());
    }
    opened.dpdk_runtime_dir = dpdk.runtime_dir();
    Ok(opened)
}

/// Returns the directory where DPDK 22.11's EAL keeps the runtime files of `file_prefix`
/// for a process of user `uid`: under `/var/run/dpdk` for root, else under
/// `$XDG_RUNTIME_DIR/dpdk`, or `/tmp/dpdk` without that variable.
#[cfg(feature = "dpdk")]
fn eal_runtime_dir(file_prefix: &str, uid: u32, xdg_runtime_dir: Option<PathBuf>) -> PathBuf {
    let base = match (uid, xdg_runtime_dir) {
        (0, _) => PathBuf::from("/var/run"),
        (_, Some(xdg)) => xdg,
        (_, None) => PathBuf::from("/tmp"),
    };
    base.join("dpdk").join(file_prefix)
}

/// Removes EAL's runtime directory `dir` at a clean stop. svrd does not tear EAL down, so
/// it first deletes the files EAL leaves there: the `config` lock file, the `fbarray_*`
/// memory maps, `hugepage_info`, `mp_socket*` and the telemetry socket. Any other file
/// keeps the directory, because it may be another process's.
pub(super) fn remove_runtime_dir(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_eal_runtime_file(&name)
            && let Err(error) = std::fs::remove_file(entry.path())
        {
            debug!(file = %entry.path().display(), %error, "dpdk runtime file kept");
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => debug!(dir = %dir.display(), "dpdk runtime directory removed"),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => debug!(dir = %dir.display(), %error, "dpdk runtime directory kept"),
    }
}

/// Returns whether `name` is one of the files DPDK 22.11's EAL creates in its runtime
/// directory. The telemetry library's socket (`dpdk_telemetry.v2`) is among them: left in
/// place, it keeps the directory, and the library unlinks it only at process exit, which
/// leaves the directory empty behind svrd.
fn is_eal_runtime_file(name: &str) -> bool {
    name == "config"
        || name == "hugepage_info"
        || name.starts_with("mp_socket")
        || name.starts_with("fbarray_")
        || name.starts_with("dpdk_telemetry")
}

/// Attaches svrd's XDP program to the port's interface and opens its AF_XDP socket. A
/// WAN port takes the SVR waypoint ports and BFD's port 1280 from the kernel; a LAN port
/// takes all traffic but that for the router's own addresses.
pub(super) fn open_xdp_port(port: &PortPlan) -> Result<(Arc<XdpAttachment>, Port), DaemonError> {
    let filter = match port.tenant {
        Some(_) => XdpFilter::Lan { local_addrs: port.addresses.clone() },
        None => XdpFilter::wan_default(),
    };
    let attachment = XdpAttachment::attach(&port.linux_name, XdpMode::Skb, &filter, 1)
        .map_err(|e| DaemonError::Dataplane(format!("{}: {e}", port.linux_name)))?;
    let attachment = Arc::new(attachment);
    let xsk = Xsk::open(&XskConfig::default(), &attachment)
        .map_err(|e| DaemonError::Dataplane(format!("{}: {e}", port.linux_name)))?;
    Ok((attachment, Box::new(xsk)))
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
    use nix::unistd::Pid;
    use svr_dataplane::io::IoError;
    use svr_dataplane::io::dpdk::{DpdkPort, DpdkPortConfig, Eal, EalConfig};
    use svr_dataplane::worker::Port;
    use tracing::debug;

    use super::super::{DaemonError, DpdkDevice, Plan, PortBinding, PortPlan, sys};

    /// Starts EAL on first use and opens DPDK ports.
    pub(super) struct Opener {
        config: EalConfig,
        eal: Option<Result<Eal, String>>,
    }

    impl Opener {
        pub(super) fn new(plan: &Plan) -> Opener {
            Opener { config: eal_config(plan), eal: None }
        }

        pub(super) fn open(
            &mut self,
            port: &PortPlan,
            device: &DpdkDevice,
        ) -> Result<(Port, [u8; 6]), DaemonError> {
            // A missing interface fails here, before EAL starts on the first port.
            super::require_vdev_interface(port, device)?;
            let config = &self.config;
            let eal = self.eal.get_or_insert_with(|| start_eal(config));
            let eal = match eal {
                Ok(eal) => *eal,
                Err(error) => {
                    return Err(DaemonError::Dataplane(format!(
                        "device-interface {}: {error}",
                        port.name
                    )));
                }
            };
            let name = device.port_name();
            let failed = |error: IoError| {
                DaemonError::Dataplane(format!("device-interface {} ({name}): {error}", port.name))
            };
            let dpdk_port = DpdkPort::open(eal, &DpdkPortConfig::new(name)).map_err(failed)?;
            let mac = dpdk_port.mac_address().map_err(failed)?;
            match dpdk_port.link() {
                Ok(link) if !link.up => debug!(port = %port.name, "dpdk link is down at start"),
                _ => {}
            }
            Ok((Box::new(dpdk_port), mac))
        }
    }

    impl Opener {
        /// Returns EAL's runtime directory when EAL runs with svrd's own file prefix.
        pub(super) fn runtime_dir(&self) -> Option<std::path::PathBuf> {
            let prefix = self.config.file_prefix.as_deref()?;
            let Some(Ok(_)) = &self.eal else { return None };
            let uid = nix::unistd::getuid().as_raw();
            let xdg = std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from);
            Some(super::eal_runtime_dir(prefix, uid, xdg))
        }
    }

    /// The EAL arguments of `plan`: every DPDK port's virtual device or PCI address, a file
    /// prefix of the router's own unless one is configured, then the `eal-argument`s.
    fn eal_config(plan: &Plan) -> EalConfig {
        let mut vdevs = Vec::new();
        let mut allowed = Vec::new();
        for port in &plan.ports {
            match &port.binding {
                PortBinding::Dpdk { device: DpdkDevice::Vdev(argument), .. } => {
                    vdevs.push(argument.clone());
                }
                PortBinding::Dpdk { device: DpdkDevice::Pci(address), .. } => {
                    allowed.push("-a".to_owned());
                    allowed.push(address.clone());
                }
                PortBinding::AfXdp => {}
            }
        }
        let has_prefix = plan.eal_arguments.iter().any(|a| a.starts_with("--file-prefix"));
        let mut extra_args = allowed.clone();
        extra_args.extend(plan.eal_arguments.iter().cloned());
        EalConfig {
            pci: !allowed.is_empty(),
            vdevs,
            // Two routers on one host must not share EAL's runtime files.
            file_prefix: (!has_prefix).then(|| format!("svrd-{}", plan.router)),
            extra_args,
            ..EalConfig::default()
        }
    }

    /// Returns whether EAL backs its memory with hugepages under `config`, that is whether
    /// no `--no-huge` is passed.
    fn needs_hugepages(config: &EalConfig) -> bool {
        config.hugepages && !config.extra_args.iter().any(|argument| argument == "--no-huge")
    }

    /// Starts EAL, keeping the calling thread's CPU affinity: EAL pins the thread that
    /// starts it to its main lcore, but that thread is svrd's control thread, which the
    /// workers' core settings do not cover.
    fn start_eal(config: &EalConfig) -> Result<Eal, String> {
        let affinity: Option<CpuSet> = sched_getaffinity(Pid::from_raw(0)).ok();
        let result = Eal::init(config).map_err(|error| {
            let hint = if needs_hugepages(config) && sys::free_hugepages().unwrap_or(0) == 0 {
                "; this host has no free hugepages, so reserve some (for example \
                 `echo 512 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages`) or add \
                 `eal-argument --no-huge` to the node's dataplane"
            } else {
                ""
            };
            format!("dpdk eal: {error}{hint}")
        });
        if let Some(affinity) = affinity
            && let Err(error) = sched_setaffinity(Pid::from_raw(0), &affinity)
        {
            tracing::warn!(%error, "cannot restore the control thread's cpu affinity after eal");
        }
        result
    }
}

#[cfg(not(feature = "dpdk"))]
mod dpdk {
    use svr_dataplane::worker::Port;

    use super::super::{DaemonError, DpdkDevice, Plan, PortPlan};

    /// Rejects every DPDK port, because this svrd was built without DPDK.
    pub(super) struct Opener;

    impl Opener {
        pub(super) fn new(_plan: &Plan) -> Opener {
            Opener
        }

        /// Returns `None`: without DPDK, EAL never runs.
        pub(super) fn runtime_dir(&self) -> Option<std::path::PathBuf> {
            None
        }

        pub(super) fn open(
            &mut self,
            port: &PortPlan,
            device: &DpdkDevice,
        ) -> Result<(Port, [u8; 6]), DaemonError> {
            Err(DaemonError::Dataplane(super::without_dpdk_message(port, device)))
        }
    }
}

#[cfg(test)]
mod tests {
    use svr_dataplane::io::mem::{MemConfig, mem_pair};

    use super::*;

    /// Resolves r1 of the sample configuration, whose device-interfaces are lan, wan-a and
    /// wan-b.
    fn plan() -> Plan {
        let text = include_str!("../../tests/configs/eskm-two-router.cfg");
        let config = crate::config::parse_authority(text).unwrap();
        Plan::resolve(&config, config.router("r1").unwrap()).unwrap()
    }

    fn supplied(name: &str, last_octet: u8) -> SuppliedPort {
        let config = MemConfig { frames: 16, frame_size: 2048, ring_size: 16 };
        let (port, _peer) = mem_pair(&config).unwrap();
        SuppliedPort {
            device_interface: name.into(),
            port: Box::new(port),
            mac: [2, 0, 0, 0, 0, last_octet],
        }
    }

    /// A DPDK port on virtual device `vdev`, with no AF_XDP fallback.
    fn vdev_port(vdev: &str) -> (PortPlan, DpdkDevice) {
        let device = DpdkDevice::Vdev(vdev.to_owned());
        let port = PortPlan {
            name: "wan".into(),
            network_interface: "wan-net".into(),
            linux_name: "wan".into(),
            binding: PortBinding::Dpdk { device: device.clone(), fallback: false },
            addresses: Vec::new(),
            networks: Vec::new(),
            tenant: None,
            mtu: 1500,
        };
        (port, device)
    }

    #[test]
    fn vdev_missing_interface_named() {
        let (port, device) = vdev_port("net_af_packet0,iface=svrd-missing0");
        let Err(DaemonError::Dataplane(message)) = require_vdev_interface(&port, &device) else {
            panic!("a vdev on a missing interface was accepted");
        };
        assert!(
            message.starts_with(
                "device-interface wan (net_af_packet0,iface=svrd-missing0): interface \
                 svrd-missing0 not found"
            ),
            "{message}"
        );
    }

    #[test]
    fn vdev_existing_interface_accepted() {
        let (port, device) = vdev_port("net_af_packet0,iface=lo");
        assert!(require_vdev_interface(&port, &device).is_ok());
        let (port, device) = vdev_port("net_null0");
        assert!(require_vdev_interface(&port, &device).is_ok());
    }

    #[cfg(feature = "dpdk")]
    #[test]
    fn eal_runtime_dir_by_user() {
        let xdg = || Some(PathBuf::from("/run/user/1000"));
        assert_eq!(eal_runtime_dir("svrd-r1", 0, xdg()), Path::new("/var/run/dpdk/svrd-r1"));
        assert_eq!(
            eal_runtime_dir("svrd-r1", 1000, xdg()),
            Path::new("/run/user/1000/dpdk/svrd-r1")
        );
        assert_eq!(eal_runtime_dir("svrd-r1", 1000, None), Path::new("/tmp/dpdk/svrd-r1"));
    }

    #[test]
    fn runtime_dir_removed_with_eal_files() {
        let base = std::env::temp_dir().join(format!("svrd-runtime-{}", std::process::id()));
        let (eal_only, foreign) = (base.join("eal-only"), base.join("foreign"));
        for dir in [&eal_only, &foreign] {
            std::fs::create_dir_all(dir).unwrap();
            let names = ["config", "fbarray_memzone", "mp_socket", "dpdk_telemetry.v2"];
            for name in names {
                std::fs::write(dir.join(name), b"").unwrap();
            }
        }
        std::fs::write(foreign.join("notes.txt"), b"").unwrap();

        remove_runtime_dir(&eal_only);
        remove_runtime_dir(&foreign);
        remove_runtime_dir(&base.join("missing"));
        let eal_only_left = eal_only.exists();
        let foreign_left = foreign.join("notes.txt").exists();
        let _ = std::fs::remove_dir_all(&base);
        assert!(!eal_only_left, "a runtime directory with only EAL's files was kept");
        assert!(foreign_left, "another file in the runtime directory was removed");
    }

    #[test]
    fn supplied_ports_take_plan_order() {
        let ports = vec![supplied("wan-b", 3), supplied("lan", 1), supplied("wan-a", 2)];
        let opened = take_supplied(&plan(), ports).unwrap();
        assert_eq!(opened.ports.len(), 3);
        assert_eq!(opened.macs, [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]]);
        assert!((0..3).all(|index| opened.lacks_kernel_stack(index)));
    }

    #[test]
    fn supplied_port_unknown_name_rejected() {
        let ports =
            vec![supplied("lan", 1), supplied("wan-a", 2), supplied("wan-b", 3), supplied("x", 4)];
        let Err(DaemonError::Dataplane(message)) = take_supplied(&plan(), ports) else {
            panic!("a port for an unknown device-interface was accepted");
        };
        assert!(message.contains("supplied port x"), "{message}");
        assert!(message.contains("lan, wan-a, wan-b"), "{message}");
    }

    #[test]
    fn supplied_port_missing_rejected() {
        let ports = vec![supplied("lan", 1), supplied("wan-b", 3)];
        let Err(DaemonError::Dataplane(message)) = take_supplied(&plan(), ports) else {
            panic!("a device-interface without a port was accepted");
        };
        assert!(message.starts_with("device-interface wan-a: no port supplied"), "{message}");
    }

    #[test]
    fn supplied_port_twice_rejected() {
        let ports = vec![supplied("lan", 1), supplied("lan", 2), supplied("wan-a", 3)];
        let Err(DaemonError::Dataplane(message)) = take_supplied(&plan(), ports) else {
            panic!("two ports for one device-interface were accepted");
        };
        assert!(message.contains("more than one port supplied"), "{message}");
    }
}
