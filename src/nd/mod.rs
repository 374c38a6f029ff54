//! IPv6 router discovery for unnumbered peers (`bgp.peers.NAME.interface`): learning
//! the link-local address of the router on an interface from its Router
//! Advertisements, and announcing ours so the router learns us.
//!
//! - `wire.rs`: the RS and RA messages (pure).
//! - `socket.rs`: the raw ICMPv6 socket of one interface (needs CAP_NET_RAW).
//! - `task.rs`: the task per interface: sends RS/RA, reports the RAs it hears.
//!
//! How FRR 8.4.4 (`neighbor IFACE interface remote-as external`) finds its peer,
//! checked in two network namespaces joined by a veth with link-local addresses only:
//! - bgpd has zebra send RAs on the interface: 5 at 1 s, then every 10 s (again 1 s
//!   apart after the link comes back up), router lifetime 30 s, cur hop limit 64,
//!   Source Link-Layer Address; one with lifetime 0 when zebra stops. A host that
//!   accepts RAs (`accept_ra` 1 with forwarding off, or 2) makes the router its
//!   default route from them.
//! - zebra learns the neighbour only from RAs it receives: hop limit 255 and a
//!   link-local source are required ("Rx RA - Invalid hoplimit 64" otherwise),
//!   nothing else is: a bare 16-byte RA with router lifetime 0 is learnt. An RS is
//!   answered with an RA but not learnt; the kernel's neighbour table and incoming
//!   TCP connections are not used. The latest RA's source replaces the neighbour,
//!   and a link down forgets it (so does a restart of FRR).
//! - Before that, bgpd rejects connections from the link ("connection rejected -
//!   not configured and not valid for dynamic"). Once it has the address it
//!   connects out at once, then every connect-retry interval (120 s by default),
//!   from its link-local and an ephemeral port to [OUR-LL%iface]:179 (hop limit 1,
//!   eBGP), and accepts connections from that address to its port 179. The OPEN offers IPv4 and IPv6 unicast and the
//!   extended next hop capability for IPv4 over IPv6 (RFC 8950); one session
//!   carries both families.
pub mod socket;
pub mod task;
pub mod wire;

pub use task::{spawn, Config, Handle, Heard, DEFAULT_INTERVAL};
