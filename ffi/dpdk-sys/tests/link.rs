//! The bindings link against the system DPDK and its shim.

#[test]
fn version_is_22_11_or_later() {
    // SAFETY: rte_version takes no arguments and returns a static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(dpdk_sys::rte_version()) };
    let version = version.to_str().unwrap();
    let number = version.strip_prefix("DPDK ").unwrap();
    let mut parts = number.split('.').map(|p| p.parse::<u32>().unwrap());
    let (major, minor) = (parts.next().unwrap(), parts.next().unwrap());
    assert!((major, minor) >= (22, 11), "{version}");
}

#[test]
fn shim_errno_is_callable_before_eal() {
    // SAFETY: svr_errno reads the thread-local rte_errno, which exists before EAL init.
    assert_eq!(unsafe { dpdk_sys::svr_errno() }, 0);
}
