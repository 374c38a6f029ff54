//! Issue 2 acceptance: the BGP speaker against a bird2 router.

use std::collections::BTreeMap;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::bird::{Bird, BirdPeer};
use crate::hostbgp::Hostbgp;
use crate::lab::{self, wait_until, wait_until_state, Topo, TIMEOUT};

/// Renders a hostbgp config: server AS 65010, router id 198.51.100.1, bridge `br0`
/// with peer `r1` (AS 65000) at `peer`. `keys` add to / override `br0`'s config;
/// `instances` is the YAML body of the `instances:` map (indented by 2), may be empty.
pub fn config_yaml(peer: &str, keys: &[(&str, &str)], instances: &str) -> String {
    bridge_config_yaml("br0", peer, keys, instances)
}

/// [`config_yaml`] with the bridge named `bridge`.
pub fn bridge_config_yaml(
    bridge: &str,
    peer: &str,
    keys: &[(&str, &str)],
    instances: &str,
) -> String {
    let mut net: BTreeMap<&str, &str> = BTreeMap::new();
    net.insert("ipv4.nat", "false");
    net.insert("ipv6.nat", "false");
    net.insert("bgp.peers.r1.address", peer);
    net.insert("bgp.peers.r1.asn", "65000");
    for (k, v) in keys {
        net.insert(k, v);
    }
    let mut s = format!(
        "config:\n  core.bgp_address: \"[::]:179\"\n  core.bgp_asn: \"65010\"\n  core.bgp_routerid: 198.51.100.1\nnetworks:\n  {bridge}:\n    type: bridge\n    config:\n",
    );
    for (k, v) in net {
        s.push_str(&format!("      {k}: \"{v}\"\n"));
    }
    if !instances.trim().is_empty() {
        s.push_str("instances:\n");
        s.push_str(instances);
        if !instances.ends_with('\n') {
            s.push('\n');
        }
    }
    s
}

/// A running router + agent. Field order = drop order: agent, router, then the lab.
pub struct Env {
    pub hb: Hostbgp,
    pub router: Bird,
    pub topo: Topo,
}

/// Options of [`Env::start`].
#[derive(Clone)]
pub struct Opts<'a> {
    /// Session over IPv6 (true) or IPv4.
    pub v6: bool,
    /// `extended next hop on` on bird's ipv4 channel.
    pub enh: bool,
    pub bird_password: Option<&'a str>,
    pub bird_hold: Option<u32>,
    pub keys: Vec<(&'a str, &'a str)>,
    pub bridge_addrs: Vec<&'a str>,
    pub instances: &'a str,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            v6: true,
            enh: false,
            bird_password: None,
            bird_hold: None,
            keys: Vec::new(),
            bridge_addrs: vec![lab::BR_V4, lab::BR_V6],
            instances: "",
        }
    }
}

impl Env {
    pub fn start(o: Opts) -> Env {
        let topo = Topo::new(&o.bridge_addrs);
        let (neighbor, peer) = if o.v6 {
            (lab::HOST_V6, lab::ROUTER_V6)
        } else {
            (lab::HOST_V4, lab::ROUTER_V4)
        };
        let mut bp = BirdPeer::router("h1", neighbor).extended_next_hop(o.enh);
        if let Some(pw) = o.bird_password {
            bp = bp.password(pw);
        }
        if let Some(h) = o.bird_hold {
            bp = bp.hold_time(h);
        }
        let router = Bird::router(&topo, vec![bp]);
        let hb = Hostbgp::ready(&topo.lab, &topo.h, &config_yaml(peer, &o.keys, o.instances));
        Env { hb, router, topo }
    }

    /// Started with `o`, the session up on both sides.
    pub fn established(o: Opts) -> Env {
        let env = Env::start(o);
        env.wait_established();
        env
    }

    /// Both sides agree the session is up.
    pub fn wait_established(&self) -> Value {
        self.router.wait_established("h1");
        self.hb.wait_peer_state("r1", "Established")
    }
}

fn contains_ci(v: &Value, needle: &str) -> bool {
    v.as_str()
        .is_some_and(|s| s.to_lowercase().contains(&needle.to_lowercase()))
}

/// One session carries both families; bird accepts every route.
fn both_families(v6: bool, enh: bool) {
    let env = Env::start(Opts {
        v6,
        enh,
        ..Default::default()
    });
    let peer = env.wait_established();
    let fams = peer["families"].to_string();
    assert!(
        fams.contains("ipv4-unicast") && fams.contains("ipv6-unicast"),
        "{peer}"
    );

    let r4 = env.router.wait_route("203.0.113.0/24");
    let r6 = env.router.wait_route("2001:db8:100::/64");
    if enh {
        assert!(
            r4.next_hops == [lab::HOST_V4] || r4.next_hops == [lab::HOST_V6],
            "{r4:?}"
        );
    } else {
        assert_eq!(r4.next_hops, [lab::HOST_V4], "{r4:?}");
    }
    assert_eq!(r6.next_hops, [lab::HOST_V6], "{r6:?}");
    env.router.assert_no_nexthop_errors();

    // Installed by bird's kernel protocol into the router's kernel.
    wait_until("router kernel route 203.0.113.0/24", TIMEOUT, || {
        !env.topo
            .lab
            .routes(&env.topo.r, false, &["203.0.113.0/24"])
            .is_empty()
    });
    wait_until("router kernel route 2001:db8:100::/64", TIMEOUT, || {
        !env.topo
            .lab
            .routes(&env.topo.r, true, &["2001:db8:100::/64"])
            .is_empty()
    });
    let p = env.hb.wait_peer_state("r1", "Established");
    assert!(
        p["prefixes_sent"]["ipv4-unicast"].as_u64() >= Some(1),
        "{p}"
    );
    assert!(
        p["prefixes_sent"]["ipv6-unicast"].as_u64() >= Some(1),
        "{p}"
    );
    assert!(p["last_error"].is_null(), "{p}");
    assert_eq!(p["asn"], 65000, "{p}");
    assert_eq!(p["networks"], serde_json::json!(["br0"]), "{p}");
    let st = env.hb.status_json().expect("status --json");
    assert_eq!(st["server"]["asn"], 65010, "{st}");
    assert_eq!(st["server"]["router_id"], "198.51.100.1", "{st}");
    assert_eq!(st["server"]["member"], "host", "{st}");
    let routes = env.hb.routes_json().expect("routes --json");
    let bridge_v4 = routes
        .as_array()
        .and_then(|a| a.iter().find(|r| r["prefix"] == "203.0.113.0/24"))
        .unwrap_or_else(|| panic!("routes --json lacks 203.0.113.0/24: {routes}"));
    assert_eq!(bridge_v4["owner"], "network/br0", "{routes}");
    // Still clean after the session has run for a while (no late NOTIFICATION).
    env.router.assert_clean("h1");
}

/// One `#[test]` a case of `both_families(v6, enh)`.
macro_rules! both_families_tests {
    ($($name:ident: $v6:expr, $enh:expr;)*) => {$(
        #[test]
        fn $name() {
            if lab::require_root(stringify!($name)) {
                both_families($v6, $enh);
            }
        }
    )*};
}

both_families_tests! {
    ipv6_session_both_families: true, false;
    ipv6_session_both_families_extended_next_hop: true, true;
    ipv4_session_both_families: false, false;
    ipv4_session_both_families_extended_next_hop: false, true;
}

#[test]
fn bridge_address_added_then_removed() {
    if !lab::require_root("bridge_address_added_then_removed") {
        return;
    }
    let env = Env::established(Opts {
        bridge_addrs: vec![lab::BR_V6],
        ..Default::default()
    });
    env.router.wait_route("2001:db8:100::/64");
    assert!(env.router.route("203.0.113.0/24").is_empty());

    env.topo.lab.addr(&env.topo.h, "br0", "203.0.113.1/24");
    let r = env.router.wait_route("203.0.113.0/24");
    assert_eq!(r.next_hops, [lab::HOST_V4], "{r:?}");

    env.topo.lab.del_addr(&env.topo.h, "br0", "203.0.113.1/24");
    env.router.wait_no_route("203.0.113.0/24");
    // The other family is untouched and the session stays up.
    assert_eq!(env.router.route("2001:db8:100::/64").len(), 1);
    env.router.assert_clean("h1");
}

/// Over an IPv6 session without extended next hop, IPv4 prefixes take the IPv4 address
/// beside the session's own address; when that address changes, they follow it.
#[test]
fn ipv4_next_hop_follows_the_uplink_address() {
    if !lab::require_root("ipv4_next_hop_follows_the_uplink_address") {
        return;
    }
    let env = Env::established(Opts::default());
    let r = env.router.wait_route("203.0.113.0/24");
    assert_eq!(r.next_hops, [lab::HOST_V4], "{r:?}");

    let host_v4 = format!("{}/24", lab::HOST_V4);
    env.topo.lab.del_addr(&env.topo.h, "eth0", &host_v4);
    env.router.wait_no_route("203.0.113.0/24");
    let p = env.hb.wait_peer_state("r1", "Established");
    assert!(p.to_string().contains("no IPv4 address"), "{p}");

    env.topo.lab.addr(&env.topo.h, "eth0", "198.51.100.77/24");
    wait_until_state("203.0.113.0/24 via the new address", TIMEOUT, || {
        let r = env.router.route("203.0.113.0/24");
        (r.len() == 1 && r[0].next_hops == ["198.51.100.77"], r)
    });
    // The IPv6 prefix kept its next hop and the session never dropped.
    assert_eq!(
        env.router.wait_route("2001:db8:100::/64").next_hops,
        [lab::HOST_V6]
    );
    env.router.assert_clean("h1");
}

#[test]
fn nat_advertises_only_nat_address() {
    if !lab::require_root("nat_advertises_only_nat_address") {
        return;
    }
    let env = Env::established(Opts {
        keys: vec![("ipv4.nat", "true"), ("ipv4.nat.address", "198.51.100.9")],
        ..Default::default()
    });
    env.router.wait_route("198.51.100.9/32");
    env.router.wait_route("2001:db8:100::/64");
    let v4: Vec<String> = env
        .router
        .routes()
        .into_iter()
        .filter(|r| !r.prefix.contains(':'))
        .map(|r| r.prefix)
        .collect();
    assert_eq!(
        v4,
        ["198.51.100.9/32"],
        "only the NAT address is advertised"
    );
}

#[test]
fn nexthop_override_keys() {
    if !lab::require_root("nexthop_override_keys") {
        return;
    }
    let env = Env::established(Opts {
        keys: vec![
            ("bgp.ipv4.nexthop", "198.51.100.7"),
            ("bgp.ipv6.nexthop", "2001:db8:ff::7"),
        ],
        ..Default::default()
    });
    let r4 = env.router.wait_route("203.0.113.0/24");
    let r6 = env.router.wait_route("2001:db8:100::/64");
    assert_eq!(r4.next_hops, ["198.51.100.7"], "{r4:?}");
    assert_eq!(r6.next_hops, ["2001:db8:ff::7"], "{r6:?}");
    env.router.assert_no_nexthop_errors();
}

#[test]
fn md5_matching_password_establishes() {
    if !lab::require_root("md5_matching_password_establishes") {
        return;
    }
    let env = Env::established(Opts {
        bird_password: Some("s3cret"),
        keys: vec![("bgp.peers.r1.password", "s3cret")],
        ..Default::default()
    });
    env.router.wait_route("203.0.113.0/24");
    let st = env.hb.status_json().expect("status");
    assert!(
        !st.to_string().contains("s3cret"),
        "status must never print passwords: {st}"
    );
}

#[test]
fn md5_wrong_password_never_establishes() {
    if !lab::require_root("md5_wrong_password_never_establishes") {
        return;
    }
    let env = Env::start(Opts {
        bird_password: Some("right"),
        keys: vec![("bgp.peers.r1.password", "wrong")],
        ..Default::default()
    });
    let peer = wait_until_state("status last_error mentions MD5", TIMEOUT * 2, || {
        let p = env.hb.peer("r1").unwrap_or(Value::Null);
        (contains_ci(&p["last_error"], "md5"), p)
    });
    assert_ne!(peer["state"], "Established", "{peer}");
    let bp = env.router.protocol("h1");
    assert!(!bp.established(), "{}", bp.raw);
    assert!(!env.hb.status_json().unwrap().to_string().contains("wrong"));
}

#[test]
fn unconfigured_address_gets_no_open() {
    if !lab::require_root("unconfigured_address_gets_no_open") {
        return;
    }
    let env = Env::established(Opts::default());
    let lab = &env.topo.lab;
    lab.addr(&env.topo.r, "eth0", "198.51.100.3/24");
    lab.addr(&env.topo.r, "eth0", "2001:db8:ff::3/64");
    for (src, dst, fam) in [
        ("198.51.100.3", lab::HOST_V4, "AF_INET"),
        ("2001:db8:ff::3", lab::HOST_V6, "AF_INET6"),
    ] {
        // Connects from the unconfigured source, reads until EOF/RST; prints the
        // byte count. A timeout (connection held open) raises and fails the test.
        let script = format!(
            "import socket\n\
             s=socket.socket(socket.{fam},socket.SOCK_STREAM)\n\
             s.settimeout(20)\n\
             s.bind(('{src}',0))\n\
             s.connect(('{dst}',179))\n\
             n=0\n\
             try:\n\
             \x20   while True:\n\
             \x20       b=s.recv(4096)\n\
             \x20       if not b: break\n\
             \x20       n+=len(b)\n\
             except ConnectionResetError:\n\
             \x20   pass\n\
             print(n)\n"
        );
        let out = lab.exec(&env.topo.r, &["python3", "-c", &script]);
        assert_eq!(out.trim(), "0", "connection from {src} received bytes");
    }
    // The configured session is unaffected.
    assert!(env.router.protocol("h1").established());
}

#[test]
fn hold_timer_expiry_and_reconnect() {
    if !lab::require_root("hold_timer_expiry_and_reconnect") {
        return;
    }
    let env = Env::established(Opts {
        bird_hold: Some(9),
        keys: vec![("bgp.peers.r1.holdtime", "9")],
        ..Default::default()
    });
    env.router.wait_route("203.0.113.0/24");

    // The router goes silent: bird is frozen, its kernel still ACKs nothing new.
    env.router.signal(Signal::SIGSTOP);
    wait_until_state("hostbgp hold timer expires", TIMEOUT * 2, || {
        let p = env.hb.peer("r1").unwrap_or(Value::Null);
        let down = p["state"] != "Established" && !p["state"].is_null();
        (down && contains_ci(&p["last_error"], "hold"), p)
    });

    // The router comes back: the session is re-established and routes re-learned.
    env.router.signal(Signal::SIGCONT);
    env.wait_established();
    env.router.wait_route("203.0.113.0/24");
    env.router.wait_route("2001:db8:100::/64");
}

/// A capability mask (`CapEff:`, `CapBnd:` ...) from a `/proc/.../status` text.
fn cap_mask(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} missing"));
    u64::from_str_radix(line[field.len()..].trim(), 16).expect("hex mask")
}

/// Every thread of `pid`: (tid, name from `comm`, `status` text). Capabilities are
/// per thread, so `/proc/PID/status` (the main thread) is not enough.
fn threads(pid: i32) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).expect("read /proc/PID/task") {
        let dir = e.expect("task entry").path();
        let tid = dir.file_name().unwrap().to_string_lossy().into_owned();
        // A thread that exits between read_dir and here is no longer a concern.
        let (Ok(comm), Ok(status)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("status")),
        ) else {
            continue;
        };
        out.push((tid, comm.trim().to_string(), status));
    }
    out
}

#[test]
fn capabilities_dropped_after_start() {
    if !lab::require_root("capabilities_dropped_after_start") {
        return;
    }
    let env = Env::established(Opts::default());
    let pid = env.hb.pid().expect("agent pid");
    // CAP_NET_BIND_SERVICE is bit 10, CAP_NET_ADMIN bit 12, CAP_NET_RAW bit 13.
    let allowed: u64 = (1 << 10) | (1 << 12) | (1 << 13);
    let tasks = threads(pid);
    assert!(
        tasks.iter().any(|(tid, _, _)| *tid == pid.to_string()),
        "main thread {pid} missing from /proc/{pid}/task: {:?}",
        tasks.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    let mut bad = Vec::new();
    for (tid, comm, status) in &tasks {
        let want = [
            ("CapEff:", allowed),
            ("CapPrm:", allowed),
            ("CapBnd:", allowed),
            ("CapInh:", 0),
            ("CapAmb:", 0),
        ];
        if want.iter().any(|(f, w)| cap_mask(status, f) != *w) {
            let masks: Vec<String> = want
                .iter()
                .map(|(f, _)| format!("{f} {:#018x}", cap_mask(status, f)))
                .collect();
            bad.push(format!("thread {tid} ({comm:?}): {}", masks.join(" ")));
        }
    }
    eprintln!(
        "capabilities_dropped_after_start: {} thread(s) checked: {:?}",
        tasks.len(),
        tasks
            .iter()
            .map(|(t, c, _)| format!("{t} {c}"))
            .collect::<Vec<_>>()
    );
    assert!(
        bad.is_empty(),
        "only NET_ADMIN, NET_BIND_SERVICE and NET_RAW ({allowed:#x}) may remain in CapEff/CapPrm/CapBnd, \
         nothing in CapInh/CapAmb, in every thread:\n{}",
        bad.join("\n")
    );
    // And the agent still does its job with them: the routes reach the router.
    env.router.wait_route("203.0.113.0/24");
}
