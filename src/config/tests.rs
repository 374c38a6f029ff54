use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;

const EXAMPLE: &str = r#"
config:                              # server keys
  core.bgp_address: "[::]:179"       # listen ip:port; absent = BGP disabled
  core.bgp_asn: "65010"
  core.bgp_routerid: 198.51.100.1

networks:
  lxdbr0:
    type: bridge
    config:
      ipv4.nat: "false"
      ipv6.nat: "false"
      ipv4.nat.address: 198.51.100.9
      bgp.peers.r1.address: 2001:db8:1::2
      bgp.peers.r1.asn: "65000"
      bgp.peers.r1.password: s3cret
      bgp.peers.r1.holdtime: "90"
      bgp.ipv4.nexthop: 198.51.100.1
      bgp.ipv6.nexthop: 2001:db8:1::1
  uplink:
    type: physical
    config:
      bgp.peers.r1.address: 198.51.100.254
      bgp.peers.r1.asn: "65000"
      ipv4.routes.anycast: "true"
  ovn1:
    type: ovn
    config:
      network: uplink
      ipv4.address: 10.20.0.1/24
      ipv4.nat: "false"
      volatile.network.ipv4.address: 198.51.100.20

instances:
  c1:
    location: node1
    devices:
      eth0:
        type: nic
        network: lxdbr0
        host_name: vethc1
        ipv4.address: 203.0.113.10
        ipv4.routes.external: 203.0.113.64/28
        ipv6.routes.external: 2001:db8:100:40::/64

members:
  node1:
    config: {core.bgp_address: "198.51.100.1:179", core.bgp_routerid: 198.51.100.1}
    networks:
      lxdbr0: {bgp.ipv4.nexthop: 198.51.100.1}
"#;

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// The keys of the errors parsing `yaml` reports; none when it is valid.
pub(super) fn error_keys(yaml: &str) -> Vec<String> {
    match parse_str(yaml, "m1") {
        Ok(_) => Vec::new(),
        Err(e) => e.into_iter().map(|e| e.key).collect(),
    }
}

/// One peer address declared on two networks, as r1 on bridge br0 with the keys
/// `r1` and as r2 on physical network up with the keys `r2` (each `bgp.peers.NAME.`
/// suffix: value, one a line).
pub(super) fn one_peer_on_two_networks(r1: &[&str], r2: &[&str]) -> String {
    let keys = |peer: &str, list: &[&str]| -> String {
        list.iter()
            .map(|k| format!("      bgp.peers.{peer}.{k}\n"))
            .collect()
    };
    format!(
        "networks:\n  br0:\n    type: bridge\n    config:\n      bgp.peers.r1.address: 192.0.2.1\n      bgp.peers.r1.asn: 65000\n{}  up:\n    type: physical\n    config:\n      bgp.peers.r2.address: 192.0.2.1\n      bgp.peers.r2.asn: 65000\n{}",
        keys("r1", r1),
        keys("r2", r2)
    )
}

/// Parses and returns the error keys (panics if valid).
fn err_keys(yaml: &str) -> Vec<String> {
    match parse_str(yaml, "node1") {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => e.into_iter().map(|e| e.key).collect(),
    }
}

fn errs(yaml: &str) -> Vec<ConfigError> {
    parse_str(yaml, "node1").expect_err("expected errors")
}

fn ok(yaml: &str) -> Config {
    match parse_str(yaml, "node1") {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors: {e:?}"),
    }
}

/// `lines` as entries of a map nested `depth` levels deep (two spaces a level).
fn nested(depth: usize, lines: &str) -> String {
    let indent = "  ".repeat(depth);
    lines.lines().map(|l| format!("{indent}{l}\n")).collect()
}

/// A minimal valid file plus extra YAML lines under the `lxdbr0` config map.
fn bridge_with(extra: &str) -> String {
    format!(
        "networks:\n  br0:\n    type: bridge\n    config:\n{}",
        nested(3, extra)
    )
}

fn nic_with(net_cfg: &str, nic: &str) -> String {
    format!(
        "{}instances:\n  c1:\n    devices:\n      eth0:\n        type: nic\n        network: br0\n{}",
        bridge_with(net_cfg),
        nested(4, nic)
    )
}

#[test]
fn example_round_trips() {
    // member "other": no overlay
    let c = parse_str(EXAMPLE, "other").unwrap();
    assert_eq!(c.member, "other");
    assert_eq!(
        c.server,
        ServerConfig {
            listen: Some("[::]:179".parse().unwrap()),
            asn: Some(65010),
            router_id: Some(v4("198.51.100.1")),
            graceful_restart_time: 120,
            graceful_restart: true,
        }
    );
    assert!(c.overlay_keys.is_empty());
    let br = &c.networks["lxdbr0"];
    assert_eq!(br.kind, NetworkKind::Bridge);
    assert_eq!(
        br.ipv4,
        FamilyConfig {
            nat: false,
            nat_address: Some(v4("198.51.100.9")),
            nexthop: Some(v4("198.51.100.1")),
            routes_anycast: false,
            address: None,
            routes: vec![],
            ovn_router_address: None,
            instances: false,
        }
    );
    assert_eq!(br.ipv6.nexthop, Some(v6("2001:db8:1::1")));
    assert!(!br.ipv6.nat);
    assert_eq!(
        br.peers["r1"],
        PeerSettings {
            remote: crate::config::Remote::Address("2001:db8:1::2".parse().unwrap()),
            port: 179,
            asn: 65000,
            password: Some(Password::new("s3cret")),
            hold_time: 90,
            bfd: None,
            graceful_restart_time: None,
            export: crate::config::Export::All,
        }
    );
    let up = &c.networks["uplink"];
    assert_eq!(up.kind, NetworkKind::Physical);
    assert!(up.ipv4.routes_anycast);
    assert!(!up.ipv6.routes_anycast);
    assert_eq!(up.peers["r1"].password, None);
    let ovn = &c.networks["ovn1"];
    assert_eq!(ovn.kind, NetworkKind::Ovn);
    assert_eq!(ovn.uplink.as_deref(), Some("uplink"));
    assert_eq!(ovn.ipv4.address, Some("10.20.0.1/24".parse().unwrap()));
    assert_eq!(ovn.ipv4.ovn_router_address, Some(v4("198.51.100.20")));
    assert!(ovn.peers.is_empty());
    let inst = &c.instances["c1"];
    assert_eq!(inst.location.as_deref(), Some("node1"));
    assert_eq!(
        inst.nics["eth0"],
        Nic {
            name: "eth0".into(),
            network: "lxdbr0".into(),
            host_name: Some("vethc1".into()),
            hwaddr: None,
            ipv4_address: Some(v4("203.0.113.10")),
            ipv6_address: None,
            ipv4_routes_external: vec!["203.0.113.64/28".parse().unwrap()],
            ipv6_routes_external: vec!["2001:db8:100:40::/64".parse().unwrap()],
            attrs: Default::default(),
        }
    );
    let peers = c.peers();
    assert_eq!(peers.len(), 2);
    assert_eq!(
        peers[0].remote.address().unwrap(),
        "198.51.100.254".parse::<IpAddr>().unwrap()
    );
    assert_eq!(peers[0].declared_by, vec![("uplink".into(), "r1".into())]);
    assert_eq!(peers[1].declared_by, vec![("lxdbr0".into(), "r1".into())]);
}

#[test]
fn example_with_member_overlay() {
    let c = parse_str(EXAMPLE, "node1").unwrap();
    assert_eq!(c.server.listen, Some("198.51.100.1:179".parse().unwrap()));
    assert_eq!(c.server.router_id, Some(v4("198.51.100.1")));
    assert_eq!(
        c.overlay_keys,
        vec![
            "config.core.bgp_address".to_string(),
            "config.core.bgp_routerid".to_string(),
            "networks.lxdbr0.config.bgp.ipv4.nexthop".to_string(),
        ]
    );
}

#[test]
fn empty_and_comment_only_files_are_valid() {
    for y in ["", "# nothing\n", "config: {}\n", "networks:\ninstances:\n"] {
        let c = ok(y);
        assert_eq!(c.server.listen, None);
        assert_eq!(
            c.server.graceful_restart_time,
            DEFAULT_GRACEFUL_RESTART_TIME
        );
    }
}

#[test]
fn unknown_top_level_key() {
    assert_eq!(err_keys("confg: {}\n"), vec!["confg"]);
    assert_eq!(err_keys("- a\n"), vec!["(root)"]);
}

#[test]
fn yaml_syntax_error_names_input() {
    let e = errs("config: [\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].key.starts_with("<input>"), "{:?}", e[0]);
}

#[test]
fn server_values_strings_numbers_bools() {
    let c = ok("config:\n  core.bgp_address: \":1790\"\n  core.bgp_asn: 4294967294\n  core.bgp_graceful_restart_time: 300\n");
    assert_eq!(
        c.server.listen,
        Some(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 1790))
    );
    assert_eq!(c.server.asn, Some(4294967294));
    assert_eq!(c.server.graceful_restart_time, 300);
    let c = ok("config:\n  core.bgp_address: 192.0.2.1\n  core.bgp_asn: '1'\n");
    assert_eq!(c.server.listen, Some("192.0.2.1:179".parse().unwrap()));
    let c = ok("config:\n  core.bgp_address: 2001:db8::1\n  core.bgp_asn: '1'\n");
    assert_eq!(c.server.listen, Some("[2001:db8::1]:179".parse().unwrap()));
    let c = ok("config:\n  core.bgp_address: '[2001:db8::1]:180'\n  core.bgp_asn: '1'\n");
    assert_eq!(c.server.listen, Some("[2001:db8::1]:180".parse().unwrap()));
}

#[test]
fn server_errors() {
    let e = errs("config:\n  core.bgp_asn: 0\n");
    assert_eq!(e[0].key, "config.core.bgp_asn");
    assert_eq!(e[0].message, "must be between 1 and 4294967294, got 0");
    assert_eq!(
        err_keys("config:\n  core.bgp_asn: 4294967295\n"),
        vec!["config.core.bgp_asn"]
    );
    assert_eq!(
        err_keys("config:\n  core.bgp_asn: abc\n"),
        vec!["config.core.bgp_asn"]
    );
    let e = errs("config:\n  core.bgp_routerid: 2001:db8::1\n");
    assert_eq!(e[0].key, "config.core.bgp_routerid");
    assert_eq!(e[0].message, "expected an IPv4 address, got 2001:db8::1");
    assert_eq!(
        err_keys("config:\n  core.bgp_graceful_restart_time: 4096\n"),
        vec!["config.core.bgp_graceful_restart_time"]
    );
    assert_eq!(
        err_keys("config:\n  core.bgp_graceful_restart_time: 0\n"),
        vec!["config.core.bgp_graceful_restart_time"]
    );
    assert_eq!(
        err_keys("config:\n  core.https_address: x\n"),
        vec!["config.core.https_address"]
    );
    assert_eq!(
        err_keys("config:\n  core.bgp_address: \":179\"\n"),
        vec!["config.core.bgp_asn"]
    );
    assert_eq!(
        err_keys("config:\n  core.bgp_address: nope\n  core.bgp_asn: 1\n"),
        vec!["config.core.bgp_address"]
    );
    assert_eq!(
        err_keys("config:\n  core.bgp_address: '1.2.3.4:0'\n  core.bgp_asn: 1\n"),
        vec!["config.core.bgp_address"]
    );
    assert_eq!(err_keys("config: [1]\n"), vec!["config"]);
}

#[test]
fn errors_are_all_collected_and_sorted() {
    let y = "config:\n  core.bgp_routerid: x\n  core.bgp_asn: 0\nnetworks:\n  br0:\n    type: bridge\n    config:\n      bgp.peers.r1.asn: 0\n      bogus: 1\n";
    assert_eq!(
        err_keys(y),
        vec![
            "config.core.bgp_asn",
            "config.core.bgp_routerid",
            "networks.br0.config.bgp.peers.r1.address",
            "networks.br0.config.bgp.peers.r1.asn",
            "networks.br0.config.bogus",
        ]
    );
}

#[test]
fn network_type_rules() {
    assert_eq!(
        err_keys("networks:\n  br0:\n    config: {}\n"),
        vec!["networks.br0.type"]
    );
    assert_eq!(
        err_keys("networks:\n  br0:\n    type: macvlan\n"),
        vec!["networks.br0.type"]
    );
    assert_eq!(
        err_keys("networks:\n  br0:\n    type: bridge\n    colour: red\n"),
        vec!["networks.br0.colour"]
    );
    // `lxc network show` fields are fine
    ok("networks:\n  br0:\n    type: bridge\n    managed: true\n    description: x\n    used_by: []\n");
}

#[test]
fn bridge_keys_valid() {
    let c = ok(&bridge_with(
        "ipv4.nat: true\nipv6.nat: \"true\"\nipv4.nat.address: 192.0.2.1\nipv6.nat.address: 2001:db8::9\nipv4.address: 10.0.0.1/24\nipv6.address: 2001:db8:5::1/64\nipv4.routes: 192.0.2.0/24, 198.51.100.0/25\nipv6.routes: 2001:db8:9::/48\nipv4.routes.anycast: false\nipv6.routes.anycast: 1\nbgp.peers.x.address: 192.0.2.254\nbgp.peers.x.asn: 65000\nbgp.peers.x.holdtime: 9\nuser.foo: bar",
    ));
    let n = &c.networks["br0"];
    assert!(n.ipv4.nat && n.ipv6.nat);
    assert_eq!(n.ipv4.address, Some("10.0.0.1/24".parse().unwrap()));
    assert_eq!(n.ipv6.address, Some("2001:db8:5::1/64".parse().unwrap()));
    assert_eq!(n.ipv4.routes.len(), 2);
    assert!(n.ipv6.routes_anycast && !n.ipv4.routes_anycast);
    assert_eq!(n.peers["x"].hold_time, 9);
    assert_eq!(n.peers["x"].port, 179);
    // none / auto = not set
    let c = ok(&bridge_with("ipv4.address: none\nipv6.address: auto"));
    assert_eq!(c.networks["br0"].ipv4.address, None);
    assert_eq!(c.networks["br0"].ipv6.address, None);
}

#[test]
fn bridge_key_errors() {
    let cases: &[(&str, &str)] = &[
        ("ipv4.nat: maybe", "ipv4.nat"),
        ("ipv4.nat.address: 2001:db8::1", "ipv4.nat.address"),
        ("ipv6.nat.address: 192.0.2.1", "ipv6.nat.address"),
        ("bgp.ipv4.nexthop: 2001:db8::1", "bgp.ipv4.nexthop"),
        ("bgp.ipv6.nexthop: 192.0.2.1", "bgp.ipv6.nexthop"),
        ("ipv4.address: 10.0.0.1", "ipv4.address"),
        ("ipv4.address: 2001:db8::1/64", "ipv4.address"),
        ("ipv6.address: 10.0.0.1/24", "ipv6.address"),
        ("ipv4.routes: 192.0.2.1/24", "ipv4.routes"),
        ("ipv4.routes: 2001:db8::/32", "ipv4.routes"),
        ("ipv6.routes.anycast: perhaps", "ipv6.routes.anycast"),
        ("ipv4.dhcp: true", "ipv4.dhcp"),
        ("network: uplink", "network"),
        (
            "volatile.network.ipv4.address: 192.0.2.1",
            "volatile.network.ipv4.address",
        ),
        (
            "bgp.peers.r1.address: 192.0.2.1\nbgp.peers.r1.asn: 0",
            "bgp.peers.r1.asn",
        ),
        (
            "bgp.peers.r1.address: 192.0.2.1\nbgp.peers.r1.asn: 4294967295",
            "bgp.peers.r1.asn",
        ),
        (
            "bgp.peers.r1.address: '192.0.2.1:179'\nbgp.peers.r1.asn: 1",
            "bgp.peers.r1.address",
        ),
        (
            "bgp.peers.r1.address: bad\nbgp.peers.r1.asn: 1",
            "bgp.peers.r1.address",
        ),
        (
            "bgp.peers.r1.address: 192.0.2.1\nbgp.peers.r1.asn: 1\nbgp.peers.r1.holdtime: 8",
            "bgp.peers.r1.holdtime",
        ),
        (
            "bgp.peers.r1.address: 192.0.2.1\nbgp.peers.r1.asn: 1\nbgp.peers.r1.holdtime: 65536",
            "bgp.peers.r1.holdtime",
        ),
        (
            "bgp.peers.r1.address: 192.0.2.1\nbgp.peers.r1.asn: 1\nbgp.peers.r1.port: 1",
            "bgp.peers.r1.port",
        ),
        ("bgp.peers.r1.address: 192.0.2.1", "bgp.peers.r1.asn"),
        ("bgp.peers.r1.asn: 65000", "bgp.peers.r1.address"),
        ("bgp.peers.r1: x", "bgp.peers.r1"),
    ];
    for (line, key) in cases {
        assert_eq!(
            err_keys(&bridge_with(line)),
            vec![format!("networks.br0.config.{key}")],
            "case {line}"
        );
    }
    let e = errs(&bridge_with("ipv6.nat.address: 192.0.2.1"));
    assert!(
        e[0].message.contains("expected an IPv6 address"),
        "{}",
        e[0].message
    );
    let e = errs(&bridge_with("bgp.peers.r1.address: 192.0.2.1"));
    assert!(e[0].message.contains("required"));
    // password only: both address and asn are missing
    assert_eq!(
        err_keys(&bridge_with("bgp.peers.r1.password: pw")),
        vec![
            "networks.br0.config.bgp.peers.r1.address",
            "networks.br0.config.bgp.peers.r1.asn"
        ]
    );
}

#[test]
fn passwords_never_in_messages() {
    let long = "p".repeat(81);
    let y = bridge_with(&format!(
        "bgp.peers.r1.address: 192.0.2.1\nbgp.peers.r1.asn: 1\nbgp.peers.r1.password: {long}"
    ));
    let e = errs(&y);
    assert_eq!(e[0].key, "networks.br0.config.bgp.peers.r1.password");
    assert!(!e[0].message.contains(&long));
    let y = "networks:\n  a:\n    type: bridge\n    config:\n      bgp.peers.r1.address: 192.0.2.1\n      bgp.peers.r1.asn: 1\n      bgp.peers.r1.password: secretA\n  b:\n    type: physical\n    config:\n      bgp.peers.r2.address: 192.0.2.1\n      bgp.peers.r2.asn: 1\n      bgp.peers.r2.password: secretB\n";
    let e = errs(y);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].key, "networks.a.config.bgp.peers.r1.password");
    assert!(!e[0].message.contains("secret"), "{}", e[0].message);
}

#[test]
fn ovn_network_rules() {
    let base = "networks:\n  uplink:\n    type: physical\n    config:\n      ipv4.routes: 203.0.113.0/24\n  br:\n    type: bridge\n  o1:\n    type: ovn\n    config:\n";
    let with = |extra: &str| format!("{base}{}", nested(3, extra));
    let c = ok(&with("network: uplink\nipv6.address: 2001:db8:7::1/64\nipv6.nat: false\nipv4.nat.address: 203.0.113.1\nvolatile.network.ipv6.address: 2001:db8::20"));
    assert_eq!(
        c.networks["o1"].ipv6.ovn_router_address,
        Some(v6("2001:db8::20"))
    );
    ok(&with("network: br")); // bridge uplink accepted
    let cases: &[(&str, &str)] = &[
        ("ipv4.nat: false", "network"),
        ("network: nowhere", "network"),
        ("network: o1", "network"),
        (
            "network: uplink\nbgp.peers.r1.address: 192.0.2.1",
            "bgp.peers.r1.address",
        ),
        (
            "network: uplink\nbgp.ipv4.nexthop: 192.0.2.1",
            "bgp.ipv4.nexthop",
        ),
        (
            "network: uplink\nipv4.routes.anycast: true",
            "ipv4.routes.anycast",
        ),
        (
            "network: uplink\nvolatile.network.ipv4.address: 2001:db8::1",
            "volatile.network.ipv4.address",
        ),
        (
            "network: uplink\nvolatile.network.ipv6.address: 192.0.2.1",
            "volatile.network.ipv6.address",
        ),
        (
            "network: uplink\nipv6.nat.address: 192.0.2.1",
            "ipv6.nat.address",
        ),
    ];
    for (extra, key) in cases {
        assert_eq!(
            err_keys(&with(extra)),
            vec![format!("networks.o1.config.{key}")],
            "case {extra}"
        );
    }
}

#[test]
fn peer_dedup_across_networks() {
    let y = "networks:\n  br1:\n    type: bridge\n    config:\n      bgp.peers.r1.address: 2001:db8::1\n      bgp.peers.r1.asn: 65000\n      bgp.peers.r1.password: pw\n  uplink:\n    type: physical\n    config:\n      bgp.peers.up.address: 2001:db8::1\n      bgp.peers.up.asn: '65000'\n      bgp.peers.up.password: pw\n      bgp.peers.up.holdtime: 90\n      bgp.peers.other.address: 192.0.2.1\n      bgp.peers.other.asn: 65001\n";
    let c = ok(y);
    let peers = c.peers();
    assert_eq!(peers.len(), 2);
    let p = peers
        .iter()
        .find(|p| p.remote.address() == Some("2001:db8::1".parse::<IpAddr>().unwrap()))
        .unwrap();
    assert_eq!(
        p.declared_by,
        vec![
            ("br1".to_string(), "r1".to_string()),
            ("uplink".to_string(), "up".to_string())
        ]
    );
    assert_eq!(p.asn, 65000);
    assert_eq!(p.hold_time, 90);
    assert_eq!(p.password, Some(Password::new("pw")));

    let bad = y.replace("bgp.peers.up.asn: '65000'", "bgp.peers.up.asn: '65001'");
    let e = errs(&bad);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].to_string(), "networks.br1.config.bgp.peers.r1.asn: conflicts with networks.uplink.config.bgp.peers.up.asn (same peer address 2001:db8::1)");
    let bad = y.replace("bgp.peers.up.holdtime: 90", "bgp.peers.up.holdtime: 30");
    assert_eq!(
        err_keys(&bad),
        vec!["networks.br1.config.bgp.peers.r1.holdtime"]
    );
    let bad = y.replace("      bgp.peers.up.password: pw\n", "");
    assert_eq!(
        err_keys(&bad),
        vec!["networks.br1.config.bgp.peers.r1.password"]
    );
}

#[test]
fn same_peer_twice_in_one_network() {
    let c = ok(&bridge_with("bgp.peers.a.address: 192.0.2.1\nbgp.peers.a.asn: 1\nbgp.peers.b.address: 192.0.2.1\nbgp.peers.b.asn: 1"));
    let p = c.peers();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].declared_by.len(), 2);
}

#[test]
fn debug_redacts_passwords() {
    let c = parse_str(EXAMPLE, "x").unwrap();
    let all = format!("{c:?} {:?}", c.peers());
    assert!(!all.contains("s3cret"), "{all}");
    assert!(all.contains("password: Some(<redacted>)"));
    assert!(all.contains("password: None"));
}

#[test]
fn nic_valid_and_ignored_devices() {
    let y = format!(
        "{}  c2:\n    architecture: x86_64\n    config: {{image.os: Debian}}\n    profiles: [default]\n    ephemeral: false\n    stateful: false\n    description: ''\n    devices:\n      root:\n        type: disk\n        path: /\n        pool: default\n      tty:\n        type: unix-char\n        source: /dev/tty0\n",
        nic_with("ipv4.address: 10.0.0.1/24\nipv6.address: 2001:db8:5::1/64", "host_name: veth1\nname: eth0\nhwaddr: 00:16:3e:00:00:01\nmtu: 1500\nipv4.address: 10.0.0.5\nipv6.address: 2001:db8:5::5\nipv4.routes: 192.0.2.0/24\nipv4.routes.external: 203.0.113.0/28,203.0.113.16/28")
    );
    let c = ok(&y);
    let nic = &c.instances["c1"].nics["eth0"];
    assert_eq!(nic.ipv4_address, Some(v4("10.0.0.5")));
    assert_eq!(nic.ipv6_address, Some(v6("2001:db8:5::5")));
    assert_eq!(nic.ipv4_routes_external.len(), 2);
    assert!(c.instances["c2"].nics.is_empty());
}

#[test]
fn nic_errors() {
    let cases: &[(&str, &str, &str)] = &[
        ("", "ipv4.routes.external: 203.0.113.0/28", "host_name"),
        (
            "",
            "host_name: v\nipv4.routes.external: 203.0.113.1/28",
            "ipv4.routes.external",
        ),
        (
            "",
            "host_name: v\nipv4.routes.external: 2001:db8::/64",
            "ipv4.routes.external",
        ),
        (
            "",
            "host_name: v\nipv6.routes.external: 203.0.113.0/28",
            "ipv6.routes.external",
        ),
        (
            "",
            "host_name: v\nipv6.routes.external: 2001:db8::1/64",
            "ipv6.routes.external",
        ),
        ("", "ipv4.address: 2001:db8::1", "ipv4.address"),
        ("", "ipv6.address: 10.0.0.1", "ipv6.address"),
        (
            "ipv4.address: 10.0.0.1/24",
            "ipv4.address: 10.0.1.5",
            "ipv4.address",
        ),
        (
            "ipv6.address: 2001:db8:5::1/64",
            "ipv6.address: 2001:db8:6::5",
            "ipv6.address",
        ),
        ("", "nictype: bridged", "nictype"),
        ("", "host_name: this-name-is-too-long", "host_name"),
    ];
    for (net, nic, key) in cases {
        assert_eq!(
            err_keys(&nic_with(net, nic)),
            vec![format!("instances.c1.devices.eth0.{key}")],
            "case {nic}"
        );
    }
    assert_eq!(
        err_keys(&nic_with("", "").replace("        network: br0\n", "")),
        vec!["instances.c1.devices.eth0.network"]
    );
    assert_eq!(
        err_keys(&nic_with("", "").replace("network: br0", "network: nope")),
        vec!["instances.c1.devices.eth0.network"]
    );
    assert_eq!(
        err_keys(&nic_with("", "").replace("type: nic\n", "")),
        vec!["instances.c1.devices.eth0.type"]
    );
    assert_eq!(
        err_keys(&format!("{}    colour: red\n", nic_with("", ""))),
        vec!["instances.c1.colour"]
    );
    // a NIC on a network whose own definition is broken reports only the network
    let y = nic_with("", "").replace("type: bridge", "type: weird");
    assert_eq!(err_keys(&y), vec!["networks.br0.type"]);
}

fn two_nics(net_cfg: &str, a: &str, b: &str) -> String {
    format!(
        "{}instances:\n  c1:\n    devices:\n      eth0: {{type: nic, network: br0, host_name: v1, {a}}}\n  c2:\n    location: node2\n    devices:\n      eth0: {{type: nic, network: br0, host_name: v2, {b}}}\n",
        bridge_with(net_cfg)
    )
}

#[test]
fn overlap_rules() {
    let a = "ipv4.routes.external: 203.0.113.64/28";
    let e = errs(&two_nics("", a, a));
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].to_string(),
        "instances.c1.devices.eth0.ipv4.routes.external: 203.0.113.64/28 overlaps instances.c2.devices.eth0.ipv4.routes.external (203.0.113.64/28)"
    );
    // nested
    assert_eq!(
        err_keys(&two_nics("", a, "ipv4.routes.external: 203.0.113.72/29")),
        vec!["instances.c1.devices.eth0.ipv4.routes.external"]
    );
    // disjoint
    ok(&two_nics("", a, "ipv4.routes.external: 203.0.113.80/28"));
    // anycast: equal fine, nested not, other family not covered
    ok(&two_nics("ipv4.routes.anycast: true", a, a));
    assert_eq!(
        err_keys(&two_nics(
            "ipv4.routes.anycast: true",
            a,
            "ipv4.routes.external: 203.0.113.64/29"
        ))
        .len(),
        1
    );
    let b6 = "ipv6.routes.external: 2001:db8:1::/64";
    assert_eq!(
        err_keys(&two_nics("ipv4.routes.anycast: true", b6, b6)),
        vec!["instances.c1.devices.eth0.ipv6.routes.external"]
    );
    ok(&two_nics("ipv6.routes.anycast: true", b6, b6));
}

#[test]
fn ovn_nic_rules() {
    let base = "networks:\n  uplink:\n    type: physical\n    config:\n      ipv4.routes: 203.0.113.0/24\n      ipv4.routes.anycast: true\n  o1:\n    type: ovn\n    config:\n      network: uplink\n      ipv4.address: 10.1.0.1/24\ninstances:\n";
    let nic = |inst: &str, ext: &str| {
        format!("  {inst}:\n    location: node1\n    devices:\n      eth0: {{type: nic, network: o1, ipv4.routes.external: {ext}}}\n")
    };
    // anycast from the uplink; no host_name needed on OVN NICs
    let c = ok(&format!(
        "{base}{}{}",
        nic("a", "203.0.113.8/29"),
        nic("b", "203.0.113.8/29")
    ));
    assert_eq!(c.instances.len(), 2);
    assert_eq!(
        err_keys(&format!("{base}{}", nic("a", "198.51.100.0/29"))),
        vec!["instances.a.devices.eth0.ipv4.routes.external"]
    );
    assert_eq!(
        err_keys(&format!(
            "{base}{}{}",
            nic("a", "203.0.113.8/29"),
            nic("b", "203.0.113.8/30")
        )),
        vec!["instances.a.devices.eth0.ipv4.routes.external"]
    );
    // static address outside the OVN subnet
    let y = format!("{base}  a:\n    devices:\n      eth0: {{type: nic, network: o1, ipv4.address: 10.2.0.5}}\n");
    assert_eq!(err_keys(&y), vec!["instances.a.devices.eth0.ipv4.address"]);
}

#[test]
fn member_overlay_selection_and_validation() {
    let y = "config:\n  core.bgp_asn: 65000\n  core.bgp_address: ':179'\nnetworks:\n  br0:\n    type: bridge\n    config:\n      bgp.ipv4.nexthop: 192.0.2.1\nmembers:\n  node1:\n    config:\n      core.bgp_address: 192.0.2.11\n    networks:\n      br0:\n        bgp.ipv4.nexthop: 192.0.2.11\n  node2:\n    config:\n      core.bgp_routerid: 192.0.2.12\n";
    let c1 = parse_str(y, "node1").unwrap();
    assert_eq!(c1.server.listen, Some("192.0.2.11:179".parse().unwrap()));
    assert_eq!(c1.server.router_id, None);
    assert_eq!(c1.networks["br0"].ipv4.nexthop, Some(v4("192.0.2.11")));
    assert_eq!(
        c1.overlay_keys,
        vec![
            "config.core.bgp_address",
            "networks.br0.config.bgp.ipv4.nexthop"
        ]
    );
    let c2 = parse_str(y, "node2").unwrap();
    assert_eq!(c2.server.listen, Some("[::]:179".parse().unwrap()));
    assert_eq!(c2.server.router_id, Some(v4("192.0.2.12")));
    assert_eq!(c2.networks["br0"].ipv4.nexthop, Some(v4("192.0.2.1")));
    assert_eq!(c2.overlay_keys, vec!["config.core.bgp_routerid"]);
    let c3 = parse_str(y, "node3").unwrap();
    assert!(c3.overlay_keys.is_empty());
}

#[test]
fn member_overlay_errors() {
    let base = "networks:\n  br0:\n    type: bridge\n  o1:\n    type: ovn\n    config: {network: br0}\nmembers:\n  node9:\n";
    let cases: &[(&str, &str)] = &[
        (
            "config: {core.bgp_asn: 65000}",
            "members.node9.config.core.bgp_asn",
        ),
        (
            "config: {core.bgp_graceful_restart_time: 9}",
            "members.node9.config.core.bgp_graceful_restart_time",
        ),
        ("config: {core.bogus: 1}", "members.node9.config.core.bogus"),
        (
            "config: {core.bgp_routerid: 2001:db8::1}",
            "members.node9.config.core.bgp_routerid",
        ),
        (
            "config: {core.bgp_address: 'x:y'}",
            "members.node9.config.core.bgp_address",
        ),
        (
            "networks: {br0: {bgp.peers.r1.asn: 1}}",
            "members.node9.networks.br0.bgp.peers.r1.asn",
        ),
        (
            "networks: {br0: {ipv4.nat: true}}",
            "members.node9.networks.br0.ipv4.nat",
        ),
        (
            "networks: {br0: {bgp.ipv4.nexthop: 2001:db8::1}}",
            "members.node9.networks.br0.bgp.ipv4.nexthop",
        ),
        (
            "networks: {br0: {frob: 1}}",
            "members.node9.networks.br0.frob",
        ),
        (
            "networks: {nope: {bgp.ipv4.nexthop: 192.0.2.1}}",
            "members.node9.networks.nope",
        ),
        (
            "networks: {o1: {bgp.ipv4.nexthop: 192.0.2.1}}",
            "members.node9.networks.o1.bgp.ipv4.nexthop",
        ),
        ("devices: {}", "members.node9.devices"),
    ];
    for (line, key) in cases {
        // node9 is not the selected member ("node1"): still validated
        assert_eq!(
            err_keys(&format!("{base}    {line}\n")),
            vec![key.to_string()],
            "case {line}"
        );
    }
    let e = errs(&format!("{base}    config: {{core.bgp_asn: 65000}}\n"));
    assert_eq!(e[0].message, "global key, cannot be set per member");
    // the selected member's bad value is reported once, under members.
    let y = format!("{base}    config: {{core.bgp_routerid: nope}}\n").replace("node9", "node1");
    assert_eq!(err_keys(&y), vec!["members.node1.config.core.bgp_routerid"]);
}

#[test]
fn conf_d_merge_order() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("hostbgp.yaml");
    std::fs::write(
        &main,
        "config:\n  core.bgp_asn: 65000\nnetworks:\n  br0:\n    type: bridge\n    config:\n      ipv4.nat: true\n      bgp.ipv4.nexthop: 192.0.2.1\n",
    )
    .unwrap();
    // no conf.d: fine
    let c = load(&main, "n").unwrap();
    assert_eq!(c.server.asn, Some(65000));
    let confd = dir.path().join("conf.d");
    std::fs::create_dir(&confd).unwrap();
    std::fs::write(confd.join("20-b.yaml"), "config:\n  core.bgp_asn: 65002\n").unwrap();
    std::fs::write(
        confd.join("10-a.yaml"),
        "config:\n  core.bgp_asn: 65001\n  core.bgp_routerid: 192.0.2.9\nnetworks:\n  br0:\n    config:\n      ipv4.nat: false\ninstances:\n  c1:\n    devices:\n      eth0: {type: nic, network: br0, host_name: v1, ipv4.routes.external: 203.0.113.0/28}\n",
    )
    .unwrap();
    std::fs::write(confd.join("30-empty.yaml"), "# nothing\n").unwrap();
    std::fs::write(confd.join("99-ignored.yml"), "bogus: 1\n").unwrap();
    std::fs::write(confd.join(".hidden.yaml"), "bogus: 1\n").unwrap();
    let c = load(&main, "n").unwrap();
    assert_eq!(c.server.asn, Some(65002)); // later file wins
    assert_eq!(c.server.router_id, Some(v4("192.0.2.9")));
    let br = &c.networks["br0"];
    assert_eq!(br.kind, NetworkKind::Bridge); // map merged, not replaced
    assert!(!br.ipv4.nat);
    assert_eq!(br.ipv4.nexthop, Some(v4("192.0.2.1")));
    assert_eq!(c.instances["c1"].nics.len(), 1);

    // syntax error in a conf.d file: key is its path (with a line)
    std::fs::write(confd.join("40-bad.yaml"), "config:\n  a: [\n").unwrap();
    let e = load(&main, "n").unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(
        e[0].key
            .starts_with(&confd.join("40-bad.yaml").display().to_string()),
        "{:?}",
        e[0]
    );
}

#[test]
fn load_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("absent.yaml");
    let e = load(&p, "n").unwrap_err();
    assert_eq!(
        e,
        vec![ConfigError {
            key: p.display().to_string(),
            message: e[0].message.clone()
        }]
    );
    assert!(e[0].message.starts_with("cannot read"));
}

#[test]
fn never_panics_on_odd_input() {
    let inputs = [
        "networks: 3\n",
        "networks:\n  br0: [1, 2]\n",
        "networks:\n  br0:\n    type: [bridge]\n",
        "networks:\n  br0:\n    type: bridge\n    config: 5\n",
        "networks:\n  br0:\n    type: bridge\n    config:\n      bgp.peers..asn: 1\n      bgp.peers.x: 1\n      bgp.peers.a.address: {x: 1}\n",
        "instances:\n  c1: 3\n",
        "instances:\n  c1:\n    devices: [1]\n",
        "instances:\n  c1:\n    devices:\n      eth0: 1\n",
        "instances:\n  c1:\n    devices:\n      eth0: {type: {a: 1}}\n",
        "members: 1\n",
        "members:\n  n: {config: 1, networks: [1]}\n",
        "? [a, b]\n: 1\n",
        "config:\n  core.bgp_asn: 99999999999999999999999999999999999999999\n",
        "config:\n  core.bgp_asn: -5\n",
        "config:\n  core.bgp_asn: 1.5\n",
        "a: &x [*x]\n",
        "--- 1\n--- 2\n",
    ];
    for y in inputs {
        let _ = parse_str(y, "n");
    }
    let m: BTreeMap<String, Network> = BTreeMap::new();
    assert!(m.is_empty());
}
#[test]
fn yaml_errors_show_no_file_content() {
    let e = errs("config:\n  core.bgp_asn: 1\nnetworks:\n  b:\n    type: bridge\n    config:\n      bgp.peers.r.password: hunter2\n      bgp.peers.r.password: hunter2\n");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].key, "<input>:8");
    assert!(!e[0].message.contains("hunter2"), "{}", e[0].message);
    assert!(!e[0].message.contains('\n'));
}

#[test]
fn alias_bomb_is_refused() {
    let mut y = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let p = i - 1;
        y.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    assert!(parse_str(&y, "n").is_err());
}

#[test]
fn load_reports_main_and_conf_d_syntax_errors() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("hostbgp.yaml");
    std::fs::write(&main, "config: [\n").unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    std::fs::write(dir.path().join("conf.d/a.yaml"), "x: {\n").unwrap();
    let e = load(&main, "n").unwrap_err();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].key.starts_with(&main.display().to_string()));
}

#[test]
fn overlap_across_many_nics_finds_every_nested_pair() {
    // c1 holds a /24 containing c2's /28 and c3's /28; c2 and c3 are disjoint; c4
    // repeats c3's prefix; c5's prefixes touch nobody. Names are in config order.
    let nic = |name: &str, ext: &str, host: &str| {
        format!("  {name}:\n    devices:\n      eth0: {{type: nic, network: br0, host_name: {host}, ipv4.routes.external: \"{ext}\"}}\n")
    };
    let yaml = format!(
        "{}instances:\n{}{}{}{}{}",
        bridge_with(""),
        nic("c1", "203.0.113.0/24", "v1"),
        nic("c2", "203.0.113.16/28", "v2"),
        nic("c3", "203.0.113.32/28", "v3"),
        nic("c4", "203.0.113.32/28", "v4"),
        nic("c5", "198.51.100.0/28,198.51.100.16/28,192.0.2.0/24", "v5"),
    );
    let mut lines: Vec<String> = errs(&yaml).iter().map(|e| e.to_string()).collect();
    lines.sort();
    let k = |n: &str| format!("instances.{n}.devices.eth0.ipv4.routes.external");
    let mut want = vec![
        format!(
            "{}: 203.0.113.0/24 overlaps {} (203.0.113.16/28)",
            k("c1"),
            k("c2")
        ),
        format!(
            "{}: 203.0.113.0/24 overlaps {} (203.0.113.32/28)",
            k("c1"),
            k("c3")
        ),
        format!(
            "{}: 203.0.113.0/24 overlaps {} (203.0.113.32/28)",
            k("c1"),
            k("c4")
        ),
        format!(
            "{}: 203.0.113.32/28 overlaps {} (203.0.113.32/28)",
            k("c3"),
            k("c4")
        ),
    ];
    want.sort();
    assert_eq!(lines, want);
}

#[test]
fn a_peer_hears_everything_unless_every_declaration_scopes_it() {
    let yaml = |uplink_export: &str| {
        format!(
            "networks:
  br0:
    type: bridge
    config:
      bgp.peers.r1.address: 192.0.2.1
      bgp.peers.r1.asn: \"65001\"
      bgp.peers.r1.export: network
  uplink:
    type: physical
    config:
      bgp.peers.up.address: 192.0.2.1
      bgp.peers.up.asn: \"65001\"
{uplink_export}"
        )
    };
    let scoped = parse_str(&yaml("      bgp.peers.up.export: network\n"), "n1").unwrap();
    assert_eq!(scoped.peers()[0].export, crate::config::Export::Network);
    let mixed = parse_str(&yaml(""), "n1").unwrap();
    assert_eq!(mixed.peers()[0].export, crate::config::Export::All);
}
