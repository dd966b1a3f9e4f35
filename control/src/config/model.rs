//! The typed configuration svrd runs from, with the product's defaults applied.
//!
//! `Option` marks settings whose absence means something (an override not given, a
//! reference not set); everything else carries its default.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use zeroize::Zeroizing;

use super::error::Span;
use super::value::Prefix;

/// `authority`: everything one svrd reads, of which it runs one router.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Authority {
    pub name: Option<String>,
    pub enhanced_security_key_management: bool,
    pub security_key_management: SecurityKeyManagement,
    pub trusted_ca_certificates: Vec<Certificate>,
    pub client_certificates: Vec<Certificate>,
    pub certificate_revocation_lists: Vec<CertificateRevocationList>,
    pub security_policies: Vec<SecurityPolicy>,
    pub tenants: Vec<Tenant>,
    pub services: Vec<Service>,
    pub routers: Vec<Router>,
}

/// `authority > security-key-management`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityKeyManagement {
    pub payload_key_rekey_interval: RekeyInterval,
    pub peer_key_rekey_interval: RekeyInterval,
    pub peer_key_retransmit_interval: Duration,
    pub peer_key_timeout: Duration,
    pub invalid_certificate_behavior: InvalidCertificateBehavior,
    pub key_exchange_algorithm: KeyExchangeAlgorithm,
}

impl Default for SecurityKeyManagement {
    fn default() -> Self {
        SecurityKeyManagement {
            payload_key_rekey_interval: RekeyInterval::Every(hours(24)),
            peer_key_rekey_interval: RekeyInterval::Every(hours(24)),
            peer_key_retransmit_interval: Duration::from_secs(30),
            peer_key_timeout: Duration::from_secs(3600),
            invalid_certificate_behavior: InvalidCertificateBehavior::FailSoft,
            key_exchange_algorithm: KeyExchangeAlgorithm::default(),
        }
    }
}

pub(crate) const fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

/// A rekey interval: a period, or `never`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RekeyInterval {
    Every(Duration),
    Never,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InvalidCertificateBehavior {
    /// Raise an alarm and keep peering.
    #[default]
    FailSoft,
    /// Raise an alarm and remove every peering with the peer.
    FailHard,
}

/// How two routers agree on their peer key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyExchangeAlgorithm {
    DiffieHellman {
        dh: DhKeySize,
    },
    MlKem {
        ml_kem: MlKemKeySize,
    },
    /// Both keys; BFD metadata is sealed with the DH key first, then the ML-KEM key.
    DiffieHellmanMlKem {
        dh: DhKeySize,
        ml_kem: MlKemKeySize,
    },
}

impl Default for KeyExchangeAlgorithm {
    fn default() -> Self {
        KeyExchangeAlgorithm::DiffieHellman { dh: DhKeySize::default() }
    }
}

impl KeyExchangeAlgorithm {
    /// The configuration keyword of the case.
    pub fn keyword(&self) -> &'static str {
        match self {
            KeyExchangeAlgorithm::DiffieHellman { .. } => "diffie-hellman",
            KeyExchangeAlgorithm::MlKem { .. } => "ml-kem",
            KeyExchangeAlgorithm::DiffieHellmanMlKem { .. } => "diffie-hellman-ml-kem",
        }
    }

    pub fn dh_key_size(&self) -> Option<DhKeySize> {
        match self {
            KeyExchangeAlgorithm::DiffieHellman { dh }
            | KeyExchangeAlgorithm::DiffieHellmanMlKem { dh, .. } => Some(*dh),
            KeyExchangeAlgorithm::MlKem { .. } => None,
        }
    }

    pub fn ml_kem_key_size(&self) -> Option<MlKemKeySize> {
        match self {
            KeyExchangeAlgorithm::MlKem { ml_kem }
            | KeyExchangeAlgorithm::DiffieHellmanMlKem { ml_kem, .. } => Some(*ml_kem),
            KeyExchangeAlgorithm::DiffieHellman { .. } => None,
        }
    }
}

/// Diffie-Hellman group size in bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DhKeySize {
    Bits1024,
    #[default]
    Bits2048,
    Bits4096,
}

impl DhKeySize {
    pub fn bits(self) -> u32 {
        match self {
            DhKeySize::Bits1024 => 1024,
            DhKeySize::Bits2048 => 2048,
            DhKeySize::Bits4096 => 4096,
        }
    }
}

/// ML-KEM parameter set (FIPS 203).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MlKemKeySize {
    MlKem512,
    #[default]
    MlKem768,
    MlKem1024,
}

impl MlKemKeySize {
    pub fn parameter_set(self) -> u32 {
        match self {
            MlKemKeySize::MlKem512 => 512,
            MlKemKeySize::MlKem768 => 768,
            MlKemKeySize::MlKem1024 => 1024,
        }
    }
}

/// `trusted-ca-certificate` or `client-certificate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    pub name: String,
    pub source: CertificateSource,
    pub validation_mode: ValidationMode,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificateSource {
    /// PEM text in the configuration.
    Content(String),
    /// A file name, resolved by the PKI store.
    File(String),
}

/// How strictly a certificate is checked when the configuration is loaded; runtime checks
/// always enforce everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ValidationMode {
    #[default]
    Strict,
    Warn,
}

/// `certificate-revocation-list URL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateRevocationList {
    pub url: String,
    pub polling_interval: Duration,
    pub backoff_interval: Duration,
    pub span: Span,
}

/// `security NAME`: a policy for SVR metadata or payload in classic (non-ESKM) mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityPolicy {
    pub name: String,
    pub description: Option<String>,
    pub encrypt: bool,
    pub encryption_cipher: EncryptionCipher,
    /// Decoded from hex; `None` means svrd generates one.
    pub encryption_key: Option<SecretBytes>,
    pub encryption_iv: Option<SecretBytes>,
    pub hmac: bool,
    pub hmac_cipher: HmacCipher,
    pub hmac_key: Option<SecretBytes>,
    pub hmac_mode: HmacMode,
    pub adaptive_encryption: bool,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncryptionCipher {
    #[default]
    AesCbc128,
    AesCbc256,
}

impl EncryptionCipher {
    pub fn key_len(self) -> usize {
        match self {
            EncryptionCipher::AesCbc128 => 16,
            EncryptionCipher::AesCbc256 => 32,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HmacCipher {
    Sha1,
    #[default]
    Sha256,
    Sha256_128,
    Sha384,
    Sha512,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HmacMode {
    Disabled,
    Regular,
    #[default]
    TimeBased,
}

/// Key bytes from the configuration: wiped on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes({} bytes)", self.0.len())
    }
}

/// A name that refers to another element, with the position of the reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ref {
    pub name: String,
    pub span: Span,
}

impl Ref {
    pub fn as_str(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// `tenant NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub name: String,
    pub description: Option<String>,
    pub security: Option<Ref>,
    pub span: Span,
}

/// `service NAME`: destination prefixes that tenants may reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub description: Option<String>,
    pub addresses: Vec<Prefix>,
    /// Empty means every protocol and port.
    pub transports: Vec<Transport>,
    pub access_policies: Vec<AccessPolicy>,
    /// The payload security policy.
    pub security: Option<Ref>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transport {
    pub protocol: Protocol,
    /// Empty means every port.
    pub port_ranges: Vec<PortRange>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

/// Inclusive port range; `end-port` defaults to `start-port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessPolicy {
    /// The tenant allowed or denied.
    pub source: Ref,
    pub permission: Permission,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Permission {
    #[default]
    Allow,
    Deny,
}

/// `router NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Router {
    pub name: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub inter_node_security: Option<Ref>,
    pub peering_common_name: Option<String>,
    pub ml_kem_keygen_priority: Option<u8>,
    pub key_exchange_algorithm_override: Option<KeyExchangeAlgorithm>,
    pub bfd: BfdOverrides,
    pub service_routes: Vec<ServiceRoute>,
    /// Peers written by hand and peers generated from shared neighborhoods.
    pub peers: Vec<Peer>,
    pub nodes: Vec<Node>,
    pub span: Span,
}

/// `service-route NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRoute {
    pub name: String,
    pub service_name: Ref,
    pub target: ServiceRouteTarget,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceRouteTarget {
    /// Over SVR to this peer of the router.
    Peer(Ref),
    /// Out of a local interface: the router is the egress of the service.
    NextHops(Vec<NextHop>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub node_name: Ref,
    pub interface: Ref,
    pub gateway_ip: Option<IpAddr>,
}

/// `router > peer NAME`: another router this one exchanges SVR traffic with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub authority_name: Option<String>,
    pub router_name: Option<String>,
    pub description: Option<String>,
    pub peering_common_name: Option<String>,
    pub ml_kem_keygen_priority: Option<u8>,
    pub key_exchange_algorithm_override: Option<KeyExchangeAlgorithm>,
    pub generated: bool,
    pub bfd: BfdOverrides,
    pub span: Span,
}

impl Peer {
    /// The remote router's name: `router-name`, else the peer's own name.
    pub fn remote_router(&self) -> &str {
        self.router_name.as_deref().unwrap_or(&self.name)
    }
}

/// `router > node NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub description: Option<String>,
    pub role: NodeRole,
    pub dataplane: Dataplane,
    pub device_interfaces: Vec<DeviceInterface>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NodeRole {
    #[default]
    Combo,
    Control,
    Slice,
    Conductor,
}

/// `node > dataplane`: svrd's packet I/O settings (not part of the product's model).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dataplane {
    pub driver: Driver,
    pub polling_mode: PollingMode,
    /// CPUs for worker threads; empty lets svrd choose.
    pub worker_cores: Vec<u16>,
    /// Extra DPDK EAL arguments, one word each, in order.
    pub eal_arguments: Vec<String>,
}

/// Packet I/O backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Driver {
    /// DPDK when a DPDK port is configured and usable, else AF_XDP.
    #[default]
    Auto,
    Dpdk,
    AfXdp,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PollingMode {
    /// Spin under load, sleep on the queue's wakeup when idle.
    #[default]
    Adaptive,
    /// Spin on a dedicated core.
    Busy,
}

/// `node > device-interface NAME`: one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInterface {
    pub name: String,
    pub description: Option<String>,
    pub interface_type: DeviceInterfaceType,
    /// DPDK port by PCI address.
    pub pci_address: Option<String>,
    /// DPDK virtual device argument, such as `net_af_packet0,iface=veth0`.
    pub vdev: Option<String>,
    /// Linux interface for AF_XDP.
    pub interface_name: Option<String>,
    pub network_interfaces: Vec<NetworkInterface>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceInterfaceType {
    #[default]
    Ethernet,
    Host,
}

/// `device-interface > network-interface NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInterface {
    pub name: String,
    pub description: Option<String>,
    /// The tenant of traffic arriving on a LAN interface.
    pub tenant: Option<Ref>,
    pub addresses: Vec<InterfaceAddress>,
    pub mtu: u32,
    pub enforced_mss: EnforcedMss,
    /// The policy that decrypts SVR metadata received here (classic mode).
    pub inter_router_security: Option<Ref>,
    pub neighborhoods: Vec<Neighborhood>,
    /// Adjacencies written by hand and generated from neighborhoods.
    pub adjacencies: Vec<Adjacency>,
    pub span: Span,
}

/// `network-interface > address IP`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub ip_address: IpAddr,
    pub prefix_length: u8,
    pub gateway: Option<IpAddr>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EnforcedMss {
    #[default]
    Disabled,
    /// Clamp by the path MTU less SVR's overhead.
    Automatic,
    Fixed(u16),
}

/// `network-interface > neighborhood NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighborhood {
    pub name: String,
    pub bfd: BfdOverrides,
    pub topology: Topology,
    pub peer_connectivity: PeerConnectivity,
    pub udp_transform: UdpTransformMode,
    pub payload_encryption_override: Option<PayloadEncryptionOverride>,
    pub span: Span,
}

/// Who peers with whom in a neighborhood: hubs with spokes and meshes, spokes with hubs and
/// meshes, meshes with everyone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Topology {
    #[default]
    Mesh,
    Hub,
    Spoke,
}

impl Topology {
    pub fn peers_with(self, other: Topology) -> bool {
        !matches!(
            (self, other),
            (Topology::Hub, Topology::Hub) | (Topology::Spoke, Topology::Spoke)
        )
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PeerConnectivity {
    #[default]
    Bidirectional,
    /// This side is not reachable from outside (behind NAT): it only initiates.
    OutboundOnly,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UdpTransformMode {
    #[default]
    AutoDetect,
    AlwaysTransform,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadEncryptionOverride {
    /// Encrypt the payload even when the service policy says not to.
    EnableEncryption,
    /// Follow the service policy.
    DisabledOverride,
}

/// `network-interface > adjacency IP PEER`: one peer path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adjacency {
    pub ip_address: IpAddr,
    pub peer: Ref,
    pub bfd: BfdOverrides,
    pub cost: u32,
    pub generated: bool,
    /// The policy that encrypts SVR metadata sent on this path (classic mode).
    pub inter_router_security: Option<Ref>,
    pub payload_encryption_override: Option<PayloadEncryptionOverride>,
    pub port_ranges: Vec<PortRange>,
    /// The neighborhood whose BFD settings apply: the one the adjacency was generated from,
    /// or the interface's only neighborhood.
    pub neighborhood: Option<String>,
    pub span: Span,
}

/// BFD settings written at one level; unset fields come from the level above.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BfdOverrides {
    pub state: Option<bool>,
    pub desired_tx_interval: Option<Duration>,
    pub required_min_rx_interval: Option<Duration>,
    pub required_min_echo_interval: Option<Duration>,
    pub multiplier: Option<u8>,
    pub link_test_interval: Option<Duration>,
    pub link_test_length: Option<u8>,
    pub hold_down_time: Option<Duration>,
    pub dynamic_damping: Option<bool>,
    pub maximum_hold_down_time: Option<Duration>,
    pub authentication_type: Option<BfdAuthentication>,
}

/// BFD settings in force on one peer path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdSettings {
    pub enabled: bool,
    pub desired_tx_interval: Duration,
    pub required_min_rx_interval: Duration,
    pub required_min_echo_interval: Duration,
    pub multiplier: u8,
    pub link_test_interval: Duration,
    pub link_test_length: u8,
    pub hold_down_time: Duration,
    pub dynamic_damping: bool,
    pub maximum_hold_down_time: Duration,
    pub authentication_type: BfdAuthentication,
}

impl Default for BfdSettings {
    fn default() -> Self {
        BfdSettings {
            enabled: true,
            desired_tx_interval: Duration::from_millis(1000),
            required_min_rx_interval: Duration::from_millis(500),
            required_min_echo_interval: Duration::from_millis(1000),
            multiplier: 3,
            link_test_interval: Duration::from_secs(10),
            link_test_length: 10,
            hold_down_time: Duration::from_secs(5),
            dynamic_damping: false,
            maximum_hold_down_time: Duration::from_secs(3600),
            authentication_type: BfdAuthentication::Sha256,
        }
    }
}

impl BfdSettings {
    /// Applies `levels` from the least specific to the most specific over the defaults.
    pub fn merged(levels: &[&BfdOverrides]) -> BfdSettings {
        let mut s = BfdSettings::default();
        for o in levels {
            s.enabled = o.state.unwrap_or(s.enabled);
            s.desired_tx_interval = o.desired_tx_interval.unwrap_or(s.desired_tx_interval);
            s.required_min_rx_interval =
                o.required_min_rx_interval.unwrap_or(s.required_min_rx_interval);
            s.required_min_echo_interval =
                o.required_min_echo_interval.unwrap_or(s.required_min_echo_interval);
            s.multiplier = o.multiplier.unwrap_or(s.multiplier);
            s.link_test_interval = o.link_test_interval.unwrap_or(s.link_test_interval);
            s.link_test_length = o.link_test_length.unwrap_or(s.link_test_length);
            s.hold_down_time = o.hold_down_time.unwrap_or(s.hold_down_time);
            s.dynamic_damping = o.dynamic_damping.unwrap_or(s.dynamic_damping);
            s.maximum_hold_down_time = o.maximum_hold_down_time.unwrap_or(s.maximum_hold_down_time);
            s.authentication_type = o.authentication_type.unwrap_or(s.authentication_type);
        }
        s
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BfdAuthentication {
    Simple,
    #[default]
    Sha256,
}
