#!/usr/bin/env python3
"""Scripted hostile BGP peer for netns-tests/hostile.rs (Python 3 stdlib only).

Run inside a lab namespace (`ip netns exec NS python3 peer.py ...`). Every mode prints
one JSON object on its last stdout line.

  peer.py case SRC DST ASN CASE [--hold-open]
      Connects from SRC to DST:179, completes the handshake as AS ASN (OPEN with the
      4-octet AS and IPv4-unicast MP capabilities, no extended messages), waits for the
      agent's End-of-RIB, then sends the bad thing named CASE (OPEN cases replace the
      OPEN). Without --hold-open it reads until a NOTIFICATION, EOF or 15 s. With
      --hold-open it prints `sent`, keeps reading until stdin is closed, then sends a
      KEEPALIVE, reads 1 s more and reports.
  peer.py stall SRC DST ASN
      Connects with a 4 KB receive buffer, completes the handshake, reads the table up
      to End-of-RIB, prints `stalled` and stops reading (sending KEEPALIVEs every 5 s)
      until stdin is closed; then
      reads everything the agent queued meanwhile (up to a NOTIFICATION, EOF or 30 s)
      and reports it.
  peer.py flood DST SECS RATE SRC...
      RATE connection attempts per second for SECS seconds, round-robin over SRC
      addresses; each is closed as soon as connected.
  peer.py silent DST COUNT WAIT SRC
      COUNT connections from SRC that never send; reads each until it is closed or
      WAIT seconds have passed; reports per connection what was received.
  peer.py loris DST COUNT SRC
      COUNT connections from SRC that never send; prints `open`, waits for stdin to
      close, then reports how many the agent had already closed.
"""
import json
import select
import socket
import struct
import sys
import time

MARKER = b"\xff" * 16
KEEPALIVE = 4


def msg(mtype, body=b"", marker=MARKER, length=None):
    if length is None:
        length = 19 + len(body)
    return marker + struct.pack("!HB", length, mtype) + body


def cap(code, value=b""):
    return struct.pack("!BB", code, len(value)) + value


def open_msg(asn, hold=90, bgp_id="192.0.2.2", version=4, caps=None, extra_param=b""):
    if caps is None:
        caps = cap(1, struct.pack("!HBB", 1, 0, 1)) + cap(2) + cap(65, struct.pack("!I", asn))
    param = struct.pack("!BB", 2, len(caps)) + caps + extra_param
    my_as = asn if asn < 65536 else 23456
    body = struct.pack("!BHH", version, my_as, hold) + socket.inet_aton(bgp_id)
    body += struct.pack("!B", len(param)) + param
    return msg(1, body)


def attr(flags, code, value):
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def origin(v=0):
    return attr(0x40, 1, bytes([v]))


def as_path(asn):
    return attr(0x40, 2, struct.pack("!BBI", 2, 1, asn))


def next_hop(ip):
    return attr(0x40, 3, socket.inet_aton(ip))


def update(withdrawn=b"", attrs=b"", nlri=b""):
    body = struct.pack("!H", len(withdrawn)) + withdrawn
    body += struct.pack("!H", len(attrs)) + attrs + nlri
    return msg(2, body)


def mp_reach(afi, safi, nh, nlri):
    return attr(0x80, 14, struct.pack("!HBB", afi, safi, len(nh)) + nh + b"\x00" + nlri)


V4_NLRI = bytes([24, 192, 0, 2])  # 192.0.2.0/24 (documentation)


def bad_thing(case, asn, src):
    """Bytes sent after the handshake for CASE."""
    good = origin() + as_path(asn) + next_hop(src)
    cases = {
        "bad_marker": msg(KEEPALIVE, marker=b"\x00" * 16),
        "length_18": msg(KEEPALIVE, length=18),
        "length_5000": msg(2, b"\x00" * 4, length=5000) + b"\x00" * (5000 - 23),
        "type_9": msg(9),
        "withdrawn_overrun": msg(2, struct.pack("!H", 80) + b"\x00\x00"),
        "nlri_len_33": update(attrs=good, nlri=bytes([33, 192, 0, 2, 1, 0])),
        "duplicate_mp_reach": update(
            attrs=origin() + as_path(asn)
            + mp_reach(1, 1, socket.inet_aton(src), V4_NLRI)
            + mp_reach(1, 1, socket.inet_aton(src), V4_NLRI)
        ),
        "mp_reach_vpnv4": update(
            attrs=origin() + as_path(asn)
            + mp_reach(1, 128, b"\x00" * 8 + socket.inet_aton(src),
                       bytes([24 + 64 + 24]) + b"\x00\x00\x01" + b"\x00" * 8 + bytes([192, 0, 2]))
        ),
        "mp_reach_ipv6_unnegotiated": update(
            attrs=origin() + as_path(asn)
            + mp_reach(2, 1, socket.inet_pton(socket.AF_INET6, "2001:db8:ff::5"),
                       bytes([48, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x05]))
        ),
        "origin_7": update(attrs=origin(7) + as_path(asn) + next_hop(src), nlri=V4_NLRI),
        "missing_as_path": update(attrs=origin() + next_hop(src), nlri=V4_NLRI),
        "route_refresh": msg(5, struct.pack("!HBB", 1, 0, 1)),
        "route_refresh_short": msg(5, struct.pack("!HB", 1, 0)),
        "keepalive_length_20": msg(KEEPALIVE, b"\x00"),
        "attr_len_overrun": msg(2, struct.pack("!HH", 0, 200) + origin()),
        "unrecognized_well_known": update(attrs=good + attr(0x40, 99, b"\x01"), nlri=V4_NLRI),
        "duplicate_origin": update(attrs=good + origin(), nlri=V4_NLRI),
        "origin_bad_flags": update(attrs=attr(0xc0, 1, b"\x00") + as_path(asn) + next_hop(src),
                                   nlri=V4_NLRI),
        "open_in_established": open_msg(asn),
    }
    return cases[case]


OPEN_CASES = {
    "open_version_3": dict(version=3),
    "open_wrong_as": dict(asn_delta=1),
    "open_hold_1": dict(hold=1),
    "open_bgp_id_zero": dict(bgp_id="0.0.0.0"),
    # Optional parameter 1 (authentication, deprecated by RFC 4271): unsupported.
    "open_param_type_1": dict(extra_param=b"\x01\x02\x00\x00"),
}


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.closed = False
        self.close_reason = None

    def fill(self, deadline):
        """Reads more bytes; False on timeout or EOF."""
        if self.closed:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, OSError) as e:
            self.closed, self.close_reason = True, str(e)
            return False
        if not data:
            self.closed, self.close_reason = True, "eof"
            return False
        self.buf += data
        return True

    def next(self, deadline):
        """Next message (type, body) or None on timeout/EOF."""
        while True:
            if len(self.buf) >= 19:
                length, mtype = struct.unpack("!HB", self.buf[16:19])
                if length < 19:
                    raise ValueError("agent sent a bad length %d" % length)
                if len(self.buf) >= length:
                    body = self.buf[19:length]
                    self.buf = self.buf[length:]
                    return mtype, body
            if not self.fill(deadline):
                return None


def attr_codes(attrs):
    codes, i = [], 0
    while i + 3 <= len(attrs):
        flags, code = attrs[i], attrs[i + 1]
        if flags & 0x10:
            ln, i = struct.unpack("!H", attrs[i + 2:i + 4])[0], i + 4
        else:
            ln, i = attrs[i + 2], i + 3
        codes.append(code)
        i += ln
    return codes


class Tally:
    def __init__(self):
        self.r = {"open_received": False, "keepalives": 0, "updates": 0,
                  "nlri_updates": 0, "eor": 0, "notification": None, "closed": False,
                  "other": []}

    def see(self, m):
        mtype, body = m
        if mtype == 1:
            self.r["open_received"] = True
        elif mtype == 4:
            self.r["keepalives"] += 1
        elif mtype == 3:
            self.r["notification"] = [body[0], body[1], body[2:].hex()]
        elif mtype == 2:
            self.r["updates"] += 1
            wl = struct.unpack("!H", body[:2])[0]
            al = struct.unpack("!H", body[2 + wl:4 + wl])[0]
            nlri = body[4 + wl + al:]
            attrs = body[4 + wl:4 + wl + al]
            if wl == 0 and al == 0 and not nlri:
                self.r["eor"] += 1
            elif nlri or 14 in attr_codes(attrs):
                self.r["nlri_updates"] += 1
        else:
            self.r["other"].append(mtype)


def read_until(reader, tally, deadline, done):
    """Tallies the agent's messages until done(); False if the deadline or EOF came first."""
    while not done():
        m = reader.next(deadline)
        if m is None:
            return False
        tally.see(m)
    return True


def drain(reader, tally, deadline, stop_on_notification=True):
    while True:
        m = reader.next(deadline)
        if m is None:
            break
        tally.see(m)
        if stop_on_notification and m[0] == 3:
            # The agent closes after a NOTIFICATION: read to EOF (bounded).
            while reader.fill(min(deadline, time.monotonic() + 3)):
                pass
            break
    tally.r["closed"] = reader.closed


def run_case(src, dst, asn, case, hold_open):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(10)
    s.connect((dst, 179))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(None)
    rd, t = Reader(s), Tally()
    if case in OPEN_CASES:
        o = dict(OPEN_CASES[case])
        a = asn + o.pop("asn_delta", 0)
        s.sendall(open_msg(a, **o))
        drain(rd, t, time.monotonic() + 15)
        t.r["phase"] = "open"
        return t.r
    s.sendall(open_msg(asn))
    deadline = time.monotonic() + 15
    # Agent's OPEN and KEEPALIVE, then ours; then its table up to End-of-RIB.
    if not read_until(rd, t, deadline, lambda: t.r["open_received"] and t.r["keepalives"] >= 1):
        t.r["phase"] = "handshake failed"
        t.r["closed"] = rd.closed
        return t.r
    if case == "update_in_openconfirm":
        # An UPDATE where our KEEPALIVE should be: the agent is in OpenConfirm.
        s.sendall(update(attrs=origin() + as_path(asn) + next_hop(src), nlri=V4_NLRI))
        drain(rd, t, time.monotonic() + 15)
        t.r["phase"] = "openconfirm"
        t.r["close_reason"] = rd.close_reason
        return t.r
    s.sendall(msg(KEEPALIVE))
    if not read_until(rd, t, deadline, lambda: t.r["eor"] > 0):
        t.r["phase"] = "no End-of-RIB"
        t.r["closed"] = rd.closed
        return t.r
    t.r["phase"] = "established"
    t.r["table_before"] = {"nlri_updates": t.r["nlri_updates"], "eor": t.r["eor"]}
    s.sendall(bad_thing(case, asn, src))
    if hold_open:
        print("sent", flush=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            r, _, _ = select.select([s, sys.stdin], [], [], 1)
            if sys.stdin in r and not sys.stdin.readline():
                break
            if s in r:
                m = rd.next(time.monotonic() + 1)
                if m is not None:
                    t.see(m)
                if rd.closed or t.r["notification"]:
                    break
        if case == "route_refresh":
            # The re-sent table ends with a second End-of-RIB (bounded wait).
            deadline = time.monotonic() + 15
            before = t.r["table_before"]["eor"]
            read_until(rd, t, deadline, lambda: t.r["eor"] > before or rd.closed)
        if not rd.closed and not t.r["notification"]:
            try:
                s.sendall(msg(KEEPALIVE))
            except OSError as e:
                t.r["send_error"] = str(e)
            drain(rd, t, time.monotonic() + 1)
    else:
        drain(rd, t, time.monotonic() + 15)
    t.r["close_reason"] = rd.close_reason
    s.close()
    return t.r


def stall(src, dst, asn):
    s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_STREAM)
    # Set before connecting, so the window we offer stays small.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind((src, 0))
    s.settimeout(10)
    s.connect((dst, 179))
    s.settimeout(None)
    rd, t = Reader(s), Tally()
    s.sendall(open_msg(asn))
    deadline = time.monotonic() + 15
    if not read_until(rd, t, deadline, lambda: t.r["open_received"] and t.r["keepalives"] >= 1):
        t.r["phase"] = "handshake failed"
        return t.r
    s.sendall(msg(KEEPALIVE))
    if not read_until(rd, t, deadline, lambda: t.r["eor"] > 0):
        t.r["phase"] = "no End-of-RIB"
        return t.r
    t.r["phase"] = "stalled"
    print("stalled", flush=True)
    # KEEPALIVEs go on while nothing is read, so only a full queue can end the session.
    while True:
        r, _, _ = select.select([sys.stdin], [], [], 5)
        if r and not sys.stdin.readline():
            break
        s.sendall(msg(KEEPALIVE))
    drain(rd, t, time.monotonic() + 30)
    t.r["closed"] = rd.closed
    t.r["close_reason"] = rd.close_reason
    s.close()
    return t.r


def fam_of(a):
    return socket.AF_INET6 if ":" in a else socket.AF_INET


def flood(dst, secs, rate, srcs):
    ok = failed = 0
    start = time.monotonic()
    total = int(secs * rate)
    i = 0
    while i < total:
        # Pace: connection i is due at start + i / rate.
        due = start + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        src = srcs[i % len(srcs)]
        s = socket.socket(fam_of(dst), socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.bind((src, 0))
            s.connect((dst, 179))
            ok += 1
        except OSError:
            failed += 1
        finally:
            s.close()
        i += 1
    return {"attempts": total, "connected": ok, "failed": failed}


def open_silent(dst, count, src):
    socks = []
    for _ in range(count):
        s = socket.socket(fam_of(dst), socket.SOCK_STREAM)
        s.bind((src, 0))
        s.settimeout(5)
        s.connect((dst, 179))
        s.setblocking(False)
        socks.append(s)
    return socks


def watch(socks, deadline):
    """Per socket: bytes received and whether the agent closed it, until all are closed
    or the deadline passes."""
    got = [0] * len(socks)
    closed = [False] * len(socks)
    while not all(closed) and time.monotonic() < deadline:
        live = [s for s, c in zip(socks, closed) if not c]
        r, _, _ = select.select(live, [], [], max(0, min(1, deadline - time.monotonic())))
        for s in r:
            i = socks.index(s)
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if data:
                got[i] += len(data)
            else:
                closed[i] = True
    return got, closed


def silent(dst, count, wait, src):
    socks = open_silent(dst, count, src)
    got, closed = watch(socks, time.monotonic() + wait)
    for s in socks:
        s.close()
    return {"count": count, "received_bytes": got, "closed": closed,
            "got_open": sum(1 for g in got if g > 0), "all_closed": all(closed)}


def loris(dst, count, src):
    socks = open_silent(dst, count, src)
    print("open", flush=True)
    sys.stdin.read()
    got, closed = watch(socks, time.monotonic() + 2)
    for s in socks:
        s.close()
    return {"count": count, "closed_by_agent": sum(closed), "received_bytes": sum(got)}


def main(argv):
    mode = argv[1]
    if mode == "case":
        src, dst, asn, case = argv[2], argv[3], int(argv[4]), argv[5]
        out = run_case(src, dst, asn, case, "--hold-open" in argv)
    elif mode == "stall":
        out = stall(argv[2], argv[3], int(argv[4]))
    elif mode == "flood":
        out = flood(argv[2], float(argv[3]), float(argv[4]), argv[5:])
    elif mode == "silent":
        out = silent(argv[2], int(argv[3]), float(argv[4]), argv[5])
    elif mode == "loris":
        out = loris(argv[2], int(argv[3]), argv[4])
    else:
        raise SystemExit("unknown mode " + mode)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv)
