//! Graceful restart as negotiated (RFC 4724) and the Notification bit (RFC 8538):
//! what each side offered, and which NOTIFICATIONs must go as a Hard Reset. Pure.
use super::wire::codes::CeaseSubcode;
use super::wire::{Capability, Notification};

/// One side's graceful restart capability, as status shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestartOffer {
    /// How long the side asks its peer to keep its routes after the session drops.
    pub restart_time: u16,
    /// The N bit (RFC 8538): the side handles NOTIFICATIONs gracefully too, and
    /// understands Cease/Hard Reset.
    pub notification: bool,
    /// The R bit: the side has just restarted.
    pub restarting: bool,
}

impl GracefulRestartOffer {
    /// The offer in an OPEN's capabilities, if it has one.
    pub fn of(capabilities: &[Capability]) -> Option<GracefulRestartOffer> {
        capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(GracefulRestartOffer {
                restart_time: gr.restart_time,
                notification: gr.notification,
                restarting: gr.restart_state,
            }),
            _ => None,
        })
    }
}

/// Both sides' offers for one session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GracefulRestartNegotiated {
    pub local: Option<GracefulRestartOffer>,
    pub peer: Option<GracefulRestartOffer>,
}

impl GracefulRestartNegotiated {
    /// RFC 8538 section 2: only when both sides sent the N bit does a NOTIFICATION
    /// mean "keep the routes", and so only then must a real reset say Hard Reset.
    pub fn hard_reset(&self) -> bool {
        let n = |o: Option<GracefulRestartOffer>| o.is_some_and(|o| o.notification);
        n(self.local) && n(self.peer)
    }

    /// What goes on the wire in place of `n`. Under the N bit a plain NOTIFICATION
    /// would leave our routes at the peer as stale for our restart time (RFC 8538
    /// section 4), so every NOTIFICATION that ends a session is wrapped in a Hard
    /// Reset: hold timer, BFD down, shutdown, disable, reconfiguration, errors. We
    /// never send one for a graceful restart (a restart closes without a word), so
    /// none is left plain. Except: a Collision Resolution closes one of two
    /// connections and leaves the session (and the routes) to the other.
    pub fn outgoing(&self, n: Notification) -> Notification {
        if !self.hard_reset()
            || n.is_hard_reset()
            || n.is(CeaseSubcode::ConnectionCollisionResolution)
        {
            return n;
        }
        Notification::hard_reset(&n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::wire::codes::{ErrorCode, FsmSubcode, UpdateSubcode};
    use crate::bgp::wire::GracefulRestart;

    fn offer(notification: bool) -> Option<GracefulRestartOffer> {
        Some(GracefulRestartOffer {
            restart_time: 120,
            notification,
            restarting: false,
        })
    }

    fn both(local: bool, peer: bool) -> GracefulRestartNegotiated {
        GracefulRestartNegotiated {
            local: offer(local),
            peer: offer(peer),
        }
    }

    #[test]
    fn offer_from_capabilities() {
        let caps = vec![
            Capability::RouteRefresh,
            Capability::GracefulRestart(GracefulRestart::ipv4_unicast(true, true, 3600)),
        ];
        assert_eq!(
            GracefulRestartOffer::of(&caps),
            Some(GracefulRestartOffer {
                restart_time: 3600,
                notification: true,
                restarting: true,
            })
        );
        assert_eq!(GracefulRestartOffer::of(&caps[..1]), None);
    }

    #[test]
    fn hard_reset_needs_the_n_bit_both_ways() {
        assert!(both(true, true).hard_reset());
        assert!(!both(true, false).hard_reset());
        assert!(!both(false, true).hard_reset());
        let no_peer_gr = GracefulRestartNegotiated {
            local: offer(true),
            peer: None,
        };
        assert!(!no_peer_gr.hard_reset());
        assert!(!GracefulRestartNegotiated::default().hard_reset());
    }

    #[test]
    fn session_ending_notifications_become_hard_resets() {
        let gr = both(true, true);
        let ending = [
            Notification::new(ErrorCode::HoldTimerExpired, 0, vec![]),
            Notification::cease(CeaseSubcode::BfdDown),
            Notification::cease_shutdown("maintenance"),
            Notification::cease(CeaseSubcode::PeerDeconfigured),
            Notification::cease(CeaseSubcode::OtherConfigurationChange),
            Notification::error(UpdateSubcode::MalformedAttributeList, vec![0xab]),
            Notification::error(FsmSubcode::UnexpectedMessageInEstablished, vec![]),
        ];
        for n in ending {
            let sent = gr.outgoing(n.clone());
            assert!(sent.is_hard_reset(), "{n}: {sent}");
            assert_eq!(sent.hard_reset_inner(), Some(n.clone()), "{n}");
            // Without the N bit on both sides it goes as it is.
            assert_eq!(both(true, false).outgoing(n.clone()), n);
            assert_eq!(GracefulRestartNegotiated::default().outgoing(n.clone()), n);
        }
    }

    #[test]
    fn collisions_and_hard_resets_are_left_alone() {
        let gr = both(true, true);
        let collision = Notification::cease(CeaseSubcode::ConnectionCollisionResolution);
        assert_eq!(gr.outgoing(collision.clone()), collision);
        let hold = Notification::new(ErrorCode::HoldTimerExpired, 0, vec![]);
        let hard = Notification::hard_reset(&hold);
        assert_eq!(gr.outgoing(hard.clone()), hard, "never wrapped twice");
    }
}
