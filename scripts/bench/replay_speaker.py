#!/usr/bin/env python3
"""The floor for bulk advertisement: a speaker that does no work after Established.

It builds every UPDATE before connecting (N IPv4 /32s from 240.0.0.0, packed as many
per 4096-byte message as fit, one attribute set), connects to the router, exchanges
OPEN and KEEPALIVE, then writes the whole stream with one sendall and End-of-RIB. What
it takes from Established to "router holds N" is the router's own time to take the
table: no speaker can do better on the same lab.

Usage: replay_speaker.py ROUTER_ADDR LOCAL_AS ROUTER_AS BGP_ID NEXT_HOP N
"""
import ipaddress, socket, struct, sys, time

MARKER = b"\xff" * 16
UPDATE, KEEPALIVE, OPEN = 2, 4, 1


def message(kind, body):
    return MARKER + struct.pack("!HB", 19 + len(body), kind) + body


def open_message(local_as, bgp_id):
    caps = (b"\x01\x04" + struct.pack("!HBB", 1, 0, 1)      # multiprotocol IPv4 unicast
            + b"\x41\x04" + struct.pack("!I", local_as))    # 4-octet AS
    params = b"\x02" + bytes([len(caps)]) + caps
    two_octet = local_as if local_as < 65536 else 23456
    return message(OPEN, struct.pack("!BHH4sB", 4, two_octet, 90, socket.inet_aton(bgp_id), len(params)) + params)


def updates(n, local_as, next_hop):
    attrs = (b"\x40\x01\x01\x00"                                     # ORIGIN IGP
             + b"\x40\x02\x06\x02\x01" + struct.pack("!I", local_as)  # AS_PATH (4-octet ASNs)
             + b"\x40\x03\x04" + socket.inet_aton(next_hop))          # NEXT_HOP
    per = (4096 - 19 - 4 - len(attrs)) // 5
    base = int(ipaddress.IPv4Address("240.0.0.0"))
    out = []
    for start in range(0, n, per):
        nlri = b"".join(b"\x20" + struct.pack("!I", base + i) for i in range(start, min(n, start + per)))
        out.append(message(UPDATE, b"\x00\x00" + struct.pack("!H", len(attrs)) + attrs + nlri))
    out.append(message(UPDATE, b"\x00\x00\x00\x00"))                 # End-of-RIB
    return b"".join(out)


def read_message(sock):
    head = b""
    while len(head) < 19:
        chunk = sock.recv(19 - len(head))
        if not chunk:
            raise SystemExit("router closed the connection")
        head += chunk
    length, kind = struct.unpack("!HB", head[16:19])
    body = b""
    while len(body) < length - 19:
        chunk = sock.recv(length - 19 - len(body))
        if not chunk:
            raise SystemExit("router closed the connection")
        body += chunk
    return kind, body


def main():
    router, local_as, router_as, bgp_id, next_hop, n = sys.argv[1:7]
    local_as, n = int(local_as), int(n)
    stream = updates(n, local_as, next_hop)
    print(f"built {len(stream)} bytes for {n} prefixes", flush=True)
    while True:
        try:
            sock = socket.create_connection((router, 179), timeout=5)
            break
        except OSError:
            time.sleep(0.05)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(open_message(local_as, bgp_id))
    kind, _ = read_message(sock)
    if kind != OPEN:
        raise SystemExit(f"expected OPEN, got type {kind}")
    sock.sendall(message(KEEPALIVE, b""))
    kind, body = read_message(sock)
    if kind != KEEPALIVE:
        raise SystemExit(f"expected KEEPALIVE, got type {kind} {body.hex()}")
    sock.sendall(stream)
    print("stream written", flush=True)
    sock.settimeout(30)
    while True:
        try:
            read_message(sock)
        except socket.timeout:
            pass
        sock.sendall(message(KEEPALIVE, b""))


if __name__ == "__main__":
    main()
