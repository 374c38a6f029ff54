//! Issue 7, items 4, 5 and 6: a peer sending a full table, a netlink flood while
//! instances start and stop, and SIGKILL at random points (startup, a burst of
//! instance starts, shutdown) followed by convergence to the intent.
//!
//! Lab: router `r` (bird2, session over IPv6 unless said otherwise), host `h` with
//! bridge `br0` (192.0.2.1/24, 2001:db8:100::1/64) and instance NICs `vc1`..`vc4`
//! (veth to `eth0` in namespaces `i1`..`i4`). Foreign routes (`proto static`) use
//! 10.0.0.0/8 and fd00::/8 inside the host namespace only.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::bird::{Bird, BirdPeer};
use crate::hostbgp::{Hostbgp, BIN};
use crate::lab::{self, wait_until, wait_until_state, Lab, Topo, TIMEOUT};
use crate::speaker::{config_yaml, Env, Opts};

const PROTO: u8 = hostbgp::kernel::ROUTE_PROTOCOL;
const BR4: &str = "192.0.2.1/24";
const BR4_NET: &str = "192.0.2.0/24";
const BR6_NET: &str = "2001:db8:100::/64";

/// c1 with static addresses (`via`), c2 without (`dev`), c3 + c4 an anycast pair.
const INSTANCES: &str = "  c1:
    devices:
      eth0: {type: nic, network: br0, host_name: vc1, ipv4.address: 192.0.2.10, ipv6.address: \"2001:db8:100::10\", ipv4.routes.external: 203.0.113.64/28, ipv6.routes.external: \"2001:db8:100:40::/64\"}
  c2:
    devices:
      eth0: {type: nic, network: br0, host_name: vc2, ipv4.routes.external: 203.0.113.96/28, ipv6.routes.external: \"2001:db8:100:60::/64\"}
  c3:
    devices:
      eth0: {type: nic, network: br0, host_name: vc3, ipv4.address: 192.0.2.11, ipv4.routes.external: 203.0.113.80/32}
  c4:
    devices:
      eth0: {type: nic, network: br0, host_name: vc4, ipv4.address: 192.0.2.12, ipv4.routes.external: 203.0.113.80/32}
";

const NICS: [&str; 4] = ["vc1", "vc2", "vc3", "vc4"];

/// Foreign routes that must never be touched.
const FOREIGN: [&str; 2] = ["10.99.0.0/24", "fd00:99::/64"];

/// Kernel intent per prefix: sorted (via, dev) hops.
type KernelSet = BTreeMap<String, BTreeSet<(String, String)>>;

fn hop(via: &str) -> (String, String) {
    (via.to_string(), "br0".to_string())
}

/// The kernel routes hostbgp must hold for the running (enslaved) NICs.
fn intent_kernel(running: &BTreeSet<&str>) -> KernelSet {
    let mut k = KernelSet::new();
    if running.contains("vc1") {
        k.insert("203.0.113.64/28".into(), [hop("192.0.2.10")].into());
        k.insert(
            "2001:db8:100:40::/64".into(),
            [hop("2001:db8:100::10")].into(),
        );
    }
    if running.contains("vc2") {
        k.insert("203.0.113.96/28".into(), [hop("")].into());
        k.insert("2001:db8:100:60::/64".into(), [hop("")].into());
    }
    let mut any = BTreeSet::new();
    if running.contains("vc3") {
        any.insert(hop("192.0.2.11"));
    }
    if running.contains("vc4") {
        any.insert(hop("192.0.2.12"));
    }
    if !any.is_empty() {
        k.insert("203.0.113.80/32".into(), any);
    }
    k
}

fn intent_adv(running: &BTreeSet<&str>) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = intent_kernel(running).into_keys().collect();
    s.insert(BR4_NET.into());
    s.insert(BR6_NET.into());
    s
}

fn full_prefix(dst: &str, v6: bool) -> String {
    if dst.contains('/') {
        dst.to_string()
    } else if v6 {
        format!("{dst}/128")
    } else {
        format!("{dst}/32")
    }
}

/// The host's proto-201 routes (`ip -j route show proto 201`), both families.
fn kernel_ours(l: &Lab, h: &str) -> KernelSet {
    let p = PROTO.to_string();
    let mut out = KernelSet::new();
    for (fam, v6) in [("-4", false), ("-6", true)] {
        let text = l.ip(h, &["-j", fam, "route", "show", "proto", &p]);
        let v: Value = serde_json::from_str(text.trim()).unwrap_or(Value::Array(vec![]));
        for r in v.as_array().cloned().unwrap_or_default() {
            let dst = full_prefix(r["dst"].as_str().unwrap_or("?"), v6);
            let mut hops = BTreeSet::new();
            if let Some(nhs) = r["nexthops"].as_array() {
                for n in nhs {
                    hops.insert((
                        n["gateway"].as_str().unwrap_or("").to_string(),
                        n["dev"].as_str().unwrap_or("").to_string(),
                    ));
                }
            } else {
                hops.insert((
                    r["gateway"].as_str().unwrap_or("").to_string(),
                    r["dev"].as_str().unwrap_or("").to_string(),
                ));
            }
            // Two routes for one prefix would show up as a doubled key: keep both.
            let key = if out.contains_key(&dst) {
                format!("{dst} (duplicate)")
            } else {
                dst
            };
            out.insert(key, hops);
        }
    }
    out
}

/// Routes the router learned from the host: prefix -> count of routes.
fn router_table(router: &Bird) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in router.routes().into_iter().filter(|r| r.protocol == "h1") {
        *m.entry(r.prefix).or_insert(0) += 1;
    }
    m
}

fn routes_json(hb: &Hostbgp) -> Vec<Value> {
    hb.routes_json()
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// routes --json as prefix -> (kernel state, kernel hops) for instance routes.
fn json_view(v: &[Value]) -> (BTreeSet<String>, KernelSet, Vec<String>) {
    let mut prefixes = BTreeSet::new();
    let mut kernel = KernelSet::new();
    let mut not_installed = Vec::new();
    for r in v {
        let p = r["prefix"].as_str().unwrap_or("?").to_string();
        prefixes.insert(p.clone());
        if r["owner"]
            .as_str()
            .is_some_and(|o| o.starts_with("instance/"))
        {
            if r["kernel"]["state"] != "installed" {
                not_installed.push(format!("{p}: {}", r["kernel"]));
            }
            let hops = r["kernel"]["next_hops"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|h| {
                    (
                        h["via"].as_str().unwrap_or("").to_string(),
                        h["dev"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            kernel.insert(p, hops);
        }
    }
    (prefixes, kernel, not_installed)
}

/// `ip route show exact P` for the foreign routes.
fn foreign_state(l: &Lab, h: &str, extra: &[String]) -> Vec<String> {
    FOREIGN
        .iter()
        .map(|p| p.to_string())
        .chain(extra.iter().cloned())
        .map(|p| {
            let fam = if p.contains(':') { "-6" } else { "-4" };
            l.ip(h, &[fam, "route", "show", "exact", &p])
                .trim()
                .to_string()
        })
        .collect()
}

/// The lab: router + host + four instance namespaces (NICs absent), foreign routes.
struct Crash {
    hb: Hostbgp,
    router: Bird,
    topo: Topo,
    inst: Vec<String>,
}

fn setup() -> Crash {
    let topo = Topo::new(&[BR4, lab::BR_V6]);
    let (l, h) = (&topo.lab, topo.h.clone());
    let router = Bird::router(&topo, vec![BirdPeer::router("h1", lab::HOST_V6)]);
    for p in FOREIGN {
        let fam = if p.contains(':') { "-6" } else { "-4" };
        l.ip(
            &h,
            &[fam, "route", "add", p, "dev", "br0", "proto", "static"],
        );
    }
    let inst: Vec<String> = (1..=4).map(|n| l.ns(&format!("i{n}"))).collect();
    let hb = Hostbgp::start(
        l,
        &h,
        // No drain: the kills during a shutdown (0-100 ms in) are meant to land in the
        // withdraw and the route removal, which a drain would put 5 s later.
        &config_yaml(
            lab::ROUTER_V6,
            &[("ipv4.routes.anycast", "true")],
            INSTANCES,
        )
        .replacen("config:\n", "config:\n  hostbgp.drain_time: \"0\"\n", 1),
    );
    Crash {
        hb,
        router,
        topo,
        inst,
    }
}

/// NIC state: enslaved (running), present but released, or absent.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Nic {
    Running,
    Released,
    Absent,
}

impl Crash {
    /// c1 and c3 running, the session up, and the agent converged on them.
    fn start_two_converged(&mut self, label: &str) -> [Nic; 4] {
        let mut st = [Nic::Absent; 4];
        self.start_nic(&mut st, 0);
        self.start_nic(&mut st, 2);
        self.hb.wait_ready();
        self.router.wait_established("h1");
        self.converge(&st, label);
        st
    }

    fn running(&self, st: &[Nic; 4]) -> BTreeSet<&'static str> {
        NICS.iter()
            .zip(st)
            .filter(|(_, s)| **s == Nic::Running)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Instance start: create the veth if needed, enslave it.
    fn start_nic(&self, st: &mut [Nic; 4], i: usize) {
        let (l, h) = (&self.topo.lab, &self.topo.h);
        if st[i] == Nic::Absent {
            l.instance_nic(h, NICS[i], &self.inst[i]);
        }
        l.enslave(h, NICS[i], "br0");
        st[i] = Nic::Running;
    }

    /// Instance stop: release (`nomaster`) or delete the veth.
    fn stop_nic(&self, st: &mut [Nic; 4], i: usize, delete: bool) {
        let (l, h) = (&self.topo.lab, &self.topo.h);
        if delete {
            l.delete_link(h, NICS[i]);
            st[i] = Nic::Absent;
        } else {
            l.release(h, NICS[i]);
            st[i] = Nic::Released;
        }
    }

    fn toggle(&self, st: &mut [Nic; 4], i: usize, delete: bool) {
        if st[i] == Nic::Running {
            self.stop_nic(st, i, delete);
        } else {
            self.start_nic(st, i);
        }
    }

    /// Waits until kernel, router and routes --json equal the intent for `st`.
    fn converge(&self, st: &[Nic; 4], what: &str) {
        let running = self.running(st);
        let want_k = intent_kernel(&running);
        let want_a = intent_adv(&running);
        let (l, h) = (&self.topo.lab, &self.topo.h);
        wait_until_state(
            &format!("{what}: kernel proto {PROTO}, router table and routes --json = intent for {running:?}"),
            TIMEOUT * 2,
            || {
                let k = kernel_ours(l, h);
                let rt = router_table(&self.router);
                let (jp, jk, ni) = json_view(&routes_json(&self.hb));
                let rt_ok = rt.keys().cloned().collect::<BTreeSet<_>>() == want_a
                    && rt.values().all(|c| *c == 1);
                let ok = k == want_k && rt_ok && jp == want_a && jk == want_k && ni.is_empty();
                let cpu = self.hb.pid().map(lab::cpu_ticks).unwrap_or(0);
                let log = self.hb.log_text();
                let last = log.lines().last().unwrap_or("").chars().take(200).collect::<String>();
                (
                    ok,
                    format!(
                        "agent cpu ticks {cpu}, log lines {}, last log line {last:?}\nwant kernel {want_k:?}\n got kernel {k:?}\nwant adv {want_a:?}\n router {rt:?}\n json prefixes {jp:?}\n json kernel {jk:?}\n json not installed {ni:?}", log.lines().count()
                    ),
                )
            },
        );
    }
}

/// Small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(n: u64) {
    std::thread::sleep(Duration::from_millis(n));
}

/// `hostbgp shutdown` as a child (not waited for).
fn shutdown_cli(hb: &Hostbgp, l: &Lab) -> Child {
    l.spawn(
        &hb.ns,
        &[BIN, "shutdown", "--socket", &hb.socket.to_string_lossy()],
        None,
    )
}

/// Item 6: SIGKILL at random points, 50 times; convergence every 10 and at the end;
/// foreign routes never touched.
#[test]
fn sigkill_at_random_points_converges() {
    if !lab::require_root("sigkill_at_random_points_converges") {
        return;
    }
    let iters = env_num("HOSTBGP_CRASH_ITERS", 50);
    let seed = env_num(
        "HOSTBGP_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1,
    );
    eprintln!(
        "sigkill_at_random_points_converges: seed {seed} (HOSTBGP_CRASH_SEED), {iters} iterations"
    );
    let mut rng = Rng(seed);
    let mut c = setup();
    let h = c.topo.h.clone();
    let mut st = c.start_two_converged("initial");
    c.hb.kill();
    c.hb.wait_exit(TIMEOUT).expect("agent reaped after SIGKILL");
    let foreign0 = foreign_state(&c.topo.lab, &h, &[]);
    assert!(
        foreign0.iter().all(|s| s.contains("proto static")),
        "{foreign0:?}"
    );

    let mut extra: Vec<String> = Vec::new();
    let mut kills = [0u32; 3];
    for it in 0..iters {
        let l = &c.topo.lab;
        // A fresh foreign route each iteration, added before or after the spawn.
        let f = format!("10.98.{}.0/24", it % 256);
        let early = rng.below(2) == 0;
        if early && !extra.contains(&f) {
            l.ip(&h, &["route", "add", &f, "dev", "br0", "proto", "static"]);
            extra.push(f.clone());
        }
        let phase = it % 3;
        let delay = rng.below(401);
        c.hb.spawn(l);
        match phase {
            0 => {
                // During startup.
                ms(delay);
            }
            1 => {
                // During a burst of instance starts/stops.
                let n = 2 + rng.below(5) as usize;
                let kill_at = rng.below(n as u64 + 1) as usize;
                ms(delay / 2);
                for k in 0..n {
                    if k == kill_at {
                        c.hb.kill();
                    }
                    let i = rng.below(4) as usize;
                    let del = rng.below(2) == 0;
                    c.toggle(&mut st, i, del);
                }
                if kill_at == n {
                    ms(delay / 2);
                }
            }
            _ => {
                // During shutdown: once it answers, `hostbgp shutdown`, then SIGKILL.
                wait_until("hostbgp control socket answers", TIMEOUT, || {
                    c.hb.status_json().is_ok()
                });
                ms(delay / 2);
                let mut cli = shutdown_cli(&c.hb, l);
                if rng.below(2) == 0 {
                    let i = rng.below(4) as usize;
                    c.toggle(&mut st, i, rng.below(2) == 0);
                }
                ms(rng.below(101));
                c.hb.kill();
                let _ = cli.kill();
                let _ = cli.wait();
            }
        }
        c.hb.kill();
        c.hb.wait_exit(TIMEOUT)
            .unwrap_or_else(|| panic!("iteration {it}: agent not reaped after SIGKILL"));
        kills[phase as usize] += 1;
        if !early && !extra.contains(&f) {
            l.ip(&h, &["route", "add", &f, "dev", "br0", "proto", "static"]);
            extra.push(f.clone());
        }
        // Foreign routes untouched, at every kill.
        let now = foreign_state(l, &h, &[]);
        assert_eq!(now, foreign0, "iteration {it}: foreign route changed");
        for e in &extra {
            let s = l.ip(&h, &["route", "show", "exact", e]);
            assert!(
                s.contains("proto static") && s.contains("dev br0"),
                "iteration {it}: foreign route {e} touched: {s:?}"
            );
        }
        if (it + 1) % 10 == 0 && it + 1 < iters {
            c.hb.respawn(l);
            c.converge(&st, &format!("after iteration {it} (seed {seed})"));
            c.hb.kill();
            c.hb.wait_exit(TIMEOUT).expect("reaped");
        }
    }
    eprintln!(
        "sigkill_at_random_points_converges: kills during startup {}, burst {}, shutdown {}; final NICs {st:?}",
        kills[0], kills[1], kills[2]
    );
    let l = &c.topo.lab;
    c.hb.respawn(l);
    c.converge(&st, &format!("final (seed {seed})"));
    // Still right after more changes.
    for i in 0..4 {
        c.toggle(&mut st, i, i % 2 == 0);
    }
    c.converge(
        &st,
        &format!("final, after toggling every NIC (seed {seed})"),
    );
    assert_eq!(foreign_state(l, &h, &[]), foreign0, "foreign routes");
    for e in &extra {
        let s = l.ip(&h, &["route", "show", "exact", e]);
        assert!(s.contains("proto static"), "foreign route {e}: {s:?}");
    }
    let log = c.hb.log_text();
    assert!(!log.contains("panicked"), "panic in the agent log");
}

fn status_num(hb: &Hostbgp, peer: &str, key: &str) -> u64 {
    hb.peer(peer).and_then(|p| p[key].as_u64()).unwrap_or(0)
}

/// (VmRSS, VmHWM) in kB.
fn rss(pid: i32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

/// All host routes (both families, every table) as text lines.
fn all_host_routes(l: &Lab, h: &str) -> Vec<String> {
    let mut v = Vec::new();
    for fam in ["-4", "-6"] {
        v.extend(
            l.ip(h, &[fam, "route", "show", "table", "all"])
                .lines()
                .map(str::to_string),
        );
    }
    v
}

/// Item 4: the router sends N prefixes; hostbgp counts and drops them.
#[test]
fn full_table_from_peer_is_dropped() {
    if !lab::require_root("full_table_from_peer_is_dropped") {
        return;
    }
    let n = env_num("HOSTBGP_FULL_TABLE", 200_000).min(1 << 20);
    // IPv4 session: IPv4 unicast goes in the classic NLRI field of UPDATE.
    let env = Env::start(Opts {
        v6: false,
        ..Default::default()
    });
    env.wait_established();
    let (l, h) = (&env.topo.lab, &env.topo.h);
    env.router.wait_route("203.0.113.0/24");
    env.router.wait_route(BR6_NET);
    let routes0 = all_host_routes(l, h);
    let router0 = router_table(&env.router);
    let upd0 = status_num(&env.hb, "r1", "updates_received");
    let pfx0 = status_num(&env.hb, "r1", "prefixes_received");
    let pid = env.hb.pid().unwrap();
    ms(1000);
    let idle = rss(pid);

    // bird: N static /28s in 10.0.0.0/8 (router namespace only), exported to h1.
    let conf = std::fs::read_to_string(&env.router.conf).unwrap();
    let mut conf = conf.replace(
        "ipv4 { import all; export none;",
        "ipv4 { import all; export where source = RTS_STATIC;",
    );
    conf.push_str("protocol static fulltable {\n  ipv4;\n");
    for i in 0..n {
        let a = i << 4;
        conf.push_str(&format!(
            "  route 10.{}.{}.{}/28 blackhole;\n",
            (a >> 16) & 255,
            (a >> 8) & 255,
            a & 255
        ));
    }
    conf.push_str("}\n");
    std::fs::write(&env.router.conf, conf).unwrap();
    let out = env.router.configure();
    assert!(
        out.contains("Reconfigured") || out.contains("reconfig"),
        "{out}"
    );
    let pfx = wait_until_state(
        &format!("hostbgp counted {n} received prefixes"),
        Duration::from_secs(50),
        || {
            let p = status_num(&env.hb, "r1", "prefixes_received");
            (p >= pfx0 + n, p)
        },
    );
    // Let the count settle (bird may send some prefixes more than once).
    let pfx = wait_until_state("prefixes_received stable", TIMEOUT, || {
        let a = status_num(&env.hb, "r1", "prefixes_received");
        ms(1000);
        let b = status_num(&env.hb, "r1", "prefixes_received");
        (a == b, b)
    })
    .max(pfx);
    let upd = status_num(&env.hb, "r1", "updates_received");
    let full = rss(pid);
    let peer = env.hb.peer("r1").unwrap_or(Value::Null);
    let bproto = env.router.protocol("h1");
    eprintln!(
        "full_table_from_peer_is_dropped: N={n}; prefixes_received {pfx0} -> {pfx}, updates_received {upd0} -> {upd}; VmRSS idle {} kB -> {} kB after, VmHWM {} kB -> {} kB",
        idle.0, full.0, idle.1, full.1
    );
    eprintln!(
        "bird h1: {}",
        bproto
            .raw
            .lines()
            .filter(|l| l.contains("Routes:") || l.contains("Export updates"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    assert_eq!(peer["state"], "Established", "{peer}");
    assert!(bproto.established(), "{}", bproto.raw);
    assert_eq!(all_host_routes(l, h), routes0, "host routes changed");
    assert_eq!(
        router_table(&env.router),
        router0,
        "router's view of hostbgp changed"
    );
    assert!(
        full.0 <= idle.0 + 20 * 1024 && full.1 <= idle.1 + 20 * 1024,
        "RSS grew: idle {idle:?} kB, after {full:?} kB (VmRSS, VmHWM)"
    );
    assert!(!env.hb.log_text().contains("panicked"));
}

/// The line the agent logs for each `Overrun` it handles (src/agent.rs).
const OVERRUN_LINE: &str = "netlink overrun: events were lost, re-reading the kernel state";

fn overrun_lines(hb: &Hostbgp) -> usize {
    hb.log_text()
        .lines()
        .filter(|x| x.contains(OVERRUN_LINE))
        .count()
}

/// The kernel's view of the agent's netlink watch socket (its NETLINK_ROUTE socket
/// bound to multicast groups): (drops, bytes queued), from `/proc/PID/net/netlink`
/// (the agent's namespace), matched by inode against the sockets in `/proc/PID/fd`.
/// `Drops` counts the notifications the kernel could not queue: each is an overrun
/// the agent must report (ENOBUFS) and recover from.
fn watch_socket(pid: i32) -> (u64, u64) {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table =
        std::fs::read_to_string(format!("/proc/{pid}/net/netlink")).expect("read net/netlink");
    // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    let mut found = None;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[1] != "0" || f[3] == "00000000" || !inodes.contains(f[9]) {
            continue;
        }
        assert!(
            found.is_none(),
            "two netlink sockets with groups in the agent:\n{table}"
        );
        found = Some((f[8].parse().expect("Drops"), f[4].parse().expect("Rmem")));
    }
    found.unwrap_or_else(|| {
        panic!("no netlink watch socket among the agent's sockets {inodes:?}:\n{table}")
    })
}

/// Process state letter from `/proc/PID/stat` (`T`: stopped).
fn proc_state(pid: i32) -> char {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    s.rsplit_once(')')
        .and_then(|x| x.1.trim_start().chars().next())
        .unwrap_or('?')
}

/// Floods of 100 000 changes sent at most while the agent is stopped, waiting for the
/// kernel to overflow its watch socket (one is enough unless the per-message cost
/// shrinks; the receive buffer is 32 MiB, doubled by the kernel).
const MAX_FLOODS: u32 = 6;

/// Item 5: 100k foreign route changes while instances start and stop; a second round
/// with the agent stopped (SIGSTOP) and flooded until the kernel overflows its watch
/// socket, to exercise the overrun recovery. Every round must converge exactly.
#[test]
fn netlink_flood_with_instance_churn() {
    if !lab::require_root("netlink_flood_with_instance_churn") {
        return;
    }
    let mut c = setup();
    let h = c.topo.h.clone();
    let mut st = c.start_two_converged("before the flood");
    let foreign0 = foreign_state(&c.topo.lab, &h, &[]);
    let pid = c.hb.pid().expect("agent pid");

    let (mut add, mut del) = (String::new(), String::new());
    for n in 0..50_000u32 {
        let p = format!("10.200.{}.{}/32", n / 256, n % 256);
        add.push_str(&format!("route add {p} dev br0 proto static\n"));
        del.push_str(&format!("route del {p} dev br0 proto static\n"));
    }
    let (fa, fd) = (c.topo.lab.path("add.batch"), c.topo.lab.path("del.batch"));
    std::fs::write(&fa, add).unwrap();
    std::fs::write(&fd, del).unwrap();

    let mut recoveries = 0;
    for (round, stop) in [(1, false), (2, true)] {
        let l = &c.topo.lab;
        let (drops0, _) = watch_socket(pid);
        let overruns0 = overrun_lines(&c.hb);
        if stop {
            c.hb.signal(Signal::SIGSTOP);
            wait_until_state("agent stopped (SIGSTOP)", TIMEOUT, || {
                let s = proc_state(pid);
                (s == 'T', s)
            });
        }
        let mut toggles = 0;
        let mut floods = 0;
        let mut queued = Vec::new();
        loop {
            floods += 1;
            for file in [&fa, &fd] {
                let mut b = l.batch(&h, file);
                let mut i = 0;
                while b.try_wait().expect("try_wait").is_none() {
                    c.toggle(&mut st, i % 4, i % 3 == 0);
                    i += 1;
                    toggles += 1;
                }
                let out = b.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "ip -batch: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            // Stopped, the agent reads nothing: what the kernel could not queue is
            // counted in Drops, so flood again until it overflowed.
            let (drops, rmem) = watch_socket(pid);
            queued.push(rmem);
            if !stop || drops > drops0 || floods == MAX_FLOODS {
                break;
            }
        }
        // One last change after the flood.
        c.toggle(&mut st, 1, false);
        let (drops, _) = watch_socket(pid);
        if stop {
            assert_eq!(proc_state(pid), 'T', "agent no longer stopped");
            ms(200);
            c.hb.signal(Signal::SIGCONT);
            eprintln!(
                "round {round}: SIGCONT sent, log lines {}",
                c.hb.log_text().lines().count()
            );
            assert!(
                drops > drops0,
                "round {round}: the kernel never overflowed the stopped agent's watch socket \
                 ({floods} floods of 100000 route changes; Drops {drops0} -> {drops}; bytes \
                 queued after each flood {queued:?})"
            );
        }
        // Converged is only meaningful once the agent has read what the kernel queued
        // (the intent may equal what it held before the flood).
        wait_until_state(
            &format!("round {round}: the agent drained its watch socket"),
            TIMEOUT * 2,
            || {
                let (_, rmem) = watch_socket(pid);
                (rmem == 0, rmem)
            },
        );
        let left = l.routes(&h, false, &["10.200.0.0/16", "proto", "static"]);
        assert!(left.trim().is_empty(), "flood routes left");
        c.converge(
            &st,
            &format!("after flood round {round} (agent stopped: {stop})"),
        );
        assert_eq!(foreign_state(l, &h, &[]), foreign0, "foreign routes");
        // Every overflow the kernel counted must reach the agent as ENOBUFS, be logged
        // and be recovered from (the convergence above).
        if drops > drops0 {
            wait_until_state(
                &format!(
                    "round {round}: the agent reports the overrun the kernel counted \
                     (Drops {drops0} -> {drops}): {OVERRUN_LINE:?}"
                ),
                TIMEOUT,
                || {
                    let n = overrun_lines(&c.hb);
                    (n > overruns0, n)
                },
            );
            c.converge(
                &st,
                &format!("after the overrun of round {round} (agent stopped: {stop})"),
            );
            recoveries += 1;
        }
        let log = c.hb.log_text();
        assert!(
            !log.contains("re-reading the kernel state failed"),
            "round {round}: the re-dump after an overrun failed"
        );
        eprintln!(
            "netlink_flood_with_instance_churn: round {round} (agent SIGSTOPped: {stop}): {floods} flood(s) of 100000 foreign route changes, {toggles} NIC toggles; watch socket Drops {drops0} -> {drops}, bytes queued after each flood {queued:?}; overrun lines in the log {overruns0} -> {}",
            overrun_lines(&c.hb)
        );
    }
    // The point of round 2: the socket overflowed and the agent recovered.
    assert!(
        recoveries > 0,
        "no netlink overrun happened, so recovery was not exercised"
    );
    assert!(!c.hb.log_text().contains("panicked"));
}
