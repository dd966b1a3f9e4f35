//! The DPDK backend: EAL set-up ([`Eal`]), a [`DpdkPort`] driving one rx and one tx queue
//! of an ethdev port with its own mbuf pool, and the mapping of DPDK error codes to
//! [`IoError`].
//!
//! This module is the one safe wrapper around `dpdk-sys`; nothing else in svrd calls DPDK.
//! It is built with the `dpdk` cargo feature.
#![allow(
    unsafe_code,
    reason = "DPDK is reached only through the raw bindings and C shim of dpdk-sys, and \
              mbufs are memory that DPDK owns"
)]

mod eal;
mod mbuf;
mod port;

use std::{ffi::CStr, io};

pub use eal::{Eal, EalConfig};
pub(crate) use mbuf::MbufHandle;
pub use port::{DpdkPort, DpdkPortConfig, DpdkPortStats, LinkStatus};

use super::IoError;

/// Maps the error code of a failed DPDK call to its [`IoError`].
///
/// `code` is a negative return value or a positive `rte_errno`; both signs mean the same
/// errno. `port` is the port's name, or empty for calls that concern no port.
pub(crate) fn dpdk_error(operation: &'static str, port: &str, code: i32) -> IoError {
    let errno = code.checked_abs().unwrap_or(i32::MAX);

    match (operation, errno) {
        (_, libc::EPERM | libc::EACCES) => {
            IoError::PermissionDenied { operation, source: io::Error::from_raw_os_error(errno) }
        }
        ("rte_eal_init", _) => IoError::EalInit { errno, message: rte_strerror(errno) },
        ("rte_eth_dev_get_port_by_name", libc::ENODEV | libc::EINVAL) => {
            IoError::PortNotFound { port: port.to_owned() }
        }
        _ => {
            IoError::Dpdk { operation, port: port.to_owned(), errno, message: rte_strerror(errno) }
        }
    }
}

/// DPDK's text for an errno or one of its own `E_RTE_*` codes.
fn rte_strerror(errno: i32) -> String {
    // SAFETY: rte_strerror takes any value and needs no EAL. It returns a NUL-terminated
    // string in static or thread-local storage, which is copied before the next call.
    let text = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(errno)) };
    text.to_string_lossy().into_owned()
}

/// `rte_errno` of the calling thread.
fn rte_errno() -> i32 {
    // SAFETY: svr_errno only reads the calling thread's rte_errno.
    unsafe { dpdk_sys::svr_errno() }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    #[test]
    fn error_eacces_is_permission_denied() {
        let err = dpdk_error("rte_eal_init", "", libc::EACCES);
        assert!(matches!(err, IoError::PermissionDenied { operation: "rte_eal_init", .. }));
        assert!(err.source().is_some());
    }

    #[test]
    fn error_eal_init_keeps_errno() {
        let err = dpdk_error("rte_eal_init", "", libc::EINVAL);
        let IoError::EalInit { errno, message } = &err else { panic!("{err:?}") };
        assert_eq!(*errno, libc::EINVAL);
        assert!(!message.is_empty());
        assert!(err.to_string().starts_with("DPDK EAL initialisation failed: "), "{err}");
    }

    #[test]
    fn error_enodev_lookup_is_port_not_found() {
        let err = dpdk_error("rte_eth_dev_get_port_by_name", "net_ring7", -libc::ENODEV);
        assert!(matches!(err, IoError::PortNotFound { ref port } if port == "net_ring7"));
    }

    #[test]
    fn error_negative_code_is_dpdk() {
        let err = dpdk_error("rte_eth_dev_configure", "net_ring0", -libc::EBUSY);
        let IoError::Dpdk { operation, port, errno, .. } = &err else { panic!("{err:?}") };
        assert_eq!(*operation, "rte_eth_dev_configure");
        assert_eq!(port, "net_ring0");
        assert_eq!(*errno, libc::EBUSY);
        assert!(err.to_string().contains("on DPDK port \"net_ring0\""), "{err}");
    }

    #[test]
    fn error_min_code_does_not_overflow() {
        let err = dpdk_error("rte_eth_dev_start", "p", i32::MIN);
        assert!(matches!(err, IoError::Dpdk { errno: i32::MAX, .. }));
    }
}
