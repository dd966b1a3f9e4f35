//! r1's wan-b interface deleted under a running svrd and created again: r1 takes the
//! wan-b peer path out of service and raises an alarm naming the interface while it is
//! gone, then binds a new XDP program and AF_XDP socket to the new interface, so traffic
//! forced onto wan-b crosses again. Needs root, openssl and python3.
//!
//! Test names contain "netns", so nextest runs them one at a time in its `netns` group.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test with the step that broke"
)]

mod netns_support;

use std::time::Duration;

use netns_support::Lab;

/// r2's address on wan-b, the destination of r1's wan-b peer path.
const R2_WAN_B: &str = "10.231.20.2";

/// The status of r1's peer path to r2 on wan-b.
fn wan_b_status(lab: &Lab) -> String {
    lab.peer_rows("r1")
        .iter()
        .find(|row| row["destination"] == R2_WAN_B)
        .and_then(|row| row["status"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn interface_alarm(lab: &Lab) -> bool {
    lab.alarms("r1").iter().any(|a| a.contains("Interface wan-b"))
}

#[test]
fn netns_wan_interface_recreated() {
    let mut lab = Lab::new("if", true);
    lab.start_routers();
    assert_eq!(wan_b_status(&lab), "up");
    assert!(lab.echoes(41000, 5) >= 4, "traffic before the interface is deleted");

    lab.run("ip -n \"$DEMO_NS_R1\" link del wan-b", "delete wan-b");
    lab.wait(Duration::from_secs(3), "wan-b path down with an alarm", |lab| {
        wan_b_status(lab) == "down" && interface_alarm(lab)
    });

    // The same commands as the topology's wire link, for wan-b on r1's side only.
    lab.run(
        "ip link add wan-b netns \"$DEMO_NS_R1\" numtxqueues 1 numrxqueues 1 type veth \
         peer name r1-wan-b netns \"$DEMO_NS_WIRE\" numtxqueues 1 numrxqueues 1; \
         ip -n \"$DEMO_NS_WIRE\" link set r1-wan-b master wan-b; \
         ip -n \"$DEMO_NS_WIRE\" link set r1-wan-b up; \
         ip -n \"$DEMO_NS_R1\" link set wan-b up; \
         topo_addr \"$DEMO_NS_R1\" wan-b \"$DEMO_R1_WAN_B\"",
        "recreate wan-b",
    );
    lab.wait(Duration::from_secs(5), "alarm cleared", |lab| !interface_alarm(lab));
    let link = lab.run("ip -n \"$DEMO_NS_R1\" -d link show wan-b", "show wan-b");
    assert!(link.contains("xdp"), "no XDP program on the new wan-b:\n{link}");

    // With wan-a down, r1 must send over the new wan-b.
    lab.run("ip -n \"$DEMO_NS_R1\" link set wan-a down", "wan-a down");
    lab.wait(Duration::from_secs(20), "wan-b path up again", |lab| wan_b_status(lab) == "up");
    let mut got = 0;
    for attempt in 0..10 {
        got = lab.echoes(41100 + attempt, 5);
        if got >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(got >= 4, "only {got} of 5 echoes over the new wan-b\n{}", lab.log("r1"));
    let log = lab.log("r1");
    assert!(log.contains("port lost its interface"), "no log of the lost interface");
    assert!(log.contains("port bound to the new interface"), "no log of the rebind");
}
