//! BFD over the kernel's UDP sockets: one listener per local address and flavour (port
//! 1280 for SVR peer paths, 3784 for RFC 5881 single hop), TTL 255 and DSCP CS6 on every
//! packet sent, and the received TTL read from ancillary data.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use rand::RngExt;
use tracing::{error, warn};

use super::driver::{DriverError, Received, Transport};
use super::engine::PathSpec;
use super::{Flavour, GTSM_TTL, SINGLE_HOP_SOURCE_PORTS};

/// Type of service of every BFD packet sent: DSCP CS6 (network control), as routers
/// commonly mark BFD.
pub(super) const BFD_TOS: u8 = 0xc0;

/// Attempts at binding a random single-hop source port before giving up.
const SOURCE_PORT_ATTEMPTS: usize = 64;

/// BFD on kernel UDP sockets in the calling thread's network namespace.
#[derive(Debug)]
pub struct SocketTransport {
    listeners: Vec<Listener>,
    /// Per path, in the order paths were attached: the socket it sends from.
    senders: Vec<SendSocket>,
    /// Listeners found readable by the last [`Transport::wait`].
    readable: Vec<usize>,
    /// Receive buffer, large enough for any UDP datagram.
    buffer: Vec<u8>,
}

/// A socket the transport reads from.
#[derive(Debug)]
struct Listener {
    flavour: Flavour,
    local: IpAddr,
    socket: UdpSocket,
}

#[derive(Debug)]
enum SendSocket {
    Listener(usize),
    Own(UdpSocket),
}

impl SocketTransport {
    /// A transport with no socket yet; [`Transport::attach`] binds them.
    pub fn new() -> SocketTransport {
        SocketTransport {
            listeners: Vec::new(),
            senders: Vec::new(),
            readable: Vec::new(),
            buffer: vec![0u8; 65536],
        }
    }

    fn receive_one(&mut self, index: usize) -> Option<(usize, IpAddr, Option<u8>)> {
        let socket = &self.listeners[index].socket;
        let mut iov = [IoSliceMut::new(&mut self.buffer)];
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
}

impl Default for SocketTransport {
    fn default() -> SocketTransport {
        SocketTransport::new()
    }
}

impl Transport for SocketTransport {
    fn attach(&mut self, spec: &PathSpec) -> Result<(), DriverError> {
        let sender = sockets_for(&mut self.listeners, spec)?;
        self.senders.push(sender);
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> Result<(), DriverError> {
        self.readable.clear();
        let mut fds: Vec<PollFd<'_>> = self
            .listeners
            .iter()
            .map(|l| PollFd::new(l.socket.as_fd(), PollFlags::POLLIN))
            .collect();
        let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(()),
            Err(errno) => return Err(DriverError::Poll { source: io::Error::from(errno) }),
        }
        let ready: Vec<usize> = fds
            .iter()
            .enumerate()
            .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(index, _)| index)
            .collect();
        self.readable = ready;
        Ok(())
    }

    fn receive(&mut self, limit: usize, handle: &mut dyn FnMut(Received<'_>)) {
        for index in std::mem::take(&mut self.readable) {
            for _ in 0..limit {
                let Some((len, remote, ttl)) = self.receive_one(index) else {
                    break;
                };
                let listener = &self.listeners[index];
                handle(Received {
                    flavour: listener.flavour,
                    local: listener.local,
                    remote,
                    ttl,
                    datagram: &self.buffer[..len],
                });
            }
        }
    }

    fn send(&mut self, path: usize, spec: &PathSpec, datagram: &[u8]) -> Result<(), String> {
        let target = SocketAddr::new(spec.remote, spec.flavour.port());
        let socket = match self.senders.get(path) {
            Some(SendSocket::Listener(index)) => &self.listeners[*index].socket,
            Some(SendSocket::Own(socket)) => socket,
            None => return Err(format!("no socket for bfd path {path}")),
        };
        socket.send_to(datagram, target).map(|_| ()).map_err(|error| format!("{target}: {error}"))
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
    let tos = i32::from(BFD_TOS);
    if addr.is_ipv4() {
        socket
            .set_ttl(u32::from(GTSM_TTL))
            .map_err(|source| DriverError::SocketOption { option: "IP_TTL", source })?;
        setsockopt(&socket, sockopt::Ipv4Tos, &tos).map_err(option_error("IP_TOS"))?;
    } else {
        setsockopt(&socket, sockopt::Ipv6Ttl, &ttl).map_err(option_error("IPV6_UNICAST_HOPS"))?;
        setsockopt(&socket, sockopt::Ipv6TClass, &tos).map_err(option_error("IPV6_TCLASS"))?;
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
