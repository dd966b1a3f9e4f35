//! What one router of the configuration runs: its ports, peers, peer paths, services and
//! routes, resolved from the authority's text into plain values the daemon acts on.
//!
//! Resolution is pure, so every rule (which node runs here, which interface a path leaves
//! from, which key exchange a peering uses) is checked by tests without sockets or threads.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use svr_dataplane::epoch::ServicePrefix;

use crate::bfd::SessionConfig;
use crate::classic::{ClassicError, ClassicKeys, classic_keys};
use crate::config::{
    CertificateSource, Config, DeviceInterface, DhKeySize, Driver, KeyExchangeAlgorithm,
    MlKemKeySize, Node, Protocol, Router, ServiceRouteTarget,
};
use crate::kex::{DhGroup, KexAlgorithm, KexTimers, MlKemLevel};
use crate::pki::InvalidCertificateBehavior;

/// A router's resolved setup.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The router's name.
    pub router: String,
    /// The node this daemon runs.
    pub node: String,
    /// The router's peering-common-name (its name when none is configured).
    pub peering_common_name: String,
    /// The router's `ml-kem-keygen-priority` (0 when unset).
    pub ml_kem_keygen_priority: u32,
    /// Whether ESKM is on for the authority.
    pub eskm: bool,
    /// Without ESKM: the keys derived from the security policies, with the peer tables in
    /// [`Plan::peers`] order. `None` under ESKM.
    pub classic: Option<Arc<ClassicKeys>>,
    /// Key exchange timers.
    pub timers: KexTimers,
    /// Payload-key rekey interval, or `None` for `never`.
    pub payload_rekey_interval: Option<Duration>,
    /// The router's certificate and key files, when installed.
    pub certificate: Option<(PathBuf, PathBuf)>,
    /// PEM files and PEM texts of the trusted CAs.
    pub trusted_cas: Vec<CertificateSource>,
    /// Certificate revocation lists to poll.
    pub crls: Vec<CrlPlan>,
    /// The reaction to a peer certificate that turns invalid (`invalid-certificate-behavior`).
    pub invalid_certificate_behavior: InvalidCertificateBehavior,
    /// Ports in the order the dataplane indexes them.
    pub ports: Vec<PortPlan>,
    /// Peer routers.
    pub peers: Vec<PeerPlan>,
    /// Peer paths, one BFD session each.
    pub paths: Vec<PathPlan>,
    /// Tenant names.
    pub tenants: Vec<String>,
    /// Services, in configuration order.
    pub services: Vec<ServicePlan>,
    /// Service routes of this router.
    pub routes: Vec<RoutePlan>,
    /// Further DPDK EAL arguments (`eal-argument`), in order.
    pub eal_arguments: Vec<String>,
    /// Polling mode is busy (spin) rather than adaptive.
    pub busy_polling: bool,
    /// Cores for the workers; none means no pinning.
    pub worker_cores: Vec<u16>,
}

/// One `certificate-revocation-list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlPlan {
    /// The configured location: an `http://` URL or an absolute file path.
    pub location: String,
    /// Time between fetches after a successful one (`polling-interval`).
    pub polling_interval: Duration,
    /// Time before the next attempt after a failed fetch (`backoff-interval`).
    pub backoff_interval: Duration,
}

/// A device interface the dataplane opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPlan {
    /// The configured device-interface name.
    pub name: String,
    /// The network-interface name shown in `show peers` output.
    pub network_interface: String,
    /// The Linux interface to bind to with AF_XDP, or the device-interface name for a DPDK
    /// port without one.
    pub linux_name: String,
    /// The I/O backend of the port.
    pub binding: PortBinding,
    /// This router's addresses on the port.
    pub addresses: Vec<IpAddr>,
    /// The same addresses with their prefix lengths: the networks on the port's link.
    pub networks: Vec<(IpAddr, u8)>,
    /// The tenant of a LAN port; `None` for a WAN port.
    pub tenant: Option<String>,
    /// The smallest `mtu` of the port's network interfaces, in bytes (1500 by default).
    pub mtu: u16,
}

/// How the dataplane opens a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortBinding {
    /// An AF_XDP socket on the Linux interface [`PortPlan::linux_name`].
    AfXdp,
    /// A DPDK port. With `fallback` (driver `auto` and an `interface-name`), a port that
    /// DPDK cannot open is opened with AF_XDP instead.
    Dpdk { device: DpdkDevice, fallback: bool },
}

/// A DPDK device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpdkDevice {
    /// A virtual device: the whole `vdev` argument, such as `net_af_packet0,iface=wan0`.
    Vdev(String),
    /// A NIC by PCI address.
    Pci(String),
}

impl DpdkDevice {
    /// The name DPDK gives the port: the vdev's driver-and-index part, or the PCI address.
    pub fn port_name(&self) -> &str {
        match self {
            DpdkDevice::Vdev(argument) => argument.split(',').next().unwrap_or(argument),
            DpdkDevice::Pci(address) => address,
        }
    }
}

impl PortPlan {
    /// Returns whether the port is to be opened with DPDK.
    pub fn is_dpdk(&self) -> bool {
        matches!(self.binding, PortBinding::Dpdk { .. })
    }
}

/// A peer router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPlan {
    /// The peer's router name.
    pub name: String,
    /// The peer's peering-common-name, which its certificate must carry.
    pub peering_common_name: String,
    /// The peer's `ml-kem-keygen-priority`.
    pub ml_kem_keygen_priority: u32,
    /// The key exchange of this peering.
    pub algorithm: KexAlgorithm,
    /// Removed by a configuration reload. The entry keeps its index, so sessions that
    /// refer to the peer by index never reach another peer, but it has no keys or paths.
    pub retired: bool,
}

/// One peer path.
#[derive(Debug, Clone)]
pub struct PathPlan {
    /// Index in [`Plan::peers`].
    pub peer: usize,
    /// Index in [`Plan::ports`] of the port it leaves from.
    pub port: usize,
    /// This router's waypoint.
    pub local: IpAddr,
    /// The peer's waypoint.
    pub remote: IpAddr,
    /// BFD timers merged from router, peer, neighborhood and adjacency.
    pub bfd: SessionConfig,
    /// Removed by a configuration reload: the path keeps its index but has no BFD
    /// session and is never in service.
    pub retired: bool,
}

/// A service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    pub name: String,
    /// Tenants allowed to reach it.
    pub tenants: Vec<String>,
    /// Destination prefixes with protocol and port range (`None`: any).
    pub prefixes: Vec<ServicePrefix>,
    /// Whether the payload is encrypted (the service's security policy).
    pub encrypt: bool,
}

/// The next hop of a service from this router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutePlan {
    /// Over SVR to the peer with this index in [`Plan::peers`].
    Peer { service: String, peer: usize },
    /// Out of the port with this index, to a gateway or straight to the destination.
    Local { service: String, port: usize, gateway: Option<IpAddr> },
}

/// A reason the configuration cannot run as this router.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanError {
    /// The router, opened at `line`, has no node.
    NoNode { router: String, line: u32 },
    /// A device interface has no Linux interface name for AF_XDP.
    NoInterfaceName { device_interface: String },
    /// A device interface of driver `dpdk` has neither a `vdev` nor a `pci-address`.
    NoDpdkDevice { device_interface: String },
    /// A network interface of a peer path has no address to use as waypoint.
    NoWaypoint { network_interface: String, peer: String, line: u32 },
    /// The BFD settings in force on a peer path have a maximum-hold-down-time that is not
    /// above their hold-down-time.
    HoldDownNotBelowMaximum {
        network_interface: String,
        peer: String,
        hold_down: Duration,
        maximum: Duration,
        line: u32,
    },
    /// An adjacency names a peer that is not defined.
    UnknownPeer { peer: String },
    /// A service route names a service or interface that is not defined.
    UnknownReference { what: &'static str, name: String },
    /// The router's client-certificate is given as `content`, which has no private key.
    CertificateContent { certificate: String, line: u32 },
    /// Client certificates are configured but none is this router's, which opens at `line`.
    NoOwnCertificate { router: String, expected: Vec<String>, found: Vec<String>, line: u32 },
    /// Without ESKM, the security policies cannot give the router its keys.
    Classic(ClassicError),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoNode { router, line } => {
                write!(f, "line {line}: router {router} has no node to run")
            }
            PlanError::NoDpdkDevice { device_interface } => write!(
                f,
                "device-interface {device_interface} has neither vdev nor pci-address; \
                 driver dpdk needs one of them"
            ),
            PlanError::NoInterfaceName { device_interface } => write!(
                f,
                "device-interface {device_interface} has no interface-name; AF_XDP needs the \
                 Linux interface to bind to"
            ),
            PlanError::NoWaypoint { network_interface, peer, line } => write!(
                f,
                "line {line}: network-interface {network_interface} has an adjacency to {peer} \
                 but no address of the adjacency's IP family to use as waypoint; add an \
                 address block"
            ),
            PlanError::HoldDownNotBelowMaximum {
                network_interface,
                peer,
                hold_down,
                maximum,
                line,
            } => write!(
                f,
                "line {line}: bfd on network-interface {network_interface} towards {peer}: \
                 maximum-hold-down-time {} must be above hold-down-time {} (seconds, after \
                 the authority, router, interface and adjacency settings are merged)",
                maximum.as_secs(),
                hold_down.as_secs()
            ),
            PlanError::UnknownPeer { peer } => write!(f, "adjacency names unknown peer {peer}"),
            PlanError::UnknownReference { what, name } => write!(f, "unknown {what} {name}"),
            PlanError::CertificateContent { certificate, line } => write!(
                f,
                "line {line}: client-certificate {certificate} is given as content, but the \
                 router's own certificate needs its private key; give it as `file PATH`, with \
                 the key in PATH.key"
            ),
            PlanError::NoOwnCertificate { router, expected, found, line } => write!(
                f,
                "line {line}: router {router}: no client-certificate is named {} (found {}); name the \
                 router's certificate after the router or its peering-common-name, or remove \
                 the client-certificates to use a self-signed one",
                expected.join(" or "),
                found.join(", ")
            ),
            PlanError::Classic(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for PlanError {}

impl Plan {
    /// Resolves the setup of `router` in `config`.
    pub fn resolve(config: &Config, router: &Router) -> Result<Plan, PlanError> {
        let authority = &config.authority;
        let node = router
            .nodes
            .first()
            .ok_or(PlanError::NoNode { router: router.name.clone(), line: router.span.line })?;
        let skm = &authority.security_key_management;
        let ports = ports(node)?;
        let peers = peers(config, router);
        let paths = paths(config, router, &ports, &peers)?;
        let services = authority
            .services
            .iter()
            .map(|service| ServicePlan {
                name: service.name.clone(),
                tenants: service.access_policies.iter().map(|p| p.source.name.clone()).collect(),
                prefixes: prefixes(service),
                encrypt: service
                    .security
                    .as_ref()
                    .and_then(|policy| {
                        authority.security_policies.iter().find(|p| p.name == policy.name)
                    })
                    .is_none_or(|policy| policy.encrypt),
            })
            .collect();
        let routes = routes(router, &ports, &peers)?;
        let classic = if authority.enhanced_security_key_management {
            None
        } else {
            Some(Arc::new(classic_keys(config, router).map_err(PlanError::Classic)?))
        };

        Ok(Plan {
            router: router.name.clone(),
            node: node.name.clone(),
            peering_common_name: router.peering_common_name.clone().unwrap_or(router.name.clone()),
            ml_kem_keygen_priority: router.ml_kem_keygen_priority.map_or(0, u32::from),
            eskm: authority.enhanced_security_key_management,
            classic,
            timers: KexTimers {
                retransmit_interval: skm.peer_key_retransmit_interval,
                timeout: skm.peer_key_timeout,
                rekey_interval: interval(skm.peer_key_rekey_interval),
                ..KexTimers::default()
            },
            payload_rekey_interval: interval(skm.payload_key_rekey_interval),
            certificate: own_certificate(authority, router)?,
            trusted_cas: authority
                .trusted_ca_certificates
                .iter()
                .map(|c| c.source.clone())
                .collect(),
            crls: authority
                .certificate_revocation_lists
                .iter()
                .map(|crl| CrlPlan {
                    location: crl.url.clone(),
                    polling_interval: crl.polling_interval,
                    backoff_interval: crl.backoff_interval,
                })
                .collect(),
            invalid_certificate_behavior: match skm.invalid_certificate_behavior {
                crate::config::InvalidCertificateBehavior::FailSoft => {
                    InvalidCertificateBehavior::FailSoft
                }
                crate::config::InvalidCertificateBehavior::FailHard => {
                    InvalidCertificateBehavior::FailHard
                }
            },
            ports,
            peers,
            paths,
            tenants: authority.tenants.iter().map(|t| t.name.clone()).collect(),
            services,
            routes,
            eal_arguments: node.dataplane.eal_arguments.clone(),
            busy_polling: matches!(node.dataplane.polling_mode, crate::config::PollingMode::Busy),
            worker_cores: node.dataplane.worker_cores.clone(),
        })
    }
}

/// Picks the router's client-certificate and returns its certificate and key files.
///
/// One authority file serves every router, so a router takes the client-certificate named
/// after it or after its peering-common-name. Failing that, it takes the only one named
/// after no router, whose name the daemon checks against the certificate at start. It
/// never takes a certificate named after another router.
fn own_certificate(
    authority: &crate::config::Authority,
    router: &Router,
) -> Result<Option<(PathBuf, PathBuf)>, PlanError> {
    let certificates = &authority.client_certificates;
    if certificates.is_empty() {
        return Ok(None);
    }
    let own_names: Vec<&str> = [Some(router.name.as_str()), router.peering_common_name.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let named_after_a_router = |name: &str| {
        authority
            .routers
            .iter()
            .any(|r| r.name == name || r.peering_common_name.as_deref() == Some(name))
    };
    let own = certificates.iter().find(|c| own_names.contains(&c.name.as_str()));
    let unnamed: Vec<_> = certificates.iter().filter(|c| !named_after_a_router(&c.name)).collect();
    let chosen = match (own, unnamed.as_slice()) {
        (Some(own), _) => own,
        (None, [only]) => *only,
        (None, _) => {
            return Err(PlanError::NoOwnCertificate {
                router: router.name.clone(),
                expected: own_names.iter().map(|n| (*n).to_owned()).collect(),
                found: certificates.iter().map(|c| c.name.clone()).collect(),
                line: router.span.line,
            });
        }
    };
    match &chosen.source {
        CertificateSource::File(file) => {
            let pem = PathBuf::from(file);
            let key = pem.with_extension("key");
            Ok(Some((pem, key)))
        }
        CertificateSource::Content(_) => Err(PlanError::CertificateContent {
            certificate: chosen.name.clone(),
            line: chosen.span.line,
        }),
    }
}

/// MTU of an interface without a configured `mtu`.
const DEFAULT_MTU: u16 = 1500;

impl Plan {
    /// Returns the WAN MTU the forwarding engine works with: the smallest `mtu` of the WAN
    /// ports, or 1500 without one.
    // NOTE: the engine has one WAN MTU for all ports, so a router whose WAN ports differ
    // fragments for the smallest one on every port.
    pub fn wan_mtu(&self) -> u16 {
        self.ports
            .iter()
            .filter(|port| port.tenant.is_none())
            .map(|port| port.mtu)
            .min()
            .unwrap_or(DEFAULT_MTU)
    }
}

/// Returns how `device` is opened under `driver`. The configuration checker has already
/// required the fields each driver needs, so the errors here cover configurations built
/// without it.
fn binding(driver: Driver, device: &DeviceInterface) -> Result<PortBinding, PlanError> {
    let dpdk = match (&device.vdev, &device.pci_address) {
        (Some(vdev), _) => Some(DpdkDevice::Vdev(vdev.clone())),
        (None, Some(pci)) => Some(DpdkDevice::Pci(pci.clone())),
        (None, None) => None,
    };
    match (driver, dpdk) {
        (Driver::AfXdp, _) => Ok(PortBinding::AfXdp),
        (Driver::Dpdk, Some(device)) => Ok(PortBinding::Dpdk { device, fallback: false }),
        (Driver::Dpdk, None) => {
            Err(PlanError::NoDpdkDevice { device_interface: device.name.clone() })
        }
        (Driver::Auto, Some(dpdk)) => {
            Ok(PortBinding::Dpdk { device: dpdk, fallback: device.interface_name.is_some() })
        }
        (Driver::Auto, None) => Ok(PortBinding::AfXdp),
    }
}

fn ports(node: &Node) -> Result<Vec<PortPlan>, PlanError> {
    let mut ports = Vec::new();
    for device in &node.device_interfaces {
        let binding = binding(node.dataplane.driver, device)?;
        let linux_name = match (&device.interface_name, &binding) {
            (Some(name), _) => name.clone(),
            (None, PortBinding::Dpdk { .. }) => device.name.clone(),
            (None, PortBinding::AfXdp) => {
                return Err(PlanError::NoInterfaceName { device_interface: device.name.clone() });
            }
        };
        let network = device.network_interfaces.first();
        ports.push(PortPlan {
            name: device.name.clone(),
            network_interface: network.map_or(device.name.clone(), |n| n.name.clone()),
            linux_name,
            binding,
            addresses: device
                .network_interfaces
                .iter()
                .flat_map(|n| n.addresses.iter().map(|a| a.ip_address))
                .collect(),
            networks: device
                .network_interfaces
                .iter()
                .flat_map(|n| n.addresses.iter().map(|a| (a.ip_address, a.prefix_length)))
                .collect(),
            tenant: device
                .network_interfaces
                .iter()
                .find_map(|n| n.tenant.as_ref().map(|t| t.name.clone())),
            // The configuration limits `mtu` to 576-9216, so it fits.
            mtu: device
                .network_interfaces
                .iter()
                .map(|n| u16::try_from(n.mtu).unwrap_or(u16::MAX))
                .min()
                .unwrap_or(DEFAULT_MTU),
        });
    }
    Ok(ports)
}

fn peers(config: &Config, router: &Router) -> Vec<PeerPlan> {
    router
        .peers
        .iter()
        .map(|peer| {
            let remote_name = peer.router_name.clone().unwrap_or(peer.name.clone());
            let remote = config.router(&remote_name);
            let peering_common_name = peer
                .peering_common_name
                .clone()
                .or_else(|| remote.and_then(|r| r.peering_common_name.clone()))
                .unwrap_or(remote_name.clone());
            let priority = peer
                .ml_kem_keygen_priority
                .or_else(|| remote.and_then(|r| r.ml_kem_keygen_priority))
                .map_or(0, u32::from);
            PeerPlan {
                name: peer.name.clone(),
                peering_common_name,
                ml_kem_keygen_priority: priority,
                algorithm: kex_algorithm(&config.key_exchange_algorithm(router, peer)),
                retired: false,
            }
        })
        .collect()
}

fn paths(
    config: &Config,
    router: &Router,
    ports: &[PortPlan],
    peers: &[PeerPlan],
) -> Result<Vec<PathPlan>, PlanError> {
    let mut paths = Vec::new();
    for path in router.peer_paths() {
        let peer = peers
            .iter()
            .position(|p| p.name == path.adjacency.peer.name)
            .ok_or_else(|| PlanError::UnknownPeer { peer: path.adjacency.peer.name.clone() })?;
        let port =
            ports.iter().position(|p| p.name == path.device_interface.name).ok_or_else(|| {
                PlanError::NoInterfaceName { device_interface: path.device_interface.name.clone() }
            })?;
        let remote = path.adjacency.ip_address;
        // The waypoint is this interface's address of the same family as the peer's.
        let local = path
            .network_interface
            .addresses
            .iter()
            .map(|a| a.ip_address)
            .find(|a| a.is_ipv4() == remote.is_ipv4())
            .ok_or_else(|| PlanError::NoWaypoint {
                network_interface: path.network_interface.name.clone(),
                peer: path.adjacency.peer.name.clone(),
                line: path.adjacency.span.line,
            })?;
        let settings = config.bfd_settings(router, path.network_interface, path.adjacency);
        if settings.maximum_hold_down_time <= settings.hold_down_time {
            return Err(PlanError::HoldDownNotBelowMaximum {
                network_interface: path.network_interface.name.clone(),
                peer: path.adjacency.peer.name.clone(),
                hold_down: settings.hold_down_time,
                maximum: settings.maximum_hold_down_time,
                line: path.adjacency.span.line,
            });
        }
        // RFC 5880 simple password needs a password, and the configuration has no leaf for
        // one. Peer paths authenticate with keys from the pair secret instead.
        if settings.authentication_type == crate::config::BfdAuthentication::Simple {
            tracing::warn!(
                peer = %path.adjacency.peer.name,
                "bfd authentication-type simple is not supported (no password can be \
                 configured); the path uses sha256 (HMAC-SHA-256 with pair-key material)"
            );
        }
        // The configuration's ranges are within BFD's, so this only falls back to the
        // defaults if the two ever disagree.
        let bfd = SessionConfig::new(
            settings.desired_tx_interval,
            settings.required_min_rx_interval,
            settings.multiplier,
        )
        .unwrap_or_default();
        paths.push(PathPlan { peer, port, local, remote, bfd, retired: false });
    }
    Ok(paths)
}

fn prefixes(service: &crate::config::Service) -> Vec<ServicePrefix> {
    let mut out = Vec::new();
    for prefix in &service.addresses {
        if service.transports.is_empty() {
            out.push(ServicePrefix {
                address: prefix.address,
                len: prefix.length,
                protocol: None,
                ports: None,
            });
        }
        for transport in &service.transports {
            let protocol = match transport.protocol {
                Protocol::Tcp => 6,
                Protocol::Udp => 17,
                Protocol::Icmp => 1,
            };
            if transport.port_ranges.is_empty() {
                out.push(ServicePrefix {
                    address: prefix.address,
                    len: prefix.length,
                    protocol: Some(protocol),
                    ports: None,
                });
            }
            for range in &transport.port_ranges {
                out.push(ServicePrefix {
                    address: prefix.address,
                    len: prefix.length,
                    protocol: Some(protocol),
                    ports: Some((range.start, range.end)),
                });
            }
        }
    }
    out
}

fn routes(
    router: &Router,
    ports: &[PortPlan],
    peers: &[PeerPlan],
) -> Result<Vec<RoutePlan>, PlanError> {
    let mut routes = Vec::new();
    for route in &router.service_routes {
        let service = route.service_name.name.clone();
        match &route.target {
            ServiceRouteTarget::Peer(peer) => {
                let index = peers.iter().position(|p| p.name == peer.name).ok_or_else(|| {
                    PlanError::UnknownReference { what: "peer", name: peer.name.clone() }
                })?;
                routes.push(RoutePlan::Peer { service, peer: index });
            }
            ServiceRouteTarget::NextHops(hops) => {
                for hop in hops {
                    let port = ports
                        .iter()
                        .position(|p| {
                            p.network_interface == hop.interface.name
                                || p.name == hop.interface.name
                        })
                        .ok_or_else(|| PlanError::UnknownReference {
                            what: "interface",
                            name: hop.interface.name.clone(),
                        })?;
                    routes.push(RoutePlan::Local {
                        service: service.clone(),
                        port,
                        gateway: hop.gateway_ip,
                    });
                }
            }
        }
    }
    Ok(routes)
}

fn interval(interval: crate::config::RekeyInterval) -> Option<Duration> {
    match interval {
        crate::config::RekeyInterval::Every(every) => Some(every),
        crate::config::RekeyInterval::Never => None,
    }
}

/// Maps the configuration's key-exchange case to the engine's.
pub fn kex_algorithm(algorithm: &KeyExchangeAlgorithm) -> KexAlgorithm {
    let dh = |size: DhKeySize| match size {
        DhKeySize::Bits1024 => DhGroup::Modp1024,
        DhKeySize::Bits2048 => DhGroup::Modp2048,
        DhKeySize::Bits4096 => DhGroup::Modp4096,
    };
    let ml_kem = |size: MlKemKeySize| match size {
        MlKemKeySize::MlKem512 => MlKemLevel::MlKem512,
        MlKemKeySize::MlKem768 => MlKemLevel::MlKem768,
        MlKemKeySize::MlKem1024 => MlKemLevel::MlKem1024,
    };
    match *algorithm {
        KeyExchangeAlgorithm::DiffieHellman { dh: size } => KexAlgorithm::DiffieHellman(dh(size)),
        KeyExchangeAlgorithm::MlKem { ml_kem: size } => KexAlgorithm::MlKem(ml_kem(size)),
        KeyExchangeAlgorithm::DiffieHellmanMlKem { dh: d, ml_kem: m } => {
            KexAlgorithm::Hybrid(dh(d), ml_kem(m))
        }
    }
}
