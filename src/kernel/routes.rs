//! The request connection: dumps, route installation and removal.
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use futures::stream::StreamExt;
use ipnet::IpNet;
use netlink_packet_core::{
    Emitable, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::neighbour::NeighbourMessage;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteNextHop as NlNextHop,
    RouteProtocol, RouteScope, RouteType, RouteVia,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::error::{DumpError, KernelError};
use super::netlink::{address_from_msg, link_from_msg, RouteTracker};
use super::request::RequestSocket;
use super::view::RouteDrift;
use super::{
    batch, dump, neigh, watch, KernelEvent, KernelEvents, KernelView, Neighbours, Route, Routes,
    ROUTE_PROTOCOL,
};

/// Receive buffer of the request socket (ACKs of pipelined requests, dumps).
const REQUEST_RCVBUF: usize = 8 << 20;

/// A handle to the kernel's routing tables.
#[derive(Clone)]
pub struct Kernel {
    handle: rtnetlink::Handle,
    /// Shared with the watch task; seeded by dumps.
    tracker: Arc<Mutex<RouteTracker>>,
    /// Single route requests (the instance start and stop path).
    single: Arc<Mutex<RequestSocket>>,
}

fn errno_error(what: &str, code: i32) -> KernelError {
    KernelError::Refused {
        what: what.to_string(),
        errno: code.abs(),
    }
}

fn rt_error(what: &str, e: rtnetlink::Error) -> KernelError {
    match e {
        rtnetlink::Error::NetlinkError(m) => errno_error(what, m.raw_code()),
        other => KernelError::Transport {
            what: what.to_string(),
            source: io::Error::other(other.to_string()),
        },
    }
}

fn family_of(net: &IpNet) -> AddressFamily {
    match net {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    }
}

fn gateway_attr(prefix: &IpNet, gw: IpAddr) -> RouteAttribute {
    match (prefix, gw) {
        (IpNet::V4(_), IpAddr::V4(_)) | (IpNet::V6(_), IpAddr::V6(_)) => {
            RouteAttribute::Gateway(RouteAddress::from(gw))
        }
        // RFC 5549 style next hop of the other family.
        (_, IpAddr::V4(v4)) => RouteAttribute::Via(RouteVia::Inet(v4)),
        (_, IpAddr::V6(v6)) => RouteAttribute::Via(RouteVia::Inet6(v6)),
    }
}

fn route_header(prefix: &IpNet) -> RouteHeader {
    RouteHeader {
        address_family: family_of(prefix),
        destination_prefix_length: prefix.prefix_len(),
        table: RouteHeader::RT_TABLE_MAIN,
        protocol: RouteProtocol::from(ROUTE_PROTOCOL),
        kind: RouteType::Unicast,
        ..Default::default()
    }
}

/// The RTM_NEWROUTE message installing `route` (public for benchmarks/tests).
pub(crate) fn install_message(route: &Route) -> RouteMessage {
    let prefix = route.prefix.trunc();
    let mut m = RouteMessage::default();
    m.header = route_header(&prefix);
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(
            prefix.addr(),
        )));
    match route.next_hops.as_slice() {
        [] => {}
        [nh] => {
            if nh.gateway.is_none() && matches!(prefix, IpNet::V4(_)) {
                m.header.scope = RouteScope::Link;
            }
            m.attributes.push(RouteAttribute::Oif(nh.ifindex));
            if let Some(gw) = nh.gateway {
                m.attributes.push(gateway_attr(&prefix, gw));
            }
        }
        hops => {
            let nhs = hops
                .iter()
                .map(|nh| {
                    let mut n = NlNextHop::default();
                    n.interface_index = nh.ifindex;
                    if let Some(gw) = nh.gateway {
                        n.attributes.push(gateway_attr(&prefix, gw));
                    }
                    n
                })
                .collect();
            m.attributes.push(RouteAttribute::MultiPath(nhs));
        }
    }
    m
}

/// The RTM_DELROUTE message removing our route for `prefix` (protocol included, so
/// the kernel only matches ours).
fn remove_message(prefix: &IpNet) -> RouteMessage {
    let prefix = prefix.trunc();
    let mut m = RouteMessage::default();
    m.header = route_header(&prefix);
    m.header.scope = RouteScope::NoWhere;
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::from(
            prefix.addr(),
        )));
    m
}

// Functions rather than closures: a closure's signature is not general over the
// borrow's lifetime, which the `Send` bound on the agent's futures needs.
fn install_request(route: &Route) -> (IpNet, NetlinkMessage<RouteNetlinkMessage>) {
    let mut m = NetlinkMessage::from(RouteNetlinkMessage::NewRoute(install_message(route)));
    m.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE | NLM_F_CREATE;
    (route.prefix, m)
}

fn remove_request(prefix: &IpNet) -> (IpNet, NetlinkMessage<RouteNetlinkMessage>) {
    let mut m = NetlinkMessage::from(RouteNetlinkMessage::DelRoute(remove_message(prefix)));
    m.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    (*prefix, m)
}

impl Kernel {
    /// Opens the request connection and the multicast watch; events arrive on the receiver.
    pub async fn connect() -> io::Result<(Kernel, KernelEvents)> {
        Self::connect_with_watch_rcvbuf(watch::WATCH_RCVBUF, true).await
    }

    /// `connect` with a chosen watch receive buffer (tests use a tiny one to provoke
    /// ENOBUFS).
    pub(crate) async fn connect_with_watch_rcvbuf(
        rcvbuf: usize,
        force: bool,
    ) -> io::Result<(Kernel, KernelEvents)> {
        let (mut conn, handle, _) = rtnetlink::new_connection_with_strict_check()?;
        {
            use netlink_sys::AsyncSocket;
            use std::os::fd::AsFd;
            let fd = conn.socket_mut().socket_ref().as_fd();
            if let Err(e) = watch::set_rcvbuf(fd, REQUEST_RCVBUF, true) {
                tracing::warn!("request socket receive buffer: {e}");
            }
        }
        let single = RequestSocket::open()?;
        let mut tracker = RouteTracker::default();
        tracker.own_port(single.port());
        let single = Arc::new(Mutex::new(single));
        let tracker = Arc::new(Mutex::new(tracker));
        tokio::spawn(conn);
        let sock = watch::open(rcvbuf, force)?;
        let (handover, events) = watch::channel();
        tokio::spawn(watch::run(sock, handover, tracker.clone()));
        Ok((
            Kernel {
                handle,
                tracker,
                single,
            },
            events,
        ))
    }

    /// Sends one dump request and collects the answers.
    async fn dump_raw(
        &self,
        what: &str,
        req: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, DumpError> {
        let mut out = Vec::new();
        self.dump_each(what, req, |m| out.push(m)).await?;
        Ok(out)
    }

    /// `dump_raw` handing each answer over as it comes, so a big dump is never held
    /// whole (100k routes' messages cost ~30 MB at the peak).
    async fn dump_each(
        &self,
        what: &str,
        req: RouteNetlinkMessage,
        mut each: impl FnMut(RouteNetlinkMessage),
    ) -> Result<(), DumpError> {
        let mut msg = NetlinkMessage::from(req);
        msg.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let mut handle = self.handle.clone();
        let mut resp = handle
            .request(msg)
            .map_err(|e| DumpError::Failed(rt_error(what, e)))?;
        let mut interrupted = false;
        while let Some(m) = resp.next().await {
            interrupted |= m.header.flags & NLM_F_DUMP_INTR != 0;
            match m.payload {
                NetlinkPayload::InnerMessage(inner) => each(inner),
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(DumpError::Failed(errno_error(what, e.raw_code())))
                }
                _ => {}
            }
        }
        if interrupted {
            Err(DumpError::Interrupted)
        } else {
            Ok(())
        }
    }

    async fn dump_once(&self) -> Result<KernelView, DumpError> {
        let mut view = KernelView::default();
        let get_links = RouteNetlinkMessage::GetLink(LinkMessage::default());
        self.dump_each("dump links", get_links, |m| {
            if let RouteNetlinkMessage::NewLink(l) = m {
                view.links
                    .extend(link_from_msg(&l).map(|link| (link.index, link)));
            }
        })
        .await?;
        let get_addrs = RouteNetlinkMessage::GetAddress(AddressMessage::default());
        self.dump_each("dump addresses", get_addrs, |m| {
            if let RouteNetlinkMessage::NewAddress(a) = m {
                if let Some(addr) = address_from_msg(&a) {
                    view.addresses.entry(addr.ifindex).or_default().push(addr);
                }
            }
        })
        .await?;
        for list in view.addresses.values_mut() {
            list.sort();
            list.dedup();
        }
        view.neighbours = self.dump_neighbours().await?;
        view.routes = self.dump_routes_once().await?;
        Ok(view)
    }

    /// The ARP and NDP tables. Asked per family: an AF_UNSPEC dump also walks every
    /// bridge's FDB (RTM_GETNEIGH of PF_BRIDGE), which can be far bigger.
    async fn dump_neighbours(&self) -> Result<Neighbours, DumpError> {
        let mut table = Neighbours::default();
        let mut bytes = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut req = NeighbourMessage::default();
            req.header.family = family;
            let answers = self
                .dump_raw("dump neighbours", RouteNetlinkMessage::GetNeighbour(req))
                .await?;
            for m in answers {
                if let RouteNetlinkMessage::NewNeighbour(n) = m {
                    // Back to bytes, so that the dump and the watch share one parser.
                    bytes.clear();
                    bytes.resize(n.buffer_len(), 0);
                    n.emit(&mut bytes);
                    if let Some(KernelEvent::NeighbourSeen(n)) =
                        neigh::event_from_payload(libc::RTM_NEWNEIGH, &bytes)
                    {
                        table.insert(n);
                    }
                }
            }
        }
        Ok(table)
    }

    /// hostbgp's own routes (dumped with a protocol filter the kernel applies).
    async fn dump_routes_once(&self) -> Result<Routes, DumpError> {
        let mut found = Routes::default();
        self.dump_own_routes(|mut route| {
            // IPv6 multipath may come as one message per nexthop: merge.
            if let Some(earlier) = found.get(&route.prefix) {
                super::merge_hops(&mut route.next_hops, earlier.next_hops.iter().cloned());
            }
            found.insert(route);
        })
        .await?;
        Ok(found)
    }

    /// Retries `dump` while the kernel says it was interrupted (NLM_F_DUMP_INTR).
    async fn retry_dump<T, F, Fut>(&self, dump: F) -> Result<T, KernelError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, DumpError>>,
    {
        for _ in 0..10 {
            match dump().await {
                Ok(v) => return Ok(v),
                Err(DumpError::Failed(e)) => return Err(e),
                Err(DumpError::Interrupted) => tracing::debug!("kernel dump interrupted, retrying"),
            }
        }
        Err(KernelError::Interrupted(10))
    }

    /// Our routes whose kernel version differs from `said` (what events said), with
    /// what the kernel holds; compared as the dump arrives.
    pub async fn route_drift(
        &self,
        said: &Routes,
    ) -> Result<Vec<(IpNet, Option<Route>)>, KernelError> {
        self.retry_dump(|| async {
            let mut drift = RouteDrift::new(said);
            self.dump_own_routes(|r| drift.see(r)).await?;
            Ok(drift.finish())
        })
        .await
        .inspect(|drift| {
            // The watch's memory missed the same changes.
            let mut t = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
            for (prefix, holds) in drift {
                t.correct(prefix, holds.as_ref());
            }
        })
    }

    /// Each of our routes the kernel holds, one datagram at a time.
    async fn dump_own_routes(&self, mut each: impl FnMut(Route)) -> Result<(), DumpError> {
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            dump::own_routes(family, &mut each).await?;
        }
        Ok(())
    }

    fn seed(&self, routes: &Routes) {
        let mut t = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
        for r in routes.values() {
            t.seed(r);
        }
    }

    /// A consistent snapshot: links, addresses, and hostbgp's own routes.
    /// Dumps interrupted by concurrent changes (NLM_F_DUMP_INTR) are retried.
    pub async fn dump(&self) -> Result<KernelView, KernelError> {
        let view = self.retry_dump(|| self.dump_once()).await?;
        self.seed(&view.routes);
        Ok(view)
    }

    /// Sends one request (built like a batch's) and returns its ACK's errno, 0 when
    /// done; `what` names it in a transport error.
    fn request_ack(
        &self,
        (_, req): (IpNet, NetlinkMessage<RouteNetlinkMessage>),
        what: &str,
    ) -> Result<i32, KernelError> {
        let mut single = self.single.lock().unwrap_or_else(|p| p.into_inner());
        single
            .request(req)
            .map_err(|source| KernelError::Transport {
                what: what.to_string(),
                source,
            })
    }

    /// Installs or replaces a route with hostbgp's protocol number (idempotent).
    /// NLM_F_REPLACE replaces the whole route (all next hops), for IPv6 too.
    pub async fn install_route(&self, route: &Route) -> Result<(), KernelError> {
        if route.next_hops.is_empty() {
            return Err(KernelError::NoNextHop(route.prefix));
        }
        let what = format!("install route {}", route.prefix);
        match self.request_ack(install_request(route), &what)? {
            0 => Ok(()),
            code => Err(errno_error(&what, code)),
        }
    }

    /// Removes one of hostbgp's routes (all its next hops); a route already gone is
    /// not an error. The request carries our protocol, so the kernel never matches a
    /// route of another protocol.
    pub async fn remove_route(&self, prefix: &IpNet) -> Result<(), KernelError> {
        let what = format!("remove route {}", prefix.trunc());
        match self.request_ack(remove_request(prefix), &what)? {
            0 | libc::ESRCH => Ok(()),
            code => Err(errno_error(&what, code)),
        }
    }

    /// Removes another protocol's route for `prefix`: exactly the one at `metric`.
    pub async fn remove_foreign_route(
        &self,
        prefix: &IpNet,
        protocol: u8,
        metric: u32,
    ) -> Result<(), KernelError> {
        let what = format!(
            "remove {} route {} metric {metric}",
            super::protocol_name(protocol),
            prefix.trunc()
        );
        let (key, mut req) = remove_request(prefix);
        if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(m)) = &mut req.payload {
            m.header.protocol = RouteProtocol::from(protocol);
            m.attributes.push(RouteAttribute::Priority(metric));
        }
        match self.request_ack((key, req), &what)? {
            0 | libc::ESRCH => Ok(()),
            code => Err(errno_error(&what, code)),
        }
    }

    fn own_port(&self, port: u32) {
        self.tracker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .own_port(port);
    }

    /// Installs (replaces) many routes, pipelined on a dedicated socket: requests are
    /// packed into large datagrams and up to a receive-buffer-sized window of them
    /// awaits its ACK. All are attempted; the error names how many failed and one
    /// failure (prefix and errno).
    pub async fn install_routes(&self, routes: &[Route]) -> Result<(), KernelError> {
        if let Some(r) = routes.iter().find(|r| r.next_hops.is_empty()) {
            return Err(KernelError::NoNextHop(r.prefix));
        }
        let reqs = routes.iter().map(install_request);
        batch::run("install", routes.len(), reqs, None, |port| {
            self.own_port(port)
        })
        .await
    }

    /// Removes many of our routes, pipelined like `install_routes`; routes already
    /// gone are not errors.
    pub async fn remove_routes(&self, prefixes: &[IpNet]) -> Result<(), KernelError> {
        let reqs = prefixes.iter().map(remove_request);
        batch::run("remove", prefixes.len(), reqs, Some(libc::ESRCH), |port| {
            self.own_port(port)
        })
        .await
    }

    /// `install_routes` one request at a time, as single routes go (for comparison).
    pub async fn install_routes_unbatched(&self, routes: &[Route]) -> Result<(), KernelError> {
        let mut errors = Vec::new();
        for route in routes {
            if let Err(e) = self.install_route(route).await {
                errors.push(e);
            }
            tokio::task::consume_budget().await;
        }
        summarize("install", routes.len(), errors)
    }
}

fn summarize(op: &str, total: usize, errors: Vec<KernelError>) -> Result<(), KernelError> {
    match errors.into_iter().enumerate().last() {
        None => Ok(()),
        Some((n, e)) => Err(KernelError::Partial {
            op: op.to_string(),
            failed: n + 1,
            total,
            example: Box::new(e),
        }),
    }
}
