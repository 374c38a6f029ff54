//! The kernel side: rtnetlink dumps, multicast watch, and hostbgp's own routes.
//!
//! SKELETON: the public API below is fixed; bodies are filled in by the kernel work.
use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;

use ipnet::IpNet;
use tokio::sync::mpsc;

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
    pub routes: BTreeMap<IpNet, Route>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelEvent {
    LinkChanged(Link),
    LinkRemoved(u32),
    AddressAdded(Address),
    AddressRemoved(Address),
    /// One of hostbgp's own routes appeared or changed.
    RouteChanged(Route),
    /// One of hostbgp's own routes is gone.
    RouteRemoved(IpNet),
    /// Events were lost (ENOBUFS): re-dump and reconcile.
    Overrun,
}

impl KernelView {
    pub fn link_by_name(&self, _name: &str) -> Option<&Link> {
        todo!()
    }
    /// Applies one event, as the kernel did; Overrun changes nothing.
    pub fn apply(&mut self, _event: &KernelEvent) {
        todo!()
    }
}

/// A handle to the kernel's routing tables.
#[derive(Clone)]
pub struct Kernel {
    _private: (),
}

impl Kernel {
    /// Opens the request connection and the multicast watch; events arrive on the receiver.
    pub async fn connect() -> io::Result<(Kernel, mpsc::UnboundedReceiver<KernelEvent>)> {
        todo!()
    }
    /// A consistent snapshot: links, addresses, and hostbgp's own routes.
    pub async fn dump(&self) -> io::Result<KernelView> {
        todo!()
    }
    /// Installs or replaces a route with hostbgp's protocol number (idempotent).
    pub async fn install_route(&self, _route: &Route) -> io::Result<()> {
        todo!()
    }
    /// Removes one of hostbgp's routes; a route already gone is not an error.
    pub async fn remove_route(&self, _prefix: &IpNet) -> io::Result<()> {
        todo!()
    }
}
