//! Issue 16 items 2 and 3: per-peer export scope (`bgp.peers.NAME.export`) and the
//! RFC 8326 drain (`hostbgp drain` / `undrain`, `hostbgp.drain_time` before a full
//! shutdown's withdraw), as bird2 receives them.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bird::{Bird, BirdConfig, BirdPeer, BirdRoute};
use crate::hostbgp::{Hostbgp, BIN};
use crate::lab::{self, wait_until_state, Topo, TIMEOUT};
use crate::speaker::{config_yaml, Env, Opts};

/// The GRACEFUL_SHUTDOWN community as bird prints it.
const GSHUT: &str = "(65535,0)";
const BR0_NET: &str = "203.0.113.0/24";
const BR0_NET_V6: &str = "2001:db8:100::/64";
const BR1_NET: &str = "192.0.2.0/25";
/// A route the router announces to us (a private range inside the lab), and the
/// community it tags it with.
const PEER_NET: &str = "10.99.0.0/24";
const PEER_COMMUNITY: &str = "(65000,666)";
/// The external route of instance c1's NIC on br1.
const C1_NET: &str = "192.0.2.192/28";

fn communities(r: &BirdRoute) -> String {
    r.attr("BGP.community").unwrap_or("").to_string()
}

/// Prefixes bird holds from protocol `proto`.
fn heard(router: &Bird, proto: &str) -> Vec<String> {
    let mut p = router.prefixes_from(proto);
    p.sort();
    p
}

fn wait_heard(router: &Bird, proto: &str, want: &[&str]) {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    wait_until_state(
        &format!("bird protocol {proto} holds exactly {want:?}"),
        TIMEOUT,
        || {
            let now = heard(router, proto);
            (now == want, now)
        },
    );
}

fn peer_field(hb: &Hostbgp, name: &str, field: &str) -> Value {
    hb.peer(name)
        .map(|p| p[field].clone())
        .unwrap_or(Value::Null)
}

/// `routes --json`'s entry for `prefix`, which must be there.
fn route_entry(hb: &Hostbgp, prefix: &str) -> Value {
    let routes = hb.routes_json().expect("routes --json");
    routes
        .as_array()
        .and_then(|a| a.iter().find(|r| r["prefix"] == prefix))
        .cloned()
        .unwrap_or_else(|| panic!("{prefix} in routes --json: {routes}"))
}

/// Two networks, two peers: `r1` (bird protocol h1, over IPv4) declared on br0,
/// `r2` (h2, over IPv6) declared on br1, where instance c1's NIC is;
/// `r1_export`/`r2_export` their scopes.
fn two_networks_yaml(r1_export: &str, r2_export: &str) -> String {
    format!(
        "config:
  core.bgp_address: \"[::]:179\"
  core.bgp_asn: \"65010\"
  core.bgp_routerid: 198.51.100.1
networks:
  br0:
    type: bridge
    config:
      ipv4.nat: \"false\"
      bgp.peers.r1.address: {r1}
      bgp.peers.r1.asn: \"65000\"
      bgp.peers.r1.export: {r1_export}
  br1:
    type: bridge
    config:
      ipv4.nat: \"false\"
      bgp.peers.r2.address: \"{r2}\"
      bgp.peers.r2.asn: \"65001\"
      bgp.peers.r2.export: {r2_export}
instances:
  c1:
    devices:
      eth0: {{type: nic, network: br1, host_name: vc1, ipv4.routes.external: {C1_NET}}}
",
        r1 = lab::ROUTER_V4,
        r2 = lab::ROUTER_V6,
    )
}

#[test]
fn export_network_scopes_one_peer_and_a_reload_flips_it_without_a_reset() {
    if !lab::require_root("export_network_scopes_one_peer_and_a_reload_flips_it_without_a_reset") {
        return;
    }
    let topo = Topo::new(&[lab::BR_V4]);
    let (l, h) = (&topo.lab, &topo.h);
    l.bridge(h, "br1");
    l.addr(h, "br1", "192.0.2.1/25");
    crate::instances::instance(l, h, "i1", "vc1", &["192.0.2.193/32"]);
    l.enslave(h, "vc1", "br1");
    // h1 also announces a route of its own with its community; h2 is another AS, so
    // bird would accept that route from us (no AS loop) if we ever passed it on.
    let mut h2 = BirdPeer::router("h2", lab::HOST_V6);
    h2.local_as = 65001;
    let mut cfg = BirdConfig::router(
        lab::ROUTER_V4,
        vec![
            BirdPeer::router("h1", lab::HOST_V4).send_static_with_community(PEER_COMMUNITY),
            h2,
        ],
    );
    cfg.static_routes = vec![format!("{PEER_NET} blackhole")];
    let router = Bird::start(l, &topo.r, "router", &cfg);
    let hb = Hostbgp::ready(l, h, &two_networks_yaml("network", "all"));
    router.wait_established("h1");
    router.wait_established("h2");
    hb.wait_peer_state("r1", "Established");
    hb.wait_peer_state("r2", "Established");

    // r1 hears only br0's prefix, r2 (export all, LXD's way) every one.
    wait_heard(&router, "h2", &[BR0_NET, BR1_NET, C1_NET]);
    wait_heard(&router, "h1", &[BR0_NET]);
    assert_eq!(peer_field(&hb, "r1", "export"), "network");
    assert_eq!(peer_field(&hb, "r2", "export"), "all");
    let br1 = route_entry(&hb, BR1_NET);
    assert!(
        br1["next_hops"].get("r2").is_some() && br1["next_hops"].get("r1").is_none(),
        "routes shows who was told: {br1}"
    );

    // Flip both scopes by reload: the routes follow, the sessions stay.
    let transitions = |name| peer_field(&hb, name, "established_transitions");
    let updates = |name| peer_field(&hb, name, "messages_sent")["update"].as_u64();
    let before = (transitions("r1"), transitions("r2"));
    let updates_before = (updates("r1"), updates("r2"));
    hb.write_config(&two_networks_yaml("all", "network"));
    hb.reload().expect("hostbgp reload");
    wait_heard(&router, "h1", &[BR0_NET, BR1_NET, C1_NET]);
    wait_heard(&router, "h2", &[BR1_NET, C1_NET]);
    eprintln!(
        "after the flip: h1 {:?}, h2 {:?}",
        heard(&router, "h1"),
        heard(&router, "h2")
    );
    assert_eq!(
        (transitions("r1"), transitions("r2")),
        before,
        "an export change resets no session"
    );
    for proto in ["h1", "h2"] {
        let p = router.protocol(proto);
        assert!(p.established(), "{proto}: {}", p.raw);
        assert!(
            !p.raw.contains("Received:"),
            "{proto} got a NOTIFICATION: {}",
            p.raw
        );
    }
    // Only the difference went out: one UPDATE each (br1's two prefixes share a
    // path, so one announce to r1; one withdraw to r2), not the whole table again.
    let (r1_after, r2_after) = (updates("r1"), updates("r2"));
    for (name, was, now) in [
        ("r1", updates_before.0, r1_after),
        ("r2", updates_before.1, r2_after),
    ] {
        let (Some(was), Some(now)) = (was, now) else {
            panic!("{name}: no update counters");
        };
        assert!(
            (1..=2).contains(&(now - was)),
            "{name}: {} UPDATEs for a one-path change",
            now - was
        );
    }
    assert_peer_routes_stay_out(&hb, &router, h);
    router.assert_no_nexthop_errors();
}

/// Item 5: what a peer announces is counted, never installed nor passed on, and its
/// community never shows up on our paths.
fn assert_peer_routes_stay_out(hb: &Hostbgp, router: &Bird, h: &str) {
    wait_until_state("hostbgp counts the router's route", TIMEOUT, || {
        let n = peer_field(hb, "r1", "prefixes_received");
        (n.as_u64() >= Some(1), n)
    });
    let mine = heard(router, "h1").len() + heard(router, "h2").len();
    assert!(mine > 0);
    for r in router.routes() {
        if r.protocol == "h1" || r.protocol == "h2" {
            assert_ne!(r.prefix, PEER_NET, "passed on: {r:?}");
            assert!(!communities(&r).contains(PEER_COMMUNITY), "leaked: {r:?}");
        }
    }
    assert!(
        !hb.advertised().iter().any(|p| p == PEER_NET),
        "routes lists the peer's prefix"
    );
    let kernel = topo_route(h, PEER_NET);
    assert!(kernel.trim().is_empty(), "installed: {kernel}");
}

/// `ip route show PREFIX` in the host namespace (read only).
fn topo_route(ns: &str, prefix: &str) -> String {
    Command::new("ip")
        .args(["-n", ns, "-4", "route", "show", prefix])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

/// `hostbgp drain` tags every path (next to the network's own community) and keeps
/// it through a reload and for a session that comes up meanwhile; `undrain` removes it.
#[test]
fn drain_and_undrain_reach_bird() {
    if !lab::require_root("drain_and_undrain_reach_bird") {
        return;
    }
    let keys = [("bgp.communities", "65010:100")];
    let env = Env::established(Opts {
        keys: keys.to_vec(),
        ..Default::default()
    });
    for p in [BR0_NET, BR0_NET_V6] {
        let r = env.router.wait_route(p);
        assert!(!communities(&r).contains(GSHUT), "{r:?}");
    }
    let out = cli(&env.hb, &["drain"]);
    assert!(out.contains("drained"), "{out}");
    wait_all_drained(&env.router, true);
    let r = env.router.wait_route(BR0_NET);
    assert!(communities(&r).contains("(65010,100)"), "{r:?}");
    let st = env.hb.status_json().expect("status");
    assert_eq!(st["server"]["drained"], true, "{st}");
    let text = cli(&env.hb, &["status"]);
    assert!(text.contains("drained"), "{text}");
    let br0 = route_entry(&env.hb, BR0_NET);
    assert_eq!(
        br0["attributes"]["communities"],
        serde_json::json!(["65010:100", "65535:0"]),
        "{br0}"
    );

    // A reload keeps the drain (and applies the new attributes under it).
    let changed = [("bgp.communities", "65010:101")];
    env.hb
        .write_config(&config_yaml(lab::ROUTER_V6, &changed, ""));
    env.hb.reload().expect("reload");
    wait_until_state("bird sees 65010:101 and still 65535:0", TIMEOUT, || {
        let r = env.router.route(BR0_NET);
        let c = r.first().map(communities).unwrap_or_default();
        (c.contains("(65010,101)") && c.contains(GSHUT), r)
    });

    // A session that comes up while drained gets the drained paths.
    env.router.disable("h1");
    wait_until_state("hostbgp sees r1 go down", TIMEOUT, || {
        let state = peer_field(&env.hb, "r1", "state");
        (state != "Established", state)
    });
    env.router.enable("h1");
    env.wait_established();
    wait_all_drained(&env.router, true);

    let out = cli(&env.hb, &["undrain"]);
    assert!(out.contains("undrained"), "{out}");
    wait_all_drained(&env.router, false);
    let r = env.router.wait_route(BR0_NET);
    assert!(communities(&r).contains("(65010,101)"), "{r:?}");
    assert_eq!(
        env.hb.status_json().expect("status")["server"]["drained"],
        false
    );
    env.router.assert_no_nexthop_errors();
}

/// A full shutdown with `hostbgp.drain_time: 2`: bird sees GRACEFUL_SHUTDOWN first and
/// the withdraw only later; with `0` the shutdown withdraws at once.
#[test]
fn shutdown_drains_for_drain_time_before_the_withdraw() {
    let Some(env) =
        start_with_drain_time("shutdown_drains_for_drain_time_before_the_withdraw", "2")
    else {
        return;
    };
    let mut hb = env.hb;
    let (ns, socket) = (hb.ns.clone(), hb.socket.clone());
    let started = Instant::now();
    let client = std::thread::spawn(move || cli_at(&ns, &socket, &["shutdown"]));
    // Watch bird: the community, then the withdraw.
    let mut drained_at = None;
    let withdrawn_at = loop {
        let r = env.router.route(BR0_NET);
        match r.first() {
            None => break started.elapsed(),
            Some(r) if communities(r).contains(GSHUT) && drained_at.is_none() => {
                drained_at = Some(started.elapsed());
            }
            Some(_) => {}
        }
        assert!(started.elapsed() < TIMEOUT, "bird still holds {BR0_NET}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = client.join().expect("client thread");
    assert!(
        out.contains("drained, then every prefix withdrawn"),
        "{out}"
    );
    let drained_at =
        drained_at.unwrap_or_else(|| panic!("bird never saw {GSHUT} before the withdraw"));
    eprintln!("bird: drained at {drained_at:?}, withdrawn at {withdrawn_at:?}");
    // Functional ordering, with a generous bound: the withdraw waited for most of
    // the 2 s drain rather than following the drained announce at once.
    assert!(
        withdrawn_at >= drained_at + Duration::from_secs(1),
        "drained at {drained_at:?}, withdrawn at {withdrawn_at:?}"
    );
    let st = hb.wait_exit(TIMEOUT).expect("agent exits");
    assert!(st.success(), "{st}");
    let p = wait_until_state("bird shows the shutdown message", TIMEOUT, || {
        let p = env.router.protocol("h1");
        (p.raw.contains("administrative shutdown"), p.raw)
    });
    eprintln!("bird protocol after the drained shutdown:\n{p}");
}

#[test]
fn drain_time_zero_skips_the_drain() {
    let Some(env) = start_with_drain_time("drain_time_zero_skips_the_drain", "0") else {
        return;
    };
    let mut hb = env.hb;
    let out = cli(&hb, &["shutdown"]);
    assert!(
        out.contains("every prefix withdrawn") && !out.contains("drained"),
        "{out}"
    );
    env.router.wait_no_route(BR0_NET);
    assert!(hb.wait_exit(TIMEOUT).expect("agent exits").success());
    assert!(
        !hb.log_text().contains("draining for"),
        "no drain with drain_time 0"
    );
}

/// One bird peer over IPv6 and br0's prefixes, with `hostbgp.drain_time: SECS`; None
/// (the test skipped) without root.
fn start_with_drain_time(test: &str, secs: &str) -> Option<Env> {
    if !lab::require_root(test) {
        return None;
    }
    let env = Env::established(Opts::default());
    env.router.wait_route(BR0_NET);
    let yaml = config_yaml(lab::ROUTER_V6, &[], "").replacen(
        "config:\n",
        &format!("config:\n  hostbgp.drain_time: \"{secs}\"\n"),
        1,
    );
    env.hb.write_config(&yaml);
    let out = env.hb.reload().expect("reload");
    assert!(out.contains("reloaded"), "{out}");
    // A drain_time change touches no session.
    assert_eq!(
        peer_field(&env.hb, "r1", "established_transitions"),
        1,
        "the reload reset the session"
    );
    Some(env)
}

/// Waits until every route bird holds carries GRACEFUL_SHUTDOWN (`on`) or none does.
fn wait_all_drained(router: &Bird, on: bool) {
    wait_until_state(&format!("every route drained: {on}"), TIMEOUT, || {
        let routes = router.routes();
        let ok = routes.len() >= 2 && routes.iter().all(|r| communities(r).contains(GSHUT) == on);
        (ok, routes)
    });
}

fn cli(hb: &Hostbgp, args: &[&str]) -> String {
    cli_at(&hb.ns, &hb.socket, args)
}

/// `hostbgp ARGS --socket S` in `ns`; panics on failure (usable in a thread).
fn cli_at(ns: &str, socket: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, BIN])
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .expect("run hostbgp");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "hostbgp {args:?}: {} {text} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
