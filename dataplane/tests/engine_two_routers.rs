//! Two routers with real crypto on memory ports: packets from host1 cross r1, the WAN and
//! r2 to host5 and back, and damaged, replayed or unroutable packets are dropped with the
//! right counter.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]
#![expect(clippy::panic, reason = "test helpers fail the test by panicking")]

mod engine_support;

use engine_support::*;
use svr_dataplane::counters::DropReason;
use svr_dataplane::packet::COOKIE;

fn has_metadata(frame: &[u8]) -> bool {
    wan_payload(frame).starts_with(&COOKIE)
}

fn forward_frames(net: &Net) -> Vec<Vec<u8>> {
    net.captured.iter().filter(|(forward, _)| *forward).map(|(_, f)| f.clone()).collect()
}

fn reverse_frames(net: &Net) -> Vec<Vec<u8>> {
    net.captured.iter().filter(|(forward, _)| !*forward).map(|(_, f)| f.clone()).collect()
}

#[test]
fn udp_round_trip() {
    let mut net = Net::new();
    let request = udp_v4(HOST1, HOST5, (40000, 5201), b"hello host5, this is host1");
    net.send_from_host1(&request);
    net.run();

    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    assert_restored(&request, &delivered[0], R2_LAN_MAC, HOST5_MAC);

    let reply = from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"hello host1, host5 here"));
    net.send_from_host5(&reply);
    net.run();
    let back = net.at_host1();
    assert_eq!(back.len(), 1);
    assert_restored(&reply, &back[0], R1_LAN_MAC, HOST1_MAC);

    assert_eq!(net.r1.engine().counters().total_drops(), 0);
    assert_eq!(net.r2.engine().counters().total_drops(), 0);
    assert_eq!(net.r1.engine().sessions().len(), 1);
    assert_eq!(net.r2.engine().sessions().len(), 1);
}

#[test]
fn wan_frames_hide_plaintext() {
    let mut net = Net::new();
    let secret = b"plaintext that must not cross the wan";
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), secret));
    net.run();
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), secret)));
    net.run();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), secret));
    net.run();

    assert_eq!(net.captured.len(), 3);
    for (_, frame) in &net.captured {
        let payload = wan_payload(frame);
        for needle in [&secret[..], b"corp", b"web", &HOST1.octets(), &HOST5.octets()] {
            assert!(
                !payload.windows(needle.len()).any(|w| w == needle),
                "{needle:?} visible on the wan"
            );
        }
    }
}

#[test]
fn wan_frames_use_waypoints() {
    let mut net = Net::new();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"x"));
    net.run();
    let frame = &forward_frames(&net)[0];
    assert_eq!(frame[0..6], R2_WAN_MAC);
    assert_eq!(frame[6..12], R1_WAN_MAC);
    assert_eq!(frame[26..30], R1_WAYPOINT.octets());
    assert_eq!(frame[30..34], R2_WAYPOINT.octets());
    let source_port = u16::from_be_bytes([frame[34], frame[35]]);
    let destination_port = u16::from_be_bytes([frame[36], frame[37]]);
    assert_eq!(source_port % 2, 0, "ingress port is even");
    assert_eq!(destination_port, source_port + 1, "peer port is the next odd port");
    assert!((16384..=65534).contains(&source_port));
    assert_eq!(internet_checksum(&[&frame[14..34]]), 0, "outer ipv4 checksum");
    let udp_len = (frame.len() - 34) as u16;
    let sum = internet_checksum(&[&frame[26..34], &[0, 17], &udp_len.to_be_bytes(), &frame[34..]]);
    assert_eq!(sum, 0, "outer udp checksum");
}

#[test]
fn handshake_stops_after_reverse_metadata() {
    let mut net = Net::new();
    for _ in 0..3 {
        net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"before reply"));
        net.run();
    }
    assert!(forward_frames(&net).iter().all(|f| has_metadata(f)), "forward metadata until a reply");

    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"reply")));
    net.run();
    assert!(has_metadata(&reverse_frames(&net)[0]), "first reverse packet carries metadata");

    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"after reply"));
    net.run();
    assert!(!has_metadata(&forward_frames(&net)[3]), "forward metadata stops after the reply");

    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"second reply")));
    net.run();
    assert!(!has_metadata(&reverse_frames(&net)[1]), "reverse metadata stops");
    assert_eq!(net.at_host5().len(), 4);
    assert_eq!(net.at_host1().len(), 2);
}

#[test]
fn reverse_metadata_disables_forward_metadata() {
    let mut net = Net::new();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"one"));
    net.run();
    // Replies keep carrying metadata while the ingress has not yet sent a packet without.
    for _ in 0..2 {
        net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"reply")));
        net.run();
    }
    assert!(reverse_frames(&net).iter().all(|f| has_metadata(f)));
}

#[test]
fn tcp_segment_carried() {
    let mut net = Net::new();
    let mut segment = Vec::new();
    segment.extend_from_slice(&40001u16.to_be_bytes());
    segment.extend_from_slice(&80u16.to_be_bytes());
    segment.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    segment.extend_from_slice(&0u32.to_be_bytes());
    segment.extend_from_slice(&[0x60, 0x02, 0xfa, 0xf0, 0, 0, 0, 0]);
    // MSS 1200, below the clamp, so the segment crosses unchanged.
    segment.extend_from_slice(&[0x02, 0x04, 0x04, 0xb0]);
    segment.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let syn = ipv4_frame(HOST1, HOST5, 6, 64, 77, segment, Some(16));
    net.send_from_host1(&syn);
    net.run();
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    assert_restored(&syn, &delivered[0], R2_LAN_MAC, HOST5_MAC);
    // The WAN carries it as UDP.
    assert_eq!(forward_frames(&net)[0][23], 17);
}

#[test]
fn icmp_echo_carried_both_ways() {
    let mut net = Net::new();
    let mut echo = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    echo.extend_from_slice(b"ping payload");
    let request = ipv4_frame(HOST1, HOST5, 1, 64, 5, echo.clone(), Some(2));
    net.send_from_host1(&request);
    net.run();
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    assert_restored(&request, &delivered[0], R2_LAN_MAC, HOST5_MAC);

    let mut reply = echo;
    reply[0] = 0;
    let reply = from_host5(ipv4_frame(HOST5, HOST1, 1, 64, 6, reply, Some(2)));
    net.send_from_host5(&reply);
    net.run();
    let back = net.at_host1();
    assert_eq!(back.len(), 1, "echo reply finds the session");
    assert_restored(&reply, &back[0], R1_LAN_MAC, HOST1_MAC);
    assert_eq!(net.r2.engine().counters().sessions_created, 1);
}

#[test]
fn ipv6_inner_over_ipv4_waypoints() {
    let mut net = Net::new();
    let mut request = ipv6_frame(HOST1_V6, HOST5_V6, 17, 64, udp(40002, 53, b"ipv6 query"), 6);
    // A flow label below 2^16 crosses IPv4 waypoints in the identification field.
    request[14..18].copy_from_slice(&0x6000_1234u32.to_be_bytes());
    net.send_from_host1(&request);
    net.run();
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    assert_restored(&request, &delivered[0], R2_LAN_MAC, HOST5_MAC);
    assert_eq!(forward_frames(&net)[0][12..14], [0x08, 0x00], "outer header is ipv4");

    let reply = from_host5(ipv6_frame(HOST5_V6, HOST1_V6, 17, 64, udp(53, 40002, b"answer"), 6));
    net.send_from_host5(&reply);
    net.run();
    let back = net.at_host1();
    assert_eq!(back.len(), 1);
    assert_restored(&reply, &back[0], R1_LAN_MAC, HOST1_MAC);
}

#[test]
fn no_service_dropped() {
    let mut net = Net::new();
    let other = std::net::Ipv4Addr::new(10, 201, 9, 9);
    net.send_from_host1(&udp_v4(HOST1, other, (40000, 5201), b"nowhere"));
    net.run();
    assert_eq!(net.r1.engine().counters().drops(DropReason::NoService), 1);
    assert!(net.captured.is_empty());
    assert_eq!(net.r1.engine().sessions().len(), 0);
}

#[test]
fn malformed_lan_frame_dropped() {
    let mut net = Net::new();
    let mut frame = udp_v4(HOST1, HOST5, (40000, 5201), b"bad checksum");
    frame[24] ^= 0xff;
    net.send_from_host1(&frame);
    net.send_from_host1(&frame[..20]);
    net.run();
    assert_eq!(net.r1.engine().counters().drops(DropReason::Malformed), 2);
    assert!(net.captured.is_empty());
}

/// Sends one packet on each of two sessions and delivers them; returns how many arrived.
fn two_sessions(net: &mut Net) -> usize {
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"session a"));
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40010, 5201), b"session b"));
    net.run();
    net.at_host5().len()
}

#[test]
fn tampered_frame_dropped() {
    let mut net = Net::new();
    assert_eq!(two_sessions(&mut net), 2);

    // Flip one byte of session a's next packet; session b is untouched.
    let mut first = true;
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"tampered"));
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40010, 5201), b"intact"));
    net.run_with(|forward, frame| {
        if forward && first {
            let at = frame.len() - 60;
            frame[at] ^= 0x01;
            first = false;
        }
        Fate::Deliver
    });
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].ends_with(b"intact"));
    assert_eq!(net.r2.engine().counters().drops(DropReason::BadTag), 1);

    // Session a still works.
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"still fine"));
    net.run();
    assert_eq!(net.at_host5().len(), 1);
}

#[test]
fn replayed_frame_dropped() {
    let mut net = Net::new();
    assert_eq!(two_sessions(&mut net), 2);
    let replay = forward_frames(&net)[0].clone();
    Net::send(&mut net.wire2, &replay);
    net.run();
    assert_eq!(net.at_host5().len(), 0);
    assert_eq!(net.r2.engine().counters().drops(DropReason::Replay), 1);
    assert_eq!(two_sessions(&mut net), 2);
}

#[test]
fn replay_after_handshake_dropped() {
    let mut net = Net::new();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"one"));
    net.run();
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"reply")));
    net.run();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"no metadata"));
    net.run();
    let plain = forward_frames(&net)[1].clone();
    assert!(!has_metadata(&plain));
    Net::send(&mut net.wire2, &plain);
    net.run();
    assert_eq!(net.r2.engine().counters().drops(DropReason::Replay), 1);
    assert_eq!(net.at_host5().len(), 2);
}

#[test]
fn truncated_frame_dropped() {
    let mut net = Net::new();
    assert_eq!(two_sessions(&mut net), 2);

    // Cut inside the tag, with the outer lengths fixed up: the tag check fails.
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"cut in the tag"));
    net.run_with(|forward, frame| {
        if forward {
            frame.truncate(frame.len() - 5);
            fix_outer_lengths(frame);
        }
        Fate::Deliver
    });
    assert_eq!(net.r2.engine().counters().drops(DropReason::BadTag), 1);

    // Cut without fixing the lengths: the frame does not parse.
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"cut short"));
    net.run_with(|forward, frame| {
        if forward {
            frame.truncate(40);
        }
        Fate::Deliver
    });
    assert_eq!(net.r2.engine().counters().drops(DropReason::Malformed), 1);
    assert_eq!(net.at_host5().len(), 0);
    assert_eq!(two_sessions(&mut net), 2);
}

/// Rewrites the outer IPv4 and UDP lengths and checksums of a WAN frame after a change.
fn fix_outer_lengths(frame: &mut [u8]) {
    let ip_len = (frame.len() - 14) as u16;
    frame[16..18].copy_from_slice(&ip_len.to_be_bytes());
    frame[24..26].fill(0);
    let sum = internet_checksum(&[&frame[14..34]]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    let udp_len = (frame.len() - 34) as u16;
    frame[38..40].copy_from_slice(&udp_len.to_be_bytes());
    frame[40..42].fill(0);
    let mut sum =
        internet_checksum(&[&frame[26..34], &[0, 17], &udp_len.to_be_bytes(), &frame[34..]]);
    if sum == 0 {
        sum = 0xffff;
    }
    frame[40..42].copy_from_slice(&sum.to_be_bytes());
}

#[test]
fn unknown_security_id_dropped() {
    let mut net = Net::new();
    let mut epoch = router_epoch("r2", false);
    epoch.own_metadata_keys = vec![metadata_key(8, 0x33)];
    epoch.generation = 2;
    net.r2_epoch.publish(epoch);
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"old key"));
    net.run();
    assert_eq!(net.r2.engine().counters().drops(DropReason::NoKey), 1);
}

#[test]
fn never_held_security_id_unknown() {
    let mut net = Net::new();
    let mut epoch = router_epoch("r2", false);
    epoch.own_metadata_keys = vec![metadata_key(50, 0x33)];
    epoch.generation = 2;
    net.r2_epoch.publish(epoch);
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"never r2's index"));
    net.run();
    assert_eq!(net.r2.engine().counters().drops(DropReason::UnknownKeyId), 1);
    assert_eq!(net.r2.engine().counters().drops(DropReason::NoKey), 0);
}

/// Random bytes in place of the SVR payload of a live session's packets, sent to its
/// waypoint ports: the key id byte is random, so nearly all count as unknown key ids.
#[test]
fn noise_on_live_session_unknown_key_id() {
    let mut net = Net::new();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"one"));
    net.run();
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"reply")));
    net.run();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"no metadata"));
    net.run();
    let plain = forward_frames(&net)[1].clone();
    assert!(!has_metadata(&plain));
    assert_eq!(net.at_host5().len(), 2, "the session before the noise");

    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let sent = 200;
    for _ in 0..sent {
        let mut frame = plain.clone();
        for byte in &mut frame[42..] {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        fix_outer_lengths(&mut frame);
        Net::send(&mut net.wire2, &frame);
    }
    net.run();

    let counters = net.r2.engine().counters();
    let unknown = counters.drops(DropReason::UnknownKeyId);
    let no_key = counters.drops(DropReason::NoKey);
    assert_eq!(net.at_host5().len(), 0, "noise delivered");
    assert!(unknown >= 180, "{unknown} of {sent} counted as unknown-key-id");
    assert!(no_key <= 12, "{no_key} of {sent} counted as no-key");
}

#[test]
fn wan_packet_without_session_dropped() {
    let mut net = Net::new();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"one"));
    net.run();
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"reply")));
    net.run();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"two"));
    net.run();
    // A session packet sent to a port pair no session uses.
    let mut stray = forward_frames(&net)[1].clone();
    stray[36..38].copy_from_slice(&50001u16.to_be_bytes());
    fix_outer_lengths(&mut stray);
    Net::send(&mut net.wire2, &stray);
    net.run();
    assert_eq!(net.r2.engine().counters().drops(DropReason::NoSession), 1);
}

#[test]
fn path_down_dropped() {
    let mut net = Net::new();
    let mut epoch = router_epoch("r1", true);
    epoch.peers[0].paths[0].in_service = false;
    net.r1_epoch.publish(epoch);
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"down"));
    net.run();
    assert_eq!(net.r1.engine().counters().drops(DropReason::PathDown), 1);
}

#[test]
fn missing_neighbour_is_no_route() {
    let mut net = Net::new();
    let mut epoch = router_epoch("r1", true);
    epoch.neighbours.clear();
    net.r1_epoch.publish(epoch);
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"no arp"));
    net.run();
    assert_eq!(net.r1.engine().counters().drops(DropReason::NoRoute), 1);
}

#[test]
fn ports_count_rx_and_tx() {
    let mut net = Net::new();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"count"));
    net.run();
    let r1 = net.r1.engine().counters().ports.clone();
    assert_eq!((r1[LAN as usize].rx, r1[WAN as usize].tx), (1, 1));
    let r2 = net.r2.engine().counters().ports.clone();
    assert_eq!((r2[WAN as usize].rx, r2[LAN as usize].tx), (1, 1));
}

#[test]
fn bfd_packets_punted_and_sent() {
    let mut net = Net::new();
    let bfd = udp_v4(R2_WAYPOINT, R1_WAYPOINT, (49152, 3784), &[0x20, 0x40, 3, 24]);
    Net::send(&mut net.wire1, &bfd);
    net.run();
    let punted = net.r1_control.punted.pop().unwrap();
    assert_eq!(punted.port, WAN);
    assert_eq!(punted.frame, bfd);
    assert_eq!(net.r1.engine().counters().punted, 1);

    net.r1_control
        .to_send
        .push(svr_dataplane::worker::ControlPacket { port: WAN, frame: bfd.clone() })
        .unwrap();
    net.run();
    let sent = forward_frames(&net);
    assert_eq!(sent.last().unwrap(), &bfd);
}

#[test]
fn arp_flood_leaves_bfd_punted() {
    let mut net = Net::new();
    // Broadcast ARP requests for r1's waypoint, far more than the discovery queue holds,
    // then one BFD packet.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 0x66, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&[2, 0, 0, 0, 0, 0x66, 10, 202, 0, 66]);
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&R1_WAYPOINT.octets());
    for _ in 0..4 {
        for _ in 0..32 {
            Net::send(&mut net.wire1, &arp);
        }
        net.run();
    }
    let bfd = udp_v4(R2_WAYPOINT, R1_WAYPOINT, (49152, 3784), &[0x20, 0x40, 3, 24]);
    Net::send(&mut net.wire1, &bfd);
    net.run();

    assert_eq!(net.r1_control.discovery.len(), net.r1_control.discovery.capacity());
    assert!(net.r1.engine().counters().drops(DropReason::PuntQueueFull) > 0);
    let punted = net.r1_control.punted.pop().expect("the BFD packet is punted");
    assert_eq!(punted.frame, bfd);
    assert!(!net.r1_control.spare.is_empty(), "BFD's buffers are untouched by the flood");
}

#[test]
fn rotation_under_load_loses_nothing() {
    let mut net = Net::new();
    let total = 10_000;
    let mut delivered = 0;
    let mut replies = 0;
    let mut replies_sent = 0;
    let start = net.now;
    for i in 0..total {
        let payload = format!("packet {i:05}");
        net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), payload.as_bytes()));
        // Replies start once the first burst has made the egress session.
        if i % 10 == 0 && i >= 32 {
            replies_sent += 1;
            net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"ack")));
        }
        if i % 32 == 31 || i == total - 1 {
            net.run();
            delivered += net.at_host5().len();
            replies += net.at_host1().len();
        }
        if i == total / 2 {
            assert_eq!(net.r1.engine().rotate_all(net.now), 1);
            assert_eq!(net.r2.engine().rotate_all(net.now), 0, "egress sessions do not rotate");
        }
        // 10,000 packets over 1 s of virtual time, five grace times.
        net.now = start + std::time::Duration::from_micros(100 * i as u64);
    }
    net.run();
    delivered += net.at_host5().len();
    replies += net.at_host1().len();

    assert_eq!(delivered, total);
    assert_eq!(replies, replies_sent);
    assert_eq!(net.r1.engine().counters().key_drops(), 0);
    assert_eq!(net.r2.engine().counters().key_drops(), 0);
    assert_eq!(net.r1.engine().counters().total_drops(), 0);
    assert_eq!(net.r2.engine().counters().total_drops(), 0);

    assert_eq!(net.r1.engine().counters().rotations_started, 1);
    assert_eq!(net.r1.engine().counters().key_switches, 1);
    assert_eq!(net.r2.engine().counters().key_switches, 1);

    // Both directions ended on key id 1.
    let last_forward = forward_frames(&net).pop().unwrap();
    let last_reverse = reverse_frames(&net).pop().unwrap();
    assert_eq!(last_forward[last_forward.len() - 56], 1, "forward key id");
    assert_eq!(last_reverse[last_reverse.len() - 56], 1, "reverse key id");
}

/// A one-way stream gets no reverse metadata, so every forward packet carries metadata
/// and the payload-key TLV through two rotations. A reply afterwards ends the forward
/// metadata, and the packets that follow, sealed under the second rotation's key without
/// metadata, must still open at the egress.
#[test]
fn one_way_rotations_then_reply() {
    let mut net = Net::new();
    let start = net.now;
    let mut sent = 0;
    let mut stream = |net: &mut Net, until: std::time::Duration| {
        while net.now < start + until {
            net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"one way"));
            net.run();
            sent += 1;
            net.now += GRACE / 20;
        }
    };
    stream(&mut net, GRACE / 10);
    assert_eq!(net.r1.engine().rotate_all(net.now), 1, "first rotation");
    stream(&mut net, GRACE * 3 / 2);
    assert_eq!(net.r1.engine().rotate_all(net.now), 1, "second rotation");
    stream(&mut net, GRACE * 3);
    assert!(has_metadata(forward_frames(&net).last().unwrap()), "one-way: metadata throughout");
    let switches_before_reply = net.r2.engine().counters().key_switches;

    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"reply")));
    net.run();
    assert_eq!(net.at_host1().len(), 1, "the reply arrives");
    stream(&mut net, GRACE * 4);
    let last_forward = forward_frames(&net).pop().unwrap();
    assert!(!has_metadata(&last_forward), "forward metadata ends after the reply");
    assert_eq!(last_forward[last_forward.len() - 56], 2, "forward key id");

    assert_eq!(net.at_host5().len(), sent, "every forward packet arrives");
    assert_eq!(net.r2.engine().counters().key_drops(), 0, "r2 key drops");
    assert_eq!(net.r2.engine().counters().total_drops(), 0, "r2 drops");
    assert_eq!(net.r1.engine().counters().total_drops(), 0, "r1 drops");
    assert_eq!(
        switches_before_reply, 2,
        "r2 switched to keys 1 and 2 on packets with metadata alone"
    );
}

/// Returns the outer UDP ports of a WAN frame.
fn outer_ports(frame: &[u8]) -> [u8; 4] {
    [frame[34], frame[35], frame[36], frame[37]]
}

#[test]
fn metadata_on_other_session_dropped() {
    let mut net = Net::new();
    for _ in 0..3 {
        net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"session a"));
        net.run();
    }
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40010, 5201), b"session b"));
    net.run();
    assert_eq!(net.at_host5().len(), 4);

    // Session a's third packet, moved onto session b's waypoint ports.
    let frames = forward_frames(&net);
    let mut moved = frames[2].clone();
    moved[34..38].copy_from_slice(&outer_ports(&frames[3]));
    fix_outer_lengths(&mut moved);
    Net::send(&mut net.wire2, &moved);
    net.run();
    assert_eq!(net.at_host5().len(), 0);
    assert_eq!(net.r2.engine().counters().drops(DropReason::NoSession), 1);

    net.send_from_host1(&udp_v4(HOST1, HOST5, (40010, 5201), b"b still works"));
    net.run();
    assert_eq!(net.at_host5().len(), 1);
}

#[test]
fn first_packet_replayed_on_new_ports_dropped() {
    let mut net = Net::new();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"first"));
    net.run();
    assert_eq!(net.at_host5().len(), 1);

    let mut replay = forward_frames(&net)[0].clone();
    replay[34..36].copy_from_slice(&60000u16.to_be_bytes());
    fix_outer_lengths(&mut replay);
    Net::send(&mut net.wire2, &replay);
    net.run();
    assert_eq!(net.at_host5().len(), 0);
    assert_eq!(net.r2.engine().counters().drops(DropReason::Replay), 1);
    assert_eq!(net.r2.engine().sessions().len(), 1);

    // Replies of the session still use its own waypoints.
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"reply")));
    net.run();
    assert_eq!(net.at_host1().len(), 1);
}

#[test]
fn egress_without_neighbour_reported() {
    let mut net = Net::new();
    let mut epoch = router_epoch("r2", false);
    epoch.neighbours.clear();
    net.r2_epoch.publish(epoch);
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"no neighbour"));
    net.run();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"still none"));
    net.run();
    assert_eq!(net.r2.engine().counters().drops(DropReason::NoNeighbour), 2);
    assert_eq!(net.r2.engine().counters().drops(DropReason::NoRoute), 0);
    // The packet opened and only its delivery failed, so the session stays.
    assert_eq!(net.r2.engine().sessions().len(), 1);

    // Each burst reports the next hop once, with its LAN port.
    let hop = (LAN, std::net::IpAddr::V4(HOST5));
    assert_eq!(net.r2_control.unresolved.pop(), Some(hop));
    assert_eq!(net.r2_control.unresolved.pop(), Some(hop));
    assert_eq!(net.r2_control.unresolved.pop(), None);
    assert!(net.at_host5().is_empty());

    // Once the entry exists, the session's packets are delivered.
    net.r2_epoch.publish(router_epoch("r2", false));
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"resolved"));
    net.run();
    assert_eq!(net.at_host5().len(), 1);
    assert_eq!(net.r2_control.unresolved.pop(), None);
}

#[test]
fn failed_first_packet_leaves_no_session() {
    use svr_dataplane::crypto::{Direction, PayloadKeyTlv, PayloadSecret, Suite};
    use svr_dataplane::forward::FiveTuple;
    use svr_dataplane::forward::headers::{IpHeaderFields, Macs, emit_outer};
    use svr_dataplane::packet::{Ipv4Context, PayloadKeyBlob, PayloadTlv, SessionContext};
    use svr_dataplane::sealed::{Outgoing, OutgoingMetadata, seal};

    let mut net = Net::new();
    // A first packet whose metadata is valid but carries key id 5 while the payload is
    // sealed under key id 0: the tag verifies, the payload key is missing.
    let announced = PayloadKeyTlv {
        suite: Suite::AesCbc256HmacSha384,
        key_id: 5,
        secret: PayloadSecret::from_bytes([9; 32]),
    };
    let used = PayloadKeyTlv { key_id: 0, ..announced.clone() }.session_keys();
    let tlvs = vec![
        PayloadTlv::ForwardContext(SessionContext::V4(Ipv4Context {
            source: HOST1,
            destination: HOST5,
            source_port: 40000,
            destination_port: 5201,
            protocol: 17,
        })),
        PayloadTlv::SessionUuid(uuid::Uuid::from_u128(7)),
        PayloadTlv::Tenant("corp".into()),
        PayloadTlv::Service("web".into()),
        PayloadTlv::SourceRouter("r1".into()),
        PayloadTlv::SessionEncrypted,
        PayloadTlv::PayloadKey(PayloadKeyBlob::new(announced.emit().to_vec()).unwrap()),
    ];
    let r2_key = metadata_key(7, 0x22);
    let r1_to_r2 = pair_keys("r1", "r2");
    let outgoing = Outgoing {
        session: &used,
        direction: Direction::Forward,
        number: 1,
        encrypt: true,
        metadata: Some(OutgoingMetadata {
            keys: &r2_key,
            tag_key: r1_to_r2.send(),
            header_tlvs: &[],
            payload_tlvs: tlvs.as_slice().into(),
        }),
    };
    let mut frame = vec![0u8; 1500];
    let len = seal(&mut frame[42..], &outgoing, b"never delivered").unwrap();
    frame.truncate(42 + len);
    let waypoints = FiveTuple {
        source: R1_WAYPOINT.into(),
        destination: R2_WAYPOINT.into(),
        source_port: 20000,
        destination_port: 20001,
        protocol: 17,
    };
    let fields =
        IpHeaderFields { tos: 0, ttl: 64, identification: 1, dont_fragment: true, flow_label: 0 };
    let macs = Macs { source: R1_WAN_MAC, destination: R2_WAN_MAC };
    emit_outer(&mut frame, macs, &waypoints, &fields).unwrap();

    Net::send(&mut net.wire2, &frame);
    net.run();
    assert_eq!(net.r2.engine().counters().drops(DropReason::NoKey), 1);
    assert_eq!(net.r2.engine().sessions().len(), 0);
    assert_eq!(net.r2.engine().counters().sessions_created, 0);
    assert_eq!(net.at_host5().len(), 0);
}

#[test]
fn metadata_key_rotation_keeps_sessions() {
    let mut net = Net::new();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"under key 7"));
    net.run();

    // r2 installs its next metadata key and keeps the previous one for the grace time.
    let mut r2 = router_epoch("r2", false);
    r2.own_metadata_keys = vec![metadata_key(7, 0x22), metadata_key(8, 0x33)];
    r2.generation = 2;
    net.r2_epoch.publish(r2);
    // A packet r1 sealed under key 7 before it learns key 8 still opens.
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"still key 7"));
    net.run();

    let mut r1 = router_epoch("r1", true);
    r1.peers[0].metadata_keys = Some(metadata_key(8, 0x33));
    r1.generation = 2;
    net.r1_epoch.publish(r1);
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"now key 8"));
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40020, 5201), b"new session, key 8"));
    net.run();

    // After the grace time r2 drops key 7; sessions carry on under key 8.
    let mut r2 = router_epoch("r2", false);
    r2.own_metadata_keys = vec![metadata_key(8, 0x33)];
    r2.generation = 3;
    net.r2_epoch.publish(r2);
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"key 8 only"));
    net.run();

    assert_eq!(net.at_host5().len(), 5);
    assert_eq!(net.r2.engine().counters().total_drops(), 0);
    let security_ids: Vec<u8> = forward_frames(&net).iter().map(|f| security_id(f)).collect();
    assert_eq!(security_ids, vec![7, 7, 8, 8, 8]);
}

/// Returns the low byte of the Security ID of a WAN frame whose metadata starts with it.
fn security_id(frame: &[u8]) -> u8 {
    let metadata = wan_payload(frame);
    assert_eq!(u16::from_be_bytes([metadata[12], metadata[13]]), 16, "first tlv is type 16");
    metadata[19]
}

#[test]
fn bad_lan_checksum_dropped() {
    let mut net = Net::new();
    let mut frame = udp_v4(HOST1, HOST5, (40000, 5201), b"corrupted on the lan");
    let last = frame.len() - 1;
    frame[last] ^= 0x55;
    net.send_from_host1(&frame);
    net.run();
    assert_eq!(net.r1.engine().counters().drops(DropReason::Malformed), 1);
    assert!(net.captured.is_empty());

    // An IPv4 UDP datagram without checksum (zero) is valid and crosses.
    let mut frame = udp_v4(HOST1, HOST5, (40000, 5201), b"no checksum");
    frame[40..42].fill(0);
    net.send_from_host1(&frame);
    net.run();
    assert_eq!(net.at_host5().len(), 1);
}

/// Builds a TCP segment from `source_port` to port 80 with `offset_and_flags` (bytes 12
/// and 13 of the header) and `rest` (options, then data), its checksum left zero.
fn tcp_segment(source_port: u16, offset_and_flags: [u8; 2], rest: &[u8]) -> Vec<u8> {
    let mut segment = Vec::new();
    segment.extend_from_slice(&source_port.to_be_bytes());
    segment.extend_from_slice(&80u16.to_be_bytes());
    segment.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 1]);
    segment.extend_from_slice(&offset_and_flags);
    segment.extend_from_slice(&[0xfa, 0xf0, 0, 0, 0, 0]);
    segment.extend_from_slice(rest);
    segment
}

#[test]
fn tcp_checksum_crosses_unchanged() {
    let mut net = Net::new();
    // Data offset 5 words, PSH and ACK.
    let segment = tcp_segment(40002, [0x50, 0x18], b"a segment whose checksum is wrong");
    let mut frame = ipv4_frame(HOST1, HOST5, 6, 64, 11, segment, Some(16));
    // Corrupt the data after the checksum was computed, as a bad link before the ingress
    // would.
    let last = frame.len() - 1;
    frame[last] ^= 0x55;
    net.send_from_host1(&frame);
    net.run();

    // The egress restores the segment as sent, checksum included, so the receiving host
    // detects the corruption. A checksum recomputed there would hide it.
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1, "the ingress does not drop it");
    assert_eq!(delivered[0][34..], frame[34..], "segment restored byte for byte");
    let tcp = &delivered[0][34..];
    let len = (tcp.len() as u16).to_be_bytes();
    let sum = internet_checksum(&[&HOST1.octets(), &HOST5.octets(), &[0, 6], &len, tcp]);
    assert_ne!(sum, 0, "the corruption is still visible");
    assert_eq!(net.r1.engine().counters().drops(DropReason::Malformed), 0);
}

/// Outer source and destination IPv4 addresses of path 0 and path 1, as r1 sends them.
const PATH_ADDRESSES: [[u8; 8]; 2] =
    [[10, 202, 0, 1, 10, 202, 0, 2], [10, 202, 1, 1, 10, 202, 1, 2]];

/// Returns which path r1's WAN frame went on.
fn path_of(frame: &[u8]) -> usize {
    PATH_ADDRESSES
        .iter()
        .position(|addresses| frame[26..34] == *addresses)
        .unwrap_or_else(|| panic!("outer addresses {:?} are of no path", &frame[26..34]))
}

#[test]
fn new_sessions_spread_over_paths() {
    let mut net = Net::new();
    net.r1_epoch.publish(with_second_path(router_epoch("r1", true), true, None));
    net.r2_epoch.publish(with_second_path(router_epoch("r2", false), false, None));
    let flows = 32u16;
    for round in 0..2 {
        for flow in 0..flows {
            let payload = format!("flow {flow} round {round}");
            net.send_from_host1(&udp_v4(HOST1, HOST5, (41000 + flow, 5201), payload.as_bytes()));
        }
        net.run();
    }
    let frames = forward_frames(&net);
    assert_eq!(frames.len(), 2 * usize::from(flows));
    let first: Vec<usize> = frames[..usize::from(flows)].iter().map(|f| path_of(f)).collect();
    let second: Vec<usize> = frames[usize::from(flows)..].iter().map(|f| path_of(f)).collect();
    assert_eq!(first, second, "each flow keeps its path");
    let on_path_1 = first.iter().filter(|&&path| path == 1).count();
    // The flows' hashes are fixed, so this split is the same on every run; a fair hash
    // leaves fewer than 8 of 32 flows on one path about once in 500 tuple sets.
    assert!((8..=24).contains(&on_path_1), "{on_path_1} of {flows} flows on path 1: {first:?}");
    assert_eq!(net.at_host5().len(), 2 * usize::from(flows));
    assert_eq!(net.r2.engine().counters().total_drops(), 0);
}

#[test]
fn path_failover_moves_session() {
    let mut net = Net::new();
    net.r1_epoch.publish(with_second_path(router_epoch("r1", true), true, None));
    net.r2_epoch.publish(with_second_path(router_epoch("r2", false), false, None));
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"first"));
    net.run();
    let used = path_of(&forward_frames(&net)[0]);
    let other = 1 - used;
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"reply 0")));
    net.run();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"handshake done"));
    net.run();
    assert!(!has_metadata(&forward_frames(&net)[1]));

    // The session's path goes down at r1: the session moves to the other path and sends
    // metadata again.
    net.r1_epoch.publish(with_second_path(router_epoch("r1", true), true, Some(used)));
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"on the other path"));
    net.run();
    let moved = forward_frames(&net)[2].clone();
    assert_eq!(path_of(&moved), other, "outer addresses of the other path");
    assert!(has_metadata(&moved), "metadata after a path change");

    // r2 answers on the new waypoints.
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"reply 1")));
    net.run();
    let reply = reverse_frames(&net)[1].clone();
    let mut expected = PATH_ADDRESSES[other];
    expected.rotate_left(4);
    assert_eq!(reply[26..34], expected, "reply on the other path");

    assert_eq!(net.at_host5().len(), 3);
    assert_eq!(net.at_host1().len(), 2);
    assert_eq!(net.r2.engine().sessions().len(), 1);
    assert_eq!(net.r1.engine().counters().total_drops(), 0);
    assert_eq!(net.r2.engine().counters().total_drops(), 0);
}

#[test]
fn egress_path_failover_moves_both_ends() {
    let mut net = Net::new();
    net.r1_epoch.publish(with_second_path(router_epoch("r1", true), true, None));
    net.r2_epoch.publish(with_second_path(router_epoch("r2", false), false, None));
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"first"));
    net.run();
    let used = path_of(&forward_frames(&net)[0]);
    let other = 1 - used;
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"reply 0")));
    net.run();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"handshake done"));
    net.run();

    // The session's path goes down at r2 only, while host5 sends and host1 is silent: r2
    // moves the session itself, with reverse metadata on the other path.
    net.r2_epoch.publish(with_second_path(router_epoch("r2", false), false, Some(used)));
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"moved by r2")));
    net.run();
    let moved = reverse_frames(&net)[1].clone();
    let mut expected = PATH_ADDRESSES[other];
    expected.rotate_left(4);
    assert_eq!(moved[26..34], expected, "r2 sends on the other path");
    assert!(has_metadata(&moved), "reverse metadata after r2's path change");
    assert_eq!(net.at_host1().len(), 2, "r1 accepts the session on the new waypoints");

    // r1 follows: its next packet of the session goes on the new path too.
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"after the move"));
    net.run();
    let followed = forward_frames(&net)[2].clone();
    assert_eq!(path_of(&followed), other, "r1 sends on the path r2 moved to");
    assert_eq!(net.at_host5().len(), 3);
    assert_eq!(net.r1.engine().sessions().len(), 1);
    assert_eq!(net.r2.engine().sessions().len(), 1);
    assert_eq!(net.r1.engine().counters().total_drops(), 0);
    assert_eq!(net.r2.engine().counters().total_drops(), 0);
}

#[test]
fn reverse_metadata_move_not_replayable() {
    let mut net = Net::new();
    net.r1_epoch.publish(with_second_path(router_epoch("r1", true), true, None));
    net.r2_epoch.publish(with_second_path(router_epoch("r2", false), false, None));
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"first"));
    net.run();
    let used = path_of(&forward_frames(&net)[0]);
    net.r2_epoch.publish(with_second_path(router_epoch("r2", false), false, Some(used)));
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"moved by r2")));
    net.run();
    let mut moved = reverse_frames(&net)[0].clone();
    assert!(has_metadata(&moved));

    assert_eq!(net.at_host1().len(), 1, "r1 followed r2's move");

    // A replay of that packet is dropped as a replay. So is a copy with other outer ports,
    // which the tag does not cover: it names r1's session, whose window has its number,
    // so it moves nothing.
    let drops_before = net.r1.engine().counters().total_drops();
    let replayed = moved.clone();
    moved[34..36].copy_from_slice(&17000u16.to_be_bytes());
    fix_outer_lengths(&mut moved);
    Net::send(&mut net.wire1, &replayed);
    Net::send(&mut net.wire1, &moved);
    net.run();
    assert_eq!(net.at_host1().len(), 0, "neither copy reaches host1");
    assert_eq!(net.r1.engine().counters().drops(DropReason::Replay), 2);
    assert_eq!(net.r1.engine().counters().total_drops(), drops_before + 2);
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"still on the moved path"));
    net.run();
    assert_eq!(path_of(forward_frames(&net).last().unwrap()), 1 - used);
}

#[test]
fn tcp_syn_mss_clamped() {
    let mut net = Net::new();
    // Data offset 6 words, SYN, and an MSS option of 1460.
    let segment = tcp_segment(40001, [0x60, 0x02], &[0x02, 0x04, 0x05, 0xb4]);
    let syn = ipv4_frame(HOST1, HOST5, 6, 64, 9, segment, Some(16));
    net.send_from_host1(&syn);
    net.run();
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    let tcp = &delivered[0][34..];
    let mss = u16::from_be_bytes([tcp[22], tcp[23]]);
    // 1500 less outer IPv6 (40), UDP (8), padding (16), sequence (8), tag (64), TCP (20)
    // and options (40).
    assert_eq!(mss, 1304);
    let len = (tcp.len() as u16).to_be_bytes();
    let sum = internet_checksum(&[&HOST1.octets(), &HOST5.octets(), &[0, 6], &len, tcp]);
    assert_eq!(sum, 0, "tcp checksum after clamping");
}

#[test]
fn df_packet_above_wan_mtu_answered() {
    let mut net = Net::new();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), &[7; 1472]));
    net.run();
    assert!(net.captured.is_empty(), "nothing crosses the wan");
    assert_eq!(net.r1.port(WAN).unwrap().stats().tx_frames, 0);
    let answers = net.at_host1();
    assert_eq!(answers.len(), 1, "the source gets an icmp error");
    assert_eq!((answers[0][34], answers[0][35]), (3, 4), "fragmentation needed");
    assert_eq!(net.r1.engine().icmp_counters().fragmentation_needed_sent, 1);
    assert_eq!(net.r1.engine().counters().total_drops(), 0);

    // A datagram that fits with the overhead crosses.
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), &[7; 1100]));
    net.run();
    assert_eq!(net.at_host5().len(), 1);
}

/// Moves both routers' path onto IPv6 waypoints fd02::1 and fd02::2.
fn with_ipv6_waypoints(
    mut epoch: svr_dataplane::epoch::KeyEpoch,
    ingress: bool,
) -> svr_dataplane::epoch::KeyEpoch {
    let r1: std::net::IpAddr = "fd02::1".parse().unwrap();
    let r2: std::net::IpAddr = "fd02::2".parse().unwrap();
    let (local, peer, peer_mac) = if ingress { (r1, r2, R2_WAN_MAC) } else { (r2, r1, R1_WAN_MAC) };
    epoch.peers[0].paths[0].local = local;
    epoch.peers[0].paths[0].peer = peer;
    epoch.neighbours.insert((WAN, peer), peer_mac);
    epoch.generation += 1;
    epoch
}

#[test]
fn ipv6_waypoints_carry_ipv4_and_ipv6() {
    let mut net = Net::new();
    net.r1_epoch.publish(with_ipv6_waypoints(router_epoch("r1", true), true));
    net.r2_epoch.publish(with_ipv6_waypoints(router_epoch("r2", false), false));

    let v4 = udp_v4(HOST1, HOST5, (40000, 5201), b"ipv4 inside ipv6");
    let mut v6 = ipv6_frame(HOST1_V6, HOST5_V6, 17, 64, udp(40002, 53, b"ipv6 inside ipv6"), 6);
    // A 20-bit flow label crosses IPv6 waypoints whole.
    v6[14..18].copy_from_slice(&0x6005_4321u32.to_be_bytes());
    net.send_from_host1(&v4);
    net.send_from_host1(&v6);
    net.run();
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 2);
    assert_restored(&v4, &delivered[0], R2_LAN_MAC, HOST5_MAC);
    assert_restored(&v6, &delivered[1], R2_LAN_MAC, HOST5_MAC);

    let frame = &forward_frames(&net)[0];
    assert_eq!(frame[12..14], [0x86, 0xdd], "outer header is ipv6");
    assert_eq!(frame[20], 17, "outer next header is udp");
    let udp_len = ((frame.len() - 54) as u32).to_be_bytes();
    let sum = internet_checksum(&[&frame[22..54], &udp_len, &[0, 0, 0, 17], &frame[54..]]);
    assert_eq!(sum, 0, "outer udp checksum over the ipv6 pseudo-header");

    let reply = from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"back over ipv6"));
    net.send_from_host5(&reply);
    net.run();
    let back = net.at_host1();
    assert_eq!(back.len(), 1);
    assert_restored(&reply, &back[0], R1_LAN_MAC, HOST1_MAC);
}

#[test]
fn metadata_resent_after_path_down() {
    let mut net = Net::new();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"one"));
    net.run();
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"reply")));
    net.run();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"two"));
    net.run();
    assert!(!has_metadata(&forward_frames(&net)[1]), "the handshake is complete");

    // A packet while no path is in service: the peer may restart meanwhile.
    let mut down = router_epoch("r1", true);
    down.peers[0].paths[0].in_service = false;
    net.r1_epoch.publish(down);
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"down"));
    net.run();
    assert_eq!(net.r1.engine().counters().drops(DropReason::PathDown), 1);

    net.r1_epoch.publish(router_epoch("r1", true));
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"back"));
    net.run();
    let forward = forward_frames(&net);
    assert_eq!(forward.len(), 3, "one, two and back reach the WAN");
    assert!(has_metadata(&forward[2]), "the first packet after the outage carries metadata");
    assert_eq!(net.at_host5().len(), 3);
}
