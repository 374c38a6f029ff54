//! The file's tree merged over LXD's, validated into one [`Config`] (pure).
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::convert::{self, Snapshot};
use super::socket::Flavor;
use crate::config::node::{merge, Node};
use crate::config::{self, Config, ConfigError};

/// What the file's `lxd:` / `incus:` key asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSettings {
    pub flavor: Flavor,
    pub socket: Option<PathBuf>,
}

/// The live source the file turns on, if any (a malformed key is left to validation).
pub(crate) fn live_settings(file: &Node) -> Option<LiveSettings> {
    let Node::Map(top) = file else { return None };
    let (flavor, node) = match (top.get("lxd"), top.get("incus")) {
        (Some(n), _) => (Flavor::Lxd, n),
        (None, Some(n)) => (Flavor::Incus, n),
        (None, None) => return None,
    };
    let socket = match node {
        Node::Map(m) => match m.get("socket") {
            Some(Node::Scalar(s)) if !s.is_empty() => Some(PathBuf::from(s)),
            _ => None,
        },
        _ => None,
    };
    Some(LiveSettings { flavor, socket })
}

/// The config for `member`: LXD's state with the file's own keys merged over it, key
/// by key. An instance LXD describes in a way hostbgp refuses (an overlap, a value
/// it cannot read) is left out with its errors rather than stopping every update;
/// `dropped` gets those errors. Any other error refuses the whole result.
pub(crate) fn compose(
    file: &Node,
    snapshot: &Snapshot,
    fallback_member: &str,
    dropped: &mut Vec<ConfigError>,
) -> Result<Config, Vec<ConfigError>> {
    let member = convert::member_name(&snapshot.server, fallback_member);
    let mut tree = convert::to_tree(snapshot, &member).tree;
    merge(&mut tree, file.clone());
    drop_incomplete_peers(&mut tree, file);
    match config::build(tree.clone(), &member) {
        Ok(c) => Ok(c),
        Err(errors) => {
            let culprits: BTreeSet<String> = errors.iter().filter_map(instance_of).collect();
            let only_instances = errors.iter().all(|e| instance_of(e).is_some());
            if culprits.is_empty() || !only_instances {
                return Err(errors);
            }
            if let Node::Map(top) = &mut tree {
                if let Some(Node::Map(instances)) = top.get_mut("instances") {
                    instances.retain(|name, _| !culprits.contains(name));
                }
            }
            let config = config::build(tree, &member)?;
            dropped.extend(errors);
            Ok(config)
        }
    }
}

/// LXD keeps a peer with only some of its keys (no address or ASN yet) and ignores
/// it; so does hostbgp, unless the file names that peer. An Incus peer with an
/// `interface` instead of an address (unnumbered) is complete.
fn drop_incomplete_peers(tree: &mut Node, file: &Node) {
    let Some(networks) = child_map(tree, "networks") else {
        return;
    };
    for (net, node) in networks.iter_mut() {
        let Some(config) = child_map(node, "config") else {
            continue;
        };
        let mut fields: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for k in config.keys() {
            if let Some((peer, field)) = k
                .strip_prefix("bgp.peers.")
                .and_then(|r| r.rsplit_once('.'))
            {
                fields
                    .entry(peer.to_string())
                    .or_default()
                    .insert(field.to_string());
            }
        }
        let in_file = |peer: &str| {
            let prefix = format!("bgp.peers.{peer}.");
            file_config_keys(file, net).any(|k| k.starts_with(&prefix))
        };
        for (peer, f) in fields {
            let located = f.contains("address") || f.contains("interface");
            if (located && f.contains("asn")) || in_file(&peer) {
                continue;
            }
            tracing::debug!("network {net}: peer {peer} is incomplete in LXD, ignored");
            let prefix = format!("bgp.peers.{peer}.");
            config.retain(|k, _| !k.starts_with(&prefix));
        }
    }
}

fn child_map<'a>(node: &'a mut Node, key: &str) -> Option<&'a mut BTreeMap<String, Node>> {
    match node {
        Node::Map(m) => match m.get_mut(key) {
            Some(Node::Map(c)) => Some(c),
            _ => None,
        },
        _ => None,
    }
}

/// The keys the file sets in `networks.NET.config`.
fn file_config_keys<'a>(file: &'a Node, net: &str) -> impl Iterator<Item = &'a String> + 'a {
    let config = match file {
        Node::Map(top) => match top.get("networks") {
            Some(Node::Map(nets)) => match nets.get(net) {
                Some(Node::Map(n)) => match n.get("config") {
                    Some(Node::Map(c)) => Some(c),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        },
        _ => None,
    };
    config.into_iter().flat_map(|c| c.keys())
}

/// The instance an error is about, from its key (`instances.NAME.…`).
fn instance_of(e: &ConfigError) -> Option<String> {
    let rest = e.key.strip_prefix("instances.")?;
    // Instance names have no dots (LXD allows letters, digits and dashes).
    Some(rest.split('.').next()?.to_string())
}

/// `hostbgp check` with a live source: the file alone, where what LXD will supply is
/// a note, not an error. Returns (errors, expected from LXD).
pub(crate) fn check_file(file: Node, member: &str) -> (Vec<ConfigError>, Vec<ConfigError>) {
    match config::build(file, member) {
        Ok(_) => (Vec::new(), Vec::new()),
        Err(errors) => errors.into_iter().partition(|e| !expected_from_lxd(e)),
    }
}

/// Errors that only say something is missing which LXD holds: the ASN, a network's
/// type, a network only LXD declares, a NIC's device type and network.
fn expected_from_lxd(e: &ConfigError) -> bool {
    let k = e.key.as_str();
    let m = e.message.as_str();
    (k == "config.core.bgp_asn" && m.starts_with("required"))
        || (k.starts_with("networks.") && k.ends_with(".type") && m.starts_with("required"))
        || (k.starts_with("instances.")
            && (k.ends_with(".type") || k.ends_with(".network"))
            && m.starts_with("required"))
        || m.starts_with("unknown network")
}
