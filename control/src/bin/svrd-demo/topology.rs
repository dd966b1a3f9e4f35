//! The demo's names and addresses, the same as those of `scripts/lib/demo-topology.sh`:
//!
//! ```text
//!  host1 ── lan ── r1 ══ wan-a ══ r2 ── lan ── host5
//!                    ╚══ wan-b ══╝
//! ```
//!
//! The MAC addresses are locally administered (first octet 0x02) and made up here,
//! because no kernel interface gives the memory ports one.

use std::net::{Ipv4Addr, Ipv6Addr};

/// One end of the topology: a router with its host.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    pub router: &'static str,
    pub peer: &'static str,
    pub host_mac: [u8; 6],
    pub host_v4: Ipv4Addr,
    pub host_v6: Ipv6Addr,
    pub lan_mac: [u8; 6],
    /// The router's LAN addresses, the host's gateways.
    pub lan_v4: Ipv4Addr,
    pub lan_v6: Ipv6Addr,
    /// The LAN prefixes, for the service of this site.
    pub lan_v4_net: &'static str,
    pub lan_v6_net: &'static str,
    /// The router's waypoints on wan-a and wan-b.
    pub wan: [Ipv4Addr; 2],
    pub wan_macs: [[u8; 6]; 2],
}

/// The two WAN links, in the order of [`Site::wan`].
pub const WAN_LINKS: [&str; 2] = ["wan-a", "wan-b"];

/// Prefix length of every WAN subnet.
pub const WAN_PREFIX_LEN: u8 = 24;

pub const R1: Site = Site {
    router: "r1",
    peer: "r2",
    host_mac: [0x02, 0x5e, 0, 0, 0x01, 0x10],
    host_v4: Ipv4Addr::new(10, 231, 1, 10),
    host_v6: Ipv6Addr::new(0xfd31, 1, 0, 0, 0, 0, 0, 0x10),
    lan_mac: [0x02, 0x5e, 0, 0x01, 0x01, 0x01],
    lan_v4: Ipv4Addr::new(10, 231, 1, 1),
    lan_v6: Ipv6Addr::new(0xfd31, 1, 0, 0, 0, 0, 0, 1),
    lan_v4_net: "10.231.1.0/24",
    lan_v6_net: "fd31:1::/64",
    wan: [Ipv4Addr::new(10, 231, 10, 1), Ipv4Addr::new(10, 231, 20, 1)],
    wan_macs: [[0x02, 0x5e, 0, 0x01, 0x0a, 0x01], [0x02, 0x5e, 0, 0x01, 0x14, 0x01]],
};

pub const R2: Site = Site {
    router: "r2",
    peer: "r1",
    host_mac: [0x02, 0x5e, 0, 0, 0x05, 0x10],
    host_v4: Ipv4Addr::new(10, 231, 5, 10),
    host_v6: Ipv6Addr::new(0xfd31, 5, 0, 0, 0, 0, 0, 0x10),
    lan_mac: [0x02, 0x5e, 0, 0x02, 0x05, 0x01],
    lan_v4: Ipv4Addr::new(10, 231, 5, 1),
    lan_v6: Ipv6Addr::new(0xfd31, 5, 0, 0, 0, 0, 0, 1),
    lan_v4_net: "10.231.5.0/24",
    lan_v6_net: "fd31:5::/64",
    wan: [Ipv4Addr::new(10, 231, 10, 2), Ipv4Addr::new(10, 231, 20, 2)],
    wan_macs: [[0x02, 0x5e, 0, 0x02, 0x0a, 0x02], [0x02, 0x5e, 0, 0x02, 0x14, 0x02]],
};

/// Returns the peering-common-name of `router`, which its certificate carries.
pub fn common_name(router: &str) -> String {
    format!("svrdemo-{router}")
}
