//! The two-router path over AF_XDP: real kernel hosts in network namespaces send UDP and
//! ping through r1 and r2, whose workers run on AF_XDP sockets bound to veth interfaces.
//!
//! ```text
//!  [h1] eh1 ── el1 [r1] ew1 ══════ ew2 [r2] el2 ── eh5 [h5]
//!  10.201.1.10   10.201.1.1  10.202.0.1  10.202.0.2  10.201.5.1   10.201.5.10
//! ```
//!
//! These tests need root: they create namespaces and veth pairs and load XDP programs.
//! Without root they fail with a message saying so.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]
#![expect(clippy::panic, reason = "test helpers fail the test by panicking")]

mod engine_support;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use engine_support::*;
use nix::sched::{CloneFlags, setns};
use svr_dataplane::counters::{DropReason, SharedCounters};
use svr_dataplane::epoch::{EpochPublisher, epoch_channel};
use svr_dataplane::forward::EngineConfig;
use svr_dataplane::io::afxdp::{XdpAttachment, XdpFilter, XdpMode, Xsk, XskConfig};
use svr_dataplane::worker::{ControlQueues, Polling, Worker, WorkerConfig};

const R1_LAN_IP: Ipv4Addr = Ipv4Addr::new(10, 201, 1, 1);
const R2_LAN_IP: Ipv4Addr = Ipv4Addr::new(10, 201, 5, 1);

/// The four namespaces, deleted on drop with the veth pairs inside them.
struct Topology {
    prefix: String,
}

impl Topology {
    fn new() -> Topology {
        require_root();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let topology = Topology { prefix: format!("sveng{}-{n}", std::process::id()) };
        for ns in ["h1", "r1", "r2", "h5"] {
            run(&["ip", "netns", "add", &topology.ns(ns)]);
            topology.exec(ns, &["ip", "link", "set", "lo", "up"]);
            for key in ["all", "default"] {
                let setting = format!("net.ipv6.conf.{key}.disable_ipv6=1");
                topology.exec(ns, &["sysctl", "-qw", &setting]);
            }
        }
        topology.link(("h1", "eh1", HOST1_MAC, HOST1), ("r1", "el1", R1_LAN_MAC, R1_LAN_IP));
        topology
            .link(("r1", "ew1", R1_WAN_MAC, R1_WAYPOINT), ("r2", "ew2", R2_WAN_MAC, R2_WAYPOINT));
        topology.link(("r2", "el2", R2_LAN_MAC, R2_LAN_IP), ("h5", "eh5", HOST5_MAC, HOST5));

        // Hosts reach each other through their router, whose MAC is fixed.
        topology.exec("h1", &["ip", "route", "add", "10.201.5.0/24", "via", "10.201.1.1"]);
        topology.exec("h5", &["ip", "route", "add", "10.201.1.0/24", "via", "10.201.5.1"]);
        topology.neighbour("h1", "eh1", R1_LAN_IP, R1_LAN_MAC);
        topology.neighbour("h5", "eh5", R2_LAN_IP, R2_LAN_MAC);
        topology
    }

    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn exec(&self, ns: &str, args: &[&str]) {
        let ns = self.ns(ns);
        let mut command = vec!["ip", "netns", "exec", &ns];
        command.extend_from_slice(args);
        run(&command);
    }

    /// Creates a veth pair between two namespaces, addressed and up, with transmit
    /// checksum offload off so that kernel packets carry full checksums.
    fn link(&self, a: (&str, &str, [u8; 6], Ipv4Addr), b: (&str, &str, [u8; 6], Ipv4Addr)) {
        let (a_if, b_if) =
            (format!("{}{}", a.1, self.suffix()), format!("{}{}", b.1, self.suffix()));
        run(&[
            "ip",
            "link",
            "add",
            &a_if,
            "netns",
            &self.ns(a.0),
            "address",
            &mac(a.2),
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
            "type",
            "veth",
            "peer",
            "name",
            &b_if,
            "netns",
            &self.ns(b.0),
            "address",
            &mac(b.2),
            "numtxqueues",
            "1",
            "numrxqueues",
            "1",
        ]);
        for (ns, ifname, addr) in [(a.0, &a_if, a.3), (b.0, &b_if, b.3)] {
            self.exec(ns, &["ip", "addr", "add", &format!("{addr}/24"), "dev", ifname]);
            self.exec(ns, &["ip", "link", "set", ifname, "up"]);
            // Segmentation and receive offloads off too, so that every packet is one frame.
            self.exec(ns, &["ethtool", "-K", ifname, "tx", "off", "tso", "off", "gso", "off"]);
            self.exec(ns, &["ethtool", "-K", ifname, "gro", "off"]);
        }
    }

    fn neighbour(&self, ns: &str, ifname: &str, address: Ipv4Addr, lladdr: [u8; 6]) {
        let ifname = format!("{ifname}{}", self.suffix());
        self.exec(
            ns,
            &[
                "ip",
                "neigh",
                "replace",
                &address.to_string(),
                "lladdr",
                &mac(lladdr),
                "dev",
                &ifname,
                "nud",
                "permanent",
            ],
        );
    }

    /// Interface names are limited to 15 bytes, so they take a short suffix.
    fn suffix(&self) -> String {
        let n = self.prefix.rsplit('-').next().unwrap_or("0");
        format!("{}{n}", std::process::id() % 100_000)
    }

    fn ifname(&self, base: &str) -> String {
        format!("{base}{}", self.suffix())
    }

    /// Runs `f` on a thread inside namespace `ns`.
    fn in_ns<T: Send>(&self, ns: &str, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.ns(ns));
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                    setns(file, CloneFlags::CLONE_NEWNET).unwrap();
                    f()
                })
                .join()
                .unwrap()
        })
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in ["h1", "r1", "r2", "h5"] {
            let _ = Command::new("ip").args(["netns", "del", &self.ns(ns)]).status();
        }
    }
}

fn mac(bytes: [u8; 6]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

fn run(args: &[&str]) {
    let output = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("");
    assert_eq!(
        euid, "0",
        "AF_XDP engine tests need root to create namespaces and load XDP programs; run \
         them as root or filter them out with `-E 'not binary(engine_afxdp)'`"
    );
}

/// One router: its worker thread, XDP attachments and epoch.
struct Router {
    worker: Option<JoinHandle<Worker>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    rotate: Arc<std::sync::atomic::AtomicBool>,
    counters: Arc<SharedCounters>,
    _epoch: EpochPublisher,
    _attachments: Vec<Arc<XdpAttachment>>,
}

impl Router {
    fn start(topology: &Topology, name: &str, ingress: bool, lan_ip: Ipv4Addr) -> Router {
        let (lan_if, wan_if) = if ingress {
            (topology.ifname("el1"), topology.ifname("ew1"))
        } else {
            (topology.ifname("el2"), topology.ifname("ew2"))
        };
        let (attachments, sockets) = topology.in_ns(name, || {
            let lan = Arc::new(
                XdpAttachment::attach(
                    &lan_if,
                    XdpMode::Skb,
                    &XdpFilter::Lan { local_addrs: vec![IpAddr::V4(lan_ip)] },
                    1,
                )
                .unwrap(),
            );
            let wan = Arc::new(
                XdpAttachment::attach(&wan_if, XdpMode::Skb, &XdpFilter::wan_default(), 1).unwrap(),
            );
            let lan_xsk = Xsk::open(&XskConfig::default(), &lan).unwrap();
            let wan_xsk = Xsk::open(&XskConfig::default(), &wan).unwrap();
            (vec![lan, wan], (lan_xsk, wan_xsk))
        });

        let (publisher, reader) = epoch_channel(router_epoch(name, ingress));
        let config = WorkerConfig {
            engine: EngineConfig {
                sessions: 256,
                rotation_grace: GRACE,
                ..EngineConfig::default()
            },
            polling: Polling::Adaptive { empty_polls: 64, sleep: Duration::from_millis(1) },
            core: None,
            sweep_budget: 16,
        };
        let control = Arc::new(ControlQueues::new(16, 2048));
        let worker =
            Worker::new(config, vec![Box::new(sockets.0), Box::new(sockets.1)], reader, control);
        let stop = worker.stop_flag();
        let rotate = worker.rotation_flag();
        let counters = worker.shared_counters();
        Router {
            worker: Some(worker.spawn().unwrap()),
            stop,
            rotate,
            counters,
            _epoch: publisher,
            _attachments: attachments,
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[test]
fn afxdp_udp_and_ping_through_two_routers() {
    let topology = Topology::new();
    let r1 = Router::start(&topology, "r1", true, R1_LAN_IP);
    let r2 = Router::start(&topology, "r2", false, R2_LAN_IP);

    let host1 = topology.in_ns("h1", || UdpSocket::bind((HOST1, 40000)).unwrap());
    let host5 = topology.in_ns("h5", || UdpSocket::bind((HOST5, 5201)).unwrap());
    host5.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    host1.set_read_timeout(Some(Duration::from_secs(2))).unwrap();

    // UDP both ways, one datagram in flight at a time so no queue can overflow.
    let count = 200;
    ping_pong(&host1, &host5, count);

    // Kernel ping: ICMP echo carried and restored with valid checksums.
    let ns = topology.ns("h1");
    let ping = Command::new("ip")
        .args(["netns", "exec", &ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.201.5.10"])
        .status()
        .unwrap();
    assert!(ping.success(), "ping through the routers failed");

    std::thread::sleep(Duration::from_millis(20));
    for (name, router) in [("r1", &r1), ("r2", &r2)] {
        for reason in DropReason::ALL {
            if reason.is_key_related() || reason == DropReason::Malformed {
                assert_eq!(router.counters.drops(reason), 0, "{name} {}", reason.name());
            }
        }
    }
    assert_eq!(r1.counters.ingress_forwarded(), count as u64 + 3);
    assert_eq!(r2.counters.egress_forwarded(), count as u64 + 3);
    assert_eq!(r2.counters.sessions_created(), 2);
    drop((r1, r2));
}

/// Sends `count` datagrams from host1 and their replies from host5, one at a time.
fn ping_pong(host1: &UdpSocket, host5: &UdpSocket, count: usize) {
    let mut buffer = [0u8; 2048];
    for i in 0..count {
        let payload = format!("datagram {i:04} from host1");
        host1.send_to(payload.as_bytes(), (HOST5, 5201)).unwrap();
        let (len, from) =
            host5.recv_from(&mut buffer).unwrap_or_else(|e| panic!("datagram {i}: {e}"));
        assert_eq!(&buffer[..len], payload.as_bytes());
        host5.send_to(b"reply from host5", from).unwrap();
        let (len, _) = host1.recv_from(&mut buffer).unwrap_or_else(|e| panic!("reply {i}: {e}"));
        assert_eq!(&buffer[..len], b"reply from host5");
    }
}

#[test]
fn afxdp_rotation_loses_nothing() {
    let topology = Topology::new();
    let r1 = Router::start(&topology, "r1", true, R1_LAN_IP);
    let r2 = Router::start(&topology, "r2", false, R2_LAN_IP);
    let host1 = topology.in_ns("h1", || UdpSocket::bind((HOST1, 40000)).unwrap());
    let host5 = topology.in_ns("h5", || UdpSocket::bind((HOST5, 5201)).unwrap());
    host5.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    host1.set_read_timeout(Some(Duration::from_secs(2))).unwrap();

    // The rotation starts after 100 round trips and its two grace times (2 x 200 ms) end
    // well before the last of them.
    ping_pong(&host1, &host5, 100);
    r1.rotate.store(true, Ordering::Relaxed);
    let until = std::time::Instant::now() + GRACE * 3;
    let mut sent = 100;
    while std::time::Instant::now() < until {
        ping_pong(&host1, &host5, 10);
        sent += 10;
    }
    ping_pong(&host1, &host5, 100);
    sent += 100;

    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(r1.counters.rotations_started(), 1);
    assert_eq!(r1.counters.key_switches(), 1, "ingress switched to the next key");
    assert_eq!(r2.counters.key_switches(), 1, "egress switched to the next key");
    for (name, router) in [("r1", &r1), ("r2", &r2)] {
        for reason in DropReason::ALL.into_iter().filter(|r| r.is_key_related()) {
            assert_eq!(router.counters.drops(reason), 0, "{name} {}", reason.name());
        }
    }
    assert_eq!(r2.counters.egress_forwarded(), sent as u64);
    assert_eq!(r1.counters.egress_forwarded(), sent as u64);
    drop((r1, r2));
}

#[test]
fn afxdp_kernel_tcp_through_two_routers() {
    let topology = Topology::new();
    let r1 = Router::start(&topology, "r1", true, R1_LAN_IP);
    let r2 = Router::start(&topology, "r2", false, R2_LAN_IP);

    // host5 reads everything host1 sends, then answers with the byte count and a checksum.
    let listener = topology.in_ns("h5", || TcpListener::bind((HOST5, 8080)).unwrap());
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut received = Vec::new();
        stream.read_to_end(&mut received).unwrap();
        let sum: u64 = received.iter().map(|b| u64::from(*b)).sum();
        stream.write_all(format!("{} {sum}", received.len()).as_bytes()).unwrap();
    });

    let data: Vec<u8> =
        (0..1_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let mut stream = topology.in_ns("h1", || {
        TcpStream::connect_timeout(&(HOST5, 8080).into(), Duration::from_secs(5)).unwrap()
    });
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(&data).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    server.join().unwrap();

    let sum: u64 = data.iter().map(|b| u64::from(*b)).sum();
    assert_eq!(answer, format!("{} {sum}", data.len()));
    std::thread::sleep(Duration::from_millis(20));
    for (name, router) in [("r1", &r1), ("r2", &r2)] {
        for reason in [DropReason::BadTag, DropReason::NoKey, DropReason::TooLong] {
            assert_eq!(router.counters.drops(reason), 0, "{name} {}", reason.name());
        }
    }
    assert_eq!(r2.counters.sessions_created(), 1);
    drop((r1, r2));
}
