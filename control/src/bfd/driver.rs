//! UDP socket driver for the BFD engine. It binds the sockets of RFC 5881 (single hop, port
//! 3784, TTL 255) and of SVR peer paths (port 1280), reads the received TTL, and runs the
//! engine by its earliest timer until a stop flag is set. A [`DriverHandle`] lets another
//! thread read path state, send metadata and change timers while the loop runs.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use rand::RngExt;
use tracing::{debug, error, warn};

use super::auth::KeyGeneration;
use super::engine::{DropCounters, Engine, EngineError, Output, PathId, PathSpec};
use super::metadata::ReassemblyCounters;
use super::packet::{Diagnostic, State};
use super::session::SessionConfig;
use super::timers::Instant;
use super::{Flavour, GTSM_TTL, SINGLE_HOP_SOURCE_PORTS};

/// Maximum time the loop sleeps before it checks the stop flag and the command queue.
const MAX_WAIT: Duration = Duration::from_millis(20);

/// Type of service of every BFD packet sent: DSCP CS6 (network control), as routers
/// commonly mark BFD.
const BFD_TOS: i32 = 0xc0;

/// Maximum number of datagrams read from one socket before the timers run again.
const MAX_BURST: usize = 256;

/// Attempts at binding a random single-hop source port before giving up.
const SOURCE_PORT_ATTEMPTS: usize = 64;

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

/// A socket the driver reads from.
#[derive(Debug)]
struct Listener {
    flavour: Flavour,
    local: IpAddr,
    socket: UdpSocket,
}

/// The socket loop around an [`Engine`].
#[derive(Debug)]
pub struct Driver {
    engine: Engine,
    origin: std::time::Instant,
    listeners: Vec<Listener>,
    /// Per path: index into `listeners` for peer paths, or an own source-port socket for
    /// single-hop sessions.
    senders: Vec<SendSocket>,
    commands: Receiver<Command>,
    metadata_tx: Sender<(PathId, Vec<u8>)>,
    shared: Arc<Shared>,
    started: bool,
    /// Receive buffer, large enough for any UDP datagram.
    buffer: Vec<u8>,
}

#[derive(Debug)]
enum SendSocket {
    Listener(usize),
    Own(UdpSocket),
}

impl Driver {
    /// Binds the sockets for `paths` in the calling thread's network namespace.
    pub fn new(paths: Vec<PathSpec>) -> Result<(Driver, DriverHandle), DriverError> {
        let mut seed_bytes = [0u8; 8];
        getrandom::fill(&mut seed_bytes).map_err(|e| DriverError::SocketOption {
            option: "getrandom",
            source: io::Error::other(e.to_string()),
        })?;
        let mut engine = Engine::new(u64::from_ne_bytes(seed_bytes));

        let mut listeners: Vec<Listener> = Vec::new();
        let mut senders = Vec::new();
        for spec in paths {
            senders.push(sockets_for(&mut listeners, &spec)?);
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
            listeners,
            senders,
            commands,
            metadata_tx,
            shared: Arc::clone(&shared),
            started: false,
            buffer: vec![0u8; 65536],
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
        let readable = self.wait_readable(wait)?;
        for index in readable {
            self.drain(index);
        }

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
        let sender = sockets_for(&mut self.listeners, &spec)?;
        self.senders.push(sender);
        let path = self.engine.add_path(spec);
        if self.started {
            let outputs = self.engine.start_path(path, now).map_err(DriverError::Engine)?;
            self.perform(outputs);
        }
        Ok(path)
    }

    fn wait_readable(&self, wait: Duration) -> Result<Vec<usize>, DriverError> {
        let mut fds: Vec<PollFd<'_>> = self
            .listeners
            .iter()
            .map(|l| PollFd::new(l.socket.as_fd(), PollFlags::POLLIN))
            .collect();
        let millis = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Vec::new()),
            Err(errno) => return Err(DriverError::Poll { source: io::Error::from(errno) }),
        }
        let ready = fds
            .iter()
            .enumerate()
            .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(index, _)| index)
            .collect();
        Ok(ready)
    }

    /// Reads the datagrams waiting on listener `index`, at most [`MAX_BURST`] of them so a
    /// flood cannot starve the timers.
    fn drain(&mut self, index: usize) {
        let mut buffer = std::mem::take(&mut self.buffer);
        for _ in 0..MAX_BURST {
            let Some((len, remote, ttl)) = self.receive_one(index, &mut buffer) else {
                break;
            };
            let listener = &self.listeners[index];
            let (flavour, local) = (listener.flavour, listener.local);
            let now = self.now();
            // Drops are counted and logged by the engine.
            if let Ok(outputs) =
                self.engine.receive(flavour, local, remote, ttl, &buffer[..len], now)
            {
                self.perform(outputs);
            }
        }
        self.buffer = buffer;
    }

    fn receive_one(&self, index: usize, buffer: &mut [u8]) -> Option<(usize, IpAddr, Option<u8>)> {
        let socket = &self.listeners[index].socket;
        let mut iov = [IoSliceMut::new(buffer)];
        let mut cmsg = nix::cmsg_space!(i32, i32);
        let message = match recvmsg::<SockaddrStorage>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(message) => message,
            Err(nix::errno::Errno::EAGAIN) => return None,
            Err(errno) => {
                warn!(error = %errno, "bfd receive failed");
                return None;
            }
        };

        let remote = message.address.as_ref().and_then(|a| {
            if let Some(v4) = a.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })?;
        let mut ttl = None;
        if let Ok(cmsgs) = message.cmsgs() {
            for cmsg in cmsgs {
                match cmsg {
                    ControlMessageOwned::Ipv4Ttl(value)
                    | ControlMessageOwned::Ipv6HopLimit(value) => {
                        ttl = u8::try_from(value).ok();
                    }
                    _ => {}
                }
            }
        }
        Some((message.bytes, remote, ttl))
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
        let target = SocketAddr::new(spec.remote, spec.flavour.port());
        let socket = match &self.senders[path.0] {
            SendSocket::Listener(index) => &self.listeners[*index].socket,
            SendSocket::Own(socket) => socket,
        };
        if let Err(error) = socket.send_to(datagram, target) {
            let mut status = lock(&self.shared.status);
            status.send_errors += 1;
            // Logged once per hundred failures: a down link fails every packet.
            if status.send_errors % 100 == 1 {
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

/// Returns the socket a session of `spec` sends from, binding the listener of its local
/// address and flavour when there is none yet.
fn sockets_for(listeners: &mut Vec<Listener>, spec: &PathSpec) -> Result<SendSocket, DriverError> {
    let listener =
        match listeners.iter().position(|l| l.flavour == spec.flavour && l.local == spec.local) {
            Some(index) => index,
            None => {
                let socket = bind_socket(SocketAddr::new(spec.local, spec.flavour.port()))?;
                enable_ttl_reception(&socket, spec.local)?;
                listeners.push(Listener { flavour: spec.flavour, local: spec.local, socket });
                listeners.len() - 1
            }
        };
    Ok(match spec.flavour {
        // RFC 5881 section 4: "The same UDP source port number MUST be used for all BFD
        // Control packets associated with a particular session."
        Flavour::SingleHop => SendSocket::Own(bind_source_port(spec.local)?),
        Flavour::PeerPath => SendSocket::Listener(listener),
    })
}

/// Binds a non-blocking UDP socket that sends with TTL 255 and DSCP CS6.
fn bind_socket(addr: SocketAddr) -> Result<UdpSocket, DriverError> {
    let socket = UdpSocket::bind(addr).map_err(|source| DriverError::Bind { addr, source })?;
    socket
        .set_nonblocking(true)
        .map_err(|source| DriverError::SocketOption { option: "O_NONBLOCK", source })?;
    let option_error = |option| {
        move |errno: nix::errno::Errno| DriverError::SocketOption {
            option,
            source: io::Error::from(errno),
        }
    };
    let ttl = i32::from(GTSM_TTL);
    if addr.is_ipv4() {
        socket
            .set_ttl(u32::from(GTSM_TTL))
            .map_err(|source| DriverError::SocketOption { option: "IP_TTL", source })?;
        setsockopt(&socket, sockopt::Ipv4Tos, &BFD_TOS).map_err(option_error("IP_TOS"))?;
    } else {
        setsockopt(&socket, sockopt::Ipv6Ttl, &ttl).map_err(option_error("IPV6_UNICAST_HOPS"))?;
        setsockopt(&socket, sockopt::Ipv6TClass, &BFD_TOS).map_err(option_error("IPV6_TCLASS"))?;
    }
    Ok(socket)
}

/// Asks the kernel to report each datagram's TTL or hop limit.
fn enable_ttl_reception(socket: &UdpSocket, local: IpAddr) -> Result<(), DriverError> {
    let result = if local.is_ipv4() {
        setsockopt(socket, sockopt::Ipv4RecvTtl, &true).map_err(|e| ("IP_RECVTTL", e))
    } else {
        setsockopt(socket, sockopt::Ipv6RecvHopLimit, &true).map_err(|e| ("IPV6_RECVHOPLIMIT", e))
    };
    result.map_err(|(option, errno)| DriverError::SocketOption {
        option,
        source: io::Error::from(errno),
    })
}

/// Binds a socket on a random free source port in 49152-65535 (RFC 5881 section 4).
fn bind_source_port(local: IpAddr) -> Result<UdpSocket, DriverError> {
    let mut rng = rand::rng();
    for _ in 0..SOURCE_PORT_ATTEMPTS {
        let port = rng.random_range(SINGLE_HOP_SOURCE_PORTS);
        match bind_socket(SocketAddr::new(local, port)) {
            Ok(socket) => return Ok(socket),
            Err(DriverError::Bind { source, .. }) if source.kind() == io::ErrorKind::AddrInUse => {
                continue;
            }
            Err(other) => return Err(other),
        }
    }
    error!(%local, "no free bfd source port");
    Err(DriverError::NoSourcePort { local })
}
