//! Interoperability with FRR's bfdd over UDP 3784 between two network namespaces. Needs
//! root and FRR; fails with a clear message without them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "helpers outside #[test] functions fail the test on a broken expectation"
)]

mod bfd_netns;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bfd_netns::{Endpoint, Frr, Lab, require_frr, wait_until};
use svr_control::bfd::driver::DriverHandle;
use svr_control::bfd::session::SessionConfig;
use svr_control::bfd::{Diagnostic, Flavour, PathId, PathSpec, State};

const FRR_ADDR: &str = "10.210.0.1";
const OUR_ADDR: &str = "10.210.0.2";
const PATH: PathId = PathId(0);

fn frr_config(interval_ms: u32) -> String {
    format!(
        "bfd\n peer {OUR_ADDR} local-address {FRR_ADDR}\n  receive-interval {interval_ms}\n  \
         transmit-interval {interval_ms}\n  detect-multiplier 3\n !\n!\n"
    )
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Namespaces, bfdd in `a` and our driver in `b`, both timed at 300 ms x 3.
struct Setup {
    frr: Frr,
    ours: Endpoint,
    lab: Lab,
}

fn setup(tag: &str) -> Setup {
    require_frr();
    let mut lab = Lab::new(tag, &["a", "b"]);
    lab.veth("a", "veth-a", FRR_ADDR, "b", "veth-b", OUR_ADDR);
    let frr = Frr::start(&mut lab, "a", &frr_config(300));

    let mut spec = PathSpec::new(
        Flavour::SingleHop,
        OUR_ADDR.parse::<IpAddr>().unwrap(),
        FRR_ADDR.parse::<IpAddr>().unwrap(),
    );
    spec.config = SessionConfig::new(ms(300), ms(300), 3).unwrap();
    let ours = Endpoint::start(&lab.ns("b"), vec![spec]);
    Setup { frr, ours, lab }
}

/// Waits until both sides report Up; returns the time it took.
fn wait_both_up(frr: &Frr, ours: &DriverHandle) -> Duration {
    let took = wait_until(Duration::from_secs(10), || {
        ours.is_up(PATH) && frr.status(OUR_ADDR).as_deref() == Some("up")
    });
    let status = frr.peer(OUR_ADDR);
    took.unwrap_or_else(|| {
        panic!("session not up after 10 s: ours {:?}, frr {status:?}", ours.status(PATH))
    })
}

#[test]
fn frr_session_comes_up() {
    let s = setup("up");
    let took = wait_both_up(&s.frr, &s.ours.handle);
    eprintln!("frr and svrd up after {} ms", took.as_millis());

    let peer = s.frr.peer(OUR_ADDR).unwrap();
    let ours = s.ours.handle.status(PATH).unwrap();
    assert_eq!(peer["status"], "up");
    assert_eq!(peer["remote-id"].as_u64(), Some(u64::from(ours.local_discriminator)));
    assert_eq!(peer["id"].as_u64(), Some(u64::from(ours.remote_discriminator)));

    // Settled on 300 ms both ways after the Poll sequences of going Up.
    assert!(
        wait_until(Duration::from_secs(3), || !s
            .ours
            .handle
            .status(PATH)
            .unwrap()
            .poll_in_progress)
        .is_some()
    );
    let ours = s.ours.handle.status(PATH).unwrap();
    assert_eq!(ours.tx_interval, ms(300));
    assert_eq!(ours.detection_time, ms(900));
    assert_eq!(s.ours.handle.counters().total(), 0, "{:?}", s.ours.handle.counters());

    // The session stays up over several detection times.
    std::thread::sleep(ms(3000));
    assert!(s.ours.handle.is_up(PATH));
    assert_eq!(s.frr.status(OUR_ADDR).as_deref(), Some("up"));
    let downs = s.ours.handle.events().iter().filter(|e| e.to == State::Down).count();
    assert_eq!(downs, 0);
}

#[test]
fn frr_stop_detected() {
    let mut s = setup("stop");
    wait_both_up(&s.frr, &s.ours.handle);
    std::thread::sleep(ms(1000));
    let detection = s.ours.handle.status(PATH).unwrap().detection_time;
    assert_eq!(detection, ms(900));

    let killed_at = Instant::now();
    let pid = s.frr.pid;
    s.lab.kill(pid);
    assert!(s.ours.handle.wait_for_state(PATH, State::Down, Duration::from_secs(5)));
    let event = s.ours.handle.events().into_iter().find(|e| e.to == State::Down).unwrap();
    let took = event.at.duration_since(killed_at);
    eprintln!(
        "bfdd stop detected after {} ms (detection time {} ms)",
        took.as_millis(),
        detection.as_millis()
    );
    assert_eq!(event.diagnostic, Diagnostic::ControlDetectionTimeExpired);
    // The last packet from bfdd came before the kill, so Down follows within one
    // detection time of it; 150 ms covers scheduling of the driver thread on a busy host.
    assert!(took <= detection + ms(150), "took {took:?}");
}

#[test]
fn frr_detects_admin_down() {
    let s = setup("admin");
    wait_both_up(&s.frr, &s.ours.handle);

    let started = Instant::now();
    s.ours.handle.admin_down(PATH, Diagnostic::AdministrativelyDown).unwrap();
    let took =
        wait_until(Duration::from_secs(5), || s.frr.status(OUR_ADDR).as_deref() == Some("down"));
    let took = took.unwrap_or_else(|| panic!("frr still {:?}", s.frr.peer(OUR_ADDR)));
    eprintln!("frr saw admin-down after {} ms", took.as_millis());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(s.ours.handle.state(PATH), Some(State::AdminDown));
    let peer = s.frr.peer(OUR_ADDR).unwrap();
    assert_eq!(peer["remote-diagnostic"], "administratively down", "{peer}");

    // Enabling the session again brings it back up with FRR.
    s.ours.handle.admin_up(PATH).unwrap();
    wait_both_up(&s.frr, &s.ours.handle);
}

#[test]
fn frr_detects_silence() {
    let mut s = setup("silence");
    wait_both_up(&s.frr, &s.ours.handle);
    std::thread::sleep(ms(1000));

    let stopped = Instant::now();
    s.ours.stop(false);
    let took =
        wait_until(Duration::from_secs(5), || s.frr.status(OUR_ADDR).as_deref() == Some("down"));
    let took = took.unwrap_or_else(|| panic!("frr still {:?}", s.frr.peer(OUR_ADDR)));
    eprintln!(
        "frr detected silence after {} ms (stop at {:?})",
        took.as_millis(),
        stopped.elapsed()
    );
    let peer = s.frr.peer(OUR_ADDR).unwrap();
    assert_eq!(peer["diagnostic"], "control detection time expired", "{peer}");
    // bfdd's detection time is 3 x 300 ms; polling vtysh adds up to tens of ms.
    assert!(took <= ms(900 + 300), "took {took:?}");
}

#[test]
fn frr_accepts_poll_final() {
    let s = setup("poll");
    wait_both_up(&s.frr, &s.ours.handle);
    let settled = wait_until(Duration::from_secs(3), || {
        !s.ours.handle.status(PATH).unwrap().poll_in_progress
    });
    assert!(settled.is_some());

    // The Final from bfdd can arrive before the status is read, so count completions.
    let before = s.ours.handle.status(PATH).unwrap().polls_completed;
    let new = SessionConfig::new(ms(500), ms(400), 5).unwrap();
    s.ours.handle.set_config(PATH, new).unwrap();
    let done = wait_until(Duration::from_secs(5), || {
        s.ours.handle.status(PATH).unwrap().polls_completed == before + 1
    });
    let done = done.expect("poll sequence did not complete");
    eprintln!("poll/final with frr completed after {} ms", done.as_millis());

    // FRR shows our new intervals and multiplier.
    let shown = wait_until(Duration::from_secs(3), || {
        s.frr.peer(OUR_ADDR).is_some_and(|p| {
            p["remote-transmit-interval"] == 500 && p["remote-receive-interval"] == 400
        })
    });
    let peer = s.frr.peer(OUR_ADDR).unwrap();
    assert!(shown.is_some(), "frr shows {peer}");
    assert_eq!(peer["remote-detect-multiplier"], 5, "{peer}");
    assert_eq!(peer["status"], "up");

    // Our side now runs max(500, FRR's 300 rx) and detects on 3 x max(400, 300).
    let ours = s.ours.handle.status(PATH).unwrap();
    assert_eq!(ours.tx_interval, ms(500));
    assert_eq!(ours.detection_time, ms(1200));
    std::thread::sleep(ms(2000));
    assert!(s.ours.handle.is_up(PATH));
    assert_eq!(s.frr.status(OUR_ADDR).as_deref(), Some("up"));
}
