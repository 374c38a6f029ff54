//! A snapshot of LXD's state -> the same YAML tree the file gives (pure).
//!
//! Only what hostbgp's file knows is carried over: LXD's maps hold many keys of no
//! interest here (DHCP, DNS, limits...) that the file's validation would refuse.
//! Which keys is said by the config's key table (`config/validate/keys.rs`): the
//! table validation reads, so what is carried over is a key validation knows.
use std::collections::BTreeMap;

use super::api::{Forward, Instance, Network, Server};
use crate::config::node::Node;
use crate::config::{network_key_from_lxd, parse_kind, server_key_from_lxd};

/// What one fetch of LXD returned (networks already merged with this member's keys).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub server: Server,
    pub networks: Vec<Network>,
    pub instances: Vec<Instance>,
    /// Network name -> its forwards and load balancers.
    pub forwards: BTreeMap<String, Vec<Forward>>,
}

/// The tree, and LXD keys left out that a user might have expected to take effect.
#[derive(Debug, PartialEq, Eq)]
pub struct Converted {
    pub(crate) tree: Node,
    pub ignored: Vec<String>,
}

/// BGP keys other versions know that hostbgp does not act on yet: said once in the
/// log rather than silently dropped.
const NOTED_PREFIXES: &[&str] = &["bgp."];

/// The member this host is: LXD's own name in a cluster (its database is the
/// cluster's source of truth), else the name hostbgp was given.
pub fn member_name(server: &Server, fallback: &str) -> String {
    if server.environment.server_clustered && !server.environment.server_name.is_empty() {
        server.environment.server_name.clone()
    } else {
        fallback.to_string()
    }
}

/// Whether an instance runs here. Standalone, LXD says `none` (or nothing).
pub fn is_local(server: &Server, instance: &Instance) -> bool {
    if server.environment.server_clustered {
        instance.location == server.environment.server_name
    } else {
        matches!(instance.location.as_str(), "" | "none") || {
            instance.location == server.environment.server_name
        }
    }
}

/// The key an instance has in the tree: its name, prefixed by its project outside
/// `default` (as LXD names them on the host: `PROJECT_NAME`).
pub fn instance_key(instance: &Instance) -> String {
    if instance.project.is_empty() || instance.project == "default" {
        instance.name.clone()
    } else {
        format!("{}_{}", instance.project, instance.name)
    }
}

fn scalar(s: &str) -> Node {
    Node::Scalar(s.to_string())
}

fn map(entries: impl IntoIterator<Item = (String, Node)>) -> Node {
    Node::Map(entries.into_iter().collect())
}

pub fn to_tree(snap: &Snapshot, member: &str) -> Converted {
    let mut ignored = Vec::new();
    let mut top = BTreeMap::new();

    let server: BTreeMap<String, Node> = snap
        .server
        .config
        .iter()
        .filter(|(k, v)| server_key_from_lxd(k) && !v.is_empty())
        // LXD reports an unset ASN as 0 in some versions; 0 is no ASN.
        .filter(|(k, v)| !(k.as_str() == "core.bgp_asn" && v.trim() == "0"))
        .map(|(k, v)| (k.clone(), scalar(v)))
        .collect();
    top.insert("config".to_string(), Node::Map(server));

    let mut networks = BTreeMap::new();
    for net in &snap.networks {
        if !net.managed {
            continue;
        }
        let Some(kind) = parse_kind(&net.kind) else {
            continue; // macvlan, sriov: nothing routed or advertised
        };
        let mut config = BTreeMap::new();
        for (k, v) in &net.config {
            if v.is_empty() {
                continue;
            }
            if network_key_from_lxd(kind, k) {
                config.insert(k.clone(), scalar(v));
            } else if NOTED_PREFIXES.iter().any(|p| k.starts_with(p)) {
                ignored.push(format!("networks.{}.config.{k}", net.name));
            }
        }
        let mut node = BTreeMap::new();
        node.insert("type".to_string(), scalar(&net.kind));
        node.insert("config".to_string(), Node::Map(config));
        let forwards: Vec<Node> = snap
            .forwards
            .get(&net.name)
            .into_iter()
            .flatten()
            .filter(|f| forward_is_local(&snap.server, f) && !f.listen_address.is_empty())
            .map(|f| scalar(&f.listen_address))
            .collect();
        if !forwards.is_empty() {
            node.insert("forwards".to_string(), Node::Seq(forwards));
        }
        networks.insert(net.name.clone(), Node::Map(node));
    }

    let mut instances = BTreeMap::new();
    for inst in &snap.instances {
        // A stopped instance has nothing to route or advertise (LXD itself announces
        // a NIC's routes only while it runs), and LXD lets a stopped instance claim
        // the prefix of a running one. One that is starting still reads "Stopped"
        // but has its veth names already: it is kept (its veth on the bridge is what
        // says it runs).
        if !is_local(&snap.server, inst) || (is_stopped(inst) && !has_host_name(inst)) {
            continue;
        }
        let mut devices = BTreeMap::new();
        for (dev, d) in &inst.expanded_devices {
            if d.get("type").map(String::as_str) != Some("nic") {
                continue;
            }
            let Some(network) = nic_network(d, &networks) else {
                continue;
            };
            let mut nic = BTreeMap::new();
            nic.insert("type".to_string(), scalar("nic"));
            nic.insert("network".to_string(), scalar(network));
            // The file's NIC keys, but `network`: resolved above (legacy NICs name
            // their bridge as `parent`).
            for k in crate::config::NIC_KEYS.iter().filter(|k| **k != "network") {
                if let Some(v) = d.get(*k).filter(|v| !v.is_empty()) {
                    nic.insert(k.to_string(), scalar(v));
                }
            }
            let host = inst
                .config
                .get(&format!("volatile.{dev}.host_name"))
                .or_else(|| d.get("host_name"))
                .filter(|h| !h.is_empty());
            if let Some(h) = host {
                nic.insert("host_name".to_string(), scalar(h));
            }
            // LXD keeps a generated MAC in volatile; a set `hwaddr` wins.
            let hwaddr = d
                .get("hwaddr")
                .or_else(|| inst.config.get(&format!("volatile.{dev}.hwaddr")))
                .filter(|h| !h.is_empty());
            if let Some(h) = hwaddr {
                nic.insert("hwaddr".to_string(), scalar(h));
            }
            devices.insert(dev.clone(), Node::Map(nic));
        }
        if devices.is_empty() {
            continue;
        }
        instances.insert(
            instance_key(inst),
            map([
                ("location".to_string(), scalar(member)),
                ("devices".to_string(), Node::Map(devices)),
            ]),
        );
    }
    top.insert("networks".to_string(), Node::Map(networks));
    top.insert("instances".to_string(), Node::Map(instances));
    ignored.sort();
    Converted {
        tree: Node::Map(top),
        ignored,
    }
}

/// A forward is announced by the member holding it (every member, when LXD names none).
fn forward_is_local(server: &Server, f: &Forward) -> bool {
    matches!(f.location.as_str(), "" | "none") || f.location == server.environment.server_name
}

fn is_stopped(inst: &Instance) -> bool {
    inst.status.eq_ignore_ascii_case("stopped")
}

fn has_host_name(inst: &Instance) -> bool {
    inst.config
        .iter()
        .any(|(k, v)| k.starts_with("volatile.") && k.ends_with(".host_name") && !v.is_empty())
}

/// `snap` with `port` as the host side of the NIC whose `volatile.DEV.hwaddr` is
/// `mac`: LXD gives the veth's peer that address before it enslaves the host side,
/// and writes the host side's name to its database only around then. None when no
/// NIC has that address.
pub fn assume_port(snap: &Snapshot, port: &str, mac: &str) -> Option<Snapshot> {
    let (at, dev) = snap.instances.iter().enumerate().find_map(|(i, inst)| {
        inst.config.iter().find_map(|(k, v)| {
            let dev = k.strip_prefix("volatile.")?.strip_suffix(".hwaddr")?;
            v.eq_ignore_ascii_case(mac).then(|| (i, dev.to_string()))
        })
    })?;
    let mut next = snap.clone();
    next.instances[at]
        .config
        .insert(format!("volatile.{dev}.host_name"), port.to_string());
    Some(next)
}

/// Whether `port` is the host side of a NIC LXD told us about.
pub fn knows_port(snap: &Snapshot, port: &str) -> bool {
    snap.instances.iter().any(|i| {
        i.config
            .iter()
            .any(|(k, v)| k.starts_with("volatile.") && k.ends_with(".host_name") && v == port)
            || i.expanded_devices
                .values()
                .any(|d| d.get("host_name").is_some_and(|h| h == port))
    })
}

/// The managed network a NIC is on: `network=` for managed NICs, `parent=` for a
/// legacy `nictype: bridged` NIC on a managed bridge. Others are not ours.
fn nic_network<'a>(
    d: &'a BTreeMap<String, String>,
    networks: &BTreeMap<String, Node>,
) -> Option<&'a str> {
    let name = match d.get("network").filter(|n| !n.is_empty()) {
        Some(n) => n,
        None if d.get("nictype").map(String::as_str) == Some("bridged") => d.get("parent")?,
        None => return None,
    };
    networks.contains_key(name).then_some(name.as_str())
}
