//! Issue 5 acceptance: clusters. One router (bird2, AS 65000, `merge paths on`), an
//! uplink segment (bridge `up0` in the router namespace, 198.51.100.0/24 and
//! 2001:db8:ff::/64), two member namespaces each running hostbgp with the SAME config
//! file and its own `--member mN`, and an "OVN router" namespace on the uplink holding
//! `volatile.network.ipvN.address` and the OVN subnet on a dummy interface.
//!
//! Addresses: router 198.51.100.2 / 2001:db8:ff::1, member N 198.51.100.1N /
//! 2001:db8:ff::1N, OVN router 198.51.100.20 / 2001:db8:ff::20 (OVN subnet
//! 10.20.0.0/24 and 2001:db8:20::/64 inside its namespace only).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bird::{Bird, BirdConfig, BirdPeer, BirdRoute};
use crate::hostbgp::{Hostbgp, BIN};
use crate::lab::{self, wait_until, wait_until_state, Lab, TIMEOUT};

/// hostbgp's kernel route protocol number.
const PROTO: u8 = hostbgp::kernel::ROUTE_PROTOCOL;

const ROUTER_V4: &str = "198.51.100.2";
const ROUTER_V6: &str = "2001:db8:ff::1";
const OVN_V4: &str = "198.51.100.20";
const OVN_V6: &str = "2001:db8:ff::20";

fn member_v4(n: usize) -> String {
    format!("198.51.100.1{n}")
}
fn member_v6(n: usize) -> String {
    format!("2001:db8:ff::1{n}")
}

/// One member's hostbgp: `hostbgp run --config SHARED --member mN`.
pub type Member = Hostbgp;

/// Starts member `name` (also its `--member`) on the shared config; waits until it answers.
fn start_member(lab: &Lab, ns: &str, name: &str, config: &Path) -> Member {
    let mut m = Hostbgp::start_member(lab, ns, name, name, config);
    m.wait_ready();
    m
}

/// What the shared config holds.
#[derive(Clone, Default)]
struct Shared {
    /// An OVN network `ovn1` on the uplink.
    ovn: bool,
    /// A bridge `br0` (config keys added to `ipv4.nat`/`ipv6.nat: "false"`).
    br0: Option<Vec<(&'static str, &'static str)>>,
    /// Extra YAML lines under `members.mN:` (indented by 4), per member index.
    member_extra: Vec<(usize, &'static str)>,
    /// Body of `instances:` (indented by 2).
    instances: String,
    /// Extra config keys of the uplink network.
    uplink: Vec<(&'static str, &'static str)>,
}

impl Shared {
    fn yaml(&self) -> String {
        let mut s = String::from(
            "config:\n  core.bgp_asn: \"65010\"\nnetworks:\n  uplink:\n    type: physical\n    config:\n      bgp.peers.r1.address: 198.51.100.2\n      bgp.peers.r1.asn: \"65000\"\n",
        );
        for (k, v) in &self.uplink {
            s.push_str(&format!("      {k}: \"{v}\"\n"));
        }
        if self.ovn {
            s.push_str(&format!(
                "  ovn1:\n    type: ovn\n    config:\n      network: uplink\n      ipv4.address: 10.20.0.1/24\n      ipv4.nat: \"false\"\n      volatile.network.ipv4.address: {OVN_V4}\n      ipv6.address: 2001:db8:20::1/64\n      ipv6.nat: \"false\"\n      volatile.network.ipv6.address: \"{OVN_V6}\"\n"
            ));
        }
        if let Some(keys) = &self.br0 {
            s.push_str("  br0:\n    type: bridge\n    config:\n      ipv4.nat: \"false\"\n      ipv6.nat: \"false\"\n");
            for (k, v) in keys {
                s.push_str(&format!("      {k}: \"{v}\"\n"));
            }
        }
        if !self.instances.trim().is_empty() {
            s.push_str("instances:\n");
            s.push_str(&self.instances);
            if !s.ends_with('\n') {
                s.push('\n');
            }
        }
        s.push_str("members:\n");
        for n in 1..=2 {
            s.push_str(&format!(
                "  m{n}:\n    config:\n      core.bgp_address: \"{}:179\"\n      core.bgp_routerid: {}\n",
                member_v4(n),
                member_v4(n)
            ));
            for (i, extra) in &self.member_extra {
                if *i == n {
                    s.push_str(extra);
                    if !extra.ends_with('\n') {
                        s.push('\n');
                    }
                }
            }
        }
        s
    }
}

/// The cluster lab. Field order = drop order: agents, router, then the lab.
struct Cluster {
    members: Vec<Member>,
    router: Bird,
    /// Member namespaces, index 0 = m1.
    mns: Vec<String>,
    r: String,
    o: String,
    config: PathBuf,
    lab: Lab,
}

impl Cluster {
    /// Builds the lab; `setup(lab, member_ns)` runs per member before its agent starts
    /// (bridges, instances).
    fn start(shared: &Shared, setup: impl Fn(&Lab, usize, &str)) -> Cluster {
        Cluster::start_yaml(&shared.yaml(), setup)
    }

    /// [`Cluster::start`]; None (the test skipped) without root.
    fn root_start(
        test: &str,
        shared: &Shared,
        setup: impl Fn(&Lab, usize, &str),
    ) -> Option<Cluster> {
        lab::require_root(test).then(|| Cluster::start(shared, setup))
    }

    /// As [`Cluster::start`] with the shared file's text.
    fn start_yaml(yaml: &str, setup: impl Fn(&Lab, usize, &str)) -> Cluster {
        let lab = Lab::new();
        let r = lab.ns("r");
        lab.ip(&r, &["link", "add", "up0", "type", "bridge"]);
        lab.ip(&r, &["link", "set", "up0", "up"]);
        lab.addr(&r, "up0", &format!("{ROUTER_V4}/24"));
        lab.addr(&r, "up0", &format!("{ROUTER_V6}/64"));

        // The OVN router: uplink address + the OVN subnet inside.
        let o = lab.ns("o");
        lab.veth((&r, "vo"), (&o, "eth0"));
        lab.ip(&r, &["link", "set", "vo", "master", "up0"]);
        lab.addr(&o, "eth0", &format!("{OVN_V4}/24"));
        lab.addr(&o, "eth0", &format!("{OVN_V6}/64"));
        // The OVN-internal side (no dummy module here: a veth pair inside `o`).
        lab.ip(
            &o,
            &[
                "link", "add", "int0", "type", "veth", "peer", "name", "int1",
            ],
        );
        lab.ip(&o, &["link", "set", "int0", "up"]);
        lab.ip(&o, &["link", "set", "int1", "up"]);
        lab.addr(&o, "int0", "10.20.0.1/24");
        lab.addr(&o, "int0", "2001:db8:20::1/64");
        // An OVN instance's external route (test 2) lives behind the OVN router too.
        lab.addr(&o, "int0", "203.0.113.33/28");

        let config = lab.path("shared.yaml");
        fs::write(&config, yaml).expect("write shared config");

        let mut mns = Vec::new();
        let mut peers = Vec::new();
        for n in 1..=2 {
            let m = lab.ns(&format!("m{n}"));
            let port = format!("vm{n}");
            lab.veth((&r, &port), (&m, "eth0"));
            lab.ip(&r, &["link", "set", &port, "master", "up0"]);
            lab.addr(&m, "eth0", &format!("{}/24", member_v4(n)));
            lab.addr(&m, "eth0", &format!("{}/64", member_v6(n)));
            setup(&lab, n, &m);
            peers.push(BirdPeer::router(&format!("m{n}"), &member_v4(n)));
            mns.push(m);
        }
        let router = Bird::start(&lab, &r, "router", &BirdConfig::router(ROUTER_V4, peers));
        let members = mns
            .iter()
            .enumerate()
            .map(|(i, ns)| start_member(&lab, ns, &format!("m{}", i + 1), &config))
            .collect();
        Cluster {
            members,
            router,
            mns,
            r,
            o,
            config,
            lab,
        }
    }

    fn wait_established(&self) {
        for n in 1..=2 {
            self.router.wait_established(&format!("m{n}"));
        }
    }

    /// Waits until bird holds `prefix` from exactly the sessions `protos` (sorted).
    fn wait_route_from(&self, prefix: &str, protos: &[&str]) -> Vec<BirdRoute> {
        wait_until_state(
            &format!("bird route {prefix} from exactly {protos:?}"),
            TIMEOUT,
            || {
                let rs = self.router.route(prefix);
                let mut got: Vec<&str> = rs.iter().map(|r| r.protocol.as_str()).collect();
                got.sort();
                (got == protos, rs)
            },
        )
    }

    /// Router kernel route text for `prefix`.
    fn kernel(&self, prefix: &str) -> String {
        self.lab.routes(&self.r, prefix.contains(':'), &[prefix])
    }

    fn wait_ping(&self, addr: &str) {
        self.lab.wait_ping(&self.r, addr);
    }

    /// Waits until the router's kernel route for `prefix` goes via exactly `want`
    /// (sorted); the route's text.
    fn wait_kernel_gateways(&self, prefix: &str, want: &[String]) -> String {
        wait_until_state(
            &format!("router kernel: {prefix} via {want:?}"),
            TIMEOUT,
            || {
                let k = self.kernel(prefix);
                (gateways(&k) == want, k)
            },
        )
    }

    /// No member installed a kernel route (the OVN router routes for OVN).
    fn assert_no_agent_kernel_routes(&self) {
        for i in 0..2 {
            let k = self.agent_kernel_routes(i);
            assert!(
                k.trim().is_empty(),
                "m{} installed kernel routes: {k}",
                i + 1
            );
        }
    }

    /// Kernel routes hostbgp installed in member namespace `i` (0-based).
    fn agent_kernel_routes(&self, i: usize) -> String {
        let p = PROTO.to_string();
        let mut s = self.lab.routes(&self.mns[i], false, &["proto", &p]);
        s.push_str(&self.lab.routes(&self.mns[i], true, &["proto", &p]));
        s
    }
}

/// Gateways of a kernel route (`via X` words).
fn gateways(kernel: &str) -> Vec<String> {
    let words: Vec<&str> = kernel.split_whitespace().collect();
    let mut gws: Vec<String> = words
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| w[1].to_string())
        .collect();
    gws.sort();
    gws
}

fn bgp_next_hop(r: &BirdRoute) -> String {
    r.attr("BGP.next_hop").unwrap_or("").to_string()
}

/// Test 1: every member advertises the OVN subnet with the OVN router as next hop;
/// the router reaches it through the OVN router; one member's shutdown leaves it up.
#[test]
fn ovn_subnet_advertised_by_every_member() {
    if !lab::require_root("ovn_subnet_advertised_by_every_member") {
        return;
    }
    let mut c = Cluster::start(
        &Shared {
            ovn: true,
            ..Default::default()
        },
        |_, _, _| {},
    );
    c.wait_established();
    let rs = c.wait_route_from("10.20.0.0/24", &["m1", "m2"]);
    for r in &rs {
        assert_eq!(bgp_next_hop(r), OVN_V4, "{rs:#?}");
        assert_eq!(r.next_hops, [OVN_V4], "{rs:#?}");
    }
    let rs6 = c.wait_route_from("2001:db8:20::/64", &["m1", "m2"]);
    for r in &rs6 {
        assert_eq!(r.next_hops, [OVN_V6], "{rs6:#?}");
    }
    wait_until("router kernel route 10.20.0.0/24", TIMEOUT, || {
        !c.kernel("10.20.0.0/24").is_empty()
    });
    let k = c.kernel("10.20.0.0/24");
    assert_eq!(gateways(&k), [OVN_V4], "one route via the OVN router: {k}");
    c.wait_ping("10.20.0.1");
    c.wait_ping("2001:db8:20::1");
    c.assert_no_agent_kernel_routes();

    // Full shutdown of m2: m2's advertisement goes, m1's stays.
    let out = c.members[1].shutdown();
    assert!(out.is_ok(), "hostbgp shutdown on m2: {out:?}");
    let st = c.members[1].wait_exit(TIMEOUT);
    assert!(
        st.is_some_and(|s| s.success()),
        "m2 exit status after shutdown: {st:?}"
    );
    c.wait_route_from("10.20.0.0/24", &["m1"]);
    c.wait_route_from("2001:db8:20::/64", &["m1"]);
    assert!(!c.router.protocol("m2").established());
    let k = c.kernel("10.20.0.0/24");
    assert_eq!(
        gateways(&k),
        [OVN_V4],
        "route still up after m2 shutdown: {k}"
    );
    c.wait_ping("10.20.0.1");
    c.wait_ping("2001:db8:20::1");
    c.router.assert_clean("m1");
}

/// Test 2: an OVN NIC's external route is advertised only by its `location` member.
#[test]
fn ovn_nic_route_only_from_location_member() {
    let Some(c) = Cluster::root_start(
        "ovn_nic_route_only_from_location_member",
        &Shared {
            ovn: true,
            instances: instances(&[(
                "m1",
                "type: nic, network: ovn1, ipv4.routes.external: 203.0.113.32/28",
            )]),
            ..Default::default()
        },
        |_, _, _| {},
    ) else {
        return;
    };
    c.wait_established();
    let rs = c.wait_route_from("203.0.113.32/28", &["m1"]);
    assert_eq!(bgp_next_hop(&rs[0]), OVN_V4, "{rs:#?}");
    assert_eq!(rs[0].next_hops, [OVN_V4], "{rs:#?}");
    // m2 has sent its full table (the OVN subnet) and still not this route.
    c.wait_route_from("10.20.0.0/24", &["m1", "m2"]);
    let rs = c.router.route("203.0.113.32/28");
    assert!(
        rs.iter().all(|r| r.protocol == "m1") && rs.len() == 1,
        "only m1 may advertise 203.0.113.32/28: {rs:#?}"
    );
    let m2 = c.members[1].advertised();
    assert!(
        !m2.iter().any(|p| p == "203.0.113.32/28"),
        "m2 routes --json: {m2:?}"
    );
    let m1 = c.members[0].advertised();
    assert!(
        m1.iter().any(|p| p == "203.0.113.32/28"),
        "m1 routes --json: {m1:?}"
    );
    c.wait_ping("203.0.113.33");
    c.assert_no_agent_kernel_routes();
    c.router.assert_no_nexthop_errors();
}

/// Per-member bridge `br0` (192.0.2.1/24, like a cluster bridge) and, when `anycast`,
/// an instance namespace `iN` behind veth `vcN` holding 203.0.113.80/32.
fn member_bridge(l: &Lab, n: usize, m: &str, instance: bool) {
    l.forwarding(m);
    l.bridge(m, "br0");
    l.addr(m, "br0", "192.0.2.1/24");
    if instance {
        let i = l.ns(&format!("i{n}"));
        let host = format!("vc{n}");
        l.instance_nic(m, &host, &i);
        l.addr(&i, "eth0", "203.0.113.80/32");
        l.route(
            &i,
            &["default", "via", "192.0.2.1", "dev", "eth0", "onlink"],
        );
        l.enslave(m, &host, "br0");
    }
}

/// An `instances:` body: instance cN (N from 1) on member `location` with NIC eth0
/// `nic` (the keys of its flow map), for each (location, nic).
fn instances(nics: &[(&str, &str)]) -> String {
    nics.iter()
        .enumerate()
        .map(|(i, (location, nic))| {
            format!(
                "  c{}:\n    location: {location}\n    devices:\n      eth0: {{{nic}}}\n",
                i + 1
            )
        })
        .collect()
}

/// c1 on m1 and c2 on m2, both behind br0 routing 203.0.113.80/32.
fn anycast_instances() -> String {
    instances(&[
        (
            "m1",
            "type: nic, network: br0, host_name: vc1, ipv4.routes.external: 203.0.113.80/32",
        ),
        (
            "m2",
            "type: nic, network: br0, host_name: vc2, ipv4.routes.external: 203.0.113.80/32",
        ),
    ])
}

/// Test 3: the same anycast /32 on an instance of m1 and of m2 gives one multipath
/// route at the router; stopping one instance drops it to one path; pings keep working.
#[test]
fn bridged_anycast_across_members() {
    let Some(c) = Cluster::root_start(
        "bridged_anycast_across_members",
        &Shared {
            br0: Some(vec![("ipv4.routes.anycast", "true")]),
            instances: anycast_instances(),
            ..Default::default()
        },
        |l, n, m| member_bridge(l, n, m, true),
    ) else {
        return;
    };
    c.wait_established();
    let rs = c.wait_route_from("203.0.113.80/32", &["m1", "m2"]);
    let mut nhs: Vec<String> = rs.iter().map(bgp_next_hop).collect();
    nhs.sort();
    assert_eq!(nhs, [member_v4(1), member_v4(2)], "{rs:#?}");
    // One multipath route via m1 and m2.
    let k = c.wait_kernel_gateways("203.0.113.80/32", &[member_v4(1), member_v4(2)]);
    assert!(k.contains("nexthop"), "multipath route expected: {k}");
    for _ in 0..3 {
        c.wait_ping("203.0.113.80");
    }
    // Each member's own path (its kernel route to its instance) works.
    for m in &c.mns {
        c.lab.wait_ping(m, "203.0.113.80");
    }

    // Stop c1 (its veth goes away on m1).
    c.lab.delete_link(&c.mns[0], "vc1");
    c.wait_route_from("203.0.113.80/32", &["m2"]);
    c.wait_kernel_gateways("203.0.113.80/32", &[member_v4(2)]);
    for _ in 0..3 {
        c.wait_ping("203.0.113.80");
    }
    // m2's kernel route is untouched, m1's is gone.
    let k2 = c.agent_kernel_routes(1);
    assert!(k2.contains("203.0.113.80"), "m2: {k2}");
    wait_until("m1 kernel route 203.0.113.80 removed", TIMEOUT, || {
        !c.agent_kernel_routes(0).contains("203.0.113.80")
    });
    c.router.assert_no_nexthop_errors();
}

/// Test 4: `members.mN.networks.br0.bgp.ipv4.nexthop` differs per member and shows up
/// at the router as each member's next hop.
#[test]
fn per_member_nexthop_overrides() {
    let Some(c) = Cluster::root_start(
        "per_member_nexthop_overrides",
        &Shared {
            br0: Some(vec![]),
            member_extra: vec![
                (
                    1,
                    "    networks:\n      br0: {bgp.ipv4.nexthop: 198.51.100.31}\n",
                ),
                (
                    2,
                    "    networks:\n      br0: {bgp.ipv4.nexthop: 198.51.100.32}\n",
                ),
            ],
            ..Default::default()
        },
        |l, n, m| {
            member_bridge(l, n, m, false);
            // The override address is the member's too, so the router can use it.
            l.addr(m, "eth0", &format!("198.51.100.3{n}/24"));
        },
    ) else {
        return;
    };
    c.wait_established();
    let rs = c.wait_route_from("192.0.2.0/24", &["m1", "m2"]);
    for r in &rs {
        let want = match r.protocol.as_str() {
            "m1" => "198.51.100.31",
            _ => "198.51.100.32",
        };
        assert_eq!(bgp_next_hop(r), want, "{rs:#?}");
        assert_eq!(r.next_hops, [want], "{rs:#?}");
    }
    c.wait_kernel_gateways(
        "192.0.2.0/24",
        &["198.51.100.31".into(), "198.51.100.32".into()],
    );
    c.wait_ping("192.0.2.1");
    // The overlay is reported per member.
    for (i, nh) in [(0, "198.51.100.31"), (1, "198.51.100.32")] {
        let st = c.members[i].status_json().expect("status --json");
        let keys = st["server"]["overlay_keys"].to_string();
        assert!(keys.contains("bgp.ipv4.nexthop"), "m{}: {st}", i + 1);
        let routes = c.members[i].routes_json().expect("routes --json");
        let br = routes
            .as_array()
            .and_then(|a| a.iter().find(|r| r["prefix"] == "192.0.2.0/24"))
            .cloned()
            .unwrap_or_default();
        assert!(br.to_string().contains(nh), "m{} routes: {routes}", i + 1);
    }
    c.router.assert_no_nexthop_errors();
}

/// `hostbgp check --config F --member M`: (exit code, stdout + stderr).
fn check(yaml: &str, member: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("shared.yaml");
    fs::write(&f, yaml).expect("write config");
    let out = Command::new(BIN)
        .args([
            "check",
            "--config",
            &f.to_string_lossy(),
            "--member",
            member,
        ])
        .output()
        .expect("run hostbgp check");
    (out.status.code(), lab::output_text(&out))
}

/// `check --member` passes.
fn assert_check_passes(yaml: &str, member: &str) {
    let (code, text) = check(yaml, member);
    assert_eq!(code, Some(0), "check --member {member}: {text}\n{yaml}");
}

/// `check --member` fails, naming every one of `keys`.
fn assert_check_names(yaml: &str, member: &str, keys: &[&str]) {
    let (code, text) = check(yaml, member);
    assert_eq!(code, Some(1), "check --member {member}: {text}\n{yaml}");
    for key in keys {
        assert!(
            text.contains(key),
            "check --member {member} must name {key}: {text}"
        );
    }
}

/// Test 5: overlapping non-anycast external routes on instances of two members.
#[test]
fn check_names_cross_member_overlap() {
    let shared = Shared {
        br0: Some(vec![]),
        instances: instances(&[
            (
                "m1",
                "type: nic, network: br0, host_name: vc1, ipv4.routes.external: 203.0.113.64/28",
            ),
            (
                "m2",
                "type: nic, network: br0, host_name: vc2, ipv4.routes.external: 203.0.113.72/29",
            ),
        ]),
        ..Default::default()
    };
    let yaml = shared.yaml();
    for member in ["m1", "m2"] {
        assert_check_names(
            &yaml,
            member,
            &[
                "instances.c1.devices.eth0.ipv4.routes.external",
                "instances.c2.devices.eth0.ipv4.routes.external",
            ],
        );
    }
    // The same routes with anycast on the bridge (identical prefixes) are fine.
    let ok = Shared {
        br0: Some(vec![("ipv4.routes.anycast", "true")]),
        instances: anycast_instances(),
        ..Default::default()
    };
    assert_check_passes(&ok.yaml(), "m1");
}

/// Test 6: `status --json` shows the member and the keys that came from its overlay;
/// a global key in an overlay makes `check` fail naming it.
#[test]
fn status_member_and_overlay_keys() {
    let Some(c) = Cluster::root_start(
        "status_member_and_overlay_keys",
        &Shared {
            br0: Some(vec![]),
            member_extra: vec![(
                1,
                "    networks:\n      br0: {bgp.ipv4.nexthop: 198.51.100.31}\n",
            )],
            ..Default::default()
        },
        |l, n, m| member_bridge(l, n, m, false),
    ) else {
        return;
    };
    for (i, m) in c.members.iter().enumerate() {
        let n = i + 1;
        let st = m.status_json().expect("status --json");
        let srv = &st["server"];
        assert_eq!(srv["member"], format!("m{n}"), "{st}");
        assert_eq!(srv["router_id"], member_v4(n), "{st}");
        let keys: Vec<String> = srv["overlay_keys"]
            .as_array()
            .unwrap_or_else(|| panic!("server.overlay_keys must be a list: {st}"))
            .iter()
            .map(|k| k.as_str().unwrap_or_default().to_string())
            .collect();
        let has = |k: &str| keys.iter().any(|x| x.ends_with(k));
        assert!(has("core.bgp_address"), "m{n}: {keys:?}");
        assert!(has("core.bgp_routerid"), "m{n}: {keys:?}");
        assert!(
            !keys.iter().any(|k| k.contains("bgp_asn")),
            "m{n}: {keys:?}"
        );
        if n == 1 {
            assert!(
                keys.iter()
                    .any(|k| k.contains("br0") && k.ends_with("bgp.ipv4.nexthop")),
                "m1: {keys:?}"
            );
            assert_eq!(keys.len(), 3, "m1: {keys:?}");
        } else {
            assert!(!keys.iter().any(|k| k.contains("nexthop")), "m2: {keys:?}");
            assert_eq!(keys.len(), 2, "m2: {keys:?}");
        }
        let text = Command::new("ip")
            .args(["netns", "exec", &m.ns, BIN, "status", "--socket"])
            .arg(&m.socket)
            .output()
            .expect("status");
        let text = String::from_utf8_lossy(&text.stdout).into_owned();
        assert!(
            text.contains(&format!("m{n}")),
            "status text names the member: {text}"
        );
    }
    let _ = (&c.o, &c.config);

    // A global key in an overlay.
    let bad = Shared::default().yaml().replace(
        "      core.bgp_routerid: 198.51.100.11\n",
        "      core.bgp_routerid: 198.51.100.11\n      core.bgp_asn: \"65011\"\n",
    );
    assert!(bad.contains("core.bgp_asn: \"65011\""), "{bad}");
    for member in ["m1", "m2"] {
        assert_check_names(&bad, member, &["members.m1.config.core.bgp_asn"]);
    }
}

/// `members.m1.networks.br0.ipv4.routes.anycast` (a global network key) in an
/// overlay makes `check` fail naming it.
#[test]
fn check_rejects_global_network_key_in_overlay() {
    let bad = Shared {
        br0: Some(vec![]),
        member_extra: vec![(
            1,
            "    networks:\n      br0: {ipv4.routes.anycast: \"true\"}\n",
        )],
        ..Default::default()
    }
    .yaml();
    assert_check_names(&bad, "m2", &["members.m1.networks.br0.ipv4.routes.anycast"]);
}

/// An OVN NIC's external routes must lie within the uplink's `ipv4.routes` when set.
#[test]
fn check_ovn_nic_routes_within_uplink_routes() {
    let yaml = |route: &str| {
        Shared {
            ovn: true,
            instances: instances(&[(
                "m1",
                &format!("type: nic, network: ovn1, ipv4.routes.external: {route}"),
            )]),
            uplink: vec![("ipv4.routes", "10.20.0.0/24,203.0.113.0/24")],
            ..Default::default()
        }
        .yaml()
    };
    assert_check_passes(&yaml("203.0.113.32/28"), "m1");
    assert_check_names(
        &yaml("192.0.2.32/28"),
        "m2",
        &["instances.c1.devices.eth0.ipv4.routes.external"],
    );
}

/// OVN anycast: `ipv4.routes.anycast` on the uplink lets OVN instances on two members
/// use the same external route; each advertises it (from its location member only).
#[test]
fn ovn_anycast_across_members() {
    if !lab::require_root("ovn_anycast_across_members") {
        return;
    }
    let nic = "type: nic, network: ovn1, ipv4.routes.external: 203.0.113.32/28";
    let shared = Shared {
        ovn: true,
        instances: instances(&[("m1", nic), ("m2", nic)]),
        ..Default::default()
    };
    let plain = shared.yaml();
    let (code, text) = check(&plain, "m1");
    assert_eq!(
        code,
        Some(1),
        "without anycast the same route twice is a conflict: {text}"
    );
    let anycast = Shared {
        uplink: vec![("ipv4.routes.anycast", "true")],
        ..shared
    }
    .yaml();
    assert_check_passes(&anycast, "m1");

    let c = Cluster::start_yaml(&anycast, |_, _, _| {});
    c.wait_established();
    let rs = c.wait_route_from("203.0.113.32/28", &["m1", "m2"]);
    for r in &rs {
        assert_eq!(bgp_next_hop(r), OVN_V4, "{rs:#?}");
    }
    c.wait_ping("203.0.113.33");
    c.router.assert_no_nexthop_errors();
}

/// Without `core.bgp_routerid`, each member's router id comes from its own IPv4
/// addresses, is printed by `status` and stays the same across a restart.
#[test]
fn router_id_per_member_stable_across_restart() {
    if !lab::require_root("router_id_per_member_stable_across_restart") {
        return;
    }
    let yaml = Shared {
        ovn: true,
        ..Default::default()
    }
    .yaml()
    .lines()
    .filter(|l| !l.contains("core.bgp_routerid"))
    .collect::<Vec<_>>()
    .join("\n")
        + "\n";
    let mut c = Cluster::start_yaml(&yaml, |l, n, m| {
        // A second address, so the choice is not trivial.
        l.addr(m, "eth0", &format!("198.51.100.4{n}/24"));
    });
    c.wait_established();
    let id = |m: &Member| -> String {
        let st = m.status_json().expect("status --json");
        st["server"]["router_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let ids: Vec<String> = c.members.iter().map(id).collect();
    for (i, rid) in ids.iter().enumerate() {
        let n = i + 1;
        assert!(
            [member_v4(n), format!("198.51.100.4{n}")].contains(rid),
            "m{n}: router id {rid:?} must be one of its IPv4 addresses"
        );
    }
    assert_ne!(ids[0], ids[1]);
    // Restart m1 (SIGTERM, then the same command).
    let ns = c.mns[0].clone();
    let old = c.members.remove(0);
    let mut old = old;
    assert!(old.pid().is_some(), "m1 not running");
    old.term();
    assert!(
        old.wait_exit(TIMEOUT).is_some(),
        "m1 did not stop on SIGTERM"
    );
    drop(old);
    let m1 = start_member(&c.lab, &ns, "m1", &c.config);
    assert_eq!(id(&m1), ids[0], "m1 router id changed across a restart");
    c.members.insert(0, m1);
    c.router.wait_established("m1");
    c.wait_route_from("10.20.0.0/24", &["m1", "m2"]);
}
