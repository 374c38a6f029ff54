//! Config + KernelView -> Intent: which kernel routes hostbgp wants, and which
//! prefixes it advertises with which next-hop rule. Pure, no I/O.
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::bgp::wire::Family;
use crate::config::{Config, Network, NetworkKind, Nic};
use crate::kernel::{KernelView, Route, RouteNextHop};

/// Who an advertisement or kernel route stands for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    Network(String),
    Instance { instance: String, device: String },
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Network(n) => write!(f, "network/{n}"),
            Owner::Instance { instance, device } => write!(f, "instance/{instance}/{device}"),
        }
    }
}

/// How the next hop of an advertisement is chosen, per session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NextHopRule {
    /// This host: the network's `bgp.ipvN.nexthop` if set, else the session's own address.
    Host(Option<IpAddr>),
    /// A fixed router (OVN: the OVN router's address on the uplink).
    Fixed(IpAddr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    /// Sorted; several owners for an anycast prefix.
    pub owners: Vec<Owner>,
    pub next_hop: NextHopRule,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedRoute {
    pub route: Route,
    pub owners: Vec<Owner>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intent {
    pub adverts: BTreeMap<IpNet, Advert>,
    pub routes: BTreeMap<IpNet, WantedRoute>,
}

pub fn plan(config: &Config, view: &KernelView) -> Intent {
    let mut intent = Intent::default();
    for network in config.networks.values() {
        match network.kind {
            NetworkKind::Bridge => plan_bridge(network, view, &mut intent),
            NetworkKind::Ovn => plan_ovn_network(network, &mut intent),
            NetworkKind::Physical => {}
        }
    }
    for instance in config.instances.values() {
        for nic in instance.nics.values() {
            let owner = Owner::Instance { instance: instance.name.clone(), device: nic.name.clone() };
            let Some(network) = config.networks.get(&nic.network) else { continue };
            match network.kind {
                NetworkKind::Bridge => plan_bridged_nic(nic, network, owner, view, &mut intent),
                NetworkKind::Ovn => {
                    if instance.location.as_deref() == Some(config.member.as_str()) {
                        plan_ovn_nic(nic, network, owner, &mut intent);
                    }
                }
                NetworkKind::Physical => {}
            }
        }
    }
    for wanted in intent.routes.values_mut() {
        normalize_multipath(&mut wanted.route);
    }
    // A NIC's routes are advertised only while the kernel holds them: the kernel is the truth.
    let wanted = &intent.routes;
    intent.adverts.retain(|prefix, advert| {
        let kernel_backed = advert.owners.iter().any(|o| matches!(o, Owner::Instance { .. }))
            && matches!(advert.next_hop, NextHopRule::Host(_))
            && wanted.contains_key(prefix);
        !kernel_backed || view.routes.contains_key(prefix)
    });
    intent
}

fn add_advert(intent: &mut Intent, prefix: IpNet, owner: Owner, next_hop: NextHopRule) {
    let advert = intent.adverts.entry(prefix).or_insert_with(|| Advert { owners: Vec::new(), next_hop });
    if !advert.owners.contains(&owner) {
        advert.owners.push(owner);
        advert.owners.sort();
    }
}

fn host_rule(network: &Network, family: Family) -> NextHopRule {
    NextHopRule::Host(match family {
        Family::Ipv4Unicast => network.ipv4.nexthop.map(IpAddr::V4),
        Family::Ipv6Unicast => network.ipv6.nexthop.map(IpAddr::V6),
    })
}

fn plan_bridge(network: &Network, view: &KernelView, intent: &mut Intent) {
    let Some(link) = view.link_by_name(&network.name) else { return };
    let owner = Owner::Network(network.name.clone());
    for address in view.addresses.get(&link.index).into_iter().flatten() {
        if address.tentative || address.link_scope {
            continue;
        }
        let family = Family::of(&address.net);
        let nat = match family {
            Family::Ipv4Unicast => network.ipv4.nat,
            Family::Ipv6Unicast => network.ipv6.nat,
        };
        if !nat {
            add_advert(intent, address.net.trunc(), owner.clone(), host_rule(network, family));
        }
    }
    if network.ipv4.nat {
        if let Some(a) = network.ipv4.nat_address {
            add_advert(intent, host_v4(a), owner.clone(), host_rule(network, Family::Ipv4Unicast));
        }
    }
    if network.ipv6.nat {
        if let Some(a) = network.ipv6.nat_address {
            add_advert(intent, host_v6(a), owner, host_rule(network, Family::Ipv6Unicast));
        }
    }
}

fn host_v4(a: Ipv4Addr) -> IpNet {
    IpNet::V4(Ipv4Net::from(a))
}

fn host_v6(a: Ipv6Addr) -> IpNet {
    IpNet::V6(Ipv6Net::from(a))
}

fn plan_ovn_network(network: &Network, intent: &mut Intent) {
    let owner = Owner::Network(network.name.clone());
    if let Some(router) = network.ipv4.ovn_router_address {
        let rule = NextHopRule::Fixed(IpAddr::V4(router));
        match (network.ipv4.nat, network.ipv4.address, network.ipv4.nat_address) {
            (false, Some(net), _) => add_advert(intent, IpNet::V4(net.trunc()), owner.clone(), rule),
            (true, _, Some(a)) => add_advert(intent, host_v4(a), owner.clone(), rule),
            _ => {}
        }
    }
    if let Some(router) = network.ipv6.ovn_router_address {
        let rule = NextHopRule::Fixed(IpAddr::V6(router));
        match (network.ipv6.nat, network.ipv6.address, network.ipv6.nat_address) {
            (false, Some(net), _) => add_advert(intent, IpNet::V6(net.trunc()), owner, rule),
            (true, _, Some(a)) => add_advert(intent, host_v6(a), owner, rule),
            _ => {}
        }
    }
}

fn plan_ovn_nic(nic: &Nic, network: &Network, owner: Owner, intent: &mut Intent) {
    if let Some(router) = network.ipv4.ovn_router_address {
        for p in &nic.ipv4_routes_external {
            add_advert(intent, IpNet::V4(*p), owner.clone(), NextHopRule::Fixed(IpAddr::V4(router)));
        }
    }
    if let Some(router) = network.ipv6.ovn_router_address {
        for p in &nic.ipv6_routes_external {
            add_advert(intent, IpNet::V6(*p), owner.clone(), NextHopRule::Fixed(IpAddr::V6(router)));
        }
    }
}

/// A bridged NIC runs while its host-side interface is a port of the (up) bridge.
fn plan_bridged_nic(nic: &Nic, network: &Network, owner: Owner, view: &KernelView, intent: &mut Intent) {
    let Some(bridge) = view.link_by_name(&network.name) else { return };
    let Some(host_name) = &nic.host_name else { return };
    let running = bridge.admin_up
        && view.link_by_name(host_name).is_some_and(|port| port.master == Some(bridge.index));
    if !running {
        return;
    }
    let prefixes = nic
        .ipv4_routes_external
        .iter()
        .map(|p| (IpNet::V4(*p), nic.ipv4_address.map(IpAddr::V4), Family::Ipv4Unicast))
        .chain(
            nic.ipv6_routes_external
                .iter()
                .map(|p| (IpNet::V6(*p), nic.ipv6_address.map(IpAddr::V6), Family::Ipv6Unicast)),
        );
    for (prefix, gateway, family) in prefixes {
        let hop = RouteNextHop { ifindex: bridge.index, gateway };
        let wanted = intent.routes.entry(prefix).or_insert_with(|| WantedRoute {
            route: Route { prefix, next_hops: Vec::new() },
            owners: Vec::new(),
        });
        if !wanted.route.next_hops.contains(&hop) {
            wanted.route.next_hops.push(hop);
            wanted.route.next_hops.sort();
        }
        wanted.owners.push(owner.clone());
        wanted.owners.sort();
        add_advert(intent, prefix, owner.clone(), host_rule(network, family));
    }
}

/// A dev-only hop beside via-hops adds nothing (traffic for the prefix reaches the
/// bridge either way) and IPv6 cannot put gateway-less hops in a multipath route, so
/// the via-hops win.
fn normalize_multipath(route: &mut Route) {
    if route.next_hops.iter().any(|h| h.gateway.is_some()) {
        route.next_hops.retain(|h| h.gateway.is_some());
    }
}

/// What one established session offers for next-hop choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionView {
    /// Our address on the session's TCP connection.
    pub local: IpAddr,
    /// RFC 8950 negotiated: IPv4 prefixes may take an IPv6 next hop.
    pub extended_next_hop_ipv4: bool,
}

/// Picks the next hop of `prefix` for one session, or says why there is none.
pub fn resolve_next_hop(
    prefix: &IpNet,
    rule: &NextHopRule,
    session: &SessionView,
    view: &KernelView,
) -> Result<IpAddr, String> {
    let family = Family::of(prefix);
    let fits = |a: &IpAddr| {
        Family::of(&IpNet::from(*a)) == family
            || (family == Family::Ipv4Unicast && a.is_ipv6() && session.extended_next_hop_ipv4)
    };
    let explicit = match rule {
        NextHopRule::Fixed(a) => Some(*a),
        NextHopRule::Host(over) => *over,
    };
    if let Some(a) = explicit {
        return if fits(&a) {
            Ok(a)
        } else {
            Err(format!("next hop {a} does not suit {family:?} prefixes on this session"))
        };
    }
    if Family::of(&IpNet::from(session.local)) == family {
        return Ok(session.local);
    }
    if let Some(a) = address_beside(session.local, family, view) {
        return Ok(a);
    }
    if family == Family::Ipv4Unicast && session.extended_next_hop_ipv4 {
        return Ok(session.local);
    }
    Err(match family {
        Family::Ipv4Unicast => format!(
            "no IPv4 address on the interface holding {} and extended next hop not negotiated",
            session.local
        ),
        Family::Ipv6Unicast => format!("no global IPv6 address on the interface holding {}", session.local),
    })
}

/// A usable address of `family` on the interface that holds `local`.
fn address_beside(local: IpAddr, family: Family, view: &KernelView) -> Option<IpAddr> {
    let ifindex = view
        .addresses
        .iter()
        .find(|(_, addrs)| addrs.iter().any(|a| a.net.addr() == local))
        .map(|(i, _)| *i)?;
    view.addresses.get(&ifindex)?.iter().find_map(|a| {
        let usable = !a.tentative && !a.link_scope && Family::of(&a.net) == family;
        usable.then(|| a.net.addr())
    })
}

/// Picks a router id when `core.bgp_routerid` is unset: the lowest global IPv4 address,
/// which stays the same across restarts as long as the addresses do.
pub fn default_router_id(view: &KernelView) -> Option<Ipv4Addr> {
    view.addresses
        .values()
        .flatten()
        .filter_map(|a| match a.net.addr() {
            IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified() => Some(v4),
            _ => None,
        })
        .min()
}
