//! A router's workers as one unit: builds the hand-off mesh between them, gives each its
//! ports, and starts, stops and counts them together.
//!
//! Each port is polled by exactly one worker, because a backend queue (an AF_XDP socket or
//! a DPDK queue) has a single consumer and a single producer. By default port `p` goes to
//! worker `p % workers` ([`round_robin_owners`]), which spreads receive and transmit work
//! when there are at least as many ports as workers. Workers without ports still take part:
//! they own their flow classes and process what the others hand them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::counters::{DropReason, PortCounters, SharedCounters};
use crate::epoch::EpochReader;
use crate::epoch::InterfaceId;
use crate::handoff::{HandoffConfig, Mesh, MeshError};
use crate::worker::{ControlQueues, Port, PortSwaps, Worker, WorkerConfig};

/// Settings of a group of workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// Settings every worker shares; the engine's worker index and count, and the core, are
    /// set per worker.
    pub worker: WorkerConfig,
    /// Number of workers, at least 1.
    pub workers: usize,
    /// Core of each worker, by index; workers past the end are not pinned.
    pub cores: Vec<usize>,
    /// Sizes of the hand-off rings between workers.
    pub handoff: HandoffConfig,
    /// The worker that polls each port, by interface id; `None` for
    /// [`round_robin_owners`].
    pub port_owners: Option<Vec<usize>>,
}

/// Returns the default port assignment: port `p` to worker `p % workers`.
pub fn round_robin_owners(ports: usize, workers: usize) -> Vec<usize> {
    (0..ports).map(|port| port % workers.max(1)).collect()
}

/// A router's workers, not yet started.
#[derive(Debug)]
pub struct WorkerGroup {
    workers: Vec<Worker>,
    stop: Arc<AtomicBool>,
    rotate: Arc<AtomicBool>,
    counters: GroupCounters,
    replacer: PortReplacer,
}

/// Hands a replacement port to the worker that polls the port it replaces, for an
/// interface that was deleted and created again while the workers run.
#[derive(Debug, Clone)]
pub struct PortReplacer {
    /// The worker that polls each port, by interface id.
    owners: Vec<usize>,
    /// Each worker's replacement queue, by worker index.
    queues: Vec<Arc<PortSwaps>>,
}

impl PortReplacer {
    /// Queues `port` to take over interface `id` at its worker's next poll. Returns the
    /// port when `id` is not a port of the group or the worker's queue is full.
    pub fn replace(&self, id: InterfaceId, port: Port) -> Result<(), Port> {
        let Some(queue) = self.owners.get(usize::from(id)).and_then(|w| self.queues.get(*w)) else {
            return Err(port);
        };
        queue.push((id, port)).map_err(|(_, port)| port)
    }
}

impl WorkerGroup {
    /// Builds `config.workers` workers over `ports`, indexed as the epoch's interfaces are.
    ///
    /// One worker gets every port and no hand-off ring, exactly as [`Worker::new`]. Every
    /// worker reads the epochs of `reader` and shares `control`.
    pub fn new(
        config: &GroupConfig,
        ports: Vec<Port>,
        reader: &EpochReader,
        control: &Arc<ControlQueues>,
    ) -> Result<WorkerGroup, MeshError> {
        let count = config.workers;
        let owners =
            config.port_owners.clone().unwrap_or_else(|| round_robin_owners(ports.len(), count));
        let mesh = Arc::new(Mesh::new(count, owners.clone(), &config.handoff)?);

        let mut by_worker: Vec<Vec<Option<Port>>> =
            (0..count).map(|_| (0..ports.len()).map(|_| None).collect()).collect();
        for (index, port) in ports.into_iter().enumerate() {
            // `Mesh::new` checked every owner against the worker count.
            if let Some(slot) = owners.get(index).and_then(|w| by_worker.get_mut(*w)) {
                slot[index] = Some(port);
            }
        }

        let mut workers: Vec<Worker> = by_worker
            .into_iter()
            .enumerate()
            .map(|(index, ports)| {
                let worker_config =
                    WorkerConfig { core: config.cores.get(index).copied(), ..config.worker };
                if count == 1 {
                    let ports = ports.into_iter().flatten().collect();
                    return Worker::new(worker_config, ports, reader.clone(), Arc::clone(control));
                }
                let (mesh, reader, control) = (Arc::clone(&mesh), reader.clone(), control);
                Worker::in_group(worker_config, ports, reader, Arc::clone(control), mesh, index)
            })
            .collect();

        let stop = Arc::new(AtomicBool::new(false));
        for worker in &mut workers {
            worker.share_stop_flag(Arc::clone(&stop));
        }
        let followers = workers.iter().skip(1).map(Worker::rotation_flag).collect();
        let rotate = workers.first().map(Worker::rotation_flag).unwrap_or_default();
        if let Some(first) = workers.first_mut() {
            first.set_rotation_followers(followers);
        }
        let counters =
            GroupCounters { workers: workers.iter().map(Worker::shared_counters).collect() };
        let replacer =
            PortReplacer { owners, queues: workers.iter().map(Worker::port_swaps).collect() };
        Ok(WorkerGroup { workers, stop, rotate, counters, replacer })
    }

    /// The workers, by index.
    pub fn workers(&mut self) -> &mut [Worker] {
        &mut self.workers
    }

    /// Takes the workers out of the group, by index, to run them separately; the stop and
    /// rotation flags keep working.
    pub fn into_workers(self) -> Vec<Worker> {
        self.workers
    }

    /// The flag that stops every worker when set.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// The flag that starts a payload-key rotation on every ingress session of every
    /// worker: the first worker clears it and passes it on to the others.
    pub fn rotation_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.rotate)
    }

    /// The handle that replaces a port while the workers run.
    pub fn port_replacer(&self) -> PortReplacer {
        self.replacer.clone()
    }

    /// The sum of the workers' counters, readable from other threads.
    pub fn counters(&self) -> GroupCounters {
        self.counters.clone()
    }

    /// Polls every worker once, in index order, on the current thread; returns how many
    /// frames they received in all. For tests and benchmarks that step the workers.
    pub fn poll_once(&mut self, now: Instant) -> usize {
        self.workers.iter_mut().map(|worker| worker.poll_once(now)).sum()
    }

    /// Starts each worker on its own thread.
    pub fn spawn(self) -> std::io::Result<RunningGroup> {
        let mut threads = Vec::with_capacity(self.workers.len());
        for worker in self.workers {
            match worker.spawn() {
                Ok(thread) => threads.push(thread),
                Err(error) => {
                    // Stop the workers already running before reporting the failure.
                    self.stop.store(true, Ordering::Relaxed);
                    for thread in threads {
                        let _ = thread.join();
                    }
                    return Err(error);
                }
            }
        }
        Ok(RunningGroup { threads, stop: self.stop })
    }
}

/// A group of workers running on their own threads.
#[derive(Debug)]
pub struct RunningGroup {
    threads: Vec<JoinHandle<Worker>>,
    stop: Arc<AtomicBool>,
}

impl RunningGroup {
    /// Stops every worker and waits for its thread; returns the workers that did not
    /// panic, by index.
    pub fn join(self) -> Vec<Worker> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().filter_map(|thread| thread.join().ok()).collect()
    }
}

/// The counters of a group's workers, summed when read.
#[derive(Debug, Clone)]
pub struct GroupCounters {
    workers: Vec<Arc<SharedCounters>>,
}

impl GroupCounters {
    fn sum(&self, read: impl Fn(&SharedCounters) -> u64) -> u64 {
        self.workers.iter().map(|counters| read(counters)).sum()
    }

    /// Drops counted for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.sum(|c| c.drops(reason))
    }

    /// Drops for key-related reasons.
    pub fn key_drops(&self) -> u64 {
        DropReason::ALL.iter().filter(|r| r.is_key_related()).map(|r| self.drops(*r)).sum()
    }

    /// LAN packets sent to a peer.
    pub fn ingress_forwarded(&self) -> u64 {
        self.sum(SharedCounters::ingress_forwarded)
    }

    /// WAN packets restored onto a LAN.
    pub fn egress_forwarded(&self) -> u64 {
        self.sum(SharedCounters::egress_forwarded)
    }

    /// WAN packets forwarded on to another peer.
    pub fn transit_forwarded(&self) -> u64 {
        self.sum(SharedCounters::transit_forwarded)
    }

    /// Control packets punted.
    pub fn punted(&self) -> u64 {
        self.sum(SharedCounters::punted)
    }

    /// Sessions created.
    pub fn sessions_created(&self) -> u64 {
        self.sum(SharedCounters::sessions_created)
    }

    /// Payload-key rotations started.
    pub fn rotations_started(&self) -> u64 {
        self.sum(SharedCounters::rotations_started)
    }

    /// Switches to a next payload key.
    pub fn key_switches(&self) -> u64 {
        self.sum(SharedCounters::key_switches)
    }

    /// Tombstones forgotten because their set was full.
    pub fn tombstones_forgotten(&self) -> u64 {
        self.sum(SharedCounters::tombstones_forgotten)
    }

    /// Received and sent frames of `port`.
    pub fn port(&self, port: usize) -> PortCounters {
        self.workers.iter().map(|counters| counters.port(port)).fold(
            PortCounters::default(),
            |total, one| PortCounters { rx: total.rx + one.rx, tx: total.tx + one.tx },
        )
    }
}
