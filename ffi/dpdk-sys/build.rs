//! Finds DPDK with pkg-config, compiles the inline-function shim, and generates bindings.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_VERSION: &str = "22.11";

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");

    // The pkg-config crate emits the -l flags for the shared libraries.
    if let Err(error) = pkg_config::Config::new().atleast_version(MIN_VERSION).probe("libdpdk") {
        eprintln!(
            "dpdk-sys: DPDK {MIN_VERSION} or later not found by pkg-config ({error}); \
             on Debian 12 install libdpdk-dev (scripts/install-deps does)"
        );
        std::process::exit(1);
    }

    // The crate drops flags such as `-include rte_config.h` and `-march=corei7` that DPDK's
    // headers need, so the raw cflags are read separately.
    let cflags = raw_cflags();

    let mut shim = cc::Build::new();
    shim.file("shim.c").opt_level(3).warnings(true);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.compile("svrdpdkshim");

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&cflags)
        .allowlist_function("rte_eal_(init|cleanup)")
        .allowlist_function("rte_eth_(dev_configure|rx_queue_setup|tx_queue_setup|dev_start|dev_stop|dev_close|dev_count_avail|dev_get_port_by_name|dev_adjust_nb_rx_tx_desc|link_get_nowait|macaddr_get|promiscuous_enable|stats_get|dev_info_get|dev_socket_id)")
        .allowlist_function("rte_pktmbuf_pool_create|rte_mempool_(free|avail_count|in_use_count)|rte_socket_id|rte_strerror|rte_version")
        .allowlist_function("svr_.*")
        .allowlist_type("rte_eth_conf|rte_eth_link|rte_eth_stats|rte_eth_dev_info|rte_ether_addr|rte_mbuf|rte_mempool")
        .allowlist_var("RTE_MBUF_DEFAULT_BUF_SIZE|RTE_PKTMBUF_HEADROOM|RTE_MAX_ETHPORTS|SOCKET_ID_ANY")
        .opaque_type("rte_mbuf|rte_mempool")
        .derive_default(true)
        .layout_tests(false)
        .generate()
        .unwrap_or_else(|error| {
            eprintln!("dpdk-sys: bindgen failed: {error}");
            std::process::exit(1);
        });
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    if let Err(error) = bindings.write_to_file(out.join("bindings.rs")) {
        eprintln!("dpdk-sys: cannot write bindings: {error}");
        std::process::exit(1);
    }
}

/// `pkg-config --cflags libdpdk`, split into arguments with `-include FILE` kept together.
fn raw_cflags() -> Vec<String> {
    let output = Command::new("pkg-config").args(["--cflags", "libdpdk"]).output();
    let Ok(output) = output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()) else {
        eprintln!("dpdk-sys: cannot run pkg-config");
        std::process::exit(1);
    };
    let mut flags = Vec::new();
    let mut words = output.split_whitespace();
    while let Some(word) = words.next() {
        if word == "-include" {
            if let Some(file) = words.next() {
                flags.push("-include".to_string());
                flags.push(file.to_string());
            }
        } else {
            flags.push(word.to_string());
        }
    }
    flags
}
