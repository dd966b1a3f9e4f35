//! Watches the Linux interfaces under the router's ports. A port's XDP program and AF_XDP
//! socket are bound to an interface index, so an interface that is deleted, or deleted
//! and created again under the same name, leaves the port bound to nothing. The control
//! loop then takes the port's peer paths out of service and raises an alarm naming the
//! interface. Once an interface of that name exists again, it attaches a new XDP program,
//! opens a new socket and hands the socket to the worker that polls the port. DPDK ports
//! are not watched.

use std::time::{Duration, Instant, SystemTime};

use svr_dataplane::epoch::InterfaceId;
use tracing::{error, info, warn};

use super::ports::open_xdp_port;
use super::{Daemon, sys};
use crate::alarm::{AlarmCause, interface_lost};

/// How often the control loop looks up the index of each port's interface.
const LINK_CHECK: Duration = Duration::from_millis(250);

/// The binding state of each port's interface, as the control loop last saw it.
#[derive(Debug)]
pub(super) struct Links {
    ports: Vec<LinkState>,
    last_check: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    /// The port is not bound to a Linux interface (a DPDK port), so nothing is watched.
    Unwatched,
    /// The port is bound to the interface with this index.
    Bound(u32),
    /// The interface the port was bound to is gone, and `attempts` counts the failed
    /// attempts to bind to a new one.
    Lost { attempts: u32 },
}

/// The result of one check of a port's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinkChange {
    /// The bound interface is gone and no interface has its name.
    Lost,
    /// The bound interface is gone and a new interface, with this index, has its name.
    Replaced(u32),
    /// A lost port's interface name exists again, with this index.
    Back(u32),
}

impl Links {
    /// Ports bound to the interfaces with these indexes, by port; `None` for a port
    /// without a Linux interface.
    pub(super) fn new(ifindexes: Vec<Option<u32>>) -> Links {
        Links {
            ports: ifindexes
                .into_iter()
                .map(|ifindex| ifindex.map_or(LinkState::Unwatched, LinkState::Bound))
                .collect(),
            last_check: Instant::now(),
        }
    }

    /// Returns whether `port` is bound to a live interface, or needs none (false for an
    /// unknown port).
    pub(super) fn is_bound(&self, port: usize) -> bool {
        matches!(self.ports.get(port), Some(LinkState::Bound(_) | LinkState::Unwatched))
    }

    /// Compares what is known of `port` with the index its interface name has now
    /// (`None` when no interface has the name), and records a lost interface.
    pub(super) fn observe(&mut self, port: usize, current: Option<u32>) -> Option<LinkChange> {
        let state = self.ports.get_mut(port)?;
        let change = match (*state, current) {
            (LinkState::Unwatched, _) => return None,
            (LinkState::Bound(bound), Some(now)) if bound == now => return None,
            (LinkState::Bound(_), None) => LinkChange::Lost,
            (LinkState::Bound(_), Some(now)) => LinkChange::Replaced(now),
            (LinkState::Lost { .. }, None) => return None,
            (LinkState::Lost { .. }, Some(now)) => LinkChange::Back(now),
        };
        if let LinkState::Bound(_) = state {
            *state = LinkState::Lost { attempts: 0 };
        }
        Some(change)
    }

    /// Records that `port` is bound to the interface with index `ifindex`.
    pub(super) fn bound(&mut self, port: usize, ifindex: u32) {
        if let Some(state) = self.ports.get_mut(port) {
            *state = LinkState::Bound(ifindex);
        }
    }

    /// Records a failed attempt to bind `port` and returns how many failed in a row.
    pub(super) fn bind_failed(&mut self, port: usize) -> u32 {
        match self.ports.get_mut(port) {
            Some(LinkState::Lost { attempts }) => {
                *attempts = attempts.saturating_add(1);
                *attempts
            }
            _ => 0,
        }
    }
}

/// Returns the index of the interface named `name`, or `None` when there is none.
pub(super) fn interface_index(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

impl Daemon {
    /// Checks the interface under each port, at most every [`LINK_CHECK`]; returns whether
    /// anything the workers use changed.
    pub(super) fn poll_links(&mut self) -> bool {
        if self.links.last_check.elapsed() < LINK_CHECK {
            return false;
        }
        self.links.last_check = Instant::now();
        let mut changed = false;
        for port in 0..self.plan.ports.len() {
            if self.links.ports.get(port) == Some(&LinkState::Unwatched) {
                continue;
            }
            let current = interface_index(&self.plan.ports[port].linux_name);
            match self.links.observe(port, current) {
                None => {}
                Some(LinkChange::Lost) => self.link_lost(port, "the interface was deleted"),
                Some(LinkChange::Replaced(ifindex)) => {
                    self.link_lost(port, "the interface was replaced");
                    changed |= self.rebind(port, ifindex);
                }
                Some(LinkChange::Back(ifindex)) => changed |= self.rebind(port, ifindex),
            }
        }
        changed
    }

    /// Raises the alarm of a port whose interface is gone. Its peer paths leave service at
    /// the next path poll, because [`Links::is_bound`] is false from now on.
    fn link_lost(&mut self, port: usize, detail: &str) {
        let interface = self.plan.ports[port].linux_name.clone();
        warn!(port = %self.plan.ports[port].name, %interface, detail, "port lost its interface");
        let cause = AlarmCause::InterfaceLost { interface: interface.clone() };
        self.alarms.raise(cause, interface_lost(&interface, detail), SystemTime::now());
    }

    /// Binds `port` to the new interface of its name; returns whether it did.
    fn rebind(&mut self, port: usize, ifindex: u32) -> bool {
        let plan = &self.plan.ports[port];
        let opened = open_xdp_port(plan);
        let (attachment, xsk) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                // Retried at every check, and logged on the 1st, 2nd, 4th, 8th... failure.
                let attempts = self.links.bind_failed(port);
                if attempts.is_power_of_two() {
                    error!(%error, interface = %plan.linux_name, ifindex, attempts, "cannot bind the port to the new interface");
                }
                return false;
            }
        };
        if self.port_replacer.replace(port as InterfaceId, xsk).is_err() {
            let attempts = self.links.bind_failed(port);
            if attempts.is_power_of_two() {
                error!(interface = %plan.linux_name, attempts, "the worker's port replacement queue is full");
            }
            return false;
        }

        let interface = plan.linux_name.clone();
        self.links.bound(port, attachment.ifindex());
        if let Some(slot) = self.attachments.get_mut(port) {
            *slot = Some(attachment);
        }
        // The new interface has its own MAC address, which the workers write as the
        // source of every frame sent on the port.
        if let (Some(mac), Some(slot)) =
            (sys::mac_address(&interface), self.keyring.macs.get_mut(port))
        {
            *slot = mac;
        }
        self.alarms.clear(&AlarmCause::InterfaceLost { interface: interface.clone() });
        info!(port = %self.plan.ports[port].name, %interface, ifindex, "port bound to the new interface");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observe_same_index_no_change() {
        let mut links = Links::new(vec![Some(4)]);
        assert_eq!(links.observe(0, Some(4)), None);
        assert!(links.is_bound(0));
    }

    #[test]
    fn observe_deleted_interface_lost() {
        let mut links = Links::new(vec![Some(4)]);
        assert_eq!(links.observe(0, None), Some(LinkChange::Lost));
        assert!(!links.is_bound(0));
        assert_eq!(links.observe(0, None), None, "a lost port is reported once");
    }

    #[test]
    fn observe_new_index_replaced() {
        let mut links = Links::new(vec![Some(4), Some(5)]);
        assert_eq!(links.observe(1, Some(9)), Some(LinkChange::Replaced(9)));
        assert!(!links.is_bound(1));
        assert!(links.is_bound(0));
    }

    #[test]
    fn observe_lost_then_back() {
        let mut links = Links::new(vec![Some(4)]);
        links.observe(0, None);
        assert_eq!(links.observe(0, Some(11)), Some(LinkChange::Back(11)));
        assert_eq!(links.bind_failed(0), 1);
        assert_eq!(links.bind_failed(0), 2);
        assert_eq!(links.observe(0, Some(11)), Some(LinkChange::Back(11)), "retried");
        links.bound(0, 11);
        assert!(links.is_bound(0));
        assert_eq!(links.observe(0, Some(11)), None);
    }

    #[test]
    fn observe_unknown_port_ignored() {
        let mut links = Links::new(vec![Some(4)]);
        assert_eq!(links.observe(3, None), None);
        assert!(!links.is_bound(3));
        assert_eq!(links.bind_failed(3), 0);
    }
}
