//! Issue 17 acceptance: kernel routes that stay true. Another program's route for a
//! prefix hostbgp routes (replace, gateway or device change, a better metric, our route
//! moved to another table) is undone once, the prefix stays advertised only while
//! hostbgp's route is what the kernel uses, and a flood of other prefixes' changes
//! costs nothing.
//!
//! Lab as `instances.rs`: router `r` (bird2), host `h` with bridge `br0`, instance c1
//! (static addresses 192.0.2.10 / 2001:db8:100::10) owning 203.0.113.64/28 and
//! 2001:db8:100:40::/64.

use std::time::Instant;

use serde_json::Value;

use crate::instances::{
    instance, kroute, our_route, ping, router_prefixes, routes_json, run_c1, start, wait_kernel,
    C1_STATIC, PROTO,
};
use crate::lab::{self, wait_until_state, TIMEOUT};
use crate::speaker::Env;

const V4: &str = "203.0.113.64/28";
const V6: &str = "2001:db8:100:40::/64";

/// c1 running (its veth on the bridge), both prefixes at the router; None (the test
/// skipped) without root.
fn running_c1(test: &str) -> Option<Env> {
    if !lab::require_root(test) {
        return None;
    }
    let env = start(C1_STATIC, &[], false);
    run_c1(&env);
    Some(env)
}

fn family(prefix: &str) -> &'static str {
    if prefix.contains(':') {
        "-6"
    } else {
        "-4"
    }
}

fn gateway(prefix: &str) -> &'static str {
    if prefix.contains(':') {
        "2001:db8:100::10"
    } else {
        "192.0.2.10"
    }
}

/// Waits until the kernel holds exactly hostbgp's route for `prefix` (via the NIC's
/// address, and no other route of another protocol at the front), and returns it.
fn wait_ours_alone(env: &Env, prefix: &str, what: &str) -> String {
    let (l, _, h) = env.topo.parts();
    let want = format!("via {} dev br0 proto {PROTO}", gateway(prefix));
    wait_kernel(l, h, prefix, what, |k| {
        k.lines().next().is_some_and(|first| first.contains(&want))
    })
}

/// `routes --json`'s entry for `prefix` (null when there is none).
fn route_json(env: &Env, prefix: &str) -> Value {
    routes_json(env)
        .iter()
        .find(|r| r["prefix"] == prefix)
        .cloned()
        .unwrap_or_default()
}

/// `routes --json` says installed and advertised for `prefix`, the router has it, and
/// its instance answers pings through it.
fn assert_served(env: &Env, prefix: &str) {
    wait_until_state(
        &format!("routes --json: {prefix} installed and advertised"),
        TIMEOUT,
        || {
            let r = route_json(env, prefix);
            let ok = r["advertised"] == true && r["kernel"]["state"] == "installed";
            (ok, r)
        },
    );
    assert!(
        router_prefixes(&env.router).contains(prefix),
        "{prefix} at the router"
    );
    let addr = if prefix.contains(':') {
        "2001:db8:100:40::1"
    } else {
        "203.0.113.65"
    };
    ping(&env.topo.lab, &env.topo.r, addr);
}

fn assert_both_served(env: &Env) {
    for prefix in [V4, V6] {
        assert_served(env, prefix);
    }
}

/// The report: `ip route replace` by another protocol, then `ip route del` of
/// that protocol, left no route while `routes` said installed. Now the replacement
/// is undone at once (logged with the protocol it displaced), the later delete finds
/// nothing, and the prefix is served throughout.
#[test]
fn replaced_then_deleted_route_is_repaired() {
    let Some(env) = running_c1("replaced_then_deleted_route_is_repaired") else {
        return;
    };
    let (l, _, h) = env.topo.parts();
    for prefix in [V4, V6] {
        let fam = family(prefix);
        l.ip(
            h,
            &[
                fam, "route", "replace", prefix, "dev", "br0", "proto", "static",
            ],
        );
        let back = wait_ours_alone(&env, prefix, "hostbgp's route back after the replace");
        assert!(!back.contains("proto static"), "{back}");
        // Theirs is gone already: the delete finds nothing of theirs to remove.
        let del = l.try_ip(h, &[fam, "route", "del", prefix, "proto", "static"]);
        assert!(del.is_err(), "proto static route still there: {del:?}");
        assert_eq!(wait_ours_alone(&env, prefix, "hostbgp's route kept"), back);
        assert_served(&env, prefix);
    }
    let log = env.hb.log_text();
    let told = log
        .lines()
        .filter(|x| x.contains("proto static") && x.contains("replaced ours"))
        .count();
    assert_eq!(
        told, 2,
        "one log line per displacement naming the protocol:\n{log}"
    );
    let r = route_json(&env, V4);
    assert!(
        r["kernel"]["displaced"]
            .as_str()
            .is_some_and(|d| d.contains("proto static")),
        "routes --json tells the last displacement: {r}"
    );
}

/// Our own route's gateway or device changed by another program (our protocol or
/// another): put back, once.
#[test]
fn gateway_and_device_changes_are_undone() {
    let Some(env) = running_c1("gateway_and_device_changes_are_undone") else {
        return;
    };
    let (l, _, h) = env.topo.parts();
    let p = PROTO.to_string();
    for (prefix, via) in [(V4, "192.0.2.99"), (V6, "2001:db8:100::99")] {
        let fam = family(prefix);
        l.ip(
            h,
            &[
                fam, "route", "replace", prefix, "via", via, "dev", "br0", "proto", &p,
            ],
        );
        wait_ours_alone(&env, prefix, "gateway change by another program undone");
    }
    // A device route (no gateway) of another protocol in our route's place.
    l.ip(h, &["route", "replace", V4, "dev", "br0", "proto", "boot"]);
    wait_ours_alone(&env, V4, "device route of proto boot replaced by ours");
    assert_both_served(&env);
}

/// A route the kernel prefers to ours (a lower metric) is removed; a worse one is left,
/// since the kernel keeps using ours.
#[test]
fn metrics_beside_ours() {
    let Some(env) = running_c1("metrics_beside_ours") else {
        return;
    };
    let (l, _, h) = env.topo.parts();
    l.ip(
        h,
        &[
            "-6", "route", "add", V6, "dev", "br0", "proto", "static", "metric", "100",
        ],
    );
    wait_until_state("the better-metric IPv6 route removed", TIMEOUT, || {
        let k = kroute(l, h, V6);
        (!k.contains("metric 100"), k)
    });
    assert!(!our_route(l, h, V6).is_empty());
    // IPv4: ours has metric 0, the best there is.
    l.ip(
        h,
        &[
            "route", "add", V4, "dev", "br0", "proto", "static", "metric", "10",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let k = kroute(l, h, V4);
    assert!(k.contains("metric 10"), "a worse route is left alone: {k}");
    assert!(
        k.lines().next().is_some_and(|x| x.contains("proto 201")),
        "{k}"
    );
    assert_both_served(&env);
}

/// Our route deleted from the main table and put into another one: the main table gets
/// ours back; the other table is not ours to touch.
#[test]
fn route_moved_to_another_table() {
    let Some(env) = running_c1("route_moved_to_another_table") else {
        return;
    };
    let (l, _, h) = env.topo.parts();
    let p = PROTO.to_string();
    for prefix in [V4, V6] {
        let fam = family(prefix);
        l.sh(
            h,
            &format!(
                "ip {fam} route del {prefix} proto {p} && ip {fam} route add {prefix} via {} dev br0 proto {p} table 100",
                gateway(prefix)
            ),
        );
        wait_ours_alone(&env, prefix, "main table route back");
        let other = l.ip(h, &[fam, "route", "show", "table", "100"]);
        assert!(
            other.contains(prefix.split('/').next().unwrap_or(prefix)),
            "{other}"
        );
        assert_served(&env, prefix);
    }
}

/// 10 000 `ip route replace` of other prefixes: none reaches the agent as work (no
/// displacement logged, our routes untouched), and a replace of ours right after is
/// still seen.
#[test]
fn flood_of_foreign_replaces_elsewhere() {
    let Some(env) = running_c1("flood_of_foreign_replaces_elsewhere") else {
        return;
    };
    let (l, _, h) = env.topo.parts();
    let before = (our_route(l, h, V4), our_route(l, h, V6));
    let mut batch = String::new();
    for i in 0..10_000u32 {
        batch.push_str(&format!(
            "route replace 10.201.{}.{}/32 dev br0 proto static\n",
            i >> 8,
            i & 0xff
        ));
    }
    let file = l.path("flood.batch");
    std::fs::write(&file, batch).expect("write batch");
    let started = Instant::now();
    let path = file.to_string_lossy().to_string();
    l.ip(h, &["-batch", &path]);
    let flood = started.elapsed();
    l.ip(
        h,
        &["route", "replace", V4, "dev", "br0", "proto", "static"],
    );
    wait_ours_alone(&env, V4, "our prefix repaired right after the flood");
    assert_eq!(our_route(l, h, V6), before.1);
    let log = env.hb.log_text();
    let displaced = log.lines().filter(|x| x.contains("replaced ours")).count();
    assert_eq!(
        displaced, 1,
        "only our own prefix's replace was acted on:\n{log}"
    );
    assert!(
        !log.contains("10.201."),
        "other prefixes never reached the log"
    );
    eprintln!("flood_of_foreign_replaces_elsewhere: 10000 replaces in {flood:?}");
    assert_both_served(&env);
}

/// Issue 15: `hostbgp routes --all` lists what is configured but not advertised, with
/// the reason, and the reason goes once the prefix is advertised.
#[test]
fn routes_all_says_why_not_advertised() {
    if !lab::require_root("routes_all_says_why_not_advertised") {
        return;
    }
    let env = start(C1_STATIC, &[("ipv6.nat", "true")], false);
    let all = |env: &Env| -> Vec<Value> {
        let out = env
            .topo
            .lab
            .try_exec(
                &env.topo.h,
                &[
                    crate::hostbgp::BIN,
                    "routes",
                    "--all",
                    "--json",
                    "--socket",
                    &env.hb.socket.to_string_lossy(),
                ],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    };
    let v = all(&env);
    let reason = |v: &[Value], owner: &str, prefix: Option<&str>| {
        v.iter()
            .find(|r| {
                r["owner"] == owner && r["prefix"].as_str() == prefix && r["advertised"] == false
            })
            .and_then(|r| r["reason"].as_str().map(str::to_string))
    };
    assert_eq!(
        reason(&v, "instance/c1/eth0", Some(V4)).as_deref(),
        Some("instance stopped: vc1 does not exist"),
        "{v:?}"
    );
    assert!(
        reason(&v, "network/br0", None).is_some_and(|r| r.starts_with("ipv6.nat is true")),
        "{v:?}"
    );
    let text = crate::lab::run(&[
        "ip",
        "netns",
        "exec",
        &env.topo.h,
        crate::hostbgp::BIN,
        "routes",
        "--all",
        "--socket",
        &env.hb.socket.to_string_lossy(),
    ])
    .unwrap_or_else(|e| e);
    assert!(
        text.contains("not advertised (instance stopped: vc1 does not exist)"),
        "{text}"
    );
    // Started: advertised, no reason left.
    let (l, _, h) = env.topo.parts();
    instance(l, h, "i1", "vc1", &["203.0.113.65/32", "192.0.2.10/24"]);
    l.enslave(h, "vc1", "br0");
    env.router.wait_route(V4);
    let v = all(&env);
    assert_eq!(reason(&v, "instance/c1/eth0", Some(V4)), None, "{v:?}");
}
