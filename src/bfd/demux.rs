//! Which session a received packet belongs to (RFC 5880 section 6.8.6; RFC 5881
//! section 3 for single hop), and the local discriminators that make it possible.
//!
//! `K` is however the socket task names a peer: for single hop, the source address
//! and the interface the packet came in on.
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::num::NonZeroU32;

use super::codes::State;
use super::packet::Repr;
use super::timers::Jitter;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// Your Discriminator names no session of ours.
    UnknownDiscriminator(u32),
    /// Your Discriminator names a session with another peer: RFC 5881 binds a single
    /// hop session to one address and interface, so this is misrouted or spoofed.
    WrongPeer(u32),
    /// Your Discriminator is zero and no session is configured for the sender.
    UnknownPeer,
    /// Your Discriminator is zero, which only a Down or AdminDown sender may send.
    ZeroDiscriminator(State),
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::UnknownDiscriminator(d) => write!(f, "no session has discriminator {d}"),
            LookupError::WrongPeer(d) => {
                write!(
                    f,
                    "discriminator {d} belongs to a session with another peer"
                )
            }
            LookupError::UnknownPeer => f.write_str("no session with this peer"),
            LookupError::ZeroDiscriminator(state) => {
                write!(f, "zero your discriminator in state {state}")
            }
        }
    }
}

impl std::error::Error for LookupError {}

#[derive(Clone, Debug)]
pub struct Demux<K> {
    by_discr: HashMap<NonZeroU32, K>,
    by_peer: HashMap<K, NonZeroU32>,
}

impl<K: Eq + Hash + Clone> Default for Demux<K> {
    fn default() -> Self {
        Demux {
            by_discr: HashMap::new(),
            by_peer: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash + Clone> Demux<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The peer's local discriminator, chosen now if it has none: unique and non-zero,
    /// and random as section 6.8.1 advises, so that a restarted agent does not reuse
    /// the one the peer still remembers.
    pub fn insert(&mut self, peer: K, rng: &mut dyn Jitter) -> NonZeroU32 {
        if let Some(discr) = self.by_peer.get(&peer) {
            return *discr;
        }
        // Probing on from a taken value ends even with a constant `rng`.
        let mut candidate = rng.next_u32();
        let discr = loop {
            match NonZeroU32::new(candidate) {
                Some(d) if !self.by_discr.contains_key(&d) => break d,
                _ => candidate = candidate.wrapping_add(1),
            }
        };
        self.by_discr.insert(discr, peer.clone());
        self.by_peer.insert(peer, discr);
        discr
    }

    pub fn remove(&mut self, peer: &K) -> Option<NonZeroU32> {
        let discr = self.by_peer.remove(peer)?;
        self.by_discr.remove(&discr);
        Some(discr)
    }

    /// The local discriminator of the session `repr`, received from `from`, is for.
    pub fn lookup(&self, repr: &Repr, from: &K) -> Result<NonZeroU32, LookupError> {
        match NonZeroU32::new(repr.your_discriminator) {
            Some(discr) => match self.by_discr.get(&discr) {
                Some(peer) if peer == from => Ok(discr),
                Some(_) => Err(LookupError::WrongPeer(discr.get())),
                None => Err(LookupError::UnknownDiscriminator(discr.get())),
            },
            None if !matches!(repr.state, State::Down | State::AdminDown) => {
                Err(LookupError::ZeroDiscriminator(repr.state))
            }
            None => self
                .by_peer
                .get(from)
                .copied()
                .ok_or(LookupError::UnknownPeer),
        }
    }

    pub fn len(&self) -> usize {
        self.by_peer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_peer.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv6Addr};

    use super::*;
    use crate::bfd::packet_tests::first_down;

    type Peer = (IpAddr, u32);

    fn peer(last: u16, ifindex: u32) -> Peer {
        (
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last)),
            ifindex,
        )
    }

    fn repr(state: State, your_discriminator: u32) -> Repr {
        Repr {
            state,
            your_discriminator,
            ..first_down(99)
        }
    }

    #[test]
    fn discriminators_are_unique_and_non_zero_even_with_a_stuck_rng() {
        let mut demux = Demux::new();
        let mut zero = || 0u32;
        let a = demux.insert(peer(1, 2), &mut zero);
        let b = demux.insert(peer(2, 2), &mut zero);
        assert_ne!(a, b);
        assert_eq!(
            demux.insert(peer(1, 2), &mut zero),
            a,
            "a known peer keeps its own"
        );
        let mut max = || u32::MAX;
        let c = demux.insert(peer(3, 2), &mut max);
        let d = demux.insert(peer(4, 2), &mut max);
        assert_eq!(c.get(), u32::MAX);
        assert!(![a, b, c].contains(&d), "wrapped past zero to a free value");
        assert_eq!(demux.len(), 4);
        assert_eq!(demux.remove(&peer(1, 2)), Some(a));
        assert_eq!(demux.remove(&peer(1, 2)), None);
    }

    #[test]
    fn lookup_by_discriminator_then_by_peer() {
        let mut demux = Demux::new();
        let mut rng = || 1000u32;
        let router = peer(1, 2);
        let discr = demux.insert(router, &mut rng);
        assert_eq!(
            demux.lookup(&repr(State::Up, discr.get()), &router),
            Ok(discr)
        );
        assert_eq!(demux.lookup(&repr(State::Down, 0), &router), Ok(discr));
        assert_eq!(
            demux.lookup(&repr(State::Up, 7), &router),
            Err(LookupError::UnknownDiscriminator(7))
        );
        // Same address on another interface is another peer.
        assert_eq!(
            demux.lookup(&repr(State::Up, discr.get()), &peer(1, 3)),
            Err(LookupError::WrongPeer(discr.get()))
        );
        assert_eq!(
            demux.lookup(&repr(State::Down, 0), &peer(9, 2)),
            Err(LookupError::UnknownPeer)
        );
        assert_eq!(
            demux.lookup(&repr(State::Init, 0), &router),
            Err(LookupError::ZeroDiscriminator(State::Init))
        );
    }
}
