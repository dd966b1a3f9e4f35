# shellcheck shell=bash
# The demo's two-router topology:
#
#   host1 -- lan -- r1 == wan-a == r2 -- lan -- host5
#                     \== wan-b ==/
#
# Each WAN link runs through a bridge in the wire namespace, where the capture is taken.
# Set DEMO_PREFIX before sourcing; namespaces are DEMO_PREFIX-host1, -r1, -r2, -host5 and
# -wire. Addresses are in 10.231.0.0/16, fd31:1::/64 and fd31:5::/64 only.

: "${DEMO_PREFIX:=svrdemo}"
DEMO_NS_HOST1=$DEMO_PREFIX-host1
DEMO_NS_R1=$DEMO_PREFIX-r1
DEMO_NS_R2=$DEMO_PREFIX-r2
DEMO_NS_HOST5=$DEMO_PREFIX-host5
DEMO_NS_WIRE=$DEMO_PREFIX-wire

DEMO_LAN1_V4_NET=10.231.1.0/24
DEMO_LAN1_V6_NET=fd31:1::/64
DEMO_LAN5_V4_NET=10.231.5.0/24
DEMO_LAN5_V6_NET=fd31:5::/64
DEMO_HOST1_V4=10.231.1.10/24
DEMO_HOST1_V6=fd31:1::10/64
DEMO_R1_LAN_V4=10.231.1.1/24
DEMO_R1_LAN_V6=fd31:1::1/64
DEMO_R1_WAN_A=10.231.10.1/24
DEMO_R2_WAN_A=10.231.10.2/24
DEMO_R1_WAN_B=10.231.20.1/24
DEMO_R2_WAN_B=10.231.20.2/24
DEMO_R2_LAN_V4=10.231.5.1/24
DEMO_R2_LAN_V6=fd31:5::1/64
DEMO_HOST5_V4=10.231.5.10/24
DEMO_HOST5_V6=fd31:5::10/64

# Builds the topology. Requires topology.sh.
demo_topology_up() {
    topo_host_add "$DEMO_NS_HOST1"
    topo_router_add "$DEMO_NS_R1"
    topo_router_add "$DEMO_NS_R2"
    topo_host_add "$DEMO_NS_HOST5"
    topo_wire_add "$DEMO_NS_WIRE"

    topo_link "$DEMO_NS_HOST1" lan "$DEMO_NS_R1" lan
    topo_link "$DEMO_NS_HOST5" lan "$DEMO_NS_R2" lan
    topo_wire_link "$DEMO_NS_R1" wan-a "$DEMO_NS_R2" wan-a "$DEMO_NS_WIRE" wan-a
    topo_wire_link "$DEMO_NS_R1" wan-b "$DEMO_NS_R2" wan-b "$DEMO_NS_WIRE" wan-b
    topo_tx_csum_off "$DEMO_NS_HOST1" lan
    topo_tx_csum_off "$DEMO_NS_HOST5" lan

    topo_addr "$DEMO_NS_HOST1" lan "$DEMO_HOST1_V4"
    topo_addr "$DEMO_NS_HOST1" lan "$DEMO_HOST1_V6"
    topo_addr "$DEMO_NS_R1" lan "$DEMO_R1_LAN_V4"
    topo_addr "$DEMO_NS_R1" lan "$DEMO_R1_LAN_V6"
    topo_addr "$DEMO_NS_R1" wan-a "$DEMO_R1_WAN_A"
    topo_addr "$DEMO_NS_R1" wan-b "$DEMO_R1_WAN_B"
    topo_addr "$DEMO_NS_R2" wan-a "$DEMO_R2_WAN_A"
    topo_addr "$DEMO_NS_R2" wan-b "$DEMO_R2_WAN_B"
    topo_addr "$DEMO_NS_R2" lan "$DEMO_R2_LAN_V4"
    topo_addr "$DEMO_NS_R2" lan "$DEMO_R2_LAN_V6"
    topo_addr "$DEMO_NS_HOST5" lan "$DEMO_HOST5_V4"
    topo_addr "$DEMO_NS_HOST5" lan "$DEMO_HOST5_V6"

    topo_default_route "$DEMO_NS_HOST1" "${DEMO_R1_LAN_V4%/*}"
    topo_default_route "$DEMO_NS_HOST1" "${DEMO_R1_LAN_V6%/*}"
    topo_default_route "$DEMO_NS_HOST5" "${DEMO_R2_LAN_V4%/*}"
    topo_default_route "$DEMO_NS_HOST5" "${DEMO_R2_LAN_V6%/*}"
}

# Removes the demo's own five namespaces, with the processes inside them and their veth
# pairs, and nothing else that happens to share the prefix.
demo_topology_down() {
    local ns
    for ns in "$DEMO_NS_HOST1" "$DEMO_NS_R1" "$DEMO_NS_R2" "$DEMO_NS_HOST5" "$DEMO_NS_WIRE"; do
        [[ -e /run/netns/$ns ]] || continue
        topo_ns_kill "$ns"
        ip netns del "$ns" 2>/dev/null || true
    done
}

# Pings each router's LAN address from its host and each router's WAN peer once, so the
# kernels' neighbour tables, which svrd reads, hold every next hop before svrd starts.
demo_warm_neighbours() {
    local failed=0
    ip netns exec "$DEMO_NS_HOST1" ping -c 1 -W 2 "${DEMO_R1_LAN_V4%/*}" >/dev/null || failed=1
    ip netns exec "$DEMO_NS_HOST5" ping -c 1 -W 2 "${DEMO_R2_LAN_V4%/*}" >/dev/null || failed=1
    ip netns exec "$DEMO_NS_HOST1" ping -6 -c 1 -W 2 "${DEMO_R1_LAN_V6%/*}" >/dev/null || failed=1
    ip netns exec "$DEMO_NS_HOST5" ping -6 -c 1 -W 2 "${DEMO_R2_LAN_V6%/*}" >/dev/null || failed=1
    ip netns exec "$DEMO_NS_R1" ping -c 1 -W 2 "${DEMO_R2_WAN_A%/*}" >/dev/null || failed=1
    ip netns exec "$DEMO_NS_R1" ping -c 1 -W 2 "${DEMO_R2_WAN_B%/*}" >/dev/null || failed=1
    return "$failed"
}

# Lets the kernel forward between the hosts in place of svrd (a check of the topology
# and of the traffic tools, with no encryption at all).
demo_kernel_forwarding_on() {
    ip netns exec "$DEMO_NS_R1" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$DEMO_NS_R2" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$DEMO_NS_R1" route add "$DEMO_LAN5_V4_NET" via "${DEMO_R2_WAN_A%/*}"
    ip -n "$DEMO_NS_R2" route add "$DEMO_LAN1_V4_NET" via "${DEMO_R1_WAN_A%/*}"
    ip netns exec "$DEMO_NS_R1" sysctl -qw net.ipv6.conf.all.forwarding=1
    ip netns exec "$DEMO_NS_R2" sysctl -qw net.ipv6.conf.all.forwarding=1
    ip -n "$DEMO_NS_R1" -6 route add "$DEMO_LAN5_V6_NET" \
        via "$(demo_link_local "$DEMO_NS_R2" wan-a)" dev wan-a
    ip -n "$DEMO_NS_R2" -6 route add "$DEMO_LAN1_V6_NET" \
        via "$(demo_link_local "$DEMO_NS_R1" wan-a)" dev wan-a
}

# Prints the IPv6 link-local address of NS's interface IF.
demo_link_local() {
    ip -n "$1" -6 addr show dev "$2" scope link | awk '$1 == "inet6" {split($2, a, "/"); print a[1]; exit}'
}
