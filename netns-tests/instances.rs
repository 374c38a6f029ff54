//! Issue 3 acceptance: instance NICs' external routes (kernel routes with protocol 201,
//! `via` a static address, self-healing, bridge down/up, anycast multipath, restart
//! adoption, a netlink flood of foreign routes, `hostbgp routes --json`).
//!
//! Lab: router `r` (bird2), host `h` with bridge `br0` holding 192.0.2.1/24 and
//! 2001:db8:100::1/64 (outside the external routes), instances `i1`, `i2`... joined by
//! veths `vcN` (host side, the NIC's `host_name`) <-> `eth0`.

use std::collections::BTreeSet;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bird::{Bird, BirdPeer, BirdRoute};
use crate::hostbgp::{Hostbgp, BIN};
use crate::lab::{self, wait_until, wait_until_state, Lab, Topo, TIMEOUT};
use crate::speaker::{config_yaml, Env};

/// hostbgp's kernel route protocol number.
pub(crate) const PROTO: u8 = hostbgp::kernel::ROUTE_PROTOCOL;

const BR4: &str = "192.0.2.1/24";
const BR4_NET: &str = "192.0.2.0/24";
const BR6_NET: &str = "2001:db8:100::/64";

/// c1: static addresses, 203.0.113.64/28 + 2001:db8:100:40::/64.
pub(crate) const C1_STATIC: &str = "  c1:
    devices:
      eth0: {type: nic, network: br0, host_name: vc1, ipv4.address: 192.0.2.10, ipv6.address: \"2001:db8:100::10\", ipv4.routes.external: 203.0.113.64/28, ipv6.routes.external: \"2001:db8:100:40::/64\"}
";

/// c1 without static addresses.
const C1_DYN: &str = "  c1:
    devices:
      eth0: {type: nic, network: br0, host_name: vc1, ipv4.routes.external: 203.0.113.64/28, ipv6.routes.external: \"2001:db8:100:40::/64\"}
";

/// c2 without static addresses: 203.0.113.96/28 + 2001:db8:100:60::/64.
const C2_DYN: &str = "  c2:
    devices:
      eth0: {type: nic, network: br0, host_name: vc2, ipv4.routes.external: 203.0.113.96/28, ipv6.routes.external: \"2001:db8:100:60::/64\"}
";

/// Two NICs with the same /32 (anycast), static addresses .11 and .12.
const ANYCAST: &str = "  c1:
    devices:
      eth0: {type: nic, network: br0, host_name: vc1, ipv4.address: 192.0.2.11, ipv4.routes.external: 203.0.113.80/32}
  c2:
    devices:
      eth0: {type: nic, network: br0, host_name: vc2, ipv4.address: 192.0.2.12, ipv4.routes.external: 203.0.113.80/32}
";

/// Router + agent as [`Env::start`] (IPv6 session), bridge 192.0.2.1/24 +
/// 2001:db8:100::1/64, forwarding on in the host; `gr` turns on graceful restart at
/// the router.
pub(crate) fn start(instances: &str, keys: &[(&str, &str)], gr: bool) -> Env {
    let topo = Topo::new(&[BR4, lab::BR_V6]);
    topo.lab.forwarding(&topo.h);
    let router = Bird::router(
        &topo,
        vec![BirdPeer::router("h1", lab::HOST_V6).graceful_restart(gr)],
    );
    let hb = Hostbgp::ready(
        &topo.lab,
        &topo.h,
        &config_yaml(lab::ROUTER_V6, keys, instances),
    );
    let env = Env { hb, router, topo };
    env.wait_established();
    env.router.wait_route(BR4_NET);
    env
}

/// `start(instances, &[], false)`; None (the test skipped) without root.
fn root_start(test: &str, instances: &str) -> Option<Env> {
    lab::require_root(test).then(|| start(instances, &[], false))
}

/// C1_STATIC's instance running: namespace `i1` with its addresses, veth `vc1` on
/// the bridge, both its prefixes at the router.
pub(crate) fn run_c1(env: &Env) {
    start_c1(
        env,
        &[
            "203.0.113.65/32",
            "2001:db8:100:40::1/128",
            "192.0.2.10/24",
            "2001:db8:100::10/64",
        ],
    );
}

/// c1's instance running with `addrs`: namespace `i1`, veth `vc1` on the bridge,
/// both its prefixes (203.0.113.64/28, 2001:db8:100:40::/64) at the router.
fn start_c1(env: &Env, addrs: &[&str]) {
    let (l, h) = (&env.topo.lab, &env.topo.h);
    instance(l, h, "i1", "vc1", addrs);
    l.enslave(h, "vc1", "br0");
    env.router.wait_route("203.0.113.64/28");
    env.router.wait_route("2001:db8:100:40::/64");
}

/// The router reaches c1 at both its addresses (203.0.113.65, 2001:db8:100:40::1).
fn ping_c1(env: &Env) {
    let (l, r, _) = env.topo.parts();
    ping(l, r, "203.0.113.65");
    ping(l, r, "2001:db8:100:40::1");
}

/// Instance namespace `role` joined by veth `host_name` (not enslaved yet), holding
/// `addrs` on eth0, default routes via the bridge's addresses.
pub(crate) fn instance(l: &Lab, h: &str, role: &str, host_name: &str, addrs: &[&str]) -> String {
    let i = l.ns(role);
    l.instance_nic(h, host_name, &i);
    for a in addrs {
        l.addr(&i, "eth0", a);
    }
    l.route(
        &i,
        &["default", "via", "192.0.2.1", "dev", "eth0", "onlink"],
    );
    l.route(
        &i,
        &["default", "via", "2001:db8:100::1", "dev", "eth0", "onlink"],
    );
    i
}

fn family(prefix: &str) -> &'static str {
    if prefix.contains(':') {
        "-6"
    } else {
        "-4"
    }
}

/// `ip route show exact PREFIX` in the host (all protocols), trimmed.
pub(crate) fn kroute(l: &Lab, h: &str, prefix: &str) -> String {
    l.ip(h, &[family(prefix), "route", "show", "exact", prefix])
        .trim()
        .to_string()
}

/// The host's proto-201 route for `prefix` (empty when absent).
pub(crate) fn our_route(l: &Lab, h: &str, prefix: &str) -> String {
    let p = PROTO.to_string();
    l.ip(
        h,
        &[
            family(prefix),
            "route",
            "show",
            "exact",
            prefix,
            "proto",
            &p,
        ],
    )
    .trim()
    .to_string()
}

/// Prefixes of the host's proto-201 routes (both families).
fn our_prefixes(l: &Lab, h: &str) -> BTreeSet<String> {
    let p = PROTO.to_string();
    let mut out = BTreeSet::new();
    for v6 in [false, true] {
        for line in l.routes(h, v6, &["proto", &p]).lines() {
            if line.starts_with(char::is_whitespace) {
                continue;
            }
            if let Some(first) = line.split_whitespace().next() {
                let pfx = if first.contains('/') {
                    first.to_string()
                } else if v6 {
                    format!("{first}/128")
                } else {
                    format!("{first}/32")
                };
                out.insert(pfx);
            }
        }
    }
    out
}

pub(crate) fn wait_kernel(
    l: &Lab,
    h: &str,
    prefix: &str,
    desc: &str,
    cond: impl Fn(&str) -> bool,
) -> String {
    wait_until_state(desc, TIMEOUT, || {
        let r = kroute(l, h, prefix);
        (cond(&r), r)
    })
}

/// `prefix` installed as ours again (`what`: after what) and at the router.
fn wait_reinstalled(env: &Env, prefix: &str, what: &str) -> BirdRoute {
    let (l, _, h) = env.topo.parts();
    let ours = format!("proto {PROTO}");
    wait_kernel(
        l,
        h,
        prefix,
        &format!("{prefix} re-installed {what}"),
        |k| k.contains(&ours),
    );
    env.router.wait_route(prefix)
}

pub(crate) fn ping(l: &Lab, r: &str, addr: &str) {
    wait_until(&format!("ping {addr} from the router"), TIMEOUT, || {
        l.try_exec(r, &["ping", "-c1", "-W1", addr]).is_ok()
    });
}

/// Prefixes the router learned from the host.
pub(crate) fn router_prefixes(router: &Bird) -> BTreeSet<String> {
    router.prefixes_from("h1").into_iter().collect()
}

pub(crate) fn routes_json(env: &Env) -> Vec<Value> {
    env.hb
        .routes_json()
        .unwrap_or_else(|e| panic!("{e}"))
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("routes --json is not an array"))
}

fn json_prefixes(v: &[Value]) -> BTreeSet<String> {
    v.iter()
        .filter_map(|r| r["prefix"].as_str().map(str::to_string))
        .collect()
}

pub(crate) fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// 1. Static address: `via` it; without: `dev` only (scope link for IPv4). The
///    router's next hop is the host either way.
#[test]
fn static_address_via_and_dev_only() {
    let Some(env) = root_start(
        "static_address_via_and_dev_only",
        &format!("{C1_STATIC}{C2_DYN}"),
    ) else {
        return;
    };
    let (l, r, h) = env.topo.parts();
    run_c1(&env);
    instance(
        l,
        h,
        "i2",
        "vc2",
        &["203.0.113.97/32", "2001:db8:100:60::1/128"],
    );
    l.enslave(h, "vc2", "br0");

    for (p, nh) in [
        ("203.0.113.64/28", lab::HOST_V4),
        ("2001:db8:100:40::/64", lab::HOST_V6),
        ("203.0.113.96/28", lab::HOST_V4),
        ("2001:db8:100:60::/64", lab::HOST_V6),
    ] {
        let rt = env.router.wait_route(p);
        assert_eq!(rt.next_hops, [nh], "router's next hop for {p}: {rt:?}");
    }

    let proto = format!("proto {PROTO}");
    let k = our_route(l, h, "203.0.113.64/28");
    assert!(
        k.starts_with("203.0.113.64/28 via 192.0.2.10 dev br0"),
        "static ipv4.address: {k:?}"
    );
    assert!(kroute(l, h, "203.0.113.64/28").contains(&proto), "{k}");
    let k = our_route(l, h, "2001:db8:100:40::/64");
    assert!(
        k.starts_with("2001:db8:100:40::/64 via 2001:db8:100::10 dev br0"),
        "static ipv6.address: {k:?}"
    );
    let k = kroute(l, h, "203.0.113.96/28");
    assert!(
        k.starts_with("203.0.113.96/28 dev br0") && !k.contains(" via ") && k.contains(&proto),
        "no static ipv4.address: {k:?}"
    );
    assert!(
        k.contains("scope link"),
        "dev-only IPv4 route is link scope: {k:?}"
    );
    let k = kroute(l, h, "2001:db8:100:60::/64");
    assert!(
        k.starts_with("2001:db8:100:60::/64 dev br0") && !k.contains(" via ") && k.contains(&proto),
        "no static ipv6.address: {k:?}"
    );

    for a in [
        "203.0.113.65",
        "2001:db8:100:40::1",
        "203.0.113.97",
        "2001:db8:100:60::1",
    ] {
        ping(l, r, a);
    }
    env.router.assert_no_nexthop_errors();
}

/// 2. A hand-deleted route comes back, and the router ends with the prefix.
#[test]
fn deleted_route_is_reinstalled() {
    let Some(env) = root_start("deleted_route_is_reinstalled", C1_STATIC) else {
        return;
    };
    let (l, _, h) = env.topo.parts();
    run_c1(&env);
    let before = our_route(l, h, "203.0.113.64/28");
    assert!(!before.is_empty());

    // Sample the router's table while the route is deleted, to report any gap.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (gaps4, gaps6) = std::thread::scope(|s| {
        let (stop, router) = (&stop, &env.router);
        let sampler = s.spawn(move || {
            let mut gap: [Option<Duration>; 2] = [None, None];
            let mut since: [Option<Instant>; 2] = [None, None];
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let have = router_prefixes(router);
                for (n, p) in ["203.0.113.64/28", "2001:db8:100:40::/64"]
                    .iter()
                    .enumerate()
                {
                    if !have.contains(*p) {
                        since[n].get_or_insert_with(Instant::now);
                    } else if let Some(t) = since[n].take() {
                        *gap[n].get_or_insert(Duration::ZERO) += t.elapsed();
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            gap
        });
        let p = PROTO.to_string();
        l.ip(h, &["route", "del", "203.0.113.64/28", "proto", &p]);
        l.ip(
            h,
            &["-6", "route", "del", "2001:db8:100:40::/64", "proto", &p],
        );
        wait_reinstalled(&env, "203.0.113.64/28", "after the delete");
        wait_reinstalled(&env, "2001:db8:100:40::/64", "after the delete");
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let g = sampler.join().unwrap();
        (g[0], g[1])
    });
    eprintln!("deleted_route_is_reinstalled: router-side gap ipv4 {gaps4:?} ipv6 {gaps6:?} (sampled every ~10 ms + birdc time; None = never seen missing)");
    assert_eq!(our_route(l, h, "203.0.113.64/28"), before);
    ping_c1(&env);
}

/// 3. Bridge down: withdrawn at the router; up: re-installed, advertised, pings work.
#[test]
fn bridge_down_up() {
    let Some(env) = root_start("bridge_down_up", C1_DYN) else {
        return;
    };
    let (l, r, h) = env.topo.parts();
    // Keep br0's IPv6 address across down/up (the instance's IPv6 default route
    // points at it); IPv4 addresses stay anyway.
    l.exec(
        h,
        &["sysctl", "-qw", "net.ipv6.conf.br0.keep_addr_on_down=1"],
    );
    start_c1(&env, &["203.0.113.65/32", "2001:db8:100:40::1/128"]);
    ping(l, r, "203.0.113.65");

    l.ip(h, &["link", "set", "br0", "down"]);
    env.router.wait_no_route("203.0.113.64/28");
    env.router.wait_no_route("2001:db8:100:40::/64");

    l.ip(h, &["link", "set", "br0", "up"]);
    let r4 = wait_reinstalled(&env, "203.0.113.64/28", "after up");
    let r6 = wait_reinstalled(&env, "2001:db8:100:40::/64", "after up");
    assert_eq!(r4.next_hops, [lab::HOST_V4], "{r4:?}");
    assert_eq!(r6.next_hops, [lab::HOST_V6], "{r6:?}");
    ping_c1(&env);
}

/// 3b. Bridge addresses come and go: removing one that is not the link's last IPv4
///     address (even the one covering the route's gateway) leaves the routes in the
///     kernel and at the router; removing the last one makes the kernel flush them
///     without an event: withdrawn, and back with the address.
#[test]
fn bridge_addresses_removed() {
    let Some(env) = root_start("bridge_addresses_removed", C1_STATIC) else {
        return;
    };
    let (l, r, h) = env.topo.parts();
    instance(l, h, "i1", "vc1", &["203.0.113.65/32", "192.0.2.10/24"]);
    l.enslave(h, "vc1", "br0");
    env.router.wait_route("203.0.113.64/28");
    let installed = our_route(l, h, "203.0.113.64/28");
    assert!(installed.contains("via 192.0.2.10"), "{installed}");

    // Another address comes and goes; then the one covering the gateway goes.
    l.addr(h, "br0", "198.18.7.1/24");
    env.router.wait_route("198.18.7.0/24");
    l.del_addr(h, "br0", "198.18.7.1/24");
    env.router.wait_no_route("198.18.7.0/24");
    l.addr(h, "br0", "198.18.7.1/24");
    l.del_addr(h, "br0", BR4);
    env.router.wait_no_route(BR4_NET);
    assert_eq!(our_route(l, h, "203.0.113.64/28"), installed);
    assert_eq!(env.router.route("203.0.113.64/28").len(), 1);

    // The last IPv4 address: the kernel drops the route silently.
    l.del_addr(h, "br0", "198.18.7.1/24");
    env.router.wait_no_route("203.0.113.64/28");
    assert_eq!(our_route(l, h, "203.0.113.64/28"), "");
    assert!(env.router.protocol("h1").established());

    l.addr(h, "br0", BR4);
    wait_reinstalled(&env, "203.0.113.64/28", "with the address");
    ping(l, r, "203.0.113.65");
}

fn nexthop_count(k: &str) -> usize {
    k.matches("nexthop").count()
}

/// 4. Anycast: one multipath route, advertised once, shrinking, withdrawn with the
///    last NIC.
#[test]
fn anycast_multipath() {
    if !lab::require_root("anycast_multipath") {
        return;
    }
    let env = start(ANYCAST, &[("ipv4.routes.anycast", "true")], false);
    let l = &env.topo.lab;
    let (r, h) = (&env.topo.r, &env.topo.h);
    instance(l, h, "i1", "vc1", &["203.0.113.80/32", "192.0.2.11/24"]);
    instance(l, h, "i2", "vc2", &["203.0.113.80/32", "192.0.2.12/24"]);
    l.enslave(h, "vc1", "br0");
    l.enslave(h, "vc2", "br0");

    let k = wait_kernel(
        l,
        h,
        "203.0.113.80/32",
        "multipath route with two next hops",
        |k| nexthop_count(k) == 2,
    );
    assert!(k.contains(&format!("proto {PROTO}")), "{k}");
    assert!(
        k.contains("via 192.0.2.11 dev br0") && k.contains("via 192.0.2.12 dev br0"),
        "{k}"
    );
    let rt = env.router.wait_route("203.0.113.80/32");
    assert_eq!(env.router.route("203.0.113.80/32").len(), 1);
    assert_eq!(rt.next_hops, [lab::HOST_V4], "{rt:?}");
    ping(l, r, "203.0.113.80");

    // Stop c1.
    l.delete_link(h, "vc1");
    let k = wait_kernel(l, h, "203.0.113.80/32", "multipath shrinks to c2", |k| {
        nexthop_count(k) == 0 && k.contains("via 192.0.2.12 dev br0")
    });
    assert!(!k.contains("192.0.2.11"), "{k}");
    let routes = env.router.route("203.0.113.80/32");
    assert_eq!(routes.len(), 1, "still one route at the router: {routes:?}");
    ping(l, r, "203.0.113.80");

    // Stop c2.
    l.delete_link(h, "vc2");
    env.router.wait_no_route("203.0.113.80/32");
    wait_kernel(
        l,
        h,
        "203.0.113.80/32",
        "anycast route gone from the host",
        |k| k.is_empty(),
    );
    env.router.assert_no_nexthop_errors();
}

/// 4b. Without anycast, the same prefix on two NICs is a config error naming both.
#[test]
fn duplicate_external_without_anycast_is_an_error() {
    if !lab::require_root("duplicate_external_without_anycast_is_an_error") {
        return;
    }
    let l = Lab::new();
    let h = l.ns("h");
    let cfg = l.path("dup.yaml");
    // `hostbgp check` of the ANYCAST instances with `keys`: (exit code, output).
    let check = |keys: &[(&str, &str)]| {
        std::fs::write(&cfg, config_yaml(lab::ROUTER_V6, keys, ANYCAST)).unwrap();
        let out = l
            .command(
                &h,
                &[
                    BIN,
                    "check",
                    "--config",
                    &cfg.to_string_lossy(),
                    "--member",
                    "host",
                ],
            )
            .output()
            .expect("run hostbgp check");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = check(&[]);
    assert_eq!(code, Some(1), "{text}");
    for key in [
        "instances.c1.devices.eth0.ipv4.routes.external",
        "instances.c2.devices.eth0.ipv4.routes.external",
    ] {
        assert!(text.contains(key), "error should name {key}: {text}");
    }
    // With anycast on the network it is valid.
    let (code, text) = check(&[("ipv4.routes.anycast", "true")]);
    assert_eq!(code, Some(0), "{text}");
}

/// 5. SIGTERM + start: routes adopted, no kernel route deleted or re-added.
#[test]
fn restart_adopts_routes() {
    if !lab::require_root("restart_adopts_routes") {
        return;
    }
    let mut env = start(C1_STATIC, &[], true);
    let l = &env.topo.lab;
    let h = env.topo.h.clone();
    let r = env.topo.r.clone();
    run_c1(&env);
    let k4 = our_route(l, &h, "203.0.113.64/28");
    let k6 = our_route(l, &h, "2001:db8:100:40::/64");

    let mon_file = l.path("monitor.txt");
    let mut mon = l.spawn(&h, &["ip", "-o", "monitor", "route"], Some(&mon_file));
    let marker = |verb| {
        [
            "route",
            verb,
            "10.255.0.1/32",
            "dev",
            "br0",
            "proto",
            "static",
        ]
    };
    // Make sure the monitor is listening before the restart: a marker route.
    // (re-added until seen: the monitor subscribes asynchronously).
    wait_until("ip monitor saw the first marker", TIMEOUT, || {
        let _ = l.try_ip(&h, &marker("del"));
        l.ip(&h, &marker("add"));
        std::thread::sleep(Duration::from_millis(100));
        std::fs::read_to_string(&mon_file)
            .unwrap_or_default()
            .contains("10.255.0.1")
    });

    env.hb.term();
    let st = env.hb.wait_exit(TIMEOUT);
    assert!(st.is_some(), "hostbgp did not exit on SIGTERM");
    assert_eq!(
        our_route(l, &h, "203.0.113.64/28"),
        k4,
        "route kept across SIGTERM"
    );
    env.hb.respawn(l);
    env.wait_established();
    wait_until_state(
        "routes advertised (not stale) after restart",
        TIMEOUT,
        || {
            let a = env.router.route("203.0.113.64/28");
            let b = env.router.route("2001:db8:100:40::/64");
            let ok = a.len() == 1 && b.len() == 1 && !a[0].stale && !b[0].stale;
            (ok, (a, b))
        },
    );
    wait_until_state(
        "routes --json: kernel state installed after restart",
        TIMEOUT,
        || {
            let v = env.hb.routes_json().unwrap_or(Value::Null);
            let ok = v.as_array().is_some_and(|a| {
                a.iter()
                    .filter(|r| {
                        r["prefix"] == "203.0.113.64/28" || r["prefix"] == "2001:db8:100:40::/64"
                    })
                    .filter(|r| r["kernel"]["state"] == "installed")
                    .count()
                    == 2
            });
            (ok, v)
        },
    );
    // Second marker: everything the kernel reported before it is in the file.
    l.ip(&h, &marker("del"));
    wait_until("ip monitor saw the second marker", TIMEOUT, || {
        std::fs::read_to_string(&mon_file)
            .unwrap_or_default()
            .contains("Deleted 10.255.0.1")
    });
    let _ = mon.kill();
    let _ = mon.wait();
    let text = std::fs::read_to_string(&mon_file).unwrap_or_default();
    let touched: Vec<&str> = text
        .lines()
        .filter(|line| {
            line.contains("203.0.113.64/28")
                || line.contains("2001:db8:100:40::/64")
                || line.contains(&format!("proto {PROTO}"))
        })
        .collect();
    eprintln!(
        "restart_adopts_routes: {} route events seen by ip monitor during the restart",
        text.lines().count()
    );
    assert!(
        touched.is_empty(),
        "kernel route events for hostbgp's routes during the restart (must be none):\n{}",
        touched.join("\n")
    );
    assert_eq!(our_route(l, &h, "203.0.113.64/28"), k4);
    assert_eq!(our_route(l, &h, "2001:db8:100:40::/64"), k6);
    ping(l, &r, "203.0.113.65");
}

fn finish(c: Child, what: &str) {
    let out = c.wait_with_output().expect("wait ip -batch");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{what}: {} stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 6. 10 000 foreign routes added and removed while an instance starts: the
///    advertised set equals the intent, foreign routes untouched.
#[test]
fn flood_of_foreign_routes() {
    let Some(env) = root_start("flood_of_foreign_routes", &format!("{C1_DYN}{C2_DYN}")) else {
        return;
    };
    let (l, r, h) = env.topo.parts();
    start_c1(&env, &["203.0.113.65/32", "2001:db8:100:40::1/128"]);
    // c2's NIC exists, off the bridge until the flood runs.
    instance(
        l,
        h,
        "i2",
        "vc2",
        &["203.0.113.97/32", "2001:db8:100:60::1/128"],
    );

    let (mut add, mut del) = (String::new(), String::new());
    for n in 0..10_000u32 {
        let p = format!("10.200.{}.{}/32", n / 256, n % 256);
        add.push_str(&format!("route add {p} dev br0 proto static\n"));
        del.push_str(&format!("route del {p} dev br0 proto static\n"));
    }
    let (fa, fd) = (l.path("flood-add.batch"), l.path("flood-del.batch"));
    std::fs::write(&fa, add).unwrap();
    std::fs::write(&fd, del).unwrap();

    let pid = env.hb.pid().expect("hostbgp pid");
    let cpu0 = lab::cpu_ticks(pid);
    let t0 = Instant::now();
    let mut c = l.batch(h, &fa);
    // c2 starts during the flood (once the first foreign routes are in).
    wait_until("first foreign routes added", TIMEOUT, || {
        l.try_ip(h, &["-4", "route", "show", "10.200.0.0/32"])
            .is_ok_and(|o| !o.trim().is_empty())
    });
    l.enslave(h, "vc2", "br0");
    let during = c.try_wait().expect("try_wait").is_none();
    eprintln!(
        "flood_of_foreign_routes: c2 enslaved while the add batch was still running: {during}"
    );
    finish(c, "ip -batch add");
    let count = l.routes(h, false, &["proto", "static"]).lines().count();
    assert_eq!(count, 10_000, "foreign routes present after the add batch");
    let c = l.batch(h, &fd);
    finish(c, "ip -batch del");
    let flood_time = t0.elapsed();
    let cpu1 = lab::cpu_ticks(pid);
    let left = l.routes(h, false, &["proto", "static"]);
    assert!(
        left.trim().is_empty(),
        "foreign routes left: {}",
        left.lines().count()
    );

    let want_kernel = set(&[
        "203.0.113.64/28",
        "2001:db8:100:40::/64",
        "203.0.113.96/28",
        "2001:db8:100:60::/64",
    ]);
    let mut want_adv = want_kernel.clone();
    want_adv.extend(set(&[BR4_NET, BR6_NET]));
    wait_until_state("router table = intent after the flood", TIMEOUT, || {
        let got = router_prefixes(&env.router);
        (got == want_adv, got)
    });
    wait_until_state("routes --json = intent, all installed", TIMEOUT, || {
        let v = routes_json(&env);
        let ok = json_prefixes(&v) == want_adv
            && v.iter()
                .filter(|r| want_kernel.contains(r["prefix"].as_str().unwrap_or("")))
                .all(|r| r["kernel"]["state"] == "installed");
        (ok, v)
    });
    assert_eq!(
        our_prefixes(l, h),
        want_kernel,
        "kernel proto {PROTO} routes"
    );
    let log = env.hb.log_text();
    let mentions = log.matches("10.200.").count();
    eprintln!(
        "flood_of_foreign_routes: 20000 foreign route events in {flood_time:?}; hostbgp used {} CPU ticks (1/100 s) meanwhile; log lines mentioning 10.200.: {mentions}; overrun/resync in log: {}",
        cpu1.saturating_sub(cpu0),
        log.lines().filter(|x| x.to_lowercase().contains("enobufs") || x.to_lowercase().contains("overrun") || x.to_lowercase().contains("resync")).count()
    );
    ping(l, r, "203.0.113.97");
    ping(l, r, "2001:db8:100:60::1");
}

/// 7. `hostbgp routes --json`: owner, next hop per peer, kernel state.
#[test]
fn routes_json_owner_nexthop_state() {
    if !lab::require_root("routes_json_owner_nexthop_state") {
        return;
    }
    let env = start(C1_STATIC, &[], false);
    let l = &env.topo.lab;
    let h = &env.topo.h;
    run_c1(&env);

    let want = set(&[BR4_NET, BR6_NET, "203.0.113.64/28", "2001:db8:100:40::/64"]);
    let v = wait_until_state(
        "routes --json lists the four prefixes, installed",
        TIMEOUT,
        || {
            let v = routes_json(&env);
            let ok = json_prefixes(&v) == want
                && v.iter()
                    .filter(|r| r["owner"] == "instance/c1/eth0")
                    .all(|r| r["kernel"]["state"] == "installed");
            (ok, v)
        },
    );
    for r in &v {
        let p = r["prefix"].as_str().unwrap();
        let (owner, nh) = match p {
            BR4_NET => ("network/br0", lab::HOST_V4),
            BR6_NET => ("network/br0", lab::HOST_V6),
            "203.0.113.64/28" => ("instance/c1/eth0", lab::HOST_V4),
            _ => ("instance/c1/eth0", lab::HOST_V6),
        };
        assert_eq!(r["owner"], owner, "{r}");
        assert_eq!(r["next_hops"]["r1"], nh, "next hop toward r1: {r}");
        if owner.starts_with("instance/") {
            assert_eq!(r["kernel"]["state"], "installed", "{r}");
            let hops = r["kernel"]["next_hops"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let via = if p.contains(':') {
                "2001:db8:100::10"
            } else {
                "192.0.2.10"
            };
            assert_eq!(hops.len(), 1, "{r}");
            assert_eq!(hops[0]["dev"], "br0", "{r}");
            assert_eq!(hops[0]["via"], via, "{r}");
        }
    }
    // The human-readable form mentions the owner and the state too.
    let out = l.exec(
        h,
        &[BIN, "routes", "--socket", &env.hb.socket.to_string_lossy()],
    );
    assert!(
        out.contains("instance/c1/eth0") && out.contains("installed"),
        "{out}"
    );
}
