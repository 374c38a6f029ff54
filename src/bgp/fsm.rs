//! The pure parts of the RFC 4271 session: OPEN construction and negotiation,
//! timers, collision resolution and reconnect backoff. No sockets here.
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::graceful::{GracefulRestartNegotiated, GracefulRestartOffer};
use super::wire::codes::OpenSubcode;
use super::wire::{
    Capability, ExtendedNextHopEntry, Family, GracefulRestart, GracefulRestartFamily, Notification,
    Open, AFI_IPV4, AFI_IPV6, AS_TRANS, SAFI_UNICAST,
};

pub const BGP_VERSION: u8 = 4;

/// RFC 4271 session states, as shown by `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Graceful restart as this speaker announces it (RFC 4724).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestartParams {
    pub restart_time: u16,
    /// Restart State bit: this is the first session after a restart.
    pub restarting: bool,
    /// Forwarding State bit: the kernel routes were kept across the restart.
    pub forwarding: bool,
}

/// What this speaker offers on every session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalParams {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub hold_time: u16,
    pub graceful_restart: Option<GracefulRestartParams>,
}

impl LocalParams {
    /// What one peer is offered: its own hold time and, when it has one, its own
    /// restart time (`bgp.peers.NAME.graceful_restart.time`).
    pub fn for_peer(&self, hold_time: u16, restart_time: Option<u16>) -> LocalParams {
        let graceful_restart = self.graceful_restart.map(|gr| GracefulRestartParams {
            restart_time: restart_time.unwrap_or(gr.restart_time),
            ..gr
        });
        LocalParams {
            hold_time,
            graceful_restart,
            ..self.clone()
        }
    }

    fn graceful_restart_offer(&self) -> Option<GracefulRestartOffer> {
        self.graceful_restart.map(|gr| GracefulRestartOffer {
            restart_time: gr.restart_time.min(4095),
            notification: true,
            restarting: gr.restarting,
        })
    }
}

/// What both sides agreed on for one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_asn: u32,
    pub peer_id: Ipv4Addr,
    pub hold_time: u16,
    pub families: Vec<Family>,
    pub four_octet_as: bool,
    pub extended_message: bool,
    /// RFC 8950: IPv4 unicast prefixes may carry an IPv6 next hop.
    pub extended_next_hop_ipv4: bool,
    pub route_refresh: bool,
    /// The peer understands graceful restart (so it may keep our routes as stale).
    pub graceful_restart: bool,
    /// Both sides' graceful restart offers: restart times, N bits.
    pub graceful: GracefulRestartNegotiated,
}

impl Negotiated {
    /// RFC 4271 suggests a third of the hold time; a zero hold time means no keepalives.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        (self.hold_time > 0).then(|| Duration::from_secs(u64::from(self.hold_time / 3).max(1)))
    }

    pub fn hold_duration(&self) -> Option<Duration> {
        (self.hold_time > 0).then(|| Duration::from_secs(u64::from(self.hold_time)))
    }
}

fn unicast(afi: u16) -> Capability {
    Capability::Multiprotocol {
        afi,
        safi: SAFI_UNICAST,
    }
}

pub fn build_open(local: &LocalParams) -> Open {
    let mut capabilities = vec![
        unicast(AFI_IPV4),
        unicast(AFI_IPV6),
        Capability::RouteRefresh,
        Capability::ExtendedNextHop(vec![ExtendedNextHopEntry {
            nlri_afi: AFI_IPV4,
            nlri_safi: u16::from(SAFI_UNICAST),
            next_hop_afi: AFI_IPV6,
        }]),
        Capability::ExtendedMessage,
        Capability::FourOctetAs(local.asn),
    ];
    if let (Some(gr), Some(offer)) = (local.graceful_restart, local.graceful_restart_offer()) {
        capabilities.push(Capability::GracefulRestart(GracefulRestart {
            restart_state: offer.restarting,
            // RFC 8538: we ask for NOTIFICATIONs to be graceful too, and say Hard
            // Reset when we mean it (see `GracefulRestartNegotiated::outgoing`).
            notification: offer.notification,
            restart_time: offer.restart_time,
            families: Family::ALL
                .iter()
                .map(|f| GracefulRestartFamily {
                    afi: f.afi(),
                    safi: f.safi(),
                    forwarding_state: gr.forwarding,
                })
                .collect(),
        }));
    }
    Open {
        version: BGP_VERSION,
        my_as: u16::try_from(local.asn).unwrap_or(AS_TRANS),
        hold_time: local.hold_time,
        bgp_id: local.router_id,
        capabilities,
    }
}

/// Checks the peer's OPEN against what we expect; Err is the NOTIFICATION to send.
pub fn negotiate(
    local: &LocalParams,
    expected_peer_asn: u32,
    open: &Open,
) -> Result<Negotiated, Notification> {
    if open.version != BGP_VERSION {
        return Err(Notification::error(
            OpenSubcode::UnsupportedVersionNumber,
            vec![0, BGP_VERSION],
        ));
    }
    let peer_asn = open.asn();
    if peer_asn != expected_peer_asn {
        return Err(Notification::error(OpenSubcode::BadPeerAs, Vec::new()));
    }
    if open.hold_time == 1 || open.hold_time == 2 {
        return Err(Notification::error(
            OpenSubcode::UnacceptableHoldTime,
            Vec::new(),
        ));
    }
    let ibgp = peer_asn == local.asn;
    if open.bgp_id.is_unspecified() || (ibgp && open.bgp_id == local.router_id) {
        return Err(Notification::error(
            OpenSubcode::BadBgpIdentifier,
            Vec::new(),
        ));
    }

    let mut offered_families = Vec::new();
    let mut four_octet_as = false;
    let mut extended_message = false;
    let mut extended_next_hop_ipv4 = false;
    let mut route_refresh = false;
    let mut graceful_restart = false;
    for cap in &open.capabilities {
        match cap {
            Capability::Multiprotocol { afi, safi } => {
                if let Some(f) = Family::from_afi_safi(*afi, *safi) {
                    offered_families.push(f);
                }
            }
            Capability::FourOctetAs(_) => four_octet_as = true,
            Capability::ExtendedMessage => extended_message = true,
            Capability::RouteRefresh => route_refresh = true,
            Capability::GracefulRestart(_) => graceful_restart = true,
            Capability::ExtendedNextHop(entries) => {
                extended_next_hop_ipv4 |= entries.iter().any(|e| {
                    e.nlri_afi == AFI_IPV4
                        && e.nlri_safi == u16::from(SAFI_UNICAST)
                        && e.next_hop_afi == AFI_IPV6
                })
            }
            Capability::Unknown { .. } => {}
        }
    }
    let has_mp = open
        .capabilities
        .iter()
        .any(|c| matches!(c, Capability::Multiprotocol { .. }));
    // RFC 4760: a speaker that announces no multiprotocol capability does IPv4 unicast only.
    let families = if has_mp {
        Family::ALL
            .iter()
            .copied()
            .filter(|f| offered_families.contains(f))
            .collect()
    } else {
        vec![Family::Ipv4Unicast]
    };
    Ok(Negotiated {
        peer_asn,
        peer_id: open.bgp_id,
        hold_time: local.hold_time.min(open.hold_time),
        families,
        four_octet_as,
        extended_message,
        extended_next_hop_ipv4,
        route_refresh,
        graceful_restart,
        graceful: GracefulRestartNegotiated {
            local: local.graceful_restart_offer(),
            peer: GracefulRestartOffer::of(&open.capabilities),
        },
    })
}

/// Which end opened a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// We connected to the peer.
    Outbound,
    /// The peer connected to us.
    Inbound,
}

/// RFC 4271 6.8: of two connections to the same peer, keep the one opened by the
/// speaker with the higher BGP identifier.
pub fn collision_survivor(local_id: Ipv4Addr, peer_id: Ipv4Addr) -> Direction {
    if u32::from(local_id) < u32::from(peer_id) {
        Direction::Inbound
    } else {
        Direction::Outbound
    }
}

/// Reconnect delays: 1 s doubling to 30 s, reset once a session is established.
/// Each delay is cut by a random 0-25% (RFC 4271 10) so that two speakers whose
/// connections collided do not retry in lock-step forever.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    seed: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Backoff {
            next: Self::FIRST,
            seed,
        }
    }
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(30);

    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        // xorshift64: plenty for jitter.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let cut = (self.seed % 251) as u32; // 0..=250 thousandths
        delay - delay * cut / 1000
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::wire::codes::ErrorCode;

    fn local() -> LocalParams {
        LocalParams {
            asn: 65010,
            router_id: Ipv4Addr::new(198, 51, 100, 1),
            hold_time: 90,
            graceful_restart: Some(GracefulRestartParams {
                restart_time: 120,
                restarting: false,
                forwarding: true,
            }),
        }
    }

    fn peer_open(caps: Vec<Capability>) -> Open {
        Open {
            version: 4,
            my_as: 65000,
            hold_time: 240,
            bgp_id: Ipv4Addr::new(198, 51, 100, 254),
            capabilities: caps,
        }
    }

    fn bird_caps() -> Vec<Capability> {
        vec![
            unicast(AFI_IPV4),
            unicast(AFI_IPV6),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65000),
        ]
    }

    #[test]
    fn negotiates_families_and_hold_time() {
        let n = negotiate(&local(), 65000, &peer_open(bird_caps())).unwrap();
        assert_eq!(n.families, vec![Family::Ipv4Unicast, Family::Ipv6Unicast]);
        assert_eq!(n.hold_time, 90);
        assert_eq!(n.keepalive_interval(), Some(Duration::from_secs(30)));
        assert!(n.four_octet_as && n.route_refresh);
        assert!(!n.extended_next_hop_ipv4 && !n.extended_message && !n.graceful_restart);
    }

    #[test]
    fn no_multiprotocol_means_ipv4_only() {
        let n = negotiate(&local(), 65000, &peer_open(vec![])).unwrap();
        assert_eq!(n.families, vec![Family::Ipv4Unicast]);
        assert!(!n.four_octet_as);
    }

    #[test]
    fn only_ipv6_offered() {
        let caps = vec![unicast(AFI_IPV6)];
        let n = negotiate(&local(), 65000, &peer_open(caps)).unwrap();
        assert_eq!(n.families, vec![Family::Ipv6Unicast]);
    }

    #[test]
    fn extended_next_hop_needs_the_ipv4_over_ipv6_entry() {
        let with_entry = |nlri_safi| {
            let mut caps = bird_caps();
            caps.push(Capability::ExtendedNextHop(vec![ExtendedNextHopEntry {
                nlri_afi: AFI_IPV4,
                nlri_safi,
                next_hop_afi: AFI_IPV6,
            }]));
            negotiate(&local(), 65000, &peer_open(caps))
                .unwrap()
                .extended_next_hop_ipv4
        };
        assert!(with_entry(1));
        assert!(!with_entry(128));
    }

    #[test]
    fn wrong_peer_as_is_bad_peer_as() {
        let err = negotiate(&local(), 65001, &peer_open(bird_caps())).unwrap_err();
        assert_eq!(err.subcode_of(), Some(OpenSubcode::BadPeerAs));
    }

    #[test]
    fn four_octet_capability_wins_over_my_as() {
        let mut open = peer_open(vec![Capability::FourOctetAs(4_200_000_000)]);
        open.my_as = AS_TRANS;
        assert_eq!(
            negotiate(&local(), 4_200_000_000, &open).unwrap().peer_asn,
            4_200_000_000
        );
        let err = negotiate(&local(), 23456, &open).unwrap_err();
        assert_eq!(err.subcode_of(), Some(OpenSubcode::BadPeerAs));
    }

    #[test]
    fn bad_version_and_hold_time() {
        let mut open = peer_open(bird_caps());
        open.version = 3;
        let err = negotiate(&local(), 65000, &open).unwrap_err();
        assert_eq!(
            (err.subcode_of(), err.data.clone()),
            (Some(OpenSubcode::UnsupportedVersionNumber), vec![0, 4])
        );
        for bad in [1, 2] {
            let mut open = peer_open(bird_caps());
            open.hold_time = bad;
            let err = negotiate(&local(), 65000, &open).unwrap_err();
            assert_eq!(err.subcode_of(), Some(OpenSubcode::UnacceptableHoldTime));
        }
        let mut open = peer_open(bird_caps());
        open.hold_time = 0;
        let n = negotiate(&local(), 65000, &open).unwrap();
        assert_eq!(
            (n.hold_time, n.keepalive_interval(), n.hold_duration()),
            (0, None, None)
        );
        let mut open = peer_open(bird_caps());
        open.hold_time = 3;
        assert_eq!(
            negotiate(&local(), 65000, &open)
                .unwrap()
                .keepalive_interval(),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn bad_identifier() {
        let mut open = peer_open(bird_caps());
        open.bgp_id = Ipv4Addr::UNSPECIFIED;
        let bad_id = Some(OpenSubcode::BadBgpIdentifier);
        assert_eq!(
            negotiate(&local(), 65000, &open).unwrap_err().subcode_of(),
            bad_id
        );
        // Same identifier is only a problem inside one AS (RFC 6286).
        let mut open = peer_open(bird_caps());
        open.bgp_id = local().router_id;
        assert!(negotiate(&local(), 65000, &open).is_ok());
        open.my_as = 65010;
        open.capabilities = vec![Capability::FourOctetAs(65010)];
        assert_eq!(
            negotiate(&local(), 65010, &open).unwrap_err().subcode_of(),
            bad_id
        );
    }

    #[test]
    fn open_offers_everything_with_as_trans_for_big_asn() {
        let mut l = local();
        l.asn = 4_200_000_000;
        let open = build_open(&l);
        assert_eq!(open.my_as, AS_TRANS);
        assert!(open
            .capabilities
            .contains(&Capability::FourOctetAs(4_200_000_000)));
        assert!(open.capabilities.contains(&Capability::ExtendedMessage));
        let gr = open.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr.clone()),
            _ => None,
        });
        let gr = gr.unwrap();
        assert_eq!(gr.restart_time, 120);
        assert_eq!(gr.families.len(), 2);
        assert!(gr.families.iter().all(|f| f.forwarding_state));
        l.graceful_restart = None;
        assert!(!build_open(&l)
            .capabilities
            .iter()
            .any(|c| matches!(c, Capability::GracefulRestart(_))));
    }

    fn peer_gr(restart_time: u16, notification: bool) -> Capability {
        Capability::GracefulRestart(GracefulRestart {
            restart_state: false,
            notification,
            restart_time,
            families: vec![],
        })
    }

    fn open_gr(open: &Open) -> Option<GracefulRestart> {
        open.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr.clone()),
            _ => None,
        })
    }

    #[test]
    fn open_sends_the_n_bit_and_the_peer_restart_time() {
        let gr = open_gr(&build_open(&local())).unwrap();
        assert!(gr.notification && !gr.restart_state);
        assert_eq!(gr.restart_time, 120);
        // A peer's own time wins over the server's; its hold time is its own.
        let lxd = local().for_peer(30, Some(3600));
        assert_eq!(lxd.hold_time, 30);
        assert_eq!(open_gr(&build_open(&lxd)).unwrap().restart_time, 3600);
        let zero = local().for_peer(90, Some(0));
        assert_eq!(open_gr(&build_open(&zero)).unwrap().restart_time, 0);
        assert_eq!(
            open_gr(&build_open(&local().for_peer(90, None)))
                .unwrap()
                .restart_time,
            120
        );
        // Graceful restart off: no capability whatever the peer's time.
        let mut off = local();
        off.graceful_restart = None;
        let off = off.for_peer(90, Some(3600));
        assert_eq!(off.graceful_restart, None);
        assert_eq!(open_gr(&build_open(&off)), None);
        // The R and F bits of a restart survive a per-peer time.
        let mut restarting = local();
        restarting.graceful_restart = Some(GracefulRestartParams {
            restart_time: 120,
            restarting: true,
            forwarding: true,
        });
        let gr = open_gr(&build_open(&restarting.for_peer(90, Some(600)))).unwrap();
        assert!(gr.restart_state && gr.notification);
        assert_eq!(gr.restart_time, 600);
        assert!(gr.families.iter().all(|f| f.forwarding_state));
    }

    #[test]
    fn negotiates_graceful_restart_both_ways() {
        let mut caps = bird_caps();
        caps.push(peer_gr(90, true));
        let n = negotiate(&local().for_peer(90, Some(3600)), 65000, &peer_open(caps)).unwrap();
        assert!(n.graceful_restart);
        let ours = n.graceful.local.unwrap();
        let theirs = n.graceful.peer.unwrap();
        assert_eq!((ours.restart_time, ours.notification), (3600, true));
        assert_eq!((theirs.restart_time, theirs.notification), (90, true));
        assert!(n.graceful.hard_reset());

        // bird 2.0: graceful restart without the N bit.
        let mut caps = bird_caps();
        caps.push(peer_gr(120, false));
        let n = negotiate(&local(), 65000, &peer_open(caps)).unwrap();
        assert!(n.graceful_restart && !n.graceful.hard_reset());
        assert_eq!(n.graceful.peer.map(|p| p.restart_time), Some(120));

        // No capability from the peer.
        let n = negotiate(&local(), 65000, &peer_open(bird_caps())).unwrap();
        assert!(!n.graceful_restart && n.graceful.peer.is_none());
        assert!(!n.graceful.hard_reset());

        // Ours off: the peer's N bit alone changes nothing.
        let mut off = local();
        off.graceful_restart = None;
        let mut caps = bird_caps();
        caps.push(peer_gr(120, true));
        let n = negotiate(&off, 65000, &peer_open(caps)).unwrap();
        assert_eq!(n.graceful.local, None);
        assert!(!n.graceful.hard_reset());
        let hold = Notification::new(ErrorCode::HoldTimerExpired, 0, vec![]);
        assert_eq!(n.graceful.outgoing(hold.clone()), hold);
    }

    #[test]
    fn collision_keeps_higher_identifier_side() {
        let low = Ipv4Addr::new(192, 0, 2, 1);
        let high = Ipv4Addr::new(192, 0, 2, 200);
        assert_eq!(collision_survivor(low, high), Direction::Inbound);
        assert_eq!(collision_survivor(high, low), Direction::Outbound);
    }

    #[test]
    fn backoff_doubles_to_a_cap_and_resets() {
        let mut b = Backoff::default();
        let nominal = [1000u128, 2000, 4000, 8000, 16000, 30000, 30000];
        for n in nominal {
            let d = b.next_delay().as_millis();
            assert!(
                d <= n && d >= n * 3 / 4,
                "{d} ms outside the jitter range of {n} ms"
            );
        }
        b.reset();
        assert!(b.next_delay().as_millis() <= 1000);
        // Two speakers' schedules differ.
        let mut a = Backoff::default();
        let mut c = Backoff::default();
        let same = (0..5).all(|_| a.next_delay() == c.next_delay());
        assert!(!same);
    }
}
