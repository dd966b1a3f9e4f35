#!/usr/bin/python3
"""Scans a pcap or pcapng capture for plaintext markers and counts SVR packets.

Usage: pcap-scan.py CAPTURE WAYPOINTS MARKER...

WAYPOINTS is a comma-separated list of IPv4 addresses. A packet counts as SVR when it is
IPv4 UDP between two waypoints with both ports in 16384-65535. Each MARKER is searched
in the raw bytes of the whole file, so it is found in any frame, header or block.
Prints one `key value` line per figure and exits 0, or 2 when the file cannot be parsed.
"""

import ipaddress
import mmap
import struct
import sys

SVR_PORT_MIN = 16384
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_VLAN = 0x8100


def frames_pcapng(data):
    """Yields the packet data of every Enhanced and Simple Packet Block."""
    offset = 0
    endian = "<"
    while offset + 12 <= len(data):
        block_type = struct.unpack_from(endian + "I", data, offset)[0]
        if block_type == 0x0A0D0D0A:
            magic = data[offset + 8 : offset + 12]
            endian = "<" if magic == b"\x4d\x3c\x2b\x1a" else ">"
        block_len = struct.unpack_from(endian + "I", data, offset + 4)[0]
        if block_len < 12 or offset + block_len > len(data):
            raise ValueError(f"truncated block at offset {offset}")
        if block_type == 6:
            captured = struct.unpack_from(endian + "I", data, offset + 20)[0]
            yield data[offset + 28 : offset + 28 + captured]
        elif block_type == 3:
            yield data[offset + 12 : offset + block_len - 4]
        offset += block_len


def frames_pcap(data):
    """Yields the packet data of every record of a classic pcap file."""
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    offset = 24
    while offset + 16 <= len(data):
        captured = struct.unpack_from(endian + "I", data, offset + 8)[0]
        yield data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured


def svr_waypoints(frame, waypoints):
    """Returns (source, destination) when FRAME is SVR between waypoints, else None."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    offset = 14
    if ethertype == ETHERTYPE_VLAN and len(frame) >= 18:
        ethertype = struct.unpack_from("!H", frame, 16)[0]
        offset = 18
    if ethertype != ETHERTYPE_IPV4 or len(frame) < offset + 20:
        return None
    header_len = (frame[offset] & 0x0F) * 4
    if frame[offset + 9] != 17 or len(frame) < offset + header_len + 4:
        return None
    source = bytes(frame[offset + 12 : offset + 16])
    destination = bytes(frame[offset + 16 : offset + 20])
    if source not in waypoints or destination not in waypoints:
        return None
    sport, dport = struct.unpack_from("!HH", frame, offset + header_len)
    if sport < SVR_PORT_MIN or dport < SVR_PORT_MIN:
        return None
    return source, destination


def main():
    if len(sys.argv) < 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path, waypoint_list, markers = sys.argv[1], sys.argv[2], sys.argv[3:]
    waypoints = {ipaddress.IPv4Address(a).packed for a in waypoint_list.split(",")}
    with open(path, "rb") as file:
        size = file.seek(0, 2)
        if size == 0:
            print("bytes 0")
            print("frames 0")
            print("svr_packets 0")
            return 0
        data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        if data[:4] == b"\x0a\x0d\x0d\x0a":
            frames = frames_pcapng(data)
        else:
            frames = frames_pcap(data)
        frame_count = 0
        svr_count = 0
        per_pair = {}
        try:
            for frame in frames:
                frame_count += 1
                pair = svr_waypoints(frame, waypoints)
                if pair is not None:
                    svr_count += 1
                    per_pair[pair] = per_pair.get(pair, 0) + 1
        except (ValueError, struct.error) as error:
            print(f"pcap-scan: {path}: {error}", file=sys.stderr)
            return 2
        print(f"bytes {size}")
        print(f"frames {frame_count}")
        print(f"svr_packets {svr_count}")
        for (source, destination), count in sorted(per_pair.items()):
            src = ipaddress.IPv4Address(source)
            dst = ipaddress.IPv4Address(destination)
            print(f"svr_pair {src}>{dst} {count}")
        for marker in markers:
            hits = 0
            start = data.find(marker.encode())
            while start != -1:
                hits += 1
                start = data.find(marker.encode(), start + 1)
            print(f"marker {marker} {hits}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
