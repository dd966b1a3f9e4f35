//! The BFD engine's driver loop. It runs the engine by its earliest timer until a stop flag
//! is set, carrying datagrams over a [`Transport`]: the kernel's UDP sockets
//! ([`SocketTransport`](super::socket::SocketTransport)), or Ethernet frames that the
//! dataplane workers punt and transmit ([`FrameTransport`](super::frames::FrameTransport)).
//! A [`DriverHandle`] lets another thread read path state, send metadata and change timers
//! while the loop runs.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing::{debug, warn};

use super::Flavour;
use super::SINGLE_HOP_SOURCE_PORTS;
use super::auth::KeyGeneration;
use super::engine::{DropCounters, Engine, EngineError, Output, PathId, PathSpec};
use super::metadata::ReassemblyCounters;
use super::packet::{Diagnostic, State};
use super::session::SessionConfig;
use super::socket::SocketTransport;
use super::timers::Instant;

/// Maximum time the loop sleeps before it checks the stop flag and the command queue.
const MAX_WAIT: Duration = Duration::from_millis(20);

/// Maximum number of datagrams read from one socket or queue before the timers run again.
const MAX_BURST: usize = 256;

/// A datagram a transport received.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// The flavour its destination port selects.
    pub flavour: Flavour,
    /// The address it was sent to.
    pub local: IpAddr,
    /// The address it came from.
    pub remote: IpAddr,
    /// Its TTL or hop limit, when the transport can read it.
    pub ttl: Option<u8>,
    /// The UDP payload.
    pub datagram: &'a [u8],
}

/// What carries the driver's datagrams.
pub trait Transport: Send + fmt::Debug {
    /// Prepares to send and receive for the path `spec`; paths are attached in the order
    /// of their [`PathId`], and [`Transport::send`] names them by that index.
    fn attach(&mut self, spec: &PathSpec) -> Result<(), DriverError>;

    /// Blocks until a datagram may be waiting or `timeout` passes.
    fn wait(&mut self, timeout: Duration) -> Result<(), DriverError>;

    /// Hands each waiting datagram to `handle`, at most `limit` per socket or queue, so
    /// that a flood cannot starve the timers.
    fn receive(&mut self, limit: usize, handle: &mut dyn FnMut(Received<'_>));

    /// Sends `datagram` on path `path` (attached as `spec`). The error says why it could not
    /// be sent; the driver counts and logs it.
    fn send(&mut self, path: usize, spec: &PathSpec, datagram: &[u8]) -> Result<(), String>;

    /// Sends what the transport held back, such as datagrams waiting for a next hop's
    /// link-layer address. The driver calls it on every pass of its loop.
    fn retry_held(&mut self) {}
}

/// A failure of the driver or of a request made through its handle.
#[derive(Debug)]
#[non_exhaustive]
pub enum DriverError {
    Bind {
        addr: SocketAddr,
        source: io::Error,
    },
    SocketOption {
        option: &'static str,
        source: io::Error,
    },
    Poll {
        source: io::Error,
    },
    /// No free source port in 49152-65535 was found for a single-hop session.
    NoSourcePort {
        local: IpAddr,
    },
    /// The driver loop has ended, so the handle's request cannot be served.
    Stopped,
    /// The driver did not respond to the request within two seconds.
    TimedOut,
    Engine(EngineError),
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Bind { addr, .. } => write!(f, "cannot bind bfd socket to {addr}"),
            DriverError::SocketOption { option, .. } => {
                write!(f, "cannot set socket option {option} on bfd socket")
            }
            DriverError::Poll { .. } => f.write_str("poll on bfd sockets failed"),
            DriverError::NoSourcePort { local } => write!(
                f,
                "no free bfd source port in {}-{} on {local}",
                SINGLE_HOP_SOURCE_PORTS.start(),
                SINGLE_HOP_SOURCE_PORTS.end()
            ),
            DriverError::Stopped => f.write_str("bfd driver has stopped"),
            DriverError::TimedOut => f.write_str("bfd driver did not respond within 2 s"),
            DriverError::Engine(error) => write!(f, "bfd request rejected: {error}"),
        }
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DriverError::Bind { source, .. }
            | DriverError::SocketOption { source, .. }
            | DriverError::Poll { source } => Some(source),
            DriverError::Engine(error) => Some(error),
            _ => None,
        }
    }
}

/// A snapshot of one path's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathStatus {
    pub state: State,
    pub remote_state: State,
    pub diagnostic: Diagnostic,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    pub tx_interval: Duration,
    pub detection_time: Duration,
    pub poll_in_progress: bool,
    pub polls_completed: u64,
    pub config: SessionConfig,
}

impl PathStatus {
    pub fn is_up(&self) -> bool {
        self.state == State::Up
    }
}

/// A state change as the driver handled it, stamped with `std::time::Instant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateEvent {
    pub path: PathId,
    pub from: State,
    pub to: State,
    pub diagnostic: Diagnostic,
    pub at: std::time::Instant,
}

#[derive(Debug, Default)]
struct Status {
    paths: Vec<PathStatus>,
    reassembly: Vec<Option<ReassemblyCounters>>,
    counters: DropCounters,
    send_errors: u64,
    events: Vec<StateEvent>,
}

/// Maximum number of state events kept for [`DriverHandle::events`]. The oldest are
/// dropped first.
const MAX_EVENTS: usize = 1024;

#[derive(Debug)]
enum Command {
    SendMetadata(PathId, Vec<u8>, Sender<Result<(), EngineError>>),
    SetConfig(PathId, SessionConfig, Sender<Result<(), EngineError>>),
    AdminDown(PathId, Diagnostic, Sender<Result<(), EngineError>>),
    AdminUp(PathId, Sender<Result<(), EngineError>>),
    SetKeys(PathId, Vec<KeyGeneration>, Sender<Result<(), EngineError>>),
    AddPath(PathSpec, Sender<Result<PathId, DriverError>>),
}

#[derive(Debug)]
struct Shared {
    status: Mutex<Status>,
    metadata: Mutex<Receiver<(PathId, Vec<u8>)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; the status
    // inside is still a consistent snapshot.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Access to a running driver from other threads.
#[derive(Debug, Clone)]
pub struct DriverHandle {
    commands: Sender<Command>,
    shared: Arc<Shared>,
}

impl DriverHandle {
    /// Returns the status of `path`, or `None` for an unknown path.
    pub fn status(&self, path: PathId) -> Option<PathStatus> {
        lock(&self.shared.status).paths.get(path.0).copied()
    }

    /// Returns the session state of `path`.
    pub fn state(&self, path: PathId) -> Option<State> {
        self.status(path).map(|s| s.state)
    }

    /// Returns true while the session of `path` is Up.
    pub fn is_up(&self, path: PathId) -> bool {
        self.status(path).is_some_and(|s| s.is_up())
    }

    pub fn counters(&self) -> DropCounters {
        lock(&self.shared.status).counters
    }

    pub fn reassembly_counters(&self, path: PathId) -> Option<ReassemblyCounters> {
        lock(&self.shared.status).reassembly.get(path.0).copied().flatten()
    }

    /// Returns the number of datagrams the kernel rejected on send, for example while a
    /// link is down.
    pub fn send_errors(&self) -> u64 {
        lock(&self.shared.status).send_errors
    }

    /// Returns the state changes seen so far, oldest first.
    pub fn events(&self) -> Vec<StateEvent> {
        lock(&self.shared.status).events.clone()
    }

    /// Polls until `path` reaches `state` or `timeout` passes; returns whether it did.
    pub fn wait_for_state(&self, path: PathId, state: State, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.state(path) == Some(state) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends `message` as metadata on the peer path `path`.
    pub fn send_metadata(&self, path: PathId, message: Vec<u8>) -> Result<(), DriverError> {
        self.request(|reply| Command::SendMetadata(path, message, reply))
    }

    /// Changes the timers of `path`.
    pub fn set_config(&self, path: PathId, config: SessionConfig) -> Result<(), DriverError> {
        self.request(|reply| Command::SetConfig(path, config, reply))
    }

    /// Takes `path` administratively down.
    pub fn admin_down(&self, path: PathId, diagnostic: Diagnostic) -> Result<(), DriverError> {
        self.request(|reply| Command::AdminDown(path, diagnostic, reply))
    }

    /// Re-enables `path` after [`DriverHandle::admin_down`].
    pub fn admin_up(&self, path: PathId) -> Result<(), DriverError> {
        self.request(|reply| Command::AdminUp(path, reply))
    }

    /// Replaces the pair-key generations that authenticate BFD on the peer path `path`,
    /// oldest first (see [`Engine::set_keys`]).
    pub fn set_keys(&self, path: PathId, keys: Vec<KeyGeneration>) -> Result<(), DriverError> {
        self.request(|reply| Command::SetKeys(path, keys, reply))
    }

    /// Adds a session for `spec` to the running driver, binding a socket for its local
    /// address when none is bound yet, and starts it. The other sessions are not touched.
    pub fn add_path(&self, spec: PathSpec) -> Result<PathId, DriverError> {
        let (reply, answer) = mpsc::channel();
        self.commands.send(Command::AddPath(spec, reply)).map_err(|_| DriverError::Stopped)?;
        match answer.recv_timeout(Duration::from_secs(2)) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(DriverError::TimedOut),
            Err(RecvTimeoutError::Disconnected) => Err(DriverError::Stopped),
        }
    }

    /// Waits up to `timeout` for the next complete metadata message from any path.
    pub fn recv_metadata(&self, timeout: Duration) -> Option<(PathId, Vec<u8>)> {
        lock(&self.shared.metadata).recv_timeout(timeout).ok()
    }

    fn request(
        &self,
        command: impl FnOnce(Sender<Result<(), EngineError>>) -> Command,
    ) -> Result<(), DriverError> {
        let (reply, answer) = mpsc::channel();
        self.commands.send(command(reply)).map_err(|_| DriverError::Stopped)?;
        match answer.recv_timeout(Duration::from_secs(2)) {
            Ok(result) => result.map_err(DriverError::Engine),
            Err(RecvTimeoutError::Timeout) => Err(DriverError::TimedOut),
            Err(RecvTimeoutError::Disconnected) => Err(DriverError::Stopped),
        }
    }
}

/// The loop around an [`Engine`] and its [`Transport`].
#[derive(Debug)]
pub struct Driver {
    engine: Engine,
    origin: std::time::Instant,
    transport: Box<dyn Transport>,
    commands: Receiver<Command>,
    metadata_tx: Sender<(PathId, Vec<u8>)>,
    shared: Arc<Shared>,
    started: bool,
}

impl Driver {
    /// Binds the sockets for `paths` in the calling thread's network namespace.
    pub fn new(paths: Vec<PathSpec>) -> Result<(Driver, DriverHandle), DriverError> {
        Driver::with_transport(paths, Box::new(SocketTransport::new()))
    }

    /// Runs `paths` over `transport`.
    pub fn with_transport(
        paths: Vec<PathSpec>,
        mut transport: Box<dyn Transport>,
    ) -> Result<(Driver, DriverHandle), DriverError> {
        let mut seed_bytes = [0u8; 8];
        getrandom::fill(&mut seed_bytes).map_err(|e| DriverError::SocketOption {
            option: "getrandom",
            source: io::Error::other(e.to_string()),
        })?;
        let mut engine = Engine::new(u64::from_ne_bytes(seed_bytes));

        for spec in paths {
            transport.attach(&spec)?;
            engine.add_path(spec);
        }

        let (commands_tx, commands) = mpsc::channel();
        let (metadata_tx, metadata_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            status: Mutex::new(Status::default()),
            metadata: Mutex::new(metadata_rx),
        });
        let driver = Driver {
            engine,
            origin: std::time::Instant::now(),
            transport,
            commands,
            metadata_tx,
            shared: Arc::clone(&shared),
            started: false,
        };
        driver.publish_status();
        Ok((driver, DriverHandle { commands: commands_tx, shared }))
    }

    /// Runs until `stop` is set. Returns without telling peers; call
    /// [`Driver::shutdown`] afterwards to send AdminDown.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), DriverError> {
        while !stop.load(Ordering::Relaxed) {
            self.step(MAX_WAIT)?;
        }
        Ok(())
    }

    /// Runs one iteration: waits for a datagram or the next timer (at most `max_wait`),
    /// then handles what is due.
    pub fn step(&mut self, max_wait: Duration) -> Result<(), DriverError> {
        if !self.started {
            self.started = true;
            let outputs = self.engine.start(self.now());
            self.perform(outputs);
        }

        self.serve_commands();

        let now = self.now();
        let wait = match self.engine.next_deadline() {
            Some(at) => at.since(now).min(max_wait),
            None => max_wait,
        };
        self.transport.wait(wait)?;
        self.drain();
        self.transport.retry_held();

        let outputs = self.engine.handle_timers(self.now());
        self.perform(outputs);
        self.publish_status();
        Ok(())
    }

    /// Takes every session administratively down and sends the AdminDown packets.
    pub fn shutdown(&mut self) {
        let outputs = self.engine.shutdown(self.now());
        self.perform(outputs);
        self.publish_status();
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn now(&self) -> Instant {
        let nanos = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        Instant::from_nanos(nanos)
    }

    fn serve_commands(&mut self) {
        while let Ok(command) = self.commands.try_recv() {
            let now = self.now();
            let (result, reply) = match command {
                Command::SendMetadata(path, message, reply) => {
                    (self.engine.send_metadata(path, &message), reply)
                }
                Command::SetConfig(path, config, reply) => {
                    (self.engine.set_config(path, config, now), reply)
                }
                Command::AdminDown(path, diagnostic, reply) => {
                    (self.engine.admin_down(path, diagnostic, now), reply)
                }
                Command::AdminUp(path, reply) => (self.engine.admin_up(path, now), reply),
                Command::SetKeys(path, keys, reply) => {
                    (self.engine.set_keys(path, keys).map(|()| Vec::new()), reply)
                }
                Command::AddPath(spec, reply) => {
                    let added = self.add_path(spec, now);
                    // As below, a requester that gave up is not an error.
                    let _ = reply.send(added);
                    continue;
                }
            };
            let answer = match result {
                Ok(outputs) => {
                    self.perform(outputs);
                    Ok(())
                }
                Err(error) => Err(error),
            };
            // The requester stops waiting after two seconds, so a closed reply channel is
            // expected and ignored.
            let _ = reply.send(answer);
        }
        self.publish_status();
    }

    fn add_path(&mut self, spec: PathSpec, now: Instant) -> Result<PathId, DriverError> {
        self.transport.attach(&spec)?;
        let path = self.engine.add_path(spec);
        if self.started {
            let outputs = self.engine.start_path(path, now).map_err(DriverError::Engine)?;
            self.perform(outputs);
        }
        Ok(path)
    }

    /// Feeds the datagrams the transport has received to the engine.
    fn drain(&mut self) {
        let mut outputs = Vec::new();
        let engine = &mut self.engine;
        let origin = self.origin;
        self.transport.receive(MAX_BURST, &mut |received| {
            let now =
                Instant::from_nanos(u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX));
            let Received { flavour, local, remote, ttl, datagram } = received;
            // Drops are counted and logged by the engine.
            if let Ok(mut out) = engine.receive(flavour, local, remote, ttl, datagram, now) {
                outputs.append(&mut out);
            }
        });
        self.perform(outputs);
    }

    fn perform(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Transmit { path, datagram } => self.transmit(path, &datagram),
                Output::StateChanged { path, from, to, diagnostic } => {
                    debug!(path = path.0, %from, %to, %diagnostic, "bfd path state changed");
                    let mut status = lock(&self.shared.status);
                    if status.events.len() == MAX_EVENTS {
                        status.events.remove(0);
                    }
                    let at = std::time::Instant::now();
                    status.events.push(StateEvent { path, from, to, diagnostic, at });
                }
                Output::Metadata { path, message } => {
                    // The handle may be gone; the daemon then has no reader for metadata.
                    let _ = self.metadata_tx.send((path, message));
                }
            }
        }
    }

    fn transmit(&mut self, path: PathId, datagram: &[u8]) {
        let Some((_, spec)) = self.engine.paths().nth(path.0) else { return };
        if let Err(error) = self.transport.send(path.0, spec, datagram) {
            let mut status = lock(&self.shared.status);
            status.send_errors += 1;
            // Logged once per hundred failures: a down link fails every packet.
            if status.send_errors % 100 == 1 {
                let target = SocketAddr::new(spec.remote, spec.flavour.port());
                warn!(%target, %error, failures = status.send_errors, "bfd send failed");
            }
        }
    }

    fn publish_status(&self) {
        let mut status = lock(&self.shared.status);
        status.paths = self
            .engine
            .paths()
            .filter_map(|(id, _)| self.engine.session(id))
            .map(|session| PathStatus {
                state: session.state(),
                remote_state: session.remote_state(),
                diagnostic: session.local_diagnostic(),
                local_discriminator: session.local_discriminator().get(),
                remote_discriminator: session.remote_discriminator(),
                tx_interval: session.tx_interval(),
                detection_time: session.detection_time(),
                poll_in_progress: session.poll_in_progress(),
                polls_completed: session.polls_completed(),
                config: session.config(),
            })
            .collect();
        status.reassembly = self
            .engine
            .paths()
            .map(|(id, _)| self.engine.reassembler(id).map(|r| *r.counters()))
            .collect();
        status.counters = *self.engine.counters();
    }
}
