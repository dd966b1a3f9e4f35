# shellcheck shell=bash
# Traffic checks between namespaces: ping, iperf3, an HTTP download and a WAN capture.
# Each function writes its raw tool output to a file and prints parsed figures, so a
# failed check can be read again afterwards.

# Pings DEST COUNT times from NS and writes the output to OUT. Prints
# "RECEIVED SENT MIN AVG MAX" (milliseconds) and returns non-zero when no reply came.
traffic_ping() {
    local ns=$1 dest=$2 count=$3 out=$4
    ip netns exec "$ns" ping -c "$count" -i 0.2 -W 2 "$dest" >"$out" 2>&1 || true
    python3 - "$out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
counts = re.search(r"(\d+) packets transmitted, (\d+) received", text)
rtt = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/", text)
if not counts:
    sys.exit(1)
sent, received = counts.group(1), counts.group(2)
low, avg, high = rtt.groups() if rtt else ("-", "-", "-")
print(received, sent, low, avg, high)
sys.exit(0 if int(received) > 0 else 1)
PY
}

# Makes a SIZE-byte file at PATH of random data with MARKER written every 128 bytes, so
# that any 128 + len(MARKER) bytes of it contain a whole marker.
traffic_make_marked_file() {
    local path=$1 size=$2 marker=$3
    python3 - "$path" "$size" "$marker" <<'PY'
import os, sys
path, size, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
block = 128
data = bytearray(os.urandom(size))
for offset in range(0, size - len(marker), block):
    data[offset : offset + len(marker)] = marker
open(path, "wb").write(data)
PY
}

# Prints the receiver's throughput in Mbit/s from iperf3 client JSON in FILE.
traffic_iperf3_receiver_mbps() {
    python3 - "$1" <<'PY'
import json, sys
try:
    result = json.load(open(sys.argv[1]))
    print("%.1f" % (result["end"]["sum_received"]["bits_per_second"] / 1e6))
except (OSError, ValueError, KeyError, TypeError) as error:
    print("iperf3 result unreadable: %s" % error, file=sys.stderr)
    sys.exit(1)
PY
}

# Prints the sha256 of FILE.
traffic_sha256() {
    sha256sum "$1" | cut -d' ' -f1
}

# Starts tshark in NS on the interfaces IFACES (comma-separated) writing to OUT with a
# 256-byte snap length, and waits until it captures (at most 10 s). Sets
# TRAFFIC_CAPTURE_PID; call it directly, not in a command substitution, so the capture
# stays a child of the calling shell.
traffic_capture_start() {
    local ns=$1 ifaces=$2 out=$3 log=$4 args=() iface pid tries
    IFS=, read -ra list <<<"$ifaces"
    for iface in "${list[@]}"; do args+=(-i "$iface"); done
    ip netns exec "$ns" tshark -q -s 256 "${args[@]}" -w "$out" >"$log" 2>&1 &
    pid=$!
    for ((tries = 0; tries < 100; tries++)); do
        if grep -q "^Capturing on" "$log" 2>/dev/null; then
            TRAFFIC_CAPTURE_PID=$pid
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    return 1
}

# Stops the capture with PID and waits (at most 10 s) for it to write its file.
traffic_capture_stop() {
    local pid=$1 tries
    kill -INT "$pid" 2>/dev/null || return 0
    for ((tries = 0; tries < 100; tries++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Scans capture FILE: markers MARKER... and SVR packets between WAYPOINTS (comma list).
traffic_capture_scan() {
    local file=$1 waypoints=$2
    shift 2
    python3 "$(dirname "${BASH_SOURCE[0]}")/pcap-scan.py" "$file" "$waypoints" "$@"
}
