//! The configuration file: YAML model, LXD key validation, conf.d merge, member overlay.
//!
//! The file is read into a generic YAML tree (`node`), `conf.d/*.yaml` are deep-merged
//! into it, the selected member's overlay is applied, then `validate` builds the typed
//! [`Config`], collecting every error with its full key path.
mod attrs;
#[cfg(test)]
mod bfd_tests;
#[cfg(test)]
mod check_tests;
mod diagnose;
pub mod diff;
#[cfg(test)]
mod graceful_tests;
pub(crate) mod node;
mod own_addrs;
#[cfg(test)]
mod unnumbered_tests;
pub(crate) use validate::{network_key_from_lxd, parse_kind, server_key_from_lxd, NIC_KEYS};
mod suggest;
#[cfg(test)]
mod tests;
mod validate;
mod values;

pub use diagnose::{check, locate_errors, Diagnostic, Report, Severity, AS_TRANS};

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use ipnet::{Ipv4Net, Ipv6Net};

pub use crate::bgp::wire::ExtraAttrs;
use crate::kernel::Mac;

pub const DEFAULT_HOLD_TIME: u16 = 90;
pub const DEFAULT_GRACEFUL_RESTART_TIME: u16 = 120;
pub const DEFAULT_BGP_PORT: u16 = 179;
/// `bgp.peers.NAME.bfd.min_interval` when unset: bird's and FRR's usual 300 ms.
pub const DEFAULT_BFD_MIN_INTERVAL_MS: u32 = 300;
/// `bgp.peers.NAME.bfd.multiplier` when unset.
pub const DEFAULT_BFD_MULTIPLIER: u8 = 3;

/// A peer's BFD settings (`bgp.peers.NAME.bfd.*`), present when `bfd` is "true".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdSettings {
    /// Both the interval we send at and the one we accept, in milliseconds.
    pub min_interval_ms: u32,
    pub multiplier: u8,
}

impl Default for BfdSettings {
    fn default() -> Self {
        BfdSettings {
            min_interval_ms: DEFAULT_BFD_MIN_INTERVAL_MS,
            multiplier: DEFAULT_BFD_MULTIPLIER,
        }
    }
}

/// A validated configuration, with the member overlay already applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub member: String,
    pub server: ServerConfig,
    pub agent: AgentSettings,
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
    /// `hostbgp.graceful_restart`: false sends no graceful restart capability at all,
    /// so a restart is a plain one (peers drop our routes when the session goes).
    pub graceful_restart: bool,
}

/// The agent's own settings (`hostbgp.*` keys in `config:`): none of them touches a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSettings {
    /// `hostbgp.route_check_interval`: how often the kernel's copy of our routes is
    /// compared with what events said (zero: never).
    pub route_check_interval: std::time::Duration,
    /// `hostbgp.metrics_address`: where Prometheus scrapes `GET /metrics` (off when unset).
    pub metrics_address: Option<SocketAddr>,
    /// `hostbgp.drain_time`: how long a full shutdown advertises GRACEFUL_SHUTDOWN
    /// (RFC 8326) before withdrawing, so routers move traffic first (zero: no drain).
    pub drain_time: std::time::Duration,
}

pub const DEFAULT_DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);
/// The longest `hostbgp.drain_time`: `hostbgp shutdown` waits this long (and a bit) for
/// its reply, and a shutdown that hangs for longer is a stuck host, not a drain.
pub const MAX_DRAIN_TIME_SECS: u32 = 300;

pub const DEFAULT_ROUTE_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            route_check_interval: DEFAULT_ROUTE_CHECK_INTERVAL,
            metrics_address: None,
            drain_time: DEFAULT_DRAIN_TIME,
        }
    }
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
    /// `bgp.ipvN.instances` (Incus; bridges): advertise each running instance's own
    /// address as a /32 (/128).
    pub instances: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub kind: NetworkKind,
    pub ipv4: FamilyConfig<Ipv4Addr, Ipv4Net>,
    pub ipv6: FamilyConfig<Ipv6Addr, Ipv6Net>,
    /// `network` (OVN: the uplink network's name)
    pub uplink: Option<String>,
    pub peers: BTreeMap<String, PeerSettings>,
    /// `forwards`: listen addresses of the network's forwards and load balancers
    /// (LXD's), advertised as /32 and /128 from this host.
    pub forwards: Vec<IpAddr>,
    /// `bgp.communities`, `bgp.large_communities`, `bgp.med`, `bgp.as_path_prepend`.
    pub attrs: ExtraAttrs,
}

/// `bgp.peers.NAME.export`: which prefixes a peer hears.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Export {
    /// Every prefix (LXD's behaviour).
    #[default]
    All,
    /// Only those of the networks declaring the peer: their own, their NICs', and
    /// those of OVN networks using them as uplink.
    Network,
}

impl Export {
    pub fn name(self) -> &'static str {
        match self {
            Export::All => "all",
            Export::Network => "network",
        }
    }
}

/// Where a peer is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Remote {
    /// `address`.
    Address(IpAddr),
    /// `interface` (unnumbered): the router at the other end of this interface,
    /// reached at the IPv6 link-local address its router advertisements come from.
    Interface(String),
}

impl Remote {
    /// The configured address; None for an interface peer.
    pub fn address(&self) -> Option<IpAddr> {
        match self {
            Remote::Address(a) => Some(*a),
            Remote::Interface(_) => None,
        }
    }

    /// The interface of an unnumbered peer.
    pub fn interface(&self) -> Option<&str> {
        match self {
            Remote::Address(_) => None,
            Remote::Interface(i) => Some(i),
        }
    }

    /// For messages: "address 192.0.2.1" or "interface eth1".
    pub fn described(&self) -> String {
        match self {
            Remote::Address(a) => format!("address {a}"),
            Remote::Interface(i) => format!("interface {i}"),
        }
    }
}

/// The address, or the interface's name (how logs and `status` name the peer).
impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remote::Address(a) => a.fmt(f),
            Remote::Interface(i) => f.write_str(i),
        }
    }
}

/// A peer's settings (`bgp.peers.NAME.*`): one network's declaration, or a [`Peer`]'s
/// merged across the networks declaring it. The name is not among them: it is the key
/// of [`Network::peers`], and a [`Peer`] has one per declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSettings {
    pub remote: Remote,
    pub port: u16,
    pub asn: u32,
    pub password: Option<Password>,
    pub hold_time: u16,
    /// `bfd: "true"`: BFD watches the path to the peer.
    pub bfd: Option<BfdSettings>,
    /// `graceful_restart.time`: the restart time offered to this peer; None is the
    /// server's `core.bgp_graceful_restart_time`.
    pub graceful_restart_time: Option<u16>,
    pub export: Export,
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
    /// `hwaddr`: the instance side's MAC, which finds its addresses in the bridge's
    /// neighbour table.
    pub hwaddr: Option<Mac>,
    pub ipv4_address: Option<Ipv4Addr>,
    pub ipv6_address: Option<Ipv6Addr>,
    pub ipv4_routes_external: Vec<Ipv4Net>,
    pub ipv6_routes_external: Vec<Ipv6Net>,
    /// Added to the network's (see [`ExtraAttrs::with`]).
    pub attrs: ExtraAttrs,
}

/// One BGP neighbour: a peer address (or interface) may be declared on several networks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The declarations' (equal in a validated config), but for `export`: `Network`
    /// only when every declaration says so, since a network that leaves the peer at
    /// `all` wants it to hear everything.
    pub settings: PeerSettings,
    /// (network, peer name) pairs declaring it, sorted.
    pub declared_by: Vec<(String, String)>,
}

/// A peer is read as its settings (`peer.asn`): the agent, sessions and BFD use them
/// as the peer's own. Not `DerefMut`: a write has to say `peer.settings`, and only
/// [`Config::peers`] (merging `export`) has one.
impl std::ops::Deref for Peer {
    type Target = PeerSettings;

    fn deref(&self) -> &PeerSettings {
        &self.settings
    }
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

impl std::error::Error for ConfigError {}

/// A TCP MD5 password (`bgp.peers.NAME.password`): compared and handed to the kernel,
/// never printed (Debug shows `<redacted>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(secret: impl Into<String>) -> Password {
        Password(secret.into())
    }

    /// A password the kernel takes: at most `TCP_MD5SIG_MAXKEYLEN` bytes.
    pub fn parse(secret: &str) -> Result<Password, String> {
        let max = crate::bgp::md5::MAX_KEY_LEN;
        if secret.len() > max {
            return Err(format!("must be at most {max} bytes"));
        }
        Ok(Password::new(secret))
    }

    /// The key as the kernel's TCP_MD5SIG takes it.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

fn read_yaml(path: &Path) -> Result<node::Node, ConfigError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        key: label.clone(),
        message: format!("cannot read: {e}"),
    })?;
    node::parse_yaml(&text, &label)
}

/// The `conf.d/*.yaml` files beside `path`, in name order (none if the directory is missing).
pub fn conf_d_files(path: &Path) -> Result<Vec<std::path::PathBuf>, ConfigError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join("conf.d"),
        _ => Path::new("conf.d").to_path_buf(),
    };
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(ConfigError {
                key: dir.display().to_string(),
                message: format!("cannot read directory: {e}"),
            })
        }
    };
    let mut files = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| ConfigError {
            key: dir.display().to_string(),
            message: format!("cannot read directory: {e}"),
        })?;
        let name = ent.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".yaml") {
            continue;
        }
        let p = ent.path();
        if p.is_dir() {
            continue;
        }
        files.push(p);
    }
    files.sort();
    Ok(files)
}

/// Reads `path` and `conf.d/*.yaml` beside it, applies the overlay of `member`, validates.
/// Each error's key starts with the file and line it comes from (see [`check`]).
pub fn load(path: &Path, member: &str) -> Result<Config, Vec<ConfigError>> {
    let report = check(path, member);
    // What `hostbgp check` warns about, a start or a reload says in the log.
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }
    report.into_result()
}

/// Validates a tree made elsewhere (the live LXD source merges the file's tree over
/// LXD's own before this).
pub(crate) fn build(root: node::Node, member: &str) -> Result<Config, Vec<ConfigError>> {
    validate::build(root, member)
}

/// The file and `conf.d/*.yaml` beside it, merged, not yet validated.
pub(crate) fn load_tree(path: &Path) -> Result<node::Node, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut root = match read_yaml(path) {
        Ok(n) => n,
        Err(e) => {
            if std::fs::metadata(path).is_err() {
                return Err(vec![e]);
            }
            // A syntax error: still report the conf.d files' own errors.
            errors.push(e);
            node::Node::Null
        }
    };
    match conf_d_files(path) {
        Ok(files) => {
            for f in files {
                match read_yaml(&f) {
                    Ok(n) => node::merge_document(&mut root, n),
                    Err(e) => errors.push(e),
                }
            }
        }
        Err(e) => errors.push(e),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(root)
}

/// Parses and validates one YAML document (no conf.d).
pub fn parse_str(yaml: &str, member: &str) -> Result<Config, Vec<ConfigError>> {
    let root = node::parse_yaml(yaml, "<input>").map_err(|e| vec![e])?;
    validate::build(root, member)
}

impl Config {
    /// Every distinct peer (by address), merged across the networks declaring it.
    /// Field values come from the first declaration (by network, then peer name); a
    /// validated config has them equal everywhere.
    pub fn peers(&self) -> Vec<Peer> {
        let mut by_addr: BTreeMap<Remote, Peer> = BTreeMap::new();
        for (nname, net) in &self.networks {
            for (pname, p) in &net.peers {
                let peer = by_addr.entry(p.remote.clone()).or_insert_with(|| Peer {
                    settings: PeerSettings {
                        export: Export::Network,
                        ..p.clone()
                    },
                    declared_by: Vec::new(),
                });
                if p.export == Export::All {
                    peer.settings.export = Export::All;
                }
                peer.declared_by.push((nname.clone(), pname.clone()));
            }
        }
        by_addr
            .into_values()
            .map(|mut p| {
                p.declared_by.sort();
                p
            })
            .collect()
    }

    /// The longest restart time offered to any peer: how long after a stop a new
    /// start still counts as a restart for at least one of them.
    pub fn max_graceful_restart_time(&self) -> u16 {
        self.networks
            .values()
            .flat_map(|n| n.peers.values())
            .filter_map(|p| p.graceful_restart_time)
            .fold(self.server.graceful_restart_time, u16::max)
    }
}
