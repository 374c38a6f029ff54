//! One BGP session: a tokio task per peer owning its TCP connections and timers.
//!
//! Each accepted or opened connection goes through the OPEN exchange in its own task;
//! the session task then resolves collisions (RFC 4271 6.8), waits for the first
//! KEEPALIVE and runs the Established state. Reading runs in a task of its own so that
//! a peer sending us a large table can never block our writes, or the other way round.
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout};
use tracing::Instrument;

use super::adj_out::Changes;
use super::fsm::{self, Backoff, Direction, LocalParams, Negotiated, State};
use super::md5::{self, Md5Counters};
use super::wire::{
    codes, frame_len, Codec, DecodeError, ErrorAction, Family, Message, Notification, Origin,
    RouteAttrs, Update,
};
use crate::config::Peer;

/// A second connection completing within this time of Established is a collision,
/// not the peer restarting (see `run`).
const COLLISION_WINDOW: Duration = Duration::from_secs(1);
/// How long we wait for the peer's OPEN after sending ours.
const OPEN_WAIT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HANDSHAKES: usize = 4;
/// How long a peer with BFD on waits for BFD before BGP starts anyway, so a router
/// without BFD is never locked out (issue 18).
pub const BFD_HOLD: Duration = Duration::from_secs(90);

#[derive(Clone, Debug)]
pub struct SessionParams {
    /// Unique per session task, so that events of a replaced task are recognised.
    pub id: u64,
    pub peer: Peer,
    pub local: LocalParams,
    /// Source address for outgoing connections (the listen address, when specific;
    /// our link-local on the interface of an unnumbered peer).
    pub bind: Option<IpAddr>,
}

pub enum SessionCmd {
    /// A connection the listener accepted from this peer's address.
    Inbound(TcpStream),
    /// An unnumbered peer's router was heard at this link-local address (scope: the
    /// interface): connections go there from now on.
    Neighbour(SocketAddrV6),
    /// Route changes for the session established as `epoch`.
    Changes {
        epoch: u64,
        changes: Changes,
    },
    EndOfRib {
        epoch: u64,
        families: Vec<Family>,
    },
    /// BFD reached Up: the session may start (at once).
    BfdUp,
    /// BFD saw the path fail: close the session with Cease/BFD Down (RFC 9384) and
    /// start again only once BFD is Up or has stayed down `BFD_HOLD`.
    BfdDown,
    /// Close the session (with this NOTIFICATION, if any) and end the task.
    Stop {
        notification: Option<Notification>,
        done: oneshot::Sender<()>,
    },
}

#[derive(Debug)]
pub enum SessionEvent {
    Established {
        id: u64,
        epoch: u64,
        local: IpAddr,
        negotiated: Negotiated,
    },
    Down {
        id: u64,
        epoch: u64,
    },
    RouteRefresh {
        id: u64,
        epoch: u64,
    },
}

/// Counters the session's tasks bump without taking the status lock.
#[derive(Debug, Default)]
pub struct ReceivedCounters {
    pub updates: AtomicU64,
    pub prefixes: AtomicU64,
    pub errors: AtomicU64,
    /// Messages by BGP message type (index = type code, 1..=5), both ways.
    pub messages_sent: [AtomicU64; 6],
    pub messages_received: [AtomicU64; 6],
    /// The last NOTIFICATION each way, kept across reconnects: what explains a
    /// session that is down.
    pub last_sent: Mutex<Option<NotificationRecord>>,
    pub last_received: Mutex<Option<NotificationRecord>>,
}

/// A NOTIFICATION and when it went or came.
#[derive(Clone, Debug)]
pub struct NotificationRecord {
    pub notification: Notification,
    pub at: SystemTime,
}

impl ReceivedCounters {
    fn sent(&self, bytes: &[u8]) {
        for ty in message_types(bytes) {
            if let Some(c) = self.messages_sent.get(usize::from(ty)) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn received(&self, msg: &Message) {
        let ty = message_type(msg);
        self.messages_received[usize::from(ty)].fetch_add(1, Ordering::Relaxed);
        if let Message::Notification(n) = msg {
            record(&self.last_received, n);
        }
    }

    fn notification_sent(&self, n: &Notification) {
        record(&self.last_sent, n);
    }
}

fn record(slot: &Mutex<Option<NotificationRecord>>, n: &Notification) {
    if let Ok(mut s) = slot.lock() {
        *s = Some(NotificationRecord {
            notification: n.clone(),
            at: SystemTime::now(),
        });
    }
}

/// The type code of each whole message in an encoded buffer.
fn message_types(bytes: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut off = 0;
    std::iter::from_fn(move || {
        let header = bytes.get(off..off + 19)?;
        let len = usize::from(u16::from_be_bytes([header[16], header[17]]));
        if len < 19 {
            return None;
        }
        off += len;
        Some(header[18])
    })
}

fn message_type(m: &Message) -> u8 {
    match m {
        Message::Open(_) => 1,
        Message::Update(_) => 2,
        Message::Notification(_) => 3,
        Message::Keepalive => 4,
        Message::RouteRefresh(_) => 5,
    }
}

/// What `status` shows of one session.
#[derive(Debug)]
pub struct PeerStatus {
    pub state: State,
    pub established_at: Option<Instant>,
    /// Wall-clock time of the last move into or out of Established.
    pub up_since: Option<SystemTime>,
    pub down_since: Option<SystemTime>,
    /// How many times the session reached Established (flaps + 1).
    pub established_transitions: u64,
    pub local_address: Option<IpAddr>,
    /// Where connections go: the configured address, or for an unnumbered peer the
    /// router's link-local once heard (None until then).
    pub neighbour: Option<IpAddr>,
    pub negotiated: Option<Negotiated>,
    /// The capabilities of the peer's last OPEN, by name.
    pub capabilities_received: Vec<String>,
    /// Why the last connection attempt or session ended (connect errors included).
    pub last_error: Option<String>,
    pub received: Arc<ReceivedCounters>,
}

impl Default for PeerStatus {
    fn default() -> Self {
        PeerStatus {
            state: State::Idle,
            established_at: None,
            up_since: None,
            down_since: Some(SystemTime::now()),
            established_transitions: 0,
            local_address: None,
            neighbour: None,
            negotiated: None,
            capabilities_received: Vec::new(),
            last_error: None,
            received: Arc::new(ReceivedCounters::default()),
        }
    }
}

impl PeerStatus {
    fn went_down(&mut self) {
        if self.established_at.take().is_some() || self.up_since.is_some() {
            self.up_since = None;
            self.down_since = Some(SystemTime::now());
        }
    }
}

pub type SharedStatus = Arc<Mutex<PeerStatus>>;

fn update_status(status: &SharedStatus, f: impl FnOnce(&mut PeerStatus)) {
    if let Ok(mut s) = status.lock() {
        f(&mut s);
    }
}

/// One connection past the OPEN exchange.
struct Conn {
    direction: Direction,
    /// When this connection reached Established.
    established_at: Option<Instant>,
    local: IpAddr,
    negotiated: Negotiated,
    codec: Codec,
    writer: OwnedWriteHalf,
    events: mpsc::UnboundedReceiver<ReaderEvent>,
    reader: tokio::task::JoinHandle<()>,
    /// The capabilities of the peer's OPEN, by name.
    peer_capabilities: Vec<String>,
    counters: Arc<ReceivedCounters>,
}

impl Conn {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.counters.sent(bytes);
        let limit = self
            .negotiated
            .hold_duration()
            .unwrap_or(Duration::from_secs(90));
        match timeout(limit, self.writer.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write failed: {e}")),
            Err(_) => Err(format!("peer has not read for {}s", limit.as_secs())),
        }
    }

    async fn send_message(&mut self, msg: &Message) -> Result<(), String> {
        let mut buf = Vec::new();
        msg.encode(&self.codec, &mut buf);
        self.send(&buf).await
    }

    /// Sends a NOTIFICATION (best effort; a Hard Reset under RFC 8538's N bit) and
    /// closes.
    async fn close(mut self, notification: Option<Notification>) {
        if let Some(n) = notification {
            let n = self.negotiated.graceful.outgoing(n);
            self.counters.notification_sent(&n);
            let _ = self.send_message(&Message::Notification(n)).await;
        }
        let _ = timeout(Duration::from_secs(1), self.writer.shutdown()).await;
        self.reader.abort();
    }
}

enum ReaderEvent {
    Keepalive,
    RouteRefresh,
    Notification(Notification),
    /// A message that resets the session; the NOTIFICATION to send back.
    Fatal(String, Option<Notification>),
    Closed(String),
}

struct HandshakeError {
    direction: Direction,
    message: String,
}

pub async fn run(
    params: SessionParams,
    mut cmds: mpsc::UnboundedReceiver<SessionCmd>,
    events: mpsc::UnboundedSender<SessionEvent>,
    status: SharedStatus,
) {
    let params = Arc::new(params);
    let peer = params.peer.remote.clone();
    // Where our connections go; an unnumbered peer's comes from the agent.
    let mut target = params
        .peer
        .remote
        .address()
        .map(|a| SocketAddr::new(a, params.peer.port));
    update_status(&status, |s| s.neighbour = target.map(|t| t.ip()));
    let id = params.id;
    let received = status
        .lock()
        .map(|s| s.received.clone())
        .unwrap_or_default();
    let mut backoff = Backoff::default();
    let mut handshakes: JoinSet<Result<Conn, HandshakeError>> = JoinSet::new();
    let mut confirm: Option<Conn> = None;
    let mut established: Option<Conn> = None;
    let mut epoch: u64 = 0;
    let mut connect_at = tokio::time::Instant::now();
    let mut outbound_pending = false;
    // The connection in OpenConfirm is the survivor of a collision we resolved.
    let mut collision_survivor = false;
    let mut next_keepalive = tokio::time::Instant::now();
    // A ROUTE-REFRESH is answered with a copy of the whole Adj-RIB-Out; while one is
    // queued (until its End-of-RIB), more requests are already answered by it.
    let mut refresh_queued = false;
    // The prefixes of a sync's chunk that would have ended in a partial UPDATE: they
    // go out with the next chunk, which the agent hands over at once.
    let mut held = Changes::default();
    let mut template = RouteAttrs {
        origin: Origin::Igp,
        as_path: if params.peer.asn == params.local.asn {
            vec![]
        } else {
            vec![params.local.asn]
        },
        next_hop: IpAddr::from([0, 0, 0, 0]),
        link_local_next_hop: None,
        local_pref: (params.peer.asn == params.local.asn).then_some(100),
        extra: Default::default(),
    };
    update_status(&status, |s| s.state = State::Connect);
    let mut bfd = params.peer.bfd.map(|_| BfdGate::down());

    loop {
        let idle = established.is_none() && confirm.is_none();
        let start_at = bfd
            .as_ref()
            .map_or(connect_at, |g| g.open_at().max(connect_at));
        let active_conn_keepalive = established
            .as_ref()
            .or(confirm.as_ref())
            .and_then(|c| c.negotiated.keepalive_interval());
        tokio::select! {
            _ = sleep_until(start_at), if idle && !outbound_pending && target.is_some() => {
                let Some(to) = target else { continue };
                outbound_pending = true;
                update_status(&status, |s| s.state = State::Connect);
                let (p, r) = (params.clone(), received.clone());
                handshakes.spawn(async move {
                    let stream = connect(&p, to).await.map_err(|message| HandshakeError { direction: Direction::Outbound, message })?;
                    handshake(stream, Direction::Outbound, &p, r).await
                }.in_current_span());
            }
            Some(joined) = handshakes.join_next(), if !handshakes.is_empty() => {
                let result = match joined {
                    Ok(r) => r,
                    Err(e) => Err(HandshakeError { direction: Direction::Outbound, message: format!("handshake task failed: {e}") }),
                };
                match result {
                    Err(e) => {
                        if e.direction == Direction::Outbound {
                            outbound_pending = false;
                            connect_at = tokio::time::Instant::now() + backoff.next_delay();
                        }
                        tracing::info!(%peer, direction = ?e.direction, "session attempt failed: {}", e.message);
                        let message = e.message;
                        update_status(&status, |s| {
                            s.last_error = Some(message);
                            if s.state != State::Established { s.state = State::Active; }
                        });
                    }
                    Ok(conn) => {
                        if conn.direction == Direction::Outbound {
                            outbound_pending = false;
                        }
                        if let Some(current) = established.take() {
                            // A connection that completes right after this session was
                            // established is the peer's side of the same start (a
                            // collision: RFC 4271 6.8 keeps the Established one). Taking it
                            // for a restart lost both, as the peer closes it too: one
                            // session in 50 came up 0.8 s late in about one start in four.
                            let restarted = current.established_at.is_some_and(|at| at.elapsed() > COLLISION_WINDOW);
                            if conn.direction == Direction::Inbound && current.negotiated.graceful_restart && restarted {
                                // RFC 4724 4.2: a peer that restarts reconnects while we still
                                // hold the old session; the new connection replaces it.
                                tracing::info!(%peer, "peer reconnected: replacing the established session");
                                current.close(None).await;
                                let _ = events.send(SessionEvent::Down { id, epoch });
                                confirm = Some(conn);
                                update_status(&status, |s| { s.state = State::OpenConfirm; s.went_down(); });
                            } else {
                                established = Some(current);
                                conn.close(Some(Notification::cease(codes::cease::CONNECTION_COLLISION_RESOLUTION))).await;
                            }
                        } else if let Some(other) = confirm.take() {
                            let keep = fsm::collision_survivor(params.local.router_id, conn.negotiated.peer_id);
                            let (winner, loser) = if conn.direction == keep { (conn, other) } else { (other, conn) };
                            tracing::info!(%peer, kept = ?winner.direction, "connection collision resolved");
                            loser.close(Some(Notification::cease(codes::cease::CONNECTION_COLLISION_RESOLUTION))).await;
                            confirm = Some(winner);
                            collision_survivor = true;
                        } else {
                            next_keepalive = tokio::time::Instant::now() + conn.negotiated.keepalive_interval().unwrap_or(Duration::from_secs(3600));
                            confirm = Some(conn);
                            update_status(&status, |s| s.state = State::OpenConfirm);
                        }
                    }
                }
            }
            event = next_event(&mut confirm) => {
                match event {
                    Some(ReaderEvent::Keepalive) => {
                        if let Some(mut conn) = confirm.take() {
                            epoch += 1;
                            refresh_queued = false;
                            held = Changes::default();
                            backoff.reset();
                            collision_survivor = false;
                            tracing::info!(%peer, local = %conn.local, families = ?conn.negotiated.families, "session established");
                            let _ = events.send(SessionEvent::Established { id, epoch, local: conn.local, negotiated: conn.negotiated.clone() });
                            let (local, negotiated) = (conn.local, conn.negotiated.clone());
                            // Over a link-local session (unnumbered) every IPv6 next hop
                            // also carries ours: the only one the router can resolve when
                            // the link has no global address (RFC 2545 section 3).
                            template.link_local_next_hop = match local {
                                IpAddr::V6(ll) if ll.is_unicast_link_local() => Some(ll),
                                _ => None,
                            };
                            conn.established_at = Some(Instant::now());
                            let capabilities = conn.peer_capabilities.clone();
                            update_status(&status, |s| {
                                s.state = State::Established;
                                s.established_at = conn.established_at;
                                s.up_since = Some(SystemTime::now());
                                s.down_since = None;
                                s.established_transitions += 1;
                                s.local_address = Some(local);
                                s.negotiated = Some(negotiated);
                                s.capabilities_received = capabilities;
                                s.last_error = None;
                            });
                            established = Some(conn);
                        }
                    }
                    other => {
                        if let Some(conn) = confirm.take() {
                            let (message, reply) = describe_end(other, &conn.negotiated);
                            conn.close(reply).await;
                            fail(&status, &mut connect_at, &mut backoff, message);
                            if std::mem::take(&mut collision_survivor) {
                                // The peer had already taken the other connection to
                                // Established before our OPEN reached it, so it dropped
                                // this one. Nothing is wrong: connect again now rather
                                // than after a backoff (0.8 s at 50 peers, measured).
                                tracing::info!(%peer, "the peer closed the collision's survivor: reconnecting now");
                                connect_at = tokio::time::Instant::now();
                            }
                        }
                    }
                }
            }
            event = next_event(&mut established) => {
                match event {
                    Some(ReaderEvent::Keepalive) => {}
                    Some(ReaderEvent::RouteRefresh) if refresh_queued => {
                        tracing::debug!(%peer, "ROUTE-REFRESH while the last one is being answered: answered by it");
                    }
                    Some(ReaderEvent::RouteRefresh) => {
                        refresh_queued = true;
                        let _ = events.send(SessionEvent::RouteRefresh { id, epoch });
                    }
                    other => {
                        if let Some(conn) = established.take() {
                            let (message, reply) = describe_end(other, &conn.negotiated);
                            tracing::warn!(%peer, "session down: {message}");
                            conn.close(reply).await;
                            let _ = events.send(SessionEvent::Down { id, epoch });
                            update_status(&status, PeerStatus::went_down);
                            fail(&status, &mut connect_at, &mut backoff, message);
                        }
                    }
                }
            }
            _ = sleep_until(next_keepalive), if active_conn_keepalive.is_some() => {
                next_keepalive = tokio::time::Instant::now() + active_conn_keepalive.unwrap_or(Duration::from_secs(30));
                let conn = established.as_mut().or(confirm.as_mut());
                if let Some(conn) = conn {
                    if let Err(e) = conn.send_message(&Message::Keepalive).await {
                        tracing::warn!(%peer, "keepalive: {e}");
                    }
                }
            }
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else {
                    // The agent is gone (restart): drop connections without a word.
                    return;
                };
                match cmd {
                    SessionCmd::Inbound(stream) => {
                        if bfd.as_ref().is_some_and(|g| !g.is_open()) {
                            tracing::debug!(%peer, "dropped a connection: waiting for BFD");
                            continue;
                        }
                        // A peer needs at most two connections in flight (ours and its
                        // own); more from its address is a flood, not BGP.
                        if handshakes.len() >= MAX_HANDSHAKES {
                            tracing::debug!(%peer, "dropped a connection: too many handshakes in progress");
                            continue;
                        }
                        if params.peer.remote.interface().is_some() {
                            // The router's address, learnt from its connection when no
                            // advertisement told it first.
                            if let (None, Ok(from)) = (target, stream.peer_addr()) {
                                target = Some(from);
                                update_status(&status, |s| s.neighbour = Some(from.ip()));
                            }
                        }
                        let (p, r) = (params.clone(), received.clone());
                        handshakes.spawn(async move { handshake(stream, Direction::Inbound, &p, r).await }.in_current_span());
                    }
                    SessionCmd::Neighbour(at) => {
                        let at = SocketAddr::V6(SocketAddrV6::new(*at.ip(), params.peer.port, 0, at.scope_id()));
                        if target != Some(at) {
                            tracing::info!(%peer, router = %at, "the router on the link is at {}", at.ip());
                            target = Some(at);
                            update_status(&status, |s| s.neighbour = Some(at.ip()));
                            // Connect now rather than after a backoff meant for another address.
                            if established.is_none() && confirm.is_none() {
                                connect_at = tokio::time::Instant::now();
                            }
                        }
                    }
                    SessionCmd::Changes { epoch: e, changes } => {
                        if e == epoch {
                            if let Some(conn) = established.as_mut() {
                                let mut buf = Vec::new();
                                let mut changes = changes;
                                changes.absorb(std::mem::take(&mut held));
                                changes.encode_holding(&conn.codec, &template, &mut buf, &mut held);
                                if let Err(message) = conn.send(&buf).await {
                                    if let Some(conn) = established.take() {
                                        conn.close(None).await;
                                        let _ = events.send(SessionEvent::Down { id, epoch });
                                        fail(&status, &mut connect_at, &mut backoff, message);
                                    }
                                }
                            }
                        }
                    }
                    SessionCmd::EndOfRib { epoch: e, families } => {
                        if e == epoch {
                            refresh_queued = false;
                            if let Some(conn) = established.as_mut() {
                                let mut buf = Vec::new();
                                std::mem::take(&mut held).encode(&conn.codec, &template, &mut buf);
                                for f in families {
                                    Message::Update(Update::end_of_rib(f)).encode(&conn.codec, &mut buf);
                                }
                                let _ = conn.send(&buf).await;
                            }
                        }
                    }
                    SessionCmd::BfdUp => {
                        if let Some(g) = bfd.as_mut() {
                            g.up = true;
                            // The path is back: no reason to wait out a backoff.
                            connect_at = tokio::time::Instant::now();
                        }
                    }
                    SessionCmd::BfdDown => {
                        let Some(g) = bfd.as_mut() else { continue };
                        *g = BfdGate::down();
                        let notification = Notification::cease(codes::cease::BFD_DOWN);
                        if let Some(conn) = established.take() {
                            tracing::warn!(%peer, "session down: BFD detected a path failure");
                            conn.close(Some(notification.clone())).await;
                            let _ = events.send(SessionEvent::Down { id, epoch });
                            update_status(&status, PeerStatus::went_down);
                        }
                        if let Some(conn) = confirm.take() {
                            conn.close(Some(notification)).await;
                        }
                        handshakes.abort_all();
                        outbound_pending = false;
                        collision_survivor = false;
                        update_status(&status, |s| {
                            s.state = State::Active;
                            s.last_error = Some("BFD down: path failure".into());
                        });
                    }
                    SessionCmd::Stop { notification, done } => {
                        if let Some(conn) = established.take() {
                            conn.close(notification.clone()).await;
                        }
                        if let Some(conn) = confirm.take() {
                            conn.close(notification).await;
                        }
                        handshakes.abort_all();
                        update_status(&status, |s| { s.state = State::Idle; s.went_down(); });
                        let _ = done.send(());
                        return;
                    }
                }
            }
        }
    }
}

/// BFD's say on when a session may start: while BFD is Up, or once it has been down
/// `BFD_HOLD`.
struct BfdGate {
    up: bool,
    down_since: tokio::time::Instant,
}

impl BfdGate {
    fn down() -> BfdGate {
        BfdGate {
            up: false,
            down_since: tokio::time::Instant::now(),
        }
    }

    fn open_at(&self) -> tokio::time::Instant {
        if self.up {
            self.down_since
        } else {
            self.down_since + BFD_HOLD
        }
    }

    fn is_open(&self) -> bool {
        self.open_at() <= tokio::time::Instant::now()
    }
}

fn fail(
    status: &SharedStatus,
    connect_at: &mut tokio::time::Instant,
    backoff: &mut Backoff,
    message: String,
) {
    *connect_at = tokio::time::Instant::now() + backoff.next_delay();
    update_status(status, |s| {
        s.state = State::Active;
        s.went_down();
        s.last_error = Some(message);
    });
}

/// Why a connection ended, and what to send the peer about it.
fn describe_end(
    event: Option<ReaderEvent>,
    negotiated: &Negotiated,
) -> (String, Option<Notification>) {
    match event {
        Some(ReaderEvent::Notification(n)) => {
            // RFC 8538 section 4: under the N bit only a Hard Reset drops routes; any
            // other NOTIFICATION is a graceful restart (we import nothing, so only
            // the peer's side of it matters: it keeps ours as stale).
            let what = if n.is_hard_reset() {
                " (hard reset)"
            } else if negotiated.graceful.hard_reset() {
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
            Some(fsm_error(codes::fsm::UNEXPECTED_MESSAGE_IN_OPENCONFIRM)),
        ),
        None => ("connection reader ended".into(), None),
    }
}

async fn next_event(conn: &mut Option<Conn>) -> Option<ReaderEvent> {
    match conn {
        Some(c) => c.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn connect(params: &SessionParams, target: SocketAddr) -> Result<TcpStream, String> {
    let peer = &params.peer;
    let v6 = target.is_ipv6();
    let socket = if v6 {
        TcpSocket::new_v6()
    } else {
        TcpSocket::new_v4()
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(password) = &peer.password {
        md5::set_key(&socket, target.ip(), password.as_bytes(), v6).map_err(|e| e.to_string())?;
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
        socket.bind(from).map_err(|e| format!("bind {from}: {e}"))?;
    }
    let before = Md5Counters::read();
    match timeout(CONNECT_TIMEOUT, socket.connect(target)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(with_md5_hint(
            format!("connect to {target}: {e}"),
            peer,
            &before,
        )),
        Err(_) => Err(with_md5_hint(
            format!("connect to {target}: timed out"),
            peer,
            &before,
        )),
    }
}

/// A TCP MD5 mismatch is silent on the wire: the kernel's counters are the only clue.
fn with_md5_hint(message: String, peer: &Peer, before: &Md5Counters) -> String {
    let grown = Md5Counters::read().growth_since(before);
    match (grown, &peer.password) {
        (Some(g), _) => format!("{message}; probable TCP MD5 password mismatch (kernel counters: {g})"),
        (None, Some(_)) => format!("{message}; TCP MD5 is configured: a password mismatch makes the peer drop our SYNs silently"),
        (None, None) => message,
    }
}

async fn handshake(
    stream: TcpStream,
    direction: Direction,
    params: &SessionParams,
    counters: Arc<ReceivedCounters>,
) -> Result<Conn, HandshakeError> {
    let err = |message: String| HandshakeError { direction, message };
    let _ = stream.set_nodelay(true);
    let local = stream
        .local_addr()
        .map(|a| md5::unmap(a.ip()))
        .map_err(|e| err(e.to_string()))?;
    let (mut rd, mut wr) = stream.into_split();
    let plain = Codec::default();
    let mut out = Vec::new();
    Message::Open(fsm::build_open(&params.local)).encode(&plain, &mut out);
    counters.sent(&out);
    wr.write_all(&out)
        .await
        .map_err(|e| err(format!("sending OPEN: {e}")))?;

    let mut buf = Vec::with_capacity(4096);
    let msg = match read_message(&mut rd, &mut buf, &plain, Some(OPEN_WAIT)).await {
        Ok(m) => {
            counters.received(&m);
            m
        }
        Err(ReadError::Decode(e)) => {
            send_notification(&mut wr, &plain, e.notification.clone(), &counters).await;
            return Err(err(format!("bad message from peer: {}", e.reason)));
        }
        Err(ReadError::Timeout) => {
            return Err(err(format!(
                "no OPEN from the peer within {}s",
                OPEN_WAIT.as_secs()
            )));
        }
        Err(ReadError::Io(e)) => return Err(err(format!("waiting for OPEN: {e}"))),
    };
    let open = match msg {
        Message::Open(open) => open,
        Message::Notification(n) => return Err(err(format!("peer sent NOTIFICATION {n}"))),
        _ => {
            send_notification(
                &mut wr,
                &plain,
                fsm_error(codes::fsm::UNEXPECTED_MESSAGE_IN_OPENSENT),
                &counters,
            )
            .await;
            return Err(err("peer sent a message other than OPEN first".into()));
        }
    };
    let negotiated = match fsm::negotiate(&params.local, params.peer.asn, &open) {
        Ok(n) => n,
        Err(n) => {
            let message = format!("refused the peer's OPEN: {n}");
            send_notification(&mut wr, &plain, n, &counters).await;
            return Err(err(message));
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
        .map_err(|e| err(format!("sending KEEPALIVE: {e}")))?;

    let (tx, events) = mpsc::unbounded_channel();
    let hold = negotiated.hold_duration();
    let peer_capabilities = open.capabilities.iter().map(capability_name).collect();
    let reader =
        tokio::spawn(read_loop(rd, buf, codec, hold, tx, counters.clone()).in_current_span());
    Ok(Conn {
        direction,
        established_at: None,
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
pub fn capability_name(c: &super::wire::Capability) -> String {
    use super::wire::Capability as C;
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
        C::Unknown { code, .. } => format!("capability {code}"),
    }
}

fn fsm_error(subcode: u8) -> Notification {
    Notification {
        code: codes::FSM_ERROR,
        subcode,
        data: Vec::new(),
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
                Some(fsm_error(codes::fsm::UNEXPECTED_MESSAGE_IN_OPENCONFIRM)),
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
                Some(fsm_error(codes::fsm::UNEXPECTED_MESSAGE_IN_ESTABLISHED)),
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
                Some(Notification {
                    code: codes::HOLD_TIMER_EXPIRED,
                    subcode: 0,
                    data: vec![],
                }),
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

    #[test]
    fn received_notifications_are_described_per_rfc_8538() {
        use crate::bgp::graceful::GracefulRestartOffer;
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
            &super::super::wire::Open {
                version: 4,
                my_as: 65000,
                hold_time: 90,
                bgp_id: std::net::Ipv4Addr::new(192, 0, 2, 2),
                capabilities: vec![],
            },
        )
        .expect("negotiated");
        let cease = Notification::new(6, 2, vec![]);
        let hard = Notification::hard_reset(&Notification::new(4, 0, vec![]));
        let end = |n: &Notification, neg: &Negotiated| {
            describe_end(Some(ReaderEvent::Notification(n.clone())), neg)
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

    #[test]
    fn bfd_gate_opens_on_up_or_after_the_hold() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut gate = BfdGate::down();
            assert!(!gate.is_open(), "a session with BFD waits for it");
            tokio::time::advance(BFD_HOLD - Duration::from_secs(1)).await;
            assert!(!gate.is_open());
            // A router without BFD is never locked out.
            tokio::time::advance(Duration::from_secs(1)).await;
            assert!(gate.is_open());

            gate = BfdGate::down();
            assert!(!gate.is_open());
            gate.up = true;
            assert!(gate.is_open(), "BFD Up opens it at once");
            assert!(gate.open_at() <= tokio::time::Instant::now());
        });
    }
}
