//! The pure mirror of what the kernel holds.
use std::collections::{BTreeMap, HashSet};

use ipnet::IpNet;

use super::{Address, KernelEvent, KernelView, Link, Route, Routes};

/// Compares a dump of our routes, route by route as it arrives, with what events said
/// (`said`), keeping only what differs: a check beside 100k routes holds no copy of
/// them.
pub struct RouteDrift<'a> {
    said: &'a Routes,
    seen: HashSet<IpNet, foldhash::fast::FixedState>,
    /// The kernel's version of each prefix that may differ.
    differs: BTreeMap<IpNet, Route>,
}

impl<'a> RouteDrift<'a> {
    pub fn new(said: &'a Routes) -> Self {
        RouteDrift {
            said,
            seen: HashSet::with_capacity_and_hasher(said.len(), Default::default()),
            differs: BTreeMap::new(),
        }
    }

    /// One route of the dump. IPv6 multipath may come as one message per next hop:
    /// a prefix seen again adds its hops.
    pub fn see(&mut self, mut route: Route) {
        let prefix = route.prefix;
        if !self.seen.insert(prefix) {
            let earlier = self.differs.get(&prefix).or_else(|| self.said.get(&prefix));
            if let Some(earlier) = earlier {
                super::merge_hops(&mut route.next_hops, earlier.next_hops.iter().cloned());
            }
        }
        if self.said.get(&prefix) == Some(&route) {
            self.differs.remove(&prefix);
        } else {
            self.differs.insert(prefix, route);
        }
    }

    /// Each prefix whose route differs, with what the kernel holds (None: nothing).
    pub fn finish(self) -> Vec<(IpNet, Option<Route>)> {
        let mut out: Vec<(IpNet, Option<Route>)> = self
            .differs
            .into_iter()
            .map(|(p, r)| (p, Some(r)))
            .collect();
        out.extend(
            self.said
                .keys()
                .filter(|p| !self.seen.contains(p))
                .map(|p| (*p, None)),
        );
        out.sort_unstable_by_key(|(p, _)| *p);
        out
    }
}

impl KernelView {
    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    /// The addresses of one interface (sorted), empty when it has none.
    pub fn addresses_of(&self, ifindex: u32) -> &[Address] {
        self.addresses
            .get(&ifindex)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The links enslaved to `master` (e.g. the ports of a bridge).
    pub fn ports_of(&self, master: u32) -> impl Iterator<Item = &Link> {
        self.links
            .values()
            .filter(move |l| l.master == Some(master))
    }

    /// Applies one event, as the kernel did; Overrun and Foreign change nothing.
    pub fn apply(&mut self, event: &KernelEvent) {
        match event {
            KernelEvent::LinkChanged(link) => {
                self.links.insert(link.index, link.clone());
            }
            KernelEvent::LinkRemoved(index) => {
                self.links.remove(index);
                // The kernel drops the addresses of a deleted link (their
                // RTM_DELADDR may come before or after); routes through it are
                // flushed too (IPv4 silently), but routes are only ever changed by
                // route events here: the agent re-dumps/reconciles on link events.
                self.addresses.remove(index);
                self.neighbours.remove_link(*index);
            }
            KernelEvent::PortReleased(index) => {
                if let Some(link) = self.links.get_mut(index) {
                    link.master = None;
                }
            }
            KernelEvent::AddressAdded(addr) => {
                let list = self.addresses.entry(addr.ifindex).or_default();
                // The same address/prefix replaces an older entry (tentative -> final).
                list.retain(|a| a.net != addr.net);
                let pos = list.binary_search(addr).unwrap_or_else(|p| p);
                list.insert(pos, addr.clone());
            }
            KernelEvent::AddressRemoved(addr) => {
                if let Some(list) = self.addresses.get_mut(&addr.ifindex) {
                    list.retain(|a| a.net != addr.net);
                    if list.is_empty() {
                        self.addresses.remove(&addr.ifindex);
                    }
                }
            }
            KernelEvent::RouteChanged(route) => {
                self.routes.insert(route.clone());
            }
            KernelEvent::RouteRemoved(prefix) => {
                self.routes.remove(prefix);
            }
            KernelEvent::NeighbourSeen(n) => self.neighbours.insert(*n),
            KernelEvent::NeighbourGone { ifindex, ip } => self.neighbours.remove(*ifindex, ip),
            // Changes only other protocols' routes; what it did to ours comes as a
            // route event of its own.
            KernelEvent::Foreign(_) | KernelEvent::Overrun => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Route, RouteNextHop};
    use super::*;

    fn addr(ifindex: u32, net: &str, tentative: bool) -> Address {
        Address {
            ifindex,
            net: net.parse().unwrap(),
            tentative,
            link_scope: false,
        }
    }

    #[test]
    fn links_and_names() {
        let mut v = KernelView::default();
        v.apply(&KernelEvent::LinkChanged(Link::up(3, "br0", None)));
        v.apply(&KernelEvent::LinkChanged(Link::up(4, "veth0", Some(3))));
        assert_eq!(v.link_by_name("veth0").unwrap().index, 4);
        assert_eq!(v.ports_of(3).count(), 1);
        v.apply(&KernelEvent::LinkChanged(Link::up(4, "veth0", None)));
        assert_eq!(v.ports_of(3).count(), 0);
        v.apply(&KernelEvent::LinkChanged(Link::up(4, "veth0", Some(3))));
        v.apply(&KernelEvent::PortReleased(4));
        assert_eq!(v.ports_of(3).count(), 0);
        v.apply(&KernelEvent::PortReleased(99));
        v.apply(&KernelEvent::AddressAdded(addr(4, "192.0.2.1/24", false)));
        v.apply(&KernelEvent::LinkRemoved(4));
        assert!(v.link_by_name("veth0").is_none());
        assert!(v.addresses_of(4).is_empty());
        v.apply(&KernelEvent::Overrun);
        assert_eq!(v.links.len(), 1);
    }

    #[test]
    fn addresses_sorted_and_tentative_replaced() {
        let mut v = KernelView::default();
        v.apply(&KernelEvent::AddressAdded(addr(3, "2001:db8::1/64", true)));
        v.apply(&KernelEvent::AddressAdded(addr(3, "192.0.2.1/24", false)));
        v.apply(&KernelEvent::AddressAdded(addr(3, "2001:db8::1/64", false)));
        assert_eq!(
            v.addresses_of(3),
            &[
                addr(3, "192.0.2.1/24", false),
                addr(3, "2001:db8::1/64", false)
            ]
        );
        // Duplicate add is idempotent.
        v.apply(&KernelEvent::AddressAdded(addr(3, "192.0.2.1/24", false)));
        assert_eq!(v.addresses_of(3).len(), 2);
        v.apply(&KernelEvent::AddressRemoved(addr(3, "192.0.2.1/24", false)));
        v.apply(&KernelEvent::AddressRemoved(addr(
            3,
            "2001:db8::1/64",
            false,
        )));
        assert!(v.addresses.is_empty());
        // Removing an unknown address is harmless.
        v.apply(&KernelEvent::AddressRemoved(addr(
            9,
            "198.51.100.1/24",
            false,
        )));
    }

    #[test]
    fn routes() {
        let mut v = KernelView::default();
        let r = Route {
            prefix: "203.0.113.5/32".parse().unwrap(),
            next_hops: vec![RouteNextHop {
                ifindex: 3,
                gateway: None,
            }],
        };
        v.apply(&KernelEvent::RouteChanged(r.clone()));
        assert_eq!(v.routes.get(&r.prefix), Some(&r));
        let mut r2 = r.clone();
        r2.next_hops.push(RouteNextHop {
            ifindex: 4,
            gateway: Some("192.0.2.2".parse().unwrap()),
        });
        v.apply(&KernelEvent::RouteChanged(r2.clone()));
        assert_eq!(v.routes.get(&r.prefix), Some(&r2));
        v.apply(&KernelEvent::RouteRemoved(r.prefix));
        assert!(v.routes.is_empty());
    }

    #[test]
    fn drift_names_missing_extra_and_changed_routes() {
        let r = |prefix: &str, hops: &[(u32, Option<&str>)]| Route {
            prefix: prefix.parse().unwrap(),
            next_hops: hops
                .iter()
                .map(|(ifindex, gw)| RouteNextHop {
                    ifindex: *ifindex,
                    gateway: gw.map(|g| g.parse().unwrap()),
                })
                .collect(),
        };
        let mut said = Routes::default();
        said.insert(r("203.0.113.64/28", &[(3, Some("192.0.2.10"))]));
        said.insert(r("203.0.113.80/28", &[(3, None)]));
        said.insert(r("2001:db8:1::/64", &[(3, None), (4, None)]));
        said.insert(r("2001:db8:3::/64", &[(3, None)]));
        let mut same = RouteDrift::new(&said);
        for route in said.values() {
            same.see(route.clone());
        }
        assert_eq!(same.finish(), vec![]);
        let mut d = RouteDrift::new(&said);
        d.see(r("203.0.113.64/28", &[(3, Some("192.0.2.99"))]));
        // A multipath route in two messages, one hop each, equals what was said.
        d.see(r("2001:db8:1::/64", &[(4, None)]));
        d.see(r("2001:db8:1::/64", &[(3, None)]));
        d.see(r("2001:db8:2::/64", &[(3, None)]));
        d.see(r("2001:db8:3::/64", &[(5, None)]));
        let got: Vec<(String, Option<usize>)> = d
            .finish()
            .into_iter()
            .map(|(p, holds)| {
                (
                    p.to_string(),
                    holds.map(|h| h.next_hops[0].ifindex as usize),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("203.0.113.64/28".to_string(), Some(3)),
                ("203.0.113.80/28".to_string(), None),
                ("2001:db8:2::/64".to_string(), Some(3)),
                ("2001:db8:3::/64".to_string(), Some(5)),
            ]
        );
    }

    #[test]
    fn ipv4_routes_are_counted_per_link() {
        let route = |prefix: &str, links: &[u32]| Route {
            prefix: prefix.parse().unwrap(),
            next_hops: links
                .iter()
                .map(|&ifindex| RouteNextHop {
                    ifindex,
                    gateway: None,
                })
                .collect(),
        };
        let mut v = KernelView::default();
        v.apply(&KernelEvent::RouteChanged(route("203.0.113.5/32", &[3, 4])));
        v.apply(&KernelEvent::RouteChanged(route("203.0.113.6/32", &[3])));
        v.apply(&KernelEvent::RouteChanged(route("2001:db8::/64", &[5])));
        assert!(v.routes.ipv4_through(3) && v.routes.ipv4_through(4));
        // The kernel flushes only IPv4 routes silently: IPv6 ones are not counted.
        assert!(!v.routes.ipv4_through(5));
        // A replaced route moves its count to its new links.
        v.apply(&KernelEvent::RouteChanged(route("203.0.113.5/32", &[3])));
        assert!(!v.routes.ipv4_through(4));
        v.apply(&KernelEvent::RouteRemoved(
            "203.0.113.6/32".parse().unwrap(),
        ));
        assert!(v.routes.ipv4_through(3));
        v.apply(&KernelEvent::RouteRemoved(
            "203.0.113.5/32".parse().unwrap(),
        ));
        v.apply(&KernelEvent::RouteRemoved(
            "203.0.113.5/32".parse().unwrap(),
        ));
        assert!(!v.routes.ipv4_through(3));
        assert_eq!(v.routes.len(), 1);
    }
}
