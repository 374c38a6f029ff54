//! How BFD names a peer: its address, and for a link-local one the interface it is
//! on. RFC 5881 binds a single-hop session to both, so one link-local router address
//! on two interfaces (a router that uses `fe80::1` on every port) is two peers.
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

use super::CONTROL_PORT;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BfdPeer {
    pub address: IpAddr,
    /// The interface a link-local peer (an unnumbered peer's router) is reached
    /// through; None for a peer configured by address, routed as the kernel routes it.
    pub scope: Option<u32>,
}

impl BfdPeer {
    pub fn address(address: IpAddr) -> BfdPeer {
        BfdPeer {
            address,
            scope: None,
        }
    }

    pub fn scoped(address: Ipv6Addr, ifindex: u32) -> BfdPeer {
        BfdPeer {
            address: IpAddr::V6(address),
            scope: Some(ifindex),
        }
    }

    /// Where its control packets go: port 3784 of its address, through its interface
    /// when it has one (IPv4 has no scopes).
    pub fn destination(&self) -> SocketAddr {
        match (self.address, self.scope) {
            (IpAddr::V6(v6), Some(ifindex)) => {
                SocketAddr::V6(SocketAddrV6::new(v6, CONTROL_PORT, 0, ifindex))
            }
            (address, _) => SocketAddr::new(address, CONTROL_PORT),
        }
    }

    /// The names a datagram's sender may have: a link-local sender with the
    /// interface it came in on first (an unnumbered peer's router), then without (a
    /// peer configured by that address).
    pub(super) fn of_sender(from: SocketAddr) -> (BfdPeer, Option<BfdPeer>) {
        match from {
            SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => {
                // An IPv4 peer in mapped form: the IPv4 peer.
                let v4 = v6.ip().to_ipv4_mapped().map(IpAddr::V4);
                (BfdPeer::address(v4.unwrap_or(IpAddr::V6(*v6.ip()))), None)
            }
            SocketAddr::V6(v6) if v6.ip().is_unicast_link_local() => (
                BfdPeer::scoped(*v6.ip(), v6.scope_id()),
                Some(BfdPeer::address(IpAddr::V6(*v6.ip()))),
            ),
            other => (BfdPeer::address(other.ip()), None),
        }
    }
}

/// The address, with `%ifindex` for a scoped peer.
impl fmt::Display for BfdPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope {
            Some(ifindex) => write!(f, "{}%{ifindex}", self.address),
            None => self.address.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    #[test]
    fn link_local_peers_are_sent_to_through_their_interface() {
        let router = BfdPeer::scoped("fe80::1".parse().expect("address"), 7);
        assert_eq!(router.destination(), sender("[fe80::1%7]:3784"));
        assert_eq!(router.to_string(), "fe80::1%7");
        let global = BfdPeer::address("2001:db8::1".parse().expect("address"));
        assert_eq!(global.destination(), sender("[2001:db8::1]:3784"));
        assert_eq!(global.to_string(), "2001:db8::1");
        let v4 = BfdPeer {
            address: "192.0.2.1".parse().expect("address"),
            scope: Some(7),
        };
        assert_eq!(
            v4.destination(),
            sender("192.0.2.1:3784"),
            "IPv4 has no scope"
        );
    }

    #[test]
    fn a_sender_is_named_as_its_peer_would_be() {
        let (first, second) = BfdPeer::of_sender(sender("[fe80::1%7]:49152"));
        assert_eq!(
            first,
            BfdPeer::scoped("fe80::1".parse().expect("address"), 7)
        );
        assert_eq!(
            second,
            Some(BfdPeer::address("fe80::1".parse().expect("address")))
        );
        let (v4, none) = BfdPeer::of_sender(sender("[::ffff:192.0.2.1]:49152"));
        assert_eq!(
            (v4, none),
            (
                BfdPeer::address("192.0.2.1".parse().expect("address")),
                None
            ),
            "mapped IPv4 senders are IPv4 peers"
        );
        let (global, none) = BfdPeer::of_sender(sender("[2001:db8::1]:49152"));
        assert_eq!(global.scope, None);
        assert_eq!(none, None);
    }
}
