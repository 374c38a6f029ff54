//! Pipelined route requests on a dedicated socket: many requests per datagram,
//! a window of outstanding ACKs sized to the receive buffer (no ACK is ever lost).
use std::os::fd::AsFd;

use ipnet::IpNet;
use netlink_packet_core::{Emitable, NetlinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket};

use super::error::KernelError;
use super::request::acks;
use super::watch::set_rcvbuf;

const RCVBUF: usize = 16 << 20;
/// Upper bound of requests awaiting their ACK.
const MAX_WINDOW: usize = 8192;
/// Requests are packed into datagrams of about this size.
const SEND_CHUNK: usize = 32 << 10;
/// Generous per-ACK cost in the receive buffer (skb truesize).
const ACK_TRUESIZE: usize = 1024;

/// Sends every request (with NLM_F_ACK set by the caller) and waits for all ACKs.
/// Errors equal to `ignore_errno` (positive) count as success. `opened` learns the
/// socket's port id before any request goes out.
pub(crate) async fn run<I>(
    op: &str,
    total: usize,
    reqs: I,
    ignore_errno: Option<i32>,
    opened: impl FnOnce(u32),
) -> Result<(), KernelError>
where
    I: Iterator<Item = (IpNet, NetlinkMessage<RouteNetlinkMessage>)>,
{
    let mut reqs = reqs.peekable();
    if reqs.peek().is_none() {
        return Ok(());
    }
    let mut sock = TokioSocket::new(NETLINK_ROUTE)?;
    opened(sock.socket_mut().bind_auto()?.port_number());
    sock.socket_mut().connect(&SocketAddr::new(0, 0))?;
    set_rcvbuf(sock.socket_ref().as_fd(), RCVBUF, true)?;
    // Short error messages (no copy of the request).
    let _ = sock.socket_ref().set_cap_ack(true);
    let rcvbuf = sock.socket_ref().get_rx_buf_sz().unwrap_or(212_992);
    let window = (rcvbuf / ACK_TRUESIZE).clamp(16, MAX_WINDOW);

    let mut prefixes: Vec<IpNet> = Vec::with_capacity(total);
    let mut sbuf: Vec<u8> = Vec::with_capacity(SEND_CHUNK + 4096);
    let mut rbuf: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut outstanding = 0usize;
    let mut failed = 0usize;
    let mut first: Option<KernelError> = None;
    let mut seq: u32 = 0;
    let mut done_sending = false;
    loop {
        sbuf.clear();
        while !done_sending && outstanding < window && sbuf.len() < SEND_CHUNK {
            match reqs.next() {
                None => done_sending = true,
                Some((prefix, mut m)) => {
                    seq += 1;
                    m.header.sequence_number = seq;
                    m.finalize();
                    let start = sbuf.len();
                    sbuf.resize(start + m.buffer_len(), 0);
                    m.emit(&mut sbuf[start..]);
                    prefixes.push(prefix);
                    outstanding += 1;
                }
            }
        }
        if !sbuf.is_empty() {
            sock.send(&sbuf).await?;
            if outstanding < window && !done_sending {
                continue;
            }
        }
        if done_sending && outstanding == 0 {
            break;
        }
        rbuf.clear();
        sock.recv(&mut rbuf)
            .await
            .map_err(|source| KernelError::Transport {
                what: format!("route {op} batch: reading ACKs"),
                source,
            })?;
        for (orig_seq, code) in acks(&rbuf) {
            outstanding = outstanding.saturating_sub(1);
            if code != 0 && Some(code) != ignore_errno {
                failed += 1;
                if first.is_none() {
                    let prefix = prefixes
                        .get(orig_seq.wrapping_sub(1) as usize)
                        .map_or_else(|| "?".to_string(), |p| p.to_string());
                    first = Some(KernelError::Refused {
                        what: format!("{op} route {prefix}"),
                        errno: code,
                    });
                }
            }
        }
    }
    match first {
        None => Ok(()),
        Some(e) => Err(KernelError::Partial {
            op: op.to_string(),
            failed,
            total,
            example: Box::new(e),
        }),
    }
}
