//! Dumps of our routes on a socket of their own, read one datagram at a time. The
//! shared rtnetlink connection reads a whole dump ahead into parsed messages (100k
//! routes: ~25 MB at the peak), which a check every minute must not cost.
use std::io;

use libc::RTM_NEWROUTE;
use netlink_packet_core::{
    Emitable, NetlinkMessage, Parseable, NLMSG_DONE, NLMSG_ERROR, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_route::route::{RouteHeader, RouteMessage, RouteProtocol};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};

use super::error::{DumpError, KernelError};
use super::netlink::{messages, route_from_msg};
use super::{Route, ROUTE_PROTOCOL};

/// The kernel fills dump datagrams up to 32 KB.
const DUMP_DATAGRAM: usize = 64 << 10;

/// Hands each of our routes of `family` (main table) to `each`.
pub(crate) async fn own_routes(
    family: AddressFamily,
    mut each: impl FnMut(Route),
) -> Result<(), DumpError> {
    let fail = |what: &str, source: io::Error| {
        DumpError::Failed(KernelError::Transport {
            what: format!("dump routes: {what}"),
            source,
        })
    };
    let mut sock = TokioSocket::new(NETLINK_ROUTE).map_err(|e| fail("socket", e))?;
    sock.socket_mut().bind_auto().map_err(|e| fail("bind", e))?;
    sock.socket_mut()
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| fail("connect", e))?;
    // Without strict checking the kernel ignores the protocol filter and sends every
    // route of the table (a full BGP table on some hosts).
    sock.socket_ref()
        .set_netlink_get_strict_chk(true)
        .map_err(|e| fail("NETLINK_GET_STRICT_CHK", e))?;
    let mut req = RouteMessage::default();
    req.header.address_family = family;
    req.header.table = RouteHeader::RT_TABLE_MAIN;
    req.header.protocol = RouteProtocol::from(ROUTE_PROTOCOL);
    let mut msg = NetlinkMessage::from(RouteNetlinkMessage::GetRoute(req));
    msg.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.header.sequence_number = 1;
    msg.finalize();
    let mut out = vec![0u8; msg.buffer_len()];
    msg.emit(&mut out);
    sock.send(&out).await.map_err(|e| fail("send", e))?;

    let mut buf: Vec<u8> = Vec::with_capacity(DUMP_DATAGRAM);
    let mut interrupted = false;
    loop {
        buf.clear();
        sock.recv(&mut buf).await.map_err(|e| fail("receive", e))?;
        for m in messages(&buf).filter(|m| m.seq == 1) {
            interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
            match m.ty {
                RTM_NEWROUTE => {
                    let route = RouteMessage::parse(m.payload)
                        .ok()
                        .and_then(|r| route_from_msg(&r));
                    if let Some(route) = route {
                        each(route);
                    }
                }
                NLMSG_DONE | NLMSG_ERROR => {
                    let code = m
                        .payload
                        .get(..4)
                        .and_then(|w| w.try_into().ok())
                        .map(i32::from_ne_bytes)
                        .unwrap_or(0);
                    // A table that does not exist yet (a fresh namespace without IPv6
                    // routes) holds no route of ours.
                    let no_table = m.ty == NLMSG_DONE && code.abs() == libc::ENOENT;
                    if code != 0 && !no_table {
                        return Err(DumpError::Failed(KernelError::Refused {
                            what: "dump routes".into(),
                            errno: code.abs(),
                        }));
                    }
                    return if interrupted {
                        Err(DumpError::Interrupted)
                    } else {
                        Ok(())
                    };
                }
                _ => {}
            }
        }
    }
}
