//! Packets too long for the WAN MTU between two routers on memory ports: SVR fragments
//! that the egress reassembles byte-exact, fragments lost, reordered, replayed or forged,
//! and the ICMP errors sent to sources that forbid fragmentation.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]
#![expect(clippy::panic, reason = "test helpers fail the test by panicking")]

mod engine_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use engine_support::*;
use svr_dataplane::counters::DropReason;
use svr_dataplane::forward::parse::parse_frame;
use svr_dataplane::packet::COOKIE;

/// Clears DF in an IPv4 frame and fixes its header checksum.
fn without_df(mut frame: Vec<u8>) -> Vec<u8> {
    frame[20] &= !0x40;
    frame[24..26].fill(0);
    let sum = internet_checksum(&[&frame[14..34]]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    frame
}

/// Builds a UDP datagram with `len` bytes of payload, each byte different from its neighbours.
fn big_udp(source: Ipv4Addr, destination: Ipv4Addr, ports: (u16, u16), len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|i| (i * 13 + i / 256) as u8).collect();
    udp_v4(source, destination, ports, &payload)
}

/// Builds an ICMP echo request from host1 to host5 of `ip_len` bytes of IP packet, with DF set.
fn ping(ip_len: usize, identifier: u16) -> Vec<u8> {
    let mut echo = vec![8, 0, 0, 0];
    echo.extend_from_slice(&identifier.to_be_bytes());
    echo.extend_from_slice(&[0, 1]);
    echo.extend((0..ip_len - 28).map(|i| i as u8));
    ipv4_frame(HOST1, HOST5, 1, 64, 0x4242, echo, Some(2))
}

fn echo_reply(request: &[u8]) -> Vec<u8> {
    let mut reply = request[34..].to_vec();
    reply[0] = 0;
    from_host5(ipv4_frame(HOST5, HOST1, 1, 64, 0x4343, reply, Some(2)))
}

fn forward_frames(net: &Net) -> Vec<Vec<u8>> {
    net.captured.iter().filter(|(forward, _)| *forward).map(|(_, f)| f.clone()).collect()
}

fn reverse_frames(net: &Net) -> Vec<Vec<u8>> {
    net.captured.iter().filter(|(forward, _)| !*forward).map(|(_, f)| f.clone()).collect()
}

/// Reads by hand the cleartext header TLV types of a WAN frame with metadata.
fn header_tlv_types(frame: &[u8]) -> Vec<u16> {
    let payload = wan_payload(frame);
    assert_eq!(payload[..8], COOKIE, "frame carries no metadata");
    let header_len = usize::from(u16::from_be_bytes([payload[8], payload[9]]) & 0x0fff);
    let mut types = Vec::new();
    let mut at = 12;
    while at + 4 <= header_len {
        types.push(u16::from_be_bytes([payload[at], payload[at + 1]]));
        at += 4 + usize::from(u16::from_be_bytes([payload[at + 2], payload[at + 3]]));
    }
    types
}

fn has_metadata(frame: &[u8]) -> bool {
    wan_payload(frame).starts_with(&COOKIE)
}

/// Runs with every forward WAN frame held back, and returns them.
fn hold_forward(net: &mut Net) -> Vec<Vec<u8>> {
    let mut held = Vec::new();
    net.run_with(|forward, frame| {
        if forward {
            held.push(frame.clone());
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    held
}

/// Hands `frame` to r2's WAN port as if the relay had delivered it.
fn inject(net: &mut Net, frame: &[u8]) {
    Net::send(&mut net.wire2, frame);
}

/// Reads the next-hop MTU of an ICMP "fragmentation needed" frame, checking its headers and
/// checksums and that it quotes the start of `original`.
fn fragmentation_needed_mtu(error: &[u8], original: &[u8]) -> u16 {
    let parsed = parse_frame(error).unwrap_or_else(|e| panic!("icmp error does not parse: {e}"));
    assert_eq!(parsed.tuple.protocol, 1, "icmp");
    assert_eq!(parsed.end, error.len());
    assert_eq!(error[0..6], HOST1_MAC, "sent back to the source's mac");
    assert_eq!(error[6..12], R1_LAN_MAC);
    assert_eq!(error[30..34], HOST1.octets(), "sent to the source");
    assert_eq!(internet_checksum(&[&error[14..34]]), 0, "ipv4 header checksum");
    let icmp = &error[34..];
    assert_eq!((icmp[0], icmp[1]), (3, 4), "type 3 code 4");
    assert_eq!(internet_checksum(&[icmp]), 0, "icmp checksum");
    assert_eq!(icmp[8..28], original[14..34], "quotes the original ip header");
    assert_eq!(icmp[28..36], original[34..42], "quotes 8 bytes of the original payload");
    u16::from_be_bytes([icmp[6], icmp[7]])
}

/// Completes the handshake of the ping session with `identifier`, so that later packets of
/// it carry no metadata.
fn ping_session(net: &mut Net, identifier: u16) {
    let request = ping(100, identifier);
    net.send_from_host1(&request);
    net.run();
    assert_eq!(net.at_host5().len(), 1);
    net.send_from_host5(&echo_reply(&request));
    net.run();
    assert_eq!(net.at_host1().len(), 1);
}

#[test]
fn udp_1472_fragmented_and_restored() {
    let mut net = Net::new();
    let request = without_df(big_udp(HOST1, HOST5, (40000, 5201), 1472));
    assert_eq!(request.len() - 14, 1500, "a full-sized datagram for a 1500-byte lan");
    net.send_from_host1(&request);
    net.run();

    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    assert_restored(&request, &delivered[0], R2_LAN_MAC, HOST5_MAC);
    let fragments = forward_frames(&net);
    assert_eq!(fragments.len(), 2);
    for fragment in &fragments {
        assert!(fragment.len() - 14 <= 1500, "fragment of {} bytes", fragment.len() - 14);
        assert!(header_tlv_types(fragment).contains(&1), "fragment tlv in the header section");
        assert_eq!(internet_checksum(&[&fragment[14..34]]), 0, "outer ipv4 checksum");
    }
    let r1 = net.r1.engine().fragment_counters();
    assert_eq!((r1.packets_fragmented, r1.fragments_sent), (1, 2));
    let r2 = net.r2.engine().fragment_counters();
    assert_eq!((r2.fragments_received, r2.packets_reassembled), (2, 1));
    assert_eq!(net.r2.engine().reassembly().in_progress(), 0);
    assert_eq!(net.r1.engine().counters().total_drops(), 0);
    assert_eq!(net.r2.engine().counters().total_drops(), 0);
}

#[test]
fn fragmented_reply_restored() {
    let mut net = Net::new();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"request"));
    net.run();
    assert_eq!(net.at_host5().len(), 1);
    let reply = from_host5(without_df(big_udp(HOST5, HOST1, (5201, 40000), 1472)));
    net.send_from_host5(&reply);
    net.run();
    let back = net.at_host1();
    assert_eq!(back.len(), 1);
    assert_restored(&reply, &back[0], R1_LAN_MAC, HOST1_MAC);
    assert_eq!(reverse_frames(&net).len(), 2);
    assert_eq!(net.r2.engine().fragment_counters().packets_fragmented, 1);
    assert_eq!(net.r1.engine().fragment_counters().packets_reassembled, 1);
}

#[test]
fn fragments_after_handshake_end_it() {
    let mut net = Net::new();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"one"));
    net.run();
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"reply")));
    net.run();
    // r1 has the reverse metadata, so its fragments carry only the session UUID.
    let big = without_df(big_udp(HOST1, HOST5, (40000, 5201), 1472));
    net.send_from_host1(&big);
    net.run();
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 2);
    assert_restored(&big, &delivered[1], R2_LAN_MAC, HOST5_MAC);
    assert_eq!(forward_frames(&net).len(), 3, "one small packet, then two fragments");

    // For r2 these fragments show the handshake is done: its next reply has no metadata.
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"second")));
    net.run();
    let reverse = reverse_frames(&net);
    assert!(!has_metadata(&reverse[1]), "reverse metadata stops");
    assert_eq!(net.at_host1().len(), 2);
}

#[test]
fn fragments_out_of_order_restored() {
    let mut net = Net::with_engine(|config| config.wan_mtu = 600);
    let request = without_df(big_udp(HOST1, HOST5, (40000, 5201), 1472));
    net.send_from_host1(&request);
    let mut held = hold_forward(&mut net);
    assert!(held.len() >= 3, "{} fragments at a 600-byte mtu", held.len());
    held.swap(1, 2);
    held.reverse();
    for fragment in &held {
        inject(&mut net, fragment);
    }
    net.run();
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    assert_restored(&request, &delivered[0], R2_LAN_MAC, HOST5_MAC);
    assert_eq!(net.r2.engine().counters().total_drops(), 0);
}

#[test]
fn lost_fragment_times_out() {
    let mut net = Net::new();
    net.send_from_host1(&without_df(big_udp(HOST1, HOST5, (40000, 5201), 1472)));
    let held = hold_forward(&mut net);
    assert_eq!(held.len(), 2);
    inject(&mut net, &held[0]);
    net.run();
    assert!(net.at_host5().is_empty());
    assert_eq!(net.r2.engine().reassembly().in_progress(), 1);
    assert!(net.r2.engine().reassembly().held_bytes() > 0);

    net.now += Duration::from_secs(6);
    net.run();
    assert_eq!(net.r2.engine().reassembly().in_progress(), 0);
    assert_eq!(net.r2.engine().reassembly().held_bytes(), 0);
    assert_eq!(net.r2.engine().fragment_counters().timeouts, 1);

    // The late fragment starts a packet of its own, which never completes.
    inject(&mut net, &held[1]);
    net.run();
    assert!(net.at_host5().is_empty());
}

#[test]
fn replayed_fragment_dropped() {
    let mut net = Net::new();
    let request = without_df(big_udp(HOST1, HOST5, (40000, 5201), 1472));
    net.send_from_host1(&request);
    let held = hold_forward(&mut net);
    inject(&mut net, &held[0]);
    inject(&mut net, &held[0]);
    net.run();
    assert_eq!(net.r2.engine().counters().drops(DropReason::Replay), 1);
    inject(&mut net, &held[1]);
    net.run();
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    assert_restored(&request, &delivered[0], R2_LAN_MAC, HOST5_MAC);
}

#[test]
fn forged_fragment_rejected() {
    let mut net = Net::new();
    let request = without_df(big_udp(HOST1, HOST5, (40000, 5201), 1472));
    net.send_from_host1(&request);
    let held = hold_forward(&mut net);
    for at in [100, held[1].len() - 60] {
        let mut forged = held[1].clone();
        forged[at] ^= 0x01;
        inject(&mut net, &forged);
        net.run();
    }
    assert_eq!(net.r2.engine().counters().drops(DropReason::BadTag), 2);
    assert_eq!(net.r2.engine().reassembly().in_progress(), 0, "forgeries hold nothing");
    assert_eq!(net.r2.engine().sessions().len(), 0, "forgeries create no session");

    for fragment in &held {
        inject(&mut net, fragment);
    }
    net.run();
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    assert_restored(&request, &delivered[0], R2_LAN_MAC, HOST5_MAC);
}

#[test]
fn df_ping_answered_with_fragmentation_needed() {
    let mut net = Net::new();
    ping_session(&mut net, 7);
    let crossed = net.captured.len();

    // ping -s 1472 -M do: 1500 bytes of IP packet.
    let big = ping(1500, 7);
    net.send_from_host1(&big);
    net.run();
    assert_eq!(net.captured.len(), crossed, "nothing crosses the wan");
    let answers = net.at_host1();
    assert_eq!(answers.len(), 1);
    let mtu = fragmentation_needed_mtu(&answers[0], &big);
    assert_eq!(answers[0][26..30], R1_LAN_V4.octets(), "sent from r1's lan address");
    // 1500 less the outer IPv4 and UDP headers (28), the sequence field (8), a 48-byte
    // HMAC-SHA-384 tag, and the PKCS#7 padding of at least one byte, in 16-byte blocks.
    assert_eq!(mtu, 1427);
    assert_eq!(net.r1.engine().icmp_counters().fragmentation_needed_sent, 1);

    // The MTU sent is exact: a packet of that size crosses whole, one byte more does not.
    let fits = ping(usize::from(mtu), 7);
    net.send_from_host1(&fits);
    net.run();
    assert_eq!(net.captured.len(), crossed + 1, "crosses as one wan frame");
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    assert_restored(&fits, &delivered[0], R2_LAN_MAC, HOST5_MAC);
    let outer_len = net.captured.last().map_or(0, |(_, f)| f.len() - 14);
    assert!((1500 - 16..=1500).contains(&outer_len), "outer packet of {outer_len} bytes");

    net.send_from_host1(&ping(usize::from(mtu) + 1, 7));
    net.run();
    assert_eq!(net.at_host1().len(), 1, "one byte more is answered");
    assert_eq!(net.r1.engine().counters().total_drops(), 0);
}

#[test]
fn icmp_error_source_without_lan_address() {
    let mut net = Net::new();
    ping_session(&mut net, 7);
    // A LAN port without an IPv4 address sends the error from the packet's destination.
    let mut epoch = router_epoch("r1", true);
    epoch.interfaces[usize::from(LAN)].ipv4 = None;
    net.r1_epoch.publish(epoch);
    let big = ping(1500, 7);
    net.send_from_host1(&big);
    net.run();
    let answers = net.at_host1();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0][26..30], HOST5.octets(), "sent from the packet's destination");
    assert_eq!(answers[0][30..34], HOST1.octets(), "sent to the packet's source");
}

#[test]
fn df_packet_in_handshake_fragmented() {
    let mut net = Net::new();
    // The first packet of a session carries metadata; a DF packet that fits without it is
    // sent as fragments and delivered whole, so the source gets no error.
    let first = ping(1427, 9);
    net.send_from_host1(&first);
    net.run();
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    assert_restored(&first, &delivered[0], R2_LAN_MAC, HOST5_MAC);
    assert_eq!(forward_frames(&net).len(), 2);
    assert!(net.at_host1().is_empty(), "no icmp error");
}

#[test]
fn ipv6_big_packet_answered_with_packet_too_big() {
    let mut net = Net::new();
    let payload: Vec<u8> = (0..1452).map(|i| i as u8).collect();
    let big = ipv6_frame(HOST1_V6, HOST5_V6, 17, 64, udp(40002, 53, &payload), 6);
    assert_eq!(big.len() - 14, 1500);
    net.send_from_host1(&big);
    net.run();
    assert!(net.captured.is_empty());
    let answers = net.at_host1();
    assert_eq!(answers.len(), 1);
    let error = &answers[0];
    let parsed = parse_frame(error).unwrap_or_else(|e| panic!("icmpv6 error does not parse: {e}"));
    assert_eq!(parsed.tuple.protocol, 58);
    assert_eq!(error.len(), 14 + 1280, "quotes up to the ipv6 minimum mtu");
    assert_eq!(error[0..6], HOST1_MAC);
    assert_eq!(error[38..54], HOST1_V6.octets(), "sent to the source");
    assert_eq!(error[22..38], R1_LAN_V6.octets(), "sent from r1's lan address");
    let icmp = &error[54..];
    assert_eq!((icmp[0], icmp[1]), (2, 0), "packet too big");
    let len = (icmp.len() as u32).to_be_bytes();
    let sum = internet_checksum(&[&error[22..38], &error[38..54], &len, &[0, 0, 0, 58], icmp]);
    assert_eq!(sum, 0, "icmpv6 checksum");
    assert_eq!(icmp[8..], big[14..14 + 1232], "quotes the packet");
    let mtu = u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]);
    // As for IPv4 (1427), with a 40-byte inner header and the UDP header not carried.
    assert_eq!(mtu, 1407 + 40 + 8);
    assert_eq!(net.r1.engine().icmp_counters().packet_too_big_sent, 1);
}

#[test]
fn ipv6_minimum_mtu_packet_fragmented() {
    // On a WAN of 1300 bytes a 1280-byte IPv6 packet does not fit whole, but no source may
    // be asked to go below 1280, so it is sent as fragments.
    let mut net = Net::with_engine(|config| config.wan_mtu = 1300);
    let payload: Vec<u8> = (0..1232).map(|i| (i * 3) as u8).collect();
    let packet = ipv6_frame(HOST1_V6, HOST5_V6, 17, 64, udp(40002, 53, &payload), 6);
    assert_eq!(packet.len() - 14, 1280);
    net.send_from_host1(&packet);
    net.run();
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    assert_restored(&packet, &delivered[0], R2_LAN_MAC, HOST5_MAC);
    assert!(net.at_host1().is_empty());
    assert!(forward_frames(&net).iter().all(|f| f.len() - 14 <= 1300));
}

#[test]
fn icmp_errors_rate_limited() {
    let mut net = Net::new();
    for _ in 0..15 {
        net.send_from_host1(&ping(1500, 11));
    }
    net.run();
    assert_eq!(net.at_host1().len(), 10, "the burst");
    let counters = net.r1.engine().icmp_counters();
    assert_eq!(counters.fragmentation_needed_sent, 10);
    assert_eq!(counters.rate_limited, 5);
    assert_eq!(net.r1.engine().counters().drops(DropReason::TooLong), 5);

    // 100 errors a second: 50 ms later, 5 more may go.
    net.now += Duration::from_millis(50);
    for _ in 0..8 {
        net.send_from_host1(&ping(1500, 11));
    }
    net.run();
    assert_eq!(net.at_host1().len(), 5);
}

#[test]
fn too_many_fragments_dropped() {
    let mut net = Net::with_engine(|config| {
        config.wan_mtu = 700;
        config.reassembly.max_fragments = 2;
    });
    net.send_from_host1(&without_df(big_udp(HOST1, HOST5, (40000, 5201), 1472)));
    net.run();
    assert!(net.captured.is_empty());
    assert_eq!(net.r1.engine().counters().drops(DropReason::TooLong), 1);
    assert_eq!(net.r1.engine().fragment_counters().fragments_sent, 0);
}

/// Splits the IPv4 datagram in `frame` into IP fragments whose data is at most `size`
/// bytes, a multiple of 8, as a host does.
fn ip_fragments(frame: &[u8], size: usize) -> Vec<Vec<u8>> {
    let payload = &frame[34..];
    let mut fragments = Vec::new();
    for (index, chunk) in payload.chunks(size).enumerate() {
        let mut fragment = frame[..34].to_vec();
        fragment.extend_from_slice(chunk);
        let total = (20 + chunk.len()) as u16;
        fragment[16..18].copy_from_slice(&total.to_be_bytes());
        let more = (index + 1) * size < payload.len();
        let flags = ((index * size / 8) as u16) | if more { 0x2000 } else { 0 };
        fragment[20..22].copy_from_slice(&flags.to_be_bytes());
        fragment[24..26].fill(0);
        let sum = internet_checksum(&[&fragment[14..34]]);
        fragment[24..26].copy_from_slice(&sum.to_be_bytes());
        fragments.push(fragment);
    }
    fragments
}

#[test]
fn lan_ip_fragments_reassembled() {
    let mut net = Net::new();
    let datagram = without_df(big_udp(HOST1, HOST5, (40000, 5201), 1472));
    let mut fragments = ip_fragments(&datagram, 1400);
    assert_eq!(fragments.len(), 2);
    fragments.reverse();
    net.send_from_host1(&fragments[0]);
    net.run();
    assert!(net.captured.is_empty(), "held until the datagram is whole");
    net.send_from_host1(&fragments[1]);
    net.run();

    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    assert_restored(&datagram, &delivered[0], R2_LAN_MAC, HOST5_MAC);
    assert_eq!(net.r1.engine().lan_fragment_counters().packets_reassembled, 1);
    assert_eq!(net.r1.engine().fragment_counters().packets_fragmented, 1, "sent as svr fragments");
    assert_eq!(net.r1.engine().counters().total_drops(), 0);
}

#[test]
fn lan_fragments_after_pmtu_error_cross() {
    // A host that got "fragmentation needed" fragments its datagrams to the MTU named.
    let mut net = Net::new();
    let datagram = udp_v4(HOST1, HOST5, (40000, 5201), &[3; 1472]);
    net.send_from_host1(&datagram);
    net.run();
    let answers = net.at_host1();
    assert_eq!(answers.len(), 1);
    let mtu = usize::from(u16::from_be_bytes([answers[0][40], answers[0][41]]));
    assert_eq!(mtu, 1435, "udp over ipv4 carries no udp header");

    let size = (mtu - 20) / 8 * 8;
    let datagram = without_df(datagram);
    for fragment in ip_fragments(&datagram, size) {
        assert!(fragment.len() - 14 <= mtu);
        net.send_from_host1(&fragment);
    }
    net.run();
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    assert_restored(&datagram, &delivered[0], R2_LAN_MAC, HOST5_MAC);
}

#[test]
fn lan_fragment_lost_times_out() {
    let mut net = Net::new();
    let datagram = without_df(big_udp(HOST1, HOST5, (40000, 5201), 1472));
    net.send_from_host1(&ip_fragments(&datagram, 1400)[0]);
    net.run();
    net.now += Duration::from_secs(6);
    net.run();
    assert!(net.captured.is_empty());
    assert_eq!(net.r1.engine().lan_fragment_counters().timeouts, 1);
}

#[test]
fn ipv6_fragments_carried_opaque() {
    // An IPv6 fragment crosses as an opaque protocol 44 message, Fragment header included,
    // for the destination host to reassemble.
    let mut net = Net::new();
    let mut message = vec![17, 0, 0x00, 0x01, 0, 0, 0x12, 0x34];
    message.extend_from_slice(&udp(40002, 53, &[5; 600]));
    let fragment = ipv6_frame(HOST1_V6, HOST5_V6, 44, 64, message, 6);
    net.send_from_host1(&fragment);
    net.run();
    let delivered = net.at_host5();
    assert_eq!(delivered.len(), 1);
    assert_restored(&fragment, &delivered[0], R2_LAN_MAC, HOST5_MAC);
}
