//! The keys the configuration knows, by where they go (LXD's names).
//!
//! Server keys, network keys and peer fields are each one table, a row a key.
//! Validation (is the key known here, may it differ per member, what must its value
//! be) and the LXD source (which of LXD's keys it carries over) both read them, so
//! the live source cannot hand validation a key it refuses. A table's order is the
//! one "did you mean" prefers between two keys as near.
use crate::config::NetworkKind;

/// A set of network kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kinds(u8);

const BRIDGE: Kinds = Kinds(1);
const PHYSICAL: Kinds = Kinds(2);
const OVN: Kinds = Kinds(4);
/// The kinds an OVN network may use as its uplink.
const UPLINK: Kinds = Kinds(BRIDGE.0 | PHYSICAL.0);
const ALL: Kinds = Kinds(BRIDGE.0 | PHYSICAL.0 | OVN.0);

impl Kinds {
    pub(crate) fn has(self, kind: NetworkKind) -> bool {
        let bit = match kind {
            NetworkKind::Bridge => BRIDGE,
            NetworkKind::Physical => PHYSICAL,
            NetworkKind::Ovn => OVN,
        };
        self.0 & bit.0 != 0
    }
}

/// Whether a key may differ per cluster member (`members.NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    Cluster,
    Member,
}

/// Whether a live LXD's value is taken, or only the file sets the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Lxd,
    File,
}

/// What a network key's value must be on its own; checks between keys are the
/// network's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// `true`/`false` and LXD's other spellings.
    Bool,
    /// An address of the key's family.
    Addr,
    /// `ADDRESS/LEN` of the key's family, or `none`/`auto`.
    Gateway,
    /// Comma-separated prefixes of the key's family.
    Prefixes,
    /// Another network: whether it is one is known only once all are read.
    NetworkName,
    /// A path attribute, checked by `attrs.rs` (NICs set them too).
    Attr,
}

use Scope::{Cluster, Member};
use Source::{File, Lxd};
use Value::{Addr, Attr, Bool, Gateway, NetworkName, Prefixes};

/// A key of `config:`.
#[derive(Debug)]
pub(crate) struct ServerKey {
    pub(crate) key: &'static str,
    pub(crate) scope: Scope,
    pub(crate) source: Source,
}

const fn server(key: &'static str, scope: Scope, source: Source) -> ServerKey {
    ServerKey { key, scope, source }
}

pub(crate) const SERVER_KEYS: &[ServerKey] = &[
    // hostbgp listens where its own file says; LXD's must stay unset (LXD's speaker
    // would hold the port).
    server("core.bgp_address", Member, File),
    server("core.bgp_routerid", Member, Lxd),
    server("core.bgp_asn", Cluster, Lxd),
    server("core.bgp_graceful_restart_time", Cluster, File),
    server("hostbgp.graceful_restart", Cluster, File),
    server("hostbgp.route_check_interval", Cluster, File),
    server("hostbgp.metrics_address", Cluster, File),
    server("hostbgp.drain_time", Cluster, File),
];

/// A key of `networks.NAME.config`, besides `bgp.peers.*` (fields below) and `user.*`
/// (free).
#[derive(Debug)]
pub(crate) struct NetworkKey {
    pub(crate) key: &'static str,
    /// On any other kind it is an unknown key.
    pub(crate) on: Kinds,
    pub(crate) scope: Scope,
    pub(crate) source: Source,
    pub(crate) value: Value,
}

const fn net(
    key: &'static str,
    on: Kinds,
    scope: Scope,
    source: Source,
    value: Value,
) -> NetworkKey {
    NetworkKey {
        key,
        on,
        scope,
        source,
        value,
    }
}

pub(crate) const NETWORK_KEYS: &[NetworkKey] = &[
    net("bgp.ipv4.nexthop", UPLINK, Member, Lxd, Addr),
    net("bgp.ipv6.nexthop", UPLINK, Member, Lxd, Addr),
    net("ipv4.nat", ALL, Cluster, Lxd, Bool),
    net("ipv6.nat", ALL, Cluster, Lxd, Bool),
    net("ipv4.nat.address", ALL, Cluster, Lxd, Addr),
    net("ipv6.nat.address", ALL, Cluster, Lxd, Addr),
    net("ipv4.address", ALL, Cluster, Lxd, Gateway),
    net("ipv6.address", ALL, Cluster, Lxd, Gateway),
    net("ipv4.routes.anycast", UPLINK, Cluster, Lxd, Bool),
    net("ipv6.routes.anycast", UPLINK, Cluster, Lxd, Bool),
    net("ipv4.routes", UPLINK, Cluster, Lxd, Prefixes),
    net("ipv6.routes", UPLINK, Cluster, Lxd, Prefixes),
    // An OVN network's uplink, and its router's address there (LXD sets it).
    net("network", OVN, Cluster, Lxd, NetworkName),
    net("volatile.network.ipv4.address", OVN, Cluster, Lxd, Addr),
    net("volatile.network.ipv6.address", OVN, Cluster, Lxd, Addr),
    // hostbgp's own, named in LXD's style: taken from servers that allow them.
    net("bgp.communities", ALL, Cluster, Lxd, Attr),
    net("bgp.large_communities", ALL, Cluster, Lxd, Attr),
    net("bgp.med", ALL, Cluster, Lxd, Attr),
    net("bgp.as_path_prepend", ALL, Cluster, Lxd, Attr),
    // Incus's: only a bridge knows its instances' addresses (Incus refuses them
    // elsewhere).
    net("bgp.ipv4.instances", BRIDGE, Cluster, Lxd, Bool),
    net("bgp.ipv6.instances", BRIDGE, Cluster, Lxd, Bool),
];

/// A field of a peer (`bgp.peers.NAME.FIELD`). Peers are the cluster's.
#[derive(Debug)]
pub(crate) struct PeerField {
    pub(crate) key: &'static str,
    pub(crate) source: Source,
}

const fn peer(key: &'static str, source: Source) -> PeerField {
    PeerField { key, source }
}

/// The kinds that hold peers: an OVN network's are its uplink's.
pub(crate) const PEERS_ON: Kinds = UPLINK;

pub(crate) const PEER_FIELDS: &[PeerField] = &[
    // LXD's, and Incus's `interface` (unnumbered peers).
    peer("address", Lxd),
    peer("interface", Lxd),
    peer("asn", Lxd),
    peer("password", Lxd),
    peer("holdtime", Lxd),
    peer("bfd", File),
    peer("bfd.min_interval", File),
    peer("bfd.multiplier", File),
    peer("graceful_restart.time", File),
    peer("export", File),
];

pub(crate) fn server_key(key: &str) -> Option<&'static ServerKey> {
    SERVER_KEYS.iter().find(|k| k.key == key)
}

pub(crate) fn network_key(key: &str) -> Option<&'static NetworkKey> {
    NETWORK_KEYS.iter().find(|k| k.key == key)
}

/// `NAME.FIELD` of a `bgp.peers.` key; None when the field is unknown or the name
/// empty. A peer name may contain dots and so may a field: the longest field the key
/// ends with wins.
pub(crate) fn split_peer_key(rest: &str) -> Option<(&str, &'static PeerField)> {
    PEER_FIELDS
        .iter()
        .filter_map(|f| Some((rest.strip_suffix(f.key)?.strip_suffix('.')?, f)))
        .max_by_key(|(_, f)| f.key.len())
        .filter(|(name, _)| !name.is_empty())
}

/// Whether a live LXD's server key `key` is carried over.
pub(crate) fn server_key_from_lxd(key: &str) -> bool {
    server_key(key).is_some_and(|k| k.source == Lxd)
}

/// Whether a live LXD's key `key` of a `kind` network is carried over: one this
/// table accepts there and takes from LXD.
pub(crate) fn network_key_from_lxd(kind: NetworkKind, key: &str) -> bool {
    match key.strip_prefix("bgp.peers.") {
        Some(rest) => {
            PEERS_ON.has(kind) && split_peer_key(rest).is_some_and(|(_, f)| f.source == Lxd)
        }
        None => network_key(key).is_some_and(|k| k.on.has(kind) && k.source == Lxd),
    }
}

/// Fields of a network as `lxc network show` prints them, accepted and ignored.
pub(in crate::config) const NETWORK_IGNORED: &[&str] = &[
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
pub(in crate::config) const INSTANCE_IGNORED: &[&str] = &[
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
pub(in crate::config) const NIC_IGNORED: &[&str] =
    &["host_name", "name", "mtu", "ipv4.routes", "ipv6.routes"];
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
