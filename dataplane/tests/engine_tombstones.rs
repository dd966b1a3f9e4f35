//! Two routers with real crypto on memory ports. A recorded first packet of a session is
//! sent again after r2 deleted the session. While r2 accepts the metadata key it was sealed
//! under, r2's tombstones drop it as a replay, and after the key retires no key opens it.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]
#![expect(clippy::panic, reason = "test helpers fail the test by panicking")]

mod engine_support;

use std::time::Duration;

use engine_support::*;
use svr_dataplane::counters::DropReason;

/// r2's metadata key at start, under which r1 seals the first packets.
const FIRST_KEY: u32 = 7;
/// r2's metadata key after a rotation.
const NEXT_KEY: u32 = 8;

/// Opens a session from host1's port `source_port` with one delivered packet, and returns
/// the WAN frame r1 sent for it: the session's first packet, with metadata.
fn open_session(net: &mut Net, source_port: u16) -> Vec<u8> {
    let before = net.captured.len();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (source_port, 5201), b"first"));
    net.run();
    assert_eq!(net.at_host5().len(), 1, "session from port {source_port} delivered");
    let sent = net.captured[before..].iter().find(|(forward, _)| *forward);
    sent.map(|(_, frame)| frame.clone()).unwrap()
}

/// Moves the clock past the idle timeout and sweeps both routers' whole session tables.
fn idle_out(net: &mut Net) {
    net.now += Duration::from_secs(61);
    let now = net.now;
    net.r1.engine().expire(now, 1024);
    net.r2.engine().expire(now, 1024);
    assert_eq!(net.r1.engine().sessions().len(), 0);
    assert_eq!(net.r2.engine().sessions().len(), 0);
}

/// Sends a recorded WAN frame to r2 again and runs the routers.
fn replay(net: &mut Net, frame: &[u8]) {
    Net::send(&mut net.wire2, frame);
    net.run();
}

/// Rotates r2's metadata key from [`FIRST_KEY`] to [`NEXT_KEY`]: r2 installs the next key,
/// r1 seals under it, and r2 retires the first.
fn rotate_r2_metadata_key(net: &mut Net) {
    let mut r2 = router_epoch("r2", false);
    r2.own_metadata_keys = vec![metadata_key(FIRST_KEY, 0x22), metadata_key(NEXT_KEY, 0x33)];
    r2.generation = 2;
    net.r2_epoch.publish(r2);
    net.run();

    let mut r1 = router_epoch("r1", true);
    r1.peers[0].metadata_keys = Some(metadata_key(NEXT_KEY, 0x33));
    r1.generation = 2;
    net.r1_epoch.publish(r1);

    let mut r2 = router_epoch("r2", false);
    r2.own_metadata_keys = vec![metadata_key(NEXT_KEY, 0x33)];
    r2.generation = 3;
    net.r2_epoch.publish(r2);
    net.run();
}

fn buried(net: &mut Net, security_id: u32) -> Option<usize> {
    net.r2.engine().sessions().tombstones().buried(security_id)
}

/// Opens one session, lets it idle out on both routers, and returns its first packet,
/// whose UUID r2 has buried.
fn first_packet_of_deleted_session(net: &mut Net) -> Vec<u8> {
    let first = open_session(net, 40000);
    idle_out(net);
    assert_eq!(buried(net, FIRST_KEY), Some(1));
    first
}

#[test]
fn first_packet_replayed_after_idle_dropped() {
    let mut net = Net::new();
    let first = first_packet_of_deleted_session(&mut net);

    replay(&mut net, &first);
    assert!(net.at_host5().is_empty(), "replay delivered");
    let engine = net.r2.engine();
    assert_eq!(engine.counters().drops(DropReason::Replay), 1);
    assert_eq!(engine.counters().total_drops(), 1);
    assert_eq!(engine.sessions().len(), 0, "replay made a session");
    assert_eq!(engine.counters().sessions_created, 1);
}

#[test]
fn replay_after_key_retired_no_key() {
    let mut net = Net::new();
    let first = first_packet_of_deleted_session(&mut net);

    rotate_r2_metadata_key(&mut net);
    assert_eq!(buried(&mut net, FIRST_KEY), None, "tombstones of the retired key dropped");

    replay(&mut net, &first);
    assert!(net.at_host5().is_empty(), "replay delivered");
    let engine = net.r2.engine();
    assert_eq!(engine.counters().drops(DropReason::NoKey), 1);
    assert_eq!(engine.counters().drops(DropReason::Replay), 0);
    assert_eq!(engine.sessions().len(), 0);

    // Sessions under the next key open and are buried under it.
    open_session(&mut net, 40010);
    idle_out(&mut net);
    assert_eq!(buried(&mut net, NEXT_KEY), Some(1));
}

#[test]
fn fresh_uuid_opens_beside_tombstones() {
    let mut net = Net::new();
    let first = first_packet_of_deleted_session(&mut net);

    // The same flow again: r1 starts a new session under a new UUID.
    let again = open_session(&mut net, 40000);
    assert_ne!(wan_payload(&again), wan_payload(&first));
    open_session(&mut net, 40010);

    let engine = net.r2.engine();
    assert_eq!(engine.sessions().len(), 2);
    assert_eq!(engine.counters().total_drops(), 0);
    assert_eq!(engine.sessions().tombstones().buried(FIRST_KEY), Some(1));
}

#[test]
fn replay_leaves_replacing_session() {
    let mut net = Net::new();
    let first = open_session(&mut net, 40000);

    // r1 forgets the session and opens the same flow under a new UUID, on a second path
    // so that its waypoints differ. r2 replaces its session, which buries the old UUID.
    net.now += Duration::from_secs(61);
    let now = net.now;
    net.r1.engine().expire(now, 1024);
    net.r1_epoch.publish(with_second_path(router_epoch("r1", true), true, Some(0)));
    net.r2_epoch.publish(with_second_path(router_epoch("r2", false), false, None));
    open_session(&mut net, 40000);
    assert_eq!(buried(&mut net, FIRST_KEY), Some(1));

    // The old first packet names the same flow. It must not replace the live session.
    replay(&mut net, &first);
    assert!(net.at_host5().is_empty(), "replay delivered");
    assert_eq!(net.r2.engine().counters().drops(DropReason::Replay), 1);
    assert_eq!(net.r2.engine().sessions().len(), 1);

    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"reply")));
    net.run();
    assert_eq!(net.at_host1().len(), 1, "the new session still carries replies");
}

#[test]
fn high_water_requests_one_rotation() {
    let mut net = Net::with_engine(|config| config.tombstones = 4);
    for source_port in [40000, 40001] {
        open_session(&mut net, source_port);
        idle_out(&mut net);
    }
    assert_eq!(net.r2_control.rotation_requests.pop(), None, "below three of four");

    // The third session fills three of the four places: r2 requests a rotation once.
    open_session(&mut net, 40002);
    assert_eq!(net.r2_control.rotation_requests.pop(), Some(FIRST_KEY));
    idle_out(&mut net);
    open_session(&mut net, 40003);
    idle_out(&mut net);
    assert_eq!(buried(&mut net, FIRST_KEY), Some(4));
    assert_eq!(net.r2_control.rotation_requests.pop(), None, "requested once");

    // Full: the next session under the key still opens, and the set forgets what it
    // buried rather than cut the peers off.
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40004, 5201), b"still opens"));
    net.run();
    assert_eq!(net.at_host5().len(), 1);
    let engine = net.r2.engine();
    assert_eq!(engine.counters().tombstones_forgotten, 4);
    assert_eq!(engine.counters().total_drops(), 0);
    assert_eq!(engine.sessions().len(), 1);
    assert_eq!(buried(&mut net, FIRST_KEY), Some(0));

    // Once the key rotates, new sessions open under the next key.
    idle_out(&mut net);
    rotate_r2_metadata_key(&mut net);
    open_session(&mut net, 40005);
    assert_eq!(buried(&mut net, FIRST_KEY), None);
    assert_eq!(net.r2_control.rotation_requests.pop(), None);
}

#[test]
fn moved_session_continues() {
    let mut net = Net::new();
    net.r1_epoch.publish(with_second_path(router_epoch("r1", true), true, None));
    net.r2_epoch.publish(with_second_path(router_epoch("r2", false), false, None));
    open_session(&mut net, 40000);

    // Each of r1's paths goes down in turn. The session moves with its UUID, is still
    // delivered, and nothing is buried.
    for down in [0, 1] {
        net.r1_epoch.publish(with_second_path(router_epoch("r1", true), true, Some(down)));
        net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"after the move"));
        net.run();
        assert_eq!(net.at_host5().len(), 1, "path {down} down");
    }
    let engine = net.r2.engine();
    assert_eq!(engine.sessions().len(), 1);
    assert_eq!(engine.counters().total_drops(), 0);
    assert_eq!(engine.sessions().tombstones().buried(FIRST_KEY), Some(0));
}
