//! One task per unnumbered interface: it announces us with Router Advertisements so
//! the router on the link learns our link-local address, and reports every valid
//! Router Advertisement it hears so the agent learns the router's.
//!
//! What it sends:
//! - at start, a Router Solicitation (so a router answers at once) and an RA;
//! - an RA every `interval`;
//! - an RA in reply to a Router Solicitation or to the first RA of a router it had
//!   not heard yet (replies at least `MIN_REPLY_GAP` apart), and to any other RA
//!   when it has sent none for `MIN_REPLY_GAP`: a router that starts or restarts
//!   (FRR forgets its peer's address on a restart or link down) learns us at once
//!   instead of at our next period, and two hostbgp hosts on one link answer each
//!   other's periodic RAs once rather than back and forth.
//!
//! Our RAs have router lifetime 0 (no host makes us its default router) and every
//! other field unspecified; FRR 8.4 learns the sender from such an RA (see mod.rs).
//! They come from `Config::source` when set: FRR's interface peer follows the source
//! of the latest RA it heard, so it must be the address the BGP session uses.
//!
//! The task ends when the receiver of its reports is dropped, or when its `Handle`
//! is dropped.
use std::collections::HashSet;
use std::io;
use std::net::Ipv6Addr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::socket::{NdSocket, Received, ALL_NODES, ALL_ROUTERS, HOP_LIMIT};
use super::wire::{Repr, RouterAdvert, RouterSolicit};
use crate::kernel::Mac;

/// RFC 4861 section 10 MIN_DELAY_BETWEEN_RAS: the least time between two replies.
pub const MIN_REPLY_GAP: Duration = Duration::from_secs(3);
/// The shortest period `Config::interval` is taken as.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// FRR 8.4's own RA period on an interface peer's link, as observed.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The interface and what we send on it.
#[derive(Clone, Debug)]
pub struct Config {
    pub ifname: String,
    pub ifindex: u32,
    /// Our link-local address on the interface, the source of every message we send
    /// (None: the kernel picks one of ours, which is fine with one link-local).
    pub source: Option<Ipv6Addr>,
    /// The interface's MAC, sent as the Source Link-Layer Address option (saves the
    /// router a neighbour solicitation); None sends no option.
    pub mac: Option<Mac>,
    /// Time between our periodic RAs (at least `MIN_INTERVAL`).
    pub interval: Duration,
}

/// A valid Router Advertisement heard on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heard {
    pub ifindex: u32,
    /// The sender: a link-local address, to be used with scope `ifindex`.
    pub router: Ipv6Addr,
    /// Seconds; 0 is a router that is not a default router. FRR sends 3 x its
    /// period (30 s), and 0 in its last RA when zebra stops (RFC 4861 6.2.5).
    pub router_lifetime: u16,
    pub mac: Option<Mac>,
}

/// The running task; dropping it stops the task.
pub struct Handle {
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Whether the task has ended (its reports' receiver is gone, or the socket failed).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens the interface's socket and starts the task on the current runtime. Errors
/// are the socket's: no CAP_NET_RAW, no such interface.
pub fn spawn(config: Config, reports: mpsc::UnboundedSender<Heard>) -> io::Result<Handle> {
    let socket = NdSocket::open(&config.ifname, config.ifindex)?;
    let task = Task {
        socket,
        config,
        reports,
        known: HashSet::new(),
    };
    Ok(Handle {
        task: tokio::spawn(task.run()),
    })
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Why a received message is not used (debug-logged, not an error).
#[derive(Debug, PartialEq, Eq)]
enum Discard {
    HopLimit(Option<i32>),
    NotLinkLocal(Ipv6Addr),
    Ours,
    Malformed(super::wire::Error),
    /// RFC 4861 6.1.1: an RS from the unspecified address carries no SLLA option.
    UnspecifiedWithSlla,
}

/// What a received message asks of the task.
#[derive(Debug, PartialEq, Eq)]
enum Input {
    Solicit,
    Advert(Heard),
}

/// The reception checks of RFC 4861 sections 6.1.1 and 6.1.2 (pure).
fn classify(
    msg: &[u8],
    from: Ipv6Addr,
    hop_limit: Option<i32>,
    ifindex: u32,
    ours: Option<Ipv6Addr>,
) -> Result<Input, Discard> {
    if hop_limit != Some(HOP_LIMIT) {
        return Err(Discard::HopLimit(hop_limit));
    }
    if Some(from) == ours {
        return Err(Discard::Ours);
    }
    match Repr::from_bytes(msg).map_err(Discard::Malformed)? {
        Repr::RouterSolicit(RouterSolicit { source_ll_addr }) => {
            if from.is_unspecified() && source_ll_addr.is_some() {
                return Err(Discard::UnspecifiedWithSlla);
            }
            Ok(Input::Solicit)
        }
        Repr::RouterAdvert(ra) => {
            if !is_link_local(&from) {
                return Err(Discard::NotLinkLocal(from));
            }
            Ok(Input::Advert(Heard {
                ifindex,
                router: from,
                router_lifetime: ra.router_lifetime,
                mac: ra.source_ll_addr,
            }))
        }
    }
}

/// What a received message asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ask {
    /// An RS, or the first RA of a router: an RA soon, at most one per
    /// `MIN_REPLY_GAP`.
    ReplySoon,
    /// Another RA of a known router: an RA now unless we sent one within
    /// `MIN_REPLY_GAP` (a router that restarted learns us at once; two hostbgp
    /// hosts answer each other's periodic RAs once, not back and forth).
    ReplyIfQuiet,
}

/// When to send our RAs (pure: the task feeds it the clock).
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    next_advert: Instant,
    reply_at: Option<Instant>,
    last_reply: Option<Instant>,
    last_advert: Instant,
}

impl Pacer {
    /// `now` is when the first RA went out.
    fn new(now: Instant, interval: Duration) -> Pacer {
        let interval = interval.max(MIN_INTERVAL);
        Pacer {
            interval,
            next_advert: now + interval,
            reply_at: None,
            last_reply: None,
            last_advert: now,
        }
    }

    fn ask(&mut self, now: Instant, ask: Ask) {
        let after_gap = |t: Option<Instant>| t.map_or(now, |t| (t + MIN_REPLY_GAP).max(now));
        let at = match ask {
            Ask::ReplySoon => after_gap(self.last_reply),
            Ask::ReplyIfQuiet => {
                let quiet = self.last_advert + MIN_REPLY_GAP <= now
                    && self.last_reply.is_none_or(|t| t + MIN_REPLY_GAP <= now);
                if !quiet {
                    return;
                }
                now
            }
        };
        self.reply_at = Some(self.reply_at.map_or(at, |r| r.min(at)));
    }

    fn wake(&self) -> Instant {
        self.reply_at
            .map_or(self.next_advert, |r| r.min(self.next_advert))
    }

    /// Whether an RA is due at `now`; if so it counts as sent.
    fn due(&mut self, now: Instant) -> bool {
        let reply = self.reply_at.is_some_and(|r| r <= now);
        if !reply && self.next_advert > now {
            return false;
        }
        if reply {
            self.reply_at = None;
            self.last_reply = Some(now);
        }
        self.last_advert = now;
        self.next_advert = now + self.interval;
        true
    }
}

struct Task {
    socket: NdSocket,
    config: Config,
    reports: mpsc::UnboundedSender<Heard>,
    /// Routers heard since the start.
    known: HashSet<Ipv6Addr>,
}

impl Task {
    async fn run(mut self) {
        let ifname = self.config.ifname.clone();
        let rs = Repr::RouterSolicit(RouterSolicit {
            source_ll_addr: self.config.mac,
        })
        .to_bytes();
        self.send(&rs, ALL_ROUTERS);
        self.advertise();
        let mut pacer = Pacer::new(Instant::now(), self.config.interval);
        let mut buf = vec![0u8; 1500];
        loop {
            tokio::select! {
                r = self.socket.recv(&mut buf) => match r {
                    Ok(received) => {
                        let ask = buf
                            .get(..received.len)
                            .and_then(|msg| self.on_message(msg, &received));
                        if let Some(ask) = ask {
                            pacer.ask(Instant::now(), ask);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::error!("router discovery on {ifname}: receive failed: {e}");
                        return;
                    }
                },
                () = tokio::time::sleep_until(pacer.wake()) => {
                    if pacer.due(Instant::now()) {
                        self.advertise();
                    }
                }
                () = self.reports.closed() => return,
            }
        }
    }

    /// Handles one message: reports an RA, and says what reply it asks for.
    fn on_message(&mut self, msg: &[u8], r: &Received) -> Option<Ask> {
        let from = *r.from.ip();
        match classify(
            msg,
            from,
            r.hop_limit,
            self.config.ifindex,
            self.config.source,
        ) {
            Ok(Input::Solicit) => Some(Ask::ReplySoon),
            Ok(Input::Advert(heard)) => {
                tracing::debug!(
                    "router advertisement on {} from {from} (lifetime {}s)",
                    self.config.ifname,
                    heard.router_lifetime
                );
                let _ = self.reports.send(heard);
                Some(if self.known.insert(from) {
                    Ask::ReplySoon
                } else {
                    Ask::ReplyIfQuiet
                })
            }
            Err(why) => {
                tracing::debug!(
                    "router discovery on {}: ignored a message from {from}: {why:?}",
                    self.config.ifname
                );
                None
            }
        }
    }

    fn advertise(&self) {
        let ra = Repr::RouterAdvert(RouterAdvert::announce(self.config.mac)).to_bytes();
        self.send(&ra, ALL_NODES);
    }

    fn send(&self, msg: &[u8], dst: Ipv6Addr) {
        if let Err(e) = self.socket.send(msg, dst, self.config.source) {
            // Link down, address not yet past DAD, full buffer: the next period retries.
            tracing::debug!(
                "router discovery on {}: send to {dst} failed: {e}",
                self.config.ifname
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xfc52, 0xbfff, 0xfe3d, 0xb049);
    const US: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

    fn ra(lifetime: u16) -> Vec<u8> {
        let mut ra = RouterAdvert::announce(Some(Mac([0xfe, 0x52, 0xbf, 0x3d, 0xb0, 0x49])));
        ra.router_lifetime = lifetime;
        Repr::RouterAdvert(ra).to_bytes()
    }

    #[test]
    fn advert_from_router_is_heard() {
        assert_eq!(
            classify(&ra(30), ROUTER, Some(255), 7, Some(US)),
            Ok(Input::Advert(Heard {
                ifindex: 7,
                router: ROUTER,
                router_lifetime: 30,
                mac: Some(Mac([0xfe, 0x52, 0xbf, 0x3d, 0xb0, 0x49])),
            }))
        );
    }

    #[test]
    fn hop_limit_must_be_255() {
        assert_eq!(
            classify(&ra(0), ROUTER, Some(64), 7, None),
            Err(Discard::HopLimit(Some(64)))
        );
        assert_eq!(
            classify(&ra(0), ROUTER, None, 7, None),
            Err(Discard::HopLimit(None))
        );
    }

    #[test]
    fn advert_source_must_be_link_local() {
        let global = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        assert_eq!(
            classify(&ra(0), global, Some(255), 7, None),
            Err(Discard::NotLinkLocal(global))
        );
    }

    #[test]
    fn our_own_advert_is_ignored() {
        assert_eq!(
            classify(&ra(0), US, Some(255), 7, Some(US)),
            Err(Discard::Ours)
        );
    }

    #[test]
    fn solicitation_asks_for_a_reply() {
        let rs = Repr::RouterSolicit(RouterSolicit {
            source_ll_addr: Some(Mac([2, 0, 0, 0, 0, 1])),
        })
        .to_bytes();
        assert_eq!(
            classify(&rs, ROUTER, Some(255), 7, None),
            Ok(Input::Solicit)
        );
        assert_eq!(
            classify(&rs, Ipv6Addr::UNSPECIFIED, Some(255), 7, None),
            Err(Discard::UnspecifiedWithSlla)
        );
    }

    #[test]
    fn malformed_is_discarded_with_its_reason() {
        let mut bad = ra(0);
        bad[17] = 0;
        assert!(matches!(
            classify(&bad, ROUTER, Some(255), 7, None),
            Err(Discard::Malformed(
                super::super::wire::Error::OptionZeroLength { .. }
            ))
        ));
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn pacer_period_has_a_floor() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, Duration::ZERO);
        assert_eq!(p.wake(), t0 + MIN_INTERVAL);
        assert!(!p.due(t0));
    }

    #[test]
    fn pacer_sends_periodically() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, Duration::from_secs(10));
        assert_eq!(p.wake(), at(t0, 10_000));
        assert!(!p.due(at(t0, 9_999)));
        assert!(p.due(at(t0, 10_000)));
        assert_eq!(p.wake(), at(t0, 20_000));
    }

    #[test]
    fn pacer_replies_at_once_then_waits_the_gap() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, Duration::from_secs(60));
        p.ask(at(t0, 100), Ask::ReplySoon);
        assert_eq!(p.wake(), at(t0, 100));
        assert!(p.due(at(t0, 100)));
        // A second solicitation a second later waits for the gap.
        p.ask(at(t0, 1_100), Ask::ReplySoon);
        assert_eq!(p.wake(), at(t0, 3_100));
        assert!(!p.due(at(t0, 3_000)));
        assert!(p.due(at(t0, 3_100)));
        // A reply restarts the period.
        assert_eq!(p.wake(), at(t0, 63_100));
    }

    #[test]
    fn pacer_answers_a_known_router_only_when_quiet() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0, Duration::from_secs(10));
        // Just sent our first RA: a known router's RA is not answered.
        p.ask(at(t0, 1_000), Ask::ReplyIfQuiet);
        assert_eq!(p.wake(), at(t0, 10_000));
        // Quiet for 3 s: answered at once.
        p.ask(at(t0, 5_000), Ask::ReplyIfQuiet);
        assert_eq!(p.wake(), at(t0, 5_000));
        assert!(p.due(at(t0, 5_000)));
        // Its next RA a second later (FRR's fast RAs) is not.
        p.ask(at(t0, 6_000), Ask::ReplyIfQuiet);
        assert_eq!(p.wake(), at(t0, 15_000));
    }
}
