use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use svr_dataplane::forward::checksum::{self, protocol};
use svr_dataplane::forward::parse::parse_frame;

use super::wire::{self, Message, WireError};
use super::*;

const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x10];
const OUR_V4: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const HOST_V4: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 10);
const OUR_V6: Ipv6Addr = Ipv6Addr::new(0xfd09, 0, 0, 0, 0, 0, 0, 1);
const HOST_V6: Ipv6Addr = Ipv6Addr::new(0xfd09, 0, 0, 0, 0, 0, 0, 0x10);

/// A resolver serving port 1 with both addresses; port 0 is left to the kernel.
fn resolver() -> Resolver {
    let port = PortAddresses {
        mac: OUR_MAC,
        addresses: vec![OUR_V4.into(), OUR_V6.into()],
        networks: vec![(OUR_V4.into(), 24), (OUR_V6.into(), 64)],
    };
    Resolver::new(vec![None, Some(port)])
}

fn table(resolver: &Resolver) -> Vec<((InterfaceId, IpAddr), [u8; 6])> {
    let mut entries: Vec<_> = resolver.entries().collect();
    entries.sort();
    entries
}

fn host_arp_request(target: Ipv4Addr) -> Vec<u8> {
    wire::arp_request(HOST_MAC, HOST_V4, target, None)
}

fn host_solicitation(target: Ipv6Addr) -> Vec<u8> {
    wire::neighbour_solicitation(HOST_MAC, HOST_V6, target, None)
}

#[test]
fn arp_request_for_us_answered() {
    let mut resolver = resolver();
    let now = Instant::now();
    let reply = resolver.receive(1, &host_arp_request(OUR_V4), now).expect("an arp reply");

    assert_eq!(reply[0..6], HOST_MAC, "reply goes to the asker");
    assert_eq!(reply[6..12], OUR_MAC);
    assert_eq!(reply[12..14], [0x08, 0x06]);
    assert_eq!(reply[20..22], [0, 2], "operation reply");
    assert_eq!(reply[22..28], OUR_MAC, "sender hardware address");
    assert_eq!(reply[28..32], OUR_V4.octets());
    assert_eq!(reply[32..38], HOST_MAC, "target hardware address");
    assert_eq!(reply[38..42], HOST_V4.octets());
    assert_eq!(table(&resolver), vec![((1, HOST_V4.into()), HOST_MAC)], "asker learned");
    assert!(resolver.take_changed());
    assert_eq!(resolver.counters().replies_sent, 1);
}

#[test]
fn arp_request_for_other_ignored() {
    let mut resolver = resolver();
    let reply = resolver.receive(1, &host_arp_request(Ipv4Addr::new(10, 9, 0, 2)), Instant::now());
    assert!(reply.is_none());
    assert!(table(&resolver).is_empty(), "an unknown asker for another address is not learned");
    assert_eq!(resolver.counters().ignored, 1);
}

#[test]
fn kernel_port_left_alone() {
    let mut resolver = resolver();
    assert!(resolver.receive(0, &host_arp_request(OUR_V4), Instant::now()).is_none());
    assert!(table(&resolver).is_empty());
    assert_eq!(resolver.counters().ignored, 1);
}

#[test]
fn planned_hop_requested_and_learned() {
    let mut resolver = resolver();
    let start = Instant::now();
    resolver.set_planned([(1, HOST_V4.into())], start);

    let requests = resolver.poll(start);
    assert_eq!(requests.len(), 1);
    let (port, frame) = &requests[0];
    assert_eq!(*port, 1);
    assert_eq!(frame[0..6], wire::BROADCAST, "an unresolved hop is asked by broadcast");
    assert_eq!(
        wire::parse(frame),
        Ok(Message::Request {
            sender: OUR_V4.into(),
            sender_mac: Some(OUR_MAC),
            target: HOST_V4.into()
        })
    );
    assert!(resolver.poll(start + RETRY / 2).is_empty(), "no repeat before the retry time");

    let answer = wire::arp_reply(HOST_MAC, HOST_V4, OUR_MAC, OUR_V4);
    assert!(resolver.receive(1, &answer, start + RETRY / 2).is_none());
    assert_eq!(table(&resolver), vec![((1, HOST_V4.into()), HOST_MAC)]);
    assert!(resolver.poll(start + RETRY * 2).is_empty(), "a fresh entry is not asked again");
}

#[test]
fn unanswered_hop_backs_off() {
    let mut resolver = resolver();
    let start = Instant::now();
    resolver.set_planned([(1, HOST_V4.into())], start);
    let mut at = start;
    for attempt in 0..ATTEMPTS {
        assert_eq!(resolver.poll(at).len(), 1, "attempt {attempt}");
        at += RETRY;
    }
    assert!(resolver.poll(at).is_empty(), "no request one retry after the last attempt");
    let after_backoff = at - RETRY + BACKOFF;
    assert_eq!(resolver.poll(after_backoff).len(), 1, "asked again after the back-off");
    assert_eq!(resolver.counters().requests_sent, u64::from(ATTEMPTS) + 1);
}

#[test]
fn silent_neighbour_forgotten() {
    let mut resolver = resolver();
    let start = Instant::now();
    resolver.set_planned([(1, HOST_V4.into())], start);
    resolver.poll(start);
    resolver.receive(1, &wire::arp_reply(HOST_MAC, HOST_V4, OUR_MAC, OUR_V4), start);
    resolver.take_changed();

    // After the refresh age the entry is checked by unicast, ATTEMPTS times.
    let mut at = start + REFRESH;
    for attempt in 0..ATTEMPTS {
        let requests = resolver.poll(at);
        assert_eq!(requests.len(), 1, "check {attempt}");
        assert_eq!(requests[0].1[0..6], HOST_MAC, "a known entry is checked by unicast");
        assert_eq!(table(&resolver).len(), 1, "still usable while being checked");
        at += RETRY;
    }
    resolver.poll(at);
    assert!(table(&resolver).is_empty(), "forgotten after {ATTEMPTS} unanswered checks");
    assert!(resolver.take_changed());
    assert_eq!(resolver.counters().expired, 1);
}

#[test]
fn reported_hop_expires() {
    let mut resolver = resolver();
    let start = Instant::now();
    resolver.report_missing(1, HOST_V4.into(), start);
    assert_eq!(resolver.poll(start).len(), 1);
    resolver.receive(1, &wire::arp_reply(HOST_MAC, HOST_V4, OUR_MAC, OUR_V4), start);
    assert_eq!(table(&resolver).len(), 1);

    // No further report: the hop is no longer wanted, and its entry ages out.
    resolver.poll(start + REPORTED_LIFETIME + Duration::from_secs(1));
    resolver.poll(start + REPORTED_LIFETIME + LEARNED_LIFETIME);
    assert!(table(&resolver).is_empty());
}

#[test]
fn report_on_kernel_port_ignored() {
    let mut resolver = resolver();
    resolver.report_missing(0, HOST_V4.into(), Instant::now());
    assert!(resolver.poll(Instant::now()).is_empty());
}

#[test]
fn learned_neighbour_ages_out() {
    let mut resolver = resolver();
    let start = Instant::now();
    resolver.receive(1, &host_arp_request(OUR_V4), start);
    resolver.poll(start + LEARNED_LIFETIME - Duration::from_secs(1));
    assert_eq!(table(&resolver).len(), 1);
    resolver.poll(start + LEARNED_LIFETIME);
    assert!(table(&resolver).is_empty());
}

#[test]
fn unsolicited_reply_ignored() {
    let mut resolver = resolver();
    let reply = wire::arp_reply(HOST_MAC, HOST_V4, OUR_MAC, OUR_V4);
    resolver.receive(1, &reply, Instant::now());
    assert!(table(&resolver).is_empty(), "replies are learned only for wanted or known hops");
}

#[test]
fn solicitation_for_us_answered() {
    let mut resolver = resolver();
    let reply =
        resolver.receive(1, &host_solicitation(OUR_V6), Instant::now()).expect("an advertisement");

    let parsed = parse_frame(&reply).unwrap();
    assert_eq!(parsed.destination_mac, HOST_MAC);
    assert_eq!(parsed.tuple.source, IpAddr::V6(OUR_V6));
    assert_eq!(parsed.tuple.destination, IpAddr::V6(HOST_V6));
    assert_eq!(parsed.ip.ttl(), 255);
    let message = &reply[parsed.l4_start..parsed.end];
    assert_eq!(message[0], 136, "neighbour advertisement");
    assert_eq!(message[4], 0xe0, "router, solicited and override flags");
    assert!(
        checksum::verify_l4(
            parsed.tuple.source,
            parsed.tuple.destination,
            protocol::ICMPV6,
            message
        ),
        "icmpv6 checksum"
    );
    assert_eq!(
        wire::parse(&reply),
        Ok(Message::Reply { target: OUR_V6.into(), target_mac: OUR_MAC, solicited: true })
    );
    assert_eq!(table(&resolver), vec![((1, HOST_V6.into()), HOST_MAC)]);
}

#[test]
fn duplicate_address_probe_answered_to_all_nodes() {
    let mut resolver = resolver();
    let probe = {
        // A solicitation from the unspecified address without a link-layer option.
        let mut frame = wire::neighbour_solicitation(HOST_MAC, Ipv6Addr::UNSPECIFIED, OUR_V6, None);
        frame.truncate(frame.len() - 8);
        frame[18..20].copy_from_slice(&24u16.to_be_bytes());
        let end = frame.len();
        frame[14 + 40 + 2..14 + 40 + 4].copy_from_slice(&[0, 0]);
        checksum::fill_l4(
            Ipv6Addr::UNSPECIFIED.into(),
            IpAddr::V6(wire::solicited_node(OUR_V6)),
            protocol::ICMPV6,
            &mut frame[54..end],
        );
        frame
    };
    let reply = resolver.receive(1, &probe, Instant::now()).expect("a defending advertisement");
    let parsed = parse_frame(&reply).unwrap();
    assert_eq!(parsed.tuple.destination, IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)));
    assert_eq!(reply[parsed.l4_start + 4] & 0x40, 0, "not solicited");
    assert!(table(&resolver).is_empty(), "the unspecified address is not learned");
}

#[test]
fn solicitation_with_low_hop_limit_rejected() {
    let mut frame = host_solicitation(OUR_V6);
    frame[14 + 7] = 254;
    assert_eq!(wire::parse(&frame), Err(WireError::HopLimit { hop_limit: 254 }));
    let mut resolver = resolver();
    assert!(resolver.receive(1, &frame, Instant::now()).is_none());
    assert_eq!(resolver.counters().malformed, 1);
}

#[test]
fn solicitation_with_bad_checksum_rejected() {
    let mut frame = host_solicitation(OUR_V6);
    let last = frame.len() - 1;
    frame[last] ^= 0xff;
    assert_eq!(wire::parse(&frame), Err(WireError::Checksum));
}

#[test]
fn zero_length_option_rejected() {
    let mut frame = host_solicitation(OUR_V6);
    let option = frame.len() - 8;
    frame[option + 1] = 0;
    let end = frame.len();
    frame[14 + 40 + 2..14 + 40 + 4].copy_from_slice(&[0, 0]);
    checksum::fill_l4(
        IpAddr::V6(HOST_V6),
        IpAddr::V6(wire::solicited_node(OUR_V6)),
        protocol::ICMPV6,
        &mut frame[54..end],
    );
    assert_eq!(wire::parse(&frame), Err(WireError::BadOption));
}

#[test]
fn arp_with_group_sender_rejected() {
    let mut frame = host_arp_request(OUR_V4);
    frame[22] = 0x01;
    assert_eq!(wire::parse(&frame), Err(WireError::BadAddress));
}

#[test]
fn arp_of_other_protocol_rejected() {
    let mut frame = host_arp_request(OUR_V4);
    frame[16..18].copy_from_slice(&0x86ddu16.to_be_bytes());
    assert!(matches!(wire::parse(&frame), Err(WireError::UnsupportedArp { .. })));
}

#[test]
fn truncated_frames_rejected() {
    for frame in [host_arp_request(OUR_V4), host_solicitation(OUR_V6)] {
        for len in 0..frame.len() {
            assert!(wire::parse(&frame[..len]).is_err(), "frame cut to {len} bytes");
        }
    }
}

#[test]
fn replies_rate_limited() {
    let mut resolver = resolver();
    let start = Instant::now();
    let request = host_arp_request(OUR_V4);
    let answered = (0..MAX_REPLIES_PER_SECOND + 5)
        .filter(|_| resolver.receive(1, &request, start).is_some())
        .count();
    assert_eq!(answered, MAX_REPLIES_PER_SECOND as usize);
    assert_eq!(resolver.counters().rate_limited, 5);
    assert!(resolver.receive(1, &request, start + Duration::from_secs(1)).is_some());
}

#[test]
fn advertisement_for_wanted_hop_learned() {
    let mut resolver = resolver();
    let start = Instant::now();
    resolver.set_planned([(1, HOST_V6.into())], start);
    let requests = resolver.poll(start);
    assert_eq!(requests.len(), 1);
    let parsed = parse_frame(&requests[0].1).unwrap();
    assert_eq!(parsed.tuple.destination, IpAddr::V6(wire::solicited_node(HOST_V6)));

    let answer = wire::neighbour_advertisement(HOST_MAC, HOST_V6, Some(OUR_MAC), OUR_V6);
    resolver.receive(1, &answer, start);
    assert_eq!(table(&resolver), vec![((1, HOST_V6.into()), HOST_MAC)]);
}

#[test]
fn replanning_drops_old_hops() {
    let mut resolver = resolver();
    let start = Instant::now();
    resolver.set_planned([(1, HOST_V4.into())], start);
    resolver.set_planned([(1, HOST_V6.into())], start);
    let requests = resolver.poll(start);
    assert_eq!(requests.len(), 1);
    assert!(matches!(
        wire::parse(&requests[0].1),
        Ok(Message::Request { target: IpAddr::V6(_), .. })
    ));
}

#[test]
fn off_link_asker_answered_not_learned() {
    let mut resolver = resolver();
    let stranger = Ipv4Addr::new(192, 0, 2, 7);
    let request = wire::arp_request(HOST_MAC, stranger, OUR_V4, None);
    assert!(resolver.receive(1, &request, Instant::now()).is_some(), "still answered");
    assert!(table(&resolver).is_empty(), "an asker off the port's networks is not learned");
    assert_eq!(resolver.counters().not_learned, 1);
}

#[test]
fn learned_neighbours_bounded() {
    let mut resolver = resolver();
    let start = Instant::now();
    resolver.set_planned([(1, IpAddr::V6(HOST_V6))], start);
    // Askers from all over the port's /24 and a /64, with made-up MACs, one reply slot
    // per second each so the rate limit does not hide the cap.
    let mut at = start;
    for i in 0..MAX_LEARNED as u32 + 10 {
        let sender = Ipv6Addr::new(0xfd09, 0, 0, 0, 0, 0, 1 + (i >> 16) as u16, i as u16);
        let mac = [2, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 0x20];
        let request = wire::neighbour_solicitation(mac, sender, OUR_V6, None);
        resolver.receive(1, &request, at);
        at += Duration::from_millis(10);
    }
    assert_eq!(table(&resolver).len(), MAX_LEARNED, "learning stops at the cap");
    assert_eq!(resolver.counters().not_learned, 10);

    // A wanted next hop is still learned past the cap.
    let answer = wire::neighbour_advertisement(HOST_MAC, HOST_V6, Some(OUR_MAC), OUR_V6);
    resolver.receive(1, &answer, at);
    assert!(table(&resolver).contains(&((1, HOST_V6.into()), HOST_MAC)));
}
