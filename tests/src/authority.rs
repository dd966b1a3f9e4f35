//! Writes authority configurations for the end-to-end tests: routers with a LAN port and
//! WAN ports, peers and adjacencies, services and service routes, under ESKM with
//! self-signed router certificates, or in classic mode with keys from one security policy.

use std::fmt::Write;

/// A service and the prefixes it reaches.
#[derive(Debug, Clone)]
pub struct Service {
    /// Service name.
    pub name: String,
    /// Tenants allowed to reach it.
    pub tenants: Vec<String>,
    /// Destination prefixes, `ADDRESS/LENGTH`.
    pub prefixes: Vec<String>,
}

/// A device interface of a router.
#[derive(Debug, Clone)]
pub struct Port {
    /// Device-interface name, also its Linux interface name.
    pub name: String,
    /// Tenant of a LAN port; `None` for a WAN port.
    pub tenant: Option<String>,
    /// Addresses, `ADDRESS/LENGTH`.
    pub addresses: Vec<String>,
    /// Adjacencies of a WAN port: the peer's waypoint address and the peer's name.
    pub adjacencies: Vec<(String, String)>,
    /// The network interface's `mtu`; `None` leaves the default of 1500.
    pub mtu: Option<u32>,
    /// A DPDK virtual device to open in place of the Linux interface, such as
    /// `net_af_packet0,iface=lan`. A router with such a port runs driver `dpdk` with
    /// [`DPDK_TEST_EAL_ARGUMENTS`], so every port of it needs one.
    pub vdev: Option<String>,
}

/// EAL arguments of the routers that run DPDK ports in tests: ordinary memory in place of
/// hugepages, and no shared configuration, so that several DPDK processes can run side
/// by side. (`--in-memory` would do the latter too, but EAL refuses it with `--no-huge`.)
pub const DPDK_TEST_EAL_ARGUMENTS: [&str; 4] = ["--no-huge", "--no-shconf", "-m", "512"];

impl Port {
    /// Returns a LAN port of `tenant`.
    pub fn lan(name: &str, tenant: &str, addresses: &[&str]) -> Port {
        Port {
            name: name.into(),
            tenant: Some(tenant.into()),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            adjacencies: Vec::new(),
            mtu: None,
            vdev: None,
        }
    }

    /// Returns a WAN port with one address and adjacencies `(peer address, peer)`.
    pub fn wan(name: &str, address: &str, adjacencies: &[(&str, &str)]) -> Port {
        Port {
            name: name.into(),
            tenant: None,
            addresses: vec![address.into()],
            adjacencies: adjacencies.iter().map(|(a, p)| (a.to_string(), p.to_string())).collect(),
            mtu: None,
            vdev: None,
        }
    }
}

/// Where a service goes from a router.
#[derive(Debug, Clone)]
pub enum Route {
    /// To a peer over SVR.
    Peer { service: String, peer: String },
    /// Out of a local port, to a gateway when one is given.
    Local { service: String, port: String, gateway: Option<String> },
}

/// A router of the authority.
#[derive(Debug, Clone)]
pub struct Router {
    /// Router name; its peering-common-name is `svrt-NAME`.
    pub name: String,
    /// Ports, LAN and WAN.
    pub ports: Vec<Port>,
    /// Service routes.
    pub routes: Vec<Route>,
}

impl Router {
    /// Returns the peers named in the router's adjacencies, in order, without repeats.
    pub fn peers(&self) -> Vec<String> {
        let mut peers: Vec<String> = Vec::new();
        for port in &self.ports {
            for (_, peer) in &port.adjacencies {
                if !peers.contains(peer) {
                    peers.push(peer.clone());
                }
            }
        }
        peers
    }
}

/// The security policy of classic mode, which every WAN network interface names in
/// `inter-router-security`.
#[derive(Debug, Clone)]
pub struct ClassicPolicy {
    /// Policy name.
    pub name: String,
    /// `encryption-key` in hex: 32 bytes for aes-cbc-256.
    pub encryption_key: String,
    /// `hmac-key` in hex.
    pub hmac_key: String,
}

/// The whole authority.
#[derive(Debug, Clone, Default)]
pub struct Authority {
    /// Classic mode (`enhanced-security-key-management false`) with this policy; `None`
    /// runs ESKM.
    pub classic: Option<ClassicPolicy>,
    /// Tenants.
    pub tenants: Vec<String>,
    /// Services.
    pub services: Vec<Service>,
    /// Routers.
    pub routers: Vec<Router>,
}

impl Service {
    /// Returns a service reachable by `tenants` at `prefixes`.
    pub fn new(name: &str, tenants: &[&str], prefixes: &[&str]) -> Service {
        Service {
            name: name.into(),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
        }
    }
}

impl Route {
    /// Returns a route of `service` to `peer`.
    pub fn peer(service: &str, peer: &str) -> Route {
        Route::Peer { service: service.into(), peer: peer.into() }
    }

    /// Returns a route of `service` out of `port`.
    pub fn local(service: &str, port: &str, gateway: Option<&str>) -> Route {
        Route::Local {
            service: service.into(),
            port: port.into(),
            gateway: gateway.map(Into::into),
        }
    }
}

impl Authority {
    /// Returns the configuration text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let eskm = self.classic.is_none();
        let _ = writeln!(
            out,
            "config\n    authority\n        name svrtest\n        \
             enhanced-security-key-management {eskm}\n\n        security encrypt-aes256\n            \
             encrypt true\n            encryption-cipher aes-cbc-256\n            hmac true\n            \
             hmac-cipher sha384\n        exit\n"
        );
        if let Some(policy) = &self.classic {
            let _ = writeln!(
                out,
                "        security {}\n            encrypt true\n            encryption-cipher \
                 aes-cbc-256\n            encryption-key {}\n            hmac true\n            \
                 hmac-cipher sha384\n            hmac-key {}\n        exit\n",
                policy.name, policy.encryption_key, policy.hmac_key
            );
        }
        for tenant in &self.tenants {
            let _ = writeln!(out, "        tenant {tenant}\n        exit");
        }
        for service in &self.services {
            let _ = writeln!(out, "        service {}", service.name);
            for prefix in &service.prefixes {
                let _ = writeln!(out, "            address {prefix}");
            }
            let _ = writeln!(out, "            security encrypt-aes256");
            for tenant in &service.tenants {
                let _ = writeln!(
                    out,
                    "            access-policy {tenant}\n                permission allow\n            exit"
                );
            }
            let _ = writeln!(out, "        exit");
        }
        let wan_policy = self.classic.as_ref().map(|policy| policy.name.as_str());
        for router in &self.routers {
            render_router(&mut out, router, wan_policy);
        }
        out.push_str("    exit\nexit\n");
        out
    }
}

fn render_router(out: &mut String, router: &Router, wan_policy: Option<&str>) {
    let name = &router.name;
    let _ = writeln!(out, "        router {name}\n            peering-common-name svrt-{name}");
    for peer in router.peers() {
        let _ = writeln!(
            out,
            "            peer {peer}\n                router-name {peer}\n                \
             peering-common-name svrt-{peer}\n            exit"
        );
    }
    for (index, route) in router.routes.iter().enumerate() {
        match route {
            Route::Peer { service, peer } => {
                let _ = writeln!(
                    out,
                    "            service-route route-{index}\n                service-name \
                     {service}\n                peer {peer}\n            exit"
                );
            }
            Route::Local { service, port, gateway } => {
                let gateway = gateway
                    .as_ref()
                    .map(|g| format!("                    gateway-ip {g}\n"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "            service-route route-{index}\n                service-name \
                     {service}\n                next-hop {name}-node {port}-net\n{gateway}                \
                     exit\n            exit"
                );
            }
        }
    }
    let dpdk = router.ports.iter().any(|port| port.vdev.is_some());
    let driver = if dpdk { "dpdk" } else { "af-xdp" };
    let _ = writeln!(
        out,
        "            node {name}-node\n                role combo\n                dataplane\n                    \
         driver {driver}\n                    polling-mode adaptive"
    );
    if dpdk {
        for argument in DPDK_TEST_EAL_ARGUMENTS {
            let _ = writeln!(out, "                    eal-argument \"{argument}\"");
        }
    }
    let _ = writeln!(out, "                exit");
    for port in &router.ports {
        let binding = match &port.vdev {
            Some(vdev) => format!("vdev \"{vdev}\""),
            None => format!("interface-name {}", port.name),
        };
        let _ = writeln!(
            out,
            "                device-interface {0}\n                    {binding}\n                    \
             network-interface {0}-net",
            port.name
        );
        if let Some(tenant) = &port.tenant {
            let _ = writeln!(out, "                        tenant {tenant}");
        }
        if let Some(mtu) = port.mtu {
            let _ = writeln!(out, "                        mtu {mtu}");
        }
        for address in &port.addresses {
            let (ip, length) = address.split_once('/').unwrap_or((address, "24"));
            let _ = writeln!(
                out,
                "                        address {ip}\n                            prefix-length \
                 {length}\n                        exit"
            );
        }
        if let Some(policy) = wan_policy.filter(|_| !port.adjacencies.is_empty()) {
            let _ = writeln!(out, "                        inter-router-security {policy}");
        }
        if !port.adjacencies.is_empty() {
            let _ = writeln!(
                out,
                "                        neighborhood {0}\n                            topology mesh\n                        exit",
                port.name
            );
        }
        for (address, peer) in &port.adjacencies {
            let _ = writeln!(
                out,
                "                        adjacency {address} {peer}\n                        exit"
            );
        }
        let _ = writeln!(out, "                    exit\n                exit");
    }
    let _ = writeln!(out, "            exit\n        exit");
}
