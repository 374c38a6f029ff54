//! Config + KernelView -> Intent: which kernel routes hostbgp wants, and which
//! prefixes it advertises with which next-hop rule. Pure, no I/O.
mod adverts;
pub mod explain;
pub mod export;
mod own_addrs;
mod planner;
#[cfg(test)]
mod proptests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::bgp::wire::Family;
use crate::config::{Config, ExtraAttrs, FamilyConfig, Instance, Network, NetworkKind, Nic};
use crate::kernel::{KernelView, Route};

pub use adverts::{AdvertSet, Adverts, AdvertsBuilder, KindId};
pub use planner::{Delta, Planner, Touched};

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

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Advert {
    /// Sorted; several owners for an anycast prefix.
    pub owners: Owners,
    pub next_hop: NextHopRule,
    /// The path attributes its network and NIC add; like the rule, the first claim's.
    pub attrs: Attrs,
}

/// A network's or NIC's added path attributes, shared like [`Owners`] by all of its
/// prefixes.
pub type Attrs = Arc<ExtraAttrs>;

/// What a NIC's prefixes carry: its network's attributes with its own added.
fn nic_attrs(network: &Network, nic: &Nic) -> Attrs {
    Arc::new(network.attrs.with(&nic.attrs))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedRoute {
    pub route: Route,
    /// Sorted; shared with the NIC's other routes unless several NICs claim the prefix.
    pub owners: Owners,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intent {
    /// What the config alone advertises, under what the kernel adds.
    pub adverts: AdvertSet,
    pub routes: BTreeMap<IpNet, WantedRoute>,
}

/// The whole intent for `config` and `view`, planned from scratch.
pub fn plan(config: &Config, view: &KernelView) -> Intent {
    let mut planner = Planner::new(config);
    planner.rebuild(view);
    planner.into_intent()
}

/// What the config alone advertises: OVN networks, and the OVN NICs of instances on
/// this member (their next hop is the OVN router, whatever the kernel holds).
pub fn plan_static(config: &Config) -> Adverts {
    let mut adverts = AdvertsBuilder::default();
    for network in config.networks.values() {
        if network.kind == NetworkKind::Ovn {
            plan_ovn_network(network, &mut adverts);
        }
        plan_forwards(network, &mut adverts);
    }
    for (instance, nic, network) in nics_on(config, NetworkKind::Ovn) {
        if instance.location.as_deref() == Some(config.member.as_str()) {
            plan_ovn_nic(nic, network, instance_owner(instance, nic), &mut adverts);
        }
    }
    adverts.finish()
}

/// Every NIC attached to a network of `kind`, with its instance and network.
fn nics_on(
    config: &Config,
    kind: NetworkKind,
) -> impl Iterator<Item = (&Instance, &Nic, &Network)> + '_ {
    config.instances.values().flat_map(move |instance| {
        instance.nics.values().filter_map(move |nic| {
            let network = config.networks.get(&nic.network)?;
            (network.kind == kind).then_some((instance, nic, network))
        })
    })
}

fn instance_owner(instance: &Instance, nic: &Nic) -> Owner {
    Owner::Instance {
        instance: instance.name.clone(),
        device: nic.name.clone(),
    }
}

/// Owners are shared by every prefix of one network or NIC, so a million prefixes of
/// one NIC cost one owner list, not a million.
pub type Owners = Arc<[Owner]>;

fn owners_of(owner: Owner) -> Owners {
    Arc::from(vec![owner])
}

/// The sorted union of `a` and `b`, or `None` when `b` adds no one to `a` (so the
/// caller keeps sharing `a`).
fn joined_owners(a: &Owners, b: &Owners) -> Option<Owners> {
    if b.iter().all(|o| a.contains(o)) {
        return None;
    }
    let mut owners: Vec<Owner> = a.iter().chain(b.iter()).cloned().collect();
    owners.sort();
    owners.dedup();
    Some(Owners::from(owners))
}

fn host_rule(network: &Network, family: Family) -> NextHopRule {
    NextHopRule::Host(match family {
        Family::Ipv4Unicast => network.ipv4.nexthop.map(IpAddr::V4),
        Family::Ipv6Unicast => network.ipv6.nexthop.map(IpAddr::V6),
    })
}

fn host_v4(a: Ipv4Addr) -> IpNet {
    IpNet::V4(Ipv4Net::from(a))
}

fn host_v6(a: Ipv6Addr) -> IpNet {
    IpNet::V6(Ipv6Net::from(a))
}

fn advertise(
    adverts: &mut AdvertsBuilder,
    prefix: IpNet,
    (owners, attrs): (&Owners, &Attrs),
    next_hop: NextHopRule,
) {
    let kind = adverts.kind(owners, next_hop, attrs);
    adverts.push(prefix, kind);
}

/// A network's forward and load-balancer addresses, as LXD announces them: one /32 or
/// /128 each, next hop this host (or the network's override); on OVN the OVN router,
/// which holds the forward.
fn plan_forwards(network: &Network, adverts: &mut AdvertsBuilder) {
    if network.forwards.is_empty() {
        return;
    }
    let owners = owners_of(Owner::Network(network.name.clone()));
    let attrs = Arc::new(network.attrs.clone());
    for address in &network.forwards {
        let (prefix, family, router) = match address {
            IpAddr::V4(a) => (
                host_v4(*a),
                Family::Ipv4Unicast,
                network.ipv4.ovn_router_address.map(IpAddr::V4),
            ),
            IpAddr::V6(a) => (
                host_v6(*a),
                Family::Ipv6Unicast,
                network.ipv6.ovn_router_address.map(IpAddr::V6),
            ),
        };
        let rule = match (network.kind, router) {
            (NetworkKind::Ovn, Some(r)) => NextHopRule::Fixed(r),
            (NetworkKind::Ovn, None) => continue,
            _ => host_rule(network, family),
        };
        advertise(adverts, prefix, (&owners, &attrs), rule);
    }
}

/// What an OVN network announces in one family, and through which router: its subnet,
/// or under NAT its NAT address.
fn ovn_network_prefix<A, N>(f: &FamilyConfig<A, N>) -> Option<(IpNet, NextHopRule)>
where
    A: Copy + Into<IpAddr>,
    N: Copy + Into<IpNet>,
{
    let router = f.ovn_router_address?;
    let prefix = match (f.nat, f.address, f.nat_address) {
        (false, Some(net), _) => net.into().trunc(),
        (true, _, Some(a)) => IpNet::from(a.into()),
        _ => return None,
    };
    Some((prefix, NextHopRule::Fixed(router.into())))
}

fn plan_ovn_network(network: &Network, adverts: &mut AdvertsBuilder) {
    let owners = owners_of(Owner::Network(network.name.clone()));
    let attrs = Arc::new(network.attrs.clone());
    let families = [
        ovn_network_prefix(&network.ipv4),
        ovn_network_prefix(&network.ipv6),
    ];
    for (prefix, rule) in families.into_iter().flatten() {
        advertise(adverts, prefix, (&owners, &attrs), rule);
    }
}

fn plan_ovn_nic(nic: &Nic, network: &Network, owner: Owner, adverts: &mut AdvertsBuilder) {
    let owners = owners_of(owner);
    let attrs = nic_attrs(network, nic);
    let mut via = |router: Option<IpAddr>, routes: Vec<IpNet>| {
        if let Some(router) = router {
            let kind = adverts.kind(&owners, NextHopRule::Fixed(router), &attrs);
            for p in routes {
                adverts.push(p, kind);
            }
        }
    };
    via(
        network.ipv4.ovn_router_address.map(IpAddr::V4),
        nic.ipv4_routes_external.iter().map(|&p| p.into()).collect(),
    );
    via(
        network.ipv6.ovn_router_address.map(IpAddr::V6),
        nic.ipv6_routes_external.iter().map(|&p| p.into()).collect(),
    );
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
    family: Family,
    rule: &NextHopRule,
    session: &SessionView,
    view: &KernelView,
) -> Result<IpAddr, String> {
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
            Err(format!(
                "next hop {a} does not suit {family:?} prefixes on this session"
            ))
        };
    }
    // Over a link-local session (unnumbered) a global address of the link comes
    // first; the session adds our link-local beside it.
    let link_local = matches!(session.local, IpAddr::V6(v6) if v6.is_unicast_link_local());
    if Family::of(&IpNet::from(session.local)) == family && !link_local {
        return Ok(session.local);
    }
    if let Some(a) = address_beside(session.local, family, view) {
        return Ok(a);
    }
    if Family::of(&IpNet::from(session.local)) == family {
        return Ok(session.local);
    }
    if family == Family::Ipv4Unicast && session.extended_next_hop_ipv4 {
        return Ok(session.local);
    }
    Err(match family {
        Family::Ipv4Unicast => format!(
            "no IPv4 address on the interface holding {} and extended next hop not negotiated",
            session.local
        ),
        Family::Ipv6Unicast => format!(
            "no global IPv6 address on the interface holding {}",
            session.local
        ),
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
            IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified() => {
                Some(v4)
            }
            _ => None,
        })
        .min()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::{Instance, ServerConfig};
    use crate::kernel::{Address, Link, RouteNextHop};

    pub(super) const BR: u32 = 10;
    const UPLINK: u32 = 2;

    pub(super) fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    pub(super) fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    pub(super) fn family<A, N>() -> FamilyConfig<A, N> {
        FamilyConfig {
            nat: false,
            nat_address: None,
            nexthop: None,
            routes_anycast: false,
            address: None,
            routes: vec![],
            ovn_router_address: None,
            instances: false,
        }
    }

    pub(super) fn bridge(name: &str) -> Network {
        Network {
            name: name.into(),
            kind: NetworkKind::Bridge,
            ipv4: family(),
            ipv6: family(),
            uplink: None,
            peers: BTreeMap::new(),
            forwards: Vec::new(),
            attrs: Default::default(),
        }
    }

    pub(super) fn config(networks: Vec<Network>, instances: Vec<Instance>) -> Config {
        Config {
            member: "node1".into(),
            server: ServerConfig {
                listen: None,
                asn: Some(65010),
                router_id: None,
                graceful_restart_time: 120,
                graceful_restart: true,
            },
            agent: Default::default(),
            networks: networks.into_iter().map(|n| (n.name.clone(), n)).collect(),
            instances: instances.into_iter().map(|i| (i.name.clone(), i)).collect(),
            overlay_keys: vec![],
        }
    }

    pub(super) fn nic(
        network: &str,
        host_name: &str,
        v4: Option<&str>,
        ext4: &[&str],
        ext6: &[&str],
    ) -> Nic {
        Nic {
            name: "eth0".into(),
            network: network.into(),
            host_name: Some(host_name.into()),
            hwaddr: None,
            ipv4_address: v4.map(|a| a.parse().unwrap()),
            ipv6_address: None,
            ipv4_routes_external: ext4.iter().map(|p| p.parse().unwrap()).collect(),
            ipv6_routes_external: ext6.iter().map(|p| p.parse().unwrap()).collect(),
            attrs: Default::default(),
        }
    }

    pub(super) fn instance(name: &str, location: Option<&str>, nic: Nic) -> Instance {
        Instance {
            name: name.into(),
            location: location.map(String::from),
            nics: [(nic.name.clone(), nic)].into_iter().collect(),
        }
    }

    pub(super) fn addr(ifindex: u32, s: &str) -> Address {
        Address {
            ifindex,
            net: net(s),
            tentative: false,
            link_scope: false,
        }
    }

    pub(super) fn view(links: Vec<Link>, addresses: Vec<Address>) -> KernelView {
        let mut v = KernelView::default();
        for l in links {
            v.links.insert(l.index, l);
        }
        for a in addresses {
            v.addresses.entry(a.ifindex).or_default().push(a);
        }
        v
    }

    #[test]
    fn bridge_subnets_follow_the_kernel_and_nat() {
        let mut br = bridge("br0");
        br.ipv6.nat = true;
        let cfg = config(vec![br], vec![]);
        let mut tentative = addr(BR, "2001:db8:100::1/64");
        tentative.tentative = true;
        let mut ll = addr(BR, "fe80::1/64");
        ll.link_scope = true;
        let v = view(
            vec![Link::up(BR, "br0", None)],
            vec![addr(BR, "203.0.113.1/24"), tentative, ll],
        );
        let intent = plan(&cfg, &v);
        let prefixes: Vec<_> = intent.adverts.keys().collect();
        assert_eq!(prefixes, vec![net("203.0.113.0/24")]);
        assert_eq!(
            intent.adverts[&net("203.0.113.0/24")].owners.to_vec(),
            vec![Owner::Network("br0".into())]
        );
        assert!(plan(&cfg, &view(vec![], vec![])).adverts.is_empty());
    }

    #[test]
    fn nat_address_replaces_the_subnet() {
        let mut br = bridge("br0");
        br.ipv4.nat = true;
        br.ipv4.nat_address = Some("198.51.100.9".parse().unwrap());
        br.ipv4.nexthop = Some("198.51.100.1".parse().unwrap());
        let cfg = config(vec![br], vec![]);
        let v = view(
            vec![Link::up(BR, "br0", None)],
            vec![addr(BR, "10.0.0.1/24")],
        );
        let intent = plan(&cfg, &v);
        assert_eq!(
            intent.adverts.keys().collect::<Vec<_>>(),
            vec![net("198.51.100.9/32")]
        );
        assert_eq!(
            intent.adverts[&net("198.51.100.9/32")].next_hop,
            NextHopRule::Host(Some(ip("198.51.100.1")))
        );
    }

    /// br0 with one NIC of instance c1.
    fn br0_with(n: Nic) -> Config {
        config(vec![bridge("br0")], vec![instance("c1", None, n)])
    }

    fn on_br(gateway: Option<&str>) -> RouteNextHop {
        RouteNextHop {
            ifindex: BR,
            gateway: gateway.map(ip),
        }
    }

    #[test]
    fn running_nic_wants_routes_and_advertises_once_installed() {
        let cfg = br0_with(nic(
            "br0",
            "vc1",
            Some("10.0.0.5"),
            &["203.0.113.64/28"],
            &["2001:db8:100:40::/64"],
        ));
        let mut v = view(
            vec![Link::up(BR, "br0", None), Link::up(11, "vc1", Some(BR))],
            vec![],
        );
        let intent = plan(&cfg, &v);
        let r4 = &intent.routes[&net("203.0.113.64/28")].route;
        assert_eq!(r4.next_hops, vec![on_br(Some("10.0.0.5"))]);
        let r6 = &intent.routes[&net("2001:db8:100:40::/64")].route;
        assert_eq!(r6.next_hops, vec![on_br(None)]);
        // Not in the kernel yet: nothing advertised.
        assert!(intent.adverts.is_empty());
        v.routes.insert(r4.clone());
        let intent = plan(&cfg, &v);
        assert_eq!(
            intent.adverts.keys().collect::<Vec<_>>(),
            vec![net("203.0.113.64/28")]
        );
        assert_eq!(
            intent.adverts[&net("203.0.113.64/28")].owners.to_vec(),
            vec![Owner::Instance {
                instance: "c1".into(),
                device: "eth0".into()
            }]
        );
    }

    #[test]
    fn stopped_nic_and_down_bridge_want_nothing() {
        let cfg = br0_with(nic("br0", "vc1", None, &["203.0.113.64/28"], &[]));
        // Port not on the bridge.
        let v = view(
            vec![Link::up(BR, "br0", None), Link::up(11, "vc1", None)],
            vec![],
        );
        assert!(plan(&cfg, &v).routes.is_empty());
        // Port gone.
        let v = view(vec![Link::up(BR, "br0", None)], vec![]);
        assert!(plan(&cfg, &v).routes.is_empty());
        // Bridge down.
        let mut br = Link::up(BR, "br0", None);
        br.admin_up = false;
        let v = view(vec![br, Link::up(11, "vc1", Some(BR))], vec![]);
        assert!(plan(&cfg, &v).routes.is_empty());
    }

    #[test]
    fn anycast_nics_make_one_multipath_route() {
        let mut br = bridge("br0");
        br.ipv4.routes_anycast = true;
        let cfg = config(
            vec![br],
            vec![
                instance(
                    "c1",
                    None,
                    nic("br0", "vc1", Some("10.0.0.5"), &["203.0.113.10/32"], &[]),
                ),
                instance(
                    "c2",
                    None,
                    nic("br0", "vc2", Some("10.0.0.6"), &["203.0.113.10/32"], &[]),
                ),
                instance(
                    "c3",
                    None,
                    nic("br0", "vc3", None, &["203.0.113.10/32"], &[]),
                ),
            ],
        );
        let links = vec![
            Link::up(BR, "br0", None),
            Link::up(11, "vc1", Some(BR)),
            Link::up(12, "vc2", Some(BR)),
            Link::up(13, "vc3", Some(BR)),
        ];
        let intent = plan(&cfg, &view(links.clone(), vec![]));
        let wanted = &intent.routes[&net("203.0.113.10/32")];
        assert_eq!(
            wanted.route.next_hops,
            vec![on_br(Some("10.0.0.5")), on_br(Some("10.0.0.6")),]
        );
        assert_eq!(wanted.owners.len(), 3);
        // One NIC stops: the multipath shrinks.
        let intent = plan(&cfg, &view(links[..2].to_vec(), vec![]));
        assert_eq!(
            intent.routes[&net("203.0.113.10/32")].route.next_hops.len(),
            1
        );
        // Only the address-less NIC runs: a plain device route.
        let intent = plan(
            &cfg,
            &view(vec![links[0].clone(), links[3].clone()], vec![]),
        );
        assert_eq!(
            intent.routes[&net("203.0.113.10/32")].route.next_hops,
            vec![on_br(None)]
        );
    }

    /// An uplink and an OVN network on it: subnet 10.20.0.0/24 behind router
    /// 198.51.100.20.
    fn uplink_and_ovn() -> (Network, Network) {
        let mut uplink = bridge("uplink");
        uplink.kind = NetworkKind::Physical;
        let mut ovn = bridge("ovn1");
        ovn.kind = NetworkKind::Ovn;
        ovn.uplink = Some("uplink".into());
        ovn.ipv4.address = Some("10.20.0.1/24".parse().unwrap());
        ovn.ipv4.ovn_router_address = Some("198.51.100.20".parse().unwrap());
        (uplink, ovn)
    }

    #[test]
    fn ovn_network_and_nic_use_the_ovn_router() {
        let (uplink, ovn) = uplink_and_ovn();
        let here = instance(
            "c1",
            Some("node1"),
            nic("ovn1", "x", None, &["203.0.113.32/28"], &[]),
        );
        let mut there = instance(
            "c2",
            Some("node2"),
            nic("ovn1", "y", None, &["203.0.113.48/28"], &[]),
        );
        there.name = "c2".into();
        let cfg = config(vec![uplink, ovn], vec![here, there]);
        let intent = plan(&cfg, &KernelView::default());
        let keys: Vec<_> = intent.adverts.keys().collect();
        assert_eq!(keys, vec![net("10.20.0.0/24"), net("203.0.113.32/28")]);
        assert!(intent
            .adverts
            .values()
            .all(|a| a.next_hop == NextHopRule::Fixed(ip("198.51.100.20"))));
        assert!(intent.routes.is_empty());
    }

    #[test]
    fn a_nic_adds_its_attributes_to_its_networks() {
        let (uplink, mut ovn) = uplink_and_ovn();
        ovn.attrs = ExtraAttrs {
            med: Some(10),
            communities: vec![1],
            large_communities: vec![],
            as_path_prepend: 2,
        };
        let mut n = nic("ovn1", "x", None, &["203.0.113.32/28"], &[]);
        n.attrs = ExtraAttrs {
            med: Some(20),
            communities: vec![2],
            ..ExtraAttrs::default()
        };
        let cfg = config(vec![uplink, ovn], vec![instance("c1", Some("node1"), n)]);
        let intent = plan(&cfg, &KernelView::default());
        let network = &intent.adverts[&net("10.20.0.0/24")].attrs;
        assert_eq!(
            (network.med, network.communities.clone()),
            (Some(10), vec![1])
        );
        let nic = &intent.adverts[&net("203.0.113.32/28")].attrs;
        assert_eq!(nic.communities, vec![1, 2]);
        assert_eq!((nic.med, nic.as_path_prepend), (Some(20), 2));
    }

    fn session(local: &str, enh: bool) -> SessionView {
        SessionView {
            local: ip(local),
            extended_next_hop_ipv4: enh,
        }
    }

    /// The next hop of `prefix`'s family over a session from `local` (`enh`:
    /// extended next hop negotiated).
    fn next_hop(
        prefix: &str,
        rule: &NextHopRule,
        local: &str,
        enh: bool,
        v: &KernelView,
    ) -> Result<IpAddr, String> {
        resolve_next_hop(Family::of(&net(prefix)), rule, &session(local, enh), v)
    }

    /// The kernel with the link toward the peer, holding `addrs`.
    fn uplink_view(addrs: Vec<Address>) -> KernelView {
        view(vec![Link::up(UPLINK, "eth0", None)], addrs)
    }

    fn ok(a: &str) -> Result<IpAddr, String> {
        Ok(ip(a))
    }

    const V4: &str = "203.0.113.0/24";
    const V6: &str = "2001:db8::/64";

    #[test]
    fn next_hop_is_self_when_families_match() {
        let v = KernelView::default();
        let rule = NextHopRule::Host(None);
        assert_eq!(
            next_hop(V4, &rule, "198.51.100.1", false, &v),
            ok("198.51.100.1")
        );
        assert_eq!(
            next_hop(V6, &rule, "2001:db8:ff::2", false, &v),
            ok("2001:db8:ff::2")
        );
    }

    #[test]
    fn next_hop_of_the_other_family_comes_from_the_interface_toward_the_peer() {
        let v = uplink_view(vec![
            addr(UPLINK, "2001:db8:ff::2/64"),
            addr(UPLINK, "198.51.100.2/24"),
            addr(BR, "203.0.113.1/24"),
        ]);
        let rule = NextHopRule::Host(None);
        assert_eq!(
            next_hop(V4, &rule, "2001:db8:ff::2", false, &v),
            ok("198.51.100.2")
        );
        // Without an IPv4 address there, only extended next hop helps.
        let v = uplink_view(vec![addr(UPLINK, "2001:db8:ff::2/64")]);
        assert!(next_hop(V4, &rule, "2001:db8:ff::2", false, &v).is_err());
        assert_eq!(
            next_hop(V4, &rule, "2001:db8:ff::2", true, &v),
            ok("2001:db8:ff::2")
        );
        // An IPv6 prefix over an IPv4 session never takes an IPv4 (or mapped) next hop.
        let v = uplink_view(vec![addr(UPLINK, "198.51.100.2/24")]);
        let err = next_hop(V6, &rule, "198.51.100.2", true, &v).unwrap_err();
        assert!(err.contains("IPv6"), "{err}");
    }

    /// An unnumbered session runs between link-locals: a global address of the link
    /// is the next hop when there is one, else our link-local (the session adds it as
    /// the link-local next hop too); IPv4 takes it through extended next hop.
    #[test]
    fn next_hop_over_a_link_local_session() {
        let rule = NextHopRule::Host(None);
        let mut ll = addr(UPLINK, "fe80::2/64");
        ll.link_scope = true;
        let bare = uplink_view(vec![ll.clone()]);
        assert_eq!(next_hop(V6, &rule, "fe80::2", true, &bare), ok("fe80::2"));
        assert_eq!(next_hop(V4, &rule, "fe80::2", true, &bare), ok("fe80::2"));
        assert!(next_hop(V4, &rule, "fe80::2", false, &bare).is_err());
        let global = uplink_view(vec![ll, addr(UPLINK, "2001:db8:ff::2/64")]);
        assert_eq!(
            next_hop(V6, &rule, "fe80::2", true, &global),
            ok("2001:db8:ff::2")
        );
    }

    #[test]
    fn override_and_fixed_next_hops_must_fit_the_family() {
        let v = KernelView::default();
        let over = NextHopRule::Host(Some(ip("198.51.100.3")));
        assert_eq!(
            next_hop(V4, &over, "2001:db8:ff::2", false, &v),
            ok("198.51.100.3")
        );
        let fixed6 = NextHopRule::Fixed(ip("2001:db8:ff::20"));
        assert!(next_hop(V4, &fixed6, "198.51.100.2", false, &v).is_err());
        assert_eq!(
            next_hop(V4, &fixed6, "198.51.100.2", true, &v),
            ok("2001:db8:ff::20")
        );
        let fixed4 = NextHopRule::Fixed(ip("198.51.100.20"));
        assert!(next_hop(V6, &fixed4, "2001:db8:ff::2", true, &v).is_err());
    }

    #[test]
    fn router_id_is_the_lowest_usable_ipv4_address() {
        let v = view(
            vec![],
            vec![
                addr(1, "127.0.0.1/8"),
                addr(2, "198.51.100.7/24"),
                addr(3, "192.0.2.9/24"),
                addr(3, "2001:db8::1/64"),
            ],
        );
        assert_eq!(default_router_id(&v), Some("192.0.2.9".parse().unwrap()));
        assert_eq!(default_router_id(&KernelView::default()), None);
    }
}
