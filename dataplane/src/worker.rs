//! The poll-mode worker: one thread per worker, optionally pinned to a core, that polls
//! bursts from its ports, runs each frame through its [`Engine`] and sends the results.
//!
//! While busy the loop takes no lock, makes no system call of its own and allocates
//! nothing per packet: frames come from the ports' pools, bursts are preallocated, and
//! control packets travel in recycled buffers over lock-free queues. The backends' own
//! transmit kicks are the only system calls. In `adaptive` mode an idle worker sleeps on
//! a port's wakeup after a number of empty polls.
//!
//! NOTE: each worker owns the sessions of the packets it receives. Handing a packet to
//! the worker that owns its session, for ports shared by several workers, is not
//! implemented, so one worker per set of ports is the supported layout.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tracing::{debug, warn};

use crate::counters::{DropReason, SharedCounters};
use crate::epoch::{EpochReader, InterfaceId, InterfaceRole};
use crate::forward::{Engine, EngineConfig, FrameSource, is_control_packet};
use crate::io::{Burst, Frame, PacketIo};

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
    /// Session slots the idle sweep visits per pass.
    pub sweep_budget: usize,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            engine: EngineConfig::default(),
            polling: Polling::Adaptive { empty_polls: 64, sleep: Duration::from_millis(1) },
            core: None,
            sweep_budget: 64,
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
/// (BFD), control packets to send, and spare buffers that both sides recycle so that
/// neither allocates per packet.
#[derive(Debug)]
pub struct ControlQueues {
    /// Control packets received on WAN ports, for the control thread.
    pub punted: ArrayQueue<ControlPacket>,
    /// Control packets the control thread wants sent.
    pub to_send: ArrayQueue<ControlPacket>,
    /// Empty buffers; take one to build a packet and return it when done.
    pub spare: ArrayQueue<Vec<u8>>,
}

impl ControlQueues {
    /// Queues of `depth` packets each, with `depth` spare buffers of `frame_size` bytes.
    pub fn new(depth: usize, frame_size: usize) -> ControlQueues {
        let spare = ArrayQueue::new(depth.max(1) * 2);
        for _ in 0..depth {
            let _ = spare.push(Vec::with_capacity(frame_size));
        }
        ControlQueues {
            punted: ArrayQueue::new(depth.max(1)),
            to_send: ArrayQueue::new(depth.max(1)),
            spare,
        }
    }
}

/// A port a worker polls.
pub type Port = Box<dyn PacketIo + Send>;

/// One poll-mode worker and its ports.
pub struct Worker {
    config: WorkerConfig,
    engine: Engine,
    ports: Vec<Port>,
    tx: Vec<Burst>,
    rx: Burst,
    reader: EpochReader,
    control: Arc<ControlQueues>,
    stop: Arc<AtomicBool>,
    rotate: Arc<AtomicBool>,
    shared: Arc<SharedCounters>,
    empty_polls: u32,
    next_wait: usize,
}

impl Worker {
    /// A worker over `ports`, indexed as the epoch's interfaces are.
    pub fn new(
        config: WorkerConfig,
        ports: Vec<Port>,
        reader: EpochReader,
        control: Arc<ControlQueues>,
    ) -> Worker {
        let count = ports.len();
        Worker {
            engine: Engine::new(config.engine, count),
            tx: (0..count).map(|_| Burst::new()).collect(),
            rx: Burst::new(),
            ports,
            reader,
            control,
            stop: Arc::new(AtomicBool::new(false)),
            rotate: Arc::new(AtomicBool::new(false)),
            shared: Arc::new(SharedCounters::new(count)),
            empty_polls: 0,
            next_wait: 0,
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

    /// The packet engine.
    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// A port.
    pub fn port(&mut self, port: InterfaceId) -> Option<&mut Port> {
        self.ports.get_mut(usize::from(port))
    }

    /// Polls every port once: receives a burst from each, processes it, sends what it
    /// produced and the queued control packets. Returns how many frames were received.
    pub fn poll_once(&mut self, now: Instant) -> usize {
        if self.rotate.swap(false, Ordering::Relaxed) {
            let started = self.engine.rotate_all(now);
            debug!(worker = self.config.engine.worker, started, "payload key rotations requested");
        }
        let epoch = self.reader.pin();
        let Worker { engine, ports, tx, rx, control, .. } = self;
        let mut received = 0;

        for index in 0..ports.len() {
            let port = index as InterfaceId;
            let count = match ports[index].rx_burst(rx) {
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
            let is_wan =
                matches!(epoch.interfaces.get(index).map(|i| i.role), Some(InterfaceRole::Wan));

            for mut frame in rx.drain() {
                if is_wan && is_control_packet(frame.data()) {
                    punt(engine, control, port, &frame);
                    ports[index].free(frame);
                    continue;
                }
                let mut source = PortFrames { ports: &mut ports[..] };
                let result = engine.process(&epoch, now, port, &mut frame, &mut source);
                ports[index].free(frame);
                if let Ok(Some((out_port, out))) = result {
                    queue_tx(engine, ports, tx, out_port, out);
                }
                while let Some((out_port, out)) = engine.pop_output() {
                    queue_tx(engine, ports, tx, out_port, out);
                }
            }
        }

        send_control(engine, ports, tx, control);
        for index in 0..ports.len() {
            flush(engine, ports, tx, index);
        }
        drop(epoch);

        engine.expire(now, self.config.sweep_budget);
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
    /// returns the worker when stopped.
    pub fn spawn(mut self) -> std::io::Result<JoinHandle<Worker>> {
        let name = format!("svr-worker-{}", self.config.engine.worker);
        std::thread::Builder::new().name(name).spawn(move || {
            if let Some(core) = self.config.core
                && !core_affinity::set_for_current(core_affinity::CoreId { id: core })
            {
                warn!(core, "failed to pin worker to core");
            }
            self.run();
            self
        })
    }

    fn idle(&mut self) {
        match self.config.polling {
            Polling::Busy => std::hint::spin_loop(),
            Polling::Adaptive { empty_polls, sleep } => {
                self.empty_polls = self.empty_polls.saturating_add(1);
                if self.empty_polls < empty_polls || self.ports.is_empty() {
                    std::hint::spin_loop();
                    return;
                }
                // With a descriptor on every port, sleep on all of them at once, so traffic
                // on any port wakes the worker at once.
                if self.wait_all(sleep) {
                    return;
                }
                // Otherwise sleep on one port at a time, in turn, so that every port's
                // wakeup is used; the timeout bounds how late traffic on the others is seen.
                let index = self.next_wait % self.ports.len();
                self.next_wait = self.next_wait.wrapping_add(1);
                if let Err(error) = self.ports[index].wait_readable(sleep) {
                    warn!(port = index, %error, "wait for packets failed");
                    std::thread::sleep(sleep);
                }
            }
        }
    }
}

impl Worker {
    /// Sleeps until any port turns readable or `timeout` passes; returns false, having
    /// waited for nothing, when some port has no readiness descriptor.
    fn wait_all(&mut self, timeout: Duration) -> bool {
        // A zero-timeout check of each port first: it also flushes transmits the kernel
        // has not been told about yet, which the sleep must not hold back.
        for port in &mut self.ports {
            if matches!(port.wait_readable(Duration::ZERO), Ok(true)) {
                return true;
            }
        }
        let fds: Option<Vec<_>> = self.ports.iter().map(|port| port.readiness_fd()).collect();
        let Some(fds) = fds else {
            return false;
        };
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

/// Output frames taken from the ports' own pools.
struct PortFrames<'a> {
    ports: &'a mut [Port],
}

impl FrameSource for PortFrames<'_> {
    fn alloc(&mut self, port: InterfaceId) -> Option<Frame> {
        self.ports.get_mut(usize::from(port))?.alloc()
    }

    fn free(&mut self, port: InterfaceId, frame: Frame) {
        if let Some(io) = self.ports.get_mut(usize::from(port)) {
            io.free(frame);
        }
    }
}

/// Copies a control packet into a spare buffer and queues it for the control thread.
fn punt(engine: &mut Engine, control: &ControlQueues, port: InterfaceId, frame: &Frame) {
    let Some(mut buffer) = control.spare.pop() else {
        engine.counters_mut().drop(DropReason::PuntQueueFull);
        return;
    };
    buffer.clear();
    // Spare buffers are made with the frame size, so this does not reallocate for frames
    // up to that size.
    buffer.extend_from_slice(frame.data());
    match control.punted.push(ControlPacket { port, frame: buffer }) {
        Ok(()) => engine.counters_mut().punted += 1,
        Err(packet) => {
            let _ = control.spare.push(packet.frame);
            engine.counters_mut().drop(DropReason::PuntQueueFull);
        }
    }
}

/// Sends the control packets the control thread queued, up to one burst per call.
fn send_control(
    engine: &mut Engine,
    ports: &mut [Port],
    tx: &mut [Burst],
    control: &ControlQueues,
) {
    for _ in 0..crate::io::MAX_BURST {
        let Some(packet) = control.to_send.pop() else {
            break;
        };
        let port = packet.port;
        if let Some(mut frame) = ports.get_mut(usize::from(port)).and_then(|io| io.alloc()) {
            if frame.copy_from(&packet.frame).is_ok() {
                queue_tx(engine, ports, tx, port, frame);
                engine.counters_mut().control_sent += 1;
            } else {
                ports[usize::from(port)].free(frame);
                engine.counters_mut().drop(DropReason::TooLong);
            }
        } else {
            engine.counters_mut().drop(DropReason::NoBuffer);
        }
        let _ = control.spare.push(packet.frame);
    }
}

fn queue_tx(
    engine: &mut Engine,
    ports: &mut [Port],
    tx: &mut [Burst],
    port: InterfaceId,
    frame: Frame,
) {
    let index = usize::from(port);
    if tx.get(index).is_some_and(Burst::is_full) {
        flush(engine, ports, tx, index);
    }
    match tx.get_mut(index) {
        Some(burst) => {
            if let Err(frame) = burst.push(frame) {
                ports[index].free(frame);
            }
        }
        None => engine.counters_mut().drop(DropReason::NoRoute),
    }
}

fn flush(engine: &mut Engine, ports: &mut [Port], tx: &mut [Burst], index: usize) {
    let Some(burst) = tx.get_mut(index) else {
        return;
    };
    if burst.is_empty() {
        return;
    }
    match ports[index].tx_burst(burst) {
        Ok(sent) => engine.counters_mut().port_tx(index, sent),
        Err(error) => {
            warn!(port = index, %error, "transmit failed");
            ports[index].free_burst(burst);
        }
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("worker", &self.config.engine.worker)
            .field("ports", &self.ports.len())
            .field("sessions", &self.engine.sessions().len())
            .finish()
    }
}
