//! One BGP session: a tokio task per peer owning its TCP connections and timers.
//!
//! - `machine.rs`: the state machine (pure): which connection is in OpenConfirm and
//!   which is Established, when to connect, collisions, BFD gating.
//! - `conn.rs`: one connection: connect, the OPEN exchange, its reader task, writes.
//! - `queue.rs`: the bounded queue of the agent's commands, and what overflows it.
//! - here: the task that feeds the machine its inputs (commands from the agent,
//!   connection events, timers) and carries out its actions.
//!
//! Each accepted or opened connection goes through the OPEN exchange in its own task;
//! reading runs in a task of its own so that a peer sending us a large table can
//! never block our writes, or the other way round.
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::sleep_until;
use tracing::Instrument;

use super::adj_out::Changes;
use super::fsm::{Direction, LocalParams, Negotiated, State};
use super::wire::{Family, Message, Notification, Origin, RouteAttrs, Update};
use crate::config::Peer;

mod conn;
mod error;
mod machine;
mod queue;

pub use conn::capability_name;
use conn::{Conn, HandshakeError, ReaderEvent};
use error::ConnError;
pub use machine::BFD_HOLD;
use machine::{Action, ConnInfo, Input, Machine};
pub use queue::{queue, QueueError, SessionReceiver, SessionSender, ROUTE_CHANGES_QUEUED};

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
#[derive(Clone, Debug)]
pub struct PeerStatus {
    pub state: State,
    pub uptime: Uptime,
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
            uptime: Uptime::default(),
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
    /// What a session that no task runs shows: Idle, down, nothing negotiated (a
    /// disabled peer's entry, or the status a reset session hands its successor).
    pub fn ended(&mut self) {
        self.state = State::Idle;
        self.uptime.went_down();
        self.negotiated = None;
        self.local_address = None;
        self.capabilities_received.clear();
    }
}

/// When a session came up or went down, and how often it came up.
#[derive(Clone, Debug)]
pub struct Uptime {
    /// Since when it is Established (monotonic: what uptimes are measured from).
    pub established_at: Option<Instant>,
    /// Wall-clock time of the last move into or out of Established.
    pub up_since: Option<SystemTime>,
    pub down_since: Option<SystemTime>,
    /// How many times the session reached Established (flaps + 1).
    pub established_transitions: u64,
}

impl Default for Uptime {
    /// Down since now: a new session has not been up yet.
    fn default() -> Self {
        Uptime {
            established_at: None,
            up_since: None,
            down_since: Some(SystemTime::now()),
            established_transitions: 0,
        }
    }
}

impl Uptime {
    fn came_up(&mut self) {
        self.established_at = Some(Instant::now());
        self.up_since = Some(SystemTime::now());
        self.down_since = None;
        self.established_transitions += 1;
    }

    /// A session that was not up stays down since it last went down (a failed
    /// connection attempt is not a new outage).
    fn went_down(&mut self) {
        if self.established_at.take().is_some() || self.up_since.is_some() {
            self.up_since = None;
            self.down_since = Some(SystemTime::now());
        }
    }
}

/// The session task is the only writer of its status; the agent reads it (status,
/// metrics) without ever waiting on the task.
pub type StatusSender = watch::Sender<PeerStatus>;
pub type StatusView = watch::Receiver<PeerStatus>;

/// A status channel starting from `initial` (a respawned session's carries on from
/// the last one's: its counters and last NOTIFICATIONs).
pub fn status_channel(initial: PeerStatus) -> (StatusSender, StatusView) {
    watch::channel(initial)
}

fn update_status(status: &StatusSender, f: impl FnOnce(&mut PeerStatus)) {
    status.send_modify(f);
}

/// One connection past the OPEN exchange.
/// The connections the machine placed: in OpenConfirm, and Established.
#[derive(Default)]
struct Slots {
    confirm: Option<Conn>,
    established: Option<Conn>,
}

/// Takes connection `id` out of `pool`.
fn take(pool: &mut Vec<Conn>, id: machine::ConnId) -> Option<Conn> {
    let at = pool.iter().position(|c| c.id == id)?;
    Some(pool.swap_remove(at))
}

/// What one turn of the loop brings: the machine's input, and the connection (made
/// or offered) it is about.
#[derive(Default)]
struct Turn {
    input: Option<Input>,
    conn: Option<Conn>,
    inbound: Option<TcpStream>,
}

impl Turn {
    fn input(input: Input) -> Turn {
        Turn {
            input: Some(input),
            ..Turn::default()
        }
    }
}

pub async fn run(
    params: SessionParams,
    mut cmds: SessionReceiver,
    events: mpsc::UnboundedSender<SessionEvent>,
    status: StatusSender,
) {
    let params = Arc::new(params);
    let id = params.id;
    let received = status.borrow().received.clone();
    // Where our connections go; an unnumbered peer's comes from the agent.
    let mut target = params
        .peer
        .remote
        .address()
        .map(|a| SocketAddr::new(a, params.peer.port));
    let mut machine = Machine::new(
        params.local.router_id,
        params.peer.bfd.is_some(),
        target.is_some(),
        tokio::time::Instant::now(),
    );
    update_status(&status, |s| {
        s.neighbour = target.map(|t| t.ip());
        s.state = machine.state();
    });
    let mut handshakes: JoinSet<Result<Conn, HandshakeError>> = JoinSet::new();
    let mut slots = Slots::default();
    let mut next_conn: machine::ConnId = 0;
    let mut next_keepalive = tokio::time::Instant::now();
    let mut stopped: Option<oneshot::Sender<()>> = None;
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

    loop {
        let keepalive = slots
            .established
            .as_ref()
            .or(slots.confirm.as_ref())
            .and_then(|c| c.negotiated.keepalive_interval());
        let turn = tokio::select! {
            _ = crate::time::sleep_until_some(machine.connect_at()) => Turn::input(Input::ConnectDue),
            Some(joined) = handshakes.join_next(), if !handshakes.is_empty() => match joined {
                Ok(Ok(conn)) => Turn {
                    input: Some(Input::HandshakeDone(ConnInfo {
                        id: conn.id,
                        direction: conn.direction,
                        peer_id: conn.negotiated.peer_id,
                        graceful_restart: conn.negotiated.graceful_restart,
                    })),
                    conn: Some(conn),
                    inbound: None,
                },
                Ok(Err(HandshakeError { direction, error })) => Turn::input(Input::HandshakeFailed {
                    direction,
                    message: error.to_string(),
                }),
                Err(e) => Turn::input(Input::HandshakeFailed {
                    direction: Direction::Outbound,
                    message: ConnError::Task(e.to_string()).to_string(),
                }),
            },
            event = conn::next_event(&mut slots.confirm) => match event {
                Some(ReaderEvent::Keepalive) => Turn::input(Input::ConfirmKeepalive),
                other => {
                    let hard_reset = slots.confirm.as_ref().is_some_and(|c| c.negotiated.graceful.hard_reset());
                    let (message, reply) = conn::describe_end(other, hard_reset);
                    Turn::input(Input::ConfirmEnded { message, reply })
                }
            },
            event = conn::next_event(&mut slots.established) => match event {
                Some(ReaderEvent::Keepalive) => Turn::default(),
                Some(ReaderEvent::RouteRefresh) => Turn::input(Input::RouteRefresh),
                other => {
                    let hard_reset = slots.established.as_ref().is_some_and(|c| c.negotiated.graceful.hard_reset());
                    let (message, reply) = conn::describe_end(other, hard_reset);
                    Turn::input(Input::EstablishedEnded { message, reply })
                }
            },
            _ = sleep_until(next_keepalive), if keepalive.is_some() => {
                next_keepalive = tokio::time::Instant::now() + keepalive.unwrap_or(Duration::from_secs(30));
                if let Some(conn) = slots.established.as_mut().or(slots.confirm.as_mut()) {
                    if let Err(e) = conn.send_message(&Message::Keepalive).await {
                        tracing::warn!("keepalive: {e}");
                    }
                }
                Turn::default()
            }
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else {
                    // The agent is gone (restart): drop connections without a word.
                    return;
                };
                match cmd {
                    SessionCmd::Inbound(stream) => Turn {
                        input: Some(Input::Inbound { in_flight: handshakes.len() }),
                        conn: None,
                        inbound: Some(stream),
                    },
                    SessionCmd::Neighbour(at) => {
                        let at = SocketAddr::V6(SocketAddrV6::new(*at.ip(), params.peer.port, 0, at.scope_id()));
                        if target == Some(at) {
                            Turn::default()
                        } else {
                            tracing::info!(router = %at, "the router on the link is at {}", at.ip());
                            target = Some(at);
                            update_status(&status, |s| s.neighbour = Some(at.ip()));
                            Turn::input(Input::Neighbour)
                        }
                    }
                    SessionCmd::Changes { epoch, changes } => {
                        match slots.established.as_mut().filter(|_| epoch == machine.epoch()) {
                            Some(conn) => {
                                let mut buf = Vec::new();
                                let mut changes = changes;
                                changes.absorb(std::mem::take(&mut held));
                                changes.encode_holding(&conn.codec, &template, &mut buf, &mut held);
                                match conn.send(&buf).await {
                                    Ok(()) => Turn::default(),
                                    Err(e) => Turn::input(Input::WriteFailed { message: e.to_string() }),
                                }
                            }
                            None => Turn::default(),
                        }
                    }
                    SessionCmd::EndOfRib { epoch, families } => {
                        if let Some(conn) = slots.established.as_mut().filter(|_| epoch == machine.epoch()) {
                            let mut buf = Vec::new();
                            std::mem::take(&mut held).encode(&conn.codec, &template, &mut buf);
                            for f in families {
                                Message::Update(Update::end_of_rib(f)).encode(&conn.codec, &mut buf);
                            }
                            let _ = conn.send(&buf).await;
                        }
                        Turn::input(Input::RefreshAnswered { epoch })
                    }
                    SessionCmd::BfdUp => Turn::input(Input::BfdUp),
                    SessionCmd::BfdDown => Turn::input(Input::BfdDown),
                    SessionCmd::Stop { notification, done } => {
                        stopped = Some(done);
                        Turn::input(Input::Stop { notification })
                    }
                }
            }
        };
        let Turn {
            input,
            conn,
            mut inbound,
        } = turn;
        let Some(input) = input else {
            continue;
        };
        let now = tokio::time::Instant::now();
        let actions = machine.handle(input, now);
        update_status(&status, |s| s.state = machine.state());
        let mut pool: Vec<Conn> = conn.into_iter().collect();
        pool.extend(slots.confirm.take());
        pool.extend(slots.established.take());
        for action in actions {
            match action {
                Action::Connect => {
                    let Some(to) = target else { continue };
                    next_conn += 1;
                    let (p, r, conn_id) = (params.clone(), received.clone(), next_conn);
                    handshakes.spawn(
                        async move {
                            let stream =
                                conn::connect(&p, to)
                                    .await
                                    .map_err(|error| HandshakeError {
                                        direction: Direction::Outbound,
                                        error,
                                    })?;
                            conn::handshake(conn_id, stream, Direction::Outbound, &p, r).await
                        }
                        .in_current_span(),
                    );
                }
                Action::Accept => {
                    let Some(stream) = inbound.take() else {
                        continue;
                    };
                    if params.peer.remote.interface().is_some() {
                        // The router's address, learnt from its connection when no
                        // advertisement told it first.
                        if let (None, Ok(from)) = (target, stream.peer_addr()) {
                            target = Some(from);
                            update_status(&status, |s| s.neighbour = Some(from.ip()));
                            machine.handle(Input::Neighbour, now);
                        }
                    }
                    next_conn += 1;
                    let (p, r, conn_id) = (params.clone(), received.clone(), next_conn);
                    handshakes.spawn(
                        async move {
                            conn::handshake(conn_id, stream, Direction::Inbound, &p, r).await
                        }
                        .in_current_span(),
                    );
                }
                Action::Reject(why) => {
                    tracing::debug!("dropped a connection: {why}");
                    inbound = None;
                }
                Action::Close { conn, notification } => {
                    if let Some(c) = take(&mut pool, conn) {
                        c.close(notification).await;
                    }
                }
                Action::ArmKeepalive(conn) => {
                    let every = pool
                        .iter()
                        .find(|c| c.id == conn)
                        .and_then(|c| c.negotiated.keepalive_interval());
                    next_keepalive = now + every.unwrap_or(Duration::from_secs(3600));
                }
                Action::Established { conn, epoch } => {
                    let Some(c) = pool.iter().find(|c| c.id == conn) else {
                        continue;
                    };
                    held = Changes::default();
                    // Over a link-local session (unnumbered) every IPv6 next hop also
                    // carries ours: the only one the router can resolve when the link
                    // has no global address (RFC 2545 section 3).
                    template.link_local_next_hop = match c.local {
                        IpAddr::V6(ll) if ll.is_unicast_link_local() => Some(ll),
                        _ => None,
                    };
                    tracing::info!(local = %c.local, families = ?c.negotiated.families, "session established");
                    let _ = events.send(SessionEvent::Established {
                        id,
                        epoch,
                        local: c.local,
                        negotiated: c.negotiated.clone(),
                    });
                    let (local, negotiated) = (c.local, c.negotiated.clone());
                    let capabilities = c.peer_capabilities.clone();
                    update_status(&status, |s| {
                        s.uptime.came_up();
                        s.local_address = Some(local);
                        s.negotiated = Some(negotiated);
                        s.capabilities_received = capabilities;
                        s.last_error = None;
                    });
                }
                Action::Down { epoch } => {
                    let _ = events.send(SessionEvent::Down { id, epoch });
                }
                Action::Refresh { epoch } => {
                    let _ = events.send(SessionEvent::RouteRefresh { id, epoch });
                }
                Action::WentDown => update_status(&status, |s| s.uptime.went_down()),
                Action::Error(message) => update_status(&status, |s| s.last_error = Some(message)),
                Action::AbortHandshakes => handshakes.abort_all(),
                Action::Exit => {
                    if let Some(done) = stopped.take() {
                        let _ = done.send(());
                    }
                    return;
                }
            }
        }
        slots.confirm = machine.confirm().and_then(|c| take(&mut pool, c));
        slots.established = machine.established().and_then(|c| take(&mut pool, c));
        for stray in pool {
            tracing::debug!(
                conn = stray.id,
                "closing a connection the session no longer holds"
            );
            stray.close(None).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_counts_sessions_and_keeps_the_outage_start() {
        let mut u = Uptime::default();
        let first_down = u.down_since.expect("down from the start");
        // Failed attempts while down don't restart the outage.
        u.went_down();
        assert_eq!(u.down_since, Some(first_down));
        assert_eq!(u.established_transitions, 0);
        u.came_up();
        assert!(u.established_at.is_some() && u.up_since.is_some());
        assert_eq!(u.down_since, None);
        u.went_down();
        assert!(u.established_at.is_none() && u.up_since.is_none());
        let second_down = u.down_since.expect("down again");
        assert!(second_down >= first_down);
        u.came_up();
        assert_eq!(u.established_transitions, 2, "flaps + 1");
    }
}
