#!/usr/bin/env python3
"""`run.sh lxd`: the same instance start / stop / bridge-address cycles against LXD
5.0.2's own BGP speaker and against hostbgp following the same LXD, in one run.

Each time runs from the `lxc` command to the router's table (bird's `debug routes`
log); p50/p90 per step and the ratio hostbgp/LXD are printed, and how often the
unchanged IPv6 subnet was announced again during the address changes.

LXD runs inside the host namespace only (ip netns exec + unshare --pid --mount-proc,
LXD_DIR in the bench's temp dir), as netns-tests/lxd.rs does; it is stopped and its
directory removed at exit. Env: LXD_CYCLES (default 20).
"""
import atexit, os, shutil, signal, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (namespaces, bird, helpers; its cleanup runs at exit)
from bench import DIR, H_V4, H_V6, R_V4, R_V6, Bird, Topo, log, parse_bird_events, pct, router_conf, sh, spawn, stop, wait

# PID 1 of LXD's PID namespace (shared with netns-tests/lxd.rs): mounts the cgroups,
# runs LXD again each time it exits until the stop file exists.
LAUNCHER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lxd-launcher.sh")

IMAGE = r"""set -e
d=$(mktemp -d); r=$d/rootfs; mkdir -p "$r"/bin "$r"/sbin "$r"/etc/udhcpc "$r"/proc "$r"/sys "$r"/dev "$r"/tmp "$r"/run "$r"/root "$r"/var/log
cp "$(command -v busybox)" "$r/bin/"; for a in $("$r/bin/busybox" --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$r/etc/passwd"; echo 'root:x:0:' >"$r/etc/group"
cat >"$r/sbin/init" <<'S'
#!/bin/sh
trap 'exit 0' PWR TERM INT
mount -t proc proc /proc 2>/dev/null; ip link set lo up
while true; do sleep 3600 & wait $!; done
S
chmod 755 "$r/sbin/init"
printf 'architecture: %s\ncreation_date: %s\nproperties:\n  os: busybox\n  release: "1"\n' "$(uname -m)" "$(date +%s)" >"$d/metadata.yaml"
tar -C "$d" -czf "$1" metadata.yaml rootfs; rm -rf "$d"
"""

PRESEED = """config: {core.bgp_asn: "65010", core.bgp_routerid: 198.51.100.1}
storage_pools: [{name: default, driver: dir}]
networks: [{name: lxdbr0, type: bridge, config: {ipv4.address: 203.0.113.1/24, ipv4.nat: "false",
  ipv6.address: 2001:db8:100::1/64, ipv6.nat: "false", bgp.peers.r4.address: "%s", bgp.peers.r4.asn: "65000",
  bgp.peers.r6.address: "%s", bgp.peers.r6.asn: "65000"}}]
profiles: [{name: default, devices: {root: {path: /, pool: default, type: disk}}}]
""" % (R_V4, R_V6)

EXT = "203.0.113.64/28"
V6_NET = "2001:db8:100::/64"


def cgroup_list():
    out = []
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        if "-" not in f:
            continue
        i = f.index("-")
        fs, so, mp = f[i + 1], f[i + 3], f[4]
        if fs in ("cgroup", "cgroup2") and mp.startswith("/sys/fs/cgroup"):
            out.append(f"{mp} {fs} {so}")
    return "\n".join(out) + "\n"


class Lxd:
    def __init__(self, ns):
        self.dir, self.conf = f"{DIR}/lxd", f"{DIR}/lxc-conf"
        self.stopfile = f"{DIR}/lxd.stop"
        os.makedirs(self.dir, exist_ok=True)
        # The container's root (a mapped uid) must be able to traverse to its rootfs.
        os.chmod(DIR, 0o711)
        with open(f"{DIR}/cg.list", "w") as f:
            f.write(cgroup_list())
        self.env = dict(os.environ, LXD_DIR=self.dir, LXD_CONF=self.conf)
        self.p = spawn(ns, ["unshare", "--pid", "--fork", "--mount-proc", "sh", LAUNCHER,
                            f"{DIR}/cg.list", self.stopfile, "env", f"LXD_DIR={self.dir}",
                            "lxd", "--group", "root", "--logfile", f"{DIR}/lxd.log"], f"{DIR}/lxd.out")
        atexit.register(self.close)  # runs before bench's cleanup (registered earlier)
        self.ready()

    def run(self, *args, inp=None):
        r = subprocess.run(args, input=inp, capture_output=True, text=True, env=self.env)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def lxc(self, *args):
        try:
            return self.run("lxc", *args)
        except RuntimeError:
            if args[:1] == ("start",):
                r = subprocess.run(["lxc", "info", "--show-log", args[1]], capture_output=True, text=True, env=self.env)
                log(r.stdout[-3000:])
            raise

    def ready(self):
        self.run("lxd", "waitready", "--timeout", "80")

    def daemon_pid(self):
        frontier = [self.p.pid]
        for _ in range(6):
            nxt = []
            for pid in frontier:
                try:
                    kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
                except OSError:
                    kids = []
                for k in kids:
                    if open(f"/proc/{k}/comm").read().strip() == "lxd":
                        return int(k)
                    nxt.append(k)
            frontier = nxt
        raise RuntimeError("no LXD daemon")

    def restart(self):
        """SIGTERM (a service restart: instances keep running); the launcher restarts it."""
        pid = self.daemon_pid()
        os.kill(pid, signal.SIGTERM)
        wait("old LXD gone", lambda: not os.path.exists(f"/proc/{pid}") or " Z " in open(f"/proc/{pid}/stat").read(), 30)
        time.sleep(0.3)
        self.ready()

    def close(self):
        open(self.stopfile, "w").close()
        subprocess.run(["timeout", "30", "lxd", "shutdown"], env=self.env, capture_output=True)
        pids, frontier = [], [self.p.pid]
        for _ in range(3):
            nxt = []
            for pid in frontier:
                pids.append(int(pid))
                try:
                    nxt += open(f"/proc/{pid}/task/{pid}/children").read().split()
                except OSError:
                    pass
            frontier = nxt
        for pid in reversed(pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        stop(self.p)
        shutil.rmtree(self.dir, ignore_errors=True)
        lock = "/run/lxc/lock" + self.dir
        shutil.rmtree(lock, ignore_errors=True)
        d = os.path.dirname(lock)
        while d != "/run/lxc/lock":
            try:
                os.rmdir(d)
            except OSError:
                break
            d = os.path.dirname(d)
        for line in cgroup_list().splitlines():
            try:
                os.rmdir(os.path.join(line.split()[0], "lxc.pivot"))
            except OSError:
                pass


def timed_events(router_log, proto, t0, prefix, kind, timeout=30):
    """Seconds from t0 to bird's log line for `prefix` being `kind` (added/removed)."""
    found = []

    def seen():
        for ts, k, p in parse_bird_events(router_log, proto):
            if p == prefix and ts >= t0 - 0.001 and (k == kind or (kind == "added" and k == "replaced")):
                found.append(ts)
                return True
        return False
    wait(f"{prefix} {kind} at the router", seen, timeout, step=0.01)
    return found[0] - t0


class KernelMonitor:
    """`ip monitor link address` in the host namespace, each line stamped on arrival:
    when LXD's own work reached the kernel, the floor of any speaker that follows the
    kernel."""

    def __init__(self, ns):
        self.lines = []
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "ip", "monitor", "link", "address"],
                                     stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        atexit.register(self.close)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append((time.time(), line))

    def first(self, t0, pred, timeout=5):
        """Seconds from t0 to the first line after it matching pred (None if none)."""
        end = time.time() + timeout
        while time.time() < end:
            for ts, line in list(self.lines):
                if ts >= t0 and pred(line):
                    return ts - t0
            time.sleep(0.005)
        return None

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()


def cycles(lxd, router, n, monitor=None):
    """n start/stop/address cycles; returns {step: [ms]}, the IPv6 re-announce count,
    and {step: [ms]} from the command to the kernel event (with a monitor)."""
    res = {"start": [], "stop": [], "address": []}
    floor = {"start": [], "stop": [], "address": []}

    def kernel(step, t, pred):
        if monitor is not None:
            d = monitor.first(t, pred)
            if d is not None:
                floor[step].append(d * 1000)
    v6_before = len([e for e in parse_bird_events(router.log, "h6") if e[2] == V6_NET])
    masks = ["25", "24"]
    for i in range(n):
        t = time.time(); lxd.lxc("start", "c1")
        res["start"].append(timed_events(router.log, "h1", t, EXT, "added") * 1000)
        kernel("start", t, lambda l: "master lxdbr0" in l and "veth" in l and not l.startswith("Deleted"))
        # The container's init must have set its SIGPWR trap, or a clean stop waits forever.
        time.sleep(0.5)
        t = time.time(); lxd.lxc("stop", "c1", "--timeout", "20")
        res["stop"].append(timed_events(router.log, "h1", t, EXT, "removed") * 1000)
        kernel("stop", t, lambda l: l.startswith("Deleted") and "veth" in l)
        m = masks[i % 2]
        t = time.time(); lxd.lxc("network", "set", "lxdbr0", f"ipv4.address=203.0.113.1/{m}")
        res["address"].append(timed_events(router.log, "h1", t, f"203.0.113.0/{m}", "added") * 1000)
        kernel("address", t, lambda l, m=m: f"inet 203.0.113.1/{m}" in l and not l.startswith("Deleted"))
    if n % 2:
        lxd.lxc("network", "set", "lxdbr0", "ipv4.address=203.0.113.1/24")
    time.sleep(0.5)
    v6_after = len([e for e in parse_bird_events(router.log, "h6") if e[2] == V6_NET])
    return res, v6_after - v6_before, floor


def wait_established(router):
    """Both sessions: IPv4 prefixes are timed on the IPv4 one (h1), because LXD 5.0.2
    sends them with an IPv6 next hop over an IPv6 session (bird refuses those), and
    the IPv6 subnet's re-announces are counted on the IPv6 one (h6)."""
    for p in ("h1", "h6"):
        wait(f"session {p} Established", lambda: router.state(p) == "Established", 60, step=0.05,
             on_fail=lambda: router.c(f"show protocols all {p}"))


def cmd_lxd(n):
    for b in ("lxd", "lxc", "busybox"):
        if not shutil.which(b):
            sys.exit(f"missing {b}: apt-get install --no-install-recommends lxd lxd-client dnsmasq-base busybox-static nftables")
    t = Topo("x")
    router = Bird(t.r, "router", router_conf([("h1", H_V4, 65010), ("h6", H_V6, 65010)]), debug_routes=True)
    lxd = Lxd(t.h)
    lxd.run("lxd", "init", "--preseed", inp=PRESEED)
    sh("sh", "-c", IMAGE, "image", f"{DIR}/busybox.tar.gz")
    lxd.lxc("image", "import", f"{DIR}/busybox.tar.gz", "--alias", "busybox")
    lxd.lxc("init", "busybox", "c1")
    lxd.lxc("config", "device", "add", "c1", "eth0", "nic", "network=lxdbr0",
            "ipv4.address=203.0.113.11", f"ipv4.routes.external={EXT}")

    # LXD's own speaker: 5.0.2 needs a restart after core.bgp_address is set.
    lxd.lxc("config", "set", "core.bgp_address", "[::]:179")
    lxd.restart()
    wait_established(router)
    log(f"[lxd] LXD 5.0.2's speaker: {n} cycles")
    theirs, theirs_v6, _ = cycles(lxd, router, n)

    # Hand over: unset, restart LXD, start hostbgp following it.
    lxd.lxc("config", "unset", "core.bgp_address")
    lxd.restart()
    wait("LXD's sessions down", lambda: router.state("h1") != "Established", 30, step=0.05)
    with open(f"{DIR}/hostbgp-lxd.yaml", "w") as f:
        f.write(f"lxd: {{socket: {lxd.dir}/unix.socket}}\nconfig:\n  core.bgp_address: \"[::]:179\"\n")
    hb = spawn(t.h, [bench.BIN, "run", "--config", f"{DIR}/hostbgp-lxd.yaml", "--socket", f"{DIR}/hostbgp-lxd.sock"],
               f"{DIR}/hostbgp-lxd.log", env=dict(os.environ, RUST_LOG="info"))
    wait_established(router)
    log(f"[lxd] hostbgp following LXD: {n} cycles")
    ours, ours_v6, floor = cycles(lxd, router, n, KernelMonitor(t.h))
    stop(hb, signal.SIGTERM)

    log(f"[lxd] {'step':<8} {'LXD p50/p90 ms':>18} {'hostbgp p50/p90 ms':>20} {'ratio p50':>10}")
    for step in ("start", "stop", "address"):
        a, b = theirs[step], ours[step]
        log(f"[lxd] {step:<8} {pct(a, .5):8.1f} /{pct(a, .9):7.1f} {pct(b, .5):10.1f} /{pct(b, .9):7.1f} "
            f"{pct(b, .5) / pct(a, .5):10.3f}x")
    log(f"[lxd] unchanged IPv6 subnet {V6_NET} announced again during the cycles: LXD {theirs_v6}, hostbgp {ours_v6}")
    # The floor: from the command to the kernel event a kernel-following speaker acts
    # on (a start's veth enslaved, a stop's veth deleted, the new address), all LXD's.
    for step in ("start", "stop", "address"):
        f, a = floor[step], theirs[step]
        if f:
            log(f"[lxd] floor {step:<8} command -> kernel event p50 {pct(f, .5):7.1f} ms = {pct(f, .5) / pct(a, .5):.3f}x LXD's p50 "
                f"(hostbgp after the kernel event: {pct(ours[step], .5) - pct(f, .5):.1f} ms)")


def main():
    if os.geteuid() != 0:
        sys.exit("run as root (network namespaces)")
    if not os.path.exists(bench.BIN):
        sys.exit(f"{bench.BIN} missing: cargo build --release")
    cmd_lxd(int(os.environ.get("LXD_CYCLES", 20)))


if __name__ == "__main__":
    main()
