//! Opens the router's ports: AF_XDP sockets on Linux interfaces, and DPDK ports (NICs by
//! PCI address, or virtual devices) when svrd is built with the `dpdk` feature.
//!
//! DPDK's EAL starts once, with the virtual devices and PCI addresses of every DPDK port
//! and the configured `eal-argument`s. A port of driver `auto` that also names an
//! `interface-name` falls back to AF_XDP when DPDK cannot open it; any other failure stops
//! svrd with the device and the reason.

use std::sync::Arc;

use svr_dataplane::io::afxdp::{XdpAttachment, XdpFilter, XdpMode, Xsk, XskConfig};
use svr_dataplane::worker::Port;
use tracing::{info, warn};

use super::{DaemonError, Plan, PortBinding, PortPlan, sys};

/// The opened ports, indexed as the plan's ports are.
pub(super) struct OpenedPorts {
    pub ports: Vec<Port>,
    /// The XDP program of each AF_XDP port; `None` for a DPDK port.
    pub attachments: Vec<Option<Arc<XdpAttachment>>>,
    /// Each port's MAC address.
    pub macs: Vec<[u8; 6]>,
}

impl OpenedPorts {
    /// Returns whether port `index` was opened with DPDK.
    pub fn is_dpdk(&self, index: usize) -> bool {
        self.attachments.get(index).is_some_and(Option::is_none)
    }
}

/// Opens every port of `plan`.
pub(super) fn open_ports(plan: &Plan) -> Result<OpenedPorts, DaemonError> {
    let mut dpdk = dpdk::Opener::new(plan);
    let mut opened = OpenedPorts { ports: Vec::new(), attachments: Vec::new(), macs: Vec::new() };
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
    Ok(opened)
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

    use super::super::{DaemonError, DpdkDevice, Plan, PortBinding, PortPlan};

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

    /// Starts EAL, keeping the calling thread's CPU affinity: EAL pins the thread that
    /// starts it to its main lcore, but that thread is svrd's control thread, which the
    /// workers' core settings do not cover.
    fn start_eal(config: &EalConfig) -> Result<Eal, String> {
        let affinity: Option<CpuSet> = sched_getaffinity(Pid::from_raw(0)).ok();
        let result = Eal::init(config).map_err(|error| format!("dpdk eal: {error}"));
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

    /// Refuses every DPDK port: this svrd was built without DPDK.
    pub(super) struct Opener;

    impl Opener {
        pub(super) fn new(_plan: &Plan) -> Opener {
            Opener
        }

        pub(super) fn open(
            &mut self,
            port: &PortPlan,
            device: &DpdkDevice,
        ) -> Result<(Port, [u8; 6]), DaemonError> {
            Err(DaemonError::Dataplane(format!(
                "device-interface {} ({}): this svrd was built without DPDK; rebuild with \
                 `--features dpdk`, or bind the port with interface-name and driver af-xdp",
                port.name,
                device.port_name()
            )))
        }
    }
}
