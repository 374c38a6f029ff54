//! Issue 18 against FRR (zebra, bgpd, bfdd run by `frrd.rs` inside the router
//! namespace): a plain session carrying both families into FRR's kernel table, with
//! pings over it; BFD against bfdd; RFC 8538 with a peer that speaks it.

use std::time::{Duration, Instant};

use crate::bfd::{blackhole, heal};
use crate::frrd::{frr_available, Frr, FrrConfig, FrrPeer};
use crate::hostbgp::Hostbgp;
use crate::instances::ping;
use crate::lab::{self, wait_until, Topo, TIMEOUT};
use crate::speaker::config_yaml;

const V4: &str = "203.0.113.0/24";
const V6: &str = "2001:db8:100::/64";
/// Long enough that only BFD can explain a withdrawal within the bound.
const HOLD: u32 = 240;
const BFD_MS: u32 = 100;
/// The bound on blackhole-to-withdrawal.
const WITHDRAW_WITHIN: Duration = Duration::from_secs(2);

/// Field order = drop order: the agent, FRR, then the lab.
struct Env {
    hb: Hostbgp,
    frr: Frr,
    topo: Topo,
}

fn start(peer: FrrPeer, keys: &[(&str, &str)]) -> Env {
    let topo = Topo::new(&[lab::BR_V4, lab::BR_V6]);
    let frr = Frr::start(
        &topo.lab,
        &topo.r,
        &FrrConfig::router(lab::ROUTER_V4, vec![peer]),
    );
    let mut hb = Hostbgp::start(&topo.lab, &topo.h, &config_yaml(lab::ROUTER_V4, keys, ""));
    hb.wait_ready();
    Env { hb, frr, topo }
}

impl Env {
    fn wait_established(&self) -> serde_json::Value {
        self.frr.wait_established(lab::HOST_V4);
        self.hb.wait_peer_state("r1", "Established")
    }

    /// zebra put FRR's BGP route for `prefix` in the router's kernel.
    fn kernel_has(&self, prefix: &str) -> bool {
        self.topo
            .lab
            .routes(&self.topo.r, prefix.contains(':'), &[prefix])
            .contains("proto bgp")
    }
}

#[test]
fn frr_session_both_families_into_the_kernel() {
    if !frr_available("frr::frr_session_both_families_into_the_kernel") {
        return;
    }
    let env = start(FrrPeer::host(lab::HOST_V4), &[]);
    let peer = env.wait_established();
    assert_eq!(peer["families"].as_array().map(Vec::len), Some(2), "{peer}");
    env.frr.wait_route(V4);
    env.frr.wait_route(V6);
    wait_until("zebra installs both prefixes", TIMEOUT, || {
        env.kernel_has(V4) && env.kernel_has(V6)
    });
    let l = &env.topo.lab;
    let v4 = l.routes(&env.topo.r, false, &[V4]);
    assert!(v4.contains(&format!("via {}", lab::HOST_V4)), "{v4}");
    let v6 = l.routes(&env.topo.r, true, &[V6]);
    assert!(v6.contains(&format!("via {}", lab::HOST_V6)), "{v6}");
    ping(l, &env.topo.r, "203.0.113.1");
    ping(l, &env.topo.r, "2001:db8:100::1");
}

/// RFC 8538 with a peer that speaks it (FRR 8.4 sends the N bit). A restart
/// (SIGTERM: no NOTIFICATION) leaves our routes at FRR as stale; a disable sends
/// Cease/Hard Reset around the Administrative Shutdown, and FRR drops them at once
/// (a plain Cease under the N bit would have kept them for our restart time).
#[test]
fn frr_hard_reset_drops_restart_keeps() {
    if !frr_available("frr::frr_hard_reset_drops_restart_keeps") {
        return;
    }
    let mut env = start(
        FrrPeer::host(lab::HOST_V4),
        &[("bgp.peers.r1.graceful_restart.time", "600")],
    );
    let peer = env.wait_established();
    let caps = &peer["capabilities"];
    assert_eq!(caps["notification_bit_sent"], true, "{peer}");
    assert_eq!(caps["notification_bit_received"], true, "{peer}");
    assert_eq!(caps["hard_reset"], true, "{peer}");
    assert_eq!(caps["graceful_restart_time_sent"], 600, "{peer}");
    assert_eq!(caps["graceful_restart_time_received"], 120, "{peer}");
    let n = env.frr.neighbor(lab::HOST_V4);
    let gr = &n["gracefulRestartInfo"];
    assert_eq!(gr["nBit"], true, "FRR saw no N bit from us: {n}");
    assert_eq!(gr["timers"]["receivedRestartTimer"], 600, "{n}");
    env.frr.wait_route(V4);
    let text = env.hb.cli(&["status"]).expect("status");
    assert!(
        text.contains(
            "graceful restart: sent 600 s (N bit), received 120 s (N bit); resets go as Hard Reset"
        ),
        "{text}"
    );

    env.hb.term();
    assert!(env.hb.wait_exit(TIMEOUT).is_some(), "hostbgp did not exit");
    wait_until("FRR sees the session down", TIMEOUT, || {
        env.frr.bgp_state(lab::HOST_V4) != "Established"
    });
    assert!(
        env.frr.has_route(V4),
        "FRR dropped our routes on a graceful restart: {}",
        env.frr.vtysh(&format!("show bgp ipv4 unicast {V4}"))
    );
    env.hb.spawn(&env.topo.lab);
    env.hb.wait_ready();
    env.wait_established();
    env.frr.wait_route(V4);

    env.hb
        .cli(&["disable", "r1", "--message", "maintenance"])
        .expect("disable");
    wait_until("FRR drops our routes on the Hard Reset", TIMEOUT, || {
        !env.frr.has_route(V4) && !env.frr.has_route(V6)
    });
    let n = env.frr.neighbor(lab::HOST_V4);
    assert_eq!(n["lastNotificationHardReset"], true, "{n}");
    assert_eq!(
        n["lastNotificationReason"], "Cease/Administrative Shutdown",
        "{n}"
    );
    assert_eq!(n["lastShutdownDescription"], "maintenance", "{n}");
    let p = env.hb.peer("r1").expect("peer r1");
    let sent = &p["last_notification_sent"];
    assert_eq!(
        (sent["code"].as_u64(), sent["subcode"].as_u64()),
        (Some(6), Some(9)),
        "{p}"
    );
    assert_eq!(
        sent["name"], "Cease/Hard Reset (Cease/Administrative Shutdown)",
        "{p}"
    );
    assert_eq!(sent["message"], "maintenance", "{p}");

    env.hb.cli(&["enable", "r1"]).expect("enable");
    env.wait_established();
    env.frr.wait_route(V4);
}

/// BFD against bfdd: a silent blackhole (nftables drops in both namespaces, carrier
/// up) makes FRR drop our routes within 2 s, where its hold timer would take
/// minutes; everything comes back when the link heals.
#[test]
fn frr_bfd_blackhole_withdraws_within_2s() {
    if !frr_available("frr::frr_bfd_blackhole_withdraws_within_2s") {
        return;
    }
    let interval = BFD_MS.to_string();
    let hold = HOLD.to_string();
    let env = start(
        FrrPeer::host(lab::HOST_V4).hold_time(HOLD).bfd(BFD_MS),
        &[
            ("bgp.peers.r1.bfd", "true"),
            ("bgp.peers.r1.bfd.min_interval", &interval),
            ("bgp.peers.r1.holdtime", &hold),
        ],
    );
    let peer = env.wait_established();
    assert_eq!(peer["capabilities"]["hold_time"], HOLD, "{peer}");
    env.frr.wait_route(V4);
    wait_until("both sides' BFD is up", TIMEOUT, || {
        let ours = env.hb.peer("r1").is_some_and(|p| p["bfd"]["state"] == "Up");
        let theirs = env.frr.bfd_peers().as_array().is_some_and(|a| {
            a.iter()
                .any(|p| p["peer"] == lab::HOST_V4 && p["status"] == "up")
        });
        ours && theirs
    });
    wait_until("zebra installs our prefix", TIMEOUT, || env.kernel_has(V4));

    let l = &env.topo.lab;
    let started = Instant::now();
    blackhole(l, &env.topo.r);
    blackhole(l, &env.topo.h);
    while env.frr.has_route(V4) || env.kernel_has(V4) {
        assert!(
            started.elapsed() < WITHDRAW_WITHIN,
            "FRR still has {V4} {:?} after the blackhole; BFD: {}",
            started.elapsed(),
            env.frr.bfd_peers()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "FRR withdrew {V4} {:?} after the blackhole",
        started.elapsed()
    );
    wait_until("hostbgp closes the session on BFD down", TIMEOUT, || {
        env.hb
            .peer("r1")
            .is_some_and(|p| p["state"] != "Established" && p["bfd"]["state"] == "Down")
    });
    // Under FRR's N bit the Cease/BFD Down goes as a Hard Reset (the blackhole ate
    // it; FRR's own BFD acted).
    let p = env.hb.peer("r1").expect("peer r1");
    assert_eq!(
        p["last_notification_sent"]["name"], "Cease/Hard Reset (Cease/BFD Down)",
        "{p}"
    );

    heal(l, &env.topo.r);
    heal(l, &env.topo.h);
    env.wait_established();
    env.frr.wait_route(V4);
    env.frr.wait_route(V6);
    wait_until("zebra installs our prefixes again", TIMEOUT, || {
        env.kernel_has(V4) && env.kernel_has(V6)
    });
    ping(l, &env.topo.r, "203.0.113.1");
}
