//! Builds the topology in memory: a memory port pair for each LAN (router to host) and two
//! for each WAN link (router to wire, wire to the other router), the two routers, the wire
//! and the two hosts.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use svr_control::daemon::SuppliedPort;
use svr_dataplane::io::mem::{MemConfig, MemPort, mem_pair};

use crate::lan::{HostAddresses, Lan};
use crate::routers::Router;
use crate::topology::{R1, R2, Site, WAN_LINKS};
use crate::traffic::{Echo, Fill, Generator};
use crate::wire::{LinkEnds, Wire};

/// Sizes of every memory port pair: 2048 buffers of 2 KiB, which hold any frame of a
/// 1500-byte MTU with room for SVR's metadata, and rings of 512 frames each way.
const MEMORY: MemConfig = MemConfig { frames: 2048, frame_size: 2048, ring_size: 512 };

/// Everything the demo runs.
pub struct Lab {
    pub r1: Router,
    pub r2: Router,
    pub wire: Wire,
    pub host1: Generator,
    pub host5: Echo,
    hosts_stop: Arc<AtomicBool>,
}

impl Lab {
    /// Starts the routers of `config` with their state in `work`, the wire and the hosts.
    /// `marker` is the plaintext every datagram carries.
    pub fn start(
        config: &Path,
        work: &Path,
        key_grace: Duration,
        marker: &[u8],
    ) -> Result<Lab, String> {
        let (r1_lan, host1_port) = pair("r1 lan")?;
        let (r2_lan, host5_port) = pair("r2 lan")?;
        let (r1_wan_a, wire_r1_a) = pair("r1 wan-a")?;
        let (r2_wan_a, wire_r2_a) = pair("r2 wan-a")?;
        let (r1_wan_b, wire_r1_b) = pair("r1 wan-b")?;
        let (r2_wan_b, wire_r2_b) = pair("r2 wan-b")?;

        let waypoints: Vec<IpAddr> =
            R1.wan.iter().chain(R2.wan.iter()).map(|&address| IpAddr::V4(address)).collect();
        let links = [
            LinkEnds { towards_r1: wire_r1_a, towards_r2: wire_r2_a },
            LinkEnds { towards_r1: wire_r1_b, towards_r2: wire_r2_b },
        ];
        let wire = Wire::start(links, waypoints, marker.to_vec())
            .map_err(|e| format!("starting the wire thread: {e}"))?;

        let r1 = start_router(&R1, config, work, key_grace, r1_lan, [r1_wan_a, r1_wan_b])?;
        let r2 = start_router(&R2, config, work, key_grace, r2_lan, [r2_wan_a, r2_wan_b])?;

        let hosts_stop = Arc::new(AtomicBool::new(false));
        let fill = Fill::new(marker);
        let host5 =
            Echo::start(Lan::new(host5_port, host(&R2)), fill.clone(), Arc::clone(&hosts_stop))
                .map_err(|e| format!("starting host5's thread: {e}"))?;
        let host1 = Generator::start(
            Lan::new(host1_port, host(&R1)),
            [IpAddr::V4(R2.host_v4), IpAddr::V6(R2.host_v6)],
            fill,
            Arc::clone(&host5.counters),
            Arc::clone(&hosts_stop),
        )
        .map_err(|e| format!("starting host1's thread: {e}"))?;
        Ok(Lab { r1, r2, wire, host1, host5, hosts_stop })
    }

    /// Stops the hosts, then each router, then the wire. Returns the routers' errors.
    pub fn stop(&mut self) -> Vec<String> {
        self.hosts_stop.store(true, Ordering::Relaxed);
        self.host1.join();
        self.host5.join();
        let mut errors = Vec::new();
        for router in [&mut self.r1, &mut self.r2] {
            if let Err(error) = router.stop() {
                errors.push(format!("svrd {}: {error}", router.name));
            }
        }
        self.wire.stop();
        errors
    }
}

fn pair(name: &str) -> Result<(MemPort, MemPort), String> {
    mem_pair(&MEMORY).map_err(|e| format!("memory ports of {name}: {e}"))
}

fn start_router(
    site: &Site,
    config: &Path,
    work: &Path,
    key_grace: Duration,
    lan: MemPort,
    wans: [MemPort; 2],
) -> Result<Router, String> {
    let mut ports = vec![SuppliedPort {
        device_interface: "lan".into(),
        port: Box::new(lan),
        mac: site.lan_mac,
    }];
    for ((name, port), mac) in WAN_LINKS.iter().zip(wans).zip(site.wan_macs) {
        ports.push(SuppliedPort { device_interface: (*name).into(), port: Box::new(port), mac });
    }
    Router::start(site.router, config, work, key_grace, ports)
        .map_err(|e| format!("starting svrd {}: {e}", site.router))
}

fn host(site: &Site) -> HostAddresses {
    HostAddresses {
        mac: site.host_mac,
        v4: site.host_v4,
        v6: site.host_v6,
        gateway_v4: site.lan_v4,
        gateway_v6: site.lan_v6,
    }
}
