//! Issue 18 item 1: BFD against bird2. A silent blackhole on the link (nftables drops
//! in both namespaces, carrier up) must make the router drop our routes within 2 s,
//! where its BGP hold timer (240 s here) would take minutes; healing brings it back.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bird::{Bird, BirdPeer};
use crate::hostbgp::{notification, Hostbgp};
use crate::lab::{self, wait_until, wait_until_state, Topo, TIMEOUT};
use crate::speaker::{config_yaml, Env};

/// Both sides' BFD interval: 100 ms x 3 is a 300 ms detection time.
const INTERVAL_MS: u32 = 100;
/// Long enough that only BFD can explain a withdrawal within the test's bound.
const HOLD: u32 = 240;
/// The bound on blackhole-to-withdrawal.
const WITHDRAW_WITHIN: Duration = Duration::from_secs(2);
const PREFIX: &str = "203.0.113.0/24";

fn start(v6: bool) -> Env {
    let (neighbor, peer) = if v6 {
        (lab::HOST_V6, lab::ROUTER_V6)
    } else {
        (lab::HOST_V4, lab::ROUTER_V4)
    };
    let bp = BirdPeer::router("h1", neighbor)
        .hold_time(HOLD)
        .bfd(INTERVAL_MS);
    start_with(bp, peer)
}

/// The router with `bp`, hostbgp peering with it at `peer` (BFD on), ready.
fn start_with(bp: BirdPeer, peer: &str) -> Env {
    let topo = Topo::new(&[lab::BR_V4, lab::BR_V6]);
    let router = Bird::router(&topo, vec![bp]);
    let hb = Hostbgp::ready(&topo.lab, &topo.h, &yaml(peer, INTERVAL_MS));
    Env { hb, router, topo }
}

/// hostbgp's config: BFD on for `r1` at `interval_ms`, hold time `HOLD`.
fn yaml(peer: &str, interval_ms: u32) -> String {
    with_bfd_keys(interval_ms, HOLD, |keys| config_yaml(peer, keys, ""))
}

/// `f` given hostbgp's keys for BFD on peer `r1` at `interval_ms`, hold time `hold`
/// (seconds).
pub(crate) fn with_bfd_keys<T>(
    interval_ms: u32,
    hold: u32,
    f: impl FnOnce(&[(&str, &str)]) -> T,
) -> T {
    let (interval, hold) = (interval_ms.to_string(), hold.to_string());
    f(&[
        ("bgp.peers.r1.bfd", "true"),
        ("bgp.peers.r1.bfd.min_interval", &interval),
        ("bgp.peers.r1.holdtime", &hold),
    ])
}

/// Drops everything in and out of `dev` in namespace `ns`, whatever the addresses
/// (IPv4, global IPv6 or link-local: BFD, BGP, neighbour discovery and router
/// advertisements alike); the link stays up. `heal` lifts it.
pub(crate) fn blackhole_dev(l: &lab::Lab, ns: &str, dev: &str) {
    l.sh(
        ns,
        &format!(
            "nft add table inet bh && \
             nft add chain inet bh in '{{ type filter hook input priority 0; }}' && \
             nft add chain inet bh out '{{ type filter hook output priority 0; }}' && \
             nft add rule inet bh in iifname {dev} drop && \
             nft add rule inet bh out oifname {dev} drop"
        ),
    );
}

pub(crate) fn heal(l: &lab::Lab, ns: &str) {
    l.sh(ns, "nft delete table inet bh");
}

/// The silent link failure of the BFD tests: [`blackhole_dev`] on `devs` (the router's,
/// the host's), then `router_has` (the router still has `what`) must turn false within
/// `WITHDRAW_WITHIN`, else the test fails showing `router_bfd` (the router's view of
/// BFD). Then waits until hostbgp has closed `r1` on BFD Down and returns that peer
/// object. [`heal_link`] lifts it.
pub(crate) fn blackhole_link(
    topo: &Topo,
    devs: (&str, &str),
    hb: &Hostbgp,
    what: &str,
    router_has: impl Fn() -> bool,
    router_bfd: impl Fn() -> String,
) -> Value {
    let (l, r, h) = topo.parts();
    let started = Instant::now();
    blackhole_dev(l, r, devs.0);
    blackhole_dev(l, h, devs.1);
    while router_has() {
        assert!(
            started.elapsed() < WITHDRAW_WITHIN,
            "the router still has {what} {:?} after the blackhole; its BFD: {}",
            started.elapsed(),
            router_bfd()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    eprintln!("the router withdrew {what} {took:?} after the blackhole");
    wait_until_state("hostbgp closes the session on BFD down", TIMEOUT, || {
        let p = hb.peer("r1");
        let down = p
            .as_ref()
            .is_some_and(|p| p["state"] != "Established" && p["bfd"]["state"] == "Down");
        (down, p)
    });
    hb.peer("r1").expect("peer r1")
}

/// Lifts [`blackhole_link`] in both namespaces.
pub(crate) fn heal_link(topo: &Topo) {
    heal(&topo.lab, &topo.r);
    heal(&topo.lab, &topo.h);
}

fn bfd_state(env: &Env) -> String {
    env.hb
        .peer("r1")
        .and_then(|p| p["bfd"]["state"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn blackhole_withdraws_fast(v6: bool) {
    let env = start(v6);
    let peer = env.wait_established();
    env.router.wait_route(PREFIX);
    wait_until("hostbgp reports BFD Up", TIMEOUT, || {
        bfd_state(&env) == "Up"
    });
    let bfd = &env.hb.peer("r1").expect("peer r1")["bfd"];
    assert_eq!(bfd["transmit_interval_ms"], 100, "{bfd}");
    assert_eq!(bfd["detection_time_ms"], 300, "{bfd}");
    assert_eq!(peer["hold_time"], HOLD, "{peer}");
    let shown = env.router.birdc(&["show", "bfd", "sessions"]);
    assert!(shown.contains("Up"), "bird's BFD: {shown}");

    let p = blackhole_link(
        &env.topo,
        ("eth0", "eth0"),
        &env.hb,
        PREFIX,
        || !env.router.route(PREFIX).is_empty(),
        || env.router.birdc(&["show", "bfd", "sessions"]),
    );
    // Cease/BFD Down (RFC 9384), recorded though the blackhole ate it.
    notification(&p, "last_notification_sent", (6, 10));
    // Our side detected it too, not just the router.
    assert_eq!(
        p["bfd"]["diagnostic"], "control detection time expired",
        "{p}"
    );
    assert!(
        env.hb.log_text().contains("BFD detected a path failure"),
        "{}",
        env.hb.log_text()
    );

    heal_link(&env.topo);
    wait_until("hostbgp reports BFD Up again", TIMEOUT, || {
        bfd_state(&env) == "Up"
    });
    env.wait_established();
    env.router.wait_route(PREFIX);
}

#[test]
fn bfd_blackhole_withdraws_within_2s_v6() {
    if !lab::require_root("bfd_blackhole_withdraws_within_2s_v6") {
        return;
    }
    blackhole_withdraws_fast(true);
}

#[test]
fn bfd_blackhole_withdraws_within_2s_v4() {
    if !lab::require_root("bfd_blackhole_withdraws_within_2s_v4") {
        return;
    }
    blackhole_withdraws_fast(false);
}

/// A reload that changes only the BFD interval resets the BGP session (it is gated on
/// BFD), which comes back at once because BFD stays Up, with the new timers.
#[test]
fn bfd_interval_change_on_reload() {
    if !lab::require_root("bfd_interval_change_on_reload") {
        return;
    }
    let env = start(false);
    env.wait_established();
    env.router.wait_route(PREFIX);
    wait_until("hostbgp reports BFD Up", TIMEOUT, || {
        bfd_state(&env) == "Up"
    });

    env.hb.write_config(&yaml(lab::ROUTER_V4, 200));
    env.hb.reload().expect("reload");
    // The reload stopped the old session before answering: this is the new one.
    env.hb.wait_peer_state("r1", "Established");
    assert!(
        env.hb
            .log_text()
            .contains("peer settings changed: resetting its session"),
        "{}",
        env.hb.log_text()
    );
    // Our 200 ms is slower than bird's 100 ms: it sets our pace and bird's.
    wait_until("BFD runs at 200 ms x 3", TIMEOUT, || {
        env.hb.peer("r1").is_some_and(|p| {
            p["bfd"]["state"] == "Up"
                && p["bfd"]["transmit_interval_ms"] == 200
                && p["bfd"]["detection_time_ms"] == 600
        })
    });
    env.router.wait_route(PREFIX);
}

/// A router without BFD: the session waits for BFD, then starts anyway once BFD has
/// stayed down its hold time (90 s), so a misconfiguration costs a delay, not the peer.
#[test]
fn bfd_router_without_bfd_is_not_locked_out() {
    if !lab::require_root("bfd_router_without_bfd_is_not_locked_out") {
        return;
    }
    let bp = BirdPeer::router("h1", lab::HOST_V4).hold_time(HOLD);
    let env = start_with(bp, lab::ROUTER_V4);
    // Timed from the agent being ready, a little after its start: the wait measured
    // is if anything short of the real one.
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let p = env.hb.peer("r1").expect("peer r1");
    assert_ne!(p["state"], "Established", "did not wait for BFD: {p}");
    assert_eq!(p["bfd"]["state"], "Down", "{p}");
    wait_until(
        "the session starts after the BFD hold",
        Duration::from_secs(120),
        || {
            env.hb
                .peer("r1")
                .is_some_and(|p| p["state"] == "Established")
        },
    );
    let waited = started.elapsed();
    eprintln!("established {waited:?} after start without BFD at the router");
    assert!(waited >= Duration::from_secs(85), "{waited:?}");
    env.router.wait_route(PREFIX);
}

/// A restart (SIGTERM) is deliberate: BFD says AdminDown (RFC 5882 section 3.2).
/// bird 2.0.12 with `bfd on` resets the session on any BFD down, graceful restart or
/// not; with `bfd graceful` it keeps our routes (stale) past the BFD detection time,
/// and the restarted agent takes them over.
#[test]
fn bfd_restart_keeps_graceful_restart() {
    if !lab::require_root("bfd_restart_keeps_graceful_restart") {
        return;
    }
    let bp = BirdPeer::router("h1", lab::HOST_V4)
        .hold_time(HOLD)
        .bfd(INTERVAL_MS)
        .bfd_graceful(true)
        .graceful_restart(true);
    let mut env = start_with(bp, lab::ROUTER_V4);
    env.wait_established();
    env.router.wait_route(PREFIX);
    wait_until("hostbgp reports BFD Up", TIMEOUT, || {
        bfd_state(&env) == "Up"
    });

    env.hb.term();
    assert!(env.hb.wait_exit(TIMEOUT).is_some(), "hostbgp did not exit");
    // Well past the 300 ms detection time.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !env.router.route(PREFIX).is_empty(),
        "router dropped our routes on a restart; bird: {}\n{}",
        env.router.birdc(&["show", "bfd", "sessions"]),
        env.router.birdc(&["show", "protocols", "all", "h1"])
    );
    env.hb.respawn(&env.topo.lab);
    env.wait_established();
    wait_until("hostbgp reports BFD Up again", TIMEOUT, || {
        bfd_state(&env) == "Up"
    });
    env.router.wait_route(PREFIX);
}
