//! Validates the harness itself with bird playing the speaker in the host namespace.

use crate::bird::{Bird, BirdConfig, BirdPeer};
use crate::lab::{self, wait_until, Topo, TIMEOUT};

/// bird in the host as the speaker (AS 65010) on its session `peer` with the router,
/// announcing `prefixes` as blackholes; no kernel protocol.
fn speaker_config(mut peer: BirdPeer, prefixes: &[&str]) -> BirdConfig {
    peer.local_as = 65010;
    peer.peer_as = 65000;
    peer.speaker = true;
    let mut cfg = BirdConfig::router(lab::HOST_V4, vec![peer]);
    cfg.kernel = false;
    cfg.static_routes = prefixes.iter().map(|p| format!("{p} blackhole")).collect();
    cfg
}

#[test]
fn harness_selftest() {
    if !lab::require_root("harness_selftest") {
        return;
    }
    let topo = Topo::new(&[lab::BR_V4, lab::BR_V6]);
    let names = topo.lab.namespaces();
    let (r, h) = (&topo.r, &topo.h);

    let router = Bird::router(
        &topo,
        vec![BirdPeer::router("h1", lab::HOST_V6).graceful_restart(true)],
    );
    let mut speaker_peer = BirdPeer::router("r1", lab::ROUTER_V6).graceful_restart(true);
    speaker_peer.ipv4_next_hop = Some(lab::HOST_V4.into());
    let speaker_cfg = speaker_config(speaker_peer, &["203.0.113.0/24", "2001:db8:100::/64"]);
    let mut speaker = Bird::start(&topo.lab, h, "speaker", &speaker_cfg);

    router.wait_established("h1");
    let v4 = router.wait_route("203.0.113.0/24");
    assert_eq!(v4.protocol, "h1");
    assert!(v4.primary && !v4.stale, "{v4:?}");
    assert_eq!(v4.next_hops, vec![lab::HOST_V4.to_string()], "{v4:?}");
    assert_eq!(v4.attr("BGP.as_path"), Some("65010"), "{v4:?}");
    let v6 = router.wait_route("2001:db8:100::/64");
    assert_eq!(v6.next_hops, vec![lab::HOST_V6.to_string()], "{v6:?}");
    router.assert_no_nexthop_errors();

    // The kernel protocol installs both into the router's kernel.
    wait_until("router kernel has 203.0.113.0/24 via host", TIMEOUT, || {
        topo.lab
            .routes(r, false, &["203.0.113.0/24"])
            .contains(&format!("via {}", lab::HOST_V4))
    });
    wait_until(
        "router kernel has 2001:db8:100::/64 via host",
        TIMEOUT,
        || {
            topo.lab
                .routes(r, true, &["2001:db8:100::/64"])
                .contains(&format!("via {}", lab::HOST_V6))
        },
    );
    // Data path: the bridge address is reachable from the router through the route.
    topo.lab.exec(r, &["ping", "-c1", "-W2", "203.0.113.1"]);
    topo.lab.exec(r, &["ping", "-c1", "-W2", "2001:db8:100::1"]);

    // Graceful restart: the speaker dies, the router keeps its routes (bird 2.0.12
    // flags only long-lived-stale routes with `s`; plain GR shows in the protocol).
    speaker.kill();
    // A killed bird has no pid: signalling it must fail loudly, never become kill(0).
    assert_eq!(speaker.pid(), None);
    let err = speaker
        .try_signal(nix::sys::signal::Signal::SIGCONT)
        .expect_err("signal to a killed bird");
    assert!(err.contains("not running"), "{err}");
    let p = lab::wait_until_state("router sees neighbor graceful restart", TIMEOUT, || {
        let p = router.protocol("h1");
        (p.graceful_restart_active(), p)
    });
    assert!(!p.established(), "{p:?}");
    let kept = router.route("203.0.113.0/24");
    assert_eq!(kept.len(), 1, "GR must keep the route: {kept:?}");

    // disable/enable and configure work.
    router.disable("h1");
    router.wait_no_route("203.0.113.0/24");
    router.enable("h1");
    assert!(router.configure().contains("Reconfigur"));

    drop(speaker);
    drop(router);
    drop(topo);
    let left: Vec<String> = lab::list_namespaces()
        .into_iter()
        .filter(|n| names.contains(n))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

/// Validates the issue-3 data-path lab without the agent: the routes hostbgp would
/// install are added by hand (its protocol number), bird in the host advertises them.
#[test]
fn harness_datapath_selftest() {
    if !lab::require_root("harness_datapath_selftest") {
        return;
    }
    let topo = Topo::new(&["192.0.2.1/24", lab::BR_V6]);
    let (l, r, h) = (&topo.lab, &topo.r, &topo.h);
    let i = crate::datapath::instance(l, h);
    let router = Bird::router(&topo, vec![BirdPeer::router("h1", lab::HOST_V4)]);
    let mut sp = BirdPeer::router("r1", lab::ROUTER_V4);
    sp.ipv6_next_hop = Some(lab::HOST_V6.into());
    let cfg = speaker_config(sp, &["203.0.113.64/28", "2001:db8:100:40::/64"]);
    let _speaker = Bird::start(l, h, "speaker", &cfg);

    l.enslave(h, "vc1", "br0");
    let proto = hostbgp::kernel::ROUTE_PROTOCOL.to_string();
    l.route(h, &["203.0.113.64/28", "dev", "br0", "proto", &proto]);
    l.route(h, &["2001:db8:100:40::/64", "dev", "br0", "proto", &proto]);
    assert!(l
        .routes(h, false, &["proto", &proto])
        .contains("203.0.113.64/28 dev br0"));

    router.wait_established("h1");
    let r4 = router.wait_route("203.0.113.64/28");
    assert_eq!(r4.next_hops, [lab::HOST_V4], "{r4:?}");
    let r6 = router.wait_route("2001:db8:100:40::/64");
    assert_eq!(r6.next_hops, [lab::HOST_V6], "{r6:?}");
    l.wait_ping(r, "203.0.113.65");
    l.wait_ping(r, "2001:db8:100:40::1");
    // Deleting the veth host end (instance stop) leaves the instance unreachable.
    l.delete_link(h, "vc1");
    assert!(!l.ping(r, "203.0.113.65"));
    assert!(l.try_exec(&i, &["ip", "link", "show", "eth0"]).is_err());
}

/// `signal_pid` never hands kill(2) a pid that means a process group (0, negative) or
/// the test runner itself. Needs no root: every case is refused before kill(2).
#[test]
fn signal_pid_refuses_groups_and_self() {
    use nix::sys::signal::Signal;
    let me = i32::try_from(std::process::id()).unwrap();
    let pgrp = nix::unistd::getpgrp().as_raw();
    for pid in [0, -1, -pgrp, i32::MIN, me] {
        let e = lab::signal_pid(pid, Signal::SIGCONT).expect_err("must be refused");
        assert!(e.starts_with("refusing"), "{pid}: {e}");
    }
}
