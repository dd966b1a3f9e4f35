//! Neighbour resolution for the ports that no kernel stack serves (DPDK ports): answers ARP
//! requests and IPv6 neighbour solicitations for the router's own addresses, and resolves
//! the next hops the router needs, keeping them fresh.
//!
//! The [`Resolver`] does no I/O and reads no clock. The control thread feeds it the frames
//! the workers punt and the current time, sends the frames it returns through the workers,
//! and publishes its table to the workers in the key epoch.
//!
//! Which next hops are resolved: those the plan names (peer waypoints on WAN ports and
//! gateways of local service routes), which are kept resolved for as long as the plan
//! names them, and those the workers report missing, which are kept for
//! [`REPORTED_LIFETIME`] after the last report. Other neighbours are learned only from
//! requests addressed to the router, and forgotten after [`LEARNED_LIFETIME`].

pub mod wire;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use svr_dataplane::epoch::InterfaceId;
use tracing::debug;

use wire::Message;

/// Time between requests for a next hop that has not answered.
pub const RETRY: Duration = Duration::from_secs(1);

/// Requests sent at [`RETRY`] intervals before an unanswered next hop is asked only every
/// [`BACKOFF`], and before a known one that stopped answering is forgotten.
pub const ATTEMPTS: u32 = 3;

/// Time between requests for a next hop that did not answer [`ATTEMPTS`] requests.
pub const BACKOFF: Duration = Duration::from_secs(5);

/// Age after which a resolved next hop is asked again, to notice one that went away or
/// changed its address.
pub const REFRESH: Duration = Duration::from_secs(30);

/// How long a next hop the workers reported missing stays wanted after the last report.
pub const REPORTED_LIFETIME: Duration = Duration::from_secs(300);

/// How long a neighbour learned from its own request is kept without being heard again.
pub const LEARNED_LIFETIME: Duration = Duration::from_secs(300);

/// Most replies sent per second, so that a flood of requests cannot make the router a
/// traffic amplifier.
pub const MAX_REPLIES_PER_SECOND: u32 = 100;

/// Most neighbours learned from their own requests, over all ports. Next hops the router
/// wants are learned beyond it, so a flood of requests from made-up senders can neither
/// grow the table without bound nor push out the hops that matter.
pub const MAX_LEARNED: usize = 4096;

/// A port the resolver serves: its MAC address and the router's addresses on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortAddresses {
    pub mac: [u8; 6],
    pub addresses: Vec<IpAddr>,
    /// The networks on the port's link, as (address, prefix length). A request's sender is
    /// learned only when it is on one of them.
    pub networks: Vec<(IpAddr, u8)>,
}

impl PortAddresses {
    /// Returns whether `address` is on one of the port's networks.
    fn on_link(&self, address: IpAddr) -> bool {
        self.networks.iter().any(|&(network, len)| same_network(network, len, address))
    }
}

/// Returns whether `address` is in the network of `network`/`len`; addresses of different
/// families never are.
fn same_network(network: IpAddr, len: u8, address: IpAddr) -> bool {
    match (network, address) {
        (IpAddr::V4(network), IpAddr::V4(address)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0);
            u32::from(network) & mask == u32::from(address) & mask
        }
        (IpAddr::V6(network), IpAddr::V6(address)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0);
            u128::from(network) & mask == u128::from(address) & mask
        }
        _ => false,
    }
}

/// Counts of what the resolver did and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ResolverCounters {
    /// Requests for the router's addresses answered.
    pub replies_sent: u64,
    /// Requests sent for next hops.
    pub requests_sent: u64,
    /// Neighbour entries added or changed.
    pub learned: u64,
    /// Entries removed after they stopped answering or aged out.
    pub expired: u64,
    /// Frames that were not valid ARP or neighbour discovery messages.
    pub malformed: u64,
    /// Frames on a port the resolver does not serve, or for another router's address.
    pub ignored: u64,
    /// Requests not answered because of [`MAX_REPLIES_PER_SECOND`].
    pub rate_limited: u64,
    /// Askers not learned: off the port's networks, or past [`MAX_LEARNED`].
    pub not_learned: u64,
}

impl ResolverCounters {
    /// Returns every counter with its field name, in declaration order, for `show stats`.
    pub fn named(&self) -> [(&'static str, u64); 8] {
        // Destructured in full, so that a new field fails to compile until it is listed.
        let ResolverCounters {
            replies_sent,
            requests_sent,
            learned,
            expired,
            malformed,
            ignored,
            rate_limited,
            not_learned,
        } = *self;
        [
            ("replies_sent", replies_sent),
            ("requests_sent", requests_sent),
            ("learned", learned),
            ("expired", expired),
            ("malformed", malformed),
            ("ignored", ignored),
            ("rate_limited", rate_limited),
            ("not_learned", not_learned),
        ]
    }
}

/// One resolved neighbour.
#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: [u8; 6],
    /// When the neighbour last answered or asked.
    heard: Instant,
}

/// A next hop the router needs resolved.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    /// Until when a reported next hop is wanted; `None` for one the plan names.
    until: Option<Instant>,
    /// Requests sent since the neighbour was last heard.
    attempts: u32,
    /// When the next request is due.
    next_request: Instant,
}

/// Neighbour tables and pending resolutions of the ports without a kernel stack.
#[derive(Debug)]
pub struct Resolver {
    /// Per port: its addresses, or `None` for a port whose neighbours the kernel resolves.
    ports: Vec<Option<PortAddresses>>,
    entries: HashMap<(InterfaceId, IpAddr), Entry>,
    wanted: HashMap<(InterfaceId, IpAddr), Wanted>,
    /// Start of the current second of the reply limit, and replies sent in it.
    reply_window: Option<(Instant, u32)>,
    counters: ResolverCounters,
    changed: bool,
}

impl Resolver {
    /// A resolver for `ports`, indexed by interface id; `None` marks ports it leaves alone.
    pub fn new(ports: Vec<Option<PortAddresses>>) -> Resolver {
        Resolver {
            ports,
            entries: HashMap::new(),
            wanted: HashMap::new(),
            reply_window: None,
            counters: ResolverCounters::default(),
            changed: false,
        }
    }

    /// Returns whether any served port exists.
    pub fn is_active(&self) -> bool {
        self.ports.iter().any(Option::is_some)
    }

    /// Makes `hops` the next hops the plan names, to be kept resolved from `now` on. Hops
    /// on ports the resolver does not serve are left out. Earlier planned hops that are
    /// not in `hops` are no longer wanted, and their entries age out as learned ones do.
    pub fn set_planned(
        &mut self,
        hops: impl IntoIterator<Item = (InterfaceId, IpAddr)>,
        now: Instant,
    ) {
        self.wanted.retain(|_, wanted| wanted.until.is_some());
        for hop in hops {
            if self.serves(hop.0) {
                let entry = self.wanted.entry(hop).or_insert(Wanted {
                    until: None,
                    attempts: 0,
                    next_request: now,
                });
                entry.until = None;
            }
        }
    }

    /// Notes that the workers found no entry for `address` on `port`. A hop the resolver
    /// already wants keeps its schedule; a new one is asked for at the next poll.
    pub fn report_missing(&mut self, port: InterfaceId, address: IpAddr, now: Instant) {
        if !self.serves(port) {
            return;
        }
        let until = now + REPORTED_LIFETIME;
        self.wanted
            .entry((port, address))
            .and_modify(|wanted| {
                if wanted.until.is_some() {
                    wanted.until = Some(until);
                }
            })
            .or_insert(Wanted { until: Some(until), attempts: 0, next_request: now });
    }

    /// Handles an ARP or neighbour discovery frame received on `port`. Returns the reply to
    /// send on the same port, if the frame asked for one of the router's addresses.
    pub fn receive(&mut self, port: InterfaceId, frame: &[u8], now: Instant) -> Option<Vec<u8>> {
        let Some(ours) = self.port(port).cloned() else {
            self.counters.ignored += 1;
            return None;
        };
        let message = match wire::parse(frame) {
            Ok(message) => message,
            Err(error) => {
                self.counters.malformed += 1;
                debug!(port, %error, "neighbour discovery frame dropped");
                return None;
            }
        };

        match message {
            Message::Request { sender, sender_mac, target } => {
                let for_us = ours.addresses.contains(&target);
                // RFC 826's merge: a sender already known is updated whoever is asked, and
                // one on the link that asks for the router is added, since a reply will
                // follow, while the table has room.
                if let Some(mac) = sender_mac
                    && !sender.is_unspecified()
                {
                    let known =
                        self.knows(port, sender) || self.wanted.contains_key(&(port, sender));
                    let new_on_link =
                        for_us && ours.on_link(sender) && self.entries.len() < MAX_LEARNED;
                    if known || new_on_link {
                        self.learn(port, sender, mac, now);
                    } else if for_us {
                        self.counters.not_learned += 1;
                    }
                }
                if !for_us {
                    self.counters.ignored += 1;
                    return None;
                }
                if !self.take_reply_slot(now) {
                    self.counters.rate_limited += 1;
                    return None;
                }
                self.counters.replies_sent += 1;
                reply(&ours, sender, sender_mac, target, frame)
            }
            Message::Reply { target, target_mac, .. } => {
                if self.knows(port, target) || self.wanted.contains_key(&(port, target)) {
                    self.learn(port, target, target_mac, now);
                } else {
                    self.counters.ignored += 1;
                }
                None
            }
        }
    }

    /// Returns the requests due at `now`, each with its port, and ages out entries.
    pub fn poll(&mut self, now: Instant) -> Vec<(InterfaceId, Vec<u8>)> {
        let before = self.entries.len();
        self.wanted.retain(|_, wanted| wanted.until.is_none_or(|until| until > now));
        let wanted = &self.wanted;
        self.entries.retain(|key, entry| {
            wanted.contains_key(key) || now.duration_since(entry.heard) < LEARNED_LIFETIME
        });

        let mut requests = Vec::new();
        let mut forgotten = Vec::new();
        for (&(port, address), wanted) in &mut self.wanted {
            let known = self.entries.get(&(port, address));
            // A resolved hop is asked again only once it is old enough.
            if let Some(entry) = known
                && wanted.attempts == 0
                && now.duration_since(entry.heard) < REFRESH
            {
                continue;
            }
            if now < wanted.next_request {
                continue;
            }
            if known.is_some() && wanted.attempts >= ATTEMPTS {
                forgotten.push((port, address));
                wanted.attempts = 0;
                wanted.next_request = now;
                continue;
            }
            let Some(ours) = self.ports.get(usize::from(port)).and_then(Option::as_ref) else {
                continue;
            };
            let Some(frame) = request(ours, address, known.map(|entry| entry.mac)) else {
                continue;
            };
            wanted.attempts += 1;
            let wait = if known.is_none() && wanted.attempts >= ATTEMPTS { BACKOFF } else { RETRY };
            wanted.next_request = now + wait;
            requests.push((port, frame));
        }
        for key in forgotten {
            debug!(port = key.0, address = %key.1, "neighbour stopped answering");
            self.entries.remove(&key);
        }

        let removed = before.saturating_sub(self.entries.len());
        if removed > 0 {
            self.counters.expired += removed as u64;
            self.changed = true;
        }
        self.counters.requests_sent += requests.len() as u64;
        requests
    }

    /// The resolved neighbours, by port and address.
    pub fn entries(&self) -> impl Iterator<Item = ((InterfaceId, IpAddr), [u8; 6])> + '_ {
        self.entries.iter().map(|(key, entry)| (*key, entry.mac))
    }

    /// Returns whether the table changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    pub fn counters(&self) -> ResolverCounters {
        self.counters
    }

    fn serves(&self, port: InterfaceId) -> bool {
        self.port(port).is_some()
    }

    fn port(&self, port: InterfaceId) -> Option<&PortAddresses> {
        self.ports.get(usize::from(port)).and_then(Option::as_ref)
    }

    fn knows(&self, port: InterfaceId, address: IpAddr) -> bool {
        self.entries.contains_key(&(port, address))
    }

    fn learn(&mut self, port: InterfaceId, address: IpAddr, mac: [u8; 6], now: Instant) {
        let previous = self.entries.insert((port, address), Entry { mac, heard: now });
        if previous.is_none_or(|entry| entry.mac != mac) {
            debug!(port, %address, "neighbour learned");
            self.counters.learned += 1;
            self.changed = true;
        }
        if let Some(wanted) = self.wanted.get_mut(&(port, address)) {
            wanted.attempts = 0;
            wanted.next_request = now + REFRESH;
        }
    }

    /// Takes one reply from this second's allowance; returns false when none is left.
    fn take_reply_slot(&mut self, now: Instant) -> bool {
        let (start, used) = match self.reply_window {
            Some((start, used)) if now.duration_since(start) < Duration::from_secs(1) => {
                (start, used)
            }
            _ => (now, 0),
        };
        if used >= MAX_REPLIES_PER_SECOND {
            return false;
        }
        self.reply_window = Some((start, used + 1));
        true
    }
}

/// Builds the reply to a request from `sender` for `target`, one of `ours`' addresses.
fn reply(
    ours: &PortAddresses,
    sender: IpAddr,
    sender_mac: Option<[u8; 6]>,
    target: IpAddr,
    frame: &[u8],
) -> Option<Vec<u8>> {
    match (sender, target) {
        (IpAddr::V4(sender), IpAddr::V4(target)) => {
            Some(wire::arp_reply(ours.mac, target, sender_mac?, sender))
        }
        (IpAddr::V6(sender), IpAddr::V6(target)) => {
            // Without a link-layer option the reply goes back to the frame's source.
            let asker_mac = sender_mac.or_else(|| frame.get(6..12)?.try_into().ok());
            Some(wire::neighbour_advertisement(ours.mac, target, asker_mac, sender))
        }
        _ => None,
    }
}

/// Builds a request for `address` from the port's first address of the same family: a
/// broadcast (or solicited-node multicast) when `known` is `None`, else a check sent to the
/// known link-layer address alone.
// NOTE: the source is the port's first address of the family, not one chosen by prefix,
// because the plan keeps no prefix lengths; a port with addresses in several subnets asks
// from the first.
fn request(ours: &PortAddresses, address: IpAddr, known: Option<[u8; 6]>) -> Option<Vec<u8>> {
    let source = ours.addresses.iter().copied().find(|a| a.is_ipv4() == address.is_ipv4())?;
    match (source, address) {
        (IpAddr::V4(source), IpAddr::V4(address)) => {
            Some(wire::arp_request(ours.mac, source, address, known))
        }
        (IpAddr::V6(source), IpAddr::V6(address)) => {
            Some(wire::neighbour_solicitation(ours.mac, source, address, known))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
