//! Issue 18 against FRR (zebra, bgpd, bfdd run by `frrd.rs` inside the router
//! namespace): a plain session carrying both families into FRR's kernel table, with
//! pings over it; BFD against bfdd; RFC 8538 with a peer that speaks it; an
//! unnumbered peer (`bgp.peers.NAME.interface`, issue 18 item 2) over a link with
//! link-local addresses only, both families, its recovery from a link flap, and
//! BFD on it (between the link-locals) withdrawing within 2 s of a blackhole.

use std::time::Instant;

use hostbgp::bgp::session::BFD_HOLD;

use crate::bfd::{blackhole_link, heal_link, with_bfd_keys};
use crate::frrd::{frr_available, Frr, FrrConfig, FrrPeer};
use crate::hostbgp::{notification, Hostbgp};
use crate::instances::ping;
use crate::lab::{self, wait_until, wait_until_state, Lab, Topo, TIMEOUT};
use crate::speaker::config_yaml;

const V4: &str = "203.0.113.0/24";
const V6: &str = "2001:db8:100::/64";
/// Long enough that only BFD can explain a withdrawal within the bound.
const HOLD: u32 = 240;
const BFD_MS: u32 = 100;

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

    let reply = env
        .hb
        .cli(&["disable", "r1", "--message", "maintenance"])
        .expect("disable");
    assert!(
        reply.contains(
            "disabled (Cease/Hard Reset (Cease/Administrative Shutdown): \"maintenance\")"
        ),
        "the reply names what went out: {reply}"
    );
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
    let sent = notification(&p, "last_notification_sent", (6, 9));
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
    let env = with_bfd_keys(BFD_MS, HOLD, |keys| {
        start(
            FrrPeer::host(lab::HOST_V4).hold_time(HOLD).bfd(BFD_MS),
            keys,
        )
    });
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

    let p = blackhole_link(
        &env.topo,
        ("eth0", "eth0"),
        &env.hb,
        &format!("{V4} (at FRR or in its kernel)"),
        || env.frr.has_route(V4) || env.kernel_has(V4),
        || env.frr.bfd_peers().to_string(),
    );
    // Under FRR's N bit the Cease/BFD Down goes as a Hard Reset (the blackhole ate
    // it; FRR's own BFD acted).
    assert_eq!(
        p["last_notification_sent"]["name"], "Cease/Hard Reset (Cease/BFD Down)",
        "{p}"
    );

    heal_link(&env.topo);
    env.wait_established();
    env.frr.wait_route(V4);
    env.frr.wait_route(V6);
    wait_until("zebra installs our prefixes again", TIMEOUT, || {
        env.kernel_has(V4) && env.kernel_has(V6)
    });
    ping(&env.topo.lab, &env.topo.r, "203.0.113.1");
}

/// The unnumbered link: the router's side, the host's side (`bgp.peers.r1.interface`).
/// Not `eth0`: the names must be the configured ones, not a default.
const R_LINK: &str = "swp1";
const H_LINK: &str = "uplink0";
/// The router's own addresses (on `lo`): the sources of its pings, since its link
/// has none.
const R_LO_V4: &str = "192.0.2.1";
const R_LO_V6: &str = "2001:db8:ffff::1";

/// Router + host joined by `R_LINK` <-> `H_LINK` with the kernel's fe80:: addresses
/// only (no IPv4, no global IPv6); the host's `br0` holds `BR_V4` and `BR_V6` as in
/// [`Topo::new`]; the router has `R_LO_V4`/`R_LO_V6` on `lo`.
fn unnumbered_topo() -> Topo {
    let lab = Lab::new();
    let r = lab.ns("r");
    let h = lab.ns("h");
    lab.veth((&r, R_LINK), (&h, H_LINK));
    lab.addr(&r, "lo", &format!("{R_LO_V4}/32"));
    lab.addr(&r, "lo", &format!("{R_LO_V6}/128"));
    lab.bridge(&h, "br0");
    for a in [lab::BR_V4, lab::BR_V6] {
        lab.addr(&h, "br0", a);
    }
    Topo { lab, r, h }
}

/// The link-local address of `dev` in `ns` (waits for the kernel to add it).
fn link_local(l: &Lab, ns: &str, dev: &str) -> String {
    wait_until_state(&format!("a link-local on {dev}"), TIMEOUT, || {
        let out = l.ip(
            ns,
            &["-j", "-6", "addr", "show", "dev", dev, "scope", "link"],
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        let ll = v[0]["addr_info"][0]["local"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (ll.starts_with("fe80:"), ll)
    })
}

/// hostbgp's config as [`config_yaml`] renders it, with `bgp.peers.r1.interface`
/// in place of `bgp.peers.r1.address`.
fn unnumbered_yaml(keys: &[(&str, &str)]) -> String {
    let mut k = vec![("bgp.peers.r1.interface", H_LINK)];
    k.extend_from_slice(keys);
    let yaml: String = config_yaml("", &k, "")
        .lines()
        .filter(|l| !l.trim_start().starts_with("bgp.peers.r1.address:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(yaml.contains("bgp.peers.r1.asn: \"65000\""), "{yaml}");
    yaml
}

/// An unnumbered session's lab, FRR and agent, and both ends' link-locals.
struct Unnumbered {
    env: Env,
    host_ll: String,
    router_ll: String,
}

fn start_unnumbered(peer: FrrPeer, keys: &[(&str, &str)]) -> Unnumbered {
    let topo = unnumbered_topo();
    let host_ll = link_local(&topo.lab, &topo.h, H_LINK);
    let router_ll = link_local(&topo.lab, &topo.r, R_LINK);
    let frr = Frr::start(
        &topo.lab,
        &topo.r,
        &FrrConfig::router(lab::ROUTER_V4, vec![peer]),
    );
    let mut hb = Hostbgp::start(&topo.lab, &topo.h, &unnumbered_yaml(keys));
    hb.wait_ready();
    Unnumbered {
        env: Env { hb, frr, topo },
        host_ll,
        router_ll,
    }
}

impl Unnumbered {
    /// Both ends Established; FRR's neighbour is our link-local, ours is FRR's.
    /// Returns hostbgp's peer object.
    fn wait_established(&self) -> serde_json::Value {
        let n = self.env.frr.wait_established(R_LINK);
        assert_eq!(n["bgpNeighborAddr"], self.host_ll.as_str(), "{n}");
        let p = self.env.hb.wait_peer_state("r1", "Established");
        assert_eq!(p["interface"], H_LINK, "{p}");
        assert_eq!(p["address"], self.router_ll.as_str(), "{p}");
        p
    }

    /// FRR has both prefixes from us over our link-local, and zebra put them in the
    /// router's kernel via our link-local (IPv4 with an IPv6 gateway, RFC 5549).
    fn wait_routes(&self) {
        let env = &self.env;
        for prefix in [V4, V6] {
            env.frr.wait_route(prefix);
            let hops = env.frr.nexthops(prefix);
            assert!(
                hops.contains(&self.host_ll) && hops.iter().all(|h| h.starts_with("fe80:")),
                "{prefix}: FRR's next hops {hops:?}, our link-local {}",
                self.host_ll
            );
        }
        wait_until("zebra installs both prefixes", TIMEOUT, || {
            env.kernel_has(V4) && env.kernel_has(V6)
        });
        let l = &env.topo.lab;
        let v4 = l.routes(&env.topo.r, false, &[V4]);
        assert!(
            v4.contains(&format!("via inet6 {} dev {R_LINK}", self.host_ll)),
            "{v4}"
        );
        let v6 = l.routes(&env.topo.r, true, &[V6]);
        assert!(
            v6.contains(&format!("via {} dev {R_LINK}", self.host_ll)),
            "{v6}"
        );
    }

    /// Pings from the router (sources `R_LO_V4`, `R_LO_V6`) to the host's bridge,
    /// both families. The replies need routes back to the router's loopback via its
    /// link-local; hostbgp installs nothing it hears from a router, so the test adds
    /// them (`replace`: again after a flap).
    fn ping_both(&self) {
        let (l, h) = (&self.env.topo.lab, &self.env.topo.h);
        let (v4, v6) = (format!("{R_LO_V4}/32"), format!("{R_LO_V6}/128"));
        let via = self.router_ll.as_str();
        l.ip(
            h,
            &[
                "-4", "route", "replace", &v4, "via", "inet6", via, "dev", H_LINK,
            ],
        );
        l.ip(
            h,
            &["-6", "route", "replace", &v6, "via", via, "dev", H_LINK],
        );
        ping(l, &self.env.topo.r, "203.0.113.1");
        ping(l, &self.env.topo.r, "2001:db8:100::1");
    }

    /// The link serves both families: [`Unnumbered::wait_routes`], then
    /// [`Unnumbered::ping_both`].
    fn wait_served(&self) {
        self.wait_routes();
        self.ping_both();
    }
}

/// Issue 18 item 2: `bgp.peers.r1.interface` with no address. hostbgp's RAs teach
/// FRR (`neighbor swp1 interface`) our link-local, FRR's teach us its; one session
/// carries both families, IPv4 with our link-local as next hop (RFC 8950); zebra
/// installs both, and the router reaches the host's bridge over them.
#[test]
fn frr_unnumbered_both_families_over_link_local() {
    if !frr_available("frr::frr_unnumbered_both_families_over_link_local") {
        return;
    }
    let u = start_unnumbered(FrrPeer::interface(R_LINK), &[]);
    let peer = u.wait_established();
    assert_eq!(peer["families"].as_array().map(Vec::len), Some(2), "{peer}");
    let l = &u.env.topo.lab;
    // Still unnumbered: nothing but the fe80:: addresses on the link.
    for (ns, dev) in [(&u.env.topo.r, R_LINK), (&u.env.topo.h, H_LINK)] {
        let global = l.ip(ns, &["addr", "show", "dev", dev, "scope", "global"]);
        assert!(global.trim().is_empty(), "{dev}: {global}");
    }
    u.wait_served();
}

/// The router's side of the link goes down and up: FRR drops the session and
/// forgets the neighbour, then relearns our link-local from our RAs; the session,
/// the routes and the pings come back. Hold time 9 s, so hostbgp's side goes down
/// too even if it missed the carrier change.
#[test]
fn frr_unnumbered_link_flap_recovers() {
    if !frr_available("frr::frr_unnumbered_link_flap_recovers") {
        return;
    }
    let u = start_unnumbered(
        FrrPeer::interface(R_LINK).hold_time(9),
        &[("bgp.peers.r1.holdtime", "9")],
    );
    u.wait_established();
    u.wait_served();

    let (l, r) = (&u.env.topo.lab, &u.env.topo.r);
    l.ip(r, &["link", "set", R_LINK, "down"]);
    wait_until_state(
        "FRR drops the session and forgets the neighbour",
        TIMEOUT,
        || {
            let n = u.env.frr.neighbor(R_LINK);
            (
                n["bgpState"] != "Established" && n["bgpNeighborAddr"] != u.host_ll.as_str(),
                n,
            )
        },
    );
    wait_until_state("hostbgp's session goes down", TIMEOUT, || {
        let p = u.env.hb.peer("r1");
        (p.as_ref().is_some_and(|p| p["state"] != "Established"), p)
    });
    assert!(
        !u.env.kernel_has(V4) && !u.env.kernel_has(V6),
        "routes via the downed link: {}",
        l.routes(r, false, &[])
    );

    l.ip(r, &["link", "set", R_LINK, "up"]);
    let started = Instant::now();
    u.wait_established();
    eprintln!(
        "session re-established {:?} after the link came up",
        started.elapsed()
    );
    u.wait_served();
}

/// BFD on an unnumbered peer (`bgp.peers.r1.interface` with `bfd`, FRR's
/// `neighbor swp1 bfd`): the BFD session runs between the link-locals, ours scoped
/// to the interface. A silent blackhole of the link (nftables drops in both
/// namespaces, carrier up, hold time 240 s) makes FRR drop our routes within 2 s;
/// hostbgp shows BFD Down and closes the session; after the heal the session, both
/// families and the pings come back.
#[test]
fn frr_unnumbered_bfd_blackhole_withdraws_within_2s() {
    if !frr_available("frr::frr_unnumbered_bfd_blackhole_withdraws_within_2s") {
        return;
    }
    let u = with_bfd_keys(BFD_MS, HOLD, |keys| {
        start_unnumbered(FrrPeer::interface(R_LINK).hold_time(HOLD).bfd(BFD_MS), keys)
    });
    let env = &u.env;
    // bgpd 8.4 starts BFD for an interface neighbour only once its session is
    // Established (its address comes from our RAs, its source from the connection),
    // and hostbgp starts the session only while BFD is Up: the first session comes
    // up through hostbgp's BFD hold (`BFD_HOLD`, for routers without BFD), then BFD.
    let first = Instant::now();
    wait_until_state(
        "FRR: neighbor swp1 Established through the BFD hold",
        BFD_HOLD + TIMEOUT * 2,
        || {
            let n = env.frr.neighbor(R_LINK);
            (n["bgpState"] == "Established", n)
        },
    );
    eprintln!(
        "first unnumbered session with BFD Established {:?} after the start",
        first.elapsed()
    );
    let peer = u.wait_established();
    assert_eq!(peer["capabilities"]["hold_time"], HOLD, "{peer}");
    u.wait_routes();
    wait_until_state("both sides' BFD is up", TIMEOUT, || {
        let ours = env.hb.peer("r1").is_some_and(|p| p["bfd"]["state"] == "Up");
        let peers = env.frr.bfd_peers();
        let theirs = peers.as_array().is_some_and(|a| {
            a.iter().any(|p| {
                p["peer"] == u.host_ll.as_str() && p["interface"] == R_LINK && p["status"] == "up"
            })
        });
        (ours && theirs, peers)
    });
    let bfd = &env.hb.peer("r1").expect("peer r1")["bfd"];
    assert_eq!(bfd["transmit_interval_ms"], BFD_MS, "{bfd}");
    assert_eq!(bfd["detection_time_ms"], 3 * BFD_MS, "{bfd}");
    u.ping_both();

    let p = blackhole_link(
        &env.topo,
        (R_LINK, H_LINK),
        &env.hb,
        &format!("{V4} and {V6} (at FRR or {V4} in its kernel)"),
        || env.frr.has_route(V4) || env.frr.has_route(V6) || env.kernel_has(V4),
        || env.frr.bfd_peers().to_string(),
    );
    // Our side detected it too, not just the router.
    assert_eq!(
        p["bfd"]["diagnostic"], "control detection time expired",
        "{p}"
    );
    assert_eq!(
        p["last_notification_sent"]["name"], "Cease/Hard Reset (Cease/BFD Down)",
        "{p}"
    );

    heal_link(&env.topo);
    let healed = Instant::now();
    u.wait_established();
    let took = healed.elapsed();
    eprintln!("unnumbered session re-established {took:?} after the heal");
    // Both BFD sessions outlived the BGP one: BFD Up let it start, no hold.
    assert!(
        took < BFD_HOLD,
        "re-established only {took:?} after the heal"
    );
    wait_until("hostbgp's BFD is up again", TIMEOUT, || {
        env.hb.peer("r1").is_some_and(|p| p["bfd"]["state"] == "Up")
    });
    u.wait_served();
}
