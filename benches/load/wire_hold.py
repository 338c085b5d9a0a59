#!/usr/bin/env python3
"""How long a media server holds each audio packet, seen on the wire, the same way for any server.

Captures the loopback interface for a few seconds (run it inside the load tool's network
namespace: `nsenter -t <pid of sightline-load inside unshare> -n`), keeps the RTP packets of one
payload type (Opus, 111 by default), and pairs every stream the server sends with the stream it
receives whose payload sizes it repeats (SRTP keeps sizes; a server may add or drop header
extensions, a constant offset per stream). For each packet sent, the hold is the time since the
latest matching packet received. Prints p50, p90 and p99.

    benches/load/wire_hold.py SECONDS SERVER [PAYLOAD_TYPE]

SERVER is the server's address as `ip` or `ip:port` (a prefix of its endpoints). Audio only:
every subscriber gets every Opus packet, whatever the layer choice, so both servers forward the
same packets. Needs root (a raw socket). Standard library only.
"""

import collections
import socket
import struct
import sys
import time


def capture(seconds, payload_type):
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
    raw.bind(("lo", 0))
    raw.settimeout(0.2)
    end = time.time() + seconds
    packets = []
    while time.time() < end:
        try:
            frame = raw.recv(65535)
        except socket.timeout:
            continue
        at = time.time()
        # Ethernet header (lo has one, all zeros), IPv4, UDP, RTP.
        if len(frame) < 14 + 20 + 8 + 12 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        if ip[9] != 17:
            continue
        header = (ip[0] & 15) * 4
        src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        sport, dport = struct.unpack("!HH", ip[header : header + 4])
        rtp = ip[header + 8 :]
        if len(rtp) < 12 or rtp[0] >> 6 != 2 or rtp[1] & 0x7F != payload_type:
            continue
        ssrc = struct.unpack("!I", rtp[8:12])[0]
        packets.append((at, f"{src}:{sport}", f"{dst}:{dport}", ssrc, len(rtp)))
    return packets


def holds(packets, server):
    streams = collections.defaultdict(list)
    for at, src, dst, ssrc, size in packets:
        streams[(src, dst, ssrc)].append((at, size))
    inbound = {k: v for k, v in streams.items() if k[1].startswith(server)}
    outbound = {k: v for k, v in streams.items() if k[0].startswith(server)}
    found = []
    for sent in outbound.values():
        best = []
        for received in inbound.values():
            for offset in range(-40, 41):
                matched = []
                for at, size in sent:
                    earlier = [
                        t for t, s in received if s == size - offset and 0 <= at - t < 0.05
                    ]
                    if earlier:
                        matched.append(at - max(earlier))
                if len(matched) > len(best):
                    best = matched
        found.extend(best)
    return sorted(found)


def main():
    seconds, server = float(sys.argv[1]), sys.argv[2]
    payload_type = int(sys.argv[3]) if len(sys.argv) > 3 else 111
    found = holds(capture(seconds, payload_type), server)
    if not found:
        sys.exit("no forwarded packets seen")
    q = lambda p: found[int(p * (len(found) - 1))] * 1e3
    print(f"held by {server}: n={len(found)} p50 {q(0.5):.3f} ms p90 {q(0.9):.3f} ms p99 {q(0.99):.3f} ms")


if __name__ == "__main__":
    main()
