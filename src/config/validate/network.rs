//! `networks.NAME`: a network's type, its families' keys, its forwards; its peers
//! are `peer.rs`'s.
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::keys::*;
use super::peer::RawPeers;
use super::Errors;
use crate::config::attrs;
use crate::config::node::Node;
use crate::config::values::{self, Fam};
use crate::config::{FamilyConfig, Network, NetworkKind};

pub(crate) fn parse_kind(s: &str) -> Option<NetworkKind> {
    match s {
        "bridge" => Some(NetworkKind::Bridge),
        "physical" => Some(NetworkKind::Physical),
        "ovn" => Some(NetworkKind::Ovn),
        _ => None,
    }
}

pub(super) fn kind_name(k: NetworkKind) -> &'static str {
    match k {
        NetworkKind::Bridge => "bridge",
        NetworkKind::Physical => "physical",
        NetworkKind::Ovn => "ovn",
    }
}

/// The kind of a raw network node, if it is well formed (errors are reported elsewhere).
pub(super) fn raw_kind(node: &Node) -> Option<NetworkKind> {
    match node {
        Node::Map(m) => match m.get("type") {
            Some(Node::Scalar(s)) => parse_kind(s),
            _ => None,
        },
        _ => None,
    }
}

/// The family a network key is about, by its name (`ipv4` in it); keys of neither
/// family never use it.
fn key_fam(key: &str) -> Fam {
    if key.contains("ipv4") {
        Fam::V4
    } else {
        Fam::V6
    }
}

/// Checks a network key's value on its own (no cross-key checks), as `parse_network`
/// does: for a value given where the network is not (a member overlay).
pub(super) fn check_network_value(spec: &NetworkKey, value: &str) -> Result<(), String> {
    let fam = key_fam(spec.key);
    match spec.value {
        Value::Bool => values::parse_bool(value).map(drop),
        Value::Addr => values::parse_addr(value, fam).map(drop),
        Value::Gateway if matches!(value.trim(), "none" | "auto") => Ok(()),
        Value::Gateway => values::parse_gateway(value, fam).map(drop),
        Value::Prefixes => values::parse_prefixes(value, fam).map(drop),
        Value::NetworkName => Ok(()),
        Value::Attr => attrs::apply(&mut crate::config::ExtraAttrs::default(), spec.key, value),
    }
}

#[derive(Default)]
struct RawFamily {
    nat: bool,
    nat_address: Option<IpAddr>,
    nexthop: Option<IpAddr>,
    routes_anycast: bool,
    address: Option<IpNet>,
    routes: Vec<IpNet>,
    ovn_router_address: Option<IpAddr>,
    instances: bool,
}

/// Picks one family's addresses and prefixes out of the parsed (mixed) values.
trait FamilyAddr: Sized {
    type Net;
    fn addr(a: IpAddr) -> Option<Self>;
    fn net(n: IpNet) -> Option<Self::Net>;
}

/// Both families' impls: the same but for the variant they take.
macro_rules! family_addr {
    ($addr:ty, $net:ty, $variant:ident) => {
        impl FamilyAddr for $addr {
            type Net = $net;
            fn addr(a: IpAddr) -> Option<Self> {
                match a {
                    IpAddr::$variant(a) => Some(a),
                    _ => None,
                }
            }
            fn net(n: IpNet) -> Option<$net> {
                match n {
                    IpNet::$variant(n) => Some(n),
                    _ => None,
                }
            }
        }
    };
}
family_addr!(Ipv4Addr, Ipv4Net, V4);
family_addr!(Ipv6Addr, Ipv6Net, V6);

fn family_config<A: FamilyAddr>(r: RawFamily) -> FamilyConfig<A, A::Net> {
    FamilyConfig {
        nat: r.nat,
        nat_address: r.nat_address.and_then(A::addr),
        nexthop: r.nexthop.and_then(A::addr),
        routes_anycast: r.routes_anycast,
        address: r.address.and_then(A::net),
        routes: r.routes.into_iter().filter_map(A::net).collect(),
        ovn_router_address: r.ovn_router_address.and_then(A::addr),
        instances: r.instances,
    }
}

/// Returns None when the network's type is missing or invalid (its keys can't be checked).
pub(super) fn parse_network(e: &mut Errors, name: &str, node: &Node) -> Option<Network> {
    let base = format!("networks.{name}");
    let m = e.map(&base, node)?;
    for k in m.keys() {
        if k != "type" && k != "config" && !NETWORK_IGNORED.contains(&k.as_str()) {
            e.push(format!("{base}.{k}"), "unknown key");
        }
    }
    let tkey = format!("{base}.type");
    let kind = match m.get("type") {
        None => {
            e.push(tkey, "required (bridge, physical or ovn)");
            return None;
        }
        Some(t) => {
            let t = match e.scalar(&tkey, t) {
                Some(t) => t,
                None => {
                    if matches!(t, Node::Null) || matches!(t, Node::Scalar(_)) {
                        e.push(tkey, "required (bridge, physical or ovn)");
                    }
                    return None;
                }
            };
            match parse_kind(t) {
                Some(k) => k,
                None => {
                    e.push(tkey, format!("must be bridge, physical or ovn, got {t:?}"));
                    return None;
                }
            }
        }
    };
    let mut v4 = RawFamily::default();
    let mut v6 = RawFamily::default();
    let mut uplink = None;
    let mut raw_peers = RawPeers::default();
    let cbase = format!("{base}.config");
    let cfg = match m.get("config") {
        Some(c) => e.map(&cbase, c).cloned().unwrap_or_default(),
        None => BTreeMap::new(),
    };
    let mut extra = crate::config::ExtraAttrs::default();
    for (k, v) in &cfg {
        let key = format!("{cbase}.{k}");
        if k.starts_with("user.") {
            continue;
        }
        if let Some(rest) = k.strip_prefix("bgp.peers.") {
            if !PEERS_ON.has(kind) {
                e.push(
                    key,
                    "BGP peers are not supported on ovn networks (declare them on the uplink network)",
                );
                continue;
            }
            raw_peers.take(e, &key, rest, v);
            continue;
        }
        let Some(spec) = network_key(k).filter(|s| s.on.has(kind)) else {
            e.push(
                key,
                format!("unknown key for a {} network", kind_name(kind)),
            );
            continue;
        };
        let Some(val) = e.scalar(&key, v) else {
            continue;
        };
        if spec.value == Value::Attr {
            e.check(&key, attrs::apply(&mut extra, k, val));
            continue;
        }
        let fam = key_fam(k);
        let f = if fam == Fam::V4 { &mut v4 } else { &mut v6 };
        match k.as_str() {
            "ipv4.nat" | "ipv6.nat" => {
                f.nat = e.check(&key, values::parse_bool(val)).unwrap_or(false);
            }
            "ipv4.routes.anycast" | "ipv6.routes.anycast" => {
                f.routes_anycast = e.check(&key, values::parse_bool(val)).unwrap_or(false);
            }
            "bgp.ipv4.instances" | "bgp.ipv6.instances" => {
                f.instances = e.check(&key, values::parse_bool(val)).unwrap_or(false);
            }
            "ipv4.nat.address" | "ipv6.nat.address" => {
                f.nat_address = e.check(&key, values::parse_addr(val, fam));
            }
            "bgp.ipv4.nexthop" | "bgp.ipv6.nexthop" => {
                f.nexthop = e.check(&key, values::parse_addr(val, fam));
            }
            "volatile.network.ipv4.address" | "volatile.network.ipv6.address" => {
                f.ovn_router_address = e.check(&key, values::parse_addr(val, fam));
            }
            "ipv4.address" | "ipv6.address" if !matches!(val.trim(), "none" | "auto") => {
                f.address = e.check(&key, values::parse_gateway(val, fam));
            }
            "ipv4.routes" | "ipv6.routes" => {
                f.routes = e
                    .check(&key, values::parse_prefixes(val, fam))
                    .unwrap_or_default();
            }
            "network" => uplink = Some(val.trim().to_string()),
            // A table key without its arm would be accepted and dropped: the table's
            // tests give each a bad value and expect its error.
            _ => {}
        }
    }
    if kind == NetworkKind::Ovn && uplink.is_none() {
        e.push(
            format!("{cbase}.network"),
            "required for ovn networks (the uplink network)",
        );
    }
    let peers = raw_peers.finish(e, &cbase);
    let forwards = match m.get("forwards") {
        Some(n) => parse_forwards(e, &format!("{base}.forwards"), n),
        None => Vec::new(),
    };
    Some(Network {
        forwards,
        attrs: extra,
        name: name.to_string(),
        kind,
        ipv4: family_config::<Ipv4Addr>(v4),
        ipv6: family_config::<Ipv6Addr>(v6),
        uplink,
        peers,
    })
}

/// `forwards`: a list of addresses (or one comma-separated string), sorted, deduplicated.
fn parse_forwards(e: &mut Errors, key: &str, node: &Node) -> Vec<IpAddr> {
    let items: Vec<&Node> = match node {
        Node::Seq(v) => v.iter().collect(),
        Node::Null => Vec::new(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for item in items {
        let Some(s) = e.scalar(key, item) else {
            continue;
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some(a) = e.check(key, values::parse_ip(part)) {
                out.push(a);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

pub(super) fn check_uplinks(
    e: &mut Errors,
    networks: &BTreeMap<String, Network>,
    broken: &BTreeSet<String>,
) {
    for (name, net) in networks {
        let Some(up) = &net.uplink else { continue };
        let key = format!("networks.{name}.config.network");
        match networks.get(up) {
            Some(u) if u.kind == NetworkKind::Ovn => e.push(
                key,
                format!("uplink network {up:?} must be physical or bridge, not ovn"),
            ),
            Some(_) => {}
            None if broken.contains(up) => {}
            None => e.push(key, format!("unknown network {up:?}")),
        }
    }
}
