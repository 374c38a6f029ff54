//! Issue 19 acceptance: hostbgp following a real LXD 5.0.2 over its unix socket.
//!
//! Each test starts its own LXD inside the host namespace of a router + host lab, as
//! `shared/reference/lxd-api.md` shows: `ip netns exec HOST unshare --pid --fork
//! --mount-proc` with the cgroup mounts re-made inside, `LXD_DIR` in the lab's temp
//! dir. [`Lxd`]'s Drop stops it, kills its PID namespace and removes its directory
//! and what liblxc leaves on the host (`/run/lxc/lock/LXD_DIR`, empty `lxc.pivot`
//! cgroups), also when the test fails. The `lxc` client runs beside the test (it
//! only talks to the socket file); nothing is added to the root namespace.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::bird::{tail, Bird, BirdPeer};
use crate::hostbgp::Hostbgp;
use crate::lab::{self, run_cmd, wait_until, wait_until_state, Lab, Topo, TIMEOUT};
use crate::speaker::bridge_config_yaml;

const INSTALL: &str =
    "apt-get install --no-install-recommends lxd lxd-client dnsmasq-base busybox-static nftables";

/// Whether LXD tests can run here; prints why not.
fn lxd_available(test: &str) -> bool {
    lab::require_tools(test, &["lxd", "lxc", "dnsmasq", "busybox", "bird"], INSTALL)
}

/// The cgroup mounts to make again inside `ip netns exec` (which hides them).
fn cgroup_list() -> String {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = String::new();
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(mp), Some(fs), Some(so)) =
            (fields.get(4), fields.get(dash + 1), fields.get(dash + 3))
        else {
            continue;
        };
        if (*fs == "cgroup" || *fs == "cgroup2") && mp.starts_with("/sys/fs/cgroup") {
            out.push_str(&format!("{mp} {fs} {so}\n"));
        }
    }
    out
}

/// PID 1 of LXD's PID namespace: mounts the cgroups, then runs LXD again each time it
/// exits (a service restart) until `stop` exists (shared with scripts/bench/lxd.py).
const LAUNCHER: &str = include_str!("../scripts/lxd-launcher.sh");

/// A busybox image whose init takes its address by DHCP (Debian's busybox reads
/// /etc/udhcpc/default.script).
const IMAGE: &str = r#"set -e
d=$(mktemp -d); r=$d/rootfs; mkdir -p "$r"/bin "$r"/sbin "$r"/etc/udhcpc "$r"/proc "$r"/sys "$r"/dev "$r"/tmp "$r"/run "$r"/root "$r"/var/log
cp "$(command -v busybox)" "$r/bin/"; for a in $("$r/bin/busybox" --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$r/etc/passwd"; echo 'root:x:0:' >"$r/etc/group"
cat >"$r/etc/udhcpc/default.script" <<'S'
#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface" ;;
  bound|renew) ip -4 addr flush dev "$interface"; ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface" ;;
esac
S
cat >"$r/sbin/init" <<'S'
#!/bin/sh
trap 'exit 0' PWR TERM INT
mount -t proc proc /proc 2>/dev/null; ip link set lo up
ip link set eth0 up 2>/dev/null && udhcpc -i eth0 -s /etc/udhcpc/default.script -q -n -t 20 -T 1 >/dev/null 2>&1 &
while true; do sleep 3600 & wait $!; done
S
chmod 755 "$r/sbin/init" "$r/etc/udhcpc/default.script"
printf 'architecture: %s\ncreation_date: %s\nproperties:\n  os: busybox\n  release: "1"\n' "$(uname -m)" "$(date +%s)" >"$d/metadata.yaml"
tar -C "$d" -czf "$1" metadata.yaml rootfs; rm -rf "$d"
"#;

/// A running LXD inside namespace `ns`.
pub struct Lxd {
    pub dir: PathBuf,
    conf: PathBuf,
    log: PathBuf,
    stop: PathBuf,
    launcher: Option<Child>,
}

impl Lxd {
    /// Starts LXD in `ns` and waits until it answers.
    pub fn start(l: &Lab, ns: &str) -> Lxd {
        let dir = l.path("lxd");
        fs::create_dir_all(&dir).expect("LXD_DIR");
        let list = l.path("cg.list");
        fs::write(&list, cgroup_list()).expect("cg.list");
        let script = l.path("launch.sh");
        fs::write(&script, LAUNCHER).expect("launch.sh");
        let log = l.path("lxd.log");
        let stop = l.path("lxd.stop");
        let launcher = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "unshare",
                "--pid",
                "--fork",
                "--mount-proc",
            ])
            .arg("sh")
            .arg(&script)
            .arg(&list)
            .arg(&stop)
            .args(["env", &format!("LXD_DIR={}", dir.display())])
            .args(["lxd", "--group", "root", "--logfile"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start LXD");
        let lxd = Lxd {
            conf: l.path("lxc-conf"),
            dir,
            log,
            stop,
            launcher: Some(launcher),
        };
        lxd.waitready();
        lxd
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("unix.socket")
    }

    fn env(&self, c: &mut Command) {
        c.env("LXD_DIR", &self.dir).env("LXD_CONF", &self.conf);
    }

    pub fn waitready(&self) {
        let mut c = Command::new("lxd");
        c.args(["waitready", "--timeout", "80"]);
        self.env(&mut c);
        if let Err(e) = run_cmd(&mut c) {
            panic!("LXD did not start: {e}\n{}", tail(&self.log, 30));
        }
    }

    /// `lxc ARGS`, Err with the output.
    pub fn try_lxc(&self, args: &[&str]) -> Result<String, String> {
        let mut c = Command::new("lxc");
        c.args(args);
        self.env(&mut c);
        run_cmd(&mut c)
    }

    pub fn lxc(&self, args: &[&str]) -> String {
        self.try_lxc(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `lxd init --preseed` with `yaml`.
    pub fn preseed(&self, yaml: &str) {
        let mut c = Command::new("lxd");
        c.args(["init", "--preseed"]);
        self.env(&mut c);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lxd init");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(yaml.as_bytes()).expect("preseed");
        }
        let out = child.wait_with_output().expect("lxd init");
        assert!(
            out.status.success(),
            "lxd init --preseed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Builds the busybox image and imports it as `busybox`.
    pub fn import_busybox(&self, l: &Lab) {
        let tarball = l.path("busybox.tar.gz");
        let mut c = Command::new("sh");
        c.args(["-c", IMAGE, "image"]).arg(&tarball);
        run_cmd(&mut c).unwrap_or_else(|e| panic!("{e}"));
        self.lxc(&[
            "image",
            "import",
            &tarball.to_string_lossy(),
            "--alias",
            "busybox",
        ]);
    }

    /// The PID of the daemon (the launcher's child), in the host's view.
    fn daemon_pid(&self) -> Option<i32> {
        let launcher = self.launcher.as_ref()?.id();
        // ip netns exec -> unshare -> (fork) sh launcher -> lxd
        let children = |pid: u32| -> Vec<u32> {
            fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        };
        let mut frontier = vec![launcher];
        for _ in 0..6 {
            let mut next = Vec::new();
            for pid in frontier {
                for child in children(pid) {
                    let comm =
                        fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
                    if comm.trim() == "lxd" {
                        return i32::try_from(child).ok();
                    }
                    next.push(child);
                }
            }
            frontier = next;
        }
        None
    }

    /// SIGTERM to the daemon (a service restart: instances keep running); the
    /// launcher starts it again.
    pub fn restart(&self) {
        let pid = self.daemon_pid().expect("LXD daemon pid");
        lab::signal_pid(pid, Signal::SIGTERM).unwrap_or_else(|e| panic!("{e}"));
        wait_until("the old LXD daemon exits", TIMEOUT, || {
            !Path::new(&format!("/proc/{pid}")).exists()
                || fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
        });
    }
}

impl Drop for Lxd {
    fn drop(&mut self) {
        let _ = fs::write(&self.stop, b"");
        let mut c = Command::new("timeout");
        c.args(["30", "lxd", "shutdown"]);
        self.env(&mut c);
        let _ = c.stdout(Stdio::null()).stderr(Stdio::null()).status();
        if let Some(mut launcher) = self.launcher.take() {
            // ip netns exec and unshare pass SIGKILL on to nothing: kill the
            // namespace's PID 1 (the launcher shell) too, which ends everything in it.
            let mut pids = Vec::new();
            let mut frontier = vec![launcher.id()];
            for _ in 0..3 {
                let mut next = Vec::new();
                for pid in frontier {
                    pids.push(pid);
                    next.extend(
                        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                            .unwrap_or_default()
                            .split_whitespace()
                            .filter_map(|p| p.parse::<u32>().ok()),
                    );
                }
                frontier = next;
            }
            for pid in pids.iter().rev() {
                if let Ok(p) = i32::try_from(*pid) {
                    let _ = lab::signal_pid(p, Signal::SIGKILL);
                }
            }
            let _ = launcher.kill();
            let _ = launcher.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- last 30 lines of the LXD log ----\n{}\n---- end ----",
                tail(&self.log, 30)
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
        let lock = PathBuf::from(format!("/run/lxc/lock{}", self.dir.display()));
        let _ = fs::remove_dir_all(&lock);
        // The lab dir's own path below it, where empty (another LXD may use the rest).
        for dir in lock.ancestors().skip(1) {
            if dir == Path::new("/run/lxc/lock") || fs::remove_dir(dir).is_err() {
                break;
            }
        }
        for line in cgroup_list().lines() {
            let Some(mp) = line.split(' ').next() else {
                continue;
            };
            let _ = fs::remove_dir(Path::new(mp).join("lxc.pivot"));
        }
    }
}

const PRESEED: &str = r#"config: {core.bgp_asn: "65010", core.bgp_routerid: 198.51.100.1}
storage_pools: [{name: default, driver: dir}]
networks: [{name: lxdbr0, type: bridge, config: {ipv4.address: 203.0.113.1/24, ipv4.nat: "false",
  ipv6.address: 2001:db8:100::1/64, ipv6.nat: "false", PEERS}}]
profiles: [{name: default, devices: {root: {path: /, pool: default, type: disk}}}]
"#;

const PEER: &str = r#"bgp.peers.r1.address: "2001:db8:ff::1", bgp.peers.r1.asn: "65000""#;

/// Router + host, LXD in the host, hostbgp following it. Field order = drop order.
struct Env {
    hb: Hostbgp,
    lxd: Lxd,
    router: Bird,
    topo: Topo,
}

impl Env {
    /// `peer`: whether LXD declares the router as peer from the start.
    /// Started with the peer configured in LXD, the session up; None (the test
    /// skipped) without root or LXD.
    fn peered(test: &str) -> Option<Env> {
        if !lxd_available(test) {
            return None;
        }
        let env = Env::start(true);
        env.router.wait_established("h1");
        Some(env)
    }

    fn start(peer: bool) -> Env {
        let topo = Topo::new(&[]);
        topo.lab.forwarding(&topo.h);
        let router = Bird::router(&topo, vec![BirdPeer::router("h1", lab::HOST_V6)]);
        let lxd = Lxd::start(&topo.lab, &topo.h);
        lxd.preseed(&PRESEED.replace("PEERS", if peer { PEER } else { "ipv4.dhcp: \"true\"" }));
        let yaml = format!(
            "lxd: {{socket: {}}}\nconfig:\n  core.bgp_address: \"[::]:179\"\n",
            lxd.socket().display()
        );
        let hb = Hostbgp::ready(&topo.lab, &topo.h, &yaml);
        Env {
            hb,
            lxd,
            router,
            topo,
        }
    }

    fn source(&self) -> Value {
        self.hb
            .status_json()
            .map(|s| s["source"].clone())
            .unwrap_or_default()
    }

    /// A busybox container `name` on lxdbr0 with a static address and `ext` routed to it.
    fn container(&self, name: &str, addr: &str, ext: &str) {
        self.lxd.lxc(&["init", "busybox", name]);
        self.lxd.lxc(&[
            "config",
            "device",
            "add",
            name,
            "eth0",
            "nic",
            "network=lxdbr0",
            &format!("ipv4.address={addr}"),
            &format!("ipv4.routes.external={ext}"),
        ]);
    }

    /// Stops c1 cleanly; the router loses its route.
    fn stop_c1(&self) {
        self.lxd.lxc(&["stop", "c1", "--timeout", "20"]);
        self.router.wait_no_route("203.0.113.64/28");
    }

    /// The host's kernel routes for c1's 203.0.113.64/28.
    fn c1_kernel_route(&self) -> String {
        self.topo
            .lab
            .routes(&self.topo.h, false, &["exact", "203.0.113.64/28"])
    }

    /// The router's session start time: unchanged means no reset.
    fn session_since(&self) -> String {
        let raw = self.router.protocol("h1").raw;
        let line = raw.lines().find(|l| l.trim_start().starts_with("h1 "));
        line.unwrap_or_default().trim().to_string()
    }
}

/// A busybox container's init must have set its SIGPWR trap, or a clean stop hangs.
fn let_init_set_its_trap() {
    std::thread::sleep(std::time::Duration::from_millis(300));
}

/// Bridge subnets advertised from LXD's state alone; a container's external route
/// appears at the router when it starts (and pings go through), is withdrawn when it
/// stops, and five start/stop cycles in a row all succeed: hostbgp's route replaces
/// LXD's `proto boot` one and goes as soon as the veth leaves the bridge.
#[test]
fn lxd_instances_start_stop() {
    let Some(env) = Env::peered("lxd::lxd_instances_start_stop") else {
        return;
    };
    env.router.wait_route("203.0.113.0/24");
    env.router.wait_route("2001:db8:100::/64");
    let src = env.source();
    assert_eq!(src["kind"], "lxd", "{src}");
    assert_eq!(src["connected"], true, "{src}");
    assert_eq!(src["networks"], 1, "{src}");

    env.lxd.import_busybox(&env.topo.lab);
    env.container("c1", "203.0.113.11", "203.0.113.64/28");
    env.lxd.lxc(&["start", "c1"]);
    let r = env.router.wait_route("203.0.113.64/28");
    assert_eq!(r.next_hops, [lab::HOST_V4], "{r:?}");
    env.lxd.lxc(&[
        "exec",
        "c1",
        "--",
        "ip",
        "addr",
        "add",
        "203.0.113.65/32",
        "dev",
        "lo",
    ]);
    env.topo.lab.wait_ping(&env.topo.r, "203.0.113.65");
    let ours = env.c1_kernel_route();
    assert!(ours.contains("via 203.0.113.11"), "{ours}");
    let since = env.session_since();

    env.stop_c1();

    for cycle in 1..=5 {
        let start = Instant::now();
        if let Err(e) = env.lxd.try_lxc(&["start", "c1"]) {
            panic!("cycle {cycle}: lxc start failed: {e}");
        }
        env.router.wait_route("203.0.113.64/28");
        let up = start.elapsed();
        let_init_set_its_trap();
        let stop = Instant::now();
        env.stop_c1();
        eprintln!(
            "cycle {cycle}: start to advert {up:?}, stop to withdraw {:?}",
            stop.elapsed()
        );
        let left = env.c1_kernel_route();
        assert!(left.trim().is_empty(), "cycle {cycle}: route left: {left}");
    }
    // A restart gives the instance a new veth: found again, nothing left behind.
    env.lxd.lxc(&["start", "c1"]);
    env.router.wait_route("203.0.113.64/28");
    let_init_set_its_trap();
    env.lxd.lxc(&["restart", "c1", "--timeout", "20"]);
    wait_until_state("our route via the restarted c1", TIMEOUT, || {
        let r = env.c1_kernel_route();
        (r.contains("via 203.0.113.11") && r.contains("proto 201"), r)
    });
    env.router.wait_route("203.0.113.64/28");
    let_init_set_its_trap();
    env.stop_c1();

    // No session reset along the way, and the subnets never moved.
    assert_eq!(env.session_since(), since);
    env.router.wait_route("203.0.113.0/24");
    let src = env.source();
    assert!(src["last_event"]["action"].is_string(), "{src}");
    if std::env::var_os("HOSTBGP_TEST_DUMP").is_some() {
        eprintln!("{}", env.hb.log_text());
    }
}

/// LXD restarted (SIGTERM, as `systemctl restart lxd`): the session and every advert
/// stay, the source reconnects and resyncs, and later changes are followed.
#[test]
fn lxd_daemon_restart_keeps_everything() {
    let Some(env) = Env::peered("lxd::lxd_daemon_restart_keeps_everything") else {
        return;
    };
    env.lxd.import_busybox(&env.topo.lab);
    env.container("c1", "203.0.113.11", "203.0.113.64/28");
    env.lxd.lxc(&["start", "c1"]);
    env.router.wait_route("203.0.113.64/28");
    let since = env.session_since();
    let resync = env.source()["last_resync_unix"].clone();

    env.lxd.restart();
    wait_until_state("hostbgp sees LXD gone", TIMEOUT, || {
        let s = env.source();
        (s["connected"] == false, s)
    });
    // Nothing withdrawn while LXD is away.
    env.router.wait_route("203.0.113.64/28");
    env.router.wait_route("203.0.113.0/24");
    env.lxd.waitready();
    let s = wait_until_state("hostbgp reconnects to LXD", TIMEOUT, || {
        let s = env.source();
        (s["connected"] == true, s)
    });
    assert!(s["last_resync_unix"].as_u64() >= resync.as_u64(), "{s}");
    assert_eq!(env.session_since(), since, "the session was reset");
    env.router.wait_route("203.0.113.64/28");

    // hostbgp restarted while LXD runs: it waits for LXD's state before planning, so
    // the running instance's route is adopted, not removed and put back.
    let mut hb = env.hb;
    hb.term();
    assert!(hb.wait_exit(TIMEOUT).is_some(), "hostbgp did not stop");
    let before = fs::read_to_string(&hb.log).unwrap_or_default().len();
    hb.respawn(&env.topo.lab);
    env.router.wait_established("h1");
    env.router.wait_route("203.0.113.64/28");
    let log = fs::read_to_string(&hb.log).unwrap_or_default();
    let after = log.get(before..).unwrap_or_default();
    assert!(after.contains("LXD source connected"), "{after}");
    assert!(!after.contains("kernel route 203.0.113.64/28"), "{after}");
    let env = Env { hb, ..env };
    let ours = env.c1_kernel_route();
    assert!(ours.contains("proto 201"), "{ours}");
    let since = env.session_since();

    // Still following: a stop after the restart is seen.
    env.stop_c1();
    assert_eq!(env.session_since(), since, "the session was reset");
}

/// `lxc network set`: a peer added in LXD brings the session up; a new bridge
/// address is advertised and the replaced one withdrawn, with no session reset;
/// network forwards are advertised and withdrawn as LXD itself does.
#[test]
fn lxd_network_set_peer_and_address() {
    if !lxd_available("lxd::lxd_network_set_peer_and_address") {
        return;
    }
    let env = Env::start(false);
    wait_until_state("hostbgp reads LXD", TIMEOUT, || {
        let s = env.source();
        (s["connected"] == true, s)
    });
    assert!(env.hb.peer("r1").is_none());
    let network_set = |keys: &[&str]| env.lxd.lxc(&[&["network", "set", "lxdbr0"], keys].concat());
    network_set(&[
        "bgp.peers.r1.address=2001:db8:ff::1",
        "bgp.peers.r1.asn=65000",
    ]);
    env.router.wait_established("h1");
    env.router.wait_route("2001:db8:100::/64");
    let since = env.session_since();

    network_set(&["ipv6.address=2001:db8:200::1/64"]);
    env.router.wait_route("2001:db8:200::/64");
    env.router.wait_no_route("2001:db8:100::/64");
    env.router.wait_route("203.0.113.0/24");
    assert_eq!(env.session_since(), since, "the session was reset");
    let log = env.hb.log_text();
    assert!(!log.contains("resetting its session"), "{}", log);

    // Network forwards: their listen addresses, as LXD announces them.
    env.lxd
        .lxc(&["network", "forward", "create", "lxdbr0", "192.0.2.5"]);
    env.lxd
        .lxc(&["network", "forward", "create", "lxdbr0", "2001:db8:300::5"]);
    let r = env.router.wait_route("192.0.2.5/32");
    assert_eq!(r.next_hops, [lab::HOST_V4], "{r:?}");
    let r = env.router.wait_route("2001:db8:300::5/128");
    assert_eq!(r.next_hops, [lab::HOST_V6], "{r:?}");
    env.lxd
        .lxc(&["network", "forward", "delete", "lxdbr0", "192.0.2.5"]);
    env.router.wait_no_route("192.0.2.5/32");
    env.router.wait_route("2001:db8:300::5/128");
    assert_eq!(env.session_since(), since, "the session was reset");

    // LXD's own speaker turned on: a clear error naming the fix; nothing withdrawn.
    env.lxd
        .lxc(&["config", "set", "core.bgp_address", "127.0.0.1:1790"]);
    let s = wait_until_state("status shows LXD's speaker", TIMEOUT, || {
        let s = env.source();
        (s["lxd_bgp_address"] == "127.0.0.1:1790", s)
    });
    assert_eq!(s["connected"], true, "{s}");
    assert!(env
        .hb
        .log_text()
        .contains("lxc config unset core.bgp_address"));
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &env.topo.h,
        crate::hostbgp::BIN,
        "status",
        "--socket",
    ])
    .arg(&env.hb.socket);
    let text = run_cmd(&mut c).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("source: lxd at "), "{text}");
    assert!(text.contains(": connected since "), "{text}");
    assert!(text.contains("lxc config unset core.bgp_address"), "{text}");
    env.router.wait_route("2001:db8:200::/64");
    assert_eq!(env.session_since(), since, "the session was reset");
}

/// A one-member LXD cluster: the member is LXD's own `server_name`, member keys are
/// read with `?target=`, and instances are placed by their `location`.
#[test]
fn lxd_one_member_cluster() {
    let Some(env) = Env::peered("lxd::lxd_one_member_cluster") else {
        return;
    };
    env.lxd.lxc(&[
        "config",
        "set",
        "core.https_address",
        &format!("{}:8443", lab::HOST_V4),
    ]);
    env.lxd.lxc(&["cluster", "enable", "node1"]);
    let st = wait_until_state("hostbgp runs as member node1", TIMEOUT, || {
        let st = env.hb.status_json().unwrap_or_default();
        (st["server"]["member"] == "node1", st)
    });
    assert_eq!(st["source"]["server_name"], "node1", "{st}");
    let since = env.session_since();

    env.lxd.import_busybox(&env.topo.lab);
    env.container("c1", "203.0.113.11", "203.0.113.64/28");
    env.lxd.lxc(&["start", "c1"]);
    env.router.wait_route("203.0.113.64/28");
    let routes = env.hb.routes_json().unwrap_or_default();
    assert!(routes.to_string().contains("instance/c1/eth0"), "{routes}");
    let_init_set_its_trap();
    env.stop_c1();
    assert_eq!(env.session_since(), since, "the session was reset");
}

/// The `lxd:` key follows a reload: dropped, hostbgp goes on from the file alone (the
/// session kept, the file's settings applied); put back, it follows LXD again with no
/// restart and no session reset.
#[test]
fn lxd_key_added_and_removed_by_reload() {
    let Some(env) = Env::peered("lxd::lxd_key_added_and_removed_by_reload") else {
        return;
    };
    env.router.wait_route("2001:db8:100::/64");
    let since = env.session_since();
    let following = fs::read_to_string(&env.hb.config).expect("config");

    // The same server and peer, written in the file, with the IPv6 subnet NATed.
    env.hb.write_config(&bridge_config_yaml(
        "lxdbr0",
        lab::ROUTER_V6,
        &[("ipv6.nat", "true")],
        "",
    ));
    env.hb.reload().expect("reload to the file alone");
    assert_eq!(env.source()["kind"], "file");
    env.router.wait_no_route("2001:db8:100::/64");
    env.router.wait_route("203.0.113.0/24");
    assert_eq!(env.session_since(), since, "the session was reset");

    env.hb.write_config(&following);
    env.hb.reload().expect("reload back to LXD");
    let src = env.source();
    assert_eq!(src["kind"], "lxd", "{src}");
    assert_eq!(
        src["connected"], true,
        "the reload waits for LXD's state: {src}"
    );
    env.router.wait_route("2001:db8:100::/64");
    assert_eq!(env.session_since(), since, "the session was reset");
}
