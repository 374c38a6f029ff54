//! The BFD task: one tokio task owning the receiving sockets, a `Demux` and one
//! `Session` per BFD-enabled peer with its two timers. It carries out the sessions'
//! actions and tells the agent when a session goes up or down; the protocol itself is
//! all in `session`.
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::num::NonZeroU8;
use std::time::Duration;

use std::os::fd::{AsRawFd, RawFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::socket::{self, Datagram};
use super::timers;
use super::{
    Action, BfdPeer, Config, Demux, DownCause, Event, Jitter, Repr, Session, XorShift32,
    CONTROL_PORT, TTL,
};
use crate::config::BfdSettings;
use crate::status::BfdView;

/// What the agent asks of the task.
pub enum Command {
    /// The BFD-enabled peers now: new ones start, missing ones go AdminDown and end,
    /// changed ones renegotiate (Poll Sequence). A router heard on another interface
    /// is another peer (the old session goes AdminDown and ends, a new one starts).
    Peers(BTreeMap<BfdPeer, BfdSettings>),
}

/// What `Command::Peers` changes, given the running peers' scopes and configs.
#[derive(Debug, Default, PartialEq, Eq)]
struct PeerChanges {
    /// AdminDown, then end.
    gone: Vec<BfdPeer>,
    /// Running with other settings: renegotiate.
    changed: Vec<(BfdPeer, Config)>,
    /// Start.
    added: Vec<(BfdPeer, Config)>,
}

fn peer_changes<'a>(
    running: impl IntoIterator<Item = (BfdPeer, &'a Config)>,
    wanted: &BTreeMap<BfdPeer, BfdSettings>,
) -> PeerChanges {
    let mut c = PeerChanges::default();
    let mut kept = std::collections::BTreeSet::new();
    for (peer, config) in running {
        match wanted.get(&peer) {
            Some(settings) => {
                kept.insert(peer);
                let want = session_config(settings);
                if *config != want {
                    c.changed.push((peer, want));
                }
            }
            None => c.gone.push(peer),
        }
    }
    c.gone.sort_unstable();
    c.changed.sort_unstable_by_key(|(p, _)| *p);
    for (peer, settings) in wanted {
        if !kept.contains(peer) {
            c.added.push((*peer, session_config(settings)));
        }
    }
    c
}

/// What the task tells the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    Up(BfdPeer),
    Down(BfdPeer, DownCause),
}

/// Each peer's session as `status` shows it, published by the task (its only writer).
pub type BfdStatus = BTreeMap<BfdPeer, BfdView>;

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
    /// Where its packets go (`BfdPeer::destination`).
    to: SocketAddr,
    /// Sending never waits (a full buffer loses one packet), so this socket stays
    /// out of tokio: a freshly registered one would refuse its first send.
    sender: std::net::UdpSocket,
    transmit_at: Option<Instant>,
    /// From when the armed packet may go early (`timers::earliest_transmit`).
    transmit_from: Option<Instant>,
    detect_at: Option<Instant>,
    /// What status last showed, so that the packets that change nothing (nearly all)
    /// cost no allocation and no lock.
    shown: Option<Shown>,
}

/// The session's values `status` shows, compared cheaply.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Shown {
    state: super::State,
    remote_state: super::State,
    diagnostic: super::Diagnostic,
    remote_discriminator: u32,
    transmit_interval: Duration,
    detection_time: Duration,
    detect_mult: NonZeroU8,
}

impl Shown {
    fn of(s: &Session) -> Shown {
        Shown {
            state: s.state(),
            remote_state: s.remote_state(),
            diagnostic: s.local_diagnostic(),
            remote_discriminator: s.remote_discriminator(),
            transmit_interval: s.transmit_interval(),
            detection_time: s.detection_time(),
            detect_mult: s.config().detect_mult,
        }
    }
}

struct Task {
    demux: Demux<BfdPeer>,
    peers: HashMap<BfdPeer, Peer>,
    rx4: Option<Rx>,
    rx6: Option<Rx>,
    rng: XorShift32,
    reports: mpsc::UnboundedSender<Report>,
    status: watch::Sender<BfdStatus>,
}

/// A receiving socket, and its registration with tokio while packets should wake
/// the task at once. While every session is Up and steady a packet only restarts a
/// detection timer, and its arrival time says from when: it can wait for the task's
/// next timer (at most an interval), which halves the wake-ups of a steady session.
struct Rx {
    /// Declared first: dropped (deregistered) before the socket closes.
    watch: Option<AsyncFd<Fd>>,
    sock: std::net::UdpSocket,
}

/// The socket's descriptor for `AsyncFd`; the socket itself keeps ownership.
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Rx {
    fn set_watch(&mut self, on: bool) {
        if on == self.watch.is_some() {
            return;
        }
        self.watch = if on {
            let fd = Fd(self.sock.as_raw_fd());
            // SAFETY: `sock` owns the descriptor and outlives `watch`: it is neither
            // closed nor replaced while registered (`watch` is dropped first, in
            // `set_watch(false)` or with the struct, whose field order says so).
            match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!("BFD: watching the receive socket: {e}");
                    None
                }
            }
        } else {
            None
        };
    }
}

/// Resolves when a watched socket may be readable (its readiness cleared: the
/// caller reads until `WouldBlock`); never while unwatched.
async fn readable(rx: Option<&Rx>) {
    match rx.and_then(|r| r.watch.as_ref()) {
        Some(w) => match w.readable().await {
            Ok(mut guard) => guard.clear_ready(),
            Err(e) => tracing::debug!("BFD receive readiness: {e}"),
        },
        None => std::future::pending().await,
    }
}

/// At most this many datagrams are read per socket per wake-up, so a flood cannot
/// starve the timers (the rest waits for the next one).
const MAX_READ: usize = 256;
/// An arrival time older than this is a clock step, not a late read.
const MAX_LATE: Duration = Duration::from_secs(1);

/// The monotonic time of a datagram's arrival (now when the kernel gave none).
fn arrival(arrived: Option<std::time::SystemTime>) -> Instant {
    let now = Instant::now();
    let late = arrived
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
        .min(MAX_LATE);
    now.checked_sub(late).unwrap_or(now)
}

impl Task {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        // One timer, moved only when the earliest deadline moves: a fresh one per
        // loop was a timer-wheel insert and removal per packet.
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            let next = self
                .peers
                .values()
                .flat_map(|p| [p.transmit_at, p.detect_at])
                .flatten()
                .min();
            if next != armed {
                if let Some(at) = next {
                    timer.as_mut().reset(at);
                }
                armed = next;
            }
            // Without any deadline nothing would wake the task to read: listen.
            let prompt = armed.is_none() || self.wants_prompt_receive();
            for rx in [self.rx4.as_mut(), self.rx6.as_mut()].into_iter().flatten() {
                rx.set_watch(prompt);
            }
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Peers(peers)) => self.set_peers(peers),
                    // The agent is gone: a restart. Say nothing, as BGP does; the
                    // peer's detection time or our next start takes over.
                    None => return,
                },
                () = readable(self.rx4.as_ref()) => self.drain(),
                () = readable(self.rx6.as_ref()) => self.drain(),
                () = &mut timer, if armed.is_some() => {
                    armed = None;
                    // What arrived before a deadline counts before it is judged.
                    self.drain();
                }
            }
        }
    }

    fn set_peers(&mut self, wanted: BTreeMap<BfdPeer, BfdSettings>) {
        let changes = peer_changes(
            self.peers.iter().map(|(a, p)| (*a, p.session.config())),
            &wanted,
        );
        for peer in changes.gone {
            // AdminDown tells the peer this was deliberate (RFC 5882 section 3.2).
            self.handle(peer, Event::AdminDown);
            self.peers.remove(&peer);
            self.demux.remove(&peer);
            self.status.send_modify(|s| {
                s.remove(&peer);
            });
        }
        for (peer, config) in changes.changed {
            self.handle(peer, Event::ConfigChanged(config));
        }
        for (peer, config) in changes.added {
            self.add_peer(peer, config);
        }
    }

    fn add_peer(&mut self, peer: BfdPeer, config: Config) {
        let address = peer.address;
        let rx = if address.is_ipv4() {
            &mut self.rx4
        } else {
            &mut self.rx6
        };
        if rx.is_none() {
            match socket::bind_control(address.is_ipv6()) {
                Ok(sock) => *rx = Some(Rx { watch: None, sock }),
                // Without it the session never comes up; BGP waits out its hold time.
                Err(e) => {
                    tracing::error!(%peer, "BFD: binding UDP port {CONTROL_PORT}: {e}")
                }
            }
        }
        let port_seed = u16::try_from(self.rng.next_u32() >> 16).unwrap_or(0);
        let sender = match socket::bind_sender(address, port_seed) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(%peer, "BFD: no sending socket: {e}");
                return;
            }
        };
        let discr = self.demux.insert(peer, &mut self.rng);
        let mut session = Session::new(config, discr);
        let actions = session.start(&mut self.rng);
        self.peers.insert(
            peer,
            Peer {
                session,
                to: peer.destination(),
                sender,
                transmit_at: None,
                transmit_from: None,
                detect_at: None,
                shown: None,
            },
        );
        tracing::info!(%peer, discriminator = discr.get(), "BFD session started");
        self.carry_out(peer, actions);
    }

    /// Prompt reception matters while a session is coming up, going down or
    /// renegotiating (the three-way handshake, a Poll): then each packet wakes the task.
    fn wants_prompt_receive(&self) -> bool {
        self.peers.values().any(|p| {
            let s = &p.session;
            s.state() != super::State::Up || s.remote_state() != super::State::Up || s.polling()
        })
    }

    /// Reads every waiting datagram, then fires what is due: the task is awake
    /// anyway, so packets whose jitter window is open go now too.
    fn drain(&mut self) {
        let mut buf = [0u8; 512];
        for v6 in [false, true] {
            for _ in 0..MAX_READ {
                let rx = if v6 {
                    self.rx6.as_ref()
                } else {
                    self.rx4.as_ref()
                };
                let Some(rx) = rx else { break };
                match socket::recv_now(rx.sock.as_raw_fd(), &mut buf) {
                    Ok(d) => self.on_datagram(&d, &buf),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::debug!("BFD receive: {e}");
                        break;
                    }
                }
            }
        }
        self.fire_timers();
    }

    fn on_datagram(&mut self, d: &Datagram, buf: &[u8]) {
        match accept(&self.demux, d, buf) {
            Ok((from, repr)) => self.handle_at(from, Event::Received(repr), arrival(d.arrived)),
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
            if p.transmit_from.is_some_and(|t| t <= now) {
                p.transmit_at = None;
                p.transmit_from = None;
                due.push((*address, Event::TransmitTimerExpired));
            }
        }
        for (address, event) in due {
            self.handle(address, event);
        }
    }

    fn handle(&mut self, address: BfdPeer, event: Event) {
        self.handle_at(address, event, Instant::now());
    }

    /// `event` as of `at` (a received packet's arrival): the detection timer it
    /// restarts runs from then.
    fn handle_at(&mut self, address: BfdPeer, event: Event, at: Instant) {
        let Some(p) = self.peers.get_mut(&address) else {
            return;
        };
        let actions = p.session.handle(event, &mut self.rng);
        self.carry_out_at(address, actions, at);
    }

    fn carry_out(&mut self, address: BfdPeer, actions: Vec<Action>) {
        self.carry_out_at(address, actions, Instant::now());
    }

    fn carry_out_at(&mut self, address: BfdPeer, actions: Vec<Action>, at: Instant) {
        let Some(p) = self.peers.get_mut(&address) else {
            return;
        };
        let now = Instant::now();
        for action in actions {
            match action {
                Action::Send(repr) => {
                    // A full send buffer loses one packet: the next tick sends again.
                    if let Err(e) = p.sender.send_to(&repr.to_bytes(), p.to) {
                        tracing::debug!(peer = %address, "BFD send: {e}");
                    }
                }
                Action::ArmTransmitTimer(d) => {
                    let early = timers::earliest_transmit(d, p.session.transmit_interval());
                    p.transmit_at = Some(now + d);
                    p.transmit_from = Some(now + early);
                }
                Action::ArmDetectionTimer(d) => p.detect_at = Some(at + d),
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
        let shown = Shown::of(&p.session);
        if p.shown == Some(shown) {
            return;
        }
        p.shown = Some(shown);
        let view = view_of(&p.session);
        self.status.send_modify(|s| {
            s.insert(address, view);
        });
    }
}

/// The peer and packet of a received datagram, or why it is dropped. A link-local
/// sender counts as the router on the interface it came in on, else as a peer
/// configured by that address.
fn accept(demux: &Demux<BfdPeer>, d: &Datagram, buf: &[u8]) -> Result<(BfdPeer, Repr), String> {
    // RFC 5881 section 5: only a neighbour one hop away can send with 255; this is
    // what makes single hop safe without authentication.
    if d.ttl != Some(i32::from(TTL)) {
        return Err(format!("TTL or hop limit {:?}, not {TTL}", d.ttl));
    }
    let bytes = buf
        .get(..d.len)
        .ok_or_else(|| "truncated by the receive buffer".to_string())?;
    let repr = Repr::decode(bytes).map_err(|e| e.to_string())?;
    let (first, second) = BfdPeer::of_sender(d.from);
    match demux.lookup(&repr, &first) {
        Ok(_) => Ok((first, repr)),
        Err(e) => match second.filter(|p| demux.lookup(&repr, p).is_ok()) {
            Some(peer) => Ok((peer, repr)),
            None => Err(format!("from {first}: {e}")),
        },
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
            arrived: None,
        }
    }

    fn v4(s: &str) -> BfdPeer {
        BfdPeer::address(s.parse().expect("address"))
    }

    fn setup() -> (Demux<BfdPeer>, Vec<u8>) {
        let mut demux = Demux::new();
        let discr = demux.insert(v4("192.0.2.1"), &mut || 7u32);
        // What the peer's first packet looks like: Down, Your Discriminator zero.
        let theirs = Session::new(Config::default(), discr);
        let bytes = theirs.packet(false, false).to_bytes().to_vec();
        (demux, bytes)
    }

    /// What `accept` makes of `bytes` from `from` with `ttl`, in a datagram `len` bytes
    /// long.
    fn accept_from(
        demux: &Demux<BfdPeer>,
        bytes: &[u8],
        from: &str,
        ttl: Option<i32>,
        len: usize,
    ) -> Result<(BfdPeer, Repr), String> {
        accept(demux, &datagram(from, ttl, len), bytes)
    }

    #[test]
    fn only_ttl_255_from_a_configured_peer() {
        let (demux, bytes) = setup();
        let ok = accept_from(&demux, &bytes, "192.0.2.1", Some(255), bytes.len());
        let (from, repr) = ok.expect("accepted");
        assert_eq!(from, v4("192.0.2.1"));
        assert_eq!(repr.state, State::Down);
        let refused = [
            ("TTL 254", "192.0.2.1", Some(254), bytes.len()),
            ("TTL 64", "192.0.2.1", Some(64), bytes.len()),
            ("TTL 1", "192.0.2.1", Some(1), bytes.len()),
            ("no TTL", "192.0.2.1", None, bytes.len()),
            ("a stranger", "192.0.2.9", Some(255), bytes.len()),
            ("a short datagram", "192.0.2.1", Some(255), 10),
            ("an overlong datagram", "192.0.2.1", Some(255), 600),
        ];
        for (what, from, ttl, len) in refused {
            let got = accept_from(&demux, &bytes, from, ttl, len);
            assert!(got.is_err(), "{what} accepted: {got:?}");
        }
    }

    #[test]
    fn mapped_ipv4_senders_are_ipv4_peers() {
        let (demux, bytes) = setup();
        let got = accept_from(&demux, &bytes, "::ffff:192.0.2.1", Some(255), bytes.len());
        assert_eq!(got.map(|(p, _)| p), Ok(v4("192.0.2.1")));
    }

    /// A link-local router (an unnumbered peer's).
    const ROUTER: &str = "fe80::1";

    fn router_on(ifindex: u32) -> BfdPeer {
        BfdPeer::scoped(ROUTER.parse().expect("address"), ifindex)
    }

    fn scoped(from: &str, scope_id: u32, len: usize) -> Datagram {
        let ip: std::net::Ipv6Addr = from.parse().expect("address");
        Datagram {
            len,
            from: SocketAddr::V6(std::net::SocketAddrV6::new(ip, 49152, 0, scope_id)),
            ttl: Some(255),
            arrived: None,
        }
    }

    /// A peer's first packet (Down, no Your Discriminator) and, once it has heard us,
    /// its next one (naming our discriminator `ours`).
    fn packets_to(ours: std::num::NonZeroU32) -> (Vec<u8>, Vec<u8>) {
        let first = Session::new(Config::default(), ours)
            .packet(false, false)
            .to_bytes()
            .to_vec();
        let mut next = Repr::decode(&first).expect("packet");
        next.your_discriminator = ours.get();
        (first, next.to_bytes().to_vec())
    }

    #[test]
    fn a_link_local_router_counts_only_on_its_interface() {
        let mut demux = Demux::new();
        let discr = demux.insert(router_on(7), &mut || 7u32);
        let (first, next) = packets_to(discr);
        let (from, _) =
            accept(&demux, &scoped(ROUTER, 7, first.len()), &first).expect("from fe80::1%7");
        assert_eq!(from, router_on(7));
        for bytes in [&first, &next] {
            let elsewhere = accept(&demux, &scoped(ROUTER, 8, bytes.len()), bytes);
            assert!(
                elsewhere.as_ref().is_err_and(|e| e.contains("fe80::1%8")),
                "{elsewhere:?}"
            );
        }
        // The hop limit rule holds for link-local peers too.
        let mut far = scoped(ROUTER, 7, first.len());
        far.ttl = Some(254);
        assert!(accept(&demux, &far, &first).is_err());
    }

    #[test]
    fn one_link_local_on_two_interfaces_is_two_peers() {
        let mut demux = Demux::new();
        let on_7 = demux.insert(router_on(7), &mut || 7u32);
        let on_9 = demux.insert(router_on(9), &mut || 9u32);
        assert_ne!(on_7, on_9);
        for (ifindex, ours) in [(7, on_7), (9, on_9)] {
            let (first, next) = packets_to(ours);
            for bytes in [&first, &next] {
                let got = accept(&demux, &scoped(ROUTER, ifindex, bytes.len()), bytes);
                assert_eq!(got.map(|(p, _)| p), Ok(router_on(ifindex)));
            }
        }
        // The session of interface 9 named from interface 7: misrouted or spoofed.
        let (_, next_9) = packets_to(on_9);
        let crossed = accept(&demux, &scoped(ROUTER, 7, next_9.len()), &next_9);
        assert!(crossed.is_err(), "{crossed:?}");
    }

    #[test]
    fn a_peer_configured_by_a_link_local_address_is_heard_on_any_interface() {
        let mut demux = Demux::new();
        let configured = BfdPeer::address(ROUTER.parse().expect("address"));
        let discr = demux.insert(configured, &mut || 7u32);
        let (first, _) = packets_to(discr);
        let got = accept(&demux, &scoped(ROUTER, 8, first.len()), &first);
        assert_eq!(got.map(|(p, _)| p), Ok(configured));
    }

    #[test]
    fn peers_start_end_renegotiate_and_move_between_interfaces() {
        let settings = BfdSettings::default();
        let faster = BfdSettings {
            min_interval_ms: 100,
            ..settings
        };
        let (a, b) = (v4("192.0.2.1"), v4("192.0.2.2"));
        let ll2 = BfdPeer::scoped("fe80::2".parse().expect("address"), 9);
        let config = session_config(&settings);
        let running = [
            (a, &config),
            (b, &config),
            (router_on(7), &config),
            (ll2, &config),
        ];
        let wanted = BTreeMap::from([
            (a, settings),
            // b is gone; ll2 renegotiates; the router moved to interface 8 (its link
            // was recreated): a new session there, the old one ends.
            (router_on(8), settings),
            (ll2, faster),
        ]);
        let c = peer_changes(running, &wanted);
        assert_eq!(c.gone, vec![b, router_on(7)]);
        assert_eq!(c.changed, vec![(ll2, session_config(&faster))]);
        assert_eq!(c.added, vec![(router_on(8), config)]);
        // Nothing running: everything starts.
        let c = peer_changes([], &wanted);
        assert!(c.gone.is_empty() && c.changed.is_empty());
        assert_eq!(c.added.len(), 3);
        assert!(c.added.contains(&(ll2, session_config(&faster))));
        // The same again changes nothing.
        let c = peer_changes([(a, &config)], &BTreeMap::from([(a, settings)]));
        assert_eq!(c, PeerChanges::default());
    }

    #[test]
    fn a_late_read_counts_from_the_arrival() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let now = Instant::now();
            let sent = std::time::SystemTime::now() - Duration::from_millis(80);
            let at = arrival(Some(sent));
            let late = now.saturating_duration_since(at);
            assert!(late >= Duration::from_millis(70), "{late:?}");
            assert!(late <= Duration::from_millis(200), "{late:?}");
            // No timestamp, or one from the future: now.
            assert!(arrival(None) >= now);
            let ahead = std::time::SystemTime::now() + Duration::from_secs(5);
            assert!(arrival(Some(ahead)) >= now);
            // A clock step is not a late read: at most `MAX_LATE`.
            let stepped = std::time::SystemTime::now() - Duration::from_secs(3600);
            assert!(
                Instant::now().saturating_duration_since(arrival(Some(stepped)))
                    <= MAX_LATE + Duration::from_millis(100)
            );
        });
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
