//! The pure mirror of what the kernel holds.
use super::{Address, KernelEvent, KernelView, Link};

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
