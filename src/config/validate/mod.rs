//! From a merged YAML tree to a validated [`Config`], collecting every error.
//!
//! - `keys.rs`: the keys known, by where they go;
//! - `server.rs`, `network.rs`, `peer.rs`, `instance.rs`: each part of the tree;
//! - here: the walk over the tree, cluster members, and the error list they share.
use std::collections::{BTreeMap, BTreeSet};

use crate::config::node::Node;
use crate::config::values::{self, Fam};
use crate::config::{Config, ConfigError, NetworkKind};

mod instance;
mod keys;
#[cfg(test)]
mod keys_tests;
mod network;
mod peer;
mod server;

use instance::{check_overlaps, parse_instance, NicContext};
pub(in crate::config) use keys::*;
pub(crate) use keys::{network_key_from_lxd, server_key_from_lxd, NIC_KEYS};
pub(crate) use network::parse_kind;
use network::{check_network_value, check_uplinks, kind_name, parse_network, raw_kind};
use peer::check_peer_conflicts;
use server::parse_server;

#[derive(Default)]
pub(super) struct Errors(Vec<ConfigError>);

impl Errors {
    pub(super) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            key: key.into(),
            message: message.into(),
        });
    }

    /// A set scalar value; None when absent, null or empty (LXD: empty = unset).
    pub(super) fn scalar<'a>(&mut self, key: &str, node: &'a Node) -> Option<&'a str> {
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
    pub(super) fn map<'a>(
        &mut self,
        key: &str,
        node: &'a Node,
    ) -> Option<&'a BTreeMap<String, Node>> {
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

    pub(super) fn check<T>(&mut self, key: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(m) => {
                self.push(key, m);
                None
            }
        }
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
    let nic_context = NicContext {
        networks: &networks,
        broken: &broken_networks,
        live,
    };
    if let Some(n) = top.get("instances") {
        if let Some(m) = e.map("instances", n) {
            for (name, node) in m {
                if let Some(inst) = parse_instance(&mut e, name, node, &nic_context) {
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
                        match server_key(ck) {
                            None => {
                                e.push(ckey, "unknown key");
                                continue;
                            }
                            Some(k) if k.scope == Scope::Cluster => {
                                e.push(ckey, "global key, cannot be set per member");
                                continue;
                            }
                            Some(_) => {}
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
                            let spec = network_key(lk);
                            let Some(spec) = spec.filter(|k| k.scope == Scope::Member) else {
                                if spec.is_some() || lk.starts_with("bgp.peers.") {
                                    e.push(lkey, "global key, cannot be set per member");
                                } else {
                                    e.push(lkey, "unknown key");
                                }
                                continue;
                            };
                            if let Some(kind) = kind.filter(|k| !spec.on.has(*k)) {
                                e.push(
                                    lkey,
                                    format!("not supported on {} networks", kind_name(kind)),
                                );
                                continue;
                            }
                            let ok = match e.scalar(&lkey, lv) {
                                None => !matches!(lv, Node::Map(_) | Node::Seq(_)),
                                Some(s) => e.check(&lkey, check_network_value(spec, s)).is_some(),
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
