//! `instances.NAME.devices`: NICs, their external routes, and the overlaps between
//! them and the networks.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::keys::*;
use super::Errors;
use crate::config::attrs::{self, ATTR_KEYS};
use crate::config::node::Node;
use crate::config::values::{self, Fam};
use crate::config::{Instance, Network, NetworkKind, Nic};

/// What an instance's NICs are checked against.
pub(super) struct NicContext<'a> {
    /// The networks that parsed.
    pub(super) networks: &'a BTreeMap<String, Network>,
    /// The networks that did not: a NIC on one of them is not blamed for it.
    pub(super) broken: &'a BTreeSet<String>,
    /// The instances come from a live LXD or Incus server (`lxd:` or `incus:`), which
    /// names each running NIC's host side itself: a bridged NIC needs no host_name.
    pub(super) live: bool,
}

pub(super) fn parse_instance(
    e: &mut Errors,
    name: &str,
    node: &Node,
    cx: &NicContext,
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
                    if let Some(nic) = parse_nic(e, &format!("{key}.{dev}"), dev, dn, cx) {
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

fn parse_nic(e: &mut Errors, base: &str, dev: &str, node: &Node, cx: &NicContext) -> Option<Nic> {
    let NicContext {
        networks,
        broken,
        live,
    } = *cx;
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
        attrs: crate::config::ExtraAttrs::default(),
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
            let checks = [
                (
                    nets(&nic.ipv4_routes_external),
                    nets(&up.ipv4.routes),
                    Fam::V4,
                ),
                (
                    nets(&nic.ipv6_routes_external),
                    nets(&up.ipv6.routes),
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

/// Prefixes of one family as `IpNet`s.
fn nets<N: Copy + Into<IpNet>>(prefixes: &[N]) -> Vec<IpNet> {
    prefixes.iter().copied().map(Into::into).collect()
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

pub(super) fn check_overlaps(
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
            let key = |fam: Fam| {
                let key = format!("{base}.{}.routes.external", fam.key());
                (key, anycast(networks, nic, fam))
            };
            add_owned(&mut keys, &mut v4, &nic.ipv4_routes_external, || {
                key(Fam::V4)
            });
            add_owned(&mut keys, &mut v6, &nic.ipv6_routes_external, || {
                key(Fam::V6)
            });
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

/// Adds one NIC's external routes of a family to `owned`, under a new entry of `keys`
/// made by `key` (only when there are routes).
fn add_owned<P: Copy>(
    keys: &mut Vec<(String, bool)>,
    owned: &mut Vec<(P, u32)>,
    prefixes: &[P],
    key: impl FnOnce() -> (String, bool),
) {
    if prefixes.is_empty() {
        return;
    }
    keys.push(key());
    let owner = (keys.len() - 1) as u32;
    owned.extend(prefixes.iter().map(|p| (*p, owner)));
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
