//! Pure conversion of rtnetlink messages into hostbgp's types and events.
use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use libc::{
    RTM_DELADDR, RTM_DELLINK, RTM_DELNEIGH, RTM_DELROUTE, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWNEIGH,
    RTM_NEWROUTE, RT_TABLE_COMPAT,
};
use netlink_packet_core::{
    NlasIterator, Parseable, ParseableParametrized, NLMSG_OVERRUN, NLM_F_APPEND, NLM_F_REPLACE,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkHeader, LinkMessage, State};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteType, RouteVia,
};
use netlink_packet_route::AddressFamily;

use super::{
    merge_hops, neigh, own_metric, Address, ForeignChange, ForeignRoute, KernelEvent, Link, Route,
    RouteNextHop, ROUTE_PROTOCOL,
};

pub(crate) const NLMSG_HDRLEN: usize = 16;
/// Offsets in `struct rtmsg`.
const RTM_TABLE_OFFSET: usize = 4;
const RTM_PROTOCOL_OFFSET: usize = 5;
/// Address families as the family byte of `ifinfomsg`, `rtmsg` and `ndmsg` (libc's are
/// `c_int`s; every family number fits the byte).
pub(crate) const AF_UNSPEC: u8 = libc::AF_UNSPEC as u8;
pub(crate) const AF_INET: u8 = libc::AF_INET as u8;
pub(crate) const AF_INET6: u8 = libc::AF_INET6 as u8;
pub(crate) const AF_BRIDGE: u8 = libc::AF_BRIDGE as u8;

/// A link from an AF_UNSPEC link message.
pub(crate) fn link_from_msg(msg: &LinkMessage) -> Option<Link> {
    link_from_parts(&msg.header, &msg.attributes)
}

/// IFLA_* attributes `link_from_parts` reads.
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_OPERSTATE: u16 = 16;
const LINK_HEADER_LEN: usize = 16;

/// A link from an AF_UNSPEC link message's payload. An instance starting or stopping
/// sends dozens of these, ~1.9 KB each (statistics, per-family settings): only the
/// three attributes used are parsed, which takes a tenth of parsing them all.
fn link_from_payload(header: &LinkHeader, payload: &[u8]) -> Option<Link> {
    // A malformed message is dropped whole, as a full parse would.
    let mut used = Vec::with_capacity(3);
    for nla in NlasIterator::new(payload.get(LINK_HEADER_LEN..)?) {
        let nla = nla.ok()?;
        if matches!(nla.kind(), IFLA_IFNAME | IFLA_MASTER | IFLA_OPERSTATE) {
            used.push(LinkAttribute::parse_with_param(&nla, header.interface_family).ok()?);
        }
    }
    link_from_parts(header, &used)
}

fn link_from_parts(header: &LinkHeader, attributes: &[LinkAttribute]) -> Option<Link> {
    if header.interface_family != AddressFamily::Unspec {
        return None;
    }
    let mut name = None;
    let mut master = None;
    let mut oper = None;
    for attr in attributes {
        match attr {
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            LinkAttribute::Controller(m) if *m != 0 => master = Some(*m),
            LinkAttribute::OperState(s) => oper = Some(*s),
            _ => {}
        }
    }
    let flags = header.flags;
    let lower_up = flags.contains(LinkFlags::LowerUp);
    let oper_up = lower_up
        && !matches!(
            oper,
            Some(State::Down | State::LowerLayerDown | State::NotPresent | State::Dormant)
        );
    Some(Link {
        index: header.index,
        name: name.unwrap_or_default(),
        master,
        admin_up: flags.contains(LinkFlags::Up),
        oper_up,
    })
}

pub(crate) fn address_from_msg(msg: &AddressMessage) -> Option<Address> {
    let mut address = None;
    let mut local = None;
    let mut tentative = msg.header.flags.contains(AddressHeaderFlags::Tentative);
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Flags(f) => tentative |= f.contains(AddressFlags::Tentative),
            _ => {}
        }
    }
    // IPv4: IFA_LOCAL is the interface's address (IFA_ADDRESS the peer on ptp links).
    // IPv6: IFA_ADDRESS, IFA_LOCAL only on ptp links.
    let ip = match msg.header.family {
        AddressFamily::Inet => local.or(address)?,
        AddressFamily::Inet6 => address.or(local)?,
        _ => return None,
    };
    Some(Address {
        ifindex: msg.header.index,
        net: IpNet::new(ip, msg.header.prefix_len).ok()?,
        tentative,
        link_scope: msg.header.scope == AddressScope::Link,
    })
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn via_addr(v: &RouteVia) -> Option<IpAddr> {
    match v {
        RouteVia::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteVia::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn gateway_of(attrs: &[RouteAttribute]) -> Option<IpAddr> {
    attrs.iter().find_map(|a| match a {
        RouteAttribute::Gateway(g) => route_addr(g),
        RouteAttribute::Via(v) => via_addr(v),
        _ => None,
    })
}

/// A unicast route of the main table, of any protocol, as a route message gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MainRoute {
    pub route: Route,
    pub protocol: u8,
    pub metric: u32,
}

impl MainRoute {
    /// Whether this is a route hostbgp installs: our protocol at our metric. A route
    /// of our protocol at another metric is someone else's doing.
    pub(crate) fn is_ours(&self) -> bool {
        self.protocol == ROUTE_PROTOCOL && self.metric == own_metric(&self.route.prefix)
    }
}

fn prefix_of(h: &RouteHeader, dst: Option<IpAddr>) -> Option<IpNet> {
    let dst = match (dst, h.address_family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet) => IpAddr::V4(0.into()),
        (None, AddressFamily::Inet6) => IpAddr::V6(0u128.into()),
        (None, _) => return None,
    };
    IpNet::new(dst, h.destination_prefix_length).ok()
}

/// A unicast route of the main table from a route message (None for anything else:
/// other tables, cached clones, local or blackhole routes, other families).
pub(crate) fn main_route_from_msg(msg: &RouteMessage) -> Option<MainRoute> {
    let h = &msg.header;
    if h.flags.contains(RouteFlags::Cloned)
        || !matches!(h.kind, RouteType::Unicast)
        || !matches!(h.address_family, AddressFamily::Inet | AddressFamily::Inet6)
    {
        return None;
    }
    let mut table = u32::from(h.table);
    let mut dst = None;
    let mut metric = 0;
    let mut oif = None;
    let mut multipath = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = route_addr(d),
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::MultiPath(m) => multipath = Some(m),
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let prefix = prefix_of(h, dst)?;
    let mut next_hops = Vec::new();
    if let Some(mp) = multipath {
        for nh in mp {
            next_hops.push(RouteNextHop {
                ifindex: nh.interface_index,
                gateway: gateway_of(&nh.attributes),
            });
        }
    } else {
        let gateway = gateway_of(&msg.attributes);
        if oif.is_some() || gateway.is_some() {
            next_hops.push(RouteNextHop {
                ifindex: oif.unwrap_or(0),
                gateway,
            });
        }
    }
    next_hops.sort();
    next_hops.dedup();
    // The view keeps every route for as long as it lives: one slot, not the 4 a push reserves.
    next_hops.shrink_to_fit();
    Some(MainRoute {
        route: Route { prefix, next_hops },
        protocol: u8::from(h.protocol),
        metric,
    })
}

/// One of our routes from a route message (None when it is not ours).
pub(crate) fn route_from_msg(msg: &RouteMessage) -> Option<Route> {
    main_route_from_msg(msg)
        .filter(MainRoute::is_ours)
        .map(|m| m.route)
}

/// RTA_DST, and the length of `struct rtmsg` before the attributes.
const RTA_DST: u16 = 1;
const ROUTE_HEADER_LEN: usize = 12;
const RTM_FAMILY_OFFSET: usize = 0;
const RTM_DST_LEN_OFFSET: usize = 1;

/// The destination prefix of a route message's payload, reading only RTA_DST: other
/// protocols' routes (a full table, a flood) are sorted out by prefix this cheaply.
fn destination_of(payload: &[u8]) -> Option<IpNet> {
    let len = *payload.get(RTM_DST_LEN_OFFSET)?;
    let mut dst = None;
    for nla in NlasIterator::new(payload.get(ROUTE_HEADER_LEN..)?) {
        let nla = nla.ok()?;
        if nla.kind() == RTA_DST {
            let v = nla.value();
            dst = Some(match v.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(v).ok()?),
                16 => IpAddr::from(<[u8; 16]>::try_from(v).ok()?),
                _ => return None,
            });
            break;
        }
    }
    let dst = match (dst, *payload.get(RTM_FAMILY_OFFSET)?) {
        (Some(d), _) => d,
        (None, AF_INET) => IpAddr::V4(0.into()),
        (None, AF_INET6) => IpAddr::V6(0u128.into()),
        (None, _) => return None,
    };
    IpNet::new(dst, len).ok()
}

/// The watch task's memory of our routes' next hops, so that per-nexthop IPv6
/// messages (NLM_F_APPEND additions, single-nexthop deletions) become events carrying
/// the full next-hop set. Kernel 6.x sends whole multipath routes in one message, in
/// which case this is a plain mirror. It also knows the port ids of our request
/// sockets, to tell our requests' echoes from others' changes, and which prefixes
/// other protocols' events matter for (those we hold a route for).
#[derive(Default, Debug)]
pub(crate) struct RouteTracker {
    routes: HashMap<IpNet, Vec<RouteNextHop>>,
    /// Port ids of the sockets our route requests go out on, newest last.
    own_ports: Vec<u32>,
}

/// Port ids remembered: the single-request socket stays, batch sockets come and go.
const OWN_PORTS_KEPT: usize = 32;

impl RouteTracker {
    /// Learns a route from a dump unless events already told about its prefix, so
    /// that routes that existed before `connect` (adopted after a restart) also get
    /// single-nexthop deletions right.
    pub(crate) fn seed(&mut self, route: &Route) {
        self.routes
            .entry(route.prefix)
            .or_insert_with(|| route.next_hops.clone());
    }

    pub(crate) fn clear(&mut self) {
        self.routes.clear();
    }

    /// Sets what a check found the kernel holds for `prefix`.
    pub(crate) fn correct(&mut self, prefix: &IpNet, holds: Option<&Route>) {
        match holds {
            Some(r) => drop(self.routes.insert(*prefix, r.next_hops.clone())),
            None => drop(self.routes.remove(prefix)),
        }
    }

    /// Records the port id of a socket our requests go out on (before they do).
    pub(crate) fn own_port(&mut self, port: u32) {
        if self.own_ports.len() == OWN_PORTS_KEPT {
            self.own_ports.remove(0);
        }
        self.own_ports.push(port);
    }

    /// Whether route events for `prefix` concern us.
    pub(crate) fn holds(&self, prefix: &IpNet) -> bool {
        self.routes.contains_key(prefix)
    }

    pub(crate) fn new_route(&mut self, route: Route, append: bool) -> KernelEvent {
        let entry = self.routes.entry(route.prefix).or_default();
        if append {
            merge_hops(entry, route.next_hops);
        } else {
            *entry = route.next_hops;
        }
        KernelEvent::RouteChanged(Route {
            prefix: route.prefix,
            next_hops: entry.clone(),
        })
    }

    pub(crate) fn del_route(&mut self, route: Route) -> KernelEvent {
        if let Some(current) = self.routes.get_mut(&route.prefix) {
            let partial = !route.next_hops.is_empty()
                && route.next_hops.len() < current.len()
                && route.next_hops.iter().all(|nh| current.contains(nh));
            if partial {
                current.retain(|nh| !route.next_hops.contains(nh));
                return KernelEvent::RouteChanged(Route {
                    prefix: route.prefix,
                    next_hops: current.clone(),
                });
            }
        }
        self.routes.remove(&route.prefix);
        KernelEvent::RouteRemoved(route.prefix)
    }

    /// The events one route message of the main table makes. `port` is the message's
    /// nlmsg_pid: the socket whose request caused it, 0 for the kernel itself.
    pub(crate) fn route_message(
        &mut self,
        seen: MainRoute,
        new: bool,
        flags: u16,
        port: u32,
        out: &mut Vec<KernelEvent>,
    ) {
        let prefix = seen.route.prefix;
        let foreign = |change| {
            KernelEvent::Foreign(ForeignRoute {
                prefix,
                protocol: seen.protocol,
                metric: seen.metric,
                change,
            })
        };
        if seen.is_ours() {
            if !new {
                out.push(self.del_route(seen.route));
                return;
            }
            out.push(self.new_route(seen.route.clone(), flags & NLM_F_APPEND != 0));
            if port != 0 && !self.own_ports.contains(&port) {
                out.push(foreign(ForeignChange::Tampered));
            }
            return;
        }
        if !self.holds(&prefix) {
            return;
        }
        let change = if !new {
            ForeignChange::Removed
        } else if flags & NLM_F_REPLACE != 0 && seen.metric == own_metric(&prefix) {
            // Same slot as ours (prefix and metric): ours is gone, with no event of its own.
            self.routes.remove(&prefix);
            out.push(KernelEvent::RouteRemoved(prefix));
            ForeignChange::Replaced
        } else {
            ForeignChange::Added
        };
        out.push(foreign(change));
    }
}

/// Converts one netlink message (type, flags, sender port, payload) into events.
pub(crate) fn events_from_message(
    ty: u16,
    flags: u16,
    port: u32,
    payload: &[u8],
    tracker: &mut RouteTracker,
    out: &mut Vec<KernelEvent>,
) {
    match ty {
        NLMSG_OVERRUN => out.push(KernelEvent::Overrun),
        RTM_NEWLINK | RTM_DELLINK => {
            let Ok(header) = LinkHeader::parse(payload) else {
                return;
            };
            // AF_BRIDGE messages (bridge port info) duplicate the AF_UNSPEC ones and
            // are dropped, but for the early word of a port's release.
            let ev = match (u8::from(header.interface_family), ty) {
                (AF_BRIDGE, RTM_DELLINK) => Some(KernelEvent::PortReleased(header.index)),
                (AF_UNSPEC, RTM_DELLINK) => Some(KernelEvent::LinkRemoved(header.index)),
                (AF_UNSPEC, _) => link_from_payload(&header, payload).map(KernelEvent::LinkChanged),
                _ => None,
            };
            out.extend(ev);
        }
        RTM_NEWADDR | RTM_DELADDR => {
            let Some(addr) = AddressMessage::parse(payload)
                .ok()
                .and_then(|m| address_from_msg(&m))
            else {
                return;
            };
            out.push(if ty == RTM_NEWADDR {
                KernelEvent::AddressAdded(addr)
            } else {
                KernelEvent::AddressRemoved(addr)
            });
        }
        RTM_NEWNEIGH | RTM_DELNEIGH => {
            out.extend(neigh::event_from_payload(ty, payload));
        }
        RTM_NEWROUTE | RTM_DELROUTE => {
            // Cheap pre-filters: (non-extended) other tables by one byte, other
            // protocols' routes by their destination alone. RT_TABLE_COMPAT: the table
            // id is in RTA_TABLE (ids over 255).
            let Some(&table) = payload.get(RTM_TABLE_OFFSET) else {
                return;
            };
            if table != RouteHeader::RT_TABLE_MAIN && table != RT_TABLE_COMPAT {
                return;
            }
            if payload.get(RTM_PROTOCOL_OFFSET) != Some(&ROUTE_PROTOCOL)
                && !destination_of(payload).is_some_and(|p| tracker.holds(&p))
            {
                return;
            }
            let Some(seen) = RouteMessage::parse(payload)
                .ok()
                .and_then(|m| main_route_from_msg(&m))
            else {
                return;
            };
            tracker.route_message(seen, ty == RTM_NEWROUTE, flags, port, out);
        }
        _ => {}
    }
}

/// One netlink message of a datagram: its header's fields and its payload.
pub(crate) struct RawMessage<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    /// nlmsg_pid: the port of the socket whose request caused it, 0 for the kernel.
    pub port: u32,
    pub payload: &'a [u8],
}

/// The messages of a datagram, in order; a truncated or malformed header ends it.
pub(crate) fn messages(buf: &[u8]) -> impl Iterator<Item = RawMessage<'_>> {
    let mut off = 0;
    std::iter::from_fn(move || {
        let header = buf.get(off..off + NLMSG_HDRLEN)?;
        let word = |at: usize| {
            u32::from_ne_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let len = word(0) as usize;
        if len < NLMSG_HDRLEN {
            return None;
        }
        let payload = buf.get(off + NLMSG_HDRLEN..off + len)?;
        off += (len + 3) & !3;
        Some(RawMessage {
            ty: u16::from_ne_bytes([header[4], header[5]]),
            flags: u16::from_ne_bytes([header[6], header[7]]),
            seq: word(8),
            port: word(12),
            payload,
        })
    })
}

/// Splits a datagram into netlink messages and converts them, in order.
pub(crate) fn events_from_datagram(
    buf: &[u8],
    tracker: &mut RouteTracker,
    out: &mut Vec<KernelEvent>,
) {
    for m in messages(buf) {
        events_from_message(m.ty, m.flags, m.port, m.payload, tracker, out);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::address::AddressHeader;
    use netlink_packet_route::route::{RouteNextHop as NlNextHop, RouteProtocol, RouteScope};
    use netlink_packet_route::RouteNetlinkMessage;

    fn datagram(msgs: Vec<(RouteNetlinkMessage, u16)>) -> Vec<u8> {
        let mut out = Vec::new();
        for (m, flags) in msgs {
            let mut nl = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(m));
            nl.header.flags = flags;
            nl.finalize();
            let mut buf = vec![0u8; nl.buffer_len()];
            nl.emit(&mut buf);
            out.extend_from_slice(&buf);
        }
        out
    }

    fn events(msgs: Vec<(RouteNetlinkMessage, u16)>, t: &mut RouteTracker) -> Vec<KernelEvent> {
        let mut out = Vec::new();
        events_from_datagram(&datagram(msgs), t, &mut out);
        out
    }

    /// The events of one message sent by port `port` with `flags`.
    fn events_from(
        m: RouteNetlinkMessage,
        flags: u16,
        port: u32,
        t: &mut RouteTracker,
    ) -> Vec<KernelEvent> {
        let mut nl = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(m));
        nl.header.flags = flags;
        nl.header.port_number = port;
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.emit(&mut buf);
        let mut out = Vec::new();
        events_from_datagram(&buf, t, &mut out);
        out
    }

    fn link_msg(family: AddressFamily, index: u32, master: Option<u32>) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.interface_family = family;
        m.header.index = index;
        m.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        m.attributes
            .push(LinkAttribute::IfName(format!("if{index}")));
        m.attributes.push(LinkAttribute::OperState(State::Up));
        if let Some(ma) = master {
            m.attributes.push(LinkAttribute::Controller(ma));
        }
        m
    }

    pub(crate) fn route_msg(
        prefix: &str,
        proto: u8,
        table: u8,
        hops: &[(u32, Option<&str>)],
    ) -> RouteMessage {
        let net: IpNet = prefix.parse().unwrap();
        let mut m = RouteMessage::default();
        m.header.address_family = match net {
            IpNet::V4(_) => AddressFamily::Inet,
            IpNet::V6(_) => AddressFamily::Inet6,
        };
        m.header.destination_prefix_length = net.prefix_len();
        m.header.table = table;
        m.header.protocol = RouteProtocol::from(proto);
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        m.attributes
            .push(RouteAttribute::Destination(net.addr().into()));
        // The kernel always says an IPv6 route's metric, an IPv4 one's only when not 0.
        if net.addr().is_ipv6() {
            m.attributes.push(RouteAttribute::Priority(1024));
        }
        let gw = |g: &Option<&str>| {
            g.map(|g| RouteAttribute::Gateway(g.parse::<IpAddr>().unwrap().into()))
        };
        if hops.len() == 1 {
            m.attributes.push(RouteAttribute::Oif(hops[0].0));
            m.attributes.extend(gw(&hops[0].1));
        } else {
            let mut nhs = Vec::new();
            for (ifindex, g) in hops {
                let mut nh = NlNextHop::default();
                nh.interface_index = *ifindex;
                nh.attributes.extend(gw(g));
                nhs.push(nh);
            }
            m.attributes.push(RouteAttribute::MultiPath(nhs));
        }
        m
    }

    fn nh(ifindex: u32, gw: Option<&str>) -> RouteNextHop {
        RouteNextHop {
            ifindex,
            gateway: gw.map(|g| g.parse().unwrap()),
        }
    }

    #[test]
    fn links_and_af_bridge() {
        let mut t = RouteTracker::default();
        let ev = events(
            vec![
                (
                    RouteNetlinkMessage::NewLink(link_msg(AddressFamily::Unspec, 4, Some(3))),
                    0,
                ),
                // AF_BRIDGE duplicates: ignored, but for the DELLINK sent on release.
                (
                    RouteNetlinkMessage::NewLink(link_msg(AddressFamily::Bridge, 4, Some(3))),
                    0,
                ),
                (
                    RouteNetlinkMessage::DelLink(link_msg(AddressFamily::Bridge, 4, Some(3))),
                    0,
                ),
                (
                    RouteNetlinkMessage::NewLink(link_msg(AddressFamily::Unspec, 4, None)),
                    0,
                ),
                (
                    RouteNetlinkMessage::DelLink(link_msg(AddressFamily::Unspec, 4, None)),
                    0,
                ),
            ],
            &mut t,
        );
        let l = |master| Link {
            index: 4,
            name: "if4".into(),
            master,
            admin_up: true,
            oper_up: true,
        };
        assert_eq!(
            ev,
            vec![
                KernelEvent::LinkChanged(l(Some(3))),
                KernelEvent::PortReleased(4),
                KernelEvent::LinkChanged(l(None)),
                KernelEvent::LinkRemoved(4)
            ]
        );
        let mut down = link_msg(AddressFamily::Unspec, 5, None);
        down.header.flags = LinkFlags::Up;
        down.attributes.push(LinkAttribute::OperState(State::Down));
        let l = link_from_msg(&down).unwrap();
        assert!(l.admin_up && !l.oper_up);
    }

    #[test]
    fn link_payload_reads_only_what_is_used() {
        let mut m = link_msg(AddressFamily::Unspec, 7, Some(2));
        // Attributes around the used ones, as in a real message.
        m.attributes.insert(0, LinkAttribute::Mtu(1500));
        m.attributes.push(LinkAttribute::TxQueueLen(1000));
        m.attributes
            .push(LinkAttribute::OperState(State::LowerLayerDown));
        let mut payload = vec![0u8; m.buffer_len()];
        m.emit(&mut payload);
        let header = LinkHeader::parse(&payload).unwrap();
        let lean = link_from_payload(&header, &payload).unwrap();
        assert_eq!(Some(&lean), link_from_msg(&m).as_ref());
        assert_eq!((lean.master, lean.oper_up), (Some(2), false));
        // Malformed: a truncated attribute, or a name that is not UTF-8.
        let mut truncated = payload.clone();
        truncated.extend_from_slice(&[8, 0, 3, 0]);
        assert_eq!(link_from_payload(&header, &truncated), None);
        let mut bad_name = payload.clone();
        bad_name.extend_from_slice(&[8, 0, 3, 0, 0xff, 0xfe, 0, 0]);
        assert_eq!(link_from_payload(&header, &bad_name), None);
    }

    #[test]
    fn addresses() {
        let mut t = RouteTracker::default();
        let mut v6 = AddressMessage::default();
        v6.header = AddressHeader {
            family: AddressFamily::Inet6,
            prefix_len: 64,
            flags: AddressHeaderFlags::empty(),
            scope: AddressScope::Universe,
            index: 3,
        };
        v6.attributes
            .push(AddressAttribute::Address("2001:db8::1".parse().unwrap()));
        v6.attributes.push(AddressAttribute::Flags(
            AddressFlags::Tentative | AddressFlags::Permanent,
        ));
        let mut v4 = AddressMessage::default();
        v4.header.family = AddressFamily::Inet;
        v4.header.prefix_len = 24;
        v4.header.index = 3;
        v4.attributes
            .push(AddressAttribute::Address("192.0.2.9".parse().unwrap()));
        v4.attributes
            .push(AddressAttribute::Local("192.0.2.1".parse().unwrap()));
        let mut ll = AddressMessage::default();
        ll.header.family = AddressFamily::Inet6;
        ll.header.prefix_len = 64;
        ll.header.index = 3;
        ll.header.scope = AddressScope::Link;
        ll.header.flags = AddressHeaderFlags::Tentative;
        ll.attributes
            .push(AddressAttribute::Address("fe80::1".parse().unwrap()));
        let ev = events(
            vec![
                (RouteNetlinkMessage::NewAddress(v6), 0),
                (RouteNetlinkMessage::DelAddress(v4), 0),
                (RouteNetlinkMessage::NewAddress(ll), 0),
            ],
            &mut t,
        );
        let a = |net: &str, tentative, link_scope| Address {
            ifindex: 3,
            net: net.parse().unwrap(),
            tentative,
            link_scope,
        };
        assert_eq!(
            ev,
            vec![
                KernelEvent::AddressAdded(a("2001:db8::1/64", true, false)),
                KernelEvent::AddressRemoved(a("192.0.2.1/24", false, false)),
                KernelEvent::AddressAdded(a("fe80::1/64", true, true)),
            ]
        );
    }

    #[test]
    fn routes_filtered_and_converted() {
        let mut t = RouteTracker::default();
        let ev = events(
            vec![
                (
                    RouteNetlinkMessage::NewRoute(route_msg(
                        "203.0.113.0/24",
                        4,
                        254,
                        &[(3, None)],
                    )),
                    0,
                ),
                (
                    RouteNetlinkMessage::NewRoute(route_msg(
                        "203.0.113.0/24",
                        201,
                        100,
                        &[(3, None)],
                    )),
                    0,
                ),
                (
                    RouteNetlinkMessage::NewRoute(route_msg(
                        "203.0.113.0/24",
                        201,
                        254,
                        &[(3, None)],
                    )),
                    0,
                ),
                (
                    RouteNetlinkMessage::NewRoute(route_msg(
                        "198.51.100.0/24",
                        201,
                        254,
                        &[(4, Some("192.0.2.2")), (3, Some("192.0.2.3"))],
                    )),
                    0,
                ),
                (
                    RouteNetlinkMessage::DelRoute(route_msg(
                        "203.0.113.0/24",
                        201,
                        254,
                        &[(3, None)],
                    )),
                    0,
                ),
            ],
            &mut t,
        );
        assert_eq!(
            ev,
            vec![
                KernelEvent::RouteChanged(Route {
                    prefix: "203.0.113.0/24".parse().unwrap(),
                    next_hops: vec![nh(3, None)]
                }),
                KernelEvent::RouteChanged(Route {
                    prefix: "198.51.100.0/24".parse().unwrap(),
                    next_hops: vec![nh(3, Some("192.0.2.3")), nh(4, Some("192.0.2.2"))]
                }),
                KernelEvent::RouteRemoved("203.0.113.0/24".parse().unwrap()),
            ]
        );
        // Extended table id (RTA_TABLE) other than main is not ours.
        let mut m = route_msg("203.0.113.0/24", 201, 252, &[(3, None)]);
        m.attributes.push(RouteAttribute::Table(1000));
        assert!(route_from_msg(&m).is_none());
    }

    #[test]
    fn ipv6_per_nexthop_messages() {
        let mut t = RouteTracker::default();
        let p = "2001:db8:99::/64";
        let a = (3, Some("2001:db8:1::2"));
        let b = (4, Some("2001:db8:2::2"));
        let ev = events(
            vec![
                (
                    RouteNetlinkMessage::NewRoute(route_msg(p, 201, 254, &[a])),
                    0,
                ),
                (
                    RouteNetlinkMessage::NewRoute(route_msg(p, 201, 254, &[b])),
                    NLM_F_APPEND,
                ),
                (
                    RouteNetlinkMessage::DelRoute(route_msg(p, 201, 254, &[a])),
                    0,
                ),
                (
                    RouteNetlinkMessage::DelRoute(route_msg(p, 201, 254, &[b])),
                    0,
                ),
                // Whole multipath add and delete in one message each (kernel 6.x).
                (
                    RouteNetlinkMessage::NewRoute(route_msg(p, 201, 254, &[a, b])),
                    0,
                ),
                (
                    RouteNetlinkMessage::DelRoute(route_msg(p, 201, 254, &[a, b])),
                    0,
                ),
            ],
            &mut t,
        );
        let prefix: IpNet = p.parse().unwrap();
        let r = |hops: Vec<RouteNextHop>| {
            KernelEvent::RouteChanged(Route {
                prefix,
                next_hops: hops,
            })
        };
        let na = nh(3, Some("2001:db8:1::2"));
        let nb = nh(4, Some("2001:db8:2::2"));
        assert_eq!(
            ev,
            vec![
                r(vec![na.clone()]),
                r(vec![na.clone(), nb.clone()]),
                r(vec![nb.clone()]),
                KernelEvent::RouteRemoved(prefix),
                r(vec![na, nb]),
                KernelEvent::RouteRemoved(prefix),
            ]
        );
    }

    #[test]
    fn overrun_and_garbage() {
        let mut t = RouteTracker::default();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 20];
        buf[0..4].copy_from_slice(&20u32.to_ne_bytes());
        buf[4..6].copy_from_slice(&NLMSG_OVERRUN.to_ne_bytes());
        events_from_datagram(&buf, &mut t, &mut out);
        assert_eq!(out, vec![KernelEvent::Overrun]);
        out.clear();
        events_from_datagram(&[1, 2, 3], &mut t, &mut out);
        let mut bad = vec![0u8; 40];
        bad[0..4].copy_from_slice(&400u32.to_ne_bytes());
        events_from_datagram(&bad, &mut t, &mut out);
        assert!(out.is_empty());
    }

    fn with_metric(mut m: RouteMessage, metric: u32) -> RouteMessage {
        m.attributes
            .retain(|a| !matches!(a, RouteAttribute::Priority(_)));
        if metric != 0 {
            m.attributes.push(RouteAttribute::Priority(metric));
        }
        m
    }

    fn foreign(prefix: &str, protocol: u8, metric: u32, change: ForeignChange) -> KernelEvent {
        KernelEvent::Foreign(ForeignRoute {
            prefix: prefix.parse().unwrap(),
            protocol,
            metric,
            change,
        })
    }

    const OWN_PORT: u32 = 4242;
    const NLM_F_CREATE: u16 = 0x400;

    /// A tracker holding our 203.0.113.64/28 and 2001:db8:100:40::/64.
    fn holding_ours() -> RouteTracker {
        let mut t = RouteTracker::default();
        t.own_port(OWN_PORT);
        for p in ["203.0.113.64/28", "2001:db8:100:40::/64"] {
            let m = RouteNetlinkMessage::NewRoute(route_msg(p, 201, 254, &[(3, None)]));
            assert_eq!(events_from(m, NLM_F_CREATE, OWN_PORT, &mut t).len(), 1);
        }
        t
    }

    #[test]
    fn foreign_replace_at_our_metric_removes_ours() {
        for (p, metric) in [("203.0.113.64/28", 0), ("2001:db8:100:40::/64", 1024)] {
            let mut t = holding_ours();
            let replace = RouteNetlinkMessage::NewRoute(with_metric(
                route_msg(p, 4, 254, &[(3, None)]),
                metric,
            ));
            assert_eq!(
                events_from(replace, NLM_F_REPLACE | NLM_F_CREATE, 777, &mut t),
                vec![
                    KernelEvent::RouteRemoved(p.parse().unwrap()),
                    foreign(p, 4, metric, ForeignChange::Replaced)
                ]
            );
            assert!(!t.holds(&p.parse().unwrap()));
            // Its later deletion no longer concerns us (ours is gone from that prefix).
            let del = RouteNetlinkMessage::DelRoute(with_metric(
                route_msg(p, 4, 254, &[(3, None)]),
                metric,
            ));
            assert_eq!(events_from(del, 0, 777, &mut t), vec![]);
        }
    }

    #[test]
    fn foreign_routes_beside_ours() {
        let mut t = holding_ours();
        let p = "2001:db8:100:40::/64";
        // A better metric beside ours (no replace): the kernel now prefers it.
        let add = || {
            RouteNetlinkMessage::NewRoute(with_metric(
                route_msg(p, 3, 254, &[(5, Some("2001:db8:100::99"))]),
                100,
            ))
        };
        let ev = events_from(add(), NLM_F_CREATE, 0, &mut t);
        assert_eq!(ev, vec![foreign(p, 3, 100, ForeignChange::Added)]);
        assert!(matches!(&ev[0], KernelEvent::Foreign(f) if f.shadows_ours()));
        // `replace` at another metric than ours adds beside ours too.
        let ev = events_from(add(), NLM_F_REPLACE | NLM_F_CREATE, 0, &mut t);
        assert_eq!(ev, vec![foreign(p, 3, 100, ForeignChange::Added)]);
        // A worse metric does not shadow ours.
        let worse =
            RouteNetlinkMessage::NewRoute(with_metric(route_msg(p, 4, 254, &[(5, None)]), 2048));
        let ev = events_from(worse, NLM_F_CREATE, 0, &mut t);
        assert!(matches!(&ev[..], [KernelEvent::Foreign(f)] if !f.shadows_ours()));
        // Our protocol at another metric is somebody else's route.
        let stray =
            RouteNetlinkMessage::NewRoute(with_metric(route_msg(p, 201, 254, &[(5, None)]), 50));
        assert_eq!(
            events_from(stray, NLM_F_CREATE, 0, &mut t),
            vec![foreign(p, 201, 50, ForeignChange::Added)]
        );
        let del = RouteNetlinkMessage::DelRoute(with_metric(
            route_msg(p, 3, 254, &[(5, Some("2001:db8:100::99"))]),
            100,
        ));
        assert_eq!(
            events_from(del, 0, 0, &mut t),
            vec![foreign(p, 3, 100, ForeignChange::Removed)]
        );
        assert!(t.holds(&p.parse().unwrap()));
    }

    #[test]
    fn foreign_routes_of_other_prefixes_and_tables_are_dropped() {
        let mut t = holding_ours();
        for m in [
            route_msg("203.0.113.80/28", 4, 254, &[(3, None)]),
            route_msg("203.0.113.64/27", 4, 254, &[(3, None)]),
            route_msg("203.0.113.64/28", 4, 100, &[(3, None)]),
            route_msg("0.0.0.0/0", 4, 254, &[(3, Some("192.0.2.1"))]),
        ] {
            for new in [true, false] {
                let msg = if new {
                    RouteNetlinkMessage::NewRoute(m.clone())
                } else {
                    RouteNetlinkMessage::DelRoute(m.clone())
                };
                assert_eq!(events_from(msg, NLM_F_REPLACE, 0, &mut t), vec![]);
            }
        }
    }

    #[test]
    fn our_route_changed_by_someone_else() {
        let p = "203.0.113.64/28";
        let changed =
            || RouteNetlinkMessage::NewRoute(route_msg(p, 201, 254, &[(3, Some("203.0.113.12"))]));
        let route = KernelEvent::RouteChanged(Route {
            prefix: p.parse().unwrap(),
            next_hops: vec![nh(3, Some("203.0.113.12"))],
        });
        // Our own request's echo, and the kernel's own change: nothing to repair.
        for port in [OWN_PORT, 0] {
            let mut t = holding_ours();
            assert_eq!(
                events_from(changed(), NLM_F_REPLACE, port, &mut t),
                vec![route.clone()]
            );
        }
        let mut t = holding_ours();
        assert_eq!(
            events_from(changed(), NLM_F_REPLACE, 777, &mut t),
            vec![route, foreign(p, 201, 0, ForeignChange::Tampered)]
        );
        // Another socket of ours (a batch) registered later counts as ours too.
        t.own_port(778);
        assert_eq!(events_from(changed(), NLM_F_REPLACE, 778, &mut t).len(), 1);
    }

    #[test]
    fn destination_read_alone_matches_the_full_parse() {
        for (p, hops) in [
            ("203.0.113.64/28", vec![(3, None)]),
            ("0.0.0.0/0", vec![(3, Some("192.0.2.1"))]),
            ("2001:db8::/32", vec![(3, None), (4, None)]),
            ("::/0", vec![(3, Some("fe80::1"))]),
        ] {
            let m = route_msg(p, 4, 254, &hops);
            let mut payload = vec![0u8; m.buffer_len()];
            m.emit(&mut payload);
            assert_eq!(destination_of(&payload), Some(p.parse().unwrap()), "{p}");
            assert_eq!(
                main_route_from_msg(&m).map(|r| r.route.prefix),
                Some(p.parse().unwrap())
            );
        }
        assert_eq!(destination_of(&[2, 24]), None);
    }

    #[test]
    fn own_ports_are_bounded() {
        let mut t = RouteTracker::default();
        for port in 0..100 {
            t.own_port(port);
        }
        assert_eq!(t.own_ports.len(), OWN_PORTS_KEPT);
        assert!(t.own_ports.contains(&99) && !t.own_ports.contains(&0));
    }
}
