//! End-to-end tests of svrd: real namespaces, real traffic, real peers.
#![forbid(unsafe_code)]

pub mod authority;
pub mod harness;
pub mod two_routers;
