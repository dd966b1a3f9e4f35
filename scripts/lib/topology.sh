# shellcheck shell=bash
# Network-namespace topology helpers: namespaces for hosts, routers and WAN wires, veth
# links between them, and cleanup of everything under one name prefix.
#
# Every namespace is named PREFIX-ROLE (for example svrdemo-r1), so `topo_cleanup PREFIX`
# finds all of them again. Interface names are local to their namespace, so each router
# can have its own `lan`, `wan-a` and `wan-b`.

# Creates namespace NS with its loopback up.
topo_ns_add() {
    local ns=$1
    ip netns add "$ns"
    ip -n "$ns" link set lo up
}

# Creates a router namespace. Its kernel does not forward between interfaces, because
# svrd forwards. The kernel still replies to ARP, neighbour discovery and pings to its
# own addresses.
topo_router_add() {
    local ns=$1
    topo_ns_add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=0
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.forwarding=0
    # Link-local addresses are then usable at once, for routes and neighbour discovery.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0
}

# Creates a host namespace.
topo_host_add() {
    topo_ns_add "$1"
}

# Creates a wire namespace: a switch between routers, with one bridge per WAN. A capture
# there gets every frame on the wire. A capture inside a router running AF_XDP does not,
# because frames redirected to an XDP socket and frames sent from one bypass packet taps.
topo_wire_add() {
    local ns=$1
    topo_ns_add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
}

# Links NS_A's interface IF_A to NS_B's interface IF_B with a veth pair of one TX and one
# RX queue each (AF_XDP binds one queue) and sets both ends up.
topo_link() {
    local ns_a=$1 if_a=$2 ns_b=$3 if_b=$4
    ip link add "$if_a" netns "$ns_a" numtxqueues 1 numrxqueues 1 \
        type veth peer name "$if_b" netns "$ns_b" numtxqueues 1 numrxqueues 1
    ip -n "$ns_a" link set "$if_a" up
    ip -n "$ns_b" link set "$if_b" up
}

# Links NS_A's IF_A to NS_B's IF_B through bridge BRIDGE in wire namespace WIRE. The
# bridge ports in WIRE are named NS_A's and NS_B's last name part plus the interface
# name (r1-wan-a), truncated to the kernel's 15 characters.
topo_wire_link() {
    local ns_a=$1 if_a=$2 ns_b=$3 if_b=$4 wire=$5 bridge=$6
    local port_a port_b
    port_a=$(topo_port_name "$ns_a" "$if_a")
    port_b=$(topo_port_name "$ns_b" "$if_b")
    if ! ip -n "$wire" link show "$bridge" >/dev/null 2>&1; then
        ip -n "$wire" link add "$bridge" type bridge stp_state 0 forward_delay 0
        ip -n "$wire" link set "$bridge" up
    fi
    topo_link "$ns_a" "$if_a" "$wire" "$port_a"
    topo_link "$ns_b" "$if_b" "$wire" "$port_b"
    ip -n "$wire" link set "$port_a" master "$bridge"
    ip -n "$wire" link set "$port_b" master "$bridge"
}

# Creates router namespace NS with one interface per SPEC, each linked to an interface
# of a namespace that exists already. SPEC is IF=PEER_NS:PEER_IF, for example
# `topo_router_with_links svrt1-hub wan-1=svrt1-spoke1:wan wan-2=svrt1-spoke2:wan`.
topo_router_with_links() {
    local ns=$1 spec ifname peer
    shift
    topo_router_add "$ns"
    for spec in "$@"; do
        ifname=${spec%%=*}
        peer=${spec#*=}
        if [[ $ifname == "$spec" || $peer != *:* ]]; then
            printf 'topo_router_with_links: %s: expected IF=PEER_NS:PEER_IF\n' "$spec" >&2
            return 1
        fi
        topo_link "$ns" "$ifname" "${peer%%:*}" "${peer#*:}"
    done
}

# Prints the wire-side port name of namespace NS's interface IF.
topo_port_name() {
    local role=${1##*-}
    local name="$role-$2"
    printf '%s\n' "${name:0:15}"
}

# Adds address CIDR to NS's interface IF. IPv6 addresses skip duplicate address detection,
# so they are usable at once.
topo_addr() {
    local ns=$1 ifname=$2 cidr=$3
    if [[ $cidr == *:* ]]; then
        ip -n "$ns" addr add "$cidr" dev "$ifname" nodad
    else
        ip -n "$ns" addr add "$cidr" dev "$ifname"
    fi
}

# Turns off TX checksum offload on NS's interface IF. A veth with offload on sends TCP and
# UDP with a partial checksum that the kernel would complete later, and an AF_XDP
# dataplane forwards the frame as it is, so the receiver would drop it.
topo_tx_csum_off() {
    ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
}

# Sets the default route of host NS to GATEWAY (IPv4 or IPv6).
topo_default_route() {
    local ns=$1 gateway=$2
    if [[ $gateway == *:* ]]; then
        ip -n "$ns" -6 route add default via "$gateway"
    else
        ip -n "$ns" route add default via "$gateway"
    fi
}

# Prints the namespaces whose name starts with PREFIX-, one per line.
topo_list() {
    local prefix=$1 name
    ip netns list 2>/dev/null | while read -r name _; do
        [[ $name == "$prefix"-* ]] && printf '%s\n' "$name"
    done
    return 0
}

# Stops every process left inside NS by PID: TERM, then KILL after 3 s. Callers pass only
# namespaces they created, so every process inside was started by them.
topo_ns_kill() {
    local ns=$1 pids pid tries
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z $pids ]] && return 0
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((tries = 0; tries < 30; tries++)); do
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        [[ -z $pids ]] && return 0
        sleep 0.1
    done
    for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
}

# Removes every namespace named PREFIX-*, with the processes inside it and its veth pairs
# (deleting a namespace deletes the veth ends in it, and with them their peers).
topo_cleanup() {
    local prefix=$1 ns
    [[ -n $prefix ]] || return 1
    for ns in $(topo_list "$prefix"); do
        topo_ns_kill "$ns"
        ip netns del "$ns" 2>/dev/null || true
    done
}
