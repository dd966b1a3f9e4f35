//! The daemon's dataplane workers: one per configured worker core, or one unpinned worker
//! when no core is configured, started as a group over the router's ports.
//!
//! Each AF_XDP port has one queue, so one worker polls it: port `p` goes to worker
//! `p % workers`. Workers hand each packet to the worker that owns its session, and each
//! output packet to the worker that polls its port (see `svr_dataplane::group`). A worker
//! with no port of its own only processes what it is handed.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use svr_dataplane::epoch::EpochReader;
use svr_dataplane::group::{GroupConfig, GroupCounters, PortReplacer, RunningGroup, WorkerGroup};
use svr_dataplane::handoff::HandoffConfig;
use svr_dataplane::worker::{ControlQueues, Port, WorkerConfig};
use tracing::info;

use super::DaemonError;

/// The running workers and the handles the control loop keeps.
pub(super) struct Workers {
    /// Stops every worker when set.
    pub stop: Arc<AtomicBool>,
    /// Starts a payload-key rotation on every worker's ingress sessions when set.
    pub rotate: Arc<AtomicBool>,
    /// The workers' counters, summed.
    pub counters: GroupCounters,
    /// Replaces a port while the workers run.
    pub port_replacer: PortReplacer,
    /// The queues shared with the workers, of which the control loop reads the LAN next
    /// hops without a neighbour entry.
    pub control: Arc<ControlQueues>,
    pub running: RunningGroup,
}

/// Starts one worker per entry of `cores` (at least one) over `ports`, each pinned to its
/// core; `config` is what the workers share.
pub(super) fn start_workers(
    config: WorkerConfig,
    cores: &[u16],
    ports: Vec<Port>,
    reader: &EpochReader,
) -> Result<Workers, DaemonError> {
    let group_config = GroupConfig {
        worker: WorkerConfig { core: None, ..config },
        workers: cores.len().max(1),
        cores: cores.iter().map(|&core| usize::from(core)).collect(),
        handoff: HandoffConfig::default(),
        port_owners: None,
    };
    let port_count = ports.len();
    let control = Arc::new(
        ControlQueues::with_doorbell(64, 2048)
            .map_err(|e| DaemonError::Dataplane(e.to_string()))?,
    );
    let group = WorkerGroup::new(&group_config, ports, reader, &control)
        .map_err(|e| DaemonError::Dataplane(e.to_string()))?;
    let (stop, rotate, counters) = (group.stop_flag(), group.rotation_flag(), group.counters());
    let port_replacer = group.port_replacer();
    let running = group.spawn().map_err(|e| DaemonError::Dataplane(e.to_string()))?;
    info!(workers = group_config.workers, ports = port_count, "dataplane workers started");
    Ok(Workers { stop, rotate, counters, port_replacer, control, running })
}
