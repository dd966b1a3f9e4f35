//! A router's WAN port replaced while its sessions live, as the daemon does when the
//! interface under an AF_XDP socket is deleted and created again: the worker that polls
//! the port installs the replacement, existing flows continue over it, and nothing is
//! sent on the old port afterwards.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]
#![expect(clippy::panic, reason = "test helpers fail the test by panicking")]

mod engine_support;
mod sharded_support;

use engine_support::*;
use sharded_support::*;
use svr_dataplane::counters::DropReason;
use svr_dataplane::io::mem::{MemConfig, mem_pair};

/// Sends one datagram per flow from host1 and returns how many reached host5.
fn forward_round(net: &mut ShardNet, flows: u16, round: u32) -> usize {
    for i in 0..flows {
        let payload = format!("round {round} flow {i}");
        Net::send(&mut net.host1, &udp_v4(HOST1, HOST5, flow(i), payload.as_bytes()));
    }
    net.run();
    Net::receive(&mut net.host5).len()
}

#[test]
fn wan_port_replaced_every_setup() {
    for (workers, layout) in SETUPS {
        let setup = format!("{workers:?} workers, {layout:?}");
        let mut net = ShardNet::new(workers, layout);
        assert_eq!(forward_round(&mut net, 16, 0), 16, "{setup}: before the replacement");

        let config = MemConfig { frames: 4096, frame_size: 2048, ring_size: 1024 };
        let (new_wan, new_wire) = mem_pair(&config).unwrap();
        let replacer = net.r1.group.port_replacer();
        assert!(replacer.replace(1, Box::new(new_wan)).is_ok(), "{setup}: replace queued");
        let mut old_wire = std::mem::replace(&mut net.wire1, new_wire);

        assert_eq!(forward_round(&mut net, 16, 1), 16, "{setup}: after the replacement");
        assert!(Net::receive(&mut old_wire).is_empty(), "{setup}: old port still used");
        let counters = net.r1.group.counters();
        for reason in DropReason::ALL {
            assert_eq!(counters.drops(reason), 0, "{setup}: r1 {}", reason.name());
        }
    }
}

#[test]
fn port_replace_unknown_id_returned() {
    let net = ShardNet::new((2, 2), Layout::Split);
    let config = MemConfig { frames: 64, frame_size: 2048, ring_size: 64 };
    let (port, _peer) = mem_pair(&config).unwrap();
    assert!(net.r1.group.port_replacer().replace(7, Box::new(port)).is_err());
}
