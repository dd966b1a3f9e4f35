//! The packet-path checks on a pair of memory ports: the backend under test on one
//! port, the far end on its peer.

mod io_support;

use std::net::Ipv4Addr;

use io_support::{Endpoint, FarPort, Flow, check_echo, check_receive, check_transmit};
use svr_dataplane::io::mem::{MemConfig, mem_pair};

const COUNT: usize = 2000;

fn flow() -> Flow {
    Flow {
        near: Endpoint {
            mac: [0x02, 0, 0, 0, 0, 1],
            ip: Ipv4Addr::new(10, 220, 9, 1),
            port: 16384,
        },
        far: Endpoint { mac: [0x02, 0, 0, 0, 0, 2], ip: Ipv4Addr::new(10, 220, 9, 2), port: 40000 },
    }
}

#[test]
fn mem_path_receive_all() {
    let (mut near, far) = mem_pair(&MemConfig::default()).unwrap();
    let mut far = FarPort::new(far, &flow());

    let transfer = check_receive(&mut near, &mut far, &flow(), COUNT);
    assert_eq!(transfer.count, COUNT);
    assert_eq!(far.port.pool_free(), MemConfig::default().frames, "every frame back in the pool");
}

#[test]
fn mem_path_transmit_all() {
    let (mut near, far) = mem_pair(&MemConfig::default()).unwrap();
    let mut far = FarPort::new(far, &flow());

    check_transmit(&mut near, &mut far, &flow(), COUNT);
    assert_eq!(near.pool_free(), MemConfig::default().frames, "every frame back in the pool");
}

#[test]
fn mem_path_echo_all() {
    let (mut near, far) = mem_pair(&MemConfig::default()).unwrap();
    let mut far = FarPort::new(far, &flow());

    let transfer = check_echo(&mut near, &mut far, COUNT);
    eprintln!("memory echo: {:.0} round trips/s", transfer.rate());
    assert_eq!(near.pool_free(), MemConfig::default().frames, "every frame back in the pool");
}
