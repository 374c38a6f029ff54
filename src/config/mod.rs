//! The configuration file: YAML model, LXD key validation, conf.d merge, member overlay.
//!
//! SKELETON: the public API below is fixed; bodies are filled in by the config work.
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use ipnet::{Ipv4Net, Ipv6Net};

pub const DEFAULT_HOLD_TIME: u16 = 90;
pub const DEFAULT_GRACEFUL_RESTART_TIME: u16 = 120;
pub const DEFAULT_BGP_PORT: u16 = 179;

/// A validated configuration, with the member overlay already applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub member: String,
    pub server: ServerConfig,
    pub networks: BTreeMap<String, Network>,
    pub instances: BTreeMap<String, Instance>,
    /// Full key paths whose value came from `members.<member>`.
    pub overlay_keys: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// `core.bgp_address`; None means BGP is disabled.
    pub listen: Option<SocketAddr>,
    pub asn: Option<u32>,
    pub router_id: Option<Ipv4Addr>,
    pub graceful_restart_time: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkKind {
    Bridge,
    Physical,
    Ovn,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FamilyConfig<A, N> {
    /// `ipvN.nat`
    pub nat: bool,
    /// `ipvN.nat.address`
    pub nat_address: Option<A>,
    /// `bgp.ipvN.nexthop`
    pub nexthop: Option<A>,
    /// `ipvN.routes.anycast`
    pub routes_anycast: bool,
    /// `ipvN.address` (OVN networks: the network's own subnet, as gateway/len)
    pub address: Option<N>,
    /// `ipvN.routes` (uplinks: prefixes OVN NIC external routes must lie within)
    pub routes: Vec<N>,
    /// `volatile.network.ipvN.address` (OVN: the OVN router's address on the uplink)
    pub ovn_router_address: Option<A>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub kind: NetworkKind,
    pub ipv4: FamilyConfig<Ipv4Addr, Ipv4Net>,
    pub ipv6: FamilyConfig<Ipv6Addr, Ipv6Net>,
    /// `network` (OVN: the uplink network's name)
    pub uplink: Option<String>,
    pub peers: BTreeMap<String, PeerConfig>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub asn: u32,
    pub password: Option<String>,
    pub hold_time: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub location: Option<String>,
    pub nics: BTreeMap<String, Nic>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    pub name: String,
    pub network: String,
    pub host_name: Option<String>,
    pub ipv4_address: Option<Ipv4Addr>,
    pub ipv6_address: Option<Ipv6Addr>,
    pub ipv4_routes_external: Vec<Ipv4Net>,
    pub ipv6_routes_external: Vec<Ipv6Net>,
}

/// One BGP neighbour: a peer address may be declared on several networks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub address: IpAddr,
    pub port: u16,
    pub asn: u32,
    pub password: Option<String>,
    pub hold_time: u16,
    /// (network, peer name) pairs declaring it, sorted.
    pub declared_by: Vec<(String, String)>,
}

/// One problem in the configuration, named by its full key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Reads `path` and `conf.d/*.yaml` beside it, applies the overlay of `member`, validates.
pub fn load(_path: &Path, _member: &str) -> Result<Config, Vec<ConfigError>> {
    todo!()
}

/// Parses and validates one YAML document (no conf.d).
pub fn parse_str(_yaml: &str, _member: &str) -> Result<Config, Vec<ConfigError>> {
    todo!()
}

impl Config {
    /// Every distinct peer (by address), merged across the networks declaring it.
    pub fn peers(&self) -> Vec<Peer> {
        todo!()
    }
}
