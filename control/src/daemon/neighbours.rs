//! The link-layer addresses of next hops, for the key epoch's neighbour table.
//!
//! On AF_XDP ports the kernel resolves neighbours: the control loop reads its neighbour
//! table, asks it (over rtnetlink) to resolve the hops the workers found missing, and keeps
//! the peer waypoints of the WAN ports fresh in it, since only svrd sends to them. On DPDK
//! ports, and on ports supplied by the caller, no kernel sees the traffic, so the router's
//! own [`Resolver`] answers ARP and neighbour solicitations from the frames the workers
//! punt, and resolves the same hops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use svr_dataplane::epoch::InterfaceId;
use svr_dataplane::worker::{ControlPacket, ControlQueues};
use tracing::{debug, warn};

use super::{Daemon, Plan, RoutePlan, sys};
use crate::neighbour::{PortAddresses, Resolver, ResolverCounters};

/// How often the kernel's neighbour table is read for next-hop MAC addresses.
const KERNEL_REFRESH: Duration = Duration::from_secs(1);

/// Time after asking the kernel to resolve a next hop before its table is read again,
/// sooner than [`KERNEL_REFRESH`].
const RESOLVE_CHECK: Duration = Duration::from_millis(100);

/// Minimum time between two kernel resolution requests for one next hop.
const RESOLVE_RETRY: Duration = Duration::from_secs(1);

/// How often the kernel is asked to confirm the WAN next hops it already knows. Without
/// traffic of its own to them its entries would go stale and never be checked again.
const WAN_CONFIRM: Duration = Duration::from_secs(30);

/// Frames from the workers' discovery queue handled per pass of the control loop.
const DISCOVERY_BURST: usize = 64;

/// The control loop's neighbour state.
#[derive(Debug)]
pub(super) struct Neighbours {
    /// Whether each port lacks a kernel stack (a DPDK or supplied port), by port index.
    dpdk: Vec<bool>,
    /// ARP and neighbour discovery of the DPDK ports.
    resolver: Resolver,
    /// Next hops the kernel was asked to resolve, by (port, address), with the time.
    resolving: HashMap<(InterfaceId, IpAddr), Instant>,
    /// The last read of the kernel's table, with its entries for AF_XDP ports.
    kernel: HashMap<(InterfaceId, IpAddr), [u8; 6]>,
    /// When the kernel's table is read next.
    next_kernel_read: Instant,
    last_wan_confirm: Option<Instant>,
}

impl Neighbours {
    /// The state for `plan`'s ports, of which those marked in `dpdk` are DPDK ports with
    /// the MAC addresses `macs`.
    pub(super) fn new(plan: &Plan, dpdk: Vec<bool>, macs: &[[u8; 6]]) -> Neighbours {
        let ports = plan
            .ports
            .iter()
            .enumerate()
            .map(|(index, port)| {
                dpdk.get(index).copied().unwrap_or(false).then(|| PortAddresses {
                    mac: macs.get(index).copied().unwrap_or_default(),
                    addresses: port.addresses.clone(),
                    networks: port.networks.clone(),
                })
            })
            .collect();
        let mut neighbours = Neighbours {
            dpdk,
            resolver: Resolver::new(ports),
            resolving: HashMap::new(),
            kernel: HashMap::new(),
            next_kernel_read: Instant::now(),
            last_wan_confirm: None,
        };
        neighbours.plan(plan, Instant::now());
        neighbours
    }

    /// Sets the next hops `plan` needs: each peer path's remote waypoint and each local
    /// service route's gateway.
    pub(super) fn plan(&mut self, plan: &Plan, now: Instant) {
        self.resolver.set_planned(planned_hops(plan), now);
    }

    /// Returns whether any port's neighbours are resolved by svrd itself.
    pub(super) fn resolves_any(&self) -> bool {
        self.resolver.is_active()
    }

    /// Returns the counters of svrd's own neighbour resolution.
    pub(super) fn counters(&self) -> ResolverCounters {
        self.resolver.counters()
    }

    fn is_dpdk(&self, port: InterfaceId) -> bool {
        self.dpdk.get(usize::from(port)).copied().unwrap_or(false)
    }

    /// Returns the table the workers use: the kernel's entries for AF_XDP ports and the resolver's
    /// for DPDK ports.
    fn table(&self) -> HashMap<(InterfaceId, IpAddr), [u8; 6]> {
        let mut table: HashMap<_, _> = self
            .kernel
            .iter()
            .filter(|((port, _), _)| !self.is_dpdk(*port))
            .map(|(key, mac)| (*key, *mac))
            .collect();
        table.extend(self.resolver.entries());
        table
    }
}

/// Returns the next hops `plan` names, by port.
fn planned_hops(plan: &Plan) -> Vec<(InterfaceId, IpAddr)> {
    let paths = plan.paths.iter().filter(|path| !path.retired).map(|path| (path.port, path.remote));
    let gateways = plan.routes.iter().filter_map(|route| match route {
        RoutePlan::Local { port, gateway: Some(gateway), .. } => Some((*port, *gateway)),
        _ => None,
    });
    paths
        .chain(gateways)
        .filter_map(|(port, hop)| Some((InterfaceId::try_from(port).ok()?, hop)))
        .collect()
}

impl Daemon {
    /// Serves punted ARP and neighbour discovery frames, sends due requests, asks the
    /// kernel for missing hops, and reads its table when due. Returns whether the table
    /// the workers use changed.
    pub(super) fn poll_neighbours(&mut self) -> bool {
        let now = Instant::now();
        self.serve_discovery(now);
        self.resolve_missing(now);
        self.confirm_wan_hops(now);

        let mut changed = self.neighbours.resolver.take_changed();
        if now >= self.neighbours.next_kernel_read {
            changed |= self.read_kernel_table(now);
        }
        if changed {
            self.keyring.neighbours = self.neighbours.table();
        }
        changed
    }

    /// Answers the punted frames and queues the resolver's due requests.
    fn serve_discovery(&mut self, now: Instant) {
        let control = std::sync::Arc::clone(&self.control);
        for _ in 0..DISCOVERY_BURST {
            let Some(ControlPacket { port, frame }) = control.discovery.pop() else {
                break;
            };
            let reply = self.neighbours.resolver.receive(port, &frame, now);
            // The buffer came from the discovery pool, which has room for every buffer it
            // lent out.
            let _ = control.discovery_spare.push(frame);
            if let Some(reply) = reply {
                send_frame(&control, port, &reply);
            }
        }
        if !self.neighbours.resolver.is_active() {
            return;
        }
        for (port, request) in self.neighbours.resolver.poll(now) {
            send_frame(&control, port, &request);
        }
    }

    /// Has each next hop the workers reported missing resolved: by the resolver on a DPDK
    /// port, by the kernel otherwise, at most once per [`RESOLVE_RETRY`] per hop.
    fn resolve_missing(&mut self, now: Instant) {
        while let Some((port, address)) = self.control.unresolved.pop() {
            if self.neighbours.is_dpdk(port) {
                self.neighbours.resolver.report_missing(port, address, now);
            } else {
                self.ask_kernel(port, address, now);
            }
        }
        self.neighbours.resolving.retain(|_, at| now.duration_since(*at) < RESOLVE_RETRY);
    }

    /// Asks the kernel to resolve the WAN next hops of AF_XDP ports: at once for those
    /// missing from its table, and every [`WAN_CONFIRM`] for all of them.
    fn confirm_wan_hops(&mut self, now: Instant) {
        let confirm_all =
            self.neighbours.last_wan_confirm.is_none_or(|at| now.duration_since(at) >= WAN_CONFIRM);
        if confirm_all {
            self.neighbours.last_wan_confirm = Some(now);
        }
        let hops: Vec<(InterfaceId, IpAddr)> = planned_hops(&self.plan)
            .into_iter()
            .filter(|(port, hop)| {
                !self.neighbours.is_dpdk(*port)
                    && (confirm_all || !self.neighbours.kernel.contains_key(&(*port, *hop)))
            })
            .collect();
        for (port, hop) in hops {
            self.ask_kernel(port, hop, now);
        }
    }

    /// Asks the kernel to resolve `address` on `port` unless it was asked lately, and has
    /// its table read again soon after.
    fn ask_kernel(&mut self, port: InterfaceId, address: IpAddr, now: Instant) {
        let Some(interface) = self.plan.ports.get(usize::from(port)) else {
            return;
        };
        if self.neighbours.resolving.contains_key(&(port, address)) {
            return;
        }
        self.neighbours.resolving.insert((port, address), now);
        match sys::resolve_neighbour(&interface.linux_name, address) {
            Ok(()) => {
                debug!(interface = %interface.linux_name, %address, "neighbour resolution requested");
                let sooner = now + RESOLVE_CHECK;
                self.neighbours.next_kernel_read = self.neighbours.next_kernel_read.min(sooner);
            }
            Err(error) => {
                warn!(interface = %interface.linux_name, %address, %error, "cannot request neighbour resolution");
            }
        }
    }

    /// Reads next-hop MAC addresses of AF_XDP ports from the kernel; returns whether any
    /// changed.
    fn read_kernel_table(&mut self, now: Instant) -> bool {
        self.neighbours.next_kernel_read = now + KERNEL_REFRESH;
        let mut table = HashMap::new();
        for (address, mac, device) in sys::neighbours() {
            let port = self.plan.ports.iter().position(|p| p.linux_name == device);
            let Some(port) = port.and_then(|p| InterfaceId::try_from(p).ok()) else {
                continue;
            };
            if !self.neighbours.is_dpdk(port) {
                table.insert((port, address), mac);
            }
        }
        if table == self.neighbours.kernel {
            return false;
        }
        self.neighbours.kernel = table;
        true
    }
}

/// Copies `frame` into a spare buffer and queues it for the worker of `port`.
fn send_frame(control: &ControlQueues, port: InterfaceId, frame: &[u8]) {
    let Some(mut buffer) = control.spare.pop() else {
        debug!(port, "neighbour frame not sent: no spare control buffer");
        return;
    };
    buffer.clear();
    buffer.extend_from_slice(frame);
    if let Err(packet) = control.to_send.push(ControlPacket { port, frame: buffer }) {
        let _ = control.spare.push(packet.frame);
        debug!(port, "neighbour frame not sent: control transmit queue full");
    }
}
