//! The DPDK legs, on `net_ring` virtual devices. EAL starts once for the process, with no
//! hugepages and no PCI scan. The forwarding pipeline has every router port on a ring
//! loopback (see [`crate::pipeline::Wiring::Loopback`]), and the load generator has a
//! ring loopback port of its own.

use std::time::Duration;

use svr_dataplane::io::dpdk::{DpdkPort, DpdkPortConfig, Eal, EalConfig};

use crate::forward::{Options as ForwardOptions, Row, measure_leg};
use crate::generator::{Generator, SizeMix};
use crate::loadgen::{LoadConfig, LoadResult, run_load};
use crate::pipeline::{Pipeline, Wiring, boxed};
use crate::topology::{FORWARD, Router, router_worker};

/// Ring devices: r1 LAN, r1 WAN, r2 WAN, r2 LAN, and the load generator's loopback.
const VDEVS: [&str; 5] = ["net_ring0", "net_ring1", "net_ring2", "net_ring3", "net_ring4"];

/// EAL's runtime directory for this process, removed on drop.
struct RuntimeDir(String);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.0));
    }
}

/// Starts EAL on the last core with every ring device.
fn eal() -> Result<(Eal, RuntimeDir), String> {
    crate::netns::require_root()?;
    let prefix = format!("svrb-dpdk-{}", std::process::id());
    let last = crate::cores().last().map_or(0, |core| u16::try_from(core.id).unwrap_or(0));
    let config = EalConfig {
        cores: vec![last],
        file_prefix: Some(prefix.clone()),
        ..EalConfig::virtual_devices(VDEVS.iter().map(|name| (*name).to_owned()).collect())
    };
    let eal = Eal::init(&config).map_err(|e| format!("DPDK EAL: {e}"))?;
    Ok((eal, RuntimeDir(prefix)))
}

fn open(eal: Eal, name: &str) -> Result<DpdkPort, String> {
    DpdkPort::open(eal, &DpdkPortConfig::new(name)).map_err(|e| format!("open {name}: {e}"))
}

/// Measures forwarding over ring ports, one row per frame size. All sizes go through one
/// pair of routers, so the sessions carry over from size to size.
pub fn forward_legs(
    options: &ForwardOptions,
    run_time: Duration,
    runs: usize,
) -> Result<Vec<Row>, String> {
    let (eal, _dir) = eal()?;
    let sessions = usize::from(options.flows).max(16) * 2;
    let mut pipeline = Pipeline {
        r1: router_worker(
            Router::Ingress,
            boxed(open(eal, VDEVS[0])?),
            boxed(open(eal, VDEVS[1])?),
            sessions,
        ),
        r2: router_worker(
            Router::Egress,
            boxed(open(eal, VDEVS[3])?),
            boxed(open(eal, VDEVS[2])?),
            sessions,
        ),
        wiring: Wiring::Loopback,
    };
    options
        .sizes
        .iter()
        .map(|&size| measure_leg("dpdk", &mut pipeline, size, options.flows, run_time, runs))
        .collect()
}

/// Runs the load generator on a ring loopback port, which measures its own rate over
/// DPDK.
pub fn loadgen(flows: u16, mix: SizeMix, config: &LoadConfig) -> Result<LoadResult, String> {
    let (eal, _dir) = eal()?;
    let mut port = open(eal, VDEVS[4])?;
    let mut generator = Generator::new(&FORWARD, flows, mix);
    Ok(run_load(&mut port, None, &mut generator, config))
}
