//! svrd's control plane: everything slow that the packet path relies on.
#![forbid(unsafe_code)]

pub mod kex;
