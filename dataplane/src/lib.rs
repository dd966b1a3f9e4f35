//! svrd's packet path.
//!
//! The SVR wire codec ([`packet`]), the per-packet crypto that seals and opens session
//! payloads and metadata ([`crypto`]), replay protection ([`replay`]), whole sealed SVR
//! packets composed from those ([`sealed`]), and packet I/O backends ([`io`]).

pub mod crypto;
pub mod io;
pub mod packet;
pub mod replay;
pub mod sealed;
