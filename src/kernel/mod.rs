//! The kernel side: rtnetlink dumps, multicast watch, and hostbgp's own routes.
//!
//! Layout:
//! - `view.rs`: the pure [`KernelView`] and `apply`.
//! - `netlink.rs`: pure conversion of raw netlink datagrams / parsed messages into
//!   [`KernelEvent`]s (cheap pre-filter on the route header for foreign routes).
//! - `watch.rs`: the multicast socket and the task that feeds the event channel.
//! - `routes.rs`: the request connection: dump, install, remove (single and pipelined).
//!
//! Kernel behaviour this module relies on (checked on 6.18, see the tests):
//! - IPv4 routes vanish WITHOUT RTM_DELROUTE when their link goes down or is deleted
//!   (a multipath route loses all its hops at once): the agent must react to
//!   LinkChanged/LinkRemoved by re-dumping/reinstalling. IPv6 single-path routes on a
//!   link set down are deleted with an RTM_DELROUTE (and the link's IPv6 addresses
//!   are removed); an IPv6 multipath nexthop on a down link stays, marked dead.
//! - IPv6 multipath routes are notified as one message with RTA_MULTIPATH on add,
//!   replace and delete; `NLM_F_REPLACE` with a smaller set leaves exactly that set
//!   (no delete-then-add needed). When a nexthop's device is deleted, the kernel
//!   sends an RTM_DELROUTE carrying only that nexthop. Older kernels (and
//!   `ip -6 route append`) also add one nexthop per message with NLM_F_APPEND.
//!   The watch task therefore keeps the next-hop set of each of our prefixes
//!   (`netlink::RouteTracker`, seeded by every `dump()`, fed by events, cleared on
//!   overrun): appends are merged, a deletion of a strict subset of the hops becomes
//!   `RouteChanged` with the remaining hops, anything else `RouteRemoved`.
//! - Bridges also send link messages of family AF_BRIDGE for their ports, including
//!   an RTM_DELLINK (AF_BRIDGE) when a port is merely released. All AF_BRIDGE link
//!   messages are ignored: the AF_UNSPEC RTM_NEWLINK without IFLA_MASTER carries the
//!   release, the AF_UNSPEC RTM_DELLINK the deletion.
//! - Route events of other protocols are dropped after peeking at the protocol and
//!   table bytes of `struct rtmsg`, without parsing their attributes.
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Deref;

use ipnet::IpNet;

mod batch;
mod netlink;
mod request;
mod routes;
mod view;
mod watch;

#[cfg(test)]
mod tests;

pub use routes::Kernel;
pub use watch::KernelEvents;

/// hostbgp's route protocol number (`/etc/iproute2/rt_protos.d/hostbgp.conf`).
pub const ROUTE_PROTOCOL: u8 = 201;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Index of the bridge (or bond) this link is enslaved to.
    pub master: Option<u32>,
    /// IFF_UP is set.
    pub admin_up: bool,
    /// IFF_LOWER_UP / operstate up.
    pub oper_up: bool,
}

#[cfg(test)]
impl Link {
    /// A link that is up, for tests.
    pub(crate) fn up(index: u32, name: &str, master: Option<u32>) -> Link {
        Link {
            index,
            name: name.into(),
            master,
            admin_up: true,
            oper_up: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    pub ifindex: u32,
    /// The interface address with its prefix length (e.g. 203.0.113.1/24).
    pub net: IpNet,
    /// IPv6 duplicate address detection not finished yet (IFA_F_TENTATIVE).
    pub tentative: bool,
    /// RT_SCOPE_LINK (IPv6 fe80::/10 and the like).
    pub link_scope: bool,
}

/// One next hop of a route: through `ifindex`, via `gateway` when set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteNextHop {
    pub ifindex: u32,
    pub gateway: Option<IpAddr>,
}

/// A route in the main table carrying hostbgp's protocol number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub prefix: IpNet,
    /// Sorted; more than one makes a multipath route.
    pub next_hops: Vec<RouteNextHop>,
}

/// What the kernel holds that hostbgp cares about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelView {
    pub links: BTreeMap<u32, Link>,
    /// Addresses by interface index, sorted.
    pub addresses: BTreeMap<u32, Vec<Address>>,
    /// hostbgp's own routes (ROUTE_PROTOCOL, main table) by prefix.
    pub routes: Routes,
}

/// hostbgp's routes by prefix, counting the IPv4 next hops through each interface:
/// the kernel flushes those silently when the interface goes down or away, and a
/// host with 100k routes cannot scan them all at every instance stop to find out.
/// Reads go through `Deref` to the map; changes through `insert` and `remove`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    by_prefix: BTreeMap<IpNet, Route>,
    ipv4_hops_by_link: BTreeMap<u32, usize>,
}

impl Deref for Routes {
    type Target = BTreeMap<IpNet, Route>;

    fn deref(&self) -> &Self::Target {
        &self.by_prefix
    }
}

impl Routes {
    /// Adds or replaces the route of its prefix; returns the one it replaced.
    pub fn insert(&mut self, route: Route) -> Option<Route> {
        self.count(&route, true);
        let old = self.by_prefix.insert(route.prefix, route);
        if let Some(old) = &old {
            self.count(old, false);
        }
        old
    }

    pub fn remove(&mut self, prefix: &IpNet) -> Option<Route> {
        let old = self.by_prefix.remove(prefix)?;
        self.count(&old, false);
        Some(old)
    }

    /// Whether any IPv4 route goes through `ifindex`.
    pub fn ipv4_through(&self, ifindex: u32) -> bool {
        self.ipv4_hops_by_link.contains_key(&ifindex)
    }

    fn count(&mut self, route: &Route, add: bool) {
        if !route.prefix.addr().is_ipv4() {
            return;
        }
        for hop in &route.next_hops {
            let n = self.ipv4_hops_by_link.entry(hop.ifindex).or_default();
            if add {
                *n += 1;
            } else {
                *n -= 1;
                if *n == 0 {
                    self.ipv4_hops_by_link.remove(&hop.ifindex);
                }
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelEvent {
    LinkChanged(Link),
    LinkRemoved(u32),
    /// An interface left its bridge (the bridge's AF_BRIDGE RTM_DELLINK). When an
    /// instance stops, this comes before the veth's own removal finishes (by 0.5 ms,
    /// more under load), so its prefixes are withdrawn that much sooner.
    PortReleased(u32),
    AddressAdded(Address),
    AddressRemoved(Address),
    /// One of hostbgp's own routes appeared or changed.
    RouteChanged(Route),
    /// One of hostbgp's own routes is gone.
    RouteRemoved(IpNet),
    /// Events were lost (ENOBUFS): re-dump and reconcile.
    Overrun,
}

impl KernelEvent {
    /// A link or address event: rare, and what instance starts and stops are made of.
    pub(crate) fn is_interface_event(&self) -> bool {
        !matches!(
            self,
            KernelEvent::RouteChanged(_) | KernelEvent::RouteRemoved(_) | KernelEvent::Overrun
        )
    }
}
