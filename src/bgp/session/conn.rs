//! One connection to the peer: connecting (with its MD5 key), the OPEN exchange, the
//! reader task that turns messages into [`ReaderEvent`]s, and writing. The session
//! task in `mod.rs` owns these; the state machine in `machine.rs` decides about them.
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tracing::Instrument;

use super::super::fsm::{self, Direction, Negotiated};
use super::super::md5::{self, Md5Counters};
use super::super::wire::codes::{ErrorCode, FsmSubcode};
use super::super::wire::{
    frame_len, Codec, DecodeError, ErrorAction, Family, Message, Notification,
};
use super::error::{ConnError, Md5Hint};
use super::machine::ConnId;
use super::{ReceivedCounters, SessionParams};
use crate::config::Peer;

/// How long we wait for the peer's OPEN after sending ours.
const OPEN_WAIT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Conn {
    pub(super) id: ConnId,
    pub(super) direction: Direction,
    pub(super) local: IpAddr,
    pub(super) negotiated: Negotiated,
    pub(super) codec: Codec,
    writer: OwnedWriteHalf,
    events: mpsc::UnboundedReceiver<ReaderEvent>,
    reader: tokio::task::JoinHandle<()>,
    /// The capabilities of the peer's OPEN, by name.
    pub(super) peer_capabilities: Vec<String>,
    counters: Arc<ReceivedCounters>,
}

impl Conn {
    pub(super) async fn send(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.counters.sent(bytes);
        let limit = self
            .negotiated
            .hold_duration()
            .unwrap_or(Duration::from_secs(90));
        match timeout(limit, self.writer.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ConnError::Write(e)),
            Err(_) => Err(ConnError::NotReading(limit.as_secs())),
        }
    }

    pub(super) async fn send_message(&mut self, msg: &Message) -> Result<(), ConnError> {
        let mut buf = Vec::new();
        msg.encode(&self.codec, &mut buf);
        self.send(&buf).await
    }

    /// Sends a NOTIFICATION (best effort; a Hard Reset under RFC 8538's N bit) and
    /// closes.
    pub(super) async fn close(mut self, notification: Option<Notification>) {
        if let Some(n) = notification {
            let n = self.negotiated.graceful.outgoing(n);
            self.counters.notification_sent(&n);
            let _ = self.send_message(&Message::Notification(n)).await;
        }
        let _ = timeout(Duration::from_secs(1), self.writer.shutdown()).await;
        self.reader.abort();
    }
}

pub(super) enum ReaderEvent {
    Keepalive,
    RouteRefresh,
    Notification(Notification),
    /// A message that resets the session; the NOTIFICATION to send back.
    Fatal(String, Option<Notification>),
    Closed(String),
}

pub(super) struct HandshakeError {
    pub(super) direction: Direction,
    pub(super) error: ConnError,
}

/// Why a connection ended, and what to send the peer about it; `hard_reset`: both
/// sides sent RFC 8538's N bit.
pub(super) fn describe_end(
    event: Option<ReaderEvent>,
    hard_reset: bool,
) -> (String, Option<Notification>) {
    match event {
        Some(ReaderEvent::Notification(n)) => {
            // RFC 8538 section 4: under the N bit only a Hard Reset drops routes; any
            // other NOTIFICATION is a graceful restart (we import nothing, so only
            // the peer's side of it matters: it keeps ours as stale).
            let what = if n.is_hard_reset() {
                " (hard reset)"
            } else if hard_reset {
                " (N bit: the peer keeps our routes as stale until we are back)"
            } else {
                ""
            };
            (format!("peer sent NOTIFICATION {n}{what}"), None)
        }
        Some(ReaderEvent::Fatal(message, reply)) => (message, reply),
        Some(ReaderEvent::Closed(message)) => (message, None),
        Some(ReaderEvent::Keepalive) | Some(ReaderEvent::RouteRefresh) => (
            "unexpected message".into(),
            Some(Notification::error(
                FsmSubcode::UnexpectedMessageInOpenConfirm,
                Vec::new(),
            )),
        ),
        None => ("connection reader ended".into(), None),
    }
}

pub(super) async fn next_event(conn: &mut Option<Conn>) -> Option<ReaderEvent> {
    match conn {
        Some(c) => c.events.recv().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn connect(
    params: &SessionParams,
    target: SocketAddr,
) -> Result<TcpStream, ConnError> {
    let peer = &params.peer;
    let v6 = target.is_ipv6();
    let socket = if v6 {
        TcpSocket::new_v6()
    } else {
        TcpSocket::new_v4()
    }
    .map_err(ConnError::Socket)?;
    if let Some(password) = &peer.password {
        md5::set_key(&socket, target.ip(), password.as_bytes(), v6).map_err(ConnError::Md5Key)?;
    }
    if let Some(bind) = params
        .bind
        .filter(|b| b.is_ipv6() == v6 && !b.is_unspecified())
    {
        let from = match (bind, target) {
            // A link-local source needs the link it is on.
            (IpAddr::V6(ll), SocketAddr::V6(to)) if ll.is_unicast_link_local() => {
                SocketAddr::V6(SocketAddrV6::new(ll, 0, 0, to.scope_id()))
            }
            (ip, _) => SocketAddr::new(ip, 0),
        };
        socket
            .bind(from)
            .map_err(|source| ConnError::Bind { from, source })?;
    }
    let before = Md5Counters::read();
    match timeout(CONNECT_TIMEOUT, socket.connect(target)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(source)) => Err(ConnError::Connect {
            target,
            source,
            hint: md5_hint(peer, &before),
        }),
        Err(_) => Err(ConnError::ConnectTimeout {
            target,
            hint: md5_hint(peer, &before),
        }),
    }
}

fn md5_hint(peer: &Peer, before: &Md5Counters) -> Md5Hint {
    match (Md5Counters::read().growth_since(before), &peer.password) {
        (Some(g), _) => Md5Hint::Mismatch(g.to_string()),
        (None, Some(_)) => Md5Hint::Configured,
        (None, None) => Md5Hint::None,
    }
}

pub(super) async fn handshake(
    id: ConnId,
    stream: TcpStream,
    direction: Direction,
    params: &SessionParams,
    counters: Arc<ReceivedCounters>,
) -> Result<Conn, HandshakeError> {
    let err = |error: ConnError| HandshakeError { direction, error };
    let _ = stream.set_nodelay(true);
    let local = stream
        .local_addr()
        .map(|a| md5::unmap(a.ip()))
        .map_err(|e| err(ConnError::LocalAddress(e)))?;
    let (mut rd, mut wr) = stream.into_split();
    let plain = Codec::default();
    let mut out = Vec::new();
    Message::Open(fsm::build_open(&params.local)).encode(&plain, &mut out);
    counters.sent(&out);
    wr.write_all(&out)
        .await
        .map_err(|e| err(ConnError::SendOpen(e)))?;

    let mut buf = Vec::with_capacity(4096);
    let msg = match read_message(&mut rd, &mut buf, &plain, Some(OPEN_WAIT)).await {
        Ok(m) => {
            counters.received(&m);
            m
        }
        Err(ReadError::Decode(e)) => {
            send_notification(&mut wr, &plain, e.notification.clone(), &counters).await;
            return Err(err(ConnError::BadMessage(e.reason)));
        }
        Err(ReadError::Timeout) => {
            return Err(err(ConnError::NoOpen(OPEN_WAIT.as_secs())));
        }
        Err(ReadError::Io(e)) => return Err(err(ConnError::WaitOpen(e))),
    };
    let open = match msg {
        Message::Open(open) => open,
        Message::Notification(n) => return Err(err(ConnError::PeerNotification(n))),
        _ => {
            send_notification(
                &mut wr,
                &plain,
                Notification::error(FsmSubcode::UnexpectedMessageInOpenSent, Vec::new()),
                &counters,
            )
            .await;
            return Err(err(ConnError::NotOpenFirst));
        }
    };
    let negotiated = match fsm::negotiate(&params.local, params.peer.asn, &open) {
        Ok(n) => n,
        Err(n) => {
            send_notification(&mut wr, &plain, n.clone(), &counters).await;
            return Err(err(ConnError::RefusedOpen(n)));
        }
    };
    let codec = Codec {
        four_octet_as: negotiated.four_octet_as,
        extended_message: negotiated.extended_message,
    };
    out.clear();
    Message::Keepalive.encode(&codec, &mut out);
    counters.sent(&out);
    wr.write_all(&out)
        .await
        .map_err(|e| err(ConnError::SendKeepalive(e)))?;

    let (tx, events) = mpsc::unbounded_channel();
    let hold = negotiated.hold_duration();
    let peer_capabilities = open.capabilities.iter().map(capability_name).collect();
    let reader =
        tokio::spawn(read_loop(rd, buf, codec, hold, tx, counters.clone()).in_current_span());
    Ok(Conn {
        id,
        direction,
        local,
        negotiated,
        codec,
        writer: wr,
        events,
        reader,
        peer_capabilities,
        counters,
    })
}

async fn send_notification(
    wr: &mut OwnedWriteHalf,
    codec: &Codec,
    n: Notification,
    counters: &ReceivedCounters,
) {
    counters.notification_sent(&n);
    let mut out = Vec::new();
    Message::Notification(n).encode(codec, &mut out);
    let _ = timeout(Duration::from_secs(1), wr.write_all(&out)).await;
}

enum ReadError {
    Decode(DecodeError),
    Timeout,
    Io(std::io::Error),
}

/// Reads one whole message; `limit` bounds the wait (the hold timer), reset per message.
async fn read_message(
    rd: &mut OwnedReadHalf,
    buf: &mut Vec<u8>,
    codec: &Codec,
    limit: Option<Duration>,
) -> Result<Message, ReadError> {
    let deadline = limit.map(|l| tokio::time::Instant::now() + l);
    loop {
        if let Some(len) = frame_len(buf, codec).map_err(ReadError::Decode)? {
            if buf.len() >= len {
                let result = Message::decode(&buf[..len], codec);
                buf.drain(..len);
                return result.map_err(ReadError::Decode);
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(65536);
        }
        let read = rd.read_buf(buf);
        let n = match deadline {
            Some(d) => match tokio::time::timeout_at(d, read).await {
                Ok(r) => r,
                Err(_) => return Err(ReadError::Timeout),
            },
            None => read.await,
        }
        .map_err(ReadError::Io)?;
        if n == 0 {
            return Err(ReadError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "peer closed the connection",
            )));
        }
    }
}

/// A capability's name as operators know it (bird's and FRR's words).
pub fn capability_name(c: &super::super::wire::Capability) -> String {
    use super::super::wire::Capability as C;
    match c {
        C::Multiprotocol { afi, safi } => match Family::from_afi_safi(*afi, *safi) {
            Some(f) => format!("multiprotocol {}", f.name()),
            None => format!("multiprotocol afi {afi} safi {safi}"),
        },
        C::RouteRefresh => "route refresh".into(),
        C::ExtendedNextHop(_) => "extended next hop".into(),
        C::ExtendedMessage => "extended message".into(),
        C::GracefulRestart(gr) if gr.notification => {
            format!("graceful restart ({} s, N bit)", gr.restart_time)
        }
        C::GracefulRestart(gr) => format!("graceful restart ({} s)", gr.restart_time),
        C::FourOctetAs(_) => "4-octet AS".into(),
        C::Unknown { code, .. } => format!("capability {}", u8::from(*code)),
    }
}

fn message_name(m: &Message) -> &'static str {
    match m {
        Message::Open(_) => "OPEN",
        Message::Update(_) => "UPDATE",
        Message::Notification(_) => "NOTIFICATION",
        Message::Keepalive => "KEEPALIVE",
        Message::RouteRefresh(_) => "ROUTE-REFRESH",
    }
}

async fn read_loop(
    mut rd: OwnedReadHalf,
    mut buf: Vec<u8>,
    codec: Codec,
    hold: Option<Duration>,
    tx: mpsc::UnboundedSender<ReaderEvent>,
    counters: Arc<ReceivedCounters>,
) {
    // Until the peer's first KEEPALIVE the session is in OpenConfirm, where only
    // KEEPALIVE and NOTIFICATION are acceptable (RFC 4271 8.2.2).
    let mut confirmed = false;
    loop {
        let read = read_message(&mut rd, &mut buf, &codec, hold).await;
        if let Ok(m) = &read {
            counters.received(m);
        }
        let event = match read {
            Ok(Message::Keepalive) => {
                confirmed = true;
                ReaderEvent::Keepalive
            }
            Ok(Message::Notification(n)) => ReaderEvent::Notification(n),
            Ok(other) if !confirmed => ReaderEvent::Fatal(
                format!(
                    "peer sent {} before its first KEEPALIVE",
                    message_name(&other)
                ),
                Some(Notification::error(
                    FsmSubcode::UnexpectedMessageInOpenConfirm,
                    Vec::new(),
                )),
            ),
            Ok(Message::Update(update)) => {
                counters.updates.fetch_add(1, Ordering::Relaxed);
                counters
                    .prefixes
                    .fetch_add(update.nlri.len() as u64, Ordering::Relaxed);
                continue;
            }
            Ok(Message::RouteRefresh(_)) => ReaderEvent::RouteRefresh,
            Ok(Message::Open(_)) => ReaderEvent::Fatal(
                "peer sent OPEN on an established session".into(),
                Some(Notification::error(
                    FsmSubcode::UnexpectedMessageInEstablished,
                    Vec::new(),
                )),
            ),
            Err(ReadError::Decode(e)) => {
                if e.action == ErrorAction::SessionReset {
                    ReaderEvent::Fatal(
                        format!("bad message from peer: {}", e.reason),
                        Some(e.notification),
                    )
                } else {
                    // RFC 7606: we import nothing, so treat-as-withdraw and
                    // attribute-discard leave nothing to undo.
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("ignored malformed UPDATE: {}", e.reason);
                    continue;
                }
            }
            Err(ReadError::Timeout) => ReaderEvent::Fatal(
                format!(
                    "hold timer expired ({}s without a message)",
                    hold.map(|h| h.as_secs()).unwrap_or(0)
                ),
                Some(Notification::new(ErrorCode::HoldTimerExpired, 0, vec![])),
            ),
            Err(ReadError::Io(e)) => ReaderEvent::Closed(format!("connection lost: {e}")),
        };
        let last = !matches!(event, ReaderEvent::Keepalive | ReaderEvent::RouteRefresh);
        if tx.send(event).is_err() || last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::fsm::LocalParams;

    #[test]
    fn received_notifications_are_described_per_rfc_8538() {
        use crate::bgp::graceful::GracefulRestartOffer;
        use crate::bgp::wire::codes::CeaseSubcode;
        let offer = Some(GracefulRestartOffer {
            restart_time: 120,
            notification: true,
            restarting: false,
        });
        let mut negotiated = fsm::negotiate(
            &LocalParams {
                asn: 65010,
                router_id: std::net::Ipv4Addr::new(192, 0, 2, 1),
                hold_time: 90,
                graceful_restart: None,
            },
            65000,
            &super::super::super::wire::Open {
                version: 4,
                my_as: 65000,
                hold_time: 90,
                bgp_id: std::net::Ipv4Addr::new(192, 0, 2, 2),
                capabilities: vec![],
            },
        )
        .expect("negotiated");
        let cease = Notification::cease(CeaseSubcode::AdministrativeShutdown);
        let hold = Notification::new(ErrorCode::HoldTimerExpired, 0, vec![]);
        let hard = Notification::hard_reset(&hold);
        let end = |n: &Notification, neg: &Negotiated| {
            describe_end(
                Some(ReaderEvent::Notification(n.clone())),
                neg.graceful.hard_reset(),
            )
        };
        assert_eq!(
            end(&cease, &negotiated),
            (
                "peer sent NOTIFICATION Cease/Administrative Shutdown".into(),
                None
            )
        );
        let (text, reply) = end(&hard, &negotiated);
        assert_eq!(
            text,
            "peer sent NOTIFICATION Cease/Hard Reset (Hold Timer Expired/Unspecific) (hard reset)"
        );
        assert_eq!(reply, None, "nothing is sent back to a NOTIFICATION");
        negotiated.graceful.local = offer;
        negotiated.graceful.peer = offer;
        assert!(end(&cease, &negotiated)
            .0
            .ends_with("(N bit: the peer keeps our routes as stale until we are back)"));
        assert!(end(&hard, &negotiated).0.ends_with("(hard reset)"));
    }
}
