//! The poll-mode worker: one thread per worker, optionally pinned to a core, that polls
//! bursts from its ports, runs each burst through its [`Engine`] and sends the results.
//!
//! While busy the loop takes no lock, makes no system call of its own and allocates
//! nothing per packet: frames come from the ports' pools, bursts are preallocated, and
//! control packets and hand-offs travel in recycled buffers over lock-free queues. The
//! backends' own transmit kicks, and doorbell writes towards a sleeping worker, are the
//! only system calls. In `adaptive` mode an idle worker sleeps on its ports' wakeups after
//! a number of empty polls.
//!
//! A router may run several workers ([`crate::group`]). Each then polls its own subset of
//! the ports and owns the sessions of its flow classes ([`crate::shard`]). A received packet
//! whose session another worker owns is handed to that worker, and a packet to send on a
//! port another worker polls is handed to the port's worker, over the rings of
//! [`crate::handoff`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tracing::{debug, warn};

use crate::counters::{DropReason, SharedCounters};
use crate::epoch::{EpochReader, InterfaceId, InterfaceRole, KeyEpoch};
use crate::forward::{
    Engine, EngineConfig, FrameSource, is_control_packet, is_neighbour_discovery,
};
use crate::handoff::{Doorbell, Handoff, HandoffKind, Mesh, is_handoff_frame};
use crate::io::{Burst, Frame, MAX_BURST, PacketIo};
use crate::shard::{Side, frame_owner};

/// How a worker waits for packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polling {
    /// Spin on the ports without pause, for a dedicated core.
    Busy,
    /// Spin while traffic flows; after `empty_polls` passes that found nothing, sleep on a
    /// port's wakeup for at most `sleep`.
    Adaptive { empty_polls: u32, sleep: Duration },
}

/// Settings of one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The packet engine's settings.
    pub engine: EngineConfig,
    /// How to wait for packets.
    pub polling: Polling,
    /// The core to pin the thread to, or none.
    pub core: Option<usize>,
    /// Session slots the idle sweep visits per pass. A worker runs one pass per
    /// [`SWEEP_PERIOD`] of the clock given to [`Worker::poll_once`].
    pub sweep_budget: usize,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            engine: EngineConfig::default(),
            polling: Polling::Adaptive { empty_polls: 64, sleep: Duration::from_millis(1) },
            core: None,
            sweep_budget: 1024,
        }
    }
}

/// A control packet between a worker and the control thread: a whole Ethernet frame and
/// the port it came from or goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPacket {
    pub port: InterfaceId,
    pub frame: Vec<u8>,
}

/// The lock-free queues between workers and the control thread: received control packets
/// (BFD, and ARP and neighbour discovery), control packets to send, and spare buffers that
/// both sides recycle so that neither allocates per packet.
#[derive(Debug)]
pub struct ControlQueues {
    /// BFD packets received on WAN ports, for the BFD thread.
    pub punted: ArrayQueue<ControlPacket>,
    /// ARP packets and IPv6 neighbour solicitations and advertisements received on any
    /// port, for the control thread. Only ports without a kernel stack deliver them: the
    /// AF_XDP filter leaves them to the kernel.
    pub discovery: ArrayQueue<ControlPacket>,
    /// Control packets the control thread wants sent.
    pub to_send: ArrayQueue<ControlPacket>,
    /// Empty buffers for `punted` and `to_send`; take one to build a packet and return it
    /// when done.
    pub spare: ArrayQueue<Vec<u8>>,
    /// Empty buffers for `discovery` alone, so that a flood of ARP or neighbour discovery
    /// can never take the buffers BFD needs.
    pub discovery_spare: ArrayQueue<Vec<u8>>,
    /// LAN next hops that had no neighbour entry, with their port, for the control thread
    /// to have resolved. Entries that find the queue full are dropped.
    pub unresolved: ArrayQueue<(InterfaceId, std::net::IpAddr)>,
    /// Security IDs whose tombstones in some worker passed their high-water mark, for the
    /// control thread to rotate the metadata key. Each worker sends each Security ID once,
    /// and offers one that finds the queue full again at its next poll.
    pub rotation_requests: ArrayQueue<u32>,
    /// Rung by a worker after it queued packets on `punted`, so that a BFD thread asleep
    /// on [`Doorbell::fd`] wakes up; `None` when the queues were made without one.
    pub punt_bell: Option<Doorbell>,
}

impl ControlQueues {
    /// Queues of `depth` packets each, with `depth` spare buffers of `frame_size` bytes and
    /// no doorbell.
    pub fn new(depth: usize, frame_size: usize) -> ControlQueues {
        let spare = ArrayQueue::new(depth.max(1) * 2);
        let discovery_spare = ArrayQueue::new(depth.max(1));
        for _ in 0..depth {
            let _ = spare.push(Vec::with_capacity(frame_size));
            let _ = discovery_spare.push(Vec::with_capacity(frame_size));
        }
        ControlQueues {
            punted: ArrayQueue::new(depth.max(1)),
            discovery: ArrayQueue::new(depth.max(1)),
            to_send: ArrayQueue::new(depth.max(1)),
            unresolved: ArrayQueue::new(depth.max(1)),
            rotation_requests: ArrayQueue::new(depth.max(1)),
            spare,
            discovery_spare,
            punt_bell: None,
        }
    }

    /// Queues as [`ControlQueues::new`] makes them, with a doorbell for punted packets.
    pub fn with_doorbell(depth: usize, frame_size: usize) -> std::io::Result<ControlQueues> {
        Ok(ControlQueues {
            punt_bell: Some(Doorbell::new()?),
            ..ControlQueues::new(depth, frame_size)
        })
    }
}

/// Capacity of a worker's replacement-port queue.
const PORT_SWAP_DEPTH: usize = 8;

/// Interval between a worker's sweeps of its session table for idle sessions. With the
/// default budget of 1024 slots a pass, a busy worker visits about a million slots a
/// second.
pub const SWEEP_PERIOD: Duration = Duration::from_millis(1);

/// A port a worker polls.
pub type Port = Box<dyn PacketIo + Send>;

/// Replacement ports for a worker, each with the interface id it takes over: the control
/// thread pushes one when a port's interface was deleted and created again, and the worker
/// installs it at the start of its next poll.
pub type PortSwaps = ArrayQueue<(InterfaceId, Port)>;

/// One poll-mode worker and its ports.
pub struct Worker {
    config: WorkerConfig,
    engine: Engine,
    ports: PortSet,
    rx: Burst,
    /// The received frames of one port that the engine processes together.
    work: Burst,
    reader: EpochReader,
    control: Arc<ControlQueues>,
    stop: Arc<AtomicBool>,
    rotate: Arc<AtomicBool>,
    shared: Arc<SharedCounters>,
    shard: Option<ShardLink>,
    swaps: Arc<PortSwaps>,
    empty_polls: u32,
    next_wait: usize,
    /// When the next idle sweep is due; `None` before the first poll.
    next_sweep: Option<Instant>,
}

/// The ports of a worker by interface id, with one transmit burst each. A worker in a
/// group has `None` for the ports other workers poll.
struct PortSet {
    ports: Vec<Option<Port>>,
    tx: Vec<Burst>,
}

/// A worker's place in a group of workers.
struct ShardLink {
    /// This worker's index in the group.
    index: usize,
    mesh: Arc<Mesh>,
    /// Workers to ring at the end of the pass because something was handed to them.
    wake: Vec<bool>,
    /// The other workers' rotation flags, which this worker sets when its own is set.
    followers: Vec<Arc<AtomicBool>>,
}

impl Worker {
    /// A worker over `ports`, indexed as the epoch's interfaces are, that owns every
    /// session of the router.
    pub fn new(
        config: WorkerConfig,
        ports: Vec<Port>,
        reader: EpochReader,
        control: Arc<ControlQueues>,
    ) -> Worker {
        Worker::build(config, ports.into_iter().map(Some).collect(), reader, control, None)
    }

    /// Worker `index` of the group that `mesh` links. It polls the ports given as `Some`
    /// (indexed as the epoch's interfaces are) and owns the sessions of its flow classes.
    /// The engine's worker index and count are taken from `index` and the mesh.
    pub fn in_group(
        mut config: WorkerConfig,
        ports: Vec<Option<Port>>,
        reader: EpochReader,
        control: Arc<ControlQueues>,
        mesh: Arc<Mesh>,
        index: usize,
    ) -> Worker {
        config.engine.worker = index;
        config.engine.workers = mesh.workers();
        let link = ShardLink { index, wake: vec![false; mesh.workers()], mesh, followers: vec![] };
        Worker::build(config, ports, reader, control, Some(link))
    }

    fn build(
        config: WorkerConfig,
        ports: Vec<Option<Port>>,
        reader: EpochReader,
        control: Arc<ControlQueues>,
        shard: Option<ShardLink>,
    ) -> Worker {
        let count = ports.len();
        Worker {
            engine: Engine::new(config.engine, count),
            ports: PortSet { ports, tx: (0..count).map(|_| Burst::new()).collect() },
            rx: Burst::new(),
            work: Burst::new(),
            reader,
            control,
            stop: Arc::new(AtomicBool::new(false)),
            rotate: Arc::new(AtomicBool::new(false)),
            shared: Arc::new(SharedCounters::new(count)),
            shard,
            swaps: Arc::new(ArrayQueue::new(PORT_SWAP_DEPTH)),
            empty_polls: 0,
            next_wait: 0,
            next_sweep: None,
            config,
        }
    }

    /// The flag that ends [`run`](Self::run) when set.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// The flag that makes the worker start a payload-key rotation on every ingress
    /// session at its next poll; the worker clears it.
    pub fn rotation_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.rotate)
    }

    /// Counters other threads may read while the worker runs.
    pub fn shared_counters(&self) -> Arc<SharedCounters> {
        Arc::clone(&self.shared)
    }

    /// The queue through which other threads replace this worker's ports.
    pub fn port_swaps(&self) -> Arc<PortSwaps> {
        Arc::clone(&self.swaps)
    }

    /// The packet engine.
    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// A port this worker polls.
    pub fn port(&mut self, port: InterfaceId) -> Option<&mut Port> {
        self.ports.get_mut(port)
    }

    /// This worker's index in its group; 0 for a worker on its own.
    pub fn index(&self) -> usize {
        self.shard.as_ref().map_or(0, |link| link.index)
    }

    /// Makes the worker stop on `stop` instead of its own flag, so that a group stops
    /// together.
    pub(crate) fn share_stop_flag(&mut self, stop: Arc<AtomicBool>) {
        self.stop = stop;
    }

    /// Makes the worker pass rotation requests on to the workers whose flags these are.
    pub(crate) fn set_rotation_followers(&mut self, followers: Vec<Arc<AtomicBool>>) {
        if let Some(link) = self.shard.as_mut() {
            link.followers = followers;
        }
    }

    /// Polls once: takes the packets other workers handed over, receives a burst from
    /// each port, processes what this worker owns, hands on what it does not, and sends
    /// what it produced and the queued control packets. Returns how many frames were
    /// received from ports or other workers.
    pub fn poll_once(&mut self, now: Instant) -> usize {
        self.check_rotation(now);
        if !self.swaps.is_empty() {
            self.install_port_swaps();
        }
        let epoch = self.reader.pin();
        let Worker { engine, ports, rx, work, control, shard, .. } = self;
        let mut received = receive_handoffs(engine, &epoch, now, ports, work, shard.as_mut());
        let mut punted = false;

        for index in 0..ports.ports.len() {
            let port = index as InterfaceId;
            let Some(io) = ports.get_mut(port) else {
                continue;
            };
            let count = match io.rx_burst(rx) {
                Ok(count) => count,
                Err(error) => {
                    warn!(port, %error, "receive failed");
                    0
                }
            };
            if count == 0 {
                continue;
            }
            received += count;
            engine.counters_mut().port_rx(index, count);
            let side = match epoch.interfaces.get(index).map(|i| i.role) {
                Some(InterfaceRole::Wan) => Some(Side::Wan),
                Some(InterfaceRole::Lan { .. }) => Some(Side::Lan),
                None => None,
            };

            for frame in rx.drain() {
                if side == Some(Side::Wan) && is_control_packet(frame.data()) {
                    punted |= punt(engine, &control.punted, &control.spare, port, &frame);
                    ports.free(port, frame);
                    continue;
                }
                if is_neighbour_discovery(frame.data()) {
                    punt(engine, &control.discovery, &control.discovery_spare, port, &frame);
                    ports.free(port, frame);
                    continue;
                }
                if let (Some(link), Some(side)) = (shard.as_mut(), side)
                    && let Some(owner) = frame_owner(side, frame.data(), link.mesh.workers())
                    && owner != link.index
                {
                    hand_off(engine, link, owner, HandoffKind::Process, port, frame.data());
                    ports.free(port, frame);
                    continue;
                }
                if let Err(mut frame) = work.push(frame) {
                    // Not reached: both bursts hold MAX_BURST frames.
                    run_engine(engine, &epoch, now, port, &mut frame, ports, shard.as_mut());
                    ports.free(port, frame);
                }
            }
            run_burst(engine, &epoch, now, port, work, ports, shard.as_mut());
        }

        if punted && let Some(bell) = &control.punt_bell {
            bell.ring();
        }
        send_control(engine, ports, control, shard.as_mut());
        for hop in engine.drain_unresolved() {
            let _ = control.unresolved.push(hop);
        }
        engine.send_rotation_requests(|security_id| {
            control.rotation_requests.push(security_id).is_ok()
        });
        ports.flush_all(engine);
        if let Some(link) = shard.as_mut() {
            link.ring_doorbells();
        }
        engine.drop_retired_tombstones(&epoch);
        drop(epoch);

        // The idle sweep runs on a clock, not on every pass: a busy worker polls about a
        // million times a second, and idle timeouts are counted in seconds.
        if self.next_sweep.is_none_or(|due| now >= due) {
            engine.expire(now, self.config.sweep_budget);
            self.next_sweep = Some(now + SWEEP_PERIOD);
        }
        self.shared.store(engine.counters());
        received
    }

    /// Runs the poll loop on the current thread until the stop flag is set.
    pub fn run(&mut self) {
        debug!(worker = self.config.engine.worker, "worker started");
        while !self.stop.load(Ordering::Relaxed) {
            let received = self.poll_once(Instant::now());
            if received > 0 {
                self.empty_polls = 0;
                continue;
            }
            self.idle();
        }
        debug!(worker = self.config.engine.worker, "worker stopped");
    }

    /// Starts the poll loop on a new thread, pinned when a core is configured; the thread
    /// returns the worker when stopped. The thread logs inside the caller's current span,
    /// so a process that runs several routers can tell their workers apart.
    pub fn spawn(mut self) -> std::io::Result<JoinHandle<Worker>> {
        let name = format!("svr-worker-{}", self.config.engine.worker);
        let span = tracing::Span::current();
        std::thread::Builder::new().name(name).spawn(move || {
            let _entered = span.enter();
            if let Some(core) = self.config.core
                && !core_affinity::set_for_current(core_affinity::CoreId { id: core })
            {
                warn!(core, "failed to pin worker to core");
            }
            self.run();
            self
        })
    }

    /// Installs the queued replacement ports. A port's transmit burst is returned to the old
    /// port's pool first, because its frames belong to that pool; the old port closes when
    /// dropped here.
    fn install_port_swaps(&mut self) {
        while let Some((id, port)) = self.swaps.pop() {
            let index = usize::from(id);
            let Some(slot) = self.ports.ports.get_mut(index) else {
                warn!(port = index, "replacement for an unknown port dropped");
                continue;
            };
            if let (Some(old), Some(burst)) = (slot.as_mut(), self.ports.tx.get_mut(index)) {
                old.free_burst(burst);
            }
            *slot = Some(port);
            debug!(worker = self.config.engine.worker, port = index, "port replaced");
        }
    }

    /// Starts a rotation on this worker's sessions when requested, and passes the request
    /// on to the followers.
    fn check_rotation(&mut self, now: Instant) {
        if !self.rotate.swap(false, Ordering::Relaxed) {
            return;
        }
        if let Some(link) = &self.shard {
            for follower in &link.followers {
                follower.store(true, Ordering::Relaxed);
            }
        }
        let started = self.engine.rotate_all(now);
        debug!(worker = self.config.engine.worker, started, "payload key rotations requested");
    }

    fn idle(&mut self) {
        let Polling::Adaptive { empty_polls, sleep } = self.config.polling else {
            std::hint::spin_loop();
            return;
        };
        self.empty_polls = self.empty_polls.saturating_add(1);
        if self.empty_polls < empty_polls {
            std::hint::spin_loop();
            return;
        }
        if let Some(link) = &self.shard {
            let Some(bell) = link.mesh.doorbell(link.index) else {
                return;
            };
            bell.prepare_sleep();
            // A hand-off pushed before the flag was visible is seen here; one pushed after
            // it rings the doorbell.
            if link.mesh.has_pending(link.index) {
                bell.wake_up();
                return;
            }
        }
        self.sleep(sleep);
        if let Some(bell) = self.shard.as_ref().and_then(|link| link.mesh.doorbell(link.index)) {
            bell.wake_up();
        }
    }

    /// Sleeps until a port or the doorbell turns readable, or `timeout` passes.
    fn sleep(&mut self, timeout: Duration) {
        if self.wait_all(timeout) {
            return;
        }
        let local: Vec<usize> =
            (0..self.ports.ports.len()).filter(|i| self.ports.ports[*i].is_some()).collect();
        if local.is_empty() {
            std::thread::sleep(timeout);
            return;
        }
        // Some port has no descriptor, so sleep on one port at a time, in turn, to use
        // every port's wakeup. The timeout bounds how late traffic on the others is seen.
        // NOTE: packets handed to a worker sleeping here wait for the timeout, because
        // these ports' wakeups and the doorbell cannot be waited on together.
        let index = local[self.next_wait % local.len()];
        self.next_wait = self.next_wait.wrapping_add(1);
        if let Some(port) = self.ports.ports[index].as_mut()
            && let Err(error) = port.wait_readable(timeout)
        {
            warn!(port = index, %error, "wait for packets failed");
            std::thread::sleep(timeout);
        }
    }

    /// Sleeps until any port or the doorbell turns readable or `timeout` passes. Returns
    /// false without waiting when some port has no readiness descriptor or there is
    /// nothing to wait on.
    fn wait_all(&mut self, timeout: Duration) -> bool {
        // A zero-timeout check of each port first: it also flushes transmits the kernel
        // has not been told about yet, which the sleep must not hold back.
        for port in self.ports.ports.iter_mut().flatten() {
            if matches!(port.wait_readable(Duration::ZERO), Ok(true)) {
                return true;
            }
        }
        let fds: Option<Vec<_>> =
            self.ports.ports.iter().flatten().map(|port| port.readiness_fd()).collect();
        let Some(mut fds) = fds else {
            return false;
        };
        if let Some(bell) = self.shard.as_ref().and_then(|link| link.mesh.doorbell(link.index)) {
            fds.push(bell.fd());
        }
        if fds.is_empty() {
            return false;
        }
        let mut polls: Vec<PollFd<'_>> =
            fds.into_iter().map(|fd| PollFd::new(fd, PollFlags::POLLIN)).collect();
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        if let Err(error) = poll(&mut polls, timeout)
            && error != nix::errno::Errno::EINTR
        {
            warn!(%error, "wait for packets on all ports failed");
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }
}

impl ShardLink {
    /// Rings the doorbell of each worker something was handed to during the pass.
    fn ring_doorbells(&mut self) {
        for (worker, wake) in self.wake.iter_mut().enumerate() {
            if std::mem::take(wake)
                && let Some(bell) = self.mesh.doorbell(worker)
            {
                bell.ring();
            }
        }
    }
}

impl PortSet {
    fn get_mut(&mut self, port: InterfaceId) -> Option<&mut Port> {
        self.ports.get_mut(usize::from(port))?.as_mut()
    }

    fn is_local(&self, port: InterfaceId) -> bool {
        self.ports.get(usize::from(port)).is_some_and(Option::is_some)
    }

    /// Returns a frame to the pool of `port`, which must be a port this worker polls.
    fn free(&mut self, port: InterfaceId, frame: Frame) {
        if let Some(io) = self.get_mut(port) {
            io.free(frame);
        }
    }

    fn queue_tx(&mut self, engine: &mut Engine, port: InterfaceId, frame: Frame) {
        let index = usize::from(port);
        if self.tx.get(index).is_some_and(Burst::is_full) {
            self.flush(engine, index);
        }
        match self.tx.get_mut(index) {
            Some(burst) => {
                if let Err(frame) = burst.push(frame) {
                    self.free(port, frame);
                }
            }
            None => engine.counters_mut().drop(DropReason::NoRoute),
        }
    }

    fn flush(&mut self, engine: &mut Engine, index: usize) {
        let (Some(burst), Some(Some(io))) = (self.tx.get_mut(index), self.ports.get_mut(index))
        else {
            return;
        };
        if burst.is_empty() {
            return;
        }
        match io.tx_burst(burst) {
            Ok(sent) => engine.counters_mut().port_tx(index, sent),
            Err(error) => {
                warn!(port = index, %error, "transmit failed");
                io.free_burst(burst);
            }
        }
    }

    fn flush_all(&mut self, engine: &mut Engine) {
        for index in 0..self.ports.len() {
            self.flush(engine, index);
        }
    }
}

/// Output frames: from the pools of the ports this worker polls, and from the hand-off
/// rings towards the workers that poll the others.
struct Frames<'a> {
    ports: &'a mut PortSet,
    shard: Option<&'a ShardLink>,
}

impl Frames<'_> {
    fn ring_towards(&self, port: InterfaceId) -> Option<&crate::handoff::HandoffRing> {
        let link = self.shard?;
        link.mesh.ring(link.index, link.mesh.port_owner(port)?)
    }
}

impl FrameSource for Frames<'_> {
    fn alloc(&mut self, port: InterfaceId) -> Option<Frame> {
        if let Some(io) = self.ports.get_mut(port) {
            return io.alloc();
        }
        self.ring_towards(port)?.take_frame()
    }

    fn free(&mut self, port: InterfaceId, frame: Frame) {
        if !is_handoff_frame(&frame) {
            self.ports.free(port, frame);
        } else if let Some(ring) = self.ring_towards(port) {
            ring.recycle(frame);
        }
    }
}

/// Runs a frame received on `port` through the engine and sends or hands on its output.
fn run_engine(
    engine: &mut Engine,
    epoch: &KeyEpoch,
    now: Instant,
    port: InterfaceId,
    frame: &mut Frame,
    ports: &mut PortSet,
    shard: Option<&mut ShardLink>,
) {
    let mut source = Frames { ports: &mut *ports, shard: shard.as_deref() };
    let result = engine.process(epoch, now, port, frame, &mut source);
    let mut shard = shard;
    if let Ok(Some((out_port, out))) = result {
        emit(engine, ports, shard.as_deref_mut(), out_port, out);
    }
    // A packet split into SVR fragments leaves the rest of its fragments queued.
    while let Some((out_port, out)) = engine.pop_output() {
        emit(engine, ports, shard.as_deref_mut(), out_port, out);
    }
}

/// Runs the frames of `work`, received on `port`, through the engine as one burst, sends
/// or hands on the output, and frees the received frames.
fn run_burst(
    engine: &mut Engine,
    epoch: &KeyEpoch,
    now: Instant,
    port: InterfaceId,
    work: &mut Burst,
    ports: &mut PortSet,
    shard: Option<&mut ShardLink>,
) {
    if work.is_empty() {
        return;
    }
    let mut source = Frames { ports: &mut *ports, shard: shard.as_deref() };
    engine.process_burst(epoch, now, port, work.as_mut_slice(), &mut source);
    let mut shard = shard;
    while let Some((out_port, out)) = engine.pop_output() {
        emit(engine, ports, shard.as_deref_mut(), out_port, out);
    }
    for frame in work.drain() {
        ports.free(port, frame);
    }
}

/// Sends `out` on `out_port`: directly when this worker polls the port, otherwise over the
/// ring to the worker that does.
fn emit(
    engine: &mut Engine,
    ports: &mut PortSet,
    shard: Option<&mut ShardLink>,
    out_port: InterfaceId,
    out: Frame,
) {
    if ports.is_local(out_port) {
        ports.queue_tx(engine, out_port, out);
        return;
    }
    // The frame came from the ring towards the port's worker: pass it on.
    let Some(link) = shard else {
        engine.counters_mut().drop(DropReason::NoRoute);
        return;
    };
    let Some(owner) = link.mesh.port_owner(out_port) else {
        engine.counters_mut().drop(DropReason::NoRoute);
        return;
    };
    let Some(ring) = link.mesh.ring(link.index, owner) else {
        engine.counters_mut().drop(DropReason::NoRoute);
        return;
    };
    match ring.push(Handoff { kind: HandoffKind::Transmit, port: out_port, frame: out }) {
        Ok(()) => {
            engine.counters_mut().handed_off += 1;
            link.wake[owner] = true;
        }
        Err(back) => {
            ring.recycle(back.frame);
            engine.counters_mut().drop(DropReason::HandoffFull);
        }
    }
}

/// Copies `bytes` into a buffer of the ring towards worker `to` and queues it there.
/// Returns whether it was queued, and counts the drop if not.
fn hand_off(
    engine: &mut Engine,
    link: &mut ShardLink,
    to: usize,
    kind: HandoffKind,
    port: InterfaceId,
    bytes: &[u8],
) -> bool {
    let Some(ring) = link.mesh.ring(link.index, to) else {
        engine.counters_mut().drop(DropReason::NoRoute);
        return false;
    };
    let Some(mut frame) = ring.take_frame() else {
        engine.counters_mut().drop(DropReason::HandoffFull);
        return false;
    };
    if frame.copy_from(bytes).is_err() {
        ring.recycle(frame);
        engine.counters_mut().drop(DropReason::TooLong);
        return false;
    }
    match ring.push(Handoff { kind, port, frame }) {
        Ok(()) => {
            engine.counters_mut().handed_off += 1;
            link.wake[to] = true;
            true
        }
        Err(back) => {
            ring.recycle(back.frame);
            engine.counters_mut().drop(DropReason::HandoffFull);
            false
        }
    }
}

/// Takes up to one burst from each ring towards this worker: processes the packets whose
/// sessions it owns and sends those for its ports. Returns how many it took.
///
/// Consecutive packets to process that arrived on the same port go through the engine as
/// one burst, in ring order.
fn receive_handoffs(
    engine: &mut Engine,
    epoch: &KeyEpoch,
    now: Instant,
    ports: &mut PortSet,
    work: &mut Burst,
    shard: Option<&mut ShardLink>,
) -> usize {
    let Some(link) = shard else {
        return 0;
    };
    let mesh = Arc::clone(&link.mesh);
    let mut taken = 0;
    for from in 0..mesh.workers() {
        let Some(ring) = mesh.ring(from, link.index) else {
            continue;
        };
        let mut work_port = None;
        for _ in 0..MAX_BURST {
            let Some(Handoff { kind, port, frame }) = ring.pop() else {
                break;
            };
            taken += 1;
            if work_port.is_some_and(|work_port| work_port != port || kind != HandoffKind::Process)
            {
                let work_port = work_port.take().unwrap_or(port);
                run_handoff_burst(engine, epoch, now, work_port, work, ports, link, ring);
            }
            match kind {
                HandoffKind::Process => {
                    work_port = Some(port);
                    if let Err(frame) = work.push(frame) {
                        // Not reached: at most MAX_BURST frames are taken from the ring.
                        ring.recycle(frame);
                        engine.counters_mut().drop(DropReason::HandoffFull);
                    }
                }
                HandoffKind::Transmit => {
                    transmit(engine, ports, port, frame.data());
                    ring.recycle(frame);
                }
            }
        }
        if let Some(work_port) = work_port {
            run_handoff_burst(engine, epoch, now, work_port, work, ports, link, ring);
        }
    }
    taken
}

/// Runs handed-off frames, received on `port` by another worker, through the engine as
/// one burst, sends or hands on the output, and returns the frames to their ring.
#[expect(clippy::too_many_arguments, reason = "the burst and its context travel together")]
fn run_handoff_burst(
    engine: &mut Engine,
    epoch: &KeyEpoch,
    now: Instant,
    port: InterfaceId,
    work: &mut Burst,
    ports: &mut PortSet,
    link: &mut ShardLink,
    ring: &crate::handoff::HandoffRing,
) {
    let mut source = Frames { ports: &mut *ports, shard: Some(&*link) };
    engine.process_burst(epoch, now, port, work.as_mut_slice(), &mut source);
    while let Some((out_port, out)) = engine.pop_output() {
        emit(engine, ports, Some(&mut *link), out_port, out);
    }
    for frame in work.drain() {
        ring.recycle(frame);
    }
}

/// Copies a packet into a frame of `port`, which this worker polls, and queues it.
/// Returns whether it was queued, and counts the drop if not.
fn transmit(engine: &mut Engine, ports: &mut PortSet, port: InterfaceId, bytes: &[u8]) -> bool {
    let Some(mut frame) = ports.get_mut(port).and_then(|io| io.alloc()) else {
        engine.counters_mut().drop(DropReason::NoBuffer);
        return false;
    };
    if frame.copy_from(bytes).is_err() {
        ports.free(port, frame);
        engine.counters_mut().drop(DropReason::TooLong);
        return false;
    }
    ports.queue_tx(engine, port, frame);
    true
}

/// Copies a control packet into a buffer from `spare` and queues it on `queue` for the
/// control thread. Returns whether it was queued.
fn punt(
    engine: &mut Engine,
    queue: &ArrayQueue<ControlPacket>,
    spare: &ArrayQueue<Vec<u8>>,
    port: InterfaceId,
    frame: &Frame,
) -> bool {
    let Some(mut buffer) = spare.pop() else {
        engine.counters_mut().drop(DropReason::PuntQueueFull);
        return false;
    };
    buffer.clear();
    // Spare buffers are made with the frame size, so this does not reallocate for frames
    // up to that size.
    buffer.extend_from_slice(frame.data());
    match queue.push(ControlPacket { port, frame: buffer }) {
        Ok(()) => {
            engine.counters_mut().punted += 1;
            true
        }
        Err(packet) => {
            let _ = spare.push(packet.frame);
            engine.counters_mut().drop(DropReason::PuntQueueFull);
            false
        }
    }
}

/// Sends the control packets the control thread queued, up to one burst per call; those
/// for ports another worker polls are handed to that worker.
fn send_control(
    engine: &mut Engine,
    ports: &mut PortSet,
    control: &ControlQueues,
    mut shard: Option<&mut ShardLink>,
) {
    for _ in 0..MAX_BURST {
        let Some(packet) = control.to_send.pop() else {
            break;
        };
        let port = packet.port;
        let owner = shard.as_ref().and_then(|link| link.mesh.port_owner(port));
        let queued = match (shard.as_deref_mut(), owner) {
            (Some(link), Some(owner)) if !ports.is_local(port) => {
                hand_off(engine, link, owner, HandoffKind::Transmit, port, &packet.frame)
            }
            _ => transmit(engine, ports, port, &packet.frame),
        };
        if queued {
            engine.counters_mut().control_sent += 1;
        }
        let _ = control.spare.push(packet.frame);
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("worker", &self.config.engine.worker)
            .field("ports", &self.ports.ports.iter().flatten().count())
            .field("sessions", &self.engine.sessions().len())
            .finish()
    }
}
