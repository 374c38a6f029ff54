//! The kernel side: rtnetlink dumps, multicast watch, and hostbgp's own routes.
//!
//! Layout:
//! - `view.rs`: the pure [`KernelView`] and `apply`.
//! - `netlink.rs`: pure conversion of raw netlink datagrams / parsed messages into
//!   [`KernelEvent`]s (cheap pre-filter on the route header for foreign routes).
//! - `neigh.rs`: neighbour (ARP/NDP) messages and the table of them.
//! - `watch.rs`: the multicast socket and the task that feeds the event channel.
//! - `routes.rs`: the request connection: dump, install, remove (single and pipelined).
//! - `table.rs`: [`RouteTable`], the route requests as a trait (the agent's seam).
//! - `dump.rs`: a lean dump of our routes, one datagram at a time (the periodic check).
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
//! - Routes of other protocols share our prefixes' slots: IPv4 routes are keyed by
//!   (prefix, tos, metric), IPv6 ones by (prefix, metric), so `ip route replace` of
//!   another protocol at our metric takes our route's place, with one RTM_NEWROUTE
//!   carrying NLM_F_REPLACE and no RTM_DELROUTE for ours. Route events of other
//!   tables are dropped after peeking at the table byte; other protocols' events
//!   are parsed and dropped unless they concern a prefix we hold a route for
//!   (`KernelEvent::Foreign`).
//! - A device's neighbour entries are flushed (RTM_DELNEIGH each) when its MAC
//!   changes. A bridge without a fixed MAC takes its ports' lowest, so a port with
//!   that MAC joining or leaving flushes what the bridge learned of every instance;
//!   LXD gives its bridges a fixed MAC (`volatile.bridge.hwaddr`).
//! - A notification carries the port id of the socket whose request caused it
//!   (`nlmsg_pid`, 0 for the kernel's own changes), which tells our own requests'
//!   echoes from anyone else's change to a route of ours.
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Deref;

use ipnet::IpNet;

mod batch;
mod dump;
mod error;
mod neigh;
mod netlink;
mod request;
mod routes;
mod table;
mod view;
mod watch;

#[cfg(test)]
mod tests;

pub use error::KernelError;
pub use neigh::{Mac, Neighbour, Neighbours};
pub(crate) use netlink::messages;
pub use routes::Kernel;
pub use table::{Drift, RouteTable};
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

/// The metric hostbgp's routes get (none is set in the request: the kernel's
/// default for the family).
pub fn own_metric(prefix: &IpNet) -> u32 {
    match prefix {
        IpNet::V4(_) => 0,
        IpNet::V6(_) => 1024,
    }
}

/// Adds `more` to a route's next hops, kept sorted and without repeats: a multipath
/// route may come one next hop per message (IPv6 appends, per-nexthop dumps).
pub(crate) fn merge_hops(
    hops: &mut Vec<RouteNextHop>,
    more: impl IntoIterator<Item = RouteNextHop>,
) {
    hops.extend(more);
    hops.sort();
    hops.dedup();
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
    /// Usable ARP/NDP entries (global addresses only).
    pub neighbours: Neighbours,
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
    /// A neighbour entry became usable or changed its MAC.
    NeighbourSeen(Neighbour),
    /// A neighbour entry was deleted or failed (or never resolved).
    NeighbourGone {
        ifindex: u32,
        ip: IpAddr,
    },
    /// Someone else changed a prefix we hold a route for.
    Foreign(ForeignRoute),
    /// Events were lost (ENOBUFS): re-dump and reconcile.
    Overrun,
}

/// A route event, not caused by hostbgp, on a prefix hostbgp holds a route for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignRoute {
    pub prefix: IpNet,
    /// The other route's protocol (ours when someone else changed our route).
    pub protocol: u8,
    pub metric: u32,
    pub change: ForeignChange,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForeignChange {
    /// Another route appeared beside ours.
    Added,
    /// Another route took our route's place (a `RouteRemoved` for ours precedes it).
    Replaced,
    /// Another route for the prefix went away.
    Removed,
    /// Someone else's request changed our own route (a `RouteChanged` precedes it).
    Tampered,
}

impl ForeignRoute {
    /// Whether the kernel prefers this route to ours (a lower metric wins).
    pub fn shadows_ours(&self) -> bool {
        self.change == ForeignChange::Added && self.metric < own_metric(&self.prefix)
    }
}

/// The name `ip route` prints for a route protocol number.
pub fn protocol_name(protocol: u8) -> String {
    let name = match protocol {
        1 => "redirect",
        2 => "kernel",
        3 => "boot",
        4 => "static",
        9 => "ra",
        11 => "zebra",
        12 => "bird",
        16 => "dhcp",
        42 => "babel",
        186 => "bgp",
        187 => "isis",
        188 => "ospf",
        189 => "rip",
        192 => "eigrp",
        ROUTE_PROTOCOL => "hostbgp",
        n => return format!("proto {n}"),
    };
    format!("proto {name}")
}

impl KernelEvent {
    /// A link or address event: rare, and what instance starts and stops are made of.
    /// Neighbour events are not: ARP/NDP churn on a busy bridge must not make the
    /// watch wait for the agent, and an address learned a millisecond later matters
    /// to no one.
    pub(crate) fn is_interface_event(&self) -> bool {
        !matches!(
            self,
            KernelEvent::RouteChanged(_)
                | KernelEvent::RouteRemoved(_)
                | KernelEvent::NeighbourSeen(_)
                | KernelEvent::NeighbourGone { .. }
                | KernelEvent::Foreign(_)
                | KernelEvent::Overrun
        )
    }
}
