//! The DPDK backend on virtual devices: net_ring loopback, two net_memif ports in one
//! process, and net_af_packet and net_af_xdp on a veth pair between two namespaces with
//! a kernel UDP socket at the far end. The packet-path checks are the ones the memory
//! and AF_XDP backends run.
//!
//! EAL initialises once per process, so every test sets up its own EAL, and the suite
//! must run one test per process, as cargo-nextest does. Under `cargo test`, all but the
//! first test fail with `EalConflict`. The tests need root and DPDK 22.11 with its
//! net_ring, net_memif, net_af_packet and net_af_xdp drivers; without them they fail
//! with a message saying so.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test the same way"
)]

mod io_support;

use std::{
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use io_support::netns::{in_netns, ip, run};
use io_support::{Endpoint, Far, FarPort, Flow, check_echo, check_receive, check_transmit};
use svr_dataplane::io::{
    Burst, DEFAULT_HEADROOM, IoError, PacketIo,
    dpdk::{DpdkPort, DpdkPortConfig, Eal, EalConfig},
    mem::{MemConfig, mem_pair},
};

const COUNT: usize = 2000;
const DPDK_PORT: u16 = 20000;
const KERNEL_PORT: u16 = 40000;
const DPDK_IP: Ipv4Addr = Ipv4Addr::new(10, 230, 0, 1);
const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(10, 230, 0, 2);
const DPDK_MAC: [u8; 6] = [0x02, 0x23, 0x00, 0x00, 0x00, 0x01];
const KERNEL_MAC: [u8; 6] = [0x02, 0x23, 0x00, 0x00, 0x00, 0x02];
const LINK_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Set-up helpers.

/// Fails the test with an explanation unless it runs as root.
fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("");
    assert_eq!(
        euid, "0",
        "DPDK tests need root: EAL writes under /var/run/dpdk, and the veth tests create \
         network namespaces. Run them as root (for example with sudo -E), or build \
         without the dpdk feature."
    );
}

/// EAL's runtime directory for this process, removed on drop.
struct RuntimeDir(String);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.0));
    }
}

fn prefix() -> String {
    format!("svrdpdk-{}", std::process::id())
}

/// Builds the EAL configuration of these tests: virtual devices only, with this process's own
/// file prefix.
fn eal_config(vdevs: &[String]) -> EalConfig {
    EalConfig { file_prefix: Some(prefix()), ..EalConfig::virtual_devices(vdevs.to_vec()) }
}

/// Initialises EAL with `vdevs`, failing with a hint at the missing package.
fn eal(vdevs: &[String]) -> (Eal, RuntimeDir) {
    require_root();
    let dir = RuntimeDir(prefix());
    let eal = Eal::init(&eal_config(vdevs)).unwrap_or_else(|e| {
        panic!(
            "{e}. Is DPDK 22.11 installed with the drivers for {vdevs:?} (Debian packages \
             librte-net-ring23, librte-net-memif23, librte-net-af-packet23, \
             librte-net-af-xdp23)?"
        )
    });
    (eal, dir)
}

fn open(eal: Eal, config: &DpdkPortConfig) -> DpdkPort {
    DpdkPort::open(eal, config).unwrap_or_else(|e| panic!("open {}: {e}", config.name))
}

/// Sends one burst of frames carrying `payloads` and returns how many were queued.
fn send(port: &mut DpdkPort, payloads: &[Vec<u8>]) -> usize {
    let mut burst = Burst::new();
    for payload in payloads {
        let mut frame = port.alloc().expect("pool has a free frame");
        frame.copy_from(payload).unwrap();
        burst.push(frame).unwrap();
    }
    port.tx_burst(&mut burst).unwrap()
}

/// Receives until `count` frames arrived or 5 s passed, returning their bytes.
fn receive(port: &mut DpdkPort, count: usize) -> Vec<Vec<u8>> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut burst = Burst::new();
    while got.len() < count && start.elapsed() < Duration::from_secs(5) {
        if port.rx_burst(&mut burst).unwrap() == 0 {
            port.wait_readable(Duration::from_millis(5)).unwrap();
            continue;
        }
        for frame in burst.drain() {
            assert!(frame.headroom() >= 128, "headroom {} below 128", frame.headroom());
            got.push(frame.data().to_vec());
            port.free(frame);
        }
    }
    got
}

fn patterned(seq: usize) -> Vec<u8> {
    let len = 60 + (seq * 97) % 1400;
    (0..len).map(|i| (seq * 13 + i * 7) as u8).collect()
}

// ---------------------------------------------------------------------------------------
// net_ring: the port's transmit ring is its receive ring.

fn ring() -> (DpdkPort, RuntimeDir) {
    let (eal, dir) = eal(&["net_ring0".to_owned()]);
    (open(eal, &DpdkPortConfig::new("net_ring0")), dir)
}

#[test]
fn ring_loopback_byte_exact() {
    let (mut port, _dir) = ring();
    let payloads: Vec<Vec<u8>> = (0..32).map(patterned).collect();

    assert_eq!(send(&mut port, &payloads), 32, "frames queued");
    let mut burst = Burst::new();
    assert_eq!(port.rx_burst(&mut burst).unwrap(), 32, "frames looped back");
    for (frame, payload) in burst.iter().zip(&payloads) {
        assert_eq!(frame.data(), &payload[..], "frame bytes");
        // net_ring hands back the transmitted mbuf, with the offset tx_burst wrote.
        assert_eq!(frame.headroom(), DEFAULT_HEADROOM, "headroom of a looped frame");
    }
    port.free_burst(&mut burst);

    assert_eq!(port.stats().tx_frames, 32);
    assert_eq!(port.stats().rx_frames, 32);
    assert_eq!(port.pool_free(), port.pool_size(), "every mbuf back in the pool");
    let device = port.device_stats().unwrap();
    assert_eq!(device.tx_packets, 32, "device tx counter");
    assert_eq!(device.rx_packets, 32, "device rx counter");
}

#[test]
fn ring_prepend_survives_loopback() {
    let (mut port, _dir) = ring();
    let mut frame = port.alloc().unwrap();
    frame.copy_from(b"inner packet").unwrap();
    frame.prepend(6).unwrap().copy_from_slice(b"outer:");
    frame.advance(2).unwrap();
    let mut burst = Burst::new();
    burst.push(frame).unwrap();
    assert_eq!(port.tx_burst(&mut burst).unwrap(), 1);

    let got = receive(&mut port, 1);
    assert_eq!(got, [b"ter:inner packet".to_vec()]);
}

#[test]
fn ring_full_counts_tx_dropped() {
    let (mut port, _dir) = ring();
    let total = 1100;
    let mut sent = 0;
    for chunk in (0..total).collect::<Vec<_>>().chunks(32) {
        let payloads: Vec<Vec<u8>> = chunk.iter().map(|&seq| patterned(seq)).collect();
        sent += send(&mut port, &payloads);
    }

    let stats = port.stats();
    assert!(sent < total, "all {total} frames fit the ring");
    assert_eq!(stats.tx_frames, sent as u64);
    assert_eq!(stats.tx_dropped, (total - sent) as u64, "frames the ring did not take");
    assert_eq!(port.pool_size() - port.pool_free(), sent, "only queued mbufs out of the pool");

    let got = receive(&mut port, sent);
    assert_eq!(got.len(), sent);
    assert_eq!(port.pool_free(), port.pool_size(), "every mbuf back in the pool");
}

#[test]
fn ring_pool_exhaustion_returns_none() {
    let (eal, _dir) = eal(&["net_ring0".to_owned()]);
    let config = DpdkPortConfig { mbufs: 63, mbuf_cache: 0, ..DpdkPortConfig::new("net_ring0") };
    let mut port = open(eal, &config);

    let frames: Vec<_> = (0..63).map(|_| port.alloc().expect("pool has a free frame")).collect();
    assert!(port.alloc().is_none(), "alloc from an empty pool");
    assert_eq!(port.stats().alloc_failures, 1);
    assert_eq!(port.pool_free(), 0);

    for frame in frames {
        port.free(frame);
    }
    assert_eq!(port.pool_free(), 63);
    assert!(port.alloc().is_some(), "alloc after the frames came back");
}

#[test]
fn ring_alloc_frame_geometry() {
    let (mut port, _dir) = ring();
    let mut frame = port.alloc().unwrap();

    assert_eq!(frame.capacity(), 2304, "capacity is the configured data room");
    assert_eq!(frame.headroom(), DEFAULT_HEADROOM);
    assert_eq!(frame.tailroom(), 2048);
    assert!(frame.is_empty());
    frame.reset(0).unwrap();
    assert_eq!(frame.append(2304).unwrap().len(), 2304, "whole data room writable");
    port.free(frame);
}

#[test]
fn ring_dropped_frame_returns_to_pool() {
    let (mut port, _dir) = ring();
    let frame = port.alloc().unwrap();
    assert_eq!(port.pool_free(), port.pool_size() - 1);

    drop(frame);
    assert_eq!(port.pool_free(), port.pool_size(), "a dropped frame frees its mbuf");
}

#[test]
fn ring_foreign_frame_counted() {
    let (mut port, _dir) = ring();
    let (mut mem, _peer) = mem_pair(&MemConfig::default()).unwrap();

    let mut burst = Burst::new();
    burst.push(mem.alloc().unwrap()).unwrap();
    assert_eq!(port.tx_burst(&mut burst).unwrap(), 0, "foreign frame sent");
    assert!(burst.is_empty());
    assert_eq!(port.stats().foreign_frames, 1);
    assert_eq!(port.stats().tx_frames, 0);

    port.free(mem.alloc().unwrap());
    assert_eq!(port.stats().foreign_frames, 2);

    // A DPDK frame given to the memory backend is foreign there, and its mbuf goes home.
    let mut burst = Burst::new();
    burst.push(port.alloc().unwrap()).unwrap();
    assert_eq!(mem.tx_burst(&mut burst).unwrap(), 0);
    assert_eq!(mem.stats().foreign_frames, 1);
    assert_eq!(port.pool_free(), port.pool_size());
}

#[test]
fn ring_frame_of_other_port_is_foreign() {
    let vdevs = ["net_ring0".to_owned(), "net_ring1".to_owned()];
    let (eal, _dir) = eal(&vdevs);
    let mut first = open(eal, &DpdkPortConfig::new("net_ring0"));
    let mut second = open(eal, &DpdkPortConfig::new("net_ring1"));

    let mut burst = Burst::new();
    burst.push(second.alloc().unwrap()).unwrap();
    assert_eq!(first.tx_burst(&mut burst).unwrap(), 0);
    assert_eq!(first.stats().foreign_frames, 1);
    assert_eq!(second.pool_free(), second.pool_size(), "mbuf back in its own pool");
}

#[test]
fn ring_link_and_mac() {
    let (port, _dir) = ring();
    assert!(port.wait_link_up(LINK_TIMEOUT).unwrap(), "net_ring link down");
    let link = port.link().unwrap();
    assert!(link.up);
    assert_eq!(port.name(), "net_ring0");
    let mac = port.mac_address().unwrap();
    assert_eq!(mac[0] & 0x01, 0, "MAC {mac:02x?} is multicast");
}

#[test]
fn ring_wait_readable_idle_and_ready() {
    let (mut port, _dir) = ring();
    let start = Instant::now();
    assert!(!port.wait_readable(Duration::from_millis(30)).unwrap(), "idle port readable");
    assert!(start.elapsed() >= Duration::from_millis(30));

    assert_eq!(send(&mut port, &[b"wake".to_vec()]), 1);
    let start = Instant::now();
    assert!(port.wait_readable(Duration::from_secs(5)).unwrap(), "no packet seen");
    assert!(start.elapsed() < Duration::from_secs(1));

    // The packet wait_readable found is handed out by the next rx_burst.
    let mut burst = Burst::new();
    assert_eq!(port.rx_burst(&mut burst).unwrap(), 1);
    assert_eq!(burst.as_slice()[0].data(), b"wake");
    port.free_burst(&mut burst);
}

#[test]
fn ring_pending_respects_burst_room() {
    let (mut port, _dir) = ring();
    let payloads: Vec<Vec<u8>> = (0..20).map(patterned).collect();
    assert_eq!(send(&mut port, &payloads), 20);
    assert!(port.wait_readable(Duration::from_secs(1)).unwrap());

    let mut burst = Burst::new();
    for _ in 0..25 {
        burst.push(port.alloc().unwrap()).unwrap();
    }
    assert_eq!(port.rx_burst(&mut burst).unwrap(), 7, "frames in a burst with 7 free slots");
    port.free_burst(&mut burst);
    assert_eq!(port.rx_burst(&mut burst).unwrap(), 13, "the rest of the pending frames");
    for (frame, payload) in burst.iter().zip(&payloads[7..]) {
        assert_eq!(frame.data(), &payload[..]);
    }
    port.free_burst(&mut burst);
}

// ---------------------------------------------------------------------------------------
// EAL and port set-up errors.

#[test]
fn eal_second_init_conflicts() {
    let vdevs = ["net_ring0".to_owned()];
    let (_eal, _dir) = eal(&vdevs);

    Eal::init(&eal_config(&vdevs)).expect("same configuration again");
    assert!(Eal::get().is_some());
    let other = eal_config(&["net_ring1".to_owned()]);
    let err = Eal::init(&other).unwrap_err();
    let IoError::EalConflict { running, requested } = &err else { panic!("{err}") };
    assert!(running.contains("--vdev=net_ring0"), "{running}");
    assert!(requested.contains("--vdev=net_ring1"), "{requested}");
}

#[test]
fn eal_init_unknown_driver() {
    require_root();
    let _dir = RuntimeDir(prefix());
    let config = eal_config(&["net_svrnone0".to_owned()]);

    let err = Eal::init(&config).unwrap_err();
    assert!(matches!(err, IoError::EalInit { .. }), "{err}");
    let again = Eal::init(&config).unwrap_err();
    assert!(matches!(again, IoError::EalInit { .. }), "second attempt: {again}");
    assert!(Eal::get().is_none());
}

#[test]
fn eal_argument_rejected_before_init() {
    require_root();
    let _dir = RuntimeDir(prefix());
    let bad = EalConfig { file_prefix: Some("a/b".into()), ..eal_config(&[]) };
    assert!(matches!(Eal::init(&bad), Err(IoError::EalArgument { .. })));

    // The rejected call left EAL untouched, so it still initialises.
    Eal::init(&eal_config(&["net_ring0".to_owned()])).unwrap();
}

#[test]
fn port_not_found() {
    let (eal, _dir) = eal(&["net_ring0".to_owned()]);
    let err = DpdkPort::open(eal, &DpdkPortConfig::new("net_ring9")).unwrap_err();
    assert!(matches!(err, IoError::PortNotFound { ref port } if port == "net_ring9"), "{err}");
}

#[test]
fn port_open_twice_is_busy() {
    let (mut port, _dir) = ring();
    let eal = Eal::get().unwrap();

    let err = DpdkPort::open(eal, &DpdkPortConfig::new("net_ring0")).unwrap_err();
    assert!(
        matches!(err, IoError::Dpdk { operation: "rte_eth_dev_configure", errno: 16, .. }),
        "{err}"
    );
    // The failed open left the running port alone.
    assert_eq!(send(&mut port, &[b"still up".to_vec()]), 1);
    assert_eq!(receive(&mut port, 1), [b"still up".to_vec()]);
}

#[test]
fn port_config_rejected() {
    let (eal, _dir) = eal(&["net_ring0".to_owned()]);
    let config = DpdkPortConfig { data_room: 100, ..DpdkPortConfig::new("net_ring0") };
    let err = DpdkPort::open(eal, &config).unwrap_err();
    assert!(matches!(err, IoError::InvalidConfig { field: "DPDK mbuf data room", .. }), "{err}");
}

// ---------------------------------------------------------------------------------------
// net_memif: a server and a client port in one process, linked over a unix socket.

/// The memif socket path, removed on drop.
struct SocketFile(String);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A linked server and client port. Dropping closes the server, waits until the client
/// has seen the link go down, and only then closes the client.
///
/// Closing both ends of a memif pair in one process back to back crashed DPDK 22.11's
/// memif driver in EAL's interrupt thread in about one run in five under load, and the
/// pause avoided it in 100 runs.
struct Memif {
    server: Option<DpdkPort>,
    client: Option<FarPort<DpdkPort>>,
    _socket: SocketFile,
    _dir: RuntimeDir,
}

impl Memif {
    fn server(&mut self) -> &mut DpdkPort {
        self.server.as_mut().unwrap()
    }

    fn client(&mut self) -> &mut FarPort<DpdkPort> {
        self.client.as_mut().unwrap()
    }

    /// Both ends, for the checks that drive them together.
    fn ends(&mut self) -> (&mut DpdkPort, &mut FarPort<DpdkPort>) {
        (self.server.as_mut().unwrap(), self.client.as_mut().unwrap())
    }
}

impl Drop for Memif {
    fn drop(&mut self) {
        drop(self.server.take());
        if let Some(client) = self.client.take() {
            let start = Instant::now();
            while client.port.link().is_ok_and(|link| link.up)
                && start.elapsed() < Duration::from_secs(2)
            {
                thread::sleep(Duration::from_millis(1));
            }
            thread::sleep(Duration::from_millis(100));
            drop(client);
        }
    }
}

fn memif_flow() -> Flow {
    Flow {
        near: Endpoint { mac: DPDK_MAC, ip: DPDK_IP, port: DPDK_PORT },
        far: Endpoint { mac: KERNEL_MAC, ip: KERNEL_IP, port: KERNEL_PORT },
    }
}

fn memif() -> Memif {
    let socket = SocketFile(format!("/tmp/svrdpdk-{}.sock", std::process::id()));
    let vdevs = [
        format!("net_memif0,role=server,socket={},socket-abstract=no,id=0", socket.0),
        format!("net_memif1,role=client,socket={},socket-abstract=no,id=0", socket.0),
    ];
    let (eal, dir) = eal(&vdevs);
    let server = open(eal, &DpdkPortConfig::new("net_memif0"));
    let mut client = open(eal, &DpdkPortConfig::new("net_memif1"));

    assert!(server.wait_link_up(LINK_TIMEOUT).unwrap(), "memif server link down");
    assert!(client.wait_link_up(LINK_TIMEOUT).unwrap(), "memif client link down");
    // The client posts its receive descriptors inside rx_burst, and the server cannot
    // transmit until it has.
    let mut burst = Burst::new();
    assert_eq!(client.rx_burst(&mut burst).unwrap(), 0, "client received before any send");

    let client = FarPort::new(client, &memif_flow());
    Memif { server: Some(server), client: Some(client), _socket: socket, _dir: dir }
}

#[test]
fn memif_receive_all() {
    let mut m = memif();
    let (server, client) = m.ends();
    let transfer = check_receive(server, client, &memif_flow(), COUNT);
    eprintln!("DPDK memif receive: {:.0} datagrams/s", transfer.rate());
    assert_eq!(server.stats().rx_frames, COUNT as u64);
    assert_eq!(server.rx_rejected(), 0);
    assert_eq!(server.pool_free(), server.pool_size(), "server mbufs back in the pool");
}

#[test]
fn memif_transmit_all() {
    let mut m = memif();
    let (server, client) = m.ends();
    let transfer = check_transmit(server, client, &memif_flow(), COUNT);
    eprintln!("DPDK memif transmit: {:.0} datagrams/s", transfer.rate());
    assert_eq!(server.stats().tx_dropped, 0);
    let client = &client.port;
    assert_eq!(client.pool_free(), client.pool_size(), "client mbufs back in the pool");
}

#[test]
fn memif_echo_all() {
    let mut m = memif();
    let (server, client) = m.ends();
    let transfer = check_echo(server, client, COUNT);
    eprintln!("DPDK memif echo: {:.0} round trips/s", transfer.rate());
    assert_eq!(server.stats().tx_frames, COUNT as u64);
}

#[test]
fn memif_received_headroom() {
    let mut m = memif();
    m.client().send(&io_support::payload(1));

    let server = m.server();
    let mut burst = Burst::new();
    let start = Instant::now();
    while burst.is_empty() && start.elapsed() < Duration::from_secs(5) {
        server.wait_readable(Duration::from_millis(50)).unwrap();
        server.rx_burst(&mut burst).unwrap();
    }
    assert_eq!(burst.len(), 1, "datagram received");
    // net_memif copies into a fresh mbuf, which starts at RTE_PKTMBUF_HEADROOM.
    assert_eq!(burst.as_slice()[0].headroom(), 128);
    assert_eq!(burst.as_slice()[0].capacity(), 2304, "frame capacity is the data room");
    server.free_burst(&mut burst);
}

// ---------------------------------------------------------------------------------------
// net_af_packet and net_af_xdp on a veth pair, against a kernel UDP socket.

/// Two namespaces with a single-queue veth pair between them, deleted on drop.
///
/// ```text
///   namespace svrdpdk-<pid>-d            namespace svrdpdk-<pid>-k
///   [ dd<pid>, no address ] =========== [ dk<pid> 10.230.0.2/24 ]
///     DPDK side (the PMD's socket)         kernel side (UDP socket)
/// ```
///
/// The DPDK side has no address, so its kernel ignores the test traffic. IPv6 is off on
/// both sides, so no router solicitations or MLD reports appear. The kernel side reaches
/// 10.230.0.1 through a static neighbour entry, because DPDK does not reply to ARP, and
/// has transmit checksum offload off, so its UDP checksums are complete on the wire.
struct Veth {
    dpdk_ns: String,
    kernel_ns: String,
    dpdk_if: String,
}

impl Veth {
    fn new() -> Veth {
        require_root();
        let pid = std::process::id();
        let veth = Veth {
            dpdk_ns: format!("svrdpdk-{pid}-d"),
            kernel_ns: format!("svrdpdk-{pid}-k"),
            dpdk_if: format!("dd{pid}"),
        };
        let kernel_if = format!("dk{pid}");

        // From here on, Drop removes whatever was created.
        ip(&["netns", "add", &veth.dpdk_ns]);
        ip(&["netns", "add", &veth.kernel_ns]);
        let mac = |m: [u8; 6]| m.map(|b| format!("{b:02x}")).join(":");
        let (dpdk_mac, kernel_mac) = (mac(DPDK_MAC), mac(KERNEL_MAC));
        let queues = ["numtxqueues", "1", "numrxqueues", "1"];
        let mut command = Command::new("ip");
        command.args(["link", "add", "name", &veth.dpdk_if, "netns", &veth.dpdk_ns]);
        command.args(["address", &dpdk_mac]).args(queues).args(["type", "veth", "peer"]);
        command.args(["name", &kernel_if, "netns", &veth.kernel_ns, "address", &kernel_mac]);
        run(command.args(queues));

        for (ns, ifname) in [(&veth.dpdk_ns, &veth.dpdk_if), (&veth.kernel_ns, &kernel_if)] {
            for key in ["all", "default", ifname.as_str()] {
                let setting = format!("net.ipv6.conf.{key}.disable_ipv6=1");
                run(Command::new("ip").args(["netns", "exec", ns, "sysctl", "-qw", &setting]));
            }
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", ifname, "up"]);
        }
        let kernel = veth.kernel_ns.as_str();
        ip(&["-n", kernel, "addr", "add", &format!("{KERNEL_IP}/24"), "dev", &kernel_if]);
        let neigh = ["neigh", "replace", &DPDK_IP.to_string(), "lladdr", &dpdk_mac];
        ip(&[&["-n", kernel][..], &neigh, &["dev", &kernel_if, "nud", "permanent"]].concat());
        run(Command::new("ip")
            .args(["netns", "exec", kernel, "ethtool", "-K", &kernel_if])
            .args(["tx", "off"]));
        veth
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and with it the peer.
        for ns in [&self.dpdk_ns, &self.kernel_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The far end as a kernel UDP socket in the kernel-side namespace.
struct KernelFar {
    socket: UdpSocket,
    to: SocketAddr,
}

impl Far for KernelFar {
    fn send(&mut self, payload: &[u8]) {
        self.socket.send_to(payload, self.to).unwrap();
    }

    /// Polls without blocking until `timeout`, because a blocking read's timeout is
    /// rounded up to the kernel's tick.
    fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let start = Instant::now();
        let mut buf = [0u8; 2048];
        loop {
            match self.socket.recv_from(&mut buf) {
                Ok((len, from)) => {
                    assert_eq!(from, self.to, "datagram source");
                    return Some(buf[..len].to_vec());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if start.elapsed() >= timeout {
                        return None;
                    }
                    thread::yield_now();
                }
                Err(e) => panic!("kernel socket receive: {e}"),
            }
        }
    }
}

/// Field order drops the port before the namespaces and the EAL runtime directory.
struct VethSetup {
    port: DpdkPort,
    far: KernelFar,
    _veth: Veth,
    _dir: RuntimeDir,
}

fn veth_flow() -> Flow {
    memif_flow()
}

/// Builds the veth pair, then initialises EAL with a vdev of `driver` on the DPDK end
/// and opens it, both inside the DPDK-side namespace where the PMD opens its socket.
fn veth_setup(driver: &str) -> VethSetup {
    let veth = Veth::new();
    let vdev = format!("{driver}0,iface={}", veth.dpdk_if);
    let name = format!("{driver}0");
    let (port, dir) = in_netns(&veth.dpdk_ns, || {
        let (eal, dir) = eal(&[vdev]);
        (open(eal, &DpdkPortConfig::new(&name)), dir)
    });
    assert!(port.wait_link_up(LINK_TIMEOUT).unwrap(), "{name} link down");
    assert_eq!(port.mac_address().unwrap(), DPDK_MAC, "{name} MAC is the interface's");

    let socket = in_netns(&veth.kernel_ns, || UdpSocket::bind((KERNEL_IP, KERNEL_PORT)).unwrap());
    socket.set_nonblocking(true).unwrap();
    let far = KernelFar { socket, to: SocketAddr::from((DPDK_IP, DPDK_PORT)) };
    VethSetup { port, far, _veth: veth, _dir: dir }
}

fn report(what: &str, driver: &str, transfer: &io_support::Transfer) {
    eprintln!("DPDK {driver} {what}: {} datagrams, {:.0}/s", transfer.count, transfer.rate());
}

#[test]
fn af_packet_receive_all() {
    let mut s = veth_setup("net_af_packet");
    let transfer = check_receive(&mut s.port, &mut s.far, &veth_flow(), COUNT);
    report("receive", "net_af_packet", &transfer);
    assert_eq!(s.port.stats().rx_frames, COUNT as u64);
}

#[test]
fn af_packet_transmit_all() {
    let mut s = veth_setup("net_af_packet");
    let transfer = check_transmit(&mut s.port, &mut s.far, &veth_flow(), COUNT);
    report("transmit", "net_af_packet", &transfer);
    assert_eq!(s.port.stats().tx_dropped, 0);
}

#[test]
fn af_packet_echo_all() {
    let mut s = veth_setup("net_af_packet");
    let transfer = check_echo(&mut s.port, &mut s.far, COUNT);
    report("echo", "net_af_packet", &transfer);
}

#[test]
fn af_xdp_receive_all() {
    let mut s = veth_setup("net_af_xdp");
    let transfer = check_receive(&mut s.port, &mut s.far, &veth_flow(), COUNT);
    report("receive", "net_af_xdp", &transfer);
    assert_eq!(s.port.stats().rx_frames, COUNT as u64);
}

#[test]
fn af_xdp_transmit_all() {
    let mut s = veth_setup("net_af_xdp");
    let transfer = check_transmit(&mut s.port, &mut s.far, &veth_flow(), COUNT);
    report("transmit", "net_af_xdp", &transfer);
    assert_eq!(s.port.stats().tx_dropped, 0);
}

#[test]
fn af_xdp_echo_all() {
    let mut s = veth_setup("net_af_xdp");
    let transfer = check_echo(&mut s.port, &mut s.far, COUNT);
    report("echo", "net_af_xdp", &transfer);
}

/// Sends one datagram from the kernel side and returns the headroom of the frame the
/// port receives for it.
fn received_headroom(s: &mut VethSetup) -> usize {
    s.far.send(b"headroom probe");
    let mut burst = Burst::new();
    let start = Instant::now();
    while burst.is_empty() && start.elapsed() < Duration::from_secs(5) {
        s.port.wait_readable(Duration::from_millis(50)).unwrap();
        s.port.rx_burst(&mut burst).unwrap();
    }
    assert_eq!(burst.len(), 1, "datagram received");
    let frame = &burst.as_slice()[0];
    let got = io_support::parse_udp(frame.data()).unwrap();
    assert_eq!(got.payload, b"headroom probe");
    let headroom = frame.headroom();
    s.port.free_burst(&mut burst);
    headroom
}

#[test]
fn af_packet_received_headroom() {
    let mut s = veth_setup("net_af_packet");
    // net_af_packet copies into a fresh mbuf, which starts at RTE_PKTMBUF_HEADROOM.
    assert_eq!(received_headroom(&mut s), 128);
}

#[test]
fn af_xdp_received_headroom() {
    let mut s = veth_setup("net_af_xdp");
    // The PMD uses the mbuf pool as its UMEM, so 384 is most likely the mbuf's 128 bytes
    // plus the kernel's 256 bytes of XDP headroom.
    assert_eq!(received_headroom(&mut s), 384);
}
