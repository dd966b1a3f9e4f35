//! svrd's control plane: everything slow that the packet path relies on.
#![forbid(unsafe_code)]

pub mod alarm;
pub mod bfd;
pub mod classic;
pub mod config;
pub mod daemon;
pub mod kex;
pub mod mgmt;
pub mod neighbour;
pub mod pki;
pub mod printable;
