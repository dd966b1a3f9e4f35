//! Raw bindings to DPDK 22.11 as found by pkg-config.
//!
//! The bindings are not generated yet: this crate is a placeholder in the workspace so the
//! layout is fixed, and svr-dataplane does not depend on it until the DPDK backend exists.
