//! IPv6 router discovery for unnumbered peers (`bgp.peers.NAME.interface`): learning
//! the link-local address of the router on an interface from its Router
//! Advertisements, and announcing ours so the router learns us.
//!
//! - `wire.rs`: the RS and RA messages (pure).
//! - `socket.rs`: the raw ICMPv6 socket of one interface (CAP_NET_RAW).
//! - `task.rs`: the task per interface: sends RS/RA, reports the RAs it hears.
//!
//! How FRR 8.4 (`neighbor IFACE interface remote-as ...`) finds its peer, checked in
//! network namespaces (a veth with link-local addresses only):
//! - bgpd asks zebra to send RAs on the interface: 5 at 1 s, then every 10 s, router
//!   lifetime 30 s, hop limit 64, with the Source Link-Layer Address. A host with
//!   `accept_ra` on makes the router its default route from them.
//! - zebra learns the neighbour only from RAs it receives (an RS is answered, not
//!   learnt; the neighbour table is not used): hop limit 255 and a link-local source
//!   are required, the rest is not (router lifetime 0, no options: learnt). The
//!   latest RA's source replaces the neighbour; a link down forgets it.
//! - Until then bgpd rejects connections from the link ("connection rejected - not
//!   configured and not valid for dynamic"); afterwards it connects out to
//!   [LL%iface]:179 from its own link-local, and accepts connections from the learnt
//!   address. Both families negotiate over the one session with extended next hop.
pub mod socket;
pub mod task;
pub mod wire;

pub use task::{spawn, Config, Handle, Heard, DEFAULT_INTERVAL};
