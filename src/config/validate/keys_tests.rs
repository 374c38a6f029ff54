//! The key table against the validation and LXD conversion it drives: each row's
//! kinds, scope, source and value kind are what both actually do.
use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::config::attrs::ATTR_KEYS;
use crate::lxd::api::{self, Server};
use crate::lxd::convert::{to_tree, Snapshot};

const KINDS: [(NetworkKind, &str); 3] = [
    (NetworkKind::Bridge, "bridge"),
    (NetworkKind::Physical, "physical"),
    (NetworkKind::Ovn, "ovn"),
];

const OVN_PEERS: &str =
    "BGP peers are not supported on ovn networks (declare them on the uplink network)";

fn scalar(s: &str) -> Node {
    Node::Scalar(s.to_string())
}

fn map<'a>(entries: impl IntoIterator<Item = (&'a str, Node)>) -> Node {
    Node::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// A physical network `up` and a `kind` network `n` with `config` (an OVN one with
/// `up` as its uplink, unless `config` names another), and `members.m` if given.
fn tree(kind: &str, config: &[(&str, &str)], member: Option<Node>) -> Node {
    let mut cfg: BTreeMap<String, Node> = config
        .iter()
        .map(|(k, v)| (k.to_string(), scalar(v)))
        .collect();
    if kind == "ovn" {
        cfg.entry("network".to_string())
            .or_insert_with(|| scalar("up"));
    }
    let up = map([("type", scalar("physical"))]);
    let n = map([("type", scalar(kind)), ("config", Node::Map(cfg))]);
    let mut top = vec![("networks", map([("up", up), ("n", n)]))];
    if let Some(m) = member {
        top.push(("members", map([("m", m)])));
    }
    map(top)
}

fn errors(root: Node) -> Vec<(String, String)> {
    match build(root, "m") {
        Ok(_) => Vec::new(),
        Err(errs) => errs.into_iter().map(|e| (e.key, e.message)).collect(),
    }
}

fn one(key: &str, message: &str) -> Vec<(String, String)> {
    vec![(key.to_string(), message.to_string())]
}

/// A value of kind `value` for `key`, of the family `v4` says where it has one.
fn sample(value: Value, key: &str, v4: bool) -> &'static str {
    match (value, v4) {
        (Value::Bool, _) => "true",
        (Value::Addr, true) => "192.0.2.1",
        (Value::Addr, false) => "2001:db8::1",
        (Value::Gateway, true) => "192.0.2.1/24",
        (Value::Gateway, false) => "2001:db8::1/64",
        (Value::Prefixes, true) => "198.51.100.0/24",
        (Value::Prefixes, false) => "2001:db8:1::/48",
        (Value::NetworkName, _) => "up",
        (Value::Attr, _) => match key {
            "bgp.communities" => "65000:1 no-export",
            "bgp.large_communities" => "65000:1:2",
            _ => "2",
        },
    }
}

/// A value `spec` takes.
fn good(spec: &NetworkKey) -> &'static str {
    sample(spec.value, spec.key, spec.key.contains("ipv4"))
}

/// A value `spec` refuses on its own (the other family's, where it has one); None
/// when only other keys make it wrong.
fn bad(spec: &NetworkKey) -> Option<&'static str> {
    match spec.value {
        Value::Bool => Some("maybe"),
        Value::Attr => Some("x"),
        Value::NetworkName => None,
        v => Some(sample(v, spec.key, !spec.key.contains("ipv4"))),
    }
}

#[test]
fn no_key_appears_twice() {
    let mut seen = BTreeSet::new();
    for k in SERVER_KEYS {
        assert!(seen.insert(k.key), "{} twice", k.key);
    }
    let mut seen = BTreeSet::new();
    for k in NETWORK_KEYS {
        assert!(seen.insert(k.key), "{} twice", k.key);
        // Those prefixes are the peers' and the user's, never a row's.
        assert!(!k.key.starts_with("bgp.peers.") && !k.key.starts_with("user."));
    }
    let mut seen = BTreeSet::new();
    for f in PEER_FIELDS {
        assert!(seen.insert(f.key), "{} twice", f.key);
    }
}

#[test]
fn the_attribute_rows_are_the_attribute_keys() {
    let rows: BTreeSet<&str> = NETWORK_KEYS
        .iter()
        .filter(|k| k.value == Value::Attr)
        .map(|k| k.key)
        .collect();
    assert_eq!(rows, ATTR_KEYS.iter().copied().collect());
}

#[test]
fn a_network_key_is_known_on_its_kinds_only() {
    for spec in NETWORK_KEYS {
        for (kind, name) in KINDS {
            let errs = errors(tree(name, &[(spec.key, good(spec))], None));
            if spec.on.has(kind) {
                assert!(errs.is_empty(), "{} on {name}: {errs:?}", spec.key);
            } else {
                let key = format!("networks.n.config.{}", spec.key);
                let msg = format!("unknown key for a {name} network");
                assert_eq!(errs, one(&key, &msg), "{} on {name}", spec.key);
            }
        }
    }
    let errs = errors(tree("bridge", &[("ipv4.dhcp", "true")], None));
    let msg = "unknown key for a bridge network";
    assert_eq!(errs, one("networks.n.config.ipv4.dhcp", msg));
}

/// The value column's check is the network's own: each row's bad value gets the
/// same error from both (so none lacks its arm in `parse_network`).
#[test]
fn a_network_value_is_checked_as_its_row_says() {
    for spec in NETWORK_KEYS {
        assert_eq!(
            check_network_value(spec, good(spec)),
            Ok(()),
            "{}",
            spec.key
        );
        let Some(bad) = bad(spec) else { continue };
        let Err(msg) = check_network_value(spec, bad) else {
            panic!("{} takes {bad:?}", spec.key);
        };
        for (kind, name) in KINDS.into_iter().filter(|(k, _)| spec.on.has(*k)) {
            let errs = errors(tree(name, &[(spec.key, bad)], None));
            let key = format!("networks.n.config.{}", spec.key);
            assert_eq!(errs, one(&key, &msg), "{} on {kind:?}", spec.key);
        }
    }
}

#[test]
fn only_member_rows_differ_per_member() {
    for spec in NETWORK_KEYS {
        let key = format!("members.m.networks.n.{}", spec.key);
        for (kind, name) in KINDS {
            let overlay = |v: &str| map([("networks", map([("n", map([(spec.key, scalar(v))]))]))]);
            let errs = errors(tree(name, &[], Some(overlay(good(spec)))));
            let want = match (spec.scope, spec.on.has(kind)) {
                (Scope::Cluster, _) => one(&key, "global key, cannot be set per member"),
                (Scope::Member, false) => one(&key, &format!("not supported on {name} networks")),
                (Scope::Member, true) => Vec::new(),
            };
            assert_eq!(errs, want, "{} on {name}", spec.key);
            if let (Scope::Member, true, Some(bad)) = (spec.scope, spec.on.has(kind), bad(spec)) {
                let errs = errors(tree(name, &[], Some(overlay(bad))));
                let msg = check_network_value(spec, bad).expect_err("bad");
                assert_eq!(errs, one(&key, &msg), "{} on {name}", spec.key);
            }
        }
    }
}

fn server_good(key: &str) -> &'static str {
    match key {
        "core.bgp_address" => "192.0.2.1:179",
        "core.bgp_routerid" => "192.0.2.1",
        "core.bgp_asn" => "65001",
        "core.bgp_graceful_restart_time" => "120",
        "hostbgp.graceful_restart" => "true",
        "hostbgp.route_check_interval" => "60",
        "hostbgp.metrics_address" => "127.0.0.1:9179",
        "hostbgp.drain_time" => "5",
        other => panic!("no sample value for {other}: add one"),
    }
}

#[test]
fn server_keys_are_known_and_per_member_as_their_rows_say() {
    for spec in SERVER_KEYS {
        let v = server_good(spec.key);
        let config = map([(spec.key, scalar(v)), ("core.bgp_asn", scalar("65001"))]);
        assert_eq!(errors(map([("config", config)])), [], "{}", spec.key);
        let overlay = map([("m", map([("config", map([(spec.key, scalar(v))]))]))]);
        let asn = map([("core.bgp_asn", scalar("65001"))]);
        let errs = errors(map([("config", asn), ("members", overlay)]));
        let key = format!("members.m.config.{}", spec.key);
        match spec.scope {
            Scope::Cluster => assert_eq!(errs, one(&key, "global key, cannot be set per member")),
            Scope::Member => assert_eq!(errs, [], "{}", spec.key),
        }
    }
}

#[test]
fn a_peer_key_splits_at_the_longest_field() {
    let split = |rest| split_peer_key(rest).map(|(name, f)| (name, f.key));
    assert_eq!(split("r1.asn"), Some(("r1", "asn")));
    assert_eq!(split("a.b.asn"), Some(("a.b", "asn")));
    assert_eq!(
        split("r1.bfd.min_interval"),
        Some(("r1", "bfd.min_interval"))
    );
    assert_eq!(split("x.bfd.bfd"), Some(("x.bfd", "bfd")));
    assert_eq!(split("r1.nope"), None);
    assert_eq!(split("bfd.min_interval"), None);
    assert_eq!(split(".asn"), None);
    assert_eq!(split("asn"), None);
}

/// Every field is known where peers are (its bad value gets its own error, so none
/// lacks its arm in `RawPeers::take`), and refused elsewhere.
#[test]
fn a_peer_field_is_known_where_peers_are() {
    for f in PEER_FIELDS {
        let bad = match f.key {
            "password" => "x".repeat(81),
            "interface" => "a/b".to_string(),
            _ => "x".to_string(),
        };
        let key = format!("bgp.peers.p.{}", f.key);
        let cfg = [
            ("bgp.peers.p.address", "192.0.2.9"),
            ("bgp.peers.p.asn", "65001"),
            (key.as_str(), bad.as_str()),
        ];
        for (kind, name) in KINDS {
            let errs = errors(tree(name, &cfg, None));
            let full = format!("networks.n.config.{key}");
            let here: Vec<&str> = errs
                .iter()
                .filter(|(k, _)| *k == full)
                .map(|(_, m)| m.as_str())
                .collect();
            assert!(!here.is_empty(), "{key} on {name}: {errs:?}");
            if PEERS_ON.has(kind) {
                let refused = |m: &&str| *m == "unknown key" || *m == OVN_PEERS;
                assert!(!here.iter().any(refused), "{key}: {here:?}");
            } else {
                assert_eq!(here, [OVN_PEERS], "{key} on {name}");
            }
        }
    }
}

fn lxd_network(name: &str, kind: &str, config: &BTreeMap<String, String>) -> api::Network {
    api::Network {
        name: name.to_string(),
        kind: kind.to_string(),
        managed: true,
        config: config.clone(),
        project: None,
    }
}

/// LXD holding every key on every network (and keys hostbgp does not know): what
/// comes over is what the table takes for that kind, and validation accepts it.
#[test]
fn lxd_carries_over_only_what_validation_accepts() {
    let mut config: BTreeMap<String, String> = NETWORK_KEYS
        .iter()
        .map(|k| (k.key.to_string(), good(k).to_string()))
        .collect();
    let peers = [
        ("p.address", "192.0.2.9"),
        ("p.asn", "65001"),
        ("p.password", "s3cret"),
        ("p.holdtime", "30"),
        ("p.bfd", "true"),
        ("p.export", "network"),
        ("u.interface", "eth1"),
        ("u.asn", "65002"),
    ];
    let unknown = [("ipv4.dhcp", "true"), ("bgp.future", "1")];
    for (k, v) in peers.iter().map(|(k, v)| (format!("bgp.peers.{k}"), v)) {
        config.insert(k, v.to_string());
    }
    for (k, v) in unknown {
        config.insert(k.to_string(), v.to_string());
    }
    let server = SERVER_KEYS
        .iter()
        .map(|k| (k.key.to_string(), server_good(k.key).to_string()))
        .collect();
    let snap = Snapshot {
        server: Server {
            config: server,
            ..Server::default()
        },
        networks: vec![
            lxd_network("br", "bridge", &config),
            lxd_network("up", "physical", &config),
            lxd_network("o", "ovn", &config),
            lxd_network("mv", "macvlan", &config),
        ],
        instances: Vec::new(),
        forwards: BTreeMap::new(),
    };
    let conv = to_tree(&snap, "m");
    let Node::Map(top) = &conv.tree else {
        panic!("not a map: {:?}", conv.tree)
    };
    let keys = |node: &Node| match node {
        Node::Map(m) => m.keys().cloned().collect::<BTreeSet<String>>(),
        other => panic!("not a map: {other:?}"),
    };
    let carried = |net: &str| match &top["networks"] {
        Node::Map(nets) => match &nets[net] {
            Node::Map(n) => keys(&n["config"]),
            other => panic!("{net}: {other:?}"),
        },
        other => panic!("networks: {other:?}"),
    };
    // What hostbgp took from LXD before the table, key for key.
    let words = |s: &str| -> BTreeSet<String> { s.split_whitespace().map(String::from).collect() };
    let common = "bgp.communities bgp.large_communities bgp.med bgp.as_path_prepend \
        ipv4.nat ipv6.nat ipv4.nat.address ipv6.nat.address ipv4.address ipv6.address";
    let uplink = "bgp.ipv4.nexthop bgp.ipv6.nexthop ipv4.routes.anycast ipv6.routes.anycast \
        ipv4.routes ipv6.routes bgp.peers.p.address bgp.peers.p.asn bgp.peers.p.password \
        bgp.peers.p.holdtime bgp.peers.u.interface bgp.peers.u.asn";
    let ovn = "network volatile.network.ipv4.address volatile.network.ipv6.address";
    let instances = "bgp.ipv4.instances bgp.ipv6.instances";
    let physical = words(&format!("{common} {uplink}"));
    assert_eq!(carried("up"), physical);
    assert_eq!(
        carried("br"),
        words(&format!("{common} {uplink} {instances}"))
    );
    assert_eq!(carried("o"), words(&format!("{common} {ovn}")));
    assert_eq!(
        keys(&top["config"]),
        words("core.bgp_asn core.bgp_routerid")
    );
    let nets = match &top["networks"] {
        Node::Map(nets) => nets.keys().cloned().collect::<BTreeSet<_>>(),
        other => panic!("networks: {other:?}"),
    };
    assert_eq!(nets, words("br o up"));
    assert!(conv
        .ignored
        .contains(&"networks.br.config.bgp.future".to_string()));
    assert!(!conv.ignored.iter().any(|k| k.ends_with("ipv4.dhcp")));

    // The tree is LXD's whole state, unmerged with any file: validation takes it.
    match build(conv.tree, "m") {
        Ok(c) => assert_eq!(c.networks["o"].uplink.as_deref(), Some("up")),
        Err(errs) => panic!("{errs:?}"),
    }

    // Any other key LXD might hold: carried over only where validation knows it.
    let others = PEER_FIELDS
        .iter()
        .map(|f| format!("bgp.peers.p.{}", f.key))
        .chain(["bgp.peers.p.nope", "ipv4.dhcp", "bgp.future", "user.x"].map(String::from));
    for key in others.chain(NETWORK_KEYS.iter().map(|k| k.key.to_string())) {
        for (kind, name) in KINDS {
            if !network_key_from_lxd(kind, &key) {
                continue;
            }
            let errs = errors(tree(name, &[(&key, "x")], None));
            let full = format!("networks.n.config.{key}");
            let refused = [
                "unknown key".to_string(),
                format!("unknown key for a {name} network"),
                OVN_PEERS.to_string(),
            ];
            assert!(
                !errs.iter().any(|(k, m)| *k == full && refused.contains(m)),
                "{key} on {name}: {errs:?}"
            );
        }
    }
}
