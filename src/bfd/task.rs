//! The BFD task: one tokio task owning the receiving sockets, a `Demux` and one
//! `Session` per BFD-enabled peer with its two timers. It carries out the sessions'
//! actions and tells the agent when a session goes up or down; the protocol itself is
//! all in `session`.
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU8;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::time::sleep_until_some;

use super::socket::{self, Datagram};
use super::{
    Action, Config, Demux, DownCause, Event, Jitter, Repr, Session, XorShift32, CONTROL_PORT, TTL,
};
use crate::config::BfdSettings;
use crate::status::BfdView;

/// What the agent asks of the task.
pub enum Command {
    /// The BFD-enabled peers now: new ones start, missing ones go AdminDown and end,
    /// changed ones renegotiate (Poll Sequence).
    Peers(BTreeMap<IpAddr, BfdSettings>),
}

/// What the task tells the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    Up(IpAddr),
    Down(IpAddr, DownCause),
}

/// Each peer's session as `status` shows it, published by the task (its only writer).
pub type BfdStatus = BTreeMap<IpAddr, BfdView>;

pub struct Handle {
    pub commands: mpsc::UnboundedSender<Command>,
    pub status: watch::Receiver<BfdStatus>,
}

/// Starts the task on the current runtime. It binds port 3784 only once a peer
/// wants BFD, so that an agent without BFD peers needs no such socket.
pub fn spawn(reports: mpsc::UnboundedSender<Report>) -> Handle {
    let (tx, rx) = mpsc::unbounded_channel();
    let (status, status_rx) = watch::channel(BfdStatus::new());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().rotate_left(16);
    let task = Task {
        demux: Demux::new(),
        peers: HashMap::new(),
        rx4: None,
        rx6: None,
        rng: XorShift32::new(seed),
        reports,
        status,
    };
    tokio::spawn(task.run(rx));
    Handle {
        commands: tx,
        status: status_rx,
    }
}

/// `bgp.peers.NAME.bfd.*` as the session's configuration: one interval both ways.
pub fn session_config(s: &BfdSettings) -> Config {
    let interval = Duration::from_millis(u64::from(s.min_interval_ms));
    Config {
        desired_min_tx: interval,
        required_min_rx: interval,
        detect_mult: NonZeroU8::new(s.multiplier).unwrap_or(super::DEFAULT_DETECT_MULT),
    }
}

struct Peer {
    session: Session,
    /// Sending never waits (a full buffer loses one packet), so this socket stays
    /// out of tokio: a freshly registered one would refuse its first send.
    sender: std::net::UdpSocket,
    transmit_at: Option<Instant>,
    detect_at: Option<Instant>,
}

struct Task {
    /// Keyed by address alone: peers are configured by address, and RFC 5881's
    /// interface only tells link-local peers apart, which hostbgp has none of yet.
    demux: Demux<IpAddr>,
    peers: HashMap<IpAddr, Peer>,
    rx4: Option<UdpSocket>,
    rx6: Option<UdpSocket>,
    rng: XorShift32,
    reports: mpsc::UnboundedSender<Report>,
    status: watch::Sender<BfdStatus>,
}

async fn recv_on(sock: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<Datagram> {
    match sock {
        Some(s) => socket::recv(s, buf).await,
        None => std::future::pending().await,
    }
}

impl Task {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf4 = [0u8; 512];
        let mut buf6 = [0u8; 512];
        loop {
            let next = self
                .peers
                .values()
                .flat_map(|p| [p.transmit_at, p.detect_at])
                .flatten()
                .min();
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Peers(peers)) => self.set_peers(peers),
                    // The agent is gone: a restart. Say nothing, as BGP does; the
                    // peer's detection time or our next start takes over.
                    None => return,
                },
                r = recv_on(self.rx4.as_ref(), &mut buf4) => self.on_recv(r, &buf4),
                r = recv_on(self.rx6.as_ref(), &mut buf6) => self.on_recv(r, &buf6),
                () = sleep_until_some(next) => self.fire_timers(),
            }
        }
    }

    fn set_peers(&mut self, wanted: BTreeMap<IpAddr, BfdSettings>) {
        let gone: Vec<IpAddr> = self
            .peers
            .keys()
            .filter(|a| !wanted.contains_key(a))
            .copied()
            .collect();
        for address in gone {
            // AdminDown tells the peer this was deliberate (RFC 5882 section 3.2).
            self.handle(address, Event::AdminDown);
            self.peers.remove(&address);
            self.demux.remove(&address);
            self.status.send_modify(|s| {
                s.remove(&address);
            });
        }
        for (address, settings) in wanted {
            let config = session_config(&settings);
            if let Some(p) = self.peers.get(&address) {
                if *p.session.config() != config {
                    self.handle(address, Event::ConfigChanged(config));
                }
                continue;
            }
            self.add_peer(address, config);
        }
    }

    fn add_peer(&mut self, address: IpAddr, config: Config) {
        let rx = if address.is_ipv4() {
            &mut self.rx4
        } else {
            &mut self.rx6
        };
        if rx.is_none() {
            match socket::bind_control(address.is_ipv6()) {
                Ok(s) => *rx = Some(s),
                // Without it the session never comes up; BGP waits out its hold time.
                Err(e) => {
                    tracing::error!(peer = %address, "BFD: binding UDP port {CONTROL_PORT}: {e}")
                }
            }
        }
        let port_seed = u16::try_from(self.rng.next_u32() >> 16).unwrap_or(0);
        let sender = match socket::bind_sender(address, port_seed) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(peer = %address, "BFD: no sending socket: {e}");
                return;
            }
        };
        let discr = self.demux.insert(address, &mut self.rng);
        let mut session = Session::new(config, discr);
        let actions = session.start(&mut self.rng);
        self.peers.insert(
            address,
            Peer {
                session,
                sender,
                transmit_at: None,
                detect_at: None,
            },
        );
        tracing::info!(peer = %address, discriminator = discr.get(), "BFD session started");
        self.carry_out(address, actions);
    }

    fn on_recv(&mut self, result: std::io::Result<Datagram>, buf: &[u8]) {
        let d = match result {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!("BFD receive: {e}");
                return;
            }
        };
        match accept(&self.demux, &d, buf) {
            Ok((from, repr)) => self.handle(from, Event::Received(repr)),
            Err(why) => tracing::debug!(from = %d.from, "BFD: dropped: {why}"),
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        for (address, p) in &mut self.peers {
            if p.detect_at.is_some_and(|t| t <= now) {
                p.detect_at = None;
                due.push((*address, Event::DetectionTimerExpired));
            }
            if p.transmit_at.is_some_and(|t| t <= now) {
                p.transmit_at = None;
                due.push((*address, Event::TransmitTimerExpired));
            }
        }
        for (address, event) in due {
            self.handle(address, event);
        }
    }

    fn handle(&mut self, address: IpAddr, event: Event) {
        let Some(p) = self.peers.get_mut(&address) else {
            return;
        };
        let actions = p.session.handle(event, &mut self.rng);
        self.carry_out(address, actions);
    }

    fn carry_out(&mut self, address: IpAddr, actions: Vec<Action>) {
        let Some(p) = self.peers.get_mut(&address) else {
            return;
        };
        let now = Instant::now();
        for action in actions {
            match action {
                Action::Send(repr) => {
                    let to = SocketAddr::new(address, CONTROL_PORT);
                    // A full send buffer loses one packet: the next tick sends again.
                    if let Err(e) = p.sender.send_to(&repr.to_bytes(), to) {
                        tracing::debug!(peer = %address, "BFD send: {e}");
                    }
                }
                Action::ArmTransmitTimer(d) => p.transmit_at = Some(now + d),
                Action::ArmDetectionTimer(d) => p.detect_at = Some(now + d),
                Action::StopDetectionTimer => p.detect_at = None,
                Action::SessionUp => {
                    tracing::info!(peer = %address, "BFD session up");
                    let _ = self.reports.send(Report::Up(address));
                }
                Action::SessionDown(cause) => {
                    tracing::warn!(peer = %address, ?cause, "BFD session down");
                    let _ = self.reports.send(Report::Down(address, cause));
                }
            }
        }
        let view = view_of(&p.session);
        self.status.send_modify(|s| {
            s.insert(address, view);
        });
    }
}

/// The peer and packet of a received datagram, or why it is dropped.
fn accept(demux: &Demux<IpAddr>, d: &Datagram, buf: &[u8]) -> Result<(IpAddr, Repr), String> {
    // RFC 5881 section 5: only a neighbour one hop away can send with 255; this is
    // what makes single hop safe without authentication.
    if d.ttl != Some(i32::from(TTL)) {
        return Err(format!("TTL or hop limit {:?}, not {TTL}", d.ttl));
    }
    let bytes = buf
        .get(..d.len)
        .ok_or_else(|| "truncated by the receive buffer".to_string())?;
    let repr = Repr::decode(bytes).map_err(|e| e.to_string())?;
    let from = canonical(d.from);
    demux.lookup(&repr, &from).map_err(|e| e.to_string())?;
    Ok((from, repr))
}

/// An IPv4 peer's packets arrive on the IPv4 socket, but be safe with mapped forms.
fn canonical(from: SocketAddr) -> IpAddr {
    match from.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn view_of(s: &Session) -> BfdView {
    BfdView {
        state: s.state().to_string(),
        remote_state: s.remote_state().to_string(),
        diagnostic: s.local_diagnostic().to_string(),
        local_discriminator: s.local_discriminator().get(),
        remote_discriminator: s.remote_discriminator(),
        transmit_interval_ms: millis(s.transmit_interval()),
        detection_time_ms: millis(s.detection_time()),
        multiplier: s.config().detect_mult.get(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bfd::State;

    fn datagram(from: &str, ttl: Option<i32>, len: usize) -> Datagram {
        Datagram {
            len,
            from: SocketAddr::new(from.parse().expect("address"), 49152),
            ttl,
        }
    }

    fn setup() -> (Demux<IpAddr>, Vec<u8>) {
        let mut demux = Demux::new();
        let peer: IpAddr = "192.0.2.1".parse().expect("address");
        let discr = demux.insert(peer, &mut || 7u32);
        // What the peer's first packet looks like: Down, Your Discriminator zero.
        let theirs = Session::new(Config::default(), discr);
        let bytes = theirs.packet(false, false).to_bytes().to_vec();
        (demux, bytes)
    }

    #[test]
    fn only_ttl_255_from_a_configured_peer() {
        let (demux, bytes) = setup();
        let ok = accept(
            &demux,
            &datagram("192.0.2.1", Some(255), bytes.len()),
            &bytes,
        );
        let (from, repr) = ok.expect("accepted");
        assert_eq!(from, "192.0.2.1".parse::<IpAddr>().expect("address"));
        assert_eq!(repr.state, State::Down);
        for ttl in [Some(254), Some(64), Some(1), None] {
            let got = accept(&demux, &datagram("192.0.2.1", ttl, bytes.len()), &bytes);
            assert!(got.is_err(), "TTL {ttl:?} accepted");
        }
        let stranger = accept(
            &demux,
            &datagram("192.0.2.9", Some(255), bytes.len()),
            &bytes,
        );
        assert!(stranger.is_err());
        let short = accept(&demux, &datagram("192.0.2.1", Some(255), 10), &bytes);
        assert!(short.is_err());
        let overlong = accept(&demux, &datagram("192.0.2.1", Some(255), 600), &bytes);
        assert!(overlong.is_err());
    }

    #[test]
    fn mapped_ipv4_senders_are_ipv4_peers() {
        let (demux, bytes) = setup();
        let got = accept(
            &demux,
            &datagram("::ffff:192.0.2.1", Some(255), bytes.len()),
            &bytes,
        );
        assert!(got.is_ok(), "{got:?}");
    }

    #[test]
    fn settings_map_to_one_interval_both_ways() {
        let c = session_config(&BfdSettings {
            min_interval_ms: 100,
            multiplier: 5,
        });
        assert_eq!(c.desired_min_tx, Duration::from_millis(100));
        assert_eq!(c.required_min_rx, Duration::from_millis(100));
        assert_eq!(c.detect_mult.get(), 5);
        let zero = session_config(&BfdSettings {
            min_interval_ms: 100,
            multiplier: 0,
        });
        assert_eq!(zero.detect_mult, crate::bfd::DEFAULT_DETECT_MULT);
    }
}
