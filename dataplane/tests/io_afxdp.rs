//! The AF_XDP backend on a veth pair between two namespaces: the packet-path checks
//! against a kernel UDP socket, the XDP filter's decisions seen from the kernel side,
//! and the error of each setup failure.
//!
//! These tests need root. Without it they fail with a message saying so.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test the same way"
)]

mod io_support;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use io_support::{
    Far, Flow, check_echo, check_receive, check_transmit,
    netns::{KERNEL_IP, Pair, XSK_IP, require_root},
};
use svr_dataplane::io::{
    Burst, IoError, PacketIo,
    afxdp::{PortRange, XdpAttachment, XdpFilter, XdpMode, Xsk, XskConfig},
};

const COUNT: usize = 2000;
const XSK_PORT: u16 = 20000;
const KERNEL_PORT: u16 = 40000;

/// The far end as a kernel UDP socket in the kernel-side namespace.
struct KernelFar {
    socket: UdpSocket,
    to: SocketAddr,
}

impl Far for KernelFar {
    fn send(&mut self, payload: &[u8]) {
        self.socket.send_to(payload, self.to).unwrap();
    }

    /// Polls the socket without blocking until `timeout`: a blocking read's timeout is
    /// rounded up to the kernel's tick, which would dominate the measured rates.
    fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        self.socket.set_nonblocking(true).unwrap();
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
                    std::thread::yield_now();
                }
                Err(e) => panic!("kernel socket receive: {e}"),
            }
        }
    }
}

/// A bound socket with its veth pair; the field order drops the socket before the pair.
struct Setup {
    xsk: Xsk,
    far: KernelFar,
    pair: Pair,
}

fn flow() -> Flow {
    Flow { near: Pair::xsk_endpoint(XSK_PORT), far: Pair::kernel_endpoint(KERNEL_PORT) }
}

fn attach(pair: &Pair, mode: XdpMode, filter: &XdpFilter) -> Arc<XdpAttachment> {
    pair.in_xsk_ns(|| Arc::new(XdpAttachment::attach(&pair.xsk_if, mode, filter, 1).unwrap()))
}

fn open(pair: &Pair, attachment: &Arc<XdpAttachment>) -> Xsk {
    pair.in_xsk_ns(|| Xsk::open(&XskConfig::default(), attachment).unwrap())
}

fn setup(mode: XdpMode) -> Setup {
    let pair = Pair::new();
    let attachment = attach(&pair, mode, &XdpFilter::wan_default());
    let xsk = open(&pair, &attachment);
    let socket = pair.kernel_socket(KERNEL_PORT);
    let far = KernelFar { socket, to: SocketAddr::from((XSK_IP, XSK_PORT)) };
    Setup { xsk, far, pair }
}

fn report(what: &str, mode: XdpMode, transfer: &io_support::Transfer) {
    eprintln!("AF_XDP {mode:?} {what}: {} datagrams, {:.0}/s", transfer.count, transfer.rate());
}

#[test]
fn afxdp_skb_receive_all() {
    let mut s = setup(XdpMode::Skb);
    let transfer = check_receive(&mut s.xsk, &mut s.far, &flow(), COUNT);
    report("receive", XdpMode::Skb, &transfer);
    assert_eq!(s.xsk.stats().rx_frames, COUNT as u64);
}

#[test]
fn afxdp_native_receive_all() {
    let mut s = setup(XdpMode::Native);
    let transfer = check_receive(&mut s.xsk, &mut s.far, &flow(), COUNT);
    report("receive", XdpMode::Native, &transfer);
    assert_eq!(s.xsk.stats().rx_frames, COUNT as u64);
}

#[test]
fn afxdp_skb_transmit_all() {
    let mut s = setup(XdpMode::Skb);
    let transfer = check_transmit(&mut s.xsk, &mut s.far, &flow(), COUNT);
    report("transmit", XdpMode::Skb, &transfer);
    assert_eq!(s.xsk.stats().tx_dropped, 0);
}

#[test]
fn afxdp_native_transmit_all() {
    let mut s = setup(XdpMode::Native);
    let transfer = check_transmit(&mut s.xsk, &mut s.far, &flow(), COUNT);
    report("transmit", XdpMode::Native, &transfer);
    assert_eq!(s.xsk.stats().tx_dropped, 0);
}

#[test]
fn afxdp_skb_echo_all() {
    let mut s = setup(XdpMode::Skb);
    let transfer = check_echo(&mut s.xsk, &mut s.far, COUNT);
    report("echo", XdpMode::Skb, &transfer);
}

#[test]
fn afxdp_native_echo_all() {
    let mut s = setup(XdpMode::Native);
    let transfer = check_echo(&mut s.xsk, &mut s.far, COUNT);
    report("echo", XdpMode::Native, &transfer);
}

/// Receives for `wait` and returns how many frames arrived, freeing them.
fn drain_for(xsk: &mut Xsk, wait: Duration) -> usize {
    let start = Instant::now();
    let mut burst = Burst::new();
    let mut frames = 0;
    while start.elapsed() < wait {
        frames += xsk.rx_burst(&mut burst).unwrap();
        xsk.free_burst(&mut burst);
        xsk.wait_readable(Duration::from_millis(10)).unwrap();
    }
    frames
}

#[test]
fn afxdp_arp_and_ping_pass() {
    let mut s = setup(XdpMode::Native);
    let target = XSK_IP.to_string();

    // No static neighbour entry exists, so the ping only works if ARP reaches the
    // kernel on the XSK side, and its ICMP echo is not taken by the socket.
    let replied = s.pair.kernel_exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", &target]);
    assert!(replied, "ping from the kernel side got no reply while the XSK was bound");
    assert_eq!(drain_for(&mut s.xsk, Duration::from_millis(100)), 0, "socket saw ARP or ICMP");
}

#[test]
fn afxdp_port_outside_range_reaches_kernel() {
    let mut s = setup(XdpMode::Skb);
    let listener = s.pair.in_xsk_ns(|| UdpSocket::bind((XSK_IP, 5000)).unwrap());
    s.far.socket.set_nonblocking(false).unwrap();
    listener.set_read_timeout(Some(Duration::from_secs(2))).unwrap();

    for seq in 0..20 {
        let payload = io_support::payload(seq);
        s.far.socket.send_to(&payload, (XSK_IP, 5000)).unwrap();
        let mut buf = [0u8; 2048];
        let (len, from) = listener.recv_from(&mut buf).expect("kernel socket got the datagram");
        assert_eq!(&buf[..len], payload, "payload of datagram {seq}");
        assert_eq!(from, SocketAddr::from((KERNEL_IP, KERNEL_PORT)));
    }
    assert_eq!(drain_for(&mut s.xsk, Duration::from_millis(100)), 0, "socket saw port 5000");
    assert_eq!(s.xsk.stats().rx_frames, 0);
}

#[test]
fn afxdp_bfd_port_redirected() {
    let mut s = setup(XdpMode::Skb);
    s.far.socket.send_to(b"bfd control", (XSK_IP, 1280)).unwrap();

    let mut burst = Burst::new();
    let start = Instant::now();
    while burst.is_empty() && start.elapsed() < Duration::from_secs(5) {
        s.xsk.wait_readable(Duration::from_millis(50)).unwrap();
        s.xsk.rx_burst(&mut burst).unwrap();
    }
    assert_eq!(burst.len(), 1, "BFD datagram reached the socket");
    let got = io_support::parse_udp(burst.as_slice()[0].data()).unwrap();
    assert_eq!(got.dst.port, 1280);
    assert_eq!(got.payload, b"bfd control");
    // Copy mode leaves XDP_PACKET_HEADROOM (256 bytes) in front of received data.
    assert_eq!(burst.as_slice()[0].headroom(), 256);
    s.xsk.free_burst(&mut burst);
}

#[test]
fn afxdp_wait_readable_wakes() {
    let mut s = setup(XdpMode::Native);
    let start = Instant::now();
    assert!(!s.xsk.wait_readable(Duration::from_millis(50)).unwrap(), "idle socket readable");
    assert!(start.elapsed() >= Duration::from_millis(45));

    s.far.send(b"wake up");
    let start = Instant::now();
    assert!(s.xsk.wait_readable(Duration::from_secs(5)).unwrap(), "no wakeup for a datagram");
    assert!(start.elapsed() < Duration::from_secs(4));

    let mut burst = Burst::new();
    assert_eq!(s.xsk.rx_burst(&mut burst).unwrap(), 1);
    s.xsk.free_burst(&mut burst);
}

#[test]
fn afxdp_queue_outside_map() {
    let pair = Pair::new();
    let attachment = attach(&pair, XdpMode::Skb, &XdpFilter::wan_default());

    let config = XskConfig { queue: 4, ..XskConfig::default() };
    let err = pair.in_xsk_ns(|| Xsk::open(&config, &attachment).unwrap_err());
    assert!(matches!(err, IoError::InvalidConfig { field: "AF_XDP queue", value: 4, .. }), "{err}");
}

#[test]
fn afxdp_lan_redirects_transit() {
    let pair = Pair::new();
    let filter = XdpFilter::Lan { local_addrs: vec![IpAddr::V4(XSK_IP)] };
    let attachment = attach(&pair, XdpMode::Native, &filter);
    let mut xsk = open(&pair, &attachment);

    // Traffic to the host's own address (ping, with ARP) stays with the kernel.
    let target = XSK_IP.to_string();
    assert!(pair.kernel_exec(&["ping", "-c", "2", "-i", "0.2", "-W", "2", &target]));
    assert_eq!(drain_for(&mut xsk, Duration::from_millis(100)), 0, "socket saw host traffic");

    // Traffic through the router, to a host behind it, goes to the socket, whatever the
    // port. The kernel side reaches that host through the XSK side's MAC.
    let transit = Ipv4Addr::new(10, 220, 0, 77);
    let mac = "02:22:00:00:00:01";
    assert!(pair.kernel_exec(&[
        "ip",
        "neigh",
        "add",
        &transit.to_string(),
        "lladdr",
        mac,
        "dev",
        &pair.kernel_if,
        "nud",
        "permanent",
    ]));
    let socket = pair.kernel_socket(KERNEL_PORT);
    let mut far = KernelFar { socket, to: SocketAddr::from((transit, 53)) };
    let flow = Flow {
        near: io_support::Endpoint { ip: transit, ..Pair::xsk_endpoint(53) },
        far: Pair::kernel_endpoint(KERNEL_PORT),
    };
    check_receive(&mut xsk, &mut far, &flow, 200);
}

#[test]
fn afxdp_rebind_after_close() {
    let pair = Pair::new();
    let attachment = attach(&pair, XdpMode::Skb, &XdpFilter::wan_default());

    // The queue of a closed socket is released asynchronously; the bind retry covers
    // the gap.
    for _ in 0..3 {
        let xsk = open(&pair, &attachment);
        drop(xsk);
    }
}

#[test]
fn afxdp_bind_busy() {
    let pair = Pair::new();
    let attachment = attach(&pair, XdpMode::Skb, &XdpFilter::wan_default());
    let _first = open(&pair, &attachment);

    let config = XskConfig {
        bind_attempts: 2,
        bind_retry_interval: Duration::from_millis(10),
        ..XskConfig::default()
    };
    let err = pair.in_xsk_ns(|| Xsk::open(&config, &attachment).unwrap_err());
    assert!(matches!(err, IoError::BindBusy { queue: 0, attempts: 2, .. }), "{err}");
}

#[test]
fn afxdp_zero_copy_unsupported() {
    let pair = Pair::new();
    let attachment = attach(&pair, XdpMode::Native, &XdpFilter::wan_default());

    let config = XskConfig { zero_copy: true, ..XskConfig::default() };
    let err = pair.in_xsk_ns(|| Xsk::open(&config, &attachment).unwrap_err());
    assert!(matches!(err, IoError::ZeroCopyUnsupported { .. }), "{err}");
}

#[test]
fn afxdp_queue_not_found() {
    let pair = Pair::new();
    let filter = XdpFilter::wan_default();
    let attachment = pair.in_xsk_ns(|| {
        Arc::new(XdpAttachment::attach(&pair.xsk_if, XdpMode::Skb, &filter, 4).unwrap())
    });

    let config = XskConfig { queue: 1, ..XskConfig::default() };
    let err = pair.in_xsk_ns(|| Xsk::open(&config, &attachment).unwrap_err());
    assert!(matches!(err, IoError::QueueNotFound { queue: 1, queues: 1, .. }), "{err}");
}

#[test]
fn afxdp_interface_not_found() {
    let pair = Pair::new();
    let err = pair.in_xsk_ns(|| {
        XdpAttachment::attach("svrio-none0", XdpMode::Skb, &XdpFilter::wan_default(), 1)
            .unwrap_err()
    });
    assert!(
        matches!(err, IoError::InterfaceNotFound { ref interface } if interface == "svrio-none0")
    );
}

#[test]
fn afxdp_program_already_attached() {
    let pair = Pair::new();
    let _first = attach(&pair, XdpMode::Skb, &XdpFilter::wan_default());

    let err = pair.in_xsk_ns(|| {
        XdpAttachment::attach(&pair.xsk_if, XdpMode::Skb, &XdpFilter::wan_default(), 1).unwrap_err()
    });
    assert!(matches!(err, IoError::XdpProgramAttached { .. }), "{err}");
}

#[test]
fn afxdp_native_mode_unsupported() {
    let pair = Pair::new();
    // The loopback device has no native XDP support, only generic.
    let err = pair.in_xsk_ns(|| {
        XdpAttachment::attach("lo", XdpMode::Native, &XdpFilter::wan_default(), 1).unwrap_err()
    });
    assert!(matches!(err, IoError::XdpModeUnsupported { mode: "native", .. }), "{err}");
}

#[test]
fn afxdp_detaches_on_drop() {
    let pair = Pair::new();
    let attachment = attach(&pair, XdpMode::Native, &XdpFilter::wan_default());
    let shows_xdp = || {
        let output = Command::new("ip")
            .args(["-n", &pair.xsk_ns, "link", "show", "dev", &pair.xsk_if])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).contains(" xdp")
    };

    assert!(shows_xdp(), "program attached");
    drop(attachment);
    assert!(!shows_xdp(), "program detached when the link closed");
}

#[test]
fn afxdp_config_rejects_ring_size() {
    let pair = Pair::new();
    let attachment = attach(&pair, XdpMode::Skb, &XdpFilter::wan_default());

    let config = XskConfig { ring_size: 1000, ..XskConfig::default() };
    let err = pair.in_xsk_ns(|| Xsk::open(&config, &attachment).unwrap_err());
    assert!(matches!(err, IoError::InvalidConfig { field: "AF_XDP ring size", .. }), "{err}");
}

#[test]
fn afxdp_filter_rejects_reversed_range() {
    let pair = Pair::new();
    let filter = XdpFilter::Wan { udp_ports: vec![PortRange { first: 9, last: 1 }] };
    let err = pair
        .in_xsk_ns(|| XdpAttachment::attach(&pair.xsk_if, XdpMode::Skb, &filter, 1).unwrap_err());
    assert!(matches!(err, IoError::InvalidConfig { .. }), "{err}");
}

/// Runs as an unprivileged user in a child process started by
/// `afxdp_permission_denied`; ignored otherwise.
#[test]
#[ignore = "started by afxdp_permission_denied as an unprivileged user"]
fn afxdp_permission_probe() {
    let err = XdpAttachment::attach("lo", XdpMode::Skb, &XdpFilter::wan_default(), 1).unwrap_err();
    assert!(matches!(err, IoError::PermissionDenied { .. }), "{err}");
}

#[test]
fn afxdp_permission_denied() {
    require_root();
    let exe = std::env::current_exe().unwrap();
    let status = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(exe)
        .args(["--exact", "afxdp_permission_probe", "--ignored", "--quiet"])
        .status()
        .unwrap();
    assert!(status.success(), "the unprivileged attach did not fail with PermissionDenied");
}
