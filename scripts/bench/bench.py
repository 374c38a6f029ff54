#!/usr/bin/env python3
"""hostbgp benchmark suite (issue 6). Run through scripts/bench/run.sh.

Every lab lives in namespaces named hbb<pid><role>, deleted on exit (also on error and
on SIGINT/SIGTERM). Only documentation prefixes and 240.0.0.0/12 / 198.18.0.0/15
(announced inside the lab only) are used. Every process started is killed by its pid.
"""
import atexit, ipaddress, os, re, shutil, signal, statistics, struct, subprocess, sys, tempfile, time

BIN = os.environ.get("HOSTBGP_BIN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../target/release/hostbgp"))
PREFIX = f"hbb{os.getpid()}"
DIR = tempfile.mkdtemp(prefix=PREFIX + "-")
NAMESPACES, PROCS = [], []
R_V4, R_V6, H_V4, H_V6, OVN_V4, OVN_V6 = "198.51.100.2", "2001:db8:ff::1", "198.51.100.1", "2001:db8:ff::2", "198.51.100.20", "2001:db8:ff::20"


def log(*a):
    print(*a, flush=True)


def sh(*args, check=True, inp=None):
    r = subprocess.run(args, input=inp, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def ip(ns, *args):
    return sh("ip", "-n", ns, *args)


def spawn(ns, args, out, env=None):
    f = open(out, "ab")
    p = subprocess.Popen(["ip", "netns", "exec", ns] + args, stdout=f, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=env)
    PROCS.append(p)
    return p


def stop(p, sig=signal.SIGKILL):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill(); p.wait()


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            p.kill()
            try: p.wait(5)
            except Exception: pass
    for ns in NAMESPACES:
        for pid in sh("ip", "netns", "pids", ns, check=False).split():
            try: os.kill(int(pid), signal.SIGKILL)  # only processes inside our own namespaces
            except Exception: pass
        sh("ip", "netns", "del", ns, check=False)
    NAMESPACES.clear()
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(DIR, ignore_errors=True)


atexit.register(cleanup)
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(s, lambda *_: sys.exit(130))


def mkns(role):
    name = PREFIX + role
    sh("ip", "netns", "add", name)
    NAMESPACES.append(name)
    ip(name, "link", "set", "lo", "up")
    for k in ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"):
        sh("ip", "netns", "exec", name, "sysctl", "-qw", k)
    return name


def drop_ns(name):
    for p in PROCS:
        if p.poll() is None and p.args[:4] == ["ip", "netns", "exec", name]:
            p.kill(); p.wait()
    sh("ip", "netns", "del", name, check=False)
    if name in NAMESPACES: NAMESPACES.remove(name)


class Topo:
    """Router R (bird2, AS 65000) -- veth -- host H (speaker under test)."""
    def __init__(self, tag):
        self.r, self.h = mkns(tag + "r"), mkns(tag + "h")
        sh("ip", "-n", self.r, "link", "add", "vr", "type", "veth", "peer", "name", "eth0", "netns", self.h)
        for ns, dev, a4, a6 in ((self.r, "vr", R_V4, R_V6), (self.h, "eth0", H_V4, H_V6)):
            ip(ns, "addr", "add", a4 + "/24", "dev", dev)
            ip(ns, "addr", "add", a6 + "/64", "dev", dev)
            ip(ns, "link", "set", dev, "up")
        self.tag = tag

    def close(self):
        drop_ns(self.h); drop_ns(self.r)


class Bird:
    def __init__(self, ns, name, body, debug_routes=False):
        self.sock, self.log = f"{DIR}/{name}.ctl", f"{DIR}/{name}.log"
        conf = f"{DIR}/{name}.conf"
        dbg = "debug protocols { states, routes };" if debug_routes else "debug protocols { states };"
        with open(conf, "w") as f:
            f.write(f'log "{self.log}" all;\ntimeformat log "%F %T.%6f";\n{dbg}\n'
                    'protocol device { scan time 10; }\n' + body)
        self.t0 = time.time()
        self.p = spawn(ns, ["bird", "-f", "-c", conf, "-s", self.sock], f"{DIR}/{name}.out")
        self.ns = ns
        for _ in range(200):
            if os.path.exists(self.sock) and "ready" in self.c("show status"):
                return
            time.sleep(0.02)
        raise RuntimeError(f"bird {name} did not start: {tail(self.log)} {tail(f'{DIR}/{name}.out')}")

    def c(self, cmd):
        return sh("birdc", "-s", self.sock, *cmd.split(), check=False)

    def state(self, proto):
        m = re.search(rf"^{proto}\s+BGP\s+\S+\s+\S+\s+\S+\s+(\w+)", self.c(f"show protocols {proto}"), re.M)
        return m.group(1) if m else "?"

    def imported(self, proto):
        """(ipv4 imported, ipv6 imported) from `show protocols all`: O(1) for bird."""
        return imported_counts(self.c(f"show protocols all {proto}"))

    def stop(self):
        stop(self.p, signal.SIGTERM)


def imported_counts(out):
    """(ipv4 imported, ipv6 imported) from one protocol's `show protocols all` text."""
    res = {"ipv4": 0, "ipv6": 0}
    for ch in re.split(r"\n\s+Channel ", out)[1:]:
        m = re.search(r"Routes:\s+(\d+) imported", ch)
        if m: res[ch.split()[0]] = int(m.group(1))
    return res["ipv4"], res["ipv6"]


def bird_log_time(stamp):
    """Epoch seconds of a bird log timestamp (`timeformat log "%F %T.%6f"`)."""
    return time.mktime(time.strptime(stamp[:19], "%Y-%m-%d %H:%M:%S")) + float("0" + stamp[19:])


def tail(path, n=25):
    try:
        return "\n".join(open(path, errors="replace").read().splitlines()[-n:])
    except OSError:
        return "(no log)"


def router_conf(peers, gr=False, rid=R_V4):
    s = f"router id {rid};\n"
    for name, nbr, asn in peers:
        s += (f"protocol bgp {name} {{ local as 65000; neighbor {nbr} as {asn}; connect delay time 1; "
              f"connect retry time 1; error wait time 1, 2; {'graceful restart on; graceful restart time 120;' if gr else ''}"
              " ipv4 { import all; export none; extended next hop off; }; ipv6 { import all; export none; }; }\n")
    return s


def wait(desc, cond, timeout=60, step=0.005, on_fail=""):
    t = time.time()
    while time.time() - t < timeout:
        v = cond()
        if v:
            return time.time()
        time.sleep(step)
    raise RuntimeError(f"timed out ({timeout}s) waiting for {desc}\n{on_fail() if callable(on_fail) else on_fail}")


def hwm(pid):
    try:
        for l in open(f"/proc/{pid}/status"):
            if l.startswith("VmHWM"): return int(l.split()[1]) * 1024
    except OSError:
        pass
    return 0


def child_pid(p):
    """`ip netns exec` execs the program: same pid."""
    return p.pid


# ---------------------------------------------------------------- prefixes
def v4_prefixes(n):
    base = int(ipaddress.IPv4Address("240.0.0.0"))
    assert n <= 1 << 20, "at most 1048576 /32s in 240.0.0.0/12"
    return [f"{ipaddress.IPv4Address(base + i)}/32" for i in range(n)]


def v6_prefixes(n):
    base = int(ipaddress.IPv6Address("2001:db8:1000::"))
    return [f"{ipaddress.IPv6Address(base + i)}/128" for i in range(n)]


# ---------------------------------------------------------------- hostbgp configs
def hb_ovn_yaml(v4, v6, peers=(("r1", R_V6),), sets=1):
    """An OVN network on a physical uplink declaring `peers` [(name, address)], AS 65000.
    `sets` > 1 deals the prefixes round-robin to that many NICs, each with its own
    bgp.communities: neighbouring prefixes then differ in attributes (issue 16)."""
    if sets > 1:
        return hb_ovn_sets_yaml(v4, v6, peers, sets)
    s = ("config:\n  core.bgp_asn: \"65010\"\n  core.bgp_address: \"[::]:179\"\n  core.bgp_routerid: 198.51.100.1\n"
         "networks:\n  uplink:\n    type: physical\n    config:\n"
         + "".join(f"      bgp.peers.{name}.address: \"{addr}\"\n      bgp.peers.{name}.asn: \"65000\"\n" for name, addr in peers)
         + "  ovn1:\n    type: ovn\n    config:\n      network: uplink\n      ipv4.address: 10.20.0.1/24\n"
         f"      ipv4.nat: \"false\"\n      volatile.network.ipv4.address: {OVN_V4}\n"
         f"      ipv6.address: 2001:db8:20::1/64\n      ipv6.nat: \"false\"\n      volatile.network.ipv6.address: \"{OVN_V6}\"\n"
         "instances:\n  c1:\n    location: m1\n    devices:\n      eth0:\n        type: nic\n        network: ovn1\n")
    if v4: s += f"        ipv4.routes.external: \"{','.join(v4)}\"\n"
    if v6: s += f"        ipv6.routes.external: \"{','.join(v6)}\"\n"
    return s


def start_hostbgp(ns, yaml, name="hostbgp", rust_log="info"):
    cfg = f"{DIR}/{name}.yaml"
    with open(cfg, "w") as f: f.write(yaml)
    env = dict(os.environ, RUST_LOG=os.environ.get("HOSTBGP_LOG", rust_log))
    t0 = time.time()
    p = spawn(ns, [BIN, "run", "--config", cfg, "--socket", f"{DIR}/{name}.sock", "--member", "m1"], f"{DIR}/{name}.log", env)
    p.logpath, p.t0 = f"{DIR}/{name}.log", t0
    return p


# ---------------------------------------------------------------- pcap: count UPDATE messages
def count_updates(pcap, src_port_or_any=None):
    """Reassembles the TCP stream towards the router (dst port 179 or src port 179 of the
    speaker, whichever carries most bytes) and counts BGP UPDATEs; returns (updates, eor, gaps)."""
    data = open(pcap, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    off, flows = 24, {}
    while off + 16 <= len(data):
        _, _, caplen, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        pkt = data[off + 16: off + 16 + caplen]; off += 16 + caplen
        if linktype == 1: eth, l3 = struct.unpack("!H", pkt[12:14])[0], pkt[14:]
        elif linktype == 113: eth, l3 = struct.unpack("!H", pkt[14:16])[0], pkt[16:]
        else: eth, l3 = None, pkt
        if eth == 0x86dd:
            if l3[6] != 6: continue
            src, dst, tcp = l3[8:24], l3[24:40], l3[40:]
        elif eth == 0x0800:
            ihl = (l3[0] & 15) * 4
            if l3[9] != 6: continue
            src, dst, tcp = l3[12:16], l3[16:20], l3[ihl:]
        else:
            continue
        sp, dp, seq = struct.unpack("!HHI", tcp[:8])
        doff = (tcp[12] >> 4) * 4
        payload = tcp[doff:]
        if payload:
            flows.setdefault((src, sp, dst, dp), {})[seq] = payload
    best = max(flows.values(), key=lambda f: sum(len(v) for v in f.values()), default={})
    if not best: return 0, 0, 0
    seqs = sorted(best)
    stream, gaps, nxt = bytearray(), 0, seqs[0]
    for s in seqs:
        seg = best[s]
        if s > nxt: gaps += 1; break
        if s + len(seg) <= nxt: continue
        stream += seg[nxt - s:]; nxt = s + len(seg)
    i, upd, eor = 0, 0, 0
    while i + 19 <= len(stream):
        ln, ty = struct.unpack("!HB", stream[i + 16:i + 19])
        if ln < 19: gaps += 1; break
        if ty == 2:
            body = stream[i + 19:i + ln]
            if len(body) in (4, 11): eor += 1  # empty UPDATE (v4) or MP_UNREACH-only (v6 EoR)
            else: upd += 1
        i += ln
    return upd, eor, gaps


# ---------------------------------------------------------------- 1. bulk
def hb_ovn_sets_yaml(v4, v6, peers, sets):
    head = hb_ovn_yaml([], [], peers).split("instances:\n")[0] + "instances:\n"
    for i in range(sets):
        head += (f"  c{i + 1}:\n    location: m1\n    devices:\n      eth0:\n        type: nic\n        network: ovn1\n"
                 f"        bgp.communities: \"65010:{i + 1}\"\n")
        if v4[i::sets]: head += f"        ipv4.routes.external: \"{','.join(v4[i::sets])}\"\n"
        if v6[i::sets]: head += f"        ipv6.routes.external: \"{','.join(v6[i::sets])}\"\n"
    return head


def bulk_run(label, n4, n6, start_speaker, peer_name, nbr):
    """Returns dict: established, t99, t100 (from Established), rss, updates."""
    t = Topo("b")
    try:
        router = Bird(t.r, "router-" + label, router_conf([(peer_name, nbr, 65010)]))
        pcap = f"{DIR}/{label}.pcap"
        td = spawn(t.r, ["tcpdump", "-i", "vr", "-s", "0", "-B", "65536", "-w", pcap, "-U", "tcp port 179"], f"{DIR}/tcpdump-{label}.out")
        time.sleep(0.5)
        proc, t0, logf = start_speaker(t)
        fail = lambda: f"state={router.state(peer_name)}\n--- speaker log ---\n{tail(logf)}\n--- router log ---\n{tail(router.log)}"
        # Polled over one persistent control connection (a birdc process per poll would
        # cost the 2-core machine more than the speakers being measured).
        ctl = BirdCtl(router.sock)
        wait(f"{label}: Established", lambda: router_progress(ctl, peer_name)[0], 120, 0.002, fail)
        # The router's own CPU for taking the table: no speaker can be faster than this.
        router_cpu0 = cpu_seconds(router.p.pid)
        te = established_at(router.log, peer_name) or time.time()
        samples, target = [], n4 + n6
        deadline = te + 600
        while time.time() < deadline:
            a, b = router_progress(ctl, peer_name)[1:]
            now = time.time(); samples.append((now, a + b))
            if a >= n4 and b >= n6:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"{label}: speaker exited\n{fail()}")
            time.sleep(0.002)
        else:
            raise RuntimeError(f"{label}: router did not reach {target}\n{fail()}")
        router_cpu = cpu_seconds(router.p.pid) - router_cpu0
        ctl.close()
        time.sleep(1.0)  # catch the few extra prefixes (the OVN subnet) and settle
        final = sum(router.imported(peer_name))
        got = samples[-1][1]
        t99 = next(s for s, c in samples if c >= 0.99 * target) - te
        t100 = samples[-1][0] - te
        rss = hwm(proc.pid)
        time.sleep(0.3)
        stop(td, signal.SIGINT)
        upd, eor, gaps = count_updates(pcap)
        return dict(label=label, est=te - t0, t99=t99, t100=t100, rss=rss, updates=upd, eor=eor, gaps=gaps, router_cpu=router_cpu,
                    final=final, target=target, per_update=(target / upd if upd else 0), proc=proc)
    finally:
        t.close()


def speaker_hostbgp(n4, n6, sets=1):
    def f(t):
        p = start_hostbgp(t.h, hb_ovn_yaml(v4_prefixes(n4), v6_prefixes(n6), sets=sets))
        return p, p.t0, p.logpath
    return f


def speaker_bird(n4, n6):
    def f(t):
        body = f"router id {H_V4};\nprotocol device {{ }}\n"
        for af, pf in (("ipv4", v4_prefixes(n4)), ("ipv6", v6_prefixes(n6))):
            if pf:
                body += f"protocol static s_{af} {{ {af};\n" + "".join(f"route {x} blackhole;\n" for x in pf) + "}\n"
        body += (f"protocol bgp r1 {{ local as 65010; neighbor {R_V6} as 65000; connect delay time 0; "
                 f"ipv4 {{ import none; export all; next hop address {OVN_V4}; }}; ipv6 {{ import none; export all; next hop address {OVN_V6}; }}; }}\n")
        conf = f"{DIR}/spk.conf"
        open(conf, "w").write(body)
        t0 = time.time()
        p = spawn(t.h, ["bird", "-f", "-c", conf, "-s", f"{DIR}/spk.ctl"], f"{DIR}/spk.log")
        return p, t0, f"{DIR}/spk.log"
    return f


def speaker_replay(n4):
    """The floor: every UPDATE built before connecting, written in one go (replay_speaker.py)."""
    def f(t):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "replay_speaker.py")
        t0 = time.time()
        p = spawn(t.h, [sys.executable, script, R_V6, "65010", "65000", H_V4, OVN_V4, str(n4)], f"{DIR}/replay.log")
        return p, t0, f"{DIR}/replay.log"
    return f


def speaker_exabgp(n4):
    def f(t):
        # 240.0.0.0/12 split into /32s needs n4 = a power of two block; use the covering split
        bits = max(0, (n4 - 1).bit_length())
        conf = f"{DIR}/exa.conf"
        open(conf, "w").write(
            f"neighbor {R_V6} {{\n router-id {H_V4};\n local-address {H_V6};\n local-as 65010;\n peer-as 65000;\n"
            f" family {{ ipv4 unicast; }}\n static {{\n  route 240.0.0.0/{32 - bits} next-hop {OVN_V4} split /32;\n }}\n}}\n")
        env = dict(os.environ, exabgp_daemon_daemonize="false", exabgp_log_destination="stdout",
                   exabgp_log_level="WARNING", exabgp_daemon_user="root", exabgp_api_cli="false")
        t0 = time.time()
        p = spawn(t.h, ["exabgp", conf], f"{DIR}/exa.log", env)
        return p, t0, f"{DIR}/exa.log"
    return f


# ---------------------------------------------------------------- gobgpd reference
def mrt_record(ts, subtype, body):
    """MRT common header (RFC 6396 section 2), type 13 = TABLE_DUMP_V2."""
    return struct.pack("!IHHI", ts, 13, subtype, len(body)) + body


MRT_PAD = 4096


def write_mrt(path, n, nexthop, peer_as=65010):
    """A TABLE_DUMP_V2 file: PEER_INDEX_TABLE with one peer, then one RIB_IPV4_UNICAST
    record per /32 of v4_prefixes(n) with ORIGIN IGP, an empty AS_PATH and NEXT_HOP,
    then MRT_PAD copies of the first prefix (see gobgp_preload)."""
    ts, nh = int(time.time()), ipaddress.IPv4Address(nexthop).packed
    # collector id, empty view name, 1 peer: type 2 (AS4, IPv4 address), bgp id, address, AS
    peers = struct.pack("!4sHH", nh, 0, 1) + struct.pack("!B4s4sI", 0x02, nh, nh, peer_as)
    attrs = bytes([0x40, 1, 1, 0]) + bytes([0x40, 2, 0]) + bytes([0x40, 3, 4]) + nh
    entry = struct.pack("!HIH", 0, ts, len(attrs)) + attrs  # peer index 0, originated time
    base = int(ipaddress.IPv4Address("240.0.0.0"))
    assert n <= 1 << 20
    with open(path, "wb") as f:
        f.write(mrt_record(ts, 1, peers))
        for i in range(n + MRT_PAD):
            f.write(mrt_record(ts, 2, struct.pack("!IBIH", i, 32, base + (i if i < n else 0), 1) + entry))


def gobgp(ns, *args, check=True):
    return sh("ip", "netns", "exec", ns, "gobgp", *args, check=check)


def gobgp_rib_count(ns):
    m = re.search(r"Destination: (\d+)", gobgp(ns, "global", "rib", "summary", "-a", "ipv4", check=False))
    return int(m.group(1)) if m else 0


def gobgp_preload(ns, mrt, n):
    """`gobgp mrt inject global` into gobgpd's global RIB. gobgp 3.10's CLI loses the tail
    of its stream when it exits (at least the last path, up to a few hundred), so the
    file ends with MRT_PAD copies of an already-sent prefix (an identical path replaces
    itself: no new destination); should real prefixes still be missing, the tail
    (records are applied in order) is injected again with <count> <skip>."""
    have = 0
    for _ in range(20):
        gobgp(ns, "mrt", "inject", "global", mrt, str(n + MRT_PAD - have), str(have))
        # the server may still be applying the stream: wait until the count settles
        last, have = -1, gobgp_rib_count(ns)
        while have != last:
            time.sleep(0.2); last, have = have, gobgp_rib_count(ns)
        if have >= n:
            return have
    raise RuntimeError(f"gobgp preload: {have} of {n} paths in the global RIB")


def speaker_gobgp(n4):
    """gobgpd with its global RIB preloaded from an MRT file, then the router added as a
    neighbour, so the bulk timing starts at Established with the RIB full (as in the
    issue's reference); `est` still counts from gobgpd's start and includes the preload."""
    def f(t):
        mrt, conf = f"{DIR}/gobgp-{n4}.mrt", f"{DIR}/gobgpd.toml"
        write_mrt(mrt, n4, OVN_V4)
        open(conf, "w").write(f'[global.config]\n  as = 65010\n  router-id = "{H_V4}"\n')
        t0 = time.time()
        p = spawn(t.h, ["gobgpd", "-f", conf, "-p", "-l", "warn", "--pprof-disable",
                        "--api-hosts", "127.0.0.1:50051"], f"{DIR}/gobgpd.log")
        wait("gobgpd API", lambda: "AS:" in gobgp(t.h, "global", check=False), 30, 0.05, lambda: tail(f"{DIR}/gobgpd.log"))
        gobgp_preload(t.h, mrt, n4)
        p.preload = time.time() - t0
        log(f"  gobgpd: start -> {n4} paths in its global RIB {p.preload:.2f}s (MRT inject), RSS {hwm(p.pid)/1e6:.1f} MB")
        gobgp(t.h, "neighbor", "add", R_V6, "as", "65000", "family", "ipv4-unicast")
        return p, t0, f"{DIR}/gobgpd.log"
    return f


def fmt_bulk(r):
    pre = getattr(r["proc"], "preload", None)
    pre = f" (preload {pre:.2f}s, neighbour added -> Established {r['est'] - pre:.2f}s)" if pre is not None else ""
    return (f"{r['label']:<28} est {r['est']:6.2f}s  99% {r['t99']:6.2f}s  100% {r['t100']:6.2f}s  "
            f"RSS {r['rss']/1e6:7.1f}MB  UPDATEs {r['updates']} ({r['per_update']:.0f} prefixes/UPDATE{', capture gaps' if r['gaps'] else ''})"
            f"  router CPU {r['router_cpu']:.2f}s{pre}")


def ratio(a, b):
    return f"{a / b:.2f}x" if b else "n/a"


def cmd_bulk(n):
    out = []
    runs = [("hostbgp v4", speaker_hostbgp(n, 0), n, 0), ("bird static v4", speaker_bird(n, 0), n, 0),
            ("replay floor v4", speaker_replay(n), n, 0)]
    # Prefixes dealt over a few attribute sets must pack as densely as one set.
    sets = int(os.environ.get("BENCH_SETS", 4))
    if sets > 1:
        runs.insert(1, (f"hostbgp v4 {sets} attribute sets", speaker_hostbgp(n, 0, sets), n, 0))
    exa_n = 1 << max(0, (n - 1).bit_length())
    if shutil.which("exabgp") and os.environ.get("BENCH_EXABGP", "1") == "1":
        runs.append((f"exabgp split v4 (N={exa_n})", speaker_exabgp(n), exa_n, 0))
    else:
        log("exabgp: not available")
    if shutil.which("gobgpd") and os.environ.get("BENCH_GOBGP", "1") == "1":
        runs.append(("gobgpd v4", speaker_gobgp(n), n, 0))
    else:
        log("gobgpd: not available or BENCH_GOBGP=0")
    n6 = int(os.environ.get("N6", 100000))
    if n6:
        runs += [("hostbgp v6", speaker_hostbgp(0, n6), 0, n6), ("bird static v6", speaker_bird(0, n6), 0, n6)]
    res = {}
    for label, spk, a, b in runs:
        log(f"[bulk] {label}: {a} IPv4 + {b} IPv6 prefixes ...")
        try:
            tag = label.split()[0] + ("-sets" if "sets" in label else "")
            r = bulk_run(tag + "-" + ("v6" if b else "v4"), a, b, spk, "h1", H_V6)
            r["label"] = label
            res[label] = r
            log("  " + fmt_bulk(r))
        except Exception as e:
            log(f"  FAILED: {e}")
    for fam in ("v4", "v6"):
        hb, bd = res.get(f"hostbgp {fam}"), res.get(f"bird static {fam}")
        if hb and bd:
            log(f"RATIO hostbgp/bird {fam} N={n if fam == 'v4' else n6}: est {ratio(hb['est'], bd['est'])}  99% {ratio(hb['t99'], bd['t99'])}  "
                f"100% {ratio(hb['t100'], bd['t100'])}  100%-vs-bird-99% {ratio(hb['t100'], bd['t99'])}  RSS {ratio(hb['rss'], bd['rss'])}")
    ex, hb = next((v for k, v in res.items() if k.startswith("exabgp")), None), res.get("hostbgp v4")
    if ex and hb:
        log(f"RATIO hostbgp/exabgp v4: 99% {ratio(hb['t99'], ex['t99'])}  100% {ratio(hb['t100'], ex['t100'])}  RSS {ratio(hb['rss'], ex['rss'])}  (exabgp N={ex['target']})")
    floor = res.get("replay floor v4")
    if floor and hb:
        log(f"RATIO hostbgp/replay-floor v4 N={n}: 100% {ratio(hb['t100'], floor['t100'])}  (the floor: a speaker with "
            f"every UPDATE built before Established; router CPU {floor['router_cpu']:.2f}s)")
    gb = res.get("gobgpd v4")
    if gb and floor:
        log(f"RATIO replay-floor/gobgpd v4 N={n}: 100% {ratio(floor['t100'], gb['t100'])}  (the best ratio any speaker can reach here)")
    if gb and hb:
        log(f"RATIO hostbgp/gobgpd v4 N={n}: 99% {ratio(hb['t99'], gb['t99'])}  100% {ratio(hb['t100'], gb['t100'])}  "
            f"RSS {ratio(hb['rss'], gb['rss'])}  (goal at 1M: 100% <= 0.05x)")
    return res


# ---------------------------------------------------------------- 2. memory
def cmd_memory(n):
    t = Topo("m")
    try:
        router = Bird(t.r, "router-mem", router_conf([("h1", H_V6, 65010)]))
        p = start_hostbgp(t.h, hb_ovn_yaml(v4_prefixes(10), []), "hb-idle")
        wait("idle Established", lambda: router.state("h1") == "Established", 60, 0.05, lambda: tail(p.logpath))
        wait("10 prefixes", lambda: router.imported("h1")[0] >= 10, 30, 0.05)
        time.sleep(1)
        idle = hwm(p.pid)
        stop(p, signal.SIGTERM)
    finally:
        t.close()
    r = bulk_run("mem", n, 0, speaker_hostbgp(n, 0), "h1", H_V6)
    per = (r["rss"] - idle) / n
    log(f"[memory] hostbgp idle (10 prefixes) VmHWM {idle/1e6:.1f} MB (goal < 10 MB: {'met' if idle < 10e6 else 'NOT met'}); "
        f"at N={n} VmHWM {r['rss']/1e6:.1f} MB; {per:.0f} bytes/prefix (goal <= 100: {'met' if per <= 100 else 'NOT met'})")
    return idle, r["rss"], per


# ---------------------------------------------------------------- 3. event latency
def parse_bird_events(path, proto):
    """[(epoch seconds, 'added'|'removed', prefix)] from `debug { routes }` lines."""
    ev = []
    for l in open(path, errors="replace"):
        m = re.match(r"(\S+ \S+) <TRACE> (\S+) > (added|removed|replaced)\S* (?:\[\S+\] )?(\S+)", l)
        if m and m.group(2).startswith(proto):
            ev.append((bird_log_time(m.group(1)), m.group(3), m.group(4)))
    return ev


class Batch:
    """A persistent `ip -batch -` in a namespace: the event time is taken right before the write."""
    def __init__(self, ns):
        self.p = subprocess.Popen(["ip", "-n", ns, "-batch", "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, bufsize=1)
        PROCS.append(self.p)

    def do(self, line):
        t = time.time()
        self.p.stdin.write(line + "\n"); self.p.stdin.flush()
        return t

    def close(self):
        self.p.stdin.close(); self.p.wait(5)


class Monitor:
    """`ip -ts monitor` in a namespace: when each netlink event reached a listener
    (the speaker under test is another listener of the same multicast groups)."""
    def __init__(self, ns, path):
        self.path = path
        self.p = spawn(ns, ["ip", "-ts", "monitor", "link", "address", "route"], path)

    def close(self):
        stop(self.p, signal.SIGTERM)

    def records(self):
        """[(epoch seconds, text)]; continuation lines are joined to their record."""
        recs = []
        for l in open(self.path, errors="replace"):
            m = re.match(r"\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d+)\] (.*)", l)
            if m:
                ts = time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) + float("0." + m.group(2))
                recs.append([ts, m.group(3)])
            elif recs:
                recs[-1][1] += " " + l.strip()
        return recs


def at_netlink(events, recs):
    """Replaces each event's command time with the time of the first netlink event it
    caused (matched by its predicate); events with no matching record are dropped."""
    out, missing = [], 0
    for te, pfx, kind, match in events:
        t = next((ts for ts, text in recs if te - 0.001 <= ts < te + 2 and match(text)), None)
        if t is None: missing += 1
        else: out.append((t, pfx, kind))
    return out, missing


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def measure(router_log, proto, events, want):
    """events: [(t_event, prefix, 'added'|'removed')] -> latencies (ms)."""
    got = parse_bird_events(router_log, proto)
    lat, missing = [], 0
    for te, pfx, kind in events:
        m = next((ts for ts, k, p in got if p == pfx and (k == kind or (kind == "added" and k == "replaced")) and ts >= te - 0.001), None)
        if m is None: missing += 1
        else: lat.append((m - te) * 1000)
    return lat, missing


def with_background_table(yaml, n):
    """Adds n advertised /32s (an OVN NIC on a peerless uplink) to a latency config:
    events must stay fast while a big table is advertised."""
    if not n:
        return yaml
    nets, insts = yaml.split("instances:\n", 1)
    nets += ("  uplink:\n    type: physical\n    config: {}\n"
             "  ovn1:\n    type: ovn\n    config:\n      network: uplink\n      ipv4.address: 10.20.0.1/24\n"
             f"      ipv4.nat: \"false\"\n      volatile.network.ipv4.address: {OVN_V4}\n")
    insts += ("  big:\n    location: m1\n    devices:\n      eth0:\n        type: nic\n        network: ovn1\n"
              f"        ipv4.routes.external: \"{','.join(v4_prefixes(n))}\"\n")
    return nets + "instances:\n" + insts


def with_background_routes(yaml, n):
    """Adds an instance whose NIC (vethbg on br0) has n routes.external /32s: n kernel
    routes that hostbgp installs and advertises. Events must stay fast beside them."""
    if not n:
        return yaml
    return yaml + ("  bg:\n    devices:\n      eth0:\n        type: nic\n        network: br0\n        host_name: vethbg\n"
                   f"        ipv4.address: 203.0.113.20\n        ipv4.routes.external: \"{','.join(v4_prefixes(n))}\"\n")


def background_routes_for_bird(ns, n):
    """The same n routes, added to the kernel for bird's `kernel learn` to export."""
    if n:
        sh("ip", "-n", ns, "-batch", "-", inp="".join(f"route add {p} via 203.0.113.20 dev br0 proto static\n" for p in v4_prefixes(n)))


def cmd_latency(count):
    res = {}
    # LAT_EXTRA: an OVN table advertised by hostbgp only (planned once per config);
    # LAT_ROUTES: instance routes in the kernel, for both speakers.
    extra_ovn, extra_routes = int(os.environ.get("LAT_EXTRA", 0)), int(os.environ.get("LAT_ROUTES", 0))
    for who in ("hostbgp", "bird"):
        t = Topo("l" + who[0])
        try:
            ip(t.h, "link", "add", "br0", "type", "bridge")
            ip(t.h, "link", "set", "br0", "up")
            ip(t.h, "addr", "add", "203.0.113.1/24", "dev", "br0")
            if extra_routes:
                ip(t.h, "link", "add", "vethbg", "type", "veth", "peer", "name", "vethbgp")
                for dev in ("vethbg", "vethbgp"): ip(t.h, "link", "set", dev, "up")
                ip(t.h, "link", "set", "vethbg", "master", "br0")
            inst = mkns("l" + who[0] + "i")
            router = Bird(t.r, f"router-lat-{who}", router_conf([("h1", H_V6, 65010)]), debug_routes=True)
            if who == "hostbgp":
                yaml = ("config:\n  core.bgp_address: \"[::]:179\"\n  core.bgp_asn: \"65010\"\n  core.bgp_routerid: 198.51.100.1\n"
                        "networks:\n  br0:\n    type: bridge\n    config:\n      ipv4.nat: \"false\"\n      ipv6.nat: \"false\"\n"
                        f"      bgp.peers.r1.address: \"{R_V6}\"\n      bgp.peers.r1.asn: \"65000\"\n"
                        "instances:\n  c1:\n    devices:\n      eth0: {type: nic, network: br0, host_name: vethc1, "
                        "ipv4.address: 203.0.113.10, ipv4.routes.external: 192.0.2.64/32}\n")
                yaml = with_background_routes(with_background_table(yaml, extra_ovn), extra_routes)
                p = start_hostbgp(t.h, yaml, "hb-lat")
                spk_log = p.logpath
            else:
                body = (f"router id {H_V4};\nprotocol direct d1 {{ ipv4; interface \"br0\"; }}\n"
                        "protocol kernel k4 { ipv4 { import all; export none; }; learn; scan time 10; }\n"
                        f"protocol bgp r1 {{ local as 65010; neighbor {R_V6} as 65000; connect delay time 0; "
                        f"ipv4 {{ import none; export all; next hop address {H_V4}; }}; ipv6 {{ import none; export none; }}; }}\n")
                spk = Bird(t.h, "spk-lat", body)
                p, spk_log = spk.p, spk.log
            wait(f"{who}: Established", lambda: router.state("h1") == "Established", 60, 0.05,
                 lambda: tail(spk_log) + "\n" + tail(router.log))
            if who == "bird":
                background_routes_for_bird(t.h, extra_routes)
            extra = (extra_ovn if who == "hostbgp" else 0) + extra_routes
            wait(f"{who}: 203.0.113.0/24 at router", lambda: router.imported("h1")[0] >= 1 + extra, 60, 0.05, lambda: tail(spk_log))
            time.sleep(0.5)
            mon = Monitor(t.h, f"{DIR}/monitor-{who}.log")
            time.sleep(0.3)
            b = Batch(t.h)
            ev_addr, ev_add2, ev_del = [], [], []
            ev_link = []  # the instance's own link events: bird timed from the same event as hostbgp
            cpu0 = cpu_seconds(p.pid)
            for k in range(count):
                net = f"198.18.{k % 250}.0/24" if k < 250 else f"198.19.{k % 250}.0/24"
                a = net.replace(".0/24", ".1/24")
                added = lambda text, a=a: f"inet {a} " in text and not text.startswith("Deleted")
                ev_addr.append((b.do(f"addr add {a} dev br0"), net, "added", added))
                time.sleep(0.01)
                b.do(f"addr del {a} dev br0")
                time.sleep(0.01)
            time.sleep(0.5)
            log(f"[latency] {who:<7} CPU per address added+removed: {(cpu_seconds(p.pid) - cpu0) / count * 1e6:.0f} µs")
            enslaved = lambda text: "vethc1" in text and "master br0" in text and not text.startswith("Deleted")
            deleted = lambda text: text.startswith("Deleted") and "vethc1" in text
            route_added = lambda text: text.startswith("192.0.2.64 via")
            route_deleted = lambda text: text.startswith("Deleted 192.0.2.64 via")
            for k in range(count):
                # An instance's start and stop, the same kernel work for both speakers: its
                # veth created in advance (not timed), enslaved (timed), deleted (timed).
                # bird cannot see a NIC: its host adds the route right after the enslave
                # and deletes it after the veth (as LXD does), and bird's event is the
                # route's. Both are timed from their own netlink event, and "from command"
                # from the link command for both.
                wait("vethc1 gone", lambda: subprocess.run(["ip", "-n", t.h, "link", "show", "vethc1"],
                                                           capture_output=True).returncode != 0, 10, 0.002)
                ip(t.h, "link", "add", "vethc1", "type", "veth", "peer", "name", "eth0", "netns", inst)
                time.sleep(0.005)
                for link_cmd, route_cmd, kind, on_link, on_route, evs in (
                        ("link set vethc1 master br0 up", "add", "added", enslaved, route_added, ev_add2),
                        ("link del vethc1", "del", "removed", deleted, route_deleted, ev_del)):
                    te = b.do(link_cmd)
                    if who == "bird":
                        b.do(f"route {route_cmd} 192.0.2.64/32 via 203.0.113.10 dev br0 proto static")
                    evs.append((te, "192.0.2.64/32", kind, on_link if who == "hostbgp" else on_route))
                    ev_link.append((te, "192.0.2.64/32", kind, on_link))
                    time.sleep(0.01)
            time.sleep(1)
            b.close()
            mon.close()
            recs = mon.records()
            # sequential events on the same prefix: match each event with the first router
            # change after it and before the next event of the same prefix. Timed from the
            # netlink event (the issue's definition) and, for comparison, from the command.
            out = {}
            for name, evs in (("address added", ev_addr), ("route/veth added", ev_add2 + ev_del), ("withdraw", ev_add2 + ev_del)):
                nl, nl_missing = at_netlink(evs, recs)
                lat, miss = measure_seq(router.log, nl, name)
                cmd_lat, _ = measure_seq(router.log, [e[:3] for e in evs], name)
                out[name] = (lat, miss + nl_missing, cmd_lat)
            if who == "bird":
                # The issue's definition for bird too: from the veth's enslave, which its
                # host follows with the route's install. (Not for the withdraw: there the
                # route is deleted once the veth's deletion is over, ~18 ms later.)
                nl, nl_missing = at_netlink(ev_link, recs)
                lat, miss = measure_seq(router.log, nl, "route/veth added")
                out["route/veth added from link"] = (lat, miss + nl_missing, out["route/veth added"][2])
            res[who] = out
            for name, (lat, _, _) in out.items():
                # in event order, for looking at the tail with BENCH_KEEP=1
                with open(f"{DIR}/latency-{who}-{name.replace('/', '-').replace(' ', '-')}.txt", "w") as f:
                    f.write("".join(f"{x:.3f}\n" for x in lat))
            for name, (lat, miss, cmd_lat) in out.items():
                log(f"[latency] {who:<7} {name:<26} n={len(lat)} missing={miss} from netlink event: p50 {pct(lat, .5):.2f} ms  "
                    f"p99 {pct(lat, .99):.2f} ms; from command: p50 {pct(cmd_lat, .5):.2f} ms  p99 {pct(cmd_lat, .99):.2f} ms")
        finally:
            t.close()
            for ns in list(NAMESPACES):
                if ns.startswith(PREFIX + "l"): drop_ns(ns)
    for name in ("address added", "route/veth added", "withdraw"):
        a, b2 = res.get("hostbgp", {}).get(name), res.get("bird", {}).get(name)
        if a and b2 and a[0] and b2[0]:
            log(f"RATIO latency {name}: p50 {ratio(pct(a[0], .5), pct(b2[0], .5))}  p99 {ratio(pct(a[0], .99), pct(b2[0], .99))}")
        b3 = res.get("bird", {}).get(name + " from link")
        if a and b3 and a[0] and b3[0]:
            log(f"RATIO latency {name}, bird from the same link event: p50 {ratio(pct(a[0], .5), pct(b3[0], .5))}  "
                f"p99 {ratio(pct(a[0], .99), pct(b3[0], .99))}")
    return res


def measure_seq(router_log, events, name):
    got = parse_bird_events(router_log, "h1")
    want_kind = {"address added": "added", "route/veth added": "added", "withdraw": "removed"}[name]
    lat, miss = [], 0
    evs = sorted(events)
    for i, (te, pfx, kind) in enumerate(evs):
        if kind != want_kind: continue
        nxt = next((e[0] for e in evs[i + 1:] if e[1] == pfx), float("inf"))
        m = next((ts for ts, k, p in got if p == pfx and ts >= te - 0.0005 and ts < nxt + 0.05
                  and (k == kind or (kind == "added" and k == "replaced"))), None)
        if m is None: miss += 1
        else: lat.append(max(0.0, (m - te) * 1000))
    return lat, miss


# ---------------------------------------------------------------- 4. kernel programming
def cmd_kernel(n):
    h = mkns("kh"); inst = mkns("ki")
    try:
        ip(h, "link", "add", "br0", "type", "bridge"); ip(h, "link", "set", "br0", "up")
        ip(h, "addr", "add", "203.0.113.1/24", "dev", "br0")
        pf = v4_prefixes(n)
        count = lambda: int(sh("sh", "-c", f"ip -n {h} -4 route show proto 201 | wc -l"))
        # reference: ip -batch
        batch = "".join(f"route add {x} via 203.0.113.10 dev br0 proto 201\n" for x in pf)
        t0 = time.time(); sh("ip", "-n", h, "-batch", "-", inp=batch); ref_add = time.time() - t0
        assert count() == n
        t0 = time.time(); sh("ip", "-n", h, "-batch", "-", inp=batch.replace("route add", "route del")); ref_del = time.time() - t0
        assert count() == 0
        # The route check every second, so its cost can be read off the idle CPU time.
        yaml = ("config:\n  core.bgp_address: \"127.0.0.1:1179\"\n  core.bgp_asn: \"65010\"\n  core.bgp_routerid: 198.51.100.1\n"
                f"  hostbgp.route_check_interval: \"{CHECK_PERIOD}\"\n"
                "networks:\n  br0:\n    type: bridge\n    config:\n      ipv4.nat: \"false\"\n      ipv6.nat: \"false\"\n"
                "instances:\n  c1:\n    devices:\n      eth0:\n        type: nic\n        network: br0\n        host_name: vethc1\n"
                f"        ipv4.address: 203.0.113.10\n        ipv4.routes.external: \"{','.join(pf)}\"\n")
        p = start_hostbgp(h, yaml, "hb-kernel")
        time.sleep(2)
        if p.poll() is not None: raise RuntimeError("hostbgp exited:\n" + tail(p.logpath))
        ip(h, "link", "add", "vethc1", "type", "veth", "peer", "name", "eth0", "netns", inst)
        t0 = time.time(); ip(h, "link", "set", "vethc1", "master", "br0", "up")
        wait(f"{n} kernel routes", lambda: count() >= n, 300, 0.05, lambda: f"count={count()}\n{tail(p.logpath)}")
        hb_add = time.time() - t0
        check_ms, dump_ms = route_check_cost(h, p, count)
        t0 = time.time(); ip(h, "link", "del", "vethc1")
        wait("kernel routes removed", lambda: count() == 0, 300, 0.05, lambda: f"count={count()}\n{tail(p.logpath)}")
        hb_del = time.time() - t0
        rss = hwm(p.pid); stop(p, signal.SIGTERM)
        log(f"[kernel] N={n}: hostbgp install {hb_add:.2f}s remove {hb_del:.2f}s (RSS {rss/1e6:.1f} MB); "
            f"ip -batch install {ref_add:.2f}s remove {ref_del:.2f}s")
        log(f"RATIO kernel install {ratio(hb_add, ref_add)}  remove {ratio(hb_del, ref_del)}  (goal <= 1.0; poll step 50 ms)")
        share = check_ms / 1000 / 60 * 100
        log(f"[kernel] route check beside {n} routes: {check_ms:.1f} ms CPU a check (`ip route show proto 201`: {dump_ms:.1f} ms wall); "
            f"{share:.3f}% of a core at the default 60 s period (goal < 5%); RATIO route-check/ip-dump {ratio(check_ms, dump_ms)}")
        return hb_add, hb_del, ref_add, ref_del
    finally:
        drop_ns(inst); drop_ns(h)


# ROUTE_CHECK=0 measures the kernel step without the route check (RSS comparison).
CHECK_PERIOD = int(os.environ.get("ROUTE_CHECK", "1"))
CHECK_WINDOW = 5


def route_check_cost(h, p, count):
    """CPU time hostbgp spends on one periodic route check (its idle CPU over a window
    of checks every CHECK_PERIOD s), and the wall time of `ip route show` of the same
    routes as the reference."""
    if CHECK_PERIOD == 0:
        return 0.0, 0.0
    time.sleep(CHECK_PERIOD)
    c0 = cpu_seconds(p.pid); time.sleep(CHECK_WINDOW); c1 = cpu_seconds(p.pid)
    per_check = (c1 - c0) / (CHECK_WINDOW / CHECK_PERIOD) * 1000
    t0 = time.time(); count(); dump = (time.time() - t0) * 1000
    return per_check, dump


# ---------------------------------------------------------------- 5. restart
def cmd_restart(n):
    t = Topo("s")
    try:
        router = Bird(t.r, "router-gr", router_conf([("h1", H_V6, 65010)], gr=True).replace("protocol bgp h1 {", "protocol bgp h1 { debug { states, events };"), debug_routes=False)
        yaml = hb_ovn_yaml(v4_prefixes(n), [])
        p = start_hostbgp(t.h, yaml, "hb-gr")
        wait("Established", lambda: router.state("h1") == "Established", 60, 0.02, lambda: tail(p.logpath))
        wait(f"{n} prefixes", lambda: router.imported("h1")[0] >= n, 120, 0.05, lambda: tail(p.logpath))
        time.sleep(1)
        before = router.imported("h1")[0]
        # watch for any drop in the router's count while restarting
        stop(p, signal.SIGTERM)
        mark = os.path.getsize(router.log)
        p2 = start_hostbgp(t.h, yaml, "hb-gr")
        t0 = p2.t0
        low = before
        fail = lambda: tail(p2.logpath) + "\n" + tail(router.log)
        te = None
        deadline = t0 + 120
        while time.time() < deadline:
            c = router.imported("h1")[0]; low = min(low, c)
            txt = open(router.log, errors="replace").read()[mark:]
            if te is None and "Established" in router.c("show protocols h1"): te = time.time()
            if re.search(r"h1: .*(graceful restart done|end-of-rib)", txt, re.I):
                break
            time.sleep(0.02)
        else:
            raise RuntimeError("no EoR / graceful restart done\n" + fail())
        t_eor = time.time() - t0
        time.sleep(1)
        after = router.imported("h1")[0]
        gr_lines = [l for l in open(router.log, errors="replace").read()[mark:].splitlines() if re.search("restart|end-of-rib|withdraw|removed", l, re.I)][:6]
        log(f"[restart] N={n}: start -> Established {(te or time.time()) - t0:.2f}s, start -> End-of-RIB/GR done {t_eor:.2f}s; "
            f"router count before {before}, lowest during restart {low}, after {after} (goal: nothing withdrawn: {'met' if low >= before else 'NOT met'})")
        log("  router log: " + " | ".join(gr_lines))
        stop(p2, signal.SIGTERM)
        return t_eor, before, low, after
    finally:
        t.close()


# ---------------------------------------------------------------- 6. scale of peers
class BirdCtl:
    """A persistent connection to a bird control socket (no birdc process per query, so
    polling 50 routers takes milliseconds)."""
    def __init__(self, path):
        import socket
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""
        self.reply()  # greeting "0001 BIRD ... ready."

    def reply(self):
        while not re.search(rb"(^|\n)\d{4} [^\n]*\n", self.buf):
            chunk = self.s.recv(65536)
            if not chunk: raise RuntimeError("bird control socket closed")
            self.buf += chunk
        m = re.search(rb"(^|\n)\d{4} [^\n]*\n", self.buf)
        out, self.buf = self.buf[:m.end()], self.buf[m.end():]
        return out.decode(errors="replace")

    def query(self, cmd):
        self.s.sendall(cmd.encode() + b"\n")
        return self.reply()

    def close(self):
        self.s.close()


def router_progress(ctl, proto):
    """(Established?, IPv4 routes imported, IPv6 routes imported) of one router's session
    `proto`, from `show protocols all`: O(1) for bird."""
    out = ctl.query(f"show protocols all {proto}")
    return (bool(re.search(r"BGP state:\s+Established", out)), *imported_counts(out))


def established_at(log, proto):
    """Epoch time of the last `proto: State changed to up` line in a bird log
    (`debug { states }`, µs timestamps): the session's Established, or None."""
    at = None
    for l in open(log, errors="replace"):
        m = re.match(r"(\S+ \S+) <TRACE> (\S+): State changed to up", l)
        if m and m.group(2) == proto:
            at = bird_log_time(m.group(1))
    return at


def cpu_seconds(pid):
    """CPU time of a process in seconds: its threads' run time from schedstat (ns), so
    that a few hundred events of 0.1 ms each are not lost in 10 ms clock ticks."""
    try:
        return sum(int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
                   for t in os.listdir(f"/proc/{pid}/task")) / 1e9
    except (OSError, ValueError):
        return float("nan")


def peer_addrs(i):
    """Router i's addresses on the shared bridge (IPv4 for next-hop resolution, IPv6 session)."""
    return f"198.51.100.{100 + i}", f"2001:db8:ff::{0x100 + i:x}"


class PeersTopo:
    """Host H with bridge br0 (198.51.100.1, 2001:db8:ff::2) and `count` router namespaces,
    each running its own bird2 (AS 65000) on a veth enslaved to br0."""
    def __init__(self, tag, count):
        assert count <= 150, "router addresses are 198.51.100.100-249"
        self.h = mkns(tag + "h")
        ip(self.h, "link", "add", "br0", "type", "bridge")
        ip(self.h, "addr", "add", H_V4 + "/24", "dev", "br0")
        ip(self.h, "addr", "add", H_V6 + "/64", "dev", "br0")
        ip(self.h, "link", "set", "br0", "up")
        self.routers = []
        for i in range(count):
            r = mkns(f"{tag}r{i}")
            sh("ip", "-n", r, "link", "add", "vr", "type", "veth", "peer", "name", f"p{i}", "netns", self.h)
            a4, a6 = peer_addrs(i)
            ip(r, "addr", "add", a4 + "/24", "dev", "vr")
            ip(r, "addr", "add", a6 + "/64", "dev", "vr")
            ip(r, "link", "set", "vr", "up")
            ip(self.h, "link", "set", f"p{i}", "master", "br0", "up")
            self.routers.append(r)

    def start_routers(self, label):
        self.birds = [Bird(r, f"router-{label}-{i}", router_conf([("h1", H_V6, 65010)], rid=peer_addrs(i)[0]))
                      for i, r in enumerate(self.routers)]
        self.ctls = [BirdCtl(b.sock) for b in self.birds]

    def close(self):
        for c in getattr(self, "ctls", []): c.close()
        for r in self.routers: drop_ns(r)
        drop_ns(self.h)


def peers_speaker_hostbgp(t, n):
    peers = [(f"r{i}", peer_addrs(i)[1]) for i in range(len(t.routers))]
    p = start_hostbgp(t.h, hb_ovn_yaml(v4_prefixes(n), [], peers), "hb-peers")
    return p, p.t0, p.logpath


def peers_speaker_bird(t, n):
    body = (f"router id {H_V4};\nprotocol static s4 {{ ipv4;\n" + "".join(f"route {x} blackhole;\n" for x in v4_prefixes(n)) + "}\n")
    for i in range(len(t.routers)):
        body += (f"protocol bgp r{i} {{ local as 65010; neighbor {peer_addrs(i)[1]} as 65000; connect delay time 0; "
                 f"ipv4 {{ import none; export all; next hop address {OVN_V4}; }}; ipv6 {{ import none; export none; }}; }}\n")
    conf = f"{DIR}/spk-peers.conf"
    with open(conf, "w") as f:
        f.write(f'log "{DIR}/spk-peers.log" all;\nprotocol device {{ }}\n' + body)
    t0 = time.time()
    p = spawn(t.h, ["bird", "-f", "-c", conf, "-s", f"{DIR}/spk-peers.ctl"], f"{DIR}/spk-peers.out")
    return p, t0, f"{DIR}/spk-peers.log"


def peers_run(label, count, n, start_speaker):
    """Start `count` routers, then the speaker; poll every router until all hold n IPv4
    routes. Returns times from the speaker's start, its CPU seconds and VmHWM."""
    t = PeersTopo("p", count)
    try:
        t.start_routers(label)
        proc, t0, logf = start_speaker(t, n)
        est, full99, full = [None] * count, [None] * count, [None] * count
        deadline = t0 + 600
        while None in full:
            if time.time() > deadline or proc.poll() is not None:
                slow = [i for i in range(count) if full[i] is None]
                raise RuntimeError(f"{label}: {len(slow)} routers short of {n} (e.g. r{slow[0]}: "
                                   f"{router_progress(t.ctls[slow[0]], 'h1')}, state {t.birds[slow[0]].state('h1')})\n{tail(logf)}")
            for i in range(count):
                if full[i] is not None: continue
                up, got, _ = router_progress(t.ctls[i], "h1")
                now = time.time()
                if up and est[i] is None: est[i] = now
                if got >= 0.99 * n and full99[i] is None: full99[i] = now
                if got >= n: full[i] = now
            time.sleep(0.01)
        cpu_full, rss = cpu_seconds(proc.pid), hwm(proc.pid)
        time.sleep(2)
        cpu_settled = cpu_seconds(proc.pid)
        est = [e or f for e, f in zip(est, full)]  # a router polled first when already full
        return dict(label=label, est_all=max(est) - t0, full99_all=max(full99) - t0, full_first=min(full) - t0,
                    full_median=statistics.median(full) - t0, full_all=max(full) - t0,
                    after_est=max(full) - max(est), cpu=cpu_full, cpu_settled=cpu_settled, rss=rss)
    finally:
        t.close()


def fmt_peers(r):
    return (f"{r['label']:<8} start -> all Established {r['est_all']:6.2f}s; all hold 99% {r['full99_all']:6.2f}s; all hold N {r['full_all']:6.2f}s "
            f"(first {r['full_first']:.2f}s, median {r['full_median']:.2f}s; last Established -> all full {r['after_est']:.2f}s); "
            f"CPU {r['cpu']:.2f}s (+2 s idle: {r['cpu_settled']:.2f}s); VmHWM {r['rss']/1e6:.1f} MB")


def cmd_peers(count, n):
    res = {}
    for label, spk in (("hostbgp", peers_speaker_hostbgp), ("bird", peers_speaker_bird)):
        log(f"[peers] {label}: {count} routers (one bird2 each) x {n} IPv4 prefixes ...")
        try:
            res[label] = peers_run(label, count, n, spk)
            log("  " + fmt_peers(res[label]))
        except Exception as e:
            log(f"  FAILED: {e}")
    hb, bd = res.get("hostbgp"), res.get("bird")
    if hb and bd:
        log(f"RATIO peers hostbgp/bird {count}x{n}: all Established {ratio(hb['est_all'], bd['est_all'])}  "
            f"convergence {ratio(hb['full_all'], bd['full_all'])}  vs bird's 99% {ratio(hb['full_all'], bd['full99_all'])}  CPU {ratio(hb['cpu'], bd['cpu'])}  RSS {ratio(hb['rss'], bd['rss'])}")
    return res


# ---------------------------------------------------------------- bfd (issue 18)
def bfd_router_conf(i, ms, hold):
    """Router i: bird2 with BFD at `ms` x 3 towards the host, BGP hold time `hold`."""
    return (f"router id {peer_addrs(i)[0]};\n"
            f"protocol bfd {{ interface \"*\" {{ min rx interval {ms} ms; min tx interval {ms} ms; multiplier 3; }}; }}\n"
            f"protocol bgp h1 {{ local as 65000; neighbor {H_V4} as 65010; connect delay time 1; connect retry time 1; "
            f"error wait time 1, 2; hold time {hold}; startup hold time {hold}; keepalive time {hold // 3}; bfd on; "
            "ipv4 { import all; export none; }; ipv6 { import all; export none; }; }\n")


def bfd_hb_yaml(count, ms, hold):
    """The host's bridge br0 (its subnets advertised) declaring `count` peers with BFD."""
    s = ("config:\n  core.bgp_asn: \"65010\"\n  core.bgp_address: \"0.0.0.0:179\"\n  core.bgp_routerid: 198.51.100.1\n"
         "networks:\n  br0:\n    type: bridge\n    config:\n      ipv4.nat: \"false\"\n      ipv6.nat: \"false\"\n")
    for i in range(count):
        s += (f"      bgp.peers.r{i}.address: \"{peer_addrs(i)[0]}\"\n      bgp.peers.r{i}.asn: \"65000\"\n"
              f"      bgp.peers.r{i}.bfd: \"true\"\n      bgp.peers.r{i}.bfd.min_interval: \"{ms}\"\n"
              f"      bgp.peers.r{i}.holdtime: \"{hold}\"\n")
    return s


def hb_status(ns, sock):
    import json
    out = sh("ip", "netns", "exec", ns, BIN, "status", "--json", "--socket", sock, check=False)
    try:
        return json.loads(out)
    except ValueError:
        return {}


def nft_blackhole(ns, on):
    """Drops everything in and out of the router's only link (carrier stays up): the
    host and the router stop hearing each other, BFD and BGP alike. One `nft -f`
    transaction, so the drop starts at one moment, just before this returns."""
    if on:
        rules = f"{DIR}/blackhole.nft"
        with open(rules, "w") as f:
            f.write("table inet bh {\n"
                    "  chain in { type filter hook input priority 0; iifname \"vr\" drop; }\n"
                    "  chain out { type filter hook output priority 0; oifname \"vr\" drop; }\n}\n")
        sh("ip", "netns", "exec", ns, "nft", "-f", rules)
    else:
        sh("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "bh")


def hb_bfd_down_at(logpath, address, since):
    """Epoch time of hostbgp's first `BFD session down` log line for `address` after
    `since` (the fmt layer's RFC 3339 UTC timestamps), or None."""
    import datetime
    for l in open(logpath, errors="replace"):
        if "BFD session down" not in l or f"peer={address}" not in l:
            continue
        try:
            at = datetime.datetime.strptime(l.split()[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            continue
        if at >= since:
            return at
    return None


def cmd_bfd(count, ms, secs, trials):
    """hostbgp's CPU with `count` BFD peers at `ms` x 3 over `secs` (goal < 1% of a core),
    and the time from a blackhole to the router's withdrawal against the negotiated
    detection time (goal <= 1.2x), over `trials` blackholes on different routers."""
    hold = 240  # only BFD can explain a withdrawal within seconds
    if not shutil.which("nft"):
        raise RuntimeError("missing nft: apt-get install -y nftables")
    t = PeersTopo("b", count)
    try:
        t.birds = [Bird(r, f"router-bfd-{i}", bfd_router_conf(i, ms, hold)) for i, r in enumerate(t.routers)]
        t.ctls = [BirdCtl(b.sock) for b in t.birds]
        sock = f"{DIR}/hb-bfd.sock"
        proc = start_hostbgp(t.h, bfd_hb_yaml(count, ms, hold), "hb-bfd")

        def all_up():
            peers = hb_status(t.h, sock).get("peers", [])
            return (len(peers) == count and all(p.get("state") == "Established" and (p.get("bfd") or {}).get("state") == "Up"
                                                 for p in peers)
                    and all(router_progress(c, "h1")[0] and router_progress(c, "h1")[1] > 0 for c in t.ctls))
        wait(f"{count} sessions Established with BFD Up", all_up, timeout=120, step=0.2, on_fail=lambda: tail(proc.logpath))
        detect = {p["name"]: p["bfd"]["detection_time_ms"] for p in hb_status(t.h, sock)["peers"]}
        c0, w0 = cpu_seconds(proc.pid), time.time()
        time.sleep(secs)
        cpu, wall = cpu_seconds(proc.pid) - c0, time.time() - w0
        share = cpu / wall
        log(f"  {count} peers, BFD {ms} ms x 3, hold {hold} s: hostbgp CPU {cpu * 1000:.0f} ms over {wall:.1f} s = "
            f"{share * 100:.3f}% of a core ({(count * 1000 / ms) * 2 * wall:.0f} BFD packets sent and received)")
        ratios, own = [], []
        for k in range(trials):
            i = k % count
            ctl, ns = t.ctls[i], t.routers[i]
            # Start at a random point of the BFD interval, as a real failure would.
            time.sleep(0.05 + (k * 0.037) % (ms / 1000))
            nft_blackhole(ns, True)
            # The rules are in force once `nft -f` has committed them: from here.
            t0 = time.time()
            gone = wait(f"router {i} withdraws our routes", lambda: router_progress(ctl, "h1")[1] == 0, timeout=30, step=0.002)
            took = (gone - t0) * 1000
            ratios.append(took / detect[f"r{i}"])
            ours = wait(f"hostbgp's BFD down for r{i}", lambda: hb_bfd_down_at(proc.logpath, peer_addrs(i)[0], t0),
                        timeout=30, step=0.05)
            ours = (hb_bfd_down_at(proc.logpath, peer_addrs(i)[0], t0) - t0) * 1000
            own.append(ours / detect[f"r{i}"])
            log(f"  blackhole r{i}: withdrawn by the router after {took:.0f} ms; negotiated detection {detect[f'r{i}']} ms "
                f"-> {ratios[-1]:.2f}x (hostbgp's own BFD down after {ours:.0f} ms: {own[-1]:.2f}x)")
            nft_blackhole(ns, False)
            wait(f"router {i} back", lambda: router_progress(ctl, "h1")[1] > 0, timeout=60, step=0.05)
        log(f"RATIO bfd hostbgp CPU/core {count} peers at {ms} ms x 3: {share * 100:.3f}% (goal < 1%)  "
            f"withdrawal/detection time: median {statistics.median(ratios):.2f}x max {max(ratios):.2f}x "
            f"over {trials} blackholes (goal <= 1.2x); hostbgp's own detection median {statistics.median(own):.2f}x "
            f"max {max(own):.2f}x")
        return dict(cpu_share=share, ratios=ratios, own=own)
    finally:
        for c in getattr(t, "ctls", []): c.close()
        t.close()


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (network namespaces)")
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} missing: cargo build --release")
    n = int(os.environ.get("N", 100000))
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    log(f"# hostbgp bench: {what} N={n} nproc={os.cpu_count()} kernel={os.uname().release} "
        f"bird={sh('bird', '--version', check=False).strip() or subprocess.run(['bird', '--version'], capture_output=True, text=True).stderr.strip()}")
    steps = {"bulk": lambda: cmd_bulk(n), "memory": lambda: cmd_memory(n),
             "latency": lambda: cmd_latency(int(os.environ.get("EVENTS", 200))),
             "kernel": lambda: cmd_kernel(n), "restart": lambda: cmd_restart(n),
             "peers": lambda: cmd_peers(int(os.environ.get("PEERS", 50)), int(os.environ.get("PEER_N", 10000))),
             "bfd": lambda: cmd_bfd(int(os.environ.get("BFD_PEERS", 10)), int(os.environ.get("BFD_MS", 100)),
                                    float(os.environ.get("BFD_SECS", 30)), int(os.environ.get("BFD_TRIALS", 10)))}
    todo = list(steps) if what == "all" else [what]
    # CI runs every step at tiny sizes only to prove the scripts work: say so, so its
    # figures are never read as measurements.
    smoke = "# SMOKE RUN (BENCH_SMOKE): tiny sizes; the figures below are not measurements" \
        if os.environ.get("BENCH_SMOKE") else None
    if smoke: log(smoke)
    rc = 0
    for s in todo:
        if s not in steps: sys.exit(f"unknown subcommand {s}: all|{'|'.join(steps)}")
        t = time.time()
        try:
            steps[s]()
        except Exception as e:
            log(f"[{s}] FAILED: {e}"); rc = 1
        log(f"[{s}] took {time.time() - t:.0f}s")
    if smoke: log(smoke.replace("below", "above"))
    sys.exit(rc)


if __name__ == "__main__":
    main()
