//! Instances' own addresses (`bgp.ipvN.instances`, from Incus): each running
//! instance on such a bridge is advertised as a /32 (/128), its NIC's static
//! `ipvN.address`, else the addresses the bridge's neighbour table holds for its MAC.
//! No kernel route is needed: the address is on-link on the bridge.
//!
//! A neighbour entry only supplies the address; whether the instance runs is its
//! veth's presence on the bridge, as for its external routes. A stopped instance's
//! STALE entry lingers until the kernel's GC, and must not keep it advertised.
use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{host_v4, host_v6};
use crate::config::{Network, Nic};
use crate::kernel::{KernelView, Mac};

/// Where one NIC's own addresses come from.
#[derive(Clone, Debug)]
pub(super) struct OwnAddrs {
    pub(super) hwaddr: Option<Mac>,
    /// Per family (IPv4, IPv6): the network's `bgp.ipvN.instances`.
    enabled: [bool; 2],
    /// Per family: the NIC's static `ipvN.address`, which wins over the neighbours.
    statics: [Option<IpAddr>; 2],
    /// Per family: the network's `ipvN.address` subnet; unset, the subnets of the
    /// bridge's own global addresses.
    subnets: [Option<IpNet>; 2],
}

impl OwnAddrs {
    /// None when the network advertises no instance address.
    pub(super) fn new(network: &Network, nic: &Nic) -> Option<OwnAddrs> {
        let enabled = [network.ipv4.instances, network.ipv6.instances];
        (enabled != [false, false]).then(|| OwnAddrs {
            hwaddr: nic.hwaddr,
            enabled,
            statics: [
                nic.ipv4_address.map(IpAddr::V4),
                nic.ipv6_address.map(IpAddr::V6),
            ],
            subnets: [
                network.ipv4.address.map(|n| IpNet::V4(n.trunc())),
                network.ipv6.address.map(|n| IpNet::V6(n.trunc())),
            ],
        })
    }

    /// The host prefixes of the NIC while it runs on `bridge`, sorted.
    pub(super) fn plan(&self, bridge: u32, view: &KernelView) -> Vec<IpNet> {
        let mut out = Vec::new();
        for family in [0, 1] {
            if !self.enabled[family] {
                continue;
            }
            if let Some(a) = self.statics[family] {
                out.push(host(a));
                continue;
            }
            let Some(mac) = self.hwaddr else { continue };
            let learned = view.neighbours.addresses_of(bridge, mac);
            out.extend(
                learned
                    .filter(|ip| usize::from(ip.is_ipv6()) == family)
                    .filter(|ip| self.on_bridge(family, ip, bridge, view))
                    .map(host),
            );
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether `ip` is inside the bridge's subnet: a neighbour of another subnet (a
    /// router's, a misconfigured instance's) is not this network's instance.
    fn on_bridge(&self, family: usize, ip: &IpAddr, bridge: u32, view: &KernelView) -> bool {
        match self.subnets[family] {
            Some(subnet) => subnet.contains(ip),
            None => view
                .addresses_of(bridge)
                .iter()
                .any(|a| !a.tentative && !a.link_scope && a.net.contains(ip)),
        }
    }

    /// The families whose key is on, for `hostbgp routes --all`.
    pub(super) fn enabled(&self) -> impl Iterator<Item = usize> + '_ {
        (0..2).filter(|&f| self.enabled[f])
    }

    /// Why the NIC running on `bridge` has no address of `family` (key on), for
    /// `hostbgp routes --all`.
    pub(super) fn missing(&self, family: usize, bridge: u32, view: &KernelView) -> Option<String> {
        let key = ["ipv4", "ipv6"][family];
        if self.statics[family].is_some() {
            return None;
        }
        let Some(mac) = self.hwaddr else {
            return Some(format!("the NIC has neither {key}.address nor hwaddr"));
        };
        let planned = self.plan(bridge, view);
        if planned
            .iter()
            .any(|p| usize::from(p.addr().is_ipv6()) == family)
        {
            return None;
        }
        Some(format!(
            "no {key}.address, and the bridge's neighbour table has no {key} address of {mac} in the network's subnet"
        ))
    }
}

fn host(a: IpAddr) -> IpNet {
    match a {
        IpAddr::V4(a) => host_v4(a),
        IpAddr::V6(a) => host_v6(a),
    }
}

/// What each NIC advertises of its own addresses now, and who claims each prefix.
#[derive(Clone, Debug, Default)]
pub(super) struct OwnClaims {
    per_nic: BTreeMap<u32, Vec<IpNet>>,
    /// Claimants in NIC order (two instances answering for one address: both).
    by_prefix: BTreeMap<IpNet, Vec<u32>>,
}

impl OwnClaims {
    /// Sets NIC `id`'s prefixes, adding those that changed to `dirty`.
    pub(super) fn set(&mut self, id: u32, now: Vec<IpNet>, dirty: &mut Vec<IpNet>) {
        let before = if now.is_empty() {
            self.per_nic.remove(&id).unwrap_or_default()
        } else {
            self.per_nic.insert(id, now.clone()).unwrap_or_default()
        };
        for p in before.iter().filter(|p| !now.contains(p)) {
            if let Some(ids) = self.by_prefix.get_mut(p) {
                ids.retain(|&i| i != id);
                if ids.is_empty() {
                    self.by_prefix.remove(p);
                }
            }
            dirty.push(*p);
        }
        for p in now.iter().filter(|p| !before.contains(p)) {
            let ids = self.by_prefix.entry(*p).or_default();
            if let Err(at) = ids.binary_search(&id) {
                ids.insert(at, id);
            }
            dirty.push(*p);
        }
    }

    pub(super) fn claimants(&self, prefix: &IpNet) -> &[u32] {
        self.by_prefix.get(prefix).map_or(&[], Vec::as_slice)
    }

    pub(super) fn clear(&mut self) {
        self.per_nic.clear();
        self.by_prefix.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{addr, bridge, config, instance, ip, net, nic, view, BR};
    use super::super::{plan, Advert, NextHopRule, Owner, Planner, Touched};
    use crate::config::Config;
    use crate::kernel::{KernelEvent, KernelView, Link, Mac, Neighbour};

    const PORT: u32 = BR + 1;
    const MAC: Mac = Mac([0, 0x16, 0x3e, 0, 0, 1]);
    const OTHER: Mac = Mac([0, 0x16, 0x3e, 0, 0, 2]);

    fn lab(v4_static: Option<&str>, v6: bool) -> Config {
        let mut br = bridge("br0");
        br.ipv4.instances = true;
        br.ipv6.instances = v6;
        br.ipv4.address = Some("192.0.2.1/24".parse().unwrap());
        br.attrs.med = Some(7);
        let mut n = nic("br0", "vc1", v4_static, &[], &[]);
        n.hwaddr = Some(MAC);
        n.attrs.communities = vec![65000 << 16 | 1];
        config(vec![br], vec![instance("c1", None, n)])
    }

    fn running() -> KernelView {
        view(
            vec![Link::up(BR, "br0", None), Link::up(PORT, "vc1", Some(BR))],
            vec![addr(BR, "192.0.2.1/24"), addr(BR, "2001:db8::1/64")],
        )
    }

    fn seen(ip: &str, mac: Mac) -> KernelEvent {
        KernelEvent::NeighbourSeen(Neighbour {
            ifindex: BR,
            ip: super::super::tests::ip(ip),
            mac,
        })
    }

    fn own(intent: &super::super::Intent) -> Vec<String> {
        intent
            .adverts
            .keys()
            .filter(|p| p.prefix_len() == p.max_prefix_len())
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn learned_addresses_in_the_subnet_are_advertised_with_the_nics_attributes() {
        let cfg = lab(None, true);
        let mut v = running();
        for e in [
            seen("192.0.2.10", MAC),
            seen("2001:db8::10", MAC),
            // Outside the network's subnet, another instance's, link-local never
            // reaches the view.
            seen("198.51.100.5", MAC),
            seen("192.0.2.20", OTHER),
        ] {
            v.apply(&e);
        }
        let intent = plan(&cfg, &v);
        assert_eq!(own(&intent), ["192.0.2.10/32", "2001:db8::10/128"]);
        let advert: &Advert = &intent.adverts[&net("192.0.2.10/32")];
        assert_eq!(
            advert.owners.to_vec(),
            vec![Owner::Instance {
                instance: "c1".into(),
                device: "eth0".into()
            }]
        );
        assert_eq!(advert.next_hop, NextHopRule::Host(None));
        assert_eq!(advert.attrs.med, Some(7));
        assert_eq!(advert.attrs.communities, vec![65000 << 16 | 1]);
        // On-link: no kernel route.
        assert!(intent.routes.is_empty());
        // IPv6 without a configured subnet: the bridge's own addresses say.
        v.apply(&seen("2001:db8:ff::10", MAC));
        assert_eq!(own(&plan(&cfg, &v)).len(), 2);
        // Key off for IPv6: IPv4 only.
        assert_eq!(own(&plan(&lab(None, false), &v)), ["192.0.2.10/32"]);
    }

    #[test]
    fn a_static_address_wins_and_needs_no_neighbour() {
        let cfg = lab(Some("192.0.2.77"), false);
        let mut v = running();
        v.apply(&seen("192.0.2.10", MAC));
        assert_eq!(own(&plan(&cfg, &v)), ["192.0.2.77/32"]);
        // Stopped: nothing, whatever lingers in the neighbour table.
        v.apply(&KernelEvent::PortReleased(PORT));
        assert!(own(&plan(&cfg, &v)).is_empty());
    }

    #[test]
    fn events_move_only_what_they_touch() {
        let cfg = lab(None, true);
        let mut v = running();
        let mut planner = Planner::new(&cfg);
        planner.rebuild(&v);
        let mut step = |v: &mut KernelView, e: KernelEvent| {
            let mut touched = Touched::default();
            let changes = touched.note(v, &e);
            v.apply(&e);
            let delta = planner.update(v, &touched);
            assert_eq!(planner.intent(), &plan(&cfg, v));
            (
                changes,
                delta
                    .adverts
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            step(&mut v, seen("192.0.2.10", MAC)),
            (true, vec!["192.0.2.10/32".into()])
        );
        // Reachability churn: the same MAC again changes nothing.
        assert_eq!(step(&mut v, seen("192.0.2.10", MAC)), (false, vec![]));
        // The address taken over by another MAC: withdrawn.
        assert_eq!(
            step(&mut v, seen("192.0.2.10", OTHER)),
            (true, vec!["192.0.2.10/32".into()])
        );
        assert_eq!(step(&mut v, seen("192.0.2.10", MAC)).1, ["192.0.2.10/32"]);
        // The instance stops: withdrawn though the entry lingers; starts: back.
        assert_eq!(
            step(&mut v, KernelEvent::PortReleased(PORT)).1,
            ["192.0.2.10/32"]
        );
        let port = Link::up(PORT, "vc1", Some(BR));
        assert_eq!(
            step(&mut v, KernelEvent::LinkChanged(port)).1,
            ["192.0.2.10/32"]
        );
        let gone = KernelEvent::NeighbourGone {
            ifindex: BR,
            ip: ip("192.0.2.10"),
        };
        assert_eq!(
            step(&mut v, gone.clone()),
            (true, vec!["192.0.2.10/32".into()])
        );
        assert_eq!(step(&mut v, gone), (false, vec![]));
    }

    #[test]
    fn routes_all_says_why_an_instance_address_is_missing() {
        struct NoTrouble;
        impl super::super::explain::RouteTrouble for NoTrouble {
            fn trouble(&self, _: &ipnet::IpNet) -> Option<String> {
                None
            }
        }
        let reasons = |cfg: &Config, v: &KernelView| -> Vec<String> {
            super::super::explain::not_advertised(cfg, v, &plan(cfg, v), &NoTrouble)
                .into_iter()
                .filter(|n| n.owner == "instance/c1/eth0")
                .map(|n| n.reason)
                .collect()
        };
        let cfg = lab(None, true);
        let mut v = running();
        assert_eq!(
            reasons(&cfg, &v),
            [
                "bgp.ipv4.instances: no ipv4.address, and the bridge's neighbour table has no ipv4 address of 00:16:3e:00:00:01 in the network's subnet",
                "bgp.ipv6.instances: no ipv6.address, and the bridge's neighbour table has no ipv6 address of 00:16:3e:00:00:01 in the network's subnet",
            ]
        );
        v.apply(&seen("192.0.2.10", MAC));
        assert_eq!(reasons(&cfg, &v).len(), 1);
        v.apply(&KernelEvent::PortReleased(PORT));
        assert_eq!(
            reasons(&cfg, &v)[0],
            "bgp.ipv4.instances: instance stopped: vc1 is not a port of br0"
        );
    }
}
