//! svrd's packet path.
//!
//! The SVR wire codec ([`packet`]), the per-packet crypto that seals and opens session
//! payloads and metadata ([`crypto`]), and replay protection ([`replay`]).

pub mod counters;
pub mod crypto;
pub mod epoch;
pub mod forward;
pub mod io;
pub mod packet;
pub mod replay;
pub mod sealed;
pub mod session;
pub mod worker;
