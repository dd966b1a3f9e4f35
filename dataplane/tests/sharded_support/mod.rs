//! Two routers on memory ports, each run by a group of workers, for the tests of
//! sharded workers.
//!
//! ```text
//!  host1 ── lan ── r1 ── wan ── (relay) ── wan ── r2 ── lan ── host5
//! ```

#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use svr_dataplane::epoch::{EpochPublisher, KeyEpoch, epoch_channel};
use svr_dataplane::forward::{EngineConfig, FiveTuple};
use svr_dataplane::group::{GroupConfig, WorkerGroup};
use svr_dataplane::handoff::HandoffConfig;
use svr_dataplane::io::mem::{MemConfig, MemPort, mem_pair};
use svr_dataplane::shard::flow_class;
use svr_dataplane::worker::{ControlQueues, Polling, Port, WorkerConfig};

use crate::engine_support::*;

/// Which worker polls which port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The LAN port on worker 0 and the WAN port on worker 1.
    Split,
    /// Both ports on worker 0; worker 1 only processes what is handed to it.
    FirstPolls,
}

/// Every configuration the packet path runs in: the worker counts of r1 and r2, and the
/// port layout. Routers with different counts check that the waypoint port carries the
/// flow class from one router to the other.
pub const SETUPS: [((usize, usize), Layout); 5] = [
    ((1, 1), Layout::Split),
    ((2, 2), Layout::Split),
    ((2, 2), Layout::FirstPolls),
    ((2, 3), Layout::Split),
    ((3, 2), Layout::FirstPolls),
];

pub struct Router {
    pub group: WorkerGroup,
    _epoch: EpochPublisher,
    pub control: Arc<ControlQueues>,
}

pub fn router(
    epoch: KeyEpoch,
    lan: MemPort,
    wan: MemPort,
    workers: usize,
    layout: Layout,
    handoff: HandoffConfig,
    polling: Polling,
) -> Router {
    let (publisher, reader) = epoch_channel(epoch);
    let control = Arc::new(ControlQueues::new(16, 2048));
    let config = GroupConfig {
        worker: WorkerConfig {
            engine: EngineConfig {
                sessions: 1024,
                rotation_grace: GRACE,
                idle_timeout: Duration::from_secs(60),
                ..EngineConfig::default()
            },
            polling,
            core: None,
            sweep_budget: 16,
        },
        workers,
        cores: vec![],
        handoff,
        port_owners: match (workers, layout) {
            (1, _) => None,
            (_, Layout::Split) => Some(vec![0, 1]),
            (_, Layout::FirstPolls) => Some(vec![0, 0]),
        },
    };
    let ports: Vec<Port> = vec![Box::new(lan), Box::new(wan)];
    let group = WorkerGroup::new(&config, ports, &reader, &control).unwrap();
    Router { group, _epoch: publisher, control }
}

pub struct ShardNet {
    pub r1: Router,
    pub r2: Router,
    pub host1: MemPort,
    pub host5: MemPort,
    pub wire1: MemPort,
    pub wire2: MemPort,
    pub now: Instant,
}

impl ShardNet {
    pub fn new(workers: (usize, usize), layout: Layout) -> ShardNet {
        ShardNet::with(workers, layout, HandoffConfig::default(), default_polling())
    }

    pub fn with(
        workers: (usize, usize),
        layout: Layout,
        handoff: HandoffConfig,
        polling: Polling,
    ) -> ShardNet {
        let config = MemConfig { frames: 4096, frame_size: 2048, ring_size: 1024 };
        let (host1, r1_lan) = mem_pair(&config).unwrap();
        let (r1_wan, wire1) = mem_pair(&config).unwrap();
        let (wire2, r2_wan) = mem_pair(&config).unwrap();
        let (r2_lan, host5) = mem_pair(&config).unwrap();
        let epoch1 = router_epoch("r1", true);
        let epoch2 = router_epoch("r2", false);
        ShardNet {
            r1: router(epoch1, r1_lan, r1_wan, workers.0, layout, handoff, polling),
            r2: router(epoch2, r2_lan, r2_wan, workers.1, layout, handoff, polling),
            host1,
            host5,
            wire1,
            wire2,
            now: Instant::now(),
        }
    }

    /// Runs both routers and relays WAN frames until a whole round moves nothing.
    pub fn run(&mut self) {
        for _ in 0..200 {
            let mut moved = self.r1.group.poll_once(self.now);
            moved += relay(&mut self.wire1, &mut self.wire2);
            moved += self.r2.group.poll_once(self.now);
            moved += relay(&mut self.wire2, &mut self.wire1);
            if moved == 0 {
                return;
            }
        }
        panic!("network did not settle");
    }

    pub fn sessions(router: &mut Router) -> Vec<Vec<FiveTuple>> {
        router
            .group
            .workers()
            .iter_mut()
            .map(|worker| {
                let table = worker.engine().sessions();
                table.ids().map(|id| table.get(id).unwrap().original).collect()
            })
            .collect()
    }
}

pub fn default_polling() -> Polling {
    Polling::Adaptive { empty_polls: 8, sleep: Duration::from_millis(1) }
}

pub fn relay(from: &mut MemPort, to: &mut MemPort) -> usize {
    let frames = Net::receive(from);
    for frame in &frames {
        Net::send(to, frame);
    }
    frames.len()
}

pub fn flow(i: u16) -> (u16, u16) {
    (40000 + i, 5201)
}

/// Returns the source port of a restored UDP frame over IPv4.
pub fn source_port(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[34], frame[35]])
}

pub fn destination_port(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[36], frame[37]])
}

/// Returns the first `count` client ports of flows from host1 to host5 (UDP, server port
/// 5201) whose flow class worker `worker` of `workers` owns.
pub fn flows_of_worker(worker: usize, workers: usize, count: usize) -> Vec<(u16, u16)> {
    (0..4000u16)
        .map(flow)
        .filter(|ports| {
            let tuple = FiveTuple {
                source: HOST1.into(),
                destination: HOST5.into(),
                source_port: ports.0,
                destination_port: ports.1,
                protocol: 17,
            };
            flow_class(&tuple) % workers == worker
        })
        .take(count)
        .collect()
}
