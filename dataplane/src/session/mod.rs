//! Sessions: the per-flow state a worker keeps for each SVR session it carries, and the
//! shard of the session table that owns it ([`SessionTable`]).
//!
//! A session is created on the ingress router by the first LAN packet of a flow that
//! matches a service, and on the egress router by the first SVR packet, whose metadata
//! names the flow and carries the payload key. Each side then keeps:
//! - the original 5-tuple and the waypoint 5-tuple it sends with;
//! - the payload keys ([`PayloadKeys`]), with a next or previous generation during a
//!   rotation;
//! - the packet number of its send direction and the replay window of its receive
//!   direction;
//! - the metadata handshake: the ingress sends forward metadata until a reverse packet
//!   with metadata arrives, and the egress sends reverse metadata (with disable-forward-
//!   metadata, TLV 18) until a forward packet without metadata arrives.
//!
//! A router between the two (a hub) keeps a transit session as two linked legs, one per
//! peer ([`Session::relay`]), and passes the metadata handshake through.

mod index;
mod keys;
mod memory;
mod metadata;
mod table;
mod tombstones;

use std::time::{Duration, Instant};

pub use keys::{PayloadKeys, RotationError, SESSION_SUITE};
pub use metadata::{RouteTlvs, SessionMetadata};
pub use table::{
    LOOKUP_BURST, PORT_FIRST, PORT_LAST, PortPool, SessionId, SessionTable, TableError,
};
pub use tombstones::{Refusal, TOMBSTONE_CAPACITY, TOMBSTONE_SETS, Tombstones};

use crate::crypto::Direction;
use crate::epoch::{InterfaceId, PathId, PeerId, ServiceId, TenantId};
use crate::forward::FiveTuple;
use crate::packet::PayloadTlv;
use crate::replay::ReplayWindow;

/// Which end of the session this router is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The router the first packet entered from a LAN; it chose the keys and the ports.
    Ingress,
    /// The router that restores packets onto the destination LAN.
    Egress,
}

/// One session, as one router keeps it.
#[derive(Debug)]
#[cfg_attr(test, derive(Clone))]
pub struct Session {
    /// Which end this router is.
    pub role: Role,
    /// The session UUID sent in metadata.
    pub uuid: uuid::Uuid,
    /// The forward 5-tuple of the original packets, as the source host sent them.
    pub original: FiveTuple,
    /// The outer 5-tuple of the packets this router sends: its waypoint and port as the
    /// source, the peer's as the destination.
    pub waypoints: FiveTuple,
    /// The peer router.
    pub peer: PeerId,
    /// The peer path, when the waypoints match a configured one.
    pub path: Option<PathId>,
    /// The WAN port the session's SVR packets use.
    pub wan_interface: InterfaceId,
    /// The LAN port the session's original packets use.
    pub lan_interface: InterfaceId,
    /// The service and tenant the session was admitted for.
    pub service: ServiceId,
    pub tenant: TenantId,
    /// Whether the carried payload is encrypted.
    pub encrypt: bool,
    /// Payload keys.
    pub keys: PayloadKeys,
    /// The last packet number sent; the next packet gets one more.
    pub sent: u64,
    /// Replay window of the receive direction.
    pub window: ReplayWindow,
    /// Whether the next packet sent carries metadata.
    pub send_metadata: bool,
    /// The payload TLVs of the metadata this router sends, other than the context and
    /// UUID, which are built from the fields above.
    pub metadata: SessionMetadata,
    /// When a packet of the session was last sent or received.
    pub last_seen: Instant,
    /// Idle time after which the session is deleted.
    pub idle_timeout: Duration,
    /// On a router that forwards the session from one peer on to another (a transit
    /// session), the session's other leg. The leg towards the ingress has role
    /// [`Role::Egress`] and the leg towards the egress [`Role::Ingress`], and each names the
    /// other. Such legs restore nothing onto a LAN and seal nothing from one.
    pub relay: Option<SessionId>,
}

impl Session {
    /// Direction of the packets this router sends.
    pub fn send_direction(&self) -> Direction {
        match self.role {
            Role::Ingress => Direction::Forward,
            Role::Egress => Direction::Reverse,
        }
    }

    /// Direction of the packets this router receives from the peer.
    pub fn receive_direction(&self) -> Direction {
        match self.role {
            Role::Ingress => Direction::Reverse,
            Role::Egress => Direction::Forward,
        }
    }

    /// The 5-tuple of the session's packets as they arrive on this router's LAN.
    pub fn lan_key(&self) -> FiveTuple {
        match self.role {
            Role::Ingress => self.original,
            Role::Egress => self.original.reversed(),
        }
    }

    /// The outer 5-tuple of the session's packets as they arrive from the peer.
    pub fn wan_key(&self) -> FiveTuple {
        self.waypoints.reversed()
    }

    /// The original 5-tuple of packets this router restores onto its LAN.
    pub fn restored_tuple(&self) -> FiveTuple {
        match self.role {
            Role::Ingress => self.original.reversed(),
            Role::Egress => self.original,
        }
    }

    /// Takes the next packet number to send, or `None` when the session has used all of
    /// them and must be replaced.
    pub fn next_number(&mut self) -> Option<u64> {
        let number = self.sent.checked_add(1)?;
        if number > crate::crypto::Sequence::MAX_NUMBER {
            return None;
        }
        self.sent = number;
        Some(number)
    }

    /// Builds the first two payload TLVs of the metadata this router sends: the forward
    /// context (ingress) or reverse context (egress), then the session UUID. `None` only when the
    /// original tuple has no context form, which session creation already rejects.
    pub fn metadata_head(&self) -> Option<[PayloadTlv; 2]> {
        let context = match self.role {
            Role::Ingress => PayloadTlv::ForwardContext(self.original.to_context()?),
            Role::Egress => PayloadTlv::ReverseContext(self.original.reversed().to_context()?),
        };
        Some([context, PayloadTlv::SessionUuid(self.uuid)])
    }

    /// Whether this is one leg of a transit session.
    pub fn is_transit(&self) -> bool {
        self.relay.is_some()
    }

    /// Whether the session has been idle past its timeout at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_seen) >= self.idle_timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_size_bound() {
        let size = std::mem::size_of::<Session>();
        assert!(size <= 944, "a session takes {size} bytes");
        let slot = std::mem::size_of::<Option<Session>>();
        assert_eq!(slot, size, "the slot needs a tag beside the session");
    }

    #[test]
    fn session_part_sizes() {
        use std::mem::size_of;
        assert!(size_of::<PayloadKeys>() <= 576, "{}", size_of::<PayloadKeys>());
        assert!(size_of::<ReplayWindow>() <= 144, "{}", size_of::<ReplayWindow>());
        assert!(size_of::<SessionMetadata>() <= 72, "{}", size_of::<SessionMetadata>());
    }
}
