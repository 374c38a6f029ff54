//! The keys the configuration knows, by where they go (LXD's names).

/// Server keys that may differ per cluster member.
pub(in crate::config) const LOCAL_SERVER_KEYS: &[&str] = &["core.bgp_address", "core.bgp_routerid"];
pub(in crate::config) const GLOBAL_SERVER_KEYS: &[&str] = &[
    "core.bgp_asn",
    "core.bgp_graceful_restart_time",
    "hostbgp.graceful_restart",
    "hostbgp.route_check_interval",
    "hostbgp.metrics_address",
    "hostbgp.drain_time",
];
/// Network keys that may differ per cluster member.
pub(in crate::config) const LOCAL_NETWORK_KEYS: &[&str] = &["bgp.ipv4.nexthop", "bgp.ipv6.nexthop"];
/// Every network key this file knows (besides `bgp.peers.*` and `user.*`).
pub(in crate::config) const NETWORK_KEYS: &[&str] = &[
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
/// The fields of a peer (`bgp.peers.NAME.FIELD`).
pub(in crate::config) const PEER_KEYS: &[&str] = &[
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
pub(in crate::config) const DOTTED_PEER_KEYS: &[&str] = &[
    "bfd.min_interval",
    "bfd.multiplier",
    "graceful_restart.time",
];
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
