//! Issue 4 acceptance: restart (graceful restart), shutdown, reload, systemd, status.
//!
//! bird2 plays the router, configured as graceful-restart helper where it matters, with
//! `debug protocols all` so its log records every route change and BGP packet.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::bird::{Bird, BirdConfig, BirdPeer, BirdRoute};
use crate::datapath::instance;
use crate::hostbgp::{notification, run_command, Hostbgp, BIN};
use crate::lab::{self, wait_until, wait_until_state, Lab, Topo, TIMEOUT};
use crate::speaker::config_yaml;

/// hostbgp's kernel route protocol number.
const PROTO: u8 = hostbgp::kernel::ROUTE_PROTOCOL;

/// Instance `c1` (see `datapath::instance`): NIC `vc1` on `br0`.
const INSTANCES: &str = "  c1:
    devices:
      eth0: {type: nic, network: br0, host_name: vc1, ipv4.routes.external: 203.0.113.64/28, ipv6.routes.external: \"2001:db8:100:40::/64\"}
";
const NIC_V4: &str = "203.0.113.64/28";
const NIC_V6: &str = "2001:db8:100:40::/64";
const BR_NET_V4: &str = "192.0.2.0/24";
const BR_NET_V6: &str = "2001:db8:100::/64";

// ---------------------------------------------------------------------------------
// Helpers

/// Renders `cfg` with `debug protocols all` (routes, packets, states, events).
fn debug_all_conf(b: &Bird, cfg: &BirdConfig) -> String {
    let text = cfg.render(&b.log.to_string_lossy());
    let out = text.replace(
        "debug protocols { states, events };",
        "debug protocols all;",
    );
    assert!(out.contains("debug protocols all;"), "bird config: {text}");
    out
}

/// Starts bird and switches it to `debug protocols all` (before any session exists).
fn start_bird(l: &Lab, ns: &str, name: &str, cfg: &BirdConfig) -> Bird {
    let b = Bird::start(l, ns, name, cfg);
    rewrite_bird(&b, cfg);
    b.configure();
    b
}

/// Rewrites bird's config file keeping `debug protocols all` (then `configure`).
fn rewrite_bird(b: &Bird, cfg: &BirdConfig) {
    fs::write(&b.conf, debug_all_conf(b, cfg)).expect("write bird config");
}

/// Runs `hostbgp ARGS --socket S` in the agent's namespace, whatever the exit status.
fn cli(hb: &Hostbgp, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &hb.ns, BIN])
        .args(args)
        .arg("--socket")
        .arg(&hb.socket)
        .output()
        .expect("run hostbgp cli")
}

fn out_text(o: &Output) -> String {
    format!(
        "status {} stdout: {} stderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `hostbgp status --json` from outside (usable in a thread).
fn status_raw(ns: &str, socket: &Path) -> Option<Value> {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, BIN, "status", "--json", "--socket"])
        .arg(socket)
        .output()
        .ok()?;
    if !o.status.success() {
        return None;
    }
    serde_json::from_slice(&o.stdout).ok()
}

fn peer_of(st: &Value, name: &str) -> Option<Value> {
    st["peers"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
}

/// `ip -n NS route show PREFIX` non-empty (usable in a thread; read only, lab namespaces).
fn kernel_has(ns: &str, prefix: &str) -> bool {
    let fam = if prefix.contains(':') { "-6" } else { "-4" };
    Command::new("ip")
        .args(["-n", ns, fam, "route", "show", prefix])
        .output()
        .map(|o| o.status.success() && !String::from_utf8_lossy(&o.stdout).trim().is_empty())
        .unwrap_or(false)
}

/// Text appended to a log since `offset` bytes.
fn log_since(path: &Path, offset: usize) -> String {
    let t = fs::read_to_string(path).unwrap_or_default();
    t.get(offset..).unwrap_or("").to_string()
}

fn log_len(path: &Path) -> usize {
    fs::metadata(path).map(|m| m.len() as usize).unwrap_or(0)
}

/// bird log lines (since an offset) that remove/withdraw one of `prefixes`.
fn bird_removals(text: &str, prefixes: &[&str]) -> Vec<String> {
    text.lines()
        .filter(|l| {
            let lower = l.to_lowercase();
            (lower.contains("removed") || lower.contains("withdraw") || lower.contains("flush"))
                && prefixes.iter().any(|p| l.contains(p))
        })
        .map(str::to_string)
        .collect()
}

/// Byte offset of the first line of `text` matching `pred`.
fn line_offset(text: &str, pred: impl Fn(&str) -> bool) -> Option<usize> {
    let mut pos = 0;
    for l in text.split_inclusive('\n') {
        if pred(l) {
            return Some(pos);
        }
        pos += l.len();
    }
    None
}

/// A background observer sampling, every ~100 ms, kernel routes in router namespaces
/// and the agent's status; it records every violation it sees.
struct Watch {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    log: Arc<Mutex<Vec<String>>>,
    samples: Arc<Mutex<usize>>,
}

#[derive(Clone, Default)]
struct WatchSpec {
    /// (namespace, prefix) that must stay in the kernel table.
    routes: Vec<(String, String)>,
    /// (agent ns, socket, peer name): Established with a non-decreasing uptime.
    peer: Option<(String, PathBuf, String)>,
}

impl Watch {
    fn start(spec: WatchSpec) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let samples = Arc::new(Mutex::new(0));
        let (s, lg, n) = (stop.clone(), log.clone(), samples.clone());
        let handle = std::thread::spawn(move || {
            let mut last_uptime: Option<u64> = None;
            while !s.load(Ordering::SeqCst) {
                for (ns, p) in &spec.routes {
                    if !kernel_has(ns, p) {
                        lg.lock().unwrap().push(format!("{p} missing in {ns}"));
                    }
                }
                if let Some((ns, sock, name)) = &spec.peer {
                    match status_raw(ns, sock).and_then(|st| peer_of(&st, name)) {
                        Some(p) => {
                            let up = p["uptime_secs"].as_u64();
                            if p["state"] != "Established" || up.is_none() {
                                lg.lock().unwrap().push(format!("peer {name} not up: {p}"));
                            }
                            if let (Some(prev), Some(now)) = (last_uptime, up) {
                                if now < prev {
                                    lg.lock()
                                        .unwrap()
                                        .push(format!("peer {name} uptime went {prev} -> {now}"));
                                }
                            }
                            if up.is_some() {
                                last_uptime = up;
                            }
                        }
                        None => lg
                            .lock()
                            .unwrap()
                            .push(format!("peer {name}: no status answer")),
                    }
                }
                *n.lock().unwrap() += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Watch {
            stop,
            handle: Some(handle),
            log,
            samples,
        }
    }

    /// Stops and asserts nothing went; `what` names a violation. Returns the sample count.
    fn assert_untouched(mut self, what: &str) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let violations = self.log.lock().unwrap().clone();
        let samples = *self.samples.lock().unwrap();
        assert!(
            violations.is_empty(),
            "{what} ({} of {samples} samples): {:?}",
            violations.len(),
            &violations[..violations.len().min(20)]
        );
        samples
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// `ping -i 0.01 DST` in a namespace; loss is counted from icmp_seq gaps in the replies
/// (packets still in flight when it is stopped are not counted as lost).
struct Pinger {
    child: Option<Child>,
    out: PathBuf,
}

impl Pinger {
    fn start(l: &Lab, ns: &str, dst: &str, out: PathBuf) -> Pinger {
        let child = l.spawn(ns, &["ping", "-n", "-i", "0.01", dst], Some(&out));
        Pinger {
            child: Some(child),
            out,
        }
    }

    /// Stops the ping; returns (replies, missing sequence numbers, raw summary).
    fn stop(mut self) -> (usize, Vec<u64>, String) {
        let mut c = self.child.take().expect("ping running");
        let _ = lab::signal_child(&c, Signal::SIGINT);
        let _ = c.wait();
        let text = fs::read_to_string(&self.out).unwrap_or_default();
        let seqs: BTreeSet<u64> = text
            .lines()
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("icmp_seq="))
                    .and_then(|n| n.parse().ok())
            })
            .collect();
        let max = seqs.iter().next_back().copied().unwrap_or(0);
        let first = seqs.iter().next().copied().unwrap_or(1);
        let missing: Vec<u64> = (first.min(1)..=max).filter(|s| !seqs.contains(s)).collect();
        let summary: String = text
            .lines()
            .filter(|l| !l.contains("bytes from"))
            .collect::<Vec<_>>()
            .join("\n");
        (seqs.len(), missing, summary)
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One router `r` (bird `router`, protocol `h1`) and the agent in `h`.
/// Field order = drop order.
struct Env {
    hb: Hostbgp,
    router: Bird,
    cfg: BirdConfig,
    topo: Topo,
}

struct EnvOpts<'a> {
    gr: bool,
    enh: bool,
    password: Option<&'a str>,
    bridge_addrs: Vec<&'a str>,
    instances: &'a str,
}

impl Default for EnvOpts<'_> {
    fn default() -> Self {
        EnvOpts {
            gr: true,
            enh: false,
            password: None,
            bridge_addrs: vec!["192.0.2.1/24", lab::BR_V6],
            instances: INSTANCES,
        }
    }
}

impl Env {
    fn start(o: EnvOpts) -> Env {
        let topo = Topo::new(&o.bridge_addrs);
        let mut bp = BirdPeer::router("h1", lab::HOST_V6)
            .graceful_restart(o.gr)
            .extended_next_hop(o.enh);
        let mut keys = Vec::new();
        if let Some(pw) = o.password {
            bp = bp.password(pw);
            keys.push(("bgp.peers.r1.password", pw));
        }
        let cfg = BirdConfig::router(lab::ROUTER_V4, vec![bp]);
        let router = start_bird(&topo.lab, &topo.r, "router", &cfg);
        let hb = Hostbgp::ready(
            &topo.lab,
            &topo.h,
            &config_yaml(lab::ROUTER_V6, &keys, o.instances),
        );
        Env {
            hb,
            router,
            cfg,
            topo,
        }
    }

    /// Started with `o`, the session up on both sides.
    fn established(o: EnvOpts) -> Env {
        let env = Env::start(o);
        env.wait_established();
        env
    }

    fn wait_established(&self) -> Value {
        self.router.wait_established("h1");
        self.hb.wait_peer_state("r1", "Established")
    }

    /// Instance `i` started (vc1 on br0), its routes at the router, pingable.
    fn start_instance(&self) -> String {
        let (l, r, h) = (&self.topo.lab, &self.topo.r, &self.topo.h);
        let i = instance(l, h);
        l.enslave(h, "vc1", "br0");
        self.router.wait_route(NIC_V4);
        self.router.wait_route(NIC_V6);
        wait_until("router kernel has the NIC routes", TIMEOUT, || {
            kernel_has(r, NIC_V4) && kernel_has(r, NIC_V6)
        });
        wait_until("ping 203.0.113.65 from the router", TIMEOUT, || {
            l.try_exec(r, &["ping", "-c1", "-W1", "203.0.113.65"])
                .is_ok()
        });
        i
    }
}

// ---------------------------------------------------------------------------------
// 1. Restart with bird as graceful-restart helper

#[test]
fn restart_graceful_zero_loss() {
    if !lab::require_root("restart_graceful_zero_loss") {
        return;
    }
    let mut env = Env::start(EnvOpts::default());
    let peer = env.wait_established();
    assert_eq!(peer["capabilities"]["graceful_restart"], true, "{peer}");
    let _i = env.start_instance();
    let (l, r, h) = (&env.topo.lab, env.topo.r.clone(), env.topo.h.clone());
    let proto = PROTO.to_string();
    let prefixes = [NIC_V4, NIC_V6, BR_NET_V4, BR_NET_V6];
    for p in &prefixes {
        env.router.wait_route(p);
    }

    let bird_mark = log_len(&env.router.log);
    let watch = Watch::start(WatchSpec {
        routes: prefixes
            .iter()
            .map(|p| (r.clone(), p.to_string()))
            .collect(),
        peer: None,
    });
    let ping = Pinger::start(l, &r, "203.0.113.65", l.path("ping.out"));
    wait_until("ping is getting replies", TIMEOUT, || {
        fs::read_to_string(l.path("ping.out"))
            .unwrap_or_default()
            .contains("bytes from")
    });

    // Restart: SIGTERM, 3 s down, start again with the same config and socket.
    env.hb.term();
    let st = env.hb.wait_exit(TIMEOUT).expect("hostbgp exits on SIGTERM");
    assert!(st.success(), "SIGTERM exit status {st}");
    let marker = env.hb.socket.with_extension("restarting");
    assert!(
        marker.exists(),
        "restart marker {} missing",
        marker.display()
    );
    // The kernel routes stay.
    let k4 = l.routes(&h, false, &["proto", &proto]);
    assert!(
        k4.contains(NIC_V4),
        "host kernel route gone after SIGTERM: {k4}"
    );
    let k6 = l.routes(&h, true, &["proto", &proto]);
    assert!(
        k6.contains(NIC_V6),
        "host kernel route gone after SIGTERM: {k6}"
    );
    // bird is helper: the neighbor is restarting, our routes are kept. (bird 2.0.12
    // marks them REF_STALE internally; `show route` prints an `s` only for LLGR, so
    // the evidence is "graceful restart active" + the routes still in the table.)
    // Every prefix learned from h1 in `routes` (`fresh`: none of them stale).
    let all_from_h1 = |routes: &[BirdRoute], fresh: bool| {
        prefixes.iter().all(|pfx| {
            routes
                .iter()
                .any(|rt| rt.prefix == *pfx && rt.protocol == "h1" && !(fresh && rt.stale))
        })
    };
    let gap = wait_until_state(
        "bird: neighbor graceful restart active, routes kept",
        TIMEOUT,
        || {
            let p = env.router.protocol("h1");
            let routes = env.router.routes();
            let kept = all_from_h1(&routes, false);
            (p.graceful_restart_active() && kept, (p.raw, routes))
        },
    );
    eprintln!("during the gap: {}", gap.0);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        env.router.protocol("h1").graceful_restart_active(),
        "bird left graceful restart during the gap"
    );

    env.hb.respawn(l);
    env.wait_established();
    // After End-of-RIB the restart is over: bird ends it when it got End-of-RIB for
    // every family and then prunes whatever was not refreshed (logged as removals,
    // checked below).
    wait_until_state(
        "bird: graceful restart over, routes present",
        TIMEOUT * 2,
        || {
            let p = env.router.protocol("h1");
            let routes = env.router.routes();
            let present = all_from_h1(&routes, true);
            (
                present && !p.graceful_restart_active() && p.established(),
                (p.raw, routes),
            )
        },
    );
    // Keep pinging a little after the reconnection.
    let before = fs::read_to_string(l.path("ping.out"))
        .unwrap_or_default()
        .len();
    wait_until("more ping replies after the restart", TIMEOUT, || {
        fs::read_to_string(l.path("ping.out"))
            .unwrap_or_default()
            .len()
            > before + 500
    });
    let (replies, missing, summary) = ping.stop();
    watch.assert_untouched("router kernel routes disappeared");
    let hlog = env.hb.log_text();
    assert!(
        hlog.contains("restarted within the graceful restart time"),
        "second start did not see the restart marker"
    );
    let since = log_since(&env.router.log, bird_mark);
    eprintln!("bird log during the restart:\n{since}");
    assert!(replies > 0, "no ping replies: {summary}");
    assert!(
        missing.is_empty(),
        "{} pings lost across the restart (seq {:?}...), {replies} replies\n{summary}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    let removals = bird_removals(&since, &prefixes);
    assert!(
        removals.is_empty(),
        "bird withdrew/removed routes during the restart:\n{}",
        removals.join("\n")
    );
    // bird ended the restart on End-of-RIB and found every route unchanged: it logs
    // the re-sent routes as "ignored" (same attributes), never as "added" (which
    // would mean they had been gone).
    assert!(
        since.contains("Neighbor graceful restart done"),
        "bird never ended the graceful restart:\n{since}"
    );
    for pfx in &prefixes {
        let fam = if pfx.contains(':') { "ipv6" } else { "ipv4" };
        assert!(
            since.contains(&format!("h1.{fam} > ignored {pfx} ")),
            "{pfx} was not re-sent unchanged after the restart:\n{since}"
        );
        assert!(
            !since.contains(&format!("h1.{fam} > added")),
            "bird re-added routes after the restart (they had been flushed):\n{since}"
        );
    }
    env.router.assert_no_nexthop_errors();
}

// ---------------------------------------------------------------------------------
// 2. Full shutdown

#[test]
fn shutdown_withdraws_everything() {
    if lab::require_root("shutdown_withdraws_everything") {
        shutdown_case(false);
    }
}

/// SIGPWR is the same full shutdown as `hostbgp shutdown`.
#[test]
fn shutdown_on_sigpwr() {
    if lab::require_root("shutdown_on_sigpwr") {
        shutdown_case(true);
    }
}

fn shutdown_case(sigpwr: bool) {
    let mut env = Env::established(EnvOpts::default());
    let _i = env.start_instance();
    let (l, h) = (&env.topo.lab, env.topo.h.clone());
    let proto = PROTO.to_string();
    for p in [BR_NET_V4, BR_NET_V6] {
        env.router.wait_route(p);
    }
    assert!(l.routes(&h, false, &["proto", &proto]).contains(NIC_V4));
    let bird_mark = log_len(&env.router.log);

    if sigpwr {
        env.hb.signal(Signal::SIGPWR);
        let st = env.hb.wait_exit(TIMEOUT).expect("agent exits on SIGPWR");
        assert!(st.success(), "agent exit status after SIGPWR: {st}");
    } else {
        let out = cli(&env.hb, &["shutdown"]);
        assert!(out.status.success(), "hostbgp shutdown: {}", out_text(&out));
    }
    // Right after it returns: no kernel route of ours in the host.
    let k4 = l.routes(&h, false, &["proto", &proto]);
    let k6 = l.routes(&h, true, &["proto", &proto]);
    assert!(
        k4.trim().is_empty() && k6.trim().is_empty(),
        "proto {PROTO} routes left after shutdown returned:\n{k4}\n{k6}"
    );
    let routes_now = env.router.prefixes_from("h1");
    eprintln!("bird routes from h1 right after shutdown returned: {routes_now:?}");
    let st = env
        .hb
        .wait_exit(TIMEOUT)
        .expect("agent exits after shutdown");
    assert!(st.success(), "agent exit status {st}");
    // bird processes what it received asynchronously: poll (timeout = safety net).
    wait_until_state("bird has none of hostbgp's routes", TIMEOUT, || {
        let left = env.router.prefixes_from("h1");
        (left.is_empty(), left)
    });
    let p = wait_until_state("bird shows the shutdown message", TIMEOUT, || {
        let p = env.router.protocol("h1");
        (p.raw.contains("administrative shutdown"), p.raw)
    });
    eprintln!("bird protocol after shutdown:\n{p}");
    let since = log_since(&env.router.log, bird_mark);
    eprintln!("bird log at shutdown:\n{since}");
    assert!(
        since.contains("hostbgp: administrative shutdown"),
        "bird log lacks the shutdown message:\n{since}"
    );
    // The withdrawals came as UPDATEs before the NOTIFICATION, not as the flush of a
    // closed session: bird logs each removal before "Received: Administrative
    // shutdown" (its "Got UPDATE" trace is rate-limited, so it is not relied upon).
    let notif = since
        .find("Received: Administrative shutdown")
        .unwrap_or_else(|| panic!("bird did not log the NOTIFICATION:\n{since}"));
    for pfx in [BR_NET_V4, BR_NET_V6, NIC_V4, NIC_V6] {
        let removed = line_offset(&since, |l| {
            l.contains(" > removed") && l.contains(&format!(" {pfx} "))
        });
        assert!(
            matches!(removed, Some(r) if r < notif),
            "{pfx} was not withdrawn before the NOTIFICATION:\n{since}"
        );
    }
}

// ---------------------------------------------------------------------------------
// 3. Reload with two peers

/// Two routers: `r1` (bird `b1`, protocol h1) over the standard link, `r2` (bird `b2`,
/// protocol h2) over a second link `eth1` (198.51.100.128/25, 2001:db8:fe::/64).
/// The host's first link is narrowed to 198.51.100.0/25.
struct Two {
    hb: Hostbgp,
    b1: Bird,
    b2: Bird,
    cfg1: BirdConfig,
    lab: Lab,
    r1: String,
    r2: String,
    h: String,
}

const R2_V4: &str = "198.51.100.130";
const R2_V6: &str = "2001:db8:fe::1";
const H_R2_V6: &str = "2001:db8:fe::2";

fn two_yaml(pw_a: &str, instances: &str) -> String {
    let mut s = config_yaml(
        lab::ROUTER_V6,
        &[
            ("bgp.peers.r1.password", pw_a),
            ("bgp.peers.r2.address", R2_V6),
            ("bgp.peers.r2.asn", "65000"),
        ],
        instances,
    );
    if instances.is_empty() {
        s.push('\n');
    }
    s
}

impl Two {
    fn start(pw_a: &str) -> Two {
        let lab = Lab::new();
        let r1 = lab.ns("r");
        let r2 = lab.ns("s");
        let h = lab.ns("h");
        lab.veth((&r1, "eth0"), (&h, "eth0"));
        lab.veth((&r2, "eth0"), (&h, "eth1"));
        lab.addr(&r1, "eth0", &format!("{}/25", lab::ROUTER_V4));
        lab.addr(&r1, "eth0", &format!("{}/64", lab::ROUTER_V6));
        lab.addr(&h, "eth0", &format!("{}/25", lab::HOST_V4));
        lab.addr(&h, "eth0", &format!("{}/64", lab::HOST_V6));
        lab.addr(&r2, "eth0", &format!("{R2_V4}/25"));
        lab.addr(&r2, "eth0", &format!("{R2_V6}/64"));
        lab.addr(&h, "eth1", "198.51.100.129/25");
        lab.addr(&h, "eth1", &format!("{H_R2_V6}/64"));
        lab.bridge(&h, "br0");
        lab.addr(&h, "br0", "192.0.2.1/24");
        lab.addr(&h, "br0", lab::BR_V6);
        let cfg1 = BirdConfig::router(
            lab::ROUTER_V4,
            vec![BirdPeer::router("h1", lab::HOST_V6).password(pw_a)],
        );
        let cfg2 = BirdConfig::router(R2_V4, vec![BirdPeer::router("h2", H_R2_V6)]);
        let b1 = start_bird(&lab, &r1, "b1", &cfg1);
        let b2 = start_bird(&lab, &r2, "b2", &cfg2);
        let hb = Hostbgp::ready(&lab, &h, &two_yaml(pw_a, ""));
        b1.wait_established("h1");
        b2.wait_established("h2");
        hb.wait_peer_state("r1", "Established");
        hb.wait_peer_state("r2", "Established");
        for b in [&b1, &b2] {
            b.wait_route(BR_NET_V4);
            b.wait_route(BR_NET_V6);
        }
        Two {
            hb,
            b1,
            b2,
            cfg1,
            lab,
            r1,
            r2,
            h,
        }
    }

    fn watch_b(&self, prefixes: &[&str]) -> Watch {
        Watch::start(WatchSpec {
            routes: prefixes
                .iter()
                .map(|p| (self.r2.clone(), p.to_string()))
                .collect(),
            peer: Some((self.h.clone(), self.hb.socket.clone(), "r2".into())),
        })
    }
}

fn uptime(hb: &Hostbgp, name: &str) -> u64 {
    hb.peer(name)
        .and_then(|p| p["uptime_secs"].as_u64())
        .unwrap_or_else(|| panic!("peer {name} has no uptime: {:?}", hb.status_json()))
}

#[test]
fn reload_password_change_resets_only_that_peer_and_nic_added() {
    if !lab::require_root("reload_password_change_resets_only_that_peer_and_nic_added") {
        return;
    }
    let t = Two::start("alpha");
    let l = &t.lab;
    // Let both sessions age so that a reset is visible in uptime.
    wait_until("both sessions up for 2 s", TIMEOUT, || {
        uptime(&t.hb, "r1") >= 2 && uptime(&t.hb, "r2") >= 2
    });
    let b2_mark = log_len(&t.b2.log);
    let b1_mark = log_len(&t.b1.log);
    let watch = t.watch_b(&[BR_NET_V4, BR_NET_V6]);

    // Peer A's password changes on the agent: A alone is reset.
    t.hb.write_config(&two_yaml("bravo", ""));
    let out = cli(&t.hb, &["reload"]);
    assert!(out.status.success(), "reload: {}", out_text(&out));
    wait_until_state("agent resets peer r1", TIMEOUT, || {
        let p = t.hb.peer("r1").unwrap_or(Value::Null);
        let reset = p["state"] != "Established" || p["uptime_secs"].as_u64() < Some(2);
        (reset, p)
    });
    // The router follows; A comes back.
    let mut cfg1 = t.cfg1.clone();
    cfg1.peers[0].password = Some("bravo".into());
    rewrite_bird(&t.b1, &cfg1);
    t.b1.configure();
    t.b1.wait_established("h1");
    t.hb.wait_peer_state("r1", "Established");
    t.b1.wait_route(BR_NET_V4);
    t.b1.wait_route(BR_NET_V6);
    // B stays up for a while after the A reset (the watcher keeps sampling).
    let up_b = uptime(&t.hb, "r2");
    wait_until("B's uptime keeps counting", TIMEOUT, || {
        uptime(&t.hb, "r2") >= up_b + 2
    });
    let samples = watch.assert_untouched("peer B affected by A's password change");
    assert!(samples > 5, "too few samples: {samples}");
    let b2_log = log_since(&t.b2.log, b2_mark);
    let rem = bird_removals(&b2_log, &[BR_NET_V4, BR_NET_V6]);
    assert!(
        rem.is_empty(),
        "router B removed routes:\n{}",
        rem.join("\n")
    );
    assert!(
        !b2_log.contains("State changed")
            && !b2_log.contains("Received:")
            && !b2_log.contains("session closed"),
        "router B's session changed state:\n{b2_log}"
    );
    let b1_log = log_since(&t.b1.log, b1_mark);
    eprintln!("router A log during the password change:\n{b1_log}");
    // The agent reset A itself (a Cease NOTIFICATION before bird was reconfigured).
    let notif = line_offset(&b1_log, |l| l.contains("<RMT> h1: Received:"));
    let reconf = line_offset(&b1_log, |l| l.contains("Reconfiguring"));
    assert!(
        matches!((notif, reconf), (Some(n), Some(r)) if n < r),
        "router A got no NOTIFICATION from the agent before its own reconfiguration:\n{b1_log}"
    );

    // A NIC whose veth is already on the bridge is added to the config: only its
    // prefixes are announced; nothing else flaps on either router.
    let _i = instance(l, &t.h);
    l.enslave(&t.h, "vc1", "br0");
    let b1_mark = log_len(&t.b1.log);
    let b2_mark = log_len(&t.b2.log);
    let (up_a, up_b) = (uptime(&t.hb, "r1"), uptime(&t.hb, "r2"));
    let watch = Watch::start(WatchSpec {
        routes: [&t.r1, &t.r2]
            .iter()
            .flat_map(|ns| {
                [BR_NET_V4, BR_NET_V6]
                    .iter()
                    .map(move |p| (ns.to_string(), p.to_string()))
            })
            .collect(),
        peer: Some((t.h.clone(), t.hb.socket.clone(), "r2".into())),
    });
    t.hb.write_config(&two_yaml("bravo", INSTANCES));
    let out = cli(&t.hb, &["reload"]);
    assert!(out.status.success(), "reload: {}", out_text(&out));
    for b in [&t.b1, &t.b2] {
        b.wait_route(NIC_V4);
        b.wait_route(NIC_V6);
    }
    wait_until("ping the new NIC's address from router B", TIMEOUT, || {
        l.try_exec(&t.r2, &["ping", "-c1", "-W1", "203.0.113.65"])
            .is_ok()
    });
    watch.assert_untouched("flap while adding a NIC");
    assert!(
        uptime(&t.hb, "r1") >= up_a,
        "peer A was reset by a NIC addition"
    );
    assert!(
        uptime(&t.hb, "r2") >= up_b,
        "peer B was reset by a NIC addition"
    );
    for (name, b, mark) in [("A", &t.b1, b1_mark), ("B", &t.b2, b2_mark)] {
        let text = log_since(&b.log, mark);
        let rem = bird_removals(&text, &[BR_NET_V4, BR_NET_V6, NIC_V4, NIC_V6]);
        assert!(
            rem.is_empty(),
            "router {name} removed routes:\n{}",
            rem.join("\n")
        );
        // Every route change logged in this window concerns the new NIC's prefixes.
        let others: Vec<&str> = text
            .lines()
            .filter(|ln| {
                ln.contains(" added ") || ln.contains(" updated ") || ln.contains(" ignored ")
            })
            .filter(|ln| !ln.contains(NIC_V4) && !ln.contains(NIC_V6))
            .collect();
        assert!(
            others.is_empty(),
            "router {name} saw other prefixes re-announced:\n{}",
            others.join("\n")
        );
        assert!(
            text.contains(NIC_V4) && text.contains(NIC_V6),
            "router {name}'s log does not show the NIC's announcement:\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------------
// 4. Reload with an invalid file

#[test]
fn reload_invalid_file_changes_nothing() {
    if !lab::require_root("reload_invalid_file_changes_nothing") {
        return;
    }
    let env = Env::established(EnvOpts::default());
    let _i = env.start_instance();
    let prefixes = [NIC_V4, NIC_V6, BR_NET_V4, BR_NET_V6];
    wait_until("session up for 2 s", TIMEOUT, || uptime(&env.hb, "r1") >= 2);
    let routes_before = env.hb.routes_json().expect("routes");
    let bird_mark = log_len(&env.router.log);
    let watch = Watch::start(WatchSpec {
        routes: prefixes
            .iter()
            .map(|p| (env.topo.r.clone(), p.to_string()))
            .collect(),
        peer: Some((env.topo.h.clone(), env.hb.socket.clone(), "r1".into())),
    });

    let good = fs::read_to_string(&env.hb.config).expect("config");
    let bad = good.replace("core.bgp_asn: \"65010\"", "core.bgp_asn: \"0\"");
    assert_ne!(good, bad);
    env.hb.write_config(&bad);
    // CLI reload: error printed naming the key, exit 1.
    let out = cli(&env.hb, &["reload"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "reload of an invalid file: {}",
        out_text(&out)
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("core.bgp_asn"),
        "error does not name the key: {printed}"
    );

    // SIGHUP: logged, agent keeps running.
    let log_mark = log_len(&env.hb.log);
    env.hb.hup();
    wait_until_state("agent logs the refused reload", TIMEOUT, || {
        let t = log_since(&env.hb.log, log_mark);
        (t.contains("core.bgp_asn"), t)
    });
    let up = uptime(&env.hb, "r1");
    wait_until(
        "session keeps counting after the refused reloads",
        TIMEOUT,
        || uptime(&env.hb, "r1") >= up + 2,
    );
    watch.assert_untouched("session or routes affected by an invalid reload");
    let st = env.hb.status_json().expect("status");
    assert_eq!(st["server"]["asn"], 65010, "running config changed: {st}");
    assert_eq!(
        env.hb.routes_json().expect("routes"),
        routes_before,
        "advertisements changed"
    );
    let since = log_since(&env.router.log, bird_mark);
    let rem = bird_removals(&since, &prefixes);
    assert!(rem.is_empty(), "bird removed routes:\n{}", rem.join("\n"));
    assert!(env.router.protocol("h1").established());

    // A valid file with something `check` warns about: applied, the warning logged.
    env.hb.write_config(&good);
    let confd = env.hb.config.with_file_name("conf.d");
    fs::create_dir_all(&confd).expect("conf.d");
    fs::write(confd.join("10-empty.yaml"), "").expect("write conf.d/10-empty.yaml");
    let log_mark = log_len(&env.hb.log);
    env.hb.reload().expect("a reload with a warning is applied");
    let logged = log_since(&env.hb.log, log_mark);
    assert!(
        logged.contains("10-empty.yaml:1: warning: empty file"),
        "the warning is not logged: {logged}"
    );
}

// ---------------------------------------------------------------------------------
// 5. systemd

/// (a) The unit file passes `systemd-analyze verify` once its paths point at the
/// built binary.
#[test]
fn systemd_unit_verifies() {
    if !lab::installed("systemd-analyze") {
        eprintln!(
            "SKIPPED systemd_unit_verifies: systemd-analyze is not installed (package `systemd`)"
        );
        return;
    }
    let unit = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/hostbgp.service"
    ))
    .expect("read systemd/hostbgp.service");
    assert!(unit.contains("/usr/bin/hostbgp"), "{unit}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hostbgp.service");
    fs::write(&path, unit.replace("/usr/bin/hostbgp", BIN)).expect("write unit");
    // --man=no: the unit's man:hostbgp(8) is installed by the package, not here.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}",
        out_text(&out)
    );
    assert!(
        !stderr.contains("hostbgp.service"),
        "systemd-analyze warns about the unit: {stderr}"
    );
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=",
        "KillSignal=SIGTERM",
        "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "RuntimeDirectory=hostbgp",
    ] {
        assert!(unit.contains(needed), "unit lacks {needed}");
    }
}

/// One datagram from `sock` within `timeout`, retrying `recv` when a signal interrupts
/// it. With a receive timeout set (SO_RCVTIMEO) the kernel never restarts an
/// interrupted `recv`: it fails with EINTR even for a signal nobody handles. Tests run
/// in parallel threads, and when a child of another test thread exits while that
/// thread has every signal blocked (glibc's `posix_spawn` does so while it starts the
/// next `ip`, `birdc` or CLI), its SIGCHLD is queued instead of discarded and is
/// delivered to this thread, interrupting the wait.
fn recv_within(sock: &UnixDatagram, buf: &mut [u8], timeout: Duration) -> std::io::Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("nothing within {timeout:?}"),
            ));
        }
        sock.set_read_timeout(Some(left))?;
        match sock.recv(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// (b) The sd_notify protocol, checked with a socket of our own: PID 1 here is not
/// systemd (tests run in a container), so a real `systemctl start` cannot run; the
/// agent gets `NOTIFY_SOCKET` and `WATCHDOG_USEC` exactly as systemd would set them.
#[test]
fn systemd_notify_ready_and_watchdog() {
    if !lab::require_root("systemd_notify_ready_and_watchdog") {
        return;
    }
    let topo = Topo::new(&["192.0.2.1/24", lab::BR_V6]);
    let l = &topo.lab;
    let sock_path = l.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    let config = l.path("hostbgp.yaml");
    fs::write(&config, config_yaml(lab::ROUTER_V6, &[], "")).expect("config");
    let socket = l.path("hostbgp.sock");
    let log = fs::File::create(l.path("hostbgp.log")).expect("log");
    // `ip netns exec` execs the agent, so the child's pid is the agent's: WATCHDOG_PID
    // stays unset (systemd sets it to the main pid).
    let mut child = run_command(l, &topo.h, &config, &socket, "host", log)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .spawn()
        .expect("spawn hostbgp");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let guard = Kill(&mut child);
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    let mut ready_at = None;
    let mut watchdogs_after_ready = 0;
    while watchdogs_after_ready < 3 {
        let n = recv_within(&sock, &mut buf, TIMEOUT).unwrap_or_else(|e| {
            panic!(
                "no notification (got so far {got:?}): {e}\nagent log:\n{}",
                crate::bird::tail(&l.path("hostbgp.log"), 30)
            )
        });
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        if msg.lines().any(|x| x == "READY=1") && ready_at.is_none() {
            ready_at = Some(got.len());
            // READY means the control socket is bound and answering.
            let st = status_raw(&topo.h, &socket);
            assert!(
                st.is_some(),
                "READY=1 sent before the control socket answers"
            );
        }
        if msg.lines().any(|x| x == "WATCHDOG=1") && ready_at.is_some() {
            watchdogs_after_ready += 1;
        }
        got.push(msg);
    }
    assert!(ready_at.is_some(), "{got:?}");
    // `systemctl status` shows a one-line summary.
    assert!(
        got.iter()
            .any(|m| m.lines().any(|l| l.starts_with("STATUS=")
                && l.contains(" peers established, ")
                && l.ends_with(" prefixes"))),
        "no STATUS= line: {got:?}"
    );
    assert!(
        guard.0.try_wait().expect("try_wait").is_none(),
        "agent exited while sending watchdog pings"
    );
    drop(guard);
}

// ---------------------------------------------------------------------------------
// 6. Status

#[test]
fn status_shows_capabilities_never_password() {
    if !lab::require_root("status_shows_capabilities_never_password") {
        return;
    }
    let pw = "Zq7pw-secret";
    let env = Env::established(EnvOpts {
        enh: true,
        password: Some(pw),
        ..Default::default()
    });
    let _i = env.start_instance();
    let p = wait_until_state("prefixes sent in both families", TIMEOUT, || {
        let p = env.hb.peer("r1").unwrap_or(Value::Null);
        let ok = p["prefixes_sent"]["ipv4-unicast"].as_u64() >= Some(2)
            && p["prefixes_sent"]["ipv6-unicast"].as_u64() >= Some(2);
        (ok, p)
    });
    assert_eq!(p["state"], "Established", "{p}");
    assert!(p["uptime_secs"].as_u64().is_some(), "{p}");
    let fams = p["families"].to_string();
    assert!(
        fams.contains("ipv4-unicast") && fams.contains("ipv6-unicast"),
        "{p}"
    );
    assert_eq!(p["capabilities"]["graceful_restart"], true, "{p}");
    assert_eq!(p["capabilities"]["extended_next_hop_ipv4"], true, "{p}");
    assert!(p["last_error"].is_null(), "{p}");
    let json = env.hb.status_json().expect("status").to_string();
    assert!(
        !json.contains(pw),
        "status --json prints the password: {json}"
    );
    let text = cli(&env.hb, &["status"]);
    assert!(text.status.success(), "{}", out_text(&text));
    let text = out_text(&text);
    assert!(!text.contains(pw), "status prints the password: {text}");
    assert!(
        text.contains("Established") || text.contains("established"),
        "{text}"
    );
    let routes = cli(&env.hb, &["routes", "--json"]);
    assert!(
        !out_text(&routes).contains(pw),
        "routes prints the password"
    );
    // Nor the agent's debug log.
    let hlog = env.hb.log_text();
    assert!(!hlog.contains(pw), "the agent's log contains the password");
    let _ = &env.cfg;
}

// ---------------------------------------------------------------------------------
// Control socket robustness (issue 4, "Must work" 4)

/// One raw request on the control socket; returns the reply line.
fn raw_request(socket: &Path, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut c = std::os::unix::net::UnixStream::connect(socket).expect("connect control socket");
    c.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    // The agent may answer (and close) before reading everything: ignore write errors.
    let _ = c.write_all(bytes);
    let _ = c.shutdown(std::net::Shutdown::Write);
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

#[test]
fn control_socket_mode_and_bad_requests() {
    if !lab::require_root("control_socket_mode_and_bad_requests") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let env = Env::established(EnvOpts::default());
    wait_until("session up for 1 s", TIMEOUT, || uptime(&env.hb, "r1") >= 1);
    let mode = fs::metadata(&env.hb.socket)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "control socket mode {mode:o}");
    // A client that connects and says nothing does not block others.
    let idle = std::os::unix::net::UnixStream::connect(&env.hb.socket).expect("connect");
    for (what, req) in [
        ("garbage", b"garbage\n".to_vec()),
        ("unknown command", b"{\"command\":\"explode\"}\n".to_vec()),
        ("oversized", vec![b'{'; 100_000]),
    ] {
        let reply = raw_request(&env.hb.socket, &req);
        let v: Value = serde_json::from_str(reply.trim())
            .unwrap_or_else(|e| panic!("{what}: reply is not JSON ({e}): {reply:?}"));
        assert!(
            !v["error"].is_null() && v["error"] != false,
            "{what}: no error in the reply: {v}"
        );
    }
    let st = env.hb.status_json().expect("status still answers");
    assert!(!st["peers"].as_array().unwrap().is_empty(), "{st}");
    let up = uptime(&env.hb, "r1");
    assert!(up >= 1, "session was reset by bad requests");
    drop(idle);
    assert!(env.router.protocol("h1").established());
}

/// Issue 15, logs: the level changes at run time, a bad level is refused with the
/// levels it takes, session lines name their peer, a refused reload is logged, and
/// nothing written to a file carries terminal colours.
#[test]
fn logs_name_peers_and_change_level_at_run_time() {
    if !lab::require_root("logs_name_peers_and_change_level_at_run_time") {
        return;
    }
    let env = crate::speaker::Env::established(crate::speaker::Opts::default());
    let o = cli(&env.hb, &["log-level", "info"]);
    assert!(
        o.status.success() && out_text(&o).contains("log level: info"),
        "{}",
        out_text(&o)
    );
    let o = cli(&env.hb, &["log-level"]);
    assert!(
        o.status.success() && out_text(&o).contains("log level: info"),
        "{}",
        out_text(&o)
    );
    let o = cli(&env.hb, &["log-level", "loud"]);
    assert!(!o.status.success(), "{}", out_text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a level"),
        "{}",
        out_text(&o)
    );
    let o = cli(&env.hb, &["log-level", "debug"]);
    assert!(
        o.status.success() && out_text(&o).contains("log level: debug"),
        "{}",
        out_text(&o)
    );
    env.hb.write_config("config: {core.bgp_asn: 0}\n");
    let o = cli(&env.hb, &["reload"]);
    assert!(!o.status.success(), "{}", out_text(&o));
    let log = env.hb.log_text();
    assert!(log.contains("log level set to debug"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("reload refused") && !l.contains("SIGHUP")),
        "a refused reload over the socket is logged:\n{log}"
    );
    let established = log
        .lines()
        .find(|l| l.contains("session established"))
        .unwrap_or_default();
    assert!(
        established.contains("peer{") && established.contains("name=r1"),
        "session lines carry the peer's span: {established}"
    );
    assert!(!log.contains('\u{1b}'), "no ANSI colour in a log file");
}

/// Issue 15, status: what explains a session survives it going down. The router shuts
/// the session down with an RFC 8203 message: status keeps that NOTIFICATION (apart
/// from connect errors), says since when the session is down, counts the flap and
/// the messages by type, and shows the router id, hold times and both sides'
/// capabilities once it is back.
#[test]
fn status_explains_a_session_that_went_down() {
    if !lab::require_root("status_explains_a_session_that_went_down") {
        return;
    }
    let env = crate::speaker::Env::established(crate::speaker::Opts::default());
    let up = env.hb.peer("r1").expect("peer r1");
    assert_eq!(up["established_transitions"], 1, "{up}");
    assert_eq!(up["peer_router_id"], lab::ROUTER_V4, "{up}");
    assert_eq!(up["capabilities"]["hold_time"], 90, "{up}");
    assert_eq!(up["capabilities"]["keepalive_secs"], 30, "{up}");
    let offered = up["capabilities_offered"].to_string();
    let received = up["capabilities_received"].to_string();
    assert!(
        offered.contains("graceful restart") && offered.contains("4-octet AS"),
        "{up}"
    );
    assert!(received.contains("multiprotocol ipv6-unicast"), "{up}");
    assert!(up["messages_sent"]["open"].as_u64() >= Some(1), "{up}");
    assert!(
        up["messages_received"]["keepalive"].as_u64() >= Some(1),
        "{up}"
    );
    assert!(up["messages_sent"]["update"].as_u64() >= Some(1), "{up}");

    env.router
        .birdc(&["disable", "h1", "\"maintenance window\""]);
    let down = wait_until_state(
        "status keeps the router's shutdown message",
        TIMEOUT,
        || {
            let p = env.hb.peer("r1").unwrap_or_default();
            let ok = p["state"] != "Established"
                && p["last_notification_received"]["message"] == "maintenance window";
            (ok, p)
        },
    );
    let n = notification(&down, "last_notification_received", (6, 2));
    assert!(
        n["name"]
            .as_str()
            .is_some_and(|s| s.contains("Administrative Shutdown")),
        "{down}"
    );
    assert!(
        down["down_since_unix"].is_u64() && down["up_since_unix"].is_null(),
        "{down}"
    );
    // Reconnect attempts fail while the router is disabled: connect errors go to
    // last_error and never overwrite the NOTIFICATION.
    std::thread::sleep(Duration::from_secs(3));
    let later = env.hb.peer("r1").unwrap_or_default();
    assert_eq!(
        later["last_notification_received"],
        down["last_notification_received"]
    );
    let text = out_text(&cli(&env.hb, &["status"]));
    assert!(
        text.contains(
            "last NOTIFICATION received: Cease/Administrative Shutdown: \"maintenance window\""
        ),
        "{text}"
    );
    assert!(text.contains("down for"), "{text}");

    env.router.birdc(&["enable", "h1"]);
    let back = wait_until_state("re-established, flap counted", TIMEOUT, || {
        let p = env.hb.peer("r1").unwrap_or_default();
        (
            p["state"] == "Established" && p["established_transitions"] == 2,
            p,
        )
    });
    assert!(
        back["up_since_unix"].is_u64() && back["down_since_unix"].is_null(),
        "{back}"
    );
    assert_eq!(
        back["last_notification_received"]["message"],
        "maintenance window"
    );
    let text = out_text(&cli(&env.hb, &["status"]));
    assert!(
        text.contains("router id") && text.contains("established 2 time(s)"),
        "{text}"
    );
}

/// `GET /metrics` on the host's loopback, as Prometheus scrapes it.
fn scrape(l: &Lab, ns: &str, url: &str) -> Result<String, String> {
    let code = format!(
        "import sys, urllib.request\nr = urllib.request.urlopen('{url}', timeout=5)\nsys.stdout.write(r.headers['Content-Type'] + '\\n' + r.read().decode())"
    );
    l.try_exec(ns, &["python3", "-c", &code])
}

/// Issue 15, metrics: `hostbgp.metrics_address` serves the issue's metric names, and
/// `promtool check metrics` accepts them.
#[test]
fn metrics_pass_promtool() {
    if !lab::require_root("metrics_pass_promtool") {
        return;
    }
    assert!(
        lab::run(&["promtool", "--version"]).is_ok(),
        "promtool is missing: install Debian's prometheus package (.ci/run does)"
    );
    let env = crate::speaker::Env::start(crate::speaker::Opts {
        keys: vec![],
        ..Default::default()
    });
    env.wait_established();
    let (l, h) = (&env.topo.lab, &env.topo.h);
    l.ip(h, &["link", "set", "lo", "up"]);
    // Turned on by a reload: the listener follows the config.
    let yaml = crate::speaker::config_yaml(lab::ROUTER_V6, &[], "").replacen(
        "config:\n",
        "config:\n  hostbgp.metrics_address: \"127.0.0.1:9179\"\n",
        1,
    );
    env.hb.write_config(&yaml);
    env.hb.reload().expect("reload");
    let text = wait_until_state("metrics served", TIMEOUT, || {
        match scrape(l, h, "http://127.0.0.1:9179/metrics") {
            Ok(t) => (t.contains("hostbgp_peer_up"), t),
            Err(e) => (false, e),
        }
    });
    let (content_type, body) = text.split_once('\n').unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    for want in [
        "hostbgp_peer_up{peer=\"r1\",network=\"br0\"} 1",
        "hostbgp_peer_prefixes_advertised{peer=\"r1\",afi=\"ipv6\"}",
        "hostbgp_peer_messages_sent_total{peer=\"r1\",type=\"update\"}",
        "hostbgp_peer_messages_received_total{peer=\"r1\",type=\"keepalive\"}",
        "hostbgp_peer_established_transitions_total{peer=\"r1\"} 1",
        "hostbgp_kernel_routes{state=\"installed\"}",
        "hostbgp_event_to_update_seconds_bucket",
    ] {
        assert!(body.contains(want), "{want} missing:\n{body}");
    }
    let file = l.path("metrics.txt");
    std::fs::write(&file, body).expect("write metrics");
    let check = lab::run_cmd(
        Command::new("sh")
            .arg("-c")
            .arg(format!("promtool check metrics < {}", file.display())),
    );
    assert!(check.is_ok(), "promtool check metrics: {check:?}\n{body}");
    // Anything but GET /metrics is refused.
    let other = scrape(l, h, "http://127.0.0.1:9179/");
    assert!(
        other.is_err_and(|e| e.contains("404")),
        "only /metrics is served"
    );
}

/// Issue 19: LXD re-applies a bridge's addresses (flush, then add) on every `lxc
/// network set` and daemon start. The subnets must not flap at the router; an address
/// that really goes is still withdrawn.
#[test]
fn bridge_address_flush_and_re_add_is_no_flap() {
    if !lab::require_root("bridge_address_flush_and_re_add_is_no_flap") {
        return;
    }
    let env = Env::established(EnvOpts {
        instances: "",
        ..Default::default()
    });
    env.router.wait_route(BR_NET_V4);
    env.router.wait_route(BR_NET_V6);
    let (l, h) = (&env.topo.lab, &env.topo.h);
    let offset = log_len(&env.router.log);
    let batch = l.path("readd.batch");
    fs::write(
        &batch,
        format!(
            "addr flush dev br0\naddr add 192.0.2.1/24 dev br0\naddr add {} dev br0 nodad\n",
            lab::BR_V6
        ),
    )
    .expect("write batch");
    for _ in 0..3 {
        l.ip(h, &["-batch", &batch.to_string_lossy()]);
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = log_since(&env.router.log, offset);
    let removals = bird_removals(&log, &[BR_NET_V4, BR_NET_V6]);
    assert!(
        removals.is_empty(),
        "the router saw the subnets flap: {removals:?}"
    );
    let have = env.router.routes();
    assert!(
        have.iter().any(|r| r.prefix == BR_NET_V4) && have.iter().any(|r| r.prefix == BR_NET_V6)
    );
    // Gone for good: withdrawn once the hold-down ends.
    l.ip(h, &["addr", "del", "192.0.2.1/24", "dev", "br0"]);
    wait_until("the IPv4 subnet withdrawn", TIMEOUT, || {
        !env.router.routes().iter().any(|r| r.prefix == BR_NET_V4)
    });
}

/// Issue 15: `hostbgp disable PEER --message TEXT` closes the session with an RFC 8203
/// administrative shutdown the router reads, keeps it down across a reload, and
/// `enable` brings it back.
#[test]
fn disable_and_enable_a_peer() {
    if !lab::require_root("disable_and_enable_a_peer") {
        return;
    }
    let env = crate::speaker::Env::established(crate::speaker::Opts::default());
    let o = cli(&env.hb, &["disable", "r1", "--message", "host maintenance"]);
    assert!(o.status.success(), "{}", out_text(&o));
    // bird sets no N bit: the shutdown goes out plain, and the reply says so.
    assert!(
        out_text(&o).contains("disabled (Cease/Administrative Shutdown: \"host maintenance\")"),
        "{}",
        out_text(&o)
    );
    let said = wait_until_state("the router got our shutdown message", TIMEOUT, || {
        let p = env.router.birdc(&["show", "protocols", "all", "h1"]);
        (p.contains("host maintenance"), p)
    });
    assert!(said.contains("Administrative shutdown"), "{said}");
    let st = env.hb.peer("r1").unwrap_or_default();
    assert_eq!(st["admin_down"], "host maintenance", "{st}");
    assert_eq!(
        st["last_notification_sent"]["message"], "host maintenance",
        "{st}"
    );
    // A reload keeps it down; nothing reconnects meanwhile.
    env.hb.reload().expect("reload");
    std::thread::sleep(Duration::from_secs(3));
    let st = env.hb.peer("r1").unwrap_or_default();
    assert_ne!(st["state"], "Established", "{st}");
    assert_eq!(st["admin_down"], "host maintenance", "{st}");
    let text = out_text(&cli(&env.hb, &["status"]));
    assert!(text.contains("(disabled: \"host maintenance\")"), "{text}");
    // Unknown peers are named as such.
    let o = cli(&env.hb, &["disable", "nope"]);
    assert!(
        !o.status.success() && out_text(&o).contains("no peer \"nope\""),
        "{}",
        out_text(&o)
    );
    let o = cli(&env.hb, &["enable", lab::ROUTER_V6]);
    assert!(o.status.success(), "{}", out_text(&o));
    env.wait_established();
    let st = env.hb.peer("r1").unwrap_or_default();
    assert!(
        st["admin_down"].is_null() && st["established_transitions"] == 2,
        "{st}"
    );
}
