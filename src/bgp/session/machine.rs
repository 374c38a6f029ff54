//! The session's state machine (RFC 4271 section 8), pure: `(state, input) ->
//! actions`. It decides which connection is in OpenConfirm and which is Established,
//! when to connect, which connection a collision keeps (6.8), what a NOTIFICATION
//! or a lost connection does, when BFD lets a session start; the task in `mod.rs`
//! only does what the actions say (sockets, timers, messages, status).
//!
//! Connections are named by [`ConnId`]; the task owns them. Time comes in as `now`,
//! so tests drive it without a clock.
use std::net::Ipv4Addr;
use std::time::Duration;

use tokio::time::Instant;

use super::super::fsm::{self, Backoff, Direction, State};
use super::super::wire::codes::CeaseSubcode;
use super::super::wire::Notification;

/// A second connection completing within this time of Established is a collision,
/// not the peer restarting.
pub const COLLISION_WINDOW: Duration = Duration::from_secs(1);
/// How many connections may be in their OPEN exchange at once: ours and the peer's,
/// and a spare each; more from one address is a flood, not BGP.
pub const MAX_HANDSHAKES: usize = 4;
/// How long a peer with BFD on waits for BFD before BGP starts anyway, so a router
/// without BFD is never locked out (issue 18).
pub const BFD_HOLD: Duration = Duration::from_secs(90);

pub type ConnId = u64;

/// What the machine knows of a connection past its OPEN exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub id: ConnId,
    pub direction: Direction,
    /// The BGP identifier of the peer's OPEN (collision resolution).
    pub peer_id: Ipv4Addr,
    /// Graceful restart negotiated: a new connection from a peer that restarted
    /// replaces the established one (RFC 4724 section 4.2).
    pub graceful_restart: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The time [`Machine::connect_at`] said has come.
    ConnectDue,
    /// The listener has a connection from the peer; `in_flight` OPEN exchanges run.
    Inbound {
        in_flight: usize,
    },
    /// The peer's address is known now (an unnumbered peer's router was heard, or
    /// changed): connect without waiting out a backoff meant for another address.
    Neighbour,
    HandshakeFailed {
        direction: Direction,
        message: String,
    },
    HandshakeDone(ConnInfo),
    /// The OpenConfirm connection got the peer's KEEPALIVE.
    ConfirmKeepalive,
    /// The OpenConfirm connection ended (NOTIFICATION, error, lost): why, and what
    /// to send back.
    ConfirmEnded {
        message: String,
        reply: Option<Notification>,
    },
    RouteRefresh,
    /// The Established connection ended.
    EstablishedEnded {
        message: String,
        reply: Option<Notification>,
    },
    /// Writing to the Established connection failed.
    WriteFailed {
        message: String,
    },
    /// The End-of-RIB of session `epoch` went out: a ROUTE-REFRESH is answered.
    RefreshAnswered {
        epoch: u64,
    },
    BfdUp,
    BfdDown,
    Stop {
        notification: Option<Notification>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a connection to the peer.
    Connect,
    /// Run the OPEN exchange on the inbound connection.
    Accept,
    /// Drop the inbound connection unanswered.
    Reject(&'static str),
    /// Send the NOTIFICATION (if any) and close.
    Close {
        conn: ConnId,
        notification: Option<Notification>,
    },
    /// Start sending KEEPALIVEs on this connection.
    ArmKeepalive(ConnId),
    /// `conn` is the session, as `epoch`.
    Established { conn: ConnId, epoch: u64 },
    /// Session `epoch` ended: the agent withdraws nothing from the kernel, only
    /// forgets what the peer was told.
    Down { epoch: u64 },
    /// Send the peer our whole Adj-RIB-Out again (session `epoch`).
    Refresh { epoch: u64 },
    /// The status's uptime ends.
    WentDown,
    /// Why the last attempt or session ended.
    Error(String),
    /// Abandon every OPEN exchange in progress.
    AbortHandshakes,
    /// The task ends.
    Exit,
}

/// BFD's say on when a session may start: while BFD is Up, or once it has been down
/// `BFD_HOLD`.
#[derive(Clone, Copy, Debug)]
struct BfdGate {
    up: bool,
    down_since: Instant,
}

impl BfdGate {
    fn down(now: Instant) -> BfdGate {
        BfdGate {
            up: false,
            down_since: now,
        }
    }

    fn open_at(&self) -> Instant {
        if self.up {
            self.down_since
        } else {
            self.down_since + BFD_HOLD
        }
    }
}

pub struct Machine {
    state: State,
    local_id: Ipv4Addr,
    confirm: Option<ConnInfo>,
    /// With the time it reached Established.
    established: Option<(ConnInfo, Instant)>,
    /// Our own connection attempt (connect and OPEN exchange) is running.
    outbound_pending: bool,
    next_connect: Instant,
    backoff: Backoff,
    /// The connection in OpenConfirm is the survivor of a collision we resolved.
    collision_survivor: bool,
    /// A ROUTE-REFRESH is being answered (until its End-of-RIB): more requests are
    /// answered by it.
    refresh_queued: bool,
    /// Counts the sessions established; actions name theirs.
    epoch: u64,
    bfd: Option<BfdGate>,
    /// Where to connect is known (an unnumbered peer's only once heard).
    target_known: bool,
}

impl Machine {
    pub fn new(local_id: Ipv4Addr, bfd: bool, target_known: bool, now: Instant) -> Machine {
        Machine {
            state: State::Connect,
            local_id,
            confirm: None,
            established: None,
            outbound_pending: false,
            next_connect: now,
            backoff: Backoff::default(),
            collision_survivor: false,
            refresh_queued: false,
            epoch: 0,
            bfd: bfd.then(|| BfdGate::down(now)),
            target_known,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn confirm(&self) -> Option<ConnId> {
        self.confirm.map(|c| c.id)
    }

    pub fn established(&self) -> Option<ConnId> {
        self.established.map(|(c, _)| c.id)
    }

    /// When to feed [`Input::ConnectDue`]: None while a connection is up or being
    /// made, or the peer's address is unknown.
    pub fn connect_at(&self) -> Option<Instant> {
        let idle = self.established.is_none() && self.confirm.is_none();
        (idle && !self.outbound_pending && self.target_known).then(|| {
            self.bfd
                .map_or(self.next_connect, |g| g.open_at().max(self.next_connect))
        })
    }

    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::ConnectDue => {
                if self.connect_at().is_some_and(|at| at <= now) {
                    self.outbound_pending = true;
                    self.state = State::Connect;
                    out.push(Action::Connect);
                }
            }
            Input::Inbound { in_flight } => {
                if self.bfd.is_some_and(|g| g.open_at() > now) {
                    out.push(Action::Reject("waiting for BFD"));
                } else if in_flight >= MAX_HANDSHAKES {
                    out.push(Action::Reject("too many handshakes in progress"));
                } else {
                    out.push(Action::Accept);
                }
            }
            Input::Neighbour => {
                self.target_known = true;
                if self.established.is_none() && self.confirm.is_none() {
                    self.next_connect = now;
                }
            }
            Input::HandshakeFailed { direction, message } => {
                if direction == Direction::Outbound {
                    self.outbound_pending = false;
                    self.next_connect = now + self.backoff.next_delay();
                }
                tracing::info!(?direction, "session attempt failed: {message}");
                out.push(Action::Error(message));
                if self.state != State::Established {
                    self.state = State::Active;
                }
            }
            Input::HandshakeDone(conn) => self.handshake_done(conn, now, &mut out),
            Input::ConfirmKeepalive => {
                if let Some(conn) = self.confirm.take() {
                    self.epoch += 1;
                    self.refresh_queued = false;
                    self.backoff.reset();
                    self.collision_survivor = false;
                    self.established = Some((conn, now));
                    self.state = State::Established;
                    out.push(Action::Established {
                        conn: conn.id,
                        epoch: self.epoch,
                    });
                }
            }
            Input::ConfirmEnded { message, reply } => {
                if let Some(conn) = self.confirm.take() {
                    out.push(Action::Close {
                        conn: conn.id,
                        notification: reply,
                    });
                    self.fail(message, now, &mut out);
                    if std::mem::take(&mut self.collision_survivor) {
                        // The peer had already taken the other connection to
                        // Established before our OPEN reached it, so it dropped this
                        // one. Nothing is wrong: connect again now rather than after a
                        // backoff (0.8 s at 50 peers, measured).
                        tracing::info!(
                            "the peer closed the collision's survivor: reconnecting now"
                        );
                        self.next_connect = now;
                    }
                }
            }
            Input::RouteRefresh if self.established.is_some() => {
                if self.refresh_queued {
                    tracing::debug!(
                        "ROUTE-REFRESH while the last one is being answered: answered by it"
                    );
                } else {
                    self.refresh_queued = true;
                    out.push(Action::Refresh { epoch: self.epoch });
                }
            }
            Input::EstablishedEnded { message, reply } => {
                if let Some((conn, _)) = self.established.take() {
                    tracing::warn!("session down: {message}");
                    out.push(Action::Close {
                        conn: conn.id,
                        notification: reply,
                    });
                    out.push(Action::Down { epoch: self.epoch });
                    self.fail(message, now, &mut out);
                }
            }
            Input::WriteFailed { message } => {
                if let Some((conn, _)) = self.established.take() {
                    out.push(Action::Close {
                        conn: conn.id,
                        notification: None,
                    });
                    out.push(Action::Down { epoch: self.epoch });
                    self.fail(message, now, &mut out);
                }
            }
            // Only an Established connection's reader reports one.
            Input::RouteRefresh => {}
            Input::RefreshAnswered { epoch } => {
                if epoch == self.epoch {
                    self.refresh_queued = false;
                }
            }
            Input::BfdUp => {
                if let Some(g) = self.bfd.as_mut() {
                    g.up = true;
                    // The path is back: no reason to wait out a backoff.
                    self.next_connect = now;
                }
            }
            Input::BfdDown => self.bfd_down(now, &mut out),
            Input::Stop { notification } => {
                if let Some((conn, _)) = self.established.take() {
                    out.push(Action::Close {
                        conn: conn.id,
                        notification: notification.clone(),
                    });
                }
                if let Some(conn) = self.confirm.take() {
                    out.push(Action::Close {
                        conn: conn.id,
                        notification,
                    });
                }
                out.push(Action::AbortHandshakes);
                self.state = State::Idle;
                out.push(Action::WentDown);
                out.push(Action::Exit);
            }
        }
        out
    }

    fn handshake_done(&mut self, conn: ConnInfo, now: Instant, out: &mut Vec<Action>) {
        if conn.direction == Direction::Outbound {
            self.outbound_pending = false;
        }
        let collision = Some(Notification::cease(
            CeaseSubcode::ConnectionCollisionResolution,
        ));
        if let Some((current, since)) = self.established {
            // A connection that completes right after this session was established is
            // the peer's side of the same start (a collision: RFC 4271 6.8 keeps the
            // Established one). Taking it for a restart lost both, as the peer closes
            // it too: one session in 50 came up 0.8 s late in about one start in four.
            let restarted = now.saturating_duration_since(since) > COLLISION_WINDOW;
            if conn.direction == Direction::Inbound && current.graceful_restart && restarted {
                // RFC 4724 4.2: a peer that restarts reconnects while we still hold
                // the old session; the new connection replaces it.
                tracing::info!("peer reconnected: replacing the established session");
                self.established = None;
                out.push(Action::Close {
                    conn: current.id,
                    notification: None,
                });
                out.push(Action::Down { epoch: self.epoch });
                self.confirm = Some(conn);
                self.state = State::OpenConfirm;
                out.push(Action::WentDown);
            } else {
                out.push(Action::Close {
                    conn: conn.id,
                    notification: collision,
                });
            }
        } else if let Some(other) = self.confirm.take() {
            let keep = fsm::collision_survivor(self.local_id, conn.peer_id);
            let (winner, loser) = if conn.direction == keep {
                (conn, other)
            } else {
                (other, conn)
            };
            tracing::info!(kept = ?winner.direction, "connection collision resolved");
            out.push(Action::Close {
                conn: loser.id,
                notification: collision,
            });
            self.confirm = Some(winner);
            self.collision_survivor = true;
        } else {
            self.confirm = Some(conn);
            self.state = State::OpenConfirm;
            out.push(Action::ArmKeepalive(conn.id));
        }
    }

    fn bfd_down(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(g) = self.bfd.as_mut() else {
            return;
        };
        *g = BfdGate::down(now);
        let notification = Some(Notification::cease(CeaseSubcode::BfdDown));
        if let Some((conn, _)) = self.established.take() {
            tracing::warn!("session down: BFD detected a path failure");
            out.push(Action::Close {
                conn: conn.id,
                notification: notification.clone(),
            });
            out.push(Action::Down { epoch: self.epoch });
            out.push(Action::WentDown);
        }
        if let Some(conn) = self.confirm.take() {
            out.push(Action::Close {
                conn: conn.id,
                notification,
            });
        }
        out.push(Action::AbortHandshakes);
        self.outbound_pending = false;
        self.collision_survivor = false;
        self.state = State::Active;
        out.push(Action::Error("BFD down: path failure".into()));
    }

    /// A connection or session ended: try again after a backoff.
    fn fail(&mut self, message: String, now: Instant, out: &mut Vec<Action>) {
        self.next_connect = now + self.backoff.next_delay();
        self.state = State::Active;
        out.push(Action::WentDown);
        out.push(Action::Error(message));
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
