//! From a merged YAML tree to a validated [`Config`], collecting every error.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::attrs::{self, ATTR_KEYS};
use super::node::Node;
use super::values::{self, Fam};
use super::Remote;
use super::{
    AgentSettings, Config, ConfigError, FamilyConfig, Instance, Network, NetworkKind, Nic,
    PeerConfig, ServerConfig, DEFAULT_BGP_PORT, DEFAULT_GRACEFUL_RESTART_TIME, DEFAULT_HOLD_TIME,
};
use super::{BfdSettings, DEFAULT_BFD_MIN_INTERVAL_MS, DEFAULT_BFD_MULTIPLIER};

/// Server keys that may differ per cluster member.
pub(super) const LOCAL_SERVER_KEYS: &[&str] = &["core.bgp_address", "core.bgp_routerid"];
pub(super) const GLOBAL_SERVER_KEYS: &[&str] = &[
    "core.bgp_asn",
    "core.bgp_graceful_restart_time",
    "hostbgp.graceful_restart",
    "hostbgp.route_check_interval",
    "hostbgp.metrics_address",
    "hostbgp.drain_time",
];
/// Network keys that may differ per cluster member.
pub(super) const LOCAL_NETWORK_KEYS: &[&str] = &["bgp.ipv4.nexthop", "bgp.ipv6.nexthop"];
/// Every network key this file knows (besides `bgp.peers.*` and `user.*`).
pub(super) const NETWORK_KEYS: &[&str] = &[
    "bgp.ipv4.nexthop",
    "bgp.ipv6.nexthop",
    "ipv4.nat",
    "ipv6.nat",
    "ipv4.nat.address",
    "ipv6.nat.address",
    "ipv4.address",
    "ipv6.address",
    "ipv4.routes.anycast",
    "ipv6.routes.anycast",
    "ipv4.routes",
    "ipv6.routes",
    "network",
    "volatile.network.ipv4.address",
    "volatile.network.ipv6.address",
    "bgp.communities",
    "bgp.large_communities",
    "bgp.med",
    "bgp.as_path_prepend",
    "bgp.ipv4.instances",
    "bgp.ipv6.instances",
];
/// Fields of a network as `lxc network show` prints them, accepted and ignored.
pub(super) const NETWORK_IGNORED: &[&str] = &[
    "forwards",
    "description",
    "locations",
    "managed",
    "name",
    "project",
    "status",
    "used_by",
];
/// Fields of an instance as `lxc config show` / the API print them, accepted and ignored.
pub(super) const INSTANCE_IGNORED: &[&str] = &[
    "architecture",
    "backups",
    "config",
    "created_at",
    "description",
    "ephemeral",
    "expanded_config",
    "expanded_devices",
    "last_used_at",
    "name",
    "profiles",
    "project",
    "snapshots",
    "state",
    "stateful",
    "status",
    "status_code",
    "type",
];
pub(super) const NIC_IGNORED: &[&str] = &["host_name", "name", "mtu", "ipv4.routes", "ipv6.routes"];
/// The fields of a peer (`bgp.peers.NAME.FIELD`).
pub(super) const PEER_KEYS: &[&str] = &[
    "address",
    "interface",
    "asn",
    "password",
    "holdtime",
    "bfd",
    "bfd.min_interval",
    "bfd.multiplier",
    "graceful_restart.time",
    "export",
];
/// Peer fields with a dot of their own, matched before a peer name's dots.
pub(super) const DOTTED_PEER_KEYS: &[&str] = &[
    "bfd.min_interval",
    "bfd.multiplier",
    "graceful_restart.time",
];
/// `graceful_restart.time` bounds: the capability has 12 bits for it (RFC 4724).
const GRACEFUL_RESTART_TIME: (u16, u16) = (0, 4095);
/// `bfd.min_interval` bounds, in ms: bird and FRR go no faster than 10 ms, and a
/// detection slower than a minute is what the hold timer is for.
const BFD_MIN_INTERVAL_MS: (u32, u32) = (10, 60_000);
/// The NIC keys this file reads (besides `type` and the ignored ones).
pub(crate) const NIC_KEYS: &[&str] = &[
    "network",
    "hwaddr",
    "ipv4.address",
    "ipv6.address",
    "ipv4.routes.external",
    "ipv6.routes.external",
    "bgp.communities",
    "bgp.large_communities",
    "bgp.med",
    "bgp.as_path_prepend",
];

#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            key: key.into(),
            message: message.into(),
        });
    }

    /// A set scalar value; None when absent, null or empty (LXD: empty = unset).
    fn scalar<'a>(&mut self, key: &str, node: &'a Node) -> Option<&'a str> {
        match node {
            Node::Null => None,
            Node::Scalar(s) if s.is_empty() => None,
            Node::Scalar(s) => Some(s),
            other => {
                self.push(
                    key,
                    format!(
                        "expected a string, number or boolean, got {}",
                        other.kind_name()
                    ),
                );
                None
            }
        }
    }

    /// A map (null counts as empty); an error for anything else.
    fn map<'a>(&mut self, key: &str, node: &'a Node) -> Option<&'a BTreeMap<String, Node>> {
        static EMPTY: BTreeMap<String, Node> = BTreeMap::new();
        match node {
            Node::Map(m) => Some(m),
            Node::Null => Some(&EMPTY),
            other => {
                self.push(key, format!("expected a map, got {}", other.kind_name()));
                None
            }
        }
    }

    fn check<T>(&mut self, key: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(m) => {
                self.push(key, m);
                None
            }
        }
    }
}

fn parse_kind(s: &str) -> Option<NetworkKind> {
    match s {
        "bridge" => Some(NetworkKind::Bridge),
        "physical" => Some(NetworkKind::Physical),
        "ovn" => Some(NetworkKind::Ovn),
        _ => None,
    }
}

fn kind_name(k: NetworkKind) -> &'static str {
    match k {
        NetworkKind::Bridge => "bridge",
        NetworkKind::Physical => "physical",
        NetworkKind::Ovn => "ovn",
    }
}

/// The kind of a raw network node, if it is well formed (errors are reported elsewhere).
fn raw_kind(node: &Node) -> Option<NetworkKind> {
    match node {
        Node::Map(m) => match m.get("type") {
            Some(Node::Scalar(s)) => parse_kind(s),
            _ => None,
        },
        _ => None,
    }
}

/// Validates a network key's value on its own (no cross-key checks).
fn check_network_value(key: &str, value: &str) -> Result<(), String> {
    let fam = if key.contains("ipv4") {
        Fam::V4
    } else {
        Fam::V6
    };
    match key {
        "bgp.ipv4.nexthop" | "bgp.ipv6.nexthop" => values::parse_addr(value, fam).map(|_| ()),
        _ => Ok(()),
    }
}

/// Takes the tree by value: a config with a million routes is a megabytes-long
/// scalar, and the member overlay is applied in place rather than on a copy.
pub(crate) fn build(mut root: Node, member: &str) -> Result<Config, Vec<ConfigError>> {
    let mut e = Errors::default();
    let Some(top) = e.map("(root)", &root) else {
        return Err(e.0);
    };
    for k in top.keys() {
        if !matches!(k.as_str(), "config" | "networks" | "instances" | "members") {
            if k == "lxd" || k == "incus" {
                check_live_source(&mut e, k, &top[k]);
            } else {
                e.push(k.clone(), "unknown key");
            }
        }
    }
    if top.contains_key("lxd") && top.contains_key("incus") {
        e.push(
            "incus",
            "lxd and incus cannot both be set: follow one of them",
        );
    }
    // LXD names each running NIC's host side itself (`volatile.DEV.host_name`).
    let live = top.contains_key("lxd") || top.contains_key("incus");

    // Kinds of the declared networks, from the raw tree (for the overlay checks).
    let raw_networks: BTreeMap<String, Option<NetworkKind>> = match top.get("networks") {
        Some(Node::Map(m)) => m.iter().map(|(k, v)| (k.clone(), raw_kind(v))).collect(),
        _ => BTreeMap::new(),
    };

    // Member overlays: validate every member, apply the selected one.
    let overlay = match top.get("members") {
        Some(members) => check_members(&mut e, members, member, &raw_networks),
        None => Vec::new(),
    };
    let mut overlay_keys = Vec::new();
    if let Node::Map(r) = &mut root {
        for (path, value) in overlay {
            overlay_keys.push(path.join("."));
            apply(r, &path, value);
        }
    }
    overlay_keys.sort();
    let Some(top) = e.map("(root)", &root) else {
        return Err(e.0);
    };

    let (server, agent) = match top.get("config") {
        Some(n) => parse_server(&mut e, n),
        None => parse_server(&mut e, &Node::Null),
    };

    let mut networks = BTreeMap::new();
    let mut broken_networks = BTreeSet::new();
    if let Some(n) = top.get("networks") {
        if let Some(m) = e.map("networks", n) {
            for (name, node) in m {
                match parse_network(&mut e, name, node) {
                    Some(net) => {
                        networks.insert(name.clone(), net);
                    }
                    None => {
                        broken_networks.insert(name.clone());
                    }
                }
            }
        }
    }
    check_uplinks(&mut e, &networks, &broken_networks);
    check_peer_conflicts(&mut e, &networks);

    let mut instances = BTreeMap::new();
    if let Some(n) = top.get("instances") {
        if let Some(m) = e.map("instances", n) {
            for (name, node) in m {
                if let Some(inst) =
                    parse_instance(&mut e, name, node, &networks, &broken_networks, live)
                {
                    instances.insert(name.clone(), inst);
                }
            }
        }
    }
    check_overlaps(&mut e, &networks, &instances);

    if !e.0.is_empty() {
        let mut errs = e.0;
        errs.sort_by(|a, b| a.key.cmp(&b.key));
        errs.dedup();
        return Err(errs);
    }
    Ok(Config {
        member: member.to_string(),
        server,
        agent,
        networks,
        instances,
        overlay_keys,
    })
}

/// `lxd:` / `incus:`: a map with an optional `socket` path.
fn check_live_source(e: &mut Errors, name: &str, node: &Node) {
    let Some(m) = e.map(name, node) else { return };
    for (k, v) in m {
        let key = format!("{name}.{k}");
        match k.as_str() {
            "socket" => {
                if let Some(s) = e.scalar(&key, v) {
                    if !s.starts_with('/') {
                        e.push(key, format!("expected an absolute path, got {s:?}"));
                    }
                }
            }
            _ => e.push(key, "unknown key"),
        }
    }
}

/// Puts `value` at `path` (creating maps on the way, replacing non-maps).
fn apply(map: &mut BTreeMap<String, Node>, path: &[String], value: Node) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        map.insert(first.clone(), value);
        return;
    }
    let child = map
        .entry(first.clone())
        .or_insert_with(|| Node::Map(BTreeMap::new()));
    if !matches!(child, Node::Map(_)) {
        *child = Node::Map(BTreeMap::new());
    }
    if let Node::Map(m) = child {
        apply(m, rest, value);
    }
}

/// Checks `members:`; returns the valid overlay entries of `selected` as (path, value).
fn check_members(
    e: &mut Errors,
    members: &Node,
    selected: &str,
    networks: &BTreeMap<String, Option<NetworkKind>>,
) -> Vec<(Vec<String>, Node)> {
    let mut out = Vec::new();
    let Some(members) = e.map("members", members) else {
        return out;
    };
    for (name, node) in members {
        let base = format!("members.{name}");
        let Some(m) = e.map(&base, node) else {
            continue;
        };
        let mine = name == selected;
        for (k, v) in m {
            let key = format!("{base}.{k}");
            match k.as_str() {
                "config" => {
                    let Some(cfg) = e.map(&key, v) else { continue };
                    for (ck, cv) in cfg {
                        let ckey = format!("{key}.{ck}");
                        if GLOBAL_SERVER_KEYS.contains(&ck.as_str()) {
                            e.push(ckey, "global key, cannot be set per member");
                            continue;
                        }
                        if !LOCAL_SERVER_KEYS.contains(&ck.as_str()) {
                            e.push(ckey, "unknown key");
                            continue;
                        }
                        let ok = match e.scalar(&ckey, cv) {
                            None => !matches!(cv, Node::Map(_) | Node::Seq(_)),
                            Some(s) => {
                                let r = if ck == "core.bgp_address" {
                                    values::parse_listen(s).map(|_| ())
                                } else {
                                    values::parse_addr(s, Fam::V4).map(|_| ())
                                };
                                e.check(&ckey, r).is_some()
                            }
                        };
                        if ok && mine {
                            out.push((vec!["config".to_string(), ck.clone()], cv.clone()));
                        }
                    }
                }
                "networks" => {
                    let Some(nets) = e.map(&key, v) else { continue };
                    for (net, nv) in nets {
                        let nkey = format!("{key}.{net}");
                        let Some(kind) = networks.get(net) else {
                            e.push(nkey, format!("unknown network {net:?}"));
                            continue;
                        };
                        let Some(nm) = e.map(&nkey, nv) else { continue };
                        for (lk, lv) in nm {
                            let lkey = format!("{nkey}.{lk}");
                            if !LOCAL_NETWORK_KEYS.contains(&lk.as_str()) {
                                if NETWORK_KEYS.contains(&lk.as_str())
                                    || lk.starts_with("bgp.peers.")
                                {
                                    e.push(lkey, "global key, cannot be set per member");
                                } else {
                                    e.push(lkey, "unknown key");
                                }
                                continue;
                            }
                            if *kind == Some(NetworkKind::Ovn) {
                                e.push(lkey, "not supported on ovn networks");
                                continue;
                            }
                            let ok = match e.scalar(&lkey, lv) {
                                None => !matches!(lv, Node::Map(_) | Node::Seq(_)),
                                Some(s) => e.check(&lkey, check_network_value(lk, s)).is_some(),
                            };
                            if ok && mine {
                                out.push((
                                    vec![
                                        "networks".to_string(),
                                        net.clone(),
                                        "config".to_string(),
                                        lk.clone(),
                                    ],
                                    lv.clone(),
                                ));
                            }
                        }
                    }
                }
                _ => e.push(key, "unknown key"),
            }
        }
    }
    out
}

/// The server's BGP settings, and the agent's own (`hostbgp.*`), which change no session.
fn parse_server(e: &mut Errors, node: &Node) -> (ServerConfig, AgentSettings) {
    let mut s = ServerConfig {
        listen: None,
        asn: None,
        router_id: None,
        graceful_restart_time: DEFAULT_GRACEFUL_RESTART_TIME,
        graceful_restart: true,
    };
    let mut agent = AgentSettings::default();
    let Some(m) = e.map("config", node) else {
        return (s, agent);
    };
    let mut asn_given = false;
    for (k, v) in m {
        let key = format!("config.{k}");
        match k.as_str() {
            "core.bgp_address" => {
                if let Some(val) = e.scalar(&key, v) {
                    s.listen = e.check(&key, values::parse_listen(val));
                }
            }
            "core.bgp_asn" => {
                if let Some(val) = e.scalar(&key, v) {
                    asn_given = true;
                    s.asn = e.check(&key, values::parse_asn(val));
                }
            }
            "core.bgp_routerid" => {
                if let Some(val) = e.scalar(&key, v) {
                    s.router_id = e
                        .check(&key, values::parse_addr(val, Fam::V4))
                        .and_then(|a| match a {
                            IpAddr::V4(a) => Some(a),
                            IpAddr::V6(_) => None,
                        });
                }
            }
            "core.bgp_graceful_restart_time" => {
                if let Some(val) = e.scalar(&key, v) {
                    if let Some(t) = e.check(&key, values::parse_u16(val, 1, 4095)) {
                        s.graceful_restart_time = t;
                    }
                }
            }
            "hostbgp.graceful_restart" => {
                if let Some(val) = e.scalar(&key, v) {
                    if let Some(on) = e.check(&key, values::parse_bool(val)) {
                        s.graceful_restart = on;
                    }
                }
            }
            "hostbgp.metrics_address" => {
                if let Some(val) = e.scalar(&key, v) {
                    agent.metrics_address = e.check(&key, values::parse_socket_addr(val));
                }
            }
            "hostbgp.drain_time" => {
                if let Some(val) = e.scalar(&key, v) {
                    let max = super::MAX_DRAIN_TIME_SECS;
                    if let Some(t) = e.check(&key, values::parse_u32(val, 0, max)) {
                        agent.drain_time = std::time::Duration::from_secs(t.into());
                    }
                }
            }
            "hostbgp.route_check_interval" => {
                if let Some(val) = e.scalar(&key, v) {
                    if let Some(t) = e.check(&key, values::parse_u32(val, 0, 86_400)) {
                        agent.route_check_interval = std::time::Duration::from_secs(t.into());
                    }
                }
            }
            _ => e.push(key, "unknown key"),
        }
    }
    let address_given = matches!(m.get("core.bgp_address"), Some(Node::Scalar(a)) if !a.is_empty());
    if address_given && !asn_given {
        e.push(
            "config.core.bgp_asn",
            "required when core.bgp_address is set",
        );
    }
    (s, agent)
}

#[derive(Default)]
struct RawPeer {
    address: Option<IpAddr>,
    address_set: bool,
    interface: Option<String>,
    interface_set: bool,
    asn: Option<u32>,
    asn_set: bool,
    password: Option<super::Password>,
    hold_time: Option<u16>,
    bfd: bool,
    bfd_min_interval: Option<u32>,
    bfd_multiplier: Option<u8>,
    graceful_restart_time: Option<u16>,
    export: super::Export,
    valid: bool,
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

impl FamilyAddr for std::net::Ipv4Addr {
    type Net = Ipv4Net;
    fn addr(a: IpAddr) -> Option<Self> {
        match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
    fn net(n: IpNet) -> Option<Ipv4Net> {
        match n {
            IpNet::V4(n) => Some(n),
            IpNet::V6(_) => None,
        }
    }
}

impl FamilyAddr for std::net::Ipv6Addr {
    type Net = Ipv6Net;
    fn addr(a: IpAddr) -> Option<Self> {
        match a {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }
    fn net(n: IpNet) -> Option<Ipv6Net> {
        match n {
            IpNet::V6(n) => Some(n),
            IpNet::V4(_) => None,
        }
    }
}

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
fn parse_network(e: &mut Errors, name: &str, node: &Node) -> Option<Network> {
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
    let mut raw_peers: BTreeMap<String, RawPeer> = BTreeMap::new();
    let cbase = format!("{base}.config");
    let cfg = match m.get("config") {
        Some(c) => e.map(&cbase, c).cloned().unwrap_or_default(),
        None => BTreeMap::new(),
    };
    let ovn = kind == NetworkKind::Ovn;
    let mut extra = super::ExtraAttrs::default();
    for (k, v) in &cfg {
        let key = format!("{cbase}.{k}");
        if k.starts_with("user.") {
            continue;
        }
        if ATTR_KEYS.contains(&k.as_str()) {
            if let Some(val) = e.scalar(&key, v) {
                e.check(&key, attrs::apply(&mut extra, k, val));
            }
            continue;
        }
        if let Some(rest) = k.strip_prefix("bgp.peers.") {
            if ovn {
                e.push(
                    key,
                    "BGP peers are not supported on ovn networks (declare them on the uplink network)",
                );
                continue;
            }
            let Some((pname, field)) = split_peer_key(rest) else {
                e.push(key, "unknown key");
                continue;
            };
            if !PEER_KEYS.contains(&field) {
                e.push(key, "unknown key");
                continue;
            }
            let p = raw_peers
                .entry(pname.to_string())
                .or_insert_with(|| RawPeer {
                    valid: true,
                    ..RawPeer::default()
                });
            let Some(val) = e.scalar(&key, v) else {
                if matches!(v, Node::Map(_) | Node::Seq(_)) {
                    p.valid = false;
                }
                continue;
            };
            match field {
                "address" => {
                    p.address_set = true;
                    p.address = e.check(&key, values::parse_ip(val));
                    p.valid &= p.address.is_some();
                }
                "interface" => {
                    p.interface_set = true;
                    p.interface =
                        e.check(&key, values::check_ifname(val).map(|()| val.to_string()));
                    p.valid &= p.interface.is_some();
                }
                "asn" => {
                    p.asn_set = true;
                    p.asn = e.check(&key, values::parse_asn(val));
                    p.valid &= p.asn.is_some();
                }
                "password" => {
                    p.password = e.check(&key, super::Password::parse(val));
                    p.valid &= p.password.is_some();
                }
                "bfd" => {
                    let on = e.check(&key, values::parse_bool(val));
                    p.bfd = on.unwrap_or(false);
                    p.valid &= on.is_some();
                }
                "bfd.min_interval" => {
                    let (min, max) = BFD_MIN_INTERVAL_MS;
                    p.bfd_min_interval = e.check(&key, values::parse_u32(val, min, max));
                    p.valid &= p.bfd_min_interval.is_some();
                }
                "bfd.multiplier" => {
                    p.bfd_multiplier = e
                        .check(&key, values::parse_u16(val, 1, 255))
                        .and_then(|m| u8::try_from(m).ok());
                    p.valid &= p.bfd_multiplier.is_some();
                }
                "graceful_restart.time" => {
                    let (min, max) = GRACEFUL_RESTART_TIME;
                    p.graceful_restart_time = e.check(&key, values::parse_u16(val, min, max));
                    p.valid &= p.graceful_restart_time.is_some();
                }
                "export" => {
                    let export = e.check(&key, values::parse_export(val));
                    p.export = export.unwrap_or_default();
                    p.valid &= export.is_some();
                }
                _ => {
                    p.hold_time = e.check(&key, values::parse_u16(val, 9, 65535));
                    p.valid &= p.hold_time.is_some();
                }
            }
            continue;
        }
        let fam = if k.starts_with("ipv4.")
            || k.starts_with("bgp.ipv4.")
            || k.starts_with("volatile.network.ipv4.")
        {
            Fam::V4
        } else {
            Fam::V6
        };
        let known = match k.as_str() {
            "ipv4.nat" | "ipv6.nat" | "ipv4.nat.address" | "ipv6.nat.address" | "ipv4.address"
            | "ipv6.address" => true,
            "bgp.ipv4.nexthop"
            | "bgp.ipv6.nexthop"
            | "ipv4.routes.anycast"
            | "ipv6.routes.anycast"
            | "ipv4.routes"
            | "ipv6.routes" => !ovn,
            "network" | "volatile.network.ipv4.address" | "volatile.network.ipv6.address" => ovn,
            // Incus's: only a bridge knows its instances' addresses.
            "bgp.ipv4.instances" | "bgp.ipv6.instances" => kind == NetworkKind::Bridge,
            _ => false,
        };
        if !known {
            e.push(
                key,
                format!("unknown key for a {} network", kind_name(kind)),
            );
            continue;
        }
        let Some(val) = e.scalar(&key, v) else {
            continue;
        };
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
            "ipv4.address" | "ipv6.address" => {
                if !matches!(val.trim(), "none" | "auto") {
                    f.address = e.check(&key, values::parse_gateway(val, fam));
                }
            }
            "ipv4.routes" | "ipv6.routes" => {
                f.routes = e
                    .check(&key, values::parse_prefixes(val, fam))
                    .unwrap_or_default();
            }
            _ => uplink = Some(val.trim().to_string()),
        }
    }
    if ovn && uplink.is_none() {
        e.push(
            format!("{cbase}.network"),
            "required for ovn networks (the uplink network)",
        );
    }
    let mut peers = BTreeMap::new();
    for (pname, p) in raw_peers {
        let pkey = format!("{cbase}.bgp.peers.{pname}");
        match (p.address_set, p.interface_set) {
            (false, false) => e.push(
                format!("{pkey}.address"),
                "required: a peer needs an address (or an interface, unnumbered) and an asn",
            ),
            (true, true) => {
                e.push(
                    format!("{pkey}.interface"),
                    format!("{pkey}.address and {pkey}.interface exclude each other: a peer is either at an address or the router at the other end of an interface"),
                );
                continue;
            }
            _ => {}
        }
        if !p.asn_set {
            e.push(
                format!("{pkey}.asn"),
                "required: a peer needs an address (or an interface, unnumbered) and an asn",
            );
        }
        let bfd_tuned = p.bfd_min_interval.is_some() || p.bfd_multiplier.is_some();
        if bfd_tuned && !p.bfd {
            // Tuning without `bfd: "true"` would silently do nothing.
            e.push(
                format!("{pkey}.bfd"),
                "must be \"true\" when bfd.min_interval or bfd.multiplier is set",
            );
            continue;
        }
        let bfd = p.bfd.then(|| BfdSettings {
            min_interval_ms: p.bfd_min_interval.unwrap_or(DEFAULT_BFD_MIN_INTERVAL_MS),
            multiplier: p.bfd_multiplier.unwrap_or(DEFAULT_BFD_MULTIPLIER),
        });
        let remote = match (p.address, p.interface) {
            (Some(a), _) => Some(Remote::Address(a)),
            (None, Some(i)) => Some(Remote::Interface(i)),
            (None, None) => None,
        };
        if let (true, Some(remote), Some(asn)) = (p.valid, remote, p.asn) {
            peers.insert(
                pname.clone(),
                PeerConfig {
                    name: pname,
                    remote,
                    port: DEFAULT_BGP_PORT,
                    asn,
                    password: p.password,
                    hold_time: p.hold_time.unwrap_or(DEFAULT_HOLD_TIME),
                    bfd,
                    graceful_restart_time: p.graceful_restart_time,
                    export: p.export,
                },
            );
        }
    }
    let forwards = match m.get("forwards") {
        Some(n) => parse_forwards(e, &format!("{base}.forwards"), n),
        None => Vec::new(),
    };
    Some(Network {
        forwards,
        attrs: extra,
        name: name.to_string(),
        kind,
        ipv4: family_config::<std::net::Ipv4Addr>(v4),
        ipv6: family_config::<std::net::Ipv6Addr>(v6),
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

fn check_uplinks(e: &mut Errors, networks: &BTreeMap<String, Network>, broken: &BTreeSet<String>) {
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

/// `NAME.FIELD` of a `bgp.peers.` key. The dotted fields have a dot of their own, so
/// they are matched first; a peer name may itself contain dots.
fn split_peer_key(rest: &str) -> Option<(&str, &str)> {
    let (pname, field) = DOTTED_PEER_KEYS
        .iter()
        .find_map(|f| {
            rest.strip_suffix(f)
                .and_then(|p| p.strip_suffix('.'))
                .map(|p| (p, *f))
        })
        .or_else(|| rest.rsplit_once('.'))?;
    (!pname.is_empty()).then_some((pname, field))
}

fn check_peer_conflicts(e: &mut Errors, networks: &BTreeMap<String, Network>) {
    let mut by_addr: BTreeMap<&Remote, Vec<(&str, &PeerConfig)>> = BTreeMap::new();
    for (nname, net) in networks {
        for p in net.peers.values() {
            by_addr.entry(&p.remote).or_default().push((nname, p));
        }
    }
    for (addr, decls) in by_addr {
        let Some(((n0, p0), rest)) = decls.split_first() else {
            continue;
        };
        let key = |n: &str, p: &PeerConfig, f: &str| {
            format!("networks.{n}.config.bgp.peers.{}.{f}", p.name)
        };
        for (n, p) in rest {
            let diffs = [
                ("asn", p0.asn != p.asn),
                ("password", p0.password != p.password),
                ("holdtime", p0.hold_time != p.hold_time),
                ("bfd", p0.bfd != p.bfd),
                (
                    "graceful_restart.time",
                    p0.graceful_restart_time != p.graceful_restart_time,
                ),
            ];
            for (f, differ) in diffs {
                if differ {
                    e.push(
                        key(n0, p0, f),
                        format!(
                            "conflicts with {} (same peer {})",
                            key(n, p, f),
                            addr.described()
                        ),
                    );
                }
            }
        }
    }
}

fn parse_instance(
    e: &mut Errors,
    name: &str,
    node: &Node,
    networks: &BTreeMap<String, Network>,
    broken: &BTreeSet<String>,
    live: bool,
) -> Option<Instance> {
    let base = format!("instances.{name}");
    let m = e.map(&base, node)?;
    let mut inst = Instance {
        name: name.to_string(),
        location: None,
        nics: BTreeMap::new(),
    };
    for (k, v) in m {
        let key = format!("{base}.{k}");
        match k.as_str() {
            "location" => inst.location = e.scalar(&key, v).map(|s| s.to_string()),
            "devices" => {
                let Some(devs) = e.map(&key, v) else { continue };
                for (dev, dn) in devs {
                    if let Some(nic) =
                        parse_nic(e, &format!("{key}.{dev}"), dev, dn, networks, broken, live)
                    {
                        inst.nics.insert(dev.clone(), nic);
                    }
                }
            }
            _ if INSTANCE_IGNORED.contains(&k.as_str()) => {}
            _ => e.push(key, "unknown key"),
        }
    }
    Some(inst)
}

fn parse_nic(
    e: &mut Errors,
    base: &str,
    dev: &str,
    node: &Node,
    networks: &BTreeMap<String, Network>,
    broken: &BTreeSet<String>,
    live: bool,
) -> Option<Nic> {
    let m = e.map(base, node)?;
    let tkey = format!("{base}.type");
    let Some(t) = m.get("type").and_then(|t| e.scalar(&tkey, t)) else {
        if !matches!(m.get("type"), Some(Node::Map(_) | Node::Seq(_))) {
            e.push(tkey, "required");
        }
        return None;
    };
    if t != "nic" {
        return None; // disk, unix-char, proxy...: not ours
    }
    let mut nic = Nic {
        name: dev.to_string(),
        network: String::new(),
        host_name: None,
        hwaddr: None,
        ipv4_address: None,
        ipv6_address: None,
        ipv4_routes_external: Vec::new(),
        ipv6_routes_external: Vec::new(),
        attrs: super::ExtraAttrs::default(),
    };
    let mut ext_set = [false, false];
    for (k, v) in m {
        let key = format!("{base}.{k}");
        if k == "type" {
            continue;
        }
        let known = NIC_KEYS.contains(&k.as_str()) || NIC_IGNORED.contains(&k.as_str());
        if !known {
            e.push(key, "unknown key");
            continue;
        }
        let Some(val) = e.scalar(&key, v) else {
            continue;
        };
        match k.as_str() {
            "network" => nic.network = val.to_string(),
            "host_name" => {
                nic.host_name = e
                    .check(&key, values::check_ifname(val))
                    .map(|()| val.to_string());
            }
            "hwaddr" => nic.hwaddr = e.check(&key, val.parse()),
            "ipv4.address" | "ipv6.address" if val.trim() != "none" => {
                let fam = if k.starts_with("ipv4") {
                    Fam::V4
                } else {
                    Fam::V6
                };
                match e.check(&key, values::parse_addr(val, fam)) {
                    Some(IpAddr::V4(a)) => nic.ipv4_address = Some(a),
                    Some(IpAddr::V6(a)) => nic.ipv6_address = Some(a),
                    None => {}
                }
            }
            "ipv4.routes.external" | "ipv6.routes.external" => {
                let fam = if k.starts_with("ipv4") {
                    Fam::V4
                } else {
                    Fam::V6
                };
                let list = e
                    .check(&key, values::parse_prefixes(val, fam))
                    .unwrap_or_default();
                for n in list {
                    match n {
                        IpNet::V4(n) => nic.ipv4_routes_external.push(n),
                        IpNet::V6(n) => nic.ipv6_routes_external.push(n),
                    }
                }
                ext_set[usize::from(fam == Fam::V6)] = true;
            }
            k if ATTR_KEYS.contains(&k) => {
                e.check(&key, attrs::apply(&mut nic.attrs, k, val));
            }
            _ => {}
        }
    }
    if nic.network.is_empty() {
        e.push(format!("{base}.network"), "required");
        return Some(nic);
    }
    let Some(net) = networks.get(&nic.network) else {
        if !broken.contains(&nic.network) {
            e.push(
                format!("{base}.network"),
                format!("unknown network {:?}", nic.network),
            );
        }
        return Some(nic);
    };
    // Static addresses inside the network's subnet.
    let subnets: [(Option<IpNet>, Option<IpAddr>, Fam); 2] = [
        (
            net.ipv4.address.map(IpNet::V4),
            nic.ipv4_address.map(IpAddr::V4),
            Fam::V4,
        ),
        (
            net.ipv6.address.map(IpNet::V6),
            nic.ipv6_address.map(IpAddr::V6),
            Fam::V6,
        ),
    ];
    for (subnet, addr, fam) in subnets {
        if let (Some(sn), Some(a)) = (subnet, addr) {
            if !sn.contains(&a) {
                e.push(
                    format!("{base}.{}.address", fam.key()),
                    format!(
                        "{a} is not inside the subnet {} of network {} (networks.{}.config.{}.address)",
                        sn.trunc(),
                        net.name,
                        net.name,
                        fam.key()
                    ),
                );
            }
        }
    }
    let has_ext = ext_set[0] || ext_set[1];
    if net.kind == NetworkKind::Bridge && has_ext && nic.host_name.is_none() && !live {
        e.push(
            format!("{base}.host_name"),
            "required when ipv4.routes.external or ipv6.routes.external is set on a bridged NIC (hostbgp watches the host-side interface to know the instance runs)",
        );
    }
    if net.kind == NetworkKind::Ovn {
        if let Some(up) = net.uplink.as_ref().and_then(|u| networks.get(u)) {
            let checks: [(Vec<IpNet>, Vec<IpNet>, Fam); 2] = [
                (
                    nic.ipv4_routes_external
                        .iter()
                        .copied()
                        .map(IpNet::V4)
                        .collect(),
                    up.ipv4.routes.iter().copied().map(IpNet::V4).collect(),
                    Fam::V4,
                ),
                (
                    nic.ipv6_routes_external
                        .iter()
                        .copied()
                        .map(IpNet::V6)
                        .collect(),
                    up.ipv6.routes.iter().copied().map(IpNet::V6).collect(),
                    Fam::V6,
                ),
            ];
            for (ext, allowed, fam) in checks {
                if allowed.is_empty() {
                    continue;
                }
                for p in ext {
                    if !allowed.iter().any(|a| a.contains(&p)) {
                        e.push(
                            format!("{base}.{}.routes.external", fam.key()),
                            format!(
                                "{p} is not within the uplink's networks.{}.config.{}.routes",
                                up.name,
                                fam.key()
                            ),
                        );
                    }
                }
            }
        }
    }
    Some(nic)
}

/// Whether anycast is enabled for a NIC's family: on its network (bridged/physical)
/// or on the uplink (OVN).
fn anycast(networks: &BTreeMap<String, Network>, nic: &Nic, fam: Fam) -> bool {
    let Some(net) = networks.get(&nic.network) else {
        return false;
    };
    let net = if net.kind == NetworkKind::Ovn {
        match net.uplink.as_ref().and_then(|u| networks.get(u)) {
            Some(u) => u,
            None => return false,
        }
    } else {
        net
    };
    match fam {
        Fam::V4 => net.ipv4.routes_anycast,
        Fam::V6 => net.ipv6.routes_anycast,
    }
}

fn check_overlaps(
    e: &mut Errors,
    networks: &BTreeMap<String, Network>,
    instances: &BTreeMap<String, Instance>,
) {
    // One key per NIC and family; prefixes refer to it by index, in config order.
    // Compact per-family entries: a million routes must not cost more to check than
    // to advertise.
    let mut keys: Vec<(String, bool)> = Vec::new();
    let mut v4: Vec<(Ipv4Net, u32)> = Vec::new();
    let mut v6: Vec<(Ipv6Net, u32)> = Vec::new();
    for (iname, inst) in instances {
        for (dev, nic) in &inst.nics {
            let base = format!("instances.{iname}.devices.{dev}");
            if !nic.ipv4_routes_external.is_empty() {
                keys.push((
                    format!("{base}.ipv4.routes.external"),
                    anycast(networks, nic, Fam::V4),
                ));
                let owner = (keys.len() - 1) as u32;
                v4.extend(nic.ipv4_routes_external.iter().map(|p| (*p, owner)));
            }
            if !nic.ipv6_routes_external.is_empty() {
                keys.push((
                    format!("{base}.ipv6.routes.external"),
                    anycast(networks, nic, Fam::V6),
                ));
                let owner = (keys.len() - 1) as u32;
                v6.extend(nic.ipv6_routes_external.iter().map(|p| (*p, owner)));
            }
        }
    }
    report_overlaps(e, &keys, v4, |n| {
        (
            u32::from(n.network()).into(),
            u32::from(n.broadcast()).into(),
        )
    });
    report_overlaps(e, &keys, v6, |n| {
        (u128::from(n.network()), u128::from(n.broadcast()))
    });
}

/// Two prefixes overlap only when one contains the other, so after sorting by
/// (first address, widest first) each prefix overlaps exactly the prefixes still open on the
/// stack: O(n log n) instead of comparing every pair.
fn report_overlaps<P: Copy + PartialEq + std::fmt::Display>(
    e: &mut Errors,
    keys: &[(String, bool)],
    mut all: Vec<(P, u32)>,
    span: impl Fn(&P) -> (u128, u128),
) {
    all.sort_unstable_by_key(|(p, owner)| {
        let (start, end) = span(p);
        (start, std::cmp::Reverse(end), *owner)
    });
    let mut open: Vec<(P, u32)> = Vec::new();
    for &(p, owner) in &all {
        let (start, _) = span(&p);
        open.retain(|(q, _)| span(q).1 >= start);
        for &(q, other) in &open {
            let (o, k) = (owner as usize, other as usize);
            if other == owner || (p == q && keys[o].1 && keys[k].1) {
                continue;
            }
            // Name the pair as config order reads it: the earlier key holds the error.
            let ((ka, pa), (kb, pb)) = if k < o {
                ((k, q), (o, p))
            } else {
                ((o, p), (k, q))
            };
            e.push(
                keys[ka].0.clone(),
                format!("{pa} overlaps {} ({pb})", keys[kb].0),
            );
        }
        open.push((p, owner));
    }
}
