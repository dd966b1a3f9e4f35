//! svrd's packet path.
//!
//! The SVR wire codec ([`packet`]), the per-packet crypto that seals and opens session
//! payloads and metadata ([`crypto`]), whole sealed packets ([`sealed`]), replay protection
//! ([`replay`]), packet I/O ([`io`]), the key epochs the control thread publishes
//! ([`epoch`]), per-worker session tables ([`session`]), the forwarding engine between LAN
//! and WAN ([`forward`]), its counters ([`counters`]), the poll-mode workers ([`worker`]),
//! and for routers with several workers the session ownership rule ([`shard`]), the
//! hand-off rings between workers ([`handoff`]) and the group that runs them ([`group`]).

// The engine's unit tests share the integration tests' harness, which names this crate.
#[cfg(test)]
extern crate self as svr_dataplane;

pub mod counters;
pub mod crypto;
pub mod epoch;
pub mod forward;
pub mod group;
pub mod handoff;
pub mod io;
pub mod packet;
pub mod replay;
pub mod sealed;
pub mod session;
pub mod shard;
pub mod worker;
