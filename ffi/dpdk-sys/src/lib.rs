//! Raw bindings to DPDK 22.11 as found by pkg-config, and the `svr_*` shim functions that
//! stand in for DPDK's static inline fast-path functions (burst rx/tx, mbuf handling,
//! `rte_errno`).
//!
//! Nothing here is safe to call directly: svr-dataplane's DPDK module is the one safe
//! wrapper. The bindings are limited by an allowlist in `build.rs` to what that module uses.
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    missing_debug_implementations
)]
#![allow(clippy::all, reason = "generated code")]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
